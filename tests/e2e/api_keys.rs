//! ApiKeyService: secrets shown once, stored hashed, revocable at once.
use tonic::Code;
use warden_proto::v1;
use warden_tests::TestServer;

#[tokio::test]
async fn keys_list_without_secrets_and_revocation_takes_effect_at_once() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut keys = server.api_keys(&org.owner_token);
    let second = v1::CreateApiKeyRequest {
        organization_id: org.id.clone(),
        name: "billing".into(),
    };
    let second = keys.create_api_key(second).await.unwrap().into_inner();
    assert!(second.secret.starts_with("wk_"));
    let key = second.api_key.unwrap();
    assert!(second.secret.contains(&key.prefix));

    let list = |page_token: String| v1::ListApiKeysRequest {
        organization_id: org.id.clone(),
        page_size: 1,
        page_token,
    };
    let first_page = keys.list_api_keys(list(String::new())).await.unwrap();
    let first_page = first_page.into_inner();
    assert_eq!(
        first_page
            .api_keys
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>(),
        ["billing"],
        "newest first"
    );
    let second_page = keys.list_api_keys(list(first_page.next_page_token)).await;
    let second_page = second_page.unwrap().into_inner();
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

    let mut checks = server.authorization(&second.secret);
    let check = || org.check(&org.owner_id, "payments.read", "");
    let decision = checks.check_permission(check()).await.unwrap();
    assert!(decision.into_inner().allowed);
    let revoke = v1::RevokeApiKeyRequest {
        organization_id: org.id.clone(),
        api_key_id: key.id.clone(),
    };
    let revoked = keys.revoke_api_key(revoke).await.unwrap().into_inner();
    assert!(revoked.api_key.unwrap().revoke_time.is_some());
    let error = checks.check_permission(check()).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "invalid api key")
    );
    assert!(
        server
            .decide(&org, &org.owner_id, "payments.read", "")
            .await
            .allowed,
        "the other key still works"
    );
    let forged = format!("{}x", org.api_key);
    let error = server
        .authorization(&forged)
        .check_permission(check())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn keys_are_managed_only_inside_their_organization() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let mut keys = server.api_keys(&acme.owner_token);
    let list = v1::ListApiKeysRequest {
        organization_id: acme.id.clone(),
        page_size: 0,
        page_token: String::new(),
    };
    let acme_key = keys
        .list_api_keys(list)
        .await
        .unwrap()
        .into_inner()
        .api_keys
        .remove(0);
    let revoke = v1::RevokeApiKeyRequest {
        organization_id: globex.id.clone(),
        api_key_id: acme_key.id.clone(),
    };
    let error = server
        .api_keys(&globex.owner_token)
        .revoke_api_key(revoke)
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
    let error = keys.create_api_key(create).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "name: is required")
    );
    let create = v1::CreateApiKeyRequest {
        organization_id: acme.id.clone(),
        name: "x".into(),
    };
    let error = server
        .api_keys(&acme.api_key)
        .create_api_key(create)
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::PermissionDenied,
        "an api key cannot mint api keys"
    );
}
