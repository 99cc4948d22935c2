//! The bus reference of the live-chat benchmark: `redis-benchmark` publishing payloads of
//! one chat event's size on the same Redis (with one subscriber on the channel, as every
//! node subscribes to its projects' channels), and a counter of what Parley itself puts on
//! the bus (a `redis-cli PSUBSCRIBE` on the run's channel prefix).

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

pub const HOST: &str = "127.0.0.1";
pub const PORT: u16 = 6379;

/// One line of `redis-benchmark --csv`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RedisBenchResult {
    pub rps: f64,
    pub avg_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Parses `redis-benchmark --csv` output (its header, then one line per test; the test's
/// name is the command with its arguments, so it is read from the right).
pub fn parse_csv(output: &str) -> anyhow::Result<RedisBenchResult> {
    let line = output
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with('"') && !l.starts_with("\"test\""))
        .context("no result line in redis-benchmark's output")?;
    let fields: Vec<f64> = line
        .rsplitn(8, ',')
        .take(7)
        .map(|f| f.trim_matches('"').parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("redis-benchmark line {line:?}"))?;
    // Reversed: max, p99, p95, p50, min, avg, rps.
    let [max, p99, p95, p50, _min, avg, rps] = fields[..] else {
        bail!("redis-benchmark line {line:?}: expected 8 fields");
    };
    Ok(RedisBenchResult {
        rps,
        avg_ms: avg,
        p50_ms: p50,
        p95_ms: p95,
        p99_ms: p99,
        max_ms: max,
    })
}

/// `redis-benchmark -n requests -c clients --csv PUBLISH channel <payload_bytes × 'x'>`,
/// with one `redis-cli SUBSCRIBE channel` listening meanwhile.
pub async fn publish(
    channel: &str,
    payload_bytes: usize,
    requests: u64,
    clients: u32,
) -> anyhow::Result<(RedisBenchResult, String)> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-h", HOST, "-p", &PORT.to_string(), "SUBSCRIBE", channel])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    crate::server::die_with_parent(&mut cmd);
    let mut subscriber = cmd.spawn().context("redis-cli could not run")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let payload = "x".repeat(payload_bytes.max(1));
    let command = format!(
        "redis-benchmark -h {HOST} -p {PORT} -n {requests} -c {clients} --csv PUBLISH {channel} \
         <{payload_bytes} bytes>"
    );
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        Command::new("redis-benchmark")
            .args(["-h", HOST, "-p", &PORT.to_string()])
            .args(["-n", &requests.to_string(), "-c", &clients.to_string()])
            .args(["--csv", "PUBLISH", channel, &payload])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("redis-benchmark did not finish within 300 s")?
    .context("redis-benchmark could not run (Debian package redis-tools)")?;
    let _ = subscriber.kill().await;
    if !output.status.success() {
        bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let result = parse_csv(&String::from_utf8_lossy(&output.stdout))?;
    Ok((result, command))
}

/// Counts the messages (and their payload bytes) published on channels starting with
/// `prefix` while it runs, per topic of Parley's bus events.
pub struct BusTap {
    child: Child,
    tapped: Arc<Mutex<Tapped>>,
    reader: tokio::task::JoinHandle<()>,
}

/// What the tap counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tapped {
    pub messages: u64,
    pub bytes: u64,
    /// Per bus event topic (`"topic":"…"` of the payload): messages and bytes.
    pub by_topic: BTreeMap<String, (u64, u64)>,
}

impl Tapped {
    pub fn mean_bytes(&self) -> f64 {
        self.bytes as f64 / self.messages.max(1) as f64
    }

    /// Mean payload bytes of one topic's events.
    pub fn topic_mean_bytes(&self, topic: &str) -> Option<f64> {
        let (n, b) = self.by_topic.get(topic)?;
        (*n > 0).then(|| *b as f64 / *n as f64)
    }

