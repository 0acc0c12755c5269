//! Registrar behaviour in virtual time: clients answer challenges with sip-core's digest
//! client, exactly as a softphone would; no sockets.

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::mock::StepRng;
use sip_core::auth::{
    parse_challenge, password_ha1, AuthOutcome, ChallengedResponse, ClientAuthState, Credentials,
    DigestRequest, HashFunction, Secret,
};
use sip_core::message::{HeaderKind, Message, Request, Response, SipMessage};
use sip_core::time::Time;
use sip_core::transaction::Transport;

use super::*;

const REALM: &str = "dialer";

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn secs(s: u64) -> Time {
    Time(Duration::from_secs(s))
}

fn config() -> RegistrarConfig {
    let mut config = RegistrarConfig::new(REALM, b"registrar-test-nonce-key".to_vec());
    config.agents = vec![
        AgentEntry::with_password(
            "1000",
            "pw-1000",
            vec![net("192.168.1.0/24"), net("203.0.113.0/24")],
        ),
        AgentEntry {
            extension: "1001".into(),
            secret: Secret::Ha1 {
                hash: HashFunction::Md5,
                hex: password_ha1(HashFunction::Md5, "1001", REALM, "pw-1001"),
            },
            allow: vec![net("192.168.1.0/24")],
            max_expires: None,
            static_contact: None,
            transport: None,
        },
        AgentEntry {
            transport: Some(Transport::Tls),
            ..AgentEntry::with_password("1002", "pw-1002", vec![net("192.168.1.0/24")])
        },
    ];
    config
}

fn registrar_with(config: RegistrarConfig) -> Registrar {
    Registrar::new(config, Box::new(StepRng::new(7, 3))).unwrap()
}

fn registrar() -> Registrar {
    registrar_with(config())
}

/// A softphone: builds REGISTERs and answers 401s with [`ClientAuthState`].
struct Phone {
    extension: String,
    credentials: Credentials,
    call_id: String,
    cseq: u32,
    /// The Contact header value.
    contact: String,
    /// An `Expires` header to send, if any.
    expires: Option<u32>,
    source: SocketAddr,
    /// How its REGISTERs arrive.
    transport: Transport,
    auth: ClientAuthState,
    rng: StepRng,
    /// Authorization values for the next request.
    authorization: Vec<String>,
}

impl Phone {
    fn new(extension: &str, password: &str, contact: &str, source: &str) -> Phone {
        Phone {
            extension: extension.into(),
            credentials: Credentials::with_password(extension, password),
            call_id: format!("call-{extension}"),
            cseq: 0,
            contact: contact.into(),
            expires: None,
            source: addr(source),
            transport: Transport::Udp,
            auth: ClientAuthState::new(),
            rng: StepRng::new(11, 5),
            authorization: Vec::new(),
        }
    }

