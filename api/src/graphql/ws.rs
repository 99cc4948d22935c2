//! Subscriptions (and any operation) over WebSocket with the graphql-transport-ws
//! protocol, at `/graphql/ws`. Credentials go in `connection_init`'s payload:
//! `{"authorization": "Bearer <token>", "projectId": "<id>"}` or `{"apiKey": "<key>"}`.
//!
//! Close codes: 4400 bad message, 4401 subscribe before the ack, 4403 credentials
//! refused, 4406 subprotocol missing, 4408 no `connection_init` in time, 4409 duplicate
//! subscription id, 4429 a second `connection_init`.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::Value;
use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::HeaderMap,
    response::Response,
};
use futures::{FutureExt, SinkExt, StreamExt, stream::BoxStream};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::{
    sync::{broadcast, mpsc},
    task::AbortHandle,
};
use tokio_stream::{
    StreamMap,
    wrappers::{BroadcastStream, errors::BroadcastStreamRecvError},
};

use super::{
    http::HttpState,
    http::normalize_errors,
    request_data,
    shared::{Frame, SharedStreams},
};
use crate::{
    auth::{RequestAuth, context::Credentials},
    realtime::BusEvent,
    state::AppState,
};

pub const PROTOCOL: &str = "graphql-transport-ws";

pub async fn upgrade(
    State(state): State<HttpState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let offered = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL);
    let max = state.app.settings.graphql.max_body_bytes;
    ws.protocols([PROTOCOL])
        .max_message_size(max)
        // Clients send little; the default 128 KiB read buffer per connection would be
        // most of an idle subscription's memory (and zero-filled on every read).
        .read_buffer_size(4 * 1024)
        .on_upgrade(move |socket| Connection::new(state).serve(socket, offered))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    ConnectionInit {
        #[serde(default)]
        payload: Option<Json>,
    },
    Ping {
        #[serde(default)]
        payload: Option<Json>,
    },
    Pong {
        #[serde(default)]
        #[allow(dead_code)]
        payload: Option<Json>,
    },
    Subscribe {
        id: String,
        payload: Box<async_graphql::Request>,
    },
    Complete {
        id: String,
    },
}

/// What subscription tasks hand to the connection's single writer.
enum Outgoing {
    /// A serialized server message.
    Send(String),
    /// A subscription ended by itself; `generation` tells it from a newer one with the
    /// same id.
    Finished { id: String, generation: u64 },
}

struct Connection {
    state: HttpState,
    auth: Option<RequestAuth>,
    /// Ends the connection when the member's access in its project changes.
    revocations: Option<BoxStream<'static, Arc<BusEvent>>>,
    init_received: bool,
    /// Running subscriptions by id: their generation and, unless shared, their task.
    subscriptions: HashMap<String, (u64, Option<AbortHandle>)>,
    /// Shared streams this connection follows, read by the connection itself so that a
    /// frame costs one wake-up.
    shared: StreamMap<String, BoxStream<'static, SharedItem>>,
    generation: u64,
}

