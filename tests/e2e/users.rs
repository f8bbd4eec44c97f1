//! UserService: invitations, the lifecycle, the acting rules, search and tenancy.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, PASSWORD, TestServer, grant, with_token};

fn invite_request(org_id: &str, email: &str, grants: Vec<v1::Grant>) -> v1::InviteUserRequest {
    v1::InviteUserRequest {
        organization_id: org_id.into(),
        email: email.into(),
        first_name: "Alan".into(),
        last_name: "Turing".into(),
        grants,
        direct_permissions: vec![],
    }
}

fn accept(token: &str, password: &str) -> v1::AcceptInvitationRequest {
    v1::AcceptInvitationRequest {
        token: token.into(),
        password: password.into(),
    }
}

#[tokio::test]
async fn an_invited_user_accepts_signs_in_and_is_scoped_to_their_entity() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let (gmbh, ltd) = (
        server.create_entity(&org, "Acme GmbH", "").await,
        server.create_entity(&org, "Acme Ltd", "").await,
    );
    let retail = server.create_entity(&org, "Retail", &gmbh).await;

    let user = server
        .invite(
            &org,
            &org.owner_token,
            "alan@example.com",
            vec![grant("analyst", &[&gmbh])],
        )
        .await;
    assert_eq!(user.status(), v1::UserStatus::Pending);
    assert!(user.invitation_expire_time.is_some());
    let invitation = server
        .pending_notifications()
        .await
        .into_iter()
        .find(|n| n.recipient == "alan@example.com")
        .unwrap();
    assert_eq!(
        (invitation.kind(), invitation.organization_id.as_str()),
        (v1::NotificationKind::Invitation, org.id.as_str())
    );
    assert!(invitation.token.len() >= 43, "at least 256 bits, base64url");
    assert_eq!(
        server
            .db
            .count(&format!(
                "invitations WHERE token_hash = '{}'",
                invitation.token
            ))
            .await,
        0,
        "stored hashed"
    );

    let error = server.sign_in_error("alan@example.com", PASSWORD).await;
    assert_eq!(
        error.code(),
        Code::Unauthenticated,
        "a pending user cannot sign in"
    );
    let accepted = server
        .users()
        .accept_invitation(accept(&invitation.token, PASSWORD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.user.unwrap().status(), v1::UserStatus::Active);
    assert!(
        !server
            .sign_in("alan@example.com", PASSWORD)
            .await
            .access_token
            .is_empty()
    );

    let mut checks = server.authorization();
    let mut decide = async |permission: &str, entity: &str| {
        let request = with_token(&org.api_key, org.check(&user.id, permission, entity));
        checks.check_permission(request).await.unwrap().into_inner()
    };
    assert!(decide("payments.read", &gmbh).await.allowed);
    assert!(
        decide("payments.read", &retail).await.allowed,
        "a legal entity covers its segments"
    );
    let outside = decide("payments.read", &ltd).await;
    assert_eq!(
        (outside.allowed, outside.reason.as_str()),
        (false, "payments.read is held, but not on this entity")
    );
    let not_granted = decide("payments.refund", &gmbh).await;
    assert_eq!(
        (not_granted.allowed, not_granted.reason.as_str()),
        (false, "no grant includes payments.refund")
    );
    assert!(
        !decide("payments.read", "").await.allowed,
        "organisation-wide needs full access"
    );

    let get = v1::GetUserRequest {
        organization_id: org.id.clone(),
        user_id: user.id.clone(),
    };
    let read = server
        .users()
        .get_user(with_token(&org.owner_token, get))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert!(read.last_login_time.is_some(), "last login is recorded");
    assert_eq!(read.grants, vec![grant("analyst", &[&gmbh])]);
}

