//! GroupService: members inherit the group's grants; granting through a group is still granting.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{TestServer, grant, with_token};

#[tokio::test]
async fn members_inherit_the_group_grants_until_they_leave() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let mut groups = server.groups();
    let create = v1::CreateGroupRequest {
        organization_id: org.id.clone(),
        name: "Finance".into(),
        grants: vec![grant("analyst", &[&gmbh])],
    };
    let group = groups
        .create_group(with_token(&org.owner_token, create.clone()))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    let error = groups
        .create_group(with_token(&org.owner_token, create))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::AlreadyExists, "group name already exists")
    );

    let mut checks = server.authorization();
    let pii = || with_token(&org.api_key, org.check(&alan.id, "pii.read", &gmbh));
    assert!(
        !checks
            .check_permission(pii())
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    let add = v1::AddGroupMemberRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
        user_id: alan.id.clone(),
    };
    let added = groups
        .add_group_member(with_token(&org.owner_token, add.clone()))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    assert_eq!(added.member_user_ids, [alan.id.as_str()]);
    groups
        .add_group_member(with_token(&org.owner_token, add))
        .await
        .expect("adding twice is harmless");
    let decision = checks.check_permission(pii()).await.unwrap().into_inner();
    assert_eq!(
        (decision.allowed, decision.reason.as_str()),
        (
            true,
            "allowed by role analyst of group Finance on this entity"
        )
    );

    let list = v1::ListGroupsRequest {
        organization_id: org.id.clone(),
        page_size: 0,
        page_token: String::new(),
    };
    let listed = groups
        .list_groups(with_token(&org.owner_token, list))
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(
        listed.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["Finance"]
    );

    let remove = v1::RemoveGroupMemberRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
        user_id: alan.id.clone(),
    };
    groups
        .remove_group_member(with_token(&org.owner_token, remove))
        .await
        .unwrap();
    assert!(
        !checks
            .check_permission(pii())
            .await
            .unwrap()
            .into_inner()
            .allowed
    );

    let add = v1::AddGroupMemberRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
        user_id: alan.id.clone(),
    };
    groups
        .add_group_member(with_token(&org.owner_token, add))
        .await
        .unwrap();
    let delete = v1::DeleteGroupRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
    };
    groups
        .delete_group(with_token(&org.owner_token, delete))
        .await
        .unwrap();
    assert!(
        !checks
            .check_permission(pii())
            .await
            .unwrap()
            .into_inner()
            .allowed,
        "deleting the group takes its grants away"
    );
}

#[tokio::test]
async fn group_edits_reach_members_and_respect_no_escalation() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let local_admin = server
        .member(&org, "local@example.com", vec![grant("admin", &[&gmbh])])
        .await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[&gmbh])])
        .await;
    let mut groups = server.groups();
    let create = |grants| v1::CreateGroupRequest {
        organization_id: org.id.clone(),
        name: "Ops".into(),
        grants,
    };
    let error = groups
        .create_group(with_token(
            &local_admin.token,
            create(vec![grant("analyst", &[&ltd])]),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::PermissionDenied,
        "a group cannot reach beyond the creator's entities"
    );
    let group = groups
        .create_group(with_token(
            &local_admin.token,
            create(vec![grant("analyst", &[&gmbh])]),
        ))
        .await
        .unwrap();
    let group = group.into_inner().group.unwrap();
    let add = v1::AddGroupMemberRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
        user_id: alan.id.clone(),
    };
    groups
        .add_group_member(with_token(&local_admin.token, add))
        .await
        .unwrap();

    let widen = v1::UpdateGroupRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
        grants: vec![grant("analyst", &[])],
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["grants".into()],
        }),
        ..Default::default()
    };
    let error = groups
        .update_group(with_token(&local_admin.token, widen.clone()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let mut checks = server.authorization();
    let on_ltd = || with_token(&org.api_key, org.check(&alan.id, "payments.read", &ltd));
    assert!(
        !checks
            .check_permission(on_ltd())
            .await
            .unwrap()
            .into_inner()
            .allowed
    );
    groups
        .update_group(with_token(&org.owner_token, widen))
        .await
        .unwrap();
    assert!(
        checks
            .check_permission(on_ltd())
            .await
            .unwrap()
            .into_inner()
            .allowed,
        "the owner's widening reaches the member"
    );
    let delete = v1::DeleteGroupRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
    };
    let error = groups
        .delete_group(with_token(&local_admin.token, delete))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::PermissionDenied,
        "the group now grants more than the local admin holds"
    );

    let other = server.create_organization("Globex").await;
    let foreign = v1::AddGroupMemberRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
        user_id: other.owner_id.clone(),
    };
    let error = groups
        .add_group_member(with_token(&org.owner_token, foreign))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "user not found")
    );
}
