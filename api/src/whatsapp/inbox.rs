//! The webhook inbox: every delivery is stored here first (Meta gets its 200 only after
//! that), then processed by the worker. The sandbox schedules its played-back events here
//! too, so they survive restarts and go through the same processing.

use chrono::{DateTime, Utc};
use parley_entity::webhook_event;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::errors::AppResult;

pub const SOURCE_META: &str = "META";
pub const SOURCE_SANDBOX: &str = "SANDBOX";

pub const PENDING: &str = "PENDING";
pub const PROCESSED: &str = "PROCESSED";
/// Parsed, but names no project this server knows.
pub const UNROUTABLE: &str = "UNROUTABLE";
/// Not a webhook body Parley can read (kept for inspection).
pub const MALFORMED: &str = "MALFORMED";
/// Processing kept failing; kept with the last error.
pub const FAILED: &str = "FAILED";

pub struct Delivery {
    pub source: &'static str,
    pub project_id: Option<Uuid>,
    pub body: String,
    pub available_at: DateTime<Utc>,
}

pub async fn store<C: ConnectionTrait>(conn: &C, deliveries: Vec<Delivery>) -> AppResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows = deliveries.into_iter().map(|d| webhook_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        source: Set(d.source.to_owned()),
        project_id: Set(d.project_id),
        body: Set(d.body),
        state: Set(PENDING.to_owned()),
        attempts: Set(0),
        error: Set(None),
        received_at: Set(now),
        available_at: Set(d.available_at),
        processed_at: Set(None),
    });
    webhook_event::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}
