//! The offer/answer model (RFC 3264) for one audio stream per leg.
//!
//! Each leg gets its own [`Negotiated`]: the payload type numbers it records are the *peer's*
//! (RFC 3264 §5.1: the numbers in an SDP are the ones its writer expects to receive), so the same
//! telephone-event can be 101 towards the trunk and 96 towards the agent, and the relay rewrites
//! between them.

use std::net::{IpAddr, SocketAddr};

use super::{
    ConnectionAddress, Direction, MediaDescription, Origin, PayloadFormat, SessionDescription,
    Transport,
};
use crate::rtp::PayloadType;

/// An audio codec this crate encodes and decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0 (RFC 3551 §4.5.14).
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
    /// Opus (RFC 7587), always `opus/48000/2` in SDP whatever is really coded.
    Opus,
}

impl Codec {
    /// The encoding name written in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    /// The RTP clock rate: 8000 for G.711, 48000 for Opus (RFC 7587 §4.1).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// The channel count written in `a=rtpmap` (RFC 7587 §7 requires `/2` for Opus).
    pub fn sdp_channels(self) -> u8 {
        match self {
            Codec::Pcmu | Codec::Pcma => 1,
            Codec::Opus => 2,
        }
    }

    /// The static payload type, if the codec has one.
    pub fn static_payload_type(self) -> Option<PayloadType> {
        match self {
            Codec::Pcmu => Some(PayloadType(0)),
            Codec::Pcma => Some(PayloadType(8)),
            Codec::Opus => None,
        }
    }

    /// RTP timestamp units per millisecond.
    pub fn samples_per_ms(self) -> u32 {
        self.clock_rate() / 1000
    }

    /// Whether an offered or answered format is this codec.
    pub fn matches(self, format: &PayloadFormat) -> bool {
        format.encoding.eq_ignore_ascii_case(self.encoding_name())
            && format.clock_rate == self.clock_rate()
    }

    /// The codec a payload format describes, if we support it.
    pub fn of_format(format: &PayloadFormat) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma, Codec::Opus]
            .into_iter()
            .find(|c| c.matches(format))
    }
}

/// What we offer and accept, in our order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Codecs in preference order; the first one the peer also has wins.
    pub codecs: Vec<Codec>,
    /// Offer and accept RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// Packet time we send and ask for, in milliseconds (RFC 4566 §6 `a=ptime`).
    pub ptime: u32,
    /// The dynamic payload type we give Opus in our offers.
    pub opus_payload_type: PayloadType,
    /// Our payload type for telephone-event/8000.
    pub telephone_event_payload_type: PayloadType,
    /// Our payload type for telephone-event/48000, offered when Opus is.
    pub telephone_event_48k_payload_type: PayloadType,
    /// The direction we want (sendrecv for a normal call, sendonly to hold).
    pub direction: Direction,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
            telephone_event: true,
            ptime: 20,
            opus_payload_type: PayloadType(111),
            telephone_event_payload_type: PayloadType(101),
            telephone_event_48k_payload_type: PayloadType(110),
            direction: Direction::SendRecv,
        }
    }
}

/// Where we receive media, and the identity of our SDP (`o=` line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// Address written in `c=` and `o=`.
    pub address: IpAddr,
    /// Our RTP port; RTCP is on the next one (RFC 3550 §11).
    pub rtp_port: u16,
    /// `o=` session id: random, from the injected source.
    pub session_id: u64,
    /// `o=` session version: one more with every new offer (RFC 3264 §8).
    pub session_version: u64,
}

/// RFC 4733 telephone-event as negotiated on one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The peer's payload type number: the one we put in packets we send it.
    pub send_payload_type: PayloadType,
    /// The number we told the peer to use towards us.
    pub receive_payload_type: PayloadType,
    /// Event clock rate (RFC 4733 §2.5.1.2: the same as the audio codec's).
    pub clock_rate: u32,
}

