use std::borrow::Cow;

use async_graphql::{
    Context, ContextSelectionSet, Enum, ID, InputObject, Json, Object, OutputType, Positioned,
    Result, ServerResult, SimpleObject, Value,
    connection::{Connection, CursorType, Edge},
    parser::types::Field,
    registry::Registry,
};
use chrono::{DateTime, Duration, Utc};
use parley_entity::{attribute, contact, contact_event, segment, tag};
use sea_orm::ConnectionTrait;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{
    attributes,
    filter::{self, AttributeCondition, AttributeOp, ContactFilter, TagCondition, TimeRange},
    journey,
    listing::{self, ContactOrder, Cursor},
    loaders::{self, AttributesOfContacts, TagsOfContacts, Wanted},
    segments,
    service::{self, ContactChanges, NewContact},
    tags::{self, NewTag, TagKind},
};
use crate::{
    auth::{Role, RoleGuard, guard::OWNER_MANAGER},
    errors::AppError,
    graphql::{
        app_state,
        plain::{self, PlainFields, PlainList},
        relay, scope,
    },
    held_connection::HeldConnection,
    projects::graphql::parse_id,
};

/// Who works with contacts: everyone but finance and API keys.
const CONTACT_USERS: &[Role] = &[Role::Owner, Role::Manager, Role::Agent];

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "super::tags::TagKind")]
pub enum TagKindValue {
    Manual,
    FirstMessage,
    Api,
    Broadcast,
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "super::filter::ContactStatus", name = "ContactStatus")]
pub enum ContactStatusValue {
    Active,
    Inactive,
}

/// How contact lists are sorted; ties go by creation.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Default)]
#[graphql(remote = "super::listing::ContactOrder", name = "ContactOrder")]
pub enum ContactOrderValue {
    #[default]
    CreatedAsc,
    CreatedDesc,
    NameAsc,
    NameDesc,
    UpdatedDesc,
}

/// Where a contact's conversation stands in the live chat.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ContactState {
    HandledByAssistant,
    Requesting,
    Intervened,
    Closed,
}

impl ContactState {
    fn as_str(self) -> &'static str {
        match self {
            Self::HandledByAssistant => "HANDLED_BY_ASSISTANT",
            Self::Requesting => "REQUESTING",
            Self::Intervened => "INTERVENED",
            Self::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "REQUESTING" => Self::Requesting,
            "INTERVENED" => Self::Intervened,
            "CLOSED" => Self::Closed,
            _ => Self::HandledByAssistant,
        }
    }
}

pub struct Tag(pub tag::Model);

