//! A registration against a simulated registrar (a second endpoint with a
//! `DigestServer`), in virtual time over a simulated network that can play a NAT.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sip_core::auth::{
    Algorithm, Credentials, DigestRequest, DigestServer, Secret, ServerConfig, Verification,
};
use sip_core::endpoint::{make_response, Endpoint, EndpointConfig, Event, Output};
use sip_core::message::{HeaderKind, Host, Method, Request, Response, SipMessage, Uri};
use sip_core::registration::{
    Action, ContactAddress, Failure, Keepalive, Registration, RegistrationConfig,
    RegistrationEvent, RegistrationState, RetryReason,
};
use sip_core::time::Time;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

const CLIENT: &str = "192.168.1.10:5060";
/// The NAT's public side of the client's mapping.
const PUBLIC: &str = "203.0.113.7:40000";
const REGISTRAR: &str = "198.51.100.5:5060";
const LATENCY: Duration = Duration::from_millis(10);
const REALM: &str = "example.net";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn at(s: u64) -> Time {
    Time(secs(s))
}

/// What the registrar does with the next REGISTER, before looking at credentials.
#[derive(Clone, Debug)]
enum Scripted {
    /// No response at all: the client's transaction times out.
    Drop,
    /// This status, with these extra headers.
    Respond(u16, Vec<(HeaderKind, String)>),
}

/// How the registrar tells the client the granted expiry.
#[derive(Clone, Copy, Debug)]
enum Grant {
    /// `;expires=` on each Contact, and no Expires header.
    ContactParam,
    /// Only an Expires header with this value.
    ExpiresHeader(u32),
    /// Both: Contact parameters and an Expires header with this value.
    Both(u32),
}

struct Registrar {
    ep: Endpoint,
    digest: DigestServer,
    user: String,
    password: String,
    /// Answer refused credentials with 403 rather than a new challenge.
    forbid_on_reject: bool,
    min_expires: Option<u32>,
    max_expires: u32,
    grant: Grant,
    script: VecDeque<Scripted>,
    /// Contact `user@host:port` -> expiry.
    bindings: BTreeMap<String, Time>,
    registers: Vec<(Time, Request)>,
    options: Vec<(Time, Request)>,
    /// Every final response sent to a REGISTER.
    responses: Vec<(Time, Response)>,
}

impl Registrar {
    fn new(server: ServerConfig) -> Self {
        Registrar {
            ep: Endpoint::new(
                EndpointConfig::new(addr(REGISTRAR)),
                Box::new(ChaCha8Rng::seed_from_u64(1000)),
            ),
            digest: DigestServer::new(server),
            user: "dialer".into(),
            password: "s3cret".into(),
            forbid_on_reject: false,
            min_expires: None,
            max_expires: 3600,
            grant: Grant::ContactParam,
            script: VecDeque::new(),
            bindings: BTreeMap::new(),
            registers: vec![],
            options: vec![],
            responses: vec![],
        }
    }

    fn on_event(&mut self, now: Time, event: Event) {
        let Event::Request {
            transaction,
            request,
            ..
        } = event
        else {
            return;
        };
        if request.method == Method::Options {
            self.options.push((now, request.clone()));
            let ok = make_response(&request, 200, Some("reg"));
            self.ep.respond(now, transaction, ok).unwrap();
            return;
        }
        assert_eq!(request.method, Method::Register);
        self.registers.push((now, request.clone()));
        let response = self.answer(now, &request);
        if let Some(response) = response {
            self.responses.push((now, response.clone()));
            self.ep.respond(now, transaction, response).unwrap();
        }
    }

    fn challenge(&self, now: Time, request: &Request, stale: bool) -> Response {
        let mut r = make_response(request, 401, Some("reg"));
        for c in self.digest.challenges(now.0, stale) {
            r.headers.add(HeaderKind::WwwAuthenticate, c);
        }
        r
    }

