//! Message templates: WhatsApp's rules checked at submission (every problem at once),
//! the creation request Meta receives, review outcomes and re-categorisations from
//! webhooks (stale ones ignored), what can be edited or deleted in which status, syncing
//! Meta's template list page by page, sending a template with its parameters rendered
//! for a contact, Meta refusing a submission, and a media header's sample uploaded to
//! Meta for the handle its templates take.

use parley_tests::{
    Owner, TestApp,
    client::Reply,
    fake_graph::{FakeGraph, Recorded, SAMPLE_JPEG, meta_error},
    whatsapp::{PHONE_NUMBER_ID, WABA_ID},
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TEMPLATE: &str = "id name language category previousCategory parameterFormat status
  rejectionReason metaTemplateId submittedAt body bodyExamples
  bodyNamedExamples { name example } footer header { format text example }
  buttons { type text url example phoneNumber } problems { path code message }";

/// When Meta reviewed the templates, as webhook `entry.time` (Unix seconds).
const REVIEWED_AT: i64 = 1_763_980_000;

/// A server talking to a fake Graph API, with a project connected to the fixtures' number.
struct Project {
    fake: FakeGraph,
    app: TestApp,
    owner: Owner,
}

impl Project {
    async fn start(name: &str) -> Project {
        let fake = FakeGraph::start().await;
        let app = TestApp::spawn_with_graph(&fake).await;
        let owner = app.sign_up(name).await;
        app.connect_fixture_number(&owner).await;
        Project { fake, app, owner }
    }

    async fn request(&self, query: &str, vars: Value) -> Reply {
        self.app
            .gql(query)
            .as_member(&self.owner)
            .vars(vars)
            .send()
            .await
    }

    async fn data(&self, query: &str, vars: Value) -> Value {
        self.request(query, vars).await.data().clone()
    }

    async fn try_create(&self, input: Value) -> Reply {
        let query = format!(
            "mutation($input: TemplateInput!) {{ createTemplate(input: $input) {{ {TEMPLATE} }} }}"
        );
        self.request(&query, json!({ "input": input })).await
    }

    async fn create(&self, input: Value) -> Value {
        self.try_create(input).await.data()["createTemplate"].clone()
    }

    async fn try_update(&self, id: &Value, input: Value) -> Reply {
        let query = format!(
            "mutation($id: ID!, $input: TemplateInput!) {{ \
             updateTemplate(id: $id, input: $input) {{ {TEMPLATE} }} }}"
        );
        self.request(&query, json!({ "id": id, "input": input }))
            .await
    }

    async fn try_delete(&self, id: &Value) -> Reply {
        self.request(
            "mutation($id: ID!) { deleteTemplate(id: $id) }",
            json!({ "id": id }),
        )
        .await
    }

    async fn try_submit(&self, id: &Value) -> Reply {
        let query = format!("mutation($id: ID!) {{ submitTemplate(id: $id) {{ {TEMPLATE} }} }}");
        self.request(&query, json!({ "id": id })).await
    }

    async fn submit(&self, id: &Value) -> Value {
        self.try_submit(id).await.data()["submitTemplate"].clone()
    }

    async fn template(&self, id: &Value) -> Value {
        let query = format!("query($id: ID!) {{ template(id: $id) {{ {TEMPLATE} }} }}");
        self.data(&query, json!({ "id": id })).await["template"].clone()
    }

    /// Every template of the project, oldest first.
    async fn templates(&self) -> Vec<Value> {
        let query = format!("{{ templates(first: 100) {{ nodes {{ {TEMPLATE} }} }} }}");
        self.data(&query, json!({})).await["templates"]["nodes"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Delivers a signed webhook and waits until it has been processed.
    async fn webhook(&self, body: Value) {
        let bytes = body.to_string().into_bytes();
        assert_eq!(self.app.post_webhook(&bytes).await, StatusCode::OK);
        self.app.webhooks_settled().await;
    }

    /// Meta's review outcome for `template`, at `time`.
    async fn review(&self, template: &Value, event: &str, reason: &str, time: i64) {
        let value = json!({
            "event": event,
            "message_template_id": meta_id(template),
            "message_template_name": template["name"],
            "message_template_language": template["language"],
            "reason": reason,
            "message_template_category": template["category"],
        });
        self.webhook(template_change(
            "message_template_status_update",
            time,
            value,
        ))
        .await;
    }

    /// A submitted and approved template.
    async fn approved(&self, input: Value) -> Value {
        let draft = self.create(input).await;
        let pending = self.submit(&draft["id"]).await;
        self.review(&pending, "APPROVED", "NONE", REVIEWED_AT).await;
        let approved = self.template(&draft["id"]).await;
        assert_eq!(approved["status"], "APPROVED");
        approved
    }

    /// The requests the fake received on one path, oldest first.
    fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .collect()
    }

    fn submissions(&self) -> Vec<Recorded> {
        self.requests_to("POST", &templates_path())
    }

    fn sends(&self) -> Vec<Recorded> {
        self.requests_to("POST", &format!("/v23.0/{PHONE_NUMBER_ID}/messages"))
    }

    async fn contact(&self, input: Value) -> Value {
        self.data(
            "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
            json!({ "input": input }),
        )
        .await["createContact"]["id"]
            .clone()
    }

    async fn try_send(&self, contact: &Value, template: &Value, parameters: Value) -> Reply {
        self.request(
            "mutation($input: SendTemplateInput!) { sendTemplateMessage(input: $input) { id } }",
            json!({ "input": {
                "contactId": contact, "templateId": template["id"], "parameters": parameters
            }}),
        )
        .await
    }

    async fn message(&self, id: &Value) -> Value {
        self.data(
            "query($id: ID!) { message(id: $id) { \
             direction kind status text templateId waMessageId } }",
            json!({ "id": id }),
        )
        .await["message"]
            .clone()
    }

    async fn message_count(&self, contact: &Value) -> usize {
        self.data(
            "query($id: ID!) { contact(id: $id) { messages(first: 100) { edges { node { id } } } } }",
            json!({ "id": contact }),
        )
        .await["contact"]["messages"]["edges"]
            .as_array()
            .unwrap()
            .len()
    }
}

fn templates_path() -> String {
    format!("/v23.0/{WABA_ID}/message_templates")
}

/// Meta's numeric id of a submitted template, as its webhooks write it.
fn meta_id(template: &Value) -> u64 {
    template["metaTemplateId"]
        .as_str()
        .expect("a submitted template")
        .parse()
        .expect("Meta's ids are numeric")
}

/// A template webhook in Meta's shape, for the fixtures' business account.
fn template_change(field: &str, time: i64, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "time": time,
            "changes": [{ "field": field, "value": value }],
        }],
    })
}

