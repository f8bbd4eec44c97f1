//! The three dashboards' catalogues in `catalogue/`, each loaded with WARDEN_CATALOGUE_PATH and run
//! through its dashboard's scenarios: who may invite, who may redact, what a custom role may not
//! hold; and what start-up does with a bad or a changed catalogue.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{
    ANONYMOUS, PASSWORD, TestDatabase, TestOrg, TestServer, TestUser, accept, catalogue_path,
    direct, grant,
};

/// Invites `email` as `inviter` with role grants and direct permissions, accepts, signs in.
async fn join(
    server: &TestServer,
    org: &TestOrg,
    email: &str,
    grants: Vec<v1::Grant>,
    permissions: Vec<v1::DirectPermission>,
) -> TestUser {
    let request = v1::InviteUserRequest {
        direct_permissions: permissions,
        ..org.invite_user(email, grants)
    };
    let user = server.users(&org.owner_token).invite_user(request).await;
    let user = user.expect("invite").into_inner().user.unwrap();
    let token = server.invitation_token(email).await;
    let accepted = server
        .users(ANONYMOUS)
        .accept_invitation(accept(&token, PASSWORD))
        .await;
    accepted.expect("accept");
    TestUser {
        id: user.id,
        email: email.into(),
        token: server.sign_in(email, PASSWORD).await.access_token,
    }
}

