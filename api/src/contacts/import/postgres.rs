//! The PostgreSQL path for import batches. Each phone of a batch is resolved to its contact
//! once, by index lookups (an UPDATE of the existing contacts and an INSERT of the new
//! ones, both returning what they wrote), so no statement joins against the project's
//! whole contact table and a batch costs the same however large the table has grown.
//! Everything that hangs off a contact the batch created (tags, attribute values, journey
//! entry, analytics event) cannot conflict with anything and is COPYed straight into its
//! table; only existing contacts need ON CONFLICT statements. Semantics are those of
//! `batch::apply`.

use std::{
    collections::{HashMap, HashSet},
    fmt::Write,
};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sea_orm::sqlx::{self, PgConnection};
use uuid::Uuid;

use super::{
    batch::{Counts, Prepared},
    row::ParsedRow,
};
use crate::{
    contacts::service::{SOURCE_IMPORT, STATE_ASSISTANT},
    errors::{AppError, AppResult},
};

/// Existing contacts take the batch's values (empty cells leave their fields). Matched by
/// the unique (project_id, phone) index, one probe per phone.
const UPDATE_EXISTING: &str = "UPDATE contacts c SET name = s.name,
        source = COALESCE(s.source, c.source),
        first_message_tag_id = COALESCE(s.first_message_tag, c.first_message_tag_id),
        updated_at = $2
    FROM unnest($3::text[], $4::text[], $5::text[], $6::uuid[])
        AS s(phone, name, source, first_message_tag)
    WHERE c.project_id = $1 AND c.phone = s.phone
    RETURNING c.id, c.phone";

/// The rest are created; a phone another transaction created meanwhile is skipped (and
/// then updated as an existing contact).
const INSERT_NEW: &str = "INSERT INTO contacts (id, project_id, name, phone, bsuid, source,
        first_message_tag_id, opted_in, opted_in_at, opted_in_source, incoming_blocked, state,
        last_active_at, created_at, updated_at)
    SELECT s.id, $1, s.name, s.phone, NULL, COALESCE(s.source, $3), s.first_message_tag,
        true, $2, COALESCE(s.source, $3), false, $4, NULL, $2, $2
    FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::uuid[])
        AS s(id, phone, name, source, first_message_tag)
    ON CONFLICT (project_id, phone) DO NOTHING
    RETURNING id";

const LINK_EXISTING_TAGS: &str =
    "INSERT INTO contact_tags (contact_id, tag_id, project_id, added_at, added_by)
    SELECT t.contact_id, t.tag_id, $1, $2, $3 FROM unnest($4::uuid[], $5::uuid[]) AS t(contact_id, tag_id)
    ON CONFLICT (contact_id, tag_id) DO NOTHING";

const SET_EXISTING_ATTRIBUTES: &str =
    "INSERT INTO contact_attributes (contact_id, attribute_id, project_id, value)
    SELECT a.contact_id, a.attribute_id, $1, a.value
    FROM unnest($2::uuid[], $3::uuid[], $4::text[]) AS a(contact_id, attribute_id, value)
    ON CONFLICT (contact_id, attribute_id) DO UPDATE SET value = EXCLUDED.value";

/// A contact created between our UPDATE and INSERT is picked up by the next round; more
/// rounds than this mean the same phones keep being deleted and created under us.
const RESOLVE_ROUNDS: usize = 4;

/// The contact a merged row of the batch wrote.
#[derive(Clone, Copy)]
struct Resolved {
    id: Uuid,
    created: bool,
}

/// Appends one value in COPY's text format.
fn field(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// A timestamp in COPY's text format, to the microsecond like the bound parameters.
fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()
}

fn copy<'c>(
    conn: &'c mut PgConnection,
    statement: &'static str,
    data: String,
) -> BoxFuture<'c, AppResult<()>> {
    Box::pin(async move {
        if data.is_empty() {
            return Ok(());
        }
        let mut copy = conn.copy_in_raw(statement).await.map_err(db)?;
        copy.send(data.into_bytes()).await.map_err(db)?;
        copy.finish().await.map_err(db)?;
        Ok(())
    })
}

pub(super) fn db(err: sqlx::Error) -> AppError {
    // lock_not_available: the batch's bounded wait for another writer's rows ran out.
    if let Some(e) = err.as_database_error()
        && e.code().as_deref() == Some("55P03")
    {
        return AppError::Conflict(
            "the file's contacts were held by another change for longer than the import may \
             wait (IMPORT_LOCK_TIMEOUT_MS); nothing after its last reported progress was \
             applied, and the file can be imported again"
                .into(),
        );
    }
    // Kept as sqlx's error (not its text), so that a lost connection is told from a
    // failing statement (`UNAVAILABLE`, and the import waits for the database).
    AppError::from(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(err)))
}

