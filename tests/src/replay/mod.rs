//! Capture replay: a recorded call's remote side fed into our sans-IO cores in virtual time,
//! and what our cores answer compared with what was recorded, by meaning.
//!
//! # Drive loop
//! 1. [`Recording::load`] reads a capture with the `capture` crate and extracts its SIP
//!    messages with `dialer::pcap::sip` (UDP, reassembled TCP, WebSocket);
//!    [`Recording::calls`] / [`Recording::keep_calls`] pick the calls to replay.
//! 2. A [`Replay`] names the recorded addresses of *our* side; every other sender is a remote
//!    party, named through [`Replay::name`] for the ladders.
//! 3. [`Replay::run`] walks virtual time ([`Time::ZERO`] is the first recorded message): at each
//!    recorded remote message's time it runs the core's due timers, then rewrites the message
//!    for the live call (see below) and feeds it in; [`Kick`]s start what the local party did on
//!    its own (a B2BUA's `originate`); after each input everything the core transmits is
//!    drained. Time stops `grace` after the last recorded message.
//! 4. The [`Outcome`] holds both ladders as [`Step`]s: method or status, CSeq (numbers replaced
//!    by their order of first use per owner), To-tag presence, sender, receiver and the party
//!    a request's Request-URI names, so tests compare `outcome.live_ladder(party)` with
//!    `outcome.recorded_ladder(party)` or with an expected ladder.
//!
//! # Normalisation
//! Our core picks its own Call-IDs, tags, branches and CSeq numbers, so recorded remote messages
//! are rewritten against what the core really sent. Each message the core sends is paired with
//! the recorded local message it stands for (the k-th message to the same party with the same
//! method or status and CSeq method). A pair teaches: recorded Call-ID → live Call-ID; our
//! recorded tag → our live From/To header; our recorded Contact → our live Contact; and for a
//! request, its live Via, CSeq, From and To. A recorded remote response then gets the live
//! request's Via, CSeq, From and To (keeping the remote's To tag); a recorded remote request
//! gets the live Call-ID, our live header in place of the one carrying our recorded tag, and
//! our live Contact as Request-URI when it named our recorded address. Addresses are not
//! rewritten: the live setup gives our core and its peers the recorded addresses, and the
//! ladders name addresses by party.
//!
//! A recorded remote response to a request our core never sent (the call went another way)
//! is not fed; it is listed in [`Outcome::skipped`].
//!
//! # What it deliberately does not do
//! - No byte comparison: headers our cores write differently from the recorded equipment
//!   (User-Agent, Allow, header order, SDP) are not what a regression is about.
//! - No RTP: media replays drive `media::relay::Relay` directly (see `tests/tests/replay_*.rs`);
//!   [`rtp_packets`] extracts a recorded stream.
//! - No rewriting of digest credentials: recorded credentials answer the recorded nonce, so a
//!   server core under test sees them as what they are, credentials it cannot accept.
//!
//! # Errors and panics
//! [`Recording::load`] returns a [`ReplayError`] naming the file (unreadable capture, a SIP
//! message that does not parse). Inside a replay, a message our core sends that does not parse
//! is a bug in the core and panics with the bytes.

pub mod cores;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sip_core::endpoint::Transmit;
use sip_core::message::{HeaderKind, Message, Method, NameAddr, SipMessage, Uri};
use sip_core::time::Time;
use sip_core::transaction::Transport;

/// Why a capture cannot be replayed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReplayError {
    /// The capture could not be read.
    Capture(capture::CaptureError),
    /// A SIP-looking payload of the capture does not parse.
    Sip {
        /// The capture.
        file: PathBuf,
        /// Its frame number.
        packet: usize,
        /// The parser's reason.
        error: String,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Capture(e) => write!(f, "{e}"),
            ReplayError::Sip {
                file,
                packet,
                error,
            } => write!(
                f,
                "{}: packet {packet}: SIP message does not parse: {error}",
                file.display()
            ),
        }
    }
}

impl std::error::Error for ReplayError {}

