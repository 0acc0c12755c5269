//! A trunk over TCP (`transport = "tcp"`) under the real `dialer run`, against SIPp in TCP
//! mode (`-t t1`, which opens no UDP socket for SIP):
//!
//! - the trunk registers, a call is placed, bridged to an agent (a SIPp UDP phone) and hung
//!   up, every message to and from the carrier on one TCP connection, with Via and Contact
//!   naming TCP; a UDP socket the test holds on the carrier's port receives nothing, so no
//!   message went to the trunk over UDP;
//! - agent 1000, a baresip registered over TCP, is called over the connection it registered
//!   on (RFC 5626 flow semantics without `outbound`), and its binding goes when that
//!   connection closes;
//! - agent 1000, a baresip registered over TLS to `[sip] tls_listen` (certificate from a CA
//!   the test makes), is called over its TLS connection;
//! - a carrier that drops the connection with the REGISTER unanswered is reconnected (after
//!   1 s) and registered over the new connection well before the registration's own retry
//!   (30 s) would have gone out.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use dialer::control::OriginateRequest;
use regex::Regex;
use scenario_tests::interop::baresip::{AnswerMode, Baresip};
use scenario_tests::interop::call::{text, wait_cdr, CallTest};
use scenario_tests::interop::certs;
use scenario_tests::interop::dialer as dialer_bin;
use scenario_tests::interop::poll_until;
use scenario_tests::interop::ports::{free_baresip_port, free_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::process::now;
use scenario_tests::interop::sipp::{Sipp, SippConfig};
use scenario_tests::interop::trace::TracedMessage;

/// The registration's own retry waits at least this long after a failure, so a REGISTER
/// sooner than that comes from the reconnection.
const RETRY_MIN_S: u32 = 30;

/// A dialer with one TCP trunk at `carrier` and agent 1000, at a fixed UDP contact when
/// `agent` is given, else registering.
fn tcp_config(test: &CallTest, carrier: SocketAddr, agent: Option<SocketAddr>) -> PathBuf {
    tcp_config_with(test, carrier, agent, "")
}

/// [`tcp_config`] with more `[sip]` lines.
fn tcp_config_with(
    test: &CallTest,
    carrier: SocketAddr,
    agent: Option<SocketAddr>,
    sip_extra: &str,
) -> PathBuf {
    let mut rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
    while (rtp..rtp + 20).contains(&test.sip.port()) {
        rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
    }
    let text = format!(
        r#"[sip]
listen = "{sip}"
t1_ms = 100
{sip_extra}

[[trunk]]
name = "carrier"
proxy = "{carrier}"
domain = "carrier.test"
username = "dialer"
password = "s3cret"
register = true
expires = 60
transport = "tcp"
codecs = ["PCMA"]
keepalive = "none"
register_retry_min_s = {RETRY_MIN_S}
register_retry_max_s = 60

[[agent]]
extension = "1000"
password = "agentpw"
{contact}
allow = ["127.0.0.0/8"]
codecs = ["PCMA"]

[media]
rtp_ports = "{rtp}-{rtp_last}"
media_timeout_s = 0
pcap_dir = "{pcaps}"

[api]
listen = "127.0.0.1:{api}"
"#,
        sip = test.sip,
        contact = agent.map_or(String::new(), |a| format!("contact = \"sip:1000@{a}\"")),
        rtp_last = rtp + 19,
        api = test.api_port,
        pcaps = test.dir.path().display(),
    );
    let path = test.dir.join("dialer.toml");
    std::fs::write(&path, text).expect("write dialer.toml");
    dialer_bin::check_config(&test.dialer, &path).expect("the configuration is valid");
    path
}

fn sipp_tcp(test: &CallTest, name: &str, scenario: &str, at: SocketAddr, calls: u32) -> Sipp {
    let mut config = SippConfig::new(name, scenario, at);
    config.transport = "t1";
    config.calls = calls;
    config.timeout = Duration::from_secs(40);
    config.media = Some((LOOPBACK, free_udp_range(LOOPBACK, 4).expect("media ports")));
    Sipp::start(config, test.dir.path()).expect("sipp starts in TCP mode")
}

fn received<'a>(messages: &'a [TracedMessage], method: &str) -> &'a TracedMessage {
    messages
        .iter()
        .find(|m| m.method() == Some(method))
        .unwrap_or_else(|| panic!("no {method} received"))
}

fn registered() -> Regex {
    Regex::new(r"INFO dialer: trunk carrier: registered expires in 60 s").unwrap()
}

