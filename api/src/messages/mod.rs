//! Messages to and from contacts: storage with status history, sending, and their GraphQL
//! types.

pub mod graphql;
pub mod send;
pub mod store;

use parley_entity::message;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    auth::Scope,
    errors::{AppError, AppResult},
    pagination::{self, Page, PageRequest},
    state::AppState,
};

/// What live subscribers receive of a message: the whole row.
pub fn live_payload(message: &message::Model) -> Value {
    serde_json::to_value(message).unwrap_or(Value::Null)
}

pub async fn find(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<message::Model> {
    let message = message::Entity::find_by_id(id)
        .filter(message::Column::ProjectId.eq(scope.project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("message"))?;
    let contact = crate::contacts::service::find(state, scope, message.contact_id).await?;
    crate::chat::listing::ensure_may_use(state, scope, &contact).await?;
    Ok(message)
}

/// A contact's messages in the order they were written (inbound ones by Meta's time).
pub async fn of_contact(
    state: &AppState,
    scope: &Scope,
    contact_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<message::Model>> {
    let contact = crate::contacts::service::find(state, scope, contact_id).await?;
    crate::chat::listing::ensure_may_use(state, scope, &contact).await?;
    let select = message::Entity::find()
        .filter(message::Column::ProjectId.eq(scope.project_id))
        .filter(message::Column::ContactId.eq(contact_id));
    pagination::fetch(&state.db, select, message::Column::Id, page).await
}