/// One recorded SIP message.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Frame number in the capture.
    pub packet: usize,
    /// Time since the first SIP message of the recording.
    pub at: Duration,
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// The transport it came over.
    pub transport: Transport,
    /// The message.
    pub message: Message,
    /// The same sender sent the same bytes to the same receiver before.
    pub retransmission: bool,
}

/// The SIP messages of a capture, in frame order.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The messages.
    pub messages: Vec<Recorded>,
}

impl Recording {
    /// Reads every SIP message of the capture at `path`. Capture warnings (a truncated last
    /// frame) are tolerated; a SIP message that does not parse is an error.
    pub fn load(path: &Path) -> Result<Recording, ReplayError> {
        let capture = capture::read_file(path).map_err(ReplayError::Capture)?;
        let found = dialer::pcap::sip::messages(&capture);
        let origin = found.first().map_or(Duration::ZERO, |m| m.time);
        let mut seen: Vec<(SocketAddr, SocketAddr, &[u8])> = Vec::new();
        let mut messages = Vec::with_capacity(found.len());
        for m in &found {
            let message = match &m.message {
                Ok(message) => message.clone(),
                Err(e) => {
                    return Err(ReplayError::Sip {
                        file: path.to_path_buf(),
                        packet: m.index,
                        error: e.to_string(),
                    })
                }
            };
            let key = (m.src, m.dst, &*m.bytes);
            let retransmission = seen.contains(&key);
            if !retransmission {
                seen.push(key);
            }
            messages.push(Recorded {
                packet: m.index,
                at: m.time.saturating_sub(origin),
                src: m.src,
                dst: m.dst,
                transport: match m.transport {
                    capture::Transport::Udp => Transport::Udp,
                    // SCTP is reliable (RFC 4168): no retransmissions, as over TCP.
                    capture::Transport::Tcp
                    | capture::Transport::WebSocket
                    | capture::Transport::Sctp => Transport::Tcp,
                },
                message,
                retransmission,
            });
        }
        Ok(Recording { messages })
    }

    /// The Call-IDs in order of first appearance.
    pub fn calls(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &self.messages {
            if let Ok(id) = m.message.call_id() {
                if !out.iter().any(|o| o == id) {
                    out.push(id.to_owned());
                }
            }
        }
        out
    }

    /// The Call-IDs whose first message is a request with `method`.
    pub fn calls_started_by(&self, method: Method) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|id| {
                self.messages
                    .iter()
                    .find(|m| m.message.call_id().ok() == Some(id.as_str()))
                    .and_then(|m| m.message.as_request())
                    .is_some_and(|r| r.method == method)
            })
            .collect()
    }

    /// Only the messages of these Call-IDs; times stay relative to the original origin.
    pub fn keep_calls(&self, call_ids: &[String]) -> Recording {
        Recording {
            messages: self
                .messages
                .iter()
                .filter(|m| {
                    m.message
                        .call_id()
                        .is_ok_and(|id| call_ids.iter().any(|c| c == id))
                })
                .cloned()
                .collect(),
        }
    }

    /// Only the messages up to and including frame `packet`.
    pub fn until_packet(&self, packet: usize) -> Recording {
        Recording {
            messages: self
                .messages
                .iter()
                .filter(|m| m.packet <= packet)
                .cloned()
                .collect(),
        }
    }

    /// Shifts time so that the first kept message is at zero.
    pub fn rebased(mut self) -> Recording {
        let origin = self.messages.first().map_or(Duration::ZERO, |m| m.at);
        for m in &mut self.messages {
            m.at = m.at.saturating_sub(origin);
        }
        self
    }
}

/// A core under test, driven like the runtime drives it.
pub trait UnderTest {
    /// A datagram (or TCP message) from `source`.
    fn receive(&mut self, now: Time, transport: Transport, source: SocketAddr, bytes: &[u8]);
    /// Its timers at `now`.
    fn timeout(&mut self, now: Time);
    /// When [`UnderTest::timeout`] is next due.
    fn next_timeout(&mut self) -> Option<Time>;
    /// The next thing it sends, after doing what the runtime would do for its other output
    /// (media actions, registrar events) at `now`.
    fn transmit(&mut self, now: Time) -> Option<Transmit>;
}

