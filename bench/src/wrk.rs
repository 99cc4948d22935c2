//! `wrk` as the load generator of the transport benchmark: a Lua script that POSTs one
//! GraphQL document as `application/json`, and the parser of wrk's output (its own summary
//! and `--latency` distribution, plus the finer percentiles and error counts the script's
//! `done` hook prints).

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, bail};
use tokio::process::Command;

/// Percentiles the script prints (the CDF of the report's chart).
const PERCENTILES: &str = "1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99";

/// A Lua string literal of `text`.
fn lua_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The Lua script: every request is `POST` of `body` with a JSON content type.
pub fn script(body: &str) -> String {
    script_with_headers(body, &[])
}

/// The Lua script with more request headers; one named like a default (`Accept`, in any
/// case) replaces it.
pub fn script_with_headers(body: &str, headers: &[(&str, String)]) -> String {
    let mut all: Vec<(&str, &str)> = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json"),
    ];
    for (name, value) in headers {
        match all.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(default) => *default = (name, value),
            None => all.push((name, value)),
        }
    }
    let mut lines = String::new();
    for (name, value) in all {
        lines.push_str(&format!(
            "wrk.headers[{}] = {}\n",
            lua_string(name),
            lua_string(value)
        ));
    }
    // A Lua long string: no escaping needed unless the body contains "]==]".
    format!(
        "wrk.method = \"POST\"\n\
         wrk.body = [==[{body}]==]\n\
         {lines}\
         done = function(summary, latency, requests)\n\
         \x20 for _, p in ipairs({{ {PERCENTILES} }}) do\n\
         \x20   io.write(string.format(\"parley-percentile %g %d\\n\", p, latency:percentile(p)))\n\
         \x20 end\n\
         \x20 local e = summary.errors\n\
         \x20 io.write(string.format(\"parley-summary %d %d %d %d %d %d %d %d\\n\",\n\
         \x20   summary.duration, summary.requests, summary.bytes,\n\
         \x20   e.connect, e.read, e.write, e.status, e.timeout))\n\
         end\n"
    )
}

/// What one wrk run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    /// `--latency`'s distribution, in milliseconds.
    pub p50_ms: f64,
    pub p75_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// Answers that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// Socket errors: connect, read, write, timeout.
    pub socket_errors: u64,
    /// (percentile, milliseconds) from the script's `done` hook.
    pub percentiles: Vec<(f64, f64)>,
}

/// "1.23ms", "456.00us", "2.01s", "3.00m" in milliseconds.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        "h" => value * 3_600_000.0,
        _ => return None,
    })
}

/// Parses wrk's standard output (`--latency`, with or without the script's lines).
pub fn parse(output: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut seen_rate = false;
    for line in output.lines() {
        let t = line.trim();
        let words: Vec<&str> = t.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", avg, _stdev, max, _] => {
                r.mean_ms = duration_ms(avg).context("Latency avg")?;
                r.max_ms = duration_ms(max).context("Latency max")?;
            }
            [p, value] if p.ends_with('%') => {
                let ms = duration_ms(value).with_context(|| format!("latency {p}"))?;
                match *p {
                    "50%" => r.p50_ms = ms,
                    "75%" => r.p75_ms = ms,
                    "90%" => r.p90_ms = ms,
                    "99%" => r.p99_ms = ms,
                    _ => {}
                }
            }
            [n, "requests", "in", secs, ..] => {
                r.requests = n.parse().context("requests")?;
                r.seconds = secs
                    .trim_end_matches(',')
                    .strip_suffix('s')
                    .and_then(|s| s.parse().ok())
                    .or_else(|| duration_ms(secs.trim_end_matches(',')).map(|ms| ms / 1000.0))
                    .context("duration")?;
            }
            ["Requests/sec:", rps] => {
                r.rps = rps.parse().context("Requests/sec")?;
                seen_rate = true;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                r.non_2xx = n.parse().context("Non-2xx")?;
            }
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 0"
                r.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            ["parley-percentile", p, us] => {
                let p: f64 = p.parse().context("percentile")?;
                let us: f64 = us.parse().context("percentile value")?;
                r.percentiles.push((p, us / 1000.0));
            }
            [
                "parley-summary",
                _duration,
                _requests,
                _bytes,
                connect,
                read,
                write,
                status,
                timeout,
            ] => {
                let n = |w: &str| w.parse::<u64>().unwrap_or(0);
                // The script's status count is the same as "Non-2xx or 3xx responses".
                r.non_2xx = r.non_2xx.max(n(status));
                r.socket_errors = r
                    .socket_errors
                    .max(n(connect) + n(read) + n(write) + n(timeout));
            }
            _ => {}
        }
    }
    if !seen_rate || r.requests == 0 {
        bail!("not wrk output with a request rate:\n{output}");
    }
    Ok(r)
}

