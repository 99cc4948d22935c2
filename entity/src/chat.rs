use sea_orm::entity::prelude::*;

/// Who handles a contact's chat. The state itself is the contact's `state`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chats")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub contact_id: Uuid,
    pub project_id: Uuid,
    /// The agent who intervened, while the chat is intervened.
    pub agent_id: Option<Uuid>,
    pub state_changed_at: DateTimeUtc,
    pub requested_at: Option<DateTimeUtc>,
    pub intervened_at: Option<DateTimeUtc>,
    /// The last message either way.
    pub last_message_at: Option<DateTimeUtc>,
    pub last_message_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