/// The `extensions` of the first error.
fn extensions(reply: &Reply) -> &Value {
    &reply.body["errors"][0]["extensions"]
}

fn text(value: &Value) -> String {
    value.as_str().expect("a string").to_owned()
}

/// `(path, code)` of each problem, in order.
fn paths_and_codes(problems: &Value) -> Vec<(String, String)> {
    problems
        .as_array()
        .expect("a list of problems")
        .iter()
        .map(|p| (text(&p["path"]), text(&p["code"])))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(path, code)| ((*path).to_owned(), (*code).to_owned()))
        .collect()
}

/// A template WhatsApp accepts, with a parameter and example in every place that takes
/// one.
fn order_ready() -> Value {
    json!({
        "name": "order_ready",
        "language": "en_US",
        "category": "UTILITY",
        "header": { "format": "TEXT", "text": "Your order {{1}}", "example": "#1234" },
        "body": "Hi {{1}}, your order {{2}} is ready for pickup at our store.",
        "bodyExamples": ["Ana", "#1234"],
        "footer": "Reply STOP to opt out",
        "buttons": [
            { "type": "QUICK_REPLY", "text": "Thanks" },
            {
                "type": "URL", "text": "Track order",
                "url": "https://shop.example/track/{{1}}",
                "example": "https://shop.example/track/1234"
            },
            { "type": "PHONE_NUMBER", "text": "Call us", "phoneNumber": "+14155550123" },
        ],
    })
}

/// A template with a plain body and nothing else.
fn simple(name: &str) -> Value {
    json!({
        "name": name,
        "language": "en",
        "category": "UTILITY",
        "body": "Your parcel is on its way and will arrive soon.",
    })
}

