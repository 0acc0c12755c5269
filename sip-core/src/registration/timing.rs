//! The two timing rules of a registration: when to refresh, and how long to wait before
//! retrying. Both are pure functions so tests can pin them without running the machine.

use rand::{Rng, RngCore};
use std::time::Duration;

/// The smallest lead a refresh keeps before expiry when it can: a whole non-INVITE
/// transaction timeout (Timer F = 64*T1 = 32 s, RFC 3261 §17.1.2.2), so a refresh that gets
/// no answer times out, and its retry goes out, before the binding lapses.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(32);

/// The longest `Retry-After` honoured; a larger value is cut to this (a registrar asking for
/// more than a day is treated as asking for a day).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The delay from sending a REGISTER to sending its refresh, for a `granted` expiry.
///
/// `min(granted * fraction, max(granted - 32 s, granted / 2))`: the configured fraction,
/// moved earlier when it would leave less than [`REFRESH_MARGIN`] before expiry, but never
/// earlier than half the expiry on that account. RFC 3261 §10.2.4 only asks that the refresh
/// come before expiry; counting from the send time (not from the 200) keeps the refresh
/// early by the round trip, since the registrar starts its clock when it receives the
/// request. With the default fraction 0.5: 600 s granted refreshes after 300 s, 60 s after
/// 30 s.
pub fn refresh_delay(granted: Duration, fraction: f64) -> Duration {
    let by_fraction = granted.mul_f64(fraction);
    let latest = granted.saturating_sub(REFRESH_MARGIN).max(granted / 2);
    by_fraction.min(latest)
}

/// The delay before retry number `attempt` (1 for the first retry).
///
/// Exponential with jitter: the nominal delay is `min * 2^(attempt-1)`, capped at two thirds
/// of `max` (and never below `min`); the delay drawn is uniform in `[nominal, 1.5 * nominal)`,
/// then clamped to `[min, max]`. Below the cap every delay is strictly longer than the one
/// before (the next nominal is twice this one, above this one's jittered value); at the cap
/// the delays stay spread over `[2/3 max, max]`, so many dialers retrying a carrier that came
/// back do not arrive in step.
pub fn backoff_delay(
    attempt: u32,
    min: Duration,
    max: Duration,
    rng: &mut dyn RngCore,
) -> Duration {
    let cap = max.mul_f64(2.0 / 3.0).max(min);
    let exponent = attempt.saturating_sub(1).min(31);
    let nominal = min.saturating_mul(1u32 << exponent).min(cap);
    let jitter: f64 = rng.gen_range(0.0..0.5);
    (nominal + nominal.mul_f64(jitter)).clamp(min, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn refresh_at_half_keeps_the_fraction_for_every_expiry() {
        assert_eq!(refresh_delay(secs(600), 0.5), secs(300));
        assert_eq!(refresh_delay(secs(60), 0.5), secs(30));
        assert_eq!(refresh_delay(secs(20), 0.5), secs(10));
        assert_eq!(refresh_delay(secs(3600), 0.5), secs(1800));
    }

    #[test]
    fn a_late_fraction_is_moved_earlier_to_leave_a_transaction_timeout() {
        // 0.9 of 3600 s leaves 360 s: kept.
        assert_eq!(refresh_delay(secs(3600), 0.9), secs(3240));
        // 0.9 of 120 s leaves 12 s: moved to 120 - 32 = 88 s.
        assert_eq!(refresh_delay(secs(120), 0.9), secs(88));
        // 0.9 of 60 s: 60 - 32 = 28 s is below half, so half.
        assert_eq!(refresh_delay(secs(60), 0.9), secs(30));
        // An early fraction is never moved later.
        assert_eq!(refresh_delay(secs(10), 0.3), secs(3));
    }

    #[test]
    fn backoff_grows_within_bounds_and_keeps_jitter_at_the_cap() {
        let (min, max) = (secs(2), secs(120));
        for seed in 0..50 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let delays: Vec<Duration> = (1..=12)
                .map(|n| backoff_delay(n, min, max, &mut rng))
                .collect();
            for d in &delays {
                assert!(*d >= min && *d <= max, "seed {seed}: {d:?} outside bounds");
            }
            // Nominal 2, 4, 8, 16, 32, 64 (< 80 = 2/3 of 120): strictly growing.
            for w in delays[..6].windows(2) {
                assert!(w[1] > w[0], "seed {seed}: {delays:?} not growing");
            }
            // Capped: within [80 s, 120 s].
            for d in &delays[7..] {
                assert!(
                    *d >= secs(80),
                    "seed {seed}: capped delay {d:?} below 2/3 max"
                );
            }
        }
    }

    #[test]
    fn backoff_jitter_differs_between_random_sources() {
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            backoff_delay(3, secs(1), secs(60), &mut rng)
        };
        assert_ne!(draw(1), draw(2));
        assert_eq!(draw(1), draw(1));
    }

    #[test]
    fn backoff_with_equal_bounds_is_that_bound() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for n in [1, 2, 40, u32::MAX] {
            assert_eq!(backoff_delay(n, secs(5), secs(5), &mut rng), secs(5));
        }
    }
}
