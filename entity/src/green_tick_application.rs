use sea_orm::entity::prelude::*;

/// An application for WhatsApp's green tick (an Official Business Account).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "green_tick_applications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    /// `SUBMITTED`, `APPROVED`, `REJECTED`, `WITHDRAWN` or `REVOKED`.
    pub status: String,
    /// The eligibility criteria as evaluated when it was submitted (JSON).
    #[sea_orm(column_type = "Text")]
    pub criteria: String,
    pub submitted_by: Option<Uuid>,
    pub submitted_at: DateTimeUtc,
    pub decided_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub decision_reason: Option<String>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
