//! The media task of a call: the two legs' RTP sockets and the call's [`media::relay::Relay`],
//! driven by tokio.
//!
//! One task per call owns everything the call's media needs, so a packet is received, rewritten
//! and sent without a channel hop, a lock or an allocation:
//! - per leg an RTP socket on an even port from the [`PortPool`] and an RTCP socket on the port
//!   above it (RFC 3550 §11; RTCP multiplexed on the RTP port, RFC 5761, is read there too);
//! - the relay, created at the first [`MediaCommand::SetLeg`] (the customer's, on answer) with
//!   the other leg absent, and updated by every later `SetLeg` (the agent's, a re-INVITE);
//! - the ringback player, started and stopped by command, ticking at
//!   [`media::relay::Relay::next_deadline`] through one tokio timer;
//! - an optional [`media::record::Recorder`] fed with what each leg sends us, decoded, and
//!   flushed every second so that a crash leaves a playable file.
//!
//! Each wake-up reads one batch with `recvmmsg` into buffers shared by the calls of the worker
//! thread ([`udp`]), hands each datagram to [`media::relay::Relay::forward`], drains
//! [`media::relay::Relay::poll_transmit_leg`], and sends everything with one `sendmmsg` per
//! socket. When the batch was not full the socket is drained and its readiness is cleared
//! without another system call.
//!
//! DTMF: [`MediaCommand::SetDtmf`] gives a leg's mode to the relay (kept until the relay
//! exists), [`MediaCommand::SendDigit`] plays a key press to a leg, and every digit a leg
//! sends as telephone-events (or, in `Inband` mode, as tones) comes back as
//! [`MediaEvent::Digit`].
//!
//! The task reports through the [`MediaEvent`] sender given to [`MediaSession::open`]; give
//! each session its own sender (or one per call) since events carry no call id. It ends on
//! [`MediaCommand::Close`], or when its [`MediaSession`] is dropped, sending
//! [`MediaEvent::Closed`] either way; its ports go back to the pool then.

pub mod ports;
pub mod udp;

use std::fs::File;
use std::future::Future;
use std::io::{self, BufWriter};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::control::CallId;
use media::codec::Codec;
use media::playback::Ringback;
use media::record::Recorder;
use media::relay::{DropReason, DtmfMode, Forward, Relay, RelayConfig, RelayEvent, Side};
use media::rtcp::NtpTimestamp;
use media::rtp::{self, PacketKind, RtpHeader};
use media::sdp::{Negotiated, SrtpKeys};
use rand::SeedableRng;
use tokio::io::Interest;
use tokio::sync::mpsc;

use ports::PortLease;
pub use ports::{EmptyPortRange, PortPool};
use udp::{Buffer, Outgoing, Scratch, BATCH};

/// How often a recording's WAV header is patched to cover what was written (crash safety).
const RECORD_FLUSH: Duration = Duration::from_secs(1);

/// What the call logic tells a call's media task. Sent with [`MediaSession::send`].
#[derive(Debug)]
#[non_exhaustive]
pub enum MediaCommand {
    /// `side`'s offer/answer outcome: first the customer's (the relay starts with the agent
    /// absent), then the agent's when it answers, and again after a re-INVITE (new address,
    /// codec, hold). A codec change restarts ringback playing to that side with the clip for
    /// the new codec.
    SetLeg {
        /// The leg.
        side: Side,
        /// Its negotiation.
        negotiated: Negotiated,
    },
    /// Play ringback to `side`, looping, until [`MediaCommand::StopRingback`]. The clip is the
    /// one `ringback` holds for the leg's codec (encoded once at load time, shared by every
    /// call); given before the leg's `SetLeg`, it starts when the leg is set.
    StartRingback {
        /// The leg that hears it.
        side: Side,
        /// The clips, per codec.
        ringback: Arc<Ringback>,
    },
    /// Play `message` to `side` once, in place of any ringback, then report
    /// [`MediaEvent::MessageDone`] (at once when the leg has no clip for its codec).
    PlayMessage {
        /// The leg that hears it.
        side: Side,
        /// The clips, per codec.
        message: Arc<Ringback>,
    },
    /// Loop `clip` to `side` while nothing else plays to it (a session agent's idle audio).
    StartIdle {
        /// The leg.
        side: Side,
        /// The clips, per codec.
        clip: Arc<Ringback>,
    },
    /// Hand this call's customer (its sockets and negotiation) over to an agent session's
    /// task, which plays `connect_tone` to the agent and then relays the two; this task then
    /// ends with [`MediaEvent::HandedOver`] instead of `Closed`.
    HandOver {
        /// The customer call.
        call: CallId,
        /// The session's task.
        to: MediaLink,
        /// Played to the agent first.
        connect_tone: Arc<Ringback>,
    },
    /// A session's task lets go of the customer call on it: [`MediaEvent::Detached`].
    Detach {
        /// The customer call.
        call: CallId,
    },
    /// `side`'s RTP may also come from `ip` (an agent's registered source behind NAT).
    AllowSource {
        /// The leg.
        side: Side,
        /// The address.
        ip: std::net::IpAddr,
    },
    /// Stop ringback to `side`: the other leg's audio follows with the stream's numbering
    /// running on and the marker bit set.
    StopRingback {
        /// The leg.
        side: Side,
    },
    /// Record the call into a stereo WAV at `path` (customer left, agent right), from now on.
    Record {
        /// Where; created or truncated.
        path: PathBuf,
    },
    /// Write every datagram of the call's media (received and sent, RTP and RTCP) into a
    /// pcap shared with the signalling task (`dialer call --pcap`).
    Capture {
        /// The tap.
        tap: super::tap::SharedTap,
    },
    /// How `side` takes DTMF (see [`media::relay`]); `Rfc4733` until set.
    SetDtmf {
        /// The leg.
        side: Side,
        /// Its mode.
        mode: DtmfMode,
    },
    /// `side`'s SRTP keys (RFC 4568 SDES), or `None` for plain RTP
    /// ([`media::relay::Relay::set_srtp`]); kept until the relay exists, and given before the
    /// `SetLeg` they belong to.
    SetSrtp {
        /// The leg.
        side: Side,
        /// Its keys.
        keys: Option<SrtpKeys>,
    },
    /// Play a key press to `side`: telephone-events on its payload type, or a tone in its
    /// codec ([`media::relay::Relay::send_digit`]).
    SendDigit {
        /// The leg that hears it.
        side: Side,
        /// Event code 0-15 (RFC 4733 §3.2).
        event: u8,
        /// How long the key is pressed.
        duration: Duration,
    },
    /// Stop: the task sends [`MediaEvent::Closed`] with the final statistics and ends.
    Close,
}