/// The outcome of offer/answer for one leg: what to send, with which numbers, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Index of the audio `m=` section.
    pub media_index: usize,
    /// The codec both sides use.
    pub codec: Codec,
    /// The peer's payload type for the codec, used in what we send.
    pub send_payload_type: PayloadType,
    /// The payload type we told the peer to use towards us.
    pub receive_payload_type: PayloadType,
    /// Telephone-event, when both sides have it.
    pub telephone_event: Option<TelephoneEvent>,
    /// Packet time to send, in milliseconds: the peer's `a=ptime`, else ours.
    pub ptime: u32,
    /// The peer's `a=maxptime`, if any.
    pub maxptime: Option<u32>,
    /// Where the peer wants RTP; `None` when it gave `c=0.0.0.0` (hold) or a host name.
    pub remote_rtp: Option<SocketAddr>,
    /// Where the peer wants RTCP: `a=rtcp`, the RTP port with `a=rtcp-mux`, else RTP port + 1.
    pub remote_rtcp: Option<SocketAddr>,
    /// What we may do: we send only if this [`Direction::sends`], and so on.
    pub direction: Direction,
}

impl Negotiated {
    /// RTP timestamp increment per packet at this leg's ptime.
    pub fn samples_per_packet(&self) -> u32 {
        self.codec.samples_per_ms() * self.ptime
    }
}

/// Why an offer or answer cannot be used; the caller answers a rejected offer with
/// 488 Not Acceptable Here (RFC 3261 §21.4.26, RFC 3264 §6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotAcceptable {
    /// No `m=audio` section with a non-zero port.
    #[error("no audio stream offered")]
    NoAudio,
    /// The audio streams are only on transports we do not serve (SRTP, DTLS).
    #[error("audio only over an unsupported transport: {0}")]
    UnsupportedTransport(String),
    /// None of the peer's codecs is one of ours.
    #[error("no codec in common")]
    NoCommonCodec,
    /// The answer rejected our audio stream (port 0, RFC 3264 §6).
    #[error("the answer rejected the audio stream")]
    Rejected,
    /// SRTP is required (by our policy or the peer's `RTP/SAVP`) and no `a=crypto` line has a
    /// suite and parameters we can use (RFC 4568 §7.1.2).
    #[error("SRTP needed but no usable a=crypto")]
    NoUsableCrypto,
}

impl NotAcceptable {
    /// The SIP status code to answer an unusable offer with.
    pub fn status_code(&self) -> u16 {
        488
    }
}

fn our_format(codec: Codec, config: &MediaConfig) -> PayloadFormat {
    PayloadFormat {
        payload_type: codec
            .static_payload_type()
            .unwrap_or(config.opus_payload_type),
        encoding: codec.encoding_name().to_string(),
        clock_rate: codec.clock_rate(),
        channels: codec.sdp_channels(),
        // RFC 7587 §6.1: in-band FEC lets the decoder recover a lost packet from the next one.
        fmtp: (codec == Codec::Opus).then(|| "useinbandfec=1".to_string()),
    }
}

fn telephone_event_format(payload_type: PayloadType, clock_rate: u32) -> PayloadFormat {
    PayloadFormat {
        payload_type,
        encoding: "telephone-event".to_string(),
        clock_rate,
        channels: 1,
        // RFC 4733 §7.1.1: events 0-15 are the DTMF digits, 16 is flash.
        fmtp: Some("0-16".to_string()),
    }
}

fn origin_of(local: &LocalEndpoint) -> Origin {
    Origin {
        username: "-".to_string(),
        session_id: local.session_id,
        session_version: local.session_version,
        address: ConnectionAddress::Ip(local.address),
    }
}

/// Builds our offer: one audio stream with the configured codecs in order, then telephone-event
/// at 8000 Hz and, when Opus is offered, at 48000 Hz (RFC 4733 §2.5.1.2: the event clock follows
/// the audio codec's).
pub fn build_offer(config: &MediaConfig, local: &LocalEndpoint) -> SessionDescription {
    let mut formats: Vec<PayloadFormat> = config
        .codecs
        .iter()
        .map(|&c| our_format(c, config))
        .collect();
    if config.telephone_event {
        formats.push(telephone_event_format(
            config.telephone_event_payload_type,
            8000,
        ));
        if config.codecs.contains(&Codec::Opus) {
            formats.push(telephone_event_format(
                config.telephone_event_48k_payload_type,
                48000,
            ));
        }
    }
    SessionDescription {
        origin: origin_of(local),
        session_name: "-".to_string(),
        connection: Some(ConnectionAddress::Ip(local.address)),
        media: vec![MediaDescription {
            kind: "audio".to_string(),
            port: local.rtp_port,
            transport: Transport::RtpAvp,
            formats,
            connection: None,
            direction: config.direction,
            ptime: Some(config.ptime),
            maxptime: None,
            rtcp: None,
            rtcp_mux: false,
            crypto: Vec::new(),
        }],
        ignored: Vec::new(),
    }
}

