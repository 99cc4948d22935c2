use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "contacts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    /// E.164; absent for a user known only by a business-scoped user id.
    pub phone: Option<String>,
    /// Meta's business-scoped user id, like `IN.1502576394655843`.
    pub bsuid: Option<String>,
    /// `IMPORT`, `ORGANIC`, `API` or the custom text of a CSV.
    pub source: String,
    pub first_message_tag_id: Option<Uuid>,
    pub opted_in: bool,
    pub opted_in_at: Option<DateTimeUtc>,
    pub opted_in_source: Option<String>,
    pub incoming_blocked: bool,
    /// `HANDLED_BY_ASSISTANT`, `REQUESTING`, `INTERVENED` or `CLOSED`.
    pub state: String,
    /// Time of the user's last inbound message; the status (active or not) derives from it.
    pub last_active_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
