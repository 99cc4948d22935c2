//! Plans and subscriptions: a free trial, then prepaid monthly or yearly terms of basic or
//! pro. A term starts when its invoice is paid (or, bought during a paid term, when that
//! term ends). Cancelling keeps the plan working to the end of the paid term and is
//! refused while an invoice is unpaid; a cancelled plan can be reactivated. When a term
//! ends with nothing paid after it, the subscription expires, the project is back on the
//! free trial's limits and its credits expire with the plan.

use chrono::{DateTime, Months, Utc};
use parley_entity::{invoice, plan_price, project, subscription};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::{pricing::format_micros, wallet};
use crate::{
    auth::Scope,
    errors::{AppError, AppResult, ErrorCode},
    events,
    projects::service::FREE_TRIAL,
    state::AppState,
};

pub const BASIC: &str = "BASIC";
pub const PRO: &str = "PRO";
pub const MONTHLY: &str = "MONTHLY";
pub const YEARLY: &str = "YEARLY";
pub const TRIAL: &str = "TRIAL";

pub const TRIALING: &str = "TRIALING";
pub const ACTIVE: &str = "ACTIVE";
pub const EXPIRED: &str = "EXPIRED";

pub const PENDING: &str = "PENDING";
pub const PAID: &str = "PAID";
pub const VOID: &str = "VOID";
pub const KIND_SUBSCRIPTION: &str = "SUBSCRIPTION";
pub const KIND_TOP_UP: &str = "TOP_UP";

/// Days an invoice may stay unpaid.
const INVOICE_DUE_DAYS: i64 = 7;

/// What a plan unlocks, checked where each feature lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Scheduled campaigns.
    Scheduling,
    /// Tracked URL buttons.
    ClickTracking,
}

impl Feature {
    fn name(self) -> &'static str {
        match self {
            Self::Scheduling => "scheduling",
            Self::ClickTracking => "click tracking",
        }
    }
}

/// Refuses a feature the project's current plan does not include.
pub fn require(project: &project::Model, feature: Feature) -> AppResult<()> {
    if project.plan == PRO {
        return Ok(());
    }
    let mut details = serde_json::Map::new();
    details.insert("requiredPlan".into(), json!(PRO));
    details.insert("plan".into(), json!(project.plan));
    Err(AppError::RefusedWith {
        code: ErrorCode::PlanUpgradeRequired,
        message: format!("{} needs the pro plan", feature.name()),
        details,
    })
}

/// Starts a new project's free trial, with its wallet and trial credits.
pub async fn start_trial<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    project: &project::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let settings = &state.settings.billing;
    subscription::ActiveModel {
        project_id: Set(project.id),
        plan: Set(FREE_TRIAL.into()),
        billing_interval: Set(TRIAL.into()),
        status: Set(TRIALING.into()),
        period_start: Set(now),
        period_end: Set(now + chrono::Duration::days(i64::from(settings.trial_days))),
        cancel_at_period_end: Set(false),
        cancelled_at: Set(None),
        expired_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?;
    wallet::ensure(
        conn,
        project.id,
        &project.currency,
        settings.low_balance_micros,
        now,
    )
    .await?;
    if settings.trial_credits_micros > 0 {
        let refs = wallet::EntryRefs {
            note: Some("free trial credits".into()),
            ..Default::default()
        };
        wallet::apply(
            conn,
            project.id,
            wallet::TRIAL_CREDIT,
            settings.trial_credits_micros,
            refs,
            now,
        )
        .await?;
    }
    Ok(())
}

/// The project's subscription; projects made before billing existed get their trial now.
pub async fn current<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    project_id: Uuid,
) -> AppResult<subscription::Model> {
    if let Some(found) = subscription::Entity::find_by_id(project_id)
        .one(conn)
        .await?
    {
        return Ok(found);
    }
    let project = project::Entity::find_by_id(project_id)
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("project"))?;
    start_trial(conn, state, &project, state.settings.clock.now()).await?;
    subscription::Entity::find_by_id(project_id)
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("subscription"))
}

fn term_end(start: DateTime<Utc>, interval: &str) -> DateTime<Utc> {
    let months = if interval == YEARLY { 12 } else { 1 };
    start
        .checked_add_months(Months::new(months))
        .unwrap_or(start)
}

