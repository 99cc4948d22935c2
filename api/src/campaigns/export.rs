//! A campaign's recipients as CSV: who, where they got to, when, and why not.

use std::collections::HashMap;

use parley_entity::{campaign_recipient, contact};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::{
    contacts::export::escape_formula,
    errors::{AppError, AppResult},
};

const HEADER: [&str; 13] = [
    "name",
    "phone",
    "status",
    "skip_reason",
    "error_code",
    "error_title",
    "failure_group",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "replied_at",
    "clicked_at",
];

pub async fn recipients_csv<C: ConnectionTrait>(
    conn: &C,
    rows: &[campaign_recipient::Model],
) -> AppResult<String> {
    let mut contacts: HashMap<uuid::Uuid, contact::Model> = HashMap::new();
    for chunk in rows.chunks(1_000) {
        let found = contact::Entity::find()
            .filter(contact::Column::Id.is_in(chunk.iter().map(|r| r.contact_id)))
            .all(conn)
            .await?;
        contacts.extend(found.into_iter().map(|c| (c.id, c)));
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(HEADER).map_err(AppError::internal)?;
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for r in rows {
        let who = contacts.get(&r.contact_id);
        let record = [
            escape_formula(who.map_or("", |c| c.name.as_str())).into_owned(),
            who.and_then(|c| c.phone.clone()).unwrap_or_default(),
            r.status.clone(),
            r.skip_reason.clone().unwrap_or_default(),
            r.error_code.map(|c| c.to_string()).unwrap_or_default(),
            escape_formula(r.error_title.as_deref().unwrap_or("")).into_owned(),
            r.failure_group.clone().unwrap_or_default(),
            time(r.sent_at),
            time(r.delivered_at.or(r.read_at)),
            time(r.read_at),
            time(r.failed_at),
            time(r.replied_at),
            time(r.clicked_at),
        ];
        out.write_record(&record).map_err(AppError::internal)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
    String::from_utf8(bytes).map_err(AppError::internal)
}
