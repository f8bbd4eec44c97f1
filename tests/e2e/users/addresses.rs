//! One user per address across organisations (SPEC §2): an invitation never accepted releases its
//! address once archived or expired for 30 days, and ALREADY_EXISTS answers are budgeted and audited
//! per caller, so a tenant can neither squat addresses nor probe for them.
use std::time::Duration;

use tonic::Code;
use warden_proto::v1;
use warden_tests::{ANONYMOUS, PASSWORD, TestOrg, TestServer, accept, grant};

const DAY: u64 = 24 * 3600;

fn reader() -> Vec<v1::Grant> {
    vec![grant("read_only", &[])]
}

async fn invite(
    server: &TestServer,
    org: &TestOrg,
    token: &str,
    email: &str,
) -> Result<v1::User, tonic::Status> {
    let reply = server
        .users(token)
        .invite_user(org.invite_user(email, reader()))
        .await?;
    Ok(reply.into_inner().user.unwrap())
}

#[tokio::test]
async fn an_archived_invitation_releases_its_address_to_another_organization() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let squatted = invite(&server, &acme, &acme.owner_token, "ada@example.com")
        .await
        .unwrap();
    let error = invite(&server, &globex, &globex.owner_token, "ada@example.com")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists, "held while pending");
    server
        .users(&acme.owner_token)
        .delete_user(acme.delete_user(&squatted.id))
        .await
        .unwrap();
    let invited = invite(&server, &globex, &globex.owner_token, "ada@example.com")
        .await
        .unwrap();
    let token = server.invitation_token("ada@example.com").await;
    server
        .users(ANONYMOUS)
        .accept_invitation(accept(&token, PASSWORD))
        .await
        .unwrap();
    let joined = server.get_user(&globex, &invited.id).await;
    assert_eq!(joined.status(), v1::UserStatus::Active);
    let archived = server.get_user(&acme, &squatted.id).await;
    assert_eq!(archived.status(), v1::UserStatus::Archived);
    assert_ne!(archived.email, "ada@example.com", "the address is released");
}

#[tokio::test]
async fn an_invitation_expired_for_30_days_releases_its_address() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let minute = v1::UpdateOrganizationSettingsRequest {
        invitation_ttl_seconds: Some(60),
        ..Default::default()
    };
    server.update_settings(&acme, minute).await;
    let squatted = invite(&server, &acme, &acme.owner_token, "ada@example.com")
        .await
        .unwrap();
    server.advance(Duration::from_secs(60 + 29 * DAY));
    let globex_token = server
        .sign_in(&globex.owner_email, PASSWORD)
        .await
        .access_token;
    let error = invite(&server, &globex, &globex_token, "ada@example.com")
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::AlreadyExists,
        "expired for 29 days only"
    );
    server.advance(Duration::from_secs(DAY + 1));
    let globex_token = server
        .sign_in(&globex.owner_email, PASSWORD)
        .await
        .access_token;
    invite(&server, &globex, &globex_token, "ada@example.com")
        .await
        .unwrap();
    let acme_token = server
        .sign_in(&acme.owner_email, PASSWORD)
        .await
        .access_token;
    let archived = server
        .users(&acme_token)
        .get_user(acme.get_user(&squatted.id))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(archived.status(), v1::UserStatus::Archived);
}

#[tokio::test]
async fn an_accepted_address_is_never_released_and_conflicts_are_budgeted_and_audited() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let ada = server.member(&acme, "ada@example.com", reader()).await;
    server
        .users(&acme.owner_token)
        .delete_user(acme.delete_user(&ada.id))
        .await
        .unwrap();
    for attempt in 0..5 {
        let error = invite(&server, &globex, &globex.owner_token, "ada@example.com")
            .await
            .unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (Code::AlreadyExists, "email already in use"),
            "attempt {attempt}: accepted once, so never released"
        );
    }
    let error = invite(&server, &globex, &globex.owner_token, "other@example.com").await;
    assert!(error.is_ok(), "addresses that are free still work");
    let error = invite(&server, &globex, &globex.owner_token, "ada@example.com")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted, "the budget is spent");
    let audit = v1::ListAuditEventsRequest {
        action: "user.invitation_refused".into(),
        ..globex.list_audit_events()
    };
    let events = server
        .audit(&globex.owner_token)
        .list_audit_events(audit)
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.len(), 5, "each ALREADY_EXISTS answer is audited");
    assert!(events.iter().all(|e| e.target_id == "ada@example.com"));
    // The budget is the caller's own: the other organisation's owner is not held back by it.
    let error = invite(&server, &acme, &acme.owner_token, "other@example.com")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);
}
