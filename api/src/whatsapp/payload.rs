//! Webhook bodies in Meta's shapes. Parsing is lenient: unknown fields are ignored, and a
//! change this code does not know is kept as raw JSON to be reported.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Notification {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
pub struct Entry {
    /// The WhatsApp Business Account id.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// When Meta produced the change (template updates carry it).
    pub time: Option<i64>,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
pub struct Change {
    pub field: String,
    pub value: Value,
}

/// The `value` of a `messages` change: inbound messages and statuses.
#[derive(Debug, Deserialize)]
pub struct MessagesValue {
    pub metadata: Metadata,
    #[serde(default)]
    pub contacts: Vec<WaContact>,
    #[serde(default)]
    pub messages: Vec<Value>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub phone_number_id: String,
    pub display_phone_number: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WaContact {
    pub profile: Option<Profile>,
    pub wa_id: Option<String>,
    /// The business-scoped user id (BSUID).
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Profile {
    pub name: Option<String>,
}

/// An inbound message: the fields Parley acts on, with the whole object kept as content.
#[derive(Debug, Deserialize)]
pub struct InboundMessage {
    pub id: String,
    pub from: Option<String>,
    pub from_user_id: Option<String>,
    #[serde(deserialize_with = "timestamp")]
    pub timestamp: DateTime<Utc>,
    #[serde(rename = "type")]
    pub kind: String,
    pub context: Option<Context>,
    pub referral: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct Context {
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Status {
    pub id: String,
    pub status: String,
    #[serde(deserialize_with = "timestamp")]
    pub timestamp: DateTime<Utc>,
    pub recipient_id: Option<String>,
    #[serde(default)]
    pub errors: Vec<MetaError>,
    pub pricing: Option<Value>,
    pub conversation: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct MetaError {
    pub code: Option<i64>,
    pub title: Option<String>,
    pub message: Option<String>,
    pub error_data: Option<ErrorData>,
}

#[derive(Debug, Deserialize)]
pub struct ErrorData {
    pub details: Option<String>,
}

/// `message_template_status_update`.
#[derive(Debug, Deserialize)]
pub struct TemplateStatusUpdate {
    pub event: String,
    #[serde(deserialize_with = "string_or_number")]
    pub message_template_id: String,
    pub message_template_name: Option<String>,
    pub message_template_language: Option<String>,
    pub reason: Option<String>,
    pub message_template_category: Option<String>,
}

/// `template_category_update`.
#[derive(Debug, Deserialize)]
pub struct TemplateCategoryUpdate {
    #[serde(deserialize_with = "string_or_number")]
    pub message_template_id: String,
    pub message_template_name: Option<String>,
    pub message_template_language: Option<String>,
    pub previous_category: Option<String>,
    pub new_category: String,
}

/// The text a person wrote, whatever the message type (for keywords and rules).
pub fn text_of(message: &Value) -> Option<&str> {
    let kind = message["type"].as_str()?;
    match kind {
        "text" => message["text"]["body"].as_str(),
        "button" => message["button"]["text"].as_str(),
        "interactive" => {
            let i = &message["interactive"];
            i["button_reply"]["title"]
                .as_str()
                .or_else(|| i["list_reply"]["title"].as_str())
        }
        "image" | "video" | "document" => message[kind]["caption"].as_str(),
        _ => None,
    }
}

/// Latest Unix time a webhook may carry: the end of year 9999. Times past chrono's range
/// edges would overflow the window arithmetic done on them (`t - 24 h`, `t + 1 s`) and
/// panic the worker, and no database column holds them anyway.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;

fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let raw = string_or_number(d)?;
    let seconds: i64 = raw
        .parse()
        .map_err(|_| serde::de::Error::custom(format!("not a Unix timestamp: {raw}")))?;
    if !(0..=MAX_TIMESTAMP).contains(&seconds) {
        return Err(serde::de::Error::custom(format!(
            "timestamp out of range: {raw}"
        )));
    }
    Utc.timestamp_opt(seconds, 0)
        .single()
        .ok_or_else(|| serde::de::Error::custom(format!("timestamp out of range: {raw}")))
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Notification {
        let path = format!(
            "{}/../../shared/fixtures/meta-webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    fn messages_value(n: &Notification) -> MessagesValue {
        serde_json::from_value(n.entry[0].changes[0].value.clone()).unwrap()
    }

    #[test]
    fn reads_an_inbound_text_with_its_bsuid() {
        let n = fixture("inbound-text.json");
        let value = messages_value(&n);
        assert_eq!(value.metadata.phone_number_id, "106540352242922");
        assert_eq!(
            value.contacts[0].user_id.as_deref(),
            Some("IN.1502576394655843")
        );
        let message: InboundMessage = serde_json::from_value(value.messages[0].clone()).unwrap();
        assert_eq!(message.kind, "text");
        assert_eq!(message.timestamp.timestamp(), 1_763_990_400);
        assert_eq!(
            text_of(&value.messages[0]),
            Some("Hi, I want to know about the MBA course")
        );
    }

    #[test]
    fn reads_a_failed_status_with_meta_error() {
        let value = messages_value(&fixture("status-failed-131049.json"));
        let status = &value.statuses[0];
        assert_eq!(status.status, "failed");
        assert_eq!(status.errors[0].code, Some(131_049));
    }

    #[test]
    fn reads_template_updates_with_numeric_ids() {
        let n = fixture("template-status-approved.json");
        let update: TemplateStatusUpdate =
            serde_json::from_value(n.entry[0].changes[0].value.clone()).unwrap();
        assert_eq!(update.message_template_id, "594425479261596");
        assert_eq!(update.event, "APPROVED");
        let n = fixture("template-category-update.json");
        let update: TemplateCategoryUpdate =
            serde_json::from_value(n.entry[0].changes[0].value.clone()).unwrap();
        assert_eq!(update.new_category, "MARKETING");
    }

    #[test]
    fn texts_of_buttons_and_captions() {
        let value = messages_value(&fixture("inbound-button-reply.json"));
        assert_eq!(text_of(&value.messages[0]), Some("Talk to an agent"));
        let value = messages_value(&fixture("inbound-image-from-ad.json"));
        assert_eq!(
            text_of(&value.messages[0]),
            Some("Is this still available?")
        );
    }
}
