//! SDP (RFC 4566) read through webrtc-sdp into our own typed model, and written back as text.
//!
//! Reading goes in three steps:
//! 1. A pre-filter takes out the lines webrtc-sdp refuses although they are valid SDP or common in
//!    the field (`e=`, `p=`, `u=`, `z=`, `k=`, `r=`, session-level `a=ptime`/`a=maxptime`/`a=rtpmap`/
//!    `a=fmtp`/`a=rtcp`, `m=` sections with a transport it does not know such as `udptl` for T.38),
//!    remembering what they said where it matters (a session-level ptime is a fallback for every
//!    media section; an unknown-transport section is kept as a placeholder so that the answer has
//!    the same number of `m=` lines, RFC 3264 §6).
//! 2. webrtc-sdp parses the rest. An attribute line it still rejects (a malformed `a=` of a kind we
//!    do not use) is dropped and parsing retried, so one odd attribute never costs the call; each
//!    dropped line is listed in [`SessionDescription::ignored`].
//! 3. The result is converted into [`SessionDescription`], which holds only what a telephony B2BUA
//!    uses: connection address per media with session fallback, port, `a=rtcp`, direction, ptime,
//!    maxptime and one [`PayloadFormat`] per payload type with its rtpmap and raw fmtp.
//!
//! Writing ([`SessionDescription::to_sdp_string`]) is hand-written text generation rather than
//! webrtc-sdp's `Display`: that output re-renders `a=fmtp` from a struct shaped for WebRTC video
//! codecs (so an fmtp such as `0-16` or `annexb=no` would not come back as sent), orders attributes
//! by its internal list rather than RFC 4566 §5 order, and has no notion of the fields we leave out.
//! What we send is small and fixed in shape, so a few `write!` lines are clearer and exact.

mod offer_answer;
mod sdes;

pub use offer_answer::{
    answer_offer, build_offer, process_answer, Codec, LocalEndpoint, MediaConfig, Negotiated,
    NotAcceptable, TelephoneEvent,
};
pub use sdes::{
    add_crypto_to_offer, answer_offer_srtp, is_sdes_transport, process_answer_srtp,
    CryptoAttribute, SrtpKeys, SrtpPolicy,
};

use std::fmt::Write as _;
use std::net::IpAddr;

use webrtc_sdp::address::ExplicitlyTypedAddress;
use webrtc_sdp::attribute_type::SdpAttribute;
use webrtc_sdp::error::SdpParserError;
use webrtc_sdp::media_type::{SdpFormatList, SdpMediaValue, SdpProtocolValue};

use crate::rtp::PayloadType;

/// Why an SDP body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body is not SDP at all (empty, too short, or no `v=` line).
    #[error("not an SDP body: {0}")]
    NotSdp(String),
    /// A line that cannot be skipped (`v=`, `o=`, `s=`, `t=`, `c=`, `m=`) is malformed.
    #[error("invalid SDP line {line_number} `{line}`: {reason}")]
    InvalidLine {
        /// Zero-based line number in the body as received.
        line_number: usize,
        /// The offending line.
        line: String,
        /// What the parser objected to.
        reason: String,
    },
    /// The lines are individually fine but their order or combination is not (RFC 4566 §5).
    #[error("invalid SDP structure: {0}")]
    Structure(String),
}

/// A media stream's direction attribute (RFC 3264 §5.1, §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv`, the default when no direction attribute is present (RFC 4566 §6).
    #[default]
    SendRecv,
    /// `a=sendonly`: the side that wrote it sends but does not want to receive (hold).
    SendOnly,
    /// `a=recvonly`: the side that wrote it receives only.
    RecvOnly,
    /// `a=inactive`: no media either way.
    Inactive,
}

