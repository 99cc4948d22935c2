//! The billing figures as a table (stdout) and as their own section of the report, between
//! markers, so that a `--billing-only` run replaces just that section.

use std::fmt::Write;

use crate::{billing::OTHER_PROJECTS, procfs::CpuUse};

/// The billing issue: the monthly usage report over 10,000,000 events in under 1 s.
pub const MONTH_TARGET_MS: f64 = 1_000.0;

pub const BEGIN: &str =
    "<!-- billing:begin (written by scripts/bench; --billing-only replaces this section) -->";
pub const END: &str = "<!-- billing:end -->";

/// Timed runs of one report.
#[derive(Default)]
pub struct Timing {
    /// Rows the report returned.
    pub rows: usize,
    pub warmup_ms: f64,
    /// Sorted.
    pub runs_ms: Vec<f64>,
}

impl Timing {
    pub fn new(rows: usize, warmup_ms: f64, mut runs_ms: Vec<f64>) -> Self {
        runs_ms.sort_by(f64::total_cmp);
        Self {
            rows,
            warmup_ms,
            runs_ms,
        }
    }

    pub fn median_ms(&self) -> f64 {
        let n = self.runs_ms.len();
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => self.runs_ms[n / 2],
            _ => (self.runs_ms[n / 2 - 1] + self.runs_ms[n / 2]) / 2.0,
        }
    }

    pub fn max_ms(&self) -> f64 {
        self.runs_ms.last().copied().unwrap_or(f64::NAN)
    }
}

#[derive(Default)]
pub struct BillingFigures {
    pub rows: u64,
    pub other_rows: u64,
    pub batch: usize,
    pub ingest_s: f64,
    pub ingest_cpu: CpuUse,
    /// Waiting for background merges before timing.
    pub settle_s: f64,
    pub stored_rows: u64,
    pub parts: u64,
    pub bytes: u64,
    pub month: Option<Timing>,
    pub day: Option<Timing>,
    /// The same reports by a plain `GROUP BY` over `billing_events` (no snapshots), for
    /// comparison.
    pub month_raw: Option<Timing>,
    pub day_raw: Option<Timing>,
    /// The machine's CPU from the first report to the last reference run.
    pub query_cpu: CpuUse,
    /// The report's totals equalled the generated ones: (messages, amount in micros).
    pub checked: Option<(i64, i64)>,
    pub error: Option<String>,
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const NOT_MEASURED: &str = "not measured";

impl BillingFigures {
    fn total(&self) -> u64 {
        self.rows + self.other_rows
    }

    /// (benchmark, figure, target, met)
    fn rows_table(&self) -> Vec<(String, String, String, Option<bool>)> {
        let events = format!(
            "{} message events of one project in July 2025 (+{} of {OTHER_PROJECTS} other \
             projects)",
            thousands(self.rows as f64),
            thousands(self.other_rows as f64)
        );
        let timing = |t: &Option<Timing>| {
            t.as_ref().map_or(NOT_MEASURED.to_owned(), |t| {
                format!(
                    "{:.0} / {:.0} ms ({} rows)",
                    t.median_ms(),
                    t.max_ms(),
                    thousands(t.rows as f64)
                )
            })
        };
        let runs = self.month.as_ref().map_or(0, |t| t.runs_ms.len());
        let mut rows = vec![
            (
                format!("Monthly usage report, {events}: median / max of {runs} runs"),
                timing(&self.month),
                "< 1 s".to_owned(),
                self.month.as_ref().map(|t| t.max_ms() < MONTH_TARGET_MS),
            ),
            (
                "Daily usage report, same events and month: median / max".to_owned(),
                timing(&self.day),
                "reported".to_owned(),
                None,
            ),
            (
                "Reference: the monthly report as one `GROUP BY` over the raw `billing_events` \
                 rows (no hourly snapshots): median / max"
                    .to_owned(),
                timing(&self.month_raw),
                "reported".to_owned(),
                None,
            ),
            (
                "Reference: the daily report the same way".to_owned(),
                timing(&self.day_raw),
                "reported".to_owned(),
                None,
            ),
            (
                format!(
                    "Ingest through `ClickHouseStore::insert` ({} events, batches of {}; \
                     `events`, `billing_events` and the hourly snapshots)",
                    thousands(self.total() as f64),
                    thousands(self.batch as f64)
                ),
                if self.ingest_s > 0.0 {
                    format!(
                        "{:.1} s ({} events/s)",
                        self.ingest_s,
                        thousands(self.total() as f64 / self.ingest_s)
                    )
                } else {
                    NOT_MEASURED.to_owned()
                },
                "reported".to_owned(),
                None,
            ),
        ];
        rows.push((
            "Report totals equal the generated events (messages, amount)".to_owned(),
            self.checked.map_or(NOT_MEASURED.to_owned(), |(m, a)| {
                format!(
                    "{} messages, {} micros",
                    thousands(m as f64),
                    thousands(a as f64)
                )
            }),
            "exact".to_owned(),
            Some(self.checked.is_some()),
        ));
        rows
    }

