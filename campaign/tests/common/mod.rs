//! A campaign simulator in virtual time: the [`Engine`] driven like the runtime's campaign
//! thread drives it, against an in-memory store that answers its orders by the `Store`
//! trait's contract and a fake call engine whose call outcomes each test scripts.
//!
//! The store keeps the contract of `store::Store::claim` (due leads of open groups,
//! callbacks first, then retries, then new leads; never a number with an open attempt in
//! any campaign; `max_calls_per_24h` over attempts started in `(now - 86400, now]`; an
//! attempt opened for each) and of `finish_attempt` (the lead moves to `Finish::next`).
//! The call engine and the store both record what a correct engine must never ask for
//! (a number dialled while it is already on a line, an attempt closed while its call is
//! up, an agent reserved who is not ready) in [`Sim::violations`].

use campaign::definition::CampaignDef;
use campaign::engine::{
    CallRequest, CampaignEvent, CampaignState, Claimed, Engine, Finish, Order, PoolAgents,
};
use campaign::{AttemptOutcome, LeadGroup, LeadNext, LeadState, OpenGroup};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The pool every simulated campaign sends its calls to.
pub const POOL: &str = "sales";

/// A campaign definition named `name` for [`POOL`], with `extra` TOML lines.
pub fn def(name: &str, extra: &str) -> CampaignDef {
    let text = format!("name = \"{name}\"\npool = \"{POOL}\"\n{extra}");
    CampaignDef::parse("test.toml", &text).unwrap_or_else(|e| panic!("{e}"))
}

/// `y-m-d h:m:s` local time in `tz`, as UTC (the earliest reading when ambiguous).
pub fn local(tz: Tz, y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> DateTime<Utc> {
    tz.with_ymd_and_hms(y, m, d, h, min, s)
        .earliest()
        .expect("the local time exists")
        .with_timezone(&Utc)
}

/// Unix seconds as a time.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("within chrono's range")
}

