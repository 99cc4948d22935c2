//! The decision for one outbound message, at send time: which era, what it is charged as,
//! whether it opens a conversation (or a free-entry-point window), and how much.
//!
//! [`price`] is pure: it reads the user's and the project's state and says what would
//! happen; [`apply`] records it once the message is actually sent. Keeping them apart lets
//! the caller refuse a send (no credit, no rate) without having touched any state.
//!
//! Windows are half-open, `[opened_at, expires_at)`: a message exactly 24 h after a
//! conversation opened is outside it.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Category, Era, PriceBook, PricingModel};

/// The customer-service window: free-form messages may be sent, and a free-entry-point
/// inbound may be answered for free, until this long after the user's message. Meta's
/// constant in every era so far.
pub const SERVICE_WINDOW_HOURS: i64 = 24;

/// What a window that a message opens is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WindowKind {
    /// A conversation of one category (conversation eras).
    Conversation(Category),
    /// The all-free window opened by answering a free-entry-point inbound in time.
    FreeEntryPoint,
}

/// A conversation or free-entry-point window, open during `[opened_at, expires_at)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenConversation {
    pub kind: WindowKind,
    pub opened_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Opened without a charge (free tier, free service, free entry point).
    pub free: bool,
}

impl OpenConversation {
    pub fn is_open_at(&self, at: DateTime<Utc>) -> bool {
        self.opened_at <= at && at < self.expires_at
    }
}

/// Pricing state of one user (contact) of one project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserState {
    /// Category conversations opened and maybe still open (expired ones are pruned by
    /// [`apply`]).
    pub conversations: Vec<OpenConversation>,
    /// The user's last message: the customer-service window runs 24 h from it.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// The user's last message that came from a click-to-WhatsApp ad or a page button.
    pub last_free_entry_inbound_at: Option<DateTime<Utc>>,
    /// The free-entry-point window, once an answer opened one.
    pub free_entry_window: Option<OpenConversation>,
}

impl UserState {
    /// Records a message from the user. Times only move forward: a late webhook for an
    /// older message does not shorten the windows.
    pub fn on_inbound(&mut self, at: DateTime<Utc>, from_free_entry_point: bool) {
        self.last_inbound_at = self.last_inbound_at.max(Some(at));
        if from_free_entry_point {
            self.last_free_entry_inbound_at = self.last_free_entry_inbound_at.max(Some(at));
        }
    }

    /// Whether the 24-h customer-service window is open at `at`.
    pub fn service_window_open(&self, at: DateTime<Utc>) -> bool {
        self.last_inbound_at
            .is_some_and(|t| t <= at && at < t + Duration::hours(SERVICE_WINDOW_HOURS))
    }

    /// The open conversation of `category` at `at`, if any.
    pub fn open_conversation(
        &self,
        at: DateTime<Utc>,
        category: Category,
    ) -> Option<&OpenConversation> {
        self.conversations
            .iter()
            .find(|c| c.kind == WindowKind::Conversation(category) && c.is_open_at(at))
    }

    /// Whether a conversation of any category is open at `at`.
    pub fn any_conversation_open(&self, at: DateTime<Utc>) -> bool {
        self.conversations.iter().any(|c| c.is_open_at(at))
    }

    pub fn free_entry_window_open(&self, at: DateTime<Utc>) -> bool {
        self.free_entry_window
            .as_ref()
            .is_some_and(|w| w.is_open_at(at))
    }

    /// Whether a message at `at` answers the last free-entry-point inbound in time (within
    /// 24 h) and no window was opened for that inbound yet: each such inbound opens at most
    /// one window.
    fn free_entry_answerable(&self, at: DateTime<Utc>) -> bool {
        let Some(entry) = self.last_free_entry_inbound_at else {
            return false;
        };
        let in_time = entry <= at && at < entry + Duration::hours(SERVICE_WINDOW_HOURS);
        let already = self
            .free_entry_window
            .as_ref()
            .is_some_and(|w| w.opened_at >= entry);
        in_time && !already
    }
}

/// The project's free service conversations used in one UTC calendar month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthState {
    pub year: i32,
    pub month: u32,
    pub free_service_used: u32,
}

