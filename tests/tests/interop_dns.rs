//! Carrier DNS (RFC 3263) under the real `dialer`, against a dnsmasq the test starts on a
//! free loopback port (`[sip] dns_servers`) and SIPp carriers:
//!
//! - a trunk whose `proxy` is a bare name: NAPTR `SIP+D2U` → `_sip._udp` SRV with two
//!   targets, the better one (priority 10) silent (a UDP socket the test holds and never
//!   answers), the other (priority 20) a SIPp carrier. The REGISTER and the call's INVITE
//!   both go to the silent target first and, at Timer F / Timer B (64*T1 = 6.4 s with
//!   `t1_ms = 100`), to the SIPp carrier as new transactions; the call completes there;
//! - the name is looked up again when its TTL runs out (dnsmasq's 0, held 5 s);
//! - `dialer register --once` fails over the same way;
//! - over TCP, a refused connection to the first SRV target fails the REGISTER over at once
//!   (the transaction ends with the flow, RFC 3263 §4.3 transport failure);
//!   under `dialer run` the trunk's kept-up connection moves to the target that answered
//!   rather than redialling the refused one;
//! - a proxy name with a port is looked up with A only (RFC 3263 §4.2): the same SRV records
//!   would have sent it to the silent target first, and it registers at once instead.
//!
//! dnsmasq (Debian package `dnsmasq`) is a required tool, as SIPp is: a missing one fails the
//! test with the package's name. dnsmasq runs in the foreground in its own process group and
//! is killed by its PID when the test ends.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use dialer::control::OriginateRequest;
use regex::Regex;
use scenario_tests::interop::call::{carrier_for, text, wait_cdr, CallTest, TRUNK_PASSWORD};
use scenario_tests::interop::dialer as dialer_bin;
use scenario_tests::interop::ports::{free_port, free_udp_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::process::now;
use scenario_tests::interop::sipp::{Sipp, SippConfig};
use scenario_tests::interop::{which, Peer, TestDir};

/// T1 of the dialer under test: Timer B and Timer F are 64*T1.
const T1_MS: u64 = 100;
/// RFC 3261 §17.1.1.2 / §17.1.2.2.
const TIMER_B: Duration = Duration::from_millis(64 * T1_MS);
/// What a lookup, a failover and SIPp's answer may add to Timer B on a loaded machine.
const SLACK: Duration = Duration::from_secs(3);

/// A dnsmasq serving only the records it is given, on 127.0.0.1.
struct Dnsmasq {
    _peer: Peer,
    addr: SocketAddr,
}

/// The dnsmasq binary (in /usr/sbin, which a user's PATH may lack).
fn dnsmasq_binary() -> PathBuf {
    which("dnsmasq")
        .or_else(|| {
            let p = PathBuf::from("/usr/sbin/dnsmasq");
            p.is_file().then_some(p)
        })
        .expect("interop tools missing: dnsmasq (Debian package dnsmasq)")
}

impl Dnsmasq {
    /// Starts dnsmasq with `records` (its own options, like `--srv-host=...`): no upstream,
    /// no hosts file, no configuration file, bound to 127.0.0.1 only, logging queries.
    fn start(dir: &TestDir, records: &[String]) -> Dnsmasq {
        let port = free_port(LOOPBACK).expect("a port for dnsmasq");
        let mut cmd = Command::new(dnsmasq_binary());
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--log-facility=-",
            "--log-queries",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.join("dnsmasq.pid").display()))
        .args(records);
        // As root dnsmasq drops to an unprivileged user after binding; as a user it stays.
        let peer = Peer::spawn("dnsmasq", cmd, dir.path()).expect("dnsmasq starts");
        peer.wait_for_line(
            &Regex::new("started, version").unwrap(),
            Duration::from_secs(5),
        )
        .expect("dnsmasq is up");
        Dnsmasq {
            _peer: peer,
            addr: SocketAddr::new(LOOPBACK, port),
        }
    }
}

