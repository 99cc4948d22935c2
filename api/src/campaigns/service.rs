//! Broadcasts: creation with everything checked before anything is sent, sending now or on
//! a schedule, the audience snapshot, pause, resume, cancel, retrying failed recipients and
//! the test send.

use chrono::{DateTime, Duration, Utc};
use parley_entity::{campaign, campaign_recipient, contact, tag, template};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    QueryTrait, TransactionTrait,
    sea_query::{CaseStatement, Expr, Query},
};
use serde_json::json;
use uuid::Uuid;

use super::model::{self, Audience};
use crate::{
    auth::Scope,
    billing::plans::{self, Feature},
    contacts::{filter, segments},
    errors::{AppError, AppResult, ErrorCode},
    events,
    messages::send::{self, SendContent, SendRequest},
    projects,
    state::AppState,
    templates::{self, service::ParameterInput},
};

/// The furthest ahead a broadcast may be scheduled.
const MAX_SCHEDULE_AHEAD_DAYS: i64 = 62;

pub struct NewBroadcast {
    pub name: String,
    pub template_id: Uuid,
    pub parameters: Vec<ParameterInput>,
    pub header_media_link: Option<String>,
    pub audience: Audience,
    pub broadcast_tag_id: Option<Uuid>,
    /// `None`: a draft, started later with `start`.
    pub send: Option<When>,
}

pub enum When {
    Now,
    At(DateTime<Utc>),
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    scope: &Scope,
    id: Uuid,
) -> AppResult<campaign::Model> {
    campaign::Entity::find_by_id(id)
        .filter(campaign::Column::ProjectId.eq(scope.project_id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("campaign"))
}

/// Checks a template's parameters and header media without a contact: the count, that
/// each value is a literal or a known attribute, and the media link.
async fn check_template(
    state: &AppState,
    scope: &Scope,
    template_id: Uuid,
    parameters: &[ParameterInput],
    header_media_link: Option<&str>,
) -> AppResult<template::Model> {
    let found = templates::service::find(state, scope, template_id).await?;
    if found.status != templates::service::APPROVED {
        return Err(AppError::Refused {
            code: ErrorCode::TemplateNotApproved,
            message: format!(
                "only approved templates can be sent; {} is {}",
                found.name, found.status
            ),
        });
    }
    templates::service::check_parameters(state, scope, &found, parameters, header_media_link)
        .await?;
    Ok(found)
}

/// Creates a broadcast. Refused, with the figures, when the audience is empty, larger
/// than the messaging limit allows today, or more than the wallet can pay.
pub async fn create_broadcast(
    state: &AppState,
    scope: &Scope,
    input: NewBroadcast,
) -> AppResult<campaign::Model> {
    let name = crate::validate::text("name", &input.name, 128)?;
    let project = projects::service::current(state, scope).await?;
    let now = state.settings.clock.now();
    if let Some(When::At(at)) = &input.send {
        plans::require(&project, Feature::Scheduling)?;
        if *at <= now || *at > now + Duration::days(MAX_SCHEDULE_AHEAD_DAYS) {
            return Err(AppError::bad_input(
                "scheduledAt",
                "a broadcast is scheduled in the future, at most 2 months ahead",
            ));
        }
    }
    let template = check_template(
        state,
        scope,
        input.template_id,
        &input.parameters,
        input.header_media_link.as_deref(),
    )
    .await?;
    if let Some(tag_id) = input.broadcast_tag_id {
        tag::Entity::find_by_id(tag_id)
            .filter(tag::Column::ProjectId.eq(scope.project_id))
            .one(&state.db)
            .await?
            .ok_or(AppError::NotFound("tag"))?;
    }
    let audience = resolve_audience(state, scope, input.audience).await?;
    let reachable = audience_size(state, scope, &audience, now).await?;
    if reachable == 0 {
        return Err(AppError::bad_input(
            "audience",
            "no contact of the audience can receive it (none, or all opted out, blocked or unreachable)",
        ));
    }
    super::limits::check_audience(state, &project, &template, reachable, now).await?;
    let status = match input.send {
        None => model::DRAFT,
        Some(When::Now) => model::RUNNING,
        Some(When::At(_)) => model::SCHEDULED,
    };
    let txn = state.db.begin().await?;
    let created = campaign::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        name_key: Set(model::name_key(&name)),
        name: Set(name),
        kind: Set(model::BROADCAST.into()),
        template_id: Set(template.id),
        parameters: Set(serde_json::to_string(&input.parameters).map_err(AppError::internal)?),
        header_media_link: Set(input.header_media_link),
        audience: Set(Some(
            serde_json::to_string(&audience).map_err(AppError::internal)?,
        )),
        broadcast_tag_id: Set(input.broadcast_tag_id),
        status: Set(status.into()),
        stop_reason: Set(None),
        scheduled_at: Set(match input.send {
            Some(When::At(at)) => Some(at),
            _ => None,
        }),
        started_at: Set(None),
        completed_at: Set(None),
        cancelled_at: Set(None),
        recipients: Set(0),
        created_by: Set(scope.user_id),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        if crate::validate::is_unique_violation(&e) {
            AppError::Conflict("a campaign of this name exists in the project".into())
        } else {
            e.into()
        }
    })?;
    let created = if status == model::RUNNING {
        snapshot(&txn, state, created, now).await?
    } else {
        created
    };
    events::record_at(
        &txn,
        scope.project_id,
        "campaign.created",
        json!({ "campaignId": created.id, "status": created.status, "recipients": created.recipients }),
        now,
    )
    .await?;
    txn.commit().await?;
    super::dispatcher::wake(state);
    Ok(created)
}

