//! AuditService: every change and sign-in leaves a row, filtered and paged, without secrets.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{PASSWORD, TestServer, grant, with_token};

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
    let suspend = v1::SuspendUserRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
    };
    server
        .users()
        .suspend_user(with_token(&org.owner_token, suspend))
        .await
        .unwrap();

    let mut audit = server.audit();
    let list = |action: &str, page_size: i32, page_token: String| v1::ListAuditEventsRequest {
        organization_id: org.id.clone(),
        action: action.into(),
        page_size,
        page_token,
        ..Default::default()
    };
    // The failed sign-in is recorded off the response path: give it a moment.
    let mut events = Vec::new();
    for _ in 0..50 {
        events = audit
            .list_audit_events(with_token(&org.owner_token, list("", 500, String::new())))
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
    let only = audit
        .list_audit_events(with_token(
            &org.owner_token,
            list("user.suspended", 0, String::new()),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only.events.len(), 1);
    let by_target = v1::ListAuditEventsRequest {
        organization_id: org.id.clone(),
        target_id: alan.id.clone(),
        ..Default::default()
    };
    let by_target = audit
        .list_audit_events(with_token(&org.owner_token, by_target))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(by_target.iter().all(|e| e.target_id == alan.id) && by_target.len() >= 4);
    let first = audit
        .list_audit_events(with_token(&org.owner_token, list("", 2, String::new())))
        .await
        .unwrap()
        .into_inner();
    let second = audit
        .list_audit_events(with_token(
            &org.owner_token,
            list("", 2, first.next_page_token),
        ))
        .await
        .unwrap()
        .into_inner();
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
    let list = v1::ListAuditEventsRequest {
        organization_id: org.id.clone(),
        ..Default::default()
    };
    let error = server
        .audit()
        .list_audit_events(with_token(&developer.token, list))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::PermissionDenied, "requires audit.read")
    );
    let other = server.create_organization("Globex").await;
    let list = v1::ListAuditEventsRequest {
        organization_id: other.id.clone(),
        ..Default::default()
    };
    let error = server
        .audit()
        .list_audit_events(with_token(&org.owner_token, list))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}
