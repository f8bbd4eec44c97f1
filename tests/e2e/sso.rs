//! Single sign-on: ID tokens signed with a test RSA key (tests/fixtures), verified, linked by
//! verified email, provisioned just in time, and refused when wrong in any way.
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tonic::Code;
use warden_proto::v1;
use warden_tests::{ANONYMOUS, PASSWORD, TestOrg, TestServer, grant};

const ISSUER: &str = "https://idp.example.com";
const CLIENT_ID: &str = "warden-dashboard";
const IDP_KEY: &str = include_str!("../fixtures/idp_rsa.pem");
const IDP_JWKS: &str = include_str!("../fixtures/idp_jwks.json");
const FOREIGN_KEY: &str = include_str!("../fixtures/foreign_rsa.pem");
/// The one answer to an address the organisation does not provision or link, whoever holds it.
const NOT_ACCEPTED: &str = "id_token: email not accepted";
const INVALID: (Code, &str) = (Code::Unauthenticated, "id_token: invalid");

fn id_token(key: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("idp-key-1".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// The provider's clock: the real one. Test servers start at the real time and tests here move them
/// only forward past what a token allows.
fn wall_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn claims(sub: &str, email: &str, verified: bool) -> serde_json::Value {
    let now = wall_now() as i64;
    serde_json::json!({
        "iss": ISSUER, "aud": CLIENT_ID, "sub": sub, "iat": now, "exp": now + 300,
        "email": email, "email_verified": verified, "given_name": "Ida", "family_name": "Provider",
    })
}

/// SSO with the test provider, new users getting `analyst`.
fn sso_config(org: &TestOrg, enabled: bool) -> v1::ConfigureSsoRequest {
    v1::ConfigureSsoRequest {
        organization_id: org.id.clone(),
        enabled,
        issuer: ISSUER.into(),
        client_id: CLIENT_ID.into(),
        jwks_json: IDP_JWKS.into(),
        default_role_id: "analyst".into(),
        email_domains: vec!["example.com".into()],
        allow_privileged_default_role: false,
    }
}

async fn configure(server: &TestServer, org: &TestOrg, enabled: bool) {
    let mut organizations = server.organizations(&org.owner_token);
    let reply = organizations.configure_sso(sso_config(org, enabled)).await;
    reply.unwrap();
}

async fn sso(
    server: &TestServer,
    org: &TestOrg,
    token: String,
) -> Result<v1::SignInWithSsoResponse, tonic::Status> {
    sso_with_nonce(server, org, token, "").await
}

async fn sso_with_nonce(
    server: &TestServer,
    org: &TestOrg,
    token: String,
    nonce: &str,
) -> Result<v1::SignInWithSsoResponse, tonic::Status> {
    let request = v1::SignInWithSsoRequest {
        organization_id: org.id.clone(),
        id_token: token,
        nonce: nonce.into(),
    };
    server
        .auth(ANONYMOUS)
        .sign_in_with_sso(request)
        .await
        .map(|reply| reply.into_inner())
}

#[tokio::test]
async fn a_valid_id_token_provisions_a_user_with_the_default_role_and_signs_them_in_again() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    configure(&server, &org, true).await;
    let first = sso(
        &server,
        &org,
        id_token(IDP_KEY, claims("sub-1", "ida@example.com", true)),
    )
    .await
    .unwrap();
    let list = v1::ListUsersRequest {
        query: "ida@".into(),
        ..org.list_users()
    };
    let mut owner = server.users(&org.owner_token);
    let users = owner.list_users(list.clone()).await.unwrap();
    let users = users.into_inner().users;
    assert_eq!(users.len(), 1);
    let ida = &users[0];
    assert_eq!(
        (ida.status(), ida.grants.clone()),
        (v1::UserStatus::Active, vec![grant("analyst", &[])])
    );
    assert!(server.decide(&org, &ida.id, "pii.read", "").await.allowed);
    let mut signed_in = server.organizations(&first.access_token);
    let read = signed_in.get_organization(org.get_organization()).await;
    assert!(read.is_ok());

    let again = sso(
        &server,
        &org,
        id_token(IDP_KEY, claims("sub-1", "renamed@example.com", true)),
    )
    .await
    .unwrap();
    assert!(
        !again.access_token.is_empty(),
        "the (iss, sub) pair is the identity, not the email"
    );
    let users = owner.list_users(list).await.unwrap().into_inner().users;
    assert_eq!(users.len(), 1, "no second user");
}

#[tokio::test]
async fn tokens_with_a_wrong_audience_issuer_key_or_time_and_replays_are_refused() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    configure(&server, &org, true).await;
    let now = wall_now() as i64;
    let with = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut value = claims("sub-2", "ida@example.com", true);
        change(&mut value);
        id_token(IDP_KEY, value)
    };
    let bad = [
        with(&|c| c["aud"] = "someone-else".into()),
        with(&|c| c["iss"] = "https://evil.example.com".into()),
        with(&|c| c["exp"] = (now - 120).into()),
        with(&|c| c["iat"] = (now + 3600).into()),
        id_token(FOREIGN_KEY, claims("sub-2", "ida@example.com", true)),
        "not.a.token".to_owned(),
    ];
    for token in bad {
        let error = sso(&server, &org, token).await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (Code::Unauthenticated, "id_token: invalid")
        );
    }
    let token = id_token(IDP_KEY, claims("sub-2", "ida@example.com", true));
    sso(&server, &org, token.clone()).await.unwrap();
    let error = sso(&server, &org, token).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "id_token: already used")
    );
}