#[tokio::test]
async fn an_invalid_template_is_refused_with_every_problem_and_stays_a_draft() {
    let p = Project::start("Rules").await;
    let draft = p
        .create(json!({
            "name": "broken_offer",
            "language": "en",
            "category": "MARKETING",
            "body": "{{1}}, your order is confirmed and ships on {{3}} from our warehouse.",
            "bodyExamples": ["Ana", "Monday"],
            "footer": "x".repeat(61),
            "buttons": [
                { "type": "URL", "text": "Shop", "url": "https://shop.example/a" },
                { "type": "URL", "text": "Track", "url": "https://shop.example/b" },
                { "type": "URL", "text": "Help", "url": "https://shop.example/c" },
            ],
        }))
        .await;
    assert_eq!(draft["status"], "DRAFT");
    let expected = pairs(&[
        ("components.body.text", "BODY_STARTS_WITH_PARAMETER"),
        ("components.body.text", "PARAMETERS_NOT_SEQUENTIAL"),
        ("components.footer", "FOOTER_TOO_LONG"),
        ("components.buttons", "TOO_MANY_URL_BUTTONS"),
    ]);
    assert_eq!(paths_and_codes(&draft["problems"]), expected);

    let refused = p.try_submit(&draft["id"]).await;
    assert_eq!(
        refused.expect_error("BAD_USER_INPUT"),
        "the template breaks WhatsApp's rules: 4 problems, listed in extensions.problems"
    );
    let problems = &extensions(&refused)["problems"];
    assert_eq!(paths_and_codes(problems), expected);
    let messages: Vec<&str> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "The body must not start with a parameter; put some text before {{1}}.",
            "Number the parameters from {{1}} without gaps; {{2}} is missing.",
            "The footer has 61 characters; the limit is 60.",
            "A template may have at most 2 URL buttons; this one has 3.",
        ]
    );
    assert_eq!(p.fake.requests(), Vec::<Recorded>::new());

    let after = p.template(&draft["id"]).await;
    assert_eq!(after["status"], "DRAFT");
    assert_eq!(after["metaTemplateId"], Value::Null);
    assert_eq!(after["submittedAt"], Value::Null);
    assert_eq!(after["problems"], *problems);
}

#[tokio::test]
async fn a_bad_name_is_not_saved_and_a_name_and_language_are_taken_once() {
    let p = Project::start("Names").await;
    let bad = p
        .try_create(json!({
            "name": "Bad Name", "language": "en", "category": "UTILITY",
            "body": "Hello there, this is a draft.",
        }))
        .await;
    assert_eq!(
        bad.expect_error("BAD_USER_INPUT"),
        "the template cannot be saved: The name may contain only lowercase letters, digits \
         and underscores; 'B' is not allowed."
    );
    assert_eq!(
        paths_and_codes(&extensions(&bad)["problems"]),
        pairs(&[("name", "NAME_INVALID")])
    );
    assert_eq!(p.templates().await, Vec::<Value>::new());

    p.create(simple("parcel_update")).await;
    let again = p.try_create(simple("parcel_update")).await;
    assert_eq!(
        again.expect_error("CONFLICT"),
        "a template with this name and language exists already"
    );
    let mut spanish = simple("parcel_update");
    spanish["language"] = json!("es");
    let other_language = p.create(spanish).await;
    assert_eq!(other_language["language"], "es");
    let saved: Vec<(String, String)> = p
        .templates()
        .await
        .iter()
        .map(|t| (text(&t["name"]), text(&t["language"])))
        .collect();
    assert_eq!(
        saved,
        pairs(&[("parcel_update", "en"), ("parcel_update", "es")])
    );
}

