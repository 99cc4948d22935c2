//! Phone numbers of contacts, normalized to E.164 (`+919812345678`).
//!
//! The rules are the product spec's, for a project whose default country is India:
//! - spaces, dashes, dots and brackets are ignored; a `+` may only lead;
//! - 10 digits are an Indian number, and so is `91` followed by 10 digits;
//! - every other country needs `+` and its country code: a number without `+` is read
//!   as a national number of the default country, and if that is not valid the error
//!   says so (`12025550188` is an invalid Indian number, not a US one);
//! - numbers that are not valid for their country are rejected, and so are numbers in
//!   countries WhatsApp Business cannot reach (see [`Unreachable`]).
//!
//! Other default countries (a decision, the spec only speaks of India): the two India
//! forms are not applied; a number without `+` is a national number of the default
//! country, which libphonenumber also accepts with its trunk prefix (`0501234567`) or
//! preceded by that country's own calling code (`971501234567` for the UAE).
//!
//! Validation is libphonenumber's metadata through the `phonenumber` crate. This runs for
//! every row of million-row CSV imports, so the input is cleaned into a stack buffer and
//! the only allocation of ours for a valid number is the returned string.

use std::fmt;
use std::str::FromStr;
use std::sync::Once;

use phonenumber::country::{Id, Source};
use phonenumber::metadata::DATABASE;
use phonenumber::{ParseError, PhoneNumber};

/// How numbers are read for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneRules {
    /// ISO 3166 alpha-2 code (`"IN"`) of the country numbers without `+` belong to.
    pub default_country: String,
    /// Countries whose numbers are refused.
    pub unreachable: Unreachable,
}

impl Default for PhoneRules {
    /// India, with the WhatsApp Business unreachable list.
    fn default() -> Self {
        Self {
            default_country: "IN".to_owned(),
            unreachable: Unreachable::default(),
        }
    }
}

/// Why a phone number was refused. `Display` is a sentence fit to show next to the row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("the phone number is empty")]
    Empty,
    #[error("a phone number has only digits, spaces, dashes, dots, brackets and a leading +")]
    BadCharacters,
    /// Written without `+` and not valid for the default country; the reason hints that
    /// other countries need `+` and the country code.
    #[error("{0}")]
    NeedsCountryCode(String),
    /// Not a valid number; the reason names the country when it is known.
    #[error("{0}")]
    Invalid(String),
    /// The number is in a country WhatsApp Business cannot reach (its name).
    #[error("WhatsApp Business cannot reach numbers in {0}")]
    Unreachable(String),
}

/// ITU-T E.164: country code and number together have at most 15 digits.
const MAX_E164_DIGITS: usize = 15;
const TOO_LONG: &str = "too long to be a phone number";

/// Hint appended to errors about numbers written without `+`.
const NEEDS_PLUS: &str = "numbers of other countries need + and the country code";

