//! The webhook endpoint Meta calls: the GET verification challenge, and POSTs whose
//! signature is checked over the raw bytes before anything is stored. Meta gets its 200
//! only once the delivery is durably in the inbox; processing happens after.

use std::collections::HashMap;

use axum::{
    Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::Utc;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::{
    accounts,
    inbox::{self, Delivery},
    signature,
};
use crate::state::AppState;

pub const PATH: &str = "/webhooks/whatsapp";

pub fn routes(state: AppState) -> Router {
    let limit = state.settings.whatsapp.max_webhook_bytes;
    Router::new()
        .route(PATH, get(verify).post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Meta's subscription check: echo `hub.challenge` when the token is one we gave out.
async fn verify(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mode = params.get("hub.mode").map(String::as_str);
    let token = params.get("hub.verify_token").map(String::as_str);
    let challenge = params.get("hub.challenge");
    match (mode, token, challenge) {
        (Some("subscribe"), Some(token), Some(challenge)) => {
            match accounts::verify_token_known(&state, token).await {
                Ok(true) => (StatusCode::OK, challenge.clone()).into_response(),
                Ok(false) => (StatusCode::FORBIDDEN, "unknown verify token").into_response(),
                Err(err) => unavailable(&err.to_string()),
            }
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "expected hub.mode=subscribe, hub.verify_token and hub.challenge",
        )
            .into_response(),
    }
}

async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(header) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
    else {
        return (StatusCode::UNAUTHORIZED, "missing X-Hub-Signature-256").into_response();
    };
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let candidates = match signing_projects(&state, parsed.as_ref()).await {
        Ok(c) => c,
        Err(err) => return unavailable(&err),
    };
    let global = state
        .settings
        .whatsapp
        .app_secret
        .as_ref()
        .map(|s| s.expose_secret().to_owned());
    // The project's own app secret when it has one, else the server's app secret.
    let mut verified_for = None;
    let mut verified = false;
    for (project_id, secret) in &candidates {
        let secret = secret.as_ref().or(global.as_ref());
        if let Some(secret) = secret
            && signature::verify(secret.as_bytes(), &body, header)
        {
            verified = true;
            verified_for = Some(*project_id);
            break;
        }
    }
    if !verified && let Some(global) = &global {
        verified = signature::verify(global.as_bytes(), &body, header);
    }
    if !verified {
        metrics::counter!("parley_webhook_refused_total").increment(1);
        return (StatusCode::UNAUTHORIZED, "invalid signature").into_response();
    }
    let project_id = if candidates.len() == 1 {
        verified_for
    } else {
        None
    };
    let delivery = Delivery {
        source: inbox::SOURCE_META,
        project_id,
        body: String::from_utf8_lossy(&body).into_owned(),
        available_at: Utc::now(),
    };
    if let Err(err) = inbox::store(&state.db, vec![delivery]).await {
        // Meta retries for days: refusing now loses nothing.
        return unavailable(&err.to_string());
    }
    state.whatsapp.wake.notify_one();
    (StatusCode::OK, "ok").into_response()
}

/// The projects a body names (by phone number id or WABA id) with their own app secrets.
async fn signing_projects(
    state: &AppState,
    body: Option<&Value>,
) -> Result<Vec<(uuid::Uuid, Option<String>)>, String> {
    let Some(body) = body else {
        return Ok(Vec::new());
    };
    let mut phones = Vec::new();
    let mut wabas = Vec::new();
    for entry in body["entry"].as_array().into_iter().flatten() {
        if let Some(id) = entry["id"].as_str() {
            wabas.push(id.to_owned());
        }
        for change in entry["changes"].as_array().into_iter().flatten() {
            if let Some(id) = change["value"]["metadata"]["phone_number_id"].as_str() {
                phones.push(id.to_owned());
            }
        }
    }
    let known = accounts::by_meta_ids(&state.db, &phones, &wabas)
        .await
        .map_err(|e| e.to_string())?;
    Ok(known
        .into_iter()
        .filter(|a| a.provider == accounts::PROVIDER_META)
        .map(|a| (a.project_id, a.app_secret))
        .collect())
}

fn unavailable(reason: &str) -> Response {
    tracing::warn!(reason, "a webhook could not be stored; Meta will retry");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily unavailable, retry",
    )
        .into_response()
}
