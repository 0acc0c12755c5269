//! `dialer sip parse` and `dialer config check`, run as the real binary.

mod common;

use common::{corpus, dialer, dialer_with, scratch};
use std::path::Path;

/// (file, verdict) rows of the RFC 4475 manifest.
fn manifest(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("rfc4475/MANIFEST.tsv"))
        .expect("the corpus has rfc4475/MANIFEST.tsv");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.len() >= 4).then(|| (cols[0].to_string(), cols[3].to_string()))
        })
        .collect()
}

/// The Call-ID as a plain scan of the header lines finds it (`Call-ID:` or compact `i:`),
/// independent of sip-core.
fn scanned_call_id(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim().to_string())
    })
}

#[test]
fn sip_parse_accepts_every_rfc4475_accept_file_and_prints_its_call_id() {
    let Some(dir) = corpus() else { return };
    let accepted: Vec<_> = manifest(&dir)
        .into_iter()
        .filter(|(_, v)| v == "accept")
        .collect();
    assert!(accepted.len() > 10, "the manifest lists accept files");
    for (file, _) in accepted {
        let path = dir.join("rfc4475").join(&file);
        let run = dialer(&[
            "sip",
            "parse",
            path.to_str().expect("corpus paths are UTF-8"),
        ]);
        assert_eq!(run.code, 0, "{file} must parse: {}", run.stderr);
        let j = run.json();
        let bytes = std::fs::read(&path).expect("corpus file is readable");
        assert_eq!(
            j["call_id"].as_str().map(str::to_string),
            scanned_call_id(&bytes),
            "{file}"
        );
        assert!(
            j["headers"].as_array().is_some_and(|h| !h.is_empty()),
            "{file}"
        );
        let is_request = j["type"] == "request";
        assert_eq!(is_request, j["method"].is_string(), "{file}");
        assert_eq!(!is_request, j["status"].is_u64(), "{file}");
        for h in j["headers"].as_array().expect("headers is an array") {
            assert!(
                h["name"].is_string() && h["value"].is_string(),
                "{file}: {h}"
            );
        }
    }
}

#[test]
fn sip_parse_rejects_every_rfc4475_reject_file_with_line_and_column() {
    let Some(dir) = corpus() else { return };
    for (file, _) in manifest(&dir).into_iter().filter(|(_, v)| v == "reject") {
        let path = dir.join("rfc4475").join(&file);
        let run = dialer(&[
            "sip",
            "parse",
            path.to_str().expect("corpus paths are UTF-8"),
        ]);
        assert_eq!(
            run.code, 1,
            "{file} must be rejected; stdout: {}",
            run.stdout
        );
        let j = run.json();
        let error = j["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{file}: {j}");
        assert!(j["line"].as_u64().is_some_and(|l| l >= 1), "{file}: {j}");
        assert!(j["column"].as_u64().is_some_and(|c| c >= 1), "{file}: {j}");
        // The human line names the file and the position.
        let expected = format!("{}:{}:{}: ", path.display(), j["line"], j["column"]);
        assert!(run.stderr.starts_with(&expected), "{file}: {}", run.stderr);
    }
}

const OPTIONS: &[u8] = b"OPTIONS sip:carrier.example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx1;rport\r\n\
From: <sip:dialer@example.net>;tag=f1\r\nTo: <sip:carrier.example.net>\r\n\
Call-ID: stdin-check-1\r\nCSeq: 5 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

#[test]
fn sip_parse_reads_standard_input_with_dash_or_no_file() {
    for args in [&["sip", "parse", "-"][..], &["sip", "parse"][..]] {
        let run = dialer_with(args, Some(OPTIONS), &[]);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        let j = run.json();
        assert_eq!(j["call_id"], "stdin-check-1");
        assert_eq!(j["method"], "OPTIONS");
        assert_eq!(j["uri"]["host"], "carrier.example.net");
        let via = &j["headers"][0];
        assert_eq!(via["canonical"], "Via");
        assert_eq!(via["parsed"][0]["params"][1]["name"], "rport");
        assert_eq!(j["headers"][4]["parsed"]["seq"], 5);
    }
}

