//! DTMF: RFC 4733 telephone-event payloads read and generated, digits collected from event
//! streams, and the ITU-T Q.23 tone pairs generated as PCM for legs that carry DTMF in-band
//! and found again in PCM ([`ToneDetector`]).
//!
//! Everything here is arithmetic on its inputs: the caller says when packets are due and
//! which timestamps they carry ([`crate::relay::Relay::send_digit`] does, per leg).

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    /// Event code: 0-9 digits, 10 `*`, 11 `#`, 12-15 A-D, 16 flash (RFC 4733 §3.2).
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0..=63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

/// A telephone-event payload shorter than its 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("telephone-event payload of {0} bytes, expected at least 4")]
pub struct EventPayloadError(pub usize);

impl EventPayload {
    /// Reads the first event of a payload (RFC 4733 §2.3 layout).
    pub fn parse(payload: &[u8]) -> Result<EventPayload, EventPayloadError> {
        if payload.len() < 4 {
            return Err(EventPayloadError(payload.len()));
        }
        Ok(EventPayload {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3f,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    /// The DTMF character for the event, if it is one of 0-9, *, #, A-D.
    pub fn digit(&self) -> Option<char> {
        const DIGITS: &[u8; 16] = b"0123456789*#ABCD";
        DIGITS.get(usize::from(self.event)).map(|&d| char::from(d))
    }
}

/// A completed event: the digit and its final duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    /// Event code.
    pub event: u8,
    /// Final duration in timestamp units, every segment of a long event included
    /// (RFC 4733 §2.5.1.3).
    pub duration: u32,
    /// RTP timestamp of the event (its start, RFC 4733 §2.5.1.2).
    pub timestamp: u32,
}

/// Collects digits from telephone-event packets, counting each event once although its end
/// packet is sent three times (RFC 4733 §2.5.1.4), and a long event once although it comes
/// in segments (§2.5.1.3).
#[derive(Debug, Default, Clone)]
pub struct DigitCollector {
    /// The event being reported: its segment's timestamp and latest payload.
    current: Option<(u32, EventPayload)>,
    /// Where the event started and the duration of its earlier segments.
    origin: Option<(u32, u32)>,
    finished_timestamp: Option<u32>,
}

impl DigitCollector {
    /// Feeds one packet's timestamp and payload; returns a digit when an event ends.
    pub fn push(&mut self, timestamp: u32, payload: &EventPayload) -> Option<Digit> {
        if self.finished_timestamp == Some(timestamp) {
            return None; // a retransmitted end packet
        }
        // RFC 4733 §2.5.1.3: a segment of the same event starting where the running one
        // reaches the largest duration the field holds carries the same press on (even when
        // the packet reporting 0xFFFF was lost).
        let (start, earlier) = match (self.current, self.origin) {
            (Some((ts, cur)), Some((start, earlier)))
                if cur.event == payload.event
                    && timestamp == ts.wrapping_add(u32::from(u16::MAX)) =>
            {
                (start, earlier + u32::from(u16::MAX))
            }
            (Some((ts, _)), Some(origin)) if ts == timestamp => origin,
            _ => (timestamp, 0),
        };
        self.origin = Some((start, earlier));
        if payload.end {
            self.current = None;
            self.origin = None;
            self.finished_timestamp = Some(timestamp);
            return Some(Digit {
                event: payload.event,
                duration: earlier + u32::from(payload.duration),
                timestamp: start,
            });
        }
        self.current = Some((timestamp, *payload));
        None
    }
}

/// Carries telephone-events from a leg whose event clock differs from the receiving leg's
/// (telephone-event/8000 with G.711 on one side, /48000 with Opus on the other): the duration
/// field is counted in the event clock (RFC 4733 §2.3.5), so passing it on unchanged would
/// make a 100 ms key 17 ms long. Each packet's duration so far, every earlier segment of the
/// event included, is rescaled and written out in the receiving clock's own segments
/// (§2.5.1.3), so a press longer than 0xFFFF units of the faster clock is not cut.
#[derive(Debug, Default, Clone)]
pub struct EventClockBridge {
    current: Option<BridgedEvent>,
}

#[derive(Debug, Clone, Copy)]
struct BridgedEvent {
    event: u8,
    /// The event's first timestamp and the current segment's, in the sending leg's clock.
    in_start: u32,
    in_segment: u32,
    /// The event's start timestamp on the receiving leg's stream.
    out_start: u32,
    /// The offset of the segment last written on the receiving leg, and whether its closing
    /// 0xFFFF report went out.
    out_segment: u64,
    closed: bool,
    ended: bool,
}

/// Where a bridged event packet goes: its RTP timestamp and duration field on the receiving
/// leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgedPacket {
    /// The RTP timestamp: the event's start, plus the segment's offset.
    pub timestamp: u32,
    /// The duration field, in the receiving leg's event clock.
    pub duration: u16,
}

impl EventClockBridge {
    /// Maps one event packet (RTP timestamp `timestamp` in the sending clock `in_rate`) to
    /// the receiving clock `out_rate`. `mapped_start` is where the stream mapping puts
    /// `timestamp` on the receiving stream; it is taken as the event's start when this
    /// packet begins a new event.
    pub fn rescale(
        &mut self,
        timestamp: u32,
        payload: &EventPayload,
        in_rate: u32,
        out_rate: u32,
        mapped_start: u32,
    ) -> BridgedPacket {
        let continues = self.current.filter(|c| {
            c.event == payload.event
                && (timestamp == c.in_segment
                    || (!c.ended && timestamp == c.in_segment.wrapping_add(u32::from(u16::MAX))))
        });
        let mut current = continues.unwrap_or(BridgedEvent {
            event: payload.event,
            in_start: timestamp,
            in_segment: timestamp,
            out_start: mapped_start,
            out_segment: 0,
            closed: false,
            ended: false,
        });
        current.in_segment = timestamp;
        current.ended |= payload.end;
        let total_in =
            u64::from(timestamp.wrapping_sub(current.in_start)) + u64::from(payload.duration);
        let total_out = total_in * u64::from(out_rate) / u64::from(in_rate.max(1));
        let segment = u64::from(u16::MAX);
        // A duration that is exactly a boundary closes its segment rather than open the next.
        let offset = total_out.saturating_sub(1) / segment * segment;
        let packet = if offset > current.out_segment && !current.closed && !payload.end {
            // §2.5.1.3: a segment ends with a report of 0xFFFF; this packet carries it and
            // the next one opens the new segment, with a duration grown meanwhile.
            current.closed = true;
            BridgedPacket {
                timestamp: current.out_start.wrapping_add(current.out_segment as u32),
                duration: u16::MAX,
            }
        } else {
            if offset > current.out_segment {
                current.out_segment = offset;
                current.closed = false;
            }
            BridgedPacket {
                timestamp: current.out_start.wrapping_add(offset as u32),
                duration: (total_out - offset).min(segment) as u16,
            }
        };
        self.current = Some(current);
        packet
    }
}

/// How digits are carried on a leg (the `dtmf` key of a trunk or an agent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtmfMode {
    /// RTP telephone-events (RFC 4733), or tones when the leg did not negotiate them.
    #[default]
    Rfc4733,
    /// SIP INFO in the leg's dialog; no DTMF in its RTP.
    Info,
    /// Tones in the leg's audio (ITU-T Q.23).
    Inband,
}

