//! Agent states and pools: who is logged in, who is free, and which agent takes the next
//! answered customer. Plain data in virtual time, owned by the [`super::Core`].
//!
//! An agent moves `logged_out -> ready -> reserved -> ringing -> talking -> wrap_up -> ready`,
//! and `paused` (with a reason) on request, after too many unanswered offers, or at login when
//! its pool says so. Each state carries what it waits for (the call it is reserved for, the end
//! of its wrap-up), so no field can disagree with the state. Every change is queued as an
//! [`AgentChange`] for the `agent_state` event.

use super::AgentTarget;
use crate::control::CallId;
use serde::{Deserialize, Serialize};
use sip_core::time::Time;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

/// How a pool picks among its ready agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// The agent ready for the longest time (since registration, end of wrap-up, or unpause).
    LongestIdle,
    /// The agent that took the fewest calls, longest idle among equals.
    FewestCalls,
}

/// How a pool's agents take customers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AgentMode {
    /// Each customer rings the agent's phone.
    #[default]
    Ring,
    /// The agent's phone is called once at login and that dialog stays up for the shift;
    /// each customer is switched onto it.
    Session,
}

/// A pool of agents, as the core uses it.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// Name (`"pool": "sales"`).
    pub name: String,
    /// Member extensions.
    pub agents: Vec<String>,
    /// How the agent is chosen.
    pub strategy: Strategy,
    /// Time in `wrap_up` after each call.
    pub wrap_up: Duration,
    /// Offers in a row an agent may leave unanswered (or reject) before it is paused
    /// (`no_answer`).
    pub max_no_answer: u32,
    /// Agents tried for one answered customer.
    pub agent_attempts: u32,
    /// An answered customer not bridged by then hears the abandon message and is hung up.
    pub abandon_after: Duration,
    /// The abandon message (WAV); without one the customer is hung up at once.
    pub abandon_message: Option<PathBuf>,
    /// An agent that registers starts `paused` (reason `login`).
    pub login_paused: bool,
    /// Ring or session.
    pub mode: AgentMode,
    /// Session mode: the RFC 4733 event code (0-15) with which the agent ends the customer
    /// call and stays logged in.
    pub hangup_key: Option<u8>,
    /// Session mode: a WAV played to the agent when a customer is switched on.
    pub connect_tone: Option<PathBuf>,
    /// Session mode: a WAV looped to the agent between customers (silence without one).
    pub idle_audio: Option<PathBuf>,
}

/// The states of `GET /agents` and the `agent_state` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Not registered, or unreachable.
    LoggedOut,
    /// Free for the next customer.
    Ready,
    /// Chosen for a call; its INVITE not yet ringing.
    Reserved,
    /// Its phone rings.
    Ringing,
    /// Bridged to a customer.
    Talking,
    /// After a call, for the pool's `wrap_up_s`.
    WrapUp,
    /// Not taking calls, with a reason.
    Paused,
}

impl AgentState {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Ready => "ready",
            AgentState::Reserved => "reserved",
            AgentState::Ringing => "ringing",
            AgentState::Talking => "talking",
            AgentState::WrapUp => "wrap_up",
            AgentState::Paused => "paused",
        }
    }
}

/// A state with what it waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    LoggedOut,
    Ready,
    Reserved { call: CallId },
    Ringing { call: CallId },
    Talking { call: CallId },
    WrapUp { until: Time },
    Paused { reason: String },
}

impl Status {
    fn state(&self) -> AgentState {
        match self {
            Status::LoggedOut => AgentState::LoggedOut,
            Status::Ready => AgentState::Ready,
            Status::Reserved { .. } => AgentState::Reserved,
            Status::Ringing { .. } => AgentState::Ringing,
            Status::Talking { .. } => AgentState::Talking,
            Status::WrapUp { .. } => AgentState::WrapUp,
            Status::Paused { .. } => AgentState::Paused,
        }
    }

