//! Service credentials as this replica last read them, so a check authenticates without the
//! database: API keys by prefix, client certificate mappings (mutual TLS) by SAN URI.
//!
//! An entry is kept with the latest revision this replica had seen before reading it, and is used
//! only while the authorizer's copy of the revisions is fresh and its organisation has not changed
//! since: creating or revoking a key, and creating or deleting a mapping, issue a revision of its
//! organisation (SPEC §5), so a revoked key or a deleted mapping is refused at its next call on
//! every replica, as any other acknowledged write is seen.
use std::{collections::HashMap, sync::Mutex};

use warden_authz::Authorizer;
use warden_core::{
    ids::OrganizationId,
    model::{ApiKey, ClientCertificateMapping},
};

/// Entries kept before the map is emptied (unknown prefixes never get one: `bad_tokens` has them).
const MAX_ENTRIES: usize = 10_000;

/// API keys and their secret hashes, by prefix.
pub type KnownKeys = Known<(ApiKey, String)>;
/// Client certificate mappings, by URI; an unmapped URI is never kept (it has no organisation
/// whose revision would tell when it gets mapped).
pub type KnownMappings = Known<ClientCertificateMapping>;

pub struct Known<V>(Mutex<HashMap<String, Entry<V>>>);

impl<V> Default for Known<V> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

struct Entry<V> {
    value: V,
    organization: OrganizationId,
    /// The latest revision this replica had seen when the row was read.
    read_after: i64,
}

impl<V: Clone> Known<V> {
    /// The value under `key`, if read since its organisation last changed.
    pub fn get(&self, key: &str, authorizer: &Authorizer) -> Option<V> {
        let entries = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = entries.get(key)?;
        let current = authorizer.fresh_revision(known.organization)?;
        (current <= known.read_after).then(|| known.value.clone())
    }

    /// Keeps a row read from the database; `read_after` is `Authorizer::latest` read before it.
    pub fn put(&self, key: String, organization: OrganizationId, value: V, read_after: i64) {
        let mut entries = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                value,
                organization,
                read_after,
            },
        );
    }
}
