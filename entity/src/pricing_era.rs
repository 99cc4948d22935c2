use sea_orm::entity::prelude::*;

/// One of Meta's pricing eras: the rules in force from a date (UTC).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "pricing_eras")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// `YYYY-MM-DD`, from 00:00 UTC.
    pub effective_from: String,
    /// `CONVERSATION` or `PER_MESSAGE`.
    pub model: String,
    pub free_service_per_month: i32,
    pub service_free: bool,
    pub utility_free_in_service_window: bool,
    pub free_entry_point_hours: i32,
    pub conversation_hours: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
