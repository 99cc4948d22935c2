use parley_tests::{
    Mode, Owner, Shared, TestApp,
    client::{ADD_MEMBER, PASSWORD},
    eventually,
};
use serde_json::json;

/// Every operation of this issue, the roles allowed to use it, and a request for it.
const OPERATIONS: &[(&str, &[&str], &str)] = &[
    (
        "project",
        &["OWNER", "MANAGER", "AGENT", "FINANCE"],
        "{ project { id } }",
    ),
    (
        "members",
        &["OWNER", "MANAGER"],
        "{ members { edges { node { id } } } }",
    ),
    (
        "apiKeys",
        &["OWNER", "MANAGER"],
        "{ apiKeys { edges { node { id } } } }",
    ),
    (
        "activityReport",
        &["OWNER", "MANAGER", "FINANCE"],
        "{ activityReport(from: \"2026-01-01T00:00:00Z\", to: \"2026-12-31T00:00:00Z\") { kind count } }",
    ),
    (
        "updateProject",
        &["OWNER"],
        "mutation { updateProject(input: { name: \"Renamed\" }) { id } }",
    ),
    (
        "createApiKey",
        &["OWNER"],
        "mutation { createApiKey(name: \"crm\") { secret } }",
    ),
];

#[tokio::test]
async fn each_role_can_do_what_it_may_and_nothing_else() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Owner").await;
    let mut members = vec![("OWNER", owner.clone())];
    for role in ["MANAGER", "AGENT", "FINANCE"] {
        members.push((role, app.add_member(&owner, role).await.0));
    }
    for (operation, allowed, query) in OPERATIONS {
        for (role, member) in &members {
            let reply = app.gql(query).as_member(member).send().await;
            if allowed.contains(role) {
                assert!(
                    reply.body.get("errors").is_none(),
                    "{role} should be able to use {operation}: {}",
                    reply.body
                );
            } else {
                reply.expect_error("FORBIDDEN");
                assert!(
                    reply.body["data"].is_null(),
                    "{role} got data from {operation}"
                );
            }
        }
    }
    // Only the owner manages members.
    let (_, agent_id) = app.add_member(&owner, "AGENT").await;
    let manager = &members[1].1;
    app.gql("mutation($id: ID!) { deactivateMember(id: $id) { id } }")
        .as_member(manager)
        .vars(json!({ "id": agent_id }))
        .send()
        .await
        .expect_error("FORBIDDEN");
    app.gql(ADD_MEMBER)
        .as_member(manager)
        .vars(json!({ "input": { "username": "sneaky", "displayName": "S", "password": "long enough pw", "role": "MANAGER" } }))
        .send()
        .await
        .expect_error("FORBIDDEN");
}

#[tokio::test]
async fn project_bound_operations_need_a_login_and_a_project() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Owner").await;
    let anonymous = app.gql("{ project { id } }").send().await;
    anonymous.expect_error("UNAUTHENTICATED");
    let no_project = app
        .gql("{ project { id } }")
        .token(&owner.token)
        .send()
        .await;
    no_project.expect_error("BAD_USER_INPUT");
    let garbage = app
        .gql("{ project { id } }")
        .token(&owner.token)
        .project("not-an-id")
        .send()
        .await;
    garbage.expect_error("FORBIDDEN");
}

