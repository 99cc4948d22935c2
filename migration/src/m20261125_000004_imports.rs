use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ImportJobs {
    Table,
    Id,
    ProjectId,
    Status,
    FileName,
    FileSize,
    Headers,
    Mapping,
    TotalRows,
    ProcessedRows,
    Added,
    Updated,
    Failed,
    Warnings,
    Error,
    CreatedBy,
    CreatedAt,
    StartedAt,
    FinishedAt,
    HeartbeatAt,
}

#[derive(DeriveIden)]
enum ImportFiles {
    Table,
    JobId,
    Content,
}

#[derive(DeriveIden)]
enum ImportIssues {
    Table,
    Id,
    JobId,
    ProjectId,
    RowNumber,
    Severity,
    Reason,
    RawRow,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ImportJobs::Table)
                    .col(uuid(ImportJobs::Id).primary_key())
                    .col(uuid(ImportJobs::ProjectId))
                    .col(string_len(ImportJobs::Status, 16))
                    .col(string_len(ImportJobs::FileName, 256))
                    .col(big_integer(ImportJobs::FileSize))
                    .col(text(ImportJobs::Headers))
                    .col(text_null(ImportJobs::Mapping))
                    .col(big_integer_null(ImportJobs::TotalRows))
                    .col(big_integer(ImportJobs::ProcessedRows).default(0))
                    .col(big_integer(ImportJobs::Added).default(0))
                    .col(big_integer(ImportJobs::Updated).default(0))
                    .col(big_integer(ImportJobs::Failed).default(0))
                    .col(big_integer(ImportJobs::Warnings).default(0))
                    .col(text_null(ImportJobs::Error))
                    .col(uuid_null(ImportJobs::CreatedBy))
                    .col(timestamp_with_time_zone(ImportJobs::CreatedAt))
                    .col(timestamp_with_time_zone_null(ImportJobs::StartedAt))
                    .col(timestamp_with_time_zone_null(ImportJobs::FinishedAt))
                    .col(timestamp_with_time_zone_null(ImportJobs::HeartbeatAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ImportJobs::Table, ImportJobs::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("import_jobs_project_idx")
                    .table(ImportJobs::Table)
                    .col(ImportJobs::ProjectId)
                    .col(ImportJobs::Id)
                    .to_owned(),
            )
            .await?;
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
            .create_table(
                Table::create()
                    .table(ImportIssues::Table)
                    .col(uuid(ImportIssues::Id).primary_key())
                    .col(uuid(ImportIssues::JobId))
                    .col(uuid(ImportIssues::ProjectId))
                    .col(big_integer(ImportIssues::RowNumber))
                    .col(string_len(ImportIssues::Severity, 8))
                    .col(text(ImportIssues::Reason))
                    .col(text(ImportIssues::RawRow))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ImportIssues::Table, ImportIssues::JobId)
                            .to(ImportJobs::Table, ImportJobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("import_issues_job_idx")
                    .table(ImportIssues::Table)
                    .col(ImportIssues::JobId)
                    .col(ImportIssues::RowNumber)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ImportIssues::Table.into_iden(),
            ImportFiles::Table.into_iden(),
            ImportJobs::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
