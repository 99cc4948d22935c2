//! Rate-card CSV: the fixture, and one bad file with every problem code.

use super::{FIXTURE, day};
use crate::billing::pricing::{
    Category, ProblemCode, RateCardProblem, RateRow, parse_rate_card_csv,
};

fn problems(csv: &str) -> Vec<(u64, &'static str)> {
    let found: Vec<RateCardProblem> = parse_rate_card_csv(csv.as_bytes()).expect_err("refused");
    found.iter().map(|p| (p.line, p.code.as_str())).collect()
}

#[test]
fn fixture_parses_to_29_rows() {
    let rows = parse_rate_card_csv(FIXTURE).expect("the fixture parses");
    assert_eq!(rows.len(), 29);
    assert_eq!(
        rows[0],
        RateRow {
            era: "cbp_2023".into(),
            effective_from: day("2023-06-01"),
            country: "IN".into(),
            category: Category::Marketing,
            currency: "INR".into(),
            price_micros: 726_500,
        }
    );
    let in_era = |name: &str| rows.iter().filter(|r| r.era == name).count();
    assert_eq!(
        (
            in_era("cbp_2023"),
            in_era("cbp_free_service_2024"),
            in_era("pmp_2025")
        ),
        (12, 8, 9)
    );
    let free_service = rows
        .iter()
        .filter(|r| r.category == Category::Service && r.price_micros == 0);
    assert_eq!(free_service.count(), 2);
}

#[test]
fn every_problem_code_with_its_line() {
    let csv = "\
era,effective_from,country,category,currency,price
cbp_2023,2023-06-01,IN,marketing,INR,0.7265
cbp_2023,2023-13-01,IN,utility,INR,0.3082
cbp_2023,2023-06-01,India,utility,INR,0.3082
cbp_2023,2023-06-01,IN,promo,INR,0.3082
cbp_2023,2023-06-01,IN,utility,RUPEE,0.3082
cbp_2023,2023-06-01,IN,utility,INR,0.1234567
cbp_2023,2023-06-01,IN,marketing,INR,0.8000
cbp_2030,2030-01-01,IN,marketing,INR,1.0
pmp_2025,2024-01-01,IN,marketing,INR,1.0
cbp_2023,2023-06-01,IN,utility,INR
cbp_2023,2023-06-01,IN,utility,INR,0.3082,extra
cbp_2023,2023-06-01,IN,authentication,INR,-0.3082
cbp_2023,2023-6-1,US,marketing,USD,
";
    assert_eq!(
        problems(csv),
        vec![
            (3, "BAD_DATE"),
            (4, "BAD_COUNTRY"),
            (5, "BAD_CATEGORY"),
            (6, "BAD_CURRENCY"),
            (7, "BAD_PRICE"),
            (8, "DUPLICATE_ROW"),
            (9, "UNKNOWN_ERA"),
            (10, "ERA_MISMATCH"),
            (11, "MISSING_COLUMN"),
            (12, "EXTRA_COLUMN"),
            (13, "BAD_PRICE"),
            (14, "BAD_DATE"),
            (14, "BAD_PRICE"),
        ]
    );
    let all = parse_rate_card_csv(csv.as_bytes()).unwrap_err();
    assert!(all[5].message.contains("line 2"), "{}", all[5].message);
    assert!(all.iter().all(|p| !p.message.is_empty()));
}

#[test]
fn header_problems_and_encoding() {
    assert_eq!(
        problems("era,effective_from,country,category,price\n"),
        vec![(1, "MISSING_COLUMN")]
    );
    assert_eq!(problems("").len(), 6, "an empty file lacks every column");
    let mut bytes = b"era,effective_from,country,category,currency,price\n".to_vec();
    bytes.extend_from_slice(b"cbp_2023,2023-06-01,IN,marketing,INR,0.7\xff\n");
    let found = parse_rate_card_csv(&bytes).unwrap_err();
    assert_eq!(
        (found[0].line, found[0].code),
        (2, ProblemCode::BadEncoding)
    );
}

#[test]
fn lenient_where_harmless() {
    // Columns by name in any order, extra columns ignored, fields trimmed, codes upper-cased.
    let csv = "price , currency,category,country,effective_from,era,note\n\
               0.5, usd ,Marketing,us,2025-07-01,pmp_2025,launch\n\n";
    let rows = parse_rate_card_csv(csv.as_bytes()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].country.as_str(), rows[0].currency.as_str()),
        ("US", "USD")
    );
    assert_eq!(rows[0].price_micros, 500_000);
    assert_eq!(
        parse_rate_card_csv(b"era,effective_from,country,category,currency,price\n"),
        Ok(vec![])
    );
}
