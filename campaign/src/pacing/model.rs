//! The traffic a campaign meets, learned from its own calls: how often a placed call is
//! answered by a person, how long it rings before that (and before it ends unanswered), how
//! long agents talk and how long their wrap-up lasts.
//!
//! Every estimate is exponentially decayed in time with a half-life of [`HALF_LIFE_S`], so
//! the model follows a change of the traffic (the answer rate halving at noon, a longer
//! script) within minutes, while still averaging over a few hundred calls on a busy
//! campaign.

/// Half-life of every estimate: five minutes of calls.
pub const HALF_LIFE_S: f64 = 300.0;
/// Width of a ring-time bin.
pub const RING_BIN_S: usize = 1;
/// Longest ring time tracked (rings past it fall in the last bin).
pub const MAX_RING_S: usize = 300;
/// Width of a talk-time bin.
pub const TALK_BIN_S: usize = 5;
/// Longest talk time tracked (longer calls fall in the last bin).
pub const MAX_TALK_S: usize = 3600;
/// Placed calls with a known outcome, and bridged calls, needed before the model is trusted;
/// until then predictive pacing dials progressively.
pub const MIN_OUTCOMES: f64 = 40.0;
/// Talk samples needed before the model is trusted.
pub const MIN_TALKS: f64 = 10.0;

/// A histogram whose weights decay with time.
#[derive(Clone, Debug)]
struct Decayed {
    bins: Vec<f64>,
    total: f64,
    bin_s: usize,
}

impl Decayed {
    fn new(max_s: usize, bin_s: usize) -> Decayed {
        Decayed {
            bins: vec![0.0; max_s / bin_s + 1],
            total: 0.0,
            bin_s,
        }
    }

    fn add(&mut self, secs: f64) {
        let i = ((secs.max(0.0) as usize) / self.bin_s).min(self.bins.len() - 1);
        self.bins[i] += 1.0;
        self.total += 1.0;
    }

    fn decay(&mut self, factor: f64) {
        if self.total == 0.0 {
            return;
        }
        for b in &mut self.bins {
            *b *= factor;
        }
        self.total *= factor;
    }

    /// Weight of samples below `secs` (a sample counts as lying in the middle of its bin).
    fn below(&self, cumulative: &[f64], secs: f64) -> f64 {
        if secs <= 0.0 {
            return 0.0;
        }
        let x = secs / self.bin_s as f64 - 0.5;
        if x < 0.0 {
            return 0.0;
        }
        let i = x.floor() as usize;
        if i + 1 >= cumulative.len() {
            return self.total;
        }
        let frac = x - i as f64;
        cumulative[i] + frac * self.bins[i + 1]
    }

    fn cumulative(&self) -> Vec<f64> {
        let mut acc = 0.0;
        self.bins
            .iter()
            .map(|b| {
                acc += b;
                acc
            })
            .collect()
    }

    fn mean(&self) -> Option<f64> {
        (self.total > 0.0).then(|| {
            self.bins
                .iter()
                .enumerate()
                .map(|(i, w)| w * (i as f64 + 0.5) * self.bin_s as f64)
                .sum::<f64>()
                / self.total
        })
    }
}

/// What the campaign has learned of its traffic.
#[derive(Clone, Debug)]
pub struct TrafficModel {
    /// Ring time of calls answered by a person.
    answered: Decayed,
    /// Ring time of calls that ended without an answer (busy, failed, no answer).
    unanswered: Decayed,
    /// Talk time of bridged calls.
    talk: Decayed,
    /// Decayed sum and weight of wrap-up times.
    wrap_sum: f64,
    wrap_weight: f64,
    /// The wrap-up assumed before any is seen (the pool's `wrap_up_s`).
    wrap_default: f64,
    last_decay: Option<i64>,
}

/// The model as the pacer reads it at one moment (cumulative tables built once per tick).
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Probability that a call placed now is answered by a person.
    pub answer_probability: f64,
    answered_cum: Vec<f64>,
    unanswered_cum: Vec<f64>,
    answered: Decayed,
    unanswered: Decayed,
    talk_cum: Vec<f64>,
    talk: Decayed,
    /// Expected wrap-up, seconds.
    pub wrap_up_s: f64,
}

impl Default for TrafficModel {
    fn default() -> Self {
        TrafficModel::new(0.0)
    }
}

impl TrafficModel {
    /// A model that knows nothing yet; `wrap_up_s` is assumed until wrap-ups are seen.
    pub fn new(wrap_up_s: f64) -> TrafficModel {
        TrafficModel {
            answered: Decayed::new(MAX_RING_S, RING_BIN_S),
            unanswered: Decayed::new(MAX_RING_S, RING_BIN_S),
            talk: Decayed::new(MAX_TALK_S, TALK_BIN_S),
            wrap_sum: 0.0,
            wrap_weight: 0.0,
            wrap_default: wrap_up_s,
            last_decay: None,
        }
    }

    /// Ages every estimate to `now` (Unix seconds).
    pub fn decay_to(&mut self, now: i64) {
        let last = *self.last_decay.get_or_insert(now);
        if now <= last {
            return;
        }
        let factor = 0.5f64.powf((now - last) as f64 / HALF_LIFE_S);
        self.answered.decay(factor);
        self.unanswered.decay(factor);
        self.talk.decay(factor);
        self.wrap_sum *= factor;
        self.wrap_weight *= factor;
        self.last_decay = Some(now);
    }

