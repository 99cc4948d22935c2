//! One CSV row to a contact's fields, or the reason it cannot be imported.

use std::collections::HashMap;

use csv::StringRecord;
use uuid::Uuid;

use super::mapping::Mapping;
use crate::contacts::{
    phone::{self, PhoneRules},
    service::{MAX_ATTRIBUTE_VALUE, MAX_TAGS_PER_CONTACT},
};

#[derive(Clone, Debug, PartialEq)]
pub struct ParsedRow {
    pub name: String,
    pub phone: String,
    pub tag_ids: Vec<Uuid>,
    pub source: Option<String>,
    pub first_message_tag: Option<Uuid>,
    pub attributes: Vec<(Uuid, String)>,
    /// What was left out of an applied row (unknown tags).
    pub warnings: Vec<String>,
}

pub struct RowContext<'a> {
    pub mapping: &'a Mapping,
    pub rules: &'a PhoneRules,
    /// The project's tags by lowercased name.
    pub tags: &'a HashMap<String, Uuid>,
}

fn cell(record: &StringRecord, index: usize) -> &str {
    record.get(index).map(str::trim).unwrap_or_default()
}

pub fn parse(record: &StringRecord, ctx: &RowContext<'_>) -> Result<ParsedRow, String> {
    let m = ctx.mapping;
    let name = cell(record, m.name);
    if name.is_empty() {
        return Err("the name is missing".into());
    }
    if name.chars().count() > 256 {
        return Err("the name is longer than 256 characters".into());
    }
    // A leading ' is a spreadsheet's text marker (our own exports write phones so).
    let raw_phone = cell(record, m.phone).trim_start_matches('\'');
    if raw_phone.is_empty() {
        return Err("the phone number is missing".into());
    }
    let phone = phone::normalize(raw_phone, ctx.rules).map_err(|e| e.to_string())?;

    let mut warnings = Vec::new();
    let mut tag_ids = Vec::new();
    if let Some(index) = m.tags {
        let names: Vec<&str> = cell(record, index)
            .split('|')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        if names.len() > MAX_TAGS_PER_CONTACT {
            return Err(format!(
                "{} tags: a contact has at most {MAX_TAGS_PER_CONTACT}",
                names.len()
            ));
        }
        let mut unknown = Vec::new();
        for name in names {
            match ctx.tags.get(&name.to_lowercase()) {
                Some(id) if !tag_ids.contains(id) => tag_ids.push(*id),
                Some(_) => {}
                None => unknown.push(name),
            }
        }
        if !unknown.is_empty() {
            warnings.push(format!("unknown tags not assigned: {}", unknown.join(", ")));
        }
    }
    let source = m
        .source
        .map(|i| cell(record, i))
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().take(128).collect());
    let mut first_message_tag = None;
    if let Some(index) = m.first_message {
        let value = cell(record, index);
        if !value.is_empty() {
            match ctx.tags.get(&value.to_lowercase()) {
                Some(id) => first_message_tag = Some(*id),
                None => warnings.push(format!("unknown first-message tag not assigned: {value}")),
            }
        }
    }
    let mut attributes = Vec::new();
    for (index, attribute_id) in &m.attributes {
        let value = cell(record, *index);
        if value.chars().count() > MAX_ATTRIBUTE_VALUE {
            return Err(format!(
                "an attribute value is longer than {MAX_ATTRIBUTE_VALUE} characters"
            ));
        }
        if !value.is_empty() {
            attributes.push((*attribute_id, value.to_owned()));
        }
    }
    Ok(ParsedRow {
        name: name.to_owned(),
        phone,
        tag_ids,
        source,
        first_message_tag,
        attributes,
        warnings,
    })
}

impl ParsedRow {
    /// A later row of the same phone: its non-empty cells win, tags add up.
    pub fn merge(&mut self, later: ParsedRow) {
        self.name = later.name;
        if later.source.is_some() {
            self.source = later.source;
        }
        if later.first_message_tag.is_some() {
            self.first_message_tag = later.first_message_tag;
        }
        for id in later.tag_ids {
            if !self.tag_ids.contains(&id) {
                self.tag_ids.push(id);
            }
        }
        for (id, value) in later.attributes {
            match self.attributes.iter_mut().find(|(a, _)| *a == id) {
                Some(slot) => slot.1 = value,
                None => self.attributes.push((id, value)),
            }
        }
    }
}

#[cfg(test)]
mod proptests {
    //! Any row, whatever its cells hold, is a contact or a reason, never a panic; a
    //! contact's fields keep to the limits the database and WhatsApp set.

    use proptest::prelude::*;

    use super::*;
    use crate::proptests::{config, nasty_text};

    fn mapping() -> Mapping {
        Mapping {
            name: 0,
            phone: 1,
            tags: Some(2),
            source: Some(3),
            first_message: Some(4),
            attributes: vec![(5, Uuid::nil())],
        }
    }

    fn cell() -> impl Strategy<Value = String> {
        prop_oneof![
            nasty_text(),
            "'?\\+?[0-9 ()-]{0,16}",
            proptest::collection::vec("[A-Za-z ]{0,5}", 0..60).prop_map(|t| t.join("|")),
            "[a-z]{300}",
        ]
    }

    proptest! {
        #![proptest_config(config(200))]

        #[test]
        fn any_row_is_a_contact_or_a_reason(cells in proptest::collection::vec(cell(), 0..8)) {
            let record = StringRecord::from(cells);
            let tags = HashMap::from([("vip".to_owned(), Uuid::from_u128(1))]);
            let rules = PhoneRules::default();
            let ctx = RowContext { mapping: &mapping(), rules: &rules, tags: &tags };
            match parse(&record, &ctx) {
                Ok(row) => {
                    prop_assert!(!row.name.is_empty() && row.name.chars().count() <= 256);
                    prop_assert!(row.phone.starts_with('+'));
                    prop_assert!(row.tag_ids.len() <= MAX_TAGS_PER_CONTACT);
                    prop_assert!(row.source.as_ref().is_none_or(|s| s.chars().count() <= 128));
                    prop_assert!(row.attributes.iter().all(|(_, v)| !v.is_empty()
                        && v.chars().count() <= MAX_ATTRIBUTE_VALUE));
                }
                Err(reason) => prop_assert!(!reason.is_empty()),
            }
        }
    }
}
