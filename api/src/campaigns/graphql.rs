//! Campaigns over GraphQL: broadcasts and their lifecycle, per-recipient outcomes (a
//! connection and CSV), counts, and live progress.

use async_graphql::{
    Context, Enum, ID, InputObject, Object, Result, SimpleObject, Subscription,
    connection::Connection,
};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use parley_entity::{campaign, campaign_recipient, whatsapp_account};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use super::{
    model::{self, Audience},
    progress,
    service::{self, NewBroadcast, When},
};
use crate::{
    auth::{Role, RoleGuard, guard::OWNER},
    contacts::graphql::{ContactFilterInput, to_filter},
    errors::AppError,
    graphql::{app_state, relay, scope},
    messages::graphql::{Message, TemplateParameterInput},
    pagination,
    projects::graphql::parse_id,
    templates::service::ParameterInput,
};

/// Who runs campaigns.
const CAMPAIGNERS: &[Role] = &[Role::Owner, Role::Manager];
/// Who reads campaign results.
const CAMPAIGN_READERS: &[Role] = &[Role::Owner, Role::Manager, Role::Finance];

pub struct Campaign(pub campaign::Model);

#[Object]
impl Campaign {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// `BROADCAST` or `API`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// `DRAFT`, `SCHEDULED`, `RUNNING`, `PAUSED`, `COMPLETED`, `CANCELLED`, `STOPPED`;
    /// `LIVE` for API campaigns.
    async fn status(&self) -> &str {
        &self.0.status
    }
    /// Why it paused or stopped by itself.
    async fn stop_reason(&self) -> Option<&str> {
        self.0.stop_reason.as_deref()
    }
    async fn template_id(&self) -> ID {
        ID(self.0.template_id.to_string())
    }
    async fn scheduled_at(&self) -> Option<DateTime<Utc>> {
        self.0.scheduled_at
    }
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    async fn cancelled_at(&self) -> Option<DateTime<Utc>> {
        self.0.cancelled_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Recipients in the audience snapshot (skipped ones included).
    async fn recipients_count(&self) -> i64 {
        self.0.recipients
    }
    /// Where the recipients got to, now.
    async fn counts(&self, ctx: &Context<'_>) -> Result<CampaignCounts> {
        Ok(progress::counts(&app_state(ctx).db, self.0.id)
            .await?
            .into())
    }
    /// Shares of the messages sent (0 to 1): delivered, read, replied, clicked; failed is a
    /// share of those attempted (sent and failed).
    async fn rates(&self, ctx: &Context<'_>) -> Result<CampaignRates> {
        let c = progress::counts(&app_state(ctx).db, self.0.id).await?;
        let share = |n: i64, of: i64| if of > 0 { n as f64 / of as f64 } else { 0.0 };
        Ok(CampaignRates {
            delivered: share(c.delivered, c.sent),
            read: share(c.read, c.sent),
            replied: share(c.replied, c.sent),
            clicked: share(c.clicked, c.sent),
            failed: share(c.failed, c.sent + c.failed),
        })
    }
    /// Failed recipients per group (`LIMITED_BY_META`, `UNDELIVERABLE`, `OUTSIDE_WINDOW`,
    /// `TEMPLATE_PAUSED`, `OTHER`).
    async fn failures_by_group(&self, ctx: &Context<'_>) -> Result<Vec<FailureGroupCount>> {
        use sea_orm::{FromQueryResult, QuerySelect};
        #[derive(FromQueryResult)]
        struct Row {
            failure_group: Option<String>,
            n: i64,
        }
        let rows = campaign_recipient::Entity::find()
            .select_only()
            .column(campaign_recipient::Column::FailureGroup)
            .column_as(
                Expr::col(campaign_recipient::Column::ContactId).count(),
                "n",
            )
            .filter(campaign_recipient::Column::CampaignId.eq(self.0.id))
            .filter(campaign_recipient::Column::Status.eq(model::FAILED))
            .group_by(campaign_recipient::Column::FailureGroup)
            .into_model::<Row>()
            .all(&app_state(ctx).db)
            .await
            .map_err(AppError::from)?;
        let mut groups: Vec<FailureGroupCount> = rows
            .into_iter()
            .map(|r| FailureGroupCount {
                group: r.failure_group.unwrap_or_else(|| "OTHER".into()),
                count: r.n,
            })
            .collect();
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        Ok(groups)
    }
    /// Recipients reaching each step per hour or day since the campaign started, from the
    /// analytics store (events arrive within seconds).
    async fn timeline(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "TimelineBucket::Hour")] bucket: TimelineBucket,
    ) -> Result<Vec<TimelinePoint>> {
        let state = app_state(ctx);
        let from = self.0.started_at.unwrap_or(self.0.created_at) - chrono::Duration::days(1);
        let to = state.settings.clock.now() + chrono::Duration::days(4);
        let bucket = match bucket {
            TimelineBucket::Hour => parley_analytics::campaigns::Bucket::Hour,
            TimelineBucket::Day => parley_analytics::campaigns::Bucket::Day,
        };
        let rows = state
            .analytics
            .campaign_timeline(self.0.project_id, self.0.id, from, to, bucket)
            .await
            .map_err(AppError::Unavailable)?;
        let mut points: Vec<TimelinePoint> = Vec::new();
        for row in rows {
            if points.last().is_none_or(|p| p.period != row.period) {
                points.push(TimelinePoint {
                    period: row.period,
                    ..TimelinePoint::default()
                });
            }
            let point = points.last_mut().expect("a point was pushed");
            let n = i64::try_from(row.count).unwrap_or(i64::MAX);
            match row.kind.as_str() {
                "campaign.sent" => point.sent += n,
                "campaign.delivered" => point.delivered += n,
                "campaign.read" => point.read += n,
                "campaign.replied" => point.replied += n,
                "campaign.clicked" => point.clicked += n,
                "campaign.failed" => point.failed += n,
                "campaign.skipped" => point.skipped += n,
                _ => {}
            }
        }
        Ok(points)
    }
    /// The recipients behind the numbers, with status, times and failure reason.
    async fn recipients(
        &self,
        ctx: &Context<'_>,
        status: Option<RecipientStatus>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, CampaignRecipient>> {
        let request = relay::page_request(first, after, last, before)?;
        let page = pagination::fetch(
            &app_state(ctx).db,
            recipients_select(self.0.id, status),
            campaign_recipient::Column::ContactId,
            request,
        )
        .await?;
        Ok(relay::connection(page, |r| r.contact_id, CampaignRecipient))
    }
    /// The same recipients as CSV.
    async fn recipients_csv(
        &self,
        ctx: &Context<'_>,
        status: Option<RecipientStatus>,
    ) -> Result<String> {
        let rows = recipients_select(self.0.id, status)
            .all(&app_state(ctx).db)
            .await
            .map_err(AppError::from)?;
        Ok(super::export::recipients_csv(&app_state(ctx).db, &rows).await?)
    }
}

