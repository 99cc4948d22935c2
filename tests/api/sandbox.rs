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
