//! Faults of the services around the API, on private instances the tests own (the shared
//! services other tests use are never stopped): ClickHouse down for a minute, Redis and
//! PostgreSQL restarted, the API process killed, Meta slow or failing, webhook storms.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use futures::{StreamExt, stream};
use parley_api::Settings;
use parley_tests::{
    Mode, Owner, Shared, TestApp, eventually,
    fake_graph::{FakeGraph, meta_error},
    process::ProcessNode,
    services::{PrivateClickHouse, PrivatePostgres, PrivateRedis},
    whatsapp::{APP_SECRET, VERIFY_TOKEN, inbound_text, sign, status},
    ws::{Event, WsClient},
};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::webhooks::{analytics_counts, project_ready_for_fixtures, shuffled, snapshot};

/// Meta's Graph API is the fake; webhooks are signed with the test app secret.
fn whatsapp(url: String) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.whatsapp.graph_url = url;
        s.whatsapp.app_secret = Some(APP_SECRET.into());
        s.whatsapp.verify_token = Some(VERIFY_TOKEN.into());
        s.whatsapp.backoff_base = Duration::from_millis(5);
    }
}

fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Keeps a record of every row written to the analytics outbox, so that a test can compare
/// the analytics store with everything recorded (the shipper deletes what it shipped).
async fn record_outbox_writes(app: &TestApp) {
    use sea_orm::ConnectionTrait;
    let db = &app.app.state.db;
    for sql in [
        "CREATE TABLE outbox_written (event_id uuid PRIMARY KEY, project_id uuid NOT NULL, \
         kind text NOT NULL)",
        "CREATE FUNCTION outbox_written() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         INSERT INTO outbox_written VALUES (NEW.event_id, NEW.project_id, NEW.kind) \
         ON CONFLICT DO NOTHING; RETURN NEW; END $$",
        "CREATE TRIGGER outbox_written AFTER INSERT ON analytics_outbox \
         FOR EACH ROW EXECUTE FUNCTION outbox_written()",
    ] {
        db.execute_unprepared(sql).await.unwrap();
    }
}

/// Events of a project per kind (all ever written, from `record_outbox_writes`), and how
/// many are still waiting in the outbox.
async fn outbox_by_kind(app: &TestApp, project_id: &str) -> (BTreeMap<String, u64>, u64) {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &app.app.state.db;
    let query = |sql: String| db.query_all(Statement::from_string(db.get_database_backend(), sql));
    let written = query(format!(
        "SELECT kind, count(*) AS n FROM outbox_written \
         WHERE project_id = '{project_id}' GROUP BY kind"
    ))
    .await
    .unwrap();
    let mut kinds = BTreeMap::new();
    for row in written {
        let kind: String = row.try_get("", "kind").unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        kinds.insert(kind, n as u64);
    }
    let pending = query(format!(
        "SELECT count(*) AS p FROM analytics_outbox \
         WHERE project_id = '{project_id}' AND shipped_at IS NULL"
    ))
    .await
    .unwrap();
    let pending: i64 = pending[0].try_get("", "p").unwrap();
    (kinds, pending as u64)
}

async fn clickhouse_query(http: &reqwest::Client, url: &str, database: &str, sql: &str) -> String {
    let answer = http
        .post(format!("{url}/?database={database}"))
        .body(sql.to_owned())
        .send()
        .await
        .expect("ClickHouse answers");
    let ok = answer.status().is_success();
    let text = answer.text().await.unwrap();
    assert!(ok, "ClickHouse said: {text}");
    text
}

