//! The embedded sign-up as a state machine:
//!
//! `CONNECT_ACCOUNT` → `BUSINESS_MANAGER` → `WHATSAPP_ACCOUNT` → `BUSINESS_PROFILE` →
//! `PHONE_NUMBER` → `CODE_SENT` → `VERIFIED` → `LIVE`
//!
//! An application's `step` is the step waiting for its input; each mutation completes
//! one step. Its inputs are validated first (a refusal is `BAD_USER_INPUT` and an audit
//! row, and changes nothing). Then the provider is called: Meta's endpoints, or the
//! sandbox, whose outcome takes effect after `WHATSAPP_SANDBOX_SIGNUP_MS` (the
//! application is `PROCESSING` until then, settled by whoever reads it next). A failed
//! step keeps the application at that step (`FAILED`, with the reason) and is retried by
//! submitting it again. Every attempt leaves audit rows: who, when, which step, and how
//! it went.
//!
//! Writes are conditional on the application as read (its step, status and attempts),
//! so two submissions at once cannot both apply. A live application's number is locked:
//! another number needs a new application, which replaces the live one when it goes
//! live.

use chrono::{DateTime, Duration, Utc};
use parley_entity::{onboarding_application as app, onboarding_event as event, project};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{checklist, rules};
use crate::{
    auth::Scope,
    errors::{AppError, AppResult, ErrorCode},
    pagination::{self, Page, PageRequest},
    state::AppState,
    validate,
    whatsapp::{
        accounts::{PROVIDER_META, PROVIDER_SANDBOX},
        provider::{BusinessProfile, FailureKind, PhoneNumberRequest, ProviderError},
    },
};

pub const CONNECT_ACCOUNT: &str = "CONNECT_ACCOUNT";
pub const BUSINESS_MANAGER: &str = "BUSINESS_MANAGER";
pub const WHATSAPP_ACCOUNT: &str = "WHATSAPP_ACCOUNT";
pub const BUSINESS_PROFILE: &str = "BUSINESS_PROFILE";
pub const PHONE_NUMBER: &str = "PHONE_NUMBER";
pub const CODE_SENT: &str = "CODE_SENT";
pub const VERIFIED: &str = "VERIFIED";
pub const LIVE: &str = "LIVE";
/// The steps in order.
pub const STEPS: [&str; 8] = [
    CONNECT_ACCOUNT,
    BUSINESS_MANAGER,
    WHATSAPP_ACCOUNT,
    BUSINESS_PROFILE,
    PHONE_NUMBER,
    CODE_SENT,
    VERIFIED,
    LIVE,
];

pub const IN_PROGRESS: &str = "IN_PROGRESS";
pub const PROCESSING: &str = "PROCESSING";
pub const FAILED: &str = "FAILED";
pub const STATUS_LIVE: &str = "LIVE";
pub const CANCELLED: &str = "CANCELLED";
pub const REPLACED: &str = "REPLACED";
pub const DOWNGRADED: &str = "DOWNGRADED";

/// The language of the verification code's message.
const CODE_LANGUAGE: &str = "en_US";

/// Application columns a step sets.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Changes {
    access_token: Option<String>,
    business_manager_id: Option<String>,
    business_manager_name: Option<String>,
    waba_id: Option<String>,
    waba_name: Option<String>,
    timezone: Option<String>,
    display_name: Option<String>,
    category: Option<String>,
    description: Option<Option<String>>,
    phone_number: Option<String>,
    phone_number_id: Option<String>,
    code_method: Option<String>,
    behind_ivr: Option<bool>,
    two_step_enabled: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StepFailure {
    code: String,
    reason: String,
    retryable: bool,
}

/// What a step's attempt came to: applied at once (Meta) or when due (the sandbox).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Outcome {
    action: String,
    /// The step acted on.
    step: String,
    changes: Changes,
    /// The step the application moves to; `None` when it failed.
    next_step: Option<String>,
    failure: Option<StepFailure>,
    /// What the audit row shows of the inputs (never codes, PINs or tokens).
    details: Value,
}

impl Outcome {
    fn new(action: &str, step: &str, details: Value) -> Self {
        Self {
            action: action.to_owned(),
            step: step.to_owned(),
            changes: Changes::default(),
            next_step: None,
            failure: None,
            details,
        }
    }

    fn succeed(mut self, next: &str) -> Self {
        self.next_step = Some(next.to_owned());
        self
    }

    fn fail(mut self, err: &ProviderError) -> Self {
        let retryable = err.kind != FailureKind::Permanent;
        let code = if retryable {
            "UNAVAILABLE"
        } else {
            "PROVIDER_REJECTED"
        };
        let reason = match err.code {
            Some(meta_code) => format!("{} (Meta error {meta_code})", err.message),
            None => err.message.clone(),
        };
        self.failure = Some(StepFailure {
            code: code.into(),
            reason,
            retryable,
        });
        self
    }
}