/// Whether `token`'s holder may invite someone into `org` with `role`.
async fn may_invite(server: &TestServer, org: &TestOrg, token: &str, role: &str) -> Code {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    match server
        .users(token)
        .invite_user(org.invite_user(&email, vec![grant(role, &[])]))
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// The answer to a custom role holding `permissions`.
async fn custom_role(
    server: &TestServer,
    org: &TestOrg,
    permissions: &[&str],
) -> Result<String, String> {
    let request = v1::CreateRoleRequest {
        organization_id: org.id.clone(),
        name: format!("Custom {}", uuid::Uuid::new_v4().simple()),
        description: String::new(),
        permissions: permissions.iter().map(|key| (*key).to_owned()).collect(),
    };
    match server.roles(&org.owner_token).create_role(request).await {
        Ok(reply) => Ok(reply.into_inner().role.unwrap().id),
        Err(status) => {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            Err(status.message().to_owned())
        }
    }
}

async fn allowed(server: &TestServer, org: &TestOrg, user: &str, permission: &str) -> bool {
    server.decide(org, user, permission, "").await.allowed
}

async fn all_permissions(server: &TestServer, org: &TestOrg) -> Vec<v1::Permission> {
    let request = v1::ListPermissionsRequest {
        page_size: 500,
        ..Default::default()
    };
    let reply = server
        .roles(&org.owner_token)
        .list_permissions(request)
        .await;
    reply.expect("list permissions").into_inner().permissions
}

#[tokio::test]
async fn payments_dashboard_table_roles_invitations_redaction_and_custom_roles() {
    let server = TestServer::with_catalogue("payments").await;
    let org = server.create_organization("Acme Payments").await;
    let permissions = all_permissions(&server, &org).await;
    let areas: std::collections::BTreeSet<&str> = permissions
        .iter()
        .map(|permission| permission.area.as_str())
        .collect();
    assert!(
        permissions.len() >= 55 && areas.len() >= 25,
        "{} in {areas:?}",
        permissions.len()
    );
    let fixed: Vec<&str> = permissions
        .iter()
        .filter(|permission| !permission.assignable_to_custom_roles)
        .map(|permission| permission.key.as_str())
        .collect();
    for key in [
        "account.write",
        "account.processing_settings.write",
        "security.write",
        "account.ownership.transfer",
        "sub_entities.applications.write",
        "roles.write",
    ] {
        assert!(fixed.contains(&key), "{key} may be added to a custom role");
        assert!(
            custom_role(&server, &org, &["payments.read", key])
                .await
                .is_err(),
            "{key}"
        );
    }
    assert!(
        custom_role(&server, &org, &["payments.refund", "pii.redact"])
            .await
            .is_ok()
    );

    let iam = server
        .member(&org, "iam@example.com", vec![grant("iam_admin", &[])])
        .await;
    let developer = server
        .member(&org, "dev@example.com", vec![grant("developer", &[])])
        .await;
    let compliance = server
        .member(
            &org,
            "co@example.com",
            vec![grant("compliance_operator", &[])],
        )
        .await;
    let analyst = server
        .member(&org, "an@example.com", vec![grant("analyst", &[])])
        .await;
    // Who may invite: users.write holders, for roles they hold themselves.
    assert_eq!(
        may_invite(&server, &org, &iam.token, "iam_admin").await,
        Code::Ok
    );
    assert_eq!(
        may_invite(&server, &org, &developer.token, "developer").await,
        Code::PermissionDenied
    );
    assert_eq!(
        may_invite(&server, &org, &analyst.token, "read_only").await,
        Code::PermissionDenied
    );
    // Who may redact: the compliance operator, not the analyst who reads personal data.
    assert!(allowed(&server, &org, &compliance.id, "pii.redact").await);
    assert!(!allowed(&server, &org, &analyst.id, "pii.redact").await);
    assert!(allowed(&server, &org, &analyst.id, "pii.read").await);
    assert!(!allowed(&server, &org, &developer.id, "pii.read").await);
    // The other roles of the table.
    let finance = server
        .member(&org, "fi@example.com", vec![grant("finance", &[])])
        .await;
    assert!(allowed(&server, &org, &finance.id, "settlements.write").await);
    assert!(!allowed(&server, &org, &finance.id, "payments.refund").await);
}

#[tokio::test]
async fn identity_verification_dashboard_admin_developer_and_analyst() {
    let server = TestServer::with_catalogue("identity-verification").await;
    let org = server.create_organization("Acme Identity").await;
    let mut roles = server.roles(&org.owner_token);
    let listed = roles.list_roles(v1::ListRolesRequest {
        organization_id: org.id.clone(),
        ..Default::default()
    });
    let ids: Vec<String> = listed
        .await
        .unwrap()
        .into_inner()
        .roles
        .into_iter()
        .map(|role| role.id)
        .collect();
    assert_eq!(ids, ["owner", "admin", "developer", "analyst"]);

    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[])])
        .await;
    let developer = server
        .member(&org, "dev@example.com", vec![grant("developer", &[])])
        .await;
    let analyst = server
        .member(&org, "an@example.com", vec![grant("analyst", &[])])
        .await;
    // Who may invite: the admin ("edit users"); neither the developer nor the analyst.
    assert_eq!(
        may_invite(&server, &org, &admin.token, "analyst").await,
        Code::Ok
    );
    assert_eq!(
        may_invite(&server, &org, &developer.token, "analyst").await,
        Code::PermissionDenied
    );
    assert_eq!(
        may_invite(&server, &org, &analyst.token, "analyst").await,
        Code::PermissionDenied
    );
    // Who may redact: the admin only.
    assert!(allowed(&server, &org, &admin.id, "pii.redact").await);
    for user in [&developer, &analyst] {
        assert!(!allowed(&server, &org, &user.id, "pii.redact").await);
        for denied in [
            "metrics.read",
            "security.write",
            "users.write",
            "roles.write",
        ] {
            assert!(!allowed(&server, &org, &user.id, denied).await, "{denied}");
        }
    }
    for (permission, developer_may, analyst_may) in [
        ("developers.api.write", true, false),
        ("developers.logs.read", true, false),
        ("webhooks.write", true, false),
        ("cases.read", true, true),
        ("cases.write", false, false),
        ("workflows.read", true, true),
        ("inquiries.read", false, true),
        ("lists.read", false, true),
    ] {
        assert_eq!(
            allowed(&server, &org, &developer.id, permission).await,
            developer_may,
            "{permission}"
        );
        assert_eq!(
            allowed(&server, &org, &analyst.id, permission).await,
            analyst_may,
            "{permission}"
        );
    }
    assert!(allowed(&server, &org, &admin.id, "billing.write").await);
    // Edit users, redaction, permissions, security and billing cannot go into a custom role.
    for key in [
        "users.write",
        "pii.redact",
        "roles.write",
        "security.write",
        "billing.write",
    ] {
        assert!(
            custom_role(&server, &org, &["cases.read", key])
                .await
                .is_err(),
            "{key}"
        );
    }
    let reviewer = custom_role(&server, &org, &["cases.read", "cases.write"])
        .await
        .unwrap();
    let holder = server
        .member(&org, "rev@example.com", vec![grant(&reviewer, &[])])
        .await;
    assert!(allowed(&server, &org, &holder.id, "cases.write").await);
    // A deleted custom role leaves its holders the catalogue's fallback role, Analyst.
    let delete = v1::DeleteRoleRequest {
        organization_id: org.id.clone(),
        role_id: reviewer,
    };
    server
        .roles(&org.owner_token)
        .delete_role(delete)
        .await
        .unwrap();
    assert_eq!(
        server.get_user(&org, &holder.id).await.grants,
        vec![grant("analyst", &[])]
    );
}

