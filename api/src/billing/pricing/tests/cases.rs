//! The scenarios, as data: one outbound row per line with, written out by hand, the
//! category charged, what it opens, the free reason and the amount in micros. Formatted by
//! hand (`#[rustfmt::skip]` on the module) so that each row stays on one line.
//!
//! Prices from the fixture, in micros:
//!
//! | era (from)                        | IN, INR: mkt / util / auth / svc      | US, USD: mkt / util / auth / svc | AU, USD: mkt / util / auth / svc  |
//! |-----------------------------------|---------------------------------------|----------------------------------|-----------------------------------|
//! | cbp_2023 (2023-06-01)             | 726_500 / 308_200 / 308_200 / 290_600 | 25_000 / 15_000 / 13_500 / 8_800 | 73_700 / 16_000 / 13_500 / 39_400 |
//! | cbp_free_service_2024 (2024-11-01)| 784_600 / 115_000 / 115_000 / 0       | 25_000 / 4_000 / 13_500 / 0      | no rows: 2023's stay in force     |
//! | pmp_2025 (2025-07-01)             | 863_100 / 115_000 / 115_000 / -       | 25_000 / 4_000 / 13_500 / -      | 58_600 / 8_000 / 13_500 / -       |

use chrono::Duration;

use super::harness::{Case, Expected, Opens::*, Refusal, Step, err, from_ad, inbound, ok, out};
use super::t;
use crate::billing::pricing::{
    Category::{Authentication as A, Marketing as M, Service as S, Utility as U},
    FreeReason::*,
    MessageKind::{FreeForm as FF, Template as T},
};

pub(super) fn all() -> Vec<Case> {
    vec![
        cbp_2023_conversations(),
        cbp_2023_free_tier(),
        crossing_november_2024(),
        crossing_november_2024_with_free_tier_left(),
        crossing_july_2025(),
        free_entry_point_2023(),
        free_entry_point_2024(),
        free_entry_point_2025(),
        rate_rows(),
    ]
}

/// Conversations per category, 24 h each, free-form riding in any open one.
fn cbp_2023_conversations() -> Case {
    let steps = vec![
        out("u1", t("2024-03-04 10:00"), T(M), "IN", ok(M, Conv(M), None, 726_500).era("cbp_2023")),
        out("u1", t("2024-03-04 20:00"), T(M), "IN", ok(M, Nothing, Some(ConversationOpen), 0)),
        // Categories are charged separately: an open marketing conversation does not cover utility.
        out("u1", t("2024-03-04 21:00"), T(U), "IN", ok(U, Conv(U), None, 308_200)),
        inbound("u1", t("2024-03-04 22:00")),
        // Free-form inside an open marketing conversation rides free, opens no service one.
        out("u1", t("2024-03-04 22:30"), FF, "IN", ok(S, Nothing, Some(ConversationOpen), 0)),
        // Exactly 24 h later the marketing conversation is over: a new one.
        out("u1", t("2024-03-05 10:00"), T(M), "IN", ok(M, Conv(M), None, 726_500)),
        // The utility one (21:00) is still open.
        out("u1", t("2024-03-05 11:00"), T(U), "IN", ok(U, Nothing, Some(ConversationOpen), 0)),
        inbound("u2", t("2024-03-04 09:00")),
        // Nothing open: the reply opens a service conversation, one of the month's free 1,000.
        out("u2", t("2024-03-04 09:30"), FF, "IN", ok(S, Conv(S), Some(FreeTier), 0)),
        out("u2", t("2024-03-04 12:00"), FF, "IN", ok(S, Nothing, Some(ConversationOpen), 0)),
        // A template inside an open service conversation opens its own category.
        out("u2", t("2024-03-04 12:30"), T(M), "IN", ok(M, Conv(M), None, 726_500)),
        inbound("u2", t("2024-03-05 10:00")),
        // Service expired at 09:30 but marketing is open until 12:30: rides, no service.
        out("u2", t("2024-03-05 10:15"), FF, "IN", ok(S, Nothing, Some(ConversationOpen), 0)),
        // Nothing open any more: a new service conversation.
        out("u2", t("2024-03-05 13:00"), FF, "IN", ok(S, Conv(S), Some(FreeTier), 0)),
        // Never wrote: no customer-service window.
        out("u3", t("2024-03-04 11:00"), FF, "IN", err(Refusal::OutsideWindow)),
        inbound("u3", t("2024-03-05 08:00")),
        // The window closes exactly 24 h after the user's message; a template still goes.
        out("u3", t("2024-03-06 08:00"), FF, "IN", err(Refusal::OutsideWindow)),
        out("u3", t("2024-03-06 08:00"), T(A), "IN", ok(A, Conv(A), None, 308_200)),
        out("u3", t("2024-03-06 08:00"), T(S), "IN", err(Refusal::ServiceTemplate)),
    ];
    Case {
        name: "cbp_2023 conversations",
        currency: "INR",
        free_tier_used: None,
        steps,
        totals: Expected {
            messages: 12, free: 7, billable: 5, refused: 3,
            amount: 3 * 726_500 + 308_200 + 308_200,
            opened: &[(M, 3), (U, 1), (A, 1), (S, 2)], fep_windows: 0, free_tier: 2,
        },
    }
}

