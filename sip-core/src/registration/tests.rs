//! Unit tests of the registration helpers and of single transitions, with responses written
//! by hand (the full exchanges against a digest registrar are in `tests/registration.rs`).

use super::*;
use crate::auth::{Credentials, DigestChallenge};
use crate::endpoint::{make_response, EndpointConfig, Output};
use crate::message::{Message, Uri};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;

const LOCAL: &str = "192.168.1.10:5060";
const PROXY: &str = "198.51.100.5:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config() -> RegistrationConfig {
    RegistrationConfig::new(
        Uri::parse("sip:example.net").unwrap(),
        Uri::parse("sip:dialer@example.net").unwrap(),
        addr(PROXY),
        addr(LOCAL),
        Credentials::with_password("dialer", "s3cret"),
    )
}

fn ours(s: &str) -> ContactAddress {
    let a = addr(s);
    ContactAddress {
        host: Host::from(a.ip()),
        port: a.port(),
    }
}

/// A registration, its endpoint, and the last request it sent.
struct Harness {
    ep: Endpoint,
    reg: Registration,
    now: Time,
    /// The registration's state each time its own timer fired (refresh or retry).
    states_at_timer: Vec<RegistrationState>,
}

impl Harness {
    fn new(config: RegistrationConfig) -> Self {
        Harness {
            ep: Endpoint::new(
                EndpointConfig::new(addr(LOCAL)),
                Box::new(ChaCha8Rng::seed_from_u64(5)),
            ),
            reg: Registration::new(config, Box::new(ChaCha8Rng::seed_from_u64(6))).unwrap(),
            now: Time::ZERO,
            states_at_timer: Vec::new(),
        }
    }

    /// The requests the endpoint put on the wire since the last call.
    fn sent(&mut self) -> Vec<Request> {
        let mut out = vec![];
        while let Some(o) = self.ep.poll_output() {
            match o {
                Output::Transmit(t) => match Message::parse(&t.bytes).unwrap() {
                    Message::Request(r) => out.push(r),
                    Message::Response(r) => panic!("the client sent a {}", r.status),
                },
                Output::Event(e) => {
                    assert!(self.reg.handle_event(self.now, &e, &mut self.ep), "{e:?}");
                }
            }
        }
        out
    }

    /// Answers `request` with `status` plus headers, as the proxy would.
    fn answer(&mut self, request: &Request, status: u16, headers: &[(HeaderKind, &str)]) {
        let mut r = make_response(request, status, Some("srv"));
        for (k, v) in headers {
            r.headers.add(*k, *v);
        }
        self.ep
            .handle_datagram(self.now, Transport::Udp, addr(PROXY), &r.to_bytes());
    }

    fn events(&mut self) -> Vec<RegistrationEvent> {
        std::iter::from_fn(|| self.reg.poll_event()).collect()
    }
}

fn one(requests: Vec<Request>) -> Request {
    assert_eq!(requests.len(), 1, "{requests:?}");
    requests.into_iter().next().unwrap()
}

fn challenge(realm: &str, nonce: &str) -> String {
    let mut c = DigestChallenge::new(realm, nonce, crate::auth::Algorithm::Md5);
    c.qop = vec![crate::auth::Qop::Auth];
    c.to_header_value()
}

#[test]
fn configuration_errors_are_reported_not_run() {
    let mut c = config();
    c.expires = 0;
    assert_eq!(c.validate(), Err(ConfigError::ZeroExpires));
    let mut c = config();
    c.retry_min = Duration::from_secs(10);
    c.retry_max = Duration::from_secs(5);
    assert!(matches!(c.validate(), Err(ConfigError::RetryBounds { .. })));
    let mut c = config();
    c.refresh_fraction = 1.0;
    assert_eq!(c.validate(), Err(ConfigError::RefreshFraction(1.0)));
    let mut c = config();
    c.aor = Uri::parse("sip:example.net").unwrap();
    assert!(matches!(c.validate(), Err(ConfigError::AorWithoutUser(_))));
    let mut c = config();
    c.registrar_uri = Uri::parse("tel:+15550100").unwrap();
    assert!(matches!(c.validate(), Err(ConfigError::RegistrarNotSip(_))));
    let mut c = config();
    c.keepalive = Keepalive::Crlf {
        interval: Duration::ZERO,
    };
    assert_eq!(c.validate(), Err(ConfigError::ZeroKeepaliveInterval));
    assert!(Registration::new(c, Box::new(ChaCha8Rng::seed_from_u64(1))).is_err());
    assert_eq!(config().validate(), Ok(()));
}

