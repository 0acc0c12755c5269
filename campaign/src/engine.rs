//! The campaign engine: which leads to claim and when, what to dial for each, and what
//! becomes of a lead when its call ends.
//!
//! Drive loop (the runtime's campaign thread, or a test in virtual time):
//! feed [`Engine::pool_agents`], call events ([`Engine::call_answered`],
//! [`Engine::call_bridged`], [`Engine::call_ended`]) and commands; call [`Engine::tick`] at
//! [`Engine::poll_timeout`]; then drain [`Engine::poll_order`] and carry each [`Order`] out in
//! sequence, feeding the answers back ([`Engine::claimed`], [`Engine::placed`],
//! [`Engine::groups`], [`Engine::remaining`]). The engine owns no lead data beyond the lines
//! it has in flight: the store is the truth, and a claim is committed before its
//! [`Order::Originate`] is issued.

use crate::definition::{CampaignDef, DispositionAction, Pacing, PredictiveDef};
use crate::hours;
use crate::pacing::ledger::Counts;
use crate::pacing::{GroupCounts, Lines, Pacer};
use crate::types::{AttemptOutcome, LeadGroup, LeadNext, OpenGroup};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// How often a running campaign is paced, and calling hours rechecked.
pub const TICK_S: i64 = 1;
/// How often the lead groups (zones and regions) of a running campaign are reloaded.
pub const GROUPS_REFRESH_S: i64 = 60;
/// After a claim that found fewer leads than asked, wait this long before claiming again.
pub const SHORT_CLAIM_BACKOFF_S: i64 = 1;
/// How long an ended call's attempt can still take a disposition.
pub const DISPOSITION_GRACE_S: i64 = 3600;
/// DNC list used by a `dnc` disposition when the campaign names none.
pub const DEFAULT_DNC_LIST: &str = "global";
/// Most `X-Lead-*` headers sent to the agent (the call engine takes at most 16 headers).
pub const MAX_LEAD_HEADERS: usize = 13;

/// A campaign's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Defined, never started.
    Created,
    /// Dialling.
    Running,
    /// No new calls; calls under way finish.
    Paused,
    /// Stopped by the operator; calls under way finish; `start` runs it again.
    Stopped,
    /// Every lead reached a final state.
    Finished,
}

impl CampaignState {
    /// The spelling in the store, the API and events.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignState::Created => "created",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Stopped => "stopped",
            CampaignState::Finished => "finished",
        }
    }

    /// The state spelled `s`.
    pub fn parse(s: &str) -> Option<CampaignState> {
        Some(match s {
            "created" => CampaignState::Created,
            "running" => CampaignState::Running,
            "paused" => CampaignState::Paused,
            "stopped" => CampaignState::Stopped,
            "finished" => CampaignState::Finished,
            _ => return None,
        })
    }
}

/// What the engine knows of a pool's agents (from the call engine's agent states).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolAgents {
    /// Agents logged in (any state but `logged_out`).
    pub logged_in: u32,
    /// Extensions of the agents `ready` now.
    pub ready: Vec<String>,
    /// The pool's `wrap_up_s`: a bridged call's disposition is defaulted after it.
    pub wrap_up_s: u64,
}

/// A lead the store claimed, its attempt committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The lead.
    pub lead: i64,
    /// Its new attempt.
    pub attempt: i64,
    /// 1 for the first.
    pub attempt_no: u32,
    /// Number to dial.
    pub number: String,
    /// Extra columns (sent to the agent).
    pub fields: Vec<(String, String)>,
    /// The previous attempt's outcome.
    pub last_outcome: Option<AttemptOutcome>,
    /// A callback for this agent.
    pub callback_agent: Option<String>,
    /// The DNC list the number was found on at claim time: nothing is dialled.
    pub dnc: Option<String>,
}

/// One call to place for a lead (the runtime maps it to the call engine's originate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRequest {
    /// Number.
    pub number: String,
    /// The pool whose agent takes the call.
    pub pool: String,
    /// Reserve this agent before dialling (callbacks to their agent, early redials of
    /// abandoned leads under Ofcom's guaranteed-agent rule); `None`: the pool chooses at
    /// answer.
    pub agent: Option<String>,
    /// Trunk.
    pub trunk: Option<String>,
    /// Caller id.
    pub caller_id: Option<String>,
    /// Seconds to ring the customer.
    pub ring_timeout_s: u32,
    /// `campaign/lead/attempt`: carried in every call event and the CDR.
    pub tag: String,
    /// `X-Campaign`, `X-Lead-Id`, `X-Lead-<column>` for the agent's phone.
    pub agent_headers: Vec<(String, String)>,
    /// Record the call as `<campaign>-<lead>-<attempt>.wav` (the campaign's `record`).
    pub record: Option<String>,
}

/// How an attempt ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    /// Class.
    pub outcome: AttemptOutcome,
    /// The call engine's outcome (`abandoned_no_agent` ...).
    pub call_outcome: Option<String>,
    /// The customer answered.
    pub answered: bool,
    /// The agent who talked.
    pub agent: Option<String>,
    /// What becomes of the lead.
    pub next: LeadNext,
}

/// What the runtime must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Order {
    /// Load the campaign's lead groups and answer with [`Engine::groups`].
    LoadGroups {
        /// Campaign.
        campaign: String,
    },
    /// Claim up to `count` due leads of the `open` groups and answer with
    /// [`Engine::claimed`] (also when none were found).
    Claim {
        /// Campaign.
        campaign: String,
        /// At most.
        count: u32,
        /// Groups inside their calling hours now.
        open: Vec<OpenGroup>,
    },
    /// Place the call and answer with [`Engine::placed`] or [`Engine::place_failed`].
    Originate {
        /// Campaign.
        campaign: String,
        /// The attempt it belongs to.
        attempt: i64,
        /// What to dial.
        call: CallRequest,
    },
    /// Close the attempt and move the lead on.
    FinishAttempt {
        /// Campaign.
        campaign: String,
        /// Attempt.
        attempt: i64,
        /// How.
        finish: Finish,
        /// For [`LeadNext::Dnc`]: the list that receives the number.
        dnc_list: Option<String>,
    },
    /// Record a disposition, and the lead's new state when it changes it.
    Disposition {
        /// Attempt.
        attempt: i64,
        /// Code.
        code: String,
        /// Agent's note.
        note: Option<String>,
        /// The lead's next state, when the disposition decides it.
        next: Option<LeadNext>,
        /// For [`LeadNext::Dnc`].
        dnc_list: Option<String>,
    },
    /// Persist a campaign's state.
    SaveState {
        /// Campaign.
        campaign: String,
        /// State.
        state: CampaignState,
    },
    /// Count the leads that can still be dialled and answer with [`Engine::remaining`].
    CountRemaining {
        /// Campaign.
        campaign: String,
    },
    /// Publish.
    Event(CampaignEvent),
}

