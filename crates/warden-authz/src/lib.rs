//! Answers CheckPermission (SPEC §5): loads a subject's holdings and the entity tree through the
//! core `SubjectSource` trait, compiles the subject (`warden_core::compiled`) and answers a check by
//! a lookup, or with the core decision function when the check asks for the reason.
//!
//! Subjects and trees are kept in memory with the revision of their organisation that was read
//! before they were loaded. Every check reads the organisation's current revision (one query) and
//! reuses what it holds only at that revision: every write that can change an answer bumps the
//! revision inside its transaction, so an acknowledged change is seen by the next check on every
//! replica, and nothing cached is ever older than the database.
use std::{
    collections::{BTreeSet, HashMap},
    hash::Hash,
    sync::{Arc, Mutex},
};

use warden_core::{
    Error,
    catalogue::Catalogue,
    compiled::{CompiledSubject, CompiledTree},
    decision::{self, Decision, Target},
    ids::{OrganizationId, PermissionKey, UserId},
    ports::SubjectSource,
};

/// One check, already validated against the catalogue.
#[derive(Clone, Debug)]
pub struct Check {
    pub user: UserId,
    pub permission: PermissionKey,
    pub target: Target,
    /// Whether the decision's reason is wanted. Without it the answer is a compiled lookup and the
    /// reason is left empty.
    pub explain: bool,
}

/// Entries kept per map before it is emptied (a flood of distinct users only costs reloads).
const MAX_CACHED: usize = 100_000;

/// Values tagged with the revision they were loaded at; a newer revision replaces an older one.
struct AtRevision<K, V>(Mutex<HashMap<K, (i64, Arc<V>)>>);

impl<K: Eq + Hash, V> AtRevision<K, V> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &K, revision: i64) -> Option<Arc<V>> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(key)
            .filter(|(at, _)| *at == revision)
            .map(|(_, value)| value.clone())
    }

    fn put(&self, key: K, revision: i64, value: Arc<V>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        match map.get(&key) {
            Some((at, _)) if *at > revision => {} // A concurrent check already holds newer.
            _ => {
                map.insert(key, (revision, value));
            }
        }
    }
}

#[derive(Clone)]
pub struct Authorizer {
    source: Arc<dyn SubjectSource>,
    catalogue: Arc<Catalogue>,
    trees: Arc<AtRevision<OrganizationId, CompiledTree>>,
    subjects: Arc<AtRevision<(OrganizationId, UserId), CompiledSubject>>,
}

impl Authorizer {
    pub fn new(source: Arc<dyn SubjectSource>, catalogue: Arc<Catalogue>) -> Self {
        Self {
            source,
            catalogue,
            trees: Arc::new(AtRevision::new()),
            subjects: Arc::new(AtRevision::new()),
        }
    }

    pub async fn check(
        &self,
        organization: OrganizationId,
        check: &Check,
    ) -> Result<Decision, Error> {
        Ok(self
            .check_many(organization, std::slice::from_ref(check))
            .await?
            .remove(0))
    }

    /// Decides a batch at one revision: one tree and one subject per distinct user.
    /// NOT_FOUND for an organisation that does not exist.
    pub async fn check_many(
        &self,
        organization: OrganizationId,
        checks: &[Check],
    ) -> Result<Vec<Decision>, Error> {
        let (revision, tree) = self.tree(organization).await?;
        let mut subjects: HashMap<UserId, Arc<CompiledSubject>> = HashMap::new();
        let mut decisions = Vec::with_capacity(checks.len());
        for check in checks {
            let subject = match subjects.get(&check.user) {
                Some(subject) => subject.clone(),
                None => {
                    let subject = self
                        .subject(organization, revision, &tree, check.user)
                        .await?;
                    subjects.insert(check.user, subject.clone());
                    subject
                }
            };
            decisions.push(self.decide(&subject, check));
        }
        Ok(decisions)
    }

    /// A lookup in the compiled subject, or `decide` for a reason (or a key outside the catalogue).
    fn decide(&self, subject: &CompiledSubject, check: &Check) -> Decision {
        match self.catalogue.position(&check.permission) {
            Some(position) if !check.explain => Decision {
                allowed: subject.allows(check.target, position),
                reason: String::new(),
            },
            _ => subject.decide(&check.permission, check.target),
        }
    }

    pub async fn effective_permissions(
        &self,
        organization: OrganizationId,
        user: UserId,
        target: Target,
    ) -> Result<BTreeSet<PermissionKey>, Error> {
        let (revision, tree) = self.tree(organization).await?;
        let subject = self.subject(organization, revision, &tree, user).await?;
        Ok(decision::effective_permissions(
            subject.subject(),
            target,
            tree.tree(),
        ))
    }