#[test]
fn contact_matching_ignores_added_parameters_but_not_port_or_user() {
    let parse = |s| NameAddr::parse("Contact", s).unwrap();
    let me = ours(LOCAL);
    assert!(contact_matches(
        &parse("<sip:dialer@192.168.1.10:5060;ob>;expires=30"),
        &me,
        Some("dialer")
    ));
    assert!(contact_matches(
        &parse("<sip:dialer@192.168.1.10>"),
        &me,
        Some("dialer")
    ));
    assert!(!contact_matches(
        &parse("<sip:dialer@192.168.1.10:5070>"),
        &me,
        Some("dialer")
    ));
    assert!(!contact_matches(
        &parse("<sip:Dialer@192.168.1.10:5060>"),
        &me,
        Some("dialer")
    ));
    let named = ContactAddress {
        host: Host::Domain("pbx.example.net".into()),
        port: 5060,
    };
    assert!(contact_matches(
        &parse("<sip:dialer@PBX.example.net>"),
        &named,
        Some("dialer")
    ));
}

#[test]
fn granted_expiry_prefers_our_contact_then_the_header_then_the_request() {
    let mut r = Response::new(200);
    r.headers.add(
        HeaderKind::Contact,
        "<sip:other@192.0.2.1:5060>;expires=999, <sip:dialer@192.168.1.10:5060>;expires=45",
    );
    r.headers.add(HeaderKind::Expires, "90");
    assert_eq!(granted_expiry(&r, &ours(LOCAL), Some("dialer"), 600), 45);
    let mut r = Response::new(200);
    r.headers.add(
        HeaderKind::Contact,
        "<sip:other@192.0.2.1:5060>;expires=999",
    );
    r.headers.add(HeaderKind::Expires, "90");
    assert_eq!(granted_expiry(&r, &ours(LOCAL), Some("dialer"), 600), 90);
    let r = Response::new(200);
    assert_eq!(granted_expiry(&r, &ours(LOCAL), Some("dialer"), 600), 600);
}

#[test]
fn observed_address_comes_from_received_and_rport_and_keeps_our_port_over_tcp() {
    let mut r = Response::new(200);
    r.headers.add(
        HeaderKind::Via,
        "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKx;received=203.0.113.7;rport=40000",
    );
    let me = ours(LOCAL);
    assert_eq!(
        observed_address(&r, Transport::Udp, &me),
        Some(ours("203.0.113.7:40000"))
    );
    assert_eq!(
        observed_address(&r, Transport::Tcp, &me),
        Some(ours("203.0.113.7:5060"))
    );
    let mut plain = Response::new(200);
    plain.headers.add(
        HeaderKind::Via,
        "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKx",
    );
    assert_eq!(observed_address(&plain, Transport::Udp, &me), None);
}

#[test]
fn retry_after_takes_the_leading_delta_seconds() {
    assert_eq!(retry_after_seconds("120"), Some(120));
    assert_eq!(retry_after_seconds(" 18000;duration=3600"), Some(18000));
    assert_eq!(retry_after_seconds("5 (maintenance)"), Some(5));
    assert_eq!(retry_after_seconds("soon"), None);
}

#[test]
fn proxy_challenge_is_answered_with_proxy_authorization() {
    let mut h = Harness::new(config());
    h.reg.start(h.now, &mut h.ep);
    let first = one(h.sent());
    h.answer(
        &first,
        407,
        &[(HeaderKind::ProxyAuthenticate, &challenge("proxy.net", "n1"))],
    );
    let second = one(h.sent());
    assert!(second.headers.get(HeaderKind::Authorization).is_none());
    let value = second.headers.get(HeaderKind::ProxyAuthorization).unwrap();
    assert!(value.contains("realm=\"proxy.net\""), "{value}");
    assert_eq!(second.cseq().unwrap().seq, first.cseq().unwrap().seq + 1);
    assert_eq!(h.reg.state(), &RegistrationState::Registering);
}

