//! The broadcast dispatcher: a durable queue in the database (`campaign_recipients`),
//! worked by every node. A node claims the next recipients of a running campaign with
//! `FOR UPDATE SKIP LOCKED` (PostgreSQL; the embedded database has one writer), marks them
//! `SENDING` under a lease, and sends at the number's throughput (a `governor` rate
//! limiter per number). The claim is sent in chunks (`batch.rs`): each chunk records its
//! messages, their charges and the recipients' message ids in one transaction before Meta
//! is called.
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

use chrono::{DateTime, SubsecRound, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parley_entity::{campaign, campaign_recipient, message};
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
    errors::{AppError, AppResult, ErrorCode},
    events,
    messages::store,
    state::AppState,
    templates::service::ParameterInput,
    whatsapp::accounts,
};

/// The longest the dispatcher sleeps when there is nothing to do (it is woken on changes).
const IDLE: Duration = Duration::from_millis(500);
/// The highest throughput the dispatcher paces at. The API sets 1 to 1,000 per second
/// (Meta's range); a higher value written in the database (a benchmark's "no limit") is
/// followed up to this.
const MAX_PER_SECOND: u32 = 100_000;
/// The most recipients one claim takes (one second's worth, up to this).
const MAX_CLAIM: u32 = 10_000;
/// How long a campaign's turn claims more while it sends (the next claim is made while
/// the last chunks of the previous one are sent); then the turn ends and the dispatcher
/// settles expired claims, starts due campaigns and gives the next campaign its turn.
const TURN: Duration = Duration::from_secs(5);

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

/// The number's rate limiter: `per_second` sends a second, in bursts of at most a tenth
/// of a second's worth (a full second's burst would send up to twice the rate in the
/// first second, and again after every pause).
fn limiter(state: &AppState, project_id: Uuid, per_second: u32) -> Arc<DefaultDirectRateLimiter> {
    let per_second =
        NonZeroU32::new(per_second.clamp(1, MAX_PER_SECOND)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second.get().div_ceil(10)).unwrap_or(NonZeroU32::MIN);
    state
        .dispatch
        .limiters
        .lock()
        .expect("rate limiters")
        .entry((project_id, per_second.get()))
        .or_insert_with(|| {
            Arc::new(RateLimiter::direct(
                Quota::per_second(per_second).allow_burst(burst),
            ))
        })
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
    let per_second = u32::try_from(account.throughput_per_second)
        .unwrap_or(80)
        .clamp(1, MAX_PER_SECOND);
    let now = state.settings.clock.now();
    let lease = chrono::Duration::from_std(state.settings.campaigns.claim_lease)
        .unwrap_or(chrono::Duration::seconds(120));
    let claimed = claim(state, found.id, per_second.min(MAX_CLAIM), now, lease).await?;
    if claimed.recipients.is_empty() {
        complete_if_done(state, found, now).await?;
        return Ok(false);
    }
    let parameters: Vec<ParameterInput> = serde_json::from_str(&found.parameters)
        .map_err(|e| AppError::internal(anyhow::anyhow!("campaign parameters: {e}")))?;
    let limiter = limiter(state, found.project_id, per_second);
    let refill = super::batch::Refill {
        count: per_second.min(MAX_CLAIM),
        lease,
        window: TURN,
    };
    let outcomes = super::batch::send(
        state,
        found,
        &account,
        &parameters,
        claimed,
        limiter,
        refill,
    )
    .await?;
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

/// Recipients claimed by one round: (contact, attempts so far, this one included), and
/// the lease they were claimed under, which also tells this claim from a later one.
pub(super) struct Claimed {
    pub recipients: Vec<(Uuid, i32)>,
    pub until: DateTime<Utc>,
}

/// Marks the next due queued recipients `SENDING` under a lease; returns them. Nothing is
/// claimed once the campaign is no longer running (paused, cancelled, stopped).
pub(super) async fn claim(
    state: &AppState,
    campaign_id: Uuid,
    count: u32,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> AppResult<Claimed> {
    let backend = state.db.get_database_backend();
    let sql = match backend {
        // A CTE runs the locking pick once: `IN (SELECT … LIMIT … SKIP LOCKED)` may be
        // re-run by the planner and claim more than the limit. The pick has no ORDER BY:
        // every recipient of a snapshot has the same `seq`, and a sort would read the
        // whole queue on every claim (1.4 s for a queue of 1,000,000, where the pick
        // alone takes 40 ms).
        DbBackend::Postgres => {
            "WITH picked AS ( \
               SELECT contact_id FROM campaign_recipients \
               WHERE campaign_id = $3 AND status = 'QUEUED' \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= $2) \
                 AND EXISTS (SELECT 1 FROM campaigns WHERE id = $3 AND status = 'RUNNING') \
               LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE campaign_recipients r SET status = 'SENDING', claimed_until = $1, \
               attempts = r.attempts + 1, updated_at = $2 \
             FROM picked WHERE r.campaign_id = $3 AND r.contact_id = picked.contact_id \
             RETURNING r.contact_id, r.attempts, r.seq"
        }
        _ => {
            "UPDATE campaign_recipients SET status = 'SENDING', claimed_until = ?1, \
             attempts = attempts + 1, updated_at = ?2 \
             WHERE campaign_id = ?3 AND contact_id IN ( \
               SELECT contact_id FROM campaign_recipients \
               WHERE campaign_id = ?3 AND status = 'QUEUED' \
                 AND (next_attempt_at IS NULL OR next_attempt_at <= ?2) \
                 AND EXISTS (SELECT 1 FROM campaigns WHERE id = ?3 AND status = 'RUNNING') \
               LIMIT ?4) \
             RETURNING contact_id, attempts, seq"
        }
    };
    // Whole microseconds, as the database keeps it: the claim is known by it.
    let until = (now + lease).trunc_subsecs(6);
    let rows = state
        .db
        .query_all(Statement::from_sql_and_values(
            backend,
            sql,
            [
                until.into(),
                now.into(),
                campaign_id.into(),
                i64::from(count).into(),
            ],
        ))
        .await?;
    let mut picked = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get_by_index::<i64>(2)?,
                r.try_get_by_index::<Uuid>(0)?,
                r.try_get_by_index::<i32>(1)?,
            ))
        })
        .collect::<AppResult<Vec<_>>>()?;
    // Sent in the queue's order within the claim.
    picked.sort_unstable();
    Ok(Claimed {
        recipients: picked.into_iter().map(|(_, id, a)| (id, a)).collect(),
        until,
    })
}

