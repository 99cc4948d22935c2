//! Black-box tests of the running server over HTTP and WebSocket.

mod accounts;
mod analytics;
mod api_campaigns;
mod api_keys;
mod billing;
mod campaigns;
mod chat;
mod contacts;
mod embedded;
mod exports;
mod faults;
mod hostile;
mod import_writes;
mod imports;
mod matrix;
mod messaging;
mod onboarding;
mod processes;
mod roles;
mod sandbox;
mod schema;
mod subscriptions;
mod templates;
mod tokens;
mod transport;
mod webhooks;
