//! Every operation of the schema, read by introspection, tried by every kind of caller and
//! compared with the table below; then every operation that takes ids tried with the ids
//! of another project's objects.
//!
//! The requests are generated: required arguments get values of their type (ids are
//! random, so lookups find nothing), objects select `__typename` and `id`. What counts is
//! whether the caller got past the access checks: `FORBIDDEN`, `UNAUTHENTICATED` and "no
//! project selected" are refusals, any other answer (data, `NOT_FOUND`, `BAD_USER_INPUT`,
//! `PROJECT_ARCHIVED`...) means the operation ran for that caller.
//!
//! A new operation fails the test until it has a row in [`EXPECTED`].

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use parley_tests::{Mode, Owner, Shared, TestApp, client::Reply, ws::WsClient};
use serde_json::{Map, Value, json};

/// The callers, in the order of the letters of [`EXPECTED`].
const CALLERS: [&str; 8] = [
    "anonymous",
    "user without a project",
    "stranger (member of another project)",
    "OWNER",
    "MANAGER",
    "AGENT",
    "FINANCE",
    "API key",
];

/// Per operation, one letter per caller of [`CALLERS`]: `Y` runs, `F` forbidden,
/// `U` unauthenticated, `P` refused for want of a selected project.
const EXPECTED: &[(&str, &str)] = &[
    ("activityReport", "UPFYYFYF"),
    ("addContactTags", "UPFYYYFF"),
    ("addMember", "UPFYFFFF"),
    ("apiKeys", "UPFYYFFF"),
    ("applyForGreenTick", "UPFYFFFF"),
    ("archiveProject", "UPFYFFFF"),
    ("assistantSettings", "UPFYYFFF"),
    ("attributes", "UPFYYYFF"),
    ("businessCategories", "UPFYYYYF"),
    ("campaign", "UPFYYFYF"),
    ("campaignCosts", "UPFYYFYF"),
    ("campaignProgress", "UPFYYFYF"),
    ("campaigns", "UPFYYFYF"),
    ("cancelCampaign", "UPFYYFFF"),
    ("cancelLeavingRequest", "UPFYFFFF"),
    ("cancelOnboarding", "UPFYFFFF"),
    ("cancelSubscription", "UPFYFFFF"),
    ("changeMemberRole", "UPFYFFFF"),
    ("changePassword", "UYYYYYYF"),
    ("chat", "UPFYYYFF"),
    ("chatButton", "UPFYYFFF"),
    ("chatCounts", "UPFYYYFF"),
    ("chatEvents", "UPFYYYFF"),
    ("chats", "UPFYYYFF"),
    ("checkDisplayName", "UPFYYFFF"),
    ("checkPhoneNumber", "UPFYYFFF"),
    ("completeLeavingRequest", "UPFYFFFF"),
    ("connectFacebookAccount", "UPFYFFFF"),
    ("connectWhatsapp", "UPFYFFFF"),
    ("contact", "UPFYYYFF"),
    ("contactByIdentity", "UPFYYYFF"),
    ("contactCount", "UPFYYYFF"),
    ("contactImport", "UPFYYFFF"),
    ("contactImportProgress", "UPFYYFFF"),
    ("contactImports", "UPFYYFFF"),
    ("contacts", "UPFYYYFF"),
    ("createApiCampaign", "UPFYYFFF"),
    ("createApiKey", "UPFYFFFF"),
    ("createAttribute", "UPFYYFFF"),
    ("createBroadcast", "UPFYYFFF"),
    ("createContact", "UPFYYFFF"),
    ("createProject", "UYYYYYYF"),
    ("createSegment", "UPFYYFFF"),
    ("createTag", "UPFYYYFF"),
    ("createTemplate", "UPFYYFFF"),
    ("deactivateMember", "UPFYFFFF"),
    ("deleteAttribute", "UPFYYFFF"),
    ("deleteSegment", "UPFYYFFF"),
    ("deleteTag", "UPFYYFFF"),
    ("deleteTemplate", "UPFYYFFF"),
    ("exportContacts", "UPFYYFFF"),
    ("greenTickApplications", "UPFYYFFF"),
    ("greenTickEligibility", "UPFYYFFF"),
    ("interveneChat", "UPFYYYFF"),
    ("invoices", "UPFYYFYF"),
    ("leavingGuidance", "UPFYYFFF"),
    ("leavingRequests", "UPFYYFFF"),
    // Made-up credentials: refused whoever sends them.
    ("logIn", "UUUUUUUU"),
    ("member", "UPFYYFFF"),
    ("members", "UPFYYFFF"),
    ("message", "UPFYYYYF"),
    ("messageUpdates", "UPFYYYFF"),
    ("onboarding", "UPFYYFFF"),
    ("onboardingApplication", "UPFYYFFF"),
    ("onboardingApplications", "UPFYYFFF"),
    ("onboardingChecklist", "UPFYYFFF"),
    ("pauseCampaign", "UPFYYFFF"),
    ("planPrices", "UPFYYYYF"),
    ("pricingEras", "UPFYYYYF"),
    ("pricingReconciliation", "UPFYYFYF"),
    ("project", "UPFYYYYY"),
    ("projectChanges", "UPFYYFFF"),
    ("projects", "UYYYYYYF"),
    ("rateCard", "UPFYYFYF"),
    ("reactivateMember", "UPFYFFFF"),
    ("reactivateSubscription", "UPFYFFFF"),
    ("recordGreenTickDecision", "UPFYFFFF"),
    ("recordPayment", "UPFYFFYF"),
    ("registerPhoneNumber", "UPFYFFFF"),
    ("removeContactTags", "UPFYYYFF"),
    ("renameAttribute", "UPFYYFFF"),
    ("renameTag", "UPFYYFFF"),
    ("requestDowngrade", "UPFYFFFF"),
    ("requestTwoStepVerificationDisable", "UPFYFFFF"),
    ("requestingQueue", "UPFYYYFF"),
    ("resendVerificationCode", "UPFYFFFF"),
    ("resolveChat", "UPFYYYFF"),
    ("restrictedIndustries", "UPFYYYYF"),
    ("resumeCampaign", "UPFYYFFF"),
    ("retryFailedRecipients", "UPFYYFFF"),
    ("revokeApiKey", "UPFYFFFF"),
    ("segment", "UPFYYYFF"),
    ("segments", "UPFYYYFF"),
    ("selectBusinessManager", "UPFYFFFF"),
    // CRM calls: API keys only.
    ("sendApiCampaign", "UPFFFFFY"),
    ("sendMediaMessage", "UPFYYYFY"),
    ("sendTemplateMessage", "UPFYYYFY"),
    ("sendTextMessage", "UPFYYYFY"),
    ("setBusinessProfile", "UPFYFFFF"),
    ("setContactAttributes", "UPFYYYFF"),
    ("setContactIncomingBlocked", "UPFYYFFF"),
    ("setContactOptIn", "UPFYYFFF"),
    ("setLowBalanceThreshold", "UPFYFFYF"),
    ("setSendingLimits", "UPFYFFFF"),
    ("setTagKeywords", "UPFYYFFF"),
    ("setWhatsappBusinessAccount", "UPFYFFFF"),
    ("signUp", "YYYYYYYY"),
    ("startCampaign", "UPFYYFFF"),
    ("startContactImport", "UPFYYFFF"),
    ("startOnboarding", "UPFYFFFF"),
    ("submitPhoneNumber", "UPFYFFFF"),
    ("submitTemplate", "UPFYYFFF"),
    ("subscribe", "UPFYFFFF"),
    ("subscriptionPlan", "UPFYYFYF"),
    ("syncTemplates", "UPFYYFFF"),
    ("tags", "UPFYYYFF"),
    ("template", "UPFYYYYF"),
    ("templates", "UPFYYYYY"),
    ("testSendCampaign", "UPFYYFFF"),
    ("topUpWallet", "UPFYFFYF"),
    ("unarchiveProject", "UPFYFFFF"),
    ("updateAssistantSettings", "UPFYFFFF"),
    ("updateContact", "UPFYYFFF"),
    ("updateOnboardingChecklist", "UPFYYFFF"),
    ("updateProject", "UPFYFFFF"),
    ("updateSegment", "UPFYYFFF"),
    ("updateTemplate", "UPFYYFFF"),
    ("uploadContactImport", "UPFYYFFF"),
    ("usageReport", "UPFYYFYF"),
    ("verifyPhoneNumber", "UPFYFFFF"),
    ("viewer", "UYYYYYYF"),
    ("voidInvoice", "UPFYFFYF"),
    ("wallet", "UPFYYFYF"),
    ("walletEvents", "UPFYYFYF"),
    ("walletStatement", "UPFYYFYF"),
    ("webhookIssues", "UPFYYFFF"),
    ("whatsappAccount", "UPFYYFFF"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Query,
    Mutation,
    Subscription,
}

struct Operation {
    kind: Kind,
    name: String,
    document: String,
    /// The variables, with every `ID` at `ids` (JSON pointers) to fill in.
    variables: Value,
    ids: Vec<String>,
    upload: bool,
}

struct Schema {
    types: BTreeMap<String, Value>,
}

const INTROSPECTION: &str = "{ __schema { queryType { name } mutationType { name } subscriptionType { name }
  types { kind name
    fields { name args { name defaultValue type { ...T } } type { ...T } }
    inputFields { name defaultValue type { ...T } }
    enumValues { name } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

impl Schema {
    async fn read(app: &TestApp) -> (Self, [String; 3]) {
        let data = app.gql(INTROSPECTION).data().await;
        let schema = &data["__schema"];
        let types = schema["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
            .collect();
        let root = |k: &str| schema[k]["name"].as_str().unwrap().to_owned();
        (
            Self { types },
            [
                root("queryType"),
                root("mutationType"),
                root("subscriptionType"),
            ],
        )
    }

    fn operations(&self, roots: &[String; 3]) -> Vec<Operation> {
        let mut operations = Vec::new();
        for (kind, root) in [Kind::Query, Kind::Mutation, Kind::Subscription]
            .into_iter()
            .zip(roots)
        {
            for field in self.types[root]["fields"].as_array().unwrap() {
                operations.push(self.operation(kind, field));
            }
        }
        operations
    }

    fn operation(&self, kind: Kind, field: &Value) -> Operation {
        let name = field["name"].as_str().unwrap().to_owned();
        let mut declarations = Vec::new();
        let mut arguments = Vec::new();
        let mut variables = Map::new();
        let mut ids = Vec::new();
        let mut upload = false;
        for arg in field["args"].as_array().unwrap() {
            if !is_required(arg) {
                continue;
            }
            let arg_name = arg["name"].as_str().unwrap();
            declarations.push(format!("${arg_name}: {}", type_ref(&arg["type"])));
            arguments.push(format!("{arg_name}: ${arg_name}"));
            if named(&arg["type"]) == "Upload" {
                upload = true;
                variables.insert(arg_name.into(), Value::Null);
                continue;
            }
            let pointer = format!("/{arg_name}");
            variables.insert(
                arg_name.into(),
                self.value(&arg["type"], &pointer, &mut ids, 0),
            );
        }
        let keyword = match kind {
            Kind::Query => "query",
            Kind::Mutation => "mutation",
            Kind::Subscription => "subscription",
        };
        let declarations = if declarations.is_empty() {
            String::new()
        } else {
            format!("({})", declarations.join(", "))
        };
        let arguments = if arguments.is_empty() {
            String::new()
        } else {
            format!("({})", arguments.join(", "))
        };
        let document = format!(
            "{keyword} Op{declarations} {{ {name}{arguments}{} }}",
            self.selection(&field["type"], 0)
        );
        Operation {
            kind,
            name,
            document,
            variables: Value::Object(variables),
            ids,
            upload,
        }
    }

    /// A value of this input type; ids are recorded by their JSON pointer.
    fn value(&self, ty: &Value, pointer: &str, ids: &mut Vec<String>, depth: usize) -> Value {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => self.value(&ty["ofType"], pointer, ids, depth),
            "LIST" => json!([self.value(&ty["ofType"], &format!("{pointer}/0"), ids, depth)]),
            "ENUM" => {
                let t = &self.types[ty["name"].as_str().unwrap()];
                t["enumValues"][0]["name"].clone()
            }
            "INPUT_OBJECT" => {
                let t = &self.types[ty["name"].as_str().unwrap()];
                let mut object = Map::new();
                if depth < 4 {
                    for field in t["inputFields"].as_array().unwrap() {
                        if !is_required(field) {
                            continue;
                        }
                        let name = field["name"].as_str().unwrap();
                        object.insert(
                            name.into(),
                            self.value(
                                &field["type"],
                                &format!("{pointer}/{name}"),
                                ids,
                                depth + 1,
                            ),
                        );
                    }
                }
                Value::Object(object)
            }
            _ => match ty["name"].as_str().unwrap() {
                "ID" => {
                    ids.push(pointer.to_owned());
                    json!(uuid::Uuid::new_v4())
                }
                "String" => json!("x"),
                "Int" => json!(1),
                "Float" => json!(1.0),
                "Boolean" => json!(true),
                "DateTime" => json!("2026-01-01T00:00:00Z"),
                "NaiveDate" => json!("2026-01-01"),
                "JSON" => json!({}),
                other => panic!("no value for the scalar {other}: add one"),
            },
        }
    }

    /// What to select on an output type: `__typename` and `id` of objects, through lists
    /// and connections.
    fn selection(&self, ty: &Value, depth: usize) -> String {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" | "LIST" => self.selection(&ty["ofType"], depth),
            "OBJECT" | "INTERFACE" | "UNION" => {
                let t = &self.types[ty["name"].as_str().unwrap()];
                let fields = t["fields"].as_array().cloned().unwrap_or_default();
                let mut picked = vec!["__typename".to_owned()];
                for field in &fields {
                    let name = field["name"].as_str().unwrap();
                    let takes_no_required_args = field["args"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|a| !is_required(a));
                    if name == "id" && named(&field["type"]) == "ID" {
                        picked.push("id".into());
                    }
                    if (name == "edges" || name == "node") && depth < 3 && takes_no_required_args {
                        picked.push(format!(
                            "{name}{}",
                            self.selection(&field["type"], depth + 1)
                        ));
                    }
                }
                format!(" {{ {} }}", picked.join(" "))
            }
            _ => String::new(),
        }
    }
}

fn is_required(input: &Value) -> bool {
    input["type"]["kind"] == "NON_NULL" && input["defaultValue"].is_null()
}

fn named(ty: &Value) -> &str {
    match ty["name"].as_str() {
        Some(name) => name,
        None => named(&ty["ofType"]),
    }
}

fn type_ref(ty: &Value) -> String {
    match ty["kind"].as_str().unwrap() {
        "NON_NULL" => format!("{}!", type_ref(&ty["ofType"])),
        "LIST" => format!("[{}]", type_ref(&ty["ofType"])),
        _ => ty["name"].as_str().unwrap().to_owned(),
    }
}

/// Who calls, and how.
#[derive(Clone)]
enum Caller {
    Anonymous,
    User { token: String },
    Member { token: String, project_id: String },
    ApiKey(String),
}

impl Caller {
    fn member(who: &Owner, project_id: &str) -> Self {
        Self::Member {
            token: who.token.clone(),
            project_id: project_id.to_owned(),
        }
    }

    fn ws_payload(&self) -> Value {
        match self {
            Caller::Anonymous => json!({}),
            Caller::User { token } => json!({ "token": token }),
            Caller::Member { token, project_id } => {
                json!({ "token": token, "projectId": project_id })
            }
            Caller::ApiKey(key) => json!({ "apiKey": key }),
        }
    }
}

async fn call(app: &TestApp, caller: &Caller, op: &Operation, variables: &Value) -> Reply {
    if op.upload {
        return send_upload(app, caller, op, variables).await;
    }
    send_json(app, caller, op, variables).await
}

/// A multipart request with a small CSV bound to every `Upload` variable (`null` in them).
async fn send_upload(app: &TestApp, caller: &Caller, op: &Operation, variables: &Value) -> Reply {
    let files: Vec<String> = variables
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| format!("variables.{k}"))
        .collect();
    let operations = json!({ "query": op.document, "variables": variables });
    let mut form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": files }).to_string());
    form = form.part(
        "0",
        reqwest::multipart::Part::bytes(b"Name,Phone\nA,9812300001\n".to_vec())
            .file_name("matrix.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let mut request = app.http.post(app.url("/graphql")).multipart(form);
    request = match caller {
        Caller::Anonymous => request,
        Caller::User { token } => request.bearer_auth(token),
        Caller::Member { token, project_id } => request
            .bearer_auth(token)
            .header("x-project-id", project_id),
        Caller::ApiKey(key) => request.header("x-api-key", key),
    };
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

async fn send_json(app: &TestApp, caller: &Caller, op: &Operation, variables: &Value) -> Reply {
    let request = app.gql(&op.document).vars(variables.clone());
    let request = match caller {
        Caller::Anonymous => request,
        Caller::User { token } => request.token(token),
        Caller::Member { token, project_id } => request.token(token).project(project_id),
        Caller::ApiKey(key) => request.api_key(key),
    };
    request.send().await
}

/// The letter of an answer: whether the access checks let the caller through.
fn verdict(status: u16, errors: &Value) -> char {
    if status == 401 {
        return 'U';
    }
    if status == 403 {
        return 'F';
    }
    for error in errors.as_array().map(Vec::as_slice).unwrap_or_default() {
        match error["extensions"]["code"].as_str() {
            Some("FORBIDDEN") => return 'F',
            Some("UNAUTHENTICATED") => return 'U',
            Some("BAD_USER_INPUT") if error["extensions"]["field"] == "X-Project-Id" => {
                return 'P';
            }
            _ => {}
        }
    }
    'Y'
}

/// A subscription's verdict: its first message, or `Y` when it stays open and quiet.
async fn subscribe(app: &TestApp, caller: &Caller, op: &Operation, variables: &Value) -> char {
    let mut socket = WsClient::connect(&app.ws_url()).await;
    socket
        .send(json!({ "type": "connection_init", "payload": caller.ws_payload() }))
        .await;
    match socket.next_within(Duration::from_secs(5)).await {
        Some(parley_tests::ws::Event::Message(m)) if m["type"] == "connection_ack" => {}
        Some(parley_tests::ws::Event::Closed(Some(4403))) => return 'U',
        other => panic!("{}: no ack: {other:?}", op.name),
    }
    socket
        .send(json!({ "id": "1", "type": "subscribe",
                      "payload": { "query": op.document, "variables": variables } }))
        .await;
    match socket.next_within(Duration::from_millis(1_500)).await {
        None => 'Y',
        Some(parley_tests::ws::Event::Message(m)) => match m["type"].as_str() {
            Some("next") => verdict(200, &m["payload"]["errors"]),
            Some("error") => panic!("{} does not validate: {m}", op.name),
            _ => 'Y',
        },
        Some(parley_tests::ws::Event::Closed(code)) => panic!("{} closed {code:?}", op.name),
    }
}

async fn spawn() -> TestApp {
    let mode = Mode::Production;
    let shared = Shared::fresh(&mode).await;
    // Some thousand requests from one address in a few seconds: not what is tested here.
    TestApp::spawn_with(mode, &shared, |s| {
        s.limits.per_ip = 0;
        s.limits.per_api_key = 0;
        s.limits.login_per_ip = 0;
    })
    .await
}

async fn api_key(app: &TestApp, owner: &Owner) -> (String, String) {
    let created = app
        .gql("mutation { createApiKey(name: \"matrix\") { secret apiKey { id } } }")
        .as_member(owner)
        .data()
        .await;
    (
        created["createApiKey"]["secret"]
            .as_str()
            .unwrap()
            .to_owned(),
        created["createApiKey"]["apiKey"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[tokio::test]
async fn every_operation_is_open_to_exactly_the_callers_in_the_table() {
    let app = spawn().await;
    let (schema, roots) = Schema::read(&app).await;
    let operations = schema.operations(&roots);

    let owner = app.sign_up("Matrix").await;
    let mut callers = vec![
        Caller::Anonymous,
        Caller::User {
            token: owner.token.clone(),
        },
    ];
    let stranger = app.sign_up("Stranger").await;
    callers.push(Caller::member(&stranger, &owner.project_id));
    callers.push(Caller::member(&owner, &owner.project_id));
    for role in ["MANAGER", "AGENT", "FINANCE"] {
        let (member, _) = app.add_member(&owner, role).await;
        callers.push(Caller::member(&member, &owner.project_id));
    }
    callers.push(Caller::ApiKey(api_key(&app, &owner).await.0));

    let mut observed = BTreeMap::new();
    // Subscriptions first and together: an open one costs a wait.
    let subscriptions = operations
        .iter()
        .filter(|o| o.kind == Kind::Subscription)
        .flat_map(|op| callers.iter().map(move |c| (op, c)));
    let app_ref = &app;
    let letters = futures::future::join_all(subscriptions.map(|(op, caller)| async move {
        (
            op.name.clone(),
            subscribe(app_ref, caller, op, &op.variables).await,
        )
    }))
    .await;
    for (name, letter) in letters {
        observed
            .entry(name)
            .or_insert_with(String::new)
            .push(letter);
    }
    // Queries, then mutations (which may change the project: the owner's `archiveProject`
    // turns later writes into PROJECT_ARCHIVED, which still counts as having run).
    for kind in [Kind::Query, Kind::Mutation] {
        for op in operations.iter().filter(|o| o.kind == kind) {
            let mut letters = String::new();
            for caller in &callers {
                let reply = call(&app, caller, op, &op.variables).await;
                assert!(
                    reply.status.as_u16() < 500,
                    "{} answered {}: {}",
                    op.name,
                    reply.status,
                    reply.body
                );
                assert_ne!(
                    reply.error_code(),
                    Some("GRAPHQL_VALIDATION_FAILED"),
                    "the generated {} does not validate: {}",
                    op.document,
                    reply.body
                );
                letters.push(verdict(reply.status.as_u16(), &reply.body["errors"]));
            }
            observed.insert(op.name.clone(), letters);
        }
    }

    let expected: BTreeMap<&str, &str> = EXPECTED.iter().copied().collect();
    let mut problems = Vec::new();
    for (name, letters) in &observed {
        match expected.get(name.as_str()) {
            None => problems.push(format!("    (\"{name}\", \"{letters}\"), // new: no row")),
            Some(want) if want != letters => problems.push(format!(
                "    (\"{name}\", \"{letters}\"), // expected {want}: {}",
                differences(want, letters)
            )),
            Some(_) => {}
        }
    }
    for name in expected.keys() {
        if !observed.contains_key(*name) {
            problems.push(format!("{name}: in the table but not in the schema"));
        }
    }
    let cells = observed.len() * CALLERS.len();
    eprintln!(
        "permission matrix: {} operations x {} callers = {cells} cells",
        observed.len(),
        CALLERS.len()
    );
    assert!(
        problems.is_empty(),
        "{} of {} operations differ from the table:\n{}",
        problems.len(),
        observed.len(),
        problems.join("\n")
    );
}

fn differences(want: &str, got: &str) -> String {
    want.chars()
        .zip(got.chars())
        .zip(CALLERS)
        .filter(|((w, g), _)| w != g)
        .map(|((w, g), who)| format!("{who} {w}->{g}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Another project's objects, by the id each mutation returned.
async fn other_project(app: &TestApp) -> (Owner, BTreeMap<&'static str, String>) {
    let b = app.sign_up("TenantB").await;
    let mut ids = BTreeMap::new();
    let mut create = async |what: &'static str, document: &str, vars: Value, path: &[&str]| {
        let data = app.gql(document).as_member(&b).vars(vars).data().await;
        let mut value = &data;
        for step in path {
            value = &value[*step];
        }
        ids.insert(what, value.as_str().unwrap().to_owned());
    };
    create(
        "contact",
        "mutation($i: CreateContactInput!) { createContact(input: $i) { id } }",
        json!({ "i": { "name": "Secret Tenant B", "phone": "9812399999" } }),
        &["createContact", "id"],
    )
    .await;
    create(
        "tag",
        "mutation { createTag(input: { name: \"secret-b\" }) { id } }",
        json!({}),
        &["createTag", "id"],
    )
    .await;
    create(
        "attribute",
        "mutation { createAttribute(key: \"secretb\", displayName: \"Secret B\") { id } }",
        json!({}),
        &["createAttribute", "id"],
    )
    .await;
    create(
        "segment",
        "mutation { createSegment(name: \"secret-b\", filter: {}) { id } }",
        json!({}),
        &["createSegment", "id"],
    )
    .await;
    create(
        "template",
        "mutation($i: TemplateInput!) { createTemplate(input: $i) { id } }",
        json!({ "i": { "name": "secret_b", "language": "en_US", "category": "UTILITY",
                       "body": "Hi {{1}}, your order is ready.", "bodyExamples": ["Ana"] } }),
        &["createTemplate", "id"],
    )
    .await;
    let (_, key_id) = api_key(app, &b).await;
    ids.insert("api key", key_id);
    let (_, member_id) = app.add_member(&b, "AGENT").await;
    ids.insert("member", member_id);
    ids.insert("project", b.project_id.clone());
    ids.insert("user", b.user_id.clone());
    (b, ids)
}

const B_SNAPSHOT: &str = "{ project { name archived } contacts { edges { node { id name phone tags { id } optedIn incomingBlocked } } }
  tags { id name } attributes { id key displayName } segments { id name }
  templates { edges { node { id name status } } }
  apiKeys { edges { node { id revokedAt } } } members { edges { node { id role active } } } }";

#[tokio::test]
async fn no_operation_reaches_another_projects_objects() {
    let app = spawn().await;
    let (schema, roots) = Schema::read(&app).await;
    let operations = schema.operations(&roots);
    let a = app.sign_up("TenantA").await;
    let (b, b_ids) = other_project(&app).await;
    let before = app.gql(B_SNAPSHOT).as_member(&b).data().await;

    let caller = Caller::member(&a, &a.project_id);
    let (a_key, _) = api_key(&app, &a).await;
    let key_caller = Caller::ApiKey(a_key);
    let mut tried = 0;
    let mut codes = BTreeMap::<String, usize>::new();
    let mut leaks = Vec::new();
    for op in operations
        .iter()
        .filter(|o| o.kind != Kind::Subscription && !o.ids.is_empty())
    {
        for (what, id) in &b_ids {
            let mut variables = op.variables.clone();
            for pointer in &op.ids {
                *variables.pointer_mut(pointer).unwrap() = json!(id);
            }
            for caller in [&caller, &key_caller] {
                let reply = call(&app, caller, op, &variables).await;
                tried += 1;
                assert!(reply.status.as_u16() < 500, "{}: {}", op.name, reply.body);
                let data = reply.body["data"].to_string();
                let leaked = b_ids
                    .values()
                    .filter(|v| *v != id)
                    .any(|v| data.contains(v.as_str()))
                    || data.contains("Secret")
                    || data.contains("secret")
                    || !matches!(&reply.body["data"][&op.name], Value::Null)
                        && reply.body["errors"].is_null()
                        && looks_found(&reply.body["data"][&op.name]);
                if leaked {
                    leaks.push(format!(
                        "{} with the {what} id of B: {}",
                        op.name, reply.body
                    ));
                }
                let code = reply.error_code().unwrap_or("(data)").to_owned();
                *codes.entry(code).or_default() += 1;
            }
        }
    }
    let after = app.gql(B_SNAPSHOT).as_member(&b).data().await;
    eprintln!("cross-tenant: {tried} requests; answers by code: {codes:?}");
    assert!(
        leaks.is_empty(),
        "{} leaks:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    assert_eq!(before, after, "the other project changed");
    // What the other project was asked for is refused, never found.
    let allowed: BTreeSet<&str> = ["NOT_FOUND", "FORBIDDEN", "BAD_USER_INPUT", "(data)"].into();
    let unexpected: Vec<_> = codes
        .keys()
        .filter(|c| !allowed.contains(c.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "unexpected answers: {codes:?}");
}

/// Whether a result holds an object (a lookup that found something), rather than an empty
/// list, page or `false`.
fn looks_found(value: &Value) -> bool {
    match value {
        Value::Object(o) => {
            if let Some(edges) = o.get("edges") {
                return edges.as_array().is_some_and(|e| !e.is_empty());
            }
            o.contains_key("id")
        }
        Value::Array(items) => items.iter().any(looks_found),
        _ => false,
    }
}
