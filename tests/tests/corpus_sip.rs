//! Every SIP message in the real-world captures of `../shared/corpus/pcaps` parses with
//! sip-core: UDP datagrams, TCP streams deframed per direction with `parse_stream`, and
//! WebSocket messages (the dialer's `pcap::sip` extraction, which `dialer pcap ladder` uses).
//! The PROTOS robustness sample (c07-sip-r2.cap) is malformed on purpose: there each payload
//! sent to or from port 5060 is either parsed or rejected with a reason, and nothing panics.
//!
//! Run with `--nocapture` to see the counts per capture.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use capture::Transport;
use sip_core::message::Message;

const PROTOS: &str = "c07-sip-r2.cap";

/// Captures checked message by message; every other capture file in the corpus must be
/// listed here or be PROTOS (see `every_corpus_capture_is_checked`).
const CAPTURES: [&str; 17] = [
    "Asterisk_ZFONE_XLITE.pcap",
    "SIP_DTMF2.cap",
    "codec-negotiation.pcap",
    "dtmf_2833_1.pcap",
    "dtmf_2833_pound.pcap",
    "g711a.pcap",
    "invite-opus-bye.pcap",
    "ipip0.pcap",
    "rtp-protocol.pcap",
    "sip-488-codec-reject.pcapng",
    "sip-auth-failure.pcapng",
    "sip-rtp-g711.pcap",
    "sip_ipv4_tcp.pcap",
    "sip_ipv6_udp.pcap",
    "sip_tcp_websocket.pcap",
    "speech_8k_ulaw.pcap",
    "wireshark.pcap",
];

fn pcaps() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcaps");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("REQUIRE_CORPUS").as_deref() == Ok("1") {
        panic!("corpus not found at {} and REQUIRE_CORPUS=1", dir.display());
    }
    eprintln!("skipped: corpus not found at {}", dir.display());
    None
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::WebSocket => "WS",
        Transport::Sctp => "SCTP",
    }
}

/// Parses every SIP message of one capture; returns the count per transport, and fails with
/// each rejected message (packet, error and text) when sip-core rejects a real one.
fn check_capture(name: &str) -> Option<BTreeMap<&'static str, usize>> {
    let path = pcaps()?.join(name);
    let capture = capture::read_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut counts = BTreeMap::new();
    let mut failures = Vec::new();
    for m in dialer::pcap::sip::messages(&capture) {
        match &m.message {
            Ok(_) => *counts.entry(transport_name(m.transport)).or_insert(0) += 1,
            Err(e) => failures.push(format!(
                "packet {} ({} {} -> {}): {e}\n{}",
                m.index,
                transport_name(m.transport),
                m.src,
                m.dst,
                String::from_utf8_lossy(&m.bytes)
            )),
        }
    }
    println!("{name}: parsed {counts:?}");
    assert!(
        failures.is_empty(),
        "sip-core parser bug: {} real SIP message(s) in {name} rejected:\n{}",
        failures.len(),
        failures.join("\n----\n")
    );
    Some(counts)
}

fn assert_at_least(name: &str, found: usize, min: usize) {
    assert!(
        found >= min,
        "{name}: {found} SIP messages found, tshark sees {min}"
    );
}

macro_rules! corpus_capture_tests {
    ($($test:ident => $file:literal, $min:expr;)*) => {
        $(
            #[test]
            fn $test() {
                let Some(counts) = check_capture($file) else { return };
                assert_at_least($file, counts.values().sum(), $min);
            }
        )*
    };
}

