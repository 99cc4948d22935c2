//! The embedded SQLite store, and its agreement with ClickHouse.

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use parley_analytics::{AnalyticsStore, EmbeddedStore, Event, EventCount, EventKind};
use uuid::Uuid;

use crate::common::{ChDb, event_at};

#[tokio::test]
async fn file_store_migrates_idempotently_and_persists() {
    let dir = std::env::temp_dir().join(format!("parley_an_{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("analytics.db");
    let project = Uuid::new_v4();
    {
        let store = EmbeddedStore::open(&path).await.unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.expect("second migrate");
        let event = Event::new(
            project,
            EventKind::PROJECT_CREATED,
            None,
            serde_json::json!({}),
        );
        store.insert(std::slice::from_ref(&event)).await.unwrap();
        store.insert(&[event]).await.unwrap();
        store.ping().await.unwrap();
    }
    let reopened = EmbeddedStore::open(&path).await.unwrap();
    reopened.migrate().await.expect("migrate on reopen");
    assert_eq!(reopened.total_events(project).await.unwrap(), 1);
    drop(reopened);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Events over several days, kinds and projects, with window edges and sub-second times.
fn sample(project: Uuid, other: Uuid) -> Vec<Event> {
    let base = Utc.with_ymd_and_hms(2026, 2, 27, 22, 0, 0).unwrap();
    let mut events = Vec::new();
    for i in 0..60 {
        let kind = [
            EventKind::MEMBER_LOGGED_IN,
            EventKind::MEMBER_ADDED,
            EventKind::PROJECT_CREATED,
            "message.sent",
        ][i % 4];
        // Every 100 minutes plus some milliseconds: crosses midnights and a month end.
        let at = base + Duration::minutes(100 * i as i64) + Duration::milliseconds(7 * i as i64);
        events.push(event_at(if i % 5 == 0 { other } else { project }, kind, at));
    }
    events
}

#[tokio::test]
async fn gives_the_same_counts_as_clickhouse() {
    let ch = ChDb::new().await;
    let embedded = EmbeddedStore::in_memory().await.unwrap();
    embedded.migrate().await.unwrap();
    let project = Uuid::new_v4();
    let other = Uuid::new_v4();
    let events = sample(project, other);
    for store in [&*ch.store as &dyn AnalyticsStore, &embedded] {
        store.insert(&events).await.unwrap();
        store.insert(&events[10..30]).await.unwrap(); // a retried batch
    }

    let start = Utc.with_ymd_and_hms(2026, 2, 27, 0, 0, 0).unwrap();
    let windows = [
        (start, start + Duration::days(10)),
        // Edges exactly on an event (the one at i = 3), and mid-day.
        (
            Utc.with_ymd_and_hms(2026, 2, 28, 3, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap(),
        ),
        (start + Duration::days(30), start + Duration::days(31)), // empty
    ];
    for (from, to) in windows {
        for id in [project, other] {
            let from_ch = ch.store.event_counts(id, from, to).await.unwrap();
            let from_embedded = embedded.event_counts(id, from, to).await.unwrap();
            assert_eq!(from_ch, from_embedded, "window {from}..{to}");
        }
    }
    for id in [project, other] {
        assert_eq!(
            ch.store.total_events(id).await.unwrap(),
            embedded.total_events(id).await.unwrap()
        );
    }

    // And both are right, not just equal: recount by hand.
    let (from, to) = windows[0];
    let mut expected: Vec<EventCount> = Vec::new();
    let mut by_key = std::collections::BTreeMap::<(NaiveDate, String), u64>::new();
    for e in events.iter().filter(|e| e.project_id == project) {
        *by_key
            .entry((e.occurred_at.date_naive(), e.kind.clone()))
            .or_default() += 1;
    }
    for ((day, kind), count) in by_key {
        expected.push(EventCount { day, kind, count });
    }
    assert_eq!(
        embedded.event_counts(project, from, to).await.unwrap(),
        expected
    );
    assert_eq!(embedded.total_events(project).await.unwrap(), 48);
    assert_eq!(embedded.total_events(other).await.unwrap(), 12);
    assert!(
        embedded
            .event_counts(project, windows[2].0, windows[2].1)
            .await
            .unwrap()
            .is_empty()
    );
    ch.drop().await;
}
