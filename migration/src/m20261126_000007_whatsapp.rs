//! The WhatsApp channel: per-project Cloud API accounts, webhook deliveries stored before
//! they are acknowledged, messages with their status history, and templates.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum WhatsappAccounts {
    Table,
    ProjectId,
    Provider,
    WabaId,
    PhoneNumberId,
    DisplayPhoneNumber,
    AccessToken,
    AppSecret,
    VerifyToken,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    Id,
    Source,
    ProjectId,
    Body,
    State,
    Attempts,
    Error,
    ReceivedAt,
    AvailableAt,
    ProcessedAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ProjectId,
    ContactId,
    Direction,
    Kind,
    Content,
    WaMessageId,
    Status,
    ErrorCode,
    ErrorTitle,
    TemplateId,
    ContextWaMessageId,
    ReplyToMessageId,
    Referral,
    Pricing,
    SentBy,
    OccurredAt,
    SentAt,
    DeliveredAt,
    ReadAt,
    FailedAt,
    RepliedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MessageStatuses {
    Table,
    Id,
    ProjectId,
    WaMessageId,
    Status,
    OccurredAt,
    RecipientId,
    ErrorCode,
    ErrorTitle,
    ErrorDetails,
    Pricing,
    Conversation,
    Inferred,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum ContactMessaging {
    Table,
    ContactId,
    ProjectId,
    FirstInboundAt,
    LastInboundAt,
    FirstMessageTagByRule,
    ConsentChangedAt,
}

#[derive(DeriveIden)]
enum Templates {
    Table,
    Id,
    ProjectId,
    Name,
    Language,
    Category,
    ParameterFormat,
    Components,
    Status,
    MetaTemplateId,
    RejectionReason,
    PreviousCategory,
    StatusChangedAt,
    SubmittedAt,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WhatsappAccounts::Table)
                    .col(uuid(WhatsappAccounts::ProjectId).primary_key())
                    .col(string_len(WhatsappAccounts::Provider, 16))
                    .col(string_len(WhatsappAccounts::WabaId, 64))
                    .col(string_len(WhatsappAccounts::PhoneNumberId, 64))
                    .col(string_len_null(WhatsappAccounts::DisplayPhoneNumber, 32))
                    .col(text_null(WhatsappAccounts::AccessToken))
                    .col(text_null(WhatsappAccounts::AppSecret))
                    .col(string_len_null(WhatsappAccounts::VerifyToken, 128))
                    .col(timestamp_with_time_zone(WhatsappAccounts::CreatedAt))
                    .col(timestamp_with_time_zone(WhatsappAccounts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WhatsappAccounts::Table, WhatsappAccounts::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "whatsapp_accounts_phone_number_key",
            WhatsappAccounts::Table,
            &[WhatsappAccounts::PhoneNumberId.into_iden()],
            true,
        )
        .await?;
        index(
            manager,
            "whatsapp_accounts_waba_idx",
            WhatsappAccounts::Table,
            &[WhatsappAccounts::WabaId.into_iden()],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookEvents::Table)
                    .col(uuid(WebhookEvents::Id).primary_key())
                    .col(string_len(WebhookEvents::Source, 16))
                    .col(uuid_null(WebhookEvents::ProjectId))
                    .col(text(WebhookEvents::Body))
                    .col(string_len(WebhookEvents::State, 16))
                    .col(integer(WebhookEvents::Attempts).default(0))
                    .col(text_null(WebhookEvents::Error))
                    .col(timestamp_with_time_zone(WebhookEvents::ReceivedAt))
                    .col(timestamp_with_time_zone(WebhookEvents::AvailableAt))
                    .col(timestamp_with_time_zone_null(WebhookEvents::ProcessedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "webhook_events_due_idx",
            WebhookEvents::Table,
            &[
                WebhookEvents::State.into_iden(),
                WebhookEvents::AvailableAt.into_iden(),
            ],
            false,
        )
        .await?;
        index(
            manager,
            "webhook_events_project_idx",
            WebhookEvents::Table,
            &[
                WebhookEvents::ProjectId.into_iden(),
                WebhookEvents::State.into_iden(),
            ],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Templates::Table)
                    .col(uuid(Templates::Id).primary_key())
                    .col(uuid(Templates::ProjectId))
                    .col(string_len(Templates::Name, 512))
                    .col(string_len(Templates::Language, 16))
                    .col(string_len(Templates::Category, 16))
                    .col(string_len(Templates::ParameterFormat, 16))
                    .col(text(Templates::Components))
                    .col(string_len(Templates::Status, 16))
                    .col(string_len_null(Templates::MetaTemplateId, 64))
                    .col(text_null(Templates::RejectionReason))
                    .col(string_len_null(Templates::PreviousCategory, 16))
                    .col(timestamp_with_time_zone_null(Templates::StatusChangedAt))
                    .col(timestamp_with_time_zone_null(Templates::SubmittedAt))
                    .col(uuid_null(Templates::CreatedBy))
                    .col(timestamp_with_time_zone(Templates::CreatedAt))
                    .col(timestamp_with_time_zone(Templates::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Templates::Table, Templates::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "templates_project_name_language_key",
            Templates::Table,
            &[
                Templates::ProjectId.into_iden(),
                Templates::Name.into_iden(),
                Templates::Language.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            manager,
            "templates_project_meta_id_key",
            Templates::Table,
            &[
                Templates::ProjectId.into_iden(),
                Templates::MetaTemplateId.into_iden(),
            ],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(uuid(Messages::Id).primary_key())
                    .col(uuid(Messages::ProjectId))
                    .col(uuid(Messages::ContactId))
                    .col(string_len(Messages::Direction, 8))
                    .col(string_len(Messages::Kind, 24))
                    .col(text(Messages::Content))
                    .col(string_len_null(Messages::WaMessageId, 160))
                    .col(string_len(Messages::Status, 16))
                    .col(big_integer_null(Messages::ErrorCode))
                    .col(text_null(Messages::ErrorTitle))
                    .col(uuid_null(Messages::TemplateId))
                    .col(string_len_null(Messages::ContextWaMessageId, 160))
                    .col(uuid_null(Messages::ReplyToMessageId))
                    .col(text_null(Messages::Referral))
                    .col(text_null(Messages::Pricing))
                    .col(uuid_null(Messages::SentBy))
                    .col(timestamp_with_time_zone(Messages::OccurredAt))
                    .col(timestamp_with_time_zone_null(Messages::SentAt))
                    .col(timestamp_with_time_zone_null(Messages::DeliveredAt))
                    .col(timestamp_with_time_zone_null(Messages::ReadAt))
                    .col(timestamp_with_time_zone_null(Messages::FailedAt))
                    .col(timestamp_with_time_zone_null(Messages::RepliedAt))
                    .col(timestamp_with_time_zone(Messages::CreatedAt))
                    .col(timestamp_with_time_zone(Messages::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Messages::Table, Messages::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "messages_project_wa_id_key",
            Messages::Table,
            &[
                Messages::ProjectId.into_iden(),
                Messages::WaMessageId.into_iden(),
            ],
            true,
        )
        .await?;
        index(
            manager,
            "messages_contact_time_idx",
            Messages::Table,
            &[
                Messages::ContactId.into_iden(),
                Messages::OccurredAt.into_iden(),
                Messages::Id.into_iden(),
            ],
            false,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(MessageStatuses::Table)
                    .col(uuid(MessageStatuses::Id).primary_key())
                    .col(uuid(MessageStatuses::ProjectId))
                    .col(string_len(MessageStatuses::WaMessageId, 160))
                    .col(string_len(MessageStatuses::Status, 16))
                    .col(timestamp_with_time_zone(MessageStatuses::OccurredAt))
                    .col(string_len_null(MessageStatuses::RecipientId, 64))
                    .col(big_integer_null(MessageStatuses::ErrorCode))
                    .col(text_null(MessageStatuses::ErrorTitle))
                    .col(text_null(MessageStatuses::ErrorDetails))
                    .col(text_null(MessageStatuses::Pricing))
                    .col(text_null(MessageStatuses::Conversation))
                    .col(boolean(MessageStatuses::Inferred).default(false))
                    .col(timestamp_with_time_zone(MessageStatuses::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "message_statuses_once_key",
            MessageStatuses::Table,
            &[
                MessageStatuses::ProjectId.into_iden(),
                MessageStatuses::WaMessageId.into_iden(),
                MessageStatuses::Status.into_iden(),
            ],
            true,
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ContactMessaging::Table)
                    .col(uuid(ContactMessaging::ContactId).primary_key())
                    .col(uuid(ContactMessaging::ProjectId))
                    .col(timestamp_with_time_zone_null(
                        ContactMessaging::FirstInboundAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        ContactMessaging::LastInboundAt,
                    ))
                    .col(boolean(ContactMessaging::FirstMessageTagByRule).default(false))
                    .col(timestamp_with_time_zone_null(
                        ContactMessaging::ConsentChangedAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ContactMessaging::Table, ContactMessaging::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ContactMessaging::Table.into_iden(),
            MessageStatuses::Table.into_iden(),
            Messages::Table.into_iden(),
            Templates::Table.into_iden(),
            WebhookEvents::Table.into_iden(),
            WhatsappAccounts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden + 'static,
    cols: &[DynIden],
    unique: bool,
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(table);
    if unique {
        index.unique();
    }
    for col in cols {
        index.col(col.clone());
    }
    manager.create_index(index.to_owned()).await
}
