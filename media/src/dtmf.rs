//! RFC 4733 telephone-event payloads: reading them, and turning a stream of them into digits.
//!
//! The relay never needs this (it passes events through untouched); the call logic and the
//! tests do, to see which digits went by.

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
    /// Final duration in timestamp units.
    pub duration: u16,
    /// RTP timestamp of the event (its start, RFC 4733 §2.5.1.2).
    pub timestamp: u32,
}

/// Collects digits from telephone-event packets, counting each event once although its end
/// packet is sent three times (RFC 4733 §2.5.1.4).
#[derive(Debug, Default, Clone)]
pub struct DigitCollector {
    current: Option<(u32, EventPayload)>,
    finished_timestamp: Option<u32>,
}

impl DigitCollector {
    /// Feeds one packet's timestamp and payload; returns a digit when an event ends.
    pub fn push(&mut self, timestamp: u32, payload: &EventPayload) -> Option<Digit> {
        if self.finished_timestamp == Some(timestamp) {
            return None; // a retransmitted end packet
        }
        if payload.end {
            self.current = None;
            self.finished_timestamp = Some(timestamp);
            return Some(Digit {
                event: payload.event,
                duration: payload.duration,
                timestamp,
            });
        }
        self.current = Some((timestamp, *payload));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
