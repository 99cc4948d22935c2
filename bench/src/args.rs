//! Command-line options (`parley-bench --help`).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};

pub const USAGE: &str = "\
parley-bench: contacts benchmarks against the real services (run it through scripts/bench)

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
        };
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
                "-h" | "--help" => {
                    print!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown option {other}\n\n{USAGE}"),
            }
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
        if args.command.is_empty() {
            args.command = format!(
                "scripts/bench --rows {} --seconds {}",
                args.rows, args.seconds
            );
        }
        Ok(args)
    }
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> anyhow::Result<T> {
    v.replace('_', "")
        .parse()
        .map_err(|_| anyhow::anyhow!("{flag}: not a number: {v}"))
}