#[tokio::test]
async fn a_valid_template_reaches_meta_in_its_shape_and_follows_the_review() {
    let p = Project::start("Review").await;
    let draft = p.create(order_ready()).await;
    assert_eq!(draft["problems"], json!([]));
    let pending = p.submit(&draft["id"]).await;

    let submissions = p.submissions();
    assert_eq!(submissions.len(), 1, "{submissions:?}");
    assert_eq!(
        submissions[0].authorization.as_deref(),
        Some("Bearer test-access-token")
    );
    assert_eq!(
        submissions[0].body,
        json!({
            "name": "order_ready",
            "language": "en_US",
            "category": "UTILITY",
            "components": [
                {
                    "type": "HEADER", "format": "TEXT", "text": "Your order {{1}}",
                    "example": { "header_text": ["#1234"] }
                },
                {
                    "type": "BODY",
                    "text": "Hi {{1}}, your order {{2}} is ready for pickup at our store.",
                    "example": { "body_text": [["Ana", "#1234"]] }
                },
                { "type": "FOOTER", "text": "Reply STOP to opt out" },
                {
                    "type": "BUTTONS",
                    "buttons": [
                        { "type": "QUICK_REPLY", "text": "Thanks" },
                        {
                            "type": "URL", "text": "Track order",
                            "url": "https://shop.example/track/{{1}}",
                            "example": ["https://shop.example/track/1234"]
                        },
                        {
                            "type": "PHONE_NUMBER", "text": "Call us",
                            "phone_number": "+14155550123"
                        }
                    ]
                }
            ]
        })
    );
    assert_eq!(p.fake.requests().len(), 1, "nothing else reached Meta");
    assert_eq!(pending["status"], "PENDING");
    assert_eq!(pending["metaTemplateId"], "594425479261001");
    assert!(pending["submittedAt"].is_string());
    // Pending templates are in Meta's hands: not editable, nor submitted twice.
    assert_eq!(
        p.try_update(&draft["id"], order_ready())
            .await
            .expect_error("CONFLICT"),
        "only drafts and rejected templates can be edited; this one is PENDING"
    );
    assert_eq!(
        p.try_submit(&draft["id"]).await.expect_error("CONFLICT"),
        "only drafts can be submitted; this one is PENDING"
    );
    assert_eq!(p.submissions().len(), 1);

    p.review(&pending, "APPROVED", "NONE", REVIEWED_AT).await;
    let approved = p.template(&draft["id"]).await;
    assert_eq!(approved["status"], "APPROVED");
    assert_eq!(approved["rejectionReason"], Value::Null);

    // Meta's webhooks come out of order: an earlier rejection arriving late changes nothing.
    p.review(&pending, "REJECTED", "INVALID_FORMAT", REVIEWED_AT - 300)
        .await;
    assert_eq!(p.template(&draft["id"]).await, approved);

    let recategorised = json!({
        "message_template_id": meta_id(&pending),
        "message_template_name": "order_ready",
        "message_template_language": "en_US",
        "previous_category": "UTILITY",
        "new_category": "MARKETING",
    });
    p.webhook(template_change(
        "template_category_update",
        REVIEWED_AT + 600,
        recategorised,
    ))
    .await;
    let marketing = p.template(&draft["id"]).await;
    assert_eq!(marketing["category"], "MARKETING");
    assert_eq!(marketing["previousCategory"], "UTILITY");
    assert_eq!(marketing["status"], "APPROVED");

    let edit = p.try_update(&draft["id"], order_ready()).await;
    assert_eq!(
        edit.expect_error("CONFLICT"),
        "only drafts and rejected templates can be edited; this one is APPROVED"
    );
    let delete = p.try_delete(&draft["id"]).await;
    assert_eq!(
        delete.expect_error("CONFLICT"),
        "only drafts and rejected templates can be deleted; this one is APPROVED"
    );
    assert_eq!(p.template(&draft["id"]).await, marketing);
}

#[tokio::test]
async fn an_earlier_review_delivered_after_a_recategorisation_keeps_the_new_category() {
    // Webhooks come out of order: a review older than Meta's re-categorisation must not
    // bring the old category back.
    let p = Project::start("Order").await;
    let draft = p.create(order_ready()).await;
    let pending = p.submit(&draft["id"]).await;
    let recategorised = json!({
        "message_template_id": meta_id(&pending),
        "message_template_name": "order_ready",
        "message_template_language": "en_US",
        "previous_category": "UTILITY",
        "new_category": "MARKETING",
    });
    p.webhook(template_change(
        "template_category_update",
        REVIEWED_AT + 600,
        recategorised,
    ))
    .await;
    p.review(&pending, "APPROVED", "NONE", REVIEWED_AT).await;
    let template = p.template(&draft["id"]).await;
    assert_eq!(template["status"], "APPROVED");
    assert_eq!(template["category"], "MARKETING");
    assert_eq!(template["previousCategory"], "UTILITY");
}

