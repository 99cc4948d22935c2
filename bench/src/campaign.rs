//! Issue 7's targets for the broadcast dispatcher, against a fake Graph API of the bench's
//! own (`campaign_fake.rs`):
//!
//! - a broadcast to 100,000 recipients with the throughput limit lifted sustains at least
//!   2,000 messages per second;
//! - at a limit of 80 per second, over about 30 s, it stays within 5% of it;
//! - starting a campaign (the audience snapshot of 1,000,000 contacts) takes under 10 s.
//!
//! Each runs in a project of its own on one release server. Contacts are loaded straight
//! into PostgreSQL (`\copy`), like an import that already happened.

use std::{
    io::{BufWriter, Write},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::json;

use crate::{
    Bench, SIGN_UP,
    campaign_fake::{self, FakeGraph},
    campaign_report::{CampaignFigures, SendRun, SnapshotRun},
    gql::Gql,
    pg,
    procfs::{self, CpuUse, cpu_snapshot, mb},
    str_at,
};

const CONNECT_WHATSAPP: &str =
    "mutation($i: ConnectWhatsAppInput!) { connectWhatsapp(input: $i) { provider } }";
const SET_LIMITS: &str = "mutation($t: Int!) { \
    setSendingLimits(messagingLimit: null, throughputPerSecond: $t) }";
const SYNC_TEMPLATES: &str = "mutation { syncTemplates { imported } }";
const TEMPLATES: &str = "{ templates(first: 10) { nodes { id name status } } }";
const CREATE_ATTRIBUTE: &str = "mutation($key: String!, $displayName: String!) { \
    createAttribute(key: $key, displayName: $displayName) { id } }";
const TOP_UP: &str = "mutation($amount: String!) { topUpWallet(amount: $amount) { id } }";
const PAY: &str = "mutation($id: ID!, $ref: String!) { \
    recordPayment(invoiceId: $id, reference: $ref) { id status } }";
const CREATE_BROADCAST: &str = "mutation($input: CreateBroadcastInput!) { \
    createBroadcast(input: $input) { id status recipientsCount } }";
const STATUS: &str = "query($id: ID!) { campaign(id: $id) { status stopReason } }";
const COUNTS: &str = "query($id: ID!) { campaign(id: $id) { status stopReason \
    counts { recipients queued sent failed skipped interrupted } } }";
const CANCEL: &str = "mutation($id: ID!) { cancelCampaign(id: $id) { status } }";

/// Status polls while a broadcast runs.
const POLL: Duration = Duration::from_millis(200);
/// The outbox drains between phases for at most this long.
const OUTBOX_WAIT: Duration = Duration::from_secs(300);

/// A project ready to broadcast.
struct Project {
    gql: Gql,
    id: String,
    template_id: String,
}

/// A unique Indian mobile for row `i` (< 10^9): `9` and nine digits; the multiplier is
/// coprime with 10^9, so the mapping is a permutation.
fn phone(i: u64) -> u64 {
    9_000_000_000 + (i.wrapping_mul(387_420_489).wrapping_add(7_654_321) % 1_000_000_000)
}

const FIRST: [&str; 8] = [
    "Aarav", "Vivaan", "Ananya", "Diya", "Asha", "Priya", "Rahul", "Kavya",
];
const LAST: [&str; 6] = ["Sharma", "Verma", "Gupta", "Iyer", "Nair", "Shah"];
const CITIES: [&str; 8] = [
    "Mumbai",
    "Delhi",
    "Bengaluru",
    "Hyderabad",
    "Chennai",
    "Kolkata",
    "Pune",
    "Jaipur",
];

/// Writes `rows` contacts of `project` (every `opt_out_every`-th opted out, 0: none) and,
/// with `city`, a `City` value each, as `\copy` CSV files. Returns (contacts, attributes).
fn write_contacts(
    dir: &Path,
    tag: &str,
    project: &str,
    rows: u64,
    opt_out_every: u64,
    city: Option<&str>,
) -> anyhow::Result<(std::path::PathBuf, Option<std::path::PathBuf>)> {
    let contacts_file = dir.join(format!("campaign_{tag}_contacts.csv"));
    let attributes_file = dir.join(format!("campaign_{tag}_attributes.csv"));
    let mut contacts = BufWriter::with_capacity(1 << 20, std::fs::File::create(&contacts_file)?);
    let mut attributes = match city {
        Some(_) => Some(BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&attributes_file)?,
        )),
        None => None,
    };
    let now = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S+00")
        .to_string();
    for i in 0..rows {
        let id = uuid::Uuid::now_v7();
        let name = format!(
            "{} {}",
            FIRST[(i % FIRST.len() as u64) as usize],
            LAST[(i / 7 % LAST.len() as u64) as usize]
        );
        let opted_in = if opt_out_every > 0 && i % opt_out_every == opt_out_every - 1 {
            "f"
        } else {
            "t"
        };
        writeln!(
            contacts,
            "{id},{project},{name},+91{},,IMPORT,,{opted_in},{now},IMPORT,f,HANDLED_BY_ASSISTANT,,{now},{now}",
            phone(i)
        )?;
        if let (Some(w), Some(attribute)) = (attributes.as_mut(), city) {
            writeln!(
                w,
                "{id},{attribute},{project},{}",
                CITIES[(i % CITIES.len() as u64) as usize]
            )?;
        }
    }
    contacts.flush()?;
    if let Some(w) = attributes.as_mut() {
        w.flush()?;
    }
    Ok((contacts_file, city.map(|_| attributes_file)))
}