/// 1,001 users reply on 31 May 2024: the 1,001st service conversation is charged; June
/// starts over.
fn cbp_2023_free_tier() -> Case {
    let mut steps = Vec::new();
    for i in 0..1_001 {
        let user = format!("s{i}");
        steps.push(inbound(&user, t("2024-05-31 12:00")));
        let at = t("2024-05-31 12:30") + Duration::seconds(i);
        let expect = if i < 1_000 {
            ok(S, Conv(S), Some(FreeTier), 0)
        } else {
            ok(S, Conv(S), None, 290_600).rate_from("2023-06-01")
        };
        steps.push(out(&user, at, FF, "IN", expect));
    }
    steps.extend([
        inbound("june", t("2024-06-01 00:05")),
        out("june", t("2024-06-01 00:10"), FF, "IN", ok(S, Conv(S), Some(FreeTier), 0)),
        // s0's May conversation (12:30) is still open across the month boundary.
        out("s0", t("2024-06-01 00:20"), FF, "IN", ok(S, Nothing, Some(ConversationOpen), 0)),
        // s1000's paid one (12:46:40) has expired: a new, free, June one.
        inbound("s1000", t("2024-06-01 12:45")),
        out("s1000", t("2024-06-01 13:00"), FF, "IN", ok(S, Conv(S), Some(FreeTier), 0)),
    ]);
    Case {
        name: "cbp_2023 free tier",
        currency: "INR",
        free_tier_used: None,
        steps,
        totals: Expected {
            messages: 1_004, free: 1_003, billable: 1, refused: 0,
            amount: 290_600,
            opened: &[(S, 1_003)], fep_windows: 0, free_tier: 1_002,
        },
    }
}

/// 31 Oct → 1 Nov 2024, October's free tier used up.
fn crossing_november_2024() -> Case {
    let steps = vec![
        inbound("u1", t("2024-10-31 23:00")),
        out("u1", t("2024-10-31 23:30"), FF, "IN", ok(S, Conv(S), None, 290_600).era("cbp_2023").rate_from("2023-06-01")),
        // The paid service conversation is still open: rides.
        out("u1", t("2024-11-01 10:00"), FF, "IN", ok(S, Nothing, Some(ConversationOpen), 0).era("cbp_free_service_2024")),
        inbound("u2", t("2024-11-01 08:00")),
        out("u2", t("2024-11-01 08:05"), FF, "IN", ok(S, Conv(S), Some(ServiceFree), 0).era("cbp_free_service_2024")),
        out("u3", t("2024-10-31 23:00"), T(M), "IN", ok(M, Conv(M), None, 726_500).era("cbp_2023")),
        // Opened in the old era, still covers marketing in the new one for its 24 h.
        out("u3", t("2024-11-01 10:00"), T(M), "IN", ok(M, Nothing, Some(ConversationOpen), 0).era("cbp_free_service_2024")),
        out("u3", t("2024-11-01 23:30"), T(M), "IN", ok(M, Conv(M), None, 784_600).rate_from("2024-11-01")),
        out("u4", t("2024-11-01 09:00"), T(U), "IN", ok(U, Conv(U), None, 115_000)),
    ];
    Case {
        name: "crossing 1 Nov 2024",
        currency: "INR",
        free_tier_used: Some(("2024-10-01 00:00", 1_000)),
        steps,
        totals: Expected {
            messages: 7, free: 3, billable: 4, refused: 0,
            amount: 290_600 + 726_500 + 784_600 + 115_000,
            opened: &[(M, 2), (U, 1), (S, 2)], fep_windows: 0, free_tier: 0,
        },
    }
}

