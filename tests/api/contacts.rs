use parley_tests::{Owner, TestApp};
use serde_json::{Value, json};

const CREATE: &str = "mutation($input: CreateContactInput!) {
  createContact(input: $input) { id name firstName lastName phone source optedIn status state tags { name } attributes { key value } }
}";

async fn tag(app: &TestApp, who: &Owner, name: &str) -> String {
    let data = app
        .gql("mutation($name: String!) { createTag(input: { name: $name }) { id } }")
        .as_member(who)
        .vars(json!({ "name": name }))
        .data()
        .await;
    data["createTag"]["id"].as_str().unwrap().to_owned()
}

async fn attribute(app: &TestApp, who: &Owner, key: &str) -> String {
    let data = app
        .gql("mutation($key: String!) { createAttribute(key: $key, displayName: $key) { id } }")
        .as_member(who)
        .vars(json!({ "key": key }))
        .data()
        .await;
    data["createAttribute"]["id"].as_str().unwrap().to_owned()
}

async fn contact(app: &TestApp, who: &Owner, input: Value) -> Value {
    app.gql(CREATE)
        .as_member(who)
        .vars(json!({ "input": input }))
        .data()
        .await["createContact"]
        .clone()
}

fn names(list: &Value) -> Vec<String> {
    parley_tests::sorted_contact_names(list)
}

#[tokio::test]
async fn contacts_are_created_with_normalized_phones_tags_and_attributes() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Shop").await;
    let mba = tag(&app, &owner, "MBA").await;
    attribute(&app, &owner, "city").await;
    let created = contact(
        &app,
        &owner,
        json!({ "name": "Asha  Verma Rao", "phone": "98123 45678", "tagIds": [mba], "attributes": [{ "key": "City", "value": "Pune" }] }),
    )
    .await;
    assert_eq!(created["phone"], "+919812345678");
    assert_eq!(created["firstName"], "Asha");
    assert_eq!(created["lastName"], "Verma Rao");
    assert_eq!(created["source"], "DASHBOARD");
    assert_eq!(created["optedIn"], true);
    assert_eq!(created["status"], "INACTIVE");
    assert_eq!(created["state"], "HANDLED_BY_ASSISTANT");
    assert_eq!(created["tags"], json!([{ "name": "MBA" }]));
    assert_eq!(
        created["attributes"],
        json!([{ "key": "city", "value": "Pune" }])
    );

    // The same number written another way is the same contact.
    let duplicate = app
        .gql(CREATE)
        .as_member(&owner)
        .vars(json!({ "input": { "name": "Again", "phone": "+91 98123-45678" } }))
        .send()
        .await;
    duplicate.expect_error("CONFLICT");

    for (phone, reason) in [
        ("+989121234567", "Iran"),
        ("98AB300009", "digits"),
        ("12025550188", "country code"),
        ("", "empty"),
    ] {
        let message = app
            .gql(CREATE)
            .as_member(&owner)
            .vars(json!({ "input": { "name": "X", "phone": phone } }))
            .send()
            .await
            .expect_error("BAD_USER_INPUT");
        assert!(
            message.to_lowercase().contains(&reason.to_lowercase()),
            "{phone}: {message}"
        );
    }
}

#[tokio::test]
async fn the_default_country_is_a_project_setting() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Dubai").await;
    app.gql("mutation { updateProject(input: { defaultCountry: \"AE\" }) { defaultCountry } }")
        .as_member(&owner)
        .data()
        .await;
    let created = contact(
        &app,
        &owner,
        json!({ "name": "Omar", "phone": "50 123 4567" }),
    )
    .await;
    assert_eq!(created["phone"], "+971501234567");
}

