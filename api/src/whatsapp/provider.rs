//! What Parley asks of WhatsApp, whoever answers: Meta's Cloud API or the sandbox.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The number a project sends from, with what the provider needs to act for it.
#[derive(Clone, Debug)]
pub struct Account {
    pub project_id: Uuid,
    pub waba_id: String,
    pub phone_number_id: String,
    /// Empty for the sandbox.
    pub access_token: String,
}

/// Who receives a message: a phone number (E.164) or, for users known only by their
/// business-scoped user id, that id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    Phone(String),
    Bsuid(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
    Document,
    Audio,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Document => "document",
            Self::Audio => "audio",
        }
    }
}

/// What a message says.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    Text {
        body: String,
        preview_url: bool,
    },
    /// Media by link.
    Media {
        kind: MediaKind,
        link: String,
        caption: Option<String>,
        filename: Option<String>,
    },
    /// A template with its parameters already rendered, as Meta's send `components`.
    Template {
        name: String,
        language: String,
        components: Vec<Value>,
    },
}

#[derive(Clone, Debug)]
pub struct OutboundMessage {
    pub to: Recipient,
    pub content: Content,
    /// The `wamid` this message replies to, if any.
    pub reply_to: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReceipt {
    pub wa_message_id: String,
}

/// A template as submitted for review, in Meta's shape.
#[derive(Clone, Debug)]
pub struct TemplateSubmission {
    /// Parley's id of the template (the sandbox plays its review back by it).
    pub template_id: Uuid,
    pub name: String,
    pub language: String,
    pub category: String,
    /// `POSITIONAL` or `NAMED`.
    pub parameter_format: String,
    /// Meta's `components` array.
    pub components: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmittedTemplate {
    pub meta_id: String,
    pub status: String,
    pub category: String,
}

/// A template as Meta lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteTemplate {
    pub meta_id: String,
    pub name: String,
    pub language: String,
    pub status: String,
    pub category: String,
    pub rejected_reason: Option<String>,
    pub parameter_format: Option<String>,
    pub components: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TemplatePage {
    pub templates: Vec<RemoteTemplate>,
    /// The cursor of the next page, when there is one.
    pub next_after: Option<String>,
}

/// How a provider call failed, and so whether it is worth retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The request itself is wrong (bad parameter, unknown template, no permission...).
    Permanent,
    /// Meta or the network failed; the same request may succeed later.
    Transient,
    /// Too many requests (HTTP 429 or one of Meta's throughput codes).
    RateLimited,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub kind: FailureKind,
    /// Meta's error code (`error.code`), when Meta answered with one.
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub message: String,
    pub http_status: Option<u16>,
}

impl ProviderError {
    pub fn retryable(&self) -> bool {
        self.kind != FailureKind::Permanent
    }
}

/// What the caller hears: Meta's refusal with its code, or a retryable outage.
impl From<ProviderError> for crate::errors::AppError {
    fn from(err: ProviderError) -> Self {
        match err.kind {
            FailureKind::Permanent => Self::Provider {
                meta_code: err.code,
                message: err.message,
            },
            FailureKind::Transient | FailureKind::RateLimited => {
                Self::Unavailable(anyhow::anyhow!("WhatsApp: {}", err.message))
            }
        }
    }
}

#[async_trait]
pub trait WhatsAppProvider: Send + Sync {
    async fn send(
        &self,
        account: &Account,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, ProviderError>;

    async fn submit_template(
        &self,
        account: &Account,
        template: &TemplateSubmission,
    ) -> Result<SubmittedTemplate, ProviderError>;

    /// Sends a template Meta knows already (a rejected one, edited) for review again.
    async fn edit_template(
        &self,
        account: &Account,
        meta_id: &str,
        template: &TemplateSubmission,
    ) -> Result<(), ProviderError>;

    /// One page of the account's templates.
    async fn list_templates(
        &self,
        account: &Account,
        after: Option<&str>,
    ) -> Result<TemplatePage, ProviderError>;
}

/// The numbers' side of onboarding (the embedded sign-up, and leaving): Meta's code
/// exchange and phone number registration endpoints, or the sandbox's stand-ins.
#[async_trait]
pub trait SignupProvider: Send + Sync {
    /// Exchanges the code of the embedded sign-up's Facebook login for an access token
    /// (`GET /oauth/access_token` with the Meta app's id and secret).
    async fn exchange_code(&self, code: &str) -> Result<String, ProviderError>;

    /// Adds a number to a WhatsApp Business Account with its display name
    /// (`POST /{waba-id}/phone_numbers`); returns the phone number id.
    async fn add_phone_number(
        &self,
        token: &str,
        waba_id: &str,
        number: &PhoneNumberRequest,
    ) -> Result<String, ProviderError>;

    /// Sends the verification code by `method` (`SMS` or `VOICE`)
    /// (`POST /{phone-number-id}/request_code`).
    async fn request_code(
        &self,
        token: &str,
        phone_number_id: &str,
        method: &str,
        language: &str,
    ) -> Result<(), ProviderError>;

    /// Checks the code the business received (`POST /{phone-number-id}/verify_code`).
    async fn verify_code(
        &self,
        token: &str,
        phone_number_id: &str,
        code: &str,
    ) -> Result<(), ProviderError>;

    /// Registers the number for the Cloud API, setting its two-step verification PIN
    /// (`POST /{phone-number-id}/register`).
    async fn register(
        &self,
        token: &str,
        phone_number_id: &str,
        pin: &str,
    ) -> Result<(), ProviderError>;

    /// Sets the business profile customers see
    /// (`POST /{phone-number-id}/whatsapp_business_profile`).
    async fn set_business_profile(
        &self,
        token: &str,
        phone_number_id: &str,
        profile: &BusinessProfile,
    ) -> Result<(), ProviderError>;

    /// Takes the number off the Cloud API (`POST /{phone-number-id}/deregister`): the
    /// start of a downgrade.
    async fn deregister(&self, token: &str, phone_number_id: &str) -> Result<(), ProviderError>;
}

/// A number to add to a WhatsApp Business Account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneNumberRequest {
    /// The country calling code, without `+` (`91`).
    pub country_code: String,
    /// The number without its country code (`9812345678`).
    pub national_number: String,
    /// The display name customers see (Meta's `verified_name`).
    pub display_name: String,
}

/// The business profile of a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusinessProfile {
    /// Meta's `vertical` (`RETAIL`, `EDU`...).
    pub vertical: String,
    pub description: Option<String>,
}