/// What a call's media task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// No RTP from `side` for [`RelayConfig::media_timeout`].
    Timeout {
        /// The silent leg.
        side: Side,
    },
    /// `side`'s media now goes to `to`, where its packets come from (symmetric RTP behind NAT).
    Latched {
        /// The leg.
        side: Side,
        /// The new destination.
        to: SocketAddr,
    },
    /// A command could not be carried out (no transcoder for the codecs, no ringback clip for
    /// the leg's codec, a recording file that cannot be written); the call's media goes on
    /// without it.
    Failed {
        /// What went wrong.
        reason: String,
    },
    /// `side` sent a key press, now ended: telephone-events (RFC 4733 §2.5.1.4), or a tone in
    /// the audio of a leg in `Inband` mode.
    Digit {
        /// The leg that sent it.
        side: Side,
        /// Event code 0-15.
        event: u8,
        /// How long the key was pressed.
        duration: Duration,
    },
    /// The customer was handed over to a session's task ([`MediaCommand::HandOver`]); this
    /// task has ended.
    HandedOver,
    /// A session's task let go of a customer call ([`MediaCommand::Detach`], or the session
    /// closing with it on): that call's counts.
    Detached {
        /// The customer call.
        call: CallId,
        /// Its counts while it was on the session.
        stats: MediaStats,
    },
    /// The recording stopped (a full disk, a file that cannot be written): the call goes on
    /// without it.
    RecordingFailed {
        /// What went wrong.
        reason: String,
    },
    /// A [`MediaCommand::PlayMessage`] has played to its end.
    MessageDone {
        /// The leg that heard it.
        side: Side,
    },
    /// The task ended; nothing follows.
    Closed {
        /// Final counts.
        stats: MediaStats,
    },
}

/// A call's media counts, in [`MediaEvent::Closed`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaStats {
    /// RTP packets sent to the agent (relayed, transcoded, concealment).
    pub packets_to_agent: u64,
    /// RTP packets sent to the customer (ringback, relayed, transcoded, concealment).
    pub packets_to_customer: u64,
    /// Packets lost in the customer's stream as we received it (RFC 3550 A.3), for its last
    /// SSRC.
    pub lost_from_customer: u64,
    /// Packets lost in the agent's stream as we received it.
    pub lost_from_agent: u64,
    /// The customer leg's codec (`PCMU`, `PCMA`, `opus`), once set.
    pub customer_codec: Option<String>,
    /// The agent leg's codec, once set.
    pub agent_codec: Option<String>,
}

/// The local addresses a session bound: what to put in each leg's SDP (`c=`, `m=` port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPorts {
    /// RTP address for the customer leg; RTCP is on the port above.
    pub customer: SocketAddr,
    /// RTP address for the agent leg; RTCP is on the port above.
    pub agent: SocketAddr,
}

/// Where a call's customer can be handed over to: an agent session's task.
#[derive(Debug, Clone)]
pub struct MediaLink {
    commands: mpsc::UnboundedSender<Command>,
}

/// A customer moving into a session's task.
#[derive(Debug)]
struct Attached {
    call: CallId,
    sockets: LegSockets,
    negotiated: Option<Negotiated>,
    dtmf: DtmfMode,
    /// Its SRTP keys: the session's relay protects and unprotects the customer with them.
    srtp: Option<Box<SrtpKeys>>,
    connect_tone: Arc<Ringback>,
    /// Packets already sent to the customer (ringback) by its own task.
    sent_before: u64,
}

/// The customer a session's task relays now, and the counts at its start.
#[derive(Debug)]
struct OnSession {
    call: CallId,
    /// The session's own customer sockets (never used), parked while the customer's are in.
    parked: LegSockets,
    sent_at_start: [u64; 2],
    sent_before: u64,
}

/// The handle of one call's media task.
#[derive(Debug)]
pub struct MediaSession {
    commands: mpsc::UnboundedSender<Command>,
    ports: MediaPorts,
}

