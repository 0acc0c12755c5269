//! RTP streams in a [`Capture`], found and measured the way
//! `tshark -q -z rtp,streams -o rtp.heuristic_rtp:TRUE` does.
//!
//! # Which UDP datagrams are RTP
//! Wireshark's rules, applied in capture order (`epan/dissectors/packet-rtp.c`, heuristic
//! dissector and `dissect_rtp`):
//! 0. A datagram to or from an address that an SDP exchange moved to UDPTL (T.38 fax,
//!    `m=image <port> udptl t38`, ITU-T T.38 Annex D) is not RTP, from the frame of the answer
//!    on ([`RtpOptions::media_switches`]): tshark's SDP dissector sets a T.38 conversation on
//!    both the offer's and the answer's address when the answer arrives, and the UDP dissector
//!    tries conversations before heuristics. The source address's latest switch decides, else
//!    the destination's, as Wireshark looks conversations up.
//! 1. A datagram on a UDP port pair already found to carry RTP (in either direction) is RTP if
//!    it has version 2 and a complete header, unless it is RTCP multiplexed on the RTP port
//!    (marker bit set and payload type 64–95, i.e. RTCP packet types 192–223, RFC 5761 §4).
//! 2. Otherwise, a datagram to or from a port that a well-known protocol owns (DNS, NetBIOS,
//!    SIP, ...) is not RTP: tshark gives it to that protocol's dissector first.
//! 3. Otherwise the heuristic: version 2, payload type not 72–76 (the values RTCP SR, RR, SDES,
//!    BYE and APP take in the RTP payload-type position, RFC 3550 §12.1 / RFC 5761 §4), the
//!    fixed header, CSRC list and header extension fit, and a padding count, if the P bit is
//!    set, is non-zero and fits. A hit marks the port pair as RTP for rule 1.
//!
//! Without SDP there is no way to learn a dynamic payload type's clock rate; tshark has the
//! same limit (it learns rates from SDP it dissects). [`RtpOptions`] supplies them.
//!
//! # Statistics
//! Per stream (source, destination, SSRC), as tshark's `ui/tap-rtp-analysis.c` computes them:
//! - `expected = last sequence number + 65536 × cycles − first sequence number + 1` and
//!   `lost = expected − packets` (negative with duplicates: a RFC 4733 end packet sent three
//!   times with one sequence number counts three times);
//! - sequence errors: packets whose sequence number is not the previous one plus one;
//! - delta: arrival time difference to the previous packet; the maximum over regular packets
//!   (not the first, no marker bit, not comfort noise or just after it, timestamp not before
//!   the first packet's);
//! - jitter: RFC 3550 §6.4.1 / A.8 interarrival jitter `J += (|D| − J) / 16` in milliseconds,
//!   only for payload types with a known clock rate; maximum and mean over regular packets.
//!
//! # RFC 4733 events
//! Packets of telephone-event payload types (PT 101 by default, as Wireshark's `rtpevent`
//! preference) are decoded into [`DtmfEvent`]s: one per event (RTP timestamp), with the final
//! duration and whether an end packet was seen.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::{Capture, Transport};

/// Ports whose protocols Wireshark dissects before trying heuristics; datagrams to or from
/// them are not taken for RTP (DNS, DHCP, TFTP, NTP, NetBIOS, SNMP, IKE, syslog, RIP, SSDP,
/// STUN, IPsec NAT-T, SIP, mDNS, LLMNR).
const RESERVED_PORTS: &[u16] = &[
    53, 67, 68, 69, 123, 137, 138, 161, 162, 500, 514, 520, 1900, 3478, 4500, 5060, 5061, 5353,
    5355,
];

/// Static payload-type clock rates, RFC 3551 §6 Table 4 and 5 (as tshark's table).
fn static_clock_rate(pt: u8) -> u32 {
    match pt {
        0..=5 | 7..=9 | 12 | 13 | 15 | 18 | 19 => 8000,
        6 => 16000,
        10 | 11 => 44100,
        16 => 11025,
        17 => 22050,
        14 | 25 | 26 | 28 | 31..=34 => 90000,
        _ => 0,
    }
}

