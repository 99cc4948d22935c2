//! Private instances of the real services (Redis, PostgreSQL, ClickHouse) that one test
//! owns: started on free ports with their data in a temporary directory, so that a test
//! can stop and restart them without disturbing the shared ones other tests use.
//!
//! PostgreSQL and ClickHouse refuse to run as root; when the tests run as root, they run
//! as the `postgres` and `clickhouse` users that their Debian packages create.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::process::free_port;

/// The uid and gid of a system user, from `/etc/passwd`.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || fields[0] != name {
            return None;
        }
        Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
    })
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A command run as `user` when the tests run as root (as themselves otherwise).
fn command_as(user: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    if running_as_root() {
        let (uid, gid) = system_user(user).unwrap_or_else(|| panic!("no system user {user}"));
        command.uid(uid).gid(gid);
    }
    command
}

/// Gives a directory to `user` (when running as root), so the service can write there.
fn give_to(user: &str, dir: &Path) {
    if running_as_root() {
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{user}:{user}"))
            .arg(dir)
            .status()
            .expect("chown runs");
        assert!(status.success(), "chown {}", dir.display());
    }
}

fn wait_for_port(port: u16, up: bool, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let listening = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if listening == up {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not {} in time",
            if up { "come up" } else { "go down" }
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM (or SIGKILL) to a child and reaps it.
fn stop_child(child: &mut Child, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private `redis-server` without persistence.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        redis.start_again();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port (after [`Self::stop`]).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "Redis is already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_for_port(self.port, true, "Redis", Duration::from_secs(20));
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, "KILL");
            wait_for_port(self.port, false, "Redis", Duration::from_secs(20));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private PostgreSQL cluster (trust authentication) in a temporary directory.
pub struct PrivatePostgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    running: bool,
}

impl PrivatePostgres {
    /// Creates the cluster, starts it and creates the `parley` database (not migrated:
    /// the server migrates it on start-up).
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed under /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("an initdb");
        let dir = tempfile::tempdir().unwrap();
        give_to("postgres", dir.path());
        let data = dir.path().join("data");
        let output = command_as("postgres", bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("initdb runs");
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut postgres = Self {
            port: free_port(),
            bin,
            dir,
            running: false,
        };
        postgres.start_again();
        let output = command_as("postgres", postgres.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &postgres.port.to_string()])
            .args(["-U", "postgres", "parley"])
            .output()
            .expect("createdb runs");
        assert!(
            output.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        postgres
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/parley", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let output = command_as("postgres", self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(
            output.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the cluster again on the same port (after [`Self::stop`]).
    pub fn start_again(&mut self) {
        assert!(!self.running, "PostgreSQL is already running");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        self.pg_ctl(&[
            "-w",
            "-t",
            "60",
            "-o",
            &options,
            "-l",
            log.to_str().unwrap(),
            "start",
        ]);
        self.running = true;
        wait_for_port(self.port, true, "PostgreSQL", Duration::from_secs(30));
    }

    /// Stops it in fast mode: sessions are ended, open transactions roll back.
    pub fn stop(&mut self) {
        if self.running {
            self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]);
            self.running = false;
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = command_as("postgres", self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-w", "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A private ClickHouse server (Debian's `clickhouse-server`) with its own ports, paths
/// and configuration.
pub struct PrivateClickHouse {
    pub http_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateClickHouse {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("parley-clickhouse")
            .tempdir()
            .unwrap();
        let root = dir.path().display().to_string();
        let http_port = free_port();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{root}/server.log</log><errorlog>{root}/server.err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <interserver_http_port>{interserver}</interserver_http_port>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>50</max_concurrent_queries>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <mark_cache_size>67108864</mark_cache_size>
  <path>{root}/data/</path>
  <tmp_path>{root}/tmp/</tmp_path>
  <user_files_path>{root}/user_files/</user_files_path>
  <format_schema_path>{root}/format_schemas/</format_schema_path>
  <users_config>{root}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mlock_executable>false</mlock_executable>
</yandex>
"#,
            tcp = free_port(),
            interserver = free_port(),
        );
        std::fs::write(dir.path().join("config.xml"), config).unwrap();
        std::fs::copy(
            "/etc/clickhouse-server/users.xml",
            dir.path().join("users.xml"),
        )
        .expect("ClickHouse's users.xml");
        // The temporary directory is private to its creator; the server reads it.
        let mut permissions = std::fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(dir.path(), permissions).unwrap();
        give_to("clickhouse", dir.path());
        let mut clickhouse = Self {
            http_port,
            dir,
            child: None,
        };
        clickhouse.start_again();
        clickhouse
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// Starts it again on the same ports and data (after [`Self::stop`]).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "ClickHouse is already running");
        let child = command_as("clickhouse", "/usr/sbin/clickhouse-server")
            .arg(format!(
                "--config-file={}",
                self.dir.path().join("config.xml").display()
            ))
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server starts");
        self.child = Some(child);
        let ping = format!("{}/ping", self.url());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = Command::new("curl")
                .args(["-fsS", "--max-time", "1", &ping])
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return;
            }
            assert!(Instant::now() < deadline, "ClickHouse did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, "TERM");
            wait_for_port(self.http_port, false, "ClickHouse", Duration::from_secs(20));
        }
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, "KILL");
        }
    }
}
