//! API keys as this replica last read them, so a check authenticates without the database.
//!
//! An entry is kept with the latest revision this replica had seen before reading it, and is used
//! only while the authorizer's copy of the revisions is fresh and its organisation has not changed
//! since: creating or revoking a key issues a revision of its organisation (SPEC §5), so a revoked
//! key is refused at its next call on every replica, as any other acknowledged write is seen.
use std::{collections::HashMap, sync::Mutex};

use warden_authz::Authorizer;
use warden_core::model::ApiKey;

/// Entries kept before the map is emptied (unknown prefixes never get one: `bad_tokens` has them).
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub struct KnownKeys(Mutex<HashMap<String, Known>>);

struct Known {
    key: ApiKey,
    hash: String,
    /// The latest revision this replica had seen when the row was read.
    read_after: i64,
}

impl KnownKeys {
    /// The key and its secret hash, if read since its organisation last changed.
    pub fn get(&self, prefix: &str, authorizer: &Authorizer) -> Option<(ApiKey, String)> {
        let keys = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = keys.get(prefix)?;
        let current = authorizer.fresh_revision(known.key.organization_id)?;
        (current <= known.read_after).then(|| (known.key.clone(), known.hash.clone()))
    }

    /// Keeps a key read from the database; `read_after` is `Authorizer::latest` read before it.
    pub fn put(&self, key: ApiKey, hash: String, read_after: i64) {
        let mut keys = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if keys.len() >= MAX_KEYS {
            keys.clear();
        }
        keys.insert(
            key.prefix.clone(),
            Known {
                key,
                hash,
                read_after,
            },
        );
    }
}
