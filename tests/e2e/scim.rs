//! SCIM 2.0 provisioning (issue 18): tokens over gRPC, the organisation "managed by your identity
//! provider" while one is live, and Okta- and Entra-style provisioning sequences over HTTP whose
//! every step CheckPermission sees at once.
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt as _;
use warden_proto::v1;
use warden_tests::{TestOrg, TestServer, grant, update_mask};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<String>,
    if_match: Option<&str>,
) -> Answer {
    let mut request = Client::new()
        .request(method, format!("{}/scim/v2{path}", server.http_url))
        .bearer_auth(token)
        .header("content-type", "application/scim+json");
    if let Some(body) = body {
        request = request.body(body);
    }
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    let response = request.send().await.expect("http request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = match text.is_empty() {
        true => Value::Null,
        false => serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text:?}")),
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(server: &TestServer, token: &str, path: &str) -> Answer {
    call(server, Method::GET, path, token, None, None).await
}

async fn send(server: &TestServer, token: &str, method: Method, path: &str, body: Value) -> Answer {
    call(server, method, path, token, Some(body.to_string()), None).await
}

fn reason(status: &tonic::Status) -> String {
    status.get_details_error_info().expect("error info").reason
}

fn okta_user(email: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": email,
        "name": { "givenName": "Grace", "familyName": "Hopper" },
        "emails": [{ "primary": true, "value": email, "type": "work" }],
        "displayName": "Grace Hopper",
        "locale": "en-US",
        "externalId": "00u1okta",
        "groups": [],
        "password": "ignored-Secret-1",
        "active": true,
    })
}

fn patch(operations: Value) -> Value {
    json!({ "schemas": [PATCH], "Operations": operations })
}

/// A group with analyst on the whole organisation, as an administrator sets it up in Warden.
async fn grant_group(server: &TestServer, org: &TestOrg, group_id: &str) {
    let update = v1::UpdateGroupRequest {
        organization_id: org.id.clone(),
        group_id: group_id.into(),
        grants: vec![grant("analyst", &[])],
        update_mask: update_mask(&["grants"]),
        ..Default::default()
    };
    server
        .groups(&org.owner_token)
        .update_group(update)
        .await
        .expect("group grants stay editable while SCIM is on");
}

async fn allowed(server: &TestServer, org: &TestOrg, user: &str) -> bool {
    server.decide(org, user, "payments.read", "").await.allowed
}

#[tokio::test]
async fn scim_tokens_are_shown_once_need_security_write_and_revoke_at_once() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Globex").await;
    let analyst = server
        .member(&org, "analyst@example.com", vec![grant("analyst", &[])])
        .await;
    let (id, secret) = server.scim_token(&org).await;
    assert!(secret.starts_with("wscim_"));

    let list = v1::ListScimTokensRequest {
        organization_id: org.id.clone(),
        ..Default::default()
    };
    let listed = server
        .scim(&org.owner_token)
        .list_scim_tokens(list.clone())
        .await
        .unwrap()
        .into_inner()
        .scim_tokens;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert!(secret.contains(&listed[0].prefix));
    let stored = server.db.texts("SELECT secret_hash FROM scim_tokens").await;
    assert!(!stored.iter().flatten().any(|hash| hash.contains(&secret)));

    // Only holders of security.write; another organisation's token is NOT_FOUND.
    let denied = server
        .scim(&analyst.token)
        .list_scim_tokens(list)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let foreign = v1::RevokeScimTokenRequest {
        organization_id: other.id.clone(),
        scim_token_id: id.clone(),
    };
    let missing = server
        .scim(&other.owner_token)
        .revoke_scim_token(foreign)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    assert_eq!(get(&server, &secret, "/Users").await.status, StatusCode::OK);
    assert_eq!(
        get(&server, &org.api_key, "/Users").await.status,
        StatusCode::UNAUTHORIZED
    );
    let revoke = v1::RevokeScimTokenRequest {
        organization_id: org.id.clone(),
        scim_token_id: id.clone(),
    };
    let revoked = server
        .scim(&org.owner_token)
        .revoke_scim_token(revoke)
        .await
        .unwrap();
    assert!(
        revoked
            .into_inner()
            .scim_token
            .unwrap()
            .revoke_time
            .is_some()
    );
    let refused = get(&server, &secret, "/Users").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["status"], "401");

    let actions: Vec<String> = server
        .audit(&org.owner_token)
        .list_audit_events(org.list_audit_events())
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .map(|event| event.action)
        .collect();
    assert!(
        actions.contains(&"scim_token.created".to_string()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"scim_token.revoked".to_string()),
        "{actions:?}"
    );
}

