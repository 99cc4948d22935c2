//! Chat events: numbered per project in the transaction of the change they describe, kept,
//! and published after commit. A subscriber that reconnects with the last number it saw
//! gets what it missed from here, then live events, with no gap and no duplicate.

use chrono::{DateTime, Utc};
use std::sync::Arc;

use parley_entity::{chat_event, message};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{errors::AppResult, realtime::BusEvent, state::AppState};

/// The bus topic every chat event travels under.
pub const BUS_TOPIC: &str = "chat.event";

/// A chat event as subscribers receive it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatEvent {
    pub project_id: Uuid,
    pub seq: i64,
    pub contact_id: Option<Uuid>,
    pub topic: String,
    /// While a chat is intervened, the agent who may see its events (others may not).
    pub agent_id: Option<Uuid>,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
    /// The message of a message event, decoded once for every subscriber.
    #[serde(skip)]
    pub message: Option<Arc<message::Model>>,
}

impl ChatEvent {
    fn with_message(mut self) -> Self {
        if self.topic.starts_with("message.") {
            self.message = message::Model::deserialize(&self.payload)
                .ok()
                .map(Arc::new);
        }
        self
    }

    /// Decodes an event from the bus.
    pub fn from_bus(payload: &Value) -> Option<Self> {
        Self::deserialize(payload).ok().map(Self::with_message)
    }
}

impl From<chat_event::Model> for ChatEvent {
    fn from(m: chat_event::Model) -> Self {
        Self {
            project_id: m.project_id,
            seq: m.seq,
            contact_id: m.contact_id,
            topic: m.topic,
            agent_id: m.agent_id,
            payload: serde_json::from_str(&m.payload).unwrap_or(Value::Null),
            created_at: m.created_at,
            message: None,
        }
        .with_message()
    }
}

/// Takes the project's next `count` event numbers; returns the first. The counter row
/// stays locked until the caller's transaction ends, so numbers are committed in order:
/// callers number their events last, just before committing, so that the project's other
/// transactions wait as little as possible.
async fn take_seqs<C: ConnectionTrait>(conn: &C, project_id: Uuid, count: i64) -> AppResult<i64> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO project_sequences (project_id, last_seq) VALUES ($1, $2) \
             ON CONFLICT (project_id) DO UPDATE SET last_seq = project_sequences.last_seq + $2 \
             RETURNING last_seq"
        }
        _ => {
            "INSERT INTO project_sequences (project_id, last_seq) VALUES (?, ?) \
             ON CONFLICT (project_id) DO UPDATE SET last_seq = project_sequences.last_seq + ? \
             RETURNING last_seq"
        }
    };
    let values: Vec<sea_orm::Value> = match backend {
        DbBackend::Postgres => vec![project_id.into(), count.into()],
        _ => vec![project_id.into(), count.into(), count.into()],
    };
    let row = conn
        .query_one(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .ok_or_else(|| crate::errors::AppError::internal(anyhow::anyhow!("no sequence row")))?;
    Ok(row.try_get_by_index::<i64>(0)? - count + 1)
}

/// An event to record.
pub struct NewEvent {
    pub contact_id: Option<Uuid>,
    pub topic: &'static str,
    pub agent_id: Option<Uuid>,
    pub payload: Value,
}

/// Records events in the caller's transaction; publish them once it has committed.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    events: Vec<NewEvent>,
    at: DateTime<Utc>,
) -> AppResult<Vec<ChatEvent>> {
    record_each(
        conn,
        project_id,
        events.into_iter().map(|e| (e, at)).collect(),
    )
    .await
}

/// Records events, each with its own time, in the caller's transaction (numbered in the
/// order given); publish them once it has committed.
pub async fn record_each<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    events: Vec<(NewEvent, DateTime<Utc>)>,
) -> AppResult<Vec<ChatEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let first = take_seqs(conn, project_id, events.len() as i64).await?;
    let recorded: Vec<ChatEvent> = events
        .into_iter()
        .zip(first..)
        .map(|((event, at), seq)| ChatEvent {
            project_id,
            seq,
            contact_id: event.contact_id,
            topic: event.topic.to_owned(),
            agent_id: event.agent_id,
            payload: event.payload,
            created_at: at,
            message: None,
        })
        .collect();
    chat_event::Entity::insert_many(recorded.iter().map(|e| chat_event::ActiveModel {
        project_id: sea_orm::Set(project_id),
        seq: sea_orm::Set(e.seq),
        contact_id: sea_orm::Set(e.contact_id),
        topic: sea_orm::Set(e.topic.clone()),
        agent_id: sea_orm::Set(e.agent_id),
        payload: sea_orm::Set(e.payload.to_string()),
        created_at: sea_orm::Set(e.created_at),
    }))
    .exec_without_returning(conn)
    .await?;
    Ok(recorded)
}

/// Tells live subscribers (after commit). A lost publish is caught up from the table.
pub async fn publish(state: &AppState, events: Vec<ChatEvent>) {
    for event in events {
        let bus_event = BusEvent {
            project_id: event.project_id,
            topic: BUS_TOPIC.to_owned(),
            payload: serde_json::to_value(&event).unwrap_or(Value::Null),
        };
        if let Err(err) = state.bus.publish(bus_event).await {
            tracing::warn!(error = %err, "could not publish a chat event");
        }
    }
}

/// Events after `after`, oldest first, at most `limit`.
pub async fn since<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    after: i64,
    limit: u64,
) -> AppResult<Vec<ChatEvent>> {
    Ok(chat_event::Entity::find()
        .filter(chat_event::Column::ProjectId.eq(project_id))
        .filter(chat_event::Column::Seq.gt(after))
        .order_by_asc(chat_event::Column::Seq)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// The project's last event number (0 before any).
pub async fn last_seq<C: ConnectionTrait>(conn: &C, project_id: Uuid) -> AppResult<i64> {
    Ok(chat_event::Entity::find()
        .filter(chat_event::Column::ProjectId.eq(project_id))
        .order_by_desc(chat_event::Column::Seq)
        .one(conn)
        .await?
        .map_or(0, |e| e.seq))
}
