//! Decisions are cached per replica, and never stale: a change acknowledged by one replica is seen
//! by the very next check on another, whose cache was warm (SPEC §5).
use warden_proto::v1;
use warden_tests::{TestDatabase, TestServer, grant, update_mask};

#[tokio::test]
async fn a_change_on_one_replica_is_seen_by_the_next_check_on_another() {
    let db = TestDatabase::fresh().await;
    let replica_db = db.replica();
    let writer = TestServer::start_on(db).await;
    let reader = TestServer::start_on(replica_db).await;
    let org = writer.create_organization("Acme").await;
    let role = writer
        .roles(&org.owner_token)
        .create_role(v1::CreateRoleRequest {
            organization_id: org.id.clone(),
            name: "Refunder".into(),
            description: "refunds".into(),
            permissions: vec!["payments.read".into(), "payments.refund".into()],
        })
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    let alan = writer
        .member(&org, "alan@example.com", vec![grant(&role.id, &[])])
        .await;
    let refund = async || {
        reader
            .decide(&org, &alan.id, "payments.refund", "")
            .await
            .allowed
    };
    for _ in 0..3 {
        assert!(refund().await, "warm on the reader");
    }

    // Suspension on the writer: the reader's next check denies.
    let mut users = writer.users(&org.owner_token);
    users
        .suspend_user(org.suspend_user(&alan.id))
        .await
        .unwrap();
    assert!(!refund().await, "suspended");
    users
        .restore_user(org.restore_user(&alan.id))
        .await
        .unwrap();
    assert!(refund().await, "restored");

    // A role edit on the writer reaches every holder on the reader at once.
    writer
        .roles(&org.owner_token)
        .update_role(v1::UpdateRoleRequest {
            organization_id: org.id.clone(),
            role_id: role.id.clone(),
            permissions: vec!["payments.read".into()],
            update_mask: update_mask(&["permissions"]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!refund().await, "the role no longer grants refunds");
    assert!(
        reader
            .decide(&org, &alan.id, "payments.read", "")
            .await
            .allowed
    );
}
