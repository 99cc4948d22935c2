//! Contacts matching a filter as CSV, streamed: rows are written out as they come from the
//! database, in chunks, so memory stays flat whatever the number of contacts.
//!
//! On PostgreSQL one query reads every matching contact with its tag ids and attribute
//! values (aggregated per contact) and the rows are streamed from it. SQLite reads pages
//! by keyset. Both write rows through [`CsvRows`], so the file is the same either way.

use std::collections::HashMap;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures::{Stream, TryStreamExt};
use parley_entity::{attribute, contact, contact_attribute, contact_tag, tag};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Value,
    sea_query::{
        Alias, DynIden, Expr, IntoIden, JoinType, Order, PostgresQueryBuilder, Query, SeaRc,
        SelectStatement,
    },
    sqlx::{self, Postgres, Row, pool::PoolConnection, postgres::PgArguments, query::Query as Sql},
};
use uuid::Uuid;

use super::filter::{self, ContactFilter};
use crate::{
    errors::{AppError, AppResult},
    state::AppState,
};

/// Contacts per page on the keyset path (SQLite).
const PAGE: u64 = 5_000;
/// A chunk of the download is sent once it holds this many bytes.
const CHUNK_BYTES: usize = 128 * 1024;

const HEADER: [&str; 10] = [
    "Name",
    "Phone",
    "BSUID",
    "Tags",
    "Source",
    "Opted In",
    "Incoming Blocked",
    "State",
    "Last Active At",
    "Created At",
];

/// Spreadsheets run cells starting with these as formulas: such cells get a leading `'`.
pub fn escape_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    if is_formula(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

fn is_formula(cell: &str) -> bool {
    matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

/// The CSV, chunk by chunk. Errors end the stream (the client sees a cut download).
pub fn stream(
    state: AppState,
    project_id: Uuid,
    filter: ContactFilter,
) -> impl Stream<Item = Result<Bytes, AppError>> {
    async_stream::try_stream! {
        let now = Utc::now();
        let columns = Columns::load(&state.db, project_id).await?;
        let mut out = CsvRows::new(&columns);
        out.header()?;
        yield out.take()?;
        if state.db.get_database_backend() == DatabaseBackend::Postgres {
            let (sql, values) = postgres_query(project_id, &filter, now)?;
            let query = bind_all(sqlx::query(&sql), values)?;
            let mut conn = ClosedUnlessFinished(Some(
                state.db.get_postgres_connection_pool().acquire().await.map_err(db_error)?,
            ));
            // JIT compilation costs more than it saves on this plan (measured), and
            // the export only reads.
            simple(conn.connection(), "BEGIN READ ONLY; SET LOCAL jit = off").await?;
            {
                let mut rows = query.fetch(conn.connection());
                while let Some(row) = rows.try_next().await.map_err(db_error)? {
                    out.postgres_row(&row)?;
                    if out.len() >= CHUNK_BYTES {
                        yield out.take()?;
                    }
                }
            }
            simple(conn.connection(), "COMMIT").await?;
            conn.finished();
        } else {
            let mut after: Option<Uuid> = None;
            while let Some(page) = keyset_page(&state.db, project_id, &filter, now, after).await? {
                after = page.contacts.last().map(|c| c.id);
                page.write(&mut out)?;
                if out.len() >= CHUNK_BYTES {
                    yield out.take()?;
                }
                if (page.contacts.len() as u64) < PAGE {
                    break;
                }
            }
        }
        let rest = out.take()?;
        if !rest.is_empty() {
            yield rest;
        }
    }
}

/// The project's attributes (one column each, by key) and tags (named in each row).
struct Columns {
    attribute_keys: Vec<String>,
    attribute_column: HashMap<Uuid, usize>,
    /// Tag names in the order a row lists them (byte order).
    tag_names: Vec<String>,
    tag_position: HashMap<Uuid, usize>,
}

impl Columns {
    async fn load(db: &DatabaseConnection, project_id: Uuid) -> AppResult<Self> {
        let definitions: Vec<attribute::Model> = attribute::Entity::find()
            .filter(attribute::Column::ProjectId.eq(project_id))
            .order_by_asc(attribute::Column::KeyLower)
            .all(db)
            .await?;
        let mut tags: Vec<tag::Model> = tag::Entity::find()
            .filter(tag::Column::ProjectId.eq(project_id))
            .all(db)
            .await?;
        tags.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            attribute_column: definitions
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id, i))
                .collect(),
            attribute_keys: definitions.into_iter().map(|d| d.key).collect(),
            tag_position: tags.iter().enumerate().map(|(i, t)| (t.id, i)).collect(),
            tag_names: tags.into_iter().map(|t| t.name).collect(),
        })
    }
}

