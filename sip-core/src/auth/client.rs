//! The client side: answering 401 and 407 challenges (RFC 3261 §22.2–§22.3, RFC 7616 §3.4).

use std::fmt;

use rand::RngCore;

use super::algorithm::{compute_response, password_ha1, to_hex, HashFunction, Qop, ResponseInput};
use super::challenge::{select_challenge, DigestChallenge};
use super::credentials::{parse_credentials, DigestCredentials};
use super::ParseError;

/// What the client proves knowledge of.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The plaintext password; works with every algorithm.
    Password(String),
    /// A precomputed `H(username:realm:password)` in hex, as provisioning systems hand out
    /// (usually MD5). It only answers challenges whose algorithm uses the same hash and whose
    /// realm is the one it was computed for.
    Ha1 {
        /// The hash the HA1 was computed with.
        hash: HashFunction,
        /// The HA1 in hex (either case).
        hex: String,
    },
}

impl fmt::Debug for Secret {
    // Redacted so that logging a configuration never prints a password or an HA1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Password(_) => f.write_str("Password(<redacted>)"),
            Secret::Ha1 { hash, .. } => write!(f, "Ha1({hash:?}, <redacted>)"),
        }
    }
}

impl Secret {
    /// The non-session HA1 for `hash`, or `None` when a stored HA1 uses another hash or is not
    /// well-formed hex of the right length.
    pub(crate) fn ha1(&self, hash: HashFunction, username: &str, realm: &str) -> Option<String> {
        match self {
            Secret::Password(password) => Some(password_ha1(hash, username, realm, password)),
            Secret::Ha1 { hash: stored, hex } => (*stored == hash
                && hex.len() == hash.hex_len()
                && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| hex.to_ascii_lowercase()),
        }
    }
}

/// A username and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username (RFC 3261 §22.4: the user part of the AOR is customary, but the trunk
    /// decides).
    pub username: String,
    /// The password or HA1.
    pub secret: Secret,
}

impl Credentials {
    /// Credentials with a plaintext password.
    pub fn with_password(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            secret: Secret::Password(password.into()),
        }
    }
}

/// The parts of the request that the response hash covers.
#[derive(Debug, Clone, Copy)]
pub struct DigestRequest<'a> {
    /// The method (`REGISTER`, `INVITE`, ...).
    pub method: &'a str,
    /// The Request-URI as it will be sent: it becomes the `uri` parameter (RFC 3261 §22.4).
    pub uri: &'a str,
    /// The body, hashed under `qop=auth-int`; empty when there is none.
    pub body: &'a [u8],
}

/// Why the client cannot answer a challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The response status is neither 401 nor 407.
    #[error("status {status} carries no authentication challenge (expected 401 or 407)")]
    NotAChallenge {
        /// The status received.
        status: u16,
    },
    /// No challenge in the response could be used.
    #[error("no usable challenge: {0}")]
    Challenge(#[from] ParseError),
    /// A stored HA1 does not fit the challenge: another hash, or not hex of the right length.
    #[error("the stored HA1 cannot answer a {algorithm} challenge")]
    Ha1Unusable {
        /// The algorithm challenged.
        algorithm: super::Algorithm,
    },
    /// The nonce count reached 0xffffffff; a new challenge is needed.
    #[error("nonce count exhausted for realm {realm:?}")]
    NonceCountExhausted {
        /// The realm whose nonce is used up.
        realm: String,
    },
}

/// A client nonce from the injected random source: 16 random octets in hex (RFC 7616 §3.4
/// asks for at least 64 bits of entropy).
pub fn generate_cnonce(rng: &mut dyn RngCore) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    to_hex(&bytes)
}

