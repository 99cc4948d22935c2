use sea_orm::entity::prelude::*;

/// What a project has told Parley about its business for onboarding: the prerequisites of
/// a WhatsApp Business API application and the green tick evidence.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "onboarding_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    /// The answers (JSON), read by `api::onboarding::checklist`.
    #[sea_orm(column_type = "Text")]
    pub answers: String,
    pub updated_by: Option<Uuid>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
