//! The sandbox provider in the embedded default: with nothing configured, a new user
//! creates a template, has it approved, sends it and watches it reach `read` live.

use std::time::Duration;

use parley_tests::{
    Mode, Owner, Shared, TestApp, eventually,
    ws::{Event, WsClient},
};
use serde_json::{Value, json};

/// An embedded server whose sandbox plays back fast: `failure` and `reply` in percent.
async fn sandbox(failure: u8, reply: u8) -> TestApp {
    let shared = Shared::fresh(&Mode::Embedded).await;
    TestApp::spawn_with(Mode::Embedded, &shared, |s| {
        s.whatsapp.sandbox.status_step = Duration::from_millis(150);
        s.whatsapp.sandbox.review_delay = Duration::from_millis(100);
        s.whatsapp.sandbox.failure_percent = failure;
        s.whatsapp.sandbox.reply_percent = reply;
    })
    .await
}

async fn approved_template(app: &TestApp, owner: &Owner) -> String {
    let created = app
        .gql("mutation($input: TemplateInput!) { createTemplate(input: $input) { id status } }")
        .as_member(owner)
        .vars(json!({ "input": {
            "name": "welcome_offer", "language": "en", "category": "MARKETING",
            "body": "Hi {{1}}, welcome to our store. Your code {{2}} saves 10% today.",
            "bodyExamples": ["Asha", "WELCOME10"],
        }}))
        .data()
        .await;
    assert_eq!(created["createTemplate"]["status"], "DRAFT");
    let id = created["createTemplate"]["id"].as_str().unwrap().to_owned();
    let submitted = app
        .gql("mutation($id: ID!) { submitTemplate(id: $id) { status metaTemplateId } }")
        .as_member(owner)
        .vars(json!({ "id": id }))
        .data()
        .await;
    assert_eq!(submitted["submitTemplate"]["status"], "PENDING");
    eventually(
        Duration::from_secs(10),
        "the sandbox to approve",
        || async {
            app.gql("query($id: ID!) { template(id: $id) { status } }")
                .as_member(owner)
                .vars(json!({ "id": id }))
                .data()
                .await["template"]["status"]
                == "APPROVED"
        },
    )
    .await;
    app.webhooks_settled().await;
    id
}

