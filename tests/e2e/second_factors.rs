//! Two-factor sign-in: TOTP, email and SMS codes from the outbox, policy, LOCKED users and
//! recovery codes.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{
    ANONYMOUS, PASSWORD, TestOrg, TestServer, TestUser, grant, totp_code, update_mask,
};

async fn latest_code(server: &TestServer, kind: v1::NotificationKind, recipient: &str) -> String {
    let pending = server.pending_notifications().await;
    let found = pending
        .iter()
        .rev()
        .find(|n| n.kind() == kind && n.recipient == recipient);
    found
        .unwrap_or_else(|| panic!("no {kind:?} for {recipient}"))
        .code
        .clone()
}

fn enroll(method: v1::SecondFactorMethod, phone: &str) -> v1::EnrollSecondFactorRequest {
    v1::EnrollSecondFactorRequest {
        method: method as i32,
        phone_number: phone.into(),
        ..Default::default()
    }
}

fn complete(challenge: &str, code: &str) -> v1::CompleteSecondFactorRequest {
    v1::CompleteSecondFactorRequest {
        challenge_id: challenge.into(),
        code: code.into(),
        ..Default::default()
    }
}

async fn challenge(server: &TestServer, email: &str) -> v1::SignInResponse {
    let reply = server.sign_in(email, PASSWORD).await;
    assert!(
        reply.second_factor_required && reply.access_token.is_empty(),
        "a challenge, not tokens"
    );
    reply
}

#[tokio::test]
async fn a_totp_factor_is_confirmed_then_completes_sign_in_and_a_code_is_never_accepted_twice() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let (mut alans, mut auth) = (server.auth(&alan.token), server.auth(ANONYMOUS));
    let enrolled = alans
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Totp, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(
        enrolled.otpauth_uri.starts_with("otpauth://totp/")
            && enrolled.otpauth_uri.contains(&enrolled.totp_secret)
    );
    let factor = enrolled.factor.unwrap();
    assert!(!factor.confirmed);
    assert_eq!(
        server
            .db
            .count(&format!(
                "second_factors WHERE encrypted_secret LIKE '%{}%'",
                enrolled.totp_secret
            ))
            .await,
        0,
        "sealed at rest"
    );

    let confirm = |code: String| v1::ConfirmSecondFactorRequest {
        factor_id: factor.id.clone(),
        code,
    };
    let error = alans
        .confirm_second_factor(confirm("000000".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::Unauthenticated, "code: incorrect")
    );
    let now = server.unix_now();
    let confirmed = alans
        .confirm_second_factor(confirm(totp_code(&enrolled.totp_secret, now)))
        .await
        .unwrap();
    assert!(confirmed.into_inner().factor.unwrap().confirmed);

    let first = challenge(&server, "alan@example.com").await;
    assert_eq!(
        first.factors.iter().map(|f| f.method()).collect::<Vec<_>>(),
        [v1::SecondFactorMethod::Totp]
    );
    // The confirmation spent this step: its code is refused now, the next step's is taken (±1 step).
    let error = auth
        .complete_second_factor(complete(
            &first.challenge_id,
            &totp_code(&enrolled.totp_secret, now),
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated, "a replayed step");
    let next = totp_code(&enrolled.totp_secret, now + 30);
    let tokens = auth
        .complete_second_factor(complete(&first.challenge_id, &next))
        .await
        .unwrap()
        .into_inner();
    let mut signed_in = server.organizations(&tokens.access_token);
    let read = signed_in.get_organization(org.get_organization()).await;
    assert!(read.is_ok());
    let error = auth
        .complete_second_factor(complete(&first.challenge_id, &next))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound, "a challenge completes once");
    let second = challenge(&server, "alan@example.com").await;
    let error = auth
        .complete_second_factor(complete(&second.challenge_id, &next))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::Unauthenticated,
        "the same code on a new challenge is a replay"
    );
}

