//! The virtual-time network of the B2BUA scenario tests: the core between a simulated
//! carrier (a proxy and its gateways on 192.0.2.50-59) and a simulated agent behind NAT,
//! with an optional seeded loss of SIP datagrams in both directions. A network built
//! with [`Net::with_pool`] has three agents (1000, 1001, 1002, see [`AGENTS`]) in pool
//! `sales`; `agent` is always 1000, the others are in `more_agents`.
#![allow(dead_code)]

use dialer::b2bua::{
    Action, AgentChoice, AgentState, AgentTarget, Core, CoreConfig, MediaOp, MediaReport,
    MediaTotals, OriginateError, OriginateSpec, PoolSettings, SessionTimerConfig, Strategy,
    TrunkSettings,
};
use dialer::control::{ApiEvent, CallId, Cdr};
use media::relay::Side;
use media::sdp::{answer_offer, Codec, LocalEndpoint, MediaConfig, SessionDescription};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sip_core::auth::Credentials;
use sip_core::endpoint::{make_response, Endpoint, EndpointConfig, Event, Output, Transmit};
use sip_core::message::{HeaderKind, Host, Message, Method, Request, Response, SipMessage, Uri};
use sip_core::time::Time;
use sip_core::transaction::{TransactionId, Transport};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DIALER: &str = "192.0.2.10:5060";
pub const CARRIER: &str = "192.0.2.50:5060";
/// The carrier's media gateway: where its Contact points, behind its proxy.
pub const CARRIER_GW: &str = "192.0.2.51:5060";
/// A second gateway of the carrier (a forked branch).
pub const CARRIER_GW2: &str = "192.0.2.52:5060";
pub const AGENT_PRIVATE: &str = "10.0.0.5:5060";
pub const AGENT_PUBLIC: &str = "203.0.113.7:40000";
/// The agents of a pool network: extension, address behind its NAT, address its packets
/// appear to come from. The first is `net.agent`.
pub const AGENTS: [(&str, &str, &str); 3] = [
    ("1000", AGENT_PRIVATE, AGENT_PUBLIC),
    ("1001", "10.0.0.6:5060", "203.0.113.7:40002"),
    ("1002", "10.0.0.7:5060", "203.0.113.7:40004"),
];
/// The pool of a pool network.
pub const POOL: &str = "sales";
/// The abandon message of [`sales_pool`].
pub const ABANDON_WAV: &str = "/var/lib/dialer/abandon.wav";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn rng(seed: u64) -> Box<ChaCha8Rng> {
    Box::new(ChaCha8Rng::seed_from_u64(seed))
}

pub struct Peer {
    pub endpoint: Endpoint,
    /// The address its packets appear to come from.
    pub seen_as: SocketAddr,
    pub events: Vec<Event>,
    pub received: Vec<(SocketAddr, Message)>,
}

impl Peer {
    fn new(local: &str, seen_as: &str, seed: u64) -> Peer {
        Peer {
            endpoint: Endpoint::new(EndpointConfig::new(addr(local)), rng(seed)),
            seen_as: addr(seen_as),
            events: vec![],
            received: vec![],
        }
    }

    pub fn take_request(&mut self, method: Method) -> Option<(TransactionId, Request)> {
        let pos = self.events.iter().position(
            |e| matches!(e, Event::Request { request, .. } if request.method == method),
        )?;
        match self.events.remove(pos) {
            Event::Request {
                transaction,
                request,
                ..
            } => Some((transaction, request)),
            _ => unreachable!("matched above"),
        }
    }

    /// Answers a request the peer received.
    pub fn respond(&mut self, now: Time, tx: TransactionId, r: Response) {
        self.endpoint
            .respond(now, tx, r)
            .expect("the peer can answer");
    }

    /// Sends a request to the dialer.
    pub fn send(&mut self, now: Time, r: Request) -> TransactionId {
        self.endpoint
            .send_request(
                now,
                r,
                sip_core::endpoint::Target {
                    addr: addr(DIALER),
                    transport: Transport::Udp,
                },
            )
            .expect("the peer can send")
    }

