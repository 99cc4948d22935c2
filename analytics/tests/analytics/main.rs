//! Integration tests against real services: PostgreSQL, ClickHouse and SQLite.
//! URLs can be overridden with PARLEY_TEST_POSTGRES_URL and PARLEY_TEST_CLICKHOUSE_URL.

mod billing;
mod billing_data;
mod campaigns;
mod clickhouse;
mod common;
mod embedded;
mod shipper;
