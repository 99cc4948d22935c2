use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// A WhatsApp message to or from a contact.
/// Serializable so that live subscribers get the whole message over the bus.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub contact_id: Uuid,
    /// `INBOUND` or `OUTBOUND`.
    pub direction: String,
    /// Meta's message type: `text`, `image`, `template`, `button`, ...
    pub kind: String,
    /// The message's content as JSON.
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// Meta's `wamid`, once known.
    pub wa_message_id: Option<String>,
    /// `RECEIVED` (inbound); `PENDING`, `ACCEPTED`, `SENT`, `DELIVERED`, `READ`, `FAILED`.
    pub status: String,
    pub error_code: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_title: Option<String>,
    pub template_id: Option<Uuid>,
    pub context_wa_message_id: Option<String>,
    pub reply_to_message_id: Option<Uuid>,
    /// The ad or post the user came from (JSON), for click-to-WhatsApp entry points.
    #[sea_orm(column_type = "Text", nullable)]
    pub referral: Option<String>,
    /// Meta's latest pricing and conversation objects (JSON).
    #[sea_orm(column_type = "Text", nullable)]
    pub pricing: Option<String>,
    pub sent_by: Option<Uuid>,
    /// When the message was written: Meta's timestamp for inbound, the send time outbound.
    pub occurred_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    pub delivered_at: Option<DateTimeUtc>,
    pub read_at: Option<DateTimeUtc>,
    pub failed_at: Option<DateTimeUtc>,
    pub replied_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
