//! The endpoint: routes each datagram to its transaction, runs the timers, and queues what
//! to send and what happened.
//!
//! Drive loop (the runtime owns sockets and the clock):
//! 1. `handle_datagram(now, transport, source, bytes)` for every received message;
//! 2. `handle_timeout(now)` when `next_timeout()` is reached;
//! 3. commands from the call logic: `send_request`, `respond`, `cancel`, `send_stateless`;
//! 4. drain `poll_output()`: [`Output::Transmit`] to send, [`Output::Event`] for the call logic.

use crate::message::{
    scan, HeaderKind, Host, Message, Method, ParseError, ParseLimits, Request, Response,
    SipMessage, Uri, Via,
};
use crate::time::Time;
use crate::transaction::{
    AckKey, Role, State, Timer, TimerConfig, Transaction, TransactionId, TransactionKey, Transport,
};
use rand::RngCore;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The RFC 3261 branch prefix (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Endpoint settings.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// T1, T2, T4.
    pub timers: TimerConfig,
    /// Parser limits for received messages.
    pub limits: ParseLimits,
    /// The sent-by host we put in Via (our address, or the advertised public one).
    pub via_host: Host,
    /// The sent-by port.
    pub via_port: u16,
    /// The sent-by port of requests over TLS (the TLS listener's), when it differs.
    pub tls_via_port: Option<u16>,
    /// User-Agent added to requests we send, when set.
    pub user_agent: Option<String>,
    /// Most server transactions alive at once; a request that would start one more is
    /// answered 503 statelessly (RFC 3261 §21.5.4) and reported as [`Event::Overloaded`], so
    /// a flood cannot grow the table without bound.
    pub max_server_transactions: usize,
}

/// The default [`EndpointConfig::max_server_transactions`]: a non-INVITE server transaction
/// lives 64*T1 = 32 s after its answer over UDP (Timer J), so this holds the BYEs of 1500
/// calls ending every second.
pub const DEFAULT_MAX_SERVER_TRANSACTIONS: usize = 50_000;

impl EndpointConfig {
    /// Defaults for a given sent-by address.
    pub fn new(local: SocketAddr) -> Self {
        EndpointConfig {
            timers: TimerConfig::default(),
            limits: ParseLimits::default(),
            via_host: Host::from(local.ip()),
            via_port: local.port(),
            tls_via_port: None,
            user_agent: None,
            max_server_transactions: DEFAULT_MAX_SERVER_TRANSACTIONS,
        }
    }
}

/// Bytes to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The transport to send on.
    pub transport: Transport,
    /// The destination (for TCP, the connection to that address).
    pub to: SocketAddr,
    /// The message.
    pub bytes: Vec<u8>,
}

/// Something the call logic must know.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A new request: a server transaction was created (INVITE: 100 Trying already sent).
    Request {
        /// The server transaction to answer with [`Endpoint::respond`].
        transaction: TransactionId,
        /// The request, its top Via stamped with `received`/`rport`.
        request: Request,
        /// Where it came from.
        source: SocketAddr,
        /// How it came.
        transport: Transport,
    },
    /// A response to a request we sent.
    Response {
        /// The client transaction.
        transaction: TransactionId,
        /// The response.
        response: Response,
    },
    /// An ACK for a 2xx (or an ACK matching no transaction): dialog business.
    Ack {
        /// The INVITE server transaction whose 2xx it acknowledges, when known.
        invite: Option<TransactionId>,
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: SocketAddr,
    },
    /// The peer cancelled a pending INVITE; the CANCEL got its 200. Answer the INVITE
    /// with 487 (RFC 3261 §9.2).
    Cancelled {
        /// The INVITE server transaction.
        invite: TransactionId,
    },
    /// A timer ran out: B or F (no final response), H (no ACK for a non-2xx final), or
    /// L with no ACK for our 2xx (RFC 3261 §13.3.1.4: the call logic should send BYE).
    Timeout {
        /// The transaction.
        transaction: TransactionId,
        /// Which timer.
        timer: Timer,
        /// The transaction's method.
        method: Method,
    },
    /// A response that matches no transaction (such as a 2xx retransmission after
    /// the INVITE transaction ended; the dialog re-ACKs it, RFC 3261 §13.2.2.4).
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        source: SocketAddr,
    },
    /// A request that would have started a server transaction beyond
    /// [`EndpointConfig::max_server_transactions`]: it was answered 503 once, statelessly.
    Overloaded {
        /// Where it came from.
        source: SocketAddr,
        /// Its method.
        method: Method,
    },
    /// Input that was rejected (a request got a 400/505/513 where it could be answered).
    Malformed {
        /// Where it came from.
        source: SocketAddr,
        /// Why.
        error: String,
    },
}

/// What the endpoint hands the runtime.
// Outputs are moved out of the queue one at a time right after they were queued; boxing the
// event would add an allocation to every message received.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send these bytes.
    Transmit(Transmit),
    /// Tell the call logic.
    Event(Event),
}

/// API misuse by the call logic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// No such transaction (it may have ended).
    #[error("no transaction {0:?}")]
    UnknownTransaction(TransactionId),
    /// The transaction cannot take this action in its state.
    #[error("transaction {id:?} cannot {action} in state {state:?}")]
    InvalidState {
        /// The transaction.
        id: TransactionId,
        /// Its state.
        state: State,
        /// What was attempted.
        action: &'static str,
    },
    /// The request lacks what the action needs.
    #[error("the request cannot be sent: {0}")]
    BadRequest(String),
}

/// Where a request goes; for a connection-oriented transport, the flow (RFC 5626 §3.3): the
/// runtime sends it over its connection to that address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// Destination address.
    pub addr: SocketAddr,
    /// Transport.
    pub transport: Transport,
}

