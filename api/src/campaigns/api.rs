//! API campaigns: created in the dashboard (a name and an approved template), triggered by
//! CRMs with a project API key, one contact per call (GraphQL `sendApiCampaign` or
//! `POST /api/campaigns/send`).
//!
//! A call creates or updates the contact (source `API` when created), adds its tags
//! (creating unknown ones), sets its attributes (already defined ones only) and sends the
//! campaign's template through `messages::send::send_for_campaign`, tracked in
//! `campaign_recipients` like a broadcast's recipient.
//!
//! **Idempotency.** Every call carries a key, per project. The key is inserted into
//! `api_calls` with a SHA-256 of the normalized parameters, in the transaction that claims
//! the recipient (`SENDING`, with the message id chosen up front); a unique violation means
//! the key was used before. A retry with the same parameters gets the first answer and
//! sends nothing; with other parameters it is a `CONFLICT`. While the first call is in
//! flight a retry waits up to [`IN_FLIGHT_WAIT`] for its answer, then gets a `CONFLICT`
//! ("in progress"). The answer is final once the message was recorded (WhatsApp was, or
//! may have been, called); a failure before that (the wallet, say) undoes the claim, so the
//! same key may be sent again. A claim whose server stopped mid-call is settled by the
//! next retry after the campaign claim lease, from what was recorded.
//!
//! **Rate limit.** Calls are limited per API key and node by a `governor` keyed limiter
//! (`API_CAMPAIGN_RATE_PER_SECOND`, bursts of twice as many).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    num::NonZeroU32,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use parley_entity::{
    api_call, attribute, campaign, campaign_recipient, contact, contact_attribute, contact_tag,
    message, tag,
};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::{self, FailureGroup};
use crate::{
    auth::Scope,
    contacts::{
        attributes,
        journey::{self, Actor, Entry},
        service::{self as contacts, MAX_ATTRIBUTE_VALUE, MAX_TAGS_PER_CONTACT, SOURCE_API},
        tags::{self, MAX_TAGS_PER_PROJECT, TagKind},
    },
    errors::{AppError, AppResult, ErrorCode},
    events,
    messages::{
        send::{self, CampaignSend, SendContent, SendRequest},
        store,
    },
    state::AppState,
    templates::{self, service::ParameterInput},
    validate,
    whatsapp::accounts,
};

/// How long a retry waits for the answer of a call still in flight before it is told
/// "in progress".
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(3);
/// Longest idempotency key accepted (the column's width).
const MAX_KEY: usize = 200;
/// Template parameters, tags and attributes a call may carry at most.
const MAX_PARAMS: usize = 100;
const MAX_ATTRIBUTES: usize = 100;

// ---------------------------------------------------------------------------------------
// Creating an API campaign

pub struct NewApiCampaign {
    pub name: String,
    pub template_id: Uuid,
    /// `LIVE` at once, else `PAUSED` until resumed.
    pub live: bool,
}

/// Creates an API campaign: a unique name and an approved template. CRMs name it in their
/// calls; the calls supply the parameter values.
pub async fn create(
    state: &AppState,
    scope: &Scope,
    input: NewApiCampaign,
) -> AppResult<campaign::Model> {
    let name = validate::text("name", &input.name, 128)?;
    let template = templates::service::find(state, scope, input.template_id).await?;
    if template.status != templates::service::APPROVED {
        return Err(AppError::Refused {
            code: ErrorCode::TemplateNotApproved,
            message: format!(
                "only approved templates can be sent; {} is {}",
                template.name, template.status
            ),
        });
    }
    let now = state.settings.clock.now();
    let status = if input.live {
        model::LIVE
    } else {
        model::PAUSED
    };
    let txn = state.db.begin().await?;
    let created = campaign::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        name_key: Set(model::name_key(&name)),
        name: Set(name),
        kind: Set(model::API.into()),
        template_id: Set(template.id),
        parameters: Set("[]".into()),
        header_media_link: Set(None),
        audience: Set(None),
        broadcast_tag_id: Set(None),
        status: Set(status.into()),
        stop_reason: Set(None),
        scheduled_at: Set(None),
        started_at: Set(Some(now)),
        completed_at: Set(None),
        cancelled_at: Set(None),
        recipients: Set(0),
        created_by: Set(scope.user_id),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        if validate::is_unique_violation(&e) {
            AppError::Conflict("a campaign of this name exists in the project".into())
        } else {
            e.into()
        }
    })?;
    events::record_at(
        &txn,
        scope.project_id,
        "campaign.created",
        json!({ "campaignId": created.id, "kind": model::API, "status": created.status }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

// ---------------------------------------------------------------------------------------
// A CRM's call

/// A call as it arrived, from either transport.
#[derive(Clone, Debug, Default)]
pub struct ApiCall {
    pub campaign_name: String,
    pub destination: String,
    pub user_name: Option<String>,
    pub source: Option<String>,
    pub media: Option<Media>,
    /// Literal values, in the template's order (header, body, URL buttons).
    pub template_params: Vec<String>,
    /// Tag names; unknown ones are created.
    pub tags: Vec<String>,
    /// Attribute key and value; the attribute must be defined in the project.
    pub attributes: Vec<(String, String)>,
    pub idempotency_key: String,
}

#[derive(Clone, Debug, Default)]
pub struct Media {
    pub url: String,
    pub filename: Option<String>,
}

/// What a call answers: an HTTP status and a JSON body (`{"messageId", "status",
/// "campaignId", "contactId"}`, or `{"error": {"code", "message", …}}`). Retries get it
/// back as it was first given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    pub http_status: u16,
    pub body: Value,
}

/// The answer, and whether it was given before (a retry).
#[derive(Clone, Debug)]
pub struct Reply {
    pub answer: Answer,
    pub replayed: bool,
}

/// A successful call's answer body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sent {
    pub message_id: Uuid,
    /// The recipient's status: `SENT` once Meta accepted the message (`DELIVERED`, `READ`
    /// when Meta's statuses came first).
    pub status: String,
    pub campaign_id: Uuid,
    pub contact_id: Uuid,
}

/// What `api_calls.response` holds: the claim while in flight, then the answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "SCREAMING_SNAKE_CASE")]
enum Stored {
    #[serde(rename_all = "camelCase")]
    InFlight {
        message_id: Uuid,
        campaign_id: Uuid,
        contact_id: Uuid,
    },
    #[serde(rename_all = "camelCase")]
    Done { http_status: u16, body: Value },
}

impl Stored {
    fn text(&self) -> AppResult<String> {
        serde_json::to_string(self).map_err(AppError::internal)
    }
}