/// One contact's own fields, as the export shows them.
struct ContactFields<'a> {
    name: &'a str,
    phone: Option<&'a str>,
    bsuid: Option<&'a str>,
    source: &'a str,
    opted_in: bool,
    incoming_blocked: bool,
    state: &'a str,
    last_active_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

/// Writes CSV records into a buffer that is taken out chunk by chunk. Every cell goes
/// through the formula guard.
struct CsvRows<'c> {
    columns: &'c Columns,
    csv: csv::Writer<Vec<u8>>,
    guarded: String,
    tags: String,
    tag_positions: Vec<usize>,
    attribute_values: Vec<Option<usize>>,
}

impl<'c> CsvRows<'c> {
    fn new(columns: &'c Columns) -> Self {
        Self {
            columns,
            csv: chunk_writer(),
            guarded: String::new(),
            tags: String::new(),
            tag_positions: Vec::new(),
            attribute_values: Vec::new(),
        }
    }

    fn header(&mut self) -> AppResult<()> {
        let keys = self.columns.attribute_keys.iter().map(String::as_str);
        for name in HEADER.into_iter().chain(keys) {
            self.cell(name)?;
        }
        self.end_record()
    }

    /// One contact. Tags and attribute values outside the project's columns are left out.
    fn contact<'v>(
        &mut self,
        fields: &ContactFields<'_>,
        tag_ids: impl IntoIterator<Item = Uuid>,
        attributes: impl IntoIterator<Item = (Uuid, &'v str)>,
    ) -> AppResult<()> {
        self.tag_positions.clear();
        self.tag_positions.extend(
            tag_ids
                .into_iter()
                .filter_map(|id| self.columns.tag_position.get(&id).copied()),
        );
        self.tag_positions.sort_unstable();
        self.tags.clear();
        for (i, position) in self.tag_positions.iter().enumerate() {
            if i > 0 {
                self.tags.push_str(" | ");
            }
            self.tags.push_str(&self.columns.tag_names[*position]);
        }
        let mut values: Vec<&str> = Vec::new();
        self.attribute_values.clear();
        self.attribute_values
            .resize(self.columns.attribute_keys.len(), None);
        for (attribute_id, value) in attributes {
            if let Some(column) = self.columns.attribute_column.get(&attribute_id) {
                self.attribute_values[*column] = Some(values.len());
                values.push(value);
            }
        }

        self.cell(fields.name)?;
        self.cell(fields.phone.unwrap_or_default())?;
        self.cell(fields.bsuid.unwrap_or_default())?;
        let tags = std::mem::take(&mut self.tags);
        let written = self.cell(&tags);
        self.tags = tags;
        written?;
        self.cell(fields.source)?;
        self.cell(if fields.opted_in { "true" } else { "false" })?;
        self.cell(if fields.incoming_blocked {
            "true"
        } else {
            "false"
        })?;
        self.cell(fields.state)?;
        match fields.last_active_at {
            Some(at) => self.cell(&at.to_rfc3339())?,
            None => self.cell("")?,
        }
        self.cell(&fields.created_at.to_rfc3339())?;
        for column in 0..self.attribute_values.len() {
            let value = self.attribute_values[column].map_or("", |i| values[i]);
            self.cell(value)?;
        }
        self.end_record()
    }

    /// A row of [`postgres_query`].
    fn postgres_row(&mut self, row: &sqlx::postgres::PgRow) -> AppResult<()> {
        let fields = ContactFields {
            name: row.try_get(0).map_err(db_error)?,
            phone: row.try_get(1).map_err(db_error)?,
            bsuid: row.try_get(2).map_err(db_error)?,
            source: row.try_get(3).map_err(db_error)?,
            opted_in: row.try_get(4).map_err(db_error)?,
            incoming_blocked: row.try_get(5).map_err(db_error)?,
            state: row.try_get(6).map_err(db_error)?,
            last_active_at: row.try_get(7).map_err(db_error)?,
            created_at: row.try_get(8).map_err(db_error)?,
        };
        let tag_ids: Option<Vec<Uuid>> = row.try_get(9).map_err(db_error)?;
        let attribute_ids: Option<Vec<Uuid>> = row.try_get(10).map_err(db_error)?;
        let values: Option<Vec<String>> = row.try_get(11).map_err(db_error)?;
        let attributes = attribute_ids
            .unwrap_or_default()
            .into_iter()
            .zip(values.iter().flatten().map(String::as_str));
        self.contact(&fields, tag_ids.unwrap_or_default(), attributes)
    }

