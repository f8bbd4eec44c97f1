//! Editing users and the acting rules: nobody grants what they do not hold, nobody acts on someone
//! who holds more, only the owner acts on the owner (SPEC §3).
use tonic::Code;
use warden_proto::v1;
use warden_tests::{TestServer, grant};

#[tokio::test]
async fn nobody_grants_what_they_do_not_hold() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let iam = server
        .member(&org, "iam@example.com", vec![grant("iam_admin", &[])])
        .await;
    let local_admin = server
        .member(&org, "local@example.com", vec![grant("admin", &[&gmbh])])
        .await;
    let reader = server
        .member(&org, "reader@example.com", vec![grant("read_only", &[])])
        .await;
    let refusal = async |token: &str, request| {
        let error = server.users(token).invite_user(request).await.unwrap_err();
        (error.code(), error.message().to_owned())
    };

    // IAM admins manage users but do not hold payments.read, so they cannot hand out analyst.
    let analyst = org.invite_user("x@example.com", vec![grant("analyst", &[])]);
    assert_eq!(
        refusal(&iam.token, analyst).await,
        (
            Code::PermissionDenied,
            "cannot grant disputes.read on all entities: you do not hold it".into()
        )
    );
    // An admin of one legal entity grants there, not elsewhere and not everywhere.
    let on_gmbh = vec![grant("analyst", &[&gmbh])];
    server
        .invite(&org, &local_admin.token, "ok@example.com", on_gmbh)
        .await;
    let on_ltd = org.invite_user("y@example.com", vec![grant("analyst", &[&ltd])]);
    let refused = refusal(&local_admin.token, on_ltd).await;
    assert_eq!(refused.0, Code::PermissionDenied);
    let everywhere = org.invite_user("z@example.com", vec![grant("analyst", &[])]);
    let refused = refusal(&local_admin.token, everywhere).await;
    assert_eq!(refused.0, Code::PermissionDenied);
    // Without users.write nothing can be granted at all.
    let reading = org.invite_user("w@example.com", vec![grant("read_only", &[])]);
    assert_eq!(
        refusal(&reader.token, reading).await.0,
        Code::PermissionDenied
    );
    // Nobody acts on someone who holds more: the local admin cannot suspend the reader (full access).
    let error = server
        .users(&local_admin.token)
        .suspend_user(org.suspend_user(&reader.id))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    // Only the owner acts on the owner.
    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[])])
        .await;
    let error = server
        .users(&admin.token)
        .suspend_user(org.suspend_user(&org.owner_id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "only the owner can change the owner"
        )
    );
    // Escalation by edit: the local admin cannot widen the analyst they invited to full access.
    let list = v1::ListUsersRequest {
        query: "ok@".into(),
        ..org.list_users()
    };
    let invited = server.users(&org.owner_token).list_users(list).await;
    let invited = invited.unwrap().into_inner().users.remove(0);
    let widen = v1::UpdateUserRequest {
        grants: vec![grant("analyst", &[])],
        ..org.update_user(&invited.id, &["grants"])
    };
    let error = server
        .users(&local_admin.token)
        .update_user(widen)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn editing_a_user_changes_names_and_grants_and_their_next_check() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[&gmbh])])
        .await;
    let refund = async || {
        server
            .decide(&org, &alan.id, "payments.refund", &gmbh)
            .await
    };
    assert!(!refund().await.allowed);
    let update = v1::UpdateUserRequest {
        first_name: "Alan M.".into(),
        last_name: "Turing".into(),
        grants: vec![grant("read_only", &[&gmbh])],
        direct_permissions: vec![v1::DirectPermission {
            permission: "payments.refund".into(),
            entity_ids: vec![gmbh.clone()],
            all_entities: false,
        }],
        update_mask: None,
        ..org.update_user(&alan.id, &[])
    };
    let mut owner = server.users(&org.owner_token);
    let updated = owner.update_user(update).await.unwrap().into_inner();
    let updated = updated.user.unwrap();
    assert_eq!(
        (
            updated.first_name.as_str(),
            updated.direct_permissions.len()
        ),
        ("Alan M.", 1)
    );
    let decision = refund().await;
    assert_eq!(
        (decision.allowed, decision.reason.as_str()),
        (true, "allowed by a direct permission on this entity")
    );

    let bad_mask = org.update_user(&alan.id, &["email"]);
    let error = owner.update_user(bad_mask).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::InvalidArgument,
            "update_mask: unknown field \"email\""
        )
    );
    let owner_grants = v1::UpdateUserRequest {
        grants: vec![grant("admin", &[])],
        ..org.update_user(&org.owner_id, &["grants"])
    };
    let error = owner.update_user(owner_grants).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
}
