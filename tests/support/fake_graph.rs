//! A stand-in for Meta's Graph API (the WhatsApp Cloud API) for black-box tests: it
//! records every request, answers sends, template calls and the Resumable Upload API in
//! Meta's documented shapes, and plays failures a test scripts. It also hosts media
//! samples (`GET /samples/{name}`), as a user's own server would. For the embedded
//! sign-up it serves the code exchange (`GET /oauth/access_token`) and the phone number
//! endpoints (`phone_numbers`, `request_code`, `verify_code`, `register`,
//! `whatsapp_business_profile`, `deregister`).

use std::sync::{Arc, Mutex};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// The first template id handed out, so ids look like Meta's long numeric ones.
const FIRST_TEMPLATE_ID: u64 = 594_425_479_261_000;
/// The first phone number id handed out by `POST /{waba-id}/phone_numbers`.
const FIRST_PHONE_NUMBER_ID: u64 = 106_540_352_240_000;
/// What the code exchange answers: this prefix and the code.
pub const ACCESS_TOKEN_PREFIX: &str = "EAAfake";
/// What every `/samples/{name}` serves: a few bytes that start and end like a JPEG.
pub const SAMPLE_JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0xFF, 0xD9,
];

/// One request as the fake received it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub authorization: Option<String>,
    /// `Null` when the body is empty or not JSON. For an upload of a file's bytes
    /// (`POST /{version}/upload:{n}`), the number of bytes instead.
    pub body: Value,
}

/// A fake Graph API on a random local port; point the Meta client's `graph_url` at `url`.
pub struct FakeGraph {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::AbortHandle,
}

struct Shared {
    url: String,
    state: Mutex<FakeState>,
    /// How long each answer takes (a slow Meta).
    delay_ms: std::sync::atomic::AtomicU64,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

struct FakeState {
    requests: Vec<Recorded>,
    scripted: Vec<Scripted>,
    templates: Vec<StoredTemplate>,
    page_size: usize,
    counter: u64,
    /// Ids the next sends answer with, in order (then generated ones).
    message_ids: std::collections::VecDeque<String>,
    /// The `file_length` of each upload session opened; session `n` is at `n - 1`.
    upload_sessions: Vec<u64>,
}

/// A one-shot answer for the next request whose path contains `path_contains`.
struct Scripted {
    path_contains: String,
    status: StatusCode,
    body: Value,
}

struct StoredTemplate {
    /// The WABA it was submitted to; `None` for templates added by the test, which every
    /// account lists.
    waba_id: Option<String>,
    template: Value,
}

/// Meta's error shape, with `message` also as `error_data.details`.
pub fn meta_error(code: i64, message: &str) -> Value {
    json!({
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": message },
            "fbtrace_id": "AfakeGraphTrace",
        }
    })
}

impl FakeGraph {
    pub async fn start() -> FakeGraph {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port for the fake Graph API");
        let url = format!("http://{}", listener.local_addr().expect("a local address"));
        let shared = Arc::new(Shared {
            url: url.clone(),
            delay_ms: Default::default(),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
            state: Mutex::new(FakeState {
                requests: Vec::new(),
                scripted: Vec::new(),
                templates: Vec::new(),
                page_size: 100,
                counter: 0,
                message_ids: std::collections::VecDeque::new(),
                upload_sessions: Vec::new(),
            }),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake Graph API serves");
        });
        FakeGraph {
            url,
            shared,
            server: server.abort_handle(),
        }
    }

