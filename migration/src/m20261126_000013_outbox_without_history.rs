use sea_orm_migration::prelude::*;

/// The analytics shipper now deletes the rows it has shipped (the analytics store is the
/// history). Rows an earlier version kept, marked shipped, are removed once here.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM analytics_outbox WHERE shipped_at IS NOT NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        // The deleted rows were already in the analytics store; nothing to restore.
        Ok(())
    }
}