#[tokio::test]
async fn scim_organisations_are_managed_by_the_identity_provider_until_the_last_token_goes() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let kept = server
        .member(&org, "kept@example.com", vec![grant("analyst", &[])])
        .await;
    let group = server
        .groups(&org.owner_token)
        .create_group(org.create_group("ops", vec![grant("read_only", &[])]))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    let (id, _) = server.scim_token(&org).await;
    let mut users = server.users(&org.owner_token);
    let invite = users
        .invite_user(org.invite_user("new@example.com", vec![grant("analyst", &[])]))
        .await
        .unwrap_err();
    assert_eq!(
        (invite.code(), reason(&invite)),
        (Code::FailedPrecondition, "MANAGED_BY_IDP".into())
    );
    let mut update = org.update_user(&kept.id, &["first_name"]);
    update.first_name = "Renamed".into();
    let edit = users.update_user(update).await.unwrap_err();
    assert_eq!(reason(&edit), "MANAGED_BY_IDP");
    let delete = users
        .delete_user(org.delete_user(&kept.id))
        .await
        .unwrap_err();
    assert_eq!(reason(&delete), "MANAGED_BY_IDP");
    let mut groups = server.groups(&org.owner_token);
    let add = groups
        .add_group_member(org.add_group_member(&group.id, &kept.id))
        .await
        .unwrap_err();
    assert_eq!(
        (add.code(), reason(&add)),
        (Code::FailedPrecondition, "MANAGED_BY_IDP".into())
    );
    // Roles and group grants stay editable.
    grant_group(&server, &org, &group.id).await;
    server
        .create_role(&org, "Auditor", &["payments.read"])
        .await;

    let revoke = v1::RevokeScimTokenRequest {
        organization_id: org.id.clone(),
        scim_token_id: id,
    };
    server
        .scim(&org.owner_token)
        .revoke_scim_token(revoke)
        .await
        .unwrap();
    users
        .invite_user(org.invite_user("new@example.com", vec![grant("analyst", &[])]))
        .await
        .expect("managed here again");
    groups
        .add_group_member(org.add_group_member(&group.id, &kept.id))
        .await
        .expect("memberships managed here again");
}

