//! Project-scoped publish/subscribe. In production events travel over Redis pub/sub so
//! that any API node can serve any subscriber; embedded, they stay in the process.
//!
//! Either way each process keeps one local fan-out: a subscriber only ever holds a
//! receiver of an in-process broadcast channel for its project.

mod fanout;
mod memory;
mod redis_bus;

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use memory::InProcessBus;
pub use redis_bus::RedisBus;

/// A local-only event (never published): this node's bus (re)subscribed the project's
/// channel, after a lost connection say, so events published meanwhile may have passed it
/// by. Streams that can catch up from the database do so; the others ignore the topic.
pub const RESUBSCRIBED: &str = "bus.resubscribed";

/// One event on the bus.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BusEvent {
    pub project_id: Uuid,
    /// What happened, e.g. `member.added`; subscribers filter on it.
    pub topic: String,
    pub payload: serde_json::Value,
}

#[async_trait]
pub trait EventBus: Send + Sync {
    async fn publish(&self, event: BusEvent) -> anyhow::Result<()>;

    /// Events of one project from now on, shared (not copied) between the subscribers of
    /// this process. The stream ends only when the bus is dropped.
    async fn subscribe(
        &self,
        project_id: Uuid,
    ) -> anyhow::Result<BoxStream<'static, Arc<BusEvent>>>;

    /// Whether the transport is reachable (for readiness).
    async fn ping(&self) -> anyhow::Result<()>;
}

pub type SharedBus = Arc<dyn EventBus>;
