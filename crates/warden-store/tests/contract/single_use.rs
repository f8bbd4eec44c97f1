//! Every single-use step is a conditional update: of two attempts, sequential or concurrent, exactly
//! one succeeds.
use chrono::{Duration, Utc};
use uuid::Uuid;
use warden_core::{
    Error,
    catalogue::READ_ONLY_ROLE,
    ids::{ChallengeId, RoleId, SessionId, UserId},
    model::{
        Challenge, InvitationState, NotificationKind, PasswordReset, RefreshOutcome, Session,
        SsoConfig, SsoIdentity, UserStatus,
    },
    ports::{CredentialStore, FactorStore, InvitationStore, SessionStore, SsoStore, UserStore},
};

use crate::{Org, TestStore, audit, email, exactly_one, notification, on_all};

/// Runs each concurrent check this many times, each on fresh rows, so the two attempts overlap in
/// more than one way.
const ROUNDS: usize = 4;

async fn pending_invitation(store: &TestStore, acme: &Org) -> crate::Invite {
    let invite = store.invitation(acme.id, vec![on_all(READ_ONLY_ROLE)]);
    store.invite(&invite).await.unwrap();
    invite
}

pub async fn an_invitation_is_accepted_once(store: &TestStore) {
    let acme = store.organization().await;
    let invite = pending_invitation(store, &acme).await;
    let accept = async |hash: &'static str| {
        store
            .accept_invitation(
                invite.invitation.id,
                hash,
                &audit(acme.id, "invitation.accepted"),
            )
            .await
    };

    let user = accept("first hash").await.unwrap();
    assert_eq!(user.status, UserStatus::Active);
    let again = accept("second hash").await;
    assert!(
        matches!(again, Err(Error::FailedPrecondition(_))),
        "{again:?}"
    );
    let (_, state, _) = store
        .find_invitation(&invite.invitation.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state, InvitationState::Accepted);
    let (user, hash) = store
        .find_credentials(&invite.user.email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.status, hash.as_deref()),
        (UserStatus::Active, Some("first hash"))
    );
}

pub async fn concurrent_accepts_of_one_invitation_succeed_once(store: &TestStore) {
    let acme = store.organization().await;
    for _ in 0..ROUNDS {
        let invite = pending_invitation(store, &acme).await;
        let accept = async || {
            store
                .accept_invitation(
                    invite.invitation.id,
                    "hash",
                    &audit(acme.id, "invitation.accepted"),
                )
                .await
        };
        let (first, second) = tokio::join!(accept(), accept());
        exactly_one([first, second], Result::is_ok);
    }
}

/// A session of the organisation's owner whose current refresh token hash is returned.
async fn signed_in(store: &TestStore, acme: &Org) -> (SessionId, String) {
    let session = Session {
        id: SessionId::generate(),
        organization_id: acme.id,
        user_id: acme.owner,
        created_at: Utc::now(),
        expires_at: Utc::now() + Duration::hours(1),
        revoked_at: None,
        authenticated_at: Some(Utc::now()),
        last_used_at: None,
        client_address: Some("192.0.2.1".to_owned()),
        user_agent: None,
    };
    let hash = format!("refresh {}", Uuid::new_v4());
    store
        .record_sign_in(&session, &hash, &audit(acme.id, "user.signed_in"))
        .await
        .unwrap();
    (session.id, hash)
}

pub async fn a_refresh_token_rotates_once_and_its_reuse_revokes_the_session(store: &TestStore) {
    let acme = store.organization().await;
    let (session, token) = signed_in(store, &acme).await;

    let rotated = store
        .rotate_refresh_token(&token, "next", Utc::now(), (None, None))
        .await
        .unwrap();
    assert!(
        matches!(&rotated, RefreshOutcome::Rotated(found) if found.id == session),
        "{rotated:?}"
    );
    let reused = store
        .rotate_refresh_token(&token, "other", Utc::now(), (None, None))
        .await
        .unwrap();
    assert_eq!(reused, RefreshOutcome::Reused);
    let session = store.find_session(session).await.unwrap().unwrap();
    assert!(session.revoked_at.is_some());
    let next = store
        .rotate_refresh_token("next", "after", Utc::now(), (None, None))
        .await
        .unwrap();
    assert_eq!(next, RefreshOutcome::Invalid);
}

