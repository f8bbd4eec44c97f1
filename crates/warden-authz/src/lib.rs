//! Answers CheckPermission (SPEC §5): loads subjects and the entity tree through the core
//! `SubjectSource` trait, compiles them (`warden_core::compiled`) and answers a check by a lookup,
//! or with the core decision function when the check asks for the reason.
//!
//! Subjects and trees are kept in memory under the revision of their organisation that was read
//! before they were loaded, and reused only at that revision. Where the revision comes from is the
//! consistency mode: the database (`Full`), or this replica's copy of every organisation's revision
//! (`Known`), kept current by polling the database's change feed (`poll`). A copy is trusted only
//! while the last successful poll started less than the lease ago, and every write is acknowledged
//! only a lease after it commits (the server's commit wait): once a write is acknowledged, every
//! replica that answers from memory has polled after it committed. See ARCHITECTURE.md.
use std::{
    collections::{BTreeSet, HashMap},
    hash::Hash,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

mod shared;

pub use shared::{RedisCache, SharedCache};
use warden_core::{
    Error,
    catalogue::Catalogue,
    compiled::{CompiledSubject, CompiledTree},
    decision::{self, Decision, EntityTree, Subject, Target},
    ids::{EntityId, OrganizationId, PermissionKey, UserId},
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

/// Subjects kept in memory by default (`Authorizer::with_capacity`).
pub const DEFAULT_CACHED_SUBJECTS: usize = 100_000;

/// Organisations' trees kept in memory.
const CACHED_TREES: usize = 100_000;

/// One page of a lookup (SPEC §5): what was found, ascending, and where the next page starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupPage<T> {
    pub items: Vec<T>,
    /// Pass it as `after` to get the next page; `None` on the last page. A page may hold fewer
    /// items than asked, even none, and still have a next one: a page examines a bounded number of
    /// users.
    pub next: Option<T>,
}

/// Users a subject lookup examines per batch: one id query and one subject load for the misses.
const LOOKUP_BATCH: u64 = 500;
/// Users one page of a subject lookup examines at most, so a page costs a bounded number of
/// queries however few users match; the page then ends early with `next` set.
const LOOKUP_SCAN: usize = 10_000;

/// Values tagged with the revision they were loaded at; a newer revision replaces an older one.
/// Full, the map is emptied: a flood of distinct keys only costs reloads, never unbounded memory.
struct AtRevision<K, V> {
    map: Mutex<HashMap<K, (i64, Arc<V>)>>,
    capacity: usize,
}

impl<K: Eq + Hash, V> AtRevision<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    fn get(&self, key: &K, revision: i64) -> Option<Arc<V>> {
        let map = self
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Loaded at the revision or after it: fresher than asked is as good.
        map.get(key)
            .filter(|(at, _)| *at >= revision)
            .map(|(_, value)| value.clone())
    }

    fn put(&self, key: K, revision: i64, value: Arc<V>) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= self.capacity {
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

/// How fresh an answer must be (SPEC §5), weakest first, so the strictest of a batch is its max.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Consistency {
    /// This replica's copy of the revisions, even when its lease has lapsed, up to `MAX_STALENESS`.
    MinimizeLatency,
    /// No answer contradicts a write acknowledged before the check began, on any replica.
    #[default]
    Default,
    /// At least as fresh as the revision a write returned in its consistency token.
    AtLeast(i64),
    /// The database's current revision, read by the check itself.
    Full,
}

/// How long `MinimizeLatency` may go on answering from a copy that could not be refreshed.
pub const MAX_STALENESS: Duration = Duration::from_secs(5);

/// Changes read per poll; more than this and the whole table of revisions is read again.
const CHANGES_PER_POLL: u64 = 1000;

/// This replica's copy of every organisation's revision, and when it was last known current.
struct Known {
    revisions: RwLock<Revisions>,
    /// When the last successful poll started, in nanoseconds after `base` plus one (0: never):
    /// everything committed before it is in `revisions`. An atomic, as every check reads it.
    polled: AtomicU64,
    /// When the last poll that ended, well or not, started (same count): checks waiting for a poll
    /// share a failed one too, instead of each trying again in turn behind `polling`.
    attempted: AtomicU64,
    /// Held by the poll under way: the checks that find the lease lapsed wait for one poll
    /// together instead of each reading the database (`Authorizer::caught_up`).
    polling: tokio::sync::Mutex<()>,
    base: Instant,
    lease: Duration,
}

#[derive(Default)]
struct Revisions {
    /// The latest revision read from the feed; `None` before the first poll.
    latest: Option<i64>,
    organizations: HashMap<OrganizationId, i64>,
}

impl Revisions {
    /// Raises an organisation's revision (every organisation's for `None`: the predefined-role
    /// sync) and the latest revision to `revision`.
    fn raise(&mut self, organization: Option<OrganizationId>, revision: i64) {
        match organization {
            Some(organization) => {
                let entry = self.organizations.entry(organization).or_insert(revision);
                *entry = (*entry).max(revision);
            }
            None => self
                .organizations
                .values_mut()
                .for_each(|known| *known = (*known).max(revision)),
        }
        self.raise_latest(revision);
    }

    fn raise_latest(&mut self, revision: i64) {
        self.latest = Some(self.latest.map_or(revision, |latest| latest.max(revision)));
    }
}

impl Known {
    /// Now, as `polled` counts it.
    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Revisions> {
        self.revisions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The organisation's revision from the copy, when `consistency` allows using it now.
    fn revision(&self, organization: OrganizationId, consistency: Consistency) -> Option<i64> {
        let age = match self.polled.load(Ordering::Acquire) {
            0 => return None,
            polled => Duration::from_nanos(self.now().saturating_sub(polled)),
        };
        let revisions = self.read();
        let usable = match consistency {
            Consistency::MinimizeLatency => age < MAX_STALENESS,
            Consistency::Default => age < self.lease,
            Consistency::AtLeast(wanted) => {
                age < self.lease && revisions.latest.is_some_and(|latest| latest >= wanted)
            }
            Consistency::Full => false,
        };
        usable
            .then(|| revisions.organizations.get(&organization).copied())
            .flatten()
    }
}

/// The tree and some subjects at one revision (`Authorizer::current`).
pub struct Current {
    tree: Arc<CompiledTree>,
    subjects: HashMap<UserId, Arc<CompiledSubject>>,
}

impl Current {
    pub fn tree(&self) -> &EntityTree {
        self.tree.tree()
    }

    /// `None` when the user is not in the organisation (or was not asked for).
    pub fn subject(&self, user: UserId) -> Option<&Subject> {
        self.subjects
            .get(&user)
            .and_then(|subject| subject.subject())
    }
}

#[derive(Clone)]
pub struct Authorizer {
    source: Arc<dyn SubjectSource>,
    catalogue: Arc<Catalogue>,
    trees: Arc<AtRevision<OrganizationId, CompiledTree>>,
    subjects: Arc<AtRevision<(OrganizationId, UserId), CompiledSubject>>,
    /// The second level shared by replicas (Redis), asked after memory and before the database.
    shared: Option<Arc<dyn SharedCache>>,
    known: Arc<Known>,
}

impl Authorizer {
    /// `lease`: how long after a poll began its copy is trusted; the server waits as long after
    /// every committed write before acknowledging it, and polls at least twice per lease.
    pub fn new(source: Arc<dyn SubjectSource>, catalogue: Arc<Catalogue>, lease: Duration) -> Self {
        Self {
            source,
            catalogue,
            trees: Arc::new(AtRevision::new(CACHED_TREES)),
            subjects: Arc::new(AtRevision::new(DEFAULT_CACHED_SUBJECTS)),
            shared: None,
            known: Arc::new(Known {
                revisions: RwLock::new(Revisions::default()),
                polled: AtomicU64::new(0),
                attempted: AtomicU64::new(0),
                polling: tokio::sync::Mutex::new(()),
                base: Instant::now(),
                lease,
            }),
        }
    }

    /// How many compiled subjects this replica keeps in memory: enough for every user that checks
    /// often, or the ones beyond it are reloaded (from Redis when there is one).
    pub fn with_capacity(mut self, subjects: usize) -> Self {
        self.subjects = Arc::new(AtRevision::new(subjects.max(1)));
        self
    }

    /// Adds the shared second level of the subject cache.
    pub fn with_shared(mut self, shared: Arc<dyn SharedCache>) -> Self {
        self.shared = Some(shared);
        self
    }

    pub fn lease(&self) -> Duration {
        self.known.lease
    }

    /// The latest revision this replica has read: a consistency token for a request that wrote
    /// nothing is at least as fresh as what this replica has seen.
    pub fn latest(&self) -> i64 {
        self.known.read().latest.unwrap_or(0)
    }

    /// The organisation's revision from this replica's copy, while the copy's lease is fresh.
    pub fn fresh_revision(&self, organization: OrganizationId) -> Option<i64> {
        self.known.revision(organization, Consistency::Default)
    }

    /// Brings the copy of the revisions up to date with the database's change feed, and renews the
    /// lease from the moment this poll started.
    pub async fn poll(&self) -> Result<(), Error> {
        let _turn = self.known.polling.lock().await;
        self.poll_now().await
    }

    /// `poll`, by the holder of `polling`.
    async fn poll_now(&self) -> Result<(), Error> {
        let started = self.known.now();
        let polled = self.read_feed(started).await;
        self.known.attempted.fetch_max(started, Ordering::Release);
        polled
    }

    /// One poll's reads, and the lease renewed from `started` when they succeed.
    async fn read_feed(&self, started: u64) -> Result<(), Error> {
        let latest = self.known.read().latest;
        let changes = match latest {
            Some(latest) => self.source.changes_after(latest, CHANGES_PER_POLL).await?,
            None => Vec::new(),
        };
        let full = match latest.is_none() || changes.len() as u64 >= CHANGES_PER_POLL {
            true => Some(self.source.revisions().await?),
            false => None,
        };
        let mut known = self
            .known
            .revisions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match full {
            Some((latest, organizations)) => {
                for (organization, revision) in organizations {
                    known.raise(Some(organization), revision);
                }
                known.raise_latest(latest);
            }
            None => {
                for change in changes {
                    known.raise(change.organization, change.revision);
                }
            }
        }
        drop(known);
        self.known.polled.fetch_max(started, Ordering::Release);
        Ok(())
    }

    /// The organisation's revision for a check that found the lease lapsed (the poll is late: a
    /// busy database, a busy replica): from a poll that started after the check arrived, shared by
    /// every check waiting at the same time, so a late poll costs the database one more feed query
    /// rather than one revision query per check. Such a poll saw every write acknowledged before
    /// the check began. `None` when the copy cannot say (an organisation it has not seen, a token
    /// newer than the feed): the caller reads the database.
    async fn caught_up(
        &self,
        organization: OrganizationId,
        consistency: Consistency,
    ) -> Result<Option<i64>, Error> {
        let arrived = self.known.now();
        let _turn = self.known.polling.lock().await;
        if self.known.attempted.load(Ordering::Acquire) <= arrived {
            // No poll has started since this check arrived: this one runs it, for all waiting.
            let _ = self.poll_now().await; // A failure is seen below, by every waiting check.
        }
        if self.known.polled.load(Ordering::Acquire) <= arrived {
            return Ok(None); // That poll failed: each check reads the database, as without a copy.
        }
        let revisions = self.known.read();
        let wanted = match consistency {
            Consistency::AtLeast(wanted) => wanted,
            _ => 0,
        };
        Ok(match revisions.latest {
            Some(latest) if latest >= wanted => revisions.organizations.get(&organization).copied(),
            _ => None,
        })
    }

    pub async fn check(
        &self,
        organization: OrganizationId,
        check: &Check,
        consistency: Consistency,
    ) -> Result<Decision, Error> {
        Ok(self
            .check_many(organization, std::slice::from_ref(check), consistency)
            .await?
            .remove(0))
    }

    /// Decides a batch at one revision: one tree, and the subjects of its distinct users, the
    /// missing ones loaded together. NOT_FOUND for an organisation that does not exist.
    pub async fn check_many(
        &self,
        organization: OrganizationId,
        checks: &[Check],
        consistency: Consistency,
    ) -> Result<Vec<Decision>, Error> {
        let (revision, tree) = self.tree(organization, consistency).await?;
        let users: Vec<UserId> = checks
            .iter()
            .map(|check| check.user)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let subjects = self.subjects(organization, revision, &tree, &users).await?;
        Ok(checks
            .iter()
            .map(|check| match subjects.get(&check.user) {
                Some(subject) => self.decide(subject, check),
                None => decision::decide(None, &check.permission, check.target, tree.tree()),
            })
            .collect())
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
        consistency: Consistency,
    ) -> Result<BTreeSet<PermissionKey>, Error> {
        let (revision, tree) = self.tree(organization, consistency).await?;
        let subjects = self
            .subjects(organization, revision, &tree, &[user])
            .await?;
        Ok(decision::effective_permissions(
            subjects.get(&user).and_then(|subject| subject.subject()),
            target,
            tree.tree(),
        ))
    }

    /// The organisation's users allowed `permission` on `target` (a catalogue key, or
    /// INVALID_ARGUMENT `permission`), ascending, after `after`, at most `limit` (at least 1): the
    /// users for whom `check` answers allowed, at one revision as `consistency` asks. Users are read
    /// in batches and their subjects loaded together (after the caches), never one query per user.
    /// An entity outside the organisation's tree allows no one, as in `check`. NOT_FOUND for an
    /// organisation that does not exist.
    pub async fn lookup_subjects(
        &self,
        organization: OrganizationId,
        permission: &PermissionKey,
        target: Target,
        after: Option<UserId>,
        limit: usize,
        consistency: Consistency,
    ) -> Result<LookupPage<UserId>, Error> {
        let position = self.position(permission)?;
        let limit = limit.max(1);
        let (revision, tree) = self.tree(organization, consistency).await?;
        let mut items = Vec::new();
        let mut cursor = after;
        let mut scanned = 0;
        loop {
            let batch = self
                .source
                .user_ids(organization, cursor, LOOKUP_BATCH)
                .await?;
            let subjects = self.subjects(organization, revision, &tree, &batch).await?;
            for user in &batch {
                if subjects
                    .get(user)
                    .is_some_and(|subject| subject.allows(target, position))
                {
                    if items.len() == limit {
                        // One more than the page: the next page starts after the page's last.
                        let next = items.last().copied();
                        return Ok(LookupPage { items, next });
                    }
                    items.push(*user);
                }
            }
            scanned += batch.len();
            cursor = batch.last().copied().or(cursor);
            if (batch.len() as u64) < LOOKUP_BATCH {
                return Ok(LookupPage { items, next: None });
            }
            if scanned >= LOOKUP_SCAN {
                return Ok(LookupPage {
                    items,
                    next: cursor,
                });
            }
        }
    }

    /// The entities of the organisation on which `user` is allowed `permission` (a catalogue key,
    /// or INVALID_ARGUMENT `permission`), ascending, after `after`, at most `limit` (at least 1):
    /// the entities for which `check` answers allowed, walked in the user's compiled subject at one
    /// revision as `consistency` asks. The organisation itself is not listed. A user outside the
    /// organisation, or not active, is allowed none. NOT_FOUND for an organisation that does not
    /// exist.
    pub async fn lookup_resources(
        &self,
        organization: OrganizationId,
        user: UserId,
        permission: &PermissionKey,
        after: Option<EntityId>,
        limit: usize,
        consistency: Consistency,
    ) -> Result<LookupPage<EntityId>, Error> {
        let position = self.position(permission)?;
        let limit = limit.max(1);
        let (revision, tree) = self.tree(organization, consistency).await?;
        let subjects = self
            .subjects(organization, revision, &tree, &[user])
            .await?;
        let mut items: Vec<EntityId> = subjects
            .get(&user)
            .map(|subject| {
                subject
                    .allowed_entities(position, after)
                    .take(limit + 1)
                    .collect()
            })
            .unwrap_or_default();
        let next = match items.len() > limit {
            true => {
                items.truncate(limit);
                items.last().copied()
            }
            false => None,
        };
        Ok(LookupPage { items, next })
    }

    /// The catalogue position a lookup reads; a key outside the catalogue cannot be looked up.
    fn position(&self, permission: &PermissionKey) -> Result<usize, Error> {
        self.catalogue
            .position(permission)
            .ok_or_else(|| Error::invalid("permission", "unknown key"))
    }

    /// What a write-path rule decides on (the acting rule, no escalation, who may read whom): the
    /// tree and the subjects of `users` at the organisation's current revision, read from the
    /// database by this call, served from the same caches as checks when they are that fresh.
    pub async fn current(
        &self,
        organization: OrganizationId,
        users: &[UserId],
    ) -> Result<Current, Error> {
        let (revision, tree) = self.tree(organization, Consistency::Full).await?;
        let subjects = self.subjects(organization, revision, &tree, users).await?;
        Ok(Current { tree, subjects })
    }

    /// The organisation's revision as `consistency` allows, and its tree at (at least) it.
    async fn tree(
        &self,
        organization: OrganizationId,
        consistency: Consistency,
    ) -> Result<(i64, Arc<CompiledTree>), Error> {
        let known = match (self.known.revision(organization, consistency), consistency) {
            (Some(revision), _) => Some(revision),
            (None, Consistency::Default | Consistency::AtLeast(_)) => {
                self.caught_up(organization, consistency).await?
            }
            (None, Consistency::MinimizeLatency | Consistency::Full) => None,
        };
        let revision = match known {
            Some(revision) => revision,
            None => self
                .source
                .revision(organization)
                .await?
                .ok_or(Error::NotFound("organization"))?,
        };
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

    /// The subjects of `users` at `revision`, compiled against the tree of that revision (a change
    /// of the tree issues a revision); the missing ones asked of the shared cache, then loaded in
    /// one batch.
    async fn subjects(
        &self,
        organization: OrganizationId,
        revision: i64,
        tree: &Arc<CompiledTree>,
        users: &[UserId],
    ) -> Result<HashMap<UserId, Arc<CompiledSubject>>, Error> {
        let mut found = HashMap::with_capacity(users.len());
        let mut missing = Vec::new();
        for user in users {
            match self.subjects.get(&(organization, *user), revision) {
                Some(subject) => {
                    found.insert(*user, subject);
                }
                None => missing.push(*user),
            }
        }
        let compile = |user: UserId, subject: Option<Subject>| {
            let compiled = Arc::new(CompiledSubject::compile(
                subject,
                tree.clone(),
                &self.catalogue,
            ));
            self.subjects
                .put((organization, user), revision, compiled.clone());
            compiled
        };
        if let (Some(shared), false) = (&self.shared, missing.is_empty()) {
            let kept = shared.get(organization, revision, &missing).await;
            let mut still = Vec::new();
            for (user, kept) in missing.into_iter().zip(kept) {
                match kept {
                    Some(subject) => {
                        found.insert(user, compile(user, subject));
                    }
                    None => still.push(user),
                }
            }
            missing = still;
        }
        if !missing.is_empty() {
            let mut loaded = Vec::with_capacity(missing.len());
            for (user, subject) in self.source.load_subjects(organization, &missing).await? {
                if self.shared.is_some() {
                    loaded.push((user, Arc::new(subject.clone())));
                }
                found.insert(user, compile(user, subject));
            }
            if let Some(shared) = self.shared.clone() {
                // Off the check's path: the answer never waits on Redis to keep what was loaded.
                tokio::spawn(async move { shared.put(organization, revision, &loaded).await });
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    use warden_core::{
        decision::{Holding, Source},
        model::{Scope, UserStatus},
        ports::Change,
    };

    use super::*;

    /// A source whose revision the test sets, counting its reads. Its users hold `holdings`.
    #[derive(Default)]
    struct Counting {
        revision: AtomicI64,
        loads: AtomicUsize,
        revision_reads: AtomicUsize,
        /// Reads of the change feed or of the table of revisions: polls.
        feed_reads: AtomicUsize,
        /// The change feed fails, as when the database is unreachable for a moment.
        feed_fails: std::sync::atomic::AtomicBool,
        holdings: Vec<Holding>,
        /// The organisation's users, ascending, for lookups.
        users: Vec<UserId>,
    }

    fn catalogue() -> Arc<Catalogue> {
        let text = include_str!("../../../catalogue/payments.toml");
        Arc::new(Catalogue::from_toml(text).expect("the shipped catalogue"))
    }

    const ORGANIZATION: OrganizationId = OrganizationId(uuid::Uuid::from_u128(7));

    #[async_trait::async_trait]
    impl SubjectSource for Counting {
        async fn load_subject(
            &self,
            _: OrganizationId,
            user: UserId,
        ) -> Result<Option<Subject>, Error> {
            Ok(self
                .load_subjects(ORGANIZATION, &[user])
                .await?
                .pop()
                .and_then(|(_, subject)| subject))
        }
        async fn load_subjects(
            &self,
            _: OrganizationId,
            users: &[UserId],
        ) -> Result<Vec<(UserId, Option<Subject>)>, Error> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(users
                .iter()
                .map(|user| {
                    let subject = Subject {
                        user: *user,
                        status: UserStatus::Active,
                        owner: false,
                        holdings: self.holdings.clone(),
                    };
                    (*user, Some(subject))
                })
                .collect())
        }
        async fn load_entity_tree(&self, _: OrganizationId) -> Result<EntityTree, Error> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(EntityTree::default())
        }
        async fn user_ids(
            &self,
            _: OrganizationId,
            after: Option<UserId>,
            limit: u64,
        ) -> Result<Vec<UserId>, Error> {
            Ok(self
                .users
                .iter()
                .filter(|user| after.is_none_or(|after| **user > after))
                .take(limit as usize)
                .copied()
                .collect())
        }
        async fn revision(&self, _: OrganizationId) -> Result<Option<i64>, Error> {
            self.revision_reads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(self.revision.load(Ordering::SeqCst)))
        }
        async fn revisions(&self) -> Result<(i64, Vec<(OrganizationId, i64)>), Error> {
            self.feed_reads.fetch_add(1, Ordering::SeqCst);
            let revision = self.revision.load(Ordering::SeqCst);
            Ok((revision, vec![(ORGANIZATION, revision)]))
        }
        async fn changes_after(&self, after: i64, _: u64) -> Result<Vec<Change>, Error> {
            self.feed_reads.fetch_add(1, Ordering::SeqCst);
            // Slow, as a busy database is: checks arriving meanwhile wait for this poll.
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.feed_fails.load(Ordering::SeqCst) {
                return Err(Error::internal("the feed is unreachable"));
            }
            let revision = self.revision.load(Ordering::SeqCst);
            Ok((after + 1..=revision)
                .map(|revision| Change {
                    revision,
                    organization: Some(ORGANIZATION),
                    action: "role.updated".into(),
                    target_type: "role".into(),
                    target_id: "r".into(),
                })
                .collect())
        }
    }

    fn check() -> Check {
        Check {
            user: UserId::generate(),
            permission: PermissionKey::new("payments.read"),
            target: Target::Organization,
            explain: false,
        }
    }

    #[tokio::test]
    async fn checks_reuse_what_they_loaded_only_at_the_same_revision() {
        let source = Arc::new(Counting::default());
        let authorizer = Authorizer::new(source.clone(), catalogue(), Duration::from_secs(60));
        let check = check();
        for _ in 0..5 {
            authorizer
                .check(ORGANIZATION, &check, Consistency::Full)
                .await
                .unwrap();
        }
        assert_eq!(
            source.loads.load(Ordering::SeqCst),
            2,
            "a tree and a subject, once"
        );
        source.revision.store(1, Ordering::SeqCst); // A write committed somewhere.
        authorizer
            .check(ORGANIZATION, &check, Consistency::Full)
            .await
            .unwrap();
        assert_eq!(source.loads.load(Ordering::SeqCst), 4, "both read again");
    }

    #[tokio::test]
    async fn a_fresh_copy_answers_without_the_database_and_a_lapsed_one_asks_it() {
        let source = Arc::new(Counting::default());
        let authorizer = Authorizer::new(source.clone(), catalogue(), Duration::from_millis(200));
        let check = check();
        authorizer.poll().await.unwrap();
        for _ in 0..5 {
            authorizer
                .check(ORGANIZATION, &check, Consistency::Default)
                .await
                .unwrap();
        }
        assert_eq!(source.revision_reads.load(Ordering::SeqCst), 0);
        // A write the copy has not polled yet is not seen until the poll, as the lease allows.
        source.revision.store(3, Ordering::SeqCst);
        authorizer.poll().await.unwrap();
        assert_eq!(authorizer.latest(), 3);
        authorizer
            .check(ORGANIZATION, &check, Consistency::Default)
            .await
            .unwrap();
        assert_eq!(source.loads.load(Ordering::SeqCst), 4, "reloaded at 3");
        // A token newer than the copy, or the full mode, reads the database.
        authorizer
            .check(ORGANIZATION, &check, Consistency::AtLeast(4))
            .await
            .unwrap();
        authorizer
            .check(ORGANIZATION, &check, Consistency::Full)
            .await
            .unwrap();
        assert_eq!(source.revision_reads.load(Ordering::SeqCst), 2);
        // Once the lease lapses without a poll, the default mode polls before answering.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let polls = source.feed_reads.load(Ordering::SeqCst);
        source.revision.store(5, Ordering::SeqCst);
        authorizer
            .check(ORGANIZATION, &check, Consistency::Default)
            .await
            .unwrap();
        assert_eq!(source.feed_reads.load(Ordering::SeqCst), polls + 1);
        assert_eq!(authorizer.latest(), 5, "the write is seen");
        tokio::time::sleep(Duration::from_millis(250)).await;
        authorizer
            .check(ORGANIZATION, &check, Consistency::MinimizeLatency)
            .await
            .unwrap();
        assert_eq!(
            source.feed_reads.load(Ordering::SeqCst),
            polls + 1,
            "within MAX_STALENESS, no poll"
        );
        assert_eq!(source.revision_reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_finding_the_lease_lapsed_share_one_poll_that_started_after_them() {
        let source = Arc::new(Counting::default());
        let authorizer = Authorizer::new(source.clone(), catalogue(), Duration::from_millis(50));
        authorizer.poll().await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await; // The lease lapses.
        source.revision.store(9, Ordering::SeqCst); // Committed and acknowledged meanwhile.
        let polls = source.feed_reads.load(Ordering::SeqCst);
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let (authorizer, check) = (authorizer.clone(), check());
            checks.spawn(async move {
                authorizer
                    .check(ORGANIZATION, &check, Consistency::Default)
                    .await
            });
        }
        while let Some(decision) = checks.join_next().await {
            assert!(!decision.unwrap().unwrap().allowed, "no grant");
        }
        let shared = source.feed_reads.load(Ordering::SeqCst) - polls;
        // The first poll, and at most one more for the checks that arrived while it ran.
        assert!((1..=2).contains(&shared), "{shared} polls for 100 checks");
        assert_eq!(source.revision_reads.load(Ordering::SeqCst), 0);
        assert!(
            authorizer.trees.get(&ORGANIZATION, 9).is_some(),
            "the checks decided at revision 9"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_waiting_for_a_poll_that_fails_share_its_failure_and_read_the_database() {
        let source = Arc::new(Counting::default());
        let authorizer = Authorizer::new(source.clone(), catalogue(), Duration::from_millis(50));
        authorizer.poll().await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        source.feed_fails.store(true, Ordering::SeqCst);
        let polls = source.feed_reads.load(Ordering::SeqCst);
        let started = Instant::now();
        let mut checks = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let (authorizer, check) = (authorizer.clone(), check());
            checks.spawn(async move {
                authorizer
                    .check(ORGANIZATION, &check, Consistency::Default)
                    .await
            });
        }
        while let Some(decision) = checks.join_next().await {
            decision.unwrap().unwrap();
        }
        let tried = source.feed_reads.load(Ordering::SeqCst) - polls;
        assert!((1..=2).contains(&tried), "{tried} polls for 100 checks");
        assert_eq!(source.revision_reads.load(Ordering::SeqCst), 100);
        // One by one, 100 failing polls of 20 ms would take 2 s.
        assert!(started.elapsed() < Duration::from_millis(500));
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
        let authorizer = Authorizer::new(source, catalogue(), Duration::from_secs(60));
        let user = UserId::generate();
        let check = |permission: &str, explain| Check {
            user,
            permission: PermissionKey::new(permission),
            target: Target::Organization,
            explain,
        };
        let decisions = authorizer
            .check_many(
                ORGANIZATION,
                &[
                    check("payments.read", false),
                    check("payments.read", true),
                    check("payments.refund", false),
                    check("payments.refund", true),
                    check("retired.key", false),
                ],
                Consistency::Default,
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

    #[tokio::test]
    async fn a_subject_lookup_pages_through_every_user_loading_them_in_batches() {
        let mut users: Vec<UserId> = (0..1200).map(|_| UserId::generate()).collect();
        users.sort();
        let source = Arc::new(Counting {
            holdings: vec![Holding {
                source: Source::Direct,
                scope: Scope::All,
                permissions: [PermissionKey::new("payments.read")].into(),
            }],
            users: users.clone(),
            ..Counting::default()
        });
        let authorizer = Authorizer::new(source.clone(), catalogue(), Duration::from_secs(60));
        let lookup = async |permission: &str, after| {
            let permission = PermissionKey::new(permission);
            authorizer
                .lookup_subjects(
                    ORGANIZATION,
                    &permission,
                    Target::Organization,
                    after,
                    300,
                    Consistency::Full,
                )
                .await
        };
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = lookup("payments.read", after).await.unwrap();
            assert!(page.items.len() <= 300);
            seen.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, users, "every user once, in order");
        assert!(
            source.loads.load(Ordering::SeqCst) <= 6,
            "a tree and a load per batch of misses, not per user"
        );
        let none = lookup("payments.refund", None).await.unwrap();
        assert_eq!(
            none,
            LookupPage {
                items: Vec::new(),
                next: None
            }
        );
        let unknown = lookup("payments.teleport", None).await.unwrap_err();
        assert_eq!(unknown.to_string(), "permission: unknown key");
    }
}
