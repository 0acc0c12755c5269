//! Audio fixtures generated with sox at test time, and a Goertzel tone detector over WAV files.
//!
//! The detector answers "which of these tones is this, and how pure": for each candidate
//! frequency it measures the Goertzel power over 200 ms blocks (a whole number of cycles of
//! every tone used here, 425/440/1000 Hz, at 8 and 48 kHz) and divides it by the block's energy.
//! For a pure sinusoid at the candidate frequency the share is 1; for silence, noise or another
//! tone it is near 0. Blocks are weighted by their energy, so silent gaps (the ringback's off
//! periods) neither help nor hurt.

use std::path::Path;
use std::process::Command;

use super::HarnessError;

/// The share of a window's energy one tone must hold to count as present.
pub const TONE_SHARE: f64 = 0.5;
/// RMS (full scale = 1.0) below which a window is silence: -40 dBFS.
pub const SILENCE_RMS: f64 = 0.01;
/// Detector block length in seconds.
pub const BLOCK_S: f64 = 0.2;

/// Mono PCM samples scaled to [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    /// Samples per second.
    pub rate: u32,
    /// The samples (the first channel of a multi-channel file).
    pub samples: Vec<f32>,
}

impl Pcm {
    /// Reads a WAV file (integer or float samples, any channel count: the first is kept).
    pub fn read_wav(path: &Path) -> Result<Pcm, HarnessError> {
        let mut reader = hound::WavReader::open(path)
            .map_err(|e| HarnessError::Peer(format!("reading WAV {}: {e}", path.display())))?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels.max(1));
        let bad = |e: hound::Error| HarnessError::Peer(format!("WAV {}: {e}", path.display()));
        let all: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader
                .samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(bad)?,
            hound::SampleFormat::Int => {
                let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample.clamp(1, 32) - 1));
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|v| (f64::from(v) * scale) as f32))
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
        };
        Ok(Pcm {
            rate: spec.sample_rate,
            samples: all.into_iter().step_by(channels).collect(),
        })
    }

    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate.max(1))
    }

    /// The samples between `from_s` and `to_s` (clamped to the signal).
    pub fn window(&self, from_s: f64, to_s: f64) -> &[f32] {
        let at = |s: f64| ((s.max(0.0) * f64::from(self.rate)) as usize).min(self.samples.len());
        let (from, to) = (at(from_s), at(to_s));
        &self.samples[from..to.max(from)]
    }
}

/// Goertzel power of `freq` over `samples`, scaled so a full-block sinusoid of amplitude A
/// gives A²·N/2 — the same scale as the block's energy Σx² of that sinusoid.
pub fn goertzel_power(samples: &[f32], rate: u32, freq: f64) -> f64 {
    let n = samples.len();
    if n == 0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let magnitude2 = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * magnitude2 / n as f64
}

fn energy(samples: &[f32]) -> f64 {
    samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum()
}

/// The share of the energy of `samples` that is at `freq` (0..=1, energy-weighted over blocks).
pub fn tone_share(samples: &[f32], rate: u32, freq: f64) -> f64 {
    let block = ((BLOCK_S * f64::from(rate)) as usize).max(1);
    let (mut tone, mut total) = (0.0, 0.0);
    for chunk in samples.chunks(block) {
        tone += goertzel_power(chunk, rate, freq);
        total += energy(chunk);
    }
    if total <= f64::EPSILON {
        0.0
    } else {
        (tone / total).min(1.0)
    }
}

/// RMS of `samples` (full scale 1.0).
pub fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        0.0
    } else {
        (energy(samples) / samples.len() as f64).sqrt()
    }
}

/// The candidate holding the largest share of the file's energy, with that share.
pub fn dominant_tone(wav: &Path, candidates: &[f64]) -> Result<(f64, f64), HarnessError> {
    let pcm = Pcm::read_wav(wav)?;
    Ok(dominant_in(&pcm.samples, pcm.rate, candidates))
}

/// [`dominant_tone`] over samples.
pub fn dominant_in(samples: &[f32], rate: u32, candidates: &[f64]) -> (f64, f64) {
    candidates
        .iter()
        .map(|&f| (f, tone_share(samples, rate, f)))
        .fold((0.0, 0.0), |best, c| if c.1 > best.1 { c } else { best })
}