impl MonthState {
    /// Nothing used yet in the UTC month of `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        MonthState {
            year: at.year(),
            month: at.month(),
            free_service_used: 0,
        }
    }

    fn is_month_of(&self, at: DateTime<Utc>) -> bool {
        self.year == at.year() && self.month == at.month()
    }

    /// Free service conversations used in `at`'s month: 0 if this state is for another
    /// month, so a stale state can never deny the new month its free tier.
    pub fn used_at(&self, at: DateTime<Utc>) -> u32 {
        if self.is_month_of(at) {
            self.free_service_used
        } else {
            0
        }
    }

    /// Counts one free service conversation at `at`, starting over in a new month.
    pub fn record_free_service(&mut self, at: DateTime<Utc>) {
        if !self.is_month_of(at) {
            *self = MonthState::new(at);
        }
        self.free_service_used += 1;
    }
}

/// A template of a category, or a free-form (session) message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageKind {
    Template(Category),
    FreeForm,
}

/// One message the business wants to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    pub at: DateTime<Utc>,
    pub kind: MessageKind,
    /// The user's country (from the phone number), ISO alpha-2.
    pub country: String,
    /// The project's currency, ISO 4217.
    pub currency: String,
}

/// Why a message costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FreeReason {
    /// Inside (or opening) a free-entry-point window.
    FreeEntryPoint,
    /// Opens one of the month's free service conversations.
    FreeTier,
    /// The era makes service conversations free.
    ServiceFree,
    /// Rides in a conversation already open (and paid for when it opened).
    ConversationOpen,
    /// Utility template inside the customer-service window (per-message era).
    UtilityInServiceWindow,
    /// Free-form message (per-message era).
    FreeForm,
}

/// The engine's decision for one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    pub at: DateTime<Utc>,
    pub era: String,
    pub model: PricingModel,
    /// The template's category; service for a free-form message.
    pub category: Category,
    /// The conversation or free-entry-point window this message opens.
    pub opens: Option<OpenConversation>,
    pub billable: bool,
    /// Set exactly when not billable.
    pub free_reason: Option<FreeReason>,
    /// 0 when free.
    pub amount_micros: i64,
    pub currency: String,
    /// Consumes one of the month's free service conversations.
    pub uses_free_tier: bool,
    /// The rate row's date when a rate was charged.
    pub rate_effective_from: Option<NaiveDate>,
}

/// Why a message cannot be priced (the caller refuses the send).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("no pricing era is in force at {at}")]
    NoEra { at: DateTime<Utc> },
    #[error("no {category} rate for {country} in {currency}; add one to the rate card")]
    NoRate {
        country: String,
        category: Category,
        currency: String,
    },
    #[error(
        "free-form messages can only be sent within 24 hours of the user's last message; send a template"
    )]
    OutsideServiceWindow {
        at: DateTime<Utc>,
        last_inbound_at: Option<DateTime<Utc>>,
    },
    #[error("a template cannot be of the SERVICE category")]
    ServiceTemplate,
}

