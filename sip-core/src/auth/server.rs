//! The server side (registrar or UAS): nonces bound to the server, challenges, and
//! verification of credentials (RFC 7616 §3.3 and §5.4–§5.5, RFC 3261 §22.4).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::algorithm::{compute_response, from_hex, to_hex, Algorithm, Qop, ResponseInput};
use super::challenge::DigestChallenge;
use super::client::{DigestRequest, Secret};
use super::credentials::parse_credentials;
use super::ParseError;

/// Length of the HMAC tag kept in a nonce: 128 bits, enough that forging one by guessing is
/// hopeless, and half the nonce length of a full SHA-256 tag.
const TAG_LEN: usize = 16;
/// A nonce: 8 octets of timestamp, 8 of serial number and the tag, in hex.
const NONCE_HEX_LEN: usize = 2 * (8 + 8 + TAG_LEN);

/// Server configuration.
#[derive(Clone)]
pub struct ServerConfig {
    /// The realm challenged and required in credentials.
    pub realm: String,
    /// The HMAC-SHA256 key binding nonces to this server; keep it secret and random.
    pub secret: Vec<u8>,
    /// How long a nonce stays fresh; an older one gets [`Verification::Stale`].
    pub nonce_lifetime: Duration,
    /// The algorithms offered, most preferred first (RFC 8760 §2.4: one challenge each).
    pub algorithms: Vec<Algorithm>,
    /// The qop values offered.
    pub qop: Vec<Qop>,
    /// An `opaque` to send and require back, if any.
    pub opaque: Option<String>,
    /// Accept credentials without `qop` (RFC 2069 clients). They carry no nonce count, so a
    /// captured request can be replayed while its nonce is fresh: off unless needed.
    pub accept_rfc2069: bool,
    /// How many nonces' counts are tracked for replay detection; beyond that the oldest are
    /// forgotten and their nonces answered with [`Verification::Stale`].
    pub max_tracked_nonces: usize,
}

impl std::fmt::Debug for ServerConfig {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("realm", &self.realm)
            .field("secret", &"<redacted>")
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("algorithms", &self.algorithms)
            .field("qop", &self.qop)
            .field("opaque", &self.opaque)
            .field("accept_rfc2069", &self.accept_rfc2069)
            .field("max_tracked_nonces", &self.max_tracked_nonces)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults: nonces fresh for 300 s, SHA-256 then MD5 offered (RFC 8760 §2.4 keeps MD5
    /// for older clients), `qop="auth"`, no opaque, RFC 2069 refused, 4096 nonces tracked.
    pub fn new(realm: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        ServerConfig {
            realm: realm.into(),
            secret: secret.into(),
            nonce_lifetime: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            qop: vec![Qop::Auth],
            opaque: None,
            accept_rfc2069: false,
            max_tracked_nonces: 4096,
        }
    }
}

/// The result of checking credentials. Only `Authenticated` lets the request through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The credentials are valid.
    Authenticated {
        /// The authenticated username.
        username: String,
    },
    /// The digest was right but the nonce is too old (or its count can no longer be checked):
    /// challenge again with `stale=true` so the client retries without asking its user.
    Stale,
    /// The credentials are refused: challenge again (or answer 403).
    Rejected(RejectReason),
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// The header value does not parse as Digest credentials.
    #[error("malformed credentials: {0}")]
    Malformed(ParseError),
    /// The credentials answer another realm.
    #[error("realm {realm:?} is not ours")]
    RealmMismatch {
        /// The realm in the credentials.
        realm: String,
    },
    /// The `uri` parameter is not the Request-URI (RFC 2617 §3.2.2.5).
    #[error("uri {uri:?} does not match the Request-URI")]
    UriMismatch {
        /// The uri in the credentials.
        uri: String,
    },
    /// The algorithm was not offered.
    #[error("algorithm {0} not offered")]
    AlgorithmNotOffered(Algorithm),
    /// The qop was not offered, or was omitted while RFC 2069 credentials are refused.
    #[error("qop {0:?} not offered")]
    QopNotOffered(Option<Qop>),
    /// The credentials hash the username (`userhash`), which this server does not resolve.
    #[error("userhash credentials are not supported")]
    UserhashUnsupported,
    /// The nonce was not issued by this server for this realm (forged, tampered, or another
    /// server's).
    #[error("nonce not issued by this server")]
    InvalidNonce,
    /// The opaque does not match the one sent.
    #[error("opaque does not match")]
    OpaqueMismatch,
    /// The username is unknown.
    #[error("unknown user")]
    UnknownUser,
    /// The stored secret cannot compute this algorithm (an MD5 HA1 for a SHA-256 answer).
    #[error("no stored secret usable with {0}")]
    SecretUnusable(Algorithm),
    /// The response hash is wrong: wrong password, or a modified request.
    #[error("wrong response")]
    WrongResponse,
    /// The nonce count did not increase: a replay (RFC 7616 §3.4).
    #[error("nonce count {nc} not above {last}")]
    NonceCountReplay {
        /// The count received.
        nc: u32,
        /// The highest count accepted before.
        last: u32,
    },
}

