//! The B2BUA core: two independent SIP dialogs and two media legs per call, with no IO.
//!
//! Drive loop (the runtime owns sockets, clocks and media tasks):
//! 1. every SIP datagram goes to [`Core::handle_datagram`], timers to [`Core::handle_timeout`]
//!    when [`Core::next_timeout`] is reached, control requests to [`Core::originate`] and
//!    [`Core::hangup`], media outcomes to [`Core::media_opened`] and [`Core::media_event`];
//! 2. the runtime drains [`Core::poll_transmit`] (SIP to send) and [`Core::poll_action`]
//!    (media commands and events for followers).
//!
//! A call: INVITE to the trunk with our offer; 401/407 answered once per challenge; 3xx
//! followed a bounded number of times; on the 2xx the ACK goes to the 2xx's Contact through
//! the Record-Route route set (RFC 3261 §13.2.2.4), ringback starts into the customer's RTP
//! and the agent is called at the address its REGISTER came from, with the Contact it
//! registered as Request-URI. When the agent answers, ringback stops and the legs are
//! bridged. A BYE on either side is answered and passed on as a BYE (or a CANCEL while the
//! agent still rings) on the other; a 200 crossing that CANCEL is ACKed and then ended with
//! a BYE.
//!
//! A call for a pool ([`AgentChoice::Pool`]) has no agent until the customer answers; then
//! the pool's best ready agent is offered it, the next one after a refusal (`pools.rs`), and
//! a customer nobody takes within the pool's `abandon_after` hears the abandon message and
//! gets BYE. In a session-mode pool the customer is switched onto an agent's standing dialog
//! instead (`sessions.rs`). Above a trunk's `max_channels` or `max_cps` calls wait in its
//! FIFO queue (`limits.rs`).

pub mod agents;
mod dtmf;
mod ending;
mod hold;
pub mod journal;
mod late;
mod legs;
mod limits;
mod pools;
pub mod q850;
mod session_timer;
mod sessions;
pub mod spec;
mod srtp;

pub use agents::{AgentBoard, AgentState, AgentStatusInfo, PoolSettings, Strategy};
pub use dtmf::DtmfMode;
pub use media::sdp::SrtpPolicy;
pub use session_timer::SessionTimerConfig;
pub use spec::{AgentChoice, CallOutcome, OriginateError, OriginateSpec};
pub use srtp::SUITES as SRTP_SUITES;

use crate::control::{ApiEvent, CallId, CallInfo, CallState, Cdr, ControlError, HungUpBy};
use media::relay::Side;
use media::sdp::{
    build_offer, Codec, Direction, LocalEndpoint, MediaConfig, Negotiated, SessionDescription,
    SrtpKeys,
};
use rand::RngCore;
use sip_core::auth::{
    AuthOutcome, ChallengedResponse, ClientAuthState, Credentials, DigestRequest,
};
use sip_core::dialog::Dialog;
use sip_core::endpoint::{make_response, Endpoint, Event, Output, Target, Transmit};
use sip_core::locate::Failover;
use sip_core::message::{
    HeaderKind, HeaderName, Host, Method, NameAddr, Request, Response, SipMessage, SipUri, Uri,
};
use sip_core::time::Time;
use sip_core::transaction::{TransactionId, Transport};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A trunk as the core uses it (the runtime resolves the proxy's address).
#[derive(Clone, Debug)]
pub struct TrunkSettings {
    /// Name, for CDRs and the API.
    pub name: String,
    /// Where requests go.
    pub proxy: SocketAddr,
    /// Transport to the proxy.
    pub transport: Transport,
    /// Host of From/To/Request-URI.
    pub domain: String,
    /// Credentials for 401/407, if the trunk challenges.
    pub credentials: Option<Credentials>,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    /// From user (and P-Asserted-Identity).
    pub caller_id: String,
    /// From display name.
    pub caller_name: Option<String>,
    /// Send P-Asserted-Identity (RFC 3325).
    pub pai: bool,
    /// Most concurrent calls.
    pub max_channels: Option<u32>,
    /// Most new INVITEs per second.
    pub max_cps: Option<u32>,
    /// Most calls waiting for `max_channels` or `max_cps`.
    pub max_queue: u32,
    /// How a dialled number is checked and rewritten for this trunk; `None` passes it as
    /// given (a replay of a capture whose Request-URI user is not a number).
    pub numbering: Option<trunk_profiles::NumberRewrite>,
    /// The hosts a 3xx on the customer leg may send the call to (names compared without
    /// case, IP literals by address); a 3xx to any other host ends the call. Nothing is
    /// implied: the runtime puts the proxy's host and address here when the file lists
    /// none; empty follows no redirect.
    pub redirect_hosts: Vec<Host>,
    /// Answer only digest challenges (401/407) for this realm on the customer leg; `None`
    /// answers any realm.
    pub realm: Option<String>,
}

/// Our Contact URI for a leg on `transport`: `;transport=tcp` (or `tls`, at the TLS
/// listener's port) on a connection, so that the peer sends its requests in the dialog over
/// it too (RFC 3261 §19.1.4; without it the URI means UDP, RFC 3263 §4.1). A `sips:`
/// Request-URI (`peer`) gets a `sips:` Contact (RFC 3261 §8.1.1.8, §12.1.1).
pub(crate) fn our_contact(
    host: &Host,
    port: u16,
    user: &str,
    transport: Transport,
    peer: &Uri,
) -> SipUri {
    let mut uri = SipUri::new(Some(user), host.clone(), Some(port));
    uri.secure = peer.as_sip().is_some_and(|s| s.secure);
    if let Some(t) = transport.uri_param() {
        uri.params.set("transport", Some(t));
    }
    uri
}

/// Where and how to call an agent right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentTarget {
    /// The Request-URI: the Contact exactly as registered.
    pub uri: Uri,
    /// Where to send: the registration's real source (through the agent's NAT binding).
    pub destination: SocketAddr,
    /// Transport of the registration.
    pub transport: Transport,
    /// Codecs to offer, in order.
    pub codecs: Vec<Codec>,
}

