//! Writing what a call sends and receives into a pcap file (`dialer call --pcap FILE`): SIP
//! from the signalling task, RTP and RTCP from the call's media task, into one file.
//!
//! Each datagram gets synthesised IPv4/IPv6 and UDP headers (etherparse) so that tshark,
//! Wireshark and `dialer pcap` read the file like a capture taken on the wire. SIP that went
//! over TCP or TLS is written as TCP segments of one stream per direction (sequence numbers
//! running on from the stream's first byte, no handshake), TLS as the plaintext it carried,
//! as a capture decrypted with the session keys shows it; its ports are the listener's on
//! our side. The RTP is written as it was on the wire: SRTP legs' packets encrypted. SDES
//! keys in the SIP are starred out ([`without_sdes_keys`]), so the file cannot decrypt its
//! own SRTP.

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A pcap file being written; buffered, and complete once the last holder drops it (the
/// media task when the call's media closes, the signalling task when the call ends).
pub struct PcapTap {
    writer: PcapWriter<BufWriter<File>>,
    /// Reused for each packet's headers and payload.
    scratch: Vec<u8>,
    failed: bool,
    /// The next sequence number of each TCP stream written, by (from, to).
    streams: HashMap<(SocketAddr, SocketAddr), u32>,
}

/// The most payload one synthesised TCP segment carries (a SIP message over TCP may be far
/// larger than an IP packet can be: `max_message_bytes` goes to 1 MiB).
const SEGMENT: usize = 16_384;

/// The first sequence number of each stream.
const FIRST_SEQ: u32 = 1;

impl std::fmt::Debug for PcapTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapTap")
            .field("failed", &self.failed)
            .finish()
    }
}

/// A tap shared by the signalling task and the call's media task.
pub type SharedTap = Arc<Mutex<PcapTap>>;

impl PcapTap {
    /// Creates (or truncates) `path`; the error names it.
    pub fn create(path: &Path) -> Result<PcapTap, String> {
        let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let header = PcapHeader {
            datalink: DataLink::RAW,
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(BufWriter::new(file), header)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(PcapTap {
            writer,
            scratch: Vec::with_capacity(1600),
            failed: false,
            streams: HashMap::new(),
        })
    }

    /// A shared tap.
    pub fn shared(path: &Path) -> Result<SharedTap, String> {
        Ok(Arc::new(Mutex::new(PcapTap::create(path)?)))
    }

    /// Appends one datagram `from -> to`, stamped with the wall clock. A write error stops
    /// the capture (the call goes on).
    pub fn write(&mut self, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
        self.write_packet(from, to, payload, None);
    }

    /// Appends `payload` to the TCP stream `from -> to`, in segments of at most
    /// 16 KiB each, acknowledging what the other direction has written so far.
    pub fn write_stream(&mut self, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
        for chunk in payload.chunks(SEGMENT) {
            let seq = self.streams.entry((from, to)).or_insert(FIRST_SEQ);
            let this = *seq;
            *seq = seq.wrapping_add(chunk.len() as u32);
            let ack = self.streams.get(&(to, from)).copied().unwrap_or(FIRST_SEQ);
            self.write_packet(from, to, chunk, Some((this, ack)));
        }
    }

    /// One packet: UDP, or a TCP segment (PSH, ACK) at `(seq, ack)`.
    fn write_packet(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        payload: &[u8],
        tcp: Option<(u32, u32)>,
    ) {
        if self.failed {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        self.scratch.clear();
        if let Some((seq, ack)) = tcp {
            let built = match (from, to) {
                (SocketAddr::V4(f), SocketAddr::V4(t)) => {
                    etherparse::PacketBuilder::ipv4(f.ip().octets(), t.ip().octets(), 64)
                        .tcp(f.port(), t.port(), seq, 65_535)
                        .psh()
                        .ack(ack)
                        .write(&mut self.scratch, payload)
                }
                (SocketAddr::V6(f), SocketAddr::V6(t)) => {
                    etherparse::PacketBuilder::ipv6(f.ip().octets(), t.ip().octets(), 64)
                        .tcp(f.port(), t.port(), seq, 65_535)
                        .psh()
                        .ack(ack)
                        .write(&mut self.scratch, payload)
                }
                _ => return,
            };
            if built.is_err() {
                return;
            }
            self.flush_packet(now);
            return;
        }
        let built = match (from, to) {
            (SocketAddr::V4(f), SocketAddr::V4(t)) => {
                etherparse::PacketBuilder::ipv4(f.ip().octets(), t.ip().octets(), 64)
                    .udp(f.port(), t.port())
                    .write(&mut self.scratch, payload)
            }
            (SocketAddr::V6(f), SocketAddr::V6(t)) => {
                etherparse::PacketBuilder::ipv6(f.ip().octets(), t.ip().octets(), 64)
                    .udp(f.port(), t.port())
                    .write(&mut self.scratch, payload)
            }
            // Mixed families cannot be one packet; nothing the dialer sends is like that.
            _ => return,
        };
        if built.is_err() {
            return;
        }
        self.flush_packet(now);
    }

    /// Writes the packet in `scratch`.
    fn flush_packet(&mut self, now: Duration) {
        let len = u32::try_from(self.scratch.len()).unwrap_or(u32::MAX);
        if self
            .writer
            .write_packet(&PcapPacket::new(now, len, &self.scratch))
            .is_err()
        {
            self.failed = true;
        }
    }
}

/// SIP as the capture keeps it: the SDES master keys of every `a=crypto` line (RFC 4568 §9.1,
/// the key-salt after `inline:` up to `|`, `;` or the end of the line) overwritten with `*`,
/// byte for byte, so Content-Length still holds and the file never holds a key that decrypts
/// the SRTP beside it. Borrowed when there is nothing to hide.
pub fn without_sdes_keys(sip: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const CRYPTO: &[u8] = b"a=crypto:";
    const INLINE: &[u8] = b"inline:";
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|at| from + at)
    };
    let Some(mut at) = find(sip, CRYPTO, 0) else {
        return std::borrow::Cow::Borrowed(sip);
    };
    let mut out = sip.to_vec();
    loop {
        let line_end = out[at..]
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .map_or(out.len(), |n| at + n);
        let mut from = at;
        while let Some(key) = find(&out[..line_end], INLINE, from) {
            let mut i = key + INLINE.len();
            while i < line_end && !matches!(out[i], b'|' | b';' | b' ' | b'\t') {
                out[i] = b'*';
                i += 1;
            }
            from = i;
        }
        match find(&out, CRYPTO, line_end) {
            Some(next) => at = next,
            None => return std::borrow::Cow::Owned(out),
        }
    }
}

