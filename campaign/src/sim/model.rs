//! The simulator's model of customers and agents, read from TOML (the shipped default is
//! `campaign/data/sim-model.toml`), every key checked like a campaign definition.

use super::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use trunk_profiles::{Diagnostic, Diagnostics};

/// The shipped default model.
pub const DEFAULT_MODEL: &str = include_str!("../../data/sim-model.toml");

/// Customers and agents as the simulator draws them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Model {
    /// Share of placed calls answered by a person, percent.
    pub live_answer_pct: f64,
    /// Ring time before a person answers, uniform between the two, seconds.
    pub answer_after_s: [f64; 2],
    /// The network gives an unanswered call up after this, seconds.
    pub no_answer_timeout_s: f64,
    /// Mean talk time, seconds (lognormal).
    pub talk_mean_s: f64,
    /// Sigma of the log of the talk time.
    pub talk_sigma: f64,
    /// Wrap-up the simulated agents take after each call, seconds.
    pub wrap_up_s: f64,
    /// Share of calls busy, percent.
    pub busy_pct: f64,
    /// When the busy answer comes, seconds.
    pub busy_after_s: [f64; 2],
    /// Share of calls failing, percent.
    pub failed_pct: f64,
    /// When the failure comes, seconds.
    pub failed_after_s: [f64; 2],
}

/// What becomes of one call, drawn from the model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fate {
    /// A person answers after `after_s` and talks `talk_s` once given an agent.
    Live {
        /// Ring time.
        after_s: f64,
        /// Talk time.
        talk_s: f64,
    },
    /// 486 after `after_s`.
    Busy {
        /// When.
        after_s: f64,
    },
    /// A failure after `after_s`.
    Failed {
        /// When.
        after_s: f64,
    },
    /// Rings until a timeout.
    NoAnswer,
}

impl Model {
    /// The shipped default.
    pub fn default_model() -> Model {
        Model::parse("sim-model.toml", DEFAULT_MODEL).expect("the shipped model is valid")
    }

    /// Parses and checks a model; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Model, Diagnostics> {
        let raw: RawModel = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let key = trunk_profiles::toml_key_path(text, offset);
            let mut message = e.message().trim().to_string();
            if let Some(rest) = message.strip_prefix("unknown field") {
                message = format!("unknown key{rest}");
            }
            one(Diagnostic::at(file, text, offset, key, message))
        })?;
        let mut errors = Vec::new();
        let mut check = |v: &Spanned<f64>, key: &str, lo: f64, hi: f64| {
            let n = *v.get_ref();
            if !n.is_finite() || n < lo || n > hi {
                let msg = format!("{n} is out of range, expected {lo} to {hi}");
                errors.push(Diagnostic::at(file, text, v.span().start, key, msg));
            }
            n
        };
        let live = check(&raw.live_answer_pct, "live_answer_pct", 0.0, 100.0);
        let busy = check(&raw.busy_pct, "busy_pct", 0.0, 100.0);
        let failed = check(&raw.failed_pct, "failed_pct", 0.0, 100.0);
        let model = Model {
            live_answer_pct: live,
            answer_after_s: range(&raw.answer_after_s, "answer_after_s", &mut check),
            no_answer_timeout_s: check(&raw.no_answer_timeout_s, "no_answer_timeout_s", 1.0, 600.0),
            talk_mean_s: check(&raw.talk_mean_s, "talk_mean_s", 1.0, 36_000.0),
            talk_sigma: check(&raw.talk_sigma, "talk_sigma", 0.0, 3.0),
            wrap_up_s: check(&raw.wrap_up_s, "wrap_up_s", 0.0, 3600.0),
            busy_pct: busy,
            busy_after_s: range(&raw.busy_after_s, "busy_after_s", &mut check),
            failed_pct: failed,
            failed_after_s: range(&raw.failed_after_s, "failed_after_s", &mut check),
        };
        if live + busy + failed > 100.0 {
            let msg = format!(
                "live_answer_pct + busy_pct + failed_pct = {}, expected at most 100",
                live + busy + failed
            );
            errors.push(Diagnostic::at(
                file,
                text,
                raw.failed_pct.span().start,
                "failed_pct",
                msg,
            ));
        }
        errors.sort_by_key(|d| (d.line, d.column));
        match Diagnostics::from_vec(errors) {
            None => Ok(model),
            Some(d) => Err(d),
        }
    }

    /// The fate of a call drawn from `rng`; `live_pct` replaces the model's answer share
    /// (the simulator changes it during a run).
    pub fn fate(&self, rng: &mut SplitMix64, live_pct: f64) -> Fate {
        let u = rng.unit() * 100.0;
        let after = rng.unit();
        let talk_s = rng.lognormal(self.talk_mean_s, self.talk_sigma);
        let at = |[a, b]: [f64; 2]| a + (b - a) * after;
        if u < live_pct {
            Fate::Live {
                after_s: at(self.answer_after_s),
                talk_s,
            }
        } else if u < live_pct + self.busy_pct {
            Fate::Busy {
                after_s: at(self.busy_after_s),
            }
        } else if u < live_pct + self.busy_pct + self.failed_pct {
            Fate::Failed {
                after_s: at(self.failed_after_s),
            }
        } else {
            Fate::NoAnswer
        }
    }
}