/// What followers of `GET /events` see of campaigns.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CampaignEvent {
    /// A campaign changed state.
    CampaignState {
        /// Campaign.
        campaign: String,
        /// New state.
        state: CampaignState,
    },
    /// A lead's attempt began (claimed and committed).
    AttemptStarted {
        /// Campaign.
        campaign: String,
        /// Attempt.
        attempt: i64,
        /// Lead.
        lead: i64,
        /// Number.
        number: String,
        /// 1 for the first.
        attempt_no: u32,
    },
    /// An attempt ended.
    AttemptEnded {
        /// Campaign.
        campaign: String,
        /// Attempt.
        attempt: i64,
        /// Lead.
        lead: i64,
        /// Number.
        number: String,
        /// Class.
        outcome: AttemptOutcome,
        /// The call engine's outcome.
        call_outcome: Option<String>,
        /// The lead's new state.
        lead_state: &'static str,
        /// When it is due again (Unix seconds).
        next_at: Option<i64>,
    },
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// No campaign of that name is loaded.
    #[error("no campaign named {0:?}")]
    NoSuchCampaign(String),
    /// The state change makes no sense from here.
    #[error("campaign {campaign:?} is {from}: cannot {verb}")]
    BadTransition {
        /// Campaign.
        campaign: String,
        /// Current state.
        from: &'static str,
        /// What was asked.
        verb: &'static str,
    },
    /// The call is not a campaign call (or ended too long ago).
    #[error("call {0} is not a campaign call")]
    NotACampaignCall(String),
    /// The disposition code is not configured for the campaign.
    #[error("unknown disposition {code:?}; the campaign's codes: {known}")]
    UnknownDisposition {
        /// Given.
        code: String,
        /// Configured, comma separated.
        known: String,
    },
    /// A callback disposition without a time in the future.
    #[error("a callback needs callback_at, a time in the future")]
    CallbackTime,
}

/// How a lead's line stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// A callback waiting for its agent to be ready.
    Held { since: i64, agent: String },
    /// The originate order is out.
    Placing,
    /// The call exists; the customer has not answered.
    Dialing { call: String },
    /// The customer answered at `at` (Unix seconds) and waits for an agent.
    Answered { call: String, at: i64 },
    /// Talking to `agent` since `since`; the customer answered at `answered`.
    Bridged {
        call: String,
        agent: String,
        since: i64,
        answered: i64,
    },
}

impl Stage {
    fn call(&self) -> Option<&str> {
        match self {
            Stage::Dialing { call }
            | Stage::Answered { call, .. }
            | Stage::Bridged { call, .. } => Some(call),
            _ => None,
        }
    }

    /// Lines that still want an agent (pacing counts them against the ready agents).
    fn wants_agent(&self) -> bool {
        !matches!(self, Stage::Bridged { .. })
    }
}

/// One lead in flight.
#[derive(Clone, Debug)]
struct Line {
    lead: i64,
    number: String,
    attempt_no: u32,
    fields: Vec<(String, String)>,
    last_outcome: Option<AttemptOutcome>,
    stage: Stage,
    /// When its originate was issued (Unix seconds): ring times are counted from it.
    placed_at: i64,
    /// The agent its originate named (held for it by the call engine until the bridge).
    reserved: Option<String>,
    /// A disposition set while the call was up.
    disposition: Option<Pending>,
    /// An agent marked it an answering machine (Ofcom's adjusted drops count it).
    machine: bool,
}

/// A disposition set during a call, applied when the call ends.
#[derive(Clone, Debug)]
struct Pending {
    /// The lead's next state.
    next: LeadNext,
    /// For `next` = DNC: the list.
    dnc_list: Option<String>,
    /// For a `retry` disposition: its delay, counted from the end of the call (the customer
    /// asked to be called again in so long after this call, not after the agent's click).
    retry_s: Option<i64>,
}

/// An ended call whose attempt can still take a disposition.
#[derive(Clone, Debug)]
struct Ended {
    campaign: String,
    attempt: i64,
    attempt_no: u32,
    agent: Option<String>,
    bridged: bool,
    disposed: bool,
    /// When the customer answered (Unix seconds), for an answered call.
    answered_at: Option<i64>,
    /// An agent marked it an answering machine.
    machine: bool,
    /// The default disposition applies at this time (Unix seconds).
    default_at: i64,
    /// Forgotten after this.
    until: i64,
}

/// One loaded campaign.
#[derive(Debug)]
struct Campaign {
    def: CampaignDef,
    state: CampaignState,
    lines: BTreeMap<i64, Line>,
    groups: Vec<LeadGroup>,
    /// Groups are reloaded at this time.
    groups_due: i64,
    /// A LoadGroups order is out.
    loading: bool,
    /// Groups were loaded at least once (a refresh then does not hold pacing up).
    groups_loaded: bool,
    /// A Claim order is out.
    claiming: bool,
    /// No claim before this.
    claim_after: i64,
    /// A CountRemaining order is out.
    counting: bool,
    /// The traffic model and abandon counts (every campaign counts its abandons; a
    /// predictive one paces from them).
    pacer: Pacer,
    /// An adaptive dial level set from outside, replacing the pacing while set.
    dial_level: Option<f64>,
}

/// The campaign engine (sans-IO).
#[derive(Debug, Default)]
pub struct Engine {
    campaigns: BTreeMap<String, Campaign>,
    pools: HashMap<String, PoolAgents>,
    /// Call id -> (campaign, attempt) of calls in flight.
    calls: HashMap<String, (String, i64)>,
    ended: HashMap<String, Ended>,
    orders: VecDeque<Order>,
    last_tick: Option<i64>,
    /// Agents whose bridged call ended and who are not ready again yet:
    /// agent -> (campaign, when the call ended).
    wrap_ups: HashMap<String, (String, i64)>,
}

impl Engine {
    /// An engine with no campaigns.
    pub fn new() -> Engine {
        Engine::default()
    }

