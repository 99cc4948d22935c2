//! The WhatsApp Cloud API: the providers (Meta's client and the sandbox), the webhook
//! endpoint, its durable inbox and the worker that processes it.

pub mod accounts;
pub mod graphql;
pub mod inbox;
pub mod meta;
pub mod payload;
pub mod process;
pub mod provider;
pub mod sandbox;
pub mod signature;
pub mod webhook;
pub mod worker;

use std::sync::Arc;

use parley_entity::whatsapp_account;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use self::{
    meta::{MetaClient, MetaConfig},
    provider::{SignupProvider, WhatsAppProvider},
    sandbox::SandboxProvider,
};
use crate::config::WhatsAppSettings;

/// The providers and the inbox worker's wake-up call.
pub struct WhatsApp {
    meta: MetaClient,
    sandbox: SandboxProvider,
    /// Rung when a delivery is stored, so the worker starts at once.
    pub wake: Arc<Notify>,
}

impl WhatsApp {
    pub fn new(db: DatabaseConnection, settings: &WhatsAppSettings) -> anyhow::Result<Self> {
        let wake = Arc::new(Notify::new());
        Ok(Self {
            meta: MetaClient::new(MetaConfig {
                graph_url: settings.graph_url.clone(),
                api_version: settings.api_version.clone(),
                timeout: settings.timeout,
                max_attempts: settings.max_attempts,
                backoff_base: settings.backoff_base,
                app_id: settings.app_id.clone(),
                app_secret: settings.app_secret.clone(),
            })?,
            sandbox: SandboxProvider::new(db, settings.sandbox.clone(), wake.clone()),
            wake,
        })
    }

    /// Who answers for this account.
    pub fn provider(&self, account: &whatsapp_account::Model) -> &dyn WhatsAppProvider {
        if account.provider == accounts::PROVIDER_META {
            &self.meta
        } else {
            &self.sandbox
        }
    }

    /// Who answers an onboarding application's calls: `meta` or the sandbox.
    pub fn signup(&self, provider: &str) -> &dyn SignupProvider {
        if provider == accounts::PROVIDER_META {
            &self.meta
        } else {
            &self.sandbox
        }
    }
}
