//! Per-call SIP ladders, as sngrep and Wireshark's "VoIP Calls" show them, with the problems
//! engineers look for flagged.
//!
//! Messages are grouped by Call-ID. Per call:
//! - **ACK for a 2xx misrouted** (RFC 3261 §13.2.2.4, §12.2.1.1): the ACK a UAC sends (the one
//!   with a single Via) must carry the 2xx's Contact as Request-URI and the reversed
//!   Record-Route as Route (with a strict first route, RFC 3261 §12.2.1.1, that route is the
//!   Request-URI and the Contact goes last), and it must go to the first route's host, or to
//!   the Contact's when there is no route set. An ACK that misses drops the call after Timer H /
//!   the UAS's 2xx retransmissions give up (the "32-second hang-up").
//! - **NAT**: a private address (RFC 1918, RFC 6598 shared space, loopback, IPv6 unique-local
//!   and link-local) in a Contact, in a request's top Via sent-by, or in an SDP `c=` line, in a
//!   message that came from a public address.
//! - **Missing ACK**: a 2xx to an INVITE with no ACK of the same CSeq number in the capture.
//! - **Retransmissions**: the same sender sending the same bytes again, or the same top Via
//!   branch, CSeq, To tag and method or status again (RFC 3261 §17).
//! - **Outcome**: answered (and who sent the BYE), cancelled, or the final status of the last
//!   INVITE; for calls without an INVITE, the final responses of their requests.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use capture::{Capture, Transport};
use serde::Serialize;
use sip_core::message::{Message, Method, NameAddr, SipMessage, Uri};

use super::sip::{self, SipError, SipPacket};

/// The analysis of one capture.
#[derive(Debug, Clone, Serialize)]
pub struct Ladder {
    /// Calls in order of their first message.
    pub calls: Vec<Call>,
    /// SIP-looking payloads that were rejected, in frame order.
    pub unparsed: Vec<Unparsed>,
    /// How many SIP messages were parsed.
    pub parsed_messages: usize,
    /// How many distinct frames carried at least one SIP message, parsed or rejected (what
    /// `tshark -Y sip` counts: it lists malformed SIP too).
    pub sip_frames: usize,
}

/// One Call-ID's messages and findings.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    /// The Call-ID (empty for messages without one).
    pub call_id: String,
    /// The messages in capture order.
    pub messages: Vec<Step>,
    /// What looks wrong.
    pub flags: Vec<Flag>,
    /// How the call (or the transactions of a non-INVITE Call-ID) ended.
    pub outcome: String,
}

/// One arrow of the ladder.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Frame number.
    pub packet: usize,
    /// Seconds since the first packet of the capture.
    pub time: f64,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// `UDP`, `TCP` or `WS`.
    pub transport: &'static str,
    /// The request method, for a request.
    pub method: Option<String>,
    /// The Request-URI, for a request.
    pub uri: Option<String>,
    /// The status code, for a response.
    pub status: Option<u16>,
    /// The reason phrase, for a response.
    pub reason: Option<String>,
    /// The CSeq value (`1 INVITE`), empty when absent.
    pub cseq: String,
    /// Whether this repeats an earlier message of the same sender.
    pub retransmission: bool,
}

impl Step {
    /// `INVITE sip:bob@example.com` or `200 OK`.
    pub fn label(&self) -> String {
        match (&self.method, &self.uri, self.status, &self.reason) {
            (Some(m), Some(u), _, _) => format!("{m} {u}"),
            (_, _, Some(s), Some(r)) => format!("{s} {r}"),
            _ => String::new(),
        }
    }
}

/// A finding about a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// What kind of finding.
    pub kind: FlagKind,
    /// The frame it is about.
    pub packet: usize,
    /// What was seen, in words.
    pub message: String,
}

/// Kinds of [`Flag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// The ACK for a 2xx does not follow the 2xx's Contact and route set.
    AckMisrouted,
    /// A private address arrived from a public one.
    Nat,
    /// A 2xx to an INVITE was never ACKed in the capture.
    MissingAck,
    /// A message was sent more than once.
    Retransmission,
}

