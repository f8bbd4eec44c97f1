//! Invitations: sent through the outbox, accepted once, refused with the field named, superseded by
//! a resend, expired by the organisation's TTL.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{ANONYMOUS, PASSWORD, TestServer, accept, grant};

#[tokio::test]
async fn an_invited_user_accepts_signs_in_and_is_scoped_to_their_entity() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let (gmbh, ltd) = (
        server.create_entity(&org, "Acme GmbH", "").await,
        server.create_entity(&org, "Acme Ltd", "").await,
    );
    let retail = server.create_entity(&org, "Retail", &gmbh).await;

    let analyst_on_gmbh = vec![grant("analyst", &[&gmbh])];
    let user = server
        .invite(&org, &org.owner_token, "alan@example.com", analyst_on_gmbh)
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
    let stored = format!("invitations WHERE token_hash = '{}'", invitation.token);
    assert_eq!(server.db.count(&stored).await, 0, "stored hashed");

    let error = server.sign_in_error("alan@example.com", PASSWORD).await;
    assert_eq!(
        error.code(),
        Code::Unauthenticated,
        "a pending user cannot sign in"
    );
    let accepted = server
        .users(ANONYMOUS)
        .accept_invitation(accept(&invitation.token, PASSWORD))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.user.unwrap().status(), v1::UserStatus::Active);
    let session = server.sign_in("alan@example.com", PASSWORD).await;
    assert!(!session.access_token.is_empty());

    let decide = async |permission: &str, entity: &str| {
        server.decide(&org, &user.id, permission, entity).await
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

    let read = server.get_user(&org, &user.id).await;
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
    let invite = |email: &str, grants| org.invite_user(email, grants);
    let raw = |all_entities, entity_ids: Vec<String>| v1::Grant {
        role_id: "analyst".into(),
        entity_ids,
        all_entities,
    };
    let a = "a@example.com";
    let (invalid, not_found) = (Code::InvalidArgument, Code::NotFound);
    let cases = [
        (
            invite("nope", vec![grant("analyst", &[])]),
            invalid,
            "email: must be an email address",
        ),
        (
            invite(a, vec![]),
            invalid,
            "grants: at least one grant or direct permission is required",
        ),
        (
            invite(a, vec![grant("wizard", &[])]),
            invalid,
            "grants[0].role_id: unknown role",
        ),
        (
            invite(a, vec![grant("owner", &[])]),
            invalid,
            "grants[0].role_id: owner comes only with ownership",
        ),
        (
            invite(a, vec![raw(true, vec![gmbh.clone()])]),
            invalid,
            "grants[0].entity_ids: must be empty when all_entities is set",
        ),
        (
            invite(a, vec![raw(false, vec![])]),
            invalid,
            "grants[0]: needs entity_ids or all_entities",
        ),
        (
            invite(a, vec![grant("analyst", &["x"])]),
            invalid,
            "grants[0].entity_ids[0]: must be a UUID",
        ),
        (
            invite(a, vec![grant("analyst", &[&foreign])]),
            not_found,
            "entity not found",
        ),
        (
            invite(a, vec![grant("admin", &[&retail])]),
            invalid,
            "grants[0].entity_ids: admin is granted on legal entities only",
        ),
        (
            invite(a, vec![grant("analyst", &[]), grant("analyst", &[&gmbh])]),
            invalid,
            "grants[1].role_id: listed twice",
        ),
        (
            invite(&other.owner_email, vec![grant("analyst", &[])]),
            Code::AlreadyExists,
            "email already in use",
        ),
    ];
    let mut users = server.users(&org.owner_token);
    for (request, code, message) in cases {
        let error = users.invite_user(request).await.unwrap_err();
        assert_eq!((error.code(), error.message()), (code, message));
    }
    assert_eq!(server.db.count("users").await, 2, "only the two owners");
    assert_eq!(server.db.count("notifications").await, 0);
    let error = server
        .users(&other.owner_token)
        .invite_user(invite("b@example.com", vec![grant("analyst", &[])]))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "organization not found")
    );
}

