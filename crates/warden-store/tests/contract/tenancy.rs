//! Reads and writes that name another organisation's ids see nothing and change nothing: every
//! query filters on the organisation inside the statement.
use chrono::Utc;
use uuid::Uuid;
use warden_core::{
    Error,
    catalogue::{ADMIN_ROLE, READ_ONLY_ROLE},
    ids::{ApiKeyId, EntityId, GroupId, InvitationId, PermissionKey, RoleId},
    model::{ApiKey, Entity, Group, Invitation, UserChange, UserFilter, UserStatus},
    ports::{
        ApiKeyStore, AuditStore, CredentialStore, FactorStore, GroupStore, InvitationStore,
        OrganizationStore, RoleStore, SubjectSource, UserSearch, UserStore,
    },
};

use crate::{TestStore, all_events, allow, audit, everyone, on_all};

pub async fn users_of_another_organization_are_invisible_and_untouchable(store: &TestStore) {
    let (acme, other) = (store.organization().await, store.organization().await);
    let admin = store.active_admin(acme.id).await;
    let invite = store.invitation(acme.id, vec![on_all(READ_ONLY_ROLE)]);
    let pending = store.invite(&invite).await.unwrap();

    for user in [acme.owner, admin, pending.id] {
        assert!(store.find_user(acme.id, user).await.unwrap().is_some());
        assert!(store.find_user(other.id, user).await.unwrap().is_none());
        assert!(store.load_subject(other.id, user).await.unwrap().is_none());
    }
    let listed = store
        .list_users(other.id, &everyone(Utc::now()))
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|user| user.id).collect::<Vec<_>>(),
        vec![other.owner]
    );
    let by_email = UserFilter {
        query: Some(pending.email.clone()),
        ..everyone(Utc::now())
    };
    assert!(
        store
            .list_users(other.id, &by_email)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_users(acme.id, &by_email).await.unwrap().len(), 1);

    let rename = UserChange {
        first_name: Some("Mallory".to_owned()),
        grants: Some(vec![on_all(ADMIN_ROLE)]),
        ..UserChange::default()
    };
    let changed = store
        .update_user(
            other.id,
            pending.id,
            &rename,
            &audit(other.id, "user.updated"),
        )
        .await;
    assert!(
        matches!(changed, Err(Error::NotFound("user"))),
        "{changed:?}"
    );
    let suspended = store
        .change_status(
            other.id,
            admin,
            &[UserStatus::Active],
            UserStatus::Suspended,
            &audit(other.id, "user.suspended"),
        )
        .await;
    assert!(
        matches!(suspended, Err(Error::NotFound("user"))),
        "{suspended:?}"
    );
    let password = store
        .set_password(
            other.id,
            admin,
            "stolen",
            None,
            &audit(other.id, "password.set"),
        )
        .await;
    assert!(
        matches!(password, Err(Error::NotFound("user"))),
        "{password:?}"
    );
    let transfer = store
        .transfer_ownership(
            other.id,
            None,
            admin,
            &audit(other.id, "ownership.transferred"),
        )
        .await;
    assert!(
        matches!(transfer, Err(Error::NotFound("user"))),
        "{transfer:?}"
    );
    let resend = store
        .resend_invitation(
            other.id,
            &Invitation {
                id: InvitationId::generate(),
                token_hash: format!("resent {}", Uuid::new_v4()),
                ..invite.invitation.clone()
            },
            &invite.notification,
            &audit(other.id, "invitation.resent"),
        )
        .await;
    assert!(matches!(resend, Err(Error::NotFound("user"))), "{resend:?}");

    let pending = store.find_user(acme.id, pending.id).await.unwrap().unwrap();
    assert_eq!(pending.first_name, "Ivy");
    assert_eq!(pending.grants, vec![on_all(READ_ONLY_ROLE)]);
    let admin = store.find_user(acme.id, admin).await.unwrap().unwrap();
    assert_eq!((admin.status, admin.owner), (UserStatus::Active, false));
    assert!(
        store
            .owners(acme.id)
            .await
            .iter()
            .all(|user| user.id == acme.owner)
    );
}