fn recipients_select(
    campaign_id: Uuid,
    status: Option<RecipientStatus>,
) -> sea_orm::Select<campaign_recipient::Entity> {
    let mut select = campaign_recipient::Entity::find()
        .filter(campaign_recipient::Column::CampaignId.eq(campaign_id));
    if let Some(status) = status {
        select = match status {
            RecipientStatus::Replied => {
                select.filter(campaign_recipient::Column::RepliedAt.is_not_null())
            }
            RecipientStatus::Clicked => {
                select.filter(campaign_recipient::Column::ClickedAt.is_not_null())
            }
            RecipientStatus::Sent => select.filter(campaign_recipient::Column::Status.is_in([
                model::SENT,
                model::DELIVERED,
                model::READ,
            ])),
            RecipientStatus::Delivered => select
                .filter(campaign_recipient::Column::Status.is_in([model::DELIVERED, model::READ])),
            other => select.filter(campaign_recipient::Column::Status.eq(other.as_str())),
        };
    }
    select
}

#[derive(SimpleObject)]
pub struct CampaignRates {
    pub delivered: f64,
    pub read: f64,
    pub replied: f64,
    pub clicked: f64,
    pub failed: f64,
}

#[derive(SimpleObject)]
pub struct FailureGroupCount {
    pub group: String,
    pub count: i64,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum TimelineBucket {
    Hour,
    Day,
}

/// Recipients reaching each step in one hour or day (UTC).
#[derive(SimpleObject, Default)]
pub struct TimelinePoint {
    pub period: DateTime<Utc>,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub replied: i64,
    pub clicked: i64,
    pub failed: i64,
    pub skipped: i64,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum RecipientStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    Replied,
    Clicked,
    Failed,
    Skipped,
    Interrupted,
}

impl RecipientStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queued => model::QUEUED,
            Self::Sent => model::SENT,
            Self::Delivered => model::DELIVERED,
            Self::Read => model::READ,
            Self::Replied => "REPLIED",
            Self::Clicked => "CLICKED",
            Self::Failed => model::FAILED,
            Self::Skipped => model::SKIPPED,
            Self::Interrupted => model::INTERRUPTED,
        }
    }
}

