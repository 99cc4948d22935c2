//! CSV import of contacts as a job: upload (checked and previewed), start with a column
//! mapping, then a runner applies it in batches. Each batch commits together with the
//! job's progress, so a job resumes where it stopped after a crash and no batch is ever
//! half-applied. Importing the same file twice adds nothing: rows upsert by phone.

mod batch;
pub mod csv_file;
pub mod graphql;
pub mod mapping;
mod postgres;
mod row;
mod stored_file;

use std::{
    collections::{HashMap, HashSet, VecDeque},
    io::Read,
    time::Duration,
};

use chrono::Utc;
use parley_entity::{import_file_chunk, import_issue, import_job};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
    sea_query::Expr,
};
use serde_json::json;
use tokio::sync::mpsc::{Receiver, error::TryRecvError};
use uuid::Uuid;

use self::{batch::RowResult, csv_file::FileError, mapping::ColumnMapping, row::RowContext};
use super::{attributes, service::phone_rules, tags};
use crate::{
    auth::Scope,
    errors::{AppError, AppResult},
    events,
    pagination::{self, Page, PageRequest},
    state::AppState,
};

pub const UPLOADED: &str = "UPLOADED";
pub const RUNNING: &str = "RUNNING";
pub const COMPLETED: &str = "COMPLETED";
pub const FAILED: &str = "FAILED";

/// A running job whose heartbeat is older than this is taken over by another runner.
const STALE_AFTER: Duration = Duration::from_secs(60);
const PREVIEW_ROWS: usize = 5;

pub struct Upload {
    pub job: import_job::Model,
    pub preview: Vec<Vec<String>>,
}

