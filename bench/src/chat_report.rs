//! The live-chat figures as a table (stdout) and as their own section of the report,
//! between markers, so that a `--chat-only` run can replace just that section.

use std::fmt::Write;

use crate::{
    charts::{Bar, Panel},
    chat::Delivery,
    load::Summary,
    procfs::{CpuUse, mb},
    redis_bench::{RedisBenchResult, Tapped},
    summary,
};

/// The live chat issue: p99 from webhook receipt to the subscriber's frame.
pub const ONE_NODE_P99_MS: f64 = 50.0;
pub const TWO_NODES_P99_MS: f64 = 100.0;
/// The performance issue (later): 10,000 idle subscriptions under 1 GiB.
pub const IDLE_TARGET_SUBSCRIPTIONS: usize = 10_000;
pub const IDLE_TARGET_KB: u64 = 1024 * 1024;

pub const BEGIN: &str =
    "<!-- live-chat:begin (written by scripts/bench; --chat-only replaces this section) -->";
pub const END: &str = "<!-- live-chat:end -->";

/// One run of messages at the fixed rate to subscribers on one or two nodes.
#[derive(Default)]
pub struct LatencyFigures {
    /// Per node: its name and what its subscribers saw.
    pub nodes: Vec<(String, Delivery)>,
    pub overall: Delivery,
    pub connect_s: f64,
    pub warmup_messages: u64,
    /// Measured messages posted, and those the webhook answered 200.
    pub posted: u64,
    pub accepted: u64,
    pub first_post_error: Option<String>,
    /// Time to the webhook's 200, measured messages.
    pub webhook: Summary,
    /// Seconds from the last webhook's answer until every expected frame had arrived;
    /// `None` if some never did (none came for 5 s, or 120 s passed).
    pub drain_s: Option<f64>,
    /// Frames other than our messages (e.g. chat state changes), all runs' subscribers.
    pub other_frames: u64,
    /// Subscriptions the server ended before the run did, and the first reason.
    pub ended_early: usize,
    pub first_end: Option<String>,
    /// "subscriber fell behind the bus" warnings the nodes logged during the run.
    pub lag_warnings: usize,
    pub cpu: CpuUse,
    /// The servers' CPU seconds from the first message to the last frame, and the frames
    /// (warm-up included) delivered meanwhile.
    pub server_cpu_s: f64,
    pub frames_total: u64,
    /// Per node: VmRSS after the run (with its subscribers still connected), KiB.
    pub rss_kb: Vec<(String, u64)>,
    /// What went through Redis during the measured messages (a `PSUBSCRIBE` on the run's
    /// channel prefix), and the measured window's length in seconds.
    pub bus: Option<(Tapped, f64)>,
}

impl LatencyFigures {
    /// Frames of the measured messages per second, from the first measured message to the
    /// last frame (`seconds` of messages, then the drain).
    pub fn frames_per_s(&self, seconds: u64) -> Option<f64> {
        let drain = self.drain_s?;
        Some(self.overall.received as f64 / (seconds as f64 + drain))
    }

    /// Events published on the bus per second during the measured messages.
    pub fn bus_events_per_s(&self) -> Option<f64> {
        let (t, window) = self.bus.as_ref()?;
        (*window > 0.0).then(|| t.messages as f64 / window)
    }
}

/// The bus reference: `redis-benchmark` publishing one chat event's size of payload.
#[derive(Clone, Debug, Default)]
pub struct BusReference {
    pub result: RedisBenchResult,
    pub command: String,
    pub payload_bytes: usize,
    pub requests: u64,
    pub clients: u32,
}

pub struct IdleLevel {
    pub subscriptions: usize,
    pub rss_kb: u64,
    pub hwm_kb: u64,
    /// Seconds to open this level's new subscriptions.
    pub connect_s: f64,
}

#[derive(Default)]
pub struct IdleFigures {
    pub requested: usize,
    pub fd_limit: u64,
    pub baseline_kb: u64,
    pub levels: Vec<IdleLevel>,
    /// Subscriptions that could not be opened, and the first reason.
    pub failed: usize,
    pub first_error: Option<String>,
    /// One message to every idle subscription at the end (proves they are live).
    pub probe: Option<Delivery>,
}

