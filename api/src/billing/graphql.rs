//! Billing over GraphQL: the subscription and its invoices, the wallet and its ledger, the
//! price book, and live wallet events. Amounts are decimal strings in the project's
//! currency ("0.7265"), never floats.

use async_graphql::{
    Context, Enum, ID, Object, Result, SimpleObject, Subscription,
    connection::{Connection, Edge},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use parley_entity::{invoice, plan_price, subscription, wallet, wallet_entry};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::{alerts, book, plans, pricing, wallet as wallet_service};
use crate::{
    auth::{
        Role, RoleGuard,
        guard::{MEMBERS, REPORT_READERS},
    },
    errors::AppError,
    graphql::{app_state, relay, scope},
    pagination,
    projects::graphql::parse_id,
};

/// Owners and finance members handle money; managers only read.
pub const MONEY_HANDLERS: &[Role] = &[Role::Owner, Role::Finance];

pub struct PlanSubscription(pub subscription::Model);

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// The free trial, until `periodEnd`.
    Trialing,
    /// A paid term is running (to `periodEnd`; `cancelAtPeriodEnd` if it then stops).
    Active,
    /// The last term ended with nothing paid after it.
    Expired,
}

#[Object]
impl PlanSubscription {
    /// `FREE_TRIAL`, `BASIC` or `PRO`.
    async fn plan(&self) -> &str {
        &self.0.plan
    }
    /// `TRIAL`, `MONTHLY` or `YEARLY`.
    async fn interval(&self) -> &str {
        &self.0.billing_interval
    }
    async fn status(&self) -> SubscriptionStatus {
        match self.0.status.as_str() {
            plans::ACTIVE => SubscriptionStatus::Active,
            plans::EXPIRED => SubscriptionStatus::Expired,
            _ => SubscriptionStatus::Trialing,
        }
    }
    async fn period_start(&self) -> DateTime<Utc> {
        self.0.period_start
    }
    /// The plan works until then (prepaid; no refunds).
    async fn period_end(&self) -> DateTime<Utc> {
        self.0.period_end
    }
    async fn cancel_at_period_end(&self) -> bool {
        self.0.cancel_at_period_end
    }
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }
    async fn expired_at(&self) -> Option<DateTime<Utc>> {
        self.0.expired_at
    }
    /// Scheduled campaigns (pro).
    async fn scheduling(&self) -> bool {
        self.0.plan == plans::PRO
    }
    /// Tracked URL buttons (pro).
    async fn click_tracking(&self) -> bool {
        self.0.plan == plans::PRO
    }
    /// Active members besides the owner; `null` for unlimited.
    async fn members_limit(&self) -> Option<u64> {
        (self.0.plan == crate::projects::service::FREE_TRIAL)
            .then_some(crate::agents::service::FREE_TRIAL_MEMBER_LIMIT)
    }
}

pub struct Invoice(pub invoice::Model);

#[Object]
impl Invoice {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn number(&self) -> &str {
        &self.0.number
    }
    /// `SUBSCRIPTION` or `TOP_UP`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    async fn plan(&self) -> Option<&str> {
        self.0.plan.as_deref()
    }
    async fn interval(&self) -> Option<&str> {
        self.0.billing_interval.as_deref()
    }
    /// The term it paid for, once paid.
    async fn period_start(&self) -> Option<DateTime<Utc>> {
        self.0.period_start
    }
    async fn period_end(&self) -> Option<DateTime<Utc>> {
        self.0.period_end
    }
    async fn amount(&self) -> String {
        pricing::format_micros(self.0.amount_micros)
    }
    /// Credits a top-up adds when paid.
    async fn credits(&self) -> String {
        pricing::format_micros(self.0.credits_micros)
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// `PENDING`, `PAID` or `VOID`.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn issued_at(&self) -> DateTime<Utc> {
        self.0.issued_at
    }
    async fn due_at(&self) -> DateTime<Utc> {
        self.0.due_at
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    async fn payment_reference(&self) -> Option<&str> {
        self.0.payment_reference.as_deref()
    }
}