/// Stores an uploaded file as a job, checking it as it is read and storing it in chunks
/// meanwhile, in the job's transaction. A file that cannot be read fails the job at once,
/// with the reason, and nothing else is kept.
pub async fn upload(
    state: &AppState,
    scope: &Scope,
    file_name: &str,
    file: impl Read + Send + 'static,
    size: u64,
) -> AppResult<Upload> {
    let settings = &state.settings.imports;
    let now = Utc::now();
    let mut job = import_job::Model {
        id: Uuid::now_v7(),
        project_id: scope.project_id,
        status: UPLOADED.to_owned(),
        file_name: file_name.chars().take(256).collect(),
        file_size: size as i64,
        headers: "[]".to_owned(),
        mapping: None,
        total_rows: None,
        processed_rows: 0,
        added: 0,
        updated: 0,
        failed: 0,
        warnings: 0,
        error: None,
        created_by: scope.actor_id(),
        created_at: now,
        started_at: None,
        finished_at: None,
        heartbeat_at: None,
    };
    let limits = csv_file::Limits {
        max_bytes: settings.max_bytes as u64,
        max_rows: settings.max_rows,
        preview_rows: PREVIEW_ROWS,
    };
    if size > limits.max_bytes {
        return refuse(state, job, FileError::TooLarge(limits.max_bytes)).await;
    }
    let txn = state.db.begin().await?;
    // The job first: its chunks refer to it.
    import_job::ActiveModel::from(job.clone())
        .reset_all()
        .insert(&txn)
        .await?;
    // The check runs on a blocking thread and hands over the chunks; a couple wait at most.
    let (chunk_sender, mut chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
    let chunk_bytes = settings.chunk_bytes;
    let checker = tokio::task::spawn_blocking(move || {
        csv_file::check(file, &limits, chunk_bytes, |chunk| {
            chunk_sender
                .blocking_send(chunk)
                .map_err(|_| std::io::Error::other("the upload stopped being stored"))
        })
    });
    let mut stored = Ok(());
    let mut seq = 0;
    while let Some(chunk) = chunks.recv().await {
        stored = stored_file::store_chunk(&txn, job.id, seq, chunk).await;
        if stored.is_err() {
            break;
        }
        seq += 1;
    }
    // A failed store ends the check, which is waiting to hand over the next chunk.
    drop(chunks);
    let verdict = checker.await.map_err(AppError::internal)?;
    stored?;
    match verdict.map_err(AppError::internal)? {
        Ok(checked) => {
            job.headers = serde_json::to_string(&checked.headers).map_err(AppError::internal)?;
            job.total_rows = Some(checked.rows as i64);
            import_job::Entity::update_many()
                .col_expr(
                    import_job::Column::Headers,
                    Expr::value(job.headers.clone()),
                )
                .col_expr(import_job::Column::TotalRows, Expr::value(job.total_rows))
                .filter(import_job::Column::Id.eq(job.id))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            Ok(Upload {
                job,
                preview: checked.preview,
            })
        }
        Err(e) => {
            txn.rollback().await?;
            refuse(state, job, e).await
        }
    }
}

/// Records a refused upload: a failed job with the reason, and no file.
async fn refuse(state: &AppState, mut job: import_job::Model, e: FileError) -> AppResult<Upload> {
    job.status = FAILED.to_owned();
    job.error = Some(e.to_string());
    job.finished_at = Some(job.created_at);
    import_job::ActiveModel::from(job.clone())
        .reset_all()
        .insert(&state.db)
        .await?;
    Ok(Upload {
        job,
        preview: Vec::new(),
    })
}

/// Starts an uploaded job with a mapping. A wrong mapping is refused with the reason and
/// the job stays as it was, ready for a corrected one.
pub async fn start(
    state: &AppState,
    scope: &Scope,
    job_id: Uuid,
    columns: Vec<ColumnMapping>,
) -> AppResult<import_job::Model> {
    let job = find(state, scope, job_id).await?;
    if job.status != UPLOADED {
        return Err(AppError::Conflict(format!(
            "the import is {}, it can only be started once after upload",
            job.status.to_lowercase()
        )));
    }
    let headers: Vec<String> = serde_json::from_str(&job.headers).map_err(AppError::internal)?;
    let definitions = attributes::by_key(&state.db, scope.project_id).await?;
    mapping::resolve(&headers, &columns, &definitions)?;
    let now = Utc::now();
    // Only one caller can move the job out of UPLOADED.
    let claimed = import_job::Entity::update_many()
        .col_expr(import_job::Column::Status, Expr::value(RUNNING))
        .col_expr(
            import_job::Column::Mapping,
            Expr::value(serde_json::to_string(&columns).map_err(AppError::internal)?),
        )
        .col_expr(import_job::Column::StartedAt, Expr::value(now))
        .col_expr(import_job::Column::HeartbeatAt, Expr::value(now))
        .filter(import_job::Column::Id.eq(job.id))
        .filter(import_job::Column::Status.eq(UPLOADED))
        .exec(&state.db)
        .await?
        .rows_affected;
    if claimed == 0 {
        return Err(AppError::Conflict("the import was started already".into()));
    }
    let runner_state = state.clone();
    tokio::spawn(async move { run(runner_state, job_id).await });
    find(state, scope, job_id).await
}

/// Runs (or resumes) a job to its end.
pub async fn run(state: AppState, job_id: Uuid) {
    // The database going away mid-import (a restart, a failover) is waited out: each batch
    // commits with the job's progress, so running again from the job's `processed_rows`
    // applies no row twice. Waiting stays well under `STALE_AFTER`, so that no other node
    // takes the job over meanwhile; past that, the job is left running for
    // `resume_stalled` (if it cannot even be marked failed).
    let mut waited = Duration::ZERO;
    let mut result = execute(&state, job_id).await;
    while let Err(AppError::Unavailable(err)) = &result {
        if waited >= STALE_AFTER / 3 {
            break;
        }
        tracing::warn!(%job_id, error = ?err, "the database is unavailable: the import waits");
        let pause = Duration::from_millis(500);
        tokio::time::sleep(pause).await;
        waited += pause;
        result = execute(&state, job_id).await;
    }
    if let Err(err) = result {
        tracing::error!(%job_id, error = ?err, "import failed");
        let message = match &err {
            AppError::BadInput { message, .. } | AppError::Conflict(message) => message.clone(),
            _ => "the import stopped on an internal error; it changed nothing after its last \
                  reported progress"
                .to_owned(),
        };
        let _ = finish(&state, job_id, FAILED, Some(message)).await;
    }
}

async fn execute(state: &AppState, job_id: Uuid) -> AppResult<()> {
    let job = import_job::Entity::find_by_id(job_id)
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("import"))?;
    let headers: Vec<String> = serde_json::from_str(&job.headers).map_err(AppError::internal)?;
    let columns: Vec<ColumnMapping> =
        serde_json::from_str(job.mapping.as_deref().unwrap_or("[]")).map_err(AppError::internal)?;
    let definitions = attributes::by_key(&state.db, job.project_id).await?;
    let mapping = mapping::resolve(&headers, &columns, &definitions)?;
    let rules = phone_rules(&state.db, state, job.project_id).await?;
    let tag_ids: HashMap<String, Uuid> = tags::by_key(&state.db, job.project_id)
        .await?
        .into_iter()
        .map(|(k, t)| (k, t.id))
        .collect();
    // Parsing (phone validation above all) runs on a blocking thread, a batch ahead of the
    // database writes, so the two overlap.
    let (batches, mut parsed) = tokio::sync::mpsc::channel::<ParsedBatch>(2);
    let skip = job.processed_rows as u64;
    let batch_rows = state.settings.imports.batch_rows.max(1);
    // The file streams from the database a chunk or two ahead of the parser.
    let (file, fetcher) = stored_file::open(state.db.clone(), job_id);
    let mut fetcher = AbortOnDrop(fetcher);
    let parser = tokio::task::spawn_blocking(move || -> Result<(), csv::Error> {
        let ctx = RowContext {
            mapping: &mapping,
            rules: &rules,
            tags: &tag_ids,
        };
        let mut results = Vec::with_capacity(batch_rows);
        let mut rows = csv_file::rows(file, skip);
        loop {
            let next = rows.next().transpose()?;
            if let Some((row, record)) = &next {
                results.push(parse_row(*row, record, &ctx));
                if results.len() < batch_rows {
                    continue;
                }
            }
            if !results.is_empty() {
                let batch = std::mem::replace(&mut results, Vec::with_capacity(batch_rows));
                if batches.blocking_send((batch.len() as i64, batch)).is_err() {
                    return Ok(()); // the writer stopped
                }
            }
            if next.is_none() {
                return Ok(());
            }
        }
    });
    // The heartbeat is kept fresh apart from the batches, so that a slow batch never looks
    // like a dead runner to `resume_stalled` (which would start a second one).
    let heartbeat = {
        let db = state.db.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(STALE_AFTER / 4).await;
                let _ = import_job::Entity::update_many()
                    .col_expr(import_job::Column::HeartbeatAt, Expr::value(Utc::now()))
                    .filter(import_job::Column::Id.eq(job_id))
                    .filter(import_job::Column::Status.eq(RUNNING))
                    .exec(&db)
                    .await;
            }
        })
    };
    let _stop_heartbeat = AbortOnDrop(heartbeat);
    let postgres =
        sea_orm::ConnectionTrait::get_database_backend(&state.db) == sea_orm::DbBackend::Postgres;
    let still_running = if postgres {
        write_postgres(state, &job, &mut parsed).await?
    } else {
        write_generic(state, &job, &mut parsed).await?
    };
    if !still_running {
        // Someone else finished or failed the job meanwhile: leave it to them.
        return Ok(());
    }
    parser
        .await
        .map_err(AppError::internal)?
        .map_err(|e| match e.kind() {
            // The file was checked on upload; this is a damaged copy.
            csv::ErrorKind::Utf8 { .. } => file_error(FileError::NotUtf8),
            // The file streams from the database: reading it failed with the database.
            csv::ErrorKind::Io(io) if io.kind() != std::io::ErrorKind::NotFound => {
                AppError::Unavailable(anyhow::anyhow!("reading the import's file: {io}"))
            }
            _ => AppError::internal(e),
        })?;
    // A fetcher that died would have closed the stream as if the file ended there.
    fetcher.join().await.map_err(AppError::internal)?;
    let finished = finish(state, job.id, COMPLETED, None).await;
    // The rows are in once the job says so; fresh statistics (autovacuum's work, which may
    // be off or late) only make the queries that follow better planned.
    if postgres {
        analyze(state).await;
    }
    finished
}

