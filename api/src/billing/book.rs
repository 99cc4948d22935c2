//! The price book as stored: eras and rate cards are rows with effective dates (a change of
//! Meta's pricing is new rows, not new code). Each node keeps the book per currency for a
//! short while, and drops it at once when this node imports a rate card.
//!
//! A project pays in its own currency. Where the rate card has no row in that currency for
//! a country, the row in another currency is converted with the exchange rate in force on
//! the row's date (`exchange_rates`), rounded to the micro-unit.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{NaiveDate, TimeZone, Utc};
use parley_entity::{exchange_rate, pricing_era, rate_card};
use sea_orm::{ConnectionTrait, EntityTrait, TransactionTrait};

use super::pricing::{
    Category, Era, PriceBook, PricingModel, RateCardProblem, RateRow, parse_rate_card_csv_for,
};
use crate::{
    errors::{AppError, AppResult},
    state::AppState,
};

/// How long a node trusts its copy (another node's import shows within this).
const TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct PriceBooks {
    by_currency: Mutex<HashMap<String, (Instant, Arc<PriceBook>)>>,
}

impl PriceBooks {
    pub fn invalidate(&self) {
        self.by_currency.lock().expect("price books").clear();
    }
}

/// The book for pricing in `currency`.
pub async fn load<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    currency: &str,
) -> AppResult<Arc<PriceBook>> {
    if let Some((at, book)) = state
        .price_books
        .by_currency
        .lock()
        .expect("price books")
        .get(currency)
        && at.elapsed() < TTL
    {
        return Ok(book.clone());
    }
    let book = Arc::new(read(conn, currency).await?);
    state
        .price_books
        .by_currency
        .lock()
        .expect("price books")
        .insert(currency.to_owned(), (Instant::now(), book.clone()));
    Ok(book)
}

/// The eras as stored.
pub async fn eras<C: ConnectionTrait>(conn: &C) -> AppResult<Vec<Era>> {
    let rows = pricing_era::Entity::find().all(conn).await?;
    let mut eras = Vec::with_capacity(rows.len());
    for row in rows {
        let date = NaiveDate::parse_from_str(&row.effective_from, "%Y-%m-%d")
            .map_err(|e| AppError::internal(anyhow::anyhow!("era {}: {e}", row.name)))?;
        eras.push(Era {
            effective_from: Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default()),
            model: if row.model == "PER_MESSAGE" {
                PricingModel::PerMessage
            } else {
                PricingModel::Conversation
            },
            free_service_per_month: u32::try_from(row.free_service_per_month).unwrap_or(0),
            service_free: row.service_free,
            utility_free_in_service_window: row.utility_free_in_service_window,
            free_entry_point_hours: u32::try_from(row.free_entry_point_hours).unwrap_or(72),
            conversation_hours: u32::try_from(row.conversation_hours).unwrap_or(24),
            name: row.name,
        });
    }
    eras.sort_by_key(|e| e.effective_from);
    Ok(eras)
}

/// Every stored rate row.
pub async fn rates<C: ConnectionTrait>(conn: &C) -> AppResult<Vec<RateRow>> {
    let rows = rate_card::Entity::find().all(conn).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            Some(RateRow {
                effective_from: NaiveDate::parse_from_str(&row.effective_from, "%Y-%m-%d").ok()?,
                category: Category::parse(&row.category)?,
                era: row.era,
                country: row.country,
                currency: row.currency,
                price_micros: row.price_micros,
            })
        })
        .collect())
}

async fn read<C: ConnectionTrait>(conn: &C, currency: &str) -> AppResult<PriceBook> {
    let eras = eras(conn).await?;
    let rates = rates(conn).await?;
    let fx = exchange_rate::Entity::find().all(conn).await?;
    Ok(PriceBook::new(eras, in_currency(rates, &fx, currency)))
}

