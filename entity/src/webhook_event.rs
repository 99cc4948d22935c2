use sea_orm::entity::prelude::*;

/// A webhook delivery, stored before Meta gets its 200 and processed afterwards. The
/// sandbox's played-back events wait here too, until `available_at`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `META` or `SANDBOX`.
    pub source: String,
    pub project_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// `PENDING`, `PROCESSED`, `FAILED`, `UNROUTABLE` or `MALFORMED`.
    pub state: String,
    pub attempts: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub received_at: DateTimeUtc,
    pub available_at: DateTimeUtc,
    pub processed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
