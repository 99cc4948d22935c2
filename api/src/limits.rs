//! Request rate limits per client IP and per API key, and login throttling.
//!
//! Every HTTP request but Meta's webhook (signed, and sent from few addresses in bursts),
//! health checks and metrics counts against its client's IP; a request carrying an API key
//! (`X-Api-Key` or a `pk_…` bearer) also counts against the key, whether it is valid or not,
//! so guessing keys is throttled too. Answers carry the IETF draft's `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (of the limit closest to running out); a
//! refusal is a 429 `RATE_LIMITED` with `Retry-After`.
//!
//! Logins count per account (the user name asked for, known or not) and per IP: a password
//! guesser is stopped after a few tries whichever of the two it varies.
//!
//! Limits are `governor` GCRA buckets: `limit` requests at once, refilled evenly over the
//! window. They are per node; behind N nodes a client gets up to N times as much.

use std::{
    hash::Hash,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};
use serde_json::json;

use crate::{
    auth::api_key,
    config::LimitSettings,
    errors::{AppError, ErrorCode},
    state::AppState,
};

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One keyed bucket and the figures its headers report.
struct Bucket<K: Hash + Eq + Clone> {
    limiter: Keyed<K>,
    limit: u32,
    quota: Quota,
}

/// What a check found: the figures of the headers, or how long to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed {
        limit: u32,
        remaining: u32,
        reset_seconds: u64,
    },
    Refused {
        limit: u32,
        retry_after_seconds: u64,
    },
}

/// Past this many keys, buckets that are full again are forgotten (a flood of made-up
/// keys or addresses must not grow memory without end).
const PRUNE_ABOVE: usize = 10_000;

impl<K: Hash + Eq + Clone> Bucket<K> {
    fn new(limit: u32, window: Duration) -> Option<Self> {
        let burst = NonZeroU32::new(limit)?;
        let quota = Quota::with_period(window / limit)?.allow_burst(burst);
        Some(Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            limit,
            quota,
        })
    }

    fn check(&self, key: &K) -> Verdict {
        if self.limiter.len() > PRUNE_ABOVE {
            self.limiter.retain_recent();
        }
        match self.limiter.check_key(key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                // Until the bucket is full again: each used cell takes one period to return.
                let used = self.limit.saturating_sub(remaining);
                let reset = self.quota.replenish_interval() * used;
                Verdict::Allowed {
                    limit: self.limit,
                    remaining,
                    reset_seconds: ceil_seconds(reset),
                }
            }
            Err(not_until) => Verdict::Refused {
                limit: self.limit,
                retry_after_seconds: ceil_seconds(
                    not_until.wait_time_from(DefaultClock::default().now()),
                )
                .max(1),
            },
        }
    }
}

fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The server's limiters (one set per server).
pub struct Limits {
    per_ip: Option<Bucket<IpAddr>>,
    per_key: Option<Bucket<String>>,
    login_account: Option<Bucket<String>>,
    login_ip: Option<Bucket<IpAddr>>,
    trust_forwarded_for: bool,
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            per_ip: Bucket::new(settings.per_ip, settings.window),
            per_key: Bucket::new(settings.per_api_key, settings.window),
            login_account: Bucket::new(settings.login_per_account, settings.login_window),
            login_ip: Bucket::new(settings.login_per_ip, settings.login_window),
            trust_forwarded_for: settings.trust_forwarded_for,
        }
    }

    /// Counts a login attempt against the account and the address. `RATE_LIMITED` with
    /// `retryAfter` (seconds) once either has used its tries.
    pub fn login_attempt(&self, username: &str, ip: Option<IpAddr>) -> Result<(), AppError> {
        let by_account = self
            .login_account
            .as_ref()
            .map(|b| b.check(&username.trim().to_lowercase()));
        let by_ip = match (&self.login_ip, ip) {
            (Some(b), Some(ip)) => Some(b.check(&ip)),
            _ => None,
        };
        let wait = [by_account, by_ip]
            .into_iter()
            .flatten()
            .filter_map(|v| match v {
                Verdict::Refused {
                    retry_after_seconds,
                    ..
                } => Some(retry_after_seconds),
                Verdict::Allowed { .. } => None,
            })
            .max();
        match wait {
            None => Ok(()),
            Some(seconds) => Err(rate_limited(
                format!("too many login attempts; retry in {seconds} s"),
                seconds,
            )),
        }
    }

    /// The client's address: the peer, or (behind a trusted proxy) the address the proxy
    /// added last to `X-Forwarded-For`. Earlier entries are the client's own word.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        if self.trust_forwarded_for
            && let Some(forwarded) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|v| v.trim().parse::<IpAddr>().ok())
                .next_back()
        {
            return Some(forwarded);
        }
        peer
    }
}

/// A `RATE_LIMITED` error with the wait in `extensions.retryAfter`.
pub fn rate_limited(message: String, retry_after_seconds: u64) -> AppError {
    let mut details = serde_json::Map::new();
    details.insert("retryAfter".into(), json!(retry_after_seconds));
    AppError::RefusedWith {
        code: ErrorCode::RateLimited,
        message,
        details,
    }
}