/// The rows in `currency`, plus, for each (date, country, category) with no row in it, the
/// other currency's row converted.
pub fn in_currency(
    rates: Vec<RateRow>,
    fx: &[exchange_rate::Model],
    currency: &str,
) -> Vec<RateRow> {
    let native: HashSet<(NaiveDate, String, Category)> = rates
        .iter()
        .filter(|r| r.currency == currency)
        .map(|r| (r.effective_from, r.country.clone(), r.category))
        .collect();
    let mut out = Vec::with_capacity(rates.len());
    for row in rates {
        if row.currency == currency {
            out.push(row);
            continue;
        }
        if native.contains(&(row.effective_from, row.country.clone(), row.category)) {
            continue;
        }
        let day = row.effective_from.format("%Y-%m-%d").to_string();
        let Some(rate) = fx
            .iter()
            .filter(|r| {
                r.from_currency == row.currency
                    && r.to_currency == currency
                    && r.effective_from <= day
            })
            .max_by(|a, b| a.effective_from.cmp(&b.effective_from))
        else {
            continue;
        };
        let converted =
            (i128::from(row.price_micros) * i128::from(rate.rate_micros) + 500_000) / 1_000_000;
        out.push(RateRow {
            currency: currency.to_owned(),
            price_micros: i64::try_from(converted).unwrap_or(i64::MAX),
            ..row
        });
    }
    out
}

/// Replaces the rate card with a CSV file and forgets this node's cached books (other
/// nodes see it within 30 seconds).
pub async fn import(state: &AppState, csv: &[u8]) -> Result<usize, ImportError> {
    let rows = import_into(&state.db, csv).await?;
    state.price_books.invalidate();
    Ok(rows)
}

/// Replaces the rate card with a CSV file (`era,effective_from,country,category,currency,
/// price`), all or nothing. Returns the number of rows.
pub async fn import_into(
    db: &sea_orm::DatabaseConnection,
    csv: &[u8],
) -> Result<usize, ImportError> {
    let eras = eras(db).await?;
    let rows = parse_rate_card_csv_for(csv, &eras).map_err(ImportError::Problems)?;
    let txn = db.begin().await?;
    rate_card::Entity::delete_many().exec(&txn).await?;
    for chunk in rows.chunks(500) {
        rate_card::Entity::insert_many(chunk.iter().map(|r| rate_card::ActiveModel {
            era: sea_orm::Set(r.era.clone()),
            effective_from: sea_orm::Set(r.effective_from.format("%Y-%m-%d").to_string()),
            country: sea_orm::Set(r.country.clone()),
            category: sea_orm::Set(r.category.as_str().to_owned()),
            currency: sea_orm::Set(r.currency.clone()),
            price_micros: sea_orm::Set(r.price_micros),
        }))
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    Ok(rows.len())
}

#[derive(Debug)]
pub enum ImportError {
    Problems(Vec<RateCardProblem>),
    App(AppError),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Problems(problems) => {
                writeln!(f, "the rate card was refused:")?;
                for p in problems {
                    writeln!(f, "  line {}: {} {}", p.line, p.code.as_str(), p.message)?;
                }
                Ok(())
            }
            Self::App(err) => write!(f, "{err}"),
        }
    }
}

impl From<AppError> for ImportError {
    fn from(err: AppError) -> Self {
        Self::App(err)
    }
}

impl From<sea_orm::DbErr> for ImportError {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::App(err.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(country: &str, category: Category, currency: &str, price: i64) -> RateRow {
        RateRow {
            era: "cbp_2023".into(),
            effective_from: NaiveDate::from_ymd_opt(2023, 6, 1).unwrap(),
            country: country.into(),
            category,
            currency: currency.into(),
            price_micros: price,
        }
    }

    #[test]
    fn rows_in_another_currency_are_converted_only_where_none_is_native() {
        let fx = vec![exchange_rate::Model {
            from_currency: "USD".into(),
            to_currency: "INR".into(),
            effective_from: "2023-01-01".into(),
            rate_micros: 83_000_000,
        }];
        let rates = vec![
            row("IN", Category::Marketing, "INR", 726_500),
            row("IN", Category::Marketing, "USD", 9_999),
            row("US", Category::Marketing, "USD", 25_000),
        ];
        let out = in_currency(rates, &fx, "INR");
        let find = |c: &str| out.iter().find(|r| r.country == c).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(find("IN").price_micros, 726_500, "the native row wins");
        // 0.025 USD at 83 INR per USD = 2.075 INR.
        assert_eq!(find("US").price_micros, 2_075_000);
        assert_eq!(find("US").currency, "INR");
    }

    #[test]
    fn without_an_exchange_rate_there_is_no_row() {
        let rates = vec![row("US", Category::Marketing, "USD", 25_000)];
        assert!(in_currency(rates, &[], "EUR").is_empty());
    }
}
