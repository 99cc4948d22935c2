//! The performance issue's analytics shipping target: at least 100,000 events/s moved from
//! PostgreSQL's `analytics_outbox` to ClickHouse by the release server's shipper, with a
//! lag under 5 s. Two measurements, both through the release server's own shipper:
//!
//! - **Throughput (backlog drain):** realistic outbox rows (message and contact events
//!   with the API's JSON payloads) are COPYed into the outbox while no server runs; then
//!   the server starts and ClickHouse's row count of the run's project is polled every
//!   100 ms until it holds them all. The rate is timed from the first poll that counts
//!   any event to the poll that counts the last one (the time from the server's start is
//!   reported beside it), so the COPY, which would share the cores, is not in it.
//! - **Lag at a steady rate:** with the server running, rows of another project are
//!   COPYed at a fixed rate (`--shipping-rate`, one chunk every 200 ms, each its own
//!   transaction) for `--seconds`. Each chunk's rows carry their own `occurred_at`, so
//!   ClickHouse counts each chunk's rows whatever order the shipper's batches land in:
//!   each row's lag is from its chunk's commit to the first poll that counts it.
//!
//! The reference is ClickHouse's own insert of the backlog's rows (the same file,
//! TabSeparated, one HTTP request) into a copy of the `events` table.

