//! Contacts: identity by phone or BSUID, tags, attributes, opt-in and blocking, each change
//! recorded in the customer journey.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use parley_entity::{attribute, contact, contact_attribute, contact_tag, project, tag};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TransactionTrait, sea_query::OnConflict,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    attributes,
    filter::{self, ContactFilter},
    journey::{self, Actor, Entry},
    listing,
    phone::{self, PhoneRules},
    segments,
};
use crate::{
    auth::Scope,
    errors::{AppError, AppResult},
    state::AppState,
    validate,
};

pub const MAX_TAGS_PER_CONTACT: usize = 100;
pub const MAX_ATTRIBUTE_VALUE: usize = 1_024;
pub const SOURCE_IMPORT: &str = "IMPORT";
pub const SOURCE_ORGANIC: &str = "ORGANIC";
pub const SOURCE_API: &str = "API";
pub const SOURCE_DASHBOARD: &str = "DASHBOARD";
pub const STATE_ASSISTANT: &str = "HANDLED_BY_ASSISTANT";

pub struct NewContact {
    pub name: String,
    pub phone: String,
    pub bsuid: Option<String>,
    pub source: Option<String>,
    pub tag_ids: Vec<Uuid>,
    pub attributes: Vec<(String, String)>,
}

pub struct ContactChanges {
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// The phone rules of a project: its default country and the configured unreachable list.
pub async fn phone_rules<C: ConnectionTrait>(
    conn: &C,
    state: &AppState,
    project_id: Uuid,
) -> AppResult<PhoneRules> {
    let project = project::Entity::find_by_id(project_id)
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("project"))?;
    Ok(PhoneRules {
        default_country: project.default_country,
        unreachable: state.settings.unreachable.clone(),
    })
}

pub fn normalize_phone(raw: &str, rules: &PhoneRules) -> AppResult<String> {
    phone::normalize(raw, rules).map_err(|e| AppError::bad_input("phone", e.to_string()))
}

pub fn contact_name(raw: &str) -> AppResult<String> {
    validate::text("name", raw, 256)
}

fn bsuid(raw: &str) -> AppResult<String> {
    let value = raw.trim();
    let valid = value.len() <= 64
        && value.split_once('.').is_some_and(|(cc, id)| {
            cc.len() == 2
                && cc.chars().all(|c| c.is_ascii_uppercase())
                && !id.is_empty()
                && id.chars().all(|c| c.is_ascii_alphanumeric())
        });
    if !valid {
        return Err(AppError::bad_input(
            "bsuid",
            "a business-scoped user id looks like IN.1502576394655843",
        ));
    }
    Ok(value.to_owned())
}

