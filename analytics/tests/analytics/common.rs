//! Fresh databases per test and store doubles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use migration::{Migrator, MigratorTrait};
use parley_analytics::{
    AnalyticsStore, CampaignCost, ClickHouseStore, Event, EventCount, Granularity,
    PricingDifference, ReconciliationRow, StoredEvent, UsageRow, WalletStatement,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

pub fn postgres_url() -> String {
    std::env::var("PARLEY_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn clickhouse_url() -> String {
    std::env::var("PARLEY_TEST_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// A PostgreSQL database of its own, with the relational schema migrated.
pub struct PgDb {
    pub db: DatabaseConnection,
    pub url: String,
    name: String,
}

impl PgDb {
    pub async fn new() -> Self {
        let name = format!("parley_an_{}", Uuid::new_v4().simple());
        let admin = Database::connect(format!("{}/postgres", postgres_url()))
            .await
            .expect("connect to PostgreSQL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.unwrap();
        let url = format!("{}/{name}", postgres_url());
        let db = Database::connect(&url)
            .await
            .expect("connect to test database");
        Migrator::up(&db, None)
            .await
            .expect("relational migrations");
        Self { db, url, name }
    }

    /// Another connection pool, as a second API process would have.
    pub async fn connect_again(&self) -> DatabaseConnection {
        Database::connect(&self.url).await.unwrap()
    }

    pub async fn drop(self) {
        self.db.close().await.unwrap();
        let admin = Database::connect(format!("{}/postgres", postgres_url()))
            .await
            .unwrap();
        admin
            .execute_unprepared(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
        admin.close().await.unwrap();
    }
}

/// The relational database of the default (single process) mode.
pub async fn sqlite_outbox() -> DatabaseConnection {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

/// A ClickHouse database of its own, migrated.
pub struct ChDb {
    pub store: Arc<ClickHouseStore>,
}

impl ChDb {
    pub async fn new() -> Self {
        let name = format!("parley_an_{}", Uuid::new_v4().simple());
        let store = ClickHouseStore::new(&clickhouse_url(), &name, Some("default"), None).unwrap();
        store.migrate().await.expect("ClickHouse migrations");
        Self {
            store: Arc::new(store),
        }
    }

    /// A raw client on the test database, to look under the store's hood.
    pub fn client(&self) -> clickhouse::Client {
        clickhouse::Client::default()
            .with_url(clickhouse_url())
            .with_database(self.store.database())
            .with_validation(false)
    }

    pub async fn drop(self) {
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.store.database());
        clickhouse::Client::default()
            .with_url(clickhouse_url())
            .query(&sql)
            .execute()
            .await
            .unwrap();
    }
}

pub fn event_at(project_id: Uuid, kind: &str, at: DateTime<Utc>) -> Event {
    let mut event = Event::new(
        project_id,
        kind,
        Some(Uuid::new_v4()),
        serde_json::json!({ "note": "it's \"quoted\" ünïcode" }),
    );
    event.occurred_at = at;
    event
}

pub fn total(counts: &[EventCount]) -> u64 {
    counts.iter().map(|c| c.count).sum()
}

/// Wraps a store to count what it was sent, slow it down, or make it fail.
pub struct SpyStore {
    inner: Arc<dyn AnalyticsStore>,
    delay: Duration,
    fail_next: AtomicUsize,
    pub attempts: AtomicUsize,
    /// How many times each event was successfully inserted.
    pub inserted: Mutex<HashMap<Uuid, usize>>,
}

impl SpyStore {
    pub fn new(inner: Arc<dyn AnalyticsStore>) -> Self {
        Self {
            inner,
            delay: Duration::ZERO,
            fail_next: AtomicUsize::new(0),
            attempts: AtomicUsize::new(0),
            inserted: Mutex::default(),
        }
    }

    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn failing_first(self, failures: usize) -> Self {
        self.fail_next.store(failures, Ordering::SeqCst);
        self
    }

    pub fn inserted(&self) -> HashMap<Uuid, usize> {
        self.inserted.lock().unwrap().clone()
    }
}

#[async_trait]
impl AnalyticsStore for SpyStore {
    async fn migrate(&self) -> anyhow::Result<()> {
        self.inner.migrate().await
    }

    async fn insert_stored(&self, events: &[StoredEvent]) -> anyhow::Result<()> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let fail = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            anyhow::bail!("injected store failure");
        }
        tokio::time::sleep(self.delay).await;
        self.inner.insert_stored(events).await?;
        let mut inserted = self.inserted.lock().unwrap();
        for event in events {
            *inserted.entry(event.event_id).or_default() += 1;
        }
        Ok(())
    }

    async fn ping(&self) -> anyhow::Result<()> {
        self.inner.ping().await
    }

    async fn event_counts(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<EventCount>> {
        self.inner.event_counts(project_id, from, to).await
    }

    async fn total_events(&self, project_id: Uuid) -> anyhow::Result<u64> {
        self.inner.total_events(project_id).await
    }

    async fn usage_report(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
    ) -> anyhow::Result<Vec<UsageRow>> {
        self.inner
            .usage_report(project_id, from, to, granularity)
            .await
    }

    async fn campaign_costs(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<CampaignCost>> {
        self.inner.campaign_costs(project_id, from, to).await
    }

    async fn wallet_statement(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<WalletStatement> {
        self.inner.wallet_statement(project_id, from, to).await
    }

    async fn pricing_reconciliation(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<ReconciliationRow>> {
        self.inner
            .pricing_reconciliation(project_id, from, to)
            .await
    }

    async fn pricing_differences(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<PricingDifference>> {
        self.inner
            .pricing_differences(project_id, from, to, limit)
            .await
    }

    async fn campaign_timeline(
        &self,
        project_id: Uuid,
        campaign_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: parley_analytics::campaigns::Bucket,
    ) -> anyhow::Result<Vec<parley_analytics::campaigns::TimelineRow>> {
        self.inner
            .campaign_timeline(project_id, campaign_id, from, to, bucket)
            .await
    }
}