/// Core settings.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// Host and port we advertise in Contact (external_ip when behind NAT).
    pub contact_host: Host,
    /// Port we advertise.
    pub contact_port: u16,
    /// Address written in our SDP.
    pub media_ip: IpAddr,
    /// Trunks, the first being the default.
    pub trunks: Vec<TrunkSettings>,
    /// Cancel the customer INVITE when nobody answered by then.
    pub originate_timeout: Duration,
    /// Cancel the agent INVITE when it did not answer by then.
    pub agent_ring_timeout: Duration,
    /// How many 3xx redirections to follow.
    pub max_redirects: u8,
}

/// Commands for a call's media session, executed by the runtime.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaOp {
    /// A leg's SRTP keys from its offer/answer (RFC 4568), or `None` for plain RTP; sent
    /// before the [`MediaOp::SetLeg`] they belong to, and only when they change. `Debug`
    /// prints no key material.
    SetSrtp {
        /// Which leg.
        side: Side,
        /// Ours (to protect what the relay sends the leg) and the peer's.
        keys: Option<SrtpKeys>,
    },
    /// The negotiated stream of one leg (again after a change).
    SetLeg {
        /// Which leg.
        side: Side,
        /// What was negotiated.
        negotiated: Negotiated,
    },
    /// Play the call's ringback to a leg.
    StartRingback {
        /// Which leg.
        side: Side,
        /// The WAV (None: the configured default).
        path: Option<PathBuf>,
    },
    /// Play a message once to a leg (the abandon message), then report
    /// [`MediaReport::MessageDone`].
    PlayMessage {
        /// Which leg.
        side: Side,
        /// The WAV.
        path: PathBuf,
    },
    /// Loop a clip to a leg while nothing else plays to it (a session agent between
    /// customers: `idle_audio`, or silence when `None`).
    StartIdle {
        /// Which leg.
        side: Side,
        /// The WAV.
        path: Option<PathBuf>,
    },
    /// A session's media lets go of the customer call switched onto it and reports its
    /// counts ([`MediaReport::Detached`]).
    DetachCustomer {
        /// The customer call.
        call: CallId,
    },
    /// RTP for a leg may also come from this address (an agent behind NAT sends from its
    /// registered source, not from the private address in its SDP; RFC 4961 latching).
    AllowSource {
        /// Which leg.
        side: Side,
        /// The address.
        ip: IpAddr,
    },
    /// Stop the ringback.
    StopRingback {
        /// Which leg.
        side: Side,
    },
    /// Record both legs to a stereo WAV.
    Record {
        /// Where.
        path: PathBuf,
    },
    /// How a leg takes DTMF (sent when it is not the default, RFC 4733).
    SetDtmf {
        /// Which leg.
        side: Side,
        /// Its mode.
        mode: DtmfMode,
    },
    /// Play a key press to a leg in its media form (RFC 4733 events, or a tone).
    SendDigit {
        /// Which leg hears it.
        side: Side,
        /// Event code 0-15 (RFC 4733 §3.2).
        event: u8,
        /// How long the key is pressed.
        duration: Duration,
    },
}

/// What the runtime must do besides sending SIP.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Open the call's media session (two RTP ports), then call [`Core::media_opened`].
    OpenMedia {
        /// The call.
        call: CallId,
    },
    /// A command for the call's media session.
    Media {
        /// The call.
        call: CallId,
        /// What to do.
        op: MediaOp,
    },
    /// Close the call's media session; its statistics come back with
    /// [`Core::media_closed`] (or are left out when the runtime has none).
    CloseMedia {
        /// The call.
        call: CallId,
    },
    /// Switch a customer call's media onto an agent session's: the customer's RTP moves into
    /// the session's media (its sockets and stream), which relays it to and from the agent
    /// with the agent's stream running on. From then on media commands for `call` go to
    /// the session's media, and `CloseMedia` for `call` becomes
    /// [`MediaOp::DetachCustomer`] there.
    LinkMedia {
        /// The customer call.
        call: CallId,
        /// The agent's session.
        session: CallId,
        /// A WAV played to the agent first (`None`: the built-in short tone).
        connect_tone: Option<PathBuf>,
    },
    /// Tell the followers.
    Event(ApiEvent),
}

