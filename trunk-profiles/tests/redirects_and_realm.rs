//! `[[trunk]] redirect_hosts` and `realm`: where a call's 3xx may go and which digest realm
//! a call's INVITE answers; typed, validated with file:line:column, and shown in the
//! effective settings.

use trunk_profiles::{Config, Diagnostic, Host};

const TRUNK: &str = r#"[[trunk]]
name = "carrier"
proxy = "sip.example.net:5080"
username = "dialer"
password = "trunk-password"
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn load(text: &str) -> Result<Config, Vec<Diagnostic>> {
    Config::from_str_named(text, "dialer.toml", &no_env).map_err(|e| e.diagnostics().to_vec())
}

#[test]
fn redirect_hosts_default_to_the_proxys_host_only() {
    let c = load(TRUNK).unwrap();
    assert_eq!(
        c.trunks()[0].redirect_hosts,
        [Host::Name("sip.example.net".into())]
    );
    assert!(c
        .effective_settings()
        .contains("redirect_hosts = [\"sip.example.net\"]"));
}

#[test]
fn redirect_hosts_take_names_and_ip_literals_lowercased() {
    let text = format!(
        "{TRUNK}redirect_hosts = [\"GW1.Example.net\", \"192.0.2.51\", \"[2001:db8::5]\"]\n"
    );
    let c = load(&text).unwrap();
    assert_eq!(
        c.trunks()[0].redirect_hosts,
        [
            Host::Name("gw1.example.net".into()),
            Host::Ipv4("192.0.2.51".parse().unwrap()),
            Host::Ipv6("2001:db8::5".parse().unwrap()),
        ]
    );
    assert!(c
        .effective_settings()
        .contains("redirect_hosts = [\"gw1.example.net\", \"192.0.2.51\", \"[2001:db8::5]\"]"));
}

#[test]
fn an_empty_redirect_hosts_follows_no_redirect_and_says_so() {
    let c = load(&format!("{TRUNK}redirect_hosts = []\n")).unwrap();
    assert!(c.trunks()[0].redirect_hosts.is_empty());
    assert!(c
        .effective_settings()
        .contains("redirect_hosts = [] (no redirect is followed)"));
}

#[test]
fn bad_redirect_hosts_are_refused_naming_the_element_and_its_position() {
    for entry in [
        "",
        "sip:gw.example.net",
        "gw.example.net:5060",
        "2001:db8::5",
        "*.example.net",
        "192.0.2",
    ] {
        let text = format!("{TRUNK}redirect_hosts = [\"ok.example.net\", \"{entry}\"]\n");
        let errors = load(&text).expect_err(entry);
        let d = &errors[0];
        assert_eq!(d.key, "trunk[0].redirect_hosts[1]", "{entry}: {errors:?}");
        assert_eq!((d.line, d.column), (6, 37), "{entry}: {errors:?}");
        assert!(d.to_string().starts_with("dialer.toml:6:37: "), "{d}");
    }
    let text = format!("{TRUNK}redirect_hosts = [\"gw.example.net\", \"GW.example.net\"]\n");
    let errors = load(&text).unwrap_err();
    assert_eq!(errors[0].key, "trunk[0].redirect_hosts[1]");
    assert!(
        errors[0].to_string().contains("duplicate host"),
        "{errors:?}"
    );
    let errors = load(&format!("{TRUNK}redirect_hosts = \"gw.example.net\"\n")).unwrap_err();
    assert_eq!(errors[0].line, 6, "{errors:?}");
}

#[test]
fn realm_is_typed_with_the_credentials_and_listed() {
    let c = load(&format!("{TRUNK}realm = \"sip.example.net\"\n")).unwrap();
    let creds = c.trunks()[0].credentials.as_ref().unwrap();
    assert_eq!(creds.realm.as_deref(), Some("sip.example.net"));
    assert!(c
        .effective_settings()
        .contains("realm = \"sip.example.net\""));
    let c = load(TRUNK).unwrap();
    assert_eq!(c.trunks()[0].credentials.as_ref().unwrap().realm, None);
    assert!(c
        .effective_settings()
        .contains("realm = (any realm the trunk sends)"));
}

#[test]
fn a_bad_realm_or_one_without_a_password_is_refused_at_its_line() {
    let errors = load(&format!("{TRUNK}realm = \"a\\\"b\"\n")).unwrap_err();
    assert_eq!(
        (errors[0].line, errors[0].column, errors[0].key.as_str()),
        (6, 9, "trunk[0].realm")
    );
    let text =
        "[[trunk]]\nname = \"ip\"\nproxy = \"192.0.2.50\"\nregister = false\nrealm = \"x\"\n";
    let errors = load(text).unwrap_err();
    assert_eq!(
        (errors[0].line, errors[0].key.as_str()),
        (5, "trunk[0].realm")
    );
    assert!(errors[0].message.contains("without password"), "{errors:?}");
}