/// Normalizes `raw` to E.164 (`+919812345678`) under the project's `rules`.
pub fn normalize(raw: &str, rules: &PhoneRules) -> Result<String, PhoneError> {
    let mut input = Cleaned::new(raw)?;
    enlarge_regex_cache();
    let default = default_region(&rules.default_country);
    let india = default == Some(Id::IN);
    let (len, starts_91) = (input.len, input.digits().starts_with(b"91"));
    if input.plus && len > MAX_E164_DIGITS {
        return Err(PhoneError::Invalid(TOO_LONG.to_owned()));
    }

    // `strict`: the spec says what these forms are, so failing them needs no hint.
    let (parsed, strict) = if input.plus {
        (phonenumber::parse(None, input.international()), true)
    } else if india && len == 10 {
        (phonenumber::parse(None, input.indian()), true)
    } else if india && len == 12 && starts_91 {
        (phonenumber::parse(None, input.international()), true)
    } else if let Some(region) = default {
        (phonenumber::parse(Some(region), input.national()), false)
    } else {
        return Err(PhoneError::NeedsCountryCode(format!(
            "the project's default country {:?} is not a known ISO 3166 code, so {NEEDS_PLUS}",
            rules.default_country
        )));
    };

    let number = match parsed {
        Ok(number) => number,
        Err(ParseError::NoNumber | ParseError::TooShortNsn | ParseError::TooShortAfterIdd) => {
            return Err(PhoneError::Invalid(
                "too short to be a phone number".to_owned(),
            ));
        }
        Err(err) => {
            let reason = match err {
                ParseError::InvalidCountryCode => {
                    "the digits after + do not start with a country code"
                }
                ParseError::TooLong => TOO_LONG,
                _ => "not a phone number",
            };
            return Err(if strict {
                PhoneError::Invalid(reason.to_owned())
            } else {
                PhoneError::NeedsCountryCode(format!("{reason}; {NEEDS_PLUS}"))
            });
        }
    };

    // libphonenumber also reads "00 1 541…" (an international dialling prefix) as a
    // foreign number; the spec wants `+` for those, so it is refused with the hint.
    if number.code().source() == Source::Idd {
        return Err(PhoneError::NeedsCountryCode(format!(
            "{NEEDS_PLUS}: write + instead of the international dialling prefix"
        )));
    }

    let mut e164 = to_e164(&number);
    let mut valid = number.is_valid();
    // With `+`, the digits as written are the E.164 number unless the crate dropped a
    // trunk prefix written after the country code ("+44 (0)20…").
    let written = if input.plus {
        Some(input.international())
    } else {
        None
    };
    if let Some(written) = written
        && !valid
        && written != e164
        && valid_as_written(number.code().value(), &written[1..])
    {
        e164.clear();
        e164.push_str(written);
        valid = true;
    }
    // Before validity: an unreachable country is the more useful answer, and some of
    // their numbers (North Korea's) are not in libphonenumber's ranges at all.
    let unreachable = rules
        .unreachable
        .lookup(&e164[1..])
        .or_else(|| written.and_then(|written| rules.unreachable.lookup(&written[1..])));
    if let Some(name) = unreachable {
        return Err(PhoneError::Unreachable(name.to_owned()));
    }
    if !valid {
        let region = if strict { region_of(&number) } else { default };
        let reason = match region {
            Some(region) => match country_name(region) {
                Some(name) => format!("not a valid number for {name}"),
                None => format!("not a valid number for {}", region.as_ref()),
            },
            None => format!(
                "not a valid number for country code +{}",
                number.code().value()
            ),
        };
        return Err(if strict {
            PhoneError::Invalid(reason)
        } else {
            PhoneError::NeedsCountryCode(format!("{reason}; {NEEDS_PLUS}"))
        });
    }
    Ok(e164)
}

