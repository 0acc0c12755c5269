//! `dialer run`: the long-running dialer. One signalling task owns the SIP socket, the
//! B2BUA core, the registrar and the trunk registrations; each call's media runs in its own
//! task (see [`super::media`]), so RTP never crosses a channel.

use super::clock::Clock;
use super::ladder;
use super::media::{MediaCommand, MediaEvent, MediaSession, PortPool};
use super::settings::{self, SettingsError};
use super::transport::{self, TcpSettings, TransportEvent, Transports};
use crate::b2bua::{
    Action, AgentTarget, Core, MediaOp, MediaReport, MediaTotals, SessionTimerConfig,
};
use crate::control::{
    AgentInfo, ApiEvent, CallId, ControlError, ControlHandle, ControlRequest, TrunkInfo,
};
use crate::registrar::{Registrar, RegistrarConfig, RegistrarEvent};
use media::playback::Ringback;
use media::relay::RelayConfig;
use media::sdp::Codec;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sip_core::endpoint::{make_response, Endpoint, EndpointConfig, Event, Target};
use sip_core::locate::TargetCache;
use sip_core::message::{HeaderKind, Method, SipMessage};
use sip_core::registration::{
    Action as RegAction, Registration, RegistrationEvent, RegistrationState,
};
use sip_core::transaction::{TimerConfig, Transport};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use trunk_profiles::Config;

/// Options of `dialer run` beyond the configuration file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Print the SIP ladder on standard error.
    pub ladder: bool,
    /// Colour the ladder.
    pub colour: bool,
    /// Append each CDR as a JSON line to this file (and always print it on stdout).
    pub cdr_file: Option<PathBuf>,
    /// Do not serve the HTTP API (standalone use drives the control handle directly).
    pub no_api: bool,
    /// Open the `[store]` and run campaigns (`dialer run`; one-call tools leave it off).
    pub campaigns: bool,
}

/// Why the dialer could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Binding a socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration cannot be used.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The registrar's settings are invalid.
    #[error("registrar: {0}")]
    Registrar(String),
    /// The ringback file cannot be used.
    #[error("{0}")]
    Ringback(String),
    /// The API could not start.
    #[error("api: {0}")]
    Api(String),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(String),
    /// The TLS certificate, key or roots cannot be used.
    #[error("{0}")]
    Tls(String),
}