#[tokio::test]
async fn tags_are_unique_without_case_and_deleting_one_takes_it_off_contacts() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Tags").await;
    let vip = tag(&app, &owner, "VIP").await;
    app.gql("mutation { createTag(input: { name: \"vip\" }) { id } }")
        .as_member(&owner)
        .send()
        .await
        .expect_error("CONFLICT");
    app.gql("mutation { createTag(input: { name: \"Hi\", kind: FIRST_MESSAGE }) { id } }")
        .as_member(&owner)
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
    let first = app
        .gql("mutation { createTag(input: { name: \"Pricing\", kind: FIRST_MESSAGE, firstMessageKeywords: [\" Price \", \"cost\"] }) { kind firstMessageKeywords } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(
        first["createTag"],
        json!({ "kind": "FIRST_MESSAGE", "firstMessageKeywords": ["price", "cost"] })
    );

    let c = contact(
        &app,
        &owner,
        json!({ "name": "Carrier", "phone": "9812300001", "tagIds": [vip] }),
    )
    .await;
    let renamed = app
        .gql("mutation($id: ID!) { renameTag(id: $id, name: \"Gold\") { name } }")
        .as_member(&owner)
        .vars(json!({ "id": vip }))
        .data()
        .await;
    assert_eq!(renamed["renameTag"]["name"], "Gold");
    let read = app
        .gql("query($id: ID!) { contact(id: $id) { tags { name } } }")
        .as_member(&owner)
        .vars(json!({ "id": c["id"] }))
        .data()
        .await;
    assert_eq!(read["contact"]["tags"], json!([{ "name": "Gold" }]));

    let deleted = app
        .gql("mutation($id: ID!) { deleteTag(id: $id) { affectedContacts } }")
        .as_member(&owner)
        .vars(json!({ "id": vip }))
        .data()
        .await;
    assert_eq!(deleted["deleteTag"]["affectedContacts"], 1);
    let read = app
        .gql("query($id: ID!) { contact(id: $id) { tags { name } } }")
        .as_member(&owner)
        .vars(json!({ "id": c["id"] }))
        .data()
        .await;
    assert_eq!(read["contact"]["tags"], json!([]));
}

#[tokio::test]
async fn attributes_are_defined_before_use_and_deleting_one_clears_its_values() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Attrs").await;
    for bad in ["1city", "has space", "name", ""] {
        app.gql("mutation($k: String!) { createAttribute(key: $k, displayName: \"X\") { id } }")
            .as_member(&owner)
            .vars(json!({ "k": bad }))
            .send()
            .await
            .expect_error("BAD_USER_INPUT");
    }
    let city = attribute(&app, &owner, "city").await;
    let c = contact(&app, &owner, json!({ "name": "A", "phone": "9812300001" })).await;
    let set = "mutation($id: ID!, $values: [AttributeValueInput!]!) { setContactAttributes(id: $id, values: $values) { attributes { key value } } }";
    app.gql(set)
        .as_member(&owner)
        .vars(json!({ "id": c["id"], "values": [{ "key": "email", "value": "a@example.com" }] }))
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
    let data = app
        .gql(set)
        .as_member(&owner)
        .vars(json!({ "id": c["id"], "values": [{ "key": "$City", "value": "Pune" }] }))
        .data()
        .await;
    assert_eq!(
        data["setContactAttributes"]["attributes"],
        json!([{ "key": "city", "value": "Pune" }])
    );
    let deleted = app
        .gql("mutation($id: ID!) { deleteAttribute(id: $id) { affectedContacts } }")
        .as_member(&owner)
        .vars(json!({ "id": city }))
        .data()
        .await;
    assert_eq!(deleted["deleteAttribute"]["affectedContacts"], 1);
    let read = app
        .gql("query($id: ID!) { contact(id: $id) { attributes { key } } }")
        .as_member(&owner)
        .vars(json!({ "id": c["id"] }))
        .data()
        .await;
    assert_eq!(read["contact"]["attributes"], json!([]));
}

