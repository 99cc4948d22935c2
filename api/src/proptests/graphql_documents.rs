//! GraphQL documents: whatever text passes the nesting check is parsed without
//! exhausting the stack, and the alias count of any parsed document is computed.

use proptest::prelude::*;

use super::config;
use crate::graphql::document_limits::{MAX_NESTING, check_nesting, count_aliases};

const CORPUS: &str = include_str!("corpus/graphql_documents.json");

/// Documents made of brackets, strings, block strings, comments and names.
fn document() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => prop_oneof![Just("["), Just("{"), Just("(")].prop_map(str::to_owned),
            2 => prop_oneof![Just("]"), Just("}"), Just(")")].prop_map(str::to_owned),
            1 => Just("\"".to_owned()),
            1 => Just("\"\"\"".to_owned()),
            1 => Just("\\".to_owned()),
            1 => Just("#".to_owned()),
            1 => Just("\n".to_owned()),
            2 => "[a-z]{1,4}(: [a-z]{1,4})?".prop_map(|s| format!(" {s} ")),
            1 => Just(" ...F ".to_owned()),
        ],
        0..400,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn what_passes_the_nesting_check_parses_safely(text in document()) {
        if check_nesting(&text).is_ok()
            && let Ok(document) = async_graphql::parser::parse_query(&text)
        {
            count_aliases(&document);
        }
    }

    #[test]
    fn deep_nesting_is_refused_however_it_is_written(depth in MAX_NESTING + 1..5_000, open in prop_oneof![Just('['), Just('{'), Just('(')]) {
        let text: String = std::iter::repeat_n(open, depth).collect();
        let document = format!("{{ f(x: {text}");
        prop_assert!(check_nesting(&document).is_err());
    }
}

#[test]
fn the_seed_corpus_is_refused_or_parsed_safely() {
    let documents: Vec<String> = serde_json::from_str(CORPUS).unwrap();
    let mut refused = 0;
    for text in &documents {
        match check_nesting(text) {
            Ok(()) => {
                async_graphql::parser::parse_query(text).ok();
            }
            Err(_) => refused += 1,
        }
    }
    // The 300-deep list and the 129 open braces; quoted and commented brackets pass.
    assert_eq!(refused, 2);
}
