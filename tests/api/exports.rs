//! The streamed CSV export: the filter, the file's cells and its size.

use parley_tests::{Owner, TestApp};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

const CREATE: &str =
    "mutation($input: CreateContactInput!) { createContact(input: $input) { id } }";
const LIST: &str = "query($f: ContactFilterInput) { contacts(filter: $f, first: 100) { edges { node { name } } } contactCount(filter: $f) }";
const HEADER: &str =
    "Name,Phone,BSUID,Tags,Source,Opted In,Incoming Blocked,State,Last Active At,Created At";

async fn create(app: &TestApp, who: &Owner, mutation: &str, vars: Value) -> String {
    let data = app.gql(mutation).as_member(who).vars(vars).data().await;
    let created = data.as_object().unwrap().values().next().unwrap();
    created["id"].as_str().unwrap().to_owned()
}

async fn tag(app: &TestApp, who: &Owner, name: &str) -> String {
    let createtag = "mutation($name: String!) { createTag(input: { name: $name }) { id } }";
    create(app, who, createtag, json!({ "name": name })).await
}

async fn attribute(app: &TestApp, who: &Owner, key: &str) -> String {
    let mutation =
        "mutation($key: String!) { createAttribute(key: $key, displayName: $key) { id } }";
    create(app, who, mutation, json!({ "key": key })).await
}

async fn export_url(app: &TestApp, who: &Owner, filter: Value) -> String {
    let link = app
        .gql("mutation($f: ContactFilterInput) { exportContacts(filter: $f) { url } }")
        .as_member(who)
        .vars(json!({ "f": filter }))
        .data()
        .await;
    app.url(link["exportContacts"]["url"].as_str().unwrap())
}

async fn export(app: &TestApp, who: &Owner, filter: Value) -> String {
    let url = export_url(app, who, filter).await;
    let response = app.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// RFC 4180 records: quoted fields may hold commas, doubled quotes and line breaks.
fn records(csv: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, csv.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && record.is_empty(), "a cut record: {csv}");
    records
}

fn exported_names(csv: &str) -> Vec<String> {
    let mut names: Vec<String> = records(csv)
        .into_iter()
        .skip(1)
        .map(|r| r[0].clone())
        .collect();
    names.sort();
    names
}

async fn listed_names(app: &TestApp, who: &Owner, filter: &Value) -> Vec<String> {
    let data = app
        .gql(LIST)
        .as_member(who)
        .vars(json!({ "f": filter }))
        .data()
        .await;
    let names = parley_tests::sorted_contact_names(&data);
    assert_eq!(data["contactCount"], names.len(), "fewer than a page");
    names
}

/// A small project with every kind of field a filter looks at.
struct Fixture {
    owner: Owner,
    mba: String,
    fin: String,
    city: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let owner = app.sign_up("Exports").await;
    let mba = tag(app, &owner, "MBA").await;
    let fin = tag(app, &owner, "Finance").await;
    let city = attribute(app, &owner, "city").await;
    attribute(app, &owner, "plan").await;
    for input in [
        json!({ "name": "Both", "phone": "9812300001", "tagIds": [mba, fin], "attributes": [{ "key": "city", "value": "Pune" }, { "key": "plan", "value": "=1+1" }] }),
        json!({ "name": "Mba Only", "phone": "9812300002", "tagIds": [mba], "attributes": [{ "key": "city", "value": "Mumbai" }] }),
        json!({ "name": "Fin Only", "phone": "9812300003", "tagIds": [fin], "source": "Expo" }),
        json!({ "name": "Nothing", "phone": "9812300004" }),
        json!({ "name": "O'Brien \\ 100%_done", "phone": "9812300005", "attributes": [{ "key": "city", "value": "x' OR '1'='1" }] }),
    ] {
        create(app, &owner, CREATE, json!({ "input": input })).await;
    }
    let nothing = listed_names(app, &owner, &json!({ "search": "Nothing" })).await;
    assert_eq!(nothing, ["Nothing"]);
    let id = app
        .gql("{ contacts(filter: { search: \"Nothing\" }) { edges { node { id } } } }")
        .as_member(&owner)
        .data()
        .await["contacts"]["edges"][0]["node"]["id"]
        .clone();
    app.gql("mutation($id: ID!) { setContactOptIn(id: $id, optedIn: false) { optedIn } }")
        .as_member(&owner)
        .vars(json!({ "id": id }))
        .data()
        .await;
    Fixture {
        owner,
        mba,
        fin,
        city,
    }
}

