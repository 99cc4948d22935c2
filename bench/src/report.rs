//! The figures of one run as a Markdown table (stdout) and report (docs/benchmarks.md).

use std::fmt::Write;

use crate::{
    billing_report::BillingFigures,
    chat_report::ChatFigures,
    load::LoadResult,
    pg::PgbenchResult,
    procfs::{CpuUse, Memory, mb},
};

/// The spec's import target is for 1,000,000 rows; smaller runs scale it.
pub const IMPORT_TARGET_S_PER_MILLION: f64 = 30.0;
pub const IMPORT_MEMORY_TARGET_MB: f64 = 300.0;
pub const IMPORT_COPY_RATIO_TARGET: f64 = 0.35;
pub const PAGE_RATIO_TARGET: f64 = 0.50;
pub const EXPORT_TARGET_ROWS_S: f64 = 200_000.0;

#[derive(Default)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub postgres: String,
    /// The settings that matter for bulk loads, e.g. "autovacuum off, shared_buffers 128MB".
    pub postgres_settings: String,
    pub autovacuum: bool,
    pub clickhouse: String,
    pub commit: String,
}

pub struct ImportFigures {
    pub upload_s: f64,
    pub wall_s: f64,
    pub status: String,
    pub total_rows: i64,
    pub processed: i64,
    pub added: i64,
    pub failed: i64,
    pub error: Option<String>,
    pub hwm_after_upload_kb: u64,
    pub hwm_end_kb: u64,
    pub sampled_peak: Memory,
    pub samples: u64,
    pub cpu: CpuUse,
    pub rss_after_kb: u64,
    /// Time after COMPLETED until the analytics outbox was shipped.
    pub outbox_drain_s: Option<f64>,
    /// Share of pg_stat_activity samples in which a backend ran the statement.
    pub statements: Vec<(f64, String)>,
}

pub struct ExportFigures {
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub cpu: CpuUse,
    pub hwm_end_kb: u64,
}

pub struct CopyFigures {
    pub seconds: f64,
    pub rows: u64,
    pub link_rows: u64,
    pub bytes: u64,
    pub cpu: CpuUse,
    pub psql_cpu_s: f64,
}

#[derive(Default)]
pub struct Results {
    pub rows: u64,
    pub seconds: u64,
    pub concurrency: usize,
    pub command: String,
    pub machine: Machine,
    pub idle: Option<Memory>,
    pub csv_bytes: u64,
    pub import: Option<ImportFigures>,
    /// One connection, right after the import, before the tables were analyzed.
    pub page_before_analyze: Option<LoadResult>,
    pub analyze_s: Option<f64>,
    pub page: Option<(LoadResult, CpuUse)>,
    pub pgbench: Option<(PgbenchResult, CpuUse)>,
    pub pgbench_script: String,
    pub export: Option<ExportFigures>,
    pub copy: Option<CopyFigures>,
    pub notes: Vec<String>,
    pub error: Option<String>,
    /// The contacts benchmarks did not run (`--chat-only`, `--billing-only`).
    pub chat_only: bool,
    pub chat: Option<ChatFigures>,
    pub billing: Option<BillingFigures>,
    /// Links of the charts (relative to the report), by section.
    pub charts: std::collections::BTreeMap<&'static str, String>,
}

