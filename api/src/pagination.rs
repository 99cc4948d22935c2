//! Keyset pagination over time-ordered (UUIDv7) ids: pages stay stable while rows are
//! inserted concurrently, and no page costs an OFFSET scan.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select,
};
use uuid::Uuid;

use crate::errors::{AppError, AppResult};

pub const DEFAULT_PAGE_SIZE: usize = 20;
pub const MAX_PAGE_SIZE: usize = 100;

#[derive(Clone, Copy, Debug, Default)]
pub struct PageRequest {
    pub first: Option<usize>,
    pub after: Option<Uuid>,
    pub last: Option<usize>,
    pub before: Option<Uuid>,
}

#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

impl<T> Page<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            has_previous_page: self.has_previous_page,
            has_next_page: self.has_next_page,
        }
    }
}

/// One page of `select`, ordered by `id` (oldest first).
pub async fn fetch<E, C>(
    db: &C,
    select: Select<E>,
    id: E::Column,
    request: PageRequest,
) -> AppResult<Page<E::Model>>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    if request.first.is_some() && request.last.is_some() {
        return Err(AppError::bad_input(
            "first",
            "give either first or last, not both",
        ));
    }
    let backward = request.last.is_some();
    let size = request.first.or(request.last).unwrap_or(DEFAULT_PAGE_SIZE);
    if size > MAX_PAGE_SIZE {
        return Err(AppError::bad_input(
            if backward { "last" } else { "first" },
            format!("a page holds at most {MAX_PAGE_SIZE} items"),
        ));
    }
    let mut select = select;
    if let Some(after) = request.after {
        select = select.filter(id.gt(after));
    }
    if let Some(before) = request.before {
        select = select.filter(id.lt(before));
    }
    let order = if backward { Order::Desc } else { Order::Asc };
    let mut items = select
        .order_by(id, order)
        .limit(size as u64 + 1)
        .all(db)
        .await?;
    let more = items.len() > size;
    items.truncate(size);
    if backward {
        items.reverse();
    }
    Ok(Page {
        items,
        has_previous_page: if backward {
            more
        } else {
            request.after.is_some()
        },
        has_next_page: if backward {
            request.before.is_some()
        } else {
            more
        },
    })
}
