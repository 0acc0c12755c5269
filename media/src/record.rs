//! Call recording: a stereo 16-bit PCM WAV, customer on the left channel, agent on the right,
//! written as it goes into any `Write + Seek` the caller gives (a file, in the runtime).
//!
//! Crash safety: after each [`StereoWavWriter::flush`] the RIFF and data chunk sizes in the
//! header are patched to cover everything written so far, so a process that dies later leaves a
//! file that plays up to that flush. The WAV header is 44 bytes of fixed layout, written here
//! directly: hound's writer patches sizes only when finalised.

use std::collections::VecDeque;
use std::io::{self, Seek, SeekFrom, Write};

use crate::codec::{Codec, CodecError, Decoder, MAX_FRAME_SAMPLES};
use crate::relay::Side;

const HEADER_LEN: u64 = 44;

/// Writes interleaved stereo 16-bit samples into a WAV file incrementally.
#[derive(Debug)]
pub struct StereoWavWriter<W: Write + Seek> {
    out: W,
    data_bytes: u32,
    scratch: Vec<u8>,
}

impl<W: Write + Seek> StereoWavWriter<W> {
    /// Writes the header (with empty sizes) at the start of `out`.
    pub fn new(mut out: W, sample_rate: u32) -> io::Result<StereoWavWriter<W>> {
        let channels: u16 = 2;
        let block_align: u16 = channels * 2;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(b"RIFF");
        header.extend_from_slice(&36u32.to_le_bytes());
        header.extend_from_slice(b"WAVEfmt ");
        header.extend_from_slice(&16u32.to_le_bytes());
        header.extend_from_slice(&1u16.to_le_bytes()); // PCM
        header.extend_from_slice(&channels.to_le_bytes());
        header.extend_from_slice(&sample_rate.to_le_bytes());
        header.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
        header.extend_from_slice(&block_align.to_le_bytes());
        header.extend_from_slice(&16u16.to_le_bytes());
        header.extend_from_slice(b"data");
        header.extend_from_slice(&0u32.to_le_bytes());
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&header)?;
        Ok(StereoWavWriter {
            out,
            data_bytes: 0,
            scratch: Vec::with_capacity(4 * 960),
        })
    }

    /// Appends frames: `left[i]` and `right[i]` make frame i; the shorter side is padded with
    /// silence.
    pub fn write(&mut self, left: &[i16], right: &[i16]) -> io::Result<()> {
        let frames = left.len().max(right.len());
        self.scratch.clear();
        for i in 0..frames {
            let l = left.get(i).copied().unwrap_or(0);
            let r = right.get(i).copied().unwrap_or(0);
            self.scratch.extend_from_slice(&l.to_le_bytes());
            self.scratch.extend_from_slice(&r.to_le_bytes());
        }
        // A WAV's data chunk cannot exceed 4 GiB; stop there rather than corrupt the header.
        let room = (u32::MAX - 36 - self.data_bytes) as usize & !3;
        let len = self.scratch.len().min(room);
        self.out.write_all(&self.scratch[..len])?;
        self.data_bytes += len as u32;
        Ok(())
    }

    /// Patches the header sizes to cover what is written and flushes `out`.
    pub fn flush(&mut self) -> io::Result<()> {
        let end = HEADER_LEN + u64::from(self.data_bytes);
        self.out.seek(SeekFrom::Start(4))?;
        self.out.write_all(&(36 + self.data_bytes).to_le_bytes())?;
        self.out.seek(SeekFrom::Start(40))?;
        self.out.write_all(&self.data_bytes.to_le_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()
    }

    /// Bytes of sample data written.
    pub fn data_bytes(&self) -> u32 {
        self.data_bytes
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush()?;
        Ok(self.out)
    }
}

