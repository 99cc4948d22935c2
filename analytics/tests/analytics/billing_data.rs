//! `billing.*` events as the API records them (api/src/billing/charges.rs and wallet.rs),
//! a small hand-checked set, and a generated set for the parity test.

use chrono::{DateTime, Duration, TimeZone, Utc};
use parley_analytics::{Event, EventKind};
use serde_json::{Value, json};
use uuid::Uuid;

pub fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn event(project: Uuid, kind: &str, when: DateTime<Utc>, payload: Value) -> Event {
    let mut e = Event::new(project, kind, None, payload);
    e.occurred_at = when;
    e
}

/// What the API knows of one outbound message's charge.
#[derive(Clone, Debug)]
pub struct Msg {
    pub id: Uuid,
    pub campaign: Option<Uuid>,
    pub model: &'static str,
    pub category: &'static str,
    pub country: &'static str,
    pub billable: bool,
    pub opened: bool,
    pub amount: i64,
}

impl Msg {
    /// A per-message-pricing template message (the era from 1 July 2025).
    pub fn pmp(id: Uuid, category: &'static str, country: &'static str, amount: i64) -> Self {
        Self {
            id,
            campaign: None,
            model: "PER_MESSAGE",
            category,
            country,
            billable: amount > 0,
            opened: false,
            amount,
        }
    }

    /// A conversation-based message (before 1 July 2025).
    pub fn cbp(id: Uuid, category: &'static str, opened: bool, amount: i64) -> Self {
        Self {
            id,
            campaign: None,
            model: "CONVERSATION",
            category,
            country: "IN",
            billable: amount > 0,
            opened,
            amount,
        }
    }

    pub fn campaign(mut self, campaign: Uuid) -> Self {
        self.campaign = Some(campaign);
        self
    }

    pub fn free(mut self) -> Self {
        self.billable = false;
        self
    }

    /// `billing.charged` (sign 1) or `billing.refunded` (sign -1), both dated `when`.
    pub fn event(&self, project: Uuid, when: DateTime<Utc>, sign: i64) -> Event {
        let kind = if sign > 0 {
            EventKind::BILLING_CHARGED
        } else {
            EventKind::BILLING_REFUNDED
        };
        let era = if self.model == "PER_MESSAGE" {
            "pmp_2025"
        } else {
            "cbp_free_service_2024"
        };
        event(
            project,
            kind,
            when,
            json!({
                "messageId": self.id,
                "contactId": Uuid::from_u128(self.id.as_u128() ^ 0xC0),
                "campaignId": self.campaign,
                "era": era,
                "model": self.model,
                "category": self.category,
                "country": self.country,
                "billable": self.billable,
                "freeReason": if self.billable { Value::Null } else { json!("free_window") },
                "openedConversation": self.opened,
                "usesFreeTier": false,
                "sign": sign,
                "amountMicros": sign * self.amount,
                "currency": "INR",
                "amount": "ignored",
            }),
        )
    }
}

/// `billing.meta_priced` as the API records it from a status webhook's `pricing`.
pub fn meta(
    project: Uuid,
    message: Uuid,
    when: DateTime<Utc>,
    category: &str,
    billable: Option<bool>,
    kind: &str,
) -> Event {
    event(
        project,
        EventKind::BILLING_META_PRICED,
        when,
        json!({
            "messageId": message,
            "contactId": Uuid::nil(),
            "campaignId": null,
            "country": "IN",
            "currency": "INR",
            "metaCategory": category,
            "metaModel": if when >= at(2025, 7, 1, 0, 0, 0) { "PMP" } else { "CBP" },
            "metaBillable": billable,
            "metaType": kind,
        }),
    )
}

/// One wallet ledger entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct Entry {
    pub seq: i64,
    pub kind: &'static str,
    pub amount: i64,
    pub balance: i64,
    pub message: Option<Uuid>,
    pub invoice: Option<Uuid>,
    pub campaign: Option<Uuid>,
}

impl Entry {
    pub fn event(&self, project: Uuid, when: DateTime<Utc>) -> Event {
        event(
            project,
            EventKind::BILLING_WALLET,
            when,
            json!({
                "seq": self.seq,
                "entryKind": self.kind,
                "amountMicros": self.amount,
                "balanceAfterMicros": self.balance,
                "currency": "INR",
                "messageId": self.message,
                "invoiceId": self.invoice,
                "campaignId": self.campaign,
            }),
        )
    }
}

/// Ids of the hand-checked set, readable in failures: message n of project `p` is
/// `0000000p-…-00000000000n`.
pub fn id(p: u128, n: u128) -> Uuid {
    Uuid::from_u128((p << 96) | n)
}

pub const C1: u128 = 0xC1;
pub const C2: u128 = 0xC2;
pub const INVOICE: u128 = 0x1A;

