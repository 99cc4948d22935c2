//! Parley's API server: GraphQL over HTTP and WebSocket for WhatsApp Business messaging.

pub mod accounts;
pub mod agents;
pub mod app;
pub mod auth;
pub mod billing;
pub mod campaigns;
pub mod chat;
pub mod clock;
pub mod config;
pub mod contacts;
pub mod db;
pub mod downloads;
pub mod errors;
pub mod events;
pub mod graphql;
pub mod health;
pub mod held_connection;
pub mod limits;
pub mod messages;
pub mod observability;
pub mod onboarding;
pub mod pagination;
pub mod projects;
#[cfg(test)]
mod proptests;
pub mod realtime;
pub mod reports;
pub mod state;
pub mod templates;
pub mod validate;
pub mod whatsapp;

pub use app::{Application, RunningApp};
pub use config::Settings;
