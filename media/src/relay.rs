//! The per-call RTP relay: two legs, in-place header rewrite, transcoding when the legs' codecs
//! differ, ringback, symmetric-RTP latching, RTCP reports and media timeout — all in virtual time.
//!
//! Life of a relay: [`Relay::new_one_sided`] when the customer answers (ringback plays to it
//! while the agent is called), [`Relay::update_leg`] for the agent when it answers and for
//! either leg after a re-INVITE; [`Relay::new`] when both legs are known at once.
//!
//! Drive loop (the runtime owns the sockets and the clock):
//! 1. For each datagram received on a leg's port: [`Relay::forward`]`(now, side, from, buf, len)`.
//!    It rewrites the packet in `buf` and says where to send it, or why it was dropped.
//! 2. Then, and whenever [`Relay::next_deadline`] passes: [`Relay::poll_transmit`]`(now, buf)`
//!    until it returns `None` — ringback frames that are due, concealment packets, RTCP reports.
//! 3. [`Relay::poll_event`] for media timeouts and latching changes.
//!
//! Per packet on the plain pass-through path the relay reads 12 header bytes, does a few integer
//! operations and writes 11 bytes back: no allocation, no copy, no channel. Transcoding decodes
//! and encodes into buffers allocated when the relay is built.
//!
//! Sequence numbers and timestamps of each outgoing stream are ours (RFC 3550 §5.1: one SSRC per
//! sender, picked at random): every source (the ringback player, then the other leg's SSRC, or a
//! new SSRC after a re-INVITE) is mapped onto them with an offset chosen at the switch so that
//! the stream runs on with the next sequence number and a timestamp advanced by the time that
//! passed, rounded to whole packets, with the marker bit set on the first packet (RFC 3551 §4.1).
//! Loss and reordering in the source stay visible to the receiver because the offset is fixed
//! for as long as the source lasts.
//!
//! DTMF: each leg has a [`DtmfMode`] ([`Relay::set_dtmf_mode`]). Telephone-events a leg sends
//! are collected into digits and reported as [`RelayEvent::Digit`] when they end (RFC 4733
//! §2.5.1.4), whatever the other leg's mode. Towards an `Rfc4733` leg that negotiated
//! telephone-event they are passed on with its payload type; towards an `Inband` leg, or an
//! `Rfc4733` leg without telephone-event, the digit is played as a Q.23 tone pair in its codec
//! once it ended; towards an `Info` leg they stop here (the call logic sends SIP INFO).
//! The audio of an `Inband` leg is decoded and searched for keys ([`ToneDetector`]); a key
//! found is reported the same way, and towards a leg that takes events or INFO the audio is
//! held back from the first 12.75 ms block that holds a key's pair (at most one 20 ms packet
//! of the tone gets through, shorter than the 40 ms a Q.24 receiver must accept) and the key
//! follows as telephone-events or INFO when it ends. Towards another in-band leg, or one
//! without telephone-event, the tone stays in the audio as it is.
//! [`Relay::send_digit`] injects a digit towards a leg in that leg's form (events or tone);
//! while it plays, the other leg's audio to that leg is held back, and the stream's sequence
//! numbers and timestamps run on across it.
//!
//! # SRTP
//! Each leg may have its own SRTP keys from SDES ([`Relay::set_srtp`], RFC 4568); one leg SRTP
//! and the other plain is the usual case (a TLS/SRTP softphone bridged to a plain trunk).
//! [`Relay::forward`] unprotects SRTP or SRTCP from an SRTP leg before anything reads it (a
//! packet that fails authentication or replays one already seen is dropped, RFC 3711 §3.3),
//! relays the plain packet as above, and protects what goes to an SRTP leg last; every packet
//! [`Relay::poll_transmit_leg`] makes for an SRTP leg is protected too. The rollover counter
//! of each direction is the SRTP context's own (RFC 3711 §3.3.1), so it follows the peer's
//! sequence numbers and ours independently across every wrap of a long call. The packet
//! grows by the suite's tag, so the runtime's buffers need that room
//! ([`crate::srtp::CryptoSuite::rtp_overhead`]); SRTP costs an allocation and a copy per
//! packet in webrtc-srtp (see [`crate::srtp`]).
//!
//! # Latching
//! Symmetric RTP (RFC 4961): a peer behind NAT sends from a port (or an IP) other than the one
//! its SDP names, and only media sent back to where its packets come from reaches it. The relay
//! latches as Asterisk's `strictrtp` and rtpengine's `strict-source` do, so that a third party
//! who learns or guesses our port cannot take the stream:
//! - **Only in a window.** A leg may latch only within [`RelayConfig::latch_window`] (2 s) of
//!   [`Relay::update_leg`] setting or changing its negotiation (the answer, a re-INVITE or
//!   UPDATE), and only once per negotiation.
//! - **Only to an acceptable IP.** The candidate must be on the IP of the negotiated `c=`, or
//!   on one the runtime allowed for the leg with [`Relay::allow_source`] (an agent's
//!   registered source address); any port on it, since NAT picks ports. It latches after
//!   [`RelayConfig::latch_after`] consecutive packets with a payload type the leg expects.
//! - **Everything else is foreign.** Before the latch, media from the signalled address is
//!   relayed as it is. A packet from any other source that cannot become the peer (another IP,
//!   or any new source once the leg latched or the window closed) is dropped as
//!   [`DropReason::ForeignSource`] and counted in [`Relay::source_stats`]; it never resets
//!   or disturbs the count of a candidate. RTCP is read only from the peer's IP or an
//!   acceptable one, and counted as foreign otherwise.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::codec::{Codec, CodecError, Decoder, Encoder, Transcoder};
pub use crate::dtmf::DtmfMode;
use crate::dtmf::{
    DigitCollector, EventClockBridge, EventPayload, EventSequence, ToneDetector, ToneGenerator,
    INTER_DIGIT_PAUSE,
};
use crate::playback::{Player, FRAME_MS};
use crate::rtcp::{self, NtpTimestamp, ReceiverStats, ReportBlock, ReportSchedule, SenderStats};
use crate::rtp::{self, OutgoingHeader, PacketKind, PayloadType, RtpHeader, Ssrc};
use crate::sdp::{Negotiated, SrtpKeys};
use crate::srtp::{SrtpError, SrtpSession};

/// Which leg of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The customer, reached through the trunk.
    Customer,
    /// The agent's softphone.
    Agent,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Customer => 0,
            Side::Agent => 1,
        }
    }

    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::Customer => Side::Agent,
            Side::Agent => Side::Customer,
        }
    }
}

/// Relay settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// Consecutive packets from a new address, with an expected payload type, before we send
    /// there instead (symmetric RTP, RFC 4961): one stray packet never moves a stream. Only a
    /// source on an acceptable IP (see the module docs, *Latching*) counts, and only within
    /// [`RelayConfig::latch_window`].
    pub latch_after: u32,
    /// How long after a leg's negotiation is set or changed ([`Relay::update_leg`]) it may
    /// latch to a new source. After the window, or once latched, packets from any source but
    /// the leg's peer are dropped ([`DropReason::ForeignSource`]) until the next negotiation.
    pub latch_window: Duration,
    /// No RTP from a leg for this long raises [`RelayEvent::MediaTimeout`]; `None`: never.
    pub media_timeout: Option<Duration>,
    /// Interval between RTCP sender reports per stream (RFC 3550 §6.2).
    pub report_interval: Duration,
    /// Lost packets concealed on the transcoding path before the gap is left silent.
    pub max_concealed: u16,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            latch_after: 3,
            latch_window: Duration::from_secs(2),
            media_timeout: Some(Duration::from_secs(30)),
            report_interval: ReportSchedule::DEFAULT_INTERVAL,
            max_concealed: 3,
        }
    }
}

/// What happened to a datagram given to [`Relay::forward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Send `buf[..len]` to `to`.
    Send {
        /// Destination.
        to: SocketAddr,
        /// Length of the packet in the buffer.
        len: usize,
    },
    /// Nothing to send.
    Dropped(DropReason),
}

