//! Relay cursor connections over the keyset pages of `crate::pagination`.

use async_graphql::{
    OutputType,
    connection::{Connection, Edge},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use crate::{
    errors::{AppError, AppResult},
    pagination::{Page, PageRequest},
};

/// Cursors are opaque to clients: the row id, encoded.
pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

pub fn decode_cursor(field: &'static str, cursor: &str) -> AppResult<Uuid> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| AppError::bad_input(field, "not a cursor from this API"))
}

pub fn page_request(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> AppResult<PageRequest> {
    let size = |field: &'static str, n: Option<i32>| -> AppResult<Option<usize>> {
        n.map(|n| {
            usize::try_from(n).map_err(|_| AppError::bad_input(field, "must not be negative"))
        })
        .transpose()
    };
    Ok(PageRequest {
        first: size("first", first)?,
        after: after
            .as_deref()
            .map(|c| decode_cursor("after", c))
            .transpose()?,
        last: size("last", last)?,
        before: before
            .as_deref()
            .map(|c| decode_cursor("before", c))
            .transpose()?,
    })
}

pub fn connection<T, N: OutputType>(
    page: Page<T>,
    id_of: impl Fn(&T) -> Uuid,
    node: impl Fn(T) -> N,
) -> Connection<String, N> {
    let mut connection = Connection::new(page.has_previous_page, page.has_next_page);
    connection.edges = page
        .items
        .into_iter()
        .map(|item| Edge::new(encode_cursor(id_of(&item)), node(item)))
        .collect();
    connection
}
