//! How many more lines to dial now, given the traffic model, the agents, the lines in
//! flight and the abandon budget.
//!
//! For each second `t` of the horizon (the ring timeout) the pacer forms the expected
//! number of person answers by `t` (answered calls waiting, ringing lines by their age, the
//! new calls) and the expected number of agents free by `t` plus the time an answered call
//! may wait (ready agents, talking agents by how long they have talked, agents in wrap-up
//! by when it ends), with the variance of both as sums of independent yes/no outcomes.
//! Abandons are the answers an agent cannot take; answers that find no agent are lost, not
//! queued, so the abandons by the end are the largest excess of answers over agents at any
//! `t` (a reflected process); the pacer estimates it as the largest expected excess under a
//! normal approximation. It then dials the most new lines for which, over every budget
//! window, the expected abandons (plus a margin for chance) stay within the allowed share of
//! the live answers expected from the lines in flight and the new ones, plus a small part of
//! what the window has saved ([`SAVED_SHARE`]), or minus what it has overspent.

use super::ledger::Counts;
use super::model::Snapshot;

/// Share of the abandons a window has saved (its allowance not yet used) that the lines in
/// flight may spend at once: spending all of it would put a morning's savings into one
/// burst of abandoned customers.
pub const SAVED_SHARE: f64 = 0.05;

/// Abandons are rare, so the count that comes is the expected one give or take chance:
/// the budget must hold for the expected abandons plus this many standard deviations of a
/// Poisson count, or a small campaign (100 live answers an hour allow 3) passes the cap by
/// bad luck.
pub const CHANCE_MARGIN_SD: f64 = 2.0;

/// What the pacer sees at one tick.
#[derive(Clone, Debug)]
pub struct Situation<'a> {
    /// The learned traffic.
    pub model: &'a Snapshot,
    /// Agents ready and not promised to a line.
    pub ready: u32,
    /// Lines answered, waiting for an agent.
    pub waiting: u32,
    /// Seconds each ringing line has rung.
    pub ringing: &'a [f64],
    /// Seconds each talking agent has talked.
    pub talking: &'a [f64],
    /// Seconds until each agent in wrap-up is expected ready.
    pub wrapping: &'a [f64],
    /// Seconds ahead to look (the ring timeout).
    pub horizon_s: u32,
    /// Seconds an answered call may wait for an agent before it is abandoned.
    pub wait_s: f64,
    /// Abandons the campaign has had per abandon this estimate expected (the estimate
    /// leaves out what later lines and chance add); values below 1 are taken as 1.
    pub calibration: f64,
}

/// A window of the abandon budget: what it counted and the share it allows.
#[derive(Clone, Copy, Debug)]
pub struct Allowance {
    /// Counted so far in the window.
    pub counts: Counts,
    /// Largest abandon rate the window may reach (a fraction).
    pub rate: f64,
}

/// The pacer's answer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// New lines to dial now.
    pub add: u32,
    /// Expected abandons of the lines in flight and the new ones.
    pub expected_abandons: f64,
    /// Of those, the lines already in flight.
    pub in_flight_abandons: f64,
}

/// Expected answers and free agents by each second of the horizon.
struct Curves {
    /// Expected excess of answers over free agents, without new lines.
    mean: Vec<f64>,
    /// Its variance.
    var: Vec<f64>,
    /// Probability that a new line is answered by each second.
    new: Vec<f64>,
    /// Person answers expected from the lines in flight.
    inflight_live: f64,
    /// Abandons counted per abandon expected (at least 1).
    scale: f64,
}

fn curves(s: &Situation) -> Curves {
    let h = s.horizon_s.max(1) as usize;
    let mut mean = vec![f64::from(s.waiting) - f64::from(s.ready); h];
    let mut var = vec![0.0; h];
    let mut new = vec![0.0; h];
    for (i, t) in (1..=h).map(|t| t as f64).enumerate() {
        for &age in s.ringing {
            let q = s.model.answer_within(age, t);
            mean[i] += q;
            var[i] += q * (1.0 - q);
        }
        for &talked in s.talking {
            let f = s.model.free_within(talked, t + s.wait_s);
            mean[i] -= f;
            var[i] += f * (1.0 - f);
        }
        for &left in s.wrapping {
            if left <= t + s.wait_s {
                mean[i] -= 1.0;
            }
        }
        new[i] = s.model.answer_within(0.0, t);
    }
    let inflight_live = f64::from(s.waiting)
        + s.ringing
            .iter()
            .map(|&age| {
                s.model
                    .answer_within(age, f64::from(super::model::MAX_RING_S as u32))
            })
            .sum::<f64>();
    Curves {
        mean,
        var,
        new,
        inflight_live,
        scale: 1.0,
    }
}

