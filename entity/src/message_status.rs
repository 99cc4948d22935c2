use sea_orm::entity::prelude::*;

/// One status Meta reported for an outbound message, kept once per status whatever the
/// order or number of deliveries. A message's current status is derived from these.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "message_statuses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub wa_message_id: String,
    /// `sent`, `delivered`, `read` or `failed`.
    pub status: String,
    pub occurred_at: DateTimeUtc,
    pub recipient_id: Option<String>,
    pub error_code: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_title: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_details: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub pricing: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub conversation: Option<String>,
    /// Implied by a later status (`read` without `delivered`) rather than reported.
    pub inferred: bool,
    pub received_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
