//! SRTP and SRTCP (RFC 3711) for one leg: the peer's master key to unprotect what it sends, ours
//! to protect what we send it, as SDES (RFC 4568) hands them out.
//!
//! # Which crate does the cryptography, and why
//! `webrtc-srtp` (webrtc-rs), a pure-Rust implementation on RustCrypto's AES, HMAC-SHA1 and
//! AES-GCM, over Debian's libsrtp2 through the `srtp` bindings:
//! - it is maintained (released with the rest of webrtc-rs), while the `srtp` bindings have not
//!   had a release in years;
//! - it needs no system library and no FFI, so the workspace keeps `unsafe_code = "forbid"` and
//!   builds the same on every machine; the cipher code is RustCrypto's, which uses AES-NI when
//!   the CPU has it;
//! - it has the three suites SDES offers in practice, AES_CM_128_HMAC_SHA1_80 and _32
//!   (RFC 4568 §6.2) and AEAD_AES_128_GCM (RFC 7714 §14.2), with the RFC 3711 §3.3.1 rollover
//!   counter estimate per SSRC and a replay window.
//!
//! Its price: it returns each protected or unprotected packet in a new buffer, so every call
//! here allocates once and copies the packet back into the caller's buffer (the relay
//! benchmark measures it), and it has no MKI (RFC 3711 §3.1) and no key derivation rate other
//! than 0. SDES lines that need either are refused where they are read
//! ([`crate::sdp::CryptoAttribute`]).
//!
//! # Keys
//! [`MasterKey`] holds key and salt; its `Debug` prints the suite only, so neither a log line
//! nor a panic message can carry a key. Keys come from an injected random source
//! ([`MasterKey::generate`]).

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use rand::RngCore;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

/// Packets behind the highest one seen that are still accepted once (RFC 3711 §3.3.2 asks for
/// at least 64; libsrtp uses 128).
const REPLAY_WINDOW: usize = 128;

/// RFC 3711 §9.2: a master key protects at most 2^48 SRTP packets (and 2^31 SRTCP packets).
pub const MAX_KEY_LIFETIME: u64 = 1 << 48;

/// Base64 as RFC 4568 §6.1 writes `inline:` keys (RFC 4648 alphabet, padded), read with or
/// without the padding, as real phones send both.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An SRTP crypto suite this crate can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptoSuite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 4568 §6.2.1).
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit RTP tag (RFC 4568 §6.2.2).
    AesCm128HmacSha1_32,
    /// AES-128 GCM with a 128-bit tag (RFC 7714 §14.2).
    AeadAes128Gcm,
}

impl CryptoSuite {
    /// Every suite, in the order we offer them.
    pub const ALL: [CryptoSuite; 3] = [
        CryptoSuite::AesCm128HmacSha1_80,
        CryptoSuite::AesCm128HmacSha1_32,
        CryptoSuite::AeadAes128Gcm,
    ];

    /// The name in `a=crypto`.
    pub fn sdp_name(self) -> &'static str {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            CryptoSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            CryptoSuite::AeadAes128Gcm => "AEAD_AES_128_GCM",
        }
    }

    /// The suite an `a=crypto` name stands for (names are case-sensitive, RFC 4568 §9.2).
    pub fn from_sdp_name(name: &str) -> Option<CryptoSuite> {
        CryptoSuite::ALL.into_iter().find(|s| s.sdp_name() == name)
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        16
    }

    /// Master salt length in bytes: 112 bits for AES-CM (RFC 3711 §8.2), 96 for GCM (RFC 7714
    /// §12).
    pub fn salt_len(self) -> usize {
        match self {
            CryptoSuite::AeadAes128Gcm => 12,
            _ => 14,
        }
    }

    /// Bytes SRTP adds to an RTP packet: the authentication tag.
    pub fn rtp_overhead(self) -> usize {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => 10,
            CryptoSuite::AesCm128HmacSha1_32 => 4,
            CryptoSuite::AeadAes128Gcm => 16,
        }
    }

    /// Bytes SRTCP adds to an RTCP packet: E flag and index (4), then the tag (RFC 3711 §3.4:
    /// 80 bits for both AES-CM suites).
    pub fn rtcp_overhead(self) -> usize {
        match self {
            CryptoSuite::AeadAes128Gcm => 4 + 16,
            _ => 4 + 10,
        }
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            CryptoSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            CryptoSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
            CryptoSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        }
    }
}

