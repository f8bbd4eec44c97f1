//! AuthService: password sign-in, access tokens and the JWKS.
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use tonic::Code;
use warden_proto::v1;
use warden_tests::{ANONYMOUS, PASSWORD, TestServer};

fn header(token: &str) -> serde_json::Value {
    let encoded = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

fn claims(token: &str) -> serde_json::Value {
    let encoded = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap()
}

#[tokio::test]
async fn sign_in_issues_an_eddsa_token_whose_kid_is_in_the_jwks() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let reply = server
        .sign_in(&format!("  {}  ", org.owner_email.to_uppercase()), PASSWORD)
        .await;
    assert!(!reply.refresh_token.is_empty());
    assert!(!reply.second_factor_required);
    let header = header(&reply.access_token);
    assert_eq!(header["alg"], "EdDSA");
    let claims = claims(&reply.access_token);
    assert_eq!(
        (claims["sub"].as_str(), claims["org"].as_str()),
        (Some(org.owner_id.as_str()), Some(org.id.as_str()))
    );
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str()),
        (Some("warden"), Some("warden"))
    );
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(
        lifetime > 0 && lifetime <= 900,
        "access tokens live at most 15 minutes, got {lifetime}s"
    );
    assert_eq!(
        reply.expires_at.unwrap().seconds,
        claims["exp"].as_i64().unwrap()
    );

    let jwks = server
        .auth(ANONYMOUS)
        .get_jwks(v1::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys_json;
    let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == header["kid"])
        .expect("kid published");
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(key["x"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert!(
        key.get("d").is_none(),
        "the private part never leaves the server"
    );
}

#[tokio::test]
async fn unknown_email_and_wrong_password_answer_alike() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut auth = server.auth(ANONYMOUS);
    let wrong_password = v1::SignInRequest {
        email: org.owner_email.clone(),
        password: "not the password at all".into(),
    };
    let unknown_email = v1::SignInRequest {
        email: "nobody@example.com".into(),
        password: PASSWORD.into(),
    };
    let malformed_email = v1::SignInRequest {
        email: "nobody".into(),
        password: PASSWORD.into(),
    };
    for request in [wrong_password, unknown_email, malformed_email] {
        let error = auth.sign_in(request).await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (Code::Unauthenticated, "invalid email or password")
        );
    }
    let long = v1::SignInRequest {
        email: org.owner_email.clone(),
        password: "x".repeat(1_000),
    };
    let error = auth.sign_in(long).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "password: must be at most 256 characters"
        )
    );
    // Any string field past 64 KiB is refused at the edge, before a rule or a hash sees it.
    let huge = v1::SignInRequest {
        email: org.owner_email.clone(),
        password: "x".repeat(100_000),
    };
    let error = auth.sign_in(huge).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "password: must be at most 65536 bytes"
        )
    );
}

#[tokio::test]
async fn tampered_foreign_and_malformed_tokens_are_unauthenticated() {
    let server = TestServer::start().await;
    let other = TestServer::start().await; // Its own signing key.
    let org = server.create_organization("Acme").await;
    let foreign = other.create_organization("Elsewhere").await;
    let token = &org.owner_token;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut forged = claims(token);
    forged["org"] = serde_json::Value::String(foreign.id.clone());
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    let tampered = parts.join(".");
    for bad in [
        tampered.as_str(),
        foreign.owner_token.as_str(),
        "not.a.jwt",
        "garbage",
    ] {
        let error = server
            .organizations(bad)
            .get_organization(org.get_organization())
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "{bad}");
    }
    let mut basic = tonic::Request::new(org.get_organization());
    basic
        .metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    let error = server
        .organizations(ANONYMOUS)
        .get_organization(basic)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::Unauthenticated,
            "authorization: malformed bearer token"
        )
    );
}

#[tokio::test]
async fn an_expired_access_token_is_unauthenticated() {
    let db = warden_tests::TestDatabase::fresh().await;
    let server = TestServer::start_with(db, |config| config.access_token_ttl_seconds = 1).await;
    let org = server.create_organization("Acme").await;
    let mut owner = server.organizations(&org.owner_token);
    assert!(owner.get_organization(org.get_organization()).await.is_ok());
    // One second of life plus the five seconds of leeway for clock skew.
    server.advance(std::time::Duration::from_millis(7_100));
    let error = owner
        .get_organization(org.get_organization())
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "invalid or expired access token")
    );
}
