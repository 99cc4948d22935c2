//! WhatsApp's rules for an application, checked before anything is submitted: the phone
//! number (reachable country, not a short code, toll-free and IVR guidance), the display
//! name, the restricted industries (configuration), business categories and time zones.

use std::fmt;

use phonenumber::{Type, metadata::DATABASE};

use crate::{
    contacts::phone::{self, PhoneError, PhoneRules, Unreachable},
    errors::Problem,
};

/// Industries that cannot apply for the WhatsApp Business API (WhatsApp's Commerce
/// Policy), as `key=Label` items. Configuration (`ONBOARDING_RESTRICTED_INDUSTRIES`),
/// since the policy changes; a checklist's industry is matched by key or label.
pub const DEFAULT_RESTRICTED_INDUSTRIES: &str = "illegal=Illegal products or services,\
drugs=Drugs and drug paraphernalia,\
prescription_drugs=Prescription drugs,\
unsafe_supplements=Unsafe ingestible supplements,\
alcohol=Alcohol,\
tobacco=Tobacco and related products,\
weapons=Weapons ammunition and explosives,\
adult=Adult products or services,\
gambling=Real-money gambling,\
animals=Live animals and animal products,\
body_parts=Body parts and fluids,\
medical_products=Medical and healthcare products,\
hazardous=Hazardous goods and materials,\
counterfeit=Counterfeit goods,\
dating=Dating services,\
financial_instruments=Documents currency and financial instruments";

/// The restricted-industries setting, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestrictedIndustries {
    entries: Vec<(String, String)>,
}

impl Default for RestrictedIndustries {
    fn default() -> Self {
        Self::parse(DEFAULT_RESTRICTED_INDUSTRIES).expect("the default industry list parses")
    }
}

impl RestrictedIndustries {
    /// `key=Label` items separated by commas; keys are lowercase `a-z 0-9 _`. A blank
    /// setting restricts nothing.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut entries: Vec<(String, String)> = Vec::new();
        if spec.trim().is_empty() {
            return Ok(Self { entries });
        }
        for (index, item) in spec.split(',').enumerate() {
            let fail = |why: &str| format!("item {} ({:?}): {why}", index + 1, item.trim());
            let (key, label) = item
                .split_once('=')
                .ok_or_else(|| fail("expected key=Label, such as alcohol=Alcohol"))?;
            let key = key.trim();
            let label = label.trim();
            let key_ok = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !key_ok {
                return Err(fail("a key has only a-z, 0-9 and _"));
            }
            if label.is_empty() {
                return Err(fail("the label is missing"));
            }
            if entries.iter().any(|(k, _)| k == key) {
                return Err(fail("the key is listed twice"));
            }
            entries.push((key.to_owned(), label.to_owned()));
        }
        Ok(Self { entries })
    }

    pub fn entries(&self) -> &[(String, String)] {
        &self.entries
    }

    /// The restricted industry `industry` names (by key or label, without case), if any.
    pub fn lookup(&self, industry: &str) -> Option<(&str, &str)> {
        let wanted = industry.trim();
        self.entries
            .iter()
            .find(|(key, label)| {
                key.eq_ignore_ascii_case(wanted) || label.eq_ignore_ascii_case(wanted)
            })
            .map(|(k, l)| (k.as_str(), l.as_str()))
    }
}

impl fmt::Display for RestrictedIndustries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .entries
            .iter()
            .map(|(k, l)| format!("{k}={l}"))
            .collect();
        f.write_str(&items.join(","))
    }
}

/// Meta's business profile categories (`vertical`).
pub const BUSINESS_CATEGORIES: &[(&str, &str)] = &[
    ("AUTO", "Automotive"),
    ("BEAUTY", "Beauty, spa and salon"),
    ("APPAREL", "Clothing and apparel"),
    ("EDU", "Education"),
    ("ENTERTAIN", "Entertainment"),
    ("EVENT_PLAN", "Event planning and service"),
    ("FINANCE", "Finance and banking"),
    ("GROCERY", "Food and grocery"),
    ("GOVT", "Public service"),
    ("HOTEL", "Hotel and lodging"),
    ("HEALTH", "Medical and health"),
    ("NONPROFIT", "Non-profit"),
    ("PROF_SERVICES", "Professional services"),
    ("RETAIL", "Shopping and retail"),
    ("TRAVEL", "Travel and transportation"),
    ("RESTAURANT", "Restaurant"),
    ("OTHER", "Other"),
];

