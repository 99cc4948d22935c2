//! Live chat: who handles each contact's chat, a per-project sequence of chat events
//! (so that a client that reconnects catches up from its last one), and the assistant's
//! settings.

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
    State,
    LastActiveAt,
}

#[derive(DeriveIden)]
enum Chats {
    Table,
    ContactId,
    ProjectId,
    AgentId,
    StateChangedAt,
    RequestedAt,
    IntervenedAt,
    LastMessageAt,
    LastMessageId,
}

#[derive(DeriveIden)]
enum ChatEvents {
    Table,
    ProjectId,
    Seq,
    ContactId,
    Topic,
    AgentId,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ProjectSequences {
    Table,
    ProjectId,
    LastSeq,
}

#[derive(DeriveIden)]
enum AssistantSettings {
    Table,
    ProjectId,
    Enabled,
    Greeting,
    HandoverKeywords,
    HandoverReply,
    Replies,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Chats::Table)
                    .col(uuid(Chats::ContactId).primary_key())
                    .col(uuid(Chats::ProjectId))
                    .col(uuid_null(Chats::AgentId))
                    .col(timestamp_with_time_zone(Chats::StateChangedAt))
                    .col(timestamp_with_time_zone_null(Chats::RequestedAt))
                    .col(timestamp_with_time_zone_null(Chats::IntervenedAt))
                    .col(timestamp_with_time_zone_null(Chats::LastMessageAt))
                    .col(uuid_null(Chats::LastMessageId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Chats::Table, Chats::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("chats_project_agent_idx")
                    .table(Chats::Table)
                    .col(Chats::ProjectId)
                    .col(Chats::AgentId)
                    .to_owned(),
            )
            .await?;

        // The History sweep's question: which live chats fell silent before the cutoff.
        manager
            .create_index(
                Index::create()
                    .name("contacts_state_last_active_idx")
                    .table(Contacts::Table)
                    .col(Contacts::State)
                    .col(Contacts::LastActiveAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProjectSequences::Table)
                    .col(uuid(ProjectSequences::ProjectId).primary_key())
                    .col(big_integer(ProjectSequences::LastSeq))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ProjectSequences::Table, ProjectSequences::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ChatEvents::Table)
                    .col(uuid(ChatEvents::ProjectId))
                    .col(big_integer(ChatEvents::Seq))
                    .col(uuid_null(ChatEvents::ContactId))
                    .col(string_len(ChatEvents::Topic, 32))
                    .col(uuid_null(ChatEvents::AgentId))
                    .col(text(ChatEvents::Payload))
                    .col(timestamp_with_time_zone(ChatEvents::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ChatEvents::ProjectId)
                            .col(ChatEvents::Seq),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AssistantSettings::Table)
                    .col(uuid(AssistantSettings::ProjectId).primary_key())
                    .col(boolean(AssistantSettings::Enabled))
                    .col(text_null(AssistantSettings::Greeting))
                    .col(text(AssistantSettings::HandoverKeywords))
                    .col(text_null(AssistantSettings::HandoverReply))
                    .col(text(AssistantSettings::Replies))
                    .col(timestamp_with_time_zone(AssistantSettings::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(AssistantSettings::Table, AssistantSettings::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("contacts_state_last_active_idx")
                    .table(Contacts::Table)
                    .to_owned(),
            )
            .await?;
        for table in [
            AssistantSettings::Table.into_iden(),
            ChatEvents::Table.into_iden(),
            ProjectSequences::Table.into_iden(),
            Chats::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
