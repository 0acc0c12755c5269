//! Every shipped profile loads, and stays strict: an unknown key anywhere in it is an error
//! that names the file, the line and the key.

use std::path::{Path, PathBuf};

use trunk_profiles::{Config, ConfigError, Diagnostic};

fn profiles_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")
}

/// Every `*.toml` in profiles/, so a new profile is covered without touching this test.
fn profiles() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(profiles_dir())
        .expect("profiles/ exists in the crate")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("readable profile"))
        })
        .collect();
    files.sort();
    files
}

/// Any variable the profiles name resolves to a value that says where it came from.
fn env(name: &str) -> Option<String> {
    Some(format!("value-of-{name}-from-env"))
}

fn load(name: &str, text: &str) -> Result<Config, ConfigError> {
    Config::from_str_in_dir(text, name, &profiles_dir(), &env)
}

fn first_error(name: &str, text: &str) -> Diagnostic {
    match load(name, text) {
        Ok(_) => panic!("{name} loaded, expected an error:\n{text}"),
        Err(e) => e
            .diagnostics()
            .first()
            .cloned()
            .expect("an invalid file has a diagnostic"),
    }
}

/// Inserts `line` so that it becomes line `at` (1-based) of the text.
fn insert_line(text: &str, at: usize, line: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(at - 1, line);
    lines.join("\n") + "\n"
}

/// 1-based line number of the first line satisfying `pred`.
fn line_of(text: &str, pred: impl Fn(&str) -> bool) -> Option<usize> {
    text.lines().position(|l| pred(l.trim())).map(|i| i + 1)
}

#[test]
fn the_documented_profiles_are_shipped() {
    let names: Vec<String> = profiles().into_iter().map(|(n, _)| n).collect();
    for expected in [
        "carrier-register.toml",
        "ip-auth-trunk.toml",
        "pbx-kamailio-asterisk.toml",
        "minimal.toml",
        "call-centre-pools.toml",
        "carrier-tls.toml",
        "carrier-dns-srv.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}

#[test]
fn every_shipped_profile_loads() {
    for (name, text) in profiles() {
        let config = load(&name, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!config.trunks().is_empty(), "{name} has no trunk");
        let listing = config.effective_settings();
        assert!(
            listing.contains("[[trunk]]") && listing.contains("[media]"),
            "{name}:\n{listing}"
        );
    }
}

#[test]
fn every_shipped_profile_loads_from_disk() {
    // Config::load resolves *_env from the process environment, which tests leave alone:
    // the profiles that name no variable load from disk as they are.
    for (name, text) in profiles() {
        if text.contains("_env") {
            continue;
        }
        let config = Config::load(&profiles_dir().join(&name)).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.name().ends_with(&name));
    }
}

#[test]
fn unknown_top_level_key_in_any_profile_names_file_line_and_key() {
    for (name, text) in profiles() {
        let bad = insert_line(&text, 1, "bogus_top = 1");
        let d = first_error(&name, &bad);
        assert_eq!(
            (d.file.as_str(), d.line, d.column),
            (name.as_str(), 1, 1),
            "{d}"
        );
        assert_eq!(d.key, "bogus_top", "{d}");
        assert!(d.message.starts_with("unknown key `bogus_top`"), "{d}");
        assert!(
            d.to_string()
                .starts_with(&format!("{name}:1:1: bogus_top: unknown key")),
            "{d}"
        );
    }
}

#[test]
fn unknown_key_in_a_table_of_any_profile_names_file_line_and_key() {
    for (name, text) in profiles() {
        let header = line_of(&text, |l| l.starts_with('[') && !l.starts_with("[["));
        let (bad, line, key) = match header {
            Some(h) => {
                let l = text.lines().nth(h - 1).unwrap().trim();
                let table = &l[1..l.find(']').unwrap()];
                (
                    insert_line(&text, h + 1, "bogus_key = 1"),
                    h + 1,
                    format!("{table}.bogus_key"),
                )
            }
            None => {
                let n = text.lines().count();
                (
                    format!("{text}[media]\nbogus_key = 1\n"),
                    n + 2,
                    "media.bogus_key".to_string(),
                )
            }
        };
        let d = first_error(&name, &bad);
        assert_eq!(
            (d.file.as_str(), d.line, d.column),
            (name.as_str(), line, 1),
            "{d}"
        );
        assert_eq!(d.key, key, "{d}");
        assert!(d.message.starts_with("unknown key `bogus_key`"), "{d}");
    }
}

#[test]
fn unknown_key_in_an_array_of_tables_entry_of_any_profile_names_index_and_line() {
    for (name, text) in profiles() {
        for table in ["trunk", "agent", "pool"] {
            let header = format!("[[{table}]]");
            let count = text.lines().filter(|l| l.trim() == header).count();
            if count == 0 {
                continue;
            }
            // The last entry, so the index in the key path is exercised beyond 0 where possible.
            let h = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim() == header)
                .map(|(i, _)| i + 1)
                .last()
                .unwrap();
            let bad = insert_line(&text, h + 1, "  bogus_entry = true");
            let d = first_error(&name, &bad);
            assert_eq!((d.line, d.column), (h + 1, 3), "{name}: {d}");
            assert_eq!(
                d.key,
                format!("{table}[{}].bogus_entry", count - 1),
                "{name}: {d}"
            );
            assert!(
                d.message
                    .contains("unknown key `bogus_entry`, expected one of"),
                "{d}"
            );
        }
    }
}