/// A note on a number that is allowed but needs something done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guidance {
    pub code: &'static str,
    pub message: String,
}

/// What the phone-number rules say of a number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhoneCheck {
    /// The number in E.164, when it could be read.
    pub e164: Option<String>,
    /// ISO 3166 region.
    pub country: Option<String>,
    /// `MOBILE`, `FIXED_LINE`, `FIXED_LINE_OR_MOBILE`, `TOLL_FREE`, `PREMIUM_RATE`,
    /// `SHARED_COST`, `VOIP`, `PERSONAL_NUMBER`, `UAN`, `SHORT_CODE` or `UNKNOWN`.
    pub kind: &'static str,
    /// What forbids the number (empty: it may apply).
    pub problems: Vec<Problem>,
    pub guidance: Vec<Guidance>,
}

impl PhoneCheck {
    pub fn allowed(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(path: &str, code: &str, message: impl Into<String>) -> Problem {
    Problem {
        path: path.to_owned(),
        code: code.to_owned(),
        message: message.into(),
    }
}

const PHONE: &str = "phoneNumber";

/// The phone-number rules: any country WhatsApp can reach (`unreachable` is the
/// configured list), a full number rather than a short code, and guidance for toll-free,
/// IVR and landline numbers. Numbers without `+` belong to `default_country`.
pub fn check_phone_number(
    raw: &str,
    default_country: &str,
    unreachable: &Unreachable,
    behind_ivr: bool,
) -> PhoneCheck {
    let mut check = PhoneCheck {
        e164: None,
        country: None,
        kind: "UNKNOWN",
        problems: Vec::new(),
        guidance: Vec::new(),
    };
    if is_short_code(raw) {
        check.kind = "SHORT_CODE";
        check.problems.push(problem(
            PHONE,
            "SHORT_CODE",
            "short codes cannot be registered: use a full phone number that can receive an \
             SMS or a voice call",
        ));
        return check;
    }
    let rules = PhoneRules {
        default_country: default_country.to_owned(),
        unreachable: unreachable.clone(),
    };
    let e164 = match phone::normalize(raw, &rules) {
        Ok(e164) => e164,
        Err(err) => {
            let code = match &err {
                PhoneError::Empty => "REQUIRED",
                PhoneError::Unreachable(_) => "UNREACHABLE_COUNTRY",
                PhoneError::NeedsCountryCode(_) => "NEEDS_COUNTRY_CODE",
                PhoneError::BadCharacters | PhoneError::Invalid(_) => "INVALID_NUMBER",
            };
            check.problems.push(problem(PHONE, code, err.to_string()));
            return check;
        }
    };
    check.country = phone::country_of(&e164);
    check.kind = phonenumber::parse(None, &e164)
        .map(|n| kind_name(n.number_type(&DATABASE)))
        .unwrap_or("UNKNOWN");
    check.e164 = Some(e164);
    match check.kind {
        "SHORT_CODE" => check.problems.push(problem(
            PHONE,
            "SHORT_CODE",
            "short codes cannot be registered: use a full phone number",
        )),
        "TOLL_FREE" => check.guidance.push(Guidance {
            code: "TOLL_FREE",
            message: "toll-free numbers usually sit behind an IVR that WhatsApp's \
                      registration call cannot navigate: ask WhatsApp support for the 1 or 2 \
                      numbers the call comes from and let them through to a person or a \
                      mailbox, then choose a voice call"
                .into(),
        }),
        "FIXED_LINE" => check.guidance.push(Guidance {
            code: "LANDLINE",
            message: "a landline cannot receive an SMS: choose a voice call for the code".into(),
        }),
        _ => {}
    }
    if behind_ivr && check.kind != "TOLL_FREE" {
        check.guidance.push(Guidance {
            code: "IVR",
            message: "the registration call cannot navigate an IVR: allow the 1 or 2 numbers \
                      WhatsApp calls from (ask WhatsApp support) through to a person or a \
                      mailbox that will capture the code"
                .into(),
        });
    }
    check.guidance.push(Guidance {
        code: "NOT_ON_WHATSAPP_APP",
        message: "the number must not be registered on WhatsApp or WhatsApp Business: delete \
                  that account first (Settings > Account > Delete my account); uninstalling \
                  the app is not enough"
            .into(),
    });
    check.guidance.push(Guidance {
        code: "NUMBER_LOCKED_ONCE_LIVE",
        message: "once registered, the number cannot be changed: another number needs a new \
                  application"
            .into(),
    });
    check
}

/// A number of at most 6 digits (without `+`), or one libphonenumber calls a short code,
/// or too short after its country code to be a subscriber number.
fn is_short_code(raw: &str) -> bool {
    let digits = raw.chars().filter(char::is_ascii_digit).count();
    let plus = raw.trim_start().starts_with('+');
    if digits == 0 {
        return false;
    }
    if !plus {
        return digits <= 6;
    }
    let cleaned: String = std::iter::once('+')
        .chain(raw.chars().filter(char::is_ascii_digit))
        .collect();
    match phonenumber::parse(None, &cleaned) {
        Ok(number) => {
            number.number_type(&DATABASE) == Type::ShortCode
                || (number.national().to_string().len() <= 5 && !number.is_valid())
        }
        Err(phonenumber::ParseError::TooShortNsn) => true,
        Err(_) => false,
    }
}

fn kind_name(kind: Type) -> &'static str {
    match kind {
        Type::Mobile => "MOBILE",
        Type::FixedLine => "FIXED_LINE",
        Type::FixedLineOrMobile => "FIXED_LINE_OR_MOBILE",
        Type::TollFree => "TOLL_FREE",
        Type::PremiumRate => "PREMIUM_RATE",
        Type::SharedCost => "SHARED_COST",
        Type::Voip => "VOIP",
        Type::PersonalNumber => "PERSONAL_NUMBER",
        Type::Uan => "UAN",
        Type::ShortCode => "SHORT_CODE",
        _ => "UNKNOWN",
    }
}

const DISPLAY: &str = "displayName";
/// Shortest and longest display names Parley submits.
pub const DISPLAY_NAME_MIN: usize = 3;
pub const DISPLAY_NAME_MAX: usize = 75;
/// Words that alone describe a kind of business, not a brand.
const GENERIC_WORDS: &[&str] = &[
    "bakery",
    "business",
    "cafe",
    "clothing",
    "company",
    "deals",
    "electronics",
    "fashion",
    "food",
    "gym",
    "hotel",
    "jewellery",
    "jewelry",
    "marketing",
    "news",
    "offers",
    "online",
    "pharmacy",
    "restaurant",
    "sales",
    "salon",
    "services",
    "shoes",
    "shop",
    "store",
    "support",
    "the",
    "travel",
];
/// Punctuation a brand may carry; anything else (symbols, emoji) is refused.
const ALLOWED_PUNCTUATION: &[char] = &['&', '\'', '’', '.', ',', '-', '(', ')', '+'];

/// WhatsApp's display name guidelines, checked before submission. `legal_name` and
/// `has_website` come from the checklist: a name other than the registered business name
/// needs a website that shows the relationship.
pub fn check_display_name(raw: &str, legal_name: Option<&str>, has_website: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
    let name = raw.trim();
    let length = name.chars().count();
    if length < DISPLAY_NAME_MIN {
        problems.push(problem(
            DISPLAY,
            "TOO_SHORT",
            format!("a display name has at least {DISPLAY_NAME_MIN} characters"),
        ));
    }
    if length > DISPLAY_NAME_MAX {
        problems.push(problem(
            DISPLAY,
            "TOO_LONG",
            format!("a display name has at most {DISPLAY_NAME_MAX} characters"),
        ));
    }
    if name.is_empty() {
        return problems;
    }
    if name.contains("  ") || raw != name {
        problems.push(problem(
            DISPLAY,
            "EXTRA_SPACES",
            "no leading, trailing or repeated spaces",
        ));
    }
    if !name.chars().any(char::is_alphabetic) {
        problems.push(problem(
            DISPLAY,
            "NO_LETTERS",
            "a display name is a name, not only digits or symbols",
        ));
    }
    if name.chars().any(is_emoji) {
        problems.push(problem(DISPLAY, "EMOJI", "emoji are not allowed"));
    }
    let symbols: String = name
        .chars()
        .filter(|c| {
            !(c.is_alphanumeric() || *c == ' ' || ALLOWED_PUNCTUATION.contains(c) || is_emoji(*c))
        })
        .collect();
    if !symbols.is_empty() {
        problems.push(problem(
            DISPLAY,
            "SPECIAL_CHARACTERS",
            format!("symbols such as {symbols:?} are not allowed"),
        ));
    }
    let lower = name.to_lowercase();
    if lower.contains("whatsapp") {
        problems.push(problem(
            DISPLAY,
            "MENTIONS_WHATSAPP",
            "a display name must not contain \"WhatsApp\"",
        ));
    }
    if lower.contains("http") || lower.contains("www.") || looks_like_domain(&lower) {
        problems.push(problem(
            DISPLAY,
            "URL",
            "a display name must not be a web address",
        ));
    }
    let letters: Vec<char> = name.chars().filter(|c| c.is_alphabetic()).collect();
    let all_caps =
        letters.iter().all(|c| c.is_uppercase()) && letters.iter().any(|c| c.is_uppercase());
    if all_caps && letters.len() > 5 {
        problems.push(problem(
            DISPLAY,
            "ALL_CAPS",
            "capitalise only the first letters, except for acronyms",
        ));
    }
    let words: Vec<String> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    if !words.is_empty() && words.iter().all(|w| GENERIC_WORDS.contains(&w.as_str())) {
        problems.push(problem(
            DISPLAY,
            "GENERIC",
            "a generic term alone is not a display name: use the brand's name",
        ));
    }
    if let Some(legal) = legal_name.map(str::trim).filter(|l| !l.is_empty()) {
        let legal_lower = legal.to_lowercase();
        let shares_word = words
            .iter()
            .any(|w| w.len() > 2 && legal_lower.contains(w.as_str()));
        if !shares_word && !has_website {
            problems.push(problem(
                DISPLAY,
                "UNRELATED_TO_BUSINESS",
                format!(
                    "the display name differs from the registered name {legal:?}: add the \
                     business website that shows the relationship to the checklist"
                ),
            ));
        }
    }
    problems
}

fn looks_like_domain(lower: &str) -> bool {
    [".com", ".in", ".net", ".org", ".io", ".co"]
        .iter()
        .any(|tld| lower.ends_with(tld) || lower.contains(&format!("{tld}/")))
}

fn is_emoji(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0xFE0F | 0x200D | 0x20E3)
}