impl Direction {
    /// Whether the side that wrote this direction sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the side that wrote this direction wants to receive media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Builds a direction from whether the writer sends and receives.
    pub fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The direction an answerer writes for this offered direction (RFC 3264 §6.1): what the
    /// offerer sends, the answerer receives, and the other way round.
    pub fn reversed(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// The attribute text, without `a=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// A connection address from a `c=` line (RFC 4566 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionAddress {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A host name, which the runtime has to resolve before media can flow.
    Fqdn(String),
}

impl ConnectionAddress {
    /// The IP address, when the connection is a literal address.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            ConnectionAddress::Ip(ip) => Some(*ip),
            ConnectionAddress::Fqdn(_) => None,
        }
    }

    /// `c=0.0.0.0` (or `::`): the RFC 2543 way of putting a call on hold, still sent by many
    /// devices (RFC 3264 §8.4 asks answerers to accept it).
    pub fn is_hold(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }

    fn from_webrtc(address: &ExplicitlyTypedAddress) -> ConnectionAddress {
        match address {
            ExplicitlyTypedAddress::Ip(ip) => ConnectionAddress::Ip(*ip),
            ExplicitlyTypedAddress::Fqdn { domain, .. } => ConnectionAddress::Fqdn(domain.clone()),
        }
    }

    fn write_c_line(&self, out: &mut String) {
        // RFC 4566 §5.7: c=<nettype> <addrtype> <connection-address>
        match self {
            ConnectionAddress::Ip(IpAddr::V4(ip)) => {
                let _ = write!(out, "c=IN IP4 {ip}\r\n");
            }
            ConnectionAddress::Ip(IpAddr::V6(ip)) => {
                let _ = write!(out, "c=IN IP6 {ip}\r\n");
            }
            ConnectionAddress::Fqdn(name) => {
                let _ = write!(out, "c=IN IP4 {name}\r\n");
            }
        }
    }
}

/// The `o=` line (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `<username>`, `-` when the writer has none.
    pub username: String,
    /// `<sess-id>`.
    pub session_id: u64,
    /// `<sess-version>`: RFC 3264 §8 has it go up by one with every changed offer.
    pub session_version: u64,
    /// `<unicast-address>`.
    pub address: ConnectionAddress,
}

/// One payload type of a media section: its number, its rtpmap and its fmtp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFormat {
    /// The payload type number as the writer of this SDP uses it.
    pub payload_type: PayloadType,
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`); compare case-insensitively.
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channel count (1 when not given, RFC 4566 §6).
    pub channels: u8,
    /// The `a=fmtp` parameters exactly as written, without `a=fmtp:<pt> `.
    pub fmtp: Option<String>,
}

impl PayloadFormat {
    /// Whether this is `telephone-event` (RFC 4733 §7.1.1).
    pub fn is_telephone_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event")
    }
}

/// The transport of a media section (`m=` line `<proto>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `RTP/AVP` (RFC 3551), the only one this crate sends media over.
    RtpAvp,
    /// `RTP/AVPF` (RFC 4585): plain RTP with feedback, which we can serve as RTP/AVP.
    RtpAvpf,
    /// An SRTP/DTLS profile (`RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...): served only keyed by
    /// SDES (RFC 4568 `a=crypto`, [`answer_offer_srtp`]), never by DTLS.
    Secure(String),
    /// Anything else (`udptl` for T.38, `TCP/MSRP`, SCTP), kept so the answer can reject it.
    Other(String),
}

impl Transport {
    /// Whether RTP can flow on this transport without encryption.
    pub fn is_plain_rtp(&self) -> bool {
        matches!(self, Transport::RtpAvp | Transport::RtpAvpf)
    }

    fn as_str(&self) -> &str {
        match self {
            Transport::RtpAvp => "RTP/AVP",
            Transport::RtpAvpf => "RTP/AVPF",
            Transport::Secure(s) | Transport::Other(s) => s,
        }
    }
}

/// `a=rtcp` (RFC 3605): where the writer wants RTCP when it is not RTP port + 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcpAttribute {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, when it differs from the connection address.
    pub address: Option<ConnectionAddress>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `<media>`: `audio`, `video`, `image`, ...
    pub kind: String,
    /// `<port>`; 0 means the stream is rejected or disabled (RFC 3264 §5.1, §6).
    pub port: u16,
    /// `<proto>`.
    pub transport: Transport,
    /// The payload formats in `m=` line order (the writer's preference, RFC 3264 §5.1).
    pub formats: Vec<PayloadFormat>,
    /// The media-level `c=`, if any.
    pub connection: Option<ConnectionAddress>,
    /// The direction attribute (media level, else session level, else sendrecv).
    pub direction: Direction,
    /// `a=ptime` in milliseconds (media level, else a session-level one).
    pub ptime: Option<u32>,
    /// `a=maxptime` in milliseconds.
    pub maxptime: Option<u32>,
    /// `a=rtcp`.
    pub rtcp: Option<RtcpAttribute>,
    /// `a=rtcp-mux` (RFC 5761): RTCP shares the RTP port.
    pub rtcp_mux: bool,
    /// Usable `a=crypto` lines (RFC 4568) in the writer's order; unusable ones are in
    /// [`SessionDescription::ignored`], their keys redacted.
    pub crypto: Vec<CryptoAttribute>,
}

impl MediaDescription {
    /// Whether this is an audio section.
    pub fn is_audio(&self) -> bool {
        self.kind.eq_ignore_ascii_case("audio")
    }