/// A SIP-looking payload that is not a valid message.
#[derive(Debug, Clone, Serialize)]
pub struct Unparsed {
    /// Frame number.
    pub packet: usize,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// `UDP`, `TCP` or `WS`.
    pub transport: &'static str,
    /// What is wrong.
    pub error: String,
    /// 1-based line of the fault, when the parser gave one.
    pub line: Option<usize>,
    /// 1-based column of the fault, when the parser gave one.
    pub column: Option<usize>,
}

/// The short transport name used in ladders.
pub fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::WebSocket => "WS",
        Transport::Sctp => "SCTP",
    }
}

/// Builds the ladder of every call in `capture` (or only of `only_call`).
pub fn analyse(capture: &Capture, only_call: Option<&str>) -> Ladder {
    let origin = capture.packets.first().map_or(Duration::ZERO, |p| p.time);
    let found = sip::messages(capture);
    let mut unparsed = Vec::new();
    let mut frames = HashSet::new();
    let mut parsed_messages = 0;
    let mut order: Vec<String> = Vec::new();
    let mut by_call: HashMap<String, Vec<(&SipPacket<'_>, &Message)>> = HashMap::new();
    for p in &found {
        frames.insert(p.index);
        match &p.message {
            Ok(m) => {
                parsed_messages += 1;
                let id = m.call_id().unwrap_or("").to_string();
                if only_call.is_some_and(|c| c != id) {
                    continue;
                }
                by_call
                    .entry(id.clone())
                    .or_insert_with(|| {
                        order.push(id);
                        Vec::new()
                    })
                    .push((p, m));
            }
            Err(e) => {
                let (line, column) = match e {
                    SipError::Parse(pe) => (Some(pe.line), Some(pe.column)),
                    SipError::Incomplete { .. } => (None, None),
                };
                unparsed.push(Unparsed {
                    packet: p.index,
                    src: p.src,
                    dst: p.dst,
                    transport: transport_name(p.transport),
                    error: match e {
                        SipError::Parse(pe) => crate::cli::sip::error_text(pe),
                        other => other.to_string(),
                    },
                    line,
                    column,
                });
            }
        }
    }
    let calls = order
        .into_iter()
        .map(|id| {
            let msgs = by_call.remove(&id).unwrap_or_default();
            analyse_call(id, &msgs, origin)
        })
        .collect();
    Ladder {
        calls,
        unparsed,
        parsed_messages,
        sip_frames: frames.len(),
    }
}

fn analyse_call(call_id: String, msgs: &[(&SipPacket<'_>, &Message)], origin: Duration) -> Call {
    let mut flags = Vec::new();
    let steps = steps_with_retransmissions(msgs, origin, &mut flags);
    let live: Vec<_> = msgs
        .iter()
        .zip(&steps)
        .filter(|(_, s)| !s.retransmission)
        .map(|(m, _)| *m)
        .collect();
    check_acks(&live, &mut flags);
    check_nat(&live, &mut flags);
    flags.sort_by_key(|f| f.packet);
    Call {
        call_id,
        outcome: outcome(&live),
        messages: steps,
        flags,
    }
}

/// The ladder steps; marks and flags retransmissions.
fn steps_with_retransmissions(
    msgs: &[(&SipPacket<'_>, &Message)],
    origin: Duration,
    flags: &mut Vec<Flag>,
) -> Vec<Step> {
    let mut by_bytes: HashMap<(u64, SocketAddr, SocketAddr), usize> = HashMap::new();
    let mut by_transaction: HashMap<String, usize> = HashMap::new();
    // First step of each repeated message -> the packets that repeated it.
    let mut repeats: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut repeat_slot: HashMap<usize, usize> = HashMap::new();
    let mut steps = Vec::with_capacity(msgs.len());
    for (i, (p, m)) in msgs.iter().enumerate() {
        let mut h = DefaultHasher::new();
        p.bytes.hash(&mut h);
        let bytes_key = (h.finish(), p.src, p.dst);
        let cseq = m.cseq().map(|c| c.to_string()).unwrap_or_default();
        let what = match m {
            Message::Request(r) => r.method.as_str().to_string(),
            Message::Response(r) => r.status.to_string(),
        };
        let branch = m
            .top_via()
            .ok()
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let to_tag = m
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_string))
            .unwrap_or_default();
        let tx_key = format!("{}|{}|{branch}|{cseq}|{to_tag}|{what}", p.src, p.dst);
        let earlier = by_bytes
            .get(&bytes_key)
            .copied()
            .or_else(|| by_transaction.get(&tx_key).copied());
        let retransmission = earlier.is_some();
        match earlier {
            Some(first) => {
                let slot = *repeat_slot.entry(first).or_insert_with(|| {
                    repeats.push((first, Vec::new()));
                    repeats.len() - 1
                });
                repeats[slot].1.push(p.index);
            }
            None => {
                by_bytes.insert(bytes_key, i);
                by_transaction.insert(tx_key, i);
            }
        }
        let (method, uri, status, reason) = match m {
            Message::Request(r) => (
                Some(r.method.as_str().to_string()),
                Some(r.uri.to_string()),
                None,
                None,
            ),
            Message::Response(r) => (None, None, Some(r.status), Some(r.reason.clone())),
        };
        steps.push(Step {
            packet: p.index,
            time: p.time.saturating_sub(origin).as_secs_f64(),
            src: p.src,
            dst: p.dst,
            transport: transport_name(p.transport),
            method,
            uri,
            status,
            reason,
            cseq,
            retransmission,
        });
    }
    for (first, again) in repeats {
        let s = &steps[first];
        let packets: Vec<String> = again.iter().map(|p| p.to_string()).collect();
        flags.push(Flag {
            kind: FlagKind::Retransmission,
            packet: s.packet,
            message: format!(
                "{} (CSeq {}) from {} to {} sent {} times: packet {} repeated in {}",
                s.label(),
                s.cseq,
                s.src,
                s.dst,
                again.len() + 1,
                s.packet,
                packets.join(", ")
            ),
        });
    }
    steps
}

fn cseq_of(m: &Message) -> Option<(u32, Method)> {
    m.cseq().ok().map(|c| (c.seq, c.method))
}

fn is_2xx_to_invite(m: &Message) -> bool {
    m.as_response().is_some_and(|r| r.is_success())
        && cseq_of(m).is_some_and(|(_, method)| method == Method::Invite)
}

/// Missing and misrouted ACKs for 2xx responses.
fn check_acks(msgs: &[(&SipPacket<'_>, &Message)], flags: &mut Vec<Flag>) {
    let acks: Vec<_> = msgs
        .iter()
        .filter(|(_, m)| m.as_request().is_some_and(|r| r.method == Method::Ack))
        .collect();
    let mut reported_missing = HashSet::new();
    for (p, m) in msgs {
        if !is_2xx_to_invite(m) {
            continue;
        }
        let Some((seq, _)) = cseq_of(m) else { continue };
        let acked = acks
            .iter()
            .any(|(_, a)| cseq_of(a).is_some_and(|(s, _)| s == seq));
        if !acked && reported_missing.insert(seq) {
            flags.push(Flag {
                kind: FlagKind::MissingAck,
                packet: p.index,
                message: format!(
                    "{} to INVITE (CSeq {seq}) from {} has no ACK in the capture",
                    status_text(m),
                    p.src
                ),
            });
        }
    }
    for (ack_index, (p, ack)) in msgs.iter().enumerate() {
        let Some(request) = ack.as_request() else {
            continue;
        };
        if request.method != Method::Ack {
            continue;
        }
        // Only the UAC's own ACK (one Via) is checked: a proxy forwarding it has consumed its
        // own Route entry, so its copy differs from the UAC's by design.
        if ack.vias().map_or(true, |v| v.len() != 1) {
            continue;
        }
        let Some((seq, _)) = cseq_of(ack) else {
            continue;
        };
        let to_tag = ack
            .to_header()
            .ok()
            .and_then(|t| t.tag().map(str::to_string));
        let candidates: Vec<_> = msgs[..ack_index]
            .iter()
            .filter(|(_, m)| {
                is_2xx_to_invite(m)
                    && cseq_of(m).is_some_and(|(s, _)| s == seq)
                    && m.to_header().ok().and_then(|t| t.tag().map(str::to_string)) == to_tag
            })
            .collect();
        // The 2xx this ACK answers is the one delivered to the ACK's sender; else the latest.
        let Some((ok_packet, ok)) = candidates
            .iter()
            .rev()
            .find(|(q, _)| q.dst.ip() == p.src.ip())
            .or_else(|| candidates.last())
        else {
            continue;
        };
        check_ack_route(p, request, ok_packet, ok, flags);
    }
}

fn check_ack_route(
    p: &SipPacket<'_>,
    ack: &sip_core::message::Request,
    ok_packet: &SipPacket<'_>,
    ok: &Message,
    flags: &mut Vec<Flag>,
) {
    let Some(contact) = ok
        .contacts()
        .ok()
        .and_then(|c| c.into_iter().find_map(|c| c.address().cloned()))
    else {
        flags.push(Flag {
            kind: FlagKind::AckMisrouted,
            packet: ok_packet.index,
            message: format!(
                "{} at packet {} has no Contact: the ACK has no remote target",
                status_text(ok),
                ok_packet.index
            ),
        });
        return;
    };
    // RFC 3261 §12.1.2: the UAC's route set is the 2xx's Record-Route in reverse order.
    let mut route_set: Vec<Uri> = ok
        .record_routes()
        .unwrap_or_default()
        .into_iter()
        .rev()
        .map(|r: NameAddr| r.uri)
        .collect();
    let strict = route_set
        .first()
        .is_some_and(|r| r.as_sip().is_some_and(|s| !s.is_loose_router()));
    // RFC 3261 §12.2.1.1: with a strict first route, it becomes the Request-URI and the
    // remote target goes to the end of the Route list.
    let (expected_uri, expected_routes) = if strict {
        let first = route_set.remove(0);
        route_set.push(contact.uri.clone());
        (first, route_set.clone())
    } else {
        (contact.uri.clone(), route_set.clone())
    };
    let next_hop = if strict {
        expected_uri.clone()
    } else {
        route_set
            .first()
            .cloned()
            .unwrap_or_else(|| contact.uri.clone())
    };
    let mut problems = Vec::new();
    if !same_uri(&ack.uri, &expected_uri) {
        problems.push(format!(
            "Request-URI is {} but the 2xx Contact{} gives {}",
            ack.uri,
            if strict { " and strict route" } else { "" },
            expected_uri
        ));
    }
    let routes: Vec<Uri> = ack
        .routes()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.uri)
        .collect();
    let routes_match = routes.len() == expected_routes.len()
        && routes
            .iter()
            .zip(&expected_routes)
            .all(|(a, b)| same_uri(a, b));
    if !routes_match {
        problems.push(format!(
            "Route is [{}] but the reversed Record-Route is [{}]",
            join(&routes),
            join(&expected_routes)
        ));
    }
    // Over TCP, SCTP and WebSocket the ACK may reuse the connection or association the INVITE
    // opened (RFC 5923, RFC 4168, RFC 7118 §5: a WebSocket client cannot accept
    // connections), so only UDP is checked.
    let destination = match p.transport {
        Transport::Udp => literal_destination(&next_hop),
        Transport::Tcp | Transport::WebSocket | Transport::Sctp => None,
    };
    if let Some((ip, port)) = destination {
        if ip != p.dst.ip() || port != p.dst.port() {
            problems.push(format!(
                "sent to {} but the {} is {}",
                p.dst,
                if next_hop == contact.uri {
                    "Contact"
                } else {
                    "first route"
                },
                SocketAddr::new(ip, port)
            ));
        }
    }
    if !problems.is_empty() {
        flags.push(Flag {
            kind: FlagKind::AckMisrouted,
            packet: p.index,
            message: format!(
                "ACK (CSeq {}) for the {} at packet {}: {}",
                ack.cseq().map(|c| c.to_string()).unwrap_or_default(),
                status_text(ok),
                ok_packet.index,
                problems.join("; ")
            ),
        });
    }
}

fn join(uris: &[Uri]) -> String {
    uris.iter()
        .map(|u| u.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// URIs compared as text with the scheme and host case folded (RFC 3261 §19.1.4 makes them
/// case-insensitive; users and parameters are compared as written).
fn same_uri(a: &Uri, b: &Uri) -> bool {
    match (a, b) {
        (Uri::Sip(x), Uri::Sip(y)) => {
            x.secure == y.secure
                && x.user == y.user
                && x.host.to_string().eq_ignore_ascii_case(&y.host.to_string())
                && x.port == y.port
                && x.params.as_str().eq_ignore_ascii_case(y.params.as_str())
        }
        _ => a.to_string() == b.to_string(),
    }
}

/// Where a request to `uri` goes when its host is an address literal (RFC 3263 needs DNS
/// otherwise, which a capture cannot replay): the host and the port or the default.
fn literal_destination(uri: &Uri) -> Option<(IpAddr, u16)> {
    let sip = uri.as_sip()?;
    if let Some(maddr) = sip.params.value("maddr") {
        let ip = maddr.trim_matches(|c| c == '[' || c == ']').parse().ok()?;
        return Some((ip, sip.port_or_default()));
    }
    Some((sip.host.ip()?, sip.port_or_default()))
}

fn status_text(m: &Message) -> String {
    match m {
        Message::Response(r) => format!("{} {}", r.status, r.reason),
        Message::Request(r) => r.method.as_str().to_string(),
    }
}

/// Whether an address is one a NAT hides: RFC 1918, RFC 6598 shared address space,
/// loopback, link-local, and IPv6 unique-local (RFC 4193) and link-local.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || (o[0] == 100 && (o[1] & 0xC0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback() || (s[0] & 0xFE00) == 0xFC00 || (s[0] & 0xFFC0) == 0xFE80
        }
    }
}

fn is_public(ip: IpAddr) -> bool {
    !is_private(ip) && !ip.is_unspecified() && !ip.is_multicast()
}

fn check_nat(msgs: &[(&SipPacket<'_>, &Message)], flags: &mut Vec<Flag>) {
    let mut seen = HashSet::new();
    for (p, m) in msgs {
        if !is_public(p.src.ip()) {
            continue;
        }
        let mut found: Vec<(&'static str, IpAddr)> = Vec::new();
        // A response to REGISTER lists the bindings the registrar holds, not the sender's.
        let registered = m.as_response().is_some()
            && cseq_of(m).is_some_and(|(_, method)| method == Method::Register);
        if let Ok(contacts) = m.contacts() {
            for c in contacts {
                if let Some(ip) = c
                    .address()
                    .and_then(|a| a.uri.as_sip())
                    .and_then(|s| s.host.ip())
                {
                    found.push(("Contact", ip));
                }
            }
        }
        if m.as_request().is_some() {
            if let Some(ip) = m.top_via().ok().and_then(|v| v.host.ip()) {
                found.push(("Via sent-by", ip));
            }
        }
        for ip in sdp_connection_addresses(m.body()) {
            found.push(("SDP c=", ip));
        }
        for (what, ip) in found {
            if is_private(ip) && seen.insert((what, ip)) {
                flags.push(Flag {
                    kind: FlagKind::Nat,
                    packet: p.index,
                    message: format!(
                        "{what} {ip} in {} from public address {}: {}",
                        status_text(m),
                        p.src,
                        if registered {
                            "the registrar holds a private binding"
                        } else {
                            "the sender is behind a NAT"
                        }
                    ),
                });
            }
        }
    }
}

/// The literal addresses of an SDP body's `c=` lines (RFC 4566 §5.7), session and media level.
///
/// Read line by line rather than through the media crate's SDP model: a NAT trace matters most
/// in the broken bodies a full parser refuses.
pub fn sdp_connection_addresses(body: &[u8]) -> Vec<IpAddr> {
    let Ok(text) = std::str::from_utf8(body) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.trim_end().strip_prefix("c="))
        .filter_map(|c| c.split_whitespace().nth(2))
        .filter_map(|a| a.split('/').next().and_then(|a| a.parse().ok()))
        .collect()
}

fn outcome(msgs: &[(&SipPacket<'_>, &Message)]) -> String {
    let finals = |method: &Method, seq: u32| {
        msgs.iter().find_map(|(_, m)| {
            let r = m.as_response()?;
            let (s, mm) = cseq_of(m)?;
            (r.status >= 200 && s == seq && &mm == method).then_some(r)
        })
    };
    let invites: Vec<_> = msgs
        .iter()
        .filter(|(_, m)| m.as_request().is_some_and(|r| r.method == Method::Invite))
        .collect();
    let Some((_, first_invite)) = invites.first() else {
        return non_invite_outcome(msgs, &finals);
    };
    let caller_tag = first_invite
        .from_header()
        .ok()
        .and_then(|f| f.tag().map(str::to_string));
    let answered = invites.iter().any(|(_, m)| {
        cseq_of(m)
            .is_some_and(|(seq, _)| finals(&Method::Invite, seq).is_some_and(|r| r.is_success()))
    });
    if answered {
        let bye = msgs
            .iter()
            .find(|(_, m)| m.as_request().is_some_and(|r| r.method == Method::Bye));
        return match bye {
            Some((p, m)) => {
                let tag = m
                    .from_header()
                    .ok()
                    .and_then(|f| f.tag().map(str::to_string));
                let who = if tag.is_some() && tag == caller_tag {
                    "caller"
                } else {
                    "callee"
                };
                format!("answered, ended by BYE from {who} {}", p.src)
            }
            None => "answered, no BYE in the capture".to_string(),
        };
    }
    let cancelled = msgs
        .iter()
        .any(|(_, m)| m.as_request().is_some_and(|r| r.method == Method::Cancel));
    let (_, last) = invites
        .last()
        .expect("invites is not empty: it has a first element");
    let last_final = cseq_of(last).and_then(|(seq, _)| finals(&Method::Invite, seq));
    match last_final {
        Some(r) if cancelled && r.status == 487 => format!("cancelled ({} {})", r.status, r.reason),
        Some(r) => format!("{} {}", r.status, r.reason),
        None if cancelled => "cancelled (no final response in the capture)".to_string(),
        None => "no final response to the INVITE in the capture".to_string(),
    }
}

fn non_invite_outcome<'m>(
    msgs: &[(&SipPacket<'_>, &'m Message)],
    finals: &dyn Fn(&Method, u32) -> Option<&'m sip_core::message::Response>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut done = HashSet::new();
    for (_, m) in msgs {
        let Some(r) = m.as_request() else { continue };
        let Some((seq, method)) = cseq_of(m) else {
            continue;
        };
        if !done.insert((seq, method.as_str().to_string())) {
            continue;
        }
        parts.push(match finals(&r.method, seq) {
            Some(f) => format!("{} {} {}", method, f.status, f.reason),
            None => format!("{method} without final response"),
        });
    }
    if parts.is_empty() {
        // Only responses were captured.
        return match msgs.iter().rev().find_map(|(_, m)| m.as_response()) {
            Some(r) => format!("{} {} (request not captured)", r.status, r.reason),
            None => String::new(),
        };
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests;
