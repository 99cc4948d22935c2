//! Resolves the caller and the project it works in, once per request (or per WebSocket
//! connection). Resolvers never look at headers: they read the `RequestAuth` in the
//! GraphQL context, and project-bound ones only ever see their project through `Scope`.

use chrono::Utc;
use parley_entity::{api_key, member, project, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::{
    Role, api_key as keys,
    cache::{CheckedSession, SessionKey},
    jwt::TokenError,
};
use crate::{
    errors::{AppError, AppResult},
    state::AppState,
};

/// Who is calling.
#[derive(Clone, Debug)]
pub enum Principal {
    User { user_id: Uuid, username: String },
    ApiKey { key_id: Uuid, project_id: Uuid },
}

/// The project a request works in and the caller's role there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub project_id: Uuid,
    pub role: Role,
    pub archived: bool,
    /// The user behind the request; `None` for API keys.
    pub user_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
}

impl Scope {
    /// Who to record as the actor of a change.
    pub fn actor_id(&self) -> Option<Uuid> {
        self.user_id.or(self.api_key_id)
    }
}

/// Why a request has no project scope; surfaced when a project-bound field is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoScope {
    NotSelected,
    Unauthenticated,
    NotAMember,
}

#[derive(Clone, Debug)]
pub struct RequestAuth {
    pub principal: Option<Principal>,
    scope: Result<Scope, NoScope>,
}

/// Credentials as they arrived, before checking.
#[derive(Default, Debug)]
pub struct Credentials {
    pub bearer: Option<String>,
    pub api_key: Option<String>,
    pub project_id: Option<String>,
}

impl Credentials {
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let authorization = text("authorization");
        let (bearer, api_key_in_auth) = match authorization.as_deref() {
            Some(v) if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") => {
                let token = v[7..].trim().to_owned();
                // CRMs may send their key as a bearer token too.
                if keys::looks_like_key(&token) {
                    (None, Some(token))
                } else {
                    (Some(token), None)
                }
            }
            _ => (None, None),
        };
        Self {
            bearer,
            api_key: text("x-api-key").or(api_key_in_auth),
            project_id: text("x-project-id"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bearer.is_none() && self.api_key.is_none()
    }
}

impl RequestAuth {
    pub fn anonymous() -> Self {
        Self {
            principal: None,
            scope: Err(NoScope::Unauthenticated),
        }
    }

    /// Checks the credentials. Bad credentials fail the whole request (401), so a client
    /// never mistakes an expired session for an empty result.
    pub async fn resolve(state: &AppState, creds: Credentials) -> AppResult<Self> {
        if let Some(secret) = creds.api_key {
            return Self::from_api_key(&state.db, &secret, creds.project_id.as_deref()).await;
        }
        let Some(token) = creds.bearer else {
            return Ok(Self::anonymous());
        };
        let claims = state.jwt.verify(&token).map_err(|e| match e {
            TokenError::Expired => AppError::Unauthenticated("the session has expired".into()),
            TokenError::Invalid => AppError::Unauthenticated("the token is not valid".into()),
        })?;
        // An id that is not a UUID names no project of the caller's: not worth keeping.
        let session_key = match creds.project_id.as_deref().map(str::parse::<Uuid>) {
            Some(Err(_)) => None,
            project => Some(SessionKey {
                user_id: claims.sub,
                token_version: claims.ver,
                project_id: project.and_then(Result::ok),
            }),
        };
        if let Some(key) = &session_key
            && let Some(session) = state.credentials.get(key)
        {
            return Ok(Self::of_user(claims.sub, session));
        }
        let read_at = state.credentials.generation();
        let user = user::Entity::find_by_id(claims.sub)
            .one(&state.db)
            .await?
            .filter(|u| u.token_version == claims.ver)
            .ok_or_else(|| AppError::Unauthenticated("the session is no longer valid".into()))?;
        let scope = match creds.project_id.as_deref() {
            None => Err(NoScope::NotSelected),
            Some(raw) => member_scope(&state.db, user.id, raw).await?,
        };
        let session = CheckedSession {
            username: user.username,
            scope,
        };
        // A refusal is not kept, so that a member added a moment later gets in at once.
        if let Some(key) = session_key
            && session.scope != Err(NoScope::NotAMember)
        {
            state.credentials.insert(key, session.clone(), read_at);
        }
        Ok(Self::of_user(user.id, session))
    }

