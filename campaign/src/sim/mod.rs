//! `dialer campaign simulate`: a campaign run in virtual time against a seeded statistical
//! model of customers and agents, once per pacing mode, on the same traffic.
//!
//! The campaign side is the real [`Engine`], driven through the same entry points the
//! runtime's campaign thread uses (pool agents, `tick` at `poll_timeout`, call events, and
//! the orders carried out in sequence), so the decisions simulated are the ones a live
//! campaign makes. The call engine is *not* the dialer's B2BUA: it is a model of what the
//! B2BUA's pool does for a campaign (an answered customer goes to the longest-idle ready
//! agent; with none ready it waits up to `abandon_after_ms`, taking the first agent to
//! become ready, else it is abandoned with the message), kept small so that 8 hours of 100
//! agents run in seconds. Calling hours, retries and DNC lists are not simulated: every
//! claim gets fresh leads, and the run's day is always open.
//!
//! Customer `k` (the k-th call placed) has the same fate in every mode, drawn from the
//! seed and `k` alone ([`rng::SplitMix64::for_call`]).

pub mod model;
pub mod rng;
pub mod vicidial;

use crate::definition::{CampaignDef, Pacing, PredictiveDef, WeekHours, Window};
use crate::engine::{Claimed, Engine, Order, PoolAgents};
use crate::LeadGroup;
use chrono::{DateTime, NaiveTime, Utc};
use model::{Fate, Model};
use rng::SplitMix64;
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// The ratio used for the `ratio` run when the campaign file has none.
pub const DEFAULT_RATIO: f64 = 1.5;
/// The legal wait of an answered call for an agent (the 2-second rule, 16 CFR
/// 310.4(b)(4)(i)): a call connected later counts as abandoned.
pub const LEGAL_WAIT_MS: i64 = 2000;
/// The wait the progressive, ratio and predictive runs give an answered call
/// (`abandon_after_ms`, at most 2000 for predictive pacing).
pub const ABANDON_AFTER_MS: i64 = 2000;
/// Where every run's virtual day starts: 2026-06-01 00:00 UTC.
pub const EPOCH_S: i64 = 1_780_272_000;
/// Width of the windows `max_window_abandon_rate` slides, seconds.
pub const WINDOW_S: i64 = 3600;

/// The pacing of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One line per ready agent.
    Progressive,
    /// The campaign's `lines_per_agent` (or [`DEFAULT_RATIO`]).
    Ratio,
    /// The VICIdial-style adaptive dial level ([`vicidial`]).
    VicidialAdaptive,
    /// The campaign's predictive pacing (its settings, or the defaults).
    Predictive,
}

impl Mode {
    /// Every mode, in report order.
    pub const ALL: [Mode; 4] = [
        Mode::Progressive,
        Mode::Ratio,
        Mode::VicidialAdaptive,
        Mode::Predictive,
    ];
}

/// One run's settings.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The pacing.
    pub mode: Mode,
    /// Agents logged in all the run.
    pub agents: u32,
    /// Virtual hours.
    pub hours: f64,
    /// The traffic.
    pub seed: u64,
    /// From each time (seconds into the run), the share of live answers becomes this
    /// (percent): a change of the traffic the engine must follow.
    pub live_pct_changes: Vec<(i64, f64)>,
    /// Record the engine's inputs and orders ([`RunReport::trace`]).
    pub trace: bool,
}

