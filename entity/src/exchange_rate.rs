use sea_orm::entity::prelude::*;

/// How many units of `to_currency` one unit of `from_currency` buys, from a date.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "exchange_rates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub from_currency: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub to_currency: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub effective_from: String,
    pub rate_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