    /// Loads a campaign (at start, from the store, or when created). A campaign stored as
    /// running resumes dialling.
    pub fn add_campaign(&mut self, def: CampaignDef, state: CampaignState) {
        let name = def.name.clone();
        let predictive = match &def.pacing {
            Pacing::Predictive(p) => p.clone(),
            _ => PredictiveDef::default(),
        };
        let pacer = Pacer::new(predictive, def.time_zone);
        self.campaigns.insert(
            name,
            Campaign {
                def,
                state,
                lines: BTreeMap::new(),
                groups: Vec::new(),
                groups_due: i64::MIN,
                loading: false,
                groups_loaded: false,
                claiming: false,
                claim_after: i64::MIN,
                counting: false,
                pacer,
                dial_level: None,
            },
        );
    }

    /// A loaded campaign's definition.
    pub fn definition(&self, campaign: &str) -> Option<&CampaignDef> {
        self.campaigns.get(campaign).map(|c| &c.def)
    }

    /// A loaded campaign's state.
    pub fn state(&self, campaign: &str) -> Option<CampaignState> {
        self.campaigns.get(campaign).map(|c| c.state)
    }

    /// Lines of a campaign in flight: `(all, waiting for an agent)`.
    pub fn lines(&self, campaign: &str) -> (usize, usize) {
        self.campaigns.get(campaign).map_or((0, 0), |c| {
            let waiting = c.lines.values().filter(|l| l.stage.wants_agent()).count();
            (c.lines.len(), waiting)
        })
    }

    /// Starts (or resumes) dialling.
    pub fn start(&mut self, campaign: &str) -> Result<(), EngineError> {
        self.transition(campaign, "start", CampaignState::Running, |s| {
            s != CampaignState::Running
        })
    }

    /// No new calls; calls under way finish.
    pub fn pause(&mut self, campaign: &str) -> Result<(), EngineError> {
        self.transition(campaign, "pause", CampaignState::Paused, |s| {
            s == CampaignState::Running
        })
    }

    /// Dialling again after a pause.
    pub fn resume(&mut self, campaign: &str) -> Result<(), EngineError> {
        self.transition(campaign, "resume", CampaignState::Running, |s| {
            s == CampaignState::Paused
        })
    }

    /// Stops the campaign; calls under way finish.
    pub fn stop(&mut self, campaign: &str) -> Result<(), EngineError> {
        self.transition(campaign, "stop", CampaignState::Stopped, |s| {
            matches!(s, CampaignState::Running | CampaignState::Paused)
        })
    }

    fn transition(
        &mut self,
        campaign: &str,
        verb: &'static str,
        to: CampaignState,
        allowed: impl Fn(CampaignState) -> bool,
    ) -> Result<(), EngineError> {
        let c = self
            .campaigns
            .get_mut(campaign)
            .ok_or_else(|| EngineError::NoSuchCampaign(campaign.to_string()))?;
        if !allowed(c.state) {
            return Err(EngineError::BadTransition {
                campaign: campaign.to_string(),
                from: c.state.as_str(),
                verb,
            });
        }
        c.state = to;
        c.claim_after = i64::MIN;
        c.groups_due = i64::MIN;
        self.save_state(campaign, to);
        Ok(())
    }

    fn save_state(&mut self, campaign: &str, state: CampaignState) {
        self.orders.push_back(Order::SaveState {
            campaign: campaign.to_string(),
            state,
        });
        self.orders
            .push_back(Order::Event(CampaignEvent::CampaignState {
                campaign: campaign.to_string(),
                state,
            }));
    }

    /// The agents of `pool` now.
    pub fn pool_agents(&mut self, pool: &str, agents: PoolAgents) {
        self.pools.insert(pool.to_string(), agents);
    }

    /// The answer to [`Order::LoadGroups`], and the groups after an import. A finished
    /// campaign given groups with leads to dial (leads imported after it finished, or
    /// before its first leads came) runs again: it is finished only while no lead is left.
    pub fn groups(&mut self, now: DateTime<Utc>, campaign: &str, groups: Vec<LeadGroup>) {
        let Some(c) = self.campaigns.get_mut(campaign) else {
            return;
        };
        let reopen = c.state == CampaignState::Finished && !groups.is_empty();
        c.groups = groups;
        c.loading = false;
        c.groups_loaded = true;
        c.groups_due = now.timestamp() + GROUPS_REFRESH_S;
        if reopen {
            c.state = CampaignState::Running;
            self.save_state(campaign, CampaignState::Running);
        }
    }

