//! The chat state machine. A contact's chat is handled by the assistant
//! (`HANDLED_BY_ASSISTANT`), `REQUESTING` a person, `INTERVENED` by one agent, or `CLOSED`
//! (History: the contact's last message is over 24 hours old). Every transition is one
//! conditional update, so two agents intervening at once cannot both win, and records a
//! numbered chat event and a journey entry in the same transaction.

use chrono::{DateTime, Duration, Utc};
use parley_entity::{chat, contact};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use serde_json::json;
use uuid::Uuid;

use super::events::{self, ChatEvent, NewEvent};
use crate::{
    auth::{Role, Scope},
    contacts::journey::{self, Actor, Entry},
    errors::{AppError, AppResult, ErrorCode},
    state::AppState,
};

pub const ASSISTANT: &str = "HANDLED_BY_ASSISTANT";
pub const REQUESTING: &str = "REQUESTING";
pub const INTERVENED: &str = "INTERVENED";
pub const CLOSED: &str = "CLOSED";

/// A chat is in History once the contact's last message is this old.
pub const HISTORY_AFTER: Duration = Duration::hours(24);

pub const STATE_CHANGED: &str = "chat.state_changed";
pub const MESSAGE_CREATED: &str = "message.created";
pub const MESSAGE_UPDATED: &str = "message.updated";

/// Whether the contact's last message is recent enough for a live chat.
pub fn is_live(last_active_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_active_at.is_some_and(|at| at > now - HISTORY_AFTER)
}

/// The chat row of a contact, made on first use.
pub async fn chat_of<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
    now: DateTime<Utc>,
) -> AppResult<chat::Model> {
    chat::Entity::insert(chat::ActiveModel {
        contact_id: Set(contact.id),
        project_id: Set(contact.project_id),
        agent_id: Set(None),
        state_changed_at: Set(now),
        requested_at: Set(None),
        intervened_at: Set(None),
        last_message_at: Set(None),
        last_message_id: Set(None),
    })
    .on_conflict(
        OnConflict::column(chat::Column::ContactId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    chat::Entity::find_by_id(contact.id)
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("chat"))
}

/// The event of a state change, seen by every subscriber (agents learn that a chat left
/// their queue, not what is said in it).
fn state_event(contact_id: Uuid, state: &str, agent_id: Option<Uuid>, reason: &str) -> NewEvent {
    NewEvent {
        contact_id: Some(contact_id),
        topic: STATE_CHANGED,
        agent_id: None,
        payload: json!({ "contactId": contact_id, "state": state, "agentId": agent_id, "reason": reason }),
    }
}

/// Moves the chat from one of `from` to `to` if it is still there (and live when `live`
/// is asked). Returns whether this caller made the move.
async fn transition<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
    from: &[&str],
    to: &str,
    live_at: Option<DateTime<Utc>>,
) -> AppResult<bool> {
    let mut update = contact::Entity::update_many()
        .col_expr(contact::Column::State, Expr::value(to))
        .filter(contact::Column::Id.eq(contact.id))
        .filter(contact::Column::ProjectId.eq(contact.project_id))
        .filter(contact::Column::State.is_in(from.iter().copied()));
    if let Some(now) = live_at {
        update = update.filter(contact::Column::LastActiveAt.gt(now - HISTORY_AFTER));
    }
    Ok(update.exec(conn).await?.rows_affected == 1)
}

