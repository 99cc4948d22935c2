//! The default mode: SQLite, the in-process bus and the embedded analytics store.

use std::time::Duration;

use parley_tests::{
    TestApp, eventually,
    ws::{Event, WsClient},
};
use serde_json::json;

#[tokio::test]
async fn the_embedded_mode_serves_sign_up_subscriptions_and_reports() {
    let app = TestApp::spawn_embedded().await;
    assert!(app.settings.database_url().starts_with("sqlite:"));
    let owner = app.sign_up("Laptop").await;

    let mut client = WsClient::connect(&app.ws_url()).await;
    client
        .init(json!({ "authorization": format!("Bearer {}", owner.token), "projectId": owner.project_id }))
        .await;
    client
        .subscribe("1", "subscription { projectChanges { topic memberId } }")
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, member_id) = app.add_member(&owner, "AGENT").await;
    match client.next().await {
        Event::Message(m) => assert_eq!(
            m["payload"]["data"]["projectChanges"]["memberId"],
            member_id.as_str()
        ),
        other => panic!("{other:?}"),
    }

    let now = chrono::Utc::now();
    let vars = json!({ "from": (now - chrono::Duration::days(1)).to_rfc3339(), "to": (now + chrono::Duration::days(1)).to_rfc3339() });
    eventually(Duration::from_secs(10), "the embedded report", || async {
        let r = app
            .gql("query($from: DateTime!, $to: DateTime!) { activityReport(from: $from, to: $to) { kind count } }")
            .as_member(&owner)
            .vars(vars.clone())
            .data()
            .await;
        let mut kinds: Vec<(String, u64)> = r["activityReport"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["kind"].as_str().unwrap().to_owned(), c["count"].as_u64().unwrap()))
            .collect();
        kinds.sort();
        kinds
            == vec![
                ("billing.wallet".to_owned(), 1),
                ("member.added".to_owned(), 1),
                ("project.created".to_owned(), 1),
            ]
    })
    .await;

    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn the_embedded_mode_keeps_its_signing_key_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: std::path::PathBuf| async move {
        let settings = parley_api::Settings {
            port: 0,
            data_dir: dir,
            ..Default::default()
        };
        parley_api::Application::build(settings)
            .await
            .unwrap()
            .spawn()
    };
    let first = start(dir.path().to_path_buf()).await;
    let http = reqwest::Client::new();
    let body = json!({ "query": parley_tests::client::SIGN_UP, "variables": { "input": {
        "username": "restart-owner", "displayName": "R", "password": "long enough pw", "projectName": "P" } } });
    let reply: serde_json::Value = http
        .post(first.url("/graphql"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reply["data"]["signUp"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    first.stop().await.unwrap();

    let second = start(dir.path().to_path_buf()).await;
    let me: serde_json::Value = http
        .post(second.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": "{ viewer { username } }" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["data"]["viewer"]["username"], "restart-owner");
    let secret = std::fs::metadata(dir.path().join("jwt-secret")).unwrap();
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&secret.permissions()) & 0o777,
        0o600
    );
    second.stop().await.unwrap();
}
