//! Subscriptions that many clients of one node make alike (an agent dashboard's
//! `chatEvents` without a cursor, say) are executed once and their frames serialized once:
//! each event becomes one payload that every such client receives with its own
//! subscription id. Only subscriptions whose result depends on nothing but the project,
//! the role (and, for agents, the user) and the document are shared.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_graphql::{
    Request,
    parser::{parse_query, types::OperationType},
};
use futures::{Stream, StreamExt};
use tokio::{sync::broadcast, time::Instant};
use uuid::Uuid;

use super::http::normalize_errors;
use crate::auth::{RequestAuth, Role};

/// Root fields whose stream is the same for every subscriber of a key (when they have no
/// cursor argument).
const SHAREABLE: &[&str] = &["chatEvents", "messageUpdates", "requestingQueue"];

/// Sends a slow client may fall behind by before it is dropped (it reconnects with its
/// cursor and catches up).
const BACKLOG: usize = 4096;

/// A stream sends at most once per this interval: an event that comes sooner after the
/// last send waits for the rest of it, and goes out with whatever else came meanwhile.
/// Each subscriber then gets those frames in one write (one TCP segment, one wake-up of
/// its connection) instead of one each; at a busy project's event rates the per-segment
/// cost in the kernel is most of what a frame costs. An event after a quiet spell goes
/// out at once.
const COALESCE: Duration = Duration::from_millis(20);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShareKey {
    project_id: Uuid,
    role: Role,
    /// Agents see their own intervened chats: their streams are their own.
    user_id: Option<Uuid>,
    document: String,
    variables: String,
    operation: Option<String>,
}

/// What a shared stream sends at once: one frame, or several that came close together.
pub type Frames = Arc<[Frame]>;

/// One shared frame.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A `next` payload, serialized.
    Next(Arc<str>),
    /// The request failed before running (its errors, serialized).
    Error(Arc<str>),
}

#[derive(Default)]
pub struct SharedStreams {
    running: Mutex<HashMap<ShareKey, broadcast::Sender<Frames>>>,
    /// The connections' revocation watch, likewise one per project and node.
    pub revocations: super::revocations::Revocations,
}

impl SharedStreams {
    /// The key under which this request can share its stream, if it can.
    pub fn key(request: &Request, auth: &RequestAuth) -> Option<ShareKey> {
        let scope = auth.scope().ok()?;
        // Too deep to parse safely: not shared; execution refuses it with the reason.
        super::document_limits::check_nesting(&request.query).ok()?;
        let document = parse_query(&request.query).ok()?;
        let mut operations = document.operations.iter();
        let (_, operation) = operations.next()?;
        if operations.next().is_some() || operation.node.ty != OperationType::Subscription {
            return None;
        }
        let fields = &operation.node.selection_set.node.items;
        let [field] = fields.as_slice() else {
            return None;
        };
        let async_graphql::parser::types::Selection::Field(field) = &field.node else {
            return None;
        };
        let name = field.node.name.node.as_str();
        let has_cursor = field.node.arguments.iter().any(|(n, _)| n.node == "after");
        if !SHAREABLE.contains(&name)
            || has_cursor
            || !operation.node.variable_definitions.is_empty()
        {
            return None;
        }
        Some(ShareKey {
            project_id: scope.project_id,
            role: scope.role,
            user_id: (scope.role == Role::Agent)
                .then_some(scope.user_id)
                .flatten(),
            document: request.query.clone(),
            variables: serde_json::to_string(&request.variables).ok()?,
            operation: request.operation_name.clone(),
        })
    }

    /// Joins the running stream of `key`, or starts it with `start`.
    pub fn join<S>(
        self: &Arc<Self>,
        key: ShareKey,
        start: impl FnOnce() -> S,
    ) -> broadcast::Receiver<Frames>
    where
        S: Stream<Item = async_graphql::Response> + Send + Unpin + 'static,
    {
        let mut running = self.running.lock().expect("shared streams");
        if let Some(sender) = running.get(&key)
            && sender.receiver_count() > 0
        {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(BACKLOG);
        running.insert(key.clone(), sender.clone());
        let stream = start();
        let registry = self.clone();
        tokio::spawn(async move { registry.produce(key, sender, stream).await });
        receiver
    }

    async fn produce<S>(&self, key: ShareKey, sender: broadcast::Sender<Frames>, mut stream: S)
    where
        S: Stream<Item = async_graphql::Response> + Unpin,
    {
        let mut first = true;
        // Frames waiting for the end of the interval, and when it ends.
        let mut held = Vec::new();
        let mut next_send = Instant::now();
        loop {
            let response = if held.is_empty() {
                stream.next().await
            } else {
                tokio::select! {
                    biased;
                    response = stream.next() => response,
                    () = tokio::time::sleep_until(next_send) => {
                        if !self.send(&key, &sender, &mut held) {
                            return;
                        }
                        next_send = Instant::now() + COALESCE;
                        continue;
                    }
                }
            };
            let Some(mut response) = response else { break };
            normalize_errors(&mut response.errors);
            let failed = first
                && response.data == async_graphql::Value::Null
                && !response.errors.is_empty()
                && response.errors.iter().all(|e| e.path.is_empty());
            first = false;
            let frame = if failed {
                serde_json::to_string(&response.errors).map(|e| Frame::Error(e.into()))
            } else {
                serde_json::to_string(&response).map(|p| Frame::Next(p.into()))
            };
            let Ok(frame) = frame else { break };
            held.push(frame);
            if failed {
                break;
            }
            let now = Instant::now();
            if now >= next_send {
                if !self.send(&key, &sender, &mut held) {
                    return;
                }
                next_send = now + COALESCE;
            }
        }
        if !held.is_empty() {
            let _ = sender.send(held.into());
        }
        self.retire_now(&key, &sender);
    }

    /// Sends the frames held; false when nobody listens any more (sharing has stopped).
    fn send(
        &self,
        key: &ShareKey,
        sender: &broadcast::Sender<Frames>,
        held: &mut Vec<Frame>,
    ) -> bool {
        let frames: Frames = std::mem::take(held).into();
        sender.send(frames).is_ok() || !self.retire(key, sender)
    }

    /// Stops sharing when nobody listens any more; false when someone joined meanwhile.
    fn retire(&self, key: &ShareKey, sender: &broadcast::Sender<Frames>) -> bool {
        let mut running = self.running.lock().expect("shared streams");
        if sender.receiver_count() > 0 {
            return false;
        }
        if running.get(key).is_some_and(|s| s.same_channel(sender)) {
            running.remove(key);
        }
        true
    }

    fn retire_now(&self, key: &ShareKey, sender: &broadcast::Sender<Frames>) {
        let mut running = self.running.lock().expect("shared streams");
        if running.get(key).is_some_and(|s| s.same_channel(sender)) {
            running.remove(key);
        }
    }
}