impl IdleFigures {
    /// KiB per subscription at a level: the RSS growth over the baseline.
    pub fn per_subscription_kb(&self, level: &IdleLevel) -> f64 {
        level.rss_kb.saturating_sub(self.baseline_kb) as f64 / level.subscriptions.max(1) as f64
    }
}

#[derive(Default)]
pub struct ChatFigures {
    pub subscribers: usize,
    pub rate: u32,
    pub seconds: u64,
    pub warmup_s: u64,
    pub one_node: Option<LatencyFigures>,
    pub two_nodes: Option<LatencyFigures>,
    pub idle: Option<IdleFigures>,
    pub bus_reference: Option<BusReference>,
    pub notes: Vec<String>,
    pub error: Option<String>,
}

struct Row {
    bench: String,
    figure: String,
    target: String,
    met: Option<bool>,
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

fn delivered(d: &Delivery) -> String {
    let mut s = format!(
        "{} of {} ({} missing",
        thousands(d.received as f64),
        thousands(d.expected as f64),
        thousands(d.lost() as f64)
    );
    if d.duplicates > 0 {
        let _ = write!(s, ", {} duplicates", thousands(d.duplicates as f64));
    }
    s.push(')');
    s
}

impl ChatFigures {
    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let runs = [
            (
                "1 node",
                &self.one_node,
                ONE_NODE_P99_MS,
                format!("{} subscribers", thousands(self.subscribers as f64)),
            ),
            (
                "2 nodes sharing Redis and PostgreSQL",
                &self.two_nodes,
                TWO_NODES_P99_MS,
                format!(
                    "{} subscribers, half on each node",
                    thousands(self.subscribers as f64)
                ),
            ),
        ];
        for (name, run, target_ms, subscribers) in runs {
            let bench = format!(
                "Live chat, {name}: webhook → subscriber's frame, p50 / p95 / p99 / max \
                 ({subscribers}, {} messages/s, {} s)",
                self.rate, self.seconds
            );
            let target = format!("p99 < {target_ms:.0} ms");
            match run {
                Some(l) => {
                    rows.push(Row {
                        bench,
                        figure: l.overall.latency.quartet(),
                        target,
                        met: Some(
                            l.overall.latency.count > 0
                                && l.overall.latency.p99_ms < target_ms
                                && l.overall.lost() == 0,
                        ),
                    });
                    if l.nodes.len() > 1 {
                        for (node, d) in &l.nodes {
                            rows.push(Row {
                                bench: format!(
                                    "Live chat, {name}: {node}, {} subscribers",
                                    d.subscribers
                                ),
                                figure: d.latency.quartet(),
                                target: "–".into(),
                                met: None,
                            });
                        }
                    }
                    rows.push(Row {
                        bench: format!("Live chat, {name}: frames delivered"),
                        figure: delivered(&l.overall),
                        target: "every frame".into(),
                        met: Some(l.overall.lost() == 0 && l.overall.expected > 0),
                    });
                }
                None => rows.push(Row {
                    bench,
                    figure: "not measured".into(),
                    target,
                    met: None,
                }),
            }
        }
        match &self.idle {
            Some(idle) => {
                for level in &idle.levels {
                    rows.push(Row {
                        bench: format!(
                            "Server memory per idle subscription, {} subscriptions \
                             (VmRSS growth ÷ subscriptions)",
                            thousands(level.subscriptions as f64)
                        ),
                        figure: format!(
                            "{:.1} KiB (VmRSS {:.0} → {:.0} MB)",
                            idle.per_subscription_kb(level),
                            mb(idle.baseline_kb),
                            mb(level.rss_kb)
                        ),
                        target: "reported".into(),
                        met: None,
                    });
                }
                let top = idle.levels.last();
                let reached = top.is_some_and(|l| l.subscriptions >= IDLE_TARGET_SUBSCRIPTIONS);
                rows.push(Row {
                    bench: format!(
                        "Server with {} idle subscriptions (performance issue, later)",
                        thousands(IDLE_TARGET_SUBSCRIPTIONS as f64)
                    ),
                    figure: match top {
                        Some(l) if reached => format!("VmRSS {:.0} MB", mb(l.rss_kb)),
                        Some(l) => format!(
                            "only {} measured; VmRSS {:.0} MB",
                            thousands(l.subscriptions as f64),
                            mb(l.rss_kb)
                        ),
                        None => "not measured".into(),
                    },
                    target: "< 1 GiB".into(),
                    met: top.filter(|_| reached).map(|l| l.rss_kb < IDLE_TARGET_KB),
                });
            }
            None => rows.push(Row {
                bench: "Server memory per idle subscription".into(),
                figure: "not measured".into(),
                target: "reported".into(),
                met: None,
            }),
        }
        rows
    }

