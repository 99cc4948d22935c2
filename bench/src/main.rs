//! `parley-bench`: the contacts issue's speed and memory targets measured against the real
//! services on this machine (PostgreSQL, Redis, ClickHouse) through the release server,
//! each beside a reference measured in the same run, and the live chat issue's fan-out
//! latency and idle-subscription memory (`chat_run.rs`), and the billing issue's monthly
//! usage report over 10,000,000 events in ClickHouse (`billing.rs`), and the campaigns
//! issue's dispatcher throughput, pacing and audience snapshot (`campaign.rs`). Run it
//! through `scripts/bench`.
//!
//! Progress goes to stderr, the table to stdout, the report to docs/benchmarks.md.

// Before the modules, so that they can use it.
macro_rules! progress {
    ($($t:tt)*) => {
        eprintln!("[bench {}] {}", chrono::Local::now().format("%H:%M:%S"), format!($($t)*))
    };
}

mod args;
mod billing;
mod billing_report;
mod campaign;
mod campaign_fake;
mod campaign_report;
mod charts;
mod chat;
mod chat_report;
mod chat_run;
mod data;
mod gql;
mod load;
mod pg;
mod procfs;
mod profile;
mod profile_run;
mod redis_bench;
mod report;
mod sections;
mod server;
mod shipping;
mod summary;
mod transport;
mod wrk;

