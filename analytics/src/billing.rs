//! Billing reports computed from the analytics store (SPEC §7 "Usage reports", §10).
//!
//! The API records one event per charge, refund, Meta pricing object and wallet entry
//! (`billing.*` kinds). Both stores copy those events into a typed `billing_events` table
//! (see [`BillingRecord`]) so that reports are plain sums over typed columns instead of
//! JSON parsing, and answer the report methods of [`crate::AnalyticsStore`] identically.
//! Rows are sorted here, in Rust, by the same comparators for both stores, so that they can
//! only differ by their figures (which the parity test compares).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::store::{from_store_secs, store_secs};
use crate::{Event, StoredEvent};

pub const CHARGED: &str = "billing.charged";
pub const REFUNDED: &str = "billing.refunded";
pub const META_PRICED: &str = "billing.meta_priced";
pub const WALLET: &str = "billing.wallet";

/// The kinds copied into `billing_events`.
pub const KINDS: [&str; 4] = [CHARGED, REFUNDED, META_PRICED, WALLET];

/// How long before a report's `from` a Meta pricing object may be dated and still count
/// for a message charged in the report. Meta prices a message after it was sent (and so
/// after its charge), but the two times come from different processes' clocks; a day's
/// margin costs little and keeps the lookup bounded on the sorting key.
pub(crate) const META_LOOKBACK_SECS: u32 = 86_400;

/// `usage_report` periods: UTC days or UTC calendar months.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Granularity {
    Day,
    Month,
}

/// One period × pricing model × category × country × currency of a usage report.
///
/// Counts are net of refunds (a refund is a row with sign -1 dated like its charge), hence
/// signed. `free_*` are the counts that were not billable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The UTC day, or the first day of the UTC month.
    pub period: NaiveDate,
    pub model: String,
    pub category: String,
    pub country: String,
    pub currency: String,
    pub messages: i64,
    pub billable_messages: i64,
    pub free_messages: i64,
    /// Messages that opened a conversation (or a free entry point window).
    pub conversations: i64,
    pub billable_conversations: i64,
    pub free_conversations: i64,
    pub amount_micros: i64,
}

/// What one campaign's messages cost (net of refunds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CampaignCost {
    pub campaign_id: Uuid,
    pub currency: String,
    pub messages: i64,
    pub billable_messages: i64,
    pub amount_micros: i64,
}

/// The wallet ledger over `from <= at < to`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WalletStatement {
    /// The currency of the last entry before `to` ("" when there is none).
    pub currency: String,
    /// Balance after the last entry before `from` (0 if none).
    pub opening_balance_micros: i64,
    /// Balance after the last entry before `to` (0 if none).
    pub closing_balance_micros: i64,
    /// Per entry kind present in the period, sorted by kind.
    pub totals: Vec<WalletKindTotal>,
    /// The period's entries by `seq`.
    pub entries: Vec<WalletEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletKindTotal {
    pub entry_kind: String,
    pub entries: u64,
    pub amount_micros: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WalletEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub entry_kind: String,
    pub amount_micros: i64,
    pub balance_after_micros: i64,
    pub currency: String,
    pub message_id: Option<Uuid>,
    pub invoice_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
}

/// How our charge of a message compares with Meta's latest pricing object for it (latest
/// by `occurred_at`, ties broken by the greater event id). In this order: no object →
/// `NotPricedByMeta`; Meta's `billable` known and different → `BillableDiffers`; Meta's
/// category known and different → `CategoryDiffers`; else `Match`. What Meta left unknown
/// (an empty category, no `billable`) never makes a difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReconciliationOutcome {
    Match,
    CategoryDiffers,
    /// Billable differs, whatever the category.
    BillableDiffers,
    /// No pricing object from Meta (yet).
    NotPricedByMeta,
}

