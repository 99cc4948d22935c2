//! The performance issue's analytics shipping target: at least 100,000 events/s moved from
//! PostgreSQL's `analytics_outbox` to ClickHouse by the release server's shipper, with a
//! lag under 5 s.
//!
//! Realistic outbox rows (message and contact events with the API's JSON payloads) are
//! COPYed into the outbox in chunks, each its own transaction, as fast as psql goes, while
//! the server runs; ClickHouse's row count of the run's project is polled every 100 ms. The
//! shipper takes rows in `seq` order, so the count says up to which row ClickHouse has
//! them: each row's lag is from its chunk's commit to the first poll that counts it. The
//! reference is ClickHouse's own insert of the same rows (the same file, TabSeparated, one
//! HTTP request) into a copy of the `events` table.

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
    server::{self, Server},
    summary,
};

pub const TARGET_EVENTS_S: f64 = 100_000.0;
pub const TARGET_LAG_S: f64 = 5.0;
const CLICKHOUSE_URL: &str = "http://127.0.0.1:8123";
/// ClickHouse is asked for the run's count this often.
const POLL: Duration = Duration::from_millis(100);
/// The run gives up when ClickHouse's count has not moved for this long.
const STALL: Duration = Duration::from_secs(60);
const COLUMNS: &str = "event_id, project_id, kind, actor_id, occurred_at, payload";

pub const BEGIN: &str =
    "<!-- shipping:begin (written by scripts/bench; --shipping-only replaces this section) -->";
pub const END: &str = "<!-- shipping:end -->";

#[derive(Default)]
pub struct ShippingFigures {
    pub rows: u64,
    pub chunks: usize,
    pub file_bytes: u64,
    /// Mix of kinds: (kind, rows).
    pub kinds: Vec<(String, u64)>,
    /// From the first COPY's start to the last one's commit.
    pub load_s: f64,
    /// From the first COPY's start until ClickHouse had every row.
    pub all_shipped_s: f64,
    /// From the last commit until ClickHouse had every row.
    pub after_load_s: f64,
    /// Rows ClickHouse had when the run ended (all of them unless it stalled).
    pub shipped: u64,
    /// Per row, from its chunk's commit to the poll that first counted it.
    pub lag: Summary,
    /// (seconds since the load's start, rows committed, rows in ClickHouse), per poll.
    pub timeline: Vec<(f64, u64, u64)>,
    pub cpu: CpuUse,
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
    pub fn rate(&self) -> f64 {
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

/// The generated files, their total bytes, and the rows of each kind.
struct Generated {
    files: Vec<PathBuf>,
    bytes: u64,
    kinds: Vec<(String, u64)>,
}

/// Writes `rows` outbox rows of `project_id` in `chunks` files (COPY text format, also
/// ClickHouse's TabSeparated).
fn generate(
    dir: &Path,
    project_id: Uuid,
    rows: u64,
    chunks: usize,
    seed: u64,
) -> anyhow::Result<Generated> {
    let mut rng = Rng(seed | 1);
    let occurred = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let mut files = Vec::with_capacity(chunks);
    let mut bytes = 0u64;
    let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
    let per_chunk = rows.div_ceil(chunks as u64);
    let mut i = 0u64;
    for c in 0..chunks {
        let path = dir.join(format!("outbox-{c:03}.tsv"));
        let mut w = BufWriter::new(std::fs::File::create(&path)?);
        let end = (i + per_chunk).min(rows);
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
        files,
        bytes,
        kinds: kinds.into_iter().collect(),
    })
}

/// Lag of every row, in microseconds: row `r` (0-based, in seq order) was committed at
/// `commits[chunk of r]` and first counted by the first poll whose count exceeds `r`.
/// `chunk_ends[c]` is the number of rows committed once chunk `c` was.
pub fn row_lags_us(chunk_ends: &[u64], commits: &[f64], polls: &[(f64, u64)]) -> Vec<u64> {
    let mut lags = Vec::new();
    let mut poll = 0usize;
    let mut start = 0u64;
    for (c, &end) in chunk_ends.iter().enumerate() {
        for r in start..end {
            while poll < polls.len() && polls[poll].1 <= r {
                poll += 1;
            }
            let Some(&(seen, _)) = polls.get(poll) else {
                return lags;
            };
            lags.push(((seen - commits[c]).max(0.0) * 1e6) as u64);
        }
        start = end;
    }
    lags
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
        let server = Server::start(server::Config {
            binary: &self.args.server,
            work_dir: &self.work_dir,
            database_url: pg::url(&self.database),
            clickhouse_database: self.clickhouse_database.clone(),
            jwt_secret: self.jwt_secret.clone(),
            name: "shipping",
            env: Vec::new(),
        })
        .await
        .context("starting the server")?;
        let pid = server.pid;
        self.extra_server = Some(server);
        Ok(pid)
    }