/// The audience with saved segments expanded (the filter as it is now).
async fn resolve_audience(
    state: &AppState,
    scope: &Scope,
    audience: Audience,
) -> AppResult<Audience> {
    Ok(match audience {
        Audience::Filter { filter } => Audience::Filter {
            filter: Box::new(segments::expand(state, scope, *filter).await?),
        },
        Audience::Contacts { ids } => {
            if ids.is_empty() || ids.len() > 10_000 {
                return Err(AppError::bad_input(
                    "audience",
                    "a list audience has 1 to 10,000 contacts; use a filter for more",
                ));
            }
            Audience::Contacts { ids }
        }
    })
}

fn audience_select(
    project_id: Uuid,
    audience: &Audience,
    now: DateTime<Utc>,
) -> AppResult<sea_orm::Select<contact::Entity>> {
    Ok(match audience {
        Audience::Filter { filter } => filter::select(project_id, filter, now)?,
        Audience::Contacts { ids } => contact::Entity::find()
            .filter(contact::Column::ProjectId.eq(project_id))
            .filter(contact::Column::Id.is_in(ids.iter().copied())),
    })
}

/// Contacts of the audience that would not be skipped.
async fn audience_size(
    state: &AppState,
    scope: &Scope,
    audience: &Audience,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    let select = audience_select(scope.project_id, audience, now)?
        .filter(contact::Column::OptedIn.eq(true))
        .filter(contact::Column::IncomingBlocked.eq(false))
        .filter(
            sea_orm::Condition::any()
                .add(contact::Column::Phone.is_not_null())
                .add(contact::Column::Bsuid.is_not_null()),
        );
    Ok(select.count(&state.db).await?)
}

