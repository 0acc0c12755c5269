//! Reading the shared corpus of real captures, checked against tshark where it is installed.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use capture::{read_bytes, read_file, CaptureError, FormatError, Transport, WarningKind};

type Tuple = (SocketAddr, SocketAddr);

/// tshark's view of one file: UDP frame count, UDP tuples, tuples of TCP frames with data.
struct TsharkView {
    udp_frames: usize,
    udp: BTreeSet<Tuple>,
    tcp_with_data: BTreeSet<Tuple>,
}

fn tshark_view(file: &Path) -> TsharkView {
    // ICMP errors quote a UDP/TCP header that tshark decodes; they carry no datagram.
    let text = common::tshark(
        file,
        &[
            "-Y",
            "!icmp && !icmpv6",
            "-T",
            "fields",
            "-E",
            "occurrence=l",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.src",
            "-e",
            "ipv6.dst",
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.len",
        ],
    );
    let mut view = TsharkView {
        udp_frames: 0,
        udp: BTreeSet::new(),
        tcp_with_data: BTreeSet::new(),
    };
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        // The innermost header wins; these captures have no IPv4-in-IPv6.
        let (src, dst) = if !get(2).is_empty() {
            (get(2), get(3))
        } else {
            (get(0), get(1))
        };
        let (Ok(src), Ok(dst)) = (src.parse::<IpAddr>(), dst.parse::<IpAddr>()) else {
            continue;
        };
        let port = |s: &str| s.parse::<u16>().ok();
        if let (Some(sp), Some(dp)) = (port(get(4)), port(get(5))) {
            view.udp_frames += 1;
            view.udp
                .insert((SocketAddr::new(src, sp), SocketAddr::new(dst, dp)));
        }
        if let (Some(sp), Some(dp)) = (port(get(6)), port(get(7))) {
            if get(8).parse::<usize>().is_ok_and(|l| l > 0) {
                view.tcp_with_data
                    .insert((SocketAddr::new(src, sp), SocketAddr::new(dst, dp)));
            }
        }
    }
    view
}

#[test]
fn udp_count_and_tuples_match_tshark_on_every_corpus_file() {
    let Some(dir) = common::pcaps_dir() else {
        return;
    };
    let with_tshark = common::tshark_available();
    for file in common::corpus_files(&dir) {
        let capture = read_file(&file).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !capture.packets.is_empty(),
            "{}: no packets read",
            file.display()
        );
        if !with_tshark {
            continue;
        }
        let ours_udp: Vec<Tuple> = capture
            .packets
            .iter()
            .filter(|p| p.transport == Transport::Udp)
            .map(|p| (p.src, p.dst))
            .collect();
        let ours_tcp: BTreeSet<Tuple> = capture
            .packets
            .iter()
            .filter(|p| p.transport != Transport::Udp)
            .map(|p| (p.src, p.dst))
            .collect();
        let theirs = tshark_view(&file);
        let name = file.display();
        assert_eq!(
            ours_udp.len(),
            theirs.udp_frames,
            "{name}: UDP packet count"
        );
        assert_eq!(
            ours_udp.into_iter().collect::<BTreeSet<_>>(),
            theirs.udp,
            "{name}: UDP 5-tuples"
        );
        assert_eq!(ours_tcp, theirs.tcp_with_data, "{name}: TCP 5-tuples");
    }
}