pub async fn create(
    state: &AppState,
    scope: &Scope,
    input: NewContact,
) -> AppResult<contact::Model> {
    let name = contact_name(&input.name)?;
    let txn = state.db.begin().await?;
    let rules = phone_rules(&txn, state, scope.project_id).await?;
    let phone = normalize_phone(&input.phone, &rules)?;
    let bsuid = input.bsuid.as_deref().map(bsuid).transpose()?;
    let source = match input.source {
        Some(s) => validate::text("source", &s, 128)?,
        None => SOURCE_DASHBOARD.to_owned(),
    };
    let tag_ids = project_tags(&txn, scope.project_id, &input.tag_ids).await?;
    let attribute_values = resolve_attributes(&txn, scope.project_id, input.attributes).await?;
    let now = Utc::now();
    let contact = contact::ActiveModel {
        id: Set(Uuid::now_v7()),
        project_id: Set(scope.project_id),
        name: Set(name),
        phone: Set(Some(phone)),
        bsuid: Set(bsuid),
        source: Set(source.clone()),
        first_message_tag_id: Set(None),
        opted_in: Set(true),
        opted_in_at: Set(Some(now)),
        opted_in_source: Set(Some(source)),
        incoming_blocked: Set(false),
        state: Set(STATE_ASSISTANT.to_owned()),
        last_active_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(identity_taken)?;
    let actor = Actor::of(scope);
    let mut entries = vec![Entry::new(
        contact.id,
        "contact.created",
        json!({ "source": contact.source }),
    )];
    entries.extend(attach_tags(&txn, &contact, &tag_ids, actor).await?);
    entries.extend(write_attributes(&txn, &contact, attribute_values).await?);
    journey::record(&txn, scope.project_id, actor, entries).await?;
    txn.commit().await?;
    Ok(contact)
}

fn identity_taken(err: sea_orm::DbErr) -> AppError {
    if validate::is_unique_violation(&err) {
        AppError::Conflict("a contact with this phone number or BSUID exists already".into())
    } else {
        err.into()
    }
}

pub async fn update(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    changes: ContactChanges,
) -> AppResult<contact::Model> {
    let txn = state.db.begin().await?;
    let contact = find_in(&txn, scope, id).await?;
    let mut active: contact::ActiveModel = contact.clone().into();
    let mut changed = serde_json::Map::new();
    if let Some(name) = changes.name {
        let name = contact_name(&name)?;
        if name != contact.name {
            changed.insert("name".into(), json!({ "from": contact.name, "to": name }));
            active.name = Set(name);
        }
    }
    if let Some(raw) = changes.phone {
        let rules = phone_rules(&txn, state, scope.project_id).await?;
        let phone = normalize_phone(&raw, &rules)?;
        if Some(&phone) != contact.phone.as_ref() {
            changed.insert(
                "phone".into(),
                json!({ "from": contact.phone, "to": phone }),
            );
            active.phone = Set(Some(phone));
        }
    }
    if changed.is_empty() {
        return Ok(contact);
    }
    active.updated_at = Set(Utc::now());
    let contact = active.update(&txn).await.map_err(identity_taken)?;
    journey::record(
        &txn,
        scope.project_id,
        Actor::of(scope),
        vec![Entry::new(contact.id, "contact.updated", changed.into())],
    )
    .await?;
    txn.commit().await?;
    Ok(contact)
}

pub async fn add_tags(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    tag_ids: &[Uuid],
) -> AppResult<contact::Model> {
    let txn = state.db.begin().await?;
    let contact = find_in(&txn, scope, id).await?;
    let tags = project_tags(&txn, scope.project_id, tag_ids).await?;
    let actor = Actor::of(scope);
    let entries = attach_tags(&txn, &contact, &tags, actor).await?;
    journey::record(&txn, scope.project_id, actor, entries).await?;
    txn.commit().await?;
    Ok(contact)
}

pub async fn remove_tags(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    tag_ids: &[Uuid],
) -> AppResult<contact::Model> {
    let txn = state.db.begin().await?;
    let contact = find_in(&txn, scope, id).await?;
    let tags = project_tags(&txn, scope.project_id, tag_ids).await?;
    let carried: HashSet<Uuid> = contact_tag::Entity::find()
        .filter(contact_tag::Column::ContactId.eq(contact.id))
        .all(&txn)
        .await?
        .into_iter()
        .map(|ct| ct.tag_id)
        .collect();
    let removed: Vec<&tag::Model> = tags.iter().filter(|t| carried.contains(&t.id)).collect();
    if !removed.is_empty() {
        contact_tag::Entity::delete_many()
            .filter(contact_tag::Column::ContactId.eq(contact.id))
            .filter(contact_tag::Column::TagId.is_in(removed.iter().map(|t| t.id)))
            .exec(&txn)
            .await?;
        let entries = removed
            .iter()
            .map(|t| {
                Entry::new(
                    contact.id,
                    "tag.removed",
                    json!({ "tagId": t.id, "tag": t.name }),
                )
            })
            .collect();
        journey::record(&txn, scope.project_id, Actor::of(scope), entries).await?;
    }
    txn.commit().await?;
    Ok(contact)
}

/// Sets attribute values; `None` clears one.
pub async fn set_attributes(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    values: Vec<(String, Option<String>)>,
) -> AppResult<contact::Model> {
    let txn = state.db.begin().await?;
    let contact = find_in(&txn, scope, id).await?;
    let definitions = attributes::by_key(&txn, scope.project_id).await?;
    let mut sets = Vec::new();
    let mut clears = Vec::new();
    for (key, value) in values {
        let definition = attributes::lookup(&definitions, "attributes", &key)?;
        match value {
            Some(v) => sets.push((definition.clone(), attribute_value(&v)?)),
            None => clears.push(definition.clone()),
        }
    }
    let mut entries = write_attributes(&txn, &contact, sets).await?;
    for definition in clears {
        let old = contact_attribute::Entity::find_by_id((contact.id, definition.id))
            .one(&txn)
            .await?;
        if let Some(old) = old {
            contact_attribute::Entity::delete_by_id((contact.id, definition.id))
                .exec(&txn)
                .await?;
            entries.push(Entry::new(
                contact.id,
                "attribute.changed",
                json!({ "key": definition.key, "from": old.value, "to": null }),
            ));
        }
    }
    journey::record(&txn, scope.project_id, Actor::of(scope), entries).await?;
    txn.commit().await?;
    Ok(contact)
}

pub async fn set_opted_in(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    opted_in: bool,
) -> AppResult<contact::Model> {
    set_flag(
        state,
        scope,
        id,
        opted_in,
        |c| c.opted_in,
        |a, v, now| {
            a.opted_in = Set(v);
            if v {
                a.opted_in_at = Set(Some(now));
                a.opted_in_source = Set(Some(SOURCE_DASHBOARD.to_owned()));
            }
        },
        if opted_in { "opted_in" } else { "opted_out" },
    )
    .await
}

pub async fn set_incoming_blocked(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    blocked: bool,
) -> AppResult<contact::Model> {
    set_flag(
        state,
        scope,
        id,
        blocked,
        |c| c.incoming_blocked,
        |a, v, _| a.incoming_blocked = Set(v),
        if blocked {
            "incoming.blocked"
        } else {
            "incoming.unblocked"
        },
    )
    .await
}

async fn set_flag(
    state: &AppState,
    scope: &Scope,
    id: Uuid,
    value: bool,
    current: impl Fn(&contact::Model) -> bool,
    apply: impl FnOnce(&mut contact::ActiveModel, bool, DateTime<Utc>),
    kind: &'static str,
) -> AppResult<contact::Model> {
    let txn = state.db.begin().await?;
    let contact = find_in(&txn, scope, id).await?;
    if current(&contact) == value {
        return Ok(contact);
    }
    let now = Utc::now();
    let mut active: contact::ActiveModel = contact.into();
    apply(&mut active, value, now);
    active.updated_at = Set(now);
    let contact = active.update(&txn).await?;
    journey::record(
        &txn,
        scope.project_id,
        Actor::of(scope),
        vec![Entry::new(contact.id, kind, json!({}))],
    )
    .await?;
    txn.commit().await?;
    Ok(contact)
}

/// The contact with this phone (in any notation) or this BSUID.
pub async fn find_by_identity(
    state: &AppState,
    scope: &Scope,
    phone: Option<&str>,
    bsuid_value: Option<&str>,
) -> AppResult<contact::Model> {
    let mut select =
        contact::Entity::find().filter(contact::Column::ProjectId.eq(scope.project_id));
    match (phone, bsuid_value) {
        (Some(raw), None) => {
            let rules = phone_rules(&state.db, state, scope.project_id).await?;
            select = select.filter(contact::Column::Phone.eq(normalize_phone(raw, &rules)?));
        }
        (None, Some(raw)) => select = select.filter(contact::Column::Bsuid.eq(bsuid(raw)?)),
        _ => {
            return Err(AppError::bad_input(
                "phone",
                "give either a phone or a BSUID",
            ));
        }
    }
    select
        .one(&state.db)
        .await?
        .ok_or(AppError::NotFound("contact"))
}

pub async fn find(state: &AppState, scope: &Scope, id: Uuid) -> AppResult<contact::Model> {
    find_in(&state.db, scope, id).await
}

async fn find_in<C: ConnectionTrait>(
    conn: &C,
    scope: &Scope,
    id: Uuid,
) -> AppResult<contact::Model> {
    contact::Entity::find_by_id(id)
        .filter(contact::Column::ProjectId.eq(scope.project_id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("contact"))
}

/// `filter` with its saved segments replaced by their conditions.
pub async fn expand_segments(
    state: &AppState,
    scope: &Scope,
    filter: &ContactFilter,
) -> AppResult<ContactFilter> {
    segments::expand(state, scope, filter.clone()).await
}

/// A page of the contacts matching `filter` (its segments expanded), read on `conn`: the
/// pool, or a connection the caller holds for its next statements too. Nothing else is
/// read on the way, so a held connection never waits for a second one.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    scope: &Scope,
    filter: &ContactFilter,
    request: listing::Request,
) -> AppResult<listing::SortedPage> {
    let select = filter::select(scope.project_id, filter, Utc::now())?;
    listing::fetch(conn, select, request).await
}

pub async fn count(state: &AppState, scope: &Scope, filter: &ContactFilter) -> AppResult<u64> {
    let filter = segments::expand(state, scope, filter.clone()).await?;
    Ok(filter::select(scope.project_id, &filter, Utc::now())?
        .count(&state.db)
        .await?)
}

/// The given tags, all of which must belong to the project.
async fn project_tags<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    ids: &[Uuid],
) -> AppResult<Vec<tag::Model>> {
    if ids.len() > MAX_TAGS_PER_CONTACT {
        return Err(AppError::bad_input(
            "tags",
            format!("a contact has at most {MAX_TAGS_PER_CONTACT} tags"),
        ));
    }
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    let found = tag::Entity::find()
        .filter(tag::Column::ProjectId.eq(project_id))
        .filter(tag::Column::Id.is_in(unique.iter().copied()))
        .all(conn)
        .await?;
    if found.len() != unique.len() {
        return Err(AppError::NotFound("tag"));
    }
    Ok(found)
}

