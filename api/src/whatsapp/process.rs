//! Turns a stored webhook delivery into changes: inbound messages, statuses, template
//! updates. One transaction per delivery; each part is idempotent, so a delivery that is
//! processed twice (a retry, a duplicate from Meta) changes nothing the second time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use parley_entity::{contact, webhook_event, whatsapp_account};
use sea_orm::{EntityTrait, TransactionTrait};
use serde_json::Value;
use uuid::Uuid;

use super::{
    accounts,
    inbox::{MALFORMED, PROCESSED, UNROUTABLE},
    payload::{
        self, InboundMessage, MessagesValue, Notification, TemplateCategoryUpdate,
        TemplateStatusUpdate,
    },
};
use crate::{
    billing,
    chat::{
        self,
        events::{ChatEvent, NewEvent},
    },
    contacts::{
        journey::{self, Actor, Entry},
        messaging::{self, Inbound, Sender},
        service::phone_rules,
    },
    errors::AppResult,
    messages::store,
    state::AppState,
    templates,
};

/// What processing a delivery came to.
pub struct Outcome {
    pub state: &'static str,
    /// What could not be applied, and why (kept on the delivery, shown to owners).
    pub notes: Vec<String>,
    pub project_id: Option<Uuid>,
    /// Chat events recorded, to publish once committed.
    pub chat_events: Vec<ChatEvent>,
    /// Chat events to record at the end of the transaction: (project, event, time).
    unrecorded: Vec<(Uuid, NewEvent, DateTime<Utc>)>,
    /// The delivery's state was written in the processing transaction.
    pub settled: bool,
    /// The assistant's replies to send once committed: (project, contact, text).
    pub replies: Vec<(Uuid, Uuid, String)>,
    pub templates: Vec<parley_entity::template::Model>,
    /// Wallet changes (refunds of failed messages), to announce once committed.
    pub wallet_entries: Vec<parley_entity::wallet_entry::Model>,
    /// Campaigns whose recipients changed, to announce once committed.
    pub campaigns: Vec<Uuid>,
}

pub async fn process(state: &AppState, event: &webhook_event::Model) -> AppResult<Outcome> {
    let mut outcome = Outcome {
        state: PROCESSED,
        notes: Vec::new(),
        project_id: event.project_id,
        chat_events: Vec::new(),
        unrecorded: Vec::new(),
        settled: false,
        replies: Vec::new(),
        templates: Vec::new(),
        wallet_entries: Vec::new(),
        campaigns: Vec::new(),
    };
    let notification: Notification = match serde_json::from_str(&event.body) {
        Ok(n) => n,
        Err(err) => {
            outcome.state = MALFORMED;
            outcome.notes.push(format!("not a webhook body: {err}"));
            return Ok(outcome);
        }
    };
    if notification.object != "whatsapp_business_account" {
        outcome.state = MALFORMED;
        outcome.notes.push(format!(
            "object {:?} is not WhatsApp's",
            notification.object
        ));
        return Ok(outcome);
    }
    let (phone_ids, waba_ids) = meta_ids(&notification);
    let txn = state.db.begin().await?;
    let known = accounts::by_meta_ids(&txn, &phone_ids, &waba_ids).await?;
    let by_phone: HashMap<&str, &whatsapp_account::Model> = known
        .iter()
        .map(|a| (a.phone_number_id.as_str(), a))
        .collect();
    let by_waba: HashMap<&str, &whatsapp_account::Model> =
        known.iter().map(|a| (a.waba_id.as_str(), a)).collect();
    let mut routed = false;
    for entry in &notification.entry {
        for change in &entry.changes {
            let applied = match change.field.as_str() {
                "messages" => {
                    apply_messages(&txn, state, &change.value, &by_phone, &mut outcome).await?
                }
                "message_template_status_update" | "template_category_update" => {
                    match by_waba.get(entry.id.as_str()) {
                        Some(account) => {
                            outcome.project_id = Some(account.project_id);
                            apply_template(&txn, account, entry.time, change, &mut outcome).await?;
                            true
                        }
                        None => {
                            outcome
                                .notes
                                .push(format!("no project has the WhatsApp account {}", entry.id));
                            false
                        }
                    }
                }
                other => {
                    outcome
                        .notes
                        .push(format!("the {other:?} field is not handled"));
                    true
                }
            };
            routed |= applied;
        }
    }
    if !routed {
        outcome.state = UNROUTABLE;
    }
    // Numbered last (see `chat::events::record`), with the delivery settled in the same
    // transaction: the project's event counter is locked from here to the commit.
    let unrecorded = std::mem::take(&mut outcome.unrecorded);
    outcome.chat_events = record_in_order(&txn, unrecorded).await?;
    super::worker::settle(&txn, event.id, &outcome).await?;
    outcome.settled = true;
    txn.commit().await?;
    Ok(outcome)
}

