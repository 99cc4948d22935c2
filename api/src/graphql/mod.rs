//! The GraphQL schema (assembled from each domain's objects) and its transports.

pub mod document_limits;
pub mod http;
pub mod loaders;
pub mod plain;
pub mod relay;
pub mod revocations;
pub mod shared;
pub mod types;
pub mod ws;

use async_graphql::{Context, MergedObject, MergedSubscription, Schema, dataloader::DataLoader};

use crate::{
    accounts::graphql::{AccountsMutation, AccountsQuery},
    agents::graphql::{AgentsMutation, AgentsQuery},
    auth::{RequestAuth, Scope},
    billing::{
        graphql::{BillingMutation, BillingQuery, BillingSubscription},
        reports::BillingReportsQuery,
    },
    campaigns::{
        api_graphql::ApiCampaignsMutation,
        graphql::{CampaignsMutation, CampaignsQuery, CampaignsSubscription},
    },
    chat::graphql::{ChatMutation, ChatQuery, ChatSubscription, MessageLoader},
    config::GraphqlSettings,
    contacts::{
        graphql::{ContactsMutation, ContactsQuery},
        import::graphql::{ImportMutation, ImportQuery, ImportSubscription},
        loaders::{ContactAttributesLoader, ContactTagsLoader},
    },
    errors::AppError,
    messages::graphql::{MessagesMutation, MessagesQuery, MessagesSubscription},
    onboarding::graphql::{OnboardingMutation, OnboardingQuery},
    projects::graphql::{ProjectsMutation, ProjectsQuery, ProjectsSubscription},
    reports::graphql::ReportsQuery,
    state::AppState,
    templates::graphql::{TemplatesMutation, TemplatesQuery},
    whatsapp::graphql::{WhatsAppMutation, WhatsAppQuery},
};

#[derive(MergedObject, Default)]
pub struct Query(
    AccountsQuery,
    ProjectsQuery,
    AgentsQuery,
    ContactsQuery,
    ImportQuery,
    ReportsQuery,
    WhatsAppQuery,
    TemplatesQuery,
    MessagesQuery,
    ChatQuery,
    BillingQuery,
    BillingReportsQuery,
    CampaignsQuery,
    OnboardingQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    AccountsMutation,
    ProjectsMutation,
    AgentsMutation,
    ContactsMutation,
    ImportMutation,
    WhatsAppMutation,
    TemplatesMutation,
    MessagesMutation,
    ChatMutation,
    BillingMutation,
    CampaignsMutation,
    ApiCampaignsMutation,
    OnboardingMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    ProjectsSubscription,
    ImportSubscription,
    MessagesSubscription,
    ChatSubscription,
    BillingSubscription,
    CampaignsSubscription,
);

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Directives one field may carry (`@include`, `@skip`...).
pub const MAX_DIRECTIVES_PER_FIELD: usize = 10;

/// The schema without runtime data: enough to print the SDL.
pub fn schema_builder() -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
}

pub fn build_schema(state: AppState, settings: &GraphqlSettings) -> AppSchema {
    let mut builder = schema_builder()
        .data(state)
        .limit_depth(settings.max_depth)
        .limit_complexity(settings.max_complexity)
        // Directives are not priced by complexity: thousands on one field would all run.
        .limit_directives(MAX_DIRECTIVES_PER_FIELD);
    // Without introspection, "did you mean" would still spell out the schema field by field.
    if !settings.introspection || !settings.suggestions {
        builder = builder.disable_suggestions();
    }
    if !settings.introspection {
        builder = builder.disable_introspection();
    }
    builder.finish()
}

/// The SDL the frontends code against, with fields and enum values sorted.
pub fn sdl() -> String {
    schema_builder().finish().sdl_with_options(
        async_graphql::SDLExportOptions::new()
            .sorted_fields()
            .sorted_arguments()
            .sorted_enum_items(),
    )
}

/// Per-request data: the caller and DataLoaders that live as long as this one request,
/// so no cached row ever crosses from one caller (or tenant) to another.
pub fn request_data(
    request: async_graphql::Request,
    state: &AppState,
    auth: RequestAuth,
) -> async_graphql::Request {
    let db = || state.db.clone();
    let project_id = auth.scope().ok().map(|s| s.project_id);
    request
        .data(DataLoader::new(
            MessageLoader {
                db: db(),
                project_id,
            },
            tokio::spawn,
        ))
        .data(DataLoader::new(
            crate::billing::graphql::MessageChargeLoader {
                db: db(),
                project_id,
            },
            tokio::spawn,
        ))
        .data(auth)
        .data(DataLoader::new(
            loaders::UserLoader::new(db()),
            tokio::spawn,
        ))
        // Without a cache: the fields of one request's mutations run in turn, and each must
        // see the tags and values the one before it left.
        .data(DataLoader::new(
            ContactTagsLoader { db: db() },
            tokio::spawn,
        ))
        .data(DataLoader::new(
            ContactAttributesLoader { db: db() },
            tokio::spawn,
        ))
}

pub(crate) fn app_state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

pub(crate) fn request_auth<'a>(ctx: &Context<'a>) -> &'a RequestAuth {
    ctx.data_unchecked::<RequestAuth>()
}

pub(crate) fn scope<'a>(ctx: &Context<'a>) -> Result<&'a Scope, AppError> {
    request_auth(ctx).scope()
}
