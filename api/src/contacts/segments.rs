//! Saved segments: a contact filter with a name, reused by lists, exports and (later)
//! broadcast audiences. The filter is stored, not its result, so a segment always means
//! the contacts matching it now.

use chrono::Utc;
use parley_entity::segment;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use super::filter::ContactFilter;
use crate::{
    auth::Scope,
    errors::{AppError, AppResult},
    state::AppState,
    validate,
};

pub fn filter_of(segment: &segment::Model) -> AppResult<ContactFilter> {
    serde_json::from_str(&segment.filter).map_err(AppError::internal)
}

/// The filter to store: it keeps its segment references (so it follows their changes),
/// after checking that it expands and runs now.
async fn stored(state: &AppState, scope: &Scope, filter: &ContactFilter) -> AppResult<String> {
    expand(state, scope, filter.clone())
        .await?
        .condition(Utc::now())?;
    serde_json::to_string(filter).map_err(AppError::internal)
}

fn taken(err: sea_orm::DbErr, name: &str) -> AppError {
    if validate::is_unique_violation(&err) {
        AppError::Conflict(format!("a segment named {name} exists already"))
    } else {
        err.into()
    }
}

pub async fn create(
    state: &AppState,
    scope: &Scope,
    name: &str,
    filter: &ContactFilter,
) -> AppResult<segment::Model> {
    let name = validate::text("name", name, 128)?;
    let now = Utc::now();
    segment::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        name: Set(name.clone()),
        name_key: Set(name.to_lowercase()),
        filter: Set(stored(state, scope, filter).await?),
        created_by: Set(scope.actor_id()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&state.db)
    .await
    .map_err(|e| taken(e, &name))
}

pub async fn update(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    name: Option<&str>,
    filter: Option<&ContactFilter>,
) -> AppResult<segment::Model> {
    let current = find(state, scope, id).await?;
    if let Some(filter) = filter {
        // A segment that includes itself would never end.
        if refers_to(state, scope, filter, current.id).await? {
            return Err(AppError::bad_input(
                "filter",
                "a segment cannot include itself",
            ));
        }
    }
    let mut active: segment::ActiveModel = current.into();
    let mut new_name = String::new();
    if let Some(name) = name {
        new_name = validate::text("name", name, 128)?;
        active.name = Set(new_name.clone());
        active.name_key = Set(new_name.to_lowercase());
    }
    if let Some(filter) = filter {
        active.filter = Set(stored(state, scope, filter).await?);
    }
    active.updated_at = Set(Utc::now());
    active
        .update(&state.db)
        .await
        .map_err(|e| taken(e, &new_name))
}

/// Whether `filter` reaches segment `target`, directly or through other segments.
async fn refers_to(
    state: &AppState,
    scope: &Scope,
    filter: &ContactFilter,
    target: Uuid,
) -> AppResult<bool> {
    let mut pending = vec![filter.clone()];
    let mut seen = std::collections::HashSet::new();
    while let Some(f) = pending.pop() {
        if let Some(id) = f.segment {
            if id == target {
                return Ok(true);
            }
            if seen.insert(id)
                && let Ok(saved) = find(state, scope, id).await
            {
                pending.push(filter_of(&saved)?);
            }
        }
        pending.extend(f.and);
        pending.extend(f.or);
        pending.extend(f.not.map(|n| *n));
    }
    Ok(false)
}

pub async fn delete(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<()> {
    let segment = find(state, scope, id).await?;
    segment::Entity::delete_by_id(segment.id)
        .exec(&state.db)
        .await?;
    Ok(())
}

pub async fn find(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<segment::Model> {
    segment::Entity::find_by_id(id)
        .filter(segment::Column::ProjectId.eq(scope.project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("segment"))
}

/// Replaces references to saved segments by their filters, so the result runs as SQL.
/// Segments may use segments, a few levels deep (which also stops cycles).
pub async fn expand(
    state: &AppState,
    scope: &Scope,
    filter: ContactFilter,
) -> AppResult<ContactFilter> {
    expand_at(state, scope, filter, 0).await
}

fn expand_at<'a>(
    state: &'a AppState,
    scope: &'a Scope,
    mut filter: ContactFilter,
    depth: usize,
) -> futures::future::BoxFuture<'a, AppResult<ContactFilter>> {
    Box::pin(async move {
        const MAX_DEPTH: usize = 4;
        if depth > MAX_DEPTH {
            return Err(AppError::bad_input(
                "segmentId",
                "segments refer to each other too deeply (or in a circle)",
            ));
        }
        if let Some(id) = filter.segment.take() {
            let saved = filter_of(&find(state, scope, id).await?)?;
            filter
                .and
                .push(expand_at(state, scope, saved, depth + 1).await?);
        }
        let mut expanded = Vec::with_capacity(filter.and.len());
        for f in std::mem::take(&mut filter.and) {
            expanded.push(expand_at(state, scope, f, depth + 1).await?);
        }
        filter.and = expanded;
        let mut expanded = Vec::with_capacity(filter.or.len());
        for f in std::mem::take(&mut filter.or) {
            expanded.push(expand_at(state, scope, f, depth + 1).await?);
        }
        filter.or = expanded;
        if let Some(not) = filter.not.take() {
            filter.not = Some(Box::new(expand_at(state, scope, *not, depth + 1).await?));
        }
        Ok(filter)
    })
}

pub async fn list(state: &AppState, scope: &Scope) -> AppResult<Vec<segment::Model>> {
    Ok(segment::Entity::find()
        .filter(segment::Column::ProjectId.eq(scope.project_id))
        .order_by_asc(segment::Column::NameKey)
        .all(&state.db)
        .await?)
}
