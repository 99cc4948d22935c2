use sea_orm::entity::prelude::*;

/// An invoice: a plan term or a wallet top-up. Recording its payment settles it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invoices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub number: String,
    /// `SUBSCRIPTION` or `TOP_UP`.
    pub kind: String,
    pub plan: Option<String>,
    pub billing_interval: Option<String>,
    pub period_start: Option<DateTimeUtc>,
    pub period_end: Option<DateTimeUtc>,
    pub amount_micros: i64,
    /// Credits added to the wallet when paid (top-ups).
    pub credits_micros: i64,
    pub currency: String,
    /// `PENDING`, `PAID` or `VOID`.
    pub status: String,
    pub issued_at: DateTimeUtc,
    pub due_at: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
    pub payment_reference: Option<String>,
    pub voided_at: Option<DateTimeUtc>,
    pub created_by: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
