use async_graphql::{
    Context, ID, InputObject, Object, Result, connection::Connection, dataloader::DataLoader,
};
use chrono::{DateTime, Utc};
use parley_entity::member;

use super::service::{self, NewMember};
use crate::{
    auth::{
        RoleGuard,
        guard::{OWNER, OWNER_MANAGER},
    },
    errors::AppError,
    graphql::{app_state, loaders::UserLoader, relay, scope, types::RoleValue},
    projects::graphql::parse_id,
};

pub struct Member(pub member::Model);

impl Member {
    async fn user(&self, ctx: &Context<'_>) -> Result<parley_entity::user::Model> {
        ctx.data_unchecked::<DataLoader<UserLoader>>()
            .load_one(self.0.user_id)
            .await
            .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?
            .ok_or_else(|| AppError::NotFound("user").into())
    }
}

#[Object]
impl Member {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn username(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(self.user(ctx).await?.username)
    }
    async fn display_name(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(self.user(ctx).await?.display_name)
    }
    async fn role(&self) -> Result<RoleValue> {
        Ok(service::role_of(&self.0)?.into())
    }
    /// A deactivated member cannot work in the project until reactivated.
    async fn active(&self) -> bool {
        self.0.active
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(InputObject)]
pub struct AddMemberInput {
    /// Login name (unique across Parley).
    pub username: String,
    pub display_name: String,
    pub password: String,
    /// MANAGER, AGENT or FINANCE.
    pub role: RoleValue,
}

#[derive(Default)]
pub struct AgentsQuery;

#[Object]
impl AgentsQuery {
    /// The project's members, oldest first.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = false)] include_inactive: bool,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Member>> {
        let page = relay::page_request(first, after, last, before)?;
        let page = service::list(app_state(ctx), scope(ctx)?, include_inactive, page).await?;
        Ok(relay::connection(page, |m| m.id, Member))
    }

    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn member(&self, ctx: &Context<'_>, id: ID) -> Result<Member> {
        let id = parse_id("id", &id)?;
        Ok(Member(
            service::find(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }
}

#[derive(Default)]
pub struct AgentsMutation;

#[Object]
impl AgentsMutation {
    /// Adds a member with a new login. The free trial allows 5 besides the owner.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn add_member(&self, ctx: &Context<'_>, input: AddMemberInput) -> Result<Member> {
        let member = service::add(
            app_state(ctx),
            scope(ctx)?,
            NewMember {
                username: input.username,
                display_name: input.display_name,
                password: input.password,
                role: input.role.into(),
            },
        )
        .await?;
        Ok(Member(member))
    }

    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn change_member_role(
        &self,
        ctx: &Context<'_>,
        id: ID,
        role: RoleValue,
    ) -> Result<Member> {
        let id = parse_id("id", &id)?;
        Ok(Member(
            service::change_role(app_state(ctx), scope(ctx)?, id, role.into()).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn deactivate_member(&self, ctx: &Context<'_>, id: ID) -> Result<Member> {
        let id = parse_id("id", &id)?;
        Ok(Member(
            service::set_active(app_state(ctx), scope(ctx)?, id, false).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn reactivate_member(&self, ctx: &Context<'_>, id: ID) -> Result<Member> {
        let id = parse_id("id", &id)?;
        Ok(Member(
            service::set_active(app_state(ctx), scope(ctx)?, id, true).await?,
        ))
    }
}
