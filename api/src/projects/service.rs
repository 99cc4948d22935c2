use chrono::Utc;
use parley_entity::{member, project};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    RelationTrait, Set, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    auth::{Role, Scope},
    errors::{AppError, AppResult},
    events,
    pagination::{self, Page, PageRequest},
    state::AppState,
    validate,
};

pub const FREE_TRIAL: &str = "FREE_TRIAL";
pub const DEFAULT_COUNTRY: &str = "IN";

pub struct NewProject {
    pub name: String,
    pub default_country: Option<String>,
}

pub struct ValidProject {
    name: String,
    default_country: String,
}

impl NewProject {
    pub fn validated(self) -> AppResult<ValidProject> {
        Ok(ValidProject {
            name: validate::text("name", &self.name, 128)?,
            default_country: match self.default_country {
                Some(c) => validate::country(&c)?,
                None => DEFAULT_COUNTRY.to_owned(),
            },
        })
    }
}

pub struct ProjectChanges {
    pub name: Option<String>,
    pub default_country: Option<String>,
}

/// Creates a project owned by `owner_id`, with the owner as its first member.
pub async fn create(
    state: &AppState,
    owner_id: Uuid,
    input: NewProject,
) -> AppResult<project::Model> {
    let input = input.validated()?;
    let txn = state.db.begin().await?;
    let project = insert_project(&txn, state, owner_id, input).await?;
    txn.commit().await?;
    Ok(project)
}

pub(crate) async fn insert_project<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    owner_id: Uuid,
    input: ValidProject,
) -> AppResult<project::Model> {
    let now = Utc::now();
    let project = project::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(input.name),
        owner_id: Set(owner_id),
        plan: Set(FREE_TRIAL.to_owned()),
        currency: Set(crate::billing::default_currency(&input.default_country).to_owned()),
        default_country: Set(input.default_country),
        archived_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?;
    member::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(project.id),
        user_id: Set(owner_id),
        role: Set(Role::Owner.as_str().to_owned()),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await?;
    events::record(
        conn,
        project.id,
        "project.created",
        Some(owner_id),
        json!({ "name": project.name, "plan": project.plan }),
    )
    .await?;
    crate::billing::plans::start_trial(conn, state, &project, state.settings.clock.now()).await?;
    Ok(project)
}

pub async fn current(state: &AppState, scope: &Scope) -> AppResult<project::Model> {
    project::Entity::find_by_id(scope.project_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("project"))
}

/// Projects the user is an active member of.
pub async fn of_user(
    state: &AppState,
    user_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<project::Model>> {
    let select = project::Entity::find()
        .join(
            sea_orm::JoinType::InnerJoin,
            project::Relation::Member.def(),
        )
        .filter(member::Column::UserId.eq(user_id))
        .filter(member::Column::Active.eq(true));
    pagination::fetch(&state.db, select, project::Column::Id, page).await
}

pub async fn update(
    state: &AppState,
    scope: &Scope,
    changes: ProjectChanges,
) -> AppResult<project::Model> {
    let mut active: project::ActiveModel = current(state, scope).await?.into();
    if let Some(name) = changes.name {
        active.name = Set(validate::text("name", &name, 128)?);
    }
    if let Some(country) = changes.default_country {
        active.default_country = Set(validate::country(&country)?);
    }
    active.updated_at = Set(Utc::now());
    let project = active.update(&state.db).await?;
    events::publish(state, project.id, "project.updated", json!({})).await;
    Ok(project)
}

/// Archives (or brings back) the project: archived projects can be read, not changed.
pub async fn set_archived(
    state: &AppState,
    scope: &Scope,
    archived: bool,
) -> AppResult<project::Model> {
    let project = current(state, scope).await?;
    if project.archived_at.is_some() == archived {
        return Ok(project);
    }
    let now = Utc::now();
    let mut active: project::ActiveModel = project.into();
    active.archived_at = Set(archived.then_some(now));
    active.updated_at = Set(now);
    let txn = state.db.begin().await?;
    let project = active.update(&txn).await?;
    let kind = if archived {
        "project.archived"
    } else {
        "project.unarchived"
    };
    events::record(&txn, project.id, kind, scope.actor_id(), json!({})).await?;
    txn.commit().await?;
    // Checked sessions carry the archived flag.
    state.credentials.clear();
    events::publish(state, project.id, kind, json!({})).await;
    Ok(project)
}