// The minimum counts are tshark's SIP frame counts (`tshark -r F -Y sip`), so that a capture
// whose messages stop being found fails rather than passing empty.
corpus_capture_tests! {
    asterisk_zfone_xlite_messages_parse => "Asterisk_ZFONE_XLITE.pcap", 27;
    sip_dtmf2_messages_parse => "SIP_DTMF2.cap", 29;
    codec_negotiation_messages_parse => "codec-negotiation.pcap", 10;
    invite_opus_bye_messages_parse => "invite-opus-bye.pcap", 7;
    ipip0_tunnelled_messages_parse => "ipip0.pcap", 8;
    rtp_protocol_100rel_messages_parse => "rtp-protocol.pcap", 9;
    sip_488_codec_reject_messages_parse => "sip-488-codec-reject.pcapng", 13;
    sip_auth_failure_messages_parse => "sip-auth-failure.pcapng", 8;
    sip_rtp_g711_messages_parse => "sip-rtp-g711.pcap", 10;
    sip_ipv4_tcp_deframed_messages_parse => "sip_ipv4_tcp.pcap", 7;
    sip_ipv6_udp_messages_parse => "sip_ipv6_udp.pcap", 6;
    sip_tcp_websocket_messages_parse => "sip_tcp_websocket.pcap", 39;
    wireshark_pcap_messages_parse => "wireshark.pcap", 81;
    rtp_only_g711a_has_no_sip_to_reject => "g711a.pcap", 0;
    rtp_only_speech_8k_ulaw_has_no_sip_to_reject => "speech_8k_ulaw.pcap", 0;
    rtp_only_dtmf_2833_1_has_no_sip_to_reject => "dtmf_2833_1.pcap", 0;
    rtp_only_dtmf_2833_pound_has_no_sip_to_reject => "dtmf_2833_pound.pcap", 0;
}

#[test]
fn tcp_and_websocket_messages_are_deframed_not_skipped() {
    let Some(tcp) = check_capture("sip_ipv4_tcp.pcap") else {
        return;
    };
    assert_eq!(tcp.get("TCP"), Some(&7), "{tcp:?}");
    let Some(ws) = check_capture("sip_tcp_websocket.pcap") else {
        return;
    };
    assert!(ws.get("WS").is_some_and(|&n| n >= 10), "{ws:?}");
    assert!(ws.get("UDP").is_some_and(|&n| n >= 10), "{ws:?}");
}

#[test]
fn every_corpus_capture_is_checked() {
    let Some(dir) = pcaps() else { return };
    for entry in std::fs::read_dir(&dir).expect("the corpus pcaps directory is readable") {
        let name = entry.expect("directory entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            continue;
        }
        assert!(
            name == PROTOS || CAPTURES.contains(&name.as_ref()),
            "{name} is in the corpus but not checked by corpus_sip.rs"
        );
    }
}

#[test]
fn protos_messages_are_parsed_or_rejected_with_a_reason_and_never_panic() {
    let Some(dir) = pcaps() else { return };
    let capture = capture::read_file(&dir.join(PROTOS)).unwrap_or_else(|e| panic!("{e}"));
    let (mut parsed, mut rejected, mut panics) = (0, 0, Vec::new());
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let candidates: Vec<_> = capture
        .packets
        .iter()
        .filter(|p| p.transport == Transport::Udp && (p.src.port() == 5060 || p.dst.port() == 5060))
        .collect();
    for p in &candidates {
        match catch_unwind(AssertUnwindSafe(|| Message::parse(&p.payload))) {
            Ok(Ok(_)) => parsed += 1,
            Ok(Err(e)) => {
                rejected += 1;
                assert!(e.line >= 1 && e.column >= 1, "packet {}: {e:?}", p.index);
                let reason = e.to_string();
                let what = reason.split_once(": ").map_or("", |(_, w)| w);
                assert!(
                    !what.is_empty(),
                    "packet {}: rejected without a reason",
                    p.index
                );
                let kind = what.split(':').next().unwrap_or(what).to_string();
                *reasons.entry(kind).or_insert(0) += 1;
            }
            Err(_) => panics.push(p.index),
        }
    }
    println!(
        "{PROTOS}: {} payloads on port 5060: {parsed} parsed, {rejected} rejected; reasons {reasons:#?}",
        candidates.len()
    );
    assert!(
        panics.is_empty(),
        "sip-core panicked on PROTOS packets {panics:?}"
    );
    assert_eq!(parsed + rejected, candidates.len());
    // The suite's first message is its valid reference INVITE; the rest are mutations.
    assert!(parsed >= 1, "the PROTOS reference INVITE must parse");
    assert!(
        rejected >= 20,
        "PROTOS mutations must be rejected, {rejected} were"
    );
    // The same file through the ladder's extraction: every SIP-looking payload is parsed or
    // rejected, none lost.
    let found = dialer::pcap::sip::messages(&capture);
    assert!(found.iter().all(|m| m.transport == Transport::Udp));
    assert!(found.len() <= candidates.len());
}
