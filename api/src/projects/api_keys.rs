//! Project API keys for CRMs: the secret is shown once; only its hash is kept.

use chrono::Utc;
use parley_entity::api_key;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::{Scope, api_key as keys},
    errors::{AppError, AppResult},
    events,
    pagination::{self, Page, PageRequest},
    state::AppState,
    validate,
};

pub struct CreatedKey {
    pub key: api_key::Model,
    pub secret: String,
}

pub async fn create(state: &AppState, scope: &Scope, name: &str) -> AppResult<CreatedKey> {
    let name = validate::text("name", name, 128)?;
    let new = keys::generate();
    let txn = state.db.begin().await?;
    let key = api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        name: Set(name),
        prefix: Set(new.prefix),
        key_hash: Set(new.hash),
        created_by: Set(scope.actor_id().unwrap_or_default()),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    events::record(
        &txn,
        scope.project_id,
        "api_key.created",
        scope.actor_id(),
        json!({ "apiKeyId": key.id }),
    )
    .await?;
    txn.commit().await?;
    Ok(CreatedKey {
        key,
        secret: new.secret,
    })
}

pub async fn list(
    state: &AppState,
    scope: &Scope,
    include_revoked: bool,
    page: PageRequest,
) -> AppResult<Page<api_key::Model>> {
    let mut select =
        api_key::Entity::find().filter(api_key::Column::ProjectId.eq(scope.project_id));
    if !include_revoked {
        select = select.filter(api_key::Column::RevokedAt.is_null());
    }
    pagination::fetch(&state.db, select, api_key::Column::Id, page).await
}

/// Revokes a key of the caller's project; revoking twice is harmless.
pub async fn revoke(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<api_key::Model> {
    let key = api_key::Entity::find_by_id(id)
        .filter(api_key::Column::ProjectId.eq(scope.project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("API key"))?;
    if key.revoked_at.is_some() {
        return Ok(key);
    }
    let txn = state.db.begin().await?;
    let mut active: api_key::ActiveModel = key.into();
    active.revoked_at = Set(Some(Utc::now()));
    let key = active.update(&txn).await?;
    events::record(
        &txn,
        scope.project_id,
        "api_key.revoked",
        scope.actor_id(),
        json!({ "apiKeyId": key.id }),
    )
    .await?;
    txn.commit().await?;
    // WebSocket connections opened with the key end now, not when they next reconnect.
    events::publish(
        state,
        scope.project_id,
        crate::graphql::revocations::API_KEY_REVOKED,
        json!({ "apiKeyId": key.id }),
    )
    .await;
    Ok(key)
}
