//! Onboarding: what a project knows about its business (the application checklist and
//! the green tick evidence), its WhatsApp Business API applications (the embedded sign-up
//! state machine) with their audit trail, green tick applications, and the requests made
//! to leave (downgrading the number, disabling two-step verification).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OnboardingProfiles {
    Table,
    ProjectId,
    Answers,
    UpdatedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OnboardingApplications {
    Table,
    Id,
    ProjectId,
    OpenKey,
    Provider,
    Step,
    Status,
    Attempts,
    FailureStep,
    FailureCode,
    FailureReason,
    FailureRetryable,
    FailedAt,
    PendingUntil,
    Pending,
    AccessToken,
    BusinessManagerId,
    BusinessManagerName,
    WabaId,
    WabaName,
    Timezone,
    DisplayName,
    Category,
    Description,
    PhoneNumber,
    PhoneNumberId,
    CodeMethod,
    BehindIvr,
    TwoStepEnabled,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    LiveAt,
    ClosedAt,
}

#[derive(DeriveIden)]
enum OnboardingEvents {
    Table,
    Id,
    ApplicationId,
    ProjectId,
    Step,
    Action,
    Outcome,
    Reason,
    ActorId,
    Details,
    CreatedAt,
}

#[derive(DeriveIden)]
enum GreenTickApplications {
    Table,
    Id,
    ProjectId,
    Status,
    Criteria,
    SubmittedBy,
    SubmittedAt,
    DecidedAt,
    DecisionReason,
    RevokedAt,
}