    fn cell(&mut self, value: &str) -> AppResult<()> {
        let written = if is_formula(value) {
            self.guarded.clear();
            self.guarded.push('\'');
            self.guarded.push_str(value);
            self.csv.write_field(&self.guarded)
        } else {
            self.csv.write_field(value)
        };
        written.map_err(AppError::internal)
    }

    fn end_record(&mut self) -> AppResult<()> {
        self.csv
            .write_record(None::<&[u8]>)
            .map_err(AppError::internal)
    }

    /// Bytes written and not taken yet (less what the writer still buffers).
    fn len(&self) -> usize {
        self.csv.get_ref().len()
    }

    fn take(&mut self) -> AppResult<Bytes> {
        let full = std::mem::replace(&mut self.csv, chunk_writer());
        full.into_inner()
            .map(Bytes::from)
            .map_err(|e| AppError::internal(anyhow::anyhow!("{}", e.error())))
    }
}

fn chunk_writer() -> csv::Writer<Vec<u8>> {
    csv::Writer::from_writer(Vec::with_capacity(CHUNK_BYTES + 16 * 1024))
}

/// Every matching contact with its tag ids and attribute values, by id. The filter's
/// values are bound as parameters.
///
/// A contact's tags and values are aggregated in one of two ways. For the whole project,
/// each table is read once in contact order and merged with the contacts (the cost of
/// aggregating the project). With a filter, only the matching contacts' rows are looked
/// up, contact by contact, so a small segment of a large project costs its own size.
fn postgres_query(
    project_id: Uuid,
    filter: &ContactFilter,
    now: DateTime<Utc>,
) -> AppResult<(String, sea_orm::sea_query::Values)> {
    let whole_project = *filter == ContactFilter::default();
    let tags = Alias::new("linked_tags");
    let attributes = Alias::new("attribute_values");
    let mut select = Query::select();
    select
        .columns(
            [
                contact::Column::Name,
                contact::Column::Phone,
                contact::Column::Bsuid,
                contact::Column::Source,
                contact::Column::OptedIn,
                contact::Column::IncomingBlocked,
                contact::Column::State,
                contact::Column::LastActiveAt,
                contact::Column::CreatedAt,
            ]
            .map(|c| (contact::Entity, c)),
        )
        .column((tags.clone(), Alias::new("tag_ids")))
        .column((attributes.clone(), Alias::new("attribute_ids")))
        .column((attributes.clone(), Alias::new("attribute_values")))
        .from(contact::Entity);
    let linked = [
        (
            aggregated(
                contact_tag::Entity,
                contact_tag::Column::ContactId,
                &["array_agg(\"contact_tags\".\"tag_id\") AS \"tag_ids\""],
            ),
            contact_tag::Column::ProjectId.into_iden(),
            tags,
        ),
        (
            aggregated(
                contact_attribute::Entity,
                contact_attribute::Column::ContactId,
                &[
                    "array_agg(\"contact_attributes\".\"attribute_id\") AS \"attribute_ids\"",
                    "array_agg(\"contact_attributes\".\"value\") AS \"attribute_values\"",
                ],
            ),
            contact_attribute::Column::ProjectId.into_iden(),
            attributes,
        ),
    ];
    for ((mut rows, contact_id), project_column, alias) in linked {
        if whole_project {
            let table = contact_id.0.clone();
            rows.column(contact_id.clone())
                .and_where(Expr::col((table, project_column)).eq(project_id))
                .group_by_col(contact_id.clone());
            select.join_subquery(
                JoinType::LeftJoin,
                rows,
                alias.clone(),
                Expr::col((alias, contact_id.1)).equals((contact::Entity, contact::Column::Id)),
            );
        } else {
            rows.and_where(Expr::col(contact_id).equals((contact::Entity, contact::Column::Id)));
            select.join_lateral(JoinType::LeftJoin, rows, alias, Expr::cust("TRUE"));
        }
    }
    select
        .and_where(contact::Column::ProjectId.eq(project_id))
        .cond_where(filter.condition(now)?)
        .order_by((contact::Entity, contact::Column::Id), Order::Asc);
    Ok(select.build(PostgresQueryBuilder))
}

