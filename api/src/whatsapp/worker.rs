//! Processes the webhook inbox: due deliveries in order of arrival, each claimed with a
//! lease so that several API nodes share the work and a crash mid-way only delays it.

use std::time::Duration;

use chrono::Utc;
use parley_entity::webhook_event;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Expr};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    inbox::{FAILED, PENDING},
    process::{self, Outcome},
};
use crate::{chat, events, state::AppState};

/// How long a claimed delivery is hidden from other workers.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// Attempts before a delivery that keeps failing is set aside as FAILED.
const MAX_ATTEMPTS: i32 = 8;
const BATCH: u64 = 100;
const IDLE_POLL: Duration = Duration::from_secs(1);

pub async fn run(state: AppState, stop: CancellationToken) {
    loop {
        let worked = match drain(&state).await {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(error = %err, "the webhook inbox could not be read");
                0
            }
        };
        if worked > 0 {
            continue;
        }
        let wait = next_due_in(&state)
            .await
            .unwrap_or(IDLE_POLL)
            .min(IDLE_POLL);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = state.whatsapp.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Processes what is due now; returns how many deliveries it handled.
pub async fn drain(state: &AppState) -> anyhow::Result<usize> {
    let due = webhook_event::Entity::find()
        .filter(webhook_event::Column::State.eq(PENDING))
        .filter(webhook_event::Column::AvailableAt.lte(Utc::now()))
        .order_by_asc(webhook_event::Column::AvailableAt)
        .order_by_asc(webhook_event::Column::Id)
        .limit(BATCH)
        .all(&state.db)
        .await?;
    let mut handled = 0;
    for event in due {
        if !claim(state, &event).await? {
            continue;
        }
        handled += 1;
        handle(state, event).await?;
    }
    Ok(handled)
}

async fn next_due_in(state: &AppState) -> Option<Duration> {
    let next = webhook_event::Entity::find()
        .filter(webhook_event::Column::State.eq(PENDING))
        .order_by_asc(webhook_event::Column::AvailableAt)
        .one(&state.db)
        .await
        .ok()??;
    (next.available_at - Utc::now()).to_std().ok()
}

async fn claim(state: &AppState, event: &webhook_event::Model) -> anyhow::Result<bool> {
    let now = Utc::now();
    let claimed = webhook_event::Entity::update_many()
        .col_expr(webhook_event::Column::AvailableAt, Expr::value(now + LEASE))
        .col_expr(
            webhook_event::Column::Attempts,
            Expr::col(webhook_event::Column::Attempts).add(1),
        )
        .filter(webhook_event::Column::Id.eq(event.id))
        .filter(webhook_event::Column::State.eq(PENDING))
        .filter(webhook_event::Column::AvailableAt.lte(now))
        .exec(&state.db)
        .await?;
    Ok(claimed.rows_affected == 1)
}

async fn handle(state: &AppState, event: webhook_event::Model) -> anyhow::Result<()> {
    match process::process(state, &event).await {
        Ok(outcome) => {
            finish(state, &event, &outcome).await?;
            metrics::counter!("parley_webhook_events_total", "outcome" => outcome.state)
                .increment(1);
            publish(state, outcome).await;
        }
        Err(err) => {
            let attempts = event.attempts + 1;
            tracing::warn!(event_id = %event.id, attempts, error = %err, "a webhook delivery failed");
            let (next_state, retry_in) = if attempts >= MAX_ATTEMPTS {
                (FAILED, chrono::Duration::zero())
            } else {
                (PENDING, chrono::Duration::seconds(1 << attempts.min(10)))
            };
            webhook_event::Entity::update_many()
                .col_expr(webhook_event::Column::State, Expr::value(next_state))
                .col_expr(webhook_event::Column::Error, Expr::value(err.to_string()))
                .col_expr(
                    webhook_event::Column::AvailableAt,
                    Expr::value(Utc::now() + retry_in),
                )
                .filter(webhook_event::Column::Id.eq(event.id))
                .exec(&state.db)
                .await?;
        }
    }
    Ok(())
}

async fn finish(
    state: &AppState,
    event: &webhook_event::Model,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    let notes = (!outcome.notes.is_empty()).then(|| outcome.notes.join("; "));
    if let Some(notes) = &notes {
        tracing::info!(event_id = %event.id, state = outcome.state, notes, "webhook delivery noted");
    }
    webhook_event::Entity::update_many()
        .col_expr(webhook_event::Column::State, Expr::value(outcome.state))
        .col_expr(webhook_event::Column::Error, Expr::value(notes))
        .col_expr(
            webhook_event::Column::ProjectId,
            Expr::value(outcome.project_id),
        )
        .col_expr(webhook_event::Column::ProcessedAt, Expr::value(Utc::now()))
        .filter(webhook_event::Column::Id.eq(event.id))
        .exec(&state.db)
        .await?;
    Ok(())
}

async fn publish(state: &AppState, outcome: Outcome) {
    chat::events::publish(state, outcome.chat_events).await;
    crate::billing::alerts::publish(state, &outcome.wallet_entries).await;
    let mut campaigns = outcome.campaigns.clone();
    campaigns.sort();
    campaigns.dedup();
    for campaign_id in campaigns {
        crate::campaigns::progress::publish(state, campaign_id).await;
    }
    for template in outcome.templates {
        events::publish(
            state,
            template.project_id,
            "template.updated",
            json!({ "templateId": template.id, "status": template.status }),
        )
        .await;
    }
    for (project_id, contact_id, text) in outcome.replies {
        let state = state.clone();
        tokio::spawn(async move {
            chat::assistant::reply(&state, project_id, contact_id, text).await;
        });
    }
}
