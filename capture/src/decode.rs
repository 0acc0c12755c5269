//! Frames down the layers: link → IP (tunnels, fragments) → UDP / TCP.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::defrag::IpDefragBuf;
use etherparse::{
    ip_number, EtherType, Ethernet2Slice, IpFragOffset, IpNumber, Ipv6ExtensionSlice, LaxIpSlice,
    LinuxSllSlice, SingleVlanSlice, TcpSlice, UdpSlice,
};

use crate::formats::{Event, Frame};
use crate::sctp::SctpAssociations;
use crate::tcp::{Segment, TcpStreams};
use crate::{Capture, Packet, Transport, Warning, WarningKind};

/// Link-layer header types (tcpdump.org LINKTYPE_ values).
mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW_OPENBSD: u32 = 12;
    pub const RAW_BSDOS: u32 = 14;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// RFC 2516 §4: PPPoE session stage.
const ETHERTYPE_PPPOE_SESSION: EtherType = EtherType(0x8864);

/// PPP protocol numbers (RFC 1332 IPv4, RFC 5072 IPv6).
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// How deep tunnels may nest before a packet is given up (a loop guard, not a real limit).
const MAX_TUNNEL_DEPTH: usize = 8;

/// Fragment buffers older than this (capture time) are dropped (RFC 791 reassembly timeout
/// is implementation-defined; Linux uses 30 s).
const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FragmentKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    protocol: u8,
}

#[derive(Debug)]
struct FragmentBuffer {
    buf: IpDefragBuf,
    first_seen: Duration,
}

/// Per-frame context passed down the layers.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    index: usize,
    time: Duration,
}

/// The decoding state for one capture.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    packets: Vec<Packet>,
    warnings: Vec<Warning>,
    fragments: HashMap<FragmentKey, FragmentBuffer>,
    tcp: TcpStreams,
    sctp: SctpAssociations,
    warned_link_types: HashSet<u32>,
    last_index: usize,
}

impl Decoder {
    /// Consumes one container event.
    pub(crate) fn frame(&mut self, event: Event<'_>) {
        match event {
            Event::Warning(w) => self.warnings.push(w),
            Event::Frame(frame) => {
                self.last_index = frame.index;
                self.link(&frame);
            }
        }
    }

    /// Flushes TCP streams and returns the capture, sorted by frame number.
    pub(crate) fn finish(mut self) -> Capture {
        self.tcp
            .finish(self.last_index, &mut self.packets, &mut self.warnings);
        self.packets.sort_by_key(|p| p.index);
        self.warnings.sort_by_key(|w| w.packet);
        Capture {
            packets: self.packets,
            warnings: self.warnings,
        }
    }

    fn warn(&mut self, ctx: Ctx, kind: WarningKind, message: String) {
        self.warnings.push(Warning {
            packet: ctx.index,
            kind,
            message,
        });
    }

