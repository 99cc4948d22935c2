//! Money as `i64` micro-units of the currency ("micros"): 0.7265 INR is `726_500`.
//!
//! Integers, not floats, so that sums over millions of messages are exact and a price read
//! from a rate card prints back exactly as it was written. Six decimals cover every price
//! Meta publishes (four decimals today) with room to spare.

/// Micros in one unit of currency.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// Formats micros as a decimal string with trailing zeros trimmed: `726_500` → `"0.7265"`,
/// `0` → `"0"`, `12_500_000` → `"12.5"`, `-500_000` → `"-0.5"`. Always at least one digit
/// before the point, never a trailing point; the inverse of [`parse_signed_micros`].
pub fn format_micros(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    // unsigned_abs: i64::MIN has no positive i64 counterpart.
    let abs = micros.unsigned_abs();
    let per_unit = MICROS_PER_UNIT.unsigned_abs();
    let units = abs / per_unit;
    let frac = abs % per_unit;
    if frac == 0 {
        return format!("{sign}{units}");
    }
    let digits = format!("{frac:06}");
    format!("{sign}{units}.{}", digits.trim_end_matches('0'))
}

/// Parses a non-negative decimal amount into micros: `"0.7265"` → `726_500`.
///
/// Accepts digits with an optional point and at most six decimals (`"1"`, `"1."` is refused,
/// `".5"` is refused, `"0.000001"` is accepted). No sign, no spaces, no thousands
/// separators, no exponent: a price on a rate card is never negative, and being strict
/// here turns a typo into a `BAD_PRICE` instead of a silently wrong price. `None` also on
/// overflow. Use [`parse_signed_micros`] where a negative amount makes sense (adjustments).
pub fn parse_micros(text: &str) -> Option<i64> {
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let units: i64 = int_part.parse().ok()?;
    let frac: i64 = match frac_part {
        None => 0,
        Some(f) => {
            if f.is_empty() || f.len() > 6 || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Right-pad to six digits: "7265" means 726_500 micros.
            format!("{f:0<6}").parse().ok()?
        }
    };
    units.checked_mul(MICROS_PER_UNIT)?.checked_add(frac)
}

/// Like [`parse_micros`] but also accepts one leading `-`: `"-0.5"` → `-500_000`.
pub fn parse_signed_micros(text: &str) -> Option<i64> {
    match text.strip_prefix('-') {
        Some(rest) => parse_micros(rest).map(|m| -m),
        None => parse_micros(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_trimmed() {
        let cases = [
            (726_500, "0.7265"),
            (0, "0"),
            (12_500_000, "12.5"),
            (1, "0.000001"),
            (3_000_000, "3"),
            (-500_000, "-0.5"),
            (-7, "-0.000007"),
            (i64::MIN, "-9223372036854.775808"),
        ];
        for (micros, text) in cases {
            assert_eq!(format_micros(micros), text, "{micros}");
        }
    }

    #[test]
    fn parses_strictly() {
        let good = [
            ("0.7265", 726_500),
            ("0", 0),
            ("0.0000", 0),
            ("12.5", 12_500_000),
            ("007", 7_000_000),
            ("0.000001", 1),
        ];
        for (text, micros) in good {
            assert_eq!(parse_micros(text), Some(micros), "{text}");
        }
        let bad = [
            "",
            ".",
            "1.",
            ".5",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1,5",
            "1e3",
            "0.1234567",
            "a",
            "99999999999999999999",
        ];
        for text in bad {
            assert_eq!(parse_micros(text), None, "{text:?}");
        }
    }

    #[test]
    fn signed_round_trips() {
        assert_eq!(parse_signed_micros("-0.5"), Some(-500_000));
        assert_eq!(parse_signed_micros("--1"), None);
        for micros in [0, 1, -1, 726_500, -12_500_000, i64::MAX] {
            assert_eq!(parse_signed_micros(&format_micros(micros)), Some(micros));
        }
    }
}