/// What a [`Kick`] does to the core at its time.
pub type KickAction<C> = Box<dyn FnOnce(&mut C, Time)>;

/// Something our side did on its own at a recorded time (such as originating a call).
pub struct Kick<C> {
    /// When, since the start of the recording.
    pub at: Duration,
    /// What.
    pub action: KickAction<C>,
}

impl<C> fmt::Debug for Kick<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kick at {:?}", self.at)
    }
}

impl<C> Kick<C> {
    /// A kick at `at`.
    pub fn at(at: Duration, action: impl FnOnce(&mut C, Time) + 'static) -> Kick<C> {
        Kick {
            at,
            action: Box::new(action),
        }
    }
}

/// One message of a ladder, by meaning.
#[derive(Clone, PartialEq, Eq)]
pub struct Step {
    /// Which call (1 for the first Call-ID seen in this ladder's source).
    pub call: usize,
    /// Sender, by party name.
    pub from: String,
    /// Receiver, by party name.
    pub to: String,
    /// Method or status code.
    pub label: String,
    /// CSeq with the number replaced by its order of first use by the request's sender in
    /// this call (`1 INVITE`, `1 ACK`, `2 BYE`).
    pub cseq: String,
    /// Whether the To header carries a tag.
    pub to_tag: bool,
    /// For requests: the party the Request-URI's host and port name.
    pub target: Option<String>,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {} -> {} {} (CSeq {}{}{})",
            self.call,
            self.from,
            self.to,
            self.label,
            self.cseq,
            if self.to_tag { ", To tag" } else { "" },
            self.target
                .as_ref()
                .map(|t| format!(", R-URI {t}"))
                .unwrap_or_default()
        )
    }
}

impl Step {
    /// A step for an expected ladder: `label` and CSeq as in [`Step`], no call index check
    /// beyond 1 and no Request-URI check (set [`Step::target`] to check it).
    pub fn new(from: &str, to: &str, label: &str, cseq: &str, to_tag: bool) -> Step {
        Step {
            call: 1,
            from: from.into(),
            to: to.into(),
            label: label.into(),
            cseq: cseq.into(),
            to_tag,
            target: None,
        }
    }

    /// The same step in the `call`-th call of the ladder.
    pub fn in_call(mut self, call: usize) -> Step {
        self.call = call;
        self
    }

    /// The same step with a Request-URI party.
    pub fn targeting(mut self, party: &str) -> Step {
        self.target = Some(party.into());
        self
    }
}

/// A message our core sent during the replay.
#[derive(Debug, Clone)]
pub struct Sent {
    /// When.
    pub at: Time,
    /// Position among all inputs and outputs of the run.
    pub order: usize,
    /// Where to.
    pub to: SocketAddr,
    /// What.
    pub message: Message,
    /// The same bytes went to the same place before.
    pub retransmission: bool,
    /// The recorded frame it was paired with.
    pub paired_with: Option<usize>,
}

/// A recorded remote message as fed to the core.
#[derive(Debug, Clone)]
pub struct Fed {
    /// When.
    pub at: Time,
    /// Position among all inputs and outputs of the run.
    pub order: usize,
    /// The recorded frame.
    pub packet: usize,
    /// Its sender.
    pub src: SocketAddr,
    /// The message after rewriting.
    pub message: Message,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Party names by address.
    names: BTreeMap<SocketAddr, String>,
    /// Our recorded addresses.
    us: Vec<SocketAddr>,
    /// The recording.
    pub recorded: Vec<Recorded>,
    /// What our core sent.
    pub sent: Vec<Sent>,
    /// The remote messages fed in, rewritten.
    pub fed: Vec<Fed>,
    /// Recorded remote messages not fed, with why.
    pub skipped: Vec<(usize, String)>,
}

/// The party name of an address, given the name book and our addresses.
fn party(names: &BTreeMap<SocketAddr, String>, us: &[SocketAddr], a: SocketAddr) -> String {
    if us.contains(&a) {
        return "us".into();
    }
    names.get(&a).cloned().unwrap_or_else(|| a.to_string())
}

