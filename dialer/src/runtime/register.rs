//! `dialer register`: register one trunk, print the ladder, and report the outcome.

use super::clock::Clock;
use super::ladder;
use super::settings;
use super::transport::{self, TransportEvent, Transports};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sip_core::endpoint::{Endpoint, EndpointConfig, Output};
use sip_core::registration::{Action, Registration, RegistrationEvent, RegistrationState};
use sip_core::transaction::{TimerConfig, Transport};
use std::net::SocketAddr;
use std::time::Duration;
use trunk_profiles::Config;

/// How `dialer register` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Registered (and, with `--once`, un-registered again).
    Registered,
    /// The registrar refused: status and the reason to print.
    Failed(u16, String),
    /// No final answer within the time allowed.
    Timeout,
    /// The registrar did not answer or answered with a temporary failure; the reason.
    Unreachable(String),
}

/// Why `dialer register` could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// No such trunk in the file.
    #[error("no trunk named {0:?} in the configuration")]
    NoSuchTrunk(String),
    /// The trunk does not register (IP-authenticated) or has no credentials.
    #[error("trunk {0:?} has register = false or no credentials; nothing to register")]
    NotRegistering(String),
    /// Resolving or binding failed.
    #[error("{0}")]
    Io(String),
}

/// Registers `trunk`. With `once`, returns as soon as the outcome is known (un-registering
/// a successful binding first); otherwise keeps the registration up until Ctrl-C, then
/// un-registers. `colour` colours the ladder.
pub async fn register(
    config: &Config,
    trunk: &str,
    once: bool,
    colour: bool,
    give_up_after: Duration,
) -> Result<RegisterOutcome, RegisterError> {
    let t = config
        .trunk(trunk)
        .ok_or_else(|| RegisterError::NoSuchTrunk(trunk.to_owned()))?;
    let (sock, listener) = transport::bind(config.sip().listen)
        .await
        .map_err(|e| RegisterError::Io(format!("cannot listen on {}: {e}", config.sip().listen)))?;
    let bound = sock
        .local_addr()
        .map_err(|e| RegisterError::Io(e.to_string()))?;
    let dns = super::dns::Dns::new(&config.sip().dns_servers).map_err(RegisterError::Io)?;
    let resolved = settings::locate(&dns, t, bound, &mut StdRng::from_entropy())
        .await
        .map_err(|e| RegisterError::Io(e.to_string()))?;
    // settings::locate refuses an empty list.
    let targets: Vec<SocketAddr> = resolved.targets().iter().map(|t| t.addr).collect();
    let proxy = targets[0];
    let local = SocketAddr::new(settings::local_ip(bound, Some(proxy)), bound.port());
    let advertised = SocketAddr::new(config.sip().external_ip.unwrap_or(local.ip()), bound.port());
    let mut rc = settings::registration_config(
        t,
        proxy,
        settings::contact_for(config, t, local),
        config.sip().external_ip,
    )
    .ok_or_else(|| RegisterError::NotRegistering(trunk.to_owned()))?;
    rc.failover = targets[1..].to_vec();
    let mut ep_config = EndpointConfig::new(advertised);
    ep_config.timers = TimerConfig {
        t1: config.sip().timers.t1,
        t2: config.sip().timers.t2,
        t4: config.sip().timers.t4,
    };
    ep_config.user_agent = Some(config.sip().user_agent.clone());
    ep_config.limits = super::server::parse_limits(config);
    ep_config.tls_via_port = config.sip().tls.listen.map(|a| a.port());
    let tcp = super::server::tcp_settings(config);
    let (transports, mut transport_events) = Transports::new(sock, listener, tcp);
    let tls = super::server::tls_side(config, false)
        .await
        .map_err(|e| RegisterError::Io(e.to_string()))?;
    let mut transports = transports.with_tls(tls);
    if let Some(name) = super::tls::server_name(&t.domain.to_string()) {
        for a in &targets {
            transports.set_tls_name(*a, name.clone());
        }
    }
    let udp = transports.udp();
    let via = settings::transport(t.transport);
    let list: Vec<String> = targets.iter().map(|a| a.to_string()).collect();
    eprintln!(
        "registering trunk {} over {} to {}",
        t.name,
        via.via_token(),
        list.join(", then ")
    );
    let mut endpoint = Endpoint::new(ep_config, Box::new(StdRng::from_entropy()));
    let mut reg = Registration::new(rc, Box::new(StdRng::from_entropy()))
        .map_err(|e| RegisterError::Io(e.to_string()))?;
    let clock = Clock::start();
    let mut buf = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + give_up_after;
    let mut outcome: Option<RegisterOutcome> = None;
    let mut unregistering = false;
    let mut unregister_deadline = None;
    reg.start(clock.now(), &mut endpoint);
    let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
    loop {
        // Drain everything the endpoint and the registration queued.
        loop {
            let mut moved = false;
            while let Some(o) = endpoint.poll_output() {
                moved = true;
                match o {
                    Output::Transmit(tr) => {
                        let t = clock.now().0.as_secs_f64();
                        if let Some(l) = ladder::line(t, true, tr.transport, tr.to, &tr.bytes) {
                            eprintln!("{}", ladder::format(&l, colour));
                        }
                        transports.send(&tr);
                    }
                    Output::Event(e) => {
                        reg.handle_event(clock.now(), &e, &mut endpoint);
                    }
                }
            }
            while let Some(Action::SendKeepaliveCrlf(target)) = reg.poll_action() {
                moved = true;
                transports.send_keepalive(target);
            }
            while let Some(ev) = reg.poll_event() {
                moved = true;
                match ev {
                    RegistrationEvent::Registered { expires, contact } => {
                        eprintln!("registered: {contact}, expires in {} s", expires.as_secs());
                        if once && outcome.is_none() {
                            outcome = Some(RegisterOutcome::Registered);
                        }
                    }
                    RegistrationEvent::Failed(f) => {
                        eprintln!("registration failed: {f}");
                        outcome = Some(RegisterOutcome::Failed(
                            f.status().unwrap_or(0),
                            f.to_string(),
                        ));
                    }
                    RegistrationEvent::Unregistered => {
                        eprintln!("unregistered");
                    }
                    RegistrationEvent::RetryScheduled { reason, .. }
                        if once && outcome.is_none() =>
                    {
                        outcome = Some(RegisterOutcome::Unreachable(reason.to_string()));
                    }
                    RegistrationEvent::RetryScheduled {
                        at,
                        attempt,
                        reason,
                    } => eprintln!(
                        "retrying: attempt {attempt} in {:.1} s after {reason}",
                        at.since(clock.now()).as_secs_f64()
                    ),
                    RegistrationEvent::FailedOver { from, to, reason } => {
                        eprintln!("{from} failed ({reason}), trying {to}")
                    }
                    other => eprintln!("{other:?}"),
                }
            }
            if !moved {
                break;
            }
        }
        match &outcome {
            Some(RegisterOutcome::Registered) if once && !unregistering => {
                unregistering = true;
                reg.unregister(clock.now(), &mut endpoint);
                unregister_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                continue;
            }
            Some(RegisterOutcome::Registered) | None => {}
            Some(_) => return Ok(outcome.take().expect("matched Some")),
        }
        if unregistering
            && matches!(
                reg.state(),
                RegistrationState::Unregistered | RegistrationState::Failed(_)
            )
        {
            return Ok(RegisterOutcome::Registered);
        }
        if outcome.is_none() && once && tokio::time::Instant::now() >= deadline {
            return Ok(RegisterOutcome::Timeout);
        }
        let next = [endpoint.next_timeout(), reg.next_timeout()]
            .into_iter()
            .flatten()
            .min()
            .map(|t| tokio::time::Instant::from(clock.instant_of(t)));
        let cap = if unregistering {
            unregister_deadline
        } else if once {
            Some(deadline)
        } else {
            None
        };
        let wake = match (next, cap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            r = udp.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    received(&clock, colour, &mut endpoint, Transport::Udp, from, &buf[..n]);
                }
            }
            Some(ev) = transport_events.recv() => match ev {
                TransportEvent::Message { from, bytes } => {
                    received(&clock, colour, &mut endpoint, from.transport, from.addr, &bytes);
                }
                TransportEvent::Connected { .. } => reg.flow_recovered(clock.now(), &mut endpoint),
                TransportEvent::Closed { peer, id, reason } => {
                    if transports.closed(peer, id) {
                        eprintln!("connection to {} closed: {reason}", peer.addr);
                        endpoint.flow_failed(peer);
                    }
                }
            },
            _ = async { match wake { Some(w) => tokio::time::sleep_until(w).await, None => std::future::pending().await } } => {
                let now = clock.now();
                endpoint.handle_timeout(now);
                if reg.next_timeout().is_some_and(|t| t <= now) {
                    reg.handle_timeout(now, &mut endpoint);
                }
                if unregistering && unregister_deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    return Ok(RegisterOutcome::Registered);
                }
            }
            _ = &mut ctrl_c, if !unregistering => {
                unregistering = true;
                reg.unregister(clock.now(), &mut endpoint);
                unregister_deadline = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                if outcome.is_none() {
                    outcome = Some(RegisterOutcome::Registered);
                }
            }
        }
    }
}

/// One message in: the ladder line, then the endpoint.
fn received(
    clock: &Clock,
    colour: bool,
    endpoint: &mut Endpoint,
    transport: Transport,
    from: SocketAddr,
    bytes: &[u8],
) {
    let t = clock.now().0.as_secs_f64();
    if let Some(l) = ladder::line(t, false, transport, from, bytes) {
        eprintln!("{}", ladder::format(&l, colour));
    }
    endpoint.handle_datagram(clock.now(), transport, from, bytes);
}