/// A SIP endpoint: the transaction layer and the transport-facing half of the stack.
pub struct Endpoint {
    config: EndpointConfig,
    rng: Box<dyn RngCore + Send>,
    next_id: u64,
    transactions: HashMap<TransactionId, Transaction>,
    by_key: HashMap<TransactionKey, TransactionId>,
    by_ack: HashMap<AckKey, TransactionId>,
    /// Server transactions in `transactions`.
    servers: usize,
    timers: BinaryHeap<Reverse<(Time, TransactionId, TimerSlot)>>,
    output: VecDeque<Output>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("transactions", &self.transactions.len())
            .field("queued", &self.output.len())
            .finish()
    }
}

/// Timer wrapper ordered for the heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TimerSlot(u8);

const TIMERS: [Timer; 12] = [
    Timer::A,
    Timer::B,
    Timer::D,
    Timer::E,
    Timer::F,
    Timer::G,
    Timer::H,
    Timer::I,
    Timer::J,
    Timer::K,
    Timer::L,
    Timer::M,
];

fn slot(t: Timer) -> TimerSlot {
    // TIMERS lists every variant, so position always finds it.
    TimerSlot(TIMERS.iter().position(|x| *x == t).unwrap_or(0) as u8)
}

impl Endpoint {
    /// An endpoint with an injected random source (branches, tags, Call-IDs).
    pub fn new(config: EndpointConfig, rng: Box<dyn RngCore + Send>) -> Self {
        Endpoint {
            config,
            rng,
            next_id: 1,
            transactions: HashMap::new(),
            servers: 0,
            by_key: HashMap::new(),
            by_ack: HashMap::new(),
            timers: BinaryHeap::new(),
            output: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Changes the Via sent-by (after learning the public address, for instance).
    pub fn set_via(&mut self, host: Host, port: u16) {
        self.config.via_host = host;
        self.config.via_port = port;
    }

    /// Number of live transactions.
    pub fn transaction_count(&self) -> usize {
        self.transactions.len()
    }

    /// The state of a transaction, if it is alive.
    pub fn state(&self, id: TransactionId) -> Option<State> {
        self.transactions.get(&id).map(|t| t.state)
    }

    /// Next queued output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.output.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn next_timeout(&mut self) -> Option<Time> {
        while let Some(Reverse((at, id, s))) = self.timers.peek().copied() {
            if self.is_live_timer(at, id, s) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Fresh random hex of `n` bytes.
    pub fn random_hex(&mut self, n: usize) -> String {
        let mut b = vec![0u8; n];
        self.rng.fill_bytes(&mut b);
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// A new branch with the magic cookie.
    pub fn new_branch(&mut self) -> String {
        format!("{MAGIC_COOKIE}{}", self.random_hex(8))
    }

    /// A new From/To tag (RFC 3261 §19.3: at least 32 bits of randomness).
    pub fn new_tag(&mut self) -> String {
        self.random_hex(6)
    }

    /// A new Call-ID (RFC 3261 §8.1.1.4).
    pub fn new_call_id(&mut self) -> String {
        self.random_hex(12)
    }

    /// Random bytes from the injected source (for cnonces and the like).
    pub fn rng(&mut self) -> &mut dyn RngCore {
        self.rng.as_mut()
    }

    fn is_live_timer(&self, at: Time, id: TransactionId, s: TimerSlot) -> bool {
        self.transactions
            .get(&id)
            .and_then(|t| t.deadline(TIMERS[s.0 as usize]))
            == Some(at)
    }

    fn arm(&mut self, id: TransactionId, timer: Timer, now: Time, after: Duration) {
        if let Some(t) = self.transactions.get_mut(&id) {
            let at = t.arm(timer, now, after);
            self.timers.push(Reverse((at, id, slot(timer))));
        }
    }

    fn transmit(&mut self, transport: Transport, to: SocketAddr, bytes: Vec<u8>) {
        self.output.push_back(Output::Transmit(Transmit {
            transport,
            to,
            bytes,
        }));
    }

    fn event(&mut self, e: Event) {
        self.output.push_back(Output::Event(e));
    }

    fn alloc_id(&mut self) -> TransactionId {
        let id = TransactionId(self.next_id);
        self.next_id += 1;
        id
    }

    fn our_via(&mut self, transport: Transport, branch: &str) -> Via {
        let port = match transport {
            Transport::Tls => self.config.tls_via_port.unwrap_or(self.config.via_port),
            Transport::Udp | Transport::Tcp => self.config.via_port,
        };
        Via::new(
            transport.via_token(),
            self.config.via_host.clone(),
            Some(port),
            branch,
        )
    }

    fn prepare(&mut self, request: &mut Request, transport: Transport, branch: &str) {
        let via = self.our_via(transport, branch).to_string();
        request.headers.add_first(HeaderKind::Via, via);
        if request.headers.get(HeaderKind::MaxForwards).is_none() {
            request.headers.add(HeaderKind::MaxForwards, "70");
        }
        if let Some(ua) = &self.config.user_agent {
            if request.headers.get(HeaderKind::UserAgent).is_none() {
                request.headers.add(HeaderKind::UserAgent, ua.clone());
            }
        }
        if request.headers.get(HeaderKind::ContentLength).is_none() {
            request
                .headers
                .add(HeaderKind::ContentLength, request.body.len().to_string());
        }
    }

    /// Sends a request in a new client transaction. The endpoint adds the top Via (with a
    /// new branch and `rport`), Max-Forwards and Content-Length when missing.
    pub fn send_request(
        &mut self,
        now: Time,
        mut request: Request,
        target: Target,
    ) -> Result<TransactionId, EndpointError> {
        if request.method == Method::Ack {
            return Err(EndpointError::BadRequest(
                "an ACK has no transaction; use send_stateless".into(),
            ));
        }
        request
            .cseq()
            .map_err(|e| EndpointError::BadRequest(e.to_string()))?;
        let branch = self.new_branch();
        self.prepare(&mut request, target.transport, &branch);
        Ok(self.start_client(now, request, target, branch))
    }

    fn start_client(
        &mut self,
        now: Time,
        request: Request,
        target: Target,
        branch: String,
    ) -> TransactionId {
        let id = self.alloc_id();
        let bytes = request.to_bytes();
        let key = TransactionKey::Client {
            branch,
            method: request.method.as_str().to_owned(),
        };
        let invite = request.method == Method::Invite;
        let t = Transaction {
            role: Role::Client,
            method: request.method.clone(),
            state: if invite {
                State::Calling
            } else {
                State::Trying
            },
            transport: target.transport,
            peer: target.addr,
            request: bytes.clone(),
            last: None,
            interval: self.config.timers.t1,
            timers: Vec::with_capacity(2),
            provisional_seen: false,
            cancel_pending: false,
            ack_key: None,
            key: key.clone(),
        };
        self.transactions.insert(id, t);
        self.by_key.insert(key, id);
        let reliable = target.transport.is_reliable();
        let c = self.config.timers.clone();
        if invite {
            // RFC 3261 §17.1.1.2: Timer A only for unreliable transports; B always.
            if !reliable {
                self.arm(id, Timer::A, now, c.initial(Timer::A, false));
            }
            self.arm(id, Timer::B, now, c.initial(Timer::B, reliable));
        } else {
            // RFC 3261 §17.1.2.2
            if !reliable {
                self.arm(id, Timer::E, now, c.initial(Timer::E, false));
            }
            self.arm(id, Timer::F, now, c.initial(Timer::F, reliable));
        }
        self.transmit(target.transport, target.addr, bytes);
        id
    }

    /// Sends a request outside any transaction: the ACK for a 2xx (RFC 3261 §13.2.2.4,
    /// §17.1.1.3). A top Via with a new branch is added unless one is already present
    /// (re-sending the same ACK for a retransmitted 2xx keeps its branch).
    pub fn send_stateless(&mut self, mut request: Request, target: Target) {
        if request.headers.get(HeaderKind::Via).is_none() {
            let branch = self.new_branch();
            self.prepare(&mut request, target.transport, &branch);
        }
        let bytes = request.to_bytes();
        self.transmit(target.transport, target.addr, bytes);
    }

    /// Sends a response bytes-for-bytes outside any transaction (a stateless 400 and the
    /// like). The destination follows RFC 3261 §18.2.2 and RFC 3581 §4 via the top Via.
    pub fn send_response_stateless(
        &mut self,
        response: &Response,
        transport: Transport,
        fallback: SocketAddr,
    ) {
        // RFC 3261 §18.2.2: on a reliable transport the response goes back over the
        // connection the request came on, whatever the Via says.
        let to = match transport.is_reliable() {
            true => fallback,
            false => response
                .top_via()
                .ok()
                .and_then(|v| response_destination(&v))
                .unwrap_or(fallback),
        };
        self.transmit(transport, to, response.to_bytes());
    }

    /// The runtime lost a connection (`flow` is its transport and remote address): every
    /// client transaction waiting for a final response on it ends now with the
    /// [`Event::Timeout`] its Timer B or F would have given later, since nothing sent on a
    /// closed connection arrives (RFC 3261 §17.1.4: a transport failure is reported to the
    /// TU; §8.1.3.1). Server transactions are left to their timers: their requests were
    /// received, and the call logic still answers them.
    pub fn flow_failed(&mut self, flow: Target) {
        if !flow.transport.is_reliable() {
            return;
        }
        let mut failed: Vec<(TransactionId, Method)> = self
            .transactions
            .iter()
            .filter(|(_, t)| {
                t.role == Role::Client
                    && t.transport == flow.transport
                    && t.peer == flow.addr
                    && matches!(t.state, State::Calling | State::Trying | State::Proceeding)
            })
            .map(|(id, t)| (*id, t.method.clone()))
            .collect();
        failed.sort_by_key(|(id, _)| *id);
        for (id, method) in failed {
            let timer = match method {
                Method::Invite => Timer::B,
                _ => Timer::F,
            };
            self.event(Event::Timeout {
                transaction: id,
                timer,
                method,
            });
            self.terminate(id);
        }
    }

    /// Answers a server transaction with a final response sent once, and forgets the
    /// transaction: no retransmission (Timer G), no wait for the ACK (Timer H), as a
    /// stateless UAS answers (RFC 3261 §8.2.7). For requests from parties that are owed no
    /// more than one packet: each retransmission of theirs gets one answer, and a spoofed
    /// source gets nothing amplified.
    pub fn respond_once(
        &mut self,
        id: TransactionId,
        response: Response,
    ) -> Result<(), EndpointError> {
        let t = self
            .transactions
            .get(&id)
            .ok_or(EndpointError::UnknownTransaction(id))?;
        if t.role != Role::Server || response.status < 200 {
            return Err(EndpointError::InvalidState {
                id,
                state: t.state,
                action: "answer once (it needs a server transaction and a final response)",
            });
        }
        let (transport, peer) = (t.transport, t.peer);
        self.transmit(transport, peer, response.to_bytes());
        self.terminate(id);
        Ok(())
    }

    /// Answers a server transaction.
    pub fn respond(
        &mut self,
        now: Time,
        id: TransactionId,
        response: Response,
    ) -> Result<(), EndpointError> {
        let c = self.config.timers.clone();
        let t = self
            .transactions
            .get_mut(&id)
            .ok_or(EndpointError::UnknownTransaction(id))?;
        if t.role != Role::Server {
            return Err(EndpointError::InvalidState {
                id,
                state: t.state,
                action: "respond (it is a client transaction)",
            });
        }
        let status = response.status;
        let bytes = response.to_bytes();
        let (transport, peer, reliable) = (t.transport, t.peer, t.reliable());
        let invalid = |state| EndpointError::InvalidState {
            id,
            state,
            action: "send this response",
        };
        if t.is_invite() {
            match (t.state, status) {
                (State::Proceeding, 100..=199) => {
                    t.last = Some(bytes.clone());
                }
                (State::Proceeding, 200..=299) => {
                    // RFC 6026 §8.5: Accepted; the 2xx is retransmitted by the UAS core until
                    // the ACK arrives (RFC 3261 §13.3.1.4), here with timer G's schedule.
                    t.state = State::Accepted;
                    t.last = Some(bytes.clone());
                    let key = AckKey {
                        call_id: response.call_id().unwrap_or_default().to_owned(),
                        cseq: response.cseq().map(|c| c.seq).unwrap_or(0),
                        from_tag: response
                            .from_header()
                            .ok()
                            .and_then(|f| f.tag().map(str::to_owned))
                            .unwrap_or_default(),
                        to_tag: response
                            .to_header()
                            .ok()
                            .and_then(|f| f.tag().map(str::to_owned))
                            .unwrap_or_default(),
                    };
                    t.ack_key = Some(key.clone());
                    t.interval = c.t1;
                    self.by_ack.insert(key, id);
                    if !reliable {
                        self.arm(id, Timer::G, now, c.t1);
                    }
                    self.arm(id, Timer::L, now, c.initial(Timer::L, reliable));
                }
                (State::Accepted, 200..=299) => {
                    t.last = Some(bytes.clone());
                }
                (State::Proceeding, 300..=699) => {
                    t.state = State::Completed;
                    t.last = Some(bytes.clone());
                    t.interval = c.t1;
                    // RFC 3261 §17.2.1: G only when unreliable; H always.
                    if !reliable {
                        self.arm(id, Timer::G, now, c.initial(Timer::G, false));
                    }
                    self.arm(id, Timer::H, now, c.initial(Timer::H, reliable));
                }
                (state, _) => return Err(invalid(state)),
            }
        } else {
            match (t.state, status) {
                (State::Trying | State::Proceeding, 100..=199) => {
                    t.state = State::Proceeding;
                    t.last = Some(bytes.clone());
                }
                (State::Trying | State::Proceeding, 200..=699) => {
                    t.state = State::Completed;
                    t.last = Some(bytes.clone());
                    // RFC 3261 §17.2.2: Timer J, 64*T1 unreliable, zero reliable.
                    self.arm(id, Timer::J, now, c.initial(Timer::J, reliable));
                }
                (state, _) => return Err(invalid(state)),
            }
        }
        self.transmit(transport, peer, bytes);
        Ok(())
    }

    /// Cancels a pending INVITE client transaction (RFC 3261 §9.1). Before any provisional
    /// response the CANCEL is held and sent when one arrives. Returns the CANCEL's
    /// transaction when it was sent now.
    pub fn cancel(
        &mut self,
        now: Time,
        invite: TransactionId,
    ) -> Result<Option<TransactionId>, EndpointError> {
        let t = self
            .transactions
            .get_mut(&invite)
            .ok_or(EndpointError::UnknownTransaction(invite))?;
        if t.role != Role::Client || !t.is_invite() {
            return Err(EndpointError::InvalidState {
                id: invite,
                state: t.state,
                action: "be cancelled (only a client INVITE can)",
            });
        }
        match t.state {
            State::Calling if !t.provisional_seen => {
                t.cancel_pending = true;
                Ok(None)
            }
            State::Calling | State::Proceeding => Ok(Some(self.send_cancel(now, invite)?)),
            state => Err(EndpointError::InvalidState {
                id: invite,
                state,
                action: "be cancelled after a final response",
            }),
        }
    }

    fn send_cancel(
        &mut self,
        now: Time,
        invite: TransactionId,
    ) -> Result<TransactionId, EndpointError> {
        let t = &self.transactions[&invite];
        let (transport, peer) = (t.transport, t.peer);
        let original = match Message::parse(&t.request) {
            Ok(Message::Request(r)) => r,
            _ => return Err(EndpointError::BadRequest("stored INVITE unreadable".into())),
        };
        let top = original
            .top_via()
            .map_err(|e| EndpointError::BadRequest(e.to_string()))?;
        let branch = top.branch().unwrap_or_default().to_owned();
        let mut cancel = Request::new(Method::Cancel, original.uri.clone());
        // RFC 3261 §9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via as
        // the INVITE; Route headers copied.
        cancel.headers.add(HeaderKind::Via, top.to_string());
        for kind in [HeaderKind::From, HeaderKind::To, HeaderKind::CallId] {
            if let Some(v) = original.headers.get(kind) {
                cancel.headers.add(kind, v);
            }
        }
        let seq = original.cseq().map(|c| c.seq).unwrap_or(1);
        cancel
            .headers
            .add(HeaderKind::CSeq, format!("{seq} CANCEL"));
        for r in original.headers.get_all(HeaderKind::Route) {
            cancel.headers.add(HeaderKind::Route, r);
        }
        cancel.headers.add(HeaderKind::MaxForwards, "70");
        cancel.headers.add(HeaderKind::ContentLength, "0");
        Ok(self.start_client(
            now,
            cancel,
            Target {
                addr: peer,
                transport,
            },
            branch,
        ))
    }

    /// Processes the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: Time) {
        while let Some(Reverse((at, id, s))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.is_live_timer(at, id, s) {
                continue;
            }
            let timer = TIMERS[s.0 as usize];
            if let Some(t) = self.transactions.get_mut(&id) {
                t.disarm(timer);
            }
            self.fire(now, id, timer);
        }
    }

    fn fire(&mut self, now: Time, id: TransactionId, timer: Timer) {
        let c = self.config.timers.clone();
        let Some(t) = self.transactions.get_mut(&id) else {
            return;
        };
        let (transport, peer, state, method) = (t.transport, t.peer, t.state, t.method.clone());
        match timer {
            Timer::A | Timer::E => {
                let bytes = t.request.clone();
                let next = if timer == Timer::E && state == State::Proceeding {
                    // RFC 3261 §17.1.2.2: in Proceeding, retransmit every T2.
                    c.t2
                } else {
                    c.next_interval(timer, t.interval)
                };
                t.interval = next;
                self.transmit(transport, peer, bytes);
                self.arm(id, timer, now, next);
            }
            Timer::G => {
                if let Some(bytes) = t.last.clone() {
                    let next = c.next_interval(Timer::G, t.interval);
                    t.interval = next;
                    self.transmit(transport, peer, bytes);
                    self.arm(id, Timer::G, now, next);
                }
            }
            Timer::B | Timer::F | Timer::H => {
                self.event(Event::Timeout {
                    transaction: id,
                    timer,
                    method,
                });
                self.terminate(id);
            }
            Timer::L => {
                // The ACK removes the transaction's entry from `by_ack`; still present means
                // the 2xx was never acknowledged.
                let unacked = state == State::Accepted
                    && t.role == Role::Server
                    && t.ack_key
                        .as_ref()
                        .is_some_and(|k| self.by_ack.get(k) == Some(&id));
                if unacked {
                    self.event(Event::Timeout {
                        transaction: id,
                        timer,
                        method,
                    });
                }
                self.terminate(id);
            }
            Timer::D | Timer::I | Timer::J | Timer::K | Timer::M => self.terminate(id),
        }
    }

    fn terminate(&mut self, id: TransactionId) {
        if let Some(t) = self.transactions.remove(&id) {
            if t.role == Role::Server {
                self.servers -= 1;
            }
            self.by_key.remove(&t.key);
            if let Some(k) = t.ack_key {
                if self.by_ack.get(&k) == Some(&id) {
                    self.by_ack.remove(&k);
                }
            }
        }
    }

    /// Processes one received datagram (or one message deframed from a stream).
    pub fn handle_datagram(
        &mut self,
        now: Time,
        transport: Transport,
        source: SocketAddr,
        bytes: &[u8],
    ) {
        if bytes
            .iter()
            .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0))
        {
            // Keep-alives (RFC 5626 §3.5.1, and the single CRLF or NUL many phones send).
            return;
        }
        match crate::message::parse_datagram(bytes, &self.config.limits) {
            Ok(Message::Request(r)) => self.handle_request(now, transport, source, r),
            Ok(Message::Response(r)) => self.handle_response(now, source, r),
            Err(e) => self.reject_unparsable(transport, source, bytes, &e),
        }
    }

    fn reject_unparsable(
        &mut self,
        transport: Transport,
        source: SocketAddr,
        bytes: &[u8],
        e: &ParseError,
    ) {
        let is_response = bytes.len() >= 4 && bytes[..4].eq_ignore_ascii_case(b"SIP/");
        if !is_response {
            // RFC 3261 §16.3 / §8.2: a malformed request gets 400 when enough of it can be
            // read to address a response; it goes back to the source (RFC 3581 §4).
            if let Some(resp) = lenient_error_response(bytes, e) {
                self.transmit(transport, source, resp.to_bytes());
            }
        }
        self.event(Event::Malformed {
            source,
            error: e.to_string(),
        });
    }

    fn handle_request(
        &mut self,
        now: Time,
        transport: Transport,
        source: SocketAddr,
        mut request: Request,
    ) {
        // RFC 3261 §8.2: the headers every request carries, once each (RFC 4475 §3.3.8-9).
        let problem = [
            (HeaderKind::Via, "Via", false),
            (HeaderKind::From, "From", true),
            (HeaderKind::To, "To", true),
            (HeaderKind::CallId, "Call-ID", true),
            (HeaderKind::CSeq, "CSeq", true),
        ]
        .iter()
        .find_map(|(k, name, single)| match request.headers.count(*k) {
            0 => Some(format!("missing {name}")),
            n if *single && n > 1 => Some(format!("more than one {name}")),
            _ => None,
        })
        .or_else(|| {
            let mut cl = request.headers.get_all(HeaderKind::ContentLength);
            let first = cl.next();
            cl.any(|v| Some(v) != first)
                .then(|| "conflicting Content-Length values".to_owned())
        });
        // Stamp received/rport before anything else so every response routes back
        // through the NAT binding the request came through (RFC 3261 §18.2.1, RFC 3581 §4).
        let via_ok = stamp_via(&mut request, source);
        if let Some(p) = problem {
            if via_ok && request.method != Method::Ack {
                let mut resp = make_response(&request, 400, None);
                resp.reason = format!("Bad Request - {p}");
                self.send_response_stateless(&resp, transport, source);
            }
            self.event(Event::Malformed { source, error: p });
            return;
        }
        let Ok(top) = request.top_via() else {
            return;
        };
        let key = server_key(&request, &top, &request.method);
        match request.method {
            Method::Ack => self.handle_ack(now, source, request, &top),
            Method::Cancel => self.handle_cancel(now, transport, source, request, key, &top),
            _ => {
                if let Some(&id) = self.by_key.get(&key) {
                    self.retransmitted_request(id);
                    return;
                }
                if self.servers >= self.config.max_server_transactions {
                    // RFC 3261 §21.5.4: 503 with Retry-After, and nothing kept for it.
                    let mut resp = make_response(&request, 503, None);
                    resp.headers.add(HeaderKind::RetryAfter, "5");
                    self.send_response_stateless(&resp, transport, source);
                    self.event(Event::Overloaded {
                        source,
                        method: request.method.clone(),
                    });
                    return;
                }
                let id = self.new_server(now, transport, source, &request, key, &top);
                if request.method == Method::Invite {
                    // RFC 3261 §17.2.1: 100 Trying at once, so the client stops retransmitting.
                    let trying = make_response(&request, 100, None);
                    let _ = self.respond(now, id, trying);
                }
                self.event(Event::Request {
                    transaction: id,
                    request,
                    source,
                    transport,
                });
            }
        }
    }

    fn new_server(
        &mut self,
        _now: Time,
        transport: Transport,
        source: SocketAddr,
        request: &Request,
        key: TransactionKey,
        top: &Via,
    ) -> TransactionId {
        let id = self.alloc_id();
        let invite = request.method == Method::Invite;
        let peer = if transport.is_reliable() {
            source
        } else {
            response_destination(top).unwrap_or(source)
        };
        self.transactions.insert(
            id,
            Transaction {
                role: Role::Server,
                method: request.method.clone(),
                state: if invite {
                    State::Proceeding
                } else {
                    State::Trying
                },
                transport,
                peer,
                request: Vec::new(),
                last: None,
                interval: self.config.timers.t1,
                timers: Vec::new(),
                provisional_seen: false,
                cancel_pending: false,
                ack_key: None,
                key: key.clone(),
            },
        );
        self.by_key.insert(key, id);
        self.servers += 1;
        id
    }

    fn retransmitted_request(&mut self, id: TransactionId) {
        let Some(t) = self.transactions.get(&id) else {
            return;
        };
        // RFC 3261 §17.2.1 / §17.2.2: resend the last response; absorb when none yet, and in
        // Accepted (RFC 6026 §7.1) the INVITE retransmission is absorbed too.
        if t.state != State::Accepted {
            if let Some(bytes) = t.last.clone() {
                let (tr, peer) = (t.transport, t.peer);
                self.transmit(tr, peer, bytes);
            }
        }
    }

    fn handle_ack(&mut self, now: Time, source: SocketAddr, request: Request, top: &Via) {
        let invite_key = server_key(&request, top, &Method::Invite);
        if let Some(&id) = self.by_key.get(&invite_key) {
            let c = self.config.timers.clone();
            let t = self.transactions.get_mut(&id);
            if let Some(t) = t {
                match t.state {
                    State::Completed => {
                        // RFC 3261 §17.2.1: ACK for a non-2xx is absorbed by the transaction.
                        t.state = State::Confirmed;
                        t.disarm(Timer::G);
                        t.disarm(Timer::H);
                        let reliable = t.reliable();
                        self.arm(id, Timer::I, now, c.initial(Timer::I, reliable));
                        return;
                    }
                    State::Confirmed => return,
                    _ => {}
                }
            }
        }
        let from_tag = request
            .from_header()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned));
        let to_tag = request
            .to_header()
            .ok()
            .and_then(|f| f.tag().map(str::to_owned));
        let key = AckKey {
            call_id: request.call_id().unwrap_or_default().to_owned(),
            cseq: request.cseq().map(|c| c.seq).unwrap_or(0),
            from_tag: from_tag.unwrap_or_default(),
            to_tag: to_tag.unwrap_or_default(),
        };
        let invite = self.by_ack.remove(&key);
        if let Some(id) = invite {
            // The 2xx is acknowledged: stop retransmitting it (RFC 3261 §13.3.1.4).
            if let Some(t) = self.transactions.get_mut(&id) {
                t.disarm(Timer::G);
            }
        }
        self.event(Event::Ack {
            invite,
            request,
            source,
        });
    }

    fn handle_cancel(
        &mut self,
        now: Time,
        transport: Transport,
        source: SocketAddr,
        request: Request,
        key: TransactionKey,
        top: &Via,
    ) {
        if let Some(&id) = self.by_key.get(&key) {
            self.retransmitted_request(id);
            return;
        }
        let id = self.new_server(now, transport, source, &request, key, top);
        let invite_key = server_key(&request, top, &Method::Invite);
        let invite = self.by_key.get(&invite_key).copied();
        // RFC 3261 §9.2: 200 to the CANCEL when the INVITE is found, 481 otherwise; the
        // INVITE gets 487 from the call logic if it is still pending.
        let status = if invite.is_some() { 200 } else { 481 };
        let _ = self.respond(now, id, make_response(&request, status, None));
        if let Some(inv) = invite {
            if self.transactions.get(&inv).map(|t| t.state) == Some(State::Proceeding) {
                self.event(Event::Cancelled { invite: inv });
            }
        }
    }

    fn handle_response(&mut self, now: Time, source: SocketAddr, response: Response) {
        let (Ok(top), Ok(cseq)) = (response.top_via(), response.cseq()) else {
            self.event(Event::Malformed {
                source,
                error: "response without Via or CSeq".into(),
            });
            return;
        };
        let key = TransactionKey::Client {
            branch: top.branch().unwrap_or_default().to_owned(),
            method: cseq.method.as_str().to_owned(),
        };
        let Some(&id) = self.by_key.get(&key) else {
            self.event(Event::StrayResponse { response, source });
            return;
        };
        self.client_response(now, id, response);
    }

    fn client_response(&mut self, now: Time, id: TransactionId, response: Response) {
        let c = self.config.timers.clone();
        let Some(t) = self.transactions.get_mut(&id) else {
            return;
        };
        let status = response.status;
        let reliable = t.reliable();
        let mut pass_up = true;
        let mut send_cancel = false;
        if t.is_invite() {
            match (t.state, status) {
                (State::Calling | State::Proceeding, 100..=199) => {
                    t.state = State::Proceeding;
                    t.provisional_seen = true;
                    // Figure 5: no retransmissions and no Timer B once Proceeding.
                    t.disarm(Timer::A);
                    t.disarm(Timer::B);
                    if t.cancel_pending {
                        t.cancel_pending = false;
                        send_cancel = true;
                    }
                }
                (State::Calling | State::Proceeding, 200..=299) => {
                    // RFC 6026 §8.4: Accepted; further 2xx go to the TU for re-ACK.
                    t.state = State::Accepted;
                    t.disarm(Timer::A);
                    t.disarm(Timer::B);
                    self.arm(id, Timer::M, now, c.initial(Timer::M, reliable));
                }
                (State::Accepted, 200..=299) => {}
                (State::Calling | State::Proceeding, 300..=699) => {
                    t.state = State::Completed;
                    t.disarm(Timer::A);
                    t.disarm(Timer::B);
                    let ack = build_non_2xx_ack(&t.request, &response);
                    let (tr, peer) = (t.transport, t.peer);
                    if let Some(ack) = ack {
                        t.last = Some(ack.clone());
                        self.transmit(tr, peer, ack);
                    }
                    self.arm(id, Timer::D, now, c.initial(Timer::D, reliable));
                }
                (State::Completed, 300..=699) => {
                    // RFC 3261 §17.1.1.2: retransmitted final: resend the ACK, not to the TU.
                    if let Some(ack) = t.last.clone() {
                        let (tr, peer) = (t.transport, t.peer);
                        self.transmit(tr, peer, ack);
                    }
                    pass_up = false;
                }
                _ => pass_up = false,
            }
        } else {
            match (t.state, status) {
                (State::Trying | State::Proceeding, 100..=199) => t.state = State::Proceeding,
                (State::Trying | State::Proceeding, 200..=699) => {
                    t.state = State::Completed;
                    t.disarm(Timer::E);
                    t.disarm(Timer::F);
                    self.arm(id, Timer::K, now, c.initial(Timer::K, reliable));
                }
                _ => pass_up = false,
            }
        }
        if pass_up {
            self.event(Event::Response {
                transaction: id,
                response,
            });
        }
        if send_cancel {
            let _ = self.send_cancel(now, id);
        }
    }
}

