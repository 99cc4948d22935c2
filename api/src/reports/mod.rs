//! Reports read from the analytics store.

pub mod graphql;