#[tokio::test]
async fn a_verified_email_links_an_existing_user_once_and_another_sub_is_refused() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    configure(&server, &org, true).await;
    let error = sso(
        &server,
        &org,
        id_token(IDP_KEY, claims("sub-alan", "alan@example.com", false)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "id_token: email is not verified")
    );
    sso(
        &server,
        &org,
        id_token(IDP_KEY, claims("sub-alan", "alan@example.com", true)),
    )
    .await
    .unwrap();
    let linked = server.get_user(&org, &alan.id).await;
    assert_eq!(
        linked.grants,
        vec![grant("read_only", &[])],
        "linking keeps the user's own grants"
    );
    let error = sso(
        &server,
        &org,
        id_token(IDP_KEY, claims("sub-impostor", "alan@example.com", true)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::Unauthenticated,
            "id_token: the email belongs to another identity"
        )
    );
    let other = server.create_organization("Globex").await;
    let error = sso(
        &server,
        &org,
        id_token(IDP_KEY, claims("sub-x", &other.owner_email, true)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, NOT_ACCEPTED),
        "an email of another organisation is never taken over, and answers like any refused one"
    );
}

#[tokio::test]
async fn while_sso_is_on_the_provider_owns_users_and_only_the_owner_signs_in_with_a_password() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let error = sso(
        &server,
        &org,
        id_token(IDP_KEY, claims("s", "ida@example.com", true)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.code(),
        Code::FailedPrecondition,
        "off until configured"
    );
    configure(&server, &org, true).await;
    let mut owner = server.users(&org.owner_token);
    let invite = org.invite_user("new@example.com", vec![grant("read_only", &[])]);
    let error = owner.invite_user(invite).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "users are managed by your identity provider"
        )
    );
    let error = owner
        .delete_user(org.delete_user(&alan.id))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(
        server
            .sign_in_error("alan@example.com", PASSWORD)
            .await
            .code(),
        Code::FailedPrecondition
    );
    assert!(
        !server
            .sign_in(&org.owner_email, PASSWORD)
            .await
            .access_token
            .is_empty(),
        "the owner's break-glass password"
    );

    configure(&server, &org, false).await;
    assert!(
        !server
            .sign_in("alan@example.com", PASSWORD)
            .await
            .access_token
            .is_empty()
    );
}

