use parley_tests::TestApp;
use serde_json::json;

const INTROSPECTION: &str = "query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}";

#[tokio::test]
async fn media_types_are_negotiated() {
    let app = TestApp::spawn().await;
    let ok = app.gql("{ __typename }").send().await;
    assert_eq!(ok.status, 200);
    assert!(
        ok.content_type()
            .starts_with("application/graphql-response+json")
    );
    assert_eq!(ok.body["data"]["__typename"], "Query");

    let legacy = app
        .gql("{ __typename }")
        .accept("application/json")
        .send()
        .await;
    assert!(legacy.content_type().starts_with("application/json"));

    let both = app
        .gql("{ __typename }")
        .accept("application/json;q=0.9, application/graphql-response+json")
        .send()
        .await;
    assert!(
        both.content_type()
            .starts_with("application/graphql-response+json")
    );

    let refused = app.gql("{ __typename }").accept("text/csv").send().await;
    assert_eq!(refused.status, 406);
}

#[tokio::test]
async fn request_errors_are_400_for_the_graphql_media_type_and_200_for_json() {
    let app = TestApp::spawn().await;
    for (query, code) in [
        ("{ __typename", "GRAPHQL_PARSE_FAILED"),
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let modern = app.gql(query).send().await;
        assert_eq!(modern.status, 400, "{query}");
        modern.expect_error(code);
        let legacy = app.gql(query).accept("application/json").send().await;
        assert_eq!(legacy.status, 200, "{query}");
        legacy.expect_error(code);
    }
    // A body that is not a GraphQL request at all is a 400 either way.
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let huge = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(3 * 1024 * 1024)) });
    let response = app
        .http
        .post(app.url("/graphql"))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let response = app
        .http
        .post(app.url("/graphql"))
        .header("content-type", "text/plain")
        .body("{ __typename }")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
}

#[tokio::test]
async fn get_runs_queries_but_never_mutations() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Get").await;
    let query = app
        .gql("{ project { id } }")
        .as_member(&owner)
        .get()
        .send()
        .await;
    assert_eq!(query.data()["project"]["id"], owner.project_id.as_str());

    let mutation = app
        .gql("mutation { updateProject(input: { name: \"Via GET\" }) { name } }")
        .as_member(&owner)
        .get()
        .send()
        .await;
    assert_eq!(mutation.status, 405);
    assert_eq!(mutation.headers["allow"], "POST");
    mutation.expect_error("METHOD_NOT_ALLOWED");
    let named = app
        .gql("query A { __typename } mutation B { archiveProject { id } }")
        .as_member(&owner)
        .get()
        .send()
        .await;
    assert_eq!(named.status, 400, "no operation chosen: {}", named.body);

    let unchanged = app
        .gql("{ project { name archived } }")
        .as_member(&owner)
        .data()
        .await;
    assert_ne!(unchanged["project"]["name"], "Via GET");
    assert_eq!(unchanged["project"]["archived"], false);
}

#[tokio::test]
async fn browsers_get_graphiql() {
    let app = TestApp::spawn().await;
    let page = app
        .http
        .get(app.url("/graphql"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .to_lowercase()
            .contains("graphiql")
    );
}

#[tokio::test]
async fn introspection_passes_the_limits_that_stop_abusive_queries() {
    let app = TestApp::spawn().await;
    let schema = app.gql(INTROSPECTION).data().await;
    assert_eq!(schema["__schema"]["queryType"]["name"], "Query");
    assert_eq!(
        schema["__schema"]["subscriptionType"]["name"],
        "Subscription"
    );

    // 19 levels: deeper than the limit of 15.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {} {{ name }} {} }} }} }} }}",
        "{ ofType ".repeat(14),
        "}".repeat(14)
    );
    let reply = app.gql(&deep).send().await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    reply.expect_error("GRAPHQL_VALIDATION_FAILED");

    let wide = format!(
        "{{ {} }}",
        (0..150)
            .map(|i| format!("a{i}: project {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let reply = app.gql(&wide).send().await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    reply.expect_error("GRAPHQL_VALIDATION_FAILED");
}

#[tokio::test]
async fn introspection_can_be_turned_off() {
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| s.graphql.introspection = false).await;
    let reply = app.gql("{ __schema { queryType { name } } }").send().await;
    assert!(
        reply.body["data"]["__schema"].is_null() || reply.body.get("errors").is_some(),
        "{}",
        reply.body
    );
    // Ordinary queries still work.
    let owner = app.sign_up("Quiet").await;
    app.gql("{ project { id } }").as_member(&owner).data().await;
}

#[tokio::test]
async fn health_readiness_metrics_and_request_ids() {
    let app = TestApp::spawn().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));

    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body["checks"],
        json!({ "database": "ok", "bus": "ok", "analytics": "ok" })
    );

    app.gql("{ __typename }").send().await;
    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");

    let echoed = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-123");
}
