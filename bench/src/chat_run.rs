//! The live-chat benchmark's phases, on server processes of its own: one node, then two
//! nodes sharing Redis and PostgreSQL, then a fresh node for the idle-subscription memory.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::json;
use tokio::sync::watch;

use crate::{
    Bench, SIGN_UP,
    chat::{self, Endpoint, Heard, Poster},
    chat_report::{BusReference, ChatFigures, IdleFigures, IdleLevel, LatencyFigures},
    gql::Gql,
    load::Summary,
    pg,
    procfs::{self, CpuUse, cpu_snapshot, mb},
    redis_bench::{self, BusTap},
    report::Results,
    server::Server,
    str_at,
};

/// Descriptors kept free for everything but the subscriptions (pools, files, webhooks).
const FD_RESERVE: u64 = 2_048;
/// After the last webhook's answer, the run waits for the last frames while they keep
/// coming (a backlog drains at the server's pace), at most `DRAIN_MAX`, and gives up once
/// none has come for `DRAIN_STALL`.
const DRAIN_MAX: Duration = Duration::from_secs(120);
const DRAIN_STALL: Duration = Duration::from_secs(5);
/// Time idle subscriptions are left alone before VmRSS is read.
const SETTLE: Duration = Duration::from_secs(3);

/// A running node, as the phases need it.
#[derive(Clone)]
struct Node {
    name: String,
    pid: u32,
    base: String,
    log: std::path::PathBuf,
}

impl From<&Server> for Node {
    fn from(s: &Server) -> Self {
        Self {
            name: String::new(),
            pid: s.pid,
            base: s.base.clone(),
            log: s.log.clone(),
        }
    }
}

/// "subscriber fell behind the bus" warnings in a node's log so far.
fn lag_warnings(node: &Node) -> usize {
    std::fs::read_to_string(&node.log)
        .map(|t| t.matches("fell behind the bus").count())
        .unwrap_or(0)
}

/// Waits until `counted` reaches `expected` (see `DRAIN_MAX`); returns the seconds since
/// `since` when it did, `None` if it did not.
async fn drain(counted: &AtomicU64, expected: u64, since: Instant) -> Option<f64> {
    let mut last = counted.load(Ordering::Relaxed);
    let mut last_change = Instant::now();
    let mut last_report = Instant::now();
    // Bounded by DRAIN_MAX; a look every 5 ms.
    while last < expected && since.elapsed() < DRAIN_MAX && last_change.elapsed() < DRAIN_STALL {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = counted.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            progress!("waiting for the last frames: {last} of {expected}");
        }
    }
    (last >= expected).then(|| since.elapsed().as_secs_f64())
}

impl Bench {
    pub(crate) async fn run_chat(&mut self, r: &mut Results) -> anyhow::Result<()> {
        let mut figures = ChatFigures {
            subscribers: self.args.chat_subscribers,
            rate: self.args.chat_rate,
            seconds: self.args.chat_seconds,
            // The senders' first messages (each creates a contact) fall in the warm-up.
            warmup_s: self
                .args
                .chat_warmup
                .max(chat::SENDERS.div_ceil(u64::from(self.args.chat_rate)) + 1),
            ..Default::default()
        };
        let outcome = self.chat_phases(&mut figures).await;
        self.stop_chat_nodes().await;
        if let Err(e) = &outcome {
            figures.error = Some(format!("{e:#}"));
        }
        r.chat = Some(figures);
        outcome
    }

    async fn start_node(&mut self, name: &str, app_secret: &str) -> anyhow::Result<Node> {
        let server = self
            .start_server(name, vec![("WHATSAPP_APP_SECRET", app_secret.to_owned())])
            .await
            .with_context(|| format!("starting node {name}"))?;
        let mut node = Node::from(&server);
        node.name = format!("node {}", name.trim_start_matches("chat-").to_uppercase());
        self.chat_servers.push(server);
        progress!(
            "{} up at {} (pid {}), VmRSS {:.0} MB",
            node.name,
            node.base,
            node.pid,
            procfs::memory(node.pid).map_or(0.0, |m| mb(m.rss_kb))
        );
        Ok(node)
    }

