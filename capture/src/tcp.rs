//! TCP stream reassembly per direction, and the HTTP Upgrade to WebSocket on top of it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use crate::websocket::WsDecoder;
use crate::{Packet, Transport, Warning, WarningKind};

/// Out-of-order data held behind a hole beyond this is given up on: the hole is skipped with a
/// warning (a capture that lost a segment must not hold the rest of the stream forever).
const MAX_PENDING: usize = 4 * 1024 * 1024;

/// An HTTP header block longer than this is not a WebSocket handshake.
const MAX_HTTP_HEAD: usize = 64 * 1024;

/// One TCP segment as decoded from a frame.
#[derive(Debug)]
pub(crate) struct Segment<'a> {
    pub index: usize,
    pub time: Duration,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub syn: bool,
    pub fin: bool,
    pub payload: &'a [u8],
}

#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    index: usize,
    time: Duration,
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
struct Direction {
    /// Sequence number of stream offset 0 (ISN + 1, or the first seen sequence number when the
    /// capture starts mid-stream).
    base: Option<u32>,
    /// Stream offset of the next byte to deliver.
    next: u64,
    /// Segments beyond a hole, by stream offset.
    pending: BTreeMap<u64, Pending>,
    pending_bytes: usize,
    /// FIN seen: a later SYN starts a new connection on the same ports.
    closed: bool,
}

impl Direction {
    /// Stream offset of `seq`, as a signed distance from `next` (RFC 793 §3.3 sequence
    /// arithmetic modulo 2^32, so wrap-around is handled).
    fn offset_of(&self, base: u32, seq: u32) -> i64 {
        let expected = base.wrapping_add(self.next as u32);
        self.next as i64 + i64::from(seq.wrapping_sub(expected) as i32)
    }
}

/// What the application layer of one direction is.
#[derive(Debug)]
enum App {
    /// Plain TCP; `head` collects an HTTP header block that has not ended yet.
    Plain { head: Vec<u8> },
    /// After the handshake: WebSocket frames.
    WebSocket(WsDecoder),
    /// WebSocket framing broke; the rest is returned as TCP.
    Broken,
}

#[derive(Debug)]
struct Connection {
    /// The two endpoints; direction `i` carries data sent by `ends[i]`.
    ends: [SocketAddr; 2],
    dirs: [Direction; 2],
    apps: [App; 2],
    upgrade_requested: bool,
    /// Creation order, for deterministic flushing.
    order: usize,
}

/// All TCP connections of a capture.
#[derive(Debug, Default)]
pub(crate) struct TcpStreams {
    connections: HashMap<(SocketAddr, SocketAddr), Connection>,
}

/// Where delivered data goes.
struct Out<'a> {
    packets: &'a mut Vec<Packet>,
    warnings: &'a mut Vec<Warning>,
}

