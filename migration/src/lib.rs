//! Relational schema migrations (PostgreSQL and SQLite). ClickHouse has its own, in the
//! analytics crate.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_accounts;
mod m20261125_000002_analytics_outbox;
mod m20261125_000003_contacts;
mod m20261125_000004_imports;
mod m20261125_000005_segments;
mod m20261125_000006_import_file_chunks;
mod m20261126_000007_whatsapp;
mod m20261126_000008_template_category_time;
mod m20261126_000009_live_chat;
mod m20261126_000010_billing;
mod m20261126_000011_campaigns;
mod m20261126_000012_onboarding;
mod m20261126_000013_outbox_without_history;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_accounts::Migration),
            Box::new(m20261125_000002_analytics_outbox::Migration),
            Box::new(m20261125_000003_contacts::Migration),
            Box::new(m20261125_000004_imports::Migration),
            Box::new(m20261125_000005_segments::Migration),
            Box::new(m20261125_000006_import_file_chunks::Migration),
            Box::new(m20261126_000007_whatsapp::Migration),
            Box::new(m20261126_000008_template_category_time::Migration),
            Box::new(m20261126_000009_live_chat::Migration),
            Box::new(m20261126_000010_billing::Migration),
            Box::new(m20261126_000011_campaigns::Migration),
            Box::new(m20261126_000012_onboarding::Migration),
            Box::new(m20261126_000013_outbox_without_history::Migration),
        ]
    }
}