    /// The requests of a method the peer received, each once (retransmissions, same
    /// Call-ID and CSeq, left out).
    pub fn received_requests(&self, method: Method) -> Vec<Request> {
        let mut seen = std::collections::HashSet::new();
        self.received
            .iter()
            .filter_map(|(_, m)| match m {
                Message::Request(r) if r.method == method => Some(r.clone()),
                _ => None,
            })
            .filter(|r| seen.insert((r.call_id().unwrap().to_owned(), r.cseq().unwrap().seq)))
            .collect()
    }

    /// Answers every BYE the peer received with 200; returns how many.
    pub fn answer_byes(&mut self, now: Time) -> usize {
        let mut n = 0;
        while let Some((tx, bye)) = self.take_request(Method::Bye) {
            self.respond(now, tx, make_response(&bye, 200, None));
            n += 1;
        }
        n
    }
}

pub struct Net {
    pub now: Time,
    pub core: Core,
    pub carrier: Peer,
    pub agent: Peer,
    /// Agents 1001 and 1002 (see [`AGENTS`]); only a pool network calls them.
    pub more_agents: Vec<Peer>,
    pub actions: Vec<Action>,
    /// Every SIP message the dialer sent (and the network did not drop).
    pub sent: Vec<(SocketAddr, Message)>,
    /// When each message of `sent` went out (same index).
    pub sent_at: Vec<Time>,
    /// Every abandon message the core asked to play: when, for which call, which file.
    pub played: Vec<(Time, CallId, PathBuf)>,
    /// Probability that a SIP datagram is lost, each direction.
    pub loss: f64,
    loss_rng: ChaCha8Rng,
    pub dropped: usize,
    /// What the agent is offered.
    pub agent_codecs: Vec<Codec>,
    /// Addresses where nobody answers (a carrier edge that is down): what the dialer sends
    /// there is recorded in `sent` and goes no further.
    pub silent: Vec<SocketAddr>,
}

/// National numbers become `+1...` (the carrier wants E.164).
pub fn us_e164() -> trunk_profiles::NumberRewrite {
    let mut n = trunk_profiles::NumberRewrite::default();
    n.e164 = true;
    n.country_code = Some("1".into());
    n.national_prefix = "0".into();
    n.international_prefix = "00".into();
    n
}

pub fn trunk() -> TrunkSettings {
    TrunkSettings {
        name: "carrier".into(),
        proxy: addr(CARRIER),
        transport: Transport::Udp,
        domain: "carrier.example.net".into(),
        credentials: None,
        codecs: vec![Codec::Pcma, Codec::Pcmu],
        caller_id: "+15550100".into(),
        caller_name: Some("Outbound".into()),
        pai: true,
        max_channels: Some(2),
        max_cps: None,
        max_queue: 0,
        numbering: Some(us_e164()),
        // As the runtime fills it in when the file lists none: the proxy's host.
        redirect_hosts: vec![Host::Ipv4("192.0.2.50".parse().unwrap())],
        realm: None,
    }
}

/// Pool `sales` with agents 1000, 1001, 1002: longest idle, no wrap-up, never paused for
/// not answering, 3 attempts, abandoned after 2 s with [`ABANDON_WAV`]. Tests change what
/// they test.
pub fn sales_pool() -> PoolSettings {
    PoolSettings {
        name: POOL.into(),
        agents: AGENTS.iter().map(|a| a.0.to_owned()).collect(),
        strategy: Strategy::LongestIdle,
        wrap_up: Duration::ZERO,
        max_no_answer: 0,
        agent_attempts: 3,
        abandon_after: Duration::from_secs(2),
        abandon_message: Some(PathBuf::from(ABANDON_WAV)),
        login_paused: false,
        mode: dialer::b2bua::agents::AgentMode::Ring,
        hangup_key: None,
        connect_tone: None,
        idle_audio: None,
    }
}

fn is_carrier(a: SocketAddr) -> bool {
    matches!(a.ip(), std::net::IpAddr::V4(ip) if ip.octets()[..3] == [192, 0, 2] && (50..60).contains(&ip.octets()[3]))
}