/// Writes through a shared tap (a poisoned lock, from a panic elsewhere, drops the packet).
pub fn write_shared(tap: &SharedTap, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
    if let Ok(mut t) = tap.lock() {
        t.write(from, to, payload);
    }
}

/// [`write_shared`] for bytes of a TCP (or TLS) stream.
pub fn write_shared_stream(tap: &SharedTap, from: SocketAddr, to: SocketAddr, payload: &[u8]) {
    if let Ok(mut t) = tap.lock() {
        t.write_stream(from, to, payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_datagrams_read_back_with_their_addresses_and_payloads() {
        let dir = std::env::temp_dir().join(format!("dialer-tap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcap");
        let mut tap = PcapTap::create(&path).unwrap();
        let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:5062".parse().unwrap();
        tap.write(a, b, b"OPTIONS sip:x SIP/2.0\r\n\r\n");
        tap.write(b, a, b"\x80\x00\x00\x01");
        drop(tap);
        let cap = capture::read_file(&path).unwrap();
        assert_eq!(cap.packets.len(), 2);
        assert_eq!((cap.packets[0].src, cap.packets[0].dst), (a, b));
        assert_eq!(cap.packets[1].payload, b"\x80\x00\x00\x01");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sip_over_tcp_is_written_as_streams_the_capture_reader_reassembles() {
        let dir = std::env::temp_dir().join(format!("dialer-tap-tcp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcap");
        let mut tap = PcapTap::create(&path).unwrap();
        let a: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:5062".parse().unwrap();
        let invite = b"INVITE sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let ok = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        tap.write_stream(a, b, invite);
        tap.write_stream(b, a, ok);
        // A message larger than one segment is split and reassembled.
        let body = "x".repeat(40_000);
        let big = format!("MESSAGE sip:x SIP/2.0\r\nContent-Length: 40000\r\n\r\n{body}");
        tap.write_stream(a, b, big.as_bytes());
        drop(tap);
        let cap = capture::read_file(&path).unwrap();
        assert!(cap.warnings.is_empty(), "{:?}", cap.warnings);
        let from_a: Vec<u8> = cap
            .packets
            .iter()
            .filter(|p| p.src == a && p.transport == capture::Transport::Tcp)
            .flat_map(|p| p.payload.clone())
            .collect();
        let mut expected = invite.to_vec();
        expected.extend_from_slice(big.as_bytes());
        assert_eq!(from_a, expected);
        let from_b: Vec<u8> = cap
            .packets
            .iter()
            .filter(|p| p.src == b)
            .flat_map(|p| p.payload.clone())
            .collect();
        assert_eq!(from_b, ok);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sdes_keys_are_starred_out_at_their_length_and_nothing_else_changes() {
        let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        let sip = format!(
            "INVITE sip:x SIP/2.0\r\nContent-Length: 999\r\n\r\nv=0\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20\r\n\
             a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{key}\r\na=ptime:20\r\n"
        );
        let kept = without_sdes_keys(sip.as_bytes());
        let text = String::from_utf8(kept.to_vec()).unwrap();
        assert_eq!(text.len(), sip.len());
        assert!(!text.contains(key), "{text}");
        let stars = "*".repeat(key.len());
        assert!(text.contains(&format!("inline:{stars}|2^20\r\n")), "{text}");
        assert!(
            text.contains(&format!("_32 inline:{stars}\r\na=ptime:20")),
            "{text}"
        );
        let plain = b"OPTIONS sip:x SIP/2.0\r\n\r\n";
        assert!(matches!(
            without_sdes_keys(plain),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
