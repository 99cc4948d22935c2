//! Meta's WhatsApp Cloud API (the Graph API) as a [`WhatsAppProvider`].
//!
//! # Retries
//!
//! Calls that fail with [`FailureKind::Transient`] or [`FailureKind::RateLimited`] are
//! retried up to [`MetaConfig::max_attempts`] attempts in all, waiting `backoff_base * 2^n`
//! (capped at 30 s, with full jitter) or what Meta's `Retry-After` header asks (capped
//! too). [`FailureKind::Permanent`] failures are never retried.
//!
//! A retried send could deliver a message twice if Meta had accepted the first attempt,
//! so `send` is retried only when Meta surely did not accept the message: it answered
//! with an HTTP 5xx, a 429 or one of its rate-limit codes, or the connection could not be
//! made. A timeout or a broken connection once the request may have been written is not
//! retried for `send`: it returns [`FailureKind::Transient`] and the caller decides.
//! Listing and submitting templates retry those too, since a repeated read is harmless
//! and Meta refuses a second template of the same name and language; so do the uploads
//! of media samples, since an upload session left unfinished is harmless.
//!
//! # Media samples
//!
//! Parley keeps a media header's sample as a URL, but Meta's template endpoints take only
//! a handle from its Resumable Upload API there. Before a template is submitted or edited,
//! each such URL is downloaded (without Meta's token, at most [`MAX_SAMPLE_BYTES`]) and
//! uploaded to the Meta app ([`MetaConfig::app_id`]); the handle replaces the URL. A
//! sample that cannot be downloaded is the user's to fix, so that failure is permanent.

use std::{error::Error as StdError, time::Duration};

use async_trait::async_trait;
use rand::Rng;
use reqwest::{
    Method, StatusCode, Url,
    header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap},
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Map, Value, json};

use super::provider::{
    Account, BusinessProfile, Content, FailureKind, MediaKind, OutboundMessage, PhoneNumberRequest,
    ProviderError, Recipient, RemoteTemplate, SendReceipt, SignupProvider, SubmittedTemplate,
    TemplatePage, TemplateSubmission, WhatsAppProvider,
};

/// The longest wait between two attempts, whatever the backoff or `Retry-After` says, so
/// a caller is never held for minutes.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Connecting takes far less than a whole call; failing early leaves room for a retry.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const TEMPLATE_FIELDS: &str =
    "id,name,language,status,category,rejected_reason,parameter_format,components";
/// The largest page Meta serves for template lists.
const TEMPLATE_PAGE_LIMIT: &str = "100";
/// Meta's throughput and rate-limit codes (app, WABA, pair, spam and registration limits).
const RATE_LIMIT_CODES: [i64; 6] = [4, 80007, 130429, 131048, 131056, 133016];
/// Meta's "unknown error", "service unavailable" and temporary send failures.
const TRANSIENT_CODES: [i64; 4] = [1, 2, 131000, 131016];
/// How much of an unreadable error body goes into the error message.
const BODY_EXCERPT_CHARS: usize = 200;
/// The largest media sample downloaded for upload, so a user's URL cannot make the server
/// hold an arbitrary file in memory. Meta's own limit for header videos.
const MAX_SAMPLE_BYTES: usize = 16 * 1024 * 1024;
/// Header formats whose sample is a file.
const MEDIA_HEADER_FORMATS: [&str; 3] = ["IMAGE", "VIDEO", "DOCUMENT"];
const FALLBACK_FILE_TYPE: &str = "application/octet-stream";

#[derive(Clone, Debug)]
pub struct MetaConfig {
    /// Without the version, e.g. `https://graph.facebook.com`.
    pub graph_url: String,
    /// e.g. `v23.0`.
    pub api_version: String,
    /// For a whole call, from connecting to reading the answer.
    pub timeout: Duration,
    /// Attempts in all, the first included; at least 1.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    /// The Meta app that receives uploads of media samples; without it, templates with a
    /// media sample URL cannot be submitted.
    pub app_id: Option<String>,
    /// The Meta app's secret: with `app_id`, exchanges the embedded sign-up's code for an
    /// access token.
    pub app_secret: Option<secrecy::SecretString>,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            graph_url: "https://graph.facebook.com".into(),
            api_version: "v23.0".into(),
            timeout: Duration::from_secs(30),
            max_attempts: 3,
            backoff_base: Duration::from_millis(500),
            app_id: None,
            app_secret: None,
        }
    }
}

/// The Cloud API client. Clones share one connection pool, so keep one per process.
/// What is retried, and why sends less, is in the module documentation.
#[derive(Clone, Debug)]
pub struct MetaClient {
    http: reqwest::Client,
    config: MetaConfig,
}