    fn answer(&mut self, now: Time, request: &Request) -> Option<Response> {
        match self.script.pop_front() {
            Some(Scripted::Drop) => return None,
            Some(Scripted::Respond(status, headers)) => {
                let mut r = make_response(request, status, Some("reg"));
                for (k, v) in headers {
                    r.headers.add(k, v);
                }
                return Some(r);
            }
            None => {}
        }
        let Some(authorization) = request.headers.get(HeaderKind::Authorization) else {
            return Some(self.challenge(now, request, false));
        };
        let uri = request.uri.to_string();
        let digest = DigestRequest {
            method: "REGISTER",
            uri: &uri,
            body: &request.body,
        };
        let (user, password) = (self.user.clone(), self.password.clone());
        match self.digest.verify(now.0, &digest, authorization, |u| {
            (u == user).then_some(Secret::Password(password))
        }) {
            Verification::Authenticated { .. } => {}
            Verification::Stale => return Some(self.challenge(now, request, true)),
            Verification::Rejected(_) if self.forbid_on_reject => {
                return Some(make_response(request, 403, Some("reg")))
            }
            Verification::Rejected(_) => return Some(self.challenge(now, request, false)),
        }
        let header_expires = request.expires().unwrap();
        let contacts = request.contacts().unwrap();
        // RFC 3261 §10.3 step 6 and 7: a too-short expiry is refused with Min-Expires.
        for c in &contacts {
            let a = c.address().unwrap();
            let e = a
                .params
                .value("expires")
                .map(|v| v.parse::<u32>().unwrap())
                .or(header_expires)
                .unwrap_or(3600);
            if let Some(min) = self.min_expires {
                if e > 0 && e < min {
                    let mut r = make_response(request, 423, Some("reg"));
                    r.headers.add(HeaderKind::MinExpires, min.to_string());
                    return Some(r);
                }
            }
        }
        for c in &contacts {
            let a = c.address().unwrap();
            let sip = a.uri.as_sip().unwrap();
            let key = format!(
                "{}@{}:{}",
                sip.user.as_deref().unwrap_or(""),
                sip.host,
                sip.port.unwrap_or(5060)
            );
            let e = a
                .params
                .value("expires")
                .map(|v| v.parse::<u32>().unwrap())
                .or(header_expires)
                .unwrap_or(3600);
            if e == 0 {
                self.bindings.remove(&key);
            } else {
                self.bindings
                    .insert(key, now + secs(u64::from(e.min(self.max_expires))));
            }
        }
        let mut ok = make_response(request, 200, Some("reg"));
        for (key, expiry) in &self.bindings {
            let remaining = expiry.since(now).as_secs();
            match self.grant {
                Grant::ContactParam | Grant::Both(_) => ok.headers.add(
                    HeaderKind::Contact,
                    format!("<sip:{key}>;expires={remaining}"),
                ),
                Grant::ExpiresHeader(_) => {
                    ok.headers.add(HeaderKind::Contact, format!("<sip:{key}>"))
                }
            }
        }
        if let Grant::ExpiresHeader(e) | Grant::Both(e) = self.grant {
            ok.headers.add(HeaderKind::Expires, e.to_string());
        }
        Some(ok)
    }
}

