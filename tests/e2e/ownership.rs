//! Ownership: exactly one owner, transferred with the owner's password, reassigned by the operator.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, PASSWORD, TestServer, grant};

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
    let mut owner = server.users(&org.owner_token);
    let transfer = |to: &str, password: &str| v1::TransferOwnershipRequest {
        organization_id: org.id.clone(),
        new_owner_user_id: to.into(),
        password: password.into(),
    };
    let error = owner
        .transfer_ownership(transfer(&admin.id, "not the owner's password"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "password: incorrect")
    );
    let error = owner
        .transfer_ownership(transfer(&analyst.id, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "new_owner_user_id: must be an active admin"
        )
    );
    let mut by_admin = server.users(&admin.token);
    let error = by_admin
        .transfer_ownership(transfer(&admin.id, PASSWORD))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "only the owner can transfer ownership"
        )
    );

    let new_owner = owner
        .transfer_ownership(transfer(&admin.id, PASSWORD))
        .await
        .unwrap();
    let new_owner = new_owner.into_inner().owner.unwrap();
    assert_eq!(
        (new_owner.id.as_str(), new_owner.owner),
        (admin.id.as_str(), true)
    );
    let previous = by_admin.get_user(org.get_user(&org.owner_id)).await;
    let previous = previous.unwrap().into_inner().user.unwrap();
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
    let error = owner
        .suspend_user(org.suspend_user(&admin.id))
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
    let mut operator = server.organizations(OPERATOR_TOKEN);
    let reassign = v1::ReassignOwnershipRequest {
        organization_id: org.id.clone(),
        new_owner_user_id: admin.id.clone(),
    };
    let error = server
        .organizations(&org.owner_token)
        .reassign_ownership(reassign.clone())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied, "operator only");
    let owner = operator
        .reassign_ownership(reassign)
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
    let error = operator.reassign_ownership(unknown).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let audit = v1::ListAuditEventsRequest {
        action: "organization.ownership_reassigned".into(),
        ..org.list_audit_events()
    };
    let events = server
        .audit(&admin.token)
        .list_audit_events(audit)
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
        let mut operator = server.organizations(OPERATOR_TOKEN);
        let request = v1::ReassignOwnershipRequest {
            organization_id: org.id.clone(),
            new_owner_user_id: to.into(),
        };
        async move { operator.reassign_ownership(request).await }
    };
    let (a, b) = tokio::join!(reassign(&first.id), reassign(&second.id));
    assert!(a.is_ok() || b.is_ok());
    assert_eq!(server.db.count("users WHERE owner_of IS NOT NULL").await, 1);
    assert_eq!(
        server.db.count("user_grants WHERE role_id = 'owner'").await,
        1
    );
}

#[tokio::test]
async fn of_four_concurrent_transfers_by_the_owner_exactly_one_succeeds() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut admins = vec![];
    for n in 0..4 {
        let email = format!("admin{n}@example.com");
        admins.push(server.member(&org, &email, vec![grant("admin", &[])]).await);
    }
    let transfers = admins.iter().map(|admin| {
        let mut owner = server.users(&org.owner_token);
        let request = v1::TransferOwnershipRequest {
            organization_id: org.id.clone(),
            new_owner_user_id: admin.id.clone(),
            password: PASSWORD.into(),
        };
        tokio::spawn(async move { owner.transfer_ownership(request).await })
    });
    let handles: Vec<_> = transfers.collect();
    let mut answers = vec![];
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    let won: Vec<_> = answers.iter().filter(|answer| answer.is_ok()).collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for answer in &answers {
        if let Err(status) = answer {
            assert!(
                matches!(
                    status.code(),
                    Code::FailedPrecondition | Code::PermissionDenied | Code::Unauthenticated
                ),
                "{status:?}"
            );
        }
    }
    let owners: Vec<_> = server
        .users(&org.owner_token)
        .list_users(v1::ListUsersRequest {
            organization_id: org.id.clone(),
            ..Default::default()
        })
        .await
        .map(|reply| reply.into_inner().users)
        .unwrap_or_default()
        .into_iter()
        .filter(|user| user.owner)
        .collect();
    // The old owner's session may no longer list users as owner; the database tells the truth.
    assert!(owners.len() <= 1, "{owners:?}");
    assert_eq!(server.db.count("users WHERE owner_of IS NOT NULL").await, 1);
}