/// A started dialer.
#[derive(Debug)]
pub struct Running {
    /// Requests and events.
    pub control: ControlHandle,
    /// The SIP socket's address.
    pub sip_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The longest the signalling loop keeps going after the shutdown: [`calls_drain`].
    stop_within: Duration,
    /// The thread writing CDRs and notices.
    output: Option<super::output::OutputThread>,
    /// The campaign runner and its thread, when campaigns run.
    campaigns: Option<(super::campaigns::RunnerHandle, std::thread::JoinHandle<()>)>,
    /// The call journal's writer thread; it ends once the signalling loop has dropped its
    /// sender, after the last CDR is committed.
    journal: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Ends every call, un-registers, and waits (bounded) for the dialer to stop; then every
    /// CDR still queued is written.
    pub async fn shutdown(mut self) {
        if let Some((runner, thread)) = self.campaigns.take() {
            // No new originates while the calls end; attempts still open are closed as
            // interrupted at the next start.
            runner.stop();
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let _ = self.shutdown.send(true);
        let bound = self.stop_within + Duration::from_secs(3);
        let finished = tokio::time::timeout(bound, self.task).await.is_ok();
        if let (true, Some(output)) = (finished, self.output.take()) {
            let _ = tokio::task::spawn_blocking(move || output.join()).await;
        }
        if let (true, Some(journal)) = (finished, self.journal.take()) {
            let _ = tokio::task::spawn_blocking(move || journal.join()).await;
        }
    }
}

/// How long the trunks get to un-register at shutdown.
const UNREGISTER_WAIT: Duration = Duration::from_secs(5);

/// How long calls still ending at shutdown are waited for: every transaction they own is over
/// by 64*T1 (RFC 3261 Timer B and F, and the wait for a CANCELled INVITE's final response,
/// §9.1), so each ends through its own BYE, CANCEL or timeout and writes its CDR.
fn calls_drain(t1: Duration) -> Duration {
    (t1 * 64 + Duration::from_secs(1)).max(UNREGISTER_WAIT)
}

enum Internal {
    MediaOpened(CallId, Result<(MediaSession, u16, u16), String>),
    Media(CallId, MediaEvent),
    /// A trunk's proxy name looked up again (its TTL ran out): by trunk index.
    Located(usize, Result<sip_core::locate::Resolved, String>),
}

struct CallMedia {
    session: Option<MediaSession>,
    ringback: Option<PathBuf>,
    /// `--pcap`: the call's SIP and media datagrams.
    tap: Option<super::tap::SharedTap>,
}

/// Clips the dialer makes itself.
struct Clips {
    /// What a session agent hears between customers without `idle_audio`: silence, so that
    /// its phone keeps receiving RTP in one stream.
    silence: Arc<Ringback>,
    /// What a session agent hears when a customer is switched on without `connect_tone`:
    /// a 120 ms beep at 1400 Hz (a "zip tone").
    connect_tone: Arc<Ringback>,
}

impl Clips {
    fn new() -> Result<Clips, RunError> {
        let codecs = [Codec::Pcmu, Codec::Pcma, Codec::Opus];
        let rate = 8000;
        let silence = media::playback::Pcm {
            rate,
            samples: vec![0.0; rate as usize],
        };
        let beep = media::playback::Pcm {
            rate,
            samples: (0..(rate as usize * 120 / 1000))
                .map(|n| 0.3 * (2.0 * std::f32::consts::PI * 1400.0 * n as f32 / rate as f32).sin())
                .collect(),
        };
        let make = |pcm: &media::playback::Pcm, name: &str| {
            Ringback::from_pcm(pcm, Path::new(name), &codecs)
                .map(Arc::new)
                .map_err(|e| RunError::Ringback(e.to_string()))
        };
        Ok(Clips {
            silence: make(&silence, "(silence)")?,
            connect_tone: make(&beep, "(connect tone)")?,
        })
    }
}

struct State {
    clock: Clock,
    clips: Clips,
    transports: Transports,
    /// Redials of the TCP and TLS trunks' connections, by flow.
    redials: HashMap<Target, Redial>,
    /// The resolver of the trunks' proxy names (RFC 3263).
    dns: super::dns::Dns,
    /// Each trunk's targets (by index), looked up again when their TTL runs out.
    trunk_targets: Vec<TargetCache>,
    /// The SIP socket's address: which address families targets may have.
    bound: SocketAddr,
    /// The trunks as configured, by index, for looking their names up again.
    config_trunks: Vec<trunk_profiles::Trunk>,
    core: Core,
    registrar: Registrar,
    registrations: Vec<(String, Registration)>,
    events: broadcast::Sender<ApiEvent>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    media: HashMap<CallId, CallMedia>,
    ports: Arc<PortPool>,
    media_ip: IpAddr,
    relay_config: RelayConfig,
    ringbacks: HashMap<PathBuf, Arc<Ringback>>,
    default_ringback: Option<PathBuf>,
    agent_codecs: HashMap<String, Vec<Codec>>,
    options: RunOptions,
    /// CDR lines, the ladder and notices, written by a thread of their own.
    output: super::output::Output,
    shutting_down: bool,
    /// Our SIP address as peers see it, for captures.
    sip_local: SocketAddr,
    /// The TLS listener's address as peers see it, for captures.
    tls_local: Option<SocketAddr>,
    /// The campaign runner, fed the events of campaign calls.
    campaigns: Option<super::campaigns::RunnerHandle>,
    /// What `GET /metrics` counts: SIP datagrams and ended calls.
    metrics: Arc<crate::metrics::Metrics>,
    /// The call journal (`dialer run`): calls under way and their CDRs, in the store.
    journal: Option<super::journal::Journal>,
    /// Who may send requests, and how fast.
    gate: crate::gate::Gate,
}

/// A TCP trunk's connection being re-established after it dropped.
#[derive(Debug, Default)]
struct Redial {
    /// Connections that failed in a row.
    failures: u32,
    /// When the next attempt goes out.
    at: Option<sip_core::time::Time>,
}

/// The first redial waits this long, each failure doubles it up to [`REDIAL_MAX`].
const REDIAL_MIN: Duration = Duration::from_secs(1);
/// The longest wait between two redials.
const REDIAL_MAX: Duration = Duration::from_secs(32);

fn redial_delay(failures: u32) -> Duration {
    REDIAL_MIN
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(REDIAL_MAX)
}

/// Starts the dialer: binds, registers the trunks, and runs until [`Running::shutdown`].
pub async fn start(config: Config, options: RunOptions) -> Result<Running, RunError> {
    let clock = Clock::start();
    let listen = config.sip().listen;
    let (sock, listener) = transport::bind(listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: listen,
            source,
        })?;
    let bound = sock.local_addr().map_err(|source| RunError::Bind {
        addr: listen,
        source,
    })?;
    let dns = super::dns::Dns::new(&config.sip().dns_servers)
        .map_err(|reason| RunError::Settings(SettingsError::Dns(reason)))?;
    let mut dns_rng = StdRng::from_entropy();
    let mut trunk_targets = Vec::new();
    for t in config.trunks() {
        let resolved = settings::locate(&dns, t, bound, &mut dns_rng).await?;
        let list: Vec<String> = resolved
            .targets()
            .iter()
            .map(|t| t.addr.to_string())
            .collect();
        tracing::info!(target: "dialer", "trunk {}: {} -> {}", t.name, t.proxy.host, list.join(", "));
        trunk_targets.push(TargetCache::new(clock.now(), resolved));
    }
    // Every list has a first target (settings::locate refuses an empty one).
    let proxies: Vec<SocketAddr> = trunk_targets.iter().map(|c| c.targets()[0].addr).collect();
    let failovers: Vec<Vec<SocketAddr>> = trunk_targets
        .iter()
        .map(|c| c.targets()[1..].iter().map(|t| t.addr).collect())
        .collect();
    let local_ip = settings::local_ip(bound, proxies.first().copied());
    let advertised_ip = config.sip().external_ip.unwrap_or(local_ip);
    let local = SocketAddr::new(local_ip, bound.port());
    let mut ep_config = EndpointConfig::new(SocketAddr::new(advertised_ip, bound.port()));
    ep_config.timers = TimerConfig {
        t1: config.sip().timers.t1,
        t2: config.sip().timers.t2,
        t4: config.sip().timers.t4,
    };
    ep_config.user_agent = Some(config.sip().user_agent.clone());
    ep_config.limits = parse_limits(&config);
    ep_config.tls_via_port = config.sip().tls.listen.map(|a| a.port());
    ep_config.max_server_transactions = config.security().max_server_transactions as usize;
    let mut seed = StdRng::from_entropy();
    let endpoint = Endpoint::new(ep_config, Box::new(StdRng::seed_from_u64(seed.next_u64())));
    let core_config = settings::core_config(&config, &proxies, (advertised_ip, bound.port()));
    // The core draws SDES master keys (RFC 4568 §6.1) from its source, so it gets a full
    // 256-bit seed from the OS: 64 bits would cap every key's strength at 64 bits.
    let mut core = Core::new(
        core_config,
        endpoint,
        Box::new(StdRng::from_rng(&mut seed).expect("StdRng as a seed source does not fail")),
        clock.unix_at_start(),
    );
    core.set_tls_contact_port(config.sip().tls.listen.map(|a| a.port()));
    for (i, (proxy, failover)) in proxies.iter().zip(&failovers).enumerate() {
        core.set_trunk_targets(i, *proxy, failover.clone());
    }
    // The core's trunks are the profile's, in order (settings::core_config).
    for (i, t) in config.trunks().iter().enumerate() {
        core.set_trunk_dtmf(i, settings::dtmf_mode(t.dtmf));
        core.set_trunk_srtp(i, settings::srtp_policy(t.srtp));
        core.set_trunk_session_timer(
            i,
            t.session_expires.map(|se| SessionTimerConfig {
                session_expires: se,
                min_se: t.min_se,
            }),
        );
    }
    let journal = if options.campaigns {
        let (journal, recovered, thread) = super::journal::Journal::start(&config.store().path)
            .map_err(|e| RunError::Store(e.to_string()))?;
        core.start_call_ids_at(recovered.first_call_id);
        Some((journal, recovered, thread))
    } else {
        None
    };
    let mut secret = [0u8; 32];
    seed.fill_bytes(&mut secret);
    let rconf = RegistrarConfig::from_profiles(&config, secret.to_vec(), &|hp| {
        crate::registrar::ip_literal(hp)
    })
    .map_err(|e| RunError::Registrar(e.to_string()))?;
    let registrar = Registrar::new(rconf, Box::new(StdRng::seed_from_u64(seed.next_u64())))
        .map_err(|e| RunError::Registrar(e.to_string()))?;
    core.set_agents(
        config.agents().iter().map(|a| a.extension.clone()),
        settings::pools(&config),
    );
    let mut registrations = Vec::new();
    for ((t, proxy), failover) in config.trunks().iter().zip(&proxies).zip(&failovers) {
        let local = settings::contact_for(&config, t, local);
        if let Some(mut rc) =
            settings::registration_config(t, *proxy, local, config.sip().external_ip)
        {
            rc.failover = failover.clone();
            let reg = Registration::new(rc, Box::new(StdRng::seed_from_u64(seed.next_u64())))
                .map_err(|e| RunError::Registrar(format!("trunk {}: {e}", t.name)))?;
            registrations.push((t.name.clone(), reg));
        }
    }
    let default_ringback = config.media().ringback.clone();
    let mut ringbacks = HashMap::new();
    let messages = config
        .pools()
        .iter()
        .filter_map(|p| p.abandon_message.clone());
    for p in default_ringback.iter().cloned().chain(messages) {
        if let std::collections::hash_map::Entry::Vacant(slot) = ringbacks.entry(p) {
            let clip = Arc::new(load_ringback(slot.key())?);
            slot.insert(clip);
        }
    }
    let (events, _) = broadcast::channel(4096);
    let (req_tx, req_rx) = mpsc::channel(256);
    let (internal_tx, internal_rx) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let control = ControlHandle {
        requests: req_tx,
        events: events.clone(),
    };
    let relay_config = RelayConfig {
        // `media_timeout_s = 0` is None: no timeout at all.
        media_timeout: config.media().media_timeout,
        latch_window: config.media().latch_window,
        ..RelayConfig::default()
    };
    let cdr_file = match &options.cdr_file {
        Some(p) => Some(super::output::open_cdr_file(p).map_err(|e| {
            RunError::Ringback(format!("cannot open CDR file {}: {e}", p.display()))
        })?),
        None => None,
    };
    let (output, output_thread) = super::output::Output::start(cdr_file);
    for a in config.agents() {
        core.set_agent_dtmf(&a.extension, settings::dtmf_mode(a.dtmf));
        core.set_agent_srtp(&a.extension, settings::srtp_policy(a.srtp));
    }
    let agent_codecs = config
        .agents()
        .iter()
        .map(|a| {
            (
                a.extension.clone(),
                a.codecs.iter().copied().map(settings::codec).collect(),
            )
        })
        .collect();
    let (transports, transport_events) = Transports::new(sock, listener, tcp_settings(&config));
    let transports = transports.with_tls(tls_side(&config, true).await?);
    let mut redials = HashMap::new();
    let mut transports = transports;
    for ((t, proxy), cache) in config.trunks().iter().zip(&proxies).zip(&trunk_targets) {
        let transport = settings::transport(t.transport);
        if transport == Transport::Tls {
            if let Some(name) = super::tls::server_name(&t.domain.to_string()) {
                // RFC 5922 §4: every target of the name is checked against the domain.
                for target in cache.targets() {
                    transports.set_tls_name(target.addr, name.clone());
                }
            }
        }
        if transport.is_reliable() {
            let flow = Target {
                addr: *proxy,
                transport,
            };
            redials.insert(flow, Redial::default());
        }
    }
    let mut state = State {
        clock,
        clips: Clips::new()?,
        transports,
        redials,
        dns,
        trunk_targets,
        bound,
        config_trunks: config.trunks().to_vec(),
        core,
        registrar,
        registrations,
        events: events.clone(),
        internal_tx,
        media: HashMap::new(),
        ports: Arc::new(
            PortPool::new(
                config.media().rtp_ports.first,
                config.media().rtp_ports.last,
            )
            .map_err(|e| RunError::Ringback(format!("media.rtp_ports: {e}")))?,
        ),
        media_ip: local_ip,
        relay_config,
        ringbacks,
        default_ringback,
        agent_codecs,
        options: options.clone(),
        output,
        shutting_down: false,
        sip_local: local,
        tls_local: config
            .sip()
            .tls
            .listen
            .map(|a| SocketAddr::new(local_ip, a.port())),
        campaigns: None,
        metrics: Arc::new(crate::metrics::Metrics::new()),
        journal: None,
        gate: gate(&config, &proxies),
    };
    let journal_thread = journal.map(|(journal, recovered, thread)| {
        state.journal = Some(journal);
        state.account_for_interrupted(recovered.calls);
        thread
    });
    let campaigns = if options.campaigns {
        let (runner, thread) = super::campaigns::start(&config, control.clone())
            .map_err(|e| RunError::Store(e.to_string()))?;
        state.campaigns = Some(runner.clone());
        Some((runner, thread))
    } else {
        None
    };
    if !options.no_api {
        let api = config.api().clone();
        let token = api.token.as_ref().map(|t| t.expose().to_owned());
        let handle = control.clone();
        let mut sd = shutdown_rx.clone();
        let no_token = token.is_none();
        let server = crate::api::bind(api.listen, token)
            .await
            .map_err(|e| RunError::Api(e.to_string()))?
            .allow_hosts(api.allowed_hosts.clone())
            .confine_paths(crate::paths::MediaDirs::from_config(config.media()))
            .campaigns(state.campaigns.clone())
            .metrics(state.metrics.clone());
        if let Ok(a) = server.local_addr() {
            tracing::info!(target: "dialer", "control API on http://{a}");
        }
        if no_token {
            tracing::warn!(
                target: "dialer",
                "the control API has no [api] token: any local user or process can place calls"
            );
        }
        tokio::spawn(async move {
            let _ = server
                .run(handle, async move {
                    let _ = sd.changed().await;
                })
                .await;
        });
    }
    let now = state.clock.now();
    // Agents with a static contact are reachable from the start.
    for a in config.agents() {
        state.refresh_agent(now, &a.extension);
    }
    for (_, reg) in &mut state.registrations {
        reg.start(now, state.core.endpoint());
    }
    let stop_within = calls_drain(config.sip().timers.t1);
    let task = tokio::spawn(main_loop(
        state,
        Inputs {
            requests: req_rx,
            internal: internal_rx,
            transport: transport_events,
        },
        shutdown_rx,
        stop_within,
    ));
    Ok(Running {
        control,
        sip_addr: bound,
        shutdown,
        task,
        stop_within,
        output: Some(output_thread),
        campaigns,
        journal: journal_thread,
    })
}