#[tokio::test]
async fn scim_okta_sequence_provisions_deactivates_reactivates_pushes_groups_and_deletes() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let (_, token) = server.scim_token(&org).await;

    // Okta first looks the user up by userName, then creates it.
    let filter = "/Users?filter=userName%20eq%20%22grace%40example.com%22&startIndex=1&count=100";
    let none = get(&server, &token, filter).await;
    assert_eq!(
        (none.status, none.body["totalResults"].clone()),
        (StatusCode::OK, json!(0))
    );
    let created = send(
        &server,
        &token,
        Method::POST,
        "/Users",
        okta_user("grace@example.com"),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["externalId"], "00u1okta");
    assert_eq!(created.body["active"], true);
    assert!(created.headers.contains_key("etag"));
    let user = server.get_user(&org, &id).await;
    assert_eq!(
        (user.email.as_str(), user.first_name.as_str()),
        ("grace@example.com", "Grace")
    );
    assert_eq!(user.status(), v1::UserStatus::Active);
    let found = get(&server, &token, filter).await;
    assert_eq!(found.body["totalResults"], 1);
    assert_eq!(found.body["Resources"][0]["id"], id.as_str());

    // The same email again, in any organisation: 409 uniqueness.
    let again = send(
        &server,
        &token,
        Method::POST,
        "/Users",
        okta_user("grace@example.com"),
    )
    .await;
    assert_eq!(
        (again.status, again.body["scimType"].clone()),
        (StatusCode::CONFLICT, json!("uniqueness"))
    );

    // Group push: the group, then its members; its grants come from Warden.
    let pushed = json!({ "schemas": [GROUP], "displayName": "Payments", "members": [] });
    let group = send(&server, &token, Method::POST, "/Groups", pushed).await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.body);
    let group_id = group.body["id"].as_str().unwrap().to_owned();
    grant_group(&server, &org, &group_id).await;
    assert!(!allowed(&server, &org, &id).await);
    let add = patch(json!([{ "op": "add", "path": "members", "value": [{ "value": id }] }]));
    let added = send(
        &server,
        &token,
        Method::PATCH,
        &format!("/Groups/{group_id}"),
        add,
    )
    .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["members"][0]["value"], id.as_str());
    assert!(
        allowed(&server, &org, &id).await,
        "the membership counts at once"
    );

    // Deactivate: suspended, denied at once; reactivate: allowed again.
    let off = patch(json!([{ "op": "replace", "value": { "active": false } }]));
    let off = send(&server, &token, Method::PATCH, &format!("/Users/{id}"), off).await;
    assert_eq!(
        (off.status, off.body["active"].clone()),
        (StatusCode::OK, json!(false))
    );
    assert_eq!(
        server.get_user(&org, &id).await.status(),
        v1::UserStatus::Suspended
    );
    assert!(!allowed(&server, &org, &id).await);
    let on = patch(json!([{ "op": "replace", "value": { "active": true } }]));
    let on = send(&server, &token, Method::PATCH, &format!("/Users/{id}"), on).await;
    assert_eq!(on.body["active"], true);
    assert!(allowed(&server, &org, &id).await);

    // Removing the member takes the grant away at once; DELETE archives.
    let remove = patch(json!([{ "op": "remove", "path": format!("members[value eq \"{id}\"]") }]));
    let removed = send(
        &server,
        &token,
        Method::PATCH,
        &format!("/Groups/{group_id}"),
        remove,
    )
    .await;
    assert_eq!(removed.body["members"], json!([]));
    assert!(!allowed(&server, &org, &id).await);
    let deleted = call(
        &server,
        Method::DELETE,
        &format!("/Users/{id}"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.get_user(&org, &id).await.status(),
        v1::UserStatus::Archived
    );
    assert_eq!(
        get(&server, &token, &format!("/Users/{id}")).await.status,
        StatusCode::NOT_FOUND
    );

    let events = server
        .audit(&org.owner_token)
        .list_audit_events(org.list_audit_events())
        .await
        .unwrap()
        .into_inner()
        .events;
    let provisioned = events
        .iter()
        .find(|event| event.action == "user.provisioned")
        .unwrap();
    assert_eq!(provisioned.actor_kind, "scim_token");
    assert!(
        events
            .iter()
            .any(|event| event.action == "user.suspended" && event.actor_kind == "scim_token")
    );
}

