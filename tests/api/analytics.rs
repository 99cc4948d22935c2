use std::time::Duration;

use parley_tests::{TestApp, eventually};
use serde_json::{Value, json};

const REPORT: &str = "query($from: DateTime!, $to: DateTime!) { activityReport(from: $from, to: $to) { day kind count } }";

fn today_range() -> Value {
    let now = chrono::Utc::now();
    json!({ "from": (now - chrono::Duration::days(1)).to_rfc3339(), "to": (now + chrono::Duration::days(1)).to_rfc3339() })
}

#[tokio::test]
async fn events_recorded_with_a_change_reach_clickhouse_once() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Numbers").await;
    app.add_member(&owner, "AGENT").await;
    app.add_member(&owner, "FINANCE").await;

    let project = &owner.project_id;
    eventually(Duration::from_secs(15), "events in ClickHouse", || async {
        app.clickhouse_count(&format!(
            "SELECT uniqExact(event_id) FROM events WHERE project_id = toUUID('{project}')"
        ))
        .await
            >= 4
    })
    .await;

    let report = app
        .gql(REPORT)
        .as_member(&owner)
        .vars(today_range())
        .data()
        .await;
    let mut counts: Vec<(String, u64)> = report["activityReport"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            // The trial credits' ledger entry.
            ("billing.wallet".into(), 1),
            ("member.added".into(), 2),
            ("project.created".into(), 1)
        ]
    );

    // Another tenant's report holds only its own events.
    let other = app.sign_up("Elsewhere").await;
    eventually(
        Duration::from_secs(15),
        "the other project's event",
        || async {
            let r = app
                .gql(REPORT)
                .as_member(&other)
                .vars(today_range())
                .data()
                .await;
            r["activityReport"].as_array().is_some_and(|a| a.len() == 2)
        },
    )
    .await;
    let r = app
        .gql(REPORT)
        .as_member(&other)
        .vars(today_range())
        .data()
        .await;
    let day = &r["activityReport"][0]["day"];
    assert_eq!(
        r["activityReport"],
        json!([
            { "day": day, "kind": "billing.wallet", "count": 1 },
            { "day": day, "kind": "project.created", "count": 1 },
        ])
    );
}

#[tokio::test]
async fn a_refused_change_records_no_event() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Careful").await;
    for _ in 0..5 {
        app.add_member(&owner, "AGENT").await;
    }
    // Over the free-trial limit: the transaction rolls back with its outbox row.
    app.gql(parley_tests::client::ADD_MEMBER)
        .as_member(&owner)
        .vars(json!({ "input": { "username": "one-too-many", "displayName": "X", "password": "long enough pw", "role": "AGENT" } }))
        .send()
        .await
        .expect_error("PLAN_LIMIT_REACHED");
    let project = owner.project_id.clone();
    eventually(Duration::from_secs(15), "six events shipped", || async {
        app.clickhouse_count(&format!(
            "SELECT uniqExact(event_id) FROM events WHERE project_id = toUUID('{project}')"
        ))
        .await
            >= 6
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let added = app.clickhouse_count(&format!("SELECT uniqExact(event_id) FROM events WHERE project_id = toUUID('{project}') AND kind = 'member.added'"),
    )
    .await;
    assert_eq!(added, 5);
}