use std::{
    fmt::Write as _,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::json;
use uuid::Uuid;

use crate::{
    Bench,
    charts::{self, Bar, Panel},
    load::{self, Summary},
    pg,
    procfs::{CpuUse, cpu_snapshot},
    report::{Machine, thousands},
    summary,
};

pub const TARGET_EVENTS_S: f64 = 100_000.0;
pub const TARGET_LAG_S: f64 = 5.0;
const CLICKHOUSE_URL: &str = "http://127.0.0.1:8123";
/// ClickHouse is asked for the run's count this often.
const POLL: Duration = Duration::from_millis(100);
/// The run gives up when ClickHouse's count has not moved for this long.
const STALL: Duration = Duration::from_secs(60);
/// The steady phase COPYs one chunk this often.
pub const STEADY_INTERVAL: Duration = Duration::from_millis(200);
const COLUMNS: &str = "event_id, project_id, kind, actor_id, occurred_at, payload";

pub const BEGIN: &str =
    "<!-- shipping:begin (written by scripts/bench; --shipping-only replaces this section) -->";
pub const END: &str = "<!-- shipping:end -->";

/// The lag measurement: rows offered at a fixed rate while the server ships.
#[derive(Default)]
pub struct Steady {
    /// Rows per second offered (`--shipping-rate`) and for how long (`--seconds`).
    pub rate: u64,
    pub seconds: u64,
    pub rows: u64,
    pub chunks: usize,
    /// From the first COPY's start to the first and to the last commit.
    pub first_commit_s: f64,
    pub load_s: f64,
    /// Chunks whose COPY started more than 10 ms after its time (the previous one was
    /// still running).
    pub late_chunks: usize,
    /// Rows ClickHouse had when the run ended (all of them unless it stalled).
    pub shipped: u64,
    /// From the last commit until ClickHouse had every row.
    pub after_load_s: f64,
    /// Per row, from its chunk's commit to the poll that first counted it.
    pub lag: Summary,
    /// (seconds since the first COPY, rows committed, rows in ClickHouse), per poll.
    pub timeline: Vec<(f64, u64, u64)>,
    pub cpu: CpuUse,
}

impl Steady {
    /// The rows committed after the first chunk over the time from its commit to the last.
    pub fn offered_rate(&self) -> f64 {
        let first = self.rows.div_ceil(self.chunks.max(1) as u64);
        self.rows.saturating_sub(first) as f64 / (self.load_s - self.first_commit_s).max(1e-9)
    }
}

#[derive(Default)]
pub struct ShippingFigures {
    /// The backlog: rows, COPY transactions, bytes in COPY text format.
    pub rows: u64,
    pub chunks: usize,
    pub file_bytes: u64,
    /// Mix of kinds: (kind, rows).
    pub kinds: Vec<(String, u64)>,
    /// The backlog's COPY into the outbox, while no server ran.
    pub load_s: f64,
    /// From the server process's start to the first poll that counted any of the backlog,
    /// and what it counted.
    pub first_event_s: f64,
    pub first_count: u64,
    /// From the server process's start to the poll that counted the last row.
    pub all_shipped_s: f64,
    /// Rows ClickHouse had when the drain ended (all of them unless it stalled).
    pub shipped: u64,
    /// (seconds since the server's start, rows in ClickHouse), per poll of the drain.
    pub drain_timeline: Vec<(f64, u64)>,
    /// CPU from the server's start to the last row in ClickHouse.
    pub cpu: CpuUse,
    pub steady: Option<Steady>,
    /// The shipper's settings (the server's defaults).
    pub batch_size: u64,
    pub flush_interval_ms: u64,
    /// ClickHouse's own insert of the same file into a copy of `events`.
    pub reference_s: f64,
    pub reference_rows: u64,
    pub reference_cpu: CpuUse,
    pub error: Option<String>,
}

impl ShippingFigures {
    /// The drain's rate: the rows counted after the first poll that saw any, over the time
    /// from that poll to the one that counted the last row.
    pub fn rate(&self) -> f64 {
        let drain_s = self.all_shipped_s - self.first_event_s;
        if drain_s > 0.0 && self.shipped > self.first_count {
            (self.shipped - self.first_count) as f64 / drain_s
        } else {
            self.rate_from_start()
        }
    }

    /// Every row over the time from the server's start (its start-up included).
    pub fn rate_from_start(&self) -> f64 {
        self.shipped as f64 / self.all_shipped_s.max(1e-9)
    }

    pub fn reference_rate(&self) -> Option<f64> {
        (self.reference_s > 0.0).then(|| self.reference_rows as f64 / self.reference_s)
    }

    pub fn ratio(&self) -> Option<f64> {
        Some(self.rate() / self.reference_rate()?)
    }
}

/// xorshift64*: cheap and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A PostgreSQL `COPY … FROM` text-format field, which is also ClickHouse's TabSeparated
/// escaping (backslash, tab, newline).
fn escape(field: &str) -> String {
    field
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn uuid_from(rng: &mut Rng) -> Uuid {
    Uuid::from_u64_pair(rng.next(), rng.next())
}

/// One outbox row as the API writes it (`api/src/messages/store.rs`, `send.rs`,
/// `contacts/journey.rs`): (kind, actor, payload).
fn event(rng: &mut Rng, i: u64) -> (&'static str, Option<Uuid>, serde_json::Value) {
    let wamid = format!("wamid.HBgMOTE5ODc2NTQzMjEwFQIAEhgg{:016X}", rng.next());
    let message_id = uuid_from(rng);
    let contact_id = uuid_from(rng);
    match rng.below(20) {
        // 45%: statuses of sent messages.
        0..=8 => {
            let status = ["sent", "delivered", "read"][(i % 3) as usize];
            let category =
                ["marketing", "utility", "authentication", "service"][rng.below(4) as usize];
            (
                "message.status",
                None,
                json!({
                    "waMessageId": wamid, "status": status, "inferred": false,
                    "errorCode": null, "pricingCategory": category,
                    "pricingModel": "PMP", "billable": category != "service",
                    "conversationId": format!("{:032x}", rng.next()),
                }),
            )
        }
        // 25%: inbound messages.
        9..=13 => (
            "message.inbound",
            None,
            json!({
                "messageId": message_id, "contactId": contact_id, "waMessageId": wamid,
                "type": "text", "replyTo": null, "referral": null,
            }),
        ),
        // 15%: outbound messages.
        14..=16 => (
            "message.outbound",
            Some(uuid_from(rng)),
            json!({
                "messageId": message_id, "contactId": contact_id, "waMessageId": wamid,
                "type": "template", "templateId": uuid_from(rng), "accepted": true,
                "errorCode": null,
            }),
        ),
        // 15%: contacts' journey entries.
        _ => {
            let (kind, data) = match rng.below(3) {
                0 => (
                    "contact.created",
                    json!({ "source": "import", "name": format!("Contact {i}") }),
                ),
                1 => (
                    "contact.tagged",
                    json!({ "tagId": uuid_from(rng), "tag": "vip" }),
                ),
                _ => (
                    "contact.attribute_changed",
                    json!({ "key": "City", "from": null, "to": "Mumbai" }),
                ),
            };
            (
                kind,
                Some(uuid_from(rng)),
                json!({ "contactId": contact_id, "actorKind": "user", "data": data }),
            )
        }
    }
}

/// The generated files of one project, their total bytes, the rows of each kind and of
/// each chunk, and the time of chunk 0's rows (see `generate`).
struct Generated {
    project_id: Uuid,
    base: i64,
    files: Vec<PathBuf>,
    chunk_rows: Vec<u64>,
    bytes: u64,
    kinds: Vec<(String, u64)>,
}

/// Writes `rows` outbox rows of `project_id` in `chunks` files (COPY text format, also
/// ClickHouse's TabSeparated). The rows of chunk `c` occurred at `base + c` (Unix seconds),
/// so that ClickHouse can count each chunk's rows whatever order they are shipped in.
fn generate(
    dir: &Path,
    project_id: Uuid,
    rows: u64,
    chunks: usize,
    seed: u64,
    base: i64,
) -> anyhow::Result<Generated> {
    let mut rng = Rng(seed | 1);
    let mut files = Vec::with_capacity(chunks);
    let mut chunk_rows = Vec::with_capacity(chunks);
    let mut bytes = 0u64;
    let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
    let per_chunk = rows.div_ceil(chunks as u64);
    let mut i = 0u64;
    for c in 0..chunks {
        let path = dir.join(format!("outbox-{c:03}.tsv"));
        let mut w = BufWriter::new(std::fs::File::create(&path)?);
        let end = (i + per_chunk).min(rows);
        chunk_rows.push(end.saturating_sub(i));
        let occurred = chrono::DateTime::from_timestamp(base + c as i64, 0)
            .context("the chunk's time")?
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        while i < end {
            let (kind, actor, payload) = event(&mut rng, i);
            *kinds.entry(kind.to_owned()).or_default() += 1;
            let line = format!(
                "{}\t{project_id}\t{kind}\t{}\t{occurred}\t{}\n",
                Uuid::now_v7(),
                actor.map_or("\\N".to_owned(), |a| a.to_string()),
                escape(&payload.to_string())
            );
            bytes += line.len() as u64;
            w.write_all(line.as_bytes())?;
            i += 1;
        }
        w.flush()?;
        files.push(path);
    }
    Ok(Generated {
        project_id,
        base,
        files,
        chunk_rows,
        bytes,
        kinds: kinds.into_iter().collect(),
    })
}

/// Lag of every row, in microseconds: chunk `c` of `chunk_rows[c]` rows was committed at
/// `commits[c]`; each poll is (when, rows of each chunk in ClickHouse), and the rows a poll
/// counts beyond the previous one's were first seen then.
pub fn row_lags_us(chunk_rows: &[u64], commits: &[f64], polls: &[(f64, Vec<u64>)]) -> Vec<u64> {
    let mut lags = Vec::new();
    for (c, (&rows, &commit)) in chunk_rows.iter().zip(commits).enumerate() {
        let mut seen = 0u64;
        for (at, counts) in polls {
            let now = counts.get(c).copied().unwrap_or(0).min(rows);
            if now > seen {
                let lag = ((at - commit).max(0.0) * 1e6) as u64;
                lags.extend(std::iter::repeat_n(lag, (now - seen) as usize));
                seen = now;
            }
        }
    }
    lags
}

/// The rows in ClickHouse, each chunk's count capped at its rows.
fn capped_total(counts: &[u64], chunk_rows: &[u64]) -> u64 {
    counts.iter().zip(chunk_rows).map(|(n, r)| *n.min(r)).sum()
}

/// ClickHouse's answer to a `key, count()` query (TabSeparated): the counts of keys 0 to
/// `chunks - 1`; other keys are left out.
pub fn chunk_counts(text: &str, chunks: usize) -> anyhow::Result<Vec<u64>> {
    let mut counts = vec![0u64; chunks];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, count) = line
            .split_once('\t')
            .with_context(|| format!("not `key<TAB>count`: {line:?}"))?;
        let key: i64 = key.trim().parse().context("the chunk")?;
        let count: u64 = count.trim().parse().context("the count")?;
        if let Some(slot) = usize::try_from(key).ok().and_then(|k| counts.get_mut(k)) {
            *slot += count;
        }
    }
    Ok(counts)
}

