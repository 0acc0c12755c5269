//! Bad files: each problem is reported with file, line, column, key path and what was expected.

use std::path::Path;

use trunk_profiles::{Config, ConfigError, Diagnostic};

const TRUNK: &str = r#"[[trunk]]
name = "carrier"
proxy = "sip.example.net"
username = "dialer"
password = "trunk-password"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match Config::from_str_named(text, "dialer.toml", &no_env) {
        Ok(_) => panic!("loaded, expected an error:\n{text}"),
        Err(e) => e.diagnostics().to_vec(),
    }
}

fn first(text: &str) -> Diagnostic {
    errors(text)
        .into_iter()
        .next()
        .expect("at least one diagnostic")
}

fn loc(d: &Diagnostic) -> (usize, usize, &str) {
    (d.line, d.column, d.key.as_str())
}

#[test]
fn unknown_transport_reads_file_line_column_key_and_choices() {
    let text = format!("{TRUNK}transport = \"sctp\"\n");
    assert_eq!(
        first(&text).to_string(),
        r#"dialer.toml:6:13: trunk[0].transport: unknown value "sctp", expected one of "udp", "tcp" or "tls""#
    );
}

#[test]
fn keywords_are_case_insensitive() {
    let text =
        format!("{TRUNK}transport = \"TCP\"\ncodecs = [\"pcma\", \"OPUS\"]\ndtmf = \"INFO\"\n");
    let c = Config::from_str_named(&text, "dialer.toml", &no_env).unwrap();
    let t = &c.trunks()[0];
    assert_eq!(t.transport.name(), "tcp");
    assert_eq!(
        t.codecs.iter().map(|c| c.name()).collect::<Vec<_>>(),
        ["PCMA", "opus"]
    );
    assert_eq!(t.dtmf.name(), "info");
}

#[test]
fn wrong_types_name_the_key_and_the_expected_type() {
    let d = first(&format!("{TRUNK}expires = \"600\"\n"));
    assert_eq!(loc(&d), (6, 11, "trunk[0].expires"));
    assert!(d.message.contains("expected u32"), "{d}");

    let d = first(&format!("{TRUNK}register = \"yes\"\n"));
    assert_eq!(loc(&d), (6, 12, "trunk[0].register"));
    assert!(d.message.contains("expected a boolean"), "{d}");

    let d = first(&format!("{TRUNK}codecs = \"PCMU\"\n"));
    assert_eq!(loc(&d), (6, 10, "trunk[0].codecs"));
    assert!(d.message.contains("expected a sequence"), "{d}");

    let d = first(&format!("[sip]\nlisten = 5060\n{TRUNK}"));
    assert_eq!(loc(&d), (2, 10, "sip.listen"));
    assert!(d.message.contains("expected a string"), "{d}");

    let d = first(&format!("{TRUNK}codecs = [\"PCMU\", 8]\n"));
    assert_eq!(loc(&d), (6, 19, "trunk[0].codecs[1]"));

    let d = first(&format!("{TRUNK}expires = -1\n"));
    assert_eq!(loc(&d), (6, 11, "trunk[0].expires"));
}

#[test]
fn missing_required_key_names_the_table_entry() {
    let d = first(&format!("{TRUNK}[[trunk]]\nname = \"b\"\n"));
    assert_eq!(loc(&d), (6, 1, "trunk[1].proxy"));
    assert_eq!(d.message, "missing required key");
}

#[test]
fn syntax_error_is_located() {
    let d = first("[[trunk]]\nname = \"a\n");
    assert_eq!((d.line, d.file.as_str()), (2, "dialer.toml"));
}

#[test]
fn bad_cidr_names_the_list_element() {
    let text = format!("{TRUNK}[[agent]]\nextension = \"1000\"\npassword = \"pw\"\nallow = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n");
    let d = first(&text);
    assert_eq!(loc(&d), (9, 24, "agent[0].allow[1]"));
    assert!(d.message.contains("invalid CIDR \"10.0.0.0/33\""), "{d}");
    assert!(d.message.contains("expected a CIDR"), "{d}");

    let d = first(&text.replace("10.0.0.0/33", "10.1.2.3/8"));
    assert!(
        d.message.contains("host bits") && d.message.contains("\"10.0.0.0/8\""),
        "{d}"
    );
}

