use async_graphql::{
    Context, Enum, ID, InputObject, Object, Result, SimpleObject, Subscription,
    connection::{Connection, Edge},
    dataloader::DataLoader,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use parley_entity::message;
use uuid::Uuid;

use super::{
    assistant::{self, KeywordReply},
    events::ChatEvent,
    listing::{self, ChatCursor, ChatRow, Group},
    service::{self, HISTORY_AFTER},
    stream::{self, Viewer},
};
use crate::{
    auth::{
        Role, RoleGuard,
        guard::{OWNER, OWNER_MANAGER},
    },
    contacts::graphql::{Contact, ContactState},
    errors::AppError,
    graphql::{app_state, loaders::UserLoader, scope},
    messages::graphql::Message,
    projects::graphql::parse_id,
};

/// Who works in live chat.
pub const CHAT_ROLES: &[Role] = &[Role::Owner, Role::Manager, Role::Agent];

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ChatGroup {
    /// Handled by the assistant; the contact wrote within 24 hours.
    Active,
    /// Waiting for a person.
    Requesting,
    /// Intervened by the caller.
    IntervenedByMe,
    /// Intervened by anyone (owners and managers).
    Intervened,
    /// The contact's last message is over 24 hours old: templates only.
    History,
}

impl From<ChatGroup> for Group {
    fn from(g: ChatGroup) -> Self {
        match g {
            ChatGroup::Active => Group::Active,
            ChatGroup::Requesting => Group::Requesting,
            ChatGroup::IntervenedByMe => Group::IntervenedByMe,
            ChatGroup::Intervened => Group::Intervened,
            ChatGroup::History => Group::History,
        }
    }
}

pub struct Chat(pub ChatRow);

/// The agent handling a chat.
#[derive(SimpleObject)]
pub struct ChatAgent {
    pub id: ID,
    pub username: String,
    pub display_name: String,
}

#[Object]
impl Chat {
    /// The contact's id, which is also the chat's.
    async fn id(&self) -> ID {
        ID(self.0.contact.id.to_string())
    }
    async fn contact(&self) -> Contact {
        Contact::new(self.0.contact.clone())
    }
    async fn state(&self) -> ContactState {
        ContactState::parse(&self.0.contact.state)
    }
    /// The agent who intervened, while the chat is intervened.
    async fn agent(&self, ctx: &Context<'_>) -> Result<Option<ChatAgent>> {
        let Some(id) = self.0.chat.as_ref().and_then(|c| c.agent_id) else {
            return Ok(None);
        };
        if self.0.contact.state != service::INTERVENED {
            return Ok(None);
        }
        let user = ctx
            .data_unchecked::<DataLoader<UserLoader>>()
            .load_one(id)
            .await
            .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
        Ok(user.map(|u| ChatAgent {
            id: ID(u.id.to_string()),
            username: u.username,
            display_name: u.display_name,
        }))
    }
    /// The last message either way.
    async fn last_message(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        let Some(id) = self.0.chat.as_ref().and_then(|c| c.last_message_id) else {
            return Ok(None);
        };
        let found = ctx
            .data_unchecked::<DataLoader<MessageLoader>>()
            .load_one(id)
            .await
            .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
        Ok(found.map(Message))
    }
    async fn last_message_at(&self) -> Option<DateTime<Utc>> {
        self.0.chat.as_ref().and_then(|c| c.last_message_at)
    }
    /// The contact's last message to the business.
    async fn last_inbound_at(&self) -> Option<DateTime<Utc>> {
        self.0.contact.last_active_at
    }
    /// When free-form messages stop being possible (and the chat goes to History).
    async fn window_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.contact.last_active_at.map(|at| at + HISTORY_AFTER)
    }
    async fn requested_at(&self) -> Option<DateTime<Utc>> {
        self.0.chat.as_ref().and_then(|c| c.requested_at)
    }
    async fn intervened_at(&self) -> Option<DateTime<Utc>> {
        self.0
            .chat
            .as_ref()
            .filter(|_| self.0.contact.state == service::INTERVENED)
            .and_then(|c| c.intervened_at)
    }
}

/// Loads messages by id, for the last message of each chat in a list.
pub struct MessageLoader {
    pub db: sea_orm::DatabaseConnection,
    pub project_id: Option<Uuid>,
}

impl async_graphql::dataloader::Loader<Uuid> for MessageLoader {
    type Value = message::Model;
    type Error = std::sync::Arc<AppError>;