#[tokio::test]
async fn invitations_are_refused_with_the_field_named_and_write_nothing() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Globex").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let retail = server.create_entity(&org, "Retail", &gmbh).await;
    let foreign = server.create_entity(&other, "Globex Ltd", "").await;
    let mut users = server.users();
    let cases = [
        (
            invite_request(&org.id, "nope", vec![grant("analyst", &[])]),
            Code::InvalidArgument,
            "email: must be an email address",
        ),
        (
            invite_request(&org.id, "a@example.com", vec![]),
            Code::InvalidArgument,
            "grants: at least one grant or direct permission is required",
        ),
        (
            invite_request(&org.id, "a@example.com", vec![grant("wizard", &[])]),
            Code::InvalidArgument,
            "grants[0].role_id: unknown role",
        ),
        (
            invite_request(&org.id, "a@example.com", vec![grant("owner", &[])]),
            Code::InvalidArgument,
            "grants[0].role_id: owner comes only with ownership",
        ),
        (
            invite_request(
                &org.id,
                "a@example.com",
                vec![v1::Grant {
                    role_id: "analyst".into(),
                    entity_ids: vec![gmbh.clone()],
                    all_entities: true,
                }],
            ),
            Code::InvalidArgument,
            "grants[0].entity_ids: must be empty when all_entities is set",
        ),
        (
            invite_request(
                &org.id,
                "a@example.com",
                vec![v1::Grant {
                    role_id: "analyst".into(),
                    entity_ids: vec![],
                    all_entities: false,
                }],
            ),
            Code::InvalidArgument,
            "grants[0]: needs entity_ids or all_entities",
        ),
        (
            invite_request(&org.id, "a@example.com", vec![grant("analyst", &["x"])]),
            Code::InvalidArgument,
            "grants[0].entity_ids[0]: must be a UUID",
        ),
        (
            invite_request(
                &org.id,
                "a@example.com",
                vec![grant("analyst", &[&foreign])],
            ),
            Code::NotFound,
            "entity not found",
        ),
        (
            invite_request(&org.id, "a@example.com", vec![grant("admin", &[&retail])]),
            Code::InvalidArgument,
            "grants[0].entity_ids: admin is granted on legal entities only",
        ),
        (
            invite_request(
                &org.id,
                "a@example.com",
                vec![grant("analyst", &[]), grant("analyst", &[&gmbh])],
            ),
            Code::InvalidArgument,
            "grants[1].role_id: listed twice",
        ),
        (
            invite_request(&org.id, &other.owner_email, vec![grant("analyst", &[])]),
            Code::AlreadyExists,
            "email already in use",
        ),
    ];
    for (request, code, message) in cases {
        let error = users
            .invite_user(with_token(&org.owner_token, request))
            .await
            .unwrap_err();
        assert_eq!((error.code(), error.message()), (code, message));
    }
    assert_eq!(server.db.count("users").await, 2, "only the two owners");
    assert_eq!(server.db.count("notifications").await, 0);
    let error = users
        .invite_user(with_token(
            &other.owner_token,
            invite_request(&org.id, "b@example.com", vec![grant("analyst", &[])]),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "organization not found")
    );
}

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let iam = server
        .member(&org, "iam@example.com", vec![grant("iam_admin", &[])])
        .await;
    let local_admin = server
        .member(&org, "local@example.com", vec![grant("admin", &[&gmbh])])
        .await;
    let reader = server
        .member(&org, "reader@example.com", vec![grant("read_only", &[])])
        .await;
    let mut users = server.users();

    // IAM admins manage users but do not hold payments.read, so they cannot hand out analyst.
    let error = users
        .invite_user(with_token(
            &iam.token,
            invite_request(&org.id, "x@example.com", vec![grant("analyst", &[])]),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "cannot grant disputes.read on all entities: you do not hold it"
        )
    );
    // An admin of one legal entity grants there, not elsewhere and not everywhere.
    server
        .invite(
            &org,
            &local_admin.token,
            "ok@example.com",
            vec![grant("analyst", &[&gmbh])],
        )
        .await;
    let error = users
        .invite_user(with_token(
            &local_admin.token,
            invite_request(&org.id, "y@example.com", vec![grant("analyst", &[&ltd])]),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let error = users
        .invite_user(with_token(
            &local_admin.token,
            invite_request(&org.id, "z@example.com", vec![grant("analyst", &[])]),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    // Without users.write nothing can be granted at all.
    let error = users
        .invite_user(with_token(
            &reader.token,
            invite_request(&org.id, "w@example.com", vec![grant("read_only", &[])]),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    // Nobody acts on someone who holds more: the local admin cannot suspend the reader (full access).
    let suspend = v1::SuspendUserRequest {
        organization_id: org.id.clone(),
        user_id: reader.id.clone(),
    };
    let error = users
        .suspend_user(with_token(&local_admin.token, suspend))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    // Only the owner acts on the owner.
    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[])])
        .await;
    let suspend = v1::SuspendUserRequest {
        organization_id: org.id.clone(),
        user_id: org.owner_id.clone(),
    };
    let error = users
        .suspend_user(with_token(&admin.token, suspend))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "only the owner can change the owner"
        )
    );
    // Escalation by edit: the local admin cannot widen the analyst they invited to full access.
    let list = v1::ListUsersRequest {
        organization_id: org.id.clone(),
        query: "ok@".into(),
        ..Default::default()
    };
    let invited = users
        .list_users(with_token(&org.owner_token, list))
        .await
        .unwrap()
        .into_inner()
        .users
        .remove(0);
    let widen = v1::UpdateUserRequest {
        organization_id: org.id.clone(),
        user_id: invited.id,
        grants: vec![grant("analyst", &[])],
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["grants".into()],
        }),
        ..Default::default()
    };
    let error = users
        .update_user(with_token(&local_admin.token, widen))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn resend_supersedes_earlier_tokens_and_tokens_are_single_use() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let user = server
        .invite(
            &org,
            &org.owner_token,
            "alan@example.com",
            vec![grant("read_only", &[])],
        )
        .await;
    let first = server.invitation_token("alan@example.com").await;
    let mut users = server.users();
    let resend = v1::ResendInvitationRequest {
        organization_id: org.id.clone(),
        user_id: user.id.clone(),
    };
    users
        .resend_invitation(with_token(&org.owner_token, resend.clone()))
        .await
        .unwrap();
    let second = server.invitation_token("alan@example.com").await;
    assert_ne!(first, second);

    let error = users
        .accept_invitation(accept(&first, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "invitation: superseded by a newer invitation"
        )
    );
    let error = users
        .accept_invitation(accept(&second, "short"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "password: must be at least 15 characters"
        )
    );
    let error = users
        .accept_invitation(accept("made-up-token", PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "invitation not found")
    );
    users
        .accept_invitation(accept(&second, PASSWORD))
        .await
        .unwrap();
    let error = users
        .accept_invitation(accept(&second, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "invitation: already accepted")
    );
    let error = users
        .resend_invitation(with_token(&org.owner_token, resend))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "user: only pending or expired invitations can be resent"
        )
    );
}

