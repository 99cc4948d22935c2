//! `billing_events` in ClickHouse: the typed table, its exactly-once insert and the billing
//! report queries (called by the `AnalyticsStore` impl in `clickhouse_store.rs`).
//!
//! Same 18.16 constraints as the rest of the store: plain types, no `{name:Type}`
//! parameters (values are bound client-side with `?`), `ANY LEFT JOIN … USING`, no window
//! functions. UUIDs are read back as text (`toString`) and ordered as text, because
//! ClickHouse orders the UUID type differently from SQLite's text and both stores must
//! return the same order.

use std::collections::{BTreeMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::billing::{
    self, BillingRecord, CampaignCost, PricingDifference, ReconciliationOutcome, ReconciliationRow,
    WalletEntry, WalletStatement, non_empty,
};
use crate::clickhouse_usage::touched_hours;
use crate::store::{from_store_secs, store_secs};
use crate::{ClickHouseStore, StoredEvent};

pub(crate) const BILLING_TABLE: &str = "billing_events";

/// Migration 2: the typed billing table.
///
/// The sorting key starts with what every report filters on (project, kind, time), so a
/// report reads only its project's rows of its kinds in its window. `ReplacingMergeTree`
/// is a second line of defence only: the insert already skips stored event ids (see
/// [`ClickHouseStore::insert_billing`]), so reports use plain sums, never `FINAL`.
/// Absent ids are the nil UUID; Meta's unknown `billable` is -1.
pub(crate) const CREATE_BILLING_EVENTS: &str = "CREATE TABLE IF NOT EXISTS billing_events (
        event_id UUID,
        project_id UUID,
        kind String,
        occurred_at DateTime('UTC'),
        message_id UUID,
        contact_id UUID,
        campaign_id UUID,
        era String,
        model String,
        category String,
        country String,
        currency String,
        billable UInt8,
        free_reason String,
        opened_conversation UInt8,
        uses_free_tier UInt8,
        sign Int8,
        amount_micros Int64,
        meta_category String,
        meta_model String,
        meta_billable Int8,
        meta_type String,
        seq Int64,
        entry_kind String,
        balance_after_micros Int64,
        invoice_id UUID
    ) ENGINE = ReplacingMergeTree()
    PARTITION BY toYYYYMM(occurred_at)
    ORDER BY (project_id, kind, occurred_at, event_id)";

/// Event ids per existence lookup: 2,000 quoted UUIDs are ~80 KB of SQL, well under the
/// server's default `max_query_size` (256 KiB).
const LOOKUP_CHUNK: usize = 2_000;

pub(crate) const CHARGE_KINDS: &str = "kind IN ('billing.charged', 'billing.refunded')";

/// The columns of `billing_events`, in RowBinary (field order = the INSERT's column list).
#[derive(Row, Serialize)]
pub(crate) struct BillingRow {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    project_id: Uuid,
    kind: String,
    #[serde(with = "clickhouse::serde::chrono::datetime")]
    occurred_at: DateTime<Utc>,
    #[serde(with = "clickhouse::serde::uuid")]
    message_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    contact_id: Uuid,
    #[serde(with = "clickhouse::serde::uuid")]
    campaign_id: Uuid,
    era: String,
    model: String,
    category: String,
    country: String,
    currency: String,
    billable: u8,
    free_reason: String,
    opened_conversation: u8,
    uses_free_tier: u8,
    sign: i8,
    amount_micros: i64,
    meta_category: String,
    meta_model: String,
    meta_billable: i8,
    meta_type: String,
    seq: i64,
    entry_kind: String,
    balance_after_micros: i64,
    #[serde(with = "clickhouse::serde::uuid")]
    invoice_id: Uuid,
}

impl From<BillingRecord> for BillingRow {
    fn from(r: BillingRecord) -> Self {
        Self {
            occurred_at: r.occurred_at(),
            event_id: r.event_id,
            project_id: r.project_id,
            kind: r.kind,
            message_id: r.message_id,
            contact_id: r.contact_id,
            campaign_id: r.campaign_id,
            era: r.era,
            model: r.model,
            category: r.category,
            country: r.country,
            currency: r.currency,
            billable: r.billable,
            free_reason: r.free_reason,
            opened_conversation: r.opened_conversation,
            uses_free_tier: r.uses_free_tier,
            sign: r.sign,
            amount_micros: r.amount_micros,
            meta_category: r.meta_category,
            meta_model: r.meta_model,
            meta_billable: r.meta_billable,
            meta_type: r.meta_type,
            seq: r.seq,
            entry_kind: r.entry_kind,
            balance_after_micros: r.balance_after_micros,
            invoice_id: r.invoice_id,
        }
    }
}