    fn request(&mut self) -> Request {
        self.cseq += 1;
        let ext = &self.extension;
        let mut text = format!(
            "REGISTER sip:dialer.test SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-{cseq};rport\r\n\
             Max-Forwards: 70\r\n\
             To: <sip:{ext}@dialer.test>\r\n\
             From: <sip:{ext}@dialer.test>;tag=f{ext}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: {contact}\r\n\
             User-Agent: baresip v3.10.0 (x86_64/Linux)\r\n",
            cseq = self.cseq,
            call_id = self.call_id,
            contact = self.contact,
        );
        if let Some(e) = self.expires {
            text.push_str(&format!("Expires: {e}\r\n"));
        }
        for a in &self.authorization {
            text.push_str(&format!("Authorization: {a}\r\n"));
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        parse_request(&text)
    }

    /// Updates the credentials after a 401; false when the client gives up (rejected).
    fn answer(&mut self, request: &Request, response: &Response) -> bool {
        let challenges: Vec<&str> = response
            .headers
            .get_all(HeaderKind::WwwAuthenticate)
            .collect();
        let sent: Vec<&str> = request.headers.get_all(HeaderKind::Authorization).collect();
        let uri = request.uri.to_string();
        let outcome = self
            .auth
            .handle_challenge(
                &ChallengedResponse {
                    status: response.status,
                    challenges: &challenges,
                    sent: &sent,
                },
                &self.credentials,
                &DigestRequest {
                    method: "REGISTER",
                    uri: &uri,
                    body: b"",
                },
                &mut self.rng,
            )
            .unwrap();
        match outcome {
            AuthOutcome::Retry { headers } => {
                self.authorization = headers.into_iter().map(|h| h.value).collect();
                true
            }
            AuthOutcome::Rejected { .. } => false,
        }
    }

    /// Pre-emptive credentials for a refresh: the cached nonce with the next nonce count.
    fn reuse_nonce(&mut self) {
        let uri = "sip:dialer.test";
        self.authorization = self
            .auth
            .authorization_headers(
                &self.credentials,
                &DigestRequest {
                    method: "REGISTER",
                    uri,
                    body: b"",
                },
                &mut self.rng,
            )
            .unwrap()
            .into_iter()
            .map(|h| h.value)
            .collect();
    }

    /// REGISTER, answering challenges until a final non-401 answer or a rejection; returns
    /// every outcome in order.
    fn register(&mut self, registrar: &mut Registrar, now: Time) -> Vec<RegisterOutcome> {
        let mut outcomes = Vec::new();
        for _ in 0..4 {
            let request = self.request();
            let outcome = registrar.handle_register(now, &request, self.source, self.transport);
            let challenged = outcome.response.status == 401;
            let retry = challenged && self.answer(&request, &outcome.response);
            outcomes.push(outcome);
            if !retry {
                break;
            }
        }
        outcomes
    }

    /// REGISTER until done and return the final outcome.
    fn register_final(&mut self, registrar: &mut Registrar, now: Time) -> RegisterOutcome {
        self.register(registrar, now).pop().unwrap()
    }
}

fn parse_request(text: &str) -> Request {
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

fn contacts_of(response: &Response) -> Vec<String> {
    response
        .headers
        .get_all(HeaderKind::Contact)
        .map(str::to_owned)
        .collect()
}

const BARESIP_CONTACT: &str = "<sip:1000-0x5592f1c7a2b0@192.168.1.20:5060>;expires=3600;\
     +sip.instance=\"<urn:uuid:6f2b9c3e-1d7a-4e0b-9a55-0c2e6d1b7f41>\";reg-id=1";

fn baresip() -> Phone {
    Phone::new("1000", "pw-1000", BARESIP_CONTACT, "192.168.1.20:5060")
}

fn challenges_of(response: &Response) -> Vec<sip_core::auth::DigestChallenge> {
    response
        .headers
        .get_all(HeaderKind::WwwAuthenticate)
        .map(|v| parse_challenge(v).unwrap())
        .collect()
}

#[test]
fn unauthenticated_register_gets_401_with_one_md5_challenge_and_a_to_tag() {
    let mut registrar = registrar();
    let mut phone = baresip();
    let request = phone.request();
    let outcome = registrar.handle_register(Time::ZERO, &request, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 401);
    assert!(outcome.events.is_empty());
    let challenges = challenges_of(&outcome.response);
    let algorithms: Vec<_> = challenges.iter().map(|c| c.algorithm.as_str()).collect();
    // One MD5 challenge only: libre-based phones fail on any algorithm they lack.
    assert_eq!(algorithms, ["MD5"]);
    assert!(challenges.iter().all(|c| c.realm == REALM && !c.stale));
    assert!(outcome.response.to_header().unwrap().tag().is_some());
    assert!(registrar.lookup("1000", Time::ZERO).is_none());
}

#[test]
fn configured_algorithms_are_each_challenged_with_one_nonce_in_order() {
    let mut config = config();
    config.algorithms = vec![
        sip_core::auth::Algorithm::Sha256,
        sip_core::auth::Algorithm::Md5,
    ];
    let mut registrar = registrar_with(config);
    let mut phone = baresip();
    let request = phone.request();
    let outcome = registrar.handle_register(Time::ZERO, &request, phone.source, Transport::Udp);
    let challenges = challenges_of(&outcome.response);
    let algorithms: Vec<_> = challenges.iter().map(|c| c.algorithm.as_str()).collect();
    assert_eq!(algorithms, ["SHA-256", "MD5"]);
    assert_eq!(challenges[0].nonce, challenges[1].nonce);
}

#[test]
fn answered_challenge_binds_the_contact_and_the_200_lists_it_with_expires() {
    let mut registrar = registrar();
    let mut phone = baresip();
    let outcomes = phone.register(&mut registrar, secs(10));
    assert_eq!(
        outcomes
            .iter()
            .map(|o| o.response.status)
            .collect::<Vec<_>>(),
        [401, 200]
    );
    let ok = &outcomes[1];
    // Same Call-ID, CSeq + 1, as RFC 3261 §22.2 has the client retry.
    assert_eq!(ok.response.cseq().unwrap().seq, 2);
    assert_eq!(
        contacts_of(&ok.response),
        ["<sip:1000-0x5592f1c7a2b0@192.168.1.20:5060>;expires=3600;\
          +sip.instance=\"<urn:uuid:6f2b9c3e-1d7a-4e0b-9a55-0c2e6d1b7f41>\";reg-id=1"]
    );
    let binding = registrar.lookup("1000", secs(10)).unwrap();
    assert_eq!(
        binding.instance.as_deref(),
        Some("<urn:uuid:6f2b9c3e-1d7a-4e0b-9a55-0c2e6d1b7f41>")
    );
    assert_eq!(binding.reg_id, Some(1));
    assert_eq!(binding.expires_at, Some(secs(3610)));
    assert!(!binding.nat);
    assert_eq!(
        binding.user_agent.as_deref(),
        Some("baresip v3.10.0 (x86_64/Linux)")
    );
    assert_eq!(
        ok.events,
        [RegistrarEvent::AgentRegistered {
            extension: "1000".into(),
            contact: binding.contact.clone(),
            source: addr("192.168.1.20:5060"),
            transport: Transport::Udp,
            nat: false,
            expires: Duration::from_secs(3600),
        }]
    );
}

#[test]
fn refresh_reusing_the_nonce_with_the_next_count_is_accepted_and_reported_as_refresh() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.register_final(&mut registrar, secs(0));
    phone.reuse_nonce();
    let request = phone.request();
    let outcome = registrar.handle_register(secs(100), &request, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 200);
    assert!(matches!(
        outcome.events.as_slice(),
        [RegistrarEvent::AgentRefreshed { expires, .. }] if *expires == Duration::from_secs(3600)
    ));
    assert_eq!(registrar.bindings(secs(100)).len(), 1);
    assert_eq!(
        registrar.lookup("1000", secs(100)).unwrap().registered_at,
        secs(0)
    );
}

#[test]
fn replayed_register_is_refused_because_its_nonce_count_was_used() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.register_final(&mut registrar, secs(0));
    // The same bytes again, as an attacker who captured them would send (a new transaction
    // on the wire: the endpoint would have absorbed a retransmission).
    phone.cseq -= 1;
    let replay = phone.request();
    let outcome = registrar.handle_register(secs(5), &replay, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 401);
}

#[test]
fn wrong_password_is_challenged_again_and_a_second_wrong_attempt_is_still_refused() {
    let mut registrar = registrar();
    let mut phone = Phone::new(
        "1000",
        "not-the-password",
        BARESIP_CONTACT,
        "192.168.1.20:5060",
    );
    let outcomes = phone.register(&mut registrar, secs(0));
    // 401 (no credentials), 401 (wrong): the client sees its answer refused and stops.
    assert_eq!(
        outcomes
            .iter()
            .map(|o| o.response.status)
            .collect::<Vec<_>>(),
        [401, 401]
    );
    // A second attempt with fresh credentials for the new nonce is refused as well.
    let last = outcomes.last().unwrap();
    let mut retry_auth = ClientAuthState::new();
    let challenges: Vec<&str> = last
        .response
        .headers
        .get_all(HeaderKind::WwwAuthenticate)
        .collect();
    let AuthOutcome::Retry { headers } = retry_auth
        .handle_challenge(
            &ChallengedResponse {
                status: 401,
                challenges: &challenges,
                sent: &[],
            },
            &phone.credentials,
            &DigestRequest {
                method: "REGISTER",
                uri: "sip:dialer.test",
                body: b"",
            },
            &mut StepRng::new(99, 1),
        )
        .unwrap()
    else {
        panic!("a first answer to a new nonce is always attempted");
    };
    phone.authorization = headers.into_iter().map(|h| h.value).collect();
    let request = phone.request();
    let outcome = registrar.handle_register(secs(1), &request, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 401);
    assert!(registrar.lookup("1000", secs(1)).is_none());
    // The right password still works afterwards: no lockout.
    let mut good = baresip();
    good.call_id = "another".into();
    assert_eq!(
        good.register_final(&mut registrar, secs(2)).response.status,
        200
    );
}