    /// The format with this payload type number.
    pub fn format(&self, payload_type: PayloadType) -> Option<&PayloadFormat> {
        self.formats.iter().find(|f| f.payload_type == payload_type)
    }

    fn write(&self, out: &mut String) {
        let _ = write!(
            out,
            "m={} {} {}",
            self.kind,
            self.port,
            self.transport.as_str()
        );
        for format in &self.formats {
            let _ = write!(out, " {}", format.payload_type.0);
        }
        out.push_str("\r\n");
        // Written whenever the section has its own, even when it repeats the session's: what
        // was received reads back the same (RFC 4566 §5.7 allows both levels).
        if let Some(connection) = &self.connection {
            connection.write_c_line(out);
        }
        for format in &self.formats {
            // RFC 4566 §6: a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>];
            // a dynamic type the peer never mapped is listed in m= only, as it was received.
            if !format.encoding.is_empty() {
                let _ = write!(
                    out,
                    "a=rtpmap:{} {}/{}",
                    format.payload_type.0, format.encoding, format.clock_rate
                );
                if format.channels > 1 {
                    let _ = write!(out, "/{}", format.channels);
                }
                out.push_str("\r\n");
            }
            if let Some(fmtp) = &format.fmtp {
                let _ = write!(out, "a=fmtp:{} {}\r\n", format.payload_type.0, fmtp);
            }
        }
        if let Some(ptime) = self.ptime {
            let _ = write!(out, "a=ptime:{ptime}\r\n");
        }
        if let Some(maxptime) = self.maxptime {
            let _ = write!(out, "a=maxptime:{maxptime}\r\n");
        }
        if let Some(rtcp) = &self.rtcp {
            let _ = write!(out, "a=rtcp:{}", rtcp.port);
            match &rtcp.address {
                Some(ConnectionAddress::Ip(IpAddr::V4(ip))) => {
                    let _ = write!(out, " IN IP4 {ip}");
                }
                Some(ConnectionAddress::Ip(IpAddr::V6(ip))) => {
                    let _ = write!(out, " IN IP6 {ip}");
                }
                Some(ConnectionAddress::Fqdn(name)) => {
                    let _ = write!(out, " IN IP4 {name}");
                }
                None => {}
            }
            out.push_str("\r\n");
        }
        if self.rtcp_mux {
            out.push_str("a=rtcp-mux\r\n");
        }
        for crypto in &self.crypto {
            let _ = write!(out, "a=crypto:{}\r\n", crypto.to_value());
        }
        let _ = write!(out, "a={}\r\n", self.direction.as_str());
    }
}

/// A line the reader took out before or during parsing, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredLine {
    /// Zero-based line number in the body as received.
    pub line_number: usize,
    /// The line.
    pub line: String,
    /// Why it was left out.
    pub reason: String,
}

/// A session description in the shape a telephony B2BUA uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line.
    pub origin: Origin,
    /// `s=`; `-` when the writer had nothing to say.
    pub session_name: String,
    /// The session-level `c=`, the fallback for media sections without their own.
    pub connection: Option<ConnectionAddress>,
    /// The `m=` sections in order.
    pub media: Vec<MediaDescription>,
    /// Lines left out while reading (see the module docs).
    pub ignored: Vec<IgnoredLine>,
}

impl SessionDescription {
    /// Reads an SDP body received from a peer.
    pub fn parse(body: &str) -> Result<SessionDescription, SdpError> {
        parse(body)
    }

    /// Reads an SDP body given as bytes; bytes that are not UTF-8 (an `s=` or `i=` in Latin-1, as
    /// some phones send) are replaced rather than refused, since they sit in free-text fields.
    pub fn parse_bytes(body: &[u8]) -> Result<SessionDescription, SdpError> {
        parse(&String::from_utf8_lossy(body))
    }

    /// The connection address for media section `index`: its own `c=`, else the session's
    /// (RFC 4566 §5.7).
    pub fn connection_for(&self, index: usize) -> Option<&ConnectionAddress> {
        let media = self.media.get(index)?;
        media.connection.as_ref().or(self.connection.as_ref())
    }

    /// Whether media section `index` puts the call on hold by `c=0.0.0.0` (RFC 3264 §8.4).
    pub fn is_connection_hold(&self, index: usize) -> bool {
        self.connection_for(index)
            .is_some_and(ConnectionAddress::is_hold)
    }

    /// The direction of media section `index` with `c=0.0.0.0` taken into account: such a writer
    /// does not want to receive, whatever its direction attribute says.
    pub fn effective_direction(&self, index: usize) -> Direction {
        let Some(media) = self.media.get(index) else {
            return Direction::Inactive;
        };
        if self.is_connection_hold(index) {
            Direction::from_flags(media.direction.sends(), false)
        } else {
            media.direction
        }
    }

