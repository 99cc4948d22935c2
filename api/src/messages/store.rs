//! Messages as the webhook reports them: inbound messages stored once by Meta's id, and
//! statuses kept once each, from which a message's current status is derived, so that
//! duplicates and any order of delivery give the same result.

use chrono::{DateTime, Utc};
use parley_entity::{message, message_status};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::OnConflict,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    errors::AppResult,
    events,
    whatsapp::payload::{InboundMessage, Status},
};

pub const INBOUND: &str = "INBOUND";
pub const OUTBOUND: &str = "OUTBOUND";

pub const RECEIVED: &str = "RECEIVED";
pub const PENDING: &str = "PENDING";
pub const ACCEPTED: &str = "ACCEPTED";
pub const SENT: &str = "SENT";
pub const DELIVERED: &str = "DELIVERED";
pub const READ: &str = "READ";
pub const FAILED: &str = "FAILED";

/// Stores an inbound message; `None` when Meta's id was seen before (a duplicate).
pub async fn store_inbound<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    contact_id: Uuid,
    parsed: &InboundMessage,
    raw: &Value,
) -> AppResult<Option<message::Model>> {
    let now = Utc::now();
    let id = id_at(parsed.timestamp, &parsed.id);
    let row = message::ActiveModel {
        id: Set(id),
        project_id: Set(project_id),
        contact_id: Set(contact_id),
        direction: Set(INBOUND.into()),
        kind: Set(parsed.kind.chars().take(24).collect()),
        content: Set(raw.to_string()),
        wa_message_id: Set(Some(parsed.id.clone())),
        status: Set(RECEIVED.into()),
        error_code: Set(None),
        error_title: Set(None),
        template_id: Set(None),
        context_wa_message_id: Set(parsed.context.as_ref().and_then(|c| c.id.clone())),
        reply_to_message_id: Set(None),
        referral: Set(parsed.referral.as_ref().map(Value::to_string)),
        pricing: Set(None),
        sent_by: Set(None),
        occurred_at: Set(parsed.timestamp),
        sent_at: Set(None),
        delivered_at: Set(None),
        read_at: Set(None),
        failed_at: Set(None),
        replied_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let inserted = message::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([message::Column::ProjectId, message::Column::WaMessageId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    if inserted == 0 {
        return Ok(None);
    }
    let mut stored = message::Entity::find_by_id(id)
        .one(conn)
        .await?
        .expect("the row just inserted");
    if let Some(context) = &stored.context_wa_message_id
        && let Some(original) = by_wa_id(conn, project_id, context).await?
    {
        stored = attribute_reply(conn, stored, original).await?;
    }
    events::record_at(
        conn,
        project_id,
        "message.inbound",
        json!({
            "messageId": stored.id,
            "contactId": contact_id,
            "waMessageId": parsed.id,
            "type": parsed.kind,
            "replyTo": stored.reply_to_message_id,
            "referral": parsed.referral.as_ref().map(|r| &r["source_type"]),
        }),
        parsed.timestamp,
    )
    .await?;
    Ok(Some(stored))
}

/// The id of an inbound message: a UUIDv7 of the time the user wrote it, with the rest
/// drawn from Meta's id. Lists ordered by id show messages in the order they were
/// written, whatever order the webhooks came in, and a redelivery gets the same id.
pub fn id_at(written: DateTime<Utc>, wa_message_id: &str) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(wa_message_id.as_bytes());
    let mut rest = [0u8; 10];
    rest.copy_from_slice(&digest[..10]);
    // Meta's times are whole seconds: spread messages of one second by their id.
    let millis = written.timestamp_millis().max(0) as u64
        + u64::from(u16::from_be_bytes([digest[10], digest[11]]) % 1000);
    uuid::Builder::from_unix_timestamp_millis(millis, &rest).into_uuid()
}

/// Links a reply to the outbound message it answers, which counts as replied.
async fn attribute_reply<C: ConnectionTrait>(
    conn: &C,
    reply: message::Model,
    original: message::Model,
) -> AppResult<message::Model> {
    if original.direction == OUTBOUND && original.replied_at.is_none_or(|at| reply.occurred_at < at)
    {
        let mut active: message::ActiveModel = original.clone().into();
        active.replied_at = Set(Some(reply.occurred_at));
        active.updated_at = Set(Utc::now());
        active.update(conn).await?;
    }
    let mut active: message::ActiveModel = reply.into();
    active.reply_to_message_id = Set(Some(original.id));
    Ok(active.update(conn).await?)
}

pub async fn by_wa_id<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    wa_message_id: &str,
) -> AppResult<Option<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::ProjectId.eq(project_id))
        .filter(message::Column::WaMessageId.eq(wa_message_id))
        .one(conn)
        .await?)
}

