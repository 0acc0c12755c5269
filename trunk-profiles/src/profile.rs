//! The validated configuration: every default filled in, every value checked.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::address::{Host, HostPort, PortRange, StaticContact};
use crate::number::{NumberError, NumberRewrite};
use crate::secret::Secret;

/// `[sip]`: the dialer's own SIP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SipSettings {
    /// Address bound for both UDP and TCP (one port for both).
    pub listen: SocketAddr,
    /// Public address advertised in Contact, Via and SDP when behind NAT.
    pub external_ip: Option<IpAddr>,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// RFC 3261 timer base values.
    pub timers: SipTimers,
    /// The largest SIP message taken, over UDP or TCP; a TCP connection sending a larger
    /// one is closed.
    pub max_message_bytes: u32,
    /// Connection limits and timers of SIP over TCP (and TLS).
    pub tcp: TcpLimits,
    /// SIP over TLS.
    pub tls: TlsSettings,
    /// The DNS servers asked for trunks named by DNS (RFC 3263 NAPTR, SRV, A/AAAA), in
    /// order; empty for the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
}

/// `[sip] tls_*`: SIP over TLS (RFC 3261 §26.2, RFC 5922).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TlsSettings {
    /// Where TLS connections are accepted (phones, a carrier calling in); with `cert` and
    /// `key`.
    pub listen: Option<SocketAddr>,
    /// The certificate chain presented by `listen`, PEM.
    pub cert: Option<PathBuf>,
    /// Its private key, PEM.
    pub key: Option<PathBuf>,
    /// The CAs a TLS trunk's certificate must chain to, PEM; `None` for the system's roots.
    pub ca: Option<PathBuf>,
    /// Check the trunk's certificate (chain and name, RFC 5922 §7.2); false only when the
    /// file says so.
    pub verify: bool,
}

/// `[sip] tcp_*`: what SIP over TCP may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpLimits {
    /// Most connections accepted from one IP address at a time.
    pub connections_per_source: u32,
    /// An accepted connection with no traffic for this long is closed; `None` never.
    pub idle_timeout: Option<Duration>,
    /// A connection the dialer opened (to a trunk) with nothing received for this long is
    /// pinged with a double CRLF (RFC 5626 §4.4.1); `None` never.
    pub keepalive: Option<Duration>,
}

/// RFC 3261 §17.1.1.1 and Table 4 base timers, overridable per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SipTimers {
    /// T1, round-trip estimate (RFC 3261 default 500 ms).
    pub t1: Duration,
    /// T2, longest non-INVITE retransmit interval (default 4 s).
    pub t2: Duration,
    /// T4, longest time a message stays in the network (default 5 s).
    pub t4: Duration,
}

impl Default for SipTimers {
    fn default() -> Self {
        SipTimers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// SIP transport to a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP (RFC 3261 §18).
    Udp,
    /// TCP (RFC 3261 §18), framed by Content-Length.
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2.1), the certificate checked against the domain.
    Tls,
}

impl Transport {
    /// The lowercase name used in the file and in Via's transport (uppercased there).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// An audio codec the dialer can offer, answer and transcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0 (RFC 3551 §6).
    Pcmu,
    /// G.711 A-law, static payload type 8 (RFC 3551 §6).
    Pcma,
    /// Opus, dynamic payload type, 48 kHz RTP clock (RFC 7587).
    Opus,
}

impl Codec {
    /// The SDP encoding name as written in `a=rtpmap` (RFC 3551 §6, RFC 7587 §7).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }
}

/// How DTMF digits travel on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfMode {
    /// RTP telephone-event payloads (RFC 4733).
    Rfc4733,
    /// SIP INFO requests with `application/dtmf-relay` bodies.
    Info,
    /// Tones in the audio itself.
    Inband,
}

impl DtmfMode {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            DtmfMode::Rfc4733 => "rfc4733",
            DtmfMode::Info => "info",
            DtmfMode::Inband => "inband",
        }
    }
}