/// The server transaction key of a request (RFC 3261 §17.2.3); ACK and CANCEL look up
/// the INVITE with `method` = INVITE.
fn server_key(request: &Request, top: &Via, method: &Method) -> TransactionKey {
    let method = method.as_str().to_owned();
    match top.branch() {
        Some(b) if b.starts_with(MAGIC_COOKIE) => TransactionKey::Server {
            branch: b.to_owned(),
            sent_by: format!("{}:{}", top.host, top.port.unwrap_or(5060)),
            method,
        },
        _ => {
            // RFC 2543 matching: Request-URI, From tag, Call-ID, CSeq number and top Via.
            let mut via = top.clone();
            via.params.remove("received");
            via.params.remove("rport");
            TransactionKey::Legacy {
                request_uri: request.uri.to_string(),
                call_id: request.call_id().unwrap_or_default().to_owned(),
                from_tag: request
                    .from_header()
                    .ok()
                    .and_then(|f| f.tag().map(str::to_owned))
                    .unwrap_or_default(),
                cseq: request.cseq().map(|c| c.seq).unwrap_or(0),
                top_via: via.to_string(),
                method,
            }
        }
    }
}

/// Adds `received` (when the source IP differs from the sent-by, or when `rport` is
/// asked for) and fills `rport` with the source port (RFC 3261 §18.2.1, RFC 3581 §4).
/// Returns false when the request has no readable top Via.
fn stamp_via(request: &mut Request, source: SocketAddr) -> bool {
    let Some(value) = request.headers.get(HeaderKind::Via) else {
        return false;
    };
    let mut items = scan::split_list(value);
    let Some(first) = items.next() else {
        return false;
    };
    let rest: Vec<&str> = items.collect();
    let Ok(mut via) = Via::parse(first) else {
        return false;
    };
    let wants_rport = via.rport().is_some();
    if via.host.ip() != Some(source.ip()) || wants_rport {
        via.params.set("received", Some(&source.ip().to_string()));
    }
    if wants_rport {
        via.params.set("rport", Some(&source.port().to_string()));
    }
    let mut new = via.to_string();
    for r in rest {
        new.push_str(", ");
        new.push_str(r);
    }
    request.headers.replace_first(HeaderKind::Via, &new);
    true
}

