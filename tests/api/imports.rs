use std::time::Duration;

use parley_tests::{Owner, TestApp};
use serde_json::{Value, json};

const UPLOAD: &str = "mutation($file: Upload!) { uploadContactImport(file: $file) {
  preview import { id status headers totalRows error } } }";
const START: &str = "mutation($id: ID!, $mapping: [ColumnMappingInput!]!) { startContactImport(id: $id, mapping: $mapping) { id status } }";
const JOB: &str = "query($id: ID!) { contactImport(id: $id) { status totalRows processedRows added updated failed warnings error
  issues(first: 100) { edges { node { rowNumber severity reason cells } } }
  failedRowsDownload { url } } }";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../shared/fixtures/contacts/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn define(app: &TestApp, who: &Owner, tags: &[&str], attributes: &[&str]) {
    for name in tags {
        app.gql("mutation($n: String!) { createTag(input: { name: $n }) { id } }")
            .as_member(who)
            .vars(json!({ "n": name }))
            .data()
            .await;
    }
    for key in attributes {
        app.gql("mutation($k: String!) { createAttribute(key: $k, displayName: $k) { id } }")
            .as_member(who)
            .vars(json!({ "k": key }))
            .data()
            .await;
    }
}

async fn upload(app: &TestApp, who: &Owner, name: &str, bytes: Vec<u8>) -> Value {
    let reply = app.upload(who, UPLOAD, name, bytes).await;
    reply.data()["uploadContactImport"].clone()
}

/// Starts the import and waits for it to end; returns the job.
async fn run(app: &TestApp, who: &Owner, id: &str, mapping: Value) -> Value {
    app.gql(START)
        .as_member(who)
        .vars(json!({ "id": id, "mapping": mapping }))
        .data()
        .await;
    app.import_when_ended(who, JOB, id, Duration::from_secs(60))
        .await
}

fn messy_mapping() -> Value {
    json!([
        { "column": "Name", "field": "NAME" },
        { "column": "Mobile Number", "field": "PHONE" },
        { "column": "Tags", "field": "TAGS" },
        { "column": "Source", "field": "SOURCE" },
        { "column": "City", "field": "ATTRIBUTE", "attributeKey": "city" },
    ])
}

async fn contact_by_phone(app: &TestApp, who: &Owner, phone: &str) -> Value {
    let data = app
        .gql("query($q: String!) { contacts(filter: { search: $q }) { edges { node { name phone source tags { name } attributes { key value } journey { edges { node { kind actorKind } } } } } } }")
        .as_member(who)
        .vars(json!({ "q": phone }))
        .data()
        .await;
    let edges = data["contacts"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "contacts for {phone}: {edges:?}");
    edges[0]["node"].clone()
}

