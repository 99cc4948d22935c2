//! The performance issue's trivial query: `{ __typename }` POSTed to the release server's
//! `/graphql` by wrk on the same machine (target: at least 20,000 requests/s with p99
//! under 10 ms), beside the same load on a minimal async-graphql server
//! (`parley-minimal-graphql`), which measures what the transport costs by itself.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use anyhow::{Context, bail};

use crate::{
    Bench,
    charts::{self, Bar, Kind, Panel},
    procfs::{CpuUse, cpu_snapshot},
    report::{Machine, thousands},
    server, summary,
    wrk::{self, WrkResult},
};

pub const TARGET_RPS: f64 = 20_000.0;
pub const TARGET_P99_MS: f64 = 10.0;
pub const THREADS: u32 = 2;
pub const CONNECTIONS: u32 = 64;
pub const BODY: &str = r#"{"query":"{ __typename }"}"#;

pub const BEGIN: &str =
    "<!-- transport:begin (written by scripts/bench; --transport-only replaces this section) -->";
pub const END: &str = "<!-- transport:end -->";

/// One side's load test.
#[derive(Clone, Debug, Default)]
pub struct Side {
    pub wrk: WrkResult,
    pub cpu: CpuUse,
    /// CPU seconds of the server process during the measured run.
    pub server_cpu_s: f64,
}

#[derive(Default)]
pub struct TransportFigures {
    pub seconds: u64,
    pub parley: Option<Side>,
    pub minimal: Option<Side>,
    /// The first answer's status, body and rate-limit headers (there must be none).
    pub probe: String,
    pub rate_limited: bool,
    pub command: String,
    pub error: Option<String>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `parley-minimal-graphql`, beside this binary.
fn minimal_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let path = me
        .parent()
        .context("the bench binary's directory")?
        .join("parley-minimal-graphql");
    if !path.is_file() {
        bail!(
            "{} is missing: cargo build --release -p parley-bench --bin parley-minimal-graphql",
            path.display()
        );
    }
    Ok(path)
}

/// One POST of the trivial query: (status, body, rate-limit headers).
async fn probe(url: &str) -> anyhow::Result<(u16, String, Vec<String>)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(BODY)
        .send()
        .await?;
    let status = response.status().as_u16();
    let limits: Vec<String> = response
        .headers()
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            k.starts_with("ratelimit") || k == "retry-after"
        })
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect();
    Ok((status, response.text().await?, limits))
}

/// The reference server as a child process, killed on drop.
struct Minimal {
    child: tokio::process::Child,
    pid: u32,
    url: String,
}

