use sea_orm::entity::prelude::*;

/// A price per category and country, in force from a date until a newer row replaces it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rate_cards")]
pub struct Model {
    pub era: String,
    /// `YYYY-MM-DD`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub effective_from: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub country: String,
    /// `MARKETING`, `UTILITY`, `AUTHENTICATION` or `SERVICE`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub category: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub currency: String,
    pub price_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
