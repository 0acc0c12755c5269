//! The ringback player: a WAV file read once, encoded once per codec into 20 ms frames, and
//! looped by any number of calls without decoding, encoding or allocating per packet.
//!
//! hound reads PCM (8/16/24/32-bit integer) and IEEE float WAVs. It refuses G.711 WAVs (format
//! tags 6 and 7, common for telephony prompts), so those are read here directly: their `fmt `
//! and `data` chunks are all there is to them (RIFF/WAVE, Microsoft multimedia spec).
//! Whatever the rate and channel count, the audio is mixed to mono and converted to the codec's
//! rate at load time.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::codec::g711::{self, Law};
use crate::codec::resample::{Downsampler, Upsampler};
use crate::codec::{Codec, CodecError, Encoder};

/// Frame duration of the encoded clip.
pub const FRAME_MS: u32 = 20;

/// Why a WAV could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaybackError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        reason: String,
    },
    /// A WAV in a format we do not decode.
    #[error("{path}: unsupported WAV format {format}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The format found (format tag, bits, or what the header said instead of RIFF/WAVE).
        format: String,
    },
    /// A WAV whose chunks are inconsistent or cut short.
    #[error("{path}: malformed WAV: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The codec could not encode the clip.
    #[error("{path}: {error}")]
    Codec {
        /// The file.
        path: PathBuf,
        /// The encoder's error.
        error: CodecError,
    },
}

/// Decoded audio: mono samples at a rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    /// Samples per second.
    pub rate: u32,
    /// Mono samples in -1.0..=1.0.
    pub samples: Vec<f32>,
}

fn read_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads a WAV held in memory; `path` only names it in errors.
pub fn decode_wav(bytes: &[u8], path: &Path) -> Result<Pcm, PlaybackError> {
    let malformed = |reason: &str| PlaybackError::Malformed {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(4)]).into_owned();
        return Err(PlaybackError::Unsupported {
            path: path.to_path_buf(),
            format: format!("not RIFF/WAVE (starts with {head:?})"),
        });
    }
    // Walk the chunks for `fmt ` and `data`.
    let mut at = 12;
    let mut fmt: Option<&[u8]> = None;
    let mut data: Option<&[u8]> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = read_u32(bytes, at + 4) as usize;
        let body_end = (at + 8).saturating_add(len).min(bytes.len());
        let body = &bytes[at + 8..body_end];
        match id {
            b"fmt " => fmt = Some(body),
            // A data chunk cut short (a recording that crashed) still plays up to its end.
            b"data" => data = Some(body),
            _ => {}
        }
        // Chunks are padded to even length.
        at = (at + 8).saturating_add(len).saturating_add(len & 1);
    }
    let fmt = fmt.ok_or_else(|| malformed("no fmt chunk"))?;
    if fmt.len() < 16 {
        return Err(malformed("fmt chunk shorter than 16 bytes"));
    }
    let mut tag = read_u16(fmt, 0);
    let channels = read_u16(fmt, 2);
    let rate = read_u32(fmt, 4);
    let bits = read_u16(fmt, 14);
    // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
    if tag == 0xfffe && fmt.len() >= 26 {
        tag = read_u16(fmt, 24);
    }
    if channels == 0 || rate == 0 {
        return Err(malformed("zero channels or zero sample rate"));
    }
    match tag {
        6 | 7 => {
            let law = if tag == 6 { Law::A } else { Law::Mu };
            if bits != 8 {
                return Err(PlaybackError::Unsupported {
                    path: path.to_path_buf(),
                    format: format!("G.711 with {bits} bits per sample"),
                });
            }
            let data = data.ok_or_else(|| malformed("no data chunk"))?;
            let channels = usize::from(channels);
            let samples = data
                .chunks_exact(channels)
                .map(|frame| {
                    frame
                        .iter()
                        .map(|&c| f32::from(g711::decode_sample(law, c)))
                        .sum::<f32>()
                        / (channels as f32 * 32768.0)
                })
                .collect();
            Ok(Pcm { rate, samples })
        }
        1 | 3 => decode_with_hound(bytes, path),
        other => Err(PlaybackError::Unsupported {
            path: path.to_path_buf(),
            format: format!("format tag {other} ({bits} bits, {channels} channels)"),
        }),
    }
}