/// Why a datagram was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Not RTP or RTCP, or a malformed RTP packet.
    Malformed,
    /// RTCP: read for statistics, not forwarded (each leg has its own reports).
    Rtcp,
    /// From an address that is not the leg's peer yet but may become it: a source on the
    /// signalled or an allowed IP, within the latch window, with a payload type the leg
    /// expects. Counted towards latching.
    UnexpectedSource,
    /// From a source that cannot become the leg's peer: not on the signalled or an allowed IP,
    /// or after the latch window, or after the leg latched. Counted in
    /// [`SourceStats::dropped_foreign`], and it never disturbs a latch in progress.
    ForeignSource,
    /// A payload type the leg did not negotiate (comfort noise, a stray codec).
    UnexpectedPayloadType,
    /// The other leg is hearing ringback; audio from this leg is not passed on yet.
    RingbackPlaying,
    /// The other leg has nowhere to send (on hold with `c=0.0.0.0`, or not set up yet).
    NoDestination,
    /// Telephone-event arrived but the other leg did not negotiate it.
    NoTelephoneEvent,
    /// The payload could not be transcoded.
    Codec,
    /// The buffer cannot hold the transcoded packet.
    BufferTooSmall,
    /// DTMF in a form the other leg does not take: a telephone-event towards a leg that takes
    /// SIP INFO or tones, or a key tone in an in-band leg's audio towards a leg that takes
    /// events or INFO. The key is reported ([`RelayEvent::Digit`]) and goes on in the other
    /// leg's form.
    DtmfConverted,
    /// A digit is being played to the other leg; its audio waits until the digit is over.
    DtmfPlaying,
    /// SRTP or SRTCP from an SRTP leg that does not authenticate with the peer's key, or is too
    /// short to carry a tag (RFC 3711 §3.3: such packets are discarded unread).
    Unauthenticated,
    /// SRTP or SRTCP whose index was already received or is behind the replay window
    /// (RFC 3711 §3.3.2).
    Replayed,
    /// The master key of the leg's SRTP used up its lifetime (RFC 3711 §9.2); new keys need a
    /// new offer/answer.
    KeyExhausted,
}

impl DropReason {
    fn of_srtp(e: &SrtpError) -> DropReason {
        match e {
            SrtpError::Replay => DropReason::Replayed,
            SrtpError::KeyExhausted => DropReason::KeyExhausted,
            SrtpError::BufferTooSmall => DropReason::BufferTooSmall,
            _ => DropReason::Unauthenticated,
        }
    }
}

/// A packet [`Relay::poll_transmit_leg`] produced: send `buf[..len]` to `to` from `side`'s
/// socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The leg the packet is for.
    pub side: Side,
    /// Destination.
    pub to: SocketAddr,
    /// Length of the packet in the buffer.
    pub len: usize,
}

/// What a leg's source checks saw ([`Relay::source_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceStats {
    /// Packets (RTP or RTCP) dropped as [`DropReason::ForeignSource`]: from a source that is
    /// not the leg's peer and cannot become it. A rising count during a call is someone else
    /// streaming at our port (a misrouted stream, or an attempt to inject or hijack media).
    pub dropped_foreign: u64,
    /// The last such source.
    pub last_foreign: Option<SocketAddr>,
}

/// Something the call logic should know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelayEvent {
    /// No RTP from `side` for the configured time.
    MediaTimeout {
        /// The silent leg.
        side: Side,
    },
    /// `side`'s media now goes to `to`, where its packets come from (symmetric RTP).
    Latched {
        /// The leg.
        side: Side,
        /// The new destination.
        to: SocketAddr,
    },
    /// `side` sent a key press that has now ended: telephone-events (RFC 4733 §2.5.1.4,
    /// counted once although the end packet comes three times), or a tone in the audio of a
    /// leg in `Inband` mode.
    Digit {
        /// The leg that sent it.
        side: Side,
        /// Event code (0-15 for DTMF, RFC 4733 §3.2).
        event: u8,
        /// How long the key was pressed.
        duration: Duration,
    },
}

/// Which source feeds an outgoing stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Ringback,
    Relayed(Ssrc),
    /// Our own DTMF tone frames.
    Tone,
    /// Our own telephone-event packets.
    Event,
}

/// A digit being played to a leg.
#[derive(Debug)]
enum Injection {
    /// Telephone-event packets (RFC 4733 §2.5.1): each carries `timestamp`, the event's
    /// start, plus its segment's offset.
    Events {
        sequence: EventSequence,
        payload_type: PayloadType,
        timestamp: u32,
        next_seq: u16,
        /// Packets sent so far, for the stream's running timestamp.
        sent: u32,
        due: Instant,
    },
    /// The Q.23 tone pair in the leg's codec, one frame per 20 ms.
    Tone {
        generator: ToneGenerator,
        encoder: Box<Encoder>,
        pcm: Vec<i16>,
        payload: Vec<u8>,
        frames_left: u32,
        due: Instant,
    },
}

impl Injection {
    fn due(&self) -> Instant {
        match self {
            Injection::Events { due, .. } | Injection::Tone { due, .. } => *due,
        }
    }
}

/// One stream we send, with our SSRC and numbering.
#[derive(Debug, Clone)]
struct Outgoing {
    ssrc: Ssrc,
    clock_rate: u32,
    samples_per_packet: u32,
    ptime: Duration,
    started: bool,
    next_seq: u16,
    next_ts: u32,
    last_seq: u16,
    last_ts: u32,
    last_sent: Option<Instant>,
    source: Option<Source>,
    src_seq_base: u16,
    src_ts_base: u32,
    out_seq_base: u16,
    out_ts_base: u32,
    stats: SenderStats,
    schedule: ReportSchedule,
}

impl Outgoing {
    /// A stream that is never sent: it only fills a leg's place while the leg is rebuilt.
    fn placeholder(report_interval: Duration) -> Outgoing {
        Outgoing {
            ssrc: Ssrc(0),
            clock_rate: 8000,
            samples_per_packet: 8 * FRAME_MS,
            ptime: Duration::from_millis(u64::from(FRAME_MS)),
            started: false,
            next_seq: 0,
            next_ts: 0,
            last_seq: 0,
            last_ts: 0,
            last_sent: None,
            source: None,
            src_seq_base: 0,
            src_ts_base: 0,
            out_seq_base: 0,
            out_ts_base: 0,
            stats: SenderStats::default(),
            schedule: ReportSchedule::new(report_interval),
        }
    }

    /// The sequence number and timestamp that continue the stream at `now`: the next number,
    /// and the timestamp advanced by the packets' worth of time that passed since the last
    /// one sent, at least one packet — no jump, no overlap.
    fn resume(&self, now: Instant) -> (u16, u32) {
        if !self.started {
            return (self.next_seq, self.next_ts);
        }
        let elapsed = self
            .last_sent
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let packets = ((elapsed.as_secs_f64() / self.ptime.as_secs_f64()).round() as u32).max(1);
        (
            self.last_seq.wrapping_add(1),
            self.last_ts.wrapping_add(packets * self.samples_per_packet),
        )
    }

    /// Records a packet we generated ourselves (not through [`Outgoing::map`]): `source`'s
    /// packet `seq` went out at `now`, and the stream's time has reached `ts`.
    fn sent_own(&mut self, now: Instant, source: Source, seq: u16, ts: u32) {
        self.source = Some(source);
        self.started = true;
        self.last_seq = seq;
        self.last_ts = ts;
        self.last_sent = Some(now);
    }

    /// Sequence number and timestamp for a source packet; `(num, den)` rescales the source's
    /// timestamp clock to ours. Returns whether this packet starts a new source (marker).
    fn map(
        &mut self,
        now: Instant,
        source: Source,
        src_seq: u16,
        src_ts: u32,
        (num, den): (u32, u32),
    ) -> (bool, u16, u32) {
        let switched = self.source != Some(source);
        if switched {
            let (seq, ts) = self.resume(now);
            self.source = Some(source);
            self.src_seq_base = src_seq;
            self.src_ts_base = src_ts;
            self.out_seq_base = seq;
            self.out_ts_base = ts;
        }
        let seq = self
            .out_seq_base
            .wrapping_add(src_seq.wrapping_sub(self.src_seq_base));
        let delta = i64::from(src_ts.wrapping_sub(self.src_ts_base) as i32);
        let ts = self
            .out_ts_base
            .wrapping_add((delta * i64::from(num) / i64::from(den)) as u32);
        // Keep the highest number sent, so a reordered packet does not pull the base back.
        if !self.started || switched || (seq.wrapping_sub(self.last_seq) as i16) > 0 {
            self.last_seq = seq;
            self.last_ts = ts;
        }
        self.started = true;
        self.last_sent = Some(now);
        (switched, seq, ts)
    }
}

/// One leg: where its peer is, what it expects, what we hear from it.
#[derive(Debug)]
struct Leg {
    /// `None` while the leg is not set up yet (the agent has not answered).
    negotiated: Option<Negotiated>,
    /// Whether the negotiated direction lets us send to this leg (RFC 3264 §5.1).
    sending: bool,
    remote: Option<SocketAddr>,
    /// Symmetric-RTP latching: where the leg may move to, and what was refused.
    latch: Latch,
    out: Outgoing,
    incoming: Option<ReceiverStats>,
    incoming_ssrc: Option<Ssrc>,
    last_incoming_seq: Option<u16>,
    last_rx: Instant,
    timeout_reported: bool,
    ringback: Option<Player>,
    ringback_seq: u16,
    ringback_ts: u32,
    ringback_due: Option<Instant>,
    /// Transcoder from the other leg's codec to this one's, when they differ.
    transcoder: Option<Transcoder>,
    /// Concealment packets waiting to be sent, with their lengths.
    pending: VecDeque<(usize, usize)>,
    pending_buf: Vec<u8>,
    last_peer_report: Option<ReportBlock>,
    /// How this leg takes DTMF.
    dtmf_mode: DtmfMode,
    /// Digits from this leg's telephone-events.
    digits: DigitCollector,
    /// Events from the other leg, when its event clock differs from this leg's.
    event_bridge: EventClockBridge,
    /// Digits waiting to be played to this leg: event code and duration; at most
    /// [`MAX_QUEUED_DIGITS`].
    dtmf_queue: VecDeque<(u8, Duration)>,
    /// Digits not queued because the queue was full.
    dtmf_dropped: u64,
    /// The digit playing to this leg.
    dtmf: Option<Injection>,
    /// No digit starts before this (the pause after the previous one, ITU-T Q.24).
    dtmf_idle_at: Option<Instant>,
    /// Our tone frames' own numbering, mapped onto the stream like any source.
    tone_seq: u16,
    tone_ts: u32,
    /// Key detection in this leg's audio, for a leg in `Inband` mode.
    detector: Option<Box<Detection>>,
}

