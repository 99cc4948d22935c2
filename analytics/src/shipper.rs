//! Moves events from the relational outbox to the analytics store, in batches.
//!
//! Delivery is at-least-once from the outbox's point of view (rows are removed only after
//! the store accepted them) and exactly-once in query results, because store inserts are
//! idempotent by `event_id`. The store is the history: a shipped row is deleted, so the
//! outbox holds only what is still on its way.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use parley_entity::analytics_outbox::{Column, Entity, Model};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction,
    EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Statement,
    TransactionTrait,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{AnalyticsStore, StoredEvent};

/// Rows deleted per statement on SQLite, well under its bind limit.
const DELETE_CHUNK: usize = 1_000;

/// How long a graceful shutdown waits for the last flush before leaving events in the
/// outbox for the next start.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct ShipperConfig {
    /// Most events per store insert; a full batch ships without waiting.
    pub batch_size: usize,
    /// Longest an event waits for its batch to fill up.
    pub flush_interval: Duration,
    /// How often the outbox is checked when idle.
    pub poll_interval: Duration,
    /// Cap of the exponential backoff after failures.
    pub max_backoff: Duration,
    /// Batches in flight at once on PostgreSQL (each its own transaction, taken with
    /// `SKIP LOCKED`), so that reading and marking the next batch overlaps the store's
    /// insert of the last; 1 on SQLite, which has no row locks.
    pub concurrency: usize,
}

impl Default for ShipperConfig {
    fn default() -> Self {
        Self {
            batch_size: 10_000,
            flush_interval: Duration::from_secs(1),
            poll_interval: Duration::from_millis(200),
            // Low, so that the outbox catches up within seconds of the store's return
            // (30 s left a minute-long ClickHouse outage 21 s behind); one failed insert
            // every 5 s while the store is down costs nothing.
            max_backoff: Duration::from_secs(5),
            concurrency: 2,
        }
    }
}

pub struct Shipper {
    db: DatabaseConnection,
    store: Arc<dyn AnalyticsStore>,
    config: ShipperConfig,
}

impl Shipper {
    pub fn new(
        db: DatabaseConnection,
        store: Arc<dyn AnalyticsStore>,
        config: ShipperConfig,
    ) -> Self {
        Self { db, store, config }
    }

    pub fn config(&self) -> &ShipperConfig {
        &self.config
    }