#[Object]
impl Tag {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn kind(&self) -> Result<TagKindValue> {
        Ok(TagKind::parse(&self.0.kind)?.into())
    }
    /// For first-message tags: the words that assign it.
    async fn first_message_keywords(&self) -> Vec<&str> {
        self.0
            .first_message_keywords
            .as_deref()
            .map(|k| k.lines().collect())
            .unwrap_or_default()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

impl PlainFields for Tag {
    fn plain_field(&self, field: &Field) -> Option<Value> {
        let tag = &self.0;
        Some(match field.name.node.as_str() {
            "id" => Value::String(tag.id.to_string()),
            "name" => Value::String(tag.name.clone()),
            "createdAt" => plain::scalar(&tag.created_at),
            _ => return None,
        })
    }
}

pub struct Attribute(pub attribute::Model);

#[Object]
impl Attribute {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Used as `$Key` in campaign parameters.
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(SimpleObject)]
pub struct AttributeValue {
    pub key: String,
    pub display_name: String,
    pub value: String,
}

impl PlainFields for AttributeValue {
    fn plain_field(&self, field: &Field) -> Option<Value> {
        Some(match field.name.node.as_str() {
            "key" => Value::String(self.key.clone()),
            "displayName" => Value::String(self.display_name.clone()),
            "value" => Value::String(self.value.clone()),
            _ => return None,
        })
    }
}

/// A contact, with its tags and attribute values once they are known: a page hands over
/// what it loaded for all its rows, anything else loads them through the DataLoaders.
pub struct Contact(pub contact::Model, ContactDetails);

#[derive(Default)]
struct ContactDetails {
    tags: OnceCell<Vec<Tag>>,
    attributes: OnceCell<Vec<AttributeValue>>,
}

impl Contact {
    pub fn new(model: contact::Model) -> Self {
        Self(model, ContactDetails::default())
    }
}

impl PlainFields for Contact {
    fn plain_field(&self, field: &Field) -> Option<Value> {
        let contact = &self.0;
        let text = |value: &Option<String>| plain::nullable(value.clone(), Value::String);
        let time = |value: Option<DateTime<Utc>>| plain::nullable(value, |t| plain::scalar(&t));
        let selection = &field.selection_set.node;
        Some(match field.name.node.as_str() {
            "id" => Value::String(contact.id.to_string()),
            "name" => Value::String(contact.name.clone()),
            "firstName" => Value::String(service::split_name(&contact.name).0.to_owned()),
            "lastName" => Value::String(service::split_name(&contact.name).1.to_owned()),
            "phone" => text(&contact.phone),
            "bsuid" => text(&contact.bsuid),
            "source" => Value::String(contact.source.clone()),
            "optedIn" => Value::Boolean(contact.opted_in),
            "optedInAt" => time(contact.opted_in_at),
            "optedInSource" => text(&contact.opted_in_source),
            "incomingBlocked" => Value::Boolean(contact.incoming_blocked),
            "lastActiveAt" => time(contact.last_active_at),
            "createdAt" => plain::scalar(&contact.created_at),
            "updatedAt" => plain::scalar(&contact.updated_at),
            // Only what the page already loaded; otherwise the loaders run.
            "tags" => plain::list(self.1.tags.get()?, selection)?,
            "attributes" => plain::list(self.1.attributes.get()?, selection)?,
            _ => return None,
        })
    }
}

/// A contact as a page's node: the same `Contact` in the schema, built on the plain path
/// when its selection allows (see `graphql::plain`).
pub struct ContactNode(pub Contact);

impl OutputType for ContactNode {
    fn type_name() -> Cow<'static, str> {
        Contact::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Contact::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match plain::object(&self.0, "Contact", &field.node.selection_set.node) {
            Some(value) => Ok(value),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

/// A page of contacts, the schema's `ContactConnection`, built on the plain path when its
/// selection allows (edges, their cursors and nodes, `nodes` and `pageInfo`).
pub struct ContactPage(pub Connection<Cursor, ContactNode>);

type ContactEdge = Edge<Cursor, ContactNode, async_graphql::connection::EmptyFields>;

impl PlainFields for ContactPage {
    fn plain_field(&self, field: &Field) -> Option<Value> {
        let page = &self.0;
        let selection = &field.selection_set.node;
        Some(match field.name.node.as_str() {
            "edges" => {
                let edge_type = ContactEdge::type_name();
                let edges = page
                    .edges
                    .iter()
                    .map(|edge| plain::object(&PlainEdge(edge), &edge_type, selection))
                    .collect::<Option<Vec<_>>>()?;
                Value::List(edges)
            }
            "nodes" => {
                let nodes = page
                    .edges
                    .iter()
                    .map(|edge| plain::object(&edge.node.0, "Contact", selection))
                    .collect::<Option<Vec<_>>>()?;
                Value::List(nodes)
            }
            "pageInfo" => plain::object(&PlainPageInfo(page), "PageInfo", selection)?,
            _ => return None,
        })
    }
}

struct PlainEdge<'a>(&'a ContactEdge);

impl PlainFields for PlainEdge<'_> {
    fn plain_field(&self, field: &Field) -> Option<Value> {
        Some(match field.name.node.as_str() {
            "cursor" => Value::String(self.0.cursor.encode_cursor()),
            "node" => plain::object(&self.0.node.0, "Contact", &field.selection_set.node)?,
            _ => return None,
        })
    }
}

struct PlainPageInfo<'a>(&'a Connection<Cursor, ContactNode>);

impl PlainFields for PlainPageInfo<'_> {
    fn plain_field(&self, field: &Field) -> Option<Value> {
        let page = self.0;
        let cursor = |edge: Option<&ContactEdge>| {
            plain::nullable(edge, |edge| Value::String(edge.cursor.encode_cursor()))
        };
        Some(match field.name.node.as_str() {
            "hasPreviousPage" => Value::Boolean(page.has_previous_page),
            "hasNextPage" => Value::Boolean(page.has_next_page),
            "startCursor" => cursor(page.edges.first()),
            "endCursor" => cursor(page.edges.last()),
            _ => return None,
        })
    }
}

