//! DataLoaders for contact lists: all tags and attribute values of a page in one query each.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use parley_entity::{attribute, contact_attribute, contact_tag, tag};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::errors::AppError;

/// Keys are `(project_id, contact_id)`, so a loader can never return another project's rows.
pub type ContactKey = (Uuid, Uuid);

pub struct ContactTagsLoader {
    pub db: DatabaseConnection,
}

impl Loader<ContactKey> for ContactTagsLoader {
    type Value = Vec<tag::Model>;
    type Error = Arc<AppError>;

    async fn load(
        &self,
        keys: &[ContactKey],
    ) -> Result<HashMap<ContactKey, Self::Value>, Self::Error> {
        let mut out: HashMap<ContactKey, Vec<tag::Model>> = HashMap::new();
        for (project_id, contact_ids) in by_project(keys) {
            let rows = contact_tag::Entity::find()
                .filter(contact_tag::Column::ProjectId.eq(project_id))
                .filter(contact_tag::Column::ContactId.is_in(contact_ids))
                .find_also_related(tag::Entity)
                .order_by_asc(tag::Column::NameKey)
                .all(&self.db)
                .await
                .map_err(|e| Arc::new(AppError::from(e)))?;
            for (link, tag) in rows {
                if let Some(tag) = tag {
                    out.entry((project_id, link.contact_id))
                        .or_default()
                        .push(tag);
                }
            }
        }
        Ok(out)
    }
}

pub struct ContactAttributesLoader {
    pub db: DatabaseConnection,
}

impl Loader<ContactKey> for ContactAttributesLoader {
    type Value = Vec<(attribute::Model, String)>;
    type Error = Arc<AppError>;

    async fn load(
        &self,
        keys: &[ContactKey],
    ) -> Result<HashMap<ContactKey, Self::Value>, Self::Error> {
        let mut out: HashMap<ContactKey, Self::Value> = HashMap::new();
        for (project_id, contact_ids) in by_project(keys) {
            let rows = contact_attribute::Entity::find()
                .filter(contact_attribute::Column::ProjectId.eq(project_id))
                .filter(contact_attribute::Column::ContactId.is_in(contact_ids))
                .find_also_related(attribute::Entity)
                .order_by_asc(attribute::Column::KeyLower)
                .all(&self.db)
                .await
                .map_err(|e| Arc::new(AppError::from(e)))?;
            for (value, definition) in rows {
                if let Some(definition) = definition {
                    out.entry((project_id, value.contact_id))
                        .or_default()
                        .push((definition, value.value));
                }
            }
        }
        Ok(out)
    }
}

fn by_project(keys: &[ContactKey]) -> HashMap<Uuid, Vec<Uuid>> {
    let mut groups: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (project_id, contact_id) in keys {
        groups.entry(*project_id).or_default().push(*contact_id);
    }
    groups
}
