//! Hostile input at the edges: abusive GraphQL documents, oversized and batched bodies,
//! password guessing, request floods per address and per API key, and API keys revoked
//! while in use.

use std::time::Duration;

use parley_tests::{Mode, Shared, TestApp, ws::WsClient};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn spawn(adjust: impl FnOnce(&mut parley_api::Settings)) -> TestApp {
    let mode = Mode::Production;
    let shared = Shared::fresh(&mode).await;
    TestApp::spawn_with(mode, &shared, adjust).await
}

async fn post_raw(app: &TestApp, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn abusive_documents_are_refused_before_they_run() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Abuse").await;

    // Many aliases of one expensive field: each costs its whole page.
    let aliases = format!(
        "{{ {} }}",
        (0..30)
            .map(|i| format!(
                "a{i}: contacts(first: 100) {{ edges {{ node {{ id name phone }} }} }}"
            ))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let reply = app.gql(&aliases).as_member(&owner).send().await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let message = reply.expect_error("GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains("aliased fields"), "{message}");
    assert!(reply.body["data"].is_null());
    // Over WebSocket too: the subscription is refused with the same code and never runs.
    let aliased_events = format!(
        "subscription {{ {} }}",
        (0..30)
            .map(|i| format!("e{i}: chatEvents {{ seq }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut socket = WsClient::connect(&app.ws_url()).await;
    socket
        .init(json!({
            "authorization": format!("Bearer {}", owner.token),
            "projectId": owner.project_id,
        }))
        .await;
    socket.subscribe("many", &aliased_events).await;
    let parley_tests::ws::Event::Message(refusal) = socket.next().await else {
        panic!("the socket closed instead of refusing the subscription");
    };
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["id"], "many");
    assert_eq!(
        refusal["payload"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert!(
        refusal["payload"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("aliased fields"),
        "{refusal}"
    );

    // Depth through fragments counts as if written out.
    let mut fragments = String::from("fragment F0 on __Type { name }");
    for i in 1..20 {
        fragments.push_str(&format!(
            " fragment F{i} on __Type {{ ofType {{ ...F{} }} }}",
            i - 1
        ));
    }
    let deep = format!("{{ __schema {{ queryType {{ ...F19 }} }} }} {fragments}");
    let reply = app.gql(&deep).send().await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let message = reply.expect_error("GRAPHQL_VALIDATION_FAILED");
    assert!(
        message.contains("depth") || message.contains("nested"),
        "{message}"
    );

    // A fragment that spreads itself never runs.
    let cycle = "{ __schema { queryType { ...A } } } fragment A on __Type { ofType { ...A } }";
    app.gql(cycle)
        .send()
        .await
        .expect_error("GRAPHQL_VALIDATION_FAILED");

    // Pathological nesting in the document or the variables is refused, not a crash.
    let nested_list = format!(
        "{{ contacts(filter: {{ sources: {}\"x\"{} }}) {{ pageInfo {{ hasNextPage }} }} }}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let reply = app.gql(&nested_list).as_member(&owner).send().await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        matches!(
            reply.error_code(),
            Some("GRAPHQL_PARSE_FAILED" | "GRAPHQL_VALIDATION_FAILED")
        ),
        "{}",
        reply.body
    );
    let deep_variables = format!(
        "{{\"query\":\"query($f: ContactFilterInput) {{ contacts(filter: $f) {{ pageInfo {{ hasNextPage }} }} }}\",\"variables\":{{\"f\":{}1{}}}}}",
        "{\"not\":".repeat(3_000),
        "}".repeat(3_000)
    );
    let (status, body) = post_raw(&app, deep_variables).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "BAD_USER_INPUT");
    // Directives repeated many times, and thousands of unknown fields: one clear refusal.
    let directives = format!("{{ __typename {} }}", "@skip(if: false) ".repeat(2_000));
    let reply = app.gql(&directives).send().await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let unknown = format!(
        "{{ {} }}",
        (0..5_000)
            .map(|i| format!("f{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let reply = app.gql(&unknown).send().await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    reply.expect_error("GRAPHQL_VALIDATION_FAILED");

    // The same nesting over a WebSocket is an error message, and the connection lives on.
    let mut socket = WsClient::connect(&app.ws_url()).await;
    socket
        .init(json!({ "token": owner.token, "projectId": owner.project_id }))
        .await;
    let nested_subscription = format!(
        "subscription {{ messageUpdates(contactId: {}\"x\"{}) {{ id }} }}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    socket.subscribe("1", &nested_subscription).await;
    let refused = socket.next().await;
    let parley_tests::ws::Event::Message(refused) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(refused["type"], "error", "{refused}");
    assert!(refused.to_string().contains("deeper than"), "{refused}");
    socket.subscribe("2", "{ project { id } }").await;
    let answered = socket.next().await;
    assert!(
        format!("{answered:?}").contains(&owner.project_id),
        "{answered:?}"
    );

    // The server is still answering.
    app.gql("{ project { id } }").as_member(&owner).data().await;
}

#[tokio::test]
async fn batches_are_refused_whatever_their_size() {
    let app = TestApp::spawn().await;
    for batch in [
        json!([{ "query": "{ __typename }" }]),
        json!(
            (0..1_000)
                .map(|_| json!({ "query": "{ __typename }" }))
                .collect::<Vec<_>>()
        ),
    ] {
        let (status, body) = post_raw(&app, format!("  \n{batch}")).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(code(&body), "BAD_USER_INPUT");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("batched"), "{message}");
    }
    // One operation per request goes through.
    let (status, body) = post_raw(&app, json!({ "query": "{ __typename }" }).to_string()).await;
    assert_eq!(status, 200, "{body}");
}

/// A body of `len` bytes sent without a length (chunked), in pieces.
fn chunked(prefix: &'static str, len: usize) -> reqwest::Body {
    let pieces = (len / 65_536).max(1);
    let stream = futures::stream::iter(
        std::iter::once(prefix.as_bytes().to_vec())
            .chain((0..pieces).map(|_| vec![b' '; 65_536]))
            .map(Ok::<_, std::io::Error>),
    );
    reqwest::Body::wrap_stream(stream)
}

#[tokio::test]
async fn oversized_bodies_and_uploads_are_413_with_a_code() {
    let app = spawn(|s| {
        s.graphql.max_body_bytes = 64 * 1024;
        s.imports.max_bytes = 256 * 1024;
    })
    .await;
    let owner = app.sign_up("Big").await;
    // JSON over the GraphQL limit, with and without Content-Length.
    let big = format!(
        "{{\"query\":\"{{ __typename }}\",\"x\":\"{}\"}}",
        "y".repeat(70_000)
    );
    let (status, body) = post_raw(&app, big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let (status, body) = post_raw(&app, chunked("{\"query\":\"{ __typename }\"", 200_000)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), "BAD_USER_INPUT");

    // Uploads: far over the import limit, declared or streamed.
    let operations = json!({
        "query": "mutation($file: Upload!) { uploadContactImport(file: $file) { import { id } } }",
        "variables": { "file": null },
    });
    let form = |bytes: Vec<u8>| {
        reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(bytes)
                    .file_name("big.csv")
                    .mime_str("text/csv")
                    .unwrap(),
            )
    };
    let huge = [b"Name,Phone\n".to_vec(), vec![b'A'; 2 * 1024 * 1024]].concat();
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&owner.token)
        .header("x-project-id", &owner.project_id)
        .multipart(form(huge))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");

    let boundary = "hostileboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{operations}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{{\"0\":[\"variables.file\"]}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"0\"; filename=\"big.csv\"\r\nContent-Type: text/csv\r\n\r\nName,Phone\n"
    );
    let head: &'static str = Box::leak(head.into_boxed_str());
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&owner.token)
        .header("x-project-id", &owner.project_id)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(chunked(head, 3 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");

    // Nothing was imported, and the server still answers.
    let imports = app
        .gql("{ contactImports { edges { node { id } } } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(imports["contactImports"]["edges"], json!([]));
}

#[tokio::test]
async fn suggestions_follow_their_setting_and_introspection() {
    let typo = "{ projetc { id } }";
    let open = TestApp::spawn().await;
    let message = open
        .gql(typo)
        .send()
        .await
        .expect_error("GRAPHQL_VALIDATION_FAILED");
    assert!(message.contains("Did you mean"), "{message}");

    let quiet = spawn(|s| s.graphql.suggestions = false).await;
    let message = quiet
        .gql(typo)
        .send()
        .await
        .expect_error("GRAPHQL_VALIDATION_FAILED");
    assert!(!message.contains("Did you mean"), "{message}");
    assert!(!message.contains("project"), "{message}");
    // Introspection stays as configured.
    quiet
        .gql("{ __schema { queryType { name } } }")
        .data()
        .await;

    let closed = spawn(|s| s.graphql.introspection = false).await;
    let message = closed
        .gql(typo)
        .send()
        .await
        .expect_error("GRAPHQL_VALIDATION_FAILED");
    assert!(!message.contains("Did you mean"), "{message}");
    let reply = closed.gql("{ __schema { types { name } } }").send().await;
    assert!(reply.body["data"]["__schema"].is_null(), "{}", reply.body);
    assert!(
        !reply.body.to_string().contains("Contact"),
        "{}",
        reply.body
    );
}

const LOG_IN: &str =
    "mutation($u: String!, $p: String!) { logIn(input: { username: $u, password: $p }) { token } }";

async fn log_in(app: &TestApp, username: &str, password: &str) -> parley_tests::client::Reply {
    app.gql(LOG_IN)
        .vars(json!({ "u": username, "p": password }))
        .send()
        .await
}

fn retry_after(reply: &parley_tests::client::Reply) -> u64 {
    let header: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        reply.body["errors"][0]["extensions"]["retryAfter"].as_u64(),
        Some(header),
        "{}",
        reply.body
    );
    header
}

#[tokio::test]
async fn password_guessing_is_throttled_per_account_and_per_address() {
    let app = spawn(|s| {
        s.limits.login_per_account = 3;
        s.limits.login_per_ip = 6;
    })
    .await;
    let victim = app.sign_up("Victim").await;
    for guess in ["123456", "password", "qwerty"] {
        log_in(&app, &victim.username, guess)
            .await
            .expect_error("UNAUTHENTICATED");
    }
    // The fourth try is refused before the password is looked at, even the right one.
    let refused = log_in(&app, &victim.username, &victim.password).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    refused.expect_error("RATE_LIMITED");
    assert!(refused.body["data"].is_null(), "{}", refused.body);
    // 15 minutes for 3 tries: one comes back after 5 minutes.
    let wait = retry_after(&refused);
    assert!((200..=300).contains(&wait), "{wait}");
    // The user name's case and spacing do not open another account's budget.
    log_in(&app, &format!(" {} ", victim.username.to_uppercase()), "x")
        .await
        .expect_error("RATE_LIMITED");

    // Spraying other accounts from the same address runs into the address's limit
    // (five tries of its six are used: three guesses and the two refusals above).
    log_in(&app, "someone-else", "guess")
        .await
        .expect_error("UNAUTHENTICATED");
    let sprayed = log_in(&app, "another-one", "guess").await;
    assert_eq!(sprayed.status, 429, "{}", sprayed.body);
    sprayed.expect_error("RATE_LIMITED");
    retry_after(&sprayed);
    // Over a WebSocket the address is the same one.
    let mut socket = WsClient::connect(&app.ws_url()).await;
    socket.init(json!({})).await;
    socket
        .send(json!({ "id": "1", "type": "subscribe", "payload": {
            "query": LOG_IN, "variables": { "u": "third-one", "p": "guess" } } }))
        .await;
    let answer = socket.next().await;
    assert!(format!("{answer:?}").contains("RATE_LIMITED"), "{answer:?}");
    // Sessions already open are not affected.
    app.gql("{ project { id } }")
        .as_member(&victim)
        .data()
        .await;
}

fn header_number(headers: &reqwest::header::HeaderMap, name: &str) -> u64 {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn requests_are_limited_per_address_with_standard_headers() {
    let app = spawn(|s| {
        s.limits.per_ip = 5;
        s.limits.window = Duration::from_secs(10);
    })
    .await;
    let mut remaining = Vec::new();
    for _ in 0..5 {
        let reply = app.gql("{ __typename }").send().await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(header_number(&reply.headers, "ratelimit-limit"), 5);
        let reset = header_number(&reply.headers, "ratelimit-reset");
        assert!((1..=10).contains(&reset), "{reset}");
        remaining.push(header_number(&reply.headers, "ratelimit-remaining"));
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    let refused = app.gql("{ __typename }").send().await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    refused.expect_error("RATE_LIMITED");
    let wait = header_number(&refused.headers, "retry-after");
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(header_number(&refused.headers, "ratelimit-remaining"), 0);
    // Every route is counted, GET and the CRM endpoint included...
    let get = app
        .http
        .get(app.url("/graphql?query={__typename}"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 429);
    let crm = app
        .http
        .post(app.url("/api/campaigns/send"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(crm.status(), 429);
    // ...but health checks and Meta's webhook are not.
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().get("ratelimit-limit").is_none());
    let webhook = app
        .http
        .get(app.url("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1"))
        .send()
        .await
        .unwrap();
    assert_ne!(webhook.status(), 429);
    // One request comes back every two seconds.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = app.gql("{ __typename }").send().await;
    assert_eq!(again.status, 200, "{}", again.body);
}

#[tokio::test]
async fn requests_are_limited_per_api_key_including_made_up_ones() {
    let app = spawn(|s| {
        s.limits.per_api_key = 3;
        s.limits.window = Duration::from_secs(60);
    })
    .await;
    let owner = app.sign_up("Keys").await;
    let mut secrets = Vec::new();
    for name in ["one", "two"] {
        let created = app
            .gql("mutation($n: String!) { createApiKey(name: $n) { secret } }")
            .as_member(&owner)
            .vars(json!({ "n": name }))
            .data()
            .await;
        secrets.push(
            created["createApiKey"]["secret"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    for i in 0..3 {
        let reply = app
            .gql("{ project { id } }")
            .api_key(&secrets[0])
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            header_number(&reply.headers, "ratelimit-remaining"),
            2 - i,
            "the key's limit is the closer one"
        );
    }
    // As a bearer token it is the same key.
    let refused = app
        .gql("{ project { id } }")
        .token(&secrets[0])
        .send()
        .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    refused.expect_error("RATE_LIMITED");
    let wait = header_number(&refused.headers, "retry-after");
    assert!((1..=20).contains(&wait), "{wait}");
    // Another key of the project, and sessions, are not held back by it.
    app.gql("{ project { id } }")
        .api_key(&secrets[1])
        .data()
        .await;
    app.gql("{ project { id } }").as_member(&owner).data().await;
    // Guessing keys: each guess counts against what was presented.
    let guess = format!("pk_{}", "g".repeat(40));
    for _ in 0..3 {
        let reply = app.gql("{ project { id } }").api_key(&guess).send().await;
        assert_eq!(reply.status, 401);
    }
    let reply = app.gql("{ project { id } }").api_key(&guess).send().await;
    assert_eq!(reply.status, 429);
}

#[tokio::test]
async fn a_revoked_api_key_is_refused_at_once_even_on_an_open_websocket() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Revoke").await;
    let created = app
        .gql("mutation { createApiKey(name: \"crm\") { secret apiKey { id } } }")
        .as_member(&owner)
        .data()
        .await;
    let secret = created["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_id = created["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // In use over HTTP and over a WebSocket.
    app.gql("{ project { id } }").api_key(&secret).data().await;
    let mut socket = WsClient::connect(&app.ws_url()).await;
    socket.init(json!({ "apiKey": secret })).await;
    socket.subscribe("1", "{ project { id } }").await;
    let first = socket.next().await;
    assert!(
        format!("{first:?}").contains(&owner.project_id),
        "{first:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    app.gql("mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }")
        .as_member(&owner)
        .vars(json!({ "id": key_id }))
        .data()
        .await;
    // The next HTTP call is refused, and the open connection is closed.
    let refused = app.gql("{ project { id } }").api_key(&secret).send().await;
    assert_eq!(refused.status, 401);
    refused.expect_error("UNAUTHENTICATED");
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                parley_tests::ws::Event::Closed(code) => return code,
                parley_tests::ws::Event::Message(_) => continue,
            }
        }
    })
    .await
    .expect("the connection is closed within 5 s");
    assert_eq!(closed, Some(4403));
    // A new connection with the key is refused.
    let mut again = WsClient::connect(&app.ws_url()).await;
    again
        .send(json!({ "type": "connection_init", "payload": { "apiKey": secret } }))
        .await;
    assert_eq!(again.close_code().await, Some(4403));
}
