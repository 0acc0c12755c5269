//! `Authorization` / `Proxy-Authorization` values: parse and write (RFC 7616 §3.4,
//! RFC 3261 §22.2 and §22.3).

use super::algorithm::{format_nc, Algorithm, Qop};
use super::challenge::check_duplicates;
use super::params::{parse_items, push_quoted};
use super::ParseError;

/// Parsed Digest credentials: the content of an `Authorization` or `Proxy-Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    /// The username, or `H(username:realm)` when [`userhash`](Self::userhash) is set.
    pub username: String,
    /// The realm being answered.
    pub realm: String,
    /// The nonce being answered.
    pub nonce: String,
    /// The digest-uri: the Request-URI as the client sent it (RFC 3261 §22.4).
    pub uri: String,
    /// The `response` hash, in hex.
    pub response: String,
    /// The algorithm; an absent parameter means MD5.
    pub algorithm: Algorithm,
    /// The client nonce; present with `qop` (and with `-sess` algorithms).
    pub cnonce: Option<String>,
    /// The server's opaque, echoed.
    pub opaque: Option<String>,
    /// The chosen qop; `None` is the RFC 2069 form.
    pub qop: Option<Qop>,
    /// The nonce count; present with `qop`.
    pub nc: Option<u32>,
    /// `userhash=true`: the username field is hashed (RFC 7616 §3.4.4).
    pub userhash: bool,
}

const KNOWN: [&str; 11] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "cnonce",
    "opaque",
    "qop",
    "nc",
    "userhash",
];

/// Parses an `Authorization` / `Proxy-Authorization` value holding one set of Digest
/// credentials. Never panics, whatever the input.
pub fn parse_credentials(value: &str) -> Result<DigestCredentials, ParseError> {
    let items = parse_items(value)?;
    let item = match items.as_slice() {
        [] => return Err(ParseError::Empty),
        [item] => item,
        _ => return Err(ParseError::SeveralChallenges { count: items.len() }),
    };
    if !item.scheme.eq_ignore_ascii_case("Digest") {
        return Err(ParseError::UnsupportedScheme {
            scheme: item.scheme.clone(),
        });
    }
    check_duplicates(&item.params, &KNOWN)?;
    let find = |name: &str| {
        item.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_str())
    };
    let required = |name: &'static str| {
        find(name)
            .map(str::to_owned)
            .ok_or(ParseError::MissingParameter { name })
    };
    let algorithm = match find("algorithm") {
        None => Algorithm::Md5,
        Some(token) => {
            Algorithm::from_token(token.trim()).ok_or_else(|| ParseError::UnsupportedAlgorithm {
                algorithm: token.to_owned(),
            })?
        }
    };
    let qop = match find("qop") {
        None => None,
        Some(token) => {
            Some(
                Qop::from_token(token.trim()).ok_or_else(|| ParseError::UnsupportedQop {
                    qop: token.to_owned(),
                })?,
            )
        }
    };
    let nc = match find("nc") {
        None => None,
        // RFC 7616 §3.4: nc is exactly 8 hex digits.
        Some(text) if text.len() == 8 && text.bytes().all(|b| b.is_ascii_hexdigit()) => Some(
            u32::from_str_radix(text, 16).map_err(|_| ParseError::InvalidParameter {
                name: "nc",
                reason: "not a hex number",
            })?,
        ),
        Some(_) => {
            return Err(ParseError::InvalidParameter {
                name: "nc",
                reason: "must be 8 hex digits",
            })
        }
    };
    let credentials = DigestCredentials {
        username: required("username")?,
        realm: required("realm")?,
        nonce: required("nonce")?,
        uri: required("uri")?,
        response: required("response")?,
        algorithm,
        cnonce: find("cnonce").map(str::to_owned),
        opaque: find("opaque").map(str::to_owned),
        qop,
        nc,
        userhash: find("userhash").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
    };
    if credentials.qop.is_some() {
        // RFC 7616 §3.4: cnonce and nc MUST be sent with qop.
        if credentials.cnonce.is_none() {
            return Err(ParseError::MissingParameter { name: "cnonce" });
        }
        if credentials.nc.is_none() {
            return Err(ParseError::MissingParameter { name: "nc" });
        }
    }
    Ok(credentials)
}