impl MetaClient {
    pub fn new(config: MetaConfig) -> anyhow::Result<Self> {
        anyhow::ensure!(config.max_attempts >= 1, "max_attempts must be at least 1");
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, config })
    }

    /// `{graph}/{version}/{node}/{edge}`.
    fn url(&self, node: &str, edge: &str) -> String {
        format!(
            "{}/{}/{node}/{edge}",
            self.config.graph_url.trim_end_matches('/'),
            self.config.api_version
        )
    }

    /// `{graph}/{version}/{node}`.
    fn node_url(&self, node: &str) -> String {
        format!(
            "{}/{}/{node}",
            self.config.graph_url.trim_end_matches('/'),
            self.config.api_version
        )
    }

    /// Runs `call`, retrying as the module documentation says, and decodes Meta's answer.
    async fn execute<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, ProviderError> {
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(call).await {
                Ok(answer) => return Ok(answer),
                Err(failure) => failure,
            };
            if attempt >= self.config.max_attempts || !failure.worth_retrying(call.replay) {
                return Err(failure.error);
            }
            let delay = retry_delay(self.config.backoff_base, attempt - 1, failure.retry_after);
            log_retry(call, attempt, self.config.max_attempts, delay, &failure);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn attempt<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, Failure> {
        let request = self
            .http
            .request(call.method.clone(), &call.url)
            .query(&call.query);
        let request = match &call.payload {
            // The code exchange authenticates with the app's id and secret instead.
            Payload::None if call.token.is_empty() => request,
            Payload::None => request.bearer_auth(call.token),
            Payload::Json(body) => request.bearer_auth(call.token).json(body),
            Payload::File(bytes) => request
                .header(AUTHORIZATION, format!("OAuth {}", call.token))
                .header("file_offset", "0")
                .body(bytes.clone()),
        };
        let response = request.send().await.map_err(Failure::transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.map_err(Failure::transport)?;
        if !status.is_success() {
            return Err(Failure::answered(status, &body, retry_after));
        }
        serde_json::from_slice(&body).map_err(|e| Failure::unreadable(status, &e))
    }
}

/// Media samples: see the module documentation.
impl MetaClient {
    /// `components` with each media header's sample URL replaced by an uploaded handle.
    async fn with_uploaded_samples(
        &self,
        account: &Account,
        components: &[Value],
    ) -> Result<Vec<Value>, ProviderError> {
        let mut components = components.to_vec();
        for component in &mut components {
            if let Some(url) = sample_url(component) {
                let handle = self.upload_sample(account, &url).await?;
                component["example"]["header_handle"] = json!([handle]);
            }
        }
        Ok(components)
    }

    async fn upload_sample(&self, account: &Account, url: &str) -> Result<String, ProviderError> {
        let app_id = self.config.app_id.as_deref().ok_or_else(|| {
            permanent("uploading a media sample needs the Meta app id (WHATSAPP_APP_ID)".into())
        })?;
        let sample = self.download(url).await?;
        let session = self.start_upload(account, app_id, &sample).await?;
        self.upload_file(account, &session, sample.bytes).await
    }

    /// Fetches the user's sample; Meta's token is not sent to a URL outside Meta.
    async fn download(&self, url: &str) -> Result<Sample, ProviderError> {
        let failed =
            |why: String| permanent(format!("could not download the media sample {url}: {why}"));
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| failed(chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        // The announced length spares downloading what would be refused anyway.
        if response
            .content_length()
            .is_some_and(|n| n > MAX_SAMPLE_BYTES as u64)
        {
            return Err(too_large(url));
        }
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(chain(&e)))? {
            if bytes.len() + chunk.len() > MAX_SAMPLE_BYTES {
                return Err(too_large(url));
            }
            bytes.extend_from_slice(&chunk);
        }
        let file_name = file_name(url);
        let content_type = content_type.as_ref().and_then(|v| v.to_str().ok());
        Ok(Sample {
            file_type: file_type(content_type, &file_name),
            file_name,
            bytes,
        })
    }

    /// Opens an upload session in the Meta app; its id is where the bytes go.
    async fn start_upload(
        &self,
        account: &Account,
        app_id: &str,
        sample: &Sample,
    ) -> Result<String, ProviderError> {
        let call = Call {
            operation: "start_upload",
            method: Method::POST,
            url: self.url(app_id, "uploads"),
            query: vec![
                ("file_name", sample.file_name.clone()),
                ("file_length", sample.bytes.len().to_string()),
                ("file_type", sample.file_type.clone()),
            ],
            token: &account.access_token,
            payload: Payload::None,
            replay: Replay::Always,
        };
        let session: UploadSession = self.execute(&call).await?;
        Ok(session.id)
    }

    /// Sends the whole file at once; Meta answers with the handle templates take.
    async fn upload_file(
        &self,
        account: &Account,
        session: &str,
        bytes: Vec<u8>,
    ) -> Result<String, ProviderError> {
        let call = Call {
            operation: "upload_file",
            method: Method::POST,
            // The session id may carry its own query (`?sig=...`), kept as Meta gave it.
            url: self.node_url(session),
            query: Vec::new(),
            token: &account.access_token,
            payload: Payload::File(bytes),
            replay: Replay::Always,
        };
        let uploaded: UploadedFile = self.execute(&call).await?;
        Ok(uploaded.h)
    }
}

/// A downloaded media sample, described as the upload session asks.
struct Sample {
    file_name: String,
    file_type: String,
    bytes: Vec<u8>,
}

#[derive(Deserialize)]
struct UploadSession {
    id: String,
}

#[derive(Deserialize)]
struct UploadedFile {
    h: String,
}

/// The sample URL of a media header component, when its example is one (not a handle).
fn sample_url(component: &Value) -> Option<String> {
    let field = |key: &str| component.get(key).and_then(Value::as_str).unwrap_or("");
    let media = MEDIA_HEADER_FORMATS
        .iter()
        .any(|f| field("format").eq_ignore_ascii_case(f));
    if !field("type").eq_ignore_ascii_case("HEADER") || !media {
        return None;
    }
    let example = component
        .pointer("/example/header_handle/0")
        .and_then(Value::as_str)?;
    is_http_url(example).then(|| example.to_owned())
}

fn is_http_url(text: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        text.get(..scheme.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    })
}

/// The URL's last path segment, or `sample` when it has none.
fn file_name(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|url| {
            let last = url.path_segments()?.next_back()?;
            (!last.is_empty()).then(|| last.to_owned())
        })
        .unwrap_or_else(|| "sample".into())
}

/// The download's content type, else one guessed from the file's extension. A generic
/// `application/octet-stream` says nothing, so the extension is asked then too.
fn file_type(content_type: Option<&str>, file_name: &str) -> String {
    let announced = content_type
        .and_then(|value| value.parse::<mime::Mime>().ok())
        .map(|mime| mime.essence_str().to_owned())
        .filter(|essence| essence != FALLBACK_FILE_TYPE);
    announced
        .or_else(|| type_by_extension(file_name).map(str::to_owned))
        .unwrap_or_else(|| FALLBACK_FILE_TYPE.into())
}

/// The types WhatsApp takes for header media.
fn type_by_extension(file_name: &str) -> Option<&'static str> {
    let (_, extension) = file_name.rsplit_once('.')?;
    let file_type = match extension.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "mp4" => "video/mp4",
        "3gp" => "video/3gpp",
        "pdf" => "application/pdf",
        _ => return None,
    };
    Some(file_type)
}

fn too_large(url: &str) -> ProviderError {
    permanent(format!(
        "the media sample {url} is larger than {} MiB, the most uploaded to Meta",
        MAX_SAMPLE_BYTES / (1024 * 1024)
    ))
}

/// A failure on Parley's side of a call, which retrying would not fix.
fn permanent(message: String) -> ProviderError {
    ProviderError {
        kind: FailureKind::Permanent,
        code: None,
        subcode: None,
        message,
        http_status: None,
    }
}

/// One Graph API request, kept so that it can be sent again.
struct Call<'a> {
    operation: &'static str,
    method: Method,
    url: String,
    query: Vec<(&'static str, String)>,
    token: &'a str,
    payload: Payload,
    replay: Replay,
}

/// What a [`Call`] sends as its body.
enum Payload {
    None,
    Json(Value),
    /// A whole file for an upload session, which Meta's Resumable Upload API takes with
    /// `file_offset: 0` and an `OAuth` (not `Bearer`) authorization.
    File(Vec<u8>),
}

/// Whether a request that may already have reached Meta can be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Replay {
    /// Only if Meta surely did not act on it: a second send could deliver twice.
    IfUnaccepted,
    /// Whenever the failure is retryable.
    Always,
}

/// A failed attempt, with what the retry loop needs beyond the error itself.
#[derive(Debug)]
struct Failure {
    error: ProviderError,
    retry_after: Option<Duration>,
    /// Meta may have acted on the request despite the error (it timed out or broke after
    /// being written).
    maybe_accepted: bool,
    /// Meta's `fbtrace_id`, which Meta's support asks for.
    trace_id: Option<String>,
}

impl Failure {
    fn worth_retrying(&self, replay: Replay) -> bool {
        self.error.retryable() && (replay == Replay::Always || !self.maybe_accepted)
    }

    /// No answer: the connection failed or timed out.
    fn transport(err: reqwest::Error) -> Self {
        let message = if err.is_timeout() {
            format!("Meta did not answer in time: {}", chain(&err))
        } else {
            format!("could not reach Meta: {}", chain(&err))
        };
        Self {
            error: ProviderError {
                kind: FailureKind::Transient,
                code: None,
                subcode: None,
                message,
                http_status: err.status().map(|s| s.as_u16()),
            },
            retry_after: None,
            maybe_accepted: !err.is_connect(),
            trace_id: None,
        }
    }

