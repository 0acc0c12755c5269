//! The SIP messages in a capture: UDP datagrams, reassembled TCP streams deframed per
//! direction, WebSocket messages (RFC 7118 §5: one SIP message per WebSocket message) and SCTP
//! user messages (RFC 4168: one SIP message per SCTP user message; on any port and PPID, as
//! tshark's SIP heuristic for SCTP takes them).
//!
//! Which payloads are SIP follows tshark's heuristic, so that counts compare with
//! `tshark -Y sip`: a payload (or the start of a TCP stream's pending data) is SIP when its
//! first line has the shape of a status line (`SIP/2.0 NNN ...`) or of a request line
//! (`token SP ... SP SIP/2.0`, RFC 3261 §7.1). A payload of that shape that then fails to parse
//! is reported, with its packet number and the parser's error; other payloads (RTP, HTTP,
//! STUN, keep-alives) are not SIP and are skipped.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use capture::{Capture, Packet, Transport};
use sip_core::message::{
    parse_datagram, parse_stream, Message, ParseError, ParseLimits, StreamParse,
};

/// One SIP message found in a capture (or a payload that looked like one and was rejected).
#[derive(Debug, Clone)]
pub struct SipPacket<'a> {
    /// Frame number (for TCP, the frame that completed the message).
    pub index: usize,
    /// Capture time of that frame.
    pub time: Duration,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// UDP, TCP, WebSocket or SCTP.
    pub transport: Transport,
    /// The message's bytes (a slice of the payload for UDP and WebSocket).
    pub bytes: Cow<'a, [u8]>,
    /// The parsed message, or why it was rejected.
    pub message: Result<Message, SipError>,
}

/// Why a SIP-looking payload is not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipError {
    /// sip-core rejected it.
    Parse(ParseError),
    /// A TCP stream ended (with the capture) in the middle of a message.
    Incomplete {
        /// Bytes waiting for the rest of the message.
        bytes: usize,
    },
}

impl fmt::Display for SipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SipError::Parse(e) => write!(f, "{e}"),
            SipError::Incomplete { bytes } => write!(
                f,
                "the TCP stream ends inside a message ({bytes} bytes without the rest)"
            ),
        }
    }
}

/// Every SIP message of the capture in frame order.
pub fn messages(capture: &Capture) -> Vec<SipPacket<'_>> {
    let limits = ParseLimits::default();
    let mut out = Vec::new();
    let mut streams: HashMap<(SocketAddr, SocketAddr), TcpDirection> = HashMap::new();
    for p in &capture.packets {
        match p.transport {
            Transport::Udp | Transport::WebSocket | Transport::Sctp => {
                if looks_like_sip(&p.payload) {
                    out.push(SipPacket {
                        index: p.index,
                        time: p.time,
                        src: p.src,
                        dst: p.dst,
                        transport: p.transport,
                        bytes: Cow::Borrowed(&p.payload),
                        message: parse_datagram(&p.payload, &limits).map_err(SipError::Parse),
                    });
                }
            }
            Transport::Tcp => {
                let dir = streams.entry((p.src, p.dst)).or_default();
                dir.push(p, &limits, &mut out);
            }
        }
    }
    // Data left behind in a stream: the capture ended inside a message.
    let mut leftovers: Vec<_> = streams
        .into_iter()
        .filter(|(_, d)| !d.buffer.is_empty())
        .collect();
    leftovers.sort_by_key(|(_, d)| d.last_index);
    for ((src, dst), d) in leftovers {
        out.push(SipPacket {
            index: d.last_index,
            time: d.last_time,
            src,
            dst,
            transport: Transport::Tcp,
            message: Err(SipError::Incomplete {
                bytes: d.buffer.len(),
            }),
            bytes: Cow::Owned(d.buffer),
        });
    }
    out.sort_by_key(|m| m.index);
    out
}

/// One direction of a TCP connection: data waiting to be deframed.
#[derive(Debug, Default)]
struct TcpDirection {
    buffer: Vec<u8>,
    /// The pending data starts with a SIP start line (checked once the line is complete).
    confirmed: bool,
    last_index: usize,
    last_time: Duration,
}