/// The event code of a DTMF character (RFC 4733 §3.2: 0-9, `*` 10, `#` 11, A-D 12-15);
/// lower-case a-d are accepted.
pub fn event_of(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

/// The DTMF character of an event code 0-15.
pub fn digit_of(event: u8) -> Option<char> {
    EventPayload {
        event,
        end: false,
        volume: 0,
        duration: 0,
    }
    .digit()
}

/// The shortest key press generated: ITU-T Q.24 receivers need at least 40 ms of tone.
pub const MIN_PRESS: std::time::Duration = std::time::Duration::from_millis(40);
/// The longest key press generated.
pub const MAX_PRESS: std::time::Duration = std::time::Duration::from_secs(5);
/// Silence between two queued key presses (ITU-T Q.24: at least 40 ms).
pub const INTER_DIGIT_PAUSE: std::time::Duration = std::time::Duration::from_millis(60);
/// The power level written in generated events, in -dBm0 (RFC 4733 §2.3.4).
pub const EVENT_VOLUME: u8 = 10;

/// The key-press duration actually generated for `requested`: clamped to
/// [`MIN_PRESS`]..=[`MAX_PRESS`].
pub fn press_duration(requested: std::time::Duration) -> std::time::Duration {
    requested.clamp(MIN_PRESS, MAX_PRESS)
}

/// One telephone-event packet of a generated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPacket {
    /// The 4-byte payload (RFC 4733 §2.3).
    pub payload: [u8; 4],
    /// The marker bit: set on the first packet of the event only (RFC 4733 §2.5.1.1).
    pub marker: bool,
    /// Whether this is one of the end packets.
    pub end: bool,
    /// The duration field.
    pub duration: u16,
    /// Where this packet's segment starts, in timestamp units after the event's start: the
    /// packet's RTP timestamp is the event's start plus this (RFC 4733 §2.5.1.3).
    pub segment_offset: u32,
}

