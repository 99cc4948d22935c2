//! A stand-in for Meta when a project has no Cloud API credentials. It accepts the same
//! calls and plays back what Meta would send (statuses, the odd failure and reply,
//! template reviews) as webhook bodies in Meta's shapes, scheduled in the inbox and
//! processed by the same code as real webhooks.
//!
//! What it decides is predictable, so a demo or a test can count on it:
//! - a recipient whose number ends in `0000` never gets messages (Meta's 131026,
//!   undeliverable); otherwise `failure_percent` of sends fail, picked by message id;
//! - `reply_percent` of read messages get a reply, picked the same way;
//! - templates named `test_reject…` are rejected (`INVALID_FORMAT`), others approved.
//!
//! For the embedded sign-up (onboarding delays each outcome by `WHATSAPP_SANDBOX_SIGNUP_MS`):
//! - the Facebook login code `test_denied` is refused, any other is accepted;
//! - a number ending in `0000` never receives its verification code;
//! - the code it "sends" is always [`SANDBOX_VERIFICATION_CODE`]; any other is incorrect.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use parley_entity::template;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{
    inbox::{self, Delivery},
    provider::{
        Account, BusinessProfile, Content, FailureKind, OutboundMessage, PhoneNumberRequest,
        ProviderError, Recipient, RemoteTemplate, SendReceipt, SignupProvider, SubmittedTemplate,
        TemplatePage, TemplateSubmission, WhatsAppProvider,
    },
};
use crate::config::SandboxSettings;

pub struct SandboxProvider {
    db: DatabaseConnection,
    settings: SandboxSettings,
    wake: Arc<Notify>,
}

impl SandboxProvider {
    pub fn new(db: DatabaseConnection, settings: SandboxSettings, wake: Arc<Notify>) -> Self {
        Self { db, settings, wake }
    }

    fn step(&self, n: i32) -> DateTime<Utc> {
        let step = Duration::from_std(self.settings.status_step).unwrap_or(Duration::zero());
        Utc::now() + step * n
    }

    /// Plays back Meta's review of a template after the review delay.
    async fn review(
        &self,
        account: &Account,
        meta_id: &str,
        template: &TemplateSubmission,
    ) -> Result<(), ProviderError> {
        let at =
            Utc::now() + Duration::from_std(self.settings.review_delay).unwrap_or(Duration::zero());
        let (event, reason) = if template.name.starts_with("test_reject") {
            ("REJECTED", "INVALID_FORMAT")
        } else {
            ("APPROVED", "NONE")
        };
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": account.waba_id,
                "time": at.timestamp(),
                "changes": [{
                    "field": "message_template_status_update",
                    "value": {
                        "event": event,
                        "message_template_id": meta_id,
                        "message_template_name": template.name,
                        "message_template_language": template.language,
                        "reason": reason,
                        "message_template_category": template.category,
                    }
                }]
            }]
        });
        self.schedule(vec![Delivery {
            source: inbox::SOURCE_SANDBOX,
            project_id: Some(account.project_id),
            body: body.to_string(),
            available_at: at,
        }])
        .await
    }

    async fn schedule(&self, deliveries: Vec<Delivery>) -> Result<(), ProviderError> {
        inbox::store(&self.db, deliveries)
            .await
            .map_err(|e| ProviderError {
                kind: FailureKind::Transient,
                code: None,
                subcode: None,
                message: format!("the sandbox could not schedule its playback: {e}"),
                http_status: None,
            })?;
        self.wake.notify_one();
        Ok(())
    }
}

/// A number from 0 to 99 fixed by `seed`, for the sandbox's predictable picks.
fn pick(seed: &str) -> u8 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(seed.as_bytes());
    (u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 100) as u8
}

fn recipient_digits(to: &Recipient) -> String {
    match to {
        Recipient::Phone(phone) => phone.trim_start_matches('+').to_owned(),
        Recipient::Bsuid(id) => id.clone(),
    }
}