#[tokio::test]
async fn drafts_and_rejected_templates_can_be_edited_and_deleted() {
    let p = Project::start("Edits").await;
    let draft = p.create(simple("parcel_update")).await;
    let mut edited = simple("parcel_update");
    edited["body"] = json!("Your parcel left our warehouse today, {{1}}. Thanks!");
    edited["bodyExamples"] = json!(["Ana"]);
    let saved = p.try_update(&draft["id"], edited).await;
    let saved = &saved.data()["updateTemplate"];
    assert_eq!(saved["status"], "DRAFT");
    assert_eq!(
        saved["body"],
        "Your parcel left our warehouse today, {{1}}. Thanks!"
    );
    assert_eq!(saved["bodyExamples"], json!(["Ana"]));
    let deleted = p.try_delete(&draft["id"]).await;
    assert_eq!(deleted.data()["deleteTemplate"], draft["id"]);
    p.request(
        "query($id: ID!) { template(id: $id) { id } }",
        json!({ "id": draft["id"] }),
    )
    .await
    .expect_error("NOT_FOUND");

    // Rejected: edited back into a draft.
    let first = p.create(simple("delivery_notice")).await;
    let submitted = p.submit(&first["id"]).await;
    p.review(&submitted, "REJECTED", "INVALID_FORMAT", REVIEWED_AT)
        .await;
    let rejected = p.template(&first["id"]).await;
    assert_eq!(rejected["status"], "REJECTED");
    assert_eq!(rejected["rejectionReason"], "INVALID_FORMAT");
    let mut fixed = simple("delivery_notice");
    fixed["body"] = json!("Your parcel is on its way; track it in the app.");
    let reopened = p.try_update(&first["id"], fixed).await;
    let reopened = &reopened.data()["updateTemplate"];
    assert_eq!(reopened["status"], "DRAFT");
    assert_eq!(reopened["rejectionReason"], Value::Null);
    assert_eq!(
        reopened["body"],
        "Your parcel is on its way; track it in the app."
    );
    // Submitted again, it is edited under Meta's id: Meta keeps one per name and language.
    let resubmitted = p.submit(&first["id"]).await;
    assert_eq!(resubmitted["status"], "PENDING");
    assert_eq!(resubmitted["metaTemplateId"], submitted["metaTemplateId"]);
    let edit = p
        .fake
        .requests()
        .into_iter()
        .next_back()
        .expect("the edit reached Meta");
    assert_eq!(edit.method, "POST");
    assert_eq!(edit.path, format!("/v23.0/{}", meta_id(&submitted)));
    assert_eq!(
        edit.body["components"][0]["text"],
        "Your parcel is on its way; track it in the app."
    );

    // Rejected: deleted.
    let second = p.create(simple("returns_notice")).await;
    let submitted = p.submit(&second["id"]).await;
    p.review(&submitted, "REJECTED", "TAG_CONTENT_MISMATCH", REVIEWED_AT)
        .await;
    assert_eq!(p.template(&second["id"]).await["status"], "REJECTED");
    let deleted = p.try_delete(&second["id"]).await;
    assert_eq!(deleted.data()["deleteTemplate"], second["id"]);
    let names: Vec<Value> = p
        .templates()
        .await
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("delivery_notice")]);
}

/// A template made in WhatsApp Manager, as Meta lists it.
fn listed(id: &str, name: &str, status: &str, components: Value) -> Value {
    json!({
        "id": id,
        "name": name,
        "language": "en",
        "status": status,
        "category": "MARKETING",
        "rejected_reason": if status == "REJECTED" { "TAG_CONTENT_MISMATCH" } else { "NONE" },
        "parameter_format": "POSITIONAL",
        "components": components,
    })
}

fn welcome_back() -> Value {
    listed(
        "771000000000001",
        "welcome_back",
        "APPROVED",
        json!([
            {
                "type": "HEADER", "format": "IMAGE",
                "example": { "header_handle": ["https://scontent.whatsapp.net/welcome.png"] }
            },
            {
                "type": "BODY",
                "text": "Welcome back, {{1}}! Your {{2}} points are waiting for you.",
                "example": { "body_text": [["Ana", "120"]] }
            },
            { "type": "FOOTER", "text": "Reply STOP to opt out" },
            {
                "type": "BUTTONS",
                "buttons": [
                    { "type": "QUICK_REPLY", "text": "Show offers" },
                    {
                        "type": "URL", "text": "Open shop", "url": "https://shop.example/{{1}}",
                        "example": ["https://shop.example/welcome"]
                    }
                ]
            }
        ]),
    )
}

