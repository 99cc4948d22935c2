//! Onboarding's GraphQL types and resolvers. Reading is for owners and managers; the
//! checklist and the rule checks are theirs too; the sign-up itself, the green tick and
//! leaving change the project's number and are the owner's.

use async_graphql::{
    Context, Enum, ID, InputObject, Object, Result, SimpleObject,
    connection::{Connection, EmptyFields},
};
use chrono::{DateTime, Utc};
use parley_entity::{
    green_tick_application, leaving_request, onboarding_application, onboarding_event, project,
};
use sea_orm::EntityTrait;
use uuid::Uuid;

use super::{
    chat_button, checklist,
    green_tick::{self, Criterion},
    leaving, rules, signup,
};
use crate::{
    auth::{
        RoleGuard,
        guard::{MEMBERS, OWNER, OWNER_MANAGER},
    },
    errors::{AppError, Problem},
    graphql::{
        app_state,
        relay::{connection, page_request},
        scope,
    },
};

fn parse_id(field: &'static str, id: &ID) -> Result<Uuid, AppError> {
    Uuid::parse_str(id.as_str()).map_err(|_| AppError::bad_input(field, "not an id"))
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OnboardingProvider {
    /// Meta's Cloud API (the server's Meta app).
    Meta,
    /// The sandbox: realistic delays and failures, no real number.
    Sandbox,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OnboardingStep {
    ConnectAccount,
    BusinessManager,
    WhatsappAccount,
    BusinessProfile,
    PhoneNumber,
    CodeSent,
    Verified,
    Live,
}

impl OnboardingStep {
    const ALL: [Self; 8] = [
        Self::ConnectAccount,
        Self::BusinessManager,
        Self::WhatsappAccount,
        Self::BusinessProfile,
        Self::PhoneNumber,
        Self::CodeSent,
        Self::Verified,
        Self::Live,
    ];

    fn from_db(step: &str) -> Self {
        signup::STEPS
            .iter()
            .position(|s| *s == step)
            .map(|i| Self::ALL[i])
            .unwrap_or(Self::ConnectAccount)
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum OnboardingStatus {
    /// Waiting for the current step's input.
    InProgress,
    /// The provider is working on the step just submitted (the sandbox's delay).
    Processing,
    /// The current step's last attempt failed (`failure`); submit it again to retry.
    Failed,
    /// Registered: the project sends from this number, which is locked.
    Live,
    Cancelled,
    /// A newer application went live with another number.
    Replaced,
    /// The number was downgraded.
    Downgraded,
}

impl OnboardingStatus {
    fn from_db(status: &str) -> Self {
        match status {
            signup::PROCESSING => Self::Processing,
            signup::FAILED => Self::Failed,
            signup::STATUS_LIVE => Self::Live,
            signup::CANCELLED => Self::Cancelled,
            signup::REPLACED => Self::Replaced,
            signup::DOWNGRADED => Self::Downgraded,
            _ => Self::InProgress,
        }
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChecklistItemStatus {
    Met,
    /// Required and not met.
    Missing,
    /// Recommended and not met: the application can go ahead, with limits.
    Recommended,
    /// Rules the application out.
    Blocked,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum BusinessType {
    Business,
    Individual,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum CodeMethod {
    Sms,
    Voice,
}

impl CodeMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "SMS",
            Self::Voice => "VOICE",
        }
    }
}

/// One problem with an input, by path, with a stable code.
#[derive(SimpleObject)]
pub struct RuleProblem {
    pub path: String,
    pub code: String,
    pub message: String,
}

impl From<Problem> for RuleProblem {
    fn from(p: Problem) -> Self {
        Self {
            path: p.path,
            code: p.code,
            message: p.message,
        }
    }
}

#[derive(SimpleObject)]
pub struct ChecklistItem {
    pub key: String,
    pub label: String,
    pub required: bool,
    pub status: ChecklistItemStatus,
    /// Why the item matters for the application.
    pub why: String,
    /// What exactly is missing or wrong.
    pub detail: Option<String>,
}

#[derive(SimpleObject, Clone)]
pub struct NewsArticle {
    pub url: String,
    pub publisher: Option<String>,
    /// Paid PR does not count as notability evidence.
    pub paid: bool,
}

/// What the project has told Parley about its business.
#[derive(SimpleObject)]
pub struct OnboardingAnswers {
    pub legal_name: Option<String>,
    pub business_type: Option<BusinessType>,
    pub industry: Option<String>,
    pub has_business_manager: bool,
    pub business_manager_verified: bool,
    pub website_url: Option<String>,
    pub website_business_name_in_header: bool,
    pub website_registered_name_in_footer: bool,
    pub website_terms_and_conditions: bool,
    pub website_privacy_policy: bool,
    pub website_contact_details: bool,
    pub website_social_links: bool,
    pub business_email: Option<String>,
    pub number_not_on_whatsapp: bool,
    pub number_receives_codes: bool,
    pub articles: Vec<NewsArticle>,
}

/// The prerequisites of a WhatsApp Business API application, evaluated.
#[derive(SimpleObject)]
pub struct OnboardingChecklist {
    /// Every required item is met.
    pub ready: bool,
    /// Keys of the required items not met.
    pub missing: Vec<String>,
    /// The restricted industry that rules the business out, if any.
    pub blocked_reason: Option<String>,
    pub items: Vec<ChecklistItem>,
    pub answers: OnboardingAnswers,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<checklist::Evaluation> for OnboardingChecklist {
    fn from(e: checklist::Evaluation) -> Self {
        let missing = e.missing().into_iter().map(str::to_owned).collect();
        let blocked_reason = e.blocked().and_then(|i| i.detail.clone());
        let ready = e.ready();
        let items = e
            .items
            .iter()
            .map(|i| ChecklistItem {
                key: i.key.into(),
                label: i.label.into(),
                required: i.required,
                status: match i.status {
                    checklist::ItemStatus::Met => ChecklistItemStatus::Met,
                    checklist::ItemStatus::Missing => ChecklistItemStatus::Missing,
                    checklist::ItemStatus::Recommended => ChecklistItemStatus::Recommended,
                    checklist::ItemStatus::Blocked => ChecklistItemStatus::Blocked,
                },
                why: i.why.into(),
                detail: i.detail.clone(),
            })
            .collect();
        let a = e.answers;
        Self {
            ready,
            missing,
            blocked_reason,
            items,
            answers: OnboardingAnswers {
                legal_name: a.legal_name,
                business_type: match a.business_type.as_deref() {
                    Some(checklist::BUSINESS) => Some(BusinessType::Business),
                    Some(checklist::INDIVIDUAL) => Some(BusinessType::Individual),
                    _ => None,
                },
                industry: a.industry,
                has_business_manager: a.has_business_manager,
                business_manager_verified: a.business_manager_verified,
                website_url: a.website_url,
                website_business_name_in_header: a.website.business_name_in_header,
                website_registered_name_in_footer: a.website.registered_name_in_footer,
                website_terms_and_conditions: a.website.terms_and_conditions,
                website_privacy_policy: a.website.privacy_policy,
                website_contact_details: a.website.contact_details,
                website_social_links: a.website.social_links,
                business_email: a.business_email,
                number_not_on_whatsapp: a.number_not_on_whatsapp,
                number_receives_codes: a.number_receives_codes,
                articles: a
                    .articles
                    .into_iter()
                    .map(|x| NewsArticle {
                        url: x.url,
                        publisher: x.publisher,
                        paid: x.paid,
                    })
                    .collect(),
            },
            updated_at: e.updated_at,
        }
    }
}

#[derive(InputObject)]
pub struct NewsArticleInput {
    pub url: String,
    pub publisher: Option<String>,
    #[graphql(default = false)]
    pub paid: bool,
}

/// Changes to the checklist: only the fields given change; `articles` replaces the list.
#[derive(InputObject, Default)]
pub struct OnboardingChecklistInput {
    pub legal_name: Option<String>,
    pub business_type: Option<BusinessType>,
    /// Checked against the restricted industries (by key or label).
    pub industry: Option<String>,
    pub has_business_manager: Option<bool>,
    pub business_manager_verified: Option<bool>,
    pub website_url: Option<String>,
    pub website_business_name_in_header: Option<bool>,
    pub website_registered_name_in_footer: Option<bool>,
    pub website_terms_and_conditions: Option<bool>,
    pub website_privacy_policy: Option<bool>,
    pub website_contact_details: Option<bool>,
    pub website_social_links: Option<bool>,
    pub business_email: Option<String>,
    pub number_not_on_whatsapp: Option<bool>,
    pub number_receives_codes: Option<bool>,
    pub articles: Option<Vec<NewsArticleInput>>,
}

/// Where a step's last attempt failed.
#[derive(SimpleObject)]
pub struct OnboardingFailure {
    pub step: OnboardingStep,
    /// `PROVIDER_REJECTED` (Meta or the sandbox refused) or `UNAVAILABLE` (try again).
    pub code: String,
    pub reason: String,
    /// The same inputs may succeed later.
    pub retryable: bool,
    pub at: Option<DateTime<Utc>>,
}

#[derive(SimpleObject)]
pub struct OnboardingStepProgress {
    pub step: OnboardingStep,
    pub done: bool,
    pub current: bool,
}

/// A WhatsApp Business API application: the embedded sign-up, step by step.
pub struct OnboardingApplication(pub onboarding_application::Model);

#[Object]
impl OnboardingApplication {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn provider(&self) -> OnboardingProvider {
        if self.0.provider == crate::whatsapp::accounts::PROVIDER_META {
            OnboardingProvider::Meta
        } else {
            OnboardingProvider::Sandbox
        }
    }
    /// The step waiting for its input (`LIVE` once registered).
    async fn step(&self) -> OnboardingStep {
        OnboardingStep::from_db(&self.0.step)
    }
    async fn status(&self) -> OnboardingStatus {
        OnboardingStatus::from_db(&self.0.status)
    }
    /// Every step, done or not.
    async fn steps(&self) -> Vec<OnboardingStepProgress> {
        let current = signup::STEPS
            .iter()
            .position(|s| *s == self.0.step)
            .unwrap_or(0);
        let live = self.0.live_at.is_some();
        OnboardingStep::ALL
            .iter()
            .enumerate()
            .map(|(i, step)| OnboardingStepProgress {
                step: *step,
                done: i < current || live,
                current: i == current && !live,
            })
            .collect()
    }
    /// Attempts at the current step.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn failure(&self) -> Option<OnboardingFailure> {
        let step = self.0.failure_step.as_deref()?;
        Some(OnboardingFailure {
            step: OnboardingStep::from_db(step),
            code: self.0.failure_code.clone().unwrap_or_default(),
            reason: self.0.failure_reason.clone().unwrap_or_default(),
            retryable: self.0.failure_retryable,
            at: self.0.failed_at,
        })
    }
    /// When the step being processed is expected to be answered.
    async fn processing_until(&self) -> Option<DateTime<Utc>> {
        self.0.pending_until
    }
    async fn has_access_token(&self) -> bool {
        self.0.access_token.is_some()
    }
    async fn business_manager_id(&self) -> Option<&str> {
        self.0.business_manager_id.as_deref()
    }
    async fn business_manager_name(&self) -> Option<&str> {
        self.0.business_manager_name.as_deref()
    }
    async fn waba_id(&self) -> Option<&str> {
        self.0.waba_id.as_deref()
    }
    async fn waba_name(&self) -> Option<&str> {
        self.0.waba_name.as_deref()
    }
    async fn timezone(&self) -> Option<&str> {
        self.0.timezone.as_deref()
    }
    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }
    async fn category(&self) -> Option<&str> {
        self.0.category.as_deref()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// E.164.
    async fn phone_number(&self) -> Option<&str> {
        self.0.phone_number.as_deref()
    }
    async fn phone_number_id(&self) -> Option<&str> {
        self.0.phone_number_id.as_deref()
    }
    async fn code_method(&self) -> Option<CodeMethod> {
        match self.0.code_method.as_deref() {
            Some("SMS") => Some(CodeMethod::Sms),
            Some("VOICE") => Some(CodeMethod::Voice),
            _ => None,
        }
    }
    async fn behind_ivr(&self) -> bool {
        self.0.behind_ivr
    }
    async fn two_step_verification(&self) -> bool {
        self.0.two_step_enabled
    }
    /// The number is registered: changing it needs a new application.
    async fn number_locked(&self) -> bool {
        self.0.status == signup::STATUS_LIVE
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    async fn live_at(&self) -> Option<DateTime<Utc>> {
        self.0.live_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.0.closed_at
    }
    /// Who did what at which step, and how it went (oldest first).
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, OnboardingEvent, EmptyFields, EmptyFields>> {
        let state = app_state(ctx);
        let page = signup::audit_trail(
            state,
            self.0.project_id,
            self.0.id,
            page_request(first, after, last, before)?,
        )
        .await?;
        Ok(connection(page, |e| e.id, OnboardingEvent))
    }
}

/// One row of an application's audit trail.
pub struct OnboardingEvent(pub onboarding_event::Model);

#[Object]
impl OnboardingEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn step(&self) -> OnboardingStep {
        OnboardingStep::from_db(&self.0.step)
    }
    /// `START`, `CONNECT_ACCOUNT`, `SELECT_BUSINESS_MANAGER`, `SET_WHATSAPP_ACCOUNT`,
    /// `SET_BUSINESS_PROFILE`, `SUBMIT_PHONE_NUMBER`, `RESEND_CODE`, `VERIFY_CODE`,
    /// `REGISTER`, `CANCEL`, `REQUEST_DOWNGRADE`, `DOWNGRADE_COMPLETED`,
    /// `REQUEST_TWO_STEP_DISABLE`, `TWO_STEP_DISABLED`.
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// `SUCCEEDED`, `FAILED`, `PENDING` (sent, the answer is awaited) or `REJECTED` (the
    /// inputs were refused before anything was sent).
    async fn outcome(&self) -> &str {
        &self.0.outcome
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// The member who acted; `null` when the provider's answer arrived.
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.map(|id| ID(id.to_string()))
    }
    /// The inputs as recorded (JSON; never codes, PINs or tokens).
    async fn details(&self) -> Option<&str> {
        self.0.details.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(SimpleObject)]
pub struct PhoneGuidance {
    pub code: String,
    pub message: String,
}

/// What the phone-number rules say of a number.
#[derive(SimpleObject)]
pub struct PhoneNumberCheck {
    pub allowed: bool,
    /// E.164, when the number could be read.
    pub phone_number: Option<String>,
    pub country: Option<String>,
    /// `MOBILE`, `FIXED_LINE`, `FIXED_LINE_OR_MOBILE`, `TOLL_FREE`, `PREMIUM_RATE`,
    /// `SHARED_COST`, `VOIP`, `PERSONAL_NUMBER`, `UAN`, `SHORT_CODE` or `UNKNOWN`.
    pub kind: String,
    /// Why it cannot be registered (`UNREACHABLE_COUNTRY`, `SHORT_CODE`,
    /// `INVALID_NUMBER`, `NEEDS_COUNTRY_CODE`, `REQUIRED`, `IN_USE`).
    pub problems: Vec<RuleProblem>,
    /// What to do for it to work (`TOLL_FREE`, `IVR`, `LANDLINE`, `NOT_ON_WHATSAPP_APP`,
    /// `NUMBER_LOCKED_ONCE_LIVE`).
    pub guidance: Vec<PhoneGuidance>,
}

#[derive(SimpleObject)]
pub struct DisplayNameCheck {
    pub allowed: bool,
    pub problems: Vec<RuleProblem>,
}

#[derive(SimpleObject)]
pub struct NamedKey {
    pub key: String,
    pub label: String,
}

#[derive(SimpleObject)]
pub struct GreenTickCriterion {
    pub key: String,
    pub label: String,
    /// Recommended criteria do not make the business ineligible.
    pub required: bool,
    pub met: bool,
    pub reason: Option<String>,
}

impl From<Criterion> for GreenTickCriterion {
    fn from(c: Criterion) -> Self {
        Self {
            key: c.key,
            label: c.label,
            required: c.required,
            met: c.met,
            reason: c.reason,
        }
    }
}

#[derive(SimpleObject)]
pub struct GreenTickEligibility {
    pub eligible: bool,
    pub criteria: Vec<GreenTickCriterion>,
    /// When a recent rejection stops standing in the way.
    pub available_at: Option<DateTime<Utc>>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum GreenTickStatus {
    Submitted,
    Approved,
    Rejected,
    /// Lost with a downgrade.
    Revoked,
}

pub struct GreenTickApplication(pub green_tick_application::Model);

#[Object]
impl GreenTickApplication {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn status(&self) -> GreenTickStatus {
        match self.0.status.as_str() {
            green_tick::APPROVED => GreenTickStatus::Approved,
            green_tick::REJECTED => GreenTickStatus::Rejected,
            green_tick::REVOKED => GreenTickStatus::Revoked,
            _ => GreenTickStatus::Submitted,
        }
    }
    /// The criteria as they stood when it was submitted.
    async fn criteria(&self) -> Result<Vec<GreenTickCriterion>> {
        let criteria: Vec<Criterion> =
            serde_json::from_str(&self.0.criteria).map_err(AppError::internal)?;
        Ok(criteria.into_iter().map(Into::into).collect())
    }
    async fn submitted_at(&self) -> DateTime<Utc> {
        self.0.submitted_at
    }
    async fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.0.decided_at
    }
    async fn decision_reason(&self) -> Option<&str> {
        self.0.decision_reason.as_deref()
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    /// After a rejection: when the business may apply again.
    async fn reapply_from(&self) -> Option<DateTime<Utc>> {
        (self.0.status == green_tick::REJECTED)
            .then_some(self.0.decided_at)
            .flatten()
            .map(|at| at + chrono::Duration::days(green_tick::WAIT_AFTER_REJECTION_DAYS))
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum LeavingRequestKind {
    /// The number goes back to the WhatsApp apps; its data is deleted.
    Downgrade,
    /// Two-step verification off, to move the number to another provider.
    TwoStepDisable,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum LeavingRequestStatus {
    Requested,
    Completed,
    Cancelled,
}

#[derive(SimpleObject)]
pub struct DataDeletion {
    pub contacts: u64,
    pub messages: u64,
    pub templates: u64,
    pub campaigns: u64,
}

pub struct LeavingRequest(pub leaving_request::Model);

#[Object]
impl LeavingRequest {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn kind(&self) -> LeavingRequestKind {
        if self.0.kind == leaving::DOWNGRADE {
            LeavingRequestKind::Downgrade
        } else {
            LeavingRequestKind::TwoStepDisable
        }
    }
    async fn status(&self) -> LeavingRequestStatus {
        match self.0.status.as_str() {
            leaving::COMPLETED => LeavingRequestStatus::Completed,
            leaving::CANCELLED => LeavingRequestStatus::Cancelled,
            _ => LeavingRequestStatus::Requested,
        }
    }
    async fn phone_number(&self) -> Option<&str> {
        self.0.phone_number.as_deref()
    }
    async fn new_provider(&self) -> Option<&str> {
        self.0.new_provider.as_deref()
    }
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    /// What the downgrade deletes, as confirmed.
    async fn data_deletion(&self) -> Option<DataDeletion> {
        let d: leaving::DataDeletion =
            serde_json::from_str(self.0.data_deletion.as_deref()?).ok()?;
        Some(DataDeletion {
            contacts: d.contacts,
            messages: d.messages,
            templates: d.templates,
            campaigns: d.campaigns,
        })
    }
    async fn requested_at(&self) -> DateTime<Utc> {
        self.0.requested_at
    }
    /// A downgrade is done no sooner than 24 hours after the request...
    async fn earliest_completion_at(&self) -> Option<DateTime<Utc>> {
        self.0.earliest_completion_at
    }
    /// ...and no later than 30 days.
    async fn latest_completion_at(&self) -> Option<DateTime<Utc>> {
        self.0.latest_completion_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum LeavingGoal {
    /// Back to the WhatsApp or WhatsApp Business app.
    WhatsappApp,
    /// To another WhatsApp Business API provider.
    AnotherProvider,
}

#[derive(SimpleObject)]
pub struct LeavingStep {
    pub key: String,
    pub title: String,
    /// `TODO`, `IN_PROGRESS`, `DONE`, `BLOCKED` or `NOT_NEEDED`.
    pub status: String,
    pub detail: String,
    /// The mutation that does it.
    pub action: Option<String>,
}

#[derive(SimpleObject)]
pub struct LeavingGuidance {
    pub steps: Vec<LeavingStep>,
    pub notes: Vec<String>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum ChatButtonPosition {
    Left,
    Right,
}

#[derive(InputObject)]
pub struct ChatButtonOverrideInput {
    /// An http(s) address (pages whose address starts with it) or a path such as
    /// `/pricing?plan=pro` (pages whose path and query start with it).
    pub url: String,
    pub prefilled_message: Option<String>,
    pub on_screen_message: Option<String>,
    pub cta_text: Option<String>,
}

/// The button and widget; anything left out takes SPEC section 8's default.
#[derive(InputObject, Default)]
pub struct ChatButtonInput {
    /// With its country code; defaults to the project's live number.
    pub phone_number: Option<String>,
    /// `#rgb` or `#rrggbb`; default `#25D366`.
    pub background_color: Option<String>,
    /// Default `#FFFFFF`.
    pub text_color: Option<String>,
    /// The button's call to action; default `Chat with us`.
    pub cta_text: Option<String>,
    /// Pixels; default 30.
    pub margin_bottom: Option<i32>,
    pub margin_left: Option<i32>,
    pub margin_right: Option<i32>,
    /// Pixels; default 24.
    pub border_radius: Option<i32>,
    /// Default `LEFT`.
    pub position: Option<ChatButtonPosition>,
    /// Default `Hi`.
    pub prefilled_message: Option<String>,
    pub brand_name: Option<String>,
    pub brand_image_url: Option<String>,
    /// Default `Hi, How can I help you?`.
    pub on_screen_message: Option<String>,
    /// Default `Start Chat`.
    pub widget_cta_text: Option<String>,
    #[graphql(default)]
    pub overrides: Vec<ChatButtonOverrideInput>,
}

#[derive(SimpleObject)]
pub struct ChatButtonPage {
    pub url: String,
    /// The click-to-chat link on matching pages.
    pub link: String,
    pub prefilled_message: String,
    pub on_screen_message: String,
    pub cta_text: String,
}

#[derive(SimpleObject)]
pub struct ChatButton {
    /// E.164.
    pub phone_number: String,
    /// `https://wa.me/<number>?text=<pre-filled message>`.
    pub link: String,
    /// Paste before `</body>`: one self-contained script.
    pub snippet: String,
    pub pages: Vec<ChatButtonPage>,
    pub background_color: String,
    pub text_color: String,
    pub cta_text: String,
    pub margin_bottom: u32,
    pub margin_left: u32,
    pub margin_right: u32,
    pub border_radius: u32,
    pub position: ChatButtonPosition,
    pub prefilled_message: String,
    pub brand_name: Option<String>,
    pub brand_image_url: Option<String>,
    pub on_screen_message: String,
    pub widget_cta_text: String,
}

#[derive(Default)]
pub struct OnboardingQuery;

#[Object]
impl OnboardingQuery {
    /// The application checklist: each prerequisite, whether it is met, and why it
    /// matters.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn onboarding_checklist(&self, ctx: &Context<'_>) -> Result<OnboardingChecklist> {
        let state = app_state(ctx);
        Ok(checklist::evaluation(state, scope(ctx)?.project_id)
            .await?
            .into())
    }

    /// The open application, else the newest; `null` before the first.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn onboarding(&self, ctx: &Context<'_>) -> Result<Option<OnboardingApplication>> {
        let state = app_state(ctx);
        Ok(signup::current(state, scope(ctx)?.project_id)
            .await?
            .map(OnboardingApplication))
    }

    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn onboarding_application(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<OnboardingApplication> {
        let state = app_state(ctx);
        let id = parse_id("id", &id)?;
        Ok(OnboardingApplication(
            signup::find(state, scope(ctx)?.project_id, id).await?,
        ))
    }

    /// Every application of the project, oldest first.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn onboarding_applications(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, OnboardingApplication, EmptyFields, EmptyFields>> {
        let state = app_state(ctx);
        let page = signup::list(
            state,
            scope(ctx)?.project_id,
            page_request(first, after, last, before)?,
        )
        .await?;
        Ok(connection(page, |a| a.id, OnboardingApplication))
    }

    /// The phone-number rules applied to a number, before submitting it.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn check_phone_number(
        &self,
        ctx: &Context<'_>,
        phone_number: String,
        #[graphql(default = false)] behind_ivr: bool,
    ) -> Result<PhoneNumberCheck> {
        let state = app_state(ctx);
        let project_id = scope(ctx)?.project_id;
        let project = project::Entity::find_by_id(project_id)
            .one(&state.db)
            .await
            .map_err(AppError::from)?
            .ok_or(AppError::NotFound("project"))?;
        let check = rules::check_phone_number(
            &phone_number,
            &project.default_country,
            &state.settings.unreachable,
            behind_ivr,
        );
        Ok(PhoneNumberCheck {
            allowed: check.allowed(),
            phone_number: check.e164,
            country: check.country,
            kind: check.kind.into(),
            problems: check.problems.into_iter().map(Into::into).collect(),
            guidance: check
                .guidance
                .into_iter()
                .map(|g| PhoneGuidance {
                    code: g.code.into(),
                    message: g.message,
                })
                .collect(),
        })
    }

    /// WhatsApp's display name rules applied to a name, before submitting it.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn check_display_name(
        &self,
        ctx: &Context<'_>,
        display_name: String,
    ) -> Result<DisplayNameCheck> {
        let state = app_state(ctx);
        let (answers, _) = checklist::answers(&state.db, scope(ctx)?.project_id).await?;
        let has_website = answers
            .website_url
            .as_deref()
            .and_then(checklist::web_host)
            .is_some();
        let problems =
            rules::check_display_name(&display_name, answers.legal_name.as_deref(), has_website);
        Ok(DisplayNameCheck {
            allowed: problems.is_empty(),
            problems: problems.into_iter().map(Into::into).collect(),
        })
    }

    /// Industries that cannot apply (WhatsApp's Commerce Policy; the server's setting).
    #[graphql(guard = "RoleGuard::read(MEMBERS)")]
    async fn restricted_industries(&self, ctx: &Context<'_>) -> Vec<NamedKey> {
        app_state(ctx)
            .settings
            .onboarding
            .restricted_industries
            .entries()
            .iter()
            .map(|(key, label)| NamedKey {
                key: key.clone(),
                label: label.clone(),
            })
            .collect()
    }

    /// The business profile's categories.
    #[graphql(guard = "RoleGuard::read(MEMBERS)")]
    async fn business_categories(&self) -> Vec<NamedKey> {
        rules::BUSINESS_CATEGORIES
            .iter()
            .map(|(key, label)| NamedKey {
                key: (*key).into(),
                label: (*label).into(),
            })
            .collect()
    }

    /// Green tick eligibility, with the reason for each failing criterion.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn green_tick_eligibility(&self, ctx: &Context<'_>) -> Result<GreenTickEligibility> {
        let e = green_tick::eligibility(app_state(ctx), scope(ctx)?.project_id).await?;
        Ok(GreenTickEligibility {
            eligible: e.eligible(),
            available_at: e.available_at,
            criteria: e.criteria.into_iter().map(Into::into).collect(),
        })
    }

    /// Green tick applications, newest first.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn green_tick_applications(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<GreenTickApplication>> {
        let list = green_tick::list(app_state(ctx), scope(ctx)?.project_id).await?;
        Ok(list.into_iter().map(GreenTickApplication).collect())
    }

    /// Requests to leave, newest first.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn leaving_requests(&self, ctx: &Context<'_>) -> Result<Vec<LeavingRequest>> {
        let list = leaving::list(app_state(ctx), scope(ctx)?.project_id).await?;
        Ok(list.into_iter().map(LeavingRequest).collect())
    }

    /// How to leave for `goal`, step by step, with the plan's cancellation.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn leaving_guidance(
        &self,
        ctx: &Context<'_>,
        goal: LeavingGoal,
    ) -> Result<LeavingGuidance> {
        let goal = match goal {
            LeavingGoal::WhatsappApp => leaving::Goal::WhatsAppApp,
            LeavingGoal::AnotherProvider => leaving::Goal::AnotherProvider,
        };
        let g = leaving::guidance(app_state(ctx), scope(ctx)?.project_id, goal).await?;
        Ok(LeavingGuidance {
            steps: g
                .steps
                .into_iter()
                .map(|s| LeavingStep {
                    key: s.key.into(),
                    title: s.title.into(),
                    status: s.status.into(),
                    detail: s.detail,
                    action: s.action.map(Into::into),
                })
                .collect(),
            notes: g.notes.into_iter().map(Into::into).collect(),
        })
    }

    /// The website chat button: an embeddable snippet and a click-to-chat link.
    #[graphql(guard = "RoleGuard::read(OWNER_MANAGER)")]
    async fn chat_button(&self, ctx: &Context<'_>, input: ChatButtonInput) -> Result<ChatButton> {
        let state = app_state(ctx);
        let project_id = scope(ctx)?.project_id;
        let raw = match input.phone_number.filter(|n| !n.trim().is_empty()) {
            Some(number) => number,
            None => signup::live(&state.db, project_id)
                .await?
                .and_then(|l| l.phone_number)
                .ok_or_else(|| {
                    AppError::bad_input(
                        "phoneNumber",
                        "give the number (the project has no live number yet)",
                    )
                })?,
        };
        let project = project::Entity::find_by_id(project_id)
            .one(&state.db)
            .await
            .map_err(AppError::from)?
            .ok_or(AppError::NotFound("project"))?;
        let check = rules::check_phone_number(
            &raw,
            &project.default_country,
            &state.settings.unreachable,
            false,
        );
        let Some(e164) = check.e164.clone().filter(|_| check.allowed()) else {
            return Err(AppError::Invalid {
                message: "this number cannot be used for a chat button".into(),
                problems: check.problems,
            }
            .into());
        };
        let config = chat_button::configure(
            &e164,
            chat_button::Input {
                background_color: input.background_color,
                text_color: input.text_color,
                cta_text: input.cta_text,
                margin_bottom: input.margin_bottom,
                margin_left: input.margin_left,
                margin_right: input.margin_right,
                border_radius: input.border_radius,
                position: input.position.map(|p| match p {
                    ChatButtonPosition::Left => chat_button::Position::Left,
                    ChatButtonPosition::Right => chat_button::Position::Right,
                }),
                prefilled_message: input.prefilled_message,
                brand_name: input.brand_name,
                brand_image_url: input.brand_image_url,
                on_screen_message: input.on_screen_message,
                widget_cta_text: input.widget_cta_text,
                overrides: input
                    .overrides
                    .into_iter()
                    .map(|o| chat_button::Override {
                        url: o.url,
                        prefilled_message: o.prefilled_message,
                        on_screen_message: o.on_screen_message,
                        cta_text: o.cta_text,
                    })
                    .collect(),
            },
        )?;
        let pages = config
            .overrides
            .iter()
            .map(|o| {
                let prefilled = o
                    .prefilled_message
                    .clone()
                    .unwrap_or_else(|| config.prefilled_message.clone());
                ChatButtonPage {
                    url: o.url.clone(),
                    link: chat_button::click_to_chat(&config.number, &prefilled),
                    prefilled_message: prefilled,
                    on_screen_message: o
                        .on_screen_message
                        .clone()
                        .unwrap_or_else(|| config.on_screen_message.clone()),
                    cta_text: o
                        .cta_text
                        .clone()
                        .unwrap_or_else(|| config.cta_text.clone()),
                }
            })
            .collect();
        Ok(ChatButton {
            phone_number: e164,
            link: chat_button::click_to_chat(&config.number, &config.prefilled_message),
            snippet: chat_button::snippet(&config),
            pages,
            position: match config.position {
                chat_button::Position::Left => ChatButtonPosition::Left,
                chat_button::Position::Right => ChatButtonPosition::Right,
            },
            background_color: config.background_color,
            text_color: config.text_color,
            cta_text: config.cta_text,
            margin_bottom: config.margin_bottom,
            margin_left: config.margin_left,
            margin_right: config.margin_right,
            border_radius: config.border_radius,
            prefilled_message: config.prefilled_message,
            brand_name: config.brand_name,
            brand_image_url: config.brand_image_url,
            on_screen_message: config.on_screen_message,
            widget_cta_text: config.widget_cta_text,
        })
    }
}

#[derive(InputObject)]
pub struct BusinessManagerInput {
    /// The Business Manager's id (digits).
    pub business_manager_id: String,
    pub name: String,
}

#[derive(InputObject)]
pub struct WhatsAppBusinessAccountInput {
    /// The account Meta's sign-up dialog created or picked; required with Meta, made by
    /// the sandbox when left out.
    pub waba_id: Option<String>,
    /// The account's name in the Business Manager (not the display name).
    pub name: String,
    /// An IANA time zone (`Asia/Kolkata`) or `UTC+05:30`.
    pub timezone: String,
}

#[derive(InputObject)]
pub struct BusinessProfileInput {
    /// The name customers see; WhatsApp's display name rules apply.
    pub display_name: String,
    /// One of `businessCategories`.
    pub category: String,
    pub description: Option<String>,
}

#[derive(InputObject)]
pub struct PhoneNumberInput {
    pub phone_number: String,
    #[graphql(default_with = "CodeMethod::Sms")]
    pub code_method: CodeMethod,
    /// The number answers calls with an IVR (the registration call must be let through).
    #[graphql(default = false)]
    pub behind_ivr: bool,
    /// The id Meta's sign-up dialog gave the number, when it added it already.
    pub phone_number_id: Option<String>,
}

#[derive(InputObject)]
pub struct DowngradeInput {
    /// The live number, typed again to confirm.
    pub confirm_phone_number: String,
    /// The downgrade permanently deletes the number's data.
    pub acknowledge_data_deletion: bool,
}

#[derive(InputObject, Default)]
pub struct TwoStepDisableInput {
    pub new_provider: Option<String>,
    pub reason: Option<String>,
}

#[derive(Default)]
pub struct OnboardingMutation;

#[Object]
impl OnboardingMutation {
    /// Records answers of the application checklist (and the green tick evidence).
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn update_onboarding_checklist(
        &self,
        ctx: &Context<'_>,
        input: OnboardingChecklistInput,
    ) -> Result<OnboardingChecklist> {
        let change = checklist::Change {
            legal_name: input.legal_name,
            business_type: input.business_type.map(|t| match t {
                BusinessType::Business => checklist::BUSINESS.to_owned(),
                BusinessType::Individual => checklist::INDIVIDUAL.to_owned(),
            }),
            industry: input.industry,
            has_business_manager: input.has_business_manager,
            business_manager_verified: input.business_manager_verified,
            website_url: input.website_url,
            business_name_in_header: input.website_business_name_in_header,
            registered_name_in_footer: input.website_registered_name_in_footer,
            terms_and_conditions: input.website_terms_and_conditions,
            privacy_policy: input.website_privacy_policy,
            contact_details: input.website_contact_details,
            social_links: input.website_social_links,
            business_email: input.business_email,
            number_not_on_whatsapp: input.number_not_on_whatsapp,
            number_receives_codes: input.number_receives_codes,
            articles: input.articles.map(|list| {
                list.into_iter()
                    .map(|a| checklist::Article {
                        url: a.url,
                        publisher: a.publisher,
                        paid: a.paid,
                    })
                    .collect()
            }),
        };
        Ok(checklist::update(app_state(ctx), scope(ctx)?, change)
            .await?
            .into())
    }

    /// Starts a WhatsApp Business API application (the embedded sign-up). Refused with
    /// `NOT_ELIGIBLE` for restricted industries. With a live number, the new application
    /// changes the number when it goes live.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn start_onboarding(
        &self,
        ctx: &Context<'_>,
        provider: Option<OnboardingProvider>,
    ) -> Result<OnboardingApplication> {
        let provider = provider.map(|p| match p {
            OnboardingProvider::Meta => crate::whatsapp::accounts::PROVIDER_META,
            OnboardingProvider::Sandbox => crate::whatsapp::accounts::PROVIDER_SANDBOX,
        });
        Ok(OnboardingApplication(
            signup::start(app_state(ctx), scope(ctx)?, provider).await?,
        ))
    }

    /// Abandons the open application.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn cancel_onboarding(&self, ctx: &Context<'_>) -> Result<OnboardingApplication> {
        Ok(OnboardingApplication(
            signup::cancel(app_state(ctx), scope(ctx)?).await?,
        ))
    }

    /// Step 1: the code of the embedded sign-up's Facebook login, exchanged for a token.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn connect_facebook_account(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> Result<OnboardingApplication> {
        Ok(OnboardingApplication(
            signup::connect_account(app_state(ctx), scope(ctx)?, &code).await?,
        ))
    }

    /// Step 2: the Facebook Business Manager the account belongs to.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn select_business_manager(
        &self,
        ctx: &Context<'_>,
        input: BusinessManagerInput,
    ) -> Result<OnboardingApplication> {
        Ok(OnboardingApplication(
            signup::select_business_manager(
                app_state(ctx),
                scope(ctx)?,
                &input.business_manager_id,
                &input.name,
            )
            .await?,
        ))
    }

    /// Step 3: the WhatsApp Business Account, created or picked, with its name and time
    /// zone.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn set_whatsapp_business_account(
        &self,
        ctx: &Context<'_>,
        input: WhatsAppBusinessAccountInput,
    ) -> Result<OnboardingApplication> {
        Ok(OnboardingApplication(
            signup::set_whatsapp_account(
                app_state(ctx),
                scope(ctx)?,
                input.waba_id.as_deref(),
                &input.name,
                &input.timezone,
            )
            .await?,
        ))
    }

    /// Step 4: the business profile: display name (checked against WhatsApp's rules),
    /// category and description.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn set_business_profile(
        &self,
        ctx: &Context<'_>,
        input: BusinessProfileInput,
    ) -> Result<OnboardingApplication> {
        Ok(OnboardingApplication(
            signup::set_business_profile(
                app_state(ctx),
                scope(ctx)?,
                &input.display_name,
                &input.category,
                input.description.as_deref(),
            )
            .await?,
        ))
    }

    /// Step 5: the number (checked against the phone-number rules); its code is sent.
    /// Allowed again while the code is awaited, to correct the number.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn submit_phone_number(
        &self,
        ctx: &Context<'_>,
        input: PhoneNumberInput,
    ) -> Result<OnboardingApplication> {
        Ok(OnboardingApplication(
            signup::submit_phone_number(
                app_state(ctx),
                scope(ctx)?,
                signup::PhoneInput {
                    phone_number: input.phone_number,
                    code_method: input.code_method.as_str().into(),
                    behind_ivr: input.behind_ivr,
                    phone_number_id: input.phone_number_id,
                },
            )
            .await?,
        ))
    }

    /// Sends the verification code again (by another method, if given).
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn resend_verification_code(
        &self,
        ctx: &Context<'_>,
        code_method: Option<CodeMethod>,
    ) -> Result<OnboardingApplication> {
        Ok(OnboardingApplication(
            signup::resend_code(
                app_state(ctx),
                scope(ctx)?,
                code_method.map(CodeMethod::as_str),
            )
            .await?,
        ))
    }

    /// Step 6: the code the number received.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn verify_phone_number(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> Result<OnboardingApplication> {
        Ok(OnboardingApplication(
            signup::verify_code(app_state(ctx), scope(ctx)?, &code).await?,
        ))
    }

    /// Step 7: registers the number with a 6-digit two-step verification PIN; the
    /// project is live and the number locked.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn register_phone_number(
        &self,
        ctx: &Context<'_>,
        pin: String,
    ) -> Result<OnboardingApplication> {
        Ok(OnboardingApplication(
            signup::register(app_state(ctx), scope(ctx)?, &pin).await?,
        ))
    }

    /// Applies for the green tick; `NOT_ELIGIBLE` with the reasons when a criterion
    /// fails.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn apply_for_green_tick(&self, ctx: &Context<'_>) -> Result<GreenTickApplication> {
        Ok(GreenTickApplication(
            green_tick::apply(app_state(ctx), scope(ctx)?).await?,
        ))
    }

    /// Records WhatsApp's answer to a green tick application (a rejection with its
    /// reason).
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn record_green_tick_decision(
        &self,
        ctx: &Context<'_>,
        id: ID,
        approved: bool,
        reason: Option<String>,
    ) -> Result<GreenTickApplication> {
        let id = parse_id("id", &id)?;
        Ok(GreenTickApplication(
            green_tick::decide(app_state(ctx), scope(ctx)?, id, approved, reason.as_deref())
                .await?,
        ))
    }

    /// Downgrades the live number (24 hours to 30 days; its data is deleted), confirmed
    /// by typing the number and acknowledging the deletion.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn request_downgrade(
        &self,
        ctx: &Context<'_>,
        input: DowngradeInput,
    ) -> Result<LeavingRequest> {
        Ok(LeavingRequest(
            leaving::request_downgrade(
                app_state(ctx),
                scope(ctx)?,
                &input.confirm_phone_number,
                input.acknowledge_data_deletion,
            )
            .await?,
        ))
    }

    /// Asks for two-step verification to be disabled, to move the number to another
    /// provider.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn request_two_step_verification_disable(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] input: TwoStepDisableInput,
    ) -> Result<LeavingRequest> {
        Ok(LeavingRequest(
            leaving::request_two_step_disable(
                app_state(ctx),
                scope(ctx)?,
                input.new_provider.as_deref(),
                input.reason.as_deref(),
            )
            .await?,
        ))
    }

    /// Records that a request was carried out (not before a downgrade's 24 hours).
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn complete_leaving_request(&self, ctx: &Context<'_>, id: ID) -> Result<LeavingRequest> {
        let id = parse_id("id", &id)?;
        Ok(LeavingRequest(
            leaving::complete(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    /// Cancels a request to disable two-step verification.
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn cancel_leaving_request(&self, ctx: &Context<'_>, id: ID) -> Result<LeavingRequest> {
        let id = parse_id("id", &id)?;
        Ok(LeavingRequest(
            leaving::cancel(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }
}
