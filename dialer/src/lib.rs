//! The dialer: a SIP/RTP outbound dialer (B2BUA) and its command-line tools.
//!
//! # What it does
//! The outbound dialer: it registers to SIP trunks, dials customers through them, plays a
//! ringback WAV into the customer's RTP once they answer, rings an agent softphone registered
//! to it, and relays RTP customer <-> agent (transcoding when the legs' codecs differ, RFC 4733
//! DTMF passed with its payload type rewritten) until either side hangs up.
//! - [`b2bua`]: the back-to-back user agent with no IO: two dialogs and two media legs per
//!   call, digest answers to the trunk, the ACK for a 2xx through the route set, BYE and
//!   CANCEL races, the CDR; agent states and pools ([`b2bua::agents`]), the agent chosen when
//!   the customer answers and the abandon path, agent sessions, the trunks' channel and
//!   calls-per-second queues; SRTP per leg keyed by SDES ([`b2bua::SrtpPolicy`] per trunk
//!   and agent); its interface is plain data ([`b2bua::spec`]).
//! - [`registrar`]: agents' REGISTER with digest, `allow` networks and NAT source binding;
//!   one answer for every failure, and bans of sources that keep failing.
//! - [`runtime`]: the only IO: the clock, the SIP socket and signalling task, each call's media
//!   task (batched RTP sockets), `dialer register`, and the loopback demo.
//! - [`control`], [`api`], [`client`]: the control interface (`POST /calls`, `GET /events` ...)
//!   the running dialer serves and the CLI uses; [`campaigns`]: the requests of the campaign
//!   routes (`/campaigns`, `/dnc`, `/calls/{id}/disposition`), answered by the campaign runner
//!   ([`runtime::campaigns`]: the `campaign` crate's engine and the `store` crate's SQLite
//!   store on a thread of their own).
//! - [`metrics`]: what `GET /metrics` reports in the Prometheus text format: call outcomes,
//!   SIP requests and responses, RTP packets, and gauges of calls, agents, trunks, campaigns.
//! - [`cli`]: the subcommands (`main.rs` only parses arguments with clap and calls
//!   [`cli::run()`]): `run`, `register`, `demo`, `call`, `calls`, `agents`,
//!   `agent pause|ready|login|logout`, `bans`, `unban`, `hangup`, `campaign
//!   create|import|start|pause|resume|stop|status|list|leads`, `dnc add|remove|import|list`,
//!   `disposition`, `sip parse`,
//!   `config check`, `pcap ladder|rtp|audio`.
//! - [`pcap`]: the capture analyses behind `dialer pcap`: SIP messages out of UDP, reassembled
//!   TCP (deframed with [`sip_core::message::parse_stream`] per direction) and WebSocket
//!   payloads ([`pcap::sip`]); the per-call SIP ladder with the problems engineers hunt for
//!   ([`pcap::ladder`]); RTP streams named with the codecs the capture's SDP gives them
//!   ([`pcap::rtp`]); one stream decoded to a WAV file ([`pcap::audio`]).
//!
//! # Drive loop
//! `dialer run` starts [`runtime::server::start`]: one signalling task feeds every SIP
//! datagram and timer to the [`b2bua::Core`] (which owns the sans-IO `sip-core` endpoint),
//! hands REGISTER and OPTIONS to the [`registrar::Registrar`] and responses to the trunk
//! registrations, and moves what they queue: SIP to the socket, media commands to the call's
//! media task, events to the API's followers. RTP never reaches the signalling task.
//! The `pcap` and `sip` commands are one-shot: read, analyse, print, exit.
//!
//! # What it deliberately does not do
//! - No inbound calls (an INVITE from outside a dialog gets 480), no DNS SRV (trunk proxies
//!   resolve through A/AAAA). SRTP is keyed by SDES only (RFC 4568, per leg, see
//!   `b2bua/srtp.rs`), never by DTLS-SRTP or MIKEY.
//! - The ladder does not re-run transactions: it reports what the capture shows (messages,
//!   retransmissions, missing or misrouted ACKs, NAT traces, outcome), not what a stack would do.

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
pub mod campaigns;
pub mod cli;
pub mod client;
pub mod control;
pub mod gate;
pub mod metrics;
pub mod paths;
pub mod pcap;
pub mod registrar;
pub mod runtime;
