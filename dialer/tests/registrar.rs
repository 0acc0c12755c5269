//! The agent registrar end to end: REGISTERs as real softphones send them, through the
//! sip-core endpoint the runtime uses, in virtual time; the shipped configuration profiles;
//! and X-Lite's REGISTER from the corpus.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dialer::registrar::{ip_literal, Registrar, RegistrarConfig, RegistrarEvent};
use rand::rngs::mock::StepRng;
use sip_core::auth::{
    parse_challenge, AuthOutcome, ChallengedResponse, ClientAuthState, Credentials, DigestRequest,
};
use sip_core::endpoint::{Endpoint, EndpointConfig, Event, Output};
use sip_core::message::{HeaderKind, Message, Method, Request, Response, SipMessage};
use sip_core::time::Time;
use sip_core::transaction::Transport;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load_profile(name: &str) -> trunk_profiles::Config {
    let path = workspace().join("trunk-profiles/profiles").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let env = |_: &str| Some("from-the-environment".to_string());
    trunk_profiles::Config::from_str_in_dir(&text, name, path.parent().unwrap(), &env).unwrap()
}

fn registrar_for(config: RegistrarConfig) -> Registrar {
    Registrar::new(config, Box::new(StepRng::new(1, 1))).unwrap()
}

/// What the runtime does with one received datagram: the endpoint makes the server
/// transaction, the registrar answers, the endpoint sends. Returns where the answer went,
/// the answer as the agent parses it, and the registrar's events.
fn deliver(
    endpoint: &mut Endpoint,
    registrar: &mut Registrar,
    now: Time,
    source: SocketAddr,
    bytes: &[u8],
) -> (SocketAddr, Response, Vec<RegistrarEvent>) {
    endpoint.handle_datagram(now, Transport::Udp, source, bytes);
    let mut events = Vec::new();
    let mut sent = None;
    while let Some(output) = endpoint.poll_output() {
        match output {
            Output::Event(Event::Request {
                transaction,
                request,
                source,
                transport,
            }) => {
                let outcome = match request.method {
                    Method::Register => registrar.handle_register(now, &request, source, transport),
                    other => panic!("unexpected {other}"),
                };
                events = outcome.events;
                endpoint
                    .respond(now, transaction, outcome.response)
                    .unwrap();
            }
            Output::Transmit(t) => {
                let Message::Response(r) = Message::parse(&t.bytes).unwrap() else {
                    panic!("the registrar side only sends responses");
                };
                sent = Some((t.to, r));
            }
            other => panic!("unexpected output {other:?}"),
        }
    }
    let (to, response) = sent.expect("every REGISTER is answered");
    (to, response, events)
}

