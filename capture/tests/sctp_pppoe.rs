//! SIP over SCTP and frames inside PPPoE sessions, built in memory; where tshark is installed,
//! the frames we return payloads for are the frames tshark dissects as SIP / UDP.

mod common;

use std::net::SocketAddr;

use capture::{read_bytes, Transport, WarningKind};
use etherparse::PacketBuilder;

const SIP: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/SCTP 10.0.0.1;branch=z9hG4bK1\r\n\
Call-ID: x\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n";

fn ethernet(ether_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A little-endian microsecond pcap, one frame per second.
fn pcap(link_type: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = 0xA1B2_C3D4u32.to_le_bytes().to_vec();
    out.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&link_type.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// IPv4 10.0.0.1 -> 10.0.0.2 carrying `protocol`.
fn ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    h.extend_from_slice(payload);
    h
}

/// An RFC 9260 §3.3.1 DATA chunk (stream 0, PPID as given), padded to 4 bytes.
fn data_chunk(tsn: u32, flags: u8, ppid: u32, user: &[u8]) -> Vec<u8> {
    let mut c = vec![0, flags];
    c.extend_from_slice(&((16 + user.len()) as u16).to_be_bytes());
    c.extend_from_slice(&tsn.to_be_bytes());
    c.extend_from_slice(&[0, 0, 0, 0]);
    c.extend_from_slice(&ppid.to_be_bytes());
    c.extend_from_slice(user);
    c.resize(c.len().next_multiple_of(4), 0);
    c
}

fn sctp(ports: (u16, u16), tag: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
    ethernet(0x0800, &ipv4(132, &sctp_packet(ports, tag, chunks)))
}

fn sctp_packet(ports: (u16, u16), tag: u32, chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut p = ports.0.to_be_bytes().to_vec();
    p.extend_from_slice(&ports.1.to_be_bytes());
    p.extend_from_slice(&tag.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    for c in chunks {
        p.extend_from_slice(c);
    }
    p
}

/// Writes `bytes` to a file of its own under the temporary directory.
fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("capture-{}-{name}.pcap", std::process::id()));
    std::fs::write(&path, bytes).expect("temporary directory is writable");
    path
}

/// Frame numbers tshark shows for `filter`.
fn tshark_frames(file: &std::path::Path, filter: &str) -> Vec<usize> {
    common::tshark(file, &["-Y", filter, "-T", "fields", "-e", "frame.number"])
        .lines()
        .map(|l| l.trim().parse().expect("a frame number"))
        .collect()
}

/// Frames 1-4: SIP on port 5060 / PPID 39 / a random port and PPID 0 (tshark's heuristic), two
/// bundled; 5-6 retransmissions (same TSN, same ports and tag); 7 the same TSN in the other
/// direction; 8 not SIP; 9-11 one message in three fragments, arriving out of order.
fn sctp_capture() -> Vec<u8> {
    let whole = |tsn, ppid| data_chunk(tsn, 3, ppid, SIP);
    let frames = vec![
        sctp((5060, 5060), 1, &[whole(1, 0)]),
        sctp((40000, 40001), 7, &[whole(1, 39)]),
        sctp((40000, 40001), 7, &[whole(2, 0), whole(3, 39)]),
        sctp((40000, 40001), 7, &[whole(4, 0)]),
        sctp((40000, 40001), 7, &[whole(3, 0)]),
        sctp((5060, 5060), 1, &[whole(1, 0)]),
        sctp((40001, 40000), 7, &[whole(1, 0)]),
        sctp((40000, 40001), 7, &[data_chunk(5, 3, 0, b"hello")]),
        sctp((40000, 40001), 7, &[data_chunk(10, 2, 0, &SIP[..50])]),
        sctp((40000, 40001), 7, &[data_chunk(12, 1, 0, &SIP[80..])]),
        sctp((40000, 40001), 7, &[data_chunk(11, 0, 0, &SIP[50..80])]),
    ];
    pcap(1, &frames)
}

#[test]
fn sip_over_sctp_is_one_packet_per_user_message_without_retransmissions() {
    let bytes = sctp_capture();
    let c = read_bytes(&bytes).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.packets.iter().all(|p| p.transport == Transport::Sctp));
    let sip: Vec<usize> = c
        .packets
        .iter()
        .filter(|p| p.payload == SIP)
        .map(|p| p.index)
        .collect();
    assert_eq!(sip, [1, 2, 3, 3, 4, 7, 11]);
    let src: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    assert_eq!((c.packets[1].src, c.packets[1].dst.port()), (src, 40001));
    if common::tshark_available() {
        let file = temp_file("sctp", &bytes);
        let mut ours = sip.clone();
        ours.dedup();
        assert_eq!(tshark_frames(&file, "sip"), ours);
        std::fs::remove_file(file).ok();
    }
}

