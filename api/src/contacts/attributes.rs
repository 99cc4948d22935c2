//! Custom attributes defined per project (key and display name). Contacts carry string
//! values; deleting a definition deletes its values.

use std::collections::HashMap;

use chrono::Utc;
use parley_entity::{attribute, contact_attribute};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::Scope,
    errors::{AppError, AppResult},
    events,
    state::AppState,
    validate,
};

/// Keys become `$Key` placeholders: a letter, then letters, digits or underscores.
pub fn attribute_key(raw: &str) -> AppResult<String> {
    let key = raw.trim().trim_start_matches('$');
    let mut chars = key.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && key.len() <= 64;
    if !valid {
        return Err(AppError::bad_input(
            "key",
            "an attribute key starts with a letter and has only letters, digits and _ (at most 64)",
        ));
    }
    const RESERVED: [&str; 4] = ["name", "firstname", "lastname", "phone"];
    if RESERVED.contains(&key.to_lowercase().as_str()) {
        return Err(AppError::bad_input(
            "key",
            format!("{key} is a built-in field, not a custom attribute"),
        ));
    }
    Ok(key.to_owned())
}

pub async fn create(
    state: &AppState,
    scope: &Scope,
    key: &str,
    display_name: &str,
) -> AppResult<attribute::Model> {
    let key = attribute_key(key)?;
    let display_name = validate::text("displayName", display_name, 128)?;
    attribute::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        key: Set(key.clone()),
        key_lower: Set(key.to_lowercase()),
        display_name: Set(display_name),
        created_at: Set(Utc::now()),
    }
    .insert(&state.db)
    .await
    .map_err(|e| {
        if validate::is_unique_violation(&e) {
            AppError::Conflict(format!("an attribute with the key {key} exists already"))
        } else {
            e.into()
        }
    })
}

/// Only the display name changes: the key is what templates and CRMs refer to.
pub async fn rename(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    display_name: &str,
) -> AppResult<attribute::Model> {
    let display_name = validate::text("displayName", display_name, 128)?;
    let mut active: attribute::ActiveModel = find(&state.db, scope, id).await?.into();
    active.display_name = Set(display_name);
    Ok(active.update(&state.db).await?)
}

/// Deletes the definition and every contact's value for it; returns how many had one.
pub async fn delete(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<u64> {
    let txn = state.db.begin().await?;
    let attribute = find(&txn, scope, id).await?;
    let removed = contact_attribute::Entity::delete_many()
        .filter(contact_attribute::Column::AttributeId.eq(attribute.id))
        .exec(&txn)
        .await?
        .rows_affected;
    attribute::Entity::delete_by_id(attribute.id)
        .exec(&txn)
        .await?;
    events::record(
        &txn,
        scope.project_id,
        "attribute.deleted",
        scope.actor_id(),
        json!({ "attributeId": attribute.id, "key": attribute.key, "contacts": removed }),
    )
    .await?;
    txn.commit().await?;
    Ok(removed)
}

pub async fn list(state: &AppState, scope: &Scope) -> AppResult<Vec<attribute::Model>> {
    Ok(attribute::Entity::find()
        .filter(attribute::Column::ProjectId.eq(scope.project_id))
        .order_by_asc(attribute::Column::KeyLower)
        .all(&state.db)
        .await?)
}

pub async fn find<C: ConnectionTrait>(
    conn: &C,
    scope: &Scope,
    id: Uuid,
) -> AppResult<attribute::Model> {
    attribute::Entity::find_by_id(id)
        .filter(attribute::Column::ProjectId.eq(scope.project_id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("attribute"))
}

/// The definition a key names (written as `key`, `Key` or `$Key`), or why there is none.
pub fn lookup<'a>(
    definitions: &'a HashMap<String, attribute::Model>,
    field: &'static str,
    key: &str,
) -> AppResult<&'a attribute::Model> {
    definitions
        .get(&key.trim().trim_start_matches('$').to_lowercase())
        .ok_or_else(|| {
            AppError::bad_input(
                field,
                format!("no attribute {key} is defined in this project"),
            )
        })
}

/// The project's attributes by lowercased key.
pub async fn by_key<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
) -> AppResult<HashMap<String, attribute::Model>> {
    Ok(attribute::Entity::find()
        .filter(attribute::Column::ProjectId.eq(project_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|a| (a.key_lower.clone(), a))
        .collect())
}
