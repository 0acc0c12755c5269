//! SCTP (RFC 9260) DATA chunks as user messages, the way tshark's SCTP dissector hands them to
//! the protocols above it (SIP registers for SCTP, RFC 4168).
//!
//! - Every DATA chunk of a packet is read (RFC 9260 §3.2: chunks are bundled, each padded to 4
//!   bytes); other chunk types (INIT, SACK, HEARTBEAT, ...) carry no user data.
//! - A chunk whose TSN was already seen in that direction of the association is a
//!   retransmission (RFC 9260 §6.3.3) and is not returned again, as tshark's TSN analysis marks
//!   it and dissects nothing above it. An association direction is the source port,
//!   destination port and verification tag, not the IP addresses: a multihomed association
//!   changes addresses (RFC 9260 §6.4).
//! - A user message fragmented over several chunks (B and E flags, RFC 9260 §3.3.1) is
//!   reassembled from consecutive TSNs, in whatever order they arrived, and returned at the frame
//!   of the chunk that completed it.
//! - I-DATA chunks (RFC 8260, message interleaving) are not read.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

/// RFC 9260 §3.2 chunk type of DATA.
const CHUNK_DATA: u8 = 0;
/// DATA chunk flags (RFC 9260 §3.3.1).
const FLAG_BEGIN: u8 = 0x02;
const FLAG_END: u8 = 0x01;
/// Common header (ports, verification tag, checksum).
const COMMON_HEADER: usize = 12;
/// Chunk header (type, flags, length) plus TSN, stream id, stream sequence number and PPID.
const DATA_HEADER: usize = 16;
/// Fragments of one message a reassembly walks before giving up (a guard against a capture
/// full of unmatched fragments, not a protocol limit).
const MAX_FRAGMENTS: u32 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DirectionKey {
    src_port: u16,
    dst_port: u16,
    verification_tag: u32,
}

#[derive(Debug)]
struct Fragment {
    begin: bool,
    end: bool,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Direction {
    seen: HashSet<u32>,
    fragments: HashMap<u32, Fragment>,
}

/// One user message out of an SCTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    pub(crate) data: Vec<u8>,
}

/// What is wrong with an SCTP packet; the chunks before the problem were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) String);

/// The state of every association in a capture.
#[derive(Debug, Default)]
pub(crate) struct SctpAssociations {
    directions: HashMap<DirectionKey, Direction>,
}

impl SctpAssociations {
    /// Reads one SCTP packet (the IP payload); pushes the user messages it completes.
    pub(crate) fn packet(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        bytes: &[u8],
        out: &mut Vec<Message>,
    ) -> Result<(), Malformed> {
        let Some(header) = bytes.get(..COMMON_HEADER) else {
            return Err(Malformed(format!(
                "SCTP common header cut short ({} bytes)",
                bytes.len()
            )));
        };
        let key = DirectionKey {
            src_port: u16::from_be_bytes([header[0], header[1]]),
            dst_port: u16::from_be_bytes([header[2], header[3]]),
            verification_tag: u32::from_be_bytes([header[4], header[5], header[6], header[7]]),
        };
        let src = SocketAddr::new(src, key.src_port);
        let dst = SocketAddr::new(dst, key.dst_port);
        let direction = self.directions.entry(key).or_default();
        let mut rest = &bytes[COMMON_HEADER..];
        while rest.len() >= 4 {
            let length = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
            if length < 4 || length > rest.len() {
                return Err(Malformed(format!(
                    "SCTP chunk length {length} does not fit the {} bytes left",
                    rest.len()
                )));
            }
            if rest[0] == CHUNK_DATA {
                let data = data_chunk(&rest[..length])?;
                if let Some(message) = direction.chunk(data) {
                    out.push(Message {
                        src,
                        dst,
                        data: message,
                    });
                }
            }
            // RFC 9260 §3.2: the length excludes the padding to a multiple of 4 bytes; the last
            // chunk's padding may be missing.
            rest = rest.get(length.next_multiple_of(4)..).unwrap_or_default();
        }
        Ok(())
    }
}

/// A DATA chunk's fields.
#[derive(Debug)]
struct DataChunk<'a> {
    flags: u8,
    tsn: u32,
    user_data: &'a [u8],
}

fn data_chunk(chunk: &[u8]) -> Result<DataChunk<'_>, Malformed> {
    if chunk.len() < DATA_HEADER {
        return Err(Malformed(format!(
            "SCTP DATA chunk of {} bytes is shorter than its header",
            chunk.len()
        )));
    }
    Ok(DataChunk {
        flags: chunk[1],
        tsn: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
        user_data: &chunk[DATA_HEADER..],
    })
}

impl Direction {
    /// A new chunk; the user message it completes, if any.
    fn chunk(&mut self, chunk: DataChunk<'_>) -> Option<Vec<u8>> {
        if !self.seen.insert(chunk.tsn) {
            return None; // retransmission
        }
        let begin = chunk.flags & FLAG_BEGIN != 0;
        let end = chunk.flags & FLAG_END != 0;
        if begin && end {
            return Some(chunk.user_data.to_vec());
        }
        self.fragments.insert(
            chunk.tsn,
            Fragment {
                begin,
                end,
                data: chunk.user_data.to_vec(),
            },
        );
        self.reassemble(chunk.tsn)
    }

