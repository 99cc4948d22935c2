//! Sending messages through Meta's Cloud API (a local fake): the customer-service window,
//! opt-out, statuses that never go backwards, Meta's errors and retries.

use parley_tests::{
    Owner, TestApp,
    fake_graph::{FakeGraph, meta_error},
    whatsapp::{PHONE_NUMBER_ID, inbound_text, status},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ASHA: &str = "919812345678";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn connected(app: &TestApp) -> Owner {
    let owner = app.sign_up("Chat").await;
    app.connect_fixture_number(&owner).await;
    owner
}

/// Asha writes in (now, unless told otherwise); returns her contact id.
async fn asha_writes(app: &TestApp, owner: &Owner, wamid: &str, text: &str, at: i64) -> String {
    assert_eq!(
        app.post_webhook(&inbound_text(wamid, ASHA, "Asha Verma", text, at))
            .await,
        StatusCode::OK
    );
    app.webhooks_settled().await;
    let found = app
        .gql("{ contacts(first: 10) { edges { node { id phone } } } }")
        .as_member(owner)
        .data()
        .await;
    found["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["phone"] == "+919812345678")
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .expect("Asha's contact")
}

async fn send_text(
    app: &TestApp,
    owner: &Owner,
    contact: &str,
    text: &str,
) -> parley_tests::client::Reply {
    app.gql(
        "mutation($c: ID!, $t: String!) { sendTextMessage(contactId: $c, text: $t) \
         { id status waMessageId errorCode text } }",
    )
    .as_member(owner)
    .vars(json!({ "c": contact, "t": text }))
    .send()
    .await
}

fn message_posts(fake: &FakeGraph) -> Vec<Value> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
        .map(|r| {
            assert_eq!(r.authorization.as_deref(), Some("Bearer test-access-token"));
            assert_eq!(r.path, format!("/v23.0/{PHONE_NUMBER_ID}/messages"));
            r.body
        })
        .collect()
}

async fn window(app: &TestApp, owner: &Owner, contact: &str) -> Value {
    app.gql(
        "query($id: ID!) { contact(id: $id) { messagingWindow { open expiresAt lastInboundAt } } }",
    )
    .as_member(owner)
    .vars(json!({ "id": contact }))
    .data()
    .await["contact"]["messagingWindow"]
        .clone()
}

#[tokio::test]
async fn free_form_messages_need_the_customer_service_window() {
    let fake = FakeGraph::start().await;
    let app = TestApp::spawn_with_graph(&fake).await;
    let owner = connected(&app).await;

    // Wrote 25 hours ago: the window has closed.
    let written = now() - 25 * 3600;
    let asha = asha_writes(&app, &owner, "wamid.in.old", "Hello", written).await;
    let closed = window(&app, &owner, &asha).await;
    assert_eq!(closed["open"], false);
    assert!(closed["expiresAt"].is_null());
    let message = send_text(&app, &owner, &asha, "Are you still there?")
        .await
        .expect_error("CUSTOMER_SERVICE_WINDOW_CLOSED");
    assert!(message.contains("approved template"), "{message}");
    assert!(message_posts(&fake).is_empty(), "Meta must not be called");

    // Writes again now: open for 24 hours from this message.
    let at = now();
    asha_writes(&app, &owner, "wamid.in.new", "Hi again", at).await;
    let open = window(&app, &owner, &asha).await;
    assert_eq!(open["open"], true);
    let expires =
        chrono::DateTime::parse_from_rfc3339(open["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!(expires.timestamp(), at + 24 * 3600);

    let sent = send_text(&app, &owner, &asha, "Yes, we are open till 6 pm").await;
    let sent = sent.data()["sendTextMessage"].clone();
    assert_eq!(sent["status"], "ACCEPTED");
    assert_eq!(sent["text"], "Yes, we are open till 6 pm");
    let posts = message_posts(&fake);
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0],
        json!({
            "messaging_product": "whatsapp", "recipient_type": "individual", "to": ASHA,
            "type": "text", "text": { "body": "Yes, we are open till 6 pm", "preview_url": false }
        })
    );
    assert_eq!(sent["waMessageId"], "wamid.fake.1");
}

#[tokio::test]
async fn statuses_never_move_backwards_and_read_implies_delivered() {
    let fake = FakeGraph::start().await;
    let app = TestApp::spawn_with_graph(&fake).await;
    let owner = connected(&app).await;
    let asha = asha_writes(&app, &owner, "wamid.in.1", "Hi", now()).await;
    let sent = send_text(&app, &owner, &asha, "Hello Asha").await;
    let sent = sent.data()["sendTextMessage"].clone();
    let wamid = sent["waMessageId"].as_str().unwrap().to_owned();
    let id = sent["id"].as_str().unwrap().to_owned();
    let t = now();
    let current = || async {
        app.gql("query($id: ID!) { message(id: $id) { status sentAt deliveredAt readAt } }")
            .as_member(&owner)
            .vars(json!({ "id": id }))
            .data()
            .await["message"]
            .clone()
    };

    // `read` first, without `delivered`: read, and delivered at the same time.
    app.post_webhook(&status(&wamid, "read", ASHA, t + 3)).await;
    app.webhooks_settled().await;
    let after_read = current().await;
    assert_eq!(after_read["status"], "READ");
    assert_eq!(after_read["deliveredAt"], after_read["readAt"]);

    // Late `sent` and `delivered` fill in their times but never undo `read`.
    app.post_webhook(&status(&wamid, "delivered", ASHA, t + 2))
        .await;
    app.post_webhook(&status(&wamid, "sent", ASHA, t + 1)).await;
    app.post_webhook(&status(&wamid, "delivered", ASHA, t + 2))
        .await;
    app.webhooks_settled().await;
    let settled = current().await;
    assert_eq!(settled["status"], "READ");
    let time = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    assert_eq!(time(&settled["sentAt"]), t + 1);
    assert_eq!(
        time(&settled["deliveredAt"]),
        t + 2,
        "Meta's own delivery time wins"
    );
    assert_eq!(time(&settled["readAt"]), t + 3);
}

#[tokio::test]
async fn meta_errors_come_back_with_meta_code_and_only_transient_ones_are_retried() {
    let fake = FakeGraph::start().await;
    let app = TestApp::spawn_with_graph(&fake).await;
    let owner = connected(&app).await;
    let asha = asha_writes(&app, &owner, "wamid.in.1", "Hi", now()).await;

    // A 500 and a throughput limit, then success: retried, one message.
    fake.fail_next("/messages", 500, meta_error(1, "An unknown error occurred"));
    fake.fail_next("/messages", 400, meta_error(130_429, "Rate limit hit"));
    let sent = send_text(&app, &owner, &asha, "First").await;
    assert_eq!(sent.data()["sendTextMessage"]["status"], "ACCEPTED");
    assert_eq!(message_posts(&fake).len(), 3);

    // A permanent error: one attempt, the message kept as failed with Meta's code.
    fake.fail_next(
        "/messages",
        400,
        meta_error(131_009, "Parameter value is not valid"),
    );
    let refused = send_text(&app, &owner, &asha, "Second").await;
    refused.expect_error("PROVIDER_REJECTED");
    assert_eq!(refused.body["errors"][0]["extensions"]["metaCode"], 131_009);
    assert_eq!(message_posts(&fake).len(), 4);

    // Meta failing every attempt: a retryable error for the caller, after max_attempts.
    for _ in 0..3 {
        fake.fail_next(
            "/messages",
            503,
            meta_error(2, "Service temporarily unavailable"),
        );
    }
    send_text(&app, &owner, &asha, "Third")
        .await
        .expect_error("UNAVAILABLE");
    assert_eq!(message_posts(&fake).len(), 7);

    let messages = app
        .gql("query($id: ID!) { contact(id: $id) { messages(first: 10) { edges { node { direction status errorCode text } } } } }")
        .as_member(&owner)
        .vars(json!({ "id": asha }))
        .data()
        .await;
    let outbound: Vec<Value> = messages["contact"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .filter(|m| m["direction"] == "OUTBOUND")
        .collect();
    assert_eq!(
        outbound,
        vec![
            json!({ "direction": "OUTBOUND", "status": "ACCEPTED", "errorCode": null, "text": "First" }),
            json!({ "direction": "OUTBOUND", "status": "FAILED", "errorCode": 131_009, "text": "Second" }),
            json!({ "direction": "OUTBOUND", "status": "FAILED", "errorCode": 2, "text": "Third" }),
        ]
    );
}

#[tokio::test]
async fn stop_and_start_set_consent_by_the_latest_message_whatever_the_order() {
    let fake = FakeGraph::start().await;
    let app = TestApp::spawn_with_graph(&fake).await;
    let owner = connected(&app).await;
    let t = now();
    // START (written later) arrives before STOP (written earlier): START wins.
    let asha = asha_writes(&app, &owner, "wamid.in.start", "START", t).await;
    asha_writes(&app, &owner, "wamid.in.stop", "stop", t - 60).await;
    let contact = app
        .gql("query($id: ID!) { contact(id: $id) { optedIn } }")
        .as_member(&owner)
        .vars(json!({ "id": asha }))
        .data()
        .await;
    assert_eq!(contact["contact"]["optedIn"], true);

    asha_writes(&app, &owner, "wamid.in.stop2", "STOP", t + 60).await;
    let contact = app
        .gql("query($id: ID!) { contact(id: $id) { optedIn journey(first: 20) { edges { node { kind } } } } }")
        .as_member(&owner)
        .vars(json!({ "id": asha }))
        .data()
        .await;
    assert_eq!(contact["contact"]["optedIn"], false);
    let kinds: Vec<&str> = contact["contact"]["journey"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"opted_out"), "{kinds:?}");
    // Replies in the window remain possible after STOP (to confirm it, say).
    let reply = send_text(&app, &owner, &asha, "You will not hear from us again").await;
    assert_eq!(reply.data()["sendTextMessage"]["status"], "ACCEPTED");
}
