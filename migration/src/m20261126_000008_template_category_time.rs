//! Meta's time of a template's last category change, so that a late review carrying the
//! old category does not bring it back.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Templates {
    Table,
    CategoryChangedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Templates::Table)
                    .add_column(timestamp_with_time_zone_null(Templates::CategoryChangedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Templates::Table)
                    .drop_column(Templates::CategoryChangedAt)
                    .to_owned(),
            )
            .await
    }
}