/// Writes the audience as it is now into `campaign_recipients` (one statement, in the
/// database), marking those who cannot receive it as skipped with the reason.
pub async fn snapshot<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    campaign: campaign::Model,
    now: DateTime<Utc>,
) -> AppResult<campaign::Model> {
    let audience: Audience =
        serde_json::from_str(campaign.audience.as_deref().unwrap_or("null"))
            .map_err(|e| AppError::internal(anyhow::anyhow!("campaign audience: {e}")))?;
    let mut unreachable = Expr::col(contact::Column::Phone)
        .is_null()
        .and(Expr::col(contact::Column::Bsuid).is_null());
    for (prefix, _) in state.settings.unreachable.entries() {
        unreachable = unreachable.or(Expr::col(contact::Column::Phone).like(format!("+{prefix}%")));
    }
    let skip_reason = CaseStatement::new()
        .case(
            Expr::col(contact::Column::OptedIn).eq(false),
            Expr::val(model::OPTED_OUT),
        )
        .case(
            Expr::col(contact::Column::IncomingBlocked).eq(true),
            Expr::val(model::INCOMING_BLOCKED),
        )
        .case(unreachable.clone(), Expr::val(model::UNREACHABLE));
    let status = CaseStatement::new()
        .case(
            Expr::col(contact::Column::OptedIn).eq(false),
            Expr::val(model::SKIPPED),
        )
        .case(
            Expr::col(contact::Column::IncomingBlocked).eq(true),
            Expr::val(model::SKIPPED),
        )
        .case(unreachable, Expr::val(model::SKIPPED))
        .finally(Expr::val(model::QUEUED));
    let select = audience_select(campaign.project_id, &audience, now)?
        .select_only()
        .expr(Expr::val(campaign.id))
        .column(contact::Column::Id)
        .column(contact::Column::ProjectId)
        .expr(Expr::val(0i64))
        .expr(status)
        .expr(skip_reason)
        .expr(Expr::val(0i32))
        .expr(Expr::val(now))
        .expr(Expr::val(now))
        .into_query();
    let insert = Query::insert()
        .into_table(campaign_recipient::Entity)
        .columns([
            campaign_recipient::Column::CampaignId,
            campaign_recipient::Column::ContactId,
            campaign_recipient::Column::ProjectId,
            campaign_recipient::Column::Seq,
            campaign_recipient::Column::Status,
            campaign_recipient::Column::SkipReason,
            campaign_recipient::Column::Attempts,
            campaign_recipient::Column::QueuedAt,
            campaign_recipient::Column::UpdatedAt,
        ])
        .select_from(select)
        .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?
        .to_owned();
    let backend = conn.get_database_backend();
    let written = conn.execute(backend.build(&insert)).await?.rows_affected();
    let mut active: campaign::ActiveModel = campaign.into();
    active.status = Set(model::RUNNING.into());
    active.started_at = Set(Some(now));
    active.recipients = Set(i64::try_from(written).unwrap_or(i64::MAX));
    active.updated_at = Set(now);
    Ok(active.update(conn).await?)
}

/// Conditionally moves a campaign from one of `from` to `to`; a CONFLICT names the state
/// it was found in.
async fn transition<C: ConnectionTrait>(
    conn: &C,
    campaign: &campaign::Model,
    from: &[&str],
    to: &str,
    now: DateTime<Utc>,
    extra: impl FnOnce(&mut sea_orm::UpdateMany<campaign::Entity>),
) -> AppResult<()> {
    let mut update = campaign::Entity::update_many()
        .col_expr(campaign::Column::Status, Expr::val(to).into())
        .col_expr(campaign::Column::UpdatedAt, Expr::val(now).into())
        .filter(campaign::Column::Id.eq(campaign.id))
        .filter(campaign::Column::Status.is_in(from.iter().copied()));
    extra(&mut update);
    if update.exec(conn).await?.rows_affected != 1 {
        return Err(AppError::Conflict(format!(
            "the campaign is {}; this needs it {}",
            campaign.status.to_lowercase(),
            from.iter()
                .map(|s| s.to_lowercase())
                .collect::<Vec<_>>()
                .join(" or ")
        )));
    }
    Ok(())
}

