//! The credit wallet: every balance change is one ledger entry, numbered per project, with
//! the balance after it. The balance never goes below zero: a debit is a single
//! conditional update, so concurrent charges cannot overdraw it (on PostgreSQL the row
//! stays locked until the caller's transaction ends, and entries are numbered in order).

use chrono::{DateTime, Utc};
use parley_entity::{wallet, wallet_entry};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use sea_orm::{ColumnTrait, sea_query::OnConflict};
use serde_json::json;
use uuid::Uuid;

use super::pricing::format_micros;
use crate::errors::{AppError, AppResult, ErrorCode};

/// Ledger entry kinds.
pub const TOP_UP: &str = "TOP_UP";
pub const TRIAL_CREDIT: &str = "TRIAL_CREDIT";
pub const CHARGE: &str = "CHARGE";
pub const REFUND: &str = "REFUND";
pub const EXPIRY: &str = "EXPIRY";
pub const ADJUSTMENT: &str = "ADJUSTMENT";

/// What a ledger entry refers to.
#[derive(Clone, Debug, Default)]
pub struct EntryRefs {
    pub message_id: Option<Uuid>,
    pub invoice_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub note: Option<String>,
    pub created_by: Option<Uuid>,
}

/// Creates the project's wallet (empty) if it has none.
pub async fn ensure<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    currency: &str,
    low_balance_micros: i64,
    now: DateTime<Utc>,
) -> AppResult<()> {
    wallet::Entity::insert(wallet::ActiveModel {
        project_id: Set(project_id),
        currency: Set(currency.to_owned()),
        balance_micros: Set(0),
        low_balance_micros: Set(low_balance_micros),
        last_seq: Set(0),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(wallet::Column::ProjectId)
            .do_nothing()
            .to_owned(),
    )
    .do_nothing()
    .exec(conn)
    .await?;
    Ok(())
}

pub async fn find<C: ConnectionTrait>(conn: &C, project_id: Uuid) -> AppResult<wallet::Model> {
    wallet::Entity::find_by_id(project_id)
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("wallet"))
}

/// Applies a signed change and records it. A debit the balance cannot cover is refused
/// with INSUFFICIENT_CREDITS and changes nothing.
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    kind: &str,
    amount_micros: i64,
    refs: EntryRefs,
    now: DateTime<Utc>,
) -> AppResult<wallet_entry::Model> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE wallets SET balance_micros = balance_micros + $1, last_seq = last_seq + 1, \
             updated_at = $2 WHERE project_id = $3 AND balance_micros + $1 >= 0 \
             RETURNING balance_micros, last_seq, currency"
        }
        _ => {
            "UPDATE wallets SET balance_micros = balance_micros + ?1, last_seq = last_seq + 1, \
             updated_at = ?2 WHERE project_id = ?3 AND balance_micros + ?1 >= 0 \
             RETURNING balance_micros, last_seq, currency"
        }
    };
    let row = conn
        .query_one(Statement::from_sql_and_values(
            backend,
            sql,
            [amount_micros.into(), now.into(), project_id.into()],
        ))
        .await?;
    let Some(row) = row else {
        let wallet = find(conn, project_id).await?;
        return Err(insufficient(&wallet, -amount_micros));
    };
    let balance: i64 = row.try_get_by_index(0)?;
    let seq: i64 = row.try_get_by_index(1)?;
    let currency: String = row.try_get_by_index(2)?;
    let entry = wallet_entry::ActiveModel {
        project_id: Set(project_id),
        seq: Set(seq),
        kind: Set(kind.to_owned()),
        amount_micros: Set(amount_micros),
        balance_after_micros: Set(balance),
        message_id: Set(refs.message_id),
        invoice_id: Set(refs.invoice_id),
        campaign_id: Set(refs.campaign_id),
        note: Set(refs.note),
        created_by: Set(refs.created_by),
        created_at: Set(now),
    }
    .insert(conn)
    .await?;
    parley_analytics::outbox::record(conn, &entry_event(&entry, &currency, now)).await?;
    Ok(entry)
}

/// The outbox event of a ledger entry (`billing.wallet`).
pub fn entry_event(
    entry: &wallet_entry::Model,
    currency: &str,
    now: DateTime<Utc>,
) -> parley_analytics::Event {
    let mut event = parley_analytics::Event::new(
        entry.project_id,
        "billing.wallet",
        None,
        json!({
            "seq": entry.seq,
            "entryKind": entry.kind,
            "amountMicros": entry.amount_micros,
            "balanceAfterMicros": entry.balance_after_micros,
            "currency": currency,
            "messageId": entry.message_id,
            "invoiceId": entry.invoice_id,
            "campaignId": entry.campaign_id,
        }),
    );
    event.occurred_at = now;
    event
}

/// Takes the whole balance away (credits expire with the plan); `None` when it was empty.
pub async fn expire_all<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    note: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<wallet_entry::Model>> {
    let wallet = find(conn, project_id).await?;
    if wallet.balance_micros == 0 {
        return Ok(None);
    }
    let refs = EntryRefs {
        note: Some(note.to_owned()),
        ..EntryRefs::default()
    };
    // A charge committed since the read makes this fail; the sweep tries again next time.
    apply(conn, project_id, EXPIRY, -wallet.balance_micros, refs, now)
        .await
        .map(Some)
}

/// The ledger, newest first, before `before` (a sequence number) when given.
pub async fn entries<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    before: Option<i64>,
    limit: u64,
) -> AppResult<Vec<wallet_entry::Model>> {
    let mut query = wallet_entry::Entity::find()
        .filter(wallet_entry::Column::ProjectId.eq(project_id))
        .order_by_desc(wallet_entry::Column::Seq)
        .limit(limit);
    if let Some(before) = before {
        query = query.filter(wallet_entry::Column::Seq.lt(before));
    }
    Ok(query.all(conn).await?)
}

fn insufficient(wallet: &wallet::Model, required: i64) -> AppError {
    let mut details = serde_json::Map::new();
    details.insert(
        "balance".into(),
        json!(format_micros(wallet.balance_micros)),
    );
    details.insert("required".into(), json!(format_micros(required)));
    details.insert("currency".into(), json!(wallet.currency));
    AppError::RefusedWith {
        code: ErrorCode::InsufficientCredits,
        message: format!(
            "the wallet holds {} {} and this needs {} {}: top up the wallet",
            format_micros(wallet.balance_micros),
            wallet.currency,
            format_micros(required),
            wallet.currency
        ),
        details,
    }
}
