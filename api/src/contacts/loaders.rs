//! Tags and attribute values of contact lists: a page's in one statement, and DataLoaders
//! that batch the lookups of anything else that lists contacts.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use parley_entity::{attribute, contact_attribute, contact_tag, tag};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QueryResult, Statement, TryGetable, Value,
    sqlx::{self, Row},
};
use uuid::Uuid;

use crate::errors::AppError;

/// Keys are `(project_id, contact_id)`, so a loader can never return another project's rows.
pub type ContactKey = (Uuid, Uuid);

/// The per-request loaders, caching so that a page can hand over what it loaded.
pub type TagsOfContacts = DataLoader<ContactTagsLoader>;
pub type AttributesOfContacts = DataLoader<ContactAttributesLoader>;

pub struct ContactTagsLoader {
    pub db: DatabaseConnection,
}

impl Loader<ContactKey> for ContactTagsLoader {
    type Value = Vec<tag::Model>;
    type Error = Arc<AppError>;

    async fn load(
        &self,
        keys: &[ContactKey],
    ) -> Result<HashMap<ContactKey, Self::Value>, Self::Error> {
        let mut out: HashMap<ContactKey, Vec<tag::Model>> = HashMap::new();
        for (project_id, contact_ids) in by_project(keys) {
            let rows = contact_tag::Entity::find()
                .filter(contact_tag::Column::ProjectId.eq(project_id))
                .filter(contact_tag::Column::ContactId.is_in(contact_ids))
                .find_also_related(tag::Entity)
                .order_by_asc(tag::Column::NameKey)
                .all(&self.db)
                .await
                .map_err(|e| Arc::new(AppError::from(e)))?;
            for (link, tag) in rows {
                if let Some(tag) = tag {
                    out.entry((project_id, link.contact_id))
                        .or_default()
                        .push(tag);
                }
            }
        }
        Ok(out)
    }
}

pub struct ContactAttributesLoader {
    pub db: DatabaseConnection,
}

impl Loader<ContactKey> for ContactAttributesLoader {
    type Value = Vec<(attribute::Model, String)>;
    type Error = Arc<AppError>;

    async fn load(
        &self,
        keys: &[ContactKey],
    ) -> Result<HashMap<ContactKey, Self::Value>, Self::Error> {
        let mut out: HashMap<ContactKey, Self::Value> = HashMap::new();
        for (project_id, contact_ids) in by_project(keys) {
            let rows = contact_attribute::Entity::find()
                .filter(contact_attribute::Column::ProjectId.eq(project_id))
                .filter(contact_attribute::Column::ContactId.is_in(contact_ids))
                .find_also_related(attribute::Entity)
                .order_by_asc(attribute::Column::KeyLower)
                .all(&self.db)
                .await
                .map_err(|e| Arc::new(AppError::from(e)))?;
            for (value, definition) in rows {
                if let Some(definition) = definition {
                    out.entry((project_id, value.contact_id))
                        .or_default()
                        .push((definition, value.value));
                }
            }
        }
        Ok(out)
    }
}

fn by_project(keys: &[ContactKey]) -> HashMap<Uuid, Vec<Uuid>> {
    let mut groups: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (project_id, contact_id) in keys {
        groups.entry(*project_id).or_default().push(*contact_id);
    }
    groups
}

/// The tags and the attribute values of a page of contacts.
#[derive(Default)]
pub struct PageDetails {
    pub tags: HashMap<ContactKey, Vec<tag::Model>>,
    pub attributes: HashMap<ContactKey, Vec<(attribute::Model, String)>>,
}

/// What a page's contacts need beside their own columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub tags: bool,
    pub attributes: bool,
}

