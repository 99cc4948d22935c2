use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use parley_entity::{webhook_event, whatsapp_account};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::accounts::{self, Credentials};
use crate::{
    auth::{
        RoleGuard,
        guard::{OWNER, OWNER_MANAGER},
    },
    errors::AppError,
    graphql::{app_state, scope},
};

/// The project's WhatsApp number, without its secrets.
#[derive(SimpleObject)]
pub struct WhatsAppAccount {
    /// `meta` (the Cloud API) or `sandbox`.
    pub provider: String,
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone_number: Option<String>,
    pub has_access_token: bool,
    pub has_app_secret: bool,
    pub has_verify_token: bool,
    pub updated_at: DateTime<Utc>,
}

impl From<whatsapp_account::Model> for WhatsAppAccount {
    fn from(a: whatsapp_account::Model) -> Self {
        Self {
            provider: a.provider,
            waba_id: a.waba_id,
            phone_number_id: a.phone_number_id,
            display_phone_number: a.display_phone_number,
            has_access_token: a.access_token.is_some(),
            has_app_secret: a.app_secret.is_some(),
            has_verify_token: a.verify_token.is_some(),
            updated_at: a.updated_at,
        }
    }
}

#[derive(InputObject)]
pub struct ConnectWhatsAppInput {
    /// The WhatsApp Business Account id.
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone_number: Option<String>,
    /// A system user's access token with whatsapp_business_messaging and
    /// whatsapp_business_management.
    pub access_token: String,
    /// The Meta app's secret, when the project has its own app (else the server's).
    pub app_secret: Option<String>,
    /// The token Meta's webhook verification must present, when the project has its own.
    pub verify_token: Option<String>,
}

/// A webhook delivery that could not be applied in full, kept for inspection.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    pub id: ID,
    /// `META` or `SANDBOX`.
    pub source: String,
    /// `PROCESSED` (with notes), `MALFORMED`, `UNROUTABLE` or `FAILED`.
    pub state: String,
    pub notes: Option<String>,
    pub attempts: i32,
    pub body: String,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
pub struct WhatsAppQuery;

#[Object]
impl WhatsAppQuery {
    /// The number the project sends from; `null` until it first sends (sandbox) or is
    /// connected.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn whatsapp_account(&self, ctx: &Context<'_>) -> Result<Option<WhatsAppAccount>> {
        let account = accounts::find(app_state(ctx), scope(ctx)?).await?;
        Ok(account.map(Into::into))
    }

    /// The latest webhook deliveries with something to report (newest first, at most 100).
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn webhook_issues(&self, ctx: &Context<'_>) -> Result<Vec<WebhookDelivery>> {
        let scope = scope(ctx)?;
        let rows = webhook_event::Entity::find()
            .filter(webhook_event::Column::ProjectId.eq(scope.project_id))
            .filter(webhook_event::Column::Error.is_not_null())
            .order_by_desc(webhook_event::Column::Id)
            .limit(100)
            .all(&app_state(ctx).db)
            .await
            .map_err(AppError::from)?;
        Ok(rows
            .into_iter()
            .map(|e| WebhookDelivery {
                id: ID(e.id.to_string()),
                source: e.source,
                state: e.state,
                notes: e.error,
                attempts: e.attempts,
                body: e.body,
                received_at: e.received_at,
                processed_at: e.processed_at,
            })
            .collect())
    }
}

#[derive(Default)]
pub struct WhatsAppMutation;

#[Object]
impl WhatsAppMutation {
    /// Connects the project to its WhatsApp Cloud API number; sends go to Meta from now on.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn connect_whatsapp(
        &self,
        ctx: &Context<'_>,
        input: ConnectWhatsAppInput,
    ) -> Result<WhatsAppAccount> {
        let account = accounts::connect(
            app_state(ctx),
            scope(ctx)?,
            Credentials {
                waba_id: input.waba_id,
                phone_number_id: input.phone_number_id,
                display_phone_number: input.display_phone_number,
                access_token: input.access_token,
                app_secret: input.app_secret,
                verify_token: input.verify_token,
            },
        )
        .await?;
        Ok(account.into())
    }
}