/// Media outcomes the runtime reports.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaReport {
    /// No RTP from a leg for the configured time.
    Timeout(Side),
    /// The session could not be opened or failed.
    Failed(String),
    /// A [`MediaOp::PlayMessage`] has been played to the end (or could not be played).
    MessageDone(Side),
    /// A session's media let go of the customer switched onto it (see
    /// [`Action::LinkMedia`]); the customer call's statistics.
    Detached {
        /// The customer call.
        call: CallId,
        /// Its counts.
        totals: MediaTotals,
    },
    /// A leg sent a key press (RFC 4733 telephone-events, or a tone an `inband` leg's audio
    /// carried), now ended.
    Digit {
        /// The leg that sent it.
        side: Side,
        /// Event code 0-15 (RFC 4733 §3.2).
        event: u8,
        /// How long the key was pressed.
        duration: Duration,
    },
}

/// Final media statistics for the CDR.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaTotals {
    /// Customer -> agent.
    pub packets_to_agent: u64,
    /// Agent -> customer.
    pub packets_to_customer: u64,
    /// Lost from the customer.
    pub lost_from_customer: u64,
    /// Lost from the agent.
    pub lost_from_agent: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegState {
    /// Not called yet.
    Idle,
    /// INVITE sent, no final response.
    Inviting,
    /// CANCEL asked for; waiting for the INVITE's final response.
    Cancelling,
    /// 2xx received and ACKed.
    Confirmed,
    /// BYE sent, waiting for its response.
    Terminating,
    /// Over.
    Done,
}

#[derive(Debug)]
struct Leg {
    state: LegState,
    call_id: String,
    local_tag: String,
    cseq: u32,
    /// The INVITE as last sent (without Via), for auth retries and redirects.
    invite: Option<Request>,
    invite_tx: Option<TransactionId>,
    target: Target,
    dialog: Option<Dialog>,
    offer: Option<SessionDescription>,
    negotiated: Option<Negotiated>,
    auth: ClientAuthState,
    redirects: u8,
    /// The targets of the trunk's name this leg's INVITE has not tried yet (RFC 3263 §4.3).
    failover: Failover,
    rtp_port: u16,
    session_id: u64,
    /// Early dialogs from 1xx with a To tag, one per fork (RFC 3261 §12.1.2, §13.2.2.4).
    early: Vec<EarlyDialog>,
    /// The session description we last sent on this leg (offer or answer), reused as
    /// the unchanged offer of a session refresh (RFC 3264 §8, RFC 4028 §7.4).
    local_sdp: Option<SessionDescription>,
    /// Our 2xx to a re-INVITE without SDP carried our offer: the answer comes in the ACK
    /// (RFC 3261 §14.2, RFC 3264 §4).
    offer_in_2xx: bool,
    /// Session-Expires we ask for in our INVITE, in seconds (RFC 4028 §7.1); raised by a 422.
    session_expires: Option<u32>,
    /// Our Min-SE, in seconds (RFC 4028 §5): the smallest interval we accept.
    min_se: u32,
    /// The running session timer, when the dialog has one (RFC 4028 §7.2, §9).
    session: Option<session_timer::SessionTimer>,
    /// The peer lists UPDATE in Allow: refreshes use it (RFC 4028 §7.4).
    peer_allows_update: bool,
    /// Our pending (or last) session refresh: its transaction, method and CSeq.
    refresh: Option<(TransactionId, Method, u32)>,
    /// The answer from the reliable 1xx of the dialog the 2xx confirmed.
    early_answer: Option<srtp::Answered>,
    /// Our re-INVITE or UPDATE on this dialog has no final response yet (RFC 3261 §14.1:
    /// one at a time; RFC 3261 §14.2 and RFC 3311 §5.2: theirs meanwhile gets 491).
    reinvite_outstanding: bool,
    /// The offer carried by that outstanding re-INVITE; it becomes `local_sdp` on the 2xx.
    offered: Option<SessionDescription>,
    /// The direction our session description towards this leg should have, when the other
    /// leg's hold or unhold asks for a change not yet agreed here.
    wanted_direction: Option<Direction>,
    /// When to offer `wanted_direction` again after a 491 (RFC 3261 §14.1).
    update_retry: Option<Time>,
    /// When our outstanding re-INVITE, answered only provisionally, is given up with a
    /// CANCEL (RFC 3261 §9.1, §14.1).
    reinvite_deadline: Option<Time>,
    /// What the party on this leg last said it does (its offer's or answer's direction,
    /// `c=0.0.0.0` as not receiving): the other leg gets no more than this from us.
    remote_direction: Direction,
    /// The SRTP keys the leg's media uses, `None` for plain RTP (see `srtp.rs`).
    srtp: Option<SrtpKeys>,
}

/// One early dialog of a leg's INVITE (RFC 3262 §4: reliable provisional responses are
/// acknowledged and sequenced per dialog).
#[derive(Debug)]
struct EarlyDialog {
    dialog: Dialog,
    /// RSeq of the last in-order reliable provisional response (RFC 3262 §4).
    rseq: Option<u32>,
    /// The answer carried by this dialog's provisional responses, if any.
    negotiated: Option<srtp::Answered>,
}

