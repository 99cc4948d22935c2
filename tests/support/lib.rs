//! Test harness: starts the real server on a random port against real services, with a
//! fresh database per test, and talks to it like a client over HTTP and WebSocket.

pub mod client;
pub mod databases;
pub mod fake_graph;
pub mod process;
pub mod services;
pub mod whatsapp;
pub mod ws;

use std::time::Duration;

use parley_api::{Application, RunningApp, Settings};
use secrecy::SecretString;
use uuid::Uuid;

pub use client::{Gql, Owner};

/// The key the test servers sign with, so tests can forge tokens on purpose.
pub const JWT_SECRET: &str = "test-signing-key-test-signing-key-0123456789";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const CLICKHOUSE_URL: &str = "http://127.0.0.1:8123";

/// Which services a test server uses.
#[derive(Clone, Debug)]
pub enum Mode {
    /// PostgreSQL, Redis and ClickHouse, as in production.
    Production,
    /// SQLite, the in-process bus and the embedded analytics store, as `cargo run`.
    Embedded,
}

/// A running server and what it was started with.
pub struct TestApp {
    pub app: RunningApp,
    pub http: reqwest::Client,
    pub settings: Settings,
    _data_dir: tempfile::TempDir,
}

/// Test-specific names shared by servers that must see the same data (the cross-process
/// test starts two on one database and one Redis prefix).
#[derive(Clone, Debug)]
pub struct Shared {
    pub database_url: Option<String>,
    pub clickhouse_database: Option<String>,
    pub redis_prefix: String,
}

impl Shared {
    pub async fn fresh(mode: &Mode) -> Self {
        let token = Uuid::new_v4().simple().to_string();
        match mode {
            Mode::Production => Self {
                database_url: Some(databases::fresh_postgres().await),
                clickhouse_database: Some(format!("parley_test_{token}")),
                redis_prefix: format!("parley_test_{token}"),
            },
            Mode::Embedded => Self {
                database_url: None,
                clickhouse_database: None,
                redis_prefix: format!("parley_test_{token}"),
            },
        }
    }
}

pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RUST_LOG").is_some() {
            parley_api::observability::init_logging(parley_api::config::LogFormat::Pretty);
        }
    });
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_in(Mode::Production).await
    }

    pub async fn spawn_embedded() -> Self {
        Self::spawn_in(Mode::Embedded).await
    }

    pub async fn spawn_in(mode: Mode) -> Self {
        let shared = Shared::fresh(&mode).await;
        Self::spawn_with(mode, &shared, |_| {}).await
    }

    /// Starts a server; `adjust` may change any setting first.
    pub async fn spawn_with(
        mode: Mode,
        shared: &Shared,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        init_logs();
        let data_dir = tempfile::tempdir().expect("a temporary directory");
        let mut settings = Settings {
            port: 0,
            data_dir: data_dir.path().to_path_buf(),
            ..Settings::default()
        };
        settings.jwt.secret = Some(SecretString::from(JWT_SECRET));
        settings.analytics.flush_interval = Duration::from_millis(100);
        settings.graphql.connection_init_timeout = Duration::from_secs(2);
        settings.database_max_connections = 5;
        if let Mode::Production = mode {
            settings.database_url = shared.database_url.clone().map(SecretString::from);
            settings.redis_url = Some(SecretString::from(REDIS_URL));
            settings.redis_channel_prefix = shared.redis_prefix.clone();
            settings.clickhouse = Some(parley_api::config::ClickHouseSettings {
                url: CLICKHOUSE_URL.into(),
                database: shared
                    .clickhouse_database
                    .clone()
                    .expect("a ClickHouse database"),
                user: None,
                password: None,
            });
        }
        adjust(&mut settings);
        let app = Application::build(settings.clone())
            .await
            .expect("the server starts")
            .spawn();
        Self {
            app,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            settings,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql/ws", self.app.address)
    }

    /// A GraphQL request builder against this server.
    pub fn gql(&self, query: &str) -> Gql<'_> {
        Gql::new(self, query)
    }

    /// Polls an import with `query` (which takes `$id` and selects `contactImport` with its
    /// `status`) until it has ended; returns the job. Fails the test after `timeout`.
    pub async fn import_when_ended(
        &self,
        who: &Owner,
        query: &str,
        id: &str,
        timeout: Duration,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let job = self
                .gql(query)
                .as_member(who)
                .vars(serde_json::json!({ "id": id }))
                .data()
                .await["contactImport"]
                .clone();
            if job["status"] == "COMPLETED" || job["status"] == "FAILED" {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the import did not end: {job}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Counts rows straight from this server's ClickHouse database over its HTTP interface.
    pub async fn clickhouse_count(&self, sql: &str) -> u64 {
        let database = &self.settings.clickhouse.as_ref().unwrap().database;
        let text = self
            .http
            .post(format!("{CLICKHOUSE_URL}/?database={database}"))
            .body(sql.to_owned())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("ClickHouse said: {text}"))
    }
}

/// The contact names of a `contacts { edges { node { name } } }` answer, sorted.
pub fn sorted_contact_names(data: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = data["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Waits until `check` holds, polling; fails the test after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