    /// Meta answered with an error status, in its error shape or not.
    fn answered(status: StatusCode, body: &[u8], retry_after: Option<Duration>) -> Self {
        let graph = serde_json::from_slice::<ErrorEnvelope>(body)
            .ok()
            .map(|envelope| envelope.error);
        let code = graph.as_ref().and_then(|g| g.code);
        let subcode = graph.as_ref().and_then(|g| g.error_subcode);
        let trace_id = graph.as_ref().and_then(|g| g.fbtrace_id.clone());
        let message = graph
            .and_then(GraphError::into_message)
            .unwrap_or_else(|| describe_body(status, body));
        Self {
            error: ProviderError {
                kind: classify(Some(status.as_u16()), code),
                code,
                subcode,
                message,
                http_status: Some(status.as_u16()),
            },
            retry_after,
            maybe_accepted: false,
            trace_id,
        }
    }

    /// A success status with a body not in the documented shape. Not retried: Meta did
    /// what was asked, and asking again would do it twice.
    fn unreadable(status: StatusCode, err: &serde_json::Error) -> Self {
        Self {
            error: unexpected_answer(status, &err.to_string()),
            retry_after: None,
            maybe_accepted: true,
            trace_id: None,
        }
    }
}

fn unexpected_answer(status: StatusCode, why: &str) -> ProviderError {
    ProviderError {
        kind: FailureKind::Permanent,
        code: None,
        subcode: None,
        message: format!("unexpected answer from Meta: {why}"),
        http_status: Some(status.as_u16()),
    }
}

/// An error with its causes, since reqwest's own message hides them.
fn chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn describe_body(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let excerpt: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
    format!("Meta answered HTTP {status}: {}", excerpt.trim())
}

fn log_retry(call: &Call<'_>, attempt: u32, max_attempts: u32, delay: Duration, failure: &Failure) {
    let error = &failure.error;
    tracing::warn!(
        operation = call.operation,
        attempt,
        max_attempts,
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        kind = ?error.kind,
        code = error.code,
        subcode = error.subcode,
        http_status = error.http_status,
        fbtrace_id = failure.trace_id.as_deref(),
        error = %error.message,
        "Meta Graph API call failed; retrying"
    );
}

/// Which kind of failure Meta's HTTP status and error code mean. Public so that errors
/// reported later (in status webhooks, without an HTTP status) are judged the same way.
pub fn classify(http_status: Option<u16>, code: Option<i64>) -> FailureKind {
    let code_in = |codes: &[i64]| code.is_some_and(|c| codes.contains(&c));
    if http_status == Some(429) || code_in(&RATE_LIMIT_CODES) {
        FailureKind::RateLimited
    } else if http_status.is_some_and(|s| s >= 500)
        || code_in(&TRANSIENT_CODES)
        || (http_status.is_none() && code.is_none())
    {
        FailureKind::Transient
    } else {
        FailureKind::Permanent
    }
}

/// How long to wait before retry number `retry` (0 for the first).
fn retry_delay(base: Duration, retry: u32, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(wait) => wait.min(MAX_BACKOFF),
        None => rand::rng().random_range(Duration::ZERO..=backoff_ceiling(base, retry)),
    }
}

fn backoff_ceiling(base: Duration, retry: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(retry))
        .min(MAX_BACKOFF)
}

/// `Retry-After` in seconds; the HTTP-date form is not used by Meta.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    message: Option<String>,
    code: Option<i64>,
    error_subcode: Option<i64>,
    /// An object with `details` for WhatsApp errors; other shapes are ignored.
    error_data: Option<Value>,
    fbtrace_id: Option<String>,
}

impl GraphError {
    /// `error_data.details` says what went wrong more precisely than `message`.
    fn into_message(self) -> Option<String> {
        let details = self
            .error_data
            .as_ref()
            .and_then(|data| data.get("details"))
            .and_then(Value::as_str)
            .filter(|details| !details.is_empty())
            .map(str::to_owned);
        details.or(self.message)
    }
}

fn send_body(message: &OutboundMessage) -> Value {
    let mut body = Map::new();
    body.insert("messaging_product".into(), "whatsapp".into());
    body.insert("recipient_type".into(), "individual".into());
    match &message.to {
        Recipient::Phone(phone) => body.insert("to".into(), digits(phone).into()),
        Recipient::Bsuid(id) => body.insert("recipient".into(), id.as_str().into()),
    };
    let (kind, payload) = content_payload(&message.content);
    body.insert("type".into(), kind.into());
    body.insert(kind.into(), payload);
    if let Some(id) = &message.reply_to {
        body.insert("context".into(), json!({ "message_id": id }));
    }
    Value::Object(body)
}

/// Meta wants the number without `+` (or any formatting).
fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// The message `type` and the object Meta expects under that name.
fn content_payload(content: &Content) -> (&'static str, Value) {
    match content {
        Content::Text { body, preview_url } => {
            ("text", json!({ "body": body, "preview_url": preview_url }))
        }
        Content::Media {
            kind,
            link,
            caption,
            filename,
        } => (
            kind.as_str(),
            media_payload(*kind, link, caption.as_deref(), filename.as_deref()),
        ),
        Content::Template {
            name,
            language,
            components,
        } => ("template", template_payload(name, language, components)),
    }
}

/// Audio takes no caption and only documents take a file name; Meta rejects the others.
fn media_payload(
    kind: MediaKind,
    link: &str,
    caption: Option<&str>,
    filename: Option<&str>,
) -> Value {
    let mut media = Map::new();
    media.insert("link".into(), link.into());
    if let Some(caption) = caption.filter(|_| kind != MediaKind::Audio) {
        media.insert("caption".into(), caption.into());
    }
    if let Some(filename) = filename.filter(|_| kind == MediaKind::Document) {
        media.insert("filename".into(), filename.into());
    }
    Value::Object(media)
}

fn template_payload(name: &str, language: &str, components: &[Value]) -> Value {
    let mut template = json!({ "name": name, "language": { "code": language } });
    if !components.is_empty() {
        template["components"] = Value::Array(components.to_vec());
    }
    template
}

/// The creation request, with `components` (the template's, samples uploaded).
fn submission_body(template: &TemplateSubmission, components: Vec<Value>) -> Value {
    let mut body = json!({
        "name": template.name,
        "language": template.language,
        "category": template.category,
        "components": components,
    });
    // POSITIONAL is Meta's default; older API versions reject the field.
    if !template.parameter_format.eq_ignore_ascii_case("POSITIONAL") {
        body["parameter_format"] = template.parameter_format.as_str().into();
    }
    body
}

#[derive(Deserialize)]
struct SendAnswer {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    id: String,
}

#[derive(Deserialize)]
struct SubmitAnswer {
    id: String,
    status: String,
    category: Option<String>,
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    data: Vec<ListedTemplate>,
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    cursors: Option<Cursors>,
    /// Present only when there is a next page.
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    after: Option<String>,
}

#[derive(Deserialize)]
struct ListedTemplate {
    id: String,
    name: String,
    language: String,
    status: String,
    #[serde(default)]
    category: String,
    rejected_reason: Option<String>,
    parameter_format: Option<String>,
    #[serde(default)]
    components: Vec<Value>,
}

impl From<ListedTemplate> for RemoteTemplate {
    fn from(t: ListedTemplate) -> Self {
        Self {
            meta_id: t.id,
            name: t.name,
            language: t.language,
            status: t.status,
            category: t.category,
            // Meta says "NONE" for templates that were not rejected.
            rejected_reason: t.rejected_reason.filter(|r| r != "NONE" && !r.is_empty()),
            parameter_format: t.parameter_format,
            components: t.components,
        }
    }
}