/// 1. ClickHouse down for a minute while messages and statuses flow: the API keeps
/// answering, the outbox grows, and once ClickHouse is back every event is in it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_for_a_minute_loses_and_duplicates_no_analytics_event() {
    const OUTAGE: Duration = Duration::from_secs(60);
    let graph = FakeGraph::start().await;
    let mut clickhouse = tokio::task::spawn_blocking(PrivateClickHouse::start)
        .await
        .unwrap();
    let shared = Shared::fresh(&Mode::Production).await;
    let database = shared.clickhouse_database.clone().unwrap();
    let (url, ch_url, ch_db) = (graph.url.clone(), clickhouse.url(), database.clone());
    let app = TestApp::spawn_with(Mode::Production, &shared, move |s| {
        whatsapp(url)(s);
        s.clickhouse.as_mut().unwrap().url = ch_url;
        s.clickhouse.as_mut().unwrap().database = ch_db;
    })
    .await;
    record_outbox_writes(&app).await;
    let owner = app.sign_up("AnalyticsOutage").await;
    app.connect_fixture_number(&owner).await;

    // One customer writes, is answered, and the answer goes sent then delivered.
    let conversation = |i: u32| {
        let (app, owner, graph) = (&app, &owner, &graph);
        async move {
            let from = format!("91981240{i:04}");
            let at = chrono::Utc::now().timestamp();
            let body = inbound_text(&format!("wamid.out.in.{i}"), &from, "Customer", "hi", at);
            assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
            let contact = loop {
                let found = app
                    .gql("query($f: ContactFilterInput) { contacts(first: 1, filter: $f) { edges { node { id } } } }")
                    .as_member(owner)
                    .vars(json!({ "f": { "search": format!("+{from}") } }))
                    .data()
                    .await;
                if let Some(id) = found["contacts"]["edges"][0]["node"]["id"].as_str() {
                    break id.to_owned();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let wamid = format!("wamid.out.reply.{i}");
            graph.queue_message_ids(&[&wamid]);
            let sent = app
                .gql("mutation($c: ID!, $t: String!) { sendTextMessage(contactId: $c, text: $t) { waMessageId } }")
                .as_member(owner)
                .vars(json!({ "c": contact, "t": format!("reply {i}") }))
                .data()
                .await;
            assert_eq!(sent["sendTextMessage"]["waMessageId"], wamid.as_str());
            for state in ["sent", "delivered"] {
                let body = status(&wamid, state, &from, chrono::Utc::now().timestamp());
                assert_eq!(app.post_webhook(&body).await, StatusCode::OK);
            }
        }
    };
    for i in 0..3 {
        conversation(i).await;
    }
    eventually(
        Duration::from_secs(20),
        "the first events shipped",
        || async { outbox_by_kind(&app, &owner.project_id).await.1 == 0 },
    )
    .await;

    tokio::task::block_in_place(|| clickhouse.stop());
    let down_at = Instant::now();
    let mut i = 3;
    let mut peak = 0;
    let mut slowest = Duration::ZERO;
    while down_at.elapsed() < OUTAGE {
        let asked = Instant::now();
        conversation(i).await;
        // The API answers what does not need the analytics store.
        let count = app.gql("{ contactCount }").as_member(&owner).data().await;
        assert_eq!(count["contactCount"], i + 1);
        slowest = slowest.max(asked.elapsed());
        peak = peak.max(outbox_by_kind(&app, &owner.project_id).await.1);
        i += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let conversations_during = i - 3;
    assert!(
        peak >= u64::from(conversations_during) * 4,
        "the outbox kept what ClickHouse could not take: peak {peak} for {conversations_during} conversations"
    );

    tokio::task::block_in_place(|| clickhouse.start_again());
    let back_at = Instant::now();
    eventually(
        Duration::from_secs(90),
        "the outbox to drain after ClickHouse came back",
        || async { outbox_by_kind(&app, &owner.project_id).await.1 == 0 },
    )
    .await;
    let catch_up = back_at.elapsed();

    let (expected, _) = outbox_by_kind(&app, &owner.project_id).await;
    let rows = clickhouse_query(
        &app.http,
        &clickhouse.url(),
        &database,
        &format!(
            "SELECT kind, count(), uniqExact(event_id) FROM events \
             WHERE project_id = toUUID('{}') GROUP BY kind ORDER BY kind",
            owner.project_id
        ),
    )
    .await;
    let mut stored = BTreeMap::new();
    let mut duplicates = 0;
    for line in rows.lines() {
        let cells: Vec<&str> = line.split('\t').collect();
        let (rows, unique): (u64, u64) = (cells[1].parse().unwrap(), cells[2].parse().unwrap());
        duplicates += rows - unique;
        stored.insert(cells[0].to_owned(), unique);
    }
    assert_eq!(stored, expected, "every event arrived once, per kind");
    assert_eq!(duplicates, 0, "no event stored twice");
    let total: u64 = expected.values().sum();
    eprintln!(
        "FIGURES clickhouse outage: {}s down, {conversations_during} conversations, \
         outbox peak {peak}, {total} events in ClickHouse, duplicates {duplicates}, \
         caught up in {:.1}s, slowest request cycle {:.0}ms",
        OUTAGE.as_secs(),
        catch_up.as_secs_f64(),
        slowest.as_secs_f64() * 1000.0
    );
}

fn credentials(who: &Owner) -> Value {
    json!({ "authorization": format!("Bearer {}", who.token), "projectId": who.project_id })
}

/// Reads `chatEvents` frames until `texts` holds `want` messages; returns seqs and texts.
async fn read_chat_events(
    client: &mut WsClient,
    seqs: &mut Vec<i64>,
    texts: &mut Vec<String>,
    want: usize,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    while texts.len() < want {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(Event::Message(m)) = client.next_within(left).await else {
            panic!(
                "the subscription stopped after {seqs:?} ({} of {want} messages)",
                texts.len()
            );
        };
        let event = &m["payload"]["data"]["chatEvents"];
        seqs.push(event["seq"].as_i64().expect("a numbered event"));
        if event["topic"] == "message.created"
            && let Some(text) = event["message"]["text"].as_str()
        {
            texts.push(text.to_owned());
        }
    }
}

/// 2. Redis restarted while agents are subscribed: the subscriptions go on by
/// themselves, and a client catching up by cursor sees no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_leaves_subscribers_with_no_gap_and_no_duplicate() {
    let graph = FakeGraph::start().await;
    let mut redis = tokio::task::spawn_blocking(PrivateRedis::start)
        .await
        .unwrap();
    let shared = Shared::fresh(&Mode::Production).await;
    let node = |url: String, redis_url: String| {
        move |s: &mut Settings| {
            whatsapp(url)(s);
            s.redis_url = Some(SecretString::from(redis_url));
        }
    };
    let a = TestApp::spawn_with(
        Mode::Production,
        &shared,
        node(graph.url.clone(), redis.url()),
    )
    .await;
    let b = TestApp::spawn_with(
        Mode::Production,
        &shared,
        node(graph.url.clone(), redis.url()),
    )
    .await;
    let owner = a.sign_up("RedisRestart").await;
    a.connect_fixture_number(&owner).await;
    let write = |n: usize| {
        let a = &a;
        async move {
            let from = format!("9198124{:05}", n % 5);
            let at = chrono::Utc::now().timestamp();
            let body = inbound_text(
                &format!("wamid.redis.{n}"),
                &from,
                "User",
                &format!("m{n}"),
                at,
            );
            assert_eq!(a.post_webhook(&body).await, StatusCode::OK);
        }
    };
    const QUERY: &str = "subscription { chatEvents(after: 0) { seq topic message { text } } }";
    // An agent on node B, subscribed across the whole restart.
    let mut steady = WsClient::connect(&b.ws_url()).await;
    steady.init(credentials(&owner)).await;
    steady.subscribe("steady", QUERY).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut seqs, mut texts) = (Vec::new(), Vec::new());
    for n in 0..5 {
        write(n).await;
    }
    read_chat_events(
        &mut steady,
        &mut seqs,
        &mut texts,
        5,
        Duration::from_secs(20),
    )
    .await;
    let cursor = *seqs.last().unwrap();

    tokio::task::block_in_place(|| redis.stop());
    let outage = Instant::now();
    // Webhooks keep being taken while the bus is down; their events wait in the table.
    for n in 5..10 {
        write(n).await;
    }
    a.webhooks_settled().await;
    let written_during = outage.elapsed();
    tokio::task::block_in_place(|| redis.start_again());
    let back = Instant::now();
    // What was written during the outage arrives by itself once the bus is back, before
    // any later event shows the gap.
    read_chat_events(
        &mut steady,
        &mut seqs,
        &mut texts,
        10,
        Duration::from_secs(10),
    )
    .await;
    let resumed = back.elapsed();
    for n in 10..15 {
        write(n).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    read_chat_events(
        &mut steady,
        &mut seqs,
        &mut texts,
        15,
        Duration::from_secs(30),
    )
    .await;
    let caught_up = back.elapsed();
    let expected: Vec<String> = (0..15).map(|n| format!("m{n}")).collect();
    let mut sorted = texts.clone();
    sorted.sort_by_key(|t| t[1..].parse::<u32>().unwrap());
    assert_eq!(sorted, expected, "every message, once");
    let first = seqs[0];
    let contiguous: Vec<i64> = (first..first + seqs.len() as i64).collect();
    assert_eq!(seqs, contiguous, "in order, with no gap and no duplicate");

    // A client that lost its connection at the restart comes back with its cursor.
    let mut returning = WsClient::connect(&a.ws_url()).await;
    returning.init(credentials(&owner)).await;
    returning
        .subscribe(
            "back",
            &format!(
                "subscription {{ chatEvents(after: {cursor}) {{ seq topic message {{ text }} }} }}"
            ),
        )
        .await;
    let (mut back_seqs, mut back_texts) = (Vec::new(), Vec::new());
    read_chat_events(
        &mut returning,
        &mut back_seqs,
        &mut back_texts,
        10,
        Duration::from_secs(20),
    )
    .await;
    // Deliveries of different customers are processed in parallel lanes: their numbers
    // follow the commits, not the posting order.
    back_texts.sort_by_key(|t| t[1..].parse::<u32>().unwrap());
    assert_eq!(back_texts, expected[5..].to_vec());
    let after: Vec<i64> = (cursor + 1..cursor + 1 + back_seqs.len() as i64).collect();
    assert_eq!(
        back_seqs, after,
        "from the cursor on, with no gap and no duplicate"
    );
    eprintln!(
        "FIGURES redis restart: {} events on the steady subscription, {} after the cursor, \
         gaps 0, duplicates 0, webhooks during the outage taken in {:.1}s, \
         their events delivered {:.1}s after Redis returned, all caught up after {:.1}s",
        seqs.len(),
        back_seqs.len(),
        written_during.as_secs_f64(),
        resumed.as_secs_f64(),
        caught_up.as_secs_f64()
    );
}

const UPLOAD: &str = "mutation($file: Upload!) { uploadContactImport(file: $file) { import { id status totalRows } } }";
const START: &str = "mutation($id: ID!, $mapping: [ColumnMappingInput!]!) { startContactImport(id: $id, mapping: $mapping) { id status } }";
const JOB: &str = "query($id: ID!) { contactImport(id: $id) { status totalRows processedRows added updated failed error } }";

fn import_file(rows: u32, prefix: &str) -> Vec<u8> {
    let mut csv = String::from("Name,Phone\n");
    for i in 0..rows {
        csv.push_str(&format!("Person {i},{prefix}{i:08}\n"));
    }
    csv.into_bytes()
}

fn import_mapping() -> Value {
    json!([{ "column": "Name", "field": "NAME" }, { "column": "Phone", "field": "PHONE" }])
}

/// 3. PostgreSQL restarted: requests meanwhile fail with a retryable `UNAVAILABLE`,
/// succeed afterwards without restarting the API, and an import running across the
/// restart ends whole (every row once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_answers_unavailable_then_recovers_and_the_import_ends_whole() {
    const ROWS: u32 = 40_000;
    let mut postgres = tokio::task::spawn_blocking(PrivatePostgres::start)
        .await
        .unwrap();
    let token = unique();
    let shared = Shared {
        database_url: Some(postgres.url()),
        clickhouse_database: Some(format!("parley_test_{token}")),
        redis_prefix: format!("parley_test_{token}"),
    };
    let app = TestApp::spawn_with(Mode::Production, &shared, |s| {
        s.imports.batch_rows = 500;
    })
    .await;
    let owner = app.sign_up("DatabaseRestart").await;
    let uploaded = app
        .upload(&owner, UPLOAD, "people.csv", import_file(ROWS, "98"))
        .await;
    let id = uploaded.data()["uploadContactImport"]["import"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql(START)
        .as_member(&owner)
        .vars(json!({ "id": id, "mapping": import_mapping() }))
        .data()
        .await;
    let job = || {
        app.gql(JOB)
            .as_member(&owner)
            .vars(json!({ "id": id }))
            .send()
    };
    eventually(
        Duration::from_secs(60),
        "the import to be under way",
        || async {
            let reply = job().await;
            reply.data()["contactImport"]["processedRows"]
                .as_i64()
                .unwrap_or(0)
                > 0
        },
    )
    .await;

    tokio::task::block_in_place(|| postgres.stop());
    let down = Instant::now();
    let mut answers = Vec::new();
    while down.elapsed() < Duration::from_secs(5) {
        let reply = app.gql("{ contactCount }").as_member(&owner).send().await;
        answers.push((reply.status, reply.error_code().map(str::to_owned)));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (status, code) in &answers {
        assert_eq!(
            code.as_deref(),
            Some("UNAVAILABLE"),
            "a retryable error while the database is down: {answers:?}"
        );
        assert!(
            *status == StatusCode::OK || *status == StatusCode::SERVICE_UNAVAILABLE,
            "{answers:?}"
        );
    }
    tokio::task::block_in_place(|| postgres.start_again());
    let back = Instant::now();
    eventually(
        Duration::from_secs(30),
        "requests to succeed again",
        || async {
            app.gql("{ contactCount }")
                .as_member(&owner)
                .send()
                .await
                .error_code()
                .is_none()
        },
    )
    .await;
    let recovered = back.elapsed();
    // The import ends by itself, whole or failed with its progress true to the contacts.
    let deadline = Instant::now() + Duration::from_secs(120);
    let ended = loop {
        let reply = job().await;
        if reply.error_code().is_none() {
            let job = reply.data()["contactImport"].clone();
            if job["status"] == "COMPLETED" || job["status"] == "FAILED" {
                break job;
            }
        }
        assert!(Instant::now() < deadline, "the import did not end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let import_ended = back.elapsed();
    let count = app.gql("{ contactCount }").as_member(&owner).data().await["contactCount"]
        .as_i64()
        .unwrap();
    assert_eq!(ended["status"], "COMPLETED", "the import resumed: {ended}");
    assert_eq!(ended["added"], i64::from(ROWS), "{ended}");
    assert_eq!(ended["processedRows"], i64::from(ROWS), "{ended}");
    assert_eq!(count, i64::from(ROWS), "every row once");
    eprintln!(
        "FIGURES postgres restart: {} requests during the outage, all UNAVAILABLE \
         (statuses {:?}); requests succeed {:.1}s after the restart; the import of {ROWS} \
         rows completed {:.1}s after it with {count} contacts",
        answers.len(),
        answers
            .iter()
            .map(|(s, _)| s.as_u16())
            .collect::<std::collections::BTreeSet<_>>(),
        recovered.as_secs_f64(),
        import_ended.as_secs_f64()
    );
}

/// A GraphQL request to a server process; returns the whole body.
async fn gql_at(http: &reqwest::Client, port: u16, who: &Owner, query: &str, vars: Value) -> Value {
    http.post(format!("http://127.0.0.1:{port}/graphql"))
        .bearer_auth(&who.token)
        .header("x-project-id", &who.project_id)
        .json(&json!({ "query": query, "variables": vars }))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .unwrap()
}

/// 4. The API process killed (SIGKILL) in the middle of an import and of a webhook burst:
/// after a restart the import resumes and ends whole, and every webhook answered 200
/// before the kill is processed, once. (A campaign across a kill is
/// `campaigns::a_dispatcher_killed_mid_campaign_sends_no_recipient_twice`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_api_process_resumes_its_import_and_processes_every_acknowledged_webhook() {
    use parley_entity::webhook_event;
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
    const ROWS: u32 = 60_000;
    const WEBHOOKS: usize = 300;
    let graph = FakeGraph::start().await;
    let shared = Shared::fresh(&Mode::Production).await;
    // This node serves sign-up and checks; its own import runner and inbox worker stay
    // idle (nothing is started on it, and it is dropped before the restart).
    let helper = TestApp::spawn_with(Mode::Production, &shared, whatsapp(graph.url.clone())).await;
    let owner = helper.sign_up("Killed").await;
    helper.connect_fixture_number(&owner).await;
    let db = helper.app.state.db.clone();
    helper.app.stop().await.unwrap();
    let env = [
        ("WHATSAPP_GRAPH_URL", graph.url.clone()),
        ("WHATSAPP_APP_SECRET", APP_SECRET.to_owned()),
        ("IMPORT_BATCH_ROWS", "500".to_owned()),
    ];
    let victim = ProcessNode::start_with(&shared, &env).await;
    let http = reqwest::Client::new();
    let form = reqwest::multipart::Form::new()
        .text(
            "operations",
            json!({ "query": UPLOAD, "variables": { "file": null } }).to_string(),
        )
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(import_file(ROWS, "97"))
                .file_name("people.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let uploaded: Value = http
        .post(format!("http://127.0.0.1:{}/graphql", victim.port))
        .bearer_auth(&owner.token)
        .header("x-project-id", &owner.project_id)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = uploaded["data"]["uploadContactImport"]["import"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{uploaded}"))
        .to_owned();
    let started = gql_at(
        &http,
        victim.port,
        &owner,
        START,
        json!({ "id": id, "mapping": import_mapping() }),
    )
    .await;
    assert!(started.get("errors").is_none(), "{started}");
    // Killed once some batches are in, so that the restart must go on from them.
    eventually(Duration::from_secs(60), "the first batches", || async {
        job_row(&db, &id).await.1 > 0
    })
    .await;
    // A burst of inbound messages, each answered 200 (stored) before the kill.
    let bodies: Vec<Vec<u8>> = (0..WEBHOOKS)
        .map(|n| {
            let from = format!("9198125{:05}", n % 40);
            inbound_text(
                &format!("wamid.kill.{n}"),
                &from,
                "User",
                &format!("k{n}"),
                chrono::Utc::now().timestamp(),
            )
        })
        .collect();
    let url = format!("http://127.0.0.1:{}/webhooks/whatsapp", victim.port);
    let acknowledged = stream::iter(bodies.iter())
        .map(|body| {
            let (http, url) = (&http, &url);
            async move {
                http.post(url)
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", sign(APP_SECRET, body))
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    assert!(
        acknowledged.iter().all(|s| *s == StatusCode::OK),
        "{acknowledged:?}"
    );
    victim.kill().await;
    let killed = Instant::now();
    let unprocessed = webhook_event::Entity::find()
        .filter(webhook_event::Column::State.eq("PENDING"))
        .count(&db)
        .await
        .unwrap();
    let at_kill = job_row(&db, &id).await;
    assert_eq!(at_kill.0, "RUNNING", "killed mid-import: {at_kill:?}");
    assert!(
        at_kill.1 < i64::from(ROWS),
        "killed mid-import: {at_kill:?}"
    );
    assert!(
        unprocessed > 0,
        "the kill came before the inbox drained (else this proves nothing)"
    );

    let _restarted = ProcessNode::start_with(&shared, &env).await;
    let deadline = Instant::now() + Duration::from_secs(150);
    let ended = loop {
        let job = job_row(&db, &id).await;
        if job.0 != "RUNNING" {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "the import was not resumed: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let import_after = killed.elapsed();
    eventually(
        Duration::from_secs(120),
        "every delivery processed",
        || async {
            webhook_event::Entity::find()
                .filter(webhook_event::Column::State.ne("PROCESSED"))
                .count(&db)
                .await
                .unwrap()
                == 0
        },
    )
    .await;
    let inbox_after = killed.elapsed();
    assert_eq!(ended.0, "COMPLETED", "{ended:?}");
    assert_eq!(
        (ended.1, ended.2),
        (i64::from(ROWS), i64::from(ROWS)),
        "{ended:?}"
    );
    let inbound = count_where(
        &db,
        "SELECT count(*) FROM messages WHERE direction = 'INBOUND'",
    )
    .await;
    let distinct = count_where(
        &db,
        "SELECT count(DISTINCT wa_message_id) FROM messages WHERE direction = 'INBOUND'",
    )
    .await;
    assert_eq!(
        (inbound, distinct),
        (WEBHOOKS as i64, WEBHOOKS as i64),
        "every message once"
    );
    let contacts = count_where(&db, "SELECT count(*) FROM contacts").await;
    assert_eq!(
        contacts,
        i64::from(ROWS) + 40,
        "every imported row and sender once"
    );
    eprintln!(
        "FIGURES api killed: import of {ROWS} rows killed at row {}, completed {:.1}s after \
         the kill; {unprocessed} of {WEBHOOKS} acknowledged webhooks unprocessed at the kill, \
         all processed once {:.1}s after it",
        at_kill.1,
        import_after.as_secs_f64(),
        inbox_after.as_secs_f64()
    );
}

/// (status, processed rows, added) of an import, straight from the database.
async fn job_row(db: &sea_orm::DatabaseConnection, id: &str) -> (String, i64, i64) {
    use parley_entity::import_job;
    use sea_orm::EntityTrait;
    let job = import_job::Entity::find_by_id(uuid::Uuid::parse_str(id).unwrap())
        .one(db)
        .await
        .unwrap()
        .unwrap();
    (job.status, job.processed_rows, job.added)
}

async fn count_where(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

const CAMPAIGN: &str = "query($id: ID!) { campaign(id: $id) { status stopReason \
     counts { recipients queued sent failed skipped interrupted } } }";

/// 5. Meta slow and failing (5xx, timeouts, the rate-limit codes 130429, 131056 and
/// 80007, one permanent refusal): retries are bounded, the dispatcher keeps a bounded
/// number of sends in flight, and every recipient's outcome is recorded with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_and_failing_meta_gets_bounded_retries_and_a_bounded_number_of_sends() {
    const RECIPIENTS: usize = 60;
    const PER_SECOND: u32 = 20;
    let graph = FakeGraph::start().await;
    let shared = Shared::fresh(&Mode::Production).await;
    let url = graph.url.clone();
    let app = TestApp::spawn_with(Mode::Production, &shared, move |s| {
        whatsapp(url)(s);
        s.whatsapp.timeout = Duration::from_millis(1_500);
        s.whatsapp.max_attempts = 3;
        s.campaigns.claim_lease = Duration::from_secs(5);
        s.database_max_connections = 20;
    })
    .await;
    let owner = app.sign_up("MetaFaults").await;
    app.connect_fixture_number(&owner).await;
    graph.add_template(json!({
        "id": "991000000000077", "name": "fault_offer", "language": "en",
        "status": "APPROVED", "category": "UTILITY", "rejected_reason": "NONE",
        "parameter_format": "POSITIONAL",
        "components": [{ "type": "BODY", "text": "Your order is on its way." }],
    }));
    let gql = |q: &'static str, v: Value| {
        let (app, owner) = (&app, &owner);
        async move { app.gql(q).as_member(owner).vars(v).data().await }
    };
    gql("mutation { syncTemplates { imported } }", json!({})).await;
    let template = gql("{ templates(first: 5) { nodes { id } } }", json!({})).await["templates"]
        ["nodes"][0]["id"]
        .clone();
    gql(
        "mutation($n: Int!) { setSendingLimits(messagingLimit: null, throughputPerSecond: $n) }",
        json!({ "n": PER_SECOND }),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..RECIPIENTS {
        let created = gql(
            "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }",
            json!({ "input": { "name": format!("F{i}"), "phone": format!("+9198126{i:05}") } }),
        )
        .await;
        ids.push(created["createContact"]["id"].clone());
    }
    // What Meta answers the first sends: a server error that persists for one send (all
    // its attempts), passing 5xx, each rate-limit code, and one permanent refusal.
    let server_error = || meta_error(2, "Service temporarily unavailable");
    for _ in 0..3 {
        graph.fail_next("/messages", 503, server_error());
    }
    graph.fail_next("/messages", 500, server_error());
    graph.fail_next("/messages", 400, meta_error(130429, "Rate limit hit"));
    graph.fail_next("/messages", 400, meta_error(131056, "Pair rate limit hit"));
    graph.fail_next("/messages", 400, meta_error(80007, "Rate limit issues"));
    graph.fail_next(
        "/messages",
        400,
        meta_error(131026, "Message undeliverable"),
    );
    // And Meta is slow: each answer takes most of the client's timeout.
    graph.set_delay_ms(1_000);
    graph.reset_max_in_flight();
    let started = Instant::now();
    let created = gql(
        "mutation($input: CreateBroadcastInput!) { createBroadcast(input: $input) { id } }",
        json!({ "input": { "name": "Faults", "templateId": template,
                           "audience": { "contactIds": ids }, "sendNow": true } }),
    )
    .await;
    let id = created["createBroadcast"]["id"].clone();
    // Halfway, Meta gets slower than the client waits: those sends time out.
    eventually(Duration::from_secs(60), "half the sends", || async {
        graph
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/messages"))
            .count()
            >= RECIPIENTS / 2
    })
    .await;
    graph.set_delay_ms(2_000);
    tokio::time::sleep(Duration::from_secs(3)).await;
    graph.set_delay_ms(200);
    eventually(Duration::from_secs(120), "the campaign to end", || async {
        let status = gql(CAMPAIGN, json!({ "id": id })).await["campaign"]["status"].clone();
        status == "COMPLETED"
    })
    .await;
    let took = started.elapsed();
    let campaign = gql(CAMPAIGN, json!({ "id": id })).await["campaign"].clone();
    let counts = &campaign["counts"];
    let posts: Vec<_> = graph
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/messages"))
        .collect();
    let mut per_number = HashMap::<String, usize>::new();
    for r in &posts {
        *per_number
            .entry(r.body["to"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let most = per_number.values().copied().max().unwrap();
    let max_in_flight = graph.max_in_flight();
    // Bounded retries: the client tries a send at most 3 times, and rate-limited
    // recipients come back a few times at most.
    assert!(
        most <= 4,
        "a recipient was tried {most} times: {per_number:?}"
    );
    assert!(
        posts.len() <= RECIPIENTS + 12,
        "{} sends for {RECIPIENTS} recipients",
        posts.len()
    );
    // Slowing down, not piling up: never more in flight than one second's worth.
    assert!(
        max_in_flight <= PER_SECOND as usize,
        "{max_in_flight} sends in flight at once"
    );
    let (sent, failed, interrupted) = (
        counts["sent"].as_i64().unwrap(),
        counts["failed"].as_i64().unwrap(),
        counts["interrupted"].as_i64().unwrap(),
    );
    assert_eq!(
        sent + failed + interrupted + counts["skipped"].as_i64().unwrap(),
        RECIPIENTS as i64,
        "every recipient has an outcome: {counts}"
    );
    assert!(failed >= 1, "the permanent refusal is recorded: {counts}");
    // Each failure says why: Meta's code on the recipient's message.
    let failures = app
        .gql("{ messages: contacts(first: 100) { edges { node { phone messages(first: 5) { edges { node { status errorCode errorTitle } } } } } } }")
        .as_member(&owner)
        .data()
        .await;
    let codes: Vec<Value> = failures["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["node"]["messages"]["edges"].as_array().unwrap().clone())
        .filter(|m| m["node"]["status"] == "FAILED")
        .map(|m| m["node"].clone())
        .collect();
    assert!(codes.iter().any(|m| m["errorCode"] == 131026), "{codes:?}");
    assert!(
        codes
            .iter()
            .all(|m| m["errorTitle"].as_str().is_some_and(|t| !t.is_empty())),
        "every failure has its reason: {codes:?}"
    );
    let mut reasons = BTreeMap::<String, usize>::new();
    for m in &codes {
        let title = m["errorTitle"].as_str().unwrap_or_default();
        let reason = format!(
            "{} {}",
            m["errorCode"],
            title.split(':').next().unwrap_or(title)
        );
        *reasons.entry(reason).or_default() += 1;
    }
    eprintln!(
        "FIGURES meta faults: {RECIPIENTS} recipients at {PER_SECOND}/s, {} sends to Meta, \
         at most {most} for one recipient, at most {max_in_flight} in flight, counts {counts}, \
         failures {reasons:?}, {:.1}s",
        posts.len(),
        took.as_secs_f64()
    );
}

/// 6. A webhook storm: every fixture 20 times, shuffled, posted 32 at a time to two API
/// nodes at once, leaves the state and the analytics counts of one delivery each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_concurrent_duplicate_webhooks_on_two_nodes_leaves_the_state_of_one_delivery() {
    let once_graph = FakeGraph::start().await;
    let once = TestApp::spawn_with_graph(&once_graph).await;
    let once_owner = project_ready_for_fixtures(&once, &once_graph).await;
    for name in parley_tests::whatsapp::fixture_names() {
        assert_eq!(
            once.post_webhook(&parley_tests::whatsapp::fixture(&name))
                .await,
            StatusCode::OK
        );
        once.webhooks_settled().await;
    }
    let expected = snapshot(&once, &once_owner).await;
    let expected_counts = analytics_counts(&once, &once_owner).await;

    let graph = FakeGraph::start().await;
    let shared = Shared::fresh(&Mode::Production).await;
    let node = |url: String| {
        move |s: &mut Settings| {
            whatsapp(url)(s);
            s.whatsapp.app_id = Some("1234".into());
        }
    };
    let a = TestApp::spawn_with(Mode::Production, &shared, node(graph.url.clone())).await;
    let b = TestApp::spawn_with(Mode::Production, &shared, node(graph.url.clone())).await;
    let owner = project_ready_for_fixtures(&a, &graph).await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let deliveries: Vec<String> = parley_tests::whatsapp::fixture_names()
        .into_iter()
        .flat_map(|n| std::iter::repeat_n(n, 20))
        .collect();
    let order = shuffled(deliveries, seed);
    let started = Instant::now();
    let statuses = stream::iter(order.iter().enumerate())
        .map(|(i, name)| {
            let node = if i % 2 == 0 { &a } else { &b };
            let body = parley_tests::whatsapp::fixture(name);
            async move { node.post_webhook(&body).await }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let posted = started.elapsed();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    a.webhooks_settled().await;
    let settled = started.elapsed();
    assert_eq!(
        snapshot(&a, &owner).await,
        expected,
        "storm order (seed {seed}): {order:?}"
    );
    assert_eq!(snapshot(&b, &owner).await, expected, "seed {seed}");
    assert_eq!(
        analytics_counts(&a, &owner).await,
        expected_counts,
        "seed {seed}"
    );
    eprintln!(
        "FIGURES webhook storm: {} deliveries ({} fixtures x20) over two nodes, 32 at a \
         time, posted in {:.1}s, settled in {:.1}s, state and counts equal to one delivery each",
        order.len(),
        order.len() / 20,
        posted.as_secs_f64(),
        settled.as_secs_f64()
    );
}