#[test]
fn challenge_for_another_realm_than_configured_fails_without_answering() {
    let mut c = config();
    c.realm = Some("example.net".into());
    let mut h = Harness::new(c);
    h.reg.start(h.now, &mut h.ep);
    let first = one(h.sent());
    h.answer(
        &first,
        401,
        &[(HeaderKind::WwwAuthenticate, &challenge("evil.net", "n1"))],
    );
    assert!(h.sent().is_empty());
    assert_eq!(
        h.reg.state(),
        &RegistrationState::Failed(Failure::RealmMismatch {
            status: 401,
            offered: "evil.net".into(),
            expected: "example.net".into(),
        })
    );
}

#[test]
fn interval_too_brief_without_a_larger_min_expires_fails() {
    let mut h = Harness::new(config());
    h.reg.start(h.now, &mut h.ep);
    let first = one(h.sent());
    h.answer(&first, 423, &[(HeaderKind::MinExpires, "600")]);
    assert!(h.sent().is_empty(), "600 is what was asked: no retry");
    assert!(matches!(
        h.reg.state(),
        RegistrationState::Failed(Failure::Rejected { status: 423, .. })
    ));
}

#[test]
fn provisional_responses_are_claimed_and_change_nothing() {
    let mut h = Harness::new(config());
    h.reg.start(h.now, &mut h.ep);
    let first = one(h.sent());
    h.answer(&first, 100, &[]);
    assert!(h.sent().is_empty());
    assert_eq!(h.reg.state(), &RegistrationState::Registering);
    assert!(h.events().is_empty());
}

#[test]
fn redirect_fails_the_registration() {
    let mut h = Harness::new(config());
    h.reg.start(h.now, &mut h.ep);
    let first = one(h.sent());
    h.answer(&first, 302, &[(HeaderKind::Contact, "<sip:elsewhere.net>")]);
    assert!(h.sent().is_empty());
    assert_eq!(h.reg.next_timeout(), None);
    assert!(matches!(
        h.events().as_slice(),
        [RegistrationEvent::Failed(Failure::Rejected {
            status: 302,
            ..
        })]
    ));
}

#[test]
fn zero_granted_for_our_contact_is_retried() {
    let mut h = Harness::new(config());
    h.reg.start(h.now, &mut h.ep);
    let first = one(h.sent());
    h.answer(
        &first,
        200,
        &[(
            HeaderKind::Contact,
            "<sip:dialer@192.168.1.10:5060>;expires=0",
        )],
    );
    assert!(h.sent().is_empty(), "no immediate retry");
    assert!(matches!(
        h.reg.state(),
        RegistrationState::Backoff {
            last_error: RetryReason::ZeroExpiry,
            attempts: 1,
            ..
        }
    ));
    let at = h.reg.next_timeout().unwrap();
    assert!(at >= Time(Duration::from_secs(2)) && at <= Time(Duration::from_secs(3)));
    h.now = at;
    h.reg.handle_timeout(at, &mut h.ep);
    let retry = one(h.sent());
    assert_eq!(retry.call_id().unwrap(), first.call_id().unwrap());
    assert_eq!(retry.cseq().unwrap().seq, 2);
}

#[test]
fn unregister_before_any_request_has_nothing_to_remove() {
    let mut h = Harness::new(config());
    h.reg.unregister(h.now, &mut h.ep);
    assert!(h.sent().is_empty());
    assert_eq!(h.reg.state(), &RegistrationState::Unregistered);
    assert_eq!(h.events(), vec![RegistrationEvent::Unregistered]);
}

#[test]
fn a_response_to_a_request_given_up_on_is_not_claimed() {
    let mut h = Harness::new(config());
    h.reg.start(h.now, &mut h.ep);
    let first = one(h.sent());
    h.reg.unregister(h.now, &mut h.ep);
    let unregister = one(h.sent());
    assert_eq!(unregister.expires().unwrap(), Some(0));
    // The 200 for the abandoned REGISTER comes back: not this registration's business.
    let ok = make_response(&first, 200, Some("srv"));
    h.ep.handle_datagram(h.now, Transport::Udp, addr(PROXY), &ok.to_bytes());
    let event = h.ep.poll_output();
    match event {
        Some(Output::Event(e)) => assert!(!h.reg.handle_event(h.now, &e, &mut h.ep)),
        other => panic!("{other:?}"),
    }
    assert_eq!(h.reg.state(), &RegistrationState::Unregistering);
}