type Close = (u16, &'static str);

impl Connection {
    fn new(state: HttpState) -> Self {
        Self {
            state,
            auth: None,
            revocations: None,
            init_received: false,
            subscriptions: HashMap::new(),
            shared: StreamMap::new(),
            generation: 0,
        }
    }

    async fn serve(mut self, socket: WebSocket, offered: bool) {
        let (mut sink, mut incoming) = socket.split();
        let (tx, mut rx) = mpsc::channel::<Outgoing>(256);
        let init_deadline =
            tokio::time::sleep(self.state.app.settings.graphql.connection_init_timeout);
        tokio::pin!(init_deadline);

        let close: Option<Close> = if !offered {
            Some((4406, "Subprotocol not acceptable"))
        } else {
            loop {
                tokio::select! {
                    () = &mut init_deadline, if !self.init_received => {
                        break Some((4408, "Connection initialisation timeout"));
                    }
                    Some(_) = next_revocation(&mut self.revocations) => {
                        // Deactivated, or given another role: reconnect to get what the
                        // member may see now.
                        break Some((4403, "Forbidden"));
                    }
                    message = incoming.next() => {
                        let text = match message {
                            Some(Ok(Message::Text(text))) => text,
                            Some(Ok(Message::Binary(_))) => break Some((4400, "Binary messages are not supported")),
                            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                            Some(Ok(_)) => continue,
                        };
                        match self.handle(text.as_str(), &tx).await {
                            Ok(replies) => {
                                let mut failed = false;
                                for reply in replies {
                                    if sink.send(Message::Text(reply.to_string().into())).await.is_err() {
                                        failed = true;
                                        break;
                                    }
                                }
                                if failed { break None; }
                            }
                            Err(close) => break Some(close),
                        }
                    }
                    Some(first) = self.shared.next(), if !self.shared.is_empty() => {
                        // Frames ready on other shared streams go out in the same flush.
                        let mut ready = vec![first];
                        while ready.len() < 256 {
                            match self.shared.next().now_or_never() {
                                Some(Some(more)) => ready.push(more),
                                _ => break,
                            }
                        }
                        let mut failed = false;
                        for (id, item) in ready {
                            let (text, ended) = shared_message(&id, item);
                            if ended {
                                self.subscriptions.remove(&id);
                                self.shared.remove(&id);
                            }
                            if sink.feed(Message::Text(text.into())).await.is_err() {
                                failed = true;
                                break;
                            }
                        }
                        if failed || sink.flush().await.is_err() {
                            break None;
                        }
                    }
                    Some(out) = rx.recv() => match out {
                        Outgoing::Send(text) => {
                            // Frames waiting behind this one go out with it, in one flush.
                            if sink.feed(Message::Text(text.into())).await.is_err() {
                                break None;
                            }
                            let mut finished = Vec::new();
                            while let Ok(more) = rx.try_recv() {
                                match more {
                                    Outgoing::Send(text) => {
                                        if sink.feed(Message::Text(text.into())).await.is_err() {
                                            break;
                                        }
                                    }
                                    Outgoing::Finished { id, generation } => finished.push((id, generation)),
                                }
                            }
                            if sink.flush().await.is_err() {
                                break None;
                            }
                            for (id, generation) in finished {
                                if self.subscriptions.get(&id).is_some_and(|(g, _)| *g == generation) {
                                    self.subscriptions.remove(&id);
                                }
                            }
                        }
                        Outgoing::Finished { id, generation } => {
                            if self.subscriptions.get(&id).is_some_and(|(g, _)| *g == generation) {
                                self.subscriptions.remove(&id);
                            }
                        }
                    },
                }
            }
        };
        for (_, (_, handle)) in self.subscriptions.drain() {
            if let Some(handle) = handle {
                handle.abort();
            }
        }
        if let Some((code, reason)) = close {
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        let _ = sink.close().await;
    }

    /// Handles one client message; returns the immediate replies, or how to close.
    async fn handle(
        &mut self,
        text: &str,
        tx: &mpsc::Sender<Outgoing>,
    ) -> Result<Vec<Json>, Close> {
        let message: ClientMessage =
            serde_json::from_str(text).map_err(|_| (4400, "Invalid message"))?;
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.init_received {
                    return Err((4429, "Too many initialisation requests"));
                }
                self.init_received = true;
                let credentials = credentials(payload.as_ref());
                if credentials.is_empty() {
                    self.auth = Some(RequestAuth::anonymous());
                } else {
                    match RequestAuth::resolve(&self.state.app, credentials).await {
                        Ok(auth) => {
                            self.revocations = watch_access(&self.state.app, &auth).await;
                            self.auth = Some(auth);
                        }
                        Err(_) => return Err((4403, "Forbidden")),
                    }
                }
                Ok(vec![json!({ "type": "connection_ack" })])
            }
            ClientMessage::Ping { payload } => {
                let mut pong = json!({ "type": "pong" });
                if let Some(payload) = payload {
                    pong["payload"] = payload;
                }
                Ok(vec![pong])
            }
            ClientMessage::Pong { .. } => Ok(vec![]),
            ClientMessage::Subscribe { id, payload } => {
                let Some(auth) = self.auth.clone() else {
                    return Err((4401, "Unauthorized"));
                };
                if self.subscriptions.contains_key(&id) {
                    // The reason names the id, as the protocol asks; it is static here.
                    return Err((4409, "Subscriber for this id already exists"));
                }
                self.generation += 1;
                let generation = self.generation;
                let request = *payload;
                let tx = tx.clone();
                let task_id = id.clone();
                let task = match SharedStreams::key(&request, &auth) {
                    Some(key) => {
                        let app = self.state.app.clone();
                        let schema = self.state.schema.clone();
                        let frames = self.state.shared.join(key, move || {
                            schema.execute_stream(request_data(request, &app, auth))
                        });
                        self.shared.insert(id.clone(), shared_items(frames));
                        None
                    }
                    None => {
                        let stream = self.state.schema.execute_stream(request_data(
                            request,
                            &self.state.app,
                            auth,
                        ));
                        let task = tokio::spawn(async move {
                            run_subscription(task_id, generation, stream, tx).await;
                        });
                        Some(task.abort_handle())
                    }
                };
                self.subscriptions.insert(id, (generation, task));
                Ok(vec![])
            }
            ClientMessage::Complete { id } => {
                if let Some((_, handle)) = self.subscriptions.remove(&id) {
                    if let Some(handle) = handle {
                        handle.abort();
                    }
                    self.shared.remove(&id);
                }
                Ok(vec![])
            }
        }
    }
}

