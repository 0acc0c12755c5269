//! media: SDP offer/answer, RTP/RTCP, codecs, ringback playback, the relay and recording.
#![warn(missing_docs)]

pub mod rtcp;
pub mod rtp;
pub mod sdp;

/// The origin of virtual time in unit tests: any `Instant` serves, only differences matter.
#[cfg(test)]
#[allow(clippy::disallowed_methods)]
pub(crate) fn test_epoch() -> std::time::Instant {
    std::time::Instant::now()
}
pub mod codec;
pub mod dtmf;
pub mod playback;
pub mod record;
pub mod relay;
