//! `--profile`: flamegraphs of the benchmarks with the slowest ratios. The chosen loads run
//! again (after every measured run, so no figure of the tables comes from a run with perf
//! attached) while `perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p PID`
//! samples the server; `perf script`'s output is folded with inferno's perf collapser and
//! drawn with inferno's flamegraph (docs/bench/flame-*.svg).

use std::{collections::HashMap, io::BufReader, path::Path, process::Stdio, time::Duration};

use anyhow::{Context, bail};
use inferno::collapse::{Collapse, perf::Folder};
use tokio::process::{Child, Command};

pub const FREQUENCY: u32 = 499;
pub const PERF: &str = "/usr/bin/perf";

/// A benchmark that can be replayed under perf, with its ratio in this run.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub key: &'static str,
    pub name: String,
    pub ratio: f64,
}

/// The `n` candidates with the smallest ratios (Parley's figure over its reference's, so
/// the slowest relative to what the machine can do), smallest first.
pub fn slowest(mut candidates: Vec<Candidate>, n: usize) -> Vec<Candidate> {
    candidates.retain(|c| c.ratio.is_finite() && c.ratio > 0.0);
    candidates.sort_by(|a, b| a.ratio.total_cmp(&b.ratio));
    candidates.truncate(n);
    candidates
}