impl fmt::Display for CryptoSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sdp_name())
    }
}

/// A master key and salt for one suite, and how many packets it may protect.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey {
    suite: CryptoSuite,
    key_and_salt: Vec<u8>,
    lifetime: u64,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("suite", &self.suite)
            .field("key", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Why key material cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The `inline:` value is not base64.
    #[error("the key is not base64")]
    NotBase64,
    /// Key and salt do not have the suite's length.
    #[error("{suite} needs {expected} bytes of key and salt, got {got}")]
    Length {
        /// The suite.
        suite: CryptoSuite,
        /// Its key plus salt length.
        expected: usize,
        /// What the line carried.
        got: usize,
    },
    /// A lifetime of 0 or above RFC 3711's 2^48.
    #[error("key lifetime {0} is outside 1..=2^48 (RFC 3711 §9.2)")]
    Lifetime(u64),
}

impl MasterKey {
    /// A fresh key and salt from `rng`, with the RFC 3711 maximum lifetime.
    pub fn generate(suite: CryptoSuite, rng: &mut dyn RngCore) -> MasterKey {
        let mut key_and_salt = vec![0; suite.key_len() + suite.salt_len()];
        rng.fill_bytes(&mut key_and_salt);
        MasterKey {
            suite,
            key_and_salt,
            lifetime: MAX_KEY_LIFETIME,
        }
    }

    /// Reads the base64 of an `inline:` key parameter (RFC 4568 §6.1: key then salt).
    pub fn from_base64(
        suite: CryptoSuite,
        text: &str,
        lifetime: u64,
    ) -> Result<MasterKey, KeyError> {
        let key_and_salt = BASE64.decode(text).map_err(|_| KeyError::NotBase64)?;
        let expected = suite.key_len() + suite.salt_len();
        if key_and_salt.len() != expected {
            return Err(KeyError::Length {
                suite,
                expected,
                got: key_and_salt.len(),
            });
        }
        if lifetime == 0 || lifetime > MAX_KEY_LIFETIME {
            return Err(KeyError::Lifetime(lifetime));
        }
        Ok(MasterKey {
            suite,
            key_and_salt,
            lifetime,
        })
    }

    /// Key and salt in base64, for an `inline:` parameter.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.key_and_salt)
    }

    /// The suite the key is for.
    pub fn suite(&self) -> CryptoSuite {
        self.suite
    }

    /// How many packets the key may protect.
    pub fn lifetime(&self) -> u64 {
        self.lifetime
    }

    fn context(&self) -> Context {
        let (key, salt) = self.key_and_salt.split_at(self.suite.key_len());
        Context::new(
            key,
            salt,
            self.suite.profile(),
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
        )
        .expect("key and salt lengths were checked against the suite")
    }
}

/// Why a packet was not protected or unprotected; the packet is to be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SrtpError {
    /// The authentication tag does not match: not from the peer, or altered (RFC 3711 §3.3).
    #[error("authentication failed")]
    Authentication,
    /// A packet index already received or older than the replay window (RFC 3711 §3.3.2).
    #[error("replayed packet")]
    Replay,
    /// Too short for a header and tag.
    #[error("packet too short")]
    TooShort,
    /// The buffer has no room for the tag.
    #[error("buffer too small for the protected packet")]
    BufferTooSmall,
    /// The master key protected as many packets as its lifetime allows (RFC 3711 §9.2); the
    /// call needs new keys (a re-INVITE with new `a=crypto`).
    #[error("the master key's lifetime is used up")]
    KeyExhausted,
    /// Anything else the SRTP implementation refused (a malformed header).
    #[error("SRTP: {0}")]
    Other(String),
}