impl Leg {
    fn new(call_id: String, local_tag: String, target: Target, session_id: u64) -> Leg {
        Leg {
            state: LegState::Idle,
            call_id,
            local_tag,
            cseq: 0,
            invite: None,
            invite_tx: None,
            target,
            dialog: None,
            offer: None,
            negotiated: None,
            auth: ClientAuthState::new(),
            redirects: 0,
            failover: Failover::default(),
            rtp_port: 0,
            session_id,
            early: Vec::new(),
            local_sdp: None,
            offer_in_2xx: false,
            session_expires: None,
            min_se: session_timer::MIN_SE_FLOOR,
            session: None,
            peer_allows_update: false,
            refresh: None,
            early_answer: None,
            reinvite_outstanding: false,
            offered: None,
            wanted_direction: None,
            update_retry: None,
            reinvite_deadline: None,
            remote_direction: Direction::SendRecv,
            srtp: None,
        }
    }
}

/// What a call is: a customer's call, or an agent's session (session-mode pools).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A customer call; `session` is the agent session it is switched onto, once connected.
    Customer { session: Option<CallId> },
    /// An agent's session: only the agent leg is used, for the whole shift; `customer` is the
    /// call switched onto it now.
    Session { customer: Option<CallId> },
}

/// Who takes a call's customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Choice {
    /// The agent named by the originate, reserved from the start.
    Fixed,
    /// The best ready agent of this pool (by index), chosen when the customer answers.
    Pool(usize),
}

#[derive(Debug)]
struct Call {
    id: CallId,
    number: String,
    dialled: String,
    /// The agent reserved for (or last offered) the call.
    agent_ext: Option<String>,
    choice: Choice,
    /// Agents offered this call, in order (the pool's `agent_attempts` bounds it).
    tried: Vec<String>,
    tag: Option<String>,
    agent_headers: Vec<(String, String)>,
    /// Presented to the customer instead of the trunk's caller id.
    caller_id: Option<String>,
    /// Customer ring timeout instead of the configured originate timeout.
    ring_timeout: Option<Duration>,
    trunk: usize,
    ringback: Option<PathBuf>,
    record: Option<PathBuf>,
    state: CallState,
    customer: Leg,
    agent: Option<Leg>,
    ports: Option<(u16, u16)>,
    created: Time,
    progress: Option<Time>,
    answered: Option<Time>,
    bridged: Option<Time>,
    /// The originate timeout, the agent ring timeout, or the wait for a CANCELled INVITE.
    deadline: Option<Time>,
    /// A pool call's customer is abandoned (message, BYE) when not bridged by then.
    abandon_at: Option<Time>,
    /// The abandon message plays; the call ends this way when it is over.
    abandoning: Option<Ending>,
    ending: Option<Ending>,
    totals: Option<MediaTotals>,
    /// CloseMedia was asked for; the CDR waits for the statistics.
    media_closing: bool,
    /// Out of the trunk's queue: the call counts against `max_channels`.
    holds_channel: bool,
    role: Role,
}

#[derive(Clone, Debug)]
struct Ending {
    outcome: CallOutcome,
    status: u16,
    cause: u8,
    by: HungUpBy,
}

/// Which call and leg a SIP transaction or dialog belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LegRef {
    call: CallId,
    side: Side,
}

/// The B2BUA.
pub struct Core {
    config: CoreConfig,
    /// The TLS listener's port, advertised in the Contact of TLS legs.
    tls_contact_port: Option<u16>,
    endpoint: Endpoint,
    rng: Box<dyn RngCore + Send>,
    calls: HashMap<CallId, Call>,
    by_tx: HashMap<TransactionId, LegRef>,
    by_sip_call_id: HashMap<String, LegRef>,
    next_call: u64,
    actions: VecDeque<Action>,
    transmits: VecDeque<Transmit>,
    /// Wall-clock seconds since the Unix epoch at `Time::ZERO`, for CDR timestamps.
    epoch_unix: f64,
    /// Requests the call logic does not handle, for the registrar and trunk registrations.
    others: VecDeque<Event>,
    /// The latest time the runtime gave; events drained from the endpoint happen then.
    now: Time,
    /// Session timers asked of each trunk (by index), RFC 4028.
    trunk_timers: Vec<Option<SessionTimerConfig>>,
    /// The targets after the proxy of each trunk (by index) whose proxy is a DNS name, in
    /// the RFC 3263 order; an INVITE that times out or gets a 503 moves along them.
    trunk_failover: Vec<Vec<SocketAddr>>,
    /// Session timers asked of agents.
    agent_timer: Option<SessionTimerConfig>,
    /// Transactions whose outcome nobody waits for (a BYE to a losing fork's 2xx, INFO).
    ignored_tx: std::collections::HashSet<TransactionId>,
    /// DTMF mode of each trunk and agent.
    dtmf: dtmf::DtmfSettings,
    /// SRTP policy of each trunk and agent.
    srtp: srtp::SrtpSettings,
    /// Legs of recently ended calls, so that a late 2xx is ACKed and ended with BYE.
    ended: VecDeque<late::EndedLeg>,
    /// Agent states and pools.
    board: AgentBoard,
    /// Each trunk's limits and queue, by index.
    gates: Vec<limits::TrunkGate>,
    /// Answered pool calls waiting for a ready agent, oldest first.
    waiting: VecDeque<CallId>,
    /// No new calls.
    shutting_down: bool,
    /// Actions queued before a customer was switched onto a session, for the media they were
    /// meant for (see `sessions.rs`); they go out before [`Core::actions`].
    routed: VecDeque<Action>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("calls", &self.calls.len())
            .finish()
    }
}