/// Whether `freq` holds at least [`TONE_SHARE`] of the energy between `from_s` and `to_s`, and
/// that window is not silence.
pub fn tone_present(wav: &Path, freq: f64, from_s: f64, to_s: f64) -> Result<bool, HarnessError> {
    let pcm = Pcm::read_wav(wav)?;
    Ok(tone_present_in(&pcm, freq, from_s, to_s))
}

/// [`tone_present`] over samples.
pub fn tone_present_in(pcm: &Pcm, freq: f64, from_s: f64, to_s: f64) -> bool {
    let window = pcm.window(from_s, to_s);
    rms(window) >= SILENCE_RMS && tone_share(window, pcm.rate, freq) >= TONE_SHARE
}

/// For each [`BLOCK_S`] block: its start time and the candidate holding at least
/// [`TONE_SHARE`] of it, or `None` for silence or anything else.
pub fn tone_timeline(pcm: &Pcm, candidates: &[f64]) -> Vec<(f64, Option<f64>)> {
    let block = ((BLOCK_S * f64::from(pcm.rate)) as usize).max(1);
    pcm.samples
        .chunks(block)
        .enumerate()
        .map(|(i, chunk)| {
            let start = (i * block) as f64 / f64::from(pcm.rate);
            if rms(chunk) < SILENCE_RMS {
                return (start, None);
            }
            let (f, share) = dominant_in(chunk, pcm.rate, candidates);
            (start, (share >= TONE_SHARE).then_some(f))
        })
        .collect()
}

/// The start of the first block where `freq` is the tone, per [`tone_timeline`].
pub fn first_block_with(timeline: &[(f64, Option<f64>)], freq: f64) -> Option<f64> {
    timeline
        .iter()
        .find(|(_, f)| *f == Some(freq))
        .map(|(t, _)| *t)
}

