use sea_orm::entity::prelude::*;

/// What one outbound message cost by Parley's pricing, beside Meta's own pricing object.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_charges")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub message_id: Uuid,
    pub project_id: Uuid,
    pub contact_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub charged_at: DateTimeUtc,
    pub era: String,
    /// `CONVERSATION` or `PER_MESSAGE`.
    pub model: String,
    pub category: String,
    pub country: String,
    pub conversation_id: Option<Uuid>,
    pub opened_conversation: bool,
    pub billable: bool,
    pub free_reason: Option<String>,
    pub uses_free_tier: bool,
    pub amount_micros: i64,
    pub currency: String,
    /// The wallet entry that charged it.
    pub wallet_seq: Option<i64>,
    /// Set when the message failed and the charge was given back.
    pub refunded_at: Option<DateTimeUtc>,
    /// Meta's latest pricing object for the message (JSON).
    #[sea_orm(column_type = "Text", nullable)]
    pub meta_pricing: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