/// Starts a draft now.
pub async fn start(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<campaign::Model> {
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let found = find(&txn, scope, id).await?;
    transition(&txn, &found, &[model::DRAFT], model::RUNNING, now, |_| {}).await?;
    let started = snapshot(&txn, state, found, now).await?;
    txn.commit().await?;
    super::dispatcher::wake(state);
    Ok(started)
}

pub async fn pause(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<campaign::Model> {
    let now = state.settings.clock.now();
    let found = find(&state.db, scope, id).await?;
    transition(
        &state.db,
        &found,
        &[model::RUNNING, model::LIVE],
        model::PAUSED,
        now,
        |_| {},
    )
    .await?;
    find(&state.db, scope, id).await
}

pub async fn resume(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<campaign::Model> {
    let now = state.settings.clock.now();
    let found = find(&state.db, scope, id).await?;
    let to = if found.kind == model::API {
        model::LIVE
    } else {
        model::RUNNING
    };
    transition(&state.db, &found, &[model::PAUSED], to, now, |u| {
        *u = u.clone().col_expr(
            campaign::Column::StopReason,
            Expr::val(Option::<String>::None).into(),
        );
    })
    .await?;
    super::dispatcher::wake(state);
    find(&state.db, scope, id).await
}

/// Cancels a scheduled, running or paused broadcast: recipients not yet sent are skipped
/// as cancelled.
pub async fn cancel(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<campaign::Model> {
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let found = find(&txn, scope, id).await?;
    transition(
        &txn,
        &found,
        &[
            model::DRAFT,
            model::SCHEDULED,
            model::RUNNING,
            model::PAUSED,
        ],
        model::CANCELLED,
        now,
        |u| {
            *u = u
                .clone()
                .col_expr(campaign::Column::CancelledAt, Expr::val(now).into());
        },
    )
    .await?;
    campaign_recipient::Entity::update_many()
        .col_expr(
            campaign_recipient::Column::Status,
            Expr::val(model::SKIPPED).into(),
        )
        .col_expr(
            campaign_recipient::Column::SkipReason,
            Expr::val("CANCELLED").into(),
        )
        .col_expr(campaign_recipient::Column::UpdatedAt, Expr::val(now).into())
        .filter(campaign_recipient::Column::CampaignId.eq(id))
        .filter(campaign_recipient::Column::Status.eq(model::QUEUED))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    find(&state.db, scope, id).await
}

/// Queues the failed (and interrupted) recipients again; the campaign runs again.
pub async fn retry_failed(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<u64> {
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let found = find(&txn, scope, id).await?;
    if found.kind != model::BROADCAST
        || !matches!(
            found.status.as_str(),
            model::RUNNING | model::PAUSED | model::COMPLETED
        )
    {
        return Err(AppError::Conflict(format!(
            "failed recipients of a {} campaign cannot be retried",
            found.status.to_lowercase()
        )));
    }
    let queued = campaign_recipient::Entity::update_many()
        .col_expr(
            campaign_recipient::Column::Status,
            Expr::val(model::QUEUED).into(),
        )
        .col_expr(
            campaign_recipient::Column::MessageId,
            Expr::val(Option::<Uuid>::None).into(),
        )
        .col_expr(
            campaign_recipient::Column::ErrorCode,
            Expr::val(Option::<i64>::None).into(),
        )
        .col_expr(
            campaign_recipient::Column::ErrorTitle,
            Expr::val(Option::<String>::None).into(),
        )
        .col_expr(
            campaign_recipient::Column::FailureGroup,
            Expr::val(Option::<String>::None).into(),
        )
        .col_expr(
            campaign_recipient::Column::FailedAt,
            Expr::val(Option::<DateTime<Utc>>::None).into(),
        )
        .col_expr(campaign_recipient::Column::UpdatedAt, Expr::val(now).into())
        .filter(campaign_recipient::Column::CampaignId.eq(id))
        .filter(campaign_recipient::Column::Status.is_in([model::FAILED, model::INTERRUPTED]))
        .exec(&txn)
        .await?
        .rows_affected;
    if queued > 0 && found.status == model::COMPLETED {
        campaign::Entity::update_many()
            .col_expr(campaign::Column::Status, Expr::val(model::RUNNING).into())
            .col_expr(
                campaign::Column::CompletedAt,
                Expr::val(Option::<DateTime<Utc>>::None).into(),
            )
            .col_expr(campaign::Column::UpdatedAt, Expr::val(now).into())
            .filter(campaign::Column::Id.eq(id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    super::dispatcher::wake(state);
    Ok(queued)
}

/// Sends the campaign's template, as its recipients will get it, to one chosen contact
/// (not counted in the campaign).
pub async fn test_send(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    contact_id: Uuid,
) -> AppResult<parley_entity::message::Model> {
    let found = find(&state.db, scope, id).await?;
    let parameters: Vec<ParameterInput> = serde_json::from_str(&found.parameters)
        .map_err(|e| AppError::internal(anyhow::anyhow!("campaign parameters: {e}")))?;
    send::send(
        state,
        scope,
        SendRequest {
            contact_id,
            content: SendContent::Template {
                template_id: found.template_id,
                parameters,
                header_media_link: found.header_media_link,
            },
            reply_to: None,
        },
    )
    .await
}
