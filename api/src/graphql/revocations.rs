//! Ends WebSocket connections whose member is deactivated or given another role.
//!
//! One watcher per project and node reads the project's bus events for that and cancels
//! the member's connections: were each connection to read its project's bus itself, every
//! chat event would wake every connection a second time only to be filtered out.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use futures::StreamExt;
use tokio::task::AbortHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use uuid::Uuid;

use crate::realtime::SharedBus;

/// The bus topics that end a member's connections.
const REVOKING: &[&str] = &["member.deactivated", "member.role_changed"];
/// The bus topic that ends the connections of an API key (`apiKeyId` in the payload).
pub const API_KEY_REVOKED: &str = "api_key.revoked";

/// How an API key's connections are registered: beside user ids, never equal to one.
pub fn api_key_holder(key_id: &str) -> String {
    format!("api-key:{key_id}")
}

#[derive(Default)]
pub struct Revocations {
    projects: Arc<Mutex<Projects>>,
}

#[derive(Default)]
struct Projects {
    watching: HashMap<Uuid, ProjectWatch>,
    /// Tells a project's watcher from an earlier one that ended.
    generations: u64,
}

struct ProjectWatch {
    generation: u64,
    task: AbortHandle,
    /// Connections registered for this project.
    connections: usize,
    /// By user id (as the bus events spell it): the token that ends the member's
    /// connections, and how many hold it. A revocation cancels the token and removes it.
    members: HashMap<String, (CancellationToken, usize)>,
}

/// A connection's registration; ends the registration when dropped.
pub struct Revocation {
    projects: Arc<Mutex<Projects>>,
    project_id: Uuid,
    generation: u64,
    user_id: String,
    token: CancellationToken,
}

impl Revocation {
    /// Completes when the member's access changes.
    pub fn revoked(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }
}

impl Revocations {
    /// Registers a connection of `user_id` in `project_id`; `None` if the bus cannot be
    /// followed (the connection then lives on unwatched, as it would without a bus).
    pub async fn watch(
        &self,
        bus: &SharedBus,
        project_id: Uuid,
        user_id: String,
    ) -> Option<Revocation> {
        if let Some(registered) = self.join(project_id, &user_id) {
            return Some(registered);
        }
        // Subscribed before the caller acknowledges the connection, so that no change made
        // after the acknowledgement goes unseen.
        let events = bus.subscribe(project_id).await.ok()?;
        let mut projects = self.projects.lock().expect("revocations");
        if !projects.watching.contains_key(&project_id) {
            projects.generations += 1;
            let generation = projects.generations;
            let registry = Arc::downgrade(&self.projects);
            let task = tokio::spawn(follow(registry, project_id, generation, events));
            projects.watching.insert(
                project_id,
                ProjectWatch {
                    generation,
                    task: task.abort_handle(),
                    connections: 0,
                    members: HashMap::new(),
                },
            );
        }
        // (Another connection started the watcher meanwhile: the events are dropped.)
        Some(register(&self.projects, &mut projects, project_id, user_id))
    }

    fn join(&self, project_id: Uuid, user_id: &str) -> Option<Revocation> {
        let mut projects = self.projects.lock().expect("revocations");
        projects.watching.contains_key(&project_id).then(|| {
            register(
                &self.projects,
                &mut projects,
                project_id,
                user_id.to_owned(),
            )
        })
    }

    #[cfg(test)]
    fn watched(&self) -> usize {
        self.projects.lock().unwrap().watching.len()
    }
}

fn register(
    registry: &Arc<Mutex<Projects>>,
    projects: &mut Projects,
    project_id: Uuid,
    user_id: String,
) -> Revocation {
    let watch = projects
        .watching
        .get_mut(&project_id)
        .expect("the project is watched");
    watch.connections += 1;
    let (token, holders) = watch
        .members
        .entry(user_id.clone())
        .or_insert_with(|| (CancellationToken::new(), 0));
    *holders += 1;
    Revocation {
        projects: registry.clone(),
        project_id,
        generation: watch.generation,
        user_id,
        token: token.clone(),
    }
}