#[test]
fn a_tcp_trunk_registers_calls_and_hangs_up_over_one_tcp_connection_and_never_over_udp() {
    let test = CallTest::new("tcp-trunk-call", &["sipp"]).expect("setup");
    let carrier_addr = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("carrier port"));
    let carrier = sipp_tcp(&test, "carrier", "carrier_tcp.xml", carrier_addr, 2);
    // SIPp in TCP mode leaves the carrier's UDP port free: anything sent there over UDP
    // would be a TCP trunk's traffic gone over the wrong transport.
    let udp_trap = UdpSocket::bind(carrier_addr).expect("the carrier's UDP port is free");
    udp_trap.set_nonblocking(true).unwrap();
    let mut agent_cfg = SippConfig::new(
        "agent",
        "agent_answer.xml",
        SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agent port")),
    );
    agent_cfg.media = Some((LOOPBACK, free_udp_range(LOOPBACK, 4).expect("agent media")));
    agent_cfg.timeout = Duration::from_secs(40);
    let agent = Sipp::start(agent_cfg, test.dir.path()).expect("sipp agent starts");

    let config = tcp_config(&test, carrier.addr(), Some(agent.addr()));
    let run = test.run(&config).expect("dialer run");
    run.wait_for_line(&registered(), Duration::from_secs(10))
        .expect("the trunk registers over TCP");
    let client = test.client().expect("API client");
    let trunks = client.trunks().expect("GET /trunks");
    assert_eq!(
        (trunks[0].transport.as_str(), trunks[0].state.as_str()),
        ("tcp", "registered")
    );

    let info = client
        .originate(&OriginateRequest {
            number: "+15551234".into(),
            agent: Some("1000".into()),
            pcap: Some("tcp-call.pcap".into()),
            ..OriginateRequest::default()
        })
        .expect("the dialer accepts the call");
    run.wait_for_line(
        &Regex::new(r"<- tcp:\S+\s+200 OK\s+\(1 INVITE\)").unwrap(),
        Duration::from_secs(10),
    )
    .expect("the carrier's 200 arrives over TCP");
    // Bridged: the agent answered too (its leg is UDP).
    run.wait_for_line(
        &Regex::new(r"<- 127\.0\.0\.1:\d+\s+200 OK\s+\(1 INVITE\)").unwrap(),
        Duration::from_secs(10),
    )
    .expect("the agent answers over UDP");
    client.hangup(info.id).expect("hang up");
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("a CDR");
    assert_eq!(text(&cdr, "id"), info.id.to_string(), "{cdr}");
    // The call's --pcap holds the trunk's SIP as TCP, reassembled by the capture reader
    // into the messages that went over the connection; the agent's as UDP.
    let pcap = test.dir.join("tcp-call.pcap");
    let cap = poll_until(
        "the call's capture closed",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let cap = capture::read_file(&pcap).ok()?;
            let byes = cap
                .packets
                .iter()
                .filter(|p| String::from_utf8_lossy(&p.payload).contains("BYE sip:"))
                .count();
            (byes > 0).then_some(cap)
        },
    )
    .expect("the capture holds the BYE");
    let tcp_sip: String = cap
        .packets
        .iter()
        .filter(|p| p.transport == capture::Transport::Tcp)
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect();
    for start in ["INVITE sip:+15551234@", "SIP/2.0 200 OK", "BYE sip:"] {
        assert!(tcp_sip.contains(start), "{start} over TCP in the capture");
    }
    assert!(
        cap.packets
            .iter()
            .any(|p| p.transport == capture::Transport::Udp && p.payload.starts_with(b"INVITE ")),
        "the agent's INVITE is there as UDP"
    );

    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier scenario completes");
    agent
        .expect_success(Duration::from_secs(15))
        .expect("the agent scenario completes");
    let register = received(&outcome.messages, "REGISTER");
    let invite = received(&outcome.messages, "INVITE");
    let bye = received(&outcome.messages, "BYE");
    for m in [register, invite, bye] {
        let via = m.header("Via").unwrap_or_default();
        assert!(via.starts_with("SIP/2.0/TCP "), "{}: Via {via}", m.label());
    }
    for m in [register, invite] {
        let contact = m.header("Contact").unwrap_or_default();
        assert!(
            contact.contains(";transport=tcp"),
            "{}: Contact {contact}",
            m.label()
        );
    }
    let trace = std::fs::read_to_string(carrier.messages_path()).expect("SIPp trace");
    assert!(
        !trace.contains("UDP message"),
        "SIPp logged UDP traffic:\n{trace}"
    );
    let mut buf = [0u8; 2048];
    assert!(
        udp_trap.recv_from(&mut buf).is_err(),
        "a datagram reached the TCP trunk's port over UDP"
    );
    // Every request reused the one connection.
    let connected = Regex::new(r"tcp \S+: connected").unwrap();
    let all = run
        .wait_for_lines(&connected, 1, Duration::from_secs(1))
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        run.wait_for_lines(&connected, 2, Duration::from_millis(200))
            .is_err(),
        "more than one connection was opened:\n{}",
        run.tail()
    );
}

