//! The interop harness proven against the peers themselves, without the dialer: SIPp calls
//! baresip and both hear each other; SIPp's registrar accepts a right digest and rejects a
//! wrong one with 403; baresip registers with digest to it.
//!
//! Needs the Debian packages sip-tester, baresip-core and sox; a missing one fails the test.

use std::net::SocketAddr;
use std::time::Duration;

use scenario_tests::interop::audio::{self, Law};
use scenario_tests::interop::baresip::{AnswerMode, Baresip, BaresipConfig};
use scenario_tests::interop::ports::{free_baresip_port, free_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::sipp::{Sipp, SippConfig};
use scenario_tests::interop::trace::{digest_is_valid, Direction};
use scenario_tests::interop::{require_tools, TestDir};

const TONES: [f64; 3] = [425.0, 440.0, 1000.0];

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(LOOPBACK, port)
}

fn agent(name: &str, dir: &TestDir, registrar: Option<(SocketAddr, String)>) -> BaresipConfig {
    let source = dir.join("agent1000.wav");
    audio::tone_wav(&source, 1000, 30, 8000).expect("sox makes the agent's 1000 Hz tone");
    BaresipConfig {
        name: name.to_owned(),
        user: "1000".into(),
        sip_listen: addr(free_baresip_port(LOOPBACK).expect("free SIP port")),
        registrar,
        answer: AnswerMode::Auto,
        codecs: vec!["PCMA".into()],
        source_wav: source,
        rtp_base: free_udp_range(LOOPBACK, 20).expect("free RTP range"),
        ctrl: addr(free_port(LOOPBACK).expect("free ctrl port")),
    }
}

#[test]
fn sipp_caller_and_baresip_hear_each_others_tones() {
    require_tools(&["sipp", "baresip", "sox"]).expect("interop tools");
    let dir = TestDir::new("peers-call").expect("temp dir");
    audio::g711_raw(&dir.join("uac.al"), Law::A, 440, 30).expect("sox makes SIPp's 440 Hz");
    let phone = Baresip::start(agent("baresip", &dir, None), dir.path()).expect("baresip starts");

    let mut caller = SippConfig::new("caller", "uac_call.xml", addr(free_port(LOOPBACK).unwrap()));
    caller.remote = Some(phone.sip_addr());
    caller.service = Some("1000".into());
    caller.media = Some((LOOPBACK, free_udp_range(LOOPBACK, 4).unwrap()));
    caller.extra_args = vec!["-d".into(), "3000".into()];
    let caller = Sipp::start(caller, dir.path()).expect("sipp starts");

    phone
        .wait_established(Duration::from_secs(10))
        .expect("baresip answers");
    let outcome = caller
        .expect_success(Duration::from_secs(30))
        .expect("SIPp's call succeeds");
    phone
        .wait_terminated(Duration::from_secs(10))
        .expect("baresip sees the BYE");

    let ladder = outcome.ladder();
    for step in ["< INVITE", "> 200 INVITE", "< ACK", "< BYE", "> 200 BYE"] {
        assert!(
            ladder.iter().any(|l| l == step),
            "{step} missing from {ladder:?}"
        );
    }
    let heard = phone.heard().expect("baresip recorded what it heard");
    let pcm = audio::Pcm::read_wav(&heard).unwrap();
    assert!(pcm.duration_s() > 2.0, "recorded {} s", pcm.duration_s());
    assert!(
        audio::tone_present_in(&pcm, 440.0, 0.5, 2.5),
        "baresip heard SIPp's 440 Hz; timeline {:?}",
        audio::tone_timeline(&pcm, &TONES)
    );
    let (tone, share) = audio::dominant_in(&pcm.samples, pcm.rate, &TONES);
    assert_eq!(tone, 440.0, "dominant tone (share {share})");
    let sent = phone.sent().expect("baresip recorded what it sent");
    assert_eq!(audio::dominant_tone(&sent, &TONES).unwrap().0, 1000.0);
}

fn registrar(dir: &TestDir, name: &str, user: &str, password: &str) -> Sipp {
    let config = SippConfig::new(name, "registrar.xml", addr(free_port(LOOPBACK).unwrap()))
        .key("user", user)
        .key("password", password)
        .key("realm", "carrier.test");
    Sipp::start(config, dir.path()).expect("sipp registrar starts")
}