impl MediaSession {
    /// Binds the call's sockets on `bind_ip` (two even ports from `ports`, each with its RTCP
    /// port) and spawns its task on the current tokio runtime. A port already taken by another
    /// process is skipped; the error is `AddrNotAvailable` when the pool has no pair left.
    pub async fn open(
        bind_ip: IpAddr,
        ports: &PortPool,
        events: mpsc::UnboundedSender<MediaEvent>,
        config: RelayConfig,
    ) -> io::Result<(MediaSession, MediaPorts)> {
        let customer = LegSockets::bind(bind_ip, ports)?;
        let agent = LegSockets::bind(bind_ip, ports)?;
        let local = MediaPorts {
            customer: customer.rtp.local_addr()?,
            agent: agent.rtp.local_addr()?,
        };
        let (commands, receiver) = mpsc::unbounded_channel();
        let mut state = State::new(config, events);
        state.locals = [
            customer.rtp.local_addr()?,
            customer.rtcp.local_addr()?,
            agent.rtp.local_addr()?,
            agent.rtcp.local_addr()?,
        ];
        let task = MediaTask {
            sockets: Sockets {
                legs: [customer, agent],
            },
            state,
            commands: receiver,
            on_session: None,
        };
        tokio::spawn(task.run());
        Ok((
            MediaSession {
                commands,
                ports: local,
            },
            local,
        ))
    }

    /// Queues `command` for the task; never blocks. A command sent after the task ended is
    /// dropped (the task has already reported [`MediaEvent::Closed`]).
    pub fn send(&self, command: MediaCommand) {
        let _ = self.commands.send(command.into());
    }

    /// The local addresses bound.
    pub fn ports(&self) -> MediaPorts {
        self.ports
    }

    /// Where a customer can be handed over to this task (an agent session's).
    pub fn link(&self) -> MediaLink {
        MediaLink {
            commands: self.commands.clone(),
        }
    }
}

/// A leg's RTP and RTCP sockets and the port lease they hold.
#[derive(Debug)]
struct LegSockets {
    rtp: tokio::net::UdpSocket,
    rtcp: tokio::net::UdpSocket,
    _lease: PortLease,
}

impl LegSockets {
    fn bind(ip: IpAddr, pool: &PortPool) -> io::Result<LegSockets> {
        // Each pair is tried once: ports held by other processes are skipped (and go back to
        // the pool's end, to be tried again by a later call).
        for _ in 0..pool.free_pairs().max(1) {
            let Some(lease) = pool.take() else { break };
            let rtp = match std::net::UdpSocket::bind(SocketAddr::new(ip, lease.port())) {
                Ok(socket) => socket,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            };
            let rtcp = match std::net::UdpSocket::bind(SocketAddr::new(ip, lease.port() + 1)) {
                Ok(socket) => socket,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            };
            rtp.set_nonblocking(true)?;
            rtcp.set_nonblocking(true)?;
            return Ok(LegSockets {
                rtp: tokio::net::UdpSocket::from_std(rtp)?,
                rtcp: tokio::net::UdpSocket::from_std(rtcp)?,
                _lease: lease,
            });
        }
        Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no free RTP port pair in the configured range",
        ))
    }
}

/// The sockets, apart from the state, so that a readiness guard (borrowing a socket) and the
/// state (mutated by the packets) are disjoint borrows.
struct Sockets {
    legs: [LegSockets; 2],
}

/// Socket index in [`Sockets::fds`] order: customer RTP, customer RTCP, agent RTP, agent RTCP.
fn socket_index(side: Side, rtcp: bool) -> u8 {
    (side_index(side) * 2 + usize::from(rtcp)) as u8
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Customer => 0,
        Side::Agent => 1,
    }
}

impl Sockets {
    /// The sockets in [`socket_index`] order.
    fn all(&self) -> [&tokio::net::UdpSocket; 4] {
        let [c, a] = &self.legs;
        [&c.rtp, &c.rtcp, &a.rtp, &a.rtcp]
    }

    fn fds(&self) -> [RawFd; 4] {
        let [c, a] = &self.legs;
        [
            c.rtp.as_raw_fd(),
            c.rtcp.as_raw_fd(),
            a.rtp.as_raw_fd(),
            a.rtcp.as_raw_fd(),
        ]
    }
}

/// Tags for [`udp::Outgoing::tag`]: which leg an RTP packet went to (RTCP is not counted).
const TAG_RTCP: u8 = 2;

struct MediaTask {
    sockets: Sockets,
    state: State,
    commands: mpsc::UnboundedReceiver<Command>,
    /// An agent session's task: the customer switched onto it.
    on_session: Option<OnSession>,
}

/// [`MediaCommand`] as queued: its large parts boxed, so that the channel's blocks (32 slots
/// each) stay small for a call that receives a handful of commands in its life.
#[derive(Debug)]
enum Command {
    SetLeg(Side, Box<Negotiated>),
    StartRingback(Side, Arc<Ringback>),
    PlayMessage(Side, Arc<Ringback>),
    StartIdle(Side, Arc<Ringback>),
    HandOver(CallId, MediaLink, Arc<Ringback>),
    Attach(Box<Attached>),
    Detach(CallId),
    AllowSource(Side, std::net::IpAddr),
    StopRingback(Side),
    Record(Box<PathBuf>),
    Capture(super::tap::SharedTap),
    SetDtmf(Side, DtmfMode),
    SetSrtp(Side, Option<Box<SrtpKeys>>),
    SendDigit(Side, u8, Duration),
    Close,
}