fn parse_plan(plan: &str) -> AppResult<&'static str> {
    match plan.to_ascii_uppercase().as_str() {
        "BASIC" => Ok(BASIC),
        "PRO" => Ok(PRO),
        _ => Err(AppError::bad_input("plan", "the plan is BASIC or PRO")),
    }
}

fn parse_interval(interval: &str) -> AppResult<&'static str> {
    match interval.to_ascii_uppercase().as_str() {
        "MONTHLY" => Ok(MONTHLY),
        "YEARLY" => Ok(YEARLY),
        _ => Err(AppError::bad_input(
            "interval",
            "the billing interval is MONTHLY or YEARLY",
        )),
    }
}

async fn pending_invoice<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    kind: Option<&str>,
) -> AppResult<Option<invoice::Model>> {
    let mut query = invoice::Entity::find()
        .filter(invoice::Column::ProjectId.eq(project_id))
        .filter(invoice::Column::Status.eq(PENDING));
    if let Some(kind) = kind {
        query = query.filter(invoice::Column::Kind.eq(kind));
    }
    Ok(query
        .order_by_asc(invoice::Column::IssuedAt)
        .one(conn)
        .await?)
}

fn payment_pending(invoice: &invoice::Model, doing: &str) -> AppError {
    let mut details = serde_json::Map::new();
    details.insert("invoiceId".into(), json!(invoice.id));
    details.insert("invoiceNumber".into(), json!(invoice.number));
    AppError::RefusedWith {
        code: ErrorCode::PaymentPending,
        message: format!(
            "invoice {} ({} {}) is unpaid: settle it before {doing}",
            invoice.number,
            format_micros(invoice.amount_micros),
            invoice.currency
        ),
        details,
    }
}

fn new_invoice_number(now: DateTime<Utc>) -> String {
    let random = Uuid::new_v4().simple().to_string();
    format!(
        "INV-{}-{}",
        now.format("%Y%m%d"),
        random[..8].to_ascii_uppercase()
    )
}

#[allow(clippy::too_many_arguments)]
async fn issue<C: ConnectionTrait>(
    conn: &C,
    project: &project::Model,
    kind: &str,
    plan: Option<&str>,
    interval: Option<&str>,
    amount_micros: i64,
    credits_micros: i64,
    created_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<invoice::Model> {
    let invoice = invoice::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(project.id),
        number: Set(new_invoice_number(now)),
        kind: Set(kind.into()),
        plan: Set(plan.map(str::to_owned)),
        billing_interval: Set(interval.map(str::to_owned)),
        period_start: Set(None),
        period_end: Set(None),
        amount_micros: Set(amount_micros),
        credits_micros: Set(credits_micros),
        currency: Set(project.currency.clone()),
        status: Set(PENDING.into()),
        issued_at: Set(now),
        due_at: Set(now + chrono::Duration::days(INVOICE_DUE_DAYS)),
        paid_at: Set(None),
        payment_reference: Set(None),
        voided_at: Set(None),
        created_by: Set(created_by),
    }
    .insert(conn)
    .await?;
    events::record_at(
        conn,
        project.id,
        "invoice.issued",
        json!({
            "invoiceId": invoice.id, "kind": kind, "plan": plan, "interval": interval,
            "amountMicros": amount_micros, "currency": invoice.currency,
        }),
        now,
    )
    .await?;
    Ok(invoice)
}

async fn project_of<C: ConnectionTrait>(conn: &C, project_id: Uuid) -> AppResult<project::Model> {
    project::Entity::find_by_id(project_id)
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("project"))
}