impl DigestCredentials {
    /// Writes the credentials as a header value, in the parameter order of RFC 7616 §3.9.1:
    /// quoted `username`, `realm`, `nonce`, `uri`, `response`, `cnonce`, `opaque`; tokens
    /// `algorithm`, `qop`, `nc` (RFC 3261 §25.1 `dig-resp` writes `qop` and `nc` unquoted).
    pub fn to_header_value(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("Digest username=");
        push_quoted(&mut out, &self.username);
        out.push_str(", realm=");
        push_quoted(&mut out, &self.realm);
        out.push_str(", nonce=");
        push_quoted(&mut out, &self.nonce);
        out.push_str(", uri=");
        push_quoted(&mut out, &self.uri);
        out.push_str(", response=");
        push_quoted(&mut out, &self.response);
        out.push_str(", algorithm=");
        out.push_str(self.algorithm.as_str());
        if let Some(cnonce) = &self.cnonce {
            out.push_str(", cnonce=");
            push_quoted(&mut out, cnonce);
        }
        if let Some(opaque) = &self.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, opaque);
        }
        if let Some(qop) = self.qop {
            out.push_str(", qop=");
            out.push_str(qop.as_str());
        }
        if let Some(nc) = self.nc {
            out.push_str(", nc=");
            out.push_str(&format_nc(nc));
        }
        if self.userhash {
            out.push_str(", userhash=true");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2617_authorization_parses() {
        // RFC 2617 §3.5 (the same value appears in RFC 3261 §22.4's example form).
        let credentials = parse_credentials(
            "Digest username=\"Mufasa\",\r\n realm=\"testrealm@host.com\",\r\n \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n uri=\"/dir/index.html\",\r\n \
             qop=auth,\r\n nc=00000001,\r\n cnonce=\"0a4f113b\",\r\n \
             response=\"6629fae49393a05397450978507c4ef1\",\r\n \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(credentials.username, "Mufasa");
        assert_eq!(credentials.qop, Some(Qop::Auth));
        assert_eq!(credentials.nc, Some(1));
        assert_eq!(credentials.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(credentials.algorithm, Algorithm::Md5);
    }

    /// Authorization values from `shared/corpus/pcaps` (tshark `-e sip.Authorization
    /// -e sip.Proxy-Authorization`): quoted nc, odd parameter order, double spaces.
    #[test]
    fn real_world_credentials_parse() {
        let quoted_nc = parse_credentials(
            // wireshark.pcap
            r#"Digest username="voi18062",realm="sip.cybercity.dk",uri="sip:192.168.1.2",nonce="1701b4767d49c41117c7b73a255a353",opaque="1701a1351f70795",nc="00000001",response="8258d3744c08b75f7af46cd0f1762510""#,
        )
        .unwrap();
        assert_eq!(quoted_nc.nc, Some(1));
        assert_eq!(quoted_nc.qop, None);
        let asterisk = parse_credentials(
            // sip-488-codec-reject.pcapng
            r#"Digest realm="asterisk", nonce="1566926808/1dd69977dc8e079d5047bee62c887e9f", algorithm=md5, opaque="3ba09d470ec4e448", username="8801",  uri="sip:8802@192.168.8.13", response="369c6e7b765434b07cdb14d9c962a96f", cnonce="JsV1V0p7dvXCgmiJ", nc=00000001, qop=auth"#,
        )
        .unwrap();
        assert_eq!(asterisk.username, "8801");
        assert_eq!(asterisk.uri, "sip:8802@192.168.8.13");
        assert_eq!(asterisk.qop, Some(Qop::Auth));
    }

    #[test]
    fn qop_without_nc_or_cnonce_and_bad_nc_are_refused() {
        let base = r#"Digest username="u", realm="r", nonce="n", uri="sip:a", response="00""#;
        assert_eq!(
            parse_credentials(&format!("{base}, qop=auth, nc=00000001")),
            Err(ParseError::MissingParameter { name: "cnonce" })
        );
        assert_eq!(
            parse_credentials(&format!("{base}, qop=auth, cnonce=\"c\"")),
            Err(ParseError::MissingParameter { name: "nc" })
        );
        assert!(matches!(
            parse_credentials(&format!("{base}, qop=auth, cnonce=\"c\", nc=1")),
            Err(ParseError::InvalidParameter { name: "nc", .. })
        ));
        assert!(matches!(
            parse_credentials(&format!("{base}, qop=auth, cnonce=\"c\", nc=0000000g")),
            Err(ParseError::InvalidParameter { name: "nc", .. })
        ));
    }

    #[test]
    fn written_credentials_parse_back_to_themselves() {
        let credentials = DigestCredentials {
            username: "al\"ice".to_owned(),
            realm: "r".to_owned(),
            nonce: "n".to_owned(),
            uri: "sip:bob@example.com;transport=tcp".to_owned(),
            response: "abcd".to_owned(),
            algorithm: Algorithm::Sha256Sess,
            cnonce: Some("c".to_owned()),
            opaque: Some("o".to_owned()),
            qop: Some(Qop::AuthInt),
            nc: Some(0x1a),
            userhash: true,
        };
        let value = credentials.to_header_value();
        assert!(value.contains("nc=0000001a"), "{value}");
        assert_eq!(parse_credentials(&value), Ok(credentials));
    }
}
