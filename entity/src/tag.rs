use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tags")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    /// The name lowercased: names are unique in a project regardless of case.
    pub name_key: String,
    /// `MANUAL`, `FIRST_MESSAGE`, `API` or `BROADCAST`.
    pub kind: String,
    /// For first-message tags: keywords (one per line) that assign the tag when a user's
    /// first message contains one.
    #[sea_orm(column_type = "Text", nullable)]
    pub first_message_keywords: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