/// Works around whisperfish/rust-phonenumber#76: after `+` and the country code the
/// crate still strips a trunk prefix, so Russian numbers whose area code starts with 8
/// (+7 812 St Petersburg, +7 800 toll-free) lose a digit and fail. This checks the
/// E.164 `digits` as written (without `+`) against the same metadata and patterns the
/// crate's own validation uses.
fn valid_as_written(code: u16, digits: &str) -> bool {
    let code_len = if code >= 100 {
        3
    } else if code >= 10 {
        2
    } else {
        1
    };
    let Some(national) = digits.get(code_len..) else {
        return false;
    };
    let Some(regions) = DATABASE.by_code(&code) else {
        return false;
    };
    regions.iter().any(|meta| {
        let fits_region = meta.leading_digits().is_none_or(|pattern| {
            pattern
                .find(national)
                .is_some_and(|found| found.start() == 0)
        });
        let d = meta.descriptors();
        fits_region
            && d.general().is_match(national)
            && [
                d.premium_rate(),
                d.toll_free(),
                d.shared_cost(),
                d.voip(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
                d.fixed_line(),
                d.mobile(),
            ]
            .into_iter()
            .flatten()
            .any(|kind| kind.is_match(national))
    })
}

/// ISO 3166 region (`"IN"`, `"US"`) of an E.164 number, for pricing by country.
/// `None` for text that is not `+` and a number, and for non-geographic codes (+800).
pub fn country_of(e164: &str) -> Option<String> {
    if !e164.starts_with('+') {
        return None;
    }
    enlarge_regex_cache();
    let number = phonenumber::parse(None, e164).ok()?;
    region_of(&number).map(|id| id.as_ref().to_owned())
}

/// Room for every metadata pattern that parsing and validation use (about 1,200 over
/// all countries).
const REGEX_CACHE_CAPACITY: usize = 2048;

/// The crate compiles its metadata regexes lazily into one LRU cache of only 100 for
/// all countries. An import mixing more than a dozen or so countries then recompiles
/// regexes on almost every row: about 1 ms a number instead of about 20 µs. A bigger
/// cache ends that; its memory grows with the countries actually seen (about 0.5 MB
/// each, some 140 MB if every country turns up).
fn enlarge_regex_cache() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(mut cache) = DATABASE.cache().lock()
            && cache.capacity() < REGEX_CACHE_CAPACITY
        {
            cache.set_capacity(REGEX_CACHE_CAPACITY);
        }
    });
}

/// The input once separators are dropped: digits, with three bytes in front so that
/// `+` or `+91` can be put there and the crate parses straight from this buffer.
struct Cleaned {
    buf: [u8; Cleaned::HEAD + Cleaned::MAX_DIGITS],
    len: usize,
    plus: bool,
}

impl Cleaned {
    const HEAD: usize = 3;
    /// E.164 has at most 15 digits; national forms may add a trunk prefix, so allow a
    /// little more before calling it too long (the crate checks the exact limits).
    const MAX_DIGITS: usize = 17;

    fn new(raw: &str) -> Result<Self, PhoneError> {
        let mut cleaned = Self {
            buf: [0; Self::HEAD + Self::MAX_DIGITS],
            len: 0,
            plus: false,
        };
        let mut too_long = false;
        for c in raw.chars() {
            match c {
                '0'..='9' if cleaned.len < Self::MAX_DIGITS => {
                    cleaned.buf[Self::HEAD + cleaned.len] = c as u8;
                    cleaned.len += 1;
                }
                '0'..='9' => too_long = true,
                '+' if cleaned.len == 0 && !cleaned.plus => cleaned.plus = true,
                '-' | '.' | '(' | ')' | '[' | ']' => {}
                // Spreadsheets write no-break spaces and typographic dashes.
                c if c.is_whitespace() || matches!(c, '\u{2010}'..='\u{2015}' | '\u{2212}') => {}
                _ => return Err(PhoneError::BadCharacters),
            }
        }
        if cleaned.len == 0 {
            // Blank, or a placeholder such as "-" in a spreadsheet.
            return Err(PhoneError::Empty);
        }
        if too_long {
            return Err(PhoneError::Invalid(TOO_LONG.to_owned()));
        }
        Ok(cleaned)
    }

    fn digits(&self) -> &[u8] {
        &self.buf[Self::HEAD..Self::HEAD + self.len]
    }

    fn national(&self) -> &str {
        ascii(self.digits())
    }

    /// `+` and the digits.
    fn international(&mut self) -> &str {
        self.buf[Self::HEAD - 1] = b'+';
        ascii(&self.buf[Self::HEAD - 1..Self::HEAD + self.len])
    }

    /// `+91` and the digits.
    fn indian(&mut self) -> &str {
        self.buf[..Self::HEAD].copy_from_slice(b"+91");
        ascii(&self.buf[..Self::HEAD + self.len])
    }
}

fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("the buffer holds only ASCII digits and +")
}