#[tokio::test]
async fn syncing_reads_every_page_of_metas_list_and_imports_unknown_templates() {
    let p = Project::start("Sync").await;
    let paused = p.create(order_ready()).await;
    let paused = p.submit(&paused["id"]).await;
    let waiting = p.create(simple("parcel_update")).await;
    let waiting = p.submit(&waiting["id"]).await;
    p.fake.add_template(welcome_back());
    p.fake.add_template(listed(
        "771000000000002",
        "spring_sale",
        "REJECTED",
        json!([{ "type": "BODY", "text": "Our spring sale starts today in every store." }]),
    ));
    let mut named = listed(
        "771000000000003",
        "loyalty_note",
        "PENDING",
        json!([{
            "type": "BODY",
            "text": "Dear {{first_name}}, thanks for being with us this year.",
            "example": {
                "body_text_named_params": [{ "param_name": "first_name", "example": "Ana" }]
            }
        }]),
    );
    named["parameter_format"] = json!("NAMED");
    p.fake.add_template(named);
    p.fake.set_page_size(2);
    p.fake
        .set_template_status(paused["metaTemplateId"].as_str().unwrap(), "PAUSED", None);

    let sync = "mutation { syncTemplates { pages imported updated unchanged } }";
    let report = p.data(sync, json!({})).await;
    assert_eq!(
        report["syncTemplates"],
        json!({ "pages": 3, "imported": 3, "updated": 1, "unchanged": 1 })
    );
    let lists = p.requests_to("GET", &templates_path());
    let cursors: Vec<Option<&str>> = lists
        .iter()
        .map(|r| query_param(&r.query, "after"))
        .collect();
    assert_eq!(cursors, [None, Some("fakecursor2"), Some("fakecursor4")]);
    for list in &lists {
        assert_eq!(
            list.authorization.as_deref(),
            Some("Bearer test-access-token")
        );
    }

    let templates = p.templates().await;
    let by_name = |name: &str| {
        templates
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no template {name}: {templates:?}"))
    };
    assert_eq!(by_name("order_ready")["status"], "PAUSED");
    assert_eq!(
        by_name("order_ready")["metaTemplateId"],
        paused["metaTemplateId"]
    );
    assert_eq!(by_name("parcel_update")["status"], "PENDING");
    assert_eq!(
        by_name("parcel_update")["metaTemplateId"],
        waiting["metaTemplateId"]
    );

    let welcome = by_name("welcome_back");
    assert_eq!(welcome["status"], "APPROVED");
    assert_eq!(welcome["category"], "MARKETING");
    assert_eq!(welcome["metaTemplateId"], "771000000000001");
    assert_eq!(
        welcome["body"],
        "Welcome back, {{1}}! Your {{2}} points are waiting for you."
    );
    assert_eq!(welcome["bodyExamples"], json!(["Ana", "120"]));
    assert_eq!(
        welcome["header"],
        json!({
            "format": "IMAGE", "text": null,
            "example": "https://scontent.whatsapp.net/welcome.png"
        })
    );
    assert_eq!(welcome["footer"], "Reply STOP to opt out");
    assert_eq!(
        welcome["buttons"],
        json!([
            { "type": "QUICK_REPLY", "text": "Show offers", "url": null, "example": null,
              "phoneNumber": null },
            { "type": "URL", "text": "Open shop", "url": "https://shop.example/{{1}}",
              "example": "https://shop.example/welcome", "phoneNumber": null }
        ])
    );
    let sale = by_name("spring_sale");
    assert_eq!(sale["status"], "REJECTED");
    assert_eq!(sale["rejectionReason"], "TAG_CONTENT_MISMATCH");
    assert_eq!(sale["body"], "Our spring sale starts today in every store.");
    let loyalty = by_name("loyalty_note");
    assert_eq!(loyalty["status"], "PENDING");
    assert_eq!(loyalty["parameterFormat"], "NAMED");
    assert_eq!(
        loyalty["body"],
        "Dear {{first_name}}, thanks for being with us this year."
    );
    assert_eq!(
        loyalty["bodyNamedExamples"],
        json!([{ "name": "first_name", "example": "Ana" }])
    );
    assert_eq!(templates.len(), 5);

    // A second sync finds everything up to date.
    let again = p.data(sync, json!({})).await;
    assert_eq!(
        again["syncTemplates"],
        json!({ "pages": 3, "imported": 0, "updated": 0, "unchanged": 5 })
    );
    assert_eq!(p.templates().await.len(), 5);
}

/// A query parameter's raw value.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn shipping_eta(name: &str) -> Value {
    json!({
        "name": name,
        "language": "en",
        "category": "UTILITY",
        "body": "Hi {{1}}, your order ships to {{2}} on {{3}}.",
        "bodyExamples": ["Asha", "Pune", "Monday"],
    })
}