#[test]
fn unknown_key_in_every_array_of_tables_entry_is_located() {
    // Beyond the last entry: each [[trunk]], [[agent]] and [[pool]] entry gets its own key path.
    for (name, text) in profiles() {
        for (line_index, l) in text.lines().enumerate() {
            let table = match l.trim() {
                "[[trunk]]" => "trunk",
                "[[agent]]" => "agent",
                "[[pool]]" => "pool",
                _ => continue,
            };
            let index = text
                .lines()
                .take(line_index)
                .filter(|x| x.trim() == format!("[[{table}]]"))
                .count();
            let bad = insert_line(&text, line_index + 2, "zzz = 1");
            let d = first_error(&name, &bad);
            assert_eq!(d.line, line_index + 2, "{name}: {d}");
            assert_eq!(d.key, format!("{table}[{index}].zzz"), "{name}: {d}");
        }
    }
}

#[test]
fn the_call_centre_profile_reads_its_pool_queue_latching_and_bans() {
    let (name, text) = profiles()
        .into_iter()
        .find(|(n, _)| n == "call-centre-pools.toml")
        .expect("shipped");
    let c = load(&name, &text).unwrap_or_else(|e| panic!("{e}"));
    let t = c.trunk("carrier").unwrap();
    assert_eq!(
        (
            t.max_channels.map(|n| n.get()),
            t.max_cps.map(|n| n.get()),
            t.max_queue
        ),
        (Some(60), Some(10), 200)
    );
    let p = c.pool("sales").expect("the sales pool");
    assert_eq!(p.agents, ["1000", "1001", "1002"]);
    assert_eq!(p.strategy.name(), "longest_idle");
    assert_eq!(p.agent_mode.name(), "ring");
    assert_eq!(p.wrap_up.as_secs(), 15);
    assert_eq!((p.max_no_answer, p.agent_attempts), (3, 2));
    assert_eq!(p.abandon_after.map(|d| d.as_millis()), Some(20_000));
    assert_eq!(
        p.abandon_message.as_deref(),
        Some(profiles_dir().join("sounds/all-agents-busy.wav").as_path())
    );
    assert!(p.login_paused);
    assert_eq!(c.media().latch_window.as_millis(), 2000);
    let s = c.security();
    assert_eq!(
        (s.max_auth_failures, s.ban_window.as_secs(), s.ban.as_secs()),
        (5, 600, 3600)
    );
    assert!(s.is_exempt("192.168.1.7".parse().unwrap()));
    assert!(!s.is_exempt("203.0.113.9".parse().unwrap()));
}

#[test]
fn the_pbx_profile_dials_over_tcp_with_its_connection_limits() {
    let (name, text) = profiles()
        .into_iter()
        .find(|(n, _)| n == "pbx-kamailio-asterisk.toml")
        .expect("shipped");
    let c = load(&name, &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.trunk("pbx").unwrap().transport,
        trunk_profiles::Transport::Tcp
    );
    let tcp = c.sip().tcp;
    assert_eq!(tcp.keepalive.map(|d| d.as_secs()), Some(60));
    assert_eq!(tcp.connections_per_source, 4);
    assert_eq!(tcp.idle_timeout.map(|d| d.as_secs()), Some(600));
    assert_eq!(
        c.agents()[0].transport,
        Some(trunk_profiles::Transport::Tcp),
        "its phone is held to TCP"
    );
}

#[test]
fn the_tls_carrier_profile_verifies_against_the_system_roots() {
    let (name, text) = profiles()
        .into_iter()
        .find(|(n, _)| n == "carrier-tls.toml")
        .expect("shipped");
    let c = load(&name, &text).unwrap_or_else(|e| panic!("{e}"));
    let t = c.trunk("carrier").unwrap();
    assert_eq!(t.transport, trunk_profiles::Transport::Tls);
    assert_eq!(t.proxy.port, 5061);
    let tls = &c.sip().tls;
    assert!(tls.verify && tls.ca.is_none() && tls.listen.is_none());
    assert_eq!(t.srtp, trunk_profiles::SrtpMode::Required);
    let agent = c.agents().iter().find(|a| a.extension == "1000").unwrap();
    assert_eq!(agent.srtp, trunk_profiles::SrtpMode::Optional);
}

#[test]
fn the_dns_carrier_profile_locates_its_proxy_by_naptr_and_srv() {
    let (name, text) = profiles()
        .into_iter()
        .find(|(n, _)| n == "carrier-dns-srv.toml")
        .expect("shipped");
    let c = load(&name, &text).unwrap_or_else(|e| panic!("{e}"));
    let t = c.trunk("carrier").unwrap();
    assert!(!t.proxy_port_given, "a bare name: NAPTR and SRV");
    assert_eq!(c.sip().dns_servers, vec!["127.0.0.1:53".parse().unwrap()]);
}
