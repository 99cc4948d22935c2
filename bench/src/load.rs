//! A closed-loop HTTP load generator: `concurrency` workers, each sending the same request
//! again as soon as the previous answer is read, for a fixed time after a warm-up.

use std::time::{Duration, Instant};

use anyhow::Context;

pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    pub first_error: Option<String>,
}

/// `p` in 0..=1 of sorted values (nearest rank).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Latency figures of a set of samples in microseconds, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    /// Sorts `samples_us` in place.
    pub fn of(samples_us: &mut [u64]) -> Self {
        samples_us.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        let count = samples_us.len();
        Self {
            count,
            p50_ms: ms(percentile(samples_us, 0.50)),
            p95_ms: ms(percentile(samples_us, 0.95)),
            p99_ms: ms(percentile(samples_us, 0.99)),
            max_ms: ms(samples_us.last().copied().unwrap_or(0)),
            mean_ms: if count == 0 {
                0.0
            } else {
                ms(samples_us.iter().sum::<u64>()) / count as f64
            },
        }
    }

    /// "3.1 / 5.0 / 9.8 / 121 ms" (p50 / p95 / p99 / max; see `ms`).
    pub fn quartet(&self) -> String {
        format!(
            "{} / {} / {} / {} ms",
            ms(self.p50_ms),
            ms(self.p95_ms),
            ms(self.p99_ms),
            ms(self.max_ms)
        )
    }
}

/// Milliseconds with one decimal under 100, else whole with thousands separators.
pub fn ms(value: f64) -> String {
    if value < 100.0 {
        return format!("{value:.1}");
    }
    let digits = format!("{value:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// POSTs `body` (JSON) to `url` with `headers` from `concurrency` connections.
pub async fn run(
    url: &str,
    headers: &[(&str, String)],
    body: String,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<LoadResult> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()?;
    let mut header_map = reqwest::header::HeaderMap::new();
    for (name, value) in headers {
        header_map.insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes())?,
            value.parse().context("a header value")?,
        );
    }
    header_map.insert("content-type", "application/json".parse()?);
    let start = Instant::now() + warmup;
    let end = start + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (http, url, headers, body) = (
            http.clone(),
            url.to_owned(),
            header_map.clone(),
            body.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u64> = Vec::with_capacity(16_384);
            let mut errors = 0u64;
            let mut first_error = None;
            // Bounded by time: the last request starts before `end` and has a 10 s timeout.
            while Instant::now() < end {
                let sent = Instant::now();
                let outcome = match http
                    .post(&url)
                    .headers(headers.clone())
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(b) if status.is_success() && !contains(&b, b"\"errors\"") => Ok(()),
                            Ok(b) => Err(format!(
                                "HTTP {status}: {}",
                                String::from_utf8_lossy(&b[..b.len().min(300)])
                            )),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                };
                if sent < start {
                    continue;
                }
                match outcome {
                    Ok(()) => latencies_us.push(sent.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies_us, errors, first_error)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for w in workers {
        let (l, e, f) = w.await?;
        all.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = f;
        }
    }
    let seconds = duration.as_secs_f64();
    all.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(LoadResult {
        requests: all.len() as u64,
        errors,
        rps: all.len() as f64 / seconds,
        p50_ms: ms(percentile(&all, 0.50)),
        p99_ms: ms(percentile(&all, 0.99)),
        mean_ms: if all.is_empty() {
            0.0
        } else {
            ms(all.iter().sum::<u64>()) / all.len() as f64
        },
        max_ms: ms(all.last().copied().unwrap_or(0)),
        first_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn summaries_sort_and_convert_to_milliseconds() {
        let mut v: Vec<u64> = (1..=1000).rev().map(|n| n * 1000).collect();
        let s = Summary::of(&mut v);
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50_ms, 500.0);
        assert_eq!(s.p95_ms, 950.0);
        assert_eq!(s.p99_ms, 990.0);
        assert_eq!(s.max_ms, 1000.0);
        assert_eq!(s.mean_ms, 500.5);
        assert_eq!(v[0], 1000, "sorted in place");
        assert_eq!(s.quartet(), "500 / 950 / 990 / 1,000 ms");
        assert_eq!(ms(12.345), "12.3");
        assert_eq!(ms(99.94), "99.9");
        assert_eq!(ms(14_889.8), "14,890");
        assert_eq!(Summary::of(&mut []), Summary::default());
    }
}
