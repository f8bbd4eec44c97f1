//! Revisions: concurrent writes are issued revisions that commit in order, so a poller reading the
//! change feed sees a gap-free sequence, and a write that fails issues none.
use std::sync::Arc;

use warden_core::ports::{AuditStore, SubjectSource};

use crate::{TestStore, audit};

pub async fn concurrent_writes_issue_revisions_a_poller_reads_without_gaps(store: &TestStore) {
    let organizations = [store.organization().await.id, store.organization().await.id];
    let (start, _) = store.revisions().await.unwrap();
    let store = Arc::new(store.store.clone());
    const PER_ORGANIZATION: usize = 25;
    let writers: Vec<_> = organizations
        .into_iter()
        .map(|organization| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..PER_ORGANIZATION {
                    store
                        .record_audit(&audit(organization, "role.updated"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    // Poll while they write: each poll continues exactly where the previous one ended.
    let mut seen = start;
    let mut changes = Vec::new();
    while changes.len() < 2 * PER_ORGANIZATION {
        let batch = store.changes_after(seen, 1000).await.unwrap();
        for change in batch {
            assert_eq!(change.revision, seen + 1, "a gap after {seen}");
            seen = change.revision;
            changes.push(change);
        }
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    for organization in organizations {
        let last = changes
            .iter()
            .filter(|change| change.organization == Some(organization))
            .map(|change| change.revision)
            .max();
        assert_eq!(store.revision(organization).await.unwrap(), last);
    }
    let (latest, all) = store.revisions().await.unwrap();
    assert_eq!(latest, seen);
    assert!(
        all.iter()
            .any(|(id, revision)| *id == organizations[0] && *revision > start)
    );
}

pub async fn a_write_that_fails_issues_no_revision(store: &TestStore) {
    let organization = store.organization().await.id;
    let first = audit(organization, "role.updated");
    store.record_audit(&first).await.unwrap();
    let (latest, _) = store.revisions().await.unwrap();
    // The same audit id again: the write fails, and takes its revision with it.
    assert!(store.record_audit(&first).await.is_err());
    assert!(store.changes_after(latest, 10).await.unwrap().is_empty());
    assert_eq!(store.revision(organization).await.unwrap(), Some(latest));
}

pub async fn sign_ins_issue_no_revision(store: &TestStore) {
    let organization = store.organization().await.id;
    let (latest, _) = store.revisions().await.unwrap();
    store
        .record_audit(&audit(organization, "user.signed_in"))
        .await
        .unwrap();
    assert!(store.changes_after(latest, 10).await.unwrap().is_empty());
}