impl From<MediaCommand> for Command {
    fn from(command: MediaCommand) -> Command {
        match command {
            MediaCommand::SetLeg { side, negotiated } => {
                Command::SetLeg(side, Box::new(negotiated))
            }
            MediaCommand::StartRingback { side, ringback } => {
                Command::StartRingback(side, ringback)
            }
            MediaCommand::PlayMessage { side, message } => Command::PlayMessage(side, message),
            MediaCommand::AllowSource { side, ip } => Command::AllowSource(side, ip),
            MediaCommand::StartIdle { side, clip } => Command::StartIdle(side, clip),
            MediaCommand::HandOver {
                call,
                to,
                connect_tone,
            } => Command::HandOver(call, to, connect_tone),
            MediaCommand::Detach { call } => Command::Detach(call),
            MediaCommand::StopRingback { side } => Command::StopRingback(side),
            MediaCommand::Record { path } => Command::Record(Box::new(path)),
            MediaCommand::Capture { tap } => Command::Capture(tap),
            MediaCommand::SetDtmf { side, mode } => Command::SetDtmf(side, mode),
            MediaCommand::SetSrtp { side, keys } => Command::SetSrtp(side, keys.map(Box::new)),
            MediaCommand::SendDigit {
                side,
                event,
                duration,
            } => Command::SendDigit(side, event, duration),
            MediaCommand::Close => Command::Close,
        }
    }
}

/// Whether the task goes on after a command.
enum Flow {
    Continue,
    Stop,
    /// Hand the customer over and end.
    HandOver(CallId, MediaLink, Arc<Ringback>),
}

/// What woke the task.
enum Wake {
    Command(Option<Command>),
    Readable {
        socket: usize,
    },
    Deadline,
    /// The IO driver is gone: the runtime is shutting down.
    Shutdown,
}

impl MediaTask {
    /// The task's loop. It polls its sources itself (one `poll_fn`) rather than through
    /// `select!` over fresh `readable()` futures: a socket's waker stays registered in its slot
    /// between wake-ups instead of joining and leaving a waiter list on every packet. The timer
    /// is moved only to an earlier deadline; a later one (the media timeout moves with every
    /// packet) is picked up when the timer fires early.
    async fn run(mut self) {
        let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        let mut fds = self.sockets.fds();
        let mut hand_over = None;
        loop {
            if let Some(at) = self.state.next_deadline() {
                if !matches!(armed, Some(armed) if at >= armed) {
                    sleep.as_mut().reset(tokio::time::Instant::from_std(at));
                    armed = Some(at);
                }
            }
            let sockets = self.sockets.all();
            let commands = &mut self.commands;
            let wake = std::future::poll_fn(|cx| {
                if let Poll::Ready(command) = commands.poll_recv(cx) {
                    return Poll::Ready(Wake::Command(command));
                }
                for (socket, udp) in sockets.iter().enumerate() {
                    match udp.poll_recv_ready(cx) {
                        Poll::Ready(Ok(())) => return Poll::Ready(Wake::Readable { socket }),
                        Poll::Ready(Err(_)) => return Poll::Ready(Wake::Shutdown),
                        Poll::Pending => {}
                    }
                }
                if armed.is_some() && sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Deadline);
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Command(Some(Command::Attach(attached))) => {
                    self.attach(*attached);
                    fds = self.sockets.fds();
                }
                Wake::Command(Some(Command::Detach(call))) => {
                    self.detach(call);
                    fds = self.sockets.fds();
                }
                Wake::Command(Some(command)) => match self.state.command(command, &fds) {
                    Flow::Continue => {}
                    Flow::Stop => break,
                    Flow::HandOver(call, to, tone) => {
                        hand_over = Some((call, to, tone));
                        break;
                    }
                },
                // The session handle was dropped: end as if closed.
                Wake::Command(None) | Wake::Shutdown => break,
                Wake::Readable { socket } => {
                    let side = if socket < 2 {
                        Side::Customer
                    } else {
                        Side::Agent
                    };
                    self.state.readable(sockets[socket], side, &fds);
                }
                Wake::Deadline => {
                    armed = None;
                    self.state.on_deadline(&fds);
                }
            }
        }
        match hand_over {
            Some((call, to, tone)) => self.hand_over(call, to, tone),
            None => self.finish(),
        }
    }

    /// Moves the customer into a session's task; this task ends without `Closed` (the
    /// customer's counts come from the session when it lets the customer go).
    fn hand_over(self, call: CallId, to: MediaLink, connect_tone: Arc<Ringback>) {
        let MediaTask {
            sockets, mut state, ..
        } = self;
        // The recording and the capture of the call end here, complete.
        drop(state.tap.take());
        if let Some(recorder) = state.recorder.take() {
            if let Err(error) = (*recorder).finish() {
                state.recording_failed(format!("recording: {error}"));
            }
        }
        let [customer, agent] = sockets.legs;
        drop(agent);
        let attached = Attached {
            call,
            sockets: customer,
            negotiated: state.legs[0].clone(),
            dtmf: state.dtmf[0],
            srtp: state.srtp[0].take(),
            connect_tone,
            sent_before: state.sent[0],
        };
        let _ = to.commands.send(Command::Attach(Box::new(attached)));
        let _ = state.events.send(MediaEvent::HandedOver);
    }