#[derive(DeriveIden)]
enum LeavingRequests {
    Table,
    Id,
    ProjectId,
    ApplicationId,
    Kind,
    Status,
    PhoneNumber,
    NewProvider,
    Reason,
    DataDeletion,
    RequestedBy,
    RequestedAt,
    EarliestCompletionAt,
    LatestCompletionAt,
    CompletedAt,
    CancelledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OnboardingProfiles::Table)
                    .col(uuid(OnboardingProfiles::ProjectId).primary_key())
                    .col(text(OnboardingProfiles::Answers))
                    .col(uuid_null(OnboardingProfiles::UpdatedBy))
                    .col(timestamp_with_time_zone(OnboardingProfiles::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OnboardingProfiles::Table, OnboardingProfiles::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OnboardingApplications::Table)
                    .col(uuid(OnboardingApplications::Id).primary_key())
                    .col(uuid(OnboardingApplications::ProjectId))
                    // The project's id while the application is open (not live, cancelled
                    // or replaced): unique, so a project has one open application at most.
                    .col(uuid_null(OnboardingApplications::OpenKey).unique_key())
                    .col(string_len(OnboardingApplications::Provider, 16))
                    .col(string_len(OnboardingApplications::Step, 32))
                    .col(string_len(OnboardingApplications::Status, 16))
                    .col(integer(OnboardingApplications::Attempts).default(0))
                    .col(string_len_null(OnboardingApplications::FailureStep, 32))
                    .col(string_len_null(OnboardingApplications::FailureCode, 64))
                    .col(text_null(OnboardingApplications::FailureReason))
                    .col(boolean(OnboardingApplications::FailureRetryable).default(false))
                    .col(timestamp_with_time_zone_null(
                        OnboardingApplications::FailedAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        OnboardingApplications::PendingUntil,
                    ))
                    .col(text_null(OnboardingApplications::Pending))
                    .col(text_null(OnboardingApplications::AccessToken))
                    .col(string_len_null(
                        OnboardingApplications::BusinessManagerId,
                        64,
                    ))
                    .col(text_null(OnboardingApplications::BusinessManagerName))
                    .col(string_len_null(OnboardingApplications::WabaId, 64))
                    .col(text_null(OnboardingApplications::WabaName))
                    .col(string_len_null(OnboardingApplications::Timezone, 64))
                    .col(text_null(OnboardingApplications::DisplayName))
                    .col(string_len_null(OnboardingApplications::Category, 32))
                    .col(text_null(OnboardingApplications::Description))
                    .col(string_len_null(OnboardingApplications::PhoneNumber, 20))
                    .col(string_len_null(OnboardingApplications::PhoneNumberId, 64))
                    .col(string_len_null(OnboardingApplications::CodeMethod, 8))
                    .col(boolean(OnboardingApplications::BehindIvr).default(false))
                    .col(boolean(OnboardingApplications::TwoStepEnabled).default(false))
                    .col(uuid_null(OnboardingApplications::CreatedBy))
                    .col(timestamp_with_time_zone(OnboardingApplications::CreatedAt))
                    .col(timestamp_with_time_zone(OnboardingApplications::UpdatedAt))
                    .col(timestamp_with_time_zone_null(
                        OnboardingApplications::LiveAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        OnboardingApplications::ClosedAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                OnboardingApplications::Table,
                                OnboardingApplications::ProjectId,
                            )
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("onboarding_applications_project_idx")
                    .table(OnboardingApplications::Table)
                    .col(OnboardingApplications::ProjectId)
                    .col(OnboardingApplications::Id)
                    .to_owned(),
            )
            .await?;
        // "One number serves one API client": other projects' applications by number.
        manager
            .create_index(
                Index::create()
                    .name("onboarding_applications_phone_idx")
                    .table(OnboardingApplications::Table)
                    .col(OnboardingApplications::PhoneNumber)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OnboardingEvents::Table)
                    .col(uuid(OnboardingEvents::Id).primary_key())
                    .col(uuid(OnboardingEvents::ApplicationId))
                    .col(uuid(OnboardingEvents::ProjectId))
                    .col(string_len(OnboardingEvents::Step, 32))
                    .col(string_len(OnboardingEvents::Action, 32))
                    .col(string_len(OnboardingEvents::Outcome, 16))
                    .col(text_null(OnboardingEvents::Reason))
                    .col(uuid_null(OnboardingEvents::ActorId))
                    .col(text_null(OnboardingEvents::Details))
                    .col(timestamp_with_time_zone(OnboardingEvents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OnboardingEvents::Table, OnboardingEvents::ApplicationId)
                            .to(OnboardingApplications::Table, OnboardingApplications::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("onboarding_events_application_idx")
                    .table(OnboardingEvents::Table)
                    .col(OnboardingEvents::ApplicationId)
                    .col(OnboardingEvents::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(GreenTickApplications::Table)
                    .col(uuid(GreenTickApplications::Id).primary_key())
                    .col(uuid(GreenTickApplications::ProjectId))
                    .col(string_len(GreenTickApplications::Status, 16))
                    .col(text(GreenTickApplications::Criteria))
                    .col(uuid_null(GreenTickApplications::SubmittedBy))
                    .col(timestamp_with_time_zone(GreenTickApplications::SubmittedAt))
                    .col(timestamp_with_time_zone_null(
                        GreenTickApplications::DecidedAt,
                    ))
                    .col(text_null(GreenTickApplications::DecisionReason))
                    .col(timestamp_with_time_zone_null(
                        GreenTickApplications::RevokedAt,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                GreenTickApplications::Table,
                                GreenTickApplications::ProjectId,
                            )
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("green_tick_applications_project_idx")
                    .table(GreenTickApplications::Table)
                    .col(GreenTickApplications::ProjectId)
                    .col(GreenTickApplications::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LeavingRequests::Table)
                    .col(uuid(LeavingRequests::Id).primary_key())
                    .col(uuid(LeavingRequests::ProjectId))
                    .col(uuid_null(LeavingRequests::ApplicationId))
                    .col(string_len(LeavingRequests::Kind, 32))
                    .col(string_len(LeavingRequests::Status, 16))
                    .col(string_len_null(LeavingRequests::PhoneNumber, 20))
                    .col(text_null(LeavingRequests::NewProvider))
                    .col(text_null(LeavingRequests::Reason))
                    .col(text_null(LeavingRequests::DataDeletion))
                    .col(uuid_null(LeavingRequests::RequestedBy))
                    .col(timestamp_with_time_zone(LeavingRequests::RequestedAt))
                    .col(timestamp_with_time_zone_null(
                        LeavingRequests::EarliestCompletionAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        LeavingRequests::LatestCompletionAt,
                    ))
                    .col(timestamp_with_time_zone_null(LeavingRequests::CompletedAt))
                    .col(timestamp_with_time_zone_null(LeavingRequests::CancelledAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(LeavingRequests::Table, LeavingRequests::ProjectId)
                            .to(Projects::Table, Projects::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("leaving_requests_project_idx")
                    .table(LeavingRequests::Table)
                    .col(LeavingRequests::ProjectId)
                    .col(LeavingRequests::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LeavingRequests::Table.into_iden(),
            GreenTickApplications::Table.into_iden(),
            OnboardingEvents::Table.into_iden(),
            OnboardingApplications::Table.into_iden(),
            OnboardingProfiles::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
