use sea_orm::entity::prelude::*;

/// A request to leave the WhatsApp Business API: downgrade the number, or disable
/// two-step verification to move it to another provider.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "leaving_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub application_id: Option<Uuid>,
    /// `DOWNGRADE` or `TWO_STEP_DISABLE`.
    pub kind: String,
    /// `REQUESTED`, `COMPLETED` or `CANCELLED`.
    pub status: String,
    pub phone_number: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub new_provider: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub reason: Option<String>,
    /// What the downgrade deletes, as confirmed (JSON counts).
    #[sea_orm(column_type = "Text", nullable)]
    pub data_deletion: Option<String>,
    pub requested_by: Option<Uuid>,
    pub requested_at: DateTimeUtc,
    pub earliest_completion_at: Option<DateTimeUtc>,
    pub latest_completion_at: Option<DateTimeUtc>,
    pub completed_at: Option<DateTimeUtc>,
    pub cancelled_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