/// The address a URI names (port 5060 when absent), if its host is an IP literal.
pub fn uri_address(uri: &Uri) -> Option<SocketAddr> {
    let Uri::Sip(sip) = uri else { return None };
    let ip = sip.host.ip()?;
    Some(SocketAddr::new(ip, sip.port.unwrap_or(5060)))
}

fn tag_of(value: &str, header: &'static str) -> Option<String> {
    NameAddr::parse(header, value)
        .ok()
        .and_then(|n| n.tag().map(str::to_owned))
}

/// Builds a ladder from (sender, receiver, message) triples, with Call-IDs and CSeq numbers
/// replaced by their order of first appearance.
fn ladder<'a>(
    messages: impl Iterator<Item = (String, String, &'a Message)>,
    names: &BTreeMap<SocketAddr, String>,
    us: &[SocketAddr],
) -> Vec<Step> {
    let mut calls: Vec<String> = Vec::new();
    let mut numbers: HashMap<(usize, String), Vec<u32>> = HashMap::new();
    let mut out = Vec::new();
    for (from, to, m) in messages {
        let call_id = m.call_id().unwrap_or_default().to_owned();
        let call = match calls.iter().position(|c| *c == call_id) {
            Some(i) => i + 1,
            None => {
                calls.push(call_id);
                calls.len()
            }
        };
        let (label, owner, target) = match m {
            Message::Request(r) => (
                r.method.as_str().to_owned(),
                from.clone(),
                Some(
                    uri_address(&r.uri).map_or_else(|| r.uri.to_string(), |a| party(names, us, a)),
                ),
            ),
            Message::Response(r) => (r.status.to_string(), to.clone(), None),
        };
        let cseq = m.cseq().map_or_else(
            |_| "?".to_owned(),
            |c| {
                let seen = numbers.entry((call, owner)).or_default();
                let ordinal = match seen.iter().position(|&n| n == c.seq) {
                    Some(i) => i + 1,
                    None => {
                        seen.push(c.seq);
                        seen.len()
                    }
                };
                format!("{ordinal} {}", c.method.as_str())
            },
        );
        out.push(Step {
            call,
            from,
            to,
            label,
            cseq,
            to_tag: m.to_header().is_ok_and(|t| t.tag().is_some()),
            target,
        });
    }
    out
}

impl Outcome {
    /// The party name of an address (`us` for ours).
    pub fn name(&self, a: SocketAddr) -> String {
        party(&self.names, &self.us, a)
    }

    /// The recorded ladder between us and `remote` (every party when `None`), without
    /// retransmissions.
    pub fn recorded_ladder(&self, remote: Option<&str>) -> Vec<Step> {
        let msgs = self
            .recorded
            .iter()
            .filter(|m| !m.retransmission)
            .map(|m| (self.name(m.src), self.name(m.dst), &m.message))
            .filter(|(f, t, _)| remote.is_none_or(|r| f == r || t == r));
        ladder(msgs, &self.names, &self.us)
    }

    /// The live ladder between us and `remote` (every party when `None`): the remote
    /// messages as fed and what our core sent, in virtual-time order, without
    /// retransmissions.
    pub fn live_ladder(&self, remote: Option<&str>) -> Vec<Step> {
        let mut merged: Vec<(usize, String, String, &Message)> = Vec::new();
        let mut fed_seen: Vec<(String, Vec<u8>)> = Vec::new();
        for f in &self.fed {
            let dst = self
                .recorded
                .iter()
                .find(|r| r.packet == f.packet)
                .map_or_else(|| "us".to_owned(), |r| self.name(r.dst));
            let from = self.name(f.src);
            let key = (from.clone(), message_bytes(&f.message));
            if fed_seen.contains(&key) {
                continue; // a recorded retransmission
            }
            fed_seen.push(key);
            merged.push((f.order, from, dst, &f.message));
        }
        for s in self.sent.iter().filter(|s| !s.retransmission) {
            merged.push((s.order, "us".into(), self.name(s.to), &s.message));
        }
        merged.sort_by_key(|(order, ..)| *order);
        let msgs = merged
            .into_iter()
            .map(|(_, f, t, m)| (f, t, m))
            .filter(|(f, t, _)| remote.is_none_or(|r| f == r || t == r));
        ladder(msgs, &self.names, &self.us)
    }