#[tokio::test]
async fn while_sso_is_on_a_pending_invitation_is_not_resent() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let reader = vec![grant("read_only", &[])];
    let pending = server
        .invite(&org, &org.owner_token, "new@example.com", reader)
        .await;
    configure(&server, &org, true).await;
    let queued = server.pending_notifications().await.len();
    let error = server
        .users(&org.owner_token)
        .resend_invitation(org.resend_invitation(&pending.id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "users are managed by your identity provider"
        )
    );
    assert_eq!(
        server.pending_notifications().await.len(),
        queued,
        "no new invitation queued"
    );
}

#[tokio::test]
async fn sso_configuration_is_validated_and_needs_security_write() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let base = sso_config(&org, true);
    let cases = [
        (
            v1::ConfigureSsoRequest {
                jwks_json: "{}".into(),
                ..base.clone()
            },
            "jwks_json: must be an RFC 7517 JWK set",
        ),
        (
            v1::ConfigureSsoRequest {
                jwks_json: r#"{"keys":[]}"#.into(),
                ..base.clone()
            },
            "jwks_json: must hold at least one key",
        ),
        (
            v1::ConfigureSsoRequest {
                issuer: String::new(),
                ..base.clone()
            },
            "issuer: is required",
        ),
        (
            v1::ConfigureSsoRequest {
                default_role_id: "wizard".into(),
                ..base.clone()
            },
            "default_role_id: unknown role",
        ),
        (
            v1::ConfigureSsoRequest {
                default_role_id: "owner".into(),
                ..base.clone()
            },
            "default_role_id: owner comes only with ownership",
        ),
    ];
    let mut owner = server.organizations(&org.owner_token);
    for (request, message) in cases {
        let error = owner.configure_sso(request).await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (Code::InvalidArgument, message)
        );
    }
    let developer = server
        .member(&org, "dev@example.com", vec![grant("developer", &[])])
        .await;
    let error = server
        .organizations(&developer.token)
        .configure_sso(base)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn only_the_owner_configures_sso_and_the_owner_is_never_linked_by_email() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let iam = server
        .member(&org, "iam@example.com", vec![grant("admin", &[])])
        .await;
    let request = v1::ConfigureSsoRequest {
        default_role_id: "read_only".into(),
        ..sso_config(&org, true)
    };
    let error = server
        .organizations(&iam.token)
        .configure_sso(request)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "only the owner can configure single sign-on"
        )
    );
    configure(&server, &org, true).await;
    let error = sso(
        &server,
        &org,
        id_token(IDP_KEY, claims("sub-owner", &org.owner_email, true)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::Unauthenticated,
            "id_token: the owner cannot be linked by email"
        )
    );
}

/// Signs `change`d claims for a fresh subject and address at example.com.
fn token_with(n: u32, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value = claims(&format!("sub-{n}"), &format!("user-{n}@example.com"), true);
    change(&mut value);
    id_token(IDP_KEY, value)
}

async fn refused(server: &TestServer, org: &TestOrg, token: String, nonce: &str) -> (Code, String) {
    let error = sso_with_nonce(server, org, token, nonce).await.unwrap_err();
    (error.code(), error.message().to_owned())
}

async fn user_count(server: &TestServer, org: &TestOrg) -> usize {
    let mut owner = server.users(&org.owner_token);
    let users = owner.list_users(org.list_users()).await.unwrap();
    users.into_inner().users.len()
}

#[tokio::test]
async fn an_id_token_not_yet_valid_is_refused_and_provisions_nobody() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    configure(&server, &org, true).await;
    let now = wall_now() as i64;
    let before = user_count(&server, &org).await;
    let early = token_with(1, |c| c["nbf"] = (now + 120).into());
    let answer = refused(&server, &org, early, "").await;
    assert_eq!((answer.0, answer.1.as_str()), INVALID);
    assert_eq!(
        user_count(&server, &org).await,
        before,
        "nobody provisioned"
    );
    let within_leeway = token_with(1, |c| c["nbf"] = (now + 10).into());
    sso(&server, &org, within_leeway).await.unwrap();
}