#[tokio::test]
async fn concurrent_accepts_of_one_token_activate_once() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    server
        .invite(
            &org,
            &org.owner_token,
            "race@example.com",
            vec![grant("read_only", &[])],
        )
        .await;
    let token = server.invitation_token("race@example.com").await;
    let attempts = (0..8).map(|_| {
        let mut users = server.users();
        let token = token.clone();
        tokio::spawn(async move { users.accept_invitation(accept(&token, PASSWORD)).await })
    });
    let mut accepted = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(error) => assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}"),
        }
    }
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn a_lapsed_invitation_shows_expired_is_refused_and_a_resend_revives_it() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let settings = v1::UpdateOrganizationSettingsRequest {
        organization_id: org.id.clone(),
        invitation_ttl_seconds: Some(1),
        ..Default::default()
    };
    let reply = server
        .organizations()
        .update_organization_settings(with_token(&org.owner_token, settings))
        .await
        .unwrap();
    assert_eq!(
        reply
            .into_inner()
            .organization
            .unwrap()
            .settings
            .unwrap()
            .invitation_ttl_seconds,
        1
    );
    let user = server
        .invite(
            &org,
            &org.owner_token,
            "late@example.com",
            vec![grant("read_only", &[])],
        )
        .await;
    let token = server.invitation_token("late@example.com").await;
    server.advance(std::time::Duration::from_millis(1200));

    let mut users = server.users();
    let get = v1::GetUserRequest {
        organization_id: org.id.clone(),
        user_id: user.id.clone(),
    };
    let read = users
        .get_user(with_token(&org.owner_token, get.clone()))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(read.status(), v1::UserStatus::Expired);
    let error = users
        .accept_invitation(accept(&token, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "invitation: expired")
    );
    let expired_tab = v1::ListUsersRequest {
        organization_id: org.id.clone(),
        status: v1::UserStatus::Expired as i32,
        ..Default::default()
    };
    let listed = users
        .list_users(with_token(&org.owner_token, expired_tab))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        listed.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        [user.id.as_str()]
    );

    let settings = v1::UpdateOrganizationSettingsRequest {
        organization_id: org.id.clone(),
        invitation_ttl_seconds: Some(3600),
        ..Default::default()
    };
    server
        .organizations()
        .update_organization_settings(with_token(&org.owner_token, settings))
        .await
        .unwrap();
    let resend = v1::ResendInvitationRequest {
        organization_id: org.id.clone(),
        user_id: user.id.clone(),
    };
    let resent = users
        .resend_invitation(with_token(&org.owner_token, resend))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(resent.status(), v1::UserStatus::Pending);
    let token = server.invitation_token("late@example.com").await;
    users
        .accept_invitation(accept(&token, PASSWORD))
        .await
        .unwrap();

    let bad = v1::UpdateOrganizationSettingsRequest {
        organization_id: org.id.clone(),
        invitation_ttl_seconds: Some(0),
        ..Default::default()
    };
    let error = server
        .organizations()
        .update_organization_settings(with_token(&org.owner_token, bad))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "invitation_ttl_seconds: must be 1 to 7776000"
        )
    );
}