struct Row {
    bench: String,
    parley: String,
    reference: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

pub(crate) fn thousands(n: f64) -> String {
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

impl Results {
    fn import_target_s(&self) -> f64 {
        IMPORT_TARGET_S_PER_MILLION * self.rows as f64 / 1e6
    }

    fn rows_table(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let copy_rate = self.copy.as_ref().map(|c| c.rows as f64 / c.seconds);
        let target_s = self.import_target_s();
        let scaled = if self.rows == 1_000_000 {
            String::new()
        } else {
            format!(
                " (30 s per 1M rows, scaled to {})",
                thousands(self.rows as f64)
            )
        };
        let reference = self.copy.as_ref().map_or(NOT_MEASURED.to_owned(), |c| {
            format!(
                "COPY {:.1} s ({} rows/s)",
                c.seconds,
                thousands(c.rows as f64 / c.seconds)
            )
        });
        match &self.import {
            Some(i) => {
                let completed = i.status == "COMPLETED";
                let rate = i.processed as f64 / i.wall_s;
                let parley = if completed {
                    format!("{:.1} s ({} rows/s)", i.wall_s, thousands(rate))
                } else {
                    format!(
                        "{} after {:.1} s at {} of {} rows ({} rows/s)",
                        i.status,
                        i.wall_s,
                        thousands(i.processed as f64),
                        thousands(i.total_rows as f64),
                        thousands(rate)
                    )
                };
                let ratio = copy_rate.map(|c| rate / c);
                rows.push(Row {
                    bench: format!(
                        "CSV import, {} rows (startContactImport → COMPLETED)",
                        thousands(self.rows as f64)
                    ),
                    parley,
                    reference: reference.clone(),
                    ratio: ratio.map_or("–".into(), |r| {
                        format!("{:.1}% of COPY's rate", r * 100.0)
                    }),
                    target: format!("≤ {target_s:.0} s{scaled}"),
                    met: Some(completed && i.wall_s <= target_s),
                });
                rows.push(Row {
                    bench: "CSV import rate vs COPY (target of a later issue)".into(),
                    parley: format!("{} rows/s", thousands(rate)),
                    reference: copy_rate
                        .map_or(NOT_MEASURED.into(), |c| format!("{} rows/s", thousands(c))),
                    ratio: ratio.map_or("–".into(), |r| format!("{:.1}%", r * 100.0)),
                    target: format!("≥ {:.0}% of COPY's rate", IMPORT_COPY_RATIO_TARGET * 100.0),
                    met: ratio.map(|r| completed && r >= IMPORT_COPY_RATIO_TARGET),
                });
                let peak = mb(i.hwm_end_kb);
                rows.push(Row {
                    bench: "Server peak memory, upload + import (VmHWM)".into(),
                    parley: format!(
                        "{peak:.0} MB ({:.0} MB after the upload)",
                        mb(i.hwm_after_upload_kb)
                    ),
                    reference: "–".into(),
                    ratio: "–".into(),
                    target: format!("< {IMPORT_MEMORY_TARGET_MB:.0} MB"),
                    met: Some(peak < IMPORT_MEMORY_TARGET_MB),
                });
            }
            None => rows.push(Row {
                bench: format!("CSV import, {} rows", thousands(self.rows as f64)),
                parley: NOT_MEASURED.into(),
                reference,
                ratio: "–".into(),
                target: format!("≤ {target_s:.0} s{scaled}"),
                met: None,
            }),
        }

        let page_name = format!(
            "Contacts page of 50 with tags and attributes, wrk {} connections, {} s",
            self.concurrency, self.seconds
        );
        let pg = self.pgbench.as_ref().map(|(p, _)| p);
        match &self.page {
            Some((l, _)) => {
                let ratio = pg.map(|p| l.rps / p.tps);
                rows.push(Row {
                    bench: format!("{page_name}: throughput"),
                    parley: format!("{} req/s", thousands(l.rps)),
                    reference: pg.map_or(NOT_MEASURED.into(), |p| {
                        format!("pgbench {} tps", thousands(p.tps))
                    }),
                    ratio: ratio.map_or("–".into(), |r| format!("{:.1}%", r * 100.0)),
                    target: format!("≥ {:.0}% of pgbench", PAGE_RATIO_TARGET * 100.0),
                    met: ratio.map(|r| r >= PAGE_RATIO_TARGET && l.errors == 0),
                });
                rows.push(Row {
                    bench: format!("{page_name}: latency p50 / p99"),
                    parley: format!("{:.1} / {:.1} ms", l.p50_ms, l.p99_ms),
                    reference: pg.map_or(NOT_MEASURED.into(), |p| {
                        format!("{:.1} / {:.1} ms", p.p50_ms, p.p99_ms)
                    }),
                    ratio: pg.map_or("–".into(), |p| format!("{:.1}× p50", l.p50_ms / p.p50_ms)),
                    target: "–".into(),
                    met: None,
                });
            }
            None => rows.push(Row {
                bench: page_name,
                parley: NOT_MEASURED.into(),
                reference: pg.map_or(NOT_MEASURED.into(), |p| {
                    format!("pgbench {} tps", thousands(p.tps))
                }),
                ratio: "–".into(),
                target: format!("≥ {:.0}% of pgbench", PAGE_RATIO_TARGET * 100.0),
                met: None,
            }),
        }

        if let Some(l) = &self.page_before_analyze {
            rows.push(Row {
                bench: "Same page right after the import, before ANALYZE, 1 connection".into(),
                parley: format!("{} req/s, p50 {:.1} ms", thousands(l.rps), l.p50_ms),
                reference: "–".into(),
                ratio: "–".into(),
                target: "reported".into(),
                met: None,
            });
        }

        let export_target = format!("≥ {} rows/s", thousands(EXPORT_TARGET_ROWS_S));
        rows.push(match &self.export {
            Some(e) => {
                let rate = e.rows as f64 / e.seconds;
                Row {
                    bench: "Streamed CSV export of all contacts".into(),
                    parley: format!(
                        "{} rows/s ({} rows, {:.0} MB in {:.1} s)",
                        thousands(rate),
                        thousands(e.rows as f64),
                        e.bytes as f64 / 1e6,
                        e.seconds
                    ),
                    reference: "–".into(),
                    ratio: "–".into(),
                    target: export_target,
                    met: Some(rate >= EXPORT_TARGET_ROWS_S && e.rows == self.rows),
                }
            }
            None => Row {
                bench: "Streamed CSV export of all contacts".into(),
                parley: NOT_MEASURED.into(),
                reference: "–".into(),
                ratio: "–".into(),
                target: export_target,
                met: None,
            },
        });
        rows.push(Row {
            bench: "Idle server memory after start-up (VmRSS)".into(),
            parley: self
                .idle
                .map_or(NOT_MEASURED.into(), |m| format!("{:.0} MB", mb(m.rss_kb))),
            reference: "–".into(),
            ratio: "–".into(),
            target: "reported".into(),
            met: None,
        });
        rows
    }

    /// The import's rate over COPY's.
    pub fn import_ratio(&self) -> Option<f64> {
        let i = self.import.as_ref().filter(|i| i.status == "COMPLETED")?;
        let c = self.copy.as_ref()?;
        Some((i.processed as f64 / i.wall_s) / (c.rows as f64 / c.seconds))
    }

    /// The page's rate over pgbench's.
    pub fn page_ratio(&self) -> Option<f64> {
        Some(self.page.as_ref()?.0.rps / self.pgbench.as_ref()?.0.tps)
    }

    /// The contacts rows of the summary table.
    pub fn contacts_summary_rows(&self) -> Vec<crate::summary::Row> {
        let chart = self.charts.get("contacts").cloned();
        self.rows_table()
            .into_iter()
            .filter(|r| r.parley != NOT_MEASURED)
            .map(|r| {
                let ratio = if r.bench.starts_with("CSV import rate") {
                    self.import_ratio()
                } else if r.bench.ends_with(": throughput") {
                    self.page_ratio()
                } else {
                    None
                };
                crate::summary::Row {
                    bench: r.bench,
                    parley: r.parley,
                    reference: r.reference,
                    ratio,
                    ratio_text: if r.ratio == "–" {
                        String::new()
                    } else {
                        r.ratio
                    },
                    target: r.target,
                    met: r.met,
                    chart: chart.clone(),
                }
            })
            .collect()
    }

    /// Import beside COPY, the page beside pgbench (rates and latencies), the export.
    pub fn contacts_chart(&self, report: &std::path::Path) -> Option<String> {
        use crate::charts::{Bar, Panel};
        let mut panels = Vec::new();
        if let (Some(i), Some(c)) = (&self.import, &self.copy) {
            panels.push(Panel::new(
                format!("CSV import of {} rows", thousands(self.rows as f64)),
                "rows per second",
                vec![
                    Bar::parley("Parley's import", i.processed as f64 / i.wall_s),
                    Bar::reference(
                        "PostgreSQL COPY of the same rows",
                        c.rows as f64 / c.seconds,
                    ),
                ],
            ));
        }
        if let (Some((l, _)), Some((p, _))) = (&self.page, &self.pgbench) {
            panels.push(Panel::new(
                format!("Contacts page of 50, {} connections", self.concurrency),
                "requests (transactions) per second",
                vec![
                    Bar::parley("Parley's page (wrk)", l.rps),
                    Bar::reference("pgbench, the same SQL", p.tps),
                ],
            ));
            panels.push(Panel::new(
                "Contacts page latency",
                "milliseconds",
                vec![
                    Bar::parley("Parley p50", l.p50_ms),
                    Bar::reference("pgbench p50", p.p50_ms),
                    Bar::parley("Parley p99", l.p99_ms),
                    Bar::reference("pgbench p99", p.p99_ms),
                ],
            ));
        }
        if let Some(e) = &self.export {
            panels.push(
                Panel::new(
                    "Streamed CSV export",
                    "rows per second",
                    vec![Bar::parley("Parley's export", e.rows as f64 / e.seconds)],
                )
                .target(EXPORT_TARGET_ROWS_S, "target ≥ 200,000/s"),
            );
        }
        if panels.is_empty() {
            return None;
        }
        crate::charts::write(
            report,
            "contacts",
            "Contacts: import, page and export",
            &panels,
        )
    }

    /// The contacts table, then the live-chat one (each when it ran).
    pub fn table(&self) -> String {
        let mut out = String::new();
        if !self.chat_only {
            out.push_str(&self.contacts_table());
        }
        if let Some(chat) = &self.chat {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&chat.table());
        }
        if let Some(billing) = &self.billing {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&billing.table());
        }
        if let Some(e) = &self.error
            && self.chat_only
        {
            let _ = writeln!(out, "\nThe run stopped early: {e}");
        }
        out
    }