    /// What our core sent to `remote`, retransmissions included.
    pub fn sent_to(&self, remote: &str) -> impl Iterator<Item = &Sent> {
        let remote = remote.to_owned();
        self.sent.iter().filter(move |s| self.name(s.to) == remote)
    }
}

/// What the live call taught about a recorded one (see the module docs).
#[derive(Debug, Default)]
struct Correspondence {
    call_ids: HashMap<String, String>,
    /// Our recorded tag → our live header value (From or To) carrying our live tag.
    our_headers: HashMap<String, String>,
    /// Recorded Call-ID → our live Contact URI.
    contacts: HashMap<String, String>,
    /// (recorded Call-ID, CSeq number, method) of our requests → the live request's headers.
    requests: HashMap<(String, u32, Method), LiveRequest>,
}

#[derive(Debug, Clone)]
struct LiveRequest {
    vias: Vec<String>,
    cseq: String,
    from: String,
    to: String,
}

impl Correspondence {
    fn learn(&mut self, recorded: &Message, live: &Message) {
        let (Ok(rec_call), Ok(live_call)) = (recorded.call_id(), live.call_id()) else {
            return;
        };
        self.call_ids
            .insert(rec_call.to_owned(), live_call.to_owned());
        let h = |m: &Message, k| m.headers().get(k).map(str::to_owned);
        if let (Some(rc), Some(lc)) = (
            recorded.contacts().ok().and_then(|c| c.first().cloned()),
            live.contacts().ok().and_then(|c| c.first().cloned()),
        ) {
            if let (Some(_), Some(l)) = (rc.address(), lc.address()) {
                self.contacts.insert(rec_call.to_owned(), l.uri.to_string());
            }
        }
        match (recorded, live) {
            (Message::Request(r), Message::Request(l)) => {
                if let (Some(rf), Some(lf)) =
                    (h(recorded, HeaderKind::From), h(live, HeaderKind::From))
                {
                    if let Some(tag) = tag_of(&rf, "From") {
                        self.our_headers.insert(tag, lf);
                    }
                }
                if r.method == Method::Ack {
                    return;
                }
                let Ok(cseq) = r.cseq() else { return };
                let live_request = LiveRequest {
                    vias: l
                        .headers
                        .get_all(HeaderKind::Via)
                        .map(str::to_owned)
                        .collect(),
                    cseq: h(live, HeaderKind::CSeq).unwrap_or_default(),
                    from: h(live, HeaderKind::From).unwrap_or_default(),
                    to: h(live, HeaderKind::To).unwrap_or_default(),
                };
                self.requests
                    .insert((rec_call.to_owned(), cseq.seq, cseq.method), live_request);
            }
            (Message::Response(_), Message::Response(_)) => {
                if let (Some(rt), Some(lt)) = (h(recorded, HeaderKind::To), h(live, HeaderKind::To))
                {
                    if let (Some(tag), Some(_)) = (tag_of(&rt, "To"), tag_of(&lt, "To")) {
                        self.our_headers.insert(tag, lt);
                    }
                }
            }
            _ => {}
        }
    }