/// The packets of one event as a sender emits them (RFC 4733 §2.5.1): the first at the key
/// press with the marker bit, one update per packet interval with the duration so far, then
/// the end packet with the E bit sent three times (§2.5.1.4). Every packet of a segment
/// carries the segment's start timestamp (§2.5.1.2), which the caller writes from
/// [`EventPacket::segment_offset`].
///
/// Durations are in the event's timestamp units. An event longer than the 16-bit duration
/// field (0xFFFF units: 8.19 s at 8 kHz, 1.36 s at 48 kHz) goes out in segments
/// (§2.5.1.3): a segment's last packet reports 0xFFFF without the E bit, and the next
/// segment starts at that point with its duration counted from zero and no marker bit; only
/// the last segment ends with the E bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSequence {
    event: u8,
    volume: u8,
    total: u32,
    step: u32,
    /// Timestamp units reported so far (all segments).
    reported: u32,
    ends_sent: u8,
}

const SEGMENT: u32 = u16::MAX as u32;

impl EventSequence {
    /// The sequence for `event` lasting `duration` units, one packet every `step` units.
    pub fn new(event: u8, duration: u32, step: u32, volume: u8) -> EventSequence {
        EventSequence {
            event,
            volume: volume & 0x3f,
            total: duration.max(1),
            step: step.clamp(1, SEGMENT),
            reported: 0,
            ends_sent: 0,
        }
    }

    /// The sequence for `event` lasting `duration`, at `clock_rate`, one packet per
    /// `interval` (RFC 4733 §2.5.1.2: the codec's packet interval, when known).
    pub fn for_press(
        event: u8,
        duration: std::time::Duration,
        clock_rate: u32,
        interval: std::time::Duration,
    ) -> EventSequence {
        let units = |d: std::time::Duration| {
            (d.as_micros() * u128::from(clock_rate) / 1_000_000).min(u128::from(u32::MAX)) as u32
        };
        EventSequence::new(event, units(duration), units(interval), EVENT_VOLUME)
    }

    /// The event's total duration in timestamp units.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// The next packet, or `None` once the third end packet went out.
    pub fn next_packet(&mut self) -> Option<EventPacket> {
        let first = self.reported == 0 && self.ends_sent == 0;
        let (reported, end) = if self.reported < self.total {
            // The next update, but never past a segment boundary: the boundary itself is
            // reported (0xFFFF) before the next segment starts.
            let segment_end = (self.reported / SEGMENT + 1) * SEGMENT;
            let next = self
                .reported
                .saturating_add(self.step)
                .min(segment_end)
                .min(self.total);
            self.reported = next;
            (next, next == self.total)
        } else if self.ends_sent < 3 {
            (self.total, true)
        } else {
            return None;
        };
        if end {
            self.ends_sent += 1;
        }
        // A packet reporting exactly a boundary belongs to the segment it closes.
        let segment_offset = (reported - 1) / SEGMENT * SEGMENT;
        let duration = (reported - segment_offset) as u16;
        let [hi, lo] = duration.to_be_bytes();
        Some(EventPacket {
            payload: [self.event, (u8::from(end) << 7) | self.volume, hi, lo],
            marker: first,
            end,
            duration,
            segment_offset,
        })
    }

    /// Whether every packet has been produced.
    pub fn is_done(&self) -> bool {
        self.ends_sent >= 3
    }
}

/// The ITU-T Q.23 frequency pair of an event code 0-15: (low group, high group) in Hz.
pub fn tone_pair(event: u8) -> Option<(f64, f64)> {
    const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    // Q.23 keypad: rows 1 2 3 A / 4 5 6 B / 7 8 9 C / * 0 # D.
    let (row, col) = match event {
        1..=9 => ((event - 1) / 3, (event - 1) % 3),
        0 => (3, 1),
        10 => (3, 0),
        11 => (3, 2),
        12..=15 => (event - 12, 3),
        _ => return None,
    };
    Some((LOW[usize::from(row)], HIGH[usize::from(col)]))
}

/// Linear 16-bit amplitude of a 0 dBm0 sine: G.711's overload point is +3.17 dBm0 (μ-law,
/// ITU-T G.711 Table 5), at full scale.
const DBM0_AMPLITUDE: f64 = 32767.0 / 1.4406; // 10^(3.17/20)

/// Level of the low-group tone in dBm0: carriers send the pair at about -9/-7 dBm0, the
/// high group 2 dB above the low (ITU-T Q.23 allows a twist of a few dB).
pub const LOW_TONE_DBM0: f64 = -9.0;
/// Level of the high-group tone in dBm0.
pub const HIGH_TONE_DBM0: f64 = -7.0;

/// PCM of one DTMF key press: the Q.23 pair for `duration`, then silence, with the phase
/// running on across the caller's frames.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    steps: (f64, f64),
    amplitudes: (f64, f64),
    position: u64,
    tone_samples: u64,
}

