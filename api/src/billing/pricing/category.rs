//! The four conversation / message categories Meta prices by.

use serde::{Deserialize, Serialize};

/// What a message is charged as. Templates carry one of the first three (approved with the
/// template); service is what the business's free-form replies to a user are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Marketing,
    Utility,
    Authentication,
    Service,
}

impl Category {
    /// Every category, in a stable order (reports, tests).
    pub const ALL: [Category; 4] = [
        Category::Marketing,
        Category::Utility,
        Category::Authentication,
        Category::Service,
    ];

    /// The upper-case name used in the API and in Meta's template payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Marketing => "MARKETING",
            Category::Utility => "UTILITY",
            Category::Authentication => "AUTHENTICATION",
            Category::Service => "SERVICE",
        }
    }

    /// Case-insensitive, so both the API's `MARKETING` and the rate card's (and Meta's
    /// webhooks') `marketing` are accepted. No trimming: callers trim their input.
    pub fn parse(text: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(text))
    }

    /// Whether a template can be approved in this category (service is never a template).
    pub fn is_template_category(self) -> bool {
        self != Category::Service
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_case_and_round_trips() {
        assert_eq!(Category::parse("marketing"), Some(Category::Marketing));
        assert_eq!(Category::parse("Utility"), Some(Category::Utility));
        assert_eq!(
            Category::parse("AUTHENTICATION"),
            Some(Category::Authentication)
        );
        assert_eq!(Category::parse("service"), Some(Category::Service));
        assert_eq!(Category::parse("promo"), None);
        assert_eq!(Category::parse(" marketing"), None);
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
            assert_eq!(Category::parse(&c.as_str().to_lowercase()), Some(c));
        }
    }
}
