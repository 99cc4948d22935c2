//! Templates: drafts, submission to Meta, review status from webhooks and from a sync, and
//! rendering for a send.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parley_entity::{attribute, contact, contact_attribute, template};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    meta_shape::{self, SendValues},
    model::{Category, Components, HeaderFormat, ParameterFormat, TemplateDraft},
    render::{self, ContactValues},
    validate,
};
use crate::{
    auth::Scope,
    errors::{AppError, AppResult, ErrorCode, Problem},
    pagination::{self, Page, PageRequest},
    state::AppState,
    whatsapp::{
        accounts,
        payload::{TemplateCategoryUpdate, TemplateStatusUpdate},
        provider::{RemoteTemplate, TemplateSubmission},
    },
};

pub const DRAFT: &str = "DRAFT";
pub const PENDING: &str = "PENDING";
pub const APPROVED: &str = "APPROVED";
pub const REJECTED: &str = "REJECTED";

/// Meta's template statuses Parley keeps as they are.
const META_STATUSES: &[&str] = &[
    PENDING,
    APPROVED,
    REJECTED,
    "PAUSED",
    "DISABLED",
    "IN_APPEAL",
    "PENDING_DELETION",
    "DELETED",
    "LIMIT_EXCEEDED",
    "ARCHIVED",
];

/// Pages of Meta's template list read by one sync at most.
const MAX_SYNC_PAGES: usize = 100;

/// A parameter value as given: a literal or a `$Placeholder`, with a fallback.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ParameterInput {
    pub value: String,
    pub fallback: Option<String>,
}

