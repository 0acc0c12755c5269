//! A sans-IO SIP stack: messages, transactions, dialogs and digest authentication.
//!
//! # What it does
//! - [`message`]: its own parser and writer for SIP messages (RFC 3261 §7, §25), tolerant of
//!   what real equipment sends (folded lines, compact and odd-cased header names, white
//!   space around separators, quoted parameters such as `+sip.instance`, IPv6 references,
//!   tel: URIs) and strict where RFC 4475 says a message is malformed.
//! - [`framing`]: messages out of a TCP byte stream (RFC 3261 §18.3).
//! - [`transaction`] and [`endpoint`]: the four transaction state machines of RFC 3261 §17
//!   with RFC 6026's Accepted state, every timer from a [`transaction::TimerConfig`], and an
//!   endpoint that routes datagrams to them.
//! - [`dialog`]: dialog state, in-dialog requests and the ACK for a 2xx (RFC 3261 §12, §13).
//! - [`auth`]: digest authentication, client and server (RFC 2617, RFC 7616, RFC 8760).
//! - [`locate`]: RFC 3263 server location without the lookups: NAPTR and SRV ordering
//!   (RFC 2782 weights), target lists with their TTLs, failover to the next target.
//!
//! # Drive loop
//! The stack never touches a socket or a clock. The runtime:
//! 1. calls [`endpoint::Endpoint::handle_datagram`]`(now, transport, source, bytes)` for each
//!    received message, and [`endpoint::Endpoint::handle_timeout`]`(now)` when
//!    [`endpoint::Endpoint::next_timeout`] is reached;
//! 2. lets the call logic issue commands (`send_request`, `respond`, `cancel`,
//!    `send_stateless`);
//! 3. drains [`endpoint::Endpoint::poll_output`]: transmits to send, events for the call logic.
//!
//! Time is a [`time::Time`] given by the runtime, and randomness (branches, tags, Call-IDs,
//! cnonces) comes from an injected `rand::RngCore`, so every test runs in virtual time and
//! is exactly repeatable.
//!
//! # What it deliberately does not do
//! No DNS lookups (the runtime asks the DNS; [`locate`] orders the answers, and the stack
//! takes socket addresses), no TLS,
//! no sockets, no threads, no clock. It is a user agent's stack, not a proxy: it does not
//! forward requests.
//!
//! # Why its own message layer
//! `rsip` 0.4, the crate the design names, rejects messages this dialer meets in practice
//! (folded headers, `To :`, quoted Contact parameters, IPv6 hosts, tel: URIs, SHA-256
//! digest); the RFC 4475 and capture tests in this crate are the measure.
//!
//! # Errors and panics
//! Errors are grouped by who is at fault: the peer's bad input
//! ([`message::ParseError`], [`message::HeaderError`], [`auth`] parse errors, answered with
//! 400 or dropped), misuse of the API by the call logic ([`endpoint::EndpointError`]), and
//! protocol outcomes that are data, not errors (a 486 is an [`endpoint::Event::Response`],
//! Timer B is an [`endpoint::Event::Timeout`]). No input makes the stack panic; a panic is a
//! bug, and each `expect` says why it cannot fail.
#![warn(missing_docs)]
pub mod auth;
pub mod dialog;
pub mod endpoint;
pub mod framing;
pub mod locate;
pub mod message;
pub mod registration;
pub mod time;
pub mod transaction;
