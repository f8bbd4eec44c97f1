//! Throttling of password and code checks (SPEC §4): back-off from the 5th consecutive failure,
//! refusal for the back-off's length, doubling up to 15 minutes. Every attempt counts as a failure
//! until it succeeds, so concurrent guesses cannot slip past the count. Pure: the store applies
//! `register` atomically, per key (an account or a source address).
use chrono::{DateTime, Duration, Utc};

/// Failures before the first back-off.
pub const FREE_ATTEMPTS: i64 = 4;
/// The longest back-off.
pub const MAX_DELAY_SECONDS: i64 = 15 * 60;
/// How long a quiet counter is remembered: far longer than the longest back-off, so waiting one out
/// never restarts the count with free attempts.
pub const FORGET_AFTER_SECONDS: i64 = 24 * 3600;

/// One key's counter as stored.
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

/// The back-off after `failures` consecutive failures: none for the first four, then 1 s, 2 s, 4 s, …
/// (the 10th failure waits 32 s), capped at 15 minutes.
pub fn delay_after(failures: i64) -> Duration {
    if failures <= FREE_ATTEMPTS {
        return Duration::zero();
    }
    let exponent = u32::try_from((failures - FREE_ATTEMPTS - 1).min(20)).unwrap_or(20);
    Duration::seconds((1i64 << exponent).min(MAX_DELAY_SECONDS))
}

/// The counter after a success took back its own attempt: one failure fewer, and the back-off of the
/// failures left.
pub fn forgive_one(counter: Counter) -> Counter {
    let failures = (counter.failures - 1).max(0);
    let delay = delay_after(failures);
    Counter {
        failures,
        locked_until: (delay > Duration::zero()).then(|| counter.last_attempt_at + delay),
        ..counter
    }
}

/// Registers one attempt at `now` against `stored`.
pub fn register(stored: Option<Counter>, now: DateTime<Utc>) -> Verdict {
    let current = stored
        .filter(|counter| now - counter.last_attempt_at < Duration::seconds(FORGET_AFTER_SECONDS));
    if let Some(until) = current.and_then(|counter| counter.locked_until)
        && until > now
    {
        return Verdict::Refused {
            retry_after: until - now,
        };
    }
    let failures = current.map_or(0, |counter| counter.failures) + 1;
    let delay = delay_after(failures);
    let locked_until = (delay > Duration::zero()).then(|| now + delay);
    Verdict::Proceed(Counter {
        failures,
        last_attempt_at: now,
        locked_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_starts_at_the_fifth_failure_and_is_capped_at_fifteen_minutes() {
        assert_eq!(delay_after(4), Duration::zero());
        assert_eq!(delay_after(5), Duration::seconds(1));
        assert_eq!(delay_after(10), Duration::seconds(32));
        assert_eq!(delay_after(15), Duration::seconds(900));
        assert_eq!(delay_after(1000), Duration::seconds(900));
    }

    #[test]
    fn attempts_during_a_back_off_are_refused_and_a_quiet_counter_is_forgotten() {
        let start = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let mut stored = None;
        let mut now = start;
        for _ in 0..5 {
            let Verdict::Proceed(counter) = register(stored, now) else {
                panic!("refused too early")
            };
            stored = Some(counter);
        }
        assert_eq!(
            stored.unwrap().locked_until,
            Some(now + Duration::seconds(1))
        );
        assert_eq!(
            register(stored, now),
            Verdict::Refused {
                retry_after: Duration::seconds(1)
            }
        );
        now += Duration::seconds(1);
        assert!(matches!(
            register(stored, now),
            Verdict::Proceed(Counter { failures: 6, .. })
        ));
        let later = start + Duration::seconds(FORGET_AFTER_SECONDS + 1);
        assert!(matches!(
            register(stored, later),
            Verdict::Proceed(Counter { failures: 1, .. })
        ));
    }
}