impl TcpStreams {
    /// Adds one segment; emits whatever in-order data it completes.
    pub(crate) fn segment(
        &mut self,
        seg: Segment<'_>,
        packets: &mut Vec<Packet>,
        warnings: &mut Vec<Warning>,
    ) {
        let key = if seg.src <= seg.dst {
            (seg.src, seg.dst)
        } else {
            (seg.dst, seg.src)
        };
        let order = self.connections.len();
        let conn = self.connections.entry(key).or_insert_with(|| Connection {
            ends: [seg.src, seg.dst],
            dirs: [Direction::default(), Direction::default()],
            apps: [
                App::Plain { head: Vec::new() },
                App::Plain { head: Vec::new() },
            ],
            upgrade_requested: false,
            order,
        });
        let d = usize::from(conn.ends[0] != seg.src);
        let mut out = Out { packets, warnings };

        if seg.syn {
            let dir = &mut conn.dirs[d];
            let isn_data = seg.seq.wrapping_add(1);
            if dir.base.is_some_and(|b| b != isn_data) && (dir.closed || dir.next == 0) {
                // A new connection reusing the ports (or a SYN after data we never anchored):
                // flush what the old one left behind and start again.
                conn.flush(d, &mut out);
                conn.dirs[d] = Direction::default();
                conn.apps[d] = App::Plain { head: Vec::new() };
                if d == 0 {
                    conn.upgrade_requested = false;
                }
            }
            if conn.dirs[d].base.is_none() {
                conn.dirs[d].base = Some(isn_data);
            }
        }
        if seg.payload.is_empty() {
            if seg.fin {
                conn.dirs[d].closed = true;
            }
            return;
        }
        // Data carried by a SYN (RFC 7413 fast open) starts after the SYN's sequence number.
        let data_seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let dir = &mut conn.dirs[d];
        let base = *dir.base.get_or_insert(data_seq);
        let start = dir.offset_of(base, data_seq);
        let end = start + seg.payload.len() as i64;
        let next = dir.next as i64;
        if seg.fin {
            dir.closed = true;
        }
        if end <= next {
            return; // retransmission of delivered data
        }
        if start > next {
            // Out of order: hold it until the hole is filled (keep the longer copy).
            let start = start as u64;
            let keep = dir
                .pending
                .get(&start)
                .is_none_or(|p| p.data.len() < seg.payload.len());
            if keep {
                if let Some(old) = dir.pending.insert(
                    start,
                    Pending {
                        data: seg.payload.to_vec(),
                        index: seg.index,
                        time: seg.time,
                    },
                ) {
                    dir.pending_bytes -= old.data.len();
                }
                dir.pending_bytes += seg.payload.len();
            }
            if dir.pending_bytes > MAX_PENDING {
                conn.skip_hole(d, seg.index, seg.time, &mut out);
            }
            return;
        }
        // In order, possibly overlapping delivered data: deliver the new part.
        let skip = (next - start) as usize;
        let mut chunk = seg.payload[skip..].to_vec();
        dir.next += chunk.len() as u64;
        dir.drain_pending_into(&mut chunk);
        conn.deliver(d, chunk, seg.index, seg.time, &mut out);
    }

    /// End of capture: data still behind holes is delivered with a warning.
    pub(crate) fn finish(
        &mut self,
        _last_index: usize,
        packets: &mut Vec<Packet>,
        warnings: &mut Vec<Warning>,
    ) {
        let mut conns: Vec<&mut Connection> = self.connections.values_mut().collect();
        conns.sort_by_key(|c| c.order);
        let mut out = Out { packets, warnings };
        for conn in conns {
            for d in 0..2 {
                conn.flush(d, &mut out);
            }
        }
    }
}

impl Direction {
    /// Appends pending segments that are now contiguous with `next`.
    fn drain_pending_into(&mut self, chunk: &mut Vec<u8>) {
        while let Some(entry) = self.pending.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let p = entry.remove();
            self.pending_bytes -= p.data.len();
            let end = start + p.data.len() as u64;
            if end > self.next {
                let from = (self.next - start) as usize;
                chunk.extend_from_slice(&p.data[from..]);
                self.next = end;
            }
        }
    }
}

impl Connection {
    /// Skips the hole before the first pending segment of direction `d` and delivers what follows.
    fn skip_hole(&mut self, d: usize, index: usize, time: Duration, out: &mut Out<'_>) {
        let dir = &mut self.dirs[d];
        let Some((&start, _)) = dir.pending.first_key_value() else {
            return;
        };
        let missing = start - dir.next;
        out.warnings.push(Warning {
            packet: index,
            kind: WarningKind::TcpGap,
            message: format!(
                "TCP stream {} -> {}: {missing} bytes never captured; skipped",
                self.ends[d],
                self.ends[1 - d]
            ),
        });
        dir.next = start;
        let mut chunk = Vec::new();
        dir.drain_pending_into(&mut chunk);
        self.deliver(d, chunk, index, time, out);
    }

    /// Delivers everything still pending in direction `d`, skipping holes.
    fn flush(&mut self, d: usize, out: &mut Out<'_>) {
        while let Some((_, p)) = self.dirs[d].pending.first_key_value() {
            let (index, time) = (p.index, p.time);
            self.skip_hole(d, index, time, out);
        }
    }

