//! The scenario table's vocabulary: steps, expectations, and the runner that compares a
//! [`Simulator`] run with them (plus invariants every pricing must keep).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::{day, t};
use crate::billing::pricing::{
    Category, Event, FreeReason, MessageKind, MonthState, PriceBook, Pricing, PricingError,
    PricingModel, Simulator, Totals, WindowKind,
};

/// What an outbound message is expected to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Opens {
    Nothing,
    Conv(Category),
    Fep,
}

/// Why an outbound message is expected to be refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    NoEra,
    NoRate(&'static str, Category, &'static str),
    OutsideWindow,
    ServiceTemplate,
}

#[derive(Clone, Debug)]
pub(super) enum Expect {
    Priced {
        category: Category,
        opens: Opens,
        reason: Option<FreeReason>,
        amount: i64,
        era: Option<&'static str>,
        rate_from: Option<&'static str>,
    },
    Refused(Refusal),
}

/// Expected pricing: category charged, what it opens, free reason, amount in micros.
pub(super) fn ok(
    category: Category,
    opens: Opens,
    reason: Option<FreeReason>,
    amount: i64,
) -> Expect {
    Expect::Priced {
        category,
        opens,
        reason,
        amount,
        era: None,
        rate_from: None,
    }
}

pub(super) fn err(refusal: Refusal) -> Expect {
    Expect::Refused(refusal)
}

impl Expect {
    /// Also expects the era in force.
    pub(super) fn era(mut self, name: &'static str) -> Self {
        if let Expect::Priced { era, .. } = &mut self {
            *era = Some(name);
        }
        self
    }

    /// Also expects the date of the rate row charged.
    pub(super) fn rate_from(mut self, date: &'static str) -> Self {
        if let Expect::Priced { rate_from, .. } = &mut self {
            *rate_from = Some(date);
        }
        self
    }
}

pub(super) enum Step {
    In {
        user: String,
        at: DateTime<Utc>,
        fep: bool,
    },
    Out {
        user: String,
        at: DateTime<Utc>,
        kind: MessageKind,
        country: &'static str,
        expect: Expect,
    },
}

pub(super) fn inbound(user: &str, at: DateTime<Utc>) -> Step {
    Step::In {
        user: user.into(),
        at,
        fep: false,
    }
}

/// An inbound that came from a click-to-WhatsApp ad or a page button.
pub(super) fn from_ad(user: &str, at: DateTime<Utc>) -> Step {
    Step::In {
        user: user.into(),
        at,
        fep: true,
    }
}

pub(super) fn out(
    user: &str,
    at: DateTime<Utc>,
    kind: MessageKind,
    country: &'static str,
    expect: Expect,
) -> Step {
    Step::Out {
        user: user.into(),
        at,
        kind,
        country,
        expect,
    }
}

/// Expected totals of a case.
pub(super) struct Expected {
    pub messages: u32,
    pub free: u32,
    pub billable: u32,
    pub refused: u32,
    pub amount: i64,
    pub opened: &'static [(Category, u32)],
    pub fep_windows: u32,
    pub free_tier: u32,
}

pub(super) struct Case {
    pub name: &'static str,
    pub currency: &'static str,
    /// Free service conversations already used in the month of this instant.
    pub free_tier_used: Option<(&'static str, u32)>,
    pub steps: Vec<Step>,
    pub totals: Expected,
}

/// Runs one case; returns a line per mismatch.
pub(super) fn run_case(book: &PriceBook, case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    let mut fail = |what: String| failures.push(format!("[{}] {what}", case.name));
    let events: Vec<Event> = case
        .steps
        .iter()
        .map(|step| match step {
            Step::In { user, at, fep } => Event::Inbound {
                user: user.clone(),
                at: *at,
                free_entry_point: *fep,
            },
            Step::Out {
                user,
                at,
                kind,
                country,
                ..
            } => Event::Outbound {
                user: user.clone(),
                at: *at,
                kind: *kind,
                country: (*country).into(),
            },
        })
        .collect();
    let mut sim = Simulator::new(book, case.currency);
    if let Some((at, used)) = case.free_tier_used {
        sim = sim.with_month_state(MonthState {
            free_service_used: used,
            ..MonthState::new(t(at))
        });
    }
    let simulation = sim.run(&events);
    let outbound_steps = case
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Out { .. }))
        .count();
    if simulation.outcomes.len() != outbound_steps {
        fail(format!(
            "{} outcomes for {outbound_steps} outbound steps",
            simulation.outcomes.len()
        ));
    }
    for outcome in &simulation.outcomes {
        let Step::Out {
            user,
            at,
            kind,
            expect,
            ..
        } = &case.steps[outcome.event_index]
        else {
            fail(format!("outcome for inbound step {}", outcome.event_index));
            continue;
        };
        let label = format!("step {} ({user} {at} {kind:?})", outcome.event_index);
        for problem in check(expect, &outcome.result, case.currency) {
            fail(format!("{label}: {problem}"));
        }
    }
    let e = &case.totals;
    let expected = Totals {
        messages: e.messages,
        free: e.free,
        billable: e.billable,
        refused: e.refused,
        amount_micros: e.amount,
        conversations_opened: e.opened.iter().copied().collect::<BTreeMap<_, _>>(),
        free_entry_windows: e.fep_windows,
        free_tier_used: e.free_tier,
    };
    if simulation.totals != expected {
        fail(format!(
            "totals\n  got      {:?}\n  expected {expected:?}",
            simulation.totals
        ));
    }
    failures
}

