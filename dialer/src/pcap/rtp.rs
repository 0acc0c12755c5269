//! RTP streams of a capture with codec names: from the SDP in the capture's SIP messages when
//! there is one for the stream, else from the static payload types of RFC 3551 §6.
//!
//! The SDP also says when a media port stops carrying RTP: an exchange that moves a stream to
//! T.38 (`m=image <port> udptl t38`) takes both sides' ports out of the RTP analysis from the
//! answer's frame on, as tshark does ([`capture::rtp::MediaSwitch`]). Offers and answers are
//! paired per Call-ID (RFC 3264 §4, RFC 3261 §13.2.1): a request's SDP is an offer, except in an
//! ACK or PRACK after an offer in a response; a response's SDP answers a pending offer from a
//! request, else it is an offer itself.
//!
//! A stream is marked SRTP (RFC 3711) when the SDP says its payload is encrypted: the section
//! at either end is `RTP/SAVP`/`RTP/SAVPF`, or both ends' sections carry `a=crypto` (SDES,
//! RFC 4568: each side sends with the key it wrote). Its codec names still come from the SDP,
//! but its payload is not audio anyone can decode from the capture.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use capture::rtp::{streams, MediaSwitch, RtpOptions, RtpStream};
use capture::Capture;
use media::sdp::{SessionDescription, Transport as SdpTransport};
use serde::Serialize;
use sip_core::message::{Message, Method, SipMessage};

use super::sip;

/// A payload format announced in SDP (`a=rtpmap`, or a static type listed on `m=`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Encoding name as written (`PCMU`, `opus`, `telephone-event`).
    pub encoding: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
}

/// Payload-type maps learnt from the SDP bodies of a capture.
#[derive(Debug, Clone, Default)]
pub struct SdpMaps {
    /// Per receiving address (`c=` address and `m=` port): payload type -> format. The SDP
    /// writer receives there with these numbers (RFC 3264 §5.1).
    pub by_address: HashMap<SocketAddr, BTreeMap<u8, Format>>,
    /// The first format seen for each payload type anywhere in the capture.
    pub any: BTreeMap<u8, Format>,
    /// Ports an SDP answer moved to UDPTL or back to RTP, with the answer's frame.
    pub media_switches: Vec<MediaSwitch>,
    /// Receiving addresses whose section carries `a=crypto`, and whether it is
    /// `RTP/SAVP` (or `RTP/SAVPF`).
    pub keyed: HashMap<SocketAddr, bool>,
}

/// An SDP offer waiting for its answer.
#[derive(Debug)]
struct PendingOffer {
    /// Sent in a response (answered by ACK or PRACK) rather than in a request.
    in_response: bool,
    /// Each media section's receive address and whether it is UDPTL.
    media: Vec<(SocketAddr, bool)>,
}

/// Each media section's receive address (port 0 sections left out) and whether it is UDPTL.
fn media_addresses(sdp: &SessionDescription) -> Vec<(SocketAddr, bool)> {
    sdp.media
        .iter()
        .enumerate()
        .filter(|(_, m)| m.port != 0)
        .filter_map(|(i, m)| {
            let ip = sdp.connection_for(i)?.ip()?;
            let udptl =
                matches!(&m.transport, SdpTransport::Other(t) if t.eq_ignore_ascii_case("udptl"));
            Some((SocketAddr::new(ip, m.port), udptl))
        })
        .collect()
}

/// Pairs the SDP of `message` with the pending offer of its call (see the module docs).
fn offer_answer(
    pending: &mut HashMap<String, PendingOffer>,
    index: usize,
    message: &Message,
    sdp: &SessionDescription,
    switches: &mut Vec<MediaSwitch>,
) {
    let Ok(call_id) = message.call_id() else {
        return;
    };
    let (answers_response, in_response) = match message {
        Message::Request(r) => (matches!(r.method, Method::Ack | Method::Prack), false),
        Message::Response(_) => (false, true),
    };
    let media = media_addresses(sdp);
    let answered = pending.get(call_id).is_some_and(|offer| {
        if in_response {
            !offer.in_response
        } else {
            offer.in_response && answers_response
        }
    });
    if !answered {
        pending.insert(call_id.to_string(), PendingOffer { in_response, media });
        return;
    }
    let offer = pending.remove(call_id).expect("checked above");
    for (address, udptl) in offer.media.into_iter().chain(media) {
        switches.push(MediaSwitch {
            index,
            address,
            udptl,
        });
    }
}