/// NAPTR `carrier.test` → `_sip._udp.carrier.test`; its SRV: `dead` (priority 10) at
/// `dead_port`, `live` (priority 20) at `live_port`; both names on 127.0.0.1. Also
/// `registrar.carrier.test` A 127.0.0.1 for a proxy with a port.
fn carrier_records(dead_port: u16, live_port: u16) -> Vec<String> {
    vec![
        "--naptr-record=carrier.test,10,50,s,SIP+D2U,,_sip._udp.carrier.test".into(),
        // A TCP service the UDP trunk must not pick.
        "--naptr-record=carrier.test,5,50,s,SIP+D2T,,_sip._tcp.carrier.test".into(),
        format!("--srv-host=_sip._udp.carrier.test,dead.carrier.test,{dead_port},10,10"),
        format!("--srv-host=_sip._udp.carrier.test,live.carrier.test,{live_port},20,10"),
        format!("--srv-host=_sip._tcp.carrier.test,dead.carrier.test,{dead_port},0,10"),
        "--host-record=dead.carrier.test,127.0.0.1".into(),
        "--host-record=live.carrier.test,127.0.0.1".into(),
        "--host-record=registrar.carrier.test,127.0.0.1".into(),
    ]
}

/// A UDP port that takes datagrams and never answers; counts what it got.
struct Silent {
    socket: UdpSocket,
}

impl Silent {
    fn bind() -> Silent {
        let port = free_udp_port(LOOPBACK).expect("a UDP port");
        let socket = UdpSocket::bind(SocketAddr::new(LOOPBACK, port)).expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        Silent { socket }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().expect("bound").port()
    }

    /// The first line of every datagram received so far.
    fn request_lines(&self) -> Vec<String> {
        let mut buf = [0u8; 65_535];
        let mut lines = Vec::new();
        while let Ok((n, _)) = self.socket.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            lines.push(text.lines().next().unwrap_or_default().to_owned());
        }
        lines
    }
}

/// `dialer run` with one UDP trunk `proxy` (a name), `[sip] dns_servers` and `t1_ms`, and
/// agent 1000 at a fixed contact.
fn dns_config(test: &CallTest, proxy: &str, dns: SocketAddr, agent: SocketAddr) -> PathBuf {
    let mut rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
    while (rtp..rtp + 20).contains(&test.sip.port()) {
        rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
    }
    let text = format!(
        r#"[sip]
listen = "{sip}"
t1_ms = {T1_MS}
dns_servers = ["{dns}"]

[[trunk]]
name = "carrier"
proxy = "{proxy}"
domain = "carrier.test"
username = "dialer"
password = "{TRUNK_PASSWORD}"
register = true
expires = 600
codecs = ["PCMA"]
caller_id = "+15550100"
keepalive = "none"
register_retry_min_s = 30
register_retry_max_s = 60

[[agent]]
extension = "1000"
password = "agentpw"
contact = "sip:1000@{agent}"
allow = ["127.0.0.0/8"]
codecs = ["PCMA"]

[media]
rtp_ports = "{rtp}-{rtp_last}"
media_timeout_s = 0

[calls]
originate_timeout_s = 30

[api]
listen = "127.0.0.1:{api}"
"#,
        sip = test.sip,
        rtp_last = rtp + 19,
        api = test.api_port,
    );
    let path = test.dir.join("dialer.toml");
    std::fs::write(&path, text).expect("write dialer.toml");
    dialer_bin::check_config(&test.dialer, &path).expect("the configuration is valid");
    path
}

fn sipp_agent(test: &CallTest) -> Sipp {
    let mut config = SippConfig::new(
        "agent",
        "agent_answer.xml",
        SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agent port")),
    );
    config.media = Some((LOOPBACK, free_udp_range(LOOPBACK, 4).expect("agent media")));
    config.timeout = Duration::from_secs(50);
    Sipp::start(config, test.dir.path()).expect("sipp agent starts")
}