impl ToneGenerator {
    /// The tone of `event` (0-15) for `duration` at `rate` Hz; `None` for another code.
    pub fn new(event: u8, duration: std::time::Duration, rate: u32) -> Option<ToneGenerator> {
        let (low, high) = tone_pair(event)?;
        let rate_f = f64::from(rate);
        let level = |dbm0: f64| DBM0_AMPLITUDE * 10f64.powf(dbm0 / 20.0);
        Some(ToneGenerator {
            steps: (
                std::f64::consts::TAU * low / rate_f,
                std::f64::consts::TAU * high / rate_f,
            ),
            amplitudes: (level(LOW_TONE_DBM0), level(HIGH_TONE_DBM0)),
            position: 0,
            tone_samples: (duration.as_micros() * u128::from(rate) / 1_000_000) as u64,
        })
    }

    /// Fills `out` with the next samples: the tone while it lasts, silence after it.
    pub fn fill(&mut self, out: &mut [i16]) {
        for sample in out.iter_mut() {
            *sample = if self.position < self.tone_samples {
                let n = self.position as f64;
                let value = self.amplitudes.0 * (self.steps.0 * n).sin()
                    + self.amplitudes.1 * (self.steps.1 * n).sin();
                value.round().clamp(-32768.0, 32767.0) as i16
            } else {
                0
            };
            self.position += 1;
        }
    }

    /// Whether the tone part is over (what [`ToneGenerator::fill`] gives now is silence).
    pub fn tone_done(&self) -> bool {
        self.position >= self.tone_samples
    }

    /// Samples produced so far.
    pub fn position(&self) -> u64 {
        self.position
    }
}

/// Goertzel block length at 8 kHz: 102 samples (12.75 ms, 78 Hz bins), short enough that a
/// 40 ms key (ITU-T Q.24's shortest) holds two whole blocks.
const DETECT_BLOCK_8K: usize = 102;
/// Each tone of a key must reach -30 dBm0.
const DETECT_MIN_DBM0: f64 = -30.0;
/// The two tones may differ by up to 8 dB either way (twist).
const DETECT_MAX_TWIST_DB: f64 = 8.0;
/// The pair must carry this share of the block's energy (speech spreads over many more).
const DETECT_MIN_SHARE: f64 = 0.7;

/// Finds DTMF keys in PCM (ITU-T Q.23 pairs, Q.24 timing) by the Goertzel power of the eight
/// keypad frequencies over 12.75 ms blocks. A key starts after two blocks in a row show its
/// pair (each tone above -30 dBm0, twist within 8 dB, the pair holding most of the energy)
/// and ends after two blocks without it; it is reported when it ends, with its duration.
#[derive(Debug, Clone)]
pub struct ToneDetector {
    rate: u32,
    block: usize,
    coefficients: [f64; 8],
    state: [(f64, f64); 8],
    energy: f64,
    filled: usize,
    min_power: f64,
    candidate: Option<(u8, u32)>,
    current: Option<(u8, u32)>,
    misses: u32,
}

impl ToneDetector {
    /// A detector for PCM at `rate` Hz.
    pub fn new(rate: u32) -> ToneDetector {
        const FREQUENCIES: [f64; 8] = [697.0, 770.0, 852.0, 941.0, 1209.0, 1336.0, 1477.0, 1633.0];
        let rate = rate.max(8000);
        let block = DETECT_BLOCK_8K * rate as usize / 8000;
        let coefficients =
            FREQUENCIES.map(|f| 2.0 * (std::f64::consts::TAU * f / f64::from(rate)).cos());
        let amplitude = DBM0_AMPLITUDE * 10f64.powf(DETECT_MIN_DBM0 / 20.0);
        ToneDetector {
            rate,
            block,
            coefficients,
            state: [(0.0, 0.0); 8],
            energy: 0.0,
            filled: 0,
            // Goertzel power on the scale of the block's energy: A² N / 2 for amplitude A.
            min_power: amplitude * amplitude * block as f64 / 2.0,
            candidate: None,
            current: None,
            misses: 0,
        }
    }

    /// Whether a key is being heard now, or the last block held a key's pair (a key may be
    /// starting): what a relay holds back from a leg that gets the key in another form.
    pub fn is_active(&self) -> bool {
        self.current.is_some() || self.candidate.is_some()
    }

    /// Feeds samples; returns a key that ended in them (event code and duration).
    pub fn push(&mut self, pcm: &[i16]) -> Option<(u8, std::time::Duration)> {
        let mut ended = None;
        for &sample in pcm {
            let x = f64::from(sample);
            self.energy += x * x;
            for (state, coefficient) in self.state.iter_mut().zip(self.coefficients) {
                let s0 = x + coefficient * state.0 - state.1;
                *state = (s0, state.0);
            }
            self.filled += 1;
            if self.filled == self.block {
                let key = self.classify();
                self.state = [(0.0, 0.0); 8];
                self.energy = 0.0;
                self.filled = 0;
                if let Some(digit) = self.on_block(key) {
                    ended = Some(digit);
                }
            }
        }
        ended
    }