    /// The summary table's rows: the latency and memory rows as they are, and the bus
    /// figures beside redis-benchmark's (the ratio is Parley's rate over Redis's).
    pub fn summary_rows(&self, chart: Option<&str>) -> Vec<summary::Row> {
        let chart = chart.map(str::to_owned);
        let mut out: Vec<summary::Row> = self
            .rows()
            .into_iter()
            .filter(|r| r.figure != "not measured" && r.target != "–")
            .map(|r| summary::Row {
                bench: r.bench,
                parley: r.figure,
                reference: "–".into(),
                target: r.target,
                met: r.met,
                chart: chart.clone(),
                ..Default::default()
            })
            .collect();
        let (Some(one), Some(reference)) = (&self.one_node, &self.bus_reference) else {
            return out;
        };
        let rps = reference.result.rps;
        let redis = format!(
            "redis-benchmark PUBLISH of {} bytes: {}/s",
            reference.payload_bytes,
            thousands(rps)
        );
        if let Some(frames) = one.frames_per_s(self.seconds) {
            out.push(summary::Row {
                bench: format!(
                    "Live chat, 1 node: frames delivered per second ({} subscribers, {} messages/s offered)",
                    thousands(self.subscribers as f64),
                    self.rate
                ),
                parley: format!("{}/s", thousands(frames)),
                reference: redis.clone(),
                ratio: Some(frames / rps),
                ratio_text: format!("{:.1}% of Redis's publish rate", 100.0 * frames / rps),
                target: "reported".into(),
                met: None,
                chart: chart.clone(),
            });
        }
        if let Some(events) = one.bus_events_per_s() {
            out.push(summary::Row {
                bench: "Live chat, 1 node: events through the bus per second (at the offered load)"
                    .into(),
                parley: format!("{events:.0}/s"),
                reference: redis,
                ratio: Some(events / rps),
                ratio_text: format!("{:.2}% of Redis's publish rate", 100.0 * events / rps),
                target: "reported".into(),
                met: None,
                chart,
            });
        }
        out
    }

