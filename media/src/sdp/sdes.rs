//! SDES key exchange (RFC 4568): `a=crypto` lines, and the choice of suite and keys in offer
//! and answer, on top of the codec negotiation of [`super::offer_answer`].
//!
//! Per leg an [`SrtpPolicy`] says what we do:
//! - `Off`: plain RTP only. An `RTP/SAVP` offer is not acceptable (488); `a=crypto` lines in an
//!   `RTP/AVP` offer are ignored and the answer has none.
//! - `Optional`: we offer `RTP/AVP` with `a=crypto` lines (the "best effort" SRTP most PBXs and
//!   phones accept: a peer that knows SDES answers with a key, any other ignores the lines and
//!   the call runs plain); we answer `RTP/AVP` offers with a key when they carry a usable
//!   `a=crypto`, plainly when not, and `RTP/SAVP` offers with a key.
//! - `Required`: we offer `RTP/SAVP` (RFC 3711 §6: the profile that means SRTP); an offer or
//!   answer without a usable `a=crypto` is not acceptable.
//!
//! The answerer takes the first offered line whose suite it supports (the offerer lists them in
//! its order of preference, RFC 4568 §7.1.1), and answers with the same tag and suite and a key
//! of its own (§7.1.2): each side protects with its own key and the peer unprotects with it.
//!
//! What a line may carry that we cannot honour makes the line unusable, said in
//! [`super::SessionDescription::ignored`] with the key replaced by `<redacted>`: an MKI or
//! several keys (`|1:4`, `;inline:...`: webrtc-srtp has no MKI), a key derivation rate other
//! than 0 (`KDR=`), `UNENCRYPTED_SRTP`, `UNENCRYPTED_SRTCP`, `UNAUTHENTICATED_SRTP`, FEC
//! parameters, or a session parameter we do not know (RFC 4568 §6.3: the answerer must
//! understand every one it accepts). A lifetime (`|2^31`) is kept: the key protects that many
//! packets, then packets are dropped until new keys arrive.

use rand::RngCore;

use super::offer_answer::{
    answer_offer, process_answer, LocalEndpoint, MediaConfig, Negotiated, NotAcceptable,
};
use super::{MediaDescription, SessionDescription, Transport};
use crate::srtp::{CryptoSuite, MasterKey, SrtpSession, MAX_KEY_LIFETIME};

/// Whether a leg uses SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpPolicy {
    /// Plain RTP only.
    #[default]
    Off,
    /// SRTP when the peer agrees, `RTP/AVP` with `a=crypto`.
    Optional,
    /// SRTP or no call, `RTP/SAVP`.
    Required,
}

/// One `a=crypto` line (RFC 4568 §9.1) with one inline key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoAttribute {
    /// The tag the answer echoes.
    pub tag: u32,
    /// Suite and key.
    pub key: MasterKey,
}

impl CryptoAttribute {
    /// Reads the value after `a=crypto:`; the reason when the line is unusable.
    pub fn parse(value: &str) -> Result<CryptoAttribute, String> {
        let mut fields = value.split_whitespace();
        let tag = fields
            .next()
            .filter(|t| (1..=9).contains(&t.len()))
            .and_then(|t| t.parse::<u32>().ok())
            .ok_or("the tag is not 1 to 9 digits")?;
        let suite_name = fields.next().ok_or("no crypto suite")?;
        let suite = CryptoSuite::from_sdp_name(suite_name)
            .ok_or_else(|| format!("crypto suite {suite_name} is not supported"))?;
        let key_params = fields.next().ok_or("no key parameters")?;
        if key_params.contains(';') {
            return Err("several master keys need an MKI, which is not supported".into());
        }
        let key_info = key_params
            .strip_prefix("inline:")
            .ok_or("the key method is not inline:")?;
        let mut parts = key_info.split('|');
        let key_salt = parts.next().unwrap_or_default();
        let mut lifetime = MAX_KEY_LIFETIME;
        for part in parts {
            if part.contains(':') {
                return Err("an MKI is not supported".into());
            }
            lifetime = parse_lifetime(part)?;
        }
        for param in fields {
            check_session_param(param)?;
        }
        let key = MasterKey::from_base64(suite, key_salt, lifetime).map_err(|e| e.to_string())?;
        Ok(CryptoAttribute { tag, key })
    }

