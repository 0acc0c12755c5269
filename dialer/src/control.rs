//! The control interface between the running dialer and its clients (the HTTP API, the
//! `dialer call` follower, the CDR writer): requests with their replies, and the event
//! stream. These are plain data; the runtime answers the requests and publishes the events.

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

/// `POST /calls`: place a call to `number` through a trunk and bridge it to `agent`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginateRequest {
    /// The number to dial (rewritten by the trunk's number rules).
    pub number: String,
    /// The agent's extension.
    pub agent: String,
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
}

/// Where a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
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
    /// Agent extension.
    pub agent: String,
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
    /// The Contact URI exactly as registered (or the static URI).
    pub contact: String,
    /// Where its REGISTER really came from (calls go there).
    pub source: Option<SocketAddr>,
    /// The Contact differs from the source: the agent is behind NAT.
    pub nat: bool,
    /// Seconds until the registration expires; `None` for a static agent.
    pub expires_in_s: Option<u64>,
    /// The phone's User-Agent, when it sent one.
    pub user_agent: Option<String>,
    /// On a call now.
    pub busy: bool,
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
    /// Live calls on the trunk.
    pub calls: usize,
    /// The trunk's channel limit, if any.
    pub max_channels: Option<u32>,
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
    /// Agent extension.
    pub agent: String,
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
    /// `bridged`, `busy`, `no_answer`, `rejected`, `failed`, `cancelled`, `agent_failed`...
    pub outcome: String,
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
        /// Agent.
        agent: String,
        /// Trunk.
        trunk: String,
    },
    /// A provisional response from the customer's side.
    Progress {
        /// The call.
        call: CallId,
        /// 180, 183 ...
        status: u16,
    },
    /// The carrier sent early media (SDP in a 18x).
    EarlyMedia {
        /// The call.
        call: CallId,
    },
    /// The customer answered.
    Answered {
        /// The call.
        call: CallId,
        /// The codec negotiated with the trunk.
        codec: String,
    },
    /// Ringback started playing to the customer.
    RingbackStarted {
        /// The call.
        call: CallId,
    },
    /// The agent's phone is ringing.
    AgentRinging {
        /// The call.
        call: CallId,
        /// Agent.
        agent: String,
    },
    /// Customer and agent are connected.
    Bridged {
        /// The call.
        call: CallId,
        /// The codec negotiated with the agent.
        agent_codec: String,
        /// Media is transcoded between the legs.
        transcoding: bool,
    },
    /// The call ended.
    Hangup {
        /// The call.
        call: CallId,
        /// The call's record.
        cdr: Box<Cdr>,
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
    /// A SIP message went out or came in.
    Sip(LadderLine),
}

impl ApiEvent {
    /// The call this event is about, if any.
    pub fn call(&self) -> Option<CallId> {
        match self {
            ApiEvent::CallCreated { call, .. }
            | ApiEvent::Progress { call, .. }
            | ApiEvent::EarlyMedia { call }
            | ApiEvent::Answered { call, .. }
            | ApiEvent::RingbackStarted { call }
            | ApiEvent::AgentRinging { call, .. }
            | ApiEvent::Bridged { call, .. }
            | ApiEvent::Hangup { call, .. } => Some(*call),
            ApiEvent::Sip(l) => l.call,
            _ => None,
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
    /// The trunk is at its channel or calls-per-second limit.
    #[error("trunk {0} is at its limit")]
    TrunkBusy(String),
    /// The number cannot be dialled (number rules).
    #[error("bad number: {0}")]
    BadNumber(String),
    /// Something else, such as a missing ringback file.
    #[error("{0}")]
    Other(String),
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
}

/// What a client of the running dialer holds: the request channel and the event feed.
#[derive(Clone, Debug)]
pub struct ControlHandle {
    /// Requests to the dialer.
    pub requests: mpsc::Sender<ControlRequest>,
    /// Subscribe here for [`ApiEvent`]s.
    pub events: broadcast::Sender<ApiEvent>,
}