pub async fn concurrent_rotations_of_one_refresh_token_rotate_once(store: &TestStore) {
    let acme = store.organization().await;
    for round in 0..ROUNDS {
        let (_, token) = signed_in(store, &acme).await;
        let (next, other) = (format!("first {round}"), format!("second {round}"));
        let (first, second) = tokio::join!(
            store.rotate_refresh_token(&token, &next, Utc::now(), (None, None)),
            store.rotate_refresh_token(&token, &other, Utc::now(), (None, None)),
        );
        exactly_one([first.unwrap(), second.unwrap()], |outcome| {
            matches!(outcome, RefreshOutcome::Rotated(_))
        });
    }
}

async fn password_reset(store: &TestStore, acme: &Org) -> PasswordReset {
    let reset = PasswordReset {
        id: Uuid::now_v7(),
        organization_id: acme.id,
        user_id: acme.owner,
        token_hash: format!("reset {}", Uuid::new_v4()),
        created_at: Utc::now(),
        expires_at: Utc::now() + Duration::hours(1),
    };
    let notice = notification(acme.id, NotificationKind::PasswordReset);
    store
        .create_password_reset(&reset, &notice, &audit(acme.id, "password_reset.requested"))
        .await
        .unwrap();
    reset
}

pub async fn a_password_reset_completes_once(store: &TestStore) {
    let acme = store.organization().await;
    let reset = password_reset(store, &acme).await;
    let (session, _) = signed_in(store, &acme).await;
    let complete = async |hash: &'static str| {
        store
            .complete_password_reset(&reset, hash, &audit(acme.id, "password_reset.completed"))
            .await
    };

    complete("first hash").await.unwrap();
    let again = complete("second hash").await;
    assert!(
        matches!(again, Err(Error::FailedPrecondition(_))),
        "{again:?}"
    );
    let (_, used) = store
        .find_password_reset(&reset.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(used);
    let owner = store.find_user(acme.id, acme.owner).await.unwrap().unwrap();
    let (_, hash) = store
        .find_credentials(&warden_core::validate::Email::parse("email", &owner.email).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hash.as_deref(), Some("first hash"));
    let session = store.find_session(session).await.unwrap().unwrap();
    assert!(session.revoked_at.is_some(), "a reset ends every session");
}

pub async fn concurrent_completions_of_one_password_reset_succeed_once(store: &TestStore) {
    let acme = store.organization().await;
    for _ in 0..ROUNDS {
        let reset = password_reset(store, &acme).await;
        let complete = async || {
            store
                .complete_password_reset(
                    &reset,
                    "hash",
                    &audit(acme.id, "password_reset.completed"),
                )
                .await
        };
        let (first, second) = tokio::join!(complete(), complete());
        exactly_one([first, second], Result::is_ok);
    }
}

pub async fn a_totp_step_is_used_once_and_never_an_earlier_one(store: &TestStore) {
    let acme = store.organization().await;
    let factor = store.totp_factor(&acme).await;

    assert!(store.use_totp_step(factor, 100).await.unwrap());
    assert!(!store.use_totp_step(factor, 100).await.unwrap());
    assert!(!store.use_totp_step(factor, 99).await.unwrap());
    assert!(store.use_totp_step(factor, 101).await.unwrap());
}

pub async fn concurrent_uses_of_one_totp_step_succeed_once(store: &TestStore) {
    let acme = store.organization().await;
    let factor = store.totp_factor(&acme).await;
    for step in 0..ROUNDS as i64 {
        let (first, second) = tokio::join!(
            store.use_totp_step(factor, step),
            store.use_totp_step(factor, step)
        );
        exactly_one([first.unwrap(), second.unwrap()], |used| *used);
    }
}

pub async fn a_recovery_code_is_used_once(store: &TestStore) {
    let acme = store.organization().await;
    let code = store.recovery_code(&acme).await;
    let use_code = || store.use_recovery_code(acme.id, acme.owner, &code, Utc::now());

    assert!(use_code().await.unwrap());
    assert!(!use_code().await.unwrap());
    assert!(
        !store
            .has_recovery_code(acme.id, acme.owner, Utc::now())
            .await
            .unwrap()
    );
}

