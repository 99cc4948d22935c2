//! What /proc says about memory and CPU time: the server's VmRSS and VmHWM, and CPU seconds
//! by process group over a phase (to see where the time goes).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// Resident set size now, in KiB.
    pub rss_kb: u64,
    /// Peak resident set size since the process started (high-water mark), in KiB.
    pub hwm_kb: u64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Memory {
        rss_kb: kb("VmRSS:")?,
        hwm_kb: kb("VmHWM:")?,
    })
}

/// KiB as decimal megabytes.
pub fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1e6
}

/// Samples a process's memory every 50 ms until stopped; keeps the peaks.
pub struct Sampler {
    peak: Arc<Mutex<(Memory, u64)>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let peak = Arc::new(Mutex::new((Memory::default(), 0u64)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            // Bounded: stops when told, or when the process is gone.
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                let Some(m) = memory(pid) else { break };
                let mut guard = p.lock().unwrap_or_else(|e| e.into_inner());
                guard.0.rss_kb = guard.0.rss_kb.max(m.rss_kb);
                guard.0.hwm_kb = guard.0.hwm_kb.max(m.hwm_kb);
                guard.1 += 1;
            }
        });
        Self { peak, stop, task }
    }

    /// Peak sampled VmRSS, latest VmHWM, and the number of samples.
    pub async fn finish(self) -> (Memory, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.task).await;
        *self.peak.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// CPU ticks per process at one moment, grouped afterwards.
pub struct CpuSnapshot {
    ticks: HashMap<u32, (String, u64)>,
    /// CPU of exited PostgreSQL backends, reaped by the postmaster.
    postgres_reaped: u64,
    pub at: std::time::Instant,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

pub fn cpu_snapshot() -> CpuSnapshot {
    let mut ticks = HashMap::new();
    let mut postgres_reaped = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let num = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // After the command: state(0) … utime(11) stime(12) cutime(13) cstime(14).
        if comm == "postgres" && is_postmaster(pid) {
            postgres_reaped += num(13) + num(14);
        }
        ticks.insert(pid, (comm, num(11) + num(12)));
    }
    CpuSnapshot {
        ticks,
        postgres_reaped,
        at: std::time::Instant::now(),
    }
}

fn is_postmaster(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .map(|c| c.contains("/bin/postgres"))
        .unwrap_or(false)
}

/// CPU seconds by group between two snapshots, and the wall time between them.
#[derive(Clone, Debug, Default)]
pub struct CpuUse {
    pub wall_s: f64,
    pub by_group: BTreeMap<String, f64>,
}

impl CpuUse {
    pub fn between(start: &CpuSnapshot, end: &CpuSnapshot, server_pid: u32) -> Self {
        Self::between_named(start, end, &[(server_pid, "parley server")])
    }

    /// As `between`, with several server processes, each under its own name.
    pub fn between_named(start: &CpuSnapshot, end: &CpuSnapshot, servers: &[(u32, &str)]) -> Self {
        let hz = clock_ticks();
        let me = std::process::id();
        let mut by_group: BTreeMap<String, f64> = BTreeMap::new();
        for (pid, (comm, t_end)) in &end.ticks {
            let t_start = start
                .ticks
                .get(pid)
                .filter(|(c, _)| c == comm)
                .map(|(_, t)| *t)
                .unwrap_or(0);
            let delta = t_end.saturating_sub(t_start);
            if delta == 0 {
                continue;
            }
            let group = if let Some((_, name)) = servers.iter().find(|(p, _)| p == pid) {
                (*name).to_owned()
            } else if *pid == me {
                "bench client".to_owned()
            } else if comm == "postgres" {
                "postgresql".to_owned()
            } else if comm.starts_with("clickhouse") {
                "clickhouse".to_owned()
            } else if comm.starts_with("redis") {
                "redis".to_owned()
            } else {
                // Named, so that another job on the machine shows up in the report.
                format!("other: {comm}")
            };
            *by_group.entry(group).or_default() += delta as f64 / hz;
        }
        let reaped = end.postgres_reaped.saturating_sub(start.postgres_reaped);
        if reaped > 0 {
            *by_group.entry("postgresql".to_owned()).or_default() += reaped as f64 / hz;
        }
        Self {
            wall_s: end.at.duration_since(start.at).as_secs_f64(),
            by_group,
        }
    }

    /// CPU seconds of processes that are not part of the benchmark (kernel workers,
    /// which mostly write our own data back, excluded), with the biggest ones named.
    pub fn foreign(&self) -> (f64, String) {
        let mut named: Vec<(&str, f64)> = self
            .by_group
            .iter()
            .filter_map(|(g, s)| Some((g.strip_prefix("other: ")?, *s)))
            .filter(|(g, _)| !g.starts_with("kworker") && !g.starts_with("ksoftirq"))
            .collect();
        named.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total = named.iter().map(|(_, s)| s).sum();
        let names: Vec<String> = named
            .iter()
            .take(3)
            .map(|(g, s)| format!("{g} {s:.1} s"))
            .collect();
        (total, names.join(", "))
    }

    /// "parley server 12.3 s (61%), postgresql 6.1 s, …", biggest first; small "other"
    /// entries are summed.
    pub fn describe(&self, cores: usize) -> String {
        let mut groups: Vec<(String, f64)> = Vec::new();
        let mut other = 0.0;
        for (g, s) in &self.by_group {
            if g.starts_with("other: ") && *s < 0.5 {
                other += s;
            } else {
                groups.push((g.clone(), *s));
            }
        }
        if other >= 0.05 {
            groups.push(("other (small)".to_owned(), other));
        }
        groups.sort_by(|a, b| b.1.total_cmp(&a.1));
        let capacity = self.wall_s * cores as f64;
        let total: f64 = groups.iter().map(|(_, s)| s).sum();
        let parts: Vec<String> = groups
            .iter()
            .filter(|(_, s)| *s >= 0.05)
            .map(|(g, s)| format!("{g} {s:.1} s"))
            .collect();
        format!(
            "{} (total {total:.1} CPU-s of {capacity:.1} available in {:.1} s on {cores} cores)",
            parts.join(", "),
            self.wall_s
        )
    }
}
