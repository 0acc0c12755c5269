//! DTMF interworking between the legs: each trunk and each agent takes key presses in its own
//! form ([`DtmfMode`]), and a key pressed on one leg reaches the other in that leg's form.
//!
//! - SIP INFO from a peer (RFC 6086 §4.2.2, inside the leg's dialog): `application/dtmf-relay`
//!   (`Signal=5`, `Duration=160` in ms) or `application/dtmf` (the body is the key) is
//!   answered 200 and passed on; another body type gets 415 with `Accept` (RFC 3261 §21.4.16);
//!   an INFO without a body is answered 200 (peers use it as a keepalive).
//! - A key passed on towards a leg in `info` mode is an INFO with `application/dtmf-relay`
//!   in that leg's dialog; towards a leg in `rfc4733` or `inband` mode it is a
//!   [`MediaOp::SendDigit`], which the relay plays as telephone-events on the leg's payload
//!   type or as a tone in its codec.
//! - RFC 4733 telephone-events, and keys the relay's detector hears in the audio of an
//!   `inband` leg, are converted by the relay itself (it knows each leg's mode from
//!   [`MediaOp::SetDtmf`]); it reports each key that ended ([`MediaReport::Digit`]), and when
//!   the other leg is in `info` mode the core sends the INFO.
//!
//! A key press is passed on only between two confirmed legs: before the agent answers there
//! is nobody to hear it. INFO requests we send are not waited on: their response or timeout
//! changes nothing in the call.

use super::*;
pub use media::dtmf::DtmfMode;
use media::dtmf::{digit_of, event_of};

/// `application/dtmf-relay` (the de facto format, as Cisco and most carriers send it).
const DTMF_RELAY: &str = "application/dtmf-relay";
/// `application/dtmf` (the body is the key).
const DTMF: &str = "application/dtmf";
/// The key press assumed when an INFO gives no Duration.
const DEFAULT_DURATION: Duration = Duration::from_millis(250);

/// The DTMF modes of the trunks (by index) and the agents (by extension); `rfc4733` unless
/// set.
#[derive(Debug, Default)]
pub(super) struct DtmfSettings {
    trunks: Vec<DtmfMode>,
    agents: HashMap<String, DtmfMode>,
}

/// What an INFO body asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InfoBody {
    /// No body: nothing to do.
    Empty,
    /// A key press; `None` for a signal that is not a DTMF key (a flash, `Signal=16`).
    Key(Option<(u8, Duration)>),
    /// A body type we do not take.
    Unsupported,
    /// A DTMF body without a key in it.
    Malformed,
}

/// Reads an INFO's body (RFC 6086 §4.2.1: the body type says what it carries).
fn info_body(request: &Request) -> InfoBody {
    if request.body.is_empty() {
        return InfoBody::Empty;
    }
    let content_type = request
        .content_type()
        .and_then(|t| t.split(';').next())
        .map(|t| t.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let Ok(text) = std::str::from_utf8(&request.body) else {
        return InfoBody::Malformed;
    };
    match content_type.as_str() {
        DTMF_RELAY => {
            let mut signal = None;
            let mut duration = None;
            for line in text.lines() {
                let Some((name, value)) = line.split_once('=') else {
                    continue;
                };
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "signal" => signal = Some(value.to_owned()),
                    "duration" => duration = value.parse::<u64>().ok().map(Duration::from_millis),
                    _ => {}
                }
            }
            let Some(signal) = signal else {
                return InfoBody::Malformed;
            };
            key(&signal, duration)
        }
        DTMF => key(text.trim(), None),
        _ => InfoBody::Unsupported,
    }
}

/// A signal as written in an INFO: a key character, or its event code (`10` for `*`, `11`
/// for `#`, `16` for a flash).
fn key(signal: &str, duration: Option<Duration>) -> InfoBody {
    let mut chars = signal.chars();
    let event = match (chars.next(), chars.next()) {
        (Some(c), None) => event_of(c),
        _ => signal.parse::<u8>().ok().filter(|&e| e <= 16),
    };
    match event {
        Some(event) if event <= 15 => {
            InfoBody::Key(Some((event, duration.unwrap_or(DEFAULT_DURATION))))
        }
        Some(_) => InfoBody::Key(None),
        None => InfoBody::Malformed,
    }
}

