//! Secret values never show up in Debug, Display, errors or `effective_settings`.

use trunk_profiles::{Config, Secret};

const TRUNK_PW: &str = "trunk-pw-Xq7";
const ENV_PW: &str = "env-pw-Zr9";
const AGENT_PW: &str = "agent-pw-Mk3";
const A1: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "api-token-Wd5-long-enough";

fn env(name: &str) -> Option<String> {
    (name == "PBX_PW").then(|| ENV_PW.to_string())
}

fn file() -> String {
    format!(
        r#"[[trunk]]
name = "carrier"
proxy = "sip.example.net"
username = "dialer"
password = "{TRUNK_PW}"

[[trunk]]
name = "pbx"
proxy = "pbx.lan"
username = "dialer"
password_env = "PBX_PW"

[[agent]]
extension = "1000"
password = "{AGENT_PW}"

[[agent]]
extension = "1001"
a1_hash = "{A1}"

[api]
listen = "0.0.0.0:8021"
token = "{TOKEN}"
"#
    )
}

fn assert_no_secret(what: &str, text: &str) {
    for s in [TRUNK_PW, ENV_PW, AGENT_PW, A1, TOKEN] {
        assert!(!text.contains(s), "{what} contains {s:?}:\n{text}");
    }
}

#[test]
fn loaded_secrets_are_reachable_only_through_expose() {
    let c = Config::from_str_named(&file(), "dialer.toml", &env).unwrap();
    assert_eq!(
        c.trunk("carrier")
            .unwrap()
            .credentials
            .as_ref()
            .unwrap()
            .password
            .expose(),
        TRUNK_PW
    );
    assert_eq!(
        c.trunk("pbx")
            .unwrap()
            .credentials
            .as_ref()
            .unwrap()
            .password
            .expose(),
        ENV_PW
    );
    assert_eq!(c.api().token.as_ref().map(Secret::expose), Some(TOKEN));
    assert_no_secret("Debug", &format!("{c:?}"));
    assert_no_secret("pretty Debug", &format!("{c:#?}"));
    assert_no_secret("effective_settings", &c.effective_settings());
    let cred = c.trunk("carrier").unwrap().credentials.clone().unwrap();
    assert_no_secret("Display", &format!("{}", cred.password));
}

#[test]
fn effective_settings_mask_secrets_but_say_where_they_came_from() {
    let c = Config::from_str_named(&file(), "dialer.toml", &env).unwrap();
    let listing = c.effective_settings();
    assert!(
        listing.lines().any(|l| l == "password = *** (inline)"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l == "password = *** (from $PBX_PW)"),
        "{listing}"
    );
    assert!(listing.lines().any(|l| l == "a1_hash = ***"), "{listing}");
    assert!(
        listing.lines().any(|l| l == "token = *** (inline)"),
        "{listing}"
    );
}

#[test]
fn errors_in_a_file_with_secrets_do_not_quote_them() {
    // Other problems in the same file: the secrets must not leak into their messages.
    let bad = file()
        .replace("pbx.lan", "bad_host")
        .replace("\"1001\"", "\"1000\"");
    let e = Config::from_str_named(&bad, "dialer.toml", &env).unwrap_err();
    assert!(e.diagnostics().len() >= 2, "{e}");
    assert_no_secret("errors", &e.to_string());
    assert_no_secret("error Debug", &format!("{e:?}"));
}

#[test]
fn errors_about_a_secret_value_describe_it_without_quoting_it() {
    // A numeric password is a type error; serde would quote the number.
    let e = Config::from_str_named(
        &file().replace(&format!("\"{TRUNK_PW}\""), "73519"),
        "dialer.toml",
        &env,
    )
    .unwrap_err();
    let d = &e.diagnostics()[0];
    assert_eq!((d.line, d.key.as_str()), (5, "trunk[0].password"));
    assert!(!e.to_string().contains("73519"), "{e}");
    assert!(d.message.contains("expected a string"), "{d}");

    let e = Config::from_str_named(&file().replace(A1, "not-a-hash-Pp4"), "dialer.toml", &env)
        .unwrap_err();
    assert!(!e.to_string().contains("not-a-hash-Pp4"), "{e}");
    assert_eq!(e.diagnostics()[0].key, "agent[1].a1_hash");

    let e =
        Config::from_str_named(&file().replace(TOKEN, "tok-Hh2"), "dialer.toml", &env).unwrap_err();
    assert!(!e.to_string().contains("tok-Hh2"), "{e}");
    assert_eq!(e.diagnostics()[0].key, "api.token");

    let e =
        Config::from_str_named(&file().replace(TOKEN, "tok-Hh2"), "dialer.toml", &env).unwrap_err();
    assert!(!format!("{e:?}").contains("tok-Hh2"), "{e:?}");
}
