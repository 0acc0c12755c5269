//! One RTP stream decoded to PCM, placed by RTP timestamp as Wireshark's RTP player does.
//!
//! Packets are ordered by extended sequence number (RFC 3550 §A.1) and duplicates dropped. Each
//! audio packet is decoded where its RTP timestamp puts it on the stream's timeline; a gap before
//! it (lost packets, or silence suppression after a comfort-noise packet) is filled with the
//! media crate's concealment: the codec's own PLC for Opus, the last frame faded out for G.711,
//! and silence after three frames. A timestamp jump of more than [`MAX_GAP_SECONDS`] is taken
//! for a restart of the sender's clock, not a gap, and the next packet follows directly.
//!
//! Output rate: the codec's PCM rate, 8 kHz for G.711 and 48 kHz for Opus (RFC 7587 §4.1
//! fixes the Opus RTP clock at 48 kHz; resampling to 8 kHz would only lose bandwidth).
//! RFC 4733 telephone events and comfort noise (PT 13) carry no audio to decode; their time
//! is filled like a gap.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use capture::rtp::{streams, RtpStream};
use capture::{Capture, Transport};
use media::codec::{CodecError, Decoder, MAX_FRAME_SAMPLES};
use media::rtp::RtpHeader;
use media::sdp::Codec;

use super::rtp::{telephone_event_types, SdpMaps};

/// A timestamp jump longer than this is a clock restart, not silence to fill.
pub const MAX_GAP_SECONDS: u32 = 10;

/// Decoded audio and what went into it.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The stream decoded.
    pub stream: RtpStream,
    /// Its codec.
    pub codec: Codec,
    /// PCM sample rate of [`Decoded::samples`].
    pub sample_rate: u32,
    /// Mono 16-bit PCM.
    pub samples: Vec<i16>,
    /// Audio packets decoded.
    pub decoded_packets: usize,
    /// Packets dropped as duplicates (same extended sequence number).
    pub duplicates: usize,
    /// Packets skipped: RFC 4733 events, comfort noise, other payload types.
    pub skipped: usize,
    /// Samples filled by concealment or silence.
    pub filled_samples: usize,
    /// Packets whose payload the decoder refused (filled like a loss).
    pub undecodable: usize,
    /// Streams with the same SSRC that were not decoded (only the first is).
    pub other_streams: usize,
}

/// Why a stream could not be decoded.
#[derive(Debug)]
#[non_exhaustive]
pub enum AudioError {
    /// No RTP stream has this SSRC.
    NoStream(u32),
    /// The stream's payload type is not PCMU, PCMA or Opus.
    UnsupportedCodec {
        /// The payload type.
        payload_type: u8,
        /// Its encoding name, when the SDP or RFC 3551 names it.
        encoding: Option<String>,
    },
    /// The capture's SDP made the stream SRTP (RFC 3711): its payload is encrypted, and a
    /// capture holds no keys to decrypt it with.
    Encrypted(u32),
    /// The decoder could not be created.
    Codec(CodecError),
    /// The WAV file could not be written.
    Wav(hound::Error),
}

impl fmt::Display for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioError::NoStream(ssrc) => write!(f, "no RTP stream with SSRC 0x{ssrc:08X}"),
            AudioError::UnsupportedCodec {
                payload_type,
                encoding,
            } => write!(
                f,
                "payload type {payload_type} ({}) is not PCMU, PCMA or Opus",
                encoding.as_deref().unwrap_or("unknown encoding")
            ),
            AudioError::Encrypted(ssrc) => write!(
                f,
                "the stream with SSRC 0x{ssrc:08X} is SRTP (the SDP keyed it): its payload is encrypted"
            ),
            AudioError::Codec(e) => write!(f, "decoder: {e}"),
            AudioError::Wav(e) => write!(f, "WAV: {e}"),
        }
    }
}

impl std::error::Error for AudioError {}

fn codec_of(encoding: &str) -> Option<Codec> {
    [Codec::Pcmu, Codec::Pcma, Codec::Opus]
        .into_iter()
        .find(|c| c.encoding_name().eq_ignore_ascii_case(encoding))
}

