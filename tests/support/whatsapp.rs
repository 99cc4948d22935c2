//! WhatsApp helpers: a server wired to a fake Graph API, signed webhook deliveries of the
//! fixture payloads, and waiting for the webhook inbox to drain.

use std::time::Duration;

use hmac::{Hmac, Mac};
use parley_entity::webhook_event;
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use sha2::Sha256;

use crate::{Mode, Owner, Shared, TestApp, fake_graph::FakeGraph};

pub const APP_SECRET: &str = "test-app-secret";
pub const VERIFY_TOKEN: &str = "test-verify-token";
/// The WhatsApp Business Account and number the fixtures are addressed to.
pub const WABA_ID: &str = "102290129340398";
pub const PHONE_NUMBER_ID: &str = "106540352242922";

pub fn fixture_dir() -> String {
    format!(
        "{}/../../shared/fixtures/meta-webhooks",
        env!("CARGO_MANIFEST_DIR")
    )
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{name}", fixture_dir())).expect("a webhook fixture")
}

/// Every webhook fixture's file name, sorted.
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("the fixture directory")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The `X-Hub-Signature-256` header Meta would send for `body`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl TestApp {
    /// A production-mode server whose Meta client talks to `fake`.
    pub async fn spawn_with_graph(fake: &FakeGraph) -> Self {
        let shared = Shared::fresh(&Mode::Production).await;
        let url = fake.url.clone();
        Self::spawn_with(Mode::Production, &shared, move |s| {
            s.whatsapp.graph_url = url;
            s.whatsapp.app_secret = Some(APP_SECRET.into());
            s.whatsapp.verify_token = Some(VERIFY_TOKEN.into());
            s.whatsapp.backoff_base = Duration::from_millis(5);
            s.whatsapp.timeout = Duration::from_secs(2);
            s.whatsapp.app_id = Some("1234".into());
        })
        .await
    }

    /// Connects the owner's project to the fixtures' number.
    pub async fn connect_fixture_number(&self, owner: &Owner) {
        self.gql(
            "mutation($input: ConnectWhatsAppInput!) { connectWhatsapp(input: $input) { provider } }",
        )
        .as_member(owner)
        .vars(json!({ "input": {
            "wabaId": WABA_ID,
            "phoneNumberId": PHONE_NUMBER_ID,
            "accessToken": "test-access-token",
        }}))
        .data()
        .await;
    }

    /// Posts a webhook body signed with the test app secret; returns the status.
    pub async fn post_webhook(&self, body: &[u8]) -> StatusCode {
        self.post_webhook_with(body, Some(&sign(APP_SECRET, body)))
            .await
    }

    pub async fn post_webhook_with(&self, body: &[u8], signature: Option<&str>) -> StatusCode {
        let mut request = self
            .http
            .post(self.url("/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.expect("the server answers").status()
    }

    /// Waits until every webhook delivery due by now has been processed.
    pub async fn webhooks_settled(&self) {
        let db = &self.app.state.db;
        crate::eventually(
            Duration::from_secs(20),
            "the webhook inbox to drain",
            || async {
                webhook_event::Entity::find()
                    .filter(webhook_event::Column::State.eq("PENDING"))
                    // Due now, or claimed by the worker (in progress).
                    .filter(
                        sea_orm::Condition::any()
                            .add(webhook_event::Column::AvailableAt.lte(chrono::Utc::now()))
                            .add(webhook_event::Column::Attempts.gt(0)),
                    )
                    .count(db)
                    .await
                    .unwrap()
                    == 0
            },
        )
        .await;
    }
}

fn envelope(value: serde_json::Value) -> Vec<u8> {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": WABA_ID, "changes": [{ "field": "messages", "value": value }] }]
    })
    .to_string()
    .into_bytes()
}

/// An inbound text in Meta's shape, written at `at` (Unix seconds), to the fixtures' number.
pub fn inbound_text(wamid: &str, from: &str, name: &str, text: &str, at: i64) -> Vec<u8> {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "919000012345", "phone_number_id": PHONE_NUMBER_ID },
        "contacts": [{ "profile": { "name": name }, "wa_id": from }],
        "messages": [{
            "from": from, "id": wamid, "timestamp": at.to_string(),
            "type": "text", "text": { "body": text }
        }]
    }))
}

/// A status of an outbound message in Meta's shape.
pub fn status(wamid: &str, status: &str, recipient: &str, at: i64) -> Vec<u8> {
    envelope(json!({
        "messaging_product": "whatsapp",
        "metadata": { "display_phone_number": "919000012345", "phone_number_id": PHONE_NUMBER_ID },
        "statuses": [{
            "id": wamid, "status": status, "timestamp": at.to_string(), "recipient_id": recipient
        }]
    }))
}