    /// The whole message around `tsn` if every fragment from its B to its E chunk is here.
    fn reassemble(&mut self, tsn: u32) -> Option<Vec<u8>> {
        let first = self.walk(tsn, |f| f.begin, u32::wrapping_sub)?;
        let last = self.walk(tsn, |f| f.end, u32::wrapping_add)?;
        let mut message = Vec::new();
        let mut t = first;
        loop {
            let fragment = self.fragments.remove(&t).expect("walk found every TSN");
            message.extend_from_slice(&fragment.data);
            if t == last {
                return Some(message);
            }
            t = t.wrapping_add(1);
        }
    }

    /// From `tsn`, steps by `step` over present fragments until one satisfies `stop`.
    fn walk(
        &self,
        tsn: u32,
        stop: fn(&Fragment) -> bool,
        step: fn(u32, u32) -> u32,
    ) -> Option<u32> {
        let mut t = tsn;
        for _ in 0..MAX_FRAGMENTS {
            let fragment = self.fragments.get(&t)?;
            if stop(fragment) {
                return Some(t);
            }
            t = step(t, 1);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(tsn: u32, flags: u8, user: &[u8]) -> Vec<u8> {
        let mut c = vec![CHUNK_DATA, flags];
        c.extend_from_slice(&((DATA_HEADER + user.len()) as u16).to_be_bytes());
        c.extend_from_slice(&tsn.to_be_bytes());
        c.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 39]);
        c.extend_from_slice(user);
        c.resize(c.len().next_multiple_of(4), 0);
        c
    }

    fn packet(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![0x13, 0xC4, 0x13, 0xC4, 0, 0, 0, 1, 0, 0, 0, 0];
        for c in chunks {
            p.extend_from_slice(c);
        }
        p
    }

    fn read(assoc: &mut SctpAssociations, bytes: &[u8]) -> Result<Vec<Vec<u8>>, Malformed> {
        let mut out = Vec::new();
        let ip = IpAddr::from([10, 0, 0, 1]);
        assoc.packet(ip, ip, bytes, &mut out)?;
        Ok(out.into_iter().map(|m| m.data).collect())
    }

    #[test]
    fn bundled_data_chunks_are_separate_messages_and_padding_is_skipped() {
        let mut a = SctpAssociations::default();
        let p = packet(&[data(1, 3, b"abc"), data(2, 3, b"defgh")]);
        assert_eq!(
            read(&mut a, &p).unwrap(),
            vec![b"abc".to_vec(), b"defgh".to_vec()]
        );
    }

    #[test]
    fn retransmitted_tsn_is_not_returned_twice() {
        let mut a = SctpAssociations::default();
        let p = packet(&[data(7, 3, b"x")]);
        assert_eq!(read(&mut a, &p).unwrap().len(), 1);
        assert!(read(&mut a, &p).unwrap().is_empty());
    }

    #[test]
    fn fragments_out_of_order_are_reassembled_when_the_last_arrives() {
        let mut a = SctpAssociations::default();
        assert!(read(&mut a, &packet(&[data(10, 2, b"ab")]))
            .unwrap()
            .is_empty());
        assert!(read(&mut a, &packet(&[data(12, 1, b"ef")]))
            .unwrap()
            .is_empty());
        let whole = read(&mut a, &packet(&[data(11, 0, b"cd")])).unwrap();
        assert_eq!(whole, vec![b"abcdef".to_vec()]);
    }

    #[test]
    fn fragments_across_the_tsn_wrap_are_reassembled() {
        let mut a = SctpAssociations::default();
        assert!(read(&mut a, &packet(&[data(u32::MAX, 2, b"ab")]))
            .unwrap()
            .is_empty());
        assert_eq!(
            read(&mut a, &packet(&[data(0, 1, b"cd")])).unwrap(),
            vec![b"abcd".to_vec()]
        );
    }

    #[test]
    fn truncated_packets_are_malformed_not_panics() {
        let full = packet(&[data(1, 3, b"hello")]);
        for cut in 0..full.len() {
            let mut a = SctpAssociations::default();
            let _ = read(&mut a, &full[..cut]);
        }
        let mut a = SctpAssociations::default();
        assert!(read(&mut a, &full[..5]).is_err());
        assert!(
            read(&mut a, &full[..20]).is_err(),
            "chunk longer than the packet"
        );
        let mut short = packet(&[]);
        short.extend_from_slice(&[CHUNK_DATA, 3, 0, 8, 0, 0, 0, 1]);
        assert!(
            read(&mut a, &short).is_err(),
            "DATA chunk shorter than its header"
        );
        let mut zero = packet(&[]);
        zero.extend_from_slice(&[CHUNK_DATA, 3, 0, 0]);
        assert!(
            read(&mut a, &zero).is_err(),
            "zero chunk length must not loop"
        );
    }
}