#[tokio::test]
async fn the_messy_fixture_imports_with_exactly_the_listed_outcomes() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Importer").await;
    define(&app, &owner, &["MBA", "Finance", "Marketing"], &["city"]).await;
    let uploaded = upload(
        &app,
        &owner,
        "contacts-messy.csv",
        fixture("contacts-messy.csv"),
    )
    .await;
    assert_eq!(uploaded["import"]["status"], "UPLOADED");
    assert_eq!(
        uploaded["import"]["headers"],
        json!(["Name", "Mobile Number", "Tags", "Source", "City"])
    );
    assert_eq!(uploaded["import"]["totalRows"], 13);
    assert_eq!(
        uploaded["preview"][0],
        json!(["Priya Nair", "9812300001", "MBA", "", "Kochi"])
    );

    let id = uploaded["import"]["id"].as_str().unwrap().to_owned();
    let job = run(&app, &owner, &id, messy_mapping()).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    // Rows 1-4, 12 and 13 added; row 10 updates row 1; rows 5-9 and 11 fail.
    assert_eq!(
        (
            job["added"].as_i64(),
            job["updated"].as_i64(),
            job["failed"].as_i64()
        ),
        (Some(6), Some(1), Some(6))
    );
    assert_eq!(job["processedRows"], 13);
    let issues: Vec<(i64, String, String)> = job["issues"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["rowNumber"].as_i64().unwrap(),
                e["node"]["severity"].as_str().unwrap().to_owned(),
                e["node"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let rows: Vec<(i64, &str)> = issues.iter().map(|(r, s, _)| (*r, s.as_str())).collect();
    assert_eq!(
        rows,
        vec![
            (5, "ERROR"),
            (6, "ERROR"),
            (7, "ERROR"),
            (8, "ERROR"),
            (9, "ERROR"),
            (11, "ERROR"),
            (13, "WARNING")
        ]
    );
    assert!(issues[0].2.contains("name"), "{issues:?}");
    assert!(issues[1].2.contains("phone"), "{issues:?}");
    assert!(issues[3].2.contains("Iran"), "{issues:?}");
    assert!(issues[5].2.contains("101 tags"), "{issues:?}");
    assert!(issues[6].2.contains("NoSuchTag"), "{issues:?}");

    // Row 10 updated row 1's contact: new city, tags added up.
    let priya = contact_by_phone(&app, &owner, "+919812300001").await;
    assert_eq!(
        priya["attributes"],
        json!([{ "key": "city", "value": "Thiruvananthapuram" }])
    );
    assert_eq!(
        priya["tags"],
        json!([{ "name": "Finance" }, { "name": "MBA" }])
    );
    assert_eq!(priya["source"], "IMPORT");
    assert_eq!(
        priya["journey"]["edges"][0]["node"],
        json!({ "kind": "contact.imported", "actorKind": "IMPORT" })
    );
    let arjun = contact_by_phone(&app, &owner, "+919812300002").await;
    assert_eq!(arjun["source"], "Expo");
    let kavya = contact_by_phone(&app, &owner, "+919812300003").await;
    assert_eq!(
        kavya["tags"],
        json!([{ "name": "Marketing" }, { "name": "MBA" }])
    );
    contact_by_phone(&app, &owner, "+12025550143").await;
    let formula = contact_by_phone(&app, &owner, "+919812300012").await;
    assert_eq!(
        formula["name"],
        "=HYPERLINK(\"http://evil.example\",\"click\")"
    );
    let olivia = contact_by_phone(&app, &owner, "+61412300013").await;
    assert_eq!(olivia["tags"], json!([]));

    // The failed rows download: the file's columns plus the reason.
    let url = job["failedRowsDownload"]["url"].as_str().unwrap();
    let csv = app
        .http
        .get(app.url(url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "Name,Mobile Number,Tags,Source,City,error");
    assert_eq!(lines.len(), 7, "{csv}");
    assert!(lines[1].starts_with(",9812300005,MBA,,Nagpur,"), "{csv}");
    assert!(lines[4].starts_with("Reza Tehrani,'+989121234567"), "{csv}");

    let count = app.gql("{ contactCount }").as_member(&owner).data().await;
    assert_eq!(count["contactCount"], 6);
}

#[tokio::test]
async fn the_sample_fixture_imports_with_one_unknown_tag_reported() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Sample").await;
    define(
        &app,
        &owner,
        &["MBA", "Finance", "Marketing", "Pricing"],
        &["city", "email", "region"],
    )
    .await;
    let uploaded = upload(
        &app,
        &owner,
        "contacts-sample.csv",
        fixture("contacts-sample.csv"),
    )
    .await;
    let id = uploaded["import"]["id"].as_str().unwrap().to_owned();
    let mapping = json!([
        { "column": "Name", "field": "NAME" },
        { "column": "Mobile Number", "field": "PHONE" },
        { "column": "Tags", "field": "TAGS" },
        { "column": "Source", "field": "SOURCE" },
        { "column": "First Message", "field": "FIRST_MESSAGE" },
        { "column": "City", "field": "ATTRIBUTE", "attributeKey": "city" },
        { "column": "email", "field": "ATTRIBUTE", "attributeKey": "email" },
        { "column": "State", "field": "ATTRIBUTE", "attributeKey": "region" },
    ]);
    let job = run(&app, &owner, &id, mapping.clone()).await;
    assert_eq!(
        (
            job["added"].as_i64(),
            job["updated"].as_i64(),
            job["failed"].as_i64(),
            job["warnings"].as_i64()
        ),
        (Some(5), Some(0), Some(0), Some(1)),
        "{job}"
    );
    assert!(
        job["issues"]["edges"][0]["node"]["reason"]
            .as_str()
            .unwrap()
            .contains("Webinar")
    );
    let rohit = contact_by_phone(&app, &owner, "+919876500011").await;
    assert_eq!(rohit["source"], "Facebook Ads");
    assert_eq!(
        rohit["tags"],
        json!([{ "name": "Finance" }, { "name": "MBA" }])
    );
    let mohit = contact_by_phone(&app, &owner, "+919876543452").await;
    assert_eq!(mohit["source"], "IMPORT");
    let first = app
        .gql("{ contacts(filter: { search: \"Jane\" }) { edges { node { firstMessageTag { name } attributes { key value } } } } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(
        first["contacts"]["edges"][0]["node"]["firstMessageTag"]["name"],
        "Pricing"
    );

    // The same file again adds nothing.
    let again = upload(
        &app,
        &owner,
        "contacts-sample.csv",
        fixture("contacts-sample.csv"),
    )
    .await;
    let job = run(
        &app,
        &owner,
        again["import"]["id"].as_str().unwrap(),
        mapping,
    )
    .await;
    assert_eq!(
        (job["added"].as_i64(), job["updated"].as_i64()),
        (Some(0), Some(5))
    );
    let count = app.gql("{ contactCount }").as_member(&owner).data().await;
    assert_eq!(count["contactCount"], 5);
}

#[tokio::test]
async fn bad_files_and_mappings_fail_whole_and_change_nothing() {
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| s.imports.max_bytes = 4_096).await;
    let owner = app.sign_up("Careful").await;
    define(&app, &owner, &["MBA"], &[]).await;

    for (name, bytes, reason) in [
        (
            "picture.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            "not a CSV",
        ),
        (
            "latin1.csv",
            b"Name,Phone\nJos\xe9,9812300001\n".to_vec(),
            "UTF-8",
        ),
        ("empty.csv", b"\n\n".to_vec(), "empty"),
        (
            "huge.csv",
            [b"Name,Phone\n".to_vec(), b"A,9812300001\n".repeat(400)].concat(),
            "larger",
        ),
        ("dupe.csv", b"Phone,phone\n1,2\n".to_vec(), "twice"),
    ] {
        let uploaded = upload(&app, &owner, name, bytes).await;
        assert_eq!(uploaded["import"]["status"], "FAILED", "{name}");
        let error = uploaded["import"]["error"].as_str().unwrap();
        assert!(error.contains(reason), "{name}: {error}");
    }

    // Far over the limit: refused before it is read.
    let far = [b"Name,Phone\n".to_vec(), b"A,9812300001\n".repeat(1_000)].concat();
    let reply = app.upload(&owner, UPLOAD, "far.csv", far).await;
    assert_eq!(reply.status, 413, "{}", reply.body);

    let good = upload(
        &app,
        &owner,
        "ok.csv",
        b"Name,Phone,City\nA,9812300001,Pune\n".to_vec(),
    )
    .await;
    let id = good["import"]["id"].as_str().unwrap().to_owned();
    for (mapping, reason) in [
        (json!([{ "column": "Name", "field": "NAME" }]), "phone"),
        (
            json!([{ "column": "Name", "field": "NAME" }, { "column": "Phone", "field": "PHONE" }, { "column": "City", "field": "ATTRIBUTE", "attributeKey": "city" }]),
            "no attribute city",
        ),
        (
            json!([{ "column": "Name", "field": "NAME" }, { "column": "Phone", "field": "PHONE" }, { "column": "Name", "field": "TAGS" }]),
            "mapped twice",
        ),
        (
            json!([{ "column": "Name", "field": "NAME" }, { "column": "Phone", "field": "PHONE" }, { "column": "City", "field": "NAME" }]),
            "two columns",
        ),
        (
            json!([{ "column": "Nope", "field": "NAME" }, { "column": "Phone", "field": "PHONE" }]),
            "no column Nope",
        ),
    ] {
        let message = app
            .gql(START)
            .as_member(&owner)
            .vars(json!({ "id": id, "mapping": mapping }))
            .send()
            .await
            .expect_error("BAD_USER_INPUT");
        assert!(message.contains(reason), "{message}");
    }
    let job = app
        .gql(JOB)
        .as_member(&owner)
        .vars(json!({ "id": id }))
        .data()
        .await;
    assert_eq!(job["contactImport"]["status"], "UPLOADED");
    let count = app.gql("{ contactCount }").as_member(&owner).data().await;
    assert_eq!(count["contactCount"], 0);

    // Corrected, the same upload runs; started twice it is refused.
    let job = run(
        &app,
        &owner,
        &id,
        json!([{ "column": "Name", "field": "NAME" }, { "column": "Phone", "field": "PHONE" }]),
    )
    .await;
    assert_eq!(job["added"], 1);
    app.gql(START)
        .as_member(&owner)
        .vars(json!({ "id": id, "mapping": [{ "column": "Name", "field": "NAME" }, { "column": "Phone", "field": "PHONE" }] }))
        .send()
        .await
        .expect_error("CONFLICT");
}

