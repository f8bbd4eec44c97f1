//! Decisions are cached per replica, and never stale: a change acknowledged by one replica is seen
//! by the very next check on another, whose cache was warm (SPEC §5).
use warden_proto::v1;
use warden_tests::{TestServer, grant};

#[tokio::test]
async fn a_change_on_one_replica_is_seen_by_the_next_check_on_another() {
    let (writer, reader) = TestServer::replicas(|_| {}).await;
    let org = writer.create_organization("Acme").await;
    let role = writer
        .create_role(&org, "Refunder", &["payments.read", "payments.refund"])
        .await;
    let alan = writer
        .member(&org, "alan@example.com", vec![grant(&role, &[])])
        .await;
    let refund = async || {
        reader
            .decide(&org, &alan.id, "payments.refund", "")
            .await
            .allowed
    };
    for _ in 0..3 {
        assert!(refund().await, "warm on the reader");
    }

    // Suspension on the writer: the reader's next check denies.
    let mut users = writer.users(&org.owner_token);
    users
        .suspend_user(org.suspend_user(&alan.id))
        .await
        .unwrap();
    assert!(!refund().await, "suspended");
    users
        .restore_user(org.restore_user(&alan.id))
        .await
        .unwrap();
    assert!(refund().await, "restored");

    // A role edit on the writer reaches every holder on the reader at once.
    writer
        .set_role_permissions(&org, &role, &["payments.read"])
        .await;
    assert!(!refund().await, "the role no longer grants refunds");
    assert!(
        reader
            .decide(&org, &alan.id, "payments.read", "")
            .await
            .allowed
    );
}

/// A hundred changes of each kind on one replica, each followed at once by a check on another
/// whose copy of the revisions is polled, not read per check: not one stale answer.
#[tokio::test]
async fn a_hundred_changes_of_each_kind_are_each_seen_by_the_next_check_on_another_replica() {
    let (writer, reader) = TestServer::replicas(|_| {}).await;
    let org = writer.create_organization("Acme").await;
    let role = writer
        .create_role(&org, "Refunder", &["payments.read"])
        .await;
    let alan = writer
        .member(&org, "alan@example.com", vec![grant(&role, &[])])
        .await;
    let refund = async |user: &str| {
        reader
            .decide(&org, user, "payments.refund", "")
            .await
            .allowed
    };
    let mut stale = Vec::new();

    for flip in 0..100 {
        let grants_refunds = flip % 2 == 1; // The last flip (99) grants them.
        let permissions: &[&str] = if grants_refunds {
            &["payments.read", "payments.refund"]
        } else {
            &["payments.read"]
        };
        writer.set_role_permissions(&org, &role, permissions).await;
        if refund(&alan.id).await != grants_refunds {
            stale.push(format!("role flip {flip}"));
        }
    }

    // The role now grants refunds; suspension takes them away and restoring gives them back.
    let mut users = writer.users(&org.owner_token);
    for round in 0..50 {
        users
            .suspend_user(org.suspend_user(&alan.id))
            .await
            .unwrap();
        if refund(&alan.id).await {
            stale.push(format!("suspension {round}"));
        }
        users
            .restore_user(org.restore_user(&alan.id))
            .await
            .unwrap();
        if !refund(&alan.id).await {
            stale.push(format!("restore {round}"));
        }
    }

    // Membership of a group that grants refunds, added and removed.
    let bob = writer
        .member(&org, "bob@example.com", vec![grant("read_only", &[])])
        .await;
    let mut groups = writer.groups(&org.owner_token);
    let group = groups
        .create_group(org.create_group("Refunds", vec![grant(&role, &[])]))
        .await
        .unwrap()
        .into_inner()
        .group
        .unwrap();
    for round in 0..50 {
        groups
            .add_group_member(org.add_group_member(&group.id, &bob.id))
            .await
            .unwrap();
        if !refund(&bob.id).await {
            stale.push(format!("membership {round}"));
        }
        groups
            .remove_group_member(v1::RemoveGroupMemberRequest {
                organization_id: org.id.clone(),
                group_id: group.id.clone(),
                user_id: bob.id.clone(),
            })
            .await
            .unwrap();
        if refund(&bob.id).await {
            stale.push(format!("removal {round}"));
        }
    }
    assert_eq!(stale, Vec::<String>::new(), "stale answers on the reader");
}

/// Every write returns the revision it was given; tokens grow with writes, and a check that asks
/// for a token's freshness sees that write on any replica.
#[tokio::test]
async fn write_tokens_are_revisions_that_grow_and_a_check_at_a_token_sees_its_write() {
    let (writer, reader) = TestServer::replicas(|_| {}).await;
    let org = writer.create_organization("Acme").await;
    let mut organizations = writer.organizations(&org.owner_token);
    let mut revisions = Vec::new();
    let mut entity = String::new();
    for name in ["One", "Two", "Three"] {
        let reply = organizations
            .create_entity(org.create_entity(name, ""))
            .await
            .unwrap()
            .into_inner();
        revisions.push(revision_of(&reply.consistency_token));
        entity = reply.entity.unwrap().id;
        let mut check = org.check(&org.owner_id, "payments.read", &entity);
        check.consistency = Some(v1::Consistency {
            requirement: Some(v1::consistency::Requirement::AtLeastAsFresh(
                reply.consistency_token,
            )),
        });
        let answer = reader
            .authorization(&org.api_key)
            .check_permission(check)
            .await
            .unwrap()
            .into_inner();
        assert!(
            answer.allowed,
            "the new entity {name} is known to the reader"
        );
    }
    assert!(
        revisions.windows(2).all(|pair| pair[0] < pair[1]),
        "{revisions:?}"
    );
    assert!(!entity.is_empty());
}

/// The revision inside a token (tokens are opaque to clients; the test knows their shape).
fn revision_of(token: &str) -> i64 {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .unwrap();
    String::from_utf8(text)
        .unwrap()
        .strip_prefix("r1:")
        .unwrap()
        .parse()
        .unwrap()
}

/// Replicas keep the API keys they have read; a key revoked on one replica is refused at its next
/// call on another whose copy was warm.
#[tokio::test]
async fn a_key_revoked_on_one_replica_is_refused_at_its_next_call_on_another() {
    let (writer, reader) = TestServer::replicas(|_| {}).await;
    let org = writer.create_organization("Acme").await;
    let key = writer
        .api_keys(&org.owner_token)
        .create_api_key(v1::CreateApiKeyRequest {
            organization_id: org.id.clone(),
            name: "billing".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut checks = reader.authorization(&key.secret);
    for _ in 0..3 {
        let answer = checks
            .check_permission(org.check(&org.owner_id, "payments.read", ""))
            .await
            .unwrap();
        assert!(answer.into_inner().allowed, "warm on the reader");
    }
    writer
        .api_keys(&org.owner_token)
        .revoke_api_key(v1::RevokeApiKeyRequest {
            organization_id: org.id.clone(),
            api_key_id: key.api_key.unwrap().id,
        })
        .await
        .unwrap();
    let refused = checks
        .check_permission(org.check(&org.owner_id, "payments.read", ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}
