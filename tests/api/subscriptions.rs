use std::time::Duration;

use parley_tests::{
    Mode, Owner, Shared, TestApp,
    client::ADD_MEMBER,
    ws::{Event, WsClient},
};
use serde_json::{Value, json};

const CHANGES: &str = "subscription { projectChanges { topic projectId memberId role active } }";

fn credentials(who: &Owner) -> Value {
    json!({ "authorization": format!("Bearer {}", who.token), "projectId": who.project_id })
}

async fn next_message(client: &mut WsClient) -> Value {
    match client.next().await {
        Event::Message(message) => message,
        Event::Closed(code) => panic!("closed with {code:?}"),
    }
}

async fn add_agent(app: &TestApp, owner: &Owner, username: &str) -> String {
    let data = app
        .gql(ADD_MEMBER)
        .as_member(owner)
        .vars(json!({ "input": { "username": username, "displayName": "Agent", "password": "long enough pw", "role": "AGENT" } }))
        .data()
        .await;
    data["addMember"]["id"].as_str().unwrap().to_owned()
}

/// Subscribes, then proves the subscription is live by waiting until a member added
/// through `writer` arrives (the bus subscription is set up asynchronously).
async fn expect_member_added(writer: &TestApp, owner: &Owner, client: &mut WsClient) -> Value {
    let username = format!("agent-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    // Let the subscription reach the bus before publishing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let member_id = add_agent(writer, owner, &username).await;
    let message = next_message(client).await;
    assert_eq!(message["type"], "next", "{message}");
    let change = &message["payload"]["data"]["projectChanges"];
    assert_eq!(change["memberId"], member_id.as_str());
    change.clone()
}

#[tokio::test]
async fn owners_see_member_changes_live_over_redis() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Live").await;
    let mut client = WsClient::connect(&app.ws_url()).await;
    client.init(credentials(&owner)).await;
    client.subscribe("changes", CHANGES).await;
    let change = expect_member_added(&app, &owner, &mut client).await;
    assert_eq!(
        change,
        json!({ "topic": "member.added", "projectId": owner.project_id, "memberId": change["memberId"], "role": "AGENT", "active": true })
    );

    // Another project's changes never arrive.
    let other = app.sign_up("Other").await;
    add_agent(
        &app,
        &other,
        &format!("other-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
    )
    .await;
    assert!(
        client
            .next_within(Duration::from_millis(500))
            .await
            .is_none()
    );

    // complete stops the subscription; the id can be used again.
    client
        .send(json!({ "type": "complete", "id": "changes" }))
        .await;
    client.subscribe("changes", CHANGES).await;
    expect_member_added(&app, &owner, &mut client).await;
}

#[tokio::test]
async fn an_event_published_by_one_node_reaches_a_subscriber_of_another() {
    let mode = Mode::Production;
    let shared = Shared::fresh(&mode).await;
    let node_a = TestApp::spawn_with(mode.clone(), &shared, |_| {}).await;
    let node_b = TestApp::spawn_with(mode, &shared, |_| {}).await;
    let owner = node_a.sign_up("Cluster").await;

    let mut on_b = WsClient::connect(&node_b.ws_url()).await;
    on_b.init(credentials(&owner)).await;
    on_b.subscribe("1", CHANGES).await;
    let mut on_a = WsClient::connect(&node_a.ws_url()).await;
    on_a.init(credentials(&owner)).await;
    on_a.subscribe("1", CHANGES).await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let member_id = add_agent(&node_a, &owner, "cross-node-agent").await;
    for client in [&mut on_b, &mut on_a] {
        let message = next_message(client).await;
        assert_eq!(
            message["payload"]["data"]["projectChanges"]["memberId"],
            member_id.as_str()
        );
    }
}

#[tokio::test]
async fn roles_that_may_not_subscribe_get_an_error_not_a_stream() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Live").await;
    let (agent, _) = app.add_member(&owner, "AGENT").await;
    let mut client = WsClient::connect(&app.ws_url()).await;
    client.init(credentials(&agent)).await;
    client.subscribe("1", CHANGES).await;
    let message = next_message(&mut client).await;
    assert_eq!(
        message["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{message}"
    );
    assert_eq!(
        next_message(&mut client).await,
        json!({ "type": "complete", "id": "1" })
    );
}

#[tokio::test]
async fn queries_and_validation_errors_over_the_socket() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Socket").await;
    let mut client = WsClient::connect(&app.ws_url()).await;
    client.init(credentials(&owner)).await;
    client.send(json!({ "type": "ping" })).await;
    assert_eq!(next_message(&mut client).await, json!({ "type": "pong" }));

    client.subscribe("q", "{ project { id } }").await;
    let result = next_message(&mut client).await;
    assert_eq!(
        result["payload"]["data"]["project"]["id"],
        owner.project_id.as_str()
    );
    assert_eq!(
        next_message(&mut client).await,
        json!({ "type": "complete", "id": "q" })
    );

    client
        .subscribe("bad", "subscription { noSuchThing }")
        .await;
    let error = next_message(&mut client).await;
    assert_eq!(error["type"], "error");
    assert_eq!(
        error["payload"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
}

#[tokio::test]
async fn the_protocol_closes_with_its_codes() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Codes").await;

    let mut bad_token = WsClient::connect(&app.ws_url()).await;
    bad_token
        .send(json!({ "type": "connection_init", "payload": { "authorization": "Bearer nope" } }))
        .await;
    assert_eq!(bad_token.close_code().await, Some(4403));

    let mut too_early = WsClient::connect(&app.ws_url()).await;
    too_early.subscribe("1", CHANGES).await;
    assert_eq!(too_early.close_code().await, Some(4401));

    let mut duplicate = WsClient::connect(&app.ws_url()).await;
    duplicate.init(credentials(&owner)).await;
    duplicate.subscribe("same", CHANGES).await;
    duplicate.subscribe("same", CHANGES).await;
    assert_eq!(duplicate.close_code().await, Some(4409));

    let mut twice = WsClient::connect(&app.ws_url()).await;
    twice.init(credentials(&owner)).await;
    twice.send(json!({ "type": "connection_init" })).await;
    assert_eq!(twice.close_code().await, Some(4429));

    let mut garbage = WsClient::connect(&app.ws_url()).await;
    garbage.send(json!({ "type": "nonsense" })).await;
    assert_eq!(garbage.close_code().await, Some(4400));

    let mut no_protocol = WsClient::connect_with_protocol(&app.ws_url(), None).await;
    assert_eq!(no_protocol.close_code().await, Some(4406));

    // The test servers allow 2 seconds for connection_init.
    let mut silent = WsClient::connect(&app.ws_url()).await;
    let started = std::time::Instant::now();
    assert_eq!(silent.close_code().await, Some(4408));
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn a_deactivated_member_is_disconnected_at_once() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Revoke").await;
    let (manager, manager_id) = app.add_member(&owner, "MANAGER").await;
    let mut client = WsClient::connect(&app.ws_url()).await;
    client.init(credentials(&manager)).await;
    client.subscribe("1", CHANGES).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.gql("mutation($id: ID!) { deactivateMember(id: $id) { active } }")
        .as_member(&owner)
        .vars(json!({ "id": manager_id }))
        .data()
        .await;
    assert_eq!(client.close_code().await, Some(4403));
    // Reconnecting is refused now.
    let mut again = WsClient::connect(&app.ws_url()).await;
    again.init(credentials(&manager)).await;
    again.subscribe("1", CHANGES).await;
    let message = next_message(&mut again).await;
    assert_eq!(
        message["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{message}"
    );
}
