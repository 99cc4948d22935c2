//! Replays a project's inbound and outbound messages through the engine: what each send
//! would have cost, and the totals. Used by tests and to preview a rate-card or era change.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::{
    Category, MessageKind, MonthState, Outbound, PriceBook, Pricing, PricingError, UserState,
    WindowKind, apply, price,
};

/// One message of the project, to or from one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Inbound {
        user: String,
        at: DateTime<Utc>,
        free_entry_point: bool,
    },
    Outbound {
        user: String,
        at: DateTime<Utc>,
        kind: MessageKind,
        country: String,
    },
}

impl Event {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Event::Inbound { at, .. } | Event::Outbound { at, .. } => *at,
        }
    }
}

/// What happened to one outbound event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Position of the event in the slice given to [`Simulator::run`].
    pub event_index: usize,
    pub user: String,
    pub result: Result<Pricing, PricingError>,
}

/// Sums over the outbound messages of a run. Refused sends count only in `refused`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages priced (sent).
    pub messages: u32,
    pub free: u32,
    pub billable: u32,
    pub refused: u32,
    pub amount_micros: i64,
    /// Conversations opened, per category (categories with none are absent).
    pub conversations_opened: BTreeMap<Category, u32>,
    pub free_entry_windows: u32,
    pub free_tier_used: u32,
}

impl Totals {
    fn add(&mut self, pricing: &Pricing) {
        self.messages += 1;
        if pricing.billable {
            self.billable += 1;
            self.amount_micros += pricing.amount_micros;
        } else {
            self.free += 1;
        }
        match pricing.opens.as_ref().map(|o| o.kind) {
            Some(WindowKind::Conversation(c)) => {
                *self.conversations_opened.entry(c).or_default() += 1;
            }
            Some(WindowKind::FreeEntryPoint) => self.free_entry_windows += 1,
            None => {}
        }
        if pricing.uses_free_tier {
            self.free_tier_used += 1;
        }
    }
}

/// The result of [`Simulator::run`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Simulation {
    /// One per outbound event, in processing (time) order.
    pub outcomes: Vec<Outcome>,
    pub totals: Totals,
}

/// One project: its users' states and its month state, priced in one currency.
pub struct Simulator<'a> {
    book: &'a PriceBook,
    currency: String,
    users: HashMap<String, UserState>,
    month: Option<MonthState>,
}

impl<'a> Simulator<'a> {
    pub fn new(book: &'a PriceBook, currency: impl Into<String>) -> Self {
        Simulator {
            book,
            currency: currency.into(),
            users: HashMap::new(),
            month: None,
        }
    }

    /// Starts from a month state loaded from elsewhere (free tier partly used).
    pub fn with_month_state(mut self, month: MonthState) -> Self {
        self.month = Some(month);
        self
    }

    pub fn user(&self, id: &str) -> Option<&UserState> {
        self.users.get(id)
    }

    /// Processes the events in time order (a stable sort: equal times keep the given
    /// order); state carries over to the next run. The month state follows the UTC month
    /// of each message, so the free tier starts over at the month boundary.
    pub fn run(&mut self, events: &[Event]) -> Simulation {
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by_key(|&i| events[i].at());
        let mut outcomes = Vec::new();
        let mut totals = Totals::default();
        for event_index in order {
            match &events[event_index] {
                Event::Inbound {
                    user,
                    at,
                    free_entry_point,
                } => {
                    self.users
                        .entry(user.clone())
                        .or_default()
                        .on_inbound(*at, *free_entry_point);
                }
                Event::Outbound {
                    user,
                    at,
                    kind,
                    country,
                } => {
                    let state = self.users.entry(user.clone()).or_default();
                    let month = self.month.get_or_insert_with(|| MonthState::new(*at));
                    let out = Outbound {
                        at: *at,
                        kind: *kind,
                        country: country.clone(),
                        currency: self.currency.clone(),
                    };
                    let result = price(self.book, state, month, &out);
                    match &result {
                        Ok(pricing) => {
                            apply(state, month, pricing);
                            totals.add(pricing);
                        }
                        Err(_) => totals.refused += 1,
                    }
                    outcomes.push(Outcome {
                        event_index,
                        user: user.clone(),
                        result,
                    });
                }
            }
        }
        Simulation { outcomes, totals }
    }
}