    /// Where the fake hosts a media sample named `name` (served as [`SAMPLE_JPEG`]).
    pub fn sample_url(&self, name: &str) -> String {
        format!("{}/samples/{name}", self.url)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.shared.state.lock().expect("the fake's state")
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Queues a one-shot answer; queued answers are used in order, each by the first
    /// later request whose path contains `path_contains`.
    /// Every answer from now on takes `ms` milliseconds (the request is recorded at once).
    pub fn set_delay_ms(&self, ms: u64) {
        self.shared
            .delay_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The most requests the fake was answering at the same time (since the start or the
    /// last [`Self::reset_max_in_flight`]).
    pub fn max_in_flight(&self) -> usize {
        self.shared
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn reset_max_in_flight(&self) {
        self.shared
            .max_in_flight
            .store(0, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn fail_next(&self, path_contains: &str, status: u16, body: Value) {
        self.state().scripted.push(Scripted {
            path_contains: path_contains.to_owned(),
            status: StatusCode::from_u16(status).expect("a valid HTTP status"),
            body,
        });
    }

    /// Adds a template, in Meta's list shape (with its `id`), listed for every account.
    pub fn add_template(&self, template: Value) {
        self.state().templates.push(StoredTemplate {
            waba_id: None,
            template,
        });
    }

    /// The next sends get these message ids (as in the webhook fixtures), in order.
    pub fn queue_message_ids(&self, ids: &[&str]) {
        self.state()
            .message_ids
            .extend(ids.iter().map(|id| (*id).to_owned()));
    }

    /// How many templates a list page holds at most (Meta's `limit` may lower it).
    pub fn set_page_size(&self, n: usize) {
        assert!(n > 0, "a page holds at least one template");
        self.state().page_size = n;
    }

    /// Changes a template's review outcome as the list reports it.
    pub fn set_template_status(&self, meta_id: &str, status: &str, reason: Option<&str>) {
        let mut state = self.state();
        let stored = state
            .templates
            .iter_mut()
            .find(|t| t.template["id"] == meta_id)
            .unwrap_or_else(|| panic!("the fake Graph API has no template {meta_id}"));
        stored.template["status"] = status.into();
        stored.template["rejected_reason"] = reason.unwrap_or("NONE").into();
    }
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    use std::sync::atomic::Ordering::SeqCst;
    let now = shared.in_flight.fetch_add(1, SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, SeqCst);
    // Counted down however the request ends (the client may give up mid-delay).
    struct Leaving<'a>(&'a std::sync::atomic::AtomicUsize);
    impl Drop for Leaving<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let _leaving = Leaving(&shared.in_flight);
    let path = uri.path().to_owned();
    let body = if upload_session(&path).is_some() {
        json!(body.len())
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let request = Recorded {
        method: method.to_string(),
        path,
        query: uri.query().unwrap_or_default().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    let response = {
        let mut state = shared.state.lock().expect("the fake's state");
        state.requests.push(request.clone());
        if let Some(scripted) = state.take_scripted(&request.path) {
            (scripted.status, Json(scripted.body)).into_response()
        } else if method == Method::GET && request.path.starts_with("/samples/") {
            ([(CONTENT_TYPE, "image/jpeg")], SAMPLE_JPEG).into_response()
        } else {
            let (status, body) = state.answer(&shared.url, &method, &request, &headers);
            (status, Json(body)).into_response()
        }
    };
    let delay = shared.delay_ms.load(std::sync::atomic::Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    response
}

/// `n` of an upload session's path, `/{version}/upload:{n}`.
fn upload_session(path: &str) -> Option<usize> {
    let (_, node) = path.trim_start_matches('/').split_once('/')?;
    node.strip_prefix("upload:")?.parse().ok()
}

impl FakeState {
    fn take_scripted(&mut self, path: &str) -> Option<Scripted> {
        let index = self
            .scripted
            .iter()
            .position(|s| path.contains(&s.path_contains))?;
        Some(self.scripted.remove(index))
    }

    /// What Meta answers by default: `/{version}/{node}/{edge}`.
    fn answer(
        &mut self,
        url: &str,
        method: &Method,
        request: &Recorded,
        headers: &HeaderMap,
    ) -> (StatusCode, Value) {
        let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
        if let (&Method::POST, Some(n)) = (method, upload_session(&request.path)) {
            return self.receive_upload(n, request, headers);
        }
        match (method, segments.as_slice()) {
            (&Method::POST, [_, _, "uploads"]) => self.open_upload(&request.query),
            (&Method::POST, [_, _, "messages"]) => self.send(&request.body),
            (&Method::POST, [_, waba, "message_templates"]) => self.submit(waba, &request.body),
            (&Method::POST, [_, template_id]) => self.edit(template_id, &request.body),
            (&Method::GET, [_, waba, "message_templates"]) => {
                self.list(url, &request.path, waba, &request.query)
            }
            (&Method::GET, [_, "oauth", "access_token"]) => exchange_code(&request.query),
            (&Method::POST, [_, _, "phone_numbers"]) => self.add_phone_number(&request.body),
            (&Method::POST, [_, _, "request_code"]) => request_code(&request.body),
            (&Method::POST, [_, _, "verify_code"]) => verify_code(&request.body),
            (&Method::POST, [_, _, "register"]) => register(&request.body),
            (&Method::POST, [_, _, "whatsapp_business_profile"]) => {
                if request.body["messaging_product"] != "whatsapp" {
                    return bad_request("(#100) The parameter messaging_product is required");
                }
                success()
            }
            (&Method::POST, [_, _, "deregister"]) => success(),
            _ => bad_request(&format!("Unsupported {method} request to {}", request.path)),
        }
    }

    /// Adds a number to a WhatsApp Business Account: `cc`, `phone_number` and
    /// `verified_name` are required.
    fn add_phone_number(&mut self, body: &Value) -> (StatusCode, Value) {
        let required = ["cc", "phone_number", "verified_name"];
        if required.iter().any(|field| !body[field].is_string()) {
            return bad_request(
                "(#100) The parameters cc, phone_number and verified_name are required",
            );
        }
        let id = FIRST_PHONE_NUMBER_ID + self.next_number();
        (StatusCode::OK, json!({ "id": id.to_string() }))
    }

    fn next_number(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// The Resumable Upload API's first step: a session for a file of `file_length` bytes.
    fn open_upload(&mut self, query: &str) -> (StatusCode, Value) {
        let length = query_param(query, "file_length").and_then(|l| l.parse().ok());
        let (Some(length), Some(_)) = (length, query_param(query, "file_type")) else {
            return bad_request("(#100) The parameters file_length and file_type are required");
        };
        self.upload_sessions.push(length);
        let n = self.upload_sessions.len();
        (StatusCode::OK, json!({ "id": format!("upload:{n}") }))
    }

    /// The file's bytes, all at once: Meta wants them from offset 0 with `OAuth` auth.
    fn receive_upload(
        &self,
        n: usize,
        request: &Recorded,
        headers: &HeaderMap,
    ) -> (StatusCode, Value) {
        let Some(&length) = n.checked_sub(1).and_then(|i| self.upload_sessions.get(i)) else {
            return bad_request(&format!("(#100) Unknown upload session upload:{n}"));
        };
        let offset = headers.get("file_offset").and_then(|v| v.to_str().ok());
        if offset != Some("0") {
            return bad_request("(#100) file_offset must be 0 for a new upload");
        }
        let oauth = request.authorization.as_deref();
        if !oauth.is_some_and(|a| a.starts_with("OAuth ")) {
            return bad_request("(#190) The upload needs Authorization: OAuth {access_token}");
        }
        if request.body.as_u64() != Some(length) {
            let got = &request.body;
            return bad_request(&format!("(#100) Expected {length} bytes, got {got}"));
        }
        (StatusCode::OK, json!({ "h": format!("4::fakehandle{n}") }))
    }

    fn send(&mut self, body: &Value) -> (StatusCode, Value) {
        if body["messaging_product"] != "whatsapp" || !body["type"].is_string() {
            return bad_request("(#100) The parameter messaging_product and type are required");
        }
        let contact = match (body["to"].as_str(), body["recipient"].as_str()) {
            (Some(to), _) => json!({ "input": to, "wa_id": to }),
            (None, Some(recipient)) => json!({ "input": recipient }),
            (None, None) => return bad_request("(#100) The parameter to is required"),
        };
        let id = match self.message_ids.pop_front() {
            Some(id) => id,
            None => format!("wamid.fake.{}", self.next_number()),
        };
        let answer = json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{ "id": id }],
        });
        (StatusCode::OK, answer)
    }

    fn submit(&mut self, waba_id: &str, body: &Value) -> (StatusCode, Value) {
        let required = ["name", "language", "category"];
        if required.iter().any(|field| !body[field].is_string()) {
            return bad_request("(#100) The parameters name, language and category are required");
        }
        // Meta keeps one template per name and language: a rejected one is edited instead.
        let taken = self.templates.iter().any(|t| {
            t.waba_id.as_deref() == Some(waba_id)
                && t.template["name"] == body["name"]
                && t.template["language"] == body["language"]
        });
        if taken {
            return bad_request(
                "(#100) Content in this language already exists for this message template",
            );
        }
        let id = (FIRST_TEMPLATE_ID + self.next_number()).to_string();
        let template = json!({
            "id": id,
            "name": body["name"],
            "language": body["language"],
            "status": "PENDING",
            "category": body["category"],
            "rejected_reason": "NONE",
            "parameter_format": body["parameter_format"].as_str().unwrap_or("POSITIONAL"),
            "components": body.get("components").cloned().unwrap_or_else(|| json!([])),
        });
        self.templates.push(StoredTemplate {
            waba_id: Some(waba_id.to_owned()),
            template,
        });
        let answer = json!({ "id": id, "status": "PENDING", "category": body["category"] });
        (StatusCode::OK, answer)
    }

    /// Meta's template edit: new components, reviewed again.
    fn edit(&mut self, template_id: &str, body: &Value) -> (StatusCode, Value) {
        let Some(stored) = self
            .templates
            .iter_mut()
            .find(|t| t.template["id"] == template_id)
        else {
            return bad_request(&format!("(#100) Unknown template {template_id}"));
        };
        stored.template["status"] = json!("PENDING");
        stored.template["rejected_reason"] = json!("NONE");
        if let Some(components) = body.get("components") {
            stored.template["components"] = components.clone();
        }
        if let Some(category) = body.get("category") {
            stored.template["category"] = category.clone();
        }
        (StatusCode::OK, json!({ "success": true }))
    }

    /// A page in Meta's shape; cursors are positions in the account's list.
    fn list(&self, url: &str, path: &str, waba_id: &str, query: &str) -> (StatusCode, Value) {
        let visible: Vec<&Value> = self
            .templates
            .iter()
            .filter(|t| t.waba_id.as_deref().is_none_or(|w| w == waba_id))
            .map(|t| &t.template)
            .collect();
        let limit = query_param(query, "limit").and_then(|l| l.parse::<usize>().ok());
        let size = limit.map_or(self.page_size, |l| l.clamp(1, self.page_size));
        let start = match query_param(query, "after").map(parse_cursor) {
            None => 0,
            Some(Some(position)) if position <= visible.len() => position,
            Some(_) => return bad_request("(#100) Invalid cursor"),
        };
        let end = (start + size).min(visible.len());
        let data: Vec<Value> = visible[start..end].iter().map(|t| (*t).clone()).collect();
        if data.is_empty() {
            return (StatusCode::OK, json!({ "data": [] }));
        }
        let mut paging = json!({
            "cursors": { "before": cursor(start), "after": cursor(end) },
        });
        if end < visible.len() {
            paging["next"] = format!("{url}{path}?limit={size}&after={}", cursor(end)).into();
        }
        (StatusCode::OK, json!({ "data": data, "paging": paging }))
    }
}

fn success() -> (StatusCode, Value) {
    (StatusCode::OK, json!({ "success": true }))
}

/// The embedded sign-up's code exchange: the app's id and secret and the login's code.
fn exchange_code(query: &str) -> (StatusCode, Value) {
    let (Some(_), Some(_), Some(code)) = (
        query_param(query, "client_id"),
        query_param(query, "client_secret"),
        query_param(query, "code"),
    ) else {
        return bad_request("(#100) client_id, client_secret and code are required");
    };
    let token = format!("{ACCESS_TOKEN_PREFIX}{code}");
    (
        StatusCode::OK,
        json!({ "access_token": token, "token_type": "bearer" }),
    )
}

fn request_code(body: &Value) -> (StatusCode, Value) {
    let method = body["code_method"].as_str().unwrap_or_default();
    if !matches!(method, "SMS" | "VOICE") || !body["language"].is_string() {
        return bad_request("(#100) code_method (SMS or VOICE) and language are required");
    }
    success()
}

fn six_digits(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|v| v.len() == 6 && v.bytes().all(|b| b.is_ascii_digit()))
}

fn verify_code(body: &Value) -> (StatusCode, Value) {
    if !six_digits(&body["code"]) {
        return bad_request("(#100) The parameter code is required");
    }
    success()
}

fn register(body: &Value) -> (StatusCode, Value) {
    if body["messaging_product"] != "whatsapp" || !six_digits(&body["pin"]) {
        return bad_request("(#100) messaging_product and a 6-digit pin are required");
    }
    success()
}

fn bad_request(message: &str) -> (StatusCode, Value) {
    (StatusCode::BAD_REQUEST, meta_error(100, message))
}

fn cursor(position: usize) -> String {
    format!("fakecursor{position}")
}

fn parse_cursor(cursor: &str) -> Option<usize> {
    cursor.strip_prefix("fakecursor")?.parse().ok()
}

/// A query parameter's raw value; the fake's own cursors need no decoding.
fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}