#[test]
fn a1_hash_agent_is_challenged_with_md5_only_and_authenticates() {
    let mut registrar = registrar();
    let mut phone = Phone::new(
        "1001",
        "pw-1001",
        "<sip:1001@192.168.1.30:5062>",
        "192.168.1.30:5062",
    );
    let outcomes = phone.register(&mut registrar, secs(0));
    let algorithms: Vec<_> = outcomes[0]
        .response
        .headers
        .get_all(HeaderKind::WwwAuthenticate)
        .map(|v| parse_challenge(v).unwrap().algorithm.as_str())
        .collect();
    assert_eq!(algorithms, ["MD5"]);
    assert_eq!(outcomes.last().unwrap().response.status, 200);
    assert_eq!(
        registrar.lookup("1001", secs(0)).unwrap().source,
        addr("192.168.1.30:5062")
    );
}

/// A response without its To tag, nonce, Via and CSeq (which echo the request): what a
/// scanner compares.
fn shape(response: &Response) -> String {
    let mut response = response.clone();
    let challenges: Vec<String> = response
        .headers
        .get_all(HeaderKind::WwwAuthenticate)
        .map(|v| {
            let mut c = parse_challenge(v).unwrap();
            c.nonce = "N".into();
            c.to_header_value()
        })
        .collect();
    response.headers.remove(HeaderKind::WwwAuthenticate);
    for c in challenges {
        response.headers.add(HeaderKind::WwwAuthenticate, c);
    }
    let text = String::from_utf8(response.to_bytes()).unwrap();
    text.lines()
        .filter(|l| !l.starts_with("Via:") && !l.starts_with("CSeq:"))
        .map(|l| {
            if l.starts_with("To:") {
                l.split(";tag=").next().unwrap().to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_failure_gets_the_same_401_as_a_first_register() {
    let mut registrar = registrar();
    // The reference: a known extension's first REGISTER, from an allowed source.
    let mut probe = Phone::new("1000", "x", "<sip:1000@192.168.1.20>", "192.168.1.20:5060");
    probe.call_id = "same".into();
    let first = registrar.handle_register(secs(0), &probe.request(), probe.source, Transport::Udp);
    assert_eq!(first.response.status, 401);
    assert!(first.failure.is_none(), "a first REGISTER is no failure");
    let reference = shape(&first.response);

    let mut cases = vec![
        // Unknown extension.
        (
            Phone::new("4242", "x", "<sip:4242@192.168.1.20>", "192.168.1.20:5060"),
            "unknown_extension",
        ),
        // Wrong password.
        (
            Phone::new(
                "1000",
                "wrong",
                "<sip:1000@192.168.1.20>",
                "192.168.1.20:5060",
            ),
            "wrong_password",
        ),
        // Right password, source outside allow.
        (
            Phone::new(
                "1001",
                "pw-1001",
                "<sip:1001@198.51.100.9>",
                "198.51.100.9:5060",
            ),
            "disallowed_network",
        ),
    ];
    // Right password, over UDP for an agent that registers over TLS only.
    cases.push((
        Phone::new(
            "1002",
            "pw-1002",
            "<sip:1002@192.168.1.20>",
            "192.168.1.20:5060",
        ),
        "wrong_transport",
    ));
    // Right password of 1000, for 1001's address-of-record.
    let mut other = Phone::new(
        "1001",
        "pw-1000",
        "<sip:1001@192.168.1.20>",
        "192.168.1.20:5060",
    );
    other.credentials = Credentials::with_password("1000", "pw-1000");
    cases.push((other, "username_mismatch"));
    for (mut phone, reason) in cases {
        phone.call_id = "same".into();
        // The same first answer whoever asks ...
        let request = phone.request();
        let outcome = registrar.handle_register(secs(1), &request, phone.source, Transport::Udp);
        assert_eq!(outcome.response.status, 401, "{reason}");
        assert!(outcome.failure.is_none());
        let ext = phone.extension.clone();
        assert_eq!(
            shape(&outcome.response),
            reference.replace("1000", &ext),
            "{reason}"
        );
        // ... and after the credentials, the same 401 again, with a fresh nonce.
        let nonce = challenges_of(&outcome.response)[0].nonce.clone();
        assert!(phone.answer(&request, &outcome.response));
        let request = phone.request();
        let outcome = registrar.handle_register(secs(1), &request, phone.source, Transport::Udp);
        assert_eq!(outcome.response.status, 401, "{reason}");
        assert_eq!(
            shape(&outcome.response),
            reference.replace("1000", &ext),
            "{reason}"
        );
        assert_ne!(challenges_of(&outcome.response)[0].nonce, nonce);
        let failure = outcome.failure.expect("a failure");
        assert_eq!(failure.reason.as_str(), reason);
        assert_eq!(failure.extension, ext);
        assert_eq!(failure.source, phone.source);
        assert_eq!(registrar.poll_failure(), Some(failure));
        assert_eq!(registrar.poll_failure(), None);
        assert!(outcome.events.is_empty());
    }
    assert!(registrar.lookup("1001", secs(1)).is_none());
}

#[test]
fn unknown_extensions_get_nonces_like_a_known_one() {
    let mut registrar = registrar();
    let mut known = baresip();
    let mut unknown = Phone::new("4242", "x", "<sip:4242@192.168.1.20>", "192.168.1.20:5060");
    let a = registrar.handle_register(secs(0), &known.request(), known.source, Transport::Udp);
    let b = registrar.handle_register(secs(0), &unknown.request(), unknown.source, Transport::Udp);
    let (a, b) = (
        &challenges_of(&a.response)[0],
        &challenges_of(&b.response)[0],
    );
    assert_eq!(a.nonce.len(), b.nonce.len());
    assert_ne!(a.nonce, b.nonce);
    assert_eq!(
        (&a.realm, a.algorithm, &a.qop),
        (&b.realm, b.algorithm, &b.qop)
    );
    // The nonce carries its issue time and a serial number in clear: one sequence for
    // everyone, so neither tells a scanner which extension has its own digest server.
    let mut clear = Vec::new();
    for ext in ["4243", "1000", "4244", "1001", "4245"] {
        let mut phone = Phone::new(
            ext,
            "x",
            &format!("<sip:{ext}@192.168.1.20>"),
            "192.168.1.20:5060",
        );
        let outcome =
            registrar.handle_register(secs(7), &phone.request(), phone.source, Transport::Udp);
        let nonce = challenges_of(&outcome.response)[0].nonce.clone();
        clear.push((
            u64::from_str_radix(&nonce[..16], 16).unwrap(),
            u64::from_str_radix(&nonce[16..32], 16).unwrap(),
        ));
    }
    let first = clear[0].1;
    assert_eq!(
        clear,
        (0..5).map(|i| (7, first + i)).collect::<Vec<_>>(),
        "issue times and serials"
    );
}

#[test]
fn a_wrong_answer_spends_its_nonce_even_for_the_right_password() {
    let mut registrar = registrar();
    let mut thief = Phone::new("1000", "guess", BARESIP_CONTACT, "192.168.1.20:5060");
    let outcomes = thief.register(&mut registrar, secs(0));
    assert_eq!(outcomes.len(), 2);
    assert_eq!(
        outcomes[1].failure.as_ref().unwrap().reason,
        FailureReason::WrongPassword
    );
    // The right password on the spent nonce (the same client state, next nonce count).
    thief.credentials = Credentials::with_password("1000", "pw-1000");
    thief.reuse_nonce();
    let outcome =
        registrar.handle_register(secs(1), &thief.request(), thief.source, Transport::Udp);
    assert_eq!(outcome.response.status, 401);
    assert_eq!(outcome.failure.unwrap().reason, FailureReason::StaleNonce);
    // A fresh challenge answered right succeeds.
    let mut good = baresip();
    assert_eq!(
        good.register_final(&mut registrar, secs(2)).response.status,
        200
    );
}

#[test]
fn a_nonce_of_another_key_or_an_expired_one_is_no_failure() {
    let mut other = registrar_with(RegistrarConfig {
        nonce_secret: b"a previous run".to_vec(),
        ..config()
    });
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.register_final(&mut other, secs(0));
    // The dialer restarted with a new key: the cached nonce is not ours.
    phone.reuse_nonce();
    let outcome =
        registrar.handle_register(secs(10), &phone.request(), phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 401);
    assert!(outcome.failure.is_none());
    assert!(registrar.poll_failure().is_none());
}

#[test]
fn max_failures_from_one_source_ban_it_whatever_the_extension() {
    let mut config = config();
    config.security.max_failures = 3;
    let mut registrar = registrar_with(config);
    let scanner = "203.0.113.9:5060";
    let mut failures = Vec::new();
    for (i, ext) in ["1000", "4242", "1000"].into_iter().enumerate() {
        assert!(!registrar.is_banned(secs(i as u64), addr(scanner).ip()));
        let mut phone = Phone::new(ext, "guess", &format!("<sip:{ext}@203.0.113.9>"), scanner);
        let last = phone
            .register(&mut registrar, secs(i as u64))
            .pop()
            .unwrap();
        failures.push(last.failure.unwrap());
    }
    assert_eq!(
        failures
            .iter()
            .map(|f| (f.reason.as_str(), f.failures))
            .collect::<Vec<_>>(),
        [
            ("wrong_password", 1),
            ("unknown_extension", 2),
            ("wrong_password", 3)
        ]
    );
    let ban = failures[2].banned.expect("the third failure bans");
    assert_eq!(
        (ban.since, ban.until, ban.failures),
        (secs(2), secs(3602), 3)
    );
    assert!(registrar.is_banned(secs(2), addr(scanner).ip()));
    assert!(!registrar.is_banned(secs(2), addr("203.0.113.10:5060").ip()));
    assert_eq!(registrar.bans(secs(100)), [ban]);
    assert!(registrar.bans(secs(3602)).is_empty());
    assert_eq!(registrar.lift_ban(secs(3), addr(scanner).ip()), Some(ban));
    assert!(!registrar.is_banned(secs(3), addr(scanner).ip()));
    assert_eq!(registrar.lift_ban(secs(3), addr(scanner).ip()), None);
    // The right password from the same place works once the ban is lifted.
    let mut good = Phone::new("1000", "pw-1000", "<sip:1000@203.0.113.9>", scanner);
    assert_eq!(
        good.register_final(&mut registrar, secs(4)).response.status,
        200
    );
}

#[test]
fn exempt_sources_and_ban_zero_are_logged_but_never_banned() {
    let mut config = config();
    config.security.max_failures = 1;
    config.security.exempt = vec![net("192.168.1.0/24")];
    let mut registrar = registrar_with(config.clone());
    let mut phone = Phone::new("1000", "guess", BARESIP_CONTACT, "192.168.1.20:5060");
    let failure = phone
        .register(&mut registrar, secs(0))
        .pop()
        .unwrap()
        .failure
        .unwrap();
    assert_eq!((failure.failures, failure.banned), (0, None));
    assert!(!registrar.is_banned(secs(0), phone.source.ip()));

    config.security.ban = Duration::ZERO;
    let mut registrar = registrar_with(config);
    let mut phone = Phone::new(
        "1000",
        "guess",
        "<sip:1000@203.0.113.9>",
        "203.0.113.9:5060",
    );
    let failure = phone
        .register(&mut registrar, secs(0))
        .pop()
        .unwrap()
        .failure
        .unwrap();
    assert_eq!((failure.failures, failure.banned), (1, None));
    assert!(!registrar.is_banned(secs(0), phone.source.ip()));
    assert!(registrar.bans(secs(0)).is_empty());
}

#[test]
fn the_failure_line_has_the_time_source_extension_and_reason_on_one_line() {
    assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
    assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(utc_timestamp(1_796_644_800), "2026-12-07T12:00:00Z");
    let mut failure = AuthFailure {
        at: secs(5),
        source: addr("[::ffff:203.0.113.9]:5060"),
        extension: "1000".into(),
        reason: FailureReason::WrongPassword,
        failures: 1,
        banned: None,
    };
    assert_eq!(
        failure_line(1_796_644_800, &failure),
        "2026-12-07T12:00:00Z WARN dialer::registrar: authentication failed source=203.0.113.9 extension=1000 reason=wrong_password"
    );
    // What the sender chose cannot add fields or lines.
    failure.extension = "x reason=ok\nsource=192.0.2.1".into();
    failure.source = addr("[2001:db8::9]:5060");
    assert_eq!(
        failure_line(0, &failure),
        "1970-01-01T00:00:00Z WARN dialer::registrar: authentication failed source=2001:db8::9 extension=x?reason?ok?source?192.0.2.1 reason=wrong_password"
    );
    failure.extension = String::new();
    assert!(failure_line(0, &failure).contains(" extension=- "));
}

#[test]
fn nat_binding_calls_the_public_source_and_keeps_the_contact_verbatim() {
    let mut registrar = registrar();
    let contact = "<sip:1000@10.0.0.5:5060;transport=udp;rinstance=8d4f>;expires=600;\
                   +sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000000000001>\"";
    let mut phone = Phone::new("1000", "pw-1000", contact, "203.0.113.7:40000");
    let outcome = phone.register_final(&mut registrar, secs(0));
    assert_eq!(outcome.response.status, 200);
    let binding = registrar.lookup("1000", secs(0)).unwrap();
    assert_eq!(binding.source, addr("203.0.113.7:40000"));
    assert!(binding.nat);
    assert_eq!(
        binding.request_uri().to_string(),
        "sip:1000@10.0.0.5:5060;transport=udp;rinstance=8d4f"
    );
    assert_eq!(binding.contact.to_string(), contact);
    assert!(matches!(
        outcome.events.as_slice(),
        [RegistrarEvent::AgentRegistered { nat: true, source, .. }] if *source == addr("203.0.113.7:40000")
    ));
}

#[test]
fn nat_rebinding_on_refresh_moves_the_call_target_to_the_new_public_port() {
    let mut registrar = registrar();
    let mut phone = Phone::new(
        "1000",
        "pw-1000",
        "<sip:1000@10.0.0.5:5060>",
        "203.0.113.7:40000",
    );
    phone.register_final(&mut registrar, secs(0));
    phone.source = addr("203.0.113.7:40002");
    phone.reuse_nonce();
    let request = phone.request();
    let outcome = registrar.handle_register(secs(60), &request, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 200);
    assert_eq!(registrar.bindings(secs(60)).len(), 1);
    assert_eq!(
        registrar.lookup("1000", secs(60)).unwrap().source,
        addr("203.0.113.7:40002")
    );
}

#[test]
fn expiry_below_min_gets_423_with_min_expires_and_binds_nothing() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.contact = "<sip:1000@192.168.1.20:5060>;expires=30".into();
    let outcome = phone.register_final(&mut registrar, secs(0));
    assert_eq!(outcome.response.status, 423);
    assert_eq!(
        outcome.response.headers.get(HeaderKind::MinExpires),
        Some("60")
    );
    assert!(outcome.events.is_empty());
    assert!(registrar.lookup("1000", secs(0)).is_none());
}

#[test]
fn expires_header_applies_when_the_contact_has_no_expires_param() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.contact = "<sip:1000@192.168.1.20:5060>".into();
    phone.expires = Some(120);
    let outcome = phone.register_final(&mut registrar, secs(0));
    assert_eq!(
        contacts_of(&outcome.response),
        ["<sip:1000@192.168.1.20:5060>;expires=120"]
    );
    // Neither: the default (3600 s).
    let mut other = Phone::new(
        "1001",
        "pw-1001",
        "<sip:1001@192.168.1.30>",
        "192.168.1.30:5060",
    );
    other.register_final(&mut registrar, secs(0));
    assert_eq!(
        registrar.lookup("1001", secs(0)).unwrap().expires_at,
        Some(secs(3600))
    );
}

#[test]
fn expiry_above_max_is_capped_and_the_agent_maximum_overrides() {
    let mut config = config();
    config.agents[1].max_expires = Some(Duration::from_secs(300));
    let mut registrar = registrar_with(config);
    let mut phone = baresip();
    phone.contact = "<sip:1000@192.168.1.20:5060>;expires=86400".into();
    let outcome = phone.register_final(&mut registrar, secs(0));
    assert_eq!(
        contacts_of(&outcome.response),
        ["<sip:1000@192.168.1.20:5060>;expires=3600"]
    );
    let mut other = Phone::new(
        "1001",
        "pw-1001",
        "<sip:1001@192.168.1.30>",
        "192.168.1.30:5060",
    );
    other.expires = Some(3600);
    let outcome = other.register_final(&mut registrar, secs(0));
    assert_eq!(
        contacts_of(&outcome.response),
        ["<sip:1001@192.168.1.30>;expires=300"]
    );
}

#[test]
fn expires_zero_removes_the_binding() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.register_final(&mut registrar, secs(0));
    phone.contact = BARESIP_CONTACT.replace("expires=3600", "expires=0");
    phone.reuse_nonce();
    let request = phone.request();
    let outcome = registrar.handle_register(secs(30), &request, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 200);
    assert!(contacts_of(&outcome.response).is_empty());
    assert!(matches!(
        outcome.events.as_slice(),
        [RegistrarEvent::AgentUnregistered {
            reason: UnregisterReason::Removed,
            ..
        }]
    ));
    assert!(registrar.lookup("1000", secs(30)).is_none());
}

#[test]
fn star_with_expires_zero_removes_every_binding() {
    let mut registrar = registrar();
    let mut desk = Phone::new(
        "1000",
        "pw-1000",
        "<sip:1000@192.168.1.21>",
        "192.168.1.21:5060",
    );
    desk.call_id = "desk".into();
    desk.register_final(&mut registrar, secs(0));
    let mut phone = baresip();
    phone.register_final(&mut registrar, secs(1));
    assert_eq!(registrar.contacts("1000", secs(1)).len(), 2);

    phone.contact = "*".into();
    phone.expires = Some(0);
    phone.reuse_nonce();
    let request = phone.request();
    let outcome = registrar.handle_register(secs(2), &request, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 200);
    assert_eq!(outcome.events.len(), 2);
    assert!(registrar.contacts("1000", secs(2)).is_empty());
}

#[test]
fn star_without_expires_zero_is_a_bad_request() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.contact = "*".into();
    phone.expires = Some(60);
    assert_eq!(
        phone
            .register_final(&mut registrar, secs(0))
            .response
            .status,
        400
    );
    phone.expires = None;
    phone.reuse_nonce();
    assert_eq!(
        phone
            .register_final(&mut registrar, secs(0))
            .response
            .status,
        400
    );
}

