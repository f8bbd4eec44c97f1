//! A role deleted while it is being granted leaves no grant naming it: the granting transaction
//! finds the role gone (and waits for a deletion in progress), so users and groups stay editable.
use chrono::Utc;
use uuid::Uuid;
use warden_core::{
    Error,
    catalogue::READ_ONLY_ROLE,
    ids::{GroupId, PermissionKey, RoleId},
    model::{Group, Role, UserChange},
    ports::{GroupStore, RoleStore, UserStore},
};

use crate::{TestStore, allow, audit, on_all};

pub async fn a_deleted_role_cannot_be_granted_to_users_or_groups(store: &TestStore) {
    let acme = store.organization().await;
    let admin = store.active_admin(acme.id).await;
    let role = Role {
        id: RoleId::new(Uuid::now_v7().to_string()),
        organization_id: acme.id,
        name: "Gone".to_owned(),
        description: String::new(),
        permissions: vec![PermissionKey::new("users.read")],
        predefined: false,
    };
    store
        .create_role(&role, &audit(acme.id, "role.created"))
        .await
        .unwrap();
    store
        .delete_role(
            acme.id,
            &role.id,
            &RoleId::new(READ_ONLY_ROLE),
            acme.owner,
            &allow,
            &audit(acme.id, "role.deleted"),
        )
        .await
        .unwrap();
    let gone = || vec![on_all(role.id.as_str())];

    let change = UserChange {
        grants: Some(gone()),
        ..UserChange::default()
    };
    let error = store
        .update_user(acme.id, admin, &change, &audit(acme.id, "user.updated"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound("role")), "{error:?}");
    let user = store.find_user(acme.id, admin).await.unwrap().unwrap();
    assert_eq!(
        user.grants,
        vec![on_all("admin")],
        "the user kept its grants"
    );

    let invite = store.invitation(acme.id, gone());
    let error = store.invite(&invite).await.unwrap_err();
    assert!(matches!(error, Error::NotFound("role")), "{error:?}");

    let group = Group {
        id: GroupId::generate(),
        organization_id: acme.id,
        name: "Team".to_owned(),
        grants: gone(),
        members: vec![],
        created_at: Utc::now(),
    };
    let error = store
        .create_group(&group, &audit(acme.id, "group.created"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound("role")), "{error:?}");
    assert!(store.find_group(acme.id, group.id).await.unwrap().is_none());
}

pub async fn a_grant_racing_the_deletion_of_its_role_leaves_no_grant_naming_it(store: &TestStore) {
    let acme = store.organization().await;
    let admin = store.active_admin(acme.id).await;
    for round in 0..8 {
        let role = Role {
            id: RoleId::new(Uuid::now_v7().to_string()),
            organization_id: acme.id,
            name: format!("Racing {round}"),
            description: String::new(),
            permissions: vec![PermissionKey::new("users.read")],
            predefined: false,
        };
        store
            .create_role(&role, &audit(acme.id, "role.created"))
            .await
            .unwrap();
        let change = UserChange {
            grants: Some(vec![on_all(role.id.as_str())]),
            ..UserChange::default()
        };
        let (updated, removed) = (
            audit(acme.id, "user.updated"),
            audit(acme.id, "role.deleted"),
        );
        let fallback = RoleId::new(READ_ONLY_ROLE);
        let (granted, deleted) = tokio::join!(
            store.update_user(acme.id, admin, &change, &updated),
            store.delete_role(acme.id, &role.id, &fallback, acme.owner, &allow, &removed),
        );
        deleted.unwrap();
        let user = store.find_user(acme.id, admin).await.unwrap().unwrap();
        match granted {
            // The grant came first: the deletion moved it to read_only.
            Ok(_) => assert_eq!(user.grants, vec![on_all(READ_ONLY_ROLE)], "round {round}"),
            // The deletion came first: the grant found the role gone and changed nothing.
            Err(Error::NotFound("role")) => assert_ne!(user.grants, change.grants.unwrap()),
            Err(other) => panic!("round {round}: {other:?}"),
        }
    }
}
