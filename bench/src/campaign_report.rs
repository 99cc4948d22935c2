//! The campaign figures as a table (stdout) and as their own section of the report,
//! between markers, so that a `--campaign-only` run replaces just that section.

use std::fmt::Write;

use crate::{procfs::CpuUse, report::Machine};

/// Issue 7: the dispatcher with the throughput limit lifted, against a local fake Graph API.
pub const THROUGHPUT_TARGET: f64 = 2_000.0;
/// Issue 7: at a set limit, the rate stays within this share of it.
pub const PACED_TOLERANCE: f64 = 0.05;
/// Issue 7: the audience snapshot of 1,000,000 contacts when a campaign starts.
pub const SNAPSHOT_TARGET_S: f64 = 10.0;

pub const BEGIN: &str =
    "<!-- campaigns:begin (written by scripts/bench; --campaign-only replaces this section) -->";
pub const END: &str = "<!-- campaigns:end -->";

/// One broadcast sent to the end.
#[derive(Default)]
pub struct SendRun {
    /// The number's throughput in force (messages per second).
    pub limit: u32,
    /// Contacts in the project (all reachable, all in the audience).
    pub contacts: u64,
    /// `recipientsCount` of the created broadcast.
    pub recipients: u64,
    /// `createBroadcast` (snapshot included) answered after this long.
    pub create_s: f64,
    /// The first and last send the fake received, seconds after `createBroadcast` was sent.
    pub first_send_s: f64,
    pub last_send_s: f64,
    /// Seen `COMPLETED` (polled every 200 ms), seconds after `createBroadcast` was sent.
    pub completed_s: f64,
    /// Sends the fake received, distinct recipients, and sends beyond the first to one.
    pub sends: u64,
    pub distinct: usize,
    pub duplicates: u64,
    /// Sends per whole second from the first send (the last, partial second left out).
    pub per_second: Vec<u64>,
    /// `campaign.counts` at the end: sent, failed, skipped, interrupted, queued.
    pub counts: [i64; 5],
    pub cpu: CpuUse,
    /// The server's VmHWM at the end, in kB.
    pub server_hwm_kb: u64,
}

impl SendRun {
    /// From the first send to the last: (sends − 1) / span.
    pub fn rate(&self) -> f64 {
        let span = self.last_send_s - self.first_send_s;
        if self.sends < 2 || span <= 0.0 {
            return 0.0;
        }
        (self.sends - 1) as f64 / span
    }

    fn sorted_seconds(&self) -> Vec<u64> {
        let mut s = self.per_second.clone();
        s.sort_unstable();
        s
    }

    /// (min, median, max) of the whole seconds.
    pub fn seconds_spread(&self) -> Option<(u64, u64, u64)> {
        let s = self.sorted_seconds();
        Some((*s.first()?, s[s.len() / 2], *s.last()?))
    }

    pub fn complete(&self) -> bool {
        self.counts[0] == self.recipients as i64
            && self.sends == self.recipients
            && self.duplicates == 0
            && self.distinct as u64 == self.recipients
    }
}

#[derive(Default)]
pub struct SnapshotRun {
    pub contacts: u64,
    /// Opted out: written as skipped.
    pub opted_out: u64,
    pub recipients: u64,
    /// `createBroadcast` with `sendNow: true` answered after this long (checks, audience
    /// count, snapshot, commit).
    pub create_s: f64,
    /// The rows the snapshot wrote (queued, skipped), counted afterwards in PostgreSQL.
    pub queued: u64,
    pub skipped: u64,
    pub cpu: CpuUse,
    pub cancel_s: f64,
}

