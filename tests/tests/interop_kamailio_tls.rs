//! The real `dialer run` with a trunk over TLS (`transport = "tls"`) to Kamailio with its TLS
//! module (Debian `kamailio-tls-modules`) as registrar and record-routing proxy in front of
//! SIPp as the carrier (over UDP). The certificates come from a CA this test makes with
//! `openssl`; the dialer trusts that CA alone (`[sip] tls_ca`).
//!
//! - The certificate names the trunk's domain: the trunk registers over TLS, a call is
//!   placed through Kamailio (record-routed, so the ACK and BYE come back through it over
//!   the same TLS connection) and bridged to an agent (SIPp over UDP), and hung up.
//! - The trunk's domain is another name: the handshake is refused (RFC 5922 §7.2), nothing
//!   reaches Kamailio, the trunk is not registered.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dialer::control::OriginateRequest;
use regex::Regex;
use scenario_tests::interop::call::{text, wait_cdr, CallTest};
use scenario_tests::interop::certs;
use scenario_tests::interop::dialer as dialer_bin;
use scenario_tests::interop::kamailio_proxy::KamailioProxy;
use scenario_tests::interop::ports::{free_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::sipp::{Sipp, SippConfig};

/// The name in the proxy's certificate.
const PROXY_NAME: &str = "sip.kamailio.test";

/// A test CA and a certificate for [`PROXY_NAME`] signed by it: (ca, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let c = certs::make(dir, "proxy", &[&format!("DNS:{PROXY_NAME}")]).expect("openssl");
    (c.ca, c.cert, c.key)
}

/// A dialer whose one trunk goes over TLS to `proxy` for `domain`, trusting `ca`; agent
/// 1000 at a fixed UDP contact.
fn tls_config(
    test: &CallTest,
    proxy: SocketAddr,
    domain: &str,
    ca: &Path,
    agent: SocketAddr,
) -> PathBuf {
    let mut rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
    while (rtp..rtp + 20).contains(&test.sip.port()) {
        rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
    }
    let text = format!(
        r#"[sip]
listen = "{sip}"
tls_ca = "{ca}"
t1_ms = 100

[[trunk]]
name = "carrier"
proxy = "{proxy}"
domain = "{domain}"
username = "dialer"
password = "s3cret"
register = true
expires = 60
transport = "tls"
codecs = ["PCMA"]
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

[api]
listen = "127.0.0.1:{api}"
"#,
        sip = test.sip,
        ca = ca.display(),
        rtp_last = rtp + 19,
        api = test.api_port,
    );
    let path = test.dir.join("dialer.toml");
    std::fs::write(&path, text).expect("write dialer.toml");
    dialer_bin::check_config(&test.dialer, &path).expect("the configuration is valid");
    path
}

fn sipp(test: &CallTest, name: &str, scenario: &str) -> Sipp {
    let mut config = SippConfig::new(
        name,
        scenario,
        SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("SIPp port")),
    );
    config.media = Some((LOOPBACK, free_udp_range(LOOPBACK, 4).expect("media ports")));
    config.timeout = Duration::from_secs(40);
    Sipp::start(config, test.dir.path()).expect("sipp starts")
}

/// Kamailio on a UDP port (its readiness probe) and a TLS port; returns it and the TLS address.
fn kamailio(
    test: &CallTest,
    cert: &Path,
    key: &Path,
    carrier: SocketAddr,
) -> (KamailioProxy, SocketAddr) {
    let tls = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("TLS port"));
    let proxy = KamailioProxy::start_tls(
        "kamailio",
        SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("proxy port")),
        tls.port(),
        (cert, key),
        carrier,
        test.dir.path(),
    )
    .expect("Kamailio with TLS starts");
    (proxy, tls)
}

