//! What an inbound message changes on its contact: found or created by phone or BSUID,
//! the customer-service window, opt-out by STOP and opt-in by START, and the first-message
//! tag. Written so that the same messages in any order leave the same contact.

use chrono::{DateTime, Duration, Utc};
use parley_entity::{contact, contact_messaging, tag};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    journey::{self, Actor, Entry},
    phone::{self, PhoneRules},
    service::{SOURCE_ORGANIC, STATE_ASSISTANT},
    tags::TagKind,
};
use crate::errors::AppResult;

/// The customer-service window: free-form messages are allowed until this long after the
/// contact's last message.
pub const WINDOW: Duration = Duration::hours(24);

/// Words that opt a contact out, or back in (compared case-insensitively, whole message).
const OPT_OUT_WORDS: &[&str] = &["stop", "unsubscribe", "stop all"];
const OPT_IN_WORDS: &[&str] = &["start", "subscribe", "unstop"];

/// Who wrote, as the webhook says.
pub struct Sender<'a> {
    /// Digits of the user's number (`wa_id`), when Meta gives one.
    pub wa_id: Option<&'a str>,
    pub bsuid: Option<&'a str>,
    pub profile_name: Option<&'a str>,
}

/// An inbound message as it concerns the contact.
pub struct Inbound<'a> {
    pub at: DateTime<Utc>,
    pub text: Option<&'a str>,
    /// The ad or post the user came from.
    pub referral: Option<&'a serde_json::Value>,
}

/// The contact who wrote, created with source ORGANIC when new.
pub async fn sender_contact<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    rules: &PhoneRules,
    sender: &Sender<'_>,
    at: DateTime<Utc>,
) -> AppResult<Option<contact::Model>> {
    let phone = sender.wa_id.map(|digits| {
        let raw = format!("+{}", digits.trim_start_matches('+'));
        phone::normalize(&raw, rules).unwrap_or(raw)
    });
    let bsuid = sender.bsuid.map(str::to_owned);
    let mut found = None;
    if let Some(phone) = &phone {
        found = by_column(conn, project_id, contact::Column::Phone, phone).await?;
    }
    if found.is_none()
        && let Some(bsuid) = &bsuid
    {
        found = by_column(conn, project_id, contact::Column::Bsuid, bsuid).await?;
    }
    if let Some(existing) = found {
        return Ok(Some(fill_identity(conn, existing, phone, bsuid).await?));
    }
    if phone.is_none() && bsuid.is_none() {
        return Ok(None);
    }
    let name = sender
        .profile_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(256).collect::<String>())
        .or_else(|| phone.clone())
        .or_else(|| bsuid.clone())
        .unwrap_or_default();
    let created = contact::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(project_id),
        name: Set(name),
        phone: Set(phone),
        bsuid: Set(bsuid),
        source: Set(SOURCE_ORGANIC.to_owned()),
        first_message_tag_id: Set(None),
        // Writing first is consent to an answer; STOP in this same message undoes it.
        opted_in: Set(true),
        opted_in_at: Set(Some(at)),
        opted_in_source: Set(Some(SOURCE_ORGANIC.to_owned())),
        incoming_blocked: Set(false),
        state: Set(STATE_ASSISTANT.to_owned()),
        last_active_at: Set(None),
        created_at: Set(Utc::now()),
        updated_at: Set(Utc::now()),
    }
    .insert(conn)
    .await?;
    journey::record_at(
        conn,
        project_id,
        Actor::Contact,
        vec![Entry::new(
            created.id,
            "contact.created",
            json!({ "source": SOURCE_ORGANIC }),
        )],
        at,
    )
    .await?;
    Ok(Some(created))
}

async fn by_column<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    column: contact::Column,
    value: &str,
) -> AppResult<Option<contact::Model>> {
    Ok(contact::Entity::find()
        .filter(contact::Column::ProjectId.eq(project_id))
        .filter(column.eq(value))
        .one(conn)
        .await?)
}

