//! RTP streams written as pcap files at test time, for SIPp's `play_pcap_audio`: G.711 audio
//! interleaved with RFC 4733 telephone-events on one SSRC, as a phone sends them.
//!
//! SIPp 3.6 replays a pcap's UDP payloads with the capture's timing from a raw socket, putting
//! its own media address and port as source and the address in the last SDP received as
//! destination, and recomputing the UDP checksum; the addresses written here are the carrier's
//! media address and a placeholder destination, so the file is a valid capture on its own too.
//!
//! Frames are built with etherparse and written with pcap-file; only the twelve-byte RTP fixed
//! header (RFC 3550 §5.1) and the four-byte event payload (RFC 4733 §2.3) are written out
//! here, so the test input shares no code with the RTP handling under test.

use std::net::SocketAddrV4;
use std::path::Path;
use std::time::Duration;

use super::HarnessError;

/// Event code of a DTMF key (RFC 4733 §3.2: `0`-`9` are 0-9, `*` 10, `#` 11, `A`-`D` 12-15).
pub fn dtmf_event(key: char) -> Option<u8> {
    match key {
        '0'..='9' => u8::try_from(u32::from(key) - u32::from('0')).ok(),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => u8::try_from(u32::from(key) - u32::from('A') + 12).ok(),
        _ => None,
    }
}

/// One RTP stream being laid out packet by packet, 20 ms apart.
#[derive(Debug, Clone)]
pub struct RtpStream {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    at: Duration,
    packets: Vec<(Duration, Vec<u8>)>,
}

/// Packet spacing: 20 ms, 160 samples at 8 kHz.
const PTIME: Duration = Duration::from_millis(20);
const SAMPLES: u32 = 160;

impl RtpStream {
    /// An empty stream with these initial values.
    pub fn new(ssrc: u32, seq: u16, timestamp: u32) -> RtpStream {
        RtpStream {
            ssrc,
            seq,
            timestamp,
            at: Duration::ZERO,
            packets: Vec::new(),
        }
    }

    fn push(&mut self, marker: bool, payload_type: u8, timestamp: u32, payload: &[u8]) {
        let mut packet = Vec::with_capacity(12 + payload.len());
        packet.push(0x80); // V=2, no padding, no extension, no CSRC
        packet.push((u8::from(marker) << 7) | (payload_type & 0x7f));
        packet.extend_from_slice(&self.seq.to_be_bytes());
        packet.extend_from_slice(&timestamp.to_be_bytes());
        packet.extend_from_slice(&self.ssrc.to_be_bytes());
        packet.extend_from_slice(payload);
        self.packets.push((self.at, packet));
        self.seq = self.seq.wrapping_add(1);
        self.at += PTIME;
    }

    /// `count` audio packets of 160 bytes each, all `byte` (0xD5 is A-law silence).
    pub fn audio(&mut self, payload_type: u8, byte: u8, count: usize) -> &mut RtpStream {
        let payload = [byte; SAMPLES as usize];
        for _ in 0..count {
            let ts = self.timestamp;
            self.push(false, payload_type, ts, &payload);
            self.timestamp = self.timestamp.wrapping_add(SAMPLES);
        }
        self
    }

    /// One key press lasting `steps` packets (20 ms each) and its end, per RFC 4733 §2.5.1:
    /// every packet carries the event's start timestamp, the first has the marker bit, the
    /// duration grows by 160 per packet, and the final packet (E bit set) is sent three times.
    pub fn key(&mut self, payload_type: u8, event: u8, steps: u32) -> &mut RtpStream {
        let start = self.timestamp;
        let volume = 10; // -10 dBm0 (RFC 4733 §2.3.4)
        for step in 1..=steps {
            let duration = u16::try_from(step * SAMPLES).unwrap_or(u16::MAX);
            let mut payload = vec![event, volume];
            payload.extend_from_slice(&duration.to_be_bytes());
            self.push(step == 1, payload_type, start, &payload);
        }
        let duration = u16::try_from(steps * SAMPLES).unwrap_or(u16::MAX);
        for _ in 0..3 {
            let mut payload = vec![event, 0x80 | volume];
            payload.extend_from_slice(&duration.to_be_bytes());
            // The retransmitted end packets go out back to back (RFC 4733 §2.5.1.4), each
            // with its own sequence number.
            self.push(false, payload_type, start, &payload);
            self.at -= PTIME;
        }
        self.at += PTIME;
        self.timestamp = start.wrapping_add(steps * SAMPLES);
        self
    }