/// What in-band detection on one leg needs: the leg's decoder at 8 kHz and the detector.
#[derive(Debug)]
struct Detection {
    codec: Codec,
    decoder: Decoder,
    detector: ToneDetector,
    pcm: Vec<i16>,
}

impl Leg {
    fn new(out: Outgoing, config: &RelayConfig, now: Instant) -> Leg {
        Leg {
            negotiated: None,
            sending: false,
            remote: None,
            latch: Latch::default(),
            out,
            incoming: None,
            incoming_ssrc: None,
            last_incoming_seq: None,
            last_rx: now,
            timeout_reported: true,
            ringback: None,
            ringback_seq: 0,
            ringback_ts: 0,
            ringback_due: None,
            transcoder: None,
            pending: VecDeque::with_capacity(usize::from(config.max_concealed) + 1),
            pending_buf: Vec::new(),
            last_peer_report: None,
            dtmf_mode: DtmfMode::Rfc4733,
            digits: DigitCollector::default(),
            event_bridge: EventClockBridge::default(),
            dtmf_queue: VecDeque::new(),
            dtmf_dropped: 0,
            dtmf: None,
            dtmf_idle_at: None,
            tone_seq: 0,
            tone_ts: 0,
            detector: None,
        }
    }

    fn expects(&self, pt: PayloadType) -> bool {
        self.negotiated.as_ref().is_some_and(|n| {
            pt == n.receive_payload_type
                || pt == n.send_payload_type
                || n.telephone_event
                    .is_some_and(|t| pt == t.receive_payload_type || pt == t.send_payload_type)
        })
    }

    fn is_telephone_event(&self, pt: PayloadType) -> bool {
        self.negotiated.as_ref().is_some_and(|n| {
            n.telephone_event
                .is_some_and(|t| pt == t.receive_payload_type || pt == t.send_payload_type)
        })
    }

    fn codec(&self) -> Option<Codec> {
        self.negotiated.as_ref().map(|n| n.codec)
    }

    /// Whether a digit plays to this leg at `now`, or is due to start.
    /// Queues a digit to be played to this leg; a digit beyond [`MAX_QUEUED_DIGITS`] waiting
    /// is dropped and counted (a peer keying faster than digits play, at about 10 a second
    /// with the Q.24 pauses, must not grow the queue without bound). False when dropped.
    fn queue_digit(&mut self, digit: (u8, Duration)) -> bool {
        if self.dtmf_queue.len() >= MAX_QUEUED_DIGITS {
            self.dtmf_dropped += 1;
            return false;
        }
        self.dtmf_queue.push_back(digit);
        true
    }

    fn dtmf_busy(&self, now: Instant) -> bool {
        self.dtmf.is_some()
            || (!self.dtmf_queue.is_empty()
                && self.ringback.is_none()
                && self.dtmf_idle_at.is_none_or(|at| at <= now))
    }

    /// Whether the peer is expected to send us RTP, so that its silence is a media timeout:
    /// not while it holds the call with `a=sendonly`/`inactive` from its side or `c=0.0.0.0`
    /// (RFC 3264 §8.4).
    fn expects_media(&self) -> bool {
        self.negotiated
            .as_ref()
            .is_some_and(|n| n.direction.receives() && n.remote_rtp.is_some())
    }
}

const SLOT: usize = 1500;

/// Most digits waiting to be played to one leg ([`Relay::send_digit`], digits converted from
/// the other leg); more are dropped and counted ([`Relay::dtmf_dropped`]).
pub const MAX_QUEUED_DIGITS: usize = 32;

/// One leg's symmetric-RTP latching state (see the module docs, *Latching*).
#[derive(Debug, Default)]
struct Latch {
    /// The end of the window in which the leg may latch; `None` once it latched, and before
    /// the leg's first negotiation.
    open_until: Option<Instant>,
    /// A source on an acceptable IP that sent expected payload types, and how many in a row.
    candidate: Option<(SocketAddr, u32)>,
    /// Source IPs the runtime vouches for besides the signalled one ([`Relay::allow_source`]).
    allowed: Vec<IpAddr>,
    stats: SourceStats,
}

/// What the source checks make of a packet that is not from the leg's current peer.
enum Admission {
    /// A latch candidate, on an acceptable IP within the window.
    Candidate,
    /// Nothing that may ever be the leg's peer until the next negotiation.
    Foreign,
}

impl Latch {
    /// Whether `ip` is one the leg's media may come from: the IP of the negotiated `c=`
    /// (RTP or RTCP address), or one the runtime allowed. IPv4-mapped IPv6 addresses (a
    /// dual-stack socket) compare as the IPv4 address they carry.
    fn acceptable(&self, negotiated: &Negotiated, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        [negotiated.remote_rtp, negotiated.remote_rtcp]
            .into_iter()
            .flatten()
            .any(|a| a.ip().to_canonical() == ip)
            || self.allowed.contains(&ip)
    }

    /// Whether a packet from `from` (not the leg's peer) may count towards latching at `now`.
    fn admit(&self, negotiated: &Negotiated, now: Instant, from: SocketAddr) -> Admission {
        if self.open_until.is_some_and(|until| now < until)
            && self.acceptable(negotiated, from.ip())
        {
            Admission::Candidate
        } else {
            Admission::Foreign
        }
    }

    fn count_foreign(&mut self, from: SocketAddr) {
        self.stats.dropped_foreign += 1;
        self.stats.last_foreign = Some(from);
    }
}

/// What [`Relay::update_leg`] does to a leg's transcoder.
enum Rebuild {
    Keep,
    Set(Option<Transcoder>),
}

/// The relay for one call.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    legs: [Leg; 2],
    /// Per leg: the SDES keys and the SRTP contexts built from them; `None` for plain RTP.
    /// Boxed: a plain call pays one pointer per leg for it.
    srtp: [Option<Box<(SrtpKeys, SrtpSession)>>; 2],
    events: VecDeque<RelayEvent>,
    ntp_anchor: (Instant, NtpTimestamp),
    cname: String,
}

impl Relay {
    /// A relay between the customer's and the agent's negotiated streams. `now` starts the media
    /// timeout clocks; `wallclock` is the NTP time at `now`, for sender reports; `rng` picks our
    /// SSRCs and initial sequence numbers and timestamps (RFC 3550 §5.1).
    pub fn new(
        config: RelayConfig,
        customer: Negotiated,
        agent: Negotiated,
        now: Instant,
        wallclock: NtpTimestamp,
        rng: &mut dyn RngCore,
    ) -> Result<Relay, CodecError> {
        let mut relay =
            Relay::new_one_sided(config, Side::Customer, customer, now, wallclock, rng)?;
        relay.update_leg(Side::Agent, agent, now)?;
        Ok(relay)
    }

    /// A relay with only `side` set up: the customer has answered and the agent is still being
    /// called. Packets towards the missing leg are dropped as [`DropReason::NoDestination`] and
    /// packets from it as [`DropReason::UnexpectedPayloadType`] until [`Relay::update_leg`]
    /// sets it. Both outgoing streams get their SSRC and numbering here, so the agent's stream
    /// is the same whenever it starts.
    pub fn new_one_sided(
        config: RelayConfig,
        side: Side,
        negotiated: Negotiated,
        now: Instant,
        wallclock: NtpTimestamp,
        rng: &mut dyn RngCore,
    ) -> Result<Relay, CodecError> {
        let mut outgoing = || Outgoing {
            ssrc: Ssrc(rng.next_u32()),
            clock_rate: 8000,
            samples_per_packet: 8 * FRAME_MS,
            ptime: Duration::from_millis(u64::from(FRAME_MS)),
            started: false,
            next_seq: rng.next_u32() as u16,
            next_ts: rng.next_u32(),
            last_seq: 0,
            last_ts: 0,
            last_sent: None,
            source: None,
            src_seq_base: 0,
            src_ts_base: 0,
            out_seq_base: 0,
            out_ts_base: 0,
            stats: SenderStats::default(),
            schedule: ReportSchedule::new(config.report_interval),
        };
        let customer = Leg::new(outgoing(), &config, now);
        let agent = Leg::new(outgoing(), &config, now);
        let mut relay = Relay {
            config,
            legs: [customer, agent],
            srtp: [None, None],
            events: VecDeque::with_capacity(8),
            ntp_anchor: (now, wallclock),
            cname: format!("dialer-{:08x}", rng.next_u32()),
        };
        relay.update_leg(side, negotiated, now)?;
        Ok(relay)
    }