/// The HTTP status an error code is answered with by `POST /api/campaigns/send`.
pub fn http_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::BadUserInput
        | ErrorCode::GraphqlParseFailed
        | ErrorCode::GraphqlValidationFailed => 400,
        ErrorCode::Unauthenticated => 401,
        ErrorCode::InsufficientCredits => 402,
        ErrorCode::Forbidden | ErrorCode::ProjectArchived => 403,
        ErrorCode::NotFound => 404,
        ErrorCode::MethodNotAllowed => 405,
        ErrorCode::Conflict => 409,
        ErrorCode::RateLimited => 429,
        ErrorCode::Internal => 500,
        ErrorCode::Unavailable => 503,
        // WhatsApp's and the campaign's refusals: paused campaign, template not approved,
        // opted-out contact, messaging limit, Meta's refusal...
        _ => 422,
    }
}

/// An error as a call's answer: `{"error": {"code", "message", …}}` with the details the
/// GraphQL error would carry in `extensions`.
pub fn error_answer(err: &AppError) -> Answer {
    let code = err.code();
    let mut error = serde_json::Map::new();
    error.insert("code".into(), json!(code.as_str()));
    error.insert("message".into(), json!(err.to_string()));
    match err {
        AppError::Internal(cause) | AppError::Unavailable(cause) => {
            let error_id = Uuid::new_v4();
            tracing::error!(%error_id, code = code.as_str(), error = ?cause, "API campaign call failed");
            error.insert("errorId".into(), json!(error_id));
        }
        AppError::BadInput {
            field: Some(field), ..
        } => {
            error.insert("field".into(), json!(field));
        }
        AppError::Provider {
            meta_code: Some(meta_code),
            ..
        } => {
            error.insert("metaCode".into(), json!(meta_code));
        }
        AppError::RefusedWith { details, .. } => {
            for (key, value) in details {
                error.insert(key.clone(), value.clone());
            }
        }
        AppError::Invalid { problems, .. } => {
            error.insert("problems".into(), json!(problems));
        }
        _ => {}
    }
    Answer {
        http_status: http_status(code),
        body: json!({ "error": error }),
    }
}

/// Sends an API campaign's template to one contact, as a CRM asked (`scope` is the API
/// key's). See the module's documentation for the rules.
pub async fn send(state: &AppState, scope: &Scope, call: ApiCall) -> AppResult<Reply> {
    let key_id = scope
        .api_key_id
        .ok_or_else(|| AppError::Forbidden("API campaigns are triggered with an API key".into()))?;
    check_rate(state, key_id)?;
    if scope.archived {
        return Err(AppError::ProjectArchived);
    }
    let prepared = prepare(state, scope, call).await?;
    // A claim lost to a concurrent one (the same key, or the same new contact) looks again.
    for _ in 0..4 {
        if let Some(reply) = replay(state, scope, &prepared).await? {
            return Ok(reply);
        }
        let checked = check(state, scope, &prepared).await?;
        match claim(state, scope, &prepared, &checked).await? {
            Claim::Claimed(claimed) => {
                return deliver(state, scope, &prepared, &checked, claimed).await;
            }
            Claim::KeyTaken | Claim::ContactRace => continue,
            Claim::Busy => {
                return Err(AppError::Conflict(
                    "another call is sending this campaign to this contact right now; retry in a moment"
                        .into(),
                ));
            }
        }
    }
    Err(AppError::Unavailable(anyhow::anyhow!(
        "the call kept colliding with concurrent ones"
    )))
}

// ---------------------------------------------------------------------------------------
// Rate limit

type Limiters = Mutex<HashMap<u32, Arc<DefaultKeyedRateLimiter<Uuid>>>>;

/// One limiter per configured rate, shared by the servers of this process (keys are API
/// key ids, unique across projects).
fn limiters() -> &'static Limiters {
    static LIMITERS: OnceLock<Limiters> = OnceLock::new();
    LIMITERS.get_or_init(Default::default)
}

