use sea_orm::entity::prelude::*;

/// A plan's price for one billing interval, in one currency.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "plan_prices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub plan: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub billing_interval: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub currency: String,
    pub price_micros: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