/// Keeps a status report (once per message and status) and brings the message up to date.
/// Returns the message when it changed.
pub async fn apply_status<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    status: &Status,
) -> AppResult<Option<message::Model>> {
    let kind = status.status.to_lowercase();
    if !matches!(kind.as_str(), "sent" | "delivered" | "read" | "failed") {
        // Meta's other statuses (`deleted`, `warning`) do not move delivery.
        return Ok(None);
    }
    let error = status.errors.first();
    let row = message_status::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(project_id),
        wa_message_id: Set(status.id.clone()),
        status: Set(kind.clone()),
        occurred_at: Set(status.timestamp),
        recipient_id: Set(status.recipient_id.clone()),
        error_code: Set(error.and_then(|e| e.code)),
        error_title: Set(error.and_then(|e| e.title.clone().or_else(|| e.message.clone()))),
        error_details: Set(error
            .and_then(|e| e.error_data.as_ref())
            .and_then(|d| d.details.clone())),
        pricing: Set(status.pricing.as_ref().map(Value::to_string)),
        conversation: Set(status.conversation.as_ref().map(Value::to_string)),
        inferred: Set(false),
        received_at: Set(Utc::now()),
    };
    let new = insert_status(conn, row.clone()).await?;
    if new {
        record_status_event(conn, project_id, status, &kind, false).await?;
    } else if kind == "delivered" {
        // A real `delivered` after a `read` that implied it: keep Meta's time and pricing.
        message_status::Entity::update_many()
            .col_expr(message_status::Column::Inferred, false.into())
            .col_expr(message_status::Column::OccurredAt, status.timestamp.into())
            .col_expr(
                message_status::Column::Pricing,
                status.pricing.as_ref().map(Value::to_string).into(),
            )
            .filter(message_status::Column::ProjectId.eq(project_id))
            .filter(message_status::Column::WaMessageId.eq(&status.id))
            .filter(message_status::Column::Status.eq("delivered"))
            .filter(message_status::Column::Inferred.eq(true))
            .exec(conn)
            .await?;
    }
    if new && kind == "read" {
        // `read` implies `delivered`, which Meta may never send.
        let mut implied = row;
        implied.id = Set(Uuid::now_v7());
        implied.status = Set("delivered".into());
        implied.inferred = Set(true);
        implied.pricing = Set(None);
        implied.conversation = Set(None);
        if insert_status(conn, implied).await? {
            record_status_event(conn, project_id, status, "delivered", true).await?;
        }
    }
    match by_wa_id(conn, project_id, &status.id).await? {
        Some(message) => refresh(conn, message).await,
        None => Ok(None),
    }
}

async fn insert_status<C: ConnectionTrait>(
    conn: &C,
    row: message_status::ActiveModel,
) -> AppResult<bool> {
    let inserted = message_status::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                message_status::Column::ProjectId,
                message_status::Column::WaMessageId,
                message_status::Column::Status,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted > 0)
}

async fn record_status_event<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    status: &Status,
    kind: &str,
    inferred: bool,
) -> AppResult<()> {
    let pricing = status.pricing.as_ref();
    events::record_at(
        conn,
        project_id,
        "message.status",
        json!({
            "waMessageId": status.id,
            "status": kind,
            "inferred": inferred,
            "errorCode": status.errors.first().and_then(|e| e.code),
            "pricingCategory": pricing.and_then(|p| p["category"].as_str()),
            "pricingModel": pricing.and_then(|p| p["pricing_model"].as_str()),
            "billable": pricing.and_then(|p| p["billable"].as_bool()),
            "conversationId": status.conversation.as_ref().and_then(|c| c["id"].as_str()),
        }),
        status.timestamp,
    )
    .await
}

/// Derives an outbound message's status from every status kept for it: the furthest of
/// sent, delivered and read (never backwards); failed only when it got no further than
/// sent. Returns the message when it changed.
pub async fn refresh<C: ConnectionTrait>(
    conn: &C,
    message: message::Model,
) -> AppResult<Option<message::Model>> {
    let Some(wa_id) = message.wa_message_id.clone() else {
        return Ok(None);
    };
    if message.direction != OUTBOUND {
        return Ok(None);
    }
    let statuses = message_status::Entity::find()
        .filter(message_status::Column::ProjectId.eq(message.project_id))
        .filter(message_status::Column::WaMessageId.eq(wa_id))
        .all(conn)
        .await?;
    let derived = derive(&message, &statuses);
    if derived == message {
        return Ok(None);
    }
    let mut active: message::ActiveModel = message.into();
    active.status = Set(derived.status);
    active.sent_at = Set(derived.sent_at);
    active.delivered_at = Set(derived.delivered_at);
    active.read_at = Set(derived.read_at);
    active.failed_at = Set(derived.failed_at);
    active.error_code = Set(derived.error_code);
    active.error_title = Set(derived.error_title);
    active.pricing = Set(derived.pricing);
    active.updated_at = Set(Utc::now());
    Ok(Some(active.update(conn).await?))
}

