//! Predictive pacing: how many lines a campaign dials beyond its ready agents, and the
//! abandon budget that bounds the bet. This module owns the traffic model a campaign
//! learns ([`model`]), the abandon counts of its legal window ([`ledger`]) and the decision
//! ([`predict`]); the [`crate::engine`] feeds them its call events and asks for a line count
//! each tick.
//!
//! Why it is shaped so:
//! - The law caps the bet, not the dialling: abandoned calls (answered by a person and not
//!   connected to an agent within 2 s of the greeting) may be at most 3 % of calls answered
//!   by a person, per campaign over 30 days in the US (TSR, 16 CFR 310.4(b)(4)(i); FCC,
//!   47 CFR 64.1200(a)(7)(i)), per 24 h in the UK (Ofcom's persistent-misuse policy, which
//!   also asks operators to treat any abandonment as possible misuse, hence
//!   `max_abandon_pct = 0`). So the pacer counts both, in the campaign's chosen window, and
//!   never dials a line that would make the expected count pass the cap.
//! - The budget is also held over the trailing hour, at a lower share of the cap
//!   ([`HOUR_SHARE`]), so that abandons saved in a quiet morning cannot be spent in one
//!   burst, and chance (abandons are rare events) leaves room under the cap in every hour.
//!   Within it, each line is dialled only while its own chance of being abandoned once
//!   answered is small ([`MARGINAL_MAX`]), a limit that shrinks as the hour's abandons
//!   approach [`HOUR_TARGET_SHARE`] of the cap: spending the budget on the safest extra
//!   lines buys the most talk time, and keeps the hard limit from being reached, where the
//!   campaign would have to fall back to progressive.
//! - The model is learned from the campaign's own calls and decays within minutes
//!   ([`model::HALF_LIFE_S`]): answer rates change through the day and with the list, and
//!   a stale model that believes too many people answer is what abandons customers.
//! - Until the model has seen enough calls ([`model::TrafficModel::trusted`]), below
//!   `min_agents`, and when the budget is spent, the campaign dials progressively (one line
//!   per ready agent), which abandons no one while agents stay logged in.

pub mod ledger;
pub mod model;
pub mod predict;

use crate::definition::{AbandonWindow, PredictiveDef};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use ledger::{Counts, Rolling};
use model::TrafficModel;
use predict::{Allowance, Situation};

/// Share of the cap the legal window is paced to (the rest absorbs the abandons of lines
/// already ringing when the count turns).
pub const WINDOW_SHARE: f64 = 0.9;
/// Share of the cap the trailing hour may never pass (counted and expected abandons).
pub const HOUR_SHARE: f64 = 0.85;
/// Share of the cap the trailing hour is steered toward: the riskiest line allowed shrinks
/// to nothing as the hour's abandons approach it.
pub const HOUR_TARGET_SHARE: f64 = 0.9;
/// The largest chance of being abandoned once answered that a new line may carry, when
/// the trailing hour has its whole allowance left; it shrinks as the allowance is spent.
/// Small on purpose: on the shipped simulator model with 20 agents, riskier lines buy
/// little talk time for their abandons (0.02: 86 % occupancy at 1.0 % abandoned; 0.04:
/// 86-87 % at 1.5 %; 0.08: no more occupancy at 1.9 %), and the abandons spend the budget
/// that would otherwise keep a bad hour off the hard limit.
pub const MARGINAL_MAX: f64 = 0.04;
/// Half-life of the calibration of expected abandons.
pub const CALIBRATION_HALF_LIFE_S: f64 = 3600.0;
/// The most the expected abandons are scaled up by.
pub const MAX_CALIBRATION: f64 = 4.0;
/// Bucket width of the legal window's counts.
const WINDOW_BUCKET_S: i64 = 60;
/// Bucket width of the trailing hour's counts.
const HOUR_BUCKET_S: i64 = 10;
/// The trailing hour.
const HOUR_S: i64 = 3600;