#[derive(Default)]
pub struct CampaignFigures {
    pub graph_delay_ms: u64,
    /// The lifted run, and how the limit was lifted.
    pub lifted: Option<SendRun>,
    pub lifted_how: String,
    pub paced: Option<SendRun>,
    pub paced_seconds: u64,
    pub snapshot: Option<SnapshotRun>,
    /// Loading the contacts (COPY), for the record.
    pub load_notes: Vec<String>,
    pub notes: Vec<String>,
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

impl CampaignFigures {
    /// (benchmark, figure, target, met)
    fn rows(&self) -> Vec<(String, String, String, Option<bool>)> {
        let mut rows = Vec::new();
        let lifted = self.lifted.as_ref();
        rows.push((
            format!(
                "Broadcast to {} recipients, throughput limit lifted ({}): sends per second, \
                 first to last send",
                lifted.map_or("100,000".to_owned(), |r| thousands(r.recipients as f64)),
                lifted.map_or("–".to_owned(), |r| format!(
                    "{}/s",
                    thousands(f64::from(r.limit))
                ))
            ),
            lifted.map_or(NOT_MEASURED.to_owned(), |r| {
                let spread = r.seconds_spread().map_or(String::new(), |(lo, med, hi)| {
                    format!("; seconds min / median / max {lo} / {med} / {hi}")
                });
                format!(
                    "{}/s ({} sends in {:.1} s{spread})",
                    thousands(r.rate()),
                    thousands(r.sends as f64),
                    r.last_send_s - r.first_send_s
                )
            }),
            format!("≥ {}/s", thousands(THROUGHPUT_TARGET)),
            lifted.map(|r| r.rate() >= THROUGHPUT_TARGET && r.complete()),
        ));
        rows.push((
            "Same broadcast: `createBroadcast` → `COMPLETED`".to_owned(),
            lifted.map_or(NOT_MEASURED.to_owned(), |r| {
                format!(
                    "{:.1} s (answer {:.2} s, first send at {:.2} s)",
                    r.completed_s, r.create_s, r.first_send_s
                )
            }),
            "reported".to_owned(),
            None,
        ));
        let paced = self.paced.as_ref();
        rows.push((
            format!(
                "Broadcast at a limit of {}/s, ~{} s: sends per second, first to last send",
                paced.map_or(80, |r| r.limit),
                self.paced_seconds
            ),
            paced.map_or(NOT_MEASURED.to_owned(), |r| {
                let spread = r.seconds_spread().map_or(String::new(), |(lo, med, hi)| {
                    format!("; seconds min / median / max {lo} / {med} / {hi}")
                });
                format!(
                    "{:.1}/s, {:+.1}% ({} sends in {:.1} s{spread})",
                    r.rate(),
                    100.0 * (r.rate() / f64::from(r.limit) - 1.0),
                    thousands(r.sends as f64),
                    r.last_send_s - r.first_send_s
                )
            }),
            "within 5%".to_owned(),
            paced.map(|r| {
                (r.rate() / f64::from(r.limit) - 1.0).abs() <= PACED_TOLERANCE && r.complete()
            }),
        ));
        let snapshot = self.snapshot.as_ref();
        rows.push((
            format!(
                "Campaign start: `createBroadcast` (`sendNow`, audience everyone) over {} \
                 contacts, snapshot included",
                snapshot.map_or("1,000,000".to_owned(), |s| thousands(s.contacts as f64))
            ),
            snapshot.map_or(NOT_MEASURED.to_owned(), |s| {
                format!(
                    "{:.2} s ({} queued, {} skipped)",
                    s.create_s,
                    thousands(s.queued as f64),
                    thousands(s.skipped as f64)
                )
            }),
            format!("< {SNAPSHOT_TARGET_S:.0} s"),
            snapshot.map(|s| s.create_s < SNAPSHOT_TARGET_S && s.queued + s.skipped == s.contacts),
        ));
        rows.push((
            "Every recipient sent exactly once (fake's sends = distinct recipients = `sent`)"
                .to_owned(),
            match (lifted, paced) {
                (None, None) => NOT_MEASURED.to_owned(),
                _ => [lifted, paced]
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        format!(
                            "{} sends, {} recipients, {} duplicates, sent {}, failed {}",
                            thousands(r.sends as f64),
                            thousands(r.distinct as f64),
                            r.duplicates,
                            thousands(r.counts[0] as f64),
                            r.counts[1]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            "exact".to_owned(),
            match (lifted, paced) {
                (None, None) => None,
                _ => Some([lifted, paced].into_iter().flatten().all(SendRun::complete)),
            },
        ));
        rows
    }

    /// The summary table's rows (no reference: the fake Graph API answers at once).
    pub fn summary_rows(&self, chart: Option<&str>) -> Vec<crate::summary::Row> {
        self.rows()
            .into_iter()
            .filter(|(_, figure, _, _)| figure != NOT_MEASURED)
            .map(|(bench, parley, target, met)| crate::summary::Row {
                bench: format!("Campaigns: {bench}"),
                parley,
                reference: "–".into(),
                target,
                met,
                chart: chart.map(str::to_owned),
                ..Default::default()
            })
            .collect()
    }

    pub fn chart(&self, report: &std::path::Path) -> Option<String> {
        use crate::charts::{Bar, Panel};
        let mut panels = Vec::new();
        if let Some(r) = &self.lifted {
            panels.push(
                Panel::new(
                    format!(
                        "Broadcast, limit lifted to {}/s",
                        thousands(f64::from(r.limit))
                    ),
                    "sends per second",
                    vec![Bar::parley("sends/s, first to last send", r.rate())],
                )
                .target(THROUGHPUT_TARGET, "target ≥ 2,000/s"),
            );
        }
        if let Some(r) = &self.paced {
            panels.push(Panel::new(
                format!("Broadcast at a limit of {}/s", r.limit),
                "sends per second",
                vec![
                    Bar::parley("sends/s, first to last send", r.rate()),
                    Bar::reference("the limit", f64::from(r.limit)),
                ],
            ));
        }
        if let Some(s) = &self.snapshot {
            panels.push(
                Panel::new(
                    format!(
                        "Campaign start over {} contacts",
                        thousands(s.contacts as f64)
                    ),
                    "seconds",
                    vec![Bar::parley(
                        "createBroadcast, snapshot included",
                        s.create_s,
                    )],
                )
                .target(SNAPSHOT_TARGET_S, "target < 10 s"),
            );
        }
        if panels.is_empty() {
            return None;
        }
        crate::charts::write(
            report,
            "campaigns",
            "Campaign dispatch (fake Graph API)",
            &panels,
        )
    }

    pub fn table(&self) -> String {
        let mut out =
            String::from("| benchmark | Parley | target | met? |\n| --- | --- | --- | --- |\n");
        for (bench, figure, target, met) in self.rows() {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(out, "| {bench} | {figure} | {target} | {met} |");
        }
        out
    }

    /// The report's campaigns section, markers included.
    pub fn section(&self, machine: &Machine, command: &str, partial: bool) -> String {
        let m = machine;
        let cores = m.cores;
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN}\n\n## Campaigns\n");
        let _ = writeln!(
            out,
            "Measured {} on {} cores ({}), {:.0} GiB memory, Linux {}, PostgreSQL {} ({}), \
             ClickHouse {}, Redis; server `target/release/parley` at {}.{}\n",
            m.date,
            m.cores,
            m.cpu,
            m.memory_gib,
            m.kernel,
            m.postgres,
            m.postgres_settings,
            m.clickhouse,
            m.commit,
            if partial {
                " A partial run: the rest of this report is from earlier runs."
            } else {
                ""
            }
        );
        if let Some(e) = &self.error {
            let _ = writeln!(
                out,
                "**The campaign run stopped early:** {}\n",
                e.replace('\n', " ")
            );
        }
        out.push_str(&self.table());
        let _ = writeln!(out, "\n### Reproduce\n\n```sh\n{command}\n```\n");
        out.push_str(
            "Options: `--campaign-only` (this section alone; the rest of the report is kept), \
             `--no-campaign`, `--campaign-recipients N` (the lifted broadcast, default 100000; \
             0 skips it), `--campaign-lifted N` (its throughput, default 10000/s), \
             `--campaign-rate N` and `--campaign-seconds N` (the paced broadcast, default 80/s \
             for 30 s; 0 seconds skips it), `--campaign-snapshot N` (contacts of the snapshot, \
             default 1000000; 0 skips it), `--campaign-graph-delay-ms N` (the fake Graph API's \
             answer time, default 0), `--campaign-timeout N` (seconds a broadcast may take, \
             default 600).\n\n### What was measured\n\n",
        );
        let _ = writeln!(
            out,
            "The bench starts the release server (`DATABASE_MAX_CONNECTIONS` at its default, \
             20) against PostgreSQL, Redis, ClickHouse and a minimal fake Graph API of its own \
             (`WHATSAPP_GRAPH_URL`; an axum server in the bench process that answers each \
             `POST /{{version}}/{{phone_number_id}}/messages` at once{} with a new `wamid`, \
             serves the template list, and records when each send arrived and to whom). Three \
             projects are signed up, each connects a number (`connectWhatsapp`), sets its \
             limits (`setSendingLimits`, messaging limit null), syncs the approved marketing \
             template `bench_offer` from the fake (`syncTemplates`; two body parameters, \
             `$FirstName` and the `City` attribute, with fallbacks) and tops its wallet up \
             (`topUpWallet` + `recordPayment` as the owner). Their contacts (Indian mobiles, \
             opted in) and each one's `City` attribute are loaded straight into PostgreSQL \
             with `\\copy` into `contacts` and `contact_attributes`, then `VACUUM (ANALYZE)` \
             (autovacuum is off on this server) and a `CHECKPOINT`, and the bench waits for \
             the analytics outbox to be shipped before each measurement. A broadcast is \
             `createBroadcast` with `sendNow: true` and the audience filter `{{}}` \
             (everyone); the bench polls `campaign {{ status }}` every 200 ms until \
             `COMPLETED` and counts the fake's sends; at the end it checks `campaign.counts`, \
             the number of sends and that no recipient got two.",
            if self.graph_delay_ms > 0 {
                format!(" (after {} ms)", self.graph_delay_ms)
            } else {
                String::new()
            }
        );
        let _ = writeln!(out);
        if !self.lifted_how.is_empty() {
            let _ = writeln!(out, "- **Lifting the limit:** {}", self.lifted_how);
        }
        for (name, run) in [("lifted", &self.lifted), ("paced", &self.paced)] {
            let Some(r) = run else { continue };
            let _ = writeln!(
                out,
                "- {name} broadcast at {}/s: {} contacts, {} recipients; `createBroadcast` \
                 answered in {:.2} s; sends from {:.2} s to {:.2} s after it was sent, \
                 `COMPLETED` seen at {:.1} s; counts: sent {}, failed {}, skipped {}, \
                 interrupted {}, queued {}; server VmHWM {:.0} MB",
                thousands(f64::from(r.limit)),
                thousands(r.contacts as f64),
                thousands(r.recipients as f64),
                r.create_s,
                r.first_send_s,
                r.last_send_s,
                r.completed_s,
                r.counts[0],
                r.counts[1],
                r.counts[2],
                r.counts[3],
                r.counts[4],
                r.server_hwm_kb as f64 / 1024.0
            );
            let seconds: Vec<String> = r.per_second.iter().map(u64::to_string).collect();
            if seconds.len() <= 40 {
                let _ = writeln!(
                    out,
                    "  - sends in each whole second from the first: {}",
                    seconds.join(", ")
                );
            } else if let Some((lo, med, hi)) = r.seconds_spread() {
                let _ = writeln!(
                    out,
                    "  - {} whole seconds: min {lo}, median {med}, max {hi} sends",
                    seconds.len()
                );
            }
            let _ = writeln!(out, "  - CPU: {}", r.cpu.describe(cores));
            disturbed(&mut out, &format!("the {name} broadcast"), &r.cpu, cores);
        }
        if let Some(s) = &self.snapshot {
            let _ = writeln!(
                out,
                "- snapshot: {} contacts ({} opted out, written as skipped); `createBroadcast` \
                 answered in {:.2} s with {} recipients (the wallet, the audience count and \
                 the messaging limit checked first, then the one `INSERT … SELECT`); {} queued \
                 and {} skipped rows counted afterwards; the broadcast was then cancelled \
                 ({:.2} s)",
                thousands(s.contacts as f64),
                thousands(s.opted_out as f64),
                s.create_s,
                thousands(s.recipients as f64),
                thousands(s.queued as f64),
                thousands(s.skipped as f64),
                s.cancel_s
            );
            let _ = writeln!(out, "  - CPU: {}", s.cpu.describe(cores));
            disturbed(&mut out, "the snapshot", &s.cpu, cores);
        }
        for note in self.load_notes.iter().chain(&self.notes) {
            let _ = writeln!(out, "- {note}");
        }
        let _ = writeln!(out, "\n{END}");
        out
    }
}

fn disturbed(out: &mut String, phase: &str, cpu: &CpuUse, cores: usize) {
    let (foreign, names) = cpu.foreign();
    let capacity = cpu.wall_s * cores as f64;
    if capacity > 0.0 && foreign > 0.1 * capacity {
        let _ = writeln!(
            out,
            "  - **Disturbed:** during {phase}, processes outside the benchmark ({names}) used \
             {foreign:.1} of the {capacity:.1} CPU-seconds available ({:.0}%); its figures are \
             worse than on a quiet machine.",
            100.0 * foreign / capacity
        );
    }
}

/// `existing` with its campaigns section replaced by `section` (appended when it has none).
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

