//! GraphQL over HTTP: POST and GET at `/graphql`, following the GraphQL-over-HTTP spec.
//!
//! - `Accept` picks `application/graphql-response+json` (also for `*/*` or no header) or
//!   `application/json`; anything else is 406.
//! - With `application/graphql-response+json`, a request that cannot execute (bad JSON,
//!   parse or validation error) is a 400; with `application/json` it is a 200, as legacy
//!   clients expect.
//! - A mutation over GET is a 405 with `Allow: POST`.
//! - Bad credentials fail the whole request with 401.

use async_graphql::{
    ServerError, Value,
    http::{GraphiQLSource, MultipartOptions},
    parser::types::{DocumentOperations, OperationType},
};
use axum::{
    Extension,
    body::Body,
    extract::{FromRef, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use futures::TryStreamExt;
use serde_json::json;
use tokio_util::{compat::TokioAsyncReadCompatExt, io::StreamReader};

use super::{AppSchema, request_data};
use crate::{
    auth::{RequestAuth, context::Credentials},
    errors::{AppError, ErrorCode},
    limits::ClientIp,
    state::AppState,
};

#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: AppSchema,
    /// Subscriptions executed once for many clients of this node.
    pub shared: std::sync::Arc<super::shared::SharedStreams>,
}

impl FromRef<HttpState> for AppState {
    fn from_ref(state: &HttpState) -> Self {
        state.app.clone()
    }
}

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    GraphqlResponseJson,
    Json,
}

impl MediaType {
    fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// The best media type the client accepts, by quality; ties go to the GraphQL one.
pub fn negotiate(accept: Option<&str>) -> Option<MediaType> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(MediaType::GraphqlResponseJson);
    };
    let mut best: Option<(f32, MediaType)> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let range = parts.next().unwrap_or_default().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let media = match range.as_str() {
            GRAPHQL_RESPONSE_JSON | "application/*" | "*/*" => MediaType::GraphqlResponseJson,
            JSON => MediaType::Json,
            _ => continue,
        };
        if quality <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((q, m)) => {
                quality > q || (quality == q && m == MediaType::Json && media != MediaType::Json)
            }
        };
        if better {
            best = Some((quality, media));
        }
    }
    best.map(|(_, m)| m)
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn graphql_get(
    State(state): State<HttpState>,
    client_ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let wants_html = header_text(&headers, header::ACCEPT).is_some_and(|a| a.contains("text/html"));
    if wants_html && !query.contains("query=") {
        return if state.app.settings.graphql.graphiql {
            Html(
                GraphiQLSource::build()
                    .endpoint("/graphql")
                    .subscription_endpoint("/graphql/ws")
                    .title("Parley GraphQL")
                    .finish(),
            )
            .into_response()
        } else {
            StatusCode::NOT_FOUND.into_response()
        };
    }
    let Some(media) = negotiate(header_text(&headers, header::ACCEPT)) else {
        return not_acceptable();
    };
    let request = match async_graphql::http::parse_query_string(&query) {
        Ok(request) => request,
        Err(err) => {
            return request_error(
                media,
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                &err.to_string(),
            );
        }
    };
    execute(
        &state,
        &headers,
        client_ip.map(|e| e.0),
        media,
        request,
        true,
    )
    .await
}

pub async fn graphql_post(
    State(state): State<HttpState>,
    client_ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(media) = negotiate(header_text(&headers, header::ACCEPT)) else {
        return not_acceptable();
    };
    let content_type = header_text(&headers, header::CONTENT_TYPE).unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let max_json = state.app.settings.graphql.max_body_bytes;
    let parsed = match essence.as_str() {
        JSON => {
            let Ok(body) = axum::body::to_bytes(body, max_json).await else {
                return request_error(
                    media,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::BadUserInput,
                    &format!("the request body is larger than {max_json} bytes"),
                );
            };
            // Batches are refused: each operation of one would get the whole depth and
            // complexity budget, and one request could carry thousands of them.
            if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
                return request_error(
                    media,
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadUserInput,
                    "batched requests (a JSON array) are not accepted; send one operation per request",
                );
            }
            serde_json::from_slice::<async_graphql::Request>(&body).map_err(|e| {
                request_error(
                    media,
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BadUserInput,
                    &format!("the body is not a GraphQL request in JSON: {e}"),
                )
            })
        }
        // Streamed: an upload goes to a temporary file without being held in memory.
        "multipart/form-data" => async_graphql::http::receive_body(
            Some(content_type),
            StreamReader::new(body.into_data_stream().map_err(std::io::Error::other)).compat(),
            // Files a little over the limit still arrive, to fail their import with the
            // reason; far larger ones stop here.
            MultipartOptions::default()
                .max_file_size(state.app.settings.imports.max_bytes.saturating_mul(2))
                .max_num_files(1),
        )
        .await
        .map_err(|e| match e {
            async_graphql::ParseRequestError::PayloadTooLarge => request_error(
                media,
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BadUserInput,
                "the uploaded file is far larger than the import limit",
            ),
            e => request_error(
                media,
                StatusCode::BAD_REQUEST,
                ErrorCode::BadUserInput,
                &format!("the multipart request is not valid: {e}"),
            ),
        }),
        _ => {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                [(
                    header::ACCEPT,
                    HeaderValue::from_static("application/json, multipart/form-data"),
                )],
                error_body(
                    ErrorCode::BadUserInput,
                    "send the request as application/json",
                ),
            )
                .into_response()
                .with_content_type(media);
        }
    };
    match parsed {
        Ok(request) => {
            execute(
                &state,
                &headers,
                client_ip.map(|e| e.0),
                media,
                request,
                false,
            )
            .await
        }
        Err(response) => response,
    }
}

