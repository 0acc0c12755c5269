//! The real `dialer` binary against real peers: SIPp as the carrier (digest REGISTER, 407 on
//! INVITE, 183, a 200 whose Contact is on 127.0.0.3 behind a Record-Route, a 440 Hz PCMA tone)
//! and baresip as agent 1000 (registered to `dialer run` with a password, playing 1000 Hz and
//! recording what it hears), with tshark tapping the carrier's RTP.
//!
//! These tests need `dialer register` (issue 3) and `dialer run` + `dialer call` (issue 5). Until
//! the binary lists a subcommand in `dialer --help`, its tests fail with
//! "dialer <subcommand> not available": they are the proof of those features, so they are never
//! skipped. The binary is `$DIALER_BIN` or `dialer` in the same target directory.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use scenario_tests::interop::audio::{self, Law};
use scenario_tests::interop::baresip::{AnswerMode, Baresip, BaresipConfig};
use scenario_tests::interop::ports::{
    free_baresip_port, free_port, free_udp_range, loopback, LOOPBACK,
};
use scenario_tests::interop::sipp::{Sipp, SippConfig, SippOutcome};
use scenario_tests::interop::trace::{digest_is_valid, Direction, TracedMessage};
use scenario_tests::interop::tshark::{self, Tap};
use scenario_tests::interop::{dialer, poll_until, require_tools, Peer, TestDir};

const TRUNK_PASSWORD: &str = "s3cret";
const AGENT_PASSWORD: &str = "agentpw";
const TONES: [f64; 3] = [425.0, 440.0, 1000.0];
/// The 200's Contact host: another loopback address, where nothing listens.
const CONTACT_HOST: u8 = 3;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(LOOPBACK, port)
}

/// Ports and files one dialer run needs.
struct Setup {
    dir: TestDir,
    dialer: std::path::PathBuf,
    sip_port: u16,
    api_port: u16,
}

impl Setup {
    fn new(name: &str, subcommands: &[&str], tools: &[&str]) -> Setup {
        require_tools(tools).expect("interop tools");
        let dialer = dialer::require(subcommands).unwrap_or_else(|e| panic!("{e}"));
        Setup {
            dir: TestDir::new(name).expect("temp dir"),
            dialer,
            sip_port: free_port(LOOPBACK).expect("dialer SIP port"),
            api_port: free_port(LOOPBACK).expect("dialer API port"),
        }
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    fn call_config(&self, carrier: SocketAddr) -> std::path::PathBuf {
        let ringback = self.dir.join("ringback.wav");
        audio::ringback_wav(&ringback, 3).expect("sox makes the ringback");
        let rtp = free_udp_range(LOOPBACK, 40).expect("dialer RTP range");
        let config = dialer::write_config(
            "call.toml.tmpl",
            &[
                ("SIP_PORT", self.sip_port.to_string()),
                ("CARRIER_PORT", carrier.port().to_string()),
                ("TRUNK_PASSWORD", TRUNK_PASSWORD.into()),
                ("AGENT_PASSWORD", AGENT_PASSWORD.into()),
                ("RTP_FIRST", rtp.to_string()),
                ("RTP_LAST", (rtp + 39).to_string()),
                ("RINGBACK", ringback.to_string_lossy().into_owned()),
                ("API_PORT", self.api_port.to_string()),
            ],
            self.dir.path(),
        )
        .expect("dialer config");
        dialer::check_config(&self.dialer, &config).expect("the call template is valid");
        config
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.dialer);
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// Starts `dialer run` and waits until its control API accepts connections.
    fn run(&self, config: &Path) -> Peer {
        let mut cmd = self.command(&["run", "--config"]);
        cmd.arg(config);
        let run = Peer::spawn("dialer-run", cmd, self.dir.path()).expect("dialer run starts");
        let api = addr(self.api_port);
        poll_until(
            "dialer run's API accepting connections",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let up = TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_ok();
                (up || run.status().is_some()).then_some(())
            },
        )
        .expect("dialer run comes up");
        assert!(run.status().is_none(), "dialer run exited:\n{}", run.tail());
        run
    }

