//! The outbox and the shipper: PostgreSQL (and SQLite) to ClickHouse (and the embedded store).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use migration::{Migrator, MigratorTrait};
use parley_analytics::{
    AnalyticsStore, CancellationToken, ClickHouseStore, EmbeddedStore, Event, EventKind, Shipper,
    ShipperConfig, outbox,
};
use parley_entity::analytics_outbox;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder, TransactionTrait};
use uuid::Uuid;

use crate::common::{ChDb, PgDb, SpyStore, sqlite_outbox, total};

fn config(batch_size: usize) -> ShipperConfig {
    ShipperConfig {
        batch_size,
        flush_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        concurrency: 1,
    }
}

/// Records `n` events for `project`, each in its own committed transaction like API calls.
async fn record_committed(db: &DatabaseConnection, project: Uuid, n: usize) -> Vec<Event> {
    let mut events = Vec::new();
    for i in 0..n {
        let event = Event::new(
            project,
            EventKind::MEMBER_LOGGED_IN,
            Some(Uuid::new_v4()),
            serde_json::json!({ "i": i }),
        );
        let txn = db.begin().await.unwrap();
        outbox::record(&txn, &event).await.unwrap();
        txn.commit().await.unwrap();
        events.push(event);
    }
    events
}

/// The events still in the outbox, oldest first (shipped rows are deleted).
async fn outbox_ids(db: &DatabaseConnection) -> Vec<Uuid> {
    analytics_outbox::Entity::find()
        .order_by_asc(analytics_outbox::Column::Seq)
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.event_id)
        .collect()
}

fn all_time() -> (DateTime<Utc>, DateTime<Utc>) {
    (
        Utc::now() - chrono::Duration::days(1),
        Utc::now() + chrono::Duration::days(1),
    )
}

#[tokio::test]
async fn relational_migrations_are_idempotent() {
    let pg = PgDb::new().await; // migrated once already
    Migrator::up(&pg.db, None).await.expect("second run");
    let project = Uuid::new_v4();
    record_committed(&pg.db, project, 1).await;
    assert_eq!(outbox::pending_count(&pg.db).await.unwrap(), 1);
    pg.drop().await;
}

#[tokio::test]
async fn rolled_back_events_never_ship() {
    let pg = PgDb::new().await;
    let ch = ChDb::new().await;
    let project = Uuid::new_v4();

    let rolled_back = Event::new(
        project,
        EventKind::PROJECT_CREATED,
        None,
        serde_json::json!({}),
    );
    let txn = pg.db.begin().await.unwrap();
    outbox::record(&txn, &rolled_back).await.unwrap();
    assert_eq!(
        outbox::pending_count(&txn).await.unwrap(),
        1,
        "visible inside the transaction"
    );
    txn.rollback().await.unwrap();
    let committed = record_committed(&pg.db, project, 1).await;

    let spy = Arc::new(SpyStore::new(ch.store.clone()));
    let shipper = Shipper::new(pg.db.clone(), spy.clone(), config(100));
    assert_eq!(shipper.flush().await.unwrap(), 1);
    let sent: Vec<Uuid> = spy.inserted().into_keys().collect();
    assert_eq!(sent, vec![committed[0].event_id]);
    assert!(outbox_ids(&pg.db).await.is_empty(), "the shipped row left");
    assert_eq!(ch.store.total_events(project).await.unwrap(), 1);
    let (from, to) = all_time();
    let counts = ch.store.event_counts(project, from, to).await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        counts[0].kind,
        EventKind::MEMBER_LOGGED_IN,
        "not the rolled back kind"
    );
    ch.drop().await;
    pg.drop().await;
}

#[tokio::test]
async fn ship_once_moves_one_batch_in_order_and_removes_it() {
    let pg = PgDb::new().await;
    let ch = ChDb::new().await;
    let project = Uuid::new_v4();
    let events = record_committed(&pg.db, project, 25).await;
    let shipper = Shipper::new(pg.db.clone(), ch.store.clone(), config(10));

    assert_eq!(shipper.ship_once().await.unwrap(), 10);
    assert_eq!(outbox::pending_count(&pg.db).await.unwrap(), 15);
    let last_fifteen: Vec<Uuid> = events[10..].iter().map(|e| e.event_id).collect();
    assert_eq!(outbox_ids(&pg.db).await, last_fifteen, "oldest first");
    assert_eq!(ch.store.total_events(project).await.unwrap(), 10);

    assert_eq!(shipper.flush().await.unwrap(), 15);
    assert_eq!(outbox::pending_count(&pg.db).await.unwrap(), 0);
    assert_eq!(shipper.ship_once().await.unwrap(), 0, "nothing left");
    assert!(outbox_ids(&pg.db).await.is_empty());
    assert_eq!(ch.store.total_events(project).await.unwrap(), 25);
    ch.drop().await;
    pg.drop().await;
}