    /// The key whose pair this block holds, if any.
    fn classify(&self) -> Option<u8> {
        let n = self.block as f64;
        let power: Vec<f64> = self
            .state
            .iter()
            .zip(self.coefficients)
            .map(|(&(s1, s2), c)| 2.0 * (s1 * s1 + s2 * s2 - c * s1 * s2) / n)
            .collect();
        let strongest = |group: &[f64]| {
            group.iter().copied().enumerate().fold(
                (0, 0.0),
                |best, (i, p)| if p > best.1 { (i, p) } else { best },
            )
        };
        let (row, low) = strongest(&power[..4]);
        let (col, high) = strongest(&power[4..]);
        let twist = 10f64.powf(DETECT_MAX_TWIST_DB / 10.0);
        let valid = low >= self.min_power
            && high >= self.min_power
            && high <= low * twist
            && low <= high * twist
            && low + high >= DETECT_MIN_SHARE * self.energy;
        // Q.23 keypad: rows 1 2 3 A / 4 5 6 B / 7 8 9 C / * 0 # D.
        const KEYS: [[u8; 4]; 4] = [[1, 2, 3, 12], [4, 5, 6, 13], [7, 8, 9, 14], [10, 0, 11, 15]];
        valid.then(|| KEYS[row][col])
    }