#[test]
fn a_tls_trunk_registers_and_calls_through_kamailio_with_the_certificate_checked() {
    let test = CallTest::new("kamailio-tls", &["sipp", "openssl"]).expect("setup");
    let (ca, cert, key) = certificates(test.dir.path());
    let carrier = sipp(&test, "carrier", "carrier_record_routed.xml");
    let agent = sipp(&test, "agent", "agent_answer.xml");
    let (proxy, tls) = kamailio(&test, &cert, &key, carrier.addr());
    let config = tls_config(&test, tls, PROXY_NAME, &ca, agent.addr());
    let run = test.run(&config).expect("dialer run");
    run.wait_for_line(
        &Regex::new(r"INFO dialer: trunk carrier: registered expires in 60 s").unwrap(),
        Duration::from_secs(10),
    )
    .expect("the trunk registers over TLS");
    assert!(
        proxy.log().contains("REGISTER over tls"),
        "Kamailio's log:\n{}",
        proxy.log()
    );
    let client = test.client().expect("API client");
    assert_eq!(client.trunks().unwrap()[0].transport, "tls");
    let info = client
        .originate(&OriginateRequest {
            number: "+15551234".into(),
            agent: Some("1000".into()),
            ..OriginateRequest::default()
        })
        .expect("the dialer accepts the call");
    run.wait_for_line(
        &Regex::new(&format!(
            r"<- tls:{}\s+200 OK\s+\(1 INVITE\)",
            regex::escape(&tls.to_string())
        ))
        .unwrap(),
        Duration::from_secs(10),
    )
    .expect("the carrier's 200 comes back through Kamailio over TLS");
    run.wait_for_line(
        &Regex::new(r"<- 127\.0\.0\.1:\d+\s+200 OK\s+\(1 INVITE\)").unwrap(),
        Duration::from_secs(10),
    )
    .expect("the agent answers");
    client.hangup(info.id).expect("hang up");
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("a CDR");
    assert_eq!(text(&cdr, "id"), info.id.to_string(), "{cdr}");
    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier's call completes: its BYE came through Kamailio");
    let bye = outcome.received("BYE").next().expect("a BYE");
    let via: Vec<&str> = bye.headers_named("Via").collect();
    assert!(via.len() >= 2, "the BYE went through the proxy: {via:?}");
    assert!(
        proxy.log().contains("in-dialog BYE over tls"),
        "the dialer's BYE reached Kamailio over TLS:\n{}",
        proxy.log()
    );
    let connected = Regex::new(r"tls \S+: connected").unwrap();
    assert!(
        run.wait_for_lines(&connected, 2, Duration::from_millis(200))
            .is_err(),
        "the trunk's TLS connection was not reused:\n{}",
        run.tail()
    );
}

#[test]
fn a_tls_trunk_whose_certificate_names_another_host_is_refused() {
    let test = CallTest::new("kamailio-tls-wrong-name", &["sipp", "openssl"]).expect("setup");
    let (ca, cert, key) = certificates(test.dir.path());
    let carrier = sipp(&test, "carrier", "carrier_record_routed.xml");
    let (proxy, tls) = kamailio(&test, &cert, &key, carrier.addr());
    let agent = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agent port"));
    let config = tls_config(&test, tls, "other.kamailio.test", &ca, agent);
    let run = test.run(&config).expect("dialer run");
    let refused = run
        .wait_for_line(
            &Regex::new(r"tls \S+: connection closed: TLS handshake failed").unwrap(),
            Duration::from_secs(10),
        )
        .expect("the handshake is refused");
    assert!(
        refused.contains("not valid for name \"other.kamailio.test\""),
        "{refused}"
    );
    run.wait_for_line(
        &Regex::new(r"WARN dialer: trunk carrier: retrying").unwrap(),
        Duration::from_secs(10),
    )
    .expect("the registration is retried, not taken as done");
    let client = test.client().expect("API client");
    assert_eq!(client.trunks().unwrap()[0].state, "retrying");
    assert!(
        !proxy.log().contains("REGISTER over"),
        "a REGISTER reached Kamailio:\n{}",
        proxy.log()
    );
}