    /// baresip as agent 1000, registered to the dialer.
    fn agent(&self, answer: AnswerMode) -> Baresip {
        let source = self.dir.join("agent1000.wav");
        audio::tone_wav(&source, 1000, 30, 8000).expect("sox makes the agent's 1000 Hz");
        let config = BaresipConfig {
            name: "agent".into(),
            user: "1000".into(),
            sip_listen: addr(free_baresip_port(LOOPBACK).expect("agent SIP port")),
            registrar: Some((addr(self.sip_port), AGENT_PASSWORD.into())),
            answer,
            codecs: vec!["PCMA".into(), "PCMU".into()],
            source_wav: source,
            rtp_base: free_udp_range(LOOPBACK, 20).expect("agent RTP range"),
            ctrl: addr(free_port(LOOPBACK).expect("agent ctrl port")),
        };
        let agent = Baresip::start(config, self.dir.path()).expect("baresip starts");
        agent
            .wait_registered(Duration::from_secs(10))
            .expect("agent 1000 registers to dialer run");
        agent
    }
}

/// A carrier scenario on 127.0.0.1 whose 200 (if any) names 127.0.0.3 as Contact; two SIPp
/// calls: the trunk's REGISTER and the INVITE.
fn carrier(dir: &TestDir, scenario: &str, media_port: u16) -> Sipp {
    audio::g711_raw(&dir.join("carrier.al"), Law::A, 440, 40).expect("sox makes the 440 Hz");
    let mut config = SippConfig::new("carrier", scenario, addr(free_port(LOOPBACK).unwrap()))
        .key("user", "dialer")
        .key("password", TRUNK_PASSWORD)
        .key("realm", "carrier.test")
        .key("contact_ip", loopback(CONTACT_HOST));
    config.media = Some((LOOPBACK, media_port));
    config.calls = 2;
    config.timeout = Duration::from_secs(50);
    Sipp::start(config, dir.path()).expect("sipp carrier starts")
}

/// The in-dialog request SIPp received with `method` after the 2xx to the INVITE.
fn in_dialog<'a>(outcome: &'a SippOutcome, method: &'a str) -> &'a TracedMessage {
    outcome
        .received(method)
        .filter(|m| m.cseq_method() == Some(method))
        .last()
        .unwrap_or_else(|| panic!("carrier got no {method}: {:?}", outcome.ladder()))
}

/// RFC 3261 §12.2.1.1 with a loose-routing route set (§16.12.1.1): the Request-URI is the 2xx's
/// Contact (on 127.0.0.3) and the Route is the Record-Route, which put the request on SIPp's own
/// socket.
fn assert_routed_to_contact_via_record_route(request: &TracedMessage, carrier: SocketAddr) {
    let uri = request.request_uri().unwrap_or_default();
    let contact_host = format!("@{}:{}", loopback(CONTACT_HOST), carrier.port());
    assert!(
        uri.contains(&contact_host),
        "{} Request-URI {uri} is not the 200's Contact (…{contact_host})",
        request.label()
    );
    let route = request.header("Route").unwrap_or_default();
    assert!(
        route.contains(&carrier.to_string()) && route.contains(";lr"),
        "{} Route {route:?} is not the Record-Route <sip:{carrier};lr>",
        request.label()
    );
}

#[test]
fn register_once_succeeds_with_the_right_password() {
    let setup = Setup::new("dialer-register-ok", &["register"], &["sipp"]);
    let registrar = Sipp::start(
        SippConfig::new(
            "registrar",
            "registrar.xml",
            addr(free_port(LOOPBACK).unwrap()),
        )
        .key("user", "dialer")
        .key("password", TRUNK_PASSWORD)
        .key("realm", "carrier.test"),
        setup.dir.path(),
    )
    .expect("sipp registrar");
    let config = register_config(&setup, registrar.addr(), TRUNK_PASSWORD);
    let mut cmd = setup.command(&["register", "--trunk", "carrier", "--once", "--config"]);
    cmd.arg(&config);
    let register = Peer::spawn("dialer-register", cmd, setup.dir.path()).expect("spawn");
    let status = register
        .wait_exit(Duration::from_secs(20))
        .expect("register --once ends");
    assert!(status.success(), "exit {status}:\n{}", register.tail());
    let outcome = registrar
        .expect_success(Duration::from_secs(10))
        .expect("registrar saw register and un-register");
    let registers: Vec<_> = outcome.received("REGISTER").collect();
    assert!(registers.len() >= 3, "{:?}", outcome.ladder());
    let credentials = registers[1].header("Authorization").expect("credentials");
    assert!(
        digest_is_valid(credentials, "REGISTER", TRUNK_PASSWORD),
        "{credentials}"
    );
    let via = registers[0].header("Via").unwrap_or_default();
    assert!(via.contains(";rport"), "Via without rport: {via}");
}