impl ReconciliationOutcome {
    pub const ALL: [Self; 4] = [
        Self::Match,
        Self::CategoryDiffers,
        Self::BillableDiffers,
        Self::NotPricedByMeta,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Match => "MATCH",
            Self::CategoryDiffers => "CATEGORY_DIFFERS",
            Self::BillableDiffers => "BILLABLE_DIFFERS",
            Self::NotPricedByMeta => "NOT_PRICED_BY_META",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Messages charged in the period (net) with one outcome, and our amount for them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReconciliationRow {
    pub outcome: ReconciliationOutcome,
    pub currency: String,
    pub messages: u64,
    pub amount_micros: i64,
}

/// One message whose charge does not match Meta's pricing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PricingDifference {
    pub message_id: Uuid,
    pub outcome: ReconciliationOutcome,
    pub category: String,
    pub billable: bool,
    pub amount_micros: i64,
    pub currency: String,
    /// Meta's latest pricing object: all `None` for `NOT_PRICED_BY_META`, and each `None`
    /// where the object left it unknown (empty, or no `billable`).
    pub meta_category: Option<String>,
    pub meta_model: Option<String>,
    pub meta_billable: Option<bool>,
    pub meta_type: Option<String>,
}

/// One `billing.*` event as a row of `billing_events`, the same in both stores.
///
/// Absent ids are the nil UUID (cheaper to group and filter than a Nullable column, and the
/// same in SQLite), absent text is "", Meta's unknown `billable` is -1, and fields that do
/// not apply to the kind are empty/0. A malformed payload never fails a batch (the shipper
/// would retry it forever): missing fields take these defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BillingRecord {
    pub event_id: Uuid,
    pub project_id: Uuid,
    pub kind: String,
    /// Whole seconds since the epoch, as both stores keep times.
    pub occurred_at: u32,
    pub message_id: Uuid,
    pub contact_id: Uuid,
    pub campaign_id: Uuid,
    pub era: String,
    pub model: String,
    pub category: String,
    pub country: String,
    pub currency: String,
    pub billable: u8,
    pub free_reason: String,
    pub opened_conversation: u8,
    pub uses_free_tier: u8,
    pub sign: i8,
    pub amount_micros: i64,
    pub meta_category: String,
    pub meta_model: String,
    pub meta_billable: i8,
    pub meta_type: String,
    pub seq: i64,
    pub entry_kind: String,
    pub balance_after_micros: i64,
    pub invoice_id: Uuid,
}

impl BillingRecord {
    /// The typed row of a billing event; `None` for other kinds.
    pub fn from_event(event: &Event) -> Option<Self> {
        Self::from_stored(&StoredEvent::from(event))
    }

    /// The same from the outbox's text: only billing events' payloads are parsed.
    pub fn from_stored(event: &StoredEvent) -> Option<Self> {
        if !KINDS.contains(&event.kind.as_str()) {
            return None;
        }
        let payload: Value = serde_json::from_str(&event.payload).unwrap_or(Value::Null);
        let p = &payload;
        let text = |key: &str| p.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let id = |key: &str| {
            p.get(key)
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok())
                .unwrap_or(Uuid::nil())
        };
        let flag = |key: &str| u8::from(p.get(key).and_then(Value::as_bool).unwrap_or(false));
        let int = |key: &str| p.get(key).and_then(Value::as_i64).unwrap_or(0);
        let default_sign = if event.kind == REFUNDED { -1 } else { 1 };
        let is_charge = event.kind == CHARGED || event.kind == REFUNDED;
        Some(Self {
            event_id: event.event_id,
            project_id: event.project_id,
            kind: event.kind.clone(),
            occurred_at: store_secs(event.occurred_at),
            message_id: id("messageId"),
            contact_id: id("contactId"),
            campaign_id: id("campaignId"),
            era: text("era"),
            model: text("model"),
            category: text("category"),
            country: text("country"),
            currency: text("currency"),
            billable: flag("billable"),
            free_reason: text("freeReason"),
            opened_conversation: flag("openedConversation"),
            uses_free_tier: flag("usesFreeTier"),
            sign: if is_charge {
                p.get("sign")
                    .and_then(Value::as_i64)
                    .map_or(default_sign, |s| if s < 0 { -1 } else { 1 })
            } else {
                0
            },
            amount_micros: int("amountMicros"),
            meta_category: text("metaCategory"),
            meta_model: text("metaModel"),
            meta_billable: match p.get("metaBillable").and_then(Value::as_bool) {
                Some(b) => i8::from(b),
                None => -1,
            },
            meta_type: text("metaType"),
            seq: int("seq"),
            entry_kind: text("entryKind"),
            balance_after_micros: int("balanceAfterMicros"),
            invoice_id: id("invoiceId"),
        })
    }

    pub fn occurred_at(&self) -> DateTime<Utc> {
        from_store_secs(self.occurred_at)
    }
}

/// `Some(id)` unless it is the nil UUID (the stores' "none").
pub(crate) fn non_nil(id: Uuid) -> Option<Uuid> {
    (!id.is_nil()).then_some(id)
}

/// `Some(text)` unless empty.
pub(crate) fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

pub(crate) fn sort_usage(rows: &mut [UsageRow]) {
    rows.sort_by(|a, b| {
        (a.period, &a.category, &a.country, &a.model, &a.currency).cmp(&(
            b.period,
            &b.category,
            &b.country,
            &b.model,
            &b.currency,
        ))
    });
}

