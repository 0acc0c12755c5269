//! Virtual time: the runtime tells the core what time it is.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, as a duration since an epoch chosen by the runtime (its start).
/// The cores never read a clock; every input carries a `Time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub Duration);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// `ms` milliseconds after the epoch.
    pub fn from_millis(ms: u64) -> Time {
        Time(Duration::from_millis(ms))
    }

    /// Milliseconds since the epoch.
    pub fn as_millis(self) -> u128 {
        self.0.as_millis()
    }

    /// Time elapsed since `earlier` (zero if `earlier` is later).
    pub fn since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0 + d)
    }
}

impl Sub<Duration> for Time {
    type Output = Time;
    fn sub(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(d))
    }
}
