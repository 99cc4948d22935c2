use sea_orm::entity::prelude::*;

/// A project's credit wallet. The balance only changes together with a ledger entry.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wallets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    pub currency: String,
    pub balance_micros: i64,
    /// Below this balance, subscribers get a low-balance alert.
    pub low_balance_micros: i64,
    /// The sequence number of the newest ledger entry.
    pub last_seq: i64,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