    /// Ships up to one batch of unshipped events, oldest first. Returns how many shipped.
    /// On error nothing leaves the outbox, so the events are retried later.
    pub async fn ship_once(&self) -> anyhow::Result<usize> {
        let shipped = match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                // One statement takes the batch and deletes it; the rows stay locked until
                // the store has them and the transaction commits (a failed insert rolls the
                // delete back), and another process's shipper skips them for the next rows
                // instead of shipping these again.
                let txn = self.db.begin().await?;
                let rows = self.take_batch(&txn).await?;
                if rows.is_empty() {
                    return Ok(0);
                }
                let events: Vec<StoredEvent> = rows.into_iter().map(event_from_row).collect();
                self.insert(&events).await?;
                txn.commit().await?;
                events.len()
            }
            _ => {
                // SQLite has no row locks and one process owns the file; holding a transaction
                // across the store insert would only block the API's own writes.
                let rows = self.next_batch(&self.db).await?;
                self.ship_rows(&self.db, rows).await?
            }
        };
        if shipped > 0 {
            metrics::counter!("analytics_events_shipped_total").increment(shipped as u64);
        }
        Ok(shipped)
    }

    /// Ships until nothing is pending (for tests and graceful shutdown).
    pub async fn flush(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            match self.ship_once().await? {
                0 => return Ok(total),
                shipped => total += shipped,
            }
        }
    }

    /// Runs the shipping loops until `shutdown` is cancelled, then flushes what they can.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        let loops = match self.db.get_database_backend() {
            DatabaseBackend::Postgres => self.config.concurrency.max(1),
            _ => 1,
        };
        let shipper = Arc::new(self);
        let handles: Vec<JoinHandle<()>> = (0..loops)
            .map(|_| tokio::spawn(shipper.clone().run(shutdown.clone())))
            .collect();
        tokio::spawn(async move {
            for handle in handles {
                let _ = handle.await;
            }
        })
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // When this process first saw a non-empty outbox: bounds the wait even if clocks of
        // the processes writing `occurred_at` disagree with ours.
        let mut pending_since: Option<Instant> = None;
        let mut backoff: Option<Duration> = None;
        let mut behind = false;
        loop {
            // After a full batch more are waiting: ship the next one without looking first.
            let shipped = if behind {
                self.ship_once().await
            } else {
                self.tick(&mut pending_since).await
            };
            behind = false;
            let wait = match shipped {
                Ok(shipped) => {
                    backoff = None;
                    // A full batch suggests more are waiting: go again right away.
                    if shipped >= self.config.batch_size {
                        behind = true;
                        Duration::ZERO
                    } else {
                        self.config.poll_interval
                    }
                }
                Err(err) => {
                    metrics::counter!("analytics_ship_failures_total").increment(1);
                    let delay = backoff.map_or(self.config.flush_interval, |d| d * 2);
                    let delay = delay.min(self.config.max_backoff);
                    backoff = Some(delay);
                    // The error never contains payloads: only counts and store messages.
                    tracing::warn!(
                        error = format!("{err:#}"),
                        retry_in_ms = delay.as_millis() as u64,
                        "shipping analytics events failed; they stay in the outbox"
                    );
                    delay
                }
            };
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        match tokio::time::timeout(SHUTDOWN_FLUSH_TIMEOUT, self.flush()).await {
            Ok(Ok(shipped)) => tracing::info!(shipped, "analytics shipper stopped"),
            Ok(Err(err)) => tracing::warn!(
                error = format!("{err:#}"),
                "analytics shipper stopped with events left in the outbox"
            ),
            Err(_) => tracing::warn!("analytics shipper stopped before the final flush finished"),
        }
    }

    /// One loop iteration: ship a batch if it is full or its oldest event waited long enough.
    async fn tick(&self, pending_since: &mut Option<Instant>) -> anyhow::Result<usize> {
        // At most one batch is looked at, in `seq` order along the partial index: a
        // `count(*)` of the pending rows is planned as a scan of the whole table, shipped
        // history included, and cost a busy server more than the shipping itself.
        let batch = self.config.batch_size.max(1);
        let pending: Vec<DateTime<Utc>> = Entity::find()
            .select_only()
            .column(Column::OccurredAt)
            .filter(Column::ShippedAt.is_null())
            .order_by_asc(Column::Seq)
            .limit(batch as u64)
            .into_tuple()
            .all(&self.db)
            .await?;
        // Up to one batch: "at least this many" when it is full.
        metrics::gauge!("analytics_outbox_pending").set(pending.len() as f64);
        let Some(oldest) = pending.first() else {
            *pending_since = None;
            return Ok(0);
        };
        let seen_since = *pending_since.get_or_insert_with(Instant::now);
        let oldest_age = (Utc::now() - *oldest).to_std().unwrap_or_default();
        let due = pending.len() >= batch
            || oldest_age >= self.config.flush_interval
            || seen_since.elapsed() >= self.config.flush_interval;
        if !due {
            return Ok(0);
        }
        let shipped = self.ship_once().await?;
        *pending_since = None;
        Ok(shipped)
    }

    /// The oldest unshipped rows no other shipper holds, deleted (PostgreSQL).
    ///
    /// The rows are found by their physical address (`ctid`), which the lock keeps stable
    /// until the transaction ends: matched by `seq` instead, the planner joins the batch
    /// against a scan of the whole outbox, which made a backlog of a million rows cost a
    /// full scan per batch. Deleting rather than marking them shipped writes no new row
    /// versions and no index entries (about a quarter of the time per batch here).
    async fn take_batch(&self, txn: &DatabaseTransaction) -> anyhow::Result<Vec<Model>> {
        // The batch must come from the ordered walk of the unshipped index. Planned from
        // stale statistics (a backlog after a bulk load, before an ANALYZE), PostgreSQL
        // instead fetched every pending row and sorted them on disk: 0.8 s per batch of a
        // million-row backlog instead of 0.04 s. These settings end with the transaction.
        txn.execute_unprepared(
            "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; \
             SET LOCAL enable_sort = off",
        )
        .await?;
        let rows = Model::find_by_statement(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "DELETE FROM analytics_outbox \
             WHERE ctid = ANY(ARRAY(SELECT ctid FROM analytics_outbox WHERE shipped_at IS NULL \
                                    ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)) \
             RETURNING seq, event_id, project_id, kind, actor_id, occurred_at, payload, shipped_at",
            [(self.config.batch_size.max(1) as i64).into()],
        ))
        .all(txn)
        .await?;
        // The statement returns rows in no particular order.
        let mut rows = rows;
        rows.sort_unstable_by_key(|row| row.seq);
        Ok(rows)
    }

    async fn insert(&self, events: &[StoredEvent]) -> anyhow::Result<()> {
        self.store
            .insert_stored(events)
            .await
            .with_context(|| format!("inserting {} events into the analytics store", events.len()))
    }

    async fn next_batch<C: ConnectionTrait>(&self, conn: &C) -> anyhow::Result<Vec<Model>> {
        Ok(Entity::find()
            .filter(Column::ShippedAt.is_null())
            .order_by_asc(Column::Seq)
            .limit(self.config.batch_size.max(1) as u64)
            .all(conn)
            .await?)
    }

    /// Ships rows read without a lock, then deletes them (SQLite: one process owns the file).
    async fn ship_rows<C: ConnectionTrait>(
        &self,
        conn: &C,
        rows: Vec<Model>,
    ) -> anyhow::Result<usize> {
        if rows.is_empty() {
            return Ok(0);
        }
        let seqs: Vec<i64> = rows.iter().map(|row| row.seq).collect();
        let events: Vec<StoredEvent> = rows.into_iter().map(event_from_row).collect();
        self.insert(&events).await?;
        // A crash here re-sends the batch later, which the store's idempotent insert absorbs.
        for chunk in seqs.chunks(DELETE_CHUNK) {
            Entity::delete_many()
                .filter(Column::Seq.is_in(chunk.iter().copied()))
                .exec(conn)
                .await
                .context("deleting shipped outbox rows")?;
        }
        Ok(events.len())
    }
}

fn event_from_row(row: Model) -> StoredEvent {
    StoredEvent {
        event_id: row.event_id,
        project_id: row.project_id,
        kind: row.kind,
        actor_id: row.actor_id,
        occurred_at: row.occurred_at,
        // As written: parsing it only to write it out again was a third of the shipper's
        // own time.
        payload: row.payload,
    }
}
