//! Declarative access rules on GraphQL fields: which roles may use a field, and whether it
//! changes the project (refused when the project is archived).

use async_graphql::{Context, Guard};

use super::{RequestAuth, Role};
use crate::errors::AppError;

pub struct RoleGuard {
    roles: &'static [Role],
    writes: bool,
}

impl RoleGuard {
    /// Reading, for the given roles.
    pub const fn read(roles: &'static [Role]) -> Self {
        Self {
            roles,
            writes: false,
        }
    }

    /// Changing the project, for the given roles.
    pub const fn write(roles: &'static [Role]) -> Self {
        Self {
            roles,
            writes: true,
        }
    }
}

/// Every role, API keys included.
pub const ANYONE: &[Role] = &[
    Role::Owner,
    Role::Manager,
    Role::Agent,
    Role::Finance,
    Role::Api,
];
/// Every human role.
pub const MEMBERS: &[Role] = &[Role::Owner, Role::Manager, Role::Agent, Role::Finance];
pub const OWNER: &[Role] = &[Role::Owner];
pub const OWNER_MANAGER: &[Role] = &[Role::Owner, Role::Manager];
pub const REPORT_READERS: &[Role] = &[Role::Owner, Role::Manager, Role::Finance];

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let scope = ctx.data_unchecked::<RequestAuth>().scope()?;
        if !self.roles.contains(&scope.role) {
            return Err(
                AppError::Forbidden(format!("the {} role cannot do this", scope.role)).into(),
            );
        }
        if self.writes && scope.archived {
            return Err(AppError::ProjectArchived.into());
        }
        Ok(())
    }
}
