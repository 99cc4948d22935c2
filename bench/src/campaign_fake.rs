//! The campaign benchmark's own minimal stand-in for Meta's Graph API: it answers sends
//! (`POST /{version}/{phone_number_id}/messages`) with a fresh `wamid` and the template
//! list (`GET /{version}/{waba_id}/message_templates`), and counts what it was sent: when
//! each send arrived (for the rate per second) and to whom (for duplicates).
//! Everything else is refused in Meta's error shape.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// The benchmark's template, in Meta's list shape: two body parameters.
pub const TEMPLATE_NAME: &str = "bench_offer";

pub fn template() -> Value {
    json!({
        "id": "991000000000777",
        "name": TEMPLATE_NAME,
        "language": "en",
        "status": "APPROVED",
        "category": "MARKETING",
        "rejected_reason": "NONE",
        "parameter_format": "POSITIONAL",
        "components": [{
            "type": "BODY",
            "text": "Hello {{1}}, our festive offer is here in {{2}}.",
            "example": { "body_text": [["Asha", "Pune"]] },
        }],
    })
}

pub struct FakeGraph {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::AbortHandle,
}

struct Shared {
    started: Instant,
    /// Every answer waits this long (a slow Meta); 0 by default.
    delay: Duration,
    next_id: AtomicU64,
    sends: Mutex<Sends>,
}

#[derive(Default)]
struct Sends {
    /// Nanoseconds since the fake started, one per send, in arrival order.
    at_ns: Vec<u64>,
    /// Sends per recipient (`to`).
    per_recipient: HashMap<String, u32>,
}

/// What the fake saw of the sends since the last [`FakeGraph::take`].
#[derive(Default)]
pub struct Seen {
    /// Arrival of each send, seconds after `since`, in order.
    pub at_s: Vec<f64>,
    pub recipients: usize,
    /// Sends beyond the first to the same recipient.
    pub duplicates: u64,
}

impl FakeGraph {
    pub async fn start(delay: Duration) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let shared = Arc::new(Shared {
            started: Instant::now(),
            delay,
            next_id: AtomicU64::new(1),
            sends: Mutex::new(Sends::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                progress!("the fake Graph API stopped: {e}");
            }
        });
        Ok(Self {
            url,
            shared,
            server: server.abort_handle(),
        })
    }

    /// Sends received so far.
    pub fn count(&self) -> u64 {
        self.shared.sends.lock().map_or(0, |s| s.at_ns.len() as u64)
    }

    /// The sends so far, with times relative to `since`; the record starts again empty.
    pub fn take(&self, since: Instant) -> Seen {
        let sends = std::mem::take(&mut *self.shared.sends.lock().expect("the fake's sends"));
        let offset = since
            .saturating_duration_since(self.shared.started)
            .as_nanos() as f64;
        Seen {
            at_s: sends
                .at_ns
                .iter()
                .map(|ns| (*ns as f64 - offset) / 1e9)
                .collect(),
            recipients: sends.per_recipient.len(),
            duplicates: sends
                .per_recipient
                .values()
                .map(|n| u64::from(n.saturating_sub(1)))
                .sum(),
        }
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn meta_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": {
            "message": message, "type": "OAuthException", "code": 100,
            "fbtrace_id": "AbenchTrace",
        }})),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let response = match (&method, segments.as_slice()) {
        (&Method::POST, [_, _, "messages"]) => send(&shared, &body),
        (&Method::GET, [_, _, "message_templates"]) => {
            Json(json!({ "data": [template()] })).into_response()
        }
        _ => meta_error(&format!("Unsupported {method} request to {}", uri.path())),
    };
    if !shared.delay.is_zero() {
        tokio::time::sleep(shared.delay).await;
    }
    response
}

fn send(shared: &Shared, body: &[u8]) -> Response {
    let at_ns = shared.started.elapsed().as_nanos() as u64;
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return meta_error("(#100) The body is not JSON");
    };
    let to = match (body["to"].as_str(), body["recipient"].as_str()) {
        (Some(to), _) | (None, Some(to)) => to.to_owned(),
        (None, None) => return meta_error("(#100) The parameter to is required"),
    };
    if body["messaging_product"] != "whatsapp" || body["type"] != "template" {
        return meta_error("(#100) messaging_product whatsapp and a template are expected");
    }
    {
        let mut sends = shared.sends.lock().expect("the fake's sends");
        sends.at_ns.push(at_ns);
        *sends.per_recipient.entry(to.clone()).or_default() += 1;
    }
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": to.trim_start_matches('+') }],
        "messages": [{ "id": format!("wamid.bench.{n}") }],
    }))
    .into_response()
}