#[tokio::test]
async fn an_id_token_issued_longer_ago_than_the_maximum_age_is_refused() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    configure(&server, &org, true).await;
    let now = wall_now() as i64;
    let stale = token_with(1, |c| c["iat"] = (now - 11 * 60).into());
    let answer = refused(&server, &org, stale, "").await;
    assert_eq!((answer.0, answer.1.as_str()), INVALID);
    let recent = token_with(1, |c| c["iat"] = (now - 9 * 60).into());
    sso(&server, &org, recent).await.unwrap();
}

#[tokio::test]
async fn the_maximum_age_of_an_id_token_is_configurable() {
    let db = warden_tests::TestDatabase::fresh().await;
    let server =
        TestServer::start_with(db, |config| config.sso_max_id_token_age_seconds = 60).await;
    let org = server.create_organization("Acme").await;
    configure(&server, &org, true).await;
    let now = wall_now() as i64;
    let stale = token_with(1, |c| c["iat"] = (now - 120).into());
    let answer = refused(&server, &org, stale, "").await;
    assert_eq!((answer.0, answer.1.as_str()), INVALID);
    let recent = token_with(1, |c| c["iat"] = (now - 20).into());
    sso(&server, &org, recent).await.unwrap();
}

#[tokio::test]
async fn with_several_audiences_azp_must_be_the_client_id() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    configure(&server, &org, true).await;
    let audiences = serde_json::json!([CLIENT_ID, "another-client"]);
    let without = token_with(1, |c| c["aud"] = audiences.clone());
    let answer = refused(&server, &org, without, "").await;
    assert_eq!((answer.0, answer.1.as_str()), INVALID);
    let other = token_with(1, |c| {
        c["aud"] = audiences.clone();
        c["azp"] = "another-client".into();
    });
    let answer = refused(&server, &org, other, "").await;
    assert_eq!((answer.0, answer.1.as_str()), INVALID);
    let ours = token_with(1, |c| {
        c["aud"] = audiences.clone();
        c["azp"] = CLIENT_ID.into();
    });
    sso(&server, &org, ours).await.unwrap();
}

#[tokio::test]
async fn a_nonce_passed_by_the_client_must_be_the_tokens() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    configure(&server, &org, true).await;
    let wrong = token_with(1, |c| c["nonce"] = "n-other".into());
    let answer = refused(&server, &org, wrong, "n-1").await;
    assert_eq!((answer.0, answer.1.as_str()), INVALID);
    let missing = token_with(1, |_| {});
    let answer = refused(&server, &org, missing, "n-1").await;
    assert_eq!((answer.0, answer.1.as_str()), INVALID);
    let right = token_with(1, |c| c["nonce"] = "n-1".into());
    sso_with_nonce(&server, &org, right, "n-1").await.unwrap();
}

