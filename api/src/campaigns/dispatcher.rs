//! The broadcast dispatcher: a durable queue in the database (`campaign_recipients`),
//! worked by every node. A node claims the next recipients of a running campaign with
//! `FOR UPDATE SKIP LOCKED` (PostgreSQL; the embedded database has one writer), marks them
//! `SENDING` under a lease, and sends at the number's throughput (a `governor` rate
//! limiter per number). Each send records its message id on the recipient in the same
//! transaction as the message and its charge, before Meta is called.
//!
//! After a crash, a claim whose lease ran out is settled from what was recorded: no
//! message yet → queued again (nothing reached Meta); a message Meta accepted → sent; a
//! message still pending → `INTERRUPTED` (it may have reached Meta, so it is not sent
//! again by itself: no recipient gets two messages). Rate-limit answers (130429, 131056)
//! put the recipient back in the queue with a growing delay; a paused or disabled template
//! (132015, 132016) stops the campaign; an empty wallet pauses it.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parley_entity::{campaign, campaign_recipient, contact, message, whatsapp_account};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement, TransactionTrait, sea_query::Expr,
};
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::model::{self, FailureGroup};
use crate::{
    auth::{Role, Scope},
    errors::{AppError, AppResult, ErrorCode},
    events,
    messages::{
        send::{self, CampaignSend, SendContent, SendRequest},
        store,
    },
    state::AppState,
    templates::service::ParameterInput,
    whatsapp::accounts,
};

/// Sends in flight at once per campaign. The embedded database has one writer: sends
/// there go one at a time (concurrent ones would only collide).
fn concurrency(state: &AppState) -> usize {
    match state.db.get_database_backend() {
        DbBackend::Postgres => 64,
        _ => 1,
    }
}
/// The longest the dispatcher sleeps when there is nothing to do (it is woken on changes).
const IDLE: Duration = Duration::from_millis(500);

/// Wakes and rate limiters shared by this node's dispatcher.
#[derive(Default)]
pub struct Dispatch {
    wake: Notify,
    limiters: Mutex<HashMap<(Uuid, u32), Arc<DefaultDirectRateLimiter>>>,
}

/// Something changed (a campaign started, resumed, was retried): look now.
pub fn wake(state: &AppState) {
    state.dispatch.wake.notify_one();
}

fn limiter(state: &AppState, project_id: Uuid, per_second: u32) -> Arc<DefaultDirectRateLimiter> {
    let per_second = NonZeroU32::new(per_second.clamp(1, 1_000)).unwrap_or(NonZeroU32::MIN);
    state
        .dispatch
        .limiters
        .lock()
        .expect("rate limiters")
        .entry((project_id, per_second.get()))
        .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_second(per_second))))
        .clone()
}

pub async fn run(state: AppState, stop: CancellationToken) {
    loop {
        let worked = match round(&state).await {
            Ok(worked) => worked,
            Err(err) => {
                tracing::warn!(error = %err, "the campaign dispatcher failed a round");
                false
            }
        };
        if worked {
            if stop.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = state.dispatch.wake.notified() => {}
            () = tokio::time::sleep(IDLE) => {}
        }
    }
}

/// One pass: settle expired claims, start due scheduled campaigns, send one second's
/// worth of each running campaign. True when something was sent.
async fn round(state: &AppState) -> AppResult<bool> {
    let now = state.settings.clock.now();
    settle_expired_claims(state, now).await?;
    start_due(state, now).await?;
    let running = campaign::Entity::find()
        .filter(campaign::Column::Status.eq(model::RUNNING))
        .filter(campaign::Column::Kind.eq(model::BROADCAST))
        .order_by_asc(campaign::Column::StartedAt)
        .limit(20)
        .all(&state.db)
        .await?;
    let mut worked = false;
    for campaign in running {
        worked |= dispatch(state, &campaign).await?;
    }
    Ok(worked)
}

async fn start_due(state: &AppState, now: DateTime<Utc>) -> AppResult<()> {
    let due = campaign::Entity::find()
        .filter(campaign::Column::Status.eq(model::SCHEDULED))
        .filter(campaign::Column::ScheduledAt.lte(now))
        .all(&state.db)
        .await?;
    for found in due {
        let txn = state.db.begin().await?;
        // Claimed by moving it out of SCHEDULED: one node starts it.
        let claimed = campaign::Entity::update_many()
            .col_expr(campaign::Column::Status, Expr::val(model::RUNNING).into())
            .filter(campaign::Column::Id.eq(found.id))
            .filter(campaign::Column::Status.eq(model::SCHEDULED))
            .exec(&txn)
            .await?;
        if claimed.rows_affected == 1 {
            super::service::snapshot(&txn, state, found, now).await?;
            txn.commit().await?;
        }
    }
    Ok(())
}