/// Runs wrk against `url` for `seconds` and parses its output.
pub async fn run(
    wrk: &Path,
    script: &Path,
    url: &str,
    threads: u32,
    connections: u32,
    seconds: u64,
) -> anyhow::Result<(WrkResult, String)> {
    let mut cmd = Command::new(wrk);
    cmd.args([
        "-t",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
        "--timeout",
        "10s",
        "--latency",
        "-s",
    ])
    .arg(script)
    .arg(url)
    .stdin(Stdio::null())
    .kill_on_drop(true);
    let limit = Duration::from_secs(seconds + 30);
    let output = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("wrk did not finish within {limit:?}"))?
        .context("wrk could not run (scripts/bench installs it)")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}{}",
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((parse(&stdout).context("wrk's output")?, stdout))
}

/// The wrk binary: on PATH, or /usr/bin/wrk.
pub fn find() -> anyhow::Result<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("wrk"))
        .chain([std::path::PathBuf::from("/usr/bin/wrk")])
        .find(|p| p.is_file())
        .context("wrk not found (scripts/bench installs the Debian package wrk)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        let close = |text: &str, ms: f64| (duration_ms(text).unwrap() - ms).abs() < 1e-9;
        assert!(close("456.00us", 0.456));
        assert!(close("1.23ms", 1.23));
        assert!(close("2.01s", 2010.0));
        assert!(close("1.00m", 60_000.0));
        assert_eq!(duration_ms("12"), None);
    }

    #[test]
    fn the_script_posts_the_body_as_json() {
        let s = script(r#"{"query":"{ __typename }"}"#);
        assert!(s.contains(r#"wrk.body = [==[{"query":"{ __typename }"}]==]"#));
        assert!(s.contains("Content-Type\"] = \"application/json\""));
        assert!(s.contains("latency:percentile(p)"));
        assert!(!s.contains("Authorization"));
    }

    #[test]
    fn the_script_sets_extra_headers_and_replaces_defaults() {
        let s = script_with_headers(
            r#"{"query":"{ contactCount }"}"#,
            &[
                ("authorization", "Bearer a.b-c_d".to_owned()),
                ("x-project-id", "0000-1111".to_owned()),
                ("accept", "application/graphql-response+json".to_owned()),
                ("x-odd", "say \"hi\" \\ bye".to_owned()),
            ],
        );
        assert!(s.contains("wrk.headers[\"authorization\"] = \"Bearer a.b-c_d\"\n"));
        assert!(s.contains("wrk.headers[\"x-project-id\"] = \"0000-1111\"\n"));
        assert!(s.contains(r#"wrk.headers["x-odd"] = "say \"hi\" \\ bye""#));
        // The page's Accept replaces the default: one Accept header.
        assert!(s.contains("wrk.headers[\"accept\"] = \"application/graphql-response+json\""));
        assert_eq!(
            s.to_ascii_lowercase().matches("[\"accept\"]").count(),
            1,
            "{s}"
        );
        assert!(s.contains("wrk.headers[\"Content-Type\"] = \"application/json\""));
        assert!(s.contains("\ndone = function"));
        assert_eq!(lua_string("a\nb"), "\"a\\nb\"");
    }
}