#[test]
fn a_connection_dropped_by_the_carrier_mid_registration_is_reopened_and_registered_on() {
    let test = CallTest::new("tcp-trunk-drop", &["sipp"]).expect("setup");
    let carrier_addr = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("carrier port"));
    let dropping = sipp_tcp(&test, "dropping", "registrar_tcp_drop.xml", carrier_addr, 1);
    let agent = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agent port"));
    let config = tcp_config(&test, carrier_addr, Some(agent));
    let run = test.run(&config).expect("dialer run");
    // SIPp takes the REGISTER, leaves it unanswered and exits: the connection closes.
    let first = dropping
        .finish(Duration::from_secs(10))
        .expect("the dropping registrar exits");
    assert_eq!(
        first.received("REGISTER").count(),
        1,
        "{:?}",
        first.ladder()
    );
    let dropped_at = now();
    let answering = sipp_tcp(&test, "answering", "registrar_tcp.xml", carrier_addr, 1);
    run.wait_for_line(
        &Regex::new(r"tcp \S+: connection closed").unwrap(),
        Duration::from_secs(5),
    )
    .expect("the dialer sees the connection close");
    run.wait_for_line(
        &Regex::new(r"tcp \S+: reconnecting in 1\.0 s").unwrap(),
        Duration::from_secs(5),
    )
    .expect("a reconnection is scheduled");
    run.wait_for_line(&registered(), Duration::from_secs(15))
        .expect("registered over the new connection");
    let took = now() - dropped_at;
    assert!(
        took < Duration::from_secs(RETRY_MIN_S.into()) / 2,
        "registered {took:?} after the drop: the reconnection did not re-register"
    );
    let second = answering.outcome(None).expect("the answering trace");
    let register = second
        .messages
        .iter()
        .find(|m| m.method() == Some("REGISTER"))
        .expect("a REGISTER on the new connection");
    assert!(register
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TCP ")));
    let client = test.client().expect("API client");
    let trunks = client.trunks().expect("GET /trunks");
    assert_eq!(trunks[0].state, "registered", "{:?}", trunks[0]);
}

#[test]
fn an_agent_registered_over_tcp_is_called_over_its_connection_and_unbound_when_it_closes() {
    let test = CallTest::new("tcp-agent", &["sipp", "baresip", "sox"]).expect("setup");
    let carrier_addr = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("carrier port"));
    let carrier = sipp_tcp(&test, "carrier", "carrier_tcp.xml", carrier_addr, 2);
    let config = tcp_config(&test, carrier.addr(), None);
    let run = test.run(&config).expect("dialer run");
    run.wait_for_line(&registered(), Duration::from_secs(10))
        .expect("the trunk registers over TCP");
    let agent_config = test
        .agent_config(
            AnswerMode::Auto,
            &["PCMA"],
            SocketAddr::new(
                LOOPBACK,
                free_baresip_port(LOOPBACK).expect("agent SIP port"),
            ),
            free_udp_range(LOOPBACK, 20).expect("agent RTP"),
            SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agent ctrl")),
        )
        .expect("agent settings");
    let listen = agent_config.sip_listen;
    let agent = Baresip::start_over(agent_config, test.dir.path(), "tcp", None).expect("baresip");
    agent
        .wait_registered(Duration::from_secs(10))
        .expect("agent 1000 registers over TCP");
    let client = test.client().expect("API client");
    let source = client
        .agents()
        .expect("GET /agents")
        .into_iter()
        .find(|a| a.extension == "1000")
        .and_then(|a| a.source)
        .expect("agent 1000 has a registered source");
    let contact = client.agents().unwrap()[0]
        .contact
        .clone()
        .unwrap_or_default();
    assert!(contact.contains("transport=tcp"), "{contact}");

    let info = client
        .originate(&OriginateRequest {
            number: "+15551234".into(),
            agent: Some("1000".into()),
            ..OriginateRequest::default()
        })
        .expect("the dialer accepts the call");
    // The agent's INVITE goes over the connection baresip opened (its source), not to a
    // new connection to the port in its Contact.
    let invite = format!(r"-> tcp:{}\s+INVITE", regex::escape(&source.to_string()));
    run.wait_for_line(&Regex::new(&invite).unwrap(), Duration::from_secs(10))
        .expect("the agent is called over its registration's connection");
    run.wait_for_line(
        &Regex::new(&format!(
            r"<- tcp:{}\s+200 \S+\s+\(\d+ INVITE\)",
            regex::escape(&source.to_string())
        ))
        .unwrap(),
        Duration::from_secs(10),
    )
    .expect("the agent answers over it");
    client.hangup(info.id).expect("hang up");
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("a CDR");
    assert_eq!(text(&cdr, "id"), info.id.to_string(), "{cdr}");
    let listen_lines = format!(r"-> tcp:{}\s", regex::escape(&listen.to_string()));
    if source != listen {
        assert!(
            run.wait_for_line(
                &Regex::new(&listen_lines).unwrap(),
                Duration::from_millis(100)
            )
            .is_err(),
            "a request went to the agent's listening port instead of its connection"
        );
    }

    // baresip dies without un-registering: the connection closes, the binding goes with it.
    agent.peer().signal("KILL").expect("kill baresip");
    poll_until(
        "agent 1000's binding removed",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let agents = client.agents().ok()?;
            agents
                .iter()
                .find(|a| a.extension == "1000")
                .filter(|a| a.contact.is_none())
                .map(|_| ())
        },
    )
    .expect("the binding goes when its connection closes");
    let _ = carrier.finish(Duration::from_secs(10));
}