#[test]
fn binding_lapses_in_virtual_time_with_an_expired_event() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.contact = "<sip:1000@192.168.1.20:5060>;expires=120".into();
    phone.register_final(&mut registrar, secs(0));
    assert_eq!(registrar.next_expiry(), Some(secs(120)));
    assert!(registrar.expire(secs(119)).is_empty());
    assert!(registrar.lookup("1000", secs(119)).is_some());
    // At the instant it lapses, lookup no longer offers it, even before expire runs.
    assert!(registrar.lookup("1000", secs(120)).is_none());
    let events = registrar.expire(secs(120));
    assert_eq!(
        events,
        [RegistrarEvent::AgentUnregistered {
            extension: "1000".into(),
            contact: NameAddr::parse("Contact", "<sip:1000@192.168.1.20:5060>;expires=120")
                .unwrap(),
            reason: UnregisterReason::Expired,
        }]
    );
    assert_eq!(registrar.next_expiry(), None);
    assert!(registrar.bindings(secs(120)).is_empty());
}

#[test]
fn next_expiry_follows_every_agent_through_refresh_unregister_and_lapse() {
    let mut registrar = registrar();
    let mut a = baresip();
    a.contact = "<sip:1000@192.168.1.20:5060>;expires=300".into();
    let mut b = Phone::new(
        "1001",
        "pw-1001",
        "<sip:1001@192.168.1.21:5060>",
        "192.168.1.21:5060",
    );
    b.contact = "<sip:1001@192.168.1.21:5060>;expires=120".into();
    assert_eq!(
        a.register_final(&mut registrar, secs(0)).response.status,
        200
    );
    assert_eq!(registrar.next_expiry(), Some(secs(300)));
    assert_eq!(
        b.register_final(&mut registrar, secs(10)).response.status,
        200
    );
    assert_eq!(
        registrar.next_expiry(),
        Some(secs(130)),
        "the other agent's is earlier"
    );
    // A refresh for longer moves the earliest expiry to the other agent's binding.
    b.contact = "<sip:1001@192.168.1.21:5060>;expires=600".into();
    b.reuse_nonce();
    assert_eq!(
        b.register_final(&mut registrar, secs(20)).response.status,
        200
    );
    assert_eq!(registrar.next_expiry(), Some(secs(300)));
    // Un-registering (expires=0, RFC 3261 §10.2.2) removes it from the reckoning.
    a.contact = "<sip:1000@192.168.1.20:5060>;expires=0".into();
    a.reuse_nonce();
    assert_eq!(
        a.register_final(&mut registrar, secs(30)).response.status,
        200
    );
    assert_eq!(registrar.next_expiry(), Some(secs(620)));
    assert!(
        registrar.expire(secs(619)).is_empty(),
        "nothing lapses before it"
    );
    assert_eq!(registrar.expire(secs(620)).len(), 1);
    assert_eq!(registrar.next_expiry(), None);
}