    pub fn chart(&self, report: &std::path::Path) -> Option<String> {
        let mut panels = Vec::new();
        let mut latency = Vec::new();
        for (name, run) in [("1 node", &self.one_node), ("2 nodes", &self.two_nodes)] {
            let Some(l) = run else { continue };
            let s = &l.overall.latency;
            for (p, v) in [
                ("p50", s.p50_ms),
                ("p95", s.p95_ms),
                ("p99", s.p99_ms),
                ("max", s.max_ms),
            ] {
                latency.push(Bar::parley(format!("{name}: {p}"), v));
            }
        }
        if !latency.is_empty() {
            panels.push(
                Panel::new(
                    format!(
                        "Webhook → subscriber's frame, {} subscribers, {} messages/s",
                        thousands(self.subscribers as f64),
                        self.rate
                    ),
                    "milliseconds",
                    latency,
                )
                .target(ONE_NODE_P99_MS, "1 node p99 < 50 ms"),
            );
        }
        if let Some(one) = &self.one_node {
            let mut bus = Vec::new();
            if let Some(f) = one.frames_per_s(self.seconds) {
                bus.push(Bar::parley("Parley: frames delivered/s (1 node)", f));
            }
            if let Some(e) = one.bus_events_per_s() {
                bus.push(Bar::parley("Parley: events through Redis/s", e));
            }
            if let Some(r) = &self.bus_reference {
                bus.push(Bar::reference(
                    format!("redis-benchmark PUBLISH {} B/s", r.payload_bytes),
                    r.result.rps,
                ));
            }
            if !bus.is_empty() {
                panels.push(Panel::new("The bus", "per second", bus));
            }
        }
        if let Some(idle) = &self.idle {
            let bars = idle
                .levels
                .iter()
                .map(|l| {
                    Bar::parley(
                        format!(
                            "{} idle subscriptions: VmRSS",
                            thousands(l.subscriptions as f64)
                        ),
                        mb(l.rss_kb),
                    )
                })
                .collect();
            panels.push(
                Panel::new("Server memory with idle subscriptions", "MB", bars)
                    .target(1024.0 * 1.048_576, "10,000 under 1 GiB"),
            );
        }
        if panels.is_empty() {
            return None;
        }
        crate::charts::write(
            report,
            "live-chat",
            "Live chat: latency, bus and memory",
            &panels,
        )
    }

    /// The section's paragraph on the bus figures and their reference.
    fn bus_details(&self, out: &mut String) {
        let (Some(one), Some(r)) = (&self.one_node, &self.bus_reference) else {
            return;
        };
        let _ = writeln!(
            out,
            "\n**The bus, beside Redis's own publish rate.** During the one-node run a \
             `redis-cli PSUBSCRIBE` on the run's channel prefix counted what Parley published \
             on Redis while the measured messages were posted{}. After it, `{}` (one \
             `redis-cli SUBSCRIBE` on the channel meanwhile, so every publish is delivered to \
             a subscriber, as to a node) measured Redis alone: {} PUBLISH/s, p50 {:.3} ms, p99 \
             {:.3} ms, with {} clients sending {} publishes of {} bytes, the mean size of one \
             `chat.event` bus event in this run. What each side measures: redis-benchmark \
             measures how many publishes Redis accepts and delivers per second when nothing \
             else limits it (no JSON, no database, no WebSocket); Parley's figures are what it \
             delivered at the offered load ({} messages/s from the webhook), so they are bound \
             by that rate, not by the bus: frames delivered per second count every \
             subscriber's frame (one bus event fans out to {} frames on the node), and events \
             through the bus count Redis messages, one per chat event and a few per message \
             for the other topics. The ratios say how far the bus is from being the \
             bottleneck.",
            one.bus.as_ref().map_or(String::new(), |(t, w)| {
                let topics: Vec<String> = t
                    .by_topic
                    .iter()
                    .map(|(topic, (n, b))| {
                        format!(
                            "`{topic}` {} ({:.0} bytes each)",
                            thousands(*n as f64),
                            *b as f64 / (*n).max(1) as f64
                        )
                    })
                    .collect();
                format!(
                    ": {} messages in {w:.1} s ({})",
                    thousands(t.messages as f64),
                    topics.join(", ")
                )
            }),
            r.command,
            thousands(r.result.rps),
            r.result.p50_ms,
            r.result.p99_ms,
            r.clients,
            thousands(r.requests as f64),
            r.payload_bytes,
            self.rate,
            thousands(self.subscribers as f64)
        );
    }

    pub fn table(&self) -> String {
        let mut out =
            String::from("| benchmark | Parley | target | met? |\n| --- | --- | --- | --- |\n");
        for r in self.rows() {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(out, "| {} | {} | {} | {met} |", r.bench, r.figure, r.target);
        }
        out
    }