/// Aggregates of `table`'s rows, and its (qualified) contact id column.
fn aggregated<T: sea_orm::sea_query::Iden + 'static>(
    table: T,
    contact_id: impl sea_orm::sea_query::IntoIden,
    aggregates: &[&str],
) -> (SelectStatement, (DynIden, DynIden)) {
    let table = SeaRc::new(table) as DynIden;
    let mut select = Query::select();
    for aggregate in aggregates {
        select.expr(Expr::cust(aggregate.to_string()));
    }
    select.from(table.clone());
    (select, (table, contact_id.into_iden()))
}

type PgQuery<'q> = Sql<'q, Postgres, PgArguments>;

fn bind_all(mut query: PgQuery<'_>, values: sea_orm::sea_query::Values) -> AppResult<PgQuery<'_>> {
    for value in values {
        query = bind(query, value)?;
    }
    Ok(query)
}

/// The value kinds a contact filter compiles to.
fn bind(query: PgQuery<'_>, value: Value) -> AppResult<PgQuery<'_>> {
    Ok(match value {
        Value::Bool(v) => query.bind(v),
        Value::Int(v) => query.bind(v),
        Value::BigInt(v) => query.bind(v),
        Value::String(v) => query.bind(v.map(|s| *s)),
        Value::Uuid(v) => query.bind(v.map(|u| *u)),
        Value::ChronoDateTimeUtc(v) => query.bind(v.map(|t| *t)),
        other => {
            return Err(AppError::internal(anyhow::anyhow!(
                "a contact filter value of an unexpected kind: {other:?}"
            )));
        }
    })
}

/// Boxed: sqlx's futures over `&mut PgConnection` otherwise defeat the compiler's proof
/// that the download's stream is `Send`.
fn simple<'c>(
    conn: &'c mut sqlx::PgConnection,
    statements: &'static str,
) -> futures::future::BoxFuture<'c, AppResult<()>> {
    Box::pin(async move {
        sqlx::Executor::execute(conn, statements)
            .await
            .map(drop)
            .map_err(db_error)
    })
}

fn db_error(err: sqlx::Error) -> AppError {
    AppError::from(sea_orm::DbErr::Custom(err.to_string()))
}

/// The export's connection. Given back to the pool in the middle of a result (the client
/// went away), the pool would read the rest of the result before reusing it: it is closed
/// instead.
struct ClosedUnlessFinished(Option<PoolConnection<Postgres>>);

impl ClosedUnlessFinished {
    fn connection(&mut self) -> &mut sqlx::PgConnection {
        self.0
            .as_mut()
            .expect("the connection is held until finished")
    }

    fn finished(mut self) {
        self.0.take();
    }
}

impl Drop for ClosedUnlessFinished {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(conn.detach());
        }
    }
}

/// A page of contacts by keyset, with their tags and attribute values.
struct KeysetPage {
    contacts: Vec<contact::Model>,
    tags: HashMap<Uuid, Vec<Uuid>>,
    values: HashMap<Uuid, Vec<(Uuid, String)>>,
}

impl KeysetPage {
    fn write(&self, out: &mut CsvRows<'_>) -> AppResult<()> {
        for c in &self.contacts {
            let fields = ContactFields {
                name: &c.name,
                phone: c.phone.as_deref(),
                bsuid: c.bsuid.as_deref(),
                source: &c.source,
                opted_in: c.opted_in,
                incoming_blocked: c.incoming_blocked,
                state: &c.state,
                last_active_at: c.last_active_at,
                created_at: c.created_at,
            };
            let tag_ids = self.tags.get(&c.id).into_iter().flatten().copied();
            let values = self
                .values
                .get(&c.id)
                .into_iter()
                .flatten()
                .map(|(id, v)| (*id, v.as_str()));
            out.contact(&fields, tag_ids, values)?;
        }
        Ok(())
    }
}

