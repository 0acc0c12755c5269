//! The runtime: sockets, clocks and tasks; the only place that does IO.
//!
//! The cores (`sip-core`, `media`, [`crate::b2bua`], [`crate::registrar`]) take time as an
//! argument and return what to send. This module reads the clock ([`clock`]), owns the SIP
//! socket and the signalling task ([`server`]), each call's media task ([`media`]), and the
//! one-shot trunk registration of `dialer register` ([`register`]), and the campaign runner's
//! thread ([`campaigns`]).
#![allow(clippy::disallowed_methods)]
pub mod campaigns;
pub mod clock;
pub mod demo;
pub mod dns;
pub mod journal;
pub mod ladder;
pub mod logging;
pub mod media;
pub mod output;
pub mod register;
pub mod server;
pub mod settings;
pub mod tap;
pub mod tls;
pub mod transport;