impl From<ListAnswer> for TemplatePage {
    fn from(answer: ListAnswer) -> Self {
        let next_after = answer
            .paging
            .filter(|paging| paging.next.is_some())
            .and_then(|paging| paging.cursors)
            .and_then(|cursors| cursors.after);
        Self {
            templates: answer.data.into_iter().map(RemoteTemplate::from).collect(),
            next_after,
        }
    }
}

#[async_trait]
impl WhatsAppProvider for MetaClient {
    async fn send(
        &self,
        account: &Account,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, ProviderError> {
        let call = Call {
            operation: "send",
            method: Method::POST,
            url: self.url(&account.phone_number_id, "messages"),
            query: Vec::new(),
            token: &account.access_token,
            payload: Payload::Json(send_body(message)),
            replay: Replay::IfUnaccepted,
        };
        let answer: SendAnswer = self.execute(&call).await?;
        let sent = answer
            .messages
            .into_iter()
            .next()
            .ok_or_else(|| unexpected_answer(StatusCode::OK, "no message id"))?;
        Ok(SendReceipt {
            wa_message_id: sent.id,
        })
    }

    async fn submit_template(
        &self,
        account: &Account,
        template: &TemplateSubmission,
    ) -> Result<SubmittedTemplate, ProviderError> {
        let components = self
            .with_uploaded_samples(account, &template.components)
            .await?;
        let call = Call {
            operation: "submit_template",
            method: Method::POST,
            url: self.url(&account.waba_id, "message_templates"),
            query: Vec::new(),
            token: &account.access_token,
            payload: Payload::Json(submission_body(template, components)),
            replay: Replay::Always,
        };
        let answer: SubmitAnswer = self.execute(&call).await?;
        Ok(SubmittedTemplate {
            meta_id: answer.id,
            status: answer.status,
            category: answer.category.unwrap_or_else(|| template.category.clone()),
        })
    }

    /// Meta's template edit: the same id, new components (and category), reviewed again.
    async fn edit_template(
        &self,
        account: &Account,
        meta_id: &str,
        template: &TemplateSubmission,
    ) -> Result<(), ProviderError> {
        let components = self
            .with_uploaded_samples(account, &template.components)
            .await?;
        let call = Call {
            operation: "edit_template",
            method: Method::POST,
            url: self.node_url(meta_id),
            query: Vec::new(),
            token: &account.access_token,
            payload: Payload::Json(json!({
                "category": template.category,
                "components": components,
            })),
            replay: Replay::Always,
        };
        let _: Value = self.execute(&call).await?;
        Ok(())
    }

    async fn list_templates(
        &self,
        account: &Account,
        after: Option<&str>,
    ) -> Result<TemplatePage, ProviderError> {
        let mut query = vec![
            ("fields", TEMPLATE_FIELDS.to_owned()),
            ("limit", TEMPLATE_PAGE_LIMIT.to_owned()),
        ];
        if let Some(cursor) = after {
            query.push(("after", cursor.to_owned()));
        }
        let call = Call {
            operation: "list_templates",
            method: Method::GET,
            url: self.url(&account.waba_id, "message_templates"),
            query,
            token: &account.access_token,
            payload: Payload::None,
            replay: Replay::Always,
        };
        let answer: ListAnswer = self.execute(&call).await?;
        Ok(answer.into())
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Deserialize)]
struct IdAnswer {
    id: String,
}

/// Onboarding: Meta's code exchange and phone number endpoints. Calls that would send a
/// code again (or spend a one-time code) are retried only when Meta surely did not act.
#[async_trait]
impl SignupProvider for MetaClient {
    async fn exchange_code(&self, code: &str) -> Result<String, ProviderError> {
        use secrecy::ExposeSecret;
        let (Some(app_id), Some(secret)) = (&self.config.app_id, &self.config.app_secret) else {
            return Err(permanent(
                "the embedded sign-up needs the Meta app's id and secret \
                 (WHATSAPP_APP_ID, WHATSAPP_APP_SECRET)"
                    .into(),
            ));
        };
        let call = Call {
            operation: "exchange_code",
            method: Method::GET,
            url: self.node_url("oauth/access_token"),
            query: vec![
                ("client_id", app_id.clone()),
                ("client_secret", secret.expose_secret().to_owned()),
                ("code", code.to_owned()),
            ],
            token: "",
            payload: Payload::None,
            replay: Replay::IfUnaccepted,
        };
        let answer: TokenAnswer = self.execute(&call).await?;
        Ok(answer.access_token)
    }

    async fn add_phone_number(
        &self,
        token: &str,
        waba_id: &str,
        number: &PhoneNumberRequest,
    ) -> Result<String, ProviderError> {
        let call = Call {
            operation: "add_phone_number",
            method: Method::POST,
            url: self.url(waba_id, "phone_numbers"),
            query: Vec::new(),
            token,
            payload: Payload::Json(json!({
                "cc": number.country_code,
                "phone_number": number.national_number,
                "verified_name": number.display_name,
            })),
            replay: Replay::IfUnaccepted,
        };
        let answer: IdAnswer = self.execute(&call).await?;
        Ok(answer.id)
    }

    async fn request_code(
        &self,
        token: &str,
        phone_number_id: &str,
        method: &str,
        language: &str,
    ) -> Result<(), ProviderError> {
        let call = Call {
            operation: "request_code",
            method: Method::POST,
            url: self.url(phone_number_id, "request_code"),
            query: Vec::new(),
            token,
            payload: Payload::Json(json!({ "code_method": method, "language": language })),
            replay: Replay::IfUnaccepted,
        };
        success(self.execute(&call).await?)
    }

    async fn verify_code(
        &self,
        token: &str,
        phone_number_id: &str,
        code: &str,
    ) -> Result<(), ProviderError> {
        let call = Call {
            operation: "verify_code",
            method: Method::POST,
            url: self.url(phone_number_id, "verify_code"),
            query: Vec::new(),
            token,
            payload: Payload::Json(json!({ "code": code })),
            replay: Replay::IfUnaccepted,
        };
        success(self.execute(&call).await?)
    }

    async fn register(
        &self,
        token: &str,
        phone_number_id: &str,
        pin: &str,
    ) -> Result<(), ProviderError> {
        let call = Call {
            operation: "register",
            method: Method::POST,
            url: self.url(phone_number_id, "register"),
            query: Vec::new(),
            token,
            payload: Payload::Json(json!({ "messaging_product": "whatsapp", "pin": pin })),
            replay: Replay::Always,
        };
        success(self.execute(&call).await?)
    }

    async fn set_business_profile(
        &self,
        token: &str,
        phone_number_id: &str,
        profile: &BusinessProfile,
    ) -> Result<(), ProviderError> {
        let mut body = json!({ "messaging_product": "whatsapp", "vertical": profile.vertical });
        if let Some(description) = &profile.description {
            body["description"] = description.as_str().into();
        }
        let call = Call {
            operation: "set_business_profile",
            method: Method::POST,
            url: self.url(phone_number_id, "whatsapp_business_profile"),
            query: Vec::new(),
            token,
            payload: Payload::Json(body),
            replay: Replay::Always,
        };
        success(self.execute(&call).await?)
    }