fn register_client(dir: &TestDir, registrar: &Sipp, password: &str) -> Sipp {
    let mut config = SippConfig::new(
        "client",
        "register_client.xml",
        addr(free_port(LOOPBACK).unwrap()),
    )
    .key("user", "dialer");
    config.remote = Some(registrar.addr());
    config.credentials = Some(("dialer".into(), password.into()));
    Sipp::start(config, dir.path()).expect("sipp client starts")
}

#[test]
fn sipp_registrar_accepts_the_right_digest_and_unregisters() {
    require_tools(&["sipp"]).expect("interop tools");
    let dir = TestDir::new("peers-register-ok").expect("temp dir");
    let registrar = registrar(&dir, "registrar", "dialer", "s3cret");
    let client = register_client(&dir, &registrar, "s3cret");
    client
        .expect_success(Duration::from_secs(20))
        .expect("client run succeeds");
    let outcome = registrar
        .expect_success(Duration::from_secs(20))
        .expect("registrar run succeeds");

    let challenge = outcome.with_status(401).next().expect("a 401 was sent");
    let www = challenge
        .header("WWW-Authenticate")
        .expect("401 carries a challenge");
    assert!(www.contains("qop=\"auth\""), "{www}");
    let registers: Vec<_> = outcome.received("REGISTER").collect();
    assert_eq!(registers.len(), 3, "{:?}", outcome.ladder());
    let credentials = registers[1].header("Authorization").expect("credentials");
    assert!(
        digest_is_valid(credentials, "REGISTER", "s3cret"),
        "{credentials}"
    );
    assert_eq!(registers[2].header("Expires"), Some("0"));
    let sent: Vec<u16> = outcome
        .messages
        .iter()
        .filter(|m| m.direction == Direction::Sent)
        .filter_map(|m| m.status())
        .collect();
    assert_eq!(sent, [401, 200, 200]);
}

#[test]
fn sipp_registrar_rejects_a_wrong_password_with_403() {
    require_tools(&["sipp"]).expect("interop tools");
    let dir = TestDir::new("peers-register-403").expect("temp dir");
    let registrar = registrar(&dir, "registrar", "dialer", "s3cret");
    let client = register_client(&dir, &registrar, "not-the-password");
    client
        .expect_success(Duration::from_secs(20))
        .expect("client run succeeds");
    let outcome = registrar
        .expect_success(Duration::from_secs(20))
        .expect("registrar run succeeds");
    let sent: Vec<u16> = outcome
        .messages
        .iter()
        .filter(|m| m.direction == Direction::Sent)
        .filter_map(|m| m.status())
        .collect();
    assert_eq!(sent, [401, 403], "{:?}", outcome.ladder());
    let credentials = outcome
        .received("REGISTER")
        .nth(1)
        .and_then(|m| m.header("Authorization"))
        .expect("second REGISTER has credentials");
    assert!(!digest_is_valid(credentials, "REGISTER", "s3cret"));
}

#[test]
fn baresip_registers_with_digest_and_unregisters_on_exit() {
    require_tools(&["sipp", "baresip", "sox"]).expect("interop tools");
    let dir = TestDir::new("peers-baresip-register").expect("temp dir");
    let registrar = registrar(&dir, "registrar", "1000", "agentpw");
    let config = agent("baresip", &dir, Some((registrar.addr(), "agentpw".into())));
    let phone = Baresip::start(config, dir.path()).expect("baresip starts");
    let line = phone
        .wait_registered(Duration::from_secs(10))
        .expect("baresip registers");
    assert!(line.contains("200 OK"), "{line}");
    phone.stop().expect("baresip stops");
    let outcome = registrar
        .expect_success(Duration::from_secs(20))
        .expect("registrar saw register and un-register");
    let registers: Vec<_> = outcome.received("REGISTER").collect();
    assert_eq!(registers.len(), 3, "{:?}", outcome.ladder());
    let credentials = registers[1].header("Authorization").expect("credentials");
    assert!(
        digest_is_valid(credentials, "REGISTER", "agentpw"),
        "{credentials}"
    );
}