#[derive(Row, Deserialize)]
struct CampaignSql {
    campaign_id: String,
    currency: String,
    messages: i64,
    billable_messages: i64,
    amount_micros: i64,
}

#[derive(Row, Deserialize)]
struct BalancesSql {
    opening: i64,
    closing: i64,
    currency: String,
}

#[derive(Row, Deserialize)]
struct WalletSql {
    seq: i64,
    at: u32,
    entry_kind: String,
    amount_micros: i64,
    balance_after_micros: i64,
    currency: String,
    message_id: String,
    invoice_id: String,
    campaign_id: String,
}

#[derive(Row, Deserialize)]
struct OutcomeSql {
    outcome: String,
    currency: String,
    messages: u64,
    amount_micros: i64,
}

#[derive(Row, Deserialize)]
struct DifferenceSql {
    message_id: String,
    outcome: String,
    category: String,
    billable: u8,
    amount_micros: i64,
    currency: String,
    priced: u8,
    meta_category: String,
    meta_model: String,
    meta_billable: i8,
    meta_type: String,
}

fn uuid(text: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(text).with_context(|| format!("bad UUID {text:?} from ClickHouse"))
}

fn outcome(text: &str) -> anyhow::Result<ReconciliationOutcome> {
    ReconciliationOutcome::parse(text).with_context(|| format!("unknown outcome {text:?}"))
}

/// One row per message charged (net) in the window, with our figures, Meta's latest
/// pricing object (`priced` = 0 when there is none) and the outcome. Bind: project, from,
/// to, project, meta lower bound, project, from, to.
///
/// Meta's latest is by `(occurred_at, event id as text)`: several status webhooks can
/// arrive within one second, and the tie must break the same way in SQLite. The outcome's
/// rules (in this order): no object → `NOT_PRICED_BY_META`; Meta's `billable` known and
/// different → `BILLABLE_DIFFERS`; Meta's category known and different →
/// `CATEGORY_DIFFERS`; else `MATCH`.
const PER_MESSAGE: &str = "
    SELECT message_id, category_, billable_, amount_, currency_,
           priced_, m_category, m_model, m_billable, m_type,
           multiIf(priced_ = 0, 'NOT_PRICED_BY_META',
                   m_billable >= 0 AND m_billable != billable_, 'BILLABLE_DIFFERS',
                   m_category != '' AND m_category != category_, 'CATEGORY_DIFFERS',
                   'MATCH') AS outcome_
    FROM (
        SELECT message_id,
               maxIf(category, sign > 0) AS category_,
               maxIf(billable, sign > 0) AS billable_,
               toInt64(sum(amount_micros)) AS amount_,
               max(currency) AS currency_
        FROM billing_events
        WHERE project_id = toUUID(?) AND kind IN ('billing.charged', 'billing.refunded')
          AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?)
        GROUP BY message_id
        HAVING sum(sign) > 0
    ) ANY LEFT JOIN (
        SELECT message_id,
               toUInt8(1) AS priced_,
               argMax(meta_category, (occurred_at, toString(event_id))) AS m_category,
               argMax(meta_model, (occurred_at, toString(event_id))) AS m_model,
               argMax(meta_billable, (occurred_at, toString(event_id))) AS m_billable,
               argMax(meta_type, (occurred_at, toString(event_id))) AS m_type
        FROM billing_events
        WHERE project_id = toUUID(?) AND kind = 'billing.meta_priced'
          AND occurred_at >= toDateTime(?)
          AND message_id IN (
              SELECT message_id FROM billing_events
              WHERE project_id = toUUID(?) AND kind IN ('billing.charged', 'billing.refunded')
                AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?))
        GROUP BY message_id
    ) USING message_id";

