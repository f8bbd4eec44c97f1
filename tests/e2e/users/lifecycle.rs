//! The user lifecycle: suspension ends sessions and checks at once, a restore brings the same grants
//! back, deletion archives for good.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{PASSWORD, TestServer, grant};

#[tokio::test]
async fn suspension_ends_sessions_and_checks_at_once_and_restore_brings_back_the_same_grants() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("analyst", &[])])
        .await;
    let mut owner = server.users(&org.owner_token);
    let allowed = async || server.decide(&org, &alan.id, "payments.read", "").await;
    assert!(allowed().await.allowed);

    let suspended = owner
        .suspend_user(org.suspend_user(&alan.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(suspended.user.unwrap().status(), v1::UserStatus::Suspended);
    let decision = allowed().await;
    assert_eq!(
        (decision.allowed, decision.reason.as_str()),
        (false, "user is not active")
    );
    let error = server
        .organizations(&alan.token)
        .get_organization(org.get_organization())
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "session ended; sign in again")
    );
    let error = server.sign_in_error("alan@example.com", PASSWORD).await;
    assert_eq!(error.code(), Code::Unauthenticated);
    let error = owner
        .suspend_user(org.suspend_user(&alan.id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "user: is suspended")
    );

    let restored = owner
        .restore_user(org.restore_user(&alan.id))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (restored.status(), restored.grants),
        (v1::UserStatus::Active, vec![grant("analyst", &[])])
    );
    assert!(allowed().await.allowed);
    let error = server
        .organizations(&alan.token)
        .get_organization(org.get_organization())
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::Unauthenticated,
        "old sessions stay dead after a restore"
    );
    let fresh = server.sign_in("alan@example.com", PASSWORD).await;
    let read = server
        .organizations(&fresh.access_token)
        .get_organization(org.get_organization())
        .await;
    assert!(read.is_ok());

    let error = owner
        .suspend_user(org.suspend_user(&org.owner_id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "you cannot suspend yourself")
    );
}

#[tokio::test]
async fn deleted_users_are_archived_for_good() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let mut owner = server.users(&org.owner_token);
    let deleted = owner
        .delete_user(org.delete_user(&alan.id))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(deleted.status(), v1::UserStatus::Archived);
    let error = server.sign_in_error("alan@example.com", PASSWORD).await;
    assert_eq!(error.code(), Code::Unauthenticated);
    let error = owner
        .restore_user(org.restore_user(&alan.id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::FailedPrecondition, "user: is archived")
    );
    let error = owner
        .delete_user(org.delete_user(&alan.id))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    let rename = v1::UpdateUserRequest {
        first_name: "New".into(),
        ..org.update_user(&alan.id, &["first_name"])
    };
    let error = owner.update_user(rename).await.unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);

    let listed = owner.list_users(org.list_users()).await.unwrap();
    assert!(
        listed.into_inner().users.iter().all(|u| u.id != alan.id),
        "archived users leave the default list"
    );
    let archived_tab = v1::ListUsersRequest {
        status: v1::UserStatus::Archived as i32,
        ..org.list_users()
    };
    let listed = owner.list_users(archived_tab).await.unwrap().into_inner();
    assert_eq!(
        listed
            .users
            .iter()
            .map(|u| u.id.as_str())
            .collect::<Vec<_>>(),
        [alan.id.as_str()]
    );
    let again = org.invite_user("alan@example.com", vec![grant("read_only", &[])]);
    let error = owner.invite_user(again).await.unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists, "deletion frees nothing");
}