/// What one run measured (the `runs` entries of `--json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    /// The pacing.
    pub pacing: Mode,
    /// Agents.
    pub agents: u32,
    /// Hours (a whole number is written without a fraction).
    #[serde(serialize_with = "whole_or_fraction")]
    pub hours: f64,
    /// Talk and wrap-up over logged-in time.
    pub occupancy: f64,
    /// Talk minutes per agent-hour.
    pub talk_minutes_per_agent_hour: f64,
    /// Calls placed per hour.
    pub calls_per_hour: f64,
    /// Calls answered by a person.
    pub live_answers: u64,
    /// Of those, not connected to an agent within 2 s.
    pub abandoned: u64,
    /// Abandoned over live answers.
    pub abandon_rate: f64,
    /// The largest abandon rate over 1 h windows (by answer time) inside the run that start
    /// after its first hour.
    pub max_window_abandon_rate: f64,
    /// Lines in use per agent, averaged over the run.
    pub lines_per_agent: f64,
    /// The run in spans of [`SPAN_S`], in order (the last may be shorter).
    #[serde(skip)]
    pub spans: Vec<Span>,
    /// With [`RunConfig::trace`]: what the engine was given and what it ordered.
    #[serde(skip)]
    pub trace: Vec<Traced>,
}

/// Width of a [`Span`].
pub const SPAN_S: i64 = 600;

/// One span of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    /// Talk and wrap-up over logged-in time in the span.
    pub occupancy: f64,
    /// Live answers in the span (by answer time).
    pub live_answers: u64,
    /// Of those, abandoned.
    pub abandoned: u64,
}

/// One input to the engine, or one order from it, in the sequence they happened.
#[derive(Clone, Debug, PartialEq)]
pub enum Traced {
    /// `pool_agents`.
    Agents(PoolAgents),
    /// `set_dial_level`.
    DialLevel(f64),
    /// `tick(now)` (milliseconds into the run).
    Tick(i64),
    /// `groups`.
    Groups(i64),
    /// `claimed`: time, leads, asked.
    Claimed(i64, Vec<Claimed>, u32),
    /// `placed`: attempt, call.
    Placed(i64, String),
    /// `remaining`.
    Remaining,
    /// `call_answered`.
    Answered(i64, String),
    /// `call_bridged`.
    Bridged(i64, String, String),
    /// `call_ended`: time, call, outcome, answered, agent.
    Ended(i64, String, &'static str, bool, Option<String>),
    /// An order.
    Order(Order),
}

/// What happens next in the virtual world.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Tick,
    Answer(u64),
    End(u64),
    WaitOver(u64),
    WrapUpOver(usize),
}

#[derive(Clone, Debug)]
enum CallState {
    Ringing,
    Waiting { answered_ms: i64 },
    Talking { agent: usize, since_ms: i64 },
}