/// Prices one outbound message. Pure: see [`apply`] to record the result.
///
/// Order of the rules: refusals (service template, no era, free-form outside the
/// customer-service window) first; then the free-entry-point window, which overrides
/// everything else in every era; then the era's model.
pub fn price(
    book: &PriceBook,
    user: &UserState,
    month: &MonthState,
    out: &Outbound,
) -> Result<Pricing, PricingError> {
    let at = out.at;
    if out.kind == MessageKind::Template(Category::Service) {
        return Err(PricingError::ServiceTemplate);
    }
    let era = book.era_at(at).ok_or(PricingError::NoEra { at })?;
    let in_service_window = user.service_window_open(at);
    if out.kind == MessageKind::FreeForm && !in_service_window {
        return Err(PricingError::OutsideServiceWindow {
            at,
            last_inbound_at: user.last_inbound_at,
        });
    }
    let category = match out.kind {
        MessageKind::Template(c) => c,
        MessageKind::FreeForm => Category::Service,
    };
    let decide = Decide {
        book,
        era,
        out,
        category,
    };

    if user.free_entry_window_open(at) {
        return Ok(decide.free(FreeReason::FreeEntryPoint, None));
    }
    if user.free_entry_answerable(at) {
        let window = decide.window(WindowKind::FreeEntryPoint, era.free_entry_point_hours, true);
        return Ok(decide.free(FreeReason::FreeEntryPoint, Some(window)));
    }

    match (era.model, out.kind) {
        (PricingModel::Conversation, MessageKind::Template(c)) => {
            if user.open_conversation(at, c).is_some() {
                Ok(decide.free(FreeReason::ConversationOpen, None))
            } else {
                decide.charge(true)
            }
        }
        (PricingModel::Conversation, MessageKind::FreeForm) => {
            if user.any_conversation_open(at) {
                return Ok(decide.free(FreeReason::ConversationOpen, None));
            }
            let service = |free| {
                decide.window(
                    WindowKind::Conversation(Category::Service),
                    era.conversation_hours,
                    free,
                )
            };
            if era.service_free {
                Ok(decide.free(FreeReason::ServiceFree, Some(service(true))))
            } else if month.used_at(at) < era.free_service_per_month {
                let mut pricing = decide.free(FreeReason::FreeTier, Some(service(true)));
                pricing.uses_free_tier = true;
                Ok(pricing)
            } else {
                decide.charge(true)
            }
        }
        (PricingModel::PerMessage, MessageKind::FreeForm) if era.service_free => {
            Ok(decide.free(FreeReason::FreeForm, None))
        }
        (PricingModel::PerMessage, MessageKind::Template(Category::Utility))
            if era.utility_free_in_service_window && in_service_window =>
        {
            Ok(decide.free(FreeReason::UtilityInServiceWindow, None))
        }
        (PricingModel::PerMessage, _) => decide.charge(false),
    }
}

/// Records a sent message: the conversation or window it opened, and the free service
/// conversation it used. Also forgets conversations expired by then.
pub fn apply(user: &mut UserState, month: &mut MonthState, pricing: &Pricing) {
    user.conversations.retain(|c| c.expires_at > pricing.at);
    if let Some(opened) = &pricing.opens {
        match opened.kind {
            WindowKind::FreeEntryPoint => user.free_entry_window = Some(opened.clone()),
            WindowKind::Conversation(_) => user.conversations.push(opened.clone()),
        }
    }
    if pricing.uses_free_tier {
        month.record_free_service(pricing.at);
    }
}

/// The pieces every outcome of [`price`] shares.
struct Decide<'a> {
    book: &'a PriceBook,
    era: &'a Era,
    out: &'a Outbound,
    category: Category,
}

impl Decide<'_> {
    fn base(&self) -> Pricing {
        Pricing {
            at: self.out.at,
            era: self.era.name.clone(),
            model: self.era.model,
            category: self.category,
            opens: None,
            billable: false,
            free_reason: None,
            amount_micros: 0,
            currency: self.out.currency.clone(),
            uses_free_tier: false,
            rate_effective_from: None,
        }
    }

    fn free(&self, reason: FreeReason, opens: Option<OpenConversation>) -> Pricing {
        Pricing {
            free_reason: Some(reason),
            opens,
            ..self.base()
        }
    }

    fn window(&self, kind: WindowKind, hours: u32, free: bool) -> OpenConversation {
        OpenConversation {
            kind,
            opened_at: self.out.at,
            expires_at: self.out.at + Duration::hours(i64::from(hours)),
            free,
        }
    }

    /// Charges the rate for the category; in a conversation era the message opens a
    /// conversation of that category, at that price.
    fn charge(&self, opens_conversation: bool) -> Result<Pricing, PricingError> {
        let (out, category) = (self.out, self.category);
        let row = self
            .book
            .rate(out.at, &out.country, category, &out.currency)
            .ok_or_else(|| PricingError::NoRate {
                country: out.country.clone(),
                category,
                currency: out.currency.clone(),
            })?;
        let opens = opens_conversation.then(|| {
            self.window(
                WindowKind::Conversation(category),
                self.era.conversation_hours,
                false,
            )
        });
        Ok(Pricing {
            opens,
            billable: true,
            amount_micros: row.price_micros,
            rate_effective_from: Some(row.effective_from),
            ..self.base()
        })
    }
}
