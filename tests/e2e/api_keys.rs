//! ApiKeyService: secrets shown once, stored hashed, revocable at once.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{TestServer, with_token};

#[tokio::test]
async fn keys_list_without_secrets_and_revocation_takes_effect_at_once() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut keys = server.api_keys();
    let second = v1::CreateApiKeyRequest {
        organization_id: org.id.clone(),
        name: "billing".into(),
    };
    let second = keys
        .create_api_key(with_token(&org.owner_token, second))
        .await
        .unwrap()
        .into_inner();
    assert!(second.secret.starts_with("wk_"));
    let key = second.api_key.unwrap();
    assert!(second.secret.contains(&key.prefix));

    let list = |page_token: String| v1::ListApiKeysRequest {
        organization_id: org.id.clone(),
        page_size: 1,
        page_token,
    };
    let first_page = keys
        .list_api_keys(with_token(&org.owner_token, list(String::new())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first_page
            .api_keys
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>(),
        ["billing"],
        "newest first"
    );
    let second_page = keys
        .list_api_keys(with_token(
            &org.owner_token,
            list(first_page.next_page_token),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second_page
            .api_keys
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>(),
        ["backend"]
    );
    assert_eq!(second_page.next_page_token, "");
    // Only hashes are stored: the secret appears in no column.
    assert_eq!(
        server
            .db
            .count(&format!("api_keys WHERE secret_hash = '{}'", second.secret))
            .await,
        0
    );

    let mut checks = server.authorization();
    let check = || org.check(&org.owner_id, "payments.read", "");
    assert!(
        checks
            .check_permission(with_token(&second.secret, check()))
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    let revoke = v1::RevokeApiKeyRequest {
        organization_id: org.id.clone(),
        api_key_id: key.id.clone(),
    };
    let revoked = keys
        .revoke_api_key(with_token(&org.owner_token, revoke))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.api_key.unwrap().revoke_time.is_some());
    let error = checks
        .check_permission(with_token(&second.secret, check()))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "invalid api key")
    );
    assert!(
        checks
            .check_permission(with_token(&org.api_key, check()))
            .await
            .is_ok(),
        "the other key still works"
    );
    let forged = format!("{}x", org.api_key);
    let error = checks
        .check_permission(with_token(&forged, check()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn keys_are_managed_only_inside_their_organization() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let mut keys = server.api_keys();
    let list = v1::ListApiKeysRequest {
        organization_id: acme.id.clone(),
        page_size: 0,
        page_token: String::new(),
    };
    let acme_key = keys
        .list_api_keys(with_token(&acme.owner_token, list))
        .await
        .unwrap()
        .into_inner()
        .api_keys
        .remove(0);
    let revoke = v1::RevokeApiKeyRequest {
        organization_id: globex.id.clone(),
        api_key_id: acme_key.id.clone(),
    };
    let error = keys
        .revoke_api_key(with_token(&globex.owner_token, revoke))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "api key not found")
    );
    let create = v1::CreateApiKeyRequest {
        organization_id: acme.id.clone(),
        name: String::new(),
    };
    let error = keys
        .create_api_key(with_token(&acme.owner_token, create))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "name: is required")
    );
    let create = v1::CreateApiKeyRequest {
        organization_id: acme.id.clone(),
        name: "x".into(),
    };
    let error = keys
        .create_api_key(with_token(&acme.api_key, create))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::PermissionDenied,
        "an api key cannot mint api keys"
    );
}
