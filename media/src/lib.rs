//! media: SDP offer/answer, RTP/RTCP, codecs, ringback playback, the relay and recording.
#![warn(missing_docs)]

pub mod rtp;
pub mod sdp;
