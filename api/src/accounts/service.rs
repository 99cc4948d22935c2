use chrono::{DateTime, Utc};
use parley_entity::{member, project, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use uuid::Uuid;

use crate::{
    auth::password,
    errors::{AppError, AppResult},
    projects::service::{NewProject, insert_project},
    state::AppState,
    validate,
};

pub struct SignUp {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub project: NewProject,
}

pub struct Session {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: user::Model,
}

/// An owner signs up with a first project.
pub async fn sign_up(state: &AppState, input: SignUp) -> AppResult<(Session, project::Model)> {
    let username = validate::username(&input.username)?;
    let display_name = validate::text("displayName", &input.display_name, 128)?;
    password::validate(&input.password)?;
    let project_input = input.project.validated()?;
    let password_hash = password::hash(input.password).await?;

    let txn = state.db.begin().await?;
    let user = insert_user(&txn, username, display_name, password_hash).await?;
    let project = insert_project(&txn, state, user.id, project_input).await?;
    txn.commit().await?;

    Ok((issue(state, user), project))
}

pub async fn log_in(state: &AppState, username: &str, password: &str) -> AppResult<Session> {
    let wrong = || AppError::Unauthenticated("wrong user name or password".into());
    let username = username.trim().to_lowercase();
    let found = user::Entity::find()
        .filter(user::Column::Username.eq(&username))
        .one(&state.db)
        .await?;
    let stored = found
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::decoy_hash().to_owned());
    let matches = password::verify(password.to_owned(), stored).await?;
    match found {
        Some(user) if matches => Ok(issue(state, user)),
        _ => Err(wrong()),
    }
}

/// Changes the caller's password (the old one is required) and ends its other sessions.
pub async fn change_password(
    state: &AppState,
    user_id: Uuid,
    old_password: &str,
    new_password: String,
) -> AppResult<Session> {
    password::validate(&new_password)?;
    let user = find_user(state, user_id).await?;
    if !password::verify(old_password.to_owned(), user.password_hash.clone()).await? {
        return Err(AppError::bad_input(
            "oldPassword",
            "the current password is not correct",
        ));
    }
    let hash = password::hash(new_password).await?;
    let version = user.token_version + 1;
    let mut active: user::ActiveModel = user.into();
    active.password_hash = Set(hash);
    active.token_version = Set(version);
    active.updated_at = Set(Utc::now());
    let user = active.update(&state.db).await?;
    // Sessions of the old version end now, not when their checks expire.
    state.credentials.clear();
    Ok(issue(state, user))
}

pub async fn find_user(state: &AppState, user_id: Uuid) -> AppResult<user::Model> {
    user::Entity::find_by_id(user_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("user"))
}

/// The caller's memberships with their projects, oldest first.
pub async fn memberships(
    state: &AppState,
    user_id: Uuid,
) -> AppResult<Vec<(member::Model, project::Model)>> {
    let rows = member::Entity::find()
        .filter(member::Column::UserId.eq(user_id))
        .find_also_related(project::Entity)
        .all(&state.db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(m, p)| p.map(|p| (m, p)))
        .collect())
}

pub(crate) async fn insert_user<C: sea_orm::ConnectionTrait>(
    conn: &C,
    username: String,
    display_name: String,
    password_hash: String,
) -> AppResult<user::Model> {
    let now = Utc::now();
    let taken = || AppError::Conflict(format!("the user name {username} is taken"));
    if user::Entity::find()
        .filter(user::Column::Username.eq(&username))
        .one(conn)
        .await?
        .is_some()
    {
        return Err(taken());
    }
    user::ActiveModel {
        id: Set(Uuid::now_v7()),
        username: Set(username.clone()),
        display_name: Set(display_name),
        password_hash: Set(password_hash),
        token_version: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .map_err(|e| {
        if validate::is_unique_violation(&e) {
            taken()
        } else {
            e.into()
        }
    })
}

fn issue(state: &AppState, user: user::Model) -> Session {
    let (token, expires_at) = state.jwt.issue(user.id, user.token_version);
    Session {
        token,
        expires_at,
        user,
    }
}
