//! Turning a `dialer.toml` into the cores' settings: addresses resolved, secrets exposed
//! only to the cores that hash them, codecs mapped.

use crate::b2bua::agents::AgentMode;
use crate::b2bua::{CoreConfig, DtmfMode, PoolSettings, Strategy, TrunkSettings};
use media::sdp::Codec;
use sip_core::auth::{Credentials, Secret as AuthSecret};
use sip_core::locate::Resolved;
use sip_core::message::{Host, Uri};
use sip_core::registration::{Keepalive, RegistrationConfig};
use sip_core::transaction::Transport;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use trunk_profiles::{Config, Trunk};

/// Why the configuration cannot be used at run time.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A host name did not resolve (RFC 3263 lookups found no target).
    #[error("trunk {trunk}: cannot resolve proxy {host}: {reason}")]
    Resolve {
        /// Trunk name.
        trunk: String,
        /// The host as configured.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The resolver cannot be set up (the system's configuration is unreadable).
    #[error("DNS: {0}")]
    Dns(String),
}

/// Maps a configured codec to the media crate's.
pub fn codec(c: trunk_profiles::Codec) -> Codec {
    match c {
        trunk_profiles::Codec::Pcmu => Codec::Pcmu,
        trunk_profiles::Codec::Pcma => Codec::Pcma,
        trunk_profiles::Codec::Opus => Codec::Opus,
    }
}

/// Maps a configured `dtmf` mode.
pub fn dtmf_mode(m: trunk_profiles::DtmfMode) -> DtmfMode {
    match m {
        trunk_profiles::DtmfMode::Rfc4733 => DtmfMode::Rfc4733,
        trunk_profiles::DtmfMode::Info => DtmfMode::Info,
        trunk_profiles::DtmfMode::Inband => DtmfMode::Inband,
    }
}

/// Maps a configured SRTP mode.
pub fn srtp_policy(m: trunk_profiles::SrtpMode) -> crate::b2bua::SrtpPolicy {
    use crate::b2bua::SrtpPolicy;
    match m {
        trunk_profiles::SrtpMode::Off => SrtpPolicy::Off,
        trunk_profiles::SrtpMode::Optional => SrtpPolicy::Optional,
        trunk_profiles::SrtpMode::Required => SrtpPolicy::Required,
    }
}

/// Maps a configured transport.
pub fn transport(t: trunk_profiles::Transport) -> Transport {
    match t {
        trunk_profiles::Transport::Tcp => Transport::Tcp,
        trunk_profiles::Transport::Tls => Transport::Tls,
        _ => Transport::Udp,
    }
}

/// The targets of a trunk's proxy, best first (RFC 3263 §4): an IP literal as it is; a
/// name without a port by NAPTR, SRV, then A/AAAA; a name with a port by A/AAAA
/// (RFC 3263 §4.2). Only addresses of a family the SIP socket bound at `bound` can reach are
/// kept. No target at all is an error.
pub async fn locate(
    dns: &super::dns::Dns,
    trunk: &Trunk,
    bound: SocketAddr,
    rng: &mut (dyn rand::RngCore + Send),
) -> Result<Resolved, SettingsError> {
    let host = trunk.proxy.host.to_string();
    // An IP literal keeps the configured port, or takes the transport's default when the
    // file gives none (RFC 3263 §4.2: 5061 for TLS, 5060 otherwise).
    let port = if trunk.proxy_port_given {
        Some(trunk.proxy.port)
    } else if trunk.proxy.host.ip().is_some() {
        Some(sip_core::locate::default_port(transport(trunk.transport)))
    } else {
        None
    };
    let usable = reachable_from(bound);
    let fail = |reason: String| SettingsError::Resolve {
        trunk: trunk.name.clone(),
        host: trunk.proxy.host.to_string(),
        reason,
    };
    let resolved = dns
        .locate(&host, port, transport(trunk.transport), &usable, rng)
        .await
        .map_err(fail)?;
    if resolved.is_empty() {
        return Err(fail("no usable NAPTR, SRV, A or AAAA record".into()));
    }
    Ok(resolved)
}

/// The address families a socket bound at `bound` sends to: IPv4 from an IPv4 address,
/// IPv6 from a specific IPv6 one, both from `[::]` (dual stack).
pub fn reachable_from(bound: SocketAddr) -> impl Fn(IpAddr) -> bool + Sync {
    move |ip: IpAddr| match bound.ip() {
        IpAddr::V4(_) => ip.is_ipv4(),
        IpAddr::V6(v6) if v6.is_unspecified() => true,
        IpAddr::V6(_) => ip.is_ipv6(),
    }
}