#[derive(Clone, Debug)]
struct Call {
    id: String,
    fate: Fate,
    state: CallState,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Agent {
    Ready { since_ms: i64 },
    Talking,
    WrapUp,
}

/// The campaign definition a mode runs: the file's, its pacing replaced, open all day.
pub fn definition_for(file: &CampaignDef, mode: Mode) -> CampaignDef {
    let mut def = file.clone();
    def.pacing = match (mode, file.pacing.clone()) {
        (Mode::Progressive | Mode::VicidialAdaptive, _) => Pacing::Progressive,
        (Mode::Ratio, Pacing::Ratio { lines_per_agent }) => Pacing::Ratio { lines_per_agent },
        (Mode::Ratio, _) => Pacing::Ratio {
            lines_per_agent: DEFAULT_RATIO,
        },
        (Mode::Predictive, Pacing::Predictive(p)) => Pacing::Predictive(p),
        (Mode::Predictive, _) => Pacing::Predictive(PredictiveDef::default()),
    };
    let all_day = Window {
        start: NaiveTime::MIN,
        end: NaiveTime::from_hms_opt(23, 59, 0).expect("a time of day"),
    };
    def.hours = WeekHours([Some(all_day); 7]);
    def.holidays.clear();
    def.regions.clear();
    def.time_zone = chrono_tz::UTC;
    def
}

/// One simulated run.
struct World {
    model: Model,
    config: RunConfig,
    def: CampaignDef,
    engine: Engine,
    now_ms: i64,
    end_ms: i64,
    seq: u64,
    queue: BinaryHeap<Reverse<(i64, u64, Event)>>,
    calls: BTreeMap<u64, Call>,
    call_ids: BTreeMap<String, u64>,
    agents: Vec<Agent>,
    names: Vec<String>,
    waiting: VecDeque<u64>,
    next_call: u64,
    next_lead: i64,
    baseline: Option<vicidial::DialLevel>,
    stats: Stats,
    trace: Vec<Traced>,
}

#[derive(Clone, Debug, Default)]
struct Stats {
    placed: u64,
    /// (answer time ms, abandoned by the 2 s rule).
    answers: Vec<(i64, bool)>,
    busy_ms: i64,
    talk_ms: i64,
    line_samples: u64,
    line_sum: u64,
    /// (bridged, ended) of every bridged call, ms.
    bridges: Vec<(i64, i64)>,
}

/// Runs one mode on `file`'s campaign against `model`.
pub fn run(file: &CampaignDef, model: &Model, config: RunConfig) -> RunReport {
    let def = definition_for(file, config.mode);
    let mut engine = Engine::new();
    engine.add_campaign(def.clone(), crate::engine::CampaignState::Created);
    engine.start(&def.name).expect("a created campaign starts");
    let n = config.agents as usize;
    let baseline = (config.mode == Mode::VicidialAdaptive).then(vicidial::DialLevel::new);
    let mut w = World {
        model: model.clone(),
        end_ms: (config.hours * 3_600_000.0) as i64,
        config,
        def,
        engine,
        now_ms: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        calls: BTreeMap::new(),
        call_ids: BTreeMap::new(),
        agents: vec![Agent::Ready { since_ms: 0 }; n],
        names: (0..n).map(|i| format!("{}", 1000 + i)).collect(),
        waiting: VecDeque::new(),
        next_call: 0,
        next_lead: 0,
        baseline,
        stats: Stats::default(),
        trace: Vec::new(),
    };
    w.carry_out();
    w.schedule(0, Event::Tick);
    while let Some(Reverse((at, _, event))) = w.queue.pop() {
        if at >= w.end_ms {
            break;
        }
        w.now_ms = at;
        w.handle(event);
        w.carry_out();
    }
    w.report()
}

/// Every mode on the same traffic, in [`Mode::ALL`] order.
pub fn run_all(
    file: &CampaignDef,
    model: &Model,
    agents: u32,
    hours: f64,
    seed: u64,
) -> Vec<RunReport> {
    Mode::ALL
        .iter()
        .map(|&mode| {
            run(
                file,
                model,
                RunConfig {
                    mode,
                    agents,
                    hours,
                    seed,
                    live_pct_changes: Vec::new(),
                    trace: false,
                },
            )
        })
        .collect()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(EPOCH_S * 1000 + ms).expect("inside chrono's range")
}

impl World {
    fn now(&self) -> DateTime<Utc> {
        time(self.now_ms)
    }