async fn clickhouse(http: &reqwest::Client, sql: String) -> anyhow::Result<String> {
    let response = http.post(CLICKHOUSE_URL).body(sql).send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("ClickHouse: HTTP {status}: {}", text.trim());
    }
    Ok(text.trim().to_owned())
}
/// One chunk COPYed into the outbox by psql, its own transaction.
async fn copy_file(database: &str, file: &Path) -> anyhow::Result<()> {
    pg::psql(
        database,
        &[
            "-c",
            "SET TIME ZONE 'UTC'",
            "-c",
            &format!(
                "\\copy analytics_outbox ({COLUMNS}) FROM '{}'",
                file.display()
            ),
        ],
        Duration::from_secs(600),
    )
    .await?;
    Ok(())
}

/// ClickHouse's counts of each chunk (`count_sql`, see `Bench::count_sql`), every 100 ms:
/// (seconds since `started`, counts), until every chunk has its `chunk_rows` or the counts
/// stop moving for the stall limit.
async fn poll_counts(
    count_sql: String,
    chunk_rows: Vec<u64>,
    started: Instant,
    what: &'static str,
) -> anyhow::Result<Vec<(f64, Vec<u64>)>> {
    let rows: u64 = chunk_rows.iter().sum();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut polls = Vec::new();
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last_count, mut last_change) = (0u64, Instant::now());
    let mut last_report = Instant::now();
    // Bounded: until every row is counted or the count stalls.
    loop {
        ticks.tick().await;
        let counts = chunk_counts(
            &clickhouse(&http, count_sql.clone()).await?,
            chunk_rows.len(),
        )
        .context("ClickHouse's counts")?;
        let at = started.elapsed().as_secs_f64();
        // A row shipped twice counts once (the table drops duplicates when it merges).
        let count = capped_total(&counts, &chunk_rows);
        polls.push((at, counts));
        if count != last_count {
            last_count = count;
            last_change = Instant::now();
        }
        if count >= rows {
            return Ok(polls);
        }
        if last_change.elapsed() > STALL {
            progress!("shipping: ClickHouse's count stalled at {count} for {STALL:?}");
            return Ok(polls);
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            progress!("shipping ({what}): {count} of {rows} rows in ClickHouse after {at:.1} s");
        }
    }
}

/// A COPY load while the server ships: when each chunk committed (seconds since the
/// first COPY's start), the chunks that started late, and ClickHouse's count per poll.
struct LoadRun {
    commits: Vec<f64>,
    late: usize,
    /// (seconds since the first COPY's start, rows of each chunk in ClickHouse), per poll.
    polls: Vec<(f64, Vec<u64>)>,
    chunk_rows: Vec<u64>,
    cpu: CpuUse,
}

impl Bench {
    pub(crate) async fn run_shipping(&mut self) -> anyhow::Result<()> {
        let mut figures = ShippingFigures {
            rows: self.args.shipping_rows,
            chunks: self.args.shipping_chunks,
            // The server's defaults (README: ANALYTICS_BATCH_SIZE, ANALYTICS_FLUSH_INTERVAL_MS).
            batch_size: 10_000,
            flush_interval_ms: 1_000,
            ..Default::default()
        };
        let outcome = self.shipping_phases(&mut figures).await;
        if let Some(server) = self.extra_server.take() {
            server.stop().await;
        }
        if let Err(e) = &outcome {
            figures.error = Some(format!("{e:#}"));
        }
        self.shipping = Some(figures);
        outcome
    }

    pub(crate) async fn shipping_server(&mut self) -> anyhow::Result<u32> {
        self.stop_other_servers().await;
        let server = self
            .start_server("shipping", Vec::new())
            .await
            .context("starting the server")?;
        let pid = server.pid;
        self.extra_server = Some(server);
        Ok(pid)
    }