/// A predictive campaign's pacing state.
#[derive(Clone, Debug)]
pub struct Pacer {
    def: PredictiveDef,
    time_zone: Tz,
    /// The learned traffic.
    pub model: TrafficModel,
    window: Rolling,
    hour: Rolling,
    /// Abandons the pacer expected of the lines it added, and abandons counted, both
    /// decayed with [`CALIBRATION_HALF_LIFE_S`].
    expected: f64,
    counted: f64,
    /// The other campaigns of its drop-rate group.
    group: GroupCounts,
}

/// The counts of the other campaigns of a drop-rate group, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupCounts {
    /// Over their legal windows.
    pub window: Counts,
    /// Over the trailing hour.
    pub hour: Counts,
}

/// What the engine knows of the lines and agents of a campaign at one tick.
#[derive(Clone, Debug, Default)]
pub struct Lines {
    /// Agents logged in to the pool.
    pub logged_in: u32,
    /// Ready agents not promised to another line.
    pub ready: u32,
    /// Lines answered, waiting for an agent.
    pub waiting: u32,
    /// Seconds each ringing line has rung.
    pub ringing: Vec<f64>,
    /// Seconds each of the campaign's agents has talked.
    pub talking: Vec<f64>,
    /// Seconds since each of the campaign's agents in wrap-up ended its call.
    pub wrapping: Vec<f64>,
    /// Lines in flight (ringing, waiting and bridged).
    pub in_use: u32,
    /// The campaign's ring timeout.
    pub ring_timeout_s: u32,
}

impl Pacer {
    /// A pacer that knows nothing of the traffic yet.
    pub fn new(def: PredictiveDef, time_zone: Tz) -> Pacer {
        Pacer {
            def,
            time_zone,
            model: TrafficModel::new(0.0),
            window: Rolling::new(WINDOW_BUCKET_S),
            hour: Rolling::new(HOUR_BUCKET_S),
            expected: 0.0,
            counted: 0.0,
            group: GroupCounts::default(),
        }
    }

    /// The counts of the other campaigns of its drop-rate group (`drop_group`), which share
    /// its budget: they count in every window it paces to.
    pub fn set_group_counts(&mut self, others: GroupCounts) {
        self.group = others;
    }

    /// Counts of the trailing hour.
    pub fn hour_counts(&self) -> Counts {
        self.hour.total()
    }

    /// The legal window's counts with the rest of its group's.
    fn window_total(&self) -> Counts {
        self.window.total().plus(&self.group.window)
    }

    /// The trailing hour's counts with the rest of its group's.
    fn hour_total(&self) -> Counts {
        self.hour.total().plus(&self.group.hour)
    }

    /// A call answered at `answered_at` (Unix seconds) ended: bridged or abandoned.
    pub fn count(&mut self, answered_at: i64, bridged: bool) {
        let c = Counts {
            bridged: u64::from(bridged),
            machines: 0,
            abandoned: u64::from(!bridged),
        };
        self.window.add(answered_at, c);
        self.hour.add(answered_at, c);
        if !bridged {
            self.counted += 1.0;
        }
    }

    /// Abandons counted per abandon expected: the estimate is a lower bound (it leaves out
    /// the lines later ticks add and the worst case over time), and the campaign's own
    /// abandons say by how much. One abandon of prior on each side keeps a quiet start
    /// from reading as a large factor.
    pub fn calibration(&self) -> f64 {
        ((self.counted + 1.0) / (self.expected + 1.0)).clamp(1.0, MAX_CALIBRATION)
    }

    /// An agent marked a bridged call answered at `answered_at` as an answering machine.
    pub fn machine(&mut self, answered_at: i64) {
        let c = Counts {
            bridged: 0,
            machines: 1,
            abandoned: 0,
        };
        self.window.add(answered_at, c);
        self.hour.add(answered_at, c);
    }

