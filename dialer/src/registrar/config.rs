//! The registrar's settings and its agent table, built by hand (tests) or from a
//! `dialer.toml` ([`RegistrarConfig::from_profiles`]).

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use sip_core::auth::{HashFunction, Secret};
use sip_core::message::{Method, NameAddr, Uri};
use sip_core::transaction::Transport;

/// The registration length used when a REGISTER names none (RFC 3261 §10.2.1.1 leaves the
/// choice to the registrar; 3600 s is the value §20.19 uses for malformed values, and what
/// Asterisk and FreeSWITCH default to).
pub const DEFAULT_EXPIRES: Duration = Duration::from_secs(3600);

/// How many bindings one agent may hold; a softphone and a desk phone on one extension fit,
/// a runaway client re-registering from new ports does not grow the table without bound.
pub const DEFAULT_MAX_BINDINGS_PER_AGENT: usize = 8;

/// Everything the registrar needs to know.
#[derive(Clone)]
pub struct RegistrarConfig {
    /// The digest realm challenged (RFC 3261 §22.1) and used in stored HA1s.
    pub realm: String,
    /// The domain agents register in (the To host); `None` accepts any host.
    pub domain: Option<String>,
    /// Shortest registration accepted; a shorter non-zero one gets 423 (RFC 3261 §10.3 step 7).
    pub min_expires: Duration,
    /// Longest registration granted; longer requests are cut to this (§10.3 step 7 lets the
    /// registrar shorten). An agent's own `max_expires` overrides it.
    pub max_expires: Duration,
    /// The registration length when neither the Contact nor the request names one.
    pub default_expires: Duration,
    /// How long a nonce stays fresh; an older one is answered with `stale=true`.
    pub nonce_ttl: Duration,
    /// The HMAC key binding nonces to this registrar (keep it random and secret; a restart
    /// with a new key only costs each agent one extra challenge).
    pub nonce_secret: Vec<u8>,
    /// The most bindings one agent may hold at once.
    pub max_bindings_per_agent: usize,
    /// `Server` header value for responses, if any.
    pub server: Option<String>,
    /// Methods listed in `Allow` of OPTIONS answers (RFC 3261 §11.2).
    pub allow: Vec<Method>,
    /// Option tags listed in `Supported` of OPTIONS answers (may be empty: §20.37 allows it).
    pub supported: Vec<String>,
    /// The digest algorithms challenged with, one WWW-Authenticate each, in this order.
    /// MD5 alone by default: softphones built on libre (baresip) fail the whole
    /// registration when any challenge names an algorithm they lack, and most deployed
    /// phones know only MD5. Add SHA-256 where every agent supports RFC 7616.
    pub algorithms: Vec<sip_core::auth::Algorithm>,
    /// The agents.
    pub agents: Vec<AgentEntry>,
    /// When sources that fail authentication are banned (`[security]`).
    pub security: super::BanConfig,
}

impl fmt::Debug for RegistrarConfig {
    // The nonce key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrarConfig")
            .field("realm", &self.realm)
            .field("domain", &self.domain)
            .field("min_expires", &self.min_expires)
            .field("max_expires", &self.max_expires)
            .field("default_expires", &self.default_expires)
            .field("nonce_ttl", &self.nonce_ttl)
            .field("nonce_secret", &"<redacted>")
            .field("max_bindings_per_agent", &self.max_bindings_per_agent)
            .field("server", &self.server)
            .field("allow", &self.allow)
            .field("supported", &self.supported)
            .field("algorithms", &self.algorithms)
            .field("agents", &self.agents)
            .field("security", &self.security)
            .finish()
    }
}

/// One agent: who it is, how it proves it, and where it may register from.
#[derive(Debug, Clone)]
pub struct AgentEntry {
    /// The extension: the user part of the agent's address-of-record and its digest username.
    pub extension: String,
    /// The password or HA1 (for the registrar's realm) the digest is checked against.
    pub secret: Secret,
    /// Source networks allowed to register as this agent.
    pub allow: Vec<IpNet>,
    /// Longest registration granted to this agent, overriding the registrar's.
    pub max_expires: Option<Duration>,
    /// A fixed contact for an agent that does not REGISTER.
    pub static_contact: Option<StaticContact>,
    /// The one transport it may register over (`[[agent]] transport`); `None`: any.
    pub transport: Option<Transport>,
}