    /// The rows of each chunk of `project_id` in ClickHouse (chunk `c` occurred at
    /// `base + c`; see `generate`).
    fn count_sql(&self, project_id: Uuid, base: i64) -> String {
        format!(
            "SELECT toInt64(toUnixTimestamp(occurred_at)) - {base} AS chunk, count() FROM \
             `{}`.events WHERE project_id = toUUID('{project_id}') GROUP BY chunk",
            self.clickhouse_database
        )
    }

    async fn shipping_phases(&mut self, f: &mut ShippingFigures) -> anyhow::Result<()> {
        // A first start migrates the databases (PostgreSQL's outbox, ClickHouse's events);
        // the backlog is COPYed once that server has stopped.
        self.shipping_server().await?;
        self.outbox_empty().await?;
        if let Some(server) = self.extra_server.take() {
            server.stop().await;
        }
        let dir = self.work_dir.join("shipping");
        let (backlog_dir, steady_dir) = (dir.join("backlog"), dir.join("steady"));
        std::fs::create_dir_all(&backlog_dir)?;
        std::fs::create_dir_all(&steady_dir)?;
        let (rows, chunks) = (f.rows, f.chunks);
        let seconds = self.args.seconds;
        let mut steady = Steady {
            rate: self.args.shipping_rate,
            seconds,
            chunks: (seconds * 1000 / STEADY_INTERVAL.as_millis() as u64) as usize,
            ..Default::default()
        };
        steady.rows = steady.rate * seconds;
        progress!(
            "shipping: generating {rows} backlog rows in {chunks} chunks and {} rows in {} \
             chunks for the steady rate",
            steady.rows,
            steady.chunks
        );
        // Events of the last hours, one second apart per chunk.
        let now = chrono::Utc::now().timestamp();
        let (backlog, steady_batch) = {
            let (steady_rows, steady_chunks) = (steady.rows, steady.chunks);
            tokio::task::spawn_blocking(move || {
                anyhow::Ok((
                    generate(&backlog_dir, Uuid::new_v4(), rows, chunks, 7, now - 7200)?,
                    generate(
                        &steady_dir,
                        Uuid::new_v4(),
                        steady_rows,
                        steady_chunks,
                        13,
                        now - 3600,
                    )?,
                ))
            })
            .await??
        };
        f.file_bytes = backlog.bytes;
        f.kinds = backlog.kinds.clone();
        let outcome = async {
            self.drain(f, &backlog).await?;
            let steady_outcome = self.steady(&mut steady, &steady_batch).await;
            f.steady = Some(steady);
            steady_outcome?;
            if let Some(server) = self.extra_server.take() {
                server.stop().await;
            }
            self.shipping_reference(f, &backlog.files).await
        }
        .await;
        let _ = std::fs::remove_dir_all(&dir);
        outcome
    }

    /// Waits (at most 5 minutes) until the outbox has nothing pending.
    async fn outbox_empty(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(300) {
            let pending = pg::sql(
                &self.database,
                "SELECT count(*) FROM (SELECT 1 FROM analytics_outbox WHERE shipped_at IS NULL \
                 LIMIT 1) p",
            )
            .await?;
            if pending == "0" {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        bail!("the analytics outbox still had rows pending after 5 minutes")
    }

    /// The throughput: the backlog COPYed while no server runs, then the server started and
    /// ClickHouse's count polled from that moment until it holds every row.
    async fn drain(&mut self, f: &mut ShippingFigures, backlog: &Generated) -> anyhow::Result<()> {
        progress!(
            "shipping: COPY of {} rows ({:.0} MB) into the outbox in {} chunks, no server running",
            f.rows,
            f.file_bytes as f64 / 1e6,
            backlog.files.len()
        );
        let loaded = Instant::now();
        for file in &backlog.files {
            copy_file(&self.database, file).await?;
        }
        f.load_s = loaded.elapsed().as_secs_f64();
        pg::sql(&self.database, "CHECKPOINT").await?;
        progress!(
            "shipping: backlog loaded in {:.1} s; starting the server",
            f.load_s
        );
        let cpu_start = cpu_snapshot();
        let started = Instant::now();
        let poller = tokio::spawn(poll_counts(
            self.count_sql(backlog.project_id, backlog.base),
            backlog.chunk_rows.clone(),
            started,
            "backlog",
        ));
        let pid = match self.shipping_server().await {
            Ok(pid) => pid,
            Err(e) => {
                poller.abort();
                return Err(e);
            }
        };
        let polls = poller.await??;
        f.cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), pid);
        f.drain_timeline = polls
            .iter()
            .map(|(at, counts)| (*at, capped_total(counts, &backlog.chunk_rows)))
            .collect();
        let (end_at, shipped) = f.drain_timeline.last().copied().unwrap_or((0.0, 0));
        f.shipped = shipped.min(f.rows);
        f.all_shipped_s = end_at;
        if let Some(&(at, count)) = f.drain_timeline.iter().find(|p| p.1 > 0) {
            f.first_event_s = at;
            f.first_count = count;
        }
        progress!(
            "shipping: backlog of {} rows in ClickHouse {:.1} s after the server's start, the \
             first {} at {:.1} s: {:.0} events/s from the first ({:.0} from the start); CPU: {}",
            f.shipped,
            f.all_shipped_s,
            f.first_count,
            f.first_event_s,
            f.rate(),
            f.rate_from_start(),
            f.cpu.describe(self.cores)
        );
        if f.shipped < f.rows {
            bail!(
                "ClickHouse had {} of {} backlog rows when the drain ended",
                f.shipped,
                f.rows
            );
        }
        Ok(())
    }