/// A digest server: issues challenges and verifies credentials.
///
/// Nonces are `hex(timestamp) || hex(serial) || hex(HMAC-SHA256(secret, timestamp || serial ||
/// realm)[..16])`, so the server needs no table to know a nonce is its own and when it was
/// issued. The serial makes every nonce unique, even two issued in the same second to two
/// clients (each then has its own nonce count, RFC 7616 §3.4); the only state
/// is the last nonce count of each nonce in use, bounded by
/// [`ServerConfig::max_tracked_nonces`].
#[derive(Debug)]
pub struct DigestServer {
    config: ServerConfig,
    /// Highest accepted nc per nonce.
    counts: HashMap<String, u32>,
    /// Nonces in `counts`, oldest first use at the front, with their timestamps.
    order: VecDeque<(String, u64)>,
    /// Every nonce dropped from `counts` to respect the bound has a timestamp at or below this.
    forgotten_up_to: Option<u64>,
    /// Serial number of the next nonce.
    serial: std::sync::atomic::AtomicU64,
}

fn timestamp(now: Duration) -> u64 {
    now.as_secs()
}

impl DigestServer {
    /// A server with this configuration.
    pub fn new(config: ServerConfig) -> Self {
        DigestServer {
            config,
            counts: HashMap::new(),
            order: VecDeque::new(),
            forgotten_up_to: None,
            serial: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    fn tag(&self, timestamp: u64, serial: u64) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.config.secret)
            .expect("HMAC takes keys of any length");
        mac.update(&timestamp.to_be_bytes());
        mac.update(&serial.to_be_bytes());
        mac.update(self.config.realm.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// A fresh nonce for time `now` (a duration since the epoch the caller uses throughout).
    pub fn nonce(&self, now: Duration) -> String {
        let timestamp = timestamp(now);
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut nonce = to_hex(&timestamp.to_be_bytes());
        nonce.push_str(&to_hex(&serial.to_be_bytes()));
        nonce.push_str(&to_hex(&self.tag(timestamp, serial)[..TAG_LEN]));
        nonce
    }

    /// The timestamp of a nonce this server issued, or `None` if it did not issue it.
    fn nonce_timestamp(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != NONCE_HEX_LEN {
            return None;
        }
        let bytes = from_hex(nonce)?;
        let (time, rest) = bytes.split_at(8);
        let (serial, tag) = rest.split_at(8);
        let timestamp = u64::from_be_bytes(time.try_into().ok()?);
        let serial = u64::from_be_bytes(serial.try_into().ok()?);
        // Constant time, so that the tag cannot be found byte by byte (RFC 7616 §5.4).
        let valid: bool = self.tag(timestamp, serial)[..TAG_LEN].ct_eq(tag).into();
        valid.then_some(timestamp)
    }

    /// The challenge header values for a 401 or 407: one per configured algorithm, most
    /// preferred first (RFC 8760 §2.4), all with the same fresh nonce. Pass `stale = true`
    /// after [`Verification::Stale`].
    pub fn challenges(&self, now: Duration, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now);
        self.config
            .algorithms
            .iter()
            .map(|&algorithm| {
                let mut challenge =
                    DigestChallenge::new(self.config.realm.clone(), nonce.clone(), algorithm);
                challenge.qop = self.config.qop.clone();
                challenge.opaque = self.config.opaque.clone();
                challenge.stale = stale;
                challenge.to_header_value()
            })
            .collect()
    }

    /// Verifies an `Authorization` / `Proxy-Authorization` value for `request` at time `now`.
    ///
    /// `lookup` maps the username to its stored secret (a password, or an HA1 computed for
    /// this realm). Checks, in order: syntax, realm, algorithm, uri, nonce origin, opaque,
    /// qop, user, response (constant time), nonce age, nonce count.
    pub fn verify<F>(
        &mut self,
        now: Duration,
        request: &DigestRequest<'_>,
        authorization: &str,
        lookup: F,
    ) -> Verification
    where
        F: FnOnce(&str) -> Option<Secret>,
    {
        match self.check(now, request, authorization, lookup) {
            Ok(verification) => verification,
            Err(reason) => Verification::Rejected(reason),
        }
    }

    fn check<F>(
        &mut self,
        now: Duration,
        request: &DigestRequest<'_>,
        authorization: &str,
        lookup: F,
    ) -> Result<Verification, RejectReason>
    where
        F: FnOnce(&str) -> Option<Secret>,
    {
        let credentials = parse_credentials(authorization).map_err(RejectReason::Malformed)?;
        if credentials.realm != self.config.realm {
            return Err(RejectReason::RealmMismatch {
                realm: credentials.realm,
            });
        }
        let algorithm = credentials.algorithm;
        if !self.config.algorithms.contains(&algorithm) {
            return Err(RejectReason::AlgorithmNotOffered(algorithm));
        }
        // RFC 2617 §3.2.2.5: the uri must name the resource requested. Compared as strings:
        // the client copies the Request-URI it sends.
        if credentials.uri != request.uri {
            return Err(RejectReason::UriMismatch {
                uri: credentials.uri,
            });
        }
        let issued = self
            .nonce_timestamp(&credentials.nonce)
            .ok_or(RejectReason::InvalidNonce)?;
        if credentials.opaque != self.config.opaque {
            return Err(RejectReason::OpaqueMismatch);
        }
        match credentials.qop {
            Some(qop) if self.config.qop.contains(&qop) => {}
            None if self.config.accept_rfc2069 => {}
            other => return Err(RejectReason::QopNotOffered(other)),
        }
        if credentials.userhash {
            return Err(RejectReason::UserhashUnsupported);
        }
        let secret = lookup(&credentials.username).ok_or(RejectReason::UnknownUser)?;
        let ha1 = secret
            .ha1(algorithm.hash(), &credentials.username, &self.config.realm)
            .ok_or(RejectReason::SecretUnusable(algorithm))?;
        let cnonce = credentials.cnonce.as_deref().unwrap_or("");
        let nc = credentials.nc.unwrap_or(0);
        let expected = compute_response(
            &ha1,
            &ResponseInput {
                algorithm,
                nonce: &credentials.nonce,
                cnonce,
                nc,
                qop: credentials.qop,
                method: request.method,
                uri: request.uri,
                body: request.body,
            },
        );
        // Hex digits may arrive in upper case; the comparison itself is constant time.
        let received = credentials.response.to_ascii_lowercase();
        let matches: bool = expected.as_bytes().ct_eq(received.as_bytes()).into();
        if !matches {
            return Err(RejectReason::WrongResponse);
        }
        let now_secs = timestamp(now);
        // RFC 7616 §3.3 stale: the digest was valid, only the nonce is old.
        if now_secs.saturating_sub(issued) > self.config.nonce_lifetime.as_secs() {
            return Ok(Verification::Stale);
        }
        if credentials.qop.is_some() {
            self.forget_expired(now_secs);
            match self.counts.get_mut(&credentials.nonce) {
                // RFC 7616 §3.4: the first request with a nonce has nc=00000001.
                _ if nc == 0 => return Err(RejectReason::NonceCountReplay { nc, last: 0 }),
                Some(last) if nc <= *last => {
                    return Err(RejectReason::NonceCountReplay { nc, last: *last });
                }
                Some(last) => *last = nc,
                None => {
                    // Dropped for the bound: its count is unknown, so a replay cannot be ruled
                    // out. A fresh nonce costs the client one round trip.
                    if self.forgotten_up_to.is_some_and(|limit| issued <= limit) {
                        return Ok(Verification::Stale);
                    }
                    self.track(credentials.nonce.clone(), issued, nc);
                }
            }
        }
        Ok(Verification::Authenticated {
            username: credentials.username,
        })
    }

    fn forget_expired(&mut self, now_secs: u64) {
        let lifetime = self.config.nonce_lifetime.as_secs();
        // Expired nonces are answered Stale before their count matters, so they can go
        // without raising `forgotten_up_to`.
        while let Some((nonce, issued)) = self.order.front() {
            if now_secs.saturating_sub(*issued) <= lifetime {
                break;
            }
            self.counts.remove(nonce);
            self.order.pop_front();
        }
    }

    fn track(&mut self, nonce: String, issued: u64, nc: u32) {
        while self.order.len() >= self.config.max_tracked_nonces.max(1) {
            let Some((old, old_issued)) = self.order.pop_front() else {
                break;
            };
            self.counts.remove(&old);
            self.forgotten_up_to = Some(
                self.forgotten_up_to
                    .map_or(old_issued, |t| t.max(old_issued)),
            );
        }
        self.counts.insert(nonce.clone(), nc);
        self.order.push_back((nonce, issued));
    }

    /// How many nonces' counts are currently tracked (bounded by the configuration).
    pub fn tracked_nonces(&self) -> usize {
        self.counts.len()
    }
}
