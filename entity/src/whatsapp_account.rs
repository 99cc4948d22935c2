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
    /// Unique users business-initiated messages may reach per rolling 24 hours (Meta's
    /// messaging limit tier: 250, 2,000, 10,000, 100,000); `None` for unlimited.
    pub messaging_limit: Option<i32>,
    /// Messages per second the number may send (80 by default, up to 1,000).
    pub throughput_per_second: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