#[test]
fn empty_and_odd_port_ranges_are_rejected() {
    let d = first(&format!("{TRUNK}[media]\nrtp_ports = \"20000-20000\"\n"));
    assert_eq!(loc(&d), (7, 13, "media.rtp_ports"));
    assert!(d.message.contains("is empty"), "{d}");
    let d = first(&format!("{TRUNK}[media]\nrtp_ports = \"29999-20000\"\n"));
    assert!(d.message.contains("is empty"), "{d}");
    let d = first(&format!("{TRUNK}[media]\nrtp_ports = \"20001-29999\"\n"));
    assert!(d.message.contains("odd"), "{d}");
}

#[test]
fn rtp_range_containing_the_sip_port_is_rejected() {
    let d = first(&format!(
        "[sip]\nlisten = \"0.0.0.0:20002\"\n{TRUNK}[media]\nrtp_ports = \"20000-29999\"\n"
    ));
    assert_eq!(d.key, "media.rtp_ports");
    assert!(d.message.contains("contains the SIP port 20002"), "{d}");
}

#[test]
fn duplicate_trunk_names_and_extensions_point_at_the_second() {
    let text = format!("{TRUNK}{}", TRUNK.replace("carrier", "Carrier"));
    let d = first(&text);
    assert_eq!(loc(&d), (7, 8, "trunk[1].name"));
    assert!(
        d.message
            .contains("duplicate trunk name \"Carrier\" (already trunk[0].name)"),
        "{d}"
    );

    let agent = "[[agent]]\nextension = \"1000\"\npassword = \"pw\"\n";
    let d = first(&format!("{TRUNK}{agent}{agent}"));
    assert_eq!(loc(&d), (10, 13, "agent[1].extension"));
    assert!(d.message.contains("duplicate extension \"1000\""), "{d}");
}

#[test]
fn unknown_and_duplicate_codecs_name_the_element() {
    let d = first(&format!("{TRUNK}codecs = [\"PCMU\", \"PCMA\", \"G729\"]\n"));
    assert_eq!(loc(&d), (6, 27, "trunk[0].codecs[2]"));
    assert_eq!(
        d.message,
        r#"unknown value "G729", expected one of "PCMU", "PCMA" or "opus""#
    );

    let d = first(&format!("{TRUNK}codecs = [\"PCMU\", \"pcmu\"]\n"));
    assert_eq!(loc(&d), (6, 19, "trunk[0].codecs[1]"));
    assert!(d.message.contains("duplicate codec \"PCMU\""), "{d}");

    let d = first(&format!("{TRUNK}codecs = []\n"));
    assert_eq!(loc(&d), (6, 10, "trunk[0].codecs"));
    assert!(d.message.starts_with("empty list"), "{d}");
}

#[test]
fn bad_addresses_are_rejected_with_what_was_expected() {
    let d = first(&TRUNK.replace("sip.example.net", "2001:db8::1"));
    assert_eq!(loc(&d), (3, 9, "trunk[0].proxy"));
    assert!(d.message.contains("must be in brackets"), "{d}");

    let d = first(&format!("[sip]\nlisten = \"0.0.0.0\"\n{TRUNK}"));
    assert_eq!(loc(&d), (2, 10, "sip.listen"));
    assert!(d.message.contains("expected IP:port"), "{d}");

    let d = first(&format!("[sip]\nexternal_ip = \"0.0.0.0\"\n{TRUNK}"));
    assert_eq!(d.key, "sip.external_ip");

    let text =
        format!("{TRUNK}[[agent]]\nextension = \"1\"\npassword = \"p\"\ncontact = \"tel:+1555\"\n");
    assert_eq!(first(&text).key, "agent[0].contact");
}