/// The hand-checked set of one project (`p` makes its ids its own): eight messages around
/// 1 July 2025, a refund, Meta pricing (matching, differing, latest-wins, same-second
/// tie, missing), a wallet ledger, and one non-billing event. The expected figures are
/// written out in billing.rs.
pub fn hand_set(project: Uuid, p: u128) -> Vec<Event> {
    let m = |n| id(p, n);
    let (c1, c2) = (id(p, C1), id(p, C2));
    let m1 = Msg::cbp(m(1), "MARKETING", true, 785_000).campaign(c1);
    let m2 = Msg::cbp(m(2), "MARKETING", false, 0).campaign(c1);
    let m3 = Msg::cbp(m(3), "SERVICE", true, 0);
    let m4 = Msg::pmp(m(4), "MARKETING", "IN", 1_000_000);
    let m5 = Msg::pmp(m(5), "UTILITY", "IN", 115_000).campaign(c2);
    let m6 = Msg::pmp(m(6), "MARKETING", "BR", 625_000).campaign(c1);
    let m7 = Msg::pmp(m(7), "UTILITY", "IN", 0).free();
    let m8 = Msg::pmp(m(8), "AUTHENTICATION", "IN", 114_500).campaign(c2);
    let mut events = vec![
        m1.event(project, at(2025, 6, 30, 10, 0, 0), 1),
        m2.event(project, at(2025, 6, 30, 11, 0, 0), 1),
        m3.event(project, at(2025, 6, 30, 12, 0, 0), 1),
        m4.event(project, at(2025, 7, 1, 0, 0, 0), 1),
        m5.event(project, at(2025, 7, 1, 9, 30, 0), 1),
        m6.event(project, at(2025, 7, 2, 8, 0, 0), 1),
        // The send failed: refunded, dated like the charge.
        m6.event(project, at(2025, 7, 2, 8, 0, 0), -1),
        m7.event(project, at(2025, 7, 2, 9, 0, 0), 1),
        m8.event(project, at(2025, 7, 15, 12, 0, 0), 1),
        meta(
            project,
            m(1),
            at(2025, 6, 30, 10, 0, 3),
            "MARKETING",
            Some(true),
            "regular",
        ),
        meta(
            project,
            m(3),
            at(2025, 6, 30, 12, 0, 2),
            "SERVICE",
            Some(false),
            "free_customer_service",
        ),
        // m4: the latest object wins (the first one would differ).
        meta(
            project,
            m(4),
            at(2025, 7, 1, 0, 0, 5),
            "UTILITY",
            Some(true),
            "regular",
        ),
        meta(
            project,
            m(4),
            at(2025, 7, 1, 0, 10, 0),
            "MARKETING",
            Some(true),
            "regular",
        ),
        // m5: billable differs (and the category too: billable decides).
        meta(
            project,
            m(5),
            at(2025, 7, 1, 9, 30, 2),
            "MARKETING",
            Some(false),
            "free_customer_service",
        ),
        // m6 was refunded: its pricing does not count.
        meta(
            project,
            m(6),
            at(2025, 7, 2, 8, 0, 1),
            "MARKETING",
            Some(true),
            "regular",
        ),
        event(
            project,
            EventKind::MEMBER_ADDED,
            at(2025, 7, 1, 0, 0, 0),
            json!({}),
        ),
    ];
    // m7: two objects in the same second; the greater event id is the latest.
    let mut first = meta(
        project,
        m(7),
        at(2025, 7, 2, 9, 0, 1),
        "UTILITY",
        Some(false),
        "regular",
    );
    let mut second = meta(
        project,
        m(7),
        at(2025, 7, 2, 9, 0, 1),
        "MARKETING",
        None,
        "regular",
    );
    first.event_id = id(p, 0xE0A);
    second.event_id = id(p, 0xE0B);
    events.extend([second, first]);
    let ledger = [
        (
            at(2025, 6, 1, 0, 0, 0),
            1,
            "TRIAL_CREDIT",
            10_000_000,
            10_000_000,
            None,
        ),
        (
            at(2025, 6, 30, 10, 0, 0),
            2,
            "CHARGE",
            -785_000,
            9_215_000,
            Some(m1.id),
        ),
        (
            at(2025, 7, 1, 0, 0, 0),
            3,
            "CHARGE",
            -1_000_000,
            8_215_000,
            Some(m4.id),
        ),
        (
            at(2025, 7, 1, 8, 0, 0),
            4,
            "TOP_UP",
            5_000_000,
            13_215_000,
            None,
        ),
        (
            at(2025, 7, 1, 9, 30, 0),
            5,
            "CHARGE",
            -115_000,
            13_100_000,
            Some(m5.id),
        ),
        (
            at(2025, 7, 2, 8, 0, 0),
            6,
            "CHARGE",
            -625_000,
            12_475_000,
            Some(m6.id),
        ),
        (
            at(2025, 7, 2, 8, 5, 0),
            7,
            "REFUND",
            625_000,
            13_100_000,
            Some(m6.id),
        ),
        (
            at(2025, 7, 15, 12, 0, 0),
            8,
            "CHARGE",
            -114_500,
            12_985_500,
            Some(m8.id),
        ),
        (at(2025, 8, 1, 0, 0, 0), 9, "EXPIRY", -12_985_500, 0, None),
    ];
    for (when, seq, kind, amount, balance, message) in ledger {
        let entry = Entry {
            seq,
            kind,
            amount,
            balance,
            message,
            invoice: (kind == "TOP_UP").then(|| id(p, INVOICE)),
            campaign: None,
        };
        events.push(entry.event(project, when));
    }
    events
}