#[tokio::test]
async fn suspension_ends_sessions_and_checks_at_once_and_restore_brings_back_the_same_grants() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("analyst", &[])])
        .await;
    let mut users = server.users();
    let mut checks = server.authorization();
    let check = || with_token(&org.api_key, org.check(&alan.id, "payments.read", ""));
    assert!(
        checks
            .check_permission(check())
            .await
            .unwrap()
            .into_inner()
            .allowed
    );

    let suspend = v1::SuspendUserRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
    };
    let suspended = users
        .suspend_user(with_token(&org.owner_token, suspend.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(suspended.user.unwrap().status(), v1::UserStatus::Suspended);
    let decision = checks.check_permission(check()).await.unwrap().into_inner();
    assert_eq!(
        (decision.allowed, decision.reason.as_str()),
        (false, "user is not active")
    );
    let get = v1::GetOrganizationRequest {
        organization_id: org.id.clone(),
    };
    let error = server
        .organizations()
        .get_organization(with_token(&alan.token, get.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "session ended; sign in again")
    );
    assert_eq!(
        server
            .sign_in_error("alan@example.com", PASSWORD)
            .await
            .code(),
        Code::Unauthenticated
    );
    let error = users
        .suspend_user(with_token(&org.owner_token, suspend))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "user: is suspended")
    );

    let restore = v1::RestoreUserRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
    };
    let restored = users
        .restore_user(with_token(&org.owner_token, restore))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (restored.status(), restored.grants),
        (v1::UserStatus::Active, vec![grant("analyst", &[])])
    );
    assert!(
        checks
            .check_permission(check())
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    let error = server
        .organizations()
        .get_organization(with_token(&alan.token, get.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::Unauthenticated,
        "old sessions stay dead after a restore"
    );
    let fresh = server
        .sign_in("alan@example.com", PASSWORD)
        .await
        .access_token;
    assert!(
        server
            .organizations()
            .get_organization(with_token(&fresh, get))
            .await
            .is_ok()
    );

    let myself = v1::SuspendUserRequest {
        organization_id: org.id.clone(),
        user_id: org.owner_id.clone(),
    };
    let error = users
        .suspend_user(with_token(&org.owner_token, myself))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "you cannot suspend yourself")
    );
}