struct Datagram {
    deliver_at: Time,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

struct Sim {
    now: Time,
    client: Endpoint,
    reg: Registration,
    registrar: Registrar,
    /// The client is behind a NAT that maps CLIENT to PUBLIC.
    nat: bool,
    net: Vec<Datagram>,
    events: Vec<(Time, RegistrationEvent)>,
    crlf: Vec<(Time, SocketAddr)>,
    /// Lose every OPTIONS the client sends.
    drop_options: bool,
}

fn config() -> RegistrationConfig {
    let mut c = RegistrationConfig::new(
        Uri::parse("sip:example.net").unwrap(),
        Uri::parse("sip:dialer@example.net").unwrap(),
        addr(REGISTRAR),
        addr(CLIENT),
        Credentials::with_password("dialer", "s3cret"),
    );
    c.expires = 600;
    c
}

fn server(algorithms: Vec<Algorithm>) -> ServerConfig {
    let mut s = ServerConfig::new(REALM, b"registrar secret".to_vec());
    s.algorithms = algorithms;
    s
}

impl Sim {
    fn new(config: RegistrationConfig, registrar: Registrar) -> Self {
        Sim {
            now: Time::ZERO,
            client: Endpoint::new(
                EndpointConfig::new(addr(CLIENT)),
                Box::new(ChaCha8Rng::seed_from_u64(1)),
            ),
            reg: Registration::new(config, Box::new(ChaCha8Rng::seed_from_u64(2))).unwrap(),
            registrar,
            nat: false,
            net: vec![],
            events: vec![],
            crlf: vec![],
            drop_options: false,
        }
    }

    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        if self.drop_options && from == addr(CLIENT) && bytes.starts_with(b"OPTIONS") {
            return;
        }
        // The NAT rewrites the client's source on the way out.
        let from = if self.nat && from == addr(CLIENT) {
            addr(PUBLIC)
        } else {
            from
        };
        self.net.push(Datagram {
            deliver_at: self.now + LATENCY,
            from,
            to,
            bytes,
        });
    }

    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(out) = self.client.poll_output() {
                progressed = true;
                match out {
                    Output::Transmit(t) => self.send(addr(CLIENT), t.to, t.bytes),
                    Output::Event(e) => {
                        assert!(
                            self.reg.handle_event(self.now, &e, &mut self.client),
                            "an event the registration does not claim: {e:?}"
                        );
                    }
                }
            }
            while let Some(Action::SendKeepaliveCrlf(target)) = self.reg.poll_action() {
                progressed = true;
                self.crlf.push((self.now, target.addr));
                self.send(addr(CLIENT), target.addr, b"\r\n\r\n".to_vec());
            }
            while let Some(ev) = self.reg.poll_event() {
                self.events.push((self.now, ev));
            }
            while let Some(out) = self.registrar.ep.poll_output() {
                progressed = true;
                match out {
                    Output::Transmit(t) => self.send(addr(REGISTRAR), t.to, t.bytes),
                    Output::Event(e) => self.registrar.on_event(self.now, e),
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn start(&mut self) {
        self.reg.start(self.now, &mut self.client);
        self.pump();
    }

    fn unregister(&mut self) {
        self.reg.unregister(self.now, &mut self.client);
        self.pump();
    }

    fn run_until(&mut self, end: Time) {
        loop {
            self.pump();
            let next = [
                self.net.iter().map(|d| d.deliver_at).min(),
                self.client.next_timeout(),
                self.registrar.ep.next_timeout(),
                self.reg.next_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next.filter(|n| *n <= end) else {
                self.now = end;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) =
                self.net.drain(..).partition(|d| d.deliver_at <= now);
            self.net = later;
            for d in due {
                if d.to == addr(REGISTRAR) {
                    self.registrar.ep.handle_datagram(
                        now,
                        sip_core::transaction::Transport::Udp,
                        d.from,
                        &d.bytes,
                    );
                } else {
                    // Without the NAT responses come to CLIENT; with it, to PUBLIC, which the
                    // NAT maps back.
                    let expected = if self.nat { PUBLIC } else { CLIENT };
                    assert_eq!(d.to, addr(expected), "datagram to the wrong address");
                    self.client.handle_datagram(
                        now,
                        sip_core::transaction::Transport::Udp,
                        d.from,
                        &d.bytes,
                    );
                }
            }
            self.client.handle_timeout(now);
            self.registrar.ep.handle_timeout(now);
            if self.reg.next_timeout().is_some_and(|t| t <= now) {
                self.reg.handle_timeout(now, &mut self.client);
            }
        }
    }

    fn registers(&self) -> &[(Time, Request)] {
        &self.registrar.registers
    }

    fn authorized_registers(&self) -> usize {
        self.registers()
            .iter()
            .filter(|(_, r)| r.headers.get(HeaderKind::Authorization).is_some())
            .count()
    }

    fn event_times<F: Fn(&RegistrationEvent) -> bool>(&self, f: F) -> Vec<Time> {
        self.events
            .iter()
            .filter(|(_, e)| f(e))
            .map(|(t, _)| *t)
            .collect()
    }
}

fn contacts(r: &Request) -> Vec<String> {
    r.contacts()
        .unwrap()
        .iter()
        .map(|c| c.address().unwrap().to_string())
        .collect()
}

fn cseq(r: &Request) -> u32 {
    r.cseq().unwrap().seq
}

fn contact_address(s: &str) -> ContactAddress {
    let a = addr(s);
    ContactAddress {
        host: Host::from(a.ip()),
        port: a.port(),
    }
}

fn registered_expiry(sim: &Sim) -> Duration {
    sim.events
        .iter()
        .find_map(|(_, e)| match e {
            RegistrationEvent::Registered { expires, .. } => Some(*expires),
            _ => None,
        })
        .expect("a Registered event")
}

fn register_with(algorithms: Vec<Algorithm>, expected: &str) {
    let mut sim = Sim::new(config(), Registrar::new(server(algorithms)));
    sim.start();
    sim.run_until(at(5));
    assert!(sim.reg.is_registered(), "state {:?}", sim.reg.state());
    let regs = sim.registers();
    assert_eq!(regs.len(), 2);
    let (first, second) = (&regs[0].1, &regs[1].1);
    assert!(first.headers.get(HeaderKind::Authorization).is_none());
    let auth = second.headers.get(HeaderKind::Authorization).unwrap();
    assert!(auth.contains(&format!("algorithm={expected}")), "{auth}");
    assert!(auth.contains("qop=auth"), "{auth}");
    assert!(auth.contains("uri=\"sip:example.net\""), "{auth}");
    assert!(auth.contains("username=\"dialer\""), "{auth}");
    // RFC 3261 §10.2: the same Call-ID and From tag, CSeq up by one, To without tag.
    assert_eq!(first.call_id().unwrap(), second.call_id().unwrap());
    assert_eq!(second.call_id().unwrap(), sim.reg.call_id());
    assert_eq!(
        first.from_header().unwrap().tag(),
        second.from_header().unwrap().tag()
    );
    assert!(first.from_header().unwrap().tag().is_some());
    assert!(second.to_header().unwrap().tag().is_none());
    assert_eq!((cseq(first), cseq(second)), (1, 2));
    assert_eq!(second.uri.to_string(), "sip:example.net");
    assert_eq!(
        second.to_header().unwrap().uri.to_string(),
        "sip:dialer@example.net"
    );
    assert_eq!(contacts(second), vec!["<sip:dialer@192.168.1.10:5060>"]);
    assert_eq!(second.expires().unwrap(), Some(600));
    // RFC 3581: rport asked for in the Via (stamped with the value by the registrar's side).
    assert!(second.top_via().unwrap().rport().is_some());
    assert_eq!(registered_expiry(&sim), secs(600));
    assert_eq!(sim.registrar.bindings.len(), 1);
}

#[test]
fn registers_with_md5_digest_after_a_401_with_qop_auth() {
    register_with(vec![Algorithm::Md5], "MD5");
}

#[test]
fn registers_with_sha256_digest_when_offered_beside_md5() {
    register_with(vec![Algorithm::Sha256, Algorithm::Md5], "SHA-256");
}

#[test]
fn registers_with_a_stored_md5_ha1() {
    let mut c = config();
    let ha1 =
        sip_core::auth::password_ha1(sip_core::auth::HashFunction::Md5, "dialer", REALM, "s3cret");
    c.credentials.secret = Secret::Ha1 {
        hash: sip_core::auth::HashFunction::Md5,
        hex: ha1,
    };
    let mut sim = Sim::new(c, Registrar::new(server(vec![Algorithm::Md5])));
    sim.start();
    sim.run_until(at(5));
    assert!(sim.reg.is_registered(), "state {:?}", sim.reg.state());
}

#[test]
fn wrong_password_fails_after_exactly_one_answered_challenge() {
    let mut c = config();
    c.credentials = Credentials::with_password("dialer", "wrong");
    let mut sim = Sim::new(c, Registrar::new(server(vec![Algorithm::Md5])));
    sim.start();
    sim.run_until(at(3600));
    assert_eq!(sim.registers().len(), 2, "no REGISTER after the refusal");
    assert_eq!(sim.authorized_registers(), 1);
    match sim.reg.state() {
        RegistrationState::Failed(Failure::AuthRejected { status, realm }) => {
            assert_eq!(*status, 401);
            assert_eq!(realm, REALM);
        }
        other => panic!("expected an auth failure, got {other:?}"),
    }
    assert!(sim.reg.next_timeout().is_none());
    let failed = sim.event_times(|e| matches!(e, RegistrationEvent::Failed(_)));
    assert_eq!(failed.len(), 1);
}

#[test]
fn forbidden_stops_with_its_status_and_reason() {
    let mut c = config();
    c.credentials = Credentials::with_password("dialer", "wrong");
    let mut registrar = Registrar::new(server(vec![Algorithm::Md5]));
    registrar.forbid_on_reject = true;
    let mut sim = Sim::new(c, registrar);
    sim.start();
    sim.run_until(at(3600));
    assert_eq!(sim.registers().len(), 2);
    let failure = match sim.reg.state() {
        RegistrationState::Failed(f) => f.clone(),
        other => panic!("expected Failed, got {other:?}"),
    };
    assert_eq!(
        failure,
        Failure::Rejected {
            status: 403,
            reason: "Forbidden".into()
        }
    );
    assert_eq!(failure.status(), Some(403));
    assert!(failure.to_string().contains("403 Forbidden"));
}

#[test]
fn refreshes_twice_at_half_a_short_expiry() {
    let mut c = config();
    c.expires = 60;
    let mut sim = Sim::new(c, Registrar::new(server(vec![Algorithm::Md5])));
    sim.start();
    sim.run_until(at(65));
    let regs = sim.registers();
    // Initial REGISTER and its authenticated retry, then one refresh at 30 s and one at 60 s
    // (the cached nonce is reused, so each refresh is a single request).
    assert_eq!(
        regs.len(),
        4,
        "{:?}",
        regs.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    let sent_at = regs[1].0 - LATENCY;
    let first_refresh = regs[2].0 - LATENCY;
    let second_refresh = regs[3].0 - LATENCY;
    assert_eq!(first_refresh.since(sent_at), secs(30));
    assert_eq!(second_refresh.since(first_refresh), secs(30));
    assert!(regs[2]
        .1
        .headers
        .get(HeaderKind::Authorization)
        .unwrap()
        .contains("nc=00000002"));
    assert_eq!(
        sim.event_times(|e| matches!(e, RegistrationEvent::Refreshed { .. }))
            .len(),
        2
    );
    assert_eq!(cseq(&regs[3].1), 4);
    match sim.reg.state() {
        RegistrationState::Registered { expires_at, .. } => {
            assert_eq!(*expires_at, second_refresh + secs(60));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn granted_expiry_comes_from_the_contact_parameter_over_the_expires_header() {
    let mut registrar = Registrar::new(server(vec![Algorithm::Md5]));
    registrar.max_expires = 40;
    registrar.grant = Grant::Both(90);
    let mut sim = Sim::new(config(), registrar);
    sim.start();
    sim.run_until(at(50));
    assert_eq!(registered_expiry(&sim), secs(40));
    let regs = sim.registers();
    assert_eq!(
        regs[2].0.since(regs[1].0),
        secs(20),
        "refresh at half of 40 s"
    );
}

#[test]
fn granted_expiry_falls_back_to_the_expires_header() {
    let mut registrar = Registrar::new(server(vec![Algorithm::Md5]));
    registrar.grant = Grant::ExpiresHeader(50);
    let mut sim = Sim::new(config(), registrar);
    sim.start();
    sim.run_until(at(30));
    assert_eq!(registered_expiry(&sim), secs(50));
    let regs = sim.registers();
    assert_eq!(
        regs[2].0.since(regs[1].0),
        secs(25),
        "refresh at half of 50 s"
    );
}

#[test]
fn interval_too_brief_is_retried_with_min_expires() {
    let mut c = config();
    c.expires = 30;
    let mut registrar = Registrar::new(server(vec![Algorithm::Md5]));
    registrar.min_expires = Some(120);
    let mut sim = Sim::new(c, registrar);
    sim.start();
    sim.run_until(at(5));
    let statuses: Vec<u16> = sim.registrar.responses.iter().map(|r| r.1.status).collect();
    assert_eq!(statuses, vec![401, 423, 200]);
    let regs = sim.registers();
    assert_eq!(regs[1].1.expires().unwrap(), Some(30));
    assert_eq!(regs[2].1.expires().unwrap(), Some(120));
    assert_eq!(sim.reg.requested_expires(), 120);
    assert_eq!(registered_expiry(&sim), secs(120));
}

#[test]
fn stale_nonce_is_answered_again_without_failing() {
    let mut c = config();
    c.expires = 60;
    let mut s = server(vec![Algorithm::Md5]);
    s.nonce_lifetime = secs(20);
    let mut sim = Sim::new(c, Registrar::new(s));
    sim.start();
    sim.run_until(at(45));
    let responses = &sim.registrar.responses;
    let statuses: Vec<u16> = responses.iter().map(|r| r.1.status).collect();
    // 401, 200, then the refresh at 30 s with the old nonce: 401 stale=true, then 200.
    assert_eq!(statuses, vec![401, 200, 401, 200]);
    let stale = responses[2]
        .1
        .headers
        .get(HeaderKind::WwwAuthenticate)
        .unwrap();
    assert!(stale.contains("stale=true"), "{stale}");
    assert!(sim.reg.is_registered(), "state {:?}", sim.reg.state());
    assert!(sim
        .event_times(|e| matches!(e, RegistrationEvent::Failed(_)))
        .is_empty());
    assert_eq!(
        sim.event_times(|e| matches!(e, RegistrationEvent::Refreshed { .. }))
            .len(),
        1
    );
}

#[test]
fn service_unavailable_with_retry_after_waits_that_long() {
    let mut registrar = Registrar::new(server(vec![Algorithm::Md5]));
    registrar.script.push_back(Scripted::Respond(
        503,
        vec![(HeaderKind::RetryAfter, "20".into())],
    ));
    let mut sim = Sim::new(config(), registrar);
    sim.start();
    sim.run_until(at(19));
    assert_eq!(sim.registers().len(), 1, "no retry before Retry-After");
    match sim.reg.state() {
        RegistrationState::Backoff {
            attempts,
            last_error,
            ..
        } => {
            assert_eq!(*attempts, 1);
            assert!(matches!(
                last_error,
                RetryReason::Status {
                    status: 503,
                    retry_after: Some(d),
                    ..
                } if *d == secs(20)
            ));
        }
        other => panic!("{other:?}"),
    }
    sim.run_until(at(25));
    // Retry-After counts from the 503's arrival; the backoff alone would be 2 to 3 s.
    let scheduled: Vec<(Time, Time)> = sim
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            RegistrationEvent::RetryScheduled { at, .. } => Some((*t, *at)),
            _ => None,
        })
        .collect();
    assert_eq!(scheduled.len(), 1);
    let (when, retry_at) = scheduled[0];
    assert_eq!(retry_at.since(when), secs(20));
    assert_eq!(
        when,
        sim.registers()[0].0 + LATENCY,
        "scheduled on the 503's arrival"
    );
    assert_eq!(sim.registers()[1].0, retry_at + LATENCY);
    assert!(sim.reg.is_registered());
}

#[test]
fn timeouts_and_5xx_back_off_exponentially_within_bounds() {
    let mut c = config();
    c.retry_min = secs(2);
    c.retry_max = secs(30);
    let mut registrar = Registrar::new(server(vec![Algorithm::Md5]));
    for _ in 0..3 {
        registrar.script.push_back(Scripted::Drop);
    }
    for _ in 0..3 {
        registrar.script.push_back(Scripted::Respond(500, vec![]));
    }
    let mut sim = Sim::new(c, registrar);
    sim.start();
    sim.run_until(at(600));
    let delays: Vec<Duration> = sim
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            RegistrationEvent::RetryScheduled { at, .. } => Some(at.since(*t)),
            _ => None,
        })
        .collect();
    assert_eq!(delays.len(), 6, "{delays:?}");
    for d in &delays {
        assert!(*d >= secs(2) && *d <= secs(30), "{d:?} outside [2 s, 30 s]");
    }
    // Nominal 2, 4, 8, 16 s are below the cap (20 s): strictly growing.
    for w in delays[..4].windows(2) {
        assert!(w[1] > w[0], "{delays:?}");
    }
    assert!(delays[4] >= secs(20) && delays[5] >= secs(20), "{delays:?}");
    // Each retry went out when it was scheduled.
    let attempts: Vec<u32> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            RegistrationEvent::RetryScheduled { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3, 4, 5, 6]);
    let reasons: Vec<Option<u16>> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            RegistrationEvent::RetryScheduled { reason, .. } => Some(match reason {
                RetryReason::Timeout => None,
                RetryReason::Status { status, .. } => Some(*status),
                other => panic!("{other:?}"),
            }),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        vec![None, None, None, Some(500), Some(500), Some(500)]
    );
    assert!(sim.reg.is_registered(), "state {:?}", sim.reg.state());
}

#[test]
fn nat_rewrites_the_contact_to_the_public_address_and_removes_the_old_binding() {
    let mut c = config();
    c.expires = 60;
    let mut sim = Sim::new(c, Registrar::new(server(vec![Algorithm::Md5])));
    sim.nat = true;
    sim.start();
    sim.run_until(at(5));
    let rewritten: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            RegistrationEvent::ContactRewritten { from, to } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        rewritten,
        vec![(contact_address(CLIENT), contact_address(PUBLIC))]
    );
    let regs = sim.registers();
    assert_eq!(regs.len(), 3);
    // One REGISTER adds the public Contact and removes the private one.
    assert_eq!(
        contacts(&regs[2].1),
        vec![
            "<sip:dialer@203.0.113.7:40000>",
            "<sip:dialer@192.168.1.10:5060>;expires=0"
        ]
    );
    assert_eq!(
        sim.registrar.bindings.keys().collect::<Vec<_>>(),
        vec!["dialer@203.0.113.7:40000"]
    );
    match sim.reg.state() {
        RegistrationState::Registered { contact, .. } => {
            assert_eq!(*contact, contact_address(PUBLIC))
        }
        other => panic!("{other:?}"),
    }
    // Refreshes keep the public Contact and do not rewrite again.
    sim.run_until(at(40));
    let regs = sim.registers();
    assert_eq!(regs.len(), 4);
    assert_eq!(contacts(&regs[3].1), vec!["<sip:dialer@203.0.113.7:40000>"]);
    assert_eq!(
        sim.event_times(|e| matches!(e, RegistrationEvent::ContactRewritten { .. }))
            .len(),
        1
    );
}