    async fn deregister(&self, token: &str, phone_number_id: &str) -> Result<(), ProviderError> {
        let call = Call {
            operation: "deregister",
            method: Method::POST,
            url: self.url(phone_number_id, "deregister"),
            query: Vec::new(),
            token,
            payload: Payload::None,
            replay: Replay::Always,
        };
        success(self.execute(&call).await?)
    }
}

/// Meta's `{"success": true}`; `false` is a refusal without an error code.
fn success(answer: Value) -> Result<(), ProviderError> {
    if answer.get("success").and_then(Value::as_bool) == Some(false) {
        return Err(permanent("Meta did not accept the request".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{
        collections::VecDeque,
        sync::{Arc, Mutex},
        time::Instant,
    };

    use axum::{
        Router,
        body::{Body, Bytes},
        extract::State,
        http::{HeaderMap, Method as HttpMethod, StatusCode as HttpStatus, Uri},
        response::{IntoResponse, Response},
    };
    use uuid::Uuid;

    use super::*;

    /// What the stub server saw of one request.
    #[derive(Clone, Debug)]
    struct Seen {
        method: String,
        path: String,
        query: String,
        authorization: Option<String>,
        body: Value,
        file_offset: Option<String>,
        bytes: Bytes,
    }

    #[derive(Clone)]
    struct Reply {
        status: u16,
        retry_after: Option<&'static str>,
        body: Value,
        /// Served instead of `body`.
        file: Option<File>,
    }

    /// A file the stub serves, as a media sample's host would.
    #[derive(Clone)]
    struct File {
        content_type: Option<&'static str>,
        bytes: Vec<u8>,
        /// In pieces and without `Content-Length`, as a streaming server sends.
        chunked: bool,
    }

    fn reply(status: u16, body: Value) -> Reply {
        Reply {
            status,
            retry_after: None,
            body,
            file: None,
        }
    }

    fn file(content_type: Option<&'static str>, bytes: Vec<u8>, chunked: bool) -> Reply {
        Reply {
            file: Some(File {
                content_type,
                bytes,
                chunked,
            }),
            ..reply(200, Value::Null)
        }
    }

    fn graph_error(status: u16, code: i64) -> Reply {
        reply(
            status,
            json!({ "error": {
                "message": "(#code) Meta says no",
                "type": "OAuthException",
                "code": code,
                "error_subcode": 2494010,
                "error_data": { "messaging_product": "whatsapp", "details": "the details" },
                "fbtrace_id": "Atrace"
            }}),
        )
    }

    fn sent(id: &str) -> Reply {
        reply(200, json!({ "messages": [{ "id": id }] }))
    }

    /// A Graph API stand-in that records requests and plays scripted replies, then
    /// `fallback` forever.
    struct Stub {
        seen: Mutex<Vec<Seen>>,
        script: Mutex<VecDeque<Reply>>,
        fallback: Reply,
        delay: Duration,
    }

    impl Stub {
        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        fn attempts(&self) -> usize {
            self.seen.lock().unwrap().len()
        }
    }

    async fn answer(
        State(stub): State<Arc<Stub>>,
        method: HttpMethod,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        stub.seen.lock().unwrap().push(Seen {
            method: method.to_string(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or_default().to_owned(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            file_offset: headers
                .get("file_offset")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            bytes: body,
        });
        tokio::time::sleep(stub.delay).await;
        let next = stub.script.lock().unwrap().pop_front();
        let reply = next.unwrap_or_else(|| stub.fallback.clone());
        let status = HttpStatus::from_u16(reply.status).unwrap();
        let mut response = match reply.file {
            Some(file) => file_response(status, file),
            None => (status, axum::Json(reply.body)).into_response(),
        };
        if let Some(seconds) = reply.retry_after {
            response
                .headers_mut()
                .insert("retry-after", seconds.parse().unwrap());
        }
        response
    }

    fn file_response(status: HttpStatus, file: File) -> Response {
        let body = if file.chunked {
            let pieces: Vec<Result<Bytes, std::io::Error>> = file
                .bytes
                .chunks(1024 * 1024)
                .map(|piece| Ok(Bytes::copy_from_slice(piece)))
                .collect();
            Body::from_stream(futures::stream::iter(pieces))
        } else {
            Body::from(file.bytes)
        };
        let mut response = (status, body).into_response();
        if let Some(content_type) = file.content_type {
            response
                .headers_mut()
                .insert("content-type", content_type.parse().unwrap());
        }
        response
    }

    async fn serve(script: Vec<Reply>, fallback: Reply, delay: Duration) -> (Arc<Stub>, String) {
        let stub = Arc::new(Stub {
            seen: Mutex::default(),
            script: Mutex::new(script.into()),
            fallback,
            delay,
        });
        let app = Router::new().fallback(answer).with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (stub, url)
    }

    fn config(url: &str, max_attempts: u32) -> MetaConfig {
        MetaConfig {
            graph_url: format!("{url}/"),
            api_version: "v23.0".into(),
            timeout: Duration::from_secs(5),
            max_attempts,
            backoff_base: Duration::from_millis(1),
            app_id: Some("APP1".into()),
            app_secret: None,
        }
    }

    /// A client against a stub that answers `script`, then `fallback`.
    async fn stubbed(
        script: Vec<Reply>,
        fallback: Reply,
        attempts: u32,
    ) -> (Arc<Stub>, MetaClient) {
        let (stub, url) = serve(script, fallback, Duration::ZERO).await;
        (stub, MetaClient::new(config(&url, attempts)).unwrap())
    }

    fn account() -> Account {
        Account {
            project_id: Uuid::nil(),
            waba_id: "WABA1".into(),
            phone_number_id: "PN1".into(),
            access_token: "TOKEN".into(),
        }
    }

    fn to_phone(content: Content) -> OutboundMessage {
        OutboundMessage {
            to: Recipient::Phone("+33 6 12 34 56 78".into()),
            content,
            reply_to: None,
        }
    }

    fn media(kind: MediaKind) -> Content {
        Content::Media {
            kind,
            link: "https://cdn.example/f".into(),
            caption: Some("look".into()),
            filename: Some("f.pdf".into()),
        }
    }

    /// Sends `message` and returns the one request body Meta received.
    async fn sent_body(message: OutboundMessage) -> Value {
        let (stub, client) = stubbed(vec![], sent("wamid.1"), 1).await;
        let receipt = client.send(&account(), &message).await.unwrap();
        assert_eq!(receipt.wa_message_id, "wamid.1");
        let seen = stub.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].path, "/v23.0/PN1/messages");
        assert_eq!(seen[0].authorization.as_deref(), Some("Bearer TOKEN"));
        seen[0].body.clone()
    }

    fn envelope(rest: Value) -> Value {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "33612345678",
        });
        body.as_object_mut()
            .unwrap()
            .extend(rest.as_object().unwrap().clone());
        body
    }

    #[tokio::test]
    async fn sends_text_with_reply_context() {
        let mut message = to_phone(Content::Text {
            body: "hello".into(),
            preview_url: true,
        });
        message.reply_to = Some("wamid.earlier".into());
        let body = sent_body(message).await;
        assert_eq!(
            body,
            envelope(json!({
                "type": "text",
                "text": { "body": "hello", "preview_url": true },
                "context": { "message_id": "wamid.earlier" },
            }))
        );
    }

    #[tokio::test]
    async fn sends_each_media_kind_with_the_fields_it_takes() {
        let link = "https://cdn.example/f";
        let cases = [
            (MediaKind::Image, json!({ "link": link, "caption": "look" })),
            (MediaKind::Video, json!({ "link": link, "caption": "look" })),
            (
                MediaKind::Document,
                json!({ "link": link, "caption": "look", "filename": "f.pdf" }),
            ),
            (MediaKind::Audio, json!({ "link": link })),
        ];
        for (kind, payload) in cases {
            let body = sent_body(to_phone(media(kind))).await;
            let expected = envelope(json!({ "type": kind.as_str(), kind.as_str(): payload }));
            assert_eq!(body, expected, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn sends_media_without_caption() {
        let content = Content::Media {
            kind: MediaKind::Image,
            link: "https://cdn.example/i.png".into(),
            caption: None,
            filename: None,
        };
        let body = sent_body(to_phone(content)).await;
        assert_eq!(
            body["image"],
            json!({ "link": "https://cdn.example/i.png" })
        );
    }

    #[tokio::test]
    async fn sends_templates_omitting_empty_components() {
        let components =
            vec![json!({ "type": "body", "parameters": [{ "type": "text", "text": "Ada" }] })];
        let body = sent_body(to_phone(Content::Template {
            name: "welcome".into(),
            language: "en_US".into(),
            components: components.clone(),
        }))
        .await;
        assert_eq!(
            body,
            envelope(json!({
                "type": "template",
                "template": { "name": "welcome", "language": { "code": "en_US" }, "components": components },
            }))
        );
        let bare = sent_body(to_phone(Content::Template {
            name: "hello_world".into(),
            language: "en_US".into(),
            components: vec![],
        }))
        .await;
        assert_eq!(
            bare["template"],
            json!({ "name": "hello_world", "language": { "code": "en_US" } })
        );
    }

    #[tokio::test]
    async fn sends_to_a_bsuid_as_recipient() {
        let body = sent_body(OutboundMessage {
            to: Recipient::Bsuid("US.13491208655302741918".into()),
            content: Content::Text {
                body: "hi".into(),
                preview_url: false,
            },
            reply_to: None,
        })
        .await;
        assert_eq!(body["recipient"], "US.13491208655302741918");
        assert!(body.get("to").is_none());
        assert_eq!(body["recipient_type"], "individual");
    }

    fn submission(parameter_format: &str) -> TemplateSubmission {
        TemplateSubmission {
            template_id: Uuid::nil(),
            name: "order_ready".into(),
            language: "en".into(),
            category: "UTILITY".into(),
            parameter_format: parameter_format.into(),
            components: vec![json!({ "type": "BODY", "text": "Order {{1}} is ready" })],
        }
    }

    #[tokio::test]
    async fn submits_templates_with_parameter_format_only_when_named() {
        let accepted = reply(
            200,
            json!({ "id": "594425479261596", "status": "PENDING", "category": "MARKETING" }),
        );
        let (stub, client) = stubbed(vec![], accepted, 1).await;
        let submitted = client
            .submit_template(&account(), &submission("POSITIONAL"))
            .await
            .unwrap();
        assert_eq!(
            submitted,
            SubmittedTemplate {
                meta_id: "594425479261596".into(),
                status: "PENDING".into(),
                category: "MARKETING".into(),
            }
        );
        client
            .submit_template(&account(), &submission("NAMED"))
            .await
            .unwrap();
        let seen = stub.seen();
        assert_eq!(seen[0].path, "/v23.0/WABA1/message_templates");
        assert_eq!(seen[0].authorization.as_deref(), Some("Bearer TOKEN"));
        assert_eq!(
            seen[0].body,
            json!({
                "name": "order_ready",
                "language": "en",
                "category": "UTILITY",
                "components": [{ "type": "BODY", "text": "Order {{1}} is ready" }],
            })
        );
        assert_eq!(seen[1].body["parameter_format"], "NAMED");
    }

    /// A few bytes that start and end like a JPEG.
    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0xFF, 0xD9];
    /// Meta's upload session ids carry a signature as a query.
    const SESSION: &str = "upload:MTphdHRhY2htZW50?sig=ARZsig";
    const HANDLE: &str = "4::aW1hZ2UvanBlZw==:ARbHandle";

    fn media_submission(sample: &str) -> TemplateSubmission {
        TemplateSubmission {
            category: "MARKETING".into(),
            components: vec![
                json!({ "type": "HEADER", "format": "IMAGE",
                        "example": { "header_handle": [sample] } }),
                json!({ "type": "BODY", "text": "Our new shoes are in" }),
            ],
            ..submission("POSITIONAL")
        }
    }

    fn accepted() -> Reply {
        reply(
            200,
            json!({ "id": "594425479261596", "status": "PENDING", "category": "MARKETING" }),
        )
    }

    /// The sample, the session and the handle, in the order the client asks for them.
    fn upload_script(sample: Reply) -> Vec<Reply> {
        vec![
            sample,
            reply(200, json!({ "id": SESSION })),
            reply(200, json!({ "h": HANDLE })),
        ]
    }

    /// A client against a stub, and the stub's URL (which also serves the samples).
    async fn stubbed_at(
        script: Vec<Reply>,
        fallback: Reply,
        config: impl FnOnce(&str) -> MetaConfig,
    ) -> (Arc<Stub>, MetaClient, String) {
        let (stub, url) = serve(script, fallback, Duration::ZERO).await;
        let client = MetaClient::new(config(&url)).unwrap();
        (stub, client, url)
    }

    #[tokio::test]
    async fn uploads_a_media_sample_and_submits_its_handle() {
        let mut script = upload_script(file(Some("image/jpeg"), JPEG.to_vec(), false));
        script.insert(2, reply(503, json!({})));
        let (stub, client, url) = stubbed_at(script, accepted(), |u| config(u, 2)).await;
        let sample = format!("{url}/samples/shoe.jpg");
        client
            .submit_template(&account(), &media_submission(&sample))
            .await
            .unwrap();

        let seen = stub.seen();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|s| (s.method.as_str(), s.path.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("GET", "/samples/shoe.jpg"),
                ("POST", "/v23.0/APP1/uploads"),
                ("POST", "/v23.0/upload:MTphdHRhY2htZW50"),
                ("POST", "/v23.0/upload:MTphdHRhY2htZW50"),
                ("POST", "/v23.0/WABA1/message_templates"),
            ]
        );
        assert_eq!(seen[0].authorization, None, "Meta's token stays with Meta");
        assert_eq!(
            seen[1].query,
            "file_name=shoe.jpg&file_length=8&file_type=image%2Fjpeg"
        );
        assert_eq!(seen[1].authorization.as_deref(), Some("Bearer TOKEN"));
        for upload in &seen[2..4] {
            assert_eq!(upload.query, "sig=ARZsig");
            assert_eq!(upload.authorization.as_deref(), Some("OAuth TOKEN"));
            assert_eq!(upload.file_offset.as_deref(), Some("0"));
            assert_eq!(&upload.bytes[..], JPEG);
        }
        assert_eq!(
            seen[4].body["components"],
            json!([
                { "type": "HEADER", "format": "IMAGE", "example": { "header_handle": [HANDLE] } },
                { "type": "BODY", "text": "Our new shoes are in" },
            ])
        );
    }

    #[tokio::test]
    async fn an_edit_uploads_its_sample_too() {
        let script = upload_script(file(None, JPEG.to_vec(), true));
        let edited = reply(200, json!({ "success": true }));
        let (stub, client, url) = stubbed_at(script, edited, |u| config(u, 1)).await;
        let sample = format!("{url}/s/photo.JPG?v=2");
        client
            .edit_template(&account(), "594425479261596", &media_submission(&sample))
            .await
            .unwrap();
        let seen = stub.seen();
        assert_eq!(seen.len(), 4);
        assert_eq!(
            seen[1].query, "file_name=photo.JPG&file_length=8&file_type=image%2Fjpeg",
            "typed by its extension when the host does not say"
        );
        assert_eq!(&seen[2].bytes[..], JPEG);
        assert_eq!(seen[3].path, "/v23.0/594425479261596");
        assert_eq!(
            seen[3].body["components"][0]["example"],
            json!({ "header_handle": [HANDLE] })
        );
    }

    #[tokio::test]
    async fn a_handle_is_submitted_as_it_is_without_an_app_id() {
        let no_app = |u: &str| MetaConfig {
            app_id: None,
            ..config(u, 1)
        };
        let (stub, client, _) = stubbed_at(vec![], accepted(), no_app).await;
        let template = media_submission(HANDLE);
        client.submit_template(&account(), &template).await.unwrap();
        let seen = stub.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/v23.0/WABA1/message_templates");
        assert_eq!(seen[0].body["components"], json!(template.components));
    }

    #[tokio::test]
    async fn a_sample_url_needs_the_app_id() {
        let no_app = |u: &str| MetaConfig {
            app_id: None,
            ..config(u, 3)
        };
        let (stub, client, url) = stubbed_at(vec![], accepted(), no_app).await;
        let sample = format!("{url}/samples/shoe.jpg");
        let err = client
            .submit_template(&account(), &media_submission(&sample))
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent);
        assert_eq!(
            err.message,
            "uploading a media sample needs the Meta app id (WHATSAPP_APP_ID)"
        );
        assert_eq!(stub.attempts(), 0, "neither the sample nor Meta was asked");
    }

    #[tokio::test]
    async fn a_sample_that_is_missing_or_too_large_is_refused_for_good() {
        let oversized = || vec![0; MAX_SAMPLE_BYTES + 1];
        let cases = [
            (reply(404, json!({})), "could not download the media sample"),
            (
                file(Some("video/mp4"), oversized(), false),
                "is larger than 16 MiB",
            ),
            (
                file(Some("video/mp4"), oversized(), true),
                "is larger than 16 MiB",
            ),
        ];
        for (sample, why) in cases {
            let (stub, client, url) = stubbed_at(vec![sample], accepted(), |u| config(u, 3)).await;
            let sample = format!("{url}/samples/clip.mp4");
            let err = client
                .submit_template(&account(), &media_submission(&sample))
                .await
                .unwrap_err();
            assert_eq!(err.kind, FailureKind::Permanent, "{why}");
            assert!(err.message.contains(why), "{}", err.message);
            assert!(err.message.contains(&sample), "{}", err.message);
            assert_eq!(stub.attempts(), 1, "only the download, once: {why}");
        }
    }

    #[tokio::test]
    async fn a_download_failure_names_the_url_and_what_went_wrong() {
        let (_, client, url) =
            stubbed_at(vec![reply(404, json!({}))], accepted(), |u| config(u, 1)).await;
        let gone = format!("{url}/samples/gone.jpg");
        let err = client
            .submit_template(&account(), &media_submission(&gone))
            .await
            .unwrap_err();
        assert_eq!(
            err.message,
            format!("could not download the media sample {gone}: HTTP 404 Not Found")
        );

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = format!("http://{}/shoe.jpg", listener.local_addr().unwrap());
        drop(listener);
        let err = client
            .submit_template(&account(), &media_submission(&closed))
            .await
            .unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent);
        assert!(
            err.message
                .starts_with(&format!("could not download the media sample {closed}: ")),
            "{}",
            err.message
        );
    }

    #[test]
    fn only_media_headers_with_a_url_are_uploaded() {
        let header = |format: &str, example: &str| json!({ "type": "HEADER", "format": format, "example": { "header_handle": [example] } });
        let url = "HTTPS://cdn.example/a.png";
        assert_eq!(sample_url(&header("image", url)).as_deref(), Some(url));
        assert_eq!(
            sample_url(&header("DOCUMENT", "http://x/y.pdf")).as_deref(),
            Some("http://x/y.pdf")
        );
        assert_eq!(sample_url(&header("IMAGE", HANDLE)), None);
        assert_eq!(sample_url(&header("TEXT", url)), None);
        assert_eq!(
            sample_url(&json!({ "type": "HEADER", "format": "VIDEO" })),
            None
        );
        assert_eq!(sample_url(&json!({ "type": "BODY", "text": url })), None);
    }

    #[test]
    fn names_and_types_a_sample_for_the_upload() {
        assert_eq!(
            file_name("https://cdn.example/a/shoe.jpg?v=2#top"),
            "shoe.jpg"
        );
        assert_eq!(file_name("https://cdn.example/a/"), "sample");
        assert_eq!(file_name("https://cdn.example"), "sample");
        let table = [
            (Some("image/png; charset=binary"), "x.jpg", "image/png"),
            (None, "x.JPEG", "image/jpeg"),
            (
                Some("application/octet-stream"),
                "menu.pdf",
                "application/pdf",
            ),
            (Some("not a type"), "clip.mp4", "video/mp4"),
            (None, "sample", "application/octet-stream"),
            (
                Some("application/octet-stream"),
                "a.bin",
                "application/octet-stream",
            ),
        ];
        for (content_type, name, expected) in table {
            assert_eq!(
                file_type(content_type, name),
                expected,
                "{content_type:?} {name}"
            );
        }
    }

    fn listed(id: &str, reason: &str) -> Value {
        json!({
            "id": id, "name": format!("t{id}"), "language": "en", "status": "REJECTED",
            "category": "MARKETING", "rejected_reason": reason, "parameter_format": "POSITIONAL",
            "components": [{ "type": "BODY", "text": "Hi" }],
        })
    }

    #[tokio::test]
    async fn lists_templates_page_by_page() {
        let first = reply(
            200,
            json!({
                "data": [listed("1", "NONE"), listed("2", "INVALID_FORMAT")],
                "paging": { "cursors": { "before": "b1", "after": "c1" }, "next": "https://graph/next" },
            }),
        );
        let last = reply(
            200,
            json!({ "data": [listed("3", "NONE")], "paging": { "cursors": { "before": "b2", "after": "c2" } } }),
        );
        let (stub, client) = stubbed(vec![first], last, 1).await;

        let page = client.list_templates(&account(), None).await.unwrap();
        assert_eq!(page.next_after.as_deref(), Some("c1"));
        assert_eq!(page.templates.len(), 2);
        assert_eq!(page.templates[0].rejected_reason, None);
        assert_eq!(
            page.templates[1].rejected_reason.as_deref(),
            Some("INVALID_FORMAT")
        );
        assert_eq!(page.templates[1].meta_id, "2");
        assert_eq!(page.templates[1].components.len(), 1);

        let page = client.list_templates(&account(), Some("c1")).await.unwrap();
        assert_eq!(page.next_after, None, "no `next`, no further page");
        assert_eq!(page.templates[0].meta_id, "3");

        let seen = stub.seen();
        assert_eq!(seen[0].method, "GET");
        assert_eq!(seen[0].path, "/v23.0/WABA1/message_templates");
        assert_eq!(
            seen[0].query,
            "fields=id%2Cname%2Clanguage%2Cstatus%2Ccategory%2Crejected_reason%2Cparameter_format%2Ccomponents&limit=100"
        );
        assert!(
            seen[1].query.ends_with("&limit=100&after=c1"),
            "{}",
            seen[1].query
        );
    }

    fn text() -> OutboundMessage {
        to_phone(Content::Text {
            body: "hi".into(),
            preview_url: false,
        })
    }

    #[tokio::test]
    async fn retries_a_server_error_then_succeeds() {
        let (stub, client) = stubbed(vec![reply(500, json!({}))], sent("wamid.2"), 3).await;
        let receipt = client.send(&account(), &text()).await.unwrap();
        assert_eq!(receipt.wa_message_id, "wamid.2");
        assert_eq!(stub.attempts(), 2);
    }

    #[tokio::test]
    async fn retries_a_429_after_its_retry_after() {
        let limited = Reply {
            retry_after: Some("1"),
            ..reply(429, json!({}))
        };
        let (stub, client) = stubbed(vec![limited], sent("wamid.3"), 2).await;
        let started = Instant::now();
        client.send(&account(), &text()).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(stub.attempts(), 2);
    }

    #[tokio::test]
    async fn retries_meta_throughput_code() {
        let (stub, client) = stubbed(vec![graph_error(400, 130429)], sent("wamid.4"), 3).await;
        client.send(&account(), &text()).await.unwrap();
        assert_eq!(stub.attempts(), 2);
    }

    #[tokio::test]
    async fn never_retries_permanent_errors() {
        for code in [100, 131026] {
            let (stub, client) = stubbed(vec![], graph_error(400, code), 5).await;
            let err = client.send(&account(), &text()).await.unwrap_err();
            assert_eq!(stub.attempts(), 1, "code {code}");
            assert_eq!(
                err,
                ProviderError {
                    kind: FailureKind::Permanent,
                    code: Some(code),
                    subcode: Some(2494010),
                    message: "the details".into(),
                    http_status: Some(400),
                }
            );
        }
    }

    #[tokio::test]
    async fn stops_after_max_attempts() {
        let (stub, client) = stubbed(vec![], graph_error(503, 2), 3).await;
        let err = client.list_templates(&account(), None).await.unwrap_err();
        assert_eq!(stub.attempts(), 3);
        assert_eq!(err.kind, FailureKind::Transient);
        assert_eq!(err.http_status, Some(503));
    }

    #[tokio::test]
    async fn uses_message_when_error_has_no_details_and_body_when_not_graph_shaped() {
        let plain = reply(
            400,
            json!({ "error": { "message": "Invalid OAuth access token.", "code": 190 } }),
        );
        let (_, client) = stubbed(vec![], plain, 1).await;
        let err = client.send(&account(), &text()).await.unwrap_err();
        assert_eq!(err.message, "Invalid OAuth access token.");
        assert_eq!(err.kind, FailureKind::Permanent);

        let (_, client) = stubbed(vec![], reply(502, json!("bad gateway")), 1).await;
        let err = client.send(&account(), &text()).await.unwrap_err();
        assert_eq!(err.kind, FailureKind::Transient);
        assert_eq!(err.code, None);
        assert!(err.message.contains("bad gateway"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_send_that_timed_out_is_not_retried_but_a_listing_is() {
        let (stub, url) = serve(vec![], sent("wamid.late"), Duration::from_millis(400)).await;
        let client = MetaClient::new(MetaConfig {
            timeout: Duration::from_millis(100),
            ..config(&url, 3)
        })
        .unwrap();
        let err = client.send(&account(), &text()).await.unwrap_err();
        assert_eq!(err.kind, FailureKind::Transient);
        assert_eq!(stub.attempts(), 1);

        client.list_templates(&account(), None).await.unwrap_err();
        assert_eq!(stub.attempts(), 1 + 3);
    }

    #[tokio::test]
    async fn a_refused_connection_is_safe_to_resend() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = MetaClient::new(config(&url, 1)).unwrap();
        let err = client.http.post(&url).send().await.unwrap_err();
        let failure = Failure::transport(err);
        assert!(!failure.maybe_accepted);
        assert!(failure.worth_retrying(Replay::IfUnaccepted));
        assert_eq!(failure.error.kind, FailureKind::Transient);
    }

    #[tokio::test]
    async fn an_unexpected_success_body_is_not_retried() {
        let (stub, client) = stubbed(vec![], reply(200, json!({ "messages": [] })), 3).await;
        let err = client.send(&account(), &text()).await.unwrap_err();
        assert_eq!(err.kind, FailureKind::Permanent);
        assert_eq!(stub.attempts(), 1);
    }

    #[test]
    fn classifies_meta_errors() {
        use FailureKind::{Permanent, RateLimited, Transient};
        let table = [
            (Some(429), None, RateLimited),
            (Some(400), Some(4), RateLimited),
            (Some(400), Some(80007), RateLimited),
            (Some(400), Some(130429), RateLimited),
            (Some(400), Some(131048), RateLimited),
            (Some(400), Some(131056), RateLimited),
            (Some(400), Some(133016), RateLimited),
            (Some(500), None, Transient),
            (Some(503), Some(2), Transient),
            (Some(400), Some(1), Transient),
            (Some(400), Some(131000), Transient),
            (Some(400), Some(131016), Transient),
            (None, None, Transient),
            (Some(400), Some(100), Permanent),
            (Some(400), Some(131008), Permanent),
            (Some(400), Some(131009), Permanent),
            (Some(400), Some(131026), Permanent),
            (Some(400), Some(131047), Permanent),
            (Some(400), Some(132000), Permanent),
            (Some(400), Some(132001), Permanent),
            (Some(401), Some(190), Permanent),
            (Some(403), Some(10), Permanent),
            (Some(404), None, Permanent),
            (None, Some(131026), Permanent),
            (None, Some(131056), RateLimited),
        ];
        for (status, code, kind) in table {
            assert_eq!(
                classify(status, code),
                kind,
                "HTTP {status:?}, code {code:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff_ceiling(base, 0), base);
        assert_eq!(backoff_ceiling(base, 3), Duration::from_millis(800));
        assert_eq!(backoff_ceiling(base, 40), MAX_BACKOFF);
        for retry in 0..10 {
            assert!(retry_delay(base, retry, None) <= backoff_ceiling(base, retry));
        }
        let asked = Some(Duration::from_secs(7));
        assert_eq!(retry_delay(base, 0, asked), Duration::from_secs(7));
        let too_long = Some(Duration::from_secs(3600));
        assert_eq!(retry_delay(base, 0, too_long), MAX_BACKOFF);
    }

    #[test]
    fn reads_retry_after_in_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", " 12 ".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(12)));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn refuses_zero_attempts() {
        let config = MetaConfig {
            max_attempts: 0,
            ..MetaConfig::default()
        };
        assert!(MetaClient::new(config).is_err());
    }
}
