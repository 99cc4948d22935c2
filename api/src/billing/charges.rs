//! Charging outbound messages: the pricing engine's decision, made at send time inside the
//! transaction that records the message, paid from the wallet before Meta is called.
//! A message Meta fails gets its charge back, and the conversation it opened is void.

use chrono::{DateTime, Datelike, Duration, Utc};
use parley_entity::{
    contact, contact_messaging, message, message_charge, pricing_conversation, wallet_entry,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, Statement,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    book,
    pricing::{
        self, Category, FreeReason, MessageKind, MonthState, OpenConversation, Outbound,
        PricingError, UserState, WindowKind, format_micros,
    },
    wallet,
};
use crate::{
    errors::{AppError, AppResult, ErrorCode},
    events,
    messages::store::INBOUND,
    state::AppState,
};

/// `category` of a free-entry-point window in `pricing_conversations`.
pub const FREE_ENTRY_POINT: &str = "FREE_ENTRY_POINT";

/// What is being sent.
pub struct ChargeRequest<'a> {
    pub project_id: Uuid,
    pub currency: &'a str,
    pub contact: &'a contact::Model,
    pub message_id: Uuid,
    pub kind: MessageKind,
    pub at: DateTime<Utc>,
    pub campaign_id: Option<Uuid>,
}

/// Prices the message, records the conversation it opens and charges the wallet. Refused
/// (and nothing written) when the wallet cannot pay or no rate applies.
pub async fn charge<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    request: ChargeRequest<'_>,
) -> AppResult<Charged> {
    let book = book::load(conn, state, request.currency).await?;
    let country = request
        .contact
        .phone
        .as_deref()
        .and_then(crate::contacts::phone::country_of)
        .unwrap_or_else(|| "ZZ".to_owned());
    let user = user_state(conn, request.contact, request.at).await?;
    let month_key = month_key(request.at);
    let mut month = MonthState::new(request.at);
    month.free_service_used = free_tier_used(conn, request.project_id, &month_key).await?;
    let outbound = Outbound {
        at: request.at,
        kind: request.kind,
        country: country.clone(),
        currency: request.currency.to_owned(),
    };
    let mut decided = pricing::price(&book, &user, &month, &outbound).map_err(refusal)?;
    if decided.uses_free_tier {
        let era = book
            .era_at(request.at)
            .map_or(0, |e| e.free_service_per_month);
        if !take_free_tier(conn, request.project_id, &month_key, era).await? {
            // Another send took the month's last free conversation first.
            month.free_service_used = era;
            decided = pricing::price(&book, &user, &month, &outbound).map_err(refusal)?;
        }
    }
    let entry = if decided.amount_micros > 0 {
        let refs = wallet::EntryRefs {
            message_id: Some(request.message_id),
            campaign_id: request.campaign_id,
            note: Some(format!(
                "{} {} to {country}",
                decided.category.as_str().to_lowercase(),
                if decided.opens.is_some() {
                    "conversation"
                } else {
                    "message"
                }
            )),
            ..Default::default()
        };
        let entry = wallet::apply(
            conn,
            request.project_id,
            wallet::CHARGE,
            -decided.amount_micros,
            refs,
            request.at,
        )
        .await?;
        Some(entry)
    } else {
        None
    };
    let wallet_seq = entry.as_ref().map(|e| e.seq);
    let conversation_id = match &decided.opens {
        Some(opened) => Some(
            open_conversation(
                conn,
                &request,
                opened,
                &decided,
                &country,
                request.message_id,
            )
            .await?,
        ),
        None => current_conversation(conn, &request, &user).await?,
    };
    let charge = message_charge::ActiveModel {
        message_id: Set(request.message_id),
        project_id: Set(request.project_id),
        contact_id: Set(request.contact.id),
        campaign_id: Set(request.campaign_id),
        charged_at: Set(request.at),
        era: Set(decided.era.clone()),
        model: Set(model_name(decided.model).to_owned()),
        category: Set(decided.category.as_str().to_owned()),
        country: Set(country.clone()),
        conversation_id: Set(conversation_id),
        opened_conversation: Set(decided.opens.is_some()),
        billable: Set(decided.billable),
        free_reason: Set(decided.free_reason.map(free_reason_str).map(str::to_owned)),
        uses_free_tier: Set(decided.uses_free_tier),
        amount_micros: Set(decided.amount_micros),
        currency: Set(decided.currency.clone()),
        wallet_seq: Set(wallet_seq),
        refunded_at: Set(None),
        meta_pricing: Set(None),
    }
    .insert(conn)
    .await?;
    record_event(conn, &charge, "billing.charged", 1).await?;
    Ok(Charged { charge, entry })
}