/// Compares one result with its expectation, plus the invariants every pricing keeps.
fn check(expect: &Expect, result: &Result<Pricing, PricingError>, currency: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let (p, (category, opens, reason, amount, era, rate_from)) = match (expect, result) {
        (Expect::Refused(refusal), Err(error)) => {
            let matches = match (refusal, error) {
                (Refusal::NoEra, PricingError::NoEra { .. })
                | (Refusal::OutsideWindow, PricingError::OutsideServiceWindow { .. })
                | (Refusal::ServiceTemplate, PricingError::ServiceTemplate) => true,
                (
                    Refusal::NoRate(co, ca, cu),
                    PricingError::NoRate {
                        country,
                        category,
                        currency,
                    },
                ) => co == country && ca == category && cu == currency,
                _ => false,
            };
            if !matches {
                problems.push(format!("expected refusal {refusal:?}, got {error:?}"));
            }
            return problems;
        }
        (Expect::Refused(refusal), Ok(p)) => {
            return vec![format!("expected {refusal:?}, got {p:?}")];
        }
        (Expect::Priced { .. }, Err(error)) => {
            return vec![format!("expected a price, got {error:?}")];
        }
        (
            Expect::Priced {
                category,
                opens,
                reason,
                amount,
                era,
                rate_from,
            },
            Ok(p),
        ) => (p, (*category, *opens, *reason, *amount, *era, *rate_from)),
    };
    let got_opens = match p.opens.as_ref().map(|o| o.kind) {
        None => Opens::Nothing,
        Some(WindowKind::Conversation(c)) => Opens::Conv(c),
        Some(WindowKind::FreeEntryPoint) => Opens::Fep,
    };
    let mut same = |what: &str, got: String, want: String| {
        if got != want {
            problems.push(format!("{what}: got {got}, expected {want}"));
        }
    };
    same(
        "category",
        format!("{:?}", p.category),
        format!("{category:?}"),
    );
    same("opens", format!("{got_opens:?}"), format!("{opens:?}"));
    same(
        "free reason",
        format!("{:?}", p.free_reason),
        format!("{reason:?}"),
    );
    same("amount", p.amount_micros.to_string(), amount.to_string());
    same("currency", p.currency.clone(), currency.to_string());
    if let Some(era) = era {
        same("era", p.era.clone(), era.to_string());
    }
    if let Some(date) = rate_from {
        same(
            "rate date",
            format!("{:?}", p.rate_effective_from),
            format!("{:?}", Some(day(date))),
        );
    }
    // Invariants of the rules, whatever the case.
    same(
        "billable",
        p.billable.to_string(),
        p.free_reason.is_none().to_string(),
    );
    same(
        "rate date set",
        p.rate_effective_from.is_some().to_string(),
        p.billable.to_string(),
    );
    same(
        "uses free tier",
        p.uses_free_tier.to_string(),
        (p.free_reason == Some(FreeReason::FreeTier)).to_string(),
    );
    if let Some(o) = &p.opens {
        let hours = if o.kind == WindowKind::FreeEntryPoint {
            72
        } else {
            24
        };
        same("opened at", o.opened_at.to_string(), p.at.to_string());
        same(
            "expires at",
            o.expires_at.to_string(),
            (p.at + Duration::hours(hours)).to_string(),
        );
        same("opened free", o.free.to_string(), (!p.billable).to_string());
    }
    if p.model == PricingModel::PerMessage && matches!(got_opens, Opens::Conv(_)) {
        problems.push("a per-message era opened a conversation".into());
    }
    problems
}