fn derive(message: &message::Model, statuses: &[message_status::Model]) -> message::Model {
    let at = |kind: &str| -> Option<&message_status::Model> {
        statuses.iter().find(|s| s.status == kind)
    };
    let time = |kind: &str| -> Option<DateTime<Utc>> { at(kind).map(|s| s.occurred_at) };
    let mut derived = message.clone();
    derived.sent_at = time("sent").or(message.sent_at);
    derived.delivered_at = time("delivered");
    derived.read_at = time("read");
    derived.failed_at = time("failed");
    if let Some(failed) = at("failed") {
        derived.error_code = failed.error_code;
        derived.error_title = failed.error_title.clone();
    }
    derived.status = if derived.read_at.is_some() {
        READ
    } else if derived.delivered_at.is_some() {
        DELIVERED
    } else if derived.failed_at.is_some() {
        FAILED
    } else if derived.sent_at.is_some() {
        SENT
    } else {
        message.status.as_str()
    }
    .to_owned();
    // Meta's latest word on the price: delivered's (per-message), else sent's.
    derived.pricing = ["delivered", "sent", "read"]
        .iter()
        .filter_map(|k| at(k))
        .find_map(|s| {
            let pricing = s.pricing.as_deref()?;
            let mut object = json!({ "pricing": serde_json::from_str::<Value>(pricing).ok()? });
            if let Some(conversation) = s.conversation.as_deref() {
                object["conversation"] = serde_json::from_str(conversation).unwrap_or(Value::Null);
            }
            Some(object.to_string())
        })
        .or_else(|| message.pricing.clone());
    derived
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn message() -> message::Model {
        let now = Utc::now();
        message::Model {
            id: Uuid::nil(),
            project_id: Uuid::nil(),
            contact_id: Uuid::nil(),
            direction: OUTBOUND.into(),
            kind: "text".into(),
            content: "{}".into(),
            wa_message_id: Some("wamid.1".into()),
            status: ACCEPTED.into(),
            error_code: None,
            error_title: None,
            template_id: None,
            context_wa_message_id: None,
            reply_to_message_id: None,
            referral: None,
            pricing: None,
            sent_by: None,
            occurred_at: now,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            failed_at: None,
            replied_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn status(kind: &str, second: i64) -> message_status::Model {
        message_status::Model {
            id: Uuid::now_v7(),
            project_id: Uuid::nil(),
            wa_message_id: "wamid.1".into(),
            status: kind.into(),
            occurred_at: Utc.timestamp_opt(1_700_000_000 + second, 0).unwrap(),
            recipient_id: None,
            error_code: (kind == "failed").then_some(131_049),
            error_title: None,
            error_details: None,
            pricing: None,
            conversation: None,
            inferred: false,
            received_at: Utc::now(),
        }
    }

    #[test]
    fn status_never_moves_backwards() {
        let read_then_delivered = [status("read", 3), status("delivered", 2)];
        assert_eq!(derive(&message(), &read_then_delivered).status, READ);
        let sent_only = [status("sent", 1)];
        assert_eq!(derive(&message(), &sent_only).status, SENT);
    }

    #[test]
    fn failed_counts_only_before_delivery() {
        let failed = [status("sent", 1), status("failed", 2)];
        let derived = derive(&message(), &failed);
        assert_eq!(derived.status, FAILED);
        assert_eq!(derived.error_code, Some(131_049));
        let delivered_then_failed = [status("delivered", 1), status("failed", 2)];
        let derived = derive(&message(), &delivered_then_failed);
        assert_eq!(derived.status, DELIVERED);
        assert!(derived.failed_at.is_some());
    }

    #[test]
    fn inbound_ids_follow_the_time_written() {
        let earlier = Utc.timestamp_opt(1_763_990_400, 0).unwrap();
        let later = Utc.timestamp_opt(1_763_990_401, 0).unwrap();
        assert!(id_at(earlier, "wamid.b") < id_at(later, "wamid.a"));
        assert_eq!(id_at(earlier, "wamid.a"), id_at(earlier, "wamid.a"));
        assert_ne!(id_at(earlier, "wamid.a"), id_at(earlier, "wamid.b"));
        assert_eq!(id_at(earlier, "wamid.a").get_version_num(), 7);
    }

    #[test]
    fn no_status_keeps_the_send_result() {
        assert_eq!(derive(&message(), &[]).status, ACCEPTED);
    }
}
