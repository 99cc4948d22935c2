//! Embedded store over SQLite (default mode, and tests): same answers as ClickHouse without
//! running a ClickHouse server.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
};
use sea_orm::sqlx::{self, Row};
use uuid::Uuid;

use crate::billing::{
    CampaignCost, Granularity, PricingDifference, ReconciliationRow, UsageRow, WalletStatement,
};
use crate::embedded_billing;
use crate::store::store_secs;
use crate::{AnalyticsStore, EventCount, StoredEvent};

/// Schema versions, applied once each in order and recorded in `schema_migrations`.
/// Append only; never edit an applied statement.
/// One statement per string (prepared statements run one at a time).
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            // event_id as primary key makes `INSERT OR IGNORE` drop re-sent events. occurred_at
            // is whole seconds since the epoch, the precision ClickHouse keeps.
            "CREATE TABLE IF NOT EXISTS analytics_events (
            event_id TEXT PRIMARY KEY NOT NULL,
            project_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            actor_id TEXT,
            occurred_at INTEGER NOT NULL,
            payload TEXT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS analytics_events_project_time
            ON analytics_events (project_id, occurred_at)",
        ],
    ),
    (2, embedded_billing::CREATE_BILLING_EVENTS),
];

pub struct EmbeddedStore {
    pub(crate) pool: SqlitePool,
}

impl EmbeddedStore {
    /// Opens (creating if missing) the SQLite file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            // WAL lets dashboard reads run while the shipper writes.
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening embedded analytics store {}", path.display()))?;
        Ok(Self { pool })
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // Each connection to `:memory:` is its own database: keep exactly one, forever.
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .context("opening in-memory analytics store")?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl AnalyticsStore for EmbeddedStore {
    async fn migrate(&self) -> anyhow::Result<()> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY NOT NULL,
                applied_at INTEGER NOT NULL
            )",
        )
        .execute(&self.pool)
        .await?;
        for &(version, statements) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if applied.is_some() {
                continue;
            }
            tracing::info!(version, "applying embedded analytics migration");
            for sql in statements {
                sqlx::query(sql)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("embedded analytics migration {version}"))?;
            }
            sqlx::query(
                "INSERT OR IGNORE INTO schema_migrations (version, applied_at) VALUES (?, ?)",
            )
            .bind(version)
            .bind(Utc::now().timestamp())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn insert_stored(&self, events: &[StoredEvent]) -> anyhow::Result<()> {
        // One transaction per batch: all or nothing, and far faster than one per row.
        let mut tx = self.pool.begin().await?;
        for event in events {
            sqlx::query(
                "INSERT OR IGNORE INTO analytics_events \
                 (event_id, project_id, kind, actor_id, occurred_at, payload) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(event.event_id.to_string())
            .bind(event.project_id.to_string())
            .bind(&event.kind)
            .bind(event.actor_id.map(|id| id.to_string()))
            .bind(i64::from(store_secs(event.occurred_at)))
            .bind(&event.payload)
            .execute(&mut *tx)
            .await?;
            // In the same transaction: both tables have the event, or neither.
            embedded_billing::insert(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn event_counts(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<EventCount>> {
        let rows = sqlx::query(
            "SELECT date(occurred_at, 'unixepoch') AS day, kind, COUNT(*) AS events \
             FROM analytics_events \
             WHERE project_id = ? AND occurred_at >= ? AND occurred_at < ? \
             GROUP BY day, kind \
             ORDER BY day, kind",
        )
        .bind(project_id.to_string())
        .bind(i64::from(store_secs(from)))
        .bind(i64::from(store_secs(to)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let day: String = row.try_get("day")?;
                let count: i64 = row.try_get("events")?;
                Ok(EventCount {
                    day: NaiveDate::parse_from_str(&day, "%Y-%m-%d")
                        .with_context(|| format!("bad day {day:?} from SQLite"))?,
                    kind: row.try_get("kind")?,
                    count: u64::try_from(count)?,
                })
            })
            .collect()
    }

    async fn total_events(&self, project_id: Uuid) -> anyhow::Result<u64> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM analytics_events WHERE project_id = ?")
                .bind(project_id.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(count)?)
    }

    async fn usage_report(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
    ) -> anyhow::Result<Vec<UsageRow>> {
        self.billing_usage(project_id, from, to, granularity).await
    }

    async fn campaign_costs(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<CampaignCost>> {
        self.billing_campaigns(project_id, from, to).await
    }

    async fn wallet_statement(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<WalletStatement> {
        self.billing_wallet(project_id, from, to).await
    }

    async fn pricing_reconciliation(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<ReconciliationRow>> {
        self.billing_reconciliation(project_id, from, to).await
    }

    async fn pricing_differences(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<PricingDifference>> {
        self.billing_differences(project_id, from, to, limit).await
    }

    async fn campaign_timeline(
        &self,
        project_id: Uuid,
        campaign_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: crate::campaigns::Bucket,
    ) -> anyhow::Result<Vec<crate::campaigns::TimelineRow>> {
        self.campaign_timeline_impl(project_id, campaign_id, from, to, bucket)
            .await
    }
}