/// The caller's address as the limits saw it, for handlers (login throttling).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

/// Paths that are not limited: Meta's webhook, health checks and metrics.
fn exempt(path: &str) -> bool {
    path == crate::whatsapp::webhook::PATH
        || path.starts_with("/webhooks/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// The middleware: counts the request, refuses it with 429 past a limit, and adds the
/// headers to the answer.
pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let limits = &state.limits;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let ip = limits.client_ip(peer, request.headers());
    if let Some(ip) = ip {
        request.extensions_mut().insert(ClientIp(ip));
    }
    if exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let mut verdicts = Vec::with_capacity(2);
    if let (Some(bucket), Some(ip)) = (&limits.per_ip, ip) {
        verdicts.push(bucket.check(&ip));
    }
    if let Some(bucket) = &limits.per_key
        && let Some(key) = presented_key(request.headers())
    {
        // Keyed by the hash: the limiter never holds a usable secret.
        verdicts.push(bucket.check(&api_key::hash(&key)));
    }
    let refused = verdicts
        .iter()
        .filter_map(|v| match *v {
            Verdict::Refused {
                limit,
                retry_after_seconds,
            } => Some((limit, retry_after_seconds)),
            Verdict::Allowed { .. } => None,
        })
        .max_by_key(|(_, wait)| *wait);
    if let Some((limit, wait)) = refused {
        let body = json!({ "errors": [{
            "message": format!("too many requests; retry in {wait} s"),
            "extensions": { "code": ErrorCode::RateLimited.as_str(), "retryAfter": wait },
        }] });
        let mut response = (StatusCode::TOO_MANY_REQUESTS, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
        set_headers(headers, limit, 0, wait);
        return response;
    }
    let mut response = next.run(request).await;
    // The limit closest to running out speaks for all.
    if let Some(Verdict::Allowed {
        limit,
        remaining,
        reset_seconds,
    }) = verdicts.into_iter().min_by_key(|v| match v {
        Verdict::Allowed { remaining, .. } => *remaining,
        Verdict::Refused { .. } => 0,
    }) {
        set_headers(response.headers_mut(), limit, remaining, reset_seconds);
    }
    response
}

fn set_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset: u64) {
    headers.insert("ratelimit-limit", HeaderValue::from(limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(reset));
}

/// An API key sent in the headers (`X-Api-Key`, or a `pk_…` bearer token).
fn presented_key(headers: &HeaderMap) -> Option<String> {
    crate::auth::context::Credentials::from_headers(headers).api_key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_counts_down_then_refuses_with_the_wait() {
        let bucket = Bucket::<u8>::new(3, Duration::from_secs(60)).unwrap();
        let mut remaining = Vec::new();
        for _ in 0..3 {
            match bucket.check(&1) {
                Verdict::Allowed {
                    limit,
                    remaining: r,
                    reset_seconds,
                } => {
                    assert_eq!(limit, 3);
                    assert!(reset_seconds <= 60, "{reset_seconds}");
                    remaining.push(r);
                }
                refused => panic!("{refused:?}"),
            }
        }
        assert_eq!(remaining, [2, 1, 0]);
        match bucket.check(&1) {
            Verdict::Refused {
                limit,
                retry_after_seconds,
            } => {
                assert_eq!(limit, 3);
                assert!(
                    (1..=20).contains(&retry_after_seconds),
                    "{retry_after_seconds}"
                );
            }
            allowed => panic!("{allowed:?}"),
        }
        // Another key has its own bucket.
        assert!(matches!(
            bucket.check(&2),
            Verdict::Allowed { remaining: 2, .. }
        ));
        assert!(Bucket::<u8>::new(0, Duration::from_secs(60)).is_none());
    }

    #[test]
    fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
        let mut settings = LimitSettings::default();
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "1.2.3.4, 5.6.7.8".parse().unwrap());
        let untrusting = Limits::new(&settings);
        assert_eq!(untrusting.client_ip(Some(peer), &headers), Some(peer));
        settings.trust_forwarded_for = true;
        let trusting = Limits::new(&settings);
        assert_eq!(
            trusting.client_ip(Some(peer), &headers),
            Some("5.6.7.8".parse().unwrap())
        );
        assert_eq!(
            trusting.client_ip(Some(peer), &HeaderMap::new()),
            Some(peer)
        );
    }

    #[test]
    fn logins_are_throttled_per_account_and_per_address() {
        let settings = LimitSettings {
            login_per_account: 2,
            login_per_ip: 2,
            ..LimitSettings::default()
        };
        let limits = Limits::new(&settings);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.login_attempt("Asha", Some(ip)).is_ok());
        assert!(limits.login_attempt("asha ", Some(other)).is_ok());
        // The account's tries are used, from whatever address.
        let err = limits.login_attempt("ASHA", Some(other)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::RateLimited);
        // The address's: a second account from it is still allowed, a third is not.
        assert!(limits.login_attempt("bob", Some(ip)).is_ok());
        assert_eq!(
            limits.login_attempt("carol", Some(ip)).unwrap_err().code(),
            ErrorCode::RateLimited
        );
    }
}