impl Curves {
    /// Expected abandons with `n` new lines.
    fn abandons(&self, n: u32) -> f64 {
        let n = f64::from(n);
        (0..self.mean.len())
            .map(|i| {
                let p = self.new[i];
                expected_excess(self.mean[i] + n * p, self.var[i] + n * p * (1.0 - p))
            })
            .fold(0.0, f64::max)
            * self.scale
    }
}

/// The most new lines, up to `room`, that keep every window within its allowance, each
/// line added only while the chance that it is abandoned once answered stays at most
/// `marginal`.
pub fn lines_to_add(s: &Situation, windows: &[Allowance], room: u32, marginal: f64) -> Decision {
    let mut c = curves(s);
    c.scale = s.calibration.max(1.0);
    let p = s.model.answer_probability;
    let fits = |n: u32, abandons: f64| {
        windows.iter().all(|w| {
            let saved = w.rate * w.counts.live_answered() - w.counts.adjusted_abandoned();
            let saved = if saved > 0.0 {
                SAVED_SHARE * saved
            } else {
                saved
            };
            let margin = CHANCE_MARGIN_SD * abandons.sqrt();
            abandons + margin <= w.rate * (c.inflight_live + f64::from(n) * p) + saved
        })
    };
    let in_flight = c.abandons(0);
    let mut best = Decision {
        add: 0,
        expected_abandons: in_flight,
        in_flight_abandons: in_flight,
    };
    for n in 1..=room {
        let abandons = c.abandons(n);
        if !fits(n, abandons) || abandons - best.expected_abandons > marginal * p {
            break;
        }
        best = Decision {
            add: n,
            expected_abandons: abandons,
            in_flight_abandons: in_flight,
        };
    }
    best
}

/// E[max(X, 0)] for X normal with `mean` and `var`.
fn expected_excess(mean: f64, var: f64) -> f64 {
    if var <= 1e-12 {
        return mean.max(0.0);
    }
    let sd = var.sqrt();
    let z = mean / sd;
    sd * normal_pdf(z) + mean * normal_cdf(z)
}

fn normal_pdf(z: f64) -> f64 {
    (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Φ(z) from erfc (Abramowitz and Stegun 7.1.26, error below 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::model::TrafficModel;

    fn model() -> Snapshot {
        let mut m = TrafficModel::new(10.0);
        for i in 0..400 {
            if i % 4 == 0 {
                m.answered(4.0 + (i % 17) as f64);
            } else {
                m.unanswered(if i % 8 == 1 { 2.0 } else { 25.0 });
            }
        }
        for i in 0..100 {
            m.talked(60.0 + i as f64 * 1.2);
        }
        m.snapshot()
    }

    fn situation<'a>(m: &'a Snapshot, ready: u32, ringing: &'a [f64]) -> Situation<'a> {
        Situation {
            model: m,
            ready,
            waiting: 0,
            ringing,
            talking: &[],
            wrapping: &[],
            horizon_s: 25,
            wait_s: 0.0,
            calibration: 1.0,
        }
    }

    fn plenty() -> Allowance {
        Allowance {
            counts: Counts {
                bridged: 100,
                machines: 0,
                abandoned: 0,
            },
            rate: 0.03,
        }
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-3);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
    }

    #[test]
    fn more_ready_agents_allow_more_lines_and_a_spent_budget_allows_none() {
        let m = model();
        let few = lines_to_add(&situation(&m, 2, &[]), &[plenty()], 100, 1.0).add;
        let many = lines_to_add(&situation(&m, 10, &[]), &[plenty()], 100, 1.0).add;
        assert!(
            few >= 2 && many > few + 16,
            "2 agents: {few}, 10 agents: {many}"
        );
        let spent = Allowance {
            counts: Counts {
                bridged: 97,
                machines: 0,
                abandoned: 3,
            },
            rate: 0.03,
        };
        let none = lines_to_add(&situation(&m, 10, &[]), &[spent], 100, 1.0);
        assert!(none.add < many, "spent budget: {none:?}");
    }

    #[test]
    fn ringing_lines_take_their_share_of_the_ready_agents() {
        let m = model();
        let idle = lines_to_add(&situation(&m, 5, &[]), &[plenty()], 100, 1.0).add;
        let ringing = [1.0; 12];
        let busy = lines_to_add(&situation(&m, 5, &ringing), &[plenty()], 100, 1.0).add;
        assert!(busy < idle, "idle {idle}, with 12 lines ringing {busy}");
    }

    #[test]
    fn room_caps_the_answer() {
        let m = model();
        assert_eq!(
            lines_to_add(&situation(&m, 50, &[]), &[plenty()], 7, 1.0).add,
            7
        );
    }
}
