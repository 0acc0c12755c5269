//! Capture files: whatever bytes `dialer pcap` is given, the capture reader (pcap, pcapng,
//! NetMon; link layers, IP, fragments, TCP reassembly, WebSocket) and the RTP stream analysis
//! never panic, and the reader's documented order holds. `read_file` is `std::fs::read` then
//! `read_bytes`, so the bytes go to `read_bytes` directly.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use capture::rtp::{streams, RtpOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(capture) = capture::read_bytes(data) else {
        return;
    };
    assert!(
        capture.packets.windows(2).all(|w| w[0].index <= w[1].index),
        "packets are ordered by frame number"
    );
    // Wireshark's defaults, then dynamic types with clock rates (Opus, wideband events) and a
    // telephone-event type that is also an audio type, as odd SDP could declare.
    let _ = streams(&capture, &RtpOptions::default());
    let options = RtpOptions {
        clock_rates: BTreeMap::from([(96, 8000), (101, 8000), (111, 48000), (127, 0)]),
        telephone_event_types: BTreeSet::from([0, 96, 101, 127]),
    };
    for stream in streams(&capture, &options) {
        assert!(stream.packets > 0, "a stream has at least its first packet");
    }
});