fn remote_addresses(
    sdp: &SessionDescription,
    index: usize,
) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let media = &sdp.media[index];
    let ip = sdp.connection_for(index).and_then(ConnectionAddress::ip);
    let Some(ip) = ip.filter(|ip| !ip.is_unspecified()) else {
        return (None, None);
    };
    let rtp = SocketAddr::new(ip, media.port);
    let rtcp = match &media.rtcp {
        // RFC 3605 §2.1
        Some(attr) => {
            let rtcp_ip = attr
                .address
                .as_ref()
                .and_then(ConnectionAddress::ip)
                .unwrap_or(ip);
            SocketAddr::new(rtcp_ip, attr.port)
        }
        // RFC 5761 §5.1.1
        None if media.rtcp_mux => rtp,
        // RFC 3550 §11
        None => SocketAddr::new(ip, media.port.wrapping_add(1)),
    };
    (Some(rtp), Some(rtcp))
}

fn pick_telephone_event(media: &MediaDescription, clock_rate: u32) -> Option<&PayloadFormat> {
    let events = || media.formats.iter().filter(|f| f.is_telephone_event());
    // Prefer the event clock equal to the codec's; any other one still carries the digits and
    // the relay rescales its timestamps.
    events()
        .find(|f| f.clock_rate == clock_rate)
        .or_else(|| events().next())
}

/// Answers a peer's offer (RFC 3264 §6): the first codec in *our* preference order that the
/// offer lists, with the offer's payload type numbers; every other `m=` line is rejected with
/// port 0, keeping the count of sections.
pub fn answer_offer(
    offer: &SessionDescription,
    config: &MediaConfig,
    local: &LocalEndpoint,
) -> Result<(SessionDescription, Negotiated), NotAcceptable> {
    let mut chosen: Option<(usize, Codec, PayloadType)> = None;
    let mut saw_audio = false;
    let mut unsupported_transport: Option<String> = None;
    'sections: for (index, media) in offer.media.iter().enumerate() {
        if !media.is_audio() || media.port == 0 {
            continue;
        }
        saw_audio = true;
        if !media.transport.is_plain_rtp() {
            unsupported_transport = Some(media.transport.as_str().to_string());
            continue;
        }
        for &codec in &config.codecs {
            if let Some(format) = media.formats.iter().find(|f| codec.matches(f)) {
                chosen = Some((index, codec, format.payload_type));
                break 'sections;
            }
        }
    }
    let Some((index, codec, payload_type)) = chosen else {
        return Err(match (saw_audio, unsupported_transport) {
            (false, _) => NotAcceptable::NoAudio,
            (true, Some(transport)) => NotAcceptable::UnsupportedTransport(transport),
            (true, None) => NotAcceptable::NoCommonCodec,
        });
    };
    let offered = &offer.media[index];
    let telephone_event = if config.telephone_event {
        pick_telephone_event(offered, codec.clock_rate()).map(|f| TelephoneEvent {
            send_payload_type: f.payload_type,
            receive_payload_type: f.payload_type,
            clock_rate: f.clock_rate,
        })
    } else {
        None
    };
    let their_direction = offer.effective_direction(index);
    let direction = Direction::from_flags(
        config.direction.sends() && their_direction.receives(),
        config.direction.receives() && their_direction.sends(),
    );
    let ptime = offered.ptime.unwrap_or(config.ptime);
    let (remote_rtp, remote_rtcp) = remote_addresses(offer, index);

    let mut format = our_format(codec, config);
    format.payload_type = payload_type;
    let mut formats = vec![format];
    if let Some(event) = &telephone_event {
        formats.push(telephone_event_format(
            event.send_payload_type,
            event.clock_rate,
        ));
    }
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == index {
                MediaDescription {
                    kind: "audio".to_string(),
                    port: local.rtp_port,
                    transport: m.transport.clone(),
                    formats: formats.clone(),
                    connection: None,
                    direction,
                    ptime: Some(ptime),
                    maxptime: None,
                    rtcp: None,
                    rtcp_mux: false,
                    crypto: Vec::new(),
                }
            } else {
                // RFC 3264 §6: a rejected stream keeps its media type and lists at least one
                // of the offered formats, with port 0.
                MediaDescription {
                    kind: m.kind.clone(),
                    port: 0,
                    transport: m.transport.clone(),
                    formats: m.formats.iter().take(1).cloned().collect(),
                    connection: None,
                    direction: Direction::Inactive,
                    ptime: None,
                    maxptime: None,
                    rtcp: None,
                    rtcp_mux: false,
                    crypto: Vec::new(),
                }
            }
        })
        .collect();
    let answer = SessionDescription {
        origin: origin_of(local),
        session_name: "-".to_string(),
        connection: Some(ConnectionAddress::Ip(local.address)),
        media,
        ignored: Vec::new(),
    };
    let negotiated = Negotiated {
        media_index: index,
        codec,
        send_payload_type: payload_type,
        receive_payload_type: payload_type,
        telephone_event,
        ptime,
        maxptime: offered.maxptime,
        remote_rtp,
        remote_rtcp,
        direction,
    };
    Ok((answer, negotiated))
}

