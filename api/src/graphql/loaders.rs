//! DataLoaders: batch the lookups a list would otherwise make one row at a time.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use parley_entity::user;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::errors::AppError;

pub struct UserLoader {
    db: DatabaseConnection,
}

impl UserLoader {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

impl Loader<Uuid> for UserLoader {
    type Value = user::Model;
    type Error = Arc<AppError>;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let users = user::Entity::find()
            .filter(user::Column::Id.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(|e| Arc::new(AppError::from(e)))?;
        Ok(users.into_iter().map(|u| (u.id, u)).collect())
    }
}
