use sea_orm::entity::prelude::*;

/// A project's plan subscription: prepaid terms, monthly or yearly.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "subscriptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub project_id: Uuid,
    /// `FREE_TRIAL`, `BASIC` or `PRO`.
    pub plan: String,
    /// `MONTHLY` or `YEARLY` (`TRIAL` for the free trial).
    pub billing_interval: String,
    /// `TRIALING`, `PENDING_PAYMENT`, `ACTIVE`, `EXPIRED`.
    pub status: String,
    pub period_start: DateTimeUtc,
    pub period_end: DateTimeUtc,
    /// Cancelled: works to `period_end`, then expires.
    pub cancel_at_period_end: bool,
    pub cancelled_at: Option<DateTimeUtc>,
    pub expired_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