    /// The packets laid out so far: (offset from the first, RTP bytes).
    pub fn packets(&self) -> &[(Duration, Vec<u8>)] {
        &self.packets
    }

    /// Writes the stream as an Ethernet pcap of UDP datagrams from `src` to `dst`.
    pub fn write_pcap(
        &self,
        path: &Path,
        src: SocketAddrV4,
        dst: SocketAddrV4,
    ) -> Result<(), HarnessError> {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        let fail = |e: String| HarnessError::Setup(format!("writing {}: {e}", path.display()));
        let file = std::fs::File::create(path).map_err(|e| fail(e.to_string()))?;
        let header = PcapHeader {
            datalink: pcap_file::DataLink::ETHERNET,
            endianness: pcap_file::Endianness::Little,
            ..PcapHeader::default()
        };
        let mut writer = PcapWriter::with_header(file, header).map_err(|e| fail(e.to_string()))?;
        // Capture times from an arbitrary fixed epoch: only the differences matter to SIPp.
        let epoch = Duration::from_secs(1_700_000_000);
        for (at, rtp) in &self.packets {
            let builder =
                etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                    .ipv4(src.ip().octets(), dst.ip().octets(), 64)
                    .udp(src.port(), dst.port());
            let mut frame = Vec::with_capacity(builder.size(rtp.len()));
            builder
                .write(&mut frame, rtp)
                .map_err(|e| fail(e.to_string()))?;
            let len = u32::try_from(frame.len()).map_err(|e| fail(e.to_string()))?;
            writer
                .write_packet(&PcapPacket::new(epoch + *at, len, &frame))
                .map_err(|e| fail(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_rfc4733_event_codes() {
        assert_eq!(dtmf_event('0'), Some(0));
        assert_eq!(dtmf_event('9'), Some(9));
        assert_eq!(dtmf_event('*'), Some(10));
        assert_eq!(dtmf_event('#'), Some(11));
        assert_eq!(dtmf_event('D'), Some(15));
        assert_eq!(dtmf_event('x'), None);
    }

    #[test]
    fn a_key_press_keeps_its_start_timestamp_and_ends_three_times() {
        let mut stream = RtpStream::new(0x1234_5678, 100, 8000);
        stream.audio(8, 0xd5, 2).key(96, 5, 4).audio(8, 0xd5, 1);
        let packets = stream.packets();
        assert_eq!(packets.len(), 2 + 4 + 3 + 1);
        let pt = |p: &[u8]| p[1] & 0x7f;
        let marker = |p: &[u8]| p[1] & 0x80 != 0;
        let ts = |p: &[u8]| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
        let events = &packets[2..9];
        assert!(events.iter().all(|(_, p)| pt(p) == 96 && ts(p) == 8320));
        assert!(marker(&events[0].1) && !marker(&events[1].1));
        assert_eq!(&events[3].1[12..16], &[5, 10, 0x02, 0x80], "duration 640");
        assert!(events[4..]
            .iter()
            .all(|(_, p)| p[12..16] == [5, 0x8a, 0x02, 0x80]));
        assert_eq!(
            packets.iter().map(|(_, p)| seq(p)).collect::<Vec<_>>(),
            (100..110).collect::<Vec<_>>()
        );
        assert_eq!(
            ts(&packets[9].1),
            8320 + 640,
            "audio resumes after the event"
        );
        assert_eq!(packets[9].0, Duration::from_millis(20 * 7));
    }

    #[test]
    fn the_pcap_holds_one_udp_datagram_per_packet() {
        let dir = crate::interop::TestDir::new("rtp-pcap").expect("temp dir");
        let mut stream = RtpStream::new(1, 1, 0);
        stream.audio(8, 0xd5, 3).key(101, 1, 2);
        let path = dir.join("s.pcap");
        stream
            .write_pcap(
                &path,
                "127.0.0.1:4000".parse().unwrap(),
                "127.0.0.1:5000".parse().unwrap(),
            )
            .expect("written");
        let file = std::fs::File::open(&path).unwrap();
        let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap");
        let mut sizes = Vec::new();
        while let Some(packet) = reader.next_packet() {
            sizes.push(packet.expect("a packet").data.len());
        }
        // Ethernet 14 + IPv4 20 + UDP 8 + RTP 12 + payload.
        let audio = 14 + 20 + 8 + 12 + 160;
        let event = 14 + 20 + 8 + 12 + 4;
        assert_eq!(
            sizes,
            [audio, audio, audio, event, event, event, event, event]
        );
    }
}