/// By amount, highest first, then by id (as text, as both stores order it) and currency.
pub(crate) fn sort_campaigns(rows: &mut [CampaignCost]) {
    rows.sort_by(|a, b| {
        b.amount_micros
            .cmp(&a.amount_micros)
            .then_with(|| a.campaign_id.to_string().cmp(&b.campaign_id.to_string()))
            .then_with(|| a.currency.cmp(&b.currency))
    });
}

pub(crate) fn sort_reconciliation(rows: &mut [ReconciliationRow]) {
    rows.sort_by(|a, b| match a.outcome.cmp(&b.outcome) {
        Ordering::Equal => a.currency.cmp(&b.currency),
        other => other,
    });
}

/// A statement from its balances and its period's entries (already ordered by seq): the
/// totals per kind are added up here, the same way for both stores.
pub(crate) fn statement(
    currency: String,
    opening_balance_micros: i64,
    closing_balance_micros: i64,
    entries: Vec<WalletEntry>,
) -> WalletStatement {
    let mut totals = BTreeMap::<&str, (u64, i64)>::new();
    for e in &entries {
        let total = totals.entry(&e.entry_kind).or_default();
        total.0 += 1;
        total.1 += e.amount_micros;
    }
    let totals = totals
        .into_iter()
        .map(|(kind, (entries, amount_micros))| WalletKindTotal {
            entry_kind: kind.to_owned(),
            entries,
            amount_micros,
        })
        .collect();
    WalletStatement {
        currency,
        opening_balance_micros,
        closing_balance_micros,
        totals,
        entries,
    }
}

/// `"YYYY-MM-DD"` from SQLite.
pub(crate) fn parse_day(day: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|e| anyhow::anyhow!("bad day {day:?} from the store: {e}"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;

    fn event(kind: &str, payload: Value) -> Event {
        let mut e = Event::new(Uuid::from_u128(1), kind, None, payload);
        e.occurred_at = Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap()
            + chrono::Duration::milliseconds(999);
        e
    }

    #[test]
    fn a_refund_is_a_typed_row_with_sign_minus_one() {
        let campaign = Uuid::from_u128(0xC1);
        let r = BillingRecord::from_event(&event(
            REFUNDED,
            json!({
                "messageId": Uuid::from_u128(7), "contactId": Uuid::from_u128(8),
                "campaignId": campaign, "era": "pmp_2025", "model": "PER_MESSAGE",
                "category": "MARKETING", "country": "IN", "billable": true,
                "freeReason": null, "openedConversation": false, "usesFreeTier": false,
                "sign": -1, "amountMicros": -726_500, "currency": "INR", "amount": "-0.7265",
            }),
        ))
        .unwrap();
        assert_eq!(r.occurred_at, 1_751_328_000, "whole seconds");
        assert_eq!((r.sign, r.amount_micros, r.billable), (-1, -726_500, 1));
        assert_eq!(
            (r.message_id, r.campaign_id),
            (Uuid::from_u128(7), campaign)
        );
        assert_eq!((r.free_reason.as_str(), r.invoice_id), ("", Uuid::nil()));
        assert_eq!(r.meta_billable, -1);
    }

    #[test]
    fn meta_and_wallet_rows_and_defaults() {
        let meta = BillingRecord::from_event(&event(
            META_PRICED,
            json!({ "messageId": Uuid::from_u128(7), "campaignId": null,
                    "metaCategory": "UTILITY", "metaBillable": false, "metaType": "regular" }),
        ))
        .unwrap();
        assert_eq!(
            (meta.sign, meta.meta_billable, meta.campaign_id),
            (0, 0, Uuid::nil())
        );
        let wallet = BillingRecord::from_event(&event(
            WALLET,
            json!({ "seq": 3, "entryKind": "TOP_UP", "amountMicros": 5_000_000,
                    "balanceAfterMicros": 6_000_000, "invoiceId": Uuid::from_u128(9) }),
        ))
        .unwrap();
        assert_eq!((wallet.seq, wallet.balance_after_micros), (3, 6_000_000));
        assert_eq!(wallet.invoice_id, Uuid::from_u128(9));
        // A malformed payload still gives a row (a batch must never get stuck on it), and a
        // refund without `sign` is still negative.
        let odd = BillingRecord::from_event(&event(REFUNDED, json!("not an object"))).unwrap();
        assert_eq!((odd.sign, odd.message_id), (-1, Uuid::nil()));
        assert!(BillingRecord::from_event(&event("member.added", json!({}))).is_none());
    }
}
