use sea_orm::entity::prelude::*;

/// A live-chat event, numbered per project: what subscribers receive, kept so that a
/// client that reconnects can ask for what it missed.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub contact_id: Option<Uuid>,
    /// `message.created`, `message.updated`, `chat.state_changed`...
    pub topic: String,
    /// Set while the chat is intervened: agents other than this one do not see it.
    pub agent_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
