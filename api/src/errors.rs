//! User-facing errors. Each has a stable `extensions.code`; internal causes are logged with
//! an error id and never shown to the caller.

use async_graphql::ErrorExtensions;

/// The fixed set of error codes clients can rely on (documented in docs/errors.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// No valid credentials (missing, expired or tampered token, revoked API key).
    Unauthenticated,
    /// Authenticated, but the role or project does not allow this operation.
    Forbidden,
    /// The object does not exist in the caller's project.
    NotFound,
    /// The input failed validation; `extensions.field` names the input when known.
    BadUserInput,
    /// The change conflicts with existing data (a name already taken, say).
    Conflict,
    /// The project's plan does not allow this (the free trial's 5 agents, say).
    PlanLimitReached,
    /// The project is archived: it can be read, not changed.
    ProjectArchived,
    /// Too many requests; retry later.
    RateLimited,
    /// A dependency is unavailable for a moment; the same request may succeed later.
    Unavailable,
    /// Something failed on our side; `extensions.errorId` finds it in the logs.
    Internal,
    /// The request is not valid GraphQL.
    GraphqlParseFailed,
    /// The request does not validate against the schema, or exceeds depth or complexity.
    GraphqlValidationFailed,
    /// A mutation was sent over GET.
    MethodNotAllowed,
    /// A free-form message outside the 24 hours after the contact's last message; send
    /// an approved template instead.
    WindowClosed,
    /// The template is not approved by Meta (draft, pending, rejected, paused, disabled).
    TemplateNotApproved,
    /// The contact opted out (STOP) of messages from the business.
    ContactOptedOut,
    /// The project has no WhatsApp number and the sandbox is off.
    WhatsAppNotConnected,
    /// Meta refused the request; `extensions.metaCode` is Meta's error code.
    ProviderRejected,
    /// The chat is in History (the contact's last message is over 24 hours old).
    ChatInHistory,
    /// The wallet cannot pay for a billable message (`extensions.balance`, `required`,
    /// `currency`).
    InsufficientCredits,
    /// No rate-card price for a billable message's country, category and currency.
    RateUnavailable,
    /// An invoice is still unpaid (cancelling needs it settled first).
    PaymentPending,
    /// The feature needs another plan (`extensions.requiredPlan`).
    PlanUpgradeRequired,
    /// The audience is larger than the messaging limit allows today (`extensions.limit`,
    /// `reachedToday`, `remainingToday`, `recipients`).
    MessagingLimitExceeded,
    /// The API campaign is paused (or no longer live): CRM calls are refused until it is
    /// resumed.
    CampaignPaused,
    /// Onboarding: the application is not at the step this mutation completes
    /// (`extensions.currentStep`, `status`).
    OnboardingWrongStep,
    /// The project's number is registered (live): changing it needs a new application.
    NumberLocked,
    /// The project does not meet the criteria (`extensions.reasons`; `availableAt` when
    /// only time stands in the way).
    NotEligible,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::PlanLimitReached => "PLAN_LIMIT_REACHED",
            Self::ProjectArchived => "PROJECT_ARCHIVED",
            Self::RateLimited => "RATE_LIMITED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
            Self::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::WindowClosed => "CUSTOMER_SERVICE_WINDOW_CLOSED",
            Self::TemplateNotApproved => "TEMPLATE_NOT_APPROVED",
            Self::ContactOptedOut => "CONTACT_OPTED_OUT",
            Self::WhatsAppNotConnected => "WHATSAPP_NOT_CONNECTED",
            Self::ProviderRejected => "PROVIDER_REJECTED",
            Self::ChatInHistory => "CHAT_IN_HISTORY",
            Self::InsufficientCredits => "INSUFFICIENT_CREDITS",
            Self::RateUnavailable => "RATE_UNAVAILABLE",
            Self::PaymentPending => "PAYMENT_PENDING",
            Self::PlanUpgradeRequired => "PLAN_UPGRADE_REQUIRED",
            Self::MessagingLimitExceeded => "MESSAGING_LIMIT_EXCEEDED",
            Self::CampaignPaused => "CAMPAIGN_PAUSED",
            Self::OnboardingWrongStep => "ONBOARDING_WRONG_STEP",
            Self::NumberLocked => "NUMBER_LOCKED",
            Self::NotEligible => "NOT_ELIGIBLE",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    BadInput {
        field: Option<&'static str>,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PlanLimit(String),
    #[error("the project is archived and cannot be changed")]
    ProjectArchived,
    /// A rule of WhatsApp's stands in the way (`code` says which).
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// Meta refused the request with its own error code.
    /// Refused, with figures the caller can act on (set as `extensions` beside the code).
    #[error("{message}")]
    RefusedWith {
        code: ErrorCode,
        message: String,
        details: serde_json::Map<String, serde_json::Value>,
    },
    #[error("WhatsApp refused the request: {message}")]
    Provider {
        meta_code: Option<i64>,
        message: String,
    },
    /// Several inputs are wrong at once; each problem names its input path.
    #[error("{message}")]
    Invalid {
        message: String,
        problems: Vec<Problem>,
    },
    #[error("a service is unavailable, please retry")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

/// One wrong input among several: where, a stable code, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub path: String,
    pub code: String,
    pub message: String,
}

