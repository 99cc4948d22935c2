//! ClickHouse store (production).
//!
//! The SQL must run on the ClickHouse 18.16 used in tests as well as on current servers:
//! plain `DateTime('UTC')`, `UUID`, `ReplacingMergeTree`, no `DateTime64`/`Map`/
//! `LowCardinality`, no server-side query parameters (`{name:Type}`), and no
//! `ADD COLUMN IF NOT EXISTS`. Rows are sent as plain `RowBinary` (validation off), because
//! 18.16 knows no `RowBinaryWithNamesAndTypes`.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::billing::{
    CampaignCost, Granularity, PricingDifference, ReconciliationRow, UsageRow, WalletStatement,
};
use crate::clickhouse_billing::CREATE_BILLING_EVENTS;
use crate::clickhouse_usage::CREATE_BILLING_USAGE_HOURLY;
use crate::store::{from_store_secs, store_secs};
use crate::{AnalyticsStore, EventCount, StoredEvent};

const EVENTS_TABLE: &str = "events";

/// How long one request may take before the shipper gives up and retries the batch later
/// (it holds outbox row locks meanwhile, so it must not hang forever).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Schema versions, applied once each in order and recorded in `schema_migrations`.
/// Append only; never edit an applied statement. Statements should be idempotent where the
/// 18.16 syntax allows it, as two processes starting together may both apply one.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        // ReplacingMergeTree collapses re-sent copies of an event (same sorting key) on merge;
        // queries still count `uniqExact(event_id)` so copies never count before a merge.
        "CREATE TABLE IF NOT EXISTS events (
        event_id UUID,
        project_id UUID,
        kind String,
        actor_id Nullable(UUID),
        occurred_at DateTime('UTC'),
        payload String
    ) ENGINE = ReplacingMergeTree()
    PARTITION BY toYYYYMM(occurred_at)
    ORDER BY (project_id, kind, occurred_at, event_id)",
    ),
    // The typed billing rows the billing reports read (clickhouse_billing.rs).
    (2, CREATE_BILLING_EVENTS),
    // The usage report's hourly snapshots (clickhouse_usage.rs).
    (3, CREATE_BILLING_USAGE_HOURLY),
];

const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
        version UInt32,
        applied_at DateTime('UTC')
    ) ENGINE = ReplacingMergeTree()
    ORDER BY version";

#[derive(Row, Serialize)]
struct EventRow<'a> {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    project_id: Uuid,
    kind: &'a str,
    #[serde(with = "clickhouse::serde::uuid::option")]
    actor_id: Option<Uuid>,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    occurred_at: DateTime<Utc>,
    /// The outbox's text, as it is.
    payload: &'a str,
}

impl<'a> From<&'a StoredEvent> for EventRow<'a> {
    fn from(event: &'a StoredEvent) -> Self {
        Self {
            event_id: event.event_id,
            project_id: event.project_id,
            kind: &event.kind,
            actor_id: event.actor_id,
            occurred_at: from_store_secs(store_secs(event.occurred_at)),
            payload: &event.payload,
        }
    }
}

#[derive(Row, Deserialize)]
struct CountRow {
    #[serde(with = "clickhouse::serde::chrono::date")]
    day: NaiveDate,
    kind: String,
    events: u64,
}

pub struct ClickHouseStore {
    /// Without a database: creating the database must work before it exists.
    server: Client,
    /// Bound to the analytics database.
    pub(crate) client: Client,
    database: String,
    timeout: Duration,
}

impl ClickHouseStore {
    /// A store over the HTTP interface at `url` (e.g. `http://127.0.0.1:8123`), keeping its
    /// tables in `database` (created by [`AnalyticsStore::migrate`]).
    pub fn new(
        url: &str,
        database: &str,
        user: Option<&str>,
        password: Option<&str>,
    ) -> anyhow::Result<Self> {
        // The name is spliced into DDL, so only plain identifiers are accepted.
        let valid = database
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!("invalid ClickHouse database name {database:?}");
        }
        let mut server = Client::default().with_url(url).with_validation(false);
        if let Some(user) = user {
            server = server.with_user(user);
        }
        if let Some(password) = password {
            server = server.with_password(password);
        }
        let client = server.clone().with_database(database);
        Ok(Self {
            server,
            client,
            database: database.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Overrides the per-request timeout (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub(crate) async fn timed<T>(
        &self,
        what: &'static str,
        fut: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> anyhow::Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result.with_context(|| format!("ClickHouse {what} failed")),
            Err(_) => bail!("ClickHouse {what} timed out after {:?}", self.timeout),
        }
    }

    async fn applied_versions(&self) -> anyhow::Result<Vec<u32>> {
        self.timed(
            "reading schema_migrations",
            self.client
                .query("SELECT DISTINCT version FROM schema_migrations")
                .fetch_all::<u32>(),
        )
        .await
    }
}

#[async_trait]
impl AnalyticsStore for ClickHouseStore {
    async fn migrate(&self) -> anyhow::Result<()> {
        let create_db = format!("CREATE DATABASE IF NOT EXISTS `{}`", self.database);
        self.timed("creating database", self.server.query(&create_db).execute())
            .await?;
        self.timed(
            "creating schema_migrations",
            self.client.query(CREATE_SCHEMA_MIGRATIONS).execute(),
        )
        .await?;
        let applied = self.applied_versions().await?;
        for &(version, sql) in MIGRATIONS {
            if applied.contains(&version) {
                continue;
            }
            tracing::info!(version, database = %self.database, "applying ClickHouse migration");
            // query_raw: the statements are sent verbatim (no `?` placeholders in DDL).
            self.timed("migration", self.client.query_raw(sql).execute())
                .await
                .with_context(|| format!("ClickHouse migration {version}"))?;
            self.timed(
                "recording migration",
                self.client
                    .query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, now())")
                    .bind(version)
                    .execute(),
            )
            .await?;
        }
        Ok(())
    }

    async fn insert_stored(&self, events: &[StoredEvent]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        // One INSERT per batch: ClickHouse wants few large inserts, not many small ones.
        self.timed("insert", async {
            let mut insert = self.client.insert::<EventRow<'_>>(EVENTS_TABLE).await?;
            for event in events {
                insert.write(&EventRow::from(event)).await?;
            }
            insert.end().await
        })
        .await?;
        // After `events`: a failure here leaves the batch unshipped, and its retry skips
        // what each table already holds.
        self.insert_billing(events).await
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let one = self
            .timed("ping", self.server.query("SELECT 1").fetch_one::<u8>())
            .await?;
        if one != 1 {
            bail!("ClickHouse ping answered {one}");
        }
        Ok(())
    }

    async fn event_counts(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<EventCount>> {
        let rows = self
            .timed(
                "event_counts",
                self.client
                    .query(
                        "SELECT toDate(occurred_at) AS day, kind, uniqExact(event_id) AS events \
                         FROM events \
                         WHERE project_id = toUUID(?) \
                           AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?) \
                         GROUP BY day, kind \
                         ORDER BY day, kind",
                    )
                    .bind(project_id.to_string())
                    .bind(store_secs(from))
                    .bind(store_secs(to))
                    .fetch_all::<CountRow>(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| EventCount {
                day: row.day,
                kind: row.kind,
                count: row.events,
            })
            .collect())
    }

    async fn total_events(&self, project_id: Uuid) -> anyhow::Result<u64> {
        self.timed(
            "total_events",
            self.client
                .query("SELECT uniqExact(event_id) FROM events WHERE project_id = toUUID(?)")
                .bind(project_id.to_string())
                .fetch_one::<u64>(),
        )
        .await
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