/// Rows of the file in a batch (parsed or not) and what became of each.
type ParsedBatch = (i64, Vec<RowResult>);

/// Writes the batches one after the other; false when the job stopped running meanwhile.
async fn write_generic(
    state: &AppState,
    job: &import_job::Model,
    parsed: &mut Receiver<ParsedBatch>,
) -> AppResult<bool> {
    while let Some((processed, results)) = parsed.recv().await {
        let prepared = batch::prepare(results);
        if !apply_generic(state, job.project_id, job.id, processed, prepared).await? {
            return Ok(false);
        }
        publish_progress(state, job.id).await;
    }
    Ok(true)
}

/// Batches written at once on PostgreSQL: one backend per batch lets the database use
/// more than one core, which is where an import spends its time.
const BATCHES_IN_FLIGHT: usize = 2;

/// A batch whose rows are written in its own transaction, not committed yet.
struct InFlight {
    processed: i64,
    phones: HashSet<String>,
    write: tokio::task::JoinHandle<AppResult<Written>>,
}

struct Written {
    tx: sea_orm::sqlx::Transaction<'static, sea_orm::sqlx::Postgres>,
    counts: batch::Counts,
}

/// Writes up to `BATCHES_IN_FLIGHT` batches at once, each in its own transaction, and
/// commits them in file order, each with the job's progress: the progress always covers a
/// prefix of the file, so a resumed import skips exactly the rows already applied.
/// A batch that shares a phone with one in flight waits until that one has committed:
/// otherwise the later batch could hold a row lock the earlier one needs, while the
/// earlier one's commit is what the later one waits for (a deadlock PostgreSQL cannot see).
async fn write_postgres(
    state: &AppState,
    job: &import_job::Model,
    parsed: &mut Receiver<ParsedBatch>,
) -> AppResult<bool> {
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut held_back: Option<(i64, batch::Prepared, HashSet<String>)> = None;
    let mut input_done = false;
    loop {
        while in_flight.len() < BATCHES_IN_FLIGHT {
            let next = match held_back.take() {
                Some(next) => next,
                None if input_done => break,
                None => {
                    // With a batch in flight, take only a batch already parsed: waiting for
                    // the parser here would keep the finished batch's locks and connection.
                    let received = if in_flight.is_empty() {
                        parsed.recv().await.ok_or(TryRecvError::Disconnected)
                    } else {
                        parsed.try_recv()
                    };
                    match received {
                        Ok((processed, results)) => {
                            let prepared = batch::prepare(results);
                            let phones = prepared.merged.iter().map(|(_, p)| p.phone.clone());
                            let phones = phones.collect();
                            (processed, prepared, phones)
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            input_done = true;
                            break;
                        }
                    }
                }
            };
            if in_flight.iter().any(|f| !f.phones.is_disjoint(&next.2)) {
                held_back = Some(next);
                break;
            }
            let (processed, prepared, phones) = next;
            let write = tokio::spawn(write_batch(state.clone(), job.project_id, job.id, prepared));
            in_flight.push_back(InFlight {
                processed,
                phones,
                write,
            });
        }
        // Dropping what is still in flight (on an error or a stop) rolls it back.
        let Some(oldest) = in_flight.pop_front() else {
            return Ok(true);
        };
        let Written { mut tx, counts } = oldest.write.await.map_err(AppError::internal)??;
        let now = Utc::now();
        if !postgres::progress(&mut tx, job.id, oldest.processed, counts, now).await? {
            return Ok(false);
        }
        tx.commit().await.map_err(postgres::db)?;
        publish_progress(state, job.id).await;
    }
}

