//! Processes the webhook inbox: due deliveries in order of arrival, claimed with a lease
//! so that several API nodes share the work and a crash mid-way only delays it.
//!
//! Deliveries are processed several at a time, in lanes: the deliveries about one
//! customer (one business number and one WhatsApp user) go to the same lane and keep
//! their order there; a delivery about several customers waits until the lanes before it
//! are done and goes alone. On the embedded database (one writer) there is one lane.

use std::{
    collections::{BTreeSet, HashMap},
    hash::{DefaultHasher, Hash, Hasher},
    time::Duration,
};

use chrono::Utc;
use futures::future::join_all;
use parley_entity::webhook_event;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
    sea_query::{Expr, Query},
};
use serde_json::Value;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    inbox::{FAILED, PENDING},
    process::{self, Outcome},
};
use crate::{chat, events, state::AppState};

/// How long a claimed delivery is hidden from other workers.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);
/// Attempts before a delivery that keeps failing is set aside as FAILED.
const MAX_ATTEMPTS: i32 = 8;
const BATCH: u64 = 100;
/// Deliveries processed at once on PostgreSQL.
const LANES: usize = 8;
const IDLE_POLL: Duration = Duration::from_secs(1);

pub async fn run(state: AppState, stop: CancellationToken) {
    loop {
        let worked = match drain(&state).await {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(error = %err, "the webhook inbox could not be read");
                0
            }
        };
        if worked > 0 {
            continue;
        }
        let wait = next_due_in(&state)
            .await
            .unwrap_or(IDLE_POLL)
            .min(IDLE_POLL);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = state.whatsapp.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Processes what is due now; returns how many deliveries it handled.
pub async fn drain(state: &AppState) -> anyhow::Result<usize> {
    let due = webhook_event::Entity::find()
        .filter(webhook_event::Column::State.eq(PENDING))
        .filter(webhook_event::Column::AvailableAt.lte(Utc::now()))
        .order_by_asc(webhook_event::Column::AvailableAt)
        .order_by_asc(webhook_event::Column::Id)
        .limit(BATCH)
        .all(&state.db)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut claimed = claim(state, &due).await?;
    let lane_count = match state.db.get_database_backend() {
        DbBackend::Postgres => LANES,
        _ => 1,
    };
    let mut lanes: Vec<Vec<webhook_event::Model>> = vec![Vec::new(); lane_count];
    let mut handled = 0;
    // In the order of arrival, as claimed (the attempt counted).
    for event in due.iter().filter_map(|e| claimed.remove(&e.id)) {
        handled += 1;
        match customers(&event) {
            Customers::One(key) => lanes[lane_of(&key, lane_count)].push(event),
            Customers::Several => {
                run_lanes(
                    state,
                    std::mem::replace(&mut lanes, vec![Vec::new(); lane_count]),
                )
                .await;
                handle_logged(state, event).await;
            }
        }
    }
    run_lanes(state, lanes).await;
    Ok(handled)
}

async fn run_lanes(state: &AppState, lanes: Vec<Vec<webhook_event::Model>>) {
    join_all(
        lanes
            .into_iter()
            .filter(|lane| !lane.is_empty())
            .map(|lane| async move {
                for event in lane {
                    handle_logged(state, event).await;
                }
            }),
    )
    .await;
}

async fn handle_logged(state: &AppState, event: webhook_event::Model) {
    let id = event.id;
    if let Err(err) = handle(state, event).await {
        // The lease runs out and the delivery is tried again.
        tracing::warn!(event_id = %id, error = %err, "a webhook delivery could not be settled");
    }
}

/// Whom a delivery is about, for ordering.
#[derive(Debug, PartialEq)]
enum Customers {
    /// One customer, one business account's template updates, or nothing readable: a
    /// lane key.
    One(String),
    Several,
}

fn customers(event: &webhook_event::Model) -> Customers {
    let Ok(body) = serde_json::from_str::<Value>(&event.body) else {
        return Customers::One(event.id.to_string());
    };
    let mut keys = BTreeSet::new();
    for entry in body["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let value = &change["value"];
            if change["field"] != "messages" {
                // Template updates: in order per business account.
                keys.insert(format!("waba/{}", entry["id"]));
                continue;
            }
            let phone = value["metadata"]["phone_number_id"].as_str().unwrap_or("");
            let users = value["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|m| &m["from"])
                .chain(
                    value["statuses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| &s["recipient_id"]),
                )
                .chain(
                    value["contacts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| &c["wa_id"]),
                );
            for user in users.filter_map(Value::as_str) {
                keys.insert(format!("{phone}/{user}"));
            }
        }
    }
    let mut keys = keys.into_iter();
    match (keys.next(), keys.next()) {
        (Some(key), None) => Customers::One(key),
        (None, _) => Customers::One(event.id.to_string()),
        (Some(_), Some(_)) => Customers::Several,
    }
}

fn lane_of(key: &str, lanes: usize) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

async fn next_due_in(state: &AppState) -> Option<Duration> {
    let next = webhook_event::Entity::find()
        .filter(webhook_event::Column::State.eq(PENDING))
        .order_by_asc(webhook_event::Column::AvailableAt)
        .one(&state.db)
        .await
        .ok()??;
    (next.available_at - Utc::now()).to_std().ok()
}

/// Claims the deliveries still due; returns those this worker got, as claimed.
async fn claim(
    state: &AppState,
    due: &[webhook_event::Model],
) -> anyhow::Result<HashMap<Uuid, webhook_event::Model>> {
    let now = Utc::now();
    let backend = state.db.get_database_backend();
    // (Sea-ORM's `exec_with_returning` refuses SQLite; both speak `RETURNING`.)
    let update = Query::update()
        .table(webhook_event::Entity)
        .value(webhook_event::Column::AvailableAt, now + LEASE)
        .value(
            webhook_event::Column::Attempts,
            Expr::col(webhook_event::Column::Attempts).add(1),
        )
        .and_where(webhook_event::Column::Id.is_in(due.iter().map(|e| e.id)))
        .and_where(webhook_event::Column::State.eq(PENDING))
        .and_where(webhook_event::Column::AvailableAt.lte(now))
        .returning(
            Query::returning()
                .columns([webhook_event::Column::Id, webhook_event::Column::Attempts]),
        )
        .to_owned();
    let mut claimed = HashMap::new();
    let txn = state.db.begin().await?;
    if backend == DbBackend::Postgres {
        // A claim lost in a database crash only makes the delivery due again, and the
        // processing's own commit flushes it: the claim need not wait for the disk.
        txn.execute_unprepared("SET LOCAL synchronous_commit TO OFF")
            .await?;
    }
    for row in txn.query_all(backend.build(&update)).await? {
        let id: Uuid = row.try_get("", "id")?;
        let attempts: i32 = row.try_get("", "attempts")?;
        claimed.insert(id, attempts);
    }
    txn.commit().await?;
    Ok(due
        .iter()
        .filter_map(|event| {
            let attempts = *claimed.get(&event.id)?;
            let mut event = event.clone();
            event.attempts = attempts;
            event.available_at = now + LEASE;
            Some((event.id, event))
        })
        .collect())
}

async fn handle(state: &AppState, event: webhook_event::Model) -> anyhow::Result<()> {
    match process::process(state, &event).await {
        Ok(outcome) => {
            finish(state, &event, &outcome).await?;
            metrics::counter!("parley_webhook_events_total", "outcome" => outcome.state)
                .increment(1);
            publish(state, outcome).await;
        }
        Err(err) => {
            let attempts = event.attempts;
            tracing::warn!(event_id = %event.id, attempts, error = %err, "a webhook delivery failed");
            let (next_state, retry_in) = if attempts >= MAX_ATTEMPTS {
                (FAILED, chrono::Duration::zero())
            } else {
                (PENDING, chrono::Duration::seconds(1 << attempts.min(10)))
            };
            webhook_event::Entity::update_many()
                .col_expr(webhook_event::Column::State, Expr::value(next_state))
                .col_expr(webhook_event::Column::Error, Expr::value(err.to_string()))
                .col_expr(
                    webhook_event::Column::AvailableAt,
                    Expr::value(Utc::now() + retry_in),
                )
                .filter(webhook_event::Column::Id.eq(event.id))
                .exec(&state.db)
                .await?;
        }
    }
    Ok(())
}

async fn finish(
    state: &AppState,
    event: &webhook_event::Model,
    outcome: &Outcome,
) -> anyhow::Result<()> {
    if !outcome.notes.is_empty() {
        let notes = outcome.notes.join("; ");
        tracing::info!(event_id = %event.id, state = outcome.state, notes, "webhook delivery noted");
    }
    if !outcome.settled {
        settle(&state.db, event.id, outcome).await?;
    }
    Ok(())
}

/// Writes what processing came to on the delivery.
pub(super) async fn settle<C: ConnectionTrait>(
    conn: &C,
    event_id: Uuid,
    outcome: &Outcome,
) -> Result<(), sea_orm::DbErr> {
    let notes = (!outcome.notes.is_empty()).then(|| outcome.notes.join("; "));
    webhook_event::Entity::update_many()
        .col_expr(webhook_event::Column::State, Expr::value(outcome.state))
        .col_expr(webhook_event::Column::Error, Expr::value(notes))
        .col_expr(
            webhook_event::Column::ProjectId,
            Expr::value(outcome.project_id),
        )
        .col_expr(webhook_event::Column::ProcessedAt, Expr::value(Utc::now()))
        .filter(webhook_event::Column::Id.eq(event_id))
        .exec(conn)
        .await?;
    Ok(())
}

async fn publish(state: &AppState, outcome: Outcome) {
    chat::events::publish(state, outcome.chat_events).await;
    crate::billing::alerts::publish(state, &outcome.wallet_entries).await;
    let mut campaigns = outcome.campaigns.clone();
    campaigns.sort();
    campaigns.dedup();
    for campaign_id in campaigns {
        crate::campaigns::progress::publish(state, campaign_id).await;
    }
    for template in outcome.templates {
        events::publish(
            state,
            template.project_id,
            "template.updated",
            json!({ "templateId": template.id, "status": template.status }),
        )
        .await;
    }
    for (project_id, contact_id, text) in outcome.replies {
        let state = state.clone();
        tokio::spawn(async move {
            chat::assistant::reply(&state, project_id, contact_id, text).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(body: &str) -> webhook_event::Model {
        let now = Utc::now();
        webhook_event::Model {
            id: Uuid::now_v7(),
            source: "META".into(),
            project_id: None,
            body: body.into(),
            state: PENDING.into(),
            attempts: 0,
            error: None,
            received_at: now,
            available_at: now,
            processed_at: None,
        }
    }

    fn fixture(name: &str) -> webhook_event::Model {
        let path = format!(
            "{}/../../shared/fixtures/meta-webhooks/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        delivery(&std::fs::read_to_string(path).unwrap())
    }

    #[test]
    fn a_message_and_the_statuses_of_one_customer_share_a_lane() {
        let key = |name| match customers(&fixture(name)) {
            Customers::One(key) => key,
            Customers::Several => panic!("{name} is about one customer"),
        };
        let asha = "106540352242922/919812345678";
        for name in [
            "inbound-text.json",
            "inbound-button-reply.json",
            "status-sent-cbp.json",
            "status-read.json",
        ] {
            assert_eq!(key(name), asha, "{name}");
        }
        assert_eq!(key("inbound-stop.json"), key("status-failed-131049.json"));
        assert_ne!(key("inbound-stop.json"), asha);
    }

    #[test]
    fn a_delivery_about_two_customers_goes_alone() {
        let status = |id: &str, to: &str| {
            format!(
                r#"{{"id":"{id}","status":"sent","timestamp":"1763990520","recipient_id":"{to}"}}"#
            )
        };
        let body = format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages",
            "value":{{"metadata":{{"phone_number_id":"7"}},"statuses":[{},{}]}}}}]}}]}}"#,
            status("wamid.a", "919812345678"),
            status("wamid.b", "14155550123")
        );
        assert_eq!(customers(&delivery(&body)), Customers::Several);
    }

    #[test]
    fn template_updates_keep_their_order_per_business_account() {
        assert_eq!(
            customers(&fixture("template-status-approved.json")),
            customers(&fixture("template-status-rejected.json"))
        );
        let unreadable = delivery("not json");
        assert_eq!(
            customers(&unreadable),
            Customers::One(unreadable.id.to_string())
        );
    }

    #[test]
    fn lanes_are_stable_and_in_range() {
        for lanes in [1, 3, LANES] {
            let lane = lane_of("106540352242922/919812345678", lanes);
            assert!(lane < lanes);
            assert_eq!(lane, lane_of("106540352242922/919812345678", lanes));
        }
    }
}
