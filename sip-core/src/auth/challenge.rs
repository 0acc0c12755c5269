//! `WWW-Authenticate` / `Proxy-Authenticate` values: parse, pick the strongest, write
//! (RFC 7616 §3.3, RFC 8760 §2.3–§2.4, RFC 3261 §22.1).

use super::algorithm::{Algorithm, Qop};
use super::params::{parse_items, push_quoted, Item, Param};
use super::ParseError;

/// A parsed Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    /// The protection space (`realm`), required.
    pub realm: String,
    /// The server nonce, required.
    pub nonce: String,
    /// Opaque data the client returns unchanged.
    pub opaque: Option<String>,
    /// The algorithm; an absent parameter means MD5 (RFC 2617 §3.2.1).
    pub algorithm: Algorithm,
    /// The qop values offered that this module supports, in the server's order. Empty means the
    /// challenge carried no `qop` (the RFC 2069 form).
    pub qop: Vec<Qop>,
    /// `stale=true`: the previous credentials were right but the nonce had expired (RFC 7616
    /// §3.3), so the client retries with the new nonce and the same password.
    pub stale: bool,
    /// The `domain` URIs, split on spaces.
    pub domain: Vec<String>,
    /// `userhash=true`: the client sends `H(username:realm)` instead of the username
    /// (RFC 7616 §3.4.4).
    pub userhash: bool,
    /// `charset=UTF-8` was present (RFC 7616 §3.3).
    pub charset_utf8: bool,
    /// Parameters this module does not interpret, as `(name, value)` in the order received.
    pub other: Vec<(String, String)>,
}

/// Names whose duplicates make a challenge ambiguous (RFC 7235 §2.1: each parameter name
/// occurs once per challenge).
const KNOWN: [&str; 8] = [
    "realm",
    "nonce",
    "opaque",
    "algorithm",
    "qop",
    "stale",
    "domain",
    "userhash",
];

pub(crate) fn check_duplicates(params: &[Param], known: &[&str]) -> Result<(), ParseError> {
    for (index, param) in params.iter().enumerate() {
        let is_known = known.iter().any(|k| k.eq_ignore_ascii_case(&param.name));
        if is_known
            && params[..index]
                .iter()
                .any(|earlier| earlier.name.eq_ignore_ascii_case(&param.name))
        {
            return Err(ParseError::DuplicateParameter {
                name: param.name.to_ascii_lowercase(),
            });
        }
    }
    Ok(())
}

impl DigestChallenge {
    /// A challenge with the given realm, nonce and algorithm, `qop="auth"`, and nothing else.
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>, algorithm: Algorithm) -> Self {
        DigestChallenge {
            realm: realm.into(),
            nonce: nonce.into(),
            opaque: None,
            algorithm,
            qop: vec![Qop::Auth],
            stale: false,
            domain: Vec::new(),
            userhash: false,
            charset_utf8: false,
            other: Vec::new(),
        }
    }

    fn from_item(item: &Item) -> Result<Self, ParseError> {
        if !item.scheme.eq_ignore_ascii_case("Digest") {
            return Err(ParseError::UnsupportedScheme {
                scheme: item.scheme.clone(),
            });
        }
        check_duplicates(&item.params, &KNOWN)?;
        let mut realm = None;
        let mut nonce = None;
        let mut challenge = DigestChallenge::new("", "", Algorithm::Md5);
        challenge.qop.clear();
        for param in &item.params {
            let value = param.value.as_str();
            match param.name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value.to_owned()),
                "nonce" => nonce = Some(value.to_owned()),
                "opaque" => challenge.opaque = Some(value.to_owned()),
                "algorithm" => {
                    challenge.algorithm = Algorithm::from_token(value.trim()).ok_or_else(|| {
                        ParseError::UnsupportedAlgorithm {
                            algorithm: value.to_owned(),
                        }
                    })?;
                }
                "qop" => {
                    // qop-options is a quoted, comma-separated list (RFC 7616 §3.3); unknown
                    // values are ignored, as the RFC asks.
                    challenge.qop = value
                        .split(',')
                        .filter_map(|token| Qop::from_token(token.trim()))
                        .collect();
                    if challenge.qop.is_empty() {
                        return Err(ParseError::UnsupportedQop {
                            qop: value.to_owned(),
                        });
                    }
                }
                "stale" => challenge.stale = value.trim().eq_ignore_ascii_case("true"),
                "domain" => {
                    challenge.domain = value.split_ascii_whitespace().map(str::to_owned).collect()
                }
                "userhash" => challenge.userhash = value.trim().eq_ignore_ascii_case("true"),
                "charset" => challenge.charset_utf8 = value.trim().eq_ignore_ascii_case("UTF-8"),
                _ => challenge
                    .other
                    .push((param.name.clone(), param.value.clone())),
            }
        }
        challenge.realm = realm.ok_or(ParseError::MissingParameter { name: "realm" })?;
        challenge.nonce = nonce.ok_or(ParseError::MissingParameter { name: "nonce" })?;
        Ok(challenge)
    }

    /// Writes the challenge as a header value (RFC 7616 §3.3 syntax: `realm`, `nonce`, `opaque`,
    /// `domain`, `qop` quoted; `algorithm`, `stale`, `charset`, `userhash` as tokens).
    pub fn to_header_value(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("Digest realm=");
        push_quoted(&mut out, &self.realm);
        if !self.domain.is_empty() {
            out.push_str(", domain=");
            push_quoted(&mut out, &self.domain.join(" "));
        }
        out.push_str(", nonce=");
        push_quoted(&mut out, &self.nonce);
        if let Some(opaque) = &self.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, opaque);
        }
        if self.stale {
            out.push_str(", stale=true");
        }
        out.push_str(", algorithm=");
        out.push_str(self.algorithm.as_str());
        if !self.qop.is_empty() {
            let list: Vec<&str> = self.qop.iter().map(|q| q.as_str()).collect();
            out.push_str(", qop=");
            push_quoted(&mut out, &list.join(","));
        }
        if self.charset_utf8 {
            out.push_str(", charset=UTF-8");
        }
        if self.userhash {
            out.push_str(", userhash=true");
        }
        out
    }
}