    fn on_block(&mut self, key: Option<u8>) -> Option<(u8, std::time::Duration)> {
        if let Some((current, blocks)) = self.current {
            if key == Some(current) {
                self.current = Some((current, blocks + 1));
                self.misses = 0;
                return None;
            }
            self.misses += 1;
            if self.misses < 2 {
                return None;
            }
            self.current = None;
            self.misses = 0;
            self.candidate = key.map(|k| (k, 1));
            // The blocks at the key's edges are partly tone: half a block more, on average.
            let samples = u64::from(blocks) * self.block as u64 + self.block as u64 / 2;
            let micros = samples * 1_000_000 / u64::from(self.rate);
            return Some((current, std::time::Duration::from_micros(micros)));
        }
        self.candidate = match (key, self.candidate) {
            (Some(k), Some((c, n))) if k == c => {
                if n + 1 >= 2 {
                    self.current = Some((k, n + 1));
                    self.misses = 0;
                    None
                } else {
                    Some((k, n + 1))
                }
            }
            (Some(k), _) => Some((k, 1)),
            (None, _) => None,
        };
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn goertzel(samples: &[i16], rate: u32, freq: f64) -> f64 {
        let w = std::f64::consts::TAU * freq / f64::from(rate);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in samples {
            let s0 = f64::from(x) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        // Scaled so that a sine of amplitude A over the whole block gives A.
        (s1 * s1 + s2 * s2 - coeff * s1 * s2).sqrt() * 2.0 / samples.len() as f64
    }

    #[test]
    fn event_sequence_grows_per_packet_and_ends_three_times() {
        // 100 ms at 8 kHz, one packet per 20 ms.
        let mut seq = EventSequence::for_press(
            5,
            Duration::from_millis(100),
            8000,
            Duration::from_millis(20),
        );
        let mut packets = Vec::new();
        while let Some(p) = seq.next_packet() {
            packets.push(p);
        }
        let durations: Vec<(u16, bool, bool)> = packets
            .iter()
            .map(|p| (p.duration, p.end, p.marker))
            .collect();
        assert_eq!(
            durations,
            [
                (160, false, true),
                (320, false, false),
                (480, false, false),
                (640, false, false),
                (800, true, false),
                (800, true, false),
                (800, true, false),
            ]
        );
        for p in &packets {
            let parsed = EventPayload::parse(&p.payload).expect("4 bytes");
            assert_eq!(parsed.event, 5);
            assert_eq!(parsed.end, p.end);
            assert_eq!(parsed.volume, EVENT_VOLUME);
            assert_eq!(parsed.duration, p.duration);
        }
        assert!(seq.is_done());
    }

    #[test]
    fn event_sequence_at_48_khz_counts_in_that_clock() {
        let mut seq = EventSequence::for_press(
            11,
            Duration::from_millis(60),
            48000,
            Duration::from_millis(20),
        );
        let first = seq.next_packet().expect("first");
        assert_eq!((first.duration, first.segment_offset), (960, 0));
    }

    #[test]
    fn an_event_longer_than_the_duration_field_goes_out_in_segments() {
        // 2 s at 48 kHz = 96000 units: one segment of 0xFFFF, then 30465 units.
        let mut seq =
            EventSequence::for_press(1, Duration::from_secs(2), 48000, Duration::from_millis(20));
        assert_eq!(seq.total(), 96_000);
        let packets: Vec<EventPacket> = std::iter::from_fn(|| seq.next_packet()).collect();
        let boundary = packets
            .iter()
            .position(|p| p.segment_offset > 0)
            .expect("a second segment");
        // RFC 4733 §2.5.1.3: the first segment closes at 0xFFFF without the E bit.
        let closing = packets[boundary - 1];
        assert_eq!(
            (closing.duration, closing.end, closing.segment_offset),
            (0xFFFF, false, 0)
        );
        let opening = packets[boundary];
        assert_eq!(opening.segment_offset, 0xFFFF);
        assert_eq!(opening.duration, 960);
        assert!(
            !opening.marker,
            "only the event's first packet has the marker bit"
        );
        assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
        assert!(packets[..boundary].iter().all(|p| !p.end));
        let ends: Vec<_> = packets.iter().filter(|p| p.end).collect();
        assert_eq!(ends.len(), 3);
        assert!(ends
            .iter()
            .all(|p| p.duration == 30_465 && p.segment_offset == 0xFFFF));
        // Durations grow within each segment.
        for pair in packets[..boundary].windows(2) {
            assert!(pair[1].duration > pair[0].duration);
        }
    }

    #[test]
    fn a_segmented_event_is_collected_as_one_digit_with_its_whole_duration() {
        let mut seq =
            EventSequence::for_press(7, Duration::from_secs(3), 48000, Duration::from_millis(20));
        let mut collector = DigitCollector::default();
        let start = u32::MAX - 1000; // the RTP timestamp wraps inside the event
        let digits: Vec<Digit> = std::iter::from_fn(|| seq.next_packet())
            .filter_map(|p| {
                let payload = EventPayload::parse(&p.payload).expect("4 bytes");
                collector.push(start.wrapping_add(p.segment_offset), &payload)
            })
            .collect();
        assert_eq!(
            digits,
            [Digit {
                event: 7,
                duration: 144_000,
                timestamp: start
            }]
        );
    }

    #[test]
    fn a_segment_continues_its_event_even_when_the_0xffff_report_was_lost() {
        let mut collector = DigitCollector::default();
        let update = |duration: u16, end: bool| EventPayload {
            event: 3,
            end,
            volume: 10,
            duration,
        };
        assert_eq!(collector.push(1000, &update(65_000, false)), None);
        // The packet reporting 0xFFFF for timestamp 1000 never arrived.
        assert_eq!(collector.push(1000 + 0xFFFF, &update(800, false)), None);
        let digit = collector
            .push(1000 + 0xFFFF, &update(1600, true))
            .expect("the press ends");
        assert_eq!((digit.timestamp, digit.duration), (1000, 0xFFFF + 1600));
        // A different key at the boundary is a new event.
        assert_eq!(collector.push(5000, &update(65_535, false)), None);
        let other = EventPayload {
            event: 4,
            ..update(160, true)
        };
        let digit = collector.push(5000 + 0xFFFF, &other).expect("key 4 ends");
        assert_eq!(
            (digit.event, digit.timestamp, digit.duration),
            (4, 5000 + 0xFFFF, 160)
        );
    }

    #[test]
    fn generated_events_are_collected_back_as_one_digit() {
        let mut seq = EventSequence::for_press(
            11,
            Duration::from_millis(120),
            8000,
            Duration::from_millis(20),
        );
        let mut collector = DigitCollector::default();
        let mut digits = Vec::new();
        while let Some(p) = seq.next_packet() {
            let payload = EventPayload::parse(&p.payload).expect("4 bytes");
            digits.extend(collector.push(4242, &payload));
        }
        assert_eq!(
            digits,
            [Digit {
                event: 11,
                duration: 960,
                timestamp: 4242
            }]
        );
    }

    fn bridge_all(
        seq: &mut EventSequence,
        start: u32,
        in_rate: u32,
        out_rate: u32,
        out_start: u32,
    ) -> Vec<(BridgedPacket, bool)> {
        let mut bridge = EventClockBridge::default();
        std::iter::from_fn(|| seq.next_packet())
            .map(|p| {
                let payload = EventPayload::parse(&p.payload).expect("4 bytes");
                let ts = start.wrapping_add(p.segment_offset);
                (
                    bridge.rescale(ts, &payload, in_rate, out_rate, out_start),
                    p.end,
                )
            })
            .collect()
    }

    #[test]
    fn an_8_khz_event_is_rescaled_to_a_48_khz_leg_and_segmented_there() {
        // 2 s at 8 kHz fits one segment (16000 units); at 48 kHz it is 96000 units.
        let mut seq =
            EventSequence::for_press(9, Duration::from_secs(2), 8000, Duration::from_millis(20));
        let out = bridge_all(&mut seq, 1234, 8000, 48000, 777);
        assert_eq!(
            out[0].0,
            BridgedPacket {
                timestamp: 777,
                duration: 960
            }
        );
        let closing = out
            .iter()
            .rev()
            .find(|(p, _)| p.timestamp == 777)
            .expect("first segment");
        assert_eq!(
            closing.0.duration, 0xFFFF,
            "the first segment closes at 0xFFFF"
        );
        let ends: Vec<_> = out.iter().filter(|(_, end)| *end).collect();
        assert_eq!(ends.len(), 3);
        for (p, _) in ends {
            assert_eq!(p.timestamp, 777 + 0xFFFF);
            assert_eq!(u32::from(p.duration), 96_000 - 0xFFFF);
        }
        // Collected on the receiving side, it is one 2 s press.
        let mut collector = DigitCollector::default();
        let digits: Vec<Digit> = out
            .iter()
            .filter_map(|(p, end)| {
                let payload = EventPayload {
                    event: 9,
                    end: *end,
                    volume: EVENT_VOLUME,
                    duration: p.duration,
                };
                collector.push(p.timestamp, &payload)
            })
            .collect();
        assert_eq!(digits.len(), 1);
        assert_eq!((digits[0].timestamp, digits[0].duration), (777, 96_000));
    }

    #[test]
    fn a_segmented_48_khz_event_becomes_one_unsegmented_8_khz_event() {
        let mut seq =
            EventSequence::for_press(2, Duration::from_secs(2), 48000, Duration::from_millis(20));
        let out = bridge_all(&mut seq, u32::MAX - 500, 48000, 8000, 50);
        assert!(
            out.iter().all(|(p, _)| p.timestamp == 50),
            "one segment at 8 kHz"
        );
        let durations: Vec<u16> = out.iter().map(|(p, _)| p.duration).collect();
        assert!(durations.windows(2).all(|w| w[1] >= w[0]), "{durations:?}");
        assert_eq!(*durations.last().expect("packets"), 16_000);
    }

    #[test]
    fn a_new_press_of_the_same_key_is_a_new_bridged_event() {
        let mut bridge = EventClockBridge::default();
        let key = |duration: u16, end: bool| EventPayload {
            event: 1,
            end,
            volume: 10,
            duration,
        };
        bridge.rescale(1000, &key(800, true), 8000, 48000, 6000);
        let again = bridge.rescale(3000, &key(160, false), 8000, 48000, 18_000);
        assert_eq!(
            again,
            BridgedPacket {
                timestamp: 18_000,
                duration: 960
            }
        );
    }

    #[test]
    fn characters_map_to_event_codes_and_back() {
        for (c, e) in [
            ('0', 0),
            ('9', 9),
            ('*', 10),
            ('#', 11),
            ('A', 12),
            ('d', 15),
        ] {
            assert_eq!(event_of(c), Some(e));
            assert_eq!(digit_of(e), Some(c.to_ascii_uppercase()));
        }
        assert_eq!(event_of('x'), None);
        assert_eq!(digit_of(16), None);
    }

    #[test]
    fn tone_pairs_are_the_q23_frequencies() {
        assert_eq!(tone_pair(1), Some((697.0, 1209.0)));
        assert_eq!(tone_pair(5), Some((770.0, 1336.0)));
        assert_eq!(tone_pair(9), Some((852.0, 1477.0)));
        assert_eq!(tone_pair(0), Some((941.0, 1336.0)));
        assert_eq!(tone_pair(10), Some((941.0, 1209.0)));
        assert_eq!(tone_pair(11), Some((941.0, 1477.0)));
        assert_eq!(tone_pair(15), Some((941.0, 1633.0)));
        assert_eq!(tone_pair(16), None);
    }

    #[test]
    fn tone_has_the_pair_at_its_levels_for_its_duration_then_silence() {
        const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
        const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
        let mut generator =
            ToneGenerator::new(8, Duration::from_millis(100), 8000).expect("digit 8");
        // Filled in 20 ms frames, as the relay does: the phase runs on across frames.
        let mut pcm = vec![0i16; 1600];
        for frame in pcm.chunks_mut(160) {
            generator.fill(frame);
        }
        let tone = &pcm[..800];
        let expected = |dbm0: f64| DBM0_AMPLITUDE * 10f64.powf(dbm0 / 20.0);
        for f in LOW.iter().chain(&HIGH) {
            let a = goertzel(tone, 8000, *f);
            match *f {
                852.0 => assert!(
                    (a / expected(LOW_TONE_DBM0) - 1.0).abs() < 0.05,
                    "852 Hz at {a}"
                ),
                1336.0 => assert!(
                    (a / expected(HIGH_TONE_DBM0) - 1.0).abs() < 0.05,
                    "1336 Hz at {a}"
                ),
                _ => assert!(a < expected(LOW_TONE_DBM0) * 0.1, "{f} Hz leaks at {a}"),
            }
        }
        // The tone lasts exactly its 800 samples.
        assert!(tone[790..].iter().any(|&s| s.abs() > 1000));
        assert!(pcm[800..].iter().all(|&s| s == 0));
        assert!(generator.tone_done());
        // About -7 and -9 dBm0 together stay clear of clipping.
        assert!(tone.iter().all(|&s| s.abs() < 20000));
    }

    /// `keys` as the generator plays them (each for its duration, then 60 ms of silence),
    /// through the detector in 20 ms frames.
    fn detect(keys: &[(u8, u64)], level: f64) -> Vec<(u8, Duration)> {
        let mut detector = ToneDetector::new(8000);
        let mut found = Vec::new();
        for &(event, ms) in keys {
            let mut generator =
                ToneGenerator::new(event, Duration::from_millis(ms), 8000).expect("key");
            let mut frame = [0i16; 160];
            for _ in 0..(ms + 60).div_ceil(20) {
                generator.fill(&mut frame);
                for s in frame.iter_mut() {
                    *s = (f64::from(*s) * level) as i16;
                }
                found.extend(detector.push(&frame));
            }
        }
        let mut frame = [0i16; 160];
        for _ in 0..5 {
            frame.fill(0);
            found.extend(detector.push(&frame));
        }
        found
    }

    #[test]
    fn detector_finds_generated_keys_in_order_with_their_durations() {
        let keys = [(1, 200), (9, 100), (11, 250), (0, 40), (15, 80)];
        let found = detect(&keys, 1.0);
        assert_eq!(
            found.iter().map(|k| k.0).collect::<Vec<_>>(),
            [1, 9, 11, 0, 15]
        );
        for ((_, d), (_, ms)) in found.iter().zip(keys) {
            let got = d.as_millis() as i64;
            assert!(
                (got - ms as i64).abs() <= 26,
                "{ms} ms key measured {got} ms"
            );
        }
    }

    #[test]
    fn detector_ignores_quiet_keys_single_tones_and_speech_like_sound() {
        // About -40 dBm0 per tone: below the -30 dBm0 floor.
        assert!(detect(&[(5, 200)], 0.03).is_empty());
        // One tone alone (a dial tone component), and a chord of harmonics.
        let mut detector = ToneDetector::new(8000);
        let mut pcm = vec![0i16; 8000];
        for (n, s) in pcm.iter_mut().enumerate() {
            let t = n as f64 / 8000.0;
            *s = (8000.0 * (std::f64::consts::TAU * 941.0 * t).sin()) as i16;
        }
        assert_eq!(detector.push(&pcm), None);
        assert!(!detector.is_active());
        for (n, s) in pcm.iter_mut().enumerate() {
            let t = n as f64 / 8000.0;
            *s = (1..=12)
                .map(|h| {
                    2000.0 / f64::from(h) * (std::f64::consts::TAU * 120.0 * f64::from(h) * t).sin()
                })
                .sum::<f64>() as i16;
        }
        assert_eq!(detector.push(&pcm), None);
        assert!(!detector.is_active());
    }

    #[test]
    fn detector_rejects_a_key_shorter_than_two_blocks() {
        assert!(detect(&[(3, 20)], 1.0).is_empty());
    }

    #[test]
    fn tone_at_48_khz_keeps_its_frequencies() {
        let mut generator = ToneGenerator::new(11, Duration::from_millis(60), 48000).expect("#");
        let mut pcm = vec![0i16; 2880];
        generator.fill(&mut pcm);
        let low = goertzel(&pcm, 48000, 941.0);
        let high = goertzel(&pcm, 48000, 1477.0);
        let other = goertzel(&pcm, 48000, 1209.0);
        assert!(
            high > low && low > 10.0 * other,
            "941 {low}, 1477 {high}, 1209 {other}"
        );
    }

    #[test]
    fn end_packet_sent_three_times_is_one_digit() {
        let mut collector = DigitCollector::default();
        let mut digits = Vec::new();
        for (duration, end) in [
            (160u16, false),
            (320, false),
            (480, true),
            (480, true),
            (480, true),
        ] {
            let payload = [
                11,
                if end { 0x8a } else { 0x0a },
                (duration >> 8) as u8,
                duration as u8,
            ];
            let event = EventPayload::parse(&payload).expect("4 bytes");
            assert_eq!(event.digit(), Some('#'));
            digits.extend(collector.push(1000, &event));
        }
        assert_eq!(
            digits,
            [Digit {
                event: 11,
                duration: 480,
                timestamp: 1000
            }]
        );
    }

    #[test]
    fn short_payload_is_an_error() {
        assert_eq!(EventPayload::parse(&[1, 2, 3]), Err(EventPayloadError(3)));
    }
}
