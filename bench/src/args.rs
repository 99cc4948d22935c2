//! Command-line options (`parley-bench --help`).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};

pub const USAGE: &str = "\
parley-bench: contacts, live-chat, billing-report, campaign, trivial-query and analytics
shipping benchmarks against the real services (run it through scripts/bench)

  --rows N             rows in the generated CSV (default 1000000)
  --seconds N          duration of each load test (default 10)
  --concurrency N      concurrent connections of the load tests (default 32)
  --import-timeout N   seconds the import may take before the run stops (default 600)
  --server PATH        the release server binary (default target/release/parley)
  --pgbench PATH       pgbench (default: found on PATH or under /usr/lib/postgresql)
  --work-dir DIR       scratch files and the server's log (default: a new /tmp dir)
  --report PATH        Markdown report to overwrite (default docs/benchmarks.md)
  --no-report          print the table only
  --command TEXT       the command shown under \"reproduce\" in the report
  --keep-database      leave the PostgreSQL database for inspection (not with scripts/bench,
                       whose exit trap drops it)

Live chat (part of the default run):
  --chat-only          only the live-chat benchmark (its section of the report is replaced,
                       the rest of the report is kept)
  --no-chat            only the contacts benchmarks
  --chat-subscribers N concurrent chatEvents subscribers (default 1000)
  --chat-rate N        inbound WhatsApp messages per second (default 100)
  --chat-seconds N     measured time of each live-chat run (default: --seconds)
  --chat-warmup N      seconds of messages before measuring (default 3, longer when the
                       senders' first messages need it)
  --chat-idle N        idle subscriptions for the memory figure (default 10000; also
                       measured at 1000 on the way)

Billing usage report in ClickHouse (part of the default run):
  --billing-only       only the billing benchmark (its section of the report is replaced,
                       the rest is kept; with --chat-only, both of them)
  --no-billing         skip it
  --billing-rows N     billing.charged events of the measured project (default 10000000)
  --billing-other-rows N  events of ten other projects in the same month (default 1000000)
  --billing-batch N    events per ClickHouseStore::insert (default 100000)
  --billing-runs N     timed runs of each report after the warm-up (default 5)

Campaigns, the broadcast dispatcher against a fake Graph API (part of the default run):
  --campaign-only      only the campaign benchmark (its section of the report is replaced,
                       the rest is kept; combines with --chat-only and --billing-only)
  --no-campaign        skip it
  --campaign-recipients N  recipients of the broadcast with the limit lifted (default
                       100000; 0 skips it)
  --campaign-lifted N  that broadcast's throughput, set in the database (default 10000/s)
  --campaign-rate N    the paced broadcast's limit (default 80/s, 1 to 1000)
  --campaign-seconds N its length (default 30; 0 skips it)
  --campaign-snapshot N  contacts of the campaign-start snapshot (default 1000000; 0 skips)
  --campaign-graph-delay-ms N  the fake Graph API's answer time (default 0)
  --campaign-timeout N seconds each broadcast may take (default 600)

Trivial query `{ __typename }` under wrk, beside a minimal async-graphql server (part of
the default run):
  --transport-only     only this benchmark (its section of the report is replaced, the
                       rest is kept; combines with the other --*-only options)
  --no-transport       skip it
                       (each wrk run lasts --seconds)

Analytics shipping, outbox → ClickHouse, beside ClickHouse's own insert (part of the
default run):
  --shipping-only      only this benchmark (its section replaced, the rest kept)
  --no-shipping        skip it
  --shipping-rows N    the backlog: outbox rows COPYed while no server runs, then
                       drained by the server's shipper for the rate (default 1000000)
  --shipping-chunks N  COPY transactions the backlog is split into (default 20)
  --shipping-rate N    rows per second offered to the running server for the lag, one
                       COPY every 200 ms for --seconds (default 20000)

Flamegraphs:
  --profile            after the measured runs, replay the three benchmarks with the
                       slowest ratios (of those that can be replayed) under perf and write
                       docs/bench/flame-*.svg
  --profile-seconds N  length of each recording (default 8)
";