    fn of_user(user_id: Uuid, session: CheckedSession) -> Self {
        Self {
            principal: Some(Principal::User {
                user_id,
                username: session.username,
            }),
            scope: session.scope,
        }
    }

    async fn from_api_key(
        db: &DatabaseConnection,
        secret: &str,
        requested_project: Option<&str>,
    ) -> AppResult<Self> {
        let key = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(keys::hash(secret)))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(db)
            .await?
            .ok_or_else(|| AppError::Unauthenticated("the API key is not valid".into()))?;
        if let Some(raw) = requested_project
            && raw.parse::<Uuid>().ok() != Some(key.project_id)
        {
            return Err(AppError::Forbidden(
                "an API key works only in its own project".into(),
            ));
        }
        let project = project::Entity::find_by_id(key.project_id)
            .one(db)
            .await?
            .ok_or(AppError::NotFound("project"))?;
        // Last use is informative: recorded at most once a minute, so a busy CRM does not
        // turn every call into a write, and a failure to record it never fails the call.
        let now = Utc::now();
        if key
            .last_used_at
            .is_none_or(|t| now - t > chrono::Duration::seconds(60))
        {
            let mut touched: api_key::ActiveModel = key.clone().into();
            touched.last_used_at = Set(Some(now));
            if let Err(err) = touched.update(db).await {
                tracing::warn!(error = %err, "could not record API key use");
            }
        }
        Ok(Self {
            principal: Some(Principal::ApiKey {
                key_id: key.id,
                project_id: key.project_id,
            }),
            scope: Ok(Scope {
                project_id: key.project_id,
                role: Role::Api,
                archived: project.archived_at.is_some(),
                user_id: None,
                api_key_id: Some(key.id),
            }),
        })
    }

    pub fn user_id(&self) -> AppResult<Uuid> {
        match &self.principal {
            Some(Principal::User { user_id, .. }) => Ok(*user_id),
            Some(Principal::ApiKey { .. }) => Err(AppError::Forbidden(
                "this operation needs a user session, not an API key".into(),
            )),
            None => Err(AppError::Unauthenticated("log in first".into())),
        }
    }

    pub fn scope(&self) -> AppResult<&Scope> {
        self.scope.as_ref().map_err(|why| match why {
            NoScope::Unauthenticated => AppError::Unauthenticated("log in first".into()),
            NoScope::NotSelected => AppError::bad_input(
                "X-Project-Id",
                "select a project with the X-Project-Id header (or projectId in connection_init)",
            ),
            NoScope::NotAMember => {
                AppError::Forbidden("you are not an active member of this project".into())
            }
        })
    }
}

async fn member_scope(
    db: &DatabaseConnection,
    user_id: Uuid,
    raw_project_id: &str,
) -> AppResult<Result<Scope, NoScope>> {
    // An unknown id and a project of someone else look the same from outside.
    let Ok(project_id) = raw_project_id.parse::<Uuid>() else {
        return Ok(Err(NoScope::NotAMember));
    };
    let found = member::Entity::find()
        .filter(member::Column::ProjectId.eq(project_id))
        .filter(member::Column::UserId.eq(user_id))
        .filter(member::Column::Active.eq(true))
        .find_also_related(project::Entity)
        .one(db)
        .await?;
    Ok(match found {
        Some((m, Some(p))) => Ok(Scope {
            project_id,
            role: crate::agents::service::role_of(&m)?,
            archived: p.archived_at.is_some(),
            user_id: Some(user_id),
            api_key_id: None,
        }),
        _ => Err(NoScope::NotAMember),
    })
}
