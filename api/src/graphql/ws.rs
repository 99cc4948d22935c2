//! Subscriptions (and any operation) over WebSocket with the graphql-transport-ws
//! protocol, at `/graphql/ws`. Credentials go in `connection_init`'s payload:
//! `{"authorization": "Bearer <token>", "projectId": "<id>"}` or `{"apiKey": "<key>"}`.
//!
//! Close codes: 4400 bad message, 4401 subscribe before the ack, 4403 credentials
//! refused, 4406 subprotocol missing, 4408 no `connection_init` in time, 4409 duplicate
//! subscription id, 4429 a second `connection_init`.

use std::{
    collections::HashMap,
    future::{Future, poll_fn},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    task::{Context, Poll, Waker},
};

use async_graphql::Value;
use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::HeaderMap,
    response::Response,
};
use futures::{
    SinkExt, StreamExt,
    task::{ArcWake, AtomicWaker},
};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::{
    sync::{broadcast, mpsc},
    task::AbortHandle,
    time::Sleep,
};
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::{
    http::HttpState,
    http::normalize_errors,
    request_data,
    revocations::Revocation,
    shared::{Frame, Frames, SharedStreams},
};
use crate::{
    auth::{RequestAuth, context::Credentials},
    errors::ErrorCode,
};

pub const PROTOCOL: &str = "graphql-transport-ws";

pub async fn upgrade(
    State(state): State<HttpState>,
    client_ip: Option<axum::Extension<crate::limits::ClientIp>>,
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
        .on_upgrade(move |socket| {
            let mut connection = Connection::new(state);
            connection.client_ip = client_ip.map(|e| e.0);
            connection.serve(socket, offered)
        })
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

/// At most this many frames go out in one flush.
const BATCH: usize = 256;

// What a connection waits on, one bit each (see `Sources`).
const INIT_DEADLINE: u8 = 1 << 0;
const REVOKED: u8 = 1 << 1;
const INCOMING: u8 = 1 << 2;
const OUTGOING: u8 = 1 << 3;
const FRAMES: u8 = 1 << 4;
const SOURCES: [u8; 5] = [INIT_DEADLINE, REVOKED, INCOMING, OUTGOING, FRAMES];

/// The sources that woke a connection since it last looked, and its task's waker.
struct Wakeups {
    woken: AtomicU8,
    task: AtomicWaker,
}

/// A source's waker: notes the source, then wakes the connection's task.
struct SourceWaker {
    wakeups: Arc<Wakeups>,
    source: u8,
}

impl ArcWake for SourceWaker {
    fn wake_by_ref(this: &Arc<Self>) {
        this.wakeups.woken.fetch_or(this.source, Ordering::AcqRel);
        this.wakeups.task.wake();
    }
}

/// Each source is polled with a waker of its own and only when that waker fired (or it
/// was ready last time), so a shared frame costs a connection one poll of its frame
/// receiver: a `select!` would poll the socket's read side (a zero-filled read buffer, two
/// waker registrations), the channel and the timers as well, for every frame of every
/// connection.
struct Sources {
    wakeups: Arc<Wakeups>,
    wakers: [Waker; SOURCES.len()],
    /// To poll: woken, not polled yet, or ready when last polled (it may have more).
    due: u8,
}

impl Sources {
    fn new() -> Self {
        let wakeups = Arc::new(Wakeups {
            woken: AtomicU8::new(0),
            task: AtomicWaker::new(),
        });
        let wakers = SOURCES.map(|source| {
            futures::task::waker(Arc::new(SourceWaker {
                wakeups: wakeups.clone(),
                source,
            }))
        });
        Self {
            wakeups,
            wakers,
            due: SOURCES.iter().fold(0, |all, s| all | s),
        }
    }

    /// Takes in the wake-ups; first thing in each poll.
    fn collect(&mut self, cx: &Context<'_>) {
        // Registered before the bits are read: a source woken after the read wakes the
        // task again.
        self.wakeups.task.register(cx.waker());
        self.due |= self.wakeups.woken.swap(0, Ordering::AcqRel);
    }

    /// Whether `source` is to be polled now. It is no longer due: mark it again if it
    /// turns out ready.
    fn take(&mut self, source: u8) -> bool {
        let due = self.due & source != 0;
        self.due &= !source;
        due
    }

    fn context(&self, source: u8) -> Context<'_> {
        Context::from_waker(&self.wakers[source.trailing_zeros() as usize])
    }
}