#[test]
fn the_first_srv_target_silent_the_register_and_the_call_go_to_the_second_at_timer_b() {
    let test = CallTest::new("dns-failover-call", &["sipp"]).expect("setup");
    let silent = Silent::bind();
    let media = free_udp_range(LOOPBACK, 4).expect("carrier media");
    let carrier = carrier_for(&test.dir, "carrier.xml", media, 2).expect("sipp carrier");
    let dns = Dnsmasq::start(
        &test.dir,
        &carrier_records(silent.port(), carrier.addr().port()),
    );
    let agent = sipp_agent(&test);
    let config = dns_config(&test, "carrier.test", dns.addr, agent.addr());

    let started = now();
    let run = test.run(&config).expect("dialer run");
    let dead = SocketAddr::new(LOOPBACK, silent.port());
    let live = carrier.addr();
    run.wait_for_line(
        &Regex::new(&format!(
            r"trunk carrier: carrier\.test -> {}, {}",
            regex::escape(&dead.to_string()),
            regex::escape(&live.to_string())
        ))
        .unwrap(),
        Duration::from_secs(5),
    )
    .expect("NAPTR and SRV give the two targets in priority order");
    run.wait_for_line(
        &Regex::new(&format!(
            r"trunk carrier: registering {} failed \(no response \(timeout\)\), trying {}",
            regex::escape(&dead.to_string()),
            regex::escape(&live.to_string())
        ))
        .unwrap(),
        TIMER_B + SLACK,
    )
    .expect("the REGISTER fails over at Timer F");
    run.wait_for_line(
        &Regex::new(r"INFO dialer: trunk carrier: registered").unwrap(),
        Duration::from_secs(5),
    )
    .expect("registered at the second target");
    let registered_after = started.elapsed();
    assert!(
        registered_after >= TIMER_B,
        "registered after {registered_after:?}, before Timer F ran out at the first target"
    );
    let to_dead = silent.request_lines();
    assert!(
        to_dead.iter().any(|l| l.starts_with("REGISTER ")),
        "the first target got the REGISTER first: {to_dead:?}"
    );

    let client = test.client().expect("API client");
    let originated = now();
    let info = client
        .originate(&OriginateRequest {
            number: "+15551234".into(),
            agent: Some("1000".into()),
            ..OriginateRequest::default()
        })
        .expect("the dialer accepts the call");
    // The carrier's 407 to the INVITE: the INVITE reached the second target.
    run.wait_for_line(
        &Regex::new(&format!(
            r"<- {}\s+407 Proxy Authentication Required",
            regex::escape(&live.to_string())
        ))
        .unwrap(),
        TIMER_B + SLACK,
    )
    .expect("the INVITE reaches the second target");
    let reached = originated.elapsed();
    assert!(
        reached >= TIMER_B - Duration::from_millis(200) && reached <= TIMER_B + SLACK,
        "the INVITE reached the second target {reached:?} after the originate; Timer B is {TIMER_B:?}"
    );
    let to_dead = silent.request_lines();
    assert!(
        to_dead.iter().any(|l| l.starts_with("INVITE sip:")),
        "the first target got the INVITE first: {to_dead:?}"
    );
    // The agent answers (its 200): the call is bridged.
    run.wait_for_line(
        &Regex::new(&format!(
            r"<- {}\s+200 OK\s+\(\d+ INVITE\)",
            regex::escape(&agent.addr().to_string())
        ))
        .unwrap(),
        Duration::from_secs(15),
    )
    .expect("the call is answered and bridged");
    client.hangup(info.id).expect("hang up");
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("a CDR");
    assert_eq!(text(&cdr, "id"), info.id.to_string(), "{cdr}");
    assert_eq!(text(&cdr, "outcome"), "bridged", "{cdr}");

    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier scenario completes");
    let invites: Vec<_> = outcome.received("INVITE").collect();
    assert_eq!(invites.len(), 2, "the INVITE and its authenticated retry");
    agent
        .expect_success(Duration::from_secs(15))
        .expect("the agent scenario completes");
    // dnsmasq saw the RFC 3263 sequence: NAPTR, then SRV, then the targets' A records.
    let log = std::fs::read_to_string(test.dir.join("dnsmasq.stderr")).unwrap_or_default();
    let naptr = log
        .find("query[NAPTR] carrier.test")
        .expect("a NAPTR query");
    let srv = log
        .find("query[SRV] _sip._udp.carrier.test")
        .expect("an SRV query for the UDP service");
    assert!(naptr < srv, "NAPTR before SRV:\n{log}");
    // dnsmasq gives its own records a TTL of 0: the dialer keeps the targets for its floor of
    // 5 s (sip_core::locate::MIN_TTL) and then looks the name up again, several times over
    // the 14 s or so of this test.
    let lookups = log.matches("query[NAPTR] carrier.test").count();
    assert!(
        lookups >= 2,
        "the name was looked up again when its TTL ran out:\n{log}"
    );
    assert!(
        !log.contains("query[SRV] _sip._tcp"),
        "the TCP service is not used:\n{log}"
    );
}