    /// The report's live-chat section (empty figures if it did not run).
    pub fn chat_section(&self) -> String {
        let m = &self.machine;
        let chat = self.chat.as_ref();
        let run = format!(
            "Measured {} on {} cores ({}), {:.0} GiB memory, Linux {}, PostgreSQL {}, \
             ClickHouse {}, Redis; server `target/release/parley` at {}{}.{}",
            m.date,
            m.cores,
            m.cpu,
            m.memory_gib,
            m.kernel,
            m.postgres,
            m.clickhouse,
            m.commit,
            chat.map_or(String::new(), |c| format!(
                "; {} subscribers, {} inbound messages per second, {} s measured after a {} s \
                 warm-up",
                thousands(c.subscribers as f64),
                c.rate,
                c.seconds,
                c.warmup_s
            )),
            if self.chat_only {
                " A `--chat-only` run: the rest of this report is from the last full run."
            } else {
                ""
            }
        );
        let command = if self.chat_only {
            self.command.clone()
        } else {
            format!(
                "{}   # or, the live chat alone: scripts/bench --chat-only",
                self.command
            )
        };
        let empty = ChatFigures::default();
        let figures = chat.unwrap_or(&empty);
        let chart = self.charts.get("chat").map(String::as_str);
        let mut section = crate::summary::decorate(
            &figures.section(&run, &command, self.machine.cores),
            &figures.summary_rows(chart),
            chart.map(|c| ("Live chat: latency, bus and memory", c)),
        );
        if chat.is_none() {
            section = section.replace(
                "## Live chat\n",
                "## Live chat\n\nNot measured in this run (`--no-chat`).\n",
            );
        }
        section
    }