    /// The lag: chunks COPYed at a fixed rate while the running server ships.
    async fn steady(&self, s: &mut Steady, batch: &Generated) -> anyhow::Result<()> {
        self.outbox_empty().await?;
        progress!(
            "shipping: {} rows/s offered for {} s ({} rows every {} ms)",
            s.rate,
            s.seconds,
            batch.chunk_rows.first().copied().unwrap_or(0),
            STEADY_INTERVAL.as_millis()
        );
        let run = self
            .load_while_shipping(batch, Some(STEADY_INTERVAL))
            .await?;
        s.cpu = run.cpu;
        s.late_chunks = run.late;
        s.first_commit_s = run.commits.first().copied().unwrap_or(0.0);
        s.load_s = run.commits.last().copied().unwrap_or(0.0);
        let ends: Vec<u64> = run
            .chunk_rows
            .iter()
            .scan(0, |sum, n| {
                *sum += n;
                Some(*sum)
            })
            .collect();
        for (at, counts) in &run.polls {
            let done = run.commits.iter().take_while(|t| **t <= *at).count();
            let committed = if done == 0 { 0 } else { ends[done - 1] };
            s.timeline
                .push((*at, committed, capped_total(counts, &run.chunk_rows)));
        }
        let (end_at, shipped) = s
            .timeline
            .last()
            .map_or((0.0, 0), |&(at, _, shipped)| (at, shipped));
        s.shipped = shipped.min(s.rows);
        s.after_load_s = (end_at - s.load_s).max(0.0);
        let mut lags = row_lags_us(&run.chunk_rows, &run.commits, &run.polls);
        s.lag = Summary::of(&mut lags);
        progress!(
            "shipping: steady {:.0} rows/s offered ({} late chunks); {} of {} rows in ClickHouse \
             {:.1} s after the last commit; lag p50 / p95 / p99 / max {}; CPU: {}",
            s.offered_rate(),
            s.late_chunks,
            s.shipped,
            s.rows,
            s.after_load_s,
            s.lag.quartet(),
            s.cpu.describe(self.cores)
        );
        if s.shipped < s.rows {
            bail!(
                "ClickHouse had {} of {} steady-rate rows when the run ended",
                s.shipped,
                s.rows
            );
        }
        Ok(())
    }

