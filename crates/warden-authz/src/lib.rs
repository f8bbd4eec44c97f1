//! Answers CheckPermission (SPEC §5): loads a subject's holdings and the entity tree through the
//! core `SubjectSource` trait and decides with the core decision function. Every answer is read
//! from the source of truth, so it is never stale; the cache of issue #7 will sit behind this type.
use std::{collections::BTreeSet, sync::Arc};

use warden_core::{
    Error,
    decision::{self, Decision, Target},
    ids::{OrganizationId, PermissionKey, UserId},
    ports::SubjectSource,
};

/// One check, already validated against the catalogue.
#[derive(Clone, Debug)]
pub struct Check {
    pub user: UserId,
    pub permission: PermissionKey,
    pub target: Target,
}

#[derive(Clone)]
pub struct Authorizer {
    source: Arc<dyn SubjectSource>,
}

impl Authorizer {
    pub fn new(source: Arc<dyn SubjectSource>) -> Self {
        Self { source }
    }

    pub async fn check(
        &self,
        organization: OrganizationId,
        check: &Check,
    ) -> Result<Decision, Error> {
        Ok(self
            .check_many(organization, std::slice::from_ref(check))
            .await?
            .remove(0))
    }

    /// Decides a batch with one entity-tree read and one subject read per distinct user.
    pub async fn check_many(
        &self,
        organization: OrganizationId,
        checks: &[Check],
    ) -> Result<Vec<Decision>, Error> {
        let tree = self.source.load_entity_tree(organization).await?;
        let mut subjects = Vec::new();
        for user in checks
            .iter()
            .map(|check| check.user)
            .collect::<BTreeSet<_>>()
        {
            subjects.push((user, self.source.load_subject(organization, user).await?));
        }
        Ok(checks
            .iter()
            .map(|check| {
                let subject = subjects
                    .iter()
                    .find(|(user, _)| *user == check.user)
                    .and_then(|(_, subject)| subject.as_ref());
                decision::decide(subject, &check.permission, check.target, &tree)
            })
            .collect())
    }

    pub async fn effective_permissions(
        &self,
        organization: OrganizationId,
        user: UserId,
        target: Target,
    ) -> Result<BTreeSet<PermissionKey>, Error> {
        let tree = self.source.load_entity_tree(organization).await?;
        let subject = self.source.load_subject(organization, user).await?;
        Ok(decision::effective_permissions(
            subject.as_ref(),
            target,
            &tree,
        ))
    }
}