    /// The report's billing section (empty if it did not run).
    pub fn billing_section(&self) -> String {
        let Some(billing) = &self.billing else {
            return String::new();
        };
        let m = &self.machine;
        let run = format!(
            "Measured {} on {} cores ({}), {:.0} GiB memory, Linux {}, ClickHouse {}; \
             `target/release/parley-bench` at {}.{}",
            m.date,
            m.cores,
            m.cpu,
            m.memory_gib,
            m.kernel,
            m.clickhouse,
            m.commit,
            if self.chat_only {
                " A partial run: the rest of this report is from earlier runs."
            } else {
                ""
            }
        );
        let command = if self.chat_only {
            self.command.clone()
        } else {
            format!(
                "{}   # or, the billing report alone: scripts/bench --billing-only",
                self.command
            )
        };
        let chart = self.charts.get("billing").map(String::as_str);
        crate::summary::decorate(
            &billing.section(&run, &command, m.cores),
            &billing.summary_rows(chart),
            chart.map(|c| ("Billing usage report", c)),
        )
    }

    fn contacts_table(&self) -> String {
        let mut out = String::from(
            "| benchmark | Parley | reference (same run) | ratio | target | met? |\n\
             | --- | --- | --- | --- | --- | --- |\n",
        );
        for r in self.rows_table() {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {met} |",
                r.bench, r.parley, r.reference, r.ratio, r.target
            );
        }
        out
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "# Benchmarks\n");
        let _ = writeln!(
            out,
            "Written by `scripts/bench` (the `bench/` crate); every run overwrites this file. \
             The server, PostgreSQL, Redis, ClickHouse and the load generator share one \
             machine; every reference figure comes from the same run.\n"
        );
        let _ = writeln!(out, "- **Date:** {}", m.date);
        let _ = writeln!(
            out,
            "- **Machine:** {} cores ({}), {:.0} GiB memory, Linux {}",
            m.cores, m.cpu, m.memory_gib, m.kernel
        );
        let _ = writeln!(
            out,
            "- **Services:** PostgreSQL {} ({}), ClickHouse {}, Redis; server \
             `target/release/parley` at {}",
            m.postgres, m.postgres_settings, m.clickhouse, m.commit
        );
        let _ = writeln!(
            out,
            "- **Run:** {} rows, load tests of {} s with {} concurrent connections\n",
            thousands(self.rows as f64),
            self.seconds,
            self.concurrency
        );
        if let Some(e) = &self.error {
            let _ = writeln!(out, "**The run stopped early:** {}\n", e.replace('\n', " "));
        }
        out.push_str(&crate::summary::comments(&self.contacts_summary_rows()));
        out.push_str("\n## Contacts\n\n");
        out.push_str(&self.contacts_table());
        if let Some(c) = self.charts.get("contacts") {
            let _ = writeln!(out, "\n![Contacts: import, page and export]({c})");
        }
        out.push_str("\n## Reproduce\n\n```sh\n");
        let _ = writeln!(out, "{}", self.command);
        out.push_str(
            "```\n\nOptions: `--rows N` (default 1000000), `--seconds N` (default 10), \
             `--concurrency N` (default 32), `--import-timeout N` (default 600 s). The script \
             starts the services (`scripts/services`), installs pgbench when missing, builds \
             the release server and the bench binary, and bounds its own run time. It creates \
             a fresh PostgreSQL and ClickHouse database, starts the release server on a free \
             loopback port, and drops both databases at the end.\n",
        );
        out.push_str("\n## What was measured\n\n");
        self.details(&mut out);
        let notes: Vec<String> = self
            .notes
            .iter()
            .cloned()
            .chain(self.interference())
            .collect();
        if !notes.is_empty() {
            out.push_str("\n### Notes from this run\n\n");
            for n in &notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out.push('\n');
        out.push_str(&self.chat_section());
        let billing = self.billing_section();
        if !billing.is_empty() {
            out.push('\n');
            out.push_str(&billing);
        }
        out
    }

    /// Phases during which processes outside the benchmark took a noticeable share of
    /// the CPU: their figures are disturbed.
    fn interference(&self) -> Vec<String> {
        let cores = self.machine.cores.max(1) as f64;
        let mut phases: Vec<(&str, &CpuUse)> = Vec::new();
        if let Some(i) = &self.import {
            phases.push(("the import", &i.cpu));
        }
        if let Some((_, c)) = &self.page {
            phases.push(("the page load test (wrk)", c));
        }
        if let Some((_, c)) = &self.pgbench {
            phases.push(("pgbench", c));
        }
        if let Some(e) = &self.export {
            phases.push(("the export", &e.cpu));
        }
        if let Some(c) = &self.copy {
            phases.push(("the COPY reference", &c.cpu));
        }
        phases
            .into_iter()
            .filter_map(|(name, cpu)| {
                let (seconds, names) = cpu.foreign();
                let capacity = cpu.wall_s * cores;
                (capacity > 0.0 && seconds > 0.1 * capacity).then(|| {
                    format!(
                        "**Disturbed:** during {name}, processes outside the benchmark \
                         ({names}) used {seconds:.1} of the {capacity:.1} CPU-seconds available \
                         ({:.0}%); its figures are lower than on a quiet machine.",
                        100.0 * seconds / capacity
                    )
                })
            })
            .collect()
    }

    fn details(&self, out: &mut String) {
        let cores = self.machine.cores;
        let _ = writeln!(
            out,
            "**CSV import.** A generated file of {} rows ({:.1} MB; columns Name, Phone, Tags \
             with two tags separated by ` | `, City, Email, Plan; the last three mapped to \
             custom attributes; phones are unique Indian mobiles, `9` and nine digits) is \
             uploaded with the GraphQL multipart request (`uploadContactImport`), then \
             `startContactImport` runs it; the time is from sending `startContactImport` to \
             the poll (every 100 ms) that sees `COMPLETED`. The server's VmHWM and VmRSS are \
             read from /proc every 50 ms from the upload on.",
            thousands(self.rows as f64),
            self.csv_bytes as f64 / 1e6
        );
        if let Some(i) = &self.import {
            let _ = writeln!(
                out,
                "\n- upload (not in the import time): {:.1} s; server VmHWM after it {:.0} MB",
                i.upload_s,
                mb(i.hwm_after_upload_kb)
            );
            let _ = writeln!(
                out,
                "- import: {} after {:.1} s; {} rows processed, {} added, {} failed{}",
                i.status,
                i.wall_s,
                thousands(i.processed as f64),
                thousands(i.added as f64),
                thousands(i.failed as f64),
                i.error
                    .as_ref()
                    .map(|e| format!("; error: {e}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                out,
                "- server memory: VmHWM {:.0} MB at the end, highest sampled VmRSS {:.0} MB \
                 ({} samples), VmRSS {:.0} MB after the import",
                mb(i.hwm_end_kb),
                mb(i.sampled_peak.rss_kb),
                i.samples,
                mb(i.rss_after_kb)
            );
            let _ = writeln!(out, "- CPU during the import: {}", i.cpu.describe(cores));
            if !i.statements.is_empty() {
                let _ = writeln!(
                    out,
                    "- PostgreSQL during the import (share of pg_stat_activity samples, every \
                     250 ms, in which a backend of the database was running the statement):"
                );
                for (share, q) in &i.statements {
                    let _ = writeln!(out, "  - {:.0}%: `{}…`", share * 100.0, q.replace('`', "'"));
                }
            }
            match i.outbox_drain_s {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "- the analytics outbox (one event per imported contact) was shipped \
                         to ClickHouse {s:.1} s after the import completed; the load tests \
                         start after that"
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "- the analytics outbox was not drained when the load tests started"
                    );
                }
            }
        }
        if let Some(c) = &self.copy {
            let _ = writeln!(
                out,
                "\n**COPY reference.** The same rows, already normalized ({} contacts, {} tag \
                 and attribute links, {:.0} MB of CSV), loaded with three `\\copy … FROM` in one \
                 `psql --single-transaction` session into `bench_contacts`, \
                 `bench_contact_tags` and `bench_contact_attributes`, created `LIKE` the real \
                 tables `INCLUDING ALL` (same columns, primary keys, unique and secondary \
                 indexes; no foreign keys) in a schema of the same database; timed as the psql \
                 process's wall time: {:.1} s. It writes no journey entries (`contact_events`) \
                 and no analytics events, which the import also writes. CPU: {} (psql itself \
                 {:.1} s).",
                thousands(c.rows as f64),
                thousands(c.link_rows as f64),
                c.bytes as f64 / 1e6,
                c.seconds,
                c.cpu.describe(cores),
                c.psql_cpu_s
            );
        }
        let _ = writeln!(
            out,
            "\n**Contacts page.** `{{ contacts(first: 50) {{ edges {{ node {{ id name phone \
             tags {{ name }} attributes {{ key value }} }} }} }} }}` with the owner's \
             `Authorization: Bearer` token and `X-Project-Id`, POSTed by wrk (a C client, as \
             pgbench is, on the same machine): `wrk -t {} -c {} -d {}s --timeout 10s --latency \
             -s contacts-page.lua <url>/graphql`, after a 1 s warm-up run that is not counted; \
             the Lua script sets the body and the headers. One request before the load and \
             one after it are checked (HTTP 200, no `errors`, 50 contacts with 2 tags and 3 \
             attributes each); during the load, the errors are wrk's answers that were not \
             2xx or 3xx and its socket errors.",
            crate::PAGE_THREADS.min(self.concurrency as u32),
            self.concurrency,
            self.seconds
        );
        if let Some(l) = &self.page_before_analyze {
            let _ = writeln!(
                out,
                "\n- Right after the import the tables may lack planner statistics ({}): \
                 from one connection the page then answered {} times in 2 s (p50 {:.1} ms). \
                 The bench then runs `VACUUM (ANALYZE)` on contacts, contact_tags, \
                 contact_attributes, tags and attributes ({}), so that both the load test \
                 and pgbench see the steady state.",
                if self.machine.autovacuum {
                    "autovacuum analyzes them within about a minute"
                } else {
                    "autovacuum is off on this server: only an explicit ANALYZE refreshes them"
                },
                l.requests,
                l.p50_ms,
                self.analyze_s
                    .map_or("not run".to_owned(), |s| format!("{s:.1} s"))
            );
        }
        if let Some((l, cpu)) = &self.page {
            let _ = writeln!(
                out,
                "{}- {} answers, {} errors{}; mean {:.1} ms, max {:.1} ms",
                if self.page_before_analyze.is_some() {
                    ""
                } else {
                    "\n"
                },
                thousands(l.requests as f64),
                l.errors,
                l.first_error
                    .as_ref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default(),
                l.mean_ms,
                l.max_ms
            );
            let _ = writeln!(out, "- CPU: {}", cpu.describe(cores));
        }
        if let Some((p, cpu)) = &self.pgbench {
            let _ = writeln!(
                out,
                "\n**pgbench reference.** The same page's SQL, as the server sends it (the \
                 page, then the tags and the attribute values of its 50 contacts by id in one \
                 statement), \
                 as one transaction of a custom script, same concurrency and duration:\n\n\
                 ```sh\n{}\n```\n\n```sql\n{}```\n\n- {} transactions, {} failed; mean {:.2} ms\n\
                 - CPU: {} (pgbench itself {:.1} s)",
                p.command,
                self.pgbench_script,
                thousands(p.transactions as f64),
                p.failed,
                p.mean_ms,
                cpu.describe(cores),
                p.own_cpu_s
            );
        }
        if let Some(e) = &self.export {
            let _ = writeln!(
                out,
                "\n**Export.** `mutation {{ exportContacts {{ url }} }}`, then a GET of the \
                 link read to the end; the time is that of the GET. {} data rows, {:.0} MB in \
                 {:.1} s. Server VmHWM after it: {:.0} MB. CPU: {}",
                thousands(e.rows as f64),
                e.bytes as f64 / 1e6,
                e.seconds,
                mb(e.hwm_end_kb),
                e.cpu.describe(cores)
            );
        }
        if let Some(m) = self.idle {
            let _ = writeln!(
                out,
                "\n**Idle memory.** VmRSS {:.0} MB (VmHWM {:.0} MB) 2 s after `/healthz` first \
                 answered, before any request.",
                mb(m.rss_kb),
                mb(m.hwm_kb)
            );
        }
    }
}

/// "**Disturbed:** …" when processes outside the benchmark took more than a tenth of the
/// CPU available during a phase (its figures are then lower than on a quiet machine).
pub fn disturbed(phase: &str, cpu: &CpuUse, cores: usize) -> Option<String> {
    let (foreign, names) = cpu.foreign();
    let capacity = cpu.wall_s * cores.max(1) as f64;
    (capacity > 0.0 && foreign > 0.1 * capacity).then(|| {
        format!(
            "**Disturbed:** during {phase}, processes outside the benchmark ({names}) used \
             {foreign:.1} of the {capacity:.1} CPU-seconds available ({:.0}%); its figures are \
             lower than on a quiet machine.",
            100.0 * foreign / capacity
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_get_separators() {
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(12_345.0), "12,345");
    }

    #[test]
    fn an_empty_run_still_renders() {
        let r = Results {
            rows: 100_000,
            seconds: 10,
            concurrency: 32,
            ..Default::default()
        };
        let md = r.markdown();
        assert!(md.contains("not measured"));
        assert!(md.contains("≤ 3 s (30 s per 1M rows, scaled to 100,000)"));
    }
}