/// Updates the existing contacts among `rows`; returns their ids by phone.
fn update_existing<'c>(
    conn: &'c mut PgConnection,
    project_id: Uuid,
    now: DateTime<Utc>,
    rows: &[&ParsedRow],
) -> BoxFuture<'c, AppResult<HashMap<String, Uuid>>> {
    let query = sqlx::query_as::<_, (Uuid, String)>(UPDATE_EXISTING)
        .bind(project_id)
        .bind(now)
        .bind(rows.iter().map(|p| p.phone.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.source.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.first_message_tag).collect::<Vec<_>>());
    Box::pin(async move {
        let updated = query.fetch_all(conn).await.map_err(db)?;
        Ok(updated.into_iter().map(|(id, phone)| (phone, id)).collect())
    })
}

/// Creates contacts for `rows` with the given ids; returns the ids it could create (a phone
/// taken meanwhile by another transaction is left out).
fn insert_new<'c>(
    conn: &'c mut PgConnection,
    project_id: Uuid,
    now: DateTime<Utc>,
    rows: &[(Uuid, &ParsedRow)],
) -> BoxFuture<'c, AppResult<HashSet<Uuid>>> {
    let query = sqlx::query_scalar::<_, Uuid>(INSERT_NEW)
        .bind(project_id)
        .bind(now)
        .bind(SOURCE_IMPORT)
        .bind(STATE_ASSISTANT)
        .bind(rows.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, p)| p.phone.clone())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|(_, p)| p.name.clone()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|(_, p)| p.source.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(_, p)| p.first_message_tag)
                .collect::<Vec<_>>(),
        );
    Box::pin(async move {
        let created = query.fetch_all(conn).await.map_err(db)?;
        Ok(created.into_iter().collect())
    })
}

/// Writes (creates or updates) the contact of every merged row; returns them in order.
async fn resolve(
    conn: &mut PgConnection,
    project_id: Uuid,
    now: DateTime<Utc>,
    merged: &[(u64, ParsedRow)],
    new_ids: &[Uuid],
) -> AppResult<Vec<Resolved>> {
    let mut resolved: Vec<Option<Resolved>> = vec![None; merged.len()];
    let mut pending: Vec<usize> = (0..merged.len()).collect();
    for _ in 0..RESOLVE_ROUNDS {
        if pending.is_empty() {
            break;
        }
        let rows: Vec<&ParsedRow> = pending.iter().map(|&i| &merged[i].1).collect();
        let existing = update_existing(&mut *conn, project_id, now, &rows).await?;
        pending.retain(|&i| match existing.get(&merged[i].1.phone) {
            Some(&id) => {
                resolved[i] = Some(Resolved { id, created: false });
                false
            }
            None => true,
        });
        if pending.is_empty() {
            break;
        }
        // An id whose insert met a phone created meanwhile stayed unused: reusing it is safe.
        let candidates: Vec<(Uuid, &ParsedRow)> = pending
            .iter()
            .map(|&i| (new_ids[i], &merged[i].1))
            .collect();
        let created = insert_new(&mut *conn, project_id, now, &candidates).await?;
        let mut still_pending = Vec::new();
        for (&i, (id, _)) in pending.iter().zip(&candidates) {
            if created.contains(id) {
                resolved[i] = Some(Resolved {
                    id: *id,
                    created: true,
                });
            } else {
                still_pending.push(i);
            }
        }
        if !still_pending.is_empty() {
            tracing::debug!(
                phones = still_pending.len(),
                "phones created by another writer meanwhile: updating them instead"
            );
        }
        pending = still_pending;
    }
    resolved
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "the batch's contacts kept being changed by other writers"
            ))
        })
}

