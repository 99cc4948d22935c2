//! GraphQL types shared by several domains.

use async_graphql::Enum;

/// A member's role in a project; `API` is the role of a project API key.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(remote = "crate::auth::Role", name = "Role")]
pub enum RoleValue {
    Owner,
    Manager,
    Agent,
    Finance,
    Api,
}
