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