/// The `application/dtmf-relay` body for a key press.
pub fn dtmf_relay_body(digit: char, duration: Duration) -> String {
    format!("Signal={digit}\r\nDuration={}\r\n", duration.as_millis())
}

impl Core {
    /// How a trunk (by its index in [`CoreConfig::trunks`]) takes DTMF.
    pub fn set_trunk_dtmf(&mut self, trunk: usize, mode: DtmfMode) {
        let trunks = &mut self.dtmf.trunks;
        if trunks.len() <= trunk {
            trunks.resize(trunk + 1, DtmfMode::Rfc4733);
        }
        trunks[trunk] = mode;
    }

    /// How an agent (by extension) takes DTMF.
    pub fn set_agent_dtmf(&mut self, extension: &str, mode: DtmfMode) {
        self.dtmf.agents.insert(extension.to_owned(), mode);
    }

    /// How an agent takes DTMF.
    pub(super) fn agent_dtmf(&self, extension: &str) -> DtmfMode {
        self.dtmf.agents.get(extension).copied().unwrap_or_default()
    }

    fn dtmf_mode(&self, call: &Call, side: Side) -> DtmfMode {
        match side {
            Side::Customer => self.dtmf.trunks.get(call.trunk).copied(),
            Side::Agent => call
                .agent_ext
                .as_ref()
                .and_then(|e| self.dtmf.agents.get(e))
                .copied(),
        }
        .unwrap_or_default()
    }

    /// Whether a leg's offers and answers carry telephone-event: only in `rfc4733` mode. An
    /// `info` or `inband` peer offered it would send each key twice (events and INFO or
    /// tone), or send events nobody asked for.
    pub(super) fn takes_telephone_events(&self, call: CallId, side: Side) -> bool {
        self.calls
            .get(&call)
            .is_none_or(|c| self.dtmf_mode(c, side) == DtmfMode::Rfc4733)
    }

    /// Tells the call's media the legs' DTMF modes that are not the default.
    pub(super) fn announce_dtmf_modes(&mut self, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        for side in [Side::Customer, Side::Agent] {
            let mode = self.dtmf_mode(c, side);
            if mode != DtmfMode::Rfc4733 {
                self.actions.push_back(Action::Media {
                    call,
                    op: MediaOp::SetDtmf { side, mode },
                });
            }
        }
    }

    /// An INFO inside a leg's dialog.
    pub(super) fn on_info(&mut self, now: Time, tx: TransactionId, r: LegRef, request: &Request) {
        let status = match info_body(request) {
            InfoBody::Empty | InfoBody::Key(None) => 200,
            InfoBody::Key(Some((event, duration))) => {
                self.pass_key(now, r.call, r.side.other(), event, duration);
                200
            }
            InfoBody::Malformed => 400,
            InfoBody::Unsupported => 415,
        };
        let mut response = make_response(request, status, None);
        if status == 415 {
            // RFC 3261 §21.4.16: a 415 lists the body types we take.
            response
                .headers
                .add(HeaderKind::Accept, format!("{DTMF_RELAY}, {DTMF}"));
        }
        let _ = self.endpoint.respond(now, tx, response);
    }

    /// A key press the relay saw in `side`'s telephone-events: the relay converted it for a
    /// leg taking RTP forms; an `info` leg gets it as INFO here.
    pub(super) fn on_media_digit(
        &mut self,
        now: Time,
        call: CallId,
        side: Side,
        event: u8,
        duration: Duration,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if self.dtmf_mode(c, side.other()) == DtmfMode::Info {
            self.pass_key(now, call, side.other(), event, duration);
        }
    }