impl From<webrtc_srtp::Error> for SrtpError {
    fn from(e: webrtc_srtp::Error) -> Self {
        use webrtc_srtp::Error as E;
        match e {
            E::ErrFailedToVerifyAuthTag
            | E::RtpFailedToVerifyAuthTag
            | E::RtcpFailedToVerifyAuthTag
            | E::AesGcm(_) => SrtpError::Authentication,
            E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) | E::ErrDuplicated => {
                SrtpError::Replay
            }
            E::ErrTooShortRtp
            | E::ErrTooShortRtcp
            | E::SrtpTooSmall(..)
            | E::SrtcpTooSmall(..)
            | E::RtcpInvalidLengthAuthTag(..) => SrtpError::TooShort,
            E::ErrExceededMaxPackets => SrtpError::KeyExhausted,
            other => SrtpError::Other(other.to_string()),
        }
    }
}

/// RFC 3550 §5.1 fixed RTP header and §6.4.1 RTCP header with SSRC.
const RTP_HEADER: usize = 12;
const RTCP_HEADER: usize = 8;

fn check_len(len: usize, header: usize) -> Result<(), SrtpError> {
    if len < header {
        Err(SrtpError::TooShort)
    } else {
        Ok(())
    }
}

/// Checks that the RTP header (RFC 3550 §5.1: version 2, CSRCs, §5.3.1 extension) and `tag`
/// more bytes fit in `packet`. webrtc-srtp 0.17 reads the header with the `rtp` crate, which
/// panics on an extension longer than the packet; so nothing reaches it unchecked.
fn check_header(packet: &[u8], tag: usize) -> Result<(), SrtpError> {
    let header = packet.get(..RTP_HEADER).ok_or(SrtpError::TooShort)?;
    if header[0] >> 6 != 2 {
        return Err(SrtpError::Other("not RTP version 2".to_string()));
    }
    let mut end = RTP_HEADER + 4 * usize::from(header[0] & 0x0F);
    if header[0] & 0x10 != 0 {
        let extension = packet.get(end..end + 4).ok_or(SrtpError::TooShort)?;
        let profile = u16::from_be_bytes([extension[0], extension[1]]);
        let words = usize::from(u16::from_be_bytes([extension[2], extension[3]]));
        let body = packet
            .get(end + 4..end + 4 + 4 * words)
            .ok_or(SrtpError::TooShort)?;
        if !rfc8285_elements_fit(profile, body) {
            return Err(SrtpError::Other(
                "malformed RFC 8285 header extension".to_string(),
            ));
        }
        end += 4 + 4 * words;
    }
    if end + tag > packet.len() {
        return Err(SrtpError::TooShort);
    }
    Ok(())
}

/// Whether every RFC 8285 element of a one-byte (0xBEDE, §4.2) or two-byte (0x1000, §4.3)
/// header extension lies inside the extension. The `rtp` crate parses these elements and
/// panics on one that runs past the packet; other profiles are opaque to it.
fn rfc8285_elements_fit(profile: u16, body: &[u8]) -> bool {
    let mut at = 0;
    while at < body.len() {
        let b = body[at];
        at += 1;
        if b == 0 {
            continue; // padding
        }
        let len = match profile {
            0xBEDE if b >> 4 == 15 => return true, // reserved id: the rest is not read
            0xBEDE => usize::from(b & 0x0F) + 1,
            0x1000 => match body.get(at) {
                Some(&len) => {
                    at += 1;
                    usize::from(len)
                }
                None => return false,
            },
            _ => return true,
        };
        at += len;
        if at > body.len() {
            return false;
        }
    }
    true
}

/// One direction: a context and what is left of its key's lifetime.
struct Direction {
    context: Context,
    remaining: u64,
}

