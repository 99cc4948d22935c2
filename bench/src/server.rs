//! The release server as a child process on a free loopback port. Several can run at once
//! on the same database and Redis (the live-chat benchmark's two nodes), each under its
//! own name.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    pub pid: u32,
    pub base: String,
    pub log: PathBuf,
    pid_file: PathBuf,
}

pub struct Config<'a> {
    pub binary: &'a Path,
    pub work_dir: &'a Path,
    pub database_url: String,
    pub clickhouse_database: String,
    pub jwt_secret: String,
    /// "" for `server.log`, `server.pid` and `data/`; else `server-<name>.log`, … .
    pub name: &'a str,
    /// More environment variables (e.g. `WHATSAPP_APP_SECRET`).
    pub env: Vec<(&'static str, String)>,
}

impl Config<'_> {
    fn file(&self, stem: &str, extension: &str) -> String {
        match self.name {
            "" => format!("{stem}{extension}"),
            name => format!("{stem}-{name}{extension}"),
        }
    }
}

/// Makes the kernel kill the child if this process dies without cleaning up (SIGKILL, a
/// crash): servers, subscribers and the like never outlive a run.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Server {
    pub async fn start(config: Config<'_>) -> anyhow::Result<Self> {
        if !config.binary.is_file() {
            bail!(
                "{} is missing: cargo build --release -p parley-api --bin parley",
                config.binary.display()
            );
        }
        // Absolute: the server runs in the work directory.
        let binary = std::fs::canonicalize(config.binary)?;
        let port = free_port()?;
        let log_path = config.work_dir.join(config.file("server", ".log"));
        let log = std::fs::File::create(&log_path)?;
        let data_dir = config.work_dir.join(config.file("data", ""));
        std::fs::create_dir_all(&data_dir)?;
        let mut cmd = Command::new(&binary);
        // A clean environment (and a working directory without a .env file): only what
        // is set here configures the server.
        cmd.env_clear()
            .current_dir(config.work_dir)
            .env("PARLEY_HOST", "127.0.0.1")
            .env("PARLEY_PORT", port.to_string())
            .env("PARLEY_DATA_DIR", &data_dir)
            .env("DATABASE_URL", &config.database_url)
            .env("REDIS_URL", "redis://127.0.0.1:6379")
            .env(
                "REDIS_CHANNEL_PREFIX",
                format!("bench-{}", config.clickhouse_database),
            )
            .env("CLICKHOUSE_URL", "http://127.0.0.1:8123")
            .env("CLICKHOUSE_DATABASE", &config.clickhouse_database)
            .env("JWT_SECRET", &config.jwt_secret)
            .env("IMPORT_MAX_BYTES", "500000000")
            // The load comes from one address and a few keys: measured, not throttled.
            .env("RATE_LIMIT_PER_IP", "0")
            .env("RATE_LIMIT_PER_API_KEY", "0")
            .env("RUST_LOG", "warn")
            .envs(config.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().context("starting the server")?;
        let pid = child.id().context("the server exited at once")?;
        // For the script's exit trap (scripts/bench), in case this process is killed.
        let pid_file = config.work_dir.join(config.file("server", ".pid"));
        std::fs::write(&pid_file, pid.to_string())?;
        let mut server = Self {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
            log: log_path,
            pid_file,
        };
        server.wait_healthy().await?;
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let started = Instant::now();
        // Migrations run at start-up: allow two minutes, polling every 100 ms.
        while started.elapsed() < Duration::from_secs(120) {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the server exited ({status}) during start-up:\n{}",
                    tail(&self.log)
                );
            }
            if let Ok(r) = http.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "the server was not healthy after 120 s:\n{}",
            tail(&self.log)
        )
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.kill().await;
            }
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

pub fn log_tail(work_dir: &Path) -> String {
    tail(&work_dir.join("server.log"))
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
