//! `SigningKeyStore`: access-token signing keys, shared by every replica through the database.
use async_trait::async_trait;
use sea_orm::{ActiveValue::Set, EntityTrait, QueryOrder};
use warden_core::{Error, model::SigningKey, ports::SigningKeyStore};

use crate::{SqlStore, internal, tables::signing_keys, unique_violation_as};

#[async_trait]
impl SigningKeyStore for SqlStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, Error> {
        let rows = signing_keys::Entity::find()
            .order_by_desc(signing_keys::Column::CreatedAt)
            .order_by_desc(signing_keys::Column::Kid)
            .all(&self.db)
            .await
            .map_err(internal)?;
        Ok(rows
            .into_iter()
            .map(|row| SigningKey {
                kid: row.kid,
                private_der: row.private_der,
                public_key: row.public_key,
                created_at: row.created_at,
            })
            .collect())
    }

    async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), Error> {
        signing_keys::Entity::insert(signing_keys::ActiveModel {
            kid: Set(key.kid.clone()),
            private_der: Set(key.private_der.clone()),
            public_key: Set(key.public_key.clone()),
            created_at: Set(key.created_at),
        })
        .exec(&self.db)
        .await
        .map(|_| ())
        .map_err(unique_violation_as(Error::AlreadyExists("signing key")))
    }
}