#[tokio::test]
async fn agents_edit_tags_and_attributes_but_not_contacts_and_finance_sees_none() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Roles").await;
    let (agent, _) = app.add_member(&owner, "AGENT").await;
    let (finance, _) = app.add_member(&owner, "FINANCE").await;
    let vip = tag(&app, &owner, "VIP").await;
    attribute(&app, &owner, "city").await;
    let c = contact(&app, &owner, json!({ "name": "A", "phone": "9812300001" })).await;

    app.gql("mutation($id: ID!, $t: [ID!]!) { addContactTags(id: $id, tagIds: $t) { id } }")
        .as_member(&agent)
        .vars(json!({ "id": c["id"], "t": [vip] }))
        .data()
        .await;
    app.gql("mutation($id: ID!) { setContactAttributes(id: $id, values: [{ key: \"city\", value: \"Goa\" }]) { id } }")
        .as_member(&agent)
        .vars(json!({ "id": c["id"] }))
        .data()
        .await;
    app.gql("mutation { createTag(input: { name: \"Agent made\" }) { id } }")
        .as_member(&agent)
        .data()
        .await;
    app.gql(CREATE)
        .as_member(&agent)
        .vars(json!({ "input": { "name": "B", "phone": "9812300002" } }))
        .send()
        .await
        .expect_error("FORBIDDEN");
    app.gql("mutation($id: ID!) { deleteTag(id: $id) { id } }")
        .as_member(&agent)
        .vars(json!({ "id": vip }))
        .send()
        .await
        .expect_error("FORBIDDEN");
    app.gql("{ contacts { edges { node { id } } } }")
        .as_member(&finance)
        .send()
        .await
        .expect_error("FORBIDDEN");

    // The journey says who did what.
    let journey = app
        .gql("query($id: ID!) { contact(id: $id) { journey { edges { node { kind actorKind actorId data } } } } }")
        .as_member(&owner)
        .vars(json!({ "id": c["id"] }))
        .data()
        .await;
    let events: Vec<(String, String, Value)> = journey["contact"]["journey"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["kind"].as_str().unwrap().to_owned(),
                e["node"]["actorId"].as_str().unwrap_or_default().to_owned(),
                e["node"]["data"].clone(),
            )
        })
        .collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0].0, "contact.created");
    assert_eq!(events[0].1, owner.user_id);
    assert_eq!(events[1].0, "tag.added");
    assert_eq!(events[1].1, agent.user_id);
    assert_eq!(events[1].2["tag"], "VIP");
    assert_eq!(events[2].0, "attribute.changed");
    assert_eq!(
        events[2].2,
        json!({ "key": "city", "from": null, "to": "Goa" })
    );
}

#[tokio::test]
async fn filters_combine_tags_attributes_and_fields() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Segments").await;
    let mba = tag(&app, &owner, "MBA").await;
    let fin = tag(&app, &owner, "Finance").await;
    let city = attribute(&app, &owner, "city").await;
    contact(&app, &owner, json!({ "name": "Both", "phone": "9812300001", "tagIds": [mba, fin], "attributes": [{ "key": "city", "value": "Pune" }] })).await;
    contact(&app, &owner, json!({ "name": "Mba Only", "phone": "9812300002", "tagIds": [mba], "attributes": [{ "key": "city", "value": "Mumbai" }] })).await;
    contact(
        &app,
        &owner,
        json!({ "name": "Fin Only", "phone": "9812300003", "tagIds": [fin], "source": "Expo" }),
    )
    .await;
    let none = contact(
        &app,
        &owner,
        json!({ "name": "Nothing", "phone": "9812300004" }),
    )
    .await;
    app.gql("mutation($id: ID!) { setContactOptIn(id: $id, optedIn: false) { optedIn } }")
        .as_member(&owner)
        .vars(json!({ "id": none["id"] }))
        .data()
        .await;

    let list = "query($f: ContactFilterInput) { contacts(filter: $f) { edges { node { name } } } contactCount(filter: $f) }";
    for (filter, expected) in [
        (
            json!({ "tags": { "anyOf": [mba, fin] } }),
            vec!["Both", "Fin Only", "Mba Only"],
        ),
        (json!({ "tags": { "allOf": [mba, fin] } }), vec!["Both"]),
        (
            json!({ "tags": { "noneOf": [mba] } }),
            vec!["Fin Only", "Nothing"],
        ),
        (
            json!({ "attributes": [{ "attributeId": city, "equals": "Pune" }] }),
            vec!["Both"],
        ),
        (
            json!({ "attributes": [{ "attributeId": city, "contains": "u" }] }),
            vec!["Both", "Mba Only"],
        ),
        (
            json!({ "attributes": [{ "attributeId": city, "isSet": false }] }),
            vec!["Fin Only", "Nothing"],
        ),
        (json!({ "sources": ["Expo"] }), vec!["Fin Only"]),
        (json!({ "optedIn": false }), vec!["Nothing"]),
        (json!({ "search": "only" }), vec!["Fin Only", "Mba Only"]),
        (json!({ "search": "300004" }), vec!["Nothing"]),
        (
            json!({ "or": [{ "sources": ["Expo"] }, { "optedIn": false }] }),
            vec!["Fin Only", "Nothing"],
        ),
        (
            json!({ "not": { "tags": { "anyOf": [fin] } }, "tags": { "anyOf": [mba] } }),
            vec!["Mba Only"],
        ),
        (
            json!({ "status": "INACTIVE" }),
            vec!["Both", "Fin Only", "Mba Only", "Nothing"],
        ),
        (json!({ "status": "ACTIVE" }), vec![]),
    ] {
        let data = app
            .gql(list)
            .as_member(&owner)
            .vars(json!({ "f": filter }))
            .data()
            .await;
        assert_eq!(names(&data), expected, "filter {filter}");
        assert_eq!(data["contactCount"], expected.len(), "count for {filter}");
    }
    app.gql(list)
        .as_member(&owner)
        .vars(json!({ "f": { "attributes": [{ "attributeId": city, "equals": "a", "isSet": true }] } }))
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
}