/// Reads the peer's answer to our offer: the first codec in the *answer's* order that we offered
/// (the answerer has chosen, RFC 3264 §7), with the answer's payload type numbers for sending.
pub fn process_answer(
    our_offer: &SessionDescription,
    answer: &SessionDescription,
    config: &MediaConfig,
) -> Result<Negotiated, NotAcceptable> {
    let index = our_offer.media.iter().position(MediaDescription::is_audio);
    let Some(index) = index else {
        return Err(NotAcceptable::NoAudio);
    };
    let ours = &our_offer.media[index];
    let Some(theirs) = answer.media.get(index) else {
        return Err(NotAcceptable::Rejected);
    };
    if theirs.port == 0 {
        return Err(NotAcceptable::Rejected);
    }
    let chosen = theirs.formats.iter().find_map(|format| {
        let codec = Codec::of_format(format)?;
        let offered = ours.formats.iter().find(|f| codec.matches(f))?;
        Some((codec, format.payload_type, offered.payload_type))
    });
    let Some((codec, send_payload_type, receive_payload_type)) = chosen else {
        return Err(NotAcceptable::NoCommonCodec);
    };
    let telephone_event = if config.telephone_event {
        pick_telephone_event(theirs, codec.clock_rate()).map(|f| TelephoneEvent {
            send_payload_type: f.payload_type,
            receive_payload_type: ours
                .formats
                .iter()
                .find(|o| o.is_telephone_event() && o.clock_rate == f.clock_rate)
                .map_or(f.payload_type, |o| o.payload_type),
            clock_rate: f.clock_rate,
        })
    } else {
        None
    };
    let their_direction = answer.effective_direction(index);
    let direction = Direction::from_flags(
        ours.direction.sends() && their_direction.receives(),
        ours.direction.receives() && their_direction.sends(),
    );
    let (remote_rtp, remote_rtcp) = remote_addresses(answer, index);
    Ok(Negotiated {
        media_index: index,
        codec,
        send_payload_type,
        receive_payload_type,
        telephone_event,
        ptime: theirs.ptime.unwrap_or(config.ptime),
        maxptime: theirs.maxptime,
        remote_rtp,
        remote_rtcp,
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> LocalEndpoint {
        LocalEndpoint {
            address: "192.0.2.10".parse().unwrap(),
            rtp_port: 30000,
            session_id: 42,
            session_version: 1,
        }
    }

    fn offer_from(pts: &str, rtpmaps: &str, extra: &str) -> SessionDescription {
        let body = format!(
            "v=0\r\no=peer 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
             m=audio 4000 RTP/AVP {pts}\r\n{rtpmaps}{extra}"
        );
        SessionDescription::parse(&body).expect("test offer parses")
    }

    #[test]
    fn our_offer_lists_codecs_in_configured_order_with_opus_and_both_event_clocks() {
        let config = MediaConfig {
            codecs: vec![Codec::Opus, Codec::Pcma, Codec::Pcmu],
            ..MediaConfig::default()
        };
        let text = build_offer(&config, &local()).to_sdp_string();
        assert!(
            text.contains("m=audio 30000 RTP/AVP 111 8 0 101 110\r\n"),
            "{text}"
        );
        assert!(text.contains("a=rtpmap:111 opus/48000/2\r\na=fmtp:111 useinbandfec=1\r\n"));
        assert!(text.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        assert!(text.contains("a=rtpmap:110 telephone-event/48000\r\n"));
        assert!(text.contains("c=IN IP4 192.0.2.10\r\n"));
        assert!(text.contains("a=ptime:20\r\n"));
    }

    #[test]
    fn offer_without_opus_has_no_48k_telephone_event() {
        let config = MediaConfig {
            codecs: vec![Codec::Pcmu],
            ..MediaConfig::default()
        };
        let text = build_offer(&config, &local()).to_sdp_string();
        assert!(text.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{text}");
        assert!(!text.contains("48000"));
    }

    #[test]
    fn answer_picks_our_preference_among_theirs_and_keeps_their_numbers() {
        let offer = offer_from(
            "8 0 96",
            "a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n",
            "a=fmtp:96 0-15\r\n",
        );
        let (answer, negotiated) =
            answer_offer(&offer, &MediaConfig::default(), &local()).expect("acceptable");
        assert_eq!(negotiated.codec, Codec::Pcmu);
        assert_eq!(negotiated.send_payload_type, PayloadType(0));
        let event = negotiated
            .telephone_event
            .expect("telephone-event negotiated");
        assert_eq!(event.send_payload_type, PayloadType(96));
        assert_eq!(
            negotiated.remote_rtp,
            Some("198.51.100.7:4000".parse().unwrap())
        );
        assert_eq!(
            negotiated.remote_rtcp,
            Some("198.51.100.7:4001".parse().unwrap())
        );
        let text = answer.to_sdp_string();
        assert!(text.contains("m=audio 30000 RTP/AVP 0 96\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:96 telephone-event/8000\r\n"));
    }

    #[test]
    fn telephone_event_numbers_differ_per_leg() {
        // The trunk offers 101, the agent answers our offer with 96: each leg records the
        // number its peer expects, which is what the relay rewrites to.
        let trunk = offer_from(
            "0 101",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
            "",
        );
        let config = MediaConfig::default();
        let (_, trunk_leg) = answer_offer(&trunk, &config, &local()).expect("acceptable");
        let our_offer = build_offer(&config, &local());
        let agent_answer = offer_from(
            "0 96",
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n",
            "",
        );
        let agent_leg = process_answer(&our_offer, &agent_answer, &config).expect("acceptable");
        let trunk_event = trunk_leg.telephone_event.expect("trunk has events");
        let agent_event = agent_leg.telephone_event.expect("agent has events");
        assert_eq!(trunk_event.send_payload_type, PayloadType(101));
        assert_eq!(agent_event.send_payload_type, PayloadType(96));
        assert_eq!(agent_event.receive_payload_type, PayloadType(101));
    }

    #[test]
    fn opus_answered_with_another_number_is_sent_with_that_number() {
        let config = MediaConfig {
            codecs: vec![Codec::Opus],
            ..MediaConfig::default()
        };
        let our_offer = build_offer(&config, &local());
        let answer = offer_from(
            "96 97",
            "a=rtpmap:96 opus/48000/2\r\na=rtpmap:97 telephone-event/48000\r\n",
            "",
        );
        let leg = process_answer(&our_offer, &answer, &config).expect("acceptable");
        assert_eq!(leg.codec, Codec::Opus);
        assert_eq!(leg.send_payload_type, PayloadType(96));
        assert_eq!(leg.receive_payload_type, PayloadType(111));
        let event = leg.telephone_event.expect("events");
        assert_eq!(
            (event.send_payload_type, event.clock_rate),
            (PayloadType(97), 48000)
        );
        assert_eq!(leg.samples_per_packet(), 960);
    }

    #[test]
    fn ptime_30_is_honoured_and_echoed() {
        let offer = offer_from("8", "a=rtpmap:8 PCMA/8000\r\n", "a=ptime:30\r\n");
        let (answer, leg) =
            answer_offer(&offer, &MediaConfig::default(), &local()).expect("acceptable");
        assert_eq!(leg.ptime, 30);
        assert_eq!(leg.samples_per_packet(), 240);
        assert!(answer.to_sdp_string().contains("a=ptime:30\r\n"));
    }

    #[test]
    fn sendonly_offer_is_answered_recvonly() {
        let offer = offer_from("0", "", "a=sendonly\r\n");
        let (answer, leg) =
            answer_offer(&offer, &MediaConfig::default(), &local()).expect("acceptable");
        assert_eq!(leg.direction, Direction::RecvOnly);
        assert!(answer.to_sdp_string().contains("a=recvonly\r\n"));
    }

    #[test]
    fn inactive_offer_is_answered_inactive() {
        let offer = offer_from("0", "", "a=inactive\r\n");
        let (_, leg) = answer_offer(&offer, &MediaConfig::default(), &local()).expect("ok");
        assert_eq!(leg.direction, Direction::Inactive);
    }

    #[test]
    fn zero_address_hold_is_answered_recvonly_with_no_destination() {
        let body = "v=0\r\no=peer 1 2 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0\r\n";
        let offer = SessionDescription::parse(body).expect("parses");
        let (answer, leg) =
            answer_offer(&offer, &MediaConfig::default(), &local()).expect("acceptable");
        assert_eq!(leg.direction, Direction::RecvOnly);
        assert_eq!(leg.remote_rtp, None);
        assert!(answer.to_sdp_string().contains("a=recvonly\r\n"));
    }

    #[test]
    fn no_common_codec_is_488() {
        let offer = offer_from(
            "18 9",
            "a=rtpmap:18 G729/8000\r\na=rtpmap:9 G722/8000\r\n",
            "",
        );
        let err = answer_offer(&offer, &MediaConfig::default(), &local()).unwrap_err();
        assert_eq!(err, NotAcceptable::NoCommonCodec);
        assert_eq!(err.status_code(), 488);
    }

    #[test]
    fn srtp_only_offer_is_not_acceptable() {
        let body = "v=0\r\no=peer 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
            t=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n";
        let offer = SessionDescription::parse(body).expect("parses");
        let err = answer_offer(&offer, &MediaConfig::default(), &local()).unwrap_err();
        assert!(matches!(err, NotAcceptable::UnsupportedTransport(_)));
    }

    #[test]
    fn other_streams_are_rejected_with_port_zero() {
        let body = "v=0\r\no=peer 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
            t=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n";
        let offer = SessionDescription::parse(body).expect("parses");
        let (answer, _) = answer_offer(&offer, &MediaConfig::default(), &local()).expect("ok");
        assert_eq!(answer.media.len(), 2);
        assert!(answer.to_sdp_string().contains("m=video 0 RTP/AVP 96\r\n"));
    }

    #[test]
    fn rejected_answer_is_reported() {
        let config = MediaConfig::default();
        let our_offer = build_offer(&config, &local());
        let body = "v=0\r\no=peer 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\n\
            t=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
        let answer = SessionDescription::parse(body).expect("parses");
        assert_eq!(
            process_answer(&our_offer, &answer, &config),
            Err(NotAcceptable::Rejected)
        );
    }

    #[test]
    fn rtcp_mux_and_rtcp_attribute_set_the_rtcp_destination() {
        let offer = offer_from("0", "", "a=rtcp-mux\r\n");
        let (_, leg) = answer_offer(&offer, &MediaConfig::default(), &local()).expect("ok");
        assert_eq!(leg.remote_rtcp, leg.remote_rtp);
        let offer = offer_from("0", "", "a=rtcp:5000\r\n");
        let (_, leg) = answer_offer(&offer, &MediaConfig::default(), &local()).expect("ok");
        assert_eq!(leg.remote_rtcp, Some("198.51.100.7:5000".parse().unwrap()));
    }
}