/// The same night with one free service conversation left in October.
fn crossing_november_2024_with_free_tier_left() -> Case {
    let steps = vec![
        inbound("v1", t("2024-10-31 23:00")),
        out("v1", t("2024-10-31 23:30"), FF, "IN", ok(S, Conv(S), Some(FreeTier), 0).era("cbp_2023")),
        inbound("v2", t("2024-11-01 00:10")),
        out("v2", t("2024-11-01 00:20"), FF, "IN", ok(S, Conv(S), Some(ServiceFree), 0)),
    ];
    Case {
        name: "crossing 1 Nov 2024, free tier left",
        currency: "INR",
        free_tier_used: Some(("2024-10-01 00:00", 999)),
        steps,
        totals: Expected {
            messages: 2, free: 2, billable: 0, refused: 0,
            amount: 0,
            opened: &[(S, 2)], fep_windows: 0, free_tier: 1,
        },
    }
}

/// 30 Jun → 1 Jul 2025: conversations stop mattering, each template is charged.
fn crossing_july_2025() -> Case {
    let steps = vec![
        out("u1", t("2025-06-30 20:00"), T(M), "US", ok(M, Conv(M), None, 25_000).era("cbp_free_service_2024").rate_from("2024-11-01")),
        out("u1", t("2025-06-30 22:00"), T(M), "US", ok(M, Nothing, Some(ConversationOpen), 0)),
        // Still inside the June conversation's 24 h, but per-message now.
        out("u1", t("2025-07-01 10:00"), T(M), "US", ok(M, Nothing, None, 25_000).era("pmp_2025").rate_from("2025-07-01")),
        out("u1", t("2025-07-01 11:00"), T(M), "US", ok(M, Nothing, None, 25_000)),
        inbound("u2", t("2025-07-02 09:00")),
        out("u2", t("2025-07-02 10:00"), T(U), "US", ok(U, Nothing, Some(UtilityInServiceWindow), 0)),
        out("u2", t("2025-07-02 10:05"), FF, "US", ok(S, Nothing, Some(FreeForm), 0)),
        // Only utility is free in the window.
        out("u2", t("2025-07-02 11:00"), T(A), "US", ok(A, Nothing, None, 13_500)),
        out("u2", t("2025-07-02 11:30"), T(M), "US", ok(M, Nothing, None, 25_000)),
        out("u2", t("2025-07-03 09:00"), T(U), "US", ok(U, Nothing, None, 4_000)),
        out("u2", t("2025-07-03 10:00"), FF, "US", err(Refusal::OutsideWindow)),
        inbound("u3", t("2025-06-30 12:00")),
        // June: utility in the window still opens a paid conversation.
        out("u3", t("2025-06-30 12:30"), T(U), "US", ok(U, Conv(U), None, 4_000)),
        // July: the window opened in June (until 1 Jul 12:00) makes it free.
        out("u3", t("2025-07-01 09:00"), T(U), "US", ok(U, Nothing, Some(UtilityInServiceWindow), 0)),
        // Window closed; the June utility conversation (until 12:30) no longer counts.
        out("u3", t("2025-07-01 12:00"), T(U), "US", ok(U, Nothing, None, 4_000)),
    ];
    Case {
        name: "crossing 1 Jul 2025",
        currency: "USD",
        free_tier_used: None,
        steps,
        totals: Expected {
            messages: 12, free: 4, billable: 8, refused: 1,
            amount: 3 * 25_000 + 13_500 + 25_000 + 4_000 + 2 * 4_000,
            opened: &[(M, 1), (U, 1)], fep_windows: 0, free_tier: 0,
        },
    }
}