/// Whether a leg's media is SRTP (RFC 3711), keyed by SDES (RFC 4568 `a=crypto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SrtpMode {
    /// Plain RTP: offers carry no `a=crypto`; an `RTP/SAVP` offer is refused.
    #[default]
    Off,
    /// SRTP when the peer agrees: `RTP/AVP` offers with `a=crypto` lines (a plain answer
    /// keeps the leg plain).
    Optional,
    /// SRTP or no call: `RTP/SAVP` offers (RFC 3711 §6); an answer or offer without a usable
    /// `a=crypto` fails the leg (488 to an offer).
    Required,
}

impl SrtpMode {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            SrtpMode::Off => "off",
            SrtpMode::Optional => "optional",
            SrtpMode::Required => "required",
        }
    }
}

/// What the dialer sends to hold a NAT binding to the trunk open and see that it is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keepalive {
    /// An OPTIONS request each interval; a reply proves the carrier is up.
    Options,
    /// A double CRLF each interval (RFC 5626 §4.4.1 style ping).
    Crlf,
    /// Nothing.
    Disabled,
}

impl Keepalive {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            Keepalive::Options => "options",
            Keepalive::Crlf => "crlf",
            Keepalive::Disabled => "none",
        }
    }
}

/// Credentials the dialer answers a trunk's 401/407 challenges with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Credentials {
    /// Digest `username` (the file's `auth_username`, defaulting to `username`).
    pub auth_username: String,
    /// The password.
    pub password: Secret,
    /// The environment variable the password came from, if it came from one.
    pub password_env: Option<String>,
    /// Answer only challenges for this realm (to REGISTER and to a call's INVITE); `None`
    /// answers any realm the trunk sends.
    pub realm: Option<String>,
}

/// Where a secret came from, for display without the value.
fn source_of(env: &Option<String>) -> String {
    match env {
        Some(var) => format!("from ${var}"),
        None => "inline".to_string(),
    }
}

impl Credentials {
    /// `inline` or `from $VAR`, for `dialer config check`.
    pub fn password_source(&self) -> String {
        source_of(&self.password_env)
    }
}

/// `[[trunk]]`: a carrier or PBX the dialer sends calls to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Trunk {
    /// Unique name, used by `--trunk NAME`.
    pub name: String,
    /// Where requests go (outbound proxy).
    pub proxy: HostPort,
    /// The file gave `proxy` a port. A name without one is looked up with NAPTR and SRV
    /// (RFC 3263 §4.1); with one, only A/AAAA (RFC 3263 §4.2).
    pub proxy_port_given: bool,
    /// Host of From, To and Request-URI.
    pub domain: Host,
    /// User part of From for REGISTER and of the AOR; `None` on an IP-authenticated trunk.
    pub username: Option<String>,
    /// Digest credentials; `None` when the trunk authenticates by source IP.
    pub credentials: Option<Credentials>,
    /// Whether the dialer REGISTERs to this trunk.
    pub register: bool,
    /// Requested registration lifetime.
    pub expires: Duration,
    /// SIP transport.
    pub transport: Transport,
    /// Codecs in preference order; never empty, no duplicates.
    pub codecs: Vec<Codec>,
    /// From user (and P-Asserted-Identity user when `pai`) on outbound calls.
    pub caller_id: Option<String>,
    /// Display name in From.
    pub caller_name: Option<String>,
    /// Send P-Asserted-Identity (RFC 3325 §9.1) with the caller id.
    pub pai: bool,
    /// Most simultaneous calls; `None` for no limit. Above it an originate waits in the
    /// trunk's queue (see `max_queue`).
    pub max_channels: Option<NonZeroU32>,
    /// Most new calls per second; `None` for no limit. Above it an originate waits in the
    /// trunk's queue (see `max_queue`).
    pub max_cps: Option<NonZeroU32>,
    /// Most originates that may wait, first in first out, for `max_channels` or `max_cps` to
    /// allow them; one more is refused (503). 0 refuses every call above a limit at once.
    pub max_queue: u32,
    /// Dialled-number rewriting.
    pub numbering: NumberRewrite,
    /// Keepalive method.
    pub keepalive: Keepalive,
    /// Time between keepalives.
    pub keepalive_interval: Duration,
    /// First retry delay after a failed REGISTER; doubles up to `register_retry_max`.
    pub register_retry_min: Duration,
    /// Longest delay between REGISTER retries.
    pub register_retry_max: Duration,
    /// DTMF mode on this trunk's legs.
    pub dtmf: DtmfMode,
    /// SRTP on this trunk's legs.
    pub srtp: SrtpMode,
    /// Session-Expires to request (RFC 4028); `None` when session timers are off.
    pub session_expires: Option<Duration>,
    /// Min-SE we accept and send (RFC 4028 §5).
    pub min_se: Duration,
    /// Hosts a 3xx on a call's customer leg may send the call to; a redirect to any other
    /// host ends the call. The proxy's host when the file has no `redirect_hosts`; empty
    /// (`redirect_hosts = []`) follows no redirect.
    pub redirect_hosts: Vec<Host>,
}