impl AgentEntry {
    /// An agent with a password, allowed from `allow`, no static contact.
    pub fn with_password(
        extension: impl Into<String>,
        password: impl Into<String>,
        allow: Vec<IpNet>,
    ) -> Self {
        AgentEntry {
            extension: extension.into(),
            secret: Secret::Password(password.into()),
            allow,
            max_expires: None,
            static_contact: None,
            transport: None,
        }
    }

    /// Whether a REGISTER over `transport` may bind this agent.
    pub fn takes(&self, transport: Transport) -> bool {
        self.transport.is_none_or(|t| t == transport)
    }

    /// Whether `ip` lies in one of the `allow` networks. An IPv4-mapped IPv6 address
    /// (a dual-stack socket's view of an IPv4 peer) is checked as the IPv4 address it carries.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// A fixed contact: what goes in the Request-URI and where the request is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticContact {
    /// The contact as configured.
    pub contact: NameAddr,
    /// Where requests go (the runtime resolved any host name before building the registrar).
    pub target: SocketAddr,
    /// How they go: TCP when the URI says `transport=tcp`, else UDP.
    pub transport: Transport,
}

/// Why a registrar configuration was refused. These are configuration mistakes found before
/// any request is handled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrarConfigError {
    /// `min_expires` is zero or above `max_expires`.
    #[error("min_expires {min:?} must be at least 1 s and at most max_expires {max:?}")]
    ExpiresBounds {
        /// The minimum.
        min: Duration,
        /// The maximum.
        max: Duration,
    },
    /// The nonce key is empty, so nonces would be forgeable.
    #[error("the nonce secret is empty")]
    EmptyNonceSecret,
    /// `max_bindings_per_agent` is zero: no agent could register.
    #[error("max_bindings_per_agent must be at least 1")]
    NoBindingsAllowed,
    /// Two agents share an extension.
    #[error("extension {0:?} is configured twice")]
    DuplicateExtension(String),
    /// An extension is empty or not a SIP user part.
    #[error("extension {0:?} is not a SIP user part")]
    InvalidExtension(String),
    /// A static contact does not parse as a SIP URI.
    #[error("agent {extension:?}: static contact {contact:?} is not a SIP URI: {reason}")]
    InvalidStaticContact {
        /// The agent.
        extension: String,
        /// The contact as configured.
        contact: String,
        /// What is wrong.
        reason: String,
    },
    /// A static contact's host could not be turned into an address by the resolver.
    #[error("agent {extension:?}: static contact host {host:?} did not resolve to an address")]
    UnresolvedStaticContact {
        /// The agent.
        extension: String,
        /// The host as configured.
        host: String,
    },
}