/// Options for [`streams`].
#[derive(Debug, Clone)]
pub struct RtpOptions {
    /// Clock rates (Hz) of dynamic payload types, e.g. from SDP `a=rtpmap:111 opus/48000/2`.
    /// Static types (0–95) use RFC 3551's rates and ignore this map.
    pub clock_rates: BTreeMap<u8, u32>,
    /// Payload types carrying RFC 4733 telephone events. Their packets get no jitter (RFC 4733
    /// §2.5.1.2: an event's packets share one timestamp).
    pub telephone_event_types: BTreeSet<u8>,
    /// Addresses an SDP answer moved to UDPTL or back to RTP, with the answer's frame (rule 0 of
    /// the module docs). Any order.
    pub media_switches: Vec<MediaSwitch>,
}

/// From frame `index` on, `address` carries UDPTL (T.38) or RTP, as an SDP answer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaSwitch {
    /// Frame of the SDP answer.
    pub index: usize,
    /// The `c=` address and `m=` port of the offer or the answer.
    pub address: SocketAddr,
    /// `true` for `m=image <port> udptl t38`, `false` for an RTP `m=` line.
    pub udptl: bool,
}

/// The switches of [`RtpOptions::media_switches`] per address, in frame order.
#[derive(Debug, Default)]
struct Switches(HashMap<SocketAddr, Vec<(usize, bool)>>);

impl Switches {
    fn new(list: &[MediaSwitch]) -> Self {
        let mut map: HashMap<SocketAddr, Vec<(usize, bool)>> = HashMap::new();
        for s in list {
            map.entry(s.address).or_default().push((s.index, s.udptl));
        }
        for v in map.values_mut() {
            v.sort_by_key(|&(index, _)| index);
        }
        Switches(map)
    }

    /// Whether `address` carries UDPTL at frame `index`; `None` if no switch applies yet.
    fn udptl_at(&self, address: SocketAddr, index: usize) -> Option<bool> {
        let list = self.0.get(&address)?;
        let applied = list.partition_point(|&(at, _)| at <= index);
        applied.checked_sub(1).map(|i| list[i].1)
    }

    /// Rule 0: the source's latest switch, else the destination's.
    fn is_udptl(&self, src: SocketAddr, dst: SocketAddr, index: usize) -> bool {
        self.udptl_at(src, index)
            .or_else(|| self.udptl_at(dst, index))
            .unwrap_or(false)
    }
}

impl Default for RtpOptions {
    /// No dynamic clock rates; PT 101 is telephone-event (Wireshark's default).
    fn default() -> Self {
        RtpOptions {
            clock_rates: BTreeMap::new(),
            telephone_event_types: BTreeSet::from([101]),
            media_switches: Vec::new(),
        }
    }
}

/// One RTP stream: one SSRC from one source to one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct RtpStream {
    /// Synchronisation source.
    pub ssrc: u32,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Payload types seen, in order of first appearance.
    pub payload_types: Vec<u8>,
    /// Frame number of the first packet.
    pub first_index: usize,
    /// Capture time of the first packet.
    pub start: Duration,
    /// Capture time of the last packet.
    pub end: Duration,
    /// Packets received.
    pub packets: u64,
    /// Packets expected from the sequence numbers.
    pub expected: i64,
    /// `expected - packets` (negative when packets are duplicated).
    pub lost: i64,
    /// Packets whose sequence number did not follow the previous one.
    pub sequence_errors: u64,
    /// Largest arrival-time difference between consecutive regular packets, in ms.
    pub max_delta_ms: f64,
    /// Largest RFC 3550 interarrival jitter, in ms (0 without a clock rate).
    pub max_jitter_ms: f64,
    /// Mean jitter, in ms, as tshark computes it (0 without a clock rate).
    pub mean_jitter_ms: f64,
    /// RFC 4733 events, in order.
    pub events: Vec<DtmfEvent>,
}