impl Trunk {
    /// Rewrites a dialled number for this trunk (see [`NumberRewrite`] for the steps).
    pub fn rewrite_number(&self, number: &str) -> Result<String, NumberError> {
        self.numbering.rewrite(number)
    }
}

/// How an agent proves who it is when it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSecret {
    /// The plain password.
    Password(Secret),
    /// `md5(extension:realm:password)` as 32 lowercase hex digits (RFC 7616 §3.4.2 A1 for MD5);
    /// valid only for the registrar's realm.
    A1Hash(Secret),
}

/// `[[agent]]`: a softphone that registers to the dialer and takes bridged calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Agent {
    /// Unique extension; the user part of the agent's AOR and its digest username.
    pub extension: String,
    /// Password or A1 hash.
    pub secret: AgentSecret,
    /// Source networks allowed to register as this agent.
    pub allow: Vec<IpNet>,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    /// DTMF mode on the agent leg.
    pub dtmf: DtmfMode,
    /// SRTP on the agent leg.
    pub srtp: SrtpMode,
    /// The one transport the agent may register over; `None`: any of the listeners.
    pub transport: Option<Transport>,
    /// Fixed contact for an agent that does not REGISTER.
    pub contact: Option<StaticContact>,
    /// Longest registration granted to this agent (overrides the registrar's `max_expires`).
    pub max_expires: Duration,
}

impl Agent {
    /// Whether `ip` lies in one of the `allow` networks. An IPv4-mapped IPv6 address is
    /// checked as the IPv4 address it carries.
    pub fn allows(&self, ip: IpAddr) -> bool {
        in_networks(&self.allow, ip)
    }
}

/// How a pool picks the agent to offer an answered customer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolStrategy {
    /// The ready agent whose last call (or wrap-up) ended longest ago.
    LongestIdle,
    /// The ready agent that has taken the fewest calls so far.
    FewestCalls,
}

impl PoolStrategy {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            PoolStrategy::LongestIdle => "longest_idle",
            PoolStrategy::FewestCalls => "fewest_calls",
        }
    }
}

/// How a pool's agents take calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentMode {
    /// Each customer rings the agent's phone with a new INVITE.
    Ring,
    /// The agent stays on one long call (logged in by dialling `login_extension`) and
    /// customers are bridged into it. Not available yet: validation refuses it.
    Session,
}

impl AgentMode {
    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            AgentMode::Ring => "ring",
            AgentMode::Session => "session",
        }
    }
}