/// Where a response goes on an unreliable transport (RFC 3261 §18.2.2, RFC 3581 §4):
/// the `received` address (else the sent-by host when it is an IP), at the `rport` port
/// (else the sent-by port, else 5060). `maddr` is not used by this UA.
pub fn response_destination(top: &Via) -> Option<SocketAddr> {
    let ip: IpAddr = match top.received().and_then(|r| r.parse().ok()) {
        Some(ip) => ip,
        None => top.host.ip()?,
    };
    let port = match top.rport() {
        Some(Some(p)) => p,
        _ => top.port.unwrap_or(5060),
    };
    Some(SocketAddr::new(ip, port))
}

/// Where a response goes over a reliable transport when the connection its request came on
/// has closed (RFC 3261 §18.2.2): a new connection to the `received` address (else the
/// sent-by host, when it is an IP address) at the sent-by port, or the transport's default
/// (5060 for TCP, 5061 for TLS). `None` for a sent-by name without `received`: resolving it
/// (RFC 3263 §5) is left to the client, whose transaction times out and retries.
pub fn reliable_fallback(top: &Via, transport: Transport) -> Option<SocketAddr> {
    let ip: IpAddr = match top.received().and_then(|r| r.parse().ok()) {
        Some(ip) => ip,
        None => top.host.ip()?,
    };
    let default = match transport {
        Transport::Tls => 5061,
        Transport::Udp | Transport::Tcp => 5060,
    };
    Some(SocketAddr::new(ip, top.port.unwrap_or(default)))
}

