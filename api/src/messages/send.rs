//! Sending a message to a contact: WhatsApp's rules checked first (the customer-service
//! window, approved templates, opt-out), the message recorded before the provider is
//! called, and its outcome recorded after.

use chrono::Utc;
use parley_entity::{contact, message, wallet_entry};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::store::{self, ACCEPTED, FAILED, OUTBOUND, PENDING};
use crate::{
    auth::Scope,
    billing::{
        alerts,
        charges::{self, ChargeRequest},
        pricing::{Category, MessageKind},
    },
    chat::{self, events::ChatEvent},
    contacts::{
        journey::{self, Actor, Entry},
        messaging, service as contacts,
    },
    errors::{AppError, AppResult, ErrorCode},
    events,
    state::AppState,
    templates::{self, service::ParameterInput},
    whatsapp::{
        accounts,
        provider::{Content, MediaKind, OutboundMessage, ProviderError, Recipient},
    },
};

pub enum SendContent {
    Text(String),
    Media {
        kind: MediaKind,
        link: String,
        caption: Option<String>,
        filename: Option<String>,
    },
    Template {
        template_id: Uuid,
        parameters: Vec<ParameterInput>,
        header_media_link: Option<String>,
    },
}

pub struct SendRequest {
    pub contact_id: Uuid,
    pub content: SendContent,
    /// A message of this contact's to reply to.
    pub reply_to: Option<Uuid>,
}

/// A campaign's send: its message id is chosen by the dispatcher and written on the
/// recipient in the transaction that records the message, before Meta is called.
#[derive(Clone, Copy, Debug)]
pub struct CampaignSend {
    pub campaign_id: Uuid,
    pub message_id: Uuid,
}

pub async fn send(
    state: &AppState,
    scope: &Scope,
    request: SendRequest,
) -> AppResult<message::Model> {
    send_inner(state, scope, request, None).await
}

pub async fn send_for_campaign(
    state: &AppState,
    scope: &Scope,
    request: SendRequest,
    campaign: CampaignSend,
) -> AppResult<message::Model> {
    send_inner(state, scope, request, Some(campaign)).await
}