#[test]
fn out_of_range_numbers_state_the_bounds() {
    let d = first(&format!("{TRUNK}expires = 10\n"));
    assert_eq!(loc(&d), (6, 11, "trunk[0].expires"));
    assert_eq!(
        d.message,
        "10 is out of range, expected 60 to 86400 seconds"
    );

    let d = first(&format!("{TRUNK}min_se_s = 60\n"));
    assert!(d.message.contains("expected 90 to 86400"), "{d}");

    let d = first(&format!(
        "{TRUNK}register_retry_min_s = 60\nregister_retry_max_s = 30\n"
    ));
    assert_eq!(loc(&d), (7, 24, "trunk[0].register_retry_max_s"));

    let d = first(&format!("[sip]\nt1_ms = 5000\n{TRUNK}"));
    assert_eq!(d.key, "sip.t1_ms");
    assert!(d.message.contains("t2_ms >= t1_ms"), "{d}");
}

#[test]
fn registering_trunk_without_password_points_at_its_header() {
    let text = format!("{TRUNK}[[trunk]]\nname = \"b\"\nproxy = \"b.example\"\nusername = \"u\"\n");
    let d = first(&text);
    assert_eq!(loc(&d), (6, 1, "trunk[1].password"));
    assert!(d.message.contains("password or password_env"), "{d}");
}

#[test]
fn ip_authenticated_trunk_needs_no_credentials() {
    let text = "[[trunk]]\nname = \"ip\"\nproxy = \"198.51.100.20\"\nregister = false\n";
    let c = Config::from_str_named(text, "dialer.toml", &no_env).unwrap();
    assert!(c.trunks()[0].credentials.is_none());
    assert!(!c.trunks()[0].register);
}

#[test]
fn password_and_password_env_together_are_rejected() {
    let d = first(&format!("{TRUNK}password_env = \"X\"\n"));
    assert_eq!(loc(&d), (6, 16, "trunk[0].password_env"));
    assert!(d.message.contains("expected only one"), "{d}");
}

#[test]
fn missing_password_env_variable_is_named() {
    let text = TRUNK.replace(
        "password = \"trunk-password\"",
        "password_env = \"CARRIER_PASSWORD\"",
    );
    let d = first(&text);
    assert_eq!(loc(&d), (5, 16, "trunk[0].password_env"));
    assert_eq!(
        d.message,
        "environment variable CARRIER_PASSWORD is not set, expected it to hold the secret"
    );
    let env = |n: &str| (n == "CARRIER_PASSWORD").then(|| "from-env".to_string());
    let c = Config::from_str_named(&text, "dialer.toml", &env).unwrap();
    let cred = c.trunks()[0].credentials.as_ref().unwrap();
    assert_eq!(cred.password.expose(), "from-env");
    assert_eq!(cred.password_env.as_deref(), Some("CARRIER_PASSWORD"));
    assert_eq!(cred.auth_username, "dialer");
}

#[test]
fn agent_needs_exactly_one_of_password_and_a1_hash() {
    let d = first(&format!("{TRUNK}[[agent]]\nextension = \"1000\"\n"));
    assert_eq!(loc(&d), (6, 1, "agent[0].password"));
    let d = first(&format!(
        "{TRUNK}[[agent]]\nextension = \"1000\"\npassword = \"p\"\na1_hash = \"{}\"\n",
        "0".repeat(32)
    ));
    assert_eq!(d.key, "agent[0].a1_hash");
    assert!(d.message.contains("expected only one"), "{d}");
    let d = first(&format!(
        "{TRUNK}[[agent]]\nextension = \"1000\"\na1_hash = \"{}\"\n",
        "A".repeat(32)
    ));
    assert!(d.message.contains("32 lowercase hex digits"), "{d}");
}

