//! PostgreSQL through `psql` (trust auth as `postgres` on 127.0.0.1:5432), and pgbench.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::process::Command;

pub const HOST: &str = "127.0.0.1";
pub const PORT: u16 = 5432;
pub const USER: &str = "postgres";

pub fn url(database: &str) -> String {
    format!("postgres://{USER}@{HOST}:{PORT}/{database}")
}

fn psql_command(database: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA"])
        .args([
            "-h",
            HOST,
            "-p",
            &PORT.to_string(),
            "-U",
            USER,
            "-d",
            database,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs psql with `args` (e.g. `-c SQL` pairs), bounded by `limit`; returns its stdout.
pub async fn psql(database: &str, args: &[&str], limit: Duration) -> anyhow::Result<String> {
    let mut cmd = psql_command(database);
    cmd.args(args);
    let output = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("psql did not finish within {limit:?}"))?
        .context("psql could not run (is postgresql-client installed?)")?;
    if !output.status.success() {
        bail!(
            "psql {:?} failed: {}",
            args.iter().take(4).collect::<Vec<_>>(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// One SQL statement (or several separated by `;`).
pub async fn sql(database: &str, statement: &str) -> anyhow::Result<String> {
    psql(database, &["-c", statement], Duration::from_secs(120)).await
}

/// Wall time of one psql session running `commands` (`-c` each) in a single transaction.
pub async fn timed_session(
    database: &str,
    commands: &[String],
    limit: Duration,
) -> anyhow::Result<Duration> {
    let mut args: Vec<&str> = vec!["--single-transaction"];
    for c in commands {
        args.push("-c");
        args.push(c);
    }
    let started = Instant::now();
    psql(database, &args, limit).await?;
    Ok(started.elapsed())
}

/// `pgbench` on PATH or in PostgreSQL's own bin directory.
pub fn find_pgbench(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_owned());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("pgbench");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
        .pop()
        .context("pgbench not found: install postgresql-contrib (scripts/bench does)")
}

pub struct PgbenchResult {
    pub tps: f64,
    pub transactions: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    /// CPU seconds pgbench itself used (user + system).
    pub own_cpu_s: f64,
    pub command: String,
}

/// Runs a pgbench custom script for `seconds` with `clients` connections and reads the
/// per-transaction log for the latency percentiles.
pub async fn pgbench(
    binary: &Path,
    database: &str,
    script: &Path,
    clients: usize,
    seconds: u64,
    log_dir: &Path,
) -> anyhow::Result<PgbenchResult> {
    let prefix = log_dir.join("pgbench_log");
    let threads = clients.min(2).to_string();
    let clients_s = clients.to_string();
    let seconds_s = seconds.to_string();
    let prefix_s = prefix.display().to_string();
    let script_s = script.display().to_string();
    let args = [
        "-n",
        "-M",
        "prepared",
        "-c",
        &clients_s,
        "-j",
        &threads,
        "-T",
        &seconds_s,
        "-f",
        &script_s,
        "--log",
        "--log-prefix",
        &prefix_s,
        "-h",
        HOST,
        "-U",
        USER,
        database,
    ];
    let before = children_cpu_s();
    let output = tokio::time::timeout(
        Duration::from_secs(seconds + 60),
        Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("pgbench did not finish in time")?
    .context("pgbench could not run")?;
    let own_cpu_s = children_cpu_s() - before;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr).trim(),
            stdout
        );
    }
    let tps = stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench's output:\n{stdout}"))?;
    let field = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let transactions = field("number of transactions actually processed");
    let failed = field("number of failed transactions");

    let mut latencies_us = Vec::new();
    for entry in std::fs::read_dir(log_dir)? {
        let path = entry?.path();
        let is_log = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pgbench_log"));
        if !is_log {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        // client_id transaction_no time_us script_no time_epoch time_us_fraction
        latencies_us.extend(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()),
        );
        let _ = std::fs::remove_file(&path);
    }
    if latencies_us.is_empty() {
        bail!("pgbench wrote no transaction log");
    }
    latencies_us.sort_unstable();
    let pct = |p: f64| crate::load::percentile(&latencies_us, p) as f64 / 1000.0;
    let mean_ms = latencies_us.iter().sum::<u64>() as f64 / latencies_us.len() as f64 / 1000.0;
    Ok(PgbenchResult {
        tps,
        transactions,
        failed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        mean_ms,
        own_cpu_s,
        command: format!("pgbench {}", args.join(" ")),
    })
}

/// CPU seconds (user + system) of this process's waited-for children so far.
pub fn children_cpu_s() -> f64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    if rc != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Samples which statements the database's backends are running (pg_stat_activity, every
/// 250 ms through psql) while a phase runs: where PostgreSQL's time goes.
pub struct ActivitySampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u64, std::collections::HashMap<String, u64>)>,
}

impl ActivitySampler {
    pub fn start(database: &str) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, database) = (stop.clone(), database.to_owned());
        let task = tokio::spawn(async move {
            let query = "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 70) \
                 FROM pg_stat_activity WHERE datname = current_database() \
                 AND state = 'active' AND pid <> pg_backend_pid() \
                 AND backend_type = 'client backend'";
            let mut samples = 0u64;
            let mut counts = std::collections::HashMap::new();
            // Bounded: stops when told (the phase itself is bounded), at most one hour.
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(3600) {
                if let Ok(out) = psql(&database, &["-c", query], Duration::from_secs(5)).await {
                    samples += 1;
                    for line in out.lines().filter(|l| !l.is_empty()) {
                        *counts.entry(line.to_owned()).or_insert(0) += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (samples, counts)
        });
        Self { stop, task }
    }

    /// The statements seen most often, as "share of samples: statement".
    pub async fn finish(self) -> Vec<(f64, String)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let Ok(Ok((samples, counts))) =
            tokio::time::timeout(Duration::from_secs(10), self.task).await
        else {
            return Vec::new();
        };
        let mut top: Vec<(f64, String)> = counts
            .into_iter()
            .map(|(q, n)| (n as f64 / samples.max(1) as f64, q))
            .collect();
        top.sort_by(|a, b| b.0.total_cmp(&a.0));
        top.truncate(8);
        top
    }
}
