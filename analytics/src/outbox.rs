//! Writing to the relational outbox. Events are recorded in the caller's transaction so an
//! event exists exactly when the change it describes was committed.

use parley_entity::analytics_outbox::{self, Column, Entity};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
};

use crate::Event;

/// Rows per multi-row INSERT, well under both backends' bind-parameter limits.
const CHUNK: usize = 1_000;

fn row(event: &Event) -> analytics_outbox::ActiveModel {
    analytics_outbox::ActiveModel {
        event_id: Set(event.event_id),
        project_id: Set(event.project_id),
        kind: Set(event.kind.clone()),
        actor_id: Set(event.actor_id),
        occurred_at: Set(event.occurred_at),
        payload: Set(event.payload.to_string()),
        shipped_at: Set(None),
        ..Default::default()
    }
}

/// Appends `event` to the outbox. Pass the transaction of the change being recorded.
pub async fn record<C: ConnectionTrait>(conn: &C, event: &Event) -> Result<(), DbErr> {
    // No RETURNING needed: nobody reads the generated seq back.
    Entity::insert(row(event))
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Appends many events with multi-row INSERTs (bulk changes such as imports).
pub async fn record_many<C: ConnectionTrait>(conn: &C, events: &[Event]) -> Result<(), DbErr> {
    for chunk in events.chunks(CHUNK) {
        Entity::insert_many(chunk.iter().map(row))
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Number of events not yet shipped to the analytics store.
pub async fn pending_count<C: ConnectionTrait>(conn: &C) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::ShippedAt.is_null())
        .count(conn)
        .await
}
