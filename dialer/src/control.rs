//! The control interface between the running dialer and its clients (the HTTP API, the
//! `dialer call` follower, the CDR writer): requests with their replies, and the event
//! stream. These are plain data; the runtime answers the requests and publishes the events.

use crate::b2bua::agents::{AgentError, AgentState};
use crate::b2bua::{AgentChoice, CallOutcome, OriginateError, OriginateSpec};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Identifies a call inside the dialer (not a SIP Call-ID: a call has two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub u64);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `POST /calls`: place a call to `number` through a trunk and bridge it to `agent`, or to
/// the best ready agent of `pool` when the customer answers (exactly one of the two).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginateRequest {
    /// The number to dial (rewritten by the trunk's number rules).
    pub number: String,
    /// The agent's extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// A pool: its agent is chosen when the customer answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The caller's own id for the call (at most 128 characters), in every event and the CDR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `X-` headers added to the agent's INVITE.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub agent_headers: std::collections::BTreeMap<String, String>,
    /// The trunk's name; the first trunk when absent.
    #[serde(default)]
    pub trunk: Option<String>,
    /// A WAV to play to the customer while the agent rings; the configured one when absent.
    #[serde(default)]
    pub ringback: Option<PathBuf>,
    /// Where to record the call (stereo WAV: customer left, agent right).
    #[serde(default)]
    pub record: Option<PathBuf>,
    /// Where to write the call's SIP and RTP packets (pcap), when asked.
    #[serde(default)]
    pub pcap: Option<PathBuf>,
    /// The caller id presented to the customer; the trunk's `caller_id` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    /// Seconds the customer's phone may ring; `[calls] originate_timeout_s` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_timeout_s: Option<u32>,
}

impl OriginateRequest {
    /// The engine's originate spec, or why the request is malformed.
    pub fn to_spec(&self) -> Result<OriginateSpec, ControlError> {
        let agent = match (&self.agent, &self.pool) {
            (Some(a), None) => AgentChoice::Extension(a.clone()),
            (None, Some(p)) => AgentChoice::Pool(p.clone()),
            _ => {
                return Err(ControlError::BadRequest(
                    "exactly one of \"agent\" and \"pool\" is required".into(),
                ))
            }
        };
        Ok(OriginateSpec {
            number: self.number.clone(),
            trunk: self.trunk.clone(),
            agent,
            ringback: self.ringback.clone(),
            record: self.record.clone(),
            pcap: self.pcap.clone(),
            tag: self.tag.clone(),
            agent_headers: self
                .agent_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            caller_id: self.caller_id.clone(),
            ring_timeout: self
                .ring_timeout_s
                .map(|s| std::time::Duration::from_secs(u64::from(s))),
        })
    }
}

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Waiting in the trunk's queue for `max_channels` or `max_cps`.
    Queued,
    /// INVITE sent to the trunk.
    Dialing,
    /// A provisional response from the customer's side.
    Progress,
    /// The customer answered; ringback plays while the agent is called.
    CustomerAnswered,
    /// The agent's phone rings.
    AgentRinging,
    /// Customer and agent are talking.
    Bridged,
    /// No agent was connected in time: the abandon message plays, then BYE.
    Abandoning,
    /// Tearing down.
    Ending,
    /// Over.
    Ended,
}

/// `GET /calls` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallInfo {
    /// The call.
    pub id: CallId,
    /// Dialled number as asked.
    pub number: String,
    /// Agent extension (a pool call has none until an agent is chosen).
    pub agent: Option<String>,
    /// The pool, for a pool call.
    pub pool: Option<String>,
    /// The caller's tag.
    pub tag: Option<String>,
    /// Trunk name.
    pub trunk: String,
    /// Current state.
    pub state: CallState,
    /// Seconds since the call was created.
    pub age_s: f64,
}

