//! media: the dialer's media plane — SDP offer/answer, RTP/RTCP, G.711 and Opus, the ringback
//! player, the per-call relay and call recording. Sans-IO: no socket, no clock, no sleep.
//!
//! # What it does
//! - [`sdp`]: reads SDP (RFC 4566) through webrtc-sdp after a pre-filter for the lines it
//!   refuses, into our own [`sdp::SessionDescription`]; builds our offers; answers and reads
//!   answers per RFC 3264 into a per-leg [`sdp::Negotiated`] that records the *peer's* payload
//!   type numbers; an unusable offer is a [`sdp::NotAcceptable`] the caller answers with 488.
//! - [`rtp`], [`rtcp`]: RTP read (rtp-rs) and build, RTCP told apart by packet type (RFC 5761
//!   §4), SR/RR build and parse, receive statistics (RFC 3550 A.1, A.3, A.8), the 5 s schedule.
//! - [`codec`]: G.711 by table, Opus through libopus (audiopus), 8 <-> 48 kHz polyphase FIR,
//!   packet-loss concealment, and a [`codec::Transcoder`]; between Opus and G.711 libopus runs
//!   at 8 kHz, so that path resamples nothing (the Opus RTP clock stays 48 kHz, RFC 7587).
//! - [`playback`]: ringback WAVs read once (hound, and G.711 WAVs directly), encoded once per
//!   codec into shared 20 ms frames, looped per call.
//! - [`relay`]: two legs per call, in-place header rewrite, pass-through or transcoding,
//!   telephone-event number rewrite, media timeout, and symmetric-RTP latching done safely
//!   (RFC 4961, like Asterisk's `strictrtp`): a leg latches only within a window after its
//!   negotiation, only to its signalled IP or one the runtime allowed
//!   ([`relay::Relay::allow_source`]); other sources are dropped and counted.
//! - [`srtp`]: SRTP and SRTCP (RFC 3711) per leg through the maintained pure-Rust
//!   `webrtc-srtp` (why that crate: see the module docs), keys redacted from `Debug`; SDES
//!   (RFC 4568 `a=crypto`) and the choice of suite in offer/answer are in [`sdp`]
//!   ([`sdp::SrtpPolicy`], [`sdp::answer_offer_srtp`], [`sdp::process_answer_srtp`]); the relay
//!   unprotects on the way in and protects per outgoing leg ([`relay::Relay::set_srtp`]).
//! - [`record`]: stereo WAV (customer left, agent right) patched at every flush.
//! - [`dtmf`]: RFC 4733 payloads and digits.
//!
//! # Drive loop
//! The runtime owns sockets and the clock and passes `now: Instant` into every call. A call's
//! relay starts with the customer's leg alone ([`relay::Relay::new_one_sided`]) and gets the
//! agent's, and any re-INVITE's, through [`relay::Relay::update_leg`]. Then:
//! 1. datagram on a leg's port -> [`relay::Relay::forward`]`(now, side, from, buf, len)`, which
//!    rewrites `buf` in place and returns where to send it;
//! 2. then, and at [`relay::Relay::next_deadline`], drain [`relay::Relay::poll_transmit`]
//!    (ringback frames, concealment packets, RTCP sender reports);
//! 3. [`relay::Relay::poll_event`] for media timeouts and latching.
//!
//! For a peer whose SDP does not name where its packets come from (an agent behind NAT), the
//! runtime calls [`relay::Relay::allow_source`] with its registered source IP; the latch window
//! is [`relay::RelayConfig::latch_window`], opened by each [`relay::Relay::update_leg`] that
//! changes the leg, and [`relay::Relay::source_stats`] counts what was refused.
//!
//! Random values (SSRCs, initial sequence numbers and timestamps) come from the `RngCore` the
//! caller passes, so tests are exact. Wall-clock time for RTCP comes in as an
//! [`rtcp::NtpTimestamp`] at relay creation.
//!
//! # What it deliberately does not do
//! - No DTLS-SRTP, no ICE: offers on `UDP/TLS/...` are [`sdp::NotAcceptable`]; SRTP is keyed by
//!   SDES only, without MKI (see [`sdp`]'s SDES rules).
//! - No jitter buffer: packets are relayed as they come; concealment covers short gaps on the
//!   transcoding path only (pass-through leaves loss to the receiver's own concealment).
//! - No repacketisation: a transcoded packet lasts as long as its source packet, and ringback
//!   frames last 20 ms whatever `a=ptime` the peer asked for (ptime is a preference, RFC 4566
//!   §6). Opus cannot carry 30 ms frames, so a 30 ms G.711 leg facing an Opus leg fails to
//!   transcode ([`codec::CodecError::FrameDuration`]).
//! - No name resolution: a `c=` host name is kept as [`sdp::ConnectionAddress::Fqdn`].
//! - Reading a ringback WAV from disk ([`playback::Ringback::load`]) is the one file read, at
//!   start-up; recording writes to whatever `Write + Seek` the runtime hands over.
//!
//! # Errors and panics
//! Bad input (SDP, RTP, RTCP, WAV, Opus payloads) is an error value, never a panic; a malformed
//! datagram given to the relay is a [`relay::Forward::Dropped`] with its reason. A panic is a
//! bug; each `expect` in library code says why it cannot fail.
//!
//! # Hand-written where a crate exists, and why
//! - SDP text output: webrtc-sdp's `Display` re-renders `a=fmtp` from a WebRTC-shaped struct and
//!   orders attributes its own way; see [`sdp`].
//! - G.711: two lookup tables built at compile time, shorter than a dependency; see
//!   [`codec::g711`].
//! - Resampling: a fixed integer ratio, done by one polyphase FIR without allocation and with
//!   its response pinned by tests; see [`codec::resample`].
//! - WAV header for recording: hound patches sizes only when finalised, and crash safety needs
//!   them patched at every flush; see [`record`]. G.711 WAVs are read directly because hound
//!   refuses format tags 6 and 7.
//! - RTCP: SR/RR/SDES are a few fixed layouts (RFC 3550 §6.4), rare on the wire, and no
//!   well-kept crate covers them without a WebRTC stack.
#![warn(missing_docs)]

pub mod codec;
pub mod dtmf;
pub mod playback;
pub mod record;
pub mod relay;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod srtp;

/// The origin of virtual time in unit tests: any `Instant` serves, only differences matter.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