/// xorshift64*: a seeded source of outcomes (the crate has no `rand`).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator; `seed` 0 is replaced (xorshift never leaves 0).
    pub fn new(seed: u64) -> XorShift {
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A lead as the store holds it.
#[derive(Clone, Debug)]
pub struct StoreLead {
    pub id: i64,
    pub campaign: String,
    pub number: String,
    pub group: LeadGroup,
    pub state: LeadState,
    /// Unix seconds; 0 for a new lead (due at once).
    pub next_at: i64,
    pub attempts: u32,
    pub last_outcome: Option<AttemptOutcome>,
    pub callback_agent: Option<String>,
}

/// An attempt as the store holds it.
#[derive(Clone, Debug)]
pub struct StoreAttempt {
    pub id: i64,
    pub lead: i64,
    pub campaign: String,
    pub number: String,
    pub attempt_no: u32,
    pub started: i64,
    pub ended: Option<i64>,
    pub finish: Option<Finish>,
    /// Disposition codes set on it, in order.
    pub dispositions: Vec<String>,
}

/// The in-memory store.
#[derive(Debug, Default)]
pub struct FakeStore {
    pub leads: Vec<StoreLead>,
    pub attempts: Vec<StoreAttempt>,
    /// DNC list -> numbers.
    pub dnc: BTreeMap<String, BTreeSet<String>>,
    /// Open attempts per number, over every campaign.
    pub open_per_number: HashMap<String, u32>,
    /// Contract breaches seen (closing a closed attempt ...).
    pub violations: Vec<String>,
}

impl FakeStore {
    /// Adds a new lead; its id.
    pub fn add_lead(&mut self, campaign: &str, number: &str, group: LeadGroup) -> i64 {
        let id = self.leads.len() as i64 + 1;
        self.leads.push(StoreLead {
            id,
            campaign: campaign.to_string(),
            number: number.to_string(),
            group,
            state: LeadState::New,
            next_at: 0,
            attempts: 0,
            last_outcome: None,
            callback_agent: None,
        });
        id
    }

    pub fn lead(&self, id: i64) -> &StoreLead {
        &self.leads[(id - 1) as usize]
    }

    fn lead_mut(&mut self, id: i64) -> &mut StoreLead {
        &mut self.leads[(id - 1) as usize]
    }

    pub fn attempt(&self, id: i64) -> &StoreAttempt {
        &self.attempts[(id - 1) as usize]
    }

    /// `Store::lead_groups`: the distinct groups with a lead that may still be dialled
    /// (new, retry, callback), sorted.
    pub fn lead_groups(&self, campaign: &str) -> Vec<LeadGroup> {
        let groups: BTreeSet<LeadGroup> = self
            .leads
            .iter()
            .filter(|l| l.campaign == campaign)
            .filter(|l| {
                matches!(
                    l.state,
                    LeadState::New | LeadState::Retry | LeadState::Callback
                )
            })
            .map(|l| l.group.clone())
            .collect();
        groups.into_iter().collect()
    }

    /// Attempts started on `number` in `(now - 86400, now]`.
    pub fn attempts_in_24h(&self, number: &str, now: i64) -> u32 {
        self.attempts
            .iter()
            .filter(|a| a.number == number && a.started > now - 86_400 && a.started <= now)
            .count() as u32
    }

    /// `Store::claim`, with the runtime's DNC check of each claimed number against
    /// `dnc_lists` (the campaign's lists).
    pub fn claim(
        &mut self,
        campaign: &str,
        now: i64,
        open: &[OpenGroup],
        count: u32,
        dnc_lists: &[String],
    ) -> Vec<Claimed> {
        let rank = |s: LeadState| match s {
            LeadState::Callback => 0,
            LeadState::Retry => 1,
            _ => 2,
        };
        let mut due: Vec<(u8, i64, i64)> = self
            .leads
            .iter()
            .filter(|l| l.campaign == campaign && l.next_at <= now)
            .filter(|l| {
                matches!(
                    l.state,
                    LeadState::New | LeadState::Retry | LeadState::Callback
                )
            })
            .filter(|l| self.open_per_number.get(&l.number).copied().unwrap_or(0) == 0)
            .filter(|l| match open.iter().find(|g| g.group == l.group) {
                None => false,
                Some(g) => g
                    .max_calls_per_24h
                    .is_none_or(|cap| self.attempts_in_24h(&l.number, now) < cap),
            })
            .map(|l| (rank(l.state), l.next_at, l.id))
            .collect();
        due.sort_unstable();
        due.truncate(count as usize);
        let mut out = Vec::new();
        for (_, _, id) in due {
            let attempt = self.attempts.len() as i64 + 1;
            let lead = self.lead_mut(id);
            let claimed_from = lead.state;
            lead.state = LeadState::Dialing;
            lead.attempts += 1;
            let lead = lead.clone();
            *self.open_per_number.entry(lead.number.clone()).or_default() += 1;
            self.attempts.push(StoreAttempt {
                id: attempt,
                lead: id,
                campaign: campaign.to_string(),
                number: lead.number.clone(),
                attempt_no: lead.attempts,
                started: now,
                ended: None,
                finish: None,
                dispositions: Vec::new(),
            });
            let dnc = dnc_lists
                .iter()
                .find(|list| {
                    self.dnc
                        .get(*list)
                        .is_some_and(|n| n.contains(&lead.number))
                })
                .cloned();
            out.push(Claimed {
                lead: id,
                attempt,
                attempt_no: lead.attempts,
                number: lead.number,
                fields: Vec::new(),
                last_outcome: lead.last_outcome,
                callback_agent: lead
                    .callback_agent
                    .filter(|_| claimed_from == LeadState::Callback),
                dnc,
            });
        }
        out
    }

    fn move_lead(
        &mut self,
        lead: i64,
        next: &LeadNext,
        outcome: Option<AttemptOutcome>,
        dnc_list: Option<&str>,
    ) {
        let l = self.lead_mut(lead);
        l.state = next.state();
        l.next_at = next.due().unwrap_or(0);
        if let Some(o) = outcome {
            l.last_outcome = Some(o);
        }
        l.callback_agent = match next {
            LeadNext::Callback { agent, .. } => agent.clone(),
            _ => None,
        };
        let number = l.number.clone();
        if let (LeadNext::Dnc, Some(list)) = (next, dnc_list) {
            self.dnc.entry(list.to_string()).or_default().insert(number);
        }
    }

    /// `Store::finish_attempt`.
    pub fn finish_attempt(
        &mut self,
        attempt: i64,
        finish: &Finish,
        dnc_list: Option<&str>,
        now: i64,
    ) {
        let a = &mut self.attempts[(attempt - 1) as usize];
        if a.ended.is_some() {
            self.violations
                .push(format!("attempt {attempt} finished twice"));
            return;
        }
        a.ended = Some(now);
        a.finish = Some(finish.clone());
        let (lead, number) = (a.lead, a.number.clone());
        if let Some(n) = self.open_per_number.get_mut(&number) {
            *n -= 1;
        }
        self.move_lead(lead, &finish.next, Some(finish.outcome), dnc_list);
    }

    /// `Store::set_disposition`.
    pub fn set_disposition(
        &mut self,
        attempt: i64,
        code: &str,
        next: Option<&LeadNext>,
        dnc_list: Option<&str>,
    ) {
        let a = &mut self.attempts[(attempt - 1) as usize];
        a.dispositions.push(code.to_string());
        let lead = a.lead;
        if let Some(next) = next {
            self.move_lead(lead, next, None, dnc_list);
        }
    }

    /// What `CountRemaining` counts: new, retry, callback, dialing.
    pub fn remaining(&self, campaign: &str) -> u64 {
        self.leads
            .iter()
            .filter(|l| l.campaign == campaign)
            .filter(|l| {
                matches!(
                    l.state,
                    LeadState::New | LeadState::Retry | LeadState::Callback | LeadState::Dialing
                )
            })
            .count() as u64
    }

    /// Attempts never closed, oldest first (`Store::open_attempts`).
    pub fn open_attempts(&self) -> Vec<StoreAttempt> {
        self.attempts
            .iter()
            .filter(|a| a.ended.is_none())
            .cloned()
            .collect()
    }

    /// Attempts of a lead, in order.
    pub fn attempts_of(&self, lead: i64) -> Vec<&StoreAttempt> {
        self.attempts.iter().filter(|a| a.lead == lead).collect()
    }
}

/// An agent disposing of a bridged call `after_s` seconds after it was bridged (after the
/// call's end when `after_s` >= the talk time).
#[derive(Clone, Debug, PartialEq)]
pub struct Dispose {
    pub after_s: i64,
    pub code: String,
    /// Unix seconds, for a callback code.
    pub callback_at: Option<i64>,
}

/// How one call goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Script {
    /// Busy after 2 s.
    Busy,
    /// Rings out: no answer after the request's `ring_timeout_s`.
    NoAnswer,
    /// The network fails it after 1 s.
    Failed,
    /// The call engine refuses the originate (`place_failed`).
    Refused,
    /// Answered after 5 s; the customer hangs up before an agent takes it
    /// (`abandoned_no_agent`).
    Abandoned,
    /// Answered after 5 s, bridged to the reserved agent or any ready one (abandoned when
    /// none is ready), ended by the customer after `talk_s`.
    Bridged {
        talk_s: i64,
        dispose: Option<Dispose>,
    },
}