#[test]
fn dialer_register_goes_over_the_trunks_tcp_and_says_so() {
    let test = CallTest::new("tcp-register-cli", &["sipp"]).expect("setup");
    let carrier_addr = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("carrier port"));
    let registrar = sipp_tcp(&test, "registrar", "registrar_tcp.xml", carrier_addr, 1);
    let agent = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agent port"));
    let config = tcp_config(&test, carrier_addr, Some(agent));
    let out = test
        .command(&["register", "--once", "--trunk", "carrier", "--config"])
        .arg(&config)
        .output()
        .expect("dialer register runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "registering trunk carrier over TCP to {carrier_addr}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("-> tcp:{carrier_addr}")) && stderr.contains("registered:"),
        "{stderr}"
    );
    let outcome = registrar.outcome(None).expect("the registrar's trace");
    let register = outcome
        .received("REGISTER")
        .next()
        .expect("a REGISTER over TCP");
    assert!(register
        .header("Via")
        .is_some_and(|v| v.starts_with("SIP/2.0/TCP ")));
}

#[test]
fn an_agent_registered_over_tls_is_called_over_its_tls_connection() {
    let test = CallTest::new("tls-agent", &["sipp", "baresip", "sox", "openssl"]).expect("setup");
    let certs = certs::make(
        test.dir.path(),
        "dialer",
        &["DNS:dialer.test", "IP:127.0.0.1"],
    )
    .expect("certificates");
    let carrier_addr = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("carrier port"));
    let carrier = sipp_tcp(&test, "carrier", "carrier_tcp.xml", carrier_addr, 2);
    let tls = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("TLS port"));
    let sip_extra = format!(
        "tls_listen = \"{tls}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        certs.cert.display(),
        certs.key.display()
    );
    let config = tcp_config_with(&test, carrier.addr(), None, &sip_extra);
    let run = test.run(&config).expect("dialer run");
    run.wait_for_line(&registered(), Duration::from_secs(10))
        .expect("the trunk registers over TCP");
    let agent_config = test
        .agent_config(
            AnswerMode::Auto,
            &["PCMA"],
            SocketAddr::new(
                LOOPBACK,
                free_baresip_port(LOOPBACK).expect("agent SIP port"),
            ),
            free_udp_range(LOOPBACK, 20).expect("agent RTP"),
            SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agent ctrl")),
        )
        .expect("agent settings");
    let mut agent_config = agent_config;
    agent_config.registrar = Some((tls, "agentpw".into()));
    let agent = Baresip::start_over(agent_config, test.dir.path(), "tls", Some(&certs.ca))
        .expect("baresip");
    agent
        .wait_registered(Duration::from_secs(10))
        .expect("agent 1000 registers over TLS");
    let client = test.client().expect("API client");
    let source = client
        .agents()
        .expect("GET /agents")
        .into_iter()
        .find(|a| a.extension == "1000")
        .and_then(|a| a.source)
        .expect("agent 1000 has a registered source");
    let info = client
        .originate(&OriginateRequest {
            number: "+15551234".into(),
            agent: Some("1000".into()),
            ..OriginateRequest::default()
        })
        .expect("the dialer accepts the call");
    let peer = regex::escape(&source.to_string());
    run.wait_for_line(
        &Regex::new(&format!(r"-> tls:{peer}\s+INVITE")).unwrap(),
        Duration::from_secs(10),
    )
    .expect("the agent is called over its TLS connection");
    run.wait_for_line(
        &Regex::new(&format!(r"<- tls:{peer}\s+200 \S+\s+\(\d+ INVITE\)")).unwrap(),
        Duration::from_secs(10),
    )
    .expect("the agent answers over it");
    client.hangup(info.id).expect("hang up");
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("a CDR");
    assert_eq!(text(&cdr, "id"), info.id.to_string(), "{cdr}");
    let _ = carrier.finish(Duration::from_secs(10));
}
