//! Abuse protection: a per-address rate limit on the RPCs that need no credentials (governor, a
//! well-kept GCRA limiter), and the shared attempt throttle of every password or code check (SPEC §4).
use std::{net::IpAddr, num::NonZeroU32};

use governor::{DefaultKeyedRateLimiter, Quota};
use tonic::Request;
use warden_core::{Error, audit::Origin, ids::UserId};

use crate::{secrets::sha256_hex, state::AppState};

pub type Limiter = DefaultKeyedRateLimiter<IpAddr>;
pub type UserLimiter = DefaultKeyedRateLimiter<UserId>;

/// Distinct addresses remembered before idle ones are dropped.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

pub fn limiter(per_minute: u32) -> Limiter {
    let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    DefaultKeyedRateLimiter::keyed(Quota::per_minute(rate))
}

pub fn per_user_per_hour(per_hour: u32) -> UserLimiter {
    let rate = NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN);
    DefaultKeyedRateLimiter::keyed(Quota::per_hour(rate))
}

/// RESOURCE_EXHAUSTED once `user` has spent their budget in `limiter`.
pub fn spend(limiter: &UserLimiter, user: UserId) -> Result<(), Error> {
    if limiter.len() > MAX_TRACKED_ADDRESSES {
        limiter.retain_recent();
    }
    limiter
        .check_key(&user)
        .map_err(|not_until| Error::Throttled {
            retry_after: not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            )),
        })
}

/// What an attempt checks: passwords and codes are counted apart, so a right password never clears
/// the failures of second-factor codes.
#[derive(Clone, Copy)]
pub enum Check {
    Password,
    Code,
}

/// The throttle keys of one attempt: the account (its email, compared case-insensitively after
/// trimming, stored only hashed) and the source address.
pub struct AttemptKeys {
    account: String,
    address: String,
}

impl AttemptKeys {
    /// The keys of an attempt to prove `email`'s password or code, made from the call's origin.
    pub fn of(check: Check, email: &str, origin: &Origin) -> Self {
        let kind = match check {
            Check::Password => "password",
            Check::Code => "code",
        };
        let address = origin.client_address.as_deref().unwrap_or("unknown");
        Self {
            account: format!(
                "{kind}:account:{}",
                sha256_hex(&email.trim().to_lowercase())
            ),
            address: format!("{kind}:address:{address}"),
        }
    }
}

impl AppState {
    /// RESOURCE_EXHAUSTED when the caller's address is over the unauthenticated rate.
    pub fn rate_limit<T>(&self, request: &Request<T>) -> Result<(), Error> {
        let Some(address) = request.remote_addr().map(|address| address.ip()) else {
            return Ok(());
        };
        if self.limiter.len() > MAX_TRACKED_ADDRESSES {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&address).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            Error::Throttled { retry_after: wait }
        })
    }

    /// Counts an attempt before the check it guards; refused while in back-off. A store failure
    /// refuses too: the throttle fails closed.
    pub async fn begin_attempt(&self, keys: &AttemptKeys) -> Result<(), Error> {
        let wanted = [keys.account.clone(), keys.address.clone()];
        match self
            .store
            .register_attempt(&wanted, self.clock.now())
            .await?
        {
            Some(retry_after) => Err(Error::Throttled {
                retry_after: retry_after.to_std().unwrap_or_default(),
            }),
            None => Ok(()),
        }
    }

    /// After a correct password or code: the account starts afresh; the address only gets this
    /// attempt back, so one good account never clears an address that guesses at others.
    pub async fn attempt_succeeded(&self, keys: &AttemptKeys) -> Result<(), Error> {
        self.store
            .attempt_succeeded(&keys.account, &keys.address)
            .await
    }
}
