use sea_orm::entity::prelude::*;

/// What inbound messages taught about a contact: the first and last message times (the
/// customer-service window) and how consent and the first-message tag were last set.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "contact_messaging")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub contact_id: Uuid,
    pub project_id: Uuid,
    pub first_inbound_at: Option<DateTimeUtc>,
    pub last_inbound_at: Option<DateTimeUtc>,
    /// A first-message rule judged the earliest message (and so owns the tag).
    pub first_message_tag_by_rule: bool,
    /// Time of the message that last opted the contact out or in (STOP / START).
    pub consent_changed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