#[test]
fn external_address_disables_contact_rewriting() {
    let mut c = config();
    c.external_address = Some((Host::parse("203.0.113.7").unwrap(), 5060));
    let mut sim = Sim::new(c, Registrar::new(server(vec![Algorithm::Md5])));
    sim.nat = true;
    sim.start();
    sim.run_until(at(5));
    assert!(sim
        .event_times(|e| matches!(e, RegistrationEvent::ContactRewritten { .. }))
        .is_empty());
    let regs = sim.registers();
    assert_eq!(regs.len(), 2);
    assert_eq!(contacts(&regs[1].1), vec!["<sip:dialer@203.0.113.7:5060>"]);
    assert_eq!(
        sim.registrar.bindings.keys().collect::<Vec<_>>(),
        vec!["dialer@203.0.113.7:5060"]
    );
    assert!(sim.reg.is_registered());
}

#[test]
fn unregister_sends_expires_zero_and_removes_the_binding() {
    let mut sim = Sim::new(config(), Registrar::new(server(vec![Algorithm::Md5])));
    sim.start();
    sim.run_until(at(10));
    assert_eq!(sim.registrar.bindings.len(), 1);
    sim.unregister();
    assert_eq!(sim.reg.state(), &RegistrationState::Unregistering);
    sim.run_until(at(12));
    let last = &sim.registers().last().unwrap().1;
    assert_eq!(last.expires().unwrap(), Some(0));
    assert_eq!(
        contacts(last),
        vec!["<sip:dialer@192.168.1.10:5060>;expires=0"]
    );
    assert_eq!(cseq(last), 3);
    assert!(last.headers.get(HeaderKind::Authorization).is_some());
    assert!(sim.registrar.bindings.is_empty());
    assert_eq!(sim.reg.state(), &RegistrationState::Unregistered);
    assert!(sim.reg.next_timeout().is_none());
    assert_eq!(
        sim.event_times(|e| matches!(e, RegistrationEvent::Unregistered))
            .len(),
        1
    );
}