/// Changes to the caller's own membership in the selected project.
async fn watch_access(
    state: &AppState,
    auth: &RequestAuth,
) -> Option<BoxStream<'static, Arc<BusEvent>>> {
    let scope = auth.scope().ok()?;
    let user_id = scope.user_id?.to_string();
    let events = state.bus.subscribe(scope.project_id).await.ok()?;
    Some(
        events
            .filter(move |e| {
                let mine = matches!(
                    e.topic.as_str(),
                    "member.deactivated" | "member.role_changed"
                ) && e.payload["userId"].as_str() == Some(user_id.as_str());
                futures::future::ready(mine)
            })
            .boxed(),
    )
}

async fn next_revocation(
    watch: &mut Option<BoxStream<'static, Arc<BusEvent>>>,
) -> Option<Arc<BusEvent>> {
    match watch {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// What a shared stream gives a connection.
enum SharedItem {
    Frame(Frame),
    /// The connection fell behind and frames were lost.
    Lagged,
    /// The stream ended.
    End,
}

fn shared_items(frames: broadcast::Receiver<Frame>) -> BoxStream<'static, SharedItem> {
    BroadcastStream::new(frames)
        .map(|item| match item {
            Ok(frame) => SharedItem::Frame(frame),
            Err(BroadcastStreamRecvError::Lagged(_)) => SharedItem::Lagged,
        })
        .chain(futures::stream::once(async { SharedItem::End }))
        .boxed()
}

/// The server message for a shared item under this subscription's id, and whether the
/// subscription ends with it.
fn shared_message(id: &str, item: SharedItem) -> (String, bool) {
    let id_json = serde_json::to_string(id).unwrap_or_default();
    match item {
        SharedItem::Frame(Frame::Next(payload)) => (
            format!(r#"{{"id":{id_json},"type":"next","payload":{payload}}}"#),
            false,
        ),
        SharedItem::Frame(Frame::Error(errors)) => (
            format!(r#"{{"id":{id_json},"type":"error","payload":{errors}}}"#),
            true,
        ),
        SharedItem::Lagged => {
            // Frames were lost to this slow client: end the subscription so that it
            // resubscribes from its last `seq`.
            let errors = json!([{
                "message": "the subscription fell behind; subscribe again with the last seq seen as `after`",
                "extensions": { "code": "UNAVAILABLE" }
            }]);
            (
                format!(r#"{{"id":{id_json},"type":"error","payload":{errors}}}"#),
                true,
            )
        }
        SharedItem::End => (format!(r#"{{"id":{id_json},"type":"complete"}}"#), true),
    }
}

/// A `next` message, serialized straight from the response.
#[derive(serde::Serialize)]
struct NextMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    payload: &'a async_graphql::Response,
}

async fn run_subscription(
    id: String,
    generation: u64,
    mut stream: impl futures::Stream<Item = async_graphql::Response> + Unpin,
    tx: mpsc::Sender<Outgoing>,
) {
    let mut first = true;
    let mut request_failed = false;
    while let Some(mut response) = stream.next().await {
        normalize_errors(&mut response.errors);
        let failed_before_execution = first
            && response.data == Value::Null
            && !response.errors.is_empty()
            && response.errors.iter().all(|e| e.path.is_empty());
        first = false;
        let message = if failed_before_execution {
            request_failed = true;
            serde_json::to_string(&json!({ "id": id, "type": "error", "payload": response.errors }))
        } else {
            serde_json::to_string(&NextMessage {
                id: &id,
                kind: "next",
                payload: &response,
            })
        };
        let Ok(message) = message else {
            break;
        };
        if tx.send(Outgoing::Send(message)).await.is_err() {
            return;
        }
        if request_failed {
            break;
        }
    }
    if !request_failed {
        let _ = tx
            .send(Outgoing::Send(
                json!({ "id": id, "type": "complete" }).to_string(),
            ))
            .await;
    }
    let _ = tx.send(Outgoing::Finished { id, generation }).await;
}

/// Credentials from `connection_init`'s payload, with the same meaning as the HTTP headers.
fn credentials(payload: Option<&Json>) -> Credentials {
    let text = |key: &str| {
        payload
            .and_then(|p| p.get(key))
            .and_then(Json::as_str)
            .map(str::to_owned)
    };
    let mut headers = axum::http::HeaderMap::new();
    let mut put = |name: &'static str, value: Option<String>| {
        if let Some(v) = value.and_then(|v| v.parse().ok()) {
            headers.insert(name, v);
        }
    };
    put(
        "authorization",
        text("authorization")
            .or_else(|| text("Authorization"))
            .or_else(|| text("token").map(|t| format!("Bearer {t}"))),
    );
    put("x-api-key", text("apiKey"));
    put("x-project-id", text("projectId"));
    Credentials::from_headers(&headers)
}