pub async fn concurrent_uses_of_one_recovery_code_succeed_once(store: &TestStore) {
    let acme = store.organization().await;
    for _ in 0..ROUNDS {
        let code = store.recovery_code(&acme).await;
        let use_code = || store.use_recovery_code(acme.id, acme.owner, &code, Utc::now());
        let (first, second) = tokio::join!(use_code(), use_code());
        exactly_one([first.unwrap(), second.unwrap()], |used| *used);
    }
}

async fn challenge(store: &TestStore, acme: &Org) -> ChallengeId {
    let challenge = Challenge {
        id: ChallengeId::generate(),
        organization_id: acme.id,
        user_id: acme.owner,
        created_at: Utc::now(),
        expires_at: Utc::now() + Duration::minutes(5),
        failed_attempts: 0,
        code: None,
        completed: false,
    };
    store.create_challenge(&challenge).await.unwrap();
    challenge.id
}

pub async fn a_challenge_completes_once(store: &TestStore) {
    let acme = store.organization().await;
    let id = challenge(store, &acme).await;

    assert!(store.complete_challenge(id, Utc::now()).await.unwrap());
    assert!(!store.complete_challenge(id, Utc::now()).await.unwrap());
    assert!(store.find_challenge(id).await.unwrap().unwrap().completed);
}

pub async fn concurrent_completions_of_one_challenge_succeed_once(store: &TestStore) {
    let acme = store.organization().await;
    for _ in 0..ROUNDS {
        let id = challenge(store, &acme).await;
        let (first, second) = tokio::join!(
            store.complete_challenge(id, Utc::now()),
            store.complete_challenge(id, Utc::now())
        );
        exactly_one([first.unwrap(), second.unwrap()], |done| *done);
    }
}

async fn sso(store: &TestStore, acme: &Org) -> SsoConfig {
    let config = SsoConfig {
        organization_id: acme.id,
        enabled: true,
        issuer: "https://idp.example.com".to_owned(),
        client_id: "warden".to_owned(),
        jwks_json: "{\"keys\":[]}".to_owned(),
        default_role: RoleId::new(READ_ONLY_ROLE),
        email_domains: vec!["example.com".to_owned()],
        allow_privileged_default_role: false,
    };
    store
        .configure_sso(&config, &audit(acme.id, "sso.configured"))
        .await
        .unwrap();
    config
}

fn identity() -> SsoIdentity {
    SsoIdentity {
        issuer: "https://idp.example.com".to_owned(),
        subject: Uuid::new_v4().to_string(),
        verified_email: Some(email("sso")),
        first_name: "Sam".to_owned(),
        last_name: "Sso".to_owned(),
        token_hash: format!("id token {}", Uuid::new_v4()),
        token_expires_at: Utc::now() + Duration::minutes(5),
    }
}

pub async fn an_sso_token_signs_in_once(store: &TestStore) {
    let acme = store.organization().await;
    let config = sso(store, &acme).await;
    let identity = identity();
    let sign_in = async || {
        store
            .sso_sign_in(
                &config,
                &identity,
                UserId::generate(),
                &audit(acme.id, "user.signed_in"),
            )
            .await
    };

    let user = sign_in().await.unwrap();
    assert_eq!(user.grants, vec![on_all(READ_ONLY_ROLE)]);
    let again = sign_in().await;
    assert!(
        matches!(again, Err(Error::Unauthenticated("id_token: already used"))),
        "{again:?}"
    );
    // The same identity with a fresh token signs in as the same user.
    let fresh = SsoIdentity {
        token_hash: format!("{} fresh", identity.token_hash),
        ..identity.clone()
    };
    let same = store
        .sso_sign_in(
            &config,
            &fresh,
            UserId::generate(),
            &audit(acme.id, "user.signed_in"),
        )
        .await
        .unwrap();
    assert_eq!(same.id, user.id);
}

pub async fn concurrent_sign_ins_with_one_sso_token_succeed_once(store: &TestStore) {
    let acme = store.organization().await;
    let config = sso(store, &acme).await;
    for _ in 0..ROUNDS {
        let identity = identity();
        let sign_in = async || {
            store
                .sso_sign_in(
                    &config,
                    &identity,
                    UserId::generate(),
                    &audit(acme.id, "user.signed_in"),
                )
                .await
        };
        let (first, second) = tokio::join!(sign_in(), sign_in());
        exactly_one([first, second], Result::is_ok);
    }
}
