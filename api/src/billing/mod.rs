//! Billing: plans and invoices, the credit wallet, the pricing of every outbound message
//! across Meta's pricing eras, and the usage reports for finance.

pub mod alerts;
pub mod book;
pub mod charges;
pub mod graphql;
pub mod plans;
pub mod pricing;
pub mod reports;
pub mod sweeper;
pub mod wallet;

/// The currency a new project bills in: rupees for Indian projects (as the rate card's
/// Indian rows are), US dollars elsewhere.
pub fn default_currency(default_country: &str) -> &'static str {
    if default_country.eq_ignore_ascii_case("IN") {
        "INR"
    } else {
        "USD"
    }
}