    /// Hands an in-order chunk of direction `d` to the application layer.
    fn deliver(
        &mut self,
        d: usize,
        chunk: Vec<u8>,
        index: usize,
        time: Duration,
        out: &mut Out<'_>,
    ) {
        if chunk.is_empty() {
            return;
        }
        let src = self.ends[d];
        let dst = self.ends[1 - d];
        let packet = |transport, payload| Packet {
            index,
            time,
            src,
            dst,
            transport,
            payload,
        };
        let mut rest: &[u8] = &chunk;
        if let App::Plain { head } = &mut self.apps[d] {
            if !head.is_empty() || rest.starts_with(b"GET ") || rest.starts_with(b"HTTP/1.") {
                let before = head.len();
                head.extend_from_slice(rest);
                match find(head, b"\r\n\r\n") {
                    Some(p) => {
                        let header_end = p + 4;
                        let header = std::mem::take(head);
                        let in_chunk = header_end - before;
                        out.packets
                            .push(packet(Transport::Tcp, rest[..in_chunk].to_vec()));
                        rest = &rest[in_chunk..];
                        let header = &header[..header_end];
                        if is_upgrade_request(header) {
                            // RFC 6455 §4.1: the client sends frames after the handshake.
                            self.upgrade_requested = true;
                            self.apps[d] = App::WebSocket(WsDecoder::default());
                        } else if self.upgrade_requested && is_switching_protocols(header) {
                            // RFC 6455 §4.2.2: the server's 101 completes the handshake.
                            self.apps[d] = App::WebSocket(WsDecoder::default());
                            if let App::Plain { head } = &self.apps[1 - d] {
                                if head.is_empty() {
                                    self.apps[1 - d] = App::WebSocket(WsDecoder::default());
                                }
                            }
                        }
                        if rest.is_empty() {
                            return;
                        }
                    }
                    None => {
                        if head.len() > MAX_HTTP_HEAD {
                            head.clear();
                        }
                        out.packets.push(packet(Transport::Tcp, rest.to_vec()));
                        return;
                    }
                }
            }
        }
        match &mut self.apps[d] {
            App::WebSocket(ws) => match ws.push(rest) {
                Ok(decoded) => {
                    for m in decoded.messages {
                        out.packets.push(packet(Transport::WebSocket, m));
                    }
                    if decoded.skipped_compressed > 0 {
                        out.warnings.push(Warning {
                            packet: index,
                            kind: WarningKind::WebSocket,
                            message: format!(
                                "{} compressed (permessage-deflate) WebSocket message(s) skipped",
                                decoded.skipped_compressed
                            ),
                        });
                    }
                }
                Err(e) => {
                    out.warnings.push(Warning {
                        packet: index,
                        kind: WarningKind::WebSocket,
                        message: format!(
                            "WebSocket {src} -> {dst}: {e}; the rest of this direction is \
                             returned as TCP"
                        ),
                    });
                    self.apps[d] = App::Broken;
                    out.packets.push(packet(Transport::Tcp, rest.to_vec()));
                }
            },
            App::Plain { .. } | App::Broken => {
                out.packets.push(packet(Transport::Tcp, rest.to_vec()));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Header lines of an HTTP head, lower-cased names.
fn header_lines(head: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    head.split(|&b| b == b'\n').skip(1).filter_map(|line| {
        let line = String::from_utf8_lossy(line);
        let (name, value) = line.split_once(':')?;
        Some((
            name.trim().to_ascii_lowercase(),
            value.trim().to_ascii_lowercase(),
        ))
    })
}

/// RFC 6455 §4.1: `GET` with `Upgrade: websocket` (the token is case-insensitive).
fn is_upgrade_request(head: &[u8]) -> bool {
    head.starts_with(b"GET ")
        && header_lines(head)
            .any(|(n, v)| n == "upgrade" && v.split(',').any(|t| t.trim() == "websocket"))
}

/// RFC 6455 §4.2.2: status 101.
fn is_switching_protocols(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.") && head.get(9..12) == Some(b"101")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    struct Harness {
        streams: TcpStreams,
        packets: Vec<Packet>,
        warnings: Vec<Warning>,
        index: usize,
    }

    impl Harness {
        fn new() -> Self {
            Harness {
                streams: TcpStreams::default(),
                packets: Vec::new(),
                warnings: Vec::new(),
                index: 0,
            }
        }
        fn send(&mut self, from: &str, to: &str, seq: u32, syn: bool, fin: bool, data: &[u8]) {
            self.index += 1;
            self.streams.segment(
                Segment {
                    index: self.index,
                    time: Duration::from_secs(self.index as u64),
                    src: addr(from),
                    dst: addr(to),
                    seq,
                    syn,
                    fin,
                    payload: data,
                },
                &mut self.packets,
                &mut self.warnings,
            );
        }
        fn stream(&self, from: &str) -> Vec<u8> {
            self.packets
                .iter()
                .filter(|p| p.src == addr(from))
                .flat_map(|p| p.payload.clone())
                .collect()
        }
    }

    const A: &str = "10.0.0.1:5060";
    const B: &str = "10.0.0.2:40000";

    #[test]
    fn out_of_order_segment_is_delivered_when_hole_fills_with_index_of_filler() {
        let mut h = Harness::new();
        h.send(A, B, 1000, true, false, b"");
        h.send(A, B, 1006, false, false, b"world");
        assert!(h.packets.is_empty());
        h.send(A, B, 1001, false, false, b"hello");
        assert_eq!(h.packets.len(), 1);
        assert_eq!(h.packets[0].payload, b"helloworld");
        assert_eq!(h.packets[0].index, 3);
    }

    #[test]
    fn retransmission_and_overlap_deliver_each_byte_once() {
        let mut h = Harness::new();
        h.send(A, B, 1000, true, false, b"");
        h.send(A, B, 1001, false, false, b"abcd");
        h.send(A, B, 1001, false, false, b"abcd");
        h.send(A, B, 1003, false, false, b"cdefg");
        assert_eq!(h.stream(A), b"abcdefg");
    }

    #[test]
    fn sequence_wrap_around_keeps_stream_contiguous() {
        let mut h = Harness::new();
        h.send(A, B, u32::MAX - 2, true, false, b"");
        h.send(A, B, u32::MAX - 1, false, false, b"ab");
        h.send(A, B, 0, false, false, b"cd");
        assert_eq!(h.stream(A), b"abcd");
    }

    #[test]
    fn capture_starting_mid_stream_anchors_on_first_segment() {
        let mut h = Harness::new();
        h.send(A, B, 555, false, false, b"xy");
        h.send(A, B, 557, false, false, b"z");
        assert_eq!(h.stream(A), b"xyz");
    }

    #[test]
    fn hole_never_filled_is_flushed_at_end_with_warning() {
        let mut h = Harness::new();
        h.send(A, B, 1000, true, false, b"");
        h.send(A, B, 1001, false, false, b"ab");
        h.send(A, B, 1010, false, false, b"late");
        h.streams.finish(3, &mut h.packets, &mut h.warnings);
        assert_eq!(h.stream(A), b"ablate");
        assert_eq!(h.warnings.len(), 1);
        assert_eq!(h.warnings[0].kind, WarningKind::TcpGap);
        assert_eq!(h.warnings[0].packet, 3);
    }

    #[test]
    fn websocket_upgrade_splits_handshake_from_frames_in_same_chunk() {
        let mut h = Harness::new();
        let req =
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n";
        h.send(B, A, 1, false, false, req);
        let mut resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        resp.extend_from_slice(&[0x81, 3, b'S', b'I', b'P']);
        h.send(A, B, 1, false, false, &resp);
        let kinds: Vec<_> = h.packets.iter().map(|p| p.transport).collect();
        assert_eq!(
            kinds,
            [Transport::Tcp, Transport::Tcp, Transport::WebSocket]
        );
        assert_eq!(h.packets[2].payload, b"SIP");
        // Client frames are masked.
        h.send(
            B,
            A,
            1 + req.len() as u32,
            false,
            false,
            &[0x81, 0x82, 1, 1, 1, 1, b'O' ^ 1, b'K' ^ 1],
        );
        assert_eq!(h.packets.last().unwrap().payload, b"OK");
        assert_eq!(h.packets.last().unwrap().transport, Transport::WebSocket);
    }
}