/// `GET /agents` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Extension.
    pub extension: String,
    /// The Contact URI exactly as registered (or the static URI); `None` when logged out.
    pub contact: Option<String>,
    /// Where its REGISTER really came from (calls go there).
    pub source: Option<SocketAddr>,
    /// The Contact differs from the source: the agent is behind NAT.
    pub nat: bool,
    /// Seconds until the registration expires; `None` for a static agent.
    pub expires_in_s: Option<u64>,
    /// The phone's User-Agent, when it sent one.
    pub user_agent: Option<String>,
    /// On a call now (reserved, ringing or talking).
    pub busy: bool,
    /// `logged_out`, `ready`, `reserved`, `ringing`, `talking`, `wrap_up` or `paused`.
    pub state: AgentState,
    /// Why it is paused.
    pub reason: Option<String>,
    /// When the state began (seconds since the Unix epoch).
    pub state_since: f64,
    /// How long the agent has been in its state, in seconds.
    #[serde(default)]
    pub state_for_s: f64,
    /// Calls bridged to it since the dialer started.
    pub calls_taken: u64,
    /// Its call, while reserved, ringing or talking.
    pub call: Option<CallId>,
    /// The pools it belongs to.
    pub pools: Vec<String>,
}

/// `GET /bans` entry: a source address banned for failing authentication (`[security]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanInfo {
    /// The banned address (every port of it).
    pub address: std::net::IpAddr,
    /// When the ban started, seconds since the Unix epoch.
    pub since: u64,
    /// When it lifts, seconds since the Unix epoch.
    pub until: u64,
    /// The failed authentications that got it banned.
    pub failures: u32,
}

/// `GET /trunks` entry: a trunk and its registration, as `sofia status gateway` shows one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrunkInfo {
    /// Trunk name.
    pub name: String,
    /// Where its requests go.
    pub proxy: SocketAddr,
    /// `udp` or `tcp`.
    pub transport: String,
    /// `registered`, `registering`, `retrying`, `failed`, `unregistering`, `unregistered`,
    /// `idle`, or `static` for an IP-authenticated trunk that does not register.
    pub state: String,
    /// Seconds until the binding runs out unless refreshed, when registered.
    pub expires_in_s: Option<u64>,
    /// The Contact registered (after any NAT rewrite), when registered.
    pub contact: Option<String>,
    /// Retries so far, while retrying.
    pub attempts: Option<u32>,
    /// Seconds until the next REGISTER, while retrying.
    pub retry_in_s: Option<f64>,
    /// What went wrong last (retrying) or for good (failed).
    pub error: Option<String>,
    /// Live calls on the trunk (holding a channel).
    pub calls: usize,
    /// Calls waiting in the trunk's queue.
    pub queued: usize,
    /// The trunk's channel limit, if any.
    pub max_channels: Option<u32>,
    /// The trunk's INVITEs-per-second limit, if any.
    pub max_cps: Option<u32>,
}

/// Who ended a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HungUpBy {
    /// The customer (BYE or CANCEL from the trunk side, or a final failure response).
    Customer,
    /// The agent.
    Agent,
    /// The dialer (API hang-up, timeout, media timeout, shutdown).
    Dialer,
}

/// One line of the SIP ladder, for `--ladder` followers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LadderLine {
    /// Seconds since the dialer started.
    pub t: f64,
    /// `out` or `in`.
    pub dir: String,
    /// Remote address.
    pub peer: SocketAddr,
    /// `udp` or `tcp` (empty in lines written before transports were named).
    #[serde(default)]
    pub transport: String,
    /// Method, or status and reason.
    pub what: String,
    /// CSeq value.
    pub cseq: String,
    /// The call, when the message belongs to one.
    pub call: Option<CallId>,
}

