//! Digest algorithms and the hash chain (RFC 7616 §3.4.1–§3.4.3, RFC 2617 §3.2.2.1–§3.2.2.3).

use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

/// The hash function under an [`Algorithm`], without the `-sess` variation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashFunction {
    /// MD5 (RFC 1321): 32 hex digits. Kept for interoperability only (RFC 8760 §3).
    Md5,
    /// SHA-256 (FIPS 180-4): 64 hex digits.
    Sha256,
    /// SHA-512/256 (FIPS 180-4, SHA-512 truncated with its own IV): 64 hex digits.
    Sha512_256,
}

impl HashFunction {
    /// Number of hex digits this hash produces (the length of an HA1 or a `response`).
    pub fn hex_len(self) -> usize {
        match self {
            HashFunction::Md5 => 32,
            HashFunction::Sha256 | HashFunction::Sha512_256 => 64,
        }
    }

    /// Rank used to pick among challenges: a higher rank is stronger (RFC 8760 §2.4 lists
    /// SHA-512-256, then SHA-256, then MD5).
    pub fn strength(self) -> u8 {
        match self {
            HashFunction::Md5 => 0,
            HashFunction::Sha256 => 1,
            HashFunction::Sha512_256 => 2,
        }
    }

    /// `H(parts[0] ":" parts[1] ":" ...)` as lowercase hex (RFC 7616 §3.4: `H(data)` is the
    /// hex encoding of the hash of `data`, and the fields are joined by colons).
    pub fn hex_digest(self, parts: &[&[u8]]) -> String {
        match self {
            HashFunction::Md5 => joined_hex::<Md5>(parts),
            HashFunction::Sha256 => joined_hex::<Sha256>(parts),
            HashFunction::Sha512_256 => joined_hex::<Sha512_256>(parts),
        }
    }
}

fn joined_hex<D: Digest>(parts: &[&[u8]]) -> String {
    let mut hasher = D::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            hasher.update(b":");
        }
        hasher.update(part);
    }
    to_hex(&hasher.finalize())
}