    fn schedule(&mut self, at_ms: i64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at_ms, self.seq, event)));
    }

    fn record(&mut self, t: Traced) {
        if self.config.trace {
            self.trace.push(t);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick => self.tick(),
            Event::Answer(k) => self.answer(k),
            Event::End(k) => self.end(k),
            Event::WaitOver(k) => self.wait_over(k),
            Event::WrapUpOver(a) => self.wrap_up_over(a),
        }
    }

    fn pool_agents(&self) -> PoolAgents {
        PoolAgents {
            logged_in: self.agents.len() as u32,
            ready: self
                .agents
                .iter()
                .zip(&self.names)
                .filter(|(a, _)| matches!(a, Agent::Ready { .. }))
                .map(|(_, n)| n.clone())
                .collect(),
            wrap_up_s: self.model.wrap_up_s.round() as u64,
        }
    }

    fn tick(&mut self) {
        let agents = self.pool_agents();
        let ready = agents.ready.len() as u32;
        self.record(Traced::Agents(agents.clone()));
        self.engine.pool_agents(&self.def.pool, agents);
        if let Some(b) = &mut self.baseline {
            let waiting = self.waiting.len() as u32;
            let level = b.sample(self.now_ms, ready, waiting, self.agents.len() as u32);
            self.record(Traced::DialLevel(level));
            self.engine.set_dial_level(&self.def.name, Some(level));
        }
        if self.engine.poll_timeout().is_some_and(|t| t <= self.now()) {
            self.record(Traced::Tick(self.now_ms));
            self.engine.tick(self.now());
        }
        self.stats.line_samples += 1;
        self.stats.line_sum += self.calls.len() as u64;
        self.schedule(self.now_ms + 1000, Event::Tick);
    }

    fn carry_out(&mut self) {
        while let Some(order) = self.engine.poll_order() {
            self.record(Traced::Order(order.clone()));
            self.order(order);
        }
    }

    fn order(&mut self, order: Order) {
        let now = self.now();
        match order {
            Order::LoadGroups { campaign } => {
                self.record(Traced::Groups(self.now_ms));
                let group = LeadGroup {
                    zones: "UTC".to_string(),
                    region: None,
                };
                self.engine.groups(now, &campaign, vec![group]);
            }
            Order::Claim {
                campaign, count, ..
            } => {
                let leads: Vec<Claimed> = (0..count)
                    .map(|_| {
                        self.next_lead += 1;
                        Claimed {
                            lead: self.next_lead,
                            attempt: self.next_lead,
                            attempt_no: 1,
                            number: format!("+1555{:07}", self.next_lead),
                            fields: Vec::new(),
                            last_outcome: None,
                            callback_agent: None,
                            dnc: None,
                        }
                    })
                    .collect();
                self.record(Traced::Claimed(self.now_ms, leads.clone(), count));
                self.engine.claimed(now, &campaign, leads, count);
            }
            Order::Originate {
                campaign, attempt, ..
            } => self.originate(&campaign, attempt),
            Order::CountRemaining { campaign } => {
                self.record(Traced::Remaining);
                self.engine.remaining(&campaign, u64::MAX);
            }
            Order::FinishAttempt { .. }
            | Order::Disposition { .. }
            | Order::SaveState { .. }
            | Order::Event(_) => {}
        }
    }

    fn live_pct(&self) -> f64 {
        self.config
            .live_pct_changes
            .iter()
            .rev()
            .find(|(at_s, _)| self.now_ms >= at_s * 1000)
            .map_or(self.model.live_answer_pct, |(_, pct)| *pct)
    }

    fn originate(&mut self, campaign: &str, attempt: i64) {
        let k = self.next_call;
        self.next_call += 1;
        self.stats.placed += 1;
        let mut rng = SplitMix64::for_call(self.config.seed, k);
        let fate = self.model.fate(&mut rng, self.live_pct());
        let id = format!("call-{k}");
        let ring_ms = (f64::from(self.def.ring_timeout_s).min(self.model.no_answer_timeout_s)
            * 1000.0) as i64;
        let ms = |s: f64| (s * 1000.0).round() as i64;
        match fate {
            Fate::Live { after_s, .. } if ms(after_s) < ring_ms => {
                self.schedule(self.now_ms + ms(after_s), Event::Answer(k))
            }
            Fate::Busy { after_s } | Fate::Failed { after_s } => {
                self.schedule(self.now_ms + ms(after_s), Event::End(k))
            }
            _ => self.schedule(self.now_ms + ring_ms, Event::End(k)),
        }
        self.calls.insert(
            k,
            Call {
                id: id.clone(),
                fate,
                state: CallState::Ringing,
            },
        );
        self.call_ids.insert(id.clone(), k);
        self.record(Traced::Placed(attempt, id.clone()));
        self.engine.placed(campaign, attempt, &id);
    }

    fn answer(&mut self, k: u64) {
        let now = self.now();
        let id = self.calls[&k].id.clone();
        self.record(Traced::Answered(self.now_ms, id.clone()));
        self.engine.call_answered(now, &id);
        let longest_idle = self
            .agents
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a {
                Agent::Ready { since_ms } => Some((*since_ms, i)),
                _ => None,
            })
            .min()
            .map(|(_, i)| i);
        match longest_idle {
            Some(agent) => self.bridge(k, agent, self.now_ms),
            None => {
                let wait = self
                    .baseline
                    .as_ref()
                    .map_or(ABANDON_AFTER_MS, |b| b.drop_timeout_ms());
                if let Some(c) = self.calls.get_mut(&k) {
                    c.state = CallState::Waiting {
                        answered_ms: self.now_ms,
                    };
                }
                self.waiting.push_back(k);
                self.schedule(self.now_ms + wait, Event::WaitOver(k));
            }
        }
    }

    fn bridge(&mut self, k: u64, agent: usize, answered_ms: i64) {
        let late = self.now_ms - answered_ms > LEGAL_WAIT_MS;
        self.stats.answers.push((answered_ms, late));
        self.agents[agent] = Agent::Talking;
        let Some(c) = self.calls.get_mut(&k) else {
            return;
        };
        c.state = CallState::Talking {
            agent,
            since_ms: self.now_ms,
        };
        let talk_s = match c.fate {
            Fate::Live { talk_s, .. } => talk_s,
            _ => 0.0,
        };
        let id = c.id.clone();
        let talk_ms = (talk_s * 1000.0).round().max(1000.0) as i64;
        self.schedule(self.now_ms + talk_ms, Event::End(k));
        let name = self.names[agent].clone();
        self.record(Traced::Bridged(self.now_ms, id.clone(), name.clone()));
        self.engine.call_bridged(self.now(), &id, &name);
        if let Some(b) = &mut self.baseline {
            b.answered(self.now_ms - answered_ms);
        }
    }

    fn end(&mut self, k: u64) {
        let Some(call) = self.calls.remove(&k) else {
            return;
        };
        self.call_ids.remove(&call.id);
        let (outcome, answered, agent) = match (&call.state, call.fate) {
            (CallState::Talking { agent, since_ms }, _) => {
                self.stats.bridges.push((*since_ms, self.now_ms));
                self.agents[*agent] = Agent::WrapUp;
                let wrap_ms = (self.model.wrap_up_s * 1000.0).round() as i64;
                self.schedule(self.now_ms + wrap_ms, Event::WrapUpOver(*agent));
                ("bridged", true, Some(self.names[*agent].clone()))
            }
            (_, Fate::Busy { .. }) => ("busy", false, None),
            (_, Fate::Failed { .. }) => ("failed", false, None),
            _ => ("no_answer", false, None),
        };
        self.ended(call.id, outcome, answered, agent);
    }

    fn ended(&mut self, id: String, outcome: &'static str, answered: bool, agent: Option<String>) {
        self.record(Traced::Ended(
            self.now_ms,
            id.clone(),
            outcome,
            answered,
            agent.clone(),
        ));
        self.engine
            .call_ended(self.now(), &id, outcome, answered, agent.as_deref());
    }

    fn wait_over(&mut self, k: u64) {
        let Some(CallState::Waiting { answered_ms }) = self.calls.get(&k).map(|c| c.state.clone())
        else {
            return;
        };
        self.waiting.retain(|w| *w != k);
        self.stats.answers.push((answered_ms, true));
        if let Some(b) = &mut self.baseline {
            b.dropped();
        }
        let call = self.calls.remove(&k).expect("a waiting call");
        self.call_ids.remove(&call.id);
        self.ended(call.id, "abandoned_no_agent", true, None);
    }

    fn wrap_up_over(&mut self, agent: usize) {
        self.agents[agent] = Agent::Ready {
            since_ms: self.now_ms,
        };
        if let Some(k) = self.waiting.pop_front() {
            if let Some(CallState::Waiting { answered_ms }) =
                self.calls.get(&k).map(|c| c.state.clone())
            {
                self.bridge(k, agent, answered_ms);
            }
        }
    }

    fn report(mut self) -> RunReport {
        self.account_busy_time();
        let hours = self.end_ms as f64 / 3_600_000.0;
        let agents = self.agents.len() as f64;
        let logged_in_ms = agents * self.end_ms as f64;
        let live = self.stats.answers.len() as u64;
        let abandoned = self.stats.answers.iter().filter(|(_, a)| *a).count() as u64;
        RunReport {
            pacing: self.config.mode,
            agents: self.config.agents,
            hours: self.config.hours,
            occupancy: self.stats.busy_ms as f64 / logged_in_ms,
            talk_minutes_per_agent_hour: self.stats.talk_ms as f64 / 60_000.0 / (agents * hours),
            calls_per_hour: self.stats.placed as f64 / hours,
            live_answers: live,
            abandoned,
            abandon_rate: rate(abandoned, live),
            max_window_abandon_rate: max_window_rate(&self.stats.answers, self.end_ms),
            lines_per_agent: self.stats.line_sum as f64
                / self.stats.line_samples.max(1) as f64
                / agents,
            spans: self.spans(),
            trace: std::mem::take(&mut self.trace),
        }
    }

    /// Talk and wrap-up time inside the run: each bridged call's talk, and the wrap-up
    /// after it, both cut at the run's end.
    fn account_busy_time(&mut self) {
        let wrap_ms = (self.model.wrap_up_s * 1000.0).round() as i64;
        let end = self.end_ms;
        let up: Vec<(i64, i64)> = self
            .calls
            .values()
            .filter_map(|c| match c.state {
                CallState::Talking { since_ms, .. } => Some((since_ms, end)),
                _ => None,
            })
            .collect();
        self.stats.bridges.extend(up);
        let mut talk = 0;
        let mut busy = 0;
        for &(from, to) in &self.stats.bridges {
            let to = to.min(end);
            talk += to - from;
            busy += (to + wrap_ms).min(end) - from;
        }
        self.stats.talk_ms = talk;
        self.stats.busy_ms = busy;
    }

    /// The run cut in spans of [`SPAN_S`].
    fn spans(&self) -> Vec<Span> {
        let span_ms = SPAN_S * 1000;
        let n = ((self.end_ms + span_ms - 1) / span_ms).max(1) as usize;
        let mut busy = vec![0i64; n];
        let mut spans = vec![
            Span {
                occupancy: 0.0,
                live_answers: 0,
                abandoned: 0,
            };
            n
        ];
        let wrap_ms = (self.model.wrap_up_s * 1000.0).round() as i64;
        for &(from, to) in &self.stats.bridges {
            let to = (to.min(self.end_ms) + wrap_ms).min(self.end_ms);
            for (i, b) in busy.iter_mut().enumerate() {
                let (s, e) = (i as i64 * span_ms, (i as i64 + 1) * span_ms);
                *b += (to.min(e) - from.max(s)).max(0);
            }
        }
        for &(at, abandoned) in &self.stats.answers {
            let i = ((at / span_ms) as usize).min(n - 1);
            spans[i].live_answers += 1;
            spans[i].abandoned += u64::from(abandoned);
        }
        for (i, s) in spans.iter_mut().enumerate() {
            let width = (self.end_ms - i as i64 * span_ms).min(span_ms) as f64;
            s.occupancy = busy[i] as f64 / (width * self.agents.len() as f64);
        }
        spans
    }
}

