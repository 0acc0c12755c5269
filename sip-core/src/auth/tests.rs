//! Cross-module tests: published vectors, client/server round trips, the client's retry
//! rules, and robustness of the parsers on random input.

use std::time::Duration;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

const RFC7616_REALM: &str = "http-auth@example.org";
const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

fn rfc7616_challenge(algorithm: &str) -> DigestChallenge {
    parse_challenge(&format!(
        "Digest realm=\"{RFC7616_REALM}\", qop=\"auth, auth-int\", algorithm={algorithm}, \
         nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
    ))
    .unwrap()
}

fn mufasa() -> Credentials {
    Credentials::with_password("Mufasa", "Circle of Life")
}

const GET_DIR_INDEX: DigestRequest<'static> = DigestRequest {
    method: "GET",
    uri: "/dir/index.html",
    body: b"",
};

#[test]
fn rfc_7616_md5_example_response() {
    // RFC 7616 §3.9.1, MD5 challenge answered with qop=auth, nc=00000001.
    let answer = answer_challenge(
        &rfc7616_challenge("MD5"),
        &mufasa(),
        &GET_DIR_INDEX,
        RFC7616_CNONCE,
        1,
    )
    .unwrap();
    assert_eq!(answer.response, "8ca523f5e9506fed4657c9700eebdbec");
    assert_eq!(answer.qop, Some(Qop::Auth));
    assert_eq!(answer.opaque.as_deref(), Some(RFC7616_OPAQUE));
}

#[test]
fn rfc_7616_sha256_example_response_and_header() {
    let answer = answer_challenge(
        &rfc7616_challenge("SHA-256"),
        &mufasa(),
        &GET_DIR_INDEX,
        RFC7616_CNONCE,
        1,
    )
    .unwrap();
    assert_eq!(
        answer.to_header_value(),
        "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
         nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", uri=\"/dir/index.html\", \
         response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
         algorithm=SHA-256, cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", \
         opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\", qop=auth, nc=00000001"
    );
}

