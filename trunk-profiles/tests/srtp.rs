//! `srtp` per trunk and per agent: its default, its values, and the error naming the place.

use trunk_profiles::{Config, Diagnostic, SrtpMode};

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
fn srtp_is_off_unless_asked_for() {
    let c = load(&format!("{TRUNK}\n{AGENT}"));
    assert_eq!(c.trunk("carrier").unwrap().srtp, SrtpMode::Off);
    assert_eq!(c.agents()[0].srtp, SrtpMode::Off);
    let settings = c.effective_settings();
    assert_eq!(settings.matches("srtp = \"off\"").count(), 2, "{settings}");
}

#[test]
fn srtp_is_read_per_trunk_and_per_agent_without_case() {
    let text = format!("{TRUNK}srtp = \"Required\"\n\n{AGENT}srtp = \"optional\"\n");
    let c = load(&text);
    assert_eq!(c.trunk("carrier").unwrap().srtp, SrtpMode::Required);
    assert_eq!(c.agents()[0].srtp, SrtpMode::Optional);
    let settings = c.effective_settings();
    assert!(settings.contains("srtp = \"required\""), "{settings}");
    assert!(settings.contains("srtp = \"optional\""), "{settings}");
}

#[test]
fn an_unknown_srtp_value_names_file_line_column_and_the_choices() {
    let text = format!("{TRUNK}srtp = \"dtls\"\n");
    assert_eq!(
        first(&text).to_string(),
        "dialer.toml:6:8: trunk[0].srtp: unknown value \"dtls\", expected one of \"off\", \"optional\" or \"required\""
    );
    let text = format!("{TRUNK}\n{AGENT}srtp = \"yes\"\n");
    assert_eq!(
        first(&text).to_string(),
        "dialer.toml:10:8: agent[0].srtp: unknown value \"yes\", expected one of \"off\", \"optional\" or \"required\""
    );
    let text = format!("{TRUNK}srtp = true\n");
    let error = first(&text).to_string();
    assert!(
        error.starts_with("dialer.toml:6:8: trunk[0].srtp:"),
        "{error}"
    );
}