#[tokio::test]
async fn the_owner_changes_roles_and_deactivates_members() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Owner").await;
    let (agent, agent_id) = app.add_member(&owner, "AGENT").await;
    app.gql("{ members { edges { node { id } } } }")
        .as_member(&agent)
        .send()
        .await
        .expect_error("FORBIDDEN");

    let changed = app
        .gql("mutation($id: ID!) { changeMemberRole(id: $id, role: MANAGER) { role } }")
        .as_member(&owner)
        .vars(json!({ "id": agent_id }))
        .data()
        .await;
    assert_eq!(changed["changeMemberRole"]["role"], "MANAGER");
    // The same token now carries the new role's rights.
    app.gql("{ members { edges { node { id } } } }")
        .as_member(&agent)
        .data()
        .await;

    app.gql("mutation($id: ID!) { changeMemberRole(id: $id, role: OWNER) { role } }")
        .as_member(&owner)
        .vars(json!({ "id": agent_id }))
        .send()
        .await
        .expect_error("BAD_USER_INPUT");

    app.gql("mutation($id: ID!) { deactivateMember(id: $id) { active } }")
        .as_member(&owner)
        .vars(json!({ "id": agent_id }))
        .data()
        .await;
    app.gql("{ project { id } }")
        .as_member(&agent)
        .send()
        .await
        .expect_error("FORBIDDEN");
    let listed = app
        .gql("{ active: members { edges { node { id } } } all: members(includeInactive: true) { edges { node { id active } } } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(listed["active"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(listed["all"]["edges"].as_array().unwrap().len(), 2);

    app.gql("mutation($id: ID!) { reactivateMember(id: $id) { active } }")
        .as_member(&owner)
        .vars(json!({ "id": agent_id }))
        .data()
        .await;
    app.gql("{ project { id } }").as_member(&agent).data().await;

    // The owner's own membership cannot be changed.
    let me = app
        .gql("{ members { edges { node { id role } } } }")
        .as_member(&owner)
        .data()
        .await;
    let owner_member = me["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["role"] == "OWNER")
        .unwrap()["node"]["id"]
        .clone();
    app.gql("mutation($id: ID!) { deactivateMember(id: $id) { active } }")
        .as_member(&owner)
        .vars(json!({ "id": owner_member }))
        .send()
        .await
        .expect_error("FORBIDDEN");
}

#[tokio::test]
async fn checked_sessions_are_reused_and_follow_changes_at_once() {
    // A quiet analytics shipper, so that the statements counted are the requests' own.
    let mode = Mode::Production;
    let shared = Shared::fresh(&mode).await;
    let quiet = |s: &mut parley_api::config::Settings| {
        s.analytics.poll_interval = std::time::Duration::from_secs(600);
        s.analytics.flush_interval = std::time::Duration::from_secs(600);
        // The background workers that poll the database, too.
        s.campaigns.dispatcher = false;
        s.billing.sweep_interval = std::time::Duration::from_secs(600);
    };
    let app = TestApp::spawn_with(mode.clone(), &shared, quiet).await;
    let owner = app.sign_up("Sessions").await;
    let (agent, agent_id) = app.add_member(&owner, "AGENT").await;
    let members = "{ members { edges { node { id } } } }";
    let project = "{ project { id } }";

    // The first request looks up the user and the membership; the next one does not.
    let statements = |query: &'static str, who: &Owner| {
        let (app, who) = (&app, who.clone());
        async move {
            let before = app.app.state.statements();
            app.gql(query).as_member(&who).data().await;
            app.app.state.statements() - before
        }
    };
    let first = statements(project, &agent).await;
    let again = statements(project, &agent).await;
    assert_eq!(first, again + 2, "first {first}, again {again}");

    app.gql(members)
        .as_member(&agent)
        .send()
        .await
        .expect_error("FORBIDDEN");
    app.gql("mutation($id: ID!) { changeMemberRole(id: $id, role: MANAGER) { role } }")
        .as_member(&owner)
        .vars(json!({ "id": agent_id }))
        .data()
        .await;
    app.gql(members).as_member(&agent).data().await;

    app.gql("mutation($id: ID!) { deactivateMember(id: $id) { active } }")
        .as_member(&owner)
        .vars(json!({ "id": agent_id }))
        .data()
        .await;
    app.gql(project)
        .as_member(&agent)
        .send()
        .await
        .expect_error("FORBIDDEN");
    app.gql("mutation($id: ID!) { reactivateMember(id: $id) { active } }")
        .as_member(&owner)
        .vars(json!({ "id": agent_id }))
        .data()
        .await;
    app.gql(project).as_member(&agent).data().await;

    // A new password ends the old token's session on its next request.
    app.gql("mutation($input: ChangePasswordInput!) { changePassword(input: $input) { token } }")
        .token(&agent.token)
        .vars(
            json!({ "input": { "oldPassword": PASSWORD, "newPassword": "another long password" } }),
        )
        .data()
        .await;
    let old = app.gql(project).as_member(&agent).send().await;
    assert_eq!(old.status, 401, "{}", old.body);

    // A second server on the same database keeps its own checks only briefly.
    let other = TestApp::spawn_with(mode, &shared, quiet).await;
    other.gql(members).as_member(&owner).data().await;
    app.gql("mutation { archiveProject { archived } }")
        .as_member(&owner)
        .data()
        .await;
    let rename = "mutation { updateProject(input: { name: \"Renamed\" }) { id } }";
    app.gql(rename)
        .as_member(&owner)
        .send()
        .await
        .expect_error("PROJECT_ARCHIVED");
    eventually(
        std::time::Duration::from_secs(5),
        "the other server to see the archived project",
        || async {
            other
                .gql(rename)
                .as_member(&owner)
                .send()
                .await
                .error_code()
                == Some("PROJECT_ARCHIVED")
        },
    )
    .await;
}