#[tokio::test]
async fn payloads_reach_clickhouse_as_the_outbox_wrote_them() {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Shipped {
        payload: String,
    }
    let pg = PgDb::new().await;
    let ch = ChDb::new().await;
    let project = Uuid::new_v4();
    let recorded = record_committed(&pg.db, project, 1).await;
    // Text as another writer might have left it (the import's COPY, an older version):
    // spacing and key order are kept, not normalized by a parse and re-write.
    let odd = r#"{"z": 1,  "a": ["é", "\"q\""]}"#;
    pg.db
        .execute_unprepared(&format!(
            "INSERT INTO analytics_outbox (event_id, project_id, kind, occurred_at, payload) \
             VALUES ('{}', '{project}', 'member.added', now(), '{odd}')",
            Uuid::new_v4()
        ))
        .await
        .unwrap();
    let shipper = Shipper::new(pg.db.clone(), ch.store.clone(), config(10));
    assert_eq!(shipper.flush().await.unwrap(), 2);
    let shipped: Vec<Shipped> = ch
        .client()
        .query("SELECT payload FROM events ORDER BY kind")
        .fetch_all()
        .await
        .unwrap();
    let texts: Vec<&str> = shipped.iter().map(|s| s.payload.as_str()).collect();
    assert_eq!(texts, [odd, recorded[0].payload.to_string().as_str()]);
    ch.drop().await;
    pg.drop().await;
}

#[tokio::test]
async fn crash_between_insert_and_delete_counts_once() {
    let pg = PgDb::new().await;
    let ch = ChDb::new().await;
    let project = Uuid::new_v4();
    let events = record_committed(&pg.db, project, 30).await;
    let shipper = Shipper::new(pg.db.clone(), ch.store.clone(), config(1000));
    assert_eq!(shipper.flush().await.unwrap(), 30);

    // As if the process died after ClickHouse took the batch but before the outbox's
    // transaction committed: the same rows are pending again.
    outbox::record_many(&pg.db, &events).await.unwrap();
    assert_eq!(
        shipper.flush().await.unwrap(),
        30,
        "the whole batch is sent again"
    );

    let (from, to) = all_time();
    let counts = ch.store.event_counts(project, from, to).await.unwrap();
    assert_eq!(total(&counts), 30);
    assert_eq!(ch.store.total_events(project).await.unwrap(), 30);
    ch.drop().await;
    pg.drop().await;
}