#[tokio::test]
async fn contacts_never_cross_projects() {
    let app = TestApp::spawn().await;
    let alice = app.sign_up("Alice").await;
    let bob = app.sign_up("Bob").await;
    let alice_tag = tag(&app, &alice, "Secret").await;
    let alice_contact = contact(
        &app,
        &alice,
        json!({ "name": "Hidden", "phone": "9812300001" }),
    )
    .await;
    // Bob can use the same phone in his own project.
    contact(&app, &bob, json!({ "name": "Mine", "phone": "9812300001" })).await;

    for (query, vars) in [
        (
            "query($id: ID!) { contact(id: $id) { name } }",
            json!({ "id": alice_contact["id"] }),
        ),
        (
            "mutation($id: ID!) { deleteTag(id: $id) { id } }",
            json!({ "id": alice_tag }),
        ),
        (
            "mutation($id: ID!) { setContactOptIn(id: $id, optedIn: false) { id } }",
            json!({ "id": alice_contact["id"] }),
        ),
    ] {
        app.gql(query)
            .as_member(&bob)
            .vars(vars)
            .send()
            .await
            .expect_error("NOT_FOUND");
    }
    app.gql(CREATE)
        .as_member(&bob)
        .vars(json!({ "input": { "name": "X", "phone": "9812300002", "tagIds": [alice_tag] } }))
        .send()
        .await
        .expect_error("NOT_FOUND");
    let listed = app
        .gql("query($t: ID!) { contacts(filter: { tags: { anyOf: [$t] } }) { edges { node { name } } } }")
        .as_member(&bob)
        .vars(json!({ "t": alice_tag }))
        .data()
        .await;
    assert_eq!(listed["contacts"]["edges"], json!([]));
}

#[tokio::test]
async fn a_page_shows_each_contacts_own_tags_and_values_in_either_database() {
    for app in [TestApp::spawn().await, TestApp::spawn_embedded().await] {
        let owner = app.sign_up("Details").await;
        let vip = tag(&app, &owner, "vip").await;
        let lead = tag(&app, &owner, "Lead").await;
        attribute(&app, &owner, "plan").await;
        attribute(&app, &owner, "City").await;
        contact(
            &app,
            &owner,
            json!({ "name": "Both", "phone": "9812300001", "tagIds": [vip, lead],
                    "attributes": [{ "key": "plan", "value": "Gold" }, { "key": "City", "value": "Pune" }] }),
        )
        .await;
        contact(
            &app,
            &owner,
            json!({ "name": "Bare", "phone": "9812300002" }),
        )
        .await;
        contact(
            &app,
            &owner,
            json!({ "name": "Tagged", "phone": "9812300003", "tagIds": [vip] }),
        )
        .await;
        let page = |selection: &str| {
            let query = format!("{{ contacts {{ edges {{ node {{ name {selection} }} }} }} }}");
            let (app, owner) = (&app, &owner);
            async move { app.gql(&query).as_member(owner).data().await["contacts"]["edges"].clone() }
        };
        // Tags by name and values by key, whatever else the page asks for.
        assert_eq!(
            page("tags { name kind } attributes { key displayName value }").await,
            json!([
                { "node": { "name": "Both",
                    "tags": [{ "name": "Lead", "kind": "MANUAL" }, { "name": "vip", "kind": "MANUAL" }],
                    "attributes": [
                        { "key": "City", "displayName": "City", "value": "Pune" },
                        { "key": "plan", "displayName": "plan", "value": "Gold" },
                    ] } },
                { "node": { "name": "Bare", "tags": [], "attributes": [] } },
                { "node": { "name": "Tagged", "tags": [{ "name": "vip", "kind": "MANUAL" }], "attributes": [] } },
            ])
        );
        assert_eq!(
            page("tags { name }").await[0]["node"]["tags"],
            json!([{ "name": "Lead" }, { "name": "vip" }])
        );
        assert_eq!(
            page("attributes { value }").await[0]["node"]["attributes"],
            json!([{ "value": "Pune" }, { "value": "Gold" }])
        );
        // Through a fragment too.
        assert_eq!(
            page("...on Contact { tags { name } }").await[2]["node"]["tags"],
            json!([{ "name": "vip" }])
        );
        let nodes = app
            .gql("{ contacts { nodes { tags { name } attributes { key } } } }")
            .as_member(&owner)
            .data()
            .await;
        assert_eq!(
            nodes["contacts"]["nodes"][0],
            json!({ "tags": [{ "name": "Lead" }, { "name": "vip" }], "attributes": [{ "key": "City" }, { "key": "plan" }] })
        );
    }
}

