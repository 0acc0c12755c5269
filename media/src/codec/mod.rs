//! Audio codecs on the transcoding path: G.711 (table driven), Opus (libopus through audiopus),
//! 8 <-> 48 kHz resampling, and packet-loss concealment.
//!
//! Opus runs mono (decoding a stereo stream into a mono decoder downmixes it, which is what a
//! phone call wants), at 48 kHz by default and at 8 kHz when the other side of a
//! [`Transcoder`] is G.711: libopus encodes and decodes 8 kHz PCM directly (RFC 6716 §2: the
//! API rates are 8, 12, 16, 24 and 48 kHz), so the G.711 <-> Opus path needs no resampler, and
//! an 8 kHz source has nothing above 4 kHz to lose. The RTP clock of Opus stays 48 kHz whatever
//! the PCM rate (RFC 7587 §4.1): timestamps are scaled by the caller, and [`Transcoder`]
//! reports durations at the RTP clock.

pub mod g711;
pub mod resample;

use audiopus::coder::{Decoder as OpusDecoder, Encoder as OpusEncoder};
use audiopus::{Application, Channels, SampleRate};

pub use crate::sdp::Codec;
use g711::Law;
use resample::{Downsampler, Upsampler};

/// The longest Opus packet, 120 ms at 48 kHz (RFC 6716 §3.2.1): the size of decode buffers.
pub const MAX_FRAME_SAMPLES: usize = 5760;
/// Concealment stops after this many consecutive lost frames; longer gaps are silence, since
/// stretching 60 ms of speech further only produces a drone.
const MAX_CONCEALED_FRAMES: u32 = 3;

/// Why audio could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// libopus refused the packet or the parameters.
    #[error("opus: {0}")]
    Opus(String),
    /// Opus frames are 2.5, 5, 10, 20, 40 or 60 ms (RFC 6716 §2.1.4); this is not one.
    #[error("{0} samples at 48 kHz is not an Opus frame duration")]
    FrameDuration(usize),
    /// The output buffer is too small.
    #[error("output buffer too small")]
    BufferTooSmall,
}

impl From<audiopus::Error> for CodecError {
    fn from(error: audiopus::Error) -> Self {
        CodecError::Opus(error.to_string())
    }
}

impl Codec {
    /// The sample rate the codec's decoder produces and its encoder takes by default (see
    /// [`Decoder::with_rate`] for Opus at 8 kHz).
    pub fn pcm_rate(self) -> u32 {
        self.clock_rate()
    }

    fn law(self) -> Option<Law> {
        match self {
            Codec::Pcmu => Some(Law::Mu),
            Codec::Pcma => Some(Law::A),
            Codec::Opus => None,
        }
    }
}

fn opus_rate(rate: u32) -> Result<SampleRate, CodecError> {
    Ok(match rate {
        8000 => SampleRate::Hz8000,
        12000 => SampleRate::Hz12000,
        16000 => SampleRate::Hz16000,
        24000 => SampleRate::Hz24000,
        48000 => SampleRate::Hz48000,
        _ => {
            return Err(CodecError::Opus(format!(
                "{rate} Hz is not an Opus API rate"
            )))
        }
    })
}

/// Decodes one incoming stream and conceals its lost packets.
#[derive(Debug)]
pub struct Decoder {
    codec: Codec,
    rate: u32,
    opus: Option<OpusDecoder>,
    /// The last decoded frame, repeated with a fade to conceal G.711 loss.
    last: Vec<i16>,
    last_len: usize,
    concealed: u32,
}

impl Decoder {
    /// A decoder for `codec` at [`Codec::pcm_rate`].
    pub fn new(codec: Codec) -> Result<Decoder, CodecError> {
        Decoder::with_rate(codec, codec.pcm_rate())
    }

