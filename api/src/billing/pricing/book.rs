//! The price book: the eras and the rate card, and the two lookups pricing needs.

use chrono::{DateTime, NaiveDate, Utc};

use super::{Category, Era, RateCardProblem, RateRow, parse_rate_card_csv};

/// Eras plus rates. Both are plain data; lookups scan them (a rate card is a few thousand
/// rows at most, and a price is looked up once per conversation or template).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceBook {
    pub eras: Vec<Era>,
    pub rates: Vec<RateRow>,
}

impl PriceBook {
    pub fn new(eras: Vec<Era>, rates: Vec<RateRow>) -> Self {
        PriceBook { eras, rates }
    }

    /// The built-in eras with a rate card parsed from CSV.
    pub fn from_csv(bytes: &[u8]) -> Result<Self, Vec<RateCardProblem>> {
        Ok(PriceBook::new(Era::builtin(), parse_rate_card_csv(bytes)?))
    }

    /// The era in force at `at`: the latest whose `effective_from <= at`.
    pub fn era_at(&self, at: DateTime<Utc>) -> Option<&Era> {
        self.eras
            .iter()
            .filter(|e| e.effective_from <= at)
            .max_by_key(|e| e.effective_from)
    }

    /// The rate for a country, category and currency at `at`: the row with the latest
    /// `effective_from <= at`'s UTC date, whatever its era. A row stays in force until a
    /// newer row for the same key supersedes it, so a rate card only lists changes (the
    /// fixture's AU rows of 2023 still price AU in December 2024). Codes compare
    /// case-insensitively.
    pub fn rate(
        &self,
        at: DateTime<Utc>,
        country: &str,
        category: Category,
        currency: &str,
    ) -> Option<&RateRow> {
        let day: NaiveDate = at.date_naive();
        self.rates
            .iter()
            .filter(|r| {
                r.effective_from <= day
                    && r.category == category
                    && r.country.eq_ignore_ascii_case(country)
                    && r.currency.eq_ignore_ascii_case(currency)
            })
            .max_by_key(|r| r.effective_from)
    }
}