#[test]
fn api_on_a_public_address_needs_a_token() {
    let d = first(&format!("{TRUNK}[api]\nlisten = \"0.0.0.0:8021\"\n"));
    assert_eq!(loc(&d), (7, 10, "api.listen"));
    assert!(d.message.contains("not a loopback address"), "{d}");
    let ok = format!("{TRUNK}[api]\nlisten = \"0.0.0.0:8021\"\ntoken = \"0123456789abcdef\"\n");
    assert!(Config::from_str_named(&ok, "dialer.toml", &no_env).is_ok());
}

#[test]
fn ringback_is_resolved_against_the_config_directory() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ringback_is_resolved");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ring.wav"), b"RIFF").unwrap();
    let text = format!("{TRUNK}[media]\nringback = \"ring.wav\"\n");
    let c = Config::from_str_in_dir(&text, "dialer.toml", &dir, &no_env).unwrap();
    assert_eq!(
        c.media().ringback.as_deref(),
        Some(dir.join("ring.wav").as_path())
    );

    let missing = text.replace("ring.wav", "nope.wav");
    let e = Config::from_str_in_dir(&missing, "dialer.toml", &dir, &no_env).unwrap_err();
    let d = &e.diagnostics()[0];
    assert_eq!(loc(d), (7, 12, "media.ringback"));
    assert!(
        d.message
            .contains(&dir.join("nope.wav").display().to_string()),
        "{d}"
    );
}

#[test]
fn load_reports_the_path_it_was_given() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("load_reports_the_path");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dialer.toml");
    std::fs::write(&path, format!("{TRUNK}transport = \"sctp\"\n")).unwrap();
    let e = Config::load(&path).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}:6:13: trunk[0].transport", path.display())),
        "{e}"
    );

    let e = Config::load(&dir.join("absent.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    assert!(e.to_string().contains("absent.toml"), "{e}");
}

#[test]
fn several_problems_are_all_reported_in_file_order() {
    let text = format!("[media]\nrtp_ports = \"1-2\"\n{TRUNK}transport = \"sctp\"\nexpires = 1\n");
    let all = errors(&text);
    let keys: Vec<&str> = all.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys,
        ["media.rtp_ports", "trunk[0].transport", "trunk[0].expires"]
    );
    let shown = ConfigError::Invalid(
        match Config::from_str_named(&text, "dialer.toml", &no_env) {
            Err(ConfigError::Invalid(d)) => d,
            _ => unreachable!("the file is invalid"),
        },
    )
    .to_string();
    assert_eq!(shown.lines().count(), 3, "{shown}");
}

#[test]
fn a_file_without_trunks_is_rejected() {
    let d = first("[sip]\nlisten = \"0.0.0.0:5060\"\n");
    assert_eq!(loc(&d), (1, 1, "trunk"));
}

#[test]
fn defaults_fill_in_every_setting() {
    let text = format!("{TRUNK}[[agent]]\nextension = \"1000\"\npassword = \"pw\"\n");
    let c = Config::from_str_named(&text, "dialer.toml", &no_env).unwrap();
    assert_eq!(c.sip().listen.to_string(), "0.0.0.0:5060");
    assert_eq!(c.sip().timers.t1.as_millis(), 500);
    let t = c
        .trunk("CARRIER")
        .expect("names compare case-insensitively");
    assert_eq!(t.proxy.to_string(), "sip.example.net:5060");
    assert_eq!(t.domain.to_string(), "sip.example.net");
    assert_eq!(
        (t.register, t.expires.as_secs(), t.transport.name()),
        (true, 600, "udp")
    );
    assert_eq!(
        t.codecs.iter().map(|c| c.name()).collect::<Vec<_>>(),
        ["PCMU", "PCMA"]
    );
    assert_eq!(t.session_expires.map(|d| d.as_secs()), Some(1800));
    assert_eq!(t.min_se.as_secs(), 90);
    let a = c.agent("1000").unwrap();
    assert!(a.allows("127.0.0.1".parse().unwrap()));
    assert!(a.allows("::1".parse().unwrap()));
    assert!(a.allows("::ffff:127.0.0.1".parse().unwrap()));
    assert!(!a.allows("192.168.1.10".parse().unwrap()));
    assert_eq!(a.max_expires.as_secs(), 3600);
    assert_eq!(c.registrar().realm, "dialer");
    assert_eq!(c.media().rtp_ports.to_string(), "20000-29999");
    assert_eq!(c.api().listen.to_string(), "127.0.0.1:8021");

    let listing = c.effective_settings();
    for line in [
        "listen = \"0.0.0.0:5060\"",
        "t2_ms = 4000",
        "expires = 600",
        "keepalive = \"options\"",
        "allow = [\"127.0.0.0/8\", \"::1/128\"]",
        "rtp_ports = \"20000-29999\" (5000 RTP/RTCP pairs)",
        "listen = \"127.0.0.1:8021\"",
    ] {
        assert!(
            listing.lines().any(|l| l == line),
            "missing {line:?} in:\n{listing}"
        );
    }
}