#[derive(SimpleObject)]
pub struct CampaignCounts {
    pub recipients: i64,
    pub queued: i64,
    /// Messages that left (delivered and read included).
    pub sent: i64,
    /// Delivered or read (a read implies delivered).
    pub delivered: i64,
    pub read: i64,
    pub replied: i64,
    pub clicked: i64,
    pub failed: i64,
    pub skipped: i64,
    /// The process stopped mid-send: not sent again by itself (retry them if wanted).
    pub interrupted: i64,
}

impl From<progress::Counts> for CampaignCounts {
    fn from(c: progress::Counts) -> Self {
        Self {
            recipients: c.recipients,
            queued: c.queued,
            sent: c.sent,
            delivered: c.delivered,
            read: c.read,
            replied: c.replied,
            clicked: c.clicked,
            failed: c.failed,
            skipped: c.skipped,
            interrupted: c.interrupted,
        }
    }
}

pub struct CampaignRecipient(pub campaign_recipient::Model);

#[Object]
impl CampaignRecipient {
    async fn contact_id(&self) -> ID {
        ID(self.0.contact_id.to_string())
    }
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn skip_reason(&self) -> Option<&str> {
        self.0.skip_reason.as_deref()
    }
    async fn message_id(&self) -> Option<ID> {
        self.0.message_id.map(|id| ID(id.to_string()))
    }
    /// Meta's error code, when it failed.
    async fn error_code(&self) -> Option<i64> {
        self.0.error_code
    }
    async fn error_title(&self) -> Option<&str> {
        self.0.error_title.as_deref()
    }
    /// `LIMITED_BY_META`, `UNDELIVERABLE`, `OUTSIDE_WINDOW`, `TEMPLATE_PAUSED` or `OTHER`.
    async fn failure_group(&self) -> Option<&str> {
        self.0.failure_group.as_deref()
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at.or(self.0.read_at)
    }
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
    async fn failed_at(&self) -> Option<DateTime<Utc>> {
        self.0.failed_at
    }
    async fn replied_at(&self) -> Option<DateTime<Utc>> {
        self.0.replied_at
    }
    async fn clicked_at(&self) -> Option<DateTime<Utc>> {
        self.0.clicked_at
    }
}

/// Exactly one of a filter, a saved segment or a list of contacts.
#[derive(InputObject)]
pub struct AudienceInput {
    pub filter: Option<ContactFilterInput>,
    pub segment_id: Option<ID>,
    pub contact_ids: Option<Vec<ID>>,
}

#[derive(InputObject)]
pub struct CreateBroadcastInput {
    /// Unique in the project.
    pub name: String,
    pub template_id: ID,
    #[graphql(default)]
    pub parameters: Vec<TemplateParameterInput>,
    pub header_media_link: Option<String>,
    pub audience: AudienceInput,
    /// A tag added to every contact the broadcast reaches.
    pub broadcast_tag_id: Option<ID>,
    /// Start now (else a draft, unless scheduled).
    #[graphql(default)]
    pub send_now: bool,
    /// Start then (pro plan; at most 2 months ahead).
    pub scheduled_at: Option<DateTime<Utc>>,
}