/// Claims and sends the next recipients of a campaign, at most one second's worth at the
/// number's throughput. True when it sent anything.
async fn dispatch(state: &AppState, found: &campaign::Model) -> AppResult<bool> {
    let account = accounts::for_project(&state.db, state, found.project_id).await?;
    let per_second = u32::try_from(account.throughput_per_second).unwrap_or(80);
    let now = state.settings.clock.now();
    let lease = chrono::Duration::from_std(state.settings.campaigns.claim_lease)
        .unwrap_or(chrono::Duration::seconds(120));
    let claimed = claim(state, found.id, per_second, now, lease).await?;
    if claimed.is_empty() {
        complete_if_done(state, found, now).await?;
        return Ok(false);
    }
    let parameters: Vec<ParameterInput> = serde_json::from_str(&found.parameters)
        .map_err(|e| AppError::internal(anyhow::anyhow!("campaign parameters: {e}")))?;
    let limiter = limiter(state, found.project_id, per_second);
    let scope = Scope {
        project_id: found.project_id,
        role: Role::Owner,
        archived: false,
        user_id: found.created_by,
        api_key_id: None,
    };
    let outcomes: Vec<Outcome> = futures::stream::iter(claimed)
        .map(|contact_id| {
            let limiter = limiter.clone();
            let (state, scope, parameters, account) = (state, &scope, &parameters, &account);
            async move {
                limiter.until_ready().await;
                send_one(state, scope, found, account, parameters, contact_id).await
            }
        })
        .buffer_unordered(concurrency(state))
        .collect()
        .await;
    if let Some(reason) = outcomes.iter().find_map(|o| match o {
        Outcome::Stop(reason) => Some(reason.clone()),
        _ => None,
    }) {
        stop(state, found, model::STOPPED, &reason).await?;
    } else if let Some(reason) = outcomes.iter().find_map(|o| match o {
        Outcome::Pause(reason) => Some(reason.clone()),
        _ => None,
    }) {
        stop(state, found, model::PAUSED, &reason).await?;
    }
    Ok(true)
}