#[test]
fn malformed_sctp_is_a_warning_and_the_chunks_before_it_are_kept() {
    let mut bad_length = sctp_packet((5060, 5060), 1, &[data_chunk(1, 3, 0, SIP)]);
    bad_length.extend_from_slice(&[0, 3, 0, 200]); // a chunk claiming 200 bytes
    let bad_length = ethernet(0x0800, &ipv4(132, &bad_length));
    let cut_header = ethernet(0x0800, &ipv4(132, &[0x13, 0xC4, 0x13]));
    let c = read_bytes(&pcap(1, &[bad_length, cut_header])).unwrap();
    assert_eq!(c.packets.len(), 1);
    let kinds: Vec<_> = c.warnings.iter().map(|w| (w.packet, w.kind)).collect();
    assert_eq!(
        kinds,
        [
            (1, WarningKind::MalformedPacket),
            (2, WarningKind::MalformedPacket)
        ]
    );
    for frame in [
        sctp((1, 2), 3, &[data_chunk(9, 3, 0, SIP)]),
        pppoe(0x0021, &udp4()),
    ] {
        let bytes = pcap(1, &[frame]);
        for cut in 0..bytes.len() {
            let _ = read_bytes(&bytes[..cut]);
        }
    }
}

fn udp4() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5060, 5070)
        .write(&mut out, SIP)
        .unwrap();
    out
}

fn udp6() -> Vec<u8> {
    let a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut out = Vec::new();
    PacketBuilder::ipv6(a, a, 64)
        .udp(5060, 5070)
        .write(&mut out, SIP)
        .unwrap();
    out
}

/// An RFC 2516 §4 session frame, session 0x1234, with a two-byte PPP protocol field.
fn pppoe(protocol: u16, ppp_payload: &[u8]) -> Vec<u8> {
    let mut ppp = protocol.to_be_bytes().to_vec();
    ppp.extend_from_slice(ppp_payload);
    pppoe_raw(&ppp)
}

fn pppoe_raw(ppp: &[u8]) -> Vec<u8> {
    let mut f = vec![0x11, 0, 0x12, 0x34];
    f.extend_from_slice(&(ppp.len() as u16).to_be_bytes());
    f.extend_from_slice(ppp);
    ethernet(0x8864, &f)
}

#[test]
fn pppoe_session_frames_carry_ipv4_and_ipv6_and_control_frames_are_skipped() {
    let mut compressed = vec![0x21];
    compressed.extend_from_slice(&udp4());
    let mut padded = pppoe(0x0021, &udp4());
    padded.extend_from_slice(&[0xEE; 6]); // Ethernet padding past the PPPoE length
    let lcp = pppoe(0xC021, &[1, 1, 0, 4]);
    let discovery = ethernet(0x8863, &[0x11, 0x09, 0, 0, 0, 0]);
    let frames = vec![
        pppoe(0x0021, &udp4()),
        pppoe(0x0057, &udp6()),
        pppoe_raw(&compressed),
        padded,
        lcp,
        discovery,
    ];
    let bytes = pcap(1, &frames);
    let c = read_bytes(&bytes).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let frames_read: Vec<usize> = c.packets.iter().map(|p| p.index).collect();
    assert_eq!(frames_read, [1, 2, 3, 4]);
    assert!(c.packets.iter().all(|p| p.payload == SIP));
    assert!(c.packets[1].src.is_ipv6());
    if common::tshark_available() {
        let file = temp_file("pppoe", &bytes);
        assert_eq!(tshark_frames(&file, "udp"), frames_read);
        std::fs::remove_file(file).ok();
    }
}

#[test]
fn malformed_pppoe_is_a_warning() {
    let long = {
        let mut f = vec![0x11, 0, 0, 1, 0x05, 0xDC, 0, 0x21]; // length 1500
        f.extend_from_slice(&udp4());
        ethernet(0x8864, &f)
    };
    let wrong_version = ethernet(0x8864, &[0x22, 0, 0, 1, 0, 2, 0, 0x21]);
    let cut = ethernet(0x8864, &[0x11, 0]);
    let c = read_bytes(&pcap(1, &[long, wrong_version, cut])).unwrap();
    assert!(c.packets.is_empty());
    assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
    assert!(c
        .warnings
        .iter()
        .all(|w| w.kind == WarningKind::MalformedPacket));
}
