//! Capture files: whatever bytes `dialer pcap` is given, the capture reader (pcap, pcapng,
//! NetMon; link layers, IP, fragments, TCP reassembly, WebSocket, SCTP, PPPoE) and the RTP
//! stream analysis never panic, and the reader's documented order holds. `read_file` is
//! `std::fs::read` then `read_bytes`, so the bytes go to `read_bytes` directly. The same bytes
//! are also read as the SCTP packet of a PPPoE session frame, so that the fuzzer reaches the
//! SCTP chunk and PPPoE parsers without first having to find a valid pcap header.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use capture::rtp::{streams, MediaSwitch, RtpOptions};
use libfuzzer_sys::fuzz_target;

/// A pcap of one Ethernet frame: PPPoE session (RFC 2516), PPP IPv4, IPv4 protocol 132 (SCTP)
/// carrying `sctp`, twice (so retransmission and reassembly state is exercised).
fn sctp_in_pppoe(sctp: &[u8]) -> Vec<u8> {
    let sctp = &sctp[..sctp.len().min(60_000)];
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + sctp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 64, 132, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    ip.extend_from_slice(sctp);
    let mut frame = vec![
        2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0x64, 0x11, 0, 0, 1,
    ];
    frame.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    frame.extend_from_slice(&[0x00, 0x21]);
    frame.extend_from_slice(&ip);
    let mut pcap = vec![0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    pcap.extend_from_slice(&262_144u32.to_le_bytes());
    pcap.extend_from_slice(&1u32.to_le_bytes());
    for i in 0..2u32 {
        pcap.extend_from_slice(&i.to_le_bytes());
        pcap.extend_from_slice(&0u32.to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&frame);
    }
    pcap
}

fuzz_target!(|data: &[u8]| {
    let wrapped = capture::read_bytes(&sctp_in_pppoe(data)).expect("a valid pcap header");
    assert!(wrapped.packets.iter().all(|p| p.index <= 2));
    let Ok(capture) = capture::read_bytes(data) else {
        return;
    };
    assert!(
        capture.packets.windows(2).all(|w| w[0].index <= w[1].index),
        "packets are ordered by frame number"
    );
    // Wireshark's defaults, then dynamic types with clock rates (Opus, wideband events), a
    // telephone-event type that is also an audio type, as odd SDP could declare, and ports
    // moved to T.38 and back.
    let _ = streams(&capture, &RtpOptions::default());
    let switches = capture
        .packets
        .iter()
        .take(4)
        .enumerate()
        .map(|(i, p)| MediaSwitch {
            index: p.index,
            address: p.dst,
            udptl: i % 2 == 0,
        })
        .collect();
    let options = RtpOptions {
        clock_rates: BTreeMap::from([(96, 8000), (101, 8000), (111, 48000), (127, 0)]),
        telephone_event_types: BTreeSet::from([0, 96, 101, 127]),
        media_switches: switches,
    };
    for stream in streams(&capture, &options) {
        assert!(stream.packets > 0, "a stream has at least its first packet");
    }
});
