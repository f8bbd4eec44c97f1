//! Machine-readable errors: every error status carries `google.rpc.ErrorInfo` with domain `warden`,
//! a reason from `warden.v1.ErrorReason` and the field at fault, so clients never parse messages.
use tonic::Code;
use tonic_types::StatusExt as _;
use warden_proto::v1;
use warden_tests::{TestServer, grant};

fn reason(status: &tonic::Status) -> (Code, String, String, Option<String>) {
    let info = status
        .get_details_error_info()
        .expect("an ErrorInfo detail");
    (
        status.code(),
        info.domain,
        info.reason,
        info.metadata
            .get("field")
            .or(info.metadata.get("permission"))
            .cloned(),
    )
}

#[tokio::test]
async fn errors_carry_a_reason_and_the_field_or_permission_at_fault() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let invite = |email: &str, role: &str| v1::InviteUserRequest {
        organization_id: org.id.clone(),
        email: email.into(),
        first_name: "Grace".into(),
        last_name: "Hopper".into(),
        grants: vec![grant(role, &[])],
        ..Default::default()
    };
    let malformed = server
        .users(&org.owner_token)
        .invite_user(invite("not-an-email", "read_only"))
        .await
        .unwrap_err();
    assert_eq!(
        reason(&malformed),
        (
            Code::InvalidArgument,
            "warden".into(),
            "INVALID_FIELD".into(),
            Some("email".into())
        )
    );

    // A read-only member who tries to invite with more than they hold.
    let member = server
        .member(&org, "ro@example.com", vec![grant("read_only", &[])])
        .await;
    let denied = server
        .users(&member.token)
        .invite_user(invite("new@example.com", "admin"))
        .await
        .unwrap_err();
    let (code, domain, why, permission) = reason(&denied);
    assert_eq!((code, domain.as_str()), (Code::PermissionDenied, "warden"));
    assert_eq!(why, "ESCALATION");
    assert!(
        permission.is_some_and(|key| !key.is_empty()),
        "names the missing permission"
    );

    server
        .users(&org.owner_token)
        .invite_user(invite("twice@example.com", "read_only"))
        .await
        .unwrap();
    let taken = server
        .users(&org.owner_token)
        .invite_user(invite("twice@example.com", "read_only"))
        .await
        .unwrap_err();
    assert_eq!(
        reason(&taken),
        (
            Code::AlreadyExists,
            "warden".into(),
            "EMAIL_IN_USE".into(),
            Some("email".into())
        )
    );

    let unauthenticated = server
        .organizations("not-a-token")
        .get_organization(v1::GetOrganizationRequest {
            organization_id: org.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&unauthenticated).2, "UNAUTHENTICATED");
}
