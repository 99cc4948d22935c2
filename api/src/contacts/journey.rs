//! The customer journey: every change to a contact as an event with its time and actor,
//! stored per contact and shipped to the analytics store through the outbox.

use chrono::{DateTime, Utc};
use parley_analytics::{Event, outbox};
use parley_entity::contact_event;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    auth::Scope,
    errors::AppResult,
    pagination::{self, Page, PageRequest},
    state::AppState,
};

/// Who made a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    User(Uuid),
    ApiKey(Uuid),
    /// A CSV import job.
    Import(Uuid),
    /// The contact themself (an inbound message).
    Contact,
    System,
}

impl Actor {
    pub fn of(scope: &Scope) -> Self {
        match (scope.user_id, scope.api_key_id) {
            (Some(user), _) => Self::User(user),
            (None, Some(key)) => Self::ApiKey(key),
            (None, None) => Self::System,
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Self::User(_) => "USER",
            Self::ApiKey(_) => "API_KEY",
            Self::Import(_) => "IMPORT",
            Self::Contact => "CONTACT",
            Self::System => "SYSTEM",
        }
    }

    pub fn id(self) -> Option<Uuid> {
        match self {
            Self::User(id) | Self::ApiKey(id) | Self::Import(id) => Some(id),
            Self::Contact | Self::System => None,
        }
    }
}

/// One journey entry to write.
pub struct Entry {
    pub contact_id: Uuid,
    pub kind: &'static str,
    pub data: Value,
}

impl Entry {
    pub fn new(contact_id: Uuid, kind: &'static str, data: Value) -> Self {
        Self {
            contact_id,
            kind,
            data,
        }
    }
}

/// The id of an entry: a UUIDv7 of when it happened (not when it was written down, which
/// for a late webhook is later), so the journey, ordered by id, reads in time order; `i`
/// keeps entries of one change in the order given.
fn entry_id(at: DateTime<Utc>, i: usize) -> Uuid {
    let mut rest: [u8; 10] = rand::random();
    let order = (i as u16).min(0x0fff).to_be_bytes();
    rest[0] = order[0];
    rest[1] = order[1];
    let millis = at.timestamp_millis().max(0) as u64;
    uuid::Builder::from_unix_timestamp_millis(millis, &rest).into_uuid()
}

/// Rows per multi-row INSERT: well under the bind-parameter limits of both backends.
const CHUNK: usize = 500;

/// Writes journey entries (and their analytics events) in the caller's transaction.
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    actor: Actor,
    entries: Vec<Entry>,
) -> AppResult<()> {
    let now = Utc::now();
    record_at(conn, project_id, actor, entries, now).await
}

pub async fn record_at<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    actor: Actor,
    entries: Vec<Entry>,
    at: DateTime<Utc>,
) -> AppResult<()> {
    for chunk in entries.chunks(CHUNK) {
        let rows = chunk
            .iter()
            .enumerate()
            .map(|(i, e)| contact_event::ActiveModel {
                id: Set(entry_id(at, i)),
                project_id: Set(project_id),
                contact_id: Set(e.contact_id),
                kind: Set(e.kind.to_owned()),
                actor_kind: Set(actor.kind().to_owned()),
                actor_id: Set(actor.id()),
                data: Set(e.data.to_string()),
                occurred_at: Set(at),
            });
        contact_event::Entity::insert_many(rows).exec(conn).await?;
        let events: Vec<Event> = chunk
            .iter()
            .map(|e| {
                let mut event = Event::new(
                    project_id,
                    format!("contact.{}", e.kind.trim_start_matches("contact.")),
                    actor.id(),
                    json!({ "contactId": e.contact_id, "actorKind": actor.kind(), "data": e.data }),
                );
                event.occurred_at = at;
                event
            })
            .collect();
        outbox::record_many(conn, &events).await?;
    }
    Ok(())
}

/// A contact's journey, oldest first.
pub async fn list(
    state: &AppState,
    scope: &Scope,
    contact_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<contact_event::Model>> {
    let select = contact_event::Entity::find()
        .filter(contact_event::Column::ProjectId.eq(scope.project_id))
        .filter(contact_event::Column::ContactId.eq(contact_id));
    pagination::fetch(&state.db, select, contact_event::Column::Id, page).await
}
