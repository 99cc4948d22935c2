//! The ClickHouse store against the ClickHouse running locally (18.16 in CI).

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use parley_analytics::{AnalyticsStore, ClickHouseStore, Event, EventCount, EventKind};
use serde::Deserialize;
use uuid::Uuid;

use crate::common::{ChDb, clickhouse_url, event_at, total};

#[tokio::test]
async fn migrations_are_idempotent() {
    let ch = ChDb::new().await;
    ch.store.migrate().await.expect("second migrate");
    ch.store.migrate().await.expect("third migrate");

    let versions: Vec<(u32, u64)> = ch
        .client()
        .query("SELECT version, count() FROM schema_migrations GROUP BY version ORDER BY version")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(
        versions,
        vec![(1, 1), (2, 1), (3, 1)],
        "each migration recorded exactly once"
    );

    // The schema is usable after re-running.
    let project = Uuid::new_v4();
    ch.store
        .insert(&[Event::new(
            project,
            EventKind::PROJECT_CREATED,
            None,
            serde_json::json!({}),
        )])
        .await
        .unwrap();
    assert_eq!(ch.store.total_events(project).await.unwrap(), 1);
    ch.drop().await;
}

#[derive(clickhouse::Row, Deserialize, Debug, PartialEq)]
struct RawRow {
    event_id: String,
    project_id: String,
    kind: String,
    actor_id: Option<String>,
    occurred_at: u32,
    payload: String,
}

#[tokio::test]
async fn rows_round_trip_in_row_binary() {
    // Checks the RowBinary encoding of UUID, Nullable(UUID) and DateTime against what the
    // server itself reads, by rendering the stored values as text on the server.
    let ch = ChDb::new().await;
    let project = Uuid::new_v4();
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 13, 14, 15).unwrap() + Duration::milliseconds(678);
    let with_actor = event_at(project, EventKind::MEMBER_LOGGED_IN, at);
    let mut without_actor = event_at(project, EventKind::PROJECT_CREATED, at);
    without_actor.actor_id = None;
    ch.store
        .insert(&[with_actor.clone(), without_actor.clone()])
        .await
        .unwrap();

    let rows: Vec<RawRow> = ch
        .client()
        .query(
            "SELECT toString(event_id), toString(project_id), kind, \
                    toString(actor_id), \
                    toUInt32(occurred_at), payload \
             FROM events ORDER BY kind",
        )
        .fetch_all()
        .await
        .unwrap();
    let expected = |e: &Event| RawRow {
        event_id: e.event_id.to_string(),
        project_id: e.project_id.to_string(),
        kind: e.kind.clone(),
        actor_id: e.actor_id.map(|id| id.to_string()),
        occurred_at: at.timestamp() as u32,
        payload: e.payload.to_string(),
    };
    assert_eq!(rows, vec![expected(&with_actor), expected(&without_actor)]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&rows[0].payload).unwrap(),
        with_actor.payload
    );
    ch.drop().await;
}

#[tokio::test]
async fn a_batch_inserted_twice_counts_once() {
    let ch = ChDb::new().await;
    let project = Uuid::new_v4();
    let other_project = Uuid::new_v4();
    let day1 = Utc.with_ymd_and_hms(2026, 1, 31, 23, 59, 59).unwrap();
    let day2 = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap(); // another partition too
    let batch = vec![
        event_at(project, EventKind::MEMBER_LOGGED_IN, day1),
        event_at(project, EventKind::MEMBER_LOGGED_IN, day1),
        event_at(project, EventKind::MEMBER_ADDED, day1),
        event_at(project, EventKind::MEMBER_LOGGED_IN, day2),
        event_at(other_project, EventKind::MEMBER_LOGGED_IN, day2),
    ];
    ch.store.insert(&batch).await.unwrap();
    // The retry of the same batch, as after a crash before the outbox was marked.
    ch.store.insert(&batch).await.unwrap();
    // And an overlapping one.
    ch.store.insert(&batch[2..]).await.unwrap();

    let expected = vec![
        EventCount {
            day: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            kind: EventKind::MEMBER_ADDED.into(),
            count: 1,
        },
        EventCount {
            day: NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(),
            kind: EventKind::MEMBER_LOGGED_IN.into(),
            count: 2,
        },
        EventCount {
            day: NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(),
            kind: EventKind::MEMBER_LOGGED_IN.into(),
            count: 1,
        },
    ];
    let from = day1 - Duration::days(1);
    let to = day2 + Duration::days(1);
    let physical: u64 = ch
        .client()
        .query("SELECT count() FROM events")
        .fetch_one()
        .await
        .unwrap();
    assert!(
        physical > 5,
        "copies are stored until merged ({physical} rows)"
    );
    assert_eq!(
        ch.store.event_counts(project, from, to).await.unwrap(),
        expected
    );
    assert_eq!(ch.store.total_events(project).await.unwrap(), 4);
    assert_eq!(ch.store.total_events(other_project).await.unwrap(), 1);

    // After merging, ReplacingMergeTree has collapsed the copies physically too.
    ch.client()
        .query("OPTIMIZE TABLE events FINAL")
        .execute()
        .await
        .unwrap();
    let merged: u64 = ch
        .client()
        .query("SELECT count() FROM events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(merged, 5);
    assert_eq!(
        ch.store.event_counts(project, from, to).await.unwrap(),
        expected
    );
    ch.drop().await;
}

#[tokio::test]
async fn window_is_half_open() {
    let ch = ChDb::new().await;
    let project = Uuid::new_v4();
    let from = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let to = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
    ch.store
        .insert(&[
            event_at(
                project,
                EventKind::MEMBER_ADDED,
                from - Duration::seconds(1),
            ),
            event_at(project, EventKind::MEMBER_ADDED, from),
            event_at(project, EventKind::MEMBER_ADDED, to - Duration::seconds(1)),
            event_at(project, EventKind::MEMBER_ADDED, to),
        ])
        .await
        .unwrap();
    let counts = ch.store.event_counts(project, from, to).await.unwrap();
    assert_eq!(
        counts,
        vec![EventCount {
            day: from.date_naive(),
            kind: EventKind::MEMBER_ADDED.into(),
            count: 2
        }]
    );
    assert_eq!(total(&counts), 2);
    ch.drop().await;
}

#[tokio::test]
async fn unreachable_server_fails_fast() {
    let store =
        ClickHouseStore::new("http://127.0.0.1:1", "parley_unreachable", None, None).unwrap();
    assert!(store.ping().await.is_err());
    let event = Event::new(
        Uuid::new_v4(),
        EventKind::MEMBER_ADDED,
        None,
        serde_json::json!({}),
    );
    assert!(store.insert(&[event]).await.is_err());
    assert!(store.migrate().await.is_err());

    let reachable = ClickHouseStore::new(&clickhouse_url(), "default", None, None).unwrap();
    reachable.ping().await.expect("ping the running server");
}

#[test]
fn database_names_are_plain_identifiers() {
    for bad in ["", "1abc", "a-b", "a`b", "a b", "db; DROP TABLE x"] {
        assert!(
            ClickHouseStore::new("http://127.0.0.1:8123", bad, None, None).is_err(),
            "{bad:?} accepted"
        );
    }
    assert!(
        ClickHouseStore::new("http://127.0.0.1:8123", "parley_analytics_2", None, None).is_ok()
    );
}
