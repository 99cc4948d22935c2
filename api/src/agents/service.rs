use chrono::Utc;
use parley_entity::{member, project};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QuerySelect, Set, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    accounts::service::insert_user,
    auth::{Role, Scope, password},
    errors::{AppError, AppResult},
    events,
    pagination::{self, Page, PageRequest},
    projects::service::FREE_TRIAL,
    state::AppState,
    validate,
};

/// Members besides the owner that a free-trial project may have active at once.
pub const FREE_TRIAL_MEMBER_LIMIT: u64 = 5;

pub struct NewMember {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub role: Role,
}

/// The stored role of a member.
pub fn role_of(member: &member::Model) -> AppResult<Role> {
    member
        .role
        .parse()
        .map_err(|e: String| AppError::internal(anyhow::anyhow!(e)))
}

/// Roles the owner can give; the owner is whoever created the project.
fn assignable(role: Role) -> AppResult<Role> {
    match role {
        Role::Manager | Role::Agent | Role::Finance => Ok(role),
        _ => Err(AppError::bad_input(
            "role",
            "a member is a MANAGER, an AGENT or FINANCE",
        )),
    }
}

/// The owner adds a member with a new login.
pub async fn add(state: &AppState, scope: &Scope, input: NewMember) -> AppResult<member::Model> {
    let role = assignable(input.role)?;
    let username = validate::username(&input.username)?;
    let display_name = validate::text("displayName", &input.display_name, 128)?;
    password::validate(&input.password)?;
    let password_hash = password::hash(input.password).await?;

    let txn = state.db.begin().await?;
    check_member_limit(&txn, scope.project_id).await?;
    let user = insert_user(&txn, username, display_name, password_hash).await?;
    let now = Utc::now();
    let member = member::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        user_id: Set(user.id),
        role: Set(role.as_str().to_owned()),
        active: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    events::record(
        &txn,
        scope.project_id,
        "member.added",
        scope.actor_id(),
        json!({ "memberId": member.id, "role": member.role }),
    )
    .await?;
    txn.commit().await?;
    publish(state, "member.added", &member).await;
    Ok(member)
}

pub async fn change_role(
    state: &AppState,
    scope: &Scope,
    member_id: Uuid,
    role: Role,
) -> AppResult<member::Model> {
    let role = assignable(role)?;
    update(state, scope, member_id, "member.role_changed", |m| {
        m.role = Set(role.as_str().to_owned());
    })
    .await
}

pub async fn set_active(
    state: &AppState,
    scope: &Scope,
    member_id: Uuid,
    active: bool,
) -> AppResult<member::Model> {
    let kind = if active {
        "member.reactivated"
    } else {
        "member.deactivated"
    };
    update(state, scope, member_id, kind, |m| m.active = Set(active)).await
}

/// Applies a change to a member of the caller's project other than its owner.
async fn update(
    state: &AppState,
    scope: &Scope,
    member_id: Uuid,
    kind: &str,
    change: impl FnOnce(&mut member::ActiveModel),
) -> AppResult<member::Model> {
    let txn = state.db.begin().await?;
    let member = find_in(&txn, scope, member_id).await?;
    if member.role == Role::Owner.as_str() {
        return Err(AppError::Forbidden(
            "the project owner's role and access cannot be changed".into(),
        ));
    }
    let was_active = member.active;
    let mut active: member::ActiveModel = member.into();
    change(&mut active);
    active.updated_at = Set(Utc::now());
    if !was_active && active.active.as_ref() == &true {
        check_member_limit(&txn, scope.project_id).await?;
    }
    let member = active.update(&txn).await?;
    events::record(
        &txn,
        scope.project_id,
        kind,
        scope.actor_id(),
        json!({ "memberId": member.id, "role": member.role, "active": member.active }),
    )
    .await?;
    txn.commit().await?;
    // The member's next request sees the new role or access.
    state.credentials.clear();
    publish(state, kind, &member).await;
    Ok(member)
}

pub async fn list(
    state: &AppState,
    scope: &Scope,
    include_inactive: bool,
    page: PageRequest,
) -> AppResult<Page<member::Model>> {
    let mut select = member::Entity::find().filter(member::Column::ProjectId.eq(scope.project_id));
    if !include_inactive {
        select = select.filter(member::Column::Active.eq(true));
    }
    pagination::fetch(&state.db, select, member::Column::Id, page).await
}

pub async fn find(state: &AppState, scope: &Scope, member_id: Uuid) -> AppResult<member::Model> {
    find_in(&state.db, scope, member_id).await
}

async fn find_in<C: ConnectionTrait>(
    conn: &C,
    scope: &Scope,
    member_id: Uuid,
) -> AppResult<member::Model> {
    member::Entity::find_by_id(member_id)
        .filter(member::Column::ProjectId.eq(scope.project_id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("member"))
}

/// The free trial allows a few active members besides the owner. The project row is
/// locked first (PostgreSQL), so two concurrent additions cannot both pass the check.
async fn check_member_limit(txn: &DatabaseTransaction, project_id: Uuid) -> AppResult<()> {
    let project = project::Entity::find_by_id(project_id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("project"))?;
    if project.plan != FREE_TRIAL {
        return Ok(());
    }
    let active_members = member::Entity::find()
        .filter(member::Column::ProjectId.eq(project_id))
        .filter(member::Column::Active.eq(true))
        .filter(member::Column::Role.ne(Role::Owner.as_str()))
        .count(txn)
        .await?;
    if active_members >= FREE_TRIAL_MEMBER_LIMIT {
        return Err(AppError::PlanLimit(format!(
            "the free trial allows {FREE_TRIAL_MEMBER_LIMIT} active members besides the owner; \
             upgrade the plan or deactivate a member"
        )));
    }
    Ok(())
}

async fn publish(state: &AppState, kind: &str, member: &member::Model) {
    events::publish(
        state,
        member.project_id,
        kind,
        json!({
            "memberId": member.id, "userId": member.user_id,
            "role": member.role, "active": member.active,
        }),
    )
    .await;
}