#[test]
fn registrar_realm_defaults_to_its_domain() {
    let c = Config::from_str_named(
        &format!("{TRUNK}[registrar]\ndomain = \"Dialer.LAN\"\n"),
        "d",
        &no_env,
    )
    .unwrap();
    assert_eq!(c.registrar().realm, "dialer.lan");
}

#[test]
fn unknown_key_in_an_inline_table_entry_is_located() {
    let text = "trunk = [\n  { name = \"a\", proxy = \"p.example\", register = false },\n  { name = \"b\", proxy = \"q.example\", regster = false },\n]\n";
    let d = first(text);
    assert_eq!(loc(&d), (3, 38, "trunk[1].regster"));
    assert!(d.message.starts_with("unknown key `regster`"), "{d}");
}

#[test]
fn a_key_given_twice_is_located() {
    let d = first(&format!("{TRUNK}name = \"again\"\n"));
    assert_eq!((d.line, d.file.as_str()), (6, "dialer.toml"));
    assert!(d.message.contains("duplicate key"), "{d}");
}

#[test]
fn call_timeouts_default_to_a_minute_and_half_a_minute() {
    let c = Config::from_str_named(TRUNK, "dialer.toml", &no_env).unwrap();
    assert_eq!(c.calls().originate_timeout.as_secs(), 60);
    assert_eq!(c.calls().agent_ring_timeout.as_secs(), 30);
    let listing = c.effective_settings();
    for line in ["originate_timeout_s = 60", "agent_ring_timeout_s = 30"] {
        assert!(
            listing.lines().any(|l| l == line),
            "missing {line:?} in:\n{listing}"
        );
    }
}

#[test]
fn call_timeouts_are_read_from_the_calls_table() {
    let text = format!("{TRUNK}[calls]\noriginate_timeout_s = 3\nagent_ring_timeout_s = 7\n");
    let c = Config::from_str_named(&text, "dialer.toml", &no_env).unwrap();
    assert_eq!(c.calls().originate_timeout.as_secs(), 3);
    assert_eq!(c.calls().agent_ring_timeout.as_secs(), 7);
}

#[test]
fn call_timeouts_out_of_bounds_state_the_bounds() {
    let d = first(&format!("{TRUNK}[calls]\noriginate_timeout_s = 0\n"));
    assert_eq!(loc(&d), (7, 23, "calls.originate_timeout_s"));
    assert_eq!(d.message, "0 is out of range, expected 1 to 600 seconds");
    let d = first(&format!("{TRUNK}[calls]\nagent_ring_timeout_s = 601\n"));
    assert_eq!(loc(&d), (7, 24, "calls.agent_ring_timeout_s"));
    assert_eq!(d.message, "601 is out of range, expected 1 to 600 seconds");
    let d = first(&format!("{TRUNK}[calls]\nring_timeout_s = 5\n"));
    assert_eq!(d.key, "calls.ring_timeout_s", "{d}");
    assert!(d.message.starts_with("unknown key"), "{d}");
}
