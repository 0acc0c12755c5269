//! RFC 3261 timers (Table 4, §17) with RFC 6026's L and M, from a configuration.

use std::time::Duration;

/// Base timer values; every transaction timer derives from these (RFC 3261 Table 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// The transaction timers, named as in RFC 3261 §17 and RFC 6026 §8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// INVITE request retransmit interval, unreliable transports; starts at T1, doubles.
    A,
    /// INVITE transaction timeout: 64*T1.
    B,
    /// Wait time for response retransmits in INVITE client Completed: >32 s unreliable, 0 reliable.
    D,
    /// Non-INVITE request retransmit interval, unreliable: T1 doubling up to T2.
    E,
    /// Non-INVITE transaction timeout: 64*T1.
    F,
    /// INVITE final response retransmit interval, unreliable: T1 doubling up to T2.
    G,
    /// Wait time for ACK receipt: 64*T1.
    H,
    /// Wait time for ACK retransmits in INVITE server Confirmed: T4 unreliable, 0 reliable.
    I,
    /// Wait time for non-INVITE request retransmits: 64*T1 unreliable, 0 reliable.
    J,
    /// Wait time for response retransmits in non-INVITE client Completed: T4 unreliable, 0 reliable.
    K,
    /// Wait time for INVITE request retransmits in server Accepted (RFC 6026): 64*T1.
    L,
    /// Wait time for 2xx retransmits in client Accepted (RFC 6026): 64*T1.
    M,
}

impl TimerConfig {
    /// The initial value of a timer for the given transport reliability.
    pub fn initial(&self, timer: Timer, reliable: bool) -> Duration {
        let zero_if_reliable = |d: Duration| if reliable { Duration::ZERO } else { d };
        match timer {
            Timer::A | Timer::E | Timer::G => self.t1,
            Timer::B | Timer::F | Timer::H | Timer::L | Timer::M => self.t1 * 64,
            Timer::D => zero_if_reliable(Duration::from_secs(32).max(self.t1 * 64)),
            Timer::I | Timer::K => zero_if_reliable(self.t4),
            Timer::J => zero_if_reliable(self.t1 * 64),
        }
    }

    /// The retransmit interval after `current` for timers A, E and G: A doubles without a
    /// cap (§17.1.1.2); E and G double up to T2 (§17.1.2.2, §17.2.1).
    pub fn next_interval(&self, timer: Timer, current: Duration) -> Duration {
        match timer {
            Timer::A => current * 2,
            _ => (current * 2).min(self.t2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_4_values_with_default_t1_t2_t4() {
        let c = TimerConfig::default();
        let ms = |t, r| c.initial(t, r).as_millis();
        assert_eq!(ms(Timer::A, false), 500);
        assert_eq!(ms(Timer::B, false), 32_000);
        assert_eq!(ms(Timer::D, false), 32_000);
        assert_eq!(ms(Timer::D, true), 0);
        assert_eq!(ms(Timer::E, false), 500);
        assert_eq!(ms(Timer::F, false), 32_000);
        assert_eq!(ms(Timer::G, false), 500);
        assert_eq!(ms(Timer::H, false), 32_000);
        assert_eq!(ms(Timer::I, false), 5_000);
        assert_eq!(ms(Timer::I, true), 0);
        assert_eq!(ms(Timer::J, false), 32_000);
        assert_eq!(ms(Timer::J, true), 0);
        assert_eq!(ms(Timer::K, false), 5_000);
        assert_eq!(ms(Timer::K, true), 0);
        assert_eq!(ms(Timer::L, false), 32_000);
        assert_eq!(ms(Timer::M, false), 32_000);
    }

    #[test]
    fn retransmit_intervals_double_with_e_and_g_capped_at_t2() {
        let c = TimerConfig::default();
        let mut a = c.initial(Timer::A, false);
        let mut e = c.initial(Timer::E, false);
        let mut seq_a = vec![];
        let mut seq_e = vec![];
        for _ in 0..6 {
            seq_a.push(a.as_millis());
            seq_e.push(e.as_millis());
            a = c.next_interval(Timer::A, a);
            e = c.next_interval(Timer::E, e);
        }
        assert_eq!(seq_a, vec![500, 1000, 2000, 4000, 8000, 16000]);
        assert_eq!(seq_e, vec![500, 1000, 2000, 4000, 4000, 4000]);
    }
}
