//! `billing_events` in the embedded SQLite store: the same typed rows and the same report
//! answers as `clickhouse_billing.rs`, in SQLite's dialect. Keep the two in step: the
//! parity test compares every report of both stores.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sea_orm::sqlx::sqlite::SqliteRow;
use sea_orm::sqlx::{self, Row, Sqlite, Transaction};
use uuid::Uuid;

use crate::billing::{
    self, BillingRecord, CampaignCost, Granularity, PricingDifference, ReconciliationOutcome,
    ReconciliationRow, UsageRow, WalletEntry, WalletStatement, non_empty,
};
use crate::store::{from_store_secs, store_secs};
use crate::{EmbeddedStore, StoredEvent};

/// Migration 2: the typed billing table. `event_id` as primary key makes `INSERT OR IGNORE`
/// drop re-sent events; ids are lowercase hyphenated text, absent ones the nil UUID, as in
/// ClickHouse.
pub(crate) const CREATE_BILLING_EVENTS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS billing_events (
        event_id TEXT PRIMARY KEY NOT NULL,
        project_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        occurred_at INTEGER NOT NULL,
        message_id TEXT NOT NULL,
        contact_id TEXT NOT NULL,
        campaign_id TEXT NOT NULL,
        era TEXT NOT NULL,
        model TEXT NOT NULL,
        category TEXT NOT NULL,
        country TEXT NOT NULL,
        currency TEXT NOT NULL,
        billable INTEGER NOT NULL,
        free_reason TEXT NOT NULL,
        opened_conversation INTEGER NOT NULL,
        uses_free_tier INTEGER NOT NULL,
        sign INTEGER NOT NULL,
        amount_micros INTEGER NOT NULL,
        meta_category TEXT NOT NULL,
        meta_model TEXT NOT NULL,
        meta_billable INTEGER NOT NULL,
        meta_type TEXT NOT NULL,
        seq INTEGER NOT NULL,
        entry_kind TEXT NOT NULL,
        balance_after_micros INTEGER NOT NULL,
        invoice_id TEXT NOT NULL
    )",
    // Every report: one project's rows of some kinds in a window.
    "CREATE INDEX IF NOT EXISTS billing_events_project_kind_time
        ON billing_events (project_id, kind, occurred_at)",
    // Reconciliation: Meta's pricing objects of given messages.
    "CREATE INDEX IF NOT EXISTS billing_events_project_kind_message
        ON billing_events (project_id, kind, message_id)",
];

const CHARGE_KINDS: &str = "kind IN ('billing.charged', 'billing.refunded')";

/// Per message charged (net) in the window: our figures, Meta's latest object and the
/// outcome, with the rules of `clickhouse_billing::PER_MESSAGE`. Binds: ?1 project,
/// ?2 from, ?3 to, ?4 lower bound of Meta's objects.
const PER_MESSAGE: &str = "
    WITH charged AS (
        SELECT message_id,
               MAX(CASE WHEN sign > 0 THEN category END) AS category_,
               MAX(CASE WHEN sign > 0 THEN billable END) AS billable_,
               SUM(amount_micros) AS amount_,
               MAX(currency) AS currency_
        FROM billing_events
        WHERE project_id = ?1 AND kind IN ('billing.charged', 'billing.refunded')
          AND occurred_at >= ?2 AND occurred_at < ?3
        GROUP BY message_id
        HAVING SUM(sign) > 0
    ), meta AS (
        SELECT message_id, meta_category, meta_model, meta_billable, meta_type,
               ROW_NUMBER() OVER (PARTITION BY message_id
                                  ORDER BY occurred_at DESC, event_id DESC) AS rn
        FROM billing_events
        WHERE project_id = ?1 AND kind = 'billing.meta_priced' AND occurred_at >= ?4
          AND message_id IN (SELECT message_id FROM charged)
    ), per_message AS (
        SELECT c.message_id, c.category_, c.billable_, c.amount_, c.currency_,
               m.message_id IS NOT NULL AS priced_,
               COALESCE(m.meta_category, '') AS m_category,
               COALESCE(m.meta_model, '') AS m_model,
               COALESCE(m.meta_billable, -1) AS m_billable,
               COALESCE(m.meta_type, '') AS m_type,
               CASE
                   WHEN m.message_id IS NULL THEN 'NOT_PRICED_BY_META'
                   WHEN m.meta_billable >= 0 AND m.meta_billable != c.billable_
                       THEN 'BILLABLE_DIFFERS'
                   WHEN m.meta_category != '' AND m.meta_category != c.category_
                       THEN 'CATEGORY_DIFFERS'
                   ELSE 'MATCH'
               END AS outcome_
        FROM charged c
        LEFT JOIN meta m ON m.message_id = c.message_id AND m.rn = 1
    )";

fn uuid(text: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(text).with_context(|| format!("bad UUID {text:?} from SQLite"))
}