/// The call detail record written when a call ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    /// The call.
    pub id: CallId,
    /// SIP Call-ID of the customer leg.
    pub customer_call_id: String,
    /// SIP Call-ID of the agent leg, when it was called.
    pub agent_call_id: Option<String>,
    /// Number as asked.
    pub number: String,
    /// Number as dialled after the trunk's rewriting.
    pub dialled: String,
    /// Agent extension (none when no agent was ever offered the call).
    pub agent: Option<String>,
    /// The pool, for a pool call.
    pub pool: Option<String>,
    /// The caller's tag.
    pub tag: Option<String>,
    /// Agents offered the call.
    pub agent_attempts: u32,
    /// Milliseconds from the customer's answer reaching the dialer to the agent's answer,
    /// when the relay starts passing the agent's audio to the customer; `None` when no agent
    /// was connected. Abandoned for the US TSR and Ofcom: answered and not connected within
    /// 2000 ms.
    pub connect_ms: Option<u64>,
    /// Trunk name.
    pub trunk: String,
    /// Seconds since the Unix epoch, when each step happened.
    pub created: f64,
    /// First provisional response.
    pub progress: Option<f64>,
    /// Customer answer.
    pub answered: Option<f64>,
    /// Customer and agent bridged.
    pub bridged: Option<f64>,
    /// End.
    pub ended: f64,
    /// `bridged`, `busy`, `no_answer`, `rejected`, `failed`, `cancelled`, `abandoned`,
    /// `abandoned_no_agent`, `agent_failed`...
    pub outcome: CallOutcome,
    /// Final SIP status that decided the outcome (200 for a normal clearing after answer).
    pub sip_status: u16,
    /// Q.850 cause (RFC 3398 §8.2.6.1 for SIP statuses; 16 normal clearing).
    pub q850_cause: u8,
    /// Who ended it.
    pub hung_up_by: HungUpBy,
    /// Codec of the customer leg.
    pub customer_codec: Option<String>,
    /// Codec of the agent leg.
    pub agent_codec: Option<String>,
    /// RTP packets relayed customer -> agent.
    pub packets_to_agent: u64,
    /// RTP packets relayed agent -> customer.
    pub packets_to_customer: u64,
    /// RTP packets lost from the customer (RFC 3550 A.3).
    pub lost_from_customer: u64,
    /// RTP packets lost from the agent.
    pub lost_from_agent: u64,
}