/// Boxed: sqlx's futures over `&mut PgConnection` otherwise defeat the compiler's proof
/// that the spawned task is `Send`.
fn write_batch(
    state: AppState,
    project_id: Uuid,
    job_id: Uuid,
    prepared: batch::Prepared,
) -> futures::future::BoxFuture<'static, AppResult<Written>> {
    Box::pin(async move {
        let pool = state.db.get_postgres_connection_pool();
        let mut tx = pool.begin().await.map_err(postgres::db)?;
        // Another writer (another import of overlapping phones) could close a wait cycle
        // through our in-order commits, which PostgreSQL's deadlock check cannot see: a
        // bounded wait turns that into an error rather than a stuck import.
        let lock_timeout = state.settings.imports.lock_timeout.as_millis().to_string();
        sea_orm::sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(lock_timeout)
            .execute(&mut *tx)
            .await
            .map_err(postgres::db)?;
        let counts = postgres::apply(&mut tx, project_id, job_id, prepared, Utc::now()).await?;
        Ok(Written { tx, counts })
    })
}

/// One batch and the job's progress, in one transaction.
async fn apply_generic(
    state: &AppState,
    project_id: Uuid,
    job_id: Uuid,
    processed: i64,
    prepared: batch::Prepared,
) -> AppResult<bool> {
    let txn = state.db.begin().await?;
    let counts = batch::apply(&txn, project_id, job_id, prepared).await?;
    let progressed = import_job::Entity::update_many()
        .col_expr(
            import_job::Column::ProcessedRows,
            Expr::col(import_job::Column::ProcessedRows).add(processed),
        )
        .col_expr(
            import_job::Column::Added,
            Expr::col(import_job::Column::Added).add(counts.added),
        )
        .col_expr(
            import_job::Column::Updated,
            Expr::col(import_job::Column::Updated).add(counts.updated),
        )
        .col_expr(
            import_job::Column::Failed,
            Expr::col(import_job::Column::Failed).add(counts.failed),
        )
        .col_expr(
            import_job::Column::Warnings,
            Expr::col(import_job::Column::Warnings).add(counts.warnings),
        )
        .col_expr(import_job::Column::HeartbeatAt, Expr::value(Utc::now()))
        .filter(import_job::Column::Id.eq(job_id))
        .filter(import_job::Column::Status.eq(RUNNING))
        .exec(&txn)
        .await?
        .rows_affected;
    if progressed == 0 {
        return Ok(false);
    }
    txn.commit().await?;
    Ok(true)
}

