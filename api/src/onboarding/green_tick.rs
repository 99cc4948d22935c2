//! The green tick (an Official Business Account): eligibility evaluated from what the
//! project knows, with the reason for each failing criterion; applications and their
//! status; the 30-day wait after a rejection. WhatsApp alone decides: Parley passes the
//! application on and records the answer.

use chrono::{DateTime, Duration, Utc};
use parley_entity::{green_tick_application as gt, leaving_request, whatsapp_account};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{checklist, signup};
use crate::{
    auth::Scope,
    errors::{AppError, AppResult, ErrorCode},
    state::AppState,
    validate,
};

pub const SUBMITTED: &str = "SUBMITTED";
pub const APPROVED: &str = "APPROVED";
pub const REJECTED: &str = "REJECTED";
pub const REVOKED: &str = "REVOKED";
/// Days WhatsApp asks a rejected business to wait before applying again.
pub const WAIT_AFTER_REJECTION_DAYS: i64 = 30;
/// Organic (not paid) news articles a notable brand shows.
pub const MIN_ORGANIC_ARTICLES: usize = 3;
/// Messaging tier 2 (10,000 business-initiated conversations a day) or above.
pub const TIER_2_LIMIT: i32 = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Criterion {
    pub key: String,
    pub label: String,
    /// Recommended criteria do not make a business ineligible.
    pub required: bool,
    pub met: bool,
    /// Why it is not met, and what to do.
    pub reason: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Eligibility {
    pub criteria: Vec<Criterion>,
    /// When a recent rejection stops being in the way.
    pub available_at: Option<DateTime<Utc>>,
}

impl Eligibility {
    pub fn eligible(&self) -> bool {
        self.criteria.iter().all(|c| c.met || !c.required)
    }

    fn failing(&self) -> Vec<&Criterion> {
        self.criteria
            .iter()
            .filter(|c| c.required && !c.met)
            .collect()
    }
}

fn criterion(key: &str, label: &str, required: bool, met: bool, reason: &str) -> Criterion {
    Criterion {
        key: key.into(),
        label: label.into(),
        required,
        met,
        reason: (!met).then(|| reason.to_owned()),
    }
}

/// As the API writes times.
fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

pub async fn eligibility(state: &AppState, project_id: Uuid) -> AppResult<Eligibility> {
    let now = state.settings.clock.now();
    let (answers, _) = checklist::answers(&state.db, project_id).await?;
    let live = signup::live(&state.db, project_id).await?;
    let downgrading = leaving_request::Entity::find()
        .filter(leaving_request::Column::ProjectId.eq(project_id))
        .filter(leaving_request::Column::Kind.eq(super::leaving::DOWNGRADE))
        .filter(leaving_request::Column::Status.eq(super::leaving::REQUESTED))
        .one(&state.db)
        .await?
        .is_some();
    let account = whatsapp_account::Entity::find_by_id(project_id)
        .one(&state.db)
        .await?;
    let applications = gt::Entity::find()
        .filter(gt::Column::ProjectId.eq(project_id))
        .order_by_desc(gt::Column::Id)
        .all(&state.db)
        .await?;

    let mut criteria = Vec::new();
    let live_ok = live.is_some() && !downgrading;
    criteria.push(criterion(
        "LIVE_ACCOUNT",
        "A live WhatsApp Business API account",
        true,
        live_ok,
        if downgrading {
            "the number is being downgraded: the green tick goes with it"
        } else {
            "only a live API account can apply: finish the embedded sign-up"
        },
    ));
    criteria.push(criterion(
        "TWO_STEP_VERIFICATION",
        "Two-step verification on",
        true,
        live.as_ref().is_some_and(|l| l.two_step_enabled),
        "turn on two-step verification (register the number with a PIN)",
    ));
    criteria.push(criterion(
        "BUSINESS_MANAGER_VERIFIED",
        "Facebook Business Manager verified",
        true,
        answers.business_manager_verified,
        "get the Business Manager verified by Meta (1 to 3 days, with a legal document)",
    ));
    let business = answers.business_type.as_deref() == Some(checklist::BUSINESS);
    criteria.push(criterion(
        "BUSINESS_NOT_INDIVIDUAL",
        "A business, not an individual",
        true,
        business,
        if answers.business_type.as_deref() == Some(checklist::INDIVIDUAL) {
            "individuals cannot have the green tick"
        } else {
            "declare the business type in the checklist"
        },
    ));
    // `None` is an unlimited number: above every tier.
    let tier_ok = account
        .as_ref()
        .is_some_and(|a| a.messaging_limit.is_none_or(|limit| limit >= TIER_2_LIMIT));
    criteria.push(criterion(
        "MESSAGING_TIER",
        "Messaging tier 2 or above (recommended)",
        false,
        tier_ok,
        "tier 2 (10,000 conversations a day) or above is recommended: keep quality high \
         and volume growing",
    ));
    let organic = checklist::organic_articles(&answers);
    criteria.push(Criterion {
        key: "NOTABLE_BRAND".into(),
        label: format!("At least {MIN_ORGANIC_ARTICLES} organic news articles"),
        required: true,
        met: organic >= MIN_ORGANIC_ARTICLES,
        reason: (organic < MIN_ORGANIC_ARTICLES).then(|| {
            format!(
                "a notable brand has at least {MIN_ORGANIC_ARTICLES} published organic news \
                 articles (paid PR does not count): {organic} listed"
            )
        }),
    });
    let open = applications.iter().any(|a| a.status == SUBMITTED);
    let approved = applications.iter().any(|a| a.status == APPROVED);
    criteria.push(criterion(
        "NO_OPEN_APPLICATION",
        "No application under review or approved",
        true,
        !open && !approved,
        if approved {
            "the business has the green tick already"
        } else {
            "an application is under review"
        },
    ));
    let last_rejection = applications
        .iter()
        .filter(|a| a.status == REJECTED)
        .filter_map(|a| a.decided_at)
        .max();
    let available_at = last_rejection
        .map(|at| at + Duration::days(WAIT_AFTER_REJECTION_DAYS))
        .filter(|at| *at > now);
    criteria.push(Criterion {
        key: "WAIT_AFTER_REJECTION".into(),
        label: format!("{WAIT_AFTER_REJECTION_DAYS} days since a rejection"),
        required: true,
        met: available_at.is_none(),
        reason: available_at.map(|at| {
            format!(
                "a rejected business waits {WAIT_AFTER_REJECTION_DAYS} days: apply again from \
                 {}",
                rfc3339(at)
            )
        }),
    });
    Ok(Eligibility {
        criteria,
        available_at,
    })
}

/// Submits an application, refused with `NOT_ELIGIBLE` and the reasons when a required
/// criterion fails.
pub async fn apply(state: &AppState, scope: &Scope) -> AppResult<gt::Model> {
    let eligibility = eligibility(state, scope.project_id).await?;
    if !eligibility.eligible() {
        let failing = eligibility.failing();
        let reasons: Vec<_> = failing
            .iter()
            .map(|c| json!({ "code": c.key, "reason": c.reason }))
            .collect();
        let mut details = serde_json::Map::new();
        details.insert("reasons".into(), reasons.into());
        if let Some(at) = eligibility.available_at {
            details.insert("availableAt".into(), rfc3339(at).into());
        }
        let keys: Vec<&str> = failing.iter().map(|c| c.key.as_str()).collect();
        return Err(AppError::RefusedWith {
            code: ErrorCode::NotEligible,
            message: format!("not eligible for the green tick: {}", keys.join(", ")),
            details,
        });
    }
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let row = gt::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        status: Set(SUBMITTED.into()),
        criteria: Set(serde_json::to_string(&eligibility.criteria).map_err(AppError::internal)?),
        submitted_by: Set(scope.user_id),
        submitted_at: Set(now),
        decided_at: Set(None),
        decision_reason: Set(None),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    crate::events::record(
        &txn,
        scope.project_id,
        "green_tick.submitted",
        scope.user_id,
        json!({ "applicationId": row.id }),
    )
    .await?;
    txn.commit().await?;
    Ok(row)
}

/// Records WhatsApp's answer to an application under review.
pub async fn decide(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    approved: bool,
    reason: Option<&str>,
) -> AppResult<gt::Model> {
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| validate::text("reason", r, 1000))
        .transpose()?;
    if !approved && reason.is_none() {
        return Err(AppError::bad_input(
            "reason",
            "a rejection is recorded with WhatsApp's reason",
        ));
    }
    let found = find(state, scope.project_id, id).await?;
    if found.status != SUBMITTED {
        return Err(AppError::Conflict(format!(
            "the application is {} already",
            found.status.to_lowercase()
        )));
    }
    let now = state.settings.clock.now();
    let status = if approved { APPROVED } else { REJECTED };
    let result = gt::Entity::update_many()
        .col_expr(gt::Column::Status, status.into())
        .col_expr(gt::Column::DecidedAt, Some(now).into())
        .col_expr(gt::Column::DecisionReason, reason.into())
        .filter(gt::Column::Id.eq(id))
        .filter(gt::Column::Status.eq(SUBMITTED))
        .exec(&state.db)
        .await?;
    if result.rows_affected != 1 {
        return Err(AppError::Conflict(
            "the application was decided meanwhile".into(),
        ));
    }
    find(state, scope.project_id, id).await
}

pub async fn find(state: &AppState, project_id: Uuid, id: Uuid) -> AppResult<gt::Model> {
    gt::Entity::find_by_id(id)
        .filter(gt::Column::ProjectId.eq(project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("green tick application"))
}

/// The project's applications, newest first.
pub async fn list(state: &AppState, project_id: Uuid) -> AppResult<Vec<gt::Model>> {
    Ok(gt::Entity::find()
        .filter(gt::Column::ProjectId.eq(project_id))
        .order_by_desc(gt::Column::Id)
        .all(&state.db)
        .await?)
}

/// The green tick goes with a downgrade.
pub async fn revoke<C: sea_orm::ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    gt::Entity::update_many()
        .col_expr(gt::Column::Status, REVOKED.into())
        .col_expr(gt::Column::RevokedAt, Some(now).into())
        .filter(gt::Column::ProjectId.eq(project_id))
        .filter(gt::Column::Status.is_in([APPROVED, SUBMITTED]))
        .exec(conn)
        .await?;
    Ok(())
}
