//! Throttling of password and code checks, and quotas on costly actions (SPEC §4). Two kinds of
//! counter, both pure here and applied atomically by the store:
//! - an account's back-off: every attempt counts as a failure until it succeeds (so concurrent
//!   guesses cannot slip past the count), back-off from the 5th consecutive failure, doubling up to
//!   15 minutes, cleared by a success;
//! - a budget in a fixed window (a source address's failures, a user's code sends): spent only by
//!   what it counts, refused until the window ends once spent.
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};

/// How long a quiet counter is remembered: far longer than the longest back-off, so waiting one out
/// never restarts the count with free attempts.
pub const FORGET_AFTER_SECONDS: i64 = 24 * 3600;

/// One key's counter as stored. For a budget, `last_attempt_at` is when its window began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counter {
    pub failures: i64,
    pub last_attempt_at: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
}

/// What an attempt is told: go ahead (and the counter to store), or wait this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Proceed(Counter),
    Refused { retry_after: Duration },
}

/// An account's back-off: `free_failures` consecutive failures pass, then 1 s, 2 s, 4 s, … up to
/// `max_delay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackOff {
    pub free_failures: i64,
    pub max_delay: Duration,
}

impl Default for BackOff {
    /// SPEC §4: back-off from the 5th failure, so the 10th waits 32 s; at most 15 minutes.
    fn default() -> Self {
        Self {
            free_failures: 4,
            max_delay: Duration::minutes(15),
        }
    }
}

impl BackOff {
    /// The back-off after `failures` consecutive failures.
    pub fn delay_after(&self, failures: i64) -> Duration {
        if failures <= self.free_failures {
            return Duration::zero();
        }
        let exponent = u32::try_from((failures - self.free_failures - 1).min(20)).unwrap_or(20);
        Duration::seconds(1i64 << exponent).min(self.max_delay)
    }

    /// Registers one attempt at `now` against `stored`, counted as a failure until it succeeds.
    pub fn register(&self, stored: Option<Counter>, now: DateTime<Utc>) -> Verdict {
        let current = stored.filter(|counter| {
            now - counter.last_attempt_at < Duration::seconds(FORGET_AFTER_SECONDS)
        });
        if let Some(until) = current.and_then(|counter| counter.locked_until)
            && until > now
        {
            return Verdict::Refused {
                retry_after: until - now,
            };
        }
        let failures = current.map_or(0, |counter| counter.failures) + 1;
        let delay = self.delay_after(failures);
        Verdict::Proceed(Counter {
            failures,
            last_attempt_at: now,
            locked_until: (delay > Duration::zero()).then(|| now + delay),
        })
    }
}

/// At most `limit` in every `window`: a source address's failures, a user's second-factor sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub limit: i64,
    pub window: Duration,
}

impl Budget {
    /// SPEC §4: 100 failures per source address in 15 minutes.
    pub fn per_address_default() -> Self {
        Self {
            limit: 100,
            window: Duration::minutes(15),
        }
    }

    /// The stored counter if its window is still open at `now`.
    fn open(&self, stored: Option<Counter>, now: DateTime<Utc>) -> Option<Counter> {
        stored.filter(|counter| now - counter.last_attempt_at < self.window)
    }

    /// How long to wait when the budget is spent at `now`; `None` while some is left.
    pub fn refusal(&self, stored: Option<Counter>, now: DateTime<Utc>) -> Option<Duration> {
        self.open(stored, now)
            .filter(|counter| counter.failures >= self.limit)
            .map(|counter| counter.last_attempt_at + self.window - now)
    }

    /// The counter after one more is spent at `now` (a new window when the last one ended).
    pub fn spend(&self, stored: Option<Counter>, now: DateTime<Utc>) -> Counter {
        let (spent, start) = self.open(stored, now).map_or((0, now), |counter| {
            (counter.failures, counter.last_attempt_at)
        });
        let failures = spent + 1;
        Counter {
            failures,
            last_attempt_at: start,
            locked_until: (failures >= self.limit).then(|| start + self.window),
        }
    }

    /// Spends one when some is left, else refuses with the wait.
    pub fn take(&self, stored: Option<Counter>, now: DateTime<Utc>) -> Verdict {
        match self.refusal(stored, now) {
            Some(retry_after) => Verdict::Refused { retry_after },
            None => Verdict::Proceed(self.spend(stored, now)),
        }
    }
}

/// The throttle key of a source address: an IPv4 address as itself (an IPv4-mapped IPv6 address as
/// its IPv4), an IPv6 address by its /64, the smallest block one subscriber is usually given, so
/// that rotating through one's own addresses buys no extra budget.
pub fn address_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_000_000, 0).unwrap()
    }

    #[test]
    fn back_off_starts_at_the_fifth_failure_and_is_capped_at_fifteen_minutes() {
        let back_off = BackOff::default();
        assert_eq!(back_off.delay_after(4), Duration::zero());
        assert_eq!(back_off.delay_after(5), Duration::seconds(1));
        assert_eq!(back_off.delay_after(10), Duration::seconds(32));
        assert_eq!(back_off.delay_after(15), Duration::seconds(900));
        assert_eq!(back_off.delay_after(1000), Duration::seconds(900));
    }

    #[test]
    fn attempts_during_a_back_off_are_refused_and_a_quiet_counter_is_forgotten() {
        let back_off = BackOff::default();
        let mut stored = None;
        let mut now = start();
        for _ in 0..5 {
            let Verdict::Proceed(counter) = back_off.register(stored, now) else {
                panic!("refused too early")
            };
            stored = Some(counter);
        }
        assert_eq!(
            stored.unwrap().locked_until,
            Some(now + Duration::seconds(1))
        );
        assert_eq!(
            back_off.register(stored, now),
            Verdict::Refused {
                retry_after: Duration::seconds(1)
            }
        );
        now += Duration::seconds(1);
        assert!(matches!(
            back_off.register(stored, now),
            Verdict::Proceed(Counter { failures: 6, .. })
        ));
        let later = start() + Duration::seconds(FORGET_AFTER_SECONDS + 1);
        assert!(matches!(
            back_off.register(stored, later),
            Verdict::Proceed(Counter { failures: 1, .. })
        ));
    }

    #[test]
    fn a_budget_refuses_once_spent_until_its_window_ends() {
        let budget = Budget {
            limit: 3,
            window: Duration::minutes(15),
        };
        let mut stored = None;
        for minute in 0..3 {
            let now = start() + Duration::minutes(minute);
            assert_eq!(budget.refusal(stored, now), None);
            stored = Some(budget.spend(stored, now));
        }
        let now = start() + Duration::minutes(5);
        assert_eq!(budget.refusal(stored, now), Some(Duration::minutes(10)));
        assert!(matches!(budget.take(stored, now), Verdict::Refused { .. }));
        let next_window = start() + Duration::minutes(15);
        assert_eq!(budget.refusal(stored, next_window), None);
        assert_eq!(
            budget.spend(stored, next_window),
            Counter {
                failures: 1,
                last_attempt_at: next_window,
                locked_until: None
            }
        );
    }

    #[test]
    fn two_ipv6_addresses_in_one_slash_64_share_a_key_and_ipv4_is_kept_whole() {
        let key = |text: &str| address_key(text.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(key("2001:db8:1:2::9"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
    }
}