/// Lowercase hex encoding. Hand-written: twelve lines do not justify a dependency.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes hex (either case); `None` when the length is odd or a digit is not hex.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// A digest `algorithm` token (RFC 7616 §3.3, RFC 8760 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5`, also what an absent `algorithm` parameter means (RFC 2617 §3.2.1).
    Md5,
    /// `MD5-sess`: HA1 is re-hashed with the nonce and cnonce.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Every supported algorithm, strongest hash first.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Md5,
        Algorithm::Md5Sess,
    ];

    /// Parses an `algorithm` token; tokens are case-insensitive (RFC 7616 §3.3).
    pub fn from_token(token: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.as_str().eq_ignore_ascii_case(token))
    }

    /// The token as RFC 7616 §6.1 registers it.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// The hash function underneath.
    pub fn hash(self) -> HashFunction {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => HashFunction::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => HashFunction::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => HashFunction::Sha512_256,
        }
    }

    /// Whether this is a `-sess` variant (RFC 7616 §3.4.2).
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quality of protection (RFC 7616 §3.3 `qop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authentication of the method and digest-uri.
    Auth,
    /// `auth-int`: also the hash of the message body.
    AuthInt,
}

impl Qop {
    /// Parses a qop token (case-insensitive).
    pub fn from_token(token: &str) -> Option<Qop> {
        if token.eq_ignore_ascii_case("auth") {
            Some(Qop::Auth)
        } else if token.eq_ignore_ascii_case("auth-int") {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }

    /// The token.
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `H(username ":" realm ":" password)`: the HA1 of the non-session algorithms and the base of
/// the session HA1 (RFC 7616 §3.4.2).
pub fn password_ha1(hash: HashFunction, username: &str, realm: &str, password: &str) -> String {
    hash.hex_digest(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// Everything the `response` hash depends on besides HA1.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    /// The algorithm named in the credentials.
    pub algorithm: Algorithm,
    /// The server's nonce.
    pub nonce: &'a str,
    /// The client nonce; used by `-sess` algorithms and whenever `qop` is present.
    pub cnonce: &'a str,
    /// The nonce count; used only when `qop` is present.
    pub nc: u32,
    /// The chosen qop; `None` is the RFC 2069 form `H(HA1:nonce:HA2)`.
    pub qop: Option<Qop>,
    /// The request method (`REGISTER`, `INVITE`, ...).
    pub method: &'a str,
    /// The `uri` parameter (the Request-URI as sent, RFC 3261 §22.4).
    pub uri: &'a str,
    /// The message body; hashed only for `auth-int`.
    pub body: &'a [u8],
}

/// Formats a nonce count as the 8 hex digits the `nc` parameter carries (RFC 7616 §3.4).
pub fn format_nc(nc: u32) -> String {
    format!("{nc:08x}")
}

/// Computes the `response` parameter from the non-session HA1 (`H(user:realm:password)`, as
/// [`password_ha1`] returns or a stored HA1 holds) — RFC 7616 §3.4.1–§3.4.3.
pub fn compute_response(base_ha1: &str, input: &ResponseInput<'_>) -> String {
    let hash = input.algorithm.hash();
    // RFC 7616 §3.4.2: for -sess, HA1 = H(H(user:realm:pass) ":" nonce ":" cnonce).
    let session_ha1;
    let ha1 = if input.algorithm.is_session() {
        session_ha1 = hash.hex_digest(&[
            base_ha1.as_bytes(),
            input.nonce.as_bytes(),
            input.cnonce.as_bytes(),
        ]);
        session_ha1.as_str()
    } else {
        base_ha1
    };
    // RFC 7616 §3.4.3: HA2 = H(method:uri) or, for auth-int, H(method:uri:H(body)).
    let ha2 = match input.qop {
        Some(Qop::AuthInt) => {
            let body_hash = hash.hex_digest(&[input.body]);
            hash.hex_digest(&[
                input.method.as_bytes(),
                input.uri.as_bytes(),
                body_hash.as_bytes(),
            ])
        }
        _ => hash.hex_digest(&[input.method.as_bytes(), input.uri.as_bytes()]),
    };
    match input.qop {
        // RFC 7616 §3.4.1: response = H(HA1:nonce:nc:cnonce:qop:HA2).
        Some(qop) => {
            let nc = format_nc(input.nc);
            hash.hex_digest(&[
                ha1.as_bytes(),
                input.nonce.as_bytes(),
                nc.as_bytes(),
                input.cnonce.as_bytes(),
                qop.as_str().as_bytes(),
                ha2.as_bytes(),
            ])
        }
        // RFC 2617 §3.2.2.1 (RFC 2069 compatibility): response = H(HA1:nonce:HA2).
        None => hash.hex_digest(&[ha1.as_bytes(), input.nonce.as_bytes(), ha2.as_bytes()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_tokens_are_case_insensitive_and_round_trip() {
        for algorithm in Algorithm::ALL {
            assert_eq!(Algorithm::from_token(algorithm.as_str()), Some(algorithm));
            let lower = algorithm.as_str().to_ascii_lowercase();
            assert_eq!(Algorithm::from_token(&lower), Some(algorithm));
        }
        assert_eq!(Algorithm::from_token("SHA-512"), None);
        assert_eq!(Algorithm::from_token("md5 "), None);
    }

    #[test]
    fn hex_round_trips_and_rejects_bad_digits() {
        assert_eq!(to_hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(from_hex("00AB7f"), Some(vec![0x00, 0xab, 0x7f]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn nc_is_eight_lowercase_hex_digits() {
        assert_eq!(format_nc(1), "00000001");
        assert_eq!(format_nc(0xab), "000000ab");
        assert_eq!(format_nc(u32::MAX), "ffffffff");
    }
}