/// Computes the credentials answering `challenge` for `request`, with the caller's cnonce and
/// nonce count.
///
/// qop: `auth` when offered, `auth-int` when it is the only one offered (SIP proxies may
/// rewrite bodies, so integrity protection is used only when the server insists), none when
/// the challenge has no `qop` (RFC 2069 form; the cnonce is still sent for `-sess`).
pub fn answer_challenge(
    challenge: &DigestChallenge,
    credentials: &Credentials,
    request: &DigestRequest<'_>,
    cnonce: &str,
    nc: u32,
) -> Result<DigestCredentials, ClientError> {
    let algorithm = challenge.algorithm;
    let hash = algorithm.hash();
    let ha1 = credentials
        .secret
        .ha1(hash, &credentials.username, &challenge.realm)
        .ok_or(ClientError::Ha1Unusable { algorithm })?;
    let qop = if challenge.qop.contains(&Qop::Auth) {
        Some(Qop::Auth)
    } else {
        challenge.qop.first().copied()
    };
    let response = compute_response(
        &ha1,
        &ResponseInput {
            algorithm,
            nonce: &challenge.nonce,
            cnonce,
            nc,
            qop,
            method: request.method,
            uri: request.uri,
            body: request.body,
        },
    );
    // RFC 7616 §3.4.4: with userhash the username field is H(username:realm).
    let username = if challenge.userhash {
        hash.hex_digest(&[credentials.username.as_bytes(), challenge.realm.as_bytes()])
    } else {
        credentials.username.clone()
    };
    let sends_cnonce = qop.is_some() || algorithm.is_session();
    Ok(DigestCredentials {
        username,
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: request.uri.to_owned(),
        response,
        algorithm,
        cnonce: sends_cnonce.then(|| cnonce.to_owned()),
        opaque: challenge.opaque.clone(),
        qop,
        nc: qop.map(|_| nc),
        userhash: challenge.userhash,
    })
}

/// Which header pair a challenge came in (RFC 3261 §22.2 and §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    /// A 401 from a UAS or registrar: `WWW-Authenticate` answered by `Authorization`.
    Authorization,
    /// A 407 from a proxy: `Proxy-Authenticate` answered by `Proxy-Authorization`.
    ProxyAuthorization,
}

impl HeaderName {
    /// The header to answer a response with this status with; `None` unless 401 or 407.
    pub fn for_status(status: u16) -> Option<HeaderName> {
        match status {
            401 => Some(HeaderName::Authorization),
            407 => Some(HeaderName::ProxyAuthorization),
            _ => None,
        }
    }

    /// The credentials header's name.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderName::Authorization => "Authorization",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
        }
    }

    /// The challenge header this one answers.
    pub fn challenge_header(self) -> &'static str {
        match self {
            HeaderName::Authorization => "WWW-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authenticate",
        }
    }
}

/// A header to put in the request: its name and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    /// `Authorization` or `Proxy-Authorization`.
    pub name: HeaderName,
    /// The header value.
    pub value: String,
}

/// A 401 or 407 response as the client state needs it.
#[derive(Debug, Clone, Copy)]
pub struct ChallengedResponse<'a> {
    /// 401 or 407.
    pub status: u16,
    /// Every `WWW-Authenticate` (401) or `Proxy-Authenticate` (407) value of the response.
    pub challenges: &'a [&'a str],
    /// The `Authorization` (401) or `Proxy-Authorization` (407) values of the request that was
    /// challenged; empty if it carried none. This tells "our credentials were refused" apart
    /// from "a new request met a new nonce".
    pub sent: &'a [&'a str],
}

/// What to do after a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Resend the request with these headers (one per cached realm: a request challenged by a
    /// proxy and then by the UAS carries both answers, RFC 3261 §22.3).
    Retry {
        /// The headers to add, replacing any earlier ones of the same name.
        headers: Vec<AuthorizationHeader>,
    },
    /// The server refused credentials that answered its challenge: wrong username or password.
    /// Retrying would loop; the caller reports a failure.
    Rejected {
        /// The realm that refused.
        realm: String,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    name: HeaderName,
    challenge: DigestChallenge,
    /// The last nonce count used with this nonce (0: not used yet).
    nc: u32,
    /// The nonce came from a `stale=true` challenge.
    from_stale: bool,
}

/// Client authentication state for one peer (a trunk or a registrar): the nonce of each
/// realm and its nonce count, so that later requests reuse the nonce with `nc` incremented
/// (RFC 7616 §3.4), and the rules that stop retry loops.
///
/// Rules, per header name and realm:
/// - a challenge repeating the nonce already answered is a rejection;
/// - `stale=true` with a new nonce is retried, once: a stale challenge answering the only
///   request made with a nonce from an earlier stale challenge is a rejection;
/// - a non-stale challenge answering a request that carried our credentials for that realm
///   with `nc=1` (a first answer) is a rejection. With a higher `nc` the nonce had worked
///   before, so the server merely expired it without `stale`, and the new nonce is answered.
///
/// The state is bounded: at most [`ClientAuthState::MAX_REALMS`] realms, the oldest dropped.
#[derive(Debug, Clone, Default)]
pub struct ClientAuthState {
    entries: Vec<Entry>,
}