/// Decodes the first stream with SSRC `ssrc`.
pub fn decode(capture: &Capture, ssrc: u32) -> Result<Decoded, AudioError> {
    let maps = SdpMaps::from_capture(capture);
    let mut candidates = streams(capture, &maps.rtp_options())
        .into_iter()
        .filter(|s| s.ssrc == ssrc);
    let stream = candidates.next().ok_or(AudioError::NoStream(ssrc))?;
    let other_streams = candidates.count();
    if maps.is_srtp(stream.src, stream.dst) {
        return Err(AudioError::Encrypted(ssrc));
    }
    let events = telephone_event_types(&maps, &stream);
    let audio_pt = stream
        .payload_types
        .iter()
        .copied()
        .find(|pt| !events.contains(pt) && *pt != 13)
        .ok_or(AudioError::UnsupportedCodec {
            payload_type: stream.payload_types.first().copied().unwrap_or(0),
            encoding: Some("no audio payload".to_string()),
        })?;
    let format = maps.format(audio_pt, stream.src, stream.dst);
    let codec = format
        .as_ref()
        .and_then(|f| codec_of(&f.encoding))
        .ok_or_else(|| AudioError::UnsupportedCodec {
            payload_type: audio_pt,
            encoding: format.as_ref().map(|f| f.encoding.clone()),
        })?;

    // Extended sequence number -> (timestamp, payload type, payload).
    let mut packets: BTreeMap<i64, (u32, u8, &[u8])> = BTreeMap::new();
    let mut highest: Option<i64> = None;
    let mut duplicates = 0;
    for p in capture
        .packets
        .iter()
        .filter(|p| p.transport == Transport::Udp && p.src == stream.src && p.dst == stream.dst)
    {
        let Ok(h) = RtpHeader::parse(&p.payload) else {
            continue;
        };
        if h.ssrc.0 != ssrc {
            continue;
        }
        // RFC 3550 §A.1: the sequence number closest to the highest seen, across wraps.
        let ext = match highest {
            None => i64::from(h.sequence),
            Some(top) => {
                let delta = i64::from(h.sequence.wrapping_sub(top as u16) as i16);
                top + delta
            }
        };
        highest = Some(highest.map_or(ext, |t| t.max(ext)));
        if packets
            .insert(ext, (h.timestamp, h.payload_type.0, h.payload(&p.payload)))
            .is_some()
        {
            duplicates += 1;
        }
    }

    let rate = codec.pcm_rate();
    let clock = codec.clock_rate();
    let mut decoder = Decoder::new(codec).map_err(AudioError::Codec)?;
    let mut out: Vec<i16> = Vec::new();
    let mut buf = vec![0i16; MAX_FRAME_SAMPLES];
    let mut frame = (rate / 50) as usize; // 20 ms until the first packet says otherwise
    let mut base: Option<(u32, i64)> = None; // (RTP timestamp, output position) of the timeline
    let (mut decoded_packets, mut skipped, mut filled, mut undecodable) = (0, 0, 0, 0);
    let max_gap = i64::from(MAX_GAP_SECONDS) * i64::from(rate);
    for (timestamp, pt, payload) in packets.values().copied() {
        if pt != audio_pt {
            skipped += 1;
            continue;
        }
        let at = match base {
            None => 0,
            Some((ts0, pos0)) => {
                let ticks = i64::from(timestamp.wrapping_sub(ts0) as i32);
                pos0 + ticks * i64::from(rate) / i64::from(clock)
            }
        };
        let len = out.len() as i64;
        let at = if base.is_none() || (at - len).abs() > max_gap {
            base = Some((timestamp, len));
            len
        } else {
            at.max(0)
        };
        // Fill the gap before this packet, one frame of concealment at a time.
        while (out.len() as i64) < at {
            let want = frame.min((at - out.len() as i64) as usize).min(buf.len());
            let n = decoder
                .conceal(want, &mut buf)
                .map_err(AudioError::Codec)?
                .min(want);
            let n = if n == 0 {
                buf[..want].fill(0);
                want
            } else {
                n
            };
            out.extend_from_slice(&buf[..n]);
            filled += n;
        }
        if buf.len() < payload.len() {
            buf.resize(payload.len(), 0);
        }
        match decoder.decode(payload, &mut buf) {
            Ok(n) => {
                decoded_packets += 1;
                if n > 0 {
                    frame = n;
                }
                let at = at as usize;
                let end = at + n;
                if out.len() < end {
                    out.resize(end, 0);
                }
                out[at..end].copy_from_slice(&buf[..n]);
            }
            Err(_) => undecodable += 1,
        }
    }
    Ok(Decoded {
        stream,
        codec,
        sample_rate: rate,
        samples: out,
        decoded_packets,
        duplicates,
        skipped,
        filled_samples: filled,
        undecodable,
        other_streams,
    })
}

/// Writes mono 16-bit PCM to a WAV file.
pub fn write_wav(path: &Path, sample_rate: u32, samples: &[i16]) -> Result<(), AudioError> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(AudioError::Wav)?;
    for &s in samples {
        w.write_sample(s).map_err(AudioError::Wav)?;
    }
    w.finalize().map_err(AudioError::Wav)
}
