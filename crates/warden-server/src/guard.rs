//! Abuse protection: per-address and per-user rate limits (governor, a well-kept GCRA limiter), the
//! shared attempt throttle of every password or code check, and the quotas on second-factor sends
//! (SPEC §4). The numbers are `Config`'s; the verdicts are `warden_core::throttle`'s.
use std::{net::IpAddr, num::NonZeroU32};

use governor::{DefaultKeyedRateLimiter, Quota};
use tonic::Request;
use warden_core::{
    Error,
    audit::Origin,
    ids::{OrganizationId, UserId},
    network::TrustedProxies,
    throttle::{BackOff, Budget, address_key},
};

use crate::{config::Config, secrets::sha256_hex, state::AppState};

pub type Limiter = DefaultKeyedRateLimiter<IpAddr>;
pub type UserLimiter = DefaultKeyedRateLimiter<UserId>;

/// Distinct addresses or users remembered before idle ones are dropped.
const MAX_TRACKED_KEYS: usize = 100_000;

pub fn limiter(per_minute: u32) -> Limiter {
    let rate = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    DefaultKeyedRateLimiter::keyed(Quota::per_minute(rate))
}

pub fn per_user_per_hour(per_hour: u32) -> UserLimiter {
    let rate = NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN);
    DefaultKeyedRateLimiter::keyed(Quota::per_hour(rate))
}

/// RESOURCE_EXHAUSTED, with the wait, once `key` has spent its budget in `limiter`; idle keys are
/// dropped when too many are tracked. Every in-process limit goes through here.
pub fn spend<K: Clone + Eq + std::hash::Hash>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), Error> {
    if limiter.len() > MAX_TRACKED_KEYS {
        limiter.retain_recent();
    }
    limiter.check_key(key).map_err(|not_until| {
        let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
        Error::Throttled {
            retry_after: not_until.wait_time_from(now),
        }
    })
}

/// The configured limits beyond the unauthenticated rate.
pub struct Limits {
    pub back_off: BackOff,
    pub address_failures: Budget,
    pub trusted_proxies: TrustedProxies,
    pub sends_per_user: Budget,
    pub sends_per_organization: Budget,
    /// Calls per minute of one signed-in user, on this replica.
    pub per_user: DefaultKeyedRateLimiter<UserId>,
}

impl Limits {
    pub fn new(config: &Config) -> Result<Self, String> {
        let hour = chrono::Duration::hours(1);
        let per_user =
            NonZeroU32::new(config.authenticated_rate_per_minute).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            back_off: BackOff {
                free_failures: config.account_free_failures,
                max_delay: chrono::Duration::seconds(config.account_max_backoff_seconds),
            },
            address_failures: Budget {
                limit: config.address_failures_per_window,
                window: chrono::Duration::seconds(config.address_window_seconds),
            },
            trusted_proxies: TrustedProxies::parse(&config.trusted_proxies)?,
            sends_per_user: Budget {
                limit: config.second_factor_sends_per_user_per_hour,
                window: hour,
            },
            sends_per_organization: Budget {
                limit: config.second_factor_sends_per_organization_per_hour,
                window: hour,
            },
            per_user: DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_user)),
        })
    }
}

/// What an attempt checks: passwords and codes are counted apart, so a right password never clears
/// the failures of second-factor codes.
#[derive(Clone, Copy)]
pub enum Check {
    Password,
    Code,
}

/// The throttle keys of one attempt: the account (its email, compared case-insensitively after
/// trimming, stored only hashed) and the source address (IPv6 per /64).
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
        let address = origin
            .client_address
            .as_deref()
            .and_then(|address| address.parse().ok())
            .map_or_else(|| "unknown".to_owned(), address_key);
        Self {
            account: format!(
                "{kind}:account:{}",
                sha256_hex(&email.trim().to_lowercase())
            ),
            address: format!("{kind}:address:{address}"),
        }
    }
}

fn throttled(retry_after: chrono::Duration) -> Error {
    Error::Throttled {
        retry_after: retry_after.to_std().unwrap_or_default(),
    }
}

impl AppState {
    /// The client behind `request`: its TCP peer, or the address a trusted proxy forwarded.
    pub fn client_ip<T>(&self, request: &Request<T>) -> Option<IpAddr> {
        let peer = match request.extensions().get::<crate::tls::PeerInfo>() {
            Some(info) => info.tcp.remote_addr()?,
            None => request.remote_addr()?,
        }
        .ip();
        if !self.limits.trusted_proxies.trusts(peer) {
            return Some(peer); // Forwarded headers count only from a trusted proxy: not read.
        }
        let values = |name: &str| -> Vec<&str> {
            request
                .metadata()
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect()
        };
        let (forwarded, forwarded_for) = (values("forwarded"), values("x-forwarded-for"));
        Some(
            self.limits
                .trusted_proxies
                .client_address(peer, &forwarded, &forwarded_for),
        )
    }

    /// RESOURCE_EXHAUSTED when the caller's address is over the unauthenticated rate.
    pub fn rate_limit(&self, address: Option<IpAddr>) -> Result<(), Error> {
        let Some(address) = address else {
            return Ok(());
        };
        spend(&self.limiter, &address)
    }

    /// RESOURCE_EXHAUSTED when a signed-in user is over their rate.
    pub fn rate_limit_user(&self, user: UserId) -> Result<(), Error> {
        spend(&self.limits.per_user, &user)
    }

    /// Before a check: refused while the address has spent its failures or the account is in
    /// back-off; the attempt counts against the account until it succeeds. A store failure refuses
    /// too: the throttle fails closed.
    pub async fn begin_attempt(&self, keys: &AttemptKeys) -> Result<(), Error> {
        let limits = &self.limits;
        let refused = self
            .store
            .begin_attempt(
                &keys.account,
                &keys.address,
                limits.back_off,
                limits.address_failures,
                self.clock.now(),
            )
            .await?;
        refused.map_or(Ok(()), |retry_after| Err(throttled(retry_after)))
    }

    /// After a wrong password or code: the address spends one of its budget of failures.
    pub async fn attempt_failed(&self, keys: &AttemptKeys) -> Result<(), Error> {
        self.store
            .attempt_failed(
                &keys.address,
                self.limits.address_failures,
                self.clock.now(),
            )
            .await
    }

    /// After a correct password or code: the account starts afresh; the address was never charged.
    pub async fn attempt_succeeded(&self, keys: &AttemptKeys) -> Result<(), Error> {
        self.store.attempt_succeeded(&keys.account).await
    }

    /// Spends one second-factor send (an enrolment or an email or SMS code) of the user's and the
    /// organisation's hourly quotas; RESOURCE_EXHAUSTED when either is spent.
    pub async fn spend_send_quota(
        &self,
        organization: OrganizationId,
        user: UserId,
    ) -> Result<(), Error> {
        let budgets = [
            (
                format!("factor_sends:user:{user}"),
                self.limits.sends_per_user,
            ),
            (
                format!("factor_sends:organization:{organization}"),
                self.limits.sends_per_organization,
            ),
        ];
        let refused = self.store.spend_quota(&budgets, self.clock.now()).await?;
        refused.map_or(Ok(()), |retry_after| Err(throttled(retry_after)))
    }
}