fn rate(abandoned: u64, live: u64) -> f64 {
    if live == 0 {
        0.0
    } else {
        abandoned as f64 / live as f64
    }
}

/// The largest abandon rate over windows of [`WINDOW_S`] lying inside `[WINDOW_S, end)`,
/// by answer time: windows that start at an answer, and windows that end at one (between
/// those the counts do not change).
pub fn max_window_rate(answers: &[(i64, bool)], end_ms: i64) -> f64 {
    let mut sorted: Vec<(i64, bool)> = answers.to_vec();
    sorted.sort_unstable();
    let w = WINDOW_S * 1000;
    let times: Vec<i64> = sorted.iter().map(|a| a.0).collect();
    let mut abandoned_before = Vec::with_capacity(sorted.len() + 1);
    abandoned_before.push(0u64);
    for a in &sorted {
        abandoned_before.push(abandoned_before.last().copied().unwrap_or(0) + u64::from(a.1));
    }
    let count = |from: i64, to: i64| {
        let i = times.partition_point(|t| *t < from);
        let j = times.partition_point(|t| *t <= to);
        ((j - i) as u64, abandoned_before[j] - abandoned_before[i])
    };
    let mut best: f64 = 0.0;
    for &t in &times {
        for (from, to) in [(t, t + w), (t - w, t)] {
            if from < w || to > end_ms {
                continue;
            }
            let (live, abandoned) = count(from, to);
            best = best.max(rate(abandoned, live));
        }
    }
    best
}

