//! Direct tests of the engine's pieces: purity of `price`, `apply`, month state, era and
//! rate lookups.

use super::{book, day, t};
use crate::billing::pricing::{
    Category, Era, Event, FreeReason, MessageKind, MonthState, Outbound, Simulator, UserState,
    WindowKind, apply, price,
};

#[test]
fn price_is_pure_and_apply_records() {
    let book = book();
    let mut user = UserState::default();
    let mut month = MonthState::new(t("2024-03-01 00:00"));
    user.on_inbound(t("2024-03-04 09:00"), false);
    let reply = Outbound {
        at: t("2024-03-04 09:30"),
        kind: MessageKind::FreeForm,
        country: "IN".into(),
        currency: "INR".into(),
    };
    let first = price(&book, &user, &month, &reply).unwrap();
    assert_eq!(
        price(&book, &user, &month, &reply).unwrap(),
        first,
        "no state change"
    );
    assert!(user.conversations.is_empty());
    apply(&mut user, &mut month, &first);
    assert_eq!(month.free_service_used, 1);
    assert_eq!(user.conversations.len(), 1);
    // A later inbound webhook for an older message does not shorten the window.
    user.on_inbound(t("2024-03-01 09:00"), false);
    assert_eq!(user.last_inbound_at, Some(t("2024-03-04 09:00")));
    // A month state of another month leaves the new month its whole free tier.
    let stale = MonthState {
        free_service_used: 1_000,
        ..MonthState::new(t("2024-02-10 00:00"))
    };
    assert_eq!(stale.used_at(t("2024-03-04 10:00")), 0);
    // Expired conversations are forgotten on the next apply.
    let later = Outbound {
        at: t("2024-03-06 10:00"),
        kind: MessageKind::Template(Category::Utility),
        ..reply
    };
    let utility = price(&book, &user, &month, &later).unwrap();
    apply(&mut user, &mut month, &utility);
    assert_eq!(user.conversations.len(), 1);
    assert_eq!(
        user.conversations[0].kind,
        WindowKind::Conversation(Category::Utility)
    );
}

#[test]
fn eras_take_effect_at_utc_midnight() {
    let book = book();
    let era = |at: &str| book.era_at(t(at)).map(|e| e.name.clone());
    assert_eq!(era("2023-05-31 23:59"), None);
    assert_eq!(era("2023-06-01 00:00").as_deref(), Some("cbp_2023"));
    assert_eq!(era("2024-10-31 23:59").as_deref(), Some("cbp_2023"));
    assert_eq!(
        era("2024-11-01 00:00").as_deref(),
        Some("cbp_free_service_2024")
    );
    assert_eq!(
        era("2025-06-30 23:59").as_deref(),
        Some("cbp_free_service_2024")
    );
    assert_eq!(era("2025-07-01 00:00").as_deref(), Some("pmp_2025"));
    assert_eq!(era("2031-01-01 00:00").as_deref(), Some("pmp_2025"));
    let eras = Era::builtin();
    assert!(
        eras.windows(2)
            .all(|w| w[0].effective_from < w[1].effective_from)
    );
    assert!(
        eras.iter()
            .all(|e| e.free_entry_point_hours == 72 && e.conversation_hours == 24)
    );
}

#[test]
fn rates_stay_in_force_until_superseded() {
    let book = book();
    let rate = |at: &str, country, category, currency| {
        book.rate(t(at), country, category, currency)
            .map(|r| (r.effective_from, r.price_micros))
    };
    let (m, s) = (Category::Marketing, Category::Service);
    assert_eq!(
        rate("2024-10-31 23:59", "IN", m, "INR"),
        Some((day("2023-06-01"), 726_500))
    );
    assert_eq!(
        rate("2024-11-01 00:00", "IN", m, "INR"),
        Some((day("2024-11-01"), 784_600))
    );
    assert_eq!(
        rate("2025-07-01 00:00", "in", m, "inr"),
        Some((day("2025-07-01"), 863_100))
    );
    assert_eq!(
        rate("2024-12-10 10:00", "AU", m, "USD"),
        Some((day("2023-06-01"), 73_700))
    );
    assert_eq!(
        rate("2024-12-10 10:00", "AU", s, "USD"),
        Some((day("2023-06-01"), 39_400))
    );
    assert_eq!(
        rate("2024-12-10 10:00", "IN", s, "INR"),
        Some((day("2024-11-01"), 0))
    );
    assert_eq!(rate("2024-12-10 10:00", "IN", m, "USD"), None);
    assert_eq!(rate("2023-05-31 23:59", "IN", m, "INR"), None);
}

#[test]
fn one_window_per_free_entry_inbound() {
    // An era whose free-entry-point window is shorter than the 24 h to answer in: once the
    // window closes, a later answer to the same ad click opens no second one.
    let mut book = book();
    for era in &mut book.eras {
        era.free_entry_point_hours = 2;
    }
    let mut user = UserState::default();
    let mut month = MonthState::new(t("2024-03-10 00:00"));
    user.on_inbound(t("2024-03-10 10:00"), true);
    let send = |at: &str| Outbound {
        at: t(at),
        kind: MessageKind::Template(Category::Marketing),
        country: "IN".into(),
        currency: "INR".into(),
    };
    let first = price(&book, &user, &month, &send("2024-03-10 11:00")).unwrap();
    assert_eq!(
        first.opens.as_ref().map(|o| o.kind),
        Some(WindowKind::FreeEntryPoint)
    );
    apply(&mut user, &mut month, &first);
    let later = price(&book, &user, &month, &send("2024-03-10 14:00")).unwrap();
    assert_eq!((later.billable, later.amount_micros), (true, 726_500));
    // A new click from the ad opens a new window.
    user.on_inbound(t("2024-03-10 15:00"), true);
    let again = price(&book, &user, &month, &send("2024-03-10 16:00")).unwrap();
    assert_eq!(
        again.opens.as_ref().map(|o| o.kind),
        Some(WindowKind::FreeEntryPoint)
    );
}

#[test]
fn simulator_orders_events_by_time() {
    let book = book();
    let events = [
        Event::Outbound {
            user: "u".into(),
            at: t("2024-03-04 10:00"),
            kind: MessageKind::FreeForm,
            country: "IN".into(),
        },
        Event::Inbound {
            user: "u".into(),
            at: t("2024-03-04 09:00"),
            free_entry_point: false,
        },
    ];
    let mut sim = Simulator::new(&book, "INR");
    let run = sim.run(&events);
    assert_eq!(run.outcomes.len(), 1);
    assert_eq!(run.outcomes[0].event_index, 0);
    let pricing = run.outcomes[0]
        .result
        .as_ref()
        .expect("the inbound came first");
    assert_eq!(pricing.free_reason, Some(FreeReason::FreeTier));
    // State carries over to the next run.
    let again = sim.run(&events[..1]);
    assert_eq!(
        again.outcomes[0].result.as_ref().unwrap().free_reason,
        Some(FreeReason::ConversationOpen)
    );
    assert_eq!(sim.user("u").map(|u| u.conversations.len()), Some(1));
}