#[tokio::test]
async fn email_and_sms_codes_come_from_the_outbox_and_are_single_use() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let (mut alans, mut auth) = (server.auth(&alan.token), server.auth(ANONYMOUS));
    let error = alans
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Sms, "0151 123"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let sms = alans
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Sms, "+4915112345678"))
        .await
        .unwrap();
    let sms = sms.into_inner().factor.unwrap();
    assert_eq!(sms.phone_number, "************78");
    let code = latest_code(&server, v1::NotificationKind::SmsCode, "+4915112345678").await;
    assert_eq!(code.len(), 6);
    let confirm = v1::ConfirmSecondFactorRequest {
        factor_id: sms.id.clone(),
        code,
    };
    alans.confirm_second_factor(confirm).await.unwrap();
    let email = alans
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Email, ""))
        .await
        .unwrap();
    let email = email.into_inner().factor.unwrap();
    let code = latest_code(&server, v1::NotificationKind::EmailCode, "alan@example.com").await;
    alans
        .confirm_second_factor(v1::ConfirmSecondFactorRequest {
            factor_id: email.id.clone(),
            code,
        })
        .await
        .unwrap();

    let reply = challenge(&server, "alan@example.com").await;
    assert_eq!(reply.factors.len(), 2);
    let send = v1::SendSecondFactorCodeRequest {
        challenge_id: reply.challenge_id.clone(),
        factor_id: email.id.clone(),
    };
    assert!(
        auth.send_second_factor_code(send)
            .await
            .unwrap()
            .into_inner()
            .expire_time
            .is_some()
    );
    let code = latest_code(&server, v1::NotificationKind::EmailCode, "alan@example.com").await;
    let tokens = auth
        .complete_second_factor(complete(&reply.challenge_id, &code))
        .await
        .unwrap()
        .into_inner();
    assert!(!tokens.access_token.is_empty() && !tokens.refresh_token.is_empty());
    let again = challenge(&server, "alan@example.com").await;
    let error = auth
        .complete_second_factor(complete(&again.challenge_id, &code))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::Unauthenticated,
        "a code is bound to its challenge"
    );
    let foreign = v1::SendSecondFactorCodeRequest {
        challenge_id: again.challenge_id.clone(),
        factor_id: uuid::Uuid::now_v7().to_string(),
    };
    assert_eq!(
        auth.send_second_factor_code(foreign)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
}

#[tokio::test]
async fn five_wrong_codes_end_a_challenge() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let (mut alans, mut auth) = (server.auth(&alan.token), server.auth(ANONYMOUS));
    let factor = alans
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Email, ""))
        .await
        .unwrap()
        .into_inner();
    let code = latest_code(&server, v1::NotificationKind::EmailCode, "alan@example.com").await;
    let factor_id = factor.factor.unwrap().id;
    alans
        .confirm_second_factor(v1::ConfirmSecondFactorRequest { factor_id, code })
        .await
        .unwrap();
    let reply = challenge(&server, "alan@example.com").await;
    for attempt in 1..=5 {
        let error = auth
            .complete_second_factor(complete(&reply.challenge_id, "111111"))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "attempt {attempt}");
    }
    let error = auth
        .complete_second_factor(complete(&reply.challenge_id, "111111"))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "challenge not found")
    );
    // A right password does not wipe the code failures: codes are counted on their own.
    challenge(&server, "alan@example.com").await;
    assert_eq!(
        server
            .db
            .count("throttles WHERE key LIKE 'code:account:%' AND failures = 5")
            .await,
        1
    );
}

/// Enrols and confirms a TOTP factor for the holder of `token`.
async fn confirmed_totp(server: &TestServer, token: &str) {
    let mut auth = server.auth(token);
    let enrolled = auth
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Totp, ""))
        .await
        .unwrap()
        .into_inner();
    let confirm = v1::ConfirmSecondFactorRequest {
        factor_id: enrolled.factor.unwrap().id,
        code: totp_code(&enrolled.totp_secret, server.unix_now()),
    };
    auth.confirm_second_factor(confirm).await.unwrap();
}

/// A member without a second factor, locked by the owner (who has one) requiring it.
async fn locked_member(server: &TestServer, org: &TestOrg) -> TestUser {
    let alan = server
        .member(org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    confirmed_totp(server, &org.owner_token).await;
    let required = v1::UpdateOrganizationSettingsRequest {
        require_second_factor: Some(true),
        ..Default::default()
    };
    server.update_settings(org, required).await;
    alan
}

#[tokio::test]
async fn a_required_second_factor_locks_users_until_a_recovery_code_lets_them_in_once() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = locked_member(&server, &org).await;
    let error = server.sign_in_error("alan@example.com", PASSWORD).await;
    assert_eq!(error.code(), Code::FailedPrecondition);
    let shown = server.get_user(&org, &alan.id).await;
    assert_eq!(shown.status(), v1::UserStatus::Locked);

    let issue = v1::IssueRecoveryCodeRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
    };
    let error = server
        .auth(&alan.token)
        .issue_recovery_code(issue.clone())
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::Unauthenticated,
        "the lock ended alan's sessions"
    );
    let recovery = server
        .auth(&org.owner_token)
        .issue_recovery_code(issue)
        .await
        .unwrap()
        .into_inner();
    assert!(recovery.recovery_code.len() >= 22, "at least 128 bits");
    assert_eq!(
        server
            .db
            .count(&format!(
                "recovery_codes WHERE code_hash = '{}'",
                recovery.recovery_code
            ))
            .await,
        0
    );

    let reply = challenge(&server, "alan@example.com").await;
    assert!(
        reply.factors.is_empty(),
        "only the recovery code can complete it"
    );
    let tokens = server
        .auth(ANONYMOUS)
        .complete_second_factor(complete(&reply.challenge_id, &recovery.recovery_code))
        .await
        .unwrap();
    let access = tokens.into_inner().access_token;
    // Back in: now the user enrols a factor of their own.
    let enrolled = server
        .auth(&access)
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Totp, ""))
        .await
        .unwrap();
    assert!(!enrolled.into_inner().totp_secret.is_empty());
    let error = server.sign_in_error("alan@example.com", PASSWORD).await;
    assert_eq!(
        error.code(),
        Code::FailedPrecondition,
        "the recovery code was single use and no factor is confirmed yet"
    );

    let audit = v1::ListAuditEventsRequest {
        target_id: alan.id.clone(),
        ..org.list_audit_events()
    };
    let events = server
        .audit(&org.owner_token)
        .list_audit_events(audit)
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(
        events
            .iter()
            .any(|e| e.action == "user.recovery_code_issued")
    );
    assert!(
        events
            .iter()
            .all(|e| !e.after_json.contains(&recovery.recovery_code))
    );
}