    /// The recorded remote message rewritten for the live call, or why it cannot be fed.
    fn rewrite(&self, recorded: &Recorded, us: &[SocketAddr]) -> Result<Message, String> {
        let mut m = recorded.message.clone();
        let rec_call = m.call_id().map_err(|e| e.to_string())?.to_owned();
        if let Some(live) = self.call_ids.get(&rec_call) {
            m.headers_mut().set(HeaderKind::CallId, live.clone());
        }
        match &mut m {
            Message::Response(r) => {
                let cseq = r.cseq().map_err(|e| e.to_string())?;
                let Some(live) = self
                    .requests
                    .get(&(rec_call, cseq.seq, cseq.method.clone()))
                else {
                    return Err(format!(
                        "a response to {} {} that our core did not send",
                        cseq.seq,
                        cseq.method.as_str()
                    ));
                };
                r.headers.remove(HeaderKind::Via);
                for v in &live.vias {
                    r.headers.add(HeaderKind::Via, v.clone());
                }
                r.headers.set(HeaderKind::CSeq, live.cseq.clone());
                r.headers.set(HeaderKind::From, live.from.clone());
                let remote_tag = r.headers.get(HeaderKind::To).and_then(|t| tag_of(t, "To"));
                let to = match remote_tag {
                    Some(tag) => format!("{};tag={tag}", live.to),
                    None => live.to.clone(),
                };
                r.headers.set(HeaderKind::To, to);
            }
            Message::Request(r) => {
                for (kind, name) in [(HeaderKind::From, "From"), (HeaderKind::To, "To")] {
                    let live = r
                        .headers
                        .get(kind)
                        .and_then(|v| tag_of(v, name))
                        .and_then(|tag| self.our_headers.get(&tag));
                    if let Some(live) = live {
                        r.headers.set(kind, live.clone());
                    }
                }
                let aimed_at_us = uri_address(&r.uri).is_some_and(|a| us.contains(&a));
                if let (true, Some(contact)) = (aimed_at_us, self.contacts.get(&rec_call)) {
                    if let Ok(uri) = Uri::parse(contact) {
                        r.uri = uri;
                    }
                }
            }
        }
        Ok(m)
    }
}

/// A replay set-up: the recording, which addresses were ours, and names for the others.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The recording (already cut to the calls to replay).
    pub recording: Recording,
    /// Our side's recorded addresses.
    pub us: Vec<SocketAddr>,
    /// Names of remote addresses, for the ladders.
    pub names: BTreeMap<SocketAddr, String>,
    /// How long to run the core's timers after the last recorded message.
    pub grace: Duration,
}

impl Replay {
    /// A replay of `recording` in which `us` were our addresses.
    pub fn new(recording: Recording, us: &[SocketAddr]) -> Replay {
        Replay {
            recording,
            us: us.to_vec(),
            names: BTreeMap::new(),
            grace: Duration::from_secs(1),
        }
    }

    /// Names a remote address.
    pub fn name(mut self, address: SocketAddr, name: &str) -> Replay {
        self.names.insert(address, name.into());
        self
    }

    /// Sets how long timers run after the last recorded message.
    pub fn grace(mut self, grace: Duration) -> Replay {
        self.grace = grace;
        self
    }