async fn find_contact<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    id: Uuid,
) -> AppResult<contact::Model> {
    contact::Entity::find_by_id(id)
        .filter(contact::Column::ProjectId.eq(project_id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("contact"))
}

/// An agent (or owner, or manager) takes the chat over from the assistant.
pub async fn intervene(
    state: &AppState,
    scope: &Scope,
    contact_id: Uuid,
) -> AppResult<chat::Model> {
    let agent = scope
        .user_id
        .ok_or_else(|| AppError::Forbidden("only a person can intervene in a chat".into()))?;
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let contact = find_contact(&txn, scope.project_id, contact_id).await?;
    if !transition(
        &txn,
        &contact,
        &[ASSISTANT, REQUESTING],
        INTERVENED,
        Some(now),
    )
    .await?
    {
        return Err(refusal(&txn, &contact, now, "intervene in").await);
    }
    let chat = chat_of(&txn, &contact, now).await?;
    let mut active: chat::ActiveModel = chat.into();
    active.agent_id = Set(Some(agent));
    active.intervened_at = Set(Some(now));
    active.state_changed_at = Set(now);
    let chat = sea_orm::ActiveModelTrait::update(active, &txn).await?;
    let recorded = finish_transition(
        &txn,
        scope,
        &contact,
        INTERVENED,
        Some(agent),
        "intervened",
        now,
    )
    .await?;
    txn.commit().await?;
    events::publish(state, recorded).await;
    Ok(chat)
}

/// Hands the chat back to the assistant, visible to every agent again.
pub async fn resolve(state: &AppState, scope: &Scope, contact_id: Uuid) -> AppResult<chat::Model> {
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let contact = find_contact(&txn, scope.project_id, contact_id).await?;
    let chat = chat_of(&txn, &contact, now).await?;
    if contact.state == INTERVENED && scope.role == Role::Agent && chat.agent_id != scope.user_id {
        return Err(AppError::Forbidden(
            "only the agent who intervened, an owner or a manager can resolve this chat".into(),
        ));
    }
    if !transition(&txn, &contact, &[INTERVENED, REQUESTING], ASSISTANT, None).await? {
        return Err(AppError::Conflict(format!(
            "only intervened or requesting chats can be resolved; this one is {}",
            contact.state
        )));
    }
    let mut active: chat::ActiveModel = chat.into();
    active.agent_id = Set(None);
    active.state_changed_at = Set(now);
    let chat = sea_orm::ActiveModelTrait::update(active, &txn).await?;
    let recorded =
        finish_transition(&txn, scope, &contact, ASSISTANT, None, "resolved", now).await?;
    txn.commit().await?;
    events::publish(state, recorded).await;
    Ok(chat)
}

async fn finish_transition<C: ConnectionTrait>(
    conn: &C,
    scope: &Scope,
    contact: &contact::Model,
    to: &str,
    agent: Option<Uuid>,
    kind: &'static str,
    now: DateTime<Utc>,
) -> AppResult<Vec<ChatEvent>> {
    journey::record_at(
        conn,
        contact.project_id,
        Actor::of(scope),
        vec![Entry::new(
            contact.id,
            if kind == "intervened" {
                "chat.intervened"
            } else {
                "chat.resolved"
            },
            json!({ "from": contact.state }),
        )],
        now,
    )
    .await?;
    events::record(
        conn,
        contact.project_id,
        vec![state_event(contact.id, to, agent, kind)],
        now,
    )
    .await
}

/// Why a transition was refused, read after the conditional update lost.
async fn refusal<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
    now: DateTime<Utc>,
    action: &str,
) -> AppError {
    let current = match find_contact(conn, contact.project_id, contact.id).await {
        Ok(c) => c,
        Err(err) => return err,
    };
    if !is_live(current.last_active_at, now) {
        return AppError::Refused {
            code: ErrorCode::ChatInHistory,
            message: format!(
                "the chat is in History (the contact's last message is over 24 hours old); \
                 agents cannot {action} it"
            ),
        };
    }
    if current.state == INTERVENED {
        return AppError::Conflict("another agent intervened in this chat first".into());
    }
    AppError::Conflict(format!(
        "only active or requesting chats can be intervened; this one is {}",
        current.state
    ))
}

/// The assistant hands the chat to a person: it joins the requesting queue. Returns the
/// event to record (see [`on_message`]).
pub async fn request_agent<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
    now: DateTime<Utc>,
    reason: &str,
) -> AppResult<Vec<NewEvent>> {
    if !transition(conn, contact, &[ASSISTANT], REQUESTING, Some(now)).await? {
        return Ok(Vec::new());
    }
    let chat = chat_of(conn, contact, now).await?;
    let mut active: chat::ActiveModel = chat.into();
    active.requested_at = Set(Some(now));
    active.state_changed_at = Set(now);
    sea_orm::ActiveModelTrait::update(active, conn).await?;
    journey::record_at(
        conn,
        contact.project_id,
        Actor::System,
        vec![Entry::new(
            contact.id,
            "chat.requested",
            json!({ "reason": reason }),
        )],
        now,
    )
    .await?;
    Ok(vec![state_event(contact.id, REQUESTING, None, reason)])
}

