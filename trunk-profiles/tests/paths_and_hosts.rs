//! `[media] record_dir`, `ringback_dir`, `pcap_dir` and `[api] allowed_hosts`: resolved,
//! validated with file:line:column, and shown in the effective settings.

use std::path::PathBuf;

use trunk_profiles::{Config, Diagnostic};

const TRUNK: &str = r#"[[trunk]]
name = "carrier"
proxy = "sip.example.net"
username = "dialer"
password = "trunk-password"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

/// A fresh directory for one test, with a `sounds/` subdirectory.
fn base(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trunk-profiles-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sounds")).unwrap();
    dir
}

fn load(text: &str, dir: &std::path::Path) -> Result<Config, Vec<Diagnostic>> {
    Config::from_str_in_dir(text, "dialer.toml", dir, &no_env).map_err(|e| e.diagnostics().to_vec())
}

#[test]
fn media_directories_resolve_against_the_config_files_directory() {
    let dir = base("dirs-resolve");
    let text = format!(
        "{TRUNK}[media]\nrecord_dir = \"recordings\"\nringback_dir = \"sounds\"\npcap_dir = \"/var/tmp/captures\"\n"
    );
    let c = load(&text, &dir).unwrap();
    assert_eq!(c.media().record_dir, Some(dir.join("recordings")));
    assert_eq!(c.media().ringback_dir, Some(dir.join("sounds")));
    assert_eq!(c.media().pcap_dir, Some(PathBuf::from("/var/tmp/captures")));
    let listing = c.effective_settings();
    for line in [
        format!("record_dir = \"{}\"", dir.join("recordings").display()),
        format!("ringback_dir = \"{}\"", dir.join("sounds").display()),
        "pcap_dir = \"/var/tmp/captures\"".to_owned(),
    ] {
        assert!(listing.contains(&line), "{line} in\n{listing}");
    }
}

#[test]
fn media_directories_default_to_unset_and_say_what_that_means() {
    let dir = base("dirs-unset");
    let c = load(TRUNK, &dir).unwrap();
    assert_eq!(c.media().ringback_dir, None);
    assert_eq!(c.media().pcap_dir, None);
    let listing = c.effective_settings();
    assert!(
        listing.contains("ringback_dir = (not set: a request's ringback is refused)"),
        "{listing}"
    );
    assert!(
        listing.contains("pcap_dir = (not set: a request's pcap is refused)"),
        "{listing}"
    );
}

#[test]
fn a_missing_ringback_dir_and_empty_or_control_character_dirs_are_refused() {
    let dir = base("dirs-bad");
    let text = format!("{TRUNK}[media]\nringback_dir = \"no-such-dir\"\n");
    let d = &load(&text, &dir).unwrap_err()[0];
    assert_eq!(
        (d.line, d.column, d.key.as_str()),
        (7, 16, "media.ringback_dir")
    );
    assert!(d.message.contains("expected an existing directory"), "{d}");

    let text = format!("{TRUNK}[media]\npcap_dir = \"\"\nrecord_dir = \"a\\u0000b\"\n");
    let errors = load(&text, &dir).unwrap_err();
    let keys: Vec<&str> = errors.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["media.pcap_dir", "media.record_dir"], "{errors:?}");
    assert!(errors[1].message.contains("without control characters"));
}

#[test]
fn allowed_hosts_are_names_or_host_port_lowercased_and_listed() {
    let dir = base("hosts-ok");
    let text = format!(
        "{TRUNK}[api]\nallowed_hosts = [\"Dialer.Example.com\", \"proxy.example.com:8443\", \"192.0.2.7:8021\", \"[2001:db8::1]:8021\", \"[::1]\"]\n"
    );
    let c = load(&text, &dir).unwrap();
    assert_eq!(
        c.api().allowed_hosts,
        [
            "dialer.example.com",
            "proxy.example.com:8443",
            "192.0.2.7:8021",
            "[2001:db8::1]:8021",
            "[::1]"
        ]
    );
    let listing = c.effective_settings();
    assert!(
        listing.contains("allowed_hosts = [\"dialer.example.com\", \"proxy.example.com:8443\""),
        "{listing}"
    );
    assert!(load(TRUNK, &dir).unwrap().api().allowed_hosts.is_empty());
    assert!(load(TRUNK, &dir)
        .unwrap()
        .effective_settings()
        .contains("allowed_hosts = []"));
}

#[test]
fn allowed_hosts_refuse_urls_wildcards_bad_ports_and_duplicates_naming_the_element() {
    let dir = base("hosts-bad");
    for (entry, why) in [
        ("http://dialer.example.com", "not a URL"),
        ("*.example.com", "not a URL or pattern"),
        ("dialer.example.com/api", "not a URL"),
        ("", "empty"),
        ("dialer.example.com:0", "not 1-65535"),
        ("dialer.example.com:99999", "not 1-65535"),
        ("2001:db8::1", "needs brackets"),
        ("[2001:db8::1", "closing ']'"),
        ("-bad-.example.com", "not a DNS name"),
        ("999.1.1.1", "not an IPv4 address"),
    ] {
        let text = format!("{TRUNK}[api]\nallowed_hosts = [\"ok.example.com\", \"{entry}\"]\n");
        let errors = load(&text, &dir).unwrap_err();
        let d = &errors[0];
        assert_eq!(d.key, "api.allowed_hosts[1]", "{entry}: {errors:?}");
        assert_eq!(d.line, 7, "{entry}");
        assert!(d.message.contains(why), "{entry}: {d}");
        assert!(d.message.contains("expected a host name"), "{entry}: {d}");
    }
    let text = format!("{TRUNK}[api]\nallowed_hosts = [\"a.example.com\", \"A.example.com\"]\n");
    let d = &load(&text, &dir).unwrap_err()[0];
    assert_eq!(d.key, "api.allowed_hosts[1]");
    assert!(d.message.contains("duplicate host"), "{d}");
    let text = format!("{TRUNK}[api]\nallowed_hosts = \"dialer.example.com\"\n");
    assert!(load(&text, &dir).is_err(), "a string is not a list");
}
