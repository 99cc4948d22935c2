//! Users: sign-up, login, passwords, the caller's own account.

pub mod graphql;
pub mod service;