    /// When [`Engine::tick`] is next due.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        let busy = !self.ended.is_empty()
            || self.campaigns.values().any(|c| {
                c.state == CampaignState::Running
                    || c.lines
                        .values()
                        .any(|l| matches!(l.stage, Stage::Held { .. }))
            });
        if !busy {
            return None;
        }
        let at = self.last_tick.map_or(0, |t| t + TICK_S);
        DateTime::from_timestamp(at, 0)
    }

    /// Paces every running campaign, releases held callbacks, applies default dispositions.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        let secs = now.timestamp();
        self.last_tick = Some(secs);
        self.learn(now);
        self.default_dispositions(secs);
        let names: Vec<String> = self.campaigns.keys().cloned().collect();
        for name in names {
            self.release_held(secs, &name);
            self.pace(now, &name);
        }
    }

    fn pace(&mut self, now: DateTime<Utc>, name: &str) {
        let secs = now.timestamp();
        let waiting_in_pool = |engine: &Engine, pool: &str| -> usize {
            engine
                .campaigns
                .values()
                .filter(|c| c.def.pool == pool)
                .map(|c| c.lines.values().filter(|l| l.stage.wants_agent()).count())
                .sum()
        };
        let Some(c) = self.campaigns.get(name) else {
            return;
        };
        if c.state != CampaignState::Running {
            return;
        }
        if c.groups_due <= secs && !c.loading {
            self.orders.push_back(Order::LoadGroups {
                campaign: name.to_string(),
            });
            let Some(c) = self.campaigns.get_mut(name) else {
                return;
            };
            c.loading = true;
            // Only the first load is waited for. A refresh is carried out before this
            // tick's claim (orders run in sequence), and skipping the claim would cost a
            // second of dialling each minute, the first second of a window among them.
            if !c.groups_loaded {
                return;
            }
        }
        let Some(c) = self.campaigns.get(name) else {
            return;
        };
        if c.claiming || !c.groups_loaded || secs < c.claim_after {
            return;
        }
        if c.groups.is_empty() {
            // The store lists only groups with leads left to dial, so no claim will be
            // made, and no empty claim will ever ask for the count that finishes the
            // campaign: ask here, at the claim back-off's pace.
            if c.lines.is_empty() && !c.counting {
                self.orders.push_back(Order::CountRemaining {
                    campaign: name.to_string(),
                });
                if let Some(c) = self.campaigns.get_mut(name) {
                    c.counting = true;
                    c.claim_after = secs + SHORT_CLAIM_BACKOFF_S;
                }
            }
            return;
        }
        let agents = self.pools.get(&c.def.pool).cloned().unwrap_or_default();
        // Nobody to talk to: dialling now could only abandon customers.
        if agents.logged_in == 0 {
            return;
        }
        let waiting = waiting_in_pool(self, &c.def.pool);
        let room = (c.def.max_lines as usize).saturating_sub(c.lines.len());
        let open = hours::open_groups(&c.def, &c.groups, now);
        if open.is_empty() || room == 0 {
            return;
        }
        let want = self.lines_wanted(secs, name, &agents, waiting).min(room);
        if want == 0 {
            return;
        }
        self.orders.push_back(Order::Claim {
            campaign: name.to_string(),
            count: want as u32,
            open,
        });
        if let Some(c) = self.campaigns.get_mut(name) {
            c.claiming = true;
        }
    }

    /// New lines `name` wants now, before the `max_lines` cap; `waiting` counts the lines of
    /// every campaign of the pool that still want an agent.
    fn lines_wanted(
        &mut self,
        secs: i64,
        name: &str,
        agents: &PoolAgents,
        waiting: usize,
    ) -> usize {
        let c = &self.campaigns[name];
        let ready = agents.ready.len();
        let progressive = ready.saturating_sub(waiting);
        if let Some(level) = c.dial_level {
            let goal = (level * f64::from(agents.logged_in)).floor() as usize;
            return goal.saturating_sub(c.lines.len());
        }
        match c.def.pacing {
            Pacing::Progressive => progressive,
            Pacing::Ratio { lines_per_agent } => {
                ((ready as f64 * lines_per_agent).floor() as usize).saturating_sub(waiting)
            }
            Pacing::Predictive(_) => {
                let lines = self.pacing_lines(secs, name, agents, waiting);
                let others = self.group_others(name);
                let c = self.campaigns.get_mut(name).expect("paced campaigns exist");
                c.pacer.set_group_counts(others);
                c.pacer.lines_to_add(&lines, progressive as u32) as usize
            }
        }
    }

    /// What the predictive pacer is told of `name`'s lines and agents. Ready agents promised
    /// to a line, and lines of other campaigns of the pool still wanting an agent, are taken
    /// off the ready agents; lines with an agent reserved need none from the pool.
    fn pacing_lines(&self, secs: i64, name: &str, agents: &PoolAgents, waiting: usize) -> Lines {
        let c = &self.campaigns[name];
        let reserved = self.reserved_agents();
        let promised = agents.ready.iter().filter(|a| reserved.contains(a)).count();
        let own_waiting = c.lines.values().filter(|l| l.stage.wants_agent()).count();
        let others = waiting.saturating_sub(own_waiting);
        let mut lines = Lines {
            logged_in: agents.logged_in,
            ready: agents.ready.len().saturating_sub(promised + others) as u32,
            ring_timeout_s: c.def.ring_timeout_s,
            ..Lines::default()
        };
        for l in c.lines.values() {
            let pooled = l.reserved.is_none();
            match &l.stage {
                Stage::Held { .. } => continue,
                Stage::Placing | Stage::Dialing { .. } if pooled => {
                    lines.ringing.push((secs - l.placed_at) as f64)
                }
                Stage::Answered { .. } if pooled => lines.waiting += 1,
                Stage::Bridged { since, .. } => lines.talking.push((secs - since) as f64),
                _ => {}
            }
            lines.in_use += 1;
        }
        lines.wrapping = self
            .wrap_ups
            .iter()
            .filter(|(agent, (campaign, _))| campaign == name && !agents.ready.contains(agent))
            .map(|(_, (_, ended))| (secs - ended) as f64)
            .collect();
        lines
    }

    /// Sets (or with `None` clears) an adaptive dial level for `campaign`: while set, it
    /// dials up to `level` lines per logged-in agent, counting every line in use, in place
    /// of its pacing. This is how the simulator runs its VICIdial-style baseline through the
    /// same engine.
    pub fn set_dial_level(&mut self, campaign: &str, level: Option<f64>) {
        if let Some(c) = self.campaigns.get_mut(campaign) {
            c.dial_level = level;
        }
    }

    /// A campaign's abandon counts over its abandon window (`30d` unless its predictive
    /// pacing names another).
    pub fn abandon_counts(&self, campaign: &str) -> Option<Counts> {
        self.campaigns
            .get(campaign)
            .map(|c| c.pacer.window_counts())
    }

    /// The drop-rate group of `campaign` (its predictive `drop_group`), and the group's
    /// counts over the legal window: every member's.
    pub fn group_counts(&self, campaign: &str) -> Option<(String, Counts)> {
        let group = drop_group(&self.campaigns.get(campaign)?.def)?;
        let counts = self
            .campaigns
            .values()
            .filter(|c| drop_group(&c.def) == Some(group))
            .fold(Counts::default(), |sum, c| {
                sum.plus(&c.pacer.window_counts())
            });
        Some((group.to_owned(), counts))
    }

    /// Why `def` cannot join its drop-rate group: a member counts over another window or
    /// to another cap, so one budget would mean two things. `None` when it can.
    pub fn group_conflict(&self, def: &CampaignDef) -> Option<String> {
        let Pacing::Predictive(p) = &def.pacing else {
            return None;
        };
        let group = p.drop_group.as_deref()?;
        self.campaigns.values().find_map(|c| match &c.def.pacing {
            Pacing::Predictive(q)
                if q.drop_group.as_deref() == Some(group) && c.def.name != def.name =>
            {
                (q.abandon_window != p.abandon_window || q.max_abandon_pct != p.max_abandon_pct)
                    .then(|| {
                        format!(
                            "campaign {:?} of group {group:?} counts {}% over {}, expected the \
                             same max_abandon_pct and abandon_window for every member",
                            c.def.name,
                            q.max_abandon_pct,
                            q.abandon_window.as_str()
                        )
                    })
            }
            _ => None,
        })
    }

    /// What the other members of `campaign`'s drop-rate group have counted.
    fn group_others(&self, campaign: &str) -> GroupCounts {
        let Some(group) = self
            .campaigns
            .get(campaign)
            .and_then(|c| drop_group(&c.def))
        else {
            return GroupCounts::default();
        };
        self.campaigns
            .iter()
            .filter(|(name, c)| name.as_str() != campaign && drop_group(&c.def) == Some(group))
            .fold(GroupCounts::default(), |sum, (_, c)| GroupCounts {
                window: sum.window.plus(&c.pacer.window_counts()),
                hour: sum.hour.plus(&c.pacer.hour_counts()),
            })
    }

    /// Counts a bridged call of `campaign` from before this engine started, answered at
    /// `answered_at`, that its agent marked with `disposition`: a machine when the
    /// campaign's definition says that code is one (Ofcom's adjusted drops).
    pub fn count_disposition(&mut self, campaign: &str, answered_at: i64, disposition: &str) {
        if let Some(c) = self.campaigns.get_mut(campaign) {
            let machine = c
                .def
                .dispositions
                .iter()
                .any(|d| d.code == disposition && d.machine);
            if machine {
                c.pacer.machine(answered_at);
            }
        }
    }

    /// Counts an answered call of `campaign` from before this engine started (the store's
    /// history), so the abandon window survives a restart.
    pub fn count_answered(&mut self, campaign: &str, answered_at: i64, bridged: bool) {
        if let Some(c) = self.campaigns.get_mut(campaign) {
            c.pacer.count(answered_at, bridged);
        }
    }

    /// Learns wrap-up times from agents ready again, and moves every pacer to `now`.
    fn learn(&mut self, now: DateTime<Utc>) {
        let secs = now.timestamp();
        let mut back = Vec::new();
        for (agent, (campaign, ended)) in &self.wrap_ups {
            let ready = self
                .campaigns
                .get(campaign)
                .and_then(|c| self.pools.get(&c.def.pool))
                .is_none_or(|p| p.ready.contains(agent));
            if ready || secs - ended > DISPOSITION_GRACE_S {
                back.push((agent.clone(), campaign.clone(), secs - ended, ready));
            }
        }
        for (agent, campaign, wrap_s, ready) in back {
            self.wrap_ups.remove(&agent);
            if let (true, Some(c)) = (ready, self.campaigns.get_mut(&campaign)) {
                c.pacer.model.wrapped_up(wrap_s as f64);
            }
        }
        for c in self.campaigns.values_mut() {
            if let Some(p) = self.pools.get(&c.def.pool) {
                c.pacer.model.set_default_wrap_up(p.wrap_up_s as f64);
            }
            c.pacer.advance(now);
        }
    }

    /// The answer to [`Order::Claim`]: the leads claimed (possibly none), their attempts
    /// committed.
    pub fn claimed(&mut self, now: DateTime<Utc>, campaign: &str, leads: Vec<Claimed>, asked: u32) {
        let secs = now.timestamp();
        let Some(c) = self.campaigns.get_mut(campaign) else {
            return;
        };
        c.claiming = false;
        if (leads.len() as u32) < asked {
            c.claim_after = secs + SHORT_CLAIM_BACKOFF_S;
        }
        if leads.is_empty() && c.lines.is_empty() && !c.counting {
            c.counting = true;
            self.orders.push_back(Order::CountRemaining {
                campaign: campaign.to_string(),
            });
        }
        for lead in leads {
            self.start_line(secs, campaign, lead);
        }
    }

    fn start_line(&mut self, secs: i64, campaign: &str, lead: Claimed) {
        let reserved = self.reserved_agents();
        let ready = self
            .campaigns
            .get(campaign)
            .and_then(|c| self.pools.get(&c.def.pool))
            .map(|p| p.ready.clone())
            .unwrap_or_default();
        let Some(c) = self.campaigns.get_mut(campaign) else {
            return;
        };
        self.orders
            .push_back(Order::Event(CampaignEvent::AttemptStarted {
                campaign: campaign.to_string(),
                attempt: lead.attempt,
                lead: lead.lead,
                number: lead.number.clone(),
                attempt_no: lead.attempt_no,
            }));
        let mut line = Line {
            lead: lead.lead,
            number: lead.number.clone(),
            attempt_no: lead.attempt_no,
            fields: lead.fields,
            last_outcome: lead.last_outcome,
            stage: Stage::Placing,
            placed_at: secs,
            reserved: None,
            disposition: None,
            machine: false,
        };
        if let Some(list) = lead.dnc {
            // Checked again at claim time: the list may have grown since the import.
            let finish = Finish {
                outcome: AttemptOutcome::Dnc,
                call_outcome: Some(format!("on do-not-call list {list}")),
                answered: false,
                agent: None,
                next: LeadNext::Dnc,
            };
            self.finish_line(campaign, lead.attempt, line, finish, None);
            return;
        }
        if let Some(agent) = lead.callback_agent.filter(|_| c.def.callback_to_agent) {
            line.stage = Stage::Held { since: secs, agent };
            c.lines.insert(lead.attempt, line);
            self.release_held(secs, campaign);
            return;
        }
        let guaranteed = line.last_outcome == Some(AttemptOutcome::Abandoned)
            && c.def.abandoned_redial_with_agent
            && c.def
                .retry
                .abandoned_s
                .is_some_and(|s| s < crate::definition::ABANDONED_REDIAL_MIN_S);
        let agent = if guaranteed {
            match ready.iter().find(|a| !reserved.contains(a)).cloned() {
                Some(a) => Some(a),
                None => {
                    // Ofcom: an abandoned number is redialled inside 72 h only with an agent
                    // guaranteed; without one the lead waits.
                    line.stage = Stage::Held {
                        since: secs,
                        agent: String::new(),
                    };
                    c.lines.insert(lead.attempt, line);
                    return;
                }
            }
        } else {
            None
        };
        let request = call_request(&c.def, lead.lead, lead.attempt, &line, agent);
        line.reserved = request.agent.clone();
        c.lines.insert(lead.attempt, line);
        self.orders.push_back(Order::Originate {
            campaign: campaign.to_string(),
            attempt: lead.attempt,
            call: request,
        });
    }

    /// Agents named by lines not yet bridged, in every campaign, so one ready agent is not
    /// promised twice. The lines are asked rather than the queued orders: the pool's ready
    /// list is refreshed only before a tick, so an agent whose originate was already carried
    /// out still reads as ready while the rest of that tick's orders run (a claim's answer
    /// among them).
    fn reserved_agents(&self) -> Vec<String> {
        self.campaigns
            .values()
            .flat_map(|c| c.lines.values())
            .filter(|l| !matches!(l.stage, Stage::Bridged { .. } | Stage::Held { .. }))
            .filter_map(|l| l.reserved.clone())
            .collect()
    }

    /// Held callbacks whose agent became ready go out to it; those that waited
    /// `callback_wait_s` go to the pool.
    fn release_held(&mut self, secs: i64, campaign: &str) {
        let reserved = self.reserved_agents();
        let Some(c) = self.campaigns.get_mut(campaign) else {
            return;
        };
        // A paused or stopped campaign places no new call; a held callback waits for it to
        // run again.
        if c.state != CampaignState::Running {
            return;
        }
        let ready = self
            .pools
            .get(&c.def.pool)
            .map(|p| p.ready.clone())
            .unwrap_or_default();
        let mut taken: Vec<String> = reserved;
        let mut out = Vec::new();
        for (attempt, line) in c.lines.iter_mut() {
            let Stage::Held { since, agent } = &line.stage else {
                continue;
            };
            let pick = if agent.is_empty() {
                // A guaranteed-agent redial: any ready agent not promised elsewhere.
                ready.iter().find(|a| !taken.contains(a)).cloned()
            } else if ready.contains(agent) && !taken.contains(agent) {
                Some(agent.clone())
            } else {
                None
            };
            let agent = match pick {
                Some(a) => {
                    taken.push(a.clone());
                    Some(a)
                }
                None if !agent.is_empty() && secs - since >= c.def.callback_wait_s as i64 => None,
                None => continue,
            };
            let request = call_request(&c.def, line.lead, *attempt, line, agent);
            line.reserved = request.agent.clone();
            out.push((*attempt, request));
            line.stage = Stage::Placing;
            line.placed_at = secs;
        }
        for (attempt, call) in out {
            self.orders.push_back(Order::Originate {
                campaign: campaign.to_string(),
                attempt,
                call,
            });
        }
    }

    /// The answer to [`Order::Originate`]: the call engine created `call`.
    pub fn placed(&mut self, campaign: &str, attempt: i64, call: &str) {
        if let Some(line) = self
            .campaigns
            .get_mut(campaign)
            .and_then(|c| c.lines.get_mut(&attempt))
        {
            line.stage = Stage::Dialing {
                call: call.to_string(),
            };
            self.calls
                .insert(call.to_string(), (campaign.to_string(), attempt));
        }
    }

    /// The answer to [`Order::Originate`]: the call engine refused it (`reason` for the
    /// record). The attempt ends `failed` and its retry rule applies.
    pub fn place_failed(&mut self, now: DateTime<Utc>, campaign: &str, attempt: i64, reason: &str) {
        let Some(line) = self
            .campaigns
            .get_mut(campaign)
            .and_then(|c| c.lines.remove(&attempt))
        else {
            return;
        };
        let def = &self.campaigns[campaign].def;
        let next = retry_next(
            def,
            line.attempt_no,
            AttemptOutcome::Failed,
            now.timestamp(),
        );
        let finish = Finish {
            outcome: AttemptOutcome::Failed,
            call_outcome: Some(format!("refused: {reason}")),
            answered: false,
            agent: None,
            next,
        };
        self.finish_line(campaign, attempt, line, finish, None);
    }

    /// The answer to [`Order::CountRemaining`]: leads that can still be dialled (new,
    /// retry, callback, dialing). None left, no line in flight and no bridged call in its
    /// wrap-up still waiting for a disposition (which may send its lead back to be
    /// dialled): the campaign is finished.
    pub fn remaining(&mut self, campaign: &str, dialable: u64) {
        let in_wrap_up = self
            .ended
            .values()
            .any(|e| e.campaign == campaign && e.bridged && !e.disposed);
        let Some(c) = self.campaigns.get_mut(campaign) else {
            return;
        };
        c.counting = false;
        if dialable == 0 && c.lines.is_empty() && !in_wrap_up && c.state == CampaignState::Running {
            c.state = CampaignState::Finished;
            self.save_state(campaign, CampaignState::Finished);
        }
    }

    /// A campaign call's customer answered.
    pub fn call_answered(&mut self, now: DateTime<Utc>, call: &str) {
        let secs = now.timestamp();
        if let Some((line, pacer)) = self.line_mut(call) {
            if matches!(line.stage, Stage::Placing | Stage::Dialing { .. }) {
                pacer.model.answered((secs - line.placed_at) as f64);
            }
            line.stage = Stage::Answered {
                call: call.to_string(),
                at: secs,
            };
        }
    }

    /// A campaign call was bridged to `agent`.
    pub fn call_bridged(&mut self, now: DateTime<Utc>, call: &str, agent: &str) {
        let secs = now.timestamp();
        self.wrap_ups.remove(agent);
        if let Some((line, _)) = self.line_mut(call) {
            let answered = match line.stage {
                Stage::Answered { at, .. } => at,
                _ => secs,
            };
            line.stage = Stage::Bridged {
                call: call.to_string(),
                agent: agent.to_string(),
                since: secs,
                answered,
            };
        }
    }

    fn line_mut(&mut self, call: &str) -> Option<(&mut Line, &mut Pacer)> {
        let (campaign, attempt) = self.calls.get(call)?;
        let c = self.campaigns.get_mut(campaign)?;
        Some((c.lines.get_mut(attempt)?, &mut c.pacer))
    }

    /// What a campaign's pacer learns from the end of one of its calls; the answer time
    /// of an answered one.
    fn learn_from_end(
        &mut self,
        secs: i64,
        campaign: &str,
        line: &Line,
        answered: bool,
        bridged: bool,
    ) -> Option<i64> {
        let c = self.campaigns.get_mut(campaign)?;
        let answered_at = match &line.stage {
            Stage::Held { .. } => return None,
            Stage::Placing | Stage::Dialing { .. } if !answered => {
                c.pacer.model.unanswered((secs - line.placed_at) as f64);
                return None;
            }
            Stage::Placing | Stage::Dialing { .. } => secs,
            Stage::Answered { at, .. } => *at,
            Stage::Bridged {
                since,
                answered,
                agent,
                ..
            } => {
                c.pacer.model.talked((secs - since) as f64);
                self.wrap_ups
                    .insert(agent.clone(), (campaign.to_string(), secs));
                *answered
            }
        };
        c.pacer.count(answered_at, bridged);
        if line.machine {
            c.pacer.machine(answered_at);
        }
        Some(answered_at)
    }

    /// Is `call` a campaign call in flight?
    pub fn owns_call(&self, call: &str) -> bool {
        self.calls.contains_key(call)
    }

    /// A campaign call ended with the call engine's `outcome` (its CDR spelling).
    pub fn call_ended(
        &mut self,
        now: DateTime<Utc>,
        call: &str,
        outcome: &str,
        answered: bool,
        agent: Option<&str>,
    ) {
        let Some((campaign, attempt)) = self.calls.remove(call) else {
            return;
        };
        let Some(c) = self.campaigns.get_mut(&campaign) else {
            return;
        };
        let Some(line) = c.lines.remove(&attempt) else {
            return;
        };
        let secs = now.timestamp();
        let class = AttemptOutcome::from_call_outcome(outcome, answered);
        let bridged = class == AttemptOutcome::Bridged;
        let answered_at = self.learn_from_end(secs, &campaign, &line, answered, bridged);
        let Some(c) = self.campaigns.get_mut(&campaign) else {
            return;
        };
        let agent = agent.map(str::to_string).or_else(|| match &line.stage {
            Stage::Bridged { agent, .. } => Some(agent.clone()),
            _ => None,
        });
        let (next, dnc_list) = match (&line.disposition, bridged) {
            (
                Some(Pending {
                    retry_s: Some(delay),
                    ..
                }),
                _,
            ) => (LeadNext::Retry { at: secs + delay }, None),
            (Some(p), _) => (p.next.clone(), p.dnc_list.clone()),
            (None, true) => (LeadNext::Done, None),
            (None, false) => (retry_next(&c.def, line.attempt_no, class, secs), None),
        };
        let wrap_up = self
            .pools
            .get(&c.def.pool)
            .map_or(0, |p| p.wrap_up_s as i64);
        self.ended.insert(
            call.to_string(),
            Ended {
                campaign: campaign.clone(),
                attempt,
                attempt_no: line.attempt_no,
                agent: agent.clone(),
                bridged,
                disposed: line.disposition.is_some(),
                answered_at,
                machine: line.machine,
                default_at: secs + wrap_up,
                until: secs + DISPOSITION_GRACE_S,
            },
        );
        let finish = Finish {
            outcome: class,
            call_outcome: Some(outcome.to_string()),
            answered,
            agent,
            next,
        };
        self.finish_line(&campaign, attempt, line, finish, dnc_list);
    }

    fn finish_line(
        &mut self,
        campaign: &str,
        attempt: i64,
        line: Line,
        finish: Finish,
        dnc_list: Option<String>,
    ) {
        let dnc_list = match (&finish.next, dnc_list) {
            (LeadNext::Dnc, None) if finish.outcome != AttemptOutcome::Dnc => {
                Some(self.dnc_list_of(campaign))
            }
            (_, l) => l,
        };
        self.orders
            .push_back(Order::Event(CampaignEvent::AttemptEnded {
                campaign: campaign.to_string(),
                attempt,
                lead: line.lead,
                number: line.number,
                outcome: finish.outcome,
                call_outcome: finish.call_outcome.clone(),
                lead_state: finish.next.state().as_str(),
                next_at: finish.next.due(),
            }));
        self.orders.push_back(Order::FinishAttempt {
            campaign: campaign.to_string(),
            attempt,
            finish,
            dnc_list,
        });
    }

    fn dnc_list_of(&self, campaign: &str) -> String {
        self.campaigns
            .get(campaign)
            .and_then(|c| c.def.dnc.first().cloned())
            .unwrap_or_else(|| DEFAULT_DNC_LIST.to_string())
    }

    /// An agent's disposition of `call`: during the call it decides the lead's state when
    /// the call ends; after it, it replaces the state the end gave. `callback_at` is Unix
    /// seconds.
    pub fn disposition(
        &mut self,
        now: DateTime<Utc>,
        call: &str,
        code: &str,
        callback_at: Option<i64>,
        note: Option<String>,
    ) -> Result<(), EngineError> {
        let secs = now.timestamp();
        let (campaign, attempt, attempt_no, agent) =
            if let Some((campaign, attempt)) = self.calls.get(call) {
                let line = &self.campaigns[campaign].lines[attempt];
                let agent = match &line.stage {
                    Stage::Bridged { agent, .. } => Some(agent.clone()),
                    _ => None,
                };
                (campaign.clone(), *attempt, line.attempt_no, agent)
            } else if let Some(e) = self.ended.get(call) {
                (e.campaign.clone(), e.attempt, e.attempt_no, e.agent.clone())
            } else {
                return Err(EngineError::NotACampaignCall(call.to_string()));
            };
        let def = &self.campaigns[&campaign].def;
        let Some(d) = def.disposition(code) else {
            return Err(EngineError::UnknownDisposition {
                code: code.to_string(),
                known: def
                    .dispositions
                    .iter()
                    .map(|d| d.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let machine = d.machine;
        let mut retry_s = None;
        let next = match d.action {
            DispositionAction::Final => LeadNext::Done,
            DispositionAction::Dnc => LeadNext::Dnc,
            DispositionAction::Retry => {
                let delay = d.retry_s.or(def.retry.no_answer_s).unwrap_or(3600) as i64;
                if attempt_no >= def.max_attempts {
                    LeadNext::Failed
                } else {
                    retry_s = Some(delay);
                    LeadNext::Retry { at: secs + delay }
                }
            }
            DispositionAction::Callback => match callback_at {
                Some(at) if at > secs => LeadNext::Callback {
                    at,
                    agent: agent.filter(|_| def.callback_to_agent),
                },
                _ => return Err(EngineError::CallbackTime),
            },
        };
        let dnc_list = (next == LeadNext::Dnc).then(|| self.dnc_list_of(&campaign));
        if let Some((campaign, attempt)) = self.calls.get(call) {
            let line = self
                .campaigns
                .get_mut(campaign)
                .and_then(|c| c.lines.get_mut(attempt));
            if let Some(line) = line {
                line.machine |= machine;
                line.disposition = Some(Pending {
                    next: next.clone(),
                    dnc_list: dnc_list.clone(),
                    retry_s,
                });
            }
            // Recorded now; the lead moves when the call ends.
            self.orders.push_back(Order::Disposition {
                attempt: *attempt,
                code: code.to_string(),
                note,
                next: None,
                dnc_list: None,
            });
        } else {
            if let Some(e) = self.ended.get_mut(call) {
                e.disposed = true;
                if let (true, false, Some(at)) = (machine, e.machine, e.answered_at) {
                    e.machine = true;
                    if let Some(c) = self.campaigns.get_mut(&campaign) {
                        c.pacer.machine(at);
                    }
                }
            }
            if matches!(next, LeadNext::Retry { .. } | LeadNext::Callback { .. }) {
                self.reopen(secs, &campaign);
            }
            self.orders.push_back(Order::Disposition {
                attempt,
                code: code.to_string(),
                note,
                next: Some(next),
                dnc_list,
            });
        }
        Ok(())
    }

    /// A lead of `campaign` is to be dialled again after its call: its group may have left
    /// the loaded ones (the store lists only groups with leads left to dial), and a campaign
    /// that finished meanwhile has work again.
    fn reopen(&mut self, secs: i64, campaign: &str) {
        let Some(c) = self.campaigns.get_mut(campaign) else {
            return;
        };
        c.groups_due = c.groups_due.min(secs);
        if c.state == CampaignState::Finished {
            c.state = CampaignState::Running;
            self.save_state(campaign, CampaignState::Running);
        }
    }

    /// Bridged calls that ended without a disposition get the campaign's default once the
    /// agent's wrap-up is over.
    fn default_dispositions(&mut self, secs: i64) {
        let due: Vec<String> = self
            .ended
            .iter()
            .filter(|(_, e)| e.bridged && !e.disposed && e.default_at <= secs)
            .map(|(call, _)| call.clone())
            .collect();
        for call in due {
            let Some(e) = self.ended.get_mut(&call) else {
                continue;
            };
            e.disposed = true;
            let campaign = e.campaign.clone();
            let attempt = e.attempt;
            let code = self
                .campaigns
                .get(&campaign)
                .and_then(|c| c.def.default_disposition.clone());
            if let Some(code) = code {
                // The default may itself be a callback; it has no time, so it falls back
                // to recording the code only.
                let at = Some(secs + 3600);
                if self
                    .disposition(
                        DateTime::from_timestamp(secs, 0).unwrap_or_default(),
                        &call,
                        &code,
                        at,
                        None,
                    )
                    .is_err()
                {
                    self.orders.push_back(Order::Disposition {
                        attempt,
                        code,
                        note: None,
                        next: None,
                        dnc_list: None,
                    });
                }
            }
        }
        self.ended.retain(|_, e| e.until > secs);
    }

    /// Attempts the store found open at start (the dialer stopped during them): each ends
    /// `interrupted`, and its retry rule applies.
    pub fn recover(
        &mut self,
        now: DateTime<Utc>,
        campaign: &str,
        attempt: i64,
        lead: i64,
        number: &str,
        attempt_no: u32,
    ) {
        let secs = now.timestamp();
        let next = match self.campaigns.get(campaign) {
            Some(c) => retry_next(&c.def, attempt_no, AttemptOutcome::Interrupted, secs),
            // The campaign's definition is gone: retry at once so nothing is lost.
            None => LeadNext::Retry { at: secs },
        };
        let line = Line {
            lead,
            number: number.to_string(),
            attempt_no,
            fields: Vec::new(),
            last_outcome: None,
            stage: Stage::Placing,
            placed_at: now.timestamp(),
            reserved: None,
            disposition: None,
            machine: false,
        };
        let finish = Finish {
            outcome: AttemptOutcome::Interrupted,
            call_outcome: None,
            answered: false,
            agent: None,
            next,
        };
        self.finish_line(campaign, attempt, line, finish, None);
    }

    /// The next order for the runtime.
    pub fn poll_order(&mut self) -> Option<Order> {
        self.orders.pop_front()
    }

    /// Call ids of the lines in flight of `campaign` (for status).
    pub fn calls_of(&self, campaign: &str) -> Vec<String> {
        self.campaigns.get(campaign).map_or(Vec::new(), |c| {
            c.lines
                .values()
                .filter_map(|l| l.stage.call().map(str::to_string))
                .collect()
        })
    }
}

/// The lead's next state after an attempt that did not reach an agent, by the campaign's
/// retry rules under its one `max_attempts` cap.
pub fn retry_next(
    def: &CampaignDef,
    attempt_no: u32,
    outcome: AttemptOutcome,
    now: i64,
) -> LeadNext {
    let delay = match outcome {
        AttemptOutcome::Bridged => return LeadNext::Done,
        AttemptOutcome::Dnc => return LeadNext::Dnc,
        AttemptOutcome::Busy => def.retry.busy_s,
        AttemptOutcome::NoAnswer => def.retry.no_answer_s,
        AttemptOutcome::Failed => def.retry.failed_s,
        AttemptOutcome::Abandoned => def.retry.abandoned_s,
        AttemptOutcome::Interrupted => def.retry.interrupted_s,
    };
    match delay {
        // One cap per lead, whatever rule the attempts came through.
        Some(_) if attempt_no >= def.max_attempts => LeadNext::Failed,
        Some(d) => LeadNext::Retry { at: now + d as i64 },
        None => LeadNext::Failed,
    }
}

fn call_request(
    def: &CampaignDef,
    lead: i64,
    attempt: i64,
    line: &Line,
    agent: Option<String>,
) -> CallRequest {
    let mut headers = vec![
        ("X-Campaign".to_string(), def.name.clone()),
        ("X-Lead-Id".to_string(), lead.to_string()),
    ];
    for (name, value) in line.fields.iter().take(MAX_LEAD_HEADERS) {
        let token: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let value: String = value
            .chars()
            .filter(|c| !c.is_control())
            .take(crate::engine::MAX_HEADER_VALUE)
            .collect();
        if !token.is_empty() && !value.is_empty() {
            headers.push((format!("X-Lead-{token}"), value));
        }
    }
    CallRequest {
        number: line.number.clone(),
        pool: def.pool.clone(),
        agent,
        trunk: def.trunk.clone(),
        caller_id: def.caller_id.clone(),
        ring_timeout_s: def.ring_timeout_s,
        tag: format!("{}/{lead}/{attempt}", def.name),
        agent_headers: headers,
        record: def
            .record
            .then(|| format!("{}-{lead}-{attempt}.wav", def.name)),
    }
}

/// Longest lead field value sent in a header (the call engine's limit).
pub const MAX_HEADER_VALUE: usize = 256;

/// A campaign's drop-rate group, when its pacing is predictive and names one.
fn drop_group(def: &CampaignDef) -> Option<&str> {
    match &def.pacing {
        Pacing::Predictive(p) => p.drop_group.as_deref(),
        _ => None,
    }
}
