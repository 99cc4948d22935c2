//! Billing over the running server: the trial, plan terms and their invoices, cancelling
//! and reactivating, expiry with the credits, the wallet under concurrent charges, the
//! price of each message charged before Meta is called, refunds of failed messages, and
//! live wallet events.

use std::time::Duration;

use parley_api::clock::Clock;
use parley_tests::{
    Mode, Owner, Shared, TestApp, eventually,
    fake_graph::{FakeGraph, meta_error},
    whatsapp::{APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN, inbound_text, status},
    ws::{Event, WsClient},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WALLET: &str = "{ wallet { balance currency lowBalanceThreshold isLow \
     entries(first: 50) { edges { node { seq kind amount balanceAfter messageId invoiceId note } } } } }";
const PLAN: &str = "{ subscriptionPlan { plan interval status periodStart periodEnd \
     cancelAtPeriodEnd scheduling clickTracking membersLimit } }";

struct Billing {
    app: TestApp,
    graph: FakeGraph,
    clock: Clock,
    owner: Owner,
}

impl Billing {
    /// A production server on a clock the test moves, its project connected to the fake
    /// Graph API, with `trial_credits` on the wallet.
    async fn start(name: &str, trial_credits: &str) -> Self {
        Self::start_on(name, trial_credits, Clock::default()).await
    }

    async fn start_on(name: &str, trial_credits: &str, clock: Clock) -> Self {
        let graph = FakeGraph::start().await;
        let shared = Shared::fresh(&Mode::Production).await;
        let url = graph.url.clone();
        let credits = parley_api::billing::pricing::parse_micros(trial_credits).unwrap();
        let test_clock = clock.clone();
        let app = TestApp::spawn_with(Mode::Production, &shared, move |s| {
            s.clock = test_clock;
            s.whatsapp.graph_url = url;
            s.whatsapp.app_secret = Some(APP_SECRET.into());
            s.whatsapp.verify_token = Some(VERIFY_TOKEN.into());
            s.whatsapp.backoff_base = Duration::from_millis(5);
            s.whatsapp.timeout = Duration::from_secs(2);
            s.billing.trial_credits_micros = credits;
            s.billing.sweep_interval = Duration::from_millis(100);
            s.database_max_connections = 20;
        })
        .await;
        let owner = app.sign_up(name).await;
        app.connect_fixture_number(&owner).await;
        Self {
            app,
            graph,
            clock,
            owner,
        }
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

    async fn project_plan(&self) -> Value {
        self.data("{ project { plan } }", json!({})).await["project"]["plan"].clone()
    }

    async fn wallet(&self) -> Value {
        self.data(WALLET, json!({})).await["wallet"].clone()
    }

    async fn plan(&self) -> Value {
        self.data(PLAN, json!({})).await["subscriptionPlan"].clone()
    }

    async fn pay(&self, invoice: &Value) -> Value {
        self.data(
            "mutation($id: ID!) { recordPayment(invoiceId: $id, reference: \"NEFT-123\") \
             { id status paidAt periodStart periodEnd } }",
            json!({ "id": invoice["id"] }),
        )
        .await["recordPayment"]
            .clone()
    }

    async fn top_up(&self, amount: &str) {
        let invoice = self
            .data(
                "mutation($a: String!) { topUpWallet(amount: $a) { id amount credits status } }",
                json!({ "a": amount }),
            )
            .await["topUpWallet"]
            .clone();
        assert_eq!(invoice["status"], "PENDING");
        assert_eq!(self.pay(&invoice).await["status"], "PAID");
    }

    /// An approved marketing template (imported from WhatsApp Manager) and its id.
    async fn marketing_template(&self) -> String {
        self.graph.add_template(json!({
            "id": "881000000000001", "name": "spring_offer", "language": "en",
            "status": "APPROVED", "category": "MARKETING", "rejected_reason": "NONE",
            "parameter_format": "POSITIONAL",
            "components": [{ "type": "BODY", "text": "Our spring offer is here." }],
        }));
        self.graph.add_template(json!({
            "id": "881000000000002", "name": "order_update", "language": "en",
            "status": "APPROVED", "category": "UTILITY", "rejected_reason": "NONE",
            "parameter_format": "POSITIONAL",
            "components": [{ "type": "BODY", "text": "Your order has shipped." }],
        }));
        self.data("mutation { syncTemplates { imported } }", json!({}))
            .await;
        let list = self
            .data("{ templates(first: 10) { nodes { id name } } }", json!({}))
            .await;
        list["templates"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "spring_offer")
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .unwrap()
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

    async fn send_template(&self, contact: &str, template: &str) -> parley_tests::client::Reply {
        self.reply(
            "mutation($input: SendTemplateInput!) { sendTemplateMessage(input: $input) { id status } }",
            json!({ "input": { "contactId": contact, "templateId": template, "parameters": [] } }),
        )
        .await
    }

    fn sends(&self) -> usize {
        self.graph
            .requests()
            .iter()
            .filter(|r| {
                r.method == "POST" && r.path == format!("/v23.0/{PHONE_NUMBER_ID}/messages")
            })
            .count()
    }
}

fn entries(wallet: &Value) -> Vec<Value> {
    wallet["entries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

#[tokio::test]
async fn a_new_project_is_on_a_trial_with_its_credits_in_the_ledger() {
    let b = Billing::start("Trial", "100").await;
    let plan = b.plan().await;
    assert_eq!(plan["plan"], "FREE_TRIAL");
    assert_eq!(plan["status"], "TRIALING");
    assert_eq!(plan["interval"], "TRIAL");
    assert_eq!(plan["scheduling"], false);
    assert_eq!(plan["membersLimit"], 5);
    let start: chrono::DateTime<chrono::Utc> =
        plan["periodStart"].as_str().unwrap().parse().unwrap();
    let end: chrono::DateTime<chrono::Utc> = plan["periodEnd"].as_str().unwrap().parse().unwrap();
    assert_eq!(end - start, chrono::Duration::days(14));

    let wallet = b.wallet().await;
    assert_eq!(wallet["balance"], "100");
    assert_eq!(
        wallet["currency"], "INR",
        "an Indian project pays in rupees"
    );
    let ledger = entries(&wallet);
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["kind"], "TRIAL_CREDIT");
    assert_eq!(ledger[0]["amount"], "100");
    assert_eq!(ledger[0]["balanceAfter"], "100");
}

#[tokio::test]
async fn a_paid_term_cancelled_works_to_its_end_then_expires_with_the_credits() {
    let b = Billing::start("Terms", "100").await;
    let order = "mutation { subscribe(plan: \"PRO\", interval: \"MONTHLY\") { id amount currency status kind } }";
    let invoice = b.data(order, json!({})).await["subscribe"].clone();
    assert_eq!(invoice["amount"], "5000");
    assert_eq!(invoice["currency"], "INR");
    assert_eq!(invoice["status"], "PENDING");

    // Unpaid: no second order, and no cancelling.
    b.reply(order, json!({}))
        .await
        .expect_error("PAYMENT_PENDING");
    b.reply("mutation { cancelSubscription { status } }", json!({}))
        .await
        .expect_error("PAYMENT_PENDING");

    let paid = b.pay(&invoice).await;
    assert_eq!(paid["status"], "PAID");
    let plan = b.plan().await;
    assert_eq!(plan["plan"], "PRO");
    assert_eq!(plan["status"], "ACTIVE");
    assert_eq!(plan["interval"], "MONTHLY");
    assert_eq!(plan["scheduling"], true);
    assert_eq!(plan["membersLimit"], Value::Null);
    assert_eq!(plan["periodEnd"], paid["periodEnd"]);
    assert_eq!(b.project_plan().await, "PRO");
    // A second payment of the same invoice is refused.
    b.reply(
        "mutation($id: ID!) { recordPayment(invoiceId: $id, reference: \"again\") { id } }",
        json!({ "id": invoice["id"] }),
    )
    .await
    .expect_error("CONFLICT");

    let cancelled = b
        .data(
            "mutation { cancelSubscription { status cancelAtPeriodEnd periodEnd } }",
            json!({}),
        )
        .await["cancelSubscription"]
        .clone();
    assert_eq!(
        cancelled["status"], "ACTIVE",
        "prepaid: it works to the end of the term"
    );
    assert_eq!(cancelled["cancelAtPeriodEnd"], true);
    let reactivated = b
        .data(
            "mutation { reactivateSubscription { subscription { status cancelAtPeriodEnd } invoice { id } } }",
            json!({}),
        )
        .await["reactivateSubscription"]
        .clone();
    assert_eq!(reactivated["subscription"]["cancelAtPeriodEnd"], false);
    assert_eq!(reactivated["invoice"], Value::Null);
    b.data("mutation { cancelSubscription { status } }", json!({}))
        .await;

    // A day before the end it still works; after the end it has expired.
    b.clock.advance(Duration::from_secs(29 * 24 * 3600));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(b.plan().await["status"], "ACTIVE");
    b.clock.advance(Duration::from_secs(3 * 24 * 3600));
    eventually(Duration::from_secs(10), "the term expires", || async {
        b.plan().await["status"] == "EXPIRED"
    })
    .await;
    let plan = b.plan().await;
    assert_eq!(plan["plan"], "PRO", "the subscription keeps what it was");
    assert_eq!(
        b.project_plan().await,
        "FREE_TRIAL",
        "back to the trial's limits"
    );
    let wallet = b.wallet().await;
    assert_eq!(wallet["balance"], "0", "credits expire with the plan");
    let ledger = entries(&wallet);
    assert_eq!(ledger[0]["kind"], "EXPIRY");
    assert_eq!(ledger[0]["amount"], "-100");

    // After expiry, reactivating orders the same plan again.
    let again = b
        .data(
            "mutation { reactivateSubscription { invoice { amount status } } }",
            json!({}),
        )
        .await["reactivateSubscription"]
        .clone();
    assert_eq!(
        again["invoice"],
        json!({ "amount": "5000", "status": "PENDING" })
    );
}

#[tokio::test]
async fn sends_are_charged_before_meta_is_called_and_refused_when_the_wallet_cannot_pay() {
    let b = Billing::start("Charges", "1").await;
    let template = b.marketing_template().await;
    let asha = b.contact("Asha", "+919812345678").await;

    // July 2025 onwards: a marketing template to India costs 0.8631 INR per message.
    let sent = b.send_template(&asha, &template).await;
    assert_eq!(sent.data()["sendTemplateMessage"]["status"], "ACCEPTED");
    let wallet = b.wallet().await;
    assert_eq!(wallet["balance"], "0.1369");
    let charge = &entries(&wallet)[0];
    assert_eq!(charge["kind"], "CHARGE");
    assert_eq!(charge["amount"], "-0.8631");
    assert_eq!(
        charge["messageId"],
        sent.data()["sendTemplateMessage"]["id"]
    );
    assert_eq!(b.sends(), 1);

    // The next one cannot be paid: refused with the figures, and Meta never hears of it.
    let refused = b.send_template(&asha, &template).await;
    refused.expect_error("INSUFFICIENT_CREDITS");
    let error = &refused.body["errors"][0]["extensions"];
    assert_eq!(error["balance"], "0.1369");
    assert_eq!(error["required"], "0.8631");
    assert_eq!(error["currency"], "INR");
    assert_eq!(b.sends(), 1);
    assert_eq!(b.wallet().await["balance"], "0.1369", "nothing was taken");

    // Free-form replies inside the customer-service window are free: they still go.
    let at = b.clock.now().timestamp();
    assert_eq!(
        b.app
            .post_webhook(&inbound_text(
                "wamid.billing.in.1",
                "919812345678",
                "Asha",
                "Hi",
                at
            ))
            .await,
        StatusCode::OK
    );
    b.app.webhooks_settled().await;
    let reply = b
        .reply(
            "mutation($c: ID!) { sendTextMessage(contactId: $c, text: \"Hello!\") { status } }",
            json!({ "c": asha }),
        )
        .await;
    assert_eq!(reply.data()["sendTextMessage"]["status"], "ACCEPTED");
    assert_eq!(b.wallet().await["balance"], "0.1369");
}

#[tokio::test]
async fn a_message_meta_refuses_gets_its_charge_back() {
    let b = Billing::start("Refunds", "10").await;
    let template = b.marketing_template().await;
    let ravi = b.contact("Ravi", "+919812300000").await;
    b.graph.fail_next(
        "/messages",
        400,
        meta_error(131026, "Message undeliverable"),
    );
    b.send_template(&ravi, &template)
        .await
        .expect_error("PROVIDER_REJECTED");
    let wallet = b.wallet().await;
    assert_eq!(wallet["balance"], "10");
    let kinds: Vec<Value> = entries(&wallet).iter().map(|e| e["kind"].clone()).collect();
    assert_eq!(
        kinds,
        vec![json!("REFUND"), json!("CHARGE"), json!("TRIAL_CREDIT")]
    );

    // Accepted, then failed by a status webhook: refunded once, however often it comes.
    let sent = b.send_template(&ravi, &template).await;
    let id = sent.data()["sendTemplateMessage"]["id"].clone();
    assert_eq!(b.wallet().await["balance"], "9.1369");
    let wamid = b
        .data(
            "query($id: ID!) { message(id: $id) { waMessageId } }",
            json!({ "id": id }),
        )
        .await["message"]["waMessageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut failed: Value = serde_json::from_slice(&status(
        &wamid,
        "failed",
        "919812300000",
        b.clock.now().timestamp(),
    ))
    .unwrap();
    failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] =
        json!([{ "code": 131026, "title": "Message undeliverable" }]);
    let body = failed.to_string().into_bytes();
    for _ in 0..3 {
        assert_eq!(b.app.post_webhook(&body).await, StatusCode::OK);
    }
    b.app.webhooks_settled().await;
    let wallet = b.wallet().await;
    assert_eq!(wallet["balance"], "10");
    let refunds = entries(&wallet)
        .iter()
        .filter(|e| e["kind"] == "REFUND")
        .count();
    assert_eq!(refunds, 2);
}

#[tokio::test]
async fn concurrent_charges_never_overdraw_the_wallet() {
    // 10 INR pays for 11 marketing messages at 0.8631 (9.4941), not 12.
    let b = Billing::start("Hammer", "10").await;
    let template = b.marketing_template().await;
    let mut contacts = Vec::new();
    for i in 0..30 {
        contacts.push(
            b.contact(&format!("Buyer {i}"), &format!("+9198765{i:05}"))
                .await,
        );
    }
    let sends = contacts.iter().map(|c| b.send_template(c, &template));
    let replies = futures::future::join_all(sends).await;
    let mut accepted = 0;
    for reply in &replies {
        match reply.error_code() {
            None => accepted += 1,
            Some("INSUFFICIENT_CREDITS") => {}
            // The embedded database may ask for a retry; PostgreSQL here should not.
            Some(other) => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    assert_eq!(accepted, 11);
    let wallet = b.wallet().await;
    assert_eq!(wallet["balance"], "0.5059");
    let ledger = entries(&wallet);
    assert_eq!(ledger.len(), 12);
    // A running balance: each entry's balance is the previous one plus its amount.
    let micros =
        |v: &Value| parley_api::billing::pricing::parse_signed_micros(v.as_str().unwrap()).unwrap();
    for pair in ledger.windows(2) {
        assert_eq!(
            micros(&pair[1]["balanceAfter"]) + micros(&pair[0]["amount"]),
            micros(&pair[0]["balanceAfter"])
        );
        assert_eq!(
            pair[0]["seq"].as_i64().unwrap(),
            pair[1]["seq"].as_i64().unwrap() + 1
        );
        assert!(micros(&pair[0]["balanceAfter"]) >= 0);
    }
    assert_eq!(b.sends(), 11);
}

#[tokio::test]
async fn wallet_events_announce_changes_and_the_low_balance_alert_once() {
    let b = Billing::start("Alerts", "2").await;
    let template = b.marketing_template().await;
    let asha = b.contact("Asha", "+919812345678").await;
    b.data(
        "mutation { setLowBalanceThreshold(amount: \"1\") { lowBalanceThreshold } }",
        json!({}),
    )
    .await;

    let mut ws = WsClient::connect(&b.app.ws_url()).await;
    ws.init(json!({ "authorization": format!("Bearer {}", b.owner.token), "projectId": b.owner.project_id }))
        .await;
    ws.subscribe(
        "w",
        "subscription { walletEvents { kind seq entryKind amount balance currency } }",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 2 → 1.1369 (still above 1): a change; → 0.2738: a change and the alert.
    b.send_template(&asha, &template).await.data();
    b.send_template(&asha, &template).await.data();
    let mut seen = Vec::new();
    while let Some(Event::Message(m)) = ws.next_within(Duration::from_secs(5)).await {
        let event = m["payload"]["data"]["walletEvents"].clone();
        seen.push((event["kind"].clone(), event["balance"].clone()));
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            (json!("WALLET_CHANGED"), json!("1.1369")),
            (json!("WALLET_CHANGED"), json!("0.2738")),
            (json!("LOW_BALANCE"), json!("0.2738")),
        ]
    );
    // A top-up is announced too.
    b.top_up("500").await;
    let Some(Event::Message(m)) = ws.next_within(Duration::from_secs(5)).await else {
        panic!("no event for the top-up");
    };
    assert_eq!(m["payload"]["data"]["walletEvents"]["entryKind"], "TOP_UP");
    assert_eq!(m["payload"]["data"]["walletEvents"]["balance"], "500.2738");
}

#[tokio::test]
async fn money_is_handled_by_owners_and_finance_and_read_by_managers() {
    let b = Billing::start("Roles", "5").await;
    let (finance, _) = b.app.add_member(&b.owner, "FINANCE").await;
    let (manager, _) = b.app.add_member(&b.owner, "MANAGER").await;
    let (agent, _) = b.app.add_member(&b.owner, "AGENT").await;
    let top_up = "mutation { topUpWallet(amount: \"50\") { id } }";
    let invoice = b.app.gql(top_up).as_member(&finance).data().await["topUpWallet"].clone();
    b.app
        .gql(top_up)
        .as_member(&manager)
        .send()
        .await
        .expect_error("FORBIDDEN");
    b.app.gql(WALLET).as_member(&manager).data().await;
    b.app
        .gql(WALLET)
        .as_member(&agent)
        .send()
        .await
        .expect_error("FORBIDDEN");
    b.app
        .gql("mutation { subscribe(plan: \"BASIC\", interval: \"YEARLY\") { id } }")
        .as_member(&finance)
        .send()
        .await
        .expect_error("FORBIDDEN");
    b.app
        .gql("mutation($id: ID!) { recordPayment(invoiceId: $id, reference: \"r\") { status } }")
        .as_member(&finance)
        .vars(json!({ "id": invoice["id"] }))
        .data()
        .await;
    assert_eq!(b.wallet().await["balance"], "55");

    // Another project's invoice is not found.
    let other = b.app.sign_up("Other").await;
    b.app
        .gql("mutation($id: ID!) { recordPayment(invoiceId: $id, reference: \"r\") { status } }")
        .as_member(&other)
        .vars(json!({ "id": invoice["id"] }))
        .send()
        .await
        .expect_error("NOT_FOUND");
}

#[tokio::test]
async fn the_rate_card_is_priced_in_the_project_currency() {
    let b = Billing::start("Rates", "5").await;
    let rates = b
        .data(
            "query($at: DateTime) { rateCard(at: $at) { country category price currency era } }",
            json!({ "at": "2024-12-15T00:00:00Z" }),
        )
        .await["rateCard"]
        .clone();
    let price = |country: &str, category: &str| {
        rates
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["country"] == country && r["category"] == category)
            .map(|r| r["price"].clone())
    };
    assert_eq!(price("IN", "MARKETING"), Some(json!("0.7846")));
    // US rows are in dollars: converted at 83 INR per USD (0.025 × 83).
    assert_eq!(price("US", "MARKETING"), Some(json!("2.075")));
    // AU has no 2024 row: the 2023 row stays in force (0.0737 × 83).
    assert_eq!(price("AU", "MARKETING"), Some(json!("6.1171")));
    let eras = b
        .data(
            "{ pricingEras { name model freeServiceConversationsPerMonth serviceFree } }",
            json!({}),
        )
        .await;
    assert_eq!(
        eras["pricingEras"],
        json!([
            { "name": "cbp_2023", "model": "CONVERSATION", "freeServiceConversationsPerMonth": 1000, "serviceFree": false },
            { "name": "cbp_free_service_2024", "model": "CONVERSATION", "freeServiceConversationsPerMonth": 0, "serviceFree": true },
            { "name": "pmp_2025", "model": "PER_MESSAGE", "freeServiceConversationsPerMonth": 0, "serviceFree": true },
        ])
    );
}

#[tokio::test]
async fn meta_s_own_pricing_is_kept_beside_ours() {
    let b = Billing::start("Beside", "10").await;
    let template = b.marketing_template().await;
    let asha = b.contact("Asha", "+919812345678").await;
    // The fixture's delivered status (per-message pricing) is for this wamid.
    b.graph
        .queue_message_ids(&["wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgSQ0FNUEFJR04wMDAwMDAwMDAxAA=="]);
    let sent = b.send_template(&asha, &template).await;
    let id = sent.data()["sendTemplateMessage"]["id"].clone();
    let charge = "query($id: ID!) { message(id: $id) { charge { era model category country \
         openedConversation billable freeReason amount currency refundedAt metaPricing } } }";
    let before = b.data(charge, json!({ "id": id })).await["message"]["charge"].clone();
    assert_eq!(
        before,
        json!({
            "era": "pmp_2025", "model": "PER_MESSAGE", "category": "MARKETING", "country": "IN",
            "openedConversation": false, "billable": true, "freeReason": null,
            "amount": "0.8631", "currency": "INR", "refundedAt": null, "metaPricing": null,
        })
    );
    let body = parley_tests::whatsapp::fixture("status-delivered-pmp.json");
    assert_eq!(b.app.post_webhook(&body).await, StatusCode::OK);
    b.app.webhooks_settled().await;
    let after = b.data(charge, json!({ "id": id })).await["message"]["charge"].clone();
    assert_eq!(
        after["metaPricing"]["pricing"],
        json!({ "billable": true, "pricing_model": "PMP", "category": "marketing", "type": "regular" })
    );
    assert_eq!(after["amount"], "0.8631", "ours is unchanged");

    // Agents do not see what messages cost.
    let (agent, _) = b.app.add_member(&b.owner, "AGENT").await;
    b.app
        .gql(charge)
        .as_member(&agent)
        .vars(json!({ "id": id }))
        .send()
        .await
        .expect_error("FORBIDDEN");
}

/// `from` writes in now (by the server's clock); with `referral`, from a click-to-WhatsApp ad.
async fn writes_in(b: &Billing, wamid: &str, from: &str, referral: bool) {
    let at = b.clock.now().timestamp();
    let mut body: Value =
        serde_json::from_slice(&inbound_text(wamid, from, "User", "Hello", at)).unwrap();
    if referral {
        body["entry"][0]["changes"][0]["value"]["messages"][0]["referral"] = json!({
            "source_url": "https://fb.me/ad", "source_type": "ad", "source_id": "120200000001",
            "headline": "Spring offer", "ctwa_clid": "clid-1",
        });
    }
    assert_eq!(
        b.app.post_webhook(body.to_string().as_bytes()).await,
        StatusCode::OK
    );
    b.app.webhooks_settled().await;
}

async fn utility_template(b: &Billing) -> String {
    let list = b
        .data("{ templates(first: 10) { nodes { id name } } }", json!({}))
        .await;
    list["templates"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "order_update")
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .unwrap()
}

async fn charge_of(b: &Billing, reply: parley_tests::client::Reply) -> Value {
    let id = reply.data()["sendTemplateMessage"]["id"].clone();
    charge_by_id(b, id).await
}

async fn charge_by_id(b: &Billing, id: Value) -> Value {
    let q = "query($id: ID!) { message(id: $id) { charge { era category openedConversation \
             billable freeReason amount } } }";
    b.data(q, json!({ "id": id })).await["message"]["charge"].clone()
}

fn charged(era: &str, category: &str, opened: bool, reason: Option<&str>, amount: &str) -> Value {
    json!({
        "era": era, "category": category, "openedConversation": opened,
        "billable": reason.is_none(), "freeReason": reason, "amount": amount,
    })
}

#[tokio::test]
async fn conversations_are_priced_from_the_database_across_the_november_2024_boundary() {
    let start = chrono::DateTime::parse_from_rfc3339("2024-10-31T22:00:00Z")
        .unwrap()
        .to_utc();
    let b = Billing::start_on("Eras", "100", Clock::starting_at(start)).await;
    let marketing = b.marketing_template().await;
    let utility = utility_template(&b).await;
    let asha = b.contact("Asha", "+919812345678").await;
    writes_in(&b, "wamid.era.asha.1", "919812345678", false).await;

    // 31 Oct, 22:00: a marketing conversation opens at the 2023 Indian price.
    let first = charge_of(&b, b.send_template(&asha, &marketing).await).await;
    assert_eq!(
        first,
        charged("cbp_2023", "MARKETING", true, None, "0.7265")
    );
    // Another marketing template rides in it; a utility one opens its own.
    let second = charge_of(&b, b.send_template(&asha, &marketing).await).await;
    assert_eq!(
        second,
        charged(
            "cbp_2023",
            "MARKETING",
            false,
            Some("CONVERSATION_OPEN"),
            "0"
        )
    );
    let third = charge_of(&b, b.send_template(&asha, &utility).await).await;
    assert_eq!(third, charged("cbp_2023", "UTILITY", true, None, "0.3082"));
    // A free-form reply while conversations are open opens nothing.
    let reply = b
        .reply(
            "mutation($c: ID!) { sendTextMessage(contactId: $c, text: \"Thanks\") { id } }",
            json!({ "c": asha }),
        )
        .await;
    let reply_charge = charge_by_id(&b, reply.data()["sendTextMessage"]["id"].clone()).await;
    assert_eq!(
        reply_charge,
        charged("cbp_2023", "SERVICE", false, Some("CONVERSATION_OPEN"), "0")
    );

    // Ravi writes; the reply opens a service conversation, one of the month's free 1,000.
    let ravi = b.contact("Ravi", "+919812311111").await;
    writes_in(&b, "wamid.era.ravi.1", "919812311111", false).await;
    let service = b
        .reply(
            "mutation($c: ID!) { sendTextMessage(contactId: $c, text: \"Hi\") { id } }",
            json!({ "c": ravi }),
        )
        .await;
    let service = charge_by_id(&b, service.data()["sendTextMessage"]["id"].clone()).await;
    assert_eq!(
        service,
        charged("cbp_2023", "SERVICE", true, Some("FREE_TIER"), "0")
    );

    // 1 Nov, 00:30, a new era: Asha's marketing conversation (opened and paid on 31 Oct)
    // still covers her.
    b.clock.advance(Duration::from_secs(150 * 60));
    let next_day = charge_of(&b, b.send_template(&asha, &marketing).await).await;
    assert_eq!(
        next_day,
        charged(
            "cbp_free_service_2024",
            "MARKETING",
            false,
            Some("CONVERSATION_OPEN"),
            "0"
        )
    );
    // Meera, new on 1 Nov: a new marketing conversation at the November price, and her
    // service conversation is free in the new era.
    let meera = b.contact("Meera", "+919812322222").await;
    writes_in(&b, "wamid.era.meera.1", "919812322222", false).await;
    let reply = b
        .reply(
            "mutation($c: ID!) { sendTextMessage(contactId: $c, text: \"Hi\") { id } }",
            json!({ "c": meera }),
        )
        .await;
    let reply = charge_by_id(&b, reply.data()["sendTextMessage"]["id"].clone()).await;
    assert_eq!(
        reply,
        charged(
            "cbp_free_service_2024",
            "SERVICE",
            true,
            Some("SERVICE_FREE"),
            "0"
        )
    );
    let offer = charge_of(&b, b.send_template(&meera, &marketing).await).await;
    assert_eq!(
        offer,
        charged("cbp_free_service_2024", "MARKETING", true, None, "0.7846")
    );

    // Kiran comes from an ad: answered within 24 hours, 72 hours of free messages.
    let kiran = b.contact("Kiran", "+919812333333").await;
    writes_in(&b, "wamid.era.kiran.1", "919812333333", true).await;
    let opened = charge_of(&b, b.send_template(&kiran, &marketing).await).await;
    assert_eq!(
        opened,
        charged(
            "cbp_free_service_2024",
            "MARKETING",
            true,
            Some("FREE_ENTRY_POINT"),
            "0"
        )
    );
    b.clock.advance(Duration::from_secs(48 * 3600));
    let within = charge_of(&b, b.send_template(&kiran, &utility).await).await;
    assert_eq!(
        within,
        charged(
            "cbp_free_service_2024",
            "UTILITY",
            false,
            Some("FREE_ENTRY_POINT"),
            "0"
        )
    );
    b.clock.advance(Duration::from_secs(25 * 3600));
    let after = charge_of(&b, b.send_template(&kiran, &utility).await).await;
    assert_eq!(
        after,
        charged("cbp_free_service_2024", "UTILITY", true, None, "0.115")
    );

    // 100 − 0.7265 − 0.3082 − 0.7846 − 0.115
    assert_eq!(b.wallet().await["balance"], "98.0657");
}

#[tokio::test]
async fn finance_reads_usage_the_statement_and_the_reconciliation_from_clickhouse() {
    let b = Billing::start("Reports", "10").await;
    let template = b.marketing_template().await;
    let asha = b.contact("Asha", "+919812345678").await;
    let sam = b.contact("Sam", "+14155550123").await;
    b.graph
        .queue_message_ids(&["wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgSQ0FNUEFJR04wMDAwMDAwMDAxAA=="]);
    b.send_template(&asha, &template).await.data();
    b.send_template(&sam, &template).await.data();
    b.graph.fail_next(
        "/messages",
        400,
        meta_error(131026, "Message undeliverable"),
    );
    b.send_template(&asha, &template)
        .await
        .expect_error("PROVIDER_REJECTED");
    // Meta prices Asha's first message as we did.
    let body = parley_tests::whatsapp::fixture("status-delivered-pmp.json");
    assert_eq!(b.app.post_webhook(&body).await, StatusCode::OK);
    b.app.webhooks_settled().await;

    let (finance, _) = b.app.add_member(&b.owner, "FINANCE").await;
    let now = b.clock.now();
    let range = json!({
        "from": (now - chrono::Duration::days(1)).to_rfc3339(),
        "to": (now + chrono::Duration::days(1)).to_rfc3339(),
    });
    let usage = "query($from: DateTime!, $to: DateTime!) { usageReport(from: $from, to: $to) { \
         rows { model category country currency messages billableMessages freeMessages amount } csv } }";
    let report = |query: &'static str| {
        let app = &b.app;
        let finance = &finance;
        let range = range.clone();
        async move { app.gql(query).as_member(finance).vars(range).data().await }
    };
    let expected_usage = json!([
        { "model": "PER_MESSAGE", "category": "MARKETING", "country": "IN", "currency": "INR",
          "messages": 1, "billableMessages": 1, "freeMessages": 0, "amount": "0.8631" },
        // 0.025 USD at 83 INR per USD.
        { "model": "PER_MESSAGE", "category": "MARKETING", "country": "US", "currency": "INR",
          "messages": 1, "billableMessages": 1, "freeMessages": 0, "amount": "2.075" },
    ]);
    // Events reach ClickHouse within a second or so, the refund possibly in a later batch.
    eventually(Duration::from_secs(15), "the usage report", || async {
        report(usage).await["usageReport"]["rows"] == expected_usage
    })
    .await;
    let data = report(usage).await;
    assert_eq!(
        data["usageReport"]["rows"], expected_usage,
        "the refunded message nets out"
    );
    let csv = data["usageReport"]["csv"].as_str().unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("2.075"), "{csv}");

    let statement = report(
        "query($from: DateTime!, $to: DateTime!) { walletStatement(from: $from, to: $to) { \
         currency openingBalance closingBalance totals { kind entries amount } entries { seq kind amount balanceAfter } } }",
    )
    .await;
    let statement = &statement["walletStatement"];
    assert_eq!(statement["currency"], "INR");
    assert_eq!(statement["openingBalance"], "0");
    // 10 − 0.8631 − 2.075 (the refunded charge came back).
    assert_eq!(statement["closingBalance"], "7.0619");
    assert_eq!(
        statement["totals"],
        json!([
            { "kind": "CHARGE", "entries": 3, "amount": "-3.8012" },
            { "kind": "REFUND", "entries": 1, "amount": "0.8631" },
            { "kind": "TRIAL_CREDIT", "entries": 1, "amount": "10" },
        ])
    );
    assert_eq!(statement["entries"].as_array().unwrap().len(), 5);

    let reconciliation_query = "query($from: DateTime!, $to: DateTime!) { pricingReconciliation(from: $from, to: $to) { \
         rows { outcome messages amount } differences { outcome category metaCategory } } }";
    // Meta's pricing comes from the status webhook: its event is shipped on its own.
    eventually(
        Duration::from_secs(15),
        "Meta's pricing in the reconciliation",
        || async {
            let rows = report(reconciliation_query).await["pricingReconciliation"]["rows"].clone();
            rows.as_array()
                .is_some_and(|r| r.iter().any(|row| row["outcome"] == "MATCH"))
        },
    )
    .await;
    let reconciliation = report(reconciliation_query).await;
    assert_eq!(
        reconciliation["pricingReconciliation"]["rows"],
        json!([
            { "outcome": "MATCH", "messages": 1, "amount": "0.8631" },
            { "outcome": "NOT_PRICED_BY_META", "messages": 1, "amount": "2.075" },
        ])
    );
    assert_eq!(
        reconciliation["pricingReconciliation"]["differences"],
        json!([{ "outcome": "NOT_PRICED_BY_META", "category": "MARKETING", "metaCategory": null }])
    );

    // Agents do not read finance reports.
    let (agent, _) = b.app.add_member(&b.owner, "AGENT").await;
    b.app
        .gql(usage)
        .as_member(&agent)
        .vars(range.clone())
        .send()
        .await
        .expect_error("FORBIDDEN");
}

#[tokio::test]
async fn a_new_rate_card_replaces_the_old_one_whole_or_not_at_all() {
    use parley_api::billing::book::{ImportError, import};
    let b = Billing::start("Cards", "10").await;
    let state = &b.app.app.state;
    let bad = b"era,effective_from,country,category,currency,price\n\
        pmp_2025,2025-07-01,IN,marketing,INR,0.9000\n\
        pmp_2025,2025-07-01,IN,marketing,INR,abc\n";
    match import(state, bad).await {
        Err(ImportError::Problems(problems)) => {
            let codes: Vec<&str> = problems.iter().map(|p| p.code.as_str()).collect();
            assert!(codes.contains(&"BAD_PRICE"), "{codes:?}");
        }
        _ => panic!("a bad card is refused"),
    }
    let price = || async {
        let rates = b
            .data("{ rateCard { country category price } }", json!({}))
            .await;
        rates["rateCard"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["country"] == "IN" && r["category"] == "MARKETING")
            .map(|r| r["price"].clone())
    };
    assert_eq!(
        price().await,
        Some(json!("0.8631")),
        "nothing of the bad card applied"
    );
    let good = b"era,effective_from,country,category,currency,price\n\
        pmp_2025,2025-07-01,IN,marketing,INR,0.9000\n\
        pmp_2025,2025-07-01,IN,utility,INR,0.1200\n";
    assert!(matches!(import(state, good).await, Ok(2)));
    assert_eq!(price().await, Some(json!("0.9")));
    let template = b.marketing_template().await;
    let asha = b.contact("Asha", "+919812345678").await;
    let charge = charge_of(&b, b.send_template(&asha, &template).await).await;
    assert_eq!(charge["amount"], "0.9");
    // The US rows are gone with the old card: no price, no send.
    let sam = b.contact("Sam", "+14155550123").await;
    let refused = b.send_template(&sam, &template).await;
    refused.expect_error("RATE_UNAVAILABLE");
    assert_eq!(refused.body["errors"][0]["extensions"]["country"], "US");
}

#[tokio::test]
async fn a_term_paid_during_a_running_one_starts_when_it_ends() {
    let b = Billing::start("Renewal", "10").await;
    let order = |plan: &'static str, interval: &'static str| {
        let b = &b;
        async move {
            b.data(
                "mutation($p: String!, $i: String!) { subscribe(plan: $p, interval: $i) { id } }",
                json!({ "p": plan, "i": interval }),
            )
            .await["subscribe"]
                .clone()
        }
    };
    b.pay(&order("PRO", "MONTHLY").await).await;
    let first = b.plan().await;
    let next = b.pay(&order("BASIC", "YEARLY").await).await;
    assert_eq!(
        next["periodStart"], first["periodEnd"],
        "it follows the paid term"
    );
    assert_eq!(
        b.plan().await["plan"],
        "PRO",
        "the running term is untouched"
    );

    b.clock.advance(Duration::from_secs(32 * 24 * 3600));
    eventually(Duration::from_secs(10), "the next term starts", || async {
        b.plan().await["plan"] == "BASIC"
    })
    .await;
    let plan = b.plan().await;
    assert_eq!(plan["status"], "ACTIVE");
    assert_eq!(plan["interval"], "YEARLY");
    assert_eq!(plan["periodStart"], next["periodStart"]);
    assert_eq!(plan["periodEnd"], next["periodEnd"]);
    assert_eq!(b.project_plan().await, "BASIC");
    assert_eq!(
        b.wallet().await["balance"],
        "10",
        "credits stay while a plan runs"
    );
}
