//! OrganizationService: bootstrap, validation, tenancy, the entity tree, restarts.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, PASSWORD, TestServer, with_token};

fn create_request(name: &str, email: &str, password: &str) -> v1::CreateOrganizationRequest {
    v1::CreateOrganizationRequest {
        name: name.into(),
        owner_email: email.into(),
        owner_first_name: "Grace".into(),
        owner_last_name: "Hopper".into(),
        owner_password: password.into(),
    }
}

#[tokio::test]
async fn creating_an_organization_makes_an_active_owner_with_full_access() {
    let server = TestServer::start().await;
    let reply = server
        .organizations()
        .create_organization(with_token(
            OPERATOR_TOKEN,
            create_request("Acme", " Grace@Example.com ", PASSWORD),
        ))
        .await
        .unwrap()
        .into_inner();
    let organization = reply.organization.unwrap();
    let owner = reply.owner.unwrap();
    assert_eq!(organization.name, "Acme");
    assert_eq!(
        organization.settings.unwrap().invitation_ttl_seconds,
        7 * 24 * 3600
    );
    assert_eq!(owner.email, "grace@example.com");
    assert_eq!(owner.status(), v1::UserStatus::Active);
    assert!(owner.owner);
    assert_eq!(
        owner.grants,
        vec![v1::Grant {
            role_id: "owner".into(),
            entity_ids: vec![],
            all_entities: true
        }]
    );
    assert!(!reply.consistency_token.is_empty());

    let token = server
        .sign_in("grace@example.com", PASSWORD)
        .await
        .access_token;
    let request = v1::GetOrganizationRequest {
        organization_id: organization.id.clone(),
    };
    let read = server
        .organizations()
        .get_organization(with_token(&token, request.clone()))
        .await
        .unwrap();
    assert_eq!(read.into_inner().organization.unwrap().id, organization.id);
    let read = server
        .organizations()
        .get_organization(with_token(OPERATOR_TOKEN, request))
        .await
        .unwrap();
    assert_eq!(read.into_inner().organization.unwrap().name, "Acme");
}

#[tokio::test]
async fn invalid_input_is_refused_with_the_field_named_and_nothing_is_written() {
    let server = TestServer::start().await;
    let cases = [
        (
            create_request("", "a@example.com", PASSWORD),
            "name: is required",
        ),
        (
            create_request(&"n".repeat(201), "a@example.com", PASSWORD),
            "name: must be at most 200 characters",
        ),
        (
            create_request("Acme", "not-an-email", PASSWORD),
            "owner_email: must be an email address",
        ),
        (
            create_request("Acme", "a@example.com", "short"),
            "owner_password: must be at least 15 characters",
        ),
        (
            create_request("Acme", "a@example.com", "passwordpassword"),
            "owner_password: is too common; choose another",
        ),
        (
            create_request("Acme", "a@example.com", &"x".repeat(10_000)),
            "owner_password: must be at most 256 characters",
        ),
        (
            v1::CreateOrganizationRequest {
                owner_first_name: " ".into(),
                ..create_request("Acme", "a@example.com", PASSWORD)
            },
            "owner_first_name: is required",
        ),
    ];
    for (request, message) in cases {
        let error = server
            .organizations()
            .create_organization(with_token(OPERATOR_TOKEN, request))
            .await
            .unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (Code::InvalidArgument, message)
        );
    }
    assert_eq!(server.db.count("organizations").await, 0);
    assert_eq!(server.db.count("users").await, 0);
}

#[tokio::test]
async fn an_email_taken_in_another_organization_fails_and_rolls_back() {
    let server = TestServer::start().await;
    let first = server.create_organization("First").await;
    let request = create_request("Second", &first.owner_email.to_uppercase(), PASSWORD);
    let error = server
        .organizations()
        .create_organization(with_token(OPERATOR_TOKEN, request))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::AlreadyExists, "email already in use")
    );
    // The second organisation's row and roles were written before the owner failed: all rolled back.
    assert_eq!(server.db.count("organizations").await, 1);
    assert_eq!(server.db.count("roles").await, 7);
}

#[tokio::test]
async fn only_the_operator_creates_organizations() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let request = create_request("Other", "b@example.com", PASSWORD);
    let error = server
        .organizations()
        .create_organization(request.clone())
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "authorization: missing bearer token")
    );
    let error = server
        .organizations()
        .create_organization(with_token("wrong", request.clone()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    let error = server
        .organizations()
        .create_organization(with_token(&org.owner_token, request))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::PermissionDenied, "this call needs the operator token")
    );
}