    fn add(&mut self, payload: &str) {
        self.messages += 1;
        self.bytes += payload.len() as u64;
        let topic = payload
            .find("\"topic\":\"")
            .map(|i| &payload[i + 9..])
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("?");
        let entry = self.by_topic.entry(topic.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += payload.len() as u64;
    }

    /// What was counted since `earlier`.
    pub fn since(&self, earlier: &Tapped) -> Tapped {
        let mut by_topic = self.by_topic.clone();
        for (topic, (n, b)) in &earlier.by_topic {
            if let Some(e) = by_topic.get_mut(topic) {
                e.0 -= (*n).min(e.0);
                e.1 -= (*b).min(e.1);
            }
        }
        by_topic.retain(|_, (n, _)| *n > 0);
        Tapped {
            messages: self.messages - earlier.messages.min(self.messages),
            bytes: self.bytes - earlier.bytes.min(self.bytes),
            by_topic,
        }
    }
}

/// The reader of `redis-cli PSUBSCRIBE` output (not a terminal: one value per line, a
/// message being `pmessage`, the pattern, the channel, the payload). A payload is one line
/// (JSON without raw newlines).
#[derive(Default)]
struct PmessageReader {
    state: u8,
}

impl PmessageReader {
    fn line(&mut self, line: &str, tapped: &mut Tapped) {
        self.state = match (self.state, line) {
            (0, "pmessage") => 1,
            (1, _) => 2,
            (2, _) => 3,
            (3, payload) => {
                tapped.add(payload);
                0
            }
            _ => 0,
        };
    }
}

/// Counts the messages of captured `redis-cli PSUBSCRIBE` output.
#[cfg(test)]
pub fn count_pmessages<'a>(lines: impl IntoIterator<Item = &'a str>) -> Tapped {
    let mut t = Tapped::default();
    let mut reader = PmessageReader::default();
    for line in lines {
        reader.line(line, &mut t);
    }
    t
}

impl BusTap {
    pub async fn start(prefix: &str) -> anyhow::Result<Self> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", HOST, "-p", &PORT.to_string(), "PSUBSCRIBE"])
            .arg(format!("{prefix}*"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        crate::server::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().context("redis-cli could not run")?;
        let stdout = child.stdout.take().context("redis-cli's stdout")?;
        let tapped = Arc::new(Mutex::new(Tapped::default()));
        let reader = {
            let tapped = tapped.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                let mut reader = PmessageReader::default();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut t) = tapped.lock() {
                        reader.line(&line, &mut t);
                    }
                }
            })
        };
        // The subscription is in place once redis-cli has printed its confirmation; a
        // short wait is enough on loopback.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Self {
            child,
            tapped,
            reader,
        })
    }

    pub fn now(&self) -> Tapped {
        self.tapped.lock().map(|t| t.clone()).unwrap_or_default()
    }

    pub async fn stop(mut self) -> Tapped {
        let _ = self.child.kill().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.reader).await;
        self.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `redis-benchmark -n 20000 -c 50 --csv PUBLISH bench-probe-channel <600 × x>` on
    /// this machine (Redis 7.0.15).
    const CAPTURED: &str = include_str!("../testdata/redis-benchmark-publish.csv");

    #[test]
    fn parses_redis_benchmark_csv() {
        let r = parse_csv(CAPTURED).unwrap();
        assert!(r.rps > 1000.0, "{r:?}");
        assert!(r.p50_ms > 0.0 && r.p50_ms <= r.p95_ms && r.p95_ms <= r.p99_ms);
        assert!(r.p99_ms <= r.max_ms);
    }

    #[test]
    fn parses_a_line_with_commas_in_the_test_name() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\
                   \"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"PUBLISH c a,b\",\"41000.00\",\"0.700\",\"0.100\",\"0.600\",\"1.200\",\
                   \"2.000\",\"5.000\"\n";
        let r = parse_csv(out).unwrap();
        assert_eq!(r.rps, 41000.0);
        assert_eq!((r.p50_ms, r.p99_ms, r.max_ms), (0.6, 2.0, 5.0));
        assert!(parse_csv("garbage").is_err());
    }

    #[test]
    fn counts_pmessages() {
        let out = include_str!("../testdata/redis-cli-psubscribe.txt");
        let t = count_pmessages(out.lines());
        assert_eq!(t.messages, 3);
        assert!(t.mean_bytes() > 10.0);
        assert_eq!(t.by_topic.get("chat.event").map(|e| e.0), Some(3));
        assert_eq!(t.topic_mean_bytes("chat.event"), Some(t.mean_bytes()));
        let none = t.since(&t);
        assert_eq!((none.messages, none.by_topic.len()), (0, 0));
    }
}