impl ClickHouseStore {
    /// Writes the batch's billing events to `billing_events`, each exactly once.
    ///
    /// Why a lookup instead of relying on `ReplacingMergeTree`: the shipper re-sends a
    /// batch after a crash between the store insert and the outbox update, and copies stay
    /// in the table until a merge that may never come (merges are not guaranteed), so
    /// every report would need `FINAL` or `uniqExact(event_id)`, which over a month of a
    /// large project (10M rows) is the difference between well under a second and several.
    /// Instead the insert asks which of the batch's event ids are already stored and
    /// writes only the others, so reports are plain sums. The lookup is bounded by
    /// project, kind and the batch's min/max `occurred_at`, i.e. by the table's sorting
    /// key, so it reads a few granules rather than the project's history.
    ///
    /// This is exact as long as one batch is not inserted by two writers at the same time:
    /// the PostgreSQL shipper locks its rows (`FOR UPDATE SKIP LOCKED`) until they are
    /// marked shipped, and the SQLite mode has one process and the embedded store. A copy
    /// that slipped through anyway would be collapsed by the next merge.
    ///
    /// A partly written earlier attempt (ClickHouse writes each partition's part on its
    /// own) is handled too: the ids that made it are found and skipped, the rest written.
    /// Then the usage report's hourly snapshots of the batch's hours are recomputed
    /// (clickhouse_usage.rs).
    pub(crate) async fn insert_billing(&self, events: &[StoredEvent]) -> anyhow::Result<()> {
        let mut seen = HashSet::new();
        let mut records: Vec<BillingRecord> = events
            .iter()
            .filter_map(BillingRecord::from_stored)
            .filter(|r| seen.insert(r.event_id))
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        let touched = touched_hours(&records);
        let stored = self.stored_billing_ids(&records).await?;
        records.retain(|r| !stored.contains(&r.event_id));
        if !records.is_empty() {
            self.timed("billing insert", async {
                let mut insert = self.client.insert::<BillingRow>(BILLING_TABLE).await?;
                for record in records {
                    insert.write(&BillingRow::from(record)).await?;
                }
                insert.end().await
            })
            .await?;
        }
        // Also when every row was already stored: the earlier attempt may have failed
        // before recomputing.
        self.refresh_usage_hours(touched).await
    }

    /// Which of `records`' event ids `billing_events` already holds.
    async fn stored_billing_ids(&self, records: &[BillingRecord]) -> anyhow::Result<HashSet<Uuid>> {
        // Per project: the time bounds and the ids (a batch may span several projects).
        let mut by_project: BTreeMap<Uuid, (u32, u32, Vec<Uuid>)> = BTreeMap::new();
        for r in records {
            let entry = by_project.entry(r.project_id).or_insert((
                r.occurred_at,
                r.occurred_at,
                Vec::new(),
            ));
            entry.0 = entry.0.min(r.occurred_at);
            entry.1 = entry.1.max(r.occurred_at);
            entry.2.push(r.event_id);
        }
        let kinds = billing::KINDS.map(|k| format!("'{k}'")).join(", ");
        let mut stored = HashSet::new();
        for (project_id, (min, max, ids)) in by_project {
            for chunk in ids.chunks(LOOKUP_CHUNK) {
                // Uuid's Display is hex and hyphens only: safe to splice into the SQL.
                let list = chunk
                    .iter()
                    .map(|id| format!("'{id}'"))
                    .collect::<Vec<_>>()
                    .join(",");
                let sql = format!(
                    "SELECT toString(event_id) FROM billing_events \
                     WHERE project_id = toUUID(?) AND kind IN ({kinds}) \
                       AND occurred_at >= toDateTime(?) AND occurred_at <= toDateTime(?) \
                       AND event_id IN ({list})"
                );
                let found = self
                    .timed(
                        "billing lookup",
                        self.client
                            .query(&sql)
                            .bind(project_id.to_string())
                            .bind(min)
                            .bind(max)
                            .fetch_all::<String>(),
                    )
                    .await?;
                for id in found {
                    stored.insert(uuid(&id)?);
                }
            }
        }
        Ok(stored)
    }