    /// The value after `a=crypto:`.
    pub fn to_value(&self) -> String {
        let mut value = format!(
            "{} {} inline:{}",
            self.tag,
            self.key.suite(),
            self.key.to_base64()
        );
        if self.key.lifetime() != MAX_KEY_LIFETIME {
            value.push_str(&format!("|{}", self.key.lifetime()));
        }
        value
    }
}

/// `a=crypto` with the key taken out, for [`super::IgnoredLine`] and logs.
pub(super) fn redacted(value: &str) -> String {
    let mut fields = value.split_whitespace();
    let tag = fields.next().unwrap_or_default();
    let suite = fields.next().unwrap_or_default();
    let params: Vec<&str> = fields.skip(1).collect();
    let mut line = format!("a=crypto:{tag} {suite} inline:<redacted>");
    for p in params {
        line.push(' ');
        line.push_str(p);
    }
    line
}

/// RFC 4568 §6.1: a lifetime is decimal or a power of two `2^n`.
fn parse_lifetime(text: &str) -> Result<u64, String> {
    let bad = || format!("key lifetime {text} is not a number or 2^n");
    let value = match text.strip_prefix("2^") {
        Some(exponent) => {
            let n: u32 = exponent.parse().map_err(|_| bad())?;
            1u64.checked_shl(n).filter(|_| n < 64).ok_or_else(bad)?
        }
        None => text.parse().map_err(|_| bad())?,
    };
    Ok(value)
}

/// RFC 4568 §6.3: the session parameters we can honour are `KDR=0` and a `WSH` hint.
fn check_session_param(param: &str) -> Result<(), String> {
    match param.split_once('=') {
        Some(("KDR", "0")) => Ok(()),
        Some(("KDR", _)) => Err("a key derivation rate other than 0 is not supported".into()),
        Some(("WSH", n)) if n.parse::<u32>().is_ok() => Ok(()),
        _ => Err(format!("session parameter {param} is not supported")),
    }
}

/// Whether `transport` is `RTP/SAVP` or `RTP/SAVPF`: SRTP keyed by SDES (not DTLS).
pub fn is_sdes_transport(transport: &Transport) -> bool {
    matches!(transport, Transport::Secure(t)
        if t.eq_ignore_ascii_case("RTP/SAVP") || t.eq_ignore_ascii_case("RTP/SAVPF"))
}

/// Both keys of a leg once offer and answer agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// Ours: we protect what we send with it.
    pub local: MasterKey,
    /// The peer's: we unprotect what it sends with it.
    pub remote: MasterKey,
}

impl SrtpKeys {
    /// The leg's SRTP session.
    pub fn session(&self) -> SrtpSession {
        SrtpSession::new(&self.local, &self.remote)
            .expect("offer/answer pairs keys of one suite only")
    }
}

/// Adds SRTP to our offer per `policy`: `a=crypto` lines for `suites` (tags 1, 2, ...) on the
/// audio section and, when required, `RTP/SAVP`. Returns the lines, for
/// [`process_answer_srtp`].
pub fn add_crypto_to_offer(
    offer: &mut SessionDescription,
    policy: SrtpPolicy,
    suites: &[CryptoSuite],
    rng: &mut dyn RngCore,
) -> Vec<CryptoAttribute> {
    let Some(media) = offer.media.iter_mut().find(|m| m.is_audio()) else {
        return Vec::new();
    };
    if policy == SrtpPolicy::Off {
        return Vec::new();
    }
    if policy == SrtpPolicy::Required {
        media.transport = Transport::Secure("RTP/SAVP".to_string());
    }
    media.crypto = suites
        .iter()
        .zip(1..)
        .map(|(&suite, tag)| CryptoAttribute {
            tag,
            key: MasterKey::generate(suite, rng),
        })
        .collect();
    media.crypto.clone()
}

/// The first offered line of a suite in `suites`.
fn usable<'a>(media: &'a MediaDescription, suites: &[CryptoSuite]) -> Option<&'a CryptoAttribute> {
    media
        .crypto
        .iter()
        .find(|c| suites.contains(&c.key.suite()))
}