    /// Sets `side`'s negotiation: the first time for a leg created absent, or again after a
    /// re-INVITE (RFC 3264 §8: new address, new codec, hold). Our stream to `side` keeps its
    /// SSRC, and its sequence numbers and timestamps run on with the marker bit on the next
    /// packet; the transcoders between the legs are rebuilt when a codec changed. A new remote
    /// address replaces a latched one; the same address as before keeps the latch (the NAT
    /// binding is still the one packets come from). A negotiation that differs from the leg's
    /// current one (the first, or a re-INVITE/UPDATE that changes anything) opens a new latch
    /// window of [`RelayConfig::latch_window`] from `now`; the same negotiation again (a
    /// session refresh) leaves the latch as it is. A `c=0.0.0.0` or `sendonly`/`inactive`
    /// hold stops what we send to `side` and its media timeout until the next update. Ringback
    /// playing to `side` stops when its codec changes: the caller restarts it with the clip
    /// for the new codec.
    ///
    /// On error (libopus refused to build a transcoder) the relay is unchanged.
    pub fn update_leg(
        &mut self,
        side: Side,
        negotiated: Negotiated,
        now: Instant,
    ) -> Result<(), CodecError> {
        let i = side.index();
        let other = side.other().index();
        let new_codec = negotiated.codec;
        let other_codec = self.legs[other].codec();
        // Build what can fail first, so an error leaves the relay as it was.
        let (into_this, into_other) = match other_codec {
            Some(other_codec) => (
                self.transcoder_for(i, other_codec, new_codec)?,
                self.transcoder_for(other, new_codec, other_codec)?,
            ),
            None => (Rebuild::Keep, Rebuild::Keep),
        };
        let slots = SLOT * (usize::from(self.config.max_concealed) + 1);
        for (index, rebuild) in [(i, into_this), (other, into_other)] {
            let leg = &mut self.legs[index];
            match rebuild {
                Rebuild::Keep => {}
                Rebuild::Set(transcoder) => {
                    leg.transcoder = transcoder;
                    leg.pending.clear();
                    if leg.transcoder.is_some() && leg.pending_buf.len() < slots {
                        leg.pending_buf = vec![0u8; slots];
                    }
                }
            }
        }
        let latch_window = self.config.latch_window;
        let leg = &mut self.legs[i];
        let previous = leg.negotiated.take();
        let codec_changed = previous.as_ref().map(|p| p.codec) != Some(new_codec);
        let address_changed = previous.as_ref().and_then(|p| p.remote_rtp) != negotiated.remote_rtp;
        if previous.is_none() || address_changed {
            leg.remote = negotiated.remote_rtp;
            leg.latch.candidate = None;
        }
        if previous.as_ref() != Some(&negotiated) {
            // A new or changed negotiation: the leg may latch again, for a while.
            leg.latch.open_until = Some(now + latch_window);
            leg.latch.candidate = None;
        }
        if negotiated.remote_rtp.is_none() {
            leg.remote = None;
        }
        leg.sending = negotiated.direction.sends();
        if codec_changed {
            leg.out.clock_rate = new_codec.clock_rate();
            leg.out.samples_per_packet = new_codec.samples_per_ms() * FRAME_MS;
            // A digit playing in the old codec or clock stops; the queued ones play in the
            // new one.
            leg.dtmf = None;
            // Receive statistics count in the codec's clock: start them afresh.
            leg.incoming = None;
            leg.incoming_ssrc = None;
            leg.last_incoming_seq = None;
            if leg
                .ringback
                .as_ref()
                .is_some_and(|p| p.clip().codec() != new_codec)
            {
                leg.ringback = None;
                leg.ringback_due = None;
            }
        }
        // The next packet to `side` starts a new stretch of the stream (marker, RFC 3551 §4.1)
        // whatever its source was.
        leg.out.source = None;
        leg.negotiated = Some(negotiated);
        if codec_changed {
            // The other leg's stream is rescaled from this leg's clock: re-base it too.
            self.legs[other].out.source = None;
        }
        let leg = &mut self.legs[i];
        leg.last_rx = now;
        leg.timeout_reported = !leg.expects_media();
        Ok(())
    }

    /// Takes `side` away, as if the relay had been made without it ([`Relay::new_one_sided`]):
    /// what the leg's peer sent, its latch, its statistics, its transcoder and anything
    /// playing to it are forgotten, but our stream towards `side` keeps its SSRC, and its
    /// sequence numbers and timestamps run on when [`Relay::update_leg`] sets the leg again.
    /// This is how one agent's session takes one customer after another: the customer leg is
    /// replaced, the agent hears one stream throughout.
    pub fn reset_leg(&mut self, side: Side, now: Instant) {
        let i = side.index();
        let out = std::mem::replace(
            &mut self.legs[i].out,
            Outgoing::placeholder(self.config.report_interval),
        );
        let dtmf_mode = self.legs[i].dtmf_mode;
        let allowed = std::mem::take(&mut self.legs[i].latch.allowed);
        let mut leg = Leg::new(out, &self.config, now);
        leg.out.source = None;
        leg.dtmf_mode = dtmf_mode;
        leg.latch.allowed = allowed;
        self.legs[i] = leg;
        // The other leg's transcoder decoded this leg's codec: it is rebuilt with the next one.
        let other = &mut self.legs[side.other().index()];
        other.transcoder = None;
        other.pending.clear();
        other.out.source = None;
    }

    /// The transcoder leg `index` needs to receive `from` and send `to`, or `Keep` when the one
    /// it has already does that.
    fn transcoder_for(&self, index: usize, from: Codec, to: Codec) -> Result<Rebuild, CodecError> {
        let current = self.legs[index]
            .transcoder
            .as_ref()
            .map(|t| (t.from(), t.to()));
        if from == to {
            return Ok(if current.is_none() {
                Rebuild::Keep
            } else {
                Rebuild::Set(None)
            });
        }
        if current == Some((from, to)) {
            return Ok(Rebuild::Keep);
        }
        Ok(Rebuild::Set(Some(Transcoder::new(from, to)?)))
    }

    /// The codec negotiated with `side`, if it is set up.
    pub fn codec(&self, side: Side) -> Option<Codec> {
        self.legs[side.index()].codec()
    }

    /// Whether `side` is set up (see [`Relay::new_one_sided`]).
    pub fn has_leg(&self, side: Side) -> bool {
        self.legs[side.index()].negotiated.is_some()
    }

    /// Our SSRC towards `side`.
    pub fn ssrc(&self, side: Side) -> Ssrc {
        self.legs[side.index()].out.ssrc
    }

    /// Where media for `side` goes now.
    pub fn destination(&self, side: Side) -> Option<SocketAddr> {
        self.legs[side.index()].remote
    }

    /// Accepts `ip` as a source of `side`'s media besides the IP its SDP signalled, for a peer
    /// whose `c=` is not where its packets come from: an agent behind NAT, whose registered
    /// source address (the Contact binding's transport address) is where its phone really
    /// is. A source on `ip`, on any port (NAT picks the ports), may latch within the latch
    /// window like one on the signalled IP; outside the window it is foreign like any other.
    /// Kept across negotiations, for the relay's life; may be called before the leg is set
    /// up. Calling it twice with one IP is the same as once.
    pub fn allow_source(&mut self, side: Side, ip: IpAddr) {
        let allowed = &mut self.legs[side.index()].latch.allowed;
        let ip = ip.to_canonical();
        if !allowed.contains(&ip) {
            allowed.push(ip);
        }
    }

    /// What `side`'s source checks refused so far.
    pub fn source_stats(&self, side: Side) -> SourceStats {
        self.legs[side.index()].latch.stats
    }

    /// Whether `side` may still latch to a new source at `now`: its latch window is open and
    /// it has not latched since its last negotiation.
    pub fn may_latch(&self, side: Side, now: Instant) -> bool {
        self.legs[side.index()]
            .latch
            .open_until
            .is_some_and(|until| now < until)
    }

    /// Whether packets to `side` are transcoded.
    pub fn is_transcoding(&self, side: Side) -> bool {
        self.legs[side.index()].transcoder.is_some()
    }

    /// Statistics of what `side` sends us.
    pub fn receive_stats(&self, side: Side) -> Option<&ReceiverStats> {
        self.legs[side.index()].incoming.as_ref()
    }

    /// The latest report block `side`'s peer sent about our stream (loss, jitter).
    pub fn peer_report(&self, side: Side) -> Option<&ReportBlock> {
        self.legs[side.index()].last_peer_report.as_ref()
    }

    /// Starts playing ringback to `side`; the first frame is due at `now`.
    pub fn start_ringback(&mut self, side: Side, player: Player, now: Instant) {
        let leg = &mut self.legs[side.index()];
        leg.ringback = Some(player);
        leg.ringback_due = Some(now);
    }

    /// Whether ringback is playing to `side`.
    pub fn is_ringing(&self, side: Side) -> bool {
        self.legs[side.index()].ringback.is_some()
    }