    /// The report's live-chat section, markers included. `run` describes when and how it
    /// was measured (date, commit, command).
    pub fn section(&self, run: &str, command: &str, cores: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN}\n\n## Live chat\n");
        let _ = writeln!(out, "{run}\n");
        if let Some(e) = &self.error {
            let _ = writeln!(
                out,
                "**The live-chat run stopped early:** {}\n",
                e.replace('\n', " ")
            );
        }
        out.push_str(&self.table());
        let _ = writeln!(out, "\n### Reproduce\n\n```sh\n{command}\n```\n");
        out.push_str(
            "Options: `--chat-only` (this section alone; the rest of the report is kept), \
             `--no-chat`, `--chat-subscribers N` (default 1000), `--chat-rate N` (default \
             100), `--chat-seconds N` (default `--seconds`), `--chat-warmup N` (default 3), \
             `--chat-idle N` (default 10000).\n",
        );
        out.push_str("\n### What was measured\n\n");
        let _ = writeln!(
            out,
            "The release server runs with `WHATSAPP_APP_SECRET` set, on the same PostgreSQL, \
             Redis and ClickHouse as the rest of the benchmark; a project owner connects a \
             WhatsApp number (`connectWhatsapp`). Subscribers open `/graphql/ws` \
             (graphql-transport-ws), send `connection_init` with the owner's token and project \
             and subscribe to `{}`. The bench then POSTs to `/webhooks/whatsapp`, signed with \
             `X-Hub-Signature-256` as Meta does, one text message per delivery from {} \
             different senders in turn, on a fixed schedule of {} per second (open loop: a \
             slow answer does not delay the next message). Each message's text carries the \
             nanoseconds since the run's epoch at which it was sent; each subscriber reads it \
             from its frame's `message.text` when the frame arrives, so the latency is from \
             just before the webhook is sent to the subscriber's frame: storing the \
             delivery, the worker's processing (contact, message, chat event, in one \
             transaction), the publish through Redis, the fan-out and the GraphQL frame. \
             The first {} s of messages are a warm-up (the senders' first messages create \
             their contacts) and are not counted; then {} s are measured, and the run \
             waits until every subscriber has every measured message (while frames keep \
             coming, at most 120 s; a frame still missing then is counted as missing). The load \
             generator (this process: the webhook client and every subscriber) shares the \
             machine's {cores} cores with the servers and the services.",
            crate::chat::SUBSCRIPTION,
            crate::chat::SENDERS,
            self.rate,
            self.warmup_s,
            self.seconds,
        );
        for (title, run) in [
            ("One node", &self.one_node),
            (
                "Two nodes (second server process on the same DATABASE_URL, REDIS_URL, \
                 REDIS_CHANNEL_PREFIX and JWT secret; webhooks posted to node A; either node's \
                 worker may process a delivery)",
                &self.two_nodes,
            ),
        ] {
            let Some(l) = run else { continue };
            let _ = writeln!(out, "\n**{title}.**\n");
            let _ = writeln!(
                out,
                "- {} subscriptions opened in {:.1} s; {} warm-up messages, then {} measured \
                 ({} answered 200{})",
                thousands(l.overall.subscribers as f64),
                l.connect_s,
                l.warmup_messages,
                thousands(l.posted as f64),
                thousands(l.accepted as f64),
                l.first_post_error
                    .as_ref()
                    .map(|e| format!("; first failure: {e}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                out,
                "- webhook → frame, p50 / p95 / p99 / max: {} over {} frames (mean {} ms)",
                l.overall.latency.quartet(),
                thousands(l.overall.latency.count as f64),
                crate::load::ms(l.overall.latency.mean_ms)
            );
            if l.nodes.len() > 1 {
                for (node, d) in &l.nodes {
                    let _ = writeln!(
                        out,
                        "  - {node}: {} ({} subscribers; frames {})",
                        d.latency.quartet(),
                        d.subscribers,
                        delivered(d)
                    );
                }
            }
            let _ = writeln!(out, "- frames: {}", delivered(&l.overall));
            let _ = writeln!(
                out,
                "- the webhook's answer (stored in the inbox), p50 / p95 / p99 / max: {}",
                l.webhook.quartet()
            );
            let _ = writeln!(
                out,
                "- {}",
                match l.drain_s {
                    Some(s) => format!(
                        "every measured frame had arrived {} ms after the last webhook's answer",
                        crate::load::ms(s * 1000.0)
                    ),
                    None => "**some measured frames never arrived**: the wait ended (no frame \
                             for 5 s, or 120 s after the last webhook's answer)"
                        .to_owned(),
                }
            );
            if l.other_frames > 0 {
                let _ = writeln!(
                    out,
                    "- {} other frames (chat state changes of the senders' chats) were received \
                     and not counted",
                    thousands(l.other_frames as f64)
                );
            }
            if l.ended_early > 0 {
                let _ = writeln!(
                    out,
                    "- **{} subscriptions ended before the run did**; first: {}",
                    l.ended_early,
                    l.first_end.as_deref().unwrap_or("?")
                );
            }
            if l.lag_warnings > 0 {
                let _ = writeln!(
                    out,
                    "- the servers logged {} \"subscriber fell behind the bus\" warnings \
                     (events skipped for a slow subscriber)",
                    l.lag_warnings
                );
            }
            let rss: Vec<String> = l
                .rss_kb
                .iter()
                .map(|(n, kb)| format!("{n} {:.0} MB", mb(*kb)))
                .collect();
            let _ = writeln!(
                out,
                "- VmRSS after the run, subscribers still connected: {}",
                rss.join(", ")
            );
            let _ = writeln!(
                out,
                "- CPU during the measured messages: {}",
                l.cpu.describe(cores)
            );
            if l.frames_total > 0 {
                let _ = writeln!(
                    out,
                    "- the server processes spent {:.1} CPU-s from the first message to the last \
                     frame for {} frames (warm-up included): {:.1} µs of CPU per frame",
                    l.server_cpu_s,
                    thousands(l.frames_total as f64),
                    l.server_cpu_s * 1e6 / l.frames_total as f64
                );
            }
        }
        self.bus_details(&mut out);
        if let Some(idle) = &self.idle {
            let _ = writeln!(
                out,
                "\n**Idle subscriptions.** A fresh server process (same configuration) opens \
                 a few subscriptions and closes them (first-use allocations), then its VmRSS \
                 is the baseline ({:.1} MB). Subscriptions are then opened, {} at a time, \
                 and left idle (no messages) for 3 s before VmRSS is read; the figure per \
                 subscription is the growth over the baseline divided by the number of \
                 subscriptions, so it includes the WebSocket connection, its \
                 `connection_init` and the subscription. RLIMIT_NOFILE was {} for this \
                 process and the servers.\n",
                mb(idle.baseline_kb),
                crate::chat::CONNECT_CONCURRENCY,
                idle.fd_limit
            );
            for level in &idle.levels {
                let _ = writeln!(
                    out,
                    "- {} subscriptions (opened in {:.1} s): VmRSS {:.1} MB, VmHWM {:.1} MB: \
                     {:.1} KiB per subscription",
                    thousands(level.subscriptions as f64),
                    level.connect_s,
                    mb(level.rss_kb),
                    mb(level.hwm_kb),
                    idle.per_subscription_kb(level)
                );
            }
            if idle
                .levels
                .last()
                .is_some_and(|l| l.subscriptions < idle.requested)
            {
                let _ = writeln!(
                    out,
                    "- **{} idle subscriptions were asked for**; see the notes",
                    thousands(idle.requested as f64)
                );
            }
            if idle.failed > 0 {
                let _ = writeln!(
                    out,
                    "- **{} subscriptions could not be opened**; first: {}",
                    idle.failed,
                    idle.first_error.as_deref().unwrap_or("?")
                );
            }
            if let Some(p) = &idle.probe {
                let _ = writeln!(
                    out,
                    "- then one message through the webhook to all of them: frames {}; \
                     webhook → frame p50 / p95 / p99 / max {}",
                    delivered(p),
                    p.latency.quartet()
                );
            }
        }
        let notes: Vec<&String> = self.notes.iter().collect();
        if !notes.is_empty() {
            out.push_str("\n### Notes from this run\n\n");
            for n in notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        let _ = writeln!(out, "\n{END}");
        out
    }
}

/// The live-chat section of a report, markers included.
#[cfg(test)]
pub fn extract(report: &str) -> Option<&str> {
    crate::sections::extract(report, BEGIN, END)
}

/// `existing` with its live-chat section replaced by `section` (appended when it has none).
#[cfg(test)]
pub fn splice(existing: Option<&str>, section: &str) -> String {
    crate::sections::splice(existing, BEGIN, END, section)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(expected: u64, received: u64, p99_ms: f64) -> Delivery {
        Delivery {
            subscribers: 10,
            latency: Summary {
                count: received as usize,
                p50_ms: 1.0,
                p95_ms: 2.0,
                p99_ms,
                max_ms: p99_ms + 1.0,
                mean_ms: 1.0,
            },
            expected,
            received,
            duplicates: 0,
        }
    }

    #[test]
    fn targets_need_the_p99_and_every_frame() {
        let mut f = ChatFigures {
            subscribers: 1000,
            rate: 100,
            seconds: 10,
            warmup_s: 3,
            one_node: Some(LatencyFigures {
                overall: d(100, 100, 12.0),
                ..Default::default()
            }),
            two_nodes: Some(LatencyFigures {
                overall: d(100, 99, 12.0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let table = f.table();
        assert!(table.contains("| 1.0 / 2.0 / 12.0 / 13.0 ms | p99 < 50 ms | yes |"));
        assert!(table.contains("| 1.0 / 2.0 / 12.0 / 13.0 ms | p99 < 100 ms | **no** |"));
        assert!(table.contains("| 99 of 100 (1 missing) | every frame | **no** |"));
        f.one_node.as_mut().unwrap().overall = d(100, 100, 51.0);
        assert!(f.table().contains("| p99 < 50 ms | **no** |"));
    }

    #[test]
    fn idle_memory_is_growth_per_subscription() {
        let idle = IdleFigures {
            baseline_kb: 40_000,
            levels: vec![
                IdleLevel {
                    subscriptions: 1_000,
                    rss_kb: 90_000,
                    hwm_kb: 95_000,
                    connect_s: 1.0,
                },
                IdleLevel {
                    subscriptions: 10_000,
                    rss_kb: 540_000,
                    hwm_kb: 560_000,
                    connect_s: 9.0,
                },
            ],
            ..Default::default()
        };
        assert_eq!(idle.per_subscription_kb(&idle.levels[0]), 50.0);
        assert_eq!(idle.per_subscription_kb(&idle.levels[1]), 50.0);
        let f = ChatFigures {
            idle: Some(idle),
            ..Default::default()
        };
        let table = f.table();
        assert!(table.contains("| 50.0 KiB (VmRSS 41 → 553 MB) | reported | – |"));
        assert!(table.contains("| VmRSS 553 MB | < 1 GiB | yes |"));
    }

    #[test]
    fn a_chat_only_run_replaces_just_its_section() {
        let old = format!("# Benchmarks\n\ncontacts\n\n{BEGIN}\nold chat\n{END}\n\n## Notes\n");
        let new = format!("{BEGIN}\nnew chat\n{END}\n");
        let spliced = splice(Some(&old), &new);
        assert_eq!(
            spliced,
            format!("# Benchmarks\n\ncontacts\n\n{BEGIN}\nnew chat\n{END}\n\n## Notes\n")
        );
        assert_eq!(
            splice(Some("# Benchmarks\n\ncontacts\n"), &new),
            format!("# Benchmarks\n\ncontacts\n\n{new}")
        );
        assert_eq!(splice(None, &new), format!("# Benchmarks\n\n{new}"));
        assert_eq!(
            extract(&old),
            Some(format!("{BEGIN}\nold chat\n{END}").as_str())
        );
        assert_eq!(extract("# Benchmarks\n"), None);
    }

    #[test]
    fn an_empty_chat_run_still_renders() {
        let f = ChatFigures {
            error: Some("boom".into()),
            ..Default::default()
        };
        let s = f.section("run", "scripts/bench --chat-only", 2);
        assert!(s.starts_with(BEGIN) && s.trim_end().ends_with(END));
        assert!(s.contains("not measured") && s.contains("boom"));
    }
}