pub async fn roles_groups_and_entities_of_another_organization_are_invisible(store: &TestStore) {
    let (acme, other) = (store.organization().await, store.organization().await);
    let entity = Entity {
        id: EntityId::generate(),
        organization_id: acme.id,
        name: "Acme GmbH".to_owned(),
        parent: None,
        created_at: Utc::now(),
        archived_at: None,
    };
    store
        .create_entity(&entity, &audit(acme.id, "entity.created"))
        .await
        .unwrap();
    let role = warden_core::model::Role {
        id: RoleId::new(Uuid::now_v7().to_string()),
        organization_id: acme.id,
        name: "Auditor".to_owned(),
        description: String::new(),
        permissions: vec![PermissionKey::new("users.read")],
        predefined: false,
    };
    store
        .create_role(&role, &audit(acme.id, "role.created"))
        .await
        .unwrap();
    let group = Group {
        id: GroupId::generate(),
        organization_id: acme.id,
        name: "Auditors".to_owned(),
        grants: vec![on_all(role.id.as_str())],
        members: vec![],
        created_at: Utc::now(),
    };
    store
        .create_group(&group, &audit(acme.id, "group.created"))
        .await
        .unwrap();

    assert_eq!(
        store
            .find_roles(acme.id, std::slice::from_ref(&role.id))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .find_roles(other.id, std::slice::from_ref(&role.id))
            .await
            .unwrap()
            .is_empty()
    );
    let other_roles = store.list_roles(other.id, None, 500).await.unwrap();
    assert_eq!(other_roles.len(), 3, "only the predefined roles of `other`");
    assert!(
        other_roles
            .iter()
            .all(|(_, role)| role.organization_id == other.id)
    );
    let deleted = store
        .delete_role(
            other.id,
            &role.id,
            &RoleId::new(READ_ONLY_ROLE),
            other.owner,
            &allow,
            &audit(other.id, "role.deleted"),
        )
        .await;
    assert!(
        matches!(deleted, Err(Error::NotFound("role"))),
        "{deleted:?}"
    );

    assert!(store.find_group(acme.id, group.id).await.unwrap().is_some());
    assert!(
        store
            .find_group(other.id, group.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .list_groups(other.id, None, 500)
            .await
            .unwrap()
            .is_empty()
    );
    let renamed = store
        .update_group(
            other.id,
            group.id,
            Some("Mine"),
            None,
            other.owner,
            &allow,
            &audit(other.id, "group.updated"),
        )
        .await;
    assert!(
        matches!(renamed, Err(Error::NotFound("group"))),
        "{renamed:?}"
    );
    let joined = store
        .set_membership(
            other.id,
            group.id,
            other.owner,
            true,
            &audit(other.id, "group.joined"),
        )
        .await;
    assert!(
        matches!(joined, Err(Error::NotFound("group"))),
        "{joined:?}"
    );
    let joined = store
        .set_membership(
            acme.id,
            group.id,
            other.owner,
            true,
            &audit(acme.id, "group.joined"),
        )
        .await;
    assert!(matches!(joined, Err(Error::NotFound("user"))), "{joined:?}");
    let removed = store
        .delete_group(
            other.id,
            group.id,
            other.owner,
            &allow,
            &audit(other.id, "group.deleted"),
        )
        .await;
    assert!(
        matches!(removed, Err(Error::NotFound("group"))),
        "{removed:?}"
    );
    let kept = store.find_group(acme.id, group.id).await.unwrap().unwrap();
    assert_eq!((kept.name.as_str(), kept.members.len()), ("Auditors", 0));

    assert_eq!(store.list_entities(acme.id).await.unwrap().len(), 1);
    assert!(store.list_entities(other.id).await.unwrap().is_empty());
    assert!(
        !store
            .load_entity_tree(other.id)
            .await
            .unwrap()
            .contains(&entity.id)
    );
    let segment = Entity {
        id: EntityId::generate(),
        organization_id: other.id,
        name: "Segment".to_owned(),
        parent: Some(entity.id),
        created_at: Utc::now(),
        archived_at: None,
    };
    let renamed = store
        .change_entity(
            other.id,
            entity.id,
            &warden_core::entities::EntityChange::Rename("Mine".to_owned()),
            &|_, _| audit(other.id, "entity.updated"),
        )
        .await;
    assert!(matches!(renamed, Err(Error::NotFound("entity"))));
    let created = store
        .create_entity(&segment, &audit(other.id, "entity.created"))
        .await;
    assert!(
        matches!(created, Err(Error::NotFound("parent_entity_id"))),
        "{created:?}"
    );
}

pub async fn api_keys_of_another_organization_are_invisible(store: &TestStore) {
    let (acme, other) = (store.organization().await, store.organization().await);
    let key = ApiKey {
        id: ApiKeyId::generate(),
        organization_id: acme.id,
        name: "billing".to_owned(),
        prefix: format!("wk_{}", Uuid::new_v4().simple()),
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    store
        .create_api_key(&key, "secret hash", &audit(acme.id, "api_key.created"))
        .await
        .unwrap();

    assert_eq!(
        store.list_api_keys(acme.id, None, 500).await.unwrap().len(),
        1
    );
    assert!(
        store
            .list_api_keys(other.id, None, 500)
            .await
            .unwrap()
            .is_empty()
    );
    let revoked = store
        .revoke_api_key(
            other.id,
            key.id,
            Utc::now(),
            &audit(other.id, "api_key.revoked"),
        )
        .await;
    assert!(
        matches!(revoked, Err(Error::NotFound("api key"))),
        "{revoked:?}"
    );
    let (found, _) = store.find_api_key(&key.prefix).await.unwrap().unwrap();
    assert_eq!((found.organization_id, found.revoked_at), (acme.id, None));
}

pub async fn audit_events_of_another_organization_are_invisible(store: &TestStore) {
    let (acme, other) = (store.organization().await, store.organization().await);
    let event = audit(acme.id, "something.happened");
    store.record_audit(&event).await.unwrap();

    let mine = store
        .list_audit_events(acme.id, &all_events())
        .await
        .unwrap();
    assert!(mine.iter().any(|seen| seen.id == event.id));
    let theirs = store
        .list_audit_events(other.id, &all_events())
        .await
        .unwrap();
    assert!(!theirs.is_empty(), "`other` has its own creation event");
    assert!(theirs.iter().all(|seen| seen.organization_id == other.id));
    let by_target = warden_core::model::AuditFilter {
        action: Some("something.happened".to_owned()),
        ..all_events()
    };
    assert!(
        store
            .list_audit_events(other.id, &by_target)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn factors_and_recovery_codes_of_another_organization_are_invisible(store: &TestStore) {
    let (acme, other) = (store.organization().await, store.organization().await);
    let factor = store.totp_factor(&acme).await;
    store
        .confirm_factor(factor, &audit(acme.id, "factor.confirmed"))
        .await
        .unwrap();
    let code = store.recovery_code(&acme).await;

    assert!(
        store
            .find_factor(acme.id, acme.owner, factor)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .find_factor(other.id, acme.owner, factor)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .list_factors(other.id, acme.owner)
            .await
            .unwrap()
            .is_empty()
    );
    let confirmed = [acme.owner];
    assert_eq!(
        store
            .users_with_confirmed_factor(acme.id, &confirmed)
            .await
            .unwrap(),
        confirmed
    );
    assert!(
        store
            .users_with_confirmed_factor(other.id, &confirmed)
            .await
            .unwrap()
            .is_empty()
    );
    let removed = store
        .remove_factor(
            other.id,
            acme.owner,
            factor,
            &audit(other.id, "factor.removed"),
        )
        .await;
    assert!(
        matches!(removed, Err(Error::NotFound("factor"))),
        "{removed:?}"
    );
    assert_eq!(
        store.list_factors(acme.id, acme.owner).await.unwrap().len(),
        1
    );

    assert!(
        !store
            .has_recovery_code(other.id, acme.owner, Utc::now())
            .await
            .unwrap()
    );
    let used = store
        .use_recovery_code(other.id, acme.owner, &code, Utc::now())
        .await
        .unwrap();
    assert!(!used);
    assert!(
        store
            .has_recovery_code(acme.id, acme.owner, Utc::now())
            .await
            .unwrap()
    );
}