/// The sends per whole second from the first (the last, partial second left out).
fn per_second(at_s: &[f64]) -> Vec<u64> {
    let Some((&first, &last)) = at_s.first().zip(at_s.last()) else {
        return Vec::new();
    };
    let whole = (last - first).floor() as usize;
    let mut seconds = vec![0u64; whole];
    for t in at_s {
        let i = (t - first).floor() as usize;
        if i < whole {
            seconds[i] += 1;
        }
    }
    seconds
}

impl Bench {
    pub(crate) async fn run_campaign(&mut self) -> anyhow::Result<()> {
        let mut figures = CampaignFigures {
            graph_delay_ms: self.args.campaign_graph_delay_ms,
            paced_seconds: self.args.campaign_seconds,
            ..Default::default()
        };
        let outcome = self.campaign_phases(&mut figures).await;
        if let Some(server) = self.campaign_server.take() {
            progress!("stopping the campaign server");
            server.stop().await;
        }
        for f in std::mem::take(&mut self.campaign_files) {
            let _ = std::fs::remove_file(f);
        }
        if let Err(e) = &outcome {
            figures.error = Some(format!("{e:#}"));
        }
        self.campaign = Some(figures);
        outcome
    }

    async fn campaign_phases(&mut self, f: &mut CampaignFigures) -> anyhow::Result<()> {
        // Other benchmarks' servers would share the cores: stopped first.
        if let Some(server) = self.server.take() {
            progress!("stopping the contacts benchmarks' server");
            server.stop().await;
        }
        self.stop_chat_nodes().await;
        let graph =
            FakeGraph::start(Duration::from_millis(self.args.campaign_graph_delay_ms)).await?;
        let server = self
            .start_server("campaign", vec![("WHATSAPP_GRAPH_URL", graph.url.clone())])
            .await
            .context("starting the campaign server")?;
        let (pid, base) = (server.pid, server.base.clone());
        self.campaign_server = Some(server);
        progress!(
            "campaign server up at {base} (pid {pid}), fake Graph API at {}",
            graph.url
        );

        if self.args.campaign_seconds > 0 {
            let rate = self.args.campaign_rate;
            let contacts = u64::from(rate) * (self.args.campaign_seconds + 1);
            let project = self
                .campaign_project(&base, "paced", 1, rate, contacts, 0, true)
                .await?;
            f.paced = Some(
                self.broadcast(&graph, &project, pid, "Paced", rate, contacts)
                    .await?,
            );
        }
        if self.args.campaign_recipients > 0 {
            let contacts = self.args.campaign_recipients;
            let lifted = self.args.campaign_lifted;
            // The API takes 1 to 1,000 per second (Meta's range); above, only here.
            let project = self
                .campaign_project(&base, "lifted", 2, 1_000, contacts, 0, true)
                .await?;
            pg::sql(
                &self.database,
                &format!(
                    "UPDATE whatsapp_accounts SET throughput_per_second = {lifted} \
                     WHERE project_id = '{}'",
                    project.id
                ),
            )
            .await?;
            f.lifted_how = format!(
                "`setSendingLimits(messagingLimit: null, throughputPerSecond: 1000)` (the \
                 API's maximum), then `UPDATE whatsapp_accounts SET throughput_per_second = \
                 {lifted}` straight in PostgreSQL (bench only: the API refuses more than \
                 1,000), which the dispatcher's rate limiter follows"
            );
            f.lifted = Some(
                self.broadcast(&graph, &project, pid, "Lifted", lifted, contacts)
                    .await?,
            );
        }
        if self.args.campaign_snapshot > 0 {
            f.snapshot = Some(self.snapshot(&base, pid).await?);
        }
        Ok(())
    }