    /// The chunks COPYed one after the other (`pace`: one every `pace`, else as fast as
    /// psql goes) while the server ships and ClickHouse's counts are polled, until every
    /// row is there or the counts stall.
    async fn load_while_shipping(
        &self,
        batch: &Generated,
        pace: Option<Duration>,
    ) -> anyhow::Result<LoadRun> {
        pg::sql(&self.database, "CHECKPOINT").await?;
        let cpu_start = cpu_snapshot();
        let started = Instant::now();
        let poller = tokio::spawn(poll_counts(
            self.count_sql(batch.project_id, batch.base),
            batch.chunk_rows.clone(),
            started,
            "load",
        ));
        let loaded = async {
            let (mut commits, mut late) = (Vec::with_capacity(batch.files.len()), 0);
            for (k, file) in batch.files.iter().enumerate() {
                if let Some(pace) = pace {
                    let due = started + pace * k as u32;
                    if Instant::now() > due + Duration::from_millis(10) {
                        late += 1;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                copy_file(&self.database, file).await?;
                commits.push(started.elapsed().as_secs_f64());
            }
            anyhow::Ok((commits, late))
        }
        .await;
        let (commits, late) = match loaded {
            Ok(l) => l,
            Err(e) => {
                poller.abort();
                return Err(e);
            }
        };
        let polls = poller.await??;
        Ok(LoadRun {
            commits,
            late,
            polls,
            chunk_rows: batch.chunk_rows.clone(),
            cpu: CpuUse::between(
                &cpu_start,
                &cpu_snapshot(),
                self.extra_server.as_ref().map_or(0, |s| s.pid),
            ),
        })
    }

    /// ClickHouse's own insert of the same rows into a copy of `events`.
    async fn shipping_reference(
        &self,
        f: &mut ShippingFigures,
        files: &[PathBuf],
    ) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(600))
            .build()?;
        let db = &self.clickhouse_database;
        clickhouse(
            &http,
            format!("CREATE TABLE IF NOT EXISTS `{db}`.events_ref AS `{db}`.events"),
        )
        .await?;
        let mut body = Vec::with_capacity(f.file_bytes as usize);
        for file in files {
            body.extend(std::fs::read(file)?);
        }
        progress!(
            "shipping reference: ClickHouse INSERT of the same {:.0} MB",
            body.len() as f64 / 1e6
        );
        let query = format!("INSERT INTO `{db}`.events_ref ({COLUMNS}) FORMAT TabSeparated");
        let cpu_start = cpu_snapshot();
        let started = Instant::now();
        let response = http
            .post(CLICKHOUSE_URL)
            .query(&[("query", query.as_str())])
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        f.reference_s = started.elapsed().as_secs_f64();
        f.reference_cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), 0);
        if !status.is_success() {
            bail!("ClickHouse's INSERT: HTTP {status}: {}", text.trim());
        }
        f.reference_rows = clickhouse(&http, format!("SELECT count() FROM `{db}`.events_ref"))
            .await?
            .parse()
            .unwrap_or(0);
        clickhouse(&http, format!("DROP TABLE IF EXISTS `{db}`.events_ref")).await?;
        progress!(
            "shipping reference: {} rows in {:.2} s ({:.0} rows/s)",
            f.reference_rows,
            f.reference_s,
            f.reference_rows as f64 / f.reference_s
        );
        Ok(())
    }

    /// Profiling: `rows` more outbox rows COPYed at once on the running server's database,
    /// returned when ClickHouse has them (bounded by the stall limit).
    pub(crate) async fn shipping_load(&self, rows: u64) -> anyhow::Result<()> {
        let dir = self.work_dir.join("shipping-profile");
        std::fs::create_dir_all(&dir)?;
        let base = chrono::Utc::now().timestamp() - 600;
        let generated = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || generate(&dir, Uuid::new_v4(), rows, 10, 11, base))
                .await??
        };
        let result = self.load_while_shipping(&generated, None).await;
        let _ = std::fs::remove_dir_all(&dir);
        let shipped = result?
            .polls
            .last()
            .map_or(0, |p| capped_total(&p.1, &generated.chunk_rows));
        if shipped < rows {
            bail!("ClickHouse had {shipped} of {rows} rows when the load ended");
        }
        Ok(())
    }
}
impl ShippingFigures {
    pub fn summary_rows(&self, chart: Option<&str>) -> Vec<summary::Row> {
        if self.all_shipped_s <= 0.0 {
            return Vec::new();
        }
        let ratio = self.ratio();
        let chart = chart.map(str::to_owned);
        let mut rows = vec![summary::Row {
            bench: format!(
                "Analytics shipping, backlog of {} outbox rows drained by the server's shipper \
                 → ClickHouse: events/s, first event in ClickHouse to the last",
                thousands(self.rows as f64)
            ),
            parley: format!(
                "{} events/s ({:.1} s; {} events/s over {:.1} s from the server's start)",
                thousands(self.rate()),
                self.all_shipped_s - self.first_event_s,
                thousands(self.rate_from_start()),
                self.all_shipped_s
            ),
            reference: self.reference_rate().map_or("not measured".into(), |r| {
                format!(
                    "ClickHouse INSERT of the same rows {} rows/s ({:.2} s)",
                    thousands(r),
                    self.reference_s
                )
            }),
            ratio,
            ratio_text: ratio.map_or(String::new(), |r| {
                format!("{:.1}% of ClickHouse's insert rate", r * 100.0)
            }),
            target: format!("≥ {} events/s", thousands(TARGET_EVENTS_S)),
            met: Some(self.rate() >= TARGET_EVENTS_S && self.shipped >= self.rows),
            chart: chart.clone(),
        }];
        if let Some(s) = self.steady.as_ref().filter(|s| s.lag.count > 0) {
            rows.push(summary::Row {
                bench: format!(
                    "Analytics shipping at a steady {} rows/s offered ({} ms COPY chunks, {} s): \
                     lag from a chunk's commit to ClickHouse, p50 / p99 / max",
                    thousands(s.rate as f64),
                    STEADY_INTERVAL.as_millis(),
                    s.seconds
                ),
                parley: format!(
                    "{} / {} / {} s",
                    load::ms(s.lag.p50_ms / 1000.0),
                    load::ms(s.lag.p99_ms / 1000.0),
                    load::ms(s.lag.max_ms / 1000.0)
                ),
                reference: "–".into(),
                ratio: None,
                ratio_text: String::new(),
                target: format!("< {TARGET_LAG_S:.0} s"),
                met: Some(s.lag.max_ms < TARGET_LAG_S * 1000.0 && s.shipped >= s.rows),
                chart,
            });
        }
        rows
    }

    pub fn chart(&self, report: &Path) -> Option<String> {
        if self.all_shipped_s <= 0.0 {
            return None;
        }
        let mut rate = vec![
            Bar::parley("Parley's shipper, backlog drain", self.rate()),
            Bar::parley("same, from the server's start", self.rate_from_start()),
        ];
        if let Some(r) = self.reference_rate() {
            rate.push(Bar::reference("ClickHouse INSERT, same rows", r));
        }
        let mut panels = vec![
            Panel::new("Throughput (backlog drain)", "events per second", rate)
                .target(TARGET_EVENTS_S, "target ≥ 100,000/s"),
        ];
        if let Some(s) = self.steady.as_ref().filter(|s| s.lag.count > 0) {
            let lag = vec![
                Bar::parley("lag p50", s.lag.p50_ms / 1000.0),
                Bar::parley("lag p99", s.lag.p99_ms / 1000.0),
                Bar::parley("lag max", s.lag.max_ms / 1000.0),
            ];
            panels.push(
                Panel::new(
                    format!(
                        "Lag from a chunk's commit to ClickHouse, {} rows/s offered",
                        thousands(s.rate as f64)
                    ),
                    "seconds",
                    lag,
                )
                .target(TARGET_LAG_S, "target < 5 s"),
            );
            // The backlog over time, as bars every tenth of the run.
            let mut backlog = Vec::new();
            let n = s.timeline.len();
            for k in 0..=10 {
                let Some(&(t, committed, shipped)) = s.timeline.get((k * n.saturating_sub(1)) / 10)
                else {
                    continue;
                };
                backlog.push(Bar::parley(
                    format!("t = {t:.1} s: committed − in ClickHouse"),
                    committed.saturating_sub(shipped) as f64,
                ));
            }
            panels.push(Panel::new(
                "Steady rate: rows committed but not yet in ClickHouse",
                "rows",
                backlog,
            ));
        }
        charts::write(
            report,
            "shipping",
            "Analytics shipping: PostgreSQL outbox → ClickHouse (release server) vs ClickHouse's own INSERT",
            &panels,
        )
    }