fn filters(f: &Fixture) -> Vec<Value> {
    let (mba, fin, city) = (&f.mba, &f.fin, &f.city);
    let hour = chrono::Duration::hours(1);
    let (past, future) = (chrono::Utc::now() - hour, chrono::Utc::now() + hour);
    vec![
        json!({ "tags": { "anyOf": [mba, fin] } }),
        json!({ "tags": { "allOf": [mba, fin] } }),
        json!({ "tags": { "noneOf": [mba] } }),
        json!({ "attributes": [{ "attributeId": city, "equals": "Pune" }] }),
        json!({ "attributes": [{ "attributeId": city, "contains": "u" }] }),
        json!({ "attributes": [{ "attributeId": city, "isSet": true }] }),
        json!({ "attributes": [{ "attributeId": city, "isSet": false }] }),
        json!({ "sources": ["Expo"] }),
        json!({ "states": ["REQUESTING"] }),
        json!({ "optedIn": false }),
        json!({ "incomingBlocked": false }),
        json!({ "search": "only" }),
        json!({ "search": "300004" }),
        json!({ "status": "INACTIVE" }),
        json!({ "status": "ACTIVE" }),
        json!({ "createdAt": { "from": past, "to": future } }),
        json!({ "createdAt": { "to": past } }),
        json!({ "lastActiveAt": { "from": past } }),
        json!({ "or": [{ "sources": ["Expo"] }, { "optedIn": false }] }),
        json!({ "and": [{ "tags": { "anyOf": [mba] } }, { "search": "both" }] }),
        json!({ "not": { "tags": { "anyOf": [fin] } }, "tags": { "anyOf": [mba] } }),
        // Values that look like SQL or patterns are only data.
        json!({ "attributes": [{ "attributeId": city, "equals": "x' OR '1'='1" }] }),
        json!({ "attributes": [{ "attributeId": city, "equals": "Pune' OR '1'='1" }] }),
        json!({ "attributes": [{ "attributeId": city, "contains": "%' OR 1=1 --" }] }),
        json!({ "search": "'); DELETE FROM contacts; --" }),
        json!({ "search": "o'brien \\ 100%_" }),
        json!({ "search": "%" }),
        json!({ "sources": ["Expo' OR 'a'='a", "x\"); DROP TABLE contacts; --"] }),
    ]
}

async fn exports_match_the_list_for_every_kind_of_filter(app: TestApp) {
    let f = fixture(&app).await;
    for filter in filters(&f) {
        let expected = listed_names(&app, &f.owner, &filter).await;
        let csv = export(&app, &f.owner, filter.clone()).await;
        assert!(csv.starts_with(HEADER), "{csv}");
        assert_eq!(exported_names(&csv), expected, "filter {filter}");
    }
    // The hostile values matched what they literally say, and changed nothing.
    let literal = json!({ "attributes": [{ "attributeId": f.city, "equals": "x' OR '1'='1" }] });
    let csv = export(&app, &f.owner, literal).await;
    assert_eq!(exported_names(&csv), ["O'Brien \\ 100%_done"]);
    let csv = export(&app, &f.owner, json!({ "search": "o'brien \\ 100%_" })).await;
    assert_eq!(exported_names(&csv), ["O'Brien \\ 100%_done"]);
    for filter in [
        json!({ "attributes": [{ "attributeId": f.city, "equals": "Pune' OR '1'='1" }] }),
        json!({ "search": "'); DELETE FROM contacts; --" }),
        json!({ "sources": ["Expo' OR 'a'='a"] }),
    ] {
        let csv = export(&app, &f.owner, filter.clone()).await;
        assert_eq!(
            records(&csv).len(),
            1,
            "only the header for {filter}: {csv}"
        );
    }
    assert_eq!(listed_names(&app, &f.owner, &json!({})).await.len(), 5);

    // The whole project and a filter matching every contact give the same file.
    let whole = export(&app, &f.owner, json!(null)).await;
    let everyone = json!({ "or": [{ "optedIn": true }, { "optedIn": false }] });
    assert_eq!(export(&app, &f.owner, everyone).await, whole);
    let rows = records(&whole);
    assert_eq!(rows[0].last().unwrap(), "plan");
    let both = rows.iter().find(|r| r[0] == "Both").unwrap();
    assert_eq!(both[1], "'+919812300001");
    assert_eq!(both[3], "Finance | MBA");
    assert_eq!(both[10..], ["Pune", "'=1+1"]);
    let nothing = rows.iter().find(|r| r[0] == "Nothing").unwrap();
    assert_eq!((nothing[3].as_str(), nothing[5].as_str()), ("", "false"));
    assert_eq!(nothing[10..], ["", ""]);
}