#[tokio::test]
async fn deleted_users_are_archived_for_good() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let mut users = server.users();
    let delete = v1::DeleteUserRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
    };
    let deleted = users
        .delete_user(with_token(&org.owner_token, delete.clone()))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(deleted.status(), v1::UserStatus::Archived);
    assert_eq!(
        server
            .sign_in_error("alan@example.com", PASSWORD)
            .await
            .code(),
        Code::Unauthenticated
    );
    let restore = v1::RestoreUserRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
    };
    let error = users
        .restore_user(with_token(&org.owner_token, restore))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "user: is archived")
    );
    let error = users
        .delete_user(with_token(&org.owner_token, delete))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    let rename = v1::UpdateUserRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
        first_name: "New".into(),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["first_name".into()],
        }),
        ..Default::default()
    };
    assert_eq!(
        users
            .update_user(with_token(&org.owner_token, rename))
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );

    let default_tab = v1::ListUsersRequest {
        organization_id: org.id.clone(),
        ..Default::default()
    };
    let listed = users
        .list_users(with_token(&org.owner_token, default_tab))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert!(
        listed.iter().all(|u| u.id != alan.id),
        "archived users leave the default list"
    );
    let archived_tab = v1::ListUsersRequest {
        organization_id: org.id.clone(),
        status: v1::UserStatus::Archived as i32,
        ..Default::default()
    };
    let listed = users
        .list_users(with_token(&org.owner_token, archived_tab))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        listed.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        [alan.id.as_str()]
    );
    let invite = invite_request(&org.id, "alan@example.com", vec![grant("read_only", &[])]);
    let error = users
        .invite_user(with_token(&org.owner_token, invite))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists, "deletion frees nothing");
}