    fn link(&mut self, frame: &Frame<'_>) {
        let ctx = Ctx {
            index: frame.index,
            time: frame.time,
        };
        let data = frame.data;
        match frame.link_type {
            linktype::ETHERNET => self.ethernet(ctx, data),
            linktype::RAW | linktype::RAW_OPENBSD | linktype::RAW_BSDOS => self.ip(ctx, data, 0),
            linktype::IPV4 | linktype::IPV6 => self.ip(ctx, data, 0),
            linktype::LINUX_SLL => match LinuxSllSlice::from_slice(data) {
                Ok(sll) => {
                    // Only the protocol field matters: for IP it is the Ethernet type.
                    let proto = u16::from_be_bytes([sll.slice()[14], sll.slice()[15]]);
                    self.ether_type(ctx, EtherType(proto), sll.payload_slice(), 0);
                }
                Err(e) => self.warn(
                    ctx,
                    WarningKind::MalformedPacket,
                    format!("bad Linux cooked (SLL) header: {e}"),
                ),
            },
            linktype::LINUX_SLL2 => {
                // SLL2 header (20 bytes): protocol type (2), reserved (2), interface index (4),
                // ARPHRD type (2), packet type (1), address length (1), address (8).
                if data.len() < 20 {
                    self.warn(
                        ctx,
                        WarningKind::MalformedPacket,
                        format!(
                            "Linux cooked (SLL2) header cut short ({} bytes)",
                            data.len()
                        ),
                    );
                } else {
                    let proto = u16::from_be_bytes([data[0], data[1]]);
                    self.ether_type(ctx, EtherType(proto), &data[20..], 0);
                }
            }
            linktype::NULL | linktype::LOOP => {
                if data.len() < 4 {
                    self.warn(
                        ctx,
                        WarningKind::MalformedPacket,
                        "loopback header cut short".to_string(),
                    );
                    return;
                }
                // The address family is in the capturing host's byte order for NULL and in
                // network order for LOOP; the values are small, so either order is recognised.
                let b: [u8; 4] = data[..4].try_into().expect("length checked above");
                let family = match (u32::from_le_bytes(b), u32::from_be_bytes(b)) {
                    (le, _) if le < 0x100 => le,
                    (_, be) => be,
                };
                match family {
                    // AF_INET everywhere; AF_INET6 on Linux (10), NetBSD/OpenBSD (24),
                    // FreeBSD/DragonFly (28), macOS (30).
                    2 | 10 | 24 | 28 | 30 => self.ip(ctx, &data[4..], 0),
                    _ => {}
                }
            }
            other => {
                if self.warned_link_types.insert(other) {
                    self.warn(
                        ctx,
                        WarningKind::UnsupportedLinkType,
                        format!("link type {other} is not supported; frames with it are skipped"),
                    );
                }
            }
        }
    }

    fn ethernet(&mut self, ctx: Ctx, data: &[u8]) {
        match Ethernet2Slice::from_slice_without_fcs(data) {
            Ok(eth) => self.ether_type(ctx, eth.ether_type(), eth.payload_slice(), 0),
            Err(e) => self.warn(
                ctx,
                WarningKind::MalformedPacket,
                format!("bad Ethernet header: {e}"),
            ),
        }
    }