fn free_entry_point_2023() -> Case {
    let steps = vec![
        from_ad("f1", t("2024-03-10 10:00")),
        // Answered within 24 h: a 72-h window, opening no conversation.
        out("f1", t("2024-03-10 20:00"), T(M), "IN", ok(M, Fep, Some(FreeEntryPoint), 0).era("cbp_2023")),
        out("f1", t("2024-03-10 21:00"), FF, "IN", ok(S, Nothing, Some(FreeEntryPoint), 0)),
        out("f1", t("2024-03-12 10:00"), T(U), "IN", ok(U, Nothing, Some(FreeEntryPoint), 0)),
        // The window does not extend the 24-h customer-service window.
        out("f1", t("2024-03-12 11:00"), FF, "IN", err(Refusal::OutsideWindow)),
        out("f1", t("2024-03-13 19:59"), T(M), "IN", ok(M, Nothing, Some(FreeEntryPoint), 0)),
        // 72 h after the answer (the 73rd hour): normal pricing, no conversation was open.
        out("f1", t("2024-03-13 20:00"), T(M), "IN", ok(M, Conv(M), None, 726_500)),
        from_ad("f2", t("2024-03-10 10:00")),
        // 25 h after the ad: normal pricing.
        out("f2", t("2024-03-11 11:00"), T(M), "IN", ok(M, Conv(M), None, 726_500)),
        from_ad("f3", t("2024-03-10 10:00")),
        inbound("f3", t("2024-03-11 09:00")),
        // 25 h after the ad: a normal service conversation (free tier).
        out("f3", t("2024-03-11 11:00"), FF, "IN", ok(S, Conv(S), Some(FreeTier), 0)),
    ];
    Case {
        name: "free entry point, cbp_2023",
        currency: "INR",
        free_tier_used: None,
        steps,
        totals: Expected {
            messages: 7, free: 5, billable: 2, refused: 1,
            amount: 2 * 726_500,
            opened: &[(M, 2), (S, 1)], fep_windows: 1, free_tier: 1,
        },
    }
}

fn free_entry_point_2024() -> Case {
    let steps = vec![
        from_ad("g1", t("2024-12-02 08:00")),
        out("g1", t("2024-12-02 09:00"), FF, "US", ok(S, Fep, Some(FreeEntryPoint), 0).era("cbp_free_service_2024")),
        out("g1", t("2024-12-04 09:00"), T(M), "US", ok(M, Nothing, Some(FreeEntryPoint), 0)),
        out("g1", t("2024-12-05 09:00"), T(M), "US", ok(M, Conv(M), None, 25_000)),
        from_ad("g2", t("2024-12-02 08:00")),
        inbound("g2", t("2024-12-03 08:30")),
        out("g2", t("2024-12-03 09:00"), FF, "US", ok(S, Conv(S), Some(ServiceFree), 0)),
        from_ad("g3", t("2024-12-02 08:00")),
        out("g3", t("2024-12-02 08:30"), T(U), "US", ok(U, Fep, Some(FreeEntryPoint), 0)),
        // A new ad click after the window closed, answered in time: a new window.
        from_ad("g3", t("2024-12-06 08:00")),
        out("g3", t("2024-12-06 09:00"), T(U), "US", ok(U, Fep, Some(FreeEntryPoint), 0)),
    ];
    Case {
        name: "free entry point, cbp_free_service_2024",
        currency: "USD",
        free_tier_used: None,
        steps,
        totals: Expected {
            messages: 6, free: 5, billable: 1, refused: 0,
            amount: 25_000,
            opened: &[(M, 1), (S, 1)], fep_windows: 3, free_tier: 0,
        },
    }
}

