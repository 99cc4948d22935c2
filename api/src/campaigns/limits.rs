//! What a broadcast may send today: the messaging limit (unique users reached by
//! business-initiated messages per rolling 24 hours) and the wallet. A broadcast that does
//! not fit is refused with the figures, never silently truncated.

use chrono::{DateTime, Duration, Utc};
use parley_entity::{project, reached_user, template};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, Statement,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    billing::{
        book, plans,
        pricing::{Category, format_micros},
        wallet,
    },
    errors::{AppError, AppResult, ErrorCode},
    state::AppState,
    whatsapp::accounts,
};

/// Unique users reached in the 24 hours before `now`.
pub async fn reached_today<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<u64> {
    Ok(reached_user::Entity::find()
        .filter(reached_user::Column::ProjectId.eq(project_id))
        .filter(reached_user::Column::LastAt.gt(now - Duration::hours(24)))
        .count(conn)
        .await?)
}

/// Whether `contact_id` may be reached now: already reached in the window, or room left.
pub async fn may_reach<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    contact_id: Uuid,
    limit: Option<i32>,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let Some(limit) = limit else {
        return Ok(true);
    };
    let already = reached_user::Entity::find_by_id((project_id, contact_id))
        .one(conn)
        .await?
        .is_some_and(|r| r.last_at > now - Duration::hours(24));
    Ok(already || reached_today(conn, project_id, now).await? < u64::try_from(limit).unwrap_or(0))
}

/// Records a business-initiated message to the contact.
pub async fn record_reached<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    contact_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO reached_users (project_id, contact_id, last_at) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id, contact_id) DO UPDATE SET last_at = EXCLUDED.last_at"
        }
        _ => {
            "INSERT INTO reached_users (project_id, contact_id, last_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (project_id, contact_id) DO UPDATE SET last_at = excluded.last_at"
        }
    };
    conn.execute(Statement::from_sql_and_values(
        backend,
        sql,
        [project_id.into(), contact_id.into(), now.into()],
    ))
    .await?;
    Ok(())
}

/// Refuses a broadcast to `recipients` contacts that the messaging limit or the wallet
/// cannot take today. The cost is estimated at the template category's price for the
/// project's default country (each message is priced exactly when it is sent).
pub async fn check_audience(
    state: &AppState,
    project: &project::Model,
    template: &template::Model,
    recipients: u64,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let account = accounts::for_project(&state.db, state, project.id).await?;
    if let Some(limit) = account.messaging_limit {
        let reached = reached_today(&state.db, project.id, now).await?;
        let remaining = u64::try_from(limit).unwrap_or(0).saturating_sub(reached);
        if recipients > remaining {
            let mut details = serde_json::Map::new();
            details.insert("recipients".into(), json!(recipients));
            details.insert("limit".into(), json!(limit));
            details.insert("reachedToday".into(), json!(reached));
            details.insert("remainingToday".into(), json!(remaining));
            return Err(AppError::RefusedWith {
                code: ErrorCode::MessagingLimitExceeded,
                message: format!(
                    "the audience has {recipients} contacts, but the messaging limit of {limit} \
                     unique users per 24 hours leaves {remaining} today ({reached} reached); \
                     narrow the audience or send the rest later"
                ),
                details,
            });
        }
    }
    plans::current(&state.db, state, project.id).await?;
    let category = Category::parse(&template.category).unwrap_or(Category::Marketing);
    let book = book::load(&state.db, state, &project.currency).await?;
    let price = book
        .rate(now, &project.default_country, category, &project.currency)
        .map_or(0, |r| r.price_micros);
    let needed = price.saturating_mul(i64::try_from(recipients).unwrap_or(i64::MAX));
    let balance = wallet::find(&state.db, project.id).await?.balance_micros;
    if needed > balance {
        let mut details = serde_json::Map::new();
        details.insert("recipients".into(), json!(recipients));
        details.insert("balance".into(), json!(format_micros(balance)));
        details.insert("required".into(), json!(format_micros(needed)));
        details.insert("currency".into(), json!(project.currency));
        return Err(AppError::RefusedWith {
            code: ErrorCode::InsufficientCredits,
            message: format!(
                "{recipients} {} messages at {} {} cost about {} {}; the wallet holds {} {}",
                category.as_str().to_lowercase(),
                format_micros(price),
                project.currency,
                format_micros(needed),
                project.currency,
                format_micros(balance),
                project.currency
            ),
            details,
        });
    }
    Ok(())
}
