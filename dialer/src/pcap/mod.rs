//! Capture analyses: SIP messages, per-call ladders, RTP streams and stream audio.
pub mod audio;
pub mod ladder;
pub mod rtp;
pub mod sip;