#[test]
fn unregister_without_an_answer_ends_unregistered_at_the_transaction_timeout() {
    let mut sim = Sim::new(config(), Registrar::new(server(vec![Algorithm::Md5])));
    sim.start();
    sim.run_until(at(10));
    sim.registrar.script.push_back(Scripted::Drop);
    sim.unregister();
    sim.run_until(at(41));
    assert_eq!(sim.reg.state(), &RegistrationState::Unregistering);
    // Timer F: 64 * T1 = 32 s after the un-REGISTER.
    sim.run_until(at(43));
    assert_eq!(sim.reg.state(), &RegistrationState::Unregistered);
}

#[test]
fn crlf_keepalive_goes_to_the_proxy_at_the_interval() {
    let mut c = config();
    c.keepalive = Keepalive::Crlf { interval: secs(15) };
    let mut sim = Sim::new(c, Registrar::new(server(vec![Algorithm::Md5])));
    sim.start();
    sim.run_until(at(61));
    let registered = sim.event_times(|e| matches!(e, RegistrationEvent::Registered { .. }))[0];
    let offsets: Vec<Duration> = sim.crlf.iter().map(|(t, _)| t.since(registered)).collect();
    assert_eq!(offsets, vec![secs(15), secs(30), secs(45), secs(60)]);
    assert!(sim.crlf.iter().all(|(_, to)| *to == addr(REGISTRAR)));
    // The registrar's endpoint swallows them: no REGISTER or OPTIONS came of it.
    assert!(sim.registrar.options.is_empty());
}

