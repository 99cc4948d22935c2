use sea_orm::entity::prelude::*;

/// A broadcast (an audience, sent now or at a time) or an API campaign (sent to one
/// contact per CRM call).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaigns")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    /// The name folded for uniqueness in the project.
    pub name_key: String,
    /// `BROADCAST` or `API`.
    pub kind: String,
    pub template_id: Uuid,
    /// The template's parameter values (JSON: `[{"value", "fallback"}]`).
    #[sea_orm(column_type = "Text")]
    pub parameters: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub header_media_link: Option<String>,
    /// The audience (JSON): a contact filter or a list of contact ids.
    #[sea_orm(column_type = "Text", nullable)]
    pub audience: Option<String>,
    pub broadcast_tag_id: Option<Uuid>,
    /// `DRAFT`, `SCHEDULED`, `RUNNING`, `PAUSED`, `COMPLETED`, `CANCELLED`, `STOPPED`
    /// (broadcasts); `LIVE` or `PAUSED` (API campaigns).
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub stop_reason: Option<String>,
    pub scheduled_at: Option<DateTimeUtc>,
    pub started_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
    /// Recipients in the audience snapshot.
    pub recipients: i64,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