/// `dialer register` for `proxy`, with `dns_servers`; the registrar is SIPp's registrar.xml.
fn register_config(dir: &TestDir, proxy: &str, dns: SocketAddr, transport: &str) -> PathBuf {
    let sip = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("dialer SIP port"));
    let text = format!(
        r#"[sip]
listen = "{sip}"
t1_ms = {T1_MS}
dns_servers = ["{dns}"]

[[trunk]]
name = "carrier"
proxy = "{proxy}"
domain = "carrier.test"
username = "dialer"
password = "{TRUNK_PASSWORD}"
register = true
expires = 60
transport = "{transport}"
keepalive = "none"
"#
    );
    let path = dir.join("register.toml");
    std::fs::write(&path, text).expect("write register.toml");
    path
}

fn registrar(dir: &TestDir) -> Sipp {
    Sipp::start(
        SippConfig::new(
            "registrar",
            "registrar.xml",
            SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("registrar port")),
        )
        .key("user", "dialer")
        .key("password", TRUNK_PASSWORD)
        .key("realm", "carrier.test"),
        dir.path(),
    )
    .expect("sipp registrar")
}

fn register_once(
    dir: &TestDir,
    config: &std::path::Path,
) -> (std::process::ExitStatus, Peer, Duration) {
    let binary = dialer_bin::require(&["register"]).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(binary);
    cmd.args(["register", "--trunk", "carrier", "--once", "--config"])
        .arg(config)
        .current_dir(dir.path());
    let started = now();
    let peer = Peer::spawn("dialer-register", cmd, dir.path()).expect("spawn");
    let status = peer
        .wait_exit(TIMER_B + Duration::from_secs(15))
        .expect("register --once ends");
    (status, peer, started.elapsed())
}

#[test]
fn dialer_register_fails_over_from_a_silent_srv_target_to_the_next() {
    scenario_tests::interop::require_tools(&["sipp"]).expect("interop tools");
    let dir = TestDir::new("dns-failover-register").expect("temp dir");
    let silent = Silent::bind();
    let registrar = registrar(&dir);
    let dns = Dnsmasq::start(
        &dir,
        &carrier_records(silent.port(), registrar.addr().port()),
    );
    let config = register_config(&dir, "carrier.test", dns.addr, "udp");
    let (status, peer, took) = register_once(&dir, &config);
    assert!(status.success(), "exit {status}:\n{}", peer.tail());
    let stderr = peer.output(scenario_tests::interop::process::Stream::Stderr);
    let dead = SocketAddr::new(LOOPBACK, silent.port());
    assert!(
        stderr.contains(&format!(
            "{dead} failed (no response (timeout)), trying {}",
            registrar.addr()
        )),
        "{stderr}"
    );
    assert!(took >= TIMER_B, "registered after {took:?}, before Timer F");
    assert!(
        silent
            .request_lines()
            .iter()
            .any(|l| l.starts_with("REGISTER ")),
        "the first target got the first REGISTER"
    );
    registrar
        .expect_success(Duration::from_secs(10))
        .expect("the registrar saw the REGISTER and the un-REGISTER");
}

#[test]
fn a_proxy_name_with_a_port_skips_naptr_and_srv() {
    scenario_tests::interop::require_tools(&["sipp"]).expect("interop tools");
    let dir = TestDir::new("dns-explicit-port").expect("temp dir");
    let silent = Silent::bind();
    let registrar = registrar(&dir);
    let dns = Dnsmasq::start(
        &dir,
        &carrier_records(silent.port(), registrar.addr().port()),
    );
    let proxy = format!("registrar.carrier.test:{}", registrar.addr().port());
    let config = register_config(&dir, &proxy, dns.addr, "udp");
    let (status, peer, took) = register_once(&dir, &config);
    assert!(status.success(), "exit {status}:\n{}", peer.tail());
    assert!(took < TIMER_B, "no failover wait: {took:?}");
    assert!(
        silent.request_lines().is_empty(),
        "nothing went to the SRV target"
    );
    let log = std::fs::read_to_string(dir.join("dnsmasq.stderr")).unwrap_or_default();
    assert!(log.contains("query[A] registrar.carrier.test"), "{log}");
    assert!(
        !log.contains("query[NAPTR]") && !log.contains("query[SRV]"),
        "{log}"
    );
    registrar
        .expect_success(Duration::from_secs(10))
        .expect("the registrar saw the REGISTER and the un-REGISTER");
}