#[test]
fn rfc_2617_example_response() {
    // RFC 2617 §3.5. The password is "Circle Of Life" (capital O) there, unlike RFC 7616.
    let challenge = parse_challenge(
        "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
         nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    )
    .unwrap();
    let answer = answer_challenge(
        &challenge,
        &Credentials::with_password("Mufasa", "Circle Of Life"),
        &GET_DIR_INDEX,
        "0a4f113b",
        1,
    )
    .unwrap();
    assert_eq!(answer.response, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc_7616_sha512_256_example_inputs() {
    // RFC 7616 §3.9.2 inputs (userhash aside). Expected value from
    //   python3 -c 'import hashlib; H=lambda s: hashlib.new("sha512_256", s.encode()).hexdigest();
    //     a=H("J\u00e4s\u00f8n Doe:api@example.org:Secret, or not?"); b=H("GET:/doe.json");
    //     print(H(a+":5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK:00000001:"
    //       "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v:auth:"+b))'
    // The response printed in the RFC (ae66e67d...) does not follow from its stated inputs,
    // so it is not used.
    let challenge = DigestChallenge::new(
        "api@example.org",
        "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
        Algorithm::Sha512_256,
    );
    let answer = answer_challenge(
        &challenge,
        &Credentials::with_password("J\u{e4}s\u{f8}n Doe", "Secret, or not?"),
        &DigestRequest {
            method: "GET",
            uri: "/doe.json",
            body: b"",
        },
        "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
        1,
    )
    .unwrap();
    assert_eq!(
        answer.response,
        "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    );
}

#[test]
fn every_algorithm_and_qop_matches_python_hashlib() {
    // Expected values produced once with Python's hashlib (md5, sha256, sha512_256), composing
    // RFC 7616 §3.4.1-§3.4.3 by hand: HA1 = H(user:realm:pass), for -sess
    // HA1 = H(HA1:nonce:cnonce); HA2 = H(method:uri) or H(method:uri:H(body)) for auth-int;
    // response = H(HA1:nonce:nc:cnonce:qop:HA2), or H(HA1:nonce:HA2) without qop.
    // Inputs: Mufasa / "Circle of Life" / RFC 7616 realm, nonce and cnonce, nc=00000002,
    // INVITE sip:bob@example.com, body "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n".
    let expected: [(Algorithm, [&str; 3]); 6] = [
        (
            Algorithm::Md5,
            [
                "bd07abd748e169816364e646054ba467",
                "d90d9e7cc5839cb3e6059ece9715c38e",
                "eeac55cf2c84be84cd8b3b14992162aa",
            ],
        ),
        (
            Algorithm::Md5Sess,
            [
                "4f71d4b5eeb5f3d910a2d0e8a370e2bf",
                "7f757e8c445ec3e67163a25f05b1dc92",
                "e5d9547e83bb837a03a8f62ea4fa1de8",
            ],
        ),
        (
            Algorithm::Sha256,
            [
                "baf6eccd6489fca34523dba2edce85c9b47bbdb1c2561e69116efeb584311706",
                "95272e27d16960a87bba8968ded8feea4be21ded305359202c5e3df02f08ae46",
                "753c07d0125d70baf568d256e6703d91d2be48c67b7e000d92d295d2030e185b",
            ],
        ),
        (
            Algorithm::Sha256Sess,
            [
                "aeeab65e54d139da38bbe60cf6af2124f40253fa7262582edfdf0b5be7861a13",
                "068b09c9bde25d9bb77b6d503ebe53516ac8858b2ef04a2bc06971576d0277bc",
                "3d3ef550701a8ac9287a1bf72af49441d6650961975990089ddc63e6ca908fd1",
            ],
        ),
        (
            Algorithm::Sha512_256,
            [
                "4dd3f214adf7d020ad5ae246bf1d8cd43ab6d79685cd14a4c5a0d046b457362c",
                "55417d17f98fc48d776e795668d18da49d76404bb369ab991cf174edc1d81582",
                "037f6c1e70759ba50c2f95cc2a695c1f787246eb24dbf4807a8f32b36f3777e0",
            ],
        ),
        (
            Algorithm::Sha512_256Sess,
            [
                "6a93f4ea52c9061c0171d572be72c06ff5eddfd6c268d62f31347e9495b2bb63",
                "1f9bad5418012aa2ceb8797331517e13a842b118d7824b822dafc416ad1fb604",
                "0faf45e6408c719fcca26d9161cff017b23901b09ba9deb34cb7242f3d2b3c27",
            ],
        ),
    ];
    let request = DigestRequest {
        method: "INVITE",
        uri: "sip:bob@example.com",
        body: b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n",
    };
    for (algorithm, [auth, auth_int, no_qop]) in expected {
        for (offered, want) in [
            (vec![Qop::Auth], auth),
            (vec![Qop::AuthInt], auth_int),
            (vec![], no_qop),
        ] {
            let mut challenge = DigestChallenge::new(RFC7616_REALM, RFC7616_NONCE, algorithm);
            challenge.qop = offered.clone();
            let answer =
                answer_challenge(&challenge, &mufasa(), &request, RFC7616_CNONCE, 2).unwrap();
            assert_eq!(answer.response, want, "{algorithm} {offered:?}");
            // Without qop there is no nc; the cnonce goes along only for -sess.
            assert_eq!(answer.nc.is_some(), !offered.is_empty());
            assert_eq!(
                answer.cnonce.is_some(),
                !offered.is_empty() || algorithm.is_session()
            );
        }
    }
}

#[test]
fn auth_is_preferred_when_both_qops_are_offered() {
    let answer =
        answer_challenge(&rfc7616_challenge("MD5"), &mufasa(), &GET_DIR_INDEX, "c", 1).unwrap();
    assert_eq!(answer.qop, Some(Qop::Auth));
}

#[test]
fn userhash_challenge_sends_the_hashed_username() {
    // python3 -c 'import hashlib; print(hashlib.sha256(b"Mufasa:http-auth@example.org").hexdigest())'
    let mut challenge = rfc7616_challenge("SHA-256");
    challenge.userhash = true;
    let answer =
        answer_challenge(&challenge, &mufasa(), &GET_DIR_INDEX, RFC7616_CNONCE, 1).unwrap();
    assert_eq!(
        answer.username,
        "a947aad205e80e429958a387394944c6b496301e79f89d35a4cc23b6ee12b5b6"
    );
    assert!(answer.userhash);
    // The response still uses the real username (RFC 7616 §3.4.4).
    assert_eq!(
        answer.response,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

#[test]
fn precomputed_md5_ha1_answers_md5_only() {
    // HA1 = md5("Mufasa:http-auth@example.org:Circle of Life"), upper case to check case folding.
    let ha1 = password_ha1(HashFunction::Md5, "Mufasa", RFC7616_REALM, "Circle of Life");
    let credentials = Credentials {
        username: "Mufasa".to_owned(),
        secret: Secret::Ha1 {
            hash: HashFunction::Md5,
            hex: ha1.to_ascii_uppercase(),
        },
    };
    let answer = answer_challenge(
        &rfc7616_challenge("MD5"),
        &credentials,
        &GET_DIR_INDEX,
        RFC7616_CNONCE,
        1,
    )
    .unwrap();
    assert_eq!(answer.response, "8ca523f5e9506fed4657c9700eebdbec");
    assert_eq!(
        answer_challenge(
            &rfc7616_challenge("SHA-256"),
            &credentials,
            &GET_DIR_INDEX,
            RFC7616_CNONCE,
            1
        ),
        Err(ClientError::Ha1Unusable {
            algorithm: Algorithm::Sha256
        })
    );
    let short = Credentials {
        username: "Mufasa".to_owned(),
        secret: Secret::Ha1 {
            hash: HashFunction::Md5,
            hex: "abc".to_owned(),
        },
    };
    assert!(answer_challenge(&rfc7616_challenge("MD5"), &short, &GET_DIR_INDEX, "c", 1).is_err());
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let text = format!("{:?}", Credentials::with_password("u", "hunter2"));
    assert!(!text.contains("hunter2"), "{text}");
    let config = ServerConfig::new("r", b"server-key".to_vec());
    assert!(!format!("{config:?}").contains("server-key"));
}

#[test]
fn cnonce_comes_from_the_injected_rng() {
    let mut a = ChaCha8Rng::seed_from_u64(7);
    let mut b = ChaCha8Rng::seed_from_u64(7);
    let first = generate_cnonce(&mut a);
    assert_eq!(first, generate_cnonce(&mut b));
    assert_eq!(first.len(), 32);
    assert!(first.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(first, generate_cnonce(&mut a));
}

// ---- server and round trips ----

const T0: Duration = Duration::from_secs(1_700_000_000);
const REGISTER: DigestRequest<'static> = DigestRequest {
    method: "REGISTER",
    uri: "sip:registrar.example.com",
    body: b"",
};
const INVITE_WITH_BODY: DigestRequest<'static> = DigestRequest {
    method: "INVITE",
    uri: "sip:agent@192.0.2.10:5060;transport=udp",
    body: b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\n",
};

fn server(algorithm: Algorithm, qop: Vec<Qop>) -> DigestServer {
    let mut config = ServerConfig::new("dialer.example", b"0123456789abcdef".to_vec());
    config.algorithms = vec![algorithm];
    config.accept_rfc2069 = qop.is_empty();
    config.qop = qop;
    config.opaque = Some("op4que".to_owned());
    DigestServer::new(config)
}

fn alice_lookup(username: &str) -> Option<Secret> {
    (username == "alice").then(|| Secret::Password("wonderland".to_owned()))
}

fn alice() -> Credentials {
    Credentials::with_password("alice", "wonderland")
}

/// Challenge from `server` at `now`, answered by `credentials` with nc and a seeded cnonce.
fn answer(
    server: &DigestServer,
    now: Duration,
    credentials: &Credentials,
    request: &DigestRequest<'_>,
    nc: u32,
) -> String {
    answer_with(&server.challenges(now, false), credentials, request, nc)
}

/// Answers one given challenge (the same nonce each time) with nonce count `nc`.
fn answer_with(
    challenges: &[String],
    credentials: &Credentials,
    request: &DigestRequest<'_>,
    nc: u32,
) -> String {
    let challenge = select_challenge(challenges.iter().map(String::as_str)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(nc));
    let cnonce = generate_cnonce(&mut rng);
    answer_challenge(&challenge, credentials, request, &cnonce, nc)
        .unwrap()
        .to_header_value()
}

#[test]
fn client_answer_verifies_for_every_algorithm_and_qop() {
    for algorithm in Algorithm::ALL {
        for qop in [vec![Qop::Auth], vec![Qop::AuthInt], vec![]] {
            let mut server = server(algorithm, qop.clone());
            for (nc, request) in [(1, REGISTER), (2, INVITE_WITH_BODY)] {
                let value = answer(&server, T0, &alice(), &request, nc);
                assert_eq!(
                    server.verify(T0 + Duration::from_secs(10), &request, &value, alice_lookup),
                    Verification::Authenticated {
                        username: "alice".to_owned()
                    },
                    "{algorithm} {qop:?} {value}"
                );
            }
        }
    }
}

#[test]
fn auth_int_binds_the_body() {
    let mut server = server(Algorithm::Sha256, vec![Qop::AuthInt]);
    let value = answer(&server, T0, &alice(), &INVITE_WITH_BODY, 1);
    let tampered = DigestRequest {
        body: b"v=0\r\no=- 1 1 IN IP4 203.0.113.66\r\ns=-\r\n",
        ..INVITE_WITH_BODY
    };
    assert_eq!(
        server.verify(T0, &tampered, &value, alice_lookup),
        Verification::Rejected(RejectReason::WrongResponse)
    );
}

#[test]
fn wrong_password_is_rejected() {
    let mut server = server(Algorithm::Sha256, vec![Qop::Auth]);
    let value = answer(
        &server,
        T0,
        &Credentials::with_password("alice", "guess"),
        &REGISTER,
        1,
    );
    assert_eq!(
        server.verify(T0, &REGISTER, &value, alice_lookup),
        Verification::Rejected(RejectReason::WrongResponse)
    );
}

#[test]
fn unknown_user_is_rejected() {
    let mut server = server(Algorithm::Md5, vec![Qop::Auth]);
    let value = answer(
        &server,
        T0,
        &Credentials::with_password("mallory", "x"),
        &REGISTER,
        1,
    );
    assert_eq!(
        server.verify(T0, &REGISTER, &value, alice_lookup),
        Verification::Rejected(RejectReason::UnknownUser)
    );
}

#[test]
fn expired_nonce_is_stale_and_the_stale_challenge_is_answered() {
    let mut server = server(Algorithm::Sha256, vec![Qop::Auth]);
    let value = answer(&server, T0, &alice(), &REGISTER, 1);
    let lifetime = server.config().nonce_lifetime;
    // At exactly the lifetime the nonce is still fresh; one second later it is stale.
    assert!(matches!(
        server.verify(T0 + lifetime, &REGISTER, &value, alice_lookup),
        Verification::Authenticated { .. }
    ));
    let later = T0 + lifetime + Duration::from_secs(1);
    let value = answer(&server, T0, &alice(), &REGISTER, 2);
    assert_eq!(
        server.verify(later, &REGISTER, &value, alice_lookup),
        Verification::Stale
    );
    // The client treats stale=true as a nonce refresh, not as a bad password.
    let challenges = server.challenges(later, true);
    assert!(challenges[0].contains("stale=true"), "{}", challenges[0]);
    let challenge_refs: Vec<&str> = challenges.iter().map(String::as_str).collect();
    let mut state = ClientAuthState::new();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let sent = [value.as_str()];
    let outcome = state
        .handle_challenge(
            &ChallengedResponse {
                status: 401,
                challenges: &challenge_refs,
                sent: &sent,
            },
            &alice(),
            &REGISTER,
            &mut rng,
        )
        .unwrap();
    let AuthOutcome::Retry { headers } = outcome else {
        panic!("stale challenge not retried: {outcome:?}");
    };
    assert_eq!(
        server.verify(later, &REGISTER, &headers[0].value, alice_lookup),
        Verification::Authenticated {
            username: "alice".to_owned()
        }
    );
}

#[test]
fn wrong_password_with_expired_nonce_is_rejected_not_stale() {
    // RFC 7616 §3.3: stale only when the digest itself is valid.
    let mut server = server(Algorithm::Md5, vec![Qop::Auth]);
    let value = answer(
        &server,
        T0,
        &Credentials::with_password("alice", "guess"),
        &REGISTER,
        1,
    );
    assert_eq!(
        server.verify(
            T0 + Duration::from_secs(3600),
            &REGISTER,
            &value,
            alice_lookup
        ),
        Verification::Rejected(RejectReason::WrongResponse)
    );
}

#[test]
fn replayed_nonce_count_is_rejected_and_increasing_counts_pass() {
    let mut server = server(Algorithm::Sha512_256, vec![Qop::Auth]);
    let challenges = server.challenges(T0, false);
    let first = answer_with(&challenges, &alice(), &REGISTER, 1);
    assert!(matches!(
        server.verify(T0, &REGISTER, &first, alice_lookup),
        Verification::Authenticated { .. }
    ));
    assert_eq!(
        server.verify(T0, &REGISTER, &first, alice_lookup),
        Verification::Rejected(RejectReason::NonceCountReplay { nc: 1, last: 1 })
    );
    let third = answer_with(&challenges, &alice(), &REGISTER, 3);
    assert!(matches!(
        server.verify(T0, &REGISTER, &third, alice_lookup),
        Verification::Authenticated { .. }
    ));
    let zero = answer_with(&challenges, &alice(), &REGISTER, 0);
    assert_eq!(
        server.verify(T0, &REGISTER, &zero, alice_lookup),
        Verification::Rejected(RejectReason::NonceCountReplay { nc: 0, last: 0 })
    );
    let second = answer_with(&challenges, &alice(), &REGISTER, 2);
    assert_eq!(
        server.verify(T0, &REGISTER, &second, alice_lookup),
        Verification::Rejected(RejectReason::NonceCountReplay { nc: 2, last: 3 })
    );
}

#[test]
fn tampered_or_foreign_nonce_is_rejected() {
    let mut server = server(Algorithm::Sha256, vec![Qop::Auth]);
    let nonce = server.nonce(T0);
    // Each way of forging: a changed timestamp digit (to extend the lifetime), a changed tag
    // digit, a truncated nonce, and a nonce made by a server with another secret or realm.
    let mut later_timestamp = nonce.clone().into_bytes();
    later_timestamp[15] = if later_timestamp[15] == b'f' {
        b'e'
    } else {
        b'f'
    };
    let mut bad_tag = nonce.clone().into_bytes();
    let last = bad_tag.len() - 1;
    bad_tag[last] = if bad_tag[last] == b'0' { b'1' } else { b'0' };
    let other_secret = DigestServer::new(ServerConfig::new("dialer.example", b"other".to_vec()));
    let other_realm = DigestServer::new(ServerConfig::new(
        "other.example",
        b"0123456789abcdef".to_vec(),
    ));
    let forged = [
        String::from_utf8(later_timestamp).unwrap(),
        String::from_utf8(bad_tag).unwrap(),
        nonce[..nonce.len() - 2].to_owned(),
        other_secret.nonce(T0),
        other_realm.nonce(T0),
        "not-hex-at-all-but-the-right-length-0123456789ab".to_owned(),
    ];
    for forged_nonce in forged {
        let mut challenge =
            DigestChallenge::new("dialer.example", forged_nonce.clone(), Algorithm::Sha256);
        challenge.opaque = Some("op4que".to_owned());
        let value = answer_challenge(&challenge, &alice(), &REGISTER, "c0ffee", 1)
            .unwrap()
            .to_header_value();
        assert_eq!(
            server.verify(T0, &REGISTER, &value, alice_lookup),
            Verification::Rejected(RejectReason::InvalidNonce),
            "{forged_nonce}"
        );
    }
}

#[test]
fn realm_uri_opaque_algorithm_and_qop_mismatches_are_rejected() {
    let mut server = server(Algorithm::Sha256, vec![Qop::Auth]);
    let nonce = server.nonce(T0);
    let base = || {
        let mut challenge =
            DigestChallenge::new("dialer.example", nonce.clone(), Algorithm::Sha256);
        challenge.opaque = Some("op4que".to_owned());
        challenge
    };
    let respond = |challenge: &DigestChallenge, request: &DigestRequest<'_>| {
        answer_challenge(challenge, &alice(), request, "c0ffee", 1)
            .unwrap()
            .to_header_value()
    };
    let mut other_realm = base();
    other_realm.realm = "evil.example".to_owned();
    let mut no_opaque = base();
    no_opaque.opaque = None;
    let mut md5 = base();
    md5.algorithm = Algorithm::Md5;
    let mut no_qop = base();
    no_qop.qop.clear();
    let other_uri = DigestRequest {
        uri: "sip:elsewhere.example.com",
        ..REGISTER
    };
    let cases = [
        (
            respond(&other_realm, &REGISTER),
            RejectReason::RealmMismatch {
                realm: "evil.example".to_owned(),
            },
        ),
        (
            respond(&base(), &other_uri),
            RejectReason::UriMismatch {
                uri: "sip:elsewhere.example.com".to_owned(),
            },
        ),
        (respond(&no_opaque, &REGISTER), RejectReason::OpaqueMismatch),
        (
            respond(&md5, &REGISTER),
            RejectReason::AlgorithmNotOffered(Algorithm::Md5),
        ),
        (
            respond(&no_qop, &REGISTER),
            RejectReason::QopNotOffered(None),
        ),
    ];
    for (value, reason) in cases {
        assert_eq!(
            server.verify(T0, &REGISTER, &value, alice_lookup),
            Verification::Rejected(reason),
            "{value}"
        );
    }
    assert!(matches!(
        server.verify(T0, &REGISTER, "Digest realm=", alice_lookup),
        Verification::Rejected(RejectReason::Malformed(_))
    ));
}

#[test]
fn stored_md5_ha1_verifies_md5_but_not_sha256() {
    let ha1 = password_ha1(HashFunction::Md5, "alice", "dialer.example", "wonderland");
    let lookup = |_: &str| {
        Some(Secret::Ha1 {
            hash: HashFunction::Md5,
            hex: ha1.clone(),
        })
    };
    let mut md5 = server(Algorithm::Md5, vec![Qop::Auth]);
    let value = answer(&md5, T0, &alice(), &REGISTER, 1);
    assert!(matches!(
        md5.verify(T0, &REGISTER, &value, lookup),
        Verification::Authenticated { .. }
    ));
    let mut sha = server(Algorithm::Sha256, vec![Qop::Auth]);
    let value = answer(&sha, T0, &alice(), &REGISTER, 1);
    assert_eq!(
        sha.verify(T0, &REGISTER, &value, lookup),
        Verification::Rejected(RejectReason::SecretUnusable(Algorithm::Sha256))
    );
}

#[test]
fn replay_state_is_bounded_and_forgotten_nonces_are_stale() {
    let mut config = ServerConfig::new("dialer.example", b"k".to_vec());
    config.max_tracked_nonces = 2;
    let mut server = DigestServer::new(config);
    let answers: Vec<String> = (0..3)
        .map(|i| answer(&server, T0 + Duration::from_secs(i), &alice(), &REGISTER, 1))
        .collect();
    for value in &answers {
        assert!(matches!(
            server.verify(T0 + Duration::from_secs(5), &REGISTER, value, alice_lookup),
            Verification::Authenticated { .. }
        ));
        assert!(server.tracked_nonces() <= 2);
    }
    // The first nonce's count was dropped: replaying it cannot be told from a new use.
    assert_eq!(
        server.verify(
            T0 + Duration::from_secs(5),
            &REGISTER,
            &answers[0],
            alice_lookup
        ),
        Verification::Stale
    );
    // The tracked ones still catch replays.
    assert!(matches!(
        server.verify(
            T0 + Duration::from_secs(5),
            &REGISTER,
            &answers[2],
            alice_lookup
        ),
        Verification::Rejected(RejectReason::NonceCountReplay { .. })
    ));
}

#[test]
fn server_offers_one_challenge_per_algorithm_in_preference_order() {
    let mut config = ServerConfig::new("dialer.example", b"k".to_vec());
    config.algorithms = vec![Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5];
    let server = DigestServer::new(config);
    let challenges = server.challenges(T0, false);
    let parsed: Vec<DigestChallenge> = challenges
        .iter()
        .map(|value| parse_challenge(value).unwrap())
        .collect();
    let algorithms: Vec<Algorithm> = parsed.iter().map(|c| c.algorithm).collect();
    assert_eq!(
        algorithms,
        [Algorithm::Sha512_256, Algorithm::Sha256, Algorithm::Md5]
    );
    assert!(parsed.iter().all(|c| c.qop == [Qop::Auth] && !c.stale));
}

// ---- client state ----

struct Client {
    state: ClientAuthState,
    rng: ChaCha8Rng,
}

impl Client {
    fn new() -> Self {
        Client {
            state: ClientAuthState::new(),
            rng: ChaCha8Rng::seed_from_u64(42),
        }
    }

    fn challenged(&mut self, status: u16, challenges: &[&str], sent: &[&str]) -> AuthOutcome {
        self.state
            .handle_challenge(
                &ChallengedResponse {
                    status,
                    challenges,
                    sent,
                },
                &alice(),
                &REGISTER,
                &mut self.rng,
            )
            .unwrap()
    }
}

fn retry_headers(outcome: AuthOutcome) -> Vec<AuthorizationHeader> {
    match outcome {
        AuthOutcome::Retry { headers } => headers,
        other => panic!("expected a retry, got {other:?}"),
    }
}

const CHALLENGE_N1: &str =
    r#"Digest realm="dialer.example", nonce="n1", qop="auth", algorithm=MD5"#;
const CHALLENGE_N2: &str =
    r#"Digest realm="dialer.example", nonce="n2", qop="auth", algorithm=MD5"#;
const STALE_N2: &str =
    r#"Digest realm="dialer.example", nonce="n2", qop="auth", algorithm=MD5, stale=TRUE"#;
const STALE_N3: &str =
    r#"Digest realm="dialer.example", nonce="n3", qop="auth", algorithm=MD5, stale=true"#;

#[test]
fn first_challenge_is_answered_with_nc_1_under_the_right_header() {
    let mut client = Client::new();
    let headers = retry_headers(client.challenged(401, &[CHALLENGE_N1], &[]));
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].name, HeaderName::Authorization);
    let sent = parse_credentials(&headers[0].value).unwrap();
    assert_eq!((sent.nonce.as_str(), sent.nc), ("n1", Some(1)));
    let headers = retry_headers(client.challenged(407, &[CHALLENGE_N1], &[]));
    // The 407's answer goes in Proxy-Authorization, beside the cached 401 answer.
    let names: Vec<HeaderName> = headers.iter().map(|h| h.name).collect();
    assert_eq!(
        names,
        [HeaderName::Authorization, HeaderName::ProxyAuthorization]
    );
    assert_eq!(
        HeaderName::ProxyAuthorization.as_str(),
        "Proxy-Authorization"
    );
    assert_eq!(
        HeaderName::ProxyAuthorization.challenge_header(),
        "Proxy-Authenticate"
    );
}

#[test]
fn same_nonce_challenged_again_is_rejected() {
    let mut client = Client::new();
    let headers = retry_headers(client.challenged(401, &[CHALLENGE_N1], &[]));
    let sent = [headers[0].value.as_str()];
    assert_eq!(
        client.challenged(401, &[CHALLENGE_N1], &sent),
        AuthOutcome::Rejected {
            realm: "dialer.example".to_owned()
        }
    );
    // Even when the caller does not say what it sent.
    assert!(matches!(
        client.challenged(401, &[CHALLENGE_N1], &[]),
        AuthOutcome::Rejected { .. }
    ));
}

#[test]
fn fresh_nonce_refusing_a_first_answer_is_rejected() {
    // Servers such as Kamailio and Asterisk answer a wrong password with a new nonce.
    let mut client = Client::new();
    let headers = retry_headers(client.challenged(401, &[CHALLENGE_N1], &[]));
    let sent = [headers[0].value.as_str()];
    assert!(matches!(
        client.challenged(401, &[CHALLENGE_N2], &sent),
        AuthOutcome::Rejected { .. }
    ));
}

#[test]
fn nonce_is_reused_with_increasing_nc_and_a_silent_expiry_is_answered() {
    let mut client = Client::new();
    retry_headers(client.challenged(401, &[CHALLENGE_N1], &[]));
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut last = String::new();
    for expected_nc in 2..=4 {
        let headers = client
            .state
            .authorization_headers(&alice(), &REGISTER, &mut rng)
            .unwrap();
        let sent = parse_credentials(&headers[0].value).unwrap();
        assert_eq!(sent.nc, Some(expected_nc));
        last = headers[0].value.clone();
    }
    assert_eq!(
        client
            .state
            .nonce_count(HeaderName::Authorization, "dialer.example"),
        Some(4)
    );
    // n1 worked three times, then the server dropped it without stale: answer n2.
    let headers = retry_headers(client.challenged(401, &[CHALLENGE_N2], &[last.as_str()]));
    let sent = parse_credentials(&headers[0].value).unwrap();
    assert_eq!((sent.nonce.as_str(), sent.nc), ("n2", Some(1)));
}

#[test]
fn stale_is_retried_once_without_treating_it_as_a_bad_password() {
    let mut client = Client::new();
    let first = retry_headers(client.challenged(401, &[CHALLENGE_N1], &[]));
    let sent = [first[0].value.as_str()];
    let retry = retry_headers(client.challenged(401, &[STALE_N2], &sent));
    let retried = parse_credentials(&retry[0].value).unwrap();
    assert_eq!((retried.nonce.as_str(), retried.nc), ("n2", Some(1)));
    // The retry itself met stale again: the server is not accepting fresh nonces; stop.
    let sent = [retry[0].value.as_str()];
    assert!(matches!(
        client.challenged(401, &[STALE_N3], &sent),
        AuthOutcome::Rejected { .. }
    ));
}

#[test]
fn stale_after_the_nonce_served_several_requests_is_retried_again() {
    let mut client = Client::new();
    let first = retry_headers(client.challenged(401, &[CHALLENGE_N1], &[]));
    let retry = retry_headers(client.challenged(401, &[STALE_N2], &[first[0].value.as_str()]));
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let later = client
        .state
        .authorization_headers(&alice(), &REGISTER, &mut rng)
        .unwrap();
    assert_ne!(retry[0].value, later[0].value);
    let again = retry_headers(client.challenged(401, &[STALE_N3], &[later[0].value.as_str()]));
    assert_eq!(parse_credentials(&again[0].value).unwrap().nonce, "n3");
}

#[test]
fn strongest_challenge_of_the_response_is_answered() {
    let mut client = Client::new();
    let headers = retry_headers(client.challenged(
        401,
        &[
            r#"Digest realm="dialer.example", nonce="m", algorithm=MD5, qop="auth""#,
            r#"Digest realm="dialer.example", nonce="s", algorithm=SHA-256, qop="auth""#,
        ],
        &[],
    ));
    let sent = parse_credentials(&headers[0].value).unwrap();
    assert_eq!(
        (sent.algorithm, sent.nonce.as_str()),
        (Algorithm::Sha256, "s")
    );
}

#[test]
fn non_challenge_status_and_unusable_challenges_are_errors() {
    let mut state = ClientAuthState::new();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let err = state
        .handle_challenge(
            &ChallengedResponse {
                status: 403,
                challenges: &[CHALLENGE_N1],
                sent: &[],
            },
            &alice(),
            &REGISTER,
            &mut rng,
        )
        .unwrap_err();
    assert_eq!(err, ClientError::NotAChallenge { status: 403 });
    let err = state
        .handle_challenge(
            &ChallengedResponse {
                status: 401,
                challenges: &[r#"Basic realm="x""#],
                sent: &[],
            },
            &alice(),
            &REGISTER,
            &mut rng,
        )
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Challenge(ParseError::NoSupportedChallenge { .. })
    ));
}

