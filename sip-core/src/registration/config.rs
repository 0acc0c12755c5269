//! What a registration needs to know about its trunk, and the checks made on it.

use crate::auth::Credentials;
use crate::message::{Host, Uri};
use crate::transaction::Transport;
use std::net::SocketAddr;
use std::time::Duration;

/// How the NAT binding towards the proxy is held open between REGISTERs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keepalive {
    /// No keepalives.
    None,
    /// A `\r\n\r\n` datagram every `interval` (the RFC 5626 §3.5.1 ping). The registration
    /// hands it out as [`super::Action::SendKeepaliveCrlf`]; the runtime sends it.
    Crlf {
        /// Time between two keepalives.
        interval: Duration,
    },
    /// An out-of-dialog OPTIONS to the registrar every `interval`, sent through the
    /// endpoint. Any response proves the path alive; a timeout triggers a re-REGISTER.
    Options {
        /// Time between two keepalives.
        interval: Duration,
    },
}

impl Keepalive {
    /// The interval, unless keepalives are off.
    pub fn interval(&self) -> Option<Duration> {
        match self {
            Keepalive::None => None,
            Keepalive::Crlf { interval } | Keepalive::Options { interval } => Some(*interval),
        }
    }
}

/// Everything a [`super::Registration`] needs about one trunk.
#[derive(Clone, Debug)]
pub struct RegistrationConfig {
    /// The Request-URI of the REGISTER: `sip:domain` (RFC 3261 §10.2: no user part).
    pub registrar_uri: Uri,
    /// The address of record, used in From and To: `sip:user@domain`.
    pub aor: Uri,
    /// Where requests go: the outbound proxy (resolved by the runtime; no DNS here).
    pub proxy: SocketAddr,
    /// The next targets of the proxy's name, in order (RFC 3263 §4.3): a REGISTER that
    /// times out or gets a 503 is sent to the next one at once; empty for an IP literal.
    pub failover: Vec<SocketAddr>,
    /// The transport to the proxy.
    pub transport: Transport,
    /// The user part of our Contact; `None` uses the AOR's user.
    pub contact_user: Option<String>,
    /// The host we put in Contact (our local address as the runtime knows it).
    pub contact_host: Host,
    /// The port we put in Contact.
    pub contact_port: u16,
    /// The advertised public address (`external_ip`). When set it is used in Contact and
    /// NAT contact rewriting from `received`/`rport` is disabled.
    pub external_address: Option<(Host, u16)>,
    /// The expiry we ask for, in seconds (the Expires header).
    pub expires: u32,
    /// The auth username and its password or HA1.
    pub credentials: Credentials,
    /// When set, only challenges for this realm are answered; a challenge for another realm
    /// fails the registration with [`super::Failure::RealmMismatch`] (an HA1 is only valid
    /// for the realm it was computed for).
    pub realm: Option<String>,
    /// The first retry delay after a timeout or a 5xx.
    pub retry_min: Duration,
    /// The longest retry delay (a Retry-After from the registrar may ask for longer).
    pub retry_max: Duration,
    /// NAT keepalives while registered.
    pub keepalive: Keepalive,
    /// When to refresh, as a fraction of the granted expiry counted from when the REGISTER
    /// was sent, in (0, 1); see [`super::refresh_delay`].
    pub refresh_fraction: f64,
}

impl RegistrationConfig {
    /// A configuration with the defaults: 600 s expiry, retries between 2 s and 300 s, no
    /// keepalive, refresh at half the granted expiry, UDP, no external address, no realm
    /// restriction, Contact user from the AOR.
    pub fn new(
        registrar_uri: Uri,
        aor: Uri,
        proxy: SocketAddr,
        contact: SocketAddr,
        credentials: Credentials,
    ) -> Self {
        RegistrationConfig {
            registrar_uri,
            aor,
            proxy,
            failover: Vec::new(),
            transport: Transport::Udp,
            contact_user: None,
            contact_host: Host::from(contact.ip()),
            contact_port: contact.port(),
            external_address: None,
            expires: 600,
            credentials,
            realm: None,
            retry_min: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            keepalive: Keepalive::None,
            refresh_fraction: 0.5,
        }
    }

    /// Checks the values that would make the state machine misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.registrar_uri.as_sip().is_none() {
            return Err(ConfigError::RegistrarNotSip(self.registrar_uri.to_string()));
        }
        match self.aor.as_sip() {
            Some(sip) if sip.user.is_some() => {}
            _ => return Err(ConfigError::AorWithoutUser(self.aor.to_string())),
        }
        if self.expires == 0 {
            return Err(ConfigError::ZeroExpires);
        }
        if self.retry_min.is_zero() || self.retry_min > self.retry_max {
            return Err(ConfigError::RetryBounds {
                min: self.retry_min,
                max: self.retry_max,
            });
        }
        if let Some(interval) = self.keepalive.interval() {
            if interval.is_zero() {
                return Err(ConfigError::ZeroKeepaliveInterval);
            }
        }
        if !(self.refresh_fraction > 0.0 && self.refresh_fraction < 1.0) {
            return Err(ConfigError::RefreshFraction(self.refresh_fraction));
        }
        Ok(())
    }
}

/// A configuration the registration refuses.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The registrar URI is not `sip:` / `sips:`.
    #[error("registrar URI {0:?} is not a sip: URI")]
    RegistrarNotSip(String),
    /// The AOR is not a `sip:` URI with a user part.
    #[error("address of record {0:?} is not a sip: URI with a user")]
    AorWithoutUser(String),
    /// An expiry of zero would un-register.
    #[error("expires must be above 0 (0 removes the binding)")]
    ZeroExpires,
    /// The retry bounds are empty or zero.
    #[error("retry delays need 0 < min <= max (got min {min:?}, max {max:?})")]
    RetryBounds {
        /// The minimum given.
        min: Duration,
        /// The maximum given.
        max: Duration,
    },
    /// A keepalive every zero seconds.
    #[error("keepalive interval must be above 0")]
    ZeroKeepaliveInterval,
    /// The refresh fraction is outside (0, 1).
    #[error("refresh fraction must be between 0 and 1 exclusive (got {0})")]
    RefreshFraction(f64),
}