pub struct Wallet(pub wallet::Model);

#[Object]
impl Wallet {
    async fn balance(&self) -> String {
        pricing::format_micros(self.0.balance_micros)
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// Subscribers of `walletEvents` are alerted when the balance falls below this.
    async fn low_balance_threshold(&self) -> String {
        pricing::format_micros(self.0.low_balance_micros)
    }
    async fn is_low(&self) -> bool {
        self.0.balance_micros < self.0.low_balance_micros
    }
    /// The ledger, newest first.
    async fn entries(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, WalletEntry>> {
        let size = usize::try_from(first.unwrap_or(20))
            .map_err(|_| AppError::bad_input("first", "must not be negative"))?;
        if size > pagination::MAX_PAGE_SIZE {
            return Err(AppError::bad_input(
                "first",
                format!("at most {} per page", pagination::MAX_PAGE_SIZE),
            )
            .into());
        }
        let before = after
            .as_deref()
            .map(|c| {
                decode_seq(c)
                    .ok_or_else(|| AppError::bad_input("after", "not a cursor from this API"))
            })
            .transpose()?;
        let mut rows = wallet_service::entries(
            &app_state(ctx).db,
            self.0.project_id,
            before,
            size as u64 + 1,
        )
        .await?;
        let more = rows.len() > size;
        rows.truncate(size);
        let mut connection = Connection::new(after.is_some(), more);
        connection.edges = rows
            .into_iter()
            .map(|e| Edge::new(encode_seq(e.seq), WalletEntry(e)))
            .collect();
        Ok(connection)
    }
}

fn encode_seq(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{seq}"))
}

fn decode_seq(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("seq:")?
        .parse()
        .ok()
}

pub struct WalletEntry(pub wallet_entry::Model);

#[Object]
impl WalletEntry {
    /// Numbers every change of the project's wallet, in order.
    async fn seq(&self) -> i64 {
        self.0.seq
    }
    /// `TRIAL_CREDIT`, `TOP_UP`, `CHARGE`, `REFUND`, `EXPIRY` or `ADJUSTMENT`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Signed: credits positive, charges negative.
    async fn amount(&self) -> String {
        pricing::format_micros(self.0.amount_micros)
    }
    async fn balance_after(&self) -> String {
        pricing::format_micros(self.0.balance_after_micros)
    }
    async fn message_id(&self) -> Option<ID> {
        self.0.message_id.map(|id| ID(id.to_string()))
    }
    async fn invoice_id(&self) -> Option<ID> {
        self.0.invoice_id.map(|id| ID(id.to_string()))
    }
    async fn campaign_id(&self) -> Option<ID> {
        self.0.campaign_id.map(|id| ID(id.to_string()))
    }
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(SimpleObject)]
pub struct PlanPrice {
    pub plan: String,
    pub interval: String,
    pub amount: String,
    pub currency: String,
}

impl From<plan_price::Model> for PlanPrice {
    fn from(p: plan_price::Model) -> Self {
        Self {
            plan: p.plan,
            interval: p.billing_interval,
            amount: pricing::format_micros(p.price_micros),
            currency: p.currency,
        }
    }
}

/// A price in force, in the project's currency.
#[derive(SimpleObject)]
pub struct Rate {
    pub era: String,
    pub effective_from: String,
    pub country: String,
    pub category: String,
    pub price: String,
    pub currency: String,
}

#[derive(SimpleObject)]
pub struct PricingEra {
    pub name: String,
    pub effective_from: DateTime<Utc>,
    /// `CONVERSATION` or `PER_MESSAGE`.
    pub model: String,
    pub free_service_conversations_per_month: u32,
    pub service_free: bool,
    pub utility_free_in_service_window: bool,
    pub free_entry_point_hours: u32,
    pub conversation_hours: u32,
}

#[derive(SimpleObject)]
pub struct ReactivateResult {
    pub subscription: PlanSubscription,
    /// The invoice to pay when the plan had already expired.
    pub invoice: Option<Invoice>,
}

/// A live change of the wallet.
#[derive(SimpleObject)]
pub struct WalletEvent {
    /// `WALLET_CHANGED`, or `LOW_BALANCE` when a change took the balance below the
    /// threshold.
    pub kind: String,
    pub seq: i64,
    pub entry_kind: String,
    pub amount: String,
    pub balance: String,
    pub currency: String,
    pub low_balance_threshold: String,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// The project's plan and its term.
    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn subscription_plan(&self, ctx: &Context<'_>) -> Result<PlanSubscription> {
        let state = app_state(ctx);
        Ok(PlanSubscription(
            plans::current(&state.db, state, scope(ctx)?.project_id).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn wallet(&self, ctx: &Context<'_>) -> Result<Wallet> {
        let state = app_state(ctx);
        let project_id = scope(ctx)?.project_id;
        plans::current(&state.db, state, project_id).await?;
        Ok(Wallet(wallet_service::find(&state.db, project_id).await?))
    }

    /// Invoices, oldest first (`last` pages from the newest).
    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn invoices(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Invoice>> {
        let state = app_state(ctx);
        let request = relay::page_request(first, after, last, before)?;
        let select =
            invoice::Entity::find().filter(invoice::Column::ProjectId.eq(scope(ctx)?.project_id));
        let page = pagination::fetch(&state.db, select, invoice::Column::Id, request).await?;
        Ok(relay::connection(page, |i| i.id, Invoice))
    }

    /// The plans' prices in the project's currency.
    #[graphql(guard = "RoleGuard::read(MEMBERS)")]
    async fn plan_prices(&self, ctx: &Context<'_>) -> Result<Vec<PlanPrice>> {
        let state = app_state(ctx);
        let project = crate::projects::service::current(state, scope(ctx)?).await?;
        Ok(plan_price::Entity::find()
            .filter(plan_price::Column::Currency.eq(project.currency))
            .order_by_asc(plan_price::Column::Plan)
            .order_by_asc(plan_price::Column::BillingInterval)
            .all(&state.db)
            .await
            .map_err(AppError::from)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Meta's pricing eras, oldest first.
    #[graphql(guard = "RoleGuard::read(MEMBERS)")]
    async fn pricing_eras(&self, ctx: &Context<'_>) -> Result<Vec<PricingEra>> {
        Ok(book::eras(&app_state(ctx).db)
            .await?
            .into_iter()
            .map(|e| PricingEra {
                name: e.name,
                effective_from: e.effective_from,
                model: super::charges::model_name(e.model).to_owned(),
                free_service_conversations_per_month: e.free_service_per_month,
                service_free: e.service_free,
                utility_free_in_service_window: e.utility_free_in_service_window,
                free_entry_point_hours: e.free_entry_point_hours,
                conversation_hours: e.conversation_hours,
            })
            .collect())
    }

    /// The rate card in force at `at` (default now), in the project's currency: one price
    /// per country and category.
    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn rate_card(&self, ctx: &Context<'_>, at: Option<DateTime<Utc>>) -> Result<Vec<Rate>> {
        let state = app_state(ctx);
        let project = crate::projects::service::current(state, scope(ctx)?).await?;
        let at = at.unwrap_or_else(|| state.settings.clock.now());
        let book = book::load(&state.db, state, &project.currency).await?;
        let mut keys: Vec<(String, pricing::Category)> = book
            .rates
            .iter()
            .map(|r| (r.country.clone(), r.category))
            .collect();
        keys.sort_by(|a, b| (a.0.as_str(), a.1.as_str()).cmp(&(b.0.as_str(), b.1.as_str())));
        keys.dedup();
        Ok(keys
            .into_iter()
            .filter_map(|(country, category)| {
                let row = book.rate(at, &country, category, &project.currency)?;
                Some(Rate {
                    era: row.era.clone(),
                    effective_from: row.effective_from.format("%Y-%m-%d").to_string(),
                    country,
                    category: category.as_str().to_owned(),
                    price: pricing::format_micros(row.price_micros),
                    currency: row.currency.clone(),
                })
            })
            .collect())
    }
}

#[derive(Default)]
pub struct BillingMutation;

#[Object]
impl BillingMutation {
    /// Orders a term of `BASIC` or `PRO`, `MONTHLY` or `YEARLY`: returns the invoice; the
    /// term starts when it is paid (or when the current paid term ends).
    #[graphql(guard = "RoleGuard::write(&[Role::Owner])")]
    async fn subscribe(
        &self,
        ctx: &Context<'_>,
        plan: String,
        interval: String,
    ) -> Result<Invoice> {
        Ok(Invoice(
            plans::subscribe(app_state(ctx), scope(ctx)?, &plan, &interval).await?,
        ))
    }

    /// Cancels at the end of the paid term; refused while an invoice is unpaid.
    #[graphql(guard = "RoleGuard::write(&[Role::Owner])")]
    async fn cancel_subscription(&self, ctx: &Context<'_>) -> Result<PlanSubscription> {
        Ok(PlanSubscription(
            plans::cancel(app_state(ctx), scope(ctx)?).await?,
        ))
    }

    /// Undoes a cancellation; after expiry, orders the same plan again.
    #[graphql(guard = "RoleGuard::write(&[Role::Owner])")]
    async fn reactivate_subscription(&self, ctx: &Context<'_>) -> Result<ReactivateResult> {
        let state = app_state(ctx);
        let scope = scope(ctx)?;
        let (_, invoice) = plans::reactivate(state, scope).await?;
        Ok(ReactivateResult {
            subscription: PlanSubscription(
                plans::current(&state.db, state, scope.project_id).await?,
            ),
            invoice: invoice.map(Invoice),
        })
    }

    /// Orders wallet credits (a decimal amount in the project's currency).
    #[graphql(guard = "RoleGuard::write(MONEY_HANDLERS)")]
    async fn top_up_wallet(&self, ctx: &Context<'_>, amount: String) -> Result<Invoice> {
        let micros = pricing::parse_micros(&amount).ok_or_else(|| {
            AppError::bad_input(
                "amount",
                "a positive amount with at most 6 decimals, like \"500\" or \"12.50\"",
            )
        })?;
        Ok(Invoice(
            plans::order_top_up(app_state(ctx), scope(ctx)?, micros).await?,
        ))
    }

    /// Settles an invoice (a bank transfer's reference, say): starts its term or adds its
    /// credits. A second payment of the same invoice is a CONFLICT.
    #[graphql(guard = "RoleGuard::write(MONEY_HANDLERS)")]
    async fn record_payment(
        &self,
        ctx: &Context<'_>,
        invoice_id: ID,
        reference: String,
    ) -> Result<Invoice> {
        let state = app_state(ctx);
        let id = parse_id("invoiceId", &invoice_id)?;
        let settled = plans::record_payment(state, scope(ctx)?, id, &reference).await?;
        if let Some(entry) = &settled.wallet_entry {
            alerts::publish(state, std::slice::from_ref(entry)).await;
        }
        Ok(Invoice(settled.invoice))
    }

    #[graphql(guard = "RoleGuard::write(MONEY_HANDLERS)")]
    async fn void_invoice(&self, ctx: &Context<'_>, invoice_id: ID) -> Result<Invoice> {
        let id = parse_id("invoiceId", &invoice_id)?;
        Ok(Invoice(
            plans::void_invoice(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    /// The balance under which `walletEvents` sends a LOW_BALANCE alert.
    #[graphql(guard = "RoleGuard::write(MONEY_HANDLERS)")]
    async fn set_low_balance_threshold(&self, ctx: &Context<'_>, amount: String) -> Result<Wallet> {
        let state = app_state(ctx);
        let project_id = scope(ctx)?.project_id;
        let micros = pricing::parse_micros(&amount)
            .ok_or_else(|| AppError::bad_input("amount", "an amount with at most 6 decimals"))?;
        plans::current(&state.db, state, project_id).await?;
        wallet::Entity::update_many()
            .col_expr(wallet::Column::LowBalanceMicros, micros.into())
            .filter(wallet::Column::ProjectId.eq(project_id))
            .exec(&state.db)
            .await
            .map_err(AppError::from)?;
        Ok(Wallet(wallet_service::find(&state.db, project_id).await?))
    }
}

#[derive(Default)]
pub struct BillingSubscription;

#[Subscription]
impl BillingSubscription {
    /// Every change of the wallet's balance, and LOW_BALANCE alerts.
    #[graphql(guard = "RoleGuard::read(REPORT_READERS)")]
    async fn wallet_events(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = WalletEvent> + use<>> {
        let scope = scope(ctx)?;
        let events = app_state(ctx)
            .bus
            .subscribe(scope.project_id)
            .await
            .map_err(AppError::Unavailable)?;
        Ok(events.filter_map(|event| async move {
            let kind = match event.topic.as_str() {
                alerts::WALLET_CHANGED => "WALLET_CHANGED",
                alerts::WALLET_LOW => "LOW_BALANCE",
                _ => return None,
            };
            let p = &event.payload;
            let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
            Some(WalletEvent {
                kind: kind.to_owned(),
                seq: p["seq"].as_i64().unwrap_or_default(),
                entry_kind: text("kind"),
                amount: text("amount"),
                balance: text("balance"),
                currency: text("currency"),
                low_balance_threshold: text("lowBalance"),
                at: serde_json::from_value(p["at"].clone()).ok(),
            })
        }))
    }
}

/// What a message cost: Parley's charge beside Meta's own pricing.
pub struct MessageCharge(pub parley_entity::message_charge::Model);

#[Object]
impl MessageCharge {
    /// The pricing era in force when it was sent.
    async fn era(&self) -> &str {
        &self.0.era
    }
    /// `CONVERSATION` or `PER_MESSAGE`.
    async fn model(&self) -> &str {
        &self.0.model
    }
    async fn category(&self) -> &str {
        &self.0.category
    }
    async fn country(&self) -> &str {
        &self.0.country
    }
    /// It opened a conversation (or a free-entry-point window).
    async fn opened_conversation(&self) -> bool {
        self.0.opened_conversation
    }
    async fn billable(&self) -> bool {
        self.0.billable
    }
    /// Why it was free: `FREE_ENTRY_POINT`, `FREE_TIER`, `SERVICE_FREE`,
    /// `CONVERSATION_OPEN`, `UTILITY_IN_SERVICE_WINDOW` or `FREE_FORM`.
    async fn free_reason(&self) -> Option<&str> {
        self.0.free_reason.as_deref()
    }
    async fn amount(&self) -> String {
        pricing::format_micros(self.0.amount_micros)
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// Set when the message failed and the charge came back.
    async fn refunded_at(&self) -> Option<DateTime<Utc>> {
        self.0.refunded_at
    }
    /// Meta's pricing and conversation objects from its status webhooks, as sent.
    async fn meta_pricing(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0
            .meta_pricing
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .map(async_graphql::Json)
    }
}

/// Loads charges by message id, within the caller's project.
pub struct MessageChargeLoader {
    pub db: sea_orm::DatabaseConnection,
    pub project_id: Option<uuid::Uuid>,
}

impl async_graphql::dataloader::Loader<uuid::Uuid> for MessageChargeLoader {
    type Value = parley_entity::message_charge::Model;
    type Error = std::sync::Arc<AppError>;

    async fn load(
        &self,
        keys: &[uuid::Uuid],
    ) -> Result<std::collections::HashMap<uuid::Uuid, Self::Value>, Self::Error> {
        use parley_entity::message_charge;
        let Some(project_id) = self.project_id else {
            return Ok(Default::default());
        };
        let rows = message_charge::Entity::find()
            .filter(message_charge::Column::ProjectId.eq(project_id))
            .filter(message_charge::Column::MessageId.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(|e| std::sync::Arc::new(AppError::from(e)))?;
        Ok(rows.into_iter().map(|c| (c.message_id, c)).collect())
    }
}
