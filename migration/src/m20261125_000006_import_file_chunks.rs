//! Uploaded files stored in chunks, so that neither the upload nor the import ever holds a
//! whole file in memory. Files already uploaded move over as one chunk each.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ImportJobs {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ImportFiles {
    Table,
    JobId,
    Content,
}

#[derive(DeriveIden)]
enum ImportFileChunks {
    Table,
    JobId,
    Seq,
    Content,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ImportFileChunks::Table)
                    .col(uuid(ImportFileChunks::JobId))
                    .col(integer(ImportFileChunks::Seq))
                    .col(blob(ImportFileChunks::Content))
                    .primary_key(
                        Index::create()
                            .col(ImportFileChunks::JobId)
                            .col(ImportFileChunks::Seq),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ImportFileChunks::Table, ImportFileChunks::JobId)
                            .to(ImportJobs::Table, ImportJobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(ImportFileChunks::Table)
                    .columns([
                        ImportFileChunks::JobId,
                        ImportFileChunks::Seq,
                        ImportFileChunks::Content,
                    ])
                    .select_from(
                        Query::select()
                            .column(ImportFiles::JobId)
                            .expr(Expr::val(0))
                            .column(ImportFiles::Content)
                            .from(ImportFiles::Table)
                            .to_owned(),
                    )
                    .map_err(|e| DbErr::Migration(e.to_string()))?
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(ImportFiles::Table).to_owned())
            .await
    }

    /// The earlier schema back; files of imports not yet run are not carried back.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ImportFiles::Table)
                    .col(uuid(ImportFiles::JobId).primary_key())
                    .col(blob(ImportFiles::Content))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ImportFiles::Table, ImportFiles::JobId)
                            .to(ImportJobs::Table, ImportJobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(ImportFileChunks::Table).to_owned())
            .await
    }
}