/// Everything the dialer tells its followers (`GET /events`, one JSON object per line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ApiEvent {
    /// A call was created.
    CallCreated {
        /// The call.
        call: CallId,
        /// Number as asked.
        number: String,
        /// Agent, when named by the originate.
        agent: Option<String>,
        /// Pool, for a pool call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pool: Option<String>,
        /// Trunk.
        trunk: String,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// The call waits in its trunk's queue.
    Queued {
        /// The call.
        call: CallId,
        /// Its place in the queue (1 is next).
        position: usize,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// A provisional response from the customer's side.
    Progress {
        /// The call.
        call: CallId,
        /// 180, 183 ...
        status: u16,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// The carrier sent early media (SDP in a 18x).
    EarlyMedia {
        /// The call.
        call: CallId,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// The customer answered.
    Answered {
        /// The call.
        call: CallId,
        /// The codec negotiated with the trunk.
        codec: String,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// Ringback started playing to the customer.
    RingbackStarted {
        /// The call.
        call: CallId,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// The agent's phone is ringing.
    AgentRinging {
        /// The call.
        call: CallId,
        /// Agent.
        agent: String,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// Customer and agent are connected.
    Bridged {
        /// The call.
        call: CallId,
        /// The agent.
        #[serde(default)]
        agent: String,
        /// The codec negotiated with the agent.
        agent_codec: String,
        /// Media is transcoded between the legs.
        transcoding: bool,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// The call ended.
    Hangup {
        /// The call.
        call: CallId,
        /// The call's record.
        cdr: Box<Cdr>,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// The call's recording stopped (a full disk, a file that cannot be written); the call
    /// goes on.
    RecordingFailed {
        /// The call.
        call: CallId,
        /// What went wrong.
        reason: String,
        /// The caller's tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// An agent's state changed.
    AgentState {
        /// Extension.
        extension: String,
        /// The new state.
        state: AgentState,
        /// Why (paused).
        reason: Option<String>,
        /// Its call, while reserved, ringing or talking.
        call: Option<CallId>,
        /// When (seconds since the Unix epoch).
        since: f64,
    },
    /// An agent registered (or refreshed with a new contact).
    AgentRegistered {
        /// Extension.
        extension: String,
        /// Contact as registered.
        contact: String,
        /// Where it came from.
        source: SocketAddr,
        /// Behind NAT.
        nat: bool,
    },
    /// An agent's registration ended.
    AgentUnregistered {
        /// Extension.
        extension: String,
        /// `expired` or `removed`.
        reason: String,
    },
    /// A trunk registration changed state.
    TrunkRegistration {
        /// Trunk name.
        trunk: String,
        /// `registered`, `failed`, `retrying`, `unregistered`.
        state: String,
        /// Details (status and reason, expiry).
        detail: String,
    },
    /// A campaign changed state (`running`, `paused`, `stopped`, `finished` ...).
    CampaignState {
        /// Campaign.
        campaign: String,
        /// New state.
        state: String,
    },
    /// A campaign claimed a lead and committed its attempt; its call follows.
    AttemptStarted {
        /// Campaign.
        campaign: String,
        /// Attempt id.
        attempt: i64,
        /// Lead id.
        lead: i64,
        /// Number.
        number: String,
        /// 1 for the lead's first attempt.
        attempt_no: u32,
    },
    /// A campaign attempt ended and its lead moved on.
    AttemptEnded {
        /// Campaign.
        campaign: String,
        /// Attempt id.
        attempt: i64,
        /// Lead id.
        lead: i64,
        /// Number.
        number: String,
        /// `bridged`, `busy`, `no_answer`, `failed`, `abandoned`, `interrupted`, `dnc`.
        outcome: String,
        /// The call's own outcome (`abandoned_no_agent` ...), when there was a call.
        call_outcome: Option<String>,
        /// The lead's new state.
        lead_state: String,
        /// When the lead is due again (seconds since the Unix epoch).
        next_at: Option<i64>,
    },
    /// A SIP message went out or came in.
    Sip(LadderLine),
}

impl ApiEvent {
    /// The call this event is about, if any.
    pub fn call(&self) -> Option<CallId> {
        match self {
            ApiEvent::CallCreated { call, .. }
            | ApiEvent::Queued { call, .. }
            | ApiEvent::Progress { call, .. }
            | ApiEvent::EarlyMedia { call, .. }
            | ApiEvent::Answered { call, .. }
            | ApiEvent::RingbackStarted { call, .. }
            | ApiEvent::AgentRinging { call, .. }
            | ApiEvent::Bridged { call, .. }
            | ApiEvent::RecordingFailed { call, .. }
            | ApiEvent::Hangup { call, .. } => Some(*call),
            ApiEvent::Sip(l) => l.call,
            _ => None,
        }
    }

    /// Sets the tag of a call event (other events have none).
    pub fn set_tag(&mut self, value: String) {
        match self {
            ApiEvent::CallCreated { tag, .. }
            | ApiEvent::Queued { tag, .. }
            | ApiEvent::Progress { tag, .. }
            | ApiEvent::EarlyMedia { tag, .. }
            | ApiEvent::Answered { tag, .. }
            | ApiEvent::RingbackStarted { tag, .. }
            | ApiEvent::AgentRinging { tag, .. }
            | ApiEvent::Bridged { tag, .. }
            | ApiEvent::RecordingFailed { tag, .. }
            | ApiEvent::Hangup { tag, .. } => *tag = Some(value),
            _ => {}
        }
    }
}

/// Why a control request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum ControlError {
    /// No such call.
    #[error("no call {0}")]
    NoSuchCall(u64),
    /// No such agent, or it is not registered.
    #[error("agent {0} is not registered")]
    AgentUnavailable(String),
    /// The agent is on another call.
    #[error("agent {0} is busy")]
    AgentBusy(String),
    /// No such trunk.
    #[error("no trunk named {0}")]
    NoSuchTrunk(String),
    /// No such pool.
    #[error("no pool named {0}")]
    NoSuchPool(String),
    /// No agent of the pool is logged in.
    #[error("no agent of pool {0} is logged in")]
    PoolEmpty(String),
    /// The agent is not logged in (pause/ready of an agent that is not registered).
    #[error("agent {0} is not logged in")]
    AgentLoggedOut(String),
    /// No agent with this extension is configured.
    #[error("no agent {0}")]
    NoSuchAgent(String),
    /// The trunk's queue is full.
    #[error(
        "trunk {trunk} is at its limit and {queued} calls already wait (max_queue {max_queue})"
    )]
    QueueFull {
        /// Trunk name.
        trunk: String,
        /// Calls waiting.
        queued: usize,
        /// The limit.
        max_queue: u32,
    },
    /// A field of the request is unusable.
    #[error("{0}")]
    BadRequest(String),
    /// The dialer is shutting down.
    #[error("the dialer is shutting down")]
    ShuttingDown,
    /// The number cannot be dialled (number rules).
    #[error("bad number: {0}")]
    BadNumber(String),
    /// Something else, such as a missing ringback file.
    #[error("{0}")]
    Other(String),
    /// A file name in the request (`record`, `pcap`, `ringback`) that may not be used:
    /// `{"error":"bad_path","detail":{"field":"record","problem":"..."}}`.
    #[error("`{field}`: {problem}")]
    BadPath {
        /// The request field.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl From<OriginateError> for ControlError {
    fn from(e: OriginateError) -> Self {
        match e {
            OriginateError::NoSuchTrunk(t) => ControlError::NoSuchTrunk(t),
            OriginateError::NoSuchPool(p) => ControlError::NoSuchPool(p),
            OriginateError::PoolEmpty(p) => ControlError::PoolEmpty(p),
            OriginateError::AgentUnavailable(a) => ControlError::AgentUnavailable(a),
            OriginateError::AgentBusy(a) => ControlError::AgentBusy(a),
            OriginateError::BadNumber(n) => ControlError::BadNumber(n),
            OriginateError::QueueFull {
                trunk,
                queued,
                max_queue,
            } => ControlError::QueueFull {
                trunk,
                queued,
                max_queue,
            },
            OriginateError::BadRequest(r) => ControlError::BadRequest(r),
            OriginateError::ShuttingDown => ControlError::ShuttingDown,
        }
    }
}

impl From<AgentError> for ControlError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Unknown(a) => ControlError::NoSuchAgent(a),
            AgentError::LoggedOut(a) => ControlError::AgentLoggedOut(a),
            AgentError::Busy(a) => ControlError::AgentBusy(a),
        }
    }
}

/// A request to the running dialer, with the channel for its reply.
#[derive(Debug)]
pub enum ControlRequest {
    /// Place a call.
    Originate(
        OriginateRequest,
        oneshot::Sender<Result<CallInfo, ControlError>>,
    ),
    /// List live calls.
    ListCalls(oneshot::Sender<Vec<CallInfo>>),
    /// Hang a call up.
    Hangup(CallId, oneshot::Sender<Result<(), ControlError>>),
    /// List agents.
    ListAgents(oneshot::Sender<Vec<AgentInfo>>),
    /// List trunks with their registration state.
    ListTrunks(oneshot::Sender<Vec<TrunkInfo>>),
    /// Pause an agent with a reason.
    PauseAgent(String, String, oneshot::Sender<Result<(), ControlError>>),
    /// Make an agent ready.
    ReadyAgent(String, oneshot::Sender<Result<(), ControlError>>),
    /// Log an agent of a session-mode pool in: its phone is called for its session.
    LoginAgent(String, oneshot::Sender<Result<(), ControlError>>),
    /// End an agent's session.
    LogoutAgent(String, oneshot::Sender<Result<(), ControlError>>),
    /// List the sources banned for failing authentication.
    ListBans(oneshot::Sender<Vec<BanInfo>>),
    /// Lift the ban of an address; the answer says whether it was banned.
    LiftBan(std::net::IpAddr, oneshot::Sender<bool>),
}

/// What a client of the running dialer holds: the request channel and the event feed.
#[derive(Clone, Debug)]
pub struct ControlHandle {
    /// Requests to the dialer.
    pub requests: mpsc::Sender<ControlRequest>,
    /// Subscribe here for [`ApiEvent`]s.
    pub events: broadcast::Sender<ApiEvent>,
}