impl Script {
    /// Answered and bridged, talking `talk_s`, no disposition.
    pub fn talk(talk_s: i64) -> Script {
        Script::Bridged {
            talk_s,
            dispose: None,
        }
    }
}

/// A fake agent's state, as the call engine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentState {
    Ready,
    /// Held for an originate that named the agent.
    Reserved,
    Talking,
    /// Ready again at this time.
    WrapUp(i64),
    Paused,
    LoggedOut,
}

/// A call on the fake call engine.
#[derive(Clone, Debug)]
pub struct Call {
    pub id: String,
    pub campaign: String,
    pub attempt: i64,
    pub number: String,
    pub script: Script,
    /// The agent the originate named.
    pub reserved: Option<String>,
    pub answer_at: Option<i64>,
    pub end_at: Option<i64>,
    pub outcome: &'static str,
    pub answered: bool,
    pub agent: Option<String>,
}

/// One originate, as the call engine received it.
#[derive(Clone, Debug)]
pub struct Dialled {
    pub at: i64,
    pub campaign: String,
    pub attempt: i64,
    pub number: String,
    pub request: CallRequest,
}

type Chooser = Box<dyn FnMut(&str, u32) -> Script>;

/// The engine, the store, the call engine and the agents, at virtual time `now`.
pub struct Sim {
    pub engine: Engine,
    pub store: FakeStore,
    /// Unix seconds.
    pub now: i64,
    pub agents: BTreeMap<String, AgentState>,
    pub wrap_up_s: u64,
    pub defs: BTreeMap<String, CampaignDef>,
    pub calls: BTreeMap<String, Call>,
    next_call: u64,
    pub dialled: Vec<Dialled>,
    /// Every order the engine gave, with the time.
    pub orders: Vec<(i64, Order)>,
    /// Agent dispositions due: (at, call, dispose).
    pending_dispositions: Vec<(i64, String, Dispose)>,
    /// What `Engine::disposition` answered for each scripted disposition.
    pub disposition_results: Vec<(i64, String, Result<(), String>)>,
    /// Things a correct engine never causes.
    pub violations: Vec<String>,
    chooser: Chooser,
}

