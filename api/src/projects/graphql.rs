use async_graphql::{
    Context, ID, InputObject, Object, Result, SimpleObject, Subscription, connection::Connection,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use parley_entity::{api_key, project};
use uuid::Uuid;

use super::{api_keys, service};
use crate::{
    auth::{
        RoleGuard,
        guard::{ANYONE, OWNER, OWNER_MANAGER},
    },
    errors::AppError,
    graphql::{app_state, relay, request_auth, scope, types::RoleValue},
};

pub struct Project(pub project::Model);

#[Object]
impl Project {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// `FREE_TRIAL`, `BASIC` or `PRO`.
    async fn plan(&self) -> &str {
        &self.0.plan
    }
    /// Country assumed for phone numbers written without a country code.
    async fn default_country(&self) -> &str {
        &self.0.default_country
    }
    async fn archived(&self) -> bool {
        self.0.archived_at.is_some()
    }
    async fn archived_at(&self) -> Option<DateTime<Utc>> {
        self.0.archived_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub struct ApiKey(pub api_key::Model);

#[Object]
impl ApiKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The first characters of the key, to recognise it; the key itself is never shown again.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
}

#[derive(SimpleObject)]
pub struct CreateApiKeyPayload {
    pub api_key: ApiKey,
    /// The key itself, shown this once. Send it as `X-Api-Key`.
    pub secret: String,
}

#[derive(InputObject)]
pub struct CreateProjectInput {
    pub name: String,
    pub default_country: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateProjectInput {
    pub name: Option<String>,
    pub default_country: Option<String>,
}

/// A change in the project, live.
#[derive(SimpleObject)]
pub struct ProjectChange {
    /// What happened: `member.added`, `member.role_changed`, `member.deactivated`,
    /// `member.reactivated`, `project.updated`, `project.archived`, `project.unarchived`.
    pub topic: String,
    pub project_id: ID,
    pub member_id: Option<ID>,
    pub role: Option<RoleValue>,
    pub active: Option<bool>,
}

pub(crate) fn parse_id(field: &'static str, id: &ID) -> Result<Uuid, AppError> {
    id.parse::<Uuid>()
        .map_err(|_| AppError::bad_input(field, "not an id from this API"))
}

#[derive(Default)]
pub struct ProjectsQuery;

#[Object]
impl ProjectsQuery {
    /// The projects the logged-in user is an active member of.
    async fn projects(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Project>> {
        let user_id = request_auth(ctx).user_id()?;
        let page = relay::page_request(first, after, last, before)?;
        let page = service::of_user(app_state(ctx), user_id, page).await?;
        Ok(relay::connection(page, |p| p.id, Project))
    }

    /// The project selected by `X-Project-Id` (or the API key's project).
    #[graphql(guard = "RoleGuard::read(ANYONE)")]
    async fn project(&self, ctx: &Context<'_>) -> Result<Project> {
        Ok(Project(
            service::current(app_state(ctx), scope(ctx)?).await?,
        ))
    }

    /// The project's API keys (never the keys themselves).
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_revoked: bool,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ApiKey>> {
        let page = relay::page_request(first, after, last, before)?;
        let page = api_keys::list(app_state(ctx), scope(ctx)?, include_revoked, page).await?;
        Ok(relay::connection(page, |k| k.id, ApiKey))
    }
}

#[derive(Default)]
pub struct ProjectsMutation;

#[Object]
impl ProjectsMutation {
    /// Creates another project; the caller becomes its owner.
    async fn create_project(
        &self,
        ctx: &Context<'_>,
        input: CreateProjectInput,
    ) -> Result<Project> {
        let user_id = request_auth(ctx).user_id()?;
        let project = service::create(
            app_state(ctx),
            user_id,
            service::NewProject {
                name: input.name,
                default_country: input.default_country,
            },
        )
        .await?;
        Ok(Project(project))
    }

    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn update_project(
        &self,
        ctx: &Context<'_>,
        input: UpdateProjectInput,
    ) -> Result<Project> {
        let changes = service::ProjectChanges {
            name: input.name,
            default_country: input.default_country,
        };
        Ok(Project(
            service::update(app_state(ctx), scope(ctx)?, changes).await?,
        ))
    }

    /// Projects are never deleted: an archived one keeps its data, read-only.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn archive_project(&self, ctx: &Context<'_>) -> Result<Project> {
        Ok(Project(
            service::set_archived(app_state(ctx), scope(ctx)?, true).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::read(OWNER)")]
    async fn unarchive_project(&self, ctx: &Context<'_>) -> Result<Project> {
        Ok(Project(
            service::set_archived(app_state(ctx), scope(ctx)?, false).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn create_api_key(&self, ctx: &Context<'_>, name: String) -> Result<CreateApiKeyPayload> {
        let created = api_keys::create(app_state(ctx), scope(ctx)?, &name).await?;
        Ok(CreateApiKeyPayload {
            api_key: ApiKey(created.key),
            secret: created.secret,
        })
    }

    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey> {
        let id = parse_id("id", &id)?;
        Ok(ApiKey(
            api_keys::revoke(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }
}

#[derive(Default)]
pub struct ProjectsSubscription;

#[Subscription]
impl ProjectsSubscription {
    /// Changes to the selected project and its members, as they happen.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn project_changes(
        &self,
        ctx: &Context<'_>,
    ) -> Result<impl Stream<Item = ProjectChange>> {
        let scope = scope(ctx)?;
        let stream = app_state(ctx)
            .bus
            .subscribe(scope.project_id)
            .await
            .map_err(AppError::Unavailable)?;
        Ok(stream.filter_map(|event| async move {
            let topic_ok =
                event.topic.starts_with("member.") || event.topic.starts_with("project.");
            topic_ok.then(|| {
                let p = &event.payload;
                ProjectChange {
                    topic: event.topic.clone(),
                    project_id: ID(event.project_id.to_string()),
                    member_id: p["memberId"].as_str().map(|s| ID(s.to_owned())),
                    role: p["role"]
                        .as_str()
                        .and_then(|r| r.parse::<crate::auth::Role>().ok())
                        .map(Into::into),
                    active: p["active"].as_bool(),
                }
            })
        }))
    }
}