    /// Moves the windows and the model to `now`.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        let secs = now.timestamp();
        if let Some(last) = self.model.last_decay() {
            let f = 0.5f64.powf((secs - last).max(0) as f64 / CALIBRATION_HALF_LIFE_S);
            self.expected *= f;
            self.counted *= f;
        }
        self.model.decay_to(secs);
        self.window
            .forget_before(window_start(self.def.abandon_window, self.time_zone, now));
        self.hour.forget_before(secs - HOUR_S);
    }

    /// How much of the trailing hour's allowance is left, 0 to 1.
    fn slack(&self, cap: f64) -> f64 {
        let h = self.hour_total();
        let allowed = cap * HOUR_TARGET_SHARE * h.live_answered();
        if allowed <= 0.0 {
            return 0.0;
        }
        (1.0 - h.adjusted_abandoned() / allowed).clamp(0.0, 1.0)
    }

    /// Counts of the legal window.
    pub fn window_counts(&self) -> Counts {
        self.window.total()
    }

    /// New lines to dial now, beyond the lines in flight; `progressive` is what
    /// progressive pacing would dial (the floor: it risks no abandon).
    pub fn lines_to_add(&mut self, lines: &Lines, progressive: u32) -> u32 {
        let cap = self.def.max_abandon_pct / 100.0;
        if cap <= 0.0 || lines.logged_in < self.def.min_agents || !self.model.trusted() {
            return progressive;
        }
        let most = (self.def.max_lines_per_agent * f64::from(lines.logged_in)).floor() as u32;
        let room = most.saturating_sub(lines.in_use);
        let snapshot = self.model.snapshot();
        let wrapping: Vec<f64> = lines
            .wrapping
            .iter()
            .map(|since| (snapshot.wrap_up_s - since).max(1.0))
            .collect();
        let situation = Situation {
            model: &snapshot,
            ready: lines.ready,
            waiting: lines.waiting,
            ringing: &lines.ringing,
            talking: &lines.talking,
            wrapping: &wrapping,
            horizon_s: lines.ring_timeout_s,
            // The engine does not know the pool's abandon_after_ms (at most 2000 for a
            // predictive campaign, possibly less): assume none, the cautious side.
            wait_s: 0.0,
            calibration: self.calibration(),
        };
        let windows = [
            Allowance {
                counts: self.window_total(),
                rate: cap * WINDOW_SHARE,
            },
            Allowance {
                counts: self.hour_total(),
                rate: hour_rate(cap, self.hour_total().live_answered()),
            },
        ];
        let marginal = MARGINAL_MAX * self.slack(cap);
        let d = predict::lines_to_add(&situation, &windows, room, marginal);
        self.expected += d.expected_abandons - d.in_flight_abandons;
        d.add.max(progressive.min(room))
    }
}

/// The rate the trailing hour is paced to: [`HOUR_SHARE`] of the cap less
/// [`HOUR_HEADROOM_ABANDONS`] worth of the hour's live answers. Abandons come one at a time, so a small team's hour
/// (5 agents: about 95 live answers, 2.9 abandons allowed) passes the cap with one
/// unlucky abandon from the lines already ringing when its count turned; the headroom of
/// one keeps that abandon inside the cap, and costs a large team almost nothing (100
/// agents: 2600 live answers an hour, 0.04 points).
/// Abandons of headroom the trailing hour keeps below its share of the cap.
pub const HOUR_HEADROOM_ABANDONS: f64 = 1.0;

fn hour_rate(cap: f64, live_in_hour: f64) -> f64 {
    if live_in_hour <= 0.0 {
        return 0.0;
    }
    (cap * HOUR_SHARE - HOUR_HEADROOM_ABANDONS / live_in_hour).max(0.0)
}

