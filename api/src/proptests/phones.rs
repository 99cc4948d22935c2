//! Phone normalization: any text gets an E.164 number or a reason, never a panic; what it
//! accepts is canonical (it normalizes to itself) and in a reachable country.

use proptest::prelude::*;

use super::{config, corpus_lines, nasty_text};
use crate::contacts::phone::{self, PhoneRules};

const CORPUS: &str = include_str!("corpus/phones.txt");

fn check(raw: &str, rules: &PhoneRules) {
    let Ok(e164) = phone::normalize(raw, rules) else {
        return;
    };
    assert!(e164.starts_with('+'), "{raw:?} -> {e164}");
    let digits = &e164[1..];
    assert!(
        (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()),
        "{raw:?} -> {e164}"
    );
    assert!(!digits.starts_with('0'), "{raw:?} -> {e164}");
    assert_eq!(
        phone::normalize(&e164, rules).as_deref(),
        Ok(e164.as_str()),
        "{raw:?}: a normalized number normalizes to itself"
    );
    assert!(
        rules.unreachable.lookup(digits).is_none(),
        "{raw:?} -> {e164} is in an unreachable country"
    );
    phone::country_of(&e164);
}

/// Text shaped like phone numbers, in several scripts and with the usual punctuation.
fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\+?[0-9 ()./-]{0,22}",
        "(00|\\+)(91|1|44|7978|53|850|98|963)[0-9 ]{4,14}",
        "[0０-９٠-٩۰-۹ +]{0,16}",
        "'?\\+?[0-9]{1,20}",
    ]
}

proptest! {
    #![proptest_config(config(200))]

    #[test]
    fn any_text_gets_a_number_or_a_reason(raw in nasty_text()) {
        check(&raw, &PhoneRules::default());
    }

    #[test]
    fn phone_like_text_normalizes_canonically(raw in phone_like(), country in prop_oneof![Just("IN"), Just("US"), Just("GB"), Just("BR"), Just("XX"), Just("")]) {
        let rules = PhoneRules { default_country: country.to_owned(), ..PhoneRules::default() };
        check(&raw, &rules);
    }
}

#[test]
fn the_seed_corpus_gets_numbers_or_reasons() {
    let rules = PhoneRules::default();
    let mut accepted = Vec::new();
    for raw in corpus_lines(CORPUS) {
        check(raw, &rules);
        if let Ok(e164) = phone::normalize(raw, &rules) {
            accepted.push((raw, e164));
        }
    }
    // Unreachable countries, letters, lone signs and overlong input are all refused.
    for (raw, e164) in &accepted {
        assert!(
            !raw.contains("FLOWERS") && !raw.starts_with("+7978") && !raw.starts_with("+850"),
            "{raw:?} -> {e164}"
        );
    }
    // Spacing, dots, dashes and a bracketed trunk zero are only punctuation.
    for raw in [
        "+91 (0) 98123 45678",
        "+ 9 1 9 8 1 2 3 4 5 6 7 8",
        "+91-98123-45678-",
        "+91..98123..45678",
    ] {
        assert!(
            accepted
                .iter()
                .any(|(r, e164)| *r == raw && e164 == "+919812345678"),
            "{raw}: {accepted:?}"
        );
    }
    // Other scripts' digits, a text marker and control characters are refused.
    for raw in [
        "９８１２３４５６７８",
        "٩٨١٢٣٤٥٦٧٨",
        "'+919812345678",
        "9812345678\u{0}",
    ] {
        assert!(phone::normalize(raw, &rules).is_err(), "{raw:?}");
    }
    assert!(
        phone::normalize(&"1".repeat(400), &rules).is_err(),
        "overlong input"
    );
}
