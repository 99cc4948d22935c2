//! Finance reports, computed by the analytics store (ClickHouse in production, the embedded
//! store otherwise; both answer alike): usage per period, category and country, cost per
//! campaign, the wallet statement, and the reconciliation of our charges with Meta's
//! pricing. Each also comes as CSV. Owners, finance and managers read them.

use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use parley_analytics::{
    billing::{self as report, Granularity},
    billing_csv,
};

use super::pricing::format_micros;
use crate::{
    auth::{RoleGuard, guard::REPORT_READERS},
    errors::AppError,
    graphql::{app_state, scope},
};

/// The longest range one report may span.
const MAX_RANGE_DAYS: i64 = 800;
/// The most differing messages one reconciliation lists.
const MAX_DIFFERENCES: i32 = 1000;

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ReportGranularity {
    Day,
    Month,
}

/// One period × model × category × country of usage, net of refunds.
#[derive(SimpleObject)]
pub struct UsageRow {
    /// The UTC day, or the first day of the UTC month.
    pub period: NaiveDate,
    /// `CONVERSATION` or `PER_MESSAGE`.
    pub model: String,
    pub category: String,
    pub country: String,
    pub currency: String,
    pub messages: i64,
    pub billable_messages: i64,
    pub free_messages: i64,
    /// Conversations (or free-entry-point windows) opened.
    pub conversations: i64,
    pub billable_conversations: i64,
    pub free_conversations: i64,
    pub amount: String,
}

#[derive(SimpleObject)]
pub struct UsageReport {
    pub rows: Vec<UsageRow>,
    /// The same rows as CSV.
    pub csv: String,
}

#[derive(SimpleObject)]
pub struct CampaignCost {
    pub campaign_id: ID,
    pub currency: String,
    pub messages: i64,
    pub billable_messages: i64,
    pub amount: String,
}

#[derive(SimpleObject)]
pub struct CampaignCostReport {
    pub rows: Vec<CampaignCost>,
    pub csv: String,
}

#[derive(SimpleObject)]
pub struct StatementTotal {
    pub kind: String,
    pub entries: u64,
    pub amount: String,
}

#[derive(SimpleObject)]
pub struct StatementEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub amount: String,
    pub balance_after: String,
    pub message_id: Option<ID>,
    pub invoice_id: Option<ID>,
    pub campaign_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct WalletStatement {
    pub currency: String,
    pub opening_balance: String,
    pub closing_balance: String,
    pub totals: Vec<StatementTotal>,
    pub entries: Vec<StatementEntry>,
    pub csv: String,
}

#[derive(SimpleObject)]
pub struct ReconciliationRow {
    /// `MATCH`, `CATEGORY_DIFFERS`, `BILLABLE_DIFFERS` or `NOT_PRICED_BY_META`.
    pub outcome: String,
    pub currency: String,
    pub messages: u64,
    /// What we charged for them.
    pub amount: String,
}

#[derive(SimpleObject)]
pub struct PricingDifference {
    pub message_id: ID,
    pub outcome: String,
    pub category: String,
    pub billable: bool,
    pub amount: String,
    pub currency: String,
    pub meta_category: Option<String>,
    pub meta_model: Option<String>,
    pub meta_billable: Option<bool>,
    pub meta_type: Option<String>,
}

#[derive(SimpleObject)]
pub struct PricingReconciliation {
    pub rows: Vec<ReconciliationRow>,
    /// The first messages (by id) that do not match.
    pub differences: Vec<PricingDifference>,
    pub csv: String,
    pub differences_csv: String,
}

fn check_range(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), AppError> {
    if to <= from || (to - from).num_days() > MAX_RANGE_DAYS {
        return Err(AppError::bad_input(
            "to",
            format!("to must follow from, at most {MAX_RANGE_DAYS} days later"),
        ));
    }
    Ok(())
}

fn id(uuid: Option<uuid::Uuid>) -> Option<ID> {
    uuid.filter(|u| !u.is_nil()).map(|u| ID(u.to_string()))
}

#[derive(Default)]
pub struct BillingReportsQuery;

