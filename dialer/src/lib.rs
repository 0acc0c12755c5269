//! The dialer: a SIP/RTP outbound dialer (B2BUA) and its command-line tools.
//!
//! # What it does
//! This crate holds the `dialer` binary's logic as a library, so that every command is testable
//! without a process: `main.rs` only parses arguments with clap and calls [`cli::run`].
//! - [`cli`]: the subcommands, their output (text or JSON) and exit codes:
//!   - `dialer sip parse [FILE|-]` prints one SIP message's structure as JSON (RFC 3261 §7),
//!     or the parser's error with line and column;
//!   - `dialer config check [--config F]` validates a `dialer.toml` and prints its effective
//!     settings, or every diagnostic as `file:line:col: key: message`;
//!   - `dialer pcap ladder|rtp|audio FILE` read a capture the way sngrep and Wireshark's VoIP
//!     tools do.
//! - [`pcap`]: the capture analyses behind those commands, as functions over a
//!   [`capture::Capture`]: SIP messages out of UDP, reassembled TCP (deframed with
//!   [`sip_core::message::parse_stream`] per direction) and WebSocket payloads ([`pcap::sip`]);
//!   the per-call SIP ladder with the problems engineers hunt for ([`pcap::ladder`]); RTP
//!   streams named with the codecs the capture's SDP gives them ([`pcap::rtp`]); one stream
//!   decoded to a WAV file ([`pcap::audio`]).
//!
//! # Drive loop
//! The commands are one-shot: read the input, analyse it, print, exit. The analyses are pure
//! functions of the capture; only [`cli`] touches files, standard streams and the exit code.
//!
//! # What it deliberately does not do
//! - No live capture and no capture writing; reading containers and link layers is the
//!   `capture` crate's job, parsing SIP is `sip-core`'s, decoding audio is `media`'s.
//! - The ladder does not re-run transactions: it reports what the capture shows (messages,
//!   retransmissions, missing or misrouted ACKs, NAT traces, outcome), not what a stack would do.
//! - No SRTP, no TLS: encrypted payloads are not SIP or RTP to this crate.
//!
//! # Errors and panics
//! Bad input (an unparsable message, a broken configuration, a truncated capture, an unknown link
//! type, garbage in a payload) is reported with what is wrong and where (file, packet number,
//! line and column) and the rest of the input is still read. Exit codes: 0 success, 1 input
//! rejected or unreadable, 2 usage error (clap). A panic is a bug: nothing here unwraps
//! input-derived data, and each `expect` says why it cannot fail.
//!
//! # Hand-written parts, and why
//! - The private-address test for NAT traces (RFC 1918, RFC 6598, loopback, IPv6 unique-local
//!   and link-local): `std`'s `Ipv4Addr::is_private` leaves out RFC 6598 shared space and the
//!   IPv6 unique-local test is not stable; `ipnet` would only replace one range table.
//! - The SIP-looking test for a payload (start line shape): tshark's SIP heuristic is what the
//!   counts are compared against, and no crate implements it.
#![warn(missing_docs)]

pub mod api;
pub mod b2bua;
pub mod cli;
pub mod client;
pub mod control;
pub mod pcap;
pub mod registrar;
pub mod runtime;