impl AppError {
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        Self::BadInput {
            field: Some(field),
            message: message.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::BadInput { .. } => ErrorCode::BadUserInput,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::PlanLimit(_) => ErrorCode::PlanLimitReached,
            Self::ProjectArchived => ErrorCode::ProjectArchived,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
            Self::Refused { code, .. } | Self::RefusedWith { code, .. } => *code,
            Self::Provider { .. } => ErrorCode::ProviderRejected,
            Self::Invalid { .. } => ErrorCode::BadUserInput,
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match &err {
            // The pool could not give a connection: the database is down or overloaded.
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(err.into()),
            // The embedded database lets one writer in at a time; a transaction that read
            // before another committed may not write. The same request succeeds on retry.
            _ if is_sqlite_busy(&err) => Self::Unavailable(err.into()),
            // The database went away under a pooled connection (a restart, a failover):
            // the same request succeeds once it is back, so clients should retry.
            _ if is_connection_lost(&err) => Self::Unavailable(err.into()),
            _ => Self::Internal(err.into()),
        }
    }
}

/// A lost or refused connection rather than a failing statement: I/O errors, a closed
/// pool, and PostgreSQL's connection exceptions (class 08), shutdown (57P01 admin, 57P02
/// crash, 57P03 cannot connect now) and too many connections (53300).
fn is_connection_lost(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    let sqlx_error = match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    match sqlx_error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

fn is_sqlite_busy(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    let sqlx_error = match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return false,
    };
    // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
    sqlx_error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 5 | 6))
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.extend()
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        let code = self.code();
        match self {
            Self::Internal(cause) | Self::Unavailable(cause) => {
                let error_id = uuid::Uuid::new_v4();
                tracing::error!(%error_id, code = code.as_str(), error = ?cause, "request failed");
                async_graphql::Error::new(self.to_string()).extend_with(|_, e| {
                    e.set("code", code.as_str());
                    e.set("errorId", error_id.to_string());
                })
            }
            Self::BadInput { field, .. } => async_graphql::Error::new(self.to_string())
                .extend_with(|_, e| {
                    e.set("code", code.as_str());
                    if let Some(field) = field {
                        e.set("field", *field);
                    }
                }),
            Self::Provider { meta_code, .. } => async_graphql::Error::new(self.to_string())
                .extend_with(|_, e| {
                    e.set("code", code.as_str());
                    if let Some(meta_code) = meta_code {
                        e.set("metaCode", *meta_code);
                    }
                }),
            Self::Invalid { problems, .. } => async_graphql::Error::new(self.to_string())
                .extend_with(|_, e| {
                    e.set("code", code.as_str());
                    if let Ok(list) =
                        serde_json::to_value(problems).and_then(async_graphql::Value::from_json)
                    {
                        e.set("problems", list);
                    }
                }),
            Self::RefusedWith { details, .. } => async_graphql::Error::new(self.to_string())
                .extend_with(|_, e| {
                    e.set("code", code.as_str());
                    for (key, value) in details {
                        if let Ok(value) = async_graphql::Value::from_json(value.clone()) {
                            e.set(key, value);
                        }
                    }
                }),
            _ => async_graphql::Error::new(self.to_string())
                .extend_with(|_, e| e.set("code", code.as_str())),
        }
    }
}
