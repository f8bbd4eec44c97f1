//! A write that fails part way leaves nothing behind: each write is one transaction, and an early
//! return drops it uncommitted.
use chrono::Utc;
use warden_core::{
    Error,
    catalogue::{ADMIN_ROLE, OWNER_ROLE, READ_ONLY_ROLE},
    ids::{GroupId, PermissionKey},
    model::{AuditEvent, DirectGrant, Group, Scope, UserChange, UserFilter},
    ports::{
        AuditStore, GroupStore, InvitationStore, NotificationStore, OrganizationStore, UserSearch,
        UserStore,
    },
};

use crate::{Invite, TestStore, all_events, audit, everyone, on_all};

/// Nothing of `invite` reached the database: no user, invitation, notification or audit row.
async fn assert_nothing_written(store: &TestStore, invite: &Invite) {
    let organization = invite.user.organization_id;
    assert!(
        store
            .find_user(organization, invite.user.id)
            .await
            .unwrap()
            .is_none()
    );
    let by_email = UserFilter {
        query: Some(invite.user.email.as_str().to_owned()),
        ..everyone(Utc::now())
    };
    assert!(
        store
            .list_users(organization, &by_email)
            .await
            .unwrap()
            .is_empty()
    );
    let invitation = store
        .find_invitation(&invite.invitation.token_hash)
        .await
        .unwrap();
    assert!(invitation.is_none_or(|(found, _, _)| found.id != invite.invitation.id));
    let outbox = store.pending_notifications(10_000).await.unwrap();
    assert!(outbox.iter().all(|sent| sent.id != invite.notification.id));
    let events = store
        .list_audit_events(organization, &all_events())
        .await
        .unwrap();
    assert!(events.iter().all(|event| event.id != invite.audit.id));
}

/// An audit row whose id is taken already: its insert, the last step of a write, fails.
async fn failing_audit(
    store: &TestStore,
    organization: warden_core::ids::OrganizationId,
) -> AuditEvent {
    let first = audit(organization, "first.use");
    store.record_audit(&first).await.unwrap();
    AuditEvent {
        action: "second.use".to_owned(),
        ..first
    }
}

pub async fn invite_with_a_taken_email_leaves_no_invitation_notification_or_audit_row(
    store: &TestStore,
) {
    let acme = store.organization().await;
    let first = store.invitation(acme.id, vec![on_all(READ_ONLY_ROLE)]);
    store.invite(&first).await.unwrap();
    let mut again = store.invitation(acme.id, vec![on_all(ADMIN_ROLE)]);
    again.user.email = first.user.email.clone();

    let invited = store.invite(&again).await;
    assert!(matches!(invited, Err(Error::EmailInUse)), "{invited:?}");
    assert!(
        store
            .find_user(acme.id, again.user.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_invitation(&again.invitation.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    let outbox = store.pending_notifications(10_000).await.unwrap();
    assert!(outbox.iter().any(|sent| sent.id == first.notification.id));
    assert!(outbox.iter().all(|sent| sent.id != again.notification.id));
    let events = store
        .list_audit_events(acme.id, &all_events())
        .await
        .unwrap();
    assert!(events.iter().all(|event| event.id != again.audit.id));
}

pub async fn invite_failing_after_the_user_row_leaves_no_user(store: &TestStore) {
    let acme = store.organization().await;
    let first = store.invitation(acme.id, vec![on_all(READ_ONLY_ROLE)]);
    store.invite(&first).await.unwrap();
    // The user row and its grants are written, then the invitation's token hash is refused.
    let mut second = store.invitation(acme.id, vec![on_all(ADMIN_ROLE)]);
    second.invitation.token_hash = first.invitation.token_hash.clone();

    let invited = store.invite(&second).await;
    assert!(matches!(invited, Err(Error::Internal(_))), "{invited:?}");
    assert_nothing_written(store, &second).await;
    // The email is free again: the refused user row is gone, not merely hidden.
    second.invitation.token_hash = format!("{} again", second.invitation.token_hash);
    let user = store.invite(&second).await.unwrap();
    assert_eq!(user.grants, vec![on_all(ADMIN_ROLE)]);
}

pub async fn user_change_whose_audit_row_fails_changes_neither_names_nor_grants(store: &TestStore) {
    let acme = store.organization().await;
    let admin = store.active_admin(acme.id).await;
    let change = UserChange {
        first_name: Some("Renamed".to_owned()),
        last_name: None,
        grants: Some(vec![on_all(READ_ONLY_ROLE)]),
        direct_grants: Some(vec![DirectGrant {
            permission: PermissionKey::new("users.read"),
            scope: Scope::All,
        }]),
    };

    let failing = failing_audit(store, acme.id).await;
    let changed = store.update_user(acme.id, admin, &change, &failing).await;
    assert!(matches!(changed, Err(Error::Internal(_))), "{changed:?}");
    let user = store.find_user(acme.id, admin).await.unwrap().unwrap();
    assert_eq!(user.first_name, "Ivy");
    assert_eq!(user.grants, vec![on_all(ADMIN_ROLE)]);
    assert!(user.direct_grants.is_empty());
    // The same change with a fresh audit row goes through, so the failure above was the audit row.
    let changed = store
        .update_user(acme.id, admin, &change, &audit(acme.id, "user.updated"))
        .await
        .unwrap();
    assert_eq!(
        (changed.first_name.as_str(), changed.direct_grants.len()),
        ("Renamed", 1)
    );
}

pub async fn group_whose_audit_row_fails_is_not_created(store: &TestStore) {
    let acme = store.organization().await;
    let group = Group {
        id: GroupId::generate(),
        organization_id: acme.id,
        name: "Finance".to_owned(),
        grants: vec![on_all(READ_ONLY_ROLE)],
        members: vec![],
        created_at: Utc::now(),
    };

    let failing = failing_audit(store, acme.id).await;
    let created = store.create_group(&group, &failing).await;
    assert!(matches!(created, Err(Error::Internal(_))), "{created:?}");
    assert!(store.find_group(acme.id, group.id).await.unwrap().is_none());
    assert!(
        store
            .list_groups(acme.id, None, 500)
            .await
            .unwrap()
            .is_empty()
    );
    // Neither the name nor the id is held by a leftover row.
    let created = store
        .create_group(&group, &audit(acme.id, "group.created"))
        .await
        .unwrap();
    assert_eq!(created.grants, vec![on_all(READ_ONLY_ROLE)]);
}

pub async fn transfer_whose_audit_row_fails_keeps_the_owner(store: &TestStore) {
    let acme = store.organization().await;
    let admin = store.active_admin(acme.id).await;

    let failing = failing_audit(store, acme.id).await;
    let transferred = store
        .transfer_ownership(acme.id, None, admin, &failing)
        .await;
    assert!(
        matches!(transferred, Err(Error::Internal(_))),
        "{transferred:?}"
    );
    let owners = store.owners(acme.id).await;
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].id, acme.owner);
    assert_eq!(owners[0].grants, vec![on_all(OWNER_ROLE)]);
    let admin = store.find_user(acme.id, admin).await.unwrap().unwrap();
    assert_eq!(
        (admin.owner, admin.grants.clone()),
        (false, vec![on_all(ADMIN_ROLE)])
    );
}