/// Counts a call against its API key; `RATE_LIMITED` with `retryAfter` (seconds) beyond
/// the rate.
pub fn check_rate(state: &AppState, key_id: Uuid) -> AppResult<()> {
    let per_second = state.settings.campaigns.api_rate_per_second.max(1);
    let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    let limiter = limiters()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(per_second)
        .or_insert_with(|| {
            Arc::new(RateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        })
        .clone();
    if limiter.len() > 10_000 {
        limiter.retain_recent();
    }
    match limiter.check_key(&key_id) {
        Ok(()) => Ok(()),
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            let mut details = serde_json::Map::new();
            details.insert("retryAfter".into(), json!(seconds));
            Err(AppError::RefusedWith {
                code: ErrorCode::RateLimited,
                message: format!(
                    "too many calls with this API key: at most {per_second} a second (bursts of {burst}); retry in {seconds} s"
                ),
                details,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------
// Normalizing and checking a call

/// A call with its values normalized, and their hash.
struct Prepared {
    campaign_name: String,
    campaign_key: String,
    phone: String,
    user_name: Option<String>,
    source: Option<String>,
    media: Option<Media>,
    params: Vec<String>,
    /// Tag names as given (trimmed), one per case-folded key.
    tags: Vec<(String, String)>,
    /// Attribute keys (as given, trimmed) and values, the last of a repeated key.
    attributes: Vec<(String, String)>,
    key: String,
    hash: String,
}

/// The parameters that make a call what it is, in a fixed order: what the hash covers.
#[derive(Serialize)]
struct Hashed<'a> {
    version: u8,
    campaign: &'a str,
    destination: &'a str,
    user_name: Option<&'a str>,
    source: Option<&'a str>,
    media_url: Option<&'a str>,
    media_filename: Option<&'a str>,
    template_params: &'a [String],
    tags: Vec<&'a str>,
    attributes: BTreeMap<String, &'a str>,
}

fn optional_text(
    field: &'static str,
    raw: Option<String>,
    max: usize,
) -> AppResult<Option<String>> {
    match raw {
        Some(value) if !value.trim().is_empty() => Ok(Some(validate::text(field, &value, max)?)),
        _ => Ok(None),
    }
}

async fn prepare(state: &AppState, scope: &Scope, call: ApiCall) -> AppResult<Prepared> {
    let key = call.idempotency_key.trim().to_owned();
    if key.is_empty() || key.chars().count() > MAX_KEY || key.chars().any(char::is_control) {
        return Err(AppError::bad_input(
            "idempotencyKey",
            format!(
                "every call carries an idempotency key of 1 to {MAX_KEY} characters (the Idempotency-Key header)"
            ),
        ));
    }
    let campaign_name = validate::text("campaignName", &call.campaign_name, 128)?;
    let rules = contacts::phone_rules(&state.db, state, scope.project_id).await?;
    // A leading ' is a spreadsheet's text marker, as in imports.
    let raw_phone = call.destination.trim().trim_start_matches('\'');
    let phone = crate::contacts::phone::normalize(raw_phone, &rules)
        .map_err(|e| AppError::bad_input("destination", e.to_string()))?;
    let user_name = optional_text("userName", call.user_name, 256)?;
    let source = optional_text("source", call.source, 128)?;
    let media = match call.media {
        Some(media) if !media.url.trim().is_empty() => {
            let url = media.url.trim().to_owned();
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2048 {
                return Err(AppError::bad_input(
                    "media",
                    "media is a public http(s) link of at most 2,048 characters",
                ));
            }
            Some(Media {
                url,
                filename: optional_text("media.filename", media.filename, 240)?,
            })
        }
        _ => None,
    };
    if call.template_params.len() > MAX_PARAMS {
        return Err(AppError::bad_input(
            "templateParams",
            format!("at most {MAX_PARAMS} template parameters"),
        ));
    }
    let params: Vec<String> = call
        .template_params
        .iter()
        .map(|p| p.trim().to_owned())
        .collect();
    let mut tag_list: Vec<(String, String)> = Vec::new();
    for raw in &call.tags {
        let (name, key) = tags::tag_name(raw)
            .map_err(|e| AppError::bad_input("tags", format!("tag {raw:?}: {e}")))?;
        if !tag_list.iter().any(|(_, k)| *k == key) {
            tag_list.push((name, key));
        }
    }
    if tag_list.len() > MAX_TAGS_PER_CONTACT {
        return Err(AppError::bad_input(
            "tags",
            format!("a contact has at most {MAX_TAGS_PER_CONTACT} tags"),
        ));
    }
    if call.attributes.len() > MAX_ATTRIBUTES {
        return Err(AppError::bad_input(
            "attributes",
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    let mut attribute_list: Vec<(String, String)> = Vec::new();
    for (raw_key, value) in call.attributes {
        let key = raw_key.trim().trim_start_matches('$').to_owned();
        if value.chars().count() > MAX_ATTRIBUTE_VALUE {
            return Err(AppError::bad_input(
                "attributes",
                format!("{key}: an attribute value has at most {MAX_ATTRIBUTE_VALUE} characters"),
            ));
        }
        let folded = key.to_lowercase();
        attribute_list.retain(|(k, _)| k.to_lowercase() != folded);
        attribute_list.push((key, value));
    }
    let campaign_key = model::name_key(&campaign_name);
    let hashed = Hashed {
        version: 1,
        campaign: &campaign_key,
        destination: &phone,
        user_name: user_name.as_deref(),
        source: source.as_deref(),
        media_url: media.as_ref().map(|m| m.url.as_str()),
        media_filename: media.as_ref().and_then(|m| m.filename.as_deref()),
        template_params: &params,
        tags: {
            let mut keys: Vec<&str> = tag_list.iter().map(|(_, k)| k.as_str()).collect();
            keys.sort_unstable();
            keys
        },
        attributes: attribute_list
            .iter()
            .map(|(k, v)| (k.to_lowercase(), v.as_str()))
            .collect(),
    };
    let hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&hashed).map_err(AppError::internal)?,
    ));
    Ok(Prepared {
        campaign_name,
        campaign_key,
        phone,
        user_name,
        source,
        media,
        params,
        tags: tag_list,
        attributes: attribute_list,
        key,
        hash,
    })
}

/// What a call's checks found: the campaign, the contact as it is, the attributes.
struct Checked {
    campaign: campaign::Model,
    parameters: Vec<ParameterInput>,
    existing: Option<contact::Model>,
    definitions: Vec<(attribute::Model, String)>,
}

/// A literal as the template renderer reads it: a leading `$` is doubled, so that a CRM's
/// `$5 off` is not taken for a placeholder.
fn literal(value: &str) -> String {
    if value.starts_with('$') {
        format!("${value}")
    } else {
        value.to_owned()
    }
}

/// Everything that can refuse a call before anything is written.
async fn check(state: &AppState, scope: &Scope, prepared: &Prepared) -> AppResult<Checked> {
    let found = campaign::Entity::find()
        .filter(campaign::Column::ProjectId.eq(scope.project_id))
        .filter(campaign::Column::NameKey.eq(&prepared.campaign_key))
        .filter(campaign::Column::Kind.eq(model::API))
        .one(&state.db)
        .await?
        .ok_or_else(|| AppError::NotFound("API campaign"))?;
    if found.status != model::LIVE {
        return Err(AppError::Refused {
            code: ErrorCode::CampaignPaused,
            message: match &found.stop_reason {
                Some(reason) => format!(
                    "the API campaign {} is {}: {reason}",
                    prepared.campaign_name,
                    found.status.to_lowercase()
                ),
                None => format!(
                    "the API campaign {} is {}; resume it to send",
                    prepared.campaign_name,
                    found.status.to_lowercase()
                ),
            },
        });
    }
    let template = templates::service::find(state, scope, found.template_id).await?;
    if template.status != templates::service::APPROVED {
        return Err(AppError::Refused {
            code: ErrorCode::TemplateNotApproved,
            message: format!(
                "only approved templates can be sent; {} is {}",
                template.name, template.status
            ),
        });
    }
    let parameters: Vec<ParameterInput> = prepared
        .params
        .iter()
        .map(|p| ParameterInput {
            value: literal(p),
            fallback: None,
        })
        .collect();
    templates::service::check_parameters(
        state,
        scope,
        &template,
        &parameters,
        prepared.media.as_ref().map(|m| m.url.as_str()),
    )
    .await
    .map_err(|e| match e {
        // The call's own names for the template's values.
        AppError::BadInput { field, message } => AppError::bad_input(
            if field == Some("headerMediaLink") {
                "media"
            } else {
                "templateParams"
            },
            message,
        ),
        other => other,
    })?;
    let definitions = if prepared.attributes.is_empty() {
        Vec::new()
    } else {
        let known = attributes::by_key(&state.db, scope.project_id).await?;
        prepared
            .attributes
            .iter()
            .map(|(key, value)| {
                Ok((
                    attributes::lookup(&known, "attributes", key)?.clone(),
                    value.clone(),
                ))
            })
            .collect::<AppResult<Vec<_>>>()?
    };
    let existing = contact::Entity::find()
        .filter(contact::Column::ProjectId.eq(scope.project_id))
        .filter(contact::Column::Phone.eq(&prepared.phone))
        .one(&state.db)
        .await?;
    if let Some(existing) = &existing {
        if !existing.opted_in {
            return Err(AppError::Refused {
                code: ErrorCode::ContactOptedOut,
                message: "the contact opted out; campaigns do not reach them until they opt in"
                    .into(),
            });
        }
        if existing.incoming_blocked {
            return Err(AppError::bad_input(
                "destination",
                "the contact is blocked in this project; unblock them to send",
            ));
        }
    }
    let account = accounts::for_project(&state.db, state, scope.project_id).await?;
    let now = state.settings.clock.now();
    let contact_id = existing.as_ref().map_or(Uuid::nil(), |c| c.id);
    if !super::limits::may_reach(
        &state.db,
        scope.project_id,
        contact_id,
        account.messaging_limit,
        now,
    )
    .await?
    {
        let mut details = serde_json::Map::new();
        details.insert("limit".into(), json!(account.messaging_limit));
        return Err(AppError::RefusedWith {
            code: ErrorCode::MessagingLimitExceeded,
            message: "the number's messaging limit of unique users per 24 hours is reached; \
                      this contact can be reached when the rolling window frees room"
                .into(),
            details,
        });
    }
    Ok(Checked {
        campaign: found,
        parameters,
        existing,
        definitions,
    })
}

// ---------------------------------------------------------------------------------------
// Replaying an answer

/// The answer of an earlier call with this key, if there is one. `None`: the key is free
/// (never used, or released by a call that stopped before anything was sent).
async fn replay(state: &AppState, scope: &Scope, prepared: &Prepared) -> AppResult<Option<Reply>> {
    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    loop {
        let Some(row) = api_call::Entity::find_by_id((scope.project_id, prepared.key.clone()))
            .one(&state.db)
            .await?
        else {
            return Ok(None);
        };
        if row.request_hash != prepared.hash {
            return Err(AppError::Conflict(
                "this idempotency key was used with other parameters; use a new key for a new call"
                    .into(),
            ));
        }
        let stored: Option<Stored> = row
            .response
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        match stored {
            Some(Stored::Done { http_status, body }) => {
                return Ok(Some(Reply {
                    answer: Answer { http_status, body },
                    replayed: true,
                }));
            }
            Some(Stored::InFlight {
                message_id,
                campaign_id,
                contact_id,
            }) => {
                let now = state.settings.clock.now();
                let lease = chrono::Duration::from_std(state.settings.campaigns.claim_lease)
                    .unwrap_or(chrono::Duration::seconds(120));
                if row.created_at + lease < now {
                    // Its server stopped mid-call: settle it from what was recorded.
                    let text = row.response.clone().unwrap_or_default();
                    return settle_stale(
                        state,
                        scope,
                        prepared,
                        &text,
                        message_id,
                        campaign_id,
                        contact_id,
                    )
                    .await;
                }
            }
            None => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let mut details = serde_json::Map::new();
            details.insert("inProgress".into(), json!(true));
            details.insert("retryAfter".into(), json!(1));
            return Err(AppError::RefusedWith {
                code: ErrorCode::Conflict,
                message: "a call with this idempotency key is still in progress; retry in a moment to get its answer".into(),
                details,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A call whose server stopped before answering: its message decides. No message: nothing
/// reached Meta, the key is released (and the recipient marked not sent). A message: its
/// status is the answer, for good.
async fn settle_stale(
    state: &AppState,
    scope: &Scope,
    prepared: &Prepared,
    in_flight: &str,
    message_id: Uuid,
    campaign_id: Uuid,
    contact_id: Uuid,
) -> AppResult<Option<Reply>> {
    let now = state.settings.clock.now();
    match message::Entity::find_by_id(message_id)
        .one(&state.db)
        .await?
    {
        None => {
            let txn = state.db.begin().await?;
            let released = api_call::Entity::delete_many()
                .filter(api_call::Column::ProjectId.eq(scope.project_id))
                .filter(api_call::Column::IdempotencyKey.eq(&prepared.key))
                .filter(api_call::Column::Response.eq(in_flight))
                .exec(&txn)
                .await?
                .rows_affected;
            if released == 1 {
                not_sent(&txn, campaign_id, contact_id, message_id, now).await?;
            }
            txn.commit().await?;
            Ok(None)
        }
        Some(sent) => {
            let answer = answer_for(&sent, None, campaign_id);
            let reply = store_answer(state, scope, prepared, in_flight, answer).await?;
            finish_recipient(state, scope, campaign_id, &sent, now).await?;
            Ok(Some(reply))
        }
    }
}

/// Marks a claimed recipient whose message was never recorded as failed, not sent.
async fn not_sent<C: ConnectionTrait>(
    conn: &C,
    campaign_id: Uuid,
    contact_id: Uuid,
    message_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    campaign_recipient::Entity::update_many()
        .col_expr(
            campaign_recipient::Column::Status,
            Expr::val(model::FAILED).into(),
        )
        .col_expr(
            campaign_recipient::Column::ErrorTitle,
            Expr::val("not sent: the server stopped before the message was recorded").into(),
        )
        .col_expr(
            campaign_recipient::Column::FailureGroup,
            Expr::val(FailureGroup::Other.as_str()).into(),
        )
        .col_expr(campaign_recipient::Column::FailedAt, Expr::val(now).into())
        .col_expr(
            campaign_recipient::Column::ClaimedUntil,
            Expr::val(Option::<DateTime<Utc>>::None).into(),
        )
        .col_expr(campaign_recipient::Column::UpdatedAt, Expr::val(now).into())
        .filter(campaign_recipient::Column::CampaignId.eq(campaign_id))
        .filter(campaign_recipient::Column::ContactId.eq(contact_id))
        .filter(campaign_recipient::Column::MessageId.eq(message_id))
        .filter(campaign_recipient::Column::Status.is_in([model::SENDING, model::QUEUED]))
        .exec(conn)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Claiming: the key, the contact, the recipient, in one transaction

struct Claimed {
    contact: contact::Model,
    message_id: Uuid,
    /// The recipient row before this call (a contact the campaign reached before).
    previous: Option<campaign_recipient::Model>,
    in_flight: String,
}

enum Claim {
    Claimed(Box<Claimed>),
    /// The key was inserted meanwhile: replay it.
    KeyTaken,
    /// The contact was created meanwhile by another call: look again.
    ContactRace,
    /// Another call is sending this campaign to this contact.
    Busy,
}

async fn claim(
    state: &AppState,
    scope: &Scope,
    prepared: &Prepared,
    checked: &Checked,
) -> AppResult<Claim> {
    let now = state.settings.clock.now();
    let lease = chrono::Duration::from_std(state.settings.campaigns.claim_lease)
        .unwrap_or(chrono::Duration::seconds(120));
    let message_id = Uuid::now_v7();
    let txn = state.db.begin().await?;
    // The contact's id is needed for the in-flight record: an existing one, or a new id.
    let contact_id = checked
        .existing
        .as_ref()
        .map_or_else(Uuid::now_v7, |c| c.id);
    let in_flight = Stored::InFlight {
        message_id,
        campaign_id: checked.campaign.id,
        contact_id,
    }
    .text()?;
    // The key first: a unique violation means a retry (or a concurrent twin).
    let inserted = api_call::ActiveModel {
        project_id: Set(scope.project_id),
        idempotency_key: Set(prepared.key.clone()),
        request_hash: Set(prepared.hash.clone()),
        response: Set(Some(in_flight.clone())),
        created_at: Set(now),
    }
    .insert(&txn)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if validate::is_unique_violation(&e) => {
            txn.rollback().await?;
            return Ok(Claim::KeyTaken);
        }
        Err(e) => return Err(e.into()),
    }
    let actor = Actor::of(scope);
    let (contact, mut entries) = match write_contact(&txn, scope, prepared, contact_id, now).await {
        Ok(written) => written,
        Err(e) if validate::is_unique_violation(&e) => {
            txn.rollback().await?;
            return Ok(Claim::ContactRace);
        }
        Err(e) => return Err(e.into()),
    };
    // The contact changed since the checks (created or deleted by another call meanwhile):
    // the in-flight record names the one written.
    let in_flight = if contact.id == contact_id {
        in_flight
    } else {
        let corrected = Stored::InFlight {
            message_id,
            campaign_id: checked.campaign.id,
            contact_id: contact.id,
        }
        .text()?;
        api_call::Entity::update_many()
            .col_expr(
                api_call::Column::Response,
                Expr::val(corrected.clone()).into(),
            )
            .filter(api_call::Column::ProjectId.eq(scope.project_id))
            .filter(api_call::Column::IdempotencyKey.eq(&prepared.key))
            .exec(&txn)
            .await?;
        corrected
    };
    let tag_models = ensure_tags(&txn, scope.project_id, &prepared.tags, now).await?;
    entries.extend(attach_tags(&txn, &contact, &tag_models, actor, now).await?);
    entries.extend(write_attributes(&txn, &contact, &checked.definitions).await?);
    journey::record(&txn, scope.project_id, actor, entries).await?;

    let previous = campaign_recipient::Entity::find_by_id((checked.campaign.id, contact.id))
        .one(&txn)
        .await?;
    if previous.is_some() {
        // A new send updates the contact's row (the campaign shows its latest message),
        // unless another call is sending to them right now.
        let updated = campaign_recipient::Entity::update_many()
            .col_expr(
                campaign_recipient::Column::Status,
                Expr::val(model::SENDING).into(),
            )
            .col_expr(
                campaign_recipient::Column::MessageId,
                Expr::val(message_id).into(),
            )
            .col_expr(
                campaign_recipient::Column::Attempts,
                Expr::col(campaign_recipient::Column::Attempts).add(1),
            )
            .col_expr(
                campaign_recipient::Column::ClaimedUntil,
                Expr::val(now + lease).into(),
            )
            .col_expr(campaign_recipient::Column::QueuedAt, Expr::val(now).into())
            .col_expr(campaign_recipient::Column::UpdatedAt, Expr::val(now).into())
            .col_expr(
                campaign_recipient::Column::SkipReason,
                Expr::val(Option::<String>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::ErrorCode,
                Expr::val(Option::<i64>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::ErrorTitle,
                Expr::val(Option::<String>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::FailureGroup,
                Expr::val(Option::<String>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::NextAttemptAt,
                Expr::val(Option::<DateTime<Utc>>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::SentAt,
                Expr::val(Option::<DateTime<Utc>>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::DeliveredAt,
                Expr::val(Option::<DateTime<Utc>>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::ReadAt,
                Expr::val(Option::<DateTime<Utc>>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::FailedAt,
                Expr::val(Option::<DateTime<Utc>>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::ClickedAt,
                Expr::val(Option::<DateTime<Utc>>::None).into(),
            )
            .col_expr(
                campaign_recipient::Column::RepliedAt,
                Expr::val(Option::<DateTime<Utc>>::None).into(),
            )
            .filter(campaign_recipient::Column::CampaignId.eq(checked.campaign.id))
            .filter(campaign_recipient::Column::ContactId.eq(contact.id))
            .filter(
                sea_orm::Condition::any()
                    .add(campaign_recipient::Column::Status.ne(model::SENDING))
                    .add(campaign_recipient::Column::ClaimedUntil.is_null())
                    .add(campaign_recipient::Column::ClaimedUntil.lt(now)),
            )
            .exec(&txn)
            .await?
            .rows_affected;
        if updated != 1 {
            txn.rollback().await?;
            return Ok(Claim::Busy);
        }
    } else {
        let inserted = campaign_recipient::ActiveModel {
            campaign_id: Set(checked.campaign.id),
            contact_id: Set(contact.id),
            project_id: Set(scope.project_id),
            seq: Set(now.timestamp_millis()),
            status: Set(model::SENDING.into()),
            skip_reason: Set(None),
            message_id: Set(Some(message_id)),
            error_code: Set(None),
            error_title: Set(None),
            failure_group: Set(None),
            attempts: Set(1),
            next_attempt_at: Set(None),
            claimed_until: Set(Some(now + lease)),
            queued_at: Set(now),
            sent_at: Set(None),
            delivered_at: Set(None),
            read_at: Set(None),
            failed_at: Set(None),
            clicked_at: Set(None),
            replied_at: Set(None),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if validate::is_unique_violation(&e) => {
                txn.rollback().await?;
                return Ok(Claim::Busy);
            }
            Err(e) => return Err(e.into()),
        }
        campaign::Entity::update_many()
            .col_expr(
                campaign::Column::Recipients,
                Expr::col(campaign::Column::Recipients).add(1),
            )
            .col_expr(campaign::Column::UpdatedAt, Expr::val(now).into())
            .filter(campaign::Column::Id.eq(checked.campaign.id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(Claim::Claimed(Box::new(Claimed {
        contact,
        message_id,
        previous,
        in_flight,
    })))
}

/// Creates the contact (source `API`, opted in) or updates its name; returns it with its
/// journey entries. A unique violation (the phone taken meanwhile) is the caller's to
/// handle.
async fn write_contact(
    txn: &DatabaseTransaction,
    scope: &Scope,
    prepared: &Prepared,
    new_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(contact::Model, Vec<Entry>), sea_orm::DbErr> {
    let current = contact::Entity::find()
        .filter(contact::Column::ProjectId.eq(scope.project_id))
        .filter(contact::Column::Phone.eq(&prepared.phone))
        .one(txn)
        .await?;
    match current {
        Some(found) => {
            let mut entries = Vec::new();
            match &prepared.user_name {
                Some(name) if *name != found.name => {
                    entries.push(Entry::new(
                        found.id,
                        "contact.updated",
                        json!({ "name": { "from": found.name, "to": name } }),
                    ));
                    let mut active = found.into_active_model();
                    active.name = Set(name.clone());
                    active.updated_at = Set(now);
                    Ok((active.update(txn).await?, entries))
                }
                _ => Ok((found, entries)),
            }
        }
        None => {
            let created = contact::ActiveModel {
                id: Set(new_id),
                project_id: Set(scope.project_id),
                name: Set(prepared
                    .user_name
                    .clone()
                    .unwrap_or_else(|| prepared.phone.clone())),
                phone: Set(Some(prepared.phone.clone())),
                bsuid: Set(None),
                source: Set(SOURCE_API.to_owned()),
                first_message_tag_id: Set(None),
                opted_in: Set(true),
                opted_in_at: Set(Some(now)),
                opted_in_source: Set(Some(
                    prepared
                        .source
                        .clone()
                        .unwrap_or_else(|| SOURCE_API.to_owned()),
                )),
                incoming_blocked: Set(false),
                state: Set(contacts::STATE_ASSISTANT.to_owned()),
                last_active_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(txn)
            .await?;
            let entries = vec![Entry::new(
                created.id,
                "contact.created",
                json!({ "source": SOURCE_API, "via": prepared.source, "campaign": prepared.campaign_name }),
            )];
            Ok((created, entries))
        }
    }
}

/// The call's tags, creating unknown ones (kind `API`).
async fn ensure_tags(
    txn: &DatabaseTransaction,
    project_id: Uuid,
    wanted: &[(String, String)],
    now: DateTime<Utc>,
) -> AppResult<Vec<tag::Model>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let known = tags::by_key(txn, project_id).await?;
    let missing: Vec<&(String, String)> = wanted
        .iter()
        .filter(|(_, key)| !known.contains_key(key))
        .collect();
    if !missing.is_empty() {
        let count = tag::Entity::find()
            .filter(tag::Column::ProjectId.eq(project_id))
            .count(txn)
            .await?;
        if count + missing.len() as u64 > MAX_TAGS_PER_PROJECT {
            return Err(AppError::PlanLimit(format!(
                "a project has at most {MAX_TAGS_PER_PROJECT} tags; {} new ones do not fit",
                missing.len()
            )));
        }
        tag::Entity::insert_many(missing.iter().map(|(name, key)| tag::ActiveModel {
            id: Set(Uuid::now_v7()),
            project_id: Set(project_id),
            name: Set(name.clone()),
            name_key: Set(key.clone()),
            kind: Set(TagKind::Api.as_str().to_owned()),
            first_message_keywords: Set(None),
            created_at: Set(now),
        }))
        .on_conflict(
            OnConflict::columns([tag::Column::ProjectId, tag::Column::NameKey])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
    }
    let keys: Vec<&str> = wanted.iter().map(|(_, k)| k.as_str()).collect();
    Ok(tag::Entity::find()
        .filter(tag::Column::ProjectId.eq(project_id))
        .filter(tag::Column::NameKey.is_in(keys))
        .all(txn)
        .await?)
}

/// Adds the tags the contact does not carry yet (at most 100 a contact).
async fn attach_tags(
    txn: &DatabaseTransaction,
    contact: &contact::Model,
    wanted: &[tag::Model],
    actor: Actor,
    now: DateTime<Utc>,
) -> AppResult<Vec<Entry>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let carried: HashSet<Uuid> = contact_tag::Entity::find()
        .filter(contact_tag::Column::ContactId.eq(contact.id))
        .all(txn)
        .await?
        .into_iter()
        .map(|ct| ct.tag_id)
        .collect();
    let new: Vec<&tag::Model> = wanted.iter().filter(|t| !carried.contains(&t.id)).collect();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    if carried.len() + new.len() > MAX_TAGS_PER_CONTACT {
        return Err(AppError::bad_input(
            "tags",
            format!("a contact has at most {MAX_TAGS_PER_CONTACT} tags"),
        ));
    }
    contact_tag::Entity::insert_many(new.iter().map(|t| contact_tag::ActiveModel {
        contact_id: Set(contact.id),
        tag_id: Set(t.id),
        project_id: Set(contact.project_id),
        added_at: Set(now),
        added_by: Set(actor.id()),
    }))
    .on_conflict(
        OnConflict::columns([contact_tag::Column::ContactId, contact_tag::Column::TagId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(new
        .iter()
        .map(|t| {
            Entry::new(
                contact.id,
                "tag.added",
                json!({ "tagId": t.id, "tag": t.name }),
            )
        })
        .collect())
}

/// Sets attribute values; journey entries for those that changed.
async fn write_attributes(
    txn: &DatabaseTransaction,
    contact: &contact::Model,
    values: &[(attribute::Model, String)],
) -> AppResult<Vec<Entry>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let existing: HashMap<Uuid, String> = contact_attribute::Entity::find()
        .filter(contact_attribute::Column::ContactId.eq(contact.id))
        .all(txn)
        .await?
        .into_iter()
        .map(|v| (v.attribute_id, v.value))
        .collect();
    let mut entries = Vec::new();
    let mut rows = Vec::new();
    for (definition, value) in values {
        let old = existing.get(&definition.id);
        if old == Some(value) {
            continue;
        }
        entries.push(Entry::new(
            contact.id,
            "attribute.changed",
            json!({ "key": definition.key, "from": old, "to": value }),
        ));
        rows.push(contact_attribute::ActiveModel {
            contact_id: Set(contact.id),
            attribute_id: Set(definition.id),
            project_id: Set(contact.project_id),
            value: Set(value.clone()),
        });
    }
    if !rows.is_empty() {
        contact_attribute::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    contact_attribute::Column::ContactId,
                    contact_attribute::Column::AttributeId,
                ])
                .update_column(contact_attribute::Column::Value)
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------------------
// Sending and answering

async fn deliver(
    state: &AppState,
    scope: &Scope,
    prepared: &Prepared,
    checked: &Checked,
    claimed: Box<Claimed>,
) -> AppResult<Reply> {
    let campaign_id = checked.campaign.id;
    let request = SendRequest {
        contact_id: claimed.contact.id,
        content: SendContent::Template {
            template_id: checked.campaign.template_id,
            parameters: checked.parameters.clone(),
            header_media_link: prepared.media.as_ref().map(|m| m.url.clone()),
        },
        reply_to: None,
    };
    let result = send::send_for_campaign(
        state,
        scope,
        request,
        CampaignSend {
            campaign_id,
            message_id: claimed.message_id,
        },
    )
    .await;
    let recorded = match &result {
        Ok(sent) => Some(sent.clone()),
        Err(_) => message::Entity::find_by_id(claimed.message_id)
            .one(&state.db)
            .await
            .unwrap_or(None),
    };
    let now = state.settings.clock.now();
    let Some(sent) = recorded else {
        // Refused before anything was recorded (the wallet, say): nothing reached Meta, so
        // the claim is undone and the same key may be sent again.
        let err = result
            .err()
            .unwrap_or_else(|| AppError::internal(anyhow::anyhow!("a send without a message")));
        if let Err(undo) = release(state, scope, prepared, campaign_id, &claimed).await {
            tracing::warn!(error = %undo, "could not undo an API campaign claim; a retry settles it");
        }
        return Err(err);
    };
    // The answer first: it is what makes a retry safe. The recipient's row, if it cannot
    // be written now, is settled from the message when its claim's lease runs out.
    let answer = answer_for(&sent, result.as_ref().err(), campaign_id);
    let reply = store_answer(state, scope, prepared, &claimed.in_flight, answer).await?;
    if let Err(err) = finish_recipient(state, scope, campaign_id, &sent, now).await {
        tracing::warn!(error = %err, campaign = %campaign_id, "could not record an API campaign send's outcome");
    }
    if let Err(AppError::Provider { meta_code, message }) = &result
        && FailureGroup::of(*meta_code) == FailureGroup::TemplatePaused
    {
        let reason = format!(
            "Meta refused the template ({}): {message}",
            meta_code.unwrap_or_default()
        );
        if let Err(err) = pause_for(state, campaign_id, &reason, now).await {
            tracing::warn!(error = %err, campaign = %campaign_id, "could not pause an API campaign");
        }
    }
    Ok(reply)
}

/// The answer a recorded message gives, for good.
fn answer_for(sent: &message::Model, err: Option<&AppError>, campaign_id: Uuid) -> Answer {
    match sent.status.as_str() {
        store::FAILED => {
            let (code, status, message) = match (err, sent.error_code) {
                (Some(AppError::Provider { message, .. }), _) => (
                    ErrorCode::ProviderRejected,
                    422,
                    format!("WhatsApp refused the message: {message}"),
                ),
                (_, Some(_)) => (
                    ErrorCode::ProviderRejected,
                    422,
                    format!(
                        "WhatsApp refused the message: {}",
                        sent.error_title.as_deref().unwrap_or("no reason given")
                    ),
                ),
                _ => (
                    ErrorCode::Unavailable,
                    502,
                    "WhatsApp did not confirm the message; it is not sent again under this \
                     idempotency key (use a new key to try again)"
                        .to_owned(),
                ),
            };
            Answer {
                http_status: status,
                body: json!({ "error": {
                    "code": code.as_str(),
                    "message": message,
                    "metaCode": sent.error_code,
                    "messageId": sent.id,
                    "campaignId": campaign_id,
                    "contactId": sent.contact_id,
                }}),
            }
        }
        store::PENDING => Answer {
            http_status: 502,
            body: json!({ "error": {
                "code": ErrorCode::Unavailable.as_str(),
                "message": "the send was interrupted and may have reached WhatsApp; it is not \
                            sent again under this idempotency key",
                "messageId": sent.id,
                "campaignId": campaign_id,
                "contactId": sent.contact_id,
            }}),
        },
        status => Answer {
            http_status: 200,
            body: json!(Sent {
                message_id: sent.id,
                status: super::tracking::recipient_status(status).to_owned(),
                campaign_id,
                contact_id: sent.contact_id,
            }),
        },
    }
}

/// Writes the answer under the key (only over this call's own claim); when another retry
/// settled it first, that answer wins.
async fn store_answer(
    state: &AppState,
    scope: &Scope,
    prepared: &Prepared,
    in_flight: &str,
    answer: Answer,
) -> AppResult<Reply> {
    let done = Stored::Done {
        http_status: answer.http_status,
        body: answer.body.clone(),
    }
    .text()?;
    let written = api_call::Entity::update_many()
        .col_expr(api_call::Column::Response, Expr::val(done).into())
        .filter(api_call::Column::ProjectId.eq(scope.project_id))
        .filter(api_call::Column::IdempotencyKey.eq(&prepared.key))
        .filter(api_call::Column::Response.eq(in_flight))
        .exec(&state.db)
        .await?
        .rows_affected;
    if written == 1 {
        return Ok(Reply {
            answer,
            replayed: false,
        });
    }
    let stored = api_call::Entity::find_by_id((scope.project_id, prepared.key.clone()))
        .one(&state.db)
        .await?
        .and_then(|row| row.response)
        .and_then(|text| serde_json::from_str::<Stored>(&text).ok());
    match stored {
        Some(Stored::Done { http_status, body }) => Ok(Reply {
            answer: Answer { http_status, body },
            replayed: true,
        }),
        _ => Ok(Reply {
            answer,
            replayed: false,
        }),
    }
}

/// Undoes a claim whose send stopped before its message was recorded: the key is freed,
/// the recipient row is as it was (or gone, and the campaign counts one fewer).
async fn release(
    state: &AppState,
    scope: &Scope,
    prepared: &Prepared,
    campaign_id: Uuid,
    claimed: &Claimed,
) -> AppResult<()> {
    let txn = state.db.begin().await?;
    let freed = api_call::Entity::delete_many()
        .filter(api_call::Column::ProjectId.eq(scope.project_id))
        .filter(api_call::Column::IdempotencyKey.eq(&prepared.key))
        .filter(api_call::Column::Response.eq(&claimed.in_flight))
        .exec(&txn)
        .await?
        .rows_affected;
    let current = campaign_recipient::Entity::find_by_id((campaign_id, claimed.contact.id))
        .one(&txn)
        .await?;
    if freed == 1
        && let Some(current) = current
        && current.message_id == Some(claimed.message_id)
        && current.status == model::SENDING
    {
        match &claimed.previous {
            Some(previous) => {
                previous
                    .clone()
                    .into_active_model()
                    .reset_all()
                    .update(&txn)
                    .await?;
            }
            None => {
                campaign_recipient::Entity::delete_by_id((campaign_id, claimed.contact.id))
                    .exec(&txn)
                    .await?;
                campaign::Entity::update_many()
                    .col_expr(
                        campaign::Column::Recipients,
                        Expr::col(campaign::Column::Recipients).sub(1),
                    )
                    .filter(campaign::Column::Id.eq(campaign_id))
                    .exec(&txn)
                    .await?;
            }
        }
    }
    txn.commit().await?;
    Ok(())
}

/// Moves the claimed recipient to where its message got (only while still claimed by it),
/// records the analytics event and publishes the campaign's progress.
async fn finish_recipient(
    state: &AppState,
    scope: &Scope,
    campaign_id: Uuid,
    sent: &message::Model,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let update = campaign_recipient::Entity::update_many()
        .col_expr(
            campaign_recipient::Column::ClaimedUntil,
            Expr::val(Option::<DateTime<Utc>>::None).into(),
        )
        .col_expr(campaign_recipient::Column::UpdatedAt, Expr::val(now).into())
        .filter(campaign_recipient::Column::CampaignId.eq(campaign_id))
        .filter(campaign_recipient::Column::ContactId.eq(sent.contact_id))
        .filter(campaign_recipient::Column::MessageId.eq(sent.id))
        .filter(campaign_recipient::Column::Status.eq(model::SENDING));
    let (update, event) = match sent.status.as_str() {
        store::PENDING => (
            update.col_expr(
                campaign_recipient::Column::Status,
                Expr::val(model::INTERRUPTED).into(),
            ),
            None,
        ),
        store::FAILED => {
            let group = FailureGroup::of(sent.error_code).as_str();
            (
                update
                    .col_expr(
                        campaign_recipient::Column::Status,
                        Expr::val(model::FAILED).into(),
                    )
                    .col_expr(
                        campaign_recipient::Column::ErrorCode,
                        Expr::val(sent.error_code).into(),
                    )
                    .col_expr(
                        campaign_recipient::Column::ErrorTitle,
                        Expr::val(sent.error_title.clone()).into(),
                    )
                    .col_expr(
                        campaign_recipient::Column::FailureGroup,
                        Expr::val(group).into(),
                    )
                    .col_expr(
                        campaign_recipient::Column::FailedAt,
                        Expr::val(sent.failed_at.unwrap_or(now)).into(),
                    ),
                Some((
                    "campaign.failed",
                    json!({ "group": group, "errorCode": sent.error_code }),
                )),
            )
        }
        status => (
            update
                .col_expr(
                    campaign_recipient::Column::Status,
                    Expr::val(super::tracking::recipient_status(status)).into(),
                )
                .col_expr(campaign_recipient::Column::SentAt, Expr::val(now).into())
                .col_expr(
                    campaign_recipient::Column::DeliveredAt,
                    Expr::val(sent.delivered_at).into(),
                )
                .col_expr(
                    campaign_recipient::Column::ReadAt,
                    Expr::val(sent.read_at).into(),
                ),
            Some(("campaign.sent", json!({ "api": true }))),
        ),
    };
    let txn = state.db.begin().await?;
    let changed = update.exec(&txn).await?.rows_affected == 1;
    if changed && let Some((kind, mut payload)) = event {
        payload["campaignId"] = json!(campaign_id);
        payload["contactId"] = json!(sent.contact_id);
        events::record_at(&txn, scope.project_id, kind, payload, now).await?;
    }
    txn.commit().await?;
    if changed {
        super::progress::publish(state, campaign_id).await;
    }
    Ok(())
}

/// Meta paused or disabled the template: the campaign pauses with the reason, so that CRM
/// calls are refused until someone resumes it.
async fn pause_for(
    state: &AppState,
    campaign_id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    campaign::Entity::update_many()
        .col_expr(campaign::Column::Status, Expr::val(model::PAUSED).into())
        .col_expr(campaign::Column::StopReason, Expr::val(reason).into())
        .col_expr(campaign::Column::UpdatedAt, Expr::val(now).into())
        .filter(campaign::Column::Id.eq(campaign_id))
        .filter(campaign::Column::Status.eq(model::LIVE))
        .exec(&state.db)
        .await?;
    super::progress::publish_now(state, campaign_id).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_that_look_like_placeholders_stay_literal() {
        use crate::templates::render::{ParamSource, parse};
        for value in ["$5 off", "$FirstName", "$$", "plain", "Hello $Name"] {
            assert_eq!(
                parse(&literal(value), None),
                ParamSource::Literal(value.to_owned()),
                "{value}"
            );
        }
    }

    #[test]
    fn stored_states_round_trip() {
        let done = Stored::Done {
            http_status: 200,
            body: json!({ "messageId": Uuid::nil() }),
        };
        let text = done.text().unwrap();
        assert!(text.contains("\"state\":\"DONE\""), "{text}");
        assert!(matches!(
            serde_json::from_str::<Stored>(&text).unwrap(),
            Stored::Done {
                http_status: 200,
                ..
            }
        ));
        let in_flight = Stored::InFlight {
            message_id: Uuid::nil(),
            campaign_id: Uuid::nil(),
            contact_id: Uuid::nil(),
        }
        .text()
        .unwrap();
        assert!(in_flight.contains("\"state\":\"IN_FLIGHT\""), "{in_flight}");
        assert!(in_flight.contains("messageId"), "{in_flight}");
    }

    #[test]
    fn error_codes_have_http_statuses() {
        assert_eq!(http_status(ErrorCode::BadUserInput), 400);
        assert_eq!(http_status(ErrorCode::Unauthenticated), 401);
        assert_eq!(http_status(ErrorCode::NotFound), 404);
        assert_eq!(http_status(ErrorCode::Conflict), 409);
        assert_eq!(http_status(ErrorCode::CampaignPaused), 422);
        assert_eq!(http_status(ErrorCode::TemplateNotApproved), 422);
        assert_eq!(http_status(ErrorCode::RateLimited), 429);
        assert_eq!(http_status(ErrorCode::Unavailable), 503);
    }
}