    fn call(&self) -> Option<CallId> {
        match self {
            Status::Reserved { call } | Status::Ringing { call } | Status::Talking { call } => {
                Some(*call)
            }
            _ => None,
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Status::Paused { reason } => Some(reason),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Agent {
    status: Status,
    /// When `status` began.
    since: Time,
    /// When the agent last became ready (the longest-idle order).
    ready_since: Time,
    calls_taken: u64,
    /// Offers in a row not answered.
    unanswered: u32,
    /// Where to call it; `None` while not registered.
    target: Option<AgentTarget>,
    /// A pause asked for during a call, taken when the call is over.
    pause_after_call: Option<String>,
    /// The agent's session (session mode): logged in while it lasts, whatever the
    /// registration does.
    session: Option<CallId>,
}

impl Agent {
    fn logged_out() -> Agent {
        Agent {
            status: Status::LoggedOut,
            since: Time::ZERO,
            ready_since: Time::ZERO,
            calls_taken: 0,
            unanswered: 0,
            target: None,
            pause_after_call: None,
            session: None,
        }
    }
}

/// One agent as `GET /agents` shows its state.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentStatusInfo {
    /// Extension.
    pub extension: String,
    /// State.
    pub state: AgentState,
    /// Why it is paused.
    pub reason: Option<String>,
    /// When the state began.
    pub since: Time,
    /// Calls bridged to it since the dialer started.
    pub calls_taken: u64,
    /// The call it is reserved for, rings for, or talks on.
    pub call: Option<CallId>,
    /// The pools it belongs to.
    pub pools: Vec<String>,
}

/// A state change, for the `agent_state` event.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentChange {
    /// Extension.
    pub extension: String,
    /// The new state.
    pub state: AgentState,
    /// Why (paused), if any.
    pub reason: Option<String>,
    /// The call, when the state has one.
    pub call: Option<CallId>,
    /// When.
    pub at: Time,
}

/// Why a reserved or ringing agent is let go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Its phone did not answer in time, or answered with a refusal (busy, decline, 3xx):
    /// counts towards `max_no_answer`.
    NotAnswered,
    /// The call did not need it any more (the customer hung up, the call failed first).
    Unused,
    /// It talked, and the call is over: wrap-up follows.
    CallEnded {
        /// The pool's wrap-up time.
        wrap_up: Duration,
    },
}

/// Why an agent request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// No agent with this extension is configured.
    #[error("no agent {0}")]
    Unknown(String),
    /// The agent is not registered.
    #[error("agent {0} is not logged in")]
    LoggedOut(String),
    /// The agent is on a call.
    #[error("agent {0} is busy")]
    Busy(String),
}

/// Every agent's state, and the pools.
#[derive(Debug, Default)]
pub struct AgentBoard {
    agents: BTreeMap<String, Agent>,
    pools: Vec<PoolSettings>,
    changes: VecDeque<AgentChange>,
    /// Agents that became ready since last asked (waiting customers may take them).
    newly_ready: Vec<String>,
    /// Ends of wrap-up, earliest first (entries whose agent moved on are skipped).
    wrap_ups: BinaryHeap<Reverse<(Time, String)>>,
}

impl AgentBoard {
    /// A board for these extensions (all logged out) and pools.
    pub fn new(extensions: impl IntoIterator<Item = String>, pools: Vec<PoolSettings>) -> Self {
        let agents = extensions
            .into_iter()
            .map(|e| (e, Agent::logged_out()))
            .collect();
        AgentBoard {
            agents,
            pools,
            ..AgentBoard::default()
        }
    }

    /// The pools.
    pub fn pools(&self) -> &[PoolSettings] {
        &self.pools
    }