#[derive(Clone, Debug)]
pub struct Args {
    pub rows: u64,
    pub seconds: u64,
    pub concurrency: usize,
    pub import_timeout: Duration,
    pub server: PathBuf,
    pub pgbench: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub command: String,
    pub keep_database: bool,
    /// Run the contacts benchmarks.
    pub contacts: bool,
    /// Run the live-chat benchmark.
    pub chat: bool,
    pub chat_subscribers: usize,
    pub chat_rate: u32,
    pub chat_seconds: u64,
    pub chat_warmup: u64,
    pub chat_idle: usize,
    /// Run the billing-report benchmark.
    pub billing: bool,
    pub billing_rows: u64,
    pub billing_other_rows: u64,
    pub billing_batch: usize,
    pub billing_runs: usize,
    /// Run the campaign benchmark.
    pub campaign: bool,
    pub campaign_recipients: u64,
    pub campaign_lifted: u32,
    pub campaign_rate: u32,
    pub campaign_seconds: u64,
    pub campaign_snapshot: u64,
    pub campaign_graph_delay_ms: u64,
    pub campaign_timeout: u64,
    /// Run the trivial-query benchmark.
    pub transport: bool,
    /// Run the analytics shipping benchmark.
    pub shipping: bool,
    pub shipping_rows: u64,
    pub shipping_chunks: usize,
    /// Rows per second offered for the lag measurement.
    pub shipping_rate: u64,
    /// Replay the slowest ratios under perf.
    pub profile: bool,
    pub profile_seconds: u64,
}