impl Minimal {
    async fn start() -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut cmd = tokio::process::Command::new(minimal_binary()?);
        cmd.arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        server::die_with_parent(&mut cmd);
        let child = cmd.spawn().context("starting parley-minimal-graphql")?;
        let pid = child
            .id()
            .context("parley-minimal-graphql exited at once")?;
        let url = format!("http://127.0.0.1:{port}/graphql");
        // Up within a second; polled every 50 ms for at most 10 s.
        for _ in 0..200 {
            if let Ok((200, _, _)) = probe(&url).await {
                return Ok(Self { child, pid, url });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("parley-minimal-graphql did not answer within 10 s")
    }

    async fn stop(mut self) {
        // SAFETY: kill(2) on our own child, not reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

impl Bench {
    /// The wrk script in the work directory.
    fn wrk_script(&self) -> anyhow::Result<PathBuf> {
        let path = self.work_dir.join("trivial-query.lua");
        std::fs::write(&path, wrk::script(BODY))?;
        Ok(path)
    }

    /// A 1 s warm-up, then `seconds` measured, against `url`, served by `pid`.
    async fn wrk_side(
        &self,
        url: &str,
        pid: u32,
        name: &str,
        seconds: u64,
    ) -> anyhow::Result<Side> {
        let wrk_bin = wrk::find()?;
        let script = self.wrk_script()?;
        wrk::run(&wrk_bin, &script, url, THREADS, CONNECTIONS, 1).await?;
        let start = cpu_snapshot();
        let (result, _) = wrk::run(&wrk_bin, &script, url, THREADS, CONNECTIONS, seconds).await?;
        let cpu = CpuUse::between_named(&start, &cpu_snapshot(), &[(pid, name)]);
        progress!(
            "{name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} non-2xx, {} socket errors; CPU: {}",
            result.rps,
            result.p50_ms,
            result.p99_ms,
            result.non_2xx,
            result.socket_errors,
            cpu.describe(self.cores)
        );
        Ok(Side {
            server_cpu_s: cpu.by_group.get(name).copied().unwrap_or(0.0),
            wrk: result,
            cpu,
        })
    }

    pub(crate) async fn run_transport(&mut self) -> anyhow::Result<()> {
        let mut figures = TransportFigures {
            seconds: self.args.seconds,
            command: format!(
                "wrk -t {THREADS} -c {CONNECTIONS} -d {}s --timeout 10s --latency -s \
                 trivial-query.lua <url>/graphql",
                self.args.seconds
            ),
            ..Default::default()
        };
        let outcome = self.transport_phases(&mut figures).await;
        if let Some(server) = self.extra_server.take() {
            server.stop().await;
        }
        if let Err(e) = &outcome {
            figures.error = Some(format!("{e:#}"));
        }
        self.transport = Some(figures);
        outcome
    }

    async fn transport_phases(&mut self, f: &mut TransportFigures) -> anyhow::Result<()> {
        self.stop_other_servers().await;
        let server = self
            .start_server("transport", Vec::new())
            .await
            .context("starting the server")?;
        let (pid, url) = (server.pid, format!("{}/graphql", server.base));
        self.extra_server = Some(server);
        let (status, body, limits) = probe(&url).await?;
        f.probe = format!(
            "HTTP {status}, `{}`{}",
            body.trim(),
            if limits.is_empty() {
                ", no rate-limit headers".to_owned()
            } else {
                format!(", {}", limits.join(", "))
            }
        );
        f.rate_limited = !limits.is_empty() || status == 429;
        if status != 200 || !body.contains("\"__typename\":\"Query\"") {
            bail!("the trivial query did not answer as expected: {}", f.probe);
        }
        progress!(
            "trivial query: {} s of wrk ({THREADS} threads, {CONNECTIONS} connections); {}",
            f.seconds,
            f.probe
        );
        f.parley = Some(self.wrk_side(&url, pid, "parley server", f.seconds).await?);
        if let Some(server) = self.extra_server.take() {
            server.stop().await;
        }
        let minimal = Minimal::start().await?;
        let outcome = self
            .wrk_side(&minimal.url, minimal.pid, "minimal server", f.seconds)
            .await;
        minimal.stop().await;
        f.minimal = Some(outcome?);
        Ok(())
    }

    /// Profiling: the trivial query's load for `seconds` on a fresh server, returning its
    /// pid while the load runs (see `profile.rs`).
    pub(crate) async fn transport_server(&mut self) -> anyhow::Result<(u32, String)> {
        self.stop_other_servers().await;
        let server = self.start_server("transport", Vec::new()).await?;
        let out = (server.pid, format!("{}/graphql", server.base));
        self.extra_server = Some(server);
        Ok(out)
    }

    pub(crate) async fn transport_load(&self, url: &str, seconds: u64) -> anyhow::Result<()> {
        let wrk_bin = wrk::find()?;
        let script = self.wrk_script()?;
        wrk::run(&wrk_bin, &script, url, THREADS, CONNECTIONS, seconds).await?;
        Ok(())
    }
}

impl TransportFigures {
    pub fn ratio(&self) -> Option<f64> {
        Some(self.parley.as_ref()?.wrk.rps / self.minimal.as_ref()?.wrk.rps)
    }

    pub fn summary_rows(&self, chart: Option<&str>) -> Vec<summary::Row> {
        let Some(p) = &self.parley else {
            return Vec::new();
        };
        let m = self.minimal.as_ref();
        let ratio = self.ratio();
        let chart = chart.map(str::to_owned);
        vec![
            summary::Row {
                bench: format!(
                    "Trivial query `{{ __typename }}`, wrk {THREADS} threads × {CONNECTIONS} \
                     connections, {} s: throughput",
                    self.seconds
                ),
                parley: format!("{} req/s", thousands(p.wrk.rps)),
                reference: m.map_or("not measured".into(), |m| {
                    format!("minimal async-graphql {} req/s", thousands(m.wrk.rps))
                }),
                ratio,
                ratio_text: ratio.map_or(String::new(), |r| {
                    format!("{:.1}% of the minimal server's rate", r * 100.0)
                }),
                target: format!("≥ {} req/s", thousands(TARGET_RPS)),
                met: Some(p.wrk.rps >= TARGET_RPS && p.wrk.non_2xx == 0),
                chart: chart.clone(),
            },
            summary::Row {
                bench: "Trivial query: latency p99 (p50)".into(),
                parley: format!("{:.2} ms ({:.2} ms)", p.wrk.p99_ms, p.wrk.p50_ms),
                reference: m.map_or("not measured".into(), |m| {
                    format!("{:.2} ms ({:.2} ms)", m.wrk.p99_ms, m.wrk.p50_ms)
                }),
                ratio: m.map(|m| m.wrk.p99_ms / p.wrk.p99_ms),
                ratio_text: m.map_or(String::new(), |m| {
                    format!(
                        "{:.1}× the minimal server's p99",
                        p.wrk.p99_ms / m.wrk.p99_ms
                    )
                }),
                target: format!("p99 < {TARGET_P99_MS:.0} ms"),
                met: Some(p.wrk.p99_ms < TARGET_P99_MS),
                chart,
            },
        ]
    }

    pub fn chart(&self, report: &Path) -> Option<String> {
        let p = self.parley.as_ref()?;
        let m = self.minimal.as_ref();
        let mut throughput = vec![Bar::parley("Parley (release server)", p.wrk.rps)];
        if let Some(m) = m {
            throughput.push(Bar::reference("minimal async-graphql (axum)", m.wrk.rps));
        }
        let empty = Vec::new();
        let latency = charts::percentile_bars(
            &[
                ("Parley", Kind::Parley, &p.wrk.percentiles),
                (
                    "minimal",
                    Kind::Reference,
                    m.map_or(&empty, |m| &m.wrk.percentiles),
                ),
            ],
            &[50.0, 90.0, 99.0, 99.9],
        );
        charts::write(
            report,
            "transport",
            "Trivial query { __typename }: Parley vs a minimal async-graphql server (wrk, same machine)",
            &[
                Panel::new("Throughput", "requests per second", throughput)
                    .target(TARGET_RPS, "target ≥ 20,000/s"),
                Panel::new("Latency percentiles", "milliseconds", latency)
                    .target(TARGET_P99_MS, "p99 target < 10 ms"),
            ],
        )
    }

    pub fn section(
        &self,
        machine: &Machine,
        command: &str,
        partial: bool,
        chart: Option<&str>,
    ) -> String {
        let m = machine;
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN}\n\n## Trivial query (transport)\n");
        out.push_str(&summary::comments(&self.summary_rows(chart)));
        let _ = writeln!(
            out,
            "\nMeasured {} on {} cores ({}), {:.0} GiB memory, Linux {}; server \
             `target/release/parley` at {}.{}\n",
            m.date,
            m.cores,
            m.cpu,
            m.memory_gib,
            m.kernel,
            m.commit,
            if partial {
                " A partial run: the rest of this report is from earlier runs."
            } else {
                ""
            }
        );
        if let Some(e) = &self.error {
            let _ = writeln!(out, "**The run stopped early:** {}\n", e.replace('\n', " "));
        }
        out.push_str(&summary::section_table(&self.summary_rows(chart)));
        if let Some(c) = chart {
            let _ = writeln!(
                out,
                "\n![Trivial query: Parley and the minimal server]({c})"
            );
        }
        let _ = writeln!(
            out,
            "\n### Reproduce\n\n```sh\n{command}\n```\n\nOptions: `--transport-only` (this \
             section alone; the rest of the report is kept), `--no-transport`, `--seconds N` \
             (the length of each wrk run, default 10).\n\n### What was measured\n"
        );
        let _ = writeln!(
            out,
            "wrk (Debian's 4.1.0; `scripts/bench` installs it when missing) runs on the same \
             machine as the server: `{}`, after a 1 s warm-up run that is not counted. Its Lua \
             script POSTs `{BODY}` with `Content-Type: application/json` on every request and \
             prints, when done, the latency percentiles and the error counts (non-2xx answers, \
             socket errors) that the tables use. No token and no project: the cheapest request \
             the API answers, so the figure is the HTTP and GraphQL transport's own cost.\n\n\
             - **Parley:** the release server as the other benchmarks start it (PostgreSQL, \
             Redis, ClickHouse configured; rate limits `RATE_LIMIT_PER_IP=0` and \
             `RATE_LIMIT_PER_API_KEY=0`, i.e. off). Before the load, one request checks the \
             answer and that no limit applies: {}{}.\n\
             - **Reference:** `parley-minimal-graphql` (`bench/src/minimal_graphql.rs`): \
             async-graphql 7.2.1 and async-graphql-axum on axum 0.8 and tokio's multi-threaded \
             runtime, one `Query` type and one `POST /graphql` route, nothing else (no \
             middleware, limits, tracing or metrics). Started on a free loopback port after \
             Parley's server has stopped, loaded the same way.\n\n\
             The ratio is Parley's rate over the minimal server's; the difference is what \
             Parley's middleware (request ids, tracing, limits, metrics, CORS, timeouts, body \
             limits), its schema and its GraphQL extensions cost per request. wrk, the server \
             and the machine's other services share the 2 cores.\n",
            self.command,
            self.probe,
            if self.rate_limited {
                " (**a rate limit applied: the figures are not the transport's**)"
            } else {
                ""
            }
        );
        for (name, side) in [
            ("Parley", self.parley.as_ref()),
            ("minimal server", self.minimal.as_ref()),
        ] {
            let Some(s) = side else { continue };
            let w = &s.wrk;
            let pcts: Vec<String> = w
                .percentiles
                .iter()
                .map(|(p, ms)| format!("p{p} {ms:.2}"))
                .collect();
            let _ = writeln!(
                out,
                "- {name}: {} requests in {:.2} s ({} req/s), {} non-2xx, {} socket errors; \
                 latency mean {:.2} ms, max {:.2} ms; {} ms; the server used {:.1} CPU-s ({:.1} µs \
                 per request); CPU: {}",
                thousands(w.requests as f64),
                w.seconds,
                thousands(w.rps),
                w.non_2xx,
                w.socket_errors,
                w.mean_ms,
                w.max_ms,
                pcts.join(", "),
                s.server_cpu_s,
                s.server_cpu_s * 1e6 / w.requests.max(1) as f64,
                s.cpu.describe(m.cores)
            );
        }
        for (name, side) in [
            ("Parley's load test", self.parley.as_ref()),
            ("the minimal server's load test", self.minimal.as_ref()),
        ] {
            if let Some(line) = side.and_then(|s| crate::report::disturbed(name, &s.cpu, m.cores)) {
                let _ = writeln!(out, "- {line}");
            }
        }
        let _ = writeln!(out, "\n{END}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wrk 4.1.0 (Debian) against parley-minimal-graphql on this machine, with the
    /// script's lines (2 threads, 64 connections, 3 s).
    const CAPTURED: &str = include_str!("../testdata/wrk-minimal.txt");

    #[test]
    fn parses_captured_wrk_output() {
        let r = wrk::parse(CAPTURED).unwrap();
        assert!(r.requests > 1000 && r.rps > 1000.0, "{r:?}");
        assert!(r.seconds > 2.0 && r.seconds < 4.0);
        assert!(r.p50_ms > 0.0 && r.p50_ms <= r.p75_ms && r.p75_ms <= r.p90_ms);
        assert!(r.p90_ms <= r.p99_ms && r.p99_ms <= r.max_ms);
        assert_eq!(r.non_2xx, 0);
        assert_eq!(r.percentiles.len(), 11);
        assert_eq!(r.percentiles[4].0, 50.0);
        // The script's p50 (µs, exact) and wrk's own (rounded) agree.
        assert!((r.percentiles[4].1 - r.p50_ms).abs() < 0.05 * r.p50_ms + 0.01);
    }

    #[test]
    fn counts_non_2xx_answers() {
        let out = include_str!("../testdata/wrk-404.txt");
        let r = wrk::parse(out).unwrap();
        assert!(r.non_2xx > 0 && r.non_2xx == r.requests, "{r:?}");
        assert!(wrk::parse("Running 1s test\n").is_err());
    }

    #[test]
    fn the_section_has_its_markers_and_rows() {
        let f = TransportFigures {
            seconds: 3,
            parley: Some(Side {
                wrk: wrk::parse(CAPTURED).unwrap(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = f.section(
            &Machine::default(),
            "scripts/bench --transport-only",
            true,
            None,
        );
        assert!(s.starts_with(BEGIN) && s.trim_end().ends_with(END));
        assert!(s.contains("<!-- summary-row: | Trivial query"));
    }
}
