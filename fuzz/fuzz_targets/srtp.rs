//! What an SRTP leg receives: whatever bytes arrive, unprotecting them as SRTP or SRTCP under
//! every suite never panics and never accepts a packet it did not authenticate (these keys
//! protected nothing, so nothing may pass). A packet that reads as RTP, protected with one key,
//! unprotects with it to the same bytes; and an `a=crypto` value never panics the SDES reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtp::RtpHeader;
use media::sdp::CryptoAttribute;
use media::srtp::{CryptoSuite, MasterKey, SrtpSession};
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = CryptoAttribute::parse(text);
    }
    for suite in CryptoSuite::ALL {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let ours = MasterKey::generate(suite, &mut rng);
        let theirs = MasterKey::generate(suite, &mut rng);
        let mut receiver = SrtpSession::new(&ours, &theirs).expect("one suite");
        let mut buf = vec![0u8; data.len() + 64];
        buf[..data.len()].copy_from_slice(data);
        assert!(receiver.unprotect_rtp(&mut buf, data.len()).is_err());
        buf[..data.len()].copy_from_slice(data);
        assert!(receiver.unprotect_rtcp(&mut buf, data.len()).is_err());
        if RtpHeader::parse(data).is_err() {
            continue;
        }
        let mut sender = SrtpSession::new(&theirs, &ours).expect("one suite");
        buf[..data.len()].copy_from_slice(data);
        let Ok(sent) = sender.protect_rtp(&mut buf, data.len()) else {
            continue;
        };
        let mut peer = SrtpSession::new(&ours, &theirs).expect("one suite");
        let back = peer
            .unprotect_rtp(&mut buf, sent)
            .expect("our own packet authenticates");
        assert_eq!(&buf[..back], data);
    }
});
