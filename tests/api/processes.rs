//! Two real server processes sharing PostgreSQL and Redis: a change made through one
//! reaches a subscriber connected to the other.

use std::time::Duration;

use parley_tests::{
    Mode, Shared, TestApp,
    client::ADD_MEMBER,
    process::ProcessNode,
    ws::{Event, WsClient},
};
use serde_json::json;

#[tokio::test]
async fn a_separate_server_process_delivers_events_published_by_another() {
    let mode = Mode::Production;
    let shared = Shared::fresh(&mode).await;
    let node_a = TestApp::spawn_with(mode, &shared, |_| {}).await;
    let owner = node_a.sign_up("Processes").await;

    let node_b = ProcessNode::start(&shared).await;

    let mut subscriber = WsClient::connect(&node_b.ws_url()).await;
    subscriber
        .init(json!({ "authorization": format!("Bearer {}", owner.token), "projectId": owner.project_id }))
        .await;
    subscriber
        .subscribe("1", "subscription { projectChanges { topic memberId } }")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let added = node_a
        .gql(ADD_MEMBER)
        .as_member(&owner)
        .vars(json!({ "input": { "username": "process-agent", "displayName": "P", "password": "long enough pw", "role": "AGENT" } }))
        .data()
        .await;
    match subscriber.next().await {
        Event::Message(m) => {
            assert_eq!(
                m["payload"]["data"]["projectChanges"]["topic"],
                "member.added"
            );
            assert_eq!(
                m["payload"]["data"]["projectChanges"]["memberId"],
                added["addMember"]["id"]
            );
        }
        other => panic!("expected the event, got {other:?}"),
    }
    node_b.kill().await;
}
