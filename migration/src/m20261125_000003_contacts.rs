use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Tags {
    Table,
    Id,
    ProjectId,
    Name,
    NameKey,
    Kind,
    FirstMessageKeywords,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Attributes {
    Table,
    Id,
    ProjectId,
    Key,
    KeyLower,
    DisplayName,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
    ProjectId,
    Name,
    Phone,
    Bsuid,
    Source,
    FirstMessageTagId,
    OptedIn,
    OptedInAt,
    OptedInSource,
    IncomingBlocked,
    State,
    LastActiveAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ContactTags {
    Table,
    ContactId,
    TagId,
    ProjectId,
    AddedAt,
    AddedBy,
}

#[derive(DeriveIden)]
enum ContactAttributes {
    Table,
    ContactId,
    AttributeId,
    ProjectId,
    Value,
}

#[derive(DeriveIden)]
enum ContactEvents {
    Table,
    Id,
    ProjectId,
    ContactId,
    Kind,
    ActorKind,
    ActorId,
    Data,
    OccurredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tags::Table)
                    .col(uuid(Tags::Id).primary_key())
                    .col(uuid(Tags::ProjectId))
                    .col(string_len(Tags::Name, 64))
                    .col(string_len(Tags::NameKey, 64))
                    .col(string_len(Tags::Kind, 16))
                    .col(text_null(Tags::FirstMessageKeywords))
                    .col(timestamp_with_time_zone(Tags::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tags::Table, Tags::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        unique(
            manager,
            "tags_project_name_key",
            Tags::Table,
            &[Tags::ProjectId.into_iden(), Tags::NameKey.into_iden()],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Attributes::Table)
                    .col(uuid(Attributes::Id).primary_key())
                    .col(uuid(Attributes::ProjectId))
                    .col(string_len(Attributes::Key, 64))
                    .col(string_len(Attributes::KeyLower, 64))
                    .col(string_len(Attributes::DisplayName, 128))
                    .col(timestamp_with_time_zone(Attributes::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Attributes::Table, Attributes::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        unique(
            manager,
            "attributes_project_key_key",
            Attributes::Table,
            &[
                Attributes::ProjectId.into_iden(),
                Attributes::KeyLower.into_iden(),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Contacts::Table)
                    .col(uuid(Contacts::Id).primary_key())
                    .col(uuid(Contacts::ProjectId))
                    .col(string_len(Contacts::Name, 256))
                    .col(string_len_null(Contacts::Phone, 20))
                    .col(string_len_null(Contacts::Bsuid, 64))
                    .col(string_len(Contacts::Source, 128))
                    .col(uuid_null(Contacts::FirstMessageTagId))
                    .col(boolean(Contacts::OptedIn).default(true))
                    .col(timestamp_with_time_zone_null(Contacts::OptedInAt))
                    .col(string_len_null(Contacts::OptedInSource, 128))
                    .col(boolean(Contacts::IncomingBlocked).default(false))
                    .col(string_len(Contacts::State, 32))
                    .col(timestamp_with_time_zone_null(Contacts::LastActiveAt))
                    .col(timestamp_with_time_zone(Contacts::CreatedAt))
                    .col(timestamp_with_time_zone(Contacts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Contacts::Table, Contacts::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // NULLs are distinct in both backends: contacts without a phone (or BSUID) coexist.
        unique(
            manager,
            "contacts_project_phone_key",
            Contacts::Table,
            &[Contacts::ProjectId.into_iden(), Contacts::Phone.into_iden()],
        )
        .await?;
        unique(
            manager,
            "contacts_project_bsuid_key",
            Contacts::Table,
            &[Contacts::ProjectId.into_iden(), Contacts::Bsuid.into_iden()],
        )
        .await?;
        index(
            manager,
            "contacts_project_id_idx",
            Contacts::Table,
            &[Contacts::ProjectId.into_iden(), Contacts::Id.into_iden()],
        )
        .await?;
        index(
            manager,
            "contacts_project_active_idx",
            Contacts::Table,
            &[
                Contacts::ProjectId.into_iden(),
                Contacts::LastActiveAt.into_iden(),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ContactTags::Table)
                    .col(uuid(ContactTags::ContactId))
                    .col(uuid(ContactTags::TagId))
                    .col(uuid(ContactTags::ProjectId))
                    .col(timestamp_with_time_zone(ContactTags::AddedAt))
                    .col(uuid_null(ContactTags::AddedBy))
                    .primary_key(
                        Index::create()
                            .col(ContactTags::ContactId)
                            .col(ContactTags::TagId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ContactTags::Table, ContactTags::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ContactTags::Table, ContactTags::TagId)
                            .to(Tags::Table, Tags::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "contact_tags_tag_idx",
            ContactTags::Table,
            &[
                ContactTags::TagId.into_iden(),
                ContactTags::ContactId.into_iden(),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ContactAttributes::Table)
                    .col(uuid(ContactAttributes::ContactId))
                    .col(uuid(ContactAttributes::AttributeId))
                    .col(uuid(ContactAttributes::ProjectId))
                    .col(text(ContactAttributes::Value))
                    .primary_key(
                        Index::create()
                            .col(ContactAttributes::ContactId)
                            .col(ContactAttributes::AttributeId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ContactAttributes::Table, ContactAttributes::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ContactAttributes::Table, ContactAttributes::AttributeId)
                            .to(Attributes::Table, Attributes::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "contact_attributes_attribute_idx",
            ContactAttributes::Table,
            &[
                ContactAttributes::AttributeId.into_iden(),
                ContactAttributes::ContactId.into_iden(),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ContactEvents::Table)
                    .col(uuid(ContactEvents::Id).primary_key())
                    .col(uuid(ContactEvents::ProjectId))
                    .col(uuid(ContactEvents::ContactId))
                    .col(string_len(ContactEvents::Kind, 64))
                    .col(string_len(ContactEvents::ActorKind, 16))
                    .col(uuid_null(ContactEvents::ActorId))
                    .col(text(ContactEvents::Data))
                    .col(timestamp_with_time_zone(ContactEvents::OccurredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ContactEvents::Table, ContactEvents::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "contact_events_contact_idx",
            ContactEvents::Table,
            &[
                ContactEvents::ContactId.into_iden(),
                ContactEvents::Id.into_iden(),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ContactEvents::Table.into_iden(),
            ContactAttributes::Table.into_iden(),
            ContactTags::Table.into_iden(),
            Contacts::Table.into_iden(),
            Attributes::Table.into_iden(),
            Tags::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn unique(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden + 'static,
    cols: &[DynIden],
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(table).unique();
    for col in cols {
        index.col(col.clone());
    }
    manager.create_index(index.to_owned()).await
}

async fn index(
    manager: &SchemaManager<'_>,
    name: &str,
    table: impl IntoIden + 'static,
    cols: &[DynIden],
) -> Result<(), DbErr> {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(col.clone());
    }
    manager.create_index(index.to_owned()).await
}
