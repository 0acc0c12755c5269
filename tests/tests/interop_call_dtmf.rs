//! RFC 4733 DTMF through the bridge with a payload type per leg (issue 5, proof e).
//!
//! The carrier (SIPp) answers the dialer's offer with telephone-event on payload type 96 and
//! sends key presses on 96 (a pcap the test writes, played with `play_pcap_audio`); the agent
//! (baresip) negotiates telephone-event on 101. baresip 1.0 has no setting for its
//! telephone-event number and, as answerer, takes the offerer's (the dialer offers 101), so the
//! carrier is the leg that differs. A tshark tap on the agent's RTP ports must show the same
//! keys arriving as telephone-events on 101, never on 96.

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::time::Duration;

use scenario_tests::interop::baresip::{AnswerMode, Baresip};
use scenario_tests::interop::call::{carrier, text, wait_cdr, CallOptions, CallTest};
use scenario_tests::interop::netns::require_root;
use scenario_tests::interop::poll_until;
use scenario_tests::interop::ports::{free_baresip_port, free_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::rtp_pcap::{dtmf_event, RtpStream};
use scenario_tests::interop::tshark::{self, EventPacket, Tap};

/// What the carrier's customer presses.
const KEYS: &str = "19#";
/// The carrier's telephone-event payload type (its SDP answer).
const CARRIER_EVENT_PT: u8 = 96;
/// The agent's (the dialer's offer, which baresip takes).
const AGENT_EVENT_PT: u8 = 101;
/// Packets per key press before its end packets: 100 ms.
const KEY_STEPS: u32 = 5;
/// A-law silence.
const ALAW_SILENCE: u8 = 0xd5;

#[test]
fn carrier_dtmf_on_pt_96_reaches_the_agent_as_telephone_events_on_its_pt_101() {
    require_root("plays RTP with SIPp's play_pcap_audio, which sends from a raw socket")
        .unwrap_or_else(|e| panic!("{e}"));
    let test = CallTest::new("call-dtmf", &["sipp", "baresip", "sox", "tshark"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");

    // 3 s of audio first: the stream starts at the ACK, while the agent is still being
    // called, and the relay forwards to the agent only once it answered.
    let mut stream = RtpStream::new(0x5eed_0001, 1000, 160_000);
    stream.audio(8, ALAW_SILENCE, 150);
    for key in KEYS.chars() {
        let event = dtmf_event(key).expect("a DTMF key");
        stream
            .key(CARRIER_EVENT_PT, event, KEY_STEPS)
            .audio(8, ALAW_SILENCE, 10);
    }
    // 3 s of audio after the keys, so that 5 s heard by the agent (which answered after the
    // ACK) means every key went by.
    stream.audio(8, ALAW_SILENCE, 150);
    stream
        .write_pcap(
            &test.dir.join("carrier_dtmf.pcap"),
            SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, media_port),
            // SIPp sends to the address in the dialer's offer, whatever is written here.
            SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9),
        )
        .expect("DTMF pcap written");

    let agent_rtp = free_udp_range(LOOPBACK, 20).expect("agent RTP range");
    let agent_ports = agent_rtp..agent_rtp + 20;
    // What the carrier sends (to the dialer) and what the agent receives.
    let tap = Tap::start(
        "rtp",
        &format!(
            "udp and dst host 127.0.0.1 and (src port {media_port} or dst portrange {}-{})",
            agent_ports.start,
            agent_ports.end - 1
        ),
        test.dir.path(),
    )
    .expect("tshark taps the carrier's and the agent's RTP");
    let carrier = carrier(&test.dir, "carrier_dtmf.xml", media_port).expect("carrier");
    let config = test
        .config(carrier.addr(), &CallOptions::default())
        .expect("config");
    let run = test.run(&config).expect("dialer run");
    let agent_config = test
        .agent_config(
            AnswerMode::Auto,
            &["PCMA"],
            std::net::SocketAddr::new(LOOPBACK, free_baresip_port(LOOPBACK).expect("agent SIP")),
            agent_rtp,
            std::net::SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("ctrl")),
        )
        .expect("agent config");
    let agent = Baresip::start(agent_config, test.dir.path()).expect("baresip starts");
    agent
        .wait_registered(Duration::from_secs(10))
        .expect("agent registers");

    let call = test.call("+15551234").expect("dialer call");
    agent
        .wait_established(Duration::from_secs(15))
        .expect("the agent answers");
    // The keys are pressed 3.0-3.9 s after the carrier's ACK and the agent answered after it,
    // so once it heard 5 s (of the 6.9 s stream) they have all gone by.
    poll_until(
        "5 s of the call at the agent",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || (agent.heard_seconds() >= 5.0).then_some(()),
    )
    .expect("the call runs past the key presses");
    agent.hangup().expect("agent hangs up");
    let status = call
        .wait_exit(Duration::from_secs(15))
        .expect("dialer call ends");
    carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier scenario completes");
    let cdr = wait_cdr(&run, Duration::from_secs(5)).expect("CDR");
    let pcap = tap.stop().expect("capture stops");
    run.stop("TERM", Duration::from_secs(10))
        .expect("dialer run stops");

    assert!(status.success(), "bridged call exits 0:\n{}", call.tail());
    assert_eq!(text(&cdr, "outcome"), "bridged", "CDR: {cdr}");

    let pressed: Vec<u8> = KEYS.chars().filter_map(dtmf_event).collect();
    let sent: Vec<_> = tshark::rtp_events(&pcap, CARRIER_EVENT_PT)
        .expect("rtpevent fields")
        .into_iter()
        .filter(|e| !agent_ports.contains(&e.dst.port()))
        .collect();
    assert_eq!(
        keys_of(&sent),
        pressed,
        "the carrier sent {KEYS:?} on PT {CARRIER_EVENT_PT}: {sent:?}"
    );
    let events: Vec<_> = tshark::rtp_events(&pcap, AGENT_EVENT_PT)
        .expect("rtpevent fields")
        .into_iter()
        .filter(|e| agent_ports.contains(&e.dst.port()))
        .collect();
    let wrong: BTreeSet<u8> = events
        .iter()
        .map(|e| e.payload_type)
        .filter(|&pt| pt != AGENT_EVENT_PT)
        .collect();
    assert!(wrong.is_empty(), "events on payload types {wrong:?}");
    let agent_port = events
        .first()
        .map(|e| e.dst.port())
        .unwrap_or_else(|| panic!("no telephone-event reached the agent; CDR {cdr}"));
    let payload_types: BTreeSet<u8> = tshark::rtp_payload_types(&pcap, agent_port)
        .expect("agent RTP decoded")
        .into_iter()
        .collect();
    assert!(
        !payload_types.contains(&CARRIER_EVENT_PT),
        "the carrier's PT {CARRIER_EVENT_PT} leaked to the agent: {payload_types:?}"
    );
    assert!(
        payload_types.contains(&8) && payload_types.contains(&AGENT_EVENT_PT),
        "audio and events reach the agent: {payload_types:?}"
    );

    assert_eq!(
        keys_of(&events),
        pressed,
        "the agent got keys {KEYS:?} in order: {events:?}"
    );
    for (timestamp, event) in starts(&events) {
        let ends: Vec<_> = events
            .iter()
            .filter(|e| e.timestamp == timestamp && e.end)
            .collect();
        assert!(
            !ends.is_empty(),
            "event {event} has no end packet: {events:?}"
        );
        assert!(
            ends.iter().all(|e| e.duration == KEY_STEPS * 160),
            "event {event} ends with its full {} samples: {ends:?}",
            KEY_STEPS * 160
        );
    }
}

/// Each event's start timestamp and code, in order (RFC 4733 §2.5.1: every packet of one
/// event carries its start timestamp); a timestamp whose packets disagree on the code fails.
fn starts(events: &[EventPacket]) -> Vec<(u32, u8)> {
    let mut keys: Vec<(u32, u8)> = Vec::new();
    for e in events {
        match keys.last() {
            Some(&(timestamp, event)) if timestamp == e.timestamp => assert_eq!(
                event, e.event,
                "one event code per event timestamp: {events:?}"
            ),
            _ => keys.push((e.timestamp, e.event)),
        }
    }
    keys
}

/// The keys pressed, in order.
fn keys_of(events: &[EventPacket]) -> Vec<u8> {
    starts(events).into_iter().map(|(_, event)| event).collect()
}