/// Orders a plan term: an invoice to pay. The term starts when it is paid.
pub async fn subscribe(
    state: &AppState,
    scope: &Scope,
    plan: &str,
    interval: &str,
) -> AppResult<invoice::Model> {
    let plan = parse_plan(plan)?;
    let interval = parse_interval(interval)?;
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let project = project_of(&txn, scope.project_id).await?;
    current(&txn, state, project.id).await?;
    if let Some(pending) = pending_invoice(&txn, project.id, Some(KIND_SUBSCRIPTION)).await? {
        return Err(payment_pending(&pending, "ordering another term"));
    }
    let price = plan_price::Entity::find_by_id((
        plan.to_owned(),
        interval.to_owned(),
        project.currency.clone(),
    ))
    .one(&txn)
    .await?
    .ok_or_else(|| {
        AppError::bad_input(
            "plan",
            format!(
                "the {plan} plan has no {interval} price in {}",
                project.currency
            ),
        )
    })?;
    let invoice = issue(
        &txn,
        &project,
        KIND_SUBSCRIPTION,
        Some(plan),
        Some(interval),
        price.price_micros,
        0,
        scope.user_id,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(invoice)
}

/// Orders wallet credits: an invoice whose payment adds them.
pub async fn order_top_up(
    state: &AppState,
    scope: &Scope,
    amount_micros: i64,
) -> AppResult<invoice::Model> {
    if amount_micros <= 0 {
        return Err(AppError::bad_input("amount", "the amount must be positive"));
    }
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let project = project_of(&txn, scope.project_id).await?;
    current(&txn, state, project.id).await?;
    let invoice = issue(
        &txn,
        &project,
        KIND_TOP_UP,
        None,
        None,
        amount_micros,
        amount_micros,
        scope.user_id,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(invoice)
}

/// What paying an invoice changed.
pub struct Settled {
    pub invoice: invoice::Model,
    pub wallet_entry: Option<parley_entity::wallet_entry::Model>,
}

/// Records a payment: the invoice is settled once (a second payment of it is a conflict);
/// a term starts, or credits are added.
pub async fn record_payment(
    state: &AppState,
    scope: &Scope,
    invoice_id: Uuid,
    reference: &str,
) -> AppResult<Settled> {
    let reference = crate::validate::text("reference", reference, 200)?;
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let found = invoice::Entity::find_by_id(invoice_id)
        .filter(invoice::Column::ProjectId.eq(scope.project_id))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("invoice"))?;
    // Conditional: of two payments recorded at once, one settles it.
    let settled = invoice::Entity::update_many()
        .col_expr(invoice::Column::Status, PAID.into())
        .col_expr(invoice::Column::PaidAt, now.into())
        .col_expr(invoice::Column::PaymentReference, reference.clone().into())
        .filter(invoice::Column::Id.eq(found.id))
        .filter(invoice::Column::Status.eq(PENDING))
        .exec(&txn)
        .await?;
    if settled.rows_affected != 1 {
        return Err(AppError::Conflict(format!(
            "invoice {} is {}, not pending",
            found.number,
            found.status.to_lowercase()
        )));
    }
    let mut wallet_entry = None;
    let mut invoice = invoice::Entity::find_by_id(found.id)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("invoice"))?;
    if invoice.kind == KIND_TOP_UP {
        let refs = wallet::EntryRefs {
            invoice_id: Some(invoice.id),
            note: Some(format!("top-up, invoice {}", invoice.number)),
            created_by: scope.user_id,
            ..Default::default()
        };
        wallet_entry = Some(
            wallet::apply(
                &txn,
                invoice.project_id,
                wallet::TOP_UP,
                invoice.credits_micros,
                refs,
                now,
            )
            .await?,
        );
    } else {
        invoice = start_term(&txn, state, invoice, now).await?;
    }
    events::record_at(
        &txn,
        invoice.project_id,
        "invoice.paid",
        json!({ "invoiceId": invoice.id, "kind": invoice.kind, "amountMicros": invoice.amount_micros, "currency": invoice.currency }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(Settled {
        invoice,
        wallet_entry,
    })
}

/// A paid term follows the current paid one, or starts now.
async fn start_term<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    invoice: invoice::Model,
    now: DateTime<Utc>,
) -> AppResult<invoice::Model> {
    let sub = current(conn, state, invoice.project_id).await?;
    let interval = invoice.billing_interval.clone().unwrap_or(MONTHLY.into());
    let plan = invoice.plan.clone().unwrap_or(BASIC.into());
    let follows_paid_term = sub.status == ACTIVE && sub.period_end > now;
    let start = if follows_paid_term {
        latest_paid_end(conn, invoice.project_id)
            .await?
            .unwrap_or(sub.period_end)
            .max(sub.period_end)
    } else {
        now
    };
    let end = term_end(start, &interval);
    let mut active: invoice::ActiveModel = invoice.into();
    active.period_start = Set(Some(start));
    active.period_end = Set(Some(end));
    let invoice = active.update(conn).await?;
    if !follows_paid_term {
        activate(conn, &sub, &plan, &interval, start, end, now).await?;
    }
    Ok(invoice)
}

/// The end of the latest paid term on record.
async fn latest_paid_end<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
) -> AppResult<Option<DateTime<Utc>>> {
    Ok(invoice::Entity::find()
        .filter(invoice::Column::ProjectId.eq(project_id))
        .filter(invoice::Column::Kind.eq(KIND_SUBSCRIPTION))
        .filter(invoice::Column::Status.eq(PAID))
        .filter(invoice::Column::PeriodEnd.is_not_null())
        .order_by_desc(invoice::Column::PeriodEnd)
        .one(conn)
        .await?
        .and_then(|i| i.period_end))
}

