//! Managing sessions and the users page (issue 16): ListSessions, RevokeSession, sign out
//! everywhere, ListUsers' editable filter and last activity.
use std::time::Duration;

use tonic::Code;
use warden_proto::v1;
use warden_tests::{ANONYMOUS, PASSWORD, TestOrg, TestServer, grant};

/// Whether `access_token` still opens a session: it reads its organisation.
async fn signed_in(server: &TestServer, org: &TestOrg, access_token: &str) -> Result<(), Code> {
    let mut organizations = server.organizations(access_token);
    let read = organizations.get_organization(org.get_organization()).await;
    read.map(drop).map_err(|error| error.code())
}

fn list(org: &TestOrg, user_id: &str) -> v1::ListSessionsRequest {
    v1::ListSessionsRequest {
        organization_id: org.id.clone(),
        user_id: user_id.into(),
        ..Default::default()
    }
}

fn revoke(org: &TestOrg, session_id: &str) -> v1::RevokeSessionRequest {
    v1::RevokeSessionRequest {
        organization_id: org.id.clone(),
        session_id: session_id.into(),
    }
}

fn revoke_all(org: &TestOrg, user_id: &str) -> v1::RevokeAllSessionsRequest {
    v1::RevokeAllSessionsRequest {
        organization_id: org.id.clone(),
        user_id: user_id.into(),
    }
}

#[tokio::test]
async fn own_sessions_are_listed_with_their_origin_and_a_revoked_one_stops_working() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let laptop = server.sign_in(&org.owner_email, PASSWORD).await;
    let phone = server.sign_in(&org.owner_email, PASSWORD).await;

    let mut users = server.users(&laptop.access_token);
    let sessions = users
        .list_sessions(list(&org, ""))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    // The organisation's own sign-in, the laptop and the phone; newest first.
    assert_eq!(sessions.len(), 3);
    let (newest, current) = (&sessions[0], &sessions[1]);
    assert!(!newest.current && current.current);
    assert_eq!(current.user_id, org.owner_id);
    assert_eq!(current.client_address, "127.0.0.1");
    assert!(!current.user_agent.is_empty() && current.user_agent.len() <= 256);
    assert!(current.create_time.is_some() && current.expire_time.is_some());
    assert!(current.last_use_time.is_some(), "this call used it");
    assert!(
        newest.last_use_time.is_none(),
        "the phone has made no call yet"
    );

    // A use is recorded at most once a minute; a refresh always is.
    server.advance(Duration::from_secs(61));
    let refreshed = server
        .auth(ANONYMOUS)
        .refresh_session(v1::RefreshSessionRequest {
            refresh_token: phone.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let sessions = users
        .list_sessions(list(&org, ""))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert!(sessions[0].last_use_time.is_some());
    let owner = server.get_user(&org, &org.owner_id).await;
    assert!(owner.last_active_time.is_some());

    users
        .revoke_session(revoke(&org, &sessions[0].id))
        .await
        .unwrap();
    assert_eq!(
        signed_in(&server, &org, &refreshed.access_token).await,
        Err(Code::Unauthenticated)
    );
    let refresh = server
        .auth(ANONYMOUS)
        .refresh_session(v1::RefreshSessionRequest {
            refresh_token: refreshed.refresh_token,
        })
        .await
        .unwrap_err();
    assert_eq!(refresh.code(), Code::Unauthenticated);
    assert!(signed_in(&server, &org, &laptop.access_token).await.is_ok());

    let again = users
        .revoke_session(revoke(&org, &sessions[0].id))
        .await
        .unwrap_err();
    assert_eq!(
        (again.code(), again.message()),
        (Code::NotFound, "session not found")
    );
    let malformed = users
        .revoke_session(revoke(&org, "nope"))
        .await
        .unwrap_err();
    assert_eq!(
        (malformed.code(), malformed.message()),
        (Code::InvalidArgument, "session_id: must be a UUID")
    );
    let events = server
        .audit(&org.owner_token)
        .list_audit_events(v1::ListAuditEventsRequest {
            action: "user.session_revoked".into(),
            ..org.list_audit_events()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.len(), 1);

    // Signing out everywhere ends the caller's own session too.
    let ended = users
        .revoke_all_sessions(revoke_all(&org, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.revoked_count, 2);
    assert_eq!(
        signed_in(&server, &org, &laptop.access_token).await,
        Err(Code::Unauthenticated)
    );
}

#[tokio::test]
async fn another_users_sessions_are_managed_under_the_acting_rule_and_never_across_organisations() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let other = server.create_organization("Other").await;
    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[])])
        .await;
    let analyst = server
        .member(&org, "analyst@example.com", vec![grant("analyst", &[])])
        .await;

    let error = server
        .users(&analyst.token)
        .list_sessions(list(&org, &admin.id))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::PermissionDenied);
    let mut users = server.users(&admin.token);
    let error = users
        .list_sessions(list(&org, &org.owner_id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (
            Code::PermissionDenied,
            "only the owner can change the owner"
        )
    );
    let theirs = users
        .list_sessions(list(&org, &analyst.id))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(theirs.len(), 1);
    assert!(!theirs[0].current);

    // Another organisation's caller learns nothing: its ids answer NOT_FOUND.
    let mut outsider = server.users(&other.owner_token);
    let error = outsider
        .revoke_session(revoke(&other, &theirs[0].id))
        .await
        .unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::NotFound, "session not found")
    );
    let error = outsider
        .list_sessions(list(&other, &analyst.id))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = outsider.list_sessions(list(&org, "")).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = users.list_sessions(list(&org, "nope")).await.unwrap_err();
    assert_eq!(
        (error.code(), error.message()),
        (Code::InvalidArgument, "user_id: must be a UUID")
    );

    let ended = users
        .revoke_all_sessions(revoke_all(&org, &analyst.id))
        .await
        .unwrap();
    assert_eq!(ended.into_inner().revoked_count, 1);
    assert_eq!(
        signed_in(&server, &org, &analyst.token).await,
        Err(Code::Unauthenticated)
    );
    assert!(signed_in(&server, &org, &admin.token).await.is_ok());
}