fn one(d: Diagnostic) -> Diagnostics {
    Diagnostics::from_vec(vec![d]).expect("one diagnostic")
}

/// Checks a value against its range (value, key, lowest, highest) and returns it.
type RangeCheck<'a> = dyn FnMut(&Spanned<f64>, &str, f64, f64) -> f64 + 'a;

fn range(v: &Spanned<[Spanned<f64>; 2]>, key: &str, check: &mut RangeCheck<'_>) -> [f64; 2] {
    let [a, b] = v.get_ref();
    let a_v = check(a, &format!("{key}[0]"), 0.0, 600.0);
    let b_v = check(b, &format!("{key}[1]"), a_v.max(0.0), 600.0);
    [a_v, b_v]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    live_answer_pct: Spanned<f64>,
    answer_after_s: Spanned<[Spanned<f64>; 2]>,
    no_answer_timeout_s: Spanned<f64>,
    talk_mean_s: Spanned<f64>,
    talk_sigma: Spanned<f64>,
    wrap_up_s: Spanned<f64>,
    busy_pct: Spanned<f64>,
    busy_after_s: Spanned<[Spanned<f64>; 2]>,
    failed_pct: Spanned<f64>,
    failed_after_s: Spanned<[Spanned<f64>; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_model_is_the_one_the_issue_describes() {
        let m = Model::default_model();
        assert_eq!(m.live_answer_pct, 25.0);
        assert_eq!(m.answer_after_s, [4.0, 20.0]);
        assert_eq!(m.no_answer_timeout_s, 25.0);
        assert_eq!(
            (m.talk_mean_s, m.talk_sigma, m.wrap_up_s),
            (120.0, 0.6, 10.0)
        );
        assert_eq!((m.busy_pct, m.busy_after_s), (5.0, [1.0, 3.0]));
        assert_eq!((m.failed_pct, m.failed_after_s), (5.0, [0.5, 2.0]));
    }

    #[test]
    fn bad_values_and_unknown_keys_are_reported_at_their_place() {
        let text = DEFAULT_MODEL.replace("live_answer_pct = 25.0", "live_answer_pct = 125.0");
        let e = Model::parse("m.toml", &text).unwrap_err().to_string();
        assert!(
            e.starts_with("m.toml:3:19: live_answer_pct: 125 is out of range"),
            "{e}"
        );
        let text = format!("{DEFAULT_MODEL}machine_pct = 5\n");
        let e = Model::parse("m.toml", &text).unwrap_err().to_string();
        assert!(e.contains("machine_pct: unknown key"), "{e}");
        let text = DEFAULT_MODEL.replace("[4.0, 20.0]", "[20.0, 4.0]");
        let e = Model::parse("m.toml", &text).unwrap_err().to_string();
        assert!(
            e.contains("answer_after_s[1]: 4 is out of range, expected 20 to 600"),
            "{e}"
        );
    }

    #[test]
    fn fates_follow_the_shares() {
        let m = Model::default_model();
        let mut live = 0;
        let n = 40_000;
        for k in 0..n {
            if let Fate::Live { after_s, .. } = m.fate(&mut SplitMix64::for_call(3, k), 25.0) {
                assert!((4.0..=20.0).contains(&after_s));
                live += 1;
            }
        }
        let share = f64::from(live) / n as f64;
        assert!((share - 0.25).abs() < 0.01, "{share}");
    }
}