/// Records the events of each project, numbered in the order they happened.
async fn record_in_order(
    txn: &sea_orm::DatabaseTransaction,
    unrecorded: Vec<(Uuid, NewEvent, DateTime<Utc>)>,
) -> AppResult<Vec<ChatEvent>> {
    let mut projects: Vec<Uuid> = Vec::new();
    let mut by_project: HashMap<Uuid, Vec<(NewEvent, DateTime<Utc>)>> = HashMap::new();
    for (project_id, event, at) in unrecorded {
        if !by_project.contains_key(&project_id) {
            projects.push(project_id);
        }
        by_project.entry(project_id).or_default().push((event, at));
    }
    let mut recorded = Vec::new();
    for project_id in projects {
        let events = by_project.remove(&project_id).unwrap_or_default();
        recorded.extend(chat::events::record_each(txn, project_id, events).await?);
    }
    Ok(recorded)
}

pub(crate) fn meta_ids(notification: &Notification) -> (Vec<String>, Vec<String>) {
    let mut phones = Vec::new();
    let mut wabas = Vec::new();
    for entry in &notification.entry {
        wabas.push(entry.id.clone());
        for change in &entry.changes {
            if let Some(id) = change.value["metadata"]["phone_number_id"].as_str() {
                phones.push(id.to_owned());
            }
        }
    }
    (phones, wabas)
}

