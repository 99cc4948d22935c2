//! Campaign vocabulary: kinds, statuses, the audience, skip reasons and failure groups.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::contacts::filter::ContactFilter;

pub const BROADCAST: &str = "BROADCAST";
pub const API: &str = "API";

// Broadcast statuses.
pub const DRAFT: &str = "DRAFT";
pub const SCHEDULED: &str = "SCHEDULED";
pub const RUNNING: &str = "RUNNING";
pub const PAUSED: &str = "PAUSED";
pub const COMPLETED: &str = "COMPLETED";
pub const CANCELLED: &str = "CANCELLED";
/// Meta paused or disabled the template: nothing more can be sent.
pub const STOPPED: &str = "STOPPED";
// API campaign statuses (PAUSED is shared).
pub const LIVE: &str = "LIVE";

// Recipient statuses.
pub const QUEUED: &str = "QUEUED";
pub const SENDING: &str = "SENDING";
pub const SENT: &str = "SENT";
pub const DELIVERED: &str = "DELIVERED";
pub const READ: &str = "READ";
pub const FAILED: &str = "FAILED";
pub const SKIPPED: &str = "SKIPPED";
/// The process stopped while the send may have reached Meta: never sent again by itself,
/// so that no one gets the message twice (a retry of failed recipients may send it).
pub const INTERRUPTED: &str = "INTERRUPTED";

// Skip reasons.
pub const OPTED_OUT: &str = "OPTED_OUT";
pub const INCOMING_BLOCKED: &str = "INCOMING_BLOCKED";
pub const UNREACHABLE: &str = "UNREACHABLE";

/// Who a broadcast goes to: contacts matching a filter (a saved segment is a filter with
/// `segment`), or a list of contacts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Audience {
    Filter { filter: Box<ContactFilter> },
    Contacts { ids: Vec<Uuid> },
}

/// How failures are grouped in the analytics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureGroup {
    /// 131049: Meta's per-user marketing limit.
    LimitedByMeta,
    /// 131026: the number cannot receive it.
    Undeliverable,
    /// 131047: outside the customer-service window.
    OutsideWindow,
    /// 132015, 132016: the template is paused or disabled (the campaign stops).
    TemplatePaused,
    Other,
}

impl FailureGroup {
    pub fn of(code: Option<i64>) -> Self {
        match code {
            Some(131049) => Self::LimitedByMeta,
            Some(131026) => Self::Undeliverable,
            Some(131047) => Self::OutsideWindow,
            Some(132015 | 132016) => Self::TemplatePaused,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LimitedByMeta => "LIMITED_BY_META",
            Self::Undeliverable => "UNDELIVERABLE",
            Self::OutsideWindow => "OUTSIDE_WINDOW",
            Self::TemplatePaused => "TEMPLATE_PAUSED",
            Self::Other => "OTHER",
        }
    }
}

/// Meta's answers that mean "too fast, try later": retried, never counted as failures.
pub fn is_rate_limited(code: Option<i64>) -> bool {
    matches!(code, Some(130429 | 131056 | 4 | 80007 | 131048 | 133016))
}

/// The name folded for uniqueness.
pub fn name_key(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_grouped_by_meta_s_code() {
        assert_eq!(FailureGroup::of(Some(131049)).as_str(), "LIMITED_BY_META");
        assert_eq!(FailureGroup::of(Some(131026)).as_str(), "UNDELIVERABLE");
        assert_eq!(FailureGroup::of(Some(131047)).as_str(), "OUTSIDE_WINDOW");
        assert_eq!(FailureGroup::of(Some(132015)).as_str(), "TEMPLATE_PAUSED");
        assert_eq!(FailureGroup::of(Some(132016)).as_str(), "TEMPLATE_PAUSED");
        assert_eq!(FailureGroup::of(Some(100)).as_str(), "OTHER");
        assert_eq!(FailureGroup::of(None).as_str(), "OTHER");
        assert!(is_rate_limited(Some(130429)));
        assert!(is_rate_limited(Some(131056)));
        assert!(!is_rate_limited(Some(131026)));
    }

    #[test]
    fn audiences_round_trip_through_json() {
        let audience = Audience::Contacts {
            ids: vec![Uuid::nil()],
        };
        let text = serde_json::to_string(&audience).unwrap();
        assert_eq!(serde_json::from_str::<Audience>(&text).unwrap(), audience);
    }
}