#[test]
fn remaining_time_in_the_200_counts_down_and_rounds_up() {
    let mut registrar = registrar();
    let mut desk = Phone::new(
        "1000",
        "pw-1000",
        "<sip:1000@192.168.1.21>;expires=600",
        "192.168.1.21:5060",
    );
    desk.call_id = "desk".into();
    desk.register_final(&mut registrar, secs(0));
    let mut phone = baresip();
    let outcome = phone.register_final(&mut registrar, Time::from_millis(100_500));
    let listed = contacts_of(&outcome.response);
    assert!(
        listed.contains(&"<sip:1000@192.168.1.21>;expires=500".to_string()),
        "{listed:?}"
    );
}

#[test]
fn expired_nonce_is_challenged_with_stale_true_and_the_retry_succeeds() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.register_final(&mut registrar, secs(0));
    // The nonce is fresh for 300 s; the refresh at 1800 s reuses it.
    phone.reuse_nonce();
    let request = phone.request();
    let outcome = registrar.handle_register(secs(1800), &request, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 401);
    let challenge = parse_challenge(
        outcome
            .response
            .headers
            .get(HeaderKind::WwwAuthenticate)
            .unwrap(),
    )
    .unwrap();
    assert!(challenge.stale);
    // The client retries with the same password, without asking its user.
    assert!(phone.answer(&request, &outcome.response));
    let request = phone.request();
    let outcome = registrar.handle_register(secs(1800), &request, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 200);
}

