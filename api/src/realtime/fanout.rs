//! In-process fan-out of bus events to the local subscribers of each project.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::{StreamExt, stream::BoxStream};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};
use uuid::Uuid;

use super::BusEvent;

/// Events a slow subscriber may fall behind by before it skips some (and is told so in
/// the log); reconnect-by-cursor covers the gap for chat events.
const CHANNEL_CAPACITY: usize = 1024;

#[derive(Default, Clone)]
pub struct FanOut {
    channels: Arc<Mutex<HashMap<Uuid, broadcast::Sender<Arc<BusEvent>>>>>,
}

/// Tells the owner of a fan-out that a project gained its first local subscriber or lost
/// its last one (the Redis bus subscribes and unsubscribes its channel then).
pub enum Membership {
    First,
    Existing,
}

impl FanOut {
    pub fn deliver(&self, event: BusEvent) {
        let sender = self
            .channels
            .lock()
            .unwrap()
            .get(&event.project_id)
            .cloned();
        if let Some(sender) = sender {
            // No receiver left is fine: the last subscriber just went away.
            let _ = sender.send(Arc::new(event));
        }
    }

    /// A receiver for the project, and whether it is the project's first one here.
    pub fn join(&self, project_id: Uuid) -> (broadcast::Receiver<Arc<BusEvent>>, Membership) {
        let mut channels = self.channels.lock().unwrap();
        match channels.get(&project_id) {
            Some(sender) => (sender.subscribe(), Membership::Existing),
            None => {
                let (sender, receiver) = broadcast::channel(CHANNEL_CAPACITY);
                channels.insert(project_id, sender);
                (receiver, Membership::First)
            }
        }
    }

    /// Forgets a project with no local subscriber left; true if it was forgotten.
    pub fn leave_if_unused(&self, project_id: Uuid) -> bool {
        let mut channels = self.channels.lock().unwrap();
        match channels.get(&project_id) {
            Some(sender) if sender.receiver_count() == 0 => {
                channels.remove(&project_id);
                true
            }
            _ => false,
        }
    }

    pub fn projects(&self) -> Vec<Uuid> {
        self.channels.lock().unwrap().keys().copied().collect()
    }

    /// The receiver as a stream; `on_drop` runs when the subscriber goes away.
    pub fn stream(
        receiver: broadcast::Receiver<Arc<BusEvent>>,
        on_drop: impl FnOnce() + Send + 'static,
    ) -> BoxStream<'static, Arc<BusEvent>> {
        let guard = DropGuard(Some(Box::new(on_drop)));
        BroadcastStream::new(receiver)
            .filter_map(move |item| {
                let _keep = &guard;
                async move {
                    match item {
                        Ok(event) => Some(event),
                        Err(BroadcastStreamRecvError::Lagged(n)) => {
                            tracing::warn!(skipped = n, "subscriber fell behind the bus");
                            None
                        }
                    }
                }
            })
            .boxed()
    }
}

struct DropGuard(Option<Box<dyn FnOnce() + Send>>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}
