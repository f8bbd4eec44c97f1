//! NotificationService: the operator drains the outbox; acknowledged messages lose their secrets.
use std::time::Duration;

use tonic::Code;
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, TestDatabase, TestServer, grant};

#[tokio::test]
async fn acknowledged_notifications_leave_the_outbox_and_forget_their_token() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    for email in ["a@example.com", "b@example.com"] {
        let reader = vec![grant("read_only", &[])];
        server.invite(&org, &org.owner_token, email, reader).await;
    }
    let pending = server.pending_notifications().await;
    assert_eq!(
        pending
            .iter()
            .map(|n| n.recipient.as_str())
            .collect::<Vec<_>>(),
        ["a@example.com", "b@example.com"],
        "oldest first"
    );
    let token = pending[0].token.clone();

    let mut outbox = server.notifications(OPERATOR_TOKEN);
    let ack = v1::AcknowledgeNotificationsRequest {
        ids: vec![pending[0].id.clone(), uuid::Uuid::now_v7().to_string()],
    };
    let reply = outbox.acknowledge_notifications(ack.clone()).await.unwrap();
    assert_eq!(
        reply.into_inner().acknowledged_count,
        1,
        "unknown ids are ignored"
    );
    let reply = outbox.acknowledge_notifications(ack).await.unwrap();
    assert_eq!(reply.into_inner().acknowledged_count, 0);
    let pending = server.pending_notifications().await;
    assert_eq!(
        pending
            .iter()
            .map(|n| n.recipient.as_str())
            .collect::<Vec<_>>(),
        ["b@example.com"]
    );
    assert_eq!(
        server
            .db
            .count(&format!("notifications WHERE token = '{token}'"))
            .await,
        0,
        "delivered tokens are erased"
    );

    let bad = v1::AcknowledgeNotificationsRequest {
        ids: vec!["nope".into()],
    };
    let error = outbox.acknowledge_notifications(bad).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "ids[0]: must be a UUID")
    );
    let list = v1::ListPendingNotificationsRequest { page_size: 10 };
    let error = server
        .notifications(&org.owner_token)
        .list_pending_notifications(list)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::PermissionDenied, "this call needs the operator token")
    );
}

#[tokio::test]
async fn the_built_in_worker_delivers_and_acknowledges() {
    let server = TestServer::start_with(TestDatabase::fresh().await, |config| {
        config.delivery_interval_ms = Some(20)
    })
    .await;
    let org = server.create_organization("Acme").await;
    let reader = vec![grant("read_only", &[])];
    server
        .invite(&org, &org.owner_token, "a@example.com", reader)
        .await;
    let mut drained = false;
    for _ in 0..100 {
        if server.pending_notifications().await.is_empty() {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(drained, "the worker drained the outbox");
    assert_eq!(
        server
            .db
            .count("notifications WHERE acknowledged_at IS NOT NULL AND token IS NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn outbox_secrets_are_sealed_at_rest_and_erased_on_acknowledgement() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let reader = vec![grant("read_only", &[])];
    server
        .invite(&org, &org.owner_token, "sealed@example.com", reader)
        .await;
    let pending = server.pending_notifications().await;
    let plain = pending[0].token.clone();
    assert!(
        plain.len() >= 43,
        "the operator still reads the plain token"
    );

    let stored = server
        .db
        .texts("SELECT token FROM notifications WHERE token IS NOT NULL")
        .await;
    assert_eq!(stored.len(), 1);
    let stored = stored[0].clone().unwrap();
    assert!(stored.starts_with("sealed:"), "{stored}");
    assert!(!stored.contains(&plain), "the plain token is not at rest");

    server
        .notifications(OPERATOR_TOKEN)
        .acknowledge_notifications(v1::AcknowledgeNotificationsRequest {
            ids: vec![pending[0].id.clone()],
        })
        .await
        .unwrap();
    let erased = server.db.texts("SELECT token FROM notifications").await;
    assert_eq!(erased, vec![None], "acknowledged: nothing left to open");
}
