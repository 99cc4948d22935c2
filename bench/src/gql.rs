//! A small GraphQL client for the set-up steps (sign-up, tags, attributes, import, export).

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Gql {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
    pub project_id: Option<String>,
}

impl Gql {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()?,
            base: base.to_owned(),
            token: None,
            project_id: None,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self) -> reqwest::RequestBuilder {
        let mut r = self
            .http
            .post(self.url("/graphql"))
            .header("accept", "application/graphql-response+json");
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(p) = &self.project_id {
            r = r.header("x-project-id", p);
        }
        r
    }

    /// Runs an operation; GraphQL errors are errors. Returns `data`.
    pub async fn run(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self
            .request()
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .context("POST /graphql")?;
        data(response).await
    }

    /// A GraphQL multipart request with one file bound to `$file`.
    pub async fn upload(
        &self,
        query: &str,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Value> {
        let operations = json!({ "query": query, "variables": { "file": null } });
        let form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", json!({ "0": ["variables.file"] }).to_string())
            .part(
                "0",
                reqwest::multipart::Part::bytes(bytes)
                    .file_name(file_name.to_owned())
                    .mime_str("text/csv")?,
            );
        let response = self
            .request()
            .multipart(form)
            .send()
            .await
            .context("multipart POST /graphql")?;
        data(response).await
    }
}

async fn data(response: reqwest::Response) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await?;
    let body: Value = serde_json::from_str(&text)
        .with_context(|| format!("HTTP {status}: not JSON: {}", truncate(&text)))?;
    if let Some(errors) = body.get("errors") {
        bail!("HTTP {status}: {}", truncate(&errors.to_string()));
    }
    if !status.is_success() {
        bail!("HTTP {status}: {}", truncate(&text));
    }
    body.get("data")
        .cloned()
        .context("a GraphQL response without data")
}

fn truncate(s: &str) -> String {
    s.chars().take(600).collect()
}
