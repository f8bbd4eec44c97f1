//! Editing or deleting a role or a group changes the access of every holder and member at once: it
//! passes the no-escalation rule (SPEC §3) and the acting rule for each of them (SPEC §2).
use tonic::Code;
use warden_proto::v1;
use warden_tests::{TestOrg, TestServer, grant, update_mask};

/// A custom role created by the owner.
async fn custom_role(
    server: &TestServer,
    org: &TestOrg,
    name: &str,
    permissions: &[&str],
) -> String {
    let request = v1::CreateRoleRequest {
        organization_id: org.id.clone(),
        name: name.into(),
        description: String::new(),
        permissions: permissions.iter().map(|key| key.to_string()).collect(),
    };
    let reply = server.roles(&org.owner_token).create_role(request).await;
    reply.unwrap().into_inner().role.unwrap().id
}

/// A group created by the owner, with `members`.
async fn group(
    server: &TestServer,
    org: &TestOrg,
    grants: Vec<v1::Grant>,
    members: &[&str],
) -> String {
    let mut groups = server.groups(&org.owner_token);
    let created = groups
        .create_group(org.create_group("Finance team", grants))
        .await;
    let id = created.unwrap().into_inner().group.unwrap().id;
    for member in members {
        groups
            .add_group_member(org.add_group_member(&id, member))
            .await
            .unwrap();
    }
    id
}

/// The grants of one group, as the owner lists them.
async fn group_grants(server: &TestServer, org: &TestOrg, id: &str) -> Vec<v1::Grant> {
    let request = v1::ListGroupsRequest {
        organization_id: org.id.clone(),
        ..Default::default()
    };
    let listed = server.groups(&org.owner_token).list_groups(request).await;
    let groups = listed.unwrap().into_inner().groups;
    groups
        .into_iter()
        .find(|group| group.id == id)
        .unwrap()
        .grants
}

fn delete_role(org: &TestOrg, role: &str) -> v1::DeleteRoleRequest {
    v1::DeleteRoleRequest {
        organization_id: org.id.clone(),
        role_id: role.into(),
    }
}

fn delete_group(org: &TestOrg, group: &str) -> v1::DeleteGroupRequest {
    v1::DeleteGroupRequest {
        organization_id: org.id.clone(),
        group_id: group.into(),
    }
}

#[tokio::test]
async fn deleting_a_role_cannot_give_its_holders_read_only_access_the_caller_lacks() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let iam = server
        .member(&org, "iam@example.com", vec![grant("iam_admin", &[])])
        .await;
    let viewer = {
        let request = v1::CreateRoleRequest {
            organization_id: org.id.clone(),
            name: "Viewer".into(),
            description: String::new(),
            permissions: vec!["account.read".into()],
        };
        let created = server.roles(&iam.token).create_role(request).await;
        created.unwrap().into_inner().role.unwrap().id
    };
    let bob = server
        .member(&org, "bob@example.com", vec![grant(&viewer, &[])])
        .await;
    let in_group = group(&server, &org, vec![grant(&viewer, &[])], &[]).await;

    let error = server
        .roles(&iam.token)
        .delete_role(delete_role(&org, &viewer))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "cannot grant disputes.read on all entities: you do not hold it"
        )
    );
    let payments = server.decide(&org, &bob.id, "payments.read", "").await;
    assert!(!payments.allowed, "the refused delete changed nothing");
    assert_eq!(
        server.get_user(&org, &bob.id).await.grants,
        [grant(&viewer, &[])]
    );

    server
        .roles(&org.owner_token)
        .delete_role(delete_role(&org, &viewer))
        .await
        .unwrap();
    assert_eq!(
        server.get_user(&org, &bob.id).await.grants,
        [grant("read_only", &[])],
        "the owner holds read_only everywhere"
    );
    assert_eq!(
        group_grants(&server, &org, &in_group).await,
        [grant("read_only", &[])]
    );
}

