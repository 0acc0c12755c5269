//! SDP from a peer (`SessionDescription::parse_bytes`) and the offer/answer built on it: never
//! panics. A description that parses is written with `to_sdp_string` and must parse back to
//! the same origin and media sections; our answer to it must parse, since that text is what
//! we send.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::sdp::{
    answer_offer, build_offer, process_answer, LocalEndpoint, MediaConfig, SessionDescription,
    Transport,
};
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = SessionDescription::parse_bytes(data) else {
        return;
    };
    // The write-back fidelity is checked for sections this crate reads in full. A section
    // on a transport webrtc-sdp does not know is kept only as a stand-in (kind, port,
    // transport) so that an answer can reject it with port 0; its attributes are not kept
    // and need not read back the same.
    let interpreted = sdp
        .media
        .iter()
        .all(|m| !matches!(m.transport, Transport::Other(_)));
    if interpreted {
        round_trip(&sdp);
    }
    offer_answer(&sdp);
});

fn round_trip(sdp: &SessionDescription) {
    let written = sdp.to_sdp_string();
    let again = SessionDescription::parse(&written)
        .unwrap_or_else(|e| panic!("our own SDP does not parse: {e}\n{written}"));
    assert_eq!(
        sdp.origin, again.origin,
        "origin changed by write then parse\n{written}"
    );
    assert_eq!(
        sdp.media, again.media,
        "media changed by write then parse\n{written}"
    );
}

/// Our answer to the input as an offer must parse; the input as the answer to our offer is
/// read without panicking.
fn offer_answer(sdp: &SessionDescription) {
    let config = MediaConfig::default();
    let local = LocalEndpoint {
        address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        rtp_port: 30000,
        session_id: 1,
        session_version: 1,
    };
    // The input as an offer from the peer, and as the peer's answer to our offer.
    if let Ok((answer, _)) = answer_offer(sdp, &config, &local) {
        let text = answer.to_sdp_string();
        SessionDescription::parse(&text)
            .unwrap_or_else(|e| panic!("our answer does not parse: {e}\n{text}"));
    }
    let offer = build_offer(&config, &local);
    let _ = process_answer(&offer, sdp, &config);
}
