//! Sorted keyset pages of contacts. The cursor holds the sort key and the id of the last
//! row, so pages stay stable while contacts are added, whatever the order.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use parley_entity::contact;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, Order, QueryFilter, QueryOrder, QueryResult,
    QuerySelect, QueryTrait, Select,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::loaders::column;
use crate::{
    errors::{AppError, AppResult},
    pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE},
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContactOrder {
    #[default]
    CreatedAsc,
    CreatedDesc,
    NameAsc,
    NameDesc,
    UpdatedDesc,
}

/// Where a page starts or ends: the sort key of a row and its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<DateTime<Utc>>,
    pub id: Uuid,
}

impl Cursor {
    pub fn of(order: ContactOrder, c: &contact::Model) -> Self {
        Self {
            name: matches!(order, ContactOrder::NameAsc | ContactOrder::NameDesc)
                .then(|| c.name.clone()),
            updated: (order == ContactOrder::UpdatedDesc).then_some(c.updated_at),
            id: c.id,
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(field: &'static str, raw: &str) -> AppResult<Self> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| AppError::bad_input(field, "not a cursor from this API"))
    }
}

/// An edge keeps its cursor as it is and encodes it only when the cursor is asked for,
/// so a page that never reads its cursors never spends time making them.
impl async_graphql::connection::CursorType for Cursor {
    type Error = AppError;

    fn decode_cursor(raw: &str) -> AppResult<Self> {
        Self::decode("cursor", raw)
    }

    fn encode_cursor(&self) -> String {
        self.encode()
    }
}

pub struct Request {
    pub order: ContactOrder,
    pub first: Option<usize>,
    pub after: Option<Cursor>,
    pub last: Option<usize>,
    pub before: Option<Cursor>,
}

pub struct SortedPage {
    pub items: Vec<contact::Model>,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

/// Rows strictly after `cursor` in the order `(key direction, id direction)`.
fn beyond(order: ContactOrder, cursor: &Cursor, forward: bool) -> AppResult<Condition> {
    let ascending = matches!(order, ContactOrder::CreatedAsc | ContactOrder::NameAsc) == forward;
    let id_beyond = if ascending {
        contact::Column::Id.gt(cursor.id)
    } else {
        contact::Column::Id.lt(cursor.id)
    };
    let missing = || AppError::bad_input("after", "the cursor is from another order");
    Ok(match order {
        ContactOrder::CreatedAsc | ContactOrder::CreatedDesc => Condition::all().add(id_beyond),
        ContactOrder::NameAsc | ContactOrder::NameDesc => {
            let name = cursor.name.clone().ok_or_else(missing)?;
            let key_beyond = if ascending {
                contact::Column::Name.gt(name.clone())
            } else {
                contact::Column::Name.lt(name.clone())
            };
            Condition::any().add(key_beyond).add(
                Condition::all()
                    .add(contact::Column::Name.eq(name))
                    .add(id_beyond),
            )
        }
        ContactOrder::UpdatedDesc => {
            let updated = cursor.updated.ok_or_else(missing)?;
            let key_beyond = if ascending {
                contact::Column::UpdatedAt.gt(updated)
            } else {
                contact::Column::UpdatedAt.lt(updated)
            };
            Condition::any().add(key_beyond).add(
                Condition::all()
                    .add(contact::Column::UpdatedAt.eq(updated))
                    .add(id_beyond),
            )
        }
    })
}

fn ordered(
    select: Select<contact::Entity>,
    order: ContactOrder,
    forward: bool,
) -> Select<contact::Entity> {
    let ascending = matches!(order, ContactOrder::CreatedAsc | ContactOrder::NameAsc) == forward;
    let direction = if ascending { Order::Asc } else { Order::Desc };
    let select = match order {
        ContactOrder::CreatedAsc | ContactOrder::CreatedDesc => select,
        ContactOrder::NameAsc | ContactOrder::NameDesc => {
            select.order_by(contact::Column::Name, direction.clone())
        }
        ContactOrder::UpdatedDesc => select.order_by(contact::Column::UpdatedAt, direction.clone()),
    };
    select.order_by(contact::Column::Id, direction)
}

pub async fn fetch<C: ConnectionTrait>(
    db: &C,
    select: Select<contact::Entity>,
    request: Request,
) -> AppResult<SortedPage> {
    if request.first.is_some() && request.last.is_some() {
        return Err(AppError::bad_input(
            "first",
            "give either first or last, not both",
        ));
    }
    let forward = request.last.is_none();
    let size = request.first.or(request.last).unwrap_or(DEFAULT_PAGE_SIZE);
    if size > MAX_PAGE_SIZE {
        return Err(AppError::bad_input(
            if forward { "first" } else { "last" },
            format!("a page holds at most {MAX_PAGE_SIZE} items"),
        ));
    }
    let mut select = select;
    if let Some(after) = &request.after {
        select = select.filter(beyond(request.order, after, true)?);
    }
    if let Some(before) = &request.before {
        select = select.filter(beyond(request.order, before, false)?);
    }
    let statement = ordered(select, request.order, forward)
        .limit(size as u64 + 1)
        .build(db.get_database_backend());
    let mut items = db
        .query_all(statement)
        .await?
        .iter()
        .map(contact_of_row)
        .collect::<Result<Vec<_>, DbErr>>()?;
    let more = items.len() > size;
    items.truncate(size);
    if !forward {
        items.reverse();
    }
    Ok(SortedPage {
        items,
        has_previous_page: if forward {
            request.after.is_some()
        } else {
            more
        },
        has_next_page: if forward {
            more
        } else {
            request.before.is_some()
        },
    })
}

/// A contact from a row of `Select<contact::Entity>`, whose columns come in the order the
/// entity declares them.
fn contact_of_row(row: &QueryResult) -> Result<contact::Model, DbErr> {
    Ok(contact::Model {
        id: column(row, 0)?,
        project_id: column(row, 1)?,
        name: column(row, 2)?,
        phone: column(row, 3)?,
        bsuid: column(row, 4)?,
        source: column(row, 5)?,
        first_message_tag_id: column(row, 6)?,
        opted_in: column(row, 7)?,
        opted_in_at: column(row, 8)?,
        opted_in_source: column(row, 9)?,
        incoming_blocked: column(row, 10)?,
        state: column(row, 11)?,
        last_active_at: column(row, 12)?,
        created_at: column(row, 13)?,
        updated_at: column(row, 14)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_read_in_the_order_their_columns_are_selected() {
        use sea_orm::{Iden, Iterable};
        let selected: Vec<String> = contact::Column::iter().map(|c| c.to_string()).collect();
        assert_eq!(
            selected,
            [
                "id",
                "project_id",
                "name",
                "phone",
                "bsuid",
                "source",
                "first_message_tag_id",
                "opted_in",
                "opted_in_at",
                "opted_in_source",
                "incoming_blocked",
                "state",
                "last_active_at",
                "created_at",
                "updated_at",
            ]
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            name: Some("Asha".into()),
            updated: None,
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode("after", &cursor.encode()).unwrap(), cursor);
        assert!(Cursor::decode("after", "garbage").is_err());
    }
}
