//! `SubjectSource`: what a decision needs about one user, in a fixed number of queries.
use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use warden_core::{
    Error,
    decision::{EntityTree, Holding, Source, Subject},
    ids::{EntityId, OrganizationId, UserId},
    model::{Scope, UserStatus},
    ports::SubjectSource,
};

use crate::{
    SqlStore,
    convert::uuid,
    internal,
    roles::permissions_of,
    tables::{entities, users},
    users::load_user,
};

#[async_trait]
impl SubjectSource for SqlStore {
    async fn load_subject(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<Option<Subject>, Error> {
        let row = users::Entity::find_by_id(user.to_string())
            .filter(users::Column::OrganizationId.eq(organization.to_string()))
            .one(&self.db)
            .await
            .map_err(internal)?;
        let Some(row) = row else { return Ok(None) };
        let user = load_user(&self.db, row).await?;
        let roles = user
            .grants
            .iter()
            .map(|grant| grant.role.to_string())
            .collect::<BTreeSet<_>>();
        let mut permissions = permissions_of(&self.db, organization, roles).await?;
        let mut holdings: Vec<Holding> = user
            .grants
            .into_iter()
            .map(|grant| Holding {
                permissions: permissions
                    .remove(grant.role.as_str())
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
                source: Source::Role(grant.role),
                scope: grant.scope,
            })
            .collect();
        // Direct permissions with the same scope become one holding each, so explain stays readable.
        let mut direct: BTreeMap<String, (Scope, BTreeSet<_>)> = BTreeMap::new();
        for grant in user.direct_grants {
            let key = format!("{:?}", grant.scope);
            direct
                .entry(key)
                .or_insert_with(|| (grant.scope.clone(), BTreeSet::new()))
                .1
                .insert(grant.permission);
        }
        holdings.extend(direct.into_values().map(|(scope, permissions)| Holding {
            source: Source::Direct,
            scope,
            permissions,
        }));
        Ok(Some(Subject {
            user: user.id,
            active: user.status == UserStatus::Active,
            holdings,
        }))
    }

    async fn load_entity_tree(&self, organization: OrganizationId) -> Result<EntityTree, Error> {
        let rows = entities::Entity::find()
            .filter(entities::Column::OrganizationId.eq(organization.to_string()))
            .all(&self.db)
            .await
            .map_err(internal)?;
        let pairs = rows
            .into_iter()
            .map(|row| {
                Ok((
                    EntityId(uuid(&row.id)?),
                    row.parent_id
                        .as_deref()
                        .map(uuid)
                        .transpose()?
                        .map(EntityId),
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(EntityTree::from_pairs(pairs))
    }
}
