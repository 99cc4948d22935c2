//! The relational database: PostgreSQL in production, SQLite embedded.

use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::config::Settings;

pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
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
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            // WAL lets readers go on while one writer writes; the busy timeout queues
            // writers instead of failing them.
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    let db = Database::connect(options)
        .await
        .context("connecting to the database")?;
    if settings.run_migrations {
        Migrator::up(&db, None)
            .await
            .context("running database migrations")?;
    }
    Ok(db)
}