async fn activate<C: ConnectionTrait>(
    conn: &C,
    sub: &subscription::Model,
    plan: &str,
    interval: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut active: subscription::ActiveModel = sub.clone().into();
    active.plan = Set(plan.into());
    active.billing_interval = Set(interval.into());
    active.status = Set(ACTIVE.into());
    active.period_start = Set(start);
    active.period_end = Set(end);
    active.cancel_at_period_end = Set(false);
    active.cancelled_at = Set(None);
    active.expired_at = Set(None);
    active.updated_at = Set(now);
    active.update(conn).await?;
    set_project_plan(conn, sub.project_id, plan, now).await
}

async fn set_project_plan<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    plan: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    project::Entity::update_many()
        .col_expr(project::Column::Plan, plan.into())
        .col_expr(project::Column::UpdatedAt, now.into())
        .filter(project::Column::Id.eq(project_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Cancels at the end of the paid term. Refused while an invoice is unpaid.
pub async fn cancel(state: &AppState, scope: &Scope) -> AppResult<subscription::Model> {
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let sub = current(&txn, state, scope.project_id).await?;
    if let Some(pending) = pending_invoice(&txn, scope.project_id, None).await? {
        return Err(payment_pending(&pending, "cancelling"));
    }
    if sub.status != ACTIVE {
        return Err(AppError::Conflict(format!(
            "a {} subscription cannot be cancelled",
            sub.status.to_lowercase()
        )));
    }
    if sub.cancel_at_period_end {
        return Err(AppError::Conflict("the plan is already cancelled".into()));
    }
    let mut active: subscription::ActiveModel = sub.into();
    active.cancel_at_period_end = Set(true);
    active.cancelled_at = Set(Some(now));
    active.updated_at = Set(now);
    let sub = active.update(&txn).await?;
    events::record_at(
        &txn,
        sub.project_id,
        "subscription.cancelled",
        json!({ "plan": sub.plan, "endsAt": sub.period_end }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(sub)
}

/// Undoes a cancellation before the term ends; after it ended, orders a new term of the
/// same plan and interval (the returned invoice).
pub async fn reactivate(
    state: &AppState,
    scope: &Scope,
) -> AppResult<(subscription::Model, Option<invoice::Model>)> {
    let now = state.settings.clock.now();
    let sub = current(&state.db, state, scope.project_id).await?;
    if sub.status == ACTIVE && sub.cancel_at_period_end {
        let txn = state.db.begin().await?;
        let mut active: subscription::ActiveModel = sub.into();
        active.cancel_at_period_end = Set(false);
        active.cancelled_at = Set(None);
        active.updated_at = Set(now);
        let sub = active.update(&txn).await?;
        events::record_at(
            &txn,
            sub.project_id,
            "subscription.reactivated",
            json!({ "plan": sub.plan }),
            now,
        )
        .await?;
        txn.commit().await?;
        return Ok((sub, None));
    }
    if sub.status == EXPIRED && sub.billing_interval != TRIAL {
        let invoice = subscribe(state, scope, &sub.plan, &sub.billing_interval).await?;
        return Ok((sub, Some(invoice)));
    }
    Err(AppError::Conflict(
        "only a cancelled or expired paid plan can be reactivated".into(),
    ))
}

/// Voids an unpaid invoice.
pub async fn void_invoice(
    state: &AppState,
    scope: &Scope,
    invoice_id: Uuid,
) -> AppResult<invoice::Model> {
    let now = state.settings.clock.now();
    let voided = invoice::Entity::update_many()
        .col_expr(invoice::Column::Status, VOID.into())
        .col_expr(invoice::Column::VoidedAt, now.into())
        .filter(invoice::Column::Id.eq(invoice_id))
        .filter(invoice::Column::ProjectId.eq(scope.project_id))
        .filter(invoice::Column::Status.eq(PENDING))
        .exec(&state.db)
        .await?;
    let invoice = invoice::Entity::find_by_id(invoice_id)
        .filter(invoice::Column::ProjectId.eq(scope.project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("invoice"))?;
    if voided.rows_affected != 1 {
        return Err(AppError::Conflict(format!(
            "invoice {} is {}, not pending",
            invoice.number,
            invoice.status.to_lowercase()
        )));
    }
    Ok(invoice)
}

/// Ends terms that are over: a paid next term starts, else the subscription expires (the
/// project returns to the free trial's limits and its credits expire). Returns the number
/// of subscriptions changed. Runs on every node; each change is conditional on the state
/// read, so two nodes never apply one twice.
pub async fn sweep(state: &AppState) -> AppResult<usize> {
    let now = state.settings.clock.now();
    let due = subscription::Entity::find()
        .filter(subscription::Column::Status.is_in([ACTIVE, TRIALING]))
        .filter(subscription::Column::PeriodEnd.lte(now))
        .all(&state.db)
        .await?;
    let mut changed = 0;
    for sub in due {
        let txn = state.db.begin().await?;
        let next = if sub.cancel_at_period_end {
            None
        } else {
            invoice::Entity::find()
                .filter(invoice::Column::ProjectId.eq(sub.project_id))
                .filter(invoice::Column::Kind.eq(KIND_SUBSCRIPTION))
                .filter(invoice::Column::Status.eq(PAID))
                .filter(invoice::Column::PeriodStart.gte(sub.period_end))
                .order_by_asc(invoice::Column::PeriodStart)
                .one(&txn)
                .await?
        };
        // Claim the row as read: another node that got here first changed `updated_at`.
        let claimed = subscription::Entity::update_many()
            .col_expr(subscription::Column::UpdatedAt, now.into())
            .filter(subscription::Column::ProjectId.eq(sub.project_id))
            .filter(subscription::Column::UpdatedAt.eq(sub.updated_at))
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            continue;
        }
        match next {
            Some(term) => {
                let (Some(start), Some(end)) = (term.period_start, term.period_end) else {
                    continue;
                };
                activate(
                    &txn,
                    &sub,
                    term.plan.as_deref().unwrap_or(BASIC),
                    term.billing_interval.as_deref().unwrap_or(MONTHLY),
                    start,
                    end,
                    now,
                )
                .await?;
            }
            None => {
                let mut active: subscription::ActiveModel = sub.clone().into();
                active.status = Set(EXPIRED.into());
                active.expired_at = Set(Some(now));
                active.updated_at = Set(now);
                active.update(&txn).await?;
                set_project_plan(&txn, sub.project_id, FREE_TRIAL, now).await?;
                let entry =
                    wallet::expire_all(&txn, sub.project_id, "credits expire with the plan", now)
                        .await?;
                events::record_at(
                    &txn,
                    sub.project_id,
                    "subscription.expired",
                    json!({ "plan": sub.plan, "creditsExpiredMicros": entry.map(|e| -e.amount_micros) }),
                    now,
                )
                .await?;
            }
        }
        txn.commit().await?;
        changed += 1;
    }
    Ok(changed)
}

/// Invoices of the project, newest first.
pub async fn invoices<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
) -> AppResult<Vec<invoice::Model>> {
    Ok(invoice::Entity::find()
        .filter(invoice::Column::ProjectId.eq(project_id))
        .order_by_desc(invoice::Column::IssuedAt)
        .all(conn)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(plan: &str) -> project::Model {
        project::Model {
            id: Uuid::nil(),
            name: "P".into(),
            owner_id: Uuid::nil(),
            plan: plan.into(),
            default_country: "IN".into(),
            currency: "INR".into(),
            archived_at: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn pro_features_are_refused_on_other_plans_with_the_plan_needed() {
        for feature in [Feature::Scheduling, Feature::ClickTracking] {
            assert!(require(&project(PRO), feature).is_ok());
            for plan in [BASIC, FREE_TRIAL] {
                let err = require(&project(plan), feature).unwrap_err();
                assert_eq!(err.code(), ErrorCode::PlanUpgradeRequired);
                let AppError::RefusedWith { details, .. } = err else {
                    panic!("figures expected");
                };
                assert_eq!(details["requiredPlan"], "PRO");
                assert_eq!(details["plan"], plan);
            }
        }
    }

    #[test]
    fn terms_run_a_calendar_month_or_year() {
        let start = "2026-01-31T10:00:00Z".parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            term_end(start, MONTHLY),
            "2026-02-28T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            term_end(start, YEARLY),
            "2027-01-31T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