fn to_e164(number: &PhoneNumber) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(16);
    // NationalNumber's Display keeps the leading zeros that are part of the number (Italy).
    let _ = write!(out, "+{}{}", number.code().value(), number.national());
    out
}

/// The project's default country, tolerant of case and surrounding spaces.
fn default_region(code: &str) -> Option<Id> {
    let code = code.trim().as_bytes();
    if code.len() != 2 {
        return None;
    }
    let upper = [code[0].to_ascii_uppercase(), code[1].to_ascii_uppercase()];
    std::str::from_utf8(&upper).ok()?.parse().ok()
}

/// The region of a parsed number. The crate's own answer drops leading zeros of the
/// national number before matching, so it misses Italian landlines (+39 06…); then the
/// region is picked here by leading digits, or the main country of the calling code.
fn region_of(number: &PhoneNumber) -> Option<Id> {
    if let Some(id) = number.country().id() {
        return Some(id);
    }
    let regions = DATABASE.by_code(&number.code().value())?;
    let national = number.national().to_string();
    let by_leading_digits = regions.iter().find(|meta| {
        meta.leading_digits()
            .and_then(|pattern| pattern.find(&national))
            .is_some_and(|found| found.start() == 0)
    });
    by_leading_digits
        .or_else(|| regions.iter().find(|meta| meta.is_main_country_for_code()))
        .or_else(|| regions.first())
        .and_then(|meta| meta.id().parse().ok())
}

/// Names for the countries our customers meet most; others show their region code.
fn country_name(id: Id) -> Option<&'static str> {
    Some(match id {
        Id::AE => "United Arab Emirates",
        Id::AU => "Australia",
        Id::BD => "Bangladesh",
        Id::BH => "Bahrain",
        Id::BR => "Brazil",
        Id::CA => "Canada",
        Id::CN => "China",
        Id::CU => "Cuba",
        Id::DE => "Germany",
        Id::EG => "Egypt",
        Id::ES => "Spain",
        Id::FR => "France",
        Id::GB => "the United Kingdom",
        Id::ID => "Indonesia",
        Id::IN => "India",
        Id::IR => "Iran",
        Id::IT => "Italy",
        Id::JP => "Japan",
        Id::KE => "Kenya",
        Id::KP => "North Korea",
        Id::KW => "Kuwait",
        Id::KZ => "Kazakhstan",
        Id::LK => "Sri Lanka",
        Id::MX => "Mexico",
        Id::MY => "Malaysia",
        Id::NG => "Nigeria",
        Id::NL => "the Netherlands",
        Id::NP => "Nepal",
        Id::NZ => "New Zealand",
        Id::OM => "Oman",
        Id::PH => "the Philippines",
        Id::PK => "Pakistan",
        Id::QA => "Qatar",
        Id::RU => "Russia",
        Id::SA => "Saudi Arabia",
        Id::SG => "Singapore",
        Id::SY => "Syria",
        Id::TR => "Turkey",
        Id::US => "the United States",
        Id::ZA => "South Africa",
        _ => return None,
    })
}

/// Countries WhatsApp Business cannot reach, as (E.164 prefix without `+`, name)
/// pairs. Configuration rather than code, since the list changes with sanctions:
/// written as `"7978=Crimea,53=Cuba,98=Iran,850=North Korea,963=Syria"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreachable {
    entries: Vec<(String, String)>,
}

/// The default list: Crimea, Cuba, Iran, North Korea and Syria.
pub const DEFAULT_UNREACHABLE: &str = "7978=Crimea,53=Cuba,98=Iran,850=North Korea,963=Syria";

impl Default for Unreachable {
    fn default() -> Self {
        Self::parse(DEFAULT_UNREACHABLE).expect("the default unreachable list parses")
    }
}

/// A malformed unreachable-countries setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid unreachable-countries setting: {0}")]
pub struct UnreachableSpecError(String);