    pub fn section(
        &self,
        machine: &Machine,
        command: &str,
        partial: bool,
        chart: Option<&str>,
    ) -> String {
        let m = machine;
        let mut out = String::new();
        let _ = writeln!(out, "{BEGIN}\n\n## Analytics shipping (ClickHouse)\n");
        out.push_str(&summary::comments(&self.summary_rows(chart)));
        let _ = writeln!(
            out,
            "\nMeasured {} on {} cores ({}), {:.0} GiB memory, Linux {}, PostgreSQL {}, \
             ClickHouse {}; server `target/release/parley` at {}.{}\n",
            m.date,
            m.cores,
            m.cpu,
            m.memory_gib,
            m.kernel,
            m.postgres,
            m.clickhouse,
            m.commit,
            if partial {
                " A partial run: the rest of this report is from earlier runs."
            } else {
                ""
            }
        );
        if let Some(e) = &self.error {
            let _ = writeln!(out, "**The run stopped early:** {}\n", e.replace('\n', " "));
        }
        out.push_str(&summary::section_table(&self.summary_rows(chart)));
        if let Some(c) = chart {
            let _ = writeln!(out, "\n![Analytics shipping]({c})");
        }
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, n)| format!("`{k}` {}", thousands(*n as f64)))
            .collect();
        let _ = writeln!(
            out,
            "\n### Reproduce\n\n```sh\n{command}\n```\n\nOptions: `--shipping-only` (this \
             section alone; the rest of the report is kept), `--no-shipping`, \
             `--shipping-rows N` (the backlog, default 1000000), `--shipping-chunks N` (its \
             COPY transactions, default 20), `--shipping-rate N` (rows per second offered for \
             the lag, default 20000), `--seconds N` (how long they are offered, default \
             10).\n\n### What was measured\n"
        );
        let _ = writeln!(
            out,
            "The release server runs with its default shipper settings (`ANALYTICS_BATCH_SIZE` \
             {}, `ANALYTICS_FLUSH_INTERVAL_MS` {}, `ANALYTICS_SHIPPERS` and the rest at their \
             defaults): each shipper task takes the oldest unshipped batch in `seq` order (its \
             rows locked `FOR UPDATE SKIP LOCKED` and deleted in one statement), inserts it into \
             ClickHouse's `events` (one RowBinary INSERT) and commits (see \
             `analytics/src/shipper.rs`). The bench generates outbox rows as the API writes \
             them ({} in the backlog: {}; JSON payloads with ids, WhatsApp message ids, \
             statuses and pricing; {:.0} MB in COPY text format, {:.0} bytes a row). \
             The rows of each COPY chunk carry their own `occurred_at` (one second apart), and \
             ClickHouse is asked every 100 ms for the project's `count()` in `events` per \
             `occurred_at`: the rows of each chunk in ClickHouse, whatever order the batches \
             land in. Two measurements:\n\n\
             - **Throughput (backlog drain).** A first start of the server migrates the \
             databases; once it has stopped, the backlog is COPYed into `analytics_outbox` in \
             {} chunks (psql `\\copy`, each its own transaction) while **no server runs**, \
             so PostgreSQL's ingest of the rows is not in the figure. Then the server starts \
             and the polls start with it. The rate is the rows counted after the first poll \
             that saw any, over the time from that poll to the one that counted the last \
             row: the shipper's own rate, its start-up left out. The rate over the whole \
             time from the server process's start (start-up, migrations check and the first \
             batch included) is given beside it.\n\
             - **Lag at a steady rate.** With the server running and the backlog shipped, \
             rows of another project are offered at a fixed rate: one COPY chunk every {} ms \
             (each its own transaction), started on a fixed schedule. A row's lag is the \
             time from its chunk's commit (psql's exit) to the first poll counting it, which \
             includes up to 100 ms of polling; the max is the last row of the slowest chunk.\n\n\
             **Reference:** ClickHouse's own insert of the backlog's rows: the same files \
             (PostgreSQL's COPY text format is also ClickHouse's TabSeparated) sent as one \
             HTTP `INSERT INTO events_ref ({COLUMNS}) FORMAT TabSeparated` into a copy of the \
             `events` table (`CREATE TABLE … AS events`: same columns, engine, partitioning \
             and order), timed from the request to its answer, after the server has stopped.\n",
            self.batch_size,
            self.flush_interval_ms,
            thousands(self.rows as f64),
            kinds.join(", "),
            self.file_bytes as f64 / 1e6,
            self.file_bytes as f64 / self.rows.max(1) as f64,
            self.chunks,
            STEADY_INTERVAL.as_millis()
        );
        if self.all_shipped_s > 0.0 {
            let _ = writeln!(
                out,
                "- backlog: {} chunks COPYed in {:.1} s with no server running ({} rows/s into \
                 the outbox)\n\
                 - drain: the first poll counting any row ({}) came {:.1} s after the server's \
                 start; ClickHouse had all {} rows {:.1} s after it: {} events/s from the first \
                 event, {} events/s from the server's start\n\
                 - CPU from the server's start to the last row in ClickHouse: {}",
                self.chunks,
                self.load_s,
                thousands(self.rows as f64 / self.load_s.max(1e-9)),
                thousands(self.first_count as f64),
                self.first_event_s,
                thousands(self.shipped as f64),
                self.all_shipped_s,
                thousands(self.rate()),
                thousands(self.rate_from_start()),
                self.cpu.describe(m.cores)
            );
        }
        if let Some(s) = &self.steady
            && s.lag.count > 0
        {
            let _ = writeln!(
                out,
                "- steady rate: {} rows in {} chunks of {} committed over {:.1} s ({} rows/s \
                 offered from the first commit to the last; {} chunks started late because the previous COPY was still \
                 running); ClickHouse had them all {:.1} s after the last commit\n\
                 - lag from commit to ClickHouse, p50 / p95 / p99 / max: {} / {} / {} / {} ms \
                 (mean {} ms)\n\
                 - CPU from the first COPY to the last row in ClickHouse: {}",
                thousands(s.rows as f64),
                s.chunks,
                thousands(s.rows.div_ceil(s.chunks.max(1) as u64) as f64),
                s.load_s,
                thousands(s.offered_rate()),
                s.late_chunks,
                s.after_load_s,
                load::ms(s.lag.p50_ms),
                load::ms(s.lag.p95_ms),
                load::ms(s.lag.p99_ms),
                load::ms(s.lag.max_ms),
                load::ms(s.lag.mean_ms),
                s.cpu.describe(m.cores)
            );
        }
        if let Some(r) = self.reference_rate() {
            let _ = writeln!(
                out,
                "- reference: {} rows in {:.2} s ({} rows/s); CPU: {}",
                thousands(self.reference_rows as f64),
                self.reference_s,
                thousands(r),
                self.reference_cpu.describe(m.cores)
            );
        }
        let steady_cpu = self.steady.as_ref().map(|s| &s.cpu);
        for (name, cpu) in [
            ("the backlog drain", Some(&self.cpu)),
            ("the steady rate", steady_cpu),
            ("the reference", Some(&self.reference_cpu)),
        ] {
            if let Some(line) = cpu.and_then(|c| crate::report::disturbed(name, c, m.cores)) {
                let _ = writeln!(out, "- {line}");
            }
        }
        let _ = writeln!(out, "\n{END}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_follow_each_chunks_count() {
        // Two chunks of 2 rows, committed at 1.0 s and 2.0 s.
        let polls = [
            (0.5, vec![0, 0]),
            (1.5, vec![1, 0]),
            (2.5, vec![2, 1]),
            (3.0, vec![2, 2]),
        ];
        let lags = row_lags_us(&[2, 2], &[1.0, 2.0], &polls);
        assert_eq!(lags, vec![500_000, 1_500_000, 500_000, 1_000_000]);
        // Shipped out of order: the second chunk's rows first.
        let polls = [(2.2, vec![0, 2]), (2.5, vec![2, 2])];
        let lags = row_lags_us(&[2, 2], &[1.0, 2.0], &polls);
        assert_eq!(lags, vec![1_500_000, 1_500_000, 200_000, 200_000]);
        // Rows never counted have no lag; counts beyond a chunk's rows are capped.
        assert_eq!(row_lags_us(&[2], &[1.0], &[(1.5, vec![1])]), vec![500_000]);
        assert_eq!(row_lags_us(&[1], &[1.0], &[(1.5, vec![3])]), vec![500_000]);
    }

    #[test]
    fn the_offered_rate_runs_from_the_first_commit_to_the_last() {
        let s = Steady {
            rows: 100,
            chunks: 5,
            first_commit_s: 0.1,
            load_s: 0.9,
            ..Default::default()
        };
        assert!((s.offered_rate() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn chunk_counts_read_clickhouse_answers() {
        assert_eq!(chunk_counts("0\t10\n2\t5\n", 3).unwrap(), vec![10, 0, 5]);
        // Keys out of range (another chunk's time) are left out; an empty answer is zeros.
        assert_eq!(chunk_counts("-1\t4\n3\t1\n1\t7", 3).unwrap(), vec![0, 7, 0]);
        assert_eq!(chunk_counts("", 2).unwrap(), vec![0, 0]);
        assert!(chunk_counts("1 2\n", 2).is_err());
        assert!(chunk_counts("x\t2\n", 2).is_err());
        assert_eq!(capped_total(&[5, 3], &[4, 4]), 7);
    }

    #[test]
    fn rows_are_copy_and_tab_separated_text() {
        let dir = std::env::temp_dir().join(format!("parley-shipping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let Generated {
            files,
            bytes,
            kinds,
            chunk_rows,
            ..
        } = generate(&dir, Uuid::nil(), 1000, 3, 1, 1_750_000_000).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(chunk_rows, vec![334, 334, 332]);
        let text: String = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        assert_eq!(text.len() as u64, bytes);
        assert_eq!(text.lines().count(), 1000);
        assert_eq!(kinds.iter().map(|(_, n)| n).sum::<u64>(), 1000);
        for line in text.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 6, "{line}");
            assert!(fields[2].starts_with("message.") || fields[2].starts_with("contact."));
            // Each chunk's rows occurred one second after the previous chunk's.
            assert!(fields[4].starts_with("2025-06-15 15:06:4"), "{line}");
            let payload: serde_json::Value = serde_json::from_str(fields[5]).unwrap();
            assert!(payload.is_object());
        }
        let first_of = |f: &PathBuf| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines()
                .next()
                .unwrap()
                .split('\t')
                .nth(4)
                .unwrap()
                .to_owned()
        };
        assert_eq!(first_of(&files[0]), "2025-06-15 15:06:40");
        assert_eq!(first_of(&files[2]), "2025-06-15 15:06:42");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(escape("a\\b\tc"), "a\\\\b\\tc");
    }
}