async fn resolve_attributes<C: ConnectionTrait>(
    conn: &C,
    project_id: Uuid,
    values: Vec<(String, String)>,
) -> AppResult<Vec<(attribute::Model, String)>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let definitions = attributes::by_key(conn, project_id).await?;
    values
        .into_iter()
        .map(|(key, value)| {
            let definition = attributes::lookup(&definitions, "attributes", &key)?;
            Ok((definition.clone(), attribute_value(&value)?))
        })
        .collect()
}

fn attribute_value(raw: &str) -> AppResult<String> {
    if raw.chars().count() > MAX_ATTRIBUTE_VALUE {
        return Err(AppError::bad_input(
            "attributes",
            format!("an attribute value has at most {MAX_ATTRIBUTE_VALUE} characters"),
        ));
    }
    Ok(raw.to_owned())
}

/// Adds tags the contact does not carry yet, enforcing the per-contact maximum.
async fn attach_tags<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
    tags: &[tag::Model],
    actor: Actor,
) -> AppResult<Vec<Entry>> {
    if tags.is_empty() {
        return Ok(Vec::new());
    }
    let carried: HashSet<Uuid> = contact_tag::Entity::find()
        .filter(contact_tag::Column::ContactId.eq(contact.id))
        .all(conn)
        .await?
        .into_iter()
        .map(|ct| ct.tag_id)
        .collect();
    let new: Vec<&tag::Model> = tags.iter().filter(|t| !carried.contains(&t.id)).collect();
    if carried.len() + new.len() > MAX_TAGS_PER_CONTACT {
        return Err(AppError::bad_input(
            "tags",
            format!("a contact has at most {MAX_TAGS_PER_CONTACT} tags"),
        ));
    }
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    contact_tag::Entity::insert_many(new.iter().map(|t| contact_tag::ActiveModel {
        contact_id: Set(contact.id),
        tag_id: Set(t.id),
        project_id: Set(contact.project_id),
        added_at: Set(now),
        added_by: Set(actor.id()),
    }))
    .on_conflict(
        OnConflict::columns([contact_tag::Column::ContactId, contact_tag::Column::TagId])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(new
        .iter()
        .map(|t| {
            Entry::new(
                contact.id,
                "tag.added",
                json!({ "tagId": t.id, "tag": t.name }),
            )
        })
        .collect())
}

/// Upserts attribute values; journey entries only for values that changed.
async fn write_attributes<C: ConnectionTrait>(
    conn: &C,
    contact: &contact::Model,
    values: Vec<(attribute::Model, String)>,
) -> AppResult<Vec<Entry>> {
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let existing: HashMap<Uuid, String> = contact_attribute::Entity::find()
        .filter(contact_attribute::Column::ContactId.eq(contact.id))
        .all(conn)
        .await?
        .into_iter()
        .map(|v| (v.attribute_id, v.value))
        .collect();
    let mut entries = Vec::new();
    let mut rows = Vec::new();
    for (definition, value) in values {
        let old = existing.get(&definition.id);
        if old == Some(&value) {
            continue;
        }
        entries.push(Entry::new(
            contact.id,
            "attribute.changed",
            json!({ "key": definition.key, "from": old, "to": value }),
        ));
        rows.push(contact_attribute::ActiveModel {
            contact_id: Set(contact.id),
            attribute_id: Set(definition.id),
            project_id: Set(contact.project_id),
            value: Set(value),
        });
    }
    if !rows.is_empty() {
        contact_attribute::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    contact_attribute::Column::ContactId,
                    contact_attribute::Column::AttributeId,
                ])
                .update_column(contact_attribute::Column::Value)
                .to_owned(),
            )
            .exec_without_returning(conn)
            .await?;
    }
    Ok(entries)
}

/// The first word of a name, and the rest (`$FirstName`, `$LastName`).
pub fn split_name(name: &str) -> (&str, &str) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, rest)) => (first, rest.trim()),
        None => (name, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_first_and_last() {
        assert_eq!(split_name("Asha Verma"), ("Asha", "Verma"));
        assert_eq!(
            split_name("  Jean  Claude Van Damme "),
            ("Jean", "Claude Van Damme")
        );
        assert_eq!(split_name("Cher"), ("Cher", ""));
    }

    #[test]
    fn bsuids_have_a_country_and_an_id() {
        assert!(bsuid("IN.1502576394655843").is_ok());
        assert!(bsuid("1502576394655843").is_err());
        assert!(bsuid("in.15").is_err());
    }
}
