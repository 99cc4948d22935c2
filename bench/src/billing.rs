//! The billing issue's target: "Monthly usage report over 10,000,000 message events in
//! ClickHouse in under 1 second on this machine (2 cores)".
//!
//! In a ClickHouse database of its own, `billing.charged` events of one project over July
//! 2025 (and of ten other projects in the same month) go through
//! `ClickHouseStore::insert`, the shipper's own path (the `events` table, the existence
//! lookup and `billing_events`), in large chronological batches as a backlogged outbox
//! would ship them. Then `usage_report` by month and by day are timed through the store
//! (HTTP, RowBinary decoding and sorting included): one warm-up, then `runs` timed runs.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, TimeZone, Utc};
use parley_analytics::{AnalyticsStore, ClickHouseStore, Event, EventKind, Granularity};
use serde_json::json;
use uuid::Uuid;

use crate::{
    Bench,
    billing_report::{BillingFigures, Timing},
    procfs::{CpuUse, cpu_snapshot},
    report::Results,
};

const CLICKHOUSE_URL: &str = "http://127.0.0.1:8123";
pub const OTHER_PROJECTS: usize = 10;
const CATEGORIES: [&str; 4] = ["MARKETING", "UTILITY", "AUTHENTICATION", "SERVICE"];
const COUNTRIES: [&str; 10] = ["IN", "BR", "ID", "MX", "NG", "GB", "DE", "US", "AE", "ZA"];

pub fn month() -> (DateTime<Utc>, DateTime<Utc>) {
    (
        Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2025, 8, 1, 0, 0, 0).unwrap(),
    )
}

/// xorshift64*: cheap, deterministic, and no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// What the generated events of the measured project add up to, to check the report.
#[derive(Default)]
struct Expected {
    messages: i64,
    amount_micros: i64,
}

/// Events `start..end` of the run's sequence: spread evenly over the month in order (as
/// an outbox ships them), `other` of the `total` spread over the other projects.
fn batch(
    start: u64,
    end: u64,
    total: u64,
    other: u64,
    project: Uuid,
    others: &[Uuid],
    expected: &mut Expected,
) -> Vec<Event> {
    let (from, to) = month();
    let span_ms = (to - from).num_milliseconds() as u64;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ start.wrapping_add(1));
    let mut events = Vec::with_capacity((end - start) as usize);
    for j in start..end {
        // Exactly `other` of the `total` indexes go to another project, evenly spread.
        let is_other = (j + 1) * other / total != j * other / total;
        let r = rng.next();
        let category = CATEGORIES[[0, 0, 0, 0, 0, 1, 1, 1, 2, 3][(r % 10) as usize]];
        let country = COUNTRIES[((r >> 8) % COUNTRIES.len() as u64) as usize];
        let billable = category != "SERVICE" && !(r >> 16).is_multiple_of(10);
        let amount = if billable {
            // A rate per category and country, in micros (e.g. 0.7265).
            100_000 + ((r >> 8) % 10) as i64 * 62_500 + (r % 4) as i64 * 11_500
        } else {
            0
        };
        let campaign = (!(r >> 24).is_multiple_of(3))
            .then(|| Uuid::from_u128(0xCA00 + u128::from((r >> 32) % 20)));
        let project_id = if is_other {
            others[(j % others.len() as u64) as usize]
        } else {
            expected.messages += 1;
            expected.amount_micros += amount;
            project
        };
        let payload = json!({
            "messageId": Uuid::new_v4(),
            "contactId": Uuid::new_v4(),
            "campaignId": campaign,
            "era": "pmp_2025",
            "model": "PER_MESSAGE",
            "category": category,
            "country": country,
            "billable": billable,
            "freeReason": if billable { None } else { Some("customer_service_window") },
            "openedConversation": (r >> 40).is_multiple_of(50),
            "usesFreeTier": false,
            "sign": 1,
            "amountMicros": amount,
            "currency": "INR",
            "amount": "ignored",
        });
        let mut event = Event::new(project_id, EventKind::BILLING_CHARGED, None, payload);
        event.occurred_at = from + chrono::Duration::milliseconds((j * span_ms / total) as i64);
        events.push(event);
    }
    events
}

impl Bench {
    pub(crate) async fn run_billing(&mut self, r: &mut Results) -> anyhow::Result<()> {
        let mut figures = BillingFigures {
            rows: self.args.billing_rows,
            other_rows: self.args.billing_other_rows,
            batch: self.args.billing_batch,
            ..Default::default()
        };
        let outcome = self.billing_phases(&mut figures).await;
        self.drop_billing_database().await;
        if let Err(e) = &outcome {
            figures.error = Some(format!("{e:#}"));
        }
        r.billing = Some(figures);
        outcome
    }