impl Net {
    pub fn new() -> Net {
        Self::with_timers(None, None)
    }

    /// A network whose trunk has digest credentials (user `dialer`, password `s3cret`).
    pub fn with_credentials() -> Net {
        let mut net = Self::new();
        let mut trunk = trunk();
        trunk.credentials = Some(Credentials::with_password("dialer", "s3cret"));
        net.core = Self::core(trunk, None, None);
        net
    }

    /// A network whose core asks the trunk and the agents for these session timers.
    pub fn with_timers(
        trunk_timer: Option<SessionTimerConfig>,
        agent_timer: Option<SessionTimerConfig>,
    ) -> Net {
        Net {
            now: Time::ZERO,
            core: Self::core(trunk(), trunk_timer, agent_timer),
            carrier: Peer::new(CARRIER, CARRIER, 3),
            agent: Peer::new(AGENT_PRIVATE, AGENT_PUBLIC, 4),
            more_agents: AGENTS[1..]
                .iter()
                .zip(5..)
                .map(|((_, private, public), seed)| Peer::new(private, public, seed))
                .collect(),
            actions: vec![],
            sent: vec![],
            sent_at: vec![],
            played: vec![],
            loss: 0.0,
            loss_rng: ChaCha8Rng::seed_from_u64(0),
            dropped: 0,
            agent_codecs: vec![Codec::Pcmu, Codec::Pcma],
            silent: vec![],
        }
    }

    /// A network whose core has the agents of [`AGENTS`] (all logged out) and this pool.
    pub fn with_pool(pool: PoolSettings) -> Net {
        Self::with_trunk_and_pool(trunk(), pool)
    }

    /// A pool network on this trunk.
    pub fn with_trunk_and_pool(trunk: TrunkSettings, pool: PoolSettings) -> Net {
        let mut net = Self::new();
        net.core = Self::core(trunk, None, None);
        net.core
            .set_agents(AGENTS.iter().map(|a| a.0.to_owned()), vec![pool]);
        net
    }

    fn core(
        trunk: TrunkSettings,
        trunk_timer: Option<SessionTimerConfig>,
        agent_timer: Option<SessionTimerConfig>,
    ) -> Core {
        let config = CoreConfig {
            contact_host: Host::Ipv4("192.0.2.10".parse().unwrap()),
            contact_port: 5060,
            media_ip: "192.0.2.10".parse().unwrap(),
            trunks: vec![trunk],
            originate_timeout: Duration::from_secs(60),
            agent_ring_timeout: Duration::from_secs(20),
            max_redirects: 3,
        };
        let endpoint = Endpoint::new(EndpointConfig::new(addr(DIALER)), rng(1));
        let mut core = Core::new(config, endpoint, rng(2), 1.7e9);
        core.set_trunk_session_timer(0, trunk_timer);
        core.set_agent_session_timer(agent_timer);
        core
    }

    /// Drops each SIP datagram with probability `loss`, decided by a seeded RNG.
    pub fn lossy(mut self, loss: f64, seed: u64) -> Net {
        self.loss = loss;
        self.loss_rng = ChaCha8Rng::seed_from_u64(seed);
        self
    }

    fn lost(&mut self) -> bool {
        let lost = self.loss > 0.0 && self.loss_rng.gen_bool(self.loss);
        self.dropped += usize::from(lost);
        lost
    }

    pub fn agent_target() -> AgentTarget {
        AgentTarget {
            uri: Uri::parse("sip:1000@10.0.0.5:5060;ob").unwrap(),
            destination: addr(AGENT_PUBLIC),
            transport: Transport::Udp,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
        }
    }

    /// Where an agent of [`AGENTS`] is called: its Contact behind NAT, sent to its public
    /// address.
    pub fn target_of(extension: &str) -> AgentTarget {
        let (_, private, public) = agent_entry(extension);
        AgentTarget {
            uri: Uri::parse(&format!("sip:{extension}@{private};ob")).unwrap(),
            destination: addr(public),
            transport: Transport::Udp,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
        }
    }