#[tokio::test]
async fn methods_the_organization_does_not_allow_cannot_be_enrolled_and_removed_factors_stop_counting()
 {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let totp_only = v1::UpdateOrganizationSettingsRequest {
        allowed_second_factors: vec![v1::SecondFactorMethod::Totp as i32],
        update_mask: update_mask(&["allowed_second_factors"]),
        ..Default::default()
    };
    server.update_settings(&org, totp_only).await;
    let mut alans = server.auth(&alan.token);
    let error = alans
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Email, ""))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "method: email is not allowed by your organization"
        )
    );
    let error = alans
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Unspecified, ""))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    let enrolled = alans
        .enroll_second_factor(enroll(v1::SecondFactorMethod::Totp, ""))
        .await
        .unwrap()
        .into_inner();
    let factor_id = enrolled.factor.unwrap().id;
    let code = totp_code(&enrolled.totp_secret, server.unix_now());
    alans
        .confirm_second_factor(v1::ConfirmSecondFactorRequest {
            factor_id: factor_id.clone(),
            code,
        })
        .await
        .unwrap();
    let list = alans
        .list_second_factors(v1::ListSecondFactorsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.factors.len(), 1);
    challenge(&server, "alan@example.com").await;
    alans
        .remove_second_factor(v1::RemoveSecondFactorRequest {
            factor_id: factor_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !server
            .sign_in("alan@example.com", PASSWORD)
            .await
            .access_token
            .is_empty(),
        "no factor, no challenge"
    );
    let error = alans
        .remove_second_factor(v1::RemoveSecondFactorRequest {
            factor_id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}

#[tokio::test]
async fn a_locked_user_is_denied_every_check_and_the_lock_ends_their_sessions() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let grace = server
        .member(&org, "grace@example.com", vec![grant("read_only", &[])])
        .await;
    assert!(
        server
            .decide(&org, &grace.id, "payments.read", "")
            .await
            .allowed
    );
    let alan = locked_member(&server, &org).await;
    for user in [&alan.id, &grace.id] {
        let decision = server.decide(&org, user, "payments.read", "").await;
        assert_eq!(
            (decision.allowed, decision.reason.as_str()),
            (false, "second factor required")
        );
    }
    let effective = v1::ListEffectivePermissionsRequest {
        organization_id: org.id.clone(),
        user_id: alan.id.clone(),
        ..Default::default()
    };
    let held = server
        .authorization(&org.api_key)
        .list_effective_permissions(effective)
        .await
        .unwrap()
        .into_inner()
        .permissions;
    assert!(held.is_empty(), "{held:?}");
    for token in [&alan.token, &grace.token] {
        let error = server
            .organizations(token)
            .get_organization(org.get_organization())
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "sessions ended");
    }
    let read = server
        .organizations(&org.owner_token)
        .get_organization(org.get_organization())
        .await;
    assert!(read.is_ok(), "the owner has a factor: still signed in");
    let owner = server
        .decide(&org, &org.owner_id, "payments.read", "")
        .await;
    assert!(owner.allowed);
}

#[tokio::test]
async fn a_caller_without_a_second_factor_cannot_require_one() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let required = v1::UpdateOrganizationSettingsRequest {
        organization_id: org.id.clone(),
        require_second_factor: Some(true),
        ..Default::default()
    };
    let error = server
        .organizations(&org.owner_token)
        .update_organization_settings(required)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "require_second_factor: set up a second factor of your own first"
        )
    );
    let settings = server
        .organizations(&org.owner_token)
        .get_organization(org.get_organization())
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap()
        .settings
        .unwrap();
    assert!(!settings.require_second_factor);
}
