//! Tests of the pricing engine against the real rate-card fixture. The table of scenarios
//! is in [`cases`] (run by [`harness`]); every expected value there is written by hand
//! from SPEC section 7 and the fixture's prices, not copied from the engine's output.

#[rustfmt::skip]
mod cases;
mod engine;
mod harness;
mod rate_card;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::{Category, FreeReason, PriceBook};
use harness::{Expect, Step, run_case};

/// The shared fixture (`../shared` from the checkout's root).
pub(super) const FIXTURE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/rate-cards.csv"
));

pub(super) fn book() -> PriceBook {
    PriceBook::from_csv(FIXTURE).expect("the fixture parses")
}

/// `"2024-03-04 10:00"`, UTC.
pub(super) fn t(text: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .expect(text)
        .and_utc()
}

pub(super) fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect(text)
}

#[test]
fn scenarios_price_as_the_spec_says() {
    let book = book();
    let failures: Vec<String> = cases::all()
        .iter()
        .flat_map(|case| run_case(&book, case))
        .collect();
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The table must keep exercising every outcome, or a rule could lose its test unnoticed.
#[test]
fn scenarios_cover_every_reason_and_refusal() {
    let cases = cases::all();
    let expects = || {
        cases.iter().flat_map(|c| &c.steps).filter_map(|s| match s {
            Step::Out { expect, .. } => Some(expect),
            Step::In { .. } => None,
        })
    };
    let reasons = [
        FreeReason::FreeEntryPoint,
        FreeReason::FreeTier,
        FreeReason::ServiceFree,
        FreeReason::ConversationOpen,
        FreeReason::UtilityInServiceWindow,
        FreeReason::FreeForm,
    ];
    for want in reasons {
        let covered =
            expects().any(|e| matches!(e, Expect::Priced { reason: Some(r), .. } if *r == want));
        assert!(covered, "no case expects {want:?}");
    }
    for want in ["NoEra", "NoRate", "OutsideWindow", "ServiceTemplate"] {
        let covered = expects()
            .any(|e| matches!(e, Expect::Refused(r) if format!("{r:?}").starts_with(want)));
        assert!(covered, "no case expects {want}");
    }
    for category in Category::ALL {
        let charged = expects().any(
            |e| matches!(e, Expect::Priced { category: c, reason: None, .. } if *c == category),
        );
        assert!(charged, "no case charges {category}");
    }
}