    /// Signs up, connects a number, sets its limits, syncs the template, tops the wallet
    /// up for `contacts` messages and loads the contacts.
    #[allow(clippy::too_many_arguments)]
    async fn campaign_project(
        &mut self,
        base: &str,
        tag: &str,
        n: u64,
        throughput: u32,
        contacts: u64,
        opt_out_every: u64,
        with_city: bool,
    ) -> anyhow::Result<Project> {
        let mut gql = Gql::new(base)?;
        let signed = gql
            .run(
                SIGN_UP,
                json!({ "input": {
                    "username": format!("bench-campaign-{tag}"),
                    "displayName": format!("Bench campaign {tag}"),
                    "password": "a long bench password",
                    "projectName": format!("Bench campaign {tag}"),
                }}),
            )
            .await
            .context("signUp")?;
        gql.token = Some(str_at(&signed, "/signUp/token")?);
        let project_id = str_at(&signed, "/signUp/project/id")?;
        gql.project_id = Some(project_id.clone());
        gql.run(
            CONNECT_WHATSAPP,
            json!({ "i": {
                "wabaId": format!("{}", 102_290_129_340_000u64 + n),
                "phoneNumberId": format!("{}", 106_540_352_240_000u64 + n),
                "accessToken": "bench",
            }}),
        )
        .await
        .context("connectWhatsapp")?;
        gql.run(SET_LIMITS, json!({ "t": throughput }))
            .await
            .context("setSendingLimits")?;
        gql.run(SYNC_TEMPLATES, json!({}))
            .await
            .context("syncTemplates")?;
        let templates = gql.run(TEMPLATES, json!({})).await?;
        let template_id = templates["templates"]["nodes"]
            .as_array()
            .and_then(|nodes| {
                nodes
                    .iter()
                    .find(|t| t["name"] == campaign_fake::TEMPLATE_NAME)
            })
            .and_then(|t| t["id"].as_str())
            .with_context(|| format!("the synced template is missing: {templates}"))?
            .to_owned();
        let city = if with_city {
            let d = gql
                .run(
                    CREATE_ATTRIBUTE,
                    json!({ "key": "City", "displayName": "City" }),
                )
                .await?;
            Some(str_at(&d, "/createAttribute/id")?)
        } else {
            None
        };
        // About 0.86 INR per marketing message to India: 2 INR each covers it.
        let amount = (contacts * 2).max(1_000);
        let invoice = gql
            .run(TOP_UP, json!({ "amount": amount.to_string() }))
            .await
            .context("topUpWallet")?;
        let invoice_id = str_at(&invoice, "/topUpWallet/id")?;
        gql.run(
            PAY,
            json!({ "id": invoice_id, "ref": format!("bench-{tag}") }),
        )
        .await
        .context("recordPayment")?;

        let started = Instant::now();
        let (dir, tag_owned, project) = (self.work_dir.clone(), tag.to_owned(), project_id.clone());
        let (contacts_file, attributes_file) = tokio::task::spawn_blocking(move || {
            write_contacts(
                &dir,
                &tag_owned,
                &project,
                contacts,
                opt_out_every,
                city.as_deref(),
            )
        })
        .await??;
        self.campaign_files.push(contacts_file.clone());
        let mut commands = vec![format!(
            "\\copy contacts ({}) FROM '{}' WITH (FORMAT csv)",
            crate::data::CONTACT_COLUMNS,
            contacts_file.display()
        )];
        if let Some(file) = &attributes_file {
            self.campaign_files.push(file.clone());
            commands.push(format!(
                "\\copy contact_attributes ({}) FROM '{}' WITH (FORMAT csv)",
                crate::data::ATTRIBUTE_COLUMNS,
                file.display()
            ));
        }
        pg::timed_session(&self.database, &commands, Duration::from_secs(900)).await?;
        for f in [Some(contacts_file), attributes_file].into_iter().flatten() {
            let _ = std::fs::remove_file(f);
        }
        pg::sql(
            &self.database,
            "VACUUM (ANALYZE) contacts, contact_attributes",
        )
        .await?;
        progress!(
            "campaign project {tag}: {contacts} contacts loaded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Project {
            gql,
            id: project_id,
            template_id,
        })
    }

    /// Before a measurement: the outbox shipped, the dirty pages written.
    async fn settle_for_campaign(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < OUTBOX_WAIT {
            let pending = pg::sql(
                &self.database,
                "SELECT count(*) FROM analytics_outbox WHERE shipped_at IS NULL",
            )
            .await?;
            if pending == "0" {
                break;
            }
            progress!("waiting for the analytics outbox: {pending} events pending");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        pg::sql(&self.database, "CHECKPOINT").await?;
        Ok(())
    }

    /// Sends a broadcast to every contact of `project` and waits for `COMPLETED`.
    async fn broadcast(
        &self,
        graph: &FakeGraph,
        project: &Project,
        pid: u32,
        name: &str,
        limit: u32,
        contacts: u64,
    ) -> anyhow::Result<SendRun> {
        self.settle_for_campaign().await?;
        graph.take(Instant::now());
        progress!("broadcast {name}: {contacts} recipients at {limit}/s");
        let gql = &project.gql;
        let cpu_start = cpu_snapshot();
        let started = Instant::now();
        let created = gql
            .run(
                CREATE_BROADCAST,
                json!({ "input": {
                    "name": name,
                    "templateId": project.template_id,
                    "parameters": [
                        { "value": "$FirstName", "fallback": "friend" },
                        { "value": "$City", "fallback": "your city" },
                    ],
                    "audience": { "filter": {} },
                    "sendNow": true,
                }}),
            )
            .await
            .context("createBroadcast")?;
        let create_s = started.elapsed().as_secs_f64();
        let id = str_at(&created, "/createBroadcast/id")?;
        let recipients = created["createBroadcast"]["recipientsCount"]
            .as_u64()
            .unwrap_or(0);
        progress!("broadcast {name}: created in {create_s:.2} s, {recipients} recipients");
        let timeout = Duration::from_secs(self.args.campaign_timeout);
        let (mut last_report, mut last_count) = (Instant::now(), 0);
        // Bounded by --campaign-timeout; a poll every 200 ms.
        let completed_s = loop {
            let status = gql.run(STATUS, json!({ "id": id })).await?;
            match status["campaign"]["status"].as_str().unwrap_or_default() {
                "COMPLETED" => break started.elapsed().as_secs_f64(),
                "RUNNING" => {}
                other => bail!(
                    "broadcast {name} is {other}: {}",
                    status["campaign"]["stopReason"]
                ),
            }
            if started.elapsed() > timeout {
                let _ = gql.run(CANCEL, json!({ "id": id })).await;
                bail!(
                    "broadcast {name} did not complete within {timeout:?} ({} sends)",
                    graph.count()
                );
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                let count = graph.count();
                progress!(
                    "broadcast {name}: {count} sent, {:.0}/s over the last {:.0} s",
                    (count - last_count) as f64 / last_report.elapsed().as_secs_f64(),
                    last_report.elapsed().as_secs_f64()
                );
                (last_report, last_count) = (Instant::now(), count);
            }
            tokio::time::sleep(POLL).await;
        };
        let cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), pid);
        let seen = graph.take(started);
        let counts = gql.run(COUNTS, json!({ "id": id })).await?;
        let c = &counts["campaign"]["counts"];
        let n = |k: &str| c[k].as_i64().unwrap_or(-1);
        let run = SendRun {
            limit,
            contacts,
            recipients,
            create_s,
            first_send_s: seen.at_s.first().copied().unwrap_or(0.0),
            last_send_s: seen.at_s.last().copied().unwrap_or(0.0),
            completed_s,
            sends: seen.at_s.len() as u64,
            distinct: seen.recipients,
            duplicates: seen.duplicates,
            per_second: per_second(&seen.at_s),
            counts: [
                n("sent"),
                n("failed"),
                n("skipped"),
                n("interrupted"),
                n("queued"),
            ],
            cpu,
            server_hwm_kb: procfs::memory(pid).map_or(0, |m| m.hwm_kb),
        };
        progress!(
            "broadcast {name}: COMPLETED at {completed_s:.1} s; {} sends ({} recipients, {} \
             duplicates) at {:.1}/s; counts {c}; CPU: {}; VmHWM {:.0} MB",
            run.sends,
            run.distinct,
            run.duplicates,
            run.rate(),
            run.cpu.describe(self.cores),
            mb(run.server_hwm_kb)
        );
        Ok(run)
    }

    /// `createBroadcast` with `sendNow` over the snapshot project's contacts, timed to its
    /// answer; then cancelled.
    async fn snapshot(&mut self, base: &str, pid: u32) -> anyhow::Result<SnapshotRun> {
        let contacts = self.args.campaign_snapshot;
        let opt_out_every = 100;
        // One per second: the few it sends before the cancel do not matter.
        let project = self
            .campaign_project(base, "snapshot", 3, 1, contacts, opt_out_every, false)
            .await?;
        self.settle_for_campaign().await?;
        progress!("snapshot: createBroadcast over {contacts} contacts");
        let gql = &project.gql;
        let cpu_start = cpu_snapshot();
        let started = Instant::now();
        let created = gql
            .run(
                CREATE_BROADCAST,
                json!({ "input": {
                    "name": "Snapshot",
                    "templateId": project.template_id,
                    "parameters": [
                        { "value": "$FirstName", "fallback": "friend" },
                        { "value": "Pune" },
                    ],
                    "audience": { "filter": {} },
                    "sendNow": true,
                }}),
            )
            .await
            .context("createBroadcast (snapshot)")?;
        let create_s = started.elapsed().as_secs_f64();
        let cpu = CpuUse::between(&cpu_start, &cpu_snapshot(), pid);
        let id = str_at(&created, "/createBroadcast/id")?;
        let cancelled = Instant::now();
        let answer = gql.run(CANCEL, json!({ "id": id })).await?;
        let cancel_s = cancelled.elapsed().as_secs_f64();
        if answer["cancelCampaign"]["status"] != "CANCELLED" {
            bail!("the snapshot broadcast was not cancelled: {answer}");
        }
        // The snapshot's queued rows are skipped as CANCELLED now (or were sent before).
        let rows = pg::sql(
            &self.database,
            &format!(
                "SELECT count(*) FILTER (WHERE status <> 'SKIPPED' OR skip_reason = 'CANCELLED') \
                 || ' ' || count(*) FILTER (WHERE status = 'SKIPPED' AND skip_reason <> 'CANCELLED') \
                 FROM campaign_recipients WHERE campaign_id = '{id}'"
            ),
        )
        .await?;
        let mut parts = rows
            .split_whitespace()
            .map(|v| v.parse::<u64>().unwrap_or(0));
        let (queued, skipped) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        let run = SnapshotRun {
            contacts,
            opted_out: contacts / opt_out_every,
            recipients: created["createBroadcast"]["recipientsCount"]
                .as_u64()
                .unwrap_or(0),
            create_s,
            queued,
            skipped,
            cpu,
            cancel_s,
        };
        progress!(
            "snapshot: createBroadcast answered in {create_s:.2} s ({} recipients: {} queued, \
             {} skipped); cancelled in {cancel_s:.2} s; CPU: {}",
            run.recipients,
            run.queued,
            run.skipped,
            run.cpu.describe(self.cores)
        );
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_unique_indian_mobiles() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000 {
            let p = phone(i);
            assert!((9_000_000_000..10_000_000_000).contains(&p));
            assert!(seen.insert(p));
        }
    }

    #[test]
    fn whole_seconds_leave_the_partial_last_out() {
        let at = [10.0, 10.2, 10.9, 11.0, 11.5, 12.4];
        assert_eq!(per_second(&at), vec![3, 2]);
        assert!(per_second(&[]).is_empty());
    }
}
