//! What an import writes beside the contacts, and imports racing for the same phones.

use std::time::Duration;

use parley_tests::{Owner, TestApp, eventually};
use serde_json::{Value, json};

const UPLOAD: &str =
    "mutation($file: Upload!) { uploadContactImport(file: $file) { import { id } } }";
const START: &str = "mutation($id: ID!, $mapping: [ColumnMappingInput!]!) { startContactImport(id: $id, mapping: $mapping) { id } }";
const JOB: &str =
    "query($id: ID!) { contactImport(id: $id) { status added updated failed error } }";

fn mapping() -> Value {
    json!([
        { "column": "Name", "field": "NAME" },
        { "column": "Phone", "field": "PHONE" },
        { "column": "Tags", "field": "TAGS" },
        { "column": "City", "field": "ATTRIBUTE", "attributeKey": "city" },
    ])
}

async fn prepare(app: &TestApp, owner: &Owner) {
    for name in ["Gold", "Silver"] {
        app.gql("mutation($n: String!) { createTag(input: { name: $n }) { id } }")
            .as_member(owner)
            .vars(json!({ "n": name }))
            .data()
            .await;
    }
    app.gql("mutation { createAttribute(key: \"city\", displayName: \"City\") { id } }")
        .as_member(owner)
        .data()
        .await;
}

fn file(rows: u32) -> Vec<u8> {
    let mut csv = String::from("Name,Phone,Tags,City\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "Person {i},97{i:08},Gold | Silver,City {}\n",
            i % 5
        ));
    }
    csv.into_bytes()
}

