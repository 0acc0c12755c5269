//! Framing SIP messages out of a byte stream (TCP), RFC 3261 §18.3.
//!
//! On a stream the Content-Length header is mandatory and delimits the body; a peer that
//! sends more than [`ParseLimits::max_message_bytes`] without completing a message is cut
//! off with an error instead of growing the buffer without bound.

use crate::message::{parse_stream, Message, ParseError, ParseLimits, StreamParse};

/// What [`StreamDeframer::next_message`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete message.
    Message(Box<Message>),
    /// A keep-alive: a double CRLF ping wants a single CRLF pong (RFC 5626 §4.4.1).
    Ping,
    /// A single CRLF (a pong, or padding): nothing to do.
    Pong,
}

/// What [`StreamDeframer::next_bytes`] found: a message as the bytes it arrived as, for a
/// runtime that hands each message to [`crate::endpoint::Endpoint::handle_datagram`] and to
/// its ladder exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawFrame {
    /// The bytes of one complete message (start line, headers and Content-Length body).
    Message(Vec<u8>),
    /// A keep-alive: a double CRLF ping wants a single CRLF pong (RFC 5626 §4.4.1).
    Ping,
    /// A single CRLF (a pong, or padding): nothing to do.
    Pong,
}

/// Accumulates stream bytes and yields whole messages.
#[derive(Debug, Default)]
pub struct StreamDeframer {
    buf: Vec<u8>,
    limits: ParseLimits,
}

impl StreamDeframer {
    /// A deframer with the given limits.
    pub fn new(limits: ParseLimits) -> Self {
        StreamDeframer {
            buf: Vec::new(),
            limits,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next frame, `Ok(None)` when more bytes are needed. After an error the
    /// connection must be closed: the stream can no longer be framed.
    pub fn next_message(&mut self) -> Result<Option<Frame>, ParseError> {
        match parse_stream(&self.buf, &self.limits)? {
            StreamParse::Incomplete => Ok(None),
            StreamParse::KeepAlive(n) => Ok(self.keep_alive(n).map(|ping| match ping {
                true => Frame::Ping,
                false => Frame::Pong,
            })),
            StreamParse::Message(m, used) => {
                self.buf.drain(..used);
                Ok(Some(Frame::Message(m)))
            }
        }
    }

    /// As [`StreamDeframer::next_message`], with the message's own bytes.
    pub fn next_bytes(&mut self) -> Result<Option<RawFrame>, ParseError> {
        match parse_stream(&self.buf, &self.limits)? {
            StreamParse::Incomplete => Ok(None),
            StreamParse::KeepAlive(n) => Ok(self.keep_alive(n).map(|ping| match ping {
                true => RawFrame::Ping,
                false => RawFrame::Pong,
            })),
            StreamParse::Message(_, used) => {
                Ok(Some(RawFrame::Message(self.buf.drain(..used).collect())))
            }
        }
    }

    /// Consumes `n` leading line ends: `Some(true)` for a ping, `Some(false)` for a pong,
    /// `None` while a lone CRLF may still become a ping.
    fn keep_alive(&mut self, n: usize) -> Option<bool> {
        // Wait for the second CRLF of a possible ping before deciding.
        if n == self.buf.len() && n < 4 {
            if self.buf == b"\r\n" || self.buf == b"\n" {
                self.buf.clear();
                return Some(false);
            }
            return None;
        }
        let ping = self.buf[..n].windows(4).any(|w| w == b"\r\n\r\n");
        self.buf.drain(..n);
        Some(ping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn messages_split_across_reads_and_back_to_back_are_framed() {
        let mut d = StreamDeframer::default();
        let mut stream = OPTIONS.to_vec();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(OPTIONS);
        let mut got = vec![];
        for chunk in stream.chunks(7) {
            d.push(chunk);
            while let Some(f) = d.next_message().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[0], Frame::Message(m) if m.to_bytes().ends_with(b"body")));
        assert_eq!(got[1], Frame::Ping);
        assert!(matches!(got[2], Frame::Message(_)));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn raw_frames_are_the_bytes_received() {
        let mut d = StreamDeframer::default();
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(OPTIONS);
        let mut got = vec![];
        for chunk in stream.chunks(5) {
            d.push(chunk);
            while let Some(f) = d.next_bytes().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                RawFrame::Ping,
                RawFrame::Message(OPTIONS.to_vec()),
                RawFrame::Message(OPTIONS.to_vec())
            ]
        );
    }

    #[test]
    fn missing_content_length_on_a_stream_is_an_error() {
        let mut d = StreamDeframer::default();
        d.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n");
        assert!(d.next_message().is_err());
    }

    #[test]
    fn oversized_stream_message_is_refused() {
        let mut d = StreamDeframer::new(ParseLimits {
            max_message_bytes: 256,
            ..ParseLimits::default()
        });
        d.push(b"OPTIONS sip:a@b SIP/2.0\r\nX: ");
        d.push(&[b'a'; 400]);
        assert!(d.next_message().is_err());
    }
}