impl RegistrarConfig {
    /// Settings with the defaults of `dialer.toml` (min 60 s, max 3600 s, nonces fresh for
    /// 300 s, 5 failures in 600 s ban a source for 3600 s) and no agents.
    pub fn new(realm: impl Into<String>, nonce_secret: impl Into<Vec<u8>>) -> Self {
        RegistrarConfig {
            realm: realm.into(),
            domain: None,
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            default_expires: DEFAULT_EXPIRES,
            nonce_ttl: Duration::from_secs(300),
            nonce_secret: nonce_secret.into(),
            max_bindings_per_agent: DEFAULT_MAX_BINDINGS_PER_AGENT,
            server: None,
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Cancel,
                Method::Bye,
                Method::Options,
                Method::Register,
            ],
            supported: Vec::new(),
            algorithms: vec![sip_core::auth::Algorithm::Md5],
            agents: Vec::new(),
            security: super::BanConfig::default(),
        }
    }

    /// The settings a `dialer.toml` gives: `[registrar]`, `[security]` and every `[[agent]]`.
    ///
    /// `resolve` turns a static contact's host and port into an address; the registrar does
    /// no DNS, so the runtime passes a resolver, and [`ip_literal`] accepts IP literals only.
    pub fn from_profiles(
        config: &trunk_profiles::Config,
        nonce_secret: impl Into<Vec<u8>>,
        resolve: &dyn Fn(&trunk_profiles::HostPort) -> Option<SocketAddr>,
    ) -> Result<RegistrarConfig, RegistrarConfigError> {
        let registrar = config.registrar();
        let mut out = RegistrarConfig::new(registrar.realm.clone(), nonce_secret);
        out.domain = registrar.domain.clone();
        out.min_expires = registrar.min_expires;
        out.max_expires = registrar.max_expires;
        out.nonce_ttl = registrar.nonce_ttl;
        out.default_expires = DEFAULT_EXPIRES.clamp(out.min_expires, out.max_expires);
        out.server = Some(config.sip().user_agent.clone());
        out.security = super::BanConfig::from_profiles(config.security());
        for agent in config.agents() {
            let secret = match &agent.secret {
                trunk_profiles::AgentSecret::Password(p) => Secret::Password(p.expose().into()),
                // trunk-profiles: md5(extension:realm:password) for the registrar's realm.
                trunk_profiles::AgentSecret::A1Hash(h) => Secret::Ha1 {
                    hash: HashFunction::Md5,
                    hex: h.expose().into(),
                },
            };
            let static_contact = agent
                .contact
                .as_ref()
                .map(|c| static_contact(&agent.extension, c, resolve))
                .transpose()?;
            out.agents.push(AgentEntry {
                extension: agent.extension.clone(),
                secret,
                allow: agent.allow.clone(),
                max_expires: Some(agent.max_expires),
                static_contact,
                transport: agent.transport.map(|t| match t {
                    trunk_profiles::Transport::Udp => Transport::Udp,
                    trunk_profiles::Transport::Tcp => Transport::Tcp,
                    trunk_profiles::Transport::Tls => Transport::Tls,
                }),
            });
        }
        Ok(out)
    }

    /// Checks the settings that would make the registrar unusable or insecure.
    pub(crate) fn validate(&self) -> Result<(), RegistrarConfigError> {
        if self.min_expires.is_zero() || self.min_expires > self.max_expires {
            return Err(RegistrarConfigError::ExpiresBounds {
                min: self.min_expires,
                max: self.max_expires,
            });
        }
        if self.nonce_secret.is_empty() {
            return Err(RegistrarConfigError::EmptyNonceSecret);
        }
        if self.max_bindings_per_agent == 0 {
            return Err(RegistrarConfigError::NoBindingsAllowed);
        }
        let mut seen = HashSet::new();
        for agent in &self.agents {
            let valid = Uri::parse(&format!("sip:{}@h", agent.extension))
                .ok()
                .and_then(|u| u.user().map(|user| user == agent.extension))
                .unwrap_or(false);
            if !valid {
                return Err(RegistrarConfigError::InvalidExtension(
                    agent.extension.clone(),
                ));
            }
            if !seen.insert(agent.extension.as_str()) {
                return Err(RegistrarConfigError::DuplicateExtension(
                    agent.extension.clone(),
                ));
            }
        }
        Ok(())
    }
}

/// A resolver for [`RegistrarConfig::from_profiles`] that accepts IP literals only.
pub fn ip_literal(host_port: &trunk_profiles::HostPort) -> Option<SocketAddr> {
    host_port
        .host
        .ip()
        .map(|ip| SocketAddr::new(ip, host_port.port))
}

fn static_contact(
    extension: &str,
    contact: &trunk_profiles::StaticContact,
    resolve: &dyn Fn(&trunk_profiles::HostPort) -> Option<SocketAddr>,
) -> Result<StaticContact, RegistrarConfigError> {
    let uri = Uri::parse(&contact.uri).map_err(|e| RegistrarConfigError::InvalidStaticContact {
        extension: extension.to_owned(),
        contact: contact.uri.clone(),
        reason: e.to_string(),
    })?;
    // A sips: URI is reached over TLS (RFC 3261 §26.2.2), as is `transport=tls`.
    let secure = uri.as_sip().is_some_and(|s| s.secure);
    let transport = match uri.as_sip().and_then(|s| s.transport()).as_deref() {
        _ if secure => Transport::Tls,
        Some("tcp") => Transport::Tcp,
        Some("tls") => Transport::Tls,
        _ => Transport::Udp,
    };
    let target =
        resolve(&contact.target).ok_or_else(|| RegistrarConfigError::UnresolvedStaticContact {
            extension: extension.to_owned(),
            host: contact.target.host.to_string(),
        })?;
    Ok(StaticContact {
        contact: NameAddr::new(uri),
        target,
        transport,
    })
}
