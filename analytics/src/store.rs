//! The analytics store interface shared by ClickHouse (production) and the embedded SQLite
//! store (default mode).

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::billing::{
    CampaignCost, Granularity, PricingDifference, ReconciliationRow, UsageRow, WalletStatement,
};
use crate::{Event, StoredEvent};

/// Number of distinct events of one kind on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventCount {
    pub day: NaiveDate,
    pub kind: String,
    pub count: u64,
}

/// Where shipped events end up and are queried from.
///
/// Both implementations keep `occurred_at` at whole-second precision (ClickHouse `DateTime`),
/// and compare query bounds at that precision too, so they answer identically.
#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Creates or upgrades the store's schema. Safe to run on every start.
    async fn migrate(&self) -> anyhow::Result<()>;

    /// Stores a batch as the outbox holds it. Idempotent by `event_id`: re-sending a batch
    /// (after a crash between the insert and the outbox's commit) never counts an event twice.
    async fn insert_stored(&self, events: &[StoredEvent]) -> anyhow::Result<()>;

    /// Stores a batch of events built in memory (their payloads written out first).
    async fn insert(&self, events: &[Event]) -> anyhow::Result<()> {
        let stored: Vec<StoredEvent> = events.iter().map(StoredEvent::from).collect();
        self.insert_stored(&stored).await
    }

    /// Checks the store is reachable.
    async fn ping(&self) -> anyhow::Result<()>;

    /// Distinct events per UTC day and kind with `from <= occurred_at < to`, sorted by day
    /// then kind.
    async fn event_counts(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<EventCount>>;

    /// Distinct events ever stored for the project.
    async fn total_events(&self, project_id: Uuid) -> anyhow::Result<u64>;

    // Billing reports (billing.rs), over the `billing.*` events with
    // `from <= occurred_at < to`. Each returns only `project_id`'s rows.

    /// Usage per period (UTC day or month), pricing model, category, country and currency,
    /// net of refunds, sorted by period, category, country, model, currency. Groups that net
    /// to nothing (no messages, no amount) are left out.
    async fn usage_report(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
    ) -> anyhow::Result<Vec<UsageRow>>;

    /// Cost per campaign (messages without a campaign are left out), highest amount first,
    /// then by campaign id.
    async fn campaign_costs(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<CampaignCost>>;

    /// The wallet ledger of the period with its opening and closing balances.
    async fn wallet_statement(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<WalletStatement>;

    /// Messages charged in the period (net of refunds) per reconciliation outcome with
    /// Meta's latest pricing object, in the outcome's order.
    async fn pricing_reconciliation(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<ReconciliationRow>>;

    /// The first `limit` messages of the period, by id, whose outcome is not `MATCH`.
    async fn pricing_differences(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<PricingDifference>>;

    /// Campaign events per bucket and kind (`campaign.sent`, `campaign.delivered`, ...) of
    /// one campaign, `from <= occurred_at < to`, sorted by period then kind.
    async fn campaign_timeline(
        &self,
        project_id: Uuid,
        campaign_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: crate::campaigns::Bucket,
    ) -> anyhow::Result<Vec<crate::campaigns::TimelineRow>>;
}

/// `dt` as whole seconds since the epoch, clamped to ClickHouse `DateTime`'s range.
///
/// Both stores keep and compare times this way so they agree to the second; clamping keeps
/// one absurd timestamp from making a whole batch unshippable.
pub(crate) fn store_secs(dt: DateTime<Utc>) -> u32 {
    dt.timestamp().clamp(0, i64::from(u32::MAX)) as u32
}

/// Inverse of [`store_secs`].
pub(crate) fn from_store_secs(secs: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(i64::from(secs), 0).expect("u32 seconds are always in range")
}
