//! The agent dashboard's chat lists: active, requesting, intervened (by me), history, most
//! recent first, with counts.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use parley_entity::{chat, contact};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::service::{ASSISTANT, HISTORY_AFTER, INTERVENED, REQUESTING};
use crate::{
    auth::{Role, Scope},
    errors::{AppError, AppResult},
    pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page},
    state::AppState,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Handled by the assistant, contact wrote within 24 hours.
    Active,
    Requesting,
    /// Intervened by the caller.
    IntervenedByMe,
    /// Intervened by anyone (owners and managers; agents get their own).
    Intervened,
    /// The contact's last message is over 24 hours old.
    History,
}

/// A chat in a list: the contact and who handles it.
pub struct ChatRow {
    pub contact: contact::Model,
    pub chat: Option<chat::Model>,
}

/// The keyset of chat lists: most recent message first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChatCursor {
    pub at: DateTime<Utc>,
    pub id: Uuid,
}

impl ChatCursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(raw: &str) -> AppResult<Self> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| AppError::bad_input("after", "not a cursor from this API"))
    }
}

async fn my_intervened<C: ConnectionTrait>(conn: &C, scope: &Scope) -> AppResult<Vec<Uuid>> {
    let Some(me) = scope.user_id else {
        return Ok(Vec::new());
    };
    Ok(chat::Entity::find()
        .filter(chat::Column::ProjectId.eq(scope.project_id))
        .filter(chat::Column::AgentId.eq(me))
        .all(conn)
        .await?
        .into_iter()
        .map(|c| c.contact_id)
        .collect())
}

async fn select(
    state: &AppState,
    scope: &Scope,
    group: Group,
) -> AppResult<Select<contact::Entity>> {
    let cutoff = state.settings.clock.now() - HISTORY_AFTER;
    let base = contact::Entity::find().filter(contact::Column::ProjectId.eq(scope.project_id));
    let live = contact::Column::LastActiveAt.gt(cutoff);
    Ok(match group {
        Group::Active => base
            .filter(live)
            .filter(contact::Column::State.eq(ASSISTANT)),
        Group::Requesting => base
            .filter(live)
            .filter(contact::Column::State.eq(REQUESTING)),
        Group::IntervenedByMe => base
            .filter(live)
            .filter(contact::Column::State.eq(INTERVENED))
            .filter(contact::Column::Id.is_in(my_intervened(&state.db, scope).await?)),
        Group::Intervened if scope.role == Role::Agent => {
            return Err(AppError::Forbidden(
                "agents see their own intervened chats (INTERVENED_BY_ME)".into(),
            ));
        }
        Group::Intervened => base
            .filter(live)
            .filter(contact::Column::State.eq(INTERVENED)),
        Group::History => {
            let mut history = base.filter(contact::Column::LastActiveAt.lte(cutoff));
            if scope.role == Role::Agent {
                // Until the sweep closes it, another agent's chat stays theirs.
                history = history.filter(
                    Condition::any()
                        .add(contact::Column::State.ne(INTERVENED))
                        .add(contact::Column::Id.is_in(my_intervened(&state.db, scope).await?)),
                );
            }
            history
        }
    })
}

pub async fn list(
    state: &AppState,
    scope: &Scope,
    group: Group,
    first: Option<usize>,
    after: Option<ChatCursor>,
) -> AppResult<Page<ChatRow>> {
    let size = first.unwrap_or(DEFAULT_PAGE_SIZE);
    if size > MAX_PAGE_SIZE {
        return Err(AppError::bad_input(
            "first",
            format!("a page holds at most {MAX_PAGE_SIZE} items"),
        ));
    }
    let mut select = select(state, scope, group).await?;
    if let Some(cursor) = &after {
        select = select.filter(
            Condition::any()
                .add(contact::Column::LastActiveAt.lt(cursor.at))
                .add(
                    Condition::all()
                        .add(contact::Column::LastActiveAt.eq(cursor.at))
                        .add(contact::Column::Id.lt(cursor.id)),
                ),
        );
    }
    let mut contacts = select
        .order_by_desc(contact::Column::LastActiveAt)
        .order_by_desc(contact::Column::Id)
        .limit(size as u64 + 1)
        .all(&state.db)
        .await?;
    let more = contacts.len() > size;
    contacts.truncate(size);
    let mut chats: HashMap<Uuid, chat::Model> = chat::Entity::find()
        .filter(chat::Column::ContactId.is_in(contacts.iter().map(|c| c.id)))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|c| (c.contact_id, c))
        .collect();
    Ok(Page {
        items: contacts
            .into_iter()
            .map(|contact| ChatRow {
                chat: chats.remove(&contact.id),
                contact,
            })
            .collect(),
        has_previous_page: after.is_some(),
        has_next_page: more,
    })
}

pub async fn count(state: &AppState, scope: &Scope, group: Group) -> AppResult<u64> {
    Ok(select(state, scope, group).await?.count(&state.db).await?)
}

/// One chat, if the caller may see it.
pub async fn one(state: &AppState, scope: &Scope, contact_id: Uuid) -> AppResult<ChatRow> {
    let contact = contact::Entity::find_by_id(contact_id)
        .filter(contact::Column::ProjectId.eq(scope.project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("chat"))?;
    let chat = chat::Entity::find_by_id(contact_id).one(&state.db).await?;
    ensure_visible(scope, &contact, chat.as_ref())?;
    Ok(ChatRow { contact, chat })
}

/// An intervened chat is its agent's, the owner's and the managers' only.
pub fn ensure_visible(
    scope: &Scope,
    contact: &contact::Model,
    chat: Option<&chat::Model>,
) -> AppResult<()> {
    let others = contact.state == INTERVENED
        && scope.role == Role::Agent
        && chat.and_then(|c| c.agent_id) != scope.user_id;
    if others {
        return Err(AppError::Forbidden(
            "another agent has intervened in this chat".into(),
        ));
    }
    Ok(())
}

/// Checks that the caller may read or answer the contact's chat.
pub async fn ensure_may_use(
    state: &AppState,
    scope: &Scope,
    contact: &contact::Model,
) -> AppResult<()> {
    if scope.role != Role::Agent || contact.state != INTERVENED {
        return Ok(());
    }
    let chat = chat::Entity::find_by_id(contact.id).one(&state.db).await?;
    ensure_visible(scope, contact, chat.as_ref())
}