    /// A customer switched onto this session: its sockets replace the session's unused
    /// customer pair, the relay takes its stream, the agent hears the connect tone first.
    fn attach(&mut self, attached: Attached) {
        if let Some(previous) = self.on_session.as_ref().map(|o| o.call) {
            self.detach(previous);
        }
        let now = Instant::now();
        let Attached {
            call,
            sockets,
            negotiated,
            dtmf,
            srtp,
            connect_tone,
            sent_before,
        } = attached;
        let parked = std::mem::replace(&mut self.sockets.legs[0], sockets);
        self.state.locals[0] = self.sockets.legs[0]
            .rtp
            .local_addr()
            .unwrap_or(self.state.locals[0]);
        self.state.locals[1] = self.sockets.legs[0]
            .rtcp
            .local_addr()
            .unwrap_or(self.state.locals[1]);
        self.on_session = Some(OnSession {
            call,
            parked,
            sent_at_start: self.state.sent,
            sent_before,
        });
        self.state.attach(negotiated, dtmf, srtp, connect_tone, now);
    }

    /// The customer call on this session is over: its sockets close, the agent hears the
    /// idle audio again, and the call's counts go back.
    fn detach(&mut self, call: CallId) {
        if self.on_session.as_ref().map(|o| o.call) != Some(call) {
            return;
        }
        let Some(on) = self.on_session.take() else {
            return;
        };
        let stats = self.state.detach(&on, Instant::now());
        let customer = std::mem::replace(&mut self.sockets.legs[0], on.parked);
        drop(customer);
        if let (Ok(rtp), Ok(rtcp)) = (
            self.sockets.legs[0].rtp.local_addr(),
            self.sockets.legs[0].rtcp.local_addr(),
        ) {
            self.state.locals[0] = rtp;
            self.state.locals[1] = rtcp;
        }
        let _ = self.state.events.send(MediaEvent::Detached { call, stats });
    }

    fn finish(mut self) {
        if let Some(call) = self.on_session.as_ref().map(|o| o.call) {
            self.detach(call);
        }
        let MediaTask { sockets, state, .. } = self;
        // Ports go back to the pool before the task reports Closed.
        drop(sockets);
        state.close();
    }
}

/// Everything the task mutates.
struct State {
    config: RelayConfig,
    events: mpsc::UnboundedSender<MediaEvent>,
    relay: Option<Relay>,
    legs: [Option<Negotiated>; 2],
    /// Ringback asked for each side (kept to restart it after a codec change).
    ringback: [Option<Arc<Ringback>>; 2],
    recorder: Option<Box<Recorder<BufWriter<File>>>>,
    record_due: Option<Instant>,
    /// The payload of the packet being forwarded, kept for the recorder (the relay rewrites or
    /// replaces it in place).
    record_payload: Vec<u8>,
    sent: [u64; 2],
    /// The pcap the call's datagrams are copied into, when asked for.
    tap: Option<super::tap::SharedTap>,
    /// Local addresses in [`Sockets::fds`] order, for the tap.
    locals: [SocketAddr; 4],
    /// Each leg's DTMF mode, given to the relay when it is created.
    dtmf: [DtmfMode; 2],
    /// Each leg's SRTP keys, given to the relay when it is created.
    srtp: [Option<Box<SrtpKeys>>; 2],
    /// When the message playing to each side ends.
    message_end: [Option<Instant>; 2],
    /// Extra sources each leg may latch to, given to the relay when it is created.
    allowed: Vec<(Side, std::net::IpAddr)>,
    /// What loops to each side when nothing else plays (a session agent's idle audio).
    idle: [Option<Arc<Ringback>>; 2],
}

