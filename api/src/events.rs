//! Recording what happened: analytics events go to the outbox inside the caller's
//! transaction; live events go on the bus once that transaction has committed.

use parley_analytics::{Event, outbox};
use sea_orm::ConnectionTrait;
use serde_json::Value;
use uuid::Uuid;

use crate::{errors::AppResult, realtime::BusEvent, state::AppState};

/// Adds an analytics event to the outbox, in the caller's transaction.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    kind: &str,
    actor_id: Option<Uuid>,
    payload: Value,
) -> AppResult<()> {
    let event = Event::new(project_id, kind, actor_id, payload);
    outbox::record(conn, &event).await?;
    Ok(())
}

/// Adds an analytics event that happened at `at` (a message's own time, say).
pub async fn record_at<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    kind: &str,
    payload: Value,
    at: chrono::DateTime<chrono::Utc>,
) -> AppResult<()> {
    let mut event = Event::new(project_id, kind, None, payload);
    event.occurred_at = at;
    outbox::record(conn, &event).await?;
    Ok(())
}

/// Tells live subscribers. The change is already committed, so a bus failure is logged
/// rather than failing the request (clients reconcile on reconnect).
pub async fn publish(state: &AppState, project_id: Uuid, topic: &str, payload: Value) {
    let event = BusEvent {
        project_id,
        topic: topic.to_owned(),
        payload,
    };
    if let Err(err) = state.bus.publish(event).await {
        tracing::warn!(error = %err, topic, "could not publish a live event");
    }
}