/// baresip 3.x behind a NAT: private address in Via and Contact, `rport` asked for,
/// `+sip.instance` and `reg-id` (RFC 5626) in the Contact.
fn baresip_register(cseq: u32, authorization: Option<&str>) -> Vec<u8> {
    let mut text = format!(
        "REGISTER sip:192.0.2.10 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK{cseq}a7c1e9;rport\r\n\
         Contact: <sip:1000-0x55c0ffee1230@10.0.0.5:5060>;expires=3600;\
         +sip.instance=\"<urn:uuid:2d4c3b0a-98e1-4d2f-b3c5-7a61f0e9d812>\";reg-id=1\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:1000@192.0.2.10>\r\n\
         From: <sip:1000@192.0.2.10>;tag=8a0e7c4f21b3\r\n\
         Call-ID: 5f1c9e27d4a04b83\r\n\
         CSeq: {cseq} REGISTER\r\n\
         User-Agent: baresip v3.10.1 (x86_64/Linux)\r\n\
         Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE,REFER\r\n\
         Supported: outbound,path,replaces,norefersub\r\n"
    );
    if let Some(a) = authorization {
        text.push_str(&format!("Authorization: {a}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text.into_bytes()
}

#[test]
fn baresip_behind_nat_is_challenged_then_bound_at_its_public_address() {
    let mut config = RegistrarConfig::new("dialer", b"integration-nonce-key".to_vec());
    config
        .agents
        .push(dialer::registrar::AgentEntry::with_password(
            "1000",
            "agent-1000-password",
            vec!["203.0.113.0/24".parse().unwrap()],
        ));
    let mut registrar = registrar_for(config);
    let mut endpoint = Endpoint::new(
        EndpointConfig::new(addr("192.0.2.10:5060")),
        Box::new(StepRng::new(5, 1)),
    );
    let public = addr("203.0.113.7:40000");

    let first = baresip_register(1, None);
    let (to, challenge, events) =
        deliver(&mut endpoint, &mut registrar, Time::ZERO, public, &first);
    // RFC 3581 §4: the answer goes back through the NAT binding, not to the Via address.
    assert_eq!(to, public);
    assert_eq!(challenge.status, 401);
    assert!(events.is_empty());

    // The agent answers as a real client does.
    let mut auth = ClientAuthState::new();
    let challenges: Vec<&str> = challenge
        .headers
        .get_all(HeaderKind::WwwAuthenticate)
        .collect();
    let AuthOutcome::Retry { headers } = auth
        .handle_challenge(
            &ChallengedResponse {
                status: 401,
                challenges: &challenges,
                sent: &[],
            },
            &Credentials::with_password("1000", "agent-1000-password"),
            &DigestRequest {
                method: "REGISTER",
                uri: "sip:192.0.2.10",
                body: b"",
            },
            &mut StepRng::new(9, 9),
        )
        .unwrap()
    else {
        panic!("a first challenge is answered");
    };
    let second = baresip_register(2, Some(&headers[0].value));
    let now = Time(Duration::from_millis(40));
    let (to, ok, events) = deliver(&mut endpoint, &mut registrar, now, public, &second);
    assert_eq!(to, public);
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.headers.get_all(HeaderKind::Contact).collect::<Vec<_>>(),
        ["<sip:1000-0x55c0ffee1230@10.0.0.5:5060>;expires=3600;\
          +sip.instance=\"<urn:uuid:2d4c3b0a-98e1-4d2f-b3c5-7a61f0e9d812>\";reg-id=1"]
    );
    assert!(matches!(
        events.as_slice(),
        [RegistrarEvent::AgentRegistered { nat: true, source, .. }] if *source == public
    ));

    // The call to the agent: to its public address, Request-URI as registered.
    let binding = registrar.lookup("1000", now).unwrap();
    assert_eq!(binding.source, public);
    assert!(binding.nat);
    assert_eq!(
        binding.request_uri().to_string(),
        "sip:1000-0x55c0ffee1230@10.0.0.5:5060"
    );
    assert_eq!(
        binding.instance.as_deref(),
        Some("<urn:uuid:2d4c3b0a-98e1-4d2f-b3c5-7a61f0e9d812>")
    );
    assert_eq!(
        registrar.next_expiry(),
        Some(now + Duration::from_secs(3600))
    );
}

#[test]
fn shipped_profile_agents_register_with_password_and_a1_hash() {
    let config = load_profile("carrier-register.toml");
    let mut registrar = registrar_for(
        RegistrarConfig::from_profiles(&config, b"key".to_vec(), &ip_literal).unwrap(),
    );
    for (extension, password, source) in [
        ("1000", "agent-1000-password", "192.168.1.20:5060"),
        // 1001 holds only md5("1001:dialer:agent-1001-password") in the file.
        ("1001", "agent-1001-password", "192.168.1.21:5060"),
    ] {
        let source = addr(source);
        let request = |cseq: u32, authorization: Option<&str>| {
            let mut text = format!(
                "REGISTER sip:dialer SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {source};branch=z9hG4bK-{extension}-{cseq}\r\n\
                 To: <sip:{extension}@dialer>\r\n\
                 From: <sip:{extension}@dialer>;tag=t{extension}\r\n\
                 Call-ID: profile-{extension}\r\n\
                 CSeq: {cseq} REGISTER\r\n\
                 Contact: <sip:{extension}@{source}>\r\n"
            );
            if let Some(a) = authorization {
                text.push_str(&format!("Authorization: {a}\r\n"));
            }
            text.push_str("Content-Length: 0\r\n\r\n");
            parse_request(&text)
        };
        let first =
            registrar.handle_register(Time::ZERO, &request(1, None), source, Transport::Udp);
        assert_eq!(first.response.status, 401, "{extension}");
        let challenges: Vec<&str> = first
            .response
            .headers
            .get_all(HeaderKind::WwwAuthenticate)
            .collect();
        let AuthOutcome::Retry { headers } = ClientAuthState::new()
            .handle_challenge(
                &ChallengedResponse {
                    status: 401,
                    challenges: &challenges,
                    sent: &[],
                },
                &Credentials::with_password(extension, password),
                &DigestRequest {
                    method: "REGISTER",
                    uri: "sip:dialer",
                    body: b"",
                },
                &mut StepRng::new(3, 3),
            )
            .unwrap()
        else {
            panic!("a first challenge is answered");
        };
        let second = registrar.handle_register(
            Time::ZERO,
            &request(2, Some(&headers[0].value)),
            source,
            Transport::Udp,
        );
        assert_eq!(second.response.status, 200, "{extension}");
        // The profile's max_expires is 3600; nothing asked, so the default 3600 s.
        assert_eq!(
            registrar.lookup(extension, Time::ZERO).unwrap().expires_at,
            Some(Time(Duration::from_secs(3600)))
        );
    }
}

#[test]
fn shipped_static_contact_is_found_without_registering() {
    let config = load_profile("ip-auth-trunk.toml");
    let registrar = registrar_for(
        RegistrarConfig::from_profiles(&config, b"key".to_vec(), &ip_literal).unwrap(),
    );
    let binding = registrar.lookup("2001", Time::ZERO).unwrap();
    assert!(binding.is_static());
    assert_eq!(binding.source, addr("10.20.0.51:5060"));
    assert_eq!(
        binding.request_uri().to_string(),
        "sip:2001@10.20.0.51:5060"
    );
    assert!(registrar.lookup("2000", Time::ZERO).is_none());
    assert_eq!(registrar.bindings(Time::ZERO).len(), 1);
}

#[test]
fn static_contact_with_a_host_name_needs_a_resolver() {
    let text =
        "[[trunk]]\nname = \"t\"\nproxy = \"192.0.2.1\"\nregister = false\n[[agent]]\nextension = \"2001\"\npassword = \"p\"\ncontact = \"sip:2001@phone.lan\"\n";
    let config = trunk_profiles::Config::from_str_named(text, "dialer.toml", &|_| None).unwrap();
    let error = RegistrarConfig::from_profiles(&config, b"key".to_vec(), &ip_literal).unwrap_err();
    assert!(error.to_string().contains("phone.lan"), "{error}");
    let resolved = RegistrarConfig::from_profiles(&config, b"key".to_vec(), &|hp| {
        (hp.host.to_string() == "phone.lan").then(|| addr("10.1.2.3:5060"))
    })
    .unwrap();
    let registrar = registrar_for(resolved);
    assert_eq!(
        registrar.lookup("2001", Time::ZERO).unwrap().source,
        addr("10.1.2.3:5060")
    );
}

fn parse_request(text: &str) -> Request {
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("not a request"),
    }
}

/// The corpus, or `None` (with a message) when it is absent and not required.
fn corpus() -> Option<PathBuf> {
    let dir = workspace().join("../shared/corpus");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("REQUIRE_CORPUS").as_deref() != Ok("1"),
        "REQUIRE_CORPUS=1 but {} is missing",
        dir.display()
    );
    eprintln!("skipping: no corpus at {}", dir.display());
    None
}