/// A response to `request` per RFC 3261 §8.2.6.2: Via, From, To, Call-ID and CSeq copied,
/// the To tag added (when given and the request had none), Content-Length 0.
pub fn make_response(request: &Request, status: u16, to_tag: Option<&str>) -> Response {
    let mut r = Response::new(status);
    for v in request.headers.get_all(HeaderKind::Via) {
        r.headers.add(HeaderKind::Via, v);
    }
    if let Some(f) = request.headers.get(HeaderKind::From) {
        r.headers.add(HeaderKind::From, f);
    }
    if let Some(to) = request.headers.get(HeaderKind::To) {
        let mut to = to.to_owned();
        if let (Some(tag), Ok(parsed)) = (to_tag, request.to_header()) {
            if parsed.tag().is_none() && status > 100 {
                to.push_str(";tag=");
                to.push_str(tag);
            }
        }
        r.headers.add(HeaderKind::To, to);
    }
    if let Some(c) = request.headers.get(HeaderKind::CallId) {
        r.headers.add(HeaderKind::CallId, c);
    }
    if let Some(c) = request.headers.get(HeaderKind::CSeq) {
        r.headers.add(HeaderKind::CSeq, c);
    }
    if status == 100 {
        // RFC 3261 §8.2.6.1: a Timestamp in the request is echoed in 100 Trying.
        if let Some(ts) = request.headers.get(HeaderKind::Timestamp) {
            r.headers.add(HeaderKind::Timestamp, ts);
        }
    }
    r.headers.add(HeaderKind::ContentLength, "0");
    r
}

