//! The webhook endpoint: Meta's verification challenge, signatures over the raw bytes,
//! and idempotent processing of every fixture payload in any order.

use std::time::Duration;

use parley_entity::{analytics_outbox, webhook_event};
use parley_tests::{
    Owner, TestApp, eventually,
    fake_graph::FakeGraph,
    whatsapp::{APP_SECRET, VERIFY_TOKEN, fixture, fixture_names, sign},
};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

#[tokio::test]
async fn the_verification_challenge_is_answered_only_for_a_known_token() {
    let fake = FakeGraph::start().await;
    let app = TestApp::spawn_with_graph(&fake).await;
    let owner = app.sign_up("Verify").await;
    app.gql(
        "mutation($input: ConnectWhatsAppInput!) { connectWhatsapp(input: $input) { provider } }",
    )
    .as_member(&owner)
    .vars(json!({ "input": {
        "wabaId": "111", "phoneNumberId": "222", "accessToken": "t",
        "verifyToken": "project-own-token"
    }}))
    .data()
    .await;
    let challenge = |token: &str| {
        app.http.get(app.url("/webhooks/whatsapp")).query(&[
            ("hub.mode", "subscribe"),
            ("hub.verify_token", token),
            ("hub.challenge", "1158201444"),
        ])
    };
    for token in [VERIFY_TOKEN, "project-own-token"] {
        let answer = challenge(token).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.text().await.unwrap(), "1158201444");
    }
    let wrong = challenge("guessed").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let incomplete = app
        .http
        .get(app.url("/webhooks/whatsapp?hub.mode=subscribe"))
        .send()
        .await
        .unwrap();
    assert_eq!(incomplete.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unsigned_wrongly_signed_and_altered_deliveries_are_refused_and_not_stored() {
    let fake = FakeGraph::start().await;
    let app = TestApp::spawn_with_graph(&fake).await;
    let owner = app.sign_up("Signed").await;
    app.connect_fixture_number(&owner).await;
    let body = fixture("inbound-text.json");

    assert_eq!(
        app.post_webhook_with(&body, None).await,
        StatusCode::UNAUTHORIZED
    );
    let other_secret = sign("not-the-app-secret", &body);
    assert_eq!(
        app.post_webhook_with(&body, Some(&other_secret)).await,
        StatusCode::UNAUTHORIZED
    );
    // A replay of a genuine signature over a changed body.
    let genuine = sign(APP_SECRET, &body);
    let altered = String::from_utf8(body.clone())
        .unwrap()
        .replace("MBA course", "MBA courses");
    assert_eq!(
        app.post_webhook_with(altered.as_bytes(), Some(&genuine))
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.post_webhook_with(&body, Some("sha256=zz")).await,
        StatusCode::UNAUTHORIZED
    );
    let stored = webhook_event::Entity::find()
        .count(&app.app.state.db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "a refused delivery must not be stored");

    // The genuine one is stored, answered 200 and processed.
    assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
    app.webhooks_settled().await;
    let contacts = app
        .gql("{ contacts { edges { node { name phone bsuid source } } } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(
        contacts["contacts"]["edges"][0]["node"],
        json!({ "name": "Asha Verma", "phone": "+919812345678",
                "bsuid": "IN.1502576394655843", "source": "ORGANIC" })
    );
}

#[tokio::test]
async fn malformed_and_unroutable_deliveries_are_kept_and_reported() {
    let fake = FakeGraph::start().await;
    let app = TestApp::spawn_with_graph(&fake).await;
    let owner = app.sign_up("Odd").await;
    app.connect_fixture_number(&owner).await;

    let garbage = b"this is not json";
    assert_eq!(app.post_webhook(garbage).await, StatusCode::OK);
    let elsewhere = String::from_utf8(fixture("inbound-text.json"))
        .unwrap()
        .replace("106540352242922", "999999999999999")
        .replace("102290129340398", "888888888888888");
    assert_eq!(app.post_webhook(elsewhere.as_bytes()).await, StatusCode::OK);
    // A change of a kind Parley does not handle, for a known account.
    let unknown_field = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [
            { "field": "account_alerts", "value": { "entity_type": "WABA" } }
        ]}]
    })
    .to_string();
    assert_eq!(
        app.post_webhook(unknown_field.as_bytes()).await,
        StatusCode::OK
    );
    app.webhooks_settled().await;

    let states = |state: &'static str| {
        let db = app.app.state.db.clone();
        async move {
            webhook_event::Entity::find()
                .filter(webhook_event::Column::State.eq(state))
                .count(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(states("MALFORMED").await, 1);
    assert_eq!(states("UNROUTABLE").await, 1);
    let issues = app
        .gql("{ webhookIssues { state notes body } }")
        .as_member(&owner)
        .data()
        .await;
    let issues = issues["webhookIssues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0]["notes"]
            .as_str()
            .unwrap()
            .contains("\"account_alerts\" field is not handled")
    );
    let contacts = app.gql("{ contactCount }").as_member(&owner).data().await;
    assert_eq!(contacts["contactCount"], 0);
}

/// The fixtures' outbound messages: the two statuses name these message ids.
const CAMPAIGN_MESSAGE_1: &str = "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgSQ0FNUEFJR04wMDAwMDAwMDAxAA==";
const CAMPAIGN_MESSAGE_2: &str = "wamid.HBgMOTE5ODc2NTAwMDExFQIAERgSQ0FNUEFJR04wMDAwMDAwMDAyAA==";

/// A project that sent the two messages the fixtures' statuses are about, with the
/// templates the fixtures' template updates name.
pub(crate) async fn project_ready_for_fixtures(app: &TestApp, fake: &FakeGraph) -> Owner {
    let owner = app.sign_up("Replay").await;
    app.connect_fixture_number(&owner).await;
    app.gql(
        "mutation { createTag(input: { name: \"MBA lead\", kind: FIRST_MESSAGE, \
         firstMessageKeywords: [\"mba\"] }) { id } }",
    )
    .as_member(&owner)
    .data()
    .await;
    for (name, category) in [
        ("autumn_offer", "MARKETING"),
        ("order_update", "UTILITY"),
        ("shipping_notice", "UTILITY"),
    ] {
        let created = app
            .gql("mutation($input: TemplateInput!) { createTemplate(input: $input) { id } }")
            .as_member(&owner)
            .vars(json!({ "input": {
                "name": name, "language": "en", "category": category,
                "body": "Hello, this is an update about your order with us today.",
            }}))
            .data()
            .await;
        let id = created["createTemplate"]["id"].as_str().unwrap().to_owned();
        app.gql("mutation($id: ID!) { submitTemplate(id: $id) { status } }")
            .as_member(&owner)
            .vars(json!({ "id": id }))
            .data()
            .await;
    }
    // Approved first, so that the campaign messages can be sent.
    assert_eq!(
        app.post_webhook(&fixture("template-status-approved.json"))
            .await,
        StatusCode::OK
    );
    app.webhooks_settled().await;
    let templates = app
        .gql("{ templates(status: APPROVED) { edges { node { id name } } } }")
        .as_member(&owner)
        .data()
        .await;
    let offer = templates["templates"]["edges"][0]["node"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    fake.queue_message_ids(&[CAMPAIGN_MESSAGE_1, CAMPAIGN_MESSAGE_2]);
    for (name, phone) in [
        ("Asha Verma", "+919812345678"),
        ("Rohit Sen", "+919876500011"),
    ] {
        let contact = app
            .gql("mutation($input: CreateContactInput!) { createContact(input: $input) { id } }")
            .as_member(&owner)
            .vars(json!({ "input": { "name": name, "phone": phone } }))
            .data()
            .await;
        app.gql(
            "mutation($input: SendTemplateInput!) { sendTemplateMessage(input: $input) { status } }",
        )
        .as_member(&owner)
        .vars(json!({ "input": {
            "contactId": contact["createContact"]["id"], "templateId": offer
        }}))
        .data()
        .await;
    }
    owner
}

const SNAPSHOT: &str = "{
  contacts(first: 100, orderBy: NAME_ASC) { edges { node {
    name phone bsuid source optedIn lastActiveAt status
    firstMessageTag { name }
    messagingWindow { lastInboundAt }
    journey(first: 100) { edges { node { kind data } } }
    messages(first: 100) { edges { node {
      direction kind status waMessageId text errorCode sentAt deliveredAt readAt failedAt
      repliedAt referral metaPricing replyToMessageId
    } } }
  } } }
  templates(first: 100) { edges { node {
    name language status category previousCategory rejectionReason
  } } }
}";

/// What the project looks like, minus ids that differ between two servers.
pub(crate) async fn snapshot(app: &TestApp, owner: &Owner) -> Value {
    let mut data = app.gql(SNAPSHOT).as_member(owner).data().await;
    for edge in data["contacts"]["edges"].as_array_mut().unwrap() {
        for message in edge["node"]["messages"]["edges"].as_array_mut().unwrap() {
            let reply = &mut message["node"]["replyToMessageId"];
            *reply = json!(!reply.is_null());
        }
        let entries = edge["node"]["journey"]["edges"].as_array_mut().unwrap();
        for entry in entries.iter_mut() {
            // Ids differ between servers; the kind and the rest are compared.
            if let Some(data) = entry["node"]["data"].as_object_mut() {
                for id in ["tagId", "messageId", "templateId"] {
                    data.remove(id);
                }
            }
        }
        // Entries of the same second may be written in either order.
        entries.sort_by_key(|e| e["node"].to_string());
    }
    data
}

/// Analytics events per kind for the project, once the outbox has shipped them all.
pub(crate) async fn analytics_counts(app: &TestApp, owner: &Owner) -> Vec<(String, u64)> {
    let db = app.app.state.db.clone();
    eventually(Duration::from_secs(20), "the outbox to ship", || {
        let db = db.clone();
        async move {
            analytics_outbox::Entity::find()
                .filter(analytics_outbox::Column::ShippedAt.is_null())
                .count(&db)
                .await
                .unwrap()
                == 0
        }
    })
    .await;
    let mut counts = Vec::new();
    for kind in [
        "message.inbound",
        "message.outbound",
        "message.status",
        "contact.contact.created",
        "contact.opted_out",
        "contact.first_message_tag.set",
        "contact.entry_point",
    ] {
        let n = app
            .clickhouse_count(&format!(
                "SELECT uniqExact(event_id) FROM events WHERE project_id = toUUID('{}') \
                 AND kind = '{kind}'",
                owner.project_id
            ))
            .await;
        counts.push((kind.to_owned(), n));
    }
    counts
}

/// A small deterministic shuffle, so that a failing order can be replayed from its seed.
pub(crate) fn shuffled(mut items: Vec<String>, mut seed: u64) -> Vec<String> {
    for i in (1..items.len()).rev() {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        items.swap(i, (seed >> 33) as usize % (i + 1));
    }
    items
}

#[tokio::test]
async fn replaying_every_fixture_in_any_order_leaves_the_state_of_one_delivery() {
    let once_graph = FakeGraph::start().await;
    let once = TestApp::spawn_with_graph(&once_graph).await;
    let once_owner = project_ready_for_fixtures(&once, &once_graph).await;
    for name in fixture_names() {
        assert_eq!(once.post_webhook(&fixture(&name)).await, StatusCode::OK);
        once.webhooks_settled().await;
    }
    let expected = snapshot(&once, &once_owner).await;
    let expected_counts = analytics_counts(&once, &once_owner).await;

    // What each fixture must have done, checked on the single delivery.
    let contacts = expected["contacts"]["edges"].as_array().unwrap();
    let by_name = |name: &str| {
        contacts
            .iter()
            .map(|e| &e["node"])
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("no contact {name}: {expected}"))
    };
    let asha = by_name("Asha Verma");
    assert_eq!(asha["bsuid"], "IN.1502576394655843");
    assert_eq!(asha["firstMessageTag"]["name"], "MBA lead");
    let asha_messages = asha["messages"]["edges"].as_array().unwrap();
    let offer = asha_messages
        .iter()
        .map(|e| &e["node"])
        .find(|m| m["waMessageId"] == CAMPAIGN_MESSAGE_1)
        .unwrap();
    assert_eq!(offer["status"], "READ");
    assert_eq!(offer["metaPricing"]["pricing"]["pricing_model"], "PMP");
    assert!(offer["deliveredAt"].is_string() && offer["readAt"].is_string());
    assert!(
        offer["repliedAt"].is_string(),
        "the button reply answers it"
    );
    let button = asha_messages
        .iter()
        .map(|e| &e["node"])
        .find(|m| m["kind"] == "button")
        .unwrap();
    assert_eq!(button["replyToMessageId"], true);
    let rohit = by_name("Rohit Sen");
    assert_eq!(rohit["optedIn"], false, "STOP opts out");
    let failed = rohit["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .find(|m| m["direction"] == "OUTBOUND")
        .unwrap();
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["errorCode"], 131_049);
    let meera = by_name("Meera K");
    assert_eq!(meera["source"], "ORGANIC");
    assert_eq!(meera["phone"], "+15417543010");
    assert_eq!(
        meera["messages"]["edges"][0]["node"]["referral"]["source_type"],
        "ad"
    );
    let templates: Vec<&Value> = expected["templates"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    let template = |name: &str| *templates.iter().find(|t| t["name"] == name).unwrap();
    assert_eq!(template("autumn_offer")["status"], "APPROVED");
    assert_eq!(template("order_update")["status"], "REJECTED");
    assert_eq!(
        template("order_update")["rejectionReason"],
        "INVALID_FORMAT"
    );
    assert_eq!(template("shipping_notice")["category"], "MARKETING");
    assert_eq!(template("shipping_notice")["previousCategory"], "UTILITY");
    let count = |kind: &str| {
        expected_counts
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, n)| *n)
            .unwrap()
    };
    assert_eq!(count("message.inbound"), 4);
    // sent, delivered and read of the first message; failed of the second.
    assert_eq!(count("message.status"), 4);

    // Every fixture three times, in a shuffled order, with several concurrently.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let replay_graph = FakeGraph::start().await;
    let replay = TestApp::spawn_with_graph(&replay_graph).await;
    let replay_owner = project_ready_for_fixtures(&replay, &replay_graph).await;
    let deliveries: Vec<String> = fixture_names()
        .into_iter()
        .flat_map(|n| [n.clone(), n.clone(), n])
        .collect();
    let order = shuffled(deliveries, seed);
    for batch in order.chunks(4) {
        let posts = batch.iter().map(|name| {
            let body = fixture(name);
            let app = &replay;
            async move { app.post_webhook(&body).await }
        });
        for status in futures::future::join_all(posts).await {
            assert_eq!(status, StatusCode::OK);
        }
    }
    replay.webhooks_settled().await;
    assert_eq!(
        snapshot(&replay, &replay_owner).await,
        expected,
        "replay order (seed {seed}): {order:?}"
    );
    assert_eq!(
        analytics_counts(&replay, &replay_owner).await,
        expected_counts,
        "seed {seed}"
    );
}