/// `[[pool]]`: a team of agents that answered customers are handed to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pool {
    /// Unique name (compared case-sensitively).
    pub name: String,
    /// Extensions of `[[agent]]`s in this file, in file order, no duplicates; never empty. An
    /// agent may belong to several pools.
    pub agents: Vec<String>,
    /// How the next agent is picked.
    pub strategy: PoolStrategy,
    /// Time after a call before the agent is offered another.
    pub wrap_up: Duration,
    /// Offers in a row an agent may leave unanswered before it is paused.
    pub max_no_answer: u32,
    /// How many agents are tried for one answered customer.
    pub agent_attempts: u32,
    /// How agents take calls; always [`AgentMode::Ring`] today.
    pub agent_mode: AgentMode,
    /// An answered customer no agent has taken by then is abandoned; `None` leaves the default
    /// to the dialer (in ring mode, `calls.agent_ring_timeout_s`).
    pub abandon_after: Option<Duration>,
    /// WAV played to an abandoned customer before hanging up, resolved against the config
    /// file's directory; `None` hangs up at once.
    pub abandon_message: Option<PathBuf>,
    /// An agent that registers starts paused with reason `login`.
    pub login_paused: bool,
    /// Session mode: the extension an agent dials to log in.
    pub login_extension: Option<String>,
    /// Session mode: the DTMF key (`0`-`9`, `*`, `#`, `A`-`D`) with which an agent hangs up
    /// the customer and stays logged in.
    pub hangup_key: Option<char>,
    /// Session mode: WAV played to the agent when a customer is connected.
    pub connect_tone: Option<PathBuf>,
    /// Session mode: WAV played to the agent while waiting for a customer.
    pub idle_audio: Option<PathBuf>,
}

/// `[security]`: what happens to sources that fail digest authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Security {
    /// Failed authentications from one source address within `ban_window` that get it banned.
    pub max_auth_failures: u32,
    /// The window failures are counted in.
    pub ban_window: Duration,
    /// How long a source is banned; zero logs the failures and bans nobody.
    pub ban: Duration,
    /// Networks never banned.
    pub ban_exempt: Vec<IpNet>,
    /// SIP requests taken per second from one source address admitted only for being in an
    /// agent's `allow` network (trunks and peers the dialer called are not limited); twice
    /// as many in a burst; more are dropped unanswered.
    pub max_requests_per_s: u32,
    /// Most SIP server transactions alive at once; a request beyond gets one stateless 503.
    pub max_server_transactions: u32,
}

impl Security {
    /// Whether `ip` lies in one of the `ban_exempt` networks; an IPv4-mapped IPv6 address is
    /// checked as the IPv4 address it carries.
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        in_networks(&self.ban_exempt, ip)
    }
}

impl Default for Security {
    fn default() -> Self {
        Security {
            max_auth_failures: DEFAULT_MAX_AUTH_FAILURES,
            ban_window: Duration::from_secs(u64::from(DEFAULT_BAN_WINDOW_S)),
            ban: Duration::from_secs(u64::from(DEFAULT_BAN_S)),
            ban_exempt: Vec::new(),
            max_requests_per_s: DEFAULT_MAX_REQUESTS_PER_S,
            max_server_transactions: DEFAULT_MAX_SERVER_TRANSACTIONS,
        }
    }
}

/// `security.max_auth_failures` when absent.
pub(crate) const DEFAULT_MAX_AUTH_FAILURES: u32 = 5;
/// `security.ban_window_s` when absent: ten minutes.
pub(crate) const DEFAULT_BAN_WINDOW_S: u32 = 600;
/// `security.ban_s` when absent: an hour.
pub(crate) const DEFAULT_BAN_S: u32 = 3_600;
/// `security.max_requests_per_s` when absent: far above what a phone sends (a REGISTER a
/// minute, a few requests per call), far below a scanner.
pub(crate) const DEFAULT_MAX_REQUESTS_PER_S: u32 = 50;
/// `security.max_server_transactions` when absent: the BYEs of 1500 calls ending every
/// second each live 32 s over UDP (RFC 3261 Timer J).
pub(crate) const DEFAULT_MAX_SERVER_TRANSACTIONS: u32 = 50_000;

/// Whether `ip` (an IPv4-mapped IPv6 address as its IPv4 address) lies in one of `nets`.
fn in_networks(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    nets.iter().any(|net| net.contains(&ip))
}

