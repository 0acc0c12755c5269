//! The baseline: a VICIdial-style adaptive dial level, written from the description of
//! VICIdial's `AST_VDadapt.pl` (not from its code). A dial level between 1.0 and 3.0 lines
//! per logged-in agent, counting every line in use; once a second the ready agents and the
//! answered calls waiting for one are sampled, and every 15 s the level moves by the mean
//! of (ready − waiting) over those samples divided by the agents logged in. When the drop
//! rate since midnight passes the limit (3 %), the level is halved (never below 1.0). A call
//! is a drop when no agent takes it within its drop timeout of 5 s, VICIdial's default.
//! (The simulator counts abandons by the 2 s rule for every mode, so a call connected
//! between 2 s and 5 s is abandoned in the report though not a drop to this baseline.)

/// Lowest dial level.
pub const MIN_LEVEL: f64 = 1.0;
/// Highest dial level.
pub const MAX_LEVEL: f64 = 3.0;
/// How often the level moves, seconds.
pub const ADJUST_EVERY_S: usize = 15;
/// VICIdial's default drop timeout, ms.
pub const DROP_TIMEOUT_MS: i64 = 5000;
/// The drop-rate limit, a fraction.
pub const DROP_LIMIT: f64 = 0.03;

/// The baseline's state.
#[derive(Clone, Debug)]
pub struct DialLevel {
    level: f64,
    samples: Vec<f64>,
    answered: u64,
    drops: u64,
}

impl Default for DialLevel {
    fn default() -> Self {
        DialLevel::new()
    }
}

impl DialLevel {
    /// Level 1.0, nothing counted (the run starts at midnight).
    pub fn new() -> DialLevel {
        DialLevel {
            level: MIN_LEVEL,
            samples: Vec::new(),
            answered: 0,
            drops: 0,
        }
    }

    /// How long an answered call waits for an agent, ms.
    pub fn drop_timeout_ms(&self) -> i64 {
        DROP_TIMEOUT_MS
    }

    /// A call was connected to an agent `waited_ms` after its answer.
    pub fn answered(&mut self, _waited_ms: i64) {
        self.answered += 1;
    }

    /// A call was dropped.
    pub fn dropped(&mut self) {
        self.answered += 1;
        self.drops += 1;
    }

    /// The one-second sample; the level to dial at now.
    pub fn sample(&mut self, _now_ms: i64, ready: u32, waiting: u32, logged_in: u32) -> f64 {
        self.samples.push(f64::from(ready) - f64::from(waiting));
        if self.samples.len() >= ADJUST_EVERY_S {
            let mean = self.samples.iter().sum::<f64>() / self.samples.len() as f64;
            self.samples.clear();
            self.level += mean / f64::from(logged_in.max(1));
            if self.answered > 0 && self.drops as f64 / self.answered as f64 > DROP_LIMIT {
                self.level /= 2.0;
            }
            self.level = self.level.clamp(MIN_LEVEL, MAX_LEVEL);
        }
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_agents_raise_the_level_and_drops_over_the_limit_halve_it() {
        let mut d = DialLevel::new();
        for _ in 0..15 {
            d.sample(0, 10, 0, 20);
        }
        assert!((d.sample(0, 10, 0, 20) - 1.5).abs() < 1e-9);
        for _ in 0..14 {
            d.sample(0, 10, 0, 20);
        }
        assert!((d.sample(0, 10, 0, 20) - 2.0).abs() < 1e-9);
        for _ in 0..96 {
            d.answered(0);
        }
        for _ in 0..4 {
            d.dropped();
        }
        for _ in 0..14 {
            d.sample(0, 0, 0, 20);
        }
        let halved = d.sample(0, 0, 0, 20);
        assert!((1.0..1.05).contains(&halved), "about 2.0 halved: {halved}");
    }
}
