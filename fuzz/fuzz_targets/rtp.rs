//! What arrives on an RTP port: classification (RFC 5761 §4), the RTP header reader and the
//! RTCP compound reader never panic. A packet that reads as RTP can have its header rewritten
//! in place, as the relay does, and still reads with the new fields and the same payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtcp::parse_compound;
use media::rtp::{classify, rewrite_header, PacketKind, PayloadType, RtpHeader, Ssrc};

fuzz_target!(|data: &[u8]| {
    let kind = classify(data);
    let _ = parse_compound(data);
    let Ok(header) = RtpHeader::parse(data) else {
        return;
    };
    assert_ne!(
        kind,
        PacketKind::Other,
        "classify calls Other a packet the RTP reader accepts"
    );
    let payload = header.payload(data).to_vec();
    let mut packet = data.to_vec();
    let payload_type = PayloadType(header.payload_type.0 ^ 0x21);
    let sequence = header.sequence.wrapping_add(1000);
    let timestamp = header.timestamp.wrapping_add(160);
    let ssrc = Ssrc(!header.ssrc.0);
    rewrite_header(
        &mut packet,
        !header.marker,
        payload_type,
        sequence,
        timestamp,
        ssrc,
    );
    let rewritten = RtpHeader::parse(&packet).expect("a header rewrite keeps the packet valid");
    assert_eq!(rewritten.marker, !header.marker);
    assert_eq!(rewritten.payload_type, payload_type);
    assert_eq!(rewritten.sequence, sequence);
    assert_eq!(rewritten.timestamp, timestamp);
    assert_eq!(rewritten.ssrc, ssrc);
    assert_eq!(rewritten.payload(&packet), payload.as_slice());
});
