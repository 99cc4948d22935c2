//! Which number a project sends from, and through which provider.

use chrono::Utc;
use parley_entity::whatsapp_account;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::provider::Account;
use crate::{
    auth::Scope,
    errors::{AppError, AppResult, ErrorCode},
    state::AppState,
    validate,
};

pub const PROVIDER_META: &str = "meta";
pub const PROVIDER_SANDBOX: &str = "sandbox";

/// Cloud API credentials as an owner enters them.
pub struct Credentials {
    pub waba_id: String,
    pub phone_number_id: String,
    pub display_phone_number: Option<String>,
    pub access_token: String,
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
}

/// The project's account; a sandbox one is made on first use when the project has none
/// (and the sandbox is on).
pub async fn for_project<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    project_id: Uuid,
) -> AppResult<whatsapp_account::Model> {
    if let Some(account) = whatsapp_account::Entity::find_by_id(project_id)
        .one(conn)
        .await?
    {
        return Ok(account);
    }
    if !state.settings.whatsapp.sandbox_enabled {
        return Err(AppError::Refused {
            code: ErrorCode::WhatsAppNotConnected,
            message: "connect a WhatsApp Business number (connectWhatsApp) before sending".into(),
        });
    }
    let id = project_id.simple();
    let now = Utc::now();
    let sandbox = whatsapp_account::ActiveModel {
        project_id: Set(project_id),
        provider: Set(PROVIDER_SANDBOX.into()),
        waba_id: Set(format!("sandbox-waba-{id}")),
        phone_number_id: Set(format!("sandbox-{id}")),
        display_phone_number: Set(Some("+1 555 010 0000".into())),
        access_token: Set(None),
        app_secret: Set(None),
        verify_token: Set(None),
        messaging_limit: Set(None),
        throughput_per_second: Set(80),
        created_at: Set(now),
        updated_at: Set(now),
    };
    // Two first sends at once both try; the loser reads the winner's row.
    let _ = whatsapp_account::Entity::insert(sandbox)
        .on_conflict(
            sea_orm::sea_query::OnConflict::column(whatsapp_account::Column::ProjectId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    whatsapp_account::Entity::find_by_id(project_id)
        .one(conn)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("the sandbox account vanished")))
}

/// What a provider needs to act for this account.
pub fn provider_account(model: &whatsapp_account::Model) -> Account {
    Account {
        project_id: model.project_id,
        waba_id: model.waba_id.clone(),
        phone_number_id: model.phone_number_id.clone(),
        access_token: model.access_token.clone().unwrap_or_default(),
    }
}

/// Connects the project to its Cloud API number (or replaces the credentials).
pub async fn connect(
    state: &AppState,
    scope: &Scope,
    input: Credentials,
) -> AppResult<whatsapp_account::Model> {
    let waba_id = meta_id("wabaId", &input.waba_id)?;
    let phone_number_id = meta_id("phoneNumberId", &input.phone_number_id)?;
    let access_token = validate::text("accessToken", &input.access_token, 4096)?;
    let app_secret = input
        .app_secret
        .map(|s| validate::text("appSecret", &s, 256))
        .transpose()?;
    let verify_token = input
        .verify_token
        .map(|s| validate::text("verifyToken", &s, 128))
        .transpose()?;
    let display = input
        .display_phone_number
        .map(|s| validate::text("displayPhoneNumber", &s, 32))
        .transpose()?;
    let taken = whatsapp_account::Entity::find()
        .filter(whatsapp_account::Column::PhoneNumberId.eq(&phone_number_id))
        .filter(whatsapp_account::Column::ProjectId.ne(scope.project_id))
        .one(&state.db)
        .await?;
    if taken.is_some() {
        return Err(AppError::Conflict(
            "this phone number is connected to another project already".into(),
        ));
    }
    let now = Utc::now();
    let existing = whatsapp_account::Entity::find_by_id(scope.project_id)
        .one(&state.db)
        .await?;
    let is_new = existing.is_none();
    let mut active = match existing {
        Some(model) => model.into(),
        None => whatsapp_account::ActiveModel {
            project_id: Set(scope.project_id),
            created_at: Set(now),
            ..Default::default()
        },
    };
    active.provider = Set(PROVIDER_META.into());
    active.waba_id = Set(waba_id);
    active.phone_number_id = Set(phone_number_id);
    active.display_phone_number = Set(display);
    active.access_token = Set(Some(access_token));
    active.app_secret = Set(app_secret);
    active.verify_token = Set(verify_token);
    active.updated_at = Set(now);
    let saved = if is_new {
        active.insert(&state.db).await
    } else {
        active.update(&state.db).await
    };
    saved.map_err(|e| {
        if validate::is_unique_violation(&e) {
            AppError::Conflict("this phone number is connected to another project already".into())
        } else {
            e.into()
        }
    })
}

pub async fn find(state: &AppState, scope: &Scope) -> AppResult<Option<whatsapp_account::Model>> {
    Ok(whatsapp_account::Entity::find_by_id(scope.project_id)
        .one(&state.db)
        .await?)
}

/// The accounts a webhook's entries name: by phone number id and by WABA id.
pub async fn by_meta_ids<C: ConnectionTrait>(
    conn: &C,
    phone_number_ids: &[String],
    waba_ids: &[String],
) -> AppResult<Vec<whatsapp_account::Model>> {
    if phone_number_ids.is_empty() && waba_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(whatsapp_account::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(whatsapp_account::Column::PhoneNumberId.is_in(phone_number_ids.to_vec()))
                .add(whatsapp_account::Column::WabaId.is_in(waba_ids.to_vec())),
        )
        .all(conn)
        .await?)
}

/// Whether any project's verify token (or the server's) is `token`.
pub async fn verify_token_known(state: &AppState, token: &str) -> AppResult<bool> {
    use secrecy::ExposeSecret;
    if let Some(global) = &state.settings.whatsapp.verify_token
        && constant_time_eq(global.expose_secret().as_bytes(), token.as_bytes())
    {
        return Ok(true);
    }
    let found = whatsapp_account::Entity::find()
        .filter(whatsapp_account::Column::VerifyToken.eq(token))
        .one(&state.db)
        .await?;
    Ok(found.is_some())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn meta_id(field: &'static str, raw: &str) -> AppResult<String> {
    let value = raw.trim();
    if value.is_empty() || value.len() > 64 || !value.chars().all(|c| c.is_ascii_digit()) {
        return Err(AppError::bad_input(
            field,
            "Meta's ids are numbers, as shown in WhatsApp Manager",
        ));
    }
    Ok(value.to_owned())
}