#[async_trait]
impl WhatsAppProvider for SandboxProvider {
    async fn send(
        &self,
        account: &Account,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, ProviderError> {
        let wamid = format!("wamid.sandbox.{}", Uuid::new_v4().simple());
        let recipient = recipient_digits(&message.to);
        let fails = recipient.ends_with("0000") || pick(&wamid) < self.settings.failure_percent;
        let replies = !fails && pick(&format!("reply-{wamid}")) < self.settings.reply_percent;
        let status = |status: &str, at: DateTime<Utc>, extra: Value| Delivery {
            source: inbox::SOURCE_SANDBOX,
            project_id: Some(account.project_id),
            body: status_body(account, &wamid, &recipient, status, at, extra).to_string(),
            available_at: at,
        };
        let mut deliveries = vec![status("sent", self.step(1), pricing(message))];
        if fails {
            deliveries.push(status(
                "failed",
                self.step(2),
                json!({ "errors": [{
                    "code": 131026,
                    "title": "Message undeliverable",
                    "message": "Message undeliverable",
                    "error_data": { "details": "The recipient's number is not on WhatsApp." }
                }]}),
            ));
        } else {
            deliveries.push(status("delivered", self.step(2), pricing(message)));
            deliveries.push(status("read", self.step(3), json!({})));
        }
        if replies {
            let at = self.step(4);
            deliveries.push(Delivery {
                source: inbox::SOURCE_SANDBOX,
                project_id: Some(account.project_id),
                body: reply_body(account, &wamid, &recipient, at).to_string(),
                available_at: at,
            });
        }
        self.schedule(deliveries).await?;
        Ok(SendReceipt {
            wa_message_id: wamid,
        })
    }

    async fn submit_template(
        &self,
        account: &Account,
        template: &TemplateSubmission,
    ) -> Result<SubmittedTemplate, ProviderError> {
        // Meta's template ids are numbers; this one is made from Parley's id.
        let meta_id = (template.template_id.as_u128() % 1_000_000_000_000_000).to_string();
        self.review(account, &meta_id, template).await?;
        Ok(SubmittedTemplate {
            meta_id,
            status: "PENDING".into(),
            category: template.category.clone(),
        })
    }

    async fn edit_template(
        &self,
        account: &Account,
        meta_id: &str,
        template: &TemplateSubmission,
    ) -> Result<(), ProviderError> {
        self.review(account, meta_id, template).await
    }

    /// The sandbox's "Meta" knows the templates the project submitted, as reviewed.
    async fn list_templates(
        &self,
        account: &Account,
        _after: Option<&str>,
    ) -> Result<TemplatePage, ProviderError> {
        let rows = template::Entity::find()
            .filter(template::Column::ProjectId.eq(account.project_id))
            .filter(template::Column::MetaTemplateId.is_not_null())
            .order_by_asc(template::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(|e| ProviderError {
                kind: FailureKind::Transient,
                code: None,
                subcode: None,
                message: e.to_string(),
                http_status: None,
            })?;
        let templates = rows
            .into_iter()
            .map(|t| RemoteTemplate {
                meta_id: t.meta_template_id.unwrap_or_default(),
                name: t.name,
                language: t.language,
                status: t.status,
                category: t.category,
                rejected_reason: t.rejection_reason,
                parameter_format: Some(t.parameter_format),
                components: Vec::new(),
            })
            .collect();
        Ok(TemplatePage {
            templates,
            next_after: None,
        })
    }
}

/// The verification code the sandbox "sends" to every number.
pub const SANDBOX_VERIFICATION_CODE: &str = "123456";
/// The Facebook login code the sandbox refuses, to try a failed connection.
pub const SANDBOX_DENIED_LOGIN: &str = "test_denied";
const SANDBOX_PHONE_PREFIX: &str = "sandbox-pn-";

fn refused(message: &str) -> ProviderError {
    ProviderError {
        kind: FailureKind::Permanent,
        code: None,
        subcode: None,
        message: message.to_owned(),
        http_status: Some(400),
    }
}

/// The sandbox's embedded sign-up: see the module documentation for what it refuses.
#[async_trait]
impl SignupProvider for SandboxProvider {
    async fn exchange_code(&self, code: &str) -> Result<String, ProviderError> {
        if code == SANDBOX_DENIED_LOGIN {
            return Err(refused(
                "the Facebook login was not completed or its permissions were declined",
            ));
        }
        Ok(format!("sandbox-token-{}", Uuid::new_v4().simple()))
    }

    async fn add_phone_number(
        &self,
        _token: &str,
        _waba_id: &str,
        number: &PhoneNumberRequest,
    ) -> Result<String, ProviderError> {
        Ok(format!(
            "{SANDBOX_PHONE_PREFIX}{}{}",
            number.country_code, number.national_number
        ))
    }

    async fn request_code(
        &self,
        _token: &str,
        phone_number_id: &str,
        _method: &str,
        _language: &str,
    ) -> Result<(), ProviderError> {
        if phone_number_id.ends_with("0000") {
            return Err(refused(
                "the verification code could not be delivered to this number",
            ));
        }
        Ok(())
    }

    async fn verify_code(
        &self,
        _token: &str,
        _phone_number_id: &str,
        code: &str,
    ) -> Result<(), ProviderError> {
        if code != SANDBOX_VERIFICATION_CODE {
            return Err(refused("the verification code is incorrect"));
        }
        Ok(())
    }

    async fn register(
        &self,
        _token: &str,
        _phone_number_id: &str,
        _pin: &str,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn set_business_profile(
        &self,
        _token: &str,
        _phone_number_id: &str,
        _profile: &BusinessProfile,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn deregister(&self, _token: &str, _phone_number_id: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// Meta's per-message pricing object for what is sent (the July 2025 model).
fn pricing(message: &OutboundMessage) -> Value {
    let category = match &message.content {
        Content::Template { .. } => "marketing",
        _ => "service",
    };
    json!({ "pricing": {
        "billable": category != "service",
        "pricing_model": "PMP",
        "category": category,
        "type": if category == "service" { "free_customer_service" } else { "regular" },
    }})
}

fn envelope(account: &Account, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": account.waba_id,
            "changes": [{ "field": "messages", "value": value }]
        }]
    })
}

fn metadata(account: &Account) -> Value {
    json!({
        "display_phone_number": "15550100000",
        "phone_number_id": account.phone_number_id,
    })
}

fn status_body(
    account: &Account,
    wamid: &str,
    recipient: &str,
    status: &str,
    at: DateTime<Utc>,
    extra: Value,
) -> Value {
    let mut item = json!({
        "id": wamid,
        "status": status,
        "timestamp": at.timestamp().to_string(),
        "recipient_id": recipient,
    });
    if let (Some(item), Some(extra)) = (item.as_object_mut(), extra.as_object()) {
        item.extend(extra.clone());
    }
    envelope(
        account,
        json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(account),
            "statuses": [item],
        }),
    )
}

