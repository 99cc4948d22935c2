use sea_orm::entity::prelude::*;

/// The built-in assistant of a project: a greeting, keyword replies and the words that
/// hand a chat over to a person.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "assistant_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    pub enabled: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub greeting: Option<String>,
    /// Lowercase keywords, one per line.
    #[sea_orm(column_type = "Text")]
    pub handover_keywords: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub handover_reply: Option<String>,
    /// `[{"keyword": "...", "reply": "..."}]`
    #[sea_orm(column_type = "Text")]
    pub replies: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
