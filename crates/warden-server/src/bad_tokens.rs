//! Bearer tokens that authenticate nothing (a guessed operator token, a junk API key or JWT): each
//! source address has a budget of failures a minute, past which its calls are refused before the
//! token is looked at, and unknown API key prefixes are remembered briefly so junk keys cost no query.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::clock::{Clock as _, DefaultClock};
use warden_core::Error;

use crate::guard::{Limiter, limiter};

/// How long an unknown API key prefix answers "unknown" without a query. A new key's prefix is 64
/// random bits, so no real key is ever hidden by this.
const UNKNOWN_KEY_MEMORY: Duration = Duration::from_secs(30);
/// Entries kept at most in either map before the oldest are dropped.
const MAX_REMEMBERED: usize = 100_000;

pub struct BadTokens {
    failures: Limiter,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    unknown_keys: Mutex<HashMap<String, Instant>>,
}

impl BadTokens {
    pub fn new(failures_per_minute: u32) -> Self {
        Self {
            failures: limiter(failures_per_minute),
            blocked: Mutex::default(),
            unknown_keys: Mutex::default(),
        }
    }

    /// RESOURCE_EXHAUSTED while `address` is over its failure budget.
    pub fn refuse_if_blocked(&self, address: Option<IpAddr>) -> Result<(), Error> {
        let Some(address) = address else {
            return Ok(());
        };
        let now = Instant::now();
        let blocked = lock(&self.blocked);
        match blocked.get(&address) {
            Some(until) if *until > now => Err(Error::Throttled {
                retry_after: *until - now,
            }),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication; the one that exhausts the budget blocks the address until
    /// the budget refills.
    pub fn failed(&self, address: Option<IpAddr>) {
        let Some(address) = address else { return };
        if let Err(not_until) = self.failures.check_key(&address) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = lock(&self.blocked);
            if blocked.len() >= MAX_REMEMBERED {
                let now = Instant::now();
                blocked.retain(|_, until| *until > now);
            }
            blocked.insert(address, Instant::now() + wait);
        }
    }

    /// Whether `prefix` was looked up recently and matched no key.
    pub fn is_unknown_key(&self, prefix: &str) -> bool {
        lock(&self.unknown_keys)
            .get(prefix)
            .is_some_and(|seen| seen.elapsed() < UNKNOWN_KEY_MEMORY)
    }

    pub fn remember_unknown_key(&self, prefix: &str) {
        let mut unknown = lock(&self.unknown_keys);
        if unknown.len() >= MAX_REMEMBERED {
            unknown.retain(|_, seen| seen.elapsed() < UNKNOWN_KEY_MEMORY);
            if unknown.len() >= MAX_REMEMBERED {
                unknown.clear(); // A flood of distinct junk: forgetting only costs queries.
            }
        }
        unknown.insert(prefix.to_owned(), Instant::now());
    }
}

/// A poisoned map only loses counts: keep going with what it holds.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_failure_budget_is_refused_and_others_are_not() {
        let guard = BadTokens::new(3);
        let attacker = Some(IpAddr::from([192, 0, 2, 1]));
        let neighbour = Some(IpAddr::from([192, 0, 2, 2]));
        for _ in 0..3 {
            assert!(guard.refuse_if_blocked(attacker).is_ok());
            guard.failed(attacker);
        }
        assert!(
            guard.refuse_if_blocked(attacker).is_ok(),
            "the budget is 3 failures"
        );
        guard.failed(attacker);
        assert!(matches!(
            guard.refuse_if_blocked(attacker),
            Err(Error::Throttled { .. })
        ));
        assert!(guard.refuse_if_blocked(neighbour).is_ok());
        assert!(guard.refuse_if_blocked(None).is_ok());
    }

    #[test]
    fn unknown_key_prefixes_are_remembered() {
        let guard = BadTokens::new(3);
        assert!(!guard.is_unknown_key("0011223344556677"));
        guard.remember_unknown_key("0011223344556677");
        assert!(guard.is_unknown_key("0011223344556677"));
        assert!(!guard.is_unknown_key("8899aabbccddeeff"));
    }
}