impl SdpMaps {
    /// Reads every SDP body of the capture's SIP messages. Bodies the SDP parser refuses are
    /// skipped: they only cost the codec names of their streams.
    pub fn from_capture(capture: &Capture) -> SdpMaps {
        let mut maps = SdpMaps::default();
        let mut pending = HashMap::new();
        for p in sip::messages(capture) {
            let Ok(m) = &p.message else { continue };
            let body = sip_core::message::SipMessage::body(m);
            if body.is_empty() {
                continue;
            }
            let Ok(sdp) = SessionDescription::parse_bytes(body) else {
                continue;
            };
            offer_answer(&mut pending, p.index, m, &sdp, &mut maps.media_switches);
            let crypto = sections_with_crypto(body);
            for (i, media) in sdp.media.iter().enumerate() {
                let savp = media::sdp::is_sdes_transport(&media.transport);
                if let Some(ip) = sdp.connection_for(i).and_then(|c| c.ip()) {
                    if savp || crypto.contains(&i) {
                        maps.keyed.insert(SocketAddr::new(ip, media.port), savp);
                    }
                }
                let mut map = BTreeMap::new();
                for f in &media.formats {
                    let format = Format {
                        encoding: f.encoding.clone(),
                        clock_rate: f.clock_rate,
                    };
                    maps.any
                        .entry(f.payload_type.0)
                        .or_insert_with(|| format.clone());
                    map.insert(f.payload_type.0, format);
                }
                if let Some(ip) = sdp.connection_for(i).and_then(|c| c.ip()) {
                    maps.by_address
                        .entry(SocketAddr::new(ip, media.port))
                        .or_default()
                        .extend(map);
                }
            }
        }
        maps
    }

    /// The format of `pt` on a stream from `src` to `dst`: the receiver's SDP, else the
    /// sender's (offer and answer usually share numbers), else any SDP, else RFC 3551.
    pub fn format(&self, pt: u8, src: SocketAddr, dst: SocketAddr) -> Option<Format> {
        [dst, src]
            .iter()
            .find_map(|a| self.by_address.get(a).and_then(|m| m.get(&pt)))
            .or_else(|| (pt >= 96).then(|| self.any.get(&pt)).flatten())
            .cloned()
            .or_else(|| static_format(pt))
            // Wireshark's `rtpevent` preference: PT 101 is telephone-event without SDP.
            .or_else(|| {
                (pt == 101).then(|| Format {
                    encoding: "telephone-event".to_string(),
                    clock_rate: 8000,
                })
            })
    }

    /// Whether the SDP makes the stream from `src` to `dst` SRTP (see the module docs).
    pub fn is_srtp(&self, src: SocketAddr, dst: SocketAddr) -> bool {
        let (from, to) = (self.keyed.get(&src), self.keyed.get(&dst));
        from == Some(&true) || to == Some(&true) || (from.is_some() && to.is_some())
    }

    /// Options for [`capture::rtp::streams`]: dynamic clock rates and telephone-event types
    /// from the SDP, plus Wireshark's default telephone-event type 101.
    pub fn rtp_options(&self) -> RtpOptions {
        let mut options = RtpOptions {
            media_switches: self.media_switches.clone(),
            ..RtpOptions::default()
        };
        let all = self.by_address.values().flat_map(|m| m.iter());
        for (&pt, f) in self.any.iter().chain(all) {
            if f.encoding.eq_ignore_ascii_case("telephone-event") {
                options.telephone_event_types.insert(pt);
            }
            if pt >= 96 {
                options.clock_rates.entry(pt).or_insert(f.clock_rate);
            }
        }
        options
    }
}

/// The indexes of the `m=` sections of an SDP body that have an `a=crypto` line, read from
/// the text: a line whose key the capture's writer starred out (`dialer call --pcap`) is not
/// one the SDP parser keeps, but it still says the stream was keyed.
fn sections_with_crypto(body: &[u8]) -> BTreeSet<usize> {
    let mut section: Option<usize> = None;
    let mut found = BTreeSet::new();
    for line in String::from_utf8_lossy(body).lines() {
        if line.starts_with("m=") {
            section = Some(section.map_or(0, |s| s + 1));
        } else if line.starts_with("a=crypto:") {
            if let Some(s) = section {
                found.insert(s);
            }
        }
    }
    found
}

