//! Analytics for Parley.
//!
//! Events are recorded in the relational outbox ([`outbox::record`]) inside the transaction
//! of the change they describe, then a [`Shipper`] moves them in batches to an
//! [`AnalyticsStore`]: ClickHouse in production, an embedded SQLite file otherwise. Nothing is
//! lost while the store is down (rows stay in the outbox) and nothing is counted twice when a
//! batch is retried (store inserts are idempotent by event id).
//!
//! The billing events (`billing.*`) are also kept as typed rows from which both stores answer
//! the billing reports identically ([`billing`]; CSV in [`billing_csv`]).

pub mod billing;
pub mod billing_csv;
pub mod campaigns;
mod clickhouse_billing;
pub mod clickhouse_store;
mod clickhouse_usage;
mod embedded_billing;
pub mod embedded_store;
pub mod event;
pub mod outbox;
pub mod shipper;
pub mod store;

use std::path::Path;
use std::sync::Arc;

pub use billing::{
    BillingRecord, CampaignCost, Granularity, PricingDifference, ReconciliationOutcome,
    ReconciliationRow, UsageRow, WalletEntry, WalletKindTotal, WalletStatement,
};
pub use clickhouse_store::ClickHouseStore;
pub use embedded_store::EmbeddedStore;
pub use event::{Event, EventKind, StoredEvent};
pub use shipper::{Shipper, ShipperConfig};
pub use store::{AnalyticsStore, EventCount};
pub use tokio_util::sync::CancellationToken;

/// Where ClickHouse is, when the deployment has one.
#[derive(Clone, Debug)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Opens the configured store and brings its schema up to date: ClickHouse when configured,
/// else the embedded SQLite file at `embedded_path`.
pub async fn connect_store(
    clickhouse: Option<&ClickHouseConfig>,
    embedded_path: &Path,
) -> anyhow::Result<Arc<dyn AnalyticsStore>> {
    let store: Arc<dyn AnalyticsStore> = match clickhouse {
        Some(ch) => Arc::new(ClickHouseStore::new(
            &ch.url,
            &ch.database,
            ch.user.as_deref(),
            ch.password.as_deref(),
        )?),
        None => Arc::new(EmbeddedStore::open(embedded_path).await?),
    };
    store.migrate().await?;
    Ok(store)
}