impl Unreachable {
    /// Reads `PREFIX=NAME` items separated by commas; a prefix may start with `+`.
    /// A blank setting is an empty list (nothing refused).
    pub fn parse(spec: &str) -> Result<Self, UnreachableSpecError> {
        let mut entries: Vec<(String, String)> = Vec::new();
        if spec.trim().is_empty() {
            return Ok(Self { entries });
        }
        for (index, item) in spec.split(',').enumerate() {
            let fail = |problem: String| {
                UnreachableSpecError(format!("item {} ({:?}): {problem}", index + 1, item.trim()))
            };
            let (prefix, name) = item
                .split_once('=')
                .ok_or_else(|| fail("expected PREFIX=NAME, such as 53=Cuba".to_owned()))?;
            let prefix = prefix.trim();
            let prefix = prefix.strip_prefix('+').unwrap_or(prefix);
            let name = name.trim();
            if prefix.is_empty()
                || prefix.len() > 15
                || !prefix.bytes().all(|b| b.is_ascii_digit())
                || prefix.starts_with('0')
            {
                return Err(fail(format!(
                    "{prefix:?} is not a number prefix such as 53 or +7978"
                )));
            }
            if name.is_empty() {
                return Err(fail("the country name is missing".to_owned()));
            }
            if entries.iter().any(|(known, _)| known == prefix) {
                return Err(fail(format!("prefix {prefix} is listed twice")));
            }
            entries.push((prefix.to_owned(), name.to_owned()));
        }
        Ok(Self { entries })
    }

    /// The (prefix, name) pairs in the order they were given.
    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// Name of the unreachable country of an E.164 number written without `+`; the
    /// longest matching prefix wins. The list is a handful of items, so a scan is
    /// cheaper than any index.
    pub fn lookup(&self, digits: &str) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(prefix, _)| digits.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, name)| name.as_str())
    }
}

impl FromStr for Unreachable {
    type Err = UnreachableSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec)
    }
}