/// Creates a contact. The embedded database may answer UNAVAILABLE when the write races
/// a background writer (the documented contract: retry), so this retries as a client would.
async fn contact(app: &TestApp, owner: &Owner, name: &str, phone: &str) -> String {
    for _ in 0..5 {
        let reply = app
            .gql("mutation($input: CreateContactInput!) { createContact(input: $input) { id } }")
            .as_member(owner)
            .vars(json!({ "input": { "name": name, "phone": phone } }))
            .send()
            .await;
        if reply.error_code() == Some("UNAVAILABLE") {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        return reply.data()["createContact"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    panic!("the contact could not be created after five tries");
}

async fn send_template(app: &TestApp, owner: &Owner, contact: &str, template: &str) -> Value {
    app.gql(
        "mutation($input: SendTemplateInput!) { sendTemplateMessage(input: $input) { id status text } }",
    )
    .as_member(owner)
    .vars(json!({ "input": {
        "contactId": contact, "templateId": template,
        "parameters": [{ "value": "$FirstName" }, { "value": "WELCOME10" }],
    }}))
    .data()
    .await["sendTemplateMessage"]
        .clone()
}

#[tokio::test]
async fn a_new_user_sends_a_sandbox_approved_template_and_watches_it_reach_read() {
    let app = sandbox(0, 0).await;
    assert!(app.settings.database_url().starts_with("sqlite:"));
    let owner = app.sign_up("Laptop").await;
    let template = approved_template(&app, &owner).await;
    let asha = contact(&app, &owner, "Asha Verma", "9812345678").await;

    let mut client = WsClient::connect(&app.ws_url()).await;
    client
        .init(json!({ "authorization": format!("Bearer {}", owner.token), "projectId": owner.project_id }))
        .await;
    client
        .subscribe(
            "1",
            &format!(
                "subscription {{ messageUpdates(contactId: \"{asha}\") {{ id status text }} }}"
            ),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let sent = send_template(&app, &owner, &asha, &template).await;
    assert_eq!(
        sent["text"],
        "Hi Asha, welcome to our store. Your code WELCOME10 saves 10% today."
    );
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("READ") {
        match client.next().await {
            Event::Message(m) => {
                let update = &m["payload"]["data"]["messageUpdates"];
                assert_eq!(update["id"], sent["id"], "{m}");
                seen.push(update["status"].as_str().unwrap().to_owned());
            }
            Event::Closed(code) => panic!("closed with {code:?} after {seen:?}"),
        }
    }
    assert_eq!(seen, ["ACCEPTED", "SENT", "DELIVERED", "READ"]);
    let account = app
        .gql("{ whatsappAccount { provider } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(account["whatsappAccount"]["provider"], "sandbox");
}

#[tokio::test]
async fn the_sandbox_fails_unreachable_numbers_and_replies_through_the_webhook_code() {
    let app = sandbox(0, 100).await;
    let owner = app.sign_up("Replies").await;
    let template = approved_template(&app, &owner).await;
    // Numbers ending in 0000 are never reachable in the sandbox.
    let unreachable = contact(&app, &owner, "Nobody Home", "+14155550000").await;
    let meera = contact(&app, &owner, "Meera K", "+15417543010").await;
    send_template(&app, &owner, &unreachable, &template).await;
    let sent = send_template(&app, &owner, &meera, &template).await;

    let messages = |id: String| {
        let app = &app;
        let owner = &owner;
        async move {
            app.gql(
                "query($id: ID!) { contact(id: $id) { messagingWindow { open } messages(first: 10) { edges { node { \
                 id direction status errorCode text repliedAt replyToMessageId } } } } }",
            )
            .as_member(owner)
            .vars(json!({ "id": id }))
            .data()
            .await["contact"]
                .clone()
        }
    };
    eventually(
        Duration::from_secs(10),
        "the failure to be reported",
        || async {
            messages(unreachable.clone()).await["messages"]["edges"][0]["node"]["status"]
                == "FAILED"
        },
    )
    .await;
    let failed = messages(unreachable.clone()).await;
    assert_eq!(failed["messages"]["edges"][0]["node"]["errorCode"], 131_026);

    eventually(Duration::from_secs(10), "Meera's reply", || async {
        messages(meera.clone()).await["messages"]["edges"]
            .as_array()
            .unwrap()
            .len()
            == 2
    })
    .await;
    let conversation = messages(meera.clone()).await;
    let edges = conversation["messages"]["edges"].as_array().unwrap();
    let reply = &edges[1]["node"];
    assert_eq!(reply["direction"], "INBOUND");
    assert_eq!(reply["text"], "Thanks, got it!");
    assert_eq!(reply["replyToMessageId"], sent["id"]);
    assert!(edges[0]["node"]["repliedAt"].is_string());
    // Her reply opens the customer-service window.
    assert_eq!(conversation["messagingWindow"]["open"], true);
}

#[tokio::test]
async fn templates_are_not_sent_to_contacts_who_opted_out() {
    let app = sandbox(0, 0).await;
    let owner = app.sign_up("Consent").await;
    let template = approved_template(&app, &owner).await;
    let asha = contact(&app, &owner, "Asha Verma", "9812345678").await;
    app.gql("mutation($id: ID!) { setContactOptIn(id: $id, optedIn: false) { optedIn } }")
        .as_member(&owner)
        .vars(json!({ "id": asha }))
        .data()
        .await;
    app.gql("mutation($input: SendTemplateInput!) { sendTemplateMessage(input: $input) { id } }")
        .as_member(&owner)
        .vars(json!({ "input": {
            "contactId": asha, "templateId": template,
            "parameters": [{ "value": "$FirstName" }, { "value": "X" }],
        }}))
        .send()
        .await
        .expect_error("CONTACT_OPTED_OUT");
}

/// In the embedded default, a new user imports the sample contacts, broadcasts a
/// sandbox-approved template to a segment and watches the analytics fill in live.
#[tokio::test]
async fn a_new_user_imports_contacts_and_broadcasts_to_a_segment_watching_it_live() {
    let app = sandbox(0, 0).await;
    let owner = app.sign_up("EmbeddedCampaign").await;
    let template = approved_template(&app, &owner).await;
    for tag in ["MBA", "Finance", "Marketing"] {
        app.gql("mutation($n: String!) { createTag(input: { name: $n }) { id } }")
            .as_member(&owner)
            .vars(json!({ "n": tag }))
            .data()
            .await;
    }
    let csv = std::fs::read(format!(
        "{}/../../shared/fixtures/contacts/contacts-sample.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let upload = app
        .upload(
            &owner,
            "mutation($file: Upload!) { uploadContactImport(file: $file) { import { id } } }",
            "contacts-sample.csv",
            csv,
        )
        .await;
    let import_id = upload.data()["uploadContactImport"]["import"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql("mutation($id: ID!, $mapping: [ColumnMappingInput!]!) { startContactImport(id: $id, mapping: $mapping) { id } }")
        .as_member(&owner)
        .vars(json!({ "id": import_id, "mapping": [
            { "column": "Name", "field": "NAME" },
            { "column": "Mobile Number", "field": "PHONE" },
            { "column": "Tags", "field": "TAGS" },
        ]}))
        .data()
        .await;
    let job = app
        .import_when_ended(
            &owner,
            "query($id: ID!) { contactImport(id: $id) { status added } }",
            &import_id,
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(job["status"], "COMPLETED");
    assert_eq!(job["added"], 5);

    let tags = app
        .gql("{ tags { id name } }")
        .as_member(&owner)
        .data()
        .await;
    let mba = tags["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "MBA")
        .map(|t| t["id"].clone())
        .unwrap();
    let segment = app
        .gql("mutation($f: ContactFilterInput!) { createSegment(name: \"MBA\", filter: $f) { id contactCount } }")
        .as_member(&owner)
        .vars(json!({ "f": { "tags": { "anyOf": [mba] } } }))
        .data()
        .await;
    assert_eq!(segment["createSegment"]["contactCount"], 3);

    let mut ws = WsClient::connect(&app.ws_url()).await;
    ws.init(json!({ "authorization": format!("Bearer {}", owner.token), "projectId": owner.project_id }))
        .await;
    ws.subscribe(
        "p",
        "subscription { campaignProgress { status counts { sent delivered read } } }",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let created = app
        .gql("mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id recipientsCount } }")
        .as_member(&owner)
        .vars(json!({ "input": {
            "name": "MBA welcome",
            "templateId": template,
            "parameters": [{ "value": "$FirstName", "fallback": "there" }, { "value": "MBA10" }],
            "audience": { "segmentId": segment["createSegment"]["id"] },
            "sendNow": true,
        }}))
        .data()
        .await;
    assert_eq!(created["createBroadcast"]["recipientsCount"], 3);

    // The sandbox plays back sent, delivered and read: the counts fill in live.
    let mut seen_read = 0;
    for _ in 0..200 {
        match ws.next_within(Duration::from_secs(10)).await {
            Some(Event::Message(m)) => {
                seen_read = m["payload"]["data"]["campaignProgress"]["counts"]["read"]
                    .as_i64()
                    .unwrap_or(0);
                if seen_read == 3 {
                    break;
                }
            }
            other => {
                let id = created["createBroadcast"]["id"].clone();
                let found = app
                    .gql("query($id: ID!) { campaign(id: $id) { status counts { sent delivered read failed queued } recipients(first: 10) { edges { node { status messageId } } } } }")
                    .as_member(&owner)
                    .vars(json!({ "id": id }))
                    .data()
                    .await;
                panic!("progress stopped at {seen_read} read: {other:?}; {found}")
            }
        }
    }
    assert_eq!(seen_read, 3);
    let id = created["createBroadcast"]["id"].clone();
    eventually(
        Duration::from_secs(10),
        "the analytics timeline",
        || async {
            let found = app
                .gql("query($id: ID!) { campaign(id: $id) { status timeline { sent read } } }")
                .as_member(&owner)
                .vars(json!({ "id": id }))
                .data()
                .await;
            let points = found["campaign"]["timeline"].as_array().unwrap().clone();
            let read: i64 = points.iter().map(|p| p["read"].as_i64().unwrap()).sum();
            found["campaign"]["status"] == "COMPLETED" && read == 3
        },
    )
    .await;
}