    /// The simulated phone of an agent of [`AGENTS`].
    pub fn agent_peer(&mut self, extension: &str) -> &mut Peer {
        match AGENTS.iter().position(|a| a.0 == extension) {
            Some(0) => &mut self.agent,
            Some(i) => &mut self.more_agents[i - 1],
            None => panic!("no agent {extension} in the network"),
        }
    }

    /// The agent a message from the dialer to `to` reaches.
    fn agent_at(&mut self, to: SocketAddr) -> Option<&mut Peer> {
        if to == self.agent.seen_as {
            return Some(&mut self.agent);
        }
        self.more_agents.iter_mut().find(|p| p.seen_as == to)
    }

    fn peer_count(&self) -> usize {
        2 + self.more_agents.len()
    }

    fn peer(&mut self, i: usize) -> &mut Peer {
        match i {
            0 => &mut self.carrier,
            1 => &mut self.agent,
            _ => &mut self.more_agents[i - 2],
        }
    }

    /// The agent registers (or is given as static): reachable at [`Net::target_of`].
    pub fn register_agent(&mut self, extension: &str) {
        self.core
            .agent_reachable(self.now, extension, Self::target_of(extension));
        self.settle();
    }

    /// Originates a call for pool `sales`, with a tag.
    pub fn originate_pool(
        &mut self,
        number: &str,
        tag: Option<&str>,
    ) -> Result<CallId, OriginateError> {
        let mut spec = OriginateSpec::new(number, AgentChoice::Pool(POOL.into()));
        spec.tag = tag.map(str::to_owned);
        self.originate_spec(spec)
    }

    /// Originates a call as specified.
    pub fn originate_spec(&mut self, spec: OriginateSpec) -> Result<CallId, OriginateError> {
        let r = self.core.originate(self.now, spec).map(|info| info.id);
        self.settle();
        r
    }