#[test]
fn options_keepalive_goes_through_the_endpoint_at_the_interval() {
    let mut c = config();
    c.keepalive = Keepalive::Options { interval: secs(20) };
    let mut sim = Sim::new(c, Registrar::new(server(vec![Algorithm::Md5])));
    sim.start();
    sim.run_until(at(65));
    let registered = sim.event_times(|e| matches!(e, RegistrationEvent::Registered { .. }))[0];
    let options = &sim.registrar.options;
    let offsets: Vec<Duration> = options
        .iter()
        .map(|(t, _)| t.since(registered) - LATENCY)
        .collect();
    assert_eq!(offsets, vec![secs(20), secs(40), secs(60)]);
    let call_ids: Vec<&str> = options.iter().map(|(_, r)| r.call_id().unwrap()).collect();
    assert!(call_ids.iter().all(|c| *c == call_ids[0]));
    assert_ne!(
        call_ids[0],
        sim.reg.call_id(),
        "keepalives have their own Call-ID"
    );
    let seqs: Vec<u32> = options.iter().map(|(_, r)| cseq(r)).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert!(sim.crlf.is_empty());
    assert!(sim.reg.is_registered());
}

#[test]
fn options_keepalive_timeout_triggers_a_re_register() {
    let mut c = config();
    c.keepalive = Keepalive::Options { interval: secs(20) };
    let mut sim = Sim::new(c, Registrar::new(server(vec![Algorithm::Md5])));
    sim.start();
    sim.run_until(at(10));
    // From now on every OPTIONS is lost on the way to the registrar.
    let before = sim.registers().len();
    sim.drop_options = true;
    sim.run_until(at(60));
    assert!(sim.registrar.options.is_empty());
    // The OPTIONS at ~20 s times out at ~52 s; the REGISTER follows at once.
    let after: Vec<Time> = sim.registers()[before..].iter().map(|r| r.0).collect();
    assert_eq!(after.len(), 1, "{after:?}");
    let timeouts = sim.event_times(|e| matches!(e, RegistrationEvent::KeepaliveTimeout));
    assert_eq!(timeouts.len(), 1);
    assert_eq!(after[0], timeouts[0] + LATENCY);
}

