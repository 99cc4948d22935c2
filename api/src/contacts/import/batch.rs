//! Applies one batch of parsed rows in the caller's transaction, with multi-row statements:
//! one lookup of existing phones, one upsert of contacts, one of tags, one of attributes,
//! journey entries and the row issues.

use std::collections::HashMap;

use chrono::Utc;
use parley_entity::{contact, contact_attribute, contact_tag, import_issue};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::OnConflict,
};
use serde_json::json;
use uuid::Uuid;

use super::row::ParsedRow;
use crate::{
    contacts::{
        journey::{self, Actor, Entry},
        service::{SOURCE_IMPORT, STATE_ASSISTANT},
    },
    errors::AppResult,
};

/// Rows per multi-row statement: 16 columns × 1,000 stays under both backends' limits.
const CHUNK: usize = 1_000;

/// A row of the file and what became of it.
pub enum RowResult {
    Applied {
        row: u64,
        parsed: ParsedRow,
        cells: Vec<String>,
    },
    Failed {
        row: u64,
        reason: String,
        cells: Vec<String>,
    },
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub added: i64,
    pub updated: i64,
    pub failed: i64,
    pub warnings: i64,
}

/// A batch with its rows merged by phone and its issues collected, ready to write.
pub struct Prepared {
    /// One entry per phone, with the row number of its first row.
    pub merged: Vec<(u64, ParsedRow)>,
    /// Rows whose phone an earlier row of the batch had: each updated that contact.
    pub repeats: i64,
    pub issues: Vec<Issue>,
    pub failed: i64,
    pub warnings: i64,
    /// An id for each merged row's contact, should the row create one: taken in file order
    /// here, so that contacts list in the file's order even when batches are written at once.
    pub new_ids: Vec<Uuid>,
}

pub struct Issue {
    pub row: u64,
    pub severity: &'static str,
    pub reason: String,
    /// The row's cells as a JSON array.
    pub cells: String,
}

pub fn prepare(rows: Vec<RowResult>) -> Prepared {
    let mut prepared = Prepared {
        merged: Vec::new(),
        repeats: 0,
        issues: Vec::new(),
        failed: 0,
        warnings: 0,
        new_ids: Vec::new(),
    };
    let mut by_phone: HashMap<String, usize> = HashMap::new();
    let cells_json =
        |cells: &[String]| serde_json::to_string(cells).unwrap_or_else(|_| "[]".into());
    for result in rows {
        match result {
            RowResult::Failed { row, reason, cells } => {
                prepared.failed += 1;
                prepared.issues.push(Issue {
                    row,
                    severity: "ERROR",
                    reason,
                    cells: cells_json(&cells),
                });
            }
            RowResult::Applied { row, parsed, cells } => {
                for warning in &parsed.warnings {
                    prepared.warnings += 1;
                    prepared.issues.push(Issue {
                        row,
                        severity: "WARNING",
                        reason: warning.clone(),
                        cells: cells_json(&cells),
                    });
                }
                match by_phone.get(&parsed.phone) {
                    Some(&i) => {
                        prepared.merged[i].1.merge(parsed);
                        prepared.repeats += 1;
                    }
                    None => {
                        by_phone.insert(parsed.phone.clone(), prepared.merged.len());
                        prepared.merged.push((row, parsed));
                    }
                }
            }
        }
    }
    prepared.new_ids = prepared.merged.iter().map(|_| Uuid::now_v7()).collect();
    prepared
}

