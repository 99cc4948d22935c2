//! API campaigns against the fake Graph API: CRMs trigger a template send per contact with
//! a project API key, over `POST /api/campaigns/send` and the GraphQL `sendApiCampaign`;
//! idempotency keys, refusals and the per-key rate limit.

use std::time::Duration;

use parley_tests::{
    Mode, Owner, Shared, TestApp,
    fake_graph::{FakeGraph, meta_error},
    whatsapp::{APP_SECRET, VERIFY_TOKEN, inbound_text},
};
use reqwest::{StatusCode, header::HeaderMap};
use serde_json::{Value, json};

struct Setup {
    app: TestApp,
    graph: FakeGraph,
    owner: Owner,
    key: String,
    template: String,
}

/// An HTTP answer of the JSON endpoint.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

const CAMPAIGN: &str = "query($id: ID!) { campaign(id: $id) { kind status recipientsCount \
     counts { recipients sent failed } \
     recipients(first: 10) { edges { node { contactId status messageId errorCode } } } } }";

impl Setup {
    async fn start(name: &str, rate_per_second: Option<u32>) -> Self {
        Self::start_in(Mode::Production, name, rate_per_second).await
    }

    async fn start_in(mode: Mode, name: &str, rate_per_second: Option<u32>) -> Self {
        let graph = FakeGraph::start().await;
        let shared = Shared::fresh(&mode).await;
        let url = graph.url.clone();
        let app = TestApp::spawn_with(mode, &shared, move |s| {
            s.whatsapp.graph_url = url;
            s.whatsapp.app_secret = Some(APP_SECRET.into());
            s.whatsapp.verify_token = Some(VERIFY_TOKEN.into());
            s.whatsapp.backoff_base = Duration::from_millis(5);
            s.whatsapp.timeout = Duration::from_secs(2);
            if let Some(rate) = rate_per_second {
                s.campaigns.api_rate_per_second = rate;
            }
        })
        .await;
        let owner = app.sign_up(name).await;
        app.connect_fixture_number(&owner).await;
        graph.add_template(json!({
            "id": "991000000000101", "name": "crm_welcome", "language": "en",
            "status": "APPROVED", "category": "MARKETING", "rejected_reason": "NONE",
            "parameter_format": "POSITIONAL",
            "components": [{ "type": "BODY", "text": "Hello {{1}}, your offer: {{2}}.",
                             "example": { "body_text": [["Asha", "10% off"]] } }],
        }));
        graph.add_template(json!({
            "id": "991000000000102", "name": "crm_brochure", "language": "en",
            "status": "APPROVED", "category": "MARKETING", "rejected_reason": "NONE",
            "parameter_format": "POSITIONAL",
            "components": [
                { "type": "HEADER", "format": "IMAGE",
                  "example": { "header_handle": ["https://scontent.whatsapp.net/b.png"] } },
                { "type": "BODY", "text": "Hi {{1}}, here is our brochure.",
                  "example": { "body_text": [["Asha"]] } },
            ],
        }));
        let key = app
            .gql("mutation { createApiKey(name: \"CRM\") { secret } }")
            .as_member(&owner)
            .data()
            .await["createApiKey"]["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let setup = Self {
            app,
            graph,
            owner,
            key,
            template: String::new(),
        };
        setup
            .data("mutation { syncTemplates { imported } }", json!({}))
            .await;
        let template = setup.template_id("crm_welcome").await;
        Self { template, ..setup }
    }