#[tokio::test]
async fn exports_match_the_list_for_every_kind_of_filter_on_postgres() {
    exports_match_the_list_for_every_kind_of_filter(TestApp::spawn().await).await;
}

#[tokio::test]
async fn exports_match_the_list_for_every_kind_of_filter_embedded() {
    exports_match_the_list_for_every_kind_of_filter(TestApp::spawn_embedded().await).await;
}

/// Contact `i` of the bulk: its name and phone cells as exported.
fn bulk_name(i: usize) -> String {
    match i % 7 {
        0 => format!("={i}+1"),
        1 => format!("-{i}"),
        2 => format!("@x{i}"),
        3 => format!("\tTab {i}"),
        4 => format!("Quote \"{i}\", comma"),
        5 => format!("Line\nbreak {i}"),
        _ => format!("Plain {i}"),
    }
}

fn guarded(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

#[tokio::test]
async fn a_large_export_streams_every_contact_in_order_with_formulas_defused() {
    const CONTACTS: usize = 12_000;
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Bulk").await;
    let other = app.sign_up("Other").await;
    let mba = tag(&app, &owner, "MBA").await;
    let fin = tag(&app, &owner, "+Finance").await;
    let city = attribute(&app, &owner, "city").await;
    attribute(&app, &owner, "plan").await;
    create(
        &app,
        &other,
        CREATE,
        json!({ "input": { "name": "Not mine", "phone": "9812399999" } }),
    )
    .await;
    // Written straight into the tables: thousands of contacts through the API take long.
    // Ids grow with i, so the export's order is i's.
    let db = &app.app.state.db;
    let names: Vec<String> = (0..CONTACTS).map(bulk_name).collect();
    let names_json = serde_json::to_string(&names).unwrap();
    let statement = format!(
        "INSERT INTO contacts (id, project_id, name, phone, source, state, created_at, updated_at)
         SELECT ('01900000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, '{project}',
                ($1::jsonb ->> (i - 1)), '+9198' || lpad(i::text, 8, '0'), 'IMPORT', 'REQUESTING',
                TIMESTAMPTZ '2026-01-02 03:04:05.120+00' + i * INTERVAL '1 second', now()
         FROM generate_series(1, {CONTACTS}) AS i",
        project = owner.project_id,
    );
    db.execute(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        &statement,
        [names_json.into()],
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "INSERT INTO contact_tags (contact_id, tag_id, project_id, added_at)
         SELECT c.id, t.id, c.project_id, now() FROM contacts c JOIN tags t
           ON t.id = '{mba}' OR (t.id = '{fin}' AND right(c.phone, 1) IN ('1', '3'))
         WHERE c.project_id = '{project}';
         INSERT INTO contact_attributes (contact_id, attribute_id, project_id, value)
         SELECT c.id, '{city}', c.project_id, CASE WHEN right(c.phone, 1) = '2' THEN '-42' ELSE 'Pune' END
         FROM contacts c WHERE c.project_id = '{project}' AND right(c.phone, 1) <> '9';",
        project = owner.project_id,
    ))
    .await
    .unwrap();

    let url = export_url(&app, &owner, json!(null)).await;
    let mut response = app.http.get(url).send().await.unwrap();
    let (mut bytes, mut chunks) = (Vec::new(), 0);
    while let Some(chunk) = response.chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
        chunks += 1;
    }
    assert!(chunks > 2, "streamed in chunks, got {chunks}");
    let csv = String::from_utf8(bytes).unwrap();
    let rows = records(&csv);
    assert_eq!(rows.len(), CONTACTS + 1);
    assert_eq!(
        rows[0].join(","),
        format!("{HEADER},city,plan"),
        "the header"
    );
    for (i, row) in rows[1..].iter().enumerate() {
        let n = i + 1;
        let tags = if matches!(n % 10, 1 | 3) {
            "'+Finance | MBA"
        } else {
            "MBA"
        };
        let city = match n % 10 {
            2 => "'-42",
            9 => "",
            _ => "Pune",
        };
        let created = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05.120+00:00")
            .unwrap()
            .with_timezone(&chrono::Utc)
            + chrono::Duration::seconds(n as i64);
        let expected = [
            guarded(&bulk_name(n - 1)),
            format!("'+9198{n:08}"),
            String::new(),
            tags.into(),
            "IMPORT".into(),
            "true".into(),
            "false".into(),
            "REQUESTING".into(),
            String::new(),
            created.to_rfc3339(),
            city.into(),
            String::new(),
        ];
        assert_eq!(row[..], expected[..], "row {n}");
    }
}