#[test]
fn sip_parse_of_garbage_on_stdin_exits_1_with_position() {
    let run = dialer_with(&["sip", "parse"], Some(b"HELLO\r\n\r\n"), &[]);
    assert_eq!(run.code, 1);
    let j = run.json();
    assert_eq!(j["line"], 1);
    assert!(run.stderr.starts_with("<stdin>:1:"), "{}", run.stderr);
}

#[test]
fn sip_parse_of_a_missing_file_exits_1_naming_it() {
    let run = dialer(&["sip", "parse", "/nonexistent/invite.sip"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("/nonexistent/invite.sip"),
        "{}",
        run.stderr
    );
}

const SECRETS: [(&str, &str); 3] = [
    ("CARRIER_PASSWORD", "carrier-secret-9"),
    ("PBX_PASSWORD", "pbx-secret-9"),
    ("DIALER_API_TOKEN", "api-token-secret-9"),
];

#[test]
fn config_check_prints_effective_settings_of_every_shipped_profile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../trunk-profiles/profiles");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("trunk-profiles ships profiles") {
        let path = entry.expect("profile directory entry").path();
        if !matches!(path.extension(), Some(e) if e == "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("profile is readable");
        let run = dialer_with(
            &[
                "config",
                "check",
                "--config",
                path.to_str().expect("UTF-8 path"),
            ],
            None,
            &SECRETS,
        );
        assert_eq!(run.code, 0, "{}: {}", path.display(), run.stderr);
        // Every trunk name of the file is in the effective settings.
        for name in text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("name = "))
            .map(|v| v.split('#').next().unwrap_or("").trim())
        {
            assert!(
                run.stdout.contains(name),
                "{}: {name} missing",
                path.display()
            );
        }
        assert!(run.stdout.contains("[sip]"), "{}", run.stdout);
        for (_, secret) in SECRETS {
            assert!(
                !run.stdout.contains(secret),
                "{} leaks a secret",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "only {checked} profiles found in {}",
        dir.display()
    );
}

#[test]
fn config_check_of_the_tls_carrier_profile_shows_srtp_for_its_trunk_and_its_agent() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../trunk-profiles/profiles/carrier-tls.toml");
    let run = dialer_with(
        &[
            "config",
            "check",
            "--config",
            path.to_str().expect("UTF-8 path"),
        ],
        None,
        &SECRETS,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let trunk = run.stdout.split("[[agent]]").next().unwrap_or_default();
    assert!(trunk.contains("srtp = \"required\""), "{}", run.stdout);
    let agent = run.stdout.split("[[agent]]").nth(1).unwrap_or_default();
    assert!(agent.contains("srtp = \"optional\""), "{}", run.stdout);
}

#[test]
fn config_check_of_a_broken_file_names_file_line_and_key() {
    let path = scratch("broken.toml");
    std::fs::write(
        &path,
        "[sip]\nlisten = \"0.0.0.0:5060\"\nlisen = \"typo\"\n",
    )
    .expect("scratch file is writable");
    let run = dialer(&[
        "config",
        "check",
        "--config",
        path.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let expected = format!("{}:3:1: sip.lisen:", path.display());
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
}

#[test]
fn config_check_reports_every_semantic_error_with_its_line() {
    let path = scratch("two-errors.toml");
    std::fs::write(
        &path,
        "[[trunk]]\nname = \"a\"\nproxy = \"sip.example.net\"\nregister = false\n\
transport = \"sctp\"\n\n[media]\nrtp_ports = \"30000-20000\"\n",
    )
    .expect("scratch file is writable");
    let run = dialer(&[
        "config",
        "check",
        "--config",
        path.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(run.code, 1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(lines.len() >= 2, "{}", run.stderr);
    let prefix = format!("{}:", path.display());
    assert!(
        lines.iter().all(|l| l.starts_with(&prefix)),
        "{}",
        run.stderr
    );
}

#[test]
fn config_check_of_a_missing_file_exits_1() {
    let run = dialer(&["config", "check", "--config", "/nonexistent/dialer.toml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("/nonexistent/dialer.toml"),
        "{}",
        run.stderr
    );
}