    /// The summary table's rows: the monthly report beside the raw `GROUP BY` (the ratio
    /// is the reference's time over the report's), and the other rows as they are.
    pub fn summary_rows(&self, chart: Option<&str>) -> Vec<crate::summary::Row> {
        let chart = chart.map(str::to_owned);
        let mut out = Vec::new();
        let runs = self.month.as_ref().map_or(0, |t| t.runs_ms.len());
        if let Some(month) = &self.month {
            let ratio = self
                .month_raw
                .as_ref()
                .map(|raw| raw.median_ms() / month.median_ms());
            out.push(crate::summary::Row {
                bench: format!(
                    "Billing: monthly usage report over {} events in ClickHouse, median / max of {runs} runs",
                    thousands(self.rows as f64)
                ),
                parley: format!("{:.0} / {:.0} ms", month.median_ms(), month.max_ms()),
                reference: self.month_raw.as_ref().map_or(NOT_MEASURED.into(), |raw| {
                    format!(
                        "`GROUP BY` over the raw rows {:.0} / {:.0} ms",
                        raw.median_ms(),
                        raw.max_ms()
                    )
                }),
                ratio,
                ratio_text: ratio.map_or(String::new(), |r| format!("{r:.1}× faster")),
                target: "< 1 s".into(),
                met: Some(month.max_ms() < MONTH_TARGET_MS),
                chart: chart.clone(),
            });
        }
        if self.ingest_s > 0.0 {
            out.push(crate::summary::Row {
                bench: "Billing: ingest through `ClickHouseStore::insert`".into(),
                parley: format!(
                    "{} events/s",
                    thousands(self.total() as f64 / self.ingest_s)
                ),
                reference: "–".into(),
                target: "reported".into(),
                chart,
                ..Default::default()
            });
        }
        out
    }

    pub fn chart(&self, report: &std::path::Path) -> Option<String> {
        use crate::charts::{Bar, Panel};
        let month = self.month.as_ref()?;
        let mut bars = vec![Bar::parley("monthly report (snapshots)", month.median_ms())];
        if let Some(raw) = &self.month_raw {
            bars.push(Bar::reference(
                "monthly GROUP BY over raw rows",
                raw.median_ms(),
            ));
        }
        if let Some(day) = &self.day {
            bars.push(Bar::parley("daily report (snapshots)", day.median_ms()));
        }
        if let Some(raw) = &self.day_raw {
            bars.push(Bar::reference(
                "daily GROUP BY over raw rows",
                raw.median_ms(),
            ));
        }
        crate::charts::write(
            report,
            "billing",
            "Billing usage report over 10,000,000 events in ClickHouse: median of the timed runs",
            &[
                Panel::new("Report time (lower is better)", "milliseconds", bars)
                    .target(MONTH_TARGET_MS, "target < 1 s"),
            ],
        )
    }

    pub fn table(&self) -> String {
        let mut out =
            String::from("| benchmark | Parley | target | met? |\n| --- | --- | --- | --- |\n");
        for (bench, figure, target, met) in self.rows_table() {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(out, "| {bench} | {figure} | {target} | {met} |");
        }
        out
    }