/// The answer's text as the server wrote it (key order included), after checking it is 200.
async fn answer_text(app: &TestApp, owner: &Owner, query: String) -> String {
    let response = app
        .http
        .post(app.url("/graphql"))
        .bearer_auth(&owner.token)
        .header("x-project-id", &owner.project_id)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn a_page_answers_alike_whether_its_objects_are_built_directly_or_executed() {
    // Plain selections (fields only) are built without async-graphql's executor; fragments
    // and directives take the executor. Both must give the same answer, byte for byte (keys
    // in the order asked for, same scalar formats).
    for app in [TestApp::spawn().await, TestApp::spawn_embedded().await] {
        let owner = app.sign_up("Alike").await;
        let vip = tag(&app, &owner, "vip").await;
        let lead = tag(&app, &owner, "Lead").await;
        attribute(&app, &owner, "plan").await;
        contact(
            &app,
            &owner,
            json!({ "name": "Asha Rao Iyer", "phone": "9812300011", "tagIds": [vip, lead],
                    "attributes": [{ "key": "plan", "value": "Gold \"quoted\"" }] }),
        )
        .await;
        contact(
            &app,
            &owner,
            json!({ "name": "Solo", "phone": "9812300012" }),
        )
        .await;
        let tag_fields = "__typename id name createdAt again: name";
        let value_fields = "__typename key displayName value";
        let contact_fields = "__typename id name alias: name firstName lastName phone bsuid \
            source optedIn optedInAt optedInSource incomingBlocked lastActiveAt createdAt updatedAt";
        let page = |node: String| {
            let query = format!("{{ contacts {{ edges {{ node {{ {node} }} }} }} }}");
            answer_text(&app, &owner, query)
        };
        let plain = page(format!(
            "{contact_fields} tags {{ {tag_fields} }} attributes {{ {value_fields} }}"
        ))
        .await;
        let executed = page(format!(
            "...on Contact {{ {contact_fields} tags {{ ...on Tag {{ {tag_fields} }} }} \
             attributes {{ ...on AttributeValue {{ {value_fields} }} }} }}"
        ))
        .await;
        assert_eq!(plain, executed);
        let parsed: serde_json::Value = serde_json::from_str(&plain).unwrap();
        let first = &parsed["data"]["contacts"]["edges"][0]["node"];
        assert_eq!(first["alias"], "Asha Rao Iyer");
        assert_eq!(first["lastName"], "Rao Iyer");
        assert_eq!(first["tags"][0]["id"], lead);
        assert_eq!(first["tags"][0]["again"], "Lead");
        assert_eq!(first["attributes"][0]["value"], "Gold \"quoted\"");
        assert!(plain.contains(r#"{"__typename":"Contact","id":"#));
        // The connection's own fields: cursors, page info and `nodes`, plain and executed.
        let connection = |fields: String| {
            answer_text(
                &app,
                &owner,
                format!("{{ contacts(first: 1) {{ {fields} }} }}"),
            )
        };
        let fields = "__typename pageInfo { __typename hasNextPage hasPreviousPage startCursor \
            endCursor } edges { __typename cursor node { id name tags { name } } } \
            nodes { id attributes { key value } }";
        let plain_connection = connection(fields.to_owned()).await;
        assert_eq!(
            plain_connection,
            connection(format!("...on ContactConnection {{ {fields} }}")).await
        );
        let parsed: serde_json::Value = serde_json::from_str(&plain_connection).unwrap();
        let contacts = &parsed["data"]["contacts"];
        assert_eq!(contacts["__typename"], "ContactConnection");
        assert_eq!(contacts["pageInfo"]["hasNextPage"], true);
        assert_eq!(contacts["edges"][0]["__typename"], "ContactEdge");
        assert_eq!(
            contacts["pageInfo"]["endCursor"],
            contacts["edges"][0]["cursor"]
        );
        // A directive, or a field that needs the executor, sends that object down the
        // executor's path, while the lists inside may still be built directly.
        let mixed = |directive: &str| {
            format!(
                "{contact_fields} status tags {directive} {{ {tag_fields} }} \
                 attributes {{ {value_fields} }}"
            )
        };
        let executed = page(format!(
            "...on Contact {{ {contact_fields} status tags {{ ...on Tag {{ {tag_fields} }} }} \
             attributes {{ ...on AttributeValue {{ {value_fields} }} }} }}"
        ))
        .await;
        assert_eq!(page(mixed("")).await, executed);
        assert_eq!(page(mixed("@include(if: true)")).await, executed);
        assert!(executed.contains(r#""status":"INACTIVE","tags":[{"__typename":"Tag""#));
    }
}

#[tokio::test]
async fn a_page_of_contacts_costs_a_fixed_number_of_queries() {
    // A quiet analytics shipper, so that the count is this test's statements only.
    let mode = parley_tests::Mode::Production;
    let shared = parley_tests::Shared::fresh(&mode).await;
    let app = TestApp::spawn_with(mode, &shared, |s| {
        s.analytics.poll_interval = std::time::Duration::from_secs(600);
        s.analytics.flush_interval = std::time::Duration::from_secs(600);
        // The background workers that poll the database, too.
        s.campaigns.dispatcher = false;
        s.billing.sweep_interval = std::time::Duration::from_secs(600);
    })
    .await;
    let owner = app.sign_up("Pages").await;
    let t1 = tag(&app, &owner, "A").await;
    let t2 = tag(&app, &owner, "B").await;
    attribute(&app, &owner, "city").await;
    for i in 0..60 {
        contact(
            &app,
            &owner,
            json!({ "name": format!("C{i}"), "phone": format!("98123{i:05}"), "tagIds": [t1, t2], "attributes": [{ "key": "city", "value": "Pune" }] }),
        )
        .await;
    }
    // Compare a page of 50 with a page of 5 (the least of a few runs each): with N+1
    // queries the larger page would cost 45 statements more per field.
    let cost = |size: usize| {
        let app = &app;
        let owner = &owner;
        async move {
            let query = format!(
                "{{ contacts(first: {size}) {{ edges {{ node {{ name tags {{ name }} attributes {{ key value }} }} }} }} }}"
            );
            let mut least = u64::MAX;
            for _ in 0..3 {
                let before = app.app.state.statements();
                let data = app.gql(&query).as_member(owner).data().await;
                least = least.min(app.app.state.statements() - before);
                let edges = data["contacts"]["edges"].as_array().unwrap();
                assert_eq!(edges.len(), size);
                for edge in edges {
                    assert_eq!(
                        edge["node"]["tags"],
                        json!([{ "name": "A" }, { "name": "B" }])
                    );
                    assert_eq!(
                        edge["node"]["attributes"],
                        json!([{ "key": "city", "value": "Pune" }])
                    );
                }
            }
            least
        }
    };
    let small = cost(5).await;
    let large = cost(50).await;
    // The page, then its tags and attributes together: the caller's session was checked
    // by the first request and is reused by the next ones.
    assert!(large <= 2, "a page of 50 took {large} statements");
    let before = app.app.state.statements();
    app.gql("{ contacts(first: 50) { nodes { tags { name } attributes { key } } } }")
        .as_member(&owner)
        .data()
        .await;
    let through_nodes = app.app.state.statements() - before;
    assert!(
        through_nodes <= 2,
        "a page of 50 through nodes took {through_nodes} statements"
    );
    assert!(
        large <= small + 1,
        "a page of 50 took {large} statements, of 5 {small}"
    );
}

#[tokio::test]
async fn lists_sort_and_page_stably_while_contacts_are_added() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Sorted").await;
    for (i, name) in ["Deepa", "Asha", "Esha", "Chetan", "Bina"]
        .iter()
        .enumerate()
    {
        contact(
            &app,
            &owner,
            json!({ "name": name, "phone": format!("98123000{i:02}") }),
        )
        .await;
    }
    let page = "query($order: ContactOrder, $after: String) { contacts(first: 2, orderBy: $order, after: $after) {
        edges { node { name } } pageInfo { hasNextPage endCursor } } }";
    let walk = |order: &'static str| {
        let app = &app;
        let owner = &owner;
        async move {
            let mut seen = Vec::new();
            let mut after = Value::Null;
            let mut first_page = true;
            loop {
                let data = app
                    .gql(page)
                    .as_member(owner)
                    .vars(json!({ "order": order, "after": after }))
                    .data()
                    .await;
                seen.extend(
                    data["contacts"]["edges"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["node"]["name"].as_str().unwrap().to_owned()),
                );
                if first_page {
                    // Added after the first page was read: it sorts before the cursor in
                    // name order, so it does not shift what comes next.
                    contact(app, owner, json!({ "name": format!("Aaron {order}"), "phone": format!("97{:08}", seen.len() + order.len()) })).await;
                    first_page = false;
                }
                if data["contacts"]["pageInfo"]["hasNextPage"] == false {
                    return seen;
                }
                after = data["contacts"]["pageInfo"]["endCursor"].clone();
            }
        }
    };
    assert_eq!(
        walk("NAME_ASC").await,
        vec!["Asha", "Bina", "Chetan", "Deepa", "Esha"]
    );
    let desc = walk("NAME_DESC").await;
    assert_eq!(&desc[..5], &["Esha", "Deepa", "Chetan", "Bina", "Asha"]);
    let created = walk("CREATED_DESC").await;
    assert_eq!(created[0], "Aaron NAME_DESC");
    // A cursor of one order does not fit another.
    let data = app
        .gql(page)
        .as_member(&owner)
        .vars(json!({ "order": "CREATED_ASC" }))
        .data()
        .await;
    let cursor = data["contacts"]["pageInfo"]["endCursor"].clone();
    app.gql(page)
        .as_member(&owner)
        .vars(json!({ "order": "NAME_ASC", "after": cursor }))
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
}

#[tokio::test]
async fn saved_segments_name_a_filter_that_lists_counts_and_exports_use() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Segments").await;
    let mba = tag(&app, &owner, "MBA").await;
    let fin = tag(&app, &owner, "Finance").await;
    contact(
        &app,
        &owner,
        json!({ "name": "Both", "phone": "9812300001", "tagIds": [mba, fin] }),
    )
    .await;
    contact(
        &app,
        &owner,
        json!({ "name": "Mba Only", "phone": "9812300002", "tagIds": [mba], "source": "Expo" }),
    )
    .await;
    contact(
        &app,
        &owner,
        json!({ "name": "Fin Only", "phone": "9812300003", "tagIds": [fin] }),
    )
    .await;

    let create = "mutation($name: String!, $f: ContactFilterInput!) { createSegment(name: $name, filter: $f) { id name contactCount } }";
    let mba_segment = app
        .gql(create)
        .as_member(&owner)
        .vars(json!({ "name": "MBA people", "f": { "tags": { "anyOf": [mba] } } }))
        .data()
        .await;
    assert_eq!(mba_segment["createSegment"]["contactCount"], 2);
    let mba_id = mba_segment["createSegment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.gql(create)
        .as_member(&owner)
        .vars(json!({ "name": "mba PEOPLE", "f": {} }))
        .send()
        .await
        .expect_error("CONFLICT");

    // A segment of a segment, narrowed.
    let narrowed = app
        .gql(create)
        .as_member(&owner)
        .vars(json!({ "name": "MBA from the expo", "f": { "segmentId": mba_id, "sources": ["Expo"] } }))
        .data()
        .await;
    assert_eq!(narrowed["createSegment"]["contactCount"], 1);
    let narrowed_id = narrowed["createSegment"]["id"].as_str().unwrap().to_owned();
    let listed = app
        .gql("query($s: ID!) { contacts(filter: { segmentId: $s }) { edges { node { name } } } }")
        .as_member(&owner)
        .vars(json!({ "s": narrowed_id }))
        .data()
        .await;
    assert_eq!(names(&listed), vec!["Mba Only"]);

    // Changing the inner segment changes the outer one.
    app.gql(
        "mutation($id: ID!, $f: ContactFilterInput) { updateSegment(id: $id, filter: $f) { id } }",
    )
    .as_member(&owner)
    .vars(json!({ "id": mba_id, "f": { "tags": { "anyOf": [fin] } } }))
    .data()
    .await;
    let outer = app
        .gql("query($id: ID!) { segment(id: $id) { contactCount } }")
        .as_member(&owner)
        .vars(json!({ "id": narrowed_id }))
        .data()
        .await;
    assert_eq!(outer["segment"]["contactCount"], 0);
    // A segment cannot include itself, even through another.
    app.gql(
        "mutation($id: ID!, $f: ContactFilterInput) { updateSegment(id: $id, filter: $f) { id } }",
    )
    .as_member(&owner)
    .vars(json!({ "id": mba_id, "f": { "segmentId": narrowed_id } }))
    .send()
    .await
    .expect_error("BAD_USER_INPUT");

    let link = app
        .gql("mutation($s: ID!) { exportContacts(filter: { segmentId: $s }) { url } }")
        .as_member(&owner)
        .vars(json!({ "s": mba_id }))
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

    // Another project cannot use it.
    let other = app.sign_up("Other").await;
    app.gql("query($s: ID!) { contacts(filter: { segmentId: $s }) { edges { node { name } } } }")
        .as_member(&other)
        .vars(json!({ "s": mba_id }))
        .send()
        .await
        .expect_error("NOT_FOUND");
    app.gql("mutation($id: ID!) { deleteSegment(id: $id) }")
        .as_member(&owner)
        .vars(json!({ "id": narrowed_id }))
        .data()
        .await;
    let all = app
        .gql("{ segments { name } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(all["segments"], json!([{ "name": "MBA people" }]));
}

#[tokio::test]
async fn contacts_are_found_by_phone_in_any_notation_or_by_bsuid() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Identity").await;
    let created = contact(
        &app,
        &owner,
        json!({ "name": "Known", "phone": "+91 98123 00001", "bsuid": "IN.1502576394655843" }),
    )
    .await;
    let find =
        "query($p: String, $b: String) { contactByIdentity(phone: $p, bsuid: $b) { id bsuid } }";
    for vars in [
        json!({ "p": "9812300001" }),
        json!({ "p": "919812300001" }),
        json!({ "b": "IN.1502576394655843" }),
    ] {
        let found = app.gql(find).as_member(&owner).vars(vars).data().await;
        assert_eq!(found["contactByIdentity"]["id"], created["id"]);
    }
    app.gql(find)
        .as_member(&owner)
        .vars(json!({ "p": "9812300002" }))
        .send()
        .await
        .expect_error("NOT_FOUND");
    app.gql(find)
        .as_member(&owner)
        .vars(json!({}))
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
    // A BSUID is unique in a project too.
    app.gql(CREATE)
        .as_member(&owner)
        .vars(json!({ "input": { "name": "Twin", "phone": "9812300003", "bsuid": "IN.1502576394655843" } }))
        .send()
        .await
        .expect_error("CONFLICT");
}

#[tokio::test]
async fn mutations_in_one_request_each_see_what_the_one_before_left() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("InTurn").await;
    let vip = tag(&app, &owner, "VIP").await;
    attribute(&app, &owner, "city").await;
    let id = contact(
        &app,
        &owner,
        json!({ "name": "Asha", "phone": "+919812300077" }),
    )
    .await["id"]
        .clone();
    let data = app
        .gql(
            "mutation($id: ID!, $t: [ID!]!) {
               added: addContactTags(id: $id, tagIds: $t) { tags { name } }
               removed: removeContactTags(id: $id, tagIds: $t) { tags { name } }
               pune: setContactAttributes(id: $id, values: [{ key: \"city\", value: \"Pune\" }]) { attributes { value } }
               goa: setContactAttributes(id: $id, values: [{ key: \"city\", value: \"Goa\" }]) { attributes { value } }
             }",
        )
        .as_member(&owner)
        .vars(json!({ "id": id, "t": [vip] }))
        .data()
        .await;
    assert_eq!(data["added"]["tags"], json!([{ "name": "VIP" }]));
    assert_eq!(data["removed"]["tags"], json!([]));
    assert_eq!(data["pune"]["attributes"], json!([{ "value": "Pune" }]));
    assert_eq!(data["goa"]["attributes"], json!([{ "value": "Goa" }]));
}
