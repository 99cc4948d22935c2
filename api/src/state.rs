//! What every request handler and background worker shares.

use std::sync::Arc;

use parley_analytics::AnalyticsStore;
use sea_orm::DatabaseConnection;

use crate::{auth::jwt::JwtKeys, config::Settings, realtime::SharedBus};

#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub bus: SharedBus,
    pub analytics: Arc<dyn AnalyticsStore>,
    pub jwt: Arc<JwtKeys>,
    pub settings: Arc<Settings>,
}