/// Parses a header value holding exactly one challenge, which must be a supported Digest one.
///
/// Never panics, whatever the input. A value with several challenges yields
/// [`ParseError::SeveralChallenges`]: use [`parse_challenges`] or [`select_challenge`] for those.
pub fn parse_challenge(value: &str) -> Result<DigestChallenge, ParseError> {
    let items = parse_items(value)?;
    match items.as_slice() {
        [] => Err(ParseError::Empty),
        [item] => DigestChallenge::from_item(item),
        _ => Err(ParseError::SeveralChallenges { count: items.len() }),
    }
}

/// Parses a header value holding any number of challenges (RFC 7235 §4.1 allows a list).
///
/// The outer error is a syntax error of the whole value; each inner result says whether that
/// challenge is a usable Digest challenge (a `Basic` one yields
/// [`ParseError::UnsupportedScheme`], for instance).
pub fn parse_challenges(
    value: &str,
) -> Result<Vec<Result<DigestChallenge, ParseError>>, ParseError> {
    Ok(parse_items(value)?
        .iter()
        .map(DigestChallenge::from_item)
        .collect())
}

/// Picks the strongest supported challenge among all the challenge header values of one
/// response (a message may carry several headers, each with several challenges).
///
/// Strength is the hash (SHA-512-256 > SHA-256 > MD5); among equal hashes the first one wins,
/// which honours the server's order of preference (RFC 8760 §2.4: the UAS lists challenges in
/// order of preference). Values that do not parse, other schemes and unsupported algorithms
/// are skipped; if nothing is usable the error lists why each challenge was refused.
pub fn select_challenge<'a, I>(values: I) -> Result<DigestChallenge, ParseError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<DigestChallenge> = None;
    let mut refused = Vec::new();
    for value in values {
        let parsed = match parse_challenges(value) {
            Ok(parsed) => parsed,
            Err(error) => {
                refused.push(error);
                continue;
            }
        };
        for candidate in parsed {
            match candidate {
                Ok(challenge) => {
                    let stronger = match &best {
                        None => true,
                        Some(current) => {
                            challenge.algorithm.hash().strength()
                                > current.algorithm.hash().strength()
                        }
                    };
                    if stronger {
                        best = Some(challenge);
                    }
                }
                Err(error) => refused.push(error),
            }
        }
    }
    match best {
        Some(challenge) => Ok(challenge),
        None if refused.is_empty() => Err(ParseError::Empty),
        None => Err(ParseError::NoSupportedChallenge { refused }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7616_challenge_parses_with_both_qops_and_opaque() {
        // RFC 7616 §3.9.1, the SHA-256 challenge.
        let challenge = parse_challenge(
            "Digest\r\n    realm=\"http-auth@example.org\",\r\n    qop=\"auth, auth-int\",\r\n    \
             algorithm=SHA-256,\r\n    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\",\r\n    \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        )
        .unwrap();
        assert_eq!(challenge.realm, "http-auth@example.org");
        assert_eq!(
            challenge.nonce,
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
        );
        assert_eq!(
            challenge.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        assert_eq!(challenge.algorithm, Algorithm::Sha256);
        assert_eq!(challenge.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert!(!challenge.stale);
    }

    /// Values seen on the wire, extracted with
    /// `tshark -r FILE -Y sip -T fields -e sip.WWW-Authenticate -e sip.Proxy-Authenticate`
    /// from the captures in `shared/corpus/pcaps` named beside each.
    #[test]
    fn real_world_challenges_parse() {
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Algorithm,
            Option<&'a str>,
            &'a [Qop],
        );
        let cases: [Case<'_>; 5] = [
            (
                // sip-488-codec-reject.pcapng (Asterisk): no spaces, lowercase md5.
                r#"Digest realm="asterisk",nonce="1566926808/1dd69977dc8e079d5047bee62c887e9f",opaque="3ba09d470ec4e448",algorithm=md5,qop="auth""#,
                "asterisk",
                "1566926808/1dd69977dc8e079d5047bee62c887e9f",
                Algorithm::Md5,
                Some("3ba09d470ec4e448"),
                &[Qop::Auth],
            ),
            (
                // Asterisk_ZFONE_XLITE.pcap: algorithm first, no qop (RFC 2069 form).
                r#"Digest algorithm=MD5, realm="192.168.10.2", nonce="01390e87""#,
                "192.168.10.2",
                "01390e87",
                Algorithm::Md5,
                None,
                &[],
            ),
            (
                // wireshark.pcap (Proxy-Authenticate): stale=false spelled out.
                r#"Digest realm="sip.cybercity.dk",nonce="1701b4767d49c41117c7b73a255a353",opaque="1701a1351f70795",stale=false,algorithm=MD5"#,
                "sip.cybercity.dk",
                "1701b4767d49c41117c7b73a255a353",
                Algorithm::Md5,
                Some("1701a1351f70795"),
                &[],
            ),
            (
                // ipip0.pcap: no algorithm parameter at all, base64-ish nonce.
                r#"Digest realm="157.161.10.73", nonce="ab1XJmm9VfqJWXWUxRAskN6H0saIwGH/""#,
                "157.161.10.73",
                "ab1XJmm9VfqJWXWUxRAskN6H0saIwGH/",
                Algorithm::Md5,
                None,
                &[],
            ),
            (
                // sip_tcp_websocket.pcap (Proxy-Authenticate over WebSocket).
                r#"Digest realm="dev-mike.tncp.textnow.com", nonce="5be9d57b0000000093b1473be159269011f99ccf76e7a1fa""#,
                "dev-mike.tncp.textnow.com",
                "5be9d57b0000000093b1473be159269011f99ccf76e7a1fa",
                Algorithm::Md5,
                None,
                &[],
            ),
        ];
        for (value, realm, nonce, algorithm, opaque, qop) in cases {
            let challenge = parse_challenge(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(challenge.realm, realm, "{value}");
            assert_eq!(challenge.nonce, nonce, "{value}");
            assert_eq!(challenge.algorithm, algorithm, "{value}");
            assert_eq!(challenge.opaque.as_deref(), opaque, "{value}");
            assert_eq!(challenge.qop, qop, "{value}");
            assert!(!challenge.stale, "{value}");
        }
    }

    #[test]
    fn odd_case_and_spacing_parse_the_same() {
        let challenge = parse_challenge(
            "dIgEsT   REALM =\t\"r\" ,NONCE= \"n\",Algorithm = sha-512-256-SESS , QOP=\"AUTH-INT\",\
             STALE=TRUE,  Domain=\"sip:a.example sip:b.example\", UserHash=TRUE, Charset=utf-8",
        )
        .unwrap();
        assert_eq!(challenge.realm, "r");
        assert_eq!(challenge.nonce, "n");
        assert_eq!(challenge.algorithm, Algorithm::Sha512_256Sess);
        assert_eq!(challenge.qop, vec![Qop::AuthInt]);
        assert!(challenge.stale);
        assert!(challenge.userhash);
        assert!(challenge.charset_utf8);
        assert_eq!(challenge.domain, ["sip:a.example", "sip:b.example"]);
    }

    #[test]
    fn unknown_params_are_kept_and_unknown_qop_values_ignored() {
        let challenge = parse_challenge(
            r#"Digest realm="r", nonce="n", qop="auth-conf,auth", x-vendor="a,b", flag=1"#,
        )
        .unwrap();
        assert_eq!(challenge.qop, vec![Qop::Auth]);
        assert_eq!(
            challenge.other,
            vec![
                ("x-vendor".to_owned(), "a,b".to_owned()),
                ("flag".to_owned(), "1".to_owned())
            ]
        );
    }

    #[test]
    fn missing_realm_or_nonce_is_a_typed_error() {
        assert_eq!(
            parse_challenge(r#"Digest nonce="n""#),
            Err(ParseError::MissingParameter { name: "realm" })
        );
        assert_eq!(
            parse_challenge(r#"Digest realm="r""#),
            Err(ParseError::MissingParameter { name: "nonce" })
        );
    }

    #[test]
    fn unsupported_algorithm_scheme_and_qop_are_typed_errors() {
        assert_eq!(
            parse_challenge(r#"Digest realm="r", nonce="n", algorithm=SHA-1"#),
            Err(ParseError::UnsupportedAlgorithm {
                algorithm: "SHA-1".to_owned()
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="r""#),
            Err(ParseError::UnsupportedScheme {
                scheme: "Basic".to_owned()
            })
        );
        assert_eq!(
            parse_challenge(r#"Digest realm="r", nonce="n", qop="auth-conf""#),
            Err(ParseError::UnsupportedQop {
                qop: "auth-conf".to_owned()
            })
        );
    }

    #[test]
    fn duplicate_realm_is_refused() {
        assert_eq!(
            parse_challenge(r#"Digest realm="a", nonce="n", Realm="b""#),
            Err(ParseError::DuplicateParameter {
                name: "realm".to_owned()
            })
        );
    }

    #[test]
    fn several_challenges_in_one_value_need_the_list_functions() {
        let value = r#"Digest realm="r", nonce="1", algorithm=MD5, Digest realm="r", nonce="2", algorithm=SHA-256"#;
        assert_eq!(
            parse_challenge(value),
            Err(ParseError::SeveralChallenges { count: 2 })
        );
        let all = parse_challenges(value).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].as_ref().unwrap().algorithm, Algorithm::Sha256);
    }

    #[test]
    fn strongest_supported_challenge_wins_across_headers_and_values() {
        let headers = [
            r#"Basic realm="r", Digest realm="r", nonce="md5", algorithm=MD5"#,
            r#"Digest realm="r", nonce="sha1", algorithm=SHA-1"#,
            r#"Digest realm="r", nonce="sha256", algorithm=SHA-256, Digest realm="r", nonce="sha512", algorithm=SHA-512-256"#,
            r#"Digest realm="r", nonce="sha256sess", algorithm=SHA-256-sess"#,
        ];
        assert_eq!(select_challenge(headers).unwrap().nonce, "sha512");
        // Equal hashes: the first listed (the server's preference) wins.
        let tie = [
            r#"Digest realm="r", nonce="sess", algorithm=SHA-256-sess"#,
            r#"Digest realm="r", nonce="plain", algorithm=SHA-256"#,
        ];
        assert_eq!(select_challenge(tie).unwrap().nonce, "sess");
    }

    #[test]
    fn no_supported_challenge_lists_the_reasons() {
        let err = select_challenge([
            r#"Basic realm="r""#,
            r#"Digest realm="r", nonce="n", algorithm=SHA-1"#,
        ])
        .unwrap_err();
        match err {
            ParseError::NoSupportedChallenge { refused } => assert_eq!(refused.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(select_challenge([""]), Err(ParseError::Empty));
    }

    #[test]
    fn written_challenge_parses_back_to_itself() {
        let mut challenge = DigestChallenge::new("re\"alm", "n0nce/+=", Algorithm::Sha512_256Sess);
        challenge.opaque = Some("op".to_owned());
        challenge.stale = true;
        challenge.qop = vec![Qop::Auth, Qop::AuthInt];
        challenge.domain = vec!["sip:a".to_owned(), "sip:b".to_owned()];
        challenge.userhash = true;
        challenge.charset_utf8 = true;
        assert_eq!(parse_challenge(&challenge.to_header_value()), Ok(challenge));
    }
}