    fn run(limit: u32, sends: u64, span: f64) -> SendRun {
        SendRun {
            limit,
            contacts: sends,
            recipients: sends,
            first_send_s: 1.0,
            last_send_s: 1.0 + span,
            sends,
            distinct: sends as usize,
            counts: [sends as i64, 0, 0, 0, 0],
            per_second: vec![limit.into(); span as usize],
            ..Default::default()
        }
    }

    #[test]
    fn targets() {
        let mut f = CampaignFigures {
            lifted: Some(run(10_000, 100_001, 40.0)),
            paced: Some(run(80, 2_401, 30.0)),
            paced_seconds: 30,
            snapshot: Some(SnapshotRun {
                contacts: 1_000_000,
                queued: 990_000,
                skipped: 10_000,
                create_s: 4.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        let table = f.table();
        assert!(
            table.contains("| 2,500/s (100,001 sends in 40.0 s"),
            "{table}"
        );
        assert!(table.contains("80.0/s, +0.0%"), "{table}");
        assert_eq!(table.matches("| yes |").count(), 4, "{table}");
        f.paced = Some(run(80, 2_401, 27.0));
        f.lifted.as_mut().unwrap().duplicates = 1;
        let table = f.table();
        assert_eq!(table.matches("| **no** |").count(), 3, "{table}");
    }

    #[test]
    fn a_campaign_only_run_replaces_just_its_section() {
        let f = CampaignFigures {
            error: Some("boom".into()),
            ..Default::default()
        };
        let section = f.section(&Machine::default(), "scripts/bench --campaign-only", true);
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