#[tokio::test]
async fn downloads_given_up_half_way_leave_the_server_serving() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Impatient").await;
    let notes = attribute(&app, &owner, "notes").await;
    // 40 MB of CSV: more than the sockets between the server and this client buffer, so
    // the server is still sending when the client goes away.
    app.app
        .state
        .db
        .execute_unprepared(&format!(
            "INSERT INTO contacts (id, project_id, name, phone, source, state, created_at, updated_at)
             SELECT gen_random_uuid(), '{project}', 'Contact ' || i, '+9198' || lpad(i::text, 8, '0'),
                    'IMPORT', 'REQUESTING', now(), now()
             FROM generate_series(1, 20000) AS i;
             INSERT INTO contact_attributes (contact_id, attribute_id, project_id, value)
             SELECT id, '{notes}', project_id, repeat('x', 2000) FROM contacts
             WHERE project_id = '{project}';",
            project = owner.project_id
        ))
        .await
        .unwrap();
    // More abandoned downloads than the server has database connections.
    for _ in 0..app.settings.database_max_connections + 2 {
        let url = export_url(&app, &owner, json!(null)).await;
        let mut response = app.http.get(url).send().await.unwrap();
        let mut received = 0;
        while received < 256 * 1024 {
            received += response.chunk().await.unwrap().unwrap().len();
        }
        drop(response);
    }
    // Every connection of the pool still writes (none was left in the export's
    // read-only transaction).
    for i in 0..2 * app.settings.database_max_connections {
        tag(&app, &owner, &format!("After {i}")).await;
    }
    let csv = export(&app, &owner, json!({ "search": "contact" })).await;
    assert_eq!(records(&csv).len(), 20_001);
    assert_eq!(
        listed_names(&app, &owner, &json!({ "search": "contact 19999" }))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn pattern_characters_match_literally_and_every_formula_start_is_defused() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Literal").await;
    attribute(&app, &owner, "note").await;
    let contacts = [
        ("100% sure", "9812300011", "+SUM(1,2)"),
        ("a_b", "9812300012", "\r=cmd|' /C calc'!A0"),
        ("back\\slash", "9812300013", "\t=1+1"),
        ("plain", "9812300014", "@A1"),
        ("percent%_both\\", "9812300015", "-2+3"),
        ("no pattern", "9812300016", "=HYPERLINK(\"http://x\")"),
    ];
    for (name, phone, note) in contacts {
        create(
            &app,
            &owner,
            CREATE,
            json!({ "input": { "name": name, "phone": phone, "attributes": [{ "key": "note", "value": note }] } }),
        )
        .await;
    }
    for (search, expected) in [
        ("%", vec!["100% sure", "percent%_both\\"]),
        ("_", vec!["a_b", "percent%_both\\"]),
        ("\\", vec!["back\\slash", "percent%_both\\"]),
        ("a_", vec!["a_b"]),
        ("%_", vec!["percent%_both\\"]),
        ("'; DROP TABLE contacts; --", vec![]),
        ("\" OR \"\"=\"", vec![]),
        ("*", vec![]),
        ("[a-z]", vec![]),
    ] {
        let filter = json!({ "search": search });
        assert_eq!(
            listed_names(&app, &owner, &filter).await,
            expected,
            "search {search:?}"
        );
        assert_eq!(
            exported_names(&export(&app, &owner, filter).await),
            expected,
            "export of {search:?}"
        );
    }
    assert_eq!(listed_names(&app, &owner, &json!({})).await.len(), 6);

    // Every formula start gets the text marker in the file; nothing else changes.
    let rows = records(&export(&app, &owner, json!(null)).await);
    for (name, _, note) in contacts {
        let row = rows.iter().find(|r| r[0] == name).unwrap();
        assert_eq!(row.last().unwrap(), &format!("'{note}"), "{name}");
    }
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?} in {row:?}"
            );
        }
    }
}