async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    client_ip: Option<ClientIp>,
    media: MediaType,
    mut request: async_graphql::Request,
    over_get: bool,
) -> Response {
    let operation_name = request.operation_name.clone();
    let status_of_refusal = match media {
        MediaType::GraphqlResponseJson => StatusCode::BAD_REQUEST,
        MediaType::Json => StatusCode::OK,
    };
    // Before the parser sees it: deep enough nesting overflows its stack.
    if let Err(message) = super::document_limits::check_nesting(&request.query) {
        return request_error(
            media,
            status_of_refusal,
            ErrorCode::GraphqlParseFailed,
            &message,
        );
    }
    let operation = match request.parsed_query() {
        Ok(document) => {
            let max_aliases = state.app.settings.graphql.max_aliases;
            if let Err(message) = super::document_limits::check_aliases(document, max_aliases) {
                return request_error(
                    media,
                    status_of_refusal,
                    ErrorCode::GraphqlValidationFailed,
                    &message,
                );
            }
            operation_type(&document.operations, operation_name.as_deref())
        }
        Err(err) => {
            return request_error(
                media,
                status_of_refusal,
                ErrorCode::GraphqlParseFailed,
                &err.message,
            );
        }
    };
    // An ambiguous document goes on to execution, which reports it as a request error.
    if over_get
        && matches!(
            operation,
            Some(OperationType::Mutation | OperationType::Subscription)
        )
    {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, HeaderValue::from_static("POST"))],
            error_body(
                ErrorCode::MethodNotAllowed,
                "only queries can be sent over GET; send mutations with POST",
            ),
        )
            .into_response()
            .with_content_type(media);
    }
    let auth = match RequestAuth::resolve(&state.app, Credentials::from_headers(headers)).await {
        Ok(auth) => auth,
        Err(err) => return auth_error(media, err),
    };
    let mut request = request_data(request, &state.app, auth);
    if let Some(ip) = client_ip {
        request = request.data(ip);
    }
    let mut response = state.schema.execute(request).await;
    normalize_errors(&mut response.errors);
    let request_failed = response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let status = match (media, request_failed) {
        (MediaType::GraphqlResponseJson, true) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let body = serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec());
    // A throttled field (a login, an API campaign call) makes the whole answer a 429 with
    // `Retry-After`, so that HTTP clients and proxies back off without reading the body.
    if let Some(wait) = rate_limited_wait(&response.errors) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, HeaderValue::from(wait))],
            body,
        )
            .into_response()
            .with_content_type(media);
    }
    (status, body).into_response().with_content_type(media)
}

/// The longest `retryAfter` of the `RATE_LIMITED` errors, if there is one.
fn rate_limited_wait(errors: &[ServerError]) -> Option<u64> {
    errors
        .iter()
        .filter_map(|e| e.extensions.as_ref())
        .filter(|ext| {
            matches!(ext.get("code"), Some(Value::String(c)) if c == ErrorCode::RateLimited.as_str())
        })
        .map(|ext| match ext.get("retryAfter") {
            Some(Value::Number(n)) => n.as_u64().unwrap_or(1),
            _ => 1,
        })
        .max()
}

/// The operation a request would run, `None` when it names one the document lacks.
fn operation_type(operations: &DocumentOperations, name: Option<&str>) -> Option<OperationType> {
    match (operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, op)| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        _ => None,
    }
}

/// Every error leaves with a code: errors outside any field are the request's own
/// (validation, depth, complexity); those inside a field without one come from argument
/// coercion, the only errors not raised through `AppError`.
pub fn normalize_errors(errors: &mut [ServerError]) {
    for error in errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if error.path.is_empty() {
            ErrorCode::GraphqlValidationFailed
        } else {
            ErrorCode::BadUserInput
        };
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code.as_str());
    }
}

fn auth_error(media: MediaType, err: AppError) -> Response {
    let status = match err.code() {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = err.to_string();
    if matches!(err, AppError::Internal(_) | AppError::Unavailable(_)) {
        tracing::error!(error = ?err, "could not check credentials");
    }
    let mut response = (status, error_body(err.code(), &message)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response.with_content_type(media)
}

fn request_error(media: MediaType, status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (status, error_body(code, message))
        .into_response()
        .with_content_type(media)
}

fn not_acceptable() -> Response {
    (
        StatusCode::NOT_ACCEPTABLE,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        error_body(
            ErrorCode::BadUserInput,
            "accept application/graphql-response+json or application/json",
        ),
    )
        .into_response()
}

fn error_body(code: ErrorCode, message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    }))
    .unwrap_or_default()
}

trait WithContentType {
    fn with_content_type(self, media: MediaType) -> Response;
}

impl WithContentType for Response {
    fn with_content_type(mut self, media: MediaType) -> Response {
        self.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(media.content_type()),
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_quality_and_prefers_the_graphql_type() {
        use MediaType::*;
        assert_eq!(negotiate(None), Some(GraphqlResponseJson));
        assert_eq!(negotiate(Some("application/json")), Some(Json));
        assert_eq!(negotiate(Some("*/*")), Some(GraphqlResponseJson));
        assert_eq!(
            negotiate(Some(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(GraphqlResponseJson)
        );
        assert_eq!(
            negotiate(Some(
                "application/graphql-response+json;q=0.5, application/json"
            )),
            Some(Json)
        );
        assert_eq!(
            negotiate(Some("application/json, application/graphql-response+json")),
            Some(GraphqlResponseJson)
        );
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(negotiate(Some("application/json;q=0")), None);
    }
}
