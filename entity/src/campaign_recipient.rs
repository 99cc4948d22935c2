use sea_orm::entity::prelude::*;

/// One contact of a campaign's audience snapshot, and the dispatcher's queue entry for it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "campaign_recipients")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub campaign_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub contact_id: Uuid,
    pub project_id: Uuid,
    /// Sending order.
    pub seq: i64,
    /// `QUEUED`, `SENDING`, `SENT`, `DELIVERED`, `READ`, `FAILED`, `SKIPPED` or
    /// `INTERRUPTED` (the process stopped while the send may have reached Meta).
    pub status: String,
    /// `OPTED_OUT`, `INCOMING_BLOCKED`, `UNREACHABLE`, `INSUFFICIENT_CREDITS`,
    /// `MESSAGING_LIMIT`, `CANCELLED`.
    pub skip_reason: Option<String>,
    pub message_id: Option<Uuid>,
    pub error_code: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_title: Option<String>,
    /// `LIMITED_BY_META`, `UNDELIVERABLE`, `OUTSIDE_WINDOW`, `TEMPLATE_PAUSED`, `OTHER`.
    pub failure_group: Option<String>,
    pub attempts: i32,
    /// A rate-limited send waits until then.
    pub next_attempt_at: Option<DateTimeUtc>,
    /// A `SENDING` claim's lease.
    pub claimed_until: Option<DateTimeUtc>,
    pub queued_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    pub delivered_at: Option<DateTimeUtc>,
    pub read_at: Option<DateTimeUtc>,
    pub failed_at: Option<DateTimeUtc>,
    pub clicked_at: Option<DateTimeUtc>,
    pub replied_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