/// A new message in the contact's chat, either way: a closed chat the user writes to again
/// is live again, and subscribers get the message (only its agent among agents, while
/// intervened). Returns the events to record: the caller records them with
/// [`events::record`] last in its transaction, since numbering them locks the project's
/// event counter until the commit.
pub async fn on_message<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
    message: &parley_entity::message::Model,
    created: bool,
    now: DateTime<Utc>,
) -> AppResult<Vec<NewEvent>> {
    let chat = chat_of(conn, contact, now).await?;
    let mut recorded = Vec::new();
    let inbound = message.direction == crate::messages::store::INBOUND;
    let reopens =
        created && inbound && contact.state == CLOSED && is_live(Some(message.occurred_at), now);
    if reopens && transition(conn, contact, &[CLOSED], ASSISTANT, None).await? {
        recorded.push(state_event(contact.id, ASSISTANT, None, "wrote again"));
    }
    if created
        && chat
            .last_message_at
            .is_none_or(|at| message.occurred_at >= at)
    {
        chat::Entity::update_many()
            .col_expr(
                chat::Column::LastMessageAt,
                Expr::value(message.occurred_at),
            )
            .col_expr(chat::Column::LastMessageId, Expr::value(message.id))
            .filter(chat::Column::ContactId.eq(contact.id))
            .exec(conn)
            .await?;
    }
    let visible_to = (contact.state == INTERVENED)
        .then_some(chat.agent_id)
        .flatten();
    recorded.push(NewEvent {
        contact_id: Some(contact.id),
        topic: if created {
            MESSAGE_CREATED
        } else {
            MESSAGE_UPDATED
        },
        agent_id: visible_to,
        payload: crate::messages::live_payload(message),
    });
    Ok(recorded)
}

/// Moves chats whose contact has been silent for 24 hours to History; returns how many.
/// Runs on every node: each move is conditional, so one node makes it.
pub async fn sweep_history(state: &AppState) -> AppResult<usize> {
    let now = state.settings.clock.now();
    let cutoff = now - HISTORY_AFTER;
    let due = contact::Entity::find()
        .filter(contact::Column::State.is_in([ASSISTANT, REQUESTING, INTERVENED]))
        .filter(contact::Column::LastActiveAt.lte(cutoff))
        .all(&state.db)
        .await?;
    let mut moved = 0;
    for contact in due {
        let txn = state.db.begin().await?;
        let from = [contact.state.as_str()];
        let took = contact::Entity::update_many()
            .col_expr(contact::Column::State, Expr::value(CLOSED))
            .filter(contact::Column::Id.eq(contact.id))
            .filter(contact::Column::State.is_in(from))
            .filter(contact::Column::LastActiveAt.lte(cutoff))
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
        if !took {
            continue;
        }
        chat::Entity::update_many()
            .col_expr(chat::Column::AgentId, Expr::value(Option::<Uuid>::None))
            .col_expr(chat::Column::StateChangedAt, Expr::value(now))
            .filter(chat::Column::ContactId.eq(contact.id))
            .exec(&txn)
            .await?;
        journey::record_at(
            &txn,
            contact.project_id,
            Actor::System,
            vec![Entry::new(
                contact.id,
                "chat.closed",
                json!({ "from": contact.state }),
            )],
            now,
        )
        .await?;
        let recorded = events::record(
            &txn,
            contact.project_id,
            vec![state_event(contact.id, CLOSED, None, "history")],
            now,
        )
        .await?;
        txn.commit().await?;
        events::publish(state, recorded).await;
        moved += 1;
    }
    Ok(moved)
}

/// When the next chat falls into History, if any is live.
pub async fn next_history_at(state: &AppState) -> AppResult<Option<DateTime<Utc>>> {
    use sea_orm::QueryOrder;
    Ok(contact::Entity::find()
        .filter(contact::Column::State.is_in([ASSISTANT, REQUESTING, INTERVENED]))
        .filter(contact::Column::LastActiveAt.is_not_null())
        .order_by_asc(contact::Column::LastActiveAt)
        .one(&state.db)
        .await?
        .and_then(|c| c.last_active_at)
        .map(|at| at + HISTORY_AFTER))
}