/// Writes a batch in the caller's transaction.
pub async fn apply(
    conn: &mut PgConnection,
    project_id: Uuid,
    job_id: Uuid,
    prepared: Prepared,
    now: DateTime<Utc>,
) -> AppResult<Counts> {
    let Prepared {
        merged,
        repeats,
        issues,
        failed,
        warnings,
        new_ids,
    } = prepared;
    let contacts = resolve(&mut *conn, project_id, now, &merged, &new_ids).await?;

    let at = timestamp(now);
    let mut new_tags = String::new();
    let mut new_attributes = String::new();
    let (mut tag_contacts, mut tag_ids) = (Vec::new(), Vec::new());
    let (mut attribute_contacts, mut attribute_ids, mut values) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut events = String::with_capacity(merged.len() * 200);
    let mut outbox = String::with_capacity(merged.len() * 260);
    let mut added = 0;
    for ((row, p), contact) in merged.iter().zip(&contacts) {
        let id = contact.id;
        if contact.created {
            added += 1;
            for tag in &p.tag_ids {
                let _ = writeln!(new_tags, "{id}\t{tag}\t{project_id}\t{at}\t{job_id}");
            }
            for (attribute, value) in &p.attributes {
                let _ = write!(new_attributes, "{id}\t{attribute}\t{project_id}\t");
                field(&mut new_attributes, value);
                new_attributes.push('\n');
            }
        } else {
            for tag in &p.tag_ids {
                tag_contacts.push(id);
                tag_ids.push(*tag);
            }
            for (attribute, value) in &p.attributes {
                attribute_contacts.push(id);
                attribute_ids.push(*attribute);
                values.push(value.clone());
            }
        }
        let data = format!(
            r#"{{"jobId":"{job_id}","row":{row},"created":{}}}"#,
            contact.created
        );
        let _ = writeln!(
            events,
            "{}\t{project_id}\t{id}\tcontact.imported\tIMPORT\t{job_id}\t{data}\t{at}",
            Uuid::now_v7()
        );
        let _ = writeln!(
            outbox,
            "{}\t{project_id}\tcontact.imported\t{job_id}\t{at}\t{{\"contactId\":\"{id}\",\"actorKind\":\"IMPORT\",\"data\":{data}}}",
            Uuid::now_v7()
        );
    }
    let mut issue_rows = String::new();
    for i in &issues {
        let _ = write!(
            issue_rows,
            "{}\t{job_id}\t{project_id}\t{}\t{}\t",
            Uuid::now_v7(),
            i.row,
            i.severity
        );
        field(&mut issue_rows, &i.reason);
        issue_rows.push('\t');
        field(&mut issue_rows, &i.cells);
        issue_rows.push('\n');
    }

    copy(
        &mut *conn,
        "COPY contact_tags (contact_id, tag_id, project_id, added_at, added_by) FROM STDIN",
        new_tags,
    )
    .await?;
    copy(
        &mut *conn,
        "COPY contact_attributes (contact_id, attribute_id, project_id, value) FROM STDIN",
        new_attributes,
    )
    .await?;
    if !tag_contacts.is_empty() {
        sqlx::query(LINK_EXISTING_TAGS)
            .bind(project_id)
            .bind(now)
            .bind(job_id)
            .bind(tag_contacts)
            .bind(tag_ids)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    if !attribute_contacts.is_empty() {
        sqlx::query(SET_EXISTING_ATTRIBUTES)
            .bind(project_id)
            .bind(attribute_contacts)
            .bind(attribute_ids)
            .bind(values)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    copy(
        &mut *conn,
        "COPY contact_events (id, project_id, contact_id, kind, actor_kind, actor_id, data,
             occurred_at) FROM STDIN",
        events,
    )
    .await?;
    copy(
        &mut *conn,
        "COPY analytics_outbox (event_id, project_id, kind, actor_id, occurred_at, payload)
             FROM STDIN",
        outbox,
    )
    .await?;
    copy(
        &mut *conn,
        "COPY import_issues (id, job_id, project_id, row_number, severity, reason, raw_row)
             FROM STDIN",
        issue_rows,
    )
    .await?;
    Ok(Counts {
        added,
        updated: (merged.len() as i64 - added) + repeats,
        failed,
        warnings,
    })
}

/// Refreshes the statistics of the tables an import grew, so that the queries that follow
/// (lists, exports) are planned for their real size.
pub fn analyze(conn: &mut PgConnection) -> BoxFuture<'_, AppResult<()>> {
    Box::pin(async move {
        sqlx::query("ANALYZE contacts, contact_tags, contact_attributes, contact_events")
            .execute(conn)
            .await
            .map_err(db)?;
        Ok(())
    })
}

/// Adds a batch's counts to the job, if it is still running; false when it is not.
pub fn progress(
    conn: &mut PgConnection,
    job_id: Uuid,
    processed: i64,
    counts: Counts,
    now: DateTime<Utc>,
) -> BoxFuture<'_, AppResult<bool>> {
    Box::pin(async move {
        let updated = sqlx::query(
            "UPDATE import_jobs SET processed_rows = processed_rows + $2, added = added + $3,
                 updated = updated + $4, failed = failed + $5, warnings = warnings + $6,
                 heartbeat_at = $7
             WHERE id = $1 AND status = 'RUNNING'",
        )
        .bind(job_id)
        .bind(processed)
        .bind(counts.added)
        .bind(counts.updated)
        .bind(counts.failed)
        .bind(counts.warnings)
        .bind(now)
        .execute(conn)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(updated == 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_its_separators() {
        let mut out = String::new();
        field(&mut out, "a\tb\\c\nd\re");
        assert_eq!(out, "a\\tb\\\\c\\nd\\re");
    }

    #[test]
    fn copy_timestamps_keep_microseconds_in_utc() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T23:40:01.123456789+02:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(at), "2026-11-25 21:40:01.123456+00");
    }
}