impl Drop for Revocation {
    fn drop(&mut self) {
        let Ok(mut projects) = self.projects.lock() else {
            return;
        };
        let Some(watch) = projects
            .watching
            .get_mut(&self.project_id)
            .filter(|w| w.generation == self.generation)
        else {
            return; // that watcher ended; a newer one does not count this connection
        };
        // A cancelled token was removed when it was cancelled (the user may hold a new one).
        if !self.token.is_cancelled()
            && let Some((_, holders)) = watch.members.get_mut(&self.user_id)
        {
            *holders -= 1;
            if *holders == 0 {
                watch.members.remove(&self.user_id);
            }
        }
        watch.connections -= 1;
        if watch.connections == 0 {
            // Nobody left to watch for: stop reading the project's bus.
            watch.task.abort();
            projects.watching.remove(&self.project_id);
        }
    }
}

/// The watcher: cancels a member's connections on the events that revoke them.
async fn follow(
    registry: Weak<Mutex<Projects>>,
    project_id: Uuid,
    generation: u64,
    mut events: futures::stream::BoxStream<'static, Arc<crate::realtime::BusEvent>>,
) {
    while let Some(event) = events.next().await {
        let holder = if REVOKING.contains(&event.topic.as_str()) {
            event.payload["userId"].as_str().map(str::to_owned)
        } else if event.topic == API_KEY_REVOKED {
            event.payload["apiKeyId"].as_str().map(api_key_holder)
        } else {
            None
        };
        let Some(user_id) = holder.as_deref() else {
            continue;
        };
        let Some(registry) = registry.upgrade() else {
            return;
        };
        let mut projects = registry.lock().expect("revocations");
        if let Some(watch) = projects
            .watching
            .get_mut(&project_id)
            .filter(|w| w.generation == generation)
            && let Some((token, _)) = watch.members.remove(user_id)
        {
            token.cancel();
        }
    }
    // The bus ended: forget this watcher, so that later connections start another.
    if let Some(registry) = registry.upgrade() {
        let mut projects = registry.lock().expect("revocations");
        if projects
            .watching
            .get(&project_id)
            .is_some_and(|w| w.generation == generation)
        {
            projects.watching.remove(&project_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::realtime::{BusEvent, InProcessBus};

    fn event(project_id: Uuid, topic: &str, user_id: &str) -> BusEvent {
        BusEvent {
            project_id,
            topic: topic.into(),
            payload: json!({ "userId": user_id }),
        }
    }

    async fn revoked(r: &Revocation) -> bool {
        tokio::time::timeout(Duration::from_millis(200), r.revoked())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn only_the_members_connections_end_and_the_watcher_stops_with_the_last() {
        let bus: SharedBus = Arc::new(InProcessBus::new());
        let revocations = Revocations::default();
        let (project, other_project) = (Uuid::new_v4(), Uuid::new_v4());
        let a1 = revocations.watch(&bus, project, "a".into()).await.unwrap();
        let a2 = revocations.watch(&bus, project, "a".into()).await.unwrap();
        let b = revocations.watch(&bus, project, "b".into()).await.unwrap();
        let elsewhere = revocations
            .watch(&bus, other_project, "a".into())
            .await
            .unwrap();
        assert_eq!(revocations.watched(), 2);

        for e in [
            event(project, "chat.event", "a"),
            event(other_project, "member.added", "a"),
        ] {
            bus.publish(e).await.unwrap();
        }
        assert!(!revoked(&a1).await);

        bus.publish(event(project, "member.role_changed", "a"))
            .await
            .unwrap();
        assert!(revoked(&a1).await);
        assert!(revoked(&a2).await);
        assert!(!revoked(&b).await);
        assert!(!revoked(&elsewhere).await);

        // The member reconnects with its new role: a fresh token.
        let a3 = revocations.watch(&bus, project, "a".into()).await.unwrap();
        assert!(!revoked(&a3).await);
        drop((a1, a2));
        bus.publish(event(project, "member.deactivated", "a"))
            .await
            .unwrap();
        assert!(revoked(&a3).await);

        drop((a3, b));
        assert_eq!(revocations.watched(), 1);
        drop(elsewhere);
        assert_eq!(revocations.watched(), 0);
    }
}