/// [`answer_offer`] with SRTP per `policy` (see the module docs): the answer, the leg's
/// negotiation and its keys when SRTP was agreed.
pub fn answer_offer_srtp(
    offer: &SessionDescription,
    config: &MediaConfig,
    local: &LocalEndpoint,
    policy: SrtpPolicy,
    suites: &[CryptoSuite],
    rng: &mut dyn RngCore,
) -> Result<(SessionDescription, Negotiated, Option<SrtpKeys>), NotAcceptable> {
    if policy == SrtpPolicy::Off {
        let (mut answer, negotiated) = answer_offer(offer, config, local)?;
        answer.media[negotiated.media_index].crypto.clear();
        return Ok((answer, negotiated, None));
    }
    // Codec choice runs on a view in which the sections we can key are plain RTP, and the
    // ones we cannot (SAVP without a usable line, or plain ones when SRTP is required) are not.
    let mut view = offer.clone();
    for m in view.media.iter_mut().filter(|m| m.is_audio()) {
        let keyed = usable(m, suites).is_some();
        let plain = m.transport.is_plain_rtp();
        if keyed && (plain || is_sdes_transport(&m.transport)) {
            m.transport = Transport::RtpAvp;
        } else if policy == SrtpPolicy::Required || !plain {
            m.transport = Transport::Other(m.transport.as_str().to_string());
        }
    }
    let (mut answer, negotiated) = answer_offer(&view, config, local).map_err(|e| match e {
        NotAcceptable::UnsupportedTransport(_) => NotAcceptable::NoUsableCrypto,
        other => other,
    })?;
    let index = negotiated.media_index;
    let offered = &offer.media[index];
    let answered = &mut answer.media[index];
    answered.transport = offered.transport.clone();
    answered.crypto.clear();
    let Some(line) = usable(offered, suites) else {
        return Ok((answer, negotiated, None));
    };
    let ours = CryptoAttribute {
        tag: line.tag,
        key: MasterKey::generate(line.key.suite(), rng),
    };
    let keys = SrtpKeys {
        local: ours.key.clone(),
        remote: line.key.clone(),
    };
    answered.crypto.push(ours);
    Ok((answer, negotiated, Some(keys)))
}