/// Writes a batch with sea-orm's multi-row statements (SQLite, and any backend).
pub async fn apply<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    job_id: Uuid,
    prepared: Prepared,
) -> AppResult<Counts> {
    let Prepared {
        merged,
        repeats,
        issues,
        failed,
        warnings,
        ..
    } = prepared;
    let mut counts = Counts {
        failed,
        warnings,
        ..Counts::default()
    };
    let issues: Vec<import_issue::ActiveModel> = issues
        .into_iter()
        .map(|i| issue(project_id, job_id, i))
        .collect();
    let existing: HashMap<String, contact::Model> = if merged.is_empty() {
        HashMap::new()
    } else {
        contact::Entity::find()
            .filter(contact::Column::ProjectId.eq(project_id))
            .filter(contact::Column::Phone.is_in(merged.iter().map(|(_, p)| p.phone.clone())))
            .all(conn)
            .await?
            .into_iter()
            .filter_map(|c| c.phone.clone().map(|p| (p, c)))
            .collect()
    };

    let now = Utc::now();
    let mut contacts = Vec::with_capacity(merged.len());
    let mut tag_rows = Vec::new();
    let mut attribute_rows = Vec::new();
    let mut entries = Vec::with_capacity(merged.len());
    for (row, parsed) in &merged {
        let (model, created) = match existing.get(&parsed.phone) {
            Some(current) => {
                let mut c = current.clone();
                c.name = parsed.name.clone();
                if let Some(source) = &parsed.source {
                    c.source = source.clone();
                }
                if parsed.first_message_tag.is_some() {
                    c.first_message_tag_id = parsed.first_message_tag;
                }
                c.updated_at = now;
                (c, false)
            }
            None => {
                let source = parsed
                    .source
                    .clone()
                    .unwrap_or_else(|| SOURCE_IMPORT.to_owned());
                (
                    contact::Model {
                        id: Uuid::now_v7(),
                        project_id,
                        name: parsed.name.clone(),
                        phone: Some(parsed.phone.clone()),
                        bsuid: None,
                        source: source.clone(),
                        first_message_tag_id: parsed.first_message_tag,
                        opted_in: true,
                        opted_in_at: Some(now),
                        opted_in_source: Some(source),
                        incoming_blocked: false,
                        state: STATE_ASSISTANT.to_owned(),
                        last_active_at: None,
                        created_at: now,
                        updated_at: now,
                    },
                    true,
                )
            }
        };
        if created {
            counts.added += 1;
        } else {
            counts.updated += 1;
        }
        for tag_id in &parsed.tag_ids {
            tag_rows.push(contact_tag::ActiveModel {
                contact_id: Set(model.id),
                tag_id: Set(*tag_id),
                project_id: Set(project_id),
                added_at: Set(now),
                added_by: Set(Some(job_id)),
            });
        }
        for (attribute_id, value) in &parsed.attributes {
            attribute_rows.push(contact_attribute::ActiveModel {
                contact_id: Set(model.id),
                attribute_id: Set(*attribute_id),
                project_id: Set(project_id),
                value: Set(value.clone()),
            });
        }
        entries.push(Entry::new(
            model.id,
            "contact.imported",
            json!({ "jobId": job_id, "row": row, "created": created }),
        ));
        contacts.push(model);
    }
    // A repeated phone in the same batch updated the contact its first row wrote.
    counts.updated += repeats;

    for chunk in contacts.chunks(CHUNK) {
        contact::Entity::insert_many(chunk.iter().cloned().map(active))
            .on_conflict(
                OnConflict::column(contact::Column::Id)
                    .update_columns([
                        contact::Column::Name,
                        contact::Column::Source,
                        contact::Column::FirstMessageTagId,
                        contact::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    for chunk in tag_rows.chunks(CHUNK) {
        contact_tag::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(
                OnConflict::columns([contact_tag::Column::ContactId, contact_tag::Column::TagId])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    for chunk in attribute_rows.chunks(CHUNK) {
        contact_attribute::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(
                OnConflict::columns([
                    contact_attribute::Column::ContactId,
                    contact_attribute::Column::AttributeId,
                ])
                .update_column(contact_attribute::Column::Value)
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    for chunk in issues.chunks(CHUNK) {
        import_issue::Entity::insert_many(chunk.iter().cloned())
            .exec_without_returning(conn)
            .await?;
    }
    journey::record_at(conn, project_id, Actor::Import(job_id), entries, now).await?;
    Ok(counts)
}

fn active(c: contact::Model) -> contact::ActiveModel {
    contact::ActiveModel {
        id: Set(c.id),
        project_id: Set(c.project_id),
        name: Set(c.name),
        phone: Set(c.phone),
        bsuid: Set(c.bsuid),
        source: Set(c.source),
        first_message_tag_id: Set(c.first_message_tag_id),
        opted_in: Set(c.opted_in),
        opted_in_at: Set(c.opted_in_at),
        opted_in_source: Set(c.opted_in_source),
        incoming_blocked: Set(c.incoming_blocked),
        state: Set(c.state),
        last_active_at: Set(c.last_active_at),
        created_at: Set(c.created_at),
        updated_at: Set(c.updated_at),
    }
}

fn issue(project_id: Uuid, job_id: Uuid, i: Issue) -> import_issue::ActiveModel {
    import_issue::ActiveModel {
        id: Set(Uuid::now_v7()),
        job_id: Set(job_id),
        project_id: Set(project_id),
        row_number: Set(i.row as i64),
        severity: Set(i.severity.to_owned()),
        reason: Set(i.reason),
        raw_row: Set(i.cells),
    }
}
