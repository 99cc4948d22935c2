//! Campaigns: broadcasts and API campaigns, their recipients (the audience snapshot, which
//! is also the dispatcher's durable queue), the idempotency keys of API calls, tracked
//! links, and the unique users reached per rolling 24 hours (the messaging limit).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum WhatsappAccounts {
    Table,
    MessagingLimit,
    ThroughputPerSecond,
}

#[derive(DeriveIden)]
enum Campaigns {
    Table,
    Id,
    ProjectId,
    Name,
    NameKey,
    Kind,
    TemplateId,
    Parameters,
    HeaderMediaLink,
    Audience,
    BroadcastTagId,
    Status,
    StopReason,
    ScheduledAt,
    StartedAt,
    CompletedAt,
    CancelledAt,
    Recipients,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CampaignRecipients {
    Table,
    CampaignId,
    ContactId,
    ProjectId,
    Seq,
    Status,
    SkipReason,
    MessageId,
    ErrorCode,
    ErrorTitle,
    FailureGroup,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    QueuedAt,
    SentAt,
    DeliveredAt,
    ReadAt,
    FailedAt,
    ClickedAt,
    RepliedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ReachedUsers {
    Table,
    ProjectId,
    ContactId,
    LastAt,
}

#[derive(DeriveIden)]
enum ApiCalls {
    Table,
    ProjectId,
    IdempotencyKey,
    RequestHash,
    Response,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TrackedLinks {
    Table,
    Token,
    ProjectId,
    CampaignId,
    ContactId,
    Url,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(WhatsappAccounts::Table)
                    .add_column(integer_null(WhatsappAccounts::MessagingLimit))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(WhatsappAccounts::Table)
                    .add_column(integer(WhatsappAccounts::ThroughputPerSecond).default(80))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Campaigns::Table)
                    .col(uuid(Campaigns::Id).primary_key())
                    .col(uuid(Campaigns::ProjectId))
                    .col(string_len(Campaigns::Name, 128))
                    .col(string_len(Campaigns::NameKey, 128))
                    .col(string_len(Campaigns::Kind, 16))
                    .col(uuid(Campaigns::TemplateId))
                    .col(text(Campaigns::Parameters))
                    .col(text_null(Campaigns::HeaderMediaLink))
                    .col(text_null(Campaigns::Audience))
                    .col(uuid_null(Campaigns::BroadcastTagId))
                    .col(string_len(Campaigns::Status, 16))
                    .col(text_null(Campaigns::StopReason))
                    .col(timestamp_with_time_zone_null(Campaigns::ScheduledAt))
                    .col(timestamp_with_time_zone_null(Campaigns::StartedAt))
                    .col(timestamp_with_time_zone_null(Campaigns::CompletedAt))
                    .col(timestamp_with_time_zone_null(Campaigns::CancelledAt))
                    .col(big_integer(Campaigns::Recipients).default(0))
                    .col(uuid_null(Campaigns::CreatedBy))
                    .col(timestamp_with_time_zone(Campaigns::CreatedAt))
                    .col(timestamp_with_time_zone(Campaigns::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Campaigns::Table, Campaigns::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("campaigns_project_name_key")
                    .table(Campaigns::Table)
                    .col(Campaigns::ProjectId)
                    .col(Campaigns::NameKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The scheduler's and the dispatcher's question: what is due or running.
        manager
            .create_index(
                Index::create()
                    .name("campaigns_status_scheduled_idx")
                    .table(Campaigns::Table)
                    .col(Campaigns::Status)
                    .col(Campaigns::ScheduledAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CampaignRecipients::Table)
                    .col(uuid(CampaignRecipients::CampaignId))
                    .col(uuid(CampaignRecipients::ContactId))
                    .col(uuid(CampaignRecipients::ProjectId))
                    .col(big_integer(CampaignRecipients::Seq))
                    .col(string_len(CampaignRecipients::Status, 16))
                    .col(string_len_null(CampaignRecipients::SkipReason, 32))
                    .col(uuid_null(CampaignRecipients::MessageId))
                    .col(big_integer_null(CampaignRecipients::ErrorCode))
                    .col(text_null(CampaignRecipients::ErrorTitle))
                    .col(string_len_null(CampaignRecipients::FailureGroup, 32))
                    .col(integer(CampaignRecipients::Attempts).default(0))
                    .col(timestamp_with_time_zone_null(
                        CampaignRecipients::NextAttemptAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        CampaignRecipients::ClaimedUntil,
                    ))
                    .col(timestamp_with_time_zone(CampaignRecipients::QueuedAt))
                    .col(timestamp_with_time_zone_null(CampaignRecipients::SentAt))
                    .col(timestamp_with_time_zone_null(
                        CampaignRecipients::DeliveredAt,
                    ))
                    .col(timestamp_with_time_zone_null(CampaignRecipients::ReadAt))
                    .col(timestamp_with_time_zone_null(CampaignRecipients::FailedAt))
                    .col(timestamp_with_time_zone_null(CampaignRecipients::ClickedAt))
                    .col(timestamp_with_time_zone_null(CampaignRecipients::RepliedAt))
                    .col(timestamp_with_time_zone(CampaignRecipients::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(CampaignRecipients::CampaignId)
                            .col(CampaignRecipients::ContactId),
                    )
                    .to_owned(),
            )
            .await?;
        // The dispatcher claims the next queued recipients of a campaign in order.
        manager
            .create_index(
                Index::create()
                    .name("campaign_recipients_queue_idx")
                    .table(CampaignRecipients::Table)
                    .col(CampaignRecipients::CampaignId)
                    .col(CampaignRecipients::Status)
                    .col(CampaignRecipients::Seq)
                    .to_owned(),
            )
            .await?;
        // Statuses and replies find the recipient by its message.
        manager
            .create_index(
                Index::create()
                    .name("campaign_recipients_message_idx")
                    .table(CampaignRecipients::Table)
                    .col(CampaignRecipients::MessageId)
                    .to_owned(),
            )
            .await?;
        // Retargeting and replies look up a contact's campaigns.
        manager
            .create_index(
                Index::create()
                    .name("campaign_recipients_contact_idx")
                    .table(CampaignRecipients::Table)
                    .col(CampaignRecipients::ContactId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReachedUsers::Table)
                    .col(uuid(ReachedUsers::ProjectId))
                    .col(uuid(ReachedUsers::ContactId))
                    .col(timestamp_with_time_zone(ReachedUsers::LastAt))
                    .primary_key(
                        Index::create()
                            .col(ReachedUsers::ProjectId)
                            .col(ReachedUsers::ContactId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("reached_users_project_time_idx")
                    .table(ReachedUsers::Table)
                    .col(ReachedUsers::ProjectId)
                    .col(ReachedUsers::LastAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiCalls::Table)
                    .col(uuid(ApiCalls::ProjectId))
                    .col(string_len(ApiCalls::IdempotencyKey, 200))
                    .col(string_len(ApiCalls::RequestHash, 64))
                    .col(text_null(ApiCalls::Response))
                    .col(timestamp_with_time_zone(ApiCalls::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ApiCalls::ProjectId)
                            .col(ApiCalls::IdempotencyKey),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TrackedLinks::Table)
                    .col(string_len(TrackedLinks::Token, 32).primary_key())
                    .col(uuid(TrackedLinks::ProjectId))
                    .col(uuid(TrackedLinks::CampaignId))
                    .col(uuid(TrackedLinks::ContactId))
                    .col(text(TrackedLinks::Url))
                    .col(timestamp_with_time_zone(TrackedLinks::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            TrackedLinks::Table.into_iden(),
            ApiCalls::Table.into_iden(),
            ReachedUsers::Table.into_iden(),
            CampaignRecipients::Table.into_iden(),
            Campaigns::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for column in [
            WhatsappAccounts::ThroughputPerSecond.into_iden(),
            WhatsappAccounts::MessagingLimit.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WhatsappAccounts::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
