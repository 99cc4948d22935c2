//! A server running as its own OS process (the built `parley` binary), sharing the
//! database, Redis and ClickHouse of a test.

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use crate::{CLICKHOUSE_URL, JWT_SECRET, REDIS_URL, Shared, eventually};

/// The server binary beside the test binary (`scripts/test` builds it first).
pub fn server_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("parley");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p parley-api --bin parley` (scripts/test does)",
        binary.display()
    );
    binary
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server process; killed when dropped.
pub struct ProcessNode {
    pub port: u16,
    child: Child,
    _data_dir: tempfile::TempDir,
}

impl ProcessNode {
    /// Starts the binary on the shared services and waits until it serves.
    pub async fn start(shared: &Shared) -> Self {
        Self::start_with(shared, &[]).await
    }

    /// The same, with more environment variables.
    pub async fn start_with(shared: &Shared, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let data_dir = tempfile::tempdir().unwrap();
        let child = Command::new(server_binary())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .current_dir(data_dir.path())
            .env("PARLEY_PORT", port.to_string())
            .env("PARLEY_DATA_DIR", data_dir.path())
            .env("DATABASE_URL", shared.database_url.as_deref().unwrap())
            .env("REDIS_URL", REDIS_URL)
            .env("REDIS_CHANNEL_PREFIX", &shared.redis_prefix)
            .env("CLICKHOUSE_URL", CLICKHOUSE_URL)
            .env(
                "CLICKHOUSE_DATABASE",
                shared.clickhouse_database.as_deref().unwrap(),
            )
            .env("JWT_SECRET", JWT_SECRET)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the server binary starts");
        let health = format!("http://127.0.0.1:{port}/healthz");
        eventually(
            Duration::from_secs(30),
            "the server process to serve",
            || async {
                reqwest::get(&health)
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
        Self {
            port,
            child,
            _data_dir: data_dir,
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/graphql/ws", self.port)
    }

    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}
