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
    #[error("a service is unavailable, please retry")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

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
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        use sea_orm::DbErr;
        match &err {
            // The pool could not give a connection: the database is down or overloaded.
            DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => Self::Unavailable(err.into()),
            _ => Self::Internal(err.into()),
        }
    }
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
            _ => async_graphql::Error::new(self.to_string())
                .extend_with(|_, e| e.set("code", code.as_str())),
        }
    }
}
