//! MoveUserToOrganization (SPEC §2): the operator moves a person, with their password and factors,
//! to another organisation; the old one keeps nothing that allows them anything.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, PASSWORD, TestOrg, TestServer, grant};

fn movement(
    from: &TestOrg,
    user: &str,
    to: &TestOrg,
    grants: Vec<v1::Grant>,
) -> v1::MoveUserToOrganizationRequest {
    v1::MoveUserToOrganizationRequest {
        organization_id: from.id.clone(),
        user_id: user.into(),
        target_organization_id: to.id.clone(),
        grants,
        direct_permissions: vec![],
    }
}

/// The actions of `org`'s audit log, newest first, as its owner reads them.
async fn audited(server: &TestServer, org: &TestOrg, token: &str) -> Vec<v1::AuditEvent> {
    let reply = server
        .audit(token)
        .list_audit_events(org.list_audit_events())
        .await;
    let events = reply.expect("audit").into_inner().events;
    events
        .into_iter()
        .filter(|event| event.action.starts_with("user.moved"))
        .collect()
}

#[tokio::test]
async fn a_moved_user_keeps_password_and_factors_loses_the_old_organisation_and_both_logs_say_so() {
    let server = TestServer::start().await;
    let (acme, globex) = (
        server.create_organization("Acme").await,
        server.create_organization("Globex").await,
    );
    let alan = server
        .member(
            &acme,
            "alan@example.com",
            vec![grant("compliance_operator", &[])],
        )
        .await;
    let mut groups = server.groups(&acme.owner_token);
    let group = groups
        .create_group(acme.create_group("Finance", vec![grant("analyst", &[])]))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    groups
        .add_group_member(acme.add_group_member(&group.id, &alan.id))
        .await
        .unwrap();
    let factor = v1::EnrollSecondFactorRequest {
        method: v1::SecondFactorMethod::Totp as i32,
        ..Default::default()
    };
    server
        .auth(&alan.token)
        .enroll_second_factor(factor)
        .await
        .unwrap();
    assert!(server.decide(&acme, &alan.id, "pii.read", "").await.allowed);

    let moved = server
        .users(OPERATOR_TOKEN)
        .move_user_to_organization(movement(
            &acme,
            &alan.id,
            &globex,
            vec![grant("read_only", &[])],
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(
        (moved.id.as_str(), moved.organization_id.as_str()),
        (alan.id.as_str(), globex.id.as_str())
    );

    // The old organisation: no grant, no group, no session; the user is not even found there.
    for permission in ["pii.read", "payments.read", "compliance.write"] {
        let decision = server.decide(&acme, &alan.id, permission, "").await;
        assert!(
            !decision.allowed,
            "{permission} still allowed in the old organisation"
        );
    }
    let error = server
        .users(&acme.owner_token)
        .get_user(acme.get_user(&alan.id))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = server
        .auth(&alan.token)
        .list_second_factors(v1::ListSecondFactorsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated, "the old session ended");
    let members = server
        .db
        .texts(&format!(
            "SELECT user_id FROM group_members WHERE user_id = '{}'",
            alan.id
        ))
        .await;
    assert!(members.is_empty(), "group membership kept: {members:?}");

    // The new organisation: exactly the named grants, at once.
    assert!(
        server
            .decide(&globex, &alan.id, "payments.read", "")
            .await
            .allowed
    );
    for permission in ["pii.read", "compliance.write", "users.write"] {
        assert!(
            !server
                .decide(&globex, &alan.id, permission, "")
                .await
                .allowed,
            "{permission}"
        );
    }
    assert_eq!(
        server.get_user(&globex, &alan.id).await.grants,
        vec![grant("read_only", &[])]
    );

    // The same password signs in, now into the new organisation, and the factor came along.
    let token = server
        .sign_in("alan@example.com", PASSWORD)
        .await
        .access_token;
    let factors = server
        .auth(&token)
        .list_second_factors(v1::ListSecondFactorsRequest::default())
        .await
        .unwrap();
    assert_eq!(factors.into_inner().factors.len(), 1);
    // The new session is the new organisation's; the old one is closed to it.
    let mut organizations = server.organizations(&token);
    assert!(
        organizations
            .get_organization(globex.get_organization())
            .await
            .is_ok()
    );
    let error = organizations
        .get_organization(acme.get_organization())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    // Both logs record it, by the operator, with what was held before and what is given after.
    let left = audited(&server, &acme, &acme.owner_token).await;
    let joined = audited(&server, &globex, &globex.owner_token).await;
    assert_eq!(
        left.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["user.moved_out"]
    );
    assert_eq!(
        joined.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["user.moved_in"]
    );
    assert_eq!(
        (left[0].target_id.as_str(), left[0].actor_kind.as_str()),
        (alan.id.as_str(), "operator")
    );
    assert!(
        left[0].before_json.contains("compliance_operator")
            && left[0].after_json.contains(&globex.id)
    );
    assert!(joined[0].after_json.contains("read_only") && joined[0].before_json.contains(&acme.id));
}

#[tokio::test]
async fn the_owner_a_pending_invitation_the_owner_role_and_other_callers_are_refused() {
    let server = TestServer::start().await;
    let (acme, globex) = (
        server.create_organization("Acme").await,
        server.create_organization("Globex").await,
    );
    let mut operator = server.users(OPERATOR_TOKEN);
    let refusal = |error: tonic::Status| (error.code(), error.message().to_owned());

    let owner = operator
        .move_user_to_organization(movement(&acme, &acme.owner_id, &globex, vec![]))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(owner),
        (
            Code::FailedPrecondition,
            "user: is the owner; hand ownership over first".into()
        )
    );

    let pending = server
        .invite(
            &acme,
            &acme.owner_token,
            "pat@example.com",
            vec![grant("read_only", &[])],
        )
        .await;
    let error = operator
        .move_user_to_organization(movement(&acme, &pending.id, &globex, vec![]))
        .await
        .unwrap_err();
    let (code, message) = refusal(error);
    assert_eq!(code, Code::FailedPrecondition);
    assert!(message.contains("pending invitation"), "{message}");

    let alan = server
        .member(&acme, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let error = operator
        .move_user_to_organization(movement(
            &acme,
            &alan.id,
            &globex,
            vec![grant("owner", &[])],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(error),
        (
            Code::InvalidArgument,
            "grants[0].role_id: owner comes only with ownership".into()
        )
    );
    let error = operator
        .move_user_to_organization(movement(
            &acme,
            &alan.id,
            &globex,
            vec![grant("no_such_role", &[])],
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    // Another organisation's id for the user is NOT_FOUND; an owner's token is not the operator's.
    let error = operator
        .move_user_to_organization(movement(&globex, &alan.id, &acme, vec![]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = server
        .users(&acme.owner_token)
        .move_user_to_organization(movement(&acme, &alan.id, &globex, vec![]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);

    // Nothing of the refused attempts happened: alan is where he was, with what he had.
    assert!(
        server
            .decide(&acme, &alan.id, "payments.read", "")
            .await
            .allowed
    );
    assert!(audited(&server, &acme, &acme.owner_token).await.is_empty());
    assert!(
        audited(&server, &globex, &globex.owner_token)
            .await
            .is_empty()
    );
}