/// The ACK for a non-2xx final response, built by the client transaction
/// (RFC 3261 §17.1.1.3).
fn build_non_2xx_ack(request_bytes: &[u8], response: &Response) -> Option<Vec<u8>> {
    let Ok(Message::Request(original)) = Message::parse(request_bytes) else {
        return None;
    };
    let mut ack = Request::new(Method::Ack, original.uri.clone());
    let top = original.headers.get(HeaderKind::Via)?;
    let top_value = scan::split_list(top).next()?.to_owned();
    ack.headers.add(HeaderKind::Via, top_value);
    ack.headers.add(HeaderKind::MaxForwards, "70");
    if let Some(f) = original.headers.get(HeaderKind::From) {
        ack.headers.add(HeaderKind::From, f);
    }
    // The To header of the response: it carries the tag of the UAS that answered.
    if let Some(t) = response.headers.get(HeaderKind::To) {
        ack.headers.add(HeaderKind::To, t);
    }
    if let Some(c) = original.headers.get(HeaderKind::CallId) {
        ack.headers.add(HeaderKind::CallId, c);
    }
    let seq = original.cseq().ok()?.seq;
    ack.headers.add(HeaderKind::CSeq, format!("{seq} ACK"));
    for r in original.headers.get_all(HeaderKind::Route) {
        ack.headers.add(HeaderKind::Route, r);
    }
    ack.headers.add(HeaderKind::ContentLength, "0");
    Some(ack.to_bytes())
}