impl OutputType for ContactPage {
    fn type_name() -> Cow<'static, str> {
        Connection::<Cursor, ContactNode>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Connection::<Cursor, ContactNode>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let type_name = Self::type_name();
        match plain::object(self, &type_name, &field.node.selection_set.node) {
            Some(value) => Ok(value),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

#[Object]
impl Contact {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `$Name`.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// `$FirstName`: the first word of the name.
    async fn first_name(&self) -> &str {
        service::split_name(&self.0.name).0
    }
    /// `$LastName`: the rest of the name.
    async fn last_name(&self) -> &str {
        service::split_name(&self.0.name).1
    }
    /// E.164, e.g. `+919812345678`; absent for users known only by BSUID.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }
    /// Meta's business-scoped user id.
    async fn bsuid(&self) -> Option<&str> {
        self.0.bsuid.as_deref()
    }
    async fn source(&self) -> &str {
        &self.0.source
    }
    async fn tags(&self, ctx: &Context<'_>) -> Result<PlainList<'_, Tag>> {
        let tags = self
            .1
            .tags
            .get_or_try_init(|| async {
                let loader = ctx.data_unchecked::<TagsOfContacts>();
                let tags = loader
                    .load_one((self.0.project_id, self.0.id))
                    .await
                    .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?
                    .unwrap_or_default();
                Ok::<_, AppError>(tags.into_iter().map(Tag).collect())
            })
            .await?;
        Ok(PlainList(tags))
    }
    async fn first_message_tag(&self, ctx: &Context<'_>) -> Result<Option<Tag>> {
        let Some(tag_id) = self.0.first_message_tag_id else {
            return Ok(None);
        };
        let scope = scope(ctx)?;
        Ok(tags::find(&app_state(ctx).db, scope, tag_id)
            .await
            .ok()
            .map(Tag))
    }
    async fn attributes(&self, ctx: &Context<'_>) -> Result<PlainList<'_, AttributeValue>> {
        let values = self
            .1
            .attributes
            .get_or_try_init(|| async {
                let loader = ctx.data_unchecked::<AttributesOfContacts>();
                let values = loader
                    .load_one((self.0.project_id, self.0.id))
                    .await
                    .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?
                    .unwrap_or_default();
                Ok::<_, AppError>(values.into_iter().map(attribute_value).collect())
            })
            .await?;
        Ok(PlainList(values))
    }
    async fn opted_in(&self) -> bool {
        self.0.opted_in
    }
    async fn opted_in_at(&self) -> Option<DateTime<Utc>> {
        self.0.opted_in_at
    }
    async fn opted_in_source(&self) -> Option<&str> {
        self.0.opted_in_source.as_deref()
    }
    async fn incoming_blocked(&self) -> bool {
        self.0.incoming_blocked
    }
    /// ACTIVE while the user's last message is less than 24 hours old; computed on read.
    async fn status(&self, ctx: &Context<'_>) -> ContactStatusValue {
        let now = app_state(ctx).settings.clock.now();
        let active = self
            .0
            .last_active_at
            .is_some_and(|t| now - t < Duration::hours(filter::ACTIVE_WINDOW_HOURS));
        if active {
            ContactStatusValue::Active
        } else {
            ContactStatusValue::Inactive
        }
    }
    async fn state(&self) -> ContactState {
        ContactState::parse(&self.0.state)
    }
    async fn last_active_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_active_at
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Every change to this contact, oldest first.
    async fn journey(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, ContactEvent>> {
        let page = relay::page_request(first, after, last, before)?;
        let page = journey::list(app_state(ctx), scope(ctx)?, self.0.id, page).await?;
        Ok(relay::connection(page, |e| e.id, ContactEvent))
    }

    /// The contact's WhatsApp messages, both ways, in the order they were written.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<Connection<String, crate::messages::graphql::Message>> {
        let page = relay::page_request(first, after, last, before)?;
        let page =
            crate::messages::of_contact(app_state(ctx), scope(ctx)?, self.0.id, page).await?;
        Ok(relay::connection(
            page,
            |m| m.id,
            crate::messages::graphql::Message,
        ))
    }

    /// The customer-service window: open for 24 hours after the contact's last message;
    /// free-form messages need it open, templates do not.
    async fn messaging_window(
        &self,
        ctx: &Context<'_>,
    ) -> Result<crate::messages::graphql::MessagingWindow> {
        let last = super::messaging::last_inbound(&app_state(ctx).db, self.0.id).await?;
        let expires_at = super::messaging::window_expiry(last, app_state(ctx).settings.clock.now());
        Ok(crate::messages::graphql::MessagingWindow {
            open: expires_at.is_some(),
            expires_at,
            last_inbound_at: last,
        })
    }
}

pub struct Segment(pub segment::Model);

#[Object]
impl Segment {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// The stored filter, in the shape of `ContactFilterInput`.
    async fn filter(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(&self.0.filter).unwrap_or_default())
    }
    /// How many contacts match now.
    async fn contact_count(&self, ctx: &Context<'_>) -> Result<u64> {
        let filter = ContactFilter {
            segment: Some(self.0.id),
            ..ContactFilter::default()
        };
        Ok(service::count(app_state(ctx), scope(ctx)?, &filter).await?)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

pub struct ContactEvent(pub contact_event::Model);

#[Object]
impl ContactEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `contact.created`, `contact.updated`, `contact.imported`, `tag.added`,
    /// `tag.removed`, `attribute.changed`, `opted_in`, `opted_out`, `incoming.blocked`,
    /// `incoming.unblocked`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// `USER`, `API_KEY`, `IMPORT`, `CONTACT` or `SYSTEM`.
    async fn actor_kind(&self) -> &str {
        &self.0.actor_kind
    }
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.map(|id| ID(id.to_string()))
    }
    async fn data(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(&self.0.data).unwrap_or_default())
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
}

fn attribute_value((definition, value): (attribute::Model, String)) -> AttributeValue {
    AttributeValue {
        key: definition.key,
        display_name: definition.display_name,
        value,
    }
}

/// A page's contacts, with the tags and attribute values they are asked for loaded in one
/// statement and handed to each contact directly.
async fn with_details<C: ConnectionTrait>(
    ctx: &Context<'_>,
    conn: &C,
    project_id: Uuid,
    contacts: Vec<contact::Model>,
) -> Result<Vec<Contact>, AppError> {
    let ahead = ctx.look_ahead();
    let (node, nodes) = (ahead.field("edges").field("node"), ahead.field("nodes"));
    let asked = |field: &str| node.field(field).exists() || nodes.field(field).exists();
    let wanted = Wanted {
        tags: asked("tags"),
        attributes: asked("attributes"),
    };
    if contacts.is_empty() || !(wanted.tags || wanted.attributes) {
        return Ok(contacts.into_iter().map(Contact::new).collect());
    }
    let ids: Vec<Uuid> = contacts.iter().map(|c| c.id).collect();
    let mut details = loaders::page_details(conn, project_id, &ids, wanted).await?;
    Ok(contacts
        .into_iter()
        .map(|model| {
            let key = (project_id, model.id);
            let tags = details
                .tags
                .remove(&key)
                .map(|tags| tags.into_iter().map(Tag).collect());
            let attributes = details
                .attributes
                .remove(&key)
                .map(|values| values.into_iter().map(attribute_value).collect());
            Contact(
                model,
                ContactDetails {
                    tags: OnceCell::new_with(tags),
                    attributes: OnceCell::new_with(attributes),
                },
            )
        })
        .collect())
}

#[derive(InputObject, Default)]
pub struct ContactFilterInput {
    /// All of these filters.
    pub and: Option<Vec<ContactFilterInput>>,
    /// Any of these filters.
    pub or: Option<Vec<ContactFilterInput>>,
    pub not: Option<Box<ContactFilterInput>>,
    pub tags: Option<TagConditionInput>,
    pub attributes: Option<Vec<AttributeConditionInput>>,
    pub created_at: Option<TimeRangeInput>,
    pub last_active_at: Option<TimeRangeInput>,
    pub opted_in: Option<bool>,
    pub incoming_blocked: Option<bool>,
    pub sources: Option<Vec<String>>,
    pub status: Option<ContactStatusValue>,
    pub states: Option<Vec<ContactState>>,
    /// Name or phone containing this text.
    pub search: Option<String>,
    /// The contacts of a saved segment.
    pub segment_id: Option<ID>,
    /// Retargeting: the contacts with this outcome in a campaign.
    pub campaign: Option<CampaignConditionInput>,
}

#[derive(InputObject)]
pub struct CampaignConditionInput {
    pub campaign_id: ID,
    pub outcome: CampaignOutcomeValue,
}

#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "CampaignOutcome")]
pub enum CampaignOutcomeValue {
    /// In the audience, whatever happened.
    Recipient,
    /// The message left (delivered and read included).
    Sent,
    /// Delivered or read.
    Delivered,
    Read,
    Replied,
    Clicked,
    Failed,
    Skipped,
}

impl From<CampaignOutcomeValue> for crate::contacts::filter::CampaignOutcome {
    fn from(v: CampaignOutcomeValue) -> Self {
        use crate::contacts::filter::CampaignOutcome as O;
        match v {
            CampaignOutcomeValue::Recipient => O::Recipient,
            CampaignOutcomeValue::Sent => O::Sent,
            CampaignOutcomeValue::Delivered => O::Delivered,
            CampaignOutcomeValue::Read => O::Read,
            CampaignOutcomeValue::Replied => O::Replied,
            CampaignOutcomeValue::Clicked => O::Clicked,
            CampaignOutcomeValue::Failed => O::Failed,
            CampaignOutcomeValue::Skipped => O::Skipped,
        }
    }
}

#[derive(InputObject)]
pub struct TagConditionInput {
    pub any_of: Option<Vec<ID>>,
    pub all_of: Option<Vec<ID>>,
    pub none_of: Option<Vec<ID>>,
}

/// Exactly one of `equals`, `contains` and `isSet`.
#[derive(InputObject)]
pub struct AttributeConditionInput {
    pub attribute_id: ID,
    pub equals: Option<String>,
    pub contains: Option<String>,
    pub is_set: Option<bool>,
}

#[derive(InputObject)]
pub struct TimeRangeInput {
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
}

fn ids(field: &'static str, ids: Option<Vec<ID>>) -> Result<Vec<Uuid>, AppError> {
    ids.unwrap_or_default()
        .iter()
        .map(|id| parse_id(field, id))
        .collect()
}

impl TryFrom<ContactFilterInput> for ContactFilter {
    type Error = AppError;

    fn try_from(input: ContactFilterInput) -> Result<Self, AppError> {
        let nested =
            |list: Option<Vec<ContactFilterInput>>| -> Result<Vec<ContactFilter>, AppError> {
                list.unwrap_or_default()
                    .into_iter()
                    .map(TryInto::try_into)
                    .collect()
            };
        Ok(ContactFilter {
            and: nested(input.and)?,
            or: nested(input.or)?,
            not: input
                .not
                .map(|n| ContactFilter::try_from(*n).map(Box::new))
                .transpose()?,
            tags: input
                .tags
                .map(|t| -> Result<TagCondition, AppError> {
                    Ok(TagCondition {
                        any_of: ids("tags.anyOf", t.any_of)?,
                        all_of: ids("tags.allOf", t.all_of)?,
                        none_of: ids("tags.noneOf", t.none_of)?,
                    })
                })
                .transpose()?,
            attributes: input
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    let op = match (a.equals, a.contains, a.is_set) {
                        (Some(v), None, None) => AttributeOp::Equals(v),
                        (None, Some(v), None) => AttributeOp::Contains(v),
                        (None, None, Some(v)) => AttributeOp::IsSet(v),
                        _ => {
                            return Err(AppError::bad_input(
                                "attributes",
                                "give exactly one of equals, contains and isSet",
                            ));
                        }
                    };
                    Ok(AttributeCondition {
                        attribute_id: parse_id("attributeId", &a.attribute_id)?,
                        op,
                    })
                })
                .collect::<Result<_, _>>()?,
            created_at: input.created_at.map(|r| TimeRange {
                from: r.from,
                to: r.to,
            }),
            last_active_at: input.last_active_at.map(|r| TimeRange {
                from: r.from,
                to: r.to,
            }),
            opted_in: input.opted_in,
            incoming_blocked: input.incoming_blocked,
            sources: input.sources.unwrap_or_default(),
            status: input.status.map(Into::into),
            states: input
                .states
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            search: input.search,
            segment: input
                .segment_id
                .map(|id| parse_id("segmentId", &id))
                .transpose()?,
            campaign: input
                .campaign
                .map(|c| -> Result<_, AppError> {
                    Ok(crate::contacts::filter::CampaignCondition {
                        campaign_id: parse_id("campaign.campaignId", &c.campaign_id)?,
                        outcome: c.outcome.into(),
                    })
                })
                .transpose()?,
        })
    }
}

pub(crate) fn to_filter(input: Option<ContactFilterInput>) -> Result<ContactFilter, AppError> {
    input
        .map(TryInto::try_into)
        .transpose()
        .map(Option::unwrap_or_default)
}

#[derive(InputObject)]
pub struct AttributeValueInput {
    /// The attribute's key, as in `$Key`.
    pub key: String,
    /// `null` clears the value.
    pub value: Option<String>,
}

#[derive(InputObject)]
pub struct CreateContactInput {
    pub name: String,
    /// With `+` and the country code, or a national number of the project's default country.
    pub phone: String,
    pub bsuid: Option<String>,
    /// Defaults to `DASHBOARD`.
    pub source: Option<String>,
    pub tag_ids: Option<Vec<ID>>,
    pub attributes: Option<Vec<AttributeValueInput>>,
}

#[derive(InputObject)]
pub struct UpdateContactInput {
    pub name: Option<String>,
    pub phone: Option<String>,
}

#[derive(InputObject)]
pub struct CreateTagInput {
    pub name: String,
    #[graphql(default_with = "TagKindValue::Manual")]
    pub kind: TagKindValue,
    /// For `FIRST_MESSAGE` tags: words that assign the tag when a user's first message
    /// contains one.
    pub first_message_keywords: Option<Vec<String>>,
}

#[derive(SimpleObject)]
pub struct DeletePayload {
    pub id: ID,
    /// Contacts that carried the deleted tag or attribute value.
    pub affected_contacts: u64,
}

#[derive(Default)]
pub struct ContactsQuery;

#[Object]
impl ContactsQuery {
    /// The project's contacts matching `filter`, oldest first.
    // Each argument is a GraphQL argument of the field.
    #[allow(clippy::too_many_arguments)]
    #[graphql(guard = "RoleGuard::read(CONTACT_USERS)")]
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        filter: Option<ContactFilterInput>,
        #[graphql(default)] order_by: ContactOrderValue,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Result<ContactPage> {
        let filter = to_filter(filter)?;
        let size = |field: &'static str, n: Option<i32>| {
            n.map(|n| {
                usize::try_from(n).map_err(|_| AppError::bad_input(field, "must not be negative"))
            })
            .transpose()
        };
        let order: ContactOrder = order_by.into();
        let request = listing::Request {
            order,
            first: size("first", first)?,
            after: after
                .as_deref()
                .map(|c| Cursor::decode("after", c))
                .transpose()?,
            last: size("last", last)?,
            before: before
                .as_deref()
                .map(|c| Cursor::decode("before", c))
                .transpose()?,
        };
        let scope = scope(ctx)?;
        let state = app_state(ctx);
        let filter = service::expand_segments(state, scope, &filter).await?;
        // The page and its details on one connection: one check-out instead of two.
        let conn = HeldConnection::acquire(&state.db, &state.statements)
            .await
            .map_err(AppError::from)?;
        let page = service::list(&conn, scope, &filter, request).await?;
        let cursors: Vec<Cursor> = page.items.iter().map(|c| Cursor::of(order, c)).collect();
        let contacts = with_details(ctx, &conn, scope.project_id, page.items).await?;
        drop(conn);
        let mut connection = Connection::new(page.has_previous_page, page.has_next_page);
        connection.edges = cursors
            .into_iter()
            .zip(contacts)
            .map(|(cursor, contact)| Edge::new(cursor, ContactNode(contact)))
            .collect();
        Ok(ContactPage(connection))
    }

    /// How many contacts match `filter`.
    #[graphql(guard = "RoleGuard::read(CONTACT_USERS)")]
    async fn contact_count(
        &self,
        ctx: &Context<'_>,
        filter: Option<ContactFilterInput>,
    ) -> Result<u64> {
        Ok(service::count(app_state(ctx), scope(ctx)?, &to_filter(filter)?).await?)
    }

    #[graphql(guard = "RoleGuard::read(CONTACT_USERS)")]
    async fn contact(&self, ctx: &Context<'_>, id: ID) -> Result<Contact> {
        let id = parse_id("id", &id)?;
        Ok(Contact::new(
            service::find(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    /// The contact with this phone (in any notation) or this BSUID.
    #[graphql(guard = "RoleGuard::read(CONTACT_USERS)")]
    async fn contact_by_identity(
        &self,
        ctx: &Context<'_>,
        phone: Option<String>,
        bsuid: Option<String>,
    ) -> Result<Contact> {
        let found = service::find_by_identity(
            app_state(ctx),
            scope(ctx)?,
            phone.as_deref(),
            bsuid.as_deref(),
        )
        .await?;
        Ok(Contact::new(found))
    }

    #[graphql(guard = "RoleGuard::read(CONTACT_USERS)")]
    async fn segments(&self, ctx: &Context<'_>) -> Result<Vec<Segment>> {
        Ok(segments::list(app_state(ctx), scope(ctx)?)
            .await?
            .into_iter()
            .map(Segment)
            .collect())
    }

    #[graphql(guard = "RoleGuard::read(CONTACT_USERS)")]
    async fn segment(&self, ctx: &Context<'_>, id: ID) -> Result<Segment> {
        let id = parse_id("id", &id)?;
        Ok(Segment(
            segments::find(app_state(ctx), scope(ctx)?, id).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::read(CONTACT_USERS)")]
    async fn tags(&self, ctx: &Context<'_>) -> Result<Vec<Tag>> {
        Ok(tags::list(app_state(ctx), scope(ctx)?)
            .await?
            .into_iter()
            .map(Tag)
            .collect())
    }

    #[graphql(guard = "RoleGuard::read(CONTACT_USERS)")]
    async fn attributes(&self, ctx: &Context<'_>) -> Result<Vec<Attribute>> {
        Ok(attributes::list(app_state(ctx), scope(ctx)?)
            .await?
            .into_iter()
            .map(Attribute)
            .collect())
    }
}

#[derive(Default)]
pub struct ContactsMutation;

#[Object]
impl ContactsMutation {
    /// Agents may create tags from the chat profile.
    #[graphql(guard = "RoleGuard::write(CONTACT_USERS)")]
    async fn create_tag(&self, ctx: &Context<'_>, input: CreateTagInput) -> Result<Tag> {
        let tag = tags::create(
            app_state(ctx),
            scope(ctx)?,
            NewTag {
                name: input.name,
                kind: input.kind.into(),
                first_message_keywords: input.first_message_keywords.unwrap_or_default(),
            },
        )
        .await?;
        Ok(Tag(tag))
    }

    /// Contacts keep a renamed tag.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn rename_tag(&self, ctx: &Context<'_>, id: ID, name: String) -> Result<Tag> {
        let id = parse_id("id", &id)?;
        Ok(Tag(
            tags::rename(app_state(ctx), scope(ctx)?, id, &name).await?
        ))
    }

    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn set_tag_keywords(
        &self,
        ctx: &Context<'_>,
        id: ID,
        keywords: Vec<String>,
    ) -> Result<Tag> {
        let id = parse_id("id", &id)?;
        Ok(Tag(tags::set_keywords(
            app_state(ctx),
            scope(ctx)?,
            id,
            keywords,
        )
        .await?))
    }

    /// Deletes the tag and takes it off every contact that carries it.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn delete_tag(&self, ctx: &Context<'_>, id: ID) -> Result<DeletePayload> {
        let uuid = parse_id("id", &id)?;
        let affected_contacts = tags::delete(app_state(ctx), scope(ctx)?, uuid).await?;
        Ok(DeletePayload {
            id,
            affected_contacts,
        })
    }

    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn create_attribute(
        &self,
        ctx: &Context<'_>,
        key: String,
        display_name: String,
    ) -> Result<Attribute> {
        Ok(Attribute(
            attributes::create(app_state(ctx), scope(ctx)?, &key, &display_name).await?,
        ))
    }

    /// Changes the display name; the key stays (templates and CRMs refer to it).
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn rename_attribute(
        &self,
        ctx: &Context<'_>,
        id: ID,
        display_name: String,
    ) -> Result<Attribute> {
        let id = parse_id("id", &id)?;
        Ok(Attribute(
            attributes::rename(app_state(ctx), scope(ctx)?, id, &display_name).await?,
        ))
    }

    /// Deletes the attribute and every contact's value for it.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn delete_attribute(&self, ctx: &Context<'_>, id: ID) -> Result<DeletePayload> {
        let uuid = parse_id("id", &id)?;
        let affected_contacts = attributes::delete(app_state(ctx), scope(ctx)?, uuid).await?;
        Ok(DeletePayload {
            id,
            affected_contacts,
        })
    }

    /// Saves a filter under a name.
    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn create_segment(
        &self,
        ctx: &Context<'_>,
        name: String,
        filter: ContactFilterInput,
    ) -> Result<Segment> {
        let filter = ContactFilter::try_from(filter)?;
        Ok(Segment(
            segments::create(app_state(ctx), scope(ctx)?, &name, &filter).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn update_segment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        name: Option<String>,
        filter: Option<ContactFilterInput>,
    ) -> Result<Segment> {
        let id = parse_id("id", &id)?;
        let filter = filter.map(ContactFilter::try_from).transpose()?;
        Ok(Segment(
            segments::update(
                app_state(ctx),
                scope(ctx)?,
                id,
                name.as_deref(),
                filter.as_ref(),
            )
            .await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn delete_segment(&self, ctx: &Context<'_>, id: ID) -> Result<ID> {
        let uuid = parse_id("id", &id)?;
        segments::delete(app_state(ctx), scope(ctx)?, uuid).await?;
        Ok(id)
    }

    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        input: CreateContactInput,
    ) -> Result<Contact> {
        let contact = service::create(
            app_state(ctx),
            scope(ctx)?,
            NewContact {
                name: input.name,
                phone: input.phone,
                bsuid: input.bsuid,
                source: input.source,
                tag_ids: ids("tagIds", input.tag_ids)?,
                attributes: input
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|a| a.value.map(|v| (a.key, v)))
                    .collect(),
            },
        )
        .await?;
        Ok(Contact::new(contact))
    }

    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateContactInput,
    ) -> Result<Contact> {
        let id = parse_id("id", &id)?;
        let changes = ContactChanges {
            name: input.name,
            phone: input.phone,
        };
        Ok(Contact::new(
            service::update(app_state(ctx), scope(ctx)?, id, changes).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(CONTACT_USERS)")]
    async fn add_contact_tags(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tag_ids: Vec<ID>,
    ) -> Result<Contact> {
        let id = parse_id("id", &id)?;
        let tag_ids = ids("tagIds", Some(tag_ids))?;
        Ok(Contact::new(
            service::add_tags(app_state(ctx), scope(ctx)?, id, &tag_ids).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(CONTACT_USERS)")]
    async fn remove_contact_tags(
        &self,
        ctx: &Context<'_>,
        id: ID,
        tag_ids: Vec<ID>,
    ) -> Result<Contact> {
        let id = parse_id("id", &id)?;
        let tag_ids = ids("tagIds", Some(tag_ids))?;
        Ok(Contact::new(
            service::remove_tags(app_state(ctx), scope(ctx)?, id, &tag_ids).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(CONTACT_USERS)")]
    async fn set_contact_attributes(
        &self,
        ctx: &Context<'_>,
        id: ID,
        values: Vec<AttributeValueInput>,
    ) -> Result<Contact> {
        let id = parse_id("id", &id)?;
        let values = values.into_iter().map(|v| (v.key, v.value)).collect();
        Ok(Contact::new(
            service::set_attributes(app_state(ctx), scope(ctx)?, id, values).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn set_contact_opt_in(
        &self,
        ctx: &Context<'_>,
        id: ID,
        opted_in: bool,
    ) -> Result<Contact> {
        let id = parse_id("id", &id)?;
        Ok(Contact::new(
            service::set_opted_in(app_state(ctx), scope(ctx)?, id, opted_in).await?,
        ))
    }

    #[graphql(guard = "RoleGuard::write(OWNER_MANAGER)")]
    async fn set_contact_incoming_blocked(
        &self,
        ctx: &Context<'_>,
        id: ID,
        blocked: bool,
    ) -> Result<Contact> {
        let id = parse_id("id", &id)?;
        Ok(Contact::new(
            service::set_incoming_blocked(app_state(ctx), scope(ctx)?, id, blocked).await?,
        ))
    }
}