/// The last template send the fake received.
fn last_send(p: &Project) -> Value {
    p.sends().last().expect("a send reached Meta").body.clone()
}

fn template_send(to: &str, texts: [&str; 3]) -> Value {
    let parameters: Vec<Value> = texts
        .iter()
        .map(|t| json!({ "type": "text", "text": t }))
        .collect();
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": "shipping_eta",
            "language": { "code": "en" },
            "components": [{ "type": "body", "parameters": parameters }],
        },
    })
}

const ASHA_MESSAGE: &str = "wamid.HBgMOTE5ODEyMzQ1Njc4FQIAERgSVEVNUExBVEUwMDAwMDAwMDAxAA==";

#[tokio::test]
async fn a_template_is_sent_with_its_parameters_rendered_for_the_contact() {
    let p = Project::start("Send").await;
    p.data(
        "mutation { createAttribute(key: \"City\", displayName: \"City\") { id } }",
        json!({}),
    )
    .await;
    let asha = p
        .contact(json!({
            "name": "Asha Verma", "phone": "+919812345678",
            "attributes": [{ "key": "City", "value": "Pune" }]
        }))
        .await;
    let rohit = p
        .contact(json!({ "name": "Rohit Sen", "phone": "+919876500011" }))
        .await;
    let template = p.approved(shipping_eta("shipping_eta")).await;
    let parameters =
        json!([{ "value": "$FirstName" }, { "value": "$City" }, { "value": "Monday" }]);

    p.fake.queue_message_ids(&[ASHA_MESSAGE]);
    let sent = p.try_send(&asha, &template, parameters.clone()).await;
    let sent = sent.data()["sendTemplateMessage"]["id"].clone();
    assert_eq!(p.sends().len(), 1);
    assert_eq!(
        last_send(&p),
        template_send("919812345678", ["Asha", "Pune", "Monday"])
    );
    assert_eq!(
        p.sends()[0].authorization.as_deref(),
        Some("Bearer test-access-token")
    );
    let stored = p.message(&sent).await;
    assert_eq!(
        stored,
        json!({
            "direction": "OUTBOUND", "kind": "template", "status": "ACCEPTED",
            "text": "Hi Asha, your order ships to Pune on Monday.",
            "templateId": template["id"], "waMessageId": ASHA_MESSAGE,
        })
    );

    let missing = p.try_send(&rohit, &template, parameters).await;
    assert_eq!(
        missing.expect_error("BAD_USER_INPUT"),
        "parameter 2: no value for $City and no fallback"
    );
    assert_eq!(extensions(&missing)["field"], "parameters");
    assert_eq!(p.sends().len(), 1, "nothing is sent");
    assert_eq!(p.message_count(&rohit).await, 0, "nothing is stored");

    let with_fallback = json!([
        { "value": "$FirstName" },
        { "value": "$City", "fallback": "your city" },
        { "value": "Monday" }
    ]);
    let sent = p.try_send(&rohit, &template, with_fallback).await;
    let sent = sent.data()["sendTemplateMessage"]["id"].clone();
    assert_eq!(
        last_send(&p),
        template_send("919876500011", ["Rohit", "your city", "Monday"])
    );
    assert_eq!(
        p.message(&sent).await["text"],
        "Hi Rohit, your order ships to your city on Monday."
    );
    assert_eq!(p.sends().len(), 2);
}