/// Where the legal window that contains `now` starts (Unix seconds).
pub fn window_start(window: AbandonWindow, tz: Tz, now: DateTime<Utc>) -> i64 {
    match window {
        AbandonWindow::Days30 => now.timestamp() - 30 * 86_400,
        AbandonWindow::Hours24 => now.timestamp() - 86_400,
        AbandonWindow::CalendarDay => {
            let date = now.with_timezone(&tz).date_naive();
            date.and_hms_opt(0, 0, 0)
                .and_then(|m| tz.from_local_datetime(&m).earliest())
                .map_or(now.timestamp() - 86_400, |t| t.timestamp())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::New_York;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("in range")
    }

    /// A pacer that has learnt the shipped model's traffic roughly.
    fn trained(def: PredictiveDef) -> Pacer {
        let mut p = Pacer::new(def, chrono_tz::UTC);
        p.advance(at(0));
        for i in 0..400 {
            if i % 4 == 0 {
                p.model.answered(4.0 + (i % 16) as f64);
            } else {
                p.model.unanswered(25.0);
            }
        }
        for i in 0..50 {
            p.model.talked(60.0 + 3.0 * i as f64);
        }
        p
    }

    fn idle_agents(n: u32) -> Lines {
        Lines {
            logged_in: n,
            ready: n,
            ring_timeout_s: 25,
            ..Lines::default()
        }
    }

    #[test]
    fn calendar_day_starts_at_local_midnight_and_24h_a_day_back() {
        // 2026-06-10 03:30 UTC is 23:30 on the 9th in New York (EDT, UTC-4).
        let now = at(1_781_062_200);
        let midnight_ny = 1_780_977_600; // 2026-06-09 04:00 UTC
        assert_eq!(
            window_start(AbandonWindow::CalendarDay, New_York, now),
            midnight_ny
        );
        assert_eq!(
            window_start(AbandonWindow::Hours24, New_York, now),
            now.timestamp() - 86_400
        );
        assert_eq!(
            window_start(AbandonWindow::Days30, New_York, now),
            now.timestamp() - 30 * 86_400
        );
    }

    #[test]
    fn a_spent_window_dials_progressive_and_a_clean_one_dials_ahead() {
        let mut clean = trained(PredictiveDef::default());
        for t in 0..300 {
            clean.count(t, true);
        }
        let ahead = clean.lines_to_add(&idle_agents(10), 10);
        assert!(ahead > 10, "a clean window dials ahead: {ahead}");
        let mut spent = trained(PredictiveDef::default());
        for t in 0..300 {
            spent.count(t, t % 30 != 0);
        }
        assert_eq!(spent.window_counts().abandoned, 10);
        assert_eq!(spent.lines_to_add(&idle_agents(10), 10), 10);
    }

    #[test]
    fn a_drop_group_whose_other_campaigns_spent_the_budget_dials_progressive() {
        let mut clean = trained(PredictiveDef::default());
        for t in 0..300 {
            clean.count(t, true);
        }
        let alone = clean.lines_to_add(&idle_agents(10), 10);
        assert!(alone > 10, "its own window is clean: {alone}");
        // The other member answered 300 and abandoned 30 (10 %): the group is over the cap.
        let others = Counts {
            bridged: 270,
            machines: 0,
            abandoned: 30,
        };
        clean.set_group_counts(GroupCounts {
            window: others,
            hour: others,
        });
        assert_eq!(clean.lines_to_add(&idle_agents(10), 10), 10);
        // A clean partner leaves it dialling ahead.
        clean.set_group_counts(GroupCounts {
            window: Counts {
                bridged: 300,
                ..Counts::default()
            },
            hour: Counts::default(),
        });
        assert!(clean.lines_to_add(&idle_agents(10), 10) > 10);
    }

    #[test]
    fn zero_budget_below_min_agents_and_an_untrained_model_dial_progressive() {
        let zero = PredictiveDef {
            max_abandon_pct: 0.0,
            ..PredictiveDef::default()
        };
        let mut p = trained(zero);
        (0..300).for_each(|t| p.count(t, true));
        assert_eq!(p.lines_to_add(&idle_agents(10), 10), 10);
        let few = PredictiveDef {
            min_agents: 11,
            ..PredictiveDef::default()
        };
        let mut p = trained(few);
        (0..300).for_each(|t| p.count(t, true));
        assert_eq!(p.lines_to_add(&idle_agents(10), 10), 10);
        let mut fresh = Pacer::new(PredictiveDef::default(), chrono_tz::UTC);
        (0..300).for_each(|t| fresh.count(t, true));
        assert_eq!(fresh.lines_to_add(&idle_agents(10), 10), 10);
    }

    #[test]
    fn lines_stay_under_max_lines_per_agent() {
        let def = PredictiveDef {
            max_lines_per_agent: 1.5,
            ..PredictiveDef::default()
        };
        let mut p = trained(def);
        (0..3000).for_each(|t| p.count(t, true));
        let lines = Lines {
            in_use: 4,
            ..idle_agents(10)
        };
        assert_eq!(
            p.lines_to_add(&lines, 6),
            11,
            "15 lines for 10 agents, 4 in use"
        );
    }
}