/// A 400 (or 505/513) for a request that did not parse, built from whatever Via, From,
/// To, Call-ID and CSeq lines can be found. `None` when there is not enough to address it.
/// Header lines a best-effort error response copies at most, well inside the parser's
/// default header limit.
const LENIENT_MAX_LINES: usize = 64;

fn lenient_error_response(bytes: &[u8], e: &ParseError) -> Option<Response> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut r = Response::new(e.response_status());
    let mut found = 0;
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let kind = HeaderKind::from_name(name.trim());
        let wanted = matches!(
            kind,
            HeaderKind::Via
                | HeaderKind::From
                | HeaderKind::To
                | HeaderKind::CallId
                | HeaderKind::CSeq
        );
        // Only values that are themselves well-formed are echoed, so the 400 parses; and no
        // more lines than a message may hold (the request may have been refused for having
        // too many).
        if found >= LENIENT_MAX_LINES {
            break;
        }
        if wanted && crate::message::parse::validate_value(kind, value.trim()).is_ok() {
            r.headers.add(kind, value.trim());
            found += 1;
        }
    }
    if r.headers.get(HeaderKind::Via).is_none() || found < 3 {
        return None;
    }
    let reason: String = e
        .to_string()
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect();
    r.headers.add(
        HeaderKind::Warning,
        format!("399 dialer {}", scan::quote(&reason)),
    );
    r.headers.add(HeaderKind::ContentLength, "0");
    Some(r)
}

/// The Request-URI a request is sent to after applying a route set (RFC 3261 §12.2.1.1,
/// §16.12.1.1 strict routing), returned with the URI of the next hop.
pub fn next_hop(route_set: &[Uri], remote_target: &Uri) -> Uri {
    match route_set.first() {
        Some(Uri::Sip(first)) if first.is_loose_router() => route_set[0].clone(),
        Some(first) => first.clone(),
        None => remote_target.clone(),
    }
}