fn audience_of(input: AudienceInput) -> Result<Audience, AppError> {
    let given = usize::from(input.filter.is_some())
        + usize::from(input.segment_id.is_some())
        + usize::from(input.contact_ids.is_some());
    if given != 1 {
        return Err(AppError::bad_input(
            "audience",
            "give exactly one of filter, segmentId or contactIds",
        ));
    }
    if let Some(ids) = input.contact_ids {
        let ids = ids
            .iter()
            .map(|id| parse_id("contactIds", id))
            .collect::<Result<Vec<Uuid>, _>>()?;
        return Ok(Audience::Contacts { ids });
    }
    let mut filter = to_filter(input.filter)?;
    if let Some(segment) = input.segment_id {
        filter.segment = Some(parse_id("segmentId", &segment)?);
    }
    Ok(Audience::Filter {
        filter: Box::new(filter),
    })
}

#[derive(SimpleObject)]
pub struct CampaignProgress {
    pub campaign_id: ID,
    pub status: String,
    pub counts: CampaignCounts,
}

#[derive(Default)]
pub struct CampaignsQuery;

#[Object]
impl CampaignsQuery {
    #[graphql(guard = "RoleGuard::read(CAMPAIGN_READERS)")]
    async fn campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        let id = parse_id("id", &id)?;
        Ok(Campaign(
            service::find(&app_state(ctx).db, scope(ctx)?, id).await?,
        ))
    }

    /// The project's campaigns, oldest first.
    #[graphql(guard = "RoleGuard::read(CAMPAIGN_READERS)")]
    async fn campaigns(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, Campaign>> {
        let request = relay::page_request(first, after, last, before)?;
        let select =
            campaign::Entity::find().filter(campaign::Column::ProjectId.eq(scope(ctx)?.project_id));
        let page =
            pagination::fetch(&app_state(ctx).db, select, campaign::Column::Id, request).await?;
        Ok(relay::connection(page, |c| c.id, Campaign))
    }
}

#[derive(Default)]
pub struct CampaignsMutation;

#[Object]
impl CampaignsMutation {
    /// Creates a broadcast, checked before anything is sent: the template still approved,
    /// a valid value for every parameter, the media for a media header, an audience that
    /// the messaging limit and the wallet can take today (refused with the figures).
    #[graphql(guard = "RoleGuard::write(CAMPAIGNERS)")]
    async fn create_broadcast(
        &self,
        ctx: &Context<'_>,
        input: CreateBroadcastInput,
    ) -> Result<Campaign> {
        let send = match (input.send_now, input.scheduled_at) {
            (true, Some(_)) => {
                return Err(AppError::bad_input(
                    "scheduledAt",
                    "give sendNow or scheduledAt, not both",
                )
                .into());
            }
            (true, None) => Some(When::Now),
            (false, Some(at)) => Some(When::At(at)),
            (false, None) => None,
        };
        let created = service::create_broadcast(
            app_state(ctx),
            scope(ctx)?,
            NewBroadcast {
                name: input.name,
                template_id: parse_id("templateId", &input.template_id)?,
                parameters: input
                    .parameters
                    .into_iter()
                    .map(|p| ParameterInput {
                        value: p.value,
                        fallback: p.fallback,
                    })
                    .collect(),
                header_media_link: input.header_media_link,
                audience: audience_of(input.audience)?,
                broadcast_tag_id: input
                    .broadcast_tag_id
                    .as_ref()
                    .map(|id| parse_id("broadcastTagId", id))
                    .transpose()?,
                send,
            },
        )
        .await?;
        Ok(Campaign(created))
    }

