//! Click tracking (pro plan): a campaign template's URL button whose URL is this server's
//! `{PUBLIC_URL}/r/{{1}}` gets, per recipient, a token as its suffix; the parameter value
//! given for the button (an http(s) URL) is where `/r/{token}` redirects, after recording
//! the click (once per recipient).

use axum::{
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use parley_entity::{campaign_recipient, tracked_link};
use rand::Rng;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{errors::AppResult, events, graphql::http::HttpState};

/// The path tracked links live under.
pub const PREFIX: &str = "/r/";

/// Replaces the suffix of each tracked URL button with a new token and records where it
/// leads. `buttons` are (button index, the template's URL before the suffix, the suffix).
#[allow(clippy::too_many_arguments)]
pub async fn track<C: ConnectionTrait>(
    conn: &C,
    public_url: &str,
    project_id: Uuid,
    campaign_id: Uuid,
    contact_id: Uuid,
    buttons: &[(usize, String, String)],
    components: &mut [Value],
) -> AppResult<usize> {
    let base = format!("{public_url}{PREFIX}");
    let mut tracked = 0;
    for (index, url, destination) in buttons {
        if *url != base
            || !(destination.starts_with("https://") || destination.starts_with("http://"))
        {
            continue;
        }
        let token: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(22)
            .map(char::from)
            .collect();
        tracked_link::ActiveModel {
            token: Set(token.clone()),
            project_id: Set(project_id),
            campaign_id: Set(campaign_id),
            contact_id: Set(contact_id),
            url: Set(destination.clone()),
            created_at: Set(Utc::now()),
        }
        .insert(conn)
        .await?;
        for component in components.iter_mut() {
            let button = index.to_string();
            if component["sub_type"] == "url" && component["index"].as_str() == Some(&button) {
                component["parameters"] = json!([{ "type": "text", "text": token }]);
            }
        }
        tracked += 1;
    }
    Ok(tracked)
}

/// `GET /r/{token}`: records the click and redirects.
pub async fn redirect(State(state): State<HttpState>, Path(token): Path<String>) -> Response {
    let app = &state.app;
    let found = match tracked_link::Entity::find_by_id(token).one(&app.db).await {
        Ok(Some(found)) => found,
        Ok(None) => return (StatusCode::NOT_FOUND, "unknown link").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "could not read a tracked link");
            return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
        }
    };
    if let Err(err) = record_click(app, &found).await {
        // The user still gets where they were going.
        tracing::warn!(error = %err, "could not record a click");
    }
    (StatusCode::FOUND, [(header::LOCATION, found.url)]).into_response()
}

async fn record_click(app: &crate::state::AppState, link: &tracked_link::Model) -> AppResult<()> {
    let now = app.settings.clock.now();
    let first = campaign_recipient::Entity::update_many()
        .col_expr(campaign_recipient::Column::ClickedAt, Expr::val(now).into())
        .filter(campaign_recipient::Column::CampaignId.eq(link.campaign_id))
        .filter(campaign_recipient::Column::ContactId.eq(link.contact_id))
        .filter(campaign_recipient::Column::ClickedAt.is_null())
        .exec(&app.db)
        .await?;
    if first.rows_affected == 1 {
        events::record_at(
            &app.db,
            link.project_id,
            "campaign.clicked",
            json!({ "campaignId": link.campaign_id, "contactId": link.contact_id }),
            now,
        )
        .await?;
        super::progress::publish(app, link.campaign_id).await;
    }
    Ok(())
}
