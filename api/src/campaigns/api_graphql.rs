//! API campaigns over GraphQL: `createApiCampaign` (owners and managers) and
//! `sendApiCampaign` (a project API key), the same call as `POST /api/campaigns/send`.

use async_graphql::{Context, ErrorExtensions, ID, InputObject, Object, Result, SimpleObject};
use uuid::Uuid;

use super::{
    api::{self, ApiCall, Media, NewApiCampaign, Sent},
    graphql::Campaign,
};
use crate::{
    auth::{Role, RoleGuard, guard::OWNER_MANAGER},
    errors::AppError,
    graphql::{app_state, scope},
    projects::graphql::parse_id,
};

/// API campaigns are triggered with a project API key only.
const API_KEYS: &[Role] = &[Role::Api];

#[derive(InputObject)]
pub struct ApiCampaignMediaInput {
    /// A public http(s) link to the header's image, video or document.
    pub url: String,
    pub filename: Option<String>,
}

#[derive(InputObject)]
pub struct ApiCampaignAttributeInput {
    /// The key of an attribute defined in the project.
    pub name: String,
    pub value: String,
}

#[derive(InputObject)]
pub struct ApiCampaignInput {
    /// The API campaign's name (case and surrounding spaces ignored).
    pub campaign_name: String,
    /// The contact's phone, in any notation the contacts import accepts (a number
    /// without + is read in the project's default country).
    pub destination: String,
    /// The contact's name: a new contact's (else the phone), and an existing one's new name.
    pub user_name: Option<String>,
    /// Where the CRM got the contact; kept as a new contact's opt-in source.
    pub source: Option<String>,
    /// The header media, when the template has a media header.
    pub media: Option<ApiCampaignMediaInput>,
    /// Literal values in the template's order (header, body, URL buttons).
    #[graphql(default)]
    pub template_params: Vec<String>,
    /// Tag names to add; unknown tags are created.
    #[graphql(default)]
    pub tags: Vec<String>,
    /// Values of attributes defined in the project; an unknown one is refused.
    #[graphql(default)]
    pub attributes: Vec<ApiCampaignAttributeInput>,
    /// Per project: a retry with the same key and parameters returns the first answer and
    /// sends nothing; the same key with other parameters is a CONFLICT.
    pub idempotency_key: String,
}

/// What an API campaign call did.
#[derive(SimpleObject)]
pub struct ApiCampaignSend {
    pub message_id: ID,
    /// `SENT` once Meta accepted the message (`DELIVERED` or `READ` if its statuses came
    /// first).
    pub status: String,
    pub campaign_id: ID,
    pub contact_id: ID,
}

impl From<Sent> for ApiCampaignSend {
    fn from(sent: Sent) -> Self {
        let id = |u: Uuid| ID(u.to_string());
        Self {
            message_id: id(sent.message_id),
            status: sent.status,
            campaign_id: id(sent.campaign_id),
            contact_id: id(sent.contact_id),
        }
    }
}

#[derive(Default)]
pub struct ApiCampaignsMutation;

#[Object]
impl ApiCampaignsMutation {
    /// Creates an API campaign (kind `API`): a unique name and an approved template. It is
    /// `LIVE` (or `PAUSED` with `live: false`); `pauseCampaign` and `resumeCampaign` switch.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn create_api_campaign(
        &self,
        ctx: &Context<'_>,
        name: String,
        template_id: ID,
        #[graphql(default = true)] live: bool,
    ) -> Result<Campaign> {
        let created = api::create(
            app_state(ctx),
            scope(ctx)?,
            NewApiCampaign {
                name,
                template_id: parse_id("templateId", &template_id)?,
                live,
            },
        )
        .await?;
        Ok(Campaign(created))
    }

    /// Sends an API campaign's template to one contact (API key only): creates or updates
    /// the contact, adds the tags, sets the attributes. Rate limited per API key
    /// (`RATE_LIMITED` with `extensions.retryAfter`).
    #[graphql(guard = "RoleGuard::write(API_KEYS)")]
    async fn send_api_campaign(
        &self,
        ctx: &Context<'_>,
        input: ApiCampaignInput,
    ) -> Result<ApiCampaignSend> {
        let call = ApiCall {
            campaign_name: input.campaign_name,
            destination: input.destination,
            user_name: input.user_name,
            source: input.source,
            media: input.media.map(|m| Media {
                url: m.url,
                filename: m.filename,
            }),
            template_params: input.template_params,
            tags: input.tags,
            attributes: input
                .attributes
                .into_iter()
                .map(|a| (a.name, a.value))
                .collect(),
            idempotency_key: input.idempotency_key,
        };
        let reply = api::send(app_state(ctx), scope(ctx)?, call).await?;
        if reply.answer.http_status == 200 {
            let sent: Sent = serde_json::from_value(reply.answer.body)
                .map_err(|e| AppError::internal(anyhow::anyhow!("a stored answer: {e}")))?;
            return Ok(sent.into());
        }
        Err(stored_error(&reply.answer.body))
    }
}

/// A stored error answer as a GraphQL error: its code and details in `extensions`.
fn stored_error(body: &serde_json::Value) -> async_graphql::Error {
    let error = &body["error"];
    let message = error["message"].as_str().unwrap_or("the call failed");
    let details = error.as_object().cloned().unwrap_or_default();
    async_graphql::Error::new(message).extend_with(|_, e| {
        for (key, value) in details {
            if key == "message" || value.is_null() {
                continue;
            }
            if let Ok(value) = async_graphql::Value::from_json(value) {
                e.set(key, value);
            }
        }
    })
}