/// `perf record` of `pid` for `seconds`, writing `out`.
pub fn record(pid: u32, seconds: u64, out: &Path) -> anyhow::Result<Child> {
    let mut cmd = Command::new(PERF);
    cmd.args(["record", "-e", "cpu-clock", "-F", &FREQUENCY.to_string()])
        .args(["--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
        .arg(out)
        .args(["--", "sleep", &seconds.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    crate::server::die_with_parent(&mut cmd);
    cmd.spawn().context("perf could not run (/usr/bin/perf)")
}

/// Waits for `perf record` (bounded) and checks it wrote samples.
pub async fn finish(child: Child, seconds: u64) -> anyhow::Result<()> {
    let output = tokio::time::timeout(Duration::from_secs(seconds + 120), child.wait_with_output())
        .await
        .context("perf record did not end")??;
    if !output.status.success() {
        bail!(
            "perf record failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `perf script` of a recording (bounded: unwinding dwarf stacks takes a while).
pub async fn script(data: &Path) -> anyhow::Result<Vec<u8>> {
    let output = tokio::time::timeout(
        Duration::from_secs(900),
        Command::new(PERF)
            .args(["script", "-F", "comm,pid,tid,time,event,ip,sym,dso", "-i"])
            .arg(data)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("perf script did not end within 900 s")??;
    if !output.status.success() {
        bail!(
            "perf script failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

/// `perf script` output folded into one line per distinct stack (`a;b;c count`).
pub fn fold(perf_script: &[u8]) -> anyhow::Result<String> {
    let mut folded = Vec::new();
    Folder::default()
        .collapse(BufReader::new(perf_script), &mut folded)
        .context("folding perf script's output")?;
    Ok(String::from_utf8(folded)?)
}

/// The flamegraph SVG of folded stacks.
pub fn flamegraph(folded: &str, title: &str, subtitle: &str) -> anyhow::Result<Vec<u8>> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.subtitle = Some(subtitle.to_owned());
    options.count_name = "samples".to_owned();
    options.deterministic = true;
    // Frames narrower than a pixel are left out: they cannot be read, and they made the
    // file ten times larger.
    options.min_width = 1.0;
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, folded.lines(), &mut svg)
        .context("drawing the flamegraph")?;
    Ok(svg)
}

/// The folded lines' stacks and sample counts (lines that do not parse are skipped).
fn folded_stacks(folded: &str) -> impl Iterator<Item = (&str, u64)> {
    folded.lines().filter_map(|line| {
        let (stack, count) = line.rsplit_once(' ')?;
        Some((stack, count.parse::<u64>().ok()?))
    })
}

/// Each frame's samples as a share of `total`, largest first (ties by name).
fn shares_of(by_frame: HashMap<&str, u64>, total: u64) -> Vec<(String, f64)> {
    let mut shares: Vec<(String, f64)> = by_frame
        .into_iter()
        .map(|(f, n)| (f.to_owned(), n as f64 / total.max(1) as f64))
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    shares
}

/// Samples in total, and the share of samples in which each function appears (once per
/// stack), largest first: what dominates the flamegraph.
pub fn inclusive_shares(folded: &str) -> (u64, Vec<(String, f64)>) {
    let mut total = 0u64;
    let mut by_frame: HashMap<&str, u64> = HashMap::new();
    for (stack, count) in folded_stacks(folded) {
        total += count;
        let mut seen: Vec<&str> = Vec::new();
        for frame in stack.split(';') {
            if !seen.contains(&frame) {
                seen.push(frame);
                *by_frame.entry(frame).or_default() += count;
            }
        }
    }
    (total, shares_of(by_frame, total))
}

/// Samples whose innermost frame is each function (self time), largest first.
pub fn self_shares(folded: &str) -> Vec<(String, f64)> {
    let mut total = 0u64;
    let mut by_leaf: HashMap<&str, u64> = HashMap::new();
    for (stack, count) in folded_stacks(folded) {
        total += count;
        let leaf = stack.rsplit(';').next().unwrap_or(stack);
        *by_leaf.entry(leaf).or_default() += count;
    }
    shares_of(by_leaf, total)
}

/// The frames a reader looks for first: named areas of the server's work, each with the
/// share of samples whose stack contains a frame matching one of its patterns. (Tokio's
/// scheduler and tower's layers are in nearly every stack, so they say nothing here.)
pub const AREAS: &[(&str, &[&str])] = &[
    (
        "kernel network (TCP send/receive, epoll)",
        &[
            "tcp_",
            "sock_",
            "__sys_sendto",
            "__sys_recvfrom",
            "ep_poll",
            "do_epoll",
        ],
    ),
    ("HTTP (hyper)", &["hyper::"]),
    (
        "async-graphql (parse, validate, execute)",
        &["async_graphql"],
    ),
    ("Parley's own code", &["parley_api::", "parley_analytics::"]),
    ("JSON (serde_json)", &["serde_json::"]),
    (
        "tracing",
        &["tracing::", "tracing_subscriber::", "tracing_core::"],
    ),
    ("metrics", &["metrics::", "metrics_exporter"]),
    ("PostgreSQL client (sqlx, sea-orm)", &["sqlx_", "sea_orm::"]),
    ("ClickHouse client", &["clickhouse::"]),
    (
        "allocation (mimalloc, memcpy/memset)",
        &["mi_", "_mi_", "memcpy", "memset", "memmove"],
    ),
];

/// Share of samples whose stack matches each area (a sample may count in several).
pub fn areas(folded: &str) -> Vec<(&'static str, f64)> {
    let mut total = 0u64;
    let mut counts = vec![0u64; AREAS.len()];
    for line in folded.lines() {
        let Some((stack, count)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        total += count;
        for (i, (_, patterns)) in AREAS.iter().enumerate() {
            if stack
                .split(';')
                .any(|frame| patterns.iter().any(|p| frame.contains(p)))
            {
                counts[i] += count;
            }
        }
    }
    let mut out: Vec<(&'static str, f64)> = AREAS
        .iter()
        .zip(counts)
        .map(|((name, _), n)| (*name, n as f64 / total.max(1) as f64))
        .filter(|(_, s)| *s > 0.0)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `perf script -F comm,pid,tid,time,event,ip,sym,dso` of
    /// `perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p PID` on this machine
    /// (the first samples of parley-minimal-graphql under wrk).
    const CAPTURED: &[u8] = include_bytes!("../testdata/perf-script.txt");

    #[test]
    fn folds_captured_perf_script_output() {
        let folded = fold(CAPTURED).unwrap();
        let (total, shares) = inclusive_shares(&folded);
        assert!(total >= 10, "{folded}");
        // Every line is "frames count", and the root frame is the process.
        for line in folded.lines() {
            let (stack, count) = line.rsplit_once(' ').unwrap();
            assert!(count.parse::<u64>().unwrap() > 0);
            assert!(!stack.is_empty());
        }
        assert!(
            shares[0].1 > 0.99,
            "the root is in every stack: {:?}",
            shares[0]
        );
        let leaves = self_shares(&folded);
        let sum: f64 = leaves.iter().map(|(_, s)| s).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        let svg = flamegraph(&folded, "test", "captured").unwrap();
        assert!(String::from_utf8(svg).unwrap().contains("<svg"));
    }

    #[test]
    fn shares_and_areas_of_folded_stacks() {
        let folded = "srv;main;hyper::serve;tcp_sendmsg 3\nsrv;main;async_graphql::execute 1\n";
        let (total, shares) = inclusive_shares(folded);
        assert_eq!(total, 4);
        assert_eq!(shares[0], ("main".to_owned(), 1.0));
        let a = areas(folded);
        assert_eq!(a[0].1, 0.75);
        assert!(
            a.iter()
                .any(|(n, s)| n.starts_with("async-graphql") && *s == 0.25)
        );
        assert_eq!(self_shares(folded)[0], ("tcp_sendmsg".to_owned(), 0.75));
    }

    #[test]
    fn the_slowest_ratios_first() {
        let c = |key, ratio| Candidate {
            key,
            name: key.to_owned(),
            ratio,
        };
        let chosen = slowest(
            vec![
                c("a", 0.9),
                c("b", 0.2),
                c("c", f64::NAN),
                c("d", 0.5),
                c("e", 0.3),
            ],
            3,
        );
        let keys: Vec<&str> = chosen.iter().map(|c| c.key).collect();
        assert_eq!(keys, ["b", "e", "d"]);
    }
}