impl Direction {
    fn new(key: &MasterKey) -> Direction {
        Direction {
            context: key.context(),
            remaining: key.lifetime,
        }
    }

    /// Runs `op` on `buf[..len]` and copies its output back; counts against the lifetime.
    fn apply<B: AsRef<[u8]>>(
        &mut self,
        buf: &mut [u8],
        len: usize,
        op: impl FnOnce(&mut Context, &[u8]) -> Result<B, webrtc_srtp::Error>,
    ) -> Result<usize, SrtpError> {
        if self.remaining == 0 {
            return Err(SrtpError::KeyExhausted);
        }
        let out = op(&mut self.context, &buf[..len.min(buf.len())])?;
        let out = out.as_ref();
        let target = buf.get_mut(..out.len()).ok_or(SrtpError::BufferTooSmall)?;
        target.copy_from_slice(out);
        self.remaining -= 1;
        Ok(out.len())
    }
}

/// SRTP for one leg: the peer's key for what it sends us, ours for what we send it.
pub struct SrtpSession {
    suite: CryptoSuite,
    inbound: Direction,
    outbound: Direction,
}

impl fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SrtpSession")
            .field("suite", &self.suite)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl SrtpSession {
    /// A session that protects with `local` and unprotects with `remote`. Both keys are for one
    /// suite (SDES answers with the offer's suite, RFC 4568 §7.1.2); `None` if not.
    pub fn new(local: &MasterKey, remote: &MasterKey) -> Option<SrtpSession> {
        (local.suite == remote.suite).then(|| SrtpSession {
            suite: local.suite,
            inbound: Direction::new(remote),
            outbound: Direction::new(local),
        })
    }

    /// The suite in use.
    pub fn suite(&self) -> CryptoSuite {
        self.suite
    }

    /// Decrypts and authenticates the SRTP packet `buf[..len]` in place; the RTP length.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let len = len.min(buf.len());
        check_header(&buf[..len], self.suite.rtp_overhead())?;
        self.inbound.apply(buf, len, Context::decrypt_rtp)
    }

    /// Encrypts the RTP packet `buf[..len]` in place and appends its tag; the SRTP length.
    /// `buf` needs [`CryptoSuite::rtp_overhead`] bytes of room after the packet.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let len = len.min(buf.len());
        check_header(&buf[..len], 0)?;
        self.outbound.apply(buf, len, Context::encrypt_rtp)
    }

    /// Decrypts and authenticates the SRTCP packet `buf[..len]` in place; the RTCP length.
    ///
    /// An SRTCP packet without the E flag is refused before the crate sees it: we never agree
    /// to unencrypted SRTCP (RFC 4568 §6.3.2), and webrtc-srtp 0.17 returns an AES-CM packet
    /// whose E flag is clear without checking its tag. The length is checked here too, since
    /// that crate reads the index from the end of the packet before checking its length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let len = len.min(buf.len());
        check_len(len, RTCP_HEADER + self.suite.rtcp_overhead())?;
        // RFC 3711 §3.4: E flag and index follow the encrypted portion, before the tag; RFC 7714
        // §9.1 puts them last, after the AEAD tag.
        let e_flag_at = match self.suite {
            CryptoSuite::AeadAes128Gcm => len - 4,
            _ => len - self.suite.rtcp_overhead(),
        };
        if buf[e_flag_at] & 0x80 == 0 {
            return Err(SrtpError::Authentication);
        }
        self.inbound.apply(buf, len, Context::decrypt_rtcp)
    }

    /// Encrypts the RTCP packet `buf[..len]` in place with its SRTCP index and tag (RFC 3711
    /// §3.4); needs [`CryptoSuite::rtcp_overhead`] bytes of room.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        check_len(len, RTCP_HEADER)?;
        self.outbound.apply(buf, len, Context::encrypt_rtcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(3711)
    }

    /// A PCMU packet of 160 bytes of `fill`.
    fn rtp(buf: &mut [u8], seq: u16, fill: u8) -> usize {
        buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF]);
        buf[2..4].copy_from_slice(&seq.to_be_bytes());
        buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        buf[12..172].fill(fill);
        172
    }

    /// Our sender and the peer's receiver: the peer unprotects with the key we protect with.
    fn pair(suite: CryptoSuite) -> (SrtpSession, SrtpSession) {
        let mut r = rng();
        let ours = MasterKey::generate(suite, &mut r);
        let theirs = MasterKey::generate(suite, &mut r);
        (
            SrtpSession::new(&ours, &theirs).unwrap(),
            SrtpSession::new(&theirs, &ours).unwrap(),
        )
    }

    #[test]
    fn every_suite_round_trips_and_hides_the_payload() {
        for suite in CryptoSuite::ALL {
            let (mut us, mut peer) = pair(suite);
            let mut buf = [0u8; 256];
            let len = rtp(&mut buf, 1, 0xFF);
            let sent = us.protect_rtp(&mut buf, len).unwrap();
            assert_eq!(sent, len + suite.rtp_overhead(), "{suite}");
            assert_ne!(
                &buf[12..172],
                &[0xFF; 160][..],
                "{suite}: payload encrypted"
            );
            assert_eq!(&buf[..2], &[0x80, 0], "{suite}: header in the clear");
            assert_eq!(peer.unprotect_rtp(&mut buf, sent).unwrap(), len);
            assert_eq!(&buf[12..172], &[0xFF; 160][..]);
        }
    }

    #[test]
    fn rollover_counter_follows_more_than_65536_packets_across_the_wrap() {
        // Starts 30 packets before the wrap and runs past a second one: every packet
        // authenticates only if both sides count the rollover the same (RFC 3711 §3.3.1),
        // since the ROC is part of the authenticated index.
        let (mut us, mut peer) = pair(CryptoSuite::AesCm128HmacSha1_32);
        let mut buf = [0u8; 256];
        let start: u16 = 65_506;
        for i in 0..(1u32 << 16) + 100 {
            let seq = start.wrapping_add(i as u16);
            let len = rtp(&mut buf, seq, i as u8);
            let sent = us.protect_rtp(&mut buf, len).unwrap();
            let got = peer.unprotect_rtp(&mut buf, sent);
            assert_eq!(got, Ok(len), "packet {i} (sequence {seq})");
            assert_eq!(buf[12], i as u8);
        }
    }

    #[test]
    fn a_replayed_packet_is_refused_and_a_late_one_inside_the_window_accepted() {
        let (mut us, mut peer) = pair(CryptoSuite::AesCm128HmacSha1_80);
        let mut protected = Vec::new();
        for seq in 100..110u16 {
            let mut buf = [0u8; 256];
            let len = rtp(&mut buf, seq, 1);
            let n = us.protect_rtp(&mut buf, len).unwrap();
            protected.push(buf[..n].to_vec());
        }
        let mut deliver = |p: &Vec<u8>| {
            let mut buf = [0u8; 256];
            buf[..p.len()].copy_from_slice(p);
            peer.unprotect_rtp(&mut buf, p.len())
        };
        for p in protected.iter().take(5).chain(protected.iter().skip(6)) {
            assert!(deliver(p).is_ok());
        }
        assert!(deliver(&protected[5]).is_ok(), "late, inside the window");
        assert_eq!(deliver(&protected[5]), Err(SrtpError::Replay));
        assert_eq!(deliver(&protected[9]), Err(SrtpError::Replay));
    }

    #[test]
    fn an_altered_packet_or_the_wrong_key_fails_authentication() {
        for suite in CryptoSuite::ALL {
            let (mut us, mut peer) = pair(suite);
            let mut buf = [0u8; 256];
            let len = rtp(&mut buf, 7, 0);
            let sent = us.protect_rtp(&mut buf, len).unwrap();
            let mut altered = buf;
            altered[20] ^= 1;
            assert_eq!(
                peer.unprotect_rtp(&mut altered, sent),
                Err(SrtpError::Authentication)
            );
            let stranger_key =
                MasterKey::generate(suite, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
            let mut stranger = SrtpSession::new(&stranger_key, &stranger_key).unwrap();
            assert_eq!(
                stranger.unprotect_rtp(&mut buf, sent),
                Err(SrtpError::Authentication)
            );
            assert_eq!(
                peer.unprotect_rtp(&mut buf, sent),
                Ok(len),
                "the original still passes"
            );
        }
    }

    #[test]
    fn srtcp_round_trips_with_index_and_tag() {
        let (mut us, mut peer) = pair(CryptoSuite::AesCm128HmacSha1_80);
        // An RTCP receiver report with no blocks (RFC 3550 §6.4.2).
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 9];
        let mut buf = [0u8; 64];
        buf[..8].copy_from_slice(&rr);
        let sent = us.protect_rtcp(&mut buf, 8).unwrap();
        assert_eq!(sent, 8 + CryptoSuite::AesCm128HmacSha1_80.rtcp_overhead());
        assert_eq!(
            buf[sent - 14] & 0x80,
            0x80,
            "E flag: encrypted (RFC 3711 §3.4)"
        );
        let mut copy = buf;
        assert_eq!(peer.unprotect_rtcp(&mut buf, sent).unwrap(), 8);
        assert_eq!(&buf[..8], &rr);
        assert_eq!(peer.unprotect_rtcp(&mut copy, sent), Err(SrtpError::Replay));
    }

    #[test]
    fn srtcp_with_the_e_flag_cleared_or_cut_short_is_refused_for_every_suite() {
        for suite in CryptoSuite::ALL {
            let (mut us, mut peer) = pair(suite);
            let mut buf = [0u8; 64];
            buf[..8].copy_from_slice(&[0x80, 201, 0, 1, 0, 0, 0, 9]);
            let sent = us.protect_rtcp(&mut buf, 8).unwrap();
            let e_flag_at = match suite {
                CryptoSuite::AeadAes128Gcm => sent - 4,
                _ => sent - suite.rtcp_overhead(),
            };
            let mut cleared = buf;
            cleared[e_flag_at] &= 0x7F;
            assert_eq!(
                peer.unprotect_rtcp(&mut cleared, sent),
                Err(SrtpError::Authentication)
            );
            for cut in 0..sent {
                let mut short = buf;
                assert!(
                    peer.unprotect_rtcp(&mut short, cut).is_err(),
                    "{suite}: {cut} bytes"
                );
            }
            let mut short = [0u8; 64];
            short[0] = 0x80;
            for cut in 0..12 + suite.rtp_overhead() {
                assert_eq!(
                    peer.unprotect_rtp(&mut short, cut),
                    Err(SrtpError::TooShort)
                );
            }
            assert_eq!(peer.unprotect_rtcp(&mut buf, sent), Ok(8));
        }
    }

    #[test]
    fn headers_that_do_not_fit_are_refused_before_the_crate_reads_them() {
        // Found by the `srtp` fuzz target: an extension header longer than the packet made
        // the `rtp` crate panic inside webrtc-srtp.
        let mut crash = *b"\xd0\xca\xcf\xc4\xcf\xff\x00\xcf\xcf\x00\x00\x00\x10\x00\x00\x01\x001111111111111111111111111111111q1111111111$-;";
        let (mut us, mut peer) = pair(CryptoSuite::AesCm128HmacSha1_80);
        let n = crash.len();
        assert!(peer.unprotect_rtp(&mut crash, n).is_err());
        crash[0] = 0x90; // version 2 with X, extension of 0x0001 words: fits
        let mut buf = [0u8; 128];
        buf[..n].copy_from_slice(&crash);
        buf[14..16].copy_from_slice(&[0x40, 0]); // 16384 words: does not fit
        assert_eq!(peer.unprotect_rtp(&mut buf, n), Err(SrtpError::TooShort));
        assert_eq!(us.protect_rtp(&mut buf, n), Err(SrtpError::TooShort));
        // RFC 8285 two-byte elements claiming more than the extension holds (fuzz finding too).
        let mut two_byte = [0u8; 64];
        two_byte[..16].copy_from_slice(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0x1F, 0, 0, 0x10, 0, 0, 1]);
        two_byte[16..20].copy_from_slice(&[0x0C, 0xC8, 0x0C, 0x41]);
        assert!(peer.unprotect_rtp(&mut two_byte, 64).is_err());
        two_byte[12..14].copy_from_slice(&[0xBE, 0xDE]);
        two_byte[16] = 0x1F; // one-byte element of 16 bytes in a 4-byte extension
        assert!(peer.unprotect_rtp(&mut two_byte, 64).is_err());
        two_byte[16..20].copy_from_slice(&[0x10, 0xAA, 0, 0]); // one 2-byte element, padding
        assert!(us.protect_rtp(&mut two_byte, 40).is_ok());
        buf[0] = 0x8F; // 15 CSRCs, 72 bytes of header
        assert_eq!(us.protect_rtp(&mut buf, 40), Err(SrtpError::TooShort));
    }

    #[test]
    fn no_room_for_the_tag_is_an_error_not_a_panic() {
        let (mut us, _) = pair(CryptoSuite::AesCm128HmacSha1_80);
        let mut buf = [0u8; 172];
        let len = rtp(&mut buf, 1, 0);
        assert_eq!(
            us.protect_rtp(&mut buf, len),
            Err(SrtpError::BufferTooSmall)
        );
        assert_eq!(us.unprotect_rtp(&mut buf, 5), Err(SrtpError::TooShort));
    }

    #[test]
    fn a_key_with_a_lifetime_of_two_packets_protects_two() {
        let mut r = rng();
        let suite = CryptoSuite::AesCm128HmacSha1_80;
        let generated = MasterKey::generate(suite, &mut r);
        let short = MasterKey::from_base64(suite, &generated.to_base64(), 2).unwrap();
        let mut us = SrtpSession::new(&short, &generated).unwrap();
        let mut buf = [0u8; 256];
        for seq in 0..2 {
            let len = rtp(&mut buf, seq, 0);
            assert!(us.protect_rtp(&mut buf, len).is_ok());
        }
        let len = rtp(&mut buf, 2, 0);
        assert_eq!(us.protect_rtp(&mut buf, len), Err(SrtpError::KeyExhausted));
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let key = MasterKey::generate(CryptoSuite::AesCm128HmacSha1_80, &mut rng());
        let b64 = key.to_base64();
        let session = SrtpSession::new(&key, &key).unwrap();
        for text in [
            format!("{key:?}"),
            format!("{key:#?}"),
            format!("{session:?}"),
        ] {
            assert!(!text.contains(&b64), "{text}");
            assert!(!text.contains(&b64[..8]), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
    }

    #[test]
    fn keys_read_back_from_base64_with_or_without_padding_and_wrong_lengths_are_refused() {
        let suite = CryptoSuite::AeadAes128Gcm;
        let key = MasterKey::generate(suite, &mut rng());
        let text = key.to_base64();
        assert!(text.ends_with('='), "28 bytes need padding: {text}");
        let unpadded = text.trim_end_matches('=');
        assert_eq!(
            MasterKey::from_base64(suite, unpadded, MAX_KEY_LIFETIME),
            Ok(key.clone())
        );
        assert!(matches!(
            MasterKey::from_base64(CryptoSuite::AesCm128HmacSha1_80, &text, 1),
            Err(KeyError::Length {
                expected: 30,
                got: 28,
                ..
            })
        ));
        assert_eq!(
            MasterKey::from_base64(suite, "***", 1),
            Err(KeyError::NotBase64)
        );
        assert_eq!(
            MasterKey::from_base64(suite, &text, MAX_KEY_LIFETIME + 1),
            Err(KeyError::Lifetime(MAX_KEY_LIFETIME + 1))
        );
    }
}
