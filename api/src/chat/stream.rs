//! A subscriber's stream of chat events: what it missed since its cursor (from the
//! database), then live events from the bus, in sequence order, with no gap and no
//! duplicate, and only what the subscriber's role may see.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, LazyLock, Mutex},
};

use futures::{Stream, StreamExt};
use uuid::Uuid;

use super::events::{self, BUS_TOPIC, ChatEvent};
use crate::{
    auth::{Role, Scope},
    errors::{AppError, AppResult},
    state::AppState,
};

/// Events read from the database per query while catching up.
const CATCH_UP_PAGE: u64 = 500;

/// Recently decoded events, shared by the subscribers of this process: the first to see
/// an event decodes it, the others reuse it.
struct Decoded {
    events: HashMap<(Uuid, i64), Arc<ChatEvent>>,
    order: VecDeque<(Uuid, i64)>,
}

const DECODED_KEPT: usize = 1024;

static DECODED: LazyLock<Mutex<Decoded>> = LazyLock::new(|| {
    Mutex::new(Decoded {
        events: HashMap::new(),
        order: VecDeque::new(),
    })
});

fn decode(project_id: Uuid, payload: &serde_json::Value) -> Option<Arc<ChatEvent>> {
    let seq = payload["seq"].as_i64()?;
    let key = (project_id, seq);
    if let Some(found) = DECODED.lock().ok()?.events.get(&key) {
        return Some(found.clone());
    }
    let event = Arc::new(ChatEvent::from_bus(payload)?);
    let mut cache = DECODED.lock().ok()?;
    if cache.events.insert(key, event.clone()).is_none() {
        cache.order.push_back(key);
        if cache.order.len() > DECODED_KEPT
            && let Some(old) = cache.order.pop_front()
        {
            cache.events.remove(&old);
        }
    }
    Some(event)
}

/// Who is watching: agents do not see other agents' intervened chats.
#[derive(Clone, Copy, Debug)]
pub struct Viewer {
    pub role: Role,
    pub user_id: Option<Uuid>,
}

impl Viewer {
    pub fn of(scope: &Scope) -> Self {
        Self {
            role: scope.role,
            user_id: scope.user_id,
        }
    }

    pub fn may_see(&self, event: &ChatEvent) -> bool {
        match (self.role, event.agent_id) {
            (Role::Agent, Some(agent)) => Some(agent) == self.user_id,
            _ => true,
        }
    }
}

/// The next page of events after `*last` that `viewer` may see, and whether another page
/// may follow; `*last` moves past the whole page (seen or not).
async fn catch_up_page(
    db: &sea_orm::DatabaseConnection,
    project_id: Uuid,
    viewer: Viewer,
    last: &mut i64,
) -> AppResult<(Vec<Arc<ChatEvent>>, bool)> {
    let page = events::since(db, project_id, *last, CATCH_UP_PAGE).await?;
    let more = page.len() as u64 == CATCH_UP_PAGE;
    if let Some(newest) = page.last() {
        *last = newest.seq;
    }
    let visible = page
        .into_iter()
        .filter(|event| viewer.may_see(event))
        .map(Arc::new)
        .collect();
    Ok((visible, more))
}

/// The project's chat events after `after` (or from now, without a cursor).
pub async fn subscribe(
    state: &AppState,
    project_id: Uuid,
    viewer: Viewer,
    after: Option<i64>,
) -> AppResult<impl Stream<Item = Arc<ChatEvent>> + use<>> {
    // Subscribe before reading the database: whatever commits after the read is on the
    // bus already.
    let mut live = state
        .bus
        .subscribe(project_id)
        .await
        .map_err(AppError::Unavailable)?;
    let db = state.db.clone();
    let mut last = match after {
        Some(seq) => seq.max(0),
        None => events::last_seq(&db, project_id).await?,
    };
    Ok(async_stream::stream! {
        loop {
            match catch_up_page(&db, project_id, viewer, &mut last).await {
                Ok((page, more)) => {
                    for event in page {
                        yield event;
                    }
                    if !more {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "chat catch-up failed");
                    return;
                }
            }
        }
        while let Some(bus_event) = live.next().await {
            if bus_event.topic == crate::realtime::RESUBSCRIBED {
                // The bus was away (Redis restarted): events committed meanwhile were
                // published to no one. Read them now rather than at the next event.
                loop {
                    match catch_up_page(&db, project_id, viewer, &mut last).await {
                        Ok((page, more)) => {
                            for event in page {
                                yield event;
                            }
                            if !more {
                                break;
                            }
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "chat catch-up after the bus returned failed");
                            break;
                        }
                    }
                }
                continue;
            }
            if bus_event.topic != BUS_TOPIC {
                continue;
            }
            let Some(event) = decode(project_id, &bus_event.payload) else {
                continue;
            };
            if event.seq <= last {
                continue;
            }
            if event.seq > last + 1 {
                // Published out of order by another node, or dropped: numbers commit in
                // order, so the missing ones are in the database.
                let missing = (event.seq - last - 1) as u64;
                match events::since(&db, project_id, last, missing).await {
                    Ok(found) => {
                        for gap in found.into_iter().filter(|e| e.seq < event.seq) {
                            if viewer.may_see(&gap) {
                                yield Arc::new(gap);
                            }
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "chat gap could not be filled"),
                }
            }
            last = event.seq;
            if viewer.may_see(&event) {
                yield event;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::Value;

    fn event(agent: Option<Uuid>) -> ChatEvent {
        ChatEvent {
            project_id: Uuid::nil(),
            seq: 1,
            contact_id: None,
            topic: "message.created".into(),
            agent_id: agent,
            payload: Value::Null,
            created_at: Utc::now(),
            message: None,
        }
    }

    #[test]
    fn agents_see_only_their_own_intervened_chats() {
        let me = Uuid::new_v4();
        let other = Uuid::new_v4();
        let agent = Viewer {
            role: Role::Agent,
            user_id: Some(me),
        };
        assert!(agent.may_see(&event(None)));
        assert!(agent.may_see(&event(Some(me))));
        assert!(!agent.may_see(&event(Some(other))));
        let manager = Viewer {
            role: Role::Manager,
            user_id: Some(me),
        };
        assert!(manager.may_see(&event(Some(other))));
    }
}