#[tokio::test]
async fn a_free_trial_has_at_most_five_members_besides_the_owner() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Owner").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.add_member(&owner, "AGENT").await.1);
    }
    let sixth = app
        .gql(ADD_MEMBER)
        .as_member(&owner)
        .vars(json!({ "input": { "username": "sixth-agent", "displayName": "Six", "password": "long enough pw", "role": "AGENT" } }))
        .send()
        .await;
    sixth.expect_error("PLAN_LIMIT_REACHED");

    app.gql("mutation($id: ID!) { deactivateMember(id: $id) { active } }")
        .as_member(&owner)
        .vars(json!({ "id": ids[0] }))
        .data()
        .await;
    // The refused attempt left nothing behind: the same name can be used now.
    app.gql(ADD_MEMBER)
        .as_member(&owner)
        .vars(json!({ "input": { "username": "sixth-agent", "displayName": "Six", "password": "long enough pw", "role": "AGENT" } }))
        .data()
        .await;
    app.gql("mutation($id: ID!) { reactivateMember(id: $id) { active } }")
        .as_member(&owner)
        .vars(json!({ "id": ids[0] }))
        .send()
        .await
        .expect_error("PLAN_LIMIT_REACHED");
}

#[tokio::test]
async fn no_member_of_one_project_reaches_another() {
    let app = TestApp::spawn().await;
    let alice = app.sign_up("Alice").await;
    let bob = app.sign_up("Bob").await;
    let (_, alice_agent) = app.add_member(&alice, "AGENT").await;
    let key = app
        .gql("mutation { createApiKey(name: \"crm\") { apiKey { id } secret } }")
        .as_member(&alice)
        .data()
        .await;
    let alice_key_id = key["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Bob naming Alice's project.
    let in_alice = Owner {
        project_id: alice.project_id.clone(),
        ..bob.clone()
    };
    for query in [
        "{ project { id name } }",
        "{ members { edges { node { id } } } }",
        "mutation { updateProject(input: { name: \"Mine\" }) { id } }",
    ] {
        let reply = app.gql(query).as_member(&in_alice).send().await;
        reply.expect_error("FORBIDDEN");
        assert!(reply.body["data"].is_null());
    }
    // Bob in his own project, using ids copied from Alice's.
    for (query, id) in [
        ("query($id: ID!) { member(id: $id) { id } }", &alice_agent),
        (
            "mutation($id: ID!) { deactivateMember(id: $id) { id } }",
            &alice_agent,
        ),
        (
            "mutation($id: ID!) { changeMemberRole(id: $id, role: MANAGER) { id } }",
            &alice_agent,
        ),
        (
            "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
            &alice_key_id,
        ),
    ] {
        app.gql(query)
            .as_member(&bob)
            .vars(json!({ "id": id }))
            .send()
            .await
            .expect_error("NOT_FOUND");
    }
    // Alice's agent is untouched and her key still works.
    let members = app
        .gql("{ members { edges { node { id role active } } } }")
        .as_member(&alice)
        .data()
        .await;
    let agent = members["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == alice_agent.as_str())
        .unwrap();
    assert_eq!(agent["node"]["role"], "AGENT");
    assert_eq!(agent["node"]["active"], true);
    let secret = key["createApiKey"]["secret"].as_str().unwrap();
    let reply = app
        .gql("{ project { id } }")
        .api_key(secret)
        .project(&bob.project_id)
        .send()
        .await;
    reply.expect_error("FORBIDDEN");
}

#[tokio::test]
async fn member_lists_are_relay_connections() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Owner").await;
    for role in ["AGENT", "MANAGER", "FINANCE"] {
        app.add_member(&owner, role).await;
    }
    let page = "query($after: String) { members(first: 2, after: $after) {
        edges { cursor node { id role } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let first = app.gql(page).as_member(&owner).data().await;
    let edges = first["members"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    assert_eq!(edges[0]["node"]["role"], "OWNER");
    assert_eq!(first["members"]["pageInfo"]["hasNextPage"], true);
    let cursor = first["members"]["pageInfo"]["endCursor"].clone();
    let second = app
        .gql(page)
        .as_member(&owner)
        .vars(json!({ "after": cursor }))
        .data()
        .await;
    let roles: Vec<&str> = second["members"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["MANAGER", "FINANCE"]);
    assert_eq!(second["members"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(second["members"]["pageInfo"]["hasPreviousPage"], true);

    let last = app
        .gql("{ members(last: 1) { edges { node { role } } pageInfo { hasPreviousPage } } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(last["members"]["edges"][0]["node"]["role"], "FINANCE");
    assert_eq!(last["members"]["pageInfo"]["hasPreviousPage"], true);

    app.gql("{ members(first: 101) { edges { cursor } } }")
        .as_member(&owner)
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
    app.gql("{ members(after: \"bogus\") { edges { cursor } } }")
        .as_member(&owner)
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
}