/// Why a packet could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Writing the file failed.
    #[error("recording: {0}")]
    Io(#[from] io::Error),
    /// The payload did not decode.
    #[error("recording: {0}")]
    Codec(#[from] CodecError),
}

/// One side's decoder and the samples it has ready.
#[derive(Debug)]
struct Channel {
    decoder: Decoder,
    ready: VecDeque<i16>,
}

/// Records a call at 8 kHz: decodes each leg's payloads and writes them side by side.
///
/// The two sides are aligned by arrival: whenever both have samples, the common part is
/// written; when one side is silent (on mute, on hold) for more than `max_skew` samples, the
/// other is written against silence.
#[derive(Debug)]
pub struct Recorder<W: Write + Seek> {
    writer: StereoWavWriter<W>,
    channels: [Channel; 2],
    max_skew: usize,
    left: Vec<i16>,
    right: Vec<i16>,
    pcm: Vec<i16>,
}

impl<W: Write + Seek> Recorder<W> {
    /// A recorder for a call whose customer leg uses `customer` and agent leg `agent`.
    pub fn new(out: W, customer: Codec, agent: Codec) -> Result<Recorder<W>, RecordError> {
        let channel = |codec: Codec| -> Result<Channel, CodecError> {
            Ok(Channel {
                // Opus decodes straight to 8 kHz (libopus's own rate conversion).
                decoder: Decoder::with_rate(codec, 8000)?,
                ready: VecDeque::with_capacity(16000),
            })
        };
        Ok(Recorder {
            writer: StereoWavWriter::new(out, 8000)?,
            channels: [channel(customer)?, channel(agent)?],
            max_skew: 8000,
            left: Vec::with_capacity(16000),
            right: Vec::with_capacity(16000),
            pcm: vec![0; MAX_FRAME_SAMPLES],
        })
    }

    /// Decodes `side`'s payloads as `codec` from now on: the agent's codec once it answers, or
    /// either leg's after a re-INVITE changed it. Samples already decoded are kept.
    pub fn set_codec(&mut self, side: Side, codec: Codec) -> Result<(), RecordError> {
        let channel = &mut self.channels[match side {
            Side::Customer => 0,
            Side::Agent => 1,
        }];
        if channel.decoder.codec() != codec {
            channel.decoder = Decoder::with_rate(codec, 8000)?;
        }
        Ok(())
    }

    /// Adds one RTP payload (audio, not telephone-event) from `side`.
    pub fn push(&mut self, side: Side, payload: &[u8]) -> Result<(), RecordError> {
        let channel = &mut self.channels[match side {
            Side::Customer => 0,
            Side::Agent => 1,
        }];
        let n = channel.decoder.decode(payload, &mut self.pcm)?;
        let samples = &self.pcm[..n];
        channel.ready.extend(samples.iter().copied());
        self.drain(false)
    }

    fn drain(&mut self, all: bool) -> Result<(), RecordError> {
        let [a, b] = &mut self.channels;
        let (la, lb) = (a.ready.len(), b.ready.len());
        let common = la.min(lb);
        let ahead = la.max(lb) - common;
        let take = if all || ahead > self.max_skew {
            la.max(lb)
        } else {
            common
        };
        if take == 0 {
            return Ok(());
        }
        self.left.clear();
        self.right.clear();
        self.left.extend(a.ready.drain(..take.min(la)));
        self.right.extend(b.ready.drain(..take.min(lb)));
        self.writer.write(&self.left, &self.right)?;
        Ok(())
    }

    /// Patches the file header so everything so far plays even if the process dies.
    pub fn flush(&mut self) -> Result<(), RecordError> {
        Ok(self.writer.flush()?)
    }

    /// Writes what is left and returns the output.
    pub fn finish(mut self) -> Result<W, RecordError> {
        self.drain(true)?;
        Ok(self.writer.finish()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::g711::{self, Law};
    use std::io::Cursor;

    #[test]
    fn customer_is_left_and_agent_is_right() {
        let writer = StereoWavWriter::new(Cursor::new(Vec::new()), 8000).expect("in memory");
        let mut writer = writer;
        writer
            .write(&[100, 200, 300], &[-1, -2, -3])
            .expect("in memory");
        let bytes = writer.finish().expect("in memory").into_inner();
        let mut reader = hound::WavReader::new(Cursor::new(bytes)).expect("valid WAV");
        assert_eq!(reader.spec().channels, 2);
        assert_eq!(reader.spec().sample_rate, 8000);
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(samples, [100, -1, 200, -2, 300, -3]);
    }

    #[test]
    fn a_crash_after_a_flush_leaves_a_file_that_plays_up_to_the_flush() {
        let mut writer = StereoWavWriter::new(Cursor::new(Vec::new()), 8000).expect("in memory");
        writer.write(&[1; 160], &[2; 160]).expect("in memory");
        writer.flush().expect("in memory");
        writer.write(&[3; 160], &[4; 160]).expect("in memory");
        // The process dies here: no finish, no second flush. What is on disk is the buffer.
        let on_disk = writer.out.get_ref().clone();
        let mut reader = hound::WavReader::new(Cursor::new(on_disk)).expect("playable WAV");
        assert_eq!(reader.duration(), 160, "frames up to the last flush");
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(&samples[..2], &[1, 2]);
    }

    #[test]
    fn recorder_decodes_both_legs_side_by_side() {
        let mut recorder =
            Recorder::new(Cursor::new(Vec::new()), Codec::Pcmu, Codec::Pcma).expect("recorder");
        let loud = g711::encode_sample(Law::Mu, 8000);
        let quiet = g711::encode_sample(Law::A, -4000);
        for _ in 0..5 {
            recorder
                .push(Side::Customer, &[loud; 160])
                .expect("records");
            recorder.push(Side::Agent, &[quiet; 160]).expect("records");
        }
        let bytes = recorder.finish().expect("finishes").into_inner();
        let mut reader = hound::WavReader::new(Cursor::new(bytes)).expect("valid WAV");
        assert_eq!(reader.duration(), 800);
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert!((samples[0] - 8000).abs() < 300 && (samples[1] + 4000).abs() < 200);
    }

    #[test]
    fn a_codec_change_on_one_leg_decodes_its_later_packets_with_the_new_law() {
        let mut recorder =
            Recorder::new(Cursor::new(Vec::new()), Codec::Pcmu, Codec::Pcmu).expect("recorder");
        recorder
            .set_codec(Side::Agent, Codec::Pcma)
            .expect("G.711 needs no resources");
        let customer = g711::encode_sample(Law::Mu, 8000);
        let agent = g711::encode_sample(Law::A, -4000);
        recorder
            .push(Side::Customer, &[customer; 160])
            .expect("records");
        recorder.push(Side::Agent, &[agent; 160]).expect("records");
        let bytes = recorder.finish().expect("finishes").into_inner();
        let mut reader = hound::WavReader::new(Cursor::new(bytes)).expect("valid WAV");
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert!(
            (samples[1] + 4000).abs() < 200,
            "A-law decoded: {}",
            samples[1]
        );
    }
}
