//! Rate cards: price per era, date, country, category and currency, loaded from CSV.
//!
//! The file is validated all-or-nothing: one bad row refuses the whole upload, with every
//! problem listed by line, so finance fixes the file once instead of discovering half a
//! rate card in production.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};

use super::{Category, Era, money::parse_micros};

/// One price: from `effective_from` (a UTC day) until a later row for the same country,
/// category and currency supersedes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateRow {
    /// The era in force on `effective_from`; informative (lookups go by date) but checked.
    pub era: String,
    pub effective_from: NaiveDate,
    /// ISO 3166 alpha-2, upper case.
    pub country: String,
    pub category: Category,
    /// ISO 4217, upper case.
    pub currency: String,
    pub price_micros: i64,
}

/// Why a rate card was refused; codes are stable (the UI and API clients match on them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemCode {
    /// The header lacks a required column, or a row has fewer fields than the header.
    MissingColumn,
    /// A row has more fields than the header.
    ExtraColumn,
    /// Not valid UTF-8 or not readable as CSV.
    BadEncoding,
    BadDate,
    BadCountry,
    BadCategory,
    BadCurrency,
    BadPrice,
    /// Same effective date, country, category and currency as an earlier row.
    DuplicateRow,
    /// The era column names no known era.
    UnknownEra,
    /// The era column is not the era in force on the row's effective date.
    EraMismatch,
}

impl ProblemCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::MissingColumn => "MISSING_COLUMN",
            ProblemCode::ExtraColumn => "EXTRA_COLUMN",
            ProblemCode::BadEncoding => "BAD_ENCODING",
            ProblemCode::BadDate => "BAD_DATE",
            ProblemCode::BadCountry => "BAD_COUNTRY",
            ProblemCode::BadCategory => "BAD_CATEGORY",
            ProblemCode::BadCurrency => "BAD_CURRENCY",
            ProblemCode::BadPrice => "BAD_PRICE",
            ProblemCode::DuplicateRow => "DUPLICATE_ROW",
            ProblemCode::UnknownEra => "UNKNOWN_ERA",
            ProblemCode::EraMismatch => "ERA_MISMATCH",
        }
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, on a 1-based line of the file (the header is line 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateCardProblem {
    pub line: u64,
    pub code: ProblemCode,
    pub message: String,
}

/// The columns, in the fixture's order; located by name, so their order may vary and
/// extra columns are ignored.
pub const COLUMNS: [&str; 6] = [
    "era",
    "effective_from",
    "country",
    "category",
    "currency",
    "price",
];

/// Parses a rate card against the built-in eras. See [`parse_rate_card_csv_for`].
pub fn parse_rate_card_csv(bytes: &[u8]) -> Result<Vec<RateRow>, Vec<RateCardProblem>> {
    parse_rate_card_csv_for(bytes, &Era::builtin())
}

/// Parses `era,effective_from,country,category,currency,price` (fields trimmed, blank
/// lines skipped; dates `YYYY-MM-DD`; prices decimal, at most six places, not negative).
/// Returns every row, or every problem.
pub fn parse_rate_card_csv_for(
    bytes: &[u8],
    eras: &[Era],
) -> Result<Vec<RateRow>, Vec<RateCardProblem>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut records = reader.records();
    let problem = |line, code, message: String| RateCardProblem {
        line,
        code,
        message,
    };

    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return Err(vec![problem(1, ProblemCode::BadEncoding, e.to_string())]),
        None => csv::StringRecord::new(),
    };
    let mut index = [0usize; 6];
    let mut problems = Vec::new();
    for (slot, name) in index.iter_mut().zip(COLUMNS) {
        match header.iter().position(|h| h.eq_ignore_ascii_case(name)) {
            Some(i) => *slot = i,
            None => problems.push(problem(
                1,
                ProblemCode::MissingColumn,
                format!("the header has no `{name}` column"),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let mut rows = Vec::new();
    // (date, country, category, currency) -> line of its first row.
    let mut seen: HashMap<(NaiveDate, String, Category, String), u64> = HashMap::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                problems.push(problem(line, ProblemCode::BadEncoding, e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != header.len() {
            let code = if record.len() < header.len() {
                ProblemCode::MissingColumn
            } else {
                ProblemCode::ExtraColumn
            };
            let message = format!("{} fields, the header has {}", record.len(), header.len());
            problems.push(problem(line, code, message));
            continue;
        }
        let field = |column: usize| record.get(index[column]).unwrap_or("");
        let before = problems.len();
        let mut bad = |code, message: String| problems.push(problem(line, code, message));

        let era_name = field(0);
        let era = eras.iter().find(|e| e.name == era_name);
        if era.is_none() {
            bad(ProblemCode::UnknownEra, format!("unknown era `{era_name}`"));
        }
        let date = parse_date(field(1));
        if date.is_none() {
            bad(
                ProblemCode::BadDate,
                format!("`{}` is not a YYYY-MM-DD date", field(1)),
            );
        }
        let country = upper_letters(field(2), 2);
        if country.is_none() {
            bad(
                ProblemCode::BadCountry,
                format!("`{}` is not a two-letter country code", field(2)),
            );
        }
        let category = Category::parse(field(3));
        if category.is_none() {
            bad(
                ProblemCode::BadCategory,
                format!("`{}` is not a category", field(3)),
            );
        }
        let currency = upper_letters(field(4), 3);
        if currency.is_none() {
            bad(
                ProblemCode::BadCurrency,
                format!("`{}` is not a three-letter currency code", field(4)),
            );
        }
        let price = parse_micros(field(5));
        if price.is_none() {
            bad(
                ProblemCode::BadPrice,
                format!(
                    "`{}` is not a price (at most 6 decimals, not negative)",
                    field(5)
                ),
            );
        }
        if let (Some(era), Some(date)) = (era, date) {
            let start = date.and_time(NaiveTime::MIN).and_utc();
            let in_force = eras
                .iter()
                .filter(|e| e.effective_from <= start)
                .max_by_key(|e| e.effective_from);
            if in_force.map(|e| &e.name) != Some(&era.name) {
                let actual = in_force.map_or("none", |e| e.name.as_str());
                bad(
                    ProblemCode::EraMismatch,
                    format!(
                        "era `{}` is not in force on {date} (`{actual}` is)",
                        era.name
                    ),
                );
            }
        }
        if problems.len() > before {
            continue;
        }
        let (Some(era), Some(date), Some(country), Some(category), Some(currency), Some(price)) =
            (era, date, country, category, currency, price)
        else {
            continue;
        };
        let key = (date, country.clone(), category, currency.clone());
        if let Some(first) = seen.get(&key) {
            let message = format!("same date, country, category and currency as line {first}");
            problems.push(problem(line, ProblemCode::DuplicateRow, message));
            continue;
        }
        seen.insert(key, line);
        rows.push(RateRow {
            era: era.name.clone(),
            effective_from: date,
            country,
            category,
            currency,
            price_micros: price,
        });
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems)
    }
}

/// Strict `YYYY-MM-DD` (chrono alone would accept `2023-6-1`).
fn parse_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// `len` ASCII letters, upper-cased (codes are compared upper case everywhere).
fn upper_letters(text: &str, len: usize) -> Option<String> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| text.to_ascii_uppercase())
}