#[test]
fn new_call_id_rewrites_the_binding_instead_of_adding_one() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.register_final(&mut registrar, secs(0));
    // The softphone restarted: new Call-ID, CSeq from 1 again, same Contact.
    let mut restarted = baresip();
    restarted.call_id = "after-restart".into();
    let outcome = restarted.register_final(&mut registrar, secs(50));
    assert_eq!(outcome.response.status, 200);
    assert_eq!(contacts_of(&outcome.response).len(), 1);
    assert!(matches!(
        outcome.events.as_slice(),
        [RegistrarEvent::AgentRegistered { .. }]
    ));
    let binding = registrar.lookup("1000", secs(50)).unwrap();
    assert_eq!(binding.call_id, "after-restart");
    assert_eq!(binding.expires_at, Some(secs(3650)));
}

#[test]
fn same_call_id_with_a_lower_cseq_is_refused_with_500_and_changes_nothing() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.cseq = 10;
    phone.register_final(&mut registrar, secs(0));
    let before = registrar.lookup("1000", secs(0)).unwrap().clone();
    // A delayed REGISTER from the same boot cycle, with fresh credentials, older CSeq.
    phone.cseq = 5;
    phone.contact = BARESIP_CONTACT.replace("expires=3600", "expires=0");
    phone.authorization.clear();
    let outcomes = phone.register(&mut registrar, secs(1));
    assert_eq!(outcomes.last().unwrap().response.status, 500);
    assert_eq!(registrar.lookup("1000", secs(1)), Some(&before));
}

#[test]
fn same_instance_from_a_new_address_replaces_the_old_binding() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.register_final(&mut registrar, secs(0));
    // The laptop moved networks: new Contact, same +sip.instance and reg-id, new Call-ID.
    let mut moved = Phone::new(
        "1000",
        "pw-1000",
        &BARESIP_CONTACT.replace("192.168.1.20:5060", "203.0.113.50:5060"),
        "203.0.113.50:5060",
    );
    moved.call_id = "moved".into();
    let outcome = moved.register_final(&mut registrar, secs(10));
    assert_eq!(outcome.response.status, 200);
    assert!(matches!(
        outcome.events.as_slice(),
        [
            RegistrarEvent::AgentUnregistered {
                reason: UnregisterReason::Replaced,
                ..
            },
            RegistrarEvent::AgentRegistered { .. }
        ]
    ));
    let bindings = registrar.contacts("1000", secs(10));
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].source, addr("203.0.113.50:5060"));
}

#[test]
fn lookup_prefers_the_highest_q_then_the_most_recent() {
    let mut registrar = registrar();
    let mut desk = Phone::new(
        "1000",
        "pw-1000",
        "<sip:1000@192.168.1.21>;q=0.9",
        "192.168.1.21:5060",
    );
    desk.call_id = "desk".into();
    desk.register_final(&mut registrar, secs(0));
    let mut soft = Phone::new(
        "1000",
        "pw-1000",
        "<sip:1000@192.168.1.22>;q=0.5",
        "192.168.1.22:5060",
    );
    soft.call_id = "soft".into();
    soft.register_final(&mut registrar, secs(5));
    assert_eq!(
        registrar.lookup("1000", secs(6)).unwrap().source,
        addr("192.168.1.21:5060")
    );
    let mut other = Phone::new(
        "1000",
        "pw-1000",
        "<sip:1000@192.168.1.23>;q=0.9",
        "192.168.1.23:5060",
    );
    other.call_id = "other".into();
    other.register_final(&mut registrar, secs(7));
    assert_eq!(
        registrar.lookup("1000", secs(8)).unwrap().source,
        addr("192.168.1.23:5060")
    );
    let order: Vec<u16> = registrar
        .contacts("1000", secs(8))
        .iter()
        .map(|b| b.q)
        .collect();
    assert_eq!(order, [900, 900, 500]);
}

#[test]
fn malformed_q_is_a_bad_request() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.contact = "<sip:1000@192.168.1.20>;q=1.5".into();
    assert_eq!(
        phone
            .register_final(&mut registrar, secs(0))
            .response
            .status,
        400
    );
}