/// The TLS listener (with `listen`) and client of `[sip] tls_*`: a client whenever a trunk
/// uses TLS.
pub(super) async fn tls_side(
    config: &Config,
    listen: bool,
) -> Result<transport::TlsSide, RunError> {
    let tls = &config.sip().tls;
    let tls_error = |e: super::tls::TlsError| RunError::Tls(e.to_string());
    let mut side = transport::TlsSide::default();
    let wanted = config
        .trunks()
        .iter()
        .any(|t| t.transport == trunk_profiles::Transport::Tls);
    if wanted || tls.listen.is_some() {
        let client = super::tls::client_config(tls.ca.as_deref(), tls.verify).map_err(tls_error)?;
        side.connector = Some(tokio_rustls::TlsConnector::from(Arc::new(client)));
    }
    let Some(listen) = tls.listen.filter(|_| listen) else {
        return Ok(side);
    };
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        let server = super::tls::server_config(cert, key).map_err(tls_error)?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| RunError::Bind {
                addr: listen,
                source,
            })?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        side.listener = Some((Arc::new(listener), acceptor));
    }
    Ok(side)
}

/// The TCP limits and timers of `[sip]`.
/// The gate: the agents' `allow` networks, the trunks' addresses (and their static agents'
/// contacts) trusted, the `[security]` rate.
fn gate(config: &Config, proxies: &[SocketAddr]) -> crate::gate::Gate {
    let networks = config
        .agents()
        .iter()
        .flat_map(|a| a.allow.iter().copied())
        .collect();
    let mut gate = crate::gate::Gate::new(networks, config.security().max_requests_per_s);
    for p in proxies {
        gate.trust_trunk(p.ip());
    }
    gate
}

pub(super) fn tcp_settings(config: &Config) -> TcpSettings {
    let sip = config.sip();
    TcpSettings {
        connections_per_source: sip.tcp.connections_per_source as usize,
        idle_timeout: sip.tcp.idle_timeout,
        keepalive: sip.tcp.keepalive,
        limits: parse_limits(config),
        ..TcpSettings::default()
    }
}