    /// Stops ringback to `side`; the other leg's audio flows from its next packet.
    pub fn stop_ringback(&mut self, side: Side) {
        let leg = &mut self.legs[side.index()];
        leg.ringback = None;
        leg.ringback_due = None;
    }

    /// The earliest time [`Relay::poll_transmit`] or [`Relay::poll_event`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.legs
            .iter()
            .flat_map(|leg| {
                let timeout = self
                    .config
                    .media_timeout
                    .filter(|_| !leg.timeout_reported)
                    .map(|t| leg.last_rx + t);
                let dtmf = match &leg.dtmf {
                    Some(injection) => Some(injection.due()),
                    None if !leg.dtmf_queue.is_empty() && leg.ringback.is_none() => {
                        Some(leg.dtmf_idle_at.unwrap_or(leg.last_rx))
                    }
                    None => None,
                };
                [timeout, leg.ringback_due, leg.out.schedule.next_due(), dtmf]
            })
            .flatten()
            .min()
    }

    /// The next event, if any; checks media timeouts at `now`.
    pub fn poll_event(&mut self, now: Instant) -> Option<RelayEvent> {
        for (i, leg) in self.legs.iter_mut().enumerate() {
            let silent = self
                .config
                .media_timeout
                .is_some_and(|t| now >= leg.last_rx + t);
            if !leg.timeout_reported && silent {
                leg.timeout_reported = true;
                let side = if i == 0 { Side::Customer } else { Side::Agent };
                self.events.push_back(RelayEvent::MediaTimeout { side });
            }
        }
        self.events.pop_front()
    }

    fn ntp_at(&self, now: Instant) -> NtpTimestamp {
        let (at, ntp) = self.ntp_anchor;
        let elapsed = now.saturating_duration_since(at);
        let fraction = ((elapsed.subsec_nanos() as u64) << 32) / 1_000_000_000;
        NtpTimestamp(ntp.0.wrapping_add((elapsed.as_secs() << 32) + fraction))
    }

    /// A packet that is due at `now`: a concealment packet, a ringback frame or an RTCP report.
    /// Call until `None` after each [`Relay::forward`] and at each deadline.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<(SocketAddr, usize)> {
        self.poll_transmit_leg(now, buf).map(|t| (t.to, t.len))
    }

    /// [`Relay::poll_transmit`], saying also which leg the packet is for, so that the runtime
    /// sends it from that leg's socket (RTP, or RTCP on its own port, RFC 3550 §11).
    /// Towards an SRTP leg the packet is protected ([`Relay::set_srtp`]); one that cannot be
    /// (no room for the tag, the key's lifetime used up) is skipped.
    pub fn poll_transmit_leg(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        loop {
            let t = self.poll_transmit_plain(now, buf)?;
            if let Ok(len) = self.protect(t.side, buf, t.len) {
                return Some(Transmit { len, ..t });
            }
        }
    }

    fn poll_transmit_plain(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        const SIDES: [Side; 2] = [Side::Customer, Side::Agent];
        for side in SIDES {
            let leg = &mut self.legs[side.index()];
            if let Some((start, len)) = leg.pending.pop_front() {
                let Some(to) = leg.remote else { continue };
                if buf.len() < len {
                    continue;
                }
                buf[..len].copy_from_slice(&leg.pending_buf[start..start + len]);
                return Some(Transmit { side, to, len });
            }
        }
        for side in SIDES {
            if let Some((to, len)) = self.dtmf_packet(side.index(), now, buf) {
                return Some(Transmit { side, to, len });
            }
        }
        for side in SIDES {
            if let Some((to, len)) = self.ringback_frame(side.index(), now, buf) {
                return Some(Transmit { side, to, len });
            }
        }
        for side in SIDES {
            let i = side.index();
            if self.legs[i].out.started && self.legs[i].out.schedule.poll(now) {
                if let Some((to, len)) = self.sender_report(i, now, buf) {
                    return Some(Transmit { side, to, len });
                }
            }
        }
        None
    }

    fn ringback_frame(
        &mut self,
        i: usize,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<(SocketAddr, usize)> {
        let leg = &mut self.legs[i];
        let due = leg.ringback_due?;
        if now < due {
            return None;
        }
        if !leg.sending {
            return None;
        }
        let to = leg.remote?;
        let payload_type = leg.negotiated.as_ref()?.send_payload_type;
        let player = leg.ringback.as_mut()?;
        let samples = player.clip().samples_per_frame();
        let (marker, seq, ts) = leg.out.map(
            now,
            Source::Ringback,
            leg.ringback_seq,
            leg.ringback_ts,
            (1, 1),
        );
        leg.ringback_seq = leg.ringback_seq.wrapping_add(1);
        leg.ringback_ts = leg.ringback_ts.wrapping_add(samples);
        leg.ringback_due = Some(due + Duration::from_millis(u64::from(FRAME_MS)));
        let header = OutgoingHeader {
            marker,
            payload_type,
            sequence: seq,
            timestamp: ts,
            ssrc: leg.out.ssrc,
        };
        let frame = player.next_frame();
        let len = rtp::write_packet(buf, &header, frame).ok()?;
        leg.out.stats.on_sent(frame.len());
        Some((to, len))
    }

    fn sender_report(
        &mut self,
        i: usize,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<(SocketAddr, usize)> {
        let ntp = self.ntp_at(now);
        let leg = &mut self.legs[i];
        let negotiated = leg.negotiated.as_ref()?;
        let to = match (leg.remote, negotiated.remote_rtcp, negotiated.remote_rtp) {
            // Latched elsewhere: RTCP follows to the latched host (RFC 3550 §11 port + 1).
            (Some(remote), _, Some(sdp)) if remote != sdp => {
                let port = if negotiated.remote_rtcp == negotiated.remote_rtp {
                    remote.port()
                } else {
                    remote.port().wrapping_add(1)
                };
                SocketAddr::new(remote.ip(), port)
            }
            (_, Some(rtcp), _) => rtcp,
            (Some(remote), None, _) => SocketAddr::new(remote.ip(), remote.port().wrapping_add(1)),
            (None, None, _) => return None,
        };
        let elapsed = leg
            .out
            .last_sent
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        let rtp_timestamp = leg
            .out
            .last_ts
            .wrapping_add((elapsed.as_secs_f64() * f64::from(leg.out.clock_rate)) as u32);
        let info = rtcp::SenderInfo {
            ntp,
            rtp_timestamp,
            packet_count: leg.out.stats.packets,
            octet_count: leg.out.stats.octets,
        };
        let block = leg.incoming.as_mut().map(|s| s.report_block(now));
        let blocks: &[ReportBlock] = match &block {
            Some(b) => std::slice::from_ref(b),
            None => &[],
        };
        let len = rtcp::write_report(buf, leg.out.ssrc, Some(&info), blocks, &self.cname).ok()?;
        Some((to, len))
    }

    /// Sets `side`'s SRTP keys from its offer/answer (RFC 4568), or `None` for plain RTP. What
    /// `side` sends is unprotected with the peer's key before anything else reads it (so a
    /// packet that does not authenticate is dropped as [`DropReason::Unauthenticated`] whatever
    /// its source), and everything sent to `side` (relayed, transcoded, ringback, DTMF, sender
    /// reports) is protected with ours. The same keys again (a session refresh) keep the
    /// contexts, with their rollover counters and replay windows; new keys start new ones
    /// (RFC 3711 §3.3.1: a new master key starts its index anew).
    pub fn set_srtp(&mut self, side: Side, keys: Option<&SrtpKeys>) {
        let slot = &mut self.srtp[side.index()];
        if slot.as_deref().map(|(k, _)| k) == keys {
            return;
        }
        *slot = keys.map(|k| Box::new((k.clone(), k.session())));
    }

    /// Whether `side` uses SRTP.
    pub fn is_srtp(&self, side: Side) -> bool {
        self.srtp[side.index()].is_some()
    }

    /// Handles one datagram received on `side`'s port from `from`, `buf[..len]`; rewrites it in
    /// place for the other leg and says where it goes. On an SRTP leg the datagram is SRTP or
    /// SRTCP and is unprotected first; towards an SRTP leg the packet is protected last, so
    /// `buf` needs room for the tag ([`crate::srtp::CryptoSuite::rtp_overhead`]).
    pub fn forward(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Forward {
        self.forward_and_read(now, side, from, buf, len, |_| {})
    }

    /// [`Relay::forward`], handing `read` the datagram as plain RTP or RTCP (unprotected when
    /// `side` is SRTP) before the relay rewrites it: what a recorder needs of an SRTP leg.
    /// A packet that does not authenticate is dropped without being read.
    pub fn forward_and_read(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
        read: impl FnOnce(&[u8]),
    ) -> Forward {
        let len = match self.unprotect(side, buf, len.min(buf.len())) {
            Ok(len) => len,
            Err(reason) => return Forward::Dropped(reason),
        };
        read(&buf[..len]);
        match self.forward_plain(now, side, from, buf, len) {
            Forward::Send { to, len } => match self.protect(side.other(), buf, len) {
                Ok(len) => Forward::Send { to, len },
                Err(reason) => Forward::Dropped(reason),
            },
            dropped => dropped,
        }
    }

    /// Unprotects SRTP or SRTCP from an SRTP leg in place; plain legs' packets pass as they are.
    fn unprotect(&mut self, side: Side, buf: &mut [u8], len: usize) -> Result<usize, DropReason> {
        let Some((_, session)) = self.srtp[side.index()].as_deref_mut() else {
            return Ok(len);
        };
        // The first bytes of SRTP and SRTCP are in the clear (RFC 3711 §3.1, §3.4), so the
        // RFC 5761 §4 test tells them apart before decryption.
        let result = match rtp::classify(&buf[..len]) {
            PacketKind::Rtp => session.unprotect_rtp(buf, len),
            PacketKind::Rtcp => session.unprotect_rtcp(buf, len),
            PacketKind::Other => return Ok(len),
        };
        result.map_err(|e| DropReason::of_srtp(&e))
    }

    /// Protects an RTP or RTCP packet we send to an SRTP leg, in place.
    fn protect(&mut self, side: Side, buf: &mut [u8], len: usize) -> Result<usize, DropReason> {
        let Some((_, session)) = self.srtp[side.index()].as_deref_mut() else {
            return Ok(len);
        };
        let result = match rtp::classify(&buf[..len]) {
            PacketKind::Rtcp => session.protect_rtcp(buf, len),
            _ => session.protect_rtp(buf, len),
        };
        result.map_err(|e| DropReason::of_srtp(&e))
    }

    fn forward_plain(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Forward {
        let len = len.min(buf.len());
        match rtp::classify(&buf[..len]) {
            PacketKind::Rtp => {}
            PacketKind::Rtcp => {
                let leg = &mut self.legs[side.index()];
                // RTCP comes from the peer's IP (from another port: RFC 3550 §11 port + 1);
                // reports from anywhere else would let a third party skew our statistics.
                let from_peer_host = leg
                    .remote
                    .is_some_and(|r| r.ip().to_canonical() == from.ip().to_canonical());
                let acceptable = from_peer_host
                    || leg
                        .negotiated
                        .as_ref()
                        .is_some_and(|n| leg.latch.acceptable(n, from.ip()));
                if !acceptable {
                    leg.latch.count_foreign(from);
                    return Forward::Dropped(DropReason::ForeignSource);
                }
                self.read_rtcp(now, side, &buf[..len]);
                return Forward::Dropped(DropReason::Rtcp);
            }
            PacketKind::Other => return Forward::Dropped(DropReason::Malformed),
        }
        let Ok(header) = RtpHeader::parse(&buf[..len]) else {
            return Forward::Dropped(DropReason::Malformed);
        };
        let latch_after = self.config.latch_after;
        let max_concealed = self.config.max_concealed;
        let (ingress, _) = self.pair(side);
        // An absent leg expects nothing, so its packets stop here.
        let Some(in_negotiated) = ingress.negotiated.as_ref() else {
            return Forward::Dropped(DropReason::UnexpectedPayloadType);
        };
        let in_codec = in_negotiated.codec;
        let in_event = in_negotiated.telephone_event;
        let from_peer = ingress.remote == Some(from);
        if !from_peer {
            // Checked before the payload type, so that every packet from a source that cannot
            // become the peer is counted, and none of them touches the latch candidate.
            if let Admission::Foreign = ingress.latch.admit(in_negotiated, now, from) {
                ingress.latch.count_foreign(from);
                return Forward::Dropped(DropReason::ForeignSource);
            }
        }
        if !ingress.expects(header.payload_type) {
            return Forward::Dropped(DropReason::UnexpectedPayloadType);
        }
        if !from_peer {
            let count = match ingress.latch.candidate {
                Some((addr, n)) if addr == from => n + 1,
                _ => 1,
            };
            if count < latch_after {
                ingress.latch.candidate = Some((from, count));
                return Forward::Dropped(DropReason::UnexpectedSource);
            }
            // Latched: the window closes until the next negotiation.
            ingress.latch.candidate = None;
            ingress.latch.open_until = None;
            ingress.remote = Some(from);
            self.events
                .push_back(RelayEvent::Latched { side, to: from });
        } else {
            ingress.latch.candidate = None;
        }
        let digit = self.collect_digit(side, &header, &buf[..len]);
        let (heard, keying) = self.detect_inband(side, &header, &buf[..len]);
        let (ingress, egress) = self.pair(side);
        ingress.last_rx = now;
        ingress.timeout_reported = false;
        if ingress.incoming_ssrc != Some(header.ssrc) {
            ingress.incoming_ssrc = Some(header.ssrc);
            ingress.incoming = Some(ReceiverStats::new(header.ssrc, in_codec.clock_rate()));
            ingress.last_incoming_seq = None;
        }
        let is_event = ingress.is_telephone_event(header.payload_type);
        let gap = match ingress.last_incoming_seq {
            Some(last) => header.sequence.wrapping_sub(last).wrapping_sub(1),
            None => 0,
        };
        if !is_event && (ingress.last_incoming_seq.is_none() || (gap as i16) >= 0) {
            ingress.last_incoming_seq = Some(header.sequence);
        }
        if let Some(stats) = ingress.incoming.as_mut() {
            stats.on_packet(now, header.sequence, header.timestamp);
        }
        if egress.ringback.is_some() {
            return Forward::Dropped(DropReason::RingbackPlaying);
        }
        let (Some(to), Some(out_negotiated), true) =
            (egress.remote, egress.negotiated.as_ref(), egress.sending)
        else {
            return Forward::Dropped(DropReason::NoDestination);
        };
        let out_codec = out_negotiated.codec;
        let out_payload_type = out_negotiated.send_payload_type;
        let out_event = out_negotiated.telephone_event;
        let source = Source::Relayed(header.ssrc);

        if is_event {
            let passes = egress.dtmf_mode == DtmfMode::Rfc4733 && out_event.is_some();
            if !passes {
                // The digit goes on as a tone (an in-band leg, or one without
                // telephone-event) or as SIP INFO (the call logic acts on the report).
                if egress.dtmf_mode != DtmfMode::Info {
                    if let Some(digit) = digit {
                        egress.queue_digit(digit);
                    }
                }
                return Forward::Dropped(if egress.dtmf_mode == DtmfMode::Rfc4733 {
                    DropReason::NoTelephoneEvent
                } else {
                    DropReason::DtmfConverted
                });
            }
        }
        // A key heard in the audio goes on as events or INFO to a leg that takes them, and
        // the tone itself is held back; an in-band leg, or one without telephone-event,
        // hears the tone as it is.
        let takes_tone = egress.dtmf_mode == DtmfMode::Inband
            || (egress.dtmf_mode == DtmfMode::Rfc4733 && out_event.is_none());
        if !takes_tone {
            if let (Some(key), DtmfMode::Rfc4733) = (heard, egress.dtmf_mode) {
                egress.queue_digit(key);
            }
            if keying {
                return Forward::Dropped(DropReason::DtmfConverted);
            }
        }
        if egress.dtmf_busy(now) {
            return Forward::Dropped(DropReason::DtmfPlaying);
        }

        if is_event {
            // RFC 4733: events are passed on, never transcoded; only the number changes, and
            // the timestamp clock when the legs' event clocks differ.
            let (Some(out_event), Some(in_event)) = (out_event, in_event) else {
                return Forward::Dropped(DropReason::NoTelephoneEvent);
            };
            let ratio = (out_event.clock_rate, in_event.clock_rate);
            let (switched, seq, mut ts) =
                egress
                    .out
                    .map(now, source, header.sequence, header.timestamp, ratio);
            if out_event.clock_rate != in_event.clock_rate {
                // RFC 4733 §2.3.5: the duration counts in the event clock too.
                let at = header.payload_offset;
                if let Ok(payload) = EventPayload::parse(&buf[at..at + header.payload_len]) {
                    let bridged = egress.event_bridge.rescale(
                        header.timestamp,
                        &payload,
                        in_event.clock_rate,
                        out_event.clock_rate,
                        ts,
                    );
                    ts = bridged.timestamp;
                    buf[at + 2..at + 4].copy_from_slice(&bridged.duration.to_be_bytes());
                }
            }
            rtp::rewrite_header(
                &mut buf[..len],
                header.marker || switched,
                out_event.send_payload_type,
                seq,
                ts,
                egress.out.ssrc,
            );
            egress.out.stats.on_sent(header.payload_len);
            return Forward::Send { to, len };
        }

        let ratio = (out_codec.clock_rate(), in_codec.clock_rate());
        let Some(transcoder) = egress.transcoder.as_mut() else {
            let (switched, seq, ts) =
                egress
                    .out
                    .map(now, source, header.sequence, header.timestamp, ratio);
            rtp::rewrite_header(
                &mut buf[..len],
                header.marker || switched,
                out_payload_type,
                seq,
                ts,
                egress.out.ssrc,
            );
            egress.out.stats.on_sent(header.payload_len);
            return Forward::Send { to, len };
        };

        // Transcoding: conceal a short gap first (RFC 3550 sequence gap = lost packets), then
        // the packet itself; all are queued in order and the first is returned in `buf`.
        let lost = if (gap as i16) > 0 {
            gap.min(max_concealed)
        } else {
            0
        };
        // A lost packet is taken to be as long as this one: G.711 carries one sample per byte;
        // for Opus the 20 ms our offers and answers ask for.
        let source_samples = match in_codec {
            Codec::Pcmu | Codec::Pcma => header.payload_len as u32,
            Codec::Opus => in_codec.samples_per_ms() * FRAME_MS,
        };
        egress.pending.clear();
        let payload_type = out_payload_type;
        let ssrc = egress.out.ssrc;
        let mut slot = 0;
        for k in (1..=lost).rev() {
            let seq_lost = header.sequence.wrapping_sub(k);
            let ts_lost = header.timestamp.wrapping_sub(u32::from(k) * source_samples);
            let region = &mut egress.pending_buf[slot * SLOT..(slot + 1) * SLOT];
            let Ok((plen, _)) =
                transcoder.conceal(source_samples as usize, &mut region[rtp::HEADER_LEN..])
            else {
                continue;
            };
            let (switched, seq, ts) = egress.out.map(now, source, seq_lost, ts_lost, ratio);
            let h = OutgoingHeader {
                marker: switched,
                payload_type,
                sequence: seq,
                timestamp: ts,
                ssrc,
            };
            write_header_only(region, &h);
            egress.out.stats.on_sent(plen);
            egress
                .pending
                .push_back((slot * SLOT, rtp::HEADER_LEN + plen));
            slot += 1;
        }
        let region = &mut egress.pending_buf[slot * SLOT..(slot + 1) * SLOT];
        let payload = header.payload(&buf[..len]);
        let Ok((plen, _)) = transcoder.transcode(payload, &mut region[rtp::HEADER_LEN..]) else {
            egress.pending.clear();
            return Forward::Dropped(DropReason::Codec);
        };
        let (switched, seq, ts) =
            egress
                .out
                .map(now, source, header.sequence, header.timestamp, ratio);
        let h = OutgoingHeader {
            marker: header.marker || switched,
            payload_type,
            sequence: seq,
            timestamp: ts,
            ssrc,
        };
        write_header_only(region, &h);
        egress.out.stats.on_sent(plen);
        egress
            .pending
            .push_back((slot * SLOT, rtp::HEADER_LEN + plen));
        // Hand the first queued packet back in `buf`.
        let (start, first_len) = egress
            .pending
            .pop_front()
            .expect("one packet was just queued");
        if buf.len() < first_len {
            egress.pending.clear();
            return Forward::Dropped(DropReason::BufferTooSmall);
        }
        buf[..first_len].copy_from_slice(&egress.pending_buf[start..start + first_len]);
        Forward::Send { to, len: first_len }
    }

    /// How `side` takes DTMF (see the module docs); `Rfc4733` until set.
    pub fn set_dtmf_mode(&mut self, side: Side, mode: DtmfMode) {
        self.legs[side.index()].dtmf_mode = mode;
    }

    /// `side`'s DTMF mode.
    pub fn dtmf_mode(&self, side: Side) -> DtmfMode {
        self.legs[side.index()].dtmf_mode
    }

    /// Plays a key press (event code 0-15, RFC 4733 §3.2) to `side`, after any digit already
    /// queued for it: as telephone-events on the leg's payload type and clock when it is in
    /// `Rfc4733` mode and negotiated them, else as the Q.23 tone pair in its codec. The
    /// duration is clamped to [`crate::dtmf::MIN_PRESS`]..=[`crate::dtmf::MAX_PRESS`].
    /// Returns false (nothing queued) for another event code, a leg not set up, or a leg
    /// with [`MAX_QUEUED_DIGITS`] already waiting (the digit is counted in
    /// [`Relay::dtmf_dropped`]); a leg in `Info` mode gets the tone, since the caller asked
    /// for it in the media. The first packet is due at once (the caller drains
    /// [`Relay::poll_transmit_leg`]).
    pub fn send_digit(&mut self, now: Instant, side: Side, event: u8, duration: Duration) -> bool {
        let leg = &mut self.legs[side.index()];
        if event > 15 || leg.negotiated.is_none() {
            return false;
        }
        if !leg.queue_digit((event, crate::dtmf::press_duration(duration))) {
            return false;
        }
        if leg.dtmf.is_none() && leg.dtmf_idle_at.is_none_or(|at| at < now) {
            leg.dtmf_idle_at = Some(now);
        }
        true
    }

    /// How many digits towards `side` were dropped because [`MAX_QUEUED_DIGITS`] were
    /// already waiting to play to it.
    pub fn dtmf_dropped(&self, side: Side) -> u64 {
        self.legs[side.index()].dtmf_dropped
    }

    /// Whether a digit is playing or queued towards `side`.
    pub fn is_playing_digit(&self, side: Side) -> bool {
        let leg = &self.legs[side.index()];
        leg.dtmf.is_some() || !leg.dtmf_queue.is_empty()
    }

    /// Feeds a packet from `side` that passed the source checks to its digit collector;
    /// reports a digit that ended and returns it with its duration.
    fn collect_digit(
        &mut self,
        side: Side,
        header: &RtpHeader,
        packet: &[u8],
    ) -> Option<(u8, Duration)> {
        let leg = &mut self.legs[side.index()];
        if !leg.is_telephone_event(header.payload_type) {
            return None;
        }
        let rate = leg.negotiated.as_ref()?.telephone_event?.clock_rate.max(1);
        let payload = EventPayload::parse(header.payload(packet)).ok()?;
        let digit = leg.digits.push(header.timestamp, &payload)?;
        let duration =
            Duration::from_micros(u64::from(digit.duration) * 1_000_000 / u64::from(rate));
        self.events.push_back(RelayEvent::Digit {
            side,
            event: digit.event,
            duration,
        });
        Some((digit.event, crate::dtmf::press_duration(duration)))
    }

    /// Decodes an audio packet from an `Inband` leg into its key detector; reports a key that
    /// ended. Returns that key and whether a key is sounding now.
    fn detect_inband(
        &mut self,
        side: Side,
        header: &RtpHeader,
        packet: &[u8],
    ) -> (Option<(u8, Duration)>, bool) {
        let leg = &mut self.legs[side.index()];
        let Some(negotiated) = leg.negotiated.as_ref() else {
            return (None, false);
        };
        if leg.dtmf_mode != DtmfMode::Inband
            || leg.is_telephone_event(header.payload_type)
            || (header.payload_type != negotiated.receive_payload_type
                && header.payload_type != negotiated.send_payload_type)
        {
            return (None, false);
        }
        let codec = negotiated.codec;
        if leg.detector.as_ref().is_none_or(|d| d.codec != codec) {
            // Opus decodes straight to 8 kHz, the detector's rate for every codec.
            let Ok(decoder) = Decoder::with_rate(codec, 8000) else {
                return (None, false);
            };
            leg.detector = Some(Box::new(Detection {
                codec,
                decoder,
                detector: ToneDetector::new(8000),
                pcm: vec![0; crate::codec::MAX_FRAME_SAMPLES],
            }));
        }
        let Some(detection) = leg.detector.as_mut() else {
            return (None, false);
        };
        let Detection {
            decoder,
            detector,
            pcm,
            ..
        } = &mut **detection;
        let key = match decoder.decode(header.payload(packet), pcm) {
            Ok(n) => detector.push(&pcm[..n]),
            Err(_) => None,
        };
        let keying = detector.is_active();
        if let Some((event, duration)) = key {
            self.events.push_back(RelayEvent::Digit {
                side,
                event,
                duration,
            });
        }
        (
            key.map(|(e, d)| (e, crate::dtmf::press_duration(d))),
            keying,
        )
    }

    /// The next packet of the digit playing to leg `i`, when one is due; starts the next
    /// queued digit when the leg is free.
    fn dtmf_packet(
        &mut self,
        i: usize,
        now: Instant,
        buf: &mut [u8],
    ) -> Option<(SocketAddr, usize)> {
        let leg = &mut self.legs[i];
        if leg.dtmf.is_none() {
            if leg.dtmf_queue.is_empty()
                || leg.ringback.is_some()
                || leg.dtmf_idle_at.is_some_and(|at| now < at)
            {
                return None;
            }
            let (event, duration) = leg.dtmf_queue.pop_front()?;
            leg.dtmf = Self::start_injection(leg, event, duration, now);
            leg.dtmf.as_ref()?;
        }
        if leg.dtmf.as_ref().is_some_and(|d| now < d.due()) {
            return None;
        }
        let (Some(to), true) = (leg.remote, leg.sending) else {
            // Nowhere to play it: the digit is dropped.
            leg.dtmf = None;
            return None;
        };
        let ptime = leg.out.ptime;
        let ssrc = leg.out.ssrc;
        let samples_per_packet = leg.out.samples_per_packet;
        let finished;
        let result = match leg.dtmf.as_mut()? {
            Injection::Events {
                sequence,
                payload_type,
                timestamp,
                next_seq,
                sent,
                due,
            } => {
                let packet = sequence.next_packet()?;
                let header = OutgoingHeader {
                    marker: packet.marker,
                    payload_type: *payload_type,
                    sequence: *next_seq,
                    // RFC 4733 §2.5.1.3: a long event's later segments start later.
                    timestamp: timestamp.wrapping_add(packet.segment_offset),
                    ssrc,
                };
                let len = rtp::write_packet(buf, &header, &packet.payload).ok();
                // The stream's time runs on under the event (RFC 4733 §2.5.1.2: the
                // timestamp stays the start; the audio after it continues from the end).
                let running = timestamp.wrapping_add(*sent * samples_per_packet);
                leg.out.sent_own(now, Source::Event, *next_seq, running);
                leg.out.stats.on_sent(packet.payload.len());
                *next_seq = next_seq.wrapping_add(1);
                *sent += 1;
                *due += ptime;
                finished = sequence.is_done();
                len
            }
            Injection::Tone {
                generator,
                encoder,
                pcm,
                payload,
                frames_left,
                due,
            } => {
                generator.fill(pcm);
                let plen = encoder.encode(pcm, payload).ok();
                let (marker, seq, ts) =
                    leg.out
                        .map(now, Source::Tone, leg.tone_seq, leg.tone_ts, (1, 1));
                leg.tone_seq = leg.tone_seq.wrapping_add(1);
                leg.tone_ts = leg.tone_ts.wrapping_add(samples_per_packet);
                *frames_left = frames_left.saturating_sub(1);
                *due += ptime;
                finished = *frames_left == 0;
                plen.and_then(|plen| {
                    let header = OutgoingHeader {
                        marker,
                        payload_type: leg.negotiated.as_ref()?.send_payload_type,
                        sequence: seq,
                        timestamp: ts,
                        ssrc,
                    };
                    leg.out.stats.on_sent(plen);
                    rtp::write_packet(buf, &header, &payload[..plen]).ok()
                })
            }
        };
        if finished {
            leg.dtmf = None;
            leg.dtmf_idle_at = Some(now + INTER_DIGIT_PAUSE);
        }
        result.map(|len| (to, len))
    }

    /// The injection that plays `event` to `leg` in its form, starting at `now`.
    fn start_injection(
        leg: &mut Leg,
        event: u8,
        duration: Duration,
        now: Instant,
    ) -> Option<Injection> {
        let negotiated = leg.negotiated.as_ref()?;
        let ptime = leg.out.ptime;
        match (leg.dtmf_mode, negotiated.telephone_event) {
            (DtmfMode::Rfc4733, Some(te)) => {
                let (next_seq, timestamp) = leg.out.resume(now);
                Some(Injection::Events {
                    sequence: EventSequence::for_press(event, duration, te.clock_rate, ptime),
                    payload_type: te.send_payload_type,
                    timestamp,
                    next_seq,
                    sent: 0,
                    due: now,
                })
            }
            _ => {
                let codec = negotiated.codec;
                // Opus is coded from 8 kHz PCM, as on the transcoding path (see `codec`).
                let encoder = match codec {
                    Codec::Opus => Encoder::with_rate(codec, 8000),
                    _ => Encoder::new(codec),
                }
                .ok()?;
                let rate = encoder.rate();
                let generator = ToneGenerator::new(event, duration, rate)?;
                let frame = (rate / 1000 * FRAME_MS) as usize;
                let frames = duration.as_millis().div_ceil(u128::from(FRAME_MS)) as u32;
                Some(Injection::Tone {
                    generator,
                    encoder: Box::new(encoder),
                    pcm: vec![0; frame],
                    payload: vec![0; SLOT],
                    frames_left: frames.max(1),
                    due: now,
                })
            }
        }
    }

    fn pair(&mut self, side: Side) -> (&mut Leg, &mut Leg) {
        let [customer, agent] = &mut self.legs;
        match side {
            Side::Customer => (customer, agent),
            Side::Agent => (agent, customer),
        }
    }

    fn read_rtcp(&mut self, now: Instant, side: Side, packet: &[u8]) {
        let Ok(reports) = rtcp::parse_compound(packet) else {
            return;
        };
        let leg = &mut self.legs[side.index()];
        let ours = leg.out.ssrc;
        for report in reports {
            if let (Some(info), Some(stats)) = (&report.sender_info, leg.incoming.as_mut()) {
                stats.on_sender_report(now, info);
            }
            if let Some(block) = report.blocks.iter().find(|b| b.ssrc == ours) {
                leg.last_peer_report = Some(*block);
            }
        }
    }
}

fn write_header_only(region: &mut [u8], header: &OutgoingHeader) {
    region[0] = 0x80;
    rtp::rewrite_header(
        region,
        header.marker,
        header.payload_type,
        header.sequence,
        header.timestamp,
        header.ssrc,
    );
}

#[cfg(test)]
mod dtmf_queue_tests {
    use super::*;
    use crate::rtcp::NtpTimestamp;
    use crate::rtp::{OutgoingHeader, PayloadType};
    use crate::sdp::{
        answer_offer, build_offer, process_answer, LocalEndpoint, MediaConfig, SessionDescription,
    };
    use rand::SeedableRng;

    const CUSTOMER: &str = "198.51.100.7:4000";

    fn local(port: u16) -> LocalEndpoint {
        LocalEndpoint {
            address: "203.0.113.1".parse().unwrap(),
            rtp_port: port,
            session_id: 1,
            session_version: 1,
        }
    }

    /// Customer PCMA with telephone-event 101, agent PCMU with telephone-event 96.
    fn relay(t0: Instant) -> Relay {
        let body = "v=0\r\no=trunk 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
        let offer = SessionDescription::parse(body).unwrap();
        let customer = answer_offer(&offer, &MediaConfig::default(), &local(30000))
            .unwrap()
            .1;
        let config = MediaConfig::default();
        let ours = build_offer(&config, &local(30002));
        let body = "v=0\r\no=agent 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n";
        let answer = SessionDescription::parse(body).unwrap();
        let agent = process_answer(&ours, &answer, &config).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let wallclock = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
        Relay::new(
            RelayConfig::default(),
            customer,
            agent,
            t0,
            wallclock,
            &mut rng,
        )
        .unwrap()
    }

    #[test]
    fn injected_digits_beyond_the_bound_are_refused_and_counted() {
        let t0 = crate::test_epoch();
        let mut relay = relay(t0);
        for i in 0..MAX_QUEUED_DIGITS + 8 {
            let queued =
                relay.send_digit(t0, Side::Agent, (i % 10) as u8, Duration::from_millis(100));
            assert_eq!(queued, i < MAX_QUEUED_DIGITS, "digit {i}");
        }
        assert_eq!(
            relay.legs[Side::Agent.index()].dtmf_queue.len(),
            MAX_QUEUED_DIGITS
        );
        assert_eq!(relay.dtmf_dropped(Side::Agent), 8);
        assert_eq!(relay.dtmf_dropped(Side::Customer), 0);
        // Once digits have played, there is room again.
        let mut now = t0;
        let mut buf = [0u8; 1500];
        while relay.legs[Side::Agent.index()].dtmf_queue.len() == MAX_QUEUED_DIGITS {
            while relay.poll_transmit_leg(now, &mut buf).is_some() {}
            now += Duration::from_millis(5);
            assert!(now < t0 + Duration::from_secs(5), "a digit played");
        }
        assert!(relay.send_digit(now, Side::Agent, 1, Duration::from_millis(100)));
        assert_eq!(relay.dtmf_dropped(Side::Agent), 8);
    }

    #[test]
    fn converted_digits_from_a_peer_keying_fast_are_bounded_too() {
        let t0 = crate::test_epoch();
        let mut relay = relay(t0);
        relay.set_dtmf_mode(Side::Agent, DtmfMode::Inband);
        let mut seq = 300u16;
        for i in 0..MAX_QUEUED_DIGITS as u32 + 10 {
            let ts = 9000 + i * 2000;
            for (duration, end) in [(160u16, false), (960, true)] {
                let payload = [
                    (i % 10) as u8,
                    if end { 0x8a } else { 0x0a },
                    (duration >> 8) as u8,
                    duration as u8,
                ];
                let header = OutgoingHeader {
                    marker: !end,
                    payload_type: PayloadType(101),
                    sequence: seq,
                    timestamp: ts,
                    ssrc: crate::rtp::Ssrc(0xc0ffee),
                };
                seq = seq.wrapping_add(1);
                let mut buf = [0u8; 1500];
                let len = crate::rtp::write_packet(&mut buf, &header, &payload).unwrap();
                let now = t0 + Duration::from_millis(u64::from(seq - 300) * 10);
                let from: SocketAddr = CUSTOMER.parse().unwrap();
                relay.forward(now, Side::Customer, from, &mut buf, len);
            }
        }
        let queue = &relay.legs[Side::Agent.index()].dtmf_queue;
        assert_eq!(queue.len(), MAX_QUEUED_DIGITS);
        assert_eq!(relay.dtmf_dropped(Side::Agent), 10);
    }
}