/// RFC 3551 §6 Table 4 static audio payload types (and the common video ones).
pub fn static_format(pt: u8) -> Option<Format> {
    let (name, rate) = match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        26 => ("JPEG", 90000),
        31 => ("H261", 90000),
        32 => ("MPV", 90000),
        34 => ("H263", 90000),
        _ => return None,
    };
    Some(Format {
        encoding: name.to_string(),
        clock_rate: rate,
    })
}

/// One stream as `dialer pcap rtp` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    /// SSRC.
    pub ssrc: u32,
    /// SSRC as tshark prints it (`0xDEE0EE8F`).
    pub ssrc_hex: String,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Payload types in order of first appearance.
    pub payload_types: Vec<u8>,
    /// Their codec names (`PT <n>` when unknown).
    pub codecs: Vec<String>,
    /// The SDP made the stream SRTP: its payload is encrypted (see the module docs).
    pub srtp: bool,
    /// Seconds from the first packet of the capture to the stream's first packet.
    pub start: f64,
    /// Seconds from the first packet of the capture to the stream's last packet.
    pub end: f64,
    /// Packets received.
    pub packets: u64,
    /// Packets expected from the sequence numbers.
    pub expected: i64,
    /// Lost (negative with duplicates, as tshark).
    pub lost: i64,
    /// Lost as a percentage of expected.
    pub lost_percent: f64,
    /// Sequence errors.
    pub sequence_errors: u64,
    /// Largest arrival-time delta, ms.
    pub max_delta_ms: f64,
    /// Largest RFC 3550 jitter, ms.
    pub max_jitter_ms: f64,
    /// Mean jitter, ms.
    pub mean_jitter_ms: f64,
    /// RFC 4733 digits in order (`*`, `#`, `A`-`D` included).
    pub digits: String,
    /// The RFC 4733 events.
    pub events: Vec<EventReport>,
}

/// One RFC 4733 event.
#[derive(Debug, Clone, Serialize)]
pub struct EventReport {
    /// Frame of its first packet.
    pub packet: usize,
    /// Seconds since the first packet of the capture.
    pub time: f64,
    /// Event code.
    pub event: u8,
    /// Digit, for codes 0-15.
    pub digit: Option<char>,
    /// Duration in timestamp units.
    pub duration: u16,
    /// Whether its end packet arrived.
    pub end: bool,
}

/// The streams of `capture`, with codec names.
pub fn report(capture: &Capture) -> Vec<StreamReport> {
    let maps = SdpMaps::from_capture(capture);
    let origin = capture.packets.first().map_or(Duration::ZERO, |p| p.time);
    let rel = |t: Duration| t.saturating_sub(origin).as_secs_f64();
    streams(capture, &maps.rtp_options())
        .into_iter()
        .map(|s: RtpStream| StreamReport {
            ssrc: s.ssrc,
            ssrc_hex: format!("0x{:08X}", s.ssrc),
            src: s.src,
            dst: s.dst,
            codecs: s
                .payload_types
                .iter()
                .map(|&pt| {
                    maps.format(pt, s.src, s.dst)
                        .map_or_else(|| format!("PT {pt}"), |f| f.encoding)
                })
                .collect(),
            payload_types: s.payload_types.clone(),
            srtp: maps.is_srtp(s.src, s.dst),
            start: rel(s.start),
            end: rel(s.end),
            packets: s.packets,
            expected: s.expected,
            lost: s.lost,
            lost_percent: if s.expected > 0 {
                s.lost as f64 * 100.0 / s.expected as f64
            } else {
                0.0
            },
            sequence_errors: s.sequence_errors,
            max_delta_ms: s.max_delta_ms,
            max_jitter_ms: s.max_jitter_ms,
            mean_jitter_ms: s.mean_jitter_ms,
            digits: s.events.iter().filter_map(|e| e.digit).collect(),
            events: s
                .events
                .iter()
                .map(|e| EventReport {
                    packet: e.index,
                    time: rel(e.time),
                    event: e.event,
                    digit: e.digit,
                    duration: e.duration,
                    end: e.end,
                })
                .collect(),
        })
        .collect()
}

/// Telephone-event payload types a stream uses, by the same lookup as codec names.
pub fn telephone_event_types(maps: &SdpMaps, s: &RtpStream) -> BTreeSet<u8> {
    s.payload_types
        .iter()
        .copied()
        .filter(|&pt| {
            maps.format(pt, s.src, s.dst)
                .is_some_and(|f| f.encoding.eq_ignore_ascii_case("telephone-event"))
        })
        .collect()
}
