//! An organisation has exactly one owner, whatever runs concurrently: the owner column is unique and
//! a transfer is one transaction.
use warden_core::{
    catalogue::{ADMIN_ROLE, OWNER_ROLE},
    ids::UserId,
    model::{User, UserStatus},
    ports::{OrganizationStore, UserSearch, UserStore},
};

use crate::{Org, TestStore, audit, on_all};

/// The one owner holds `owner` on all entities and nobody else holds `owner` at all.
async fn the_one_owner(store: &TestStore, acme: &Org) -> User {
    let owners = store.owners(acme.id).await;
    assert_eq!(owners.len(), 1, "{owners:?}");
    let owner = owners.into_iter().next().unwrap();
    assert_eq!(owner.grants, vec![on_all(OWNER_ROLE)]);
    let everyone = crate::everyone(chrono::Utc::now());
    for user in store.list_users(acme.id, &everyone).await.unwrap() {
        let holds_owner = user
            .grants
            .iter()
            .any(|grant| grant.role.as_str() == OWNER_ROLE);
        assert_eq!(holds_owner, user.id == owner.id, "{user:?}");
    }
    owner
}

async fn transfer(store: &TestStore, acme: &Org, to: UserId) -> Result<User, warden_core::Error> {
    store
        .transfer_ownership(acme.id, None, to, &audit(acme.id, "ownership.transferred"))
        .await
}

pub async fn concurrent_transfers_leave_exactly_one_owner(store: &TestStore) {
    let acme = store.organization().await;
    for _ in 0..3 {
        let (first, second) = (
            store.active_admin(acme.id).await,
            store.active_admin(acme.id).await,
        );
        let previous = the_one_owner(store, &acme).await.id;

        let (to_first, to_second) = tokio::join!(
            transfer(store, &acme, first),
            transfer(store, &acme, second)
        );
        let winners: Vec<UserId> = [(first, &to_first), (second, &to_second)]
            .into_iter()
            .filter(|(_, result)| result.is_ok())
            .map(|(user, _)| user)
            .collect();
        assert!(!winners.is_empty(), "{to_first:?} {to_second:?}");
        let owner = the_one_owner(store, &acme).await;
        assert!(winners.contains(&owner.id));
        let previous = store.find_user(acme.id, previous).await.unwrap().unwrap();
        assert_eq!(previous.grants, vec![on_all(ADMIN_ROLE)]);
    }
}

pub async fn concurrent_transfers_to_one_admin_leave_them_the_only_owner(store: &TestStore) {
    let acme = store.organization().await;
    let admin = store.active_admin(acme.id).await;

    let (once, twice) = tokio::join!(transfer(store, &acme, admin), transfer(store, &acme, admin));
    assert!(once.is_ok() || twice.is_ok(), "{once:?} {twice:?}");
    assert_eq!(the_one_owner(store, &acme).await.id, admin);
    let previous = store.find_user(acme.id, acme.owner).await.unwrap().unwrap();
    assert_eq!(
        (previous.owner, previous.grants),
        (false, vec![on_all(ADMIN_ROLE)])
    );
}

pub async fn transfer_racing_a_suspension_leaves_exactly_one_owner(store: &TestStore) {
    let acme = store.organization().await;
    for _ in 0..3 {
        let admin = store.active_admin(acme.id).await;
        let previous = the_one_owner(store, &acme).await.id;

        let suspension = audit(acme.id, "user.suspended");
        let suspend = store.change_status(
            acme.id,
            admin,
            &[UserStatus::Active],
            UserStatus::Suspended,
            &suspension,
        );
        let (transferred, suspended) = tokio::join!(transfer(store, &acme, admin), suspend);
        // The store suspends whoever is active (keeping owners from suspension is the server's
        // rule); a transfer that finds its candidate suspended fails as a whole.
        assert!(suspended.is_ok(), "{suspended:?}");
        let owner = the_one_owner(store, &acme).await;
        match &transferred {
            Ok(_) => assert_eq!(owner.id, admin),
            Err(warden_core::Error::FailedPrecondition(_)) => assert_eq!(owner.id, previous),
            Err(other) => panic!("{other:?}"),
        }
    }
}
