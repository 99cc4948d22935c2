use async_graphql::{
    Context, Enum, ID, InputObject, Json, Object, Result, SimpleObject, Subscription,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use parley_entity::message;
use uuid::Uuid;

use super::send::{self, SendContent, SendRequest};
use crate::{
    auth::{Role, RoleGuard, guard::MEMBERS},
    errors::AppError,
    graphql::{app_state, scope},
    projects::graphql::parse_id,
    templates::service::ParameterInput,
    whatsapp::provider::MediaKind,
};

pub struct Message(pub message::Model);

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum MessageDirection {
    Inbound,
    Outbound,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum MessageStatus {
    /// An inbound message.
    Received,
    /// Recorded, not yet handed to WhatsApp.
    Pending,
    /// WhatsApp accepted it; no status yet.
    Accepted,
    Sent,
    Delivered,
    Read,
    Failed,
}

fn status_of(raw: &str) -> MessageStatus {
    match raw {
        "RECEIVED" => MessageStatus::Received,
        "PENDING" => MessageStatus::Pending,
        "ACCEPTED" => MessageStatus::Accepted,
        "SENT" => MessageStatus::Sent,
        "DELIVERED" => MessageStatus::Delivered,
        "READ" => MessageStatus::Read,
        _ => MessageStatus::Failed,
    }
}

#[Object]
impl Message {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// What an outbound message cost (owners, managers and finance).
    #[graphql(guard = "crate::auth::RoleGuard::read(crate::auth::guard::REPORT_READERS)")]
    async fn charge(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Option<crate::billing::graphql::MessageCharge>> {
        let found = ctx
            .data_unchecked::<async_graphql::dataloader::DataLoader<
                crate::billing::graphql::MessageChargeLoader,
            >>()
            .load_one(self.0.id)
            .await
            .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
        Ok(found.map(crate::billing::graphql::MessageCharge))
    }
    async fn contact_id(&self) -> ID {
        ID(self.0.contact_id.to_string())
    }
    async fn direction(&self) -> MessageDirection {
        if self.0.direction == super::store::INBOUND {
            MessageDirection::Inbound
        } else {
            MessageDirection::Outbound
        }
    }
    /// Meta's message type: `text`, `image`, `template`, `button`, `interactive`...
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// The text a person reads: the body, a caption, a button's label or the rendered
    /// template.
    async fn text(&self) -> Option<String> {
        let content: serde_json::Value = serde_json::from_str(&self.0.content).ok()?;
        if self.0.kind == "template" {
            return content["text"].as_str().map(str::to_owned);
        }
        if self.0.direction == super::store::INBOUND {
            return crate::whatsapp::payload::text_of(&content).map(str::to_owned);
        }
        content["text"]["body"]
            .as_str()
            .or_else(|| content[self.0.kind.as_str()]["caption"].as_str())
            .map(str::to_owned)
    }
    /// The whole content, in Meta's shape for inbound messages.
    async fn content(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(&self.0.content).unwrap_or_default())
    }
    async fn status(&self) -> MessageStatus {
        status_of(&self.0.status)
    }
    /// Meta's id (`wamid`).
    async fn wa_message_id(&self) -> Option<&str> {
        self.0.wa_message_id.as_deref()
    }
    /// Meta's error code when the message failed (131026 undeliverable, say).
    async fn error_code(&self) -> Option<i64> {
        self.0.error_code
    }
    async fn error_title(&self) -> Option<&str> {
        self.0.error_title.as_deref()
    }
    async fn template_id(&self) -> Option<ID> {
        self.0.template_id.map(|id| ID(id.to_string()))
    }
    /// The message this one answers.
    async fn reply_to_message_id(&self) -> Option<ID> {
        self.0.reply_to_message_id.map(|id| ID(id.to_string()))
    }
    /// The ad or post a user came from (click-to-WhatsApp), in Meta's shape.
    async fn referral(&self) -> Option<Json<serde_json::Value>> {
        self.0
            .referral
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .map(Json)
    }
    /// Meta's pricing (and conversation) objects from the status webhooks.
    async fn meta_pricing(&self) -> Option<Json<serde_json::Value>> {
        self.0
            .pricing
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .map(Json)
    }
    /// The member who sent it from the dashboard.
    async fn sent_by_id(&self) -> Option<ID> {
        self.0.sent_by.map(|id| ID(id.to_string()))
    }
    /// When it was written (Meta's time for inbound messages).
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
    async fn failed_at(&self) -> Option<DateTime<Utc>> {
        self.0.failed_at
    }
    /// When the contact first answered it.
    async fn replied_at(&self) -> Option<DateTime<Utc>> {
        self.0.replied_at
    }
}

/// The customer-service window: free-form messages are allowed while it is open.
#[derive(SimpleObject)]
pub struct MessagingWindow {
    pub open: bool,
    /// When it closes (24 hours after the contact's last message), while open.
    pub expires_at: Option<DateTime<Utc>>,
    pub last_inbound_at: Option<DateTime<Utc>>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Image,
    Video,
    Document,
    Audio,
}

#[derive(InputObject)]
pub struct SendMediaInput {
    pub contact_id: ID,
    pub media_type: MediaType,
    /// A public http(s) link WhatsApp fetches the media from.
    pub link: String,
    pub caption: Option<String>,
    pub filename: Option<String>,
    pub reply_to: Option<ID>,
}

#[derive(InputObject)]
pub struct TemplateParameterInput {
    /// A literal, or `$Name`, `$FirstName`, `$LastName`, `$Phone` or `$<attribute key>`.
    pub value: String,
    /// Used when the placeholder has no value for this contact.
    pub fallback: Option<String>,
}

#[derive(InputObject)]
pub struct SendTemplateInput {
    pub contact_id: ID,
    pub template_id: ID,
    /// Values of the header parameter (when it has one), then the body parameters in
    /// order, then URL-button suffixes in button order.
    #[graphql(default)]
    pub parameters: Vec<TemplateParameterInput>,
    /// The media of an image, video or document header.
    pub header_media_link: Option<String>,
}

#[derive(Default)]
pub struct MessagesQuery;

#[Object]
impl MessagesQuery {
    #[graphql(guard = "RoleGuard::read(MEMBERS)")]
    async fn message(&self, ctx: &Context<'_>, id: ID) -> Result<Message> {
        let id = parse_id("id", &id)?;
        Ok(Message(super::find(app_state(ctx), scope(ctx)?, id).await?))
    }
}

#[derive(Default)]
pub struct MessagesMutation;

const SENDERS: &[Role] = &[Role::Owner, Role::Manager, Role::Agent, Role::Api];

#[Object]
impl MessagesMutation {
    /// A free-form text, within the customer-service window.
    #[graphql(guard = "RoleGuard::write(SENDERS)")]
    async fn send_text_message(
        &self,
        ctx: &Context<'_>,
        contact_id: ID,
        text: String,
        reply_to: Option<ID>,
    ) -> Result<Message> {
        let request = SendRequest {
            contact_id: parse_id("contactId", &contact_id)?,
            content: SendContent::Text(text),
            reply_to: reply_to
                .as_ref()
                .map(|id| parse_id("replyTo", id))
                .transpose()?,
        };
        Ok(Message(
            send::send(app_state(ctx), scope(ctx)?, request).await?,
        ))
    }

    /// An image, video, document or audio by link, within the customer-service window.
    #[graphql(guard = "RoleGuard::write(SENDERS)")]
    async fn send_media_message(
        &self,
        ctx: &Context<'_>,
        input: SendMediaInput,
    ) -> Result<Message> {
        let kind = match input.media_type {
            MediaType::Image => MediaKind::Image,
            MediaType::Video => MediaKind::Video,
            MediaType::Document => MediaKind::Document,
            MediaType::Audio => MediaKind::Audio,
        };
        let request = SendRequest {
            contact_id: parse_id("contactId", &input.contact_id)?,
            content: SendContent::Media {
                kind,
                link: input.link,
                caption: input.caption,
                filename: input.filename,
            },
            reply_to: input
                .reply_to
                .as_ref()
                .map(|id| parse_id("replyTo", id))
                .transpose()?,
        };
        Ok(Message(
            send::send(app_state(ctx), scope(ctx)?, request).await?,
        ))
    }

    /// An approved template, at any time, with its parameters rendered for the contact.
    #[graphql(guard = "RoleGuard::write(SENDERS)")]
    async fn send_template_message(
        &self,
        ctx: &Context<'_>,
        input: SendTemplateInput,
    ) -> Result<Message> {
        let request = SendRequest {
            contact_id: parse_id("contactId", &input.contact_id)?,
            content: SendContent::Template {
                template_id: parse_id("templateId", &input.template_id)?,
                parameters: input
                    .parameters
                    .into_iter()
                    .map(|p| ParameterInput {
                        value: p.value,
                        fallback: p.fallback,
                    })
                    .collect(),
                header_media_link: input.header_media_link,
            },
            reply_to: None,
        };
        Ok(Message(
            send::send(app_state(ctx), scope(ctx)?, request).await?,
        ))
    }
}

#[derive(Default)]
pub struct MessagesSubscription;

#[Subscription]
impl MessagesSubscription {
    /// Messages of the project as they are created and as their status changes; only
    /// one contact's with `contactId`.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER_AGENT)")]
    async fn message_updates(
        &self,
        ctx: &Context<'_>,
        contact_id: Option<ID>,
    ) -> Result<impl Stream<Item = Message> + use<>> {
        let scope = scope(ctx)?;
        let contact: Option<Uuid> = contact_id
            .as_ref()
            .map(|id| parse_id("contactId", id))
            .transpose()?;
        let events = crate::chat::stream::subscribe(
            app_state(ctx),
            scope.project_id,
            crate::chat::stream::Viewer::of(scope),
            None,
        )
        .await?;
        Ok(events.filter_map(move |event| async move {
            let message = event.message.as_deref()?.clone();
            contact
                .is_none_or(|c| c == message.contact_id)
                .then_some(Message(message))
        }))
    }
}

const OWNER_MANAGER_AGENT: &[Role] = &[Role::Owner, Role::Manager, Role::Agent];
