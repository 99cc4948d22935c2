//! One filter model for contacts, used by the contacts list, export, saved segments and
//! (later) broadcast audiences. It turns into a SQL condition on `contacts`; tag and
//! attribute conditions are `EXISTS` subqueries, so no join multiplies rows.

use chrono::{DateTime, Duration, Utc};
use parley_entity::{contact, contact_attribute, contact_tag};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter,
    sea_query::{Expr, Func, IntoColumnRef, LikeExpr, Query, SimpleExpr},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::errors::{AppError, AppResult};

/// How long after a user's last message a contact counts as active.
pub const ACTIVE_WINDOW_HOURS: i64 = 24;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContactFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub and: Vec<ContactFilter>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub or: Vec<ContactFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not: Option<Box<ContactFilter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<TagCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<TimeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_at: Option<TimeRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opted_in: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_blocked: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ContactStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub states: Vec<String>,
    /// Name or phone containing this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// The contacts of a saved segment (its filter as it is when used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Uuid>,
    /// Retargeting: the contacts with an outcome in a campaign ("read but not replied" is
    /// this and a `not` of another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<CampaignCondition>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CampaignCondition {
    pub campaign_id: Uuid,
    pub outcome: CampaignOutcome,
}

/// Where a recipient got to in a campaign.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CampaignOutcome {
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

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TagCondition {
    #[serde(default)]
    pub any_of: Vec<Uuid>,
    #[serde(default)]
    pub all_of: Vec<Uuid>,
    #[serde(default)]
    pub none_of: Vec<Uuid>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttributeCondition {
    pub attribute_id: Uuid,
    pub op: AttributeOp,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum AttributeOp {
    Equals(String),
    Contains(String),
    IsSet(bool),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TimeRange {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContactStatus {
    Active,
    Inactive,
}

/// Nesting deeper than this is refused (a filter is typed by people, not generated).
const MAX_DEPTH: usize = 6;
const MAX_IDS: usize = 100;

impl ContactFilter {
    /// The SQL condition, at time `now` (status depends on it).
    pub fn condition(&self, now: DateTime<Utc>) -> AppResult<Condition> {
        self.condition_at(now, 0)
    }

    fn condition_at(&self, now: DateTime<Utc>, depth: usize) -> AppResult<Condition> {
        if depth > MAX_DEPTH {
            return Err(AppError::bad_input(
                "filter",
                "the filter is nested too deeply",
            ));
        }
        if self.segment.is_some() {
            return Err(AppError::internal(anyhow::anyhow!(
                "a segment reference reached SQL unexpanded"
            )));
        }
        let mut all = Condition::all();
        for f in &self.and {
            all = all.add(f.condition_at(now, depth + 1)?);
        }
        if !self.or.is_empty() {
            let mut any = Condition::any();
            for f in &self.or {
                any = any.add(f.condition_at(now, depth + 1)?);
            }
            all = all.add(any);
        }
        if let Some(f) = &self.not {
            all = all.add(f.condition_at(now, depth + 1)?.not());
        }
        if let Some(tags) = &self.tags {
            for ids in [&tags.any_of, &tags.all_of, &tags.none_of] {
                if ids.len() > MAX_IDS {
                    return Err(AppError::bad_input(
                        "tags",
                        format!("at most {MAX_IDS} tags per condition"),
                    ));
                }
            }
            if !tags.any_of.is_empty() {
                all = all.add(Expr::exists(tagged_with(&tags.any_of)));
            }
            for id in &tags.all_of {
                all = all.add(Expr::exists(tagged_with(std::slice::from_ref(id))));
            }
            if !tags.none_of.is_empty() {
                all = all.add(Expr::exists(tagged_with(&tags.none_of)).not());
            }
        }
        for attr in &self.attributes {
            let mut sub = Query::select();
            sub.expr(Expr::val(1))
                .from(contact_attribute::Entity)
                .and_where(
                    Expr::col((
                        contact_attribute::Entity,
                        contact_attribute::Column::ContactId,
                    ))
                    .equals((contact::Entity, contact::Column::Id)),
                )
                .and_where(contact_attribute::Column::AttributeId.eq(attr.attribute_id));
            let exists = match &attr.op {
                AttributeOp::Equals(v) => {
                    sub.and_where(contact_attribute::Column::Value.eq(v.clone()));
                    Expr::exists(sub)
                }
                AttributeOp::Contains(v) => {
                    sub.and_where(contains(contact_attribute::Column::Value, v));
                    Expr::exists(sub)
                }
                AttributeOp::IsSet(true) => Expr::exists(sub),
                AttributeOp::IsSet(false) => Expr::exists(sub).not(),
            };
            all = all.add(exists);
        }
        if let Some(range) = &self.created_at {
            all = all.add(range_condition(contact::Column::CreatedAt, range));
        }
        if let Some(range) = &self.last_active_at {
            all = all.add(range_condition(contact::Column::LastActiveAt, range));
        }
        if let Some(v) = self.opted_in {
            all = all.add(contact::Column::OptedIn.eq(v));
        }
        if let Some(v) = self.incoming_blocked {
            all = all.add(contact::Column::IncomingBlocked.eq(v));
        }
        if !self.sources.is_empty() {
            all = all.add(contact::Column::Source.is_in(self.sources.clone()));
        }
        if !self.states.is_empty() {
            all = all.add(contact::Column::State.is_in(self.states.clone()));
        }
        if let Some(status) = self.status {
            let since = now - Duration::hours(ACTIVE_WINDOW_HOURS);
            all = all.add(match status {
                ContactStatus::Active => {
                    Condition::all().add(contact::Column::LastActiveAt.gt(since))
                }
                ContactStatus::Inactive => Condition::any()
                    .add(contact::Column::LastActiveAt.is_null())
                    .add(contact::Column::LastActiveAt.lte(since)),
            });
        }
        if let Some(campaign) = &self.campaign {
            all = all.add(Expr::exists(campaign_outcome(campaign)));
        }
        if let Some(text) = self
            .search
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            all = all.add(
                Condition::any()
                    .add(contains(contact::Column::Name, text))
                    .add(contains(contact::Column::Phone, text)),
            );
        }
        Ok(all)
    }
}

/// Case-insensitive substring match, with the pattern's own `%` and `_` taken literally.
fn contains(column: impl IntoColumnRef, text: &str) -> SimpleExpr {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Expr::expr(Func::lower(Expr::col(column)))
        .like(LikeExpr::new(format!("%{escaped}%")).escape('\\'))
}

fn campaign_outcome(condition: &CampaignCondition) -> sea_orm::sea_query::SelectStatement {
    use parley_entity::campaign_recipient::{Column, Entity};
    let mut sub = Query::select();
    sub.expr(Expr::val(1))
        .from(Entity)
        .and_where(
            Expr::col((Entity, Column::ContactId)).equals((contact::Entity, contact::Column::Id)),
        )
        .and_where(Column::CampaignId.eq(condition.campaign_id));
    let sent = ["SENT", "DELIVERED", "READ"];
    match condition.outcome {
        CampaignOutcome::Recipient => {}
        CampaignOutcome::Sent => {
            sub.and_where(Column::Status.is_in(sent));
        }
        CampaignOutcome::Delivered => {
            sub.and_where(Column::Status.is_in(["DELIVERED", "READ"]));
        }
        CampaignOutcome::Read => {
            sub.and_where(Column::Status.eq("READ"));
        }
        CampaignOutcome::Replied => {
            sub.and_where(Column::RepliedAt.is_not_null());
        }
        CampaignOutcome::Clicked => {
            sub.and_where(Column::ClickedAt.is_not_null());
        }
        CampaignOutcome::Failed => {
            sub.and_where(Column::Status.eq("FAILED"));
        }
        CampaignOutcome::Skipped => {
            sub.and_where(Column::Status.eq("SKIPPED"));
        }
    }
    sub.to_owned()
}

fn tagged_with(tag_ids: &[Uuid]) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .expr(Expr::val(1))
        .from(contact_tag::Entity)
        .and_where(
            Expr::col((contact_tag::Entity, contact_tag::Column::ContactId))
                .equals((contact::Entity, contact::Column::Id)),
        )
        .and_where(contact_tag::Column::TagId.is_in(tag_ids.iter().copied()))
        .to_owned()
}

fn range_condition(column: contact::Column, range: &TimeRange) -> Condition {
    let mut c = Condition::all();
    if let Some(from) = range.from {
        c = c.add(column.gte(from));
    }
    if let Some(to) = range.to {
        c = c.add(column.lt(to));
    }
    c
}

/// Contacts of one project matching a filter.
pub fn select(
    project_id: Uuid,
    filter: &ContactFilter,
    now: DateTime<Utc>,
) -> AppResult<sea_orm::Select<contact::Entity>> {
    Ok(contact::Entity::find()
        .filter(contact::Column::ProjectId.eq(project_id))
        .filter(filter.condition(now)?))
}
