//! RTP packets (RFC 3550 §5): reading through rtp-rs, building into a caller's buffer, and the
//! in-place header rewrites the relay does on every packet.

use rtp_rs::{RtpPacketBuilder, RtpReader, RtpReaderError, Seq};

/// An RTP payload type number, 0..=127 (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadType(pub u8);

impl PayloadType {
    /// A payload type, if `value` fits the 7-bit field.
    pub fn new(value: u8) -> Option<PayloadType> {
        (value <= 127).then_some(PayloadType(value))
    }
}

/// A synchronisation source identifier (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ssrc(pub u32);

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the fixed header, or than its CSRC list, extension or padding claim.
    #[error("RTP packet truncated")]
    Truncated,
    /// The version field is not 2.
    #[error("RTP version {0} is not 2")]
    Version(u8),
    /// The padding count is larger than the payload.
    #[error("RTP padding larger than the payload")]
    Padding,
    /// The output buffer is too small for the packet being built.
    #[error("buffer of {have} bytes too small for a {need}-byte packet")]
    BufferTooSmall {
        /// Bytes available.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
}

impl From<RtpReaderError> for RtpError {
    fn from(error: RtpReaderError) -> Self {
        match error {
            RtpReaderError::UnsupportedVersion(v) => RtpError::Version(v),
            RtpReaderError::PaddingLengthInvalid(_) => RtpError::Padding,
            _ => RtpError::Truncated,
        }
    }
}

/// What a datagram on an RTP port is (RFC 5761 §4, RFC 7983 for the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// RTP.
    Rtp,
    /// RTCP: the second byte (packet type) is 192..=223, which RTP payload types 64..=95 with the
    /// marker bit would also give, and RFC 5761 §4 forbids those payload types for that reason.
    Rtcp,
    /// Neither (version not 2, too short): STUN, DTLS or noise.
    Other,
}

/// Tells RTP from RTCP on a shared port (RFC 5761 §4).
pub fn classify(packet: &[u8]) -> PacketKind {
    if packet.len() < 4 || packet[0] >> 6 != 2 {
        return PacketKind::Other;
    }
    if (192..=223).contains(&packet[1]) {
        PacketKind::Rtcp
    } else if packet.len() >= 12 {
        PacketKind::Rtp
    } else {
        PacketKind::Other
    }
}

/// The fixed-header fields of a received RTP packet and where its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// The marker bit (RFC 3551 §4.1: first packet of a talkspurt).
    pub marker: bool,
    /// Payload type.
    pub payload_type: PayloadType,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp in the payload's clock.
    pub timestamp: u32,
    /// Sender's SSRC.
    pub ssrc: Ssrc,
    /// Offset of the payload in the packet (after CSRCs and extension).
    pub payload_offset: usize,
    /// Payload length, without padding.
    pub payload_len: usize,
}

impl RtpHeader {
    /// Reads and validates an RTP packet (version, CSRC count, extension and padding lengths).
    pub fn parse(packet: &[u8]) -> Result<RtpHeader, RtpError> {
        let reader = RtpReader::new(packet)?;
        Ok(RtpHeader {
            marker: reader.mark(),
            payload_type: PayloadType(reader.payload_type()),
            sequence: u16::from(reader.sequence_number()),
            timestamp: reader.timestamp(),
            ssrc: Ssrc(reader.ssrc()),
            payload_offset: reader.payload_offset(),
            payload_len: reader.payload().len(),
        })
    }

    /// The payload within `packet` (the slice this header was parsed from).
    pub fn payload<'a>(&self, packet: &'a [u8]) -> &'a [u8] {
        &packet[self.payload_offset..self.payload_offset + self.payload_len]
    }
}

/// Rewrites the fixed header of a packet already validated by [`RtpHeader::parse`], in place
/// (RFC 3550 §5.1 layout: byte 1 = M|PT, 2..4 seq, 4..8 timestamp, 8..12 SSRC).
///
/// A relay rewriting every packet must not re-serialise it; this touches 11 bytes.
pub fn rewrite_header(
    packet: &mut [u8],
    marker: bool,
    payload_type: PayloadType,
    sequence: u16,
    timestamp: u32,
    ssrc: Ssrc,
) {
    packet[1] = (u8::from(marker) << 7) | (payload_type.0 & 0x7f);
    packet[2..4].copy_from_slice(&sequence.to_be_bytes());
    packet[4..8].copy_from_slice(&timestamp.to_be_bytes());
    packet[8..12].copy_from_slice(&ssrc.0.to_be_bytes());
}