#[tokio::test]
async fn forged_signature_headers_and_oversized_deliveries_are_refused() {
    let fake = FakeGraph::start().await;
    let app = TestApp::spawn_with_graph(&fake).await;
    let owner = app.sign_up("Forged").await;
    app.connect_fixture_number(&owner).await;
    let body = fixture("inbound-text.json");
    let genuine = sign(APP_SECRET, &body);
    let hex = genuine.trim_start_matches("sha256=").to_owned();
    for (what, header) in [
        ("another algorithm's prefix", format!("sha1={hex}")),
        ("no prefix", hex.clone()),
        ("truncated", genuine[..genuine.len() - 2].to_owned()),
        ("doubled", format!("{genuine}{hex}")),
        ("empty digest", "sha256=".to_owned()),
        ("two values", format!("sha256=00, {genuine}")),
    ] {
        assert_eq!(
            app.post_webhook_with(&body, Some(&header)).await,
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    // The same signature over the body with one byte more (a trailing newline).
    let mut longer = body.clone();
    longer.push(b'\n');
    assert_eq!(
        app.post_webhook_with(&longer, Some(&genuine)).await,
        StatusCode::UNAUTHORIZED
    );
    // Far larger than a webhook may be: refused before it is read or verified.
    let mut huge = body.clone();
    huge.extend(std::iter::repeat_n(b' ', 2 * 1024 * 1024));
    let status = app.post_webhook(&huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let stored = webhook_event::Entity::find()
        .count(&app.app.state.db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "a refused delivery must not be stored");
    // The genuine delivery still goes through.
    assert_eq!(
        app.post_webhook_with(&body, Some(&genuine)).await,
        StatusCode::OK
    );
}
