//! A campaign message's life after the send: its statuses (a `read` implies `delivered`,
//! which the message already derives), failures with Meta's code, grouped, and replies (an
//! inbound message within 72 hours of the campaign message).

use chrono::{DateTime, Duration, Utc};
use parley_entity::{campaign_recipient, message};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::json;
use uuid::Uuid;

use super::model::{self, FailureGroup};
use crate::{errors::AppResult, events, messages::send::CampaignSend, messages::store};

/// How long after the campaign message an inbound message counts as a reply.
pub const REPLY_WINDOW_HOURS: i64 = 72;

/// The recipient status for a message status.
pub fn recipient_status(message_status: &str) -> &'static str {
    match message_status {
        store::DELIVERED => model::DELIVERED,
        store::READ => model::READ,
        store::FAILED => model::FAILED,
        _ => model::SENT,
    }
}

/// Records the message id on the claimed recipient, in the send's transaction.
pub async fn attach_message<C: ConnectionTrait>(
    conn: &C,
    campaign: CampaignSend,
    contact_id: Uuid,
) -> AppResult<()> {
    campaign_recipient::Entity::update_many()
        .col_expr(
            campaign_recipient::Column::MessageId,
            Expr::val(campaign.message_id).into(),
        )
        .filter(campaign_recipient::Column::CampaignId.eq(campaign.campaign_id))
        .filter(campaign_recipient::Column::ContactId.eq(contact_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Brings a campaign recipient up to date with its message's status (from a webhook).
/// Returns the campaign when a recipient changed.
pub async fn on_message_status<C: ConnectionTrait>(
    conn: &C,
    changed: &message::Model,
) -> AppResult<Option<Uuid>> {
    let Some(recipient) = campaign_recipient::Entity::find()
        .filter(campaign_recipient::Column::MessageId.eq(changed.id))
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if !matches!(
        recipient.status.as_str(),
        model::SENT | model::DELIVERED | model::READ | model::FAILED
    ) {
        return Ok(None);
    }
    let status = recipient_status(&changed.status);
    let group = (status == model::FAILED).then(|| FailureGroup::of(changed.error_code).as_str());
    let mut update = campaign_recipient::Entity::update_many()
        .col_expr(campaign_recipient::Column::Status, Expr::val(status).into())
        .col_expr(
            campaign_recipient::Column::DeliveredAt,
            Expr::val(changed.delivered_at).into(),
        )
        .col_expr(
            campaign_recipient::Column::ReadAt,
            Expr::val(changed.read_at).into(),
        )
        .col_expr(
            campaign_recipient::Column::FailedAt,
            Expr::val(changed.failed_at).into(),
        )
        .col_expr(
            campaign_recipient::Column::UpdatedAt,
            Expr::val(changed.updated_at).into(),
        )
        .filter(campaign_recipient::Column::CampaignId.eq(recipient.campaign_id))
        .filter(campaign_recipient::Column::ContactId.eq(recipient.contact_id));
    if status == model::FAILED {
        update = update
            .col_expr(
                campaign_recipient::Column::ErrorCode,
                Expr::val(changed.error_code).into(),
            )
            .col_expr(
                campaign_recipient::Column::ErrorTitle,
                Expr::val(changed.error_title.clone()).into(),
            )
            .col_expr(
                campaign_recipient::Column::FailureGroup,
                Expr::val(group).into(),
            );
    }
    update.exec(conn).await?;
    // One analytics event per step reached, once each.
    let steps = [
        (
            model::DELIVERED,
            changed.delivered_at,
            recipient.delivered_at,
        ),
        (model::READ, changed.read_at, recipient.read_at),
        (model::FAILED, changed.failed_at, recipient.failed_at),
    ];
    for (step, now_at, before) in steps {
        if let (Some(at), None) = (now_at, before) {
            events::record_at(
                conn,
                recipient.project_id,
                &format!("campaign.{}", step.to_lowercase()),
                json!({
                    "campaignId": recipient.campaign_id,
                    "contactId": recipient.contact_id,
                    "group": if step == model::FAILED { group } else { None },
                    "errorCode": if step == model::FAILED { changed.error_code } else { None },
                }),
                at,
            )
            .await?;
        }
    }
    Ok(Some(recipient.campaign_id))
}

/// Marks the campaign messages this inbound message replies to (sent within 72 hours
/// before it, not yet replied). Returns the campaigns that changed.
pub async fn on_inbound<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    contact_id: Uuid,
    at: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    let replied = campaign_recipient::Entity::find()
        .filter(campaign_recipient::Column::ProjectId.eq(project_id))
        .filter(campaign_recipient::Column::ContactId.eq(contact_id))
        .filter(campaign_recipient::Column::RepliedAt.is_null())
        // Meta's times are whole seconds: a reply in the send's own second counts.
        .filter(campaign_recipient::Column::SentAt.lt(at + Duration::seconds(1)))
        .filter(campaign_recipient::Column::SentAt.gt(at - Duration::hours(REPLY_WINDOW_HOURS)))
        .all(conn)
        .await?;
    let mut campaigns = Vec::with_capacity(replied.len());
    for recipient in replied {
        campaign_recipient::Entity::update_many()
            .col_expr(campaign_recipient::Column::RepliedAt, Expr::val(at).into())
            .filter(campaign_recipient::Column::CampaignId.eq(recipient.campaign_id))
            .filter(campaign_recipient::Column::ContactId.eq(contact_id))
            .filter(campaign_recipient::Column::RepliedAt.is_null())
            .exec(conn)
            .await?;
        events::record_at(
            conn,
            project_id,
            "campaign.replied",
            json!({ "campaignId": recipient.campaign_id, "contactId": contact_id }),
            at,
        )
        .await?;
        campaigns.push(recipient.campaign_id);
    }
    Ok(campaigns)
}
