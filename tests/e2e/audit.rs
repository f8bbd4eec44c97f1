//! AuditService: every change and sign-in leaves a row, filtered and paged, without secrets.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{PASSWORD, TestServer, grant};

#[tokio::test]
async fn changes_and_sign_ins_are_audited_with_actor_target_and_origin() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("analyst", &[])])
        .await;
    server
        .sign_in_error("alan@example.com", "not alan's password at all")
        .await;
    let suspend = org.suspend_user(&alan.id);
    server
        .users(&org.owner_token)
        .suspend_user(suspend)
        .await
        .unwrap();

    let mut audit = server.audit(&org.owner_token);
    let list = |action: &str, page_size: i32, page_token: String| v1::ListAuditEventsRequest {
        action: action.into(),
        page_size,
        page_token,
        ..org.list_audit_events()
    };
    // The failed sign-in is recorded off the response path: give it a moment.
    let mut events = Vec::new();
    for _ in 0..50 {
        events = audit
            .list_audit_events(list("", 500, String::new()))
            .await
            .unwrap()
            .into_inner()
            .events;
        if events.iter().any(|e| e.action == "user.sign_in_failed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for expected in [
        "organization.created",
        "api_key.created",
        "user.invited",
        "user.invitation_accepted",
        "user.signed_in",
        "user.sign_in_failed",
        "user.suspended",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    let invited = events.iter().find(|e| e.action == "user.invited").unwrap();
    assert_eq!(
        (invited.actor_user_id.as_str(), invited.actor_kind.as_str()),
        (org.owner_id.as_str(), "user")
    );
    assert_eq!(
        (invited.target_type.as_str(), invited.target_id.as_str()),
        ("user", alan.id.as_str())
    );
    assert_eq!(invited.client_address, "127.0.0.1");
    assert!(
        invited.user_agent.contains("tonic"),
        "{}",
        invited.user_agent
    );
    assert!(
        invited.after_json.contains("\"role_id\":\"analyst\""),
        "{}",
        invited.after_json
    );
    let suspended = events
        .iter()
        .find(|e| e.action == "user.suspended")
        .unwrap();
    assert!(suspended.before_json.contains("\"status\":\"active\""));

    // Filters and pages.
    let only = audit.list_audit_events(list("user.suspended", 0, String::new()));
    assert_eq!(only.await.unwrap().into_inner().events.len(), 1);
    let by_target = v1::ListAuditEventsRequest {
        target_id: alan.id.clone(),
        ..org.list_audit_events()
    };
    let by_target = audit.list_audit_events(by_target).await.unwrap();
    let by_target = by_target.into_inner().events;
    assert!(by_target.iter().all(|e| e.target_id == alan.id) && by_target.len() >= 4);
    let first = audit.list_audit_events(list("", 2, String::new())).await;
    let first = first.unwrap().into_inner();
    let second = audit.list_audit_events(list("", 2, first.next_page_token.clone()));
    let second = second.await.unwrap().into_inner();
    assert_eq!(first.events.len(), 2);
    assert!(
        second
            .events
            .iter()
            .all(|e| first.events.iter().all(|f| f.id != e.id))
    );
    assert!(first.events[0].id > second.events[0].id, "newest first");

    // No secret reaches the log.
    let everything: String = events
        .iter()
        .map(|e| format!("{} {}", e.before_json, e.after_json))
        .collect();
    assert!(!everything.contains(PASSWORD) && !everything.contains("argon2"));
    assert_eq!(
        server
            .db
            .count(
                "audit_events WHERE after_json LIKE '%password%' OR before_json LIKE '%password%'"
            )
            .await,
        0
    );
}

#[tokio::test]
async fn reading_the_audit_log_needs_audit_read() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let developer = server
        .member(&org, "dev@example.com", vec![grant("developer", &[])])
        .await;
    let error = server
        .audit(&developer.token)
        .list_audit_events(org.list_audit_events())
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::PermissionDenied, "requires audit.read")
    );
    let other = server.create_organization("Globex").await;
    let error = server
        .audit(&org.owner_token)
        .list_audit_events(other.list_audit_events())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}
