use sea_orm::entity::prelude::*;

/// A message template and its review status at Meta.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub language: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    pub category: String,
    /// `POSITIONAL` or `NAMED`.
    pub parameter_format: String,
    /// The components (header, body, footer, buttons) as JSON.
    #[sea_orm(column_type = "Text")]
    pub components: String,
    /// `DRAFT`, `PENDING`, `APPROVED`, `REJECTED`, `PAUSED` or `DISABLED`.
    pub status: String,
    pub meta_template_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub rejection_reason: Option<String>,
    pub previous_category: Option<String>,
    /// Meta's time of the last status or category change applied, so that an older
    /// webhook arriving late changes nothing.
    pub status_changed_at: Option<DateTimeUtc>,
    /// Meta's time of the last category change applied, for the same reason.
    pub category_changed_at: Option<DateTimeUtc>,
    pub submitted_at: Option<DateTimeUtc>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