#[test]
fn configured_refresh_fraction_sets_the_refresh_time() {
    let mut c = config();
    c.expires = 60;
    c.refresh_fraction = 0.25;
    let mut sim = Sim::new(c, Registrar::new(server(vec![Algorithm::Md5])));
    sim.start();
    sim.run_until(at(40));
    let regs = sim.registers();
    // 0.25 of 60 s: refreshes 15 s apart.
    let times: Vec<Duration> = regs[1..].windows(2).map(|w| w[1].0.since(w[0].0)).collect();
    assert_eq!(times, vec![secs(15), secs(15)]);
}

#[test]
fn a_connection_lost_mid_registration_registers_again_on_the_new_connection_at_once() {
    use sip_core::endpoint::Target;
    use sip_core::transaction::Transport;
    let mut c = config();
    c.transport = Transport::Tcp;
    // A retry from the backoff alone would wait at least this long.
    c.retry_min = secs(30);
    c.retry_max = secs(60);
    let mut registrar = Registrar::new(server(vec![Algorithm::Md5]));
    registrar.script.push_back(Scripted::Drop);
    let mut sim = Sim::new(c, registrar);
    sim.start();
    sim.run_until(at(1));
    assert_eq!(sim.registers().len(), 1);
    let flow = Target {
        addr: addr(REGISTRAR),
        transport: Transport::Tcp,
    };
    // The carrier closes the connection with the REGISTER unanswered.
    sim.client.flow_failed(flow);
    sim.pump();
    assert!(
        matches!(sim.reg.state(), RegistrationState::Backoff { until, .. } if *until >= at(31)),
        "{:?}",
        sim.reg.state()
    );
    // The runtime has a new connection up half a second later.
    sim.run_until(Time::from_millis(1_500));
    sim.reg.flow_recovered(sim.now, &mut sim.client);
    sim.run_until(at(3));
    assert!(sim.reg.is_registered(), "{:?}", sim.reg.state());
    let regs = sim.registers();
    assert_eq!(regs.len(), 3, "dropped, challenged, accepted");
    assert!(regs[1].0 >= Time::from_millis(1_500) && regs[1].0 < at(2));
    assert_eq!(
        contacts(&regs[2].1),
        vec!["<sip:dialer@192.168.1.10:5060;transport=tcp>"]
    );
    // Registered, and the connection is replaced again: the binding is renewed on it now,
    // long before the refresh at half of 600 s.
    sim.reg.flow_recovered(sim.now, &mut sim.client);
    sim.run_until(at(4));
    assert_eq!(sim.registers().len(), 4);
    assert!(sim.reg.is_registered());
    assert!(sim
        .events
        .iter()
        .any(|(t, e)| *t >= at(3) && matches!(e, RegistrationEvent::Refreshed { .. })));
}