    async fn shipping_phases(&mut self, f: &mut ShippingFigures) -> anyhow::Result<()> {
        let pid = self.shipping_server().await?;
        let dir = self.work_dir.join("shipping");
        std::fs::create_dir_all(&dir)?;
        let project_id = Uuid::new_v4();
        let (rows, chunks) = (f.rows, f.chunks);
        progress!("shipping: generating {rows} outbox rows in {chunks} chunks");
        let Generated {
            files,
            bytes,
            kinds,
        } = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || generate(&dir, project_id, rows, chunks, 7))
                .await??
        };
        f.file_bytes = bytes;
        f.kinds = kinds;
        let outcome = self.ship(f, pid, project_id, &files).await;
        if outcome.is_ok() {
            self.shipping_reference(f, &files).await?;
        }
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

    /// The measured load: the chunks COPYed one after the other while ClickHouse's count is
    /// polled, until every row is there.
    async fn ship(
        &self,
        f: &mut ShippingFigures,
        pid: u32,
        project_id: Uuid,
        files: &[PathBuf],
    ) -> anyhow::Result<()> {
        self.outbox_empty().await?;
        pg::sql(&self.database, "CHECKPOINT").await?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let count_sql = format!(
            "SELECT count() FROM `{}`.events WHERE project_id = toUUID('{project_id}')",
            self.clickhouse_database
        );
        progress!(
            "shipping: COPY of {} rows ({:.0} MB) in {} chunks while the server ships",
            f.rows,
            f.file_bytes as f64 / 1e6,
            files.len()
        );
        let started = Instant::now();
        let cpu_start = cpu_snapshot();
        // The loader: one psql per chunk (each its own transaction), in order.
        let loader = {
            let (database, files) = (self.database.clone(), files.to_vec());
            tokio::spawn(async move {
                let mut commits = Vec::with_capacity(files.len());
                for file in &files {
                    pg::psql(
                        &database,
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
                    commits.push(started.elapsed().as_secs_f64());
                }
                anyhow::Ok(commits)
            })
        };
        let per_chunk = f.rows.div_ceil(files.len() as u64);
        let chunk_ends: Vec<u64> = (1..=files.len() as u64)
            .map(|c| (c * per_chunk).min(f.rows))
            .collect();
        let mut polls: Vec<(f64, u64)> = Vec::new();
        let mut commits: Option<Vec<f64>> = None;
        let mut loader = Some(loader);
        let (mut last_count, mut last_change) = (0u64, Instant::now());
        let mut last_report = Instant::now();
        // Bounded: the run ends when ClickHouse has every row or its count stalls.
        loop {
            if let Some(l) = loader.as_ref()
                && l.is_finished()
            {
                let done = loader.take().context("the loader")?.await??;
                commits = Some(done);
            }
            let count: u64 = clickhouse(&http, count_sql.clone())
                .await?
                .parse()
                .context("ClickHouse's count")?;
            let at = started.elapsed().as_secs_f64();
            polls.push((at, count));
            // The committed rows are known once the loader ends: filled in below.
            f.timeline.push((at, 0, count));
            if count != last_count {
                last_count = count;
                last_change = Instant::now();
            }
            if count >= f.rows && commits.is_some() {
                break;
            }
            if last_change.elapsed() > STALL {
                progress!("shipping: ClickHouse's count stalled at {count} for {STALL:?}");
                break;
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                progress!(
                    "shipping: {count} of {} rows in ClickHouse after {at:.1} s",
                    f.rows
                );
            }
            tokio::time::sleep(POLL).await;
        }
        let commits = match commits {
            Some(c) => c,
            None => loader.take().context("the loader")?.await??,
        };
        f.cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), pid);
        // The committed rows at each poll, now that the commit times are known.
        for point in &mut f.timeline {
            let done = commits.iter().take_while(|t| **t <= point.0).count();
            point.1 = if done == 0 { 0 } else { chunk_ends[done - 1] };
        }
        f.load_s = commits.last().copied().unwrap_or(0.0);
        let (end_at, shipped) = polls.last().copied().unwrap_or((0.0, 0));
        f.shipped = shipped.min(f.rows);
        f.all_shipped_s = end_at;
        f.after_load_s = (end_at - f.load_s).max(0.0);
        let mut lags = row_lags_us(&chunk_ends, &commits, &polls);
        f.lag = Summary::of(&mut lags);
        progress!(
            "shipping: {} of {} rows in ClickHouse {:.1} s after the load began ({:.1} s after \
             it ended; load {:.1} s): {:.0} events/s; lag p50 / p95 / p99 / max {}; CPU: {}",
            f.shipped,
            f.rows,
            f.all_shipped_s,
            f.after_load_s,
            f.load_s,
            f.rate(),
            f.lag.quartet(),
            f.cpu.describe(self.cores)
        );
        if f.shipped < f.rows {
            bail!(
                "ClickHouse had {} of {} rows when the run ended",
                f.shipped,
                f.rows
            );
        }
        Ok(())
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
        let project_id = Uuid::new_v4();
        let generated = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || generate(&dir, project_id, rows, 10, 11)).await??
        };
        let files = generated.files;
        let mut f = ShippingFigures {
            rows,
            file_bytes: generated.bytes,
            ..Default::default()
        };
        let result = self.ship(&mut f, 0, project_id, &files).await;
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}