#[test]
fn over_tcp_a_refused_connection_to_the_first_srv_target_fails_over_at_once() {
    scenario_tests::interop::require_tools(&["sipp"]).expect("interop tools");
    let dir = TestDir::new("dns-failover-tcp").expect("temp dir");
    // Nothing listens on this port: the connection is refused.
    let dead = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("a port"));
    let mut config = SippConfig::new(
        "registrar",
        "registrar_tcp.xml",
        SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("registrar port")),
    );
    config.transport = "t1";
    config.calls = 1;
    config.timeout = Duration::from_secs(40);
    let registrar = Sipp::start(config, dir.path()).expect("sipp registrar over TCP");
    let live = registrar.addr();
    let dns = Dnsmasq::start(
        &dir,
        &[
            "--naptr-record=carrier.test,10,50,s,SIP+D2T,,_sip._tcp.carrier.test".into(),
            format!(
                "--srv-host=_sip._tcp.carrier.test,dead.carrier.test,{},10,10",
                dead.port()
            ),
            format!(
                "--srv-host=_sip._tcp.carrier.test,live.carrier.test,{},20,10",
                live.port()
            ),
            "--host-record=dead.carrier.test,127.0.0.1".into(),
            "--host-record=live.carrier.test,127.0.0.1".into(),
        ],
    );
    let config = register_config(&dir, "carrier.test", dns.addr, "tcp");
    let (status, peer, took) = register_once(&dir, &config);
    assert!(status.success(), "exit {status}:\n{}", peer.tail());
    let stderr = peer.output(scenario_tests::interop::process::Stream::Stderr);
    assert!(
        stderr.contains(&format!(
            "registering trunk carrier over TCP to {dead}, then {live}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{dead} failed")) && stderr.contains(&format!("trying {live}")),
        "{stderr}"
    );
    assert!(
        took < TIMER_B,
        "no Timer F wait for a refused connection: {took:?}"
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
fn under_dialer_run_a_tcp_trunk_registers_at_the_second_target_and_stops_dialling_the_first() {
    let test = CallTest::new("dns-failover-tcp-run", &["sipp"]).expect("setup");
    let dead = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("a port"));
    let mut config = SippConfig::new(
        "registrar",
        "registrar_tcp.xml",
        SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("registrar port")),
    );
    config.transport = "t1";
    config.calls = 1;
    config.timeout = Duration::from_secs(40);
    let registrar = Sipp::start(config, test.dir.path()).expect("sipp registrar over TCP");
    let live = registrar.addr();
    let dns = Dnsmasq::start(
        &test.dir,
        &[
            "--naptr-record=carrier.test,10,50,s,SIP+D2T,,_sip._tcp.carrier.test".into(),
            format!(
                "--srv-host=_sip._tcp.carrier.test,dead.carrier.test,{},10,10",
                dead.port()
            ),
            format!(
                "--srv-host=_sip._tcp.carrier.test,live.carrier.test,{},20,10",
                live.port()
            ),
            "--host-record=dead.carrier.test,127.0.0.1".into(),
            "--host-record=live.carrier.test,127.0.0.1".into(),
            // Held for the whole test: no new lookup reorders anything meanwhile.
            "--local-ttl=600".into(),
        ],
    );
    let agent = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agent port"));
    let path = dns_config(&test, "carrier.test", dns.addr, agent);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "codecs = [\"PCMA\"]\ncaller_id",
            "transport = \"tcp\"\ncodecs = [\"PCMA\"]\ncaller_id",
        )
        .replace("expires = 600", "expires = 60");
    std::fs::write(&path, text).unwrap();
    dialer_bin::check_config(&test.dialer, &path).expect("the configuration is valid");
    let started = now();
    let run = test.run(&path).expect("dialer run");
    run.wait_for_line(
        &Regex::new(r"INFO dialer: trunk carrier: registered").unwrap(),
        Duration::from_secs(5),
    )
    .expect("registered at the second target");
    assert!(
        started.elapsed() < TIMER_B,
        "no Timer F wait for a refused connection"
    );
    // The refused target would be redialled after 1 s, then 2 s: nothing of it in 4 s.
    let refused = Regex::new(&format!(
        r"tcp {}: connection closed",
        regex::escape(&dead.to_string())
    ))
    .unwrap();
    let closed_once = run.wait_for_lines(&refused, 1, Duration::from_secs(1));
    assert!(
        closed_once.is_ok(),
        "the first target was tried: {}",
        run.tail()
    );
    let again = run.wait_for_lines(&refused, 2, Duration::from_secs(4));
    assert!(
        again.is_err(),
        "the refused target was redialled: {}",
        run.tail()
    );
    let outcome = registrar.outcome(None).expect("the registrar's trace");
    assert!(outcome.received("REGISTER").next().is_some());
}
