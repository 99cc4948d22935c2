//! Meta's pricing eras as data: each is a rule set with the instant it takes effect, and the
//! one in force at the time of a message decides how it is priced. A future change of
//! Meta's rules that fits these knobs is a new [`Era`] value, not new code.
//!
//! All instants are UTC. Meta announces changes per calendar day and its billing runs on
//! UTC; the "calendar month" of the free service tier is the UTC month too.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// How an era charges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PricingModel {
    /// Conversation-based (Meta's "CBP"): a 24-hour conversation per category is charged
    /// once, when it opens; messages inside it are free.
    Conversation,
    /// Per-message (Meta's "PMP"): every delivered template is charged.
    PerMessage,
}

impl PricingModel {
    /// Meta's `pricing_model` value in status webhooks, so reconciliation can compare.
    pub fn as_str(self) -> &'static str {
        match self {
            PricingModel::Conversation => "CBP",
            PricingModel::PerMessage => "PMP",
        }
    }
}

/// One pricing rule set, in force from `effective_from` until the next era's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Era {
    /// Stable key, also the `era` column of the rate card (`cbp_2023`, ...).
    pub name: String,
    pub effective_from: DateTime<Utc>,
    pub model: PricingModel,
    /// Service conversations free per project per UTC calendar month (conversation eras).
    pub free_service_per_month: u32,
    /// Service is free and unlimited (then `free_service_per_month` is irrelevant).
    pub service_free: bool,
    /// Utility templates sent inside an open customer-service window are free.
    pub utility_free_in_service_window: bool,
    /// Length of the all-free window a free-entry-point answer opens.
    pub free_entry_point_hours: u32,
    /// Length of a conversation (conversation eras).
    pub conversation_hours: u32,
}

impl Era {
    /// The three eras of SPEC section 7, oldest first.
    pub fn builtin() -> Vec<Era> {
        let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
        vec![
            Era {
                name: "cbp_2023".into(),
                effective_from: at(2023, 6, 1),
                model: PricingModel::Conversation,
                free_service_per_month: 1_000,
                service_free: false,
                utility_free_in_service_window: false,
                free_entry_point_hours: 72,
                conversation_hours: 24,
            },
            Era {
                name: "cbp_free_service_2024".into(),
                effective_from: at(2024, 11, 1),
                model: PricingModel::Conversation,
                free_service_per_month: 0,
                service_free: true,
                utility_free_in_service_window: false,
                free_entry_point_hours: 72,
                conversation_hours: 24,
            },
            Era {
                name: "pmp_2025".into(),
                effective_from: at(2025, 7, 1),
                model: PricingModel::PerMessage,
                free_service_per_month: 0,
                service_free: true,
                utility_free_in_service_window: true,
                free_entry_point_hours: 72,
                conversation_hours: 24,
            },
        ]
    }
}
