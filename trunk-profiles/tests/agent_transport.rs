//! `[[agent]] transport`: absent (any listener), each value read back, and refused with a
//! static contact or as "tls" without a TLS listener, at its file, line and column.

use trunk_profiles::{Config, Transport};

const TRUNK: &str = r#"[[trunk]]
name = "carrier"
proxy = "sip.example.net"
username = "dialer"
password = "trunk-password"
"#;

const AGENT: &str = r#"[[agent]]
extension = "1000"
password = "agent-password"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<Config, String> {
    Config::from_str_named(text, "dialer.toml", &no_env).map_err(|e| e.to_string())
}

#[test]
fn an_agent_registers_over_any_listener_unless_held_to_one() {
    let c = load(&format!("{TRUNK}\n{AGENT}")).unwrap();
    assert_eq!(c.agents()[0].transport, None);
    assert!(c
        .effective_settings()
        .contains("transport = (not set: registers over any listener)"));
    let c = load(&format!("{TRUNK}\n{AGENT}transport = \"TCP\"\n")).unwrap();
    assert_eq!(c.agents()[0].transport, Some(Transport::Tcp));
    assert!(c.effective_settings().contains("transport = \"tcp\""));
}

#[test]
fn tls_needs_a_tls_listener_and_a_static_contact_takes_no_transport() {
    let e = load(&format!("{TRUNK}\n{AGENT}transport = \"tls\"\n")).unwrap_err();
    assert!(
        e.contains("dialer.toml:10:13: agent[0].transport: \"tls\" without sip.tls_listen"),
        "{e}"
    );
    let e = load(&format!(
        "{TRUNK}\n{AGENT}transport = \"udp\"\ncontact = \"sip:1000@192.0.2.7\"\n"
    ))
    .unwrap_err();
    assert!(
        e.contains("dialer.toml:10:13: agent[0].transport: with a static contact"),
        "{e}"
    );
    let e = load(&format!("{TRUNK}\n{AGENT}transport = \"sctp\"\n")).unwrap_err();
    assert!(
        e.contains("agent[0].transport: unknown value \"sctp\", expected one of \"udp\", \"tcp\" or \"tls\""),
        "{e}"
    );
}
