use sea_orm::entity::prelude::*;

/// A project's WhatsApp Business number: the Cloud API credentials (`provider = "meta"`) or
/// the sandbox that stands in for Meta (`provider = "sandbox"`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "whatsapp_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    pub provider: String,
    pub waba_id: String,
    /// Inbound webhooks are routed to the project by this id.
    #[sea_orm(unique)]
    pub phone_number_id: String,
    pub display_phone_number: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub access_token: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