/// The tags (by name) and attribute values (by key) of `contact_ids`, in one statement
/// rather than one per kind; every contact asked for gets an entry, empty or not.
pub async fn page_details<C: ConnectionTrait>(
    db: &C,
    project_id: Uuid,
    contact_ids: &[Uuid],
    wanted: Wanted,
) -> Result<PageDetails, DbErr> {
    let mut details = PageDetails::default();
    if contact_ids.is_empty() || !(wanted.tags || wanted.attributes) {
        return Ok(details);
    }
    for id in contact_ids {
        if wanted.tags {
            details.tags.insert((project_id, *id), Vec::new());
        }
        if wanted.attributes {
            details.attributes.insert((project_id, *id), Vec::new());
        }
    }
    let statement = Statement::from_sql_and_values(
        db.get_database_backend(),
        page_details_sql(contact_ids.len(), wanted),
        std::iter::once(Value::from(project_id))
            .chain(contact_ids.iter().map(|id| Value::from(*id))),
    );
    // By position, in the order of `page_details_sql`.
    for row in db.query_all(statement).await? {
        let contact_id: Uuid = column(&row, 1)?;
        let id: Uuid = column(&row, 2)?;
        let name: String = column(&row, 3)?;
        let sort_key: String = column(&row, 4)?;
        let detail: String = column(&row, 5)?;
        let created_at = column(&row, 8)?;
        if column::<i32>(&row, 0)? == TAG_PART {
            let tag = tag::Model {
                id,
                project_id,
                name,
                name_key: sort_key,
                kind: detail,
                first_message_keywords: column(&row, 6)?,
                created_at,
            };
            if let Some(tags) = details.tags.get_mut(&(project_id, contact_id)) {
                tags.push(tag);
            }
        } else {
            let definition = attribute::Model {
                id,
                project_id,
                key: name,
                key_lower: sort_key,
                display_name: detail,
                created_at,
            };
            let value: Option<String> = column(&row, 7)?;
            if let Some(values) = details.attributes.get_mut(&(project_id, contact_id)) {
                values.push((definition, value.unwrap_or_default()));
            }
        }
    }
    Ok(details)
}

const TAG_PART: i32 = 0;

/// Tags and attribute values as rows of one shape, tags first, each by its sort key.
/// `$1` is the project, `$2`… the contacts (PostgreSQL and SQLite both number them so).
pub fn page_details_sql(contacts: usize, wanted: Wanted) -> String {
    let ids = (2..contacts + 2)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut parts = Vec::with_capacity(2);
    if wanted.tags {
        parts.push(format!(
            "SELECT {TAG_PART} AS part, contact_tags.contact_id, tags.id, tags.name, \
             tags.name_key AS sort_key, tags.kind AS detail, \
             tags.first_message_keywords AS keywords, NULL AS value, tags.created_at \
             FROM contact_tags JOIN tags ON tags.id = contact_tags.tag_id \
             WHERE contact_tags.project_id = $1 AND contact_tags.contact_id IN ({ids})"
        ));
    }
    if wanted.attributes {
        parts.push(format!(
            "SELECT {} AS part, contact_attributes.contact_id, attributes.id, \
             attributes.key AS name, attributes.key_lower AS sort_key, \
             attributes.display_name AS detail, NULL AS keywords, \
             contact_attributes.value AS value, attributes.created_at \
             FROM contact_attributes JOIN attributes \
             ON attributes.id = contact_attributes.attribute_id \
             WHERE contact_attributes.project_id = $1 \
             AND contact_attributes.contact_id IN ({ids})",
            TAG_PART + 1
        ));
    }
    format!("{} ORDER BY part, sort_key", parts.join(" UNION ALL "))
}

/// A column of a row by position, decoded by the driver itself: sea-orm's own decoding
/// looks every column up by name and formats an error for every NULL it meets, which
/// cost more than the rest of a page's rows.
pub(crate) fn column<T>(row: &QueryResult, index: usize) -> Result<T, DbErr>
where
    T: TryGetable
        + for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>
        + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>,
{
    // Unchecked: the statements are this crate's own, their column types fixed by the
    // migrations (and the order checked by tests); the per-value type comparison was a
    // tenth of a page's decoding. A value that does not decode is still an error.
    let decoded = if let Some(row) = row.try_as_pg_row() {
        row.try_get_unchecked::<T, _>(index)
    } else if let Some(row) = row.try_as_sqlite_row() {
        row.try_get_unchecked::<T, _>(index)
    } else {
        return row.try_get_by_index(index);
    };
    decoded.map_err(|e| DbErr::Type(format!("column {index}: {e}")))
}