use std::{
    fmt::Write as _,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::{
    args::Args,
    gql::Gql,
    procfs::{CpuUse, cpu_snapshot, mb},
    report::{CopyFigures, ExportFigures, ImportFigures, Machine, Results},
    server::Server,
};

const SIGN_UP: &str =
    "mutation($input: SignUpInput!) { signUp(input: $input) { token project { id } } }";
const CREATE_TAG: &str = "mutation($name: String!) { createTag(input: { name: $name }) { id } }";
const CREATE_ATTRIBUTE: &str = "mutation($key: String!, $displayName: String!) { \
    createAttribute(key: $key, displayName: $displayName) { id } }";
const UPLOAD: &str = "mutation($file: Upload!) { uploadContactImport(file: $file) { \
    import { id status error totalRows } } }";
const START: &str = "mutation($id: ID!, $mapping: [ColumnMappingInput!]!) { \
    startContactImport(id: $id, mapping: $mapping) { id status } }";
const POLL: &str = "query($id: ID!) { contactImport(id: $id) { \
    status totalRows processedRows added failed error } }";
pub(crate) const PAGE: &str = "{ contacts(first: 50) { edges { node { id name phone tags { name } \
    attributes { key value } } } } }";
const COUNT: &str = "{ contactCount }";
const EXPORT: &str = "mutation { exportContacts { url } }";
/// wrk's threads for the page's load test (as for the trivial query).
pub(crate) const PAGE_THREADS: u32 = 2;

struct Bench {
    args: Args,
    work_dir: PathBuf,
    own_work_dir: bool,
    database: String,
    database_created: bool,
    clickhouse_database: String,
    /// The billing benchmark's own ClickHouse database (see `billing.rs`).
    billing_database: String,
    billing_database_created: bool,
    server: Option<Server>,
    /// The live-chat benchmark's nodes, while they run.
    chat_servers: Vec<Server>,
    /// The campaign benchmark's server while it runs, its scratch files, its figures.
    campaign_server: Option<Server>,
    campaign_files: Vec<PathBuf>,
    campaign: Option<campaign_report::CampaignFigures>,
    /// Shared by every server process of the run (the live-chat nodes must agree on it).
    jwt_secret: String,
    /// Found only when the contacts benchmarks run.
    pgbench: Option<PathBuf>,
    cores: usize,
    /// The trivial-query, shipping and profiling server while it runs.
    extra_server: Option<Server>,
    transport: Option<transport::TransportFigures>,
    shipping: Option<shipping::ShippingFigures>,
    /// The contacts project's owner (replaying the page under perf).
    contacts_gql: Option<Gql>,
    profile: Option<profile_run::ProfileFigures>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let mut bench = match Bench::prepare(args) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("parley-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut results = Results {
        rows: bench.args.rows,
        seconds: bench.args.seconds,
        concurrency: bench.args.concurrency,
        command: bench.args.command.clone(),
        chat_only: !bench.args.contacts,
        ..Default::default()
    };
    let mut interrupted = false;
    let outcome = tokio::select! {
        r = bench.run(&mut results) => r,
        s = stop_signal() => {
            interrupted = true;
            Err(anyhow::anyhow!("stopped by {s}"))
        }
    };
    bench.cleanup().await;
    if let Err(e) = &outcome {
        progress!("FAILED: {e:#}");
        results.error = Some(format!("{e:#}"));
    }
    println!("{}", results.table());
    if let Some(campaign) = &bench.campaign {
        println!("{}", campaign.table());
    }
    // The charts of what ran, beside the report.
    let report_path = bench.args.report.clone().filter(|_| !interrupted);
    let mut campaign_chart = None;
    let mut transport_chart = None;
    let mut shipping_chart = None;
    if let Some(path) = &report_path {
        if bench.args.contacts
            && let Some(c) = results.contacts_chart(path)
        {
            results.charts.insert("contacts", c);
        }
        if let Some(c) = results.chat.as_ref().and_then(|c| c.chart(path)) {
            results.charts.insert("chat", c);
        }
        if let Some(c) = results.billing.as_ref().and_then(|b| b.chart(path)) {
            results.charts.insert("billing", c);
        }
        campaign_chart = bench.campaign.as_ref().and_then(|c| c.chart(path));
        transport_chart = bench.transport.as_ref().and_then(|t| t.chart(path));
        shipping_chart = bench.shipping.as_ref().and_then(|s| s.chart(path));
    }
    let partial = !bench.args.contacts;
    let command_for = |flag: &str| {
        if partial {
            results.command.clone()
        } else {
            format!(
                "{}   # or this part alone: scripts/bench {flag}",
                results.command
            )
        }
    };
    let campaign_section = bench.campaign.as_ref().map(|figures| {
        summary::decorate(
            &figures.section(&results.machine, &command_for("--campaign-only"), partial),
            &figures.summary_rows(campaign_chart.as_deref()),
            campaign_chart.as_deref().map(|c| ("Campaign dispatch", c)),
        )
    });
    let transport_section = bench.transport.as_ref().map(|t| {
        t.section(
            &results.machine,
            &command_for("--transport-only"),
            partial,
            transport_chart.as_deref(),
        )
    });
    let shipping_section = bench.shipping.as_ref().map(|f| {
        f.section(
            &results.machine,
            &command_for("--shipping-only"),
            partial,
            shipping_chart.as_deref(),
        )
    });
    let profile_section = bench
        .profile
        .as_ref()
        .map(|p| p.section(&results.machine, &results.command));
    if interrupted {
        // An interrupted run measured nothing worth keeping: the last report stays.
        progress!("interrupted: the report was not written");
    } else if let Some(path) = &report_path {
        let existing = std::fs::read_to_string(path).ok();
        let existing = existing.as_deref();
        // (ran, its new section, begin, end): the sections with markers, in report order.
        let marked: [(bool, Option<String>, &str, &str); 6] = [
            (
                bench.args.chat,
                Some(results.chat_section()),
                chat_report::BEGIN,
                chat_report::END,
            ),
            (
                bench.args.billing,
                Some(results.billing_section()).filter(|s| !s.is_empty()),
                billing_report::BEGIN,
                billing_report::END,
            ),
            (
                bench.args.campaign,
                campaign_section,
                campaign_report::BEGIN,
                campaign_report::END,
            ),
            (
                bench.args.transport,
                transport_section,
                transport::BEGIN,
                transport::END,
            ),
            (
                bench.args.shipping,
                shipping_section,
                shipping::BEGIN,
                shipping::END,
            ),
            (
                bench.args.profile,
                profile_section,
                profile_run::BEGIN,
                profile_run::END,
            ),
        ];
        let mut text = if partial {
            existing.map(str::to_owned)
        } else {
            Some(results.markdown())
        };
        for (ran, section, begin, end) in marked {
            // What ran replaces its section; in a full run, what did not run (`--no-chat`,
            // a run that stopped early, no `--profile`) keeps its last figures.
            let kept = existing
                .and_then(|e| sections::extract(e, begin, end))
                .map(str::to_owned);
            let new = match section {
                Some(s) if ran => Some(s),
                _ if partial => None,
                _ => kept,
            };
            if let Some(new) = new {
                text = Some(sections::splice(text.as_deref(), begin, end, &new));
            }
        }
        let text = summary::refresh(&text.unwrap_or_default());
        match std::fs::write(path, text) {
            Ok(()) => progress!("report written to {}", path.display()),
            Err(e) => progress!("could not write {}: {e}", path.display()),
        }
    }
    if outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = hup.recv() => "SIGHUP",
    }
}

