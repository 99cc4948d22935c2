use sea_orm::entity::prelude::*;

/// A pricing conversation (or free-entry-point window) opened by an outbound message.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pricing_conversations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub contact_id: Uuid,
    /// A category, or `FREE_ENTRY_POINT` for the 72-hour free window.
    pub category: String,
    pub opened_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub era: String,
    pub country: String,
    pub billable: bool,
    pub free_reason: Option<String>,
    pub amount_micros: i64,
    pub currency: String,
    /// The message that opened it.
    pub message_id: Uuid,
    /// Set when the opening message failed: the conversation never opened.
    pub voided_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
