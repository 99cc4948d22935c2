use sea_orm::entity::prelude::*;

/// A URL button's tracked link for one recipient of a campaign (pro plan).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tracked_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub token: String,
    pub project_id: Uuid,
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub url: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