async fn send_inner(
    state: &AppState,
    scope: &Scope,
    request: SendRequest,
    campaign: Option<CampaignSend>,
) -> AppResult<message::Model> {
    let contact = contacts::find(state, scope, request.contact_id).await?;
    chat::listing::ensure_may_use(state, scope, &contact).await?;
    let account = accounts::for_project(&state.db, state, scope.project_id).await?;
    let to = recipient(&contact)?;
    let now = state.settings.clock.now();
    let mut url_buttons = Vec::new();
    let (mut content, template_id, kind, stored_content, priced_as) = match request.content {
        SendContent::Text(body) => {
            let body = text(&body)?;
            ensure_window(state, &contact, now).await?;
            let stored = json!({ "text": { "body": body } });
            (
                Content::Text {
                    preview_url: body.contains("https://") || body.contains("http://"),
                    body,
                },
                None,
                "text",
                stored,
                MessageKind::FreeForm,
            )
        }
        SendContent::Media {
            kind,
            link,
            caption,
            filename,
        } => {
            let link = media_link(&link)?;
            ensure_window(state, &contact, now).await?;
            let stored = json!({ kind.as_str(): { "link": link, "caption": caption, "filename": filename } });
            (
                Content::Media {
                    kind,
                    link,
                    caption,
                    filename,
                },
                None,
                kind.as_str(),
                stored,
                MessageKind::FreeForm,
            )
        }
        SendContent::Template {
            template_id,
            parameters,
            header_media_link,
        } => {
            if !contact.opted_in {
                return Err(AppError::Refused {
                    code: ErrorCode::ContactOptedOut,
                    message: "the contact opted out; templates are not sent to them".into(),
                });
            }
            let rendered = templates::service::render_for_contact(
                state,
                scope,
                template_id,
                &contact,
                &parameters,
                header_media_link,
            )
            .await?;
            let category = Category::parse(&rendered.category).unwrap_or(Category::Marketing);
            url_buttons = rendered.url_buttons.clone();
            let stored = json!({
                "template": { "name": rendered.name, "language": rendered.language },
                "text": rendered.preview,
                "components": rendered.components,
            });
            (
                Content::Template {
                    name: rendered.name,
                    language: rendered.language,
                    components: rendered.components,
                },
                Some(template_id),
                "template",
                stored,
                MessageKind::Template(category),
            )
        }
    };
    let reply_to = match request.reply_to {
        Some(id) => Some(reply_target(state, scope, &contact, id).await?),
        None => None,
    };
    let project = crate::projects::service::current(state, scope).await?;
    let txn = state.db.begin().await?;
    let message_id = campaign.map_or_else(Uuid::now_v7, |c| c.message_id);
    // Priced and paid before Meta is called: a send the wallet cannot pay is refused here.
    let charged = charges::charge(
        &txn,
        state,
        ChargeRequest {
            project_id: scope.project_id,
            currency: &project.currency,
            contact: &contact,
            message_id,
            kind: priced_as,
            at: now,
            campaign_id: campaign.map(|c| c.campaign_id),
        },
    )
    .await?;
    let pending = message::ActiveModel {
        id: Set(message_id),
        project_id: Set(scope.project_id),
        contact_id: Set(contact.id),
        direction: Set(OUTBOUND.into()),
        kind: Set(kind.into()),
        content: Set(stored_content.to_string()),
        wa_message_id: Set(None),
        status: Set(PENDING.into()),
        error_code: Set(None),
        error_title: Set(None),
        template_id: Set(template_id),
        context_wa_message_id: Set(reply_to.clone()),
        reply_to_message_id: Set(request.reply_to),
        referral: Set(None),
        pricing: Set(None),
        sent_by: Set(scope.user_id),
        occurred_at: Set(now),
        sent_at: Set(None),
        delivered_at: Set(None),
        read_at: Set(None),
        failed_at: Set(None),
        replied_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    if template_id.is_some() {
        // Business-initiated: counts toward the messaging limit.
        crate::campaigns::limits::record_reached(&txn, scope.project_id, contact.id, now).await?;
    }
    if let Some(campaign) = campaign {
        crate::campaigns::tracking::attach_message(&txn, campaign, contact.id).await?;
        if project.plan == crate::billing::plans::PRO
            && let Content::Template { components, .. } = &mut content
        {
            crate::campaigns::links::track(
                &txn,
                &state.settings.public_url,
                scope.project_id,
                campaign.campaign_id,
                contact.id,
                &url_buttons,
                components,
            )
            .await?;
        }
    }
    txn.commit().await?;
    let mut wallet_entries: Vec<_> = charged.entry.into_iter().collect();
    let outbound = OutboundMessage {
        to,
        content,
        reply_to,
    };
    let provider = state.whatsapp.provider(&account);
    let result = provider
        .send(&accounts::provider_account(&account), &outbound)
        .await;
    let (saved, failure, chat_events, refund) =
        record_result(state, scope, &contact, pending, result).await?;
    chat::events::publish(state, chat_events).await;
    wallet_entries.extend(refund);
    alerts::publish(state, &wallet_entries).await;
    match failure {
        None => Ok(saved),
        Some(err) => Err(err.into()),
    }
}

/// Stores what the provider said; statuses that arrived first are applied now.
async fn record_result(
    state: &AppState,
    scope: &Scope,
    contact: &contact::Model,
    pending: message::Model,
    result: Result<crate::whatsapp::provider::SendReceipt, ProviderError>,
) -> AppResult<(
    message::Model,
    Option<ProviderError>,
    Vec<ChatEvent>,
    Option<wallet_entry::Model>,
)> {
    let txn = state.db.begin().await?;
    let mut active: message::ActiveModel = pending.clone().into();
    active.updated_at = Set(Utc::now());
    let failure = match result {
        Ok(receipt) => {
            active.wa_message_id = Set(Some(receipt.wa_message_id));
            active.status = Set(ACCEPTED.into());
            None
        }
        Err(err) => {
            active.status = Set(FAILED.into());
            active.failed_at = Set(Some(Utc::now()));
            active.error_code = Set(err.code);
            active.error_title = Set(Some(err.message.clone()));
            Some(err)
        }
    };
    let saved = active.update(&txn).await?;
    let saved = store::refresh(&txn, saved.clone()).await?.unwrap_or(saved);
    // Meta refused it (or a status said it failed first): the charge comes back.
    let refund = if saved.status == FAILED {
        charges::refund_failed(&txn, saved.id, state.settings.clock.now()).await?
    } else {
        None
    };
    events::record_at(
        &txn,
        saved.project_id,
        "message.outbound",
        json!({
            "messageId": saved.id,
            "contactId": saved.contact_id,
            "waMessageId": saved.wa_message_id,
            "type": saved.kind,
            "templateId": saved.template_id,
            "accepted": failure.is_none(),
            "errorCode": saved.error_code,
        }),
        saved.occurred_at,
    )
    .await?;
    journey::record_at(
        &txn,
        saved.project_id,
        if scope.user_id.is_none() && scope.api_key_id.is_none() {
            Actor::System
        } else {
            Actor::of(scope)
        },
        vec![Entry::new(
            saved.contact_id,
            if saved.template_id.is_some() {
                "template.sent"
            } else {
                "message.sent"
            },
            json!({
                "messageId": saved.id,
                "type": saved.kind,
                "templateId": saved.template_id,
                "status": saved.status,
            }),
        )],
        saved.occurred_at,
    )
    .await?;
    let now = state.settings.clock.now();
    let unrecorded = chat::service::on_message(&txn, contact, &saved, true, now).await?;
    let chat_events = chat::events::record(&txn, contact.project_id, unrecorded, now).await?;
    txn.commit().await?;
    Ok((saved, failure, chat_events, refund))
}

fn recipient(contact: &contact::Model) -> AppResult<Recipient> {
    match (&contact.phone, &contact.bsuid) {
        (Some(phone), _) => Ok(Recipient::Phone(phone.clone())),
        (None, Some(bsuid)) => Ok(Recipient::Bsuid(bsuid.clone())),
        (None, None) => Err(AppError::bad_input(
            "contactId",
            "the contact has neither a phone number nor a WhatsApp user id",
        )),
    }
}

async fn ensure_window(
    state: &AppState,
    contact: &contact::Model,
    now: chrono::DateTime<Utc>,
) -> AppResult<()> {
    let last = messaging::last_inbound(&state.db, contact.id).await?;
    if messaging::window_expiry(last, now).is_none() {
        let since = match last {
            Some(at) => format!("the contact last wrote at {}", at.to_rfc3339()),
            None => "the contact has never written".to_owned(),
        };
        return Err(AppError::Refused {
            code: ErrorCode::WindowClosed,
            message: format!(
                "free-form messages can only be sent within 24 hours of the contact's last \
                 message ({since}); send an approved template instead"
            ),
        });
    }
    Ok(())
}

async fn reply_target(
    state: &AppState,
    scope: &Scope,
    contact: &contact::Model,
    id: Uuid,
) -> AppResult<String> {
    let original = super::find(state, scope, id).await?;
    if original.contact_id != contact.id {
        return Err(AppError::bad_input(
            "replyTo",
            "the message replied to belongs to another contact",
        ));
    }
    original.wa_message_id.ok_or_else(|| {
        AppError::bad_input(
            "replyTo",
            "the message replied to was never delivered to WhatsApp",
        )
    })
}

/// WhatsApp's limit on a text message's body.
const MAX_TEXT: usize = 4096;

fn text(body: &str) -> AppResult<String> {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Err(AppError::bad_input("text", "the message is empty"));
    }
    let length = trimmed.chars().count();
    if length > MAX_TEXT {
        return Err(AppError::bad_input(
            "text",
            format!("a text message has at most {MAX_TEXT} characters, this one has {length}"),
        ));
    }
    Ok(trimmed.to_owned())
}

fn media_link(link: &str) -> AppResult<String> {
    let link = link.trim();
    if !(link.starts_with("https://") || link.starts_with("http://")) || link.len() > 2048 {
        return Err(AppError::bad_input(
            "link",
            "media is sent by a public http(s) link of at most 2,048 characters",
        ));
    }
    Ok(link.to_owned())
}
