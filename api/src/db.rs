//! The relational database: PostgreSQL in production, SQLite embedded.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::Settings;

/// Counts the statements a connection runs (tests check lists stay free of N+1 queries)
/// and records their latency.
#[derive(Clone, Default)]
pub struct StatementCounter(Arc<AtomicU64>);

impl StatementCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// One statement run, taking `elapsed`.
    pub fn record(&self, elapsed: Duration) {
        self.0.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!("db_statement_duration_seconds").record(elapsed.as_secs_f64());
    }
}

pub async fn connect(
    settings: &Settings,
) -> anyhow::Result<(DatabaseConnection, StatementCounter)> {
    let url = settings.database_url();
    if settings.is_embedded_database() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    }
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(settings.database_max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5))
        // The pool already tests a connection as it comes back; testing it again before
        // each statement cost a round trip and about a tenth of the server's time on a
        // contacts page. A connection dropped while idle fails one statement and leaves.
        .test_before_acquire(false)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            // WAL lets readers go on while one writer writes; the busy timeout queues
            // writers instead of failing them.
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    let mut db = Database::connect(options)
        .await
        .context("connecting to the database")?;
    let counter = StatementCounter::default();
    let count = counter.clone();
    db.set_metric_callback(move |info| count.record(info.elapsed));
    if settings.run_migrations {
        Migrator::up(&db, None)
            .await
            .context("running database migrations")?;
    }
    Ok((db, counter))
}