/// The parser's limits: `[sip] max_message_bytes` for a whole message.
pub(super) fn parse_limits(config: &Config) -> sip_core::message::ParseLimits {
    sip_core::message::ParseLimits {
        max_message_bytes: config.sip().max_message_bytes as usize,
        ..sip_core::message::ParseLimits::default()
    }
}

fn load_ringback(path: &Path) -> Result<Ringback, RunError> {
    Ringback::load(path, &[Codec::Pcmu, Codec::Pcma, Codec::Opus])
        .map_err(|e| RunError::Ringback(e.to_string()))
}

/// `dialer run`: starts, serves until Ctrl-C or SIGTERM, then shuts down cleanly.
pub async fn run(config: Config, options: RunOptions) -> Result<(), RunError> {
    let running = start(config, options).await?;
    tracing::info!(target: "dialer", "SIP on {}", running.sip_addr);
    wait_for_signal().await;
    tracing::info!(target: "dialer", "shutting down");
    running.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler only fails outside a tokio runtime");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What the signalling task waits on besides its sockets.
struct Inputs {
    requests: mpsc::Receiver<ControlRequest>,
    internal: mpsc::UnboundedReceiver<Internal>,
    transport: mpsc::UnboundedReceiver<TransportEvent>,
}

async fn main_loop(
    mut st: State,
    mut inputs: Inputs,
    mut shutdown: watch::Receiver<bool>,
    stop_within: Duration,
) {
    let mut buf = vec![0u8; 65_535];
    let mut stop_deadline = None;
    let mut calls_deadline = None;
    let mut unregister_wait_over = false;
    let sock = st.transports.udp();
    let listener = st.transports.tcp();
    let tls_listener = st.transports.tls_listener();
    st.drain();
    loop {
        let wake = st.next_wake();
        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    st.on_datagram(Transport::Udp, from, &buf[..n]);
                }
            }
            r = listener.accept() => {
                if let Ok((stream, from)) = r {
                    st.on_accept(stream, from, Transport::Tcp);
                }
            }
            r = accept(&tls_listener) => {
                if let Ok((stream, from)) = r {
                    st.on_accept(stream, from, Transport::Tls);
                }
            }
            Some(ev) = inputs.transport.recv() => st.on_transport(ev),
            Some(req) = inputs.requests.recv() => st.on_control(req),
            Some(msg) = inputs.internal.recv() => st.on_internal(msg),
            _ = sleep_until(wake) => st.on_timeout(),
            changed = shutdown.changed(), if !st.shutting_down => {
                let _ = changed;
                st.begin_shutdown();
                let at = tokio::time::Instant::now();
                stop_deadline = Some(at + UNREGISTER_WAIT);
                calls_deadline = Some(at + stop_within);
            }
            _ = sleep_until(stop_deadline), if stop_deadline.is_some() => {
                // Past the un-registration wait, only calls still ending keep the loop going.
                if st.core.call_count() == 0 || stop_deadline >= calls_deadline {
                    break;
                }
                unregister_wait_over = true;
                stop_deadline = calls_deadline;
            }
        }
        st.drain();
        if st.shutting_down
            && (st.finished() || (unregister_wait_over && st.core.call_count() == 0))
        {
            break;
        }
    }
    for (_, m) in st.media.drain() {
        if let Some(s) = m.session {
            s.send(MediaCommand::Close);
        }
    }
}

