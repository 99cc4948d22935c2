//! `--profile`: after every measured benchmark, the three with the slowest ratios (of
//! those whose load can be replayed) run again under perf, and their flamegraphs are
//! written beside the report (see `profile.rs`).

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::Context;

use crate::{
    Bench, PAGE_THREADS,
    profile::{self, Candidate},
    report::{Machine, Results},
    wrk,
};

pub const BEGIN: &str =
    "<!-- flamegraphs:begin (written by scripts/bench --profile; other runs keep it) -->";
pub const END: &str = "<!-- flamegraphs:end -->";

/// One recorded flamegraph.
pub struct Flame {
    pub candidate: Candidate,
    pub link: Option<String>,
    pub samples: u64,
    pub areas: Vec<(&'static str, f64)>,
    pub leaves: Vec<(String, f64)>,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct ProfileFigures {
    /// Every ratio of the run, replayable or not: (name, ratio, why not replayed).
    pub ratios: Vec<(String, f64, Option<&'static str>)>,
    pub flames: Vec<Flame>,
    pub seconds: u64,
}

impl Bench {
    pub(crate) async fn run_profile(&mut self, r: &Results) -> ProfileFigures {
        let mut figures = ProfileFigures {
            seconds: self.args.profile_seconds,
            ..Default::default()
        };
        let mut candidates = Vec::new();
        let mut push =
            |key: &'static str, name: String, ratio: Option<f64>, why: Option<&'static str>| {
                let Some(ratio) = ratio else { return };
                figures.ratios.push((name.clone(), ratio, why));
                if why.is_none() {
                    candidates.push(Candidate { key, name, ratio });
                }
            };
        push(
            "page",
            "contacts page vs pgbench (rate)".into(),
            r.page_ratio(),
            self.contacts_gql
                .is_none()
                .then_some("no project to replay it on"),
        );
        push(
            "transport",
            "trivial query vs the minimal server (rate)".into(),
            self.transport.as_ref().and_then(|t| t.ratio()),
            None,
        );
        push(
            "shipping",
            "analytics shipping vs ClickHouse's insert (rate)".into(),
            self.shipping.as_ref().and_then(|s| s.ratio()),
            None,
        );
        push(
            "import",
            "CSV import vs COPY (rate)".into(),
            r.import_ratio(),
            Some("a second import of the same file takes the update path, not the measured one"),
        );
        if let Some(chat) = &r.chat {
            for row in chat.summary_rows(None) {
                if let Some(ratio) = row.ratio {
                    push(
                        "chat",
                        row.bench.clone(),
                        Some(ratio),
                        Some("bound by the offered load, not a measure of speed"),
                    );
                }
            }
        }
        figures.ratios.sort_by(|a, b| a.1.total_cmp(&b.1));
        let chosen = profile::slowest(candidates, 3);
        progress!(
            "profile: {}",
            chosen
                .iter()
                .map(|c| format!("{} ({:.1}%)", c.name, c.ratio * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for candidate in chosen {
            let flame = self.profile_one(candidate).await;
            figures.flames.push(flame);
        }
        figures
    }

    async fn profile_one(&mut self, candidate: Candidate) -> Flame {
        let mut flame = Flame {
            candidate: candidate.clone(),
            link: None,
            samples: 0,
            areas: Vec::new(),
            leaves: Vec::new(),
            error: None,
        };
        let outcome = self.record_flame(&candidate).await;
        if let Some(server) = self.extra_server.take() {
            server.stop().await;
        }
        match outcome {
            Ok(folded) => {
                let (samples, _) = profile::inclusive_shares(&folded);
                flame.samples = samples;
                flame.areas = profile::areas(&folded);
                flame.leaves = profile::self_shares(&folded).into_iter().take(8).collect();
                flame.link = self.write_flame(&candidate, &folded);
            }
            Err(e) => {
                progress!("profile of {}: {e:#}", candidate.name);
                flame.error = Some(format!("{e:#}"));
            }
        }
        flame
    }

    /// Replays the candidate's load with perf attached to the server; returns the folded
    /// stacks.
    async fn record_flame(&mut self, c: &Candidate) -> anyhow::Result<String> {
        let seconds = self.args.profile_seconds;
        let data = self.work_dir.join(format!("perf-{}.data", c.key));
        progress!("profile: {} under perf for {seconds} s", c.name);
        // The load starts first; perf joins after a second of it and records `seconds`.
        let record = |pid: u32| {
            let data = data.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let child = profile::record(pid, seconds, &data)?;
                profile::finish(child, seconds).await
            }
        };
        match c.key {
            "transport" => {
                let (pid, url) = self.transport_server().await?;
                let (load, perf) =
                    tokio::join!(self.transport_load(&url, seconds + 2), record(pid));
                load?;
                perf?;
            }
            "shipping" => {
                let pid = self.shipping_server().await?;
                let rows = self.args.shipping_rows.min(300_000);
                let (load, perf) = tokio::join!(self.shipping_load(rows), record(pid));
                load?;
                perf?;
            }
            "page" => {
                self.stop_other_servers().await;
                let server = self.start_server("profile", Vec::new()).await?;
                let pid = server.pid;
                let mut gql = self.contacts_gql.clone().context("the contacts project")?;
                gql.base = server.base.clone();
                self.extra_server = Some(server);
                let (wrk_bin, script) = (wrk::find()?, self.page_script(&gql)?);
                let url = gql.url("/graphql");
                let connections = self.args.concurrency as u32;
                let load = wrk::run(
                    &wrk_bin,
                    &script,
                    &url,
                    PAGE_THREADS.min(connections),
                    connections,
                    seconds + 2,
                );
                let (load, perf) = tokio::join!(load, record(pid));
                load?;
                perf?;
            }
            other => anyhow::bail!("no replay for {other}"),
        }
        progress!("profile: perf script of {}", data.display());
        let script = profile::script(&data).await?;
        let _ = std::fs::remove_file(&data);
        tokio::task::spawn_blocking(move || profile::fold(&script)).await?
    }

    fn write_flame(&self, c: &Candidate, folded: &str) -> Option<String> {
        let report = self.args.report.as_ref()?;
        let dir = report
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(crate::charts::DIR);
        let file = format!("flame-{}.svg", c.key);
        let title = format!(
            "{}: Parley at {:.1}% of its reference",
            c.name,
            c.ratio * 100.0
        );
        let subtitle = format!(
            "perf record -e cpu-clock -F {} --call-graph dwarf,16384 -p <server>, {} s",
            profile::FREQUENCY,
            self.args.profile_seconds
        );
        let written = profile::flamegraph(folded, &title, &subtitle).and_then(|svg| {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(&file), svg)?;
            Ok(())
        });
        match written {
            Ok(()) => Some(format!("{}/{file}", crate::charts::DIR)),
            Err(e) => {
                progress!("flamegraph {file}: {e:#}");
                None
            }
        }
    }
}

impl ProfileFigures {
    pub fn section(&self, machine: &Machine, command: &str) -> String {
        let m = machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{BEGIN}\n\n## Flamegraphs of the slowest ratios\n\nRecorded {} on {} cores; server \
             `target/release/parley` at {}; `{command}`.\n",
            m.date, m.cores, m.commit
        );
        let _ = writeln!(
            out,
            "After every measured benchmark of the run (so that no figure of the tables comes \
             from a run with perf attached), the three benchmarks with the smallest ratio of \
             Parley's figure to its reference's are replayed on a fresh server process while \
             `perf record -e cpu-clock -F {} --call-graph dwarf,16384 -p <server pid>` samples \
             it for {} s (the load starts a second before). `perf script`'s output is folded \
             with inferno's perf collapser and drawn with inferno's flamegraph, as a library \
             (`bench/src/profile.rs`). The ratios of the run, smallest first:\n",
            profile::FREQUENCY,
            self.seconds
        );
        for (name, ratio, why) in &self.ratios {
            let _ = writeln!(
                out,
                "- {:.2}%: {name}{}",
                ratio * 100.0,
                why.map_or(String::new(), |w| format!(" (not replayed: {w})"))
            );
        }
        for f in &self.flames {
            let _ = writeln!(
                out,
                "\n### {} ({:.1}% of its reference)\n",
                f.candidate.name,
                f.candidate.ratio * 100.0
            );
            if let Some(e) = &f.error {
                let _ = writeln!(out, "Not recorded: {}\n", e.replace('\n', " "));
                continue;
            }
            if let Some(link) = &f.link {
                let _ = writeln!(out, "[![flamegraph]({link})]({link})\n");
            }
            let areas: Vec<String> = f
                .areas
                .iter()
                .map(|(a, s)| format!("{a} {:.0}%", s * 100.0))
                .collect();
            let leaves: Vec<String> = f
                .leaves
                .iter()
                .map(|(l, s)| format!("`{}` {:.1}%", shorten(l), s * 100.0))
                .collect();
            let _ = writeln!(
                out,
                "- {} samples; share of samples whose stack passes through: {}\n\
                 - most self time (innermost frames): {}",
                f.samples,
                areas.join(", "),
                leaves.join(", ")
            );
        }
        let _ = writeln!(out, "\n{END}");
        out
    }
}

/// A frame's name without its generic arguments and hash, at most 80 characters.
fn shorten(frame: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for ch in frame.chars() {
        match ch {
            '<' => depth += 1,
            '>' => depth -= 1,
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    let out = out.replace('`', "'");
    out.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_shortened() {
        assert_eq!(
            shorten("hyper::proto::h1::Conn<I,B,T>::poll_read"),
            "hyper::proto::h1::Conn::poll_read"
        );
    }
}