    /// Passes a key press on to leg `to` in its form, when both legs are confirmed; the
    /// duration is clamped to 40 ms..5 s (ITU-T Q.24 receivers need at least 40 ms).
    fn pass_key(&mut self, now: Time, call: CallId, to: Side, event: u8, duration: Duration) {
        let duration = media::dtmf::press_duration(duration);
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        let confirmed = |l: Option<&Leg>| l.is_some_and(|l| l.state == LegState::Confirmed);
        if c.ending.is_some() || !confirmed(Some(&c.customer)) || !confirmed(c.agent.as_ref()) {
            return;
        }
        match self.dtmf_mode(c, to) {
            DtmfMode::Info => self.send_info(now, call, to, event, duration),
            DtmfMode::Rfc4733 | DtmfMode::Inband => self.actions.push_back(Action::Media {
                call,
                op: MediaOp::SendDigit {
                    side: to,
                    event,
                    duration,
                },
            }),
        }
    }

    /// An INFO with `application/dtmf-relay` in `side`'s dialog (RFC 6086 §4.2.1).
    fn send_info(&mut self, now: Time, call: CallId, side: Side, event: u8, duration: Duration) {
        let Some(digit) = digit_of(event) else {
            return;
        };
        let Some(leg) = self.calls.get_mut(&call).and_then(|c| leg_of(c, side)) else {
            return;
        };
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let mut info = dialog.request(Method::Info);
        info.set_body(DTMF_RELAY, dtmf_relay_body(digit, duration).into_bytes());
        let target = leg.target;
        if let Ok(tx) = self.endpoint.send_request(now, info, target) {
            self.ignored_tx.insert(tx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(content_type: Option<&str>, body: &str) -> Request {
        let mut r = Request::new(Method::Info, Uri::parse("sip:dialer@192.0.2.10").unwrap());
        if let Some(t) = content_type {
            r.set_body(t, body.as_bytes().to_vec());
        }
        r
    }

    #[test]
    fn dtmf_relay_body_gives_the_key_and_its_duration_in_ms() {
        assert_eq!(
            info_body(&info(
                Some("application/dtmf-relay"),
                "Signal=5\r\nDuration=160\r\n"
            )),
            InfoBody::Key(Some((5, Duration::from_millis(160))))
        );
        assert_eq!(
            info_body(&info(
                Some("Application/DTMF-Relay"),
                "signal= #\nduration= 90\n"
            )),
            InfoBody::Key(Some((11, Duration::from_millis(90))))
        );
        assert_eq!(
            info_body(&info(Some("application/dtmf-relay"), "Signal=10\r\n")),
            InfoBody::Key(Some((10, DEFAULT_DURATION)))
        );
        assert_eq!(
            info_body(&info(
                Some("application/dtmf-relay"),
                "Signal=16\r\nDuration=500\r\n"
            )),
            InfoBody::Key(None),
            "a flash is not a key"
        );
        assert_eq!(
            info_body(&info(Some("application/dtmf-relay"), "Duration=160\r\n")),
            InfoBody::Malformed
        );
    }

    #[test]
    fn dtmf_body_is_the_key() {
        assert_eq!(
            info_body(&info(Some("application/dtmf"), "7\r\n")),
            InfoBody::Key(Some((7, DEFAULT_DURATION)))
        );
        assert_eq!(
            info_body(&info(Some("application/dtmf"), "*")),
            InfoBody::Key(Some((10, DEFAULT_DURATION)))
        );
    }

    #[test]
    fn other_bodies_are_unsupported_and_no_body_is_a_keepalive() {
        assert_eq!(
            info_body(&info(Some("application/broadsoft"), "event flashhook")),
            InfoBody::Unsupported
        );
        assert_eq!(info_body(&info(None, "")), InfoBody::Empty);
    }

    #[test]
    fn outgoing_body_is_dtmf_relay() {
        assert_eq!(
            dtmf_relay_body('5', Duration::from_millis(160)),
            "Signal=5\r\nDuration=160\r\n"
        );
    }
}
