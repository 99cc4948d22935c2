//! The analytics event: what happened, in which project, by whom, and when.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Well-known event kinds, in their stored string form.
///
/// Kinds are plain strings on purpose: new features add kinds without a schema change in
/// either the outbox or the analytics stores. Keep them `<noun>.<past tense verb>` and at
/// most 64 bytes (the outbox column's length).
pub struct EventKind;

impl EventKind {
    pub const MEMBER_LOGGED_IN: &'static str = "member.logged_in";
    pub const MEMBER_ADDED: &'static str = "member.added";
    pub const PROJECT_CREATED: &'static str = "project.created";
    /// Billing (recorded by the API's billing module; see `billing.rs` for the payloads).
    pub const BILLING_CHARGED: &'static str = crate::billing::CHARGED;
    pub const BILLING_REFUNDED: &'static str = crate::billing::REFUNDED;
    pub const BILLING_META_PRICED: &'static str = crate::billing::META_PRICED;
    pub const BILLING_WALLET: &'static str = crate::billing::WALLET;
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Identity in the analytics store: a re-sent batch is deduplicated by it.
    pub event_id: Uuid,
    pub project_id: Uuid,
    pub kind: String,
    pub actor_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
    /// JSON object with the event's own fields.
    pub payload: serde_json::Value,
}

impl Event {
    /// A new event happening now. The id is a UUIDv7 so ids sort roughly by creation time.
    pub fn new(
        project_id: Uuid,
        kind: impl Into<String>,
        actor_id: Option<Uuid>,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            project_id,
            kind: kind.into(),
            actor_id,
            occurred_at: Utc::now(),
            payload,
        }
    }
}

/// An event as the outbox holds it, on its way to the store: the payload stays the JSON
/// text written when the event was recorded (shipping it needs no parse and re-write).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    pub event_id: Uuid,
    pub project_id: Uuid,
    pub kind: String,
    pub actor_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
    /// A JSON object's text.
    pub payload: String,
}

impl From<&Event> for StoredEvent {
    fn from(event: &Event) -> Self {
        Self {
            event_id: event.event_id,
            project_id: event.project_id,
            kind: event.kind.clone(),
            actor_id: event.actor_id,
            occurred_at: event.occurred_at,
            payload: event.payload.to_string(),
        }
    }
}