impl Bench {
    /// A release server on this run's databases and JWT secret (`name` as in
    /// [`server::Config::name`]), with `env` added.
    async fn start_server(
        &self,
        name: &str,
        env: Vec<(&'static str, String)>,
    ) -> anyhow::Result<Server> {
        Server::start(server::Config {
            binary: &self.args.server,
            work_dir: &self.work_dir,
            database_url: pg::url(&self.database),
            clickhouse_database: self.clickhouse_database.clone(),
            jwt_secret: self.jwt_secret.clone(),
            name,
            env,
        })
        .await
    }

    fn prepare(args: Args) -> anyhow::Result<Self> {
        let suffix = format!(
            "{}_{}",
            chrono::Utc::now().format("%Y%m%d%H%M%S"),
            std::process::id()
        );
        let (work_dir, own_work_dir) = match &args.work_dir {
            Some(d) => (d.clone(), false),
            None => (
                std::env::temp_dir().join(format!("parley-bench-{suffix}")),
                true,
            ),
        };
        std::fs::create_dir_all(&work_dir)
            .with_context(|| format!("creating {}", work_dir.display()))?;
        let pgbench = if args.contacts {
            Some(pg::find_pgbench(args.pgbench.as_deref())?)
        } else {
            None
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            args,
            work_dir,
            own_work_dir,
            database: format!("parley_bench_{suffix}"),
            database_created: false,
            clickhouse_database: format!("parley_bench_{suffix}"),
            billing_database: format!("parley_bench_{suffix}_billing"),
            billing_database_created: false,
            server: None,
            chat_servers: Vec::new(),
            campaign_server: None,
            campaign_files: Vec::new(),
            campaign: None,
            jwt_secret: format!("bench-{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
            pgbench,
            cores,
            extra_server: None,
            transport: None,
            shipping: None,
            contacts_gql: None,
            profile: None,
        })
    }

    /// Records a name for the script's exit trap, in case this process is killed.
    fn remember(&self, file: &str, value: &str) {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work_dir.join(file))
        {
            let _ = writeln!(f, "{value}");
        }
    }

    async fn run(&mut self, r: &mut Results) -> anyhow::Result<()> {
        r.machine = machine().await;
        progress!("work dir {}", self.work_dir.display());
        let a = &self.args;
        if a.contacts || a.chat || a.campaign || a.transport || a.shipping {
            self.remember("databases", &self.database);
            self.remember("clickhouse_databases", &self.clickhouse_database);
            pg::sql("postgres", &format!("CREATE DATABASE {}", self.database)).await?;
            self.database_created = true;
            progress!("database {} created", self.database);
        }
        if self.args.contacts {
            self.run_contacts(r).await?;
        }
        if self.args.chat {
            self.run_chat(r).await?;
        }
        if self.args.billing {
            self.run_billing(r).await?;
        }
        if self.args.campaign {
            self.run_campaign().await?;
        }
        if self.args.transport {
            self.run_transport().await?;
        }
        if self.args.shipping {
            self.run_shipping().await?;
        }
        if self.args.profile {
            let figures = self.run_profile(r).await;
            self.profile = Some(figures);
        }
        Ok(())
    }

    /// Stops the servers of the benchmarks that ran before: they would share the cores.
    pub(crate) async fn stop_other_servers(&mut self) {
        if let Some(server) = self.server.take() {
            progress!("stopping the contacts benchmarks' server");
            server.stop().await;
        }
        self.stop_chat_nodes().await;
        if let Some(server) = self.campaign_server.take() {
            server.stop().await;
        }
        if let Some(server) = self.extra_server.take() {
            server.stop().await;
        }
    }