#[test]
fn register_once_fails_with_403_on_a_wrong_password() {
    let setup = Setup::new("dialer-register-403", &["register"], &["sipp"]);
    let registrar = Sipp::start(
        SippConfig::new(
            "registrar",
            "registrar.xml",
            addr(free_port(LOOPBACK).unwrap()),
        )
        .key("user", "dialer")
        .key("password", TRUNK_PASSWORD)
        .key("realm", "carrier.test"),
        setup.dir.path(),
    )
    .expect("sipp registrar");
    let config = register_config(&setup, registrar.addr(), "not-the-password");
    let mut cmd = setup.command(&["register", "--trunk", "carrier", "--once", "--config"]);
    cmd.arg(&config);
    let register = Peer::spawn("dialer-register", cmd, setup.dir.path()).expect("spawn");
    let status = register
        .wait_exit(Duration::from_secs(20))
        .expect("register --once ends");
    assert!(
        !status.success(),
        "a rejected registration must fail:\n{}",
        register.tail()
    );
    let stderr = std::fs::read_to_string(register.stderr_path()).unwrap_or_default();
    assert!(
        stderr.contains("403"),
        "stderr does not name the 403:\n{stderr}"
    );
    assert!(
        !stderr.contains("not-the-password"),
        "the password leaked into stderr"
    );
    let outcome = registrar
        .expect_success(Duration::from_secs(10))
        .expect("registrar run");
    assert_eq!(
        outcome.with_status(403).count(),
        1,
        "{:?}",
        outcome.ladder()
    );
    assert_eq!(
        outcome.with_status(200).count(),
        0,
        "{:?}",
        outcome.ladder()
    );
}

fn register_config(setup: &Setup, registrar: SocketAddr, password: &str) -> std::path::PathBuf {
    let config = dialer::write_config(
        "register.toml.tmpl",
        &[
            ("SIP_PORT", setup.sip_port.to_string()),
            ("CARRIER_PORT", registrar.port().to_string()),
            ("TRUNK_PASSWORD", password.into()),
        ],
        setup.dir.path(),
    )
    .expect("dialer config");
    dialer::check_config(&setup.dialer, &config).expect("the register template is valid");
    config
}

#[test]
fn bridged_call_carries_ringback_then_agent_audio_and_routes_ack_and_bye_via_record_route() {
    let setup = Setup::new(
        "dialer-call",
        &["run", "call"],
        &["sipp", "baresip", "sox", "tshark"],
    );
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    // What the carrier receives: only packets to its RTP port.
    let tap = Tap::start(
        "carrier-rtp",
        &format!("udp and dst host 127.0.0.1 and dst port {media_port}"),
        setup.dir.path(),
    )
    .expect("tshark taps lo");
    let carrier = carrier(&setup.dir, "carrier.xml", media_port);
    let config = setup.call_config(carrier.addr());
    let run = setup.run(&config);
    let agent = setup.agent(AnswerMode::Manual);

    let mut cmd = setup.command(&["call", "+15551234", "--agent", "1000", "--api"]);
    cmd.arg(setup.api_url());
    let call = Peer::spawn("dialer-call", cmd, setup.dir.path()).expect("dialer call starts");

    agent
        .wait_incoming(Duration::from_secs(15))
        .expect("the agent rings once the customer answered");
    // Let the agent ring while the carrier receives 1.2 s (60 packets) of ringback.
    tap.wait_packets(60, Duration::from_secs(10))
        .expect("ringback reaches the carrier while the agent rings");
    agent.accept().expect("agent answers");
    agent
        .wait_established(Duration::from_secs(5))
        .expect("agent call established");
    // 3 s of what the agent hears (8 kHz, 16-bit).
    poll_until(
        "3 s of audio recorded by the agent",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (agent.heard_bytes() >= 48_000).then_some(()),
    )
    .expect("audio flows to the agent");
    agent.hangup().expect("agent hangs up");
    agent
        .wait_terminated(Duration::from_secs(5))
        .expect("agent call ends");

    let status = call
        .wait_exit(Duration::from_secs(15))
        .expect("dialer call ends");
    assert!(
        status.success(),
        "dialer call must exit 0 for a bridged call; got {status}:\n{}",
        call.tail()
    );
    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier scenario completes (ACK and BYE arrived)");
    let pcap = tap.stop().expect("capture stops");
    run.stop("TERM", Duration::from_secs(10))
        .expect("dialer run stops");

    // The INVITE's proxy credentials.
    let invites: Vec<_> = outcome.received("INVITE").collect();
    assert_eq!(invites.len(), 2, "challenged once: {:?}", outcome.ladder());
    let credentials = invites[1]
        .header("Proxy-Authorization")
        .expect("retried INVITE carries Proxy-Authorization");
    assert!(
        digest_is_valid(credentials, "INVITE", TRUNK_PASSWORD),
        "{credentials}"
    );
    assert_eq!(
        invites[0].header("Call-ID"),
        invites[1].header("Call-ID"),
        "the retry keeps the Call-ID"
    );
    // Where the ACK for the 200 and the BYE went.
    let ack = outcome
        .messages
        .iter()
        .rev()
        .find(|m| m.direction == Direction::Received && m.method() == Some("ACK"))
        .expect("ACK for the 200");
    assert_routed_to_contact_via_record_route(ack, carrier.addr());
    assert_routed_to_contact_via_record_route(in_dialog(&outcome, "BYE"), carrier.addr());

    // The agent heard the carrier's 440 Hz.
    let heard = audio::Pcm::read_wav(&agent.heard().expect("agent recording")).unwrap();
    assert!(
        audio::tone_present_in(&heard, 440.0, 0.5, heard.duration_s() - 0.5),
        "agent did not hear 440 Hz; timeline {:?}",
        audio::tone_timeline(&heard, &TONES)
    );
    // The carrier got the ringback (425 Hz) first, then the agent's 1000 Hz.
    let packets = tshark::rtp_to_port(&pcap, media_port).expect("carrier RTP decoded");
    let received = tshark::g711_timeline(&packets);
    let timeline = audio::tone_timeline(&received, &TONES);
    let ring = audio::first_block_with(&timeline, 425.0)
        .unwrap_or_else(|| panic!("no ringback at the carrier: {timeline:?}"));
    let voice = audio::first_block_with(&timeline, 1000.0)
        .unwrap_or_else(|| panic!("no agent audio at the carrier: {timeline:?}"));
    assert!(
        ring < voice,
        "ringback at {ring} s must come before the agent at {voice} s"
    );
    assert!(
        audio::tone_present_in(&received, 1000.0, voice, voice + 2.0),
        "the agent's 1000 Hz lasts at the carrier: {timeline:?}"
    );
}

