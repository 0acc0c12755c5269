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
    /// Address bound for both UDP and TCP.
    pub listen: SocketAddr,
    /// Public address advertised in Contact, Via and SDP when behind NAT.
    pub external_ip: Option<IpAddr>,
    /// `User-Agent` header value.
    pub user_agent: String,
    /// RFC 3261 timer base values.
    pub timers: SipTimers,
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
}

impl Transport {
    /// The lowercase name used in the file and in Via's transport (uppercased there).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
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
    /// Answer only challenges for this realm; `None` answers any realm the trunk sends.
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
    /// Most simultaneous calls; `None` for no limit.
    pub max_channels: Option<NonZeroU32>,
    /// Most new calls per second; `None` for no limit.
    pub max_cps: Option<NonZeroU32>,
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
    /// Session-Expires to request (RFC 4028); `None` when session timers are off.
    pub session_expires: Option<Duration>,
    /// Min-SE we accept and send (RFC 4028 §5).
    pub min_se: Duration,
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
    /// Fixed contact for an agent that does not REGISTER.
    pub contact: Option<StaticContact>,
    /// Longest registration granted to this agent (overrides the registrar's `max_expires`).
    pub max_expires: Duration,
}

impl Agent {
    /// Whether `ip` lies in one of the `allow` networks. An IPv4-mapped IPv6 address is
    /// checked as the IPv4 address it carries.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
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
    /// Hang up when no RTP arrives for this long; `None` disables the check.
    pub media_timeout: Option<Duration>,
    /// Directory for call recordings, resolved against the config file's directory; `None`
    /// records nothing.
    pub record_dir: Option<PathBuf>,
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
