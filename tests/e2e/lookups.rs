//! LookupSubjects and LookupResources: exactly the pairs CheckPermission allows, paged, fresh.
use std::collections::BTreeSet;

use tonic::Code;
use warden_proto::v1::{self, consistency::Requirement};
use warden_tests::{TestOrg, TestServer, grant};

const PERMISSIONS: [&str; 4] = ["payments.read", "payments.refund", "users.read", "pii.read"];

fn subjects(org: &TestOrg, permission: &str, entity_id: &str) -> v1::LookupSubjectsRequest {
    v1::LookupSubjectsRequest {
        organization_id: org.id.clone(),
        permission: permission.into(),
        entity_id: entity_id.into(),
        consistency: None,
        page_size: 2,
        page_token: String::new(),
    }
}

fn resources(org: &TestOrg, user_id: &str, permission: &str) -> v1::LookupResourcesRequest {
    v1::LookupResourcesRequest {
        organization_id: org.id.clone(),
        user_id: user_id.into(),
        permission: permission.into(),
        consistency: None,
        page_size: 2,
        page_token: String::new(),
    }
}

/// Every page of a LookupSubjects, asserting no id comes twice.
async fn all_subjects(
    server: &TestServer,
    org: &TestOrg,
    mut request: v1::LookupSubjectsRequest,
) -> Vec<String> {
    let mut client = server.authorization(&org.api_key);
    let mut found = Vec::new();
    loop {
        let page = client
            .lookup_subjects(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(page.user_ids.len() <= request.page_size as usize);
        found.extend(page.user_ids);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let distinct: BTreeSet<_> = found.iter().collect();
    assert_eq!(distinct.len(), found.len(), "no user twice: {found:?}");
    found
}

/// Every page of a LookupResources, asserting no id comes twice.
async fn all_resources(
    server: &TestServer,
    org: &TestOrg,
    mut request: v1::LookupResourcesRequest,
) -> Vec<String> {
    let mut client = server.authorization(&org.api_key);
    let mut found = Vec::new();
    loop {
        let page = client
            .lookup_resources(request.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(page.entity_ids.len() <= request.page_size as usize);
        found.extend(page.entity_ids);
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    let distinct: BTreeSet<_> = found.iter().collect();
    assert_eq!(distinct.len(), found.len(), "no entity twice: {found:?}");
    found
}

/// Roles on all entities and on a legal entity, a custom role through a group on a segment, a
/// direct permission, a suspended and a pending user, and another organisation's user and entity.
#[tokio::test]
async fn lookups_answer_exactly_what_checks_answer() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Globex").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let berlin = server.create_entity(&org, "Berlin", &gmbh).await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let london = server.create_entity(&org, "London", &ltd).await;
    let foreign = server.create_entity(&other, "Globex Ltd", "").await;
    let analyst = server
        .member(&org, "analyst@acme.test", vec![grant("analyst", &[])])
        .await;
    let admin = server
        .member(&org, "admin@acme.test", vec![grant("admin", &[&gmbh])])
        .await;
    let refunds = server
        .create_role(&org, "Refunds", &["payments.refund", "payments.read"])
        .await;
    let member = server
        .member(&org, "member@acme.test", vec![grant("read_only", &[&ltd])])
        .await;
    let group = server
        .groups(&org.owner_token)
        .create_group(org.create_group("London refunds", vec![grant(&refunds, &[&london])]))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap()
        .id;
    server
        .groups(&org.owner_token)
        .add_group_member(org.add_group_member(&group, &member.id))
        .await
        .unwrap();
    let direct = server
        .member(
            &org,
            "direct@acme.test",
            vec![grant("read_only", &[&london])],
        )
        .await;
    let mut update = org.update_user(&direct.id, &["direct_permissions"]);
    update.direct_permissions = vec![v1::DirectPermission {
        permission: "pii.read".into(),
        entity_ids: vec![berlin.clone()],
        all_entities: false,
    }];
    server
        .users(&org.owner_token)
        .update_user(update)
        .await
        .unwrap();
    let suspended = server
        .member(&org, "suspended@acme.test", vec![grant("admin", &[])])
        .await;
    server
        .users(&org.owner_token)
        .suspend_user(org.suspend_user(&suspended.id))
        .await
        .unwrap();
    let pending = server
        .invite(
            &org,
            &org.owner_token,
            "pending@acme.test",
            vec![grant("admin", &[])],
        )
        .await;

    let users = [
        org.owner_id.clone(),
        analyst.id,
        admin.id,
        member.id,
        direct.id,
        suspended.id,
        pending.id,
        other.owner_id.clone(),
    ];
    let entities = [gmbh, berlin, ltd, london, foreign];
    let allowed = async |user: &str, permission: &str, entity: &str| {
        server.decide(&org, user, permission, entity).await.allowed
    };
    for permission in PERMISSIONS {
        for entity in std::iter::once("").chain(entities.iter().map(String::as_str)) {
            let mut expected = Vec::new();
            for user in &users {
                if allowed(user, permission, entity).await {
                    expected.push(user.clone());
                }
            }
            expected.sort();
            let found = all_subjects(&server, &org, subjects(&org, permission, entity)).await;
            assert_eq!(found, expected, "who may {permission} on {entity:?}");
        }
        for user in &users {
            let mut expected = Vec::new();
            for entity in &entities {
                if allowed(user, permission, entity).await {
                    expected.push(entity.clone());
                }
            }
            expected.sort();
            let found = all_resources(&server, &org, resources(&org, user, permission)).await;
            assert_eq!(found, expected, "where {user} may {permission}");
        }
    }
}

#[tokio::test]
async fn pages_cover_every_answer_once_and_forged_pages_are_refused() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let mut expected = vec![org.owner_id.clone()];
    for n in 0..4 {
        let email = format!("analyst{n}@acme.test");
        expected.push(
            server
                .member(&org, &email, vec![grant("analyst", &[])])
                .await
                .id,
        );
    }
    expected.sort();
    let mut entities = Vec::new();
    for n in 0..5 {
        entities.push(server.create_entity(&org, &format!("Entity {n}"), "").await);
    }
    entities.sort();
    for page_size in [1, 2, 5, 500, 100_000] {
        let request = v1::LookupSubjectsRequest {
            page_size,
            ..subjects(&org, "payments.read", "")
        };
        assert_eq!(all_subjects(&server, &org, request).await, expected);
        let request = v1::LookupResourcesRequest {
            page_size,
            ..resources(&org, &org.owner_id, "payments.read")
        };
        assert_eq!(all_resources(&server, &org, request).await, entities);
    }
    let mut client = server.authorization(&org.api_key);
    let first = client
        .lookup_subjects(subjects(&org, "payments.read", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.user_ids, expected[..2]);
    // A token is the same for the same position, so a client can resume from it later.
    let again = client
        .lookup_subjects(subjects(&org, "payments.read", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.next_page_token, first.next_page_token);

    let forged = v1::LookupSubjectsRequest {
        page_token: "djE6bm90LWFuLWlk".into(), // "v1:not-an-id"
        ..subjects(&org, "payments.read", "")
    };
    let error = client.lookup_subjects(forged).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "page_token: malformed")
    );
    let forged = v1::LookupResourcesRequest {
        page_token: "garbage!".into(),
        ..resources(&org, &org.owner_id, "payments.read")
    };
    let error = client.lookup_resources(forged).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "page_token: malformed")
    );
    let negative = v1::LookupResourcesRequest {
        page_size: -1,
        ..resources(&org, &org.owner_id, "payments.read")
    };
    let error = client.lookup_resources(negative).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "page_size: must not be negative")
    );
}