#[test]
fn busy_customer_ends_the_call_with_exit_1_and_a_cdr_saying_busy_cause_17() {
    let setup = Setup::new("dialer-busy", &["run", "call"], &["sipp", "baresip", "sox"]);
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier(&setup.dir, "carrier_busy.xml", media_port);
    let config = setup.call_config(carrier.addr());
    let run = setup.run(&config);
    let _agent = setup.agent(AnswerMode::Auto);

    let mut cmd = setup.command(&["call", "+15551234", "--agent", "1000", "--api"]);
    cmd.arg(setup.api_url());
    let call = Peer::spawn("dialer-call", cmd, setup.dir.path()).expect("dialer call starts");
    let status = call
        .wait_exit(Duration::from_secs(20))
        .expect("dialer call ends");
    assert_eq!(status.code(), Some(1), "busy must exit 1:\n{}", call.tail());
    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier got the ACK for its 486");
    assert!(
        outcome.received("ACK").next().is_some(),
        "{:?}",
        outcome.ladder()
    );
    run.stop("TERM", Duration::from_secs(10))
        .expect("dialer run stops");

    // The CDR is a JSON line with an outcome; `dialer call` or `dialer run` prints it.
    let text = [
        call.output(scenario_tests::interop::process::Stream::Stdout),
        run.output(scenario_tests::interop::process::Stream::Stdout),
        run.output(scenario_tests::interop::process::Stream::Stderr),
    ]
    .join("\n");
    let cdr = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .find(|v| v.get("outcome").is_some())
        .unwrap_or_else(|| panic!("no CDR line (JSON with \"outcome\") in:\n{text}"));
    let outcome_text = cdr["outcome"].to_string().to_ascii_lowercase();
    assert!(outcome_text.contains("busy"), "CDR outcome: {cdr}");
    let cause = ["q850_cause", "cause", "q850"]
        .iter()
        .find_map(|k| cdr.get(*k).and_then(|v| v.as_u64()));
    assert_eq!(
        cause,
        Some(17),
        "CDR Q.850 cause (RFC 3398 §8.2.6.1: 486 -> 17): {cdr}"
    );
    let sip_status = ["sip_status", "status"]
        .iter()
        .find_map(|k| cdr.get(*k).and_then(|v| v.as_u64()));
    assert_eq!(sip_status, Some(486), "CDR SIP status: {cdr}");
}