fn reply_body(account: &Account, wamid: &str, recipient: &str, at: DateTime<Utc>) -> Value {
    envelope(
        account,
        json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(account),
            "contacts": [{ "profile": { "name": "Sandbox user" }, "wa_id": recipient }],
            "messages": [{
                "context": { "from": "15550100000", "id": wamid },
                "from": recipient,
                "id": format!("wamid.sandbox.reply.{}", Uuid::new_v4().simple()),
                // Meta's times are whole seconds; rounding up keeps the reply after the
                // message it answers.
                "timestamp": (at.timestamp() + 1).to_string(),
                "type": "text",
                "text": { "body": "Thanks, got it!" }
            }]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_are_stable_and_spread() {
        assert_eq!(pick("wamid.a"), pick("wamid.a"));
        let below_half = (0..1000)
            .filter(|i| pick(&format!("wamid.{i}")) < 50)
            .count();
        assert!((400..600).contains(&below_half), "{below_half}");
    }

    #[test]
    fn statuses_are_in_meta_shape() {
        let account = Account {
            project_id: Uuid::nil(),
            waba_id: "1".into(),
            phone_number_id: "2".into(),
            access_token: String::new(),
        };
        let body = status_body(
            &account,
            "wamid.x",
            "919812345678",
            "sent",
            Utc::now(),
            json!({ "pricing": { "category": "marketing" } }),
        );
        let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["status"], "sent");
        assert_eq!(status["pricing"]["category"], "marketing");
        assert_eq!(
            body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"],
            "2"
        );
    }
}