/// The project's application to show: the open one, else the newest.
pub async fn current(state: &AppState, project_id: Uuid) -> AppResult<Option<app::Model>> {
    let found = app::Entity::find()
        .filter(app::Column::ProjectId.eq(project_id))
        .order_by_desc(app::Column::OpenKey.is_not_null())
        .order_by_desc(app::Column::Id)
        .one(&state.db)
        .await?;
    match found {
        Some(found) => Ok(Some(settle(state, found).await?)),
        None => Ok(None),
    }
}

/// The project's live application, if any.
pub async fn live<C: ConnectionTrait>(conn: &C, project_id: Uuid) -> AppResult<Option<app::Model>> {
    Ok(app::Entity::find()
        .filter(app::Column::ProjectId.eq(project_id))
        .filter(app::Column::Status.eq(STATUS_LIVE))
        .order_by_desc(app::Column::Id)
        .one(conn)
        .await?)
}

pub async fn find(state: &AppState, project_id: Uuid, id: Uuid) -> AppResult<app::Model> {
    let found = app::Entity::find_by_id(id)
        .filter(app::Column::ProjectId.eq(project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("onboarding application"))?;
    settle(state, found).await
}

/// The project's applications, oldest first.
pub async fn list(
    state: &AppState,
    project_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<app::Model>> {
    let page = pagination::fetch(
        &state.db,
        app::Entity::find().filter(app::Column::ProjectId.eq(project_id)),
        app::Column::Id,
        page,
    )
    .await?;
    let mut items = Vec::with_capacity(page.items.len());
    for item in page.items {
        items.push(settle(state, item).await?);
    }
    Ok(Page {
        items,
        has_previous_page: page.has_previous_page,
        has_next_page: page.has_next_page,
    })
}

/// An application's audit trail, oldest first.
pub async fn audit_trail(
    state: &AppState,
    project_id: Uuid,
    application_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<event::Model>> {
    pagination::fetch(
        &state.db,
        event::Entity::find()
            .filter(event::Column::ProjectId.eq(project_id))
            .filter(event::Column::ApplicationId.eq(application_id)),
        event::Column::Id,
        page,
    )
    .await
}

/// Which provider a new application uses: Meta when the server has a Meta app (id and
/// secret) for the code exchange, else the sandbox.
fn pick_provider(state: &AppState, requested: Option<&str>) -> AppResult<&'static str> {
    let w = &state.settings.whatsapp;
    let meta_ready = w.app_id.is_some() && w.app_secret.is_some();
    match requested.map(str::to_ascii_lowercase).as_deref() {
        Some(PROVIDER_META) if meta_ready => Ok(PROVIDER_META),
        Some(PROVIDER_META) => Err(AppError::bad_input(
            "provider",
            "this server has no Meta app for the embedded sign-up (WHATSAPP_APP_ID and \
             WHATSAPP_APP_SECRET)",
        )),
        Some(PROVIDER_SANDBOX) if w.sandbox_enabled => Ok(PROVIDER_SANDBOX),
        Some(PROVIDER_SANDBOX) => Err(AppError::bad_input(
            "provider",
            "the sandbox is turned off on this server",
        )),
        Some(_) => Err(AppError::bad_input("provider", "META or SANDBOX")),
        None if meta_ready => Ok(PROVIDER_META),
        None if w.sandbox_enabled => Ok(PROVIDER_SANDBOX),
        None => Err(AppError::Refused {
            code: ErrorCode::WhatsAppNotConnected,
            message: "this server has neither a Meta app nor the sandbox".into(),
        }),
    }
}

/// Starts an application. Refused for restricted industries (and an undeclared one);
/// one open application per project. A project with a live number may start one to
/// change its number: the new one replaces it when it goes live.
pub async fn start(
    state: &AppState,
    scope: &Scope,
    provider: Option<&str>,
) -> AppResult<app::Model> {
    let provider = pick_provider(state, provider)?;
    let checklist = checklist::evaluation(state, scope.project_id).await?;
    let industry = checklist
        .items
        .iter()
        .find(|i| i.key == "INDUSTRY")
        .filter(|i| i.status != checklist::ItemStatus::Met);
    if let Some(industry) = industry {
        let mut details = serde_json::Map::new();
        details.insert(
            "reasons".into(),
            json!([{ "code": "INDUSTRY", "reason": industry.detail }]),
        );
        return Err(AppError::RefusedWith {
            code: ErrorCode::NotEligible,
            message: industry
                .detail
                .clone()
                .unwrap_or_else(|| "the business cannot apply".into()),
            details,
        });
    }
    let now = state.settings.clock.now();
    let replaces = live(&state.db, scope.project_id).await?;
    let row = app::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        open_key: Set(Some(scope.project_id)),
        provider: Set(provider.to_owned()),
        step: Set(CONNECT_ACCOUNT.into()),
        status: Set(IN_PROGRESS.into()),
        attempts: Set(0),
        failure_step: Set(None),
        failure_code: Set(None),
        failure_reason: Set(None),
        failure_retryable: Set(false),
        failed_at: Set(None),
        pending_until: Set(None),
        pending: Set(None),
        access_token: Set(None),
        business_manager_id: Set(None),
        business_manager_name: Set(None),
        waba_id: Set(None),
        waba_name: Set(None),
        timezone: Set(None),
        display_name: Set(None),
        category: Set(None),
        description: Set(None),
        phone_number: Set(None),
        phone_number_id: Set(None),
        code_method: Set(None),
        behind_ivr: Set(false),
        two_step_enabled: Set(false),
        created_by: Set(scope.user_id),
        created_at: Set(now),
        updated_at: Set(now),
        live_at: Set(None),
        closed_at: Set(None),
    };
    let txn = state.db.begin().await?;
    let created = row.insert(&txn).await.map_err(|e| {
        if validate::is_unique_violation(&e) {
            AppError::Conflict("an application is already in progress for this project".into())
        } else {
            e.into()
        }
    })?;
    let details = json!({
        "provider": provider,
        "replacesNumber": replaces.as_ref().and_then(|r| r.phone_number.clone()),
    });
    record(
        &txn,
        &created,
        CONNECT_ACCOUNT,
        "START",
        "SUCCEEDED",
        None,
        scope.user_id,
        details,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// Abandons the open application (a live number is left with `requestDowngrade`).
pub async fn cancel(state: &AppState, scope: &Scope) -> AppResult<app::Model> {
    let current = open(state, scope.project_id).await?;
    let now = state.settings.clock.now();
    let txn = state.db.begin().await?;
    let changed = conditional_update(
        &txn,
        &current,
        app::ActiveModel {
            status: Set(CANCELLED.into()),
            open_key: Set(None),
            pending: Set(None),
            pending_until: Set(None),
            closed_at: Set(Some(now)),
            updated_at: Set(now),
            ..Default::default()
        },
    )
    .await?;
    record(
        &txn,
        &changed,
        &current.step,
        "CANCEL",
        "SUCCEEDED",
        None,
        scope.user_id,
        json!({}),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(changed)
}

/// The open application, settled.
async fn open(state: &AppState, project_id: Uuid) -> AppResult<app::Model> {
    let found = app::Entity::find()
        .filter(app::Column::OpenKey.eq(project_id))
        .one(&state.db)
        .await?;
    match found {
        Some(found) => settle(state, found).await,
        None if live(&state.db, project_id).await?.is_some() => Err(AppError::Refused {
            code: ErrorCode::NumberLocked,
            message: "the project's number is live and cannot be changed: start a new \
                      application (startOnboarding) for another number"
                .into(),
        }),
        None => Err(AppError::NotFound("onboarding application")),
    }
}

/// The open application, when it waits for one of `steps` (and is not processing).
async fn open_at(state: &AppState, scope: &Scope, steps: &[&str]) -> AppResult<app::Model> {
    let current = open(state, scope.project_id).await?;
    if current.status == PROCESSING || !steps.contains(&current.step.as_str()) {
        let mut details = serde_json::Map::new();
        details.insert("currentStep".into(), current.step.clone().into());
        details.insert("status".into(), current.status.clone().into());
        let message = if current.status == PROCESSING {
            format!(
                "the {} step is still being processed",
                current.step.to_lowercase().replace('_', " ")
            )
        } else {
            format!(
                "the application is at the {} step, not {}",
                current.step,
                steps.join(" or ")
            )
        };
        return Err(AppError::RefusedWith {
            code: ErrorCode::OnboardingWrongStep,
            message,
            details,
        });
    }
    Ok(current)
}

/// Validates with `check`; a refusal is recorded on the trail before it is returned.
async fn validated<T>(
    state: &AppState,
    scope: &Scope,
    current: &app::Model,
    action: &str,
    check: impl FnOnce() -> AppResult<T>,
) -> AppResult<T> {
    match check() {
        Ok(value) => Ok(value),
        Err(err) => {
            let now = state.settings.clock.now();
            let field = match &err {
                AppError::BadInput { field, .. } => field.map(str::to_owned),
                AppError::Invalid { problems, .. } => problems.first().map(|p| p.path.clone()),
                _ => None,
            };
            let problems = match &err {
                AppError::Invalid { problems, .. } => serde_json::to_value(problems).ok(),
                _ => None,
            };
            let details = json!({ "field": field, "problems": problems });
            if let Err(record_err) = record(
                &state.db,
                current,
                &current.step,
                action,
                "REJECTED",
                Some(err.to_string()),
                scope.user_id,
                details,
                now,
            )
            .await
            {
                tracing::warn!(error = ?record_err, "could not record a refused onboarding step");
            }
            Err(err)
        }
    }
}

pub async fn connect_account(state: &AppState, scope: &Scope, code: &str) -> AppResult<app::Model> {
    let current = open_at(state, scope, &[CONNECT_ACCOUNT]).await?;
    let action = "CONNECT_ACCOUNT";
    let code = validated(state, scope, &current, action, || {
        let code = validate::text("code", code, 2048)?;
        if code.contains(char::is_whitespace) {
            return Err(AppError::bad_input(
                "code",
                "the code from Facebook's login has no spaces",
            ));
        }
        Ok(code)
    })
    .await?;
    let provider = state.whatsapp.signup(&current.provider);
    let outcome = Outcome::new(action, CONNECT_ACCOUNT, json!({}));
    let outcome = match provider.exchange_code(&code).await {
        Ok(token) => {
            let mut outcome = outcome.succeed(BUSINESS_MANAGER);
            outcome.changes.access_token = Some(token);
            outcome
        }
        Err(err) => outcome.fail(&err),
    };
    finish(state, scope, current, outcome).await
}

pub async fn select_business_manager(
    state: &AppState,
    scope: &Scope,
    business_manager_id: &str,
    name: &str,
) -> AppResult<app::Model> {
    let current = open_at(state, scope, &[BUSINESS_MANAGER]).await?;
    let action = "SELECT_BUSINESS_MANAGER";
    let (id, name) = validated(state, scope, &current, action, || {
        Ok((
            meta_id("businessManagerId", business_manager_id)?,
            validate::text("name", name, 128)?,
        ))
    })
    .await?;
    let mut outcome = Outcome::new(
        action,
        BUSINESS_MANAGER,
        json!({ "businessManagerId": id, "name": name }),
    )
    .succeed(WHATSAPP_ACCOUNT);
    outcome.changes.business_manager_id = Some(id);
    outcome.changes.business_manager_name = Some(name);
    finish(state, scope, current, outcome).await
}

pub async fn set_whatsapp_account(
    state: &AppState,
    scope: &Scope,
    waba_id: Option<&str>,
    name: &str,
    timezone: &str,
) -> AppResult<app::Model> {
    let current = open_at(state, scope, &[WHATSAPP_ACCOUNT]).await?;
    let action = "SET_WHATSAPP_ACCOUNT";
    let meta = current.provider == PROVIDER_META;
    let (waba_id, name, timezone) = validated(state, scope, &current, action, || {
        let waba_id = match waba_id.map(str::trim).filter(|w| !w.is_empty()) {
            Some(id) => Some(meta_id("wabaId", id)?),
            None if meta => {
                return Err(AppError::bad_input(
                    "wabaId",
                    "give the WhatsApp Business Account that Meta's sign-up dialog created or \
                     picked (its id)",
                ));
            }
            None => None,
        };
        let name = validate::text("name", name, 128)?;
        let timezone = timezone.trim();
        if !rules::valid_timezone(timezone) {
            return Err(AppError::bad_input(
                "timezone",
                "a time zone such as Asia/Kolkata or UTC+05:30",
            ));
        }
        Ok((waba_id, name, timezone.to_owned()))
    })
    .await?;
    let created = waba_id.is_none();
    // The sandbox makes the account (the project's own sandbox account's id).
    let waba_id = waba_id.unwrap_or_else(|| format!("sandbox-waba-{}", scope.project_id.simple()));
    let mut outcome = Outcome::new(
        action,
        WHATSAPP_ACCOUNT,
        json!({ "wabaId": waba_id, "name": name, "timezone": timezone, "created": created }),
    )
    .succeed(BUSINESS_PROFILE);
    outcome.changes.waba_id = Some(waba_id);
    outcome.changes.waba_name = Some(name);
    outcome.changes.timezone = Some(timezone);
    finish(state, scope, current, outcome).await
}

pub async fn set_business_profile(
    state: &AppState,
    scope: &Scope,
    display_name: &str,
    category: &str,
    description: Option<&str>,
) -> AppResult<app::Model> {
    let current = open_at(state, scope, &[BUSINESS_PROFILE]).await?;
    let action = "SET_BUSINESS_PROFILE";
    let (answers, _) = checklist::answers(&state.db, scope.project_id).await?;
    let (display_name, category, description) = validated(state, scope, &current, action, || {
        let has_website = answers
            .website_url
            .as_deref()
            .and_then(checklist::web_host)
            .is_some();
        let problems =
            rules::check_display_name(display_name, answers.legal_name.as_deref(), has_website);
        if !problems.is_empty() {
            return Err(AppError::Invalid {
                message: "the display name does not follow WhatsApp's rules".into(),
                problems,
            });
        }
        let category = category.trim().to_ascii_uppercase();
        if !rules::BUSINESS_CATEGORIES
            .iter()
            .any(|(key, _)| *key == category)
        {
            return Err(AppError::bad_input(
                "category",
                "one of WhatsApp's business categories (businessCategories)",
            ));
        }
        let description = description
            .filter(|d| !d.trim().is_empty())
            .map(|d| validate::text("description", d, 512))
            .transpose()?;
        Ok((display_name.trim().to_owned(), category, description))
    })
    .await?;
    let mut outcome = Outcome::new(
        action,
        BUSINESS_PROFILE,
        json!({ "displayName": display_name, "category": category }),
    )
    .succeed(PHONE_NUMBER);
    outcome.changes.display_name = Some(display_name);
    outcome.changes.category = Some(category);
    outcome.changes.description = Some(description);
    finish(state, scope, current, outcome).await
}

/// The number to register and how its code is sent.
pub struct PhoneInput {
    pub phone_number: String,
    /// `SMS` or `VOICE`.
    pub code_method: String,
    pub behind_ivr: bool,
    /// The id Meta's sign-up dialog gave the number, when it added it already.
    pub phone_number_id: Option<String>,
}

/// Adds the number (unless Meta's dialog did) and sends its code. Allowed again while
/// the code is awaited, to correct the number.
pub async fn submit_phone_number(
    state: &AppState,
    scope: &Scope,
    input: PhoneInput,
) -> AppResult<app::Model> {
    let current = open_at(state, scope, &[PHONE_NUMBER, CODE_SENT]).await?;
    let action = "SUBMIT_PHONE_NUMBER";
    let project = project::Entity::find_by_id(scope.project_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("project"))?;
    let check = rules::check_phone_number(
        &input.phone_number,
        &project.default_country,
        &state.settings.unreachable,
        input.behind_ivr,
    );
    let (e164, method, given_id) = validated(state, scope, &current, action, || {
        if !check.allowed() {
            return Err(AppError::Invalid {
                message: "this phone number cannot be registered".into(),
                problems: check.problems.clone(),
            });
        }
        let method = code_method(&input.code_method)?;
        if method == "SMS" && matches!(check.kind, "FIXED_LINE" | "TOLL_FREE") {
            return Err(AppError::Invalid {
                message: "this number cannot receive an SMS".into(),
                problems: vec![crate::errors::Problem {
                    path: "codeMethod".into(),
                    code: "SMS_UNAVAILABLE".into(),
                    message: "landlines and toll-free numbers cannot receive an SMS: choose \
                              VOICE"
                        .into(),
                }],
            });
        }
        let given_id = input
            .phone_number_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(|id| meta_id("phoneNumberId", id))
            .transpose()?;
        Ok((check.e164.clone().unwrap_or_default(), method, given_id))
    })
    .await?;
    if number_in_use(state, scope.project_id, &e164).await? {
        let err = AppError::Conflict(
            "one number serves one API client: this number is registered or being registered \
             by another project"
                .into(),
        );
        return validated(state, scope, &current, action, || Err(err)).await;
    }
    let token = current.access_token.clone().unwrap_or_default();
    let waba_id = current.waba_id.clone().unwrap_or_default();
    let provider = state.whatsapp.signup(&current.provider);
    let mut outcome = Outcome::new(
        action,
        &current.step,
        json!({
            "phoneNumber": e164,
            "codeMethod": method,
            "behindIvr": input.behind_ivr,
            "kind": check.kind,
        }),
    );
    outcome.changes.phone_number = Some(e164.clone());
    outcome.changes.code_method = Some(method.clone());
    outcome.changes.behind_ivr = Some(input.behind_ivr);
    // The same number again (a retry) reuses the id Meta gave it.
    let known_id = current
        .phone_number_id
        .clone()
        .filter(|_| current.phone_number.as_deref() == Some(e164.as_str()));
    let phone_number_id = match given_id.or(known_id) {
        Some(id) => id,
        None => {
            let (country_code, national_number) = split_number(&e164);
            let request = PhoneNumberRequest {
                country_code,
                national_number,
                display_name: current.display_name.clone().unwrap_or_default(),
            };
            match provider.add_phone_number(&token, &waba_id, &request).await {
                Ok(id) => id,
                Err(err) => return finish(state, scope, current, outcome.fail(&err)).await,
            }
        }
    };
    outcome.changes.phone_number_id = Some(phone_number_id.clone());
    let outcome = match provider
        .request_code(&token, &phone_number_id, &method, CODE_LANGUAGE)
        .await
    {
        Ok(()) => outcome.succeed(CODE_SENT),
        Err(err) => outcome.fail(&err),
    };
    finish(state, scope, current, outcome).await
}

/// Sends the code again (by `method`, or as before).
pub async fn resend_code(
    state: &AppState,
    scope: &Scope,
    method: Option<&str>,
) -> AppResult<app::Model> {
    let current = open_at(state, scope, &[CODE_SENT]).await?;
    let action = "RESEND_CODE";
    let method = validated(state, scope, &current, action, || match method {
        Some(m) => code_method(m),
        None => Ok(current.code_method.clone().unwrap_or_else(|| "SMS".into())),
    })
    .await?;
    let (token, phone_number_id) = number_handles(&current);
    let provider = state.whatsapp.signup(&current.provider);
    let mut outcome = Outcome::new(action, CODE_SENT, json!({ "codeMethod": method }));
    outcome.changes.code_method = Some(method.clone());
    let outcome = match provider
        .request_code(&token, &phone_number_id, &method, CODE_LANGUAGE)
        .await
    {
        Ok(()) => outcome.succeed(CODE_SENT),
        Err(err) => outcome.fail(&err),
    };
    finish(state, scope, current, outcome).await
}

/// The access token and the number's id the steps after `PHONE_NUMBER` call Meta with
/// (both recorded by then).
fn number_handles(current: &app::Model) -> (String, String) {
    (
        current.access_token.clone().unwrap_or_default(),
        current.phone_number_id.clone().unwrap_or_default(),
    )
}

pub async fn verify_code(state: &AppState, scope: &Scope, code: &str) -> AppResult<app::Model> {
    let current = open_at(state, scope, &[CODE_SENT]).await?;
    let action = "VERIFY_CODE";
    let code = validated(state, scope, &current, action, || {
        six_digits("code", code, "the verification code has 6 digits")
    })
    .await?;
    let (token, phone_number_id) = number_handles(&current);
    let provider = state.whatsapp.signup(&current.provider);
    let outcome = Outcome::new(action, CODE_SENT, json!({}));
    let outcome = match provider.verify_code(&token, &phone_number_id, &code).await {
        Ok(()) => outcome.succeed(VERIFIED),
        Err(err) => outcome.fail(&err),
    };
    finish(state, scope, current, outcome).await
}

/// Registers the verified number with its two-step verification PIN, sets the business
/// profile, and the project is live.
pub async fn register(state: &AppState, scope: &Scope, pin: &str) -> AppResult<app::Model> {
    let current = open_at(state, scope, &[VERIFIED]).await?;
    let action = "REGISTER";
    let pin = validated(state, scope, &current, action, || {
        six_digits("pin", pin, "the two-step verification PIN has 6 digits")
    })
    .await?;
    let (token, phone_number_id) = number_handles(&current);
    let provider = state.whatsapp.signup(&current.provider);
    let outcome = Outcome::new(action, VERIFIED, json!({ "twoStepVerification": true }));
    let registered = provider.register(&token, &phone_number_id, &pin).await;
    let outcome = match registered {
        Err(err) => outcome.fail(&err),
        Ok(()) => {
            let profile = BusinessProfile {
                vertical: current.category.clone().unwrap_or_else(|| "OTHER".into()),
                description: current.description.clone(),
            };
            match provider
                .set_business_profile(&token, &phone_number_id, &profile)
                .await
            {
                Ok(()) => {
                    let mut outcome = outcome.succeed(LIVE);
                    outcome.changes.two_step_enabled = Some(true);
                    outcome
                }
                Err(err) => outcome.fail(&err),
            }
        }
    };
    finish(state, scope, current, outcome).await
}

/// Applies an attempt's outcome now (Meta), or schedules it (the sandbox's delay).
async fn finish(
    state: &AppState,
    scope: &Scope,
    current: app::Model,
    outcome: Outcome,
) -> AppResult<app::Model> {
    let now = state.settings.clock.now();
    if current.provider == PROVIDER_SANDBOX {
        let delay = Duration::from_std(state.settings.onboarding.sandbox_step_delay)
            .unwrap_or(Duration::zero());
        let txn = state.db.begin().await?;
        let changed = conditional_update(
            &txn,
            &current,
            app::ActiveModel {
                status: Set(PROCESSING.into()),
                attempts: Set(current.attempts + 1),
                pending: Set(Some(
                    serde_json::to_string(&outcome).map_err(AppError::internal)?,
                )),
                pending_until: Set(Some(now + delay)),
                updated_at: Set(now),
                ..Default::default()
            },
        )
        .await?;
        record(
            &txn,
            &changed,
            &outcome.step,
            &outcome.action,
            "PENDING",
            None,
            scope.user_id,
            outcome.details.clone(),
            now,
        )
        .await?;
        txn.commit().await?;
        // A zero delay settles at once.
        return settle(state, changed).await;
    }
    let txn = state.db.begin().await?;
    let applied = apply(state, &txn, &current, &outcome, scope.user_id, true, now).await?;
    txn.commit().await?;
    Ok(applied)
}

/// Applies a sandbox outcome that has come due; whoever reads first does it.
async fn settle(state: &AppState, current: app::Model) -> AppResult<app::Model> {
    let now = state.settings.clock.now();
    let due = current.status == PROCESSING && current.pending_until.is_some_and(|at| at <= now);
    let Some(pending) = current.pending.as_deref().filter(|_| due) else {
        return Ok(current);
    };
    let outcome: Outcome = serde_json::from_str(pending).map_err(AppError::internal)?;
    let at = current.pending_until.unwrap_or(now);
    let txn = state.db.begin().await?;
    match apply(state, &txn, &current, &outcome, None, false, at).await {
        Ok(applied) => {
            txn.commit().await?;
            Ok(applied)
        }
        // Another reader settled it first.
        Err(AppError::Conflict(_)) => {
            drop(txn);
            app::Entity::find_by_id(current.id)
                .one(&state.db)
                .await?
                .ok_or(AppError::NotFound("onboarding application"))
        }
        Err(err) => Err(err),
    }
}

/// Writes an outcome on the application and its audit row, in `txn`.
async fn apply<C: ConnectionTrait>(
    state: &AppState,
    txn: &C,
    current: &app::Model,
    outcome: &Outcome,
    actor: Option<Uuid>,
    count_attempt: bool,
    now: DateTime<Utc>,
) -> AppResult<app::Model> {
    let c = &outcome.changes;
    let mut update = app::ActiveModel {
        pending: Set(None),
        pending_until: Set(None),
        updated_at: Set(now),
        ..Default::default()
    };
    macro_rules! copy {
        ($($field:ident),*) => {$(
            if let Some(value) = c.$field.clone() {
                update.$field = Set(value.into());
            }
        )*};
    }
    copy!(
        access_token,
        business_manager_id,
        business_manager_name,
        waba_id,
        waba_name,
        timezone,
        display_name,
        category,
        phone_number,
        phone_number_id,
        code_method
    );
    if let Some(description) = c.description.clone() {
        update.description = Set(description);
    }
    if let Some(v) = c.behind_ivr {
        update.behind_ivr = Set(v);
    }
    if let Some(v) = c.two_step_enabled {
        update.two_step_enabled = Set(v);
    }
    let attempts = current.attempts + i32::from(count_attempt);
    let (audit_outcome, reason) = match (&outcome.next_step, &outcome.failure) {
        (Some(next), _) => {
            update.step = Set(next.clone());
            update.failure_step = Set(None);
            update.failure_code = Set(None);
            update.failure_reason = Set(None);
            update.failure_retryable = Set(false);
            update.failed_at = Set(None);
            // Attempts count at a step; a resend stays at its step.
            update.attempts = Set(if *next == current.step { attempts } else { 0 });
            if next == LIVE {
                update.status = Set(STATUS_LIVE.into());
                update.open_key = Set(None);
                update.live_at = Set(Some(now));
            } else {
                update.status = Set(IN_PROGRESS.into());
            }
            ("SUCCEEDED", None)
        }
        (None, failure) => {
            let failure = failure.clone().unwrap_or(StepFailure {
                code: "INTERNAL".into(),
                reason: "the step failed".into(),
                retryable: true,
            });
            update.status = Set(FAILED.into());
            update.attempts = Set(attempts);
            update.failure_step = Set(Some(outcome.step.clone()));
            update.failure_code = Set(Some(failure.code.clone()));
            update.failure_reason = Set(Some(failure.reason.clone()));
            update.failure_retryable = Set(failure.retryable);
            update.failed_at = Set(Some(now));
            ("FAILED", Some(failure.reason))
        }
    };
    let changed = conditional_update(txn, current, update).await?;
    let mut details = outcome.details.clone();
    if let Some(map) = details.as_object_mut() {
        map.insert("attempt".into(), attempts.max(1).into());
        if let Some(failure) = &outcome.failure {
            map.insert("failureCode".into(), failure.code.clone().into());
            map.insert("retryable".into(), failure.retryable.into());
        }
    }
    record(
        txn,
        &changed,
        &outcome.step,
        &outcome.action,
        audit_outcome,
        reason,
        actor,
        details,
        now,
    )
    .await?;
    if changed.status == STATUS_LIVE {
        go_live(state, txn, &changed, now).await?;
    }
    Ok(changed)
}

/// The project sends from the new number: its WhatsApp account points at it, and an
/// earlier live application is replaced.
async fn go_live<C: ConnectionTrait>(
    _state: &AppState,
    txn: &C,
    live_app: &app::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    use parley_entity::whatsapp_account as account;
    app::Entity::update_many()
        .col_expr(app::Column::Status, REPLACED.into())
        .col_expr(app::Column::ClosedAt, Some(now).into())
        .col_expr(app::Column::UpdatedAt, now.into())
        .filter(app::Column::ProjectId.eq(live_app.project_id))
        .filter(app::Column::Status.eq(STATUS_LIVE))
        .filter(app::Column::Id.ne(live_app.id))
        .exec(txn)
        .await?;
    let meta = live_app.provider == PROVIDER_META;
    let existing = account::Entity::find_by_id(live_app.project_id)
        .one(txn)
        .await?;
    let is_new = existing.is_none();
    let mut row: account::ActiveModel = match existing {
        Some(model) => model.into(),
        None => account::ActiveModel {
            project_id: Set(live_app.project_id),
            app_secret: Set(None),
            verify_token: Set(None),
            messaging_limit: Set(None),
            throughput_per_second: Set(80),
            created_at: Set(now),
            ..Default::default()
        },
    };
    row.provider = Set(live_app.provider.clone());
    row.waba_id = Set(live_app.waba_id.clone().unwrap_or_default());
    row.phone_number_id = Set(live_app.phone_number_id.clone().unwrap_or_default());
    row.display_phone_number = Set(live_app.phone_number.clone());
    row.access_token = Set(if meta {
        live_app.access_token.clone()
    } else {
        None
    });
    row.updated_at = Set(now);
    let saved = if is_new {
        row.insert(txn).await.map(|_| ())
    } else {
        row.update(txn).await.map(|_| ())
    };
    saved.map_err(|e| {
        if validate::is_unique_violation(&e) {
            AppError::Conflict("this phone number is connected to another project already".into())
        } else {
            e.into()
        }
    })
}

/// Updates the application only if it is as `current` was read.
async fn conditional_update<C: ConnectionTrait>(
    conn: &C,
    current: &app::Model,
    update: app::ActiveModel,
) -> AppResult<app::Model> {
    let result = app::Entity::update_many()
        .set(update)
        .filter(app::Column::Id.eq(current.id))
        .filter(app::Column::Step.eq(current.step.clone()))
        .filter(app::Column::Status.eq(current.status.clone()))
        .filter(app::Column::Attempts.eq(current.attempts))
        .exec(conn)
        .await?;
    if result.rows_affected != 1 {
        return Err(AppError::Conflict(
            "the application changed meanwhile: read it again".into(),
        ));
    }
    app::Entity::find_by_id(current.id)
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("onboarding application"))
}

/// One audit row.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record<C: ConnectionTrait>(
    conn: &C,
    application: &app::Model,
    step: &str,
    action: &str,
    outcome: &str,
    reason: Option<String>,
    actor: Option<Uuid>,
    details: Value,
    at: DateTime<Utc>,
) -> AppResult<()> {
    event::ActiveModel {
        id: Set(Uuid::now_v7()),
        application_id: Set(application.id),
        project_id: Set(application.project_id),
        step: Set(step.to_owned()),
        action: Set(action.to_owned()),
        outcome: Set(outcome.to_owned()),
        reason: Set(reason),
        actor_id: Set(actor),
        details: Set(Some(details.to_string())),
        created_at: Set(at),
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// Whether another project's open or live application has this number.
async fn number_in_use(state: &AppState, project_id: Uuid, e164: &str) -> AppResult<bool> {
    let taken = app::Entity::find()
        .filter(app::Column::PhoneNumber.eq(e164))
        .filter(app::Column::ProjectId.ne(project_id))
        .filter(
            sea_orm::Condition::any()
                .add(app::Column::OpenKey.is_not_null())
                .add(app::Column::Status.eq(STATUS_LIVE)),
        )
        .one(&state.db)
        .await?;
    Ok(taken.is_some())
}

/// Country calling code and national number of an E.164 number.
fn split_number(e164: &str) -> (String, String) {
    match phonenumber::parse(None, e164) {
        Ok(number) => (
            number.code().value().to_string(),
            number.national().to_string(),
        ),
        Err(_) => (String::new(), e164.trim_start_matches('+').to_owned()),
    }
}

fn code_method(raw: &str) -> AppResult<String> {
    let method = raw.trim().to_ascii_uppercase();
    if method != "SMS" && method != "VOICE" {
        return Err(AppError::bad_input(
            "codeMethod",
            "the code is sent by SMS or VOICE",
        ));
    }
    Ok(method)
}

fn six_digits(field: &'static str, raw: &str, message: &str) -> AppResult<String> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if digits.len() != 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(AppError::bad_input(field, message));
    }
    Ok(digits)
}

fn meta_id(field: &'static str, raw: &str) -> AppResult<String> {
    let value = raw.trim();
    if value.is_empty() || value.len() > 64 || !value.chars().all(|c| c.is_ascii_digit()) {
        return Err(AppError::bad_input(
            field,
            "Meta's ids are numbers, as shown in Meta's sign-up dialog or Business Manager",
        ));
    }
    Ok(value.to_owned())
}