    /// A decoder for `codec` producing `rate` Hz: for Opus any of 8, 12, 16, 24 or 48 kHz
    /// (libopus decodes every stream at any of them); G.711 is always 8 kHz.
    pub fn with_rate(codec: Codec, rate: u32) -> Result<Decoder, CodecError> {
        let (opus, rate) = match codec {
            Codec::Opus => (
                Some(OpusDecoder::new(opus_rate(rate)?, Channels::Mono)?),
                rate,
            ),
            Codec::Pcmu | Codec::Pcma => (None, 8000),
        };
        Ok(Decoder {
            codec,
            rate,
            opus,
            last: vec![0; MAX_FRAME_SAMPLES],
            last_len: 0,
            concealed: 0,
        })
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The PCM rate it decodes to.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Decodes one RTP payload into `out` at [`Decoder::rate`]; returns the sample count.
    pub fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        self.concealed = 0;
        let n = match (&mut self.opus, self.codec.law()) {
            (Some(opus), _) => opus.decode(Some(payload), &mut out[..], false)?,
            (None, Some(law)) => {
                if out.len() < payload.len() {
                    return Err(CodecError::BufferTooSmall);
                }
                g711::decode(law, payload, out)
            }
            (None, None) => unreachable!("an Opus decoder is created for Codec::Opus"),
        };
        if self.codec.law().is_some() {
            let keep = n.min(self.last.len());
            self.last[..keep].copy_from_slice(&out[..keep]);
            self.last_len = keep;
        }
        Ok(n)
    }

    /// Produces `samples` of concealment for one lost packet: Opus's own PLC (decoding with no
    /// packet, RFC 6716 §4.4), or for G.711 the last frame again, fading to silence over two
    /// frames. After three lost frames in a row the output is silence.
    pub fn conceal(&mut self, samples: usize, out: &mut [i16]) -> Result<usize, CodecError> {
        let samples = samples.min(out.len());
        self.concealed += 1;
        if self.concealed > MAX_CONCEALED_FRAMES {
            out[..samples].fill(0);
            return Ok(samples);
        }
        if let Some(opus) = &mut self.opus {
            return Ok(opus.decode(None::<&[u8]>, &mut out[..samples], false)?);
        }
        let len = self.last_len;
        if len == 0 {
            out[..samples].fill(0);
            return Ok(samples);
        }
        // Gain falls linearly from (1 - (k-1)/2) to (1 - k/2) across the k-th lost frame.
        let start = 1.0 - (self.concealed - 1) as f32 * 0.5;
        let step = 0.5 / samples as f32;
        for (i, o) in out[..samples].iter_mut().enumerate() {
            let gain = (start - step * i as f32).max(0.0);
            *o = (f32::from(self.last[i % len]) * gain) as i16;
        }
        Ok(samples)
    }
}

/// Encodes one outgoing stream.
#[derive(Debug)]
pub struct Encoder {
    codec: Codec,
    rate: u32,
    opus: Option<OpusEncoder>,
}

impl Encoder {
    /// An encoder for `codec`. Opus is set for speech (`Application::Voip`) with in-band FEC,
    /// as our SDP advertises `useinbandfec=1`.
    pub fn new(codec: Codec) -> Result<Encoder, CodecError> {
        Encoder::with_rate(codec, codec.pcm_rate())
    }

    /// An encoder for `codec` taking `rate` Hz PCM: for Opus any of 8, 12, 16, 24 or 48 kHz
    /// (at 8 kHz libopus codes narrowband SILK directly); G.711 is always 8 kHz.
    pub fn with_rate(codec: Codec, rate: u32) -> Result<Encoder, CodecError> {
        let (opus, rate) = match codec {
            Codec::Opus => {
                let mut encoder =
                    OpusEncoder::new(opus_rate(rate)?, Channels::Mono, Application::Voip)?;
                encoder.set_inband_fec(true)?;
                encoder.set_packet_loss_perc(5)?;
                // Complexity 3 and a narrowband ceiling: this encoder's input is 8 kHz G.711
                // or an 8 kHz prompt, so there is nothing above 4 kHz to code. Measured in
                // benches/media.rs (20 ms from PCMU): 48 kHz input at complexity 5, 58 us;
                // 8 kHz input at 5, 38 us; at 3, 31 us, with this module's tone and level tests holding.
                encoder.set_complexity(3)?;
                encoder.set_max_bandwidth(audiopus::Bandwidth::Narrowband)?;
                (Some(encoder), rate)
            }
            Codec::Pcmu | Codec::Pcma => (None, 8000),
        };
        Ok(Encoder { codec, rate, opus })
    }

