//! Tags defined per project. Names are unique without regard to case. Deleting a tag
//! takes it off every contact; renaming keeps it on them (they refer to it by id).

use chrono::Utc;
use parley_entity::{contact_tag, tag};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
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

pub const MAX_TAGS_PER_PROJECT: u64 = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    Manual,
    FirstMessage,
    Api,
    Broadcast,
}

impl TagKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "MANUAL",
            Self::FirstMessage => "FIRST_MESSAGE",
            Self::Api => "API",
            Self::Broadcast => "BROADCAST",
        }
    }

    pub fn parse(s: &str) -> AppResult<Self> {
        match s {
            "MANUAL" => Ok(Self::Manual),
            "FIRST_MESSAGE" => Ok(Self::FirstMessage),
            "API" => Ok(Self::Api),
            "BROADCAST" => Ok(Self::Broadcast),
            other => Err(AppError::internal(anyhow::anyhow!(
                "unknown tag kind {other}"
            ))),
        }
    }
}

pub struct NewTag {
    pub name: String,
    pub kind: TagKind,
    pub first_message_keywords: Vec<String>,
}

/// The name as stored and its case-folded key.
pub fn tag_name(raw: &str) -> AppResult<(String, String)> {
    let name = validate::text("name", raw, 64)?;
    if name.contains('|') {
        return Err(AppError::bad_input("name", "a tag name cannot contain |"));
    }
    let key = name.to_lowercase();
    Ok((name, key))
}

fn keywords(kind: TagKind, keywords: Vec<String>) -> AppResult<Option<String>> {
    let words: Vec<String> = keywords
        .into_iter()
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    match kind {
        TagKind::FirstMessage if words.is_empty() => Err(AppError::bad_input(
            "firstMessageKeywords",
            "a first-message tag needs at least one keyword",
        )),
        TagKind::FirstMessage => Ok(Some(words.join("\n"))),
        _ if !words.is_empty() => Err(AppError::bad_input(
            "firstMessageKeywords",
            "only first-message tags have keywords",
        )),
        _ => Ok(None),
    }
}

pub async fn create(state: &AppState, scope: &Scope, input: NewTag) -> AppResult<tag::Model> {
    let (name, name_key) = tag_name(&input.name)?;
    let first_message_keywords = keywords(input.kind, input.first_message_keywords)?;
    let count = tag::Entity::find()
        .filter(tag::Column::ProjectId.eq(scope.project_id))
        .count(&state.db)
        .await?;
    if count >= MAX_TAGS_PER_PROJECT {
        return Err(AppError::PlanLimit(format!(
            "a project has at most {MAX_TAGS_PER_PROJECT} tags"
        )));
    }
    tag::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        name: Set(name.clone()),
        name_key: Set(name_key),
        kind: Set(input.kind.as_str().to_owned()),
        first_message_keywords: Set(first_message_keywords),
        created_at: Set(Utc::now()),
    }
    .insert(&state.db)
    .await
    .map_err(|e| taken_or(e, &name))
}

fn taken_or(err: sea_orm::DbErr, name: &str) -> AppError {
    if validate::is_unique_violation(&err) {
        AppError::Conflict(format!("a tag named {name} exists already"))
    } else {
        err.into()
    }
}

pub async fn rename(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    new_name: &str,
) -> AppResult<tag::Model> {
    let (name, name_key) = tag_name(new_name)?;
    let mut active: tag::ActiveModel = find(&state.db, scope, id).await?.into();
    active.name = Set(name.clone());
    active.name_key = Set(name_key);
    active
        .update(&state.db)
        .await
        .map_err(|e| taken_or(e, &name))
}

pub async fn set_keywords(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    words: Vec<String>,
) -> AppResult<tag::Model> {
    let tag = find(&state.db, scope, id).await?;
    let kind = TagKind::parse(&tag.kind)?;
    let mut active: tag::ActiveModel = tag.into();
    active.first_message_keywords = Set(keywords(kind, words)?);
    Ok(active.update(&state.db).await?)
}

/// Deletes the tag and takes it off every contact; returns how many carried it.
pub async fn delete(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<u64> {
    let txn = state.db.begin().await?;
    let tag = find(&txn, scope, id).await?;
    let removed = contact_tag::Entity::delete_many()
        .filter(contact_tag::Column::TagId.eq(tag.id))
        .exec(&txn)
        .await?
        .rows_affected;
    parley_entity::contact::Entity::update_many()
        .col_expr(
            parley_entity::contact::Column::FirstMessageTagId,
            sea_orm::sea_query::Expr::value(Option::<Uuid>::None),
        )
        .filter(parley_entity::contact::Column::ProjectId.eq(scope.project_id))
        .filter(parley_entity::contact::Column::FirstMessageTagId.eq(tag.id))
        .exec(&txn)
        .await?;
    tag::Entity::delete_by_id(tag.id).exec(&txn).await?;
    events::record(
        &txn,
        scope.project_id,
        "tag.deleted",
        scope.actor_id(),
        json!({ "tagId": tag.id, "name": tag.name, "contacts": removed }),
    )
    .await?;
    txn.commit().await?;
    Ok(removed)
}

pub async fn list(state: &AppState, scope: &Scope) -> AppResult<Vec<tag::Model>> {
    Ok(tag::Entity::find()
        .filter(tag::Column::ProjectId.eq(scope.project_id))
        .order_by_asc(tag::Column::NameKey)
        .all(&state.db)
        .await?)
}

pub async fn find<C: ConnectionTrait>(conn: &C, scope: &Scope, id: Uuid) -> AppResult<tag::Model> {
    tag::Entity::find_by_id(id)
        .filter(tag::Column::ProjectId.eq(scope.project_id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("tag"))
}

/// The project's tags by case-folded name.
pub async fn by_key<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
) -> AppResult<std::collections::HashMap<String, tag::Model>> {
    Ok(tag::Entity::find()
        .filter(tag::Column::ProjectId.eq(project_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|t| (t.name_key.clone(), t))
        .collect())
}