#[Object]
impl BillingReportsQuery {
    /// Messages and conversations, free and billable, and the amount, per period,
    /// category and country, in `[from, to)`.
    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn usage_report(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(default_with = "ReportGranularity::Month")] granularity: ReportGranularity,
    ) -> Result<UsageReport> {
        check_range(from, to)?;
        let granularity = match granularity {
            ReportGranularity::Day => Granularity::Day,
            ReportGranularity::Month => Granularity::Month,
        };
        let rows = app_state(ctx)
            .analytics
            .usage_report(scope(ctx)?.project_id, from, to, granularity)
            .await
            .map_err(AppError::Unavailable)?;
        Ok(UsageReport {
            csv: billing_csv::usage_csv(&rows),
            rows: rows.into_iter().map(usage_row).collect(),
        })
    }

    /// What each campaign's messages cost in `[from, to)`, highest first.
    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn campaign_costs(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<CampaignCostReport> {
        check_range(from, to)?;
        let rows = app_state(ctx)
            .analytics
            .campaign_costs(scope(ctx)?.project_id, from, to)
            .await
            .map_err(AppError::Unavailable)?;
        Ok(CampaignCostReport {
            csv: billing_csv::campaign_costs_csv(&rows),
            rows: rows
                .into_iter()
                .map(|r| CampaignCost {
                    campaign_id: ID(r.campaign_id.to_string()),
                    currency: r.currency,
                    messages: r.messages,
                    billable_messages: r.billable_messages,
                    amount: format_micros(r.amount_micros),
                })
                .collect(),
        })
    }

    /// The wallet's opening and closing balances and its entries in `[from, to)`.
    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn wallet_statement(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<WalletStatement> {
        check_range(from, to)?;
        let statement = app_state(ctx)
            .analytics
            .wallet_statement(scope(ctx)?.project_id, from, to)
            .await
            .map_err(AppError::Unavailable)?;
        Ok(statement_object(statement))
    }

    /// Our charges against Meta's pricing objects for the messages charged in
    /// `[from, to)`.
    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn pricing_reconciliation(
        &self,
        ctx: &Context<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        #[graphql(default = 100)] differences_limit: i32,
    ) -> Result<PricingReconciliation> {
        check_range(from, to)?;
        if !(0..=MAX_DIFFERENCES).contains(&differences_limit) {
            return Err(AppError::bad_input(
                "differencesLimit",
                format!("between 0 and {MAX_DIFFERENCES}"),
            )
            .into());
        }
        let project_id = scope(ctx)?.project_id;
        let analytics = &app_state(ctx).analytics;
        let rows = analytics
            .pricing_reconciliation(project_id, from, to)
            .await
            .map_err(AppError::Unavailable)?;
        let differences = analytics
            .pricing_differences(project_id, from, to, differences_limit as u32)
            .await
            .map_err(AppError::Unavailable)?;
        Ok(PricingReconciliation {
            csv: billing_csv::reconciliation_csv(&rows),
            differences_csv: billing_csv::pricing_differences_csv(&differences),
            rows: rows
                .into_iter()
                .map(|r| ReconciliationRow {
                    outcome: r.outcome.as_str().to_owned(),
                    currency: r.currency,
                    messages: r.messages,
                    amount: format_micros(r.amount_micros),
                })
                .collect(),
            differences: differences
                .into_iter()
                .map(|d| PricingDifference {
                    message_id: ID(d.message_id.to_string()),
                    outcome: d.outcome.as_str().to_owned(),
                    category: d.category,
                    billable: d.billable,
                    amount: format_micros(d.amount_micros),
                    currency: d.currency,
                    meta_category: d.meta_category,
                    meta_model: d.meta_model,
                    meta_billable: d.meta_billable,
                    meta_type: d.meta_type,
                })
                .collect(),
        })
    }
}

fn usage_row(r: report::UsageRow) -> UsageRow {
    UsageRow {
        period: r.period,
        model: r.model,
        category: r.category,
        country: r.country,
        currency: r.currency,
        messages: r.messages,
        billable_messages: r.billable_messages,
        free_messages: r.free_messages,
        conversations: r.conversations,
        billable_conversations: r.billable_conversations,
        free_conversations: r.free_conversations,
        amount: format_micros(r.amount_micros),
    }
}

fn statement_object(s: report::WalletStatement) -> WalletStatement {
    WalletStatement {
        csv: billing_csv::wallet_statement_csv(&s),
        currency: s.currency,
        opening_balance: format_micros(s.opening_balance_micros),
        closing_balance: format_micros(s.closing_balance_micros),
        totals: s
            .totals
            .into_iter()
            .map(|t| StatementTotal {
                kind: t.entry_kind,
                entries: t.entries,
                amount: format_micros(t.amount_micros),
            })
            .collect(),
        entries: s
            .entries
            .into_iter()
            .map(|e| StatementEntry {
                seq: e.seq,
                at: e.at,
                kind: e.entry_kind,
                amount: format_micros(e.amount_micros),
                balance_after: format_micros(e.balance_after_micros),
                message_id: id(e.message_id),
                invoice_id: id(e.invoice_id),
                campaign_id: id(e.campaign_id),
            })
            .collect(),
    }
}