/// [`process_answer`] with SRTP: the answer's `a=crypto` must echo the tag and suite of one of
/// `offered`; without one the leg is plain, unless `policy` requires SRTP or the answer is
/// `RTP/SAVP`.
pub fn process_answer_srtp(
    our_offer: &SessionDescription,
    offered: &[CryptoAttribute],
    answer: &SessionDescription,
    config: &MediaConfig,
    policy: SrtpPolicy,
) -> Result<(Negotiated, Option<SrtpKeys>), NotAcceptable> {
    let negotiated = process_answer(our_offer, answer, config)?;
    let theirs = &answer.media[negotiated.media_index];
    let keys = theirs.crypto.iter().find_map(|answered| {
        let ours = offered
            .iter()
            .find(|o| o.tag == answered.tag && o.key.suite() == answered.key.suite())?;
        Some(SrtpKeys {
            local: ours.key.clone(),
            remote: answered.key.clone(),
        })
    });
    let needs_keys = policy == SrtpPolicy::Required || is_sdes_transport(&theirs.transport);
    if keys.is_none() && needs_keys {
        return Err(NotAcceptable::NoUsableCrypto);
    }
    Ok((negotiated, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The key of RFC 4568 §8.1's example, 30 bytes of key and salt.
    const RFC_KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(4568)
    }

    fn local() -> LocalEndpoint {
        LocalEndpoint {
            address: "192.0.2.10".parse().unwrap(),
            rtp_port: 30000,
            session_id: 1,
            session_version: 1,
        }
    }

    fn offer(proto: &str, crypto: &str) -> SessionDescription {
        let body = format!(
            "v=0\r\no=peer 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
             m=audio 4000 {proto} 0\r\n{crypto}"
        );
        SessionDescription::parse(&body).expect("test offer parses")
    }

    #[test]
    fn rfc4568_lines_are_read_with_lifetime_and_mki_or_kdr_refused() {
        let line =
            CryptoAttribute::parse(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20"))
                .unwrap();
        assert_eq!((line.tag, line.key.lifetime()), (1, 1 << 20));
        assert_eq!(line.key.suite(), CryptoSuite::AesCm128HmacSha1_80);
        let decimal = CryptoAttribute::parse(&format!(
            "2 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY}|1000 KDR=0 WSH=64"
        ));
        assert_eq!(decimal.unwrap().key.lifetime(), 1000);
        for (value, reason) in [
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4"),
                "MKI",
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY};inline:{RFC_KEY}"),
                "MKI",
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY} KDR=1"),
                "derivation",
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY} UNENCRYPTED_SRTP"),
                "UNENCRYPTED_SRTP",
            ),
            (
                format!("1 AES_256_CM_HMAC_SHA1_80 inline:{RFC_KEY}"),
                "AES_256",
            ),
            (format!("1 AEAD_AES_128_GCM inline:{RFC_KEY}"), "28 bytes"),
            (format!("x AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}"), "tag"),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^99"),
                "lifetime",
            ),
        ] {
            let err = CryptoAttribute::parse(&value).unwrap_err();
            assert!(err.contains(reason), "{value}: {err}");
        }
    }

    #[test]
    fn unusable_lines_are_listed_without_their_key_and_usable_ones_written_back() {
        let sdp = offer(
            "RTP/SAVP",
            &format!(
                "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}|2^20|1:4\r\n\
                 a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY}\r\n"
            ),
        );
        let media = &sdp.media[0];
        assert!(is_sdes_transport(&media.transport));
        assert_eq!(media.crypto.len(), 1);
        assert_eq!(media.crypto[0].tag, 2);
        assert_eq!(sdp.ignored.len(), 1, "{:?}", sdp.ignored);
        assert!(sdp.ignored[0].reason.contains("MKI"));
        let debug = format!("{sdp:?}");
        assert!(!debug.contains(&RFC_KEY[..12]), "{debug}");
        let text = sdp.to_sdp_string();
        assert!(
            text.contains(&format!(
                "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{RFC_KEY}\r\n"
            )),
            "{text}"
        );
        assert!(text.contains("m=audio 4000 RTP/SAVP 0\r\n"));
        assert_eq!(
            SessionDescription::parse(&text).unwrap().media[0].crypto,
            media.crypto
        );
    }

    /// Our offer under `ours`, answered by our own answerer under `theirs`.
    fn negotiate(
        ours: SrtpPolicy,
        theirs: SrtpPolicy,
    ) -> Result<(SessionDescription, Option<SrtpKeys>, Option<SrtpKeys>), NotAcceptable> {
        let config = MediaConfig::default();
        let mut r = rng();
        let mut offer = super::super::build_offer(&config, &local());
        let offered = add_crypto_to_offer(&mut offer, ours, &CryptoSuite::ALL, &mut r);
        let received = SessionDescription::parse(&offer.to_sdp_string()).unwrap();
        let (answer, _, answerer_keys) = answer_offer_srtp(
            &received,
            &config,
            &local(),
            theirs,
            &CryptoSuite::ALL,
            &mut r,
        )?;
        let answer = SessionDescription::parse(&answer.to_sdp_string()).unwrap();
        let (_, offerer_keys) = process_answer_srtp(&offer, &offered, &answer, &config, ours)?;
        Ok((offer, offerer_keys, answerer_keys))
    }

    #[test]
    fn optional_offer_is_avp_with_every_suite_and_the_answer_picks_the_first() {
        let (offer, offerer, answerer) =
            negotiate(SrtpPolicy::Optional, SrtpPolicy::Optional).unwrap();
        let text = offer.to_sdp_string();
        assert!(text.contains("m=audio 30000 RTP/AVP "), "{text}");
        assert!(text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert!(text.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"));
        assert!(text.contains("a=crypto:3 AEAD_AES_128_GCM inline:"));
        let (offerer, answerer) = (offerer.unwrap(), answerer.unwrap());
        assert_eq!(offerer.local, answerer.remote);
        assert_eq!(offerer.remote, answerer.local);
        assert_ne!(offerer.local, offerer.remote, "each side has its own key");
        assert_eq!(offerer.local.suite(), CryptoSuite::AesCm128HmacSha1_80);
        // The sessions interoperate: what one protects, the other unprotects.
        let (mut a, mut b) = (offerer.session(), answerer.session());
        let mut buf = [0u8; 64];
        buf[..12].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5]);
        let n = a.protect_rtp(&mut buf, 20).unwrap();
        assert_eq!(b.unprotect_rtp(&mut buf, n), Ok(20));
    }

    #[test]
    fn required_offer_is_savp_and_a_plain_answerer_refuses_it() {
        let (offer, offerer, _) = negotiate(SrtpPolicy::Required, SrtpPolicy::Optional).unwrap();
        assert!(offer.to_sdp_string().contains("m=audio 30000 RTP/SAVP "));
        assert!(offer.to_sdp_string().contains("a=crypto:1 "));
        assert!(offerer.is_some());
        assert!(matches!(
            negotiate(SrtpPolicy::Required, SrtpPolicy::Off),
            Err(NotAcceptable::UnsupportedTransport(_))
        ));
    }

    #[test]
    fn optional_meets_plain_as_plain_and_required_meets_plain_as_488() {
        let (_, offerer, answerer) = negotiate(SrtpPolicy::Optional, SrtpPolicy::Off).unwrap();
        assert_eq!((offerer, answerer), (None, None));
        let (_, offerer, answerer) = negotiate(SrtpPolicy::Off, SrtpPolicy::Optional).unwrap();
        assert_eq!((offerer, answerer), (None, None));
        assert_eq!(
            negotiate(SrtpPolicy::Off, SrtpPolicy::Required).unwrap_err(),
            NotAcceptable::NoUsableCrypto
        );
    }

    #[test]
    fn the_answer_takes_the_offerers_first_supported_suite_and_echoes_its_tag() {
        let gcm = MasterKey::generate(CryptoSuite::AeadAes128Gcm, &mut rng()).to_base64();
        let sdp = offer(
            "RTP/SAVP",
            &format!(
                "a=crypto:7 AES_256_CM_HMAC_SHA1_80 inline:{RFC_KEY}{RFC_KEY}\r\n\
                 a=crypto:9 AEAD_AES_128_GCM inline:{gcm}\r\n\
                 a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}\r\n"
            ),
        );
        let config = MediaConfig::default();
        let (answer, _, keys) = answer_offer_srtp(
            &sdp,
            &config,
            &local(),
            SrtpPolicy::Optional,
            &CryptoSuite::ALL,
            &mut rng(),
        )
        .unwrap();
        let text = answer.to_sdp_string();
        assert!(text.contains("m=audio 30000 RTP/SAVP 0\r\n"), "{text}");
        assert!(
            text.contains("a=crypto:9 AEAD_AES_128_GCM inline:"),
            "{text}"
        );
        assert_eq!(answer.media[0].crypto.len(), 1);
        assert_eq!(keys.unwrap().remote.to_base64(), gcm);
        let only_80 = [CryptoSuite::AesCm128HmacSha1_80];
        let (answer, _, _) = answer_offer_srtp(
            &sdp,
            &config,
            &local(),
            SrtpPolicy::Required,
            &only_80,
            &mut rng(),
        )
        .unwrap();
        assert_eq!(answer.media[0].crypto[0].tag, 3);
        let none = offer(
            "RTP/SAVP",
            &format!("a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{RFC_KEY}\r\n"),
        );
        assert_eq!(
            answer_offer_srtp(
                &none,
                &config,
                &local(),
                SrtpPolicy::Optional,
                &only_80,
                &mut rng()
            )
            .unwrap_err(),
            NotAcceptable::NoUsableCrypto
        );
    }

    #[test]
    fn an_answer_to_a_savp_offer_without_crypto_is_refused() {
        let config = MediaConfig::default();
        let mut ours = super::super::build_offer(&config, &local());
        let offered = add_crypto_to_offer(
            &mut ours,
            SrtpPolicy::Required,
            &CryptoSuite::ALL,
            &mut rng(),
        );
        let answer = offer("RTP/SAVP", "");
        assert_eq!(
            process_answer_srtp(&ours, &offered, &answer, &config, SrtpPolicy::Required)
                .unwrap_err(),
            NotAcceptable::NoUsableCrypto
        );
        let wrong_tag = offer(
            "RTP/AVP",
            &format!("a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:{RFC_KEY}\r\n"),
        );
        let (_, keys) =
            process_answer_srtp(&ours, &offered, &wrong_tag, &config, SrtpPolicy::Optional)
                .unwrap();
        assert_eq!(keys, None, "a tag we never offered keys nothing");
    }
}
