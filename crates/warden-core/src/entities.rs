//! Renaming, archiving and restoring an entity (issue 16): the change, applied to the entity as the
//! write's transaction reads it, so the store decides "already archived" on what it locked.
use chrono::{DateTime, Utc};

use crate::{Error, model::Entity};

/// What UpdateEntity, ArchiveEntity and RestoreEntity change.
#[derive(Clone, Debug, PartialEq)]
pub enum EntityChange {
    Rename(String),
    Archive(DateTime<Utc>),
    Restore,
}

impl EntityChange {
    /// The entity after the change; archiving an archived entity or restoring a live one is
    /// `FailedPrecondition`, so a retried call cannot move the archive time.
    pub fn apply(&self, before: &Entity) -> Result<Entity, Error> {
        let mut after = before.clone();
        match (self, before.archived_at) {
            (EntityChange::Rename(name), _) => after.name = name.clone(),
            (EntityChange::Archive(_), Some(_)) => {
                return Err(Error::FailedPrecondition(
                    "entity is already archived".into(),
                ));
            }
            (EntityChange::Archive(at), None) => after.archived_at = Some(*at),
            (EntityChange::Restore, None) => {
                return Err(Error::FailedPrecondition("entity is not archived".into()));
            }
            (EntityChange::Restore, Some(_)) => after.archived_at = None,
        }
        Ok(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{EntityId, OrganizationId};

    fn entity() -> Entity {
        Entity {
            id: EntityId::generate(),
            organization_id: OrganizationId::generate(),
            name: "GmbH".into(),
            parent: None,
            created_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            archived_at: None,
        }
    }

    #[test]
    fn archive_then_restore_and_never_twice() {
        let at = DateTime::from_timestamp(1_800_000_100, 0).unwrap();
        let archived = EntityChange::Archive(at).apply(&entity()).unwrap();
        assert_eq!(archived.archived_at, Some(at));
        assert!(matches!(
            EntityChange::Archive(at).apply(&archived),
            Err(Error::FailedPrecondition(_))
        ));
        let restored = EntityChange::Restore.apply(&archived).unwrap();
        assert_eq!(restored.archived_at, None);
        assert!(matches!(
            EntityChange::Restore.apply(&restored),
            Err(Error::FailedPrecondition(_))
        ));
        let renamed = EntityChange::Rename("AG".into()).apply(&archived).unwrap();
        assert_eq!(
            (renamed.name.as_str(), renamed.archived_at),
            ("AG", Some(at))
        );
    }
}