    pub(crate) async fn stop_chat_nodes(&mut self) {
        for server in self.chat_servers.drain(..) {
            server.stop().await;
        }
    }

    async fn chat_phases(&mut self, f: &mut ChatFigures) -> anyhow::Result<()> {
        // The contacts benchmarks' server (if any) would share the cores: stopped first.
        if let Some(server) = self.server.take() {
            progress!("stopping the contacts benchmarks' server");
            server.stop().await;
        }
        let subscribers = self.args.chat_subscribers as u64;
        let fd_limit =
            chat::raise_nofile((self.args.chat_idle as u64).max(subscribers) + FD_RESERVE);
        if subscribers + FD_RESERVE > fd_limit {
            bail!(
                "RLIMIT_NOFILE is {fd_limit}: too low for {subscribers} subscribers \
                 (and could not be raised)"
            );
        }
        let idle = chat::idle_that_fit(self.args.chat_idle, fd_limit, FD_RESERVE);
        if idle < self.args.chat_idle {
            f.notes.push(format!(
                "RLIMIT_NOFILE could only be raised to {fd_limit}: {idle} idle subscriptions \
                 measured instead of {}",
                self.args.chat_idle
            ));
        }
        // The earlier benchmarks' writes (the import, the COPY reference) are still being
        // checkpointed and written back; latencies measured meanwhile would wait on that
        // disk traffic (each delivery is two synchronous commits). Flushed first, as the
        // campaign benchmark does before its measurements.
        pg::sql(&self.database, "CHECKPOINT").await?;
        let _ = tokio::process::Command::new("sync").status().await;
        let app_secret = format!("bench-app-{}", uuid::Uuid::new_v4().simple());
        let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let mut next_message = 0u64;

        let a = self.start_node("chat-a", &app_secret).await?;
        let mut gql = Gql::new(&a.base)?;
        let signed = gql
            .run(
                SIGN_UP,
                json!({ "input": {
                    "username": "bench-chat", "displayName": "Bench Chat",
                    "password": "a long bench password", "projectName": "Bench chat",
                }}),
            )
            .await
            .context("signUp")?;
        let token = str_at(&signed, "/signUp/token")?;
        let project_id = str_at(&signed, "/signUp/project/id")?;
        gql.token = Some(token.clone());
        gql.project_id = Some(project_id.clone());
        gql.run(
            chat::CONNECT_WHATSAPP,
            json!({ "i": {
                "wabaId": chat::WABA_ID,
                "phoneNumberId": chat::PHONE_NUMBER_ID,
                "accessToken": "bench",
            }}),
        )
        .await
        .context("connectWhatsapp")?;

        progress!(
            "live chat, 1 node: {} subscribers, {} messages/s, {} s warm-up + {} s",
            subscribers,
            f.rate,
            f.warmup_s,
            f.seconds
        );
        let endpoint_a = Endpoint::new(&a.base, &token, &project_id);
        f.one_node = Some(
            self.latency_run(
                f,
                &[(a.clone(), endpoint_a.clone())],
                &app_secret,
                &run_id,
                &mut next_message,
            )
            .await?,
        );

        if let Some(one) = &f.one_node {
            f.bus_reference = self.bus_reference(one).await;
        }

        let b = self.start_node("chat-b", &app_secret).await?;
        let endpoint_b = Endpoint::new(&b.base, &token, &project_id);
        progress!("live chat, 2 nodes: {subscribers} subscribers, half on each");
        let mut nodes = [(a, endpoint_a), (b, endpoint_b)];
        nodes[0].0.name.push_str(" (webhooks posted here)");
        f.two_nodes = Some(
            self.latency_run(f, &nodes, &app_secret, &run_id, &mut next_message)
                .await?,
        );
        self.stop_chat_nodes().await;

        if idle > 0 {
            let c = self.start_node("chat-idle", &app_secret).await?;
            let endpoint = Endpoint::new(&c.base, &token, &project_id);
            f.idle = Some(
                self.idle_run(
                    &c,
                    &endpoint,
                    idle,
                    fd_limit,
                    &app_secret,
                    &run_id,
                    next_message,
                )
                .await?,
            );
        }
        Ok(())
    }