impl TcpDirection {
    fn push<'a>(&mut self, p: &Packet, limits: &ParseLimits, out: &mut Vec<SipPacket<'a>>) {
        if self.buffer.is_empty()
            && !is_line_ends(&p.payload)
            && !p.payload.first().is_some_and(|&c| is_token_char(c))
        {
            // Not SIP (TLS, binary, or a stream picked up in the middle of a message): wait
            // for a chunk that can start a message.
            return;
        }
        self.buffer.extend_from_slice(&p.payload);
        self.last_index = p.index;
        self.last_time = p.time;
        if !self.confirmed {
            let lead = self
                .buffer
                .iter()
                .take_while(|&&c| c == b'\r' || c == b'\n')
                .count();
            let start = &self.buffer[lead..];
            if start.contains(&b'\n') {
                if !looks_like_sip(start) {
                    // An HTTP upgrade or another protocol on this connection.
                    self.buffer.clear();
                    return;
                }
                self.confirmed = true;
            } else if start.len() > limits.max_message_bytes {
                self.buffer.clear();
                return;
            } else if !start.is_empty() {
                return; // the first line is not complete yet
            }
        }
        let mut used = 0;
        while used < self.buffer.len() {
            let rest = &self.buffer[used..];
            match parse_stream(rest, limits) {
                Ok(StreamParse::KeepAlive(n)) => used += n,
                Ok(StreamParse::Incomplete) => break,
                Ok(StreamParse::Message(m, n)) => {
                    out.push(SipPacket {
                        index: p.index,
                        time: p.time,
                        src: p.src,
                        dst: p.dst,
                        transport: Transport::Tcp,
                        bytes: Cow::Owned(rest[..n].to_vec()),
                        message: Ok(*m),
                    });
                    used += n;
                }
                Err(e) => {
                    // The framing is lost: report what is buffered and resynchronise at the
                    // next chunk that starts a message.
                    out.push(SipPacket {
                        index: p.index,
                        time: p.time,
                        src: p.src,
                        dst: p.dst,
                        transport: Transport::Tcp,
                        bytes: Cow::Owned(rest.to_vec()),
                        message: Err(SipError::Parse(e)),
                    });
                    used = self.buffer.len();
                    self.confirmed = false;
                }
            }
        }
        self.buffer.drain(..used);
    }
}

fn is_line_ends(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|&c| c == b'\r' || c == b'\n')
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// Whether the first line of `payload` has the shape of a SIP status line or request line
/// (see the module docs).
pub fn looks_like_sip(payload: &[u8]) -> bool {
    const VERSION: &[u8] = b"SIP/2.0";
    if payload.len() < 12 {
        return false;
    }
    if payload[..8].eq_ignore_ascii_case(b"SIP/2.0 ") {
        return payload[8..11].iter().all(u8::is_ascii_digit);
    }
    // A request starts with a method token; this rejects RTP, STUN and binary data at once.
    let method_len = payload.iter().take_while(|&&c| is_token_char(c)).count();
    if method_len == 0 || payload.get(method_len) != Some(&b' ') {
        return false;
    }
    let end = memchr_newline(payload);
    let mut line = &payload[..end];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    line.len() > method_len + VERSION.len() + 2
        && line[line.len() - VERSION.len()..].eq_ignore_ascii_case(VERSION)
        && line[line.len() - VERSION.len() - 1] == b' '
}

fn memchr_newline(b: &[u8]) -> usize {
    b.iter().position(|&c| c == b'\n').unwrap_or(b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_shapes_are_recognised_and_others_are_not() {
        assert!(looks_like_sip(
            b"INVITE sip:bob@example.com SIP/2.0\r\nVia: x\r\n"
        ));
        assert!(looks_like_sip(b"SIP/2.0 200 OK\r\n"));
        assert!(looks_like_sip(b"aaaaaaaa sip:tori@localhost SIP/2.0\r\n"));
        assert!(!looks_like_sip(b" sip:tori@localhost SIP/2.0\r\n"));
        assert!(!looks_like_sip(b"\xff\xfe sip:tori@localhost SIP/2.0\r\n"));
        assert!(!looks_like_sip(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!looks_like_sip(&[
            0x80, 0x00, 0x12, 0x34, 0, 0, 0, 0, 1, 2, 3, 4, 5
        ]));
        assert!(!looks_like_sip(b"\r\n\r\n"));
    }

    fn tcp(index: usize, payload: &[u8]) -> Packet {
        Packet {
            index,
            time: Duration::from_millis(index as u64),
            src: "192.0.2.1:5060".parse().expect("literal address"),
            dst: "192.0.2.2:5060".parse().expect("literal address"),
            transport: Transport::Tcp,
            payload: payload.to_vec(),
        }
    }

    #[test]
    fn tcp_messages_split_across_chunks_and_sharing_one_are_deframed() {
        let m = b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TCP a;branch=z9hG4bK1\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c1\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let mut both = m.to_vec();
        both.extend_from_slice(b"\r\n\r\n");
        both.extend_from_slice(m);
        let capture = Capture {
            packets: vec![
                tcp(1, &m[..20]),
                tcp(2, &m[20..]),
                tcp(3, &both),
                tcp(4, &m[..30]),
            ],
            warnings: vec![],
        };
        let found = messages(&capture);
        let indexes: Vec<_> = found.iter().map(|f| f.index).collect();
        assert_eq!(indexes, vec![2, 3, 3, 4]);
        assert!(found[..3].iter().all(|f| f.message.is_ok()));
        assert_eq!(found[3].message, Err(SipError::Incomplete { bytes: 30 }));
    }

    #[test]
    fn tcp_stream_that_is_not_sip_is_skipped() {
        let capture = Capture {
            packets: vec![tcp(1, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")],
            warnings: vec![],
        };
        assert!(messages(&capture).is_empty());
    }
}