/// A message's charge, and the wallet entry that paid it (to announce after commit).
pub struct Charged {
    pub charge: message_charge::Model,
    pub entry: Option<wallet_entry::Model>,
}

/// How the model is stored and reported (`PricingModel::as_str` is Meta's `CBP`/`PMP`).
pub fn model_name(model: pricing::PricingModel) -> &'static str {
    match model {
        pricing::PricingModel::Conversation => "CONVERSATION",
        pricing::PricingModel::PerMessage => "PER_MESSAGE",
    }
}

pub fn free_reason_str(reason: FreeReason) -> &'static str {
    match reason {
        FreeReason::FreeEntryPoint => "FREE_ENTRY_POINT",
        FreeReason::FreeTier => "FREE_TIER",
        FreeReason::ServiceFree => "SERVICE_FREE",
        FreeReason::ConversationOpen => "CONVERSATION_OPEN",
        FreeReason::UtilityInServiceWindow => "UTILITY_IN_SERVICE_WINDOW",
        FreeReason::FreeForm => "FREE_FORM",
    }
}

pub(crate) fn refusal(err: PricingError) -> AppError {
    match err {
        PricingError::NoRate {
            country,
            category,
            currency,
        } => {
            let mut details = serde_json::Map::new();
            details.insert("country".into(), json!(country));
            details.insert("category".into(), json!(category.as_str()));
            details.insert("currency".into(), json!(currency));
            AppError::RefusedWith {
                code: ErrorCode::RateUnavailable,
                message: format!(
                    "no {} price for {country} in {currency} on the rate card",
                    category.as_str().to_lowercase()
                ),
                details,
            }
        }
        PricingError::OutsideServiceWindow { .. } => AppError::Refused {
            code: ErrorCode::WindowClosed,
            message: err.to_string(),
        },
        PricingError::NoEra { .. } | PricingError::ServiceTemplate => {
            AppError::bad_input("message", err.to_string())
        }
    }
}

/// The user's pricing state from the database: windows still open at `at` (or opened for
/// the latest free-entry-point inbound), the last inbound message and the last one that
/// came from an ad or a page button.
async fn user_state<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
    at: DateTime<Utc>,
) -> AppResult<UserState> {
    let mut user = UserState::default();
    let messaging = contact_messaging::Entity::find_by_id(contact.id)
        .one(conn)
        .await?;
    // Meta's clock may run a little ahead of ours: a message "from the future" counts as
    // written now (the send path has already checked the window).
    user.last_inbound_at = messaging.and_then(|m| m.last_inbound_at).map(|t| t.min(at));
    // An inbound is a free entry point when it carries Meta's `referral` (an ad or a page).
    user.last_free_entry_inbound_at = message::Entity::find()
        .filter(message::Column::ContactId.eq(contact.id))
        .filter(message::Column::Direction.eq(INBOUND))
        .filter(message::Column::Referral.is_not_null())
        .order_by_desc(message::Column::OccurredAt)
        .one(conn)
        .await?
        .map(|m| m.occurred_at.min(at));
    // Windows last at most a few days: anything opened over a week ago is closed.
    let open = pricing_conversation::Entity::find()
        .filter(pricing_conversation::Column::ContactId.eq(contact.id))
        .filter(pricing_conversation::Column::VoidedAt.is_null())
        .filter(pricing_conversation::Column::ExpiresAt.gt(at - Duration::days(7)))
        .order_by_asc(pricing_conversation::Column::OpenedAt)
        .all(conn)
        .await?;
    for row in open {
        let free = !row.billable;
        let window = |kind| OpenConversation {
            kind,
            opened_at: row.opened_at,
            expires_at: row.expires_at,
            free,
        };
        if row.category == FREE_ENTRY_POINT {
            user.free_entry_window = Some(window(WindowKind::FreeEntryPoint));
        } else if let Some(category) = Category::parse(&row.category)
            && row.expires_at > at
        {
            user.conversations
                .push(window(WindowKind::Conversation(category)));
        }
    }
    Ok(user)
}

