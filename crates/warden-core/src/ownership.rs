//! Who may hand ownership on and who may receive it (SPEC §1): an organisation has exactly one owner,
//! who transfers ownership to an active admin; the operator reassigns it to one. The store applies the
//! change conditionally, so a concurrent suspension or transfer still leaves exactly one owner.
use crate::{
    Error,
    catalogue::{ADMIN_ROLE, CatalogueOptions},
    model::{User, UserStatus},
};

/// Only the owner transfers ownership; `caller` is the caller's user as stored, if found.
pub fn ensure_owner(caller: Option<User>) -> Result<User, Error> {
    caller
        .filter(|user| user.owner)
        .ok_or_else(|| Error::PermissionDenied("only the owner can transfer ownership".into()))
}

/// The new owner is an ACTIVE user who holds the predefined admin role and is not the owner already.
pub fn ensure_may_become_owner(candidate: &User) -> Result<(), Error> {
    if candidate.owner {
        return Err(Error::FailedPrecondition(
            "new_owner_user_id: is already the owner".into(),
        ));
    }
    let admin = candidate
        .grants
        .iter()
        .any(|grant| grant.role.as_str() == ADMIN_ROLE);
    if candidate.status != UserStatus::Active || !admin {
        return Err(Error::FailedPrecondition(
            "new_owner_user_id: must be an active admin".into(),
        ));
    }
    Ok(())
}

/// Some dashboards have no ownership transfer (the business platform's catalogue says so):
/// TransferOwnership is refused there. The operator's ReassignOwnership, for an owner who has
/// left, stays possible.
pub fn ensure_transferable(options: &CatalogueOptions) -> Result<(), Error> {
    if options.ownership_transferable {
        return Ok(());
    }
    Err(Error::FailedPrecondition(
        "ownership: cannot be transferred in this dashboard's catalogue".into(),
    ))
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::{
        ids::{OrganizationId, RoleId, UserId},
        model::{Grant, Scope},
    };

    fn user(status: UserStatus, role: &str) -> User {
        User {
            id: UserId(uuid::Uuid::from_u128(2)),
            organization_id: OrganizationId(uuid::Uuid::from_u128(1)),
            email: "grace@example.com".into(),
            first_name: "Grace".into(),
            last_name: "Hopper".into(),
            status,
            owner: false,
            grants: vec![Grant {
                role: RoleId::new(role),
                scope: Scope::All,
            }],
            direct_grants: vec![],
            created_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            last_login_at: None,
            last_active_at: None,
            invitation_expires_at: None,
        }
    }

    #[test]
    fn only_the_owner_transfers_ownership() {
        let admin = user(UserStatus::Active, ADMIN_ROLE);
        let owner = User {
            owner: true,
            ..admin.clone()
        };
        assert_eq!(ensure_owner(Some(owner.clone())).unwrap(), owner);
        for caller in [Some(admin), None] {
            assert_eq!(
                ensure_owner(caller).unwrap_err().to_string(),
                "only the owner can transfer ownership"
            );
        }
    }

    #[test]
    fn ownership_goes_only_to_an_active_admin_who_is_not_the_owner() {
        let refusal = |candidate: &User| {
            ensure_may_become_owner(candidate)
                .err()
                .map(|error| error.to_string())
        };
        assert_eq!(refusal(&user(UserStatus::Active, ADMIN_ROLE)), None);
        let not_admin = Some("new_owner_user_id: must be an active admin".to_owned());
        assert_eq!(refusal(&user(UserStatus::Active, "analyst")), not_admin);
        for status in [
            UserStatus::Pending,
            UserStatus::Suspended,
            UserStatus::Archived,
        ] {
            assert_eq!(refusal(&user(status, ADMIN_ROLE)), not_admin);
        }
        let owner = User {
            owner: true,
            ..user(UserStatus::Active, ADMIN_ROLE)
        };
        assert_eq!(
            refusal(&owner),
            Some("new_owner_user_id: is already the owner".to_owned())
        );
    }
}
