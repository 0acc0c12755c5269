//! Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).
//!
//! # What it does
//! - Parses `WWW-Authenticate` / `Proxy-Authenticate` values ([`parse_challenge`],
//!   [`parse_challenges`]) and picks the strongest supported challenge among all of a
//!   response's values ([`select_challenge`]: SHA-512-256 > SHA-256 > MD5, the server's order
//!   among equals).
//! - Client: computes `Authorization` / `Proxy-Authorization` values ([`answer_challenge`])
//!   for MD5, SHA-256 and SHA-512-256 and their `-sess` variants, with `qop=auth`,
//!   `qop=auth-int` or no qop (RFC 2069), and `userhash`. [`ClientAuthState`] keeps each
//!   realm's nonce and nonce count, retries a `stale=true` challenge once with the same
//!   password, and reports a refusal of our credentials as [`AuthOutcome::Rejected`] instead
//!   of looping.
//! - Server: [`DigestServer`] issues nonces bound to itself (a timestamp and an HMAC-SHA256
//!   of it and the realm under a secret), writes challenges, and verifies credentials against
//!   a stored password or HA1 with a constant-time comparison, answering expired nonces with
//!   [`Verification::Stale`] and rejecting nonce-count replays with bounded state.
//!
//! Header values go in as `&str` and come out as `String`: the module knows nothing of SIP
//! messages, so it can be used from any message type and fuzzed on its own.
//!
//! # Drive loop
//! Sans-IO like the rest of sip-core. The client calls
//! [`ClientAuthState::handle_challenge`] on a 401/407 and adds the returned headers to the
//! retried request, and [`ClientAuthState::authorization_headers`] for later requests to the
//! same peer. The server calls [`DigestServer::verify`] on each request with the time as a
//! [`Duration`](std::time::Duration) since an epoch, and [`DigestServer::challenges`] to
//! answer. Time is always an argument and randomness (the cnonce) comes from an injected
//! [`rand::RngCore`], so every result is reproducible in tests.
//!
//! # What it deliberately does not do
//! - No `Authentication-Info` / `rspauth` (mutual authentication): SIP trunks do not send it.
//! - No `username*` (RFC 7616 §3.4.4 extended notation) and no server-side `userhash`
//!   lookup; the client does send hashed usernames when asked.
//! - No `auth-conf` or other schemes (Basic is forbidden by RFC 3261 §22.1); they are parsed
//!   only to be skipped.
//! - The server compares the `uri` parameter with the Request-URI as strings, not by RFC 3261
//!   §19.1.4 URI equivalence: a client copies the Request-URI it sends.
//! - No clock reads, no sockets, no global state.
//!
//! # Errors and panics
//! Bad input is an error, never a panic: [`ParseError`] for header values (with the byte
//! position of a syntax error), [`ClientError`] when a challenge cannot be answered, and
//! [`RejectReason`] inside a [`Verification`] for refused credentials (refusal is an outcome
//! the registrar acts on, not an error). A panic is a bug. The parsers never panic on any
//! input; a test feeds them thousands of random byte strings.

mod algorithm;
mod challenge;
mod client;
mod credentials;
mod params;
mod server;

#[cfg(test)]
mod tests;

pub use algorithm::{
    compute_response, format_nc, password_ha1, Algorithm, HashFunction, Qop, ResponseInput,
};
pub use challenge::{parse_challenge, parse_challenges, select_challenge, DigestChallenge};
pub use client::{
    answer_challenge, generate_cnonce, AuthOutcome, AuthorizationHeader, ChallengedResponse,
    ClientAuthState, ClientError, Credentials, DigestRequest, HeaderName, Secret,
};
pub use credentials::{parse_credentials, DigestCredentials};
pub use server::{DigestServer, RejectReason, ServerConfig, Verification};

/// Why a challenge or credentials header value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The value breaks the `challenge` / `credentials` syntax (RFC 7235 §2.1,
    /// RFC 3261 §25.1).
    #[error("malformed at byte {position}: {reason}")]
    Malformed {
        /// Byte offset in the header value.
        position: usize,
        /// What was expected.
        reason: &'static str,
    },
    /// The value holds no challenge or credentials at all.
    #[error("empty header value")]
    Empty,
    /// The scheme is not Digest.
    #[error("unsupported auth scheme {scheme:?}")]
    UnsupportedScheme {
        /// The scheme as received.
        scheme: String,
    },
    /// The `algorithm` is not one of MD5, SHA-256, SHA-512-256 and their `-sess` forms.
    #[error("unsupported algorithm {algorithm:?}")]
    UnsupportedAlgorithm {
        /// The token as received.
        algorithm: String,
    },
    /// No offered `qop` is `auth` or `auth-int`.
    #[error("unsupported qop {qop:?}")]
    UnsupportedQop {
        /// The value as received.
        qop: String,
    },
    /// A required parameter is absent.
    #[error("missing parameter {name}")]
    MissingParameter {
        /// The parameter name.
        name: &'static str,
    },
    /// A parameter appears twice (RFC 7235 §2.1: each name at most once).
    #[error("duplicate parameter {name}")]
    DuplicateParameter {
        /// The parameter name, lowercased.
        name: String,
    },
    /// A parameter's value is not valid.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter name.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The value holds several challenges or credentials where one was expected.
    #[error("{count} items in a value that takes one")]
    SeveralChallenges {
        /// How many there were.
        count: usize,
    },
    /// None of the challenges offered is usable.
    #[error("no supported challenge ({} refused)", refused.len())]
    NoSupportedChallenge {
        /// Why each challenge was refused, in order.
        refused: Vec<ParseError>,
    },
}
