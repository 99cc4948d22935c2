//! Leaving the WhatsApp Business API: downgrading the number (back to the WhatsApp apps;
//! 24 hours to 30 days, and the number's data is deleted), or disabling two-step
//! verification to move the number to another provider; and the guidance that ties both
//! to cancelling the plan.

use chrono::{DateTime, Duration, Utc};
use parley_entity::{
    campaign, contact, invoice, leaving_request as lr, message, onboarding_application as app,
    template, whatsapp_account,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::{green_tick, signup};
use crate::{
    auth::Scope,
    billing::plans,
    errors::{AppError, AppResult},
    state::AppState,
    validate,
    whatsapp::accounts::PROVIDER_SANDBOX,
};

pub const DOWNGRADE: &str = "DOWNGRADE";
pub const TWO_STEP_DISABLE: &str = "TWO_STEP_DISABLE";
pub const REQUESTED: &str = "REQUESTED";
pub const COMPLETED: &str = "COMPLETED";
pub const CANCELLED: &str = "CANCELLED";
/// Meta takes 24 hours to 30 days to downgrade a number.
pub const DOWNGRADE_MIN_HOURS: i64 = 24;
pub const DOWNGRADE_MAX_DAYS: i64 = 30;

/// What a downgrade deletes: the data Parley holds for the number.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataDeletion {
    pub contacts: u64,
    pub messages: u64,
    pub templates: u64,
    pub campaigns: u64,
}

pub async fn data_deletion<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
) -> AppResult<DataDeletion> {
    Ok(DataDeletion {
        contacts: contact::Entity::find()
            .filter(contact::Column::ProjectId.eq(project_id))
            .count(conn)
            .await?,
        messages: message::Entity::find()
            .filter(message::Column::ProjectId.eq(project_id))
            .count(conn)
            .await?,
        templates: template::Entity::find()
            .filter(template::Column::ProjectId.eq(project_id))
            .count(conn)
            .await?,
        campaigns: campaign::Entity::find()
            .filter(campaign::Column::ProjectId.eq(project_id))
            .count(conn)
            .await?,
    })
}

async fn live_number(state: &AppState, project_id: Uuid) -> AppResult<app::Model> {
    signup::live(&state.db, project_id)
        .await?
        .ok_or_else(|| AppError::Conflict("the project has no live number".into()))
}

async fn open_request(
    state: &AppState,
    project_id: Uuid,
    kind: &str,
) -> AppResult<Option<lr::Model>> {
    Ok(lr::Entity::find()
        .filter(lr::Column::ProjectId.eq(project_id))
        .filter(lr::Column::Kind.eq(kind))
        .filter(lr::Column::Status.eq(REQUESTED))
        .one(&state.db)
        .await?)
}

fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Starts the downgrade: confirmed by typing the number and acknowledging the data
/// deletion. The number is deregistered at once; the green tick goes with it.
pub async fn request_downgrade(
    state: &AppState,
    scope: &Scope,
    confirm_phone_number: &str,
    acknowledge_data_deletion: bool,
) -> AppResult<lr::Model> {
    let live = live_number(state, scope.project_id).await?;
    let number = live.phone_number.clone().unwrap_or_default();
    if digits(confirm_phone_number) != digits(&number) || number.is_empty() {
        return Err(AppError::bad_input(
            "confirmPhoneNumber",
            "type the live number to confirm the downgrade",
        ));
    }
    if !acknowledge_data_deletion {
        return Err(AppError::bad_input(
            "acknowledgeDataDeletion",
            "a downgrade permanently deletes the number's data (messages, contacts, \
             templates): acknowledge it to go ahead",
        ));
    }
    if open_request(state, scope.project_id, DOWNGRADE)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(
            "the number is being downgraded already".into(),
        ));
    }
    let deletion = data_deletion(&state.db, scope.project_id).await?;
    let provider = state.whatsapp.signup(&live.provider);
    provider
        .deregister(
            live.access_token.as_deref().unwrap_or_default(),
            live.phone_number_id.as_deref().unwrap_or_default(),
        )
        .await?;
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let request = lr::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        application_id: Set(Some(live.id)),
        kind: Set(DOWNGRADE.into()),
        status: Set(REQUESTED.into()),
        phone_number: Set(Some(number)),
        new_provider: Set(None),
        reason: Set(None),
        data_deletion: Set(Some(
            serde_json::to_string(&deletion).map_err(AppError::internal)?,
        )),
        requested_by: Set(scope.user_id),
        requested_at: Set(now),
        earliest_completion_at: Set(Some(now + Duration::hours(DOWNGRADE_MIN_HOURS))),
        latest_completion_at: Set(Some(now + Duration::days(DOWNGRADE_MAX_DAYS))),
        completed_at: Set(None),
        cancelled_at: Set(None),
    }
    .insert(&txn)
    .await?;
    green_tick::revoke(&txn, scope.project_id, now).await?;
    signup::record(
        &txn,
        &live,
        signup::LIVE,
        "REQUEST_DOWNGRADE",
        "SUCCEEDED",
        None,
        scope.user_id,
        json!({ "requestId": request.id, "dataDeletion": deletion }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(request)
}

/// Asks for two-step verification to be disabled, so another provider can register the
/// number.
pub async fn request_two_step_disable(
    state: &AppState,
    scope: &Scope,
    new_provider: Option<&str>,
    reason: Option<&str>,
) -> AppResult<lr::Model> {
    let live = live_number(state, scope.project_id).await?;
    if !live.two_step_enabled {
        return Err(AppError::Conflict(
            "two-step verification is off already".into(),
        ));
    }
    let optional = |field: &'static str, v: Option<&str>| {
        v.filter(|v| !v.trim().is_empty())
            .map(|v| validate::text(field, v, 500))
            .transpose()
    };
    let new_provider = optional("newProvider", new_provider)?;
    let reason = optional("reason", reason)?;
    if open_request(state, scope.project_id, TWO_STEP_DISABLE)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(
            "a request to disable two-step verification is open already".into(),
        ));
    }
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let request = lr::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        application_id: Set(Some(live.id)),
        kind: Set(TWO_STEP_DISABLE.into()),
        status: Set(REQUESTED.into()),
        phone_number: Set(live.phone_number.clone()),
        new_provider: Set(new_provider),
        reason: Set(reason),
        data_deletion: Set(None),
        requested_by: Set(scope.user_id),
        requested_at: Set(now),
        earliest_completion_at: Set(None),
        latest_completion_at: Set(None),
        completed_at: Set(None),
        cancelled_at: Set(None),
    }
    .insert(&txn)
    .await?;
    signup::record(
        &txn,
        &live,
        signup::LIVE,
        "REQUEST_TWO_STEP_DISABLE",
        "SUCCEEDED",
        None,
        scope.user_id,
        json!({ "requestId": request.id }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(request)
}

/// The project's requests, newest first (due ones settled).
pub async fn list(state: &AppState, project_id: Uuid) -> AppResult<Vec<lr::Model>> {
    let rows = lr::Entity::find()
        .filter(lr::Column::ProjectId.eq(project_id))
        .order_by_desc(lr::Column::Id)
        .all(&state.db)
        .await?;
    let mut settled = Vec::with_capacity(rows.len());
    for row in rows {
        settled.push(settle(state, row).await?);
    }
    Ok(settled)
}

async fn find(state: &AppState, project_id: Uuid, id: Uuid) -> AppResult<lr::Model> {
    lr::Entity::find_by_id(id)
        .filter(lr::Column::ProjectId.eq(project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("leaving request"))
}

/// Records that the request was carried out (WhatsApp Manager shows the number gone, or
/// support confirms two-step verification is off). A downgrade cannot be done in less
/// than 24 hours.
pub async fn complete(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<lr::Model> {
    let request = settle(state, find(state, scope.project_id, id).await?).await?;
    if request.status != REQUESTED {
        return Err(AppError::Conflict(format!(
            "the request is {} already",
            request.status.to_lowercase()
        )));
    }
    let now = state.settings.clock.now();
    if let Some(earliest) = request.earliest_completion_at
        && now < earliest
    {
        return Err(AppError::Conflict(format!(
            "a downgrade takes at least {DOWNGRADE_MIN_HOURS} hours: not before {}",
            earliest.to_rfc3339()
        )));
    }
    carry_out(state, &request, now, scope.user_id).await
}

/// Cancels a request to disable two-step verification. A downgrade cannot be cancelled:
/// the number is deregistered already (it can apply again).
pub async fn cancel(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<lr::Model> {
    let request = settle(state, find(state, scope.project_id, id).await?).await?;
    if request.status != REQUESTED {
        return Err(AppError::Conflict(format!(
            "the request is {} already",
            request.status.to_lowercase()
        )));
    }
    if request.kind == DOWNGRADE {
        return Err(AppError::Conflict(
            "the number is deregistered already: a downgrade cannot be cancelled (apply again \
             with the same number once it is done)"
                .into(),
        ));
    }
    let now = state.settings.clock.now();
    let result = lr::Entity::update_many()
        .col_expr(lr::Column::Status, CANCELLED.into())
        .col_expr(lr::Column::CancelledAt, Some(now).into())
        .filter(lr::Column::Id.eq(request.id))
        .filter(lr::Column::Status.eq(REQUESTED))
        .exec(&state.db)
        .await?;
    if result.rows_affected != 1 {
        return Err(AppError::Conflict("the request changed meanwhile".into()));
    }
    find(state, scope.project_id, id).await
}

/// The sandbox carries requests out by itself: a downgrade after the shortest window,
/// two-step verification after its usual delay. Meta's downgrades are done by the end of
/// the longest window.
async fn settle(state: &AppState, request: lr::Model) -> AppResult<lr::Model> {
    if request.status != REQUESTED {
        return Ok(request);
    }
    let now = state.settings.clock.now();
    let sandbox = match request.application_id {
        Some(id) => app::Entity::find_by_id(id)
            .one(&state.db)
            .await?
            .is_some_and(|a| a.provider == PROVIDER_SANDBOX),
        None => false,
    };
    let due = match (request.kind.as_str(), sandbox) {
        (DOWNGRADE, true) => request.earliest_completion_at,
        (DOWNGRADE, false) => request.latest_completion_at,
        (_, true) => Some(
            request.requested_at
                + Duration::from_std(state.settings.onboarding.sandbox_step_delay)
                    .unwrap_or(Duration::zero()),
        ),
        (_, false) => None,
    };
    match due {
        Some(at) if at <= now => match carry_out(state, &request, at, None).await {
            Ok(done) => Ok(done),
            Err(AppError::Conflict(_)) => find(state, request.project_id, request.id).await,
            Err(err) => Err(err),
        },
        _ => Ok(request),
    }
}

async fn carry_out(
    state: &AppState,
    request: &lr::Model,
    at: DateTime<Utc>,
    actor: Option<Uuid>,
) -> AppResult<lr::Model> {
    let txn = state.db.begin().await?;
    let result = lr::Entity::update_many()
        .col_expr(lr::Column::Status, COMPLETED.into())
        .col_expr(lr::Column::CompletedAt, Some(at).into())
        .filter(lr::Column::Id.eq(request.id))
        .filter(lr::Column::Status.eq(REQUESTED))
        .exec(&txn)
        .await?;
    if result.rows_affected != 1 {
        return Err(AppError::Conflict("the request changed meanwhile".into()));
    }
    let application = match request.application_id {
        Some(id) => app::Entity::find_by_id(id).one(&txn).await?,
        None => None,
    };
    if let Some(application) = application {
        let action = if request.kind == DOWNGRADE {
            app::Entity::update_many()
                .col_expr(app::Column::Status, signup::DOWNGRADED.into())
                .col_expr(app::Column::TwoStepEnabled, false.into())
                .col_expr(app::Column::ClosedAt, Some(at).into())
                .col_expr(app::Column::UpdatedAt, at.into())
                .filter(app::Column::Id.eq(application.id))
                .exec(&txn)
                .await?;
            // The project no longer sends from the number.
            if let Some(phone_number_id) = &application.phone_number_id {
                whatsapp_account::Entity::delete_many()
                    .filter(whatsapp_account::Column::ProjectId.eq(request.project_id))
                    .filter(whatsapp_account::Column::PhoneNumberId.eq(phone_number_id.clone()))
                    .exec(&txn)
                    .await?;
            }
            "DOWNGRADE_COMPLETED"
        } else {
            app::Entity::update_many()
                .col_expr(app::Column::TwoStepEnabled, false.into())
                .col_expr(app::Column::UpdatedAt, at.into())
                .filter(app::Column::Id.eq(application.id))
                .exec(&txn)
                .await?;
            "TWO_STEP_DISABLED"
        };
        signup::record(
            &txn,
            &application,
            signup::LIVE,
            action,
            "SUCCEEDED",
            None,
            actor,
            json!({ "requestId": request.id }),
            at,
        )
        .await?;
    }
    txn.commit().await?;
    find(state, request.project_id, request.id).await
}

/// Where a leaver is going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Back to the WhatsApp or WhatsApp Business app.
    WhatsAppApp,
    /// To another WhatsApp Business API provider.
    AnotherProvider,
}

#[derive(Clone, Debug)]
pub struct GuidanceStep {
    pub key: &'static str,
    pub title: &'static str,
    /// `TODO`, `IN_PROGRESS`, `DONE`, `BLOCKED` or `NOT_NEEDED`.
    pub status: &'static str,
    pub detail: String,
    /// The mutation that does it, when Parley can.
    pub action: Option<&'static str>,
}

#[derive(Clone, Debug)]
pub struct Guidance {
    pub steps: Vec<GuidanceStep>,
    pub notes: Vec<&'static str>,
}

/// The steps to leave for `goal`, each with where the project stands, and the plan's
/// cancellation as billing sees it.
pub async fn guidance(state: &AppState, project_id: Uuid, goal: Goal) -> AppResult<Guidance> {
    let requests = list(state, project_id).await?;
    let live = signup::live(&state.db, project_id).await?;
    let latest_of = |kind: &str| requests.iter().find(|r| r.kind == kind);
    let mut steps = Vec::new();
    match goal {
        Goal::WhatsAppApp => {
            let downgrade = latest_of(DOWNGRADE).filter(|r| r.status != CANCELLED);
            let (status, detail) = match (downgrade, &live) {
                (Some(r), _) if r.status == COMPLETED => (
                    "DONE",
                    "the number is downgraded: it can be used on the WhatsApp apps".to_owned(),
                ),
                (Some(r), _) => (
                    "IN_PROGRESS",
                    format!(
                        "requested; done between {} and {}",
                        r.earliest_completion_at
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default(),
                        r.latest_completion_at
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default()
                    ),
                ),
                (None, Some(_)) => (
                    "TODO",
                    "downgrade the number (24 hours to 30 days); all its data is deleted for good"
                        .to_owned(),
                ),
                (None, None) => ("NOT_NEEDED", "the project has no live number".to_owned()),
            };
            steps.push(GuidanceStep {
                key: "DOWNGRADE_NUMBER",
                title: "Downgrade the WhatsApp Business API number",
                status,
                detail,
                action: Some("requestDowngrade"),
            });
        }
        Goal::AnotherProvider => {
            let request = latest_of(TWO_STEP_DISABLE).filter(|r| r.status != CANCELLED);
            let (status, detail) = match (request, &live) {
                (Some(r), _) if r.status == COMPLETED => (
                    "DONE",
                    "two-step verification is off: the new provider can register the number"
                        .to_owned(),
                ),
                (Some(_), _) => (
                    "IN_PROGRESS",
                    "requested: support disables two-step verification".to_owned(),
                ),
                (None, Some(l)) if !l.two_step_enabled => {
                    ("DONE", "two-step verification is off".to_owned())
                }
                (None, Some(_)) => (
                    "TODO",
                    "ask for two-step verification to be disabled so that the new provider can \
                     register the number"
                        .to_owned(),
                ),
                (None, None) => ("NOT_NEEDED", "the project has no live number".to_owned()),
            };
            steps.push(GuidanceStep {
                key: "DISABLE_TWO_STEP_VERIFICATION",
                title: "Disable two-step verification",
                status,
                detail,
                action: Some("requestTwoStepVerificationDisable"),
            });
        }
    }
    steps.push(plan_step(state, project_id).await?);
    Ok(Guidance {
        steps,
        notes: vec![
            "Cancelling the plan does not downgrade the number: the data stays until the \
             number is downgraded.",
            "Plans are prepaid: a cancelled plan works until the end of its term, and no \
             refunds are issued.",
            "Credits expire with the plan: use them before the term ends.",
            "Unpaid invoices must be settled before the plan can be cancelled.",
            "A cancelled plan can be reactivated at any time; after a downgrade the number \
             needs a new application.",
        ],
    })
}

async fn plan_step(state: &AppState, project_id: Uuid) -> AppResult<GuidanceStep> {
    let sub = plans::current(&state.db, state, project_id).await?;
    let pending = invoice::Entity::find()
        .filter(invoice::Column::ProjectId.eq(project_id))
        .filter(invoice::Column::Status.eq(plans::PENDING))
        .one(&state.db)
        .await?;
    let end = sub.period_end.to_rfc3339();
    let (status, detail) = if sub.status == plans::EXPIRED {
        ("DONE", "the plan has ended".to_owned())
    } else if sub.cancel_at_period_end {
        ("DONE", format!("cancelled: the plan works until {end}"))
    } else if let Some(invoice) = pending {
        (
            "BLOCKED",
            format!(
                "settle or void invoice {} first, then cancel the plan",
                invoice.number
            ),
        )
    } else if sub.status == plans::TRIALING {
        (
            "NOT_NEEDED",
            format!("the free trial ends by itself on {end}"),
        )
    } else {
        (
            "TODO",
            format!("cancel the plan (cancelSubscription): it works until {end}, with no refund"),
        )
    };
    Ok(GuidanceStep {
        key: "CANCEL_PLAN",
        title: "Cancel the plan",
        status,
        detail,
        action: Some("cancelSubscription"),
    })
}