#[tokio::test]
async fn scim_entra_sequence_with_string_booleans_value_paths_puts_and_etags() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let (_, token) = server.scim_token(&org).await;
    let body = json!({
        "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "e-1",
        "userName": "alan@example.com",
        "active": true,
        "displayName": "Alan Turing",
        "title": "Mathematician",
        "emails": [{ "primary": true, "type": "work", "value": "alan@example.com" }],
        "meta": { "resourceType": "User" },
        "name": { "formatted": "Alan Turing", "familyName": "Turing", "givenName": "Alan" },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "Maths" },
    });
    let created = send(&server, &token, Method::POST, "/Users", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");

    // Entra sends "False" as a string, and replaces the work email through a value path.
    let off = patch(json!([
        { "op": "Replace", "path": "active", "value": "False" },
        { "op": "replace", "path": "emails[type eq \"work\"].value", "value": "alan.turing@example.com" },
        { "op": "replace", "path": "name.givenName", "value": "Alan M." },
    ]));
    let off = send(&server, &token, Method::PATCH, &path, off).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(off.body["userName"], "alan.turing@example.com");
    let user = server.get_user(&org, &id).await;
    assert_eq!(user.status(), v1::UserStatus::Suspended);
    assert_eq!(
        (user.email.as_str(), user.first_name.as_str()),
        ("alan.turing@example.com", "Alan M.")
    );

    // If-Match: a stale version is 412, the current one applies.
    let stale = created.headers["etag"].to_str().unwrap().to_owned();
    let current = off.headers["etag"].to_str().unwrap().to_owned();
    let on = patch(json!([{ "op": "Replace", "path": "active", "value": "True" }]));
    let refused = call(
        &server,
        Method::PATCH,
        &path,
        &token,
        Some(on.to_string()),
        Some(&stale),
    )
    .await;
    assert_eq!(refused.status, StatusCode::PRECONDITION_FAILED);
    let applied = call(
        &server,
        Method::PATCH,
        &path,
        &token,
        Some(on.to_string()),
        Some(&current),
    )
    .await;
    assert_eq!(
        (applied.status, applied.body["active"].clone()),
        (StatusCode::OK, json!(true))
    );

    // Group with members at creation, renamed by PUT, members removed Entra's way, deleted.
    let group = json!({ "schemas": [GROUP], "displayName": "Finance", "externalId": "g-1", "members": [{ "value": id }] });
    let group = send(&server, &token, Method::POST, "/Groups", group).await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.body);
    let group_id = group.body["id"].as_str().unwrap().to_owned();
    assert_eq!(group.body["externalId"], "g-1");
    grant_group(&server, &org, &group_id).await;
    assert!(allowed(&server, &org, &id).await);
    let renamed =
        json!({ "schemas": [GROUP], "displayName": "Finance EU", "members": [{ "value": id }] });
    let renamed = send(
        &server,
        &token,
        Method::PUT,
        &format!("/Groups/{group_id}"),
        renamed,
    )
    .await;
    assert_eq!(
        renamed.body["displayName"], "Finance EU",
        "{}",
        renamed.body
    );
    let remove = patch(json!([{ "op": "Remove", "path": "members", "value": [{ "value": id }] }]));
    let removed = send(
        &server,
        &token,
        Method::PATCH,
        &format!("/Groups/{group_id}"),
        remove,
    )
    .await;
    assert_eq!(removed.body["members"], json!([]), "{}", removed.body);
    assert!(!allowed(&server, &org, &id).await);
    let filter =
        "/Groups?filter=displayName%20eq%20%22Finance%20EU%22&attributes=displayName".to_string();
    let listed = get(&server, &token, &filter).await;
    assert_eq!(listed.body["totalResults"], 1);
    assert!(listed.body["Resources"][0].get("members").is_none());
    let gone = call(
        &server,
        Method::DELETE,
        &format!("/Groups/{group_id}"),
        &token,
        None,
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let groups = server
        .groups(&org.owner_token)
        .list_groups(v1::ListGroupsRequest {
            organization_id: org.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert!(groups.is_empty());
}

#[tokio::test]
async fn scim_bad_input_is_a_scim_400_and_other_organisations_are_404() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Globex").await;
    let (_, token) = server.scim_token(&org).await;
    let (_, foreign) = server.scim_token(&other).await;

    let cases = [
        ("not json", "invalidSyntax"),
        (
            r#"{"schemas": ["urn:wrong"], "userName": "a@example.com"}"#,
            "invalidValue",
        ),
        (
            &json!({ "schemas": [USER], "userName": "a@example.com", "shoeSize": 44 }).to_string(),
            "invalidSyntax",
        ),
        (
            &json!({ "schemas": [USER], "userName": "not an email" }).to_string(),
            "invalidValue",
        ),
        (
            &json!({ "schemas": [USER], "userName": "a@example.com", "active": 3 }).to_string(),
            "invalidValue",
        ),
    ];
    for (body, scim_type) in cases {
        let answer = call(
            &server,
            Method::POST,
            "/Users",
            &token,
            Some(body.to_owned()),
            None,
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.body
        );
        assert_eq!(answer.body["scimType"], scim_type, "{body}");
        assert_eq!(
            answer.body["schemas"][0],
            "urn:ietf:params:scim:api:messages:2.0:Error"
        );
    }
    let huge = "x".repeat(300 * 1024);
    let oversized = call(&server, Method::POST, "/Users", &token, Some(huge), None).await;
    assert_eq!(oversized.status, StatusCode::PAYLOAD_TOO_LARGE);

    let deep = format!("{}userName pr{}", "(".repeat(30), ")".repeat(30));
    for filter in [deep.as_str(), "userName zz 1", "userName eq"] {
        let encoded: String = filter.bytes().map(|byte| format!("%{byte:02X}")).collect();
        let answer = get(&server, &token, &format!("/Users?filter={encoded}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{filter}");
        assert_eq!(answer.body["scimType"], "invalidFilter");
    }
    let capped = get(&server, &token, "/Users?count=100000").await;
    assert_eq!(capped.status, StatusCode::OK);
    assert_eq!(
        get(&server, &token, "/Users?count=many").await.status,
        StatusCode::BAD_REQUEST
    );
    let bad_op = patch(json!([{ "op": "move", "path": "active" }]));
    let owner = format!("/Users/{}", org.owner_id);
    let answer = send(&server, &token, Method::PATCH, &owner, bad_op).await;
    assert_eq!(
        (answer.status, answer.body["scimType"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalidSyntax"))
    );

    // Another organisation's ids: 404 for reads and writes alike.
    let created = send(
        &server,
        &token,
        Method::POST,
        "/Users",
        okta_user("mine@example.com"),
    )
    .await;
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        get(&server, &foreign, &format!("/Users/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let off = patch(json!([{ "op": "replace", "value": { "active": false } }]));
    let answer = send(
        &server,
        &foreign,
        Method::PATCH,
        &format!("/Users/{id}"),
        off,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = call(
        &server,
        Method::DELETE,
        &format!("/Users/{}", org.owner_id),
        &foreign,
        None,
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let listed = get(&server, &foreign, "/Users").await;
    assert!(!listed.body.to_string().contains(id));
    let group =
        json!({ "schemas": [GROUP], "displayName": "Theirs", "members": [{ "value": id }] });
    let answer = send(&server, &foreign, Method::POST, "/Groups", group).await;
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "another organisation's user is no member"
    );

    // Discovery answers with the token only.
    let search = json!({ "filter": "userName sw \"mine\"", "attributes": ["userName"] });
    let searched = send(&server, &token, Method::POST, "/Users/.search", search).await;
    assert_eq!(searched.body["totalResults"], 1, "{}", searched.body);
    assert!(searched.body["Resources"][0].get("emails").is_none());
    let user_schema = format!("/Schemas/{USER}");
    for path in [
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/ResourceTypes/User",
        "/Schemas",
        &user_schema,
    ] {
        assert_eq!(
            get(&server, &token, path).await.status,
            StatusCode::OK,
            "{path}"
        );
        assert_eq!(
            get(&server, "wscim_nope.nope", path).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}