fn leg_of(call: &mut Call, side: Side) -> Option<&mut Leg> {
    match side {
        Side::Customer => Some(&mut call.customer),
        Side::Agent => call.agent.as_mut(),
    }
}

impl Core {
    /// The port our TLS listener has, for the Contact of TLS legs (the UDP/TCP port of
    /// [`CoreConfig::contact_port`] otherwise).
    pub fn set_tls_contact_port(&mut self, port: Option<u16>) {
        self.tls_contact_port = port;
    }

    /// The Contact port for a leg on `transport`.
    pub(crate) fn contact_port_for(&self, transport: Transport) -> u16 {
        match (transport, self.tls_contact_port) {
            (Transport::Tls, Some(port)) => port,
            _ => self.config.contact_port,
        }
    }

    /// A core around an endpoint; `epoch_unix` is the wall clock at `Time::ZERO`.
    pub fn new(
        config: CoreConfig,
        endpoint: Endpoint,
        rng: Box<dyn RngCore + Send>,
        epoch_unix: f64,
    ) -> Core {
        Core {
            tls_contact_port: None,
            endpoint,
            rng,
            calls: HashMap::new(),
            by_tx: HashMap::new(),
            by_sip_call_id: HashMap::new(),
            next_call: 1,
            actions: VecDeque::new(),
            transmits: VecDeque::new(),
            epoch_unix,
            others: VecDeque::new(),
            now: Time::ZERO,
            trunk_timers: Vec::new(),
            trunk_failover: Vec::new(),
            agent_timer: None,
            ignored_tx: std::collections::HashSet::new(),
            dtmf: dtmf::DtmfSettings::default(),
            srtp: srtp::SrtpSettings::default(),
            ended: VecDeque::new(),
            gates: config
                .trunks
                .iter()
                .map(|t| limits::TrunkGate::new(t.max_channels, t.max_cps, t.max_queue))
                .collect(),
            board: AgentBoard::default(),
            waiting: VecDeque::new(),
            shutting_down: false,
            routed: VecDeque::new(),
            config,
        }
    }

    /// Session timers (RFC 4028) to ask of a trunk, by its index in [`CoreConfig::trunks`];
    /// without one, calls on that trunk still offer `Supported: timer` and follow a
    /// timer the trunk imposes.
    pub fn set_trunk_session_timer(&mut self, trunk: usize, timer: Option<SessionTimerConfig>) {
        if self.trunk_timers.len() <= trunk {
            self.trunk_timers.resize(trunk + 1, None);
        }
        self.trunk_timers[trunk] = timer;
    }

    /// The targets of a trunk (by its index in [`CoreConfig::trunks`]) as the runtime
    /// resolved its proxy's name (RFC 3263): `proxy` first, then `failover` in order. New
    /// calls use them; calls under way keep the targets they started with.
    pub fn set_trunk_targets(
        &mut self,
        trunk: usize,
        proxy: SocketAddr,
        failover: Vec<SocketAddr>,
    ) {
        if let Some(t) = self.config.trunks.get_mut(trunk) {
            t.proxy = proxy;
        }
        if self.trunk_failover.len() <= trunk {
            self.trunk_failover.resize(trunk + 1, Vec::new());
        }
        self.trunk_failover[trunk] = failover;
    }

    /// Session timers (RFC 4028) to ask of agents, independent of the trunks'.
    pub fn set_agent_session_timer(&mut self, timer: Option<SessionTimerConfig>) {
        self.agent_timer = timer;
    }

    /// The SIP endpoint (for the registrar and trunk registrations, which share it).
    pub fn endpoint(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    /// Next SIP bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.pump();
        self.transmits.pop_front()
    }

