//! The virtual-time network of the B2BUA scenario tests: the core between a simulated
//! carrier (a proxy and its gateways on 192.0.2.50-59) and a simulated agent behind NAT,
//! with an optional seeded loss of SIP datagrams in both directions.
#![allow(dead_code)]

use dialer::b2bua::{
    Action, AgentChoice, AgentTarget, Core, CoreConfig, MediaOp, MediaTotals, OriginateSpec,
    SessionTimerConfig, TrunkSettings,
};
use dialer::control::{ApiEvent, Cdr};
use media::sdp::{answer_offer, Codec, LocalEndpoint, MediaConfig, SessionDescription};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sip_core::auth::Credentials;
use sip_core::endpoint::{make_response, Endpoint, EndpointConfig, Event, Output, Transmit};
use sip_core::message::{HeaderKind, Host, Message, Method, Request, Response, SipMessage, Uri};
use sip_core::time::Time;
use sip_core::transaction::{TransactionId, Transport};
use std::net::SocketAddr;
use std::time::Duration;

pub const DIALER: &str = "192.0.2.10:5060";
pub const CARRIER: &str = "192.0.2.50:5060";
/// The carrier's media gateway: where its Contact points, behind its proxy.
pub const CARRIER_GW: &str = "192.0.2.51:5060";
/// A second gateway of the carrier (a forked branch).
pub const CARRIER_GW2: &str = "192.0.2.52:5060";
pub const AGENT_PRIVATE: &str = "10.0.0.5:5060";
pub const AGENT_PUBLIC: &str = "203.0.113.7:40000";

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
    pub actions: Vec<Action>,
    /// Every SIP message the dialer sent (and the network did not drop).
    pub sent: Vec<(SocketAddr, Message)>,
    /// Probability that a SIP datagram is lost, each direction.
    pub loss: f64,
    loss_rng: ChaCha8Rng,
    pub dropped: usize,
    /// What the agent is offered.
    pub agent_codecs: Vec<Codec>,
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
            actions: vec![],
            sent: vec![],
            loss: 0.0,
            loss_rng: ChaCha8Rng::seed_from_u64(0),
            dropped: 0,
            agent_codecs: vec![Codec::Pcmu, Codec::Pcma],
        }
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
                self.actions.push(a);
            }
            while let Some(t) = self.core.poll_transmit() {
                moved = true;
                if !self.lost() {
                    self.deliver_from_dialer(t);
                }
            }
            for which in 0..2 {
                loop {
                    let peer = if which == 0 {
                        &mut self.carrier
                    } else {
                        &mut self.agent
                    };
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
        let peer = if is_carrier(t.to) {
            &mut self.carrier
        } else if t.to == addr(AGENT_PUBLIC) {
            &mut self.agent
        } else {
            panic!(
                "the dialer sent to {} which nobody listens on: {msg:?}",
                t.to
            );
        };
        peer.received.push((t.to, msg));
        peer.endpoint
            .handle_datagram(self.now, t.transport, addr(DIALER), &t.bytes);
    }

    /// Runs every timer of the core and the peers up to `now + by`.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = [
                self.core.next_timeout(),
                self.carrier.endpoint.next_timeout(),
                self.agent.endpoint.next_timeout(),
            ]
            .into_iter()
            .flatten()
            .filter(|t| *t <= end)
            .min();
            let Some(at) = next else { break };
            self.now = at.max(self.now);
            self.core.handle_timeout(self.now);
            self.carrier.endpoint.handle_timeout(self.now);
            self.agent.endpoint.handle_timeout(self.now);
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