impl State {
    fn new(config: RelayConfig, events: mpsc::UnboundedSender<MediaEvent>) -> State {
        State {
            config,
            events,
            relay: None,
            legs: [None, None],
            ringback: [None, None],
            recorder: None,
            record_due: None,
            record_payload: Vec::new(),
            sent: [0; 2],
            tap: None,
            locals: [SocketAddr::from(([0, 0, 0, 0], 0)); 4],
            dtmf: [DtmfMode::Rfc4733; 2],
            srtp: [None, None],
            message_end: [None, None],
            allowed: Vec::new(),
            idle: [None, None],
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let relay = self.relay.as_ref().and_then(Relay::next_deadline);
        [relay, self.record_due]
            .into_iter()
            .chain(self.message_end)
            .flatten()
            .min()
    }

    fn fail(&self, reason: String) {
        let _ = self.events.send(MediaEvent::Failed { reason });
    }

    /// The recording stops (a full disk, a file that cannot be written); the call goes on.
    fn recording_failed(&mut self, reason: String) {
        self.recorder = None;
        self.record_due = None;
        let _ = self.events.send(MediaEvent::RecordingFailed { reason });
    }

    fn command(&mut self, command: Command, fds: &[RawFd; 4]) -> Flow {
        let now = Instant::now();
        match command {
            Command::SetLeg(side, negotiated) => self.set_leg(side, *negotiated, now),
            Command::StartRingback(side, ringback) => {
                self.ringback[side_index(side)] = Some(ringback);
                self.start_ringback(side, now);
            }
            Command::PlayMessage(side, message) => self.play_message(side, message, now),
            Command::StartIdle(side, clip) => {
                self.idle[side_index(side)] = Some(clip.clone());
                self.ringback[side_index(side)] = Some(clip);
                self.start_ringback(side, now);
            }
            Command::HandOver(call, to, tone) => return Flow::HandOver(call, to, tone),
            // Handled by the task, which owns the sockets.
            Command::Attach(_) | Command::Detach(_) => {}
            Command::AllowSource(side, ip) => {
                self.allowed.push((side, ip));
                if let Some(relay) = &mut self.relay {
                    relay.allow_source(side, ip);
                }
            }
            Command::StopRingback(side) => {
                self.ringback[side_index(side)] = None;
                self.message_end[side_index(side)] = None;
                if let Some(relay) = &mut self.relay {
                    relay.stop_ringback(side);
                }
            }
            Command::Record(path) => self.record(*path, now),
            Command::Capture(tap) => self.tap = Some(tap),
            Command::SetDtmf(side, mode) => {
                self.dtmf[side_index(side)] = mode;
                if let Some(relay) = &mut self.relay {
                    relay.set_dtmf_mode(side, mode);
                }
            }
            Command::SetSrtp(side, keys) => {
                if let Some(relay) = &mut self.relay {
                    relay.set_srtp(side, keys.as_deref());
                }
                self.srtp[side_index(side)] = keys;
            }
            Command::SendDigit(side, event, duration) => {
                if let Some(relay) = &mut self.relay {
                    relay.send_digit(now, side, event, duration);
                }
            }
            Command::Close => return Flow::Stop,
        }
        // A command may make packets due at once (the first ringback frame).
        self.transmit_due(now, fds);
        Flow::Continue
    }

    fn set_leg(&mut self, side: Side, negotiated: Negotiated, now: Instant) {
        let codec = negotiated.codec;
        let result = match &mut self.relay {
            Some(relay) => relay.update_leg(side, negotiated.clone(), now),
            None => {
                let since_epoch = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let mut rng = rand::rngs::StdRng::from_entropy();
                Relay::new_one_sided(
                    self.config,
                    side,
                    negotiated.clone(),
                    now,
                    NtpTimestamp::from_unix(since_epoch),
                    &mut rng,
                )
                .map(|mut relay| {
                    for side in [Side::Customer, Side::Agent] {
                        relay.set_dtmf_mode(side, self.dtmf[side_index(side)]);
                        relay.set_srtp(side, self.srtp[side_index(side)].as_deref());
                    }
                    for (side, ip) in &self.allowed {
                        relay.allow_source(*side, *ip);
                    }
                    self.relay = Some(relay);
                })
            }
        };
        if let Err(error) = result {
            self.fail(format!("{side:?} leg with {codec:?}: {error}"));
            return;
        }
        self.legs[side_index(side)] = Some(negotiated);
        let recorded = self
            .recorder
            .as_mut()
            .map(|recorder| recorder.set_codec(side, codec));
        if let Some(Err(error)) = recorded {
            self.recording_failed(format!("recording the {side:?} leg: {error}"));
        }
        self.start_ringback(side, now);
    }

    /// Starts the ringback asked for `side` if the leg is set and it is not already playing.
    fn start_ringback(&mut self, side: Side, now: Instant) {
        let (Some(relay), Some(ringback)) = (&mut self.relay, &self.ringback[side_index(side)])
        else {
            return;
        };
        let Some(codec) = relay.codec(side) else {
            return;
        };
        if relay.is_ringing(side) {
            return;
        }
        match ringback.player(codec) {
            Some(player) => relay.start_ringback(side, player, now),
            None => {
                self.ringback[side_index(side)] = None;
                self.fail(format!("no ringback clip for {codec:?}"));
            }
        }
    }

    /// A customer switched onto this session's agent (see [`MediaTask::attach`]).
    fn attach(
        &mut self,
        negotiated: Option<Negotiated>,
        dtmf: DtmfMode,
        srtp: Option<Box<SrtpKeys>>,
        connect_tone: Arc<Ringback>,
        now: Instant,
    ) {
        self.dtmf[0] = dtmf;
        if let Some(relay) = &mut self.relay {
            relay.reset_leg(Side::Customer, now);
            relay.set_dtmf_mode(Side::Customer, dtmf);
            relay.set_srtp(Side::Customer, srtp.as_deref());
        }
        self.srtp[0] = srtp;
        self.legs[0] = None;
        if let Some(negotiated) = negotiated {
            self.set_leg(Side::Customer, negotiated, now);
        }
        // The agent hears the tone, then the customer (the relay holds the customer's audio
        // back while something plays to the agent).
        self.ringback[1] = None;
        if let Some(relay) = &mut self.relay {
            relay.stop_ringback(Side::Agent);
        }
        self.play_message(Side::Agent, connect_tone, now);
    }

    /// The customer on this session is gone: its counts, and the agent's idle audio again.
    fn detach(&mut self, on: &OnSession, now: Instant) -> MediaStats {
        let lost = self
            .relay
            .as_ref()
            .and_then(|r| r.receive_stats(Side::Customer))
            .map_or(0, |s| s.cumulative_lost().max(0) as u64);
        let stats = MediaStats {
            packets_to_customer: on.sent_before + self.sent[0] - on.sent_at_start[0],
            packets_to_agent: self.sent[1] - on.sent_at_start[1],
            lost_from_customer: lost,
            lost_from_agent: 0,
            customer_codec: self.legs[0]
                .as_ref()
                .map(|n| codec_name(n.codec).to_owned()),
            agent_codec: self.legs[1]
                .as_ref()
                .map(|n| codec_name(n.codec).to_owned()),
        };
        if let Some(relay) = &mut self.relay {
            relay.reset_leg(Side::Customer, now);
            relay.set_srtp(Side::Customer, None);
        }
        self.legs[0] = None;
        self.srtp[0] = None;
        self.message_end[1] = None;
        self.ringback[1] = self.idle[1].clone();
        if let Some(relay) = &mut self.relay {
            relay.stop_ringback(Side::Agent);
        }
        self.start_ringback(Side::Agent, now);
        stats
    }

    /// Plays a message once through the ringback player, stopped after the clip's length.
    fn play_message(&mut self, side: Side, message: Arc<Ringback>, now: Instant) {
        let i = side_index(side);
        let frames = self
            .relay
            .as_ref()
            .and_then(|r| r.codec(side))
            .and_then(|codec| message.clip(codec))
            .map_or(0, |clip| clip.len());
        if let Some(relay) = &mut self.relay {
            relay.stop_ringback(side);
        }
        if frames == 0 {
            self.ringback[i] = None;
            let _ = self.events.send(MediaEvent::MessageDone { side });
            return;
        }
        self.ringback[i] = Some(message);
        self.start_ringback(side, now);
        let length = Duration::from_millis(u64::from(media::playback::FRAME_MS) * frames as u64);
        self.message_end[i] = Some(now + length);
    }

    fn record(&mut self, path: PathBuf, now: Instant) {
        let customer = self.legs[0].as_ref().map_or(Codec::Pcmu, |n| n.codec);
        let agent = self.legs[1].as_ref().map_or(customer, |n| n.codec);
        // Never truncates: an existing file (even one that appeared since the API checked the
        // name) fails the recording instead.
        let recorder = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                Recorder::new(BufWriter::new(file), customer, agent).map_err(|e| e.to_string())
            });
        match recorder {
            Ok(recorder) => {
                self.recorder = Some(Box::new(recorder));
                self.record_due = Some(now + RECORD_FLUSH);
                self.record_payload = Vec::with_capacity(udp::SLOT);
            }
            Err(reason) => {
                self.recording_failed(format!("recording to {}: {reason}", path.display()))
            }
        }
    }

    /// Reads one batch from `socket` and forwards it. The socket's readiness is cleared (by
    /// answering `WouldBlock` to tokio's `try_io`) when the batch was not full: the socket is
    /// drained, and a datagram arriving later raises a new readiness event.
    fn readable(&mut self, socket: &tokio::net::UdpSocket, side: Side, fds: &[RawFd; 4]) {
        let fd = socket.as_raw_fd();
        let _ = socket.try_io(Interest::READABLE, || {
            udp::with_scratch(|scratch| {
                // Errors other than WouldBlock (an ICMP error queued on the socket, RFC 1122
                // §4.1.3.3) are consumed by the call that reports them: read again next time.
                let count = scratch.receive(fd)?;
                let now = Instant::now();
                for i in 0..count {
                    self.packet(now, side, i, scratch, fds);
                }
                self.poll_events(now);
                scratch.flush(fds, |tag| self.count_sent(tag));
                if count < BATCH {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            })
        });
    }

    fn count_sent(&mut self, tag: u8) {
        if let Some(n) = self.sent.get_mut(usize::from(tag)) {
            *n += 1;
        }
    }

    /// Forwards received datagram `i` and queues what the relay produced.
    fn packet(
        &mut self,
        now: Instant,
        side: Side,
        i: usize,
        scratch: &mut Scratch,
        fds: &[RawFd; 4],
    ) {
        let (Some(relay), Some(from)) = (&mut self.relay, scratch.rx_from[i]) else {
            return;
        };
        let len = scratch.rx_len[i];
        let buf = &mut scratch.rx[i];
        if let Some(tap) = &self.tap {
            let local = self.locals[usize::from(socket_index(side, false))];
            super::tap::write_shared(tap, from, local, &buf[..len]);
        }
        let mut recording = false;
        let (leg, payload) = (&self.legs[side_index(side)], &mut self.record_payload);
        let record = self.recorder.is_some();
        // The recorder reads the packet as the relay unprotected it (SRTP legs).
        let result = relay.forward_and_read(now, side, from, buf, len, |plain| {
            recording = record && keep_audio_payload(leg, plain, payload);
        });
        let accepted = match result {
            Forward::Send { to, len } => {
                let egress = side.other();
                if let Some(tap) = &self.tap {
                    let local = self.locals[usize::from(socket_index(egress, false))];
                    super::tap::write_shared(tap, local, to, &buf[..len]);
                }
                scratch.queue(Outgoing {
                    buffer: Buffer::Rx(i as u8),
                    len: len as u16,
                    to,
                    socket: socket_index(egress, false),
                    tag: side_index(egress) as u8,
                });
                true
            }
            // From the leg's peer but with nowhere to go yet, or held back while a digit
            // plays to the other leg: still what the leg said.
            Forward::Dropped(
                DropReason::RingbackPlaying | DropReason::NoDestination | DropReason::DtmfPlaying,
            ) => true,
            Forward::Dropped(_) => false,
        };
        if recording && accepted {
            if let Some(recorder) = &mut self.recorder {
                // A payload that does not decode is left out of the recording, not fatal.
                let _ = recorder.push(side, &self.record_payload);
            }
        }
        self.queue_transmits(now, scratch, fds);
    }

    /// Queues what [`Relay::poll_transmit_leg`] has due, flushing when the buffers run out.
    fn queue_transmits(&mut self, now: Instant, scratch: &mut Scratch, fds: &[RawFd; 4]) {
        loop {
            let Some(relay) = &mut self.relay else { return };
            let Some((_, buf)) = scratch.extra_slot() else {
                scratch.flush(fds, |tag| self.count_sent(tag));
                continue;
            };
            let Some(transmit) = relay.poll_transmit_leg(now, buf) else {
                return;
            };
            let is_rtcp = rtp::classify(&buf[..transmit.len]) == PacketKind::Rtcp;
            // RTCP goes from the RTCP socket unless the peer multiplexes it on RTP's port.
            let from_rtcp = is_rtcp && relay.destination(transmit.side) != Some(transmit.to);
            if let Some(tap) = &self.tap {
                let local = self.locals[usize::from(socket_index(transmit.side, from_rtcp))];
                super::tap::write_shared(tap, local, transmit.to, &buf[..transmit.len]);
            }
            scratch.queue_extra(Outgoing {
                buffer: Buffer::Extra(0),
                len: transmit.len as u16,
                to: transmit.to,
                socket: socket_index(transmit.side, from_rtcp),
                tag: if is_rtcp {
                    TAG_RTCP
                } else {
                    side_index(transmit.side) as u8
                },
            });
        }
    }

    fn poll_events(&mut self, now: Instant) {
        let Some(relay) = &mut self.relay else { return };
        while let Some(event) = relay.poll_event(now) {
            let event = match event {
                RelayEvent::MediaTimeout { side } => MediaEvent::Timeout { side },
                RelayEvent::Latched { side, to } => MediaEvent::Latched { side, to },
                RelayEvent::Digit {
                    side,
                    event,
                    duration,
                } => MediaEvent::Digit {
                    side,
                    event,
                    duration,
                },
                _ => continue,
            };
            let _ = self.events.send(event);
        }
    }

    fn transmit_due(&mut self, now: Instant, fds: &[RawFd; 4]) {
        udp::with_scratch(|scratch| {
            self.queue_transmits(now, scratch, fds);
            scratch.flush(fds, |tag| self.count_sent(tag));
        });
        self.poll_events(now);
    }

    fn on_deadline(&mut self, fds: &[RawFd; 4]) {
        let now = Instant::now();
        self.transmit_due(now, fds);
        for side in [Side::Customer, Side::Agent] {
            let i = side_index(side);
            if self.message_end[i].is_some_and(|end| now >= end) {
                self.message_end[i] = None;
                self.ringback[i] = None;
                if let Some(relay) = &mut self.relay {
                    relay.stop_ringback(side);
                }
                // A session agent with no customer goes back to its idle audio.
                if self.legs[side_index(side.other())].is_none() {
                    self.ringback[i] = self.idle[i].clone();
                    self.start_ringback(side, now);
                }
                let _ = self.events.send(MediaEvent::MessageDone { side });
            }
        }
        if self.record_due.is_some_and(|due| now >= due) {
            self.record_due = Some(now + RECORD_FLUSH);
            if let Some(Err(error)) = self.recorder.as_mut().map(|r| r.flush()) {
                self.recording_failed(format!("recording: {error}"));
            }
        }
    }

    fn close(mut self) {
        // The signalling task holds the other reference; the file is complete when it too
        // lets go at the end of the call.
        drop(self.tap.take());
        if let Some(recorder) = self.recorder.take() {
            if let Err(error) = (*recorder).finish() {
                self.recording_failed(format!("recording: {error}"));
            }
        }
        let lost = |side| {
            self.relay
                .as_ref()
                .and_then(|r| r.receive_stats(side))
                .map_or(0, |s| s.cumulative_lost().max(0) as u64)
        };
        let codec = |i: usize| {
            self.legs[i]
                .as_ref()
                .map(|n| codec_name(n.codec).to_string())
        };
        let stats = MediaStats {
            packets_to_customer: self.sent[0],
            packets_to_agent: self.sent[1],
            lost_from_customer: lost(Side::Customer),
            lost_from_agent: lost(Side::Agent),
            customer_codec: codec(0),
            agent_codec: codec(1),
        };
        let _ = self.events.send(MediaEvent::Closed { stats });
    }
}

/// The encoding name as SDP writes it (RFC 3551 §6, RFC 7587 §7).
fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
        Codec::Opus => "opus",
    }
}

/// Copies the audio payload of `packet` into `out` when it carries the leg's codec (not
/// telephone-event, not comfort noise); says whether it did.
fn keep_audio_payload(leg: &Option<Negotiated>, packet: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(leg) = leg else { return false };
    if rtp::classify(packet) != PacketKind::Rtp {
        return false;
    }
    let Ok(header) = RtpHeader::parse(packet) else {
        return false;
    };
    if header.payload_type != leg.receive_payload_type
        && header.payload_type != leg.send_payload_type
    {
        return false;
    }
    out.clear();
    out.extend_from_slice(header.payload(packet));
    true
}
