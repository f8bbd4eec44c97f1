//! A subject loads in three queries whatever it holds and however many are asked for at once: the
//! users, everything they hold (roles, direct permissions, their groups' roles, factors), and the
//! permissions of those roles.
use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use chrono::Utc;
use warden_core::{
    catalogue::READ_ONLY_ROLE,
    decision::Source,
    ids::{GroupId, PermissionKey, UserId},
    model::{DirectGrant, Group, Scope, UserChange},
    ports::{GroupStore, SubjectSource, UserStore},
};

use crate::{TestStore, audit, on_all};

pub async fn subjects_load_in_three_queries_whatever_they_hold(mut store: TestStore) {
    let acme = store.organization().await;
    let mut admins = Vec::new();
    for _ in 0..12 {
        admins.push(store.active_admin(acme.id).await);
    }
    let group = Group {
        id: GroupId::generate(),
        organization_id: acme.id,
        name: "Auditors".to_owned(),
        grants: vec![on_all(READ_ONLY_ROLE)],
        members: vec![],
        created_at: Utc::now(),
    };
    store
        .create_group(&group, &audit(acme.id, "group.created"))
        .await
        .unwrap();
    for member in &admins[..6] {
        store
            .set_membership(
                acme.id,
                group.id,
                *member,
                true,
                &audit(acme.id, "group.joined"),
            )
            .await
            .unwrap();
    }
    let direct = UserChange {
        direct_grants: Some(vec![DirectGrant {
            permission: PermissionKey::new("audit.read"),
            scope: Scope::All,
        }]),
        ..UserChange::default()
    };
    store
        .update_user(acme.id, admins[0], &direct, &audit(acme.id, "user.updated"))
        .await
        .unwrap();

    let selects = Arc::new(AtomicUsize::new(0));
    let counter = selects.clone();
    store.store.observe_queries(move |sql| {
        if sql.trim_start().to_uppercase().starts_with("SELECT") {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });

    let first = store
        .load_subject(acme.id, admins[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(selects.swap(0, Ordering::SeqCst), 3, "one subject");
    let sources: Vec<String> = first
        .holdings
        .iter()
        .map(|holding| match &holding.source {
            Source::Role(role) => format!("role {role}"),
            Source::Group { group, role } => format!("group {group} {role}"),
            Source::Direct => format!("direct {:?}", holding.permissions),
        })
        .collect();
    assert_eq!(
        sources,
        [
            "role admin".to_owned(),
            format!("group Auditors {READ_ONLY_ROLE}"),
            "direct {PermissionKey(\"audit.read\")}".to_owned(),
        ],
        "the role, the group's role and the direct permission, in that order"
    );
    let read_only = &first.holdings[1].permissions;
    assert!(
        read_only.contains(&PermissionKey::new("users.read")),
        "{read_only:?}"
    );

    let mut asked: Vec<UserId> = admins.clone();
    asked.push(UserId::generate()); // Not a user: answered None, in the same queries.
    let loaded = store.load_subjects(acme.id, &asked).await.unwrap();
    assert_eq!(selects.swap(0, Ordering::SeqCst), 3, "thirteen subjects");
    assert_eq!(loaded.len(), asked.len());
    for ((id, subject), asked) in loaded.iter().zip(&asked) {
        assert_eq!(id, asked, "answers come in the order asked");
        let Some(subject) = subject else { continue };
        let groups = subject
            .holdings
            .iter()
            .filter(|holding| matches!(holding.source, Source::Group { .. }))
            .count();
        let member = admins[..6].contains(id);
        assert_eq!(groups, usize::from(member), "{id:?} group holdings");
    }
    assert!(
        loaded.last().unwrap().1.is_none(),
        "an unknown id has no subject"
    );
    assert!(loaded[..12].iter().all(|(_, subject)| subject.is_some()));
}