/// A time zone as an IANA name (`Asia/Kolkata`) or `UTC` with an offset (`UTC+05:30`).
pub fn valid_timezone(raw: &str) -> bool {
    let tz = raw.trim();
    if tz == "UTC" {
        return true;
    }
    if let Some(offset) = tz.strip_prefix("UTC").or_else(|| tz.strip_prefix("GMT")) {
        let bytes = offset.as_bytes();
        return bytes.len() == 6
            && matches!(bytes[0], b'+' | b'-')
            && bytes[1..3].iter().all(u8::is_ascii_digit)
            && bytes[3] == b':'
            && bytes[4..6].iter().all(u8::is_ascii_digit);
    }
    let mut parts = tz.split('/');
    let area = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 30
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
    };
    (1..=2).contains(&rest.len())
        && part_ok(area)
        && area.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && rest.iter().all(|p| part_ok(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(raw: &str) -> PhoneCheck {
        check_phone_number(raw, "IN", &Unreachable::default(), false)
    }

    fn codes(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.code.as_str()).collect()
    }

    #[test]
    fn reachable_mobile_numbers_are_allowed() {
        let check = phone("+91 98123 45678");
        assert!(check.allowed(), "{check:?}");
        assert_eq!(check.e164.as_deref(), Some("+919812345678"));
        assert_eq!(check.country.as_deref(), Some("IN"));
        assert_eq!(check.kind, "MOBILE");
        assert!(
            check
                .guidance
                .iter()
                .any(|g| g.code == "NOT_ON_WHATSAPP_APP")
        );
    }

    #[test]
    fn unreachable_countries_come_from_the_setting() {
        assert_eq!(
            codes(&phone("+53 5 1234567").problems),
            ["UNREACHABLE_COUNTRY"]
        );
        let none = Unreachable::parse("").unwrap();
        assert!(check_phone_number("+5351234567", "IN", &none, false).allowed());
    }

    #[test]
    fn short_codes_are_refused() {
        assert_eq!(codes(&phone("56161").problems), ["SHORT_CODE"]);
        assert_eq!(codes(&phone("+1 56161").problems), ["SHORT_CODE"]);
        assert_eq!(phone("56161").kind, "SHORT_CODE");
    }

    #[test]
    fn toll_free_ivr_and_landlines_get_guidance() {
        let toll_free = phone("+1 800 253 0000");
        assert!(toll_free.allowed(), "{toll_free:?}");
        assert_eq!(toll_free.kind, "TOLL_FREE");
        assert!(toll_free.guidance.iter().any(|g| g.code == "TOLL_FREE"));
        let ivr = check_phone_number("+919812345678", "IN", &Unreachable::default(), true);
        assert!(ivr.guidance.iter().any(|g| g.code == "IVR"));
        let landline = phone("+44 20 7946 0958");
        assert_eq!(landline.kind, "FIXED_LINE");
        assert!(landline.guidance.iter().any(|g| g.code == "LANDLINE"));
    }

    #[test]
    fn invalid_numbers_say_why() {
        assert_eq!(codes(&phone("").problems), ["REQUIRED"]);
        assert_eq!(codes(&phone("+91 98123 4567").problems), ["INVALID_NUMBER"]);
        assert_eq!(
            codes(&phone("12025550188").problems),
            ["NEEDS_COUNTRY_CODE"]
        );
    }

    #[test]
    fn display_names() {
        assert!(check_display_name("Acme Shoes", Some("Acme Retail Pvt Ltd"), false).is_empty());
        assert!(check_display_name("Dr. Patel's Clinic & Co", None, false).is_empty());
        let bad = |name: &str| codes(&check_display_name(name, None, true)).join(",");
        assert_eq!(bad("Ac"), "TOO_SHORT");
        assert_eq!(bad(&"a".repeat(76)), "TOO_LONG");
        assert_eq!(bad("Acme  Shoes"), "EXTRA_SPACES");
        assert_eq!(bad("12345"), "NO_LETTERS");
        assert_eq!(bad("Acme 🚀"), "EMOJI");
        assert_eq!(bad("Acme #1"), "SPECIAL_CHARACTERS");
        assert_eq!(bad("Acme WhatsApp"), "MENTIONS_WHATSAPP");
        assert_eq!(bad("acme.com"), "URL");
        assert_eq!(bad("ACME SHOES"), "ALL_CAPS");
        assert_eq!(bad("IBM"), "");
        assert_eq!(bad("Online Shop"), "GENERIC");
        let unrelated = check_display_name("Blue Kettle", Some("Acme Retail Pvt Ltd"), false);
        assert_eq!(codes(&unrelated), ["UNRELATED_TO_BUSINESS"]);
        assert!(check_display_name("Blue Kettle", Some("Acme Retail"), true).is_empty());
    }

    #[test]
    fn restricted_industries_are_configuration() {
        let default = RestrictedIndustries::default();
        assert_eq!(default.lookup("Alcohol").map(|(k, _)| k), Some("alcohol"));
        assert_eq!(
            default.lookup("real-money gambling").map(|(k, _)| k),
            Some("gambling")
        );
        assert!(default.lookup("retail").is_none());
        assert_eq!(
            RestrictedIndustries::parse(&default.to_string()),
            Ok(default.clone())
        );
        let custom = RestrictedIndustries::parse("crypto=Crypto exchanges").unwrap();
        assert!(custom.lookup("alcohol").is_none());
        assert!(custom.lookup("crypto").is_some());
        assert!(RestrictedIndustries::parse("Crypto").is_err());
        assert!(RestrictedIndustries::parse("a=A,a=B").is_err());
        assert!(
            RestrictedIndustries::parse("")
                .unwrap()
                .entries()
                .is_empty()
        );
    }

    #[test]
    fn time_zones() {
        for ok in [
            "Asia/Kolkata",
            "America/Argentina/Buenos_Aires",
            "UTC",
            "UTC+05:30",
        ] {
            assert!(valid_timezone(ok), "{ok}");
        }
        for bad in ["", "Kolkata", "UTC+5", "asia/kolkata", "Asia/<script>"] {
            assert!(!valid_timezone(bad), "{bad}");
        }
    }
}