#[tokio::test]
async fn a_send_needs_every_parameter_and_an_approved_template() {
    let p = Project::start("Refusals").await;
    let asha = p
        .contact(json!({ "name": "Asha Verma", "phone": "+919812345678" }))
        .await;
    let template = p.approved(shipping_eta("shipping_eta")).await;

    let too_few = p
        .try_send(
            &asha,
            &template,
            json!([{ "value": "Asha" }, { "value": "Pune" }]),
        )
        .await;
    assert_eq!(
        too_few.expect_error("BAD_USER_INPUT"),
        "shipping_eta takes 3 parameter values (0 header, 3 body, 0 URL button), 2 were given"
    );
    let four = json!([{ "value": "a" }, { "value": "b" }, { "value": "c" }, { "value": "d" }]);
    let too_many = p.try_send(&asha, &template, four).await;
    assert_eq!(
        too_many.expect_error("BAD_USER_INPUT"),
        "shipping_eta takes 3 parameter values (0 header, 3 body, 0 URL button), 4 were given"
    );

    let blank = json!([{ "value": "a" }, { "value": " " }, { "value": "c" }]);
    let blank = p.try_send(&asha, &template, blank).await;
    assert_eq!(
        blank.expect_error("BAD_USER_INPUT"),
        "parameter 2 is empty, and WhatsApp refuses empty parameters"
    );

    let three = json!([{ "value": "a" }, { "value": "b" }, { "value": "c" }]);
    let draft = p.create(shipping_eta("shipping_draft")).await;
    let refused = p.try_send(&asha, &draft, three.clone()).await;
    assert_eq!(
        refused.expect_error("TEMPLATE_NOT_APPROVED"),
        "only approved templates can be sent; shipping_draft is DRAFT"
    );
    let pending = p.create(shipping_eta("shipping_pending")).await;
    let pending = p.submit(&pending["id"]).await;
    let refused = p.try_send(&asha, &pending, three).await;
    assert_eq!(
        refused.expect_error("TEMPLATE_NOT_APPROVED"),
        "only approved templates can be sent; shipping_pending is PENDING"
    );
    assert_eq!(p.sends(), Vec::<Recorded>::new(), "no send reached Meta");
    assert_eq!(p.message_count(&asha).await, 0);
}

#[tokio::test]
async fn a_submission_meta_refuses_leaves_a_draft_that_can_be_submitted_again() {
    let p = Project::start("Refused").await;
    let draft = p.create(order_ready()).await;
    p.fake.fail_next(
        "message_templates",
        400,
        meta_error(100, "Invalid parameter"),
    );
    let refused = p.try_submit(&draft["id"]).await;
    assert_eq!(
        refused.expect_error("PROVIDER_REJECTED"),
        "WhatsApp refused the request: Invalid parameter"
    );
    assert_eq!(extensions(&refused)["metaCode"], 100);
    assert_eq!(p.submissions().len(), 1, "a refusal is not retried");
    let after = p.template(&draft["id"]).await;
    assert_eq!(after["status"], "DRAFT");
    assert_eq!(after["metaTemplateId"], Value::Null);
    assert_eq!(after["submittedAt"], Value::Null);

    let pending = p.submit(&draft["id"]).await;
    assert_eq!(pending["status"], "PENDING");
    assert!(pending["metaTemplateId"].is_string());
    let submissions = p.submissions();
    assert_eq!(submissions.len(), 2);
    assert_eq!(submissions[1].body, submissions[0].body);
}

#[tokio::test]
async fn a_media_header_sample_is_uploaded_and_submitted_as_metas_handle() {
    let p = Project::start("Media").await;
    let sample = p.fake.sample_url("shoe.jpg");
    let draft = p
        .create(json!({
            "name": "new_shoes",
            "language": "en",
            "category": "MARKETING",
            "header": { "format": "IMAGE", "example": sample },
            "body": "Hi {{1}}, our new running shoes are in store. Come and try them on!",
            "bodyExamples": ["Ana"],
        }))
        .await;
    assert_eq!(draft["problems"], json!([]));
    let pending = p.submit(&draft["id"]).await;
    assert_eq!(pending["status"], "PENDING");
    assert_eq!(
        pending["header"]["example"], sample,
        "Parley keeps the URL; only Meta gets the handle"
    );

    let requests = p.fake.requests();
    let calls: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    let templates = templates_path();
    assert_eq!(
        calls,
        [
            ("GET", "/samples/shoe.jpg"),
            ("POST", "/v23.0/1234/uploads"),
            ("POST", "/v23.0/upload:1"),
            ("POST", templates.as_str()),
        ]
    );
    let (download, session, upload, submission) =
        (&requests[0], &requests[1], &requests[2], &requests[3]);
    assert_eq!(download.authorization, None, "Meta's token stays with Meta");
    assert_eq!(
        session.query,
        format!(
            "file_name=shoe.jpg&file_length={}&file_type=image%2Fjpeg",
            SAMPLE_JPEG.len()
        )
    );
    assert_eq!(
        session.authorization.as_deref(),
        Some("Bearer test-access-token")
    );
    assert_eq!(
        upload.authorization.as_deref(),
        Some("OAuth test-access-token")
    );
    assert_eq!(upload.body, json!(SAMPLE_JPEG.len()), "the bytes uploaded");
    assert_eq!(
        submission.body["components"][0],
        json!({
            "type": "HEADER", "format": "IMAGE",
            "example": { "header_handle": ["4::fakehandle1"] }
        })
    );
}
