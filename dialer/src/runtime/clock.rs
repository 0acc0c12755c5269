//! The one clock: the cores get [`Time`] as a duration since the dialer started.

use sip_core::time::Time;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The runtime's clock.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: Instant,
    unix_at_start: f64,
}

impl Clock {
    /// Starts the clock now.
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
            unix_at_start: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        }
    }

    /// Now, as the cores see it.
    pub fn now(&self) -> Time {
        Time(self.start.elapsed())
    }

    /// The `Instant` of a core time.
    pub fn instant_of(&self, t: Time) -> Instant {
        self.start + t.0
    }

    /// Wall-clock seconds since the Unix epoch when the clock started.
    pub fn unix_at_start(&self) -> f64 {
        self.unix_at_start
    }
}

/// Wall-clock seconds since the Unix epoch now (for commands that show how long ago or how
/// long until something the dialer reported).
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Blocks the calling thread for `d` (command-line clients that poll the running dialer).
pub fn wait(d: std::time::Duration) {
    std::thread::sleep(d);
}