/// The address of ours a peer sees: the configured listen IP, or, when listening on every
/// interface, the source address the routing table picks towards `towards` (a connected UDP
/// socket sends nothing).
pub fn local_ip(listen: SocketAddr, towards: Option<SocketAddr>) -> IpAddr {
    if !listen.ip().is_unspecified() {
        return listen.ip();
    }
    towards
        .and_then(|t| {
            let bind: SocketAddr = if t.is_ipv4() {
                (Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(bind).ok()?;
            s.connect(t).ok()?;
            s.local_addr().ok().map(|a| a.ip())
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn credentials(trunk: &Trunk) -> Option<Credentials> {
    trunk.credentials.as_ref().map(|c| Credentials {
        username: c.auth_username.clone(),
        secret: AuthSecret::Password(c.password.expose().to_owned()),
    })
}

/// The B2BUA core's settings.
pub fn core_config(
    config: &Config,
    proxies: &[SocketAddr],
    advertised: (IpAddr, u16),
) -> CoreConfig {
    let trunks = config
        .trunks()
        .iter()
        .zip(proxies)
        .map(|(t, proxy)| TrunkSettings {
            name: t.name.clone(),
            proxy: *proxy,
            transport: transport(t.transport),
            domain: t.domain.to_string(),
            credentials: credentials(t),
            codecs: t.codecs.iter().copied().map(codec).collect(),
            caller_id: t
                .caller_id
                .clone()
                .or_else(|| t.username.clone())
                .unwrap_or_else(|| "dialer".into()),
            caller_name: t.caller_name.clone(),
            pai: t.pai,
            max_channels: t.max_channels.map(|n| n.get()),
            max_cps: t.max_cps.map(|n| n.get()),
            max_queue: t.max_queue,
            numbering: Some(t.numbering.clone()),
            redirect_hosts: {
                let mut hosts: Vec<Host> = t
                    .redirect_hosts
                    .iter()
                    .map(|h| match h {
                        trunk_profiles::Host::Name(n) => Host::Domain(n.clone()),
                        trunk_profiles::Host::Ipv4(a) => Host::Ipv4(*a),
                        trunk_profiles::Host::Ipv6(a) => Host::Ipv6(*a),
                    })
                    .collect();
                // The proxy's name (the default) also allows the address it resolved to.
                let resolved = Host::from(proxy.ip());
                if t.redirect_hosts.contains(&t.proxy.host) && !hosts.contains(&resolved) {
                    hosts.push(resolved);
                }
                hosts
            },
            realm: t.credentials.as_ref().and_then(|c| c.realm.clone()),
        })
        .collect();
    CoreConfig {
        contact_host: Host::from(advertised.0),
        contact_port: advertised.1,
        media_ip: advertised.0,
        trunks,
        originate_timeout: config.calls().originate_timeout,
        agent_ring_timeout: config.calls().agent_ring_timeout,
        max_redirects: 3,
    }
}

/// The pools as the core uses them. An unset `abandon_after_ms` is the agent ring timeout in
/// ring mode (the customer hears ringback for as long as an agent may ring) and 2000 ms in
/// session mode (the US TSR and Ofcom 2-second rule, 16 CFR 310.4(b)(4)(i)).
pub fn pools(config: &Config) -> Vec<PoolSettings> {
    config
        .pools()
        .iter()
        .map(|p| PoolSettings {
            name: p.name.clone(),
            agents: p.agents.clone(),
            strategy: match p.strategy {
                trunk_profiles::PoolStrategy::LongestIdle => Strategy::LongestIdle,
                trunk_profiles::PoolStrategy::FewestCalls => Strategy::FewestCalls,
            },
            wrap_up: p.wrap_up,
            max_no_answer: p.max_no_answer,
            agent_attempts: p.agent_attempts,
            abandon_after: p.abandon_after.unwrap_or(match p.agent_mode {
                trunk_profiles::AgentMode::Ring => config.calls().agent_ring_timeout,
                trunk_profiles::AgentMode::Session => SESSION_ABANDON_AFTER,
            }),
            abandon_message: p.abandon_message.clone(),
            login_paused: p.login_paused,
            mode: match p.agent_mode {
                trunk_profiles::AgentMode::Ring => AgentMode::Ring,
                trunk_profiles::AgentMode::Session => AgentMode::Session,
            },
            hangup_key: p.hangup_key.and_then(dtmf_event),
            connect_tone: p.connect_tone.clone(),
            idle_audio: p.idle_audio.clone(),
        })
        .collect()
}

/// The default `abandon_after_ms` of a session-mode pool.
const SESSION_ABANDON_AFTER: std::time::Duration = std::time::Duration::from_millis(2000);

/// The RFC 4733 §3.2 event code of a DTMF key.
pub fn dtmf_event(key: char) -> Option<u8> {
    match key.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        l @ 'A'..='D' => Some(l as u8 - b'A' + 12),
        _ => None,
    }
}

/// Our address for a trunk's Contact: the TLS listener's port for a TLS trunk when
/// `tls_listen` is set, the `listen` port otherwise.
pub fn contact_for(config: &Config, trunk: &Trunk, local: SocketAddr) -> SocketAddr {
    match (trunk.transport, config.sip().tls.listen) {
        (trunk_profiles::Transport::Tls, Some(tls)) => SocketAddr::new(local.ip(), tls.port()),
        _ => local,
    }
}

/// The registration of a trunk with `register = true`.
pub fn registration_config(
    trunk: &Trunk,
    proxy: SocketAddr,
    local: SocketAddr,
    external: Option<IpAddr>,
) -> Option<RegistrationConfig> {
    if !trunk.register {
        return None;
    }
    let creds = credentials(trunk)?;
    let domain = trunk.domain.to_string();
    let user = trunk
        .username
        .clone()
        .unwrap_or_else(|| creds.username.clone());
    let registrar_uri = Uri::parse(&format!("sip:{domain}")).ok()?;
    let aor = Uri::parse(&format!("sip:{user}@{domain}")).ok()?;
    let mut rc = RegistrationConfig::new(registrar_uri, aor, proxy, local, creds);
    rc.transport = transport(trunk.transport);
    rc.expires = u32::try_from(trunk.expires.as_secs()).unwrap_or(600);
    rc.external_address = external.map(|ip| (Host::from(ip), local.port()));
    rc.realm = trunk.credentials.as_ref().and_then(|c| c.realm.clone());
    rc.retry_min = trunk.register_retry_min;
    rc.retry_max = trunk.register_retry_max;
    rc.keepalive = match trunk.keepalive {
        trunk_profiles::Keepalive::Options => Keepalive::Options {
            interval: trunk.keepalive_interval,
        },
        trunk_profiles::Keepalive::Crlf => Keepalive::Crlf {
            interval: trunk.keepalive_interval,
        },
        _ => Keepalive::None,
    };
    Some(rc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[[trunk]]\nname = \"carrier\"\nproxy = \"127.0.0.1:5080\"\nregister = false\n{extra}"
        );
        Config::from_str_named(&text, "dialer.toml", &|_| None).expect("valid test config")
    }

    #[test]
    fn core_timeouts_come_from_the_calls_table() {
        let proxy: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        let c = config("[calls]\noriginate_timeout_s = 4\nagent_ring_timeout_s = 9\n");
        let core = core_config(&c, &[proxy], (IpAddr::V4(Ipv4Addr::LOCALHOST), 5060));
        assert_eq!(core.originate_timeout.as_secs(), 4);
        assert_eq!(core.agent_ring_timeout.as_secs(), 9);
    }

    #[tokio::test]
    async fn an_ip_literal_proxy_without_a_port_takes_its_transports_default_port() {
        let dns = super::super::dns::Dns::new(&["127.0.0.1:9".parse().unwrap()]).expect("dns");
        let bound: SocketAddr = "0.0.0.0:5060".parse().unwrap();
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(1);
        for (proxy, transport, port) in [
            ("192.0.2.7", "tls", 5061),
            ("192.0.2.7", "tcp", 5060),
            ("192.0.2.7", "udp", 5060),
            ("192.0.2.7:5071", "tls", 5071),
        ] {
            let text = format!(
                "[[trunk]]\nname = \"carrier\"\nproxy = \"{proxy}\"\ndomain = \"carrier.example\"\n\
                 register = false\ntransport = \"{transport}\"\n"
            );
            let c = Config::from_str_named(&text, "dialer.toml", &|_| None).expect("config");
            let found = locate(&dns, &c.trunks()[0], bound, &mut rng)
                .await
                .expect("a literal needs no lookup");
            assert_eq!(
                found.targets()[0].addr,
                SocketAddr::new("192.0.2.7".parse().unwrap(), port),
                "{proxy} over {transport}"
            );
        }
    }

    #[test]
    fn core_timeouts_default_without_a_calls_table() {
        let proxy: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        let core = core_config(
            &config(""),
            &[proxy],
            (IpAddr::V4(Ipv4Addr::LOCALHOST), 5060),
        );
        assert_eq!(core.originate_timeout.as_secs(), 60);
        assert_eq!(core.agent_ring_timeout.as_secs(), 30);
    }
}