#[test]
fn udp_frame_numbers_match_tshark() {
    let Some(dir) = common::pcaps_dir() else {
        return;
    };
    if !common::tshark_available() {
        return;
    }
    for name in [
        "c07-sip-r2.cap",
        "sip-488-codec-reject.pcapng",
        "speech_8k_ulaw.pcap",
    ] {
        let file = dir.join(name);
        let capture = read_file(&file).unwrap();
        let ours: Vec<String> = capture
            .packets
            .iter()
            .filter(|p| p.transport == Transport::Udp)
            .map(|p| {
                format!(
                    "{}\t{}.{:09}",
                    p.index,
                    p.time.as_secs(),
                    p.time.subsec_nanos()
                )
            })
            .collect();
        let text = common::tshark(
            &file,
            &[
                "-Y",
                "udp",
                "-T",
                "fields",
                "-e",
                "frame.number",
                "-e",
                "frame.time_epoch",
            ],
        );
        let theirs: Vec<&str> = text.lines().collect();
        assert_eq!(ours, theirs, "{name}: frame numbers and times");
    }
}

fn corpus_file(name: &str) -> Option<capture::Capture> {
    let dir = common::pcaps_dir()?;
    Some(read_file(&dir.join(name)).unwrap_or_else(|e| panic!("{e}")))
}

fn starts_with_sip_start_line(payload: &[u8]) -> bool {
    let line_end = payload
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(payload.len());
    let line = String::from_utf8_lossy(&payload[..line_end]);
    line.starts_with("SIP/2.0 ") || line.ends_with(" SIP/2.0")
}

#[test]
fn ipip0_yields_the_sip_packets() {
    let Some(capture) = corpus_file("ipip0.pcap") else {
        return;
    };
    let udp: Vec<_> = capture
        .packets
        .iter()
        .filter(|p| p.transport == Transport::Udp)
        .collect();
    assert_eq!(udp.len(), 8);
    assert!(udp.iter().all(|p| starts_with_sip_start_line(&p.payload)));
    assert!(udp[0].payload.starts_with(b"INVITE sip:"));
    assert_eq!(udp[0].src, "179.43.150.26:33489".parse().unwrap());
}

#[test]
fn sip_ipv6_udp_yields_ipv6_addresses() {
    let Some(capture) = corpus_file("sip_ipv6_udp.pcap") else {
        return;
    };
    assert_eq!(capture.packets.len(), 6);
    for p in &capture.packets {
        assert!(p.src.is_ipv6() && p.dst.is_ipv6(), "{:?}", p.src);
        assert!(starts_with_sip_start_line(&p.payload));
    }
}

/// Splits a byte stream into SIP messages using Content-Length (RFC 3261 §18.3).
fn sip_messages(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&rest[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                matches!(n.trim(), "content-length" | "l").then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let total = end + 4 + len;
        assert!(
            total <= rest.len(),
            "message body cut short in reassembled stream"
        );
        out.push(rest[..total].to_vec());
        rest = &rest[total..];
    }
    out
}

#[test]
fn sip_over_tcp_is_reassembled_into_complete_invites() {
    let Some(capture) = corpus_file("sip_ipv4_tcp.pcap") else {
        return;
    };
    let mut directions: BTreeSet<Tuple> = BTreeSet::new();
    for p in capture
        .packets
        .iter()
        .filter(|p| p.transport == Transport::Tcp)
    {
        directions.insert((p.src, p.dst));
    }
    let mut all = Vec::new();
    for (src, dst) in directions {
        let stream: Vec<u8> = capture
            .packets
            .iter()
            .filter(|p| p.transport == Transport::Tcp && p.src == src && p.dst == dst)
            .flat_map(|p| p.payload.iter().copied())
            .collect();
        all.extend(sip_messages(&stream));
    }
    let invites: Vec<_> = all
        .iter()
        .filter(|m| m.starts_with(b"INVITE sip:"))
        .collect();
    assert!(!invites.is_empty(), "no INVITE in the reassembled streams");
    for invite in invites {
        let text = String::from_utf8_lossy(invite);
        assert!(
            text.contains("\r\n\r\nv=0"),
            "INVITE without its SDP body: {text}"
        );
    }
    assert!(all.iter().all(|m| starts_with_sip_start_line(m)));
}