    /// When the estimates were last aged (Unix seconds).
    pub fn last_decay(&self) -> Option<i64> {
        self.last_decay
    }

    /// A person answered after ringing `ring_s`.
    pub fn answered(&mut self, ring_s: f64) {
        self.answered.add(ring_s);
    }

    /// A call ended unanswered after `ring_s`.
    pub fn unanswered(&mut self, ring_s: f64) {
        self.unanswered.add(ring_s);
    }

    /// A bridged call's talk lasted `talk_s`.
    pub fn talked(&mut self, talk_s: f64) {
        self.talk.add(talk_s);
    }

    /// An agent was ready again `wrap_s` after its call ended.
    pub fn wrapped_up(&mut self, wrap_s: f64) {
        self.wrap_sum += wrap_s;
        self.wrap_weight += 1.0;
    }

    /// The pool's configured wrap-up, assumed until wrap-ups are seen.
    pub fn set_default_wrap_up(&mut self, wrap_up_s: f64) {
        self.wrap_default = wrap_up_s;
    }

    /// Has it seen enough calls to be trusted?
    pub fn trusted(&self) -> bool {
        self.answered.total + self.unanswered.total >= MIN_OUTCOMES
            && self.answered.total > 0.0
            && self.talk.total >= MIN_TALKS
    }

    /// The tables the pacer reads this tick.
    pub fn snapshot(&self) -> Snapshot {
        let outcomes = self.answered.total + self.unanswered.total;
        Snapshot {
            answer_probability: if outcomes > 0.0 {
                self.answered.total / outcomes
            } else {
                0.0
            },
            answered_cum: self.answered.cumulative(),
            unanswered_cum: self.unanswered.cumulative(),
            answered: self.answered.clone(),
            unanswered: self.unanswered.clone(),
            talk_cum: self.talk.cumulative(),
            talk: self.talk.clone(),
            wrap_up_s: if self.wrap_weight >= 1.0 {
                self.wrap_sum / self.wrap_weight
            } else {
                self.wrap_default
            },
        }
    }

    /// Mean talk time seen, seconds.
    pub fn mean_talk_s(&self) -> Option<f64> {
        self.talk.mean()
    }
}

impl Snapshot {
    /// Probability that a line ringing for `age_s` is answered by a person within `within_s`
    /// more seconds (ringing lines that end unanswered leave the population first, which is
    /// why the survivors' chance is the answers still to come over the calls still ringing).
    pub fn answer_within(&self, age_s: f64, within_s: f64) -> f64 {
        let total = self.answered.total + self.unanswered.total;
        if total <= 0.0 {
            return 0.0;
        }
        let gone = self.answered.below(&self.answered_cum, age_s)
            + self.unanswered.below(&self.unanswered_cum, age_s);
        let alive = total - gone;
        if alive <= 1e-9 {
            return 0.0;
        }
        let to_come = self.answered.below(&self.answered_cum, age_s + within_s)
            - self.answered.below(&self.answered_cum, age_s);
        (to_come / alive).clamp(0.0, 1.0)
    }

    /// Probability that an agent who has talked `talk_s` is free (talk and wrap-up over)
    /// within `within_s` seconds.
    pub fn free_within(&self, talk_s: f64, within_s: f64) -> f64 {
        let left = within_s - self.wrap_up_s;
        if left <= 0.0 || self.talk.total <= 0.0 {
            return 0.0;
        }
        let ended = self.talk.below(&self.talk_cum, talk_s);
        let alive = self.talk.total - ended;
        if alive <= 1e-9 {
            // Talking longer than any call seen: it may end any moment, or go on; assume
            // the conservative answer (not free soon).
            return 0.0;
        }
        let ending = self.talk.below(&self.talk_cum, talk_s + left) - ended;
        (ending / alive).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_probability_is_answers_over_outcomes_and_decays_toward_new_traffic() {
        let mut m = TrafficModel::new(10.0);
        m.decay_to(0);
        for i in 0..100 {
            if i % 4 == 0 {
                m.answered(10.0);
            } else {
                m.unanswered(25.0);
            }
        }
        assert!((m.snapshot().answer_probability - 0.25).abs() < 1e-9);
        // Ten minutes of calls answered one in eight.
        for t in 1..=600 {
            m.decay_to(t);
            if t % 8 == 0 {
                m.answered(10.0);
            } else {
                m.unanswered(25.0);
            }
        }
        let p = m.snapshot().answer_probability;
        assert!((p - 0.125).abs() < 0.03, "p = {p}");
    }

    #[test]
    fn a_line_past_every_answer_time_will_not_be_answered() {
        let mut m = TrafficModel::new(10.0);
        for _ in 0..50 {
            m.answered(8.0);
            m.unanswered(25.0);
        }
        let s = m.snapshot();
        assert!((s.answer_within(0.0, 30.0) - 0.5).abs() < 0.02);
        assert!(s.answer_within(12.0, 30.0) < 1e-9);
        assert!(s.answer_within(5.0, 1.0) < 1e-9);
    }

    #[test]
    fn agent_is_free_after_talk_and_wrap_up() {
        let mut m = TrafficModel::new(10.0);
        for _ in 0..20 {
            m.talked(60.0);
        }
        let s = m.snapshot();
        assert_eq!(s.free_within(0.0, 65.0), 0.0, "wrap-up not over");
        assert!(s.free_within(0.0, 75.0) > 0.99);
        assert!(s.free_within(50.0, 25.0) > 0.99);
        assert_eq!(s.free_within(50.0, 5.0), 0.0);
    }
}