async fn accept(
    listener: &Option<Arc<tokio::net::TcpListener>>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn next_wake(&mut self) -> Option<tokio::time::Instant> {
        let mut next = self.core.next_timeout();
        let mut consider = |t: Option<sip_core::time::Time>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.registrar.next_expiry());
        for r in self.redials.values() {
            consider(r.at);
        }
        for c in &self.trunk_targets {
            consider(c.next_refresh());
        }
        for (_, r) in &self.registrations {
            consider(r.next_timeout());
        }
        next.map(|t| self.clock.instant_of(t).into())
    }

    /// A connection from a banned or unknown source (see [`crate::gate`]) is closed as it
    /// is accepted, as its requests would be dropped.
    fn on_accept(&mut self, stream: tokio::net::TcpStream, from: SocketAddr, t: Transport) {
        let now = self.clock.now();
        if !self.registrar.is_banned(now, from.ip()) && self.gate.is_known(now, from.ip()) {
            self.transports.accepted(stream, from, t);
        }
    }

    fn on_transport(&mut self, ev: TransportEvent) {
        let now = self.clock.now();
        match ev {
            TransportEvent::Message { from, bytes } => {
                self.on_datagram(from.transport, from.addr, &bytes)
            }
            TransportEvent::Connected { peer, .. } => {
                let name = transport::name(peer.transport);
                tracing::info!(target: "dialer", "{name} {}: connected", peer.addr);
                if let Some(r) = self.redials.get_mut(&peer) {
                    *r = Redial::default();
                }
                for (_, reg) in &mut self.registrations {
                    if reg.target() == peer {
                        reg.flow_recovered(now, self.core.endpoint());
                    }
                }
            }
            TransportEvent::Closed { peer, id, reason } => {
                if !self.transports.closed(peer, id) {
                    return;
                }
                let name = transport::name(peer.transport);
                tracing::info!(target: "dialer", "{name} {}: connection closed: {reason}", peer.addr);
                self.core.endpoint().flow_failed(peer);
                for e in self.registrar.flow_closed(peer.addr, peer.transport) {
                    self.registrar_event(e);
                }
                self.schedule_redial(now, peer);
            }
        }
    }

    /// A TCP trunk's connection dropped or could not be opened: open it again after a
    /// growing delay, so that the carrier can reach us and the registration has a flow.
    fn schedule_redial(&mut self, now: sip_core::time::Time, peer: Target) {
        let shutting_down = self.shutting_down;
        let Some(r) = self.redials.get_mut(&peer).filter(|_| !shutting_down) else {
            return;
        };
        r.failures += 1;
        let delay = redial_delay(r.failures);
        r.at = Some(now + delay);
        tracing::warn!(
            target: "dialer",
            "{} {}: reconnecting in {:.1} s (attempt {})",
            transport::name(peer.transport),
            peer.addr,
            delay.as_secs_f64(),
            r.failures
        );
    }

    fn redial_due(&mut self, now: sip_core::time::Time) {
        for (peer, r) in &mut self.redials {
            if r.at.is_some_and(|at| at <= now) {
                r.at = None;
                self.transports.connect(*peer);
            }
        }
    }

    fn on_datagram(&mut self, transport: Transport, from: SocketAddr, bytes: &[u8]) {
        let now = self.clock.now();
        // [security]: a banned source's datagrams are dropped unanswered, before parsing.
        if self.registrar.is_banned(now, from.ip()) {
            return;
        }
        match self
            .gate
            .admit(now, from.ip(), crate::gate::is_request(bytes))
        {
            crate::gate::Verdict::Admit => {}
            crate::gate::Verdict::UnknownSource => {
                self.metrics
                    .on_dropped(crate::metrics::DropReason::UnknownSource);
                return;
            }
            crate::gate::Verdict::RateLimited { first } => {
                if first {
                    tracing::warn!(target: "dialer::gate", "rate limited source={}", from.ip());
                }
                self.metrics
                    .on_dropped(crate::metrics::DropReason::RateLimited);
                return;
            }
        }
        self.ladder(false, transport, from, bytes);
        self.core.handle_datagram(now, transport, from, bytes);
        // A REGISTER in it reaches the registrar through drain (as after every turn of the
        // loop); each failed authentication is then one warn line, for fail2ban.
        self.drain();
        let unix = self.clock.unix_at_start();
        while let Some(failure) = self.registrar.poll_failure() {
            let at = (unix + failure.at.0.as_secs_f64()) as u64;
            tracing::warn!(
                target: "dialer::registrar",
                "{}",
                crate::registrar::failure_message(&failure)
            );
            if let Some(ban) = &failure.banned {
                tracing::warn!(
                    target: "dialer::registrar",
                    "{}",
                    crate::registrar::ban_message(at, ban)
                );
            }
        }
    }

    fn on_timeout(&mut self) {
        let now = self.clock.now();
        self.core.handle_timeout(now);
        for (_, r) in &mut self.registrations {
            if r.next_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now, self.core.endpoint());
            }
        }
        for e in self.registrar.expire(now) {
            self.registrar_event(e);
        }
        self.redial_due(now);
        self.relocate_due(now);
    }

    /// Looks up again, in a task of its own, each trunk name whose TTL ran out; the answer
    /// comes back as [`Internal::Located`].
    fn relocate_due(&mut self, now: sip_core::time::Time) {
        for (i, cache) in self.trunk_targets.iter_mut().enumerate() {
            if !cache.refresh_due(now) {
                continue;
            }
            let Some(trunk) = self.config_trunks.get(i).cloned() else {
                continue;
            };
            cache.start_refresh();
            let dns = self.dns.clone();
            let bound = self.bound;
            let tx = self.internal_tx.clone();
            tokio::spawn(async move {
                let mut rng = StdRng::from_entropy();
                let result = settings::locate(&dns, &trunk, bound, &mut rng)
                    .await
                    .map_err(|e| e.to_string());
                let _ = tx.send(Internal::Located(i, result));
            });
        }
    }

    /// A trunk's name looked up again: new calls and the registration use the new targets.
    fn on_located(&mut self, trunk: usize, result: Result<sip_core::locate::Resolved, String>) {
        let now = self.clock.now();
        let Some(cache) = self.trunk_targets.get_mut(trunk) else {
            return;
        };
        let name = self
            .config_trunks
            .get(trunk)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let changed = match result {
            Ok(resolved) => cache.refreshed(now, resolved),
            Err(reason) => {
                tracing::warn!(target: "dialer", "trunk {name}: DNS lookup failed, keeping the targets: {reason}");
                cache.refresh_failed(now);
                false
            }
        };
        if !changed {
            return;
        }
        let targets: Vec<SocketAddr> = cache.targets().iter().map(|t| t.addr).collect();
        let list: Vec<String> = targets.iter().map(|a| a.to_string()).collect();
        tracing::info!(target: "dialer", "trunk {name}: targets now {}", list.join(", "));
        let (first, rest) = (targets[0], targets[1..].to_vec());
        self.core.set_trunk_targets(trunk, first, rest.clone());
        if let Some((_, reg)) = self.registrations.iter_mut().find(|(n, _)| *n == name) {
            reg.set_targets(first, rest);
        }
        if let Some(t) = self.config_trunks.get(trunk) {
            if settings::transport(t.transport) == Transport::Tls {
                if let Some(server) = super::tls::server_name(&t.domain.to_string()) {
                    for a in &targets {
                        self.transports.set_tls_name(*a, server.clone());
                    }
                }
            }
        }
    }

    fn ladder(&mut self, out: bool, transport: Transport, peer: SocketAddr, bytes: &[u8]) {
        // Every datagram passes here, followed or not.
        let direction = match out {
            true => crate::metrics::Direction::Out,
            false => crate::metrics::Direction::In,
        };
        self.metrics.on_sip(direction, bytes);
        let tapping = self.media.values().any(|m| m.tap.is_some());
        if self.events.receiver_count() == 0 && !self.options.ladder && !tapping {
            return;
        }
        let t = self.clock.now().0.as_secs_f64();
        let Some(mut line) = ladder::line(t, out, transport, peer, bytes) else {
            return;
        };
        if let Ok(m) = sip_core::message::Message::parse(bytes) {
            if let Ok(id) = m.call_id() {
                line.call = self.core.call_for_sip_call_id(id);
            }
        }
        if let Some(tap) = line
            .call
            .and_then(|c| self.media.get(&c))
            .and_then(|m| m.tap.as_ref())
        {
            // Our side is the listener the transport uses (an outbound connection's own
            // port is not kept): UDP and TCP on [sip] listen, TLS on tls_listen.
            let local = match (transport, self.tls_local) {
                (Transport::Tls, Some(tls)) => tls,
                _ => self.sip_local,
            };
            let (from, to) = if out { (local, peer) } else { (peer, local) };
            let bytes = super::tap::without_sdes_keys(bytes);
            match transport {
                Transport::Udp => super::tap::write_shared(tap, from, to, &bytes),
                Transport::Tcp | Transport::Tls => {
                    super::tap::write_shared_stream(tap, from, to, &bytes)
                }
            }
        }
        if self.options.ladder {
            self.output.err(ladder::format(&line, self.options.colour));
        }
        let _ = self.events.send(ApiEvent::Sip(line));
    }

    /// The calls a crash cut (from the journal): each gets its `interrupted` CDR, keeping its
    /// id, and each of its dialogs still confirmed a BYE; the peers still up hang up.
    fn account_for_interrupted(&mut self, calls: Vec<crate::b2bua::journal::JournalCall>) {
        let now = self.clock.now();
        for call in calls {
            let mut cdr = call.cdr;
            cdr.ended = super::clock::unix_now();
            let mut byes = 0;
            for leg in &call.legs {
                match self.core.bye_journalled(now, leg) {
                    Ok(()) => byes += 1,
                    Err(e) => tracing::warn!(target: "dialer", "call {}: {e}", cdr.id),
                }
            }
            tracing::warn!(
                target: "dialer",
                "call {}: interrupted by the dialer stopping; CDR written, BYE sent on {byes} \
                 dialogs",
                cdr.id
            );
            if let Some(journal) = &self.journal {
                journal.close(cdr.id, &cdr);
            }
            self.metrics.on_cdr(&cdr);
            if let Ok(json) = serde_json::to_string(&cdr) {
                self.output.cdr(json);
            }
        }
    }

    /// Writes the journal as a call moves: created, customer answered, bridged, ended.
    fn journal_event(&self, e: &ApiEvent) {
        let Some(journal) = &self.journal else {
            return;
        };
        match e {
            ApiEvent::CallCreated { call, .. }
            | ApiEvent::Answered { call, .. }
            | ApiEvent::Bridged { call, .. } => {
                if let Some(entry) = self.core.journal_call(self.clock.now(), *call) {
                    journal.open(&entry);
                }
            }
            ApiEvent::Hangup { call, cdr, .. } => journal.close(*call, cdr),
            _ => {}
        }
    }

    fn publish(&mut self, e: ApiEvent) {
        self.journal_event(&e);
        if let Some(runner) = &self.campaigns {
            runner.offer(&e);
        }
        if let ApiEvent::Hangup { cdr, .. } = &e {
            self.metrics.on_cdr(cdr);
            if let Ok(json) = serde_json::to_string(cdr) {
                self.output.cdr(json);
            }
        }
        let _ = self.events.send(e);
    }

    fn on_control(&mut self, req: ControlRequest) {
        let now = self.clock.now();
        match req {
            ControlRequest::Originate(o, reply) => {
                let r = self.originate(o);
                let _ = reply.send(r);
            }
            ControlRequest::ListCalls(reply) => {
                let _ = reply.send(self.core.calls(now));
            }
            ControlRequest::Hangup(id, reply) => {
                let _ = reply.send(self.core.hangup(now, id));
            }
            ControlRequest::ListAgents(reply) => {
                let _ = reply.send(self.agents(now));
            }
            ControlRequest::PauseAgent(extension, reason, reply) => {
                let r = self.core.pause_agent(now, &extension, &reason);
                let _ = reply.send(r.map_err(ControlError::from));
            }
            ControlRequest::ReadyAgent(extension, reply) => {
                let r = self.core.ready_agent(now, &extension);
                let _ = reply.send(r.map_err(ControlError::from));
            }
            ControlRequest::LoginAgent(extension, reply) => {
                let r = match self.shutting_down {
                    true => Err(ControlError::ShuttingDown),
                    false => self.core.login_agent(now, &extension),
                };
                // The session's media (its agent leg's sockets) is opened like a call's.
                if let Ok(session) = r {
                    self.media.insert(
                        session,
                        CallMedia {
                            session: None,
                            ringback: None,
                            tap: None,
                        },
                    );
                }
                let _ = reply.send(r.map(drop));
            }
            ControlRequest::LogoutAgent(extension, reply) => {
                let _ = reply.send(self.core.logout_agent(now, &extension));
            }
            ControlRequest::ListTrunks(reply) => {
                let _ = reply.send(self.trunks(now));
            }
            ControlRequest::ListBans(reply) => {
                let unix = self.clock.unix_at_start();
                let to_unix = |t: sip_core::time::Time| (unix + t.0.as_secs_f64()) as u64;
                let bans = self
                    .registrar
                    .bans(now)
                    .into_iter()
                    .map(|b| crate::control::BanInfo {
                        address: b.address,
                        since: to_unix(b.since),
                        until: to_unix(b.until),
                        failures: b.failures,
                    })
                    .collect();
                let _ = reply.send(bans);
            }
            ControlRequest::LiftBan(ip, reply) => {
                let lifted = self.registrar.lift_ban(now, ip);
                if let Some(ban) = &lifted {
                    tracing::info!(
                        target: "dialer::registrar",
                        "ban lifted source={}",
                        ban.address
                    );
                }
                let _ = reply.send(lifted.is_some());
            }
        }
    }

    /// Every configured agent: its state, and its best registration when it has one.
    fn agents(&self, now: sip_core::time::Time) -> Vec<AgentInfo> {
        let unix = self.clock.unix_at_start();
        self.core
            .agent_states()
            .into_iter()
            .map(|a| {
                let binding = self.registrar.lookup(&a.extension, now);
                AgentInfo {
                    busy: a.call.is_some(),
                    contact: binding.map(|b| b.contact.uri.to_string()),
                    source: binding.map(|b| b.source),
                    nat: binding.is_some_and(|b| b.nat),
                    expires_in_s: binding.and_then(|b| b.remaining(now)).map(|d| d.as_secs()),
                    user_agent: binding.and_then(|b| b.user_agent.clone()),
                    state: a.state,
                    reason: a.reason,
                    state_since: unix + a.since.0.as_secs_f64(),
                    state_for_s: now.since(a.since).as_secs_f64(),
                    calls_taken: a.calls_taken,
                    call: a.call,
                    pools: a.pools,
                    extension: a.extension,
                }
            })
            .collect()
    }

    /// Tells the core where an agent can be called now (its best binding), or that it
    /// cannot.
    fn refresh_agent(&mut self, now: sip_core::time::Time, extension: &str) {
        let target = self.registrar.lookup(extension, now).map(|b| {
            let codecs = self
                .agent_codecs
                .get(extension)
                .filter(|c| !c.is_empty())
                .cloned()
                .unwrap_or_else(|| vec![Codec::Pcmu, Codec::Pcma, Codec::Opus]);
            AgentTarget {
                uri: b.request_uri().clone(),
                destination: b.source,
                transport: b.transport,
                codecs,
            }
        });
        match target {
            Some(t) => self.core.agent_reachable(now, extension, t),
            None => self.core.agent_unreachable(now, extension),
        }
    }

    /// Each trunk with its registration's state (a trunk without one is `static`).
    fn trunks(&self, now: sip_core::time::Time) -> Vec<TrunkInfo> {
        self.core
            .trunks()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut info = TrunkInfo {
                    name: t.name.clone(),
                    proxy: t.proxy,
                    transport: transport::name(t.transport),
                    state: "static".to_owned(),
                    expires_in_s: None,
                    contact: None,
                    attempts: None,
                    retry_in_s: None,
                    error: None,
                    calls: self.core.trunk_load(i),
                    queued: self.core.trunk_queued(i),
                    max_channels: t.max_channels,
                    max_cps: t.max_cps,
                };
                let registration = self.registrations.iter().find(|(n, _)| *n == t.name);
                if let Some((_, r)) = registration {
                    info.state = match r.state() {
                        RegistrationState::Idle => "idle",
                        RegistrationState::Registering => "registering",
                        RegistrationState::Registered {
                            expires_at,
                            contact,
                        } => {
                            info.expires_in_s = Some(expires_at.since(now).as_secs());
                            info.contact = Some(contact.to_string());
                            "registered"
                        }
                        RegistrationState::Backoff {
                            until,
                            attempts,
                            last_error,
                        } => {
                            info.attempts = Some(*attempts);
                            info.retry_in_s = Some(until.since(now).as_secs_f64());
                            info.error = Some(last_error.to_string());
                            "retrying"
                        }
                        RegistrationState::Failed(f) => {
                            info.error = Some(f.to_string());
                            "failed"
                        }
                        RegistrationState::Unregistering => "unregistering",
                        RegistrationState::Unregistered => "unregistered",
                    }
                    .to_owned();
                }
                info
            })
            .collect()
    }

    fn originate(
        &mut self,
        o: crate::control::OriginateRequest,
    ) -> Result<crate::control::CallInfo, ControlError> {
        let now = self.clock.now();
        if self.shutting_down {
            return Err(ControlError::ShuttingDown);
        }
        let spec = o.to_spec()?;
        let ringback = spec
            .ringback
            .clone()
            .or_else(|| self.default_ringback.clone());
        if let Some(p) = &ringback {
            if !self.ringbacks.contains_key(p) {
                let rb = load_ringback(p).map_err(|e| ControlError::Other(e.to_string()))?;
                self.ringbacks.insert(p.clone(), Arc::new(rb));
            }
        }
        // The pcap opens before the call exists: a path that cannot be written refuses the
        // call instead of leaving one behind. It is created new (`create_new`), so an existing
        // file is never truncated, whoever names it; the API has confined the name to
        // `[media] pcap_dir` already (crate::paths).
        let pcap = spec.pcap.clone();
        let tap = match &pcap {
            Some(path) => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::AlreadyExists => ControlError::BadPath {
                            field: "pcap".into(),
                            problem: "already exists: the dialer never overwrites a file".into(),
                        },
                        _ => ControlError::Other(format!("{}: {e}", path.display())),
                    })?;
                Some(super::tap::PcapTap::shared(path).map_err(ControlError::Other)?)
            }
            None => None,
        };
        let placed = self.core.originate(
            now,
            crate::b2bua::OriginateSpec {
                ringback: ringback.clone(),
                ..spec
            },
        );
        let info = match placed {
            Ok(info) => info,
            Err(e) => {
                // The capture was created for this call only: a refused call leaves no file.
                if let Some(path) = &pcap {
                    let _ = std::fs::remove_file(path);
                }
                return Err(e.into());
            }
        };
        self.media.insert(
            info.id,
            CallMedia {
                session: None,
                ringback,
                tap,
            },
        );
        Ok(info)
    }

    fn on_internal(&mut self, msg: Internal) {
        let now = self.clock.now();
        match msg {
            Internal::Located(trunk, result) => self.on_located(trunk, result),
            Internal::MediaOpened(call, Ok((session, cport, aport))) => {
                match self.media.get_mut(&call) {
                    Some(m) => {
                        if let Some(tap) = &m.tap {
                            session.send(MediaCommand::Capture { tap: tap.clone() });
                        }
                        m.session = Some(session);
                        self.core.media_opened(now, call, cport, aport);
                    }
                    None => session.send(MediaCommand::Close),
                }
            }
            Internal::MediaOpened(call, Err(reason)) => {
                self.core
                    .media_event(now, call, MediaReport::Failed(reason));
                self.core.media_closed(now, call, MediaTotals::default());
            }
            Internal::Media(call, ev) => match ev {
                MediaEvent::Timeout { side } => {
                    self.core.media_event(now, call, MediaReport::Timeout(side))
                }
                MediaEvent::Failed { reason } => {
                    self.core
                        .media_event(now, call, MediaReport::Failed(reason))
                }
                MediaEvent::RecordingFailed { reason } => {
                    let tag = self.core.call_tag(call);
                    self.publish(ApiEvent::RecordingFailed { call, reason, tag });
                }
                MediaEvent::MessageDone { side } => {
                    self.core
                        .media_event(now, call, MediaReport::MessageDone(side))
                }
                MediaEvent::Digit {
                    side,
                    event,
                    duration,
                } => self.core.media_event(
                    now,
                    call,
                    MediaReport::Digit {
                        side,
                        event,
                        duration,
                    },
                ),
                MediaEvent::Detached {
                    call: customer,
                    stats,
                } => {
                    self.media.remove(&customer);
                    let totals = MediaTotals {
                        packets_to_agent: stats.packets_to_agent,
                        packets_to_customer: stats.packets_to_customer,
                        lost_from_customer: stats.lost_from_customer,
                        lost_from_agent: stats.lost_from_agent,
                    };
                    self.core.media_event(
                        now,
                        call,
                        MediaReport::Detached {
                            call: customer,
                            totals,
                        },
                    );
                }
                MediaEvent::Closed { stats } => {
                    self.media.remove(&call);
                    self.core.media_closed(
                        now,
                        call,
                        MediaTotals {
                            packets_to_agent: stats.packets_to_agent,
                            packets_to_customer: stats.packets_to_customer,
                            lost_from_customer: stats.lost_from_customer,
                            lost_from_agent: stats.lost_from_agent,
                        },
                    );
                }
                _ => {}
            },
        }
    }

    fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        let now = self.clock.now();
        self.core.hangup_all(now);
        for (_, r) in &mut self.registrations {
            r.unregister(now, self.core.endpoint());
        }
    }

    fn finished(&self) -> bool {
        self.core.call_count() == 0
            && self.registrations.iter().all(|(_, r)| {
                matches!(
                    r.state(),
                    RegistrationState::Unregistered
                        | RegistrationState::Failed(_)
                        | RegistrationState::Idle
                )
            })
    }

    /// Moves everything the cores queued: SIP to the socket, media commands to the call
    /// tasks, events to the followers, REGISTER and OPTIONS to the registrar.
    fn drain(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(t) = self.core.poll_transmit() {
                moved = true;
                if crate::gate::is_request(&t.bytes) {
                    self.gate.contacted(self.clock.now(), t.to.ip());
                }
                self.ladder(true, t.transport, t.to, &t.bytes);
                self.transports.send(&t);
            }
            while let Some(e) = self.core.poll_other() {
                moved = true;
                self.on_other(e);
            }
            while let Some(a) = self.core.poll_action() {
                moved = true;
                self.on_action(a);
            }
            for i in 0..self.registrations.len() {
                while let Some(a) = self.registrations[i].1.poll_action() {
                    moved = true;
                    if let RegAction::SendKeepaliveCrlf(flow) = a {
                        self.transports.send_keepalive(flow);
                    }
                }
                while let Some(ev) = self.registrations[i].1.poll_event() {
                    moved = true;
                    let name = self.registrations[i].0.clone();
                    self.registration_event(&name, ev);
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn registration_event(&mut self, trunk: &str, ev: RegistrationEvent) {
        if let RegistrationEvent::FailedOver { from, to, .. } = &ev {
            // A TCP or TLS trunk's kept-up connection follows its registration to the next
            // target, rather than redialling the one that failed.
            let transport = self
                .registrations
                .iter()
                .find(|(n, _)| n == trunk)
                .map(|(_, r)| r.target().transport);
            if let Some(transport) = transport.filter(|t| t.is_reliable()) {
                let old = Target {
                    addr: *from,
                    transport,
                };
                if self.redials.remove(&old).is_some() {
                    let new = Target {
                        addr: *to,
                        transport,
                    };
                    self.redials.insert(new, Redial::default());
                }
            }
        }
        let (state, detail) = match &ev {
            RegistrationEvent::Registered { expires, contact } => (
                "registered",
                format!("expires in {} s, contact {contact}", expires.as_secs()),
            ),
            RegistrationEvent::Refreshed { expires } => (
                "registered",
                format!("refreshed, expires in {} s", expires.as_secs()),
            ),
            RegistrationEvent::Failed(f) => ("failed", f.to_string()),
            RegistrationEvent::RetryScheduled {
                at,
                attempt,
                reason,
            } => (
                "retrying",
                format!(
                    "attempt {attempt} in {:.1} s after {reason}",
                    at.since(self.clock.now()).as_secs_f64()
                ),
            ),
            RegistrationEvent::ContactRewritten { from, to } => (
                "registering",
                format!("NAT: contact {from} rewritten to {to}"),
            ),
            RegistrationEvent::Unregistered => ("unregistered", String::new()),
            RegistrationEvent::FailedOver { from, to, reason } => (
                "registering",
                format!("{from} failed ({reason}), trying {to} (RFC 3263 §4.3)"),
            ),
            other => ("registering", format!("{other:?}")),
        };
        let line = if detail.is_empty() {
            format!("trunk {trunk}: {state}")
        } else {
            format!("trunk {trunk}: {state} {detail}")
        };
        // A registration that is not getting through is worth a warning.
        if matches!(state, "retrying" | "failed") {
            tracing::warn!(target: "dialer", "{line}");
        } else {
            tracing::info!(target: "dialer", "{line}");
        }
        self.publish(ApiEvent::TrunkRegistration {
            trunk: trunk.to_owned(),
            state: state.to_owned(),
            detail,
        });
    }

    fn on_other(&mut self, e: Event) {
        let now = self.clock.now();
        if let Event::Overloaded { .. } = e {
            self.metrics
                .on_dropped(crate::metrics::DropReason::Overloaded);
            return;
        }
        for (_, r) in &mut self.registrations {
            if r.handle_event(now, &e, self.core.endpoint()) {
                return;
            }
        }
        if let Event::Request {
            transaction,
            request,
            source,
            transport,
        } = e
        {
            let response = match request.method {
                Method::Register => {
                    let outcome = self
                        .registrar
                        .handle_register(now, &request, source, transport);
                    for ev in outcome.events {
                        self.registrar_event(ev);
                    }
                    outcome.response
                }
                Method::Options => self.registrar.handle_options(&request),
                _ => {
                    let mut r = make_response(&request, 405, None);
                    r.headers.add(
                        HeaderKind::Allow,
                        "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER",
                    );
                    r
                }
            };
            let _ = self.core.endpoint().respond(now, transaction, response);
        }
    }

    fn registrar_event(&mut self, e: RegistrarEvent) {
        match e {
            RegistrarEvent::AgentRegistered {
                extension,
                contact,
                source,
                nat,
                ..
            } => {
                tracing::info!(
                    target: "dialer",
                    "agent {extension} registered from {source} (contact {}, nat {nat})",
                    contact.uri
                );
                self.publish(ApiEvent::AgentRegistered {
                    extension: extension.clone(),
                    contact: contact.uri.to_string(),
                    source,
                    nat,
                });
                let now = self.clock.now();
                self.refresh_agent(now, &extension);
            }
            RegistrarEvent::AgentUnregistered {
                extension, reason, ..
            } => {
                self.publish(ApiEvent::AgentUnregistered {
                    extension: extension.clone(),
                    reason: format!("{reason:?}").to_lowercase(),
                });
                let now = self.clock.now();
                self.refresh_agent(now, &extension);
            }
            RegistrarEvent::AgentRefreshed { extension, .. } => {
                let now = self.clock.now();
                self.refresh_agent(now, &extension);
            }
        }
    }

    fn on_action(&mut self, a: Action) {
        match a {
            Action::OpenMedia { call } => {
                let tx = self.internal_tx.clone();
                let ports = self.ports.clone();
                let ip = self.media_ip;
                let config = self.relay_config;
                tokio::spawn(async move {
                    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
                    let opened = MediaSession::open(ip, &ports, ev_tx, config).await;
                    let result = opened
                        .map(|(s, p)| (s, p.customer.port(), p.agent.port()))
                        .map_err(|e| format!("cannot open RTP ports: {e}"));
                    let ok = result.is_ok();
                    let _ = tx.send(Internal::MediaOpened(call, result));
                    if ok {
                        while let Some(ev) = ev_rx.recv().await {
                            let closed = matches!(ev, MediaEvent::Closed { .. });
                            if tx.send(Internal::Media(call, ev)).is_err() || closed {
                                break;
                            }
                        }
                    }
                });
            }
            Action::Media { call, op } => self.media_op(call, op),
            Action::CloseMedia { call } => {
                let session = self.media.get_mut(&call).and_then(|m| m.session.take());
                match session {
                    Some(s) => s.send(MediaCommand::Close),
                    None => {
                        self.media.remove(&call);
                        let now = self.clock.now();
                        self.core.media_closed(now, call, MediaTotals::default());
                    }
                }
            }
            Action::LinkMedia {
                call,
                session,
                connect_tone,
            } => self.link_media(call, session, connect_tone),
            Action::Event(e) => self.publish(e),
        }
    }

    /// Hands a customer call's media over to an agent session's task.
    fn link_media(&mut self, call: CallId, session: CallId, connect_tone: Option<PathBuf>) {
        let link = self
            .media
            .get(&session)
            .and_then(|m| m.session.as_ref())
            .map(MediaSession::link);
        let tone = connect_tone
            .and_then(|p| self.ringbacks.get(&p).cloned())
            .unwrap_or_else(|| self.clips.connect_tone.clone());
        match (link, self.media.get(&call).and_then(|m| m.session.as_ref())) {
            (Some(to), Some(customer)) => customer.send(MediaCommand::HandOver {
                call,
                to,
                connect_tone: tone,
            }),
            _ => {
                let now = self.clock.now();
                self.core
                    .media_event(now, call, MediaReport::Failed("no session media".into()));
            }
        }
    }

    fn media_op(&mut self, call: CallId, op: MediaOp) {
        let Some(m) = self.media.get_mut(&call) else {
            return;
        };
        let cmd = match op {
            MediaOp::SetLeg { side, negotiated } => MediaCommand::SetLeg { side, negotiated },
            MediaOp::SetSrtp { side, keys } => MediaCommand::SetSrtp { side, keys },
            MediaOp::StartRingback { side, path } => {
                let path = path.or_else(|| m.ringback.clone());
                match path.and_then(|p| self.ringbacks.get(&p).cloned()) {
                    Some(ringback) => MediaCommand::StartRingback { side, ringback },
                    None => return,
                }
            }
            MediaOp::PlayMessage { side, path } => match self.ringbacks.get(&path).cloned() {
                Some(message) => MediaCommand::PlayMessage { side, message },
                None => {
                    let now = self.clock.now();
                    self.core
                        .media_event(now, call, MediaReport::MessageDone(side));
                    return;
                }
            },
            MediaOp::StopRingback { side } => MediaCommand::StopRingback { side },
            MediaOp::AllowSource { side, ip } => MediaCommand::AllowSource { side, ip },
            MediaOp::StartIdle { side, path } => MediaCommand::StartIdle {
                side,
                clip: path
                    .and_then(|p| self.ringbacks.get(&p).cloned())
                    .unwrap_or_else(|| self.clips.silence.clone()),
            },
            MediaOp::DetachCustomer { call } => MediaCommand::Detach { call },
            MediaOp::Record { path } => MediaCommand::Record { path },
            MediaOp::SetDtmf { side, mode } => MediaCommand::SetDtmf { side, mode },
            MediaOp::SendDigit {
                side,
                event,
                duration,
            } => MediaCommand::SendDigit {
                side,
                event,
                duration,
            },
        };
        if let Some(s) = &m.session {
            s.send(cmd);
        }
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").finish_non_exhaustive()
    }
}