#[tokio::test]
async fn business_platform_owner_admin_user_application_access_and_no_ownership_transfer() {
    let server = TestServer::with_catalogue("business-platform").await;
    let org = server.create_organization("Acme Platform").await;
    let apps = [
        "payroll",
        "time_tracking",
        "benefits",
        "expenses",
        "devices",
        "recruiting",
    ];
    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[])])
        .await;
    // "All": the user uses every application; "Custom": the admin picks some.
    let every: Vec<_> = apps
        .iter()
        .map(|app| direct(&format!("apps.{app}.use"), &[]))
        .collect();
    let all = join(
        &server,
        &org,
        "all@example.com",
        vec![grant("user", &[])],
        every,
    )
    .await;
    let custom = join(
        &server,
        &org,
        "custom@example.com",
        vec![grant("user", &[])],
        vec![
            direct("apps.payroll.use", &[]),
            direct("apps.expenses.manage", &[]),
        ],
    )
    .await;
    for app in apps {
        let (using, managing) = (format!("apps.{app}.use"), format!("apps.{app}.manage"));
        assert!(allowed(&server, &org, &all.id, &using).await, "{using}");
        assert!(
            !allowed(&server, &org, &all.id, &managing).await,
            "{managing}"
        );
        assert_eq!(
            allowed(&server, &org, &custom.id, &using).await,
            app == "payroll",
            "{using}"
        );
        assert_eq!(
            allowed(&server, &org, &custom.id, &managing).await,
            app == "expenses"
        );
        assert!(
            allowed(&server, &org, &admin.id, &managing).await,
            "{managing}"
        );
    }
    // Who may invite: owner and admin; a user may not.
    assert_eq!(
        may_invite(&server, &org, &admin.token, "user").await,
        Code::Ok
    );
    assert_eq!(
        may_invite(&server, &org, &all.token, "user").await,
        Code::PermissionDenied
    );
    // Application permissions go into custom roles; user management and billing do not.
    assert!(
        custom_role(&server, &org, &["apps.payroll.manage", "apps.devices.use"])
            .await
            .is_ok()
    );
    for key in ["users.write", "billing.write", "security.write"] {
        assert!(
            custom_role(&server, &org, &["apps.payroll.use", key])
                .await
                .is_err(),
            "{key}"
        );
    }
    // Ownership is not transferable here, even to an active admin with the right password.
    let transfer = v1::TransferOwnershipRequest {
        organization_id: org.id.clone(),
        new_owner_user_id: admin.id.clone(),
        password: PASSWORD.into(),
    };
    let error = server
        .users(&org.owner_token)
        .transfer_ownership(transfer)
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "ownership: cannot be transferred in this dashboard's catalogue"
        )
    );
    assert!(allowed(&server, &org, &org.owner_id, "billing.write").await);
}

#[tokio::test]
async fn a_catalogue_that_fails_validation_stops_the_server_naming_file_line_and_key() {
    let path = std::env::temp_dir().join(format!("broken-{}.toml", uuid::Uuid::new_v4().simple()));
    let text = std::fs::read_to_string(catalogue_path("identity-verification")).unwrap();
    let broken = text.replacen(
        "\"cases.read\", \"workflows.read\"]",
        "\"cases.read\", \"workflows.reed\"]",
        1,
    );
    assert_ne!(broken, text);
    std::fs::write(&path, &broken).unwrap();
    let line = broken
        .lines()
        .position(|line| line.contains("workflows.reed"))
        .unwrap()
        + 1;
    let shown = path.clone();
    let outcome = TestServer::try_start_with(TestDatabase::fresh().await, |config| {
        config.catalogue_path = Some(path)
    })
    .await;
    std::fs::remove_file(&shown).ok();
    let reason = outcome.err().expect("the server must not start");
    for part in [
        shown.display().to_string(),
        format!("line {line}"),
        "workflows.reed".into(),
    ] {
        assert!(reason.contains(&part), "{part:?} not in {reason:?}");
    }
}

#[tokio::test]
async fn switching_catalogue_keeps_orphaned_grants_inert_and_the_old_file_brings_them_back() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let iam = server
        .member(&org, "iam@example.com", vec![grant("iam_admin", &[])])
        .await;
    assert!(allowed(&server, &org, &iam.id, "users.write").await);
    let db = server.stop().await;
    // iam_admin is not a role of the identity-verification dashboard: its grant allows nothing.
    let path = catalogue_path("identity-verification");
    let server = TestServer::start_with(db, |config| config.catalogue_path = Some(path)).await;
    assert!(!allowed(&server, &org, &iam.id, "users.write").await);
    assert!(allowed(&server, &org, &org.owner_id, "pii.redact").await);
    let db = server.stop().await;
    let server = TestServer::start_on(db).await;
    assert!(allowed(&server, &org, &iam.id, "users.write").await);
}