/// A contact known by phone learns its BSUID (and the reverse) when nobody else has it.
async fn fill_identity<C: ConnectionTrait>(
    conn: &C,
    contact: contact::Model,
    phone: Option<String>,
    bsuid: Option<String>,
) -> AppResult<contact::Model> {
    let learn_bsuid = contact.bsuid.is_none() && bsuid.is_some();
    let learn_phone = contact.phone.is_none() && phone.is_some();
    if !learn_bsuid && !learn_phone {
        return Ok(contact);
    }
    let mut active: contact::ActiveModel = contact.clone().into();
    if learn_bsuid
        && by_column(
            conn,
            contact.project_id,
            contact::Column::Bsuid,
            bsuid.as_deref().unwrap(),
        )
        .await?
        .is_none()
    {
        active.bsuid = Set(bsuid);
    }
    if learn_phone
        && by_column(
            conn,
            contact.project_id,
            contact::Column::Phone,
            phone.as_deref().unwrap(),
        )
        .await?
        .is_none()
    {
        active.phone = Set(phone);
    }
    if !active.is_changed() {
        return Ok(contact);
    }
    active.updated_at = Set(Utc::now());
    Ok(active.update(conn).await?)
}

/// Applies a new inbound message (stored once, so this runs once per message) to its
/// contact.
pub async fn apply_inbound<C: ConnectionTrait>(
    conn: &C,
    contact: contact::Model,
    message: &Inbound<'_>,
) -> AppResult<contact::Model> {
    let project_id = contact.project_id;
    let before = contact_messaging::Entity::find_by_id(contact.id)
        .one(conn)
        .await?;
    let earliest = before
        .as_ref()
        .and_then(|m| m.first_inbound_at)
        .is_none_or(|first| message.at < first);
    let mut entries = Vec::new();
    let mut active: contact::ActiveModel = contact.clone().into();
    let mut tag_by_rule = before.as_ref().is_some_and(|m| m.first_message_tag_by_rule);
    let mut consent_at = before.as_ref().and_then(|m| m.consent_changed_at);

    if contact.last_active_at.is_none_or(|last| message.at > last) {
        active.last_active_at = Set(Some(message.at));
    }
    if let Some(wanted) = message.text.and_then(consent_word)
        && consent_at.is_none_or(|at| message.at > at)
    {
        consent_at = Some(message.at);
        if contact.opted_in != wanted {
            active.opted_in = Set(wanted);
            if wanted {
                active.opted_in_at = Set(Some(message.at));
                active.opted_in_source = Set(Some("WHATSAPP".to_owned()));
            }
            entries.push(Entry::new(
                contact.id,
                if wanted { "opted_in" } else { "opted_out" },
                json!({ "by": "message" }),
            ));
        }
    }
    // The first-message tag follows the earliest message, unless it came from elsewhere
    // (an import) before the contact ever wrote. Once a rule has judged a first message,
    // the rule is in charge of the tag even when nothing matched.
    let had_messages = before
        .as_ref()
        .is_some_and(|m| m.first_inbound_at.is_some());
    let rule_in_charge = tag_by_rule || (contact.first_message_tag_id.is_none() && !had_messages);
    if earliest && rule_in_charge {
        let matched = match message.text {
            Some(text) => first_message_rule(conn, project_id, text).await?,
            None => None,
        };
        tag_by_rule = true;
        if matched != contact.first_message_tag_id {
            active.first_message_tag_id = Set(matched);
            entries.push(Entry::new(
                contact.id,
                "first_message_tag.set",
                json!({ "tagId": matched }),
            ));
        }
    }
    if let Some(referral) = message.referral {
        entries.push(Entry::new(
            contact.id,
            "entry_point",
            json!({
                "sourceType": referral["source_type"],
                "sourceId": referral["source_id"],
                "sourceUrl": referral["source_url"],
                "headline": referral["headline"],
                "ctwaClid": referral["ctwa_clid"],
            }),
        ));
    }

    let messaging = contact_messaging::ActiveModel {
        contact_id: Set(contact.id),
        project_id: Set(project_id),
        first_inbound_at: Set(Some(match &before {
            Some(m) => m.first_inbound_at.map_or(message.at, |f| f.min(message.at)),
            None => message.at,
        })),
        last_inbound_at: Set(Some(match &before {
            Some(m) => m.last_inbound_at.map_or(message.at, |l| l.max(message.at)),
            None => message.at,
        })),
        first_message_tag_by_rule: Set(tag_by_rule),
        consent_changed_at: Set(consent_at),
    };
    if before.is_some() {
        messaging.update(conn).await?;
    } else {
        messaging.insert(conn).await?;
    }
    let contact = if active.is_changed() {
        active.updated_at = Set(Utc::now());
        active.update(conn).await?
    } else {
        contact
    };
    journey::record_at(conn, project_id, Actor::Contact, entries, message.at).await?;
    Ok(contact)
}

