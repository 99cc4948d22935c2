//! Who is calling and in which project: passwords, tokens, API keys, and the per-request
//! scope that every project-bound resolver and service works within.

pub mod api_key;
pub mod cache;
pub mod context;
pub mod guard;
pub mod jwt;
pub mod password;

pub use context::{Principal, RequestAuth, Scope};
pub use guard::RoleGuard;

use std::{fmt, str::FromStr};

/// A member's role in a project. `Api` is the role of a project API key (CRM calls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Owner,
    Manager,
    Agent,
    Finance,
    Api,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Manager => "MANAGER",
            Role::Agent => "AGENT",
            Role::Finance => "FINANCE",
            Role::Api => "API",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "OWNER" => Ok(Role::Owner),
            "MANAGER" => Ok(Role::Manager),
            "AGENT" => Ok(Role::Agent),
            "FINANCE" => Ok(Role::Finance),
            "API" => Ok(Role::Api),
            other => Err(format!("unknown role {other}")),
        }
    }
}