#[tokio::test]
async fn the_users_page_filters_to_editable_users() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    let admin = server
        .member(&org, "admin@example.com", vec![grant("admin", &[])])
        .await;
    let analyst = server
        .member(&org, "analyst@example.com", vec![grant("analyst", &[])])
        .await;
    let editable = |token: &str| {
        let mut users = server.users(token);
        let request = v1::ListUsersRequest {
            editable_only: true,
            ..org.list_users()
        };
        async move {
            let mut ids: Vec<String> = users
                .list_users(request)
                .await
                .unwrap()
                .into_inner()
                .users
                .into_iter()
                .map(|user| user.id)
                .collect();
            ids.sort();
            ids
        }
    };
    let mut expected = vec![admin.id.clone(), analyst.id.clone()];
    expected.sort();
    assert_eq!(editable(&admin.token).await, expected);
    let mut everyone = vec![admin.id.clone(), analyst.id.clone(), org.owner_id.clone()];
    everyone.sort();
    assert_eq!(editable(&org.owner_token).await, everyone);
    let all = server
        .users(&admin.token)
        .list_users(org.list_users())
        .await
        .unwrap();
    assert_eq!(all.into_inner().users.len(), 3);
    assert!(
        server
            .get_user(&org, &admin.id)
            .await
            .last_active_time
            .is_some()
    );
    assert!(
        server
            .get_user(&org, &analyst.id)
            .await
            .last_active_time
            .is_none(),
        "signed in, never used"
    );
}

#[tokio::test]
async fn list_roles_counts_each_roles_holders() {
    let server = TestServer::start().await;
    let org = server.create_organization("Acme").await;
    server
        .member(&org, "a@example.com", vec![grant("analyst", &[])])
        .await;
    let b = server
        .member(
            &org,
            "b@example.com",
            vec![grant("analyst", &[]), grant("developer", &[])],
        )
        .await;
    let roles = server
        .roles(&org.owner_token)
        .list_roles(v1::ListRolesRequest {
            organization_id: org.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .roles;
    let count = |id: &str| {
        roles
            .iter()
            .find(|role| role.id == id)
            .map(|role| role.holder_count)
    };
    assert_eq!(
        (
            count("owner"),
            count("analyst"),
            count("developer"),
            count("read_only")
        ),
        (Some(1), Some(2), Some(1), Some(0))
    );
    // An archived user holds nothing any more.
    server
        .users(&org.owner_token)
        .delete_user(org.delete_user(&b.id))
        .await
        .unwrap();
    let roles = server
        .roles(&org.owner_token)
        .list_roles(v1::ListRolesRequest {
            organization_id: org.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .roles;
    let analyst = roles.iter().find(|role| role.id == "analyst").unwrap();
    assert_eq!(analyst.holder_count, 1);
}