    pub(crate) async fn drop_billing_database(&mut self) {
        if !std::mem::take(&mut self.billing_database_created) {
            return;
        }
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.billing_database);
        let client = clickhouse::Client::default().with_url(CLICKHOUSE_URL);
        match tokio::time::timeout(Duration::from_secs(60), client.query(&sql).execute()).await {
            Ok(Ok(())) => progress!("ClickHouse database {} dropped", self.billing_database),
            Ok(Err(e)) => progress!("could not drop {}: {e}", self.billing_database),
            Err(_) => progress!("dropping {} timed out", self.billing_database),
        }
    }

    async fn billing_phases(&mut self, f: &mut BillingFigures) -> anyhow::Result<()> {
        self.remember("clickhouse_databases", &self.billing_database);
        let store = ClickHouseStore::new(CLICKHOUSE_URL, &self.billing_database, None, None)?
            .with_timeout(Duration::from_secs(300));
        self.billing_database_created = true;
        store.migrate().await.context("ClickHouse migrations")?;
        progress!(
            "billing: {} events of one project and {} of {OTHER_PROJECTS} others through \
             ClickHouseStore::insert, batches of {}",
            f.rows,
            f.other_rows,
            f.batch
        );
        let project = Uuid::new_v4();
        let others: Vec<Uuid> = (0..OTHER_PROJECTS).map(|_| Uuid::new_v4()).collect();
        let expected = self.ingest(&store, project, &others, f).await?;
        self.settle(f).await?;

        let (from, to) = month();
        let cpu_start = cpu_snapshot();
        let reports = [
            (Granularity::Month, &mut f.month, &mut f.month_raw),
            (Granularity::Day, &mut f.day, &mut f.day_raw),
        ];
        for (granularity, timing, raw_timing) in reports {
            let started = Instant::now();
            let rows = store.usage_report(project, from, to, granularity).await?;
            let warmup_ms = started.elapsed().as_secs_f64() * 1e3;
            let messages: i64 = rows.iter().map(|r| r.messages).sum();
            let amount: i64 = rows.iter().map(|r| r.amount_micros).sum();
            if (messages, amount) != (expected.messages, expected.amount_micros) {
                bail!(
                    "{granularity:?} report: {messages} messages, {amount} micros; generated \
                     {} and {}",
                    expected.messages,
                    expected.amount_micros
                );
            }
            let mut runs_ms = Vec::new();
            for _ in 0..self.args.billing_runs {
                let started = Instant::now();
                let again = store.usage_report(project, from, to, granularity).await?;
                runs_ms.push(started.elapsed().as_secs_f64() * 1e3);
                if again != rows {
                    bail!("{granularity:?} report changed between runs");
                }
            }
            let t = Timing::new(rows.len(), warmup_ms, runs_ms);
            progress!(
                "usage_report {granularity:?}: {} rows; warm-up {:.0} ms; median {:.0} ms, max {:.0} ms",
                t.rows,
                t.warmup_ms,
                t.median_ms(),
                t.max_ms()
            );
            *timing = Some(t);
            let raw = self.time_raw(project, granularity, rows.len()).await?;
            progress!(
                "reference GROUP BY over billing_events, {granularity:?}: median {:.0} ms, max {:.0} ms",
                raw.median_ms(),
                raw.max_ms()
            );
            *raw_timing = Some(raw);
        }
        f.query_cpu = CpuUse::between_named(&cpu_start, &cpu_snapshot(), &[]);
        f.checked = Some((expected.messages, expected.amount_micros));
        Ok(())
    }

    /// The reference: the report as one `GROUP BY` over the raw rows, as the store would
    /// compute it without the hourly snapshots (server time; the result is not read).
    async fn time_raw(
        &self,
        project: Uuid,
        granularity: Granularity,
        rows: usize,
    ) -> anyhow::Result<Timing> {
        let client = clickhouse::Client::default()
            .with_url(CLICKHOUSE_URL)
            .with_database(&self.billing_database);
        let period = match granularity {
            Granularity::Day => "toDate(occurred_at)",
            Granularity::Month => "toStartOfMonth(occurred_at)",
        };
        let (from, to) = month();
        let sql = format!(
            "SELECT {period} AS period, model, category, country, currency,
                    toInt64(sum(sign)) AS m, toInt64(sum(sign * billable)),
                    toInt64(sum(sign * opened_conversation)),
                    toInt64(sum(sign * opened_conversation * billable)),
                    toInt64(sum(amount_micros)) AS a
             FROM billing_events
             WHERE project_id = toUUID('{project}')
               AND kind IN ('billing.charged', 'billing.refunded')
               AND occurred_at >= toDateTime({}) AND occurred_at < toDateTime({})
             GROUP BY period, model, category, country, currency
             HAVING m != 0 OR a != 0
             FORMAT Null",
            from.timestamp(),
            to.timestamp()
        );
        let mut runs_ms = Vec::new();
        let mut warmup_ms = 0.0;
        for run in 0..=self.args.billing_runs {
            let started = Instant::now();
            client.query(&sql).execute().await?;
            let ms = started.elapsed().as_secs_f64() * 1e3;
            if run == 0 {
                warmup_ms = ms;
            } else {
                runs_ms.push(ms);
            }
        }
        Ok(Timing::new(rows, warmup_ms, runs_ms))
    }

    /// Generates (on a blocking thread, one batch ahead) and inserts every event.
    async fn ingest(
        &self,
        store: &ClickHouseStore,
        project: Uuid,
        others: &[Uuid],
        f: &mut BillingFigures,
    ) -> anyhow::Result<Expected> {
        let total = f.rows + f.other_rows;
        let (other, step) = (f.other_rows, f.batch as u64);
        let others = others.to_vec();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Event>>(1);
        let generator = tokio::task::spawn_blocking(move || {
            let mut expected = Expected::default();
            let mut start = 0;
            while start < total {
                let end = (start + step).min(total);
                let events = batch(start, end, total, other, project, &others, &mut expected);
                if tx.blocking_send(events).is_err() {
                    break;
                }
                start = end;
            }
            expected
        });
        let cpu_start = cpu_snapshot();
        let started = Instant::now();
        let (mut inserted, mut last_report) = (0u64, Instant::now());
        while let Some(events) = rx.recv().await {
            store.insert(&events).await?;
            inserted += events.len() as u64;
            if last_report.elapsed() >= Duration::from_secs(10) {
                last_report = Instant::now();
                progress!(
                    "billing: {inserted} of {total} events inserted, {:.0} events/s",
                    inserted as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
        f.ingest_s = started.elapsed().as_secs_f64();
        f.ingest_cpu = CpuUse::between_named(&cpu_start, &cpu_snapshot(), &[]);
        let expected = generator.await?;
        if inserted != total {
            bail!("inserted {inserted} events, not {total}");
        }
        progress!(
            "billing: {total} events in {:.1} s ({:.0} events/s); CPU: {}",
            f.ingest_s,
            total as f64 / f.ingest_s,
            f.ingest_cpu.describe(self.cores)
        );
        Ok(expected)
    }

    /// Waits (at most 5 minutes) for the background merges of the inserts to finish, so the
    /// timed queries do not share the cores with them, and records the table's shape.
    async fn settle(&self, f: &mut BillingFigures) -> anyhow::Result<()> {
        let client = clickhouse::Client::default()
            .with_url(CLICKHOUSE_URL)
            .with_validation(false);
        let db = &self.billing_database;
        let started = Instant::now();
        let mut quiet_since: Option<Instant> = None;
        while started.elapsed() < Duration::from_secs(300) {
            let merges: u64 = client
                .query("SELECT count() FROM system.merges WHERE database = ?")
                .bind(db.as_str())
                .fetch_one()
                .await?;
            if merges > 0 {
                quiet_since = None;
            } else if quiet_since.get_or_insert_with(Instant::now).elapsed()
                >= Duration::from_secs(3)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        f.settle_s = started.elapsed().as_secs_f64();
        let (rows, parts, bytes): (u64, u64, u64) = client
            .query(
                "SELECT sum(rows), count(), sum(bytes_on_disk) FROM system.parts \
                 WHERE database = ? AND table = 'billing_events' AND active",
            )
            .bind(db.as_str())
            .fetch_one()
            .await?;
        if rows != f.rows + f.other_rows {
            bail!(
                "billing_events holds {rows} rows, not {}",
                f.rows + f.other_rows
            );
        }
        (f.stored_rows, f.parts, f.bytes) = (rows, parts, bytes);
        progress!(
            "billing: merges settled after {:.1} s; billing_events: {rows} rows in {parts} parts, {:.0} MB",
            f.settle_s,
            bytes as f64 / 1e6
        );
        Ok(())
    }
}
