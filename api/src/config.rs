//! Settings from environment variables. With nothing set, Parley runs embedded: SQLite under
//! `./data`, an in-process event bus, an embedded analytics store and the sandbox provider.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::contacts::phone::Unreachable;

#[derive(Clone, Debug)]
pub struct Settings {
    pub host: IpAddr,
    /// 0 picks a free port (tests).
    pub port: u16,
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…`; `None` means SQLite in `data_dir`.
    pub database_url: Option<SecretString>,
    pub database_max_connections: u32,
    /// `None` selects the in-process event bus.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis channel, so that several deployments can share one Redis.
    pub redis_channel_prefix: String,
    pub clickhouse: Option<ClickHouseSettings>,
    pub analytics: AnalyticsSettings,
    pub jwt: JwtSettings,
    pub graphql: GraphqlSettings,
    pub run_migrations: bool,
    pub log_format: LogFormat,
    /// Countries WhatsApp Business cannot reach, by E.164 prefix.
    pub unreachable: Unreachable,
    pub imports: ImportSettings,
    pub whatsapp: WhatsAppSettings,
    /// Longest the History sweep sleeps between looks (it wakes sooner when a chat is due).
    pub chat_sweep_interval: Duration,
    pub billing: BillingSettings,
    pub campaigns: CampaignSettings,
    pub onboarding: OnboardingSettings,
    /// Request rate limits and login throttling (`crate::limits`).
    pub limits: LimitSettings,
    /// Where users reach this server from outside (tracked links point here).
    pub public_url: String,
    /// Now, as the server sees it (tests move it forward).
    pub clock: crate::clock::Clock,
}

#[derive(Clone, Debug)]
pub struct CampaignSettings {
    /// Whether this node sends campaign messages (API-only nodes may leave it to others).
    pub dispatcher: bool,
    /// How long a claimed recipient is held before another node settles it (a node that
    /// stopped mid-send).
    pub claim_lease: Duration,
    /// API campaign calls each API key may make per second (bursts of twice as many).
    pub api_rate_per_second: u32,
}

/// Requests per window per client IP and per API key (0 turns one off), and login tries
/// per account and per IP.
#[derive(Clone, Debug)]
pub struct LimitSettings {
    pub window: Duration,
    pub per_ip: u32,
    pub per_api_key: u32,
    pub login_window: Duration,
    pub login_per_account: u32,
    pub login_per_ip: u32,
    /// Count the address a proxy in front added last to `X-Forwarded-For`, not the peer.
    pub trust_forwarded_for: bool,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(60),
            per_ip: 6_000,
            per_api_key: 3_000,
            login_window: Duration::from_secs(15 * 60),
            login_per_account: 10,
            login_per_ip: 50,
            trust_forwarded_for: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct OnboardingSettings {
    /// Industries that cannot apply for the WhatsApp Business API (Commerce Policy).
    pub restricted_industries: crate::onboarding::rules::RestrictedIndustries,
    /// How long the sandbox takes to answer each step of the embedded sign-up.
    pub sandbox_step_delay: Duration,
}

#[derive(Clone, Debug)]
pub struct BillingSettings {
    /// Length of a new project's free trial.
    pub trial_days: u32,
    /// Credits a new project's wallet starts with (micro-units of its currency).
    pub trial_credits_micros: i64,
    /// A new wallet's low-balance alert threshold (micro-units).
    pub low_balance_micros: i64,
    /// How often subscription terms are checked for their end.
    pub sweep_interval: Duration,
}

#[derive(Clone, Debug)]
pub struct WhatsAppSettings {
    /// Meta's Graph API (a local fake in tests).
    pub graph_url: String,
    pub api_version: String,
    /// Longest a single call to Meta may take.
    pub timeout: Duration,
    /// Attempts per call when Meta fails for a moment (5xx, rate limits).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    /// The Meta app's secret: signs every webhook unless a project has its own app.
    pub app_secret: Option<SecretString>,
    /// Answers Meta's webhook verification challenge (projects may set their own).
    pub verify_token: Option<SecretString>,
    /// The Meta app's id: media samples of templates are uploaded to it.
    pub app_id: Option<String>,
    /// Projects without Cloud API credentials use the sandbox; off refuses their sends.
    pub sandbox_enabled: bool,
    pub sandbox: SandboxSettings,
    /// Largest webhook body accepted.
    pub max_webhook_bytes: usize,
}

/// The sandbox's clock and its share of failures and replies.
#[derive(Clone, Debug)]
pub struct SandboxSettings {
    /// Time between a send and each of its statuses (sent, delivered, read).
    pub status_step: Duration,
    /// Time Meta's review of a submitted template takes.
    pub review_delay: Duration,
    /// Share of sends, in percent, that fail as Meta would (undeliverable, say).
    pub failure_percent: u8,
    /// Share of read messages, in percent, that the recipient answers.
    pub reply_percent: u8,
}

#[derive(Clone, Debug)]
pub struct ImportSettings {
    /// Largest CSV file accepted for import.
    pub max_bytes: usize,
    pub max_rows: u64,
    /// Rows applied per transaction (and between progress reports).
    pub batch_rows: usize,
    /// Uploaded files are stored and read back in pieces of this size, so memory stays
    /// flat whatever the file's size.
    pub chunk_bytes: usize,
    /// Longest an import batch waits for a row another writer holds before it gives up
    /// (and the import fails with the reason) instead of waiting without end.
    pub lock_timeout: std::time::Duration,
}

#[derive(Clone, Debug)]
pub struct ClickHouseSettings {
    pub url: String,
    pub database: String,
    pub user: Option<String>,
    pub password: Option<SecretString>,
}

#[derive(Clone, Debug)]
pub struct AnalyticsSettings {
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// How often the shipper looks at the outbox when idle.
    pub poll_interval: Duration,
    /// Batches shipped at once per process on PostgreSQL.
    pub shippers: usize,
}

#[derive(Clone, Debug)]
pub struct JwtSettings {
    /// HMAC key that signs new tokens; `None` in the embedded mode generates one under
    /// `data_dir` on first start.
    pub secret: Option<SecretString>,
    /// Sent as `kid`, so that a rotated key can still verify the tokens it signed.
    pub key_id: String,
    /// Earlier keys that still verify tokens (`kid=secret` pairs) during a rotation.
    pub previous_keys: Vec<(String, SecretString)>,
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
}

#[derive(Clone, Debug)]
pub struct GraphqlSettings {
    pub max_depth: usize,
    pub max_complexity: usize,
    pub introspection: bool,
    pub graphiql: bool,
    /// Time a WebSocket client has to send `connection_init`.
    pub connection_init_timeout: Duration,
    pub max_body_bytes: usize,
    /// "Did you mean …?" in validation errors; off in production hides field names from
    /// whoever probes the schema with introspection turned off.
    pub suggestions: bool,
    /// Aliased fields a request may use, fragments expanded (`graphql::aliases`).
    pub max_aliases: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            data_dir: PathBuf::from("data"),
            database_url: None,
            database_max_connections: 20,
            redis_url: None,
            redis_channel_prefix: "parley".into(),
            clickhouse: None,
            analytics: AnalyticsSettings {
                batch_size: 10_000,
                flush_interval: Duration::from_secs(1),
                poll_interval: Duration::from_millis(200),
                shippers: 2,
            },
            jwt: JwtSettings {
                secret: None,
                key_id: "k1".into(),
                previous_keys: Vec::new(),
                issuer: "parley".into(),
                audience: "parley-api".into(),
                ttl: Duration::from_secs(12 * 3600),
            },
            graphql: GraphqlSettings {
                max_depth: 15,
                max_complexity: 250,
                introspection: true,
                graphiql: true,
                connection_init_timeout: Duration::from_secs(10),
                max_body_bytes: 2 * 1024 * 1024,
                suggestions: true,
                max_aliases: 20,
            },
            run_migrations: true,
            log_format: LogFormat::Pretty,
            unreachable: Unreachable::default(),
            imports: ImportSettings {
                max_bytes: 100 * 1024 * 1024,
                max_rows: 2_000_000,
                batch_rows: 5_000,
                chunk_bytes: 1024 * 1024,
                lock_timeout: std::time::Duration::from_secs(30),
            },
            whatsapp: WhatsAppSettings {
                graph_url: "https://graph.facebook.com".into(),
                api_version: "v23.0".into(),
                timeout: Duration::from_secs(15),
                max_attempts: 3,
                backoff_base: Duration::from_millis(500),
                app_secret: None,
                verify_token: None,
                app_id: None,
                sandbox_enabled: true,
                sandbox: SandboxSettings {
                    status_step: Duration::from_secs(2),
                    review_delay: Duration::from_secs(5),
                    failure_percent: 5,
                    reply_percent: 20,
                },
                max_webhook_bytes: 1024 * 1024,
            },
            chat_sweep_interval: Duration::from_secs(30),
            public_url: "http://localhost:8080".into(),
            campaigns: CampaignSettings {
                dispatcher: true,
                claim_lease: Duration::from_secs(120),
                api_rate_per_second: 20,
            },
            billing: BillingSettings {
                trial_days: 14,
                trial_credits_micros: 100_000_000,
                low_balance_micros: 50_000_000,
                sweep_interval: Duration::from_secs(60),
            },
            onboarding: OnboardingSettings {
                restricted_industries: Default::default(),
                sandbox_step_delay: Duration::from_secs(3),
            },
            limits: LimitSettings::default(),
            clock: crate::clock::Clock::default(),
        }
    }
}

impl Settings {
    /// Reads the process environment (and a `.env` file, when present).
    pub fn from_env() -> anyhow::Result<Self> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|key| std::env::var(key).ok().filter(|v| !v.trim().is_empty()))
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut s = Self::default();
        let parse = |key: &str| get(key);
        if let Some(v) = parse("PARLEY_HOST") {
            s.host = v
                .parse()
                .with_context(|| format!("PARLEY_HOST: not an IP address: {v}"))?;
        }
        if let Some(v) = parse("PARLEY_PORT").or_else(|| parse("PORT")) {
            s.port = v
                .parse()
                .with_context(|| format!("PARLEY_PORT: not a port: {v}"))?;
        }
        if let Some(v) = parse("PARLEY_DATA_DIR") {
            s.data_dir = v.into();
        }
        s.database_url = parse("DATABASE_URL").map(SecretString::from);
        if let Some(v) = parse("DATABASE_MAX_CONNECTIONS") {
            s.database_max_connections = number("DATABASE_MAX_CONNECTIONS", &v)?;
        }
        s.redis_url = parse("REDIS_URL").map(SecretString::from);
        if let Some(v) = parse("REDIS_CHANNEL_PREFIX") {
            s.redis_channel_prefix = v;
        }
        if let Some(url) = parse("CLICKHOUSE_URL") {
            s.clickhouse = Some(ClickHouseSettings {
                url,
                database: parse("CLICKHOUSE_DATABASE").unwrap_or_else(|| "parley".into()),
                user: parse("CLICKHOUSE_USER"),
                password: parse("CLICKHOUSE_PASSWORD").map(SecretString::from),
            });
        }
        if let Some(v) = parse("ANALYTICS_BATCH_SIZE") {
            s.analytics.batch_size = number("ANALYTICS_BATCH_SIZE", &v)?;
        }
        if let Some(v) = parse("ANALYTICS_SHIPPERS") {
            s.analytics.shippers = number("ANALYTICS_SHIPPERS", &v)?;
        }
        if let Some(v) = parse("ANALYTICS_FLUSH_INTERVAL_MS") {
            s.analytics.flush_interval =
                Duration::from_millis(number("ANALYTICS_FLUSH_INTERVAL_MS", &v)?);
        }
        s.jwt.secret = parse("JWT_SECRET").map(SecretString::from);
        if let Some(v) = parse("JWT_KEY_ID") {
            s.jwt.key_id = v;
        }
        if let Some(v) = parse("JWT_PREVIOUS_KEYS") {
            s.jwt.previous_keys = previous_keys(&v)?;
        }
        if let Some(v) = parse("JWT_ISSUER") {
            s.jwt.issuer = v;
        }
        if let Some(v) = parse("JWT_AUDIENCE") {
            s.jwt.audience = v;
        }
        if let Some(v) = parse("JWT_TTL_SECONDS") {
            s.jwt.ttl = Duration::from_secs(number("JWT_TTL_SECONDS", &v)?);
        }
        if let Some(v) = parse("GRAPHQL_MAX_DEPTH") {
            s.graphql.max_depth = number("GRAPHQL_MAX_DEPTH", &v)?;
        }
        if let Some(v) = parse("GRAPHQL_MAX_COMPLEXITY") {
            s.graphql.max_complexity = number("GRAPHQL_MAX_COMPLEXITY", &v)?;
        }
        if let Some(v) = parse("GRAPHQL_INTROSPECTION") {
            s.graphql.introspection = boolean("GRAPHQL_INTROSPECTION", &v)?;
        }
        if let Some(v) = parse("GRAPHIQL") {
            s.graphql.graphiql = boolean("GRAPHIQL", &v)?;
        }
        if let Some(v) = parse("GRAPHQL_MAX_BODY_BYTES") {
            s.graphql.max_body_bytes = number("GRAPHQL_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = parse("GRAPHQL_SUGGESTIONS") {
            s.graphql.suggestions = boolean("GRAPHQL_SUGGESTIONS", &v)?;
        }
        if let Some(v) = parse("GRAPHQL_MAX_ALIASES") {
            s.graphql.max_aliases = number("GRAPHQL_MAX_ALIASES", &v)?;
        }
        limits_from_lookup(&mut s.limits, &parse)?;
        if let Some(v) = parse("WHATSAPP_UNREACHABLE_PREFIXES") {
            s.unreachable = Unreachable::parse(&v)
                .map_err(|e| anyhow::anyhow!("WHATSAPP_UNREACHABLE_PREFIXES: {e}"))?;
        }
        if let Some(v) = parse("IMPORT_MAX_BYTES") {
            s.imports.max_bytes = number("IMPORT_MAX_BYTES", &v)?;
        }
        if let Some(v) = parse("IMPORT_MAX_ROWS") {
            s.imports.max_rows = number("IMPORT_MAX_ROWS", &v)?;
        }
        if let Some(v) = parse("IMPORT_BATCH_ROWS") {
            s.imports.batch_rows = number("IMPORT_BATCH_ROWS", &v)?;
        }
        if let Some(v) = parse("IMPORT_CHUNK_BYTES") {
            s.imports.chunk_bytes = number("IMPORT_CHUNK_BYTES", &v)?;
        }
        if let Some(v) = parse("IMPORT_LOCK_TIMEOUT_MS") {
            let ms: u64 = number("IMPORT_LOCK_TIMEOUT_MS", &v)?;
            if ms == 0 {
                bail!("IMPORT_LOCK_TIMEOUT_MS: 0 would let an import wait without end");
            }
            s.imports.lock_timeout = std::time::Duration::from_millis(ms);
        }
        whatsapp_from_lookup(&mut s.whatsapp, &parse)?;
        if let Some(v) = parse("CHAT_SWEEP_INTERVAL_MS") {
            s.chat_sweep_interval = Duration::from_millis(number("CHAT_SWEEP_INTERVAL_MS", &v)?);
        }
        billing_from_lookup(&mut s.billing, &parse)?;
        if let Some(v) = parse("ONBOARDING_RESTRICTED_INDUSTRIES") {
            s.onboarding.restricted_industries =
                crate::onboarding::rules::RestrictedIndustries::parse(&v)
                    .map_err(|e| anyhow::anyhow!("ONBOARDING_RESTRICTED_INDUSTRIES: {e}"))?;
        }
        if let Some(v) = parse("WHATSAPP_SANDBOX_SIGNUP_MS") {
            s.onboarding.sandbox_step_delay =
                Duration::from_millis(number("WHATSAPP_SANDBOX_SIGNUP_MS", &v)?);
        }
        if let Some(v) = parse("PUBLIC_URL") {
            if !(v.starts_with("https://") || v.starts_with("http://")) {
                bail!("PUBLIC_URL: expected an http(s) URL, got {v:?}");
            }
            s.public_url = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = parse("CAMPAIGN_DISPATCHER") {
            s.campaigns.dispatcher = boolean("CAMPAIGN_DISPATCHER", &v)?;
        }
        if let Some(v) = parse("CAMPAIGN_CLAIM_LEASE_MS") {
            let ms: u64 = number("CAMPAIGN_CLAIM_LEASE_MS", &v)?;
            if ms < 100 {
                bail!("CAMPAIGN_CLAIM_LEASE_MS must be at least 100");
            }
            s.campaigns.claim_lease = Duration::from_millis(ms);
        }
        if let Some(v) = parse("API_CAMPAIGN_RATE_PER_SECOND") {
            let rate: u32 = number("API_CAMPAIGN_RATE_PER_SECOND", &v)?;
            if rate == 0 {
                bail!("API_CAMPAIGN_RATE_PER_SECOND must be at least 1");
            }
            s.campaigns.api_rate_per_second = rate;
        }
        if let Some(v) = parse("RUN_MIGRATIONS") {
            s.run_migrations = boolean("RUN_MIGRATIONS", &v)?;
        }
        if let Some(v) = parse("LOG_FORMAT") {
            s.log_format = match v.as_str() {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                other => bail!("LOG_FORMAT: expected json or pretty, got {other}"),
            };
        }
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(secret) = &self.jwt.secret
            && secret.expose_secret().len() < 32
        {
            bail!("JWT_SECRET must be at least 32 bytes");
        }
        if self.graphql.max_depth < 15 || self.graphql.max_complexity < 220 {
            bail!(
                "GRAPHQL_MAX_DEPTH must be at least 15 and GRAPHQL_MAX_COMPLEXITY at least 220, \
                 or standard introspection stops working"
            );
        }
        if self.imports.chunk_bytes == 0 {
            bail!("IMPORT_CHUNK_BYTES must be at least 1");
        }
        Ok(())
    }

    /// The database URL in force: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("parley.sqlite").display()
            ),
        }
    }

    pub fn is_embedded_database(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }
}

fn whatsapp_from_lookup(
    w: &mut WhatsAppSettings,
    parse: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    if let Some(v) = parse("WHATSAPP_GRAPH_URL") {
        w.graph_url = v.trim_end_matches('/').to_owned();
    }
    if let Some(v) = parse("WHATSAPP_API_VERSION") {
        w.api_version = v;
    }
    if let Some(v) = parse("WHATSAPP_TIMEOUT_MS") {
        w.timeout = Duration::from_millis(number("WHATSAPP_TIMEOUT_MS", &v)?);
    }
    if let Some(v) = parse("WHATSAPP_MAX_ATTEMPTS") {
        w.max_attempts = number("WHATSAPP_MAX_ATTEMPTS", &v)?;
        if w.max_attempts == 0 {
            bail!("WHATSAPP_MAX_ATTEMPTS must be at least 1");
        }
    }
    w.app_secret = parse("WHATSAPP_APP_SECRET").map(SecretString::from);
    w.verify_token = parse("WHATSAPP_VERIFY_TOKEN").map(SecretString::from);
    w.app_id = parse("WHATSAPP_APP_ID");
    if let Some(v) = parse("WHATSAPP_SANDBOX") {
        w.sandbox_enabled = boolean("WHATSAPP_SANDBOX", &v)?;
    }
    if let Some(v) = parse("WHATSAPP_SANDBOX_STATUS_STEP_MS") {
        w.sandbox.status_step =
            Duration::from_millis(number("WHATSAPP_SANDBOX_STATUS_STEP_MS", &v)?);
    }
    if let Some(v) = parse("WHATSAPP_SANDBOX_REVIEW_MS") {
        w.sandbox.review_delay = Duration::from_millis(number("WHATSAPP_SANDBOX_REVIEW_MS", &v)?);
    }
    if let Some(v) = parse("WHATSAPP_SANDBOX_FAILURE_PERCENT") {
        w.sandbox.failure_percent = percent("WHATSAPP_SANDBOX_FAILURE_PERCENT", &v)?;
    }
    if let Some(v) = parse("WHATSAPP_SANDBOX_REPLY_PERCENT") {
        w.sandbox.reply_percent = percent("WHATSAPP_SANDBOX_REPLY_PERCENT", &v)?;
    }
    if let Some(v) = parse("WHATSAPP_WEBHOOK_MAX_BYTES") {
        w.max_webhook_bytes = number("WHATSAPP_WEBHOOK_MAX_BYTES", &v)?;
    }
    Ok(())
}

fn percent(key: &str, value: &str) -> anyhow::Result<u8> {
    let n: u8 = number(key, value)?;
    if n > 100 {
        bail!("{key}: a percentage from 0 to 100, got {n}");
    }
    Ok(n)
}

fn limits_from_lookup(
    l: &mut LimitSettings,
    parse: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    if let Some(v) = parse("RATE_LIMIT_WINDOW_SECONDS") {
        let seconds: u64 = number("RATE_LIMIT_WINDOW_SECONDS", &v)?;
        if seconds == 0 {
            bail!("RATE_LIMIT_WINDOW_SECONDS must be at least 1");
        }
        l.window = Duration::from_secs(seconds);
    }
    if let Some(v) = parse("RATE_LIMIT_PER_IP") {
        l.per_ip = number("RATE_LIMIT_PER_IP", &v)?;
    }
    if let Some(v) = parse("RATE_LIMIT_PER_API_KEY") {
        l.per_api_key = number("RATE_LIMIT_PER_API_KEY", &v)?;
    }
    if let Some(v) = parse("RATE_LIMIT_TRUST_FORWARDED_FOR") {
        l.trust_forwarded_for = boolean("RATE_LIMIT_TRUST_FORWARDED_FOR", &v)?;
    }
    if let Some(v) = parse("LOGIN_WINDOW_SECONDS") {
        let seconds: u64 = number("LOGIN_WINDOW_SECONDS", &v)?;
        if seconds == 0 {
            bail!("LOGIN_WINDOW_SECONDS must be at least 1");
        }
        l.login_window = Duration::from_secs(seconds);
    }
    if let Some(v) = parse("LOGIN_ATTEMPTS_PER_ACCOUNT") {
        l.login_per_account = number("LOGIN_ATTEMPTS_PER_ACCOUNT", &v)?;
    }
    if let Some(v) = parse("LOGIN_ATTEMPTS_PER_IP") {
        l.login_per_ip = number("LOGIN_ATTEMPTS_PER_IP", &v)?;
    }
    Ok(())
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> anyhow::Result<T> {
    value
        .parse()
        .map_err(|_| anyhow::anyhow!("{key}: not a number: {value}"))
}

fn boolean(key: &str, value: &str) -> anyhow::Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{key}: expected true or false, got {value}"),
    }
}

fn previous_keys(value: &str) -> anyhow::Result<Vec<(String, SecretString)>> {
    value
        .split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (kid, secret) = pair
                .split_once('=')
                .context("JWT_PREVIOUS_KEYS: expected kid=secret pairs separated by commas")?;
            Ok((
                kid.trim().to_owned(),
                SecretString::from(secret.trim().to_owned()),
            ))
        })
        .collect()
}

fn billing_from_lookup(
    b: &mut BillingSettings,
    parse: &impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    let amount = |key: &str, v: &str| -> anyhow::Result<i64> {
        crate::billing::pricing::parse_micros(v).ok_or_else(|| {
            anyhow::anyhow!("{key}: expected an amount like 100 or 12.50, got {v:?}")
        })
    };
    if let Some(v) = parse("BILLING_TRIAL_DAYS") {
        b.trial_days = number("BILLING_TRIAL_DAYS", &v)?;
    }
    if let Some(v) = parse("BILLING_TRIAL_CREDITS") {
        b.trial_credits_micros = amount("BILLING_TRIAL_CREDITS", &v)?;
    }
    if let Some(v) = parse("BILLING_LOW_BALANCE") {
        b.low_balance_micros = amount("BILLING_LOW_BALANCE", &v)?;
    }
    if let Some(v) = parse("BILLING_SWEEP_INTERVAL_MS") {
        let ms: u64 = number("BILLING_SWEEP_INTERVAL_MS", &v)?;
        if ms == 0 {
            bail!("BILLING_SWEEP_INTERVAL_MS must be positive");
        }
        b.sweep_interval = Duration::from_millis(ms);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_is_the_embedded_default() {
        let s = settings(&[]).unwrap();
        assert!(s.is_embedded_database());
        assert!(s.redis_url.is_none() && s.clickhouse.is_none());
        assert_eq!(s.database_url(), "sqlite://data/parley.sqlite?mode=rwc");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://u:hunter2@db/parley"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef-secret"),
            ("JWT_PREVIOUS_KEYS", "k0=old-secret-value"),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(!shown.contains("abcdef-secret"));
        assert!(!shown.contains("old-secret-value"));
        assert_eq!(s.jwt.previous_keys[0].0, "k0");
    }

    #[test]
    fn onboarding_settings() {
        let s = settings(&[
            (
                "ONBOARDING_RESTRICTED_INDUSTRIES",
                "crypto=Crypto exchanges",
            ),
            ("WHATSAPP_SANDBOX_SIGNUP_MS", "250"),
        ])
        .unwrap();
        let restricted = &s.onboarding.restricted_industries;
        assert!(restricted.lookup("crypto").is_some());
        assert!(restricted.lookup("alcohol").is_none());
        assert_eq!(s.onboarding.sandbox_step_delay, Duration::from_millis(250));
        let default = settings(&[]).unwrap();
        assert!(
            default
                .onboarding
                .restricted_industries
                .lookup("alcohol")
                .is_some()
        );
        let err = settings(&[("ONBOARDING_RESTRICTED_INDUSTRIES", "Crypto")]).unwrap_err();
        assert!(err.to_string().contains("ONBOARDING_RESTRICTED_INDUSTRIES"));
    }

    #[test]
    fn bad_values_are_refused_with_the_variable_name() {
        let err = settings(&[("PARLEY_PORT", "eighty")]).unwrap_err();
        assert!(err.to_string().contains("PARLEY_PORT"));
        let err = settings(&[("JWT_SECRET", "short")]).unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET"));
        let err = settings(&[("GRAPHQL_MAX_DEPTH", "5")]).unwrap_err();
        assert!(err.to_string().contains("introspection"));
        let err = settings(&[("IMPORT_CHUNK_BYTES", "0")]).unwrap_err();
        assert!(err.to_string().contains("IMPORT_CHUNK_BYTES"));
        let s = settings(&[("IMPORT_CHUNK_BYTES", "4096")]).unwrap();
        assert_eq!(s.imports.chunk_bytes, 4096);
    }
}