#[test]
fn static_contact_is_returned_by_lookup_and_a_registration_takes_precedence() {
    let mut config = config();
    config.agents[0].static_contact = Some(StaticContact {
        contact: NameAddr::new(
            sip_core::message::Uri::parse("sip:1000@192.168.1.99:5080").unwrap(),
        ),
        target: addr("192.168.1.99:5080"),
        transport: Transport::Udp,
    });
    let mut registrar = registrar_with(config);
    let fixed = registrar.lookup("1000", secs(1_000_000)).unwrap();
    assert!(fixed.is_static());
    assert_eq!(fixed.source, addr("192.168.1.99:5080"));
    assert_eq!(registrar.next_expiry(), None);
    assert!(registrar.expire(secs(1_000_000)).is_empty());

    baresip().register_final(&mut registrar, secs(0));
    assert!(!registrar.lookup("1000", secs(1)).unwrap().is_static());
    assert_eq!(registrar.contacts("1000", secs(1)).len(), 2);
    assert!(registrar.lookup("1000", secs(4000)).unwrap().is_static());
}

#[test]
fn require_naming_an_extension_gets_420_with_unsupported() {
    let mut registrar = registrar();
    let mut phone = baresip();
    let mut request = phone.request();
    request.headers.add(HeaderKind::Require, "outbound, path");
    let outcome = registrar.handle_register(secs(0), &request, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 420);
    assert_eq!(
        outcome.response.headers.get(HeaderKind::Unsupported),
        Some("outbound, path")
    );
}

#[test]
fn to_host_outside_the_domain_gets_404() {
    let mut config = config();
    config.domain = Some("dialer.lan".into());
    let mut registrar = registrar_with(config);
    let outcome = baresip().register_final(&mut registrar, secs(0));
    assert_eq!(outcome.response.status, 404);
}

#[test]
fn register_without_contact_lists_the_current_bindings() {
    let mut registrar = registrar();
    let mut phone = baresip();
    phone.register_final(&mut registrar, secs(0));
    let mut query = parse_request(
        "REGISTER sip:dialer.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-q;rport\r\n\
         To: <sip:1000@dialer.test>\r\n\
         From: <sip:1000@dialer.test>;tag=q\r\n\
         Call-ID: query\r\n\
         CSeq: 1 REGISTER\r\n\
         Content-Length: 0\r\n\r\n",
    );
    let first = registrar.handle_register(secs(1), &query, phone.source, Transport::Udp);
    assert_eq!(first.response.status, 401);
    phone.answer(&query, &first.response);
    for a in &phone.authorization {
        query.headers.add(HeaderKind::Authorization, a.clone());
    }
    query.headers.set(HeaderKind::CSeq, "2 REGISTER");
    let outcome = registrar.handle_register(secs(1), &query, phone.source, Transport::Udp);
    assert_eq!(outcome.response.status, 200);
    assert_eq!(contacts_of(&outcome.response).len(), 1);
    assert!(outcome.events.is_empty());
}

#[test]
fn contacts_beyond_the_limit_evict_the_least_recently_refreshed() {
    let mut config = config();
    config.max_bindings_per_agent = 2;
    let mut registrar = registrar_with(config);
    for (i, host) in ["192.168.1.31", "192.168.1.32", "192.168.1.33"]
        .iter()
        .enumerate()
    {
        let mut phone = Phone::new(
            "1000",
            "pw-1000",
            &format!("<sip:1000@{host}>"),
            &format!("{host}:5060"),
        );
        phone.call_id = format!("phone-{i}");
        let outcome = phone.register_final(&mut registrar, secs(i as u64));
        assert_eq!(outcome.response.status, 200);
        if i == 2 {
            assert!(matches!(
                outcome.events.as_slice(),
                [
                    RegistrarEvent::AgentRegistered { .. },
                    RegistrarEvent::AgentUnregistered { reason: UnregisterReason::Replaced, contact, .. }
                ] if contact.to_string() == "<sip:1000@192.168.1.31>"
            ));
        }
    }
    let sources: Vec<_> = registrar
        .contacts("1000", secs(3))
        .iter()
        .map(|b| b.source)
        .collect();
    assert_eq!(
        sources,
        [addr("192.168.1.33:5060"), addr("192.168.1.32:5060")]
    );

    let mut greedy = baresip();
    greedy.contact =
        "<sip:1000@192.168.1.41>, <sip:1000@192.168.1.42>, <sip:1000@192.168.1.43>".into();
    assert_eq!(
        greedy
            .register_final(&mut registrar, secs(4))
            .response
            .status,
        403
    );
    assert_eq!(registrar.contacts("1000", secs(4)).len(), 2);
}

#[test]
fn options_keepalive_gets_200_with_allow_accept_and_supported() {
    let mut config = config();
    config.server = Some("dialer/0.1".into());
    let mut registrar = registrar_with(config);
    let request = parse_request(
        "OPTIONS sip:dialer.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.20:5060;branch=z9hG4bK-o;rport\r\n\
         To: <sip:dialer.test>\r\n\
         From: <sip:1000@dialer.test>;tag=o\r\n\
         Call-ID: keepalive\r\n\
         CSeq: 7 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
    );
    let response = registrar.handle_options(&request);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.headers.get(HeaderKind::Allow),
        Some("INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER")
    );
    assert_eq!(
        response.headers.get(HeaderKind::Accept),
        Some("application/sdp")
    );
    assert_eq!(response.headers.get(HeaderKind::Supported), Some(""));
    assert_eq!(response.headers.get(HeaderKind::Server), Some("dialer/0.1"));
    assert_eq!(response.cseq().unwrap().seq, 7);
    assert!(response.to_header().unwrap().tag().is_some());
    // It survives the wire: written and parsed back by the stack the agent side uses.
    let reparsed = Message::parse(&response.to_bytes()).unwrap();
    assert_eq!(reparsed.as_response().unwrap(), &response);
}

#[test]
fn configuration_mistakes_are_refused() {
    let mut duplicate = config();
    duplicate.agents.push(duplicate.agents[0].clone());
    assert_eq!(
        Registrar::new(duplicate, Box::new(StepRng::new(0, 1))).unwrap_err(),
        RegistrarConfigError::DuplicateExtension("1000".into())
    );
    let mut bounds = config();
    bounds.min_expires = Duration::from_secs(7200);
    assert!(matches!(
        Registrar::new(bounds, Box::new(StepRng::new(0, 1))).unwrap_err(),
        RegistrarConfigError::ExpiresBounds { .. }
    ));
    let mut keyless = config();
    keyless.nonce_secret.clear();
    assert_eq!(
        Registrar::new(keyless, Box::new(StepRng::new(0, 1))).unwrap_err(),
        RegistrarConfigError::EmptyNonceSecret
    );
    let mut bad_extension = config();
    bad_extension.agents[0].extension = "10 00".into();
    assert!(matches!(
        Registrar::new(bad_extension, Box::new(StepRng::new(0, 1))).unwrap_err(),
        RegistrarConfigError::InvalidExtension(_)
    ));
}