impl ShippingFigures {
    pub fn summary_rows(&self, chart: Option<&str>) -> Vec<summary::Row> {
        if self.all_shipped_s <= 0.0 {
            return Vec::new();
        }
        let ratio = self.ratio();
        let chart = chart.map(str::to_owned);
        vec![
            summary::Row {
                bench: format!(
                    "Analytics shipping, {} outbox rows COPYed in {} chunks → ClickHouse \
                     (server's shipper): events/s, load start to all in ClickHouse",
                    thousands(self.rows as f64),
                    self.chunks
                ),
                parley: format!(
                    "{} events/s ({:.1} s; {:.1} s after the load's end)",
                    thousands(self.rate()),
                    self.all_shipped_s,
                    self.after_load_s
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
            },
            summary::Row {
                bench: "Analytics shipping: lag from a row's commit to ClickHouse, p50 / p99 / max"
                    .into(),
                parley: format!(
                    "{} / {} / {} s",
                    load::ms(self.lag.p50_ms / 1000.0),
                    load::ms(self.lag.p99_ms / 1000.0),
                    load::ms(self.lag.max_ms / 1000.0)
                ),
                reference: "–".into(),
                ratio: None,
                ratio_text: String::new(),
                target: format!("< {TARGET_LAG_S:.0} s"),
                met: Some(self.lag.max_ms < TARGET_LAG_S * 1000.0 && self.shipped >= self.rows),
                chart,
            },
        ]
    }

    pub fn chart(&self, report: &Path) -> Option<String> {
        if self.all_shipped_s <= 0.0 {
            return None;
        }
        let mut rate = vec![Bar::parley(
            "Parley's shipper (outbox → ClickHouse)",
            self.rate(),
        )];
        if let Some(r) = self.reference_rate() {
            rate.push(Bar::reference("ClickHouse INSERT, same rows", r));
        }
        let lag = vec![
            Bar::parley("lag p50", self.lag.p50_ms / 1000.0),
            Bar::parley("lag p99", self.lag.p99_ms / 1000.0),
            Bar::parley("lag max", self.lag.max_ms / 1000.0),
        ];
        // The backlog over time, as bars every tenth of the run.
        let mut backlog = Vec::new();
        let n = self.timeline.len();
        for k in 0..=10 {
            let Some(&(t, committed, shipped)) = self.timeline.get((k * n.saturating_sub(1)) / 10)
            else {
                continue;
            };
            backlog.push(Bar::parley(
                format!("t = {t:.1} s: committed − in ClickHouse"),
                committed.saturating_sub(shipped) as f64,
            ));
        }
        charts::write(
            report,
            "shipping",
            "Analytics shipping: PostgreSQL outbox → ClickHouse (release server) vs ClickHouse's own INSERT",
            &[
                Panel::new("Throughput", "events per second", rate)
                    .target(TARGET_EVENTS_S, "target ≥ 100,000/s"),
                Panel::new("Lag from a row's commit to ClickHouse", "seconds", lag)
                    .target(TARGET_LAG_S, "target < 5 s"),
                Panel::new("Rows committed but not yet in ClickHouse", "rows", backlog),
            ],
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
        out.push_str(
            "| benchmark | Parley | reference (same run) | ratio | target | met? |\n\
             | --- | --- | --- | --- | --- | --- |\n",
        );
        for r in self.summary_rows(chart) {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {met} |",
                r.bench,
                r.parley,
                r.reference,
                if r.ratio_text.is_empty() {
                    "–"
                } else {
                    &r.ratio_text
                },
                r.target
            );
        }
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
             `--shipping-rows N` (default 1000000), `--shipping-chunks N` (COPY transactions, \
             default 20).\n\n### What was measured\n"
        );
        let _ = writeln!(
            out,
            "The release server runs with its default shipper settings (`ANALYTICS_BATCH_SIZE` \
             {}, `ANALYTICS_FLUSH_INTERVAL_MS` {}): one shipper per process takes the oldest \
             unshipped batch in `seq` order (its rows locked `FOR UPDATE SKIP LOCKED` and \
             marked shipped in one transaction), inserts it into ClickHouse's `events` (one \
             RowBinary INSERT) and commits, one batch after the other (see \
             `analytics/src/shipper.rs`). The bench generates {} outbox rows of one project as the \
             API writes them ({}; JSON payloads with ids, WhatsApp message ids, statuses and \
             pricing; {:.0} MB in COPY text format, {:.0} bytes a row), waits until the outbox \
             has nothing pending, and COPYs the rows into `analytics_outbox` in {} chunks, one \
             psql `\\copy` after the other, each its own transaction, as fast as PostgreSQL \
             takes them, while the server runs. Meanwhile it asks ClickHouse for the project's \
             `count()` in `events` every 100 ms. The shipper takes rows in `seq` order, so a \
             count of n means rows 1 to n are in ClickHouse: a row's lag is the time from its \
             chunk's commit (psql's exit) to the first poll counting it, which includes up to \
             100 ms of polling. The rate is the rows over the time from the first COPY's start \
             to the poll that counted the last row.\n\n\
             **Reference:** ClickHouse's own insert of the same rows: the same files (PostgreSQL's \
             COPY text format is also ClickHouse's TabSeparated) sent as one HTTP `INSERT INTO \
             events_ref ({COLUMNS}) FORMAT TabSeparated` into a copy of the `events` table \
             (`CREATE TABLE … AS events`: same columns, engine, partitioning and order), timed \
             from the request to its answer, after the shipping run.\n",
            self.batch_size,
            self.flush_interval_ms,
            thousands(self.rows as f64),
            kinds.join(", "),
            self.file_bytes as f64 / 1e6,
            self.file_bytes as f64 / self.rows.max(1) as f64,
            self.chunks
        );
        if self.all_shipped_s > 0.0 {
            let _ = writeln!(
                out,
                "- load: {} chunks committed in {:.1} s ({} rows/s into the outbox)\n\
                 - ClickHouse had all {} rows {:.1} s after the load began, {:.1} s after it \
                 ended: {} events/s\n\
                 - lag from commit to ClickHouse, p50 / p95 / p99 / max: {} / {} / {} / {} ms \
                 (mean {} ms)\n\
                 - CPU from the load's start to the last row in ClickHouse: {}",
                self.chunks,
                self.load_s,
                thousands(self.rows as f64 / self.load_s.max(1e-9)),
                thousands(self.shipped as f64),
                self.all_shipped_s,
                self.after_load_s,
                thousands(self.rate()),
                load::ms(self.lag.p50_ms),
                load::ms(self.lag.p95_ms),
                load::ms(self.lag.p99_ms),
                load::ms(self.lag.max_ms),
                load::ms(self.lag.mean_ms),
                self.cpu.describe(m.cores)
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
        for (name, cpu) in [
            ("the shipping run", &self.cpu),
            ("the reference", &self.reference_cpu),
        ] {
            if let Some(line) = crate::report::disturbed(name, cpu, m.cores) {
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
    fn lags_follow_the_count() {
        // Two chunks of 2 rows, committed at 1.0 s and 2.0 s; polls see 0, 1, 3, 4 rows.
        let polls = [(0.5, 0), (1.5, 1), (2.5, 3), (3.0, 4)];
        let lags = row_lags_us(&[2, 4], &[1.0, 2.0], &polls);
        assert_eq!(lags, vec![500_000, 1_500_000, 500_000, 1_000_000]);
        // Rows never counted have no lag.
        assert_eq!(row_lags_us(&[2], &[1.0], &[(1.5, 1)]), vec![500_000]);
    }

    #[test]
    fn rows_are_copy_and_tab_separated_text() {
        let dir = std::env::temp_dir().join(format!("parley-shipping-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let Generated {
            files,
            bytes,
            kinds,
        } = generate(&dir, Uuid::nil(), 1000, 3, 1).unwrap();
        assert_eq!(files.len(), 3);
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
            let payload: serde_json::Value = serde_json::from_str(fields[5]).unwrap();
            assert!(payload.is_object());
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(escape("a\\b\tc"), "a\\\\b\\tc");
    }
}
