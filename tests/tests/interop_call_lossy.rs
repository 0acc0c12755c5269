//! Calls over a real lossy path: SIPp as the carrier runs in its own network namespace
//! ([`LossyLink`]) where iptables drops one SIP datagram in ten in each direction, the real
//! `dialer run` on the host's end of the link, baresip as agent 1000 on loopback.
//!
//! Why iptables and not netem: this VM's kernel has no `sch_netem`; the `statistic` match
//! works inside a namespace (see [`LossyLink`] for why `--mode nth` rather than random).
//! Only the SIP port is matched: what is under test is the SIP layer's recovery (RFC 3261
//! §17: retransmitted requests, 2xx retransmitted until ACKed, §13.3.1.4), and RTP loss would
//! only blur the audio check without exercising any recovery of the dialer's.
//!
//! Three calls in a row must each set up, bridge and end: a bridged CDR for each, no call left
//! in `GET /calls`, SIPp's scenario complete, the rules' drop counters above zero both ways,
//! and the retransmissions visible: on the host's end of the link (which sees every datagram
//! the host sent, before the namespace drops one) and in SIPp's own trace.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use regex::Regex;
use scenario_tests::interop::audio::{self, Law};
use scenario_tests::interop::baresip::AnswerMode;
use scenario_tests::interop::call::{text, CallOptions, CallTest, CONTACT_HOST, TRUNK_PASSWORD};
use scenario_tests::interop::lossy_link::LossyLink;
use scenario_tests::interop::poll_until;
use scenario_tests::interop::ports::loopback;
use scenario_tests::interop::sipp::{Sipp, SippConfig};
use scenario_tests::interop::trace::{Direction, TracedMessage};
use scenario_tests::interop::wire::{self, Capture};

/// Calls placed one after the other.
const CALLS: usize = 3;
/// One datagram in this many is dropped, each way.
const DROP_EVERY: u32 = 10;
/// SIPp's SIP port inside its (fresh) namespace.
const SIP_PORT: u16 = 5060;
/// SIPp's RTP port inside its namespace.
const MEDIA_PORT: u16 = 16_000;

/// The transaction a request belongs to and its method: a second datagram with the same key
/// is a retransmission (RFC 3261 §17.1.1.3, §17.2.3).
fn request_key(message: &TracedMessage) -> Option<(String, String, String)> {
    let method = message.method()?.to_owned();
    let via = wire::split_header_list(message, "Via").into_iter().next()?;
    let branch = via
        .split(';')
        .find_map(|p| p.trim().strip_prefix("branch="))?
        .to_owned();
    Some((branch, message.header("CSeq")?.to_owned(), method))
}

/// How many requests in `messages` are repeats of an earlier one.
fn repeats<'a>(messages: impl Iterator<Item = &'a TracedMessage>) -> usize {
    let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
    for key in messages.filter_map(request_key) {
        *seen.entry(key).or_default() += 1;
    }
    seen.values().map(|n| n - 1).sum()
}