    pub(crate) async fn billing_campaigns(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<CampaignCost>> {
        let sql = format!(
            "SELECT toString(campaign_id) AS campaign, currency,
                    toInt64(sum(sign)), toInt64(sum(sign * billable)), toInt64(sum(amount_micros))
             FROM billing_events
             WHERE project_id = toUUID(?) AND {CHARGE_KINDS}
               AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?)
               AND campaign_id != toUUID('{}')
             GROUP BY campaign, currency",
            Uuid::nil()
        );
        let rows = self
            .timed(
                "campaign_costs",
                self.client
                    .query(&sql)
                    .bind(project_id.to_string())
                    .bind(store_secs(from))
                    .bind(store_secs(to))
                    .fetch_all::<CampaignSql>(),
            )
            .await?;
        let mut costs = rows
            .into_iter()
            .map(|r| {
                Ok(CampaignCost {
                    campaign_id: uuid(&r.campaign_id)?,
                    currency: r.currency,
                    messages: r.messages,
                    billable_messages: r.billable_messages,
                    amount_micros: r.amount_micros,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        billing::sort_campaigns(&mut costs);
        Ok(costs)
    }

    pub(crate) async fn billing_wallet(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<WalletStatement> {
        // argMax over an empty set is the type's default: 0 and "" when there is no entry.
        let balances = self
            .timed(
                "wallet balances",
                self.client
                    .query(
                        "SELECT toInt64(argMaxIf(balance_after_micros, seq, \
                                    occurred_at < toDateTime(?))),
                                toInt64(argMax(balance_after_micros, seq)),
                                argMax(currency, seq)
                         FROM billing_events
                         WHERE project_id = toUUID(?) AND kind = 'billing.wallet'
                           AND occurred_at < toDateTime(?)",
                    )
                    .bind(store_secs(from))
                    .bind(project_id.to_string())
                    .bind(store_secs(to))
                    .fetch_one::<BalancesSql>(),
            )
            .await?;
        let rows = self
            .timed(
                "wallet entries",
                self.client
                    .query(
                        "SELECT seq, toUInt32(occurred_at), entry_kind, amount_micros,
                                balance_after_micros, currency, toString(message_id),
                                toString(invoice_id), toString(campaign_id)
                         FROM billing_events
                         WHERE project_id = toUUID(?) AND kind = 'billing.wallet'
                           AND occurred_at >= toDateTime(?) AND occurred_at < toDateTime(?)
                         ORDER BY seq",
                    )
                    .bind(project_id.to_string())
                    .bind(store_secs(from))
                    .bind(store_secs(to))
                    .fetch_all::<WalletSql>(),
            )
            .await?;
        let entries = rows
            .into_iter()
            .map(|r| {
                Ok(WalletEntry {
                    seq: r.seq,
                    at: from_store_secs(r.at),
                    entry_kind: r.entry_kind,
                    amount_micros: r.amount_micros,
                    balance_after_micros: r.balance_after_micros,
                    currency: r.currency,
                    message_id: billing::non_nil(uuid(&r.message_id)?),
                    invoice_id: billing::non_nil(uuid(&r.invoice_id)?),
                    campaign_id: billing::non_nil(uuid(&r.campaign_id)?),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(billing::statement(
            balances.currency,
            balances.opening,
            balances.closing,
            entries,
        ))
    }

    pub(crate) async fn billing_reconciliation(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<ReconciliationRow>> {
        let sql = format!(
            "SELECT outcome_, currency_, count(), toInt64(sum(amount_)) \
             FROM ({PER_MESSAGE}) GROUP BY outcome_, currency_"
        );
        let rows = self
            .timed(
                "pricing_reconciliation",
                self.per_message(&sql, project_id, from, to)
                    .fetch_all::<OutcomeSql>(),
            )
            .await?;
        let mut rows = rows
            .into_iter()
            .map(|r| {
                Ok(ReconciliationRow {
                    outcome: outcome(&r.outcome)?,
                    currency: r.currency,
                    messages: r.messages,
                    amount_micros: r.amount_micros,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        billing::sort_reconciliation(&mut rows);
        Ok(rows)
    }

    pub(crate) async fn billing_differences(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<PricingDifference>> {
        let sql = format!(
            "SELECT toString(message_id) AS mid, outcome_, category_, billable_, amount_,
                    currency_, priced_, m_category, m_model, m_billable, m_type
             FROM ({PER_MESSAGE})
             WHERE outcome_ != 'MATCH'
             ORDER BY mid
             LIMIT {limit}"
        );
        let rows = self
            .timed(
                "pricing_differences",
                self.per_message(&sql, project_id, from, to)
                    .fetch_all::<DifferenceSql>(),
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                let priced = r.priced == 1;
                Ok(PricingDifference {
                    message_id: uuid(&r.message_id)?,
                    outcome: outcome(&r.outcome)?,
                    category: r.category,
                    billable: r.billable == 1,
                    amount_micros: r.amount_micros,
                    currency: r.currency,
                    meta_category: priced.then_some(r.meta_category).and_then(non_empty),
                    meta_model: priced.then_some(r.meta_model).and_then(non_empty),
                    meta_billable: (priced && r.meta_billable >= 0).then_some(r.meta_billable == 1),
                    meta_type: priced.then_some(r.meta_type).and_then(non_empty),
                })
            })
            .collect()
    }

    /// `sql` (which embeds [`PER_MESSAGE`]) with its parameters bound.
    fn per_message(
        &self,
        sql: &str,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> clickhouse::query::Query {
        let (project, from, to) = (project_id.to_string(), store_secs(from), store_secs(to));
        self.client
            .query(sql)
            .bind(project.as_str())
            .bind(from)
            .bind(to)
            .bind(project.as_str())
            .bind(from.saturating_sub(billing::META_LOOKBACK_SECS))
            .bind(project.as_str())
            .bind(from)
            .bind(to)
    }
}