    async fn run_contacts(&mut self, r: &mut Results) -> anyhow::Result<()> {
        progress!(
            "{} rows, load tests {} s × {} connections; starting the server",
            self.args.rows,
            self.args.seconds,
            self.args.concurrency
        );
        let server = self.start_server("", Vec::new()).await?;
        let pid = server.pid;
        let base = server.base.clone();
        self.server = Some(server);
        tokio::time::sleep(Duration::from_secs(2)).await;
        r.idle = procfs::memory(pid);
        progress!(
            "server up at {base} (pid {pid}), idle VmRSS {:.0} MB",
            r.idle.map_or(0.0, |m| mb(m.rss_kb))
        );

        let mut gql = Gql::new(&base)?;
        let signed = gql
            .run(
                SIGN_UP,
                json!({ "input": {
                    "username": "bench-owner", "displayName": "Bench Owner",
                    "password": "a long bench password", "projectName": "Bench",
                }}),
            )
            .await
            .context("signUp")?;
        gql.token = signed["signUp"]["token"].as_str().map(str::to_owned);
        let project_id = str_at(&signed, "/signUp/project/id")?;
        gql.project_id = Some(project_id.clone());
        let mut tag_ids = Vec::new();
        for name in data::TAGS {
            let d = gql.run(CREATE_TAG, json!({ "name": name })).await?;
            tag_ids.push(str_at(&d, "/createTag/id")?);
        }
        let mut attribute_ids = Vec::new();
        for key in data::ATTRIBUTES {
            let d = gql
                .run(CREATE_ATTRIBUTE, json!({ "key": key, "displayName": key }))
                .await?;
            attribute_ids.push(str_at(&d, "/createAttribute/id")?);
        }

        progress!("generating {} rows", self.args.rows);
        let ids = data::Ids {
            project_id: project_id.clone(),
            tag_ids,
            attribute_ids,
        };
        let (rows, dir) = (self.args.rows, self.work_dir.clone());
        let generated =
            tokio::task::spawn_blocking(move || data::generate(rows, &ids, &dir)).await??;
        r.csv_bytes = generated.csv.len() as u64;
        progress!(
            "CSV {:.1} MB; COPY files {:.1} MB",
            r.csv_bytes as f64 / 1e6,
            generated.copy_bytes as f64 / 1e6
        );

        let csv = generated.csv;
        let import = self.import(&gql, pid, csv).await?;
        let completed = import.status == "COMPLETED";
        let import_status = format!(
            "{} ({} of {} rows, error {:?})",
            import.status, import.processed, import.total_rows, import.error
        );
        r.import = Some(import);
        if !completed {
            let log = server::log_tail(&self.work_dir);
            progress!("the server's log ends with:\n{log}");
            let errors: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("ERROR") || l.contains("error"))
                .collect();
            if let Some(last) = errors.last() {
                r.notes.push(format!(
                    "the server logged: `{}`",
                    last.chars()
                        .take(1500)
                        .collect::<String>()
                        .replace('`', "'")
                ));
            }
            bail!("the import did not complete: {import_status}");
        }
        let drained = self.wait_for_outbox().await;
        if let Some(i) = r.import.as_mut() {
            i.outbox_drain_s = drained;
        }
        let count = gql.run(COUNT, json!({})).await?["contactCount"]
            .as_u64()
            .unwrap_or(0);
        if count != self.args.rows {
            r.notes.push(format!(
                "the project holds {count} contacts after the import, not {}",
                self.args.rows
            ));
        }

        // Right after a bulk load the tables have no statistics until autovacuum analyzes
        // them (within about a minute): one connection's latency in that state, then the
        // analyze autovacuum would do, so that the load tests see the steady state.
        r.page_before_analyze = Some(self.page_probe(&gql).await?);
        let analyzed = Instant::now();
        pg::sql(
            &self.database,
            "VACUUM (ANALYZE) contacts, contact_tags, contact_attributes, tags, attributes",
        )
        .await?;
        r.analyze_s = Some(analyzed.elapsed().as_secs_f64());
        progress!(
            "VACUUM (ANALYZE) in {:.1} s",
            analyzed.elapsed().as_secs_f64()
        );