impl Sim {
    /// A simulation at `start` with these agents, all ready, and every call answered and
    /// bridged for 30 s unless [`Sim::script`] says otherwise.
    pub fn new(start: DateTime<Utc>, agents: &[&str]) -> Sim {
        Sim {
            engine: Engine::new(),
            store: FakeStore::default(),
            now: start.timestamp(),
            agents: agents
                .iter()
                .map(|a| (a.to_string(), AgentState::Ready))
                .collect(),
            wrap_up_s: 0,
            defs: BTreeMap::new(),
            calls: BTreeMap::new(),
            next_call: 0,
            dialled: Vec::new(),
            orders: Vec::new(),
            pending_dispositions: Vec::new(),
            disposition_results: Vec::new(),
            violations: Vec::new(),
            chooser: Box::new(|_, _| Script::talk(30)),
        }
    }

    /// Loads `def` and starts it.
    pub fn campaign(&mut self, def: CampaignDef) {
        let name = def.name.clone();
        self.defs.insert(name.clone(), def.clone());
        self.engine.add_campaign(def, CampaignState::Created);
        self.engine.start(&name).expect("a created campaign starts");
    }

    /// Adds a lead in `zones` (and `region`); its id.
    pub fn lead(&mut self, campaign: &str, number: &str, zones: &str, region: Option<&str>) -> i64 {
        let group = LeadGroup {
            zones: zones.to_string(),
            region: region.map(str::to_string),
        };
        self.store.add_lead(campaign, number, group)
    }

    /// Decides each call's script from its number and attempt number.
    pub fn script(&mut self, f: impl FnMut(&str, u32) -> Script + 'static) {
        self.chooser = Box::new(f);
    }

    /// Scripts by number: the `n`th attempt of a number plays `scripts[n - 1]` (the last one
    /// again after the list runs out); numbers not listed talk for 30 s.
    pub fn script_by_number(&mut self, by_number: &[(&str, Vec<Script>)]) {
        let map: HashMap<String, Vec<Script>> = by_number
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect();
        self.script(move |number, attempt_no| match map.get(number) {
            Some(list) => list[(attempt_no as usize - 1).min(list.len() - 1)].clone(),
            None => Script::talk(30),
        });
    }

    pub fn set_agent(&mut self, ext: &str, state: AgentState) {
        self.agents.insert(ext.to_string(), state);
    }

    pub fn now(&self) -> DateTime<Utc> {
        at(self.now)
    }

    /// What the runtime's `refresh_agents` tells the engine.
    pub fn pool_agents(&self) -> PoolAgents {
        PoolAgents {
            logged_in: self
                .agents
                .values()
                .filter(|s| **s != AgentState::LoggedOut)
                .count() as u32,
            ready: self
                .agents
                .iter()
                .filter(|(_, s)| **s == AgentState::Ready)
                .map(|(a, _)| a.clone())
                .collect(),
            wrap_up_s: self.wrap_up_s,
        }
    }

    /// Ready agents now.
    pub fn ready_agents(&self) -> usize {
        self.pool_agents().ready.len()
    }

