//! Broadcasts through the dispatcher against the fake Graph API: checks before sending,
//! skipped recipients, statuses, replies and failures per recipient, rate limits retried,
//! pause and resume, retrying failures, and live progress.

use std::time::Duration;

use parley_tests::{
    Mode, Owner, Shared, TestApp, eventually,
    fake_graph::{FakeGraph, meta_error},
    whatsapp::{APP_SECRET, VERIFY_TOKEN, inbound_text, status},
    ws::{Event, WsClient},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Setup {
    app: TestApp,
    graph: FakeGraph,
    owner: Owner,
    template: String,
}

const CAMPAIGN: &str = "query($id: ID!) { campaign(id: $id) { id name status stopReason recipientsCount \
     counts { recipients queued sent delivered read replied failed skipped interrupted } } }";

impl Setup {
    async fn start(name: &str) -> Self {
        let graph = FakeGraph::start().await;
        let shared = Shared::fresh(&Mode::Production).await;
        let url = graph.url.clone();
        let app = TestApp::spawn_with(Mode::Production, &shared, move |s| {
            s.whatsapp.graph_url = url;
            s.whatsapp.app_secret = Some(APP_SECRET.into());
            s.whatsapp.verify_token = Some(VERIFY_TOKEN.into());
            s.whatsapp.backoff_base = Duration::from_millis(5);
            s.whatsapp.timeout = Duration::from_secs(2);
            s.database_max_connections = 20;
        })
        .await;
        let owner = app.sign_up(name).await;
        app.connect_fixture_number(&owner).await;
        graph.add_template(json!({
            "id": "991000000000001", "name": "festive_offer", "language": "en",
            "status": "APPROVED", "category": "MARKETING", "rejected_reason": "NONE",
            "parameter_format": "POSITIONAL",
            "components": [{ "type": "BODY", "text": "Hello {{1}}, our festive offer is here.",
                             "example": { "body_text": [["Asha"]] } }],
        }));
        let setup = Self {
            app,
            graph,
            owner,
            template: String::new(),
        };
        setup
            .data("mutation { syncTemplates { imported } }", json!({}))
            .await;
        let list = setup
            .data("{ templates(first: 10) { nodes { id name } } }", json!({}))
            .await;
        let template = list["templates"]["nodes"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        Self { template, ..setup }
    }

    async fn data(&self, query: &str, vars: Value) -> Value {
        self.app
            .gql(query)
            .as_member(&self.owner)
            .vars(vars)
            .data()
            .await
    }

    async fn reply(&self, query: &str, vars: Value) -> parley_tests::client::Reply {
        self.app
            .gql(query)
            .as_member(&self.owner)
            .vars(vars)
            .send()
            .await
    }

    async fn contact(&self, name: &str, phone: &str) -> String {
        self.data(
            "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
            json!({ "input": { "name": name, "phone": phone } }),
        )
        .await["createContact"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn writes(&self, wamid: &str, from: &str, text: &str) {
        let at = chrono::Utc::now().timestamp();
        assert_eq!(
            self.app
                .post_webhook(&inbound_text(wamid, from, "User", text, at))
                .await,
            StatusCode::OK
        );
        self.app.webhooks_settled().await;
    }

    async fn create(
        &self,
        name: &str,
        ids: &[String],
        send_now: bool,
    ) -> parley_tests::client::Reply {
        self.reply(
            "mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id status recipientsCount } }",
            json!({ "input": {
                "name": name,
                "templateId": self.template,
                "parameters": [{ "value": "$FirstName", "fallback": "friend" }],
                "audience": { "contactIds": ids },
                "sendNow": send_now,
            }}),
        )
        .await
    }

    async fn campaign(&self, id: &Value) -> Value {
        self.data(CAMPAIGN, json!({ "id": id })).await["campaign"].clone()
    }

    async fn until_status(&self, id: &Value, status: &str) -> Value {
        eventually(Duration::from_secs(20), status, || async {
            self.campaign(id).await["status"] == status
        })
        .await;
        self.campaign(id).await
    }

    async fn recipients(&self, id: &Value, status: Option<&str>) -> Vec<Value> {
        let found = self
            .data(
                "query($id: ID!, $s: RecipientStatus) { campaign(id: $id) { recipients(first: 100, status: $s) { \
                 edges { node { contactId status skipReason messageId errorCode failureGroup sentAt readAt deliveredAt repliedAt } } } } }",
                json!({ "id": id, "s": status }),
            )
            .await;
        found["campaign"]["recipients"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .collect()
    }

    async fn wamid(&self, message_id: &Value) -> String {
        self.data(
            "query($id: ID!) { message(id: $id) { waMessageId } }",
            json!({ "id": message_id }),
        )
        .await["message"]["waMessageId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn sent_bodies(&self) -> Vec<Value> {
        self.graph
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
            .map(|r| r.body)
            .collect()
    }
}

#[tokio::test]
async fn a_broadcast_reaches_each_recipient_once_and_tracks_what_happened() {
    let s = Setup::start("Broadcast").await;
    let asha = s.contact("Asha Verma", "+919812345678").await;
    let ravi = s.contact("Ravi Kumar", "+919812300001").await;
    let meera = s.contact("Meera", "+919812300002").await;
    let john = s.contact("John", "+919812300003").await;
    let stopped = s.contact("Stopped", "+919812300004").await;
    s.writes("wamid.stop.1", "919812300004", "STOP").await;
    let everyone = vec![
        asha.clone(),
        ravi.clone(),
        meera.clone(),
        john.clone(),
        stopped.clone(),
    ];

    // Checked before anything is sent.
    s.reply(
        "mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id } }",
        json!({ "input": { "name": "Bad", "templateId": s.template, "parameters": [],
                           "audience": { "contactIds": everyone }, "sendNow": true } }),
    )
    .await
    .expect_error("BAD_USER_INPUT");
    s.reply(
        "mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id } }",
        json!({ "input": { "name": "Later", "templateId": s.template,
                           "parameters": [{ "value": "x" }],
                           "audience": { "contactIds": everyone },
                           "scheduledAt": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339() } }),
    )
    .await
    .expect_error("PLAN_UPGRADE_REQUIRED");
    assert!(s.sent_bodies().is_empty());

    // Meta says "too fast" to the first send: retried later, not failed.
    s.graph
        .fail_next("/messages", 400, meta_error(130429, "Rate limit hit"));
    let created = s.create("Diwali", &everyone, true).await;
    let id = created.data()["createBroadcast"]["id"].clone();
    assert_eq!(created.data()["createBroadcast"]["recipientsCount"], 5);
    s.create("diwali ", &everyone, true)
        .await
        .expect_error("CONFLICT");

    let done = s.until_status(&id, "COMPLETED").await;
    assert_eq!(done["counts"]["sent"], 4);
    assert_eq!(done["counts"]["skipped"], 1);
    assert_eq!(done["counts"]["failed"], 0, "a rate limit is not a failure");
    let skipped = s.recipients(&id, Some("SKIPPED")).await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["contactId"], stopped.as_str());
    assert_eq!(skipped[0]["skipReason"], "OPTED_OUT");
    // One message each (the rate-limited attempt was refused by Meta, then sent once).
    let bodies = s.sent_bodies();
    assert_eq!(bodies.len(), 5, "4 sends and the refused attempt");
    let mut to: Vec<String> = bodies
        .iter()
        .map(|b| b["to"].as_str().unwrap().trim_start_matches('+').to_owned())
        .collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 4);
    let asha_body = bodies
        .iter()
        .rev()
        .find(|b| b["to"].as_str().unwrap().ends_with("919812345678"))
        .unwrap();
    assert_eq!(
        asha_body["template"]["components"][0]["parameters"][0]["text"], "Asha",
        "placeholders are filled per contact"
    );

    // Statuses: read without delivered counts as delivered; a failure is grouped.
    let sent = s.recipients(&id, Some("SENT")).await;
    let message_of = |contact: &str| {
        sent.iter()
            .find(|r| r["contactId"] == contact)
            .map(|r| r["messageId"].clone())
            .unwrap()
    };
    let now = chrono::Utc::now().timestamp();
    let asha_wamid = s.wamid(&message_of(&asha)).await;
    let ravi_wamid = s.wamid(&message_of(&ravi)).await;
    let meera_wamid = s.wamid(&message_of(&meera)).await;
    assert_eq!(
        s.app
            .post_webhook(&status(&asha_wamid, "read", "919812345678", now))
            .await,
        StatusCode::OK
    );
    assert_eq!(
        s.app
            .post_webhook(&status(&ravi_wamid, "delivered", "919812300001", now))
            .await,
        StatusCode::OK
    );
    let mut failed: Value =
        serde_json::from_slice(&status(&meera_wamid, "failed", "919812300002", now)).unwrap();
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] = json!([{ "code": 131049, "title": "This message was not delivered to maintain healthy ecosystem engagement." }]);
    assert_eq!(
        s.app.post_webhook(failed.to_string().as_bytes()).await,
        StatusCode::OK
    );
    s.app.webhooks_settled().await;
    // Asha answers.
    s.writes("wamid.reply.asha", "919812345678", "Interested!")
        .await;

    let counts = s.campaign(&id).await["counts"].clone();
    assert_eq!(counts["delivered"], 2, "{counts}");
    assert_eq!(counts["read"], 1);
    assert_eq!(counts["failed"], 1);
    assert_eq!(counts["replied"], 1);
    let failed = s.recipients(&id, Some("FAILED")).await;
    assert_eq!(failed[0]["errorCode"], 131049);
    assert_eq!(failed[0]["failureGroup"], "LIMITED_BY_META");
    let read = s.recipients(&id, Some("READ")).await;
    assert!(read[0]["deliveredAt"].is_string(), "read implies delivered");
    assert!(read[0]["repliedAt"].is_string());

    let csv = s
        .data(
            "query($id: ID!) { campaign(id: $id) { recipientsCsv } }",
            json!({ "id": id }),
        )
        .await["campaign"]["recipientsCsv"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.contains("+919812300002") && l.contains("LIMITED_BY_META")),
        "{csv}"
    );

    // Rates, failure groups, and the timeline from the analytics store.
    let analytics = "query($id: ID!) { campaign(id: $id) { rates { delivered read replied failed } \
         failuresByGroup { group count } timeline(bucket: DAY) { sent delivered read replied failed skipped } } }";
    let sums = |timeline: &Value| {
        let mut sum = json!({ "sent": 0, "delivered": 0, "read": 0, "replied": 0, "failed": 0, "skipped": 0 });
        for point in timeline.as_array().unwrap() {
            for key in ["sent", "delivered", "read", "replied", "failed", "skipped"] {
                sum[key] = json!(sum[key].as_i64().unwrap() + point[key].as_i64().unwrap());
            }
        }
        sum
    };
    eventually(Duration::from_secs(15), "the timeline", || async {
        let found = s.data(analytics, json!({ "id": id })).await;
        sums(&found["campaign"]["timeline"])["replied"] == 1
    })
    .await;
    let found = s.data(analytics, json!({ "id": id })).await;
    assert_eq!(
        sums(&found["campaign"]["timeline"]),
        // Asha's read implies delivered; skips at the snapshot are in the counts only.
        json!({ "sent": 4, "delivered": 2, "read": 1, "replied": 1, "failed": 1, "skipped": 0 })
    );
    assert_eq!(
        found["campaign"]["rates"],
        // Of 3 sent (the failed one is not): 2 delivered, 1 read, 1 replied; 1 of 4 failed.
        json!({ "delivered": 2.0 / 3.0, "read": 1.0 / 3.0, "replied": 1.0 / 3.0, "failed": 0.25 })
    );
    assert_eq!(
        found["campaign"]["failuresByGroup"],
        json!([{ "group": "LIMITED_BY_META", "count": 1 }])
    );

    // Retargeting: delivered but not read (Ravi), with a broadcast tag for those reached.
    let tag = s
        .data(
            "mutation { createTag(input: { name: \"Diwali follow-up\" }) { id } }",
            json!({}),
        )
        .await["createTag"]["id"]
        .clone();
    let follow_up = s
        .data(
            "mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id recipientsCount } }",
            json!({ "input": {
                "name": "Diwali follow-up",
                "templateId": s.template,
                "parameters": [{ "value": "$FirstName", "fallback": "friend" }],
                "audience": { "filter": { "and": [
                    { "campaign": { "campaignId": id, "outcome": "DELIVERED" } },
                    { "not": { "campaign": { "campaignId": id, "outcome": "READ" } } },
                ] } },
                "broadcastTagId": tag,
                "sendNow": true,
            }}),
        )
        .await["createBroadcast"]
        .clone();
    assert_eq!(follow_up["recipientsCount"], 1);
    s.until_status(&follow_up["id"], "COMPLETED").await;
    let reached = s.recipients(&follow_up["id"], Some("SENT")).await;
    assert_eq!(reached.len(), 1);
    assert_eq!(reached[0]["contactId"], ravi.as_str());
    let tagged = s
        .data(
            "query($id: ID!) { contact(id: $id) { tags { name } } }",
            json!({ "id": ravi }),
        )
        .await;
    assert_eq!(
        tagged["contact"]["tags"],
        json!([{ "name": "Diwali follow-up" }])
    );

    // Retrying failed recipients sends Meera one more message, and only her.
    let before = s.sent_bodies().len();
    let retried = s
        .data(
            "mutation($id: ID!) { retryFailedRecipients(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(retried["retryFailedRecipients"], 1);
    s.until_status(&id, "COMPLETED").await;
    let after = s.sent_bodies();
    assert_eq!(after.len(), before + 1);
    assert!(
        after.last().unwrap()["to"]
            .as_str()
            .unwrap()
            .ends_with("919812300002")
    );
}

#[tokio::test]
async fn a_paused_broadcast_sends_nothing_until_resumed_and_progress_is_live() {
    let s = Setup::start("Pause").await;
    s.data(
        "mutation { setSendingLimits(messagingLimit: null, throughputPerSecond: 5) }",
        json!({}),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            s.contact(&format!("Buyer {i}"), &format!("+9198765{i:05}"))
                .await,
        );
    }
    let mut ws = WsClient::connect(&s.app.ws_url()).await;
    ws.init(json!({ "authorization": format!("Bearer {}", s.owner.token), "projectId": s.owner.project_id }))
        .await;
    ws.subscribe(
        "p",
        "subscription { campaignProgress { campaignId status counts { sent queued } } }",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let created = s.create("Slow", &ids, true).await;
    let id = created.data()["createBroadcast"]["id"].clone();
    // At 5 per second, 20 take about 4 seconds: pause after the first second.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let paused = s
        .data(
            "mutation($id: ID!) { pauseCampaign(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(paused["pauseCampaign"]["status"], "PAUSED");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = s.sent_bodies().len();
    assert!(held > 0 && held < 20, "{held} sent before the pause");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.sent_bodies().len(), held, "nothing is sent while paused");
    s.reply(
        "mutation($id: ID!) { pauseCampaign(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await
    .expect_error("CONFLICT");

    s.data(
        "mutation($id: ID!) { resumeCampaign(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await;
    let done = s.until_status(&id, "COMPLETED").await;
    assert_eq!(done["counts"]["sent"], 20);
    assert_eq!(s.sent_bodies().len(), 20, "each recipient once");

    // Progress came live, ending with everything sent.
    let mut last = Value::Null;
    while let Some(Event::Message(m)) = ws.next_within(Duration::from_secs(2)).await {
        last = m["payload"]["data"]["campaignProgress"].clone();
        if last["status"] == "COMPLETED" {
            break;
        }
    }
    assert_eq!(last["campaignId"], id);
    assert_eq!(last["status"], "COMPLETED");
    assert_eq!(last["counts"], json!({ "sent": 20, "queued": 0 }));
}

#[tokio::test]
async fn a_broadcast_the_wallet_cannot_pay_for_is_refused_with_the_figures() {
    let s = Setup::start("Wallet").await;
    // Trial credits of 100 INR pay for 115 marketing messages (0.8631 each), so the
    // estimate refuses 200 up front, with the figures.
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(
            s.contact(&format!("Buyer {i}"), &format!("+9198700{i:05}"))
                .await,
        );
    }
    let refused = s.create("Too big", &ids, true).await;
    refused.expect_error("INSUFFICIENT_CREDITS");
    let details = &refused.body["errors"][0]["extensions"];
    assert_eq!(details["recipients"], 120);
    assert_eq!(details["required"], "103.572");
    assert_eq!(details["balance"], "100");
    assert!(s.sent_bodies().is_empty());
}

#[tokio::test]
async fn a_dispatcher_killed_mid_campaign_sends_no_recipient_twice() {
    use parley_tests::process::ProcessNode;
    let graph = FakeGraph::start().await;
    let shared = Shared::fresh(&Mode::Production).await;
    let url = graph.url.clone();
    // This node serves the API and sends nothing; the campaign is sent by a server process
    // that is killed, then by this node's dispatcher once enabled on a second node.
    let settings = |dispatcher: bool| {
        let url = url.clone();
        move |s: &mut parley_api::Settings| {
            s.whatsapp.graph_url = url;
            s.whatsapp.app_secret = Some(APP_SECRET.into());
            s.whatsapp.verify_token = Some(VERIFY_TOKEN.into());
            s.whatsapp.backoff_base = Duration::from_millis(5);
            s.campaigns.dispatcher = dispatcher;
            s.campaigns.claim_lease = Duration::from_millis(500);
            s.database_max_connections = 20;
        }
    };
    let api = TestApp::spawn_with(Mode::Production, &shared, settings(false)).await;
    let owner = api.sign_up("Crash").await;
    api.connect_fixture_number(&owner).await;
    graph.add_template(json!({
        "id": "991000000000009", "name": "crash_offer", "language": "en",
        "status": "APPROVED", "category": "UTILITY", "rejected_reason": "NONE",
        "parameter_format": "POSITIONAL",
        "components": [{ "type": "BODY", "text": "Your order is on its way." }],
    }));
    let gql = |q: &'static str, v: Value| {
        let (api, owner) = (&api, &owner);
        async move { api.gql(q).as_member(owner).vars(v).data().await }
    };
    gql("mutation { syncTemplates { imported } }", json!({})).await;
    let template = gql("{ templates(first: 5) { nodes { id } } }", json!({})).await["templates"]
        ["nodes"][0]["id"]
        .clone();
    gql(
        "mutation { setSendingLimits(messagingLimit: null, throughputPerSecond: 40) }",
        json!({}),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..80 {
        let created = gql(
            "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
            json!({ "input": { "name": format!("C{i}"), "phone": format!("+9198111{i:05}") } }),
        )
        .await;
        ids.push(created["createContact"]["id"].clone());
    }
    // Meta answers slowly, so that sends are in flight when the process dies.
    graph.set_delay_ms(40);
    let sender = ProcessNode::start_with(
        &shared,
        &[
            ("WHATSAPP_GRAPH_URL", graph.url.clone()),
            ("WHATSAPP_APP_SECRET", APP_SECRET.into()),
            ("CAMPAIGN_CLAIM_LEASE_MS", "500".into()),
        ],
    )
    .await;
    let created = gql(
        "mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id } }",
        json!({ "input": { "name": "Crash", "templateId": template,
                           "audience": { "contactIds": ids }, "sendNow": true } }),
    )
    .await;
    let id = created["createBroadcast"]["id"].clone();
    eventually(Duration::from_secs(20), "the first sends", || async {
        graph.requests().len() > 20
    })
    .await;
    sender.kill().await;
    let at_kill = graph.requests().len();
    assert!(at_kill < 80, "killed mid-campaign ({at_kill} sends)");

    // Another node takes over once the dead node's claims expire.
    let _rescuer = TestApp::spawn_with(Mode::Production, &shared, settings(true)).await;
    eventually(
        Duration::from_secs(30),
        "the campaign completes",
        || async { gql(CAMPAIGN, json!({ "id": id })).await["campaign"]["status"] == "COMPLETED" },
    )
    .await;
    let counts = gql(CAMPAIGN, json!({ "id": id })).await["campaign"]["counts"].clone();
    let mut per_number = std::collections::HashMap::<String, usize>::new();
    for r in graph
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/messages"))
    {
        *per_number
            .entry(r.body["to"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(
        per_number.values().all(|&n| n == 1),
        "a recipient got two messages: {per_number:?}"
    );
    let sent = counts["sent"].as_i64().unwrap();
    let interrupted = counts["interrupted"].as_i64().unwrap();
    assert_eq!(sent + interrupted, 80, "{counts}");
    // Every sent recipient got its message; an interrupted one got it at most once.
    let reached = per_number.len() as i64;
    assert!(
        sent <= reached && reached <= sent + interrupted,
        "{counts} {reached}"
    );
}

#[tokio::test]
async fn clicks_on_tracked_buttons_are_counted_once_on_the_pro_plan() {
    let graph = FakeGraph::start().await;
    let shared = Shared::fresh(&Mode::Production).await;
    let url = graph.url.clone();
    let app = TestApp::spawn_with(Mode::Production, &shared, move |s| {
        s.whatsapp.graph_url = url;
        s.whatsapp.app_secret = Some(APP_SECRET.into());
        s.whatsapp.backoff_base = Duration::from_millis(5);
        s.public_url = "https://go.parley.test".into();
    })
    .await;
    let owner = app.sign_up("Clicks").await;
    app.connect_fixture_number(&owner).await;
    let gql = |q: &'static str, v: Value| {
        let (app, owner) = (&app, &owner);
        async move { app.gql(q).as_member(owner).vars(v).data().await }
    };
    let invoice = gql(
        "mutation { subscribe(plan: \"PRO\", interval: \"MONTHLY\") { id } }",
        json!({}),
    )
    .await["subscribe"]["id"]
        .clone();
    gql(
        "mutation($id: ID!) { recordPayment(invoiceId: $id, reference: \"x\") { status } }",
        json!({ "id": invoice }),
    )
    .await;
    graph.add_template(json!({
        "id": "991000000000011", "name": "sale_link", "language": "en",
        "status": "APPROVED", "category": "MARKETING", "rejected_reason": "NONE",
        "parameter_format": "POSITIONAL",
        "components": [
            { "type": "BODY", "text": "Our sale is on." },
            { "type": "BUTTONS", "buttons": [{ "type": "URL", "text": "Shop",
              "url": "https://go.parley.test/r/{{1}}",
              "example": ["https://go.parley.test/r/abc"] }] },
        ],
    }));
    gql("mutation { syncTemplates { imported } }", json!({})).await;
    let template = gql("{ templates(first: 5) { nodes { id } } }", json!({})).await["templates"]
        ["nodes"][0]["id"]
        .clone();
    let asha = gql(
        "mutation { createContact(input: { name: \"Asha\", phone: \"+919812345678\" }) { id } }",
        json!({}),
    )
    .await["createContact"]["id"]
        .clone();
    let created = gql(
        "mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id } }",
        json!({ "input": { "name": "Sale", "templateId": template,
                           "parameters": [{ "value": "https://shop.example/sale?c=1" }],
                           "audience": { "contactIds": [asha] }, "sendNow": true } }),
    )
    .await;
    let id = created["createBroadcast"]["id"].clone();
    eventually(Duration::from_secs(10), "the send", || async {
        gql(CAMPAIGN, json!({ "id": id })).await["campaign"]["status"] == "COMPLETED"
    })
    .await;
    let sent = graph
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/messages"))
        .unwrap();
    let button = sent.body["template"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sub_type"] == "url")
        .unwrap()
        .clone();
    let token = button["parameters"][0]["text"].as_str().unwrap().to_owned();
    assert_ne!(
        token, "https://shop.example/sale?c=1",
        "the suffix is a token"
    );

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..2 {
        let answer = client
            .get(app.url(&format!("/r/{token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::FOUND);
        assert_eq!(
            answer.headers()["location"],
            "https://shop.example/sale?c=1"
        );
    }
    let unknown = client.get(app.url("/r/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let counts = gql(
        "query($id: ID!) { campaign(id: $id) { counts { clicked } recipients(first: 5, status: CLICKED) { edges { node { clickedAt } } } } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        counts["campaign"]["counts"]["clicked"], 1,
        "two clicks, one clicker"
    );
    assert_eq!(
        counts["campaign"]["recipients"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_scheduled_broadcast_starts_on_time_on_a_node_started_after_it_was_scheduled() {
    use parley_api::clock::Clock;
    let graph = FakeGraph::start().await;
    let shared = Shared::fresh(&Mode::Production).await;
    let clock = Clock::default();
    let node = |clock: Clock| {
        let url = graph.url.clone();
        move |s: &mut parley_api::Settings| {
            s.clock = clock;
            s.whatsapp.graph_url = url;
            s.whatsapp.app_secret = Some(APP_SECRET.into());
            s.whatsapp.backoff_base = Duration::from_millis(5);
        }
    };
    let first = TestApp::spawn_with(Mode::Production, &shared, node(clock.clone())).await;
    let owner = first.sign_up("Scheduled").await;
    first.connect_fixture_number(&owner).await;
    async fn as_owner(app: &TestApp, owner: &Owner, q: &str, v: Value) -> Value {
        app.gql(q).as_member(owner).vars(v).data().await
    }
    let invoice = as_owner(
        &first,
        &owner,
        "mutation { subscribe(plan: \"PRO\", interval: \"MONTHLY\") { id } }",
        json!({}),
    )
    .await["subscribe"]["id"]
        .clone();
    as_owner(
        &first,
        &owner,
        "mutation($id: ID!) { recordPayment(invoiceId: $id, reference: \"x\") { status } }",
        json!({ "id": invoice }),
    )
    .await;
    graph.add_template(json!({
        "id": "991000000000021", "name": "morning_note", "language": "en",
        "status": "APPROVED", "category": "UTILITY", "rejected_reason": "NONE",
        "parameter_format": "POSITIONAL",
        "components": [{ "type": "BODY", "text": "Good morning." }],
    }));
    as_owner(
        &first,
        &owner,
        "mutation { syncTemplates { imported } }",
        json!({}),
    )
    .await;
    let template = as_owner(
        &first,
        &owner,
        "{ templates(first: 5) { nodes { id } } }",
        json!({}),
    )
    .await["templates"]["nodes"][0]["id"]
        .clone();
    let asha = as_owner(
        &first,
        &owner,
        "mutation { createContact(input: { name: \"Asha\", phone: \"+919812345678\" }) { id } }",
        json!({}),
    )
    .await["createContact"]["id"]
        .clone();
    let at = clock.now() + chrono::Duration::hours(3);
    let created = as_owner(
        &first,
        &owner,
        "mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id status scheduledAt } }",
        json!({ "input": { "name": "Morning", "templateId": template,
                           "audience": { "contactIds": [asha] },
                           "scheduledAt": at.to_rfc3339() } }),
    )
    .await["createBroadcast"]
        .clone();
    assert_eq!(created["status"], "SCHEDULED");
    // More than 2 months ahead is refused.
    first
        .gql("mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id } }")
        .as_member(&owner)
        .vars(json!({ "input": { "name": "Far", "templateId": template,
                           "audience": { "contactIds": [asha] },
                           "scheduledAt": (clock.now() + chrono::Duration::days(70)).to_rfc3339() } }))
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
    first.app.stop().await.unwrap();

    // A node started later, after the time has come, starts it.
    let second = TestApp::spawn_with(Mode::Production, &shared, node(clock.clone())).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        graph
            .requests()
            .iter()
            .all(|r| !r.path.ends_with("/messages")),
        "not before its time"
    );
    clock.advance(Duration::from_secs(3 * 3600 + 60));
    eventually(Duration::from_secs(10), "the scheduled send", || async {
        as_owner(&second, &owner, CAMPAIGN, json!({ "id": created["id"] })).await["campaign"]["status"]
            == "COMPLETED"
    })
    .await;
    assert_eq!(
        graph
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/messages"))
            .count(),
        1
    );
}

#[tokio::test]
async fn an_audience_over_the_messaging_limit_is_refused_with_the_figures() {
    let s = Setup::start("Limit").await;
    s.data(
        "mutation { setSendingLimits(messagingLimit: 250, throughputPerSecond: 80) }",
        json!({}),
    )
    .await;
    s.reply(
        "mutation { setSendingLimits(messagingLimit: 300, throughputPerSecond: 80) }",
        json!({}),
    )
    .await
    .expect_error("BAD_USER_INPUT");
    let mut ids = Vec::new();
    for i in 0..251 {
        ids.push(
            s.contact(&format!("Fan {i}"), &format!("+9198222{i:05}"))
                .await,
        );
    }
    let refused = s.create("Everyone", &ids, true).await;
    refused.expect_error("MESSAGING_LIMIT_EXCEEDED");
    let details = &refused.body["errors"][0]["extensions"];
    assert_eq!(details["recipients"], 251);
    assert_eq!(details["limit"], 250);
    assert_eq!(details["reachedToday"], 0);
    assert_eq!(details["remainingToday"], 250);
    assert!(s.sent_bodies().is_empty(), "nothing was sent");
    // 250 fit, once the wallet can pay for them.
    let invoice = s
        .data(
            "mutation { topUpWallet(amount: \"500\") { id } }",
            json!({}),
        )
        .await["topUpWallet"]["id"]
        .clone();
    s.data(
        "mutation($id: ID!) { recordPayment(invoiceId: $id, reference: \"r\") { status } }",
        json!({ "id": invoice }),
    )
    .await;
    let created = s.create("Most", &ids[..250], true).await;
    assert_eq!(created.data()["createBroadcast"]["recipientsCount"], 250);
}
