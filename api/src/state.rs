//! What every request handler and background worker shares.

use std::sync::Arc;

use parley_analytics::AnalyticsStore;
use sea_orm::DatabaseConnection;

use crate::{
    auth::{cache::CredentialCache, jwt::JwtKeys},
    config::Settings,
    db::StatementCounter,
    realtime::SharedBus,
    whatsapp::WhatsApp,
};

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub bus: SharedBus,
    pub analytics: Arc<dyn AnalyticsStore>,
    pub jwt: Arc<JwtKeys>,
    pub settings: Arc<Settings>,
    pub statements: StatementCounter,
    /// Sessions checked recently; cleared by changes to users, members and projects.
    pub credentials: Arc<CredentialCache>,
    pub whatsapp: Arc<WhatsApp>,
    /// Eras and rate cards per currency, kept briefly.
    pub price_books: Arc<crate::billing::book::PriceBooks>,
    /// The campaign dispatcher's wake-ups and rate limiters.
    pub dispatch: Arc<crate::campaigns::dispatcher::Dispatch>,
    pub campaign_progress: Arc<crate::campaigns::progress::Throttle>,
    /// Request rate limits and login throttling.
    pub limits: Arc<crate::limits::Limits>,
}

impl AppState {
    /// Statements run on the database so far by this server.
    pub fn statements(&self) -> u64 {
        self.statements.get()
    }
}