impl ClientAuthState {
    /// How many (header name, realm) nonces are cached at most.
    pub const MAX_REALMS: usize = 8;

    /// An empty state.
    pub fn new() -> Self {
        ClientAuthState::default()
    }

    /// Handles a 401 or 407: decides whether to retry and, if so, computes the headers.
    pub fn handle_challenge(
        &mut self,
        response: &ChallengedResponse<'_>,
        credentials: &Credentials,
        request: &DigestRequest<'_>,
        rng: &mut dyn RngCore,
    ) -> Result<AuthOutcome, ClientError> {
        let name = HeaderName::for_status(response.status).ok_or(ClientError::NotAChallenge {
            status: response.status,
        })?;
        let challenge = select_challenge(response.challenges.iter().copied())?;
        let sent = response
            .sent
            .iter()
            .filter_map(|value| parse_credentials(value).ok())
            .find(|sent| sent.realm == challenge.realm);
        let position = self
            .entries
            .iter()
            .position(|e| e.name == name && e.challenge.realm == challenge.realm);
        if let Some(entry) = position.map(|index| &self.entries[index]) {
            let rejected = if entry.challenge.nonce == challenge.nonce {
                // The nonce we answered, challenged again: the answer was wrong.
                true
            } else if challenge.stale {
                entry.from_stale && entry.nc <= 1
            } else {
                sent.as_ref().is_some_and(|sent| {
                    // Uses of the refused nonce: our own count when it is the cached one (it
                    // counts RFC 2069 requests too, which carry no nc), else what was sent.
                    let uses = if sent.nonce == entry.challenge.nonce {
                        entry.nc
                    } else {
                        sent.nc.unwrap_or(1)
                    };
                    uses <= 1
                })
            };
            if rejected {
                return Ok(AuthOutcome::Rejected {
                    realm: challenge.realm,
                });
            }
        } else if let Some(sent) = &sent {
            // Not cached (evicted, or sent by someone else) but refused: same first-answer rule.
            if !challenge.stale && sent.nc.unwrap_or(1) <= 1 {
                return Ok(AuthOutcome::Rejected {
                    realm: challenge.realm,
                });
            }
        }
        let entry = Entry {
            name,
            from_stale: challenge.stale,
            challenge,
            nc: 0,
        };
        match position {
            Some(index) => self.entries[index] = entry,
            None => {
                if self.entries.len() == Self::MAX_REALMS {
                    self.entries.remove(0);
                }
                self.entries.push(entry);
            }
        }
        let headers = self.authorization_headers(credentials, request, rng)?;
        Ok(AuthOutcome::Retry { headers })
    }

    /// Headers for a new request, reusing every cached nonce with its count incremented
    /// (pre-emptive authentication, RFC 7616 §3.4: the client may reuse a nonce until the
    /// server marks it stale). Empty when nothing has been challenged yet.
    pub fn authorization_headers(
        &mut self,
        credentials: &Credentials,
        request: &DigestRequest<'_>,
        rng: &mut dyn RngCore,
    ) -> Result<Vec<AuthorizationHeader>, ClientError> {
        let mut headers = Vec::with_capacity(self.entries.len());
        for entry in &mut self.entries {
            let nc = entry
                .nc
                .checked_add(1)
                .ok_or_else(|| ClientError::NonceCountExhausted {
                    realm: entry.challenge.realm.clone(),
                })?;
            let cnonce = generate_cnonce(rng);
            let answer = answer_challenge(&entry.challenge, credentials, request, &cnonce, nc)?;
            entry.nc = nc;
            headers.push(AuthorizationHeader {
                name: entry.name,
                value: answer.to_header_value(),
            });
        }
        Ok(headers)
    }

    /// The nonce count last used for `realm` under `name`, if that realm is cached.
    pub fn nonce_count(&self, name: HeaderName, realm: &str) -> Option<u32> {
        self.entries
            .iter()
            .find(|e| e.name == name && e.challenge.realm == realm)
            .map(|e| e.nc)
    }

    /// Forgets every cached nonce (after a password change, for instance).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
