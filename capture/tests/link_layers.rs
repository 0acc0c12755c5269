//! Captures built in memory: every link layer, tunnel, fragmentation and container variant.

use std::net::SocketAddr;
use std::time::Duration;

use capture::{read_bytes, Transport, WarningKind};
use etherparse::PacketBuilder;

const SIP: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\n\r\n";

/// An IPv4 + UDP packet 10.0.0.1:5060 -> 10.0.0.2:5070 carrying `payload`.
fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(5060, 5070)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// An IPv6 + UDP packet [2001:db8::1]:5060 -> [2001:db8::2]:5070.
fn ipv6_udp(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let a = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut b = a;
    b[15] = 2;
    PacketBuilder::ipv6(a, b, 64)
        .udp(5060, 5070)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A minimal IPv4 header (checksum left zero: the reader does not verify it).
fn ipv4_header(protocol: u8, payload_len: usize, id: u16, frag: u16) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, protocol, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
    h
}

fn ethernet(ether_type: u16, vlans: &[(u16, u16)], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for (tpid, vid) in vlans {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ether_type.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A classic pcap, little endian unless `big`, microseconds unless `nanos`.
fn pcap(link_type: u32, frames: &[Vec<u8>], big: bool, nanos: bool) -> Vec<u8> {
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&w32(if nanos { 0xA1B2_3C4D } else { 0xA1B2_C3D4 }));
    out.extend_from_slice(&w16(2));
    out.extend_from_slice(&w16(4));
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&w32(262_144));
    out.extend_from_slice(&w32(link_type));
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&w32(1_700_000_000 + i as u32));
        out.extend_from_slice(&w32(if nanos { 123_456_789 } else { 123_456 }));
        out.extend_from_slice(&w32(f.len() as u32));
        out.extend_from_slice(&w32(f.len() as u32));
        out.extend_from_slice(f);
    }
    out
}

fn only_udp(bytes: &[u8]) -> capture::Packet {
    let c = read_bytes(bytes).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.packets.len(), 1, "{:?}", c.packets);
    let p = c.packets.into_iter().next().unwrap();
    assert_eq!(p.transport, Transport::Udp);
    p
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn ethernet_with_802_1q_and_qinq_tags_reaches_udp() {
    for vlans in [
        vec![(0x8100, 7)],
        vec![(0x88A8, 100), (0x8100, 7)],
        vec![(0x9100, 1), (0x8100, 2)],
    ] {
        let frame = ethernet(0x0800, &vlans, &ipv4_udp(SIP));
        let p = only_udp(&pcap(1, &[frame], false, false));
        assert_eq!(p.payload, SIP);
        assert_eq!(
            (p.src, p.dst),
            (addr("10.0.0.1:5060"), addr("10.0.0.2:5070"))
        );
    }
}

#[test]
fn linux_cooked_sll_and_sll2_reach_udp() {
    let ip = ipv4_udp(SIP);
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    assert_eq!(only_udp(&pcap(113, &[sll], false, false)).payload, SIP);
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
    ];
    sll2.extend_from_slice(&ip);
    assert_eq!(only_udp(&pcap(276, &[sll2], false, false)).payload, SIP);
}

#[test]
fn raw_ip_link_types_and_ipv6_reach_udp() {
    for lt in [101, 12, 14, 228] {
        assert_eq!(
            only_udp(&pcap(lt, &[ipv4_udp(SIP)], false, false)).payload,
            SIP
        );
    }
    let p = only_udp(&pcap(229, &[ipv6_udp(SIP)], false, false));
    assert_eq!(p.src, addr("[2001:db8::1]:5060"));
}

#[test]
fn bsd_loopback_in_either_byte_order_reaches_udp() {
    let mut le = 2u32.to_le_bytes().to_vec();
    le.extend_from_slice(&ipv4_udp(SIP));
    let mut be6 = 30u32.to_be_bytes().to_vec(); // macOS AF_INET6, LINKTYPE_LOOP
    be6.extend_from_slice(&ipv6_udp(SIP));
    assert_eq!(only_udp(&pcap(0, &[le], false, false)).payload, SIP);
    assert!(only_udp(&pcap(108, &[be6], false, false)).src.is_ipv6());
}

#[test]
fn ipv4_and_ipv6_inside_ipv4_yield_the_inner_addresses() {
    let inner4 = ipv4_udp(SIP);
    let mut outer = ipv4_header(4, inner4.len(), 1, 0);
    outer.extend_from_slice(&inner4);
    let p = only_udp(&pcap(101, &[outer], false, false));
    assert_eq!(p.src, addr("10.0.0.1:5060"));
    let inner6 = ipv6_udp(SIP);
    let mut outer6 = ipv4_header(41, inner6.len(), 2, 0);
    outer6.extend_from_slice(&inner6);
    assert_eq!(
        only_udp(&pcap(101, &[outer6], false, false)).src,
        addr("[2001:db8::1]:5060")
    );
}

