//! One pooled connection held for a few statements in a row.
//!
//! A statement run on the pool checks a connection out and back in, and sqlx tests every
//! connection that comes back with a round trip to the database. A contacts page runs two
//! statements; on one held connection it makes one such round trip instead of two, which is
//! measurable on both the server and PostgreSQL. Statements are counted and timed like the
//! pool's own.

use std::time::Instant;

use async_trait::async_trait;
use sea_orm::sea_query::Values;
use sea_orm::sqlx::{self, Postgres, Sqlite, pool::PoolConnection};
use sea_orm::{
    ConnAcquireErr, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult,
    RuntimeErr, Statement,
};
use sea_query_binder::SqlxValues;
use tokio::sync::Mutex;

use crate::db::StatementCounter;

enum Held {
    Postgres(Mutex<PoolConnection<Postgres>>),
    Sqlite(Mutex<PoolConnection<Sqlite>>),
}

/// A connection checked out of the pool until dropped; implements sea-orm's
/// `ConnectionTrait`, so services generic over it run their statements on it.
pub struct HeldConnection {
    held: Held,
    statements: StatementCounter,
}

impl HeldConnection {
    pub async fn acquire(
        db: &DatabaseConnection,
        statements: &StatementCounter,
    ) -> Result<Self, DbErr> {
        let held = match db.get_database_backend() {
            DbBackend::Postgres => Held::Postgres(Mutex::new(
                db.get_postgres_connection_pool()
                    .acquire()
                    .await
                    .map_err(acquire_err)?,
            )),
            DbBackend::Sqlite => Held::Sqlite(Mutex::new(
                db.get_sqlite_connection_pool()
                    .acquire()
                    .await
                    .map_err(acquire_err)?,
            )),
            other => {
                return Err(DbErr::Custom(format!(
                    "a held connection supports PostgreSQL and SQLite, not {other:?}"
                )));
            }
        };
        Ok(Self {
            held,
            statements: statements.clone(),
        })
    }

    fn counted<T>(&self, started: Instant, result: T) -> T {
        self.statements.record(started.elapsed());
        result
    }
}

fn acquire_err(err: sqlx::Error) -> DbErr {
    match err {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        other => DbErr::Conn(RuntimeErr::SqlxError(other)),
    }
}

fn query_err(err: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(err))
}

fn exec_err(err: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(err))
}

/// The statement's values bound as sea-orm binds them.
fn values(stmt: &Statement) -> SqlxValues {
    SqlxValues(stmt.values.clone().unwrap_or(Values(Vec::new())))
}

#[async_trait]
impl ConnectionTrait for HeldConnection {
    fn get_database_backend(&self) -> DbBackend {
        match self.held {
            Held::Postgres(_) => DbBackend::Postgres,
            Held::Sqlite(_) => DbBackend::Sqlite,
        }
    }

    async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let started = Instant::now();
        let result = match &self.held {
            Held::Postgres(conn) => sqlx::query_with(&stmt.sql, values(&stmt))
                .execute(&mut **conn.lock().await)
                .await
                .map(ExecResult::from),
            Held::Sqlite(conn) => sqlx::query_with(&stmt.sql, values(&stmt))
                .execute(&mut **conn.lock().await)
                .await
                .map(ExecResult::from),
        };
        self.counted(started, result.map_err(exec_err))
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        use sqlx::Executor;
        let started = Instant::now();
        let result = match &self.held {
            Held::Postgres(conn) => {
                let mut conn = conn.lock().await;
                let conn: &mut sqlx::PgConnection = &mut conn;
                conn.execute(sql).await.map(ExecResult::from)
            }
            Held::Sqlite(conn) => {
                let mut conn = conn.lock().await;
                let conn: &mut sqlx::SqliteConnection = &mut conn;
                conn.execute(sql).await.map(ExecResult::from)
            }
        };
        self.counted(started, result.map_err(exec_err))
    }

    async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let started = Instant::now();
        let result = match &self.held {
            Held::Postgres(conn) => sqlx::query_with(&stmt.sql, values(&stmt))
                .fetch_optional(&mut **conn.lock().await)
                .await
                .map(|row| row.map(QueryResult::from)),
            Held::Sqlite(conn) => sqlx::query_with(&stmt.sql, values(&stmt))
                .fetch_optional(&mut **conn.lock().await)
                .await
                .map(|row| row.map(QueryResult::from)),
        };
        self.counted(started, result.map_err(query_err))
    }

    async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let started = Instant::now();
        let result = match &self.held {
            Held::Postgres(conn) => sqlx::query_with(&stmt.sql, values(&stmt))
                .fetch_all(&mut **conn.lock().await)
                .await
                .map(|rows| rows.into_iter().map(QueryResult::from).collect()),
            Held::Sqlite(conn) => sqlx::query_with(&stmt.sql, values(&stmt))
                .fetch_all(&mut **conn.lock().await)
                .await
                .map(|rows| rows.into_iter().map(QueryResult::from).collect()),
        };
        self.counted(started, result.map_err(query_err))
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::Database;

    use super::*;

    /// Every statement kind on one held connection: a temporary table exists only on the
    /// connection that created it, so later statements seeing it shows they ran there.
    async fn runs_everything_on_one_connection(db: DatabaseConnection) {
        let counter = StatementCounter::default();
        let conn = HeldConnection::acquire(&db, &counter).await.unwrap();
        let backend = conn.get_database_backend();
        conn.execute_unprepared("CREATE TEMPORARY TABLE held_probe (id INTEGER, name TEXT)")
            .await
            .unwrap();
        let insert = match backend {
            DbBackend::Postgres => "INSERT INTO held_probe VALUES ($1, $2), ($3, $4)",
            _ => "INSERT INTO held_probe VALUES (?, ?), (?, ?)",
        };
        let inserted = conn
            .execute(Statement::from_sql_and_values(
                backend,
                insert,
                [1.into(), "one".into(), 2.into(), "two".into()],
            ))
            .await
            .unwrap();
        assert_eq!(inserted.rows_affected(), 2);
        let sql = |sql: &str| Statement::from_string(backend, sql);
        let two = conn
            .query_one(sql("SELECT name FROM held_probe WHERE id = 2"))
            .await
            .unwrap()
            .expect("a row");
        assert_eq!(two.try_get::<String>("", "name").unwrap(), "two");
        let none = conn
            .query_one(sql("SELECT name FROM held_probe WHERE id = 3"))
            .await
            .unwrap();
        assert!(none.is_none());
        let all = conn
            .query_all(sql("SELECT id FROM held_probe ORDER BY id"))
            .await
            .unwrap();
        let ids: Vec<i32> = all.iter().map(|r| r.try_get("", "id").unwrap()).collect();
        assert_eq!(ids, [1, 2]);
        let wrong = conn.query_all(sql("SELECT nope FROM held_probe")).await;
        assert!(matches!(wrong, Err(DbErr::Query(_))), "{wrong:?}");
        assert_eq!(counter.get(), 6, "each statement counted once");
    }

    #[tokio::test]
    async fn sqlite_statements_run_on_the_held_connection() {
        runs_everything_on_one_connection(Database::connect("sqlite::memory:").await.unwrap())
            .await;
    }

    #[tokio::test]
    async fn postgres_statements_run_on_the_held_connection() {
        let url = "postgres://postgres@127.0.0.1:5432/postgres";
        runs_everything_on_one_connection(Database::connect(url).await.unwrap()).await;
    }
}
