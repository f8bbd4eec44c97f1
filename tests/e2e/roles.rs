//! RoleService: the catalogue and the predefined roles every organisation has.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{TestServer, grant, update_mask};

#[tokio::test]
async fn the_catalogue_lists_in_pages_with_the_stable_keys() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut roles = server.roles(&org.owner_token);
    let mut keys = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = v1::ListPermissionsRequest {
            page_size: 7,
            page_token,
        };
        let page = roles.list_permissions(request).await.unwrap().into_inner();
        assert!(page.permissions.len() <= 7);
        keys.extend(page.permissions);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for key in [
        "users.read",
        "users.write",
        "roles.read",
        "roles.write",
        "security.write",
        "developers.keys.write",
        "payments.read",
        "payments.refund",
        "pii.read",
        "audit.read",
    ] {
        assert!(keys.iter().any(|p| p.key == key), "{key} missing");
    }
    let users_write = keys.iter().find(|p| p.key == "users.write").unwrap();
    assert!(!users_write.assignable_to_custom_roles);
    assert_eq!(users_write.area, "user_management");
}

#[tokio::test]
async fn every_organization_has_the_predefined_roles() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let request = v1::ListRolesRequest {
        organization_id: org.id.clone(),
        page_size: 0,
        page_token: String::new(),
    };
    let roles = server
        .roles(&org.owner_token)
        .list_roles(request.clone())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = roles.roles.iter().map(|role| role.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "owner",
            "admin",
            "iam_admin",
            "developer",
            "analyst",
            "read_only",
            "compliance_operator",
            "payments_operator",
            "finance",
            "support_specialist"
        ]
    );
    assert!(
        roles
            .roles
            .iter()
            .all(|role| role.predefined && !role.permissions.is_empty())
    );
    let read_only = roles
        .roles
        .iter()
        .find(|role| role.id == "read_only")
        .unwrap();
    assert!(read_only.permissions.contains(&"payments.read".to_string()));
    assert!(
        !read_only
            .permissions
            .contains(&"payments.refund".to_string())
    );
    let error = server
        .roles(&org.api_key)
        .list_roles(request)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

fn create_role(org_id: &str, name: &str, permissions: &[&str]) -> v1::CreateRoleRequest {
    v1::CreateRoleRequest {
        organization_id: org_id.into(),
        name: name.into(),
        description: "made in a test".into(),
        permissions: permissions.iter().map(|key| key.to_string()).collect(),
    }
}

#[tokio::test]
async fn custom_roles_are_validated_and_their_edits_reach_holders_at_once() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut roles = server.roles(&org.owner_token);
    let role = roles
        .create_role(create_role(
            &org.id,
            "Refunder",
            &["payments.refund", "payments.read"],
        ))
        .await
        .unwrap()
        .into_inner()
        .role
        .unwrap();
    assert_eq!(
        role.permissions,
        ["payments.read", "payments.refund"],
        "catalogue order"
    );
    assert!(!role.predefined);
    let cases = [
        (
            create_role(&org.id, "Refunder", &["payments.read"]),
            Code::AlreadyExists,
            "role name already exists",
        ),
        (
            create_role(&org.id, "", &["payments.read"]),
            Code::InvalidArgument,
            "name: is required",
        ),
        (
            create_role(&org.id, "Empty", &[]),
            Code::InvalidArgument,
            "permissions: at least one permission is required",
        ),
        (
            create_role(&org.id, "Bad", &["payments.teleport"]),
            Code::InvalidArgument,
            "permissions[0]: unknown key",
        ),
        (
            create_role(&org.id, "Sneaky", &["payments.read", "users.write"]),
            Code::InvalidArgument,
            "permissions[1]: not assignable to custom roles",
        ),
    ];
    for (request, code, message) in cases {
        let error = roles.create_role(request).await.unwrap_err();
        assert_eq!((error.code(), error.message()), (code, message));
    }

    let alan = server
        .member(&org, "alan@example.com", vec![grant(&role.id, &[])])
        .await;
    let refund = async || server.decide(&org, &alan.id, "payments.refund", "").await;
    let decision = refund().await;
    assert_eq!(
        (decision.allowed, decision.reason),
        (true, format!("allowed by role {} on all entities", role.id))
    );

    let narrow = v1::UpdateRoleRequest {
        organization_id: org.id.clone(),
        role_id: role.id.clone(),
        permissions: vec!["payments.read".into()],
        update_mask: update_mask(&["permissions"]),
        ..Default::default()
    };
    let updated = roles.update_role(narrow).await.unwrap().into_inner();
    let updated = updated.role.unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.permissions.as_slice()),
        ("Refunder", ["payments.read".to_string()].as_slice())
    );
    assert!(
        !refund().await.allowed,
        "the edit reaches the holder's next check"
    );

    let delete = v1::DeleteRoleRequest {
        organization_id: org.id.clone(),
        role_id: role.id.clone(),
    };
    roles.delete_role(delete.clone()).await.unwrap();
    let moved = server.get_user(&org, &alan.id).await;
    assert_eq!(
        moved.grants,
        vec![grant("read_only", &[])],
        "holders move to read_only"
    );
    let read = server.decide(&org, &alan.id, "payments.read", "").await;
    assert_eq!(read.reason, "allowed by role read_only on all entities");
    let error = roles.delete_role(delete).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}

#[tokio::test]
async fn predefined_roles_are_fixed_and_role_writes_need_roles_write_and_no_escalation() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut roles = server.roles(&org.owner_token);
    let edit = v1::UpdateRoleRequest {
        organization_id: org.id.clone(),
        role_id: "analyst".into(),
        name: "Mine".into(),
        ..Default::default()
    };
    let error = roles.update_role(edit).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::FailedPrecondition,
            "predefined roles cannot be changed or deleted"
        )
    );
    let delete = v1::DeleteRoleRequest {
        organization_id: org.id.clone(),
        role_id: "read_only".into(),
    };
    assert_eq!(
        roles.delete_role(delete).await.unwrap_err().code(),
        Code::FailedPrecondition
    );

    let developer = server
        .member(&org, "dev@example.com", vec![grant("developer", &[])])
        .await;
    let error = server
        .roles(&developer.token)
        .create_role(create_role(&org.id, "X", &["payments.read"]))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::PermissionDenied, "requires roles.write")
    );
    let iam = server
        .member(&org, "iam@example.com", vec![grant("iam_admin", &[])])
        .await;
    let error = server
        .roles(&iam.token)
        .create_role(create_role(&org.id, "Refunds", &["payments.refund"]))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "cannot grant payments.refund on all entities: you do not hold it"
        )
    );
    let other = server.create_organization("Globex").await;
    let error = server
        .roles(&other.owner_token)
        .create_role(create_role(&org.id, "X", &["payments.read"]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}