#[tokio::test]
async fn another_organizations_ids_answer_not_found() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let request = v1::GetOrganizationRequest {
        organization_id: globex.id.clone(),
    };
    let error = server
        .organizations()
        .get_organization(with_token(&acme.owner_token, request))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "organization not found")
    );
    let request = v1::CreateEntityRequest {
        organization_id: globex.id.clone(),
        name: "Sneaky".into(),
        parent_entity_id: String::new(),
    };
    let error = server
        .organizations()
        .create_entity(with_token(&acme.owner_token, request))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let request = v1::GetOrganizationRequest {
        organization_id: uuid::Uuid::now_v7().to_string(),
    };
    let error = server
        .organizations()
        .get_organization(with_token(OPERATOR_TOKEN, request))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "organization not found")
    );
    let request = v1::GetOrganizationRequest {
        organization_id: "acme".into(),
    };
    let error = server
        .organizations()
        .get_organization(with_token(OPERATOR_TOKEN, request))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "organization_id: must be a UUID")
    );
}

#[tokio::test]
async fn entities_form_legal_entities_with_segments_and_list_in_pages() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let create = |name: &str, parent: &str| v1::CreateEntityRequest {
        organization_id: org.id.clone(),
        name: name.into(),
        parent_entity_id: parent.into(),
    };
    let mut client = server.organizations();
    let legal = client
        .create_entity(with_token(&org.owner_token, create("Acme GmbH", "")))
        .await
        .unwrap()
        .into_inner();
    let legal = legal.entity.unwrap();
    assert_eq!(legal.kind(), v1::EntityKind::LegalEntity);
    let segment = client
        .create_entity(with_token(&org.owner_token, create("Retail", &legal.id)))
        .await
        .unwrap();
    let segment = segment.into_inner().entity.unwrap();
    assert_eq!(
        (segment.kind(), segment.parent_entity_id.as_str()),
        (v1::EntityKind::Segment, legal.id.as_str())
    );

    let error = client
        .create_entity(with_token(&org.owner_token, create("Deeper", &segment.id)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    let error = client
        .create_entity(with_token(
            &org.owner_token,
            create("Orphan", &uuid::Uuid::now_v7().to_string()),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "parent_entity_id not found")
    );
    let other = v1::CreateEntityRequest {
        organization_id: globex.id.clone(),
        name: "Globex Ltd".into(),
        parent_entity_id: String::new(),
    };
    let other = client
        .create_entity(with_token(&globex.owner_token, other))
        .await
        .unwrap()
        .into_inner()
        .entity
        .unwrap();
    let error = client
        .create_entity(with_token(&org.owner_token, create("Cross", &other.id)))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::NotFound,
        "another organization's entity is not a parent"
    );
    let error = client
        .create_entity(with_token(&org.owner_token, create("Bad", "42")))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "parent_entity_id: must be a UUID")
    );
    let error = client
        .create_entity(with_token(&org.owner_token, create(&"x".repeat(201), "")))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "name: must be at most 200 characters"
        )
    );

    let list = |page_token: String| v1::ListEntitiesRequest {
        organization_id: org.id.clone(),
        page_size: 1,
        page_token,
    };
    let first = client
        .list_entities(with_token(&org.owner_token, list(String::new())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first
            .entities
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        [legal.id.as_str()]
    );
    assert!(!first.next_page_token.is_empty());
    let second = client
        .list_entities(with_token(&org.owner_token, list(first.next_page_token)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second
            .entities
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        [segment.id.as_str()]
    );
    assert_eq!(second.next_page_token, "");
    let error = client
        .list_entities(with_token(&org.owner_token, list("garbage!".into())))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "page_token: malformed")
    );
}

#[tokio::test]
async fn data_survives_a_restart() {
    let server = TestServer::start().await;
    let org = server.create_organization("Durable").await;
    let jwks_before = server
        .auth()
        .get_jwks(v1::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys_json;
    let db = server.stop().await;

    let server = TestServer::start_on(db).await;
    let jwks_after = server
        .auth()
        .get_jwks(v1::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys_json;
    assert_eq!(
        jwks_before, jwks_after,
        "the signing key is persisted, not regenerated"
    );
    // A token issued before the restart still works, and so does a new sign-in.
    let request = v1::GetOrganizationRequest {
        organization_id: org.id.clone(),
    };
    let read = server
        .organizations()
        .get_organization(with_token(&org.owner_token, request))
        .await
        .unwrap();
    assert_eq!(read.into_inner().organization.unwrap().name, "Durable");
    assert!(
        !server
            .sign_in(&org.owner_email, PASSWORD)
            .await
            .access_token
            .is_empty()
    );
    let mut checks = server.authorization();
    let reply = checks
        .check_permission(with_token(
            &org.api_key,
            org.check(&org.owner_id, "payments.refund", ""),
        ))
        .await;
    assert!(reply.unwrap().into_inner().allowed);
}