fn consent_word(text: &str) -> Option<bool> {
    let word = text.trim().to_lowercase();
    if OPT_OUT_WORDS.contains(&word.as_str()) {
        Some(false)
    } else if OPT_IN_WORDS.contains(&word.as_str()) {
        Some(true)
    } else {
        None
    }
}

/// The first-message tag whose keyword appears earliest in `text` (older tags win ties).
async fn first_message_rule<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    text: &str,
) -> AppResult<Option<Uuid>> {
    let rules = tag::Entity::find()
        .filter(tag::Column::ProjectId.eq(project_id))
        .filter(tag::Column::Kind.eq(TagKind::FirstMessage.as_str()))
        .order_by_asc(tag::Column::CreatedAt)
        .order_by_asc(tag::Column::Id)
        .all(conn)
        .await?;
    Ok(match_rule(&rules, text))
}

fn match_rule(rules: &[tag::Model], text: &str) -> Option<Uuid> {
    let text = text.to_lowercase();
    rules
        .iter()
        .filter_map(|rule| {
            let keywords = rule.first_message_keywords.as_deref()?;
            keywords
                .lines()
                .filter(|k| !k.is_empty())
                .filter_map(|k| text.find(k))
                .min()
                .map(|position| (position, rule.id))
        })
        .min_by_key(|(position, _)| *position)
        .map(|(_, id)| id)
}

/// When the contact's window closes, if it is open at `now`.
pub fn window_expiry(
    last_inbound_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    last_inbound_at
        .map(|at| at + WINDOW)
        .filter(|expiry| *expiry > now)
}

pub async fn last_inbound<C: ConnectionTrait>(
    conn: &C,
    contact_id: Uuid,
) -> AppResult<Option<DateTime<Utc>>> {
    Ok(contact_messaging::Entity::find_by_id(contact_id)
        .one(conn)
        .await?
        .and_then(|m| m.last_inbound_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(keywords: &str, n: u128) -> tag::Model {
        tag::Model {
            id: Uuid::from_u128(n),
            project_id: Uuid::nil(),
            name: format!("t{n}"),
            name_key: format!("t{n}"),
            kind: "FIRST_MESSAGE".into(),
            first_message_keywords: Some(keywords.into()),
            created_at: Utc::now(),
        }
    }

    #[test]
    fn the_keyword_met_first_wins() {
        let rules = [rule("course\nfees", 1), rule("mba", 2)];
        assert_eq!(
            match_rule(&rules, "Hi, I want to know about the MBA course"),
            Some(Uuid::from_u128(2))
        );
        assert_eq!(match_rule(&rules, "fees please"), Some(Uuid::from_u128(1)));
        assert_eq!(match_rule(&rules, "hello"), None);
    }

    #[test]
    fn consent_words_are_whole_messages() {
        assert_eq!(consent_word(" STOP "), Some(false));
        assert_eq!(consent_word("Start"), Some(true));
        assert_eq!(consent_word("please stop calling"), None);
    }

    #[test]
    fn the_window_is_open_for_a_day() {
        let now = Utc::now();
        assert_eq!(
            window_expiry(Some(now - Duration::hours(23)), now),
            Some(now + Duration::hours(1))
        );
        assert_eq!(window_expiry(Some(now - Duration::hours(25)), now), None);
        assert_eq!(window_expiry(None, now), None);
    }
}