/// `[registrar]`: how the dialer accepts agent registrations.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Registrar {
    /// Domain agents register in; `None` accepts any host in the To URI.
    pub domain: Option<String>,
    /// Digest realm in challenges.
    pub realm: String,
    /// Shortest registration accepted; shorter gets 423 with Min-Expires (RFC 3261 §10.3 step 7).
    pub min_expires: Duration,
    /// Longest registration granted; longer requests are cut to this.
    pub max_expires: Duration,
    /// How long a nonce is accepted before a challenge with `stale=true`.
    pub nonce_ttl: Duration,
}

/// `[media]`: RTP ports, ringback and recording.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Media {
    /// UDP ports for RTP and RTCP.
    pub rtp_ports: PortRange,
    /// Ringback WAV played to the customer, resolved against the config file's directory.
    pub ringback: Option<PathBuf>,
    /// Hang up when no RTP arrives for this long; `None` (the file's `media_timeout_s = 0`)
    /// means no media timeout at all, not some long default.
    pub media_timeout: Option<Duration>,
    /// How long after an answer or a re-INVITE the relay may latch a leg to the source its RTP
    /// really comes from (symmetric RTP, RFC 4961); after it, packets from any other source
    /// are dropped. Zero never latches: only the address in the SDP is accepted.
    pub latch_window: Duration,
    /// Directory for call recordings, resolved against the config file's directory; `None`
    /// records nothing. A request's `record` is a name relative to it.
    pub record_dir: Option<PathBuf>,
    /// Directory the ringback WAVs a request names (`ringback`) are looked up in, resolved
    /// against the config file's directory; `None` refuses a request's own ringback (the
    /// configured `ringback` still plays).
    pub ringback_dir: Option<PathBuf>,
    /// Directory for the per-call captures a request asks for (`pcap`), resolved against the
    /// config file's directory; `None` refuses them.
    pub pcap_dir: Option<PathBuf>,
}

/// `[store]`: the embedded database of campaigns, leads, attempts, DNC lists and the call
/// journal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Store {
    /// The SQLite file, resolved against the config file's directory (default `dialer.db`
    /// beside the config).
    pub path: PathBuf,
}

/// `[api]`: the control HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Api {
    /// Listen address.
    pub listen: SocketAddr,
    /// Bearer token required on every request; `None` only on a loopback address.
    pub token: Option<Secret>,
    /// The environment variable the token came from, if it came from one.
    pub token_env: Option<String>,
    /// Host names (`dialer.example.com`) or `host:port` a reverse proxy may use in `Host` and
    /// `Origin`, lowercase, besides the listen address itself; empty by default.
    pub allowed_hosts: Vec<String>,
}

/// `[calls]`: how long each leg of a call may ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Calls {
    /// The customer INVITE is CANCELled when it has no final response by then (RFC 3261
    /// §9.1); the call ends as `no_answer`, Q.850 cause 19.
    pub originate_timeout: Duration,
    /// The agent INVITE is CANCELled when the agent has not answered by then; the customer
    /// leg is then ended too.
    pub agent_ring_timeout: Duration,
}

/// `trunk.max_queue` when absent: enough for a campaign's burst, bounded so a stuck trunk
/// does not pile up originates without end.
pub(crate) const DEFAULT_MAX_QUEUE: u32 = 1_000;
/// `media.latch_window_ms` when absent: covers a NAT's first packets after the answer, and is
/// short enough that a stray source cannot take the stream mid-call.
pub(crate) const DEFAULT_LATCH_WINDOW_MS: u32 = 2_000;

/// `calls.originate_timeout_s` when absent: a minute, about what a carrier itself lets a
/// number ring before it answers 408/480.
pub(crate) const DEFAULT_ORIGINATE_TIMEOUT_S: u32 = 60;
/// `calls.agent_ring_timeout_s` when absent: the customer is already on the line, listening
/// to ringback.
pub(crate) const DEFAULT_AGENT_RING_TIMEOUT_S: u32 = 30;

impl Default for Calls {
    fn default() -> Self {
        Calls {
            originate_timeout: Duration::from_secs(u64::from(DEFAULT_ORIGINATE_TIMEOUT_S)),
            agent_ring_timeout: Duration::from_secs(u64::from(DEFAULT_AGENT_RING_TIMEOUT_S)),
        }
    }
}
