//! `parley-minimal-graphql`: the transport benchmark's reference. The smallest
//! async-graphql server on axum: one `Query` type, one `POST /graphql` route, a
//! multi-threaded tokio runtime, nothing else (no middleware, no limits, no logging).
//!
//! `parley-minimal-graphql PORT` listens on 127.0.0.1:PORT until SIGTERM or SIGINT.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{Router, extract::State, routing::post};

struct Query;

#[Object]
impl Query {
    /// Something to select besides `__typename`.
    async fn ping(&self) -> &'static str {
        "pong"
    }
}

type MinimalSchema = Schema<Query, EmptyMutation, EmptySubscription>;

async fn graphql(State(schema): State<MinimalSchema>, request: GraphQLRequest) -> GraphQLResponse {
    schema.execute(request.into_inner()).await.into()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("usage: parley-minimal-graphql PORT"))?;
    let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
    let app = Router::new()
        .route("/graphql", post(graphql))
        .with_state(schema);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
        .await?;
    Ok(())
}