        r.page = Some(self.page_load(&gql, pid).await?);
        let (script, pgbench) = self.pgbench_reference(&project_id, pid).await?;
        r.pgbench_script = script;
        r.pgbench = Some(pgbench);
        r.export = Some(self.export(&gql, pid).await?);
        r.copy = Some(
            self.copy_reference(
                &generated.contacts_file,
                &generated.tags_file,
                &generated.attributes_file,
                generated.copy_bytes,
                pid,
            )
            .await?,
        );
        for f in [
            &generated.contacts_file,
            &generated.tags_file,
            &generated.attributes_file,
        ] {
            let _ = std::fs::remove_file(f);
        }
        r.notes.push(format!(
            "the server's database pool has its default size (DATABASE_MAX_CONNECTIONS=20); \
             the load tests use {} connections",
            self.args.concurrency
        ));
        self.contacts_gql = Some(gql);
        Ok(())
    }

    async fn import(&self, gql: &Gql, pid: u32, csv: Vec<u8>) -> anyhow::Result<ImportFigures> {
        // Both write phases (import and COPY) start after a checkpoint.
        pg::sql(&self.database, "CHECKPOINT").await?;
        let sampler = procfs::Sampler::start(pid);
        progress!("uploading {:.1} MB", csv.len() as f64 / 1e6);
        let uploaded_at = Instant::now();
        let up = gql.upload(UPLOAD, "contacts.csv", csv).await?;
        let upload_s = uploaded_at.elapsed().as_secs_f64();
        let hwm_after_upload_kb = procfs::memory(pid).map_or(0, |m| m.hwm_kb);
        let job = &up["uploadContactImport"]["import"];
        if job["status"] != "UPLOADED" {
            bail!("the upload was refused: {job}");
        }
        let id = str_at(job, "/id")?;
        progress!(
            "uploaded in {upload_s:.1} s ({} rows); VmHWM {:.0} MB; starting the import",
            job["totalRows"],
            mb(hwm_after_upload_kb)
        );
        let mapping = json!([
            { "column": "Name", "field": "NAME" },
            { "column": "Phone", "field": "PHONE" },
            { "column": "Tags", "field": "TAGS" },
            { "column": "City", "field": "ATTRIBUTE", "attributeKey": "City" },
            { "column": "Email", "field": "ATTRIBUTE", "attributeKey": "Email" },
            { "column": "Plan", "field": "ATTRIBUTE", "attributeKey": "Plan" },
        ]);
        let activity = pg::ActivitySampler::start(&self.database);
        let cpu_start = cpu_snapshot();
        let started = Instant::now();
        gql.run(START, json!({ "id": id, "mapping": mapping }))
            .await
            .context("startContactImport")?;
        let mut last_report = Instant::now();
        let mut state;
        // Bounded by --import-timeout; a poll every 100 ms.
        loop {
            state = gql.run(POLL, json!({ "id": id })).await?["contactImport"].take();
            let status = state["status"].as_str().unwrap_or_default();
            if status == "COMPLETED" || status == "FAILED" {
                break;
            }
            if started.elapsed() > self.args.import_timeout {
                progress!(
                    "the import is still {status} after {:?}: stopping the run",
                    self.args.import_timeout
                );
                break;
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                let done = state["processedRows"].as_i64().unwrap_or(0);
                progress!(
                    "import {status}: {done} of {} rows, {:.0} rows/s, VmRSS {:.0} MB",
                    state["totalRows"],
                    done as f64 / started.elapsed().as_secs_f64(),
                    procfs::memory(pid).map_or(0.0, |m| mb(m.rss_kb))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wall_s = started.elapsed().as_secs_f64();
        let cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), pid);
        let (sampled_peak, samples) = sampler.finish().await;
        let statements = activity.finish().await;
        let now = procfs::memory(pid).unwrap_or_default();
        let status = state["status"].as_str().unwrap_or("UNKNOWN").to_owned();
        progress!(
            "import {status} in {wall_s:.1} s; VmHWM {:.0} MB; CPU: {}",
            mb(now.hwm_kb),
            cpu.describe(self.cores)
        );
        Ok(ImportFigures {
            upload_s,
            wall_s,
            status: if status == "COMPLETED" || status == "FAILED" {
                status
            } else {
                format!("still {status}")
            },
            total_rows: state["totalRows"].as_i64().unwrap_or(0),
            processed: state["processedRows"].as_i64().unwrap_or(0),
            added: state["added"].as_i64().unwrap_or(0),
            failed: state["failed"].as_i64().unwrap_or(0),
            error: state["error"].as_str().map(str::to_owned),
            hwm_after_upload_kb,
            hwm_end_kb: now.hwm_kb,
            sampled_peak,
            samples,
            cpu,
            rss_after_kb: now.rss_kb,
            outbox_drain_s: None,
            statements,
        })
    }

    /// Waits (at most 5 minutes) until the analytics shipper has sent every event.
    async fn wait_for_outbox(&self) -> Option<f64> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        while started.elapsed() < Duration::from_secs(300) {
            let pending = pg::sql(
                &self.database,
                "SELECT count(*) FROM analytics_outbox WHERE shipped_at IS NULL",
            )
            .await
            .ok()?;
            if pending == "0" {
                let s = started.elapsed().as_secs_f64();
                progress!("analytics outbox shipped {s:.1} s after the import");
                return Some(s);
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                progress!("waiting for the analytics outbox: {pending} events pending");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        None
    }

    pub(crate) fn page_headers(gql: &Gql) -> [(&'static str, String); 3] {
        [
            (
                "authorization",
                format!("Bearer {}", gql.token.clone().unwrap_or_default()),
            ),
            ("x-project-id", gql.project_id.clone().unwrap_or_default()),
            ("accept", "application/graphql-response+json".to_owned()),
        ]
    }

    /// The page from one connection for 2 s.
    async fn page_probe(&self, gql: &Gql) -> anyhow::Result<load::LoadResult> {
        let result = load::run(
            &gql.url("/graphql"),
            &Self::page_headers(gql),
            json!({ "query": PAGE }).to_string(),
            1,
            Duration::ZERO,
            Duration::from_secs(2),
        )
        .await?;
        progress!(
            "page before ANALYZE, 1 connection: {:.0} req/s, p50 {:.1} ms",
            result.rps,
            result.p50_ms
        );
        Ok(result)
    }

    /// One POST of the page, checked: HTTP 200, no `errors`, 50 contacts with 2 tags and 3
    /// attributes each.
    async fn page_check(gql: &Gql) -> anyhow::Result<()> {
        let page = gql.run(PAGE, json!({})).await?;
        let edges = page["contacts"]["edges"]
            .as_array()
            .context("contacts.edges")?;
        let complete = edges.iter().all(|e| {
            e["node"]["tags"].as_array().is_some_and(|t| t.len() == 2)
                && e["node"]["attributes"]
                    .as_array()
                    .is_some_and(|a| a.len() == 3)
        });
        if edges.len() != 50 || !complete {
            bail!("the page is not 50 contacts with 2 tags and 3 attributes each: {page}");
        }
        Ok(())
    }

    /// The page's wrk script (the owner's token and project) in the work directory.
    pub(crate) fn page_script(&self, gql: &Gql) -> anyhow::Result<PathBuf> {
        let path = self.work_dir.join("contacts-page.lua");
        let headers = Self::page_headers(gql);
        let headers: Vec<(&str, String)> = headers.iter().map(|(n, v)| (*n, v.clone())).collect();
        std::fs::write(
            &path,
            wrk::script_with_headers(&json!({ "query": PAGE }).to_string(), &headers),
        )?;
        Ok(path)
    }

    /// The page under wrk (2 threads, `--concurrency` connections, `--seconds` after a 1 s
    /// warm-up), with a checked request before and after.
    async fn page_load(&self, gql: &Gql, pid: u32) -> anyhow::Result<(load::LoadResult, CpuUse)> {
        Self::page_check(gql).await?;
        let connections = self.args.concurrency as u32;
        let threads = PAGE_THREADS.min(connections);
        progress!(
            "page load: wrk, {threads} threads × {connections} connections for {} s",
            self.args.seconds
        );
        let (wrk_bin, script) = (wrk::find()?, self.page_script(gql)?);
        let url = gql.url("/graphql");
        wrk::run(&wrk_bin, &script, &url, threads, connections, 1).await?;
        let cpu_start = cpu_snapshot();
        let (w, _) = wrk::run(
            &wrk_bin,
            &script,
            &url,
            threads,
            connections,
            self.args.seconds,
        )
        .await?;
        let cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), pid);
        let after = Self::page_check(gql).await;
        let errors = w.non_2xx + w.socket_errors + u64::from(after.is_err());
        let mut problems = Vec::new();
        if w.non_2xx > 0 {
            problems.push(format!("{} answers not 2xx or 3xx", w.non_2xx));
        }
        if w.socket_errors > 0 {
            problems.push(format!("{} socket errors", w.socket_errors));
        }
        if let Err(e) = &after {
            problems.push(format!("the checked request after the load: {e:#}"));
        }
        let result = load::LoadResult {
            requests: w.requests,
            errors,
            rps: w.rps,
            p50_ms: w.p50_ms,
            p99_ms: w.p99_ms,
            mean_ms: w.mean_ms,
            max_ms: w.max_ms,
            first_error: (!problems.is_empty()).then(|| problems.join("; ")),
        };
        progress!(
            "page: {:.0} req/s, p50 {:.1} ms, p99 {:.1} ms, {} errors; CPU: {}",
            result.rps,
            result.p50_ms,
            result.p99_ms,
            result.errors,
            cpu.describe(self.cores)
        );
        Ok((result, cpu))
    }

    async fn pgbench_reference(
        &self,
        project_id: &str,
        pid: u32,
    ) -> anyhow::Result<(String, (pg::PgbenchResult, CpuUse))> {
        let ids = pg::sql(
            &self.database,
            &format!(
                "SELECT string_agg(quote_literal(id::text), ', ') FROM \
                 (SELECT id FROM contacts WHERE project_id = '{project_id}' ORDER BY id LIMIT 50) p"
            ),
        )
        .await?;
        let p = project_id;
        // The statements the server sends for the page: the page itself (sea-orm)…
        let mut script = String::new();
        let _ = writeln!(
            script,
            "SELECT \"contacts\".\"id\", \"contacts\".\"project_id\", \"contacts\".\"name\", \
             \"contacts\".\"phone\", \"contacts\".\"bsuid\", \"contacts\".\"source\", \
             \"contacts\".\"first_message_tag_id\", \"contacts\".\"opted_in\", \
             \"contacts\".\"opted_in_at\", \"contacts\".\"opted_in_source\", \
             \"contacts\".\"incoming_blocked\", \"contacts\".\"state\", \
             \"contacts\".\"last_active_at\", \"contacts\".\"created_at\", \
             \"contacts\".\"updated_at\" FROM \"contacts\" WHERE \"contacts\".\"project_id\" = \
             '{p}' ORDER BY \"contacts\".\"id\" ASC LIMIT 51;"
        );
        // Then the tags and attribute values of its 50 contacts in one statement, as
        // `page_details_sql` in api/src/contacts/loaders.rs writes it (with its parameters
        // in place).
        let _ = writeln!(
            script,
            "SELECT 0 AS part, contact_tags.contact_id, tags.id, tags.name, \
             tags.name_key AS sort_key, tags.kind AS detail, \
             tags.first_message_keywords AS keywords, NULL AS value, tags.created_at \
             FROM contact_tags JOIN tags ON tags.id = contact_tags.tag_id \
             WHERE contact_tags.project_id = '{p}' AND contact_tags.contact_id IN ({ids}) \
             UNION ALL \
             SELECT 1 AS part, contact_attributes.contact_id, attributes.id, \
             attributes.key AS name, attributes.key_lower AS sort_key, \
             attributes.display_name AS detail, NULL AS keywords, \
             contact_attributes.value AS value, attributes.created_at \
             FROM contact_attributes JOIN attributes \
             ON attributes.id = contact_attributes.attribute_id \
             WHERE contact_attributes.project_id = '{p}' \
             AND contact_attributes.contact_id IN ({ids}) \
             ORDER BY part, sort_key;"
        );
        let file = self.work_dir.join("page.sql");
        std::fs::write(&file, &script)?;
        let log_dir = self.work_dir.join("pgbench");
        std::fs::create_dir_all(&log_dir)?;
        progress!(
            "pgbench: {} clients for {} s",
            self.args.concurrency,
            self.args.seconds
        );
        let cpu_start = cpu_snapshot();
        let pgbench = self
            .pgbench
            .as_ref()
            .context("pgbench was not looked for")?;
        let result = pg::pgbench(
            pgbench,
            &self.database,
            &file,
            self.args.concurrency,
            self.args.seconds,
            &log_dir,
        )
        .await?;
        let cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), pid);
        progress!(
            "pgbench: {:.0} tps, p50 {:.1} ms, p99 {:.1} ms",
            result.tps,
            result.p50_ms,
            result.p99_ms
        );
        // Shown with the literal ids shortened.
        let shown = script.replace(&ids, "<the page's 50 contact ids>");
        Ok((shown, (result, cpu)))
    }

    async fn export(&self, gql: &Gql, pid: u32) -> anyhow::Result<ExportFigures> {
        let link = gql.run(EXPORT, json!({})).await?;
        let url = gql.url(&str_at(&link, "/exportContacts/url")?);
        progress!("export: streaming the CSV");
        let cpu_start = cpu_snapshot();
        let started = Instant::now();
        let mut response = gql.http.get(&url).send().await?;
        if !response.status().is_success() {
            bail!("export download: HTTP {}", response.status());
        }
        let (mut bytes, mut newlines) = (0u64, 0u64);
        // Bounded by the client's 600 s timeout.
        while let Some(chunk) = response.chunk().await? {
            bytes += chunk.len() as u64;
            newlines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), pid);
        let rows = newlines.saturating_sub(1);
        progress!(
            "export: {rows} rows in {seconds:.1} s ({:.0} rows/s); CPU: {}",
            rows as f64 / seconds,
            cpu.describe(self.cores)
        );
        Ok(ExportFigures {
            rows,
            bytes,
            seconds,
            cpu,
            hwm_end_kb: procfs::memory(pid).map_or(0, |m| m.hwm_kb),
        })
    }

    async fn copy_reference(
        &self,
        contacts: &std::path::Path,
        tags: &std::path::Path,
        attributes: &std::path::Path,
        bytes: u64,
        pid: u32,
    ) -> anyhow::Result<CopyFigures> {
        pg::sql(
            &self.database,
            "CREATE SCHEMA bench_ref; \
             CREATE TABLE bench_ref.bench_contacts (LIKE public.contacts INCLUDING ALL); \
             CREATE TABLE bench_ref.bench_contact_tags (LIKE public.contact_tags INCLUDING ALL); \
             CREATE TABLE bench_ref.bench_contact_attributes \
               (LIKE public.contact_attributes INCLUDING ALL); \
             CHECKPOINT",
        )
        .await?;
        let copy = |table: &str, columns: &str, file: &std::path::Path| {
            format!(
                "\\copy bench_ref.{table} ({columns}) FROM '{}' WITH (FORMAT csv)",
                file.display()
            )
        };
        let commands = [
            copy("bench_contacts", data::CONTACT_COLUMNS, contacts),
            copy("bench_contact_tags", data::TAG_COLUMNS, tags),
            copy(
                "bench_contact_attributes",
                data::ATTRIBUTE_COLUMNS,
                attributes,
            ),
        ];
        progress!("COPY reference: {:.0} MB", bytes as f64 / 1e6);
        let cpu_start = cpu_snapshot();
        let psql_before = pg::children_cpu_s();
        let elapsed =
            pg::timed_session(&self.database, &commands, Duration::from_secs(900)).await?;
        let psql_cpu_s = pg::children_cpu_s() - psql_before;
        let cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), pid);
        let counts = pg::sql(
            &self.database,
            "SELECT (SELECT count(*) FROM bench_ref.bench_contacts) || ' ' || \
             ((SELECT count(*) FROM bench_ref.bench_contact_tags) + \
              (SELECT count(*) FROM bench_ref.bench_contact_attributes))",
        )
        .await?;
        let mut parts = counts
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (rows, link_rows) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        let seconds = elapsed.as_secs_f64();
        progress!(
            "COPY: {rows} contacts + {link_rows} links in {seconds:.1} s; CPU: {}",
            cpu.describe(self.cores)
        );
        Ok(CopyFigures {
            seconds,
            rows,
            link_rows,
            bytes,
            cpu,
            psql_cpu_s,
        })
    }

    /// Stops the server and drops what the run created. Every step is bounded.
    async fn cleanup(&mut self) {
        if let Some(server) = self.server.take() {
            progress!("stopping the server");
            server.stop().await;
        }
        if !self.chat_servers.is_empty() {
            progress!("stopping the live-chat nodes");
            self.stop_chat_nodes().await;
        }
        if let Some(server) = self.campaign_server.take() {
            progress!("stopping the campaign server");
            server.stop().await;
        }
        if let Some(server) = self.extra_server.take() {
            progress!("stopping the server");
            server.stop().await;
        }
        for f in std::mem::take(&mut self.campaign_files) {
            let _ = std::fs::remove_file(f);
        }
        self.drop_billing_database().await;
        if self.database_created && self.args.keep_database {
            progress!("database {} kept (--keep-database)", self.database);
        } else if self.database_created {
            match pg::sql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database),
            )
            .await
            {
                Ok(_) => progress!("database {} dropped", self.database),
                Err(e) => progress!("could not drop {}: {e:#}", self.database),
            }
        }
        // The servers' ClickHouse database exists only if a server ran (on the PostgreSQL
        // database created for the contacts and live-chat parts).
        let dropped = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .ok()
            .filter(|_| self.database_created)
            .map(|c| {
                c.post("http://127.0.0.1:8123/")
                    .body(format!(
                        "DROP DATABASE IF EXISTS `{}`",
                        self.clickhouse_database
                    ))
                    .send()
            });
        if let Some(send) = dropped {
            match send.await {
                Ok(r) if r.status().is_success() => {
                    progress!("ClickHouse database {} dropped", self.clickhouse_database)
                }
                Ok(r) => progress!("ClickHouse drop: HTTP {}", r.status()),
                Err(e) => progress!("ClickHouse drop: {e}"),
            }
        }
        if self.own_work_dir {
            let _ = std::fs::remove_dir_all(&self.work_dir);
        } else {
            for f in [
                "ref_contacts.csv",
                "ref_contact_tags.csv",
                "ref_contact_attributes.csv",
            ] {
                let _ = std::fs::remove_file(self.work_dir.join(f));
            }
        }
    }
}

