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
fn tls_is_refused_not_ignored() {
    let text = format!("{TRUNK}transport = \"tls\"\n");
    let d = first(&text);
    assert_eq!((d.line, d.key.as_str()), (6, "trunk[0].transport"));
    assert!(d.to_string().contains("\"tls\""), "{d}");
    for key in [
        "tls_listen = \"0.0.0.0:5061\"",
        "tls_cert = \"c.pem\"",
        "tls_verify = false",
        "dns_servers = [\"127.0.0.1\"]",
    ] {
        let text = format!("[sip]\n{key}\n\n{TRUNK}");
        let d = first(&text);
        assert_eq!(d.line, 2, "{key}: {d}");
        assert!(d.to_string().contains("unknown key"), "{key}: {d}");
    }
}
