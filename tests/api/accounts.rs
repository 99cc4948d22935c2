use parley_tests::{
    TestApp,
    client::{LOG_IN, PASSWORD, SIGN_UP},
};
use serde_json::json;

#[tokio::test]
async fn an_owner_signs_up_with_a_project_and_logs_in() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Asha").await;

    let data = app
        .gql("{ viewer { username displayName memberships { role active project { id name plan defaultCountry archived } } } }")
        .token(&owner.token)
        .data()
        .await;
    let membership = &data["viewer"]["memberships"][0];
    assert_eq!(data["viewer"]["username"], owner.username);
    assert_eq!(membership["role"], "OWNER");
    assert_eq!(membership["project"]["id"], owner.project_id);
    assert_eq!(membership["project"]["plan"], "FREE_TRIAL");
    assert_eq!(membership["project"]["defaultCountry"], "IN");

    // Names are compared without case.
    let session = app.log_in(&owner.username.to_uppercase(), PASSWORD).await;
    assert_eq!(session.user_id, owner.user_id);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_get_the_same_refusal() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Ravi").await;
    let wrong = app
        .gql(LOG_IN)
        .vars(json!({ "input": { "username": owner.username, "password": "not the password" } }))
        .send()
        .await
        .expect_error("UNAUTHENTICATED");
    let unknown = app
        .gql(LOG_IN)
        .vars(json!({ "input": { "username": "nobody-here", "password": "not the password" } }))
        .send()
        .await
        .expect_error("UNAUTHENTICATED");
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn sign_up_input_is_checked() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Meera").await;
    let attempt = |username: &str, password: &str, project: &str| {
        app.gql(SIGN_UP).vars(json!({ "input": {
            "username": username, "displayName": "X", "password": password, "projectName": project,
        }}))
    };
    let reply = attempt(&owner.username, PASSWORD, "Again").send().await;
    reply.expect_error("CONFLICT");
    let reply = attempt("fresh-name", "short", "Shop").send().await;
    reply.expect_error("BAD_USER_INPUT");
    assert_eq!(reply.body["errors"][0]["extensions"]["field"], "password");
    attempt("no spaces allowed", PASSWORD, "Shop")
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
    attempt("fresh-name", PASSWORD, "   ")
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
    // Nothing of the refused sign-ups was created.
    app.gql(LOG_IN)
        .vars(json!({ "input": { "username": "fresh-name", "password": PASSWORD } }))
        .send()
        .await
        .expect_error("UNAUTHENTICATED");
}

#[tokio::test]
async fn a_password_change_needs_the_old_one_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Kiran").await;
    let change =
        "mutation($input: ChangePasswordInput!) { changePassword(input: $input) { token } }";
    app.gql(change)
        .token(&owner.token)
        .vars(json!({ "input": { "oldPassword": "wrong old one", "newPassword": "a new long password" } }))
        .send()
        .await
        .expect_error("BAD_USER_INPUT");
    let data = app
        .gql(change)
        .token(&owner.token)
        .vars(json!({ "input": { "oldPassword": PASSWORD, "newPassword": "a new long password" } }))
        .data()
        .await;
    let new_token = data["changePassword"]["token"].as_str().unwrap();

    let old = app
        .gql("{ viewer { id } }")
        .token(&owner.token)
        .send()
        .await;
    assert_eq!(old.status, 401);
    old.expect_error("UNAUTHENTICATED");
    app.gql("{ viewer { id } }").token(new_token).data().await;
    app.log_in(&owner.username, "a new long password").await;
}

#[tokio::test]
async fn owners_create_more_projects_and_archive_them() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Dev").await;
    let data = app
        .gql("mutation { createProject(input: { name: \"Second\", defaultCountry: \"ae\" }) { id defaultCountry } }")
        .token(&owner.token)
        .data()
        .await;
    let second = data["createProject"]["id"].as_str().unwrap().to_owned();
    assert_eq!(data["createProject"]["defaultCountry"], "AE");

    let data = app
        .gql("{ projects(first: 10) { edges { node { id } } pageInfo { hasNextPage } } }")
        .token(&owner.token)
        .data()
        .await;
    let ids: Vec<&str> = data["projects"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![owner.project_id.as_str(), second.as_str()]);

    let archive = app
        .gql("mutation { archiveProject { archived archivedAt } }")
        .token(&owner.token)
        .project(&second)
        .data()
        .await;
    assert_eq!(archive["archiveProject"]["archived"], true);
    // Archived: readable, not changeable.
    app.gql("{ project { name archived } }")
        .token(&owner.token)
        .project(&second)
        .data()
        .await;
    app.gql("mutation { updateProject(input: { name: \"Renamed\" }) { name } }")
        .token(&owner.token)
        .project(&second)
        .send()
        .await
        .expect_error("PROJECT_ARCHIVED");
    let back = app
        .gql("mutation { unarchiveProject { archived } }")
        .token(&owner.token)
        .project(&second)
        .data()
        .await;
    assert_eq!(back["unarchiveProject"]["archived"], false);
    let renamed = app
        .gql("mutation { updateProject(input: { name: \"Renamed\" }) { name } }")
        .token(&owner.token)
        .project(&second)
        .data()
        .await;
    assert_eq!(renamed["updateProject"]["name"], "Renamed");
}
