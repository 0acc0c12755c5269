//! Reads packet captures (pcap, pcapng, Microsoft NetMon 2.x) into transport-level payloads.
//!
//! # What it does
//! [`read_file`] / [`read_bytes`] take a whole capture and return a [`Capture`]: every UDP
//! datagram, every in-order chunk of reassembled TCP data, every WebSocket message and every
//! SCTP user message, each as a
//! [`Packet`] with the frame number tshark gives it, the capture time, the 5-tuple and the payload.
//! The layers below are decoded rather than skipped by a fixed offset:
//! - containers: pcap (both byte orders, microsecond and nanosecond magic), pcapng (SHB, IDB,
//!   EPB, SPB, obsolete PB; link type and `if_tsresol`/`if_tsoffset` per interface, several
//!   sections) and NetMon 2.x;
//! - link layers: Ethernet with 802.1Q / 802.1ad / QinQ tags, Linux cooked SLL and SLL2, raw IP
//!   (link types 101, 12, 14, 228, 229), BSD loopback/null (link types 0 and 108, every `AF_INET6`
//!   value the BSDs and Linux use); PPPoE session frames (Ethernet type 0x8864, RFC 2516)
//!   carrying IPv4 or IPv6 (PPP protocols 0x0021 and 0x0057, compressed or not);
//! - network: IPv4 and IPv6 with extension headers, IP-in-IP (IPv4 or IPv6 inside IPv4 or IPv6,
//!   and GRE), IPv4 and IPv6 fragment reassembly (a SIP INVITE over UDP often fragments);
//! - transport: UDP datagrams; TCP streams reassembled per direction by sequence number
//!   (retransmissions, overlaps, out-of-order segments, SYN/FIN); WebSocket (RFC 6455) after an
//!   HTTP Upgrade handshake, unmasked and defragmented into messages; SCTP DATA chunks
//!   (bundled, fragmented, retransmitted) as tshark hands them to SIP (see `sctp.rs`).
//!
//! The [`rtp`] module finds RTP streams in a [`Capture`] the way
//! `tshark -z rtp,streams -o rtp.heuristic_rtp:TRUE` does (packets, loss, sequence errors,
//! delta, jitter) and decodes RFC 4733 telephone events.
//!
//! # Drive loop
//! There is none: the crate is a pure function over bytes. [`read_bytes`] walks the frames in
//! file order once; each frame goes down the layers (link → IP → UDP/TCP); TCP data
//! goes through a per-connection reassembler which may emit zero or more chunks; at the end of
//! the input, data still waiting behind a hole in a TCP stream is flushed with a warning. The
//! result is sorted by frame number (stable, so chunks of one frame keep their order).
//!
//! # What it deliberately does not do
//! - It knows nothing about SIP, SDP or RTP framing of TCP (RFC 4571): other crates parse what it
//!   returns. The [`rtp`] module reads UDP payloads only.
//! - No live capture, no file writing, no checksum verification (captures taken on the sending
//!   host carry offloaded, wrong checksums; Wireshark does not check them by default either).
//! - No TLS/DTLS decryption; TCP payloads are returned as they are.
//! - Non-IP frames (ARP, LLDP, STP, PPPoE discovery, PPP control protocols, ...) and IP
//!   protocols other than UDP, TCP, SCTP and tunnels (ICMP, ESP, ...) are skipped silently: they
//!   are not errors in a capture. SCTP I-DATA chunks (RFC 8260) are not read.
//!
//! # Errors, warnings and panics
//! - A file that cannot be read or is not a capture at all is a [`CaptureError`] naming the path
//!   (or saying that it came from bytes).
//! - Anything wrong inside a readable capture (a truncated last record, an unsupported link type,
//!   a malformed IP/UDP/TCP header, a fragment that does not fit, a hole in a TCP stream, a bad
//!   WebSocket frame) is a [`Warning`] naming the frame number; reading goes on with the next
//!   frame, so every packet before (and, where the container allows, after) is returned.
//! - A panic is a bug. There is no `unwrap` on input-derived data; each `expect` says why it
//!   cannot fail.
//!
//! # Hand-written parts, and why
//! - NetMon 2.x container: `pcap-file` reads pcap and pcapng only; the corpus has a NetMon file.
//! - The pcap record loop uses `pcap-file`'s raw record parser and converts the timestamp itself:
//!   `PcapPacket` rejects records whose original length exceeds the snap length, which real
//!   captures (and tshark) accept.
//! - pcapng blocks come from `pcap-file`'s `RawBlock`/`Block` parsers, but the section and
//!   interface bookkeeping is here, so that an IDB whose options `pcap-file` rejects still keeps
//!   the interface numbering right, and so that `if_tsresol` is applied (`pcap-file` reads every
//!   EPB timestamp as nanoseconds).
//! - Linux cooked SLL2 and BSD loopback headers: etherparse 0.16 has no parser for them (and its
//!   SLL v1 parser maps the protocol field through ARPHRD values; only Ethernet types matter here).
//! - GRE: etherparse does not parse it; only the base header (RFC 2784/2890) is needed.
//! - PPPoE session header and SCTP chunks: etherparse 0.16 parses neither.
//! - TCP stream reassembly and WebSocket framing: etherparse slices single packets only, and no
//!   well-kept crate reassembles TCP from captures or decodes RFC 6455 frames without owning a
//!   socket.
//!
//! Everything else (Ethernet, VLAN tags, IPv4/IPv6 with extension headers, UDP, TCP headers, IP
//! fragment buffers) is `etherparse`; pcap/pcapng records are `pcap-file`.
#![warn(missing_docs)]