#[tokio::test]
async fn editing_a_user_changes_names_and_grants_and_their_next_check() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[&gmbh])])
        .await;
    let mut checks = server.authorization();
    let refund = || with_token(&org.api_key, org.check(&alan.id, "payments.refund", &gmbh));
    assert!(
        !checks
            .check_permission(refund())
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    let update = v1::UpdateUserRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
        first_name: "Alan M.".into(),
        last_name: "Turing".into(),
        grants: vec![grant("read_only", &[&gmbh])],
        direct_permissions: vec![v1::DirectPermission {
            permission: "payments.refund".into(),
            entity_ids: vec![gmbh.clone()],
            all_entities: false,
        }],
        update_mask: None,
    };
    let updated = server
        .users()
        .update_user(with_token(&org.owner_token, update))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (
            updated.first_name.as_str(),
            updated.direct_permissions.len()
        ),
        ("Alan M.", 1)
    );
    let decision = checks
        .check_permission(refund())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (decision.allowed, decision.reason.as_str()),
        (true, "allowed by a direct permission on this entity")
    );

    let bad_mask = v1::UpdateUserRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["email".into()],
        }),
        ..Default::default()
    };
    let error = server
        .users()
        .update_user(with_token(&org.owner_token, bad_mask))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "update_mask: unknown field \"email\""
        )
    );
    let owner = v1::UpdateUserRequest {
        organization_id: org.id.clone(),
        user_id: org.owner_id.clone(),
        grants: vec![grant("admin", &[])],
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["grants".into()],
        }),
        ..Default::default()
    };
    let error = server
        .users()
        .update_user(with_token(&org.owner_token, owner))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn users_are_searched_filtered_and_paged_stably() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    for (email, role, entities) in [
        ("mary.jackson@example.com", "analyst", vec![gmbh.as_str()]),
        ("katherine@example.com", "developer", vec![]),
        ("dorothy@nasa.example", "analyst", vec![]),
        ("under_score@example.com", "read_only", vec![gmbh.as_str()]),
    ] {
        server
            .invite(&org, &org.owner_token, email, vec![grant(role, &entities)])
            .await;
    }
    let mut users = server.users();
    let list = async |request: v1::ListUsersRequest| {
        let request = v1::ListUsersRequest {
            organization_id: org.id.clone(),
            ..request
        };
        let reply = users
            .clone()
            .list_users(with_token(&org.owner_token, request))
            .await
            .unwrap();
        reply
            .into_inner()
            .users
            .into_iter()
            .map(|u| u.email)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(v1::ListUsersRequest {
            query: "NASA".into(),
            ..Default::default()
        })
        .await,
        ["dorothy@nasa.example"]
    );
    assert_eq!(
        list(v1::ListUsersRequest {
            query: "jacks".into(),
            ..Default::default()
        })
        .await,
        ["mary.jackson@example.com"]
    );
    assert_eq!(
        list(v1::ListUsersRequest {
            query: "_".into(),
            ..Default::default()
        })
        .await,
        ["under_score@example.com"],
        "_ is literal"
    );
    assert_eq!(
        list(v1::ListUsersRequest {
            query: "%".into(),
            ..Default::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        list(v1::ListUsersRequest {
            role_id: "analyst".into(),
            ..Default::default()
        })
        .await,
        ["dorothy@nasa.example", "mary.jackson@example.com"]
    );
    let on_gmbh = list(v1::ListUsersRequest {
        entity_id: gmbh.clone(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        on_gmbh.len(),
        5,
        "two scoped to the entity, plus the three with full access (owner included): {on_gmbh:?}"
    );
    assert_eq!(
        list(v1::ListUsersRequest {
            status: v1::UserStatus::Active as i32,
            ..Default::default()
        })
        .await,
        [org.owner_email.as_str()]
    );
    assert_eq!(
        list(v1::ListUsersRequest {
            status: v1::UserStatus::Pending as i32,
            ..Default::default()
        })
        .await
        .len(),
        4
    );

    // Pages, newest first; a user invited between pages appears on no later page and nothing repeats.
    let page = |page_token: String| v1::ListUsersRequest {
        organization_id: org.id.clone(),
        page_size: 2,
        page_token,
        ..Default::default()
    };
    let first = users
        .list_users(with_token(&org.owner_token, page(String::new())))
        .await
        .unwrap()
        .into_inner();
    server
        .invite(
            &org,
            &org.owner_token,
            "latecomer@example.com",
            vec![grant("read_only", &[])],
        )
        .await;
    let mut seen: Vec<String> = first.users.iter().map(|u| u.email.clone()).collect();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let next = users
            .list_users(with_token(&org.owner_token, page(token)))
            .await
            .unwrap()
            .into_inner();
        seen.extend(next.users.iter().map(|u| u.email.clone()));
        token = next.next_page_token;
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(!seen.contains(&"latecomer@example.com".to_string()));
    let error = users
        .list_users(with_token(&org.owner_token, page("bm90LWEtdG9rZW4".into())))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "page_token: malformed")
    );
}

#[tokio::test]
async fn another_organizations_users_are_not_found() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let mut users = server.users();
    let get = v1::GetUserRequest {
        organization_id: acme.id.clone(),
        user_id: globex.owner_id.clone(),
    };
    let error = users
        .get_user(with_token(&acme.owner_token, get))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "user not found")
    );
    let suspend = v1::SuspendUserRequest {
        organization_id: acme.id.clone(),
        user_id: globex.owner_id.clone(),
    };
    let error = users
        .suspend_user(with_token(&acme.owner_token, suspend))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "user not found")
    );
    let list = v1::ListUsersRequest {
        organization_id: globex.id.clone(),
        ..Default::default()
    };
    let error = users
        .list_users(with_token(&acme.owner_token, list))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "organization not found")
    );
    let list = v1::ListUsersRequest {
        organization_id: acme.id.clone(),
        ..Default::default()
    };
    let error = users
        .list_users(with_token(OPERATOR_TOKEN, list))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn role_and_entity_filters_see_groups_direct_permissions_and_segments() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let retail = server.create_entity(&org, "Retail", &gmbh).await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let grouped = server
        .member(
            &org,
            "grouped@example.com",
            vec![grant("read_only", &[&ltd])],
        )
        .await;
    let direct = server
        .invite(
            &org,
            &org.owner_token,
            "direct@example.com",
            vec![grant("read_only", &[&ltd])],
        )
        .await;
    let update = v1::UpdateUserRequest {
        organization_id: org.id.clone(),
        user_id: direct.id.clone(),
        direct_permissions: vec![v1::DirectPermission {
            permission: "payments.read".into(),
            entity_ids: vec![gmbh.clone()],
            all_entities: false,
        }],
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["direct_permissions".into()],
        }),
        ..Default::default()
    };
    server
        .users()
        .update_user(with_token(&org.owner_token, update))
        .await
        .unwrap();
    let create = v1::CreateGroupRequest {
        organization_id: org.id.clone(),
        name: "Analysts".into(),
        grants: vec![grant("analyst", &[&gmbh])],
    };
    let group = server
        .groups()
        .create_group(with_token(&org.owner_token, create))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    let add = v1::AddGroupMemberRequest {
        organization_id: org.id.clone(),
        group_id: group.id,
        user_id: grouped.id.clone(),
    };
    server
        .groups()
        .add_group_member(with_token(&org.owner_token, add))
        .await
        .unwrap();

    let list = async |role: &str, entity: &str| {
        let request = v1::ListUsersRequest {
            organization_id: org.id.clone(),
            role_id: role.into(),
            entity_id: entity.into(),
            ..Default::default()
        };
        let users = server
            .users()
            .list_users(with_token(&org.owner_token, request))
            .await
            .unwrap()
            .into_inner()
            .users;
        let mut emails: Vec<String> = users
            .into_iter()
            .map(|u| u.email)
            .filter(|e| !e.starts_with("owner-"))
            .collect();
        emails.sort();
        emails
    };
    assert_eq!(
        list("analyst", "").await,
        ["grouped@example.com"],
        "a role held through a group"
    );
    assert_eq!(
        list("", &retail).await,
        ["direct@example.com", "grouped@example.com"],
        "a segment is reached through its legal entity"
    );
    assert_eq!(
        list("analyst", &ltd).await,
        Vec::<String>::new(),
        "role and entity must meet in one grant"
    );
    assert_eq!(
        list("read_only", &ltd).await,
        ["direct@example.com", "grouped@example.com"]
    );
}