async fn apply_messages(
    txn: &sea_orm::DatabaseTransaction,
    state: &AppState,
    value: &Value,
    by_phone: &HashMap<&str, &whatsapp_account::Model>,
    outcome: &mut Outcome,
) -> AppResult<bool> {
    let value: MessagesValue = match serde_json::from_value(value.clone()) {
        Ok(v) => v,
        Err(err) => {
            outcome
                .notes
                .push(format!("a messages change is malformed: {err}"));
            return Ok(false);
        }
    };
    let Some(account) = by_phone.get(value.metadata.phone_number_id.as_str()) else {
        outcome.notes.push(format!(
            "no project has the phone number id {}",
            value.metadata.phone_number_id
        ));
        return Ok(false);
    };
    let project_id = account.project_id;
    outcome.project_id = Some(project_id);
    let rules = phone_rules(txn, state, project_id).await?;
    for raw in &value.messages {
        let parsed: InboundMessage = match serde_json::from_value(raw.clone()) {
            Ok(m) => m,
            Err(err) => {
                outcome
                    .notes
                    .push(format!("an inbound message is malformed: {err}"));
                continue;
            }
        };
        let profile = value.contacts.iter().find(|c| {
            c.wa_id.is_some() && c.wa_id == parsed.from
                || c.user_id.is_some() && c.user_id == parsed.from_user_id
        });
        let sender = Sender {
            wa_id: parsed.from.as_deref(),
            bsuid: parsed
                .from_user_id
                .as_deref()
                .or_else(|| profile.and_then(|c| c.user_id.as_deref())),
            profile_name: profile
                .and_then(|c| c.profile.as_ref())
                .and_then(|p| p.name.as_deref()),
        };
        let Some(contact) =
            messaging::sender_contact(txn, project_id, &rules, &sender, parsed.timestamp).await?
        else {
            outcome
                .notes
                .push(format!("message {} names no sender", parsed.id));
            continue;
        };
        let Some(stored) = store::store_inbound(txn, project_id, contact.id, &parsed, raw).await?
        else {
            continue;
        };
        let text = payload::text_of(raw);
        let inbound = Inbound {
            at: parsed.timestamp,
            text,
            referral: parsed.referral.as_ref(),
        };
        let new_conversation = !chat::service::is_live(contact.last_active_at, parsed.timestamp);
        let contact = messaging::apply_inbound(txn, contact, &inbound).await?;
        journey::record_at(
            txn,
            project_id,
            Actor::Contact,
            vec![Entry::new(
                contact.id,
                "message.received",
                serde_json::json!({ "messageId": stored.id, "type": stored.kind }),
            )],
            parsed.timestamp,
        )
        .await?;
        outcome.campaigns.extend(
            crate::campaigns::tracking::on_inbound(txn, project_id, contact.id, parsed.timestamp)
                .await?,
        );
        let now = state.settings.clock.now();
        let unrecorded = chat::service::on_message(txn, &contact, &stored, true, now).await?;
        // A state change here is the chat reopening: the assistant acts on the new state.
        let mut contact = contact;
        if unrecorded
            .iter()
            .any(|e| e.topic == chat::service::STATE_CHANGED)
        {
            contact.state = chat::service::ASSISTANT.to_owned();
        }
        outcome
            .unrecorded
            .extend(unrecorded.into_iter().map(|e| (project_id, e, now)));
        let (handed_over, reply) = chat::assistant::on_inbound(
            txn,
            &contact,
            text,
            parsed.timestamp,
            new_conversation,
            now,
        )
        .await?;
        outcome
            .unrecorded
            .extend(handed_over.into_iter().map(|e| (project_id, e, now)));
        if let Some(reply) = reply {
            outcome.replies.push((project_id, contact.id, reply));
        }
    }
    for status in &value.statuses {
        if let Some(changed) = store::apply_status(txn, project_id, status).await?
            && let Some(contact) = contact::Entity::find_by_id(changed.contact_id)
                .one(txn)
                .await?
        {
            let now = state.settings.clock.now();
            billing::charges::record_meta_pricing(txn, &changed).await?;
            outcome
                .campaigns
                .extend(crate::campaigns::tracking::on_message_status(txn, &changed).await?);
            if changed.status == store::FAILED {
                outcome
                    .wallet_entries
                    .extend(billing::charges::refund_failed(txn, changed.id, now).await?);
            }
            let unrecorded = chat::service::on_message(txn, &contact, &changed, false, now).await?;
            outcome
                .unrecorded
                .extend(unrecorded.into_iter().map(|e| (project_id, e, now)));
        }
    }
    Ok(true)
}

async fn apply_template(
    txn: &sea_orm::DatabaseTransaction,
    account: &whatsapp_account::Model,
    time: Option<i64>,
    change: &payload::Change,
    outcome: &mut Outcome,
) -> AppResult<()> {
    // Out of range (see `payload::MAX_TIMESTAMP`) counts as no time at all.
    let at = time
        .filter(|t| (0..=crate::whatsapp::payload::MAX_TIMESTAMP).contains(t))
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0));
    let result = if change.field == "message_template_status_update" {
        match serde_json::from_value::<TemplateStatusUpdate>(change.value.clone()) {
            Ok(update) => {
                templates::service::apply_status_update(txn, account.project_id, &update, at)
                    .await?
            }
            Err(err) => Err(format!("a template status update is malformed: {err}")),
        }
    } else {
        match serde_json::from_value::<TemplateCategoryUpdate>(change.value.clone()) {
            Ok(update) => {
                templates::service::apply_category_update(txn, account.project_id, &update, at)
                    .await?
            }
            Err(err) => Err(format!("a template category update is malformed: {err}")),
        }
    };
    match result {
        Ok(Some(template)) => outcome.templates.push(template),
        Ok(None) => {}
        Err(note) => outcome.notes.push(note),
    }
    Ok(())
}