mod decode;
mod formats;
pub mod rtp;
mod sctp;
mod tcp;
mod websocket;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything read from one capture.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// UDP datagrams, TCP data chunks, WebSocket and SCTP messages, ordered by frame number.
    pub packets: Vec<Packet>,
    /// What was wrong in the capture; reading continued after each.
    pub warnings: Vec<Warning>,
}

/// One transport-level payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// 1-based frame number as tshark numbers them; for reassembled data (IP fragments, TCP
    /// chunks, WebSocket messages) the frame that completed it.
    pub index: usize,
    /// Capture time of that frame, since the Unix epoch.
    pub time: Duration,
    /// Source address and port (of the innermost IP header).
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Which transport carried the payload.
    pub transport: Transport,
    /// The UDP payload, TCP data chunk or WebSocket message payload.
    pub payload: Vec<u8>,
}

/// The transport a [`Packet`] came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One UDP datagram.
    Udp,
    /// A chunk of in-order TCP stream data (including a WebSocket handshake).
    Tcp,
    /// One complete WebSocket data message (text or binary), unmasked.
    WebSocket,
    /// One SCTP user message: a DATA chunk, or fragments reassembled (RFC 9260 §3.3.1).
    Sctp,
}

/// Something wrong at one frame; reading continued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based frame number the problem is in (for a truncated file: the frame that was cut).
    pub packet: usize,
    /// What kind of problem.
    pub kind: WarningKind,
    /// Human-readable detail.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "packet {}: {}", self.packet, self.message)
    }
}

/// Kinds of [`Warning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WarningKind {
    /// The file ends inside a record or block; frames before it were read.
    Truncated,
    /// A container record or block is malformed; it was skipped.
    MalformedRecord,
    /// The frame's link type is not supported (reported once per link type).
    UnsupportedLinkType,
    /// A link-layer, IP, UDP or TCP header is malformed or cut short.
    MalformedPacket,
    /// The captured data is shorter than the datagram (snap length); the payload is cut.
    SnapLength,
    /// An IP fragment could not be added to its datagram.
    Fragment,
    /// A TCP stream has a hole that was never filled; the data after it was returned anyway.
    TcpGap,
    /// A WebSocket frame is malformed; the rest of that direction is returned as TCP.
    WebSocket,
}

/// Why a capture could not be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The bytes are not a capture in a supported format, or its file header is broken.
    #[error("{origin}: {reason}")]
    Format {
        /// Where the bytes came from: a path, or "capture bytes".
        origin: Origin,
        /// What is wrong.
        reason: FormatError,
    },
}

/// Where rejected bytes came from, for [`CaptureError::Format`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file.
    File(PathBuf),
    /// Bytes passed to [`read_bytes`].
    Bytes,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Bytes => f.write_str("capture bytes"),
        }
    }
}

/// What is wrong with a capture's file header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than any capture header.
    #[error("too short to be a capture file ({0} bytes)")]
    TooShort(usize),
    /// The first four bytes are no known capture magic.
    #[error("not a pcap, pcapng or NetMon capture (first bytes {0:02x?})")]
    UnknownMagic([u8; 4]),
    /// The magic is known but the file header is unusable.
    #[error("bad {format} file header: {detail}")]
    BadHeader {
        /// "pcap", "pcapng" or "NetMon".
        format: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// Reads a whole capture file. Errors name the path.
pub fn read_file(path: &Path) -> Result<Capture, CaptureError> {
    let bytes = std::fs::read(path).map_err(|source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_bytes(&bytes).map_err(|e| match e {
        CaptureError::Format { reason, .. } => CaptureError::Format {
            origin: Origin::File(path.to_path_buf()),
            reason,
        },
        other => other,
    })
}

/// Reads a capture held in memory.
pub fn read_bytes(bytes: &[u8]) -> Result<Capture, CaptureError> {
    let mut decoder = decode::Decoder::default();
    formats::for_each_frame(bytes, &mut |frame| decoder.frame(frame)).map_err(|reason| {
        CaptureError::Format {
            origin: Origin::Bytes,
            reason,
        }
    })?;
    Ok(decoder.finish())
}
