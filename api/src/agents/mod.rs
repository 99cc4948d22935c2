//! Members of a project (owners, managers, live-chat agents, finance) and their roles.

pub mod graphql;
pub mod service;