    /// The report's billing section, markers included. `run` says when and where.
    pub fn section(&self, run: &str, command: &str, cores: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN}\n\n## Billing usage report\n\n{run}\n");
        if let Some(e) = &self.error {
            let _ = writeln!(
                out,
                "**The billing run stopped early:** {}\n",
                e.replace('\n', " ")
            );
        }
        out.push_str(&self.table());
        let _ = writeln!(out, "\n### Reproduce\n\n```sh\n{command}\n```\n");
        out.push_str(
            "Options: `--billing-only` (this section alone; the rest of the report is kept), \
             `--no-billing`, `--billing-rows N` (default 10000000), `--billing-other-rows N` \
             (default 1000000), `--billing-batch N` (default 100000), `--billing-runs N` \
             (default 5).\n\n### What was measured\n\n",
        );
        let _ = writeln!(
            out,
            "A fresh ClickHouse database (dropped at the end) is migrated by \
             `ClickHouseStore::migrate`. The bench generates `billing.charged` events as the API \
             records them (JSON payload: per-message pricing, four categories, ten countries, \
             90% billable except service, two thirds with a campaign), evenly spread over July \
             2025 in time order, one project's interleaved with {OTHER_PROJECTS} other projects' \
             as one outbox would hold them, and inserts them with `ClickHouseStore::insert` in \
             batches: the shipper's own path, which writes every event to `events` (with its \
             JSON), looks up which of the batch's ids `billing_events` already holds, writes \
             the typed rows to `billing_events`, and recomputes the hourly snapshots \
             (`billing_usage_hourly`) of the hours the batch touched. Generation runs one batch \
             ahead on another thread and is included in the ingest time. The bench then waits \
             until ClickHouse has no merge running (3 s in a row), runs each report once as a \
             warm-up, checks its totals against the generated events, and times the runs \
             through `AnalyticsStore::usage_report` (the HTTP request, the query, RowBinary \
             decoding and sorting), one after the other. The report reads the month's whole \
             hours from the snapshots (the latest of each hour, `argMax` by version: no FINAL) \
             and would read partial hours at the window's edges from `billing_events`; the \
             reference rows time the plain `GROUP BY` over the month's raw rows that the \
             snapshots replace (`FORMAT Null`, one warm-up, same number of runs). The machine \
             has {cores} cores shared by ClickHouse and the bench."
        );
        let _ = writeln!(out);
        if self.ingest_s > 0.0 {
            let _ = writeln!(
                out,
                "- ingest: {} events in {:.1} s; CPU: {}",
                thousands(self.total() as f64),
                self.ingest_s,
                self.ingest_cpu.describe(cores)
            );
        }
        if self.stored_rows > 0 {
            let _ = writeln!(
                out,
                "- `billing_events` after the merges (waited {:.1} s): {} rows in {} parts, \
                 {:.0} MB on disk",
                self.settle_s,
                thousands(self.stored_rows as f64),
                self.parts,
                self.bytes as f64 / 1e6
            );
        }
        let timings = [
            ("monthly report", &self.month),
            ("daily report", &self.day),
            ("reference, monthly", &self.month_raw),
            ("reference, daily", &self.day_raw),
        ];
        for (name, t) in timings {
            let Some(t) = t else { continue };
            let runs: Vec<String> = t.runs_ms.iter().map(|ms| format!("{ms:.0}")).collect();
            let _ = writeln!(
                out,
                "- {name}: {} rows; warm-up {:.0} ms; runs (sorted) {} ms",
                thousands(t.rows as f64),
                t.warmup_ms,
                runs.join(", "),
            );
        }
        if self.query_cpu.wall_s > 0.0 {
            let _ = writeln!(
                out,
                "- CPU from the first report to the last reference run: {}",
                self.query_cpu.describe(cores)
            );
        }
        for (phase, cpu) in [
            ("the ingest", &self.ingest_cpu),
            ("the timed runs", &self.query_cpu),
        ] {
            let (foreign, names) = cpu.foreign();
            let capacity = cpu.wall_s * cores as f64;
            if capacity > 0.0 && foreign > 0.1 * capacity {
                let _ = writeln!(
                    out,
                    "- **Disturbed:** during {phase}, processes outside the benchmark ({names}) \
                     used {foreign:.1} of the {capacity:.1} CPU-seconds available ({:.0}%); its \
                     figures are slower than on a quiet machine.",
                    100.0 * foreign / capacity
                );
            }
        }
        let _ = writeln!(out, "\n{END}");
        out
    }
}

/// `existing` with its billing section replaced by `section` (appended when it has none).
#[cfg(test)]
pub fn splice(existing: Option<&str>, section: &str) -> String {
    crate::sections::splice(existing, BEGIN, END, section)
}

#[cfg(test)]
pub fn extract(report: &str) -> Option<&str> {
    crate::sections::extract(report, BEGIN, END)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_needs_every_run_under_a_second() {
        let mut f = BillingFigures {
            rows: 10_000_000,
            other_rows: 1_000_000,
            batch: 100_000,
            ingest_s: 100.0,
            month: Some(Timing::new(
                40,
                900.0,
                vec![420.0, 400.0, 990.0, 410.0, 405.0],
            )),
            checked: Some((10_000_000, 1)),
            ..Default::default()
        };
        let table = f.table();
        assert!(
            table.contains("| 410 / 990 ms (40 rows) | < 1 s | yes |"),
            "{table}"
        );
        assert!(
            table.contains("| 100.0 s (110,000 events/s) | reported |"),
            "{table}"
        );
        f.month = Some(Timing::new(40, 0.0, vec![400.0, 1_002.0]));
        assert!(
            f.table()
                .contains("| 701 / 1002 ms (40 rows) | < 1 s | **no** |")
        );
    }

    #[test]
    fn a_billing_only_run_replaces_just_its_section() {
        let f = BillingFigures {
            error: Some("boom".into()),
            ..Default::default()
        };
        let section = f.section("run", "scripts/bench --billing-only", 2);
        assert!(section.starts_with(BEGIN) && section.trim_end().ends_with(END));
        assert!(section.contains("not measured") && section.contains("boom"));
        let old = format!("# Benchmarks\n\nA\n\n{BEGIN}\nold\n{END}\n\nB\n");
        assert_eq!(
            splice(Some(&old), &section),
            format!("# Benchmarks\n\nA\n\n{section}\nB\n")
        );
        assert_eq!(extract(&old), Some(format!("{BEGIN}\nold\n{END}").as_str()));
    }
}