    /// A pool's index by name.
    pub fn pool_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| p.name == name)
    }

    /// Whether the extension is configured.
    pub fn knows(&self, extension: &str) -> bool {
        self.agents.contains_key(extension)
    }

    fn set(&mut self, now: Time, extension: &str, status: Status) {
        let Some(a) = self.agents.get_mut(extension) else {
            return;
        };
        if a.status == status {
            return;
        }
        if status == Status::Ready {
            a.ready_since = now;
            self.newly_ready.push(extension.to_owned());
        }
        if let Status::WrapUp { until } = status {
            self.wrap_ups.push(Reverse((until, extension.to_owned())));
        }
        self.changes.push_back(AgentChange {
            extension: extension.to_owned(),
            state: status.state(),
            reason: status.reason().map(str::to_owned),
            call: status.call(),
            at: now,
        });
        a.status = status;
        a.since = now;
    }

    /// The agent can be called at `target` (registered, refreshed, or a static contact). An
    /// extension the board did not know joins it.
    pub fn reachable(&mut self, now: Time, extension: &str, target: AgentTarget) {
        let member = |p: &&PoolSettings| p.agents.iter().any(|a| a == extension);
        let login_paused = self.pools.iter().filter(member).any(|p| p.login_paused);
        // An agent only of session-mode pools is logged in by its session, not by registering.
        let session_only = {
            let mut pools = self.pools.iter().filter(member).peekable();
            pools.peek().is_some() && pools.all(|p| p.mode == AgentMode::Session)
        };
        let a = self
            .agents
            .entry(extension.to_owned())
            .or_insert_with(Agent::logged_out);
        a.target = Some(target);
        if a.status == Status::LoggedOut && !session_only {
            let next = if login_paused {
                Status::Paused {
                    reason: "login".into(),
                }
            } else {
                Status::Ready
            };
            self.set(now, extension, next);
        }
    }

    /// The agent's registration expired or was removed. An agent on a call finishes it
    /// and is logged out when it is released.
    pub fn unreachable(&mut self, now: Time, extension: &str) {
        let Some(a) = self.agents.get_mut(extension) else {
            return;
        };
        a.target = None;
        if a.status.call().is_none() && a.session.is_none() {
            self.set(now, extension, Status::LoggedOut);
        }
    }

    /// A session agent is being logged in: its phone is called for `session`.
    pub fn logging_in(
        &mut self,
        now: Time,
        extension: &str,
        session: CallId,
    ) -> Result<(), AgentError> {
        let a = self
            .agents
            .get(extension)
            .ok_or_else(|| AgentError::Unknown(extension.to_owned()))?;
        if a.target.is_none() {
            return Err(AgentError::LoggedOut(extension.to_owned()));
        }
        if a.status.call().is_some() || a.session.is_some() {
            return Err(AgentError::Busy(extension.to_owned()));
        }
        self.set(now, extension, Status::Reserved { call: session });
        Ok(())
    }

    /// The agent's session is up: it is ready for the pool's customers.
    pub fn session_up(&mut self, now: Time, extension: &str, session: CallId) {
        let Some(a) = self.agents.get_mut(extension) else {
            return;
        };
        a.session = Some(session);
        a.unanswered = 0;
        let next = match a.pause_after_call.take() {
            Some(reason) => Status::Paused { reason },
            None => Status::Ready,
        };
        self.set(now, extension, next);
    }

    /// The agent's session ended (its BYE, a failure, a logout): the shift is over.
    pub fn session_down(&mut self, now: Time, extension: &str) {
        let Some(a) = self.agents.get_mut(extension) else {
            return;
        };
        a.session = None;
        a.pause_after_call = None;
        self.set(now, extension, Status::LoggedOut);
    }

    /// The agent's session, if it has one.
    pub fn session(&self, extension: &str) -> Option<CallId> {
        self.agents.get(extension)?.session
    }

    /// Where to call the agent, when it is reachable.
    pub fn target(&self, extension: &str) -> Option<&AgentTarget> {
        self.agents.get(extension)?.target.as_ref()
    }

    /// The agent's state.
    pub fn state(&self, extension: &str) -> Option<AgentState> {
        Some(self.agents.get(extension)?.status.state())
    }

    /// Pauses an agent; one on a call is paused when the call is over.
    pub fn pause(&mut self, now: Time, extension: &str, reason: &str) -> Result<(), AgentError> {
        let a = self
            .agents
            .get_mut(extension)
            .ok_or_else(|| AgentError::Unknown(extension.to_owned()))?;
        match a.status {
            Status::LoggedOut => Err(AgentError::LoggedOut(extension.to_owned())),
            Status::Reserved { .. } | Status::Ringing { .. } | Status::Talking { .. } => {
                a.pause_after_call = Some(reason.to_owned());
                Ok(())
            }
            _ => {
                let reason = reason.to_owned();
                self.set(now, extension, Status::Paused { reason });
                Ok(())
            }
        }
    }

    /// Makes a paused (or wrapping-up) agent ready; one on a call drops a pending pause.
    pub fn ready(&mut self, now: Time, extension: &str) -> Result<(), AgentError> {
        let a = self
            .agents
            .get_mut(extension)
            .ok_or_else(|| AgentError::Unknown(extension.to_owned()))?;
        a.unanswered = 0;
        match a.status {
            Status::LoggedOut => Err(AgentError::LoggedOut(extension.to_owned())),
            Status::Reserved { .. } | Status::Ringing { .. } | Status::Talking { .. } => {
                a.pause_after_call = None;
                Ok(())
            }
            _ => {
                self.set(now, extension, Status::Ready);
                Ok(())
            }
        }
    }

    /// The best ready agent of a pool, leaving out `tried`.
    pub fn choose(&self, pool: usize, tried: &[String]) -> Option<String> {
        let p = self.pools.get(pool)?;
        let session_mode = p.mode == AgentMode::Session;
        let candidates = p.agents.iter().filter_map(|e| {
            let a = self.agents.get(e)?;
            // A session agent takes customers only through its session; its phone is never
            // rung for a ring-mode pool meanwhile.
            let reachable = if session_mode {
                a.session.is_some()
            } else {
                a.session.is_none() && a.target.is_some()
            };
            (a.status == Status::Ready && reachable && !tried.contains(e)).then_some((e, a))
        });
        let best = match p.strategy {
            Strategy::LongestIdle => candidates.min_by_key(|(e, a)| (a.ready_since, *e)),
            Strategy::FewestCalls => {
                candidates.min_by_key(|(e, a)| (a.calls_taken, a.ready_since, *e))
            }
        };
        best.map(|(e, _)| e.clone())
    }

    /// Whether any member of the pool is logged in.
    pub fn pool_has_agents(&self, pool: usize) -> bool {
        self.pools.get(pool).is_some_and(|p| {
            p.agents.iter().any(|e| {
                self.agents.get(e).is_some_and(|a| match p.mode {
                    AgentMode::Session => a.session.is_some(),
                    AgentMode::Ring => a.status != Status::LoggedOut,
                })
            })
        })
    }

    /// Reserves an agent for a call: a pool's ready agent, or one named by the call (which
    /// may be paused or wrapping up: the operator asked for it). A pause it had comes back
    /// after the call.
    pub fn reserve(&mut self, now: Time, extension: &str, call: CallId) -> Result<(), AgentError> {
        let a = self
            .agents
            .get_mut(extension)
            .ok_or_else(|| AgentError::Unknown(extension.to_owned()))?;
        if a.target.is_none() && a.session.is_none() {
            return Err(AgentError::LoggedOut(extension.to_owned()));
        }
        match &a.status {
            Status::LoggedOut => return Err(AgentError::LoggedOut(extension.to_owned())),
            Status::Reserved { .. } | Status::Ringing { .. } | Status::Talking { .. } => {
                return Err(AgentError::Busy(extension.to_owned()))
            }
            Status::Paused { reason } => a.pause_after_call = Some(reason.clone()),
            _ => {}
        }
        self.set(now, extension, Status::Reserved { call });
        Ok(())
    }

    /// The agent's phone rings for the call.
    pub fn ringing(&mut self, now: Time, extension: &str, call: CallId) {
        if self.call_of(extension) == Some(call) {
            self.set(now, extension, Status::Ringing { call });
        }
    }

    /// The agent answered: it talks on the call.
    pub fn talking(&mut self, now: Time, extension: &str, call: CallId) {
        if self.call_of(extension) != Some(call) {
            return;
        }
        if let Some(a) = self.agents.get_mut(extension) {
            a.calls_taken += 1;
            a.unanswered = 0;
        }
        self.set(now, extension, Status::Talking { call });
    }

    fn call_of(&self, extension: &str) -> Option<CallId> {
        self.agents.get(extension)?.status.call()
    }

    /// Lets the agent of a call go. `max_no_answer` is the call's pool's (0: never pause).
    pub fn release(
        &mut self,
        now: Time,
        extension: &str,
        call: CallId,
        why: Release,
        max_no_answer: u32,
    ) {
        if self.call_of(extension) != Some(call) {
            return;
        }
        let Some(a) = self.agents.get_mut(extension) else {
            return;
        };
        if why == Release::NotAnswered {
            a.unanswered += 1;
        }
        let next = if a.target.is_none() && a.session.is_none() {
            Status::LoggedOut
        } else if why == Release::NotAnswered && max_no_answer > 0 && a.unanswered >= max_no_answer
        {
            a.pause_after_call = None;
            Status::Paused {
                reason: "no_answer".into(),
            }
        } else {
            match why {
                Release::CallEnded { wrap_up } if !wrap_up.is_zero() => Status::WrapUp {
                    until: now + wrap_up,
                },
                _ => match a.pause_after_call.take() {
                    Some(reason) => Status::Paused { reason },
                    None => Status::Ready,
                },
            }
        };
        self.set(now, extension, next);
    }

    /// When the next wrap-up ends.
    pub fn next_timeout(&self) -> Option<Time> {
        self.wrap_ups.peek().map(|Reverse((t, _))| *t)
    }

    /// Ends the wrap-ups due by `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(Reverse((at, _))) = self.wrap_ups.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, extension))) = self.wrap_ups.pop() else {
                break;
            };
            let Some(a) = self.agents.get_mut(&extension) else {
                continue;
            };
            if a.status != (Status::WrapUp { until: at }) {
                continue;
            }
            let next = match a.pause_after_call.take() {
                Some(reason) => Status::Paused { reason },
                None => Status::Ready,
            };
            self.set(now, &extension, next);
        }
    }

    /// The agents that became ready since the last call, oldest first.
    pub fn take_newly_ready(&mut self) -> Vec<String> {
        std::mem::take(&mut self.newly_ready)
    }

    /// The next state change.
    pub fn poll_change(&mut self) -> Option<AgentChange> {
        self.changes.pop_front()
    }

    /// Every agent's state, by extension.
    pub fn list(&self) -> Vec<AgentStatusInfo> {
        self.agents
            .iter()
            .map(|(e, a)| AgentStatusInfo {
                extension: e.clone(),
                state: a.status.state(),
                reason: a.status.reason().map(str::to_owned),
                since: a.since,
                calls_taken: a.calls_taken,
                call: a.status.call(),
                pools: self
                    .pools
                    .iter()
                    .filter(|p| p.agents.contains(e))
                    .map(|p| p.name.clone())
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_core::message::Uri;
    use sip_core::transaction::Transport;

    fn target(ext: &str) -> AgentTarget {
        AgentTarget {
            uri: Uri::parse(&format!("sip:{ext}@10.0.0.5")).unwrap(),
            destination: "10.0.0.5:5060".parse().unwrap(),
            transport: Transport::Udp,
            codecs: vec![],
        }
    }

    fn pool(strategy: Strategy) -> PoolSettings {
        PoolSettings {
            name: "sales".into(),
            agents: vec!["1000".into(), "1001".into(), "1002".into()],
            strategy,
            wrap_up: Duration::from_secs(5),
            max_no_answer: 3,
            agent_attempts: 2,
            abandon_after: Duration::from_secs(2),
            abandon_message: None,
            login_paused: false,
            mode: AgentMode::Ring,
            hangup_key: None,
            connect_tone: None,
            idle_audio: None,
        }
    }

    fn at(s: u64) -> Time {
        Time(Duration::from_secs(s))
    }

    fn board(strategy: Strategy) -> AgentBoard {
        let mut b = AgentBoard::new(
            ["1000", "1001", "1002"].map(String::from),
            vec![pool(strategy)],
        );
        for (i, e) in ["1001", "1000", "1002"].into_iter().enumerate() {
            b.reachable(at(i as u64), e, target(e));
        }
        b
    }

    #[test]
    fn registering_makes_an_agent_ready_and_expiry_logs_it_out() {
        let mut b = AgentBoard::new(["1000".to_owned()], vec![pool(Strategy::LongestIdle)]);
        assert_eq!(b.state("1000"), Some(AgentState::LoggedOut));
        b.reachable(at(1), "1000", target("1000"));
        assert_eq!(b.state("1000"), Some(AgentState::Ready));
        b.unreachable(at(2), "1000");
        assert_eq!(b.state("1000"), Some(AgentState::LoggedOut));
        let states: Vec<_> = std::iter::from_fn(|| b.poll_change())
            .map(|c| c.state)
            .collect();
        assert_eq!(states, [AgentState::Ready, AgentState::LoggedOut]);
    }

    #[test]
    fn a_login_paused_pool_starts_its_agents_paused_with_reason_login() {
        let mut p = pool(Strategy::LongestIdle);
        p.login_paused = true;
        let mut b = AgentBoard::new(["1000".to_owned()], vec![p]);
        b.reachable(at(1), "1000", target("1000"));
        let info = &b.list()[0];
        assert_eq!(info.state, AgentState::Paused);
        assert_eq!(info.reason.as_deref(), Some("login"));
        assert_eq!(b.choose(0, &[]), None);
    }

    #[test]
    fn longest_idle_picks_the_agent_ready_first_and_skips_those_tried() {
        let b = board(Strategy::LongestIdle);
        assert_eq!(b.choose(0, &[]).as_deref(), Some("1001"));
        assert_eq!(b.choose(0, &["1001".into()]).as_deref(), Some("1000"));
        assert_eq!(
            b.choose(0, &["1001".into(), "1000".into(), "1002".into()]),
            None
        );
    }

    #[test]
    fn fewest_calls_picks_the_agent_with_fewest_calls() {
        let mut b = board(Strategy::FewestCalls);
        for (i, e) in ["1001", "1000"].into_iter().enumerate() {
            let call = CallId(i as u64 + 1);
            b.reserve(at(10), e, call).unwrap();
            b.talking(at(11), e, call);
            b.release(
                at(12),
                e,
                call,
                Release::CallEnded {
                    wrap_up: Duration::ZERO,
                },
                3,
            );
        }
        // 1002 has taken none, though it became ready after the others' first readiness.
        assert_eq!(b.choose(0, &[]).as_deref(), Some("1002"));
    }

    #[test]
    fn a_call_moves_an_agent_through_reserved_ringing_talking_wrap_up_and_ready() {
        let mut b = board(Strategy::LongestIdle);
        let call = CallId(7);
        b.reserve(at(10), "1001", call).unwrap();
        assert_eq!(
            b.reserve(at(10), "1001", CallId(8)),
            Err(AgentError::Busy("1001".into()))
        );
        b.ringing(at(11), "1001", call);
        b.talking(at(12), "1001", call);
        b.release(
            at(20),
            "1001",
            call,
            Release::CallEnded {
                wrap_up: Duration::from_secs(5),
            },
            3,
        );
        assert_eq!(b.state("1001"), Some(AgentState::WrapUp));
        assert_eq!(b.next_timeout(), Some(at(25)));
        b.handle_timeout(at(24));
        assert_eq!(b.state("1001"), Some(AgentState::WrapUp));
        b.take_newly_ready();
        b.handle_timeout(at(25));
        assert_eq!(b.state("1001"), Some(AgentState::Ready));
        assert_eq!(b.take_newly_ready(), ["1001"]);
        let info = b
            .list()
            .into_iter()
            .find(|a| a.extension == "1001")
            .unwrap();
        assert_eq!(info.calls_taken, 1);
        assert_eq!(info.since, at(25));
        // Ready at 25: now the longest idle is 1000 (ready since 1).
        assert_eq!(b.choose(0, &[]).as_deref(), Some("1000"));
    }

    #[test]
    fn max_no_answer_offers_in_a_row_pause_the_agent_with_reason_no_answer() {
        let mut b = board(Strategy::LongestIdle);
        for n in 0..3 {
            let call = CallId(n);
            b.reserve(at(10 + n), "1001", call).unwrap();
            b.release(at(10 + n), "1001", call, Release::NotAnswered, 3);
        }
        let info = b
            .list()
            .into_iter()
            .find(|a| a.extension == "1001")
            .unwrap();
        assert_eq!(info.state, AgentState::Paused);
        assert_eq!(info.reason.as_deref(), Some("no_answer"));
        b.ready(at(20), "1001").unwrap();
        assert_eq!(b.state("1001"), Some(AgentState::Ready));
    }

    #[test]
    fn an_answered_call_resets_the_unanswered_count() {
        let mut b = board(Strategy::LongestIdle);
        for n in 0..5 {
            let call = CallId(n);
            b.reserve(at(10), "1001", call).unwrap();
            if n % 2 == 0 {
                b.release(at(10), "1001", call, Release::NotAnswered, 2);
            } else {
                b.talking(at(10), "1001", call);
                b.release(
                    at(10),
                    "1001",
                    call,
                    Release::CallEnded {
                        wrap_up: Duration::ZERO,
                    },
                    2,
                );
            }
        }
        assert_eq!(b.state("1001"), Some(AgentState::Ready));
    }

    #[test]
    fn a_pause_during_a_call_is_taken_when_the_call_is_over() {
        let mut b = board(Strategy::LongestIdle);
        let call = CallId(1);
        b.reserve(at(1), "1000", call).unwrap();
        b.talking(at(2), "1000", call);
        b.pause(at(3), "1000", "lunch").unwrap();
        assert_eq!(b.state("1000"), Some(AgentState::Talking));
        b.release(
            at(4),
            "1000",
            call,
            Release::CallEnded {
                wrap_up: Duration::from_secs(5),
            },
            3,
        );
        b.handle_timeout(at(9));
        let info = b
            .list()
            .into_iter()
            .find(|a| a.extension == "1000")
            .unwrap();
        assert_eq!(
            (info.state, info.reason.as_deref()),
            (AgentState::Paused, Some("lunch"))
        );
    }

    #[test]
    fn an_agent_logged_out_during_a_call_is_logged_out_when_released() {
        let mut b = board(Strategy::LongestIdle);
        let call = CallId(1);
        b.reserve(at(1), "1000", call).unwrap();
        b.talking(at(2), "1000", call);
        b.unreachable(at(3), "1000");
        assert_eq!(b.state("1000"), Some(AgentState::Talking));
        b.release(
            at(4),
            "1000",
            call,
            Release::CallEnded {
                wrap_up: Duration::from_secs(5),
            },
            3,
        );
        assert_eq!(b.state("1000"), Some(AgentState::LoggedOut));
        assert_eq!(
            b.pause(at(5), "1000", "x"),
            Err(AgentError::LoggedOut("1000".into()))
        );
    }

    #[test]
    fn a_release_for_another_call_changes_nothing() {
        let mut b = board(Strategy::LongestIdle);
        b.reserve(at(1), "1000", CallId(1)).unwrap();
        b.release(at(2), "1000", CallId(2), Release::Unused, 3);
        assert_eq!(b.state("1000"), Some(AgentState::Reserved));
    }
}