    /// The PCM rate it takes.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes `pcm` (at [`Encoder::rate`]) into one RTP payload; returns its length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        match (&mut self.opus, self.codec.law()) {
            (Some(opus), _) => {
                // 2.5, 5, 10, 20, 40 or 60 ms (RFC 6716 §2.1.4).
                let per_2_5_ms = self.rate as usize / 400;
                if ![1, 2, 4, 8, 16, 24]
                    .iter()
                    .any(|&k| k * per_2_5_ms == pcm.len())
                {
                    return Err(CodecError::FrameDuration(
                        pcm.len() * 48000 / self.rate as usize,
                    ));
                }
                Ok(opus.encode(pcm, out)?)
            }
            (None, Some(law)) => {
                if out.len() < pcm.len() {
                    return Err(CodecError::BufferTooSmall);
                }
                Ok(g711::encode(law, pcm, out))
            }
            (None, None) => unreachable!("an Opus encoder is created for Codec::Opus"),
        }
    }
}

/// Converts one stream's payloads from one codec to another, keeping the packet duration.
#[derive(Debug)]
pub struct Transcoder {
    decoder: Decoder,
    encoder: Encoder,
    up: Option<Upsampler>,
    down: Option<Downsampler>,
    decoded: Vec<i16>,
    converted: Vec<i16>,
}

impl Transcoder {
    /// A transcoder from `from` to `to`. Between Opus and G.711 libopus runs at 8 kHz, so no
    /// resampling is done (see the module docs); the resamplers serve a decoder and encoder
    /// whose rates differ, which [`Transcoder::with_rates`] allows.
    pub fn new(from: Codec, to: Codec) -> Result<Transcoder, CodecError> {
        let rate = if from == Codec::Opus && to == Codec::Opus {
            48000
        } else {
            8000
        };
        Transcoder::with_rates(from, rate, to, rate)
    }

    /// A transcoder decoding `from` at `from_rate` and encoding `to` at `to_rate`; the rates
    /// are equal, or 8 and 48 kHz either way (the polyphase FIR of [`resample`]).
    pub fn with_rates(
        from: Codec,
        from_rate: u32,
        to: Codec,
        to_rate: u32,
    ) -> Result<Transcoder, CodecError> {
        let decoder = Decoder::with_rate(from, from_rate)?;
        let encoder = Encoder::with_rate(to, to_rate)?;
        let (up, down) = match (decoder.rate(), encoder.rate()) {
            (8000, 48000) => (Some(Upsampler::new()), None),
            (48000, 8000) => (None, Some(Downsampler::new())),
            (a, b) if a == b => (None, None),
            (a, b) => {
                return Err(CodecError::Opus(format!(
                    "no resampler from {a} Hz to {b} Hz"
                )))
            }
        };
        Ok(Transcoder {
            decoder,
            encoder,
            up,
            down,
            decoded: vec![0; MAX_FRAME_SAMPLES],
            converted: vec![0; MAX_FRAME_SAMPLES],
        })
    }

    /// The source codec.
    pub fn from(&self) -> Codec {
        self.decoder.codec()
    }

    /// The target codec.
    pub fn to(&self) -> Codec {
        self.encoder.codec()
    }

    /// Transcodes one payload into `out`; returns (payload length, duration in the target's
    /// RTP clock units).
    pub fn transcode(
        &mut self,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, usize), CodecError> {
        let n = self.decoder.decode(payload, &mut self.decoded)?;
        self.finish(n, out)
    }

    /// Encodes concealment for one lost packet lasting `source_samples` of the source's RTP
    /// clock.
    pub fn conceal(
        &mut self,
        source_samples: usize,
        out: &mut [u8],
    ) -> Result<(usize, usize), CodecError> {
        let clock = self.decoder.codec().clock_rate() as usize;
        let samples = source_samples * self.decoder.rate() as usize / clock;
        let n = self.decoder.conceal(samples, &mut self.decoded)?;
        self.finish(n, out)
    }

