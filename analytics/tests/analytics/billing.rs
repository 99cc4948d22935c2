//! The billing reports: hand-checked figures on both stores, tenant isolation, exactly-once
//! inserts, and parity between ClickHouse and the embedded store on generated events.

use chrono::{DateTime, NaiveDate, Utc};
use parley_analytics::billing_csv;
use parley_analytics::{
    AnalyticsStore, CampaignCost, EmbeddedStore, Event, Granularity, PricingDifference,
    ReconciliationOutcome as Outcome, ReconciliationRow, UsageRow, WalletKindTotal,
    WalletStatement,
};
use uuid::Uuid;

use crate::billing_data::{C1, C2, INVOICE, at, generated, generated_over, hand_set, id};
use crate::common::ChDb;

async fn embedded() -> EmbeddedStore {
    let store = EmbeddedStore::in_memory().await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn project(p: u128) -> Uuid {
    id(p, 0xF00D)
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A usage row in the order of its fields: period, model, category, country, then
/// messages, billable, free, conversations, billable conversations, free conversations,
/// amount (currency INR).
fn usage(
    period: NaiveDate,
    model: &str,
    category: &str,
    country: &str,
    [
        messages,
        billable_messages,
        free_messages,
        conversations,
        billable_conversations,
        free_conversations,
        amount_micros,
    ]: [i64; 7],
) -> UsageRow {
    UsageRow {
        period,
        model: model.into(),
        category: category.into(),
        country: country.into(),
        currency: "INR".into(),
        messages,
        billable_messages,
        free_messages,
        conversations,
        billable_conversations,
        free_conversations,
        amount_micros,
    }
}

fn cost(campaign: Uuid, messages: i64, billable_messages: i64, amount_micros: i64) -> CampaignCost {
    CampaignCost {
        campaign_id: campaign,
        currency: "INR".into(),
        messages,
        billable_messages,
        amount_micros,
    }
}

fn outcome(outcome: Outcome, messages: u64, amount_micros: i64) -> ReconciliationRow {
    ReconciliationRow {
        outcome,
        currency: "INR".into(),
        messages,
        amount_micros,
    }
}

fn total(kind: &str, entries: u64, amount_micros: i64) -> WalletKindTotal {
    WalletKindTotal {
        entry_kind: kind.into(),
        entries,
        amount_micros,
    }
}

/// Checks every report of the hand set of project `p` (billing_data::hand_set) on `store`,
/// against figures worked out by hand.
async fn assert_hand_figures(store: &dyn AnalyticsStore, name: &str, p: u128) {
    let pid = project(p);
    let (june, july, august) = (
        at(2025, 6, 1, 0, 0, 0),
        at(2025, 7, 1, 0, 0, 0),
        at(2025, 8, 1, 0, 0, 0),
    );

    // Days 30 June to 2 July. m6 (BR) was refunded: its group nets to nothing and is left out.
    let days = store
        .usage_report(
            pid,
            at(2025, 6, 30, 0, 0, 0),
            at(2025, 7, 3, 0, 0, 0),
            Granularity::Day,
        )
        .await
        .unwrap();
    assert_eq!(
        days,
        vec![
            // m1 opened a marketing conversation (0.785), m2 was sent in it (free).
            usage(
                day(2025, 6, 30),
                "CONVERSATION",
                "MARKETING",
                "IN",
                [2, 1, 1, 1, 1, 0, 785_000]
            ),
            // m3: a free service conversation.
            usage(
                day(2025, 6, 30),
                "CONVERSATION",
                "SERVICE",
                "IN",
                [1, 0, 1, 1, 0, 1, 0]
            ),
            // m4, at 00:00:00 on the first day of per-message pricing.
            usage(
                day(2025, 7, 1),
                "PER_MESSAGE",
                "MARKETING",
                "IN",
                [1, 1, 0, 0, 0, 0, 1_000_000]
            ),
            usage(
                day(2025, 7, 1),
                "PER_MESSAGE",
                "UTILITY",
                "IN",
                [1, 1, 0, 0, 0, 0, 115_000]
            ),
            // m7: a free utility message.
            usage(
                day(2025, 7, 2),
                "PER_MESSAGE",
                "UTILITY",
                "IN",
                [1, 0, 1, 0, 0, 0, 0]
            ),
        ],
        "{name}: days"
    );

    // June and July: the month that spans the switch to per-message pricing and the one before.
    let months = store
        .usage_report(pid, june, august, Granularity::Month)
        .await
        .unwrap();
    assert_eq!(
        months,
        vec![
            usage(
                day(2025, 6, 1),
                "CONVERSATION",
                "MARKETING",
                "IN",
                [2, 1, 1, 1, 1, 0, 785_000]
            ),
            usage(
                day(2025, 6, 1),
                "CONVERSATION",
                "SERVICE",
                "IN",
                [1, 0, 1, 1, 0, 1, 0]
            ),
            usage(
                day(2025, 7, 1),
                "PER_MESSAGE",
                "AUTHENTICATION",
                "IN",
                [1, 1, 0, 0, 0, 0, 114_500]
            ),
            usage(
                day(2025, 7, 1),
                "PER_MESSAGE",
                "MARKETING",
                "IN",
                [1, 1, 0, 0, 0, 0, 1_000_000]
            ),
            // m5 (0.115) and m7 (free).
            usage(
                day(2025, 7, 1),
                "PER_MESSAGE",
                "UTILITY",
                "IN",
                [2, 1, 1, 0, 0, 0, 115_000]
            ),
        ],
        "{name}: months"
    );

    // Half-open at whole seconds: m1 at 10:00:00 is before `from`, m4 at `to` is out.
    let edges = store
        .usage_report(pid, at(2025, 6, 30, 10, 0, 1), july, Granularity::Day)
        .await
        .unwrap();
    assert_eq!(
        edges,
        vec![
            usage(
                day(2025, 6, 30),
                "CONVERSATION",
                "MARKETING",
                "IN",
                [1, 0, 1, 0, 0, 0, 0]
            ),
            usage(
                day(2025, 6, 30),
                "CONVERSATION",
                "SERVICE",
                "IN",
                [1, 0, 1, 1, 0, 1, 0]
            ),
        ],
        "{name}: window edges"
    );

    let (c1, c2) = (id(p, C1), id(p, C2));
    assert_eq!(
        store.campaign_costs(pid, june, august).await.unwrap(),
        // c1: m1 + m2 + m6 (charged and refunded); c2: m5 + m8.
        vec![cost(c1, 2, 1, 785_000), cost(c2, 2, 2, 229_500)],
        "{name}: campaigns, June and July"
    );
    assert_eq!(
        store.campaign_costs(pid, july, august).await.unwrap(),
        // In July c1 only had m6, refunded: it cost nothing and comes last.
        vec![cost(c2, 2, 2, 229_500), cost(c1, 0, 0, 0)],
        "{name}: campaigns, July"
    );

    let statement = store.wallet_statement(pid, july, august).await.unwrap();
    assert_eq!(statement.currency, "INR");
    assert_eq!(
        statement.opening_balance_micros, 9_215_000,
        "{name}: after seq 2"
    );
    // The expiry at 1 August 00:00:00 is the next period's.
    assert_eq!(
        statement.closing_balance_micros, 12_985_500,
        "{name}: after seq 8"
    );
    assert_eq!(
        statement.totals,
        vec![
            total("CHARGE", 4, -1_854_500),
            total("REFUND", 1, 625_000),
            total("TOP_UP", 1, 5_000_000),
        ],
        "{name}: wallet totals"
    );
    let seqs: Vec<i64> = statement.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [3, 4, 5, 6, 7, 8], "{name}: entries by seq");
    let top_up = &statement.entries[1];
    assert_eq!(
        (
            top_up.entry_kind.as_str(),
            top_up.amount_micros,
            top_up.balance_after_micros
        ),
        ("TOP_UP", 5_000_000, 13_215_000)
    );
    assert_eq!(
        (top_up.invoice_id, top_up.message_id, top_up.campaign_id),
        (Some(id(p, INVOICE)), None, None)
    );
    assert_eq!(top_up.at, at(2025, 7, 1, 8, 0, 0));
    assert_eq!(statement.entries[0].message_id, Some(id(p, 4)));
    assert_eq!(
        store
            .wallet_statement(pid, at(2025, 5, 1, 0, 0, 0), june)
            .await
            .unwrap(),
        WalletStatement::default(),
        "{name}: before the first entry"
    );
    let all = store
        .wallet_statement(pid, june, at(2025, 9, 1, 0, 0, 0))
        .await
        .unwrap();
    assert_eq!(
        (all.opening_balance_micros, all.closing_balance_micros),
        (0, 0)
    );
    assert_eq!(
        all.totals,
        vec![
            total("CHARGE", 5, -2_639_500),
            total("EXPIRY", 1, -12_985_500),
            total("REFUND", 1, 625_000),
            total("TOP_UP", 1, 5_000_000),
            total("TRIAL_CREDIT", 1, 10_000_000),
        ],
        "{name}: whole ledger"
    );

    assert_eq!(
        store
            .pricing_reconciliation(pid, june, august)
            .await
            .unwrap(),
        vec![
            // m1, m3, and m4 (by Meta's latest object).
            outcome(Outcome::Match, 3, 1_785_000),
            // m7: the same-second tie goes to the greater event id (MARKETING).
            outcome(Outcome::CategoryDiffers, 1, 0),
            // m5: Meta says free (and another category).
            outcome(Outcome::BillableDiffers, 1, 115_000),
            // m2 and m8. m6 was refunded, so it is not reconciled.
            outcome(Outcome::NotPricedByMeta, 2, 114_500),
        ],
        "{name}: reconciliation"
    );
    let differences = store
        .pricing_differences(pid, june, august, 10)
        .await
        .unwrap();
    let none = PricingDifference {
        message_id: id(p, 2),
        outcome: Outcome::NotPricedByMeta,
        category: "MARKETING".into(),
        billable: false,
        amount_micros: 0,
        currency: "INR".into(),
        meta_category: None,
        meta_model: None,
        meta_billable: None,
        meta_type: None,
    };
    assert_eq!(
        differences,
        vec![
            none.clone(),
            PricingDifference {
                message_id: id(p, 5),
                outcome: Outcome::BillableDiffers,
                category: "UTILITY".into(),
                billable: true,
                amount_micros: 115_000,
                meta_category: Some("MARKETING".into()),
                meta_model: Some("PMP".into()),
                meta_billable: Some(false),
                meta_type: Some("free_customer_service".into()),
                ..none.clone()
            },
            PricingDifference {
                message_id: id(p, 7),
                outcome: Outcome::CategoryDiffers,
                category: "UTILITY".into(),
                meta_category: Some("MARKETING".into()),
                meta_model: Some("PMP".into()),
                meta_type: Some("regular".into()),
                ..none.clone()
            },
            PricingDifference {
                message_id: id(p, 8),
                category: "AUTHENTICATION".into(),
                billable: true,
                amount_micros: 114_500,
                ..none.clone()
            },
        ],
        "{name}: differences"
    );
    assert_eq!(
        store
            .pricing_differences(pid, june, august, 2)
            .await
            .unwrap(),
        differences[..2],
        "{name}: limit"
    );
}

/// Inserts `events` the way a crashing shipper would: whole, again, and overlapping.
async fn insert_with_retries(store: &dyn AnalyticsStore, events: &[Event]) {
    store.insert(events).await.unwrap();
    store.insert(events).await.unwrap();
    let half = events.len() / 2;
    store
        .insert(&events[half / 2..half + half / 2])
        .await
        .unwrap();
}

#[tokio::test]
async fn hand_computed_reports_on_both_stores() {
    let ch = ChDb::new().await;
    let embedded = embedded().await;
    let mut events = hand_set(project(0xA), 0xA);
    events.extend(hand_set(project(0xB), 0xB));
    for store in [&*ch.store as &dyn AnalyticsStore, &embedded] {
        insert_with_retries(store, &events).await;
    }
    assert_hand_figures(&*ch.store, "ClickHouse", 0xA).await;
    assert_hand_figures(&embedded, "embedded", 0xA).await;
    // The other project's figures are its own (the same, with its own ids).
    assert_hand_figures(&*ch.store, "ClickHouse B", 0xB).await;
    assert_hand_figures(&embedded, "embedded B", 0xB).await;
    ch.drop().await;
}

#[tokio::test]
async fn a_report_never_includes_another_projects_rows() {
    let ch = ChDb::new().await;
    let embedded = embedded().await;
    let (a, b) = (project(0xA), project(0xB));
    let mut others = hand_set(b, 0xB);
    others.extend(generated(&[b], 200, 7));
    let (from, to) = (at(2025, 1, 1, 0, 0, 0), at(2026, 1, 1, 0, 0, 0));
    for store in [&*ch.store as &dyn AnalyticsStore, &embedded] {
        store.insert(&others).await.unwrap();
        // Project A has nothing yet: every report is empty.
        for granularity in [Granularity::Day, Granularity::Month] {
            assert!(
                store
                    .usage_report(a, from, to, granularity)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        assert!(store.campaign_costs(a, from, to).await.unwrap().is_empty());
        assert_eq!(
            store.wallet_statement(a, from, to).await.unwrap(),
            WalletStatement::default()
        );
        assert!(
            store
                .pricing_reconciliation(a, from, to)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .pricing_differences(a, from, to, 1000)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !store
                .usage_report(b, from, to, Granularity::Month)
                .await
                .unwrap()
                .is_empty()
        );

        // Then its own rows, which share times, campaigns' roles and categories with B's.
        store.insert(&hand_set(a, 0xA)).await.unwrap();
        let ids_of_a = |id: Uuid| id.as_u128() >> 96 == 0xA;
        let campaigns = store.campaign_costs(a, from, to).await.unwrap();
        assert!(
            campaigns.iter().all(|c| ids_of_a(c.campaign_id)),
            "{campaigns:?}"
        );
        let differences = store.pricing_differences(a, from, to, 1000).await.unwrap();
        assert!(
            differences.iter().all(|d| ids_of_a(d.message_id)),
            "{differences:?}"
        );
        let statement = store.wallet_statement(a, from, to).await.unwrap();
        assert_eq!(statement.entries.len(), 9, "A's ledger alone");
    }
    assert_hand_figures(&*ch.store, "ClickHouse", 0xA).await;
    assert_hand_figures(&embedded, "embedded", 0xA).await;
    ch.drop().await;
}

#[tokio::test]
async fn clickhouse_stores_each_billing_event_once() {
    let ch = ChDb::new().await;
    let pid = project(0xC);
    let mut events = hand_set(pid, 0xC);
    // A batch that holds one event twice, and a project with one event only.
    events.push(events[0].clone());
    events.extend(hand_set(project(0xD), 0xD).into_iter().take(1));
    insert_with_retries(&*ch.store, &events).await;
    // A retry after a partly written attempt: some of the batch is stored, the rest not.
    let more = generated(&[project(0xE)], 50, 3);
    ch.store.insert(&more[..more.len() / 3]).await.unwrap();
    ch.store.insert(&more).await.unwrap();

    let billing_kinds = |e: &&Event| e.kind.starts_with("billing.");
    let mut distinct: Vec<Uuid> = events
        .iter()
        .chain(&more)
        .filter(billing_kinds)
        .map(|e| e.event_id)
        .collect();
    distinct.sort();
    distinct.dedup();
    let (physical, unique): (u64, u64) = ch
        .client()
        .query("SELECT count(), uniqExact(event_id) FROM billing_events")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(unique, distinct.len() as u64);
    assert_eq!(physical, unique, "no copies stored, even before any merge");
    assert_hand_figures(&*ch.store, "ClickHouse", 0xC).await;
    ch.drop().await;
}

/// Every report of `project` over `from..to`, as CSV text: equal text means equal rows
/// (the CSV has every field) and exercises the CSV code on real rows.
async fn all_reports(
    store: &dyn AnalyticsStore,
    project: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<String> {
    let mut out = Vec::new();
    for granularity in [Granularity::Day, Granularity::Month] {
        let rows = store
            .usage_report(project, from, to, granularity)
            .await
            .unwrap();
        out.push(billing_csv::usage_csv(&rows));
    }
    let costs = store.campaign_costs(project, from, to).await.unwrap();
    out.push(billing_csv::campaign_costs_csv(&costs));
    let statement = store.wallet_statement(project, from, to).await.unwrap();
    out.push(billing_csv::wallet_statement_csv(&statement));
    let summary = store
        .pricing_reconciliation(project, from, to)
        .await
        .unwrap();
    out.push(billing_csv::reconciliation_csv(&summary));
    for limit in [7, 100_000] {
        let differences = store
            .pricing_differences(project, from, to, limit)
            .await
            .unwrap();
        out.push(billing_csv::pricing_differences_csv(&differences));
    }
    out
}

#[tokio::test]
async fn clickhouse_and_embedded_reports_are_equal() {
    let ch = ChDb::new().await;
    let embedded = embedded().await;
    let generated_projects = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let mut events = generated(&generated_projects, 600, 2025);
    events.extend(hand_set(project(0xA), 0xA));
    let projects = [
        generated_projects[0],
        generated_projects[1],
        generated_projects[2],
        project(0xA),
    ];
    for store in [&*ch.store as &dyn AnalyticsStore, &embedded] {
        for batch in events.chunks(700) {
            store.insert(batch).await.unwrap();
        }
        // A re-sent batch, and a retry that overlaps two batches.
        store.insert(&events[700..1400]).await.unwrap();
        store.insert(&events[1000..2500]).await.unwrap();
    }

    let windows = [
        (at(2025, 6, 1, 0, 0, 0), at(2025, 8, 1, 0, 0, 0)),
        // Mid-day edges on both sides of 1 July.
        (at(2025, 6, 20, 13, 17, 29), at(2025, 7, 3, 5, 0, 1)),
        (at(2025, 7, 1, 0, 0, 0), at(2025, 7, 2, 0, 0, 0)),
        (at(2025, 6, 30, 23, 59, 59), at(2025, 7, 1, 0, 0, 1)),
        // Nothing in it.
        (at(2026, 1, 1, 0, 0, 0), at(2026, 2, 1, 0, 0, 0)),
    ];
    for (from, to) in windows {
        for project in projects {
            let from_ch = all_reports(&*ch.store, project, from, to).await;
            let from_embedded = all_reports(&embedded, project, from, to).await;
            for (i, (c, e)) in from_ch.iter().zip(&from_embedded).enumerate() {
                assert_eq!(c, e, "report {i} for {project}, {from}..{to}");
            }
        }
    }

    // The data exercises every outcome and real sums, so equality means something.
    let (from, to) = windows[0];
    let summary = embedded
        .pricing_reconciliation(projects[1], from, to)
        .await
        .unwrap();
    let outcomes: Vec<Outcome> = summary.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, Outcome::ALL, "{summary:?}");
    let months = embedded
        .usage_report(projects[1], from, to, Granularity::Month)
        .await
        .unwrap();
    assert!(
        months
            .iter()
            .any(|r| r.model == "CONVERSATION" && r.conversations > 0)
    );
    assert!(
        months
            .iter()
            .any(|r| r.model == "PER_MESSAGE" && r.amount_micros > 0)
    );
    let statement = embedded
        .wallet_statement(projects[1], from, to)
        .await
        .unwrap();
    assert!(statement.totals.iter().any(|t| t.entry_kind == "REFUND"));
    assert_hand_figures(&*ch.store, "ClickHouse", 0xA).await;
    assert_hand_figures(&embedded, "embedded", 0xA).await;
    ch.drop().await;
}

#[tokio::test]
async fn a_retry_remakes_lost_usage_snapshots() {
    let ch = ChDb::new().await;
    let pid = project(0xA);
    let events = hand_set(pid, 0xA);
    ch.store.insert(&events).await.unwrap();
    let snapshots = || async {
        ch.client()
            .query("SELECT count() FROM billing_usage_hourly")
            .fetch_one::<u64>()
            .await
            .unwrap()
    };
    assert!(snapshots().await > 0);
    let (june, august) = (at(2025, 6, 1, 0, 0, 0), at(2025, 8, 1, 0, 0, 0));
    // As if the recomputation after the rows' insert had failed (the insert then fails and
    // the shipper re-sends the batch): rows stored, snapshots not.
    ch.client()
        .query("TRUNCATE TABLE billing_usage_hourly")
        .execute()
        .await
        .unwrap();
    let whole_hours = ch.store.usage_report(pid, june, august, Granularity::Month);
    assert!(
        whole_hours.await.unwrap().is_empty(),
        "whole hours come from the snapshots"
    );
    ch.store.insert(&events).await.unwrap();
    assert_hand_figures(&*ch.store, "ClickHouse", 0xA).await;
    ch.drop().await;
}

#[tokio::test]
async fn usage_snapshots_stay_exact_when_hours_fill_up_over_many_batches() {
    // Eight messages an hour over two days (15-16 June), shipped a few events at a time in
    // reverse order: every hour is recomputed many times, each time with more rows (and a
    // refund may come before its charge). The report must only ever see the latest.
    let ch = ChDb::new().await;
    let embedded = embedded().await;
    let pid = Uuid::new_v4();
    let events = generated_over(&[pid], 400, 99, 2);
    embedded.insert(&events).await.unwrap();
    let reversed: Vec<Event> = events.iter().rev().cloned().collect();
    for batch in reversed.chunks(9) {
        ch.store.insert(batch).await.unwrap();
    }
    for (from, to) in [
        (at(2025, 6, 14, 0, 0, 0), at(2025, 6, 18, 0, 0, 0)),
        (at(2025, 6, 15, 3, 30, 0), at(2025, 6, 16, 20, 0, 0)),
        (at(2025, 6, 15, 7, 0, 0), at(2025, 6, 15, 8, 0, 0)),
    ] {
        for granularity in [Granularity::Day, Granularity::Month] {
            let want = embedded
                .usage_report(pid, from, to, granularity)
                .await
                .unwrap();
            assert!(!want.is_empty());
            let got = ch
                .store
                .usage_report(pid, from, to, granularity)
                .await
                .unwrap();
            assert_eq!(got, want, "{granularity:?} {from}..{to}");
        }
    }
    ch.drop().await;
}