    #[graphql(guard = "RoleGuard::write(CAMPAIGNERS)")]
    async fn start_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        let id = parse_id("id", &id)?;
        Ok(Campaign(
            service::start(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(CAMPAIGNERS)")]
    async fn pause_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        let id = parse_id("id", &id)?;
        Ok(Campaign(
            service::pause(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(CAMPAIGNERS)")]
    async fn resume_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        let id = parse_id("id", &id)?;
        Ok(Campaign(
            service::resume(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    /// Cancels a draft, scheduled, running or paused broadcast.
    #[graphql(guard = "RoleGuard::write(CAMPAIGNERS)")]
    async fn cancel_campaign(&self, ctx: &Context<'_>, id: ID) -> Result<Campaign> {
        let id = parse_id("id", &id)?;
        Ok(Campaign(
            service::cancel(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    /// Queues failed and interrupted recipients again; returns how many.
    #[graphql(guard = "RoleGuard::write(CAMPAIGNERS)")]
    async fn retry_failed_recipients(&self, ctx: &Context<'_>, id: ID) -> Result<u64> {
        let id = parse_id("id", &id)?;
        Ok(service::retry_failed(app_state(ctx), scope(ctx)?, id).await?)
    }

    /// Sends the campaign's message to one contact first (not counted in the campaign).
    #[graphql(guard = "RoleGuard::write(CAMPAIGNERS)")]
    async fn test_send_campaign(
        &self,
        ctx: &Context<'_>,
        id: ID,
        contact_id: ID,
    ) -> Result<Message> {
        let id = parse_id("id", &id)?;
        let contact_id = parse_id("contactId", &contact_id)?;
        Ok(Message(
            service::test_send(app_state(ctx), scope(ctx)?, id, contact_id).await?,
        ))
    }

    /// The number's messaging limit as Meta shows it (unique users per 24 hours: 250,
    /// 2000, 10000, 100000; null for unlimited) and its throughput (messages per second,
    /// 1 to 1,000).
    #[graphql(guard = "RoleGuard::write(OWNER)")]
    async fn set_sending_limits(
        &self,
        ctx: &Context<'_>,
        messaging_limit: Option<i32>,
        throughput_per_second: i32,
    ) -> Result<bool> {
        if messaging_limit.is_some_and(|l| ![250, 1_000, 2_000, 10_000, 100_000].contains(&l)) {
            return Err(AppError::bad_input(
                "messagingLimit",
                "Meta's tiers are 250, 1000, 2000, 10000 and 100000 (null: unlimited)",
            )
            .into());
        }
        if !(1..=1_000).contains(&throughput_per_second) {
            return Err(AppError::bad_input("throughputPerSecond", "between 1 and 1,000").into());
        }
        let state = app_state(ctx);
        let project_id = scope(ctx)?.project_id;
        crate::whatsapp::accounts::for_project(&state.db, state, project_id).await?;
        whatsapp_account::Entity::update_many()
            .col_expr(
                whatsapp_account::Column::MessagingLimit,
                Expr::val(messaging_limit).into(),
            )
            .col_expr(
                whatsapp_account::Column::ThroughputPerSecond,
                Expr::val(throughput_per_second).into(),
            )
            .filter(whatsapp_account::Column::ProjectId.eq(project_id))
            .exec(&state.db)
            .await
            .map_err(AppError::from)?;
        Ok(true)
    }
}

#[derive(Default)]
pub struct CampaignsSubscription;

#[Subscription]
impl CampaignsSubscription {
    /// A campaign's counts as it runs (or every campaign's, without `campaignId`).
    #[graphql(guard = "RoleGuard::read(CAMPAIGN_READERS)")]
    async fn campaign_progress(
        &self,
        ctx: &Context<'_>,
        campaign_id: Option<ID>,
    ) -> Result<impl Stream<Item = CampaignProgress> + use<>> {
        let scope = scope(ctx)?;
        let wanted = campaign_id
            .as_ref()
            .map(|id| parse_id("campaignId", id))
            .transpose()?;
        let events = app_state(ctx)
            .bus
            .subscribe(scope.project_id)
            .await
            .map_err(AppError::Unavailable)?;
        Ok(events.filter_map(move |event| async move {
            if event.topic != progress::TOPIC {
                return None;
            }
            let id: Uuid = serde_json::from_value(event.payload["campaignId"].clone()).ok()?;
            if wanted.is_some_and(|w| w != id) {
                return None;
            }
            let counts: progress::Counts =
                serde_json::from_value(event.payload["counts"].clone()).ok()?;
            Some(CampaignProgress {
                campaign_id: ID(id.to_string()),
                status: event.payload["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                counts: counts.into(),
            })
        }))
    }
}
