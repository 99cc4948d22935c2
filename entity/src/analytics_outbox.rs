//! Append-only outbox of analytics events, written in the same transaction as the change
//! each event records and shipped in batches to the analytics store.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "analytics_outbox")]
pub struct Model {
    /// Insertion order; the shipper reads in this order.
    #[sea_orm(primary_key)]
    pub seq: i64,
    /// Identity of the event in the analytics store (deduplicates retried batches).
    #[sea_orm(unique)]
    pub event_id: Uuid,
    pub project_id: Uuid,
    pub kind: String,
    pub actor_id: Option<Uuid>,
    pub occurred_at: DateTimeUtc,
    /// JSON object with the event's own fields.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// Set once the event is durably in the analytics store.
    pub shipped_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
