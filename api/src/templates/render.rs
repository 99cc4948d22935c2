//! Parameter values as users give them: a literal, or a `$Placeholder` filled from each
//! contact (`$Name`, `$FirstName`, `$LastName`, `$Phone` or a custom attribute key),
//! with a fallback for contacts that have no value.

use std::collections::HashMap;

/// Where a parameter's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamSource {
    Literal(String),
    Placeholder {
        /// The key as written, without `$` (matched without case).
        key: String,
        fallback: Option<String>,
    },
}

/// Reads a value as written by a user.
///
/// `$` followed only by letters, digits and underscores is a placeholder; `$$` at the
/// start stands for one literal `$` (so `$$5` is the text `$5`); anything else is
/// literal. A blank fallback counts as none: an empty parameter cannot be sent.
pub fn parse(value: &str, fallback: Option<&str>) -> ParamSource {
    if let Some(rest) = value.strip_prefix("$$") {
        return ParamSource::Literal(format!("${rest}"));
    }
    match value.strip_prefix('$') {
        Some(key) if is_key(key) => ParamSource::Placeholder {
            key: key.to_owned(),
            fallback: fallback.filter(|f| !f.trim().is_empty()).map(str::to_owned),
        },
        _ => ParamSource::Literal(value.to_owned()),
    }
}

fn is_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What placeholders can draw on for one contact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactValues {
    pub name: String,
    pub phone: Option<String>,
    /// Custom attribute values, keyed by lowercase attribute key.
    pub attributes: HashMap<String, String>,
}

/// A placeholder with no value for the contact and no fallback.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no value for ${key} and no fallback")]
pub struct Missing {
    pub key: String,
}

/// The text a parameter takes for a contact.
pub fn resolve(source: &ParamSource, contact: &ContactValues) -> Result<String, Missing> {
    let (key, fallback) = match source {
        ParamSource::Literal(text) => return Ok(text.clone()),
        ParamSource::Placeholder { key, fallback } => (key, fallback),
    };
    lookup(key, contact)
        .filter(|value| !value.trim().is_empty())
        .map(str::to_owned)
        .or_else(|| fallback.clone())
        .ok_or_else(|| Missing { key: key.clone() })
}

/// A placeholder's value; unknown keys have none.
fn lookup<'a>(key: &str, contact: &'a ContactValues) -> Option<&'a str> {
    let key = key.to_lowercase();
    let name = contact.name.trim();
    match key.as_str() {
        "name" => Some(name),
        "firstname" => name.split_whitespace().next(),
        "lastname" => Some(last_name(name)),
        "phone" => contact.phone.as_deref(),
        _ => contact.attributes.get(&key).map(String::as_str),
    }
}

/// Everything after the first word, as written.
fn last_name(name: &str) -> &str {
    name.split_once(char::is_whitespace)
        .map_or("", |(_, rest)| rest.trim_start())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholder(key: &str, fallback: Option<&str>) -> ParamSource {
        ParamSource::Placeholder {
            key: key.into(),
            fallback: fallback.map(Into::into),
        }
    }

    fn literal(text: &str) -> ParamSource {
        ParamSource::Literal(text.into())
    }

    #[test]
    fn parsing() {
        let cases = [
            (
                "$FirstName",
                Some("there"),
                placeholder("FirstName", Some("there")),
            ),
            ("$city_2", None, placeholder("city_2", None)),
            ("$Name", Some("  "), placeholder("Name", None)),
            ("$$5 off", None, literal("$5 off")),
            ("$$Name", None, literal("$Name")),
            ("$", None, literal("$")),
            ("$First Name", None, literal("$First Name")),
            ("$Name!", None, literal("$Name!")),
            ("$prénom", None, literal("$prénom")),
            ("Hello $Name", None, literal("Hello $Name")),
            ("plain", Some("ignored"), literal("plain")),
            ("", None, literal("")),
        ];
        for (value, fallback, expected) in cases {
            assert_eq!(parse(value, fallback), expected, "value {value:?}");
        }
    }

    fn contact() -> ContactValues {
        ContactValues {
            name: " Mary Ann  Smith ".into(),
            phone: Some("+14155550123".into()),
            attributes: HashMap::from([
                ("city".to_owned(), "Lima".to_owned()),
                ("plan".to_owned(), " ".to_owned()),
            ]),
        }
    }

    #[test]
    fn placeholders_resolve_from_the_contact_ignoring_case() {
        let cases = [
            ("Name", "Mary Ann  Smith"),
            ("FirstName", "Mary"),
            ("firstname", "Mary"),
            ("LastName", "Ann  Smith"),
            ("PHONE", "+14155550123"),
            ("City", "Lima"),
            ("city", "Lima"),
        ];
        for (key, expected) in cases {
            let resolved = resolve(&placeholder(key, Some("fallback")), &contact());
            assert_eq!(resolved, Ok(expected.to_owned()), "key {key}");
        }
    }

    #[test]
    fn literals_resolve_to_themselves() {
        assert_eq!(
            resolve(&literal("$5 off"), &contact()),
            Ok("$5 off".to_owned())
        );
    }

    #[test]
    fn empty_or_absent_values_use_the_fallback() {
        let single_name = ContactValues {
            name: "Cher".into(),
            ..ContactValues::default()
        };
        let cases = [
            ("LastName", &single_name),
            ("Phone", &single_name),
            ("FirstName", &single_name),
            ("Name", &single_name),
            ("Plan", &contact()),
            ("Unknown", &contact()),
        ];
        let expected = ["friend", "friend", "Cher", "Cher", "friend", "friend"];
        for ((key, who), expected) in cases.into_iter().zip(expected) {
            let resolved = resolve(&placeholder(key, Some("friend")), who);
            assert_eq!(resolved, Ok(expected.to_owned()), "key {key}");
        }
    }

    #[test]
    fn without_a_fallback_a_missing_value_is_an_error() {
        let nameless = ContactValues::default();
        let single_name = ContactValues {
            name: "Cher".into(),
            ..ContactValues::default()
        };
        let cases = [
            ("Name", &nameless),
            ("FirstName", &nameless),
            ("LastName", &single_name),
            ("Phone", &single_name),
            ("Plan", &contact()),
            ("Unknown", &contact()),
        ];
        for (key, who) in cases {
            let resolved = resolve(&placeholder(key, None), who);
            assert_eq!(resolved, Err(Missing { key: key.into() }), "key {key}");
        }
    }

    #[test]
    fn missing_names_the_key_as_written() {
        let err = resolve(&placeholder("FirstName", None), &ContactValues::default()).unwrap_err();
        assert_eq!(err.to_string(), "no value for $FirstName and no fallback");
    }
}
