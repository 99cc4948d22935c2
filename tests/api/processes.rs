//! Two real server processes sharing PostgreSQL and Redis: a change made through one
//! reaches a subscriber connected to the other.

use std::{process::Stdio, time::Duration};

use parley_tests::{
    CLICKHOUSE_URL, JWT_SECRET, Mode, REDIS_URL, Shared, TestApp,
    client::ADD_MEMBER,
    eventually,
    ws::{Event, WsClient},
};
use serde_json::json;
use tokio::process::Command;

/// The server binary beside this test binary (`scripts/test` builds it first).
fn server_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let binary = profile_dir.join("parley");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p parley-api --bin parley` (scripts/test does)",
        binary.display()
    );
    binary
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_separate_server_process_delivers_events_published_by_another() {
    let mode = Mode::Production;
    let shared = Shared::fresh(&mode).await;
    let node_a = TestApp::spawn_with(mode, &shared, |_| {}).await;
    let owner = node_a.sign_up("Processes").await;

    let port = free_port();
    let data_dir = tempfile::tempdir().unwrap();
    let mut node_b = Command::new(server_binary())
        .current_dir(data_dir.path())
        .env("PARLEY_PORT", port.to_string())
        .env("PARLEY_DATA_DIR", data_dir.path())
        .env("DATABASE_URL", shared.database_url.as_deref().unwrap())
        .env("REDIS_URL", REDIS_URL)
        .env("REDIS_CHANNEL_PREFIX", &shared.redis_prefix)
        .env("CLICKHOUSE_URL", CLICKHOUSE_URL)
        .env(
            "CLICKHOUSE_DATABASE",
            shared.clickhouse_database.as_deref().unwrap(),
        )
        .env("JWT_SECRET", JWT_SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the server binary starts");

    let health = format!("http://127.0.0.1:{port}/healthz");
    eventually(
        Duration::from_secs(30),
        "the second process to serve",
        || async {
            reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().is_success())
        },
    )
    .await;

    let mut subscriber = WsClient::connect(&format!("ws://127.0.0.1:{port}/graphql/ws")).await;
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
    node_b.kill().await.unwrap();
}
