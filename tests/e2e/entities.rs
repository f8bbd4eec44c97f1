//! Entity management (issue 16): rename, archive and restore, and the tree ListEntities returns.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{TestOrg, TestServer, grant};

fn archive(org: &TestOrg, entity_id: &str) -> v1::ArchiveEntityRequest {
    v1::ArchiveEntityRequest {
        organization_id: org.id.clone(),
        entity_id: entity_id.into(),
    }
}

fn restore(org: &TestOrg, entity_id: &str) -> v1::RestoreEntityRequest {
    v1::RestoreEntityRequest {
        organization_id: org.id.clone(),
        entity_id: entity_id.into(),
    }
}

fn rename(org: &TestOrg, entity_id: &str, name: &str) -> v1::UpdateEntityRequest {
    v1::UpdateEntityRequest {
        organization_id: org.id.clone(),
        entity_id: entity_id.into(),
        name: name.into(),
    }
}

fn list(
    org: &TestOrg,
    page_size: i32,
    page_token: String,
    administrable_only: bool,
) -> v1::ListEntitiesRequest {
    v1::ListEntitiesRequest {
        organization_id: org.id.clone(),
        page_size,
        page_token,
        administrable_only,
    }
}

async fn audited(server: &TestServer, org: &TestOrg, action: &str, target: &str) -> usize {
    let request = v1::ListAuditEventsRequest {
        action: action.into(),
        target_id: target.into(),
        ..org.list_audit_events()
    };
    let reply = server
        .audit(&org.owner_token)
        .list_audit_events(request)
        .await;
    reply.unwrap().into_inner().events.len()
}

#[tokio::test]
async fn an_archived_entity_is_covered_by_no_grant_cannot_be_granted_and_is_restorable() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let berlin = server.create_entity(&org, "Berlin", &gmbh).await;
    let analyst = server
        .member(
            &org,
            "analyst@example.com",
            vec![grant("analyst", &[&gmbh])],
        )
        .await;
    assert!(
        server
            .decide(&org, &analyst.id, "payments.read", &berlin)
            .await
            .allowed
    );

    let mut owner = server.organizations(&org.owner_token);
    let reply = owner
        .archive_entity(archive(&org, &gmbh))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.entity.unwrap().archive_time.is_some());
    assert!(!reply.consistency_token.is_empty());
    for (user, entity) in [
        (&analyst.id, &gmbh),
        (&analyst.id, &berlin),
        (&org.owner_id, &gmbh),
    ] {
        let decision = server.decide(&org, user, "payments.read", entity).await;
        assert_eq!(
            (decision.allowed, decision.reason.as_str()),
            (false, "entity is archived")
        );
    }
    assert!(
        server
            .decide(&org, &org.owner_id, "payments.read", "")
            .await
            .allowed
    );

    let invite = server
        .users(&org.owner_token)
        .invite_user(org.invite_user("new@example.com", vec![grant("analyst", &[&gmbh])]))
        .await
        .unwrap_err();
    assert_eq!(
        (invite.code(), invite.message()),
        (
            Code::InvalidArgument,
            "grants[0].entity_ids: an entity is archived; restore it first"
        )
    );
    let again = owner
        .archive_entity(archive(&org, &gmbh))
        .await
        .unwrap_err();
    assert_eq!(
        (again.code(), again.message()),
        (Code::FailedPrecondition, "entity is already archived")
    );
    let segment = owner
        .create_entity(org.create_entity("Munich", &gmbh))
        .await
        .unwrap_err();
    assert_eq!(segment.code(), Code::FailedPrecondition);

    let reply = owner
        .restore_entity(restore(&org, &gmbh))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.entity.unwrap().archive_time.is_none());
    assert!(
        server
            .decide(&org, &analyst.id, "payments.read", &berlin)
            .await
            .allowed
    );
    let again = owner
        .restore_entity(restore(&org, &gmbh))
        .await
        .unwrap_err();
    assert_eq!(
        (again.code(), again.message()),
        (Code::FailedPrecondition, "entity is not archived")
    );
    assert_eq!(audited(&server, &org, "entity.archived", &gmbh).await, 1);
    assert_eq!(audited(&server, &org, "entity.restored", &gmbh).await, 1);
}

#[tokio::test]
async fn renaming_needs_account_write_where_the_entity_is_managed_and_names_the_bad_field() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Other").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let berlin = server.create_entity(&org, "Berlin", &gmbh).await;
    let foreign = server.create_entity(&other, "Other Ltd", "").await;

    let mut owner = server.organizations(&org.owner_token);
    let reply = owner
        .update_entity(rename(&org, &gmbh, " Acme AG "))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().entity.unwrap().name, "Acme AG");
    assert_eq!(audited(&server, &org, "entity.updated", &gmbh).await, 1);

    let cases = [
        (
            rename(&org, &gmbh, " "),
            Code::InvalidArgument,
            "name: is required",
        ),
        (
            rename(&org, "nope", "X"),
            Code::InvalidArgument,
            "entity_id: must be a UUID",
        ),
        (
            rename(&org, &foreign, "X"),
            Code::NotFound,
            "entity not found",
        ),
        (
            v1::UpdateEntityRequest {
                organization_id: other.id.clone(),
                ..rename(&org, &foreign, "X")
            },
            Code::NotFound,
            "organization not found",
        ),
    ];
    for (request, code, message) in cases {
        let error = owner.update_entity(request).await.unwrap_err();
        assert_eq!((error.code(), error.message()), (code, message));
    }
    let error = owner
        .archive_entity(archive(&org, &foreign))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    // An admin of the legal entity manages its segments, not the legal entity itself.
    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[&gmbh])])
        .await;
    let mut admin = server.organizations(&admin.token);
    admin
        .update_entity(rename(&org, &berlin, "Berlin Mitte"))
        .await
        .unwrap();
    let error = admin
        .archive_entity(archive(&org, &gmbh))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::PermissionDenied, "requires account.write")
    );
    let analyst = server
        .member(&org, "analyst@example.com", vec![grant("analyst", &[])])
        .await;
    let error = server
        .organizations(&analyst.token)
        .update_entity(rename(&org, &berlin, "Mine"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn list_entities_returns_the_tree_and_filters_to_what_the_caller_administers() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let a = server.create_entity(&org, "A", "").await;
    let b = server.create_entity(&org, "B", "").await;
    let a1 = server.create_entity(&org, "A1", &a).await;
    let b1 = server.create_entity(&org, "B1", &b).await;

    let mut owner = server.organizations(&org.owner_token);
    let ids = |reply: &v1::ListEntitiesResponse| -> Vec<String> {
        reply
            .entities
            .iter()
            .map(|entity| entity.id.clone())
            .collect()
    };
    let first = owner
        .list_entities(list(&org, 2, String::new(), false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&first), [a.clone(), a1.clone()]);
    let second = owner
        .list_entities(list(&org, 2, first.next_page_token, false))
        .await;
    let second = second.unwrap().into_inner();
    assert_eq!(ids(&second), [b.clone(), b1.clone()]);
    assert_eq!(second.next_page_token, "");
    let all = owner
        .list_entities(list(&org, 0, String::new(), true))
        .await
        .unwrap();
    assert_eq!(all.into_inner().entities.len(), 4);

    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[&a])])
        .await;
    let mine = server
        .organizations(&admin.token)
        .list_entities(list(&org, 0, String::new(), true))
        .await
        .unwrap();
    assert_eq!(ids(&mine.into_inner()), [a1]);
    let error = owner
        .list_entities(list(&org, -1, String::new(), false))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
}