pub(super) enum Outcome {
    Done,
    /// Pause the campaign (the wallet is empty).
    Pause(String),
    /// Stop the campaign (the template cannot be sent any more).
    Stop(String),
}

/// What a send that failed means for its recipient.
pub(super) enum Failure {
    Settle(Finish, Outcome),
    /// Transient (Meta unavailable, a database error): the claim's lease settles it.
    Leave(AppError),
}

/// The rules a failed send is settled by: Meta's throughput codes put the recipient back
/// in the queue with a doubling delay; a paused or disabled template stops the campaign;
/// an empty wallet pauses it; other refusals fail the recipient.
pub(super) fn on_send_error(err: AppError, attempts: i32, now: DateTime<Utc>) -> Failure {
    match err {
        AppError::Provider { meta_code, message } if model::is_rate_limited(meta_code) => {
            let attempts = attempts.max(1);
            let backoff = chrono::Duration::seconds(2i64.pow(attempts.min(8) as u32));
            tracing::info!(meta_code, message, "rate limited by Meta: retrying later");
            Failure::Settle(Finish::Later(now + backoff), Outcome::Done)
        }
        AppError::Provider { meta_code, message } => {
            let outcome = if FailureGroup::of(meta_code) == FailureGroup::TemplatePaused {
                Outcome::Stop(format!(
                    "Meta refused the template ({}): {message}",
                    meta_code.unwrap_or_default()
                ))
            } else {
                Outcome::Done
            };
            Failure::Settle(
                Finish::Failed {
                    code: meta_code,
                    title: message,
                },
                outcome,
            )
        }
        err if err.code() == ErrorCode::InsufficientCredits => Failure::Settle(
            Finish::Later(now),
            Outcome::Pause(
                "the wallet cannot pay for the next message: top it up and resume".into(),
            ),
        ),
        err if err.code() == ErrorCode::TemplateNotApproved => {
            Failure::Settle(Finish::Later(now), Outcome::Stop(err.to_string()))
        }
        err @ (AppError::Unavailable(_) | AppError::Internal(_)) => Failure::Leave(err),
        err => Failure::Settle(
            Finish::Failed {
                code: None,
                title: err.to_string(),
            },
            Outcome::Done,
        ),
    }
}

pub(super) enum Finish {
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
pub(super) async fn finish(
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