fn decode_with_hound(bytes: &[u8], path: &Path) -> Result<Pcm, PlaybackError> {
    let describe = |spec: &hound::WavSpec| {
        format!(
            "{:?} {} bits, {} channels",
            spec.sample_format, spec.bits_per_sample, spec.channels
        )
    };
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| match e {
        hound::Error::Unsupported => PlaybackError::Unsupported {
            path: path.to_path_buf(),
            format: "a layout hound does not support".to_string(),
        },
        other => PlaybackError::Malformed {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| PlaybackError::Malformed {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?,
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| PlaybackError::Malformed {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?
        }
        _ => {
            return Err(PlaybackError::Unsupported {
                path: path.to_path_buf(),
                format: describe(&spec),
            })
        }
    };
    let samples = interleaved
        .chunks_exact(channels)
        .map(|frame| frame.iter().sum::<f32>() / channels as f32)
        .collect();
    Ok(Pcm {
        rate: spec.sample_rate,
        samples,
    })
}

/// Converts mono audio to `rate` (load time only, not the packet path). 8 <-> 48 kHz uses the
/// polyphase filters of [`crate::codec::resample`]; any other ratio a windowed-sinc
/// interpolator with its cutoff at the lower Nyquist frequency.
pub fn convert_rate(pcm: &Pcm, rate: u32) -> Vec<i16> {
    let to_i16 = |x: f32| (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
    if pcm.rate == rate {
        return pcm.samples.iter().map(|&x| to_i16(x)).collect();
    }
    let input: Vec<i16> = pcm.samples.iter().map(|&x| to_i16(x)).collect();
    match (pcm.rate, rate) {
        (8000, 48000) => {
            let mut out = vec![0i16; input.len() * 6];
            Upsampler::new().process(&input, &mut out);
            return out;
        }
        (48000, 8000) => {
            let mut out = vec![0i16; input.len() / 6];
            Downsampler::new().process(&input, &mut out);
            return out;
        }
        _ => {}
    }
    let ratio = f64::from(rate) / f64::from(pcm.rate);
    // Cutoff relative to the input rate: the lower of the two Nyquist frequencies, a little in.
    let cutoff = 0.5 * ratio.min(1.0) * 0.92;
    let half_width = (16.0 / cutoff).ceil() as i64;
    let out_len = (pcm.samples.len() as f64 * ratio).floor() as usize;
    let samples = &pcm.samples;
    (0..out_len)
        .map(|m| {
            let t = m as f64 / ratio;
            let centre = t.floor() as i64;
            let mut acc = 0.0;
            for n in (centre - half_width)..=(centre + half_width) {
                if n < 0 || n as usize >= samples.len() {
                    continue;
                }
                let x = n as f64 - t;
                let arg = 2.0 * cutoff * x;
                let sinc = if arg.abs() < 1e-12 {
                    1.0
                } else {
                    (std::f64::consts::PI * arg).sin() / (std::f64::consts::PI * arg)
                };
                // Hann window over the kernel span.
                let w = 0.5 + 0.5 * (std::f64::consts::PI * x / (half_width as f64 + 1.0)).cos();
                acc += f64::from(samples[n as usize]) * 2.0 * cutoff * sinc * w;
            }
            to_i16(acc as f32)
        })
        .collect()
}

/// A clip encoded for one codec: consecutive 20 ms frames, ready to send.
pub struct EncodedClip {
    codec: Codec,
    samples_per_frame: u32,
    data: Vec<u8>,
    /// (start, end) of each frame in `data`.
    frames: Vec<(u32, u32)>,
}

impl fmt::Debug for EncodedClip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncodedClip")
            .field("codec", &self.codec)
            .field("frames", &self.frames.len())
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl EncodedClip {
    /// Encodes `pcm` (mono, any rate) for `codec` into 20 ms frames, padding the last with
    /// silence.
    pub fn encode(pcm: &Pcm, codec: Codec, path: &Path) -> Result<EncodedClip, PlaybackError> {
        let samples = convert_rate(pcm, codec.pcm_rate());
        let per_frame = (codec.pcm_rate() / 1000 * FRAME_MS) as usize;
        let mut encoder = Encoder::new(codec).map_err(|error| PlaybackError::Codec {
            path: path.into(),
            error,
        })?;
        let mut data = Vec::new();
        let mut frames = Vec::new();
        let mut frame = vec![0i16; per_frame];
        let mut packet = [0u8; 1500];
        let count = samples.len().div_ceil(per_frame).max(1);
        for i in 0..count {
            frame.fill(0);
            let chunk = samples.get(i * per_frame..).unwrap_or(&[]);
            let chunk = &chunk[..chunk.len().min(per_frame)];
            frame[..chunk.len()].copy_from_slice(chunk);
            let len =
                encoder
                    .encode(&frame, &mut packet)
                    .map_err(|error| PlaybackError::Codec {
                        path: path.into(),
                        error,
                    })?;
            let start = data.len() as u32;
            data.extend_from_slice(&packet[..len]);
            frames.push((start, data.len() as u32));
        }
        Ok(EncodedClip {
            codec,
            samples_per_frame: per_frame as u32,
            data,
            frames,
        })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the clip has no frames (never true for a loaded clip: it has at least one).
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// RTP timestamp units per frame.
    pub fn samples_per_frame(&self) -> u32 {
        self.samples_per_frame
    }

    /// Frame `index`, wrapping around the end.
    pub fn frame(&self, index: usize) -> &[u8] {
        let (start, end) = self.frames[index % self.frames.len()];
        &self.data[start as usize..end as usize]
    }
}

/// A ringback clip encoded for each codec a call may use, shared by every call.
#[derive(Debug, Clone)]
pub struct Ringback {
    clips: Vec<Arc<EncodedClip>>,
}

impl Ringback {
    /// Reads `path` and encodes it for each of `codecs`.
    pub fn load(path: &Path, codecs: &[Codec]) -> Result<Ringback, PlaybackError> {
        let bytes = std::fs::read(path).map_err(|e| PlaybackError::Io {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_wav_bytes(&bytes, path, codecs)
    }

    /// Encodes a WAV held in memory; `path` names it in errors.
    pub fn from_wav_bytes(
        bytes: &[u8],
        path: &Path,
        codecs: &[Codec],
    ) -> Result<Ringback, PlaybackError> {
        let pcm = decode_wav(bytes, path)?;
        let clips = codecs
            .iter()
            .map(|&codec| EncodedClip::encode(&pcm, codec, path).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Ringback { clips })
    }

    /// Encodes audio made in memory (a built-in tone or silence); `name` names it in errors.
    pub fn from_pcm(pcm: &Pcm, name: &Path, codecs: &[Codec]) -> Result<Ringback, PlaybackError> {
        let clips = codecs
            .iter()
            .map(|&codec| EncodedClip::encode(pcm, codec, name).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Ringback { clips })
    }

    /// The clip for `codec`, if it was loaded for it.
    pub fn clip(&self, codec: Codec) -> Option<Arc<EncodedClip>> {
        self.clips.iter().find(|c| c.codec == codec).cloned()
    }

    /// A player looping the clip for `codec`.
    pub fn player(&self, codec: Codec) -> Option<Player> {
        self.clip(codec).map(Player::new)
    }
}

/// Loops one clip for one call: hands out the next frame each packet time.
#[derive(Debug, Clone)]
pub struct Player {
    clip: Arc<EncodedClip>,
    next: usize,
}

impl Player {
    /// A player starting at the clip's first frame.
    pub fn new(clip: Arc<EncodedClip>) -> Player {
        Player { clip, next: 0 }
    }

    /// The clip being played.
    pub fn clip(&self) -> &EncodedClip {
        &self.clip
    }

    /// The next frame's payload; the clip starts over after its last frame.
    pub fn next_frame(&mut self) -> &[u8] {
        let index = self.next;
        self.next = (self.next + 1) % self.clip.len();
        self.clip.frame(index)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A WAV file in memory with the given format tag and raw sample bytes.
    pub(crate) fn wav_bytes(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        let block = channels * bits / 8;
        out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        out.extend_from_slice(&block.to_le_bytes());
        out.extend_from_slice(&bits.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    pub(crate) fn tone_i16(freq: f64, rate: u32, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| {
                (12000.0 * (2.0 * std::f64::consts::PI * freq * n as f64 / f64::from(rate)).sin())
                    as i16
            })
            .collect()
    }

    fn pcm16(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    #[test]
    fn pcm16_8k_mono_becomes_160_byte_pcmu_frames() {
        let tone = tone_i16(440.0, 8000, 8000);
        let wav = wav_bytes(1, 1, 8000, 16, &pcm16(&tone));
        let ringback =
            Ringback::from_wav_bytes(&wav, Path::new("t.wav"), &[Codec::Pcmu]).expect("loads");
        let clip = ringback.clip(Codec::Pcmu).expect("encoded for PCMU");
        assert_eq!(clip.len(), 50);
        assert_eq!(clip.samples_per_frame(), 160);
        assert_eq!(clip.frame(0).len(), 160);
        let expected: Vec<u8> = tone[..160]
            .iter()
            .map(|&s| g711::encode_sample(Law::Mu, s))
            .collect();
        assert_eq!(clip.frame(0), &expected[..]);
    }

    #[test]
    fn stereo_44k_float_is_mixed_and_resampled() {
        // Left a tone, right silence: the mono mix is the tone at half level.
        let rate = 44100;
        let left = tone_i16(500.0, rate, rate as usize);
        let mut data = Vec::new();
        for &l in &left {
            let x = f32::from(l) / 32768.0;
            data.extend_from_slice(&x.to_le_bytes());
            data.extend_from_slice(&0f32.to_le_bytes());
        }
        let wav = wav_bytes(3, 2, rate, 32, &data);
        let pcm = decode_wav(&wav, Path::new("f.wav")).expect("float WAV");
        assert_eq!(pcm.rate, rate);
        let at_8k = convert_rate(&pcm, 8000);
        assert_eq!(at_8k.len(), 8000);
        let level = rms(&at_8k[1000..7000]);
        let expected = 12000.0 / 2.0 / std::f64::consts::SQRT_2;
        assert!(
            (level / expected - 1.0).abs() < 0.05,
            "rms {level}, expected {expected}"
        );
    }

    #[test]
    fn ulaw_and_alaw_wavs_are_read_directly() {
        let tone = tone_i16(400.0, 8000, 800);
        for (tag, law) in [(7u16, Law::Mu), (6, Law::A)] {
            let codes: Vec<u8> = tone.iter().map(|&s| g711::encode_sample(law, s)).collect();
            let wav = wav_bytes(tag, 1, 8000, 8, &codes);
            let pcm = decode_wav(&wav, Path::new("g.wav")).expect("G.711 WAV");
            assert_eq!(pcm.samples.len(), 800);
            let back = convert_rate(&pcm, 8000);
            assert!((rms(&back) / rms(&tone) - 1.0).abs() < 0.05, "tag {tag}");
        }
    }

    #[test]
    fn eight_bit_and_24_bit_pcm_load() {
        let eight: Vec<u8> = (0..800)
            .map(|n| if n % 2 == 0 { 0xc0 } else { 0x40 })
            .collect();
        let pcm = decode_wav(&wav_bytes(1, 1, 8000, 8, &eight), Path::new("8.wav")).expect("8-bit");
        assert!((pcm.samples[0] - 0.5).abs() < 0.01 && (pcm.samples[1] + 0.5).abs() < 0.01);
        let twenty_four: Vec<u8> = (0..800).flat_map(|_| [0, 0, 0x40]).collect();
        let pcm = decode_wav(
            &wav_bytes(1, 1, 8000, 24, &twenty_four),
            Path::new("24.wav"),
        )
        .expect("24-bit");
        assert!((pcm.samples[0] - 0.5).abs() < 0.001);
    }

    #[test]
    fn opus_clip_has_960_sample_frames() {
        let tone = tone_i16(440.0, 8000, 1600);
        let wav = wav_bytes(1, 1, 8000, 16, &pcm16(&tone));
        let ringback =
            Ringback::from_wav_bytes(&wav, Path::new("t.wav"), &[Codec::Pcma, Codec::Opus])
                .expect("loads");
        let clip = ringback.clip(Codec::Opus).expect("encoded for Opus");
        assert_eq!(clip.samples_per_frame(), 960);
        assert_eq!(clip.len(), 10);
        assert!(ringback.clip(Codec::Pcmu).is_none());
    }

    #[test]
    fn player_loops_over_the_clip() {
        let tone = tone_i16(440.0, 8000, 480);
        let wav = wav_bytes(1, 1, 8000, 16, &pcm16(&tone));
        let ringback =
            Ringback::from_wav_bytes(&wav, Path::new("t.wav"), &[Codec::Pcmu]).expect("loads");
        let mut player = ringback.player(Codec::Pcmu).expect("PCMU clip");
        let first = player.next_frame().to_vec();
        player.next_frame();
        player.next_frame();
        assert_eq!(
            player.next_frame(),
            &first[..],
            "three frames, then the first again"
        );
    }

    #[test]
    fn missing_file_error_names_the_path() {
        let err = Ringback::load(Path::new("/nonexistent/ring.wav"), &[Codec::Pcmu]).unwrap_err();
        assert!(
            matches!(&err, PlaybackError::Io { path, .. } if path == Path::new("/nonexistent/ring.wav"))
        );
        assert!(err.to_string().contains("/nonexistent/ring.wav"));
    }

    #[test]
    fn unsupported_format_error_names_path_and_format() {
        // Format tag 2 is Microsoft ADPCM.
        let wav = wav_bytes(2, 1, 8000, 4, &[0; 100]);
        let err = decode_wav(&wav, Path::new("adpcm.wav")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("adpcm.wav") && text.contains("format tag 2"),
            "{text}"
        );
        let err = decode_wav(b"ID3\x03 not a wav file", Path::new("song.mp3")).unwrap_err();
        assert!(err.to_string().contains("song.mp3") && err.to_string().contains("ID3"));
    }
}
