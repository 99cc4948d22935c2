//! Property tests of the pure functions that read hostile input: the CSV import's check and
//! row reader, phone normalization, template text and validation, Meta's webhook bodies and
//! signatures, export cells and GraphQL document limits. Each runs on generated input and
//! on the seed corpus in `corpus/`; none may panic, and each has a property of its answer.
//!
//! Failures are kept by proptest in `api/proptest-regressions/` (committed) and replayed
//! first on every run. Case counts are modest so the whole set takes seconds in debug
//! builds; `PROPTEST_CASES` raises them for a longer hunt.

use proptest::prelude::*;

mod csv_import;
mod exports;
mod graphql_documents;
mod phones;
mod templates;
mod webhooks;

/// The cases per property: `PROPTEST_CASES` when set, else `default`.
pub fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Text that tends to break parsers: any Unicode, control and format characters, quotes,
/// separators and brackets, and long runs.
pub fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        proptest::collection::vec(
            prop_oneof![
                Just("\"".to_owned()),
                Just("'".to_owned()),
                Just(",".to_owned()),
                Just("|".to_owned()),
                Just("\n".to_owned()),
                Just("\r".to_owned()),
                Just("\t".to_owned()),
                Just("\u{0}".to_owned()),
                Just("\u{FEFF}".to_owned()),
                Just("\u{202E}".to_owned()),
                Just("\u{200B}".to_owned()),
                Just("{{".to_owned()),
                Just("}}".to_owned()),
                Just("=".to_owned()),
                Just("%".to_owned()),
                Just("\\".to_owned()),
                "[a-zA-Z0-9 ]{0,6}",
                "\\PC{0,3}",
            ],
            0..24
        )
        .prop_map(|pieces| pieces.concat()),
    ]
}

/// The lines of a corpus file.
pub fn corpus_lines(text: &'static str) -> Vec<&'static str> {
    text.lines().collect()
}