    /// Calls up and not (yet) bridged to an agent.
    pub fn unbridged_calls(&self) -> usize {
        self.calls.values().filter(|c| c.agent.is_none()).count()
    }

    /// Calls up of `campaign`.
    pub fn calls_of(&self, campaign: &str) -> usize {
        self.calls
            .values()
            .filter(|c| c.campaign == campaign)
            .count()
    }

    /// One virtual second: call events and agent changes due now, the pool's agents, a tick
    /// when the engine asks for one, the orders carried out; then the clock moves on.
    pub fn step(&mut self) {
        self.call_events();
        self.agent_changes();
        self.engine.pool_agents(POOL, self.pool_agents());
        if self
            .engine
            .poll_timeout()
            .is_some_and(|due| due <= self.now())
        {
            self.engine.tick(self.now());
        }
        self.carry_out();
        self.now += 1;
    }

    /// `secs` steps.
    pub fn run_for(&mut self, secs: i64) {
        for _ in 0..secs {
            self.step();
        }
    }

    /// Steps until `done` holds (checked before each step) or `limit` seconds pass; whether
    /// it held.
    pub fn run_until(&mut self, limit: i64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        for _ in 0..limit {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Steps until `t` (Unix seconds) is the current time, not yet stepped.
    pub fn run_to(&mut self, t: i64) {
        while self.now < t {
            self.step();
        }
    }

    /// Carries out the engine's orders in sequence until none is left.
    pub fn carry_out(&mut self) {
        while let Some(order) = self.engine.poll_order() {
            self.orders.push((self.now, order.clone()));
            self.order(order);
        }
    }

    fn order(&mut self, order: Order) {
        let now = self.now();
        match order {
            Order::LoadGroups { campaign } => {
                let groups = self.store.lead_groups(&campaign);
                self.engine.groups(now, &campaign, groups);
            }
            Order::Claim {
                campaign,
                count,
                open,
            } => {
                let lists = self.defs[&campaign].dnc.clone();
                let leads = self.store.claim(&campaign, self.now, &open, count, &lists);
                self.engine.claimed(now, &campaign, leads, count);
            }
            Order::Originate {
                campaign,
                attempt,
                call,
            } => self.originate(campaign, attempt, call),
            Order::FinishAttempt {
                attempt,
                finish,
                dnc_list,
                ..
            } => {
                if let Some(c) = self.calls.values().find(|c| c.attempt == attempt) {
                    self.violations.push(format!(
                        "{}: attempt {attempt} finished while call {} to {} is up",
                        self.now, c.id, c.number
                    ));
                }
                self.store
                    .finish_attempt(attempt, &finish, dnc_list.as_deref(), self.now);
            }
            Order::Disposition {
                attempt,
                code,
                next,
                dnc_list,
                ..
            } => self
                .store
                .set_disposition(attempt, &code, next.as_ref(), dnc_list.as_deref()),
            Order::SaveState { .. } | Order::Event(_) => {}
            Order::CountRemaining { campaign } => {
                let n = self.store.remaining(&campaign);
                self.engine.remaining(&campaign, n);
            }
        }
    }

    fn originate(&mut self, campaign: String, attempt: i64, request: CallRequest) {
        let a = self.store.attempt(attempt).clone();
        if a.ended.is_some() {
            self.violations.push(format!(
                "{}: originate for closed attempt {attempt}",
                self.now
            ));
        }
        if let Some(c) = self.calls.values().find(|c| c.number == request.number) {
            self.violations.push(format!(
                "{}: {} dialled while call {} (attempt {}) to it is up",
                self.now, request.number, c.id, c.attempt
            ));
        }
        self.dialled.push(Dialled {
            at: self.now,
            campaign: campaign.clone(),
            attempt,
            number: request.number.clone(),
            request: request.clone(),
        });
        let script = (self.chooser)(&request.number, a.attempt_no);
        if script == Script::Refused {
            self.engine
                .place_failed(self.now(), &campaign, attempt, "refused by the test");
            return;
        }
        if let Some(agent) = &request.agent {
            if self.agents.get(agent) != Some(&AgentState::Ready) {
                self.violations.push(format!(
                    "{}: originate reserved agent {agent}, who is {:?}",
                    self.now,
                    self.agents.get(agent)
                ));
            }
            self.agents.insert(agent.clone(), AgentState::Reserved);
        }
        self.next_call += 1;
        let id = format!("call-{}", self.next_call);
        let t = self.now;
        let (answer_at, end_at, outcome) = match &script {
            Script::Busy => (None, Some(t + 2), "busy"),
            Script::NoAnswer => (
                None,
                Some(t + i64::from(request.ring_timeout_s)),
                "no_answer",
            ),
            Script::Failed => (None, Some(t + 1), "failed"),
            Script::Abandoned | Script::Bridged { .. } => (Some(t + 5), None, ""),
            Script::Refused => unreachable!("handled above"),
        };
        self.calls.insert(
            id.clone(),
            Call {
                id: id.clone(),
                campaign: campaign.clone(),
                attempt,
                number: request.number.clone(),
                script,
                reserved: request.agent.clone(),
                answer_at,
                end_at,
                outcome,
                answered: false,
                agent: None,
            },
        );
        self.engine.placed(&campaign, attempt, &id);
    }

    fn call_events(&mut self) {
        let now = self.now;
        let answering: Vec<String> = self
            .calls
            .values()
            .filter(|c| c.answer_at == Some(now))
            .map(|c| c.id.clone())
            .collect();
        for id in answering {
            self.answer(&id);
        }
        let ending: Vec<String> = self
            .calls
            .values()
            .filter(|c| c.end_at == Some(now))
            .map(|c| c.id.clone())
            .collect();
        for id in ending {
            self.end(&id);
        }
        let due: Vec<(i64, String, Dispose)> = self
            .pending_dispositions
            .iter()
            .filter(|(t, _, _)| *t == now)
            .cloned()
            .collect();
        self.pending_dispositions.retain(|(t, _, _)| *t != now);
        for (_, call, d) in due {
            let r = self
                .engine
                .disposition(self.now(), &call, &d.code, d.callback_at, None)
                .map_err(|e| e.to_string());
            self.disposition_results.push((now, d.code.clone(), r));
        }
        self.carry_out();
    }

    fn answer(&mut self, id: &str) {
        let now = self.now;
        self.engine.call_answered(self.now(), id);
        let call = self
            .calls
            .get(id)
            .expect("answering a call that is up")
            .clone();
        let agent = match (&call.script, &call.reserved) {
            (Script::Abandoned, _) => None,
            (_, Some(agent)) => Some(agent.clone()),
            _ => self
                .agents
                .iter()
                .find(|(_, s)| **s == AgentState::Ready)
                .map(|(a, _)| a.clone()),
        };
        let c = self.calls.get_mut(id).expect("the call is up");
        c.answered = true;
        match (agent, &c.script) {
            (Some(agent), Script::Bridged { talk_s, dispose }) => {
                c.agent = Some(agent.clone());
                c.end_at = Some(now + talk_s);
                c.outcome = "bridged";
                if let Some(d) = dispose {
                    self.pending_dispositions
                        .push((now + d.after_s, id.to_string(), d.clone()));
                }
                self.agents.insert(agent.clone(), AgentState::Talking);
                self.engine.call_bridged(self.now(), id, &agent);
            }
            _ => {
                c.end_at = Some(now);
                c.outcome = "abandoned_no_agent";
            }
        }
    }

    fn end(&mut self, id: &str) {
        let call = self.calls.remove(id).expect("ending a call that is up");
        let agent = call.agent.clone().or(call.reserved.clone());
        if let Some(agent) = &agent {
            let state = if call.agent.is_some() && self.wrap_up_s > 0 {
                AgentState::WrapUp(self.now + self.wrap_up_s as i64)
            } else {
                AgentState::Ready
            };
            if matches!(
                self.agents.get(agent),
                Some(AgentState::Talking | AgentState::Reserved)
            ) {
                self.agents.insert(agent.clone(), state);
            }
        }
        self.engine.call_ended(
            self.now(),
            id,
            call.outcome,
            call.answered,
            call.agent.as_deref(),
        );
    }

    fn agent_changes(&mut self) {
        for state in self.agents.values_mut() {
            if matches!(state, AgentState::WrapUp(until) if *until <= self.now) {
                *state = AgentState::Ready;
            }
        }
    }

    /// The dialer process dies: its calls die with it, a new engine loads the campaigns
    /// as stored (running) and finishes each open attempt as interrupted.
    pub fn crash(&mut self) {
        for call in std::mem::take(&mut self.calls).into_values() {
            for agent in [call.agent, call.reserved].into_iter().flatten() {
                self.agents.insert(agent, AgentState::Ready);
            }
        }
        self.pending_dispositions.clear();
        self.engine = Engine::new();
        let states: BTreeMap<String, CampaignState> = self
            .defs
            .keys()
            .map(|name| (name.clone(), self.stored_state(name)))
            .collect();
        for (name, def) in &self.defs {
            self.engine.add_campaign(def.clone(), states[name]);
        }
        for a in self.store.open_attempts() {
            self.engine.recover(
                self.now(),
                &a.campaign,
                a.id,
                a.lead,
                &a.number,
                a.attempt_no,
            );
        }
        self.carry_out();
    }

    /// The campaign's state by its last `SaveState` order.
    pub fn stored_state(&self, campaign: &str) -> CampaignState {
        self.orders
            .iter()
            .rev()
            .find_map(|(_, o)| match o {
                Order::SaveState { campaign: c, state } if c == campaign => Some(*state),
                _ => None,
            })
            .unwrap_or(CampaignState::Created)
    }

    /// `FinishAttempt` orders: (time, attempt, finish).
    pub fn finishes(&self) -> Vec<(i64, i64, Finish)> {
        self.orders
            .iter()
            .filter_map(|(t, o)| match o {
                Order::FinishAttempt {
                    attempt, finish, ..
                } => Some((*t, *attempt, finish.clone())),
                _ => None,
            })
            .collect()
    }

    /// The `FinishAttempt` of attempt `attempt`.
    pub fn finish_of(&self, attempt: i64) -> (i64, Finish) {
        self.finishes()
            .into_iter()
            .find(|(_, a, _)| *a == attempt)
            .map(|(t, _, f)| (t, f))
            .unwrap_or_else(|| panic!("attempt {attempt} was never finished"))
    }

    /// Claim orders: (time, campaign, count, open).
    pub fn claims(&self) -> Vec<(i64, String, u32, Vec<OpenGroup>)> {
        self.orders
            .iter()
            .filter_map(|(t, o)| match o {
                Order::Claim {
                    campaign,
                    count,
                    open,
                } => Some((*t, campaign.clone(), *count, open.clone())),
                _ => None,
            })
            .collect()
    }

    /// Times `number` was dialled.
    pub fn dialled_at(&self, number: &str) -> Vec<i64> {
        self.dialled
            .iter()
            .filter(|d| d.number == number)
            .map(|d| d.at)
            .collect()
    }

    /// `CampaignState` events of `campaign`, with their times.
    pub fn state_events(&self, campaign: &str) -> Vec<(i64, CampaignState)> {
        self.orders
            .iter()
            .filter_map(|(t, o)| match o {
                Order::Event(CampaignEvent::CampaignState { campaign: c, state })
                    if c == campaign =>
                {
                    Some((*t, *state))
                }
                _ => None,
            })
            .collect()
    }

    /// `Disposition` orders: (time, attempt, code, next).
    pub fn dispositions(&self) -> Vec<(i64, i64, String, Option<LeadNext>)> {
        self.orders
            .iter()
            .filter_map(|(t, o)| match o {
                Order::Disposition {
                    attempt,
                    code,
                    next,
                    ..
                } => Some((*t, *attempt, code.clone(), next.clone())),
                _ => None,
            })
            .collect()
    }

    /// The engine's state of `campaign`.
    pub fn state(&self, campaign: &str) -> CampaignState {
        self.engine.state(campaign).expect("campaign is loaded")
    }

    /// Panics with every violation seen.
    pub fn assert_clean(&self) {
        let all: Vec<&String> = self
            .violations
            .iter()
            .chain(&self.store.violations)
            .collect();
        assert!(all.is_empty(), "violations:\n{all:#?}");
    }
}
