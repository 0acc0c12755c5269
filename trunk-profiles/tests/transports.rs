//! `[sip]` keys of the TCP transport, and the transports a trunk may name.

use std::time::Duration;

use trunk_profiles::{Config, Diagnostic, Transport};

const TRUNK: &str = r#"[[trunk]]
name = "carrier"
proxy = "sip.example.net"
username = "dialer"
password = "trunk-password"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Config {
    Config::from_str_named(text, "dialer.toml", &no_env).unwrap_or_else(|e| panic!("{e}"))
}

fn first(text: &str) -> Diagnostic {
    match Config::from_str_named(text, "dialer.toml", &no_env) {
        Ok(_) => panic!("loaded, expected an error:\n{text}"),
        Err(e) => e.diagnostics()[0].clone(),
    }
}

#[test]
fn tcp_limits_have_defaults() {
    let c = load(TRUNK);
    let s = c.sip();
    assert_eq!(s.max_message_bytes, 65_535);
    assert_eq!(s.tcp.connections_per_source, 16);
    assert_eq!(s.tcp.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(s.tcp.keepalive, Some(Duration::from_secs(90)));
}

#[test]
fn tcp_limits_are_read_and_zero_turns_the_timers_off() {
    let text = format!(
        "[sip]\nmax_message_bytes = 4096\ntcp_connections_per_source = 2\ntcp_idle_timeout_s = 0\ntcp_keepalive_s = 0\n\n{TRUNK}transport = \"TCP\"\n"
    );
    let c = load(&text);
    let s = c.sip();
    assert_eq!(s.max_message_bytes, 4096);
    assert_eq!(s.tcp.connections_per_source, 2);
    assert_eq!((s.tcp.idle_timeout, s.tcp.keepalive), (None, None));
    assert_eq!(c.trunk("carrier").unwrap().transport, Transport::Tcp);
}

#[test]
fn out_of_range_tcp_limits_name_file_line_column_and_range() {
    let text = format!("[sip]\ntcp_connections_per_source = 0\n\n{TRUNK}");
    assert_eq!(
        first(&text).to_string(),
        "dialer.toml:2:30: sip.tcp_connections_per_source: 0 is out of range, expected 1 to 10000 connections"
    );
    let text = format!("[sip]\nlisten = \"127.0.0.1:5060\"\nmax_message_bytes = 100\n\n{TRUNK}");
    assert_eq!(
        first(&text).to_string(),
        "dialer.toml:3:21: sip.max_message_bytes: 100 is out of range, expected 1500 to 1048576 bytes"
    );
}

#[test]
fn dns_servers_are_read_in_order_and_default_to_the_system_resolvers() {
    assert!(
        load(TRUNK).sip().dns_servers.is_empty(),
        "the system's by default"
    );
    let text = format!("[sip]\ndns_servers = [\"127.0.0.1:5353\", \"[::1]:53\"]\n\n{TRUNK}");
    let c = load(&text);
    assert_eq!(
        c.sip().dns_servers,
        vec![
            "127.0.0.1:5353".parse().unwrap(),
            "[::1]:53".parse().unwrap()
        ]
    );
    let listing = c.effective_settings();
    assert!(
        listing.contains("dns_servers = [\"127.0.0.1:5353\", \"[::1]:53\"]\n"),
        "{listing}"
    );
    assert!(
        listing.contains(
            "proxy = \"sip.example.net\" (located by DNS: NAPTR, SRV, then A/AAAA; RFC 3263)\n"
        ),
        "{listing}"
    );
    assert!(load(TRUNK)
        .effective_settings()
        .contains("dns_servers = (the system's, /etc/resolv.conf)\n"));
}

#[test]
fn a_dns_server_that_is_not_ip_port_names_file_line_column() {
    let text = format!("[sip]\ndns_servers = [\"127.0.0.1:5353\", \"ns1.example.net\"]\n\n{TRUNK}");
    assert_eq!(
        first(&text).to_string(),
        "dialer.toml:2:34: sip.dns_servers: invalid DNS server \"ns1.example.net\", expected IP:port like \"127.0.0.1:53\" or \"[2001:db8::53]:53\""
    );
    let text = format!("[sip]\ndns_servers = [\"127.0.0.1\"]\n\n{TRUNK}");
    assert_eq!(first(&text).line, 2);
    let text = format!("[sip]\ndns_servers = []\n\n{TRUNK}");
    let d = first(&text);
    assert_eq!((d.line, d.column), (2, 15), "{d}");
    assert!(
        d.to_string().contains("expected at least one DNS server"),
        "{d}"
    );
}

#[test]
fn a_proxy_name_without_a_port_is_located_by_naptr_and_srv() {
    let c = load(TRUNK);
    let t = c.trunk("carrier").unwrap();
    assert!(!t.proxy_port_given);
    assert_eq!(t.proxy.port, 5060);
    let text = TRUNK.replace("sip.example.net", "sip.example.net:5080");
    assert!(load(&text).trunk("carrier").unwrap().proxy_port_given);
    let text = TRUNK.replace("sip.example.net", "[2001:db8::1]:5060");
    assert!(load(&text).trunk("carrier").unwrap().proxy_port_given);
    let text = TRUNK.replace("sip.example.net", "[2001:db8::1]");
    assert!(!load(&text).trunk("carrier").unwrap().proxy_port_given);
}

fn load_in(dir: &std::path::Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
    Config::from_str_in_dir(text, "dialer.toml", dir, &no_env).map_err(|e| e.diagnostics().to_vec())
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tp-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_tls_trunk_and_a_tls_listener_are_read_with_their_pem_files() {
    let dir = temp_dir("ok");
    for f in ["cert.pem", "key.pem", "ca.pem"] {
        std::fs::write(dir.join(f), "-----BEGIN X-----\n-----END X-----\n").unwrap();
    }
    let text = format!(
        "[sip]\nlisten = \"127.0.0.1:5060\"\ntls_listen = \"127.0.0.1:5061\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\ntls_ca = \"ca.pem\"\n\n{TRUNK}transport = \"tls\"\n"
    );
    let c = load_in(&dir, &text).unwrap_or_else(|e| panic!("{e:?}"));
    let tls = &c.sip().tls;
    assert_eq!(tls.listen, Some("127.0.0.1:5061".parse().unwrap()));
    assert_eq!(tls.cert.as_deref(), Some(dir.join("cert.pem").as_path()));
    assert_eq!(tls.key.as_deref(), Some(dir.join("key.pem").as_path()));
    assert_eq!(tls.ca.as_deref(), Some(dir.join("ca.pem").as_path()));
    assert!(tls.verify, "tls_verify defaults to true");
    assert_eq!(c.trunk("carrier").unwrap().transport, Transport::Tls);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tls_keys_that_cannot_work_are_refused_with_their_place() {
    let dir = temp_dir("bad");
    std::fs::write(dir.join("cert.pem"), "x").unwrap();
    let cases = [
        (
            "[sip]\ntls_listen = \"0.0.0.0:5061\"\n",
            "dialer.toml:2:14: sip.tls_listen: no tls_cert and tls_key, expected both (PEM files) to accept TLS connections",
        ),
        (
            "[sip]\ntls_cert = \"cert.pem\"\n",
            "dialer.toml:2:12: sip.tls_cert: without tls_listen, expected tls_listen too: the certificate is only presented to TLS connections the dialer accepts",
        ),
        (
            "[sip]\nlisten = \"0.0.0.0:5060\"\ntls_listen = \"127.0.0.1:5060\"\ntls_cert = \"cert.pem\"\ntls_key = \"cert.pem\"\n",
            "dialer.toml:3:14: sip.tls_listen: shares TCP port 5060 with sip.listen, expected another port (5061 by convention)",
        ),
    ];
    for (sip, expected) in cases {
        let errors = load_in(&dir, &format!("{sip}\n{TRUNK}")).expect_err(sip);
        assert_eq!(errors[0].to_string(), expected, "{sip}");
    }
    let errors = load_in(&dir, &format!("[sip]\ntls_ca = \"nowhere.pem\"\n\n{TRUNK}")).unwrap_err();
    assert!(
        errors[0].to_string().contains("sip.tls_ca: file"),
        "{}",
        errors[0]
    );
    let c = load_in(
        &dir,
        &format!("[sip]\ntls_verify = false\n\n{TRUNK}transport = \"tls\"\n"),
    )
    .unwrap();
    assert!(!c.sip().tls.verify);
    let _ = std::fs::remove_dir_all(dir);
}