/// Feeds a run's recorded inputs to a fresh [`Engine`] for `def` and returns the orders it
/// gives: the same as the run's when the simulator's decisions are the engine's alone.
pub fn replay(def: &CampaignDef, trace: &[Traced]) -> Vec<Order> {
    let mut engine = Engine::new();
    engine.add_campaign(def.clone(), crate::engine::CampaignState::Created);
    engine.start(&def.name).expect("a created campaign starts");
    let mut orders = Vec::new();
    let drain = |engine: &mut Engine, orders: &mut Vec<Order>| {
        while let Some(o) = engine.poll_order() {
            orders.push(o);
        }
    };
    drain(&mut engine, &mut orders);
    let group = || LeadGroup {
        zones: "UTC".to_string(),
        region: None,
    };
    for t in trace {
        match t {
            Traced::Agents(a) => engine.pool_agents(&def.pool, a.clone()),
            Traced::DialLevel(level) => engine.set_dial_level(&def.name, Some(*level)),
            Traced::Tick(ms) => engine.tick(time(*ms)),
            Traced::Groups(ms) => engine.groups(time(*ms), &def.name, vec![group()]),
            Traced::Claimed(ms, leads, asked) => {
                engine.claimed(time(*ms), &def.name, leads.clone(), *asked)
            }
            Traced::Placed(attempt, call) => engine.placed(&def.name, *attempt, call),
            Traced::Remaining => engine.remaining(&def.name, u64::MAX),
            Traced::Answered(ms, call) => engine.call_answered(time(*ms), call),
            Traced::Bridged(ms, call, agent) => engine.call_bridged(time(*ms), call, agent),
            Traced::Ended(ms, call, outcome, answered, agent) => {
                engine.call_ended(time(*ms), call, outcome, *answered, agent.as_deref())
            }
            Traced::Order(_) => {}
        }
        drain(&mut engine, &mut orders);
    }
    orders
}

