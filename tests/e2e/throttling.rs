//! Throttling under a shared address (SPEC §4): one account's lockout never locks out the others
//! behind the same NAT, the address has its own budget of failures, trusted proxies name the client;
//! and quotas on second-factor codes and enrolments, with a rate limit for signed-in callers.
use std::time::Duration;

use tonic::{Code, Request};
use warden_proto::v1;
use warden_tests::{ANONYMOUS, PASSWORD, TestDatabase, TestServer, grant};

fn sign_in_from(email: &str, password: &str, forwarded_for: &str) -> Request<v1::SignInRequest> {
    let mut request = Request::new(v1::SignInRequest {
        email: email.into(),
        password: password.into(),
    });
    request
        .metadata_mut()
        .insert("x-forwarded-for", forwarded_for.parse().unwrap());
    request
}

#[tokio::test]
async fn one_locked_out_account_does_not_lock_out_another_account_behind_the_same_address() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    for attempt in 1..=14 {
        server.advance(Duration::from_secs(15 * 60)); // Waits out the account's back-off.
        let error = server
            .sign_in_error(&org.owner_email, "not the password, a typo")
            .await;
        assert_eq!(error.code(), Code::Unauthenticated, "attempt {attempt}");
    }
    let error = server.sign_in_error(&org.owner_email, PASSWORD).await;
    assert_eq!(
        error.code(),
        Code::ResourceExhausted,
        "the account itself backs off"
    );
    let reply = server.sign_in(&alan.email, PASSWORD).await;
    assert!(
        !reply.access_token.is_empty(),
        "another account signs in from the same address"
    );
}

#[tokio::test]
async fn a_hundred_failures_across_accounts_refuse_the_address_until_the_window_passes() {
    let server = TestServer::start_with(TestDatabase::fresh().await, |config| {
        config.unauthenticated_rate_per_minute = 1000;
    })
    .await;
    let org = server.create_organization("Acme").await;
    for attempt in 0..100 {
        // Four failures per account: no account reaches its own back-off.
        let email = format!("ghost-{}@example.com", attempt / 4);
        let error = server.sign_in_error(&email, "whatever it may be").await;
        assert_eq!(error.code(), Code::Unauthenticated, "attempt {attempt}");
    }
    let error = server.sign_in_error(&org.owner_email, PASSWORD).await;
    assert_eq!(
        error.code(),
        Code::ResourceExhausted,
        "the address is spent"
    );
    assert!(error.metadata().get("retry-after").is_some());
    server.advance(Duration::from_secs(15 * 60));
    server.sign_in(&org.owner_email, PASSWORD).await;
}

#[tokio::test]
async fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    let lowered = |config: &mut warden_server::config::Config| {
        config.address_failures_per_window = 3;
    };
    // Untrusted peer: the header is ignored, every failure counts against the peer.
    let server = TestServer::start_with(TestDatabase::fresh().await, lowered).await;
    let org = server.create_organization("Acme").await;
    let mut auth = server.auth(ANONYMOUS);
    for (attempt, client) in ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        .into_iter()
        .enumerate()
    {
        let email = format!("ghost-{attempt}@example.com");
        let error = auth
            .sign_in(sign_in_from(&email, "nope nope", client))
            .await;
        assert_eq!(error.unwrap_err().code(), Code::Unauthenticated);
    }
    let error = auth
        .sign_in(sign_in_from(&org.owner_email, PASSWORD, "203.0.113.4"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "header ignored");
    drop(server);

    // Trusted peer: the right-most untrusted address is the client.
    let server = TestServer::start_with(TestDatabase::fresh().await, |config| {
        lowered(config);
        config.trusted_proxies = "127.0.0.0/8, ::1/128".into();
    })
    .await;
    let org = server.create_organization("Acme").await;
    let mut auth = server.auth(ANONYMOUS);
    for attempt in 0..3 {
        let email = format!("ghost-{attempt}@example.com");
        let error = auth
            .sign_in(sign_in_from(
                &email,
                "nope nope",
                "198.51.100.9, 203.0.113.1",
            ))
            .await;
        assert_eq!(error.unwrap_err().code(), Code::Unauthenticated);
    }
    let error = auth
        .sign_in(sign_in_from(&org.owner_email, PASSWORD, "203.0.113.1"))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::ResourceExhausted,
        "that client is spent"
    );
    auth.sign_in(sign_in_from(
        &org.owner_email,
        PASSWORD,
        "203.0.113.1, 203.0.113.2",
    ))
    .await
    .expect("another client behind the same proxy");
}

fn enroll_email() -> v1::EnrollSecondFactorRequest {
    v1::EnrollSecondFactorRequest {
        method: v1::SecondFactorMethod::Email as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn second_factor_enrolments_and_codes_have_a_quota_per_user() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut mine = server.auth(&org.owner_token);
    for round in 1..=5 {
        let factor = mine
            .enroll_second_factor(enroll_email())
            .await
            .unwrap_or_else(|error| panic!("round {round}: {error:?}"))
            .into_inner()
            .factor
            .unwrap();
        mine.remove_second_factor(v1::RemoveSecondFactorRequest {
            factor_id: factor.id,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let error = mine.enroll_second_factor(enroll_email()).await.unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.metadata().get("retry-after").is_some());
    server.advance(Duration::from_secs(3600));
    let fresh = server.sign_in(&org.owner_email, PASSWORD).await;
    server
        .auth(&fresh.access_token)
        .enroll_second_factor(enroll_email())
        .await
        .expect("a new hour, a new quota");
}

#[tokio::test]
async fn second_factor_enrolments_have_a_quota_per_organization() {
    let server = TestServer::start_with(TestDatabase::fresh().await, |config| {
        config.second_factor_sends_per_organization_per_hour = 2;
    })
    .await;
    let org = server.create_organization("Acme").await;
    for name in ["alan", "grace"] {
        let user = server
            .member(
                &org,
                &format!("{name}@example.com"),
                vec![grant("read_only", &[])],
            )
            .await;
        server
            .auth(&user.token)
            .enroll_second_factor(enroll_email())
            .await
            .unwrap();
    }
    let error = server
        .auth(&org.owner_token)
        .enroll_second_factor(enroll_email())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn signed_in_callers_are_rate_limited_per_user() {
    let server = TestServer::start_with(TestDatabase::fresh().await, |config| {
        config.authenticated_rate_per_minute = 3;
    })
    .await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let mut mine = server.auth(&alan.token);
    for _ in 0..3 {
        mine.list_second_factors(v1::ListSecondFactorsRequest::default())
            .await
            .unwrap();
    }
    let error = mine
        .list_second_factors(v1::ListSecondFactorsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    assert!(error.metadata().get("retry-after").is_some());
    server
        .auth(&org.owner_token)
        .list_second_factors(v1::ListSecondFactorsRequest::default())
        .await
        .expect("another user has their own rate");
}
