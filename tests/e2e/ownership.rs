//! Ownership: exactly one owner, transferred with the owner's password, reassigned by the operator.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, PASSWORD, TestServer, grant, with_token};

#[tokio::test]
async fn the_owner_transfers_ownership_to_an_active_admin_with_their_password() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[])])
        .await;
    let analyst = server
        .member(&org, "analyst@example.com", vec![grant("analyst", &[])])
        .await;
    let mut users = server.users();
    let transfer = |to: &str, password: &str| v1::TransferOwnershipRequest {
        organization_id: org.id.clone(),
        new_owner_user_id: to.into(),
        password: password.into(),
    };
    let error = users
        .transfer_ownership(with_token(
            &org.owner_token,
            transfer(&admin.id, "not the owner's password"),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "password: incorrect")
    );
    let error = users
        .transfer_ownership(with_token(
            &org.owner_token,
            transfer(&analyst.id, PASSWORD),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "new_owner_user_id: must be an active admin"
        )
    );
    let error = users
        .transfer_ownership(with_token(&admin.token, transfer(&admin.id, PASSWORD)))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "only the owner can transfer ownership"
        )
    );

    let owner = users
        .transfer_ownership(with_token(&org.owner_token, transfer(&admin.id, PASSWORD)))
        .await
        .unwrap();
    let owner = owner.into_inner().owner.unwrap();
    assert_eq!((owner.id.as_str(), owner.owner), (admin.id.as_str(), true));
    let get = |id: &str| v1::GetUserRequest {
        organization_id: org.id.clone(),
        user_id: id.into(),
    };
    let previous = users
        .get_user(with_token(&admin.token, get(&org.owner_id)))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (previous.owner, previous.grants),
        (false, vec![grant("admin", &[])]),
        "the previous owner becomes admin"
    );
    assert_eq!(
        server.db.count("users WHERE owner_of IS NOT NULL").await,
        1,
        "exactly one owner"
    );

    // The new owner can now act on the old one; the old one cannot act on the new one.
    let suspend = v1::SuspendUserRequest {
        organization_id: org.id.clone(),
        user_id: admin.id.clone(),
    };
    let error = users
        .suspend_user(with_token(&org.owner_token, suspend))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_operator_reassigns_ownership_when_the_owner_has_left() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[])])
        .await;
    let mut organizations = server.organizations();
    let reassign = v1::ReassignOwnershipRequest {
        organization_id: org.id.clone(),
        new_owner_user_id: admin.id.clone(),
    };
    let error = organizations
        .reassign_ownership(with_token(&org.owner_token, reassign.clone()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "operator only");
    let owner = organizations
        .reassign_ownership(with_token(OPERATOR_TOKEN, reassign))
        .await
        .unwrap()
        .into_inner()
        .owner
        .unwrap();
    assert!(owner.owner);
    let unknown = v1::ReassignOwnershipRequest {
        organization_id: org.id.clone(),
        new_owner_user_id: uuid::Uuid::now_v7().to_string(),
    };
    let error = organizations
        .reassign_ownership(with_token(OPERATOR_TOKEN, unknown))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let audit = v1::ListAuditEventsRequest {
        organization_id: org.id.clone(),
        action: "organization.ownership_reassigned".into(),
        ..Default::default()
    };
    let events = server
        .audit()
        .list_audit_events(with_token(&admin.token, audit))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        events
            .iter()
            .map(|e| e.actor_kind.as_str())
            .collect::<Vec<_>>(),
        ["operator"]
    );
}

#[tokio::test]
async fn concurrent_transfers_leave_exactly_one_owner() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let first = server
        .member(&org, "first@example.com", vec![grant("admin", &[])])
        .await;
    let second = server
        .member(&org, "second@example.com", vec![grant("admin", &[])])
        .await;
    let reassign = |to: &str| {
        let mut organizations = server.organizations();
        let request = v1::ReassignOwnershipRequest {
            organization_id: org.id.clone(),
            new_owner_user_id: to.into(),
        };
        async move {
            organizations
                .reassign_ownership(with_token(OPERATOR_TOKEN, request))
                .await
        }
    };
    let (a, b) = tokio::join!(reassign(&first.id), reassign(&second.id));
    assert!(a.is_ok() || b.is_ok());
    assert_eq!(server.db.count("users WHERE owner_of IS NOT NULL").await, 1);
    assert_eq!(
        server.db.count("user_grants WHERE role_id = 'owner'").await,
        1
    );
}