    /// redis-benchmark on the same Redis, publishing payloads of one chat event's size.
    async fn bus_reference(&self, one: &LatencyFigures) -> Option<BusReference> {
        let (tapped, _) = one.bus.as_ref()?;
        let payload = tapped
            .topic_mean_bytes("chat.event")
            .unwrap_or_else(|| tapped.mean_bytes())
            .round() as usize;
        let (requests, clients) = (200_000, 50);
        let channel = format!("bench-ref-{}", uuid::Uuid::new_v4().simple());
        progress!("bus reference: redis-benchmark, {requests} PUBLISH of {payload} bytes");
        match redis_bench::publish(&channel, payload, requests, clients).await {
            Ok((result, command)) => {
                progress!(
                    "bus reference: {:.0} PUBLISH/s, p99 {:.2} ms",
                    result.rps,
                    result.p99_ms
                );
                Some(BusReference {
                    result,
                    command,
                    payload_bytes: payload,
                    requests,
                    clients,
                })
            }
            Err(e) => {
                progress!("bus reference failed: {e:#}");
                None
            }
        }
    }

    /// Subscribers split over `nodes`, messages posted to the first node at the rate.
    async fn latency_run(
        &self,
        f: &ChatFigures,
        nodes: &[(Node, Endpoint)],
        app_secret: &str,
        run_id: &str,
        next_message: &mut u64,
    ) -> anyhow::Result<LatencyFigures> {
        let total = self.args.chat_subscribers;
        let n = nodes.len();
        let connecting = Instant::now();
        let mut sockets = Vec::with_capacity(total);
        for (i, (node, endpoint)) in nodes.iter().enumerate() {
            let count = total / n + usize::from(i < total % n);
            let (opened, failed, first_error) = chat::open_many(endpoint, count).await;
            if failed > 0 {
                bail!(
                    "{failed} of {count} subscriptions to {} failed; first: {}",
                    node.name,
                    first_error.unwrap_or_default()
                );
            }
            sockets.extend(opened.into_iter().map(|s| (i, s)));
        }
        let connect_s = connecting.elapsed().as_secs_f64();
        progress!("{total} subscriptions open in {connect_s:.1} s");

        let rate = u64::from(f.rate);
        let warmup = rate * f.warmup_s;
        let measured = rate * f.seconds;
        let first = *next_message;
        let counted_from = first + warmup;
        *next_message = first + warmup + measured;

        let epoch = Instant::now();
        let counted = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let listeners: Vec<_> = sockets
            .into_iter()
            .map(|(node, socket)| {
                chat::listen(
                    socket,
                    node,
                    epoch,
                    counted_from,
                    counted.clone(),
                    stopped.clone(),
                )
            })
            .collect();
        let lag_before: usize = nodes.iter().map(|(node, _)| lag_warnings(node)).sum();
        let poster = Arc::new(Poster::new(&nodes[0].0.base, app_secret, epoch, run_id)?);
        // What the nodes put on Redis (every channel of this run's prefix).
        let tap = match BusTap::start(&format!("bench-{}", self.clickhouse_database)).await {
            Ok(t) => Some(t),
            Err(e) => {
                progress!("could not tap the bus: {e:#}");
                None
            }
        };
        let cpu_begin = tokio::task::spawn_blocking(cpu_snapshot).await?;
        let sender = {
            let (poster, rate) = (poster.clone(), f.rate);
            tokio::spawn(async move { poster.at_rate(first, warmup + measured, rate).await })
        };
        tokio::time::sleep(Duration::from_secs(f.warmup_s)).await;
        let cpu_start = tokio::task::spawn_blocking(cpu_snapshot).await?;
        let tap_start = tap.as_ref().map(BusTap::now);
        progress!(
            "warm-up done ({warmup} messages); measuring {} s",
            f.seconds
        );
        let posts = sender.await.context("the webhook sender")?;
        let cpu_end = tokio::task::spawn_blocking(cpu_snapshot).await?;
        let bus = match (tap.as_ref(), tap_start) {
            (Some(tap), Some(start)) => Some((
                tap.now().since(&start),
                cpu_end.at.duration_since(cpu_start.at).as_secs_f64(),
            )),
            _ => None,
        };
        if let Some(tap) = tap {
            tap.stop().await;
        }
        let answered = Instant::now();

        let measured_posts: Vec<&chat::Posted> =
            posts.iter().filter(|p| p.idx >= counted_from).collect();
        let accepted: HashSet<u64> = measured_posts
            .iter()
            .filter(|p| p.ok)
            .map(|p| p.idx)
            .collect();
        let expected_frames = accepted.len() as u64 * total as u64;
        let drain_s = drain(&counted, expected_frames, answered).await;
        let cpu_final = tokio::task::spawn_blocking(cpu_snapshot).await?;
        let _ = stop.send(true);
        let mut heard: Vec<Heard> = Vec::with_capacity(listeners.len());
        for l in listeners {
            heard.push(l.await.context("a subscriber task")?);
        }

        let servers: Vec<(u32, &str)> = nodes
            .iter()
            .map(|(node, _)| (node.pid, node.name.as_str()))
            .collect();
        let cpu = CpuUse::between_named(&cpu_start, &cpu_end, &servers);
        let whole = CpuUse::between_named(&cpu_begin, &cpu_final, &servers);
        let server_cpu_s: f64 = servers
            .iter()
            .filter_map(|(_, name)| whole.by_group.get(*name))
            .sum();
        let mut webhook_us: Vec<u64> = measured_posts.iter().map(|p| p.response_us).collect();
        let figures = LatencyFigures {
            nodes: nodes
                .iter()
                .enumerate()
                .map(|(i, (node, _))| {
                    (
                        node.name.clone(),
                        chat::delivery(heard.iter().filter(|h| h.node == i), &accepted),
                    )
                })
                .collect(),
            overall: chat::delivery(heard.iter(), &accepted),
            connect_s,
            warmup_messages: warmup,
            posted: measured_posts.len() as u64,
            accepted: accepted.len() as u64,
            first_post_error: posts.iter().find_map(|p| p.error.clone()),
            webhook: Summary::of(&mut webhook_us),
            drain_s,
            other_frames: heard.iter().map(|h| h.other_frames).sum(),
            ended_early: heard.iter().filter(|h| h.ended.is_some()).count(),
            first_end: heard.iter().find_map(|h| h.ended.clone()),
            lag_warnings: nodes
                .iter()
                .map(|(node, _)| lag_warnings(node))
                .sum::<usize>()
                .saturating_sub(lag_before),
            cpu,
            server_cpu_s,
            frames_total: heard.iter().map(|h| h.frames.len() as u64).sum(),
            rss_kb: nodes
                .iter()
                .map(|(node, _)| {
                    (
                        node.name.clone(),
                        procfs::memory(node.pid).map_or(0, |m| m.rss_kb),
                    )
                })
                .collect(),
            bus,
        };
        drop(heard);
        progress!(
            "p50 / p95 / p99 / max {}; frames {} of {}; webhook answers p99 {:.1} ms; \
             servers {:.1} µs CPU per frame; CPU: {}",
            figures.overall.latency.quartet(),
            figures.overall.received,
            figures.overall.expected,
            figures.webhook.p99_ms,
            figures.server_cpu_s * 1e6 / figures.frames_total.max(1) as f64,
            figures.cpu.describe(self.cores)
        );
        for (name, d) in &figures.nodes {
            if n > 1 {
                progress!("  {name}: {}", d.latency.quartet());
            }
        }
        Ok(figures)
    }