/// One RFC 4733 telephone event (all packets with one RTP timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtmfEvent {
    /// Frame number of the event's first packet.
    pub index: usize,
    /// Capture time of the event's first packet.
    pub time: Duration,
    /// RTP timestamp: the event's start (RFC 4733 §2.5.1.2).
    pub timestamp: u32,
    /// Event code (RFC 4733 §3.2: 0–9, 10 `*`, 11 `#`, 12–15 `A`–`D`, 16 flash).
    pub event: u8,
    /// The DTMF digit for codes 0–15.
    pub digit: Option<char>,
    /// Longest duration reported, in timestamp units.
    pub duration: u16,
    /// Volume (dBm0 below 0) of the last packet.
    pub volume: u8,
    /// Whether a packet with the E (end) bit arrived.
    pub end: bool,
}

/// The DTMF character of an RFC 4733 §3.2 event code.
pub fn dtmf_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The fields of an RTP header (RFC 3550 §5.1) that the analysis needs.
#[derive(Debug, Clone, Copy)]
struct Header {
    marker: bool,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    /// Length of fixed header, CSRCs and extension.
    header_len: usize,
}

/// Parses an RTP header; `None` if not version 2 or it does not fit.
fn header(p: &[u8]) -> Option<Header> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(p[0] & 0x0F);
    let mut len = 12 + 4 * cc;
    if p[0] & 0x10 != 0 {
        let ext = p.get(len..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if len > p.len() {
        return None;
    }
    Some(Header {
        marker: p[1] & 0x80 != 0,
        payload_type: p[1] & 0x7F,
        seq: u16::from_be_bytes([p[2], p[3]]),
        timestamp: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        header_len: len,
    })
}

/// The heuristic of rule 3 (see the module docs).
fn looks_like_rtp(p: &[u8], h: &Header) -> bool {
    if (72..=76).contains(&h.payload_type) {
        return false;
    }
    if p[0] & 0x20 != 0 {
        let padding = usize::from(p[p.len() - 1]);
        if padding == 0 || padding > p.len() - h.header_len {
            return false;
        }
    }
    true
}

/// Per-stream state, mirroring tshark's `tap_rtp_stat_t`.
#[derive(Debug)]
struct Stats {
    stream: RtpStream,
    start_seq: i64,
    stop_seq: i64,
    seq_num: i64,
    cycles: i64,
    under: bool,
    first_timestamp: u32,
    time: f64,
    last_nominal: f64,
    pt: u8,
    delta: f64,
    jitter: f64,
    mean_delta: f64,
    total: u64,
    event_by_timestamp: HashMap<u32, usize>,
}

const PT_CN: u8 = 13;
const PT_CN_OLD: u8 = 19;

/// Signed difference `a - b` of two RTP timestamps, taking the shorter way round the 2^32 circle
/// when they are more than 2^31 apart (Wireshark's `guint32_wraparound_diff`).
fn timestamp_diff(a: u32, b: u32) -> i64 {
    let d = i64::from(a) - i64::from(b);
    if d < -0x7FFF_FFFF {
        d + (1 << 32)
    } else if d > 0x7FFF_FFFF {
        d - (1 << 32)
    } else {
        d
    }
}

impl Stats {
    fn new(
        index: usize,
        time: Duration,
        now_ms: f64,
        src: SocketAddr,
        dst: SocketAddr,
        h: &Header,
    ) -> Self {
        Stats {
            stream: RtpStream {
                ssrc: h.ssrc,
                src,
                dst,
                payload_types: vec![h.payload_type],
                first_index: index,
                start: time,
                end: time,
                packets: 1,
                expected: 1,
                lost: 0,
                sequence_errors: 0,
                max_delta_ms: 0.0,
                max_jitter_ms: 0.0,
                mean_jitter_ms: 0.0,
                events: Vec::new(),
            },
            start_seq: i64::from(h.seq),
            stop_seq: i64::from(h.seq),
            seq_num: i64::from(h.seq),
            cycles: 0,
            under: false,
            first_timestamp: h.timestamp,
            time: now_ms,
            last_nominal: 0.0,
            pt: h.payload_type,
            delta: 0.0,
            jitter: 0.0,
            mean_delta: 0.0,
            total: 1,
            event_by_timestamp: HashMap::new(),
        }
    }

    /// One more packet of the stream (tshark's `rtppacket_analyse` after the first packet).
    fn add(&mut self, time: Duration, now_ms: f64, h: &Header, clock_rate: u32) {
        let s = &mut self.stream;
        s.packets += 1;
        s.end = time;
        if !s.payload_types.contains(&h.payload_type) {
            s.payload_types.push(h.payload_type);
        }
        let seq = i64::from(h.seq);
        let first_ts = self.first_timestamp;
        // Timestamps within half the 32-bit range after the first packet's are "in sequence".
        let in_time = if first_ts <= h.timestamp {
            i64::from(h.timestamp) - i64::from(first_ts) < 0x8000_0000
        } else {
            i64::from(first_ts) + (0xFFFF_FFFF - i64::from(h.timestamp)) < 0x8000_0000
        };
        // Sequence-number cycles (RFC 3550 A.1, in tshark's simplified form).
        // A start sequence number of 0 never compares below, hence the second condition.
        let wrapped = seq < self.start_seq || (seq == 0 && self.stop_seq == 65535);
        if wrapped && in_time && !self.under {
            self.cycles += 1;
            self.under = true;
        } else if seq > self.start_seq && in_time && self.under {
            self.under = false;
        }
        if in_time && (self.seq_num + 1 == seq || (self.seq_num == 65535 && seq == 0)) {
            self.seq_num = seq;
        } else if in_time && (self.seq_num + 1 < seq || self.seq_num - seq > 0xFF00) {
            self.seq_num = seq;
            s.sequence_errors += 1;
        } else if self.seq_num + 1 > seq {
            s.sequence_errors += 1;
        }
        let is_cn = matches!(h.payload_type, PT_CN | PT_CN_OLD);
        let follows_cn = matches!(self.pt, PT_CN | PT_CN_OLD);
        self.pt = h.payload_type;

        if in_time {
            let nominal = timestamp_diff(h.timestamp, first_ts) as f64;
            // tshark divides by clock_rate/1000 in integer arithmetic.
            let per_ms = clock_rate / 1000;
            if per_ms != 0 {
                let nominal = nominal / f64::from(per_ms);
                let expected_time = self.time + (nominal - self.last_nominal);
                let current_diff = (now_ms - expected_time).abs();
                // RFC 3550 §6.4.1: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1))/16
                self.jitter = (15.0 * self.jitter + current_diff) / 16.0;
                self.delta = now_ms - self.time;
                self.last_nominal = nominal;
            } else {
                self.delta = now_ms - self.time;
            }
        }
        let regular = !h.marker && !is_cn && in_time && !follows_cn;
        if regular {
            s.max_delta_ms = s.max_delta_ms.max(self.delta);
            self.mean_delta =
                (self.mean_delta * (self.total - 1) as f64 + self.delta) / self.total as f64;
            if clock_rate / 1000 != 0 {
                s.max_jitter_ms = s.max_jitter_ms.max(self.jitter);
                s.mean_jitter_ms =
                    (s.mean_jitter_ms * (self.total - 1) as f64 + self.jitter) / self.total as f64;
            }
        }
        if in_time {
            self.time = now_ms;
        }
        self.stop_seq = seq;
        self.total += 1;
        s.expected = self.stop_seq + self.cycles * 0x10000 - self.start_seq + 1;
        s.lost = s.expected - s.packets as i64;
    }

    /// RFC 4733 §2.3 payload: event, E|R|volume, duration.
    fn event(&mut self, index: usize, time: Duration, h: &Header, payload: &[u8]) {
        if payload.len() < 4 {
            return;
        }
        let (event, flags) = (payload[0], payload[1]);
        let duration = u16::from_be_bytes([payload[2], payload[3]]);
        let end = flags & 0x80 != 0;
        let volume = flags & 0x3F;
        match self.event_by_timestamp.get(&h.timestamp) {
            Some(&i) => {
                let e = &mut self.stream.events[i];
                e.duration = e.duration.max(duration);
                e.end |= end;
                e.volume = volume;
            }
            None => {
                self.event_by_timestamp
                    .insert(h.timestamp, self.stream.events.len());
                self.stream.events.push(DtmfEvent {
                    index,
                    time,
                    timestamp: h.timestamp,
                    event,
                    digit: dtmf_digit(event),
                    duration,
                    volume,
                    end,
                });
            }
        }
    }
}

/// Finds the RTP streams in `capture` (UDP only), in order of their first packet.
pub fn streams(capture: &Capture, options: &RtpOptions) -> Vec<RtpStream> {
    let origin = capture.packets.first().map_or(Duration::ZERO, |p| p.time);
    let mut rtp_pairs: HashSet<(SocketAddr, SocketAddr)> = HashSet::new();
    let mut stats: Vec<Stats> = Vec::new();
    let mut by_key: HashMap<(SocketAddr, SocketAddr, u32), usize> = HashMap::new();
    let switches = Switches::new(&options.media_switches);
    for p in capture
        .packets
        .iter()
        .filter(|p| p.transport == Transport::Udp)
    {
        let Some(h) = header(&p.payload) else {
            continue;
        };
        if switches.is_udptl(p.src, p.dst, p.index) {
            continue;
        }
        let pair = if p.src <= p.dst {
            (p.src, p.dst)
        } else {
            (p.dst, p.src)
        };
        if rtp_pairs.contains(&pair) {
            if h.marker && (64..=95).contains(&h.payload_type) {
                continue; // RTCP multiplexed on the RTP ports
            }
        } else {
            if RESERVED_PORTS.contains(&p.src.port()) || RESERVED_PORTS.contains(&p.dst.port()) {
                continue;
            }
            if !looks_like_rtp(&p.payload, &h) {
                continue;
            }
            rtp_pairs.insert(pair);
        }
        let now_ms = p.time.saturating_sub(origin).as_secs_f64() * 1000.0;
        let key = (p.src, p.dst, h.ssrc);
        let is_event = options.telephone_event_types.contains(&h.payload_type);
        let clock_rate = if h.payload_type < 96 {
            static_clock_rate(h.payload_type)
        } else if is_event {
            0
        } else {
            options
                .clock_rates
                .get(&h.payload_type)
                .copied()
                .unwrap_or(0)
        };
        let i = match by_key.get(&key) {
            Some(&i) => {
                stats[i].add(p.time, now_ms, &h, clock_rate);
                i
            }
            None => {
                by_key.insert(key, stats.len());
                stats.push(Stats::new(p.index, p.time, now_ms, p.src, p.dst, &h));
                stats.len() - 1
            }
        };
        if is_event {
            let mut payload = &p.payload[h.header_len..];
            if p.payload[0] & 0x20 != 0 {
                let pad = usize::from(p.payload[p.payload.len() - 1]).min(payload.len());
                payload = &payload[..payload.len() - pad];
            }
            stats[i].event(p.index, p.time, &h, payload);
        }
    }
    stats.into_iter().map(|s| s.stream).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Packet;

    fn rtp(seq: u16, ts: u32, pt: u8, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, (u8::from(marker) << 7) | pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn capture(datagrams: &[(u64, Vec<u8>)]) -> Capture {
        Capture {
            packets: datagrams
                .iter()
                .enumerate()
                .map(|(i, (ms, payload))| Packet {
                    index: i + 1,
                    time: Duration::from_millis(*ms),
                    src: "10.0.0.1:4000".parse().unwrap(),
                    dst: "10.0.0.2:5000".parse().unwrap(),
                    transport: Transport::Udp,
                    payload: payload.clone(),
                })
                .collect(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn one_missing_sequence_number_is_one_lost_and_one_sequence_error() {
        let c = capture(&[
            (0, rtp(10, 0, 0, false, &[0; 160])),
            (20, rtp(11, 160, 0, false, &[0; 160])),
            (60, rtp(13, 480, 0, false, &[0; 160])),
        ]);
        let s = streams(&c, &RtpOptions::default());
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].packets, s[0].expected, s[0].lost), (3, 4, 1));
        assert_eq!(s[0].sequence_errors, 1);
        assert!((s[0].max_delta_ms - 40.0).abs() < 1e-9);
    }

    #[test]
    fn jitter_follows_rfc3550_with_pcmu_clock() {
        // Second packet arrives 4 ms late: D = 4 ms, J = 4/16.
        let c = capture(&[
            (0, rtp(1, 0, 0, false, &[0; 160])),
            (24, rtp(2, 160, 0, false, &[0; 160])),
        ]);
        let s = streams(&c, &RtpOptions::default());
        assert!((s[0].max_jitter_ms - 0.25).abs() < 1e-9);
    }

    #[test]
    fn port_moved_to_udptl_stops_counting_from_the_answer_and_back_to_rtp_resumes() {
        let c = capture(
            &(0..6)
                .map(|i| (i * 20, rtp(i as u16, 0, 0, false, &[0; 160])))
                .collect::<Vec<_>>(),
        );
        let switch = |index, udptl| MediaSwitch {
            index,
            address: "10.0.0.2:5000".parse().unwrap(),
            udptl,
        };
        let options = RtpOptions {
            media_switches: vec![switch(5, false), switch(3, true)],
            ..RtpOptions::default()
        };
        let s = streams(&c, &options);
        assert_eq!(s[0].packets, 4, "frames 1, 2, 5 and 6: 3 and 4 are UDPTL");
        let other = RtpOptions {
            media_switches: vec![MediaSwitch {
                address: "10.0.0.9:5000".parse().unwrap(),
                ..switch(1, true)
            }],
            ..RtpOptions::default()
        };
        assert_eq!(
            streams(&c, &other)[0].packets,
            6,
            "another address's switch"
        );
    }

    #[test]
    fn rtcp_payload_types_are_not_taken_for_rtp() {
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend_from_slice(&[0; 28]);
        let c = capture(&[(0, rr)]);
        assert!(streams(&c, &RtpOptions::default()).is_empty());
    }

    #[test]
    fn rfc4733_end_packet_repeated_three_times_is_one_event_and_negative_loss() {
        let ev = |dur: u16, end: bool| {
            [
                5u8,
                if end { 0x8A } else { 0x0A },
                (dur >> 8) as u8,
                dur as u8,
            ]
        };
        let c = capture(&[
            (0, rtp(1, 800, 101, true, &ev(160, false))),
            (20, rtp(2, 800, 101, false, &ev(320, false))),
            (40, rtp(3, 800, 101, false, &ev(480, true))),
            (41, rtp(3, 800, 101, false, &ev(480, true))),
            (42, rtp(3, 800, 101, false, &ev(480, true))),
        ]);
        let s = streams(&c, &RtpOptions::default());
        assert_eq!(s[0].lost, -2);
        assert_eq!(s[0].events.len(), 1);
        let e = &s[0].events[0];
        assert_eq!(
            (e.digit, e.duration, e.end, e.volume),
            (Some('5'), 480, true, 10)
        );
    }
}
