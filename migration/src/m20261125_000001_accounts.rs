use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    DisplayName,
    PasswordHash,
    TokenVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Name,
    OwnerId,
    Plan,
    DefaultCountry,
    ArchivedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Members {
    Table,
    Id,
    ProjectId,
    UserId,
    Role,
    Active,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    ProjectId,
    Name,
    Prefix,
    KeyHash,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid(Users::Id).primary_key())
                    .col(string_len_uniq(Users::Username, 64))
                    .col(string_len(Users::DisplayName, 128))
                    .col(string(Users::PasswordHash))
                    .col(integer(Users::TokenVersion).default(0))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(uuid(Projects::Id).primary_key())
                    .col(string_len(Projects::Name, 128))
                    .col(uuid(Projects::OwnerId))
                    .col(string_len(Projects::Plan, 16))
                    .col(string_len(Projects::DefaultCountry, 2))
                    .col(timestamp_with_time_zone_null(Projects::ArchivedAt))
                    .col(timestamp_with_time_zone(Projects::CreatedAt))
                    .col(timestamp_with_time_zone(Projects::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Projects::Table, Projects::OwnerId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Members::Table)
                    .col(uuid(Members::Id).primary_key())
                    .col(uuid(Members::ProjectId))
                    .col(uuid(Members::UserId))
                    .col(string_len(Members::Role, 16))
                    .col(boolean(Members::Active).default(true))
                    .col(timestamp_with_time_zone(Members::CreatedAt))
                    .col(timestamp_with_time_zone(Members::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Members::Table, Members::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Members::Table, Members::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("members_project_user_key")
                    .table(Members::Table)
                    .col(Members::ProjectId)
                    .col(Members::UserId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("members_user_idx")
                    .table(Members::Table)
                    .col(Members::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(uuid(ApiKeys::Id).primary_key())
                    .col(uuid(ApiKeys::ProjectId))
                    .col(string_len(ApiKeys::Name, 128))
                    .col(string_len(ApiKeys::Prefix, 32))
                    .col(string_len_uniq(ApiKeys::KeyHash, 64))
                    .col(uuid(ApiKeys::CreatedBy))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("api_keys_project_idx")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::ProjectId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ApiKeys::Table.into_iden(),
            Members::Table.into_iden(),
            Projects::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