fn sox(args: &[&str], what: &Path) -> Result<(), HarnessError> {
    let out = Command::new("sox")
        .args(args)
        .output()
        .map_err(|e| HarnessError::Setup(format!("running sox (Debian package sox): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!(
            "sox {args:?} for {} failed: {}",
            what.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn path_str(path: &Path) -> Result<&str, HarnessError> {
    path.to_str()
        .ok_or_else(|| HarnessError::Setup(format!("non-UTF-8 path {}", path.display())))
}

/// A 16-bit mono WAV of a `freq` Hz sine at half scale (-6 dBFS), `secs` long.
pub fn tone_wav(path: &Path, freq: u32, secs: u32, rate: u32) -> Result<(), HarnessError> {
    tone_wav_channels(path, freq, secs, rate, 1)
}

/// [`tone_wav`] with `channels` identical channels (baresip's aufile source must match the
/// codec's rate and channel count: 48 kHz stereo for `opus/48000/2`).
pub fn tone_wav_channels(
    path: &Path,
    freq: u32,
    secs: u32,
    rate: u32,
    channels: u16,
) -> Result<(), HarnessError> {
    let (f, s, r, c) = (
        freq.to_string(),
        secs.to_string(),
        rate.to_string(),
        channels.to_string(),
    );
    let p = path_str(path)?;
    sox(
        &[
            "-n", "-r", &r, "-c", &c, "-b", "16", p, "synth", &s, "sine", &f, "vol", "0.5",
        ],
        path,
    )
}

/// A European ringback-like 8 kHz mono WAV: 425 Hz for 1 s, then 4 s of silence, `cycles` times.
pub fn ringback_wav(path: &Path, cycles: u32) -> Result<(), HarnessError> {
    let p = path_str(path)?;
    let repeats = cycles.saturating_sub(1).to_string();
    sox(
        &[
            "-n", "-r", "8000", "-c", "1", "-b", "16", p, "synth", "1", "sine", "425", "vol",
            "0.5", "pad", "0", "4", "repeat", &repeats,
        ],
        path,
    )
}

/// G.711 law of a raw fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// A-law, RTP payload type 8 (PCMA).
    A,
    /// µ-law, RTP payload type 0 (PCMU).
    Mu,
}

/// A headerless G.711 file of a `freq` Hz sine, 8 kHz mono, `secs` long: what SIPp 3.6's
/// `rtp_stream` sends as-is, 160 bytes per 20 ms packet (it does not parse WAV headers, so a
/// `.wav` file would put the header bytes on the wire).
pub fn g711_raw(path: &Path, law: Law, freq: u32, secs: u32) -> Result<(), HarnessError> {
    let (f, s) = (freq.to_string(), secs.to_string());
    let kind = match law {
        Law::A => "al",
        Law::Mu => "ul",
    };
    let p = path_str(path)?;
    sox(
        &[
            "-n", "-r", "8000", "-c", "1", "-t", kind, p, "synth", &s, "sine", &f, "vol", "0.5",
        ],
        path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::TestDir;

    fn sine(freq: f64, rate: u32, secs: f64, amplitude: f32) -> Vec<f32> {
        (0..(secs * f64::from(rate)) as usize)
            .map(|i| {
                amplitude
                    * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32
            })
            .collect()
    }

    #[test]
    fn a_pure_tone_holds_nearly_all_its_energy() {
        for freq in [425.0, 440.0, 1000.0] {
            let s = sine(freq, 8000, 1.0, 0.5);
            let share = tone_share(&s, 8000, freq);
            assert!(share > 0.95, "{freq} Hz share {share}");
        }
    }

    #[test]
    fn a_neighbouring_tone_is_not_mistaken() {
        let s = sine(440.0, 8000, 1.0, 0.5);
        assert!(tone_share(&s, 8000, 425.0) < 0.1);
        assert!(tone_share(&s, 8000, 1000.0) < 0.01);
        assert_eq!(dominant_in(&s, 8000, &[425.0, 440.0, 1000.0]).0, 440.0);
    }

    #[test]
    fn silence_has_no_tone() {
        let pcm = Pcm {
            rate: 8000,
            samples: vec![0.0; 8000],
        };
        assert!(!tone_present_in(&pcm, 440.0, 0.0, 1.0));
        assert_eq!(dominant_in(&pcm.samples, 8000, &[440.0]).1, 0.0);
        assert!(tone_timeline(&pcm, &[440.0])
            .iter()
            .all(|(_, f)| f.is_none()));
    }

    #[test]
    fn timeline_shows_a_tone_change_in_order() {
        let mut samples = sine(425.0, 8000, 1.0, 0.5);
        samples.extend(sine(1000.0, 8000, 1.0, 0.5));
        let pcm = Pcm {
            rate: 8000,
            samples,
        };
        let timeline = tone_timeline(&pcm, &[425.0, 1000.0]);
        let ring = first_block_with(&timeline, 425.0).expect("425 Hz found");
        let agent = first_block_with(&timeline, 1000.0).expect("1000 Hz found");
        assert_eq!(ring, 0.0);
        assert!((agent - 1.0).abs() < 1e-9, "1000 Hz starts at {agent}");
    }

    #[test]
    fn generated_fixtures_carry_their_tones() {
        crate::interop::require_tools(&["sox"]).expect("sox installed");
        let dir = TestDir::new("audio").expect("temp dir");
        let tone = dir.join("tone1000.wav");
        tone_wav(&tone, 1000, 2, 8000).expect("sox tone");
        let (f, share) = dominant_tone(&tone, &[425.0, 440.0, 1000.0]).unwrap();
        assert_eq!(f, 1000.0);
        assert!(share > 0.9, "share {share}");
        assert!(tone_present(&tone, 1000.0, 0.5, 1.5).unwrap());
        assert!(!tone_present(&tone, 440.0, 0.5, 1.5).unwrap());

        let ring = dir.join("ringback.wav");
        ringback_wav(&ring, 2).expect("sox ringback");
        let pcm = Pcm::read_wav(&ring).unwrap();
        assert!(
            (pcm.duration_s() - 10.0).abs() < 0.01,
            "{}",
            pcm.duration_s()
        );
        assert!(tone_present_in(&pcm, 425.0, 0.0, 1.0));
        assert!(
            !tone_present_in(&pcm, 425.0, 1.2, 4.8),
            "off period is silent"
        );
        assert!(tone_present_in(&pcm, 425.0, 5.0, 6.0), "second cycle");

        let raw = dir.join("tone440.al");
        g711_raw(&raw, Law::A, 440, 1).expect("sox alaw");
        assert_eq!(
            std::fs::metadata(&raw).unwrap().len(),
            8000,
            "1 s of 8 kHz A-law"
        );
    }
}