/// Fields of an RTP packet we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (the peer's number).
    pub payload_type: PayloadType,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Our SSRC.
    pub ssrc: Ssrc,
}

/// Length of the fixed RTP header without CSRCs or extension.
pub const HEADER_LEN: usize = 12;

/// Writes an RTP packet (fixed header, no CSRC, no extension) into `out` and returns its length.
pub fn write_packet(
    out: &mut [u8],
    header: &OutgoingHeader,
    payload: &[u8],
) -> Result<usize, RtpError> {
    let need = HEADER_LEN + payload.len();
    if out.len() < need {
        return Err(RtpError::BufferTooSmall {
            have: out.len(),
            need,
        });
    }
    let builder = RtpPacketBuilder::new()
        .payload_type(header.payload_type.0 & 0x7f)
        .marked(header.marker)
        .sequence(Seq::from(header.sequence))
        .timestamp(header.timestamp)
        .ssrc(header.ssrc.0)
        .payload(payload);
    // The length was checked above, so build_into cannot fail for want of space; no other error
    // applies to a packet without CSRCs or padding.
    builder
        .build_into(out)
        .map_err(|_| RtpError::BufferTooSmall {
            have: out.len(),
            need,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packet_parses_back() {
        let mut buf = [0u8; 64];
        let header = OutgoingHeader {
            marker: true,
            payload_type: PayloadType(8),
            sequence: 65535,
            timestamp: 0xdead_beef,
            ssrc: Ssrc(0x0102_0304),
        };
        let len = write_packet(&mut buf, &header, &[1, 2, 3]).expect("fits");
        assert_eq!(len, 15);
        let parsed = RtpHeader::parse(&buf[..len]).expect("valid");
        assert!(parsed.marker);
        assert_eq!(parsed.payload_type, PayloadType(8));
        assert_eq!(parsed.sequence, 65535);
        assert_eq!(parsed.timestamp, 0xdead_beef);
        assert_eq!(parsed.ssrc, Ssrc(0x0102_0304));
        assert_eq!(parsed.payload(&buf[..len]), &[1, 2, 3]);
    }

    #[test]
    fn rewrite_changes_only_the_header_fields() {
        let mut buf = [0u8; 64];
        let header = OutgoingHeader {
            marker: false,
            payload_type: PayloadType(101),
            sequence: 1,
            timestamp: 2,
            ssrc: Ssrc(3),
        };
        let len = write_packet(&mut buf, &header, &[9; 4]).expect("fits");
        rewrite_header(&mut buf[..len], true, PayloadType(96), 7, 8, Ssrc(9));
        let parsed = RtpHeader::parse(&buf[..len]).expect("valid");
        assert_eq!(
            (
                parsed.marker,
                parsed.payload_type,
                parsed.sequence,
                parsed.timestamp,
                parsed.ssrc
            ),
            (true, PayloadType(96), 7, 8, Ssrc(9))
        );
        assert_eq!(parsed.payload(&buf[..len]), &[9; 4]);
    }

    #[test]
    fn rtcp_is_told_apart_by_packet_type() {
        let sender_report = [0x80, 200, 0, 6, 0, 0, 0, 1];
        assert_eq!(classify(&sender_report), PacketKind::Rtcp);
        let rtp = [0x80, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(classify(&rtp), PacketKind::Rtp);
        let stun = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0];
        assert_eq!(classify(&stun), PacketKind::Other);
    }

    #[test]
    fn truncated_and_wrong_version_are_errors() {
        assert_eq!(RtpHeader::parse(&[0x80, 0, 0]), Err(RtpError::Truncated));
        let v1 = [0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(RtpHeader::parse(&v1), Err(RtpError::Version(1)));
        let mut buf = [0u8; 16];
        let header = OutgoingHeader {
            marker: false,
            payload_type: PayloadType(0),
            sequence: 0,
            timestamp: 0,
            ssrc: Ssrc(0),
        };
        assert_eq!(
            write_packet(&mut buf, &header, &[0; 8]),
            Err(RtpError::BufferTooSmall { have: 16, need: 20 })
        );
    }
}
