//! The PostgreSQL path for import batches: the batch is copied into temporary tables with
//! `COPY` and applied with a few set-based statements, instead of binding every value of
//! every row. Semantics are those of `batch::apply`.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sea_orm::sqlx::{self, PgConnection};
use uuid::Uuid;

use super::batch::{Counts, Prepared};
use crate::errors::{AppError, AppResult};

const STAGE: &str = "
CREATE TEMP TABLE IF NOT EXISTS import_stage (
    row_no bigint NOT NULL, phone text NOT NULL, name text NOT NULL, source text,
    first_message_tag uuid, new_id uuid NOT NULL, journey_id uuid NOT NULL, event_id uuid NOT NULL
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS import_stage_tags (phone text NOT NULL, tag_id uuid NOT NULL)
    ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS import_stage_attributes (
    phone text NOT NULL, attribute_id uuid NOT NULL, value text NOT NULL
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS import_stage_issues (
    id uuid NOT NULL, row_number bigint NOT NULL, severity text NOT NULL, reason text NOT NULL,
    raw_row text NOT NULL
) ON COMMIT DELETE ROWS;";

// Existing contacts first (empty cells leave their fields), then the new ones.
const UPDATE_EXISTING: &str =
    "UPDATE contacts c SET name = s.name, source = COALESCE(s.source, c.source),
        first_message_tag_id = COALESCE(s.first_message_tag, c.first_message_tag_id),
        updated_at = $2
    FROM import_stage s WHERE c.project_id = $1 AND c.phone = s.phone";

const INSERT_NEW: &str = "INSERT INTO contacts (id, project_id, name, phone, bsuid, source,
        first_message_tag_id, opted_in, opted_in_at, opted_in_source, incoming_blocked, state,
        last_active_at, created_at, updated_at)
    SELECT s.new_id, $1, s.name, s.phone, NULL, COALESCE(s.source, 'IMPORT'), s.first_message_tag,
        true, $2, COALESCE(s.source, 'IMPORT'), false, 'HANDLED_BY_ASSISTANT', NULL, $2, $2
    FROM import_stage s
    WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.project_id = $1 AND c.phone = s.phone)";

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

fn opt(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => field(out, v),
        None => out.push_str("\\N"),
    }
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

#[derive(Clone, Copy)]
enum Param {
    Id(Uuid),
    Time(DateTime<Utc>),
}

/// Runs one statement of the batch with its parameters in order; returns the rows it touched.
fn run<'c>(
    conn: &'c mut PgConnection,
    statement: &'static str,
    params: &[Param],
) -> BoxFuture<'c, AppResult<u64>> {
    let mut query = sqlx::query(statement);
    for param in params {
        query = match *param {
            Param::Id(id) => query.bind(id),
            Param::Time(time) => query.bind(time),
        };
    }
    Box::pin(async move { Ok(query.execute(conn).await.map_err(db)?.rows_affected()) })
}

fn db(err: sqlx::Error) -> AppError {
    AppError::from(sea_orm::DbErr::Custom(err.to_string()))
}

/// Creates the staging tables once per connection (they empty themselves on commit).
fn stage(conn: &mut PgConnection) -> BoxFuture<'_, AppResult<()>> {
    Box::pin(async move {
        for statement in STAGE.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
        }
        Ok(())
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
    } = prepared;
    stage(&mut *conn).await?;

    let mut rows = String::with_capacity(merged.len() * 160);
    let mut tags = String::new();
    let mut attributes = String::new();
    for (row, p) in &merged {
        let _ = write!(rows, "{row}\t");
        field(&mut rows, &p.phone);
        rows.push('\t');
        field(&mut rows, &p.name);
        rows.push('\t');
        opt(&mut rows, p.source.as_deref());
        rows.push('\t');
        opt(
            &mut rows,
            p.first_message_tag.map(|t| t.to_string()).as_deref(),
        );
        let _ = writeln!(
            rows,
            "\t{}\t{}\t{}",
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7()
        );
        for tag in &p.tag_ids {
            field(&mut tags, &p.phone);
            let _ = writeln!(tags, "\t{tag}");
        }
        for (attribute, value) in &p.attributes {
            field(&mut attributes, &p.phone);
            let _ = write!(attributes, "\t{attribute}\t");
            field(&mut attributes, value);
            attributes.push('\n');
        }
    }
    let mut issue_rows = String::new();
    for i in &issues {
        let _ = write!(
            issue_rows,
            "{}\t{}\t{}\t",
            Uuid::now_v7(),
            i.row,
            i.severity
        );
        field(&mut issue_rows, &i.reason);
        issue_rows.push('\t');
        field(&mut issue_rows, &i.cells);
        issue_rows.push('\n');
    }
    copy(conn, "COPY import_stage FROM STDIN", rows).await?;
    copy(conn, "COPY import_stage_tags FROM STDIN", tags).await?;
    copy(conn, "COPY import_stage_attributes FROM STDIN", attributes).await?;
    copy(conn, "COPY import_stage_issues FROM STDIN", issue_rows).await?;

    // Existing contacts first (empty cells leave their fields), then the new ones.
    let (project, time, job) = (Param::Id(project_id), Param::Time(now), Param::Id(job_id));
    let updated = run(&mut *conn, UPDATE_EXISTING, &[project, time]).await?;
    let added = run(&mut *conn, INSERT_NEW, &[project, time]).await?;

    let statements: [(&str, &[Param]); 5] = [
        ("INSERT INTO contact_tags (contact_id, tag_id, project_id, added_at, added_by)
         SELECT c.id, t.tag_id, $1, $2, $3 FROM import_stage_tags t
         JOIN contacts c ON c.project_id = $1 AND c.phone = t.phone
         ON CONFLICT (contact_id, tag_id) DO NOTHING", &[project, time, job]),
        ("INSERT INTO contact_attributes (contact_id, attribute_id, project_id, value)
         SELECT c.id, a.attribute_id, $1, a.value FROM import_stage_attributes a
         JOIN contacts c ON c.project_id = $1 AND c.phone = a.phone
         ON CONFLICT (contact_id, attribute_id) DO UPDATE SET value = EXCLUDED.value", &[project]),
        ("INSERT INTO contact_events (id, project_id, contact_id, kind, actor_kind, actor_id, data, occurred_at)
         SELECT s.journey_id, $1, c.id, 'contact.imported', 'IMPORT', $3,
             json_build_object('jobId', $3, 'row', s.row_no, 'created', c.id = s.new_id)::text, $2
         FROM import_stage s JOIN contacts c ON c.project_id = $1 AND c.phone = s.phone", &[project, time, job]),
        ("INSERT INTO analytics_outbox (event_id, project_id, kind, actor_id, occurred_at, payload)
         SELECT s.event_id, $1, 'contact.imported', $3, $2,
             json_build_object('contactId', c.id, 'actorKind', 'IMPORT', 'data',
                 json_build_object('jobId', $3, 'row', s.row_no, 'created', c.id = s.new_id))::text
         FROM import_stage s JOIN contacts c ON c.project_id = $1 AND c.phone = s.phone", &[project, time, job]),
        ("INSERT INTO import_issues (id, job_id, project_id, row_number, severity, reason, raw_row)
         SELECT i.id, $2, $1, i.row_number, i.severity, i.reason, i.raw_row FROM import_stage_issues i", &[project, job]),
    ];
    for (statement, params) in statements {
        run(&mut *conn, statement, params).await?;
    }
    Ok(Counts {
        added: added as i64,
        updated: updated as i64 + repeats,
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
        let mut out = String::new();
        opt(&mut out, None);
        assert_eq!(out, "\\N");
    }
}