#[tokio::test]
async fn progress_is_published_while_an_import_runs() {
    use parley_tests::ws::{Event, WsClient};
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| s.imports.batch_rows = 1_000).await;
    let owner = app.sign_up("Progress").await;
    let rows: String = (0..4_500)
        .map(|i| format!("Person {i},98{i:08}\n"))
        .collect();
    let uploaded = upload(
        &app,
        &owner,
        "many.csv",
        format!("Name,Phone\n{rows}").into_bytes(),
    )
    .await;
    let id = uploaded["import"]["id"].as_str().unwrap().to_owned();

    let mut client = WsClient::connect(&app.ws_url()).await;
    client
        .init(json!({ "authorization": format!("Bearer {}", owner.token), "projectId": owner.project_id }))
        .await;
    client
        .subscribe("p", &format!("subscription {{ contactImportProgress(id: \"{id}\") {{ status processedRows totalRows added }} }}"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.gql(START)
        .as_member(&owner)
        .vars(json!({ "id": id, "mapping": [{ "column": "Name", "field": "NAME" }, { "column": "Phone", "field": "PHONE" }] }))
        .data()
        .await;
    let mut seen = Vec::new();
    loop {
        match client.next().await {
            Event::Message(m) => {
                let p = m["payload"]["data"]["contactImportProgress"].clone();
                seen.push((
                    p["status"].as_str().unwrap().to_owned(),
                    p["processedRows"].as_i64().unwrap(),
                ));
                if p["status"] == "COMPLETED" {
                    assert_eq!(p["added"], 4_500);
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    // Batches of 1,000: progress after each, then completion.
    assert!(seen.len() >= 5, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "{seen:?}");
}

#[tokio::test]
async fn exports_stream_the_filtered_contacts_with_formulas_defused() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Exporter").await;
    define(&app, &owner, &["MBA", "Finance", "Marketing"], &["city"]).await;
    let uploaded = upload(
        &app,
        &owner,
        "contacts-messy.csv",
        fixture("contacts-messy.csv"),
    )
    .await;
    run(
        &app,
        &owner,
        uploaded["import"]["id"].as_str().unwrap(),
        messy_mapping(),
    )
    .await;

    let link = app
        .gql("mutation { exportContacts { url expiresAt } }")
        .as_member(&owner)
        .data()
        .await;
    let url = link["exportContacts"]["url"].as_str().unwrap();
    let response = app.http.get(app.url(url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7, "{csv}");
    assert!(lines[0].starts_with("Name,Phone,BSUID,Tags,Source"));
    assert!(lines[0].ends_with(",city"));
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\""),
        "{csv}"
    );
    assert!(
        csv.contains("Priya Nair,'+919812300001,,Finance | MBA,IMPORT"),
        "{csv}"
    );

    let mba = app
        .gql("{ tags { id name } }")
        .as_member(&owner)
        .data()
        .await;
    let mba_id = mba["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "MBA")
        .unwrap()["id"]
        .clone();
    let link = app
        .gql("mutation($t: ID!) { exportContacts(filter: { tags: { anyOf: [$t] } }) { url } }")
        .as_member(&owner)
        .vars(json!({ "t": mba_id }))
        .data()
        .await;
    let csv = app
        .http
        .get(app.url(link["exportContacts"]["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let forged = app
        .http
        .get(app.url("/downloads/not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);
}

#[tokio::test]
async fn imports_run_in_the_embedded_mode_too() {
    let app = TestApp::spawn_embedded().await;
    let owner = app.sign_up("Laptop").await;
    define(&app, &owner, &["MBA", "Finance", "Marketing"], &["city"]).await;
    let uploaded = upload(
        &app,
        &owner,
        "contacts-messy.csv",
        fixture("contacts-messy.csv"),
    )
    .await;
    let job = run(
        &app,
        &owner,
        uploaded["import"]["id"].as_str().unwrap(),
        messy_mapping(),
    )
    .await;
    assert_eq!(
        (
            job["added"].as_i64(),
            job["updated"].as_i64(),
            job["failed"].as_i64()
        ),
        (Some(6), Some(1), Some(6))
    );
}

#[tokio::test]
async fn a_file_of_many_batches_imports_every_row_once() {
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| s.imports.batch_rows = 1_000).await;
    let owner = app.sign_up("Bulk").await;
    define(&app, &owner, &["Gold", "Silver"], &["city", "plan"]).await;
    // 12,000 rows: every 100th repeats an earlier phone from another batch, every 250th has
    // no phone.
    let mut csv = String::from("Name,Phone,Tags,City,Plan\n");
    for i in 0..12_000u32 {
        let phone = if i % 250 == 249 {
            String::new()
        } else if i % 100 == 99 {
            format!("98{:08}", i - 99)
        } else {
            format!("98{i:08}")
        };
        csv.push_str(&format!(
            "Person {i},{phone},Gold | Silver,City {},Plan {}\n",
            i % 7,
            i % 3
        ));
    }
    let uploaded = upload(&app, &owner, "bulk.csv", csv.into_bytes()).await;
    let mapping = json!([
        { "column": "Name", "field": "NAME" },
        { "column": "Phone", "field": "PHONE" },
        { "column": "Tags", "field": "TAGS" },
        { "column": "City", "field": "ATTRIBUTE", "attributeKey": "city" },
        { "column": "Plan", "field": "ATTRIBUTE", "attributeKey": "plan" },
    ]);
    let job = run(
        &app,
        &owner,
        uploaded["import"]["id"].as_str().unwrap(),
        mapping,
    )
    .await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    // Rows without a phone fail; a repeated phone updates the contact its first row made
    // (in the same batch below row 1,000, in an earlier batch after).
    let failed = (0..12_000u32).filter(|i| i % 250 == 249).count() as i64;
    let repeats = (0..12_000u32)
        .filter(|i| i % 100 == 99 && i % 250 != 249)
        .count() as i64;
    assert_eq!(job["failed"], failed);
    assert_eq!(job["updated"], repeats);
    assert_eq!(job["added"], 12_000 - failed - repeats);
    let count = app.gql("{ contactCount }").as_member(&owner).data().await;
    assert_eq!(count["contactCount"], 12_000 - failed - repeats);
    // Row 5,099 repeats row 5,000's phone in a later batch: its cells won.
    let sample = contact_by_phone(&app, &owner, "+919800005000").await;
    assert_eq!(sample["name"], "Person 5099");
    assert_eq!(
        sample["tags"],
        json!([{ "name": "Gold" }, { "name": "Silver" }])
    );
    assert_eq!(
        sample["attributes"],
        json!([{ "key": "city", "value": "City 3" }, { "key": "plan", "value": "Plan 2" }])
    );
}

/// A file whose quoted line breaks, multi-byte characters, CRLF line ends and byte-order
/// mark fall across the boundaries of the stored chunks (7 bytes each here).
fn awkward_file() -> Vec<u8> {
    let mut csv = String::from("\u{feff}Name,Phone,City\r\n");
    csv.push_str("\"Zoë \"\"Z\"\" Ünal\",9812300001,\"Köln\r\nNord, 東京\"\r\n");
    csv.push_str("Ananya Iyer,9812300002,\"Chennai\nSouth\"\r\n");
    csv.push_str("Émile Ñúñez,9812300003,São Paulo €\r\n");
    csv.into_bytes()
}

async fn awkward_file_imports_whole(app: &TestApp) {
    let owner = app.sign_up("Chunks").await;
    define(app, &owner, &[], &["city"]).await;
    let uploaded = upload(app, &owner, "awkward.csv", awkward_file()).await;
    assert_eq!(uploaded["import"]["status"], "UPLOADED", "{uploaded}");
    assert_eq!(
        uploaded["import"]["headers"],
        json!(["Name", "Phone", "City"])
    );
    assert_eq!(uploaded["import"]["totalRows"], 3);
    assert_eq!(
        uploaded["preview"],
        json!([
            ["Zoë \"Z\" Ünal", "9812300001", "Köln\r\nNord, 東京"],
            ["Ananya Iyer", "9812300002", "Chennai\nSouth"],
            ["Émile Ñúñez", "9812300003", "São Paulo €"],
        ])
    );
    let job = run(
        app,
        &owner,
        uploaded["import"]["id"].as_str().unwrap(),
        json!([
            { "column": "Name", "field": "NAME" },
            { "column": "Phone", "field": "PHONE" },
            { "column": "City", "field": "ATTRIBUTE", "attributeKey": "city" },
        ]),
    )
    .await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(
        (job["added"].as_i64(), job["failed"].as_i64()),
        (Some(3), Some(0))
    );
    let zoe = contact_by_phone(app, &owner, "+919812300001").await;
    assert_eq!(zoe["name"], "Zoë \"Z\" Ünal");
    assert_eq!(
        zoe["attributes"],
        json!([{ "key": "city", "value": "Köln\r\nNord, 東京" }])
    );
    let emile = contact_by_phone(app, &owner, "+919812300003").await;
    assert_eq!(emile["name"], "Émile Ñúñez");
    assert_eq!(
        emile["attributes"],
        json!([{ "key": "city", "value": "São Paulo €" }])
    );
}

#[tokio::test]
async fn a_file_stored_in_small_chunks_imports_whole() {
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| s.imports.chunk_bytes = 7).await;
    awkward_file_imports_whole(&app).await;
}

#[tokio::test]
async fn a_file_stored_in_small_chunks_imports_whole_in_the_embedded_mode() {
    let mode = parley_tests::Mode::Embedded;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| s.imports.chunk_bytes = 7).await;
    awkward_file_imports_whole(&app).await;
}

async fn stored_chunks(shared: &parley_tests::Shared) -> i64 {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let db = Database::connect(shared.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS n FROM import_file_chunks",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn a_refused_or_finished_file_leaves_no_chunks_behind() {
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| {
        s.imports.chunk_bytes = 64;
        s.imports.max_rows = 100;
    })
    .await;
    let owner = app.sign_up("Refused").await;
    let rows = b"A,9812300001\n".repeat(50);
    // Many chunks are read (and stored) before each of these is found bad.
    for (name, bytes, reason) in [
        (
            "latin1.csv",
            [
                b"Name,Phone\n".to_vec(),
                rows.clone(),
                b"Jos\xe9,1\n".to_vec(),
            ]
            .concat(),
            "UTF-8",
        ),
        (
            "binary.csv",
            [b"Name,Phone\n".to_vec(), rows.clone(), b"\0\0".to_vec()].concat(),
            "not a CSV",
        ),
        (
            "long.csv",
            [b"Name,Phone\n".to_vec(), rows.repeat(3)].concat(),
            "more than 100 rows",
        ),
    ] {
        let uploaded = upload(&app, &owner, name, bytes).await;
        assert_eq!(uploaded["import"]["status"], "FAILED", "{name}");
        let error = uploaded["import"]["error"].as_str().unwrap();
        assert!(error.contains(reason), "{name}: {error}");
    }
    assert_eq!(stored_chunks(&shared).await, 0);

    let good = [b"Name,Phone\n".to_vec(), rows].concat();
    let uploaded = upload(&app, &owner, "good.csv", good.clone()).await;
    assert_eq!(uploaded["import"]["totalRows"], 50);
    assert_eq!(stored_chunks(&shared).await, good.len().div_ceil(64) as i64);

    // Once imported, the file's chunks are gone.
    let id = uploaded["import"]["id"].as_str().unwrap();
    let mapping = json!([
        { "column": "Name", "field": "NAME" },
        { "column": "Phone", "field": "PHONE" },
    ]);
    let job = run(&app, &owner, id, mapping).await;
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(stored_chunks(&shared).await, 0);
}

#[tokio::test]
async fn a_resumed_import_skips_the_rows_it_had_applied() {
    use sea_orm::{ConnectionTrait, Database};
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let small_chunks = |s: &mut parley_api::Settings| s.imports.chunk_bytes = 16;
    let first = TestApp::spawn_with(mode.clone(), &shared, small_chunks).await;
    let owner = first.sign_up("Resumed").await;
    define(&first, &owner, &[], &["city"]).await;
    let uploaded = upload(&first, &owner, "awkward.csv", awkward_file()).await;
    let id = uploaded["import"]["id"].as_str().unwrap().to_owned();

    // As a runner that applied the first two rows and then died would leave it.
    let db = Database::connect(shared.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let mapping = json!([
        { "column": "Name", "field": "NAME" },
        { "column": "Phone", "field": "PHONE" },
        { "column": "City", "field": "ATTRIBUTE", "attributeKey": "city" },
    ]);
    db.execute_unprepared(&format!(
        "UPDATE import_jobs SET status = 'RUNNING', mapping = '{mapping}', processed_rows = 2, \
         started_at = now() - interval '5 minutes', heartbeat_at = now() - interval '5 minutes' \
         WHERE id = '{id}'"
    ))
    .await
    .unwrap();

    // A server starting up picks the job up where it stopped.
    let second = TestApp::spawn_with(mode, &shared, small_chunks).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let job = loop {
        let job = second
            .gql(JOB)
            .as_member(&owner)
            .vars(json!({ "id": id }))
            .data()
            .await["contactImport"]
            .clone();
        if job["status"] == "COMPLETED" || job["status"] == "FAILED" {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "not resumed: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "COMPLETED", "{job}");
    assert_eq!(
        (job["processedRows"].as_i64(), job["added"].as_i64()),
        (Some(3), Some(1))
    );
    let count = second
        .gql("{ contactCount }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(count["contactCount"], 1);
    let emile = contact_by_phone(&second, &owner, "+919812300003").await;
    assert_eq!(emile["name"], "Émile Ñúñez");
}
