//! Reading and listing users: search, filters, stable pages, entity-scoped admins and tenancy.
use tonic::Code;
use warden_proto::v1;
use warden_tests::{OPERATOR_TOKEN, TestServer, grant};

#[tokio::test]
async fn users_are_searched_filtered_and_paged_stably() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    for (email, role, entities) in [
        ("mary.jackson@example.com", "analyst", vec![gmbh.as_str()]),
        ("katherine@example.com", "developer", vec![]),
        ("dorothy@nasa.example", "analyst", vec![]),
        ("under_score@example.com", "read_only", vec![gmbh.as_str()]),
    ] {
        server
            .invite(&org, &org.owner_token, email, vec![grant(role, &entities)])
            .await;
    }
    let owner = server.users(&org.owner_token);
    let list = async |request: v1::ListUsersRequest| {
        let reply = owner.clone().list_users(request).await.unwrap();
        let users = reply.into_inner().users.into_iter();
        users.map(|u| u.email).collect::<Vec<_>>()
    };
    let query = |query: &str| v1::ListUsersRequest {
        query: query.into(),
        ..org.list_users()
    };
    assert_eq!(list(query("NASA")).await, ["dorothy@nasa.example"]);
    assert_eq!(list(query("jacks")).await, ["mary.jackson@example.com"]);
    assert_eq!(
        list(query("_")).await,
        ["under_score@example.com"],
        "_ is literal"
    );
    assert_eq!(list(query("%")).await, Vec::<String>::new());
    let analysts = v1::ListUsersRequest {
        role_id: "analyst".into(),
        ..org.list_users()
    };
    assert_eq!(
        list(analysts).await,
        ["dorothy@nasa.example", "mary.jackson@example.com"]
    );
    let on_gmbh = list(v1::ListUsersRequest {
        entity_id: gmbh.clone(),
        ..org.list_users()
    })
    .await;
    assert_eq!(
        on_gmbh.len(),
        5,
        "two scoped to the entity, plus the three with full access (owner included): {on_gmbh:?}"
    );
    let status = |status: v1::UserStatus| v1::ListUsersRequest {
        status: status as i32,
        ..org.list_users()
    };
    assert_eq!(
        list(status(v1::UserStatus::Active)).await,
        [org.owner_email.as_str()]
    );
    assert_eq!(list(status(v1::UserStatus::Pending)).await.len(), 4);

    // Pages, newest first; a user invited between pages appears on no later page and nothing repeats.
    let page = |page_token: String| v1::ListUsersRequest {
        page_size: 2,
        page_token,
        ..org.list_users()
    };
    let mut owner = owner.clone();
    let first = owner.list_users(page(String::new())).await.unwrap();
    let first = first.into_inner();
    let reader = vec![grant("read_only", &[])];
    server
        .invite(&org, &org.owner_token, "latecomer@example.com", reader)
        .await;
    let mut seen: Vec<String> = first.users.iter().map(|u| u.email.clone()).collect();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let next = owner.list_users(page(token)).await.unwrap().into_inner();
        seen.extend(next.users.iter().map(|u| u.email.clone()));
        token = next.next_page_token;
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(!seen.contains(&"latecomer@example.com".to_string()));
    let error = owner
        .list_users(page("bm90LWEtdG9rZW4".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "page_token: malformed")
    );
}