#[test]
fn tcp_contact_carries_the_transport_parameter() {
    let mut c = config();
    c.transport = Transport::Tcp;
    let mut h = Harness::new(c);
    h.reg.start(h.now, &mut h.ep);
    let first = one(h.sent());
    assert_eq!(
        first.headers.get(HeaderKind::Contact),
        Some("<sip:dialer@192.168.1.10:5060;transport=tcp>")
    );
    assert!(first
        .top_via()
        .unwrap()
        .transport
        .eq_ignore_ascii_case("TCP"));
}

#[test]
fn failure_messages_name_the_cause_without_secrets() {
    let f = Failure::AuthRejected {
        status: 401,
        realm: "example.net".into(),
    };
    let text = f.to_string();
    assert!(text.contains("wrong username or password"), "{text}");
    assert!(!text.contains("s3cret"));
    assert_eq!(f.status(), Some(401));
    let h = Harness::new(config());
    assert!(!format!("{:?}", h.reg).contains("s3cret"));
}

/// One carrier outage and its recovery, in virtual time: what went out and what the
/// registration reported.
struct Outage {
    /// Each new REGISTER (a retransmission is not new) and when it left.
    registers: Vec<(Time, Request)>,
    /// Each event and when it came out.
    events: Vec<(Time, RegistrationEvent)>,
    /// The state each time the registration's timer fired: the refresh, then each retry.
    states: Vec<RegistrationState>,
    reg: Registration,
}

impl Harness {
    fn seeded(config: RegistrationConfig, seed: u64) -> Self {
        let mut h = Harness::new(config);
        h.reg = Registration::new(
            h.reg.config().clone(),
            Box::new(ChaCha8Rng::seed_from_u64(seed)),
        )
        .unwrap();
        h
    }

    /// Runs the endpoint's and the registration's timers until a new REGISTER goes out (a
    /// retransmission of one already sent is not new) or `until` passes; the REGISTER and
    /// when it left. Events are collected with their times.
    fn next_register(
        &mut self,
        until: Time,
        events: &mut Vec<(Time, RegistrationEvent)>,
        seen_branches: &mut Vec<String>,
    ) -> Option<(Time, Request)> {
        loop {
            let mut new = None;
            for r in self.sent() {
                let branch = r.top_via().unwrap().branch().unwrap_or_default().to_owned();
                if !seen_branches.contains(&branch) {
                    assert!(new.is_none(), "two new REGISTERs at once");
                    seen_branches.push(branch);
                    new = Some((self.now, r));
                }
            }
            events.extend(self.events().into_iter().map(|e| (self.now, e)));
            if new.is_some() {
                return new;
            }
            let next = [self.ep.next_timeout(), self.reg.next_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = t.max(self.now);
                    self.ep.handle_timeout(self.now);
                    if self.reg.next_timeout().is_some_and(|t| t <= self.now) {
                        self.states_at_timer.push(self.reg.state().clone());
                        self.reg.handle_timeout(self.now, &mut self.ep);
                    }
                }
                _ => return None,
            }
        }
    }
}

fn at_s(s: f64) -> Time {
    Time(Duration::from_secs_f64(s))
}

/// The carrier restarts under a registered trunk: the refresh gets no answer at all (Timer
/// F), then the carrier answers 503 three times without Retry-After, then with Retry-After
/// 30 s, then with Retry-After 5 s (shorter than the backoff), then with Retry-After of two
/// days, then 200. Granted 20 s, retries between 2 s and 20 s, T1 = 500 ms.
fn carrier_restart(seed: u64) -> Outage {
    let mut c = config();
    c.expires = 60;
    c.retry_min = Duration::from_secs(2);
    c.retry_max = Duration::from_secs(20);
    let mut h = Harness::seeded(c, seed);
    let mut events = vec![];
    let mut branches = vec![];
    let mut registers = vec![];
    h.reg.start(h.now, &mut h.ep);
    let first = h
        .next_register(h.now, &mut events, &mut branches)
        .expect("the first REGISTER");
    h.answer(
        &first.1,
        200,
        &[(
            HeaderKind::Contact,
            "<sip:dialer@192.168.1.10:5060>;expires=20",
        )],
    );
    registers.push(first);
    // The refresh at 10 s is never answered: the carrier is down.
    let refresh = h
        .next_register(at_s(10.0), &mut events, &mut branches)
        .expect("the refresh at half of 20 s");
    registers.push(refresh);
    // Then the carrier is up again but not ready: 503s, then 200.
    let answers: [(u16, Option<&str>); 7] = [
        (503, None),
        (503, None),
        (503, None),
        (503, Some("30")),
        (503, Some("5 (warming up)")),
        (503, Some("172800")),
        (200, None),
    ];
    for (status, retry_after) in answers {
        // The next REGISTER comes out within a day and a half of virtual time, or never.
        let deadline = h.now + Duration::from_secs(36 * 3600);
        let next = h
            .next_register(deadline, &mut events, &mut branches)
            .unwrap_or_else(|| panic!("no retry after {:?}", h.reg.state()));
        let (_, request) = &next;
        match (status, retry_after) {
            (200, _) => h.answer(
                request,
                200,
                &[(
                    HeaderKind::Contact,
                    "<sip:dialer@192.168.1.10:5060>;expires=20",
                )],
            ),
            (s, Some(ra)) => h.answer(request, s, &[(HeaderKind::RetryAfter, ra)]),
            (s, None) => h.answer(request, s, &[]),
        }
        registers.push(next);
    }
    let end = h.now;
    assert!(h.next_register(end, &mut events, &mut branches).is_none());
    Outage {
        registers,
        events,
        states: h.states_at_timer,
        reg: h.reg,
    }
}

