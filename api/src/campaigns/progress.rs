//! Live progress: the counts of a campaign, published on the bus as it runs (at most a few
//! times a second per campaign and node, so that a fast campaign does not flood it).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use parley_entity::{campaign, campaign_recipient};
use sea_orm::{
    ColumnTrait, EntityTrait, FromQueryResult, QueryFilter, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model;
use crate::{errors::AppResult, events, state::AppState};

pub const TOPIC: &str = "campaign.progress";
const EVERY: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct Throttle {
    /// When each campaign was last published, and whether a trailing publish is due.
    last: Mutex<HashMap<Uuid, (Instant, bool)>>,
}

/// Counts of a campaign's recipients by where they got to.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub recipients: i64,
    pub queued: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub replied: i64,
    pub clicked: i64,
    pub failed: i64,
    pub skipped: i64,
    pub interrupted: i64,
}

#[derive(FromQueryResult)]
struct StatusCount {
    status: String,
    n: i64,
    replied: i64,
    clicked: i64,
}

/// Counts from the recipients as they are now. `sent` counts every message that left
/// (delivered and read included), `delivered` those delivered or read.
pub async fn counts<C: sea_orm::ConnectionTrait>(conn: &C, campaign_id: Uuid) -> AppResult<Counts> {
    let rows = campaign_recipient::Entity::find()
        .select_only()
        .column(campaign_recipient::Column::Status)
        .column_as(
            Expr::col(campaign_recipient::Column::ContactId).count(),
            "n",
        )
        .column_as(
            Expr::col(campaign_recipient::Column::RepliedAt).count(),
            "replied",
        )
        .column_as(
            Expr::col(campaign_recipient::Column::ClickedAt).count(),
            "clicked",
        )
        .filter(campaign_recipient::Column::CampaignId.eq(campaign_id))
        .group_by(campaign_recipient::Column::Status)
        .into_model::<StatusCount>()
        .all(conn)
        .await?;
    let mut c = Counts::default();
    for row in rows {
        c.recipients += row.n;
        c.replied += row.replied;
        c.clicked += row.clicked;
        match row.status.as_str() {
            model::QUEUED | model::SENDING => c.queued += row.n,
            model::SENT => c.sent += row.n,
            model::DELIVERED => {
                c.sent += row.n;
                c.delivered += row.n;
            }
            model::READ => {
                c.sent += row.n;
                c.delivered += row.n;
                c.read += row.n;
            }
            model::FAILED => c.failed += row.n,
            model::SKIPPED => c.skipped += row.n,
            _ => c.interrupted += row.n,
        }
    }
    Ok(c)
}

/// Publishes the campaign's progress; within a moment of the last publish, once more at
/// the end of that moment instead (so the last change is never left out).
pub async fn publish(state: &AppState, campaign_id: Uuid) {
    {
        let mut last = state
            .campaign_progress
            .last
            .lock()
            .expect("progress throttle");
        match last.get_mut(&campaign_id) {
            Some((at, trailing)) if at.elapsed() < EVERY => {
                if !*trailing {
                    *trailing = true;
                    let state = state.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(EVERY).await;
                        if let Some(entry) = state
                            .campaign_progress
                            .last
                            .lock()
                            .expect("progress throttle")
                            .get_mut(&campaign_id)
                        {
                            *entry = (Instant::now(), false);
                        }
                        publish_now(&state, campaign_id).await;
                    });
                }
                return;
            }
            _ => {
                last.insert(campaign_id, (Instant::now(), false));
            }
        }
    }
    publish_now(state, campaign_id).await;
}

pub async fn publish_now(state: &AppState, campaign_id: Uuid) {
    let result = async {
        let found = campaign::Entity::find_by_id(campaign_id)
            .one(&state.db)
            .await?;
        let counts = counts(&state.db, campaign_id).await?;
        AppResult::Ok(found.map(|f| (f, counts)))
    }
    .await;
    match result {
        Ok(Some((found, counts))) => {
            let payload = serde_json::json!({
                "campaignId": campaign_id, "status": found.status, "counts": counts,
            });
            events::publish(state, found.project_id, TOPIC, payload).await;
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "could not publish a campaign's progress"),
    }
}
