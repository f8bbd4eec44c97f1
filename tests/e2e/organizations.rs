//! OrganizationService: bootstrap, validation, tenancy, the entity tree, restarts.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{ANONYMOUS, OPERATOR_TOKEN, PASSWORD, TestServer};

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
    let mut operator = server.organizations(OPERATOR_TOKEN);
    let reply = operator
        .create_organization(create_request("Acme", " Grace@Example.com ", PASSWORD))
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
        .organizations(&token)
        .get_organization(request.clone())
        .await
        .unwrap();
    assert_eq!(read.into_inner().organization.unwrap().id, organization.id);
    let read = operator.get_organization(request).await.unwrap();
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
    let mut operator = server.organizations(OPERATOR_TOKEN);
    for (request, message) in cases {
        let error = operator.create_organization(request).await.unwrap_err();
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
        .organizations(OPERATOR_TOKEN)
        .create_organization(request)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::AlreadyExists, "email already in use")
    );
    // The second organisation's row and roles were written before the owner failed: all rolled back.
    assert_eq!(server.db.count("organizations").await, 1);
    assert_eq!(server.db.count("roles").await, 10); // The first organisation's predefined roles.
}

#[tokio::test]
async fn only_the_operator_creates_organizations() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let request = create_request("Other", "b@example.com", PASSWORD);
    let refusal = async |token: &str| {
        let mut organizations = server.organizations(token);
        let reply = organizations.create_organization(request.clone()).await;
        reply.unwrap_err()
    };
    let error = refusal(ANONYMOUS).await;
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "authorization: missing bearer token")
    );
    assert_eq!(refusal("wrong").await.code(), Code::Unauthenticated);
    let error = refusal(&org.owner_token).await;
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
    let mut acme_owner = server.organizations(&acme.owner_token);
    let error = acme_owner
        .get_organization(globex.get_organization())
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "organization not found")
    );
    let sneaky = globex.create_entity("Sneaky", "");
    let error = acme_owner.create_entity(sneaky).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let mut operator = server.organizations(OPERATOR_TOKEN);
    let request = v1::GetOrganizationRequest {
        organization_id: uuid::Uuid::now_v7().to_string(),
    };
    let error = operator.get_organization(request).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "organization not found")
    );
    let request = v1::GetOrganizationRequest {
        organization_id: "acme".into(),
    };
    let error = operator.get_organization(request).await.unwrap_err();
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
    let create = |name: &str, parent: &str| org.create_entity(name, parent);
    let mut client = server.organizations(&org.owner_token);
    let legal = client
        .create_entity(create("Acme GmbH", ""))
        .await
        .unwrap()
        .into_inner();
    let legal = legal.entity.unwrap();
    assert_eq!(legal.kind(), v1::EntityKind::LegalEntity);
    let segment = client
        .create_entity(create("Retail", &legal.id))
        .await
        .unwrap();
    let segment = segment.into_inner().entity.unwrap();
    assert_eq!(
        (segment.kind(), segment.parent_entity_id.as_str()),
        (v1::EntityKind::Segment, legal.id.as_str())
    );

    let error = client
        .create_entity(create("Deeper", &segment.id))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    let error = client
        .create_entity(create("Orphan", &uuid::Uuid::now_v7().to_string()))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "parent_entity_id not found")
    );
    let other = server.create_entity(&globex, "Globex Ltd", "").await;
    let error = client
        .create_entity(create("Cross", &other))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::NotFound,
        "another organization's entity is not a parent"
    );
    let error = client.create_entity(create("Bad", "42")).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "parent_entity_id: must be a UUID")
    );
    let error = client
        .create_entity(create(&"x".repeat(201), ""))
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
        administrable_only: false,
    };
    let first = client.list_entities(list(String::new())).await.unwrap();
    let first = first.into_inner();
    assert_eq!(
        first
            .entities
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        [legal.id.as_str()]
    );
    assert!(!first.next_page_token.is_empty());
    let second = client.list_entities(list(first.next_page_token)).await;
    let second = second.unwrap().into_inner();
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
        .list_entities(list("garbage!".into()))
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
        .auth(ANONYMOUS)
        .get_jwks(v1::GetJwksRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys_json;
    let db = server.stop().await;

    let server = TestServer::start_on(db).await;
    let jwks_after = server
        .auth(ANONYMOUS)
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
    let read = server
        .organizations(&org.owner_token)
        .get_organization(org.get_organization())
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
    let decision = server.decide(&org, &org.owner_id, "payments.refund", "");
    assert!(decision.await.allowed);
}