#[test]
fn carrier_restart_is_retried_with_growing_jittered_bounded_delays_until_registered_again() {
    let secs = Duration::from_secs;
    let mut first_delays = vec![];
    for seed in 0..25 {
        let o = carrier_restart(seed);
        let times: Vec<Time> = o.registers.iter().map(|(t, _)| *t).collect();
        // Initial, refresh, then one per answer: 7 retries.
        assert_eq!(times.len(), 9, "seed {seed}: {times:?}");
        // Every retry keeps the registration's Call-ID and raises the CSeq by one
        // (RFC 3261 §10.2.4).
        for (i, (_, r)) in o.registers.iter().enumerate() {
            assert_eq!(r.call_id().unwrap(), o.reg.call_id(), "seed {seed}");
            assert_eq!(r.cseq().unwrap().seq, i as u32 + 1, "seed {seed}");
        }
        assert_eq!(times[1], at_s(10.0), "seed {seed}: refresh at half of 20 s");
        // Timer F (64 * T1 = 32 s, RFC 3261 §17.1.2.2) ends the unanswered refresh; the
        // first retry follows after 2 to 3 s (retry_min, plus up to half of it as jitter).
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1].since(w[0])).collect();
        let after_timeout = gaps[1].saturating_sub(secs(32));
        let windows = [
            (secs(2), secs(3)),
            (secs(4), secs(6)),
            (secs(8), secs(12)),
            // Nominal 16 s is above the cap, 2/3 of 20 s: 13.3 to 20 s.
            (Duration::from_millis(13_333), secs(20)),
        ];
        for (i, (lo, hi)) in windows.iter().enumerate() {
            let d = if i == 0 { after_timeout } else { gaps[1 + i] };
            assert!(
                d >= *lo && d <= *hi,
                "seed {seed}: retry {} after {d:?}, outside [{lo:?}, {hi:?}): {gaps:?}",
                i + 1
            );
        }
        assert!(
            gaps[2] > after_timeout && gaps[3] > gaps[2] && gaps[4] > gaps[3],
            "seed {seed}: {gaps:?}"
        );
        first_delays.push(after_timeout);
        // Retry-After 30 s is longer than any backoff (at most 20 s): honoured exactly
        // (RFC 3261 §21.5.4, §20.33), counted from the 503.
        assert_eq!(gaps[5], secs(30), "seed {seed}: {gaps:?}");
        // Retry-After 5 s is shorter than the backoff, which holds (capped: 13.3 to 20 s):
        // a carrier cannot make the dialer retry faster than its backoff.
        assert!(
            gaps[6] >= Duration::from_millis(13_333) && gaps[6] <= secs(20),
            "seed {seed}: {gaps:?}"
        );
        // Two days asked: cut to MAX_RETRY_AFTER, so the trunk is tried again within a day.
        assert_eq!(gaps[7], MAX_RETRY_AFTER, "seed {seed}: {gaps:?}");

        // What was reported: registered, then retries only (never a permanent failure)
        // with the reason of each, then registered again, not "refreshed".
        let kinds: Vec<String> = o
            .events
            .iter()
            .map(|(_, e)| match e {
                RegistrationEvent::Registered { .. } => "registered".to_owned(),
                RegistrationEvent::RetryScheduled {
                    attempt, reason, ..
                } => format!("retry {attempt} {reason}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "registered",
                "retry 1 no response (timeout)",
                "retry 2 503 Service Unavailable",
                "retry 3 503 Service Unavailable",
                "retry 4 503 Service Unavailable",
                "retry 5 503 Service Unavailable (Retry-After 30 s)",
                "retry 6 503 Service Unavailable (Retry-After 5 s)",
                "retry 7 503 Service Unavailable (Retry-After 172800 s)",
                "registered",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
            "seed {seed}"
        );
        // Each retry went out when it was scheduled.
        let scheduled: Vec<Time> = o
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                RegistrationEvent::RetryScheduled { at, .. } => Some(*at),
                _ => None,
            })
            .collect();
        assert_eq!(scheduled, times[2..].to_vec(), "seed {seed}");
        // Between the failed refresh and the 200 the state says why it is not registered:
        // each retry fires from Backoff with the count and the last error.
        assert_eq!(o.states.len(), 8, "seed {seed}: {:?}", o.states);
        assert!(
            matches!(o.states[0], RegistrationState::Registered { .. }),
            "seed {seed}: the refresh fires registered: {:?}",
            o.states[0]
        );
        for (i, s) in o.states[1..].iter().enumerate() {
            assert!(
                matches!(s, RegistrationState::Backoff { attempts, .. } if *attempts == i as u32 + 1),
                "seed {seed}: retry {}: {s:?}",
                i + 1
            );
        }
        assert!(
            matches!(
                &o.states[1],
                RegistrationState::Backoff {
                    attempts: 1,
                    last_error: RetryReason::Timeout,
                    ..
                }
            ),
            "seed {seed}: {:?}",
            o.states[1]
        );
        match o.reg.state() {
            RegistrationState::Registered { expires_at, .. } => {
                assert_eq!(*expires_at, times[8] + secs(20), "seed {seed}")
            }
            other => panic!("seed {seed}: not registered again: {other:?}"),
        }
        assert_eq!(
            o.reg.next_timeout(),
            Some(times[8] + secs(10)),
            "seed {seed}"
        );
    }
    // Jitter: the dialers restarting together do not all come back at the same instant.
    first_delays.sort();
    first_delays.dedup();
    assert!(first_delays.len() > 20, "{first_delays:?}");
}

