//! Files too big for a GraphQL response (contact exports, an import's failed rows) are
//! served at `/downloads/{token}`: a GraphQL mutation or field returns a link signed for
//! 15 minutes, which a browser can open without headers.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    contacts::{export, filter::ContactFilter, import},
    errors::AppError,
    state::AppState,
};

const AUDIENCE: &str = "parley-download";
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Download {
    ContactsExport {
        project_id: Uuid,
        filter: Box<ContactFilter>,
    },
    ImportFailedRows {
        project_id: Uuid,
        job_id: Uuid,
    },
}

pub struct Link {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

pub fn link(state: &AppState, download: &Download) -> Link {
    let value = serde_json::to_value(download).unwrap_or_default();
    let token = state.jwt.sign_value(AUDIENCE, LINK_TTL, value);
    Link {
        url: format!("/downloads/{token}"),
        expires_at: Utc::now() + LINK_TTL,
    }
}

pub async fn serve(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let download = state
        .jwt
        .verify_value(AUDIENCE, &token)
        .ok()
        .and_then(|v| serde_json::from_value::<Download>(v).ok());
    let Some(download) = download else {
        return (
            StatusCode::NOT_FOUND,
            "this download link is not valid or has expired",
        )
            .into_response();
    };
    match download {
        Download::ContactsExport { project_id, filter } => {
            let body = Body::from_stream(export::stream(state, project_id, *filter));
            csv_response(body, "contacts.csv")
        }
        Download::ImportFailedRows { project_id, job_id } => {
            match import::failed_rows_csv(&state, project_id, job_id).await {
                Ok(bytes) => csv_response(Body::from(bytes), "failed-rows.csv"),
                Err(AppError::NotFound(_)) => StatusCode::NOT_FOUND.into_response(),
                Err(err) => {
                    tracing::error!(error = ?err, "failed-rows download");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            }
        }
    }
}

fn csv_response(body: Body, file_name: &str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
