//! RoleService: the catalogue and the predefined roles every organisation has.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{TestServer, with_token};

#[tokio::test]
async fn the_catalogue_lists_in_pages_with_the_stable_keys() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut roles = server.roles();
    let mut keys = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = v1::ListPermissionsRequest {
            page_size: 7,
            page_token,
        };
        let page = roles
            .list_permissions(with_token(&org.owner_token, request))
            .await
            .unwrap()
            .into_inner();
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
        .roles()
        .list_roles(with_token(&org.owner_token, request))
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
            "compliance_operator"
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
        .roles()
        .list_roles(with_token(
            &org.api_key,
            v1::ListRolesRequest {
                organization_id: org.id.clone(),
                page_size: 0,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}