impl Args {
    pub fn parse(mut argv: impl Iterator<Item = String>) -> anyhow::Result<Self> {
        let mut args = Args {
            rows: 1_000_000,
            seconds: 10,
            concurrency: 32,
            import_timeout: Duration::from_secs(600),
            server: PathBuf::from("target/release/parley"),
            pgbench: None,
            work_dir: None,
            report: Some(PathBuf::from("docs/benchmarks.md")),
            command: String::new(),
            keep_database: false,
            contacts: true,
            chat: true,
            chat_subscribers: 1000,
            chat_rate: 100,
            chat_seconds: 0,
            chat_warmup: 3,
            chat_idle: 10_000,
            billing: true,
            billing_rows: 10_000_000,
            billing_other_rows: 1_000_000,
            billing_batch: 100_000,
            billing_runs: 5,
            campaign: true,
            campaign_recipients: 100_000,
            campaign_lifted: 10_000,
            campaign_rate: 80,
            campaign_seconds: 30,
            campaign_snapshot: 1_000_000,
            campaign_graph_delay_ms: 0,
            campaign_timeout: 600,
            transport: true,
            shipping: true,
            shipping_rows: 1_000_000,
            shipping_chunks: 20,
            shipping_rate: 20_000,
            profile: false,
            profile_seconds: 8,
        };
        // The `--*-only` options select the parts that run.
        let (mut chat_only, mut billing_only, mut campaign_only) = (false, false, false);
        let (mut transport_only, mut shipping_only) = (false, false);
        while let Some(flag) = argv.next() {
            let mut value =
                |name: &str| argv.next().with_context(|| format!("{name} needs a value"));
            match flag.as_str() {
                "--rows" => args.rows = number(&flag, &value(&flag)?)?,
                "--seconds" => args.seconds = number(&flag, &value(&flag)?)?,
                "--concurrency" => args.concurrency = number(&flag, &value(&flag)?)?,
                "--import-timeout" => {
                    args.import_timeout = Duration::from_secs(number(&flag, &value(&flag)?)?)
                }
                "--server" => args.server = value(&flag)?.into(),
                "--pgbench" => args.pgbench = Some(value(&flag)?.into()),
                "--work-dir" => args.work_dir = Some(value(&flag)?.into()),
                "--report" => args.report = Some(value(&flag)?.into()),
                "--no-report" => args.report = None,
                "--keep-database" => args.keep_database = true,
                "--command" => args.command = value(&flag)?,
                "--chat-only" => chat_only = true,
                "--billing-only" => billing_only = true,
                "--no-billing" => args.billing = false,
                "--billing-rows" => args.billing_rows = number(&flag, &value(&flag)?)?,
                "--billing-other-rows" => args.billing_other_rows = number(&flag, &value(&flag)?)?,
                "--billing-batch" => args.billing_batch = number(&flag, &value(&flag)?)?,
                "--billing-runs" => args.billing_runs = number(&flag, &value(&flag)?)?,
                "--campaign-only" => campaign_only = true,
                "--no-campaign" => args.campaign = false,
                "--campaign-recipients" => {
                    args.campaign_recipients = number(&flag, &value(&flag)?)?
                }
                "--campaign-lifted" => args.campaign_lifted = number(&flag, &value(&flag)?)?,
                "--campaign-rate" => args.campaign_rate = number(&flag, &value(&flag)?)?,
                "--campaign-seconds" => args.campaign_seconds = number(&flag, &value(&flag)?)?,
                "--campaign-snapshot" => args.campaign_snapshot = number(&flag, &value(&flag)?)?,
                "--campaign-graph-delay-ms" => {
                    args.campaign_graph_delay_ms = number(&flag, &value(&flag)?)?
                }
                "--campaign-timeout" => args.campaign_timeout = number(&flag, &value(&flag)?)?,
                "--transport-only" => transport_only = true,
                "--no-transport" => args.transport = false,
                "--shipping-only" => shipping_only = true,
                "--no-shipping" => args.shipping = false,
                "--shipping-rows" => args.shipping_rows = number(&flag, &value(&flag)?)?,
                "--shipping-chunks" => args.shipping_chunks = number(&flag, &value(&flag)?)?,
                "--shipping-rate" => args.shipping_rate = number(&flag, &value(&flag)?)?,
                "--profile" => args.profile = true,
                "--profile-seconds" => args.profile_seconds = number(&flag, &value(&flag)?)?,
                "--no-chat" => args.chat = false,
                "--chat-subscribers" => args.chat_subscribers = number(&flag, &value(&flag)?)?,
                "--chat-rate" => args.chat_rate = number(&flag, &value(&flag)?)?,
                "--chat-seconds" => args.chat_seconds = number(&flag, &value(&flag)?)?,
                "--chat-warmup" => args.chat_warmup = number(&flag, &value(&flag)?)?,
                "--chat-idle" => args.chat_idle = number(&flag, &value(&flag)?)?,
                "-h" | "--help" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown option {other}\n\n{USAGE}"),
            }
        }
        if chat_only || billing_only || campaign_only || transport_only || shipping_only {
            args.contacts = false;
            args.chat &= chat_only;
            args.billing &= billing_only;
            args.campaign &= campaign_only;
            args.transport &= transport_only;
            args.shipping &= shipping_only;
        }
        if !(1_000..=2_000_000).contains(&args.rows) {
            bail!("--rows: between 1000 and 2000000 (the server's import limit)");
        }
        if !(1..=300).contains(&args.seconds) {
            bail!("--seconds: between 1 and 300");
        }
        if !(1..=512).contains(&args.concurrency) {
            bail!("--concurrency: between 1 and 512");
        }
        if !args.contacts
            && !args.chat
            && !args.billing
            && !args.campaign
            && !args.transport
            && !args.shipping
        {
            bail!("these options leave nothing to run");
        }
        if args.chat_seconds == 0 {
            args.chat_seconds = args.seconds;
        }
        if !(1..=300).contains(&args.chat_seconds) {
            bail!("--chat-seconds: between 1 and 300");
        }
        if !(1..=60).contains(&args.chat_warmup) {
            bail!("--chat-warmup: between 1 and 60");
        }
        if !(2..=20_000).contains(&args.chat_subscribers) {
            bail!("--chat-subscribers: between 2 and 20000 (split over two nodes)");
        }
        if !(1..=2_000).contains(&args.chat_rate) {
            bail!("--chat-rate: between 1 and 2000 messages per second");
        }
        if args.chat_idle > 100_000 {
            bail!("--chat-idle: at most 100000");
        }
        if !(1_000..=100_000_000).contains(&args.billing_rows) {
            bail!("--billing-rows: between 1000 and 100000000");
        }
        if args.billing_other_rows > 100_000_000 {
            bail!("--billing-other-rows: at most 100000000");
        }
        if !(1_000..=1_000_000).contains(&args.billing_batch) {
            bail!("--billing-batch: between 1000 and 1000000");
        }
        if !(1..=100).contains(&args.billing_runs) {
            bail!("--billing-runs: between 1 and 100");
        }
        if args.campaign_recipients > 2_000_000 || args.campaign_snapshot > 5_000_000 {
            bail!("--campaign-recipients: at most 2000000; --campaign-snapshot: at most 5000000");
        }
        if !(1..=1_000_000).contains(&args.campaign_lifted) {
            bail!("--campaign-lifted: between 1 and 1000000 per second");
        }
        if !(1..=1_000).contains(&args.campaign_rate) {
            bail!("--campaign-rate: between 1 and 1000 per second (the API's range)");
        }
        if args.campaign_seconds > 600 || args.campaign_graph_delay_ms > 10_000 {
            bail!("--campaign-seconds: at most 600; --campaign-graph-delay-ms: at most 10000");
        }
        if !(10..=7_200).contains(&args.campaign_timeout) {
            bail!("--campaign-timeout: between 10 and 7200 seconds");
        }
        if !(1_000..=10_000_000).contains(&args.shipping_rows) {
            bail!("--shipping-rows: between 1000 and 10000000");
        }
        if !(1..=1_000).contains(&args.shipping_chunks) {
            bail!("--shipping-chunks: between 1 and 1000");
        }
        if !(100..=1_000_000).contains(&args.shipping_rate) {
            bail!("--shipping-rate: between 100 and 1000000 rows per second");
        }
        if !(1..=120).contains(&args.profile_seconds) {
            bail!("--profile-seconds: between 1 and 120");
        }
        if args.command.is_empty() {
            args.command = if args.contacts {
                format!(
                    "scripts/bench --rows {} --seconds {}",
                    args.rows, args.seconds
                )
            } else {
                let mut command = "scripts/bench".to_owned();
                for (ran, flag) in [
                    (args.chat, " --chat-only"),
                    (args.billing, " --billing-only"),
                    (args.campaign, " --campaign-only"),
                    (args.transport, " --transport-only"),
                    (args.shipping, " --shipping-only"),
                ] {
                    if ran {
                        command.push_str(flag);
                    }
                }
                command
            };
        }
        Ok(args)
    }
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> anyhow::Result<T> {
    v.replace('_', "")
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag}: not a number: {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Args> {
        Args::parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn the_default_run_includes_live_chat() {
        let a = parse(&["--seconds", "5"]).unwrap();
        assert!(a.contacts && a.chat && a.billing && a.campaign);
        assert_eq!(a.chat_subscribers, 1000);
        assert_eq!(a.chat_rate, 100);
        assert_eq!(a.chat_seconds, 5, "defaults to --seconds");
        assert_eq!(a.chat_idle, 10_000);
    }

    #[test]
    fn chat_only_and_its_options() {
        let a = parse(&[
            "--chat-only",
            "--chat-subscribers",
            "2_000",
            "--chat-rate",
            "50",
            "--chat-seconds",
            "20",
            "--chat-idle",
            "0",
        ])
        .unwrap();
        assert!(!a.contacts && a.chat && !a.billing);
        assert_eq!((a.chat_subscribers, a.chat_rate), (2000, 50));
        assert_eq!((a.chat_seconds, a.chat_idle), (20, 0));
        assert_eq!(a.command, "scripts/bench --chat-only");
        assert!(parse(&["--chat-only", "--no-chat"]).is_err());
        assert!(parse(&["--chat-rate", "0"]).is_err());
    }

    #[test]
    fn billing_only_and_its_options() {
        let a = parse(&[
            "--billing-only",
            "--billing-rows",
            "1_000_000",
            "--billing-runs",
            "3",
        ])
        .unwrap();
        assert!(!a.contacts && !a.chat && a.billing);
        assert_eq!(
            (a.billing_rows, a.billing_other_rows, a.billing_runs),
            (1_000_000, 1_000_000, 3)
        );
        assert_eq!(a.command, "scripts/bench --billing-only");
        let both = parse(&["--billing-only", "--chat-only"]).unwrap();
        assert!(!both.contacts && both.chat && both.billing);
        assert_eq!(both.command, "scripts/bench --chat-only --billing-only");
        assert!(!parse(&["--no-billing"]).unwrap().billing);
        assert!(parse(&["--billing-only", "--no-billing"]).is_err());
        assert!(parse(&["--billing-batch", "10"]).is_err());
    }

    #[test]
    fn transport_and_shipping_only() {
        let a = parse(&["--transport-only"]).unwrap();
        assert!(!a.contacts && !a.chat && !a.billing && !a.campaign);
        assert!(a.transport && !a.shipping && !a.profile);
        assert_eq!(a.command, "scripts/bench --transport-only");
        let b = parse(&[
            "--shipping-only",
            "--shipping-rows",
            "200_000",
            "--shipping-chunks",
            "10",
            "--profile",
        ])
        .unwrap();
        assert!(!b.contacts && !b.transport && b.shipping && b.profile);
        assert_eq!((b.shipping_rows, b.shipping_chunks), (200_000, 10));
        assert_eq!(b.command, "scripts/bench --shipping-only");
        let both = parse(&["--transport-only", "--shipping-only"]).unwrap();
        assert_eq!(
            both.command,
            "scripts/bench --transport-only --shipping-only"
        );
        let all = parse(&[]).unwrap();
        assert!(all.transport && all.shipping && !all.profile);
        assert!(!parse(&["--no-transport"]).unwrap().transport);
        assert!(parse(&["--shipping-only", "--no-shipping"]).is_err());
        assert!(parse(&["--shipping-rows", "10"]).is_err());
    }

    #[test]
    fn campaign_only_and_its_options() {
        let a = parse(&[
            "--campaign-only",
            "--campaign-recipients",
            "20_000",
            "--campaign-seconds",
            "0",
            "--campaign-snapshot",
            "0",
        ])
        .unwrap();
        assert!(!a.contacts && !a.chat && !a.billing && a.campaign);
        assert_eq!(
            (
                a.campaign_recipients,
                a.campaign_seconds,
                a.campaign_snapshot
            ),
            (20_000, 0, 0)
        );
        assert_eq!((a.campaign_lifted, a.campaign_rate), (10_000, 80));
        assert_eq!(a.command, "scripts/bench --campaign-only");
        assert!(!parse(&["--billing-only"]).unwrap().campaign);
        assert!(!parse(&["--no-campaign"]).unwrap().campaign);
        assert!(parse(&["--campaign-only", "--no-campaign"]).is_err());
        assert!(parse(&["--campaign-rate", "1001"]).is_err());
    }
}
