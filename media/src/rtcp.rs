//! RTCP sender and receiver reports (RFC 3550 §6.4), the per-stream receive statistics behind
//! them (RFC 3550 Appendix A.1, A.3, A.8), and the 5-second report schedule.
//!
//! Reports are rare (one per stream every few seconds), so building one into a caller's buffer
//! is enough; parsing returns owned reports.

use std::time::{Duration, Instant};

use crate::rtp::Ssrc;

/// RTCP packet type SR (RFC 3550 §12.1).
pub const PACKET_TYPE_SR: u8 = 200;
/// RTCP packet type RR.
pub const PACKET_TYPE_RR: u8 = 201;
/// RTCP packet type SDES.
pub const PACKET_TYPE_SDES: u8 = 202;

/// Why an RTCP datagram could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Shorter than a header, or than its length field says.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version field not 2 (RFC 3550 §6.4.1).
    #[error("RTCP version {0} is not 2")]
    Version(u8),
    /// The output buffer is too small.
    #[error("buffer of {have} bytes too small for {need}")]
    BufferTooSmall {
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
}

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900 in the high 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// Seconds between 1900-01-01 and the Unix epoch.
    const UNIX_OFFSET: u64 = 2_208_988_800;

    /// From the time since the Unix epoch (the runtime reads the wall clock; this crate never
    /// does).
    pub fn from_unix(since_epoch: Duration) -> NtpTimestamp {
        let seconds = since_epoch.as_secs() + Self::UNIX_OFFSET;
        let fraction = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTimestamp((seconds << 32) | fraction)
    }

    /// The middle 32 bits, as used in LSR and round-trip arithmetic (RFC 3550 §6.4.1).
    pub fn middle(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// The sender-info part of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// Wall clock when the report was made.
    pub ntp: NtpTimestamp,
    /// The RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the stream started.
    pub packet_count: u32,
    /// Payload octets sent since the stream started.
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: Ssrc,
    /// Fraction of packets lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed: duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp from this source, 0 if none.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// Round-trip time to the reporter (RFC 3550 §6.4.1, Figure 2), given when the report
    /// arrived; `None` when the reporter has not yet received an SR from us.
    pub fn round_trip(&self, arrival: NtpTimestamp) -> Option<Duration> {
        if self.last_sr == 0 {
            return None;
        }
        let rtt = arrival
            .middle()
            .wrapping_sub(self.last_sr)
            .wrapping_sub(self.delay_since_last_sr);
        // A negative result (clock skew) shows as a huge value; more than a minute is not a RTT.
        (rtt < (60 << 16)).then(|| Duration::from_nanos((u64::from(rtt) * 1_000_000_000) >> 16))
    }

    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.ssrc.0.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out[4..8].copy_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out[8..12].copy_from_slice(&self.highest_sequence.to_be_bytes());
        out[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        out[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        out[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }

    fn read(b: &[u8]) -> ReportBlock {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost_word = word(4);
        // Sign-extend the 24-bit cumulative loss.
        let cumulative_lost = ((lost_word << 8) as i32) >> 8;
        ReportBlock {
            ssrc: Ssrc(word(0)),
            fraction_lost: (lost_word >> 24) as u8,
            cumulative_lost,
            highest_sequence: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        }
    }
}

/// A sender or receiver report read from a compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The reporter's SSRC.
    pub ssrc: Ssrc,
    /// Present in an SR.
    pub sender_info: Option<SenderInfo>,
    /// Reception report blocks.
    pub blocks: Vec<ReportBlock>,
}

/// Reads the SRs and RRs of a compound RTCP packet (RFC 3550 §6.1), skipping other types.
pub fn parse_compound(mut packet: &[u8]) -> Result<Vec<Report>, RtcpError> {
    let mut reports = Vec::new();
    while !packet.is_empty() {
        if packet.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        let version = packet[0] >> 6;
        if version != 2 {
            return Err(RtcpError::Version(version));
        }
        let count = usize::from(packet[0] & 0x1f);
        let packet_type = packet[1];
        let len = (usize::from(u16::from_be_bytes([packet[2], packet[3]])) + 1) * 4;
        if packet.len() < len {
            return Err(RtcpError::Truncated);
        }
        let body = &packet[4..len];
        let word = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match packet_type {
            PACKET_TYPE_SR | PACKET_TYPE_RR => {
                let info_len = if packet_type == PACKET_TYPE_SR { 20 } else { 0 };
                if body.len() < 4 + info_len + count * 24 {
                    return Err(RtcpError::Truncated);
                }
                let sender_info = (packet_type == PACKET_TYPE_SR).then(|| SenderInfo {
                    ntp: NtpTimestamp((u64::from(word(body, 4)) << 32) | u64::from(word(body, 8))),
                    rtp_timestamp: word(body, 12),
                    packet_count: word(body, 16),
                    octet_count: word(body, 20),
                });
                let blocks_start = 4 + info_len;
                let blocks = (0..count)
                    .map(|i| ReportBlock::read(&body[blocks_start + i * 24..]))
                    .collect();
                reports.push(Report {
                    ssrc: Ssrc(word(body, 0)),
                    sender_info,
                    blocks,
                });
            }
            _ => {}
        }
        packet = &packet[len..];
    }
    Ok(reports)
}

/// Writes a compound packet: an SR (when `sender_info` is given) or RR with up to 31 blocks,
/// then the SDES CNAME that RFC 3550 §6.1 requires in every compound packet. Returns its length.
pub fn write_report(
    out: &mut [u8],
    ssrc: Ssrc,
    sender_info: Option<&SenderInfo>,
    blocks: &[ReportBlock],
    cname: &str,
) -> Result<usize, RtcpError> {
    let blocks = &blocks[..blocks.len().min(31)];
    let report_len = 8 + if sender_info.is_some() { 20 } else { 0 } + blocks.len() * 24;
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    // SDES: header 4, SSRC 4, item type+len 2, text, terminating null, padded to 32 bits.
    let sdes_len = (4 + 4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    let need = report_len + sdes_len;
    if out.len() < need {
        return Err(RtcpError::BufferTooSmall {
            have: out.len(),
            need,
        });
    }
    let packet_type = if sender_info.is_some() {
        PACKET_TYPE_SR
    } else {
        PACKET_TYPE_RR
    };
    out[0] = 0x80 | blocks.len() as u8;
    out[1] = packet_type;
    out[2..4].copy_from_slice(&((report_len / 4 - 1) as u16).to_be_bytes());
    out[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    let mut at = 8;
    if let Some(info) = sender_info {
        out[8..16].copy_from_slice(&info.ntp.0.to_be_bytes());
        out[16..20].copy_from_slice(&info.rtp_timestamp.to_be_bytes());
        out[20..24].copy_from_slice(&info.packet_count.to_be_bytes());
        out[24..28].copy_from_slice(&info.octet_count.to_be_bytes());
        at = 28;
    }
    for block in blocks {
        block.write(&mut out[at..at + 24]);
        at += 24;
    }
    let sdes = &mut out[at..at + sdes_len];
    sdes.fill(0);
    sdes[0] = 0x81;
    sdes[1] = PACKET_TYPE_SDES;
    sdes[2..4].copy_from_slice(&((sdes_len / 4 - 1) as u16).to_be_bytes());
    sdes[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    sdes[8] = 1; // CNAME (RFC 3550 §6.5.1)
    sdes[9] = cname.len() as u8;
    sdes[10..10 + cname.len()].copy_from_slice(cname);
    Ok(need)
}

/// Counts of what we sent on one stream, for the SR sender info.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

impl SenderStats {
    /// Counts one sent packet with this payload length.
    pub fn on_sent(&mut self, payload_len: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
    }
}

/// RFC 3550 A.1: a source is valid after this many packets in sequence.
const MIN_SEQUENTIAL: u16 = 2;
/// RFC 3550 A.1: a jump ahead by more than this is a restart, not loss.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: a packet this far behind is old, not a restart.
const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// What we received from one source: sequence tracking (A.1), loss (A.3) and jitter (A.8).
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    ssrc: Ssrc,
    clock_rate: u32,
    seen: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u16,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Previous transit time in timestamp units.
    transit: Option<i64>,
    /// Jitter scaled by 16 (A.8's integer form).
    jitter_q4: u64,
    epoch: Option<Instant>,
    last_sr: Option<(NtpTimestamp, Instant)>,
}

impl ReceiverStats {
    /// Statistics for a source sending with this RTP clock rate.
    pub fn new(ssrc: Ssrc, clock_rate: u32) -> ReceiverStats {
        ReceiverStats {
            ssrc,
            clock_rate,
            seen: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: MIN_SEQUENTIAL,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            epoch: None,
            last_sr: None,
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Counts a received packet (RFC 3550 A.1 `update_seq`, A.8 jitter); returns false when the
    /// sequence number says the packet is not (yet) valid.
    pub fn on_packet(&mut self, now: Instant, sequence: u16, rtp_timestamp: u32) -> bool {
        let valid = self.update_seq(sequence);
        if valid {
            self.update_jitter(now, rtp_timestamp);
        }
        valid
    }

    fn update_seq(&mut self, seq: u16) -> bool {
        if !self.seen {
            // A.1: a new source starts on probation with the packet before this one as maximum.
            self.seen = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
            self.probation = MIN_SEQUENTIAL;
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return true;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return false;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += RTP_SEQ_MOD;
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // A large jump: a restart if the next packet follows this one.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return false;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, as A.1 does.
        self.received += 1;
        true
    }

    fn update_jitter(&mut self, now: Instant, rtp_timestamp: u32) {
        let epoch = *self.epoch.get_or_insert(now);
        let arrival_units = (now.duration_since(epoch).as_nanos() * u128::from(self.clock_rate)
            / 1_000_000_000) as i64;
        // Transit in timestamp units, taken modulo 2^32 so timestamp wrap does not matter.
        let transit =
            i64::from(arrival_units as u32 as i32).wrapping_sub(i64::from(rtp_timestamp as i32));
        if let Some(previous) = self.transit {
            let d = (transit - previous).unsigned_abs();
            // A.8: J += (|D| - J) / 16, with J kept scaled by 16.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Remembers an SR from this source, for LSR/DLSR in our next report block.
    pub fn on_sender_report(&mut self, now: Instant, info: &SenderInfo) {
        self.last_sr = Some((info.ntp, now));
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles + u32::from(self.max_seq)
    }

    /// Packets expected so far (A.3).
    pub fn expected(&self) -> u32 {
        self.extended_max()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Packets lost so far (A.3; negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        i64::from(self.expected()) - i64::from(self.received)
    }

    /// Packets counted as received.
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4) as u32
    }

    /// The report block for our next SR/RR; starts a new loss-fraction interval (A.3).
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((ntp, at)) => {
                let delay = now.saturating_duration_since(at);
                let units = (delay.as_nanos() * 65536 / 1_000_000_000).min(u128::from(u32::MAX));
                (ntp.middle(), units as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_sequence: self.extended_max(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// When each stream's next report is due: every `interval` (5 s, RFC 3550 §6.2's minimum) from
/// the first packet, driven by the `now` the caller passes.
#[derive(Debug, Clone, Copy)]
pub struct ReportSchedule {
    interval: Duration,
    next: Option<Instant>,
}

impl ReportSchedule {
    /// RFC 3550 §6.2: the recommended minimum interval.
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

    /// A schedule with this interval.
    pub fn new(interval: Duration) -> ReportSchedule {
        ReportSchedule {
            interval,
            next: None,
        }
    }

    /// Whether a report is due at `now`; the first call arms the schedule.
    pub fn poll(&mut self, now: Instant) -> bool {
        match self.next {
            None => {
                self.next = Some(now + self.interval);
                false
            }
            Some(next) if now >= next => {
                // Skip missed slots rather than bursting after a stall.
                let mut due = next + self.interval;
                while due <= now {
                    due += self.interval;
                }
                self.next = Some(due);
                true
            }
            Some(_) => false,
        }
    }

    /// When the next report is due, once armed.
    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_report_round_trips_with_blocks_and_cname() {
        let info = SenderInfo {
            ntp: NtpTimestamp::from_unix(Duration::from_millis(1_700_000_000_500)),
            rtp_timestamp: 160_000,
            packet_count: 1000,
            octet_count: 160_000,
        };
        let block = ReportBlock {
            ssrc: Ssrc(7),
            fraction_lost: 64,
            cumulative_lost: -3,
            highest_sequence: 70_000,
            jitter: 12,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        };
        let mut buf = [0u8; 256];
        let len = write_report(&mut buf, Ssrc(9), Some(&info), &[block], "dialer").expect("fits");
        assert_eq!(len % 4, 0);
        let reports = parse_compound(&buf[..len]).expect("valid");
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].ssrc, Ssrc(9));
        assert_eq!(reports[0].sender_info, Some(info));
        assert_eq!(reports[0].blocks, vec![block]);
        assert_eq!(info.ntp.0 >> 32, 1_700_000_000 + NtpTimestamp::UNIX_OFFSET);
        assert_eq!(info.ntp.0 & 0xffff_ffff, 1 << 31);
    }

    #[test]
    fn receiver_report_has_no_sender_info() {
        let mut buf = [0u8; 64];
        let len = write_report(&mut buf, Ssrc(1), None, &[], "x").expect("fits");
        assert_eq!(buf[1], PACKET_TYPE_RR);
        let reports = parse_compound(&buf[..len]).expect("valid");
        assert_eq!(reports[0].sender_info, None);
        assert!(parse_compound(&buf[..len - 1]).is_err());
    }

    #[test]
    fn loss_fraction_and_cumulative_loss_follow_appendix_a3() {
        let t0 = crate::test_epoch();
        let mut stats = ReceiverStats::new(Ssrc(5), 8000);
        // Sequence 100..=109 with 103 and 107 missing. A.1 keeps the source on probation for
        // its first packet (100), so counting starts at 101: 9 expected, 7 received.
        for seq in (100u16..110).filter(|s| *s != 103 && *s != 107) {
            let at = t0 + Duration::from_millis(u64::from(seq - 100) * 20);
            stats.on_packet(at, seq, u32::from(seq) * 160);
        }
        let block = stats.report_block(t0 + Duration::from_secs(1));
        assert_eq!(block.cumulative_lost, 2);
        // 2 of 9 lost: 2 * 256 / 9 = 56.
        assert_eq!(block.fraction_lost, 56);
        assert_eq!(block.highest_sequence, 109);
        assert_eq!(block.jitter, 0, "evenly spaced packets have no jitter");
        // Next interval without loss.
        for seq in 110u16..115 {
            stats.on_packet(
                t0 + Duration::from_millis(u64::from(seq - 100) * 20),
                seq,
                u32::from(seq) * 160,
            );
        }
        let block = stats.report_block(t0 + Duration::from_secs(2));
        assert_eq!(block.fraction_lost, 0);
        assert_eq!(block.cumulative_lost, 2);
    }

    #[test]
    fn sequence_wrap_extends_the_highest_number() {
        let t0 = crate::test_epoch();
        let mut stats = ReceiverStats::new(Ssrc(5), 8000);
        for (i, seq) in [65533u16, 65534, 65535, 0, 1].into_iter().enumerate() {
            stats.on_packet(
                t0 + Duration::from_millis(i as u64 * 20),
                seq,
                i as u32 * 160,
            );
        }
        assert_eq!(stats.extended_max(), 65536 + 1);
        assert_eq!(stats.cumulative_lost(), 0);
    }

    #[test]
    fn jitter_follows_appendix_a8() {
        let t0 = crate::test_epoch();
        let mut stats = ReceiverStats::new(Ssrc(5), 8000);
        // Alternate arrivals 10 ms early / on time: |D| = 80 units on each packet after the
        // first two (which validate the source).
        for i in 0u16..200 {
            let jitter_ms = if i % 2 == 0 { 0 } else { 10 };
            let at = t0 + Duration::from_millis(u64::from(i) * 20 + jitter_ms);
            stats.on_packet(at, i, u32::from(i) * 160);
        }
        // J converges to |D| = 80.
        assert!(
            (78..=80).contains(&stats.jitter()),
            "jitter {}",
            stats.jitter()
        );
    }

    #[test]
    fn round_trip_comes_from_lsr_and_dlsr() {
        let sent = NtpTimestamp::from_unix(Duration::from_secs(1000));
        let block = ReportBlock {
            ssrc: Ssrc(1),
            fraction_lost: 0,
            cumulative_lost: 0,
            highest_sequence: 0,
            jitter: 0,
            last_sr: sent.middle(),
            delay_since_last_sr: 65536 / 2,
        };
        let arrival = NtpTimestamp::from_unix(Duration::from_millis(1_000_600));
        let rtt = block.round_trip(arrival).expect("has LSR");
        assert!((rtt.as_millis() as i64 - 100).abs() <= 1, "{rtt:?}");
    }

    #[test]
    fn report_due_every_five_seconds_of_virtual_time() {
        let t0 = crate::test_epoch();
        let mut schedule = ReportSchedule::new(ReportSchedule::DEFAULT_INTERVAL);
        assert!(!schedule.poll(t0));
        assert!(!schedule.poll(t0 + Duration::from_millis(4999)));
        assert!(schedule.poll(t0 + Duration::from_secs(5)));
        assert!(!schedule.poll(t0 + Duration::from_secs(6)));
        assert!(schedule.poll(t0 + Duration::from_secs(10)));
        assert_eq!(schedule.next_due(), Some(t0 + Duration::from_secs(15)));
    }
}