async fn upload(app: &TestApp, owner: &Owner, bytes: Vec<u8>) -> String {
    let reply = app.upload(owner, UPLOAD, "people.csv", bytes).await;
    reply.data()["uploadContactImport"]["import"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn start(app: &TestApp, owner: &Owner, id: &str) {
    app.gql(START)
        .as_member(owner)
        .vars(json!({ "id": id, "mapping": mapping() }))
        .data()
        .await;
}

async fn finished(app: &TestApp, owner: &Owner, id: &str) -> Value {
    app.import_when_ended(owner, JOB, id, Duration::from_secs(120))
        .await
}

#[tokio::test]
async fn two_imports_of_one_file_at_once_create_each_contact_once() {
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    // Small batches, so that the two jobs interleave and race for the same new phones.
    let app = TestApp::spawn_with(mode, &shared, |s| s.imports.batch_rows = 100).await;
    let owner = app.sign_up("Racing").await;
    prepare(&app, &owner).await;
    let rows = 3_000;
    let first = upload(&app, &owner, file(rows)).await;
    let second = upload(&app, &owner, file(rows)).await;
    tokio::join!(start(&app, &owner, &first), start(&app, &owner, &second));
    let (a, b) = tokio::join!(
        finished(&app, &owner, &first),
        finished(&app, &owner, &second)
    );
    assert_eq!(
        (&a["status"], &b["status"]),
        (&json!("COMPLETED"), &json!("COMPLETED")),
        "{a} {b}"
    );
    let added = a["added"].as_i64().unwrap() + b["added"].as_i64().unwrap();
    let updated = a["updated"].as_i64().unwrap() + b["updated"].as_i64().unwrap();
    // Whichever job wrote a phone first created it; the other updated it.
    assert_eq!((added, updated), (i64::from(rows), i64::from(rows)));
    let count = app.gql("{ contactCount }").as_member(&owner).data().await;
    assert_eq!(count["contactCount"], rows);
    let contact = app
        .gql("{ contacts(filter: { search: \"+919700002999\" }) { edges { node { name tags { name } attributes { key value } journey { edges { node { kind } } } } } } }")
        .as_member(&owner)
        .data()
        .await["contacts"]["edges"][0]["node"]
        .clone();
    assert_eq!(contact["name"], "Person 2999");
    assert_eq!(
        contact["tags"],
        json!([{ "name": "Gold" }, { "name": "Silver" }])
    );
    assert_eq!(
        contact["attributes"],
        json!([{ "key": "city", "value": "City 4" }])
    );
    // One journey entry per job that wrote the contact.
    assert_eq!(contact["journey"]["edges"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn every_imported_row_reaches_analytics_with_its_contact() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Counted").await;
    prepare(&app, &owner).await;
    let job = upload(&app, &owner, file(40)).await;
    start(&app, &owner, &job).await;
    assert_eq!(finished(&app, &owner, &job).await["added"], 40);
    // The same file again: every row is an update of an existing contact.
    let again = upload(&app, &owner, file(40)).await;
    start(&app, &owner, &again).await;
    assert_eq!(finished(&app, &owner, &again).await["updated"], 40);

    let project = &owner.project_id;
    let count = |created: bool| {
        format!(
            "SELECT count() FROM events WHERE project_id = toUUID('{project}') \
             AND kind = 'contact.imported' \
             AND length(visitParamExtractString(payload, 'contactId')) = 36 \
             AND visitParamExtractString(payload, 'actorKind') = 'IMPORT' \
             AND position(payload, '\"created\":{created}') > 0"
        )
    };
    eventually(
        Duration::from_secs(15),
        "import events in ClickHouse",
        || async {
            app.clickhouse_count(&count(true)).await == 40
                && app.clickhouse_count(&count(false)).await == 40
        },
    )
    .await;
}

/// The phone of row `i`: every seventh row from row 60 on repeats the phone of the row 60
/// before it, which with batches of 50 rows sits in the batch before or the one before that.
fn repeated_phone_index(i: u32) -> u32 {
    if i >= 60 && i % 7 == 3 { i - 60 } else { i }
}

#[tokio::test]
async fn batches_written_at_once_keep_the_files_order() {
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| s.imports.batch_rows = 50).await;
    let owner = app.sign_up("Ordered").await;
    prepare(&app, &owner).await;
    let rows = 600;
    let mut csv = String::from("Name,Phone,Tags,City\n");
    for i in 0..rows {
        let phone = repeated_phone_index(i);
        csv.push_str(&format!("Person {i},97{phone:08},Gold,City {i}\n"));
    }
    let job = upload(&app, &owner, csv.into_bytes()).await;
    start(&app, &owner, &job).await;
    let job = finished(&app, &owner, &job).await;
    let repeats = (0..rows).filter(|&i| repeated_phone_index(i) != i).count() as i64;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(job["added"].as_i64(), Some(i64::from(rows) - repeats));
    assert_eq!(job["updated"].as_i64(), Some(repeats));

    // Listed oldest first, the contacts come in the order their phones first appear in the
    // file, and each carries what the file's last row for its phone said.
    let mut last_row_of_phone = std::collections::BTreeMap::new();
    for i in 0..rows {
        last_row_of_phone.insert(repeated_phone_index(i), i);
    }
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = app
            .gql("query($after: String) { contacts(first: 100, after: $after) { edges { node { name phone attributes { value } } } pageInfo { hasNextPage endCursor } } }")
            .as_member(&owner)
            .vars(json!({ "after": after }))
            .data()
            .await["contacts"]
            .clone();
        for edge in page["edges"].as_array().unwrap() {
            listed.push(edge["node"].clone());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    assert_eq!(listed.len(), last_row_of_phone.len());
    for (node, (phone, last_row)) in listed.iter().zip(&last_row_of_phone) {
        assert_eq!(node["phone"], format!("+9197{phone:08}"));
        assert_eq!(node["name"], format!("Person {last_row}"));
        assert_eq!(
            node["attributes"],
            json!([{ "value": format!("City {last_row}") }])
        );
    }
}

#[tokio::test]
async fn an_import_kept_waiting_by_another_writer_fails_with_the_reason_and_applies_nothing() {
    use sea_orm::{ConnectionTrait, Database, TransactionTrait};
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| {
        s.imports.lock_timeout = Duration::from_millis(300)
    })
    .await;
    let owner = app.sign_up("Held").await;
    prepare(&app, &owner).await;
    let first = upload(&app, &owner, file(10)).await;
    start(&app, &owner, &first).await;
    assert_eq!(finished(&app, &owner, &first).await["added"], 10);

    // Another writer holds one of the contacts the next file updates, and does not let go.
    let db = Database::connect(shared.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let holder = db.begin().await.unwrap();
    holder
        .execute_unprepared("SELECT id FROM contacts WHERE phone = '+919700000005' FOR UPDATE")
        .await
        .unwrap();
    let second = upload(&app, &owner, file(20)).await;
    start(&app, &owner, &second).await;
    let job = finished(&app, &owner, &second).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("held by another change")),
        "{job}"
    );
    let count = app.gql("{ contactCount }").as_member(&owner).data().await;
    assert_eq!(count["contactCount"], 10, "the failed batch added nothing");
    holder.rollback().await.unwrap();

    // Once the other writer is done, the same file imports.
    let again = upload(&app, &owner, file(20)).await;
    start(&app, &owner, &again).await;
    let job = finished(&app, &owner, &again).await;
    assert_eq!(
        (job["added"].as_i64(), job["updated"].as_i64()),
        (Some(10), Some(10))
    );
}
