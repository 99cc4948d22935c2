use sea_orm::entity::prelude::*;

/// One entry of a contact's customer journey.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "contact_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub contact_id: Uuid,
    /// `contact.created`, `contact.imported`, `tag.added`, `tag.removed`,
    /// `attribute.changed`, `opted_in`, `opted_out`, …
    pub kind: String,
    /// `USER`, `API_KEY`, `IMPORT`, `CONTACT` or `SYSTEM`.
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    /// JSON object with the event's details.
    #[sea_orm(column_type = "Text")]
    pub data: String,
    pub occurred_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