fn str_at(value: &Value, pointer: &str) -> anyhow::Result<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no {pointer} in {value}"))
}

async fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_owned(), |s| s.trim().to_owned());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let postgres = pg::sql("postgres", "SHOW server_version")
        .await
        .unwrap_or_else(|_| "?".into());
    let settings = pg::sql(
        "postgres",
        "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) \
         FROM unnest(ARRAY['autovacuum', 'shared_buffers', 'max_wal_size', \
           'synchronous_commit', 'work_mem']) AS name",
    )
    .await
    .unwrap_or_default();
    let autovacuum = !settings.contains("autovacuum=off");
    let postgres_settings = settings.replace(' ', ", ").replace('=', " ");
    let clickhouse = async {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .ok()?
            .get("http://127.0.0.1:8123/?query=SELECT%20version()")
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }
    .await
    .map_or("?".to_owned(), |v| v.trim().to_owned());
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = match (
        git(&["rev-parse", "--short", "HEAD"]),
        git(&["status", "--porcelain"]),
    ) {
        (Some(c), Some(s)) if !s.is_empty() => format!("commit {c} with uncommitted changes"),
        (Some(c), _) => format!("commit {c}"),
        _ => "an unknown commit".to_owned(),
    };
    Machine {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        cpu,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        postgres,
        postgres_settings,
        autovacuum,
        clickhouse,
        commit,
    }
}