#[tokio::test]
async fn another_organizations_users_are_not_found() {
    let server = TestServer::start().await;
    let acme = server.create_organization("Acme").await;
    let globex = server.create_organization("Globex").await;
    let mut users = server.users(&acme.owner_token);
    let error = users
        .get_user(acme.get_user(&globex.owner_id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "user not found")
    );
    let error = users
        .suspend_user(acme.suspend_user(&globex.owner_id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "user not found")
    );
    let error = users.list_users(globex.list_users()).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "organization not found")
    );
    let error = server
        .users(OPERATOR_TOKEN)
        .list_users(acme.list_users())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn role_and_entity_filters_see_groups_direct_permissions_and_segments() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let retail = server.create_entity(&org, "Retail", &gmbh).await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let reader_on_ltd = || vec![grant("read_only", &[&ltd])];
    let grouped = server
        .member(&org, "grouped@example.com", reader_on_ltd())
        .await;
    let direct = server
        .invite(
            &org,
            &org.owner_token,
            "direct@example.com",
            reader_on_ltd(),
        )
        .await;
    let update = v1::UpdateUserRequest {
        direct_permissions: vec![v1::DirectPermission {
            permission: "payments.read".into(),
            entity_ids: vec![gmbh.clone()],
            all_entities: false,
        }],
        ..org.update_user(&direct.id, &["direct_permissions"])
    };
    let mut owner = server.users(&org.owner_token);
    owner.update_user(update).await.unwrap();
    let mut groups = server.groups(&org.owner_token);
    let create = org.create_group("Analysts", vec![grant("analyst", &[&gmbh])]);
    let group = groups.create_group(create).await.unwrap().into_inner();
    let add = org.add_group_member(&group.group.unwrap().id, &grouped.id);
    groups.add_group_member(add).await.unwrap();

    let list = async |role: &str, entity: &str| {
        let request = v1::ListUsersRequest {
            role_id: role.into(),
            entity_id: entity.into(),
            ..org.list_users()
        };
        let users = owner.clone().list_users(request).await.unwrap();
        let mut emails: Vec<String> = (users.into_inner().users.into_iter())
            .map(|u| u.email)
            .filter(|e| !e.starts_with("owner-"))
            .collect();
        emails.sort();
        emails
    };
    assert_eq!(
        list("analyst", "").await,
        ["grouped@example.com"],
        "a role held through a group"
    );
    assert_eq!(
        list("", &retail).await,
        ["direct@example.com", "grouped@example.com"],
        "a segment is reached through its legal entity"
    );
    assert_eq!(
        list("analyst", &ltd).await,
        Vec::<String>::new(),
        "role and entity must meet in one grant"
    );
    assert_eq!(
        list("read_only", &ltd).await,
        ["direct@example.com", "grouped@example.com"]
    );
}

#[tokio::test]
async fn an_admin_of_one_legal_entity_reads_its_people_and_only_theirs() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let local = server
        .member(&org, "local@example.com", vec![grant("admin", &[&gmbh])])
        .await;
    let invite = async |email: &str, entity: &str| {
        let analyst = vec![grant("analyst", &[entity])];
        server.invite(&org, &org.owner_token, email, analyst).await
    };
    let here = invite("here@example.com", &gmbh).await;
    let there = invite("there@example.com", &ltd).await;
    let mut users = server.users(&local.token);
    assert!(users.get_user(org.get_user(&here.id)).await.is_ok());
    let error = users.get_user(org.get_user(&there.id)).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::PermissionDenied, "requires users.read")
    );
    let on = |entity: &str| v1::ListUsersRequest {
        entity_id: entity.into(),
        ..org.list_users()
    };
    let listed = users
        .list_users(on(&gmbh))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert!(listed.iter().any(|u| u.id == here.id) && listed.iter().all(|u| u.id != there.id));
    let error = users.list_users(on(&ltd)).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let error = users.list_users(on("")).await.unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_list_filtered_by_entity_shows_only_the_users_a_get_would() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let gmbh = server.create_entity(&org, "Acme GmbH", "").await;
    let ltd = server.create_entity(&org, "Acme Ltd", "").await;
    let local = server
        .member(&org, "local@example.com", vec![grant("admin", &[&gmbh])])
        .await;
    let invite = async |email: &str, entities: &[&str]| {
        let analyst = vec![grant("analyst", entities)];
        server.invite(&org, &org.owner_token, email, analyst).await
    };
    let here = invite("here@example.com", &[&gmbh]).await;
    let both = invite("both@example.com", &[&gmbh, &ltd]).await;
    let everywhere = invite("everywhere@example.com", &[]).await;
    let mut users = server.users(&local.token);
    let request = v1::ListUsersRequest {
        entity_id: gmbh.clone(),
        ..org.list_users()
    };
    let listed = users.list_users(request).await.unwrap().into_inner().users;
    let mut ids: Vec<&str> = listed.iter().map(|u| u.id.as_str()).collect();
    ids.sort();
    let mut expected = vec![local.id.as_str(), here.id.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "not the owner, {both:?} or {everywhere:?}");
    for hidden in [&org.owner_id, &both.id, &everywhere.id] {
        let error = users.get_user(org.get_user(hidden)).await.unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);
    }
    for shown in &listed {
        assert!(users.get_user(org.get_user(&shown.id)).await.is_ok());
    }
}