    /// The carrier answers the next customer INVITE it has with a 200 (PCMA, like
    /// [`Net::customer_answers`]); returns the INVITE and the dialer's call for it.
    pub fn carrier_answers_next(&mut self, tag: &str) -> (Request, CallId) {
        let (tx, invite) = self.carrier_invite();
        let call = self
            .core
            .call_for_sip_call_id(invite.call_id().unwrap())
            .expect("the INVITE belongs to a call");
        let ok = carrier_ok(
            &invite,
            tag,
            Some(answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000)),
        );
        self.carrier.respond(self.now, tx, ok);
        self.settle();
        (invite, call)
    }

    /// The ACK the carrier got for the 2xx of this customer INVITE.
    pub fn carrier_ack_for(&self, invite: &Request) -> Request {
        self.carrier
            .received_requests(Method::Ack)
            .into_iter()
            .find(|a| a.call_id().ok() == invite.call_id().ok())
            .expect("the carrier got the ACK")
    }

    /// The customer hangs up: the carrier sends BYE in the dialog of this INVITE.
    pub fn customer_hangs_up(&mut self, invite: &Request) {
        let ack = self.carrier_ack_for(invite);
        let bye = in_dialog(&ack, Method::Bye, 2, "sip:dialer@192.0.2.10:5060");
        self.carrier.send(self.now, bye);
        self.settle();
    }

    /// An agent rings (180) for the INVITE it has; returns it to be answered later.
    pub fn agent_rings(&mut self, extension: &str) -> (TransactionId, Request) {
        let now = self.now;
        let peer = self.agent_peer(extension);
        let (tx, invite) = peer
            .take_request(Method::Invite)
            .unwrap_or_else(|| panic!("an INVITE reached agent {extension}"));
        peer.respond(now, tx, make_response(&invite, 180, Some("a1")));
        self.settle();
        (tx, invite)
    }

    /// An agent answers (200, PCMU) the INVITE it rings for.
    pub fn agent_picks_up(&mut self, extension: &str, tx: TransactionId, invite: &Request) {
        let (_, private, _) = agent_entry(extension);
        let mut ok = make_response(invite, 200, Some("a1"));
        ok.headers.add(
            HeaderKind::Contact,
            format!("<sip:{extension}@{private};ob>"),
        );
        let ip = private.split(':').next().unwrap();
        ok.set_body(
            "application/sdp",
            answer(invite, vec![Codec::Pcmu], ip, 4000),
        );
        let now = self.now;
        self.agent_peer(extension).respond(now, tx, ok);
        self.settle();
    }

    /// An agent answers its INVITE with 180 and 200.
    pub fn agent_answers_as(&mut self, extension: &str) {
        let (tx, invite) = self.agent_rings(extension);
        self.agent_picks_up(extension, tx, &invite);
    }

    /// An agent refuses its INVITE with this status.
    pub fn agent_refuses(&mut self, extension: &str, status: u16) {
        let now = self.now;
        let peer = self.agent_peer(extension);
        let (tx, invite) = peer
            .take_request(Method::Invite)
            .unwrap_or_else(|| panic!("an INVITE reached agent {extension}"));
        peer.respond(now, tx, make_response(&invite, status, Some("a1")));
        self.settle();
    }

    /// The media task reports that the abandon message of the call has played.
    pub fn message_done(&mut self, call: CallId) {
        self.core
            .media_event(self.now, call, MediaReport::MessageDone(Side::Customer));
        self.settle();
    }

    /// The `agent_state` events so far: extension, state, reason, call, in order.
    pub fn agent_changes(&self) -> Vec<(String, AgentState, Option<String>, Option<CallId>)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                ApiEvent::AgentState {
                    extension,
                    state,
                    reason,
                    call,
                    ..
                } => Some((extension.clone(), *state, reason.clone(), *call)),
                _ => None,
            })
            .collect()
    }

    /// An agent's state as `GET /agents` has it.
    pub fn agent_state(&self, extension: &str) -> AgentState {
        self.core
            .agent_states()
            .into_iter()
            .find(|a| a.extension == extension)
            .unwrap_or_else(|| panic!("agent {extension} is on the board"))
            .state
    }

    /// The INVITEs the dialer sent to an agent of [`AGENTS`] (no retransmissions), when.
    pub fn invites_to_agent(&self, extension: &str) -> Vec<(Time, Request)> {
        let to = addr(agent_entry(extension).2);
        self.sent_unique_timed(Method::Invite)
            .into_iter()
            .filter(|(_, t, _)| *t == to)
            .map(|(at, _, r)| (at, r))
            .collect()
    }

    /// The requests of a method the dialer sent, each once, with when they first went out.
    pub fn sent_unique_timed(&self, method: Method) -> Vec<(Time, SocketAddr, Request)> {
        let mut seen = std::collections::HashSet::new();
        self.sent
            .iter()
            .zip(&self.sent_at)
            .filter_map(|((to, m), at)| match m {
                Message::Request(r) if r.method == method => Some((*at, *to, r.clone())),
                _ => None,
            })
            .filter(|(_, to, r)| {
                seen.insert((*to, r.call_id().unwrap().to_owned(), r.cseq().unwrap().seq))
            })
            .collect()
    }

    /// Moves every queued packet until the network is quiet; answers OpenMedia and
    /// CloseMedia.
    pub fn settle(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            while let Some(a) = self.core.poll_action() {
                moved = true;
                if let Action::OpenMedia { call } = a {
                    self.core.media_opened(self.now, call, 20000, 20002);
                }
                if let Action::CloseMedia { call } = a {
                    self.core.media_closed(
                        self.now,
                        call,
                        MediaTotals {
                            packets_to_agent: 250,
                            packets_to_customer: 240,
                            ..MediaTotals::default()
                        },
                    );
                }
                if let Action::Media {
                    call,
                    op: MediaOp::PlayMessage { path, .. },
                } = &a
                {
                    self.played.push((self.now, *call, path.clone()));
                }
                self.actions.push(a);
            }
            while let Some(t) = self.core.poll_transmit() {
                moved = true;
                if !self.lost() {
                    self.deliver_from_dialer(t);
                }
            }
            for which in 0..self.peer_count() {
                loop {
                    let peer = self.peer(which);
                    let Some(o) = peer.endpoint.poll_output() else {
                        break;
                    };
                    moved = true;
                    let seen_as = peer.seen_as;
                    match o {
                        Output::Transmit(t) => {
                            assert_eq!(t.to, addr(DIALER), "peers only talk to the dialer");
                            if !self.lost() {
                                self.core
                                    .handle_datagram(self.now, t.transport, seen_as, &t.bytes);
                            }
                        }
                        Output::Event(e) => peer.events.push(e),
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the network never settled");
    }

    fn deliver_from_dialer(&mut self, t: Transmit) {
        let msg = Message::parse(&t.bytes).expect("the dialer sends parseable SIP");
        self.sent.push((t.to, msg.clone()));
        self.sent_at.push(self.now);
        if self.silent.contains(&t.to) {
            return;
        }
        let now = self.now;
        let peer = if is_carrier(t.to) {
            &mut self.carrier
        } else if let Some(agent) = self.agent_at(t.to) {
            agent
        } else {
            panic!(
                "the dialer sent to {} which nobody listens on: {msg:?}",
                t.to
            );
        };
        peer.received.push((t.to, msg));
        peer.endpoint
            .handle_datagram(now, t.transport, addr(DIALER), &t.bytes);
    }

    /// Runs every timer of the core and the peers up to `now + by`.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let peers = (0..self.peer_count())
                .filter_map(|i| self.peer(i).endpoint.next_timeout())
                .min();
            let next = [self.core.next_timeout(), peers]
                .into_iter()
                .flatten()
                .filter(|t| *t <= end)
                .min();
            let Some(at) = next else { break };
            self.now = at.max(self.now);
            self.core.handle_timeout(self.now);
            for i in 0..self.peer_count() {
                let now = self.now;
                self.peer(i).endpoint.handle_timeout(now);
            }
            self.settle();
        }
        self.now = end;
    }

    /// Advances in small steps until `f` finds something, at most `limit`.
    pub fn wait_for<T>(
        &mut self,
        limit: Duration,
        mut f: impl FnMut(&mut Net) -> Option<T>,
    ) -> Option<T> {
        let end = self.now + limit;
        loop {
            if let Some(v) = f(self) {
                return Some(v);
            }
            if self.now >= end {
                return None;
            }
            self.advance(Duration::from_millis(100));
        }
    }

    /// Agent 1000 reachable at its NAT address with this network's codecs.
    pub fn agent_registers(&mut self) {
        let target = AgentTarget {
            codecs: self.agent_codecs.clone(),
            ..Self::agent_target()
        };
        self.core.agent_reachable(self.now, "1000", target);
    }

    pub fn originate(&mut self) {
        self.agent_registers();
        self.core
            .originate(
                self.now,
                OriginateSpec::new("5551234567", AgentChoice::Extension("1000".into())),
            )
            .expect("originate");
        self.settle();
    }

    pub fn events(&self) -> Vec<&ApiEvent> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    pub fn cdrs(&self) -> Vec<Cdr> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                ApiEvent::Hangup { cdr, .. } => Some((**cdr).clone()),
                _ => None,
            })
            .collect()
    }

    pub fn cdr(&self) -> Cdr {
        self.cdrs()
            .into_iter()
            .next()
            .expect("the call has ended with a CDR")
    }

    pub fn media_ops(&self) -> Vec<&MediaOp> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::Media { op, .. } => Some(op),
                _ => None,
            })
            .collect()
    }

    /// The requests of a method the dialer sent, each once (no retransmissions).
    pub fn sent_unique(&self, method: Method) -> Vec<(SocketAddr, Request)> {
        let mut seen = std::collections::HashSet::new();
        self.sent_requests(method)
            .into_iter()
            .filter(|(to, r)| {
                seen.insert((*to, r.call_id().unwrap().to_owned(), r.cseq().unwrap().seq))
            })
            .collect()
    }

    pub fn sent_requests(&self, method: Method) -> Vec<(SocketAddr, Request)> {
        self.sent
            .iter()
            .filter_map(|(to, m)| match m {
                Message::Request(r) if r.method == method => Some((*to, r.clone())),
                _ => None,
            })
            .collect()
    }

    /// The customer INVITE as the carrier has it (the first that arrived).
    pub fn carrier_invite(&mut self) -> (TransactionId, Request) {
        self.carrier
            .take_request(Method::Invite)
            .expect("INVITE reached the carrier")
    }

    /// The carrier answers the customer INVITE with a 200 (PCMA, media on
    /// 192.0.2.51:30000, Contact its gateway behind the proxy); returns the dialer's ACK as
    /// the carrier got it. The agent is being called.
    pub fn customer_answers(&mut self) -> Request {
        self.originate();
        let (tx, invite) = self.carrier_invite();
        let ok = carrier_ok(
            &invite,
            "c1",
            Some(answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000)),
        );
        self.carrier.respond(self.now, tx, ok);
        self.settle();
        self.carrier.received_requests(Method::Ack)[0].clone()
    }

    /// The agent answers its INVITE with 180 and 200 (PCMU).
    pub fn agent_answers(&mut self) {
        let (tx, invite) = self
            .agent
            .take_request(Method::Invite)
            .expect("INVITE reached the agent");
        self.agent
            .respond(self.now, tx, make_response(&invite, 180, Some("a1")));
        let mut ok = make_response(&invite, 200, Some("a1"));
        ok.headers
            .add(HeaderKind::Contact, "<sip:1000@10.0.0.5:5060;ob>");
        ok.set_body(
            "application/sdp",
            answer(&invite, vec![Codec::Pcmu], "10.0.0.5", 4000),
        );
        self.agent.respond(self.now, tx, ok);
        self.settle();
    }
}

