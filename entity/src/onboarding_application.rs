use sea_orm::entity::prelude::*;

/// A WhatsApp Business API application of a project: the embedded sign-up, step by step.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "onboarding_applications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    /// The project's id while the application is open; `None` once live, cancelled or
    /// replaced (unique: one open application per project).
    #[sea_orm(unique)]
    pub open_key: Option<Uuid>,
    /// `meta` or `sandbox`.
    pub provider: String,
    /// The step waiting for its input: `CONNECT_ACCOUNT`, `BUSINESS_MANAGER`,
    /// `WHATSAPP_ACCOUNT`, `BUSINESS_PROFILE`, `PHONE_NUMBER`, `CODE_SENT`, `VERIFIED`,
    /// `LIVE`.
    pub step: String,
    /// `IN_PROGRESS`, `PROCESSING`, `FAILED`, `LIVE`, `CANCELLED`, `REPLACED`,
    /// `DOWNGRADED`.
    pub status: String,
    /// Attempts at the current step.
    pub attempts: i32,
    pub failure_step: Option<String>,
    pub failure_code: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub failure_reason: Option<String>,
    pub failure_retryable: bool,
    pub failed_at: Option<DateTimeUtc>,
    /// When the outcome in `pending` takes effect (the sandbox's delays).
    pub pending_until: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub pending: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub access_token: Option<String>,
    pub business_manager_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub business_manager_name: Option<String>,
    pub waba_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub waba_name: Option<String>,
    pub timezone: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub display_name: Option<String>,
    pub category: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    /// E.164.
    pub phone_number: Option<String>,
    pub phone_number_id: Option<String>,
    /// `SMS` or `VOICE`.
    pub code_method: Option<String>,
    pub behind_ivr: bool,
    pub two_step_enabled: bool,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub live_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