/// A template ready to send to one contact.
pub struct Rendered {
    pub name: String,
    pub language: String,
    /// Meta's send `components`.
    pub components: Vec<Value>,
    /// The body as the recipient reads it.
    pub preview: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`: what the message is priced as.
    pub category: String,
    /// The URL buttons with a dynamic suffix: (button index, the template's URL before
    /// `{{1}}`, the suffix sent), for click tracking.
    pub url_buttons: Vec<(usize, String, String)>,
}

pub struct SyncReport {
    pub pages: usize,
    pub updated: usize,
    pub imported: usize,
    pub unchanged: usize,
}

pub fn category_str(c: Category) -> &'static str {
    match c {
        Category::Marketing => "MARKETING",
        Category::Utility => "UTILITY",
        Category::Authentication => "AUTHENTICATION",
    }
}

pub fn format_str(f: ParameterFormat) -> &'static str {
    match f {
        ParameterFormat::Positional => "POSITIONAL",
        ParameterFormat::Named => "NAMED",
    }
}

fn format_of(raw: &str) -> ParameterFormat {
    if raw == "NAMED" {
        ParameterFormat::Named
    } else {
        ParameterFormat::Positional
    }
}

pub fn components_of(model: &template::Model) -> AppResult<Components> {
    serde_json::from_str(&model.components).map_err(AppError::internal)
}

/// The template's problems by Meta's rules (empty when it can be submitted).
pub fn problems(model: &template::Model) -> Vec<Problem> {
    match draft_of(model) {
        Ok(draft) => problems_of(&draft),
        Err(_) => Vec::new(),
    }
}

fn draft_of(model: &template::Model) -> AppResult<TemplateDraft> {
    Ok(TemplateDraft {
        name: model.name.clone(),
        language: model.language.clone(),
        category: match model.category.as_str() {
            "UTILITY" => Category::Utility,
            "AUTHENTICATION" => Category::Authentication,
            _ => Category::Marketing,
        },
        parameter_format: format_of(&model.parameter_format),
        components: components_of(model)?,
    })
}

fn problems_of(draft: &TemplateDraft) -> Vec<Problem> {
    match validate::validate(draft) {
        Ok(()) => Vec::new(),
        Err(list) => list
            .into_iter()
            .map(|p| Problem {
                path: p.path,
                code: p.code.to_owned(),
                message: p.message,
            })
            .collect(),
    }
}

/// Drafts are saved even when incomplete, but their name and language must already be
/// right: they identify the template.
fn identity_problems(draft: &TemplateDraft) -> Vec<Problem> {
    problems_of(draft)
        .into_iter()
        .filter(|p| p.path == "name" || p.path == "language")
        .collect()
}

fn invalid(problems: Vec<Problem>, what: &str) -> AppError {
    let message = match problems.as_slice() {
        [one] => format!("{what}: {}", one.message),
        many => format!(
            "{what}: {} problems, listed in extensions.problems",
            many.len()
        ),
    };
    AppError::Invalid { message, problems }
}

pub async fn create(
    state: &AppState,
    scope: &Scope,
    draft: TemplateDraft,
) -> AppResult<template::Model> {
    let problems = identity_problems(&draft);
    if !problems.is_empty() {
        return Err(invalid(problems, "the template cannot be saved"));
    }
    let now = Utc::now();
    template::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        name: Set(draft.name),
        language: Set(draft.language),
        category: Set(category_str(draft.category).into()),
        parameter_format: Set(format_str(draft.parameter_format).into()),
        components: Set(serde_json::to_string(&draft.components).map_err(AppError::internal)?),
        status: Set(DRAFT.into()),
        meta_template_id: Set(None),
        rejection_reason: Set(None),
        previous_category: Set(None),
        status_changed_at: Set(None),
        category_changed_at: Set(None),
        submitted_at: Set(None),
        created_by: Set(scope.user_id),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&state.db)
    .await
    .map_err(name_taken)
}

fn name_taken(err: sea_orm::DbErr) -> AppError {
    if crate::validate::is_unique_violation(&err) {
        AppError::Conflict("a template with this name and language exists already".into())
    } else {
        err.into()
    }
}

/// Edits a draft, or a rejected template (which becomes a draft again).
pub async fn update(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    draft: TemplateDraft,
) -> AppResult<template::Model> {
    let existing = find(state, scope, id).await?;
    if existing.status != DRAFT && existing.status != REJECTED {
        return Err(AppError::Conflict(format!(
            "only drafts and rejected templates can be edited; this one is {}",
            existing.status
        )));
    }
    let problems = identity_problems(&draft);
    if !problems.is_empty() {
        return Err(invalid(problems, "the template cannot be saved"));
    }
    let mut active: template::ActiveModel = existing.into();
    active.name = Set(draft.name);
    active.language = Set(draft.language);
    active.category = Set(category_str(draft.category).into());
    active.parameter_format = Set(format_str(draft.parameter_format).into());
    active.components = Set(serde_json::to_string(&draft.components).map_err(AppError::internal)?);
    active.status = Set(DRAFT.into());
    active.rejection_reason = Set(None);
    active.updated_at = Set(Utc::now());
    active.update(&state.db).await.map_err(name_taken)
}

/// Deletes a template Meta has not got (a draft) or has refused.
pub async fn delete(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<()> {
    let existing = find(state, scope, id).await?;
    if existing.status != DRAFT && existing.status != REJECTED {
        return Err(AppError::Conflict(format!(
            "only drafts and rejected templates can be deleted; this one is {}",
            existing.status
        )));
    }
    template::Entity::delete_by_id(id).exec(&state.db).await?;
    Ok(())
}

/// Checks the template by Meta's rules and submits it for review.
pub async fn submit(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<template::Model> {
    let existing = find(state, scope, id).await?;
    if existing.status != DRAFT {
        return Err(AppError::Conflict(format!(
            "only drafts can be submitted; this one is {}",
            existing.status
        )));
    }
    let draft = draft_of(&existing)?;
    let problems = problems_of(&draft);
    if !problems.is_empty() {
        return Err(invalid(problems, "the template breaks WhatsApp's rules"));
    }
    let account = accounts::for_project(&state.db, state, scope.project_id).await?;
    let submission = TemplateSubmission {
        template_id: existing.id,
        name: draft.name.clone(),
        language: draft.language.clone(),
        category: category_str(draft.category).into(),
        parameter_format: format_str(draft.parameter_format).into(),
        components: meta_shape::to_meta_components(&draft.components, draft.parameter_format),
    };
    let provider = state.whatsapp.provider(&account);
    let credentials = accounts::provider_account(&account);
    // A template Meta has seen (rejected, then edited) is edited under its id: Meta keeps
    // one template per name and language.
    let submitted = match existing.meta_template_id.clone() {
        Some(meta_id) => {
            provider
                .edit_template(&credentials, &meta_id, &submission)
                .await
                .map_err(AppError::from)?;
            crate::whatsapp::provider::SubmittedTemplate {
                meta_id,
                status: PENDING.into(),
                category: submission.category.clone(),
            }
        }
        None => provider
            .submit_template(&credentials, &submission)
            .await
            .map_err(AppError::from)?,
    };
    let now = Utc::now();
    let mut active: template::ActiveModel = existing.into();
    active.meta_template_id = Set(Some(submitted.meta_id));
    active.status = Set(known_status(&submitted.status).unwrap_or(PENDING).into());
    if submitted.category != submission.category && !submitted.category.is_empty() {
        active.previous_category = Set(Some(submission.category));
        active.category = Set(submitted.category);
    }
    active.submitted_at = Set(Some(now));
    active.updated_at = Set(now);
    active.update(&state.db).await.map_err(name_taken)
}

fn known_status(raw: &str) -> Option<&'static str> {
    let upper = raw.to_uppercase();
    META_STATUSES.iter().copied().find(|s| *s == upper)
}

/// Brings every template up to date with Meta's list (all pages); templates made in
/// WhatsApp Manager are imported.
pub async fn sync(state: &AppState, scope: &Scope) -> AppResult<SyncReport> {
    let account = accounts::for_project(&state.db, state, scope.project_id).await?;
    let provider = state.whatsapp.provider(&account);
    let credentials = accounts::provider_account(&account);
    let mut report = SyncReport {
        pages: 0,
        updated: 0,
        imported: 0,
        unchanged: 0,
    };
    let mut after: Option<String> = None;
    while report.pages < MAX_SYNC_PAGES {
        let page = provider
            .list_templates(&credentials, after.as_deref())
            .await
            .map_err(AppError::from)?;
        report.pages += 1;
        for remote in &page.templates {
            sync_one(state, scope, remote, &mut report).await?;
        }
        match page.next_after {
            Some(next) if !page.templates.is_empty() => after = Some(next),
            _ => break,
        }
    }
    Ok(report)
}

async fn sync_one(
    state: &AppState,
    scope: &Scope,
    remote: &RemoteTemplate,
    report: &mut SyncReport,
) -> AppResult<()> {
    let status = known_status(&remote.status).unwrap_or(PENDING);
    let local = match_template(
        &state.db,
        scope.project_id,
        &remote.meta_id,
        Some(&remote.name),
        Some(&remote.language),
    )
    .await?;
    let now = Utc::now();
    match local {
        Some(local) => {
            let reason = remote.rejected_reason.clone().filter(|r| r != "NONE");
            let category = remote.category.to_uppercase();
            if local.status == status
                && local.category == category
                && local.rejection_reason == reason
                && local.meta_template_id.as_deref() == Some(remote.meta_id.as_str())
            {
                report.unchanged += 1;
                return Ok(());
            }
            let mut active: template::ActiveModel = local.clone().into();
            if local.category != category {
                active.previous_category = Set(Some(local.category.clone()));
                active.category = Set(category);
            }
            active.status = Set(status.into());
            active.rejection_reason = Set(reason);
            active.meta_template_id = Set(Some(remote.meta_id.clone()));
            active.updated_at = Set(now);
            active.update(&state.db).await?;
            report.updated += 1;
        }
        None => {
            let Some((components, format)) = meta_shape::from_meta_components(&remote.components)
            else {
                return Ok(());
            };
            let format = match remote.parameter_format.as_deref() {
                Some(raw) => format_of(&raw.to_uppercase()),
                None => format,
            };
            template::ActiveModel {
                id: Set(Uuid::now_v7()),
                project_id: Set(scope.project_id),
                name: Set(remote.name.clone()),
                language: Set(remote.language.clone()),
                category: Set(remote.category.to_uppercase()),
                parameter_format: Set(format_str(format).into()),
                components: Set(serde_json::to_string(&components).map_err(AppError::internal)?),
                status: Set(status.into()),
                meta_template_id: Set(Some(remote.meta_id.clone())),
                rejection_reason: Set(remote.rejected_reason.clone().filter(|r| r != "NONE")),
                previous_category: Set(None),
                status_changed_at: Set(None),
                category_changed_at: Set(None),
                submitted_at: Set(None),
                created_by: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&state.db)
            .await?;
            report.imported += 1;
        }
    }
    Ok(())
}

/// The project's template Meta means: by Meta's id, else by name and language.
async fn match_template<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    meta_id: &str,
    name: Option<&str>,
    language: Option<&str>,
) -> AppResult<Option<template::Model>> {
    let by_id = template::Entity::find()
        .filter(template::Column::ProjectId.eq(project_id))
        .filter(template::Column::MetaTemplateId.eq(meta_id))
        .one(conn)
        .await?;
    if by_id.is_some() {
        return Ok(by_id);
    }
    let (Some(name), Some(language)) = (name, language) else {
        return Ok(None);
    };
    Ok(template::Entity::find()
        .filter(template::Column::ProjectId.eq(project_id))
        .filter(template::Column::Name.eq(name))
        .filter(template::Column::Language.eq(language))
        .one(conn)
        .await?)
}

/// Applies Meta's review outcome. `Ok(Err(note))` when the template is unknown here; the
/// update is skipped when a later one was applied already (webhooks come out of order).
pub async fn apply_status_update<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    update: &TemplateStatusUpdate,
    at: Option<DateTime<Utc>>,
) -> AppResult<Result<Option<template::Model>, String>> {
    let local = match updated_template(
        conn,
        project_id,
        &update.message_template_id,
        update.message_template_name.as_deref(),
        update.message_template_language.as_deref(),
    )
    .await?
    {
        Ok(local) => local,
        Err(note) => return Ok(Err(note)),
    };
    let Some(status) = known_status(&update.event) else {
        return Ok(Err(format!(
            "template event {:?} is not handled",
            update.event
        )));
    };
    if is_stale(local.status_changed_at, at) {
        return Ok(Ok(None));
    }
    let mut active: template::ActiveModel = local.clone().into();
    active.status = Set(status.into());
    active.rejection_reason = Set(update
        .reason
        .clone()
        .filter(|r| r != "NONE" && status == REJECTED));
    active.meta_template_id = Set(Some(update.message_template_id.clone()));
    if let Some(category) = &update.message_template_category
        && category.to_uppercase() != local.category
        && !is_stale(local.category_changed_at, at)
    {
        active.previous_category = Set(Some(local.category.clone()));
        active.category = Set(category.to_uppercase());
        active.category_changed_at = Set(at.or(local.category_changed_at));
    }
    active.status_changed_at = Set(at.or(local.status_changed_at));
    active.updated_at = Set(Utc::now());
    Ok(Ok(Some(active.update(conn).await?)))
}

/// Applies Meta's re-categorisation of a template.
pub async fn apply_category_update<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    update: &TemplateCategoryUpdate,
    at: Option<DateTime<Utc>>,
) -> AppResult<Result<Option<template::Model>, String>> {
    let local = match updated_template(
        conn,
        project_id,
        &update.message_template_id,
        update.message_template_name.as_deref(),
        update.message_template_language.as_deref(),
    )
    .await?
    {
        Ok(local) => local,
        Err(note) => return Ok(Err(note)),
    };
    let category = update.new_category.to_uppercase();
    if local.category == category || is_stale(local.category_changed_at, at) {
        return Ok(Ok(None));
    }
    let mut active: template::ActiveModel = local.clone().into();
    active.previous_category = Set(Some(
        update
            .previous_category
            .clone()
            .map(|c| c.to_uppercase())
            .unwrap_or(local.category.clone()),
    ));
    active.category = Set(category);
    active.meta_template_id = Set(Some(update.message_template_id.clone()));
    active.category_changed_at = Set(at.or(local.category_changed_at));
    active.updated_at = Set(Utc::now());
    Ok(Ok(Some(active.update(conn).await?)))
}

/// Whether a change made at `at` is older than the one applied at `applied`.
fn is_stale(applied: Option<DateTime<Utc>>, at: Option<DateTime<Utc>>) -> bool {
    matches!((applied, at), (Some(applied), Some(at)) if at < applied)
}

/// The template a webhook update is about, or a note saying it is unknown here.
async fn updated_template<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    meta_id: &str,
    name: Option<&str>,
    language: Option<&str>,
) -> AppResult<Result<template::Model, String>> {
    Ok(match_template(conn, project_id, meta_id, name, language)
        .await?
        .ok_or_else(|| {
            format!(
                "template {meta_id} ({}) is not known to the project",
                name.unwrap_or("no name")
            )
        }))
}

pub async fn find(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<template::Model> {
    template::Entity::find_by_id(id)
        .filter(template::Column::ProjectId.eq(scope.project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("template"))
}

pub async fn list(
    state: &AppState,
    scope: &Scope,
    status: Option<&str>,
    page: PageRequest,
) -> AppResult<Page<template::Model>> {
    let mut select =
        template::Entity::find().filter(template::Column::ProjectId.eq(scope.project_id));
    if let Some(status) = status {
        select = select.filter(template::Column::Status.eq(status));
    }
    pagination::fetch(&state.db, select, template::Column::Id, page).await
}

/// Renders an approved template for a contact: each value a literal or the contact's
/// own (`$FirstName`, `$City`...), with fallbacks.
pub async fn render_for_contact(
    state: &AppState,
    scope: &Scope,
    template_id: Uuid,
    contact: &contact::Model,
    parameters: &[ParameterInput],
    header_media_link: Option<String>,
) -> AppResult<Rendered> {
    let model = find(state, scope, template_id).await?;
    let values = contact_values(&state.db, contact).await?;
    render_loaded(&model, &values, parameters, header_media_link)
}

/// [`render_for_contact`] with the template and the contact's values already read (a
/// campaign renders one template for many contacts).
pub fn render_loaded(
    model: &template::Model,
    values: &ContactValues,
    parameters: &[ParameterInput],
    header_media_link: Option<String>,
) -> AppResult<Rendered> {
    if model.status != APPROVED {
        return Err(AppError::Refused {
            code: ErrorCode::TemplateNotApproved,
            message: format!(
                "only approved templates can be sent; {} is {}",
                model.name, model.status
            ),
        });
    }
    let components = components_of(model)?;
    let format = format_of(&model.parameter_format);
    let slots = meta_shape::slots(&components, format);
    let wanted =
        usize::from(slots.header_text.is_some()) + slots.body.len() + slots.url_buttons.len();
    if parameters.len() != wanted {
        return Err(AppError::bad_input(
            "parameters",
            format!(
                "{} takes {wanted} parameter values ({} header, {} body, {} URL button), \
                 {} were given",
                model.name,
                usize::from(slots.header_text.is_some()),
                slots.body.len(),
                slots.url_buttons.len(),
                parameters.len()
            ),
        ));
    }
    let mut resolved = Vec::with_capacity(parameters.len());
    for (index, parameter) in parameters.iter().enumerate() {
        let source = render::parse(&parameter.value, parameter.fallback.as_deref());
        let value = render::resolve(&source, values).map_err(|missing| {
            AppError::bad_input("parameters", format!("parameter {}: {missing}", index + 1))
        })?;
        if value.trim().is_empty() {
            return Err(AppError::bad_input(
                "parameters",
                format!(
                    "parameter {} is empty, and WhatsApp refuses empty parameters",
                    index + 1
                ),
            ));
        }
        resolved.push(value);
    }
    let mut resolved = resolved.into_iter();
    let header_text = if slots.header_text.is_some() {
        resolved.next()
    } else {
        None
    };
    let body: Vec<String> = resolved.by_ref().take(slots.body.len()).collect();
    let url_suffixes: Vec<String> = resolved.collect();
    let header_media_link = match (slots.header_media, header_media_link) {
        (Some(_), Some(link)) => Some(link),
        (Some(format), None) => {
            return Err(AppError::bad_input(
                "headerMediaLink",
                format!(
                    "{} has a {} header: give the link of the media to send",
                    model.name,
                    header_name(format)
                ),
            ));
        }
        (None, _) => None,
    };
    let send_values = SendValues {
        header_text,
        header_media_link,
        body,
        url_suffixes,
    };
    let url_buttons = slots
        .url_buttons
        .iter()
        .zip(&send_values.url_suffixes)
        .filter_map(|(&index, suffix)| match components.buttons.get(index) {
            Some(super::model::Button::Url { url, .. }) => Some((
                index,
                url.trim_end_matches(validate::URL_SUFFIX).to_owned(),
                suffix.clone(),
            )),
            _ => None,
        })
        .collect();
    Ok(Rendered {
        category: model.category.clone(),
        url_buttons,
        components: meta_shape::send_components(&slots, format, &send_values),
        preview: meta_shape::render_preview(&components, format, &send_values),
        name: model.name.clone(),
        language: model.language.clone(),
    })
}

/// Checks a template's values before a campaign sends it to many contacts: the count, that
/// each placeholder names a built-in (`$Name`, `$FirstName`, `$LastName`, `$Phone`) or an
/// attribute of the project, that literals are not empty, and the header media link.
pub async fn check_parameters(
    state: &AppState,
    scope: &Scope,
    model: &template::Model,
    parameters: &[ParameterInput],
    header_media_link: Option<&str>,
) -> AppResult<()> {
    let components = components_of(model)?;
    let format = format_of(&model.parameter_format);
    let slots = meta_shape::slots(&components, format);
    let wanted =
        usize::from(slots.header_text.is_some()) + slots.body.len() + slots.url_buttons.len();
    if parameters.len() != wanted {
        return Err(AppError::bad_input(
            "parameters",
            format!(
                "{} takes {wanted} parameter values ({} header, {} body, {} URL button), \
                 {} were given",
                model.name,
                usize::from(slots.header_text.is_some()),
                slots.body.len(),
                slots.url_buttons.len(),
                parameters.len()
            ),
        ));
    }
    let known: std::collections::HashSet<String> = attribute::Entity::find()
        .filter(attribute::Column::ProjectId.eq(scope.project_id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|a| a.key_lower)
        .collect();
    for (index, parameter) in parameters.iter().enumerate() {
        match render::parse(&parameter.value, parameter.fallback.as_deref()) {
            render::ParamSource::Literal(text) if text.trim().is_empty() => {
                return Err(AppError::bad_input(
                    "parameters",
                    format!(
                        "parameter {} is empty, and WhatsApp refuses empty parameters",
                        index + 1
                    ),
                ));
            }
            render::ParamSource::Literal(_) => {}
            render::ParamSource::Placeholder { key, .. } => {
                let key = key.to_lowercase();
                let builtin = matches!(key.as_str(), "name" | "firstname" | "lastname" | "phone");
                if !builtin && !known.contains(&key) {
                    return Err(AppError::bad_input(
                        "parameters",
                        format!(
                            "parameter {}: ${key} is neither a contact field nor an attribute of the project",
                            index + 1
                        ),
                    ));
                }
            }
        }
    }
    if let (Some(format), None) = (slots.header_media, header_media_link) {
        return Err(AppError::bad_input(
            "headerMediaLink",
            format!(
                "{} has a {} header: give the link of the media to send",
                model.name,
                header_name(format)
            ),
        ));
    }
    Ok(())
}

fn header_name(format: HeaderFormat) -> &'static str {
    match format {
        HeaderFormat::Text => "text",
        HeaderFormat::Image => "image",
        HeaderFormat::Video => "video",
        HeaderFormat::Document => "document",
    }
}

async fn contact_values<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
) -> AppResult<ContactValues> {
    let attributes: HashMap<String, String> = contact_attribute::Entity::find()
        .filter(contact_attribute::Column::ContactId.eq(contact.id))
        .find_also_related(attribute::Entity)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|(value, definition)| Some((definition?.key_lower, value.value)))
        .collect();
    Ok(ContactValues {
        name: contact.name.clone(),
        phone: contact.phone.clone(),
        attributes,
    })
}