#[test]
fn after_recovering_from_an_outage_the_backoff_starts_again_from_the_minimum() {
    let mut c = config();
    c.retry_min = Duration::from_secs(2);
    c.retry_max = Duration::from_secs(40);
    let mut h = Harness::new(c);
    let mut events = vec![];
    let mut branches = vec![];
    h.reg.start(h.now, &mut h.ep);
    // Four 500s in a row, then 200, then 500 again on the refresh.
    for status in [500, 500, 500, 500, 200, 500] {
        let deadline = h.now + Duration::from_secs(120);
        let (_, request) = h
            .next_register(deadline, &mut events, &mut branches)
            .expect("a REGISTER");
        let headers: &[(HeaderKind, &str)] = if status == 200 {
            &[(
                HeaderKind::Contact,
                "<sip:dialer@192.168.1.10:5060>;expires=60",
            )]
        } else {
            &[]
        };
        h.answer(&request, status, headers);
    }
    let end = h.now;
    assert!(h.next_register(end, &mut events, &mut branches).is_none());
    let attempts: Vec<u32> = events
        .iter()
        .filter_map(|(_, e)| match e {
            RegistrationEvent::RetryScheduled { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3, 4, 1]);
    match h.reg.state() {
        RegistrationState::Backoff { until, .. } => {
            let d = until.since(h.now);
            assert!(
                d >= Duration::from_secs(2) && d < Duration::from_secs(3),
                "{d:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

const SECOND: &str = "198.51.100.6:5060";
const THIRD: &str = "198.51.100.7:5060";

#[test]
fn a_register_that_times_out_goes_to_the_next_target_at_timer_f_as_a_new_transaction() {
    let mut c = config();
    c.failover = vec![addr(SECOND)];
    let mut h = Harness::new(c);
    let (mut events, mut branches) = (vec![], vec![]);
    h.reg.start(h.now, &mut h.ep);
    let (t0, first) = h
        .next_register(h.now, &mut events, &mut branches)
        .expect("the first REGISTER");
    assert_eq!(h.reg.target().addr, addr(PROXY));
    // Nobody answers: Timer F (64*T1 = 32 s) ends the transaction, and the next target gets
    // the REGISTER at that instant, not after a backoff.
    let (t1, second) = h
        .next_register(t0 + Duration::from_secs(60), &mut events, &mut branches)
        .expect("a REGISTER to the next target");
    assert_eq!(t1, t0 + Duration::from_secs(32));
    assert_eq!(h.reg.target().addr, addr(SECOND));
    assert_eq!(second.call_id().unwrap(), first.call_id().unwrap());
    assert_eq!(second.cseq().unwrap().seq, first.cseq().unwrap().seq + 1);
    assert_ne!(branches[0], branches[1], "a new transaction");
    assert!(events.iter().any(|(t, e)| *t == t1
        && *e
            == RegistrationEvent::FailedOver {
                from: addr(PROXY),
                to: addr(SECOND),
                reason: RetryReason::Timeout,
            }));
    h.answer(
        &second,
        200,
        &[(
            HeaderKind::Contact,
            "<sip:dialer@192.168.1.10:5060>;expires=60",
        )],
    );
    h.sent();
    assert!(h.reg.is_registered());
    assert_eq!(
        h.reg.target().addr,
        addr(SECOND),
        "the target that answered keeps the registration"
    );
}

#[test]
fn a_503_moves_to_the_next_target_and_when_all_fail_the_backoff_starts_from_the_first() {
    let mut c = config();
    c.failover = vec![addr(SECOND), addr(THIRD)];
    let mut h = Harness::new(c);
    let (mut events, mut branches) = (vec![], vec![]);
    h.reg.start(h.now, &mut h.ep);
    let mut targets = vec![];
    for _ in 0..3 {
        let (_, r) = h
            .next_register(h.now, &mut events, &mut branches)
            .expect("a REGISTER at once");
        targets.push(h.reg.target().addr);
        h.answer(&r, 503, &[]);
    }
    assert_eq!(targets, [addr(PROXY), addr(SECOND), addr(THIRD)]);
    h.sent();
    let kinds: Vec<String> = h
        .events()
        .into_iter()
        .chain(events.into_iter().map(|(_, e)| e))
        .map(|e| match e {
            RegistrationEvent::FailedOver { to, .. } => format!("to {to}"),
            RegistrationEvent::RetryScheduled { attempt, .. } => format!("retry {attempt}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert!(
        kinds.contains(&"retry 1".to_owned()),
        "every target failed: back off: {kinds:?}"
    );
    assert!(matches!(h.reg.state(), RegistrationState::Backoff { .. }));
    assert_eq!(h.reg.target().addr, addr(PROXY), "the retry starts over");
    let (_, _) = h
        .next_register(h.now + Duration::from_secs(10), &mut vec![], &mut branches)
        .expect("the retry after the backoff");
    assert_eq!(h.reg.target().addr, addr(PROXY));
}

#[test]
fn a_500_is_retried_after_a_backoff_on_the_same_target_not_failed_over() {
    let mut c = config();
    c.failover = vec![addr(SECOND)];
    let mut h = Harness::new(c);
    let (mut events, mut branches) = (vec![], vec![]);
    h.reg.start(h.now, &mut h.ep);
    let (_, r) = h.next_register(h.now, &mut events, &mut branches).unwrap();
    h.answer(&r, 500, &[]);
    h.sent();
    assert!(matches!(h.reg.state(), RegistrationState::Backoff { .. }));
    assert_eq!(h.reg.target().addr, addr(PROXY));
}

#[test]
fn new_targets_keep_the_registration_where_it_is_when_that_target_is_still_listed() {
    let mut c = config();
    c.failover = vec![addr(SECOND)];
    let mut h = Harness::new(c);
    let (mut events, mut branches) = (vec![], vec![]);
    h.reg.start(h.now, &mut h.ep);
    let (_, r) = h.next_register(h.now, &mut events, &mut branches).unwrap();
    h.answer(&r, 503, &[]);
    h.sent();
    assert_eq!(h.reg.target().addr, addr(SECOND));
    h.reg.set_targets(addr(THIRD), vec![addr(SECOND)]);
    assert_eq!(h.reg.target().addr, addr(SECOND));
    h.reg.set_targets(addr(THIRD), vec![]);
    assert_eq!(h.reg.target().addr, addr(THIRD));
}