#[tokio::test]
async fn an_admin_of_one_legal_entity_reads_its_people_and_only_theirs() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let local = server
        .member(&org, "local@example.com", vec![grant("admin", &[&gmbh])])
        .await;
    let here = server
        .invite(
            &org,
            &org.owner_token,
            "here@example.com",
            vec![grant("analyst", &[&gmbh])],
        )
        .await;
    let there = server
        .invite(
            &org,
            &org.owner_token,
            "there@example.com",
            vec![grant("analyst", &[&ltd])],
        )
        .await;
    let mut users = server.users();
    let get = |id: &str| v1::GetUserRequest {
        organization_id: org.id.clone(),
        user_id: id.into(),
    };
    assert!(
        users
            .get_user(with_token(&local.token, get(&here.id)))
            .await
            .is_ok()
    );
    let error = users
        .get_user(with_token(&local.token, get(&there.id)))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::PermissionDenied, "requires users.read")
    );
    let on = |entity: &str| v1::ListUsersRequest {
        organization_id: org.id.clone(),
        entity_id: entity.into(),
        ..Default::default()
    };
    let listed = users
        .list_users(with_token(&local.token, on(&gmbh)))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert!(listed.iter().any(|u| u.id == here.id) && listed.iter().all(|u| u.id != there.id));
    assert_eq!(
        users
            .list_users(with_token(&local.token, on(&ltd)))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        users
            .list_users(with_token(&local.token, on("")))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}