    /// The organisation's current revision and its tree at (at least) that revision.
    async fn tree(&self, organization: OrganizationId) -> Result<(i64, Arc<CompiledTree>), Error> {
        let revision = self
            .source
            .revision(organization)
            .await?
            .ok_or(Error::NotFound("organization"))?;
        if let Some(tree) = self.trees.get(&organization, revision) {
            return Ok((revision, tree));
        }
        // Read after the revision: what loads is at least as new as the revision it is kept under.
        let tree = Arc::new(CompiledTree::new(
            self.source.load_entity_tree(organization).await?,
        ));
        self.trees.put(organization, revision, tree.clone());
        Ok((revision, tree))
    }

    async fn subject(
        &self,
        organization: OrganizationId,
        revision: i64,
        tree: &Arc<CompiledTree>,
        user: UserId,
    ) -> Result<Arc<CompiledSubject>, Error> {
        let key = (organization, user);
        if let Some(subject) = self.subjects.get(&key, revision) {
            return Ok(subject);
        }
        let subject = self.source.load_subject(organization, user).await?;
        // Compiled against the tree of the same revision: a change of the tree bumps the revision.
        let subject = Arc::new(CompiledSubject::compile(
            subject,
            tree.clone(),
            &self.catalogue,
        ));
        self.subjects.put(key, revision, subject.clone());
        Ok(subject)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    use warden_core::{
        decision::{EntityTree, Holding, Source, Subject},
        model::{Scope, UserStatus},
    };

    use super::*;

    /// A source whose revision the test sets, counting how often it is read in full. Its users hold
    /// `holdings`.
    #[derive(Default)]
    struct Counting {
        revision: AtomicI64,
        loads: AtomicUsize,
        holdings: Vec<Holding>,
    }

    fn catalogue() -> Arc<Catalogue> {
        let text = include_str!("../../../catalogue/default.toml");
        Arc::new(Catalogue::from_toml(text).expect("the shipped catalogue"))
    }

    #[async_trait::async_trait]
    impl SubjectSource for Counting {
        async fn load_subject(
            &self,
            _: OrganizationId,
            user: UserId,
        ) -> Result<Option<Subject>, Error> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Subject {
                user,
                status: UserStatus::Active,
                owner: false,
                holdings: self.holdings.clone(),
            }))
        }
        async fn load_entity_tree(&self, _: OrganizationId) -> Result<EntityTree, Error> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(EntityTree::default())
        }
        async fn revision(&self, _: OrganizationId) -> Result<Option<i64>, Error> {
            Ok(Some(self.revision.load(Ordering::SeqCst)))
        }
    }

    #[tokio::test]
    async fn checks_reuse_what_they_loaded_only_at_the_same_revision() {
        let source = Arc::new(Counting::default());
        let authorizer = Authorizer::new(source.clone(), catalogue());
        let organization = OrganizationId::generate();
        let check = Check {
            user: UserId::generate(),
            permission: PermissionKey::new("payments.read"),
            target: Target::Organization,
            explain: false,
        };
        for _ in 0..5 {
            authorizer.check(organization, &check).await.unwrap();
        }
        assert_eq!(
            source.loads.load(Ordering::SeqCst),
            2,
            "a tree and a subject, once"
        );
        source.revision.store(1, Ordering::SeqCst); // A write committed somewhere.
        authorizer.check(organization, &check).await.unwrap();
        assert_eq!(source.loads.load(Ordering::SeqCst), 4, "both read again");
    }

    #[tokio::test]
    async fn a_check_without_explain_is_the_lookup_and_with_explain_the_decision() {
        let source = Arc::new(Counting {
            holdings: vec![Holding {
                source: Source::Direct,
                scope: Scope::All,
                permissions: [
                    PermissionKey::new("payments.read"),
                    PermissionKey::new("retired.key"), // No longer in the catalogue.
                ]
                .into(),
            }],
            ..Counting::default()
        });
        let authorizer = Authorizer::new(source, catalogue());
        let organization = OrganizationId::generate();
        let user = UserId::generate();
        let check = |permission: &str, explain| Check {
            user,
            permission: PermissionKey::new(permission),
            target: Target::Organization,
            explain,
        };
        let decisions = authorizer
            .check_many(
                organization,
                &[
                    check("payments.read", false),
                    check("payments.read", true),
                    check("payments.refund", false),
                    check("payments.refund", true),
                    check("retired.key", false),
                ],
            )
            .await
            .unwrap();
        let answers: Vec<_> = decisions
            .iter()
            .map(|decision| (decision.allowed, decision.reason.as_str()))
            .collect();
        assert_eq!(
            answers,
            [
                (true, ""),
                (true, "allowed by a direct permission on all entities"),
                (false, ""),
                (false, "no grant includes payments.refund"),
                (true, "allowed by a direct permission on all entities"),
            ]
        );
    }
}