#[tokio::test]
async fn resend_supersedes_earlier_tokens_and_tokens_are_single_use() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let reader = vec![grant("read_only", &[])];
    let user = server
        .invite(&org, &org.owner_token, "alan@example.com", reader)
        .await;
    let first = server.invitation_token("alan@example.com").await;
    let mut owner = server.users(&org.owner_token);
    owner
        .resend_invitation(org.resend_invitation(&user.id))
        .await
        .unwrap();
    let second = server.invitation_token("alan@example.com").await;
    assert_ne!(first, second);

    let mut anonymous = server.users(ANONYMOUS);
    let mut refusal = async |token: &str, password: &str| {
        let error = anonymous
            .accept_invitation(accept(token, password))
            .await
            .unwrap_err();
        (error.code(), error.message().to_owned())
    };
    assert_eq!(
        refusal(&first, PASSWORD).await,
        (
            Code::FailedPrecondition,
            "invitation: superseded by a newer invitation".into()
        )
    );
    assert_eq!(
        refusal(&second, "short").await,
        (
            Code::InvalidArgument,
            "password: must be at least 15 characters".into()
        )
    );
    assert_eq!(
        refusal("made-up-token", PASSWORD).await,
        (Code::NotFound, "invitation not found".into())
    );
    server
        .users(ANONYMOUS)
        .accept_invitation(accept(&second, PASSWORD))
        .await
        .unwrap();
    assert_eq!(
        refusal(&second, PASSWORD).await,
        (
            Code::FailedPrecondition,
            "invitation: already accepted".into()
        )
    );
    let error = owner
        .resend_invitation(org.resend_invitation(&user.id))
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
    let reader = vec![grant("read_only", &[])];
    server
        .invite(&org, &org.owner_token, "race@example.com", reader)
        .await;
    let token = server.invitation_token("race@example.com").await;
    let attempts = (0..8).map(|_| {
        let mut users = server.users(ANONYMOUS);
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
    let ttl = |seconds| v1::UpdateOrganizationSettingsRequest {
        invitation_ttl_seconds: Some(seconds),
        ..Default::default()
    };
    let settings = server.update_settings(&org, ttl(1)).await;
    assert_eq!(settings.invitation_ttl_seconds, 1);
    let reader = vec![grant("read_only", &[])];
    let user = server
        .invite(&org, &org.owner_token, "late@example.com", reader)
        .await;
    let token = server.invitation_token("late@example.com").await;
    server.advance(std::time::Duration::from_millis(1200));

    let read = server.get_user(&org, &user.id).await;
    assert_eq!(read.status(), v1::UserStatus::Expired);
    let error = server
        .users(ANONYMOUS)
        .accept_invitation(accept(&token, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "invitation: expired")
    );
    let mut owner = server.users(&org.owner_token);
    let expired_tab = v1::ListUsersRequest {
        status: v1::UserStatus::Expired as i32,
        ..org.list_users()
    };
    let listed = owner.list_users(expired_tab).await.unwrap().into_inner();
    assert_eq!(
        listed
            .users
            .iter()
            .map(|u| u.id.as_str())
            .collect::<Vec<_>>(),
        [user.id.as_str()]
    );

    server.update_settings(&org, ttl(3600)).await;
    let resent = owner
        .resend_invitation(org.resend_invitation(&user.id))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(resent.status(), v1::UserStatus::Pending);
    let token = server.invitation_token("late@example.com").await;
    server
        .users(ANONYMOUS)
        .accept_invitation(accept(&token, PASSWORD))
        .await
        .unwrap();

    let bad = v1::UpdateOrganizationSettingsRequest {
        organization_id: org.id.clone(),
        ..ttl(0)
    };
    let error = server
        .organizations(&org.owner_token)
        .update_organization_settings(bad)
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