    /// Runs the replay against `core`. See the module docs for the loop.
    pub fn run<C: UnderTest>(&self, core: &mut C, kicks: Vec<Kick<C>>) -> Outcome {
        let mut outcome = Outcome {
            names: self.names.clone(),
            us: self.us.clone(),
            recorded: self.recording.messages.clone(),
            sent: Vec::new(),
            fed: Vec::new(),
            skipped: Vec::new(),
        };
        let remote: Vec<&Recorded> = self
            .recording
            .messages
            .iter()
            .filter(|m| !self.us.contains(&m.src))
            .collect();
        let local: Vec<&Recorded> = self
            .recording
            .messages
            .iter()
            .filter(|m| self.us.contains(&m.src) && !m.retransmission)
            .collect();
        let end = Time::ZERO
            + self
                .recording
                .messages
                .last()
                .map_or(Duration::ZERO, |m| m.at)
            + self.grace;
        let mut correspondence = Correspondence::default();
        let mut paired = vec![false; local.len()];
        let mut kicks: Vec<Kick<C>> = kicks;
        kicks.sort_by_key(|k| k.at);
        let mut kicks = kicks.into_iter().peekable();
        let mut next_remote = 0;
        let mut sent_bytes: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let mut order = 0;
        // Each iteration consumes one input or one due timer; the bound only catches a core
        // whose timer never moves on.
        for _ in 0..1_000_000 {
            let remote_at = remote.get(next_remote).map(|m| Time::ZERO + m.at);
            let kick_at = kicks.peek().map(|k| Time::ZERO + k.at);
            let timer_at = core.next_timeout().filter(|&t| t <= end);
            let input_at = [remote_at, kick_at].into_iter().flatten().min();
            let now = match (timer_at, input_at) {
                (Some(t), Some(i)) if t <= i => {
                    core.timeout(t);
                    t
                }
                (Some(t), None) => {
                    core.timeout(t);
                    t
                }
                (_, Some(i)) if kick_at == Some(i) => {
                    let kick = kicks.next().expect("peeked above");
                    (kick.action)(core, i);
                    i
                }
                (_, Some(i)) => {
                    let m = remote[next_remote];
                    next_remote += 1;
                    match correspondence.rewrite(m, &self.us) {
                        Ok(message) => {
                            core.receive(i, m.transport, m.src, &message_bytes(&message));
                            order += 1;
                            outcome.fed.push(Fed {
                                at: i,
                                order,
                                packet: m.packet,
                                src: m.src,
                                message,
                            });
                        }
                        Err(why) => outcome.skipped.push((m.packet, why)),
                    }
                    i
                }
                (None, None) => break,
            };
            while let Some(t) = core.transmit(now) {
                let message = Message::parse(&t.bytes).unwrap_or_else(|e| {
                    panic!(
                        "our core sent unparseable SIP ({e}):\n{}",
                        String::from_utf8_lossy(&t.bytes)
                    )
                });
                let retransmission = sent_bytes
                    .iter()
                    .any(|(to, b)| *to == t.to && *b == t.bytes);
                let mut paired_with = None;
                if !retransmission {
                    sent_bytes.push((t.to, t.bytes.clone()));
                    let to_name = outcome.name(t.to);
                    let key = step_key(&message);
                    let found = local.iter().enumerate().position(|(i, r)| {
                        !paired[i] && outcome.name(r.dst) == to_name && step_key(&r.message) == key
                    });
                    if let Some(i) = found {
                        paired[i] = true;
                        correspondence.learn(&local[i].message, &message);
                        paired_with = Some(local[i].packet);
                    }
                }
                order += 1;
                outcome.sent.push(Sent {
                    at: now,
                    order,
                    to: t.to,
                    message,
                    retransmission,
                    paired_with,
                });
            }
        }
        outcome
    }
}

fn message_bytes(m: &Message) -> Vec<u8> {
    match m {
        Message::Request(r) => r.to_bytes(),
        Message::Response(r) => r.to_bytes(),
    }
}

/// Method or status, and CSeq method: what pairs a live message with a recorded one.
fn step_key(m: &Message) -> (String, String) {
    let label = match m {
        Message::Request(r) => r.method.as_str().to_owned(),
        Message::Response(r) => r.status.to_string(),
    };
    let cseq = m
        .cseq()
        .map(|c| c.method.as_str().to_owned())
        .unwrap_or_default();
    (label, cseq)
}

/// One recorded RTP packet.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    /// Frame number.
    pub packet: usize,
    /// Capture time since the capture's first packet.
    pub at: Duration,
    /// Sender.
    pub src: SocketAddr,
    /// The datagram.
    pub bytes: Vec<u8>,
}

/// The UDP datagrams from `src` to `dst` in a capture that are RTP version 2 and not RTCP
/// (RFC 5761 §4: payload types 72-76 with the marker bit are RTCP).
pub fn rtp_packets(capture: &capture::Capture, src: SocketAddr, dst: SocketAddr) -> Vec<RtpPacket> {
    let origin = capture.packets.first().map_or(Duration::ZERO, |p| p.time);
    capture
        .packets
        .iter()
        .filter(|p| p.transport == capture::Transport::Udp && p.src == src && p.dst == dst)
        .filter(|p| {
            p.payload.len() >= 12 && p.payload[0] >> 6 == 2 && !(200..=204).contains(&p.payload[1])
        })
        .map(|p| RtpPacket {
            packet: p.index,
            at: p.time.saturating_sub(origin),
            src: p.src,
            bytes: p.payload.clone(),
        })
        .collect()
}