#[test]
fn calls_over_a_path_dropping_one_sip_datagram_in_ten_each_way_all_bridge_and_end_cleanly() {
    let link = LossyLink::create().unwrap_or_else(|e| panic!("{e}"));
    let test = CallTest::on(
        "call-lossy",
        &["sipp", "baresip", "sox", "tshark", "ip", "iptables"],
        IpAddr::V4(link.host_ip),
    )
    .expect("setup");
    let carrier_sip = SocketAddr::new(IpAddr::V4(link.peer_ip), SIP_PORT);
    link.drop_every(SIP_PORT, DROP_EVERY)
        .expect("iptables statistic rules in the namespace");
    let capture = Capture::start(
        "link",
        link.host_interface(),
        &format!("udp port {SIP_PORT}"),
        // Nothing listens there: marker datagrams cross the link and are dropped by the
        // namespace's stack.
        SocketAddr::new(IpAddr::V4(link.peer_ip), 9),
        test.dir.path(),
    )
    .expect("tshark on the host's veth");

    audio::g711_raw(&test.dir.join("carrier.al"), Law::A, 440, 40).expect("carrier tone");
    let mut config = SippConfig::new("carrier", "carrier_lossy.xml", carrier_sip)
        .key("user", "dialer")
        .key("password", TRUNK_PASSWORD)
        .key("realm", "carrier.test")
        .key("contact_ip", loopback(CONTACT_HOST));
    config.media = Some((IpAddr::V4(link.peer_ip), MEDIA_PORT));
    config.calls = 1 + CALLS as u32;
    config.timeout = Duration::from_secs(90);
    let carrier = Sipp::start_in_netns(config, test.dir.path(), link.namespace())
        .expect("SIPp in the lossy namespace");
    let dialer_config = test
        .config(carrier_sip, &CallOptions::default())
        .expect("config");
    let run = test.run(&dialer_config).expect("dialer run");
    let agent = test.agent(AnswerMode::Auto, &["PCMA"]).expect("agent");

    let established = Regex::new("Call established").expect("literal regex");
    let closed = Regex::new("terminated|Call closed|session closed").expect("literal regex");
    let cdr_line = Regex::new(r#"^\s*\{.*"outcome""#).expect("literal regex");
    let mut cdrs = Vec::new();
    for n in 1..=CALLS {
        let call = test.call(&format!("+1555123{n}")).expect("dialer call");
        agent
            .peer()
            .wait_for_lines(&established, n, Duration::from_secs(40))
            .unwrap_or_else(|e| panic!("call {n} reaches the agent: {e}"));
        poll_until(
            &format!("call {n}: 1.5 s heard by the agent"),
            Duration::from_secs(15),
            Duration::from_millis(50),
            || (agent.heard_seconds() >= 1.5).then_some(()),
        )
        .expect("audio flows to the agent");
        agent.hangup().expect("agent hangs up");
        agent
            .peer()
            .wait_for_lines(&closed, n, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("call {n} ends at the agent: {e}"));
        let status = call
            .wait_exit(Duration::from_secs(40))
            .unwrap_or_else(|e| panic!("call {n}: dialer call ends: {e}"));
        assert!(status.success(), "call {n} bridged: {}", call.tail());
        let lines = run
            .wait_for_lines(&cdr_line, n, Duration::from_secs(40))
            .unwrap_or_else(|e| panic!("call {n}: CDR: {e}"));
        let cdr: serde_json::Value =
            serde_json::from_str(lines[n - 1].trim()).expect("the CDR line is JSON");
        cdrs.push(cdr);
    }
    let client = test.client().expect("API client");
    let left = poll_until(
        "GET /calls empty",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || client.calls().ok().filter(|c| c.is_empty()).map(|_| ()),
    );
    let outcome = carrier
        .expect_success(Duration::from_secs(30))
        .expect("SIPp completes every call");
    let (towards_carrier, from_carrier) = link.dropped().expect("drop counters");
    let pcap = capture.stop().expect("capture stops");
    run.stop("TERM", Duration::from_secs(10))
        .expect("dialer run stops");
    agent.stop().expect("baresip stops");

    left.unwrap_or_else(|e| panic!("calls left in GET /calls: {e}"));
    for (n, cdr) in cdrs.iter().enumerate() {
        assert_eq!(text(cdr, "outcome"), "bridged", "call {}: {cdr}", n + 1);
        assert!(
            cdr["ended"].as_f64().is_some() && cdr["bridged"].as_f64().is_some(),
            "call {} ended after bridging: {cdr}",
            n + 1
        );
    }
    assert!(
        towards_carrier > 0 && from_carrier > 0,
        "the rules dropped {towards_carrier} datagrams towards SIPp and {from_carrier} from it"
    );
    // Every request the host sent is on its end of the link, dropped or not: a repeat is a
    // retransmission by the dialer.
    let on_link = wire::sip_messages(&pcap, SIP_PORT).expect("link capture");
    let dialer_repeats = repeats(
        on_link
            .iter()
            .filter(|m| m.message.direction == Direction::Received)
            .map(|m| &m.message),
    );
    // SIPp logs every request it got: a repeat is one whose answer the link dropped.
    let sipp_repeats = repeats(
        outcome
            .messages
            .iter()
            .filter(|m| m.direction == Direction::Received),
    );
    eprintln!(
        "dropped {towards_carrier} towards SIPp, {from_carrier} from it; the dialer \
         retransmitted {dialer_repeats} requests, SIPp received {sipp_repeats} twice"
    );
    assert!(
        dialer_repeats > 0,
        "no retransmission by the dialer on the link: {:?}",
        on_link.iter().map(|m| m.label()).collect::<Vec<_>>()
    );
    assert!(
        sipp_repeats > 0 || from_carrier == 0,
        "SIPp's answers were dropped, yet it never saw a request again: {:?}",
        outcome.ladder()
    );
}