    /// The SDP text we send: CRLF line ends, RFC 4566 §5 field order.
    pub fn to_sdp_string(&self) -> String {
        let mut out = String::with_capacity(512);
        out.push_str("v=0\r\n");
        let (addrtype, addr) = match &self.origin.address {
            ConnectionAddress::Ip(IpAddr::V4(ip)) => ("IP4", ip.to_string()),
            ConnectionAddress::Ip(IpAddr::V6(ip)) => ("IP6", ip.to_string()),
            ConnectionAddress::Fqdn(name) => ("IP4", name.clone()),
        };
        let _ = write!(
            out,
            "o={} {} {} IN {} {}\r\n",
            self.origin.username,
            self.origin.session_id,
            self.origin.session_version,
            addrtype,
            addr
        );
        let name = if self.session_name.is_empty() {
            "-"
        } else {
            &self.session_name
        };
        let _ = write!(out, "s={name}\r\n");
        if let Some(connection) = &self.connection {
            connection.write_c_line(&mut out);
        }
        out.push_str("t=0 0\r\n");
        for media in &self.media {
            media.write(&mut out);
        }
        out
    }
}

/// Static audio payload types of RFC 3551 §6 Table 4, used when an `m=` line lists one without
/// an `a=rtpmap`.
fn static_payload_format(payload_type: u8) -> Option<(&'static str, u32, u8)> {
    Some(match payload_type {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        5 => ("DVI4", 8000, 1),
        6 => ("DVI4", 16000, 1),
        7 => ("LPC", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        12 => ("QCELP", 8000, 1),
        13 => ("CN", 8000, 1),
        14 => ("MPA", 90000, 1),
        15 => ("G728", 8000, 1),
        16 => ("DVI4", 11025, 1),
        17 => ("DVI4", 22050, 1),
        18 => ("G729", 8000, 1),
        _ => return None,
    })
}

/// What the pre-filter learnt from the lines it took out.
#[derive(Debug, Default)]
struct Prefiltered {
    /// The text handed to webrtc-sdp.
    text: String,
    /// Maps each line of `text` to its line number in the original body.
    original_line: Vec<usize>,
    /// Lines taken out.
    ignored: Vec<IgnoredLine>,
    /// A session-level `a=ptime` (RFC 4566 defines ptime at media level; some devices put it at
    /// session level, and webrtc-sdp rejects it there).
    session_ptime: Option<u32>,
    /// A session-level `a=maxptime`.
    session_maxptime: Option<u32>,
    /// Raw `a=fmtp` values per media section: (section index, payload type, parameters).
    fmtp: Vec<(usize, u8, String)>,
    /// Sections with a transport webrtc-sdp cannot parse: (section index, kind, port, proto).
    placeholders: Vec<(usize, String, u16, String)>,
    /// `a=crypto` values per media section: (section index, line number, value). webrtc-sdp
    /// does not read them, and the lines must not reach its error messages: they hold keys.
    crypto: Vec<(usize, usize, String)>,
}

/// Transports webrtc-sdp accepts on an `m=` line (its `parse_protocol_token`).
fn webrtc_sdp_knows_transport(proto: &str) -> bool {
    const KNOWN: [&str; 11] = [
        "RTP/AVP",
        "RTP/AVPF",
        "RTP/SAVP",
        "RTP/SAVPF",
        "TCP/DTLS/RTP/SAVP",
        "TCP/DTLS/RTP/SAVPF",
        "UDP/TLS/RTP/SAVP",
        "UDP/TLS/RTP/SAVPF",
        "DTLS/SCTP",
        "UDP/DTLS/SCTP",
        "TCP/DTLS/SCTP",
    ];
    KNOWN.iter().any(|k| k.eq_ignore_ascii_case(proto))
}

fn prefilter(body: &str) -> Prefiltered {
    let mut out = Prefiltered::default();
    let mut section: Option<usize> = None;
    let mut skipping_section = false;
    for (line_number, raw) in body.split('\n').enumerate() {
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() {
            continue;
        }
        let ignore = |reason: &str, out: &mut Prefiltered| {
            out.ignored.push(IgnoredLine {
                line_number,
                line: line.to_string(),
                reason: reason.to_string(),
            });
        };
        let Some((kind, value)) = line.split_once('=') else {
            ignore("not a <type>=<value> line", &mut out);
            continue;
        };
        let kind = kind.trim();
        if kind == "m" {
            let index = section.map_or(0, |i| i + 1);
            section = Some(index);
            let mut tokens = value.split_whitespace();
            let media = tokens.next().unwrap_or("");
            let port = tokens.next().unwrap_or("");
            let proto = tokens.next().unwrap_or("");
            skipping_section = !proto.is_empty() && !webrtc_sdp_knows_transport(proto);
            if skipping_section {
                // Keep the section's place with a minimal stand-in webrtc-sdp accepts; the real
                // kind, port and transport are restored after parsing.
                let port_number = port
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                out.placeholders
                    .push((index, media.to_string(), port_number, proto.to_string()));
                out.text.push_str("m=audio 0 RTP/AVP 0\r\n");
                out.original_line.push(line_number);
                continue;
            }
        } else if skipping_section {
            ignore(
                "attribute of a media section with an unsupported transport",
                &mut out,
            );
            continue;
        }
        match kind {
            // RFC 4566 §5.6, §5.11, §5.8, §5.12, §5.10: webrtc-sdp refuses these outright; none
            // of them changes how media flows.
            "e" | "p" | "u" | "z" | "k" | "r" => {
                ignore(
                    "field webrtc-sdp does not support; not needed for media",
                    &mut out,
                );
                continue;
            }
            "a" if value.starts_with("crypto:") => {
                let value = &value["crypto:".len()..];
                match section {
                    Some(index) => out.crypto.push((index, line_number, value.to_string())),
                    None => out.ignored.push(IgnoredLine {
                        line_number,
                        line: sdes::redacted(value),
                        reason: "a=crypto at session level (RFC 4568 §9.1: media level only)"
                            .to_string(),
                    }),
                }
                continue;
            }
            "a" if section.is_none() => {
                let name = value.split(':').next().unwrap_or("").trim();
                let number = value
                    .split_once(':')
                    .and_then(|(_, v)| v.trim().parse::<u32>().ok());
                match name {
                    "ptime" => {
                        out.session_ptime = number;
                        ignore(
                            "session-level ptime, applied to every media section",
                            &mut out,
                        );
                        continue;
                    }
                    "maxptime" => {
                        out.session_maxptime = number;
                        ignore(
                            "session-level maxptime, applied to every media section",
                            &mut out,
                        );
                        continue;
                    }
                    "rtpmap" | "fmtp" | "rtcp" | "rtcp-mux" | "candidate" | "mid" | "ssrc" => {
                        ignore("media-level attribute at session level", &mut out);
                        continue;
                    }
                    _ => {}
                }
            }
            "a" => {
                if let Some(rest) = value.strip_prefix("fmtp:") {
                    if let Some((pt, params)) = rest.split_once(char::is_whitespace) {
                        if let (Ok(pt), Some(index)) = (pt.trim().parse::<u8>(), section) {
                            out.fmtp.push((index, pt, params.trim().to_string()));
                        }
                    }
                }
            }
            _ => {}
        }
        out.text.push_str(line);
        out.text.push_str("\r\n");
        out.original_line.push(line_number);
    }
    out
}

fn line_of(text: &str, line_number: usize) -> String {
    text.lines().nth(line_number).unwrap_or("").to_string()
}

/// Whether a line webrtc-sdp rejected can be dropped without losing the session's meaning.
fn droppable(line: &str) -> bool {
    line.starts_with("a=") || line.starts_with("b=") || line.starts_with("i=")
}

fn parse(body: &str) -> Result<SessionDescription, SdpError> {
    if !body.trim_start().starts_with("v=") {
        return Err(SdpError::NotSdp("body does not start with v=".to_string()));
    }
    let mut pre = prefilter(body);
    // Each round drops at most one line, so the loop ends; the bound is a guard against a body
    // that is nothing but bad attributes.
    let session = loop {
        match webrtc_sdp::parse_sdp(&pre.text, false) {
            Ok(session) => break session,
            Err(error) => {
                let (line_number, reason) = match &error {
                    SdpParserError::Line {
                        error, line_number, ..
                    }
                    | SdpParserError::Unsupported {
                        error, line_number, ..
                    } => (Some(*line_number), error.to_string()),
                    SdpParserError::Sequence {
                        message,
                        line_number,
                    } => {
                        // webrtc-sdp reports whole-session sequence errors at line 0.
                        ((*line_number > 0).then_some(*line_number), message.clone())
                    }
                };
                let Some(line_number) = line_number else {
                    return Err(SdpError::Structure(reason));
                };
                let line = line_of(&pre.text, line_number);
                let original = pre
                    .original_line
                    .get(line_number)
                    .copied()
                    .unwrap_or(line_number);
                if !droppable(&line) || pre.ignored.len() > 64 {
                    if pre.text.len() < 51 {
                        return Err(SdpError::NotSdp(reason));
                    }
                    return Err(SdpError::InvalidLine {
                        line_number: original,
                        line,
                        reason,
                    });
                }
                pre.ignored.push(IgnoredLine {
                    line_number: original,
                    line: line.clone(),
                    reason: format!("webrtc-sdp rejected it: {reason}"),
                });
                remove_line(&mut pre, line_number);
            }
        }
    };
    convert(&session, pre)
}

fn remove_line(pre: &mut Prefiltered, line_number: usize) {
    let mut text = String::with_capacity(pre.text.len());
    for (n, line) in pre.text.lines().enumerate() {
        if n != line_number {
            text.push_str(line);
            text.push('\n');
        }
    }
    pre.text = text;
    if line_number < pre.original_line.len() {
        pre.original_line.remove(line_number);
    }
}

fn direction_of(attributes: &[SdpAttribute]) -> Option<Direction> {
    attributes.iter().find_map(|a| match a {
        SdpAttribute::Sendrecv => Some(Direction::SendRecv),
        SdpAttribute::Sendonly => Some(Direction::SendOnly),
        SdpAttribute::Recvonly => Some(Direction::RecvOnly),
        SdpAttribute::Inactive => Some(Direction::Inactive),
        _ => None,
    })
}

fn convert(
    session: &webrtc_sdp::SdpSession,
    pre: Prefiltered,
) -> Result<SessionDescription, SdpError> {
    let origin = session.get_origin();
    let session_direction = direction_of(&session.attribute);
    if session.media.is_empty() {
        // A body without any media description offers nothing to a dialer (RFC 3264 §5
        // needs an m= line per stream), and could not be written back as a valid body.
        return Err(SdpError::Structure(
            "no m= line: the body describes no stream".into(),
        ));
    }
    let mut media = Vec::with_capacity(session.media.len());
    for (index, section) in session.media.iter().enumerate() {
        if let Some((_, kind, port, proto)) = pre.placeholders.iter().find(|p| p.0 == index) {
            media.push(MediaDescription {
                kind: kind.clone(),
                port: *port,
                transport: Transport::Other(proto.clone()),
                formats: Vec::new(),
                connection: None,
                direction: Direction::Inactive,
                ptime: None,
                maxptime: None,
                rtcp: None,
                rtcp_mux: false,
                crypto: Vec::new(),
            });
            continue;
        }
        let attributes = section.get_attributes();
        let mut formats = Vec::new();
        if let SdpFormatList::Integers(list) = section.get_formats() {
            // RFC 3551 §3: an RTP payload type is 7 bits; a section listing none in range
            // has nothing to send or receive and could not be written back.
            if !list.is_empty() && list.iter().all(|&pt| pt > 127) {
                return Err(SdpError::Structure(format!(
                    "m= line {} lists no payload type from 0 to 127",
                    index + 1
                )));
            }
            for &pt in list {
                let Ok(pt) = u8::try_from(pt) else { continue };
                let Some(payload_type) = PayloadType::new(pt) else {
                    continue;
                };
                // An rtpmap without an encoding name maps nothing (RFC 4566 §6): the static
                // assignment, if any, stands.
                let rtpmap = attributes.iter().find_map(|a| match a {
                    SdpAttribute::Rtpmap(r) if r.payload_type == pt && !r.codec_name.is_empty() => {
                        Some(r)
                    }
                    _ => None,
                });
                let (encoding, clock_rate, channels) = match rtpmap {
                    Some(r) => (
                        r.codec_name.clone(),
                        r.frequency,
                        r.channels
                            .and_then(|c| u8::try_from(c).ok())
                            .filter(|&c| c > 0)
                            .unwrap_or(1),
                    ),
                    None => match static_payload_format(pt) {
                        Some((name, rate, channels)) => (name.to_string(), rate, channels),
                        // A dynamic type without rtpmap cannot be used (RFC 4566 §6); keep it
                        // listed so the writer's numbering is visible, with no clock.
                        None => (String::new(), 0, 1),
                    },
                };
                let fmtp = pre
                    .fmtp
                    .iter()
                    .find(|(i, p, _)| *i == index && *p == pt)
                    .map(|(_, _, params)| params.clone());
                formats.push(PayloadFormat {
                    payload_type,
                    encoding,
                    clock_rate,
                    channels,
                    fmtp,
                });
            }
        }
        let ptime = attributes
            .iter()
            .find_map(|a| match a {
                SdpAttribute::Ptime(p) => u32::try_from(*p).ok(),
                _ => None,
            })
            .or(pre.session_ptime);
        let maxptime = attributes
            .iter()
            .find_map(|a| match a {
                SdpAttribute::MaxPtime(p) => u32::try_from(*p).ok(),
                _ => None,
            })
            .or(pre.session_maxptime);
        let rtcp = attributes.iter().find_map(|a| match a {
            SdpAttribute::Rtcp(r) => Some(RtcpAttribute {
                port: r.port,
                address: r.unicast_addr.as_ref().map(ConnectionAddress::from_webrtc),
            }),
            _ => None,
        });
        let rtcp_mux = attributes
            .iter()
            .any(|a| matches!(a, SdpAttribute::RtcpMux));
        let transport = match section.get_proto() {
            SdpProtocolValue::RtpAvp => Transport::RtpAvp,
            SdpProtocolValue::RtpAvpf => Transport::RtpAvpf,
            other @ (SdpProtocolValue::RtpSavp
            | SdpProtocolValue::RtpSavpf
            | SdpProtocolValue::TcpDtlsRtpSavp
            | SdpProtocolValue::TcpDtlsRtpSavpf
            | SdpProtocolValue::UdpTlsRtpSavp
            | SdpProtocolValue::UdpTlsRtpSavpf) => Transport::Secure(other.to_string()),
            other => Transport::Other(other.to_string()),
        };
        let kind = match section.get_type() {
            SdpMediaValue::Audio => "audio".to_string(),
            SdpMediaValue::Video => "video".to_string(),
            SdpMediaValue::Application => "application".to_string(),
            SdpMediaValue::Unknown(s) => s.clone(),
        };
        let port = u16::try_from(section.get_port()).map_err(|_| {
            SdpError::Structure(format!("m= port {} out of range", section.get_port()))
        })?;
        media.push(MediaDescription {
            kind,
            port,
            transport,
            formats,
            connection: section
                .get_connection()
                .as_ref()
                .map(|c| ConnectionAddress::from_webrtc(&c.address)),
            direction: direction_of(attributes)
                .or(session_direction)
                .unwrap_or_default(),
            ptime,
            maxptime,
            rtcp,
            rtcp_mux,
            crypto: Vec::new(),
        });
    }
    let mut ignored = pre.ignored;
    for (index, line_number, value) in pre.crypto {
        match (CryptoAttribute::parse(&value), media.get_mut(index)) {
            (Ok(crypto), Some(m)) => m.crypto.push(crypto),
            (Err(reason), _) => ignored.push(IgnoredLine {
                line_number,
                line: sdes::redacted(&value),
                reason,
            }),
            (Ok(_), None) => {}
        }
    }
    ignored.sort_by_key(|l| l.line_number);
    Ok(SessionDescription {
        origin: Origin {
            username: origin.username.clone(),
            session_id: origin.session_id,
            session_version: origin.session_version,
            address: ConnectionAddress::from_webrtc(&origin.unicast_addr),
        },
        session_name: session.get_session_text().to_string(),
        connection: session
            .get_connection()
            .as_ref()
            .map(|c| ConnectionAddress::from_webrtc(&c.address)),
        media,
        ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DTMF2: &str = "v=0\r\no=SIPDECT2504 4400 1459 IN IP4 192.168.105.110\r\ns=-\r\n\
        c=IN IP4 192.168.105.110\r\nt=0 0\r\nm=audio 4376 RTP/AVP 8 0 18 96\r\na=sendrecv\r\n\
        a=ptime:30\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:18 G729/8000\r\n\
        a=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n";

    #[test]
    fn body_without_media_lines_is_rejected() {
        let sdp = "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=c1\r\nt=0 0\r\naudio 5084 RTP/AVP 96\r\na=sendrecv\r\n";
        let err = SessionDescription::parse(sdp).unwrap_err();
        assert!(err.to_string().contains("m= line"), "{err}");
    }

    #[test]
    fn media_line_with_only_out_of_range_payload_types_is_rejected() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 5094 RTP/AVP 926\r\n";
        let err = SessionDescription::parse(sdp).unwrap_err();
        assert!(err.to_string().contains("payload type"), "{err}");
    }

    #[test]
    fn reads_formats_ptime_and_telephone_event_number() {
        let sdp = SessionDescription::parse(DTMF2).expect("valid SDP");
        let media = &sdp.media[0];
        assert_eq!(media.port, 4376);
        assert_eq!(media.ptime, Some(30));
        let pts: Vec<u8> = media.formats.iter().map(|f| f.payload_type.0).collect();
        assert_eq!(pts, [8, 0, 18, 96]);
        let te = media
            .format(PayloadType(96))
            .expect("telephone-event listed");
        assert!(te.is_telephone_event());
        assert_eq!(te.fmtp.as_deref(), Some("0-15"));
        assert_eq!(
            sdp.connection_for(0),
            Some(&ConnectionAddress::Ip("192.168.105.110".parse().unwrap()))
        );
    }

    #[test]
    fn fields_webrtc_sdp_refuses_are_filtered_and_session_ptime_applies_to_media() {
        let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=x\r\ni=info\r\nu=http://example.com\r\n\
            e=a@example.com\r\np=+1 555\r\nc=IN IP4 10.0.0.1\r\nb=AS:64\r\nt=0 0\r\nr=7d 1h 0 25h\r\n\
            z=2882844526 -1h\r\nk=clear:secret\r\na=ptime:30\r\na=maxptime:60\r\n\
            m=audio 4000 RTP/AVP 0\r\n";
        let sdp = SessionDescription::parse(body).expect("valid SDP");
        assert_eq!(sdp.media[0].ptime, Some(30));
        assert_eq!(sdp.media[0].maxptime, Some(60));
        let ignored: Vec<&str> = sdp.ignored.iter().map(|l| &l.line[..2]).collect();
        assert_eq!(ignored, ["u=", "e=", "p=", "r=", "z=", "k=", "a=", "a="]);
        assert_eq!(sdp.media[0].formats[0].encoding, "PCMU");
    }

    #[test]
    fn media_connection_overrides_session_connection() {
        let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\na=rtcp:4005 IN IP4 10.0.0.3\r\n\
            m=audio 4002 RTP/AVP 8\r\n";
        let sdp = SessionDescription::parse(body).expect("valid SDP");
        assert_eq!(
            sdp.connection_for(0).and_then(|c| c.ip()),
            Some("10.0.0.2".parse().unwrap())
        );
        assert_eq!(
            sdp.connection_for(1).and_then(|c| c.ip()),
            Some("10.0.0.1".parse().unwrap())
        );
        let rtcp = sdp.media[0].rtcp.as_ref().expect("a=rtcp");
        assert_eq!(rtcp.port, 4005);
        assert_eq!(
            rtcp.address,
            Some(ConnectionAddress::Ip("10.0.0.3".parse().unwrap()))
        );
    }

    #[test]
    fn zero_address_is_hold_and_removes_receive_direction() {
        let body = "v=0\r\no=- 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n";
        let sdp = SessionDescription::parse(body).expect("valid SDP");
        assert!(sdp.is_connection_hold(0));
        assert_eq!(sdp.effective_direction(0), Direction::SendOnly);
    }

    #[test]
    fn unknown_transport_section_keeps_its_place() {
        let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=image 5000 udptl t38\r\na=T38FaxVersion:0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let sdp = SessionDescription::parse(body).expect("valid SDP");
        assert_eq!(sdp.media.len(), 2);
        assert_eq!(sdp.media[0].kind, "image");
        assert_eq!(sdp.media[0].port, 5000);
        assert_eq!(sdp.media[0].transport, Transport::Other("udptl".into()));
        assert_eq!(sdp.media[1].formats[0].encoding, "PCMU");
    }

    #[test]
    fn malformed_attribute_is_dropped_and_listed() {
        let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
            a=fmtp:101 stereo=7\r\na=ptime:20\r\n";
        let sdp = SessionDescription::parse(body).expect("one bad attribute does not fail");
        assert_eq!(sdp.media[0].ptime, Some(20));
        assert!(sdp.ignored.iter().any(|l| l.line == "a=fmtp:101 stereo=7"));
    }

    #[test]
    fn malformed_connection_is_an_error_naming_the_line() {
        let body =
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 '/**/OR/**/'1'--\r\nt=0 0\r\n\
            m=audio 4000 RTP/AVP 0\r\n";
        match SessionDescription::parse(body) {
            Err(SdpError::InvalidLine {
                line, line_number, ..
            }) => {
                assert_eq!(line_number, 3);
                assert!(line.starts_with("c="));
            }
            other => panic!("expected an invalid c= line, got {other:?}"),
        }
    }

    #[test]
    fn not_sdp_is_refused() {
        assert!(matches!(
            SessionDescription::parse("hello"),
            Err(SdpError::NotSdp(_))
        ));
        assert!(matches!(
            SessionDescription::parse(""),
            Err(SdpError::NotSdp(_))
        ));
    }

    #[test]
    fn written_text_parses_back_to_the_same_model() {
        let sdp = SessionDescription::parse(DTMF2).expect("valid SDP");
        let text = sdp.to_sdp_string();
        assert!(text.ends_with("\r\n"));
        let again = SessionDescription::parse(&text).expect("our own output parses");
        assert_eq!(again.media, sdp.media);
        assert_eq!(again.origin, sdp.origin);
    }
}
