//! `POST /api/campaigns/send`: API campaigns in the plain JSON shape CRMs already send to
//! WhatsApp platforms, beside the GraphQL `sendApiCampaign`.
//!
//! ```json
//! { "apiKey": "pk_…", "campaignName": "Welcome", "destination": "98123 45678",
//!   "userName": "Asha Verma", "source": "website",
//!   "media": { "url": "https://…/offer.jpg", "filename": "offer.jpg" },
//!   "templateParams": ["Asha", "20%"], "tags": ["lead"], "attributes": { "city": "Pune" } }
//! ```
//!
//! The key may also come as `X-Api-Key` or `Authorization: Bearer`; the idempotency key
//! as the `Idempotency-Key` header or `idempotencyKey` in the body. The answer is
//! `{"messageId", "status", "campaignId", "contactId"}` (200), or
//! `{"error": {"code", "message", …}}` with the HTTP status of its code (400 bad input,
//! 401 bad key, 404 unknown campaign, 409 key reused with other parameters or still in
//! progress, 422 campaign paused or another refusal, 429 rate limited, 503 retry later).
//! A replayed answer carries `Idempotent-Replayed: true`.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::Value;

use super::api::{self, Answer, ApiCall, Media};
use crate::{
    auth::{RequestAuth, Role, context::Credentials},
    errors::{AppError, AppResult},
    state::AppState,
};

/// The largest body accepted.
const MAX_BODY: usize = 256 * 1024;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Body {
    api_key: Option<String>,
    campaign_name: Option<String>,
    destination: Option<Value>,
    user_name: Option<String>,
    source: Option<String>,
    media: Option<Value>,
    template_params: Option<Vec<Value>>,
    tags: Option<Vec<Value>>,
    attributes: Option<Value>,
    idempotency_key: Option<String>,
}

pub async fn send(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match handle(&state, &headers, &body).await {
        Ok(reply) => respond(reply.answer, reply.replayed),
        Err(err) => respond(api::error_answer(&err), false),
    }
}

async fn handle(state: &AppState, headers: &HeaderMap, body: &[u8]) -> AppResult<api::Reply> {
    if body.len() > MAX_BODY {
        return Err(AppError::bad_input(
            "body",
            format!("the body is larger than {MAX_BODY} bytes"),
        ));
    }
    let parsed: Body = serde_json::from_slice(body).map_err(|e| {
        AppError::bad_input("body", format!("the body is not the expected JSON: {e}"))
    })?;
    let mut credentials = Credentials::from_headers(headers);
    if let Some(key) = parsed
        .api_key
        .as_deref()
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        credentials.api_key = Some(key.to_owned());
    }
    // Only the key's own project: a project header is not needed (nor consulted).
    credentials.project_id = None;
    if credentials.api_key.is_none() {
        return Err(AppError::Unauthenticated(
            "send the project API key as apiKey, X-Api-Key or a bearer token".into(),
        ));
    }
    let auth = RequestAuth::resolve(state, credentials).await?;
    let scope = auth.scope()?.clone();
    if scope.role != Role::Api {
        return Err(AppError::Unauthenticated(
            "this endpoint takes a project API key".into(),
        ));
    }
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(parsed.idempotency_key)
        .unwrap_or_default();
    let call = ApiCall {
        campaign_name: parsed.campaign_name.unwrap_or_default(),
        destination: match parsed.destination {
            Some(value) => scalar("destination", value)?.unwrap_or_default(),
            None => String::new(),
        },
        user_name: parsed.user_name,
        source: parsed.source,
        media: media(parsed.media)?,
        template_params: parsed
            .template_params
            .unwrap_or_default()
            .into_iter()
            .map(|v| {
                scalar("templateParams", v)?.ok_or_else(|| {
                    AppError::bad_input("templateParams", "a template parameter cannot be null")
                })
            })
            .collect::<AppResult<_>>()?,
        tags: parsed
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| scalar("tags", v).transpose())
            .collect::<AppResult<_>>()?,
        attributes: attributes(parsed.attributes)?,
        idempotency_key,
    };
    if call.destination.trim().is_empty() {
        return Err(AppError::bad_input(
            "destination",
            "destination is the contact's phone number",
        ));
    }
    api::send(state, &scope, call).await
}

/// A string, or a number or boolean as text (CRMs send numbers for phones and values);
/// `None` for null.
fn scalar(field: &'static str, value: Value) -> AppResult<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        _ => Err(AppError::bad_input(
            field,
            format!("{field} takes text, not a list or an object"),
        )),
    }
}

/// `{"url", "filename"}`, or the link alone.
fn media(value: Option<Value>) -> AppResult<Option<Media>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(url)) => Ok(Some(Media {
            url,
            filename: None,
        })),
        Some(Value::Object(map)) => {
            let text = |name: &str| match map.get(name) {
                Some(Value::String(s)) => Ok(Some(s.clone())),
                None | Some(Value::Null) => Ok(None),
                Some(_) => Err(AppError::bad_input(
                    "media",
                    format!("media.{name} is text"),
                )),
            };
            let url = text("url")?.unwrap_or_default();
            let filename = text("filename")?;
            // CRMs send `{"url": "", "filename": ""}` for no media.
            if url.trim().is_empty() {
                return Ok(None);
            }
            Ok(Some(Media { url, filename }))
        }
        Some(_) => Err(AppError::bad_input(
            "media",
            "media is {\"url\", \"filename\"}",
        )),
    }
}

/// `{"key": "value"}` (string values; numbers and booleans as text).
fn attributes(value: Option<Value>) -> AppResult<Vec<(String, String)>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(key, value)| match scalar("attributes", value)? {
                Some(text) => Ok((key, text)),
                None => Err(AppError::bad_input(
                    "attributes",
                    format!("attribute {key}: a value is text, not null"),
                )),
            })
            .collect(),
        Some(_) => Err(AppError::bad_input(
            "attributes",
            "attributes is an object of attribute keys and text values",
        )),
    }
}

fn respond(answer: Answer, replayed: bool) -> Response {
    let status = StatusCode::from_u16(answer.http_status).unwrap_or(StatusCode::OK);
    let retry_after = answer.body["error"]["retryAfter"]
        .as_u64()
        .or_else(|| (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1));
    let mut response = (status, axum::Json(answer.body)).into_response();
    let headers = response.headers_mut();
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        headers.insert(header::RETRY_AFTER, value);
    }
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crm_shapes_are_read_leniently() {
        assert_eq!(
            scalar("destination", json!(919812345678_u64)).unwrap(),
            Some("919812345678".into())
        );
        assert!(scalar("tags", json!(["x"])).is_err());
        let m = media(Some(
            json!({ "url": "https://x/y.pdf", "filename": "y.pdf" }),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(m.filename.as_deref(), Some("y.pdf"));
        assert!(
            media(Some(json!({ "url": "", "filename": "" })))
                .unwrap()
                .is_none()
        );
        assert!(media(Some(json!(3))).is_err());
        let attrs = attributes(Some(json!({ "city": "Pune", "visits": 3 }))).unwrap();
        assert!(attrs.contains(&("visits".into(), "3".into())));
        assert!(attributes(Some(json!({ "city": null }))).is_err());
    }
}
