use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AnalyticsOutbox {
    Table,
    Seq,
    EventId,
    ProjectId,
    Kind,
    ActorId,
    OccurredAt,
    Payload,
    ShippedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AnalyticsOutbox::Table)
                    .col(
                        big_integer(AnalyticsOutbox::Seq)
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(uuid_uniq(AnalyticsOutbox::EventId))
                    .col(uuid(AnalyticsOutbox::ProjectId))
                    .col(string_len(AnalyticsOutbox::Kind, 64))
                    .col(uuid_null(AnalyticsOutbox::ActorId))
                    .col(timestamp_with_time_zone(AnalyticsOutbox::OccurredAt))
                    .col(text(AnalyticsOutbox::Payload))
                    .col(timestamp_with_time_zone_null(AnalyticsOutbox::ShippedAt))
                    .to_owned(),
            )
            .await?;
        // The shipper only ever looks for unshipped rows in order: a partial index keeps
        // that lookup small however long the shipped history grows (both backends have it).
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX analytics_outbox_unshipped_idx ON analytics_outbox (seq) \
                 WHERE shipped_at IS NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AnalyticsOutbox::Table).to_owned())
            .await
    }
}
