use parley_tests::TestApp;
use serde_json::json;

#[tokio::test]
async fn api_keys_are_shown_once_listed_by_prefix_and_revocable() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Crm").await;
    let created = app
        .gql("mutation { createApiKey(name: \"HubSpot\") { secret apiKey { id name prefix revokedAt } } }")
        .as_member(&owner)
        .data()
        .await;
    let secret = created["createApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_id = created["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let prefix = created["createApiKey"]["apiKey"]["prefix"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with(&prefix) && secret.len() > prefix.len() + 20);

    // The list never shows the key itself, and the schema has no field that could.
    let listed = app
        .gql("{ apiKeys { edges { node { id name prefix lastUsedAt } } } }")
        .as_member(&owner)
        .data()
        .await;
    assert!(!listed.to_string().contains(&secret));
    assert_eq!(
        listed["apiKeys"]["edges"][0]["node"]["prefix"],
        prefix.as_str()
    );
    assert!(listed["apiKeys"]["edges"][0]["node"]["lastUsedAt"].is_null());

    // The key works alone (no project header needed), as header or bearer.
    let project = app.gql("{ project { id } }").api_key(&secret).data().await;
    assert_eq!(project["project"]["id"], owner.project_id.as_str());
    let project = app.gql("{ project { id } }").token(&secret).data().await;
    assert_eq!(project["project"]["id"], owner.project_id.as_str());
    // It is not a user: no human-only operations.
    app.gql("{ members { edges { node { id } } } }")
        .api_key(&secret)
        .send()
        .await
        .expect_error("FORBIDDEN");
    app.gql("{ viewer { id } }")
        .api_key(&secret)
        .send()
        .await
        .expect_error("FORBIDDEN");
    let used = app
        .gql("{ apiKeys { edges { node { lastUsedAt } } } }")
        .as_member(&owner)
        .data()
        .await;
    assert!(used["apiKeys"]["edges"][0]["node"]["lastUsedAt"].is_string());

    let revoked = app
        .gql("mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }")
        .as_member(&owner)
        .vars(json!({ "id": key_id }))
        .data()
        .await;
    assert!(revoked["revokeApiKey"]["revokedAt"].is_string());
    let refused = app.gql("{ project { id } }").api_key(&secret).send().await;
    assert_eq!(refused.status, 401);
    refused.expect_error("UNAUTHENTICATED");

    let lists = app
        .gql("{ live: apiKeys { edges { node { id } } } all: apiKeys(includeRevoked: true) { edges { node { id } } } }")
        .as_member(&owner)
        .data()
        .await;
    assert_eq!(lists["live"]["edges"].as_array().unwrap().len(), 0);
    assert_eq!(lists["all"]["edges"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn several_keys_per_project_and_made_up_keys_fail() {
    let app = TestApp::spawn().await;
    let owner = app.sign_up("Crm").await;
    let mut secrets = Vec::new();
    for name in ["one", "two"] {
        let created = app
            .gql("mutation($name: String!) { createApiKey(name: $name) { secret } }")
            .as_member(&owner)
            .vars(json!({ "name": name }))
            .data()
            .await;
        secrets.push(
            created["createApiKey"]["secret"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_ne!(secrets[0], secrets[1]);
    for secret in &secrets {
        app.gql("{ project { id } }").api_key(secret).data().await;
    }
    let made_up = format!("pk_{}", "x".repeat(40));
    let reply = app.gql("{ project { id } }").api_key(&made_up).send().await;
    assert_eq!(reply.status, 401);
}