    /// Next action for the runtime.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.pump();
        if let Some(action) = self.routed.pop_front() {
            return Some(action);
        }
        let action = self.actions.pop_front()?;
        Some(self.route_media(action))
    }

    /// Next endpoint event the call logic did not take (REGISTER, OPTIONS out of dialog,
    /// responses to registrations): for the registrar and the trunk registrations.
    pub fn poll_other(&mut self) -> Option<Event> {
        self.others.pop_front()
    }

    /// When [`Core::handle_timeout`] is due.
    pub fn next_timeout(&mut self) -> Option<Time> {
        let calls = self
            .calls
            .values()
            .flat_map(|c| {
                let legs = std::iter::once(&c.customer).chain(c.agent.as_ref());
                legs.flat_map(|l| {
                    [
                        l.session.as_ref().map(|s| s.deadline),
                        l.update_retry,
                        l.reinvite_deadline,
                    ]
                })
                .flatten()
                .chain(c.deadline)
                .chain(c.abandon_at)
            })
            .min();
        [
            self.endpoint.next_timeout(),
            calls,
            self.board.next_timeout(),
        ]
        .into_iter()
        .chain(self.gates.iter().map(limits::TrunkGate::next_timeout))
        .flatten()
        .min()
    }

    /// The caller's tag of a call.
    pub fn call_tag(&self, call: CallId) -> Option<String> {
        self.calls.get(&call).and_then(|c| c.tag.clone())
    }

    /// The dialer's call for a SIP Call-ID (for labelling the ladder).
    pub fn call_for_sip_call_id(&self, call_id: &str) -> Option<CallId> {
        self.by_sip_call_id.get(call_id).map(|r| r.call)
    }

    /// Live calls.
    pub fn calls(&self, now: Time) -> Vec<CallInfo> {
        let mut v: Vec<CallInfo> = self
            .calls
            .values()
            .filter(|c| matches!(c.role, Role::Customer { .. }))
            .map(|c| self.info(c, now))
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    fn info(&self, c: &Call, now: Time) -> CallInfo {
        CallInfo {
            id: c.id,
            number: c.number.clone(),
            agent: c.agent_ext.clone(),
            pool: self.pool_name(c),
            tag: c.tag.clone(),
            trunk: self.config.trunks[c.trunk].name.clone(),
            state: c.state,
            age_s: now.since(c.created).as_secs_f64(),
        }
    }

    fn pool_name(&self, c: &Call) -> Option<String> {
        match c.choice {
            Choice::Pool(p) => self.board.pools().get(p).map(|p| p.name.clone()),
            Choice::Fixed => None,
        }
    }

    /// True when the agent is reserved for, rung for, or talking on a call.
    pub fn agent_busy(&self, extension: &str) -> bool {
        matches!(
            self.board.state(extension),
            Some(AgentState::Reserved | AgentState::Ringing | AgentState::Talking)
        )
    }

    /// The trunks, by index.
    pub fn trunks(&self) -> &[TrunkSettings] {
        &self.config.trunks
    }

    /// Calls holding a channel on a trunk (by index); queued calls are not counted.
    pub fn trunk_load(&self, trunk: usize) -> usize {
        self.gates.get(trunk).map_or(0, |g| g.live() as usize)
    }

    /// Calls waiting in a trunk's queue (by index).
    pub fn trunk_queued(&self, trunk: usize) -> usize {
        self.gates.get(trunk).map_or(0, limits::TrunkGate::queued)
    }

    fn pump(&mut self) {
        while let Some(o) = self.endpoint.poll_output() {
            match o {
                Output::Transmit(t) => self.transmits.push_back(t),
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    fn emit(&mut self, e: ApiEvent) {
        self.actions.push_back(Action::Event(e));
    }

    /// Emits a call's event with the call's tag.
    fn emit_call(&mut self, call: CallId, mut e: ApiEvent) {
        if let Some(tag) = self.calls.get(&call).and_then(|c| c.tag.clone()) {
            e.set_tag(tag);
        }
        self.emit(e);
    }

    fn unix(&self, t: Time) -> f64 {
        self.epoch_unix + t.0.as_secs_f64()
    }

    /// Starts a call. The trunk, the number rules and the agent or pool are checked here;
    /// then the call takes a channel of its trunk (or waits in the trunk's queue), the
    /// runtime opens its media, and [`Core::media_opened`] sends the INVITE.
    pub fn originate(
        &mut self,
        now: Time,
        spec: OriginateSpec,
    ) -> Result<CallInfo, OriginateError> {
        self.now = now;
        if self.shutting_down {
            return Err(OriginateError::ShuttingDown);
        }
        spec.check()?;
        let trunk_index = match &spec.trunk {
            None => 0,
            Some(name) => self
                .config
                .trunks
                .iter()
                .position(|t| t.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| OriginateError::NoSuchTrunk(name.to_owned()))?,
        };
        let t = self
            .config
            .trunks
            .get(trunk_index)
            .ok_or_else(|| OriginateError::NoSuchTrunk("(none configured)".into()))?;
        let dialled = match &t.numbering {
            Some(rules) => rules
                .rewrite(&spec.number)
                .map_err(|e| OriginateError::BadNumber(e.to_string()))?,
            None => spec.number.clone(),
        };
        let id = CallId(self.next_call);
        let (choice, agent_ext) = match &spec.agent {
            AgentChoice::Extension(ext) => {
                self.board.reserve(now, ext, id).map_err(|e| match e {
                    agents::AgentError::Busy(x) => OriginateError::AgentBusy(x),
                    agents::AgentError::Unknown(x) | agents::AgentError::LoggedOut(x) => {
                        OriginateError::AgentUnavailable(x)
                    }
                })?;
                (Choice::Fixed, Some(ext.clone()))
            }
            AgentChoice::Pool(name) => {
                let pool = self
                    .board
                    .pool_index(name)
                    .ok_or_else(|| OriginateError::NoSuchPool(name.clone()))?;
                if !self.board.pool_has_agents(pool) {
                    return Err(OriginateError::PoolEmpty(name.clone()));
                }
                (Choice::Pool(pool), None)
            }
        };
        let admitted = self.gates[trunk_index].admit(now, id);
        if admitted == limits::Admit::Full {
            if let Some(ext) = &agent_ext {
                self.board.release(now, ext, id, agents::Release::Unused, 0);
            }
            let gate = &self.gates[trunk_index];
            return Err(OriginateError::QueueFull {
                trunk: t.name.clone(),
                queued: gate.queued(),
                max_queue: gate.max_queue(),
            });
        }
        let target = Target {
            addr: t.proxy,
            transport: t.transport,
        };
        self.next_call += 1;
        let sip_call_id = self.endpoint.new_call_id();
        let tag = self.endpoint.new_tag();
        let session_id = u64::from(self.rng.next_u32());
        let mut customer = Leg::new(sip_call_id.clone(), tag, target, session_id);
        if let Some(rest) = self.trunk_failover.get(trunk_index) {
            let targets: Vec<Target> = std::iter::once(target)
                .chain(rest.iter().map(|&addr| Target {
                    addr,
                    transport: t.transport,
                }))
                .collect();
            customer.failover = Failover::after_first(&targets);
        }
        customer.apply_timer_config(self.trunk_timers.get(trunk_index).copied().flatten());
        self.by_sip_call_id.insert(
            sip_call_id,
            LegRef {
                call: id,
                side: Side::Customer,
            },
        );
        let trunk_name = t.name.clone();
        let queued = admitted == limits::Admit::Queued;
        let call = Call {
            id,
            number: spec.number.clone(),
            dialled,
            agent_ext,
            choice,
            tried: Vec::new(),
            tag: spec.tag.clone(),
            agent_headers: spec.agent_headers.clone(),
            caller_id: spec.caller_id.clone(),
            ring_timeout: spec.ring_timeout,
            trunk: trunk_index,
            ringback: spec.ringback.clone(),
            record: spec.record.clone(),
            state: if queued {
                CallState::Queued
            } else {
                CallState::Dialing
            },
            customer,
            agent: None,
            ports: None,
            created: now,
            progress: None,
            answered: None,
            bridged: None,
            deadline: None,
            abandon_at: None,
            abandoning: None,
            ending: None,
            totals: None,
            media_closing: false,
            holds_channel: !queued,
            role: Role::Customer { session: None },
        };
        self.calls.insert(id, call);
        let info = self.info(&self.calls[&id], now);
        self.emit_call(
            id,
            ApiEvent::CallCreated {
                call: id,
                number: spec.number.clone(),
                agent: info.agent.clone(),
                pool: info.pool.clone(),
                trunk: trunk_name,
                tag: None,
            },
        );
        if queued {
            let position = self.gates[trunk_index].queued();
            self.emit_call(
                id,
                ApiEvent::Queued {
                    call: id,
                    position,
                    tag: None,
                },
            );
        } else {
            self.actions.push_back(Action::OpenMedia { call: id });
        }
        self.service(now);
        Ok(info)
    }

    /// The media session is open with these local RTP ports: send the customer INVITE (at
    /// once, or when the trunk's `max_cps` allows).
    pub fn media_opened(&mut self, now: Time, call: CallId, customer_port: u16, agent_port: u16) {
        self.now = now;
        let Some(c) = self.calls.get_mut(&call) else {
            // The call ended while its media was being opened.
            self.actions.push_back(Action::CloseMedia { call });
            return;
        };
        c.ports = Some((customer_port, agent_port));
        if c.ending.is_some() {
            self.maybe_finish(now, call);
            self.service(now);
            return;
        }
        c.customer.rtp_port = customer_port;
        if matches!(c.role, Role::Session { .. }) {
            self.call_agent(now, call);
            self.service(now);
            return;
        }
        let trunk = c.trunk;
        if self.gates[trunk].invite_now(now, call) {
            self.dial_customer(now, call);
        }
        self.service(now);
    }

    /// Sends the customer INVITE of a call whose media is open.
    fn dial_customer(&mut self, now: Time, call: CallId) {
        self.announce_dtmf_modes(call);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(path) = c.record.clone() {
            self.actions.push_back(Action::Media {
                call,
                op: MediaOp::Record { path },
            });
        }
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let trunk = &self.config.trunks[c.trunk];
        let uri = Uri::Sip(SipUri::new(
            Some(&c.dialled),
            Host::Domain(trunk.domain.clone()),
            None,
        ));
        c.deadline = Some(now + c.ring_timeout.unwrap_or(self.config.originate_timeout));
        self.send_invite(now, call, Side::Customer, uri, None);
    }

    /// Media could not be opened or failed mid-call.
    pub fn media_event(&mut self, now: Time, call: CallId, report: MediaReport) {
        self.now = now;
        let Some((call, report)) = self.session_media_event(now, call, report) else {
            self.service(now);
            return;
        };
        match report {
            MediaReport::Timeout(side) => self.end_call(
                now,
                call,
                Ending {
                    outcome: CallOutcome::MediaTimeout,
                    status: 200,
                    cause: q850::TEMPORARY_FAILURE,
                    by: match side {
                        Side::Customer => HungUpBy::Customer,
                        Side::Agent => HungUpBy::Agent,
                    },
                },
            ),
            MediaReport::Digit {
                side,
                event,
                duration,
            } => self.on_media_digit(now, call, side, event, duration),
            MediaReport::Failed(_) => self.end_call(
                now,
                call,
                Ending {
                    outcome: CallOutcome::Failed,
                    status: 500,
                    cause: q850::TEMPORARY_FAILURE,
                    by: HungUpBy::Dialer,
                },
            ),
            MediaReport::MessageDone(Side::Customer) => self.abandon_message_done(now, call),
            MediaReport::MessageDone(Side::Agent) => {}
            MediaReport::Detached { call, totals } => {
                self.media_closed(now, call, totals);
            }
        }
        self.service(now);
    }

    /// The media session's final statistics; completes the CDR of an ended call.
    pub fn media_closed(&mut self, now: Time, call: CallId, totals: MediaTotals) {
        self.now = now;
        if let Some(c) = self.calls.get_mut(&call) {
            c.totals = Some(totals);
        }
        self.maybe_finish(now, call);
        self.service(now);
    }

    /// Hangs a call up from the API.
    pub fn hangup(&mut self, now: Time, call: CallId) -> Result<(), ControlError> {
        self.now = now;
        let Some(c) = self.calls.get(&call) else {
            return Err(ControlError::NoSuchCall(call.0));
        };
        // The outcome says how far the call got; who ended it is `hung_up_by`.
        let outcome = if c.bridged.is_some() {
            CallOutcome::Bridged
        } else {
            CallOutcome::Hangup
        };
        // Before the customer answered the INVITE is CANCELled and ends 487 Request
        // Terminated (RFC 3261 §9.2); after, the BYE ends it with 200.
        let status = if c.answered.is_some() { 200 } else { 487 };
        self.end_call(
            now,
            call,
            Ending {
                outcome,
                status,
                cause: q850::NORMAL_CLEARING,
                by: HungUpBy::Dialer,
            },
        );
        self.service(now);
        Ok(())
    }

    /// Ends every call (shutdown): BYE or CANCEL for each leg the dialer owns, and takes no
    /// new ones.
    pub fn hangup_all(&mut self, now: Time) {
        self.shutting_down = true;
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let _ = self.hangup(now, id);
        }
    }

    /// Number of live calls.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// A received SIP datagram.
    pub fn handle_datagram(
        &mut self,
        now: Time,
        transport: Transport,
        source: SocketAddr,
        bytes: &[u8],
    ) {
        self.endpoint.handle_datagram(now, transport, source, bytes);
        self.now = now;
        self.pump();
        self.service(now);
    }

    /// Timers.
    pub fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        self.endpoint.handle_timeout(now);
        self.pump();
        self.board.handle_timeout(now);
        let due: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| c.deadline.is_some_and(|d| d <= now))
            .map(|c| c.id)
            .collect();
        for id in due {
            if let Some(c) = self.calls.get_mut(&id) {
                c.deadline = None;
            }
            self.call_timer(now, id);
        }
        let abandoned: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| c.abandon_at.is_some_and(|d| d <= now))
            .map(|c| c.id)
            .collect();
        for id in abandoned {
            self.abandon_timer(now, id);
        }
        let due_sessions: Vec<(CallId, Side)> = self
            .calls
            .values()
            .flat_map(|c| {
                let legs = [
                    (Side::Customer, Some(&c.customer)),
                    (Side::Agent, c.agent.as_ref()),
                ];
                legs.into_iter()
                    .filter_map(|(side, l)| {
                        l.and_then(|l| l.session.as_ref())
                            .filter(|s| s.deadline <= now)
                            .map(|_| (c.id, side))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        for (id, side) in due_sessions {
            self.session_timer_due(now, id, side);
        }
        let due_updates: Vec<(CallId, Side)> = self
            .calls
            .values()
            .flat_map(|c| {
                let legs = [
                    (Side::Customer, Some(&c.customer)),
                    (Side::Agent, c.agent.as_ref()),
                ];
                legs.into_iter()
                    .filter(|(_, l)| {
                        l.is_some_and(|l| {
                            [l.update_retry, l.reinvite_deadline]
                                .into_iter()
                                .flatten()
                                .any(|t| t <= now)
                        })
                    })
                    .map(|(side, _)| (c.id, side))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (id, side) in due_updates {
            self.media_update_due(now, id, side);
        }
        self.pump();
        self.service(now);
    }

    /// What every input ends with: queued calls that may now go out, deferred INVITEs,
    /// waiting customers given to agents that became ready, and agent state events.
    fn service(&mut self, now: Time) {
        for trunk in 0..self.gates.len() {
            while let Some(call) = self.gates[trunk].poll_release(now) {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.holds_channel = true;
                    c.state = CallState::Dialing;
                    self.actions.push_back(Action::OpenMedia { call });
                } else {
                    self.gates[trunk].channel_freed();
                }
            }
            while let Some(call) = self.gates[trunk].poll_invite(now) {
                self.dial_customer(now, call);
            }
        }
        self.offer_to_newly_ready(now);
        while let Some(change) = self.board.poll_change() {
            let since = self.unix(change.at);
            self.emit(ApiEvent::AgentState {
                extension: change.extension,
                state: change.state,
                reason: change.reason,
                call: change.call,
                since,
            });
        }
        self.pump();
    }
}