#[test]
fn xlite_register_from_the_corpus_is_challenged_and_its_asterisk_credentials_refused() {
    let Some(corpus) = corpus() else {
        return;
    };
    let capture = capture::read_file(&corpus.join("pcaps/Asterisk_ZFONE_XLITE.pcap")).unwrap();
    let registers: Vec<(SocketAddr, Request)> = capture
        .packets
        .iter()
        .filter_map(|p| match Message::parse(&p.payload) {
            Ok(Message::Request(r)) if r.method == Method::Register => Some((p.src, r)),
            _ => None,
        })
        .collect();
    // tshark: frames 1 and 3, X-Lite 4 at 192.168.10.41:13434, the second answering
    // Asterisk's MD5 challenge (nonce "7e2bcb4c", no qop).
    assert_eq!(registers.len(), 2);
    let (source, first) = &registers[0];
    assert_eq!(*source, addr("192.168.10.41:13434"));
    assert_eq!(
        first.contacts().unwrap()[0].address().unwrap().to_string(),
        "<sip:10009@192.168.10.41:13434;rinstance=309c3e58798d5f69>"
    );

    let mut config = RegistrarConfig::new("dialer", b"corpus-key".to_vec());
    config
        .agents
        .push(dialer::registrar::AgentEntry::with_password(
            "10009",
            "unknown",
            vec!["192.168.10.0/24".parse().unwrap()],
        ));
    let mut registrar = registrar_for(config);
    let outcome = registrar.handle_register(Time::ZERO, first, *source, Transport::Udp);
    assert_eq!(outcome.response.status, 401);
    let challenge = parse_challenge(
        outcome
            .response
            .headers
            .get(HeaderKind::WwwAuthenticate)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(challenge.realm, "dialer");
    assert_eq!(
        outcome.response.call_id().unwrap(),
        first.call_id().unwrap()
    );

    // Credentials for another server's realm and nonce are no credentials here.
    let (source, second) = &registers[1];
    assert!(second.headers.get(HeaderKind::Authorization).is_some());
    let outcome = registrar.handle_register(Time::ZERO, second, *source, Transport::Udp);
    assert_eq!(outcome.response.status, 401);
    assert!(registrar.lookup("10009", Time::ZERO).is_none());
}
