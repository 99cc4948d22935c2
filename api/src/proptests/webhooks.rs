//! Meta's webhook bodies and signatures: any bytes parse into a notification or an error,
//! never a panic; every part the processing reads parses or is reported, and the times it
//! reads can be computed with; a signature verifies only for its own body and secret.

use chrono::Duration;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{config, nasty_text};
use crate::whatsapp::{
    payload::{
        self, InboundMessage, MessagesValue, Notification, Status, TemplateCategoryUpdate,
        TemplateStatusUpdate,
    },
    process, signature,
};

const CORPUS: &str = include_str!("corpus/webhooks.json");

/// Scalars Meta's fields take, and some they should not.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        any::<i64>().prop_map(|n| json!(n.to_string())),
        Just(json!("1700000000")),
        Just(json!(payload::MAX_TIMESTAMP + 1)),
        Just(json!("8210266876799")),
        Just(json!("-8334601228800")),
        nasty_text().prop_map(Value::String),
    ]
}

/// A message or status object with the right keys and any values.
fn item() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(
        prop_oneof![
            Just("id"),
            Just("from"),
            Just("from_user_id"),
            Just("timestamp"),
            Just("type"),
            Just("status"),
            Just("recipient_id"),
            Just("errors"),
            Just("text"),
            Just("context"),
            Just("interactive"),
            Just("button"),
            Just("image"),
        ],
        prop_oneof![
            scalar(),
            scalar().prop_map(|v| json!({ "body": v, "title": v, "caption": v, "text": v })),
            proptest::collection::vec(
                scalar().prop_map(|v| json!({ "code": v, "title": v })),
                0..3
            )
            .prop_map(Value::Array),
            scalar().prop_map(|v| json!({ "button_reply": { "title": v } })),
        ],
        0..10,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn change() -> impl Strategy<Value = Value> {
    let messages_value = (
        scalar(),
        proptest::collection::vec(item(), 0..4),
        proptest::collection::vec(item(), 0..4),
        proptest::collection::vec(
            scalar().prop_map(|v| json!({ "wa_id": v, "profile": { "name": v } })),
            0..3,
        ),
    )
        .prop_map(|(phone, messages, statuses, contacts)| {
            json!({ "metadata": { "phone_number_id": phone }, "messages": messages,
                    "statuses": statuses, "contacts": contacts })
        });
    let template_value = (scalar(), scalar(), scalar()).prop_map(|(id, event, category)| {
        json!({ "message_template_id": id, "event": event, "new_category": category,
                "message_template_name": event })
    });
    (
        prop_oneof![
            Just("messages"),
            Just("message_template_status_update"),
            Just("template_category_update"),
            Just("account_update"),
        ],
        prop_oneof![messages_value, template_value, scalar()],
    )
        .prop_map(|(field, value)| json!({ "field": field, "value": value }))
}

fn notification() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just(json!("whatsapp_business_account")), scalar()],
        proptest::collection::vec(
            (
                scalar(),
                scalar(),
                proptest::collection::vec(change(), 0..3),
            )
                .prop_map(
                    |(id, time, changes)| json!({ "id": id, "time": time, "changes": changes }),
                ),
            0..3,
        ),
    )
        .prop_map(|(object, entry)| json!({ "object": object, "entry": entry }))
}

/// Reads a body as the processing does; times read are used as the processing uses them.
fn read_like_the_processing(body: &[u8]) {
    let Ok(notification) = serde_json::from_slice::<Notification>(body) else {
        return;
    };
    let (phones, wabas) = process::meta_ids(&notification);
    assert_eq!(wabas.len(), notification.entry.len());
    assert!(phones.len() <= notification.entry.iter().map(|e| e.changes.len()).sum());
    for entry in &notification.entry {
        for change in &entry.changes {
            if let Ok(value) = serde_json::from_value::<MessagesValue>(change.value.clone()) {
                for message in &value.messages {
                    payload::text_of(message);
                    if let Ok(inbound) = serde_json::from_value::<InboundMessage>(message.clone()) {
                        within_range(inbound.timestamp);
                    }
                }
                for status in &value.statuses {
                    within_range(status.timestamp);
                }
            }
            serde_json::from_value::<Status>(change.value.clone()).ok();
            serde_json::from_value::<TemplateStatusUpdate>(change.value.clone()).ok();
            serde_json::from_value::<TemplateCategoryUpdate>(change.value.clone()).ok();
        }
    }
}

/// The window arithmetic done on a message's time (the chat's 24 hours, a campaign's
/// reply window, the next second) cannot overflow.
fn within_range(t: chrono::DateTime<chrono::Utc>) {
    assert!(
        t.timestamp() >= 0 && t.timestamp() <= payload::MAX_TIMESTAMP,
        "{t}"
    );
    let _ = t - Duration::hours(24 * 30);
    let _ = t + Duration::seconds(1);
    crate::chat::service::is_live(Some(t), t);
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_parse_or_fail_cleanly(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        read_like_the_processing(&body);
    }

    #[test]
    fn webhook_shaped_bodies_are_read_safely(body in notification()) {
        read_like_the_processing(body.to_string().as_bytes());
    }

    #[test]
    fn signatures_verify_only_their_own_body_and_secret(
        secret in proptest::collection::vec(any::<u8>(), 0..40),
        body in proptest::collection::vec(any::<u8>(), 0..200),
        other in proptest::collection::vec(any::<u8>(), 0..200),
        header in nasty_text(),
    ) {
        let signed = signature::sign(&secret, &body);
        prop_assert!(signature::verify(&secret, &body, &signed));
        let padded = format!("  {signed} ");
        prop_assert!(signature::verify(&secret, &body, &padded));
        if other != body {
            prop_assert!(!signature::verify(&secret, &other, &signed));
        }
        // Made-up headers never verify (a guess of 256 bits aside).
        if header.trim() != signed {
            prop_assert!(!signature::verify(&secret, &body, &header));
        }
        // Nor does the digest without its prefix, or with another algorithm's.
        prop_assert!(!signature::verify(&secret, &body, &signed.replace("sha256=", "sha1=")));
        prop_assert!(!signature::verify(&secret, &body, &signed["sha256=".len()..]));
    }
}

#[test]
fn the_seed_corpus_is_read_safely() {
    let bodies: Vec<String> = serde_json::from_str(CORPUS).unwrap();
    assert!(bodies.len() >= 15);
    for body in &bodies {
        read_like_the_processing(body.as_bytes());
    }
    // Times outside years 1970 to 9999 are refused where they are read.
    for ts in [
        "8210266876799",
        "-8334601228800",
        "9223372036854775807",
        "-1",
        "253402300800",
    ] {
        let message = json!({ "id": "m", "timestamp": ts, "type": "text" });
        assert!(
            serde_json::from_value::<InboundMessage>(message).is_err(),
            "{ts}"
        );
    }
    let last = json!({ "id": "m", "timestamp": payload::MAX_TIMESTAMP, "type": "text" });
    within_range(
        serde_json::from_value::<InboundMessage>(last)
            .unwrap()
            .timestamp,
    );
}