fn agent_entry(extension: &str) -> (&'static str, &'static str, &'static str) {
    *AGENTS
        .iter()
        .find(|a| a.0 == extension)
        .unwrap_or_else(|| panic!("no agent {extension} in the network"))
}

/// The SDP answer a peer gives to the dialer's offer.
pub fn answer(offer: &Request, codecs: Vec<Codec>, ip: &str, port: u16) -> Vec<u8> {
    let offer = SessionDescription::parse_bytes(&offer.body).expect("the dialer's offer parses");
    let config = MediaConfig {
        codecs,
        ..MediaConfig::default()
    };
    let local = LocalEndpoint {
        address: ip.parse().unwrap(),
        rtp_port: port,
        session_id: 7,
        session_version: 1,
    };
    let (sdp, _) = answer_offer(&offer, &config, &local).expect("a common codec");
    sdp.to_sdp_string().into_bytes()
}

/// A 2xx from the carrier's gateway behind its record-routing proxy.
pub fn carrier_ok(invite: &Request, tag: &str, sdp: Option<Vec<u8>>) -> Response {
    let mut ok = make_response(invite, 200, Some(tag));
    ok.headers
        .add(HeaderKind::RecordRoute, "<sip:192.0.2.50:5060;lr>");
    ok.headers
        .add(HeaderKind::Contact, "<sip:gw@192.0.2.51:5060>");
    if let Some(sdp) = sdp {
        ok.set_body("application/sdp", sdp);
    }
    ok
}

/// A request from a peer inside the dialog the dialer's request `ours` (an INVITE or ACK
/// it sent) belongs to: From and To swapped, the given CSeq.
pub fn in_dialog(ours: &Request, method: Method, cseq: u32, uri: &str) -> Request {
    let mut r = Request::new(method.clone(), Uri::parse(uri).unwrap());
    r.headers
        .add(HeaderKind::From, ours.to_header().unwrap().to_string());
    r.headers
        .add(HeaderKind::To, ours.from_header().unwrap().to_string());
    r.headers.add(HeaderKind::CallId, ours.call_id().unwrap());
    r.headers.add(HeaderKind::CSeq, format!("{cseq} {method}"));
    r
}