#[tokio::test]
async fn only_addresses_in_the_configured_email_domains_are_provisioned_or_linked() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@elsewhere.com", vec![grant("read_only", &[])])
        .await;
    configure(&server, &org, true).await;
    let before = user_count(&server, &org).await;
    let outside = id_token(IDP_KEY, claims("sub-1", "ida@elsewhere.com", true));
    assert_eq!(
        refused(&server, &org, outside, "").await,
        (Code::Unauthenticated, NOT_ACCEPTED.to_owned())
    );
    let subdomain = id_token(IDP_KEY, claims("sub-1", "ida@mail.example.com", true));
    assert_eq!(
        refused(&server, &org, subdomain, "").await,
        (Code::Unauthenticated, NOT_ACCEPTED.to_owned())
    );
    let link = id_token(IDP_KEY, claims("sub-alan", "alan@elsewhere.com", true));
    assert_eq!(
        refused(&server, &org, link, "").await,
        (Code::Unauthenticated, NOT_ACCEPTED.to_owned())
    );
    assert_eq!(
        user_count(&server, &org).await,
        before,
        "nobody provisioned"
    );
    assert!(!server.get_user(&org, &alan.id).await.id.is_empty());
    let inside = id_token(IDP_KEY, claims("sub-1", "Ida@EXAMPLE.com", true));
    sso(&server, &org, inside).await.unwrap();

    let mut organizations = server.organizations(&org.owner_token);
    let request = v1::ConfigureSsoRequest {
        email_domains: vec![],
        ..sso_config(&org, true)
    };
    organizations.configure_sso(request).await.unwrap();
    let none = id_token(IDP_KEY, claims("sub-2", "bob@example.com", true));
    assert_eq!(
        refused(&server, &org, none, "").await,
        (Code::Unauthenticated, NOT_ACCEPTED.to_owned()),
        "no domains: no provisioning"
    );
    let linked = id_token(IDP_KEY, claims("sub-1", "ida@example.com", true));
    sso(&server, &org, linked)
        .await
        .expect("an identity already linked still signs in");
    let bad = v1::ConfigureSsoRequest {
        email_domains: vec!["not a domain".into()],
        ..sso_config(&org, true)
    };
    let error = organizations.configure_sso(bad).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "email_domains: must be domain names")
    );
}

#[tokio::test]
async fn a_default_role_granting_user_management_or_security_needs_an_explicit_opt_in() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut organizations = server.organizations(&org.owner_token);
    for role in ["iam_admin", "admin"] {
        let request = v1::ConfigureSsoRequest {
            default_role_id: role.into(),
            ..sso_config(&org, true)
        };
        let error = organizations
            .configure_sso(request.clone())
            .await
            .unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (
                Code::InvalidArgument,
                "default_role_id: grants users.write or security.write; set allow_privileged_default_role"
            )
        );
        let allowed = v1::ConfigureSsoRequest {
            allow_privileged_default_role: true,
            ..request
        };
        organizations.configure_sso(allowed).await.unwrap();
    }
}

#[tokio::test]
async fn a_user_holding_more_than_the_default_role_is_never_linked_by_email() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("developer", &[])])
        .await;
    let bea = server
        .member(&org, "bea@example.com", vec![grant("read_only", &[])])
        .await;
    let carl = server
        .member(&org, "carl@example.com", vec![grant("read_only", &[])])
        .await;
    let mut groups = server.groups(&org.owner_token);
    let group = groups
        .create_group(org.create_group("Developers", vec![grant("developer", &[])]))
        .await
        .unwrap();
    let group_id = group.into_inner().group.unwrap().id;
    groups
        .add_group_member(org.add_group_member(&group_id, &carl.id))
        .await
        .unwrap();
    configure(&server, &org, true).await;
    let more = id_token(IDP_KEY, claims("sub-alan", "alan@example.com", true));
    assert_eq!(
        refused(&server, &org, more, "").await,
        (
            Code::Unauthenticated,
            "id_token: the user holds more than the default role and cannot be linked by email"
                .to_owned()
        )
    );
    let through_a_group = id_token(IDP_KEY, claims("sub-carl", "carl@example.com", true));
    assert_eq!(
        refused(&server, &org, through_a_group, "").await,
        (
            Code::Unauthenticated,
            "id_token: the user holds more than the default role and cannot be linked by email"
                .to_owned()
        ),
        "what a group gives counts too"
    );
    let covered = id_token(IDP_KEY, claims("sub-bea", "bea@example.com", true));
    sso(&server, &org, covered).await.unwrap();
    assert_eq!(
        server.get_user(&org, &bea.id).await.grants,
        vec![grant("read_only", &[])]
    );
    assert_eq!(
        server.get_user(&org, &alan.id).await.grants,
        vec![grant("developer", &[])]
    );
}