#[test]
fn client_state_is_bounded() {
    let mut client = Client::new();
    for i in 0..(ClientAuthState::MAX_REALMS + 3) {
        let challenge = format!(r#"Digest realm="realm{i}", nonce="n""#);
        let headers = retry_headers(client.challenged(401, &[challenge.as_str()], &[]));
        assert!(headers.len() <= ClientAuthState::MAX_REALMS);
    }
    assert_eq!(
        client
            .state
            .nonce_count(HeaderName::Authorization, "realm0"),
        None
    );
    client.state.clear();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert!(client
        .state
        .authorization_headers(&alice(), &REGISTER, &mut rng)
        .unwrap()
        .is_empty());
}

// ---- robustness ----

/// Random input never panics any parser or the verifier. Seeded, so a failure reproduces.
#[test]
fn parsers_and_verifier_never_panic_on_random_input() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let seeds = [
        CHALLENGE_N1,
        STALE_N2,
        r#"Digest realm="a\"b", nonce=x, Basic realm="q", Negotiate YII=, Digest realm=r"#,
        "Digest username=\"u\", realm=\"dialer.example\", nonce=\"n\", uri=\"sip:a\", \
         response=\"00\", qop=auth, nc=00000001, cnonce=\"c\"",
    ];
    // A fragment alphabet that reaches the parser's branches more often than plain bytes.
    let fragments: [&[u8]; 14] = [
        b"Digest ",
        b"realm",
        b"=",
        b"\"",
        b"\\",
        b",",
        b" ",
        b"\r\n",
        b"nonce",
        b"qop=auth",
        b"algorithm=SHA-256-sess",
        b"\xc3\xa4",
        b"\xff",
        b"nc=",
    ];
    let mut server = server(Algorithm::Md5, vec![Qop::Auth]);
    for round in 0..6000 {
        let bytes: Vec<u8> = match round % 3 {
            // Plain random bytes.
            0 => {
                let len = rng.gen_range(0..64);
                (0..len).map(|_| rng.gen()).collect()
            }
            // Random fragments.
            1 => (0..rng.gen_range(0..24))
                .flat_map(|_| fragments[rng.gen_range(0..fragments.len())].to_vec())
                .collect(),
            // A valid value with a few bytes replaced, inserted or cut.
            _ => {
                let mut bytes = seeds[rng.gen_range(0..seeds.len())].as_bytes().to_vec();
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..=bytes.len());
                    match rng.gen_range(0..3) {
                        0 if at < bytes.len() => bytes[at] = rng.gen(),
                        1 => bytes.insert(at, rng.gen()),
                        _ => bytes.truncate(at),
                    }
                }
                bytes
            }
        };
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_challenge(&text);
        let _ = parse_challenges(&text);
        let _ = select_challenge([text.as_ref(), CHALLENGE_N1]);
        let _ = parse_credentials(&text);
        let _ = server.verify(T0, &REGISTER, &text, alice_lookup);
        let mut state = ClientAuthState::new();
        let challenges = [text.as_ref()];
        let _ = state.handle_challenge(
            &ChallengedResponse {
                status: 401,
                challenges: &challenges,
                sent: &challenges,
            },
            &alice(),
            &REGISTER,
            &mut rng.clone() as &mut dyn RngCore,
        );
    }
}

#[test]
fn nonces_issued_in_the_same_second_differ_and_each_verifies() {
    let mut server = server(Algorithm::Md5, vec![Qop::Auth]);
    let a = server.challenges(T0, false);
    let b = server.challenges(T0, false);
    assert_ne!(
        a, b,
        "two clients challenged in one second get their own nonces"
    );
    for challenges in [&a, &b] {
        let value = answer_with(challenges, &alice(), &REGISTER, 1);
        assert!(matches!(
            server.verify(T0, &REGISTER, &value, alice_lookup),
            Verification::Authenticated { .. }
        ));
    }
}