#[tokio::test]
async fn unreachable_clickhouse_keeps_events_pending_until_it_is_back() {
    let pg = PgDb::new().await;
    let ch = ChDb::new().await;
    let project = Uuid::new_v4();
    let events = record_committed(&pg.db, project, 12).await;

    let down: Arc<dyn AnalyticsStore> = Arc::new(
        ClickHouseStore::new("http://127.0.0.1:1", ch.store.database(), None, None).unwrap(),
    );
    let failing = Shipper::new(pg.db.clone(), down, config(5));
    assert!(failing.ship_once().await.is_err());
    assert!(failing.flush().await.is_err());
    assert_eq!(
        outbox::pending_count(&pg.db).await.unwrap(),
        12,
        "nothing left the outbox"
    );
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(outbox_ids(&pg.db).await, ids);

    let spy = Arc::new(SpyStore::new(ch.store.clone()));
    let shipper = Shipper::new(pg.db.clone(), spy.clone(), config(5));
    assert_eq!(shipper.flush().await.unwrap(), 12);
    assert_eq!(outbox::pending_count(&pg.db).await.unwrap(), 0);
    let inserted = spy.inserted();
    assert_eq!(inserted.len(), 12);
    for event in &events {
        assert_eq!(inserted.get(&event.event_id), Some(&1), "sent exactly once");
    }
    assert_eq!(ch.store.total_events(project).await.unwrap(), 12);
    ch.drop().await;
    pg.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_shippers_on_one_database_ship_each_event_once() {
    let pg = PgDb::new().await;
    let ch = ChDb::new().await;
    let project = Uuid::new_v4();
    let events = record_committed(&pg.db, project, 300).await;

    // Two processes: own connection pools, own shippers. The store is slow, so each batch's
    // row locks are held while the other shipper looks for work.
    let spies: Vec<Arc<SpyStore>> = (0..2)
        .map(|_| Arc::new(SpyStore::new(ch.store.clone()).with_delay(Duration::from_millis(30))))
        .collect();
    let mut tasks = Vec::new();
    for spy in &spies {
        let shipper = Shipper::new(pg.connect_again().await, spy.clone(), config(20));
        tasks.push(tokio::spawn(async move { shipper.flush().await.unwrap() }));
    }
    let mut shipped = 0;
    for task in tasks {
        shipped += task.await.unwrap();
    }

    assert_eq!(shipped, 300);
    assert_eq!(outbox::pending_count(&pg.db).await.unwrap(), 0);
    let (a, b) = (spies[0].inserted(), spies[1].inserted());
    assert!(
        !a.is_empty() && !b.is_empty(),
        "both shippers worked ({} / {})",
        a.len(),
        b.len()
    );
    for event in &events {
        let sends = a.get(&event.event_id).unwrap_or(&0) + b.get(&event.event_id).unwrap_or(&0);
        assert_eq!(sends, 1, "event sent {sends} times");
    }
    assert_eq!(ch.store.total_events(project).await.unwrap(), 300);
    ch.drop().await;
    pg.drop().await;
}

async fn wait_until_pending(db: &DatabaseConnection, pending: u64, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = outbox::pending_count(db).await.unwrap();
        if now == pending {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {now} pending, want {pending}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn spawned_loop_retries_after_failures_then_delivers() {
    let pg = PgDb::new().await;
    let embedded = Arc::new(EmbeddedStore::in_memory().await.unwrap());
    embedded.migrate().await.unwrap();
    let spy = Arc::new(SpyStore::new(embedded.clone()).failing_first(3));
    let shutdown = CancellationToken::new();
    let task = Shipper::new(pg.db.clone(), spy.clone(), config(1000)).spawn(shutdown.clone());

    let project = Uuid::new_v4();
    let events = record_committed(&pg.db, project, 40).await;
    wait_until_pending(&pg.db, 0, Duration::from_secs(10)).await;
    assert!(
        spy.attempts.load(Ordering::SeqCst) >= 4,
        "three failures, then success"
    );
    let inserted = spy.inserted();
    assert!(events.iter().all(|e| inserted.get(&e.event_id) == Some(&1)));
    assert_eq!(embedded.total_events(project).await.unwrap(), 40);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    pg.drop().await;
}

#[tokio::test]
async fn spawned_loop_waits_for_a_full_batch_or_the_flush_interval() {
    let pg = PgDb::new().await;
    let embedded = Arc::new(EmbeddedStore::in_memory().await.unwrap());
    embedded.migrate().await.unwrap();
    let shutdown = CancellationToken::new();
    let config = ShipperConfig {
        batch_size: 5,
        flush_interval: Duration::from_secs(3600),
        poll_interval: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        // Two loops: neither ships a batch that is neither full nor old.
        concurrency: 2,
    };
    let task = Shipper::new(pg.db.clone(), embedded.clone(), config).spawn(shutdown.clone());
    let project = Uuid::new_v4();

    record_committed(&pg.db, project, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        outbox::pending_count(&pg.db).await.unwrap(),
        3,
        "batch not full, not old"
    );

    record_committed(&pg.db, project, 2).await;
    wait_until_pending(&pg.db, 0, Duration::from_secs(5)).await;
    assert_eq!(embedded.total_events(project).await.unwrap(), 5);

    // A lone event waits for the (long) flush interval, but graceful shutdown ships it.
    record_committed(&pg.db, project, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(outbox::pending_count(&pg.db).await.unwrap(), 1);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outbox::pending_count(&pg.db).await.unwrap(), 0);
    assert_eq!(embedded.total_events(project).await.unwrap(), 6);
    pg.drop().await;
}

#[tokio::test]
async fn concurrent_loops_ship_a_backlog_once_each() {
    let pg = PgDb::new().await;
    let embedded = Arc::new(EmbeddedStore::in_memory().await.unwrap());
    embedded.migrate().await.unwrap();
    // Slow inserts, so that the loops' batches are in flight together.
    let spy = Arc::new(SpyStore::new(embedded.clone()).with_delay(Duration::from_millis(30)));
    let project = Uuid::new_v4();
    let events = record_committed(&pg.db, project, 600).await;
    let shutdown = CancellationToken::new();
    let config = ShipperConfig {
        concurrency: 3,
        ..config(50)
    };
    let task = Shipper::new(pg.db.clone(), spy.clone(), config).spawn(shutdown.clone());
    wait_until_pending(&pg.db, 0, Duration::from_secs(20)).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let inserted = spy.inserted();
    assert_eq!(inserted.len(), events.len(), "every event shipped");
    assert!(
        inserted.values().all(|&times| times == 1),
        "no event shipped twice"
    );
    assert_eq!(embedded.total_events(project).await.unwrap(), 600);
    pg.drop().await;
}

#[tokio::test]
async fn default_mode_sqlite_outbox_to_embedded_store() {
    let db = sqlite_outbox().await;
    let embedded = Arc::new(EmbeddedStore::in_memory().await.unwrap());
    embedded.migrate().await.unwrap();
    let project = Uuid::new_v4();

    let txn = db.begin().await.unwrap();
    let rolled_back = Event::new(
        project,
        EventKind::MEMBER_ADDED,
        None,
        serde_json::json!({}),
    );
    outbox::record(&txn, &rolled_back).await.unwrap();
    txn.rollback().await.unwrap();
    let events = record_committed(&db, project, 7).await;

    let shipper = Shipper::new(db.clone(), embedded.clone(), config(3));
    assert_eq!(shipper.ship_once().await.unwrap(), 3);
    assert_eq!(outbox::pending_count(&db).await.unwrap(), 4);
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(outbox_ids(&db).await, ids[3..], "the oldest three left");
    assert_eq!(shipper.flush().await.unwrap(), 4);
    assert!(outbox_ids(&db).await.is_empty());
    assert_eq!(embedded.total_events(project).await.unwrap(), 7);
    let (from, to) = all_time();
    let counts = embedded.event_counts(project, from, to).await.unwrap();
    assert!(counts.iter().all(|c| c.kind == EventKind::MEMBER_LOGGED_IN));
    assert_eq!(total(&counts), 7);
}