    /// Idle subscriptions on a fresh node: VmRSS at 1,000 and at `idle`, then one message
    /// to all of them.
    #[allow(clippy::too_many_arguments)]
    async fn idle_run(
        &self,
        node: &Node,
        endpoint: &Endpoint,
        idle: usize,
        fd_limit: u64,
        app_secret: &str,
        run_id: &str,
        probe_idx: u64,
    ) -> anyhow::Result<IdleFigures> {
        // First-use allocations (pools, schema, the Redis channel) out of the baseline.
        let (warm, _, _) = chat::open_many(endpoint, 10).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(warm);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let baseline = procfs::memory(node.pid).context("the idle node's memory")?;
        let mut figures = IdleFigures {
            requested: self.args.chat_idle,
            fd_limit,
            baseline_kb: baseline.rss_kb,
            ..Default::default()
        };
        progress!(
            "idle subscriptions on {}: baseline VmRSS {:.1} MB",
            node.name,
            mb(baseline.rss_kb)
        );
        let mut levels: Vec<usize> = vec![1_000.min(idle), idle];
        levels.dedup();
        let epoch = Instant::now();
        let counted = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = watch::channel(false);
        let mut listeners = Vec::with_capacity(idle);
        for level in levels {
            let opening = Instant::now();
            let (opened, failed, first_error) =
                chat::open_many(endpoint, level - listeners.len()).await;
            let connect_s = opening.elapsed().as_secs_f64();
            for socket in opened {
                listeners.push(chat::listen(
                    socket,
                    0,
                    epoch,
                    probe_idx,
                    counted.clone(),
                    stopped.clone(),
                ));
            }
            if failed > 0 {
                figures.failed += failed;
                figures.first_error = figures.first_error.or(first_error);
            }
            tokio::time::sleep(SETTLE).await;
            let m = procfs::memory(node.pid).context("the idle node's memory")?;
            let level = IdleLevel {
                subscriptions: listeners.len(),
                rss_kb: m.rss_kb,
                hwm_kb: m.hwm_kb,
                connect_s,
            };
            progress!(
                "{} idle subscriptions (opened in {connect_s:.1} s): VmRSS {:.1} MB, {:.1} KiB each",
                level.subscriptions,
                mb(level.rss_kb),
                figures.per_subscription_kb(&level)
            );
            figures.levels.push(level);
            if failed > 0 {
                break;
            }
        }
        // One message to all of them: they are live subscriptions, not just connections.
        let poster = Poster::new(&node.base, app_secret, epoch, run_id)?;
        let posted = poster.post(probe_idx).await;
        if posted.ok {
            drain(&counted, listeners.len() as u64, Instant::now()).await;
        }
        let _ = stop.send(true);
        let mut heard = Vec::with_capacity(listeners.len());
        for l in listeners {
            heard.push(l.await.context("an idle subscriber task")?);
        }
        let accepted: HashSet<u64> = posted.ok.then_some(probe_idx).into_iter().collect();
        let probe = chat::delivery(heard.iter(), &accepted);
        progress!(
            "one message to {} idle subscriptions: frames {} of {}, p99 {:.1} ms, max {:.1} ms{}",
            heard.len(),
            probe.received,
            probe.expected,
            probe.latency.p99_ms,
            probe.latency.max_ms,
            posted
                .error
                .map(|e| format!("; the webhook failed: {e}"))
                .unwrap_or_default()
        );
        figures.probe = Some(probe);
        Ok(figures)
    }
}
