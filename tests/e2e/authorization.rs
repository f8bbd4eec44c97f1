//! AuthorizationService: decisions for API-key callers, scoped to entities and organisations.
use tonic::Code;
use warden_proto::v1::{self, consistency::Requirement};
use warden_tests::{OPERATOR_TOKEN, TestServer};

#[tokio::test]
async fn the_owner_is_allowed_and_unknown_subjects_or_entities_are_denied() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Globex").await;
    let entity = server.create_entity(&org, "Acme GmbH", "").await;
    let foreign = server.create_entity(&other, "Globex Ltd", "").await;
    let mut checks = server.authorization(&org.api_key);
    let decide = async |request: v1::CheckPermissionRequest| {
        let reply = checks.clone().check_permission(request).await;
        reply.unwrap().into_inner()
    };
    let allowed = decide(org.check(&org.owner_id, "payments.refund", "")).await;
    assert_eq!(
        (allowed.allowed, allowed.reason.as_str()),
        (true, "allowed by role owner on all entities")
    );
    assert!(
        decide(org.check(&org.owner_id, "payments.refund", &entity))
            .await
            .allowed
    );
    let denied = decide(org.check(&org.owner_id, "payments.refund", &foreign)).await;
    assert_eq!(
        (denied.allowed, denied.reason.as_str()),
        (false, "entity not found in the organization")
    );
    let denied = decide(org.check(&other.owner_id, "payments.read", "")).await;
    assert_eq!(
        (denied.allowed, denied.reason.as_str()),
        (false, "user not found in the organization")
    );
    let quiet = decide(v1::CheckPermissionRequest {
        explain: false,
        ..org.check(&org.owner_id, "payments.read", "")
    })
    .await;
    assert_eq!((quiet.allowed, quiet.reason.as_str()), (true, ""));

    let effective = v1::ListEffectivePermissionsRequest {
        organization_id: org.id.clone(),
        user_id: org.owner_id.clone(),
        entity_id: entity.clone(),
        consistency: None,
    };
    let effective = checks.list_effective_permissions(effective).await;
    let effective = effective.unwrap().into_inner();
    let request = v1::ListPermissionsRequest {
        page_size: 500,
        page_token: String::new(),
    };
    let catalogue = server
        .roles(&org.owner_token)
        .list_permissions(request)
        .await
        .unwrap();
    let catalogue: Vec<String> = catalogue
        .into_inner()
        .permissions
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(
        effective.permissions, catalogue,
        "the owner holds the whole catalogue, in catalogue order"
    );
}

#[tokio::test]
async fn malformed_checks_name_the_field() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut checks = server.authorization(&org.api_key);
    let cases = [
        (
            org.check(&org.owner_id, "payments.teleport", ""),
            "permission: unknown key",
        ),
        (org.check(&org.owner_id, "", ""), "permission: is required"),
        (
            org.check("42", "payments.read", ""),
            "user_id: must be a UUID",
        ),
        (
            org.check(&org.owner_id, "payments.read", "acme"),
            "entity_id: must be a UUID",
        ),
        (
            v1::CheckPermissionRequest {
                consistency: Some(v1::Consistency {
                    requirement: Some(Requirement::AtLeastAsFresh("stale?".into())),
                }),
                ..org.check(&org.owner_id, "payments.read", "")
            },
            "consistency.at_least_as_fresh: malformed token",
        ),
    ];
    for (request, message) in cases {
        let error = checks.check_permission(request).await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (Code::InvalidArgument, message)
        );
    }
}

#[tokio::test]
async fn a_write_consistency_token_is_accepted_by_the_next_check() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let reply = server
        .organizations(&org.owner_token)
        .create_entity(org.create_entity("New", ""))
        .await
        .unwrap()
        .into_inner();
    let request = v1::CheckPermissionRequest {
        consistency: Some(v1::Consistency {
            requirement: Some(Requirement::AtLeastAsFresh(reply.consistency_token)),
        }),
        ..org.check(&org.owner_id, "payments.read", &reply.entity.unwrap().id)
    };
    let reply = server
        .authorization(&org.api_key)
        .check_permission(request)
        .await
        .unwrap();
    assert!(
        reply.into_inner().allowed,
        "the entity created by the write is visible to the check"
    );
}

#[tokio::test]
async fn batches_answer_in_order_and_name_the_failing_index() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let stranger = uuid::Uuid::now_v7().to_string();
    let batch = v1::CheckPermissionsRequest {
        checks: vec![
            org.check(&org.owner_id, "payments.read", ""),
            org.check(&stranger, "payments.read", ""),
            org.check(&org.owner_id, "audit.read", ""),
        ],
    };
    let mut checks = server.authorization(&org.api_key);
    let results = checks.check_permissions(batch).await.unwrap();
    let results = results.into_inner().results;
    assert_eq!(
        results.iter().map(|r| r.allowed).collect::<Vec<_>>(),
        [true, false, true]
    );

    let bad = v1::CheckPermissionsRequest {
        checks: vec![
            org.check(&org.owner_id, "payments.read", ""),
            org.check(&org.owner_id, "nope.nope", ""),
        ],
    };
    let error = checks.check_permissions(bad).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "checks[1].permission: unknown key")
    );
    let empty = v1::CheckPermissionsRequest { checks: vec![] };
    let error = checks.check_permissions(empty).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "checks: must hold 1 to 1000 checks")
    );
    let too_many = v1::CheckPermissionsRequest {
        checks: vec![org.check(&org.owner_id, "payments.read", ""); 1001],
    };
    let error = checks.check_permissions(too_many).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_api_key_asks_only_about_its_own_organization_and_users_cannot_ask() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let error = server
        .authorization(&acme.api_key)
        .check_permission(globex.check(&globex.owner_id, "payments.read", ""))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "organization not found")
    );
    let error = server
        .authorization(&acme.owner_token)
        .check_permission(acme.check(&acme.owner_id, "payments.read", ""))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let mut operator = server.authorization(OPERATOR_TOKEN);
    let reply = operator
        .check_permission(globex.check(&globex.owner_id, "payments.read", ""))
        .await;
    assert!(
        reply.unwrap().into_inner().allowed,
        "the operator may ask about any organization"
    );
    let mut unknown = acme.check(&acme.owner_id, "payments.read", "");
    unknown.organization_id = uuid::Uuid::now_v7().to_string();
    let error = operator.check_permission(unknown).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}
