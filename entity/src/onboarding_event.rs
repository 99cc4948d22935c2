use sea_orm::entity::prelude::*;

/// One row of an application's audit trail: who did what at which step, and how it went.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "onboarding_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub application_id: Uuid,
    pub project_id: Uuid,
    pub step: String,
    pub action: String,
    /// `SUCCEEDED`, `FAILED`, `PENDING` or `REJECTED` (inputs refused before any call).
    pub outcome: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// `None` when Parley itself acted (a sandbox outcome arriving, say).
    pub actor_id: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub details: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