#[tokio::test]
async fn deleting_a_role_needs_the_acting_rule_on_holders_and_on_members_of_groups_holding_it() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let manager = server
        .member(
            &org,
            "manager@example.com",
            vec![grant("iam_admin", &[]), grant("read_only", &[])],
        )
        .await;
    let viewer = custom_role(&server, &org, "Viewer", &["account.read"]).await;
    let mut roles = server.roles(&manager.token);

    // A direct holder who also holds analyst (reports.export, pii.read): more than the manager.
    let direct = server
        .member(
            &org,
            "direct@example.com",
            vec![grant(&viewer, &[]), grant("analyst", &[])],
        )
        .await;
    let error = roles
        .delete_role(delete_role(&org, &viewer))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "this user holds permissions you do not hold"
        )
    );
    server
        .users(&org.owner_token)
        .update_user(v1::UpdateUserRequest {
            grants: vec![grant("analyst", &[])],
            ..org.update_user(&direct.id, &["grants"])
        })
        .await
        .unwrap();

    // A member of a group that holds the role, with analyst of their own.
    let member = server
        .member(&org, "member@example.com", vec![grant("analyst", &[])])
        .await;
    let team = group(&server, &org, vec![grant(&viewer, &[])], &[&member.id]).await;
    let error = roles
        .delete_role(delete_role(&org, &viewer))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "this user holds permissions you do not hold"
        )
    );
    assert_eq!(
        group_grants(&server, &org, &team).await,
        [grant(&viewer, &[])],
        "the refused delete changed nothing"
    );

    server
        .groups(&org.owner_token)
        .remove_group_member(v1::RemoveGroupMemberRequest {
            organization_id: org.id.clone(),
            group_id: team,
            user_id: member.id.clone(),
        })
        .await
        .unwrap();
    roles.delete_role(delete_role(&org, &viewer)).await.unwrap();
}

#[tokio::test]
async fn editing_a_role_needs_the_acting_rule_on_every_holder() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let iam = server
        .member(&org, "iam@example.com", vec![grant("iam_admin", &[])])
        .await;
    let finance = custom_role(
        &server,
        &org,
        "Finance",
        &["account.read", "payments.read", "payments.refund"],
    )
    .await;
    let fin = server
        .member(&org, "fin@example.com", vec![grant(&finance, &[])])
        .await;
    let strip = |permissions: &[&str]| v1::UpdateRoleRequest {
        organization_id: org.id.clone(),
        role_id: finance.clone(),
        permissions: permissions.iter().map(|key| key.to_string()).collect(),
        update_mask: update_mask(&["permissions"]),
        ..Default::default()
    };
    let mut roles = server.roles(&iam.token);
    let error = roles
        .update_role(strip(&["account.read"]))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "this user holds permissions you do not hold"
        )
    );
    let refund = server.decide(&org, &fin.id, "payments.refund", "").await;
    assert!(refund.allowed, "the refused edit changed nothing");

    let rename = v1::UpdateRoleRequest {
        organization_id: org.id.clone(),
        role_id: finance.clone(),
        name: "Finance (old)".into(),
        update_mask: update_mask(&["name"]),
        ..Default::default()
    };
    roles.update_role(rename).await.unwrap();

    server
        .roles(&org.owner_token)
        .update_role(strip(&["account.read"]))
        .await
        .unwrap();
    assert!(
        !server
            .decide(&org, &fin.id, "payments.refund", "")
            .await
            .allowed
    );
}

#[tokio::test]
async fn editing_or_deleting_a_group_needs_the_acting_rule_on_every_member() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let iam = server
        .member(&org, "iam@example.com", vec![grant("iam_admin", &[])])
        .await;
    let viewer = custom_role(&server, &org, "Viewer", &["account.read"]).await;
    let fin = server
        .member(&org, "fin@example.com", vec![grant("analyst", &[])])
        .await;
    let team = group(&server, &org, vec![grant(&viewer, &[])], &[&fin.id]).await;
    let mut groups = server.groups(&iam.token);

    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let narrow = v1::UpdateGroupRequest {
        organization_id: org.id.clone(),
        group_id: team.clone(),
        grants: vec![grant(&viewer, &[&gmbh])],
        update_mask: update_mask(&["grants"]),
        ..Default::default()
    };
    let error = groups.update_group(narrow.clone()).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "this user holds permissions you do not hold"
        )
    );
    let error = groups
        .delete_group(delete_group(&org, &team))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "this user holds permissions you do not hold"
        )
    );
    let rename = v1::UpdateGroupRequest {
        organization_id: org.id.clone(),
        group_id: team.clone(),
        name: "Finance".into(),
        update_mask: update_mask(&["name"]),
        ..Default::default()
    };
    groups.update_group(rename).await.unwrap();
    assert_eq!(
        group_grants(&server, &org, &team).await,
        [grant(&viewer, &[])],
        "the refused edits changed nothing"
    );

    let mut owner = server.groups(&org.owner_token);
    owner.update_group(narrow).await.unwrap();
    owner.delete_group(delete_group(&org, &team)).await.unwrap();
}
