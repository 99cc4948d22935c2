//! Projects (the tenants) and their API keys.

pub mod api_keys;
pub mod graphql;
pub mod service;