    fn ether_type(&mut self, ctx: Ctx, ether_type: EtherType, payload: &[u8], depth: usize) {
        match ether_type {
            EtherType::IPV4 | EtherType::IPV6 => self.ip(ctx, payload, depth),
            ETHERTYPE_PPPOE_SESSION => self.pppoe_session(ctx, payload, depth),
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                if depth >= MAX_TUNNEL_DEPTH {
                    return;
                }
                match SingleVlanSlice::from_slice(payload) {
                    Ok(vlan) => {
                        self.ether_type(ctx, vlan.ether_type(), vlan.payload_slice(), depth + 1)
                    }
                    Err(e) => self.warn(
                        ctx,
                        WarningKind::MalformedPacket,
                        format!("bad VLAN tag: {e}"),
                    ),
                }
            }
            // ARP, LLDP, STP and other non-IP frames carry nothing for us.
            _ => {}
        }
    }

    fn ip(&mut self, ctx: Ctx, data: &[u8], depth: usize) {
        if depth > MAX_TUNNEL_DEPTH {
            self.warn(
                ctx,
                WarningKind::MalformedPacket,
                "tunnels nested too deep".to_string(),
            );
            return;
        }
        let (ip, ext_error) = match LaxIpSlice::from_slice(data) {
            Ok(v) => v,
            Err(e) => {
                self.warn(
                    ctx,
                    WarningKind::MalformedPacket,
                    format!("bad IP header: {e}"),
                );
                return;
            }
        };
        if let Some((e, _)) = ext_error {
            self.warn(
                ctx,
                WarningKind::MalformedPacket,
                format!("bad IPv6 extension header: {e}"),
            );
            return;
        }
        let src = ip.source_addr();
        let dst = ip.destination_addr();
        let payload = ip.payload();
        let protocol = payload.ip_number;
        if payload.fragmented {
            let fragment = match &ip {
                LaxIpSlice::Ipv4(v4) => {
                    let h = v4.header();
                    Some((
                        u32::from(h.identification()),
                        h.fragments_offset(),
                        h.more_fragments(),
                    ))
                }
                LaxIpSlice::Ipv6(v6) => {
                    v6.extensions()
                        .clone()
                        .into_iter()
                        .find_map(|ext| match ext {
                            Ipv6ExtensionSlice::Fragment(f) => {
                                Some((f.identification(), f.fragment_offset(), f.more_fragments()))
                            }
                            _ => None,
                        })
                }
            };
            let Some((id, offset, more)) = fragment else {
                return;
            };
            if payload.incomplete {
                self.warn(
                    ctx,
                    WarningKind::Fragment,
                    "IP fragment cut short by the capture; its datagram is dropped".to_string(),
                );
                return;
            }
            let key = FragmentKey {
                src,
                dst,
                id,
                protocol: protocol.0,
            };
            if let Some(whole) =
                self.add_fragment(ctx, key, protocol, offset, more, payload.payload)
            {
                self.transport(ctx, src, dst, protocol, &whole, false, depth);
            }
            return;
        }
        let incomplete = payload.incomplete;
        let bytes = payload.payload;
        self.transport(ctx, src, dst, protocol, bytes, incomplete, depth);
    }

    fn add_fragment(
        &mut self,
        ctx: Ctx,
        key: FragmentKey,
        protocol: IpNumber,
        offset: IpFragOffset,
        more: bool,
        data: &[u8],
    ) -> Option<Vec<u8>> {
        let now = ctx.time;
        self.fragments
            .retain(|_, f| now.saturating_sub(f.first_seen) <= FRAGMENT_TIMEOUT);
        let entry = self
            .fragments
            .entry(key.clone())
            .or_insert_with(|| FragmentBuffer {
                buf: IpDefragBuf::new(protocol, Vec::new(), Vec::new()),
                first_seen: now,
            });
        if let Err(e) = entry.buf.add(offset, more, data) {
            self.fragments.remove(&key);
            self.warn(
                ctx,
                WarningKind::Fragment,
                format!("IP fragment does not fit its datagram ({e}); the datagram is dropped"),
            );
            return None;
        }
        if entry.buf.is_complete() {
            let done = self.fragments.remove(&key).expect("entry was just used");
            // The reassembled length is the end of the last fragment; the buffer may be longer.
            let end = done.buf.end().map(usize::from);
            let (mut data, _) = done.buf.take_bufs();
            if let Some(end) = end {
                data.truncate(end);
            }
            return Some(data);
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn transport(
        &mut self,
        ctx: Ctx,
        src: IpAddr,
        dst: IpAddr,
        protocol: IpNumber,
        bytes: &[u8],
        incomplete: bool,
        depth: usize,
    ) {
        match protocol {
            ip_number::UDP => self.udp(ctx, src, dst, bytes, incomplete),
            ip_number::TCP => match TcpSlice::from_slice(bytes) {
                Ok(tcp) => {
                    let segment = Segment {
                        index: ctx.index,
                        time: ctx.time,
                        src: SocketAddr::new(src, tcp.source_port()),
                        dst: SocketAddr::new(dst, tcp.destination_port()),
                        seq: tcp.sequence_number(),
                        syn: tcp.syn(),
                        fin: tcp.fin(),
                        payload: tcp.payload(),
                    };
                    self.tcp
                        .segment(segment, &mut self.packets, &mut self.warnings);
                }
                Err(e) => self.warn(
                    ctx,
                    WarningKind::MalformedPacket,
                    format!("bad TCP header: {e}"),
                ),
            },
            // RFC 2003 IPv4-in-IP, RFC 2473 IPv6 tunnelling / RFC 4213 6in4.
            ip_number::IPV4 | ip_number::IPV6 => self.ip(ctx, bytes, depth + 1),
            ip_number::GRE => self.gre(ctx, bytes, depth),
            ip_number::SCTP => self.sctp(ctx, src, dst, bytes),
            _ => {}
        }
    }

    /// RFC 2784 GRE with RFC 2890 key/sequence extensions.
    fn gre(&mut self, ctx: Ctx, bytes: &[u8], depth: usize) {
        if bytes.len() < 4 {
            self.warn(
                ctx,
                WarningKind::MalformedPacket,
                "GRE header cut short".to_string(),
            );
            return;
        }
        let flags = bytes[0];
        let version = bytes[1] & 0x07;
        if version != 0 {
            return; // version 1 is PPTP's enhanced GRE, which carries PPP
        }
        let proto = u16::from_be_bytes([bytes[2], bytes[3]]);
        let mut len = 4;
        for bit in [0x80u8, 0x20, 0x10] {
            // checksum (+reserved), key, sequence number: 4 bytes each
            if flags & bit != 0 {
                len += 4;
            }
        }
        let Some(inner) = bytes.get(len..) else {
            self.warn(
                ctx,
                WarningKind::MalformedPacket,
                "GRE header cut short".to_string(),
            );
            return;
        };
        match proto {
            0x6558 => {
                // Transparent Ethernet bridging.
                if let Ok(eth) = Ethernet2Slice::from_slice_without_fcs(inner) {
                    self.ether_type(ctx, eth.ether_type(), eth.payload_slice(), depth + 1);
                }
            }
            other => self.ether_type(ctx, EtherType(other), inner, depth + 1),
        }
    }

    fn udp(&mut self, ctx: Ctx, src: IpAddr, dst: IpAddr, bytes: &[u8], incomplete: bool) {
        let udp = match UdpSlice::from_slice_lax(bytes) {
            Ok(u) => u,
            Err(e) => {
                self.warn(
                    ctx,
                    WarningKind::MalformedPacket,
                    format!("bad UDP header: {e}"),
                );
                return;
            }
        };
        let declared = usize::from(udp.length());
        if incomplete || declared > bytes.len() {
            self.warn(
                ctx,
                WarningKind::SnapLength,
                format!(
                    "UDP datagram cut short by the capture ({} of {declared} bytes)",
                    bytes.len()
                ),
            );
        }
        self.packets.push(Packet {
            index: ctx.index,
            time: ctx.time,
            src: SocketAddr::new(src, udp.source_port()),
            dst: SocketAddr::new(dst, udp.destination_port()),
            transport: Transport::Udp,
            payload: udp.payload().to_vec(),
        });
    }

    /// RFC 2516 §4 session frame: version/type 0x11, code 0, session id, length, then a PPP
    /// frame whose protocol field may be compressed to one byte (RFC 1661 §6.5: an odd first
    /// byte ends the field).
    fn pppoe_session(&mut self, ctx: Ctx, payload: &[u8], depth: usize) {
        let malformed = |this: &mut Self, why: &str| {
            this.warn(
                ctx,
                WarningKind::MalformedPacket,
                format!("bad PPPoE session frame: {why}"),
            )
        };
        let Some(header) = payload.get(..6) else {
            return malformed(self, "header cut short");
        };
        if header[0] != 0x11 || header[1] != 0 {
            return malformed(self, "not version 1, type 1, code 0");
        }
        let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
        // Ethernet pads short frames; the PPPoE length says where the PPP frame ends.
        let Some(ppp) = payload.get(6..6 + length) else {
            return malformed(self, "length longer than the frame");
        };
        let (protocol, inner) = match ppp {
            [first, rest @ ..] if first & 1 == 1 => (u16::from(*first), rest),
            [high, low, rest @ ..] => (u16::from_be_bytes([*high, *low]), rest),
            _ => return malformed(self, "PPP protocol field cut short"),
        };
        match protocol {
            PPP_IPV4 | PPP_IPV6 => self.ip(ctx, inner, depth + 1),
            // LCP, IPCP, CHAP and the other PPP control protocols carry nothing for us.
            _ => {}
        }
    }

    /// SCTP DATA chunks as packets (see [`crate::sctp`]).
    fn sctp(&mut self, ctx: Ctx, src: IpAddr, dst: IpAddr, bytes: &[u8]) {
        let mut messages = Vec::new();
        let result = self.sctp.packet(src, dst, bytes, &mut messages);
        for m in messages {
            self.packets.push(Packet {
                index: ctx.index,
                time: ctx.time,
                src: m.src,
                dst: m.dst,
                transport: Transport::Sctp,
                payload: m.data,
            });
        }
        if let Err(e) = result {
            self.warn(ctx, WarningKind::MalformedPacket, e.0);
        }
    }
}
