//! The CSV import's file check: any bytes get a verdict, never a panic; a file it passes
//! is stored byte for byte and reads back as exactly the rows it counted.

use proptest::prelude::*;

use super::{config, nasty_text};
use crate::contacts::import::csv_file::{self, Checked, FileError, Limits};

const LIMITS: Limits = Limits {
    max_bytes: 4_096,
    max_rows: 50,
    preview_rows: 3,
};

/// The seed corpus: files that broke, or could break, CSV readers.
const CORPUS: &[(&str, &[u8])] = &[
    (
        "bom_then_header",
        include_bytes!("corpus/csv/bom_then_header.csv"),
    ),
    ("utf16_bom", include_bytes!("corpus/csv/utf16_bom.csv")),
    (
        "unbalanced_quote",
        include_bytes!("corpus/csv/unbalanced_quote.csv"),
    ),
    (
        "quote_in_unquoted",
        include_bytes!("corpus/csv/quote_in_unquoted.csv"),
    ),
    ("crlf_and_cr", include_bytes!("corpus/csv/crlf_and_cr.csv")),
    ("nul_bytes", include_bytes!("corpus/csv/nul_bytes.csv")),
    ("latin1", include_bytes!("corpus/csv/latin1.csv")),
    ("formulas", include_bytes!("corpus/csv/formulas.csv")),
    ("ragged_rows", include_bytes!("corpus/csv/ragged_rows.csv")),
    (
        "empty_header_cells",
        include_bytes!("corpus/csv/empty_header_cells.csv"),
    ),
    (
        "duplicate_headers_case",
        include_bytes!("corpus/csv/duplicate_headers_case.csv"),
    ),
    (
        "only_newlines",
        include_bytes!("corpus/csv/only_newlines.csv"),
    ),
    ("header_only", include_bytes!("corpus/csv/header_only.csv")),
    (
        "sql_and_pipes",
        include_bytes!("corpus/csv/sql_and_pipes.csv"),
    ),
    (
        "overlong_utf8",
        include_bytes!("corpus/csv/overlong_utf8.csv"),
    ),
    (
        "bidi_and_zero_width",
        include_bytes!("corpus/csv/bidi_and_zero_width.csv"),
    ),
];

/// Checks `bytes` and, for a good file, holds the verdict to what the importer reads.
fn check_consistently(bytes: &[u8], piece_bytes: usize) -> Result<Checked, FileError> {
    let mut stored = Vec::new();
    let verdict = csv_file::check(bytes, &LIMITS, piece_bytes, |piece| {
        assert!(!piece.is_empty() && piece.len() <= piece_bytes);
        stored.extend_from_slice(&piece);
        Ok(())
    })
    .expect("reading from memory cannot fail");
    if let Ok(checked) = &verdict {
        assert_eq!(stored, bytes, "a good file is stored unchanged");
        assert!(!checked.headers.is_empty());
        let mut seen = std::collections::HashSet::new();
        for header in &checked.headers {
            assert!(seen.insert(header.to_lowercase()), "duplicate {header}");
        }
        assert!(checked.preview.len() <= LIMITS.preview_rows);
        assert!(checked.rows <= LIMITS.max_rows);
        let mut read = 0;
        for row in csv_file::rows(bytes, 0) {
            let (number, _) = row.expect("a checked file reads back without error");
            read += 1;
            assert_eq!(number, read);
        }
        assert_eq!(
            read, checked.rows,
            "the importer reads the rows the check counted"
        );
        // Resuming after some rows reads the rest.
        let skip = checked.rows / 2;
        assert_eq!(
            csv_file::rows(bytes, skip).count() as u64,
            checked.rows - skip
        );
    }
    if bytes.len() as u64 > LIMITS.max_bytes {
        assert!(
            matches!(verdict, Err(FileError::TooLarge(_))),
            "{verdict:?}"
        );
    }
    verdict
}

/// CSV-looking text: headers, cells with quotes, separators and line ends of every kind.
fn csv_like() -> impl Strategy<Value = Vec<u8>> {
    let cell = prop_oneof![
        nasty_text(),
        "[0-9+ ()-]{0,14}",
        Just(String::new()),
        nasty_text().prop_map(|t| format!("\"{}\"", t.replace('"', "\"\""))),
    ];
    let row = proptest::collection::vec(cell, 0..6).prop_map(|cells| cells.join(","));
    let end = prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("")];
    (
        prop_oneof![Just(""), Just("\u{FEFF}")],
        proptest::collection::vec((row, end), 0..12),
    )
        .prop_map(|(bom, rows)| {
            let mut text = String::from(bom);
            for (row, end) in rows {
                text.push_str(&row);
                text.push_str(end);
            }
            text.into_bytes()
        })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_bytes_get_a_verdict(bytes in proptest::collection::vec(any::<u8>(), 0..600), piece in 1usize..64) {
        check_consistently(&bytes, piece).ok();
    }

    #[test]
    fn csv_like_text_gets_a_consistent_verdict(bytes in csv_like(), piece in 1usize..256) {
        check_consistently(&bytes, piece).ok();
    }

    #[test]
    fn the_verdict_does_not_depend_on_how_the_file_is_cut(bytes in csv_like(), a in 1usize..32, b in 32usize..512) {
        prop_assert_eq!(check_consistently(&bytes, a), check_consistently(&bytes, b));
    }
}

#[test]
fn the_seed_corpus_gets_the_verdicts_it_should() {
    for (name, bytes) in CORPUS {
        let verdict = check_consistently(bytes, 7);
        let expected_good = matches!(
            *name,
            "bom_then_header"
                | "crlf_and_cr"
                | "formulas"
                | "ragged_rows"
                | "sql_and_pipes"
                | "bidi_and_zero_width"
                | "header_only"
                | "quote_in_unquoted"
                | "unbalanced_quote"
        );
        assert_eq!(verdict.is_ok(), expected_good, "{name}: {verdict:?}");
    }
}