#[test]
fn debug_output_hides_the_nonce_secret() {
    let printed = format!("{:?}", config());
    assert!(!printed.contains("registrar-test-nonce-key"));
    assert!(printed.contains("<redacted>"));
}

#[test]
fn two_agents_challenged_in_the_same_second_both_register() {
    let mut registrar = registrar();
    let mut first = baresip();
    let mut second = Phone::new(
        "1001",
        "pw-1001",
        "<sip:1001@192.168.1.30>",
        "192.168.1.30:5060",
    );
    assert_eq!(
        first
            .register_final(&mut registrar, secs(0))
            .response
            .status,
        200
    );
    assert_eq!(
        second
            .register_final(&mut registrar, secs(0))
            .response
            .status,
        200
    );
}

#[test]
fn two_phones_of_one_agent_challenged_in_the_same_second_both_register() {
    let mut registrar = registrar();
    let mut desk = Phone::new(
        "1000",
        "pw-1000",
        "<sip:1000@192.168.1.21>",
        "192.168.1.21:5060",
    );
    desk.call_id = "desk".into();
    let mut soft = baresip();
    // Interleaved: both are challenged before either answers.
    let desk_request = desk.request();
    let soft_request = soft.request();
    let desk_401 = registrar.handle_register(secs(3), &desk_request, desk.source, Transport::Udp);
    let soft_401 = registrar.handle_register(secs(3), &soft_request, soft.source, Transport::Udp);
    assert!(desk.answer(&desk_request, &desk_401.response));
    assert!(soft.answer(&soft_request, &soft_401.response));
    for phone in [&mut desk, &mut soft] {
        let request = phone.request();
        let outcome = registrar.handle_register(secs(3), &request, phone.source, Transport::Udp);
        assert_eq!(outcome.response.status, 200);
    }
    assert_eq!(registrar.contacts("1000", secs(3)).len(), 2);
}

#[test]
fn the_security_table_of_a_dialer_toml_reaches_the_ban_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../trunk-profiles/profiles");
    let text = std::fs::read_to_string(dir.join("call-centre-pools.toml")).unwrap();
    let env = |_: &str| Some("from-the-environment".to_string());
    let profile =
        trunk_profiles::Config::from_str_in_dir(&text, "call-centre-pools.toml", &dir, &env)
            .unwrap();
    let config = RegistrarConfig::from_profiles(&profile, b"k".to_vec(), &ip_literal).unwrap();
    assert_eq!(config.security.max_failures, 5);
    assert_eq!(config.security.window, Duration::from_secs(600));
    assert_eq!(config.security.ban, Duration::from_secs(3600));
    assert!(config.security.is_exempt("192.168.1.7".parse().unwrap()));
    assert!(!config.security.is_exempt("203.0.113.9".parse().unwrap()));
    // A source in ban_exempt is never banned, whatever it tries.
    let mut config = config;
    config.security.max_failures = 1;
    let mut registrar = registrar_with(config);
    let mut lan = Phone::new(
        "1000",
        "guess",
        "<sip:1000@192.168.1.7>",
        "192.168.1.7:5060",
    );
    lan.register(&mut registrar, secs(0));
    assert!(!registrar.is_banned(secs(0), lan.source.ip()));
    let mut far = Phone::new(
        "1000",
        "guess",
        "<sip:1000@203.0.113.9>",
        "203.0.113.9:5060",
    );
    far.register(&mut registrar, secs(0));
    assert!(registrar.is_banned(secs(0), far.source.ip()));
}

#[test]
fn an_agent_registered_over_tcp_is_bound_to_its_connection_and_unbound_when_it_closes() {
    let mut registrar = registrar();
    let mut phone = Phone::new(
        "1000",
        "pw-1000",
        "<sip:1000@192.168.1.20:5060;transport=tcp>",
        "192.168.1.20:40222",
    );
    phone.transport = Transport::Tcp;
    assert_eq!(
        phone
            .register_final(&mut registrar, secs(1))
            .response
            .status,
        200
    );
    let mut udp_phone = Phone::new(
        "1001",
        "pw-1001",
        "<sip:1001@192.168.1.21:5060>",
        "192.168.1.21:5060",
    );
    assert_eq!(
        udp_phone
            .register_final(&mut registrar, secs(1))
            .response
            .status,
        200
    );
    let binding = registrar.lookup("1000", secs(2)).unwrap();
    // Calls go to the connection the REGISTER came on, not to the Contact's port.
    assert_eq!(
        (binding.source, binding.transport),
        (addr("192.168.1.20:40222"), Transport::Tcp)
    );
    // Another connection (or UDP) from the same address is another flow.
    assert!(registrar
        .flow_closed(addr("192.168.1.20:40223"), Transport::Tcp)
        .is_empty());
    assert!(registrar
        .flow_closed(addr("192.168.1.20:40222"), Transport::Udp)
        .is_empty());
    let events = registrar.flow_closed(addr("192.168.1.20:40222"), Transport::Tcp);
    assert!(
        matches!(&events[..], [RegistrarEvent::AgentUnregistered { extension, reason: UnregisterReason::FlowClosed, .. }] if extension == "1000"),
        "{events:?}"
    );
    assert!(registrar.lookup("1000", secs(2)).is_none());
    assert!(registrar.lookup("1001", secs(2)).is_some());
}

#[test]
fn an_agent_held_to_tls_registers_over_tls_and_is_refused_over_udp_and_tcp() {
    let mut registrar = registrar();
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut phone = Phone::new(
            "1002",
            "pw-1002",
            "<sip:1002@192.168.1.20;transport=tls>",
            "192.168.1.20:5061",
        );
        phone.transport = transport;
        let outcome = phone.register_final(&mut registrar, secs(1));
        assert_eq!(outcome.response.status, 401, "{transport:?}");
        assert_eq!(
            outcome.failure.map(|f| f.reason.as_str()),
            Some("wrong_transport")
        );
    }
    assert!(registrar.lookup("1002", secs(1)).is_none());
    let mut phone = Phone::new(
        "1002",
        "pw-1002",
        "<sip:1002@192.168.1.20;transport=tls>",
        "192.168.1.20:5061",
    );
    phone.transport = Transport::Tls;
    let outcome = phone.register_final(&mut registrar, secs(2));
    assert_eq!(outcome.response.status, 200);
    assert!(registrar.lookup("1002", secs(2)).is_some());
}