#[test]
fn websocket_messages_start_with_sip_start_lines() {
    let Some(capture) = corpus_file("sip_tcp_websocket.pcap") else {
        return;
    };
    let ws: Vec<_> = capture
        .packets
        .iter()
        .filter(|p| p.transport == Transport::WebSocket)
        .collect();
    assert!(!ws.is_empty(), "no WebSocket messages");
    for m in &ws {
        assert!(
            starts_with_sip_start_line(&m.payload),
            "frame {}: {:?}",
            m.index,
            String::from_utf8_lossy(&m.payload[..m.payload.len().min(60)])
        );
    }
    let handshake = capture
        .packets
        .iter()
        .find(|p| p.transport == Transport::Tcp)
        .expect("handshake emitted as TCP");
    assert!(handshake.payload.starts_with(b"GET "));
    assert!(capture.warnings.is_empty(), "{:?}", capture.warnings);
    if common::tshark_available() {
        let dir = common::pcaps_dir().expect("corpus present above");
        let text = common::tshark(
            &dir.join("sip_tcp_websocket.pcap"),
            &[
                "-Y",
                "sip && websocket",
                "-T",
                "fields",
                "-e",
                "frame.number",
            ],
        );
        let theirs: Vec<usize> = text.lines().map(|l| l.parse().unwrap()).collect();
        let ours: Vec<usize> = ws.iter().map(|p| p.index).collect();
        assert_eq!(ours, theirs, "frames completing a WebSocket SIP message");
    }
}

/// Offset of the start of record `n` (1-based) in a classic pcap file.
fn pcap_record_offset(bytes: &[u8], n: usize) -> usize {
    let little = bytes[..4] == [0xD4, 0xC3, 0xB2, 0xA1];
    let mut off = 24;
    for _ in 1..n {
        let b: [u8; 4] = bytes[off + 8..off + 12].try_into().unwrap();
        let incl = if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        };
        off += 16 + incl as usize;
    }
    off
}

#[test]
fn truncated_capture_warns_with_packet_number_and_keeps_earlier_packets() {
    let Some(dir) = common::pcaps_dir() else {
        return;
    };
    let bytes = std::fs::read(dir.join("sip-rtp-g711.pcap")).unwrap();
    let whole = read_bytes(&bytes).unwrap();
    let cut_record = 100;
    let cut = pcap_record_offset(&bytes, cut_record) + 20; // inside record 100's data
    let capture = read_bytes(&bytes[..cut]).unwrap();
    let warning = capture
        .warnings
        .iter()
        .find(|w| w.kind == WarningKind::Truncated)
        .expect("a truncation warning");
    assert_eq!(warning.packet, cut_record);
    assert!(warning.to_string().starts_with("packet 100: "), "{warning}");
    let expected: Vec<_> = whole
        .packets
        .iter()
        .filter(|p| p.index < cut_record)
        .cloned()
        .collect();
    assert_eq!(capture.packets, expected);
}

#[test]
fn garbage_bytes_are_a_clear_error() {
    let err = read_bytes(b"this is not a capture file at all").unwrap_err();
    assert!(matches!(
        err,
        CaptureError::Format {
            reason: FormatError::UnknownMagic(_),
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("not a pcap, pcapng or NetMon capture"),
        "{err}"
    );
    assert!(matches!(
        read_bytes(&[0xD4, 0xC3]).unwrap_err(),
        CaptureError::Format {
            reason: FormatError::TooShort(2),
            ..
        }
    ));
}

#[test]
fn unreadable_file_error_names_the_path() {
    let dir = std::env::temp_dir().join(format!("capture-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pcap");
    std::fs::write(&garbage, vec![0x42; 100]).unwrap();
    let err = read_file(&garbage).unwrap_err();
    assert!(err.to_string().contains("garbage.pcap"), "{err}");
    let missing = dir.join("missing.pcap");
    let err = read_file(&missing).unwrap_err();
    assert!(matches!(err, CaptureError::Io { .. }));
    assert!(err.to_string().contains("missing.pcap"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
