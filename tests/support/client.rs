//! A small GraphQL client for tests.

use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};

use crate::TestApp;

pub struct Gql<'a> {
    app: &'a TestApp,
    query: String,
    variables: Value,
    method: Method,
    headers: Vec<(String, String)>,
}

/// What came back: status, headers and the JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The `extensions.code` of the first error, if any.
    pub fn error_code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }

    /// Data, after checking there was no error.
    pub fn data(&self) -> &Value {
        assert!(
            self.body.get("errors").is_none(),
            "unexpected errors: {}",
            self.body
        );
        &self.body["data"]
    }

    /// Asserts the request failed with this code, and returns the message.
    pub fn expect_error(&self, code: &str) -> String {
        assert_eq!(self.error_code(), Some(code), "body: {}", self.body);
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl<'a> Gql<'a> {
    pub fn new(app: &'a TestApp, query: &str) -> Self {
        Self {
            app,
            query: query.to_owned(),
            variables: json!({}),
            method: Method::POST,
            headers: vec![("accept".into(), "application/graphql-response+json".into())],
        }
    }

    pub fn vars(mut self, variables: Value) -> Self {
        self.variables = variables;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn token(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn project(self, project_id: &str) -> Self {
        self.header("x-project-id", project_id)
    }

    /// Token and project of a member.
    pub fn as_member(self, who: &Owner) -> Self {
        self.token(&who.token).project(&who.project_id)
    }

    pub fn api_key(self, key: &str) -> Self {
        self.header("x-api-key", key)
    }

    pub fn accept(self, accept: &str) -> Self {
        self.header("accept", accept)
    }

    pub fn get(mut self) -> Self {
        self.method = Method::GET;
        self
    }

    pub async fn send(self) -> Reply {
        self.send_ref().await
    }

    async fn send_ref(&self) -> Reply {
        let url = self.app.url("/graphql");
        let mut request = if self.method == Method::GET {
            let vars = self.variables.to_string();
            self.app
                .http
                .get(url)
                .query(&[("query", self.query.as_str()), ("variables", vars.as_str())])
        } else {
            self.app
                .http
                .post(url)
                .json(&json!({ "query": self.query, "variables": self.variables }))
        };
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Sends and returns the data, failing the test on any error. A request answered
    /// UNAVAILABLE (the embedded database refusing a write that raced another writer) is
    /// sent again, a few times, as the error contract tells clients to.
    pub async fn data(self) -> Value {
        let mut reply = self.send_ref().await;
        for _ in 0..5 {
            if reply.error_code() != Some("UNAVAILABLE") || self.app.settings.database_url.is_some()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            reply = self.send_ref().await;
        }
        reply.data().clone()
    }
}

/// A logged-in member and the project they work in.
#[derive(Clone, Debug)]
pub struct Owner {
    pub username: String,
    pub password: String,
    pub token: String,
    pub user_id: String,
    pub project_id: String,
}

pub const PASSWORD: &str = "a long enough password";

pub const SIGN_UP: &str = "mutation($input: SignUpInput!) {
  signUp(input: $input) { token expiresAt viewer { id username displayName } project { id name plan } }
}";

pub const LOG_IN: &str = "mutation($input: LogInInput!) {
  logIn(input: $input) { token viewer { id username } }
}";

pub const ADD_MEMBER: &str = "mutation($input: AddMemberInput!) {
  addMember(input: $input) { id username displayName role active }
}";

impl TestApp {
    /// Signs up a new owner with a project of their own.
    pub async fn sign_up(&self, name: &str) -> Owner {
        let username = format!(
            "{}-{}",
            name.to_lowercase(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let data = self
            .gql(SIGN_UP)
            .vars(json!({ "input": {
                "username": username, "displayName": name, "password": PASSWORD,
                "projectName": format!("{name}'s shop"),
            }}))
            .data()
            .await;
        let payload = &data["signUp"];
        Owner {
            username,
            password: PASSWORD.into(),
            token: payload["token"].as_str().unwrap().to_owned(),
            user_id: payload["viewer"]["id"].as_str().unwrap().to_owned(),
            project_id: payload["project"]["id"].as_str().unwrap().to_owned(),
        }
    }

    /// The owner adds a member with `role`, who then logs in.
    pub async fn add_member(&self, owner: &Owner, role: &str) -> (Owner, String) {
        let username = format!(
            "{}-{}",
            role.to_lowercase(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let data = self
            .gql(ADD_MEMBER)
            .as_member(owner)
            .vars(json!({ "input": {
                "username": username, "displayName": role, "password": PASSWORD, "role": role,
            }}))
            .data()
            .await;
        let member_id = data["addMember"]["id"].as_str().unwrap().to_owned();
        let member = self.log_in(&username, PASSWORD).await;
        (
            Owner {
                project_id: owner.project_id.clone(),
                ..member
            },
            member_id,
        )
    }

    pub async fn log_in(&self, username: &str, password: &str) -> Owner {
        let data = self
            .gql(LOG_IN)
            .vars(json!({ "input": { "username": username, "password": password } }))
            .data()
            .await;
        Owner {
            username: username.to_owned(),
            password: password.to_owned(),
            token: data["logIn"]["token"].as_str().unwrap().to_owned(),
            user_id: data["logIn"]["viewer"]["id"].as_str().unwrap().to_owned(),
            project_id: String::new(),
        }
    }
}

impl TestApp {
    /// Sends a GraphQL multipart request with one file bound to `$file`.
    pub async fn upload(&self, who: &Owner, query: &str, file_name: &str, bytes: Vec<u8>) -> Reply {
        let operations = json!({ "query": query, "variables": { "file": null } });
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(bytes)
                    .file_name(file_name.to_owned())
                    .mime_str("text/csv")
                    .unwrap(),
            );
        let response = self
            .http
            .post(self.url("/graphql"))
            .bearer_auth(&who.token)
            .header("x-project-id", &who.project_id)
            .header("accept", "application/graphql-response+json")
            .multipart(form)
            .send()
            .await
            .expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            headers,
            body,
        }
    }
}
