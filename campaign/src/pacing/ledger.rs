//! The abandon budget: live-answered and abandoned calls counted as the regulators count
//! them, over the campaign's legal window and over the trailing hour.
//!
//! A call is *live-answered* when a person answered it: bridged to an agent, or abandoned
//! (answered and not connected to an agent within 2 s). The abandon rate is abandoned over
//! live-answered (US TSR 16 CFR 310.4(b)(4)(i): at most 3 % of calls answered by a person,
//! per campaign over a 30-day period; FCC 47 CFR 64.1200(a)(7)(i): the same 3 % over 30
//! days; Ofcom's persistent-misuse policy: 3 % of live calls per campaign per 24 h).
//! When agents mark answering machines that reached them, the abandoned calls are scaled
//! down by the share of machines among the answers, as Ofcom's formula does: adjusted drops
//! = D × (1 − AM / (AM + LP)), with LP the live persons connected to agents and AM the
//! agent-marked machines; the rate is then adjusted drops / (LP + adjusted drops).

use std::collections::VecDeque;

/// Counts of one span of time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    /// Calls bridged to an agent (machines among them included).
    pub bridged: u64,
    /// Bridged calls an agent marked as an answering machine.
    pub machines: u64,
    /// Answered and not connected to an agent.
    pub abandoned: u64,
}

impl Counts {
    /// Abandoned calls as the regulator counts them: D × (1 − AM / (AM + LP)).
    pub fn adjusted_abandoned(&self) -> f64 {
        let live_connected = self.bridged.saturating_sub(self.machines) as f64;
        let machines = self.machines as f64;
        let d = self.abandoned as f64;
        if machines == 0.0 {
            return d;
        }
        d * (1.0 - machines / (machines + live_connected))
    }

    /// Calls answered by a person: connected persons plus (adjusted) abandoned calls.
    pub fn live_answered(&self) -> f64 {
        self.bridged.saturating_sub(self.machines) as f64 + self.adjusted_abandoned()
    }

    /// Abandoned over live-answered; 0 with no live answer.
    pub fn abandon_rate(&self) -> f64 {
        let live = self.live_answered();
        if live <= 0.0 {
            0.0
        } else {
            self.adjusted_abandoned() / live
        }
    }

    /// These counts and `o`'s together.
    pub fn plus(&self, o: &Counts) -> Counts {
        let mut c = *self;
        c.add(o);
        c
    }

    fn add(&mut self, o: &Counts) {
        self.bridged += o.bridged;
        self.machines += o.machines;
        self.abandoned += o.abandoned;
    }

    fn sub(&mut self, o: &Counts) {
        self.bridged -= o.bridged;
        self.machines -= o.machines;
        self.abandoned -= o.abandoned;
    }
}

/// Counts in time buckets of `bucket_s` (by answer time), summed over a window whose start
/// the owner moves forward.
#[derive(Clone, Debug)]
pub struct Rolling {
    bucket_s: i64,
    /// (bucket start, counts), oldest first.
    buckets: VecDeque<(i64, Counts)>,
    total: Counts,
    /// Counts from before this are outside the window.
    floor: i64,
}

impl Rolling {
    /// Empty, with buckets of `bucket_s` seconds.
    pub fn new(bucket_s: i64) -> Rolling {
        Rolling {
            bucket_s,
            buckets: VecDeque::new(),
            total: Counts::default(),
            floor: i64::MIN,
        }
    }

    /// Adds `c` at time `at` (Unix seconds) unless it is older than the window.
    pub fn add(&mut self, at: i64, c: Counts) {
        if at < self.floor {
            return;
        }
        let start = at.div_euclid(self.bucket_s) * self.bucket_s;
        match self.buckets.iter_mut().rev().find(|(s, _)| *s == start) {
            Some((_, b)) => b.add(&c),
            None => {
                let pos = self.buckets.partition_point(|(s, _)| *s < start);
                self.buckets.insert(pos, (start, c));
            }
        }
        self.total.add(&c);
    }

    /// Drops the buckets that start before `start`.
    pub fn forget_before(&mut self, start: i64) {
        self.floor = self.floor.max(start);
        while let Some((s, c)) = self.buckets.front() {
            if *s >= start.div_euclid(self.bucket_s) * self.bucket_s {
                break;
            }
            let c = *c;
            self.total.sub(&c);
            self.buckets.pop_front();
        }
    }

    /// The sum over the window.
    pub fn total(&self) -> Counts {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ofcom_adjusted_drops_scale_abandons_by_the_share_of_live_persons() {
        // 90 live persons connected, 10 machines marked, 4 abandoned:
        // 4 × (1 − 10/100) = 3.6 adjusted drops over 93.6 live calls.
        let c = Counts {
            bridged: 100,
            machines: 10,
            abandoned: 4,
        };
        assert!((c.adjusted_abandoned() - 3.6).abs() < 1e-9);
        assert!((c.abandon_rate() - 3.6 / 93.6).abs() < 1e-9);
        let plain = Counts {
            bridged: 97,
            machines: 0,
            abandoned: 3,
        };
        assert!((plain.abandon_rate() - 0.03).abs() < 1e-12);
    }

    #[test]
    fn rolling_window_forgets_what_falls_out_of_it() {
        let mut r = Rolling::new(60);
        let one = |bridged, abandoned| Counts {
            bridged,
            machines: 0,
            abandoned,
        };
        r.add(0, one(10, 1));
        r.add(61, one(5, 0));
        r.add(130, one(1, 1));
        assert_eq!(r.total(), one(16, 2));
        r.forget_before(60);
        assert_eq!(r.total(), one(6, 1));
        r.forget_before(180);
        assert_eq!(r.total(), one(0, 0));
        r.add(100, one(1, 0));
        assert_eq!(r.total(), one(0, 0), "older than the window");
    }
}