    fn finish(&mut self, n: usize, out: &mut [u8]) -> Result<(usize, usize), CodecError> {
        let pcm: &[i16] = if let Some(up) = &mut self.up {
            let m = up.process(
                &self.decoded[..n.min(MAX_FRAME_SAMPLES / 6)],
                &mut self.converted,
            );
            &self.converted[..m]
        } else if let Some(down) = &mut self.down {
            let m = down.process(&self.decoded[..n], &mut self.converted);
            &self.converted[..m]
        } else {
            &self.decoded[..n]
        };
        let len = self.encoder.encode(pcm, out)?;
        let clock = self.encoder.codec().clock_rate() as usize;
        Ok((len, pcm.len() * clock / self.encoder.rate() as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speechlike(len: usize, rate: f64) -> Vec<i16> {
        (0..len)
            .map(|n| {
                let t = n as f64 / rate;
                (6000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()
                    + 3000.0 * (2.0 * std::f64::consts::PI * 1250.0 * t).sin())
                    as i16
            })
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn opus_round_trip_keeps_the_signal_level() {
        let pcm = speechlike(48000, 48000.0);
        let mut encoder = Encoder::new(Codec::Opus).expect("libopus encoder");
        let mut decoder = Decoder::new(Codec::Opus).expect("libopus decoder");
        let mut packet = [0u8; 1500];
        let mut out = vec![0i16; MAX_FRAME_SAMPLES];
        let mut decoded = Vec::new();
        for frame in pcm.chunks(960) {
            let len = encoder.encode(frame, &mut packet).expect("encodes");
            let n = decoder.decode(&packet[..len], &mut out).expect("decodes");
            assert_eq!(n, 960);
            decoded.extend_from_slice(&out[..n]);
        }
        let ratio = rms(&decoded[9600..]) / rms(&pcm[9600..]);
        assert!((0.7..1.3).contains(&ratio), "level ratio {ratio}");
    }

    #[test]
    fn opus_rejects_a_30_ms_frame() {
        let mut encoder = Encoder::new(Codec::Opus).expect("libopus encoder");
        let mut packet = [0u8; 1500];
        assert_eq!(
            encoder.encode(&[0; 1440], &mut packet),
            Err(CodecError::FrameDuration(1440))
        );
    }

    #[test]
    fn garbage_opus_packet_is_an_error_not_a_panic() {
        let mut decoder = Decoder::new(Codec::Opus).expect("libopus decoder");
        let mut out = vec![0i16; MAX_FRAME_SAMPLES];
        // TOC code 3 with a frame count of 0 is invalid (RFC 6716 §3.2.5).
        assert!(decoder.decode(&[0x03, 0x00], &mut out).is_err());
    }

    #[test]
    fn g711_concealment_repeats_then_fades_to_silence() {
        let mut decoder = Decoder::new(Codec::Pcmu).expect("no resources needed");
        let frame: Vec<u8> = speechlike(160, 8000.0)
            .iter()
            .map(|&s| g711::encode_sample(Law::Mu, s))
            .collect();
        let mut out = [0i16; 160];
        decoder.decode(&frame, &mut out).expect("decodes");
        let original = rms(&out);
        let mut levels = Vec::new();
        for _ in 0..4 {
            decoder.conceal(160, &mut out).expect("conceals");
            levels.push(rms(&out) / original);
        }
        assert!(levels[0] > 0.6 && levels[0] < 1.0, "{levels:?}");
        assert!(levels[1] < levels[0] && levels[1] > 0.05, "{levels:?}");
        assert_eq!(levels[2], 0.0, "{levels:?}");
        assert_eq!(levels[3], 0.0, "{levels:?}");
    }

    #[test]
    fn opus_concealment_produces_a_frame() {
        let mut encoder = Encoder::new(Codec::Opus).expect("encoder");
        let mut decoder = Decoder::new(Codec::Opus).expect("decoder");
        let pcm = speechlike(960 * 10, 48000.0);
        let mut packet = [0u8; 1500];
        let mut out = vec![0i16; MAX_FRAME_SAMPLES];
        for frame in pcm.chunks(960) {
            let len = encoder.encode(frame, &mut packet).expect("encodes");
            decoder.decode(&packet[..len], &mut out).expect("decodes");
        }
        let n = decoder.conceal(960, &mut out).expect("conceals");
        assert_eq!(n, 960);
        assert!(rms(&out[..n]) > 100.0, "PLC continues the signal");
    }

    #[test]
    fn pcmu_to_opus_and_back_keeps_the_signal() {
        let pcm = speechlike(8000, 8000.0);
        let ulaw: Vec<u8> = pcm
            .iter()
            .map(|&s| g711::encode_sample(Law::Mu, s))
            .collect();
        let mut to_opus = Transcoder::new(Codec::Pcmu, Codec::Opus).expect("transcoder");
        let mut to_pcmu = Transcoder::new(Codec::Opus, Codec::Pcmu).expect("transcoder");
        let mut opus = [0u8; 1500];
        let mut back = [0u8; 1500];
        let mut result = Vec::new();
        for frame in ulaw.chunks(160) {
            let (len, samples) = to_opus.transcode(frame, &mut opus).expect("to opus");
            assert_eq!(samples, 960);
            let (len, samples) = to_pcmu.transcode(&opus[..len], &mut back).expect("to pcmu");
            assert_eq!((len, samples), (160, 160));
            result.extend(back[..len].iter().map(|&c| g711::decode_sample(Law::Mu, c)));
        }
        let ratio = rms(&result[2000..]) / rms(&pcm[2000..]);
        assert!((0.7..1.3).contains(&ratio), "level ratio {ratio}");
    }

    /// Power of `x` at `hz` (Goertzel), for checking a tone survives.
    fn power_at(x: &[i16], hz: f64, rate: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * hz / rate;
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s0 = f64::from(v) + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
    }

    fn tone(hz: f64, len: usize, rate: f64) -> Vec<i16> {
        (0..len)
            .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * hz * n as f64 / rate).sin()) as i16)
            .collect()
    }

    #[test]
    fn g711_to_opus_runs_libopus_at_8_khz_and_a_48_khz_receiver_hears_the_tone() {
        let mut to_opus = Transcoder::new(Codec::Pcmu, Codec::Opus).expect("transcoder");
        assert_eq!(
            (to_opus.decoder.rate(), to_opus.encoder.rate()),
            (8000, 8000)
        );
        assert!(
            to_opus.up.is_none() && to_opus.down.is_none(),
            "no resampler"
        );
        // The softphone decodes at 48 kHz, as most do.
        let mut far_end = Decoder::new(Codec::Opus).expect("decoder");
        let pcm = tone(1000.0, 8000, 8000.0);
        let mut packet = [0u8; 1500];
        let mut out = vec![0i16; MAX_FRAME_SAMPLES];
        let mut heard = Vec::new();
        for frame in pcm.chunks(160) {
            let ulaw: Vec<u8> = frame
                .iter()
                .map(|&s| g711::encode_sample(Law::Mu, s))
                .collect();
            let (len, duration) = to_opus.transcode(&ulaw, &mut packet).expect("encodes");
            assert_eq!(
                duration, 960,
                "20 ms in Opus's 48 kHz RTP clock (RFC 7587 §4.1)"
            );
            let n = far_end.decode(&packet[..len], &mut out).expect("decodes");
            assert_eq!(n, 960);
            heard.extend_from_slice(&out[..n]);
        }
        let settled = &heard[9600..];
        let ratio = rms(settled) / rms(&pcm[1600..]);
        assert!((0.7..1.3).contains(&ratio), "level ratio {ratio}");
        let at_tone = power_at(settled, 1000.0, 48000.0);
        assert!(at_tone > 100.0 * power_at(settled, 1500.0, 48000.0));
        assert!(at_tone > 100.0 * power_at(settled, 3000.0, 48000.0));
    }

    #[test]
    fn opus_from_a_48_khz_sender_is_decoded_at_8_khz_to_g711_with_the_tone_intact() {
        let mut sender = Encoder::new(Codec::Opus).expect("encoder");
        let mut to_pcma = Transcoder::new(Codec::Opus, Codec::Pcma).expect("transcoder");
        assert_eq!(to_pcma.decoder.rate(), 8000);
        let pcm = tone(440.0, 48000, 48000.0);
        let mut packet = [0u8; 1500];
        let mut alaw = [0u8; 1500];
        let mut heard = Vec::new();
        for frame in pcm.chunks(960) {
            let len = sender.encode(frame, &mut packet).expect("encodes");
            let (n, duration) = to_pcma
                .transcode(&packet[..len], &mut alaw)
                .expect("decodes");
            assert_eq!((n, duration), (160, 160));
            heard.extend(alaw[..n].iter().map(|&c| g711::decode_sample(Law::A, c)));
        }
        let settled = &heard[1600..];
        let ratio = rms(settled) / rms(&pcm[9600..]);
        assert!((0.7..1.3).contains(&ratio), "level ratio {ratio}");
        assert!(power_at(settled, 440.0, 8000.0) > 100.0 * power_at(settled, 1200.0, 8000.0));
        // Concealment is asked for in the source's RTP clock: 960 is 20 ms, 160 samples here.
        let (n, duration) = to_pcma.conceal(960, &mut alaw).expect("conceals");
        assert_eq!((n, duration), (160, 160));
    }
}