/// Statistics after a bulk load; a failure only costs query plans, so it is logged.
async fn analyze(state: &AppState) {
    let result = async {
        let mut conn = state
            .db
            .get_postgres_connection_pool()
            .acquire()
            .await
            .map_err(|e| AppError::from(sea_orm::DbErr::Custom(e.to_string())))?;
        postgres::analyze(&mut conn).await
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(error = ?err, "could not refresh statistics after an import");
    }
}

/// A row's outcome; its cells are kept only if it gets an issue.
fn parse_row(row: u64, record: &csv::StringRecord, ctx: &RowContext<'_>) -> RowResult {
    let cells = || record.iter().map(str::to_owned).collect();
    match row::parse(record, ctx) {
        Ok(parsed) => {
            let cells = if parsed.warnings.is_empty() {
                Vec::new()
            } else {
                cells()
            };
            RowResult::Applied { row, parsed, cells }
        }
        Err(reason) => RowResult::Failed {
            row,
            reason,
            cells: cells(),
        },
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Waits for the task to end: an error if it panicked.
    async fn join(&mut self) -> Result<(), tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn file_error(e: FileError) -> AppError {
    AppError::bad_input("file", e.to_string())
}

async fn finish(
    state: &AppState,
    job_id: Uuid,
    status: &str,
    error: Option<String>,
) -> AppResult<()> {
    let now = Utc::now();
    let txn = state.db.begin().await?;
    let ended = import_job::Entity::update_many()
        .col_expr(import_job::Column::Status, Expr::value(status))
        .col_expr(import_job::Column::Error, Expr::value(error))
        .col_expr(import_job::Column::FinishedAt, Expr::value(now))
        .filter(import_job::Column::Id.eq(job_id))
        .filter(import_job::Column::Status.eq(RUNNING))
        .exec(&txn)
        .await?
        .rows_affected;
    if ended == 1 {
        // An ended job never reads its file again (its failed rows live in its issues), so
        // the file's space goes back at once rather than with the job.
        import_file_chunk::Entity::delete_many()
            .filter(import_file_chunk::Column::JobId.eq(job_id))
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    publish_progress(state, job_id).await;
    Ok(())
}

async fn publish_progress(state: &AppState, job_id: Uuid) {
    let Ok(Some(job)) = import_job::Entity::find_by_id(job_id).one(&state.db).await else {
        return;
    };
    events::publish(
        state,
        job.project_id,
        "import.progress",
        json!({
            "jobId": job.id, "status": job.status, "processedRows": job.processed_rows,
            "totalRows": job.total_rows, "added": job.added, "updated": job.updated,
            "failed": job.failed, "warnings": job.warnings, "error": job.error,
        }),
    )
    .await;
}

/// Picks up running jobs whose runner went away (a restart), once at start-up and then
/// periodically.
pub async fn resume_stalled(state: &AppState) -> AppResult<usize> {
    let stale = Utc::now() - chrono::Duration::from_std(STALE_AFTER).unwrap_or_default();
    let jobs = import_job::Entity::find()
        .filter(import_job::Column::Status.eq(RUNNING))
        .filter(import_job::Column::HeartbeatAt.lt(stale))
        .all(&state.db)
        .await?;
    let mut resumed = 0;
    for job in jobs {
        let claimed = import_job::Entity::update_many()
            .col_expr(import_job::Column::HeartbeatAt, Expr::value(Utc::now()))
            .filter(import_job::Column::Id.eq(job.id))
            .filter(import_job::Column::HeartbeatAt.eq(job.heartbeat_at))
            .exec(&state.db)
            .await?
            .rows_affected;
        if claimed == 1 {
            resumed += 1;
            let state = state.clone();
            tokio::spawn(async move { run(state, job.id).await });
        }
    }
    Ok(resumed)
}

pub async fn find(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<import_job::Model> {
    import_job::Entity::find_by_id(id)
        .filter(import_job::Column::ProjectId.eq(scope.project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("import"))
}

/// The project's imports, oldest first.
pub async fn list(
    state: &AppState,
    scope: &Scope,
    page: PageRequest,
) -> AppResult<Page<import_job::Model>> {
    let select =
        import_job::Entity::find().filter(import_job::Column::ProjectId.eq(scope.project_id));
    pagination::fetch(&state.db, select, import_job::Column::Id, page).await
}

pub async fn issues(
    state: &AppState,
    scope: &Scope,
    job_id: Uuid,
    severity: Option<&str>,
    page: PageRequest,
) -> AppResult<Page<import_issue::Model>> {
    let mut select = import_issue::Entity::find()
        .filter(import_issue::Column::ProjectId.eq(scope.project_id))
        .filter(import_issue::Column::JobId.eq(job_id));
    if let Some(severity) = severity {
        select = select.filter(import_issue::Column::Severity.eq(severity));
    }
    pagination::fetch(&state.db, select, import_issue::Column::Id, page).await
}

/// The failed rows as CSV: the file's header plus an `error` column.
pub async fn failed_rows_csv(
    state: &AppState,
    project_id: Uuid,
    job_id: Uuid,
) -> AppResult<Vec<u8>> {
    let job = import_job::Entity::find_by_id(job_id)
        .filter(import_job::Column::ProjectId.eq(project_id))
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("import"))?;
    let headers: Vec<String> = serde_json::from_str(&job.headers).map_err(AppError::internal)?;
    let failed = import_issue::Entity::find()
        .filter(import_issue::Column::JobId.eq(job.id))
        .filter(import_issue::Column::Severity.eq("ERROR"))
        .order_by_asc(import_issue::Column::RowNumber)
        .all(&state.db)
        .await?;
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header_row = headers.clone();
    header_row.push("error".into());
    writer
        .write_record(&header_row)
        .map_err(AppError::internal)?;
    for issue in failed {
        let mut cells: Vec<String> = serde_json::from_str(&issue.raw_row).unwrap_or_default();
        cells.resize(headers.len(), String::new());
        cells.push(issue.reason);
        let cells: Vec<String> = cells
            .iter()
            .map(|c| super::export::escape_formula(c).into_owned())
            .collect();
        writer.write_record(&cells).map_err(AppError::internal)?;
    }
    writer
        .into_inner()
        .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))
}
