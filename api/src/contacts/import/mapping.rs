//! Which CSV column feeds which contact field, checked against the file and the project.

use std::collections::{HashMap, HashSet};

use parley_entity::attribute;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::errors::{AppError, AppResult};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "field",
    content = "attributeKey",
    rename_all = "SCREAMING_SNAKE_CASE"
)]
pub enum Field {
    Name,
    Phone,
    Tags,
    Source,
    FirstMessage,
    Attribute(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMapping {
    pub column: String,
    #[serde(flatten)]
    pub field: Field,
}

/// The mapping resolved to column positions and attribute ids.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub name: usize,
    pub phone: usize,
    pub tags: Option<usize>,
    pub source: Option<usize>,
    pub first_message: Option<usize>,
    pub attributes: Vec<(usize, Uuid)>,
}

pub fn resolve(
    headers: &[String],
    columns: &[ColumnMapping],
    attributes: &HashMap<String, attribute::Model>,
) -> AppResult<Mapping> {
    let bad = |message: String| AppError::bad_input("mapping", message);
    let position: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.to_lowercase(), i))
        .collect();
    let mut used_columns = HashSet::new();
    let mut used_fields = HashSet::new();
    let mut mapping = Mapping {
        name: usize::MAX,
        phone: usize::MAX,
        tags: None,
        source: None,
        first_message: None,
        attributes: Vec::new(),
    };
    for c in columns {
        let index = *position
            .get(&c.column.trim().to_lowercase())
            .ok_or_else(|| bad(format!("the file has no column {}", c.column)))?;
        if !used_columns.insert(index) {
            return Err(bad(format!("the column {} is mapped twice", c.column)));
        }
        let field_key = match &c.field {
            Field::Attribute(key) => format!("attribute:{}", key.to_lowercase()),
            other => format!("{other:?}"),
        };
        if !used_fields.insert(field_key) {
            return Err(bad(format!(
                "{} is mapped from two columns",
                describe(&c.field)
            )));
        }
        match &c.field {
            Field::Name => mapping.name = index,
            Field::Phone => mapping.phone = index,
            Field::Tags => mapping.tags = Some(index),
            Field::Source => mapping.source = Some(index),
            Field::FirstMessage => mapping.first_message = Some(index),
            Field::Attribute(key) => {
                let definition = crate::contacts::attributes::lookup(attributes, "mapping", key)?;
                mapping.attributes.push((index, definition.id));
            }
        }
    }
    if mapping.name == usize::MAX || mapping.phone == usize::MAX {
        return Err(bad("map a column to the name and one to the phone".into()));
    }
    Ok(mapping)
}

fn describe(field: &Field) -> String {
    match field {
        Field::Name => "the name".into(),
        Field::Phone => "the phone".into(),
        Field::Tags => "tags".into(),
        Field::Source => "the source".into(),
        Field::FirstMessage => "the first message".into(),
        Field::Attribute(key) => format!("the attribute {key}"),
    }
}