#[test]
fn gre_tunnel_with_key_yields_inner_packet() {
    let inner = ipv4_udp(SIP);
    let mut gre = vec![0x20, 0, 0x08, 0x00, 0, 0, 0, 42]; // K bit, key 42
    gre.extend_from_slice(&inner);
    let mut outer = ipv4_header(47, gre.len(), 3, 0);
    outer.extend_from_slice(&gre);
    assert_eq!(only_udp(&pcap(101, &[outer], false, false)).payload, SIP);
}

#[test]
fn ipv4_fragments_out_of_order_reassemble_into_one_datagram_at_last_frame() {
    let body: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let whole = ipv4_udp(&body);
    let udp = &whole[20..]; // UDP header + payload
    let parts = [(0usize, 1480usize), (1480, 2960), (2960, udp.len())];
    let mut frames = Vec::new();
    for (i, &(from, to)) in parts.iter().enumerate() {
        let more = if i < parts.len() - 1 { 0x2000 } else { 0 };
        let mut f = ipv4_header(17, to - from, 77, more | (from / 8) as u16);
        f.extend_from_slice(&udp[from..to]);
        frames.push(f);
    }
    frames.swap(0, 2); // last fragment first
    let c = read_bytes(&pcap(101, &frames, false, false)).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.packets.len(), 1);
    assert_eq!(c.packets[0].payload, body);
    assert_eq!(c.packets[0].index, 3);
    assert_eq!(c.packets[0].src, addr("192.0.2.1:5060"));
}

#[test]
fn big_endian_and_nanosecond_pcap_timestamps_are_exact() {
    let f = ipv4_udp(SIP);
    let micro = only_udp(&pcap(101, std::slice::from_ref(&f), true, false));
    assert_eq!(micro.time, Duration::new(1_700_000_000, 123_456_000));
    let nano = only_udp(&pcap(101, &[f], false, true));
    assert_eq!(nano.time, Duration::new(1_700_000_000, 123_456_789));
}

/// A little-endian pcapng with one Ethernet-less raw-IP interface at `tsresol`.
fn pcapng(tsresol: u8, raw_ts: u64, frame: &[u8]) -> Vec<u8> {
    let block = |t: u32, body: &[u8]| {
        let len = 12 + body.len() as u32;
        let mut b = t.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(body);
        b.extend_from_slice(&len.to_le_bytes());
        b
    };
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    let mut idb = 101u16.to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&0u32.to_le_bytes());
    idb.extend_from_slice(&[9, 0, 1, 0, tsresol, 0, 0, 0, 0, 0, 0, 0]); // if_tsresol, opt_endofopt
    let mut epb = 0u32.to_le_bytes().to_vec();
    epb.extend_from_slice(&((raw_ts >> 32) as u32).to_le_bytes());
    epb.extend_from_slice(&(raw_ts as u32).to_le_bytes());
    epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    epb.extend_from_slice(frame);
    epb.resize(epb.len().div_ceil(4) * 4, 0);
    let mut out = block(0x0A0D_0D0A, &shb);
    out.extend(block(1, &idb));
    out.extend(block(6, &epb));
    out
}

#[test]
fn pcapng_if_tsresol_scales_timestamps() {
    let f = ipv4_udp(SIP);
    let nano = only_udp(&pcapng(9, 1_700_000_000_123_456_789, &f));
    assert_eq!(nano.time, Duration::new(1_700_000_000, 123_456_789));
    let milli = only_udp(&pcapng(3, 1_700_000_000_123, &f));
    assert_eq!(milli.time, Duration::new(1_700_000_000, 123_000_000));
}

#[test]
fn unknown_link_type_warns_once_and_other_frames_still_read() {
    let mut bytes = pcap(147, &[vec![1, 2, 3], vec![4, 5, 6]], false, false);
    let c = read_bytes(&bytes).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].kind, WarningKind::UnsupportedLinkType);
    assert_eq!(c.warnings[0].packet, 1);
    // Malformed IP in frame 1, good datagram in frame 2: a warning for 1, the packet from 2.
    bytes = pcap(101, &[vec![0x45, 0, 0], ipv4_udp(SIP)], false, false);
    let c = read_bytes(&bytes).unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(
        (c.warnings[0].packet, c.warnings[0].kind),
        (1, WarningKind::MalformedPacket)
    );
    assert_eq!(c.packets.len(), 1);
    assert_eq!(c.packets[0].index, 2);
}

#[test]
fn every_prefix_of_a_capture_reads_without_panic() {
    let frames: Vec<Vec<u8>> = (0..4)
        .map(|_| ethernet(0x0800, &[(0x8100, 5)], &ipv4_udp(SIP)))
        .collect();
    let bytes = pcap(1, &frames, false, false);
    for cut in 0..bytes.len() {
        let _ = read_bytes(&bytes[..cut]);
    }
    // Garbage after the header: warnings, not panics.
    let mut noisy = bytes.clone();
    for (i, b) in noisy.iter_mut().enumerate().skip(40) {
        *b = b.wrapping_mul(31).wrapping_add(i as u8);
    }
    let _ = read_bytes(&noisy);
}
