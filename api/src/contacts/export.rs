//! Contacts matching a filter as CSV, streamed: pages of rows are read by keyset and
//! written out as they come, so memory stays flat whatever the number of contacts.

use std::collections::HashMap;

use axum::body::Bytes;
use chrono::Utc;
use futures::Stream;
use parley_entity::{attribute, contact, contact_attribute, contact_tag, tag};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::filter::{self, ContactFilter};
use crate::{errors::AppError, state::AppState};

const PAGE: u64 = 5_000;

/// Spreadsheets run cells starting with these as formulas: such cells get a leading `'`.
pub fn escape_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The CSV, chunk by chunk. Errors end the stream (the client sees a cut download).
pub fn stream(
    state: AppState,
    project_id: Uuid,
    filter: ContactFilter,
) -> impl Stream<Item = Result<Bytes, AppError>> {
    async_stream::try_stream! {
        let now = Utc::now();
        let definitions: Vec<attribute::Model> = attribute::Entity::find()
            .filter(attribute::Column::ProjectId.eq(project_id))
            .order_by_asc(attribute::Column::KeyLower)
            .all(&state.db)
            .await?;
        let tag_names: HashMap<Uuid, String> = tag::Entity::find()
            .filter(tag::Column::ProjectId.eq(project_id))
            .all(&state.db)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect();
        let mut header = vec![
            "Name", "Phone", "BSUID", "Tags", "Source", "Opted In", "Incoming Blocked", "State",
            "Last Active At", "Created At",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        header.extend(definitions.iter().map(|d| d.key.clone()));
        yield csv_line(&header)?;

        let mut after: Option<Uuid> = None;
        loop {
            let mut select = filter::select(project_id, &filter, now)?;
            if let Some(last) = after {
                select = select.filter(contact::Column::Id.gt(last));
            }
            let page = select.order_by_asc(contact::Column::Id).limit(PAGE).all(&state.db).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            // Pages go by id, so the page's tags and values are a range of the tables'
            // primary keys (contact_id first): one range scan each instead of a list of
            // thousands of ids. Rows of contacts the filter left out are skipped below.
            let (first, last) = (page[0].id, last.id);
            let mut tags: HashMap<Uuid, Vec<&str>> = HashMap::new();
            let links = contact_tag::Entity::find()
                .filter(contact_tag::Column::ProjectId.eq(project_id))
                .filter(contact_tag::Column::ContactId.gte(first))
                .filter(contact_tag::Column::ContactId.lte(last))
                .all(&state.db)
                .await?;
            for link in &links {
                if let Some(name) = tag_names.get(&link.tag_id) {
                    tags.entry(link.contact_id).or_default().push(name);
                }
            }
            let mut values: HashMap<(Uuid, Uuid), String> = HashMap::new();
            for v in contact_attribute::Entity::find()
                .filter(contact_attribute::Column::ProjectId.eq(project_id))
                .filter(contact_attribute::Column::ContactId.gte(first))
                .filter(contact_attribute::Column::ContactId.lte(last))
                .all(&state.db)
                .await?
            {
                values.insert((v.contact_id, v.attribute_id), v.value);
            }
            let mut chunk = Vec::with_capacity(page.len() * 96);
            {
                let mut writer = csv::Writer::from_writer(&mut chunk);
                for c in &page {
                    let mut names = tags.remove(&c.id).unwrap_or_default();
                    names.sort_unstable();
                    let mut row: Vec<String> = vec![
                        c.name.clone(),
                        c.phone.clone().unwrap_or_default(),
                        c.bsuid.clone().unwrap_or_default(),
                        names.join(" | "),
                        c.source.clone(),
                        c.opted_in.to_string(),
                        c.incoming_blocked.to_string(),
                        c.state.clone(),
                        c.last_active_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        c.created_at.to_rfc3339(),
                    ];
                    row.extend(definitions.iter().map(|d| values.remove(&(c.id, d.id)).unwrap_or_default()));
                    writer
                        .write_record(row.iter().map(|cell| escape_formula(cell)).collect::<Vec<_>>().iter().map(|c| c.as_ref()))
                        .map_err(AppError::internal)?;
                }
                writer.flush().map_err(AppError::internal)?;
            }
            yield Bytes::from(chunk);
            if (page.len() as u64) < PAGE {
                break;
            }
        }
    }
}

fn csv_line(cells: &[String]) -> Result<Bytes, AppError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(
            cells
                .iter()
                .map(|c| escape_formula(c))
                .collect::<Vec<_>>()
                .iter()
                .map(|c| c.as_ref()),
        )
        .map_err(AppError::internal)?;
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_defused() {
        assert_eq!(escape_formula("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(escape_formula("+91981"), "'+91981");
        assert_eq!(escape_formula("-1"), "'-1");
        assert_eq!(escape_formula("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(escape_formula("Asha"), "Asha");
        assert_eq!(escape_formula(""), "");
    }
}
