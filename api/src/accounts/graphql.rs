use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use parley_entity::{member, project, user};

use super::service::{self, SignUp};
use crate::{
    errors::AppError,
    graphql::{app_state, request_auth, types::RoleValue},
    projects::{graphql::Project, service::NewProject},
};

/// The logged-in user.
pub struct Viewer(pub user::Model);

#[Object]
impl Viewer {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn username(&self) -> &str {
        &self.0.username
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The projects this user belongs to, with the role in each.
    async fn memberships(&self, ctx: &Context<'_>) -> Result<Vec<Membership>> {
        let rows = service::memberships(app_state(ctx), self.0.id).await?;
        rows.into_iter()
            .map(|(m, p)| Membership::new(m, p).map_err(Into::into))
            .collect()
    }
}

#[derive(SimpleObject)]
pub struct Membership {
    pub role: RoleValue,
    pub active: bool,
    pub project: Project,
}

impl Membership {
    fn new(m: member::Model, p: project::Model) -> Result<Self, AppError> {
        Ok(Self {
            role: crate::agents::service::role_of(&m)?.into(),
            active: m.active,
            project: Project(p),
        })
    }
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub viewer: Viewer,
    /// The project created at sign-up.
    pub project: Option<Project>,
}

impl From<service::Session> for AuthPayload {
    fn from(s: service::Session) -> Self {
        Self {
            token: s.token,
            expires_at: s.expires_at,
            viewer: Viewer(s.user),
            project: None,
        }
    }
}

#[derive(InputObject)]
pub struct SignUpInput {
    pub username: String,
    pub display_name: String,
    pub password: String,
    pub project_name: String,
    /// Two-letter country for numbers written without a country code (default IN).
    pub default_country: Option<String>,
}

#[derive(InputObject)]
pub struct LogInInput {
    pub username: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct ChangePasswordInput {
    pub old_password: String,
    pub new_password: String,
}

#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The logged-in user.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer> {
        let user_id = request_auth(ctx).user_id()?;
        Ok(Viewer(service::find_user(app_state(ctx), user_id).await?))
    }
}

#[derive(Default)]
pub struct AccountsMutation;

#[Object]
impl AccountsMutation {
    /// Creates an owner account with its first project, and logs it in.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> Result<AuthPayload> {
        let (session, project) = service::sign_up(
            app_state(ctx),
            SignUp {
                username: input.username,
                display_name: input.display_name,
                password: input.password,
                project: NewProject {
                    name: input.project_name,
                    default_country: input.default_country,
                },
            },
        )
        .await?;
        Ok(AuthPayload {
            project: Some(Project(project)),
            ..session.into()
        })
    }

    async fn log_in(&self, ctx: &Context<'_>, input: LogInInput) -> Result<AuthPayload> {
        // Counted before the password is checked: a guesser is stopped whether it guesses
        // right or wrong (per account, and per address when the request came over HTTP).
        let ip = ctx.data_opt::<crate::limits::ClientIp>().map(|c| c.0);
        app_state(ctx).limits.login_attempt(&input.username, ip)?;
        Ok(
            service::log_in(app_state(ctx), &input.username, &input.password)
                .await?
                .into(),
        )
    }

    /// Changes the caller's own password; tokens issued before stop working.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        input: ChangePasswordInput,
    ) -> Result<AuthPayload> {
        let user_id = request_auth(ctx).user_id()?;
        Ok(service::change_password(
            app_state(ctx),
            user_id,
            &input.old_password,
            input.new_password,
        )
        .await?
        .into())
    }
}
