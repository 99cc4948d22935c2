//! The production bus: Redis pub/sub over one RESP3 connection per process, which
//! reconnects and resubscribes on its own. Incoming messages go to the local fan-out.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use futures::stream::BoxStream;
use redis::{
    Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use tokio::sync::{Mutex, mpsc};
use uuid::Uuid;

use super::{
    BusEvent, EventBus,
    fanout::{FanOut, Membership},
};

#[derive(Clone)]
pub struct RedisBus {
    connection: ConnectionManager,
    fanout: FanOut,
    prefix: Arc<str>,
    /// Serialises SUBSCRIBE/UNSUBSCRIBE with the fan-out's view of who listens, so that a
    /// late unsubscribe can never undo a newer subscribe.
    subscriptions: Arc<Mutex<()>>,
    /// When a publish last failed: for a moment after, publishes fail at once (see
    /// [`PUBLISH_TIMEOUT`]).
    failed_at: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// The longest a publish waits for Redis. Events are published after their change
/// committed, by request handlers and the webhook worker: while Redis is down they must
/// not wait for its reconnection (the worker stalled for the whole outage). Subscribers
/// of chat events fill what they missed from the table.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed publish, the next ones fail at once for this long, so that a burst of
/// events during an outage costs one timeout, not one each.
const FAIL_FAST_FOR: Duration = Duration::from_secs(1);
/// How often an idle connection is checked. A node that only subscribes sends no
/// commands, and the connection manager reconnects (and resubscribes) on a failed
/// command: the check is that command.
const KEEPALIVE: Duration = Duration::from_secs(1);

impl RedisBus {
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let info = url.into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = Client::open(info.set_redis_settings(settings))?;
        let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push_tx)
            .set_automatic_resubscription()
            .set_number_of_retries(20)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let connection = ConnectionManager::new_with_config(client, config).await?;
        let bus = Self {
            connection,
            fanout: FanOut::default(),
            prefix: format!("{prefix}:project:").into(),
            subscriptions: Arc::default(),
            failed_at: Arc::default(),
        };
        tokio::spawn(dispatch(push_rx, bus.fanout.clone(), bus.prefix.clone()));
        tokio::spawn(keepalive(
            bus.connection.clone(),
            Arc::downgrade(&bus.failed_at),
        ));
        Ok(bus)
    }

    fn channel(&self, project_id: Uuid) -> String {
        format!("{}{project_id}", self.prefix)
    }
}

/// Pings Redis every [`KEEPALIVE`] so that a lost connection is noticed, and remade with
/// its subscriptions, even on a node that publishes nothing. Ends once the bus is gone
/// (`alive` is a field every clone of the bus shares).
async fn keepalive<T>(connection: ConnectionManager, alive: std::sync::Weak<T>) {
    loop {
        tokio::time::sleep(KEEPALIVE).await;
        if alive.strong_count() == 0 {
            return;
        }
        let mut conn = connection.clone();
        let ping = redis::cmd("PING");
        let _ = tokio::time::timeout(PUBLISH_TIMEOUT, ping.query_async::<String>(&mut conn)).await;
    }
}

/// Hands every pub/sub message to the local subscribers of its project.
async fn dispatch(mut pushes: mpsc::UnboundedReceiver<PushInfo>, fanout: FanOut, prefix: Arc<str>) {
    while let Some(push) = pushes.recv().await {
        match push.kind {
            PushKind::Message => {
                let [channel, payload] = push.data.as_slice() else {
                    continue;
                };
                let (Ok(channel), Ok(payload)) = (
                    redis::from_redis_value_ref::<String>(channel),
                    redis::from_redis_value_ref::<Vec<u8>>(payload),
                ) else {
                    continue;
                };
                if !channel.starts_with(&*prefix) {
                    continue;
                }
                match serde_json::from_slice::<BusEvent>(&payload) {
                    Ok(event) => fanout.deliver(event),
                    Err(err) => tracing::warn!(%channel, error = %err, "unreadable bus message"),
                }
            }
            // Also confirms the resubscription after a reconnection: tell the project's
            // local streams, which catch up on what the outage kept from them.
            PushKind::Subscribe => {
                let project_id = push
                    .data
                    .first()
                    .and_then(|c| redis::from_redis_value_ref::<String>(c).ok())
                    .and_then(|c| Uuid::parse_str(c.strip_prefix(&*prefix)?).ok());
                if let Some(project_id) = project_id {
                    fanout.deliver(BusEvent {
                        project_id,
                        topic: super::RESUBSCRIBED.to_owned(),
                        payload: serde_json::Value::Null,
                    });
                }
            }
            PushKind::Disconnection => {
                tracing::warn!("lost the Redis bus connection; reconnecting");
                metrics::counter!("realtime_bus_disconnections_total").increment(1);
            }
            _ => {}
        }
    }
}

#[async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, event: BusEvent) -> anyhow::Result<()> {
        let recently_failed = self
            .failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < FAIL_FAST_FOR);
        if recently_failed {
            anyhow::bail!("Redis is unavailable (a publish failed just before)");
        }
        let payload = serde_json::to_vec(&event)?;
        let mut conn = self.connection.clone();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.channel(event.project_id)).arg(payload);
        let sent = publish.query_async::<i64>(&mut conn);
        let outcome = match tokio::time::timeout(PUBLISH_TIMEOUT, sent).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(anyhow::Error::from(err)),
            Err(_) => Err(anyhow::anyhow!(
                "Redis did not take a publish in {PUBLISH_TIMEOUT:?}"
            )),
        };
        *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) =
            outcome.is_err().then(std::time::Instant::now);
        outcome
    }

    async fn subscribe(
        &self,
        project_id: Uuid,
    ) -> anyhow::Result<BoxStream<'static, Arc<BusEvent>>> {
        let _serial = self.subscriptions.lock().await;
        let (receiver, membership) = self.fanout.join(project_id);
        if let Membership::First = membership {
            let mut conn = self.connection.clone();
            if let Err(err) = conn.subscribe(self.channel(project_id)).await {
                drop(receiver);
                self.fanout.leave_if_unused(project_id);
                return Err(err.into());
            }
        }
        let bus = self.clone();
        Ok(FanOut::stream(receiver, move || {
            if bus.fanout.leave_if_unused(project_id) {
                tokio::spawn(async move {
                    let _serial = bus.subscriptions.lock().await;
                    if bus.fanout.projects().contains(&project_id) {
                        return; // someone subscribed again meanwhile
                    }
                    let mut conn = bus.connection.clone();
                    if let Err(err) = conn.unsubscribe(bus.channel(project_id)).await {
                        tracing::warn!(error = %err, "could not unsubscribe a bus channel");
                    }
                });
            }
        }))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.connection.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
