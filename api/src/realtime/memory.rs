//! The embedded mode's bus: events never leave the process.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use uuid::Uuid;

use super::{BusEvent, EventBus, fanout::FanOut};

#[derive(Default, Clone)]
pub struct InProcessBus {
    fanout: FanOut,
}

impl InProcessBus {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    async fn publish(&self, event: BusEvent) -> anyhow::Result<()> {
        self.fanout.deliver(event);
        Ok(())
    }

    async fn subscribe(
        &self,
        project_id: Uuid,
    ) -> anyhow::Result<BoxStream<'static, Arc<BusEvent>>> {
        let (receiver, _) = self.fanout.join(project_id);
        let fanout = self.fanout.clone();
        Ok(FanOut::stream(receiver, move || {
            fanout.leave_if_unused(project_id);
        }))
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    #[tokio::test]
    async fn subscribers_get_only_their_projects_events() {
        let bus = InProcessBus::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut sub_a = bus.subscribe(a).await.unwrap();
        let mut sub_b = bus.subscribe(b).await.unwrap();
        for project_id in [b, a] {
            bus.publish(BusEvent {
                project_id,
                topic: "t".into(),
                payload: json!({ "p": project_id }),
            })
            .await
            .unwrap();
        }
        assert_eq!(sub_a.next().await.unwrap().project_id, a);
        assert_eq!(sub_b.next().await.unwrap().project_id, b);
        drop(sub_a);
        assert_eq!(bus.fanout.projects(), vec![b]);
    }
}
