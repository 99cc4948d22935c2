//! `/healthz`: the process answers. `/readyz`: its dependencies answer too.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::state::AppState;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let timeout = Duration::from_secs(2);
    let check = |r: Result<anyhow::Result<()>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            // Causes may name hosts: they go to the log, not to the caller.
            tracing::warn!(error = %e, "readiness check failed");
            "unavailable".to_owned()
        }
        Err(_) => "timed out".to_owned(),
    };
    let database = check(
        tokio::time::timeout(timeout, async {
            state.db.execute_unprepared("SELECT 1").await?;
            Ok(())
        })
        .await,
    );
    let bus = check(tokio::time::timeout(timeout, state.bus.ping()).await);
    let analytics = check(tokio::time::timeout(timeout, state.analytics.ping()).await);
    let ready = [&database, &bus, &analytics].iter().all(|s| *s == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "unavailable" },
            "checks": { "database": database, "bus": bus, "analytics": analytics },
        })),
    )
}