async fn open_conversation<C: ConnectionTrait>(
    conn: &C,
    request: &ChargeRequest<'_>,
    opened: &OpenConversation,
    decided: &pricing::Pricing,
    country: &str,
    message_id: Uuid,
) -> AppResult<Uuid> {
    let category = match opened.kind {
        WindowKind::FreeEntryPoint => FREE_ENTRY_POINT.to_owned(),
        WindowKind::Conversation(c) => c.as_str().to_owned(),
    };
    let row = pricing_conversation::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(request.project_id),
        contact_id: Set(request.contact.id),
        category: Set(category),
        opened_at: Set(opened.opened_at),
        expires_at: Set(opened.expires_at),
        era: Set(decided.era.clone()),
        country: Set(country.to_owned()),
        billable: Set(decided.billable),
        free_reason: Set(decided.free_reason.map(free_reason_str).map(str::to_owned)),
        amount_micros: Set(decided.amount_micros),
        currency: Set(decided.currency.clone()),
        message_id: Set(message_id),
        voided_at: Set(None),
    }
    .insert(conn)
    .await?;
    Ok(row.id)
}

/// The open window a message that opens none rides in, for the record.
async fn current_conversation<C: ConnectionTrait>(
    conn: &C,
    request: &ChargeRequest<'_>,
    user: &UserState,
) -> AppResult<Option<Uuid>> {
    let at = request.at;
    let wanted = if user.free_entry_window_open(at) {
        Some(FREE_ENTRY_POINT.to_owned())
    } else {
        match request.kind {
            MessageKind::Template(c) => {
                user.open_conversation(at, c).map(|_| c.as_str().to_owned())
            }
            MessageKind::FreeForm => user
                .conversations
                .iter()
                .find(|c| c.is_open_at(at))
                .and_then(|c| match c.kind {
                    WindowKind::Conversation(c) => Some(c.as_str().to_owned()),
                    WindowKind::FreeEntryPoint => None,
                }),
        }
    };
    let Some(category) = wanted else {
        return Ok(None);
    };
    Ok(pricing_conversation::Entity::find()
        .filter(pricing_conversation::Column::ContactId.eq(request.contact.id))
        .filter(pricing_conversation::Column::Category.eq(category))
        .filter(pricing_conversation::Column::VoidedAt.is_null())
        .filter(pricing_conversation::Column::OpenedAt.lte(at))
        .filter(pricing_conversation::Column::ExpiresAt.gt(at))
        .one(conn)
        .await?
        .map(|c| c.id))
}

pub(crate) fn month_key(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", at.year(), at.month())
}

pub(crate) async fn free_tier_used<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    month: &str,
) -> AppResult<u32> {
    Ok(
        parley_entity::free_tier_usage::Entity::find_by_id((project_id, month.to_owned()))
            .one(conn)
            .await?
            .map_or(0, |u| u32::try_from(u.used).unwrap_or(0)),
    )
}

/// Takes one of the month's free service conversations; false when none is left.
pub(crate) async fn take_free_tier<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    month: &str,
    limit: u32,
) -> AppResult<bool> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO free_tier_usage (project_id, month, used) VALUES ($1, $2, 1) \
             ON CONFLICT (project_id, month) DO UPDATE SET used = free_tier_usage.used + 1 \
             WHERE free_tier_usage.used < $3"
        }
        _ => {
            "INSERT INTO free_tier_usage (project_id, month, used) VALUES (?1, ?2, 1) \
             ON CONFLICT (project_id, month) DO UPDATE SET used = free_tier_usage.used + 1 \
             WHERE free_tier_usage.used < ?3"
        }
    };
    let done = conn
        .execute(Statement::from_sql_and_values(
            backend,
            sql,
            [project_id.into(), month.into(), i64::from(limit).into()],
        ))
        .await?;
    Ok(limit > 0 && done.rows_affected() == 1)
}

