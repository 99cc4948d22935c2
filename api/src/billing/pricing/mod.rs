//! The pricing engine: pure rules, no database.
//!
//! Prices every outbound WhatsApp message across Meta's pricing eras (section 7 of the product spec):
//! conversation-based pricing from June 2023 (1,000 free service conversations per UTC
//! month), free service from November 2024, per-message pricing from July 2025, and the
//! free-entry-point window in every era.
//!
//! - [`money`]: amounts as `i64` micros, formatted and parsed exactly.
//! - [`Era`] / [`RateRow`]: the rules and the prices, both data with effective dates.
//! - [`PriceBook`]: which era and which rate are in force at an instant.
//! - [`price`] / [`apply`]: the decision for one message, and recording it.
//! - [`Simulator`]: replays a project's messages (tests, previews of a change).
//!
//! All times are UTC, including the calendar month of the free service tier.

mod book;
mod category;
mod engine;
mod era;
pub mod money;
mod rate_card;
mod simulator;

#[cfg(test)]
mod tests;

pub use book::PriceBook;
pub use category::Category;
pub use engine::{
    FreeReason, MessageKind, MonthState, OpenConversation, Outbound, Pricing, PricingError,
    SERVICE_WINDOW_HOURS, UserState, WindowKind, apply, price,
};
pub use era::{Era, PricingModel};
pub use money::{format_micros, parse_micros, parse_signed_micros};
pub use rate_card::{
    COLUMNS, ProblemCode, RateCardProblem, RateRow, parse_rate_card_csv, parse_rate_card_csv_for,
};
pub use simulator::{Event, Outcome, Simulation, Simulator, Totals};