/// A small deterministic generator (xorshift64*): the same events on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// `per_project` messages of each project evenly over 15 June to 15 July 2025 (across the
/// switch to per-message pricing on 1 July); refunds, Meta pricing (0 to 3 objects, some
/// in the same second, some differing) and a wallet ledger.
pub fn generated(projects: &[Uuid], per_project: usize, seed: u64) -> Vec<Event> {
    generated_over(projects, per_project, seed, 30)
}

/// As [`generated`], over `days` days from 15 June 2025.
pub fn generated_over(projects: &[Uuid], per_project: usize, seed: u64, days: i64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let start = at(2025, 6, 15, 0, 0, 0);
    let switch = at(2025, 7, 1, 0, 0, 0);
    let categories = ["MARKETING", "UTILITY", "AUTHENTICATION", "SERVICE"];
    let countries = ["IN", "BR", "ID", "=1+2"];
    let mut events = Vec::new();
    for &project in projects {
        let campaigns: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
        let (mut seq, mut balance) = (1, 50_000_000);
        events.push(
            Entry {
                seq,
                kind: "TRIAL_CREDIT",
                amount: balance,
                balance,
                ..Default::default()
            }
            .event(project, start - Duration::days(1)),
        );
        for i in 0..per_project {
            // Minutes apart on average, sometimes in the same second as the last one.
            let spacing = days * 86_400 / per_project.max(1) as i64;
            let when = start + Duration::seconds(i as i64 * spacing + rng.below(3) as i64);
            let category = rng.pick(&categories);
            let billable = category != "SERVICE" && rng.below(5) != 0;
            let amount = if billable {
                100_000 + rng.below(900_000) as i64
            } else {
                0
            };
            let mut msg = if when >= switch {
                Msg::pmp(Uuid::new_v4(), category, rng.pick(&countries), amount)
            } else {
                let mut m = Msg::cbp(Uuid::new_v4(), category, rng.below(3) == 0, amount);
                m.country = rng.pick(&countries);
                m
            };
            msg.billable = billable;
            if rng.below(3) != 0 {
                msg.campaign = Some(rng.pick(&campaigns));
            }
            events.push(msg.event(project, when, 1));
            if billable {
                seq += 1;
                balance -= amount;
                events.push(
                    Entry {
                        seq,
                        kind: "CHARGE",
                        amount: -amount,
                        balance,
                        message: Some(msg.id),
                        campaign: msg.campaign,
                        ..Default::default()
                    }
                    .event(project, when),
                );
            }
            if rng.below(20) == 0 {
                events.push(msg.event(project, when, -1));
                if billable {
                    seq += 1;
                    balance += amount;
                    events.push(
                        Entry {
                            seq,
                            kind: "REFUND",
                            amount,
                            balance,
                            message: Some(msg.id),
                            ..Default::default()
                        }
                        .event(project, when + Duration::seconds(30)),
                    );
                }
            }
            for k in 0..rng.below(4) {
                let agrees = rng.below(4) != 0;
                let meta_category = if agrees {
                    category
                } else {
                    rng.pick(&categories)
                };
                let meta_billable = match rng.below(6) {
                    0 => None,
                    1 => Some(!billable),
                    _ => Some(billable),
                };
                let kind = if meta_billable == Some(false) {
                    "free_customer_service"
                } else {
                    "regular"
                };
                events.push(meta(
                    project,
                    msg.id,
                    when + Duration::seconds(1 + (k / 2) as i64),
                    meta_category,
                    meta_billable,
                    kind,
                ));
            }
            if i % 97 == 0 {
                seq += 1;
                balance += 10_000_000;
                events.push(
                    Entry {
                        seq,
                        kind: "TOP_UP",
                        amount: 10_000_000,
                        balance,
                        invoice: Some(Uuid::new_v4()),
                        ..Default::default()
                    }
                    .event(project, when + Duration::seconds(45)),
                );
            }
        }
    }
    events
}