/// Gives a failed message's charge back (once), voids the window it opened and returns
/// the free service conversation it used. Returns the wallet entry, if money came back.
pub async fn refund_failed<C: ConnectionTrait>(
    conn: &C,
    message_id: Uuid,
    at: DateTime<Utc>,
) -> AppResult<Option<wallet_entry::Model>> {
    let refunded = message_charge::Entity::update_many()
        .col_expr(message_charge::Column::RefundedAt, at.into())
        .filter(message_charge::Column::MessageId.eq(message_id))
        .filter(message_charge::Column::RefundedAt.is_null())
        .exec(conn)
        .await?;
    if refunded.rows_affected != 1 {
        return Ok(None);
    }
    let Some(charge) = message_charge::Entity::find_by_id(message_id)
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    let mut entry = None;
    if charge.amount_micros > 0 {
        let refs = wallet::EntryRefs {
            message_id: Some(message_id),
            campaign_id: charge.campaign_id,
            note: Some("message failed: charge returned".into()),
            ..Default::default()
        };
        entry = Some(
            wallet::apply(
                conn,
                charge.project_id,
                wallet::REFUND,
                charge.amount_micros,
                refs,
                at,
            )
            .await?,
        );
    }
    if charge.opened_conversation {
        pricing_conversation::Entity::update_many()
            .col_expr(pricing_conversation::Column::VoidedAt, at.into())
            .filter(pricing_conversation::Column::MessageId.eq(message_id))
            .exec(conn)
            .await?;
    }
    if charge.uses_free_tier {
        parley_entity::free_tier_usage::Entity::update_many()
            .col_expr(
                parley_entity::free_tier_usage::Column::Used,
                sea_orm::sea_query::Expr::col(parley_entity::free_tier_usage::Column::Used).sub(1),
            )
            .filter(parley_entity::free_tier_usage::Column::ProjectId.eq(charge.project_id))
            .filter(parley_entity::free_tier_usage::Column::Month.eq(month_key(charge.charged_at)))
            .filter(parley_entity::free_tier_usage::Column::Used.gt(0))
            .exec(conn)
            .await?;
    }
    record_event(conn, &charge, "billing.refunded", -1).await?;
    Ok(entry)
}

/// Keeps Meta's pricing object beside ours, once per change, for the reconciliation.
pub async fn record_meta_pricing<C: ConnectionTrait>(
    conn: &C,
    message: &message::Model,
) -> AppResult<()> {
    let Some(pricing) = message.pricing.as_deref() else {
        return Ok(());
    };
    let Some(charge) = message_charge::Entity::find_by_id(message.id)
        .one(conn)
        .await?
    else {
        return Ok(());
    };
    if charge.meta_pricing.as_deref() == Some(pricing) {
        return Ok(());
    }
    let mut active: message_charge::ActiveModel = charge.clone().into();
    active.meta_pricing = Set(Some(pricing.to_owned()));
    active.update(conn).await?;
    let object: Value = serde_json::from_str(pricing).unwrap_or(Value::Null);
    let meta = &object["pricing"];
    events::record_at(
        conn,
        charge.project_id,
        "billing.meta_priced",
        json!({
            "messageId": charge.message_id,
            "contactId": charge.contact_id,
            "campaignId": charge.campaign_id,
            "country": charge.country,
            "currency": charge.currency,
            "metaCategory": meta["category"].as_str().unwrap_or("").to_uppercase(),
            "metaModel": meta["pricing_model"].as_str().unwrap_or(""),
            "metaBillable": meta["billable"].as_bool(),
            "metaType": meta["type"].as_str().unwrap_or(""),
        }),
        message.updated_at,
    )
    .await
}

/// The outbox event the usage reports are computed from (`sign` is -1 for a refund). A
/// refund is dated like its charge, so that a day's usage nets out.
async fn record_event<C: ConnectionTrait>(
    conn: &C,
    charge: &message_charge::Model,
    kind: &str,
    sign: i64,
) -> AppResult<()> {
    let event = charge_event(charge, kind, sign);
    parley_analytics::outbox::record(conn, &event).await?;
    Ok(())
}

/// The outbox event of a charge (`billing.charged`) or its refund (`billing.refunded`).
pub(crate) fn charge_event(
    charge: &message_charge::Model,
    kind: &str,
    sign: i64,
) -> parley_analytics::Event {
    let mut event = parley_analytics::Event::new(
        charge.project_id,
        kind,
        None,
        json!({
            "messageId": charge.message_id,
            "contactId": charge.contact_id,
            "campaignId": charge.campaign_id,
            "era": charge.era,
            "model": charge.model,
            "category": charge.category,
            "country": charge.country,
            "billable": charge.billable,
            "freeReason": charge.free_reason,
            "openedConversation": charge.opened_conversation,
            "usesFreeTier": charge.uses_free_tier,
            "sign": sign,
            "amountMicros": sign * charge.amount_micros,
            "currency": charge.currency,
            "amount": format_micros(sign * charge.amount_micros),
        }),
    );
    event.occurred_at = charge.charged_at;
    event
}