fn outcome(row: &SqliteRow) -> anyhow::Result<ReconciliationOutcome> {
    let text: String = row.try_get("outcome_")?;
    ReconciliationOutcome::parse(&text).with_context(|| format!("unknown outcome {text:?}"))
}

/// Writes the batch's billing events in the caller's transaction; re-sent ones are ignored.
pub(crate) async fn insert(
    tx: &mut Transaction<'_, Sqlite>,
    event: &StoredEvent,
) -> anyhow::Result<()> {
    let Some(r) = BillingRecord::from_stored(event) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT OR IGNORE INTO billing_events (event_id, project_id, kind, occurred_at,
             message_id, contact_id, campaign_id, era, model, category, country, currency,
             billable, free_reason, opened_conversation, uses_free_tier, sign, amount_micros,
             meta_category, meta_model, meta_billable, meta_type, seq, entry_kind,
             balance_after_micros, invoice_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(r.event_id.to_string())
    .bind(r.project_id.to_string())
    .bind(r.kind)
    .bind(i64::from(r.occurred_at))
    .bind(r.message_id.to_string())
    .bind(r.contact_id.to_string())
    .bind(r.campaign_id.to_string())
    .bind(r.era)
    .bind(r.model)
    .bind(r.category)
    .bind(r.country)
    .bind(r.currency)
    .bind(i64::from(r.billable))
    .bind(r.free_reason)
    .bind(i64::from(r.opened_conversation))
    .bind(i64::from(r.uses_free_tier))
    .bind(i64::from(r.sign))
    .bind(r.amount_micros)
    .bind(r.meta_category)
    .bind(r.meta_model)
    .bind(i64::from(r.meta_billable))
    .bind(r.meta_type)
    .bind(r.seq)
    .bind(r.entry_kind)
    .bind(r.balance_after_micros)
    .bind(r.invoice_id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl EmbeddedStore {
    pub(crate) async fn billing_usage(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
    ) -> anyhow::Result<Vec<UsageRow>> {
        let period = match granularity {
            Granularity::Day => "date(occurred_at, 'unixepoch')",
            Granularity::Month => "date(occurred_at, 'unixepoch', 'start of month')",
        };
        let sql = format!(
            "SELECT {period} AS period, model, category, country, currency,
                    SUM(sign) AS messages_,
                    SUM(sign * billable) AS billable_,
                    SUM(sign * opened_conversation) AS conversations_,
                    SUM(sign * opened_conversation * billable) AS billable_conv_,
                    SUM(amount_micros) AS amount_
             FROM billing_events
             WHERE project_id = ? AND {CHARGE_KINDS} AND occurred_at >= ? AND occurred_at < ?
             GROUP BY period, model, category, country, currency
             HAVING messages_ != 0 OR amount_ != 0"
        );
        let rows = sqlx::query(&sql)
            .bind(project_id.to_string())
            .bind(i64::from(store_secs(from)))
            .bind(i64::from(store_secs(to)))
            .fetch_all(&self.pool)
            .await?;
        let mut usage = rows
            .iter()
            .map(|row| {
                let period: String = row.try_get("period")?;
                let messages: i64 = row.try_get("messages_")?;
                let billable: i64 = row.try_get("billable_")?;
                let conversations: i64 = row.try_get("conversations_")?;
                let billable_conversations: i64 = row.try_get("billable_conv_")?;
                Ok(UsageRow {
                    period: billing::parse_day(&period)?,
                    model: row.try_get("model")?,
                    category: row.try_get("category")?,
                    country: row.try_get("country")?,
                    currency: row.try_get("currency")?,
                    messages,
                    billable_messages: billable,
                    free_messages: messages - billable,
                    conversations,
                    billable_conversations,
                    free_conversations: conversations - billable_conversations,
                    amount_micros: row.try_get("amount_")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        billing::sort_usage(&mut usage);
        Ok(usage)
    }

    pub(crate) async fn billing_campaigns(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<CampaignCost>> {
        let sql = format!(
            "SELECT campaign_id, currency, SUM(sign) AS messages_,
                    SUM(sign * billable) AS billable_, SUM(amount_micros) AS amount_
             FROM billing_events
             WHERE project_id = ? AND {CHARGE_KINDS} AND occurred_at >= ? AND occurred_at < ?
               AND campaign_id != ?
             GROUP BY campaign_id, currency"
        );
        let rows = sqlx::query(&sql)
            .bind(project_id.to_string())
            .bind(i64::from(store_secs(from)))
            .bind(i64::from(store_secs(to)))
            .bind(Uuid::nil().to_string())
            .fetch_all(&self.pool)
            .await?;
        let mut costs = rows
            .iter()
            .map(|row| {
                let campaign: String = row.try_get("campaign_id")?;
                Ok(CampaignCost {
                    campaign_id: uuid(&campaign)?,
                    currency: row.try_get("currency")?,
                    messages: row.try_get("messages_")?,
                    billable_messages: row.try_get("billable_")?,
                    amount_micros: row.try_get("amount_")?,
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
        let project = project_id.to_string();
        let last_before = |bound: DateTime<Utc>| {
            sqlx::query(
                "SELECT balance_after_micros, currency FROM billing_events
                 WHERE project_id = ? AND kind = 'billing.wallet' AND occurred_at < ?
                 ORDER BY seq DESC LIMIT 1",
            )
            .bind(project.clone())
            .bind(i64::from(store_secs(bound)))
        };
        let opening = last_before(from).fetch_optional(&self.pool).await?;
        let closing = last_before(to).fetch_optional(&self.pool).await?;
        let opening: i64 = opening.map_or(Ok(0), |r| r.try_get("balance_after_micros"))?;
        let (closing, currency): (i64, String) = match closing {
            Some(r) => (r.try_get("balance_after_micros")?, r.try_get("currency")?),
            None => (0, String::new()),
        };
        let rows = sqlx::query(
            "SELECT seq, occurred_at, entry_kind, amount_micros, balance_after_micros, currency,
                    message_id, invoice_id, campaign_id
             FROM billing_events
             WHERE project_id = ? AND kind = 'billing.wallet'
               AND occurred_at >= ? AND occurred_at < ?
             ORDER BY seq",
        )
        .bind(project.clone())
        .bind(i64::from(store_secs(from)))
        .bind(i64::from(store_secs(to)))
        .fetch_all(&self.pool)
        .await?;
        let id = |row: &SqliteRow, column: &str| -> anyhow::Result<Option<Uuid>> {
            let text: String = row.try_get(column)?;
            Ok(billing::non_nil(uuid(&text)?))
        };
        let entries = rows
            .iter()
            .map(|row| {
                let at: i64 = row.try_get("occurred_at")?;
                Ok(WalletEntry {
                    seq: row.try_get("seq")?,
                    at: from_store_secs(u32::try_from(at)?),
                    entry_kind: row.try_get("entry_kind")?,
                    amount_micros: row.try_get("amount_micros")?,
                    balance_after_micros: row.try_get("balance_after_micros")?,
                    currency: row.try_get("currency")?,
                    message_id: id(row, "message_id")?,
                    invoice_id: id(row, "invoice_id")?,
                    campaign_id: id(row, "campaign_id")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(billing::statement(currency, opening, closing, entries))
    }

    fn per_message<'q>(
        sql: &'q str,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
        let from = store_secs(from);
        sqlx::query(sql)
            .bind(project_id.to_string())
            .bind(i64::from(from))
            .bind(i64::from(store_secs(to)))
            .bind(i64::from(from.saturating_sub(billing::META_LOOKBACK_SECS)))
    }

    pub(crate) async fn billing_reconciliation(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> anyhow::Result<Vec<ReconciliationRow>> {
        let sql = format!(
            "{PER_MESSAGE}
             SELECT outcome_, currency_, COUNT(*) AS messages_, SUM(amount_) AS amount_sum
             FROM per_message GROUP BY outcome_, currency_"
        );
        let rows = Self::per_message(&sql, project_id, from, to)
            .fetch_all(&self.pool)
            .await?;
        let mut summary = rows
            .iter()
            .map(|row| {
                let messages: i64 = row.try_get("messages_")?;
                Ok(ReconciliationRow {
                    outcome: outcome(row)?,
                    currency: row.try_get("currency_")?,
                    messages: u64::try_from(messages)?,
                    amount_micros: row.try_get("amount_sum")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        billing::sort_reconciliation(&mut summary);
        Ok(summary)
    }

    pub(crate) async fn billing_differences(
        &self,
        project_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<PricingDifference>> {
        let sql = format!(
            "{PER_MESSAGE}
             SELECT * FROM per_message WHERE outcome_ != 'MATCH'
             ORDER BY message_id LIMIT {limit}"
        );
        let rows = Self::per_message(&sql, project_id, from, to)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let message: String = row.try_get("message_id")?;
                let priced: bool = row.try_get("priced_")?;
                let billable: i64 = row.try_get("billable_")?;
                let meta_billable: i64 = row.try_get("m_billable")?;
                let text = |column: &str| -> anyhow::Result<Option<String>> {
                    let value: String = row.try_get(column)?;
                    Ok(priced.then_some(value).and_then(non_empty))
                };
                Ok(PricingDifference {
                    message_id: uuid(&message)?,
                    outcome: outcome(row)?,
                    category: row.try_get("category_")?,
                    billable: billable == 1,
                    amount_micros: row.try_get("amount_")?,
                    currency: row.try_get("currency_")?,
                    meta_category: text("m_category")?,
                    meta_model: text("m_model")?,
                    meta_billable: (priced && meta_billable >= 0).then_some(meta_billable == 1),
                    meta_type: text("m_type")?,
                })
            })
            .collect()
    }
}