#[tokio::test]
async fn malformed_or_foreign_lookups_are_refused_or_empty() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Globex").await;
    let foreign = server.create_entity(&other, "Globex Ltd", "").await;
    let mut client = server.authorization(&org.api_key);
    let subject_cases = [
        (
            subjects(&org, "payments.teleport", ""),
            "permission: unknown key",
        ),
        (subjects(&org, "", ""), "permission: is required"),
        (
            subjects(&org, "payments.read", "acme"),
            "entity_id: must be a UUID",
        ),
        (
            v1::LookupSubjectsRequest {
                organization_id: "acme".into(),
                ..subjects(&org, "payments.read", "")
            },
            "organization_id: must be a UUID",
        ),
        (
            v1::LookupSubjectsRequest {
                consistency: Some(v1::Consistency {
                    requirement: Some(Requirement::AtLeastAsFresh("stale?".into())),
                }),
                ..subjects(&org, "payments.read", "")
            },
            "consistency.at_least_as_fresh: malformed token",
        ),
    ];
    for (request, message) in subject_cases {
        let error = client.lookup_subjects(request).await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (Code::InvalidArgument, message)
        );
    }
    let resource_cases = [
        (
            resources(&org, &org.owner_id, "payments.teleport"),
            "permission: unknown key",
        ),
        (
            resources(&org, "42", "payments.read"),
            "user_id: must be a UUID",
        ),
    ];
    for (request, message) in resource_cases {
        let error = client.lookup_resources(request).await.unwrap_err();
        assert_eq!(
            (error.code(), error.message()),
            (Code::InvalidArgument, message)
        );
    }
    // Another organisation's ids answer as their checks do: nothing, without saying they exist.
    let reply = client
        .lookup_subjects(subjects(&org, "payments.read", &foreign))
        .await
        .unwrap();
    assert_eq!(reply.into_inner(), v1::LookupSubjectsResponse::default());
    let reply = client
        .lookup_resources(resources(&org, &other.owner_id, "payments.read"))
        .await
        .unwrap();
    assert_eq!(reply.into_inner(), v1::LookupResourcesResponse::default());
    // Another organisation than the key's, and a dashboard user's token, are refused as for checks.
    let error = client
        .lookup_subjects(subjects(&other, "payments.read", ""))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = client
        .lookup_resources(resources(&other, &other.owner_id, "payments.read"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = server
        .authorization(&org.owner_token)
        .lookup_subjects(subjects(&org, "payments.read", ""))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_write_consistency_token_is_honoured_by_the_next_lookup() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let analyst = server
        .member(&org, "analyst@acme.test", vec![grant("analyst", &[])])
        .await;
    let mut client = server.authorization(&org.api_key);
    // Warm the caches at the revision before the writes.
    let before = client
        .lookup_subjects(subjects(&org, "payments.read", ""))
        .await
        .unwrap();
    assert_eq!(before.into_inner().user_ids.len(), 2);
    let created = server
        .organizations(&org.owner_token)
        .create_entity(org.create_entity("New", ""))
        .await
        .unwrap()
        .into_inner();
    let fresh = |token: String| {
        Some(v1::Consistency {
            requirement: Some(Requirement::AtLeastAsFresh(token)),
        })
    };
    let request = v1::LookupResourcesRequest {
        consistency: fresh(created.consistency_token),
        ..resources(&org, &analyst.id, "payments.read")
    };
    let found = client.lookup_resources(request).await.unwrap().into_inner();
    assert_eq!(found.entity_ids, [created.entity.unwrap().id]);
    let suspended = server
        .users(&org.owner_token)
        .suspend_user(org.suspend_user(&analyst.id))
        .await
        .unwrap()
        .into_inner();
    let request = v1::LookupSubjectsRequest {
        consistency: fresh(suspended.consistency_token),
        ..subjects(&org, "payments.read", "")
    };
    let found = client.lookup_subjects(request).await.unwrap().into_inner();
    assert_eq!(
        found.user_ids,
        std::slice::from_ref(&org.owner_id),
        "the suspended analyst is gone"
    );
}