    async fn template_id(&self, name: &str) -> String {
        let list = self
            .data("{ templates(first: 10) { nodes { id name } } }", json!({}))
            .await;
        list["templates"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn data(&self, query: &str, vars: Value) -> Value {
        self.app
            .gql(query)
            .as_member(&self.owner)
            .vars(vars)
            .data()
            .await
    }

    async fn campaign_named(&self, name: &str, template: &str) -> Value {
        self.data(
            "mutation($name: String!, $t: ID!) { createApiCampaign(name: $name, templateId: $t) { id kind status } }",
            json!({ "name": name, "t": template }),
        )
        .await["createApiCampaign"]
            .clone()
    }

    async fn campaign(&self, id: &Value) -> Value {
        self.data(CAMPAIGN, json!({ "id": id })).await["campaign"].clone()
    }

    /// Posts a CRM call with this idempotency key (`None`: no header).
    async fn post(&self, body: Value, idempotency_key: Option<&str>) -> Answer {
        let mut request = self
            .app
            .http
            .post(self.app.url("/api/campaigns/send"))
            .json(&body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Posts like a CRM that retries `503`s with the same key (the embedded database
    /// answers so when a write raced another writer; nothing was sent then).
    async fn post_retrying(&self, body: Value, idempotency_key: &str) -> Answer {
        for _ in 0..5 {
            let answer = self.post(body.clone(), Some(idempotency_key)).await;
            if answer.status != StatusCode::SERVICE_UNAVAILABLE {
                return answer;
            }
            assert!(answer.headers.contains_key("retry-after"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("still unavailable after 5 tries");
    }

    /// A CRM call in the usual shape, with the project's key.
    fn crm_call(&self, campaign: &str, params: &[&str]) -> Value {
        json!({
            "apiKey": self.key,
            "campaignName": campaign,
            "destination": "98123 45678",
            "userName": "Asha Verma",
            "source": "website",
            "media": { "url": "", "filename": "" },
            "templateParams": params,
            "tags": ["vip", "New Lead"],
            "attributes": { "city": "Pune" },
        })
    }

    fn sent_bodies(&self) -> Vec<Value> {
        self.graph
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/messages"))
            .map(|r| r.body)
            .collect()
    }

    async fn contact(&self, phone: &str) -> Value {
        self.data(
            "query($p: String) { contactByIdentity(phone: $p) { id name source optedIn \
             tags { name kind } attributes { key value } } }",
            json!({ "p": phone }),
        )
        .await["contactByIdentity"]
            .clone()
    }
}

fn body_texts(body: &Value) -> Vec<String> {
    body["template"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "body")
        .unwrap()["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_crm_call_creates_the_contact_and_sends_the_template_once_per_key() {
    let s = Setup::start("Crm", None).await;
    s.data(
        "mutation { createTag(input: { name: \"VIP\" }) { id } }",
        json!({}),
    )
    .await;
    s.data(
        "mutation { createAttribute(key: \"city\", displayName: \"City\") { id } }",
        json!({}),
    )
    .await;
    let created = s.campaign_named("Welcome", &s.template).await;
    assert_eq!(created["kind"], "API");
    assert_eq!(created["status"], "LIVE");
    let id = created["id"].clone();
    s.app
        .gql("mutation($t: ID!) { createApiCampaign(name: \" welcome\", templateId: $t) { id } }")
        .as_member(&s.owner)
        .vars(json!({ "t": s.template }))
        .send()
        .await
        .expect_error("CONFLICT");

    // The call: contact created with source API, tags (one created), attribute, template.
    let call = s.crm_call("welcome", &["Asha", "$5 off"]);
    let first = s.post(call.clone(), Some("order-1001")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["status"], "SENT");
    assert_eq!(first.body["campaignId"], id);
    let message_id = first.body["messageId"].clone();
    assert!(message_id.is_string());
    assert!(first.headers.get("idempotent-replayed").is_none());

    let bodies = s.sent_bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["to"], "919812345678");
    assert_eq!(bodies[0]["template"]["name"], "crm_welcome");
    assert_eq!(
        body_texts(&bodies[0]),
        ["Asha", "$5 off"],
        "literal values, a leading $ included"
    );

    let contact = s.contact("+919812345678").await;
    assert_eq!(contact["id"], first.body["contactId"]);
    assert_eq!(contact["name"], "Asha Verma");
    assert_eq!(contact["source"], "API");
    assert_eq!(contact["optedIn"], true);
    let mut tags: Vec<(String, String)> = contact["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("New Lead".to_owned(), "API".to_owned()),
            ("VIP".to_owned(), "MANUAL".to_owned())
        ]
    );
    assert_eq!(
        contact["attributes"],
        json!([{ "key": "city", "value": "Pune" }])
    );

    let campaign = s.campaign(&id).await;
    assert_eq!(campaign["recipientsCount"], 1);
    assert_eq!(campaign["counts"]["sent"], 1);
    let recipient = &campaign["recipients"]["edges"][0]["node"];
    assert_eq!(recipient["contactId"], contact["id"]);
    assert_eq!(recipient["messageId"], message_id);

    // The same call again: the same answer, nothing sent.
    let retried = s.post(call.clone(), Some("order-1001")).await;
    assert_eq!(retried.status, StatusCode::OK);
    assert_eq!(retried.body, first.body);
    assert_eq!(retried.headers["idempotent-replayed"], "true");
    assert_eq!(s.sent_bodies().len(), 1, "a retry sends nothing");

    // The same key with other parameters is refused.
    let reused = s
        .post(
            s.crm_call("Welcome", &["Ravi", "$5 off"]),
            Some("order-1001"),
        )
        .await;
    assert_eq!(reused.status, StatusCode::CONFLICT, "{}", reused.body);
    assert_eq!(reused.code(), "CONFLICT");

    // An attribute the project does not define is refused, naming it; nothing changes.
    let mut unknown = s.crm_call("Welcome", &["Asha", "x"]);
    unknown["attributes"] = json!({ "city": "Mumbai", "loyaltyTier": "gold" });
    let refused = s.post(unknown, Some("order-1002")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.code(), "BAD_USER_INPUT");
    assert_eq!(refused.body["error"]["field"], "attributes");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("loyaltyTier"),
        "{}",
        refused.body
    );
    assert_eq!(s.sent_bodies().len(), 1);

    // A new call for the same contact sends again and updates their row in the campaign.
    let mut again = s.crm_call("Welcome", &["Asha", "20% off"]);
    again["userName"] = json!("Asha V.");
    let second = s.post(again, Some("order-1003")).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_ne!(second.body["messageId"], message_id);
    assert_eq!(second.body["contactId"], first.body["contactId"]);
    assert_eq!(s.sent_bodies().len(), 2);
    assert_eq!(s.contact("+919812345678").await["name"], "Asha V.");
    let campaign = s.campaign(&id).await;
    assert_eq!(campaign["recipientsCount"], 1);
    assert_eq!(campaign["counts"]["sent"], 1);
    assert_eq!(
        campaign["recipients"]["edges"][0]["node"]["messageId"],
        second.body["messageId"]
    );

    // Meta refuses a send: the answer (with Meta's code) is final for that key.
    s.graph.fail_next(
        "/messages",
        400,
        meta_error(131026, "Message undeliverable"),
    );
    let mut other = s.crm_call("Welcome", &["Ravi", "10% off"]);
    other["destination"] = json!("+91 98123 00001");
    other["userName"] = json!("Ravi");
    let failed = s.post(other.clone(), Some("order-1004")).await;
    assert_eq!(
        failed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        failed.body
    );
    assert_eq!(failed.code(), "PROVIDER_REJECTED");
    assert_eq!(failed.body["error"]["metaCode"], 131026);
    let failed_again = s.post(other, Some("order-1004")).await;
    assert_eq!(failed_again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(failed_again.body, failed.body);
    assert_eq!(s.sent_bodies().len(), 3, "one attempt for order-1004");
    let campaign = s.campaign(&id).await;
    assert_eq!(campaign["recipientsCount"], 2);
    assert_eq!(campaign["counts"]["failed"], 1);
}

#[tokio::test]
async fn refused_calls_send_nothing_and_leave_the_key_unused() {
    let s = Setup::start("Refusals", None).await;
    let id = s.campaign_named("Welcome", &s.template).await["id"].clone();
    s.data(
        "mutation { createAttribute(key: \"city\", displayName: \"City\") { id } }",
        json!({}),
    )
    .await;
    let call = s.crm_call("Welcome", &["Asha", "10% off"]);

    // A bad key.
    let mut bad = call.clone();
    bad["apiKey"] = json!(format!("pk_{}", "x".repeat(40)));
    let answer = s.post(bad, Some("k-1")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "UNAUTHENTICATED");
    let mut none = call.clone();
    none.as_object_mut().unwrap().remove("apiKey");
    assert_eq!(
        s.post(none, Some("k-1")).await.status,
        StatusCode::UNAUTHORIZED
    );

    // No idempotency key; a phone that is not one.
    let answer = s.post(call.clone(), None).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"]["field"], "idempotencyKey");
    let mut phone = call.clone();
    phone["destination"] = json!("12345");
    let answer = s.post(phone, Some("k-1")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"]["field"], "destination");

    // Unknown campaign; too few template parameters.
    let answer = s
        .post(s.crm_call("Nope", &["Asha", "x"]), Some("k-1"))
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = s.post(s.crm_call("Welcome", &["Asha"]), Some("k-1")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.body["error"]["field"], "templateParams");

    // Paused: refused; resumed: the same key goes through.
    s.data(
        "mutation($id: ID!) { pauseCampaign(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await;
    let answer = s.post(call.clone(), Some("k-1")).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "CAMPAIGN_PAUSED");
    assert!(s.sent_bodies().is_empty());
    s.data(
        "mutation($id: ID!) { resumeCampaign(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await;
    let answer = s.post(call.clone(), Some("k-1")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(s.sent_bodies().len(), 1);

    // Another project's key cannot reach this project's campaign; its keys are its own.
    let other = s.app.sign_up("Other").await;
    let other_key = s
        .app
        .gql("mutation { createApiKey(name: \"CRM\") { secret } }")
        .as_member(&other)
        .data()
        .await["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut foreign = call.clone();
    foreign["apiKey"] = json!(other_key);
    let answer = s.post(foreign, Some("k-1")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    assert_eq!(answer.code(), "NOT_FOUND");
    assert_eq!(s.sent_bodies().len(), 1);

    // A member's session is not an API key.
    let answer = s
        .app
        .http
        .post(s.app.url("/api/campaigns/send"))
        .bearer_auth(&s.owner.token)
        .header("Idempotency-Key", "k-2")
        .json(&{
            let mut c = call.clone();
            c.as_object_mut().unwrap().remove("apiKey");
            c
        })
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn calls_beyond_the_rate_are_answered_429_with_retry_after() {
    let s = Setup::start("Rate", Some(1)).await;
    // One a second, bursts of two: the third call at once is refused, whatever it asks.
    let call = s.crm_call("Nothing", &["a", "b"]);
    for key in ["r-1", "r-2"] {
        assert_eq!(
            s.post(call.clone(), Some(key)).await.status,
            StatusCode::NOT_FOUND
        );
    }
    let limited = s.post(call.clone(), Some("r-3")).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert_eq!(limited.code(), "RATE_LIMITED");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // GraphQL calls count against the same key.
    let reply = s
        .app
        .gql("mutation($i: ApiCampaignInput!) { sendApiCampaign(input: $i) { messageId } }")
        .api_key(&s.key)
        .vars(
            json!({ "i": { "campaignName": "Nothing", "destination": "9812345678",
                             "idempotencyKey": "r-4" } }),
        )
        .send()
        .await;
    reply.expect_error("RATE_LIMITED");
    assert!(reply.body["errors"][0]["extensions"]["retryAfter"].is_u64());
    // After the wait, calls go through again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        s.post(call, Some("r-5")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_graphql_mutation_does_what_the_endpoint_does() {
    let s = Setup::start("Gql", None).await;
    s.data(
        "mutation { createAttribute(key: \"city\", displayName: \"City\") { id } }",
        json!({}),
    )
    .await;
    let brochure = s.template_id("crm_brochure").await;
    let id = s.campaign_named("Brochure", &brochure).await["id"].clone();
    const SEND: &str = "mutation($i: ApiCampaignInput!) { sendApiCampaign(input: $i) { messageId status campaignId contactId } }";
    let input = json!({
        "campaignName": "Brochure",
        "destination": "+91 98123 45678",
        "userName": "Asha Verma",
        "source": "website",
        "media": { "url": "https://cdn.example/brochure.png" },
        "templateParams": ["Asha"],
        "tags": ["Brochure"],
        "attributes": [{ "name": "City", "value": "Pune" }],
        "idempotencyKey": "gql-1",
    });
    let sent = s
        .app
        .gql(SEND)
        .api_key(&s.key)
        .vars(json!({ "i": input }))
        .data()
        .await["sendApiCampaign"]
        .clone();
    assert_eq!(sent["status"], "SENT");
    assert_eq!(sent["campaignId"], id);
    let bodies = s.sent_bodies();
    assert_eq!(bodies.len(), 1);
    let header = bodies[0]["template"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "header")
        .unwrap()
        .clone();
    assert_eq!(
        header["parameters"][0]["image"]["link"],
        "https://cdn.example/brochure.png"
    );
    assert_eq!(body_texts(&bodies[0]), ["Asha"]);
    let contact = s.contact("+919812345678").await;
    assert_eq!(contact["source"], "API");
    assert_eq!(contact["tags"][0]["name"], "Brochure");
    assert_eq!(
        contact["attributes"],
        json!([{ "key": "city", "value": "Pune" }])
    );
    assert_eq!(
        s.campaign(&id).await["counts"]["sent"],
        1,
        "counted in the campaign"
    );

    // Retried: the same answer, nothing sent; the HTTP endpoint shares the keys.
    let again = s
        .app
        .gql(SEND)
        .api_key(&s.key)
        .vars(json!({ "i": input }))
        .data()
        .await["sendApiCampaign"]
        .clone();
    assert_eq!(again, sent);
    let over_http = s
        .post(
            json!({
                "apiKey": s.key, "campaignName": "brochure", "destination": "9812345678",
                "userName": "Asha Verma", "source": "website",
                "media": { "url": "https://cdn.example/brochure.png" },
                "templateParams": ["Asha"], "tags": ["brochure"], "attributes": { "city": "Pune" },
            }),
            Some("gql-1"),
        )
        .await;
    assert_eq!(over_http.status, StatusCode::OK, "{}", over_http.body);
    assert_eq!(over_http.body["messageId"], sent["messageId"]);
    assert_eq!(s.sent_bodies().len(), 1);

    // Other parameters under the key; an unknown attribute; a missing header media.
    let mut other = input.clone();
    other["templateParams"] = json!(["Ravi"]);
    s.app
        .gql(SEND)
        .api_key(&s.key)
        .vars(json!({ "i": other }))
        .send()
        .await
        .expect_error("CONFLICT");
    let mut unknown = input.clone();
    unknown["idempotencyKey"] = json!("gql-2");
    unknown["attributes"] = json!([{ "name": "tier", "value": "gold" }]);
    let reply = s
        .app
        .gql(SEND)
        .api_key(&s.key)
        .vars(json!({ "i": unknown }))
        .send()
        .await;
    assert!(reply.expect_error("BAD_USER_INPUT").contains("tier"));
    assert_eq!(reply.body["errors"][0]["extensions"]["field"], "attributes");
    let mut no_media = input.clone();
    no_media["idempotencyKey"] = json!("gql-3");
    no_media.as_object_mut().unwrap().remove("media");
    let reply = s
        .app
        .gql(SEND)
        .api_key(&s.key)
        .vars(json!({ "i": no_media }))
        .send()
        .await;
    reply.expect_error("BAD_USER_INPUT");
    assert_eq!(reply.body["errors"][0]["extensions"]["field"], "media");
    assert_eq!(s.sent_bodies().len(), 1);

    // Only API keys trigger; members create.
    s.app
        .gql(SEND)
        .as_member(&s.owner)
        .vars(json!({ "i": input }))
        .send()
        .await
        .expect_error("FORBIDDEN");
    s.app
        .gql("mutation($t: ID!) { createApiCampaign(name: \"X\", templateId: $t) { id } }")
        .api_key(&s.key)
        .vars(json!({ "t": brochure }))
        .send()
        .await
        .expect_error("FORBIDDEN");
    // A paused one is created paused.
    let paused = s
        .data(
            "mutation($t: ID!) { createApiCampaign(name: \"Later\", templateId: $t, live: false) { status } }",
            json!({ "t": brochure }),
        )
        .await;
    assert_eq!(paused["createApiCampaign"]["status"], "PAUSED");
}

#[tokio::test]
async fn concurrent_retries_get_the_first_answer_and_one_message() {
    let s = Setup::start("Twins", None).await;
    s.campaign_named("Welcome", &s.template).await;
    s.data(
        "mutation { createAttribute(key: \"city\", displayName: \"City\") { id } }",
        json!({}),
    )
    .await;
    // Meta answers slowly: the retries arrive while the first call is in flight.
    s.graph.set_delay_ms(400);
    let call = s.crm_call("Welcome", &["Asha", "10% off"]);
    let answers =
        futures::future::join_all((0..4).map(|_| s.post(call.clone(), Some("twin-1")))).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.body, answers[0].body);
    }
    assert_eq!(
        answers
            .iter()
            .filter(|a| a.headers.get("idempotent-replayed").is_none())
            .count(),
        1,
        "one call sent, the others replayed its answer"
    );
    assert_eq!(s.sent_bodies().len(), 1);
}

#[tokio::test]
async fn an_opted_out_contact_is_not_reached_and_embedded_mode_works() {
    let s = Setup::start_in(Mode::Embedded, "Embedded", None).await;
    s.campaign_named("Welcome", &s.template).await;
    s.data(
        "mutation { createAttribute(key: \"city\", displayName: \"City\") { id } }",
        json!({}),
    )
    .await;
    let first = s
        .post_retrying(s.crm_call("Welcome", &["Asha", "10% off"]), "e-1")
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(s.sent_bodies().len(), 1);
    // Asha answers STOP: later calls are refused, and nothing is sent.
    let at = chrono::Utc::now().timestamp();
    assert_eq!(
        s.app
            .post_webhook(&inbound_text(
                "wamid.stop.api",
                "919812345678",
                "Asha",
                "STOP",
                at
            ))
            .await,
        StatusCode::OK
    );
    s.app.webhooks_settled().await;
    let refused = s
        .post_retrying(s.crm_call("Welcome", &["Asha", "20% off"]), "e-2")
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "CONTACT_OPTED_OUT");
    assert_eq!(s.sent_bodies().len(), 1);
}