/// Writes the setting back in the form `parse` reads.
impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (prefix, name)) in self.entries.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            write!(f, "{prefix}={name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn india() -> PhoneRules {
        PhoneRules::default()
    }

    fn ok(raw: &str) -> String {
        normalize(raw, &india()).unwrap_or_else(|err| panic!("{raw:?}: {err}"))
    }

    fn err(raw: &str) -> PhoneError {
        match normalize(raw, &india()) {
            Ok(e164) => panic!("{raw:?} was accepted as {e164}"),
            Err(err) => err,
        }
    }

    #[test]
    fn project_fixtures() {
        let cases = [
            ("9812345678", "+919812345678"),
            ("919876500011", "+919876500011"),
            ("+919876543452", "+919876543452"),
            ("+15417543010", "+15417543010"),
            ("+61412345678", "+61412345678"),
            ("9812300001", "+919812300001"),
            ("919812300002", "+919812300002"),
            ("+91 98123-00003", "+919812300003"),
            ("+12025550143", "+12025550143"),
            ("(+91) 98123.00004", "+919812300004"),
        ];
        for (raw, e164) in cases {
            assert_eq!(ok(raw), e164, "{raw:?}");
        }
        assert!(matches!(
            err("12025550188"),
            PhoneError::NeedsCountryCode(_)
        ));
        assert_eq!(err("+989121234567"), PhoneError::Unreachable("Iran".into()));
        assert_eq!(err("98AB300009"), PhoneError::BadCharacters);
        assert_eq!(err(""), PhoneError::Empty);
    }

    #[test]
    fn separators_are_ignored() {
        for raw in [
            "98123 45678",
            "98123-45678",
            "98.123.456.78",
            "(98123) 45678",
            "[98123]45678",
            " \t9812345678\u{a0}",
            "98123\u{2013}45678",
            "+ 91 (981) 234-5678",
            "91-98123-45678",
        ] {
            assert_eq!(ok(raw), "+919812345678", "{raw:?}");
        }
    }

    #[test]
    fn ten_digits_are_indian() {
        assert_eq!(ok("9876500011"), "+919876500011");
        // Ten digits are Indian even when they start like the country code.
        assert_eq!(ok("9198765432"), "+919198765432");
    }

    #[test]
    fn indian_trunk_prefix_is_a_national_number() {
        assert_eq!(ok("09812345678"), "+919812345678");
    }

    #[test]
    fn other_countries_need_plus() {
        let PhoneError::NeedsCountryCode(reason) = err("12025550188") else {
            panic!("expected NeedsCountryCode");
        };
        assert!(reason.contains("not a valid number for India"), "{reason}");
        assert!(reason.contains("need + and the country code"), "{reason}");
        // The same number with + is fine.
        assert_eq!(ok("+12025550188"), "+12025550188");
        // A UK mobile without +: 12 digits not starting with 91.
        assert!(matches!(
            err("447911123456"),
            PhoneError::NeedsCountryCode(_)
        ));
        // An international dialling prefix instead of +.
        let PhoneError::NeedsCountryCode(reason) = err("0015417543010") else {
            panic!("expected NeedsCountryCode");
        };
        assert!(reason.contains("instead of the international dialling prefix"));
    }

    #[test]
    fn invalid_numbers_name_the_country() {
        // Ten digits are Indian by rule, so no hint about other countries.
        assert_eq!(
            err("0123456789"),
            PhoneError::Invalid("not a valid number for India".into())
        );
        assert_eq!(
            err("+91 12345"),
            PhoneError::Invalid("not a valid number for India".into())
        );
        assert_eq!(
            err("+1 555 123 4567"),
            PhoneError::Invalid("not a valid number for the United States".into())
        );
        assert_eq!(
            err("+61 1234 5678"),
            PhoneError::Invalid("not a valid number for Australia".into())
        );
        assert_eq!(
            err("+999 1234 5678"),
            PhoneError::Invalid("the digits after + do not start with a country code".into())
        );
        assert_eq!(
            err("+98"),
            PhoneError::Invalid("too short to be a phone number".into())
        );
        // Without +, even a stub is read as a national number, hence the hint.
        assert!(matches!(err("98"), PhoneError::NeedsCountryCode(_)));
        assert_eq!(
            err("+9198123456789012345"),
            PhoneError::Invalid("too long to be a phone number".into())
        );
        // E.164 allows 15 digits at most.
        assert_eq!(
            err("+1 234 567 8901 23456"),
            PhoneError::Invalid("too long to be a phone number".into())
        );
        // Less common countries are named by region code (Andorra).
        assert_eq!(
            err("+376 123"),
            PhoneError::Invalid("not a valid number for AD".into())
        );
    }

    #[test]
    fn bad_characters() {
        for raw in [
            "98AB300009",
            "9812345678x12",
            "tel:+919812345678",
            "98123/45678",
            "98123_45678",
            "91+9812345678",
            "++919812345678",
            "+91 98123 4567 8#",
            "٩٨١٢٣٤٥٦٧٨",
        ] {
            assert_eq!(err(raw), PhoneError::BadCharacters, "{raw:?}");
        }
    }

    #[test]
    fn empty() {
        for raw in ["", "   ", "\t", "-", "()", "+"] {
            assert_eq!(err(raw), PhoneError::Empty, "{raw:?}");
        }
        assert_eq!(PhoneError::Empty.to_string(), "the phone number is empty");
    }

    #[test]
    fn unreachable_countries() {
        assert_eq!(
            err("+7 978 123 45 67"),
            PhoneError::Unreachable("Crimea".into())
        );
        assert_eq!(ok("+7 912 345 67 89"), "+79123456789");
        assert_eq!(err("+53 5 1234567"), PhoneError::Unreachable("Cuba".into()));
        assert_eq!(
            err("+850 191 234 5678"),
            PhoneError::Unreachable("North Korea".into())
        );
        // Refused even though libphonenumber has no valid range for it.
        assert_eq!(
            err("+850 19123 4567"),
            PhoneError::Unreachable("North Korea".into())
        );
        assert_eq!(
            err("+963 944 567 890"),
            PhoneError::Unreachable("Syria".into())
        );
        assert_eq!(
            err("+989121234567").to_string(),
            "WhatsApp Business cannot reach numbers in Iran"
        );
    }

    #[test]
    fn unreachable_list_is_configuration() {
        let rules = PhoneRules {
            default_country: "IN".into(),
            unreachable: Unreachable::parse("+1=North America, 1202=Washington DC").unwrap(),
        };
        // Longest prefix wins.
        assert_eq!(
            normalize("+12025550143", &rules),
            Err(PhoneError::Unreachable("Washington DC".into()))
        );
        assert_eq!(
            normalize("+15417543010", &rules),
            Err(PhoneError::Unreachable("North America".into()))
        );
        // Iran is not in this list.
        assert_eq!(
            normalize("+989121234567", &rules).as_deref(),
            Ok("+989121234567")
        );
        let nothing = PhoneRules {
            unreachable: Unreachable::parse("").unwrap(),
            ..PhoneRules::default()
        };
        assert_eq!(
            normalize("+5351234567", &nothing).as_deref(),
            Ok("+5351234567")
        );
    }

    #[test]
    fn unreachable_parse_round_trips() {
        let default = Unreachable::default();
        assert_eq!(default.to_string(), DEFAULT_UNREACHABLE);
        assert_eq!(
            Unreachable::parse(&default.to_string()),
            Ok(default.clone())
        );
        assert_eq!(
            " +7978 = Crimea ,+53=Cuba,98=Iran,+850=North Korea, 963=Syria ".parse::<Unreachable>(),
            Ok(default.clone())
        );
        assert_eq!(default.entries().len(), 5);
        assert_eq!(default.lookup("79781234567"), Some("Crimea"));
        assert_eq!(default.lookup("79123456789"), None);
        assert!(Unreachable::parse("").unwrap().entries().is_empty());
    }

    #[test]
    fn unreachable_parse_rejects_garbage() {
        for spec in [
            "Cuba",
            "53Cuba",
            "53=",
            "=Cuba",
            "5a=Cuba",
            "+=Cuba",
            "053=Cuba",
            "53=Cuba,",
            "53=Cuba,,98=Iran",
            "53=Cuba,53=Also Cuba",
            "1234567890123456=Too long",
        ] {
            let result = Unreachable::parse(spec);
            assert!(result.is_err(), "{spec:?} parsed as {result:?}");
        }
        let message = Unreachable::parse("53=Cuba,98Iran")
            .unwrap_err()
            .to_string();
        assert!(message.contains("item 2"), "{message}");
        assert!(message.contains("PREFIX=NAME"), "{message}");
    }

    #[test]
    fn other_default_country() {
        let uae = PhoneRules {
            default_country: "AE".into(),
            ..PhoneRules::default()
        };
        assert_eq!(normalize("501234567", &uae).as_deref(), Ok("+971501234567"));
        assert_eq!(
            normalize("050 123 4567", &uae).as_deref(),
            Ok("+971501234567")
        );
        assert_eq!(
            normalize("971501234567", &uae).as_deref(),
            Ok("+971501234567")
        );
        assert_eq!(
            normalize("+91 98123 45678", &uae).as_deref(),
            Ok("+919812345678")
        );
        // The India forms are India's: without + these are UAE numbers, and invalid.
        let Err(PhoneError::NeedsCountryCode(reason)) = normalize("9812345678", &uae) else {
            panic!("expected NeedsCountryCode");
        };
        assert!(
            reason.contains("not a valid number for United Arab Emirates"),
            "{reason}"
        );
        assert!(matches!(
            normalize("919812345678", &uae),
            Err(PhoneError::NeedsCountryCode(_))
        ));
        // Case and spaces in the setting do not matter.
        let lower = PhoneRules {
            default_country: " ae ".into(),
            ..PhoneRules::default()
        };
        assert_eq!(
            normalize("501234567", &lower).as_deref(),
            Ok("+971501234567")
        );
    }

    #[test]
    fn unknown_default_country() {
        let rules = PhoneRules {
            default_country: "XX".into(),
            ..PhoneRules::default()
        };
        assert!(matches!(
            normalize("9812345678", &rules),
            Err(PhoneError::NeedsCountryCode(_))
        ));
        assert_eq!(
            normalize("+919812345678", &rules).as_deref(),
            Ok("+919812345678")
        );
    }

    #[test]
    fn countries() {
        assert_eq!(country_of("+919812345678").as_deref(), Some("IN"));
        assert_eq!(country_of("+15417543010").as_deref(), Some("US"));
        assert_eq!(country_of("+14165550123").as_deref(), Some("CA"));
        assert_eq!(country_of("+61412345678").as_deref(), Some("AU"));
        assert_eq!(country_of("+971501234567").as_deref(), Some("AE"));
        assert_eq!(country_of("+77011234567").as_deref(), Some("KZ"));
        // The crate alone answers None for Italian landlines (leading zero).
        assert_eq!(country_of("+390612345678").as_deref(), Some("IT"));
        assert_eq!(country_of("919812345678"), None);
        assert_eq!(country_of(""), None);
        assert_eq!(country_of("+"), None);
    }

    #[test]
    fn output_round_trips() {
        for raw in [
            "9812345678",
            "+15417543010",
            "+390612345678",
            "+44 20 7946 0958",
        ] {
            let e164 = ok(raw);
            assert_eq!(ok(&e164), e164);
        }
        assert_eq!(ok("+39 06 1234 5678"), "+390612345678");
    }

    #[test]
    fn russian_numbers_starting_with_the_trunk_digit() {
        // whisperfish/rust-phonenumber#76: the crate alone drops the 8 of these.
        assert_eq!(ok("+7 812 123-45-67"), "+78121234567");
        assert_eq!(ok("+7 800 123 45 67"), "+78001234567");
        assert_eq!(ok("+375 801 123 4567"), "+3758011234567");
        assert_eq!(country_of("+78121234567").as_deref(), Some("RU"));
        // A trunk prefix written after the country code is still dropped.
        assert_eq!(ok("+44 (0)20 7946 0958"), "+442079460958");
        assert_eq!(ok("+91 09812345678"), "+919812345678");
        // And the rescue does not let invalid numbers through.
        assert!(matches!(err("+7 800 123 45"), PhoneError::Invalid(_)));
    }

    #[test]
    fn regex_cache_is_enlarged() {
        ok("9812345678");
        let capacity = DATABASE.cache().lock().unwrap().capacity();
        assert!(capacity >= REGEX_CACHE_CAPACITY, "{capacity}");
    }

    /// A bulk import's worth of rows goes through without error (no timing asserted).
    #[test]
    fn hundred_thousand_numbers() {
        let rules = india();
        let mut raw = String::with_capacity(24);
        for i in 0..100_000u32 {
            use fmt::Write as _;
            raw.clear();
            match i % 4 {
                0 => write!(raw, "98{i:08}"),
                1 => write!(raw, "91 98{i:08}"),
                2 => write!(raw, "+91 98{:03}-{:05}", i / 100_000, i % 100_000),
                _ => write!(raw, "(+1) 541 754 {:04}", i % 10_000),
            }
            .unwrap();
            let e164 = normalize(&raw, &rules).unwrap_or_else(|err| panic!("{raw:?}: {err}"));
            assert!(e164.starts_with('+') && e164.len() >= 12, "{e164}");
        }
    }
}
