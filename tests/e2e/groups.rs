//! GroupService: members inherit the group's grants; granting through a group is still granting.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{TestServer, grant, update_mask};

#[tokio::test]
async fn members_inherit_the_group_grants_until_they_leave() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let alan = server
        .member(&org, "alan@example.com", vec![grant("read_only", &[])])
        .await;
    let mut groups = server.groups(&org.owner_token);
    let create = org.create_group("Finance", vec![grant("analyst", &[&gmbh])]);
    let group = groups.create_group(create.clone()).await.unwrap();
    let group = group.into_inner().group.unwrap();
    let error = groups.create_group(create).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::AlreadyExists, "group name already exists")
    );

    let pii = async || server.decide(&org, &alan.id, "pii.read", &gmbh).await;
    assert!(!pii().await.allowed);
    let add = org.add_group_member(&group.id, &alan.id);
    let added = groups.add_group_member(add.clone()).await.unwrap();
    let added = added.into_inner().group.unwrap();
    assert_eq!(added.member_user_ids, [alan.id.as_str()]);
    groups
        .add_group_member(add.clone())
        .await
        .expect("adding twice is harmless");
    let decision = pii().await;
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
    let listed = groups.list_groups(list).await.unwrap().into_inner().groups;
    assert_eq!(
        listed.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["Finance"]
    );

    let remove = v1::RemoveGroupMemberRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
        user_id: alan.id.clone(),
    };
    groups.remove_group_member(remove).await.unwrap();
    assert!(!pii().await.allowed);

    groups.add_group_member(add).await.unwrap();
    let delete = v1::DeleteGroupRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
    };
    groups.delete_group(delete).await.unwrap();
    assert!(
        !pii().await.allowed,
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
    let mut groups = server.groups(&local_admin.token);
    let create = |grants| org.create_group("Ops", grants);
    let error = groups
        .create_group(create(vec![grant("analyst", &[&ltd])]))
        .await
        .unwrap_err();
    assert_eq!(
        error.code(),
        Code::PermissionDenied,
        "a group cannot reach beyond the creator's entities"
    );
    let group = groups
        .create_group(create(vec![grant("analyst", &[&gmbh])]))
        .await
        .unwrap();
    let group = group.into_inner().group.unwrap();
    let add = org.add_group_member(&group.id, &alan.id);
    groups.add_group_member(add).await.unwrap();

    let widen = v1::UpdateGroupRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
        grants: vec![grant("analyst", &[])],
        update_mask: update_mask(&["grants"]),
        ..Default::default()
    };
    let error = groups.update_group(widen.clone()).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let on_ltd = async || server.decide(&org, &alan.id, "payments.read", &ltd).await;
    assert!(!on_ltd().await.allowed);
    let mut owner = server.groups(&org.owner_token);
    owner.update_group(widen).await.unwrap();
    assert!(
        on_ltd().await.allowed,
        "the owner's widening reaches the member"
    );
    let delete = v1::DeleteGroupRequest {
        organization_id: org.id.clone(),
        group_id: group.id.clone(),
    };
    let error = groups.delete_group(delete).await.unwrap_err();
    assert_eq!(
        error.code(),
        Code::PermissionDenied,
        "the group now grants more than the local admin holds"
    );

    let other = server.create_organization("Globex").await;
    let foreign = org.add_group_member(&group.id, &other.owner_id);
    let error = owner.add_group_member(foreign).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "user not found")
    );
}