/// What woke a connection.
enum Wake {
    InitTimeout,
    Revoked,
    Incoming(Option<Result<Message, axum::Error>>),
    /// Messages of the connection's own subscription tasks, in `Connection::outgoing`.
    Outgoing,
    /// Shared frames, in `Connection::ready`.
    Frames,
}

/// A shared stream this connection follows.
struct SharedSubscription {
    id: String,
    frames: BroadcastStream<Frames>,
    /// `{"id":<id>,"type":"next","payload":`: what a `next` message has of its own.
    next_prefix: String,
    /// Its last item (an end, an error, a lag) is waiting to go out.
    ended: bool,
}

impl SharedSubscription {
    fn new(id: String, frames: broadcast::Receiver<Frames>) -> Self {
        Self {
            next_prefix: format!(r#"{{"id":{},"type":"next","payload":"#, json_string(&id)),
            id,
            frames: BroadcastStream::new(frames),
            ended: false,
        }
    }

    /// The server message for a shared frame under this subscription's id.
    fn message(&self, frame: &Frame) -> String {
        match frame {
            Frame::Next(payload) => {
                // One allocation: the payload is serialized once for every subscriber.
                let mut text = String::with_capacity(self.next_prefix.len() + payload.len() + 1);
                text.push_str(&self.next_prefix);
                text.push_str(payload);
                text.push('}');
                text
            }
            Frame::Error(errors) => format!(
                r#"{{"id":{},"type":"error","payload":{errors}}}"#,
                json_string(&self.id)
            ),
        }
    }

    /// The last message: the stream ended, or this client fell behind it.
    fn closing_message(&self, lagged: bool) -> String {
        let id = json_string(&self.id);
        if lagged {
            // Frames were lost to this slow client: end the subscription so that it
            // resubscribes from its last `seq`.
            let errors = json!([{
                "message": "the subscription fell behind; subscribe again with the last seq seen as `after`",
                "extensions": { "code": "UNAVAILABLE" }
            }]);
            format!(r#"{{"id":{id},"type":"error","payload":{errors}}}"#)
        } else {
            format!(r#"{{"id":{id},"type":"complete"}}"#)
        }
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// What a shared stream gives a connection.
enum SharedItem {
    Frames(Frames),
    /// The connection fell behind and frames were lost.
    Lagged,
    /// The stream ended.
    End,
}

struct Connection {
    state: HttpState,
    /// The client's address, for operations throttled per address (`logIn`).
    client_ip: Option<crate::limits::ClientIp>,
    auth: Option<RequestAuth>,
    init_received: bool,
    init_deadline: Option<Pin<Box<Sleep>>>,
    /// Keeps the connection registered for revocations; `revoked` completes on one.
    revocation: Option<Revocation>,
    revoked: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    /// Running subscriptions by id: their generation and, unless shared, their task.
    subscriptions: HashMap<String, (u64, Option<AbortHandle>)>,
    /// Shared streams this connection follows, read by the connection itself so that a
    /// frame costs one wake-up.
    shared: Vec<SharedSubscription>,
    /// The unshared subscriptions' tasks send here.
    tx: mpsc::Sender<Outgoing>,
    rx: mpsc::Receiver<Outgoing>,
    generation: u64,
    sources: Sources,
    /// Shared items taken by the last poll (by index in `shared`), to send.
    ready: Vec<(usize, SharedItem)>,
    /// Messages taken from `rx` by the last poll, to send.
    outgoing: Vec<Outgoing>,
}

type Close = (u16, &'static str);

impl Connection {
    fn new(state: HttpState) -> Self {
        let (tx, rx) = mpsc::channel::<Outgoing>(256);
        let init_deadline = Box::pin(tokio::time::sleep(
            state.app.settings.graphql.connection_init_timeout,
        ));
        Self {
            client_ip: None,
            state,
            auth: None,
            init_received: false,
            init_deadline: Some(init_deadline),
            revocation: None,
            revoked: None,
            subscriptions: HashMap::new(),
            shared: Vec::new(),
            tx,
            rx,
            generation: 0,
            sources: Sources::new(),
            ready: Vec::new(),
            outgoing: Vec::new(),
        }
    }

    async fn serve(mut self, mut socket: WebSocket, offered: bool) {
        let close: Option<Close> = if offered {
            self.run(&mut socket).await
        } else {
            Some((4406, "Subprotocol not acceptable"))
        };
        for (_, (_, handle)) in self.subscriptions.drain() {
            if let Some(handle) = handle {
                handle.abort();
            }
        }
        if let Some((code, reason)) = close {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        let _ = socket.close().await;
    }

    /// Serves the connection until it ends; returns how to close it.
    async fn run(&mut self, socket: &mut WebSocket) -> Option<Close> {
        loop {
            match poll_fn(|cx| self.poll_wake(cx, socket)).await {
                Wake::InitTimeout => return Some((4408, "Connection initialisation timeout")),
                // Deactivated, or given another role: reconnect to get what the member may
                // see now.
                Wake::Revoked => return Some((4403, "Forbidden")),
                Wake::Incoming(message) => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            return Some((4400, "Binary messages are not supported"));
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                        Some(Ok(_)) => continue,
                    };
                    let replies = match self.handle(text.as_str()).await {
                        Ok(replies) => replies,
                        Err(close) => return Some(close),
                    };
                    for reply in replies {
                        let reply = Message::Text(reply.to_string().into());
                        if socket.send(reply).await.is_err() {
                            return None;
                        }
                    }
                }
                Wake::Outgoing => {
                    if self.send_outgoing(socket).await.is_err() {
                        return None;
                    }
                }
                Wake::Frames => {
                    if self.send_frames(socket).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// Polls the sources that are due, in order; frames and messages waiting together are
    /// taken together (up to `BATCH`), to go out in one flush.
    fn poll_wake(&mut self, cx: &mut Context<'_>, socket: &mut WebSocket) -> Poll<Wake> {
        self.sources.collect(cx);
        if self.sources.take(INIT_DEADLINE)
            && let Some(deadline) = self.init_deadline.as_mut()
            && deadline
                .as_mut()
                .poll(&mut self.sources.context(INIT_DEADLINE))
                .is_ready()
        {
            return Poll::Ready(Wake::InitTimeout);
        }
        if self.sources.take(REVOKED)
            && let Some(revoked) = self.revoked.as_mut()
            && revoked
                .as_mut()
                .poll(&mut self.sources.context(REVOKED))
                .is_ready()
        {
            return Poll::Ready(Wake::Revoked);
        }
        if self.sources.take(INCOMING)
            && let Poll::Ready(message) =
                socket.poll_next_unpin(&mut self.sources.context(INCOMING))
        {
            self.sources.due |= INCOMING;
            return Poll::Ready(Wake::Incoming(message));
        }
        if self.sources.take(OUTGOING) {
            let mut cx = self.sources.context(OUTGOING);
            while self.outgoing.len() < BATCH {
                match self.rx.poll_recv(&mut cx) {
                    Poll::Ready(Some(out)) => self.outgoing.push(out),
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
            if self.outgoing.len() == BATCH {
                self.sources.due |= OUTGOING;
            }
            if !self.outgoing.is_empty() {
                return Poll::Ready(Wake::Outgoing);
            }
        }
        if self.sources.take(FRAMES) {
            let mut cx = self.sources.context(FRAMES);
            let mut full = false;
            'subscriptions: for (i, subscription) in self.shared.iter_mut().enumerate() {
                while !subscription.ended {
                    if self.ready.len() == BATCH {
                        full = true;
                        break 'subscriptions;
                    }
                    let item = match subscription.frames.poll_next_unpin(&mut cx) {
                        Poll::Pending => break,
                        Poll::Ready(Some(Ok(frames))) => {
                            // An error ends the subscription, as its end and a lag do.
                            subscription.ended =
                                frames.iter().any(|f| matches!(f, Frame::Error(_)));
                            SharedItem::Frames(frames)
                        }
                        Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                            subscription.ended = true;
                            SharedItem::Lagged
                        }
                        Poll::Ready(None) => {
                            subscription.ended = true;
                            SharedItem::End
                        }
                    };
                    self.ready.push((i, item));
                }
            }
            if full {
                self.sources.due |= FRAMES;
            }
            if !self.ready.is_empty() {
                return Poll::Ready(Wake::Frames);
            }
        }
        Poll::Pending
    }

    /// Sends the shared items taken, in one flush, and forgets the subscriptions they end.
    async fn send_frames(&mut self, socket: &mut WebSocket) -> Result<(), axum::Error> {
        for (i, item) in self.ready.drain(..) {
            let subscription = &self.shared[i];
            match item {
                SharedItem::Frames(frames) => {
                    for frame in frames.iter() {
                        let text = subscription.message(frame);
                        socket.feed(Message::Text(text.into())).await?;
                    }
                }
                SharedItem::Lagged | SharedItem::End => {
                    let text = subscription.closing_message(matches!(item, SharedItem::Lagged));
                    socket.feed(Message::Text(text.into())).await?;
                }
            }
        }
        if self.shared.iter().any(|s| s.ended) {
            let subscriptions = &mut self.subscriptions;
            self.shared.retain(|s| {
                if s.ended {
                    subscriptions.remove(&s.id);
                }
                !s.ended
            });
        }
        socket.flush().await
    }

    /// Sends the subscription tasks' messages taken, in one flush.
    async fn send_outgoing(&mut self, socket: &mut WebSocket) -> Result<(), axum::Error> {
        for out in self.outgoing.drain(..) {
            match out {
                Outgoing::Send(text) => socket.feed(Message::Text(text.into())).await?,
                Outgoing::Finished { id, generation } => {
                    if self
                        .subscriptions
                        .get(&id)
                        .is_some_and(|(g, _)| *g == generation)
                    {
                        self.subscriptions.remove(&id);
                    }
                }
            }
        }
        socket.flush().await
    }

    /// Handles one client message; returns the immediate replies, or how to close.
    async fn handle(&mut self, text: &str) -> Result<Vec<Json>, Close> {
        let message: ClientMessage =
            serde_json::from_str(text).map_err(|_| (4400, "Invalid message"))?;
        match message {
            ClientMessage::ConnectionInit { payload } => {
                if self.init_received {
                    return Err((4429, "Too many initialisation requests"));
                }
                self.init_received = true;
                self.init_deadline = None;
                let credentials = credentials(payload.as_ref());
                if credentials.is_empty() {
                    self.auth = Some(RequestAuth::anonymous());
                } else {
                    match RequestAuth::resolve(&self.state.app, credentials).await {
                        Ok(auth) => {
                            if let Some(revocation) = self.watch_access(&auth).await {
                                self.revoked = Some(Box::pin(revocation.revoked()));
                                self.revocation = Some(revocation);
                                self.sources.due |= REVOKED;
                            }
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
                let mut request = *payload;
                let max_aliases = self.state.app.settings.graphql.max_aliases;
                if let Err(message) = super::document_limits::check(&mut request, max_aliases) {
                    return Ok(vec![json!({
                        "type": "error",
                        "id": id,
                        "payload": [{
                            "message": message,
                            "extensions": { "code": ErrorCode::GraphqlValidationFailed.as_str() },
                        }],
                    })]);
                }
                self.generation += 1;
                let generation = self.generation;
                let task = match SharedStreams::key(&request, &auth) {
                    Some(key) => {
                        let app = self.state.app.clone();
                        let schema = self.state.schema.clone();
                        let frames = self.state.shared.join(key, move || {
                            schema.execute_stream(request_data(request, &app, auth))
                        });
                        self.shared
                            .push(SharedSubscription::new(id.clone(), frames));
                        self.sources.due |= FRAMES;
                        None
                    }
                    None => {
                        let mut request = request_data(request, &self.state.app, auth);
                        if let Some(ip) = self.client_ip {
                            request = request.data(ip);
                        }
                        let stream = self.state.schema.execute_stream(request);
                        let tx = self.tx.clone();
                        let task_id = id.clone();
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
                    self.shared.retain(|s| s.id != id);
                }
                Ok(vec![])
            }
        }
    }

    /// Watches for changes to the caller's own membership in the selected project.
    async fn watch_access(&self, auth: &RequestAuth) -> Option<Revocation> {
        let scope = auth.scope().ok()?;
        let user_id = match (scope.user_id, scope.api_key_id) {
            (Some(user), _) => user.to_string(),
            (None, Some(key)) => super::revocations::api_key_holder(&key.to_string()),
            (None, None) => return None,
        };
        self.state
            .shared
            .revocations
            .watch(&self.state.app.bus, scope.project_id, user_id)
            .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_items_become_messages_under_the_subscriptions_own_id() {
        let (_tx, rx) = broadcast::channel(1);
        let subscription = SharedSubscription::new(r#"a"b"#.into(), rx);
        let parse = |text: String| serde_json::from_str::<Json>(&text).unwrap();
        let next = parse(subscription.message(&Frame::Next(r#"{"data":{"n":1}}"#.into())));
        assert_eq!(
            next,
            json!({ "id": "a\"b", "type": "next", "payload": { "data": { "n": 1 } } })
        );
        let error = parse(subscription.message(&Frame::Error(r#"[{"message":"no"}]"#.into())));
        assert_eq!(
            error,
            json!({ "id": "a\"b", "type": "error", "payload": [{ "message": "no" }] })
        );
        let lagged = parse(subscription.closing_message(true));
        assert_eq!(lagged["type"], "error");
        assert_eq!(lagged["payload"][0]["extensions"]["code"], "UNAVAILABLE");
        let end = parse(subscription.closing_message(false));
        assert_eq!(end, json!({ "id": "a\"b", "type": "complete" }));
    }
}