fn whole_or_fraction<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// The `--json` document: `{"model": {...}, "runs": [...]}`, keys in the order of the
/// structs (a JSON map would sort them).
pub fn report_json(model: &Model, runs: &[RunReport]) -> String {
    #[derive(Serialize)]
    struct Document<'a> {
        model: &'a Model,
        runs: &'a [RunReport],
    }
    serde_json::to_string(&Document { model, runs }).expect("plain data serialises")
}

/// The human table of `dialer campaign simulate`.
pub fn report_table(runs: &[RunReport]) -> String {
    let mut out = format!(
        "{:<18} {:>6} {:>5} {:>9} {:>9} {:>10} {:>6} {:>6} {:>8} {:>10} {:>9}\n",
        "PACING",
        "AGENTS",
        "HOURS",
        "OCCUPANCY",
        "TALK/A-H",
        "CALLS/H",
        "LIVE",
        "ABAND",
        "ABAND%",
        "WORST-1H%",
        "LINES/AG"
    );
    for r in runs {
        let pacing = serde_json::to_value(r.pacing)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<18} {:>6} {:>5} {:>8.1}% {:>9.1} {:>10.0} {:>6} {:>6} {:>7.2}% {:>9.2}% {:>9.2}\n",
            pacing,
            r.agents,
            r.hours,
            r.occupancy * 100.0,
            r.talk_minutes_per_agent_hour,
            r.calls_per_hour,
            r.live_answers,
            r.abandoned,
            r.abandon_rate * 100.0,
            r.max_window_abandon_rate * 100.0,
            r.lines_per_agent
        ));
    }
    out
}