    async fn load(
        &self,
        keys: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, message::Model>, Self::Error> {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        let Some(project_id) = self.project_id else {
            return Ok(Default::default());
        };
        let rows = message::Entity::find()
            .filter(message::Column::ProjectId.eq(project_id))
            .filter(message::Column::Id.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(|e| std::sync::Arc::new(AppError::from(e)))?;
        Ok(rows.into_iter().map(|m| (m.id, m)).collect())
    }
}

#[derive(SimpleObject)]
pub struct ChatCounts {
    pub active: i64,
    pub requesting: i64,
    pub intervened_by_me: i64,
    /// Intervened by anyone; for agents, their own.
    pub intervened: i64,
    pub history: i64,
}

#[derive(SimpleObject)]
pub struct KeywordReplyObject {
    pub keyword: String,
    pub reply: String,
}

#[derive(InputObject)]
pub struct KeywordReplyInput {
    pub keyword: String,
    pub reply: String,
}

#[derive(SimpleObject)]
pub struct AssistantSettings {
    pub enabled: bool,
    /// Sent when a contact starts a new conversation.
    pub greeting: Option<String>,
    /// Words that hand the chat to a person (it joins the requesting queue).
    pub handover_keywords: Vec<String>,
    pub handover_reply: Option<String>,
    pub replies: Vec<KeywordReplyObject>,
}

impl From<assistant::Settings> for AssistantSettings {
    fn from(s: assistant::Settings) -> Self {
        Self {
            enabled: s.enabled,
            greeting: s.greeting,
            handover_keywords: s.handover_keywords,
            handover_reply: s.handover_reply,
            replies: s
                .replies
                .into_iter()
                .map(|r| KeywordReplyObject {
                    keyword: r.keyword,
                    reply: r.reply,
                })
                .collect(),
        }
    }
}

#[derive(InputObject)]
pub struct AssistantSettingsInput {
    pub enabled: bool,
    pub greeting: Option<String>,
    pub handover_keywords: Vec<String>,
    pub handover_reply: Option<String>,
    #[graphql(default)]
    pub replies: Vec<KeywordReplyInput>,
}

#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// Chats of a group, most recent message first.
    #[graphql(guard = "RoleGuard::read(CHAT_ROLES)")]
    async fn chats(
        &self,
        ctx: &Context<'_>,
        group: ChatGroup,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Chat>> {
        let first = first
            .map(|n| {
                usize::try_from(n).map_err(|_| AppError::bad_input("first", "must not be negative"))
            })
            .transpose()?;
        let after = after.as_deref().map(ChatCursor::decode).transpose()?;
        let page = listing::list(app_state(ctx), scope(ctx)?, group.into(), first, after).await?;
        let mut connection = Connection::new(page.has_previous_page, page.has_next_page);
        connection.edges = page
            .items
            .into_iter()
            .map(|row| {
                let cursor = ChatCursor {
                    at: row.contact.last_active_at.unwrap_or_default(),
                    id: row.contact.id,
                };
                Edge::new(cursor.encode(), Chat(row))
            })
            .collect();
        Ok(connection)
    }

    /// How many chats each group holds, for the dashboard's tabs.
    #[graphql(guard = "RoleGuard::read(CHAT_ROLES)")]
    async fn chat_counts(&self, ctx: &Context<'_>) -> Result<ChatCounts> {
        let state = app_state(ctx);
        let scope = scope(ctx)?;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let intervened_group = if scope.role == Role::Agent {
            Group::IntervenedByMe
        } else {
            Group::Intervened
        };
        Ok(ChatCounts {
            active: n(listing::count(state, scope, Group::Active).await?),
            requesting: n(listing::count(state, scope, Group::Requesting).await?),
            intervened_by_me: n(listing::count(state, scope, Group::IntervenedByMe).await?),
            intervened: n(listing::count(state, scope, intervened_group).await?),
            history: n(listing::count(state, scope, Group::History).await?),
        })
    }

    /// One contact's chat (refused to agents when another agent has intervened).
    #[graphql(guard = "RoleGuard::read(CHAT_ROLES)")]
    async fn chat(&self, ctx: &Context<'_>, contact_id: ID) -> Result<Chat> {
        let id = parse_id("contactId", &contact_id)?;
        Ok(Chat(listing::one(app_state(ctx), scope(ctx)?, id).await?))
    }

    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn assistant_settings(&self, ctx: &Context<'_>) -> Result<AssistantSettings> {
        let scope = scope(ctx)?;
        Ok(assistant::settings(&app_state(ctx).db, scope.project_id)
            .await?
            .into())
    }
}

#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Takes the chat over from the assistant. Of two agents at once, exactly one wins;
    /// the other gets CONFLICT. Chats in History cannot be intervened (CHAT_IN_HISTORY).
    #[graphql(guard = "RoleGuard::write(CHAT_ROLES)")]
    async fn intervene_chat(&self, ctx: &Context<'_>, contact_id: ID) -> Result<Chat> {
        let id = parse_id("contactId", &contact_id)?;
        let state = app_state(ctx);
        let scope = scope(ctx)?;
        service::intervene(state, scope, id).await?;
        Ok(Chat(listing::one(state, scope, id).await?))
    }

    /// Hands the chat back to the assistant, visible to every agent again.
    #[graphql(guard = "RoleGuard::write(CHAT_ROLES)")]
    async fn resolve_chat(&self, ctx: &Context<'_>, contact_id: ID) -> Result<Chat> {
        let id = parse_id("contactId", &contact_id)?;
        let state = app_state(ctx);
        let scope = scope(ctx)?;
        service::resolve(state, scope, id).await?;
        Ok(Chat(listing::one(state, scope, id).await?))
    }

    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn update_assistant_settings(
        &self,
        ctx: &Context<'_>,
        input: AssistantSettingsInput,
    ) -> Result<AssistantSettings> {
        let wanted = assistant::Settings {
            enabled: input.enabled,
            greeting: input.greeting,
            handover_keywords: input.handover_keywords,
            handover_reply: input.handover_reply,
            replies: input
                .replies
                .into_iter()
                .map(|r| KeywordReply {
                    keyword: r.keyword,
                    reply: r.reply,
                })
                .collect(),
        };
        Ok(assistant::save(app_state(ctx), scope(ctx)?, wanted)
            .await?
            .into())
    }
}

/// A numbered chat event. Pass the last `seq` seen as `after` when reconnecting to get
/// what was missed first.
pub struct ChatEventObject(std::sync::Arc<ChatEvent>);

#[Object(name = "ChatEvent")]
impl ChatEventObject {
    /// Per-project sequence number.
    async fn seq(&self) -> i64 {
        self.0.seq
    }
    /// `message.created`, `message.updated` or `chat.state_changed`.
    async fn topic(&self) -> &str {
        &self.0.topic
    }
    async fn contact_id(&self) -> Option<ID> {
        self.0.contact_id.map(|id| ID(id.to_string()))
    }
    /// The chat's state after a state change.
    async fn state(&self) -> Option<ContactState> {
        self.0.payload["state"].as_str().map(ContactState::parse)
    }
    /// The agent who intervened, on `chat.state_changed` to INTERVENED.
    async fn agent_id(&self) -> Option<ID> {
        self.0.payload["agentId"]
            .as_str()
            .map(|id| ID(id.to_owned()))
    }
    /// Why the state changed: `intervened`, `resolved`, `keyword`, `history`, `wrote again`.
    async fn reason(&self) -> Option<&str> {
        self.0.payload["reason"].as_str()
    }
    /// The message, on message events.
    async fn message(&self) -> Option<Message> {
        self.0.message.as_deref().cloned().map(Message)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(Default)]
pub struct ChatSubscription;

#[Subscription]
impl ChatSubscription {
    /// Chat events of the project (or of one contact): new and updated messages and state
    /// changes, as the caller's role may see them. With `after`, missed events come first.
    #[graphql(guard = "RoleGuard::read(CHAT_ROLES)")]
    async fn chat_events(
        &self,
        ctx: &Context<'_>,
        after: Option<i64>,
        contact_id: Option<ID>,
    ) -> Result<impl Stream<Item = ChatEventObject> + use<>> {
        let scope = scope(ctx)?;
        let contact = contact_id
            .as_ref()
            .map(|id| parse_id("contactId", id))
            .transpose()?;
        let events =
            stream::subscribe(app_state(ctx), scope.project_id, Viewer::of(scope), after).await?;
        Ok(events.filter_map(move |event| async move {
            contact
                .is_none_or(|c| event.contact_id == Some(c))
                .then_some(ChatEventObject(event))
        }))
    }

    /// The requesting queue: every chat state change (a chat joins the queue on
    /// REQUESTING and leaves it on any other state).
    #[graphql(guard = "RoleGuard::read(CHAT_ROLES)")]
    async fn requesting_queue(
        &self,
        ctx: &Context<'_>,
        after: Option<i64>,
    ) -> Result<impl Stream<Item = ChatEventObject> + use<>> {
        let scope = scope(ctx)?;
        let events =
            stream::subscribe(app_state(ctx), scope.project_id, Viewer::of(scope), after).await?;
        Ok(events.filter_map(|event| async move {
            (event.topic == service::STATE_CHANGED).then_some(ChatEventObject(event))
        }))
    }
}