/// Marks the next due queued recipients `SENDING` under a lease; returns their contacts.
async fn claim(
    state: &AppState,
    campaign_id: Uuid,
    count: u32,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> AppResult<Vec<Uuid>> {
    let backend = state.db.get_database_backend();
    let sql = match backend {
        // A CTE runs the locking pick once: `IN (SELECT … LIMIT … SKIP LOCKED)` may be
        // re-run by the planner and claim more than the limit.
        DbBackend::Postgres => {
            "WITH picked AS ( \
               SELECT contact_id FROM campaign_recipients \
               WHERE campaign_id = $3 AND status = 'QUEUED' \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= $2) \
               ORDER BY seq, contact_id LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE campaign_recipients r SET status = 'SENDING', claimed_until = $1, \
               attempts = r.attempts + 1, updated_at = $2 \
             FROM picked WHERE r.campaign_id = $3 AND r.contact_id = picked.contact_id \
             RETURNING r.contact_id"
        }
        _ => {
            "UPDATE campaign_recipients SET status = 'SENDING', claimed_until = ?1, \
             attempts = attempts + 1, updated_at = ?2 \
             WHERE campaign_id = ?3 AND contact_id IN ( \
               SELECT contact_id FROM campaign_recipients \
               WHERE campaign_id = ?3 AND status = 'QUEUED' \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= ?2) \
               ORDER BY seq, contact_id LIMIT ?4) \
             RETURNING contact_id"
        }
    };
    let rows = state
        .db
        .query_all(Statement::from_sql_and_values(
            backend,
            sql,
            [
                (now + lease).into(),
                now.into(),
                campaign_id.into(),
                i64::from(count).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<Uuid>(0).map_err(AppError::from))
        .collect()
}

enum Outcome {
    Done,
    /// Pause the campaign (the wallet is empty).
    Pause(String),
    /// Stop the campaign (the template cannot be sent any more).
    Stop(String),
}

async fn send_one(
    state: &AppState,
    scope: &Scope,
    found: &campaign::Model,
    account: &whatsapp_account::Model,
    parameters: &[ParameterInput],
    contact_id: Uuid,
) -> Outcome {
    match try_send(state, scope, found, account, parameters, contact_id).await {
        Ok(outcome) => outcome,
        Err(err) => {
            // Settled now from what was recorded (a busy database, say): queued again if
            // nothing reached Meta. If even that fails, the claim's lease settles it.
            tracing::warn!(error = %err, campaign = %found.id, "a campaign send failed");
            let settled = async {
                let claimed = campaign_recipient::Entity::find_by_id((found.id, contact_id))
                    .one(&state.db)
                    .await?;
                if let Some(recipient) = claimed.filter(|r| r.status == model::SENDING) {
                    let retry_at = state.settings.clock.now() + chrono::Duration::seconds(1);
                    settle(state, recipient, retry_at).await?;
                }
                AppResult::Ok(())
            };
            if let Err(err) = settled.await {
                tracing::warn!(error = %err, "could not settle a failed campaign send");
            }
            Outcome::Done
        }
    }
}

async fn try_send(
    state: &AppState,
    scope: &Scope,
    found: &campaign::Model,
    account: &whatsapp_account::Model,
    parameters: &[ParameterInput],
    contact_id: Uuid,
) -> AppResult<Outcome> {
    let now = state.settings.clock.now();
    let Some(recipient) = contact::Entity::find_by_id(contact_id)
        .one(&state.db)
        .await?
    else {
        return finish(
            state,
            found.id,
            contact_id,
            Finish::Skipped(model::UNREACHABLE),
            now,
        )
        .await;
    };
    // Opted out or blocked since the snapshot: never reached.
    if !recipient.opted_in {
        return finish(
            state,
            found.id,
            contact_id,
            Finish::Skipped(model::OPTED_OUT),
            now,
        )
        .await;
    }
    if recipient.incoming_blocked {
        return finish(
            state,
            found.id,
            contact_id,
            Finish::Skipped(model::INCOMING_BLOCKED),
            now,
        )
        .await;
    }
    if !super::limits::may_reach(
        &state.db,
        found.project_id,
        contact_id,
        account.messaging_limit,
        now,
    )
    .await?
    {
        // The limit frees up as the 24-hour window moves: try again later.
        return finish(
            state,
            found.id,
            contact_id,
            Finish::Later(now + chrono::Duration::minutes(10)),
            now,
        )
        .await;
    }
    let request = SendRequest {
        contact_id,
        content: SendContent::Template {
            template_id: found.template_id,
            parameters: parameters.to_vec(),
            header_media_link: found.header_media_link.clone(),
        },
        reply_to: None,
    };
    let campaign = CampaignSend {
        campaign_id: found.id,
        message_id: Uuid::now_v7(),
    };
    match send::send_for_campaign(state, scope, request, campaign).await {
        Ok(sent) => {
            if let Some(tag_id) = found.broadcast_tag_id {
                tag_reached(state, found, contact_id, tag_id, now).await?;
            }
            finish(
                state,
                found.id,
                contact_id,
                Finish::Sent(Box::new(sent)),
                now,
            )
            .await?;
            Ok(Outcome::Done)
        }
        Err(AppError::Provider { meta_code, message }) if model::is_rate_limited(meta_code) => {
            let recipient = campaign_recipient::Entity::find_by_id((found.id, contact_id))
                .one(&state.db)
                .await?;
            let attempts = recipient.map_or(1, |r| r.attempts.max(1));
            let backoff = chrono::Duration::seconds(2i64.pow(attempts.min(8) as u32));
            tracing::info!(meta_code, message, "rate limited by Meta: retrying later");
            finish(
                state,
                found.id,
                contact_id,
                Finish::Later(now + backoff),
                now,
            )
            .await?;
            Ok(Outcome::Done)
        }
        Err(AppError::Provider { meta_code, message }) => {
            let group = FailureGroup::of(meta_code);
            finish(
                state,
                found.id,
                contact_id,
                Finish::Failed {
                    code: meta_code,
                    title: message.clone(),
                },
                now,
            )
            .await?;
            if group == FailureGroup::TemplatePaused {
                return Ok(Outcome::Stop(format!(
                    "Meta refused the template ({}): {message}",
                    meta_code.unwrap_or_default()
                )));
            }
            Ok(Outcome::Done)
        }
        Err(err) if err.code() == ErrorCode::InsufficientCredits => {
            finish(state, found.id, contact_id, Finish::Later(now), now).await?;
            Ok(Outcome::Pause(
                "the wallet cannot pay for the next message: top it up and resume".into(),
            ))
        }
        Err(err) if err.code() == ErrorCode::TemplateNotApproved => {
            finish(state, found.id, contact_id, Finish::Later(now), now).await?;
            Ok(Outcome::Stop(err.to_string()))
        }
        Err(err @ (AppError::Unavailable(_) | AppError::Internal(_))) => Err(err),
        Err(err) => {
            finish(
                state,
                found.id,
                contact_id,
                Finish::Failed {
                    code: None,
                    title: err.to_string(),
                },
                now,
            )
            .await?;
            Ok(Outcome::Done)
        }
    }
}

/// The broadcast's tag on a contact it reached (kept if the contact has it already).
async fn tag_reached(
    state: &AppState,
    found: &campaign::Model,
    contact_id: Uuid,
    tag_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    use sea_orm::{ActiveValue::Set, sea_query::OnConflict};
    parley_entity::contact_tag::Entity::insert(parley_entity::contact_tag::ActiveModel {
        contact_id: Set(contact_id),
        tag_id: Set(tag_id),
        project_id: Set(found.project_id),
        added_at: Set(now),
        added_by: Set(found.created_by),
    })
    .on_conflict(
        OnConflict::columns([
            parley_entity::contact_tag::Column::ContactId,
            parley_entity::contact_tag::Column::TagId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(&state.db)
    .await?;
    Ok(())
}

enum Finish {
    Sent(Box<message::Model>),
    Skipped(&'static str),
    Failed {
        code: Option<i64>,
        title: String,
    },
    /// Back in the queue, due then.
    Later(DateTime<Utc>),
}

/// Records a recipient's outcome (only while it is still claimed by this send).
async fn finish(
    state: &AppState,
    campaign_id: Uuid,
    contact_id: Uuid,
    outcome: Finish,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let update = campaign_recipient::Entity::update_many()
        .col_expr(campaign_recipient::Column::UpdatedAt, Expr::val(now).into())
        .col_expr(
            campaign_recipient::Column::ClaimedUntil,
            Expr::val(Option::<DateTime<Utc>>::None).into(),
        )
        .filter(campaign_recipient::Column::CampaignId.eq(campaign_id))
        .filter(campaign_recipient::Column::ContactId.eq(contact_id))
        .filter(campaign_recipient::Column::Status.eq(model::SENDING));
    let (update, event) = match outcome {
        Finish::Sent(sent) => {
            let status = super::tracking::recipient_status(&sent.status);
            (
                update
                    .col_expr(campaign_recipient::Column::Status, Expr::val(status).into())
                    .col_expr(
                        campaign_recipient::Column::MessageId,
                        Expr::val(sent.id).into(),
                    )
                    .col_expr(campaign_recipient::Column::SentAt, Expr::val(now).into()),
                Some(("campaign.sent", json!({}))),
            )
        }
        Finish::Skipped(reason) => (
            update
                .col_expr(
                    campaign_recipient::Column::Status,
                    Expr::val(model::SKIPPED).into(),
                )
                .col_expr(
                    campaign_recipient::Column::SkipReason,
                    Expr::val(reason).into(),
                ),
            Some(("campaign.skipped", json!({ "reason": reason }))),
        ),
        Finish::Failed { code, title } => {
            let group = FailureGroup::of(code).as_str();
            (
                update
                    .col_expr(
                        campaign_recipient::Column::Status,
                        Expr::val(model::FAILED).into(),
                    )
                    .col_expr(
                        campaign_recipient::Column::ErrorCode,
                        Expr::val(code).into(),
                    )
                    .col_expr(
                        campaign_recipient::Column::ErrorTitle,
                        Expr::val(title).into(),
                    )
                    .col_expr(
                        campaign_recipient::Column::FailureGroup,
                        Expr::val(group).into(),
                    )
                    .col_expr(campaign_recipient::Column::FailedAt, Expr::val(now).into()),
                Some((
                    "campaign.failed",
                    json!({ "group": group, "errorCode": code }),
                )),
            )
        }
        Finish::Later(at) => (
            update
                .col_expr(
                    campaign_recipient::Column::Status,
                    Expr::val(model::QUEUED).into(),
                )
                .col_expr(
                    campaign_recipient::Column::NextAttemptAt,
                    Expr::val(at).into(),
                ),
            None,
        ),
    };
    let txn = state.db.begin().await?;
    let changed = update.exec(&txn).await?.rows_affected == 1;
    if changed && let Some((kind, mut payload)) = event {
        let project_id = campaign::Entity::find_by_id(campaign_id)
            .one(&txn)
            .await?
            .map(|c| c.project_id)
            .unwrap_or_default();
        payload["campaignId"] = json!(campaign_id);
        payload["contactId"] = json!(contact_id);
        events::record_at(&txn, project_id, kind, payload, now).await?;
    }
    txn.commit().await?;
    if changed {
        super::progress::publish(state, campaign_id).await;
    }
    Ok(Outcome::Done)
}

/// Claims whose lease ran out (a node stopped mid-send) are settled from what was recorded.
async fn settle_expired_claims(state: &AppState, now: DateTime<Utc>) -> AppResult<()> {
    let expired = campaign_recipient::Entity::find()
        .filter(campaign_recipient::Column::Status.eq(model::SENDING))
        .filter(campaign_recipient::Column::ClaimedUntil.lt(now))
        .limit(1_000)
        .all(&state.db)
        .await?;
    for recipient in expired {
        settle(state, recipient, now).await?;
    }
    Ok(())
}

/// Settles a claimed recipient from what was recorded (see the module's comment).
async fn settle(
    state: &AppState,
    recipient: campaign_recipient::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let message = match recipient.message_id {
        Some(id) => message::Entity::find_by_id(id).one(&state.db).await?,
        None => None,
    };
    let outcome = match message {
        // Nothing was recorded, so nothing reached Meta: queue it again.
        None => Finish::Later(now),
        Some(m) if m.status == store::PENDING => Finish::Skipped(model::INTERRUPTED),
        Some(m) if m.status == store::FAILED => Finish::Failed {
            code: m.error_code,
            title: m.error_title.clone().unwrap_or_default(),
        },
        Some(m) => Finish::Sent(Box::new(m)),
    };
    if let Finish::Skipped(model::INTERRUPTED) = outcome {
        campaign_recipient::Entity::update_many()
            .col_expr(
                campaign_recipient::Column::Status,
                Expr::val(model::INTERRUPTED).into(),
            )
            .col_expr(campaign_recipient::Column::UpdatedAt, Expr::val(now).into())
            .filter(campaign_recipient::Column::CampaignId.eq(recipient.campaign_id))
            .filter(campaign_recipient::Column::ContactId.eq(recipient.contact_id))
            .filter(campaign_recipient::Column::Status.eq(model::SENDING))
            .exec(&state.db)
            .await?;
        return Ok(());
    }
    finish(
        state,
        recipient.campaign_id,
        recipient.contact_id,
        outcome,
        now,
    )
    .await?;
    Ok(())
}

async fn complete_if_done(
    state: &AppState,
    found: &campaign::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let open = campaign_recipient::Entity::find()
        .filter(campaign_recipient::Column::CampaignId.eq(found.id))
        .filter(campaign_recipient::Column::Status.is_in([model::QUEUED, model::SENDING]))
        .limit(1)
        .one(&state.db)
        .await?;
    if open.is_some() {
        return Ok(());
    }
    let txn = state.db.begin().await?;
    let done = campaign::Entity::update_many()
        .col_expr(campaign::Column::Status, Expr::val(model::COMPLETED).into())
        .col_expr(campaign::Column::CompletedAt, Expr::val(now).into())
        .col_expr(campaign::Column::UpdatedAt, Expr::val(now).into())
        .filter(campaign::Column::Id.eq(found.id))
        .filter(campaign::Column::Status.eq(model::RUNNING))
        .exec(&txn)
        .await?;
    if done.rows_affected == 1 {
        events::record_at(
            &txn,
            found.project_id,
            "campaign.completed",
            json!({ "campaignId": found.id }),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    if done.rows_affected == 1 {
        super::progress::publish_now(state, found.id).await;
    }
    Ok(())
}

async fn stop(state: &AppState, found: &campaign::Model, to: &str, reason: &str) -> AppResult<()> {
    let now = state.settings.clock.now();
    campaign::Entity::update_many()
        .col_expr(campaign::Column::Status, Expr::val(to).into())
        .col_expr(campaign::Column::StopReason, Expr::val(reason).into())
        .col_expr(campaign::Column::UpdatedAt, Expr::val(now).into())
        .filter(campaign::Column::Id.eq(found.id))
        .filter(campaign::Column::Status.eq(model::RUNNING))
        .exec(&state.db)
        .await?;
    super::progress::publish_now(state, found.id).await;
    Ok(())
}