async fn keyset_page(
    db: &DatabaseConnection,
    project_id: Uuid,
    filter: &ContactFilter,
    now: DateTime<Utc>,
    after: Option<Uuid>,
) -> AppResult<Option<KeysetPage>> {
    let mut select = filter::select(project_id, filter, now)?;
    if let Some(last) = after {
        select = select.filter(contact::Column::Id.gt(last));
    }
    let contacts = select
        .order_by_asc(contact::Column::Id)
        .limit(PAGE)
        .all(db)
        .await?;
    if contacts.is_empty() {
        return Ok(None);
    }
    // Only the page's own contacts: under a filter, a range of ids from the page's first to
    // its last could span most of the project.
    let ids: Vec<Uuid> = contacts.iter().map(|c| c.id).collect();
    let mut tags: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for link in contact_tag::Entity::find()
        .filter(contact_tag::Column::ProjectId.eq(project_id))
        .filter(contact_tag::Column::ContactId.is_in(ids.iter().copied()))
        .all(db)
        .await?
    {
        tags.entry(link.contact_id).or_default().push(link.tag_id);
    }
    let mut values: HashMap<Uuid, Vec<(Uuid, String)>> = HashMap::new();
    for v in contact_attribute::Entity::find()
        .filter(contact_attribute::Column::ProjectId.eq(project_id))
        .filter(contact_attribute::Column::ContactId.is_in(ids.iter().copied()))
        .all(db)
        .await?
    {
        values
            .entry(v.contact_id)
            .or_default()
            .push((v.attribute_id, v.value));
    }
    Ok(Some(KeysetPage {
        contacts,
        tags,
        values,
    }))
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
        assert_eq!(escape_formula("\tx"), "'\tx");
        assert_eq!(escape_formula("\rx"), "'\rx");
        assert_eq!(escape_formula("Asha"), "Asha");
        assert_eq!(escape_formula(""), "");
    }

    fn every_condition(text: &str) -> ContactFilter {
        use super::filter::{
            AttributeCondition, AttributeOp, ContactStatus, TagCondition, TimeRange,
        };
        let id = Uuid::now_v7();
        let range = TimeRange {
            from: Some(Utc::now()),
            to: Some(Utc::now()),
        };
        let leaf = ContactFilter {
            tags: Some(TagCondition {
                any_of: vec![id],
                all_of: vec![id],
                none_of: vec![id],
            }),
            attributes: [
                AttributeOp::Equals(text.into()),
                AttributeOp::Contains(text.into()),
                AttributeOp::IsSet(true),
                AttributeOp::IsSet(false),
            ]
            .into_iter()
            .map(|op| AttributeCondition {
                attribute_id: id,
                op,
            })
            .collect(),
            created_at: Some(range.clone()),
            last_active_at: Some(range),
            opted_in: Some(true),
            incoming_blocked: Some(false),
            sources: vec![text.into()],
            status: Some(ContactStatus::Inactive),
            states: vec![text.into()],
            search: Some(text.into()),
            ..Default::default()
        };
        ContactFilter {
            and: vec![leaf.clone()],
            or: vec![leaf.clone()],
            not: Some(Box::new(leaf.clone())),
            ..leaf
        }
    }

    #[test]
    fn every_filter_value_is_bound_not_written_into_the_sql() {
        let hostile = "x'); DROP TABLE contacts; --";
        let filter = every_condition(hostile);
        let (sql, values) = postgres_query(Uuid::now_v7(), &filter, Utc::now()).unwrap();
        assert!(!sql.contains("DROP"), "{sql}");
        // The only literal is the LIKE patterns' escape character.
        let literals = sql.replace("ESCAPE E'\\\\'", "");
        assert!(!literals.contains('\''), "no literal strings: {sql}");
        assert!(values.0.iter().any(|v| *v == Value::from(hostile)));
        assert!(
            bind_all(sqlx::query(&sql), values).is_ok(),
            "every kind binds"
        );
    }

    #[test]
    fn the_whole_project_is_merged_and_a_filter_looks_contacts_up() {
        let whole = postgres_query(Uuid::now_v7(), &ContactFilter::default(), Utc::now());
        let (sql, _) = whole.unwrap();
        assert!(
            sql.contains("GROUP BY") && !sql.contains("LATERAL"),
            "{sql}"
        );
        let filter = ContactFilter {
            opted_in: Some(true),
            ..Default::default()
        };
        let (sql, _) = postgres_query(Uuid::now_v7(), &filter, Utc::now()).unwrap();
        assert!(
            sql.contains("LATERAL") && !sql.contains("GROUP BY"),
            "{sql}"
        );
    }
}
