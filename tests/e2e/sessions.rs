//! Sessions and credentials under attack: refresh rotation and reuse, sign-out, password change and
//! reset, throttling, rate limits, key rotation, API key use, and no secret in the logs.
use std::time::Duration;

use tonic::Code;
use warden_proto::v1;
use warden_tests::{ANONYMOUS, OPERATOR_TOKEN, PASSWORD, TestDatabase, TestOrg, TestServer, grant};

/// Whether `access_token` still opens a session: it reads its organisation.
async fn signed_in(server: &TestServer, org: &TestOrg, access_token: &str) -> Result<(), Code> {
    let mut organizations = server.organizations(access_token);
    let read = organizations.get_organization(org.get_organization()).await;
    read.map(drop).map_err(|error| error.code())
}

fn refresh(token: &str) -> v1::RefreshSessionRequest {
    v1::RefreshSessionRequest {
        refresh_token: token.into(),
    }
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_spent_one_revokes_the_whole_session() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let first = server.sign_in(&org.owner_email, PASSWORD).await;
    let mut auth = server.auth(ANONYMOUS);
    let second = auth
        .refresh_session(refresh(&first.refresh_token))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(signed_in(&server, &org, &second.access_token).await.is_ok());

    // The spent token comes back (stolen): the session ends for everyone holding any of its tokens.
    let error = auth
        .refresh_session(refresh(&first.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "invalid refresh token")
    );
    let error = auth
        .refresh_session(refresh(&second.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::Unauthenticated,
        "the newest refresh token died with its session"
    );
    assert_eq!(
        signed_in(&server, &org, &second.access_token).await,
        Err(Code::Unauthenticated),
        "and so did the access token"
    );
    assert!(
        signed_in(&server, &org, &org.owner_token).await.is_ok(),
        "other sessions live on"
    );
    let error = auth
        .refresh_session(refresh("never-issued"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_leave_at_most_one_winner() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let session = server.sign_in(&org.owner_email, PASSWORD).await;
    let attempts = (0..6).map(|_| {
        let mut auth = server.auth(ANONYMOUS);
        let token = session.refresh_token.clone();
        tokio::spawn(async move { auth.refresh_session(refresh(&token)).await })
    });
    let mut winners = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => winners += 1,
            Err(error) => assert_eq!(error.code(), Code::Unauthenticated),
        }
    }
    assert!(winners <= 1, "{winners} refreshes won with one token");
}

#[tokio::test]
async fn sign_out_and_suspension_end_sessions_and_refresh_tokens() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let session = server.sign_in("alan@example.com", PASSWORD).await;
    let mut session_auth = server.auth(&session.access_token);
    session_auth.sign_out(v1::SignOutRequest {}).await.unwrap();
    assert_eq!(
        signed_in(&server, &org, &session.access_token).await,
        Err(Code::Unauthenticated)
    );
    let mut anonymous = server.auth(ANONYMOUS);
    let error = anonymous
        .refresh_session(refresh(&session.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    assert!(
        signed_in(&server, &org, &alan.token).await.is_ok(),
        "only that session ended"
    );

    let live = server.sign_in("alan@example.com", PASSWORD).await;
    let suspend = org.suspend_user(&alan.id);
    server
        .users(&org.owner_token)
        .suspend_user(suspend)
        .await
        .unwrap();
    let error = anonymous
        .refresh_session(refresh(&live.refresh_token))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn changing_a_password_ends_every_other_session() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.sign_in(&org.owner_email, PASSWORD).await;
    let change = |current: &str, new: &str| v1::ChangePasswordRequest {
        current_password: current.into(),
        new_password: new.into(),
    };
    let mut auth = server.auth(&org.owner_token);
    let error = auth
        .change_password(change("wrong wrong wrong wrong", "a brand new passphrase"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "current_password: incorrect")
    );
    let error = auth
        .change_password(change(PASSWORD, "short"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "new_password: must be at least 15 characters"
        )
    );
    auth.change_password(change(PASSWORD, "a brand new passphrase"))
        .await
        .unwrap();
    assert!(
        signed_in(&server, &org, &org.owner_token).await.is_ok(),
        "this session lives"
    );
    assert_eq!(
        signed_in(&server, &org, &other.access_token).await,
        Err(Code::Unauthenticated),
        "the other session ended"
    );
    assert_eq!(
        server
            .sign_in_error(&org.owner_email, PASSWORD)
            .await
            .code(),
        Code::Unauthenticated
    );
    server
        .sign_in(&org.owner_email, "a brand new passphrase")
        .await;
}

#[tokio::test]
async fn a_password_reset_goes_through_the_outbox_once() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut auth = server.auth(ANONYMOUS);
    let ask = |email: &str| v1::RequestPasswordResetRequest {
        email: email.into(),
    };
    auth.request_password_reset(ask("nobody@example.com"))
        .await
        .expect("the same answer for an unknown email");
    auth.request_password_reset(ask(&org.owner_email.to_uppercase()))
        .await
        .unwrap();
    let mut token = None;
    for _ in 0..100 {
        let pending = server.pending_notifications().await;
        if let Some(reset) = pending
            .iter()
            .find(|n| n.kind() == v1::NotificationKind::PasswordReset)
        {
            assert_eq!(reset.recipient, org.owner_email);
            token = Some(reset.token.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = token.expect("a reset notification");
    assert_eq!(
        server.pending_notifications().await.len(),
        1,
        "nothing was queued for the unknown email"
    );

    let reset = |token: &str, password: &str| v1::ResetPasswordRequest {
        token: token.into(),
        new_password: password.into(),
    };
    let error = auth
        .reset_password(reset(&token, "too short"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    auth.reset_password(reset(&token, "a freshly reset passphrase"))
        .await
        .unwrap();
    assert_eq!(
        signed_in(&server, &org, &org.owner_token).await,
        Err(Code::Unauthenticated),
        "a reset ends every session"
    );
    server
        .sign_in(&org.owner_email, "a freshly reset passphrase")
        .await;
    let error = auth
        .reset_password(reset(&token, "yet another passphrase here"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "token: already used")
    );
    let error = auth
        .reset_password(reset("made-up", "yet another passphrase here"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}

#[tokio::test]
async fn repeated_failures_back_off_per_account_then_recover() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    for attempt in 1..=5 {
        let error = server
            .sign_in_error(&org.owner_email, "not the password, attempt")
            .await;
        assert_eq!(error.code(), Code::Unauthenticated, "attempt {attempt}");
    }
    // The 5th failure started a back-off: even the right password waits, under any spelling of the email.
    let error = server
        .sign_in_error(&format!(" {} ", org.owner_email.to_uppercase()), PASSWORD)
        .await;
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert_eq!(error.message(), "too many attempts, retry in 1 seconds");
    assert_eq!(error.metadata().get("retry-after").unwrap(), "1");
    server.advance(Duration::from_millis(1100));
    server.sign_in(&org.owner_email, PASSWORD).await;
    // Success starts the account afresh, but the address keeps its failures: one good account never
    // clears an address that guesses at others.
    assert_eq!(
        server
            .db
            .count("throttles WHERE key LIKE 'password:account:%'")
            .await,
        0
    );
    assert_eq!(
        server
            .db
            .count("throttles WHERE key LIKE 'password:address:%' AND failures = 5")
            .await,
        1
    );
}

#[tokio::test]
async fn unknown_emails_are_throttled_like_known_ones_and_so_is_the_source_address() {
    // The address's own budget of failures is lowered to 6 so that spraying exhausts it quickly.
    let server = TestServer::start_with(TestDatabase::fresh().await, |config| {
        config.address_failures_per_window = 6;
    })
    .await;
    let org = server.create_organization("Acme").await;
    for _ in 0..5 {
        server
            .sign_in_error("ghost@example.com", "whatever it may be")
            .await;
    }
    assert_eq!(
        server
            .sign_in_error("ghost@example.com", "whatever it may be")
            .await
            .code(),
        Code::ResourceExhausted
    );
    // Spraying many accounts from one address: the 6th failure spends the address's budget.
    let error = server
        .sign_in_error("another-ghost@example.com", "whatever it may be")
        .await;
    assert_eq!(error.code(), Code::Unauthenticated);
    let error = server
        .sign_in_error("a-third-ghost@example.com", "whatever it may be")
        .await;
    assert_eq!(error.code(), Code::ResourceExhausted);
    let error = server.sign_in_error(&org.owner_email, PASSWORD).await;
    assert_eq!(
        error.code(),
        Code::ResourceExhausted,
        "the address is refused for every account"
    );
}

#[tokio::test]
async fn unauthenticated_rpcs_are_rate_limited_per_address() {
    let server = TestServer::start_with(TestDatabase::fresh().await, |config| {
        config.unauthenticated_rate_per_minute = 3
    })
    .await;
    let mut auth = server.auth(ANONYMOUS);
    for _ in 0..3 {
        auth.refresh_session(refresh("nope")).await.unwrap_err();
    }
    let error = auth.refresh_session(refresh("nope")).await.unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.metadata().get("retry-after").is_some());
}

#[tokio::test]
async fn rotated_keys_sign_new_tokens_while_old_tokens_stay_valid() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let error = server
        .auth(&org.owner_token)
        .rotate_signing_key(v1::RotateSigningKeyRequest {})
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    server.advance(Duration::from_secs(60)); // A rotation happens later than the first key's creation.
    let rotated = server
        .auth(OPERATOR_TOKEN)
        .rotate_signing_key(v1::RotateSigningKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    let jwks = server
        .auth(ANONYMOUS)
        .get_jwks(v1::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys_json;
    let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "the old key verifies until its tokens expire"
    );
    assert!(signed_in(&server, &org, &org.owner_token).await.is_ok());
    let fresh = server
        .sign_in(&org.owner_email, PASSWORD)
        .await
        .access_token;
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(fresh.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(
        header["kid"].as_str(),
        Some(rotated.key_id.as_str()),
        "new tokens use the new key"
    );
    assert!(signed_in(&server, &org, &fresh).await.is_ok());
}

#[tokio::test]
async fn api_key_use_is_recorded() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    server
        .decide(&org, &org.owner_id, "payments.read", "")
        .await;
    let list = v1::ListApiKeysRequest {
        organization_id: org.id.clone(),
        page_size: 0,
        page_token: String::new(),
    };
    let mut used = false;
    for _ in 0..100 {
        let keys = server
            .api_keys(&org.owner_token)
            .list_api_keys(list.clone())
            .await
            .unwrap()
            .into_inner();
        if keys.api_keys[0].last_used_time.is_some() {
            used = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(used, "last_used_time was recorded");
}