fn free_entry_point_2025() -> Case {
    let steps = vec![
        from_ad("h1", t("2025-08-01 10:00")),
        out("h1", t("2025-08-01 11:00"), T(A), "IN", ok(A, Fep, Some(FreeEntryPoint), 0).era("pmp_2025")),
        out("h1", t("2025-08-03 11:00"), T(M), "IN", ok(M, Nothing, Some(FreeEntryPoint), 0)),
        out("h1", t("2025-08-04 11:00"), T(M), "IN", ok(M, Nothing, None, 863_100)),
        out("h1", t("2025-08-04 12:00"), T(U), "IN", ok(U, Nothing, None, 115_000)),
        from_ad("h2", t("2025-08-01 10:00")),
        out("h2", t("2025-08-02 11:00"), T(M), "IN", ok(M, Nothing, None, 863_100)),
        from_ad("h3", t("2025-08-01 10:00")),
        inbound("h3", t("2025-08-02 10:30")),
        // Too late for the ad, but inside the customer-service window.
        out("h3", t("2025-08-02 11:00"), T(U), "IN", ok(U, Nothing, Some(UtilityInServiceWindow), 0)),
    ];
    Case {
        name: "free entry point, pmp_2025",
        currency: "INR",
        free_tier_used: None,
        steps,
        totals: Expected {
            messages: 6, free: 3, billable: 3, refused: 0,
            amount: 2 * 863_100 + 115_000,
            opened: &[], fep_windows: 1, free_tier: 0,
        },
    }
}

/// Rows stay in force until superseded; a missing row refuses only billable messages.
fn rate_rows() -> Case {
    let steps: Vec<Step> = vec![
        out("a1", t("2024-12-10 10:00"), T(M), "AU", ok(M, Conv(M), None, 73_700).era("cbp_free_service_2024").rate_from("2023-06-01")),
        out("a1", t("2024-12-10 11:00"), T(A), "AU", ok(A, Conv(A), None, 13_500).rate_from("2023-06-01")),
        inbound("a2", t("2024-12-10 10:00")),
        out("a2", t("2024-12-10 10:30"), FF, "AU", ok(S, Conv(S), Some(ServiceFree), 0)),
        // A USD project has no IN rows: refused when billable, fine when free.
        out("i1", t("2024-12-10 11:00"), T(U), "IN", err(Refusal::NoRate("IN", U, "USD"))),
        inbound("i2", t("2024-12-10 11:00")),
        out("i2", t("2024-12-10 11:30"), FF, "IN", ok(S, Conv(S), Some(ServiceFree), 0)),
        out("b1", t("2024-12-10 12:00"), T(M), "BR", err(Refusal::NoRate("BR", M, "USD"))),
        inbound("a3", t("2025-07-05 09:00")),
        out("a3", t("2025-07-05 09:30"), FF, "AU", ok(S, Nothing, Some(FreeForm), 0)),
        out("a3", t("2025-07-05 10:00"), T(M), "AU", ok(M, Nothing, None, 58_600).rate_from("2025-07-01")),
        out("e1", t("2023-05-31 23:59"), T(M), "US", err(Refusal::NoEra)),
        out("e1", t("2023-06-01 00:00"), T(M), "US", ok(M, Conv(M), None, 25_000).era("cbp_2023")),
        // A free-tier service conversation needs no BR row either.
        inbound("e2", t("2023-06-02 10:00")),
        out("e2", t("2023-06-02 10:30"), FF, "BR", ok(S, Conv(S), Some(FreeTier), 0)),
    ];
    Case {
        name: "rate rows",
        currency: "USD",
        free_tier_used: None,
        steps,
        totals: Expected {
            messages: 8, free: 4, billable: 4, refused: 3,
            amount: 73_700 + 13_500 + 58_600 + 25_000,
            opened: &[(M, 2), (A, 1), (S, 3)], fep_windows: 0, free_tier: 1,
        },
    }
}
