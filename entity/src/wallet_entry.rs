use sea_orm::entity::prelude::*;

/// One line of a wallet's ledger, numbered per project, with the balance after it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "wallet_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// `TOP_UP`, `CHARGE`, `REFUND`, `EXPIRY`, `TRIAL_CREDIT`, `ADJUSTMENT`.
    pub kind: String,
    /// Signed: credits are positive, charges negative.
    pub amount_micros: i64,
    pub balance_after_micros: i64,
    pub message_id: Option<Uuid>,
    pub invoice_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    #[sea_orm(column_type = "Text", nullable)]
    pub note: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
