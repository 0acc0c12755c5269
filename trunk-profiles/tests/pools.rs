//! `[[pool]]`, `[[trunk]] max_queue`, `[media] latch_window_ms` and `[security]`: defaults,
//! values read back, and every bad value reported at its key as `FILE:LINE:COLUMN: KEY: ...`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use trunk_profiles::{AgentMode, Config, Diagnostic, PoolStrategy};

const TRUNK: &str = r#"[[trunk]]
name = "carrier"
proxy = "sip.example.net"
username = "dialer"
password = "trunk-password"
"#;

/// Lines 6-11: agents 1000 and 1001.
const AGENTS: &str = r#"[[agent]]
extension = "1000"
password = "pw"
[[agent]]
extension = "1001"
password = "pw"
"#;

/// Lines 12-14: the smallest pool; keys added after it start on line 15.
const POOL: &str = r#"[[pool]]
name = "sales"
agents = ["1000", "1001"]
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

/// A file with the trunk, the two agents, the pool and `extra` from line 15 on.
fn pool_with(extra: &str) -> String {
    format!("{TRUNK}{AGENTS}{POOL}{extra}")
}

fn load(text: &str) -> Config {
    Config::from_str_named(text, "dialer.toml", &no_env).unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<String> {
    errors_in(text, Path::new(""))
}

fn errors_in(text: &str, dir: &Path) -> Vec<String> {
    match Config::from_str_in_dir(text, "dialer.toml", dir, &no_env) {
        Ok(_) => panic!("loaded, expected an error:\n{text}"),
        Err(e) => e.diagnostics().iter().map(Diagnostic::to_string).collect(),
    }
}

/// The one error `text` has.
fn error(text: &str) -> String {
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    all.into_iter().next().unwrap()
}

fn has_line(listing: &str, line: &str) {
    assert!(
        listing.lines().any(|l| l == line),
        "missing {line:?} in:\n{listing}"
    );
}

/// A directory with `tone.wav` and `busy.wav` in it.
fn dir_with_wavs(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["tone.wav", "busy.wav"] {
        std::fs::write(dir.join(f), b"RIFF").unwrap();
    }
    dir
}

#[test]
fn a_pool_with_only_name_and_agents_gets_every_default() {
    let c = load(&pool_with(""));
    assert_eq!(c.pools().len(), 1);
    let p = c.pool("sales").expect("the pool");
    assert!(c.pool("Sales").is_none(), "pool names are case-sensitive");
    assert_eq!(p.name, "sales");
    assert_eq!(p.agents, ["1000", "1001"]);
    assert_eq!(p.strategy, PoolStrategy::LongestIdle);
    assert_eq!(p.wrap_up, Duration::ZERO);
    assert_eq!((p.max_no_answer, p.agent_attempts), (3, 2));
    assert_eq!(p.agent_mode, AgentMode::Ring);
    assert_eq!(p.abandon_after, None);
    assert_eq!(p.abandon_message, None);
    assert!(!p.login_paused);
    assert_eq!(p.login_extension, None);
    assert_eq!(p.hangup_key, None);
    assert_eq!(p.connect_tone, None);
    assert_eq!(p.idle_audio, None);

    let listing = c.effective_settings();
    for line in [
        "[[pool]]",
        "name = \"sales\"",
        "agents = [\"1000\", \"1001\"]",
        "strategy = \"longest_idle\"",
        "wrap_up_s = 0",
        "max_no_answer = 3",
        "agent_attempts = 2",
        "agent_mode = \"ring\"",
        "abandon_after_ms = 30000 (not set: calls.agent_ring_timeout_s)",
        "abandon_message = (not set: hang up at once)",
        "login_paused = false",
    ] {
        has_line(&listing, line);
    }
}

#[test]
fn a_file_without_pools_has_none() {
    let c = load(TRUNK);
    assert!(c.pools().is_empty());
    assert!(c.pool("sales").is_none());
    assert!(!c.effective_settings().contains("[[pool]]"));
}

#[test]
fn every_ring_mode_key_is_read() {
    let dir = dir_with_wavs("every_ring_mode_key_is_read");
    let text = pool_with(
        "strategy = \"Fewest_Calls\"\nwrap_up_s = 3600\nmax_no_answer = 100\nagent_attempts = 10\nagent_mode = \"ring\"\nabandon_after_ms = 60000\nabandon_message = \"busy.wav\"\nlogin_paused = true\n",
    );
    let c = Config::from_str_in_dir(&text, "dialer.toml", &dir, &no_env).unwrap();
    let p = c.pool("sales").unwrap();
    assert_eq!(p.strategy, PoolStrategy::FewestCalls);
    assert_eq!(p.wrap_up.as_secs(), 3600);
    assert_eq!((p.max_no_answer, p.agent_attempts), (100, 10));
    assert_eq!(p.abandon_after, Some(Duration::from_secs(60)));
    assert_eq!(
        p.abandon_message.as_deref(),
        Some(dir.join("busy.wav").as_path())
    );
    assert!(p.login_paused);

    let listing = c.effective_settings();
    for line in [
        "strategy = \"fewest_calls\"",
        "wrap_up_s = 3600",
        "abandon_after_ms = 60000",
        &format!(
            "abandon_message = {:?}",
            dir.join("busy.wav").display().to_string()
        ),
        "login_paused = true",
    ] {
        has_line(&listing, line);
    }
}

#[test]
fn an_agent_may_belong_to_several_pools() {
    let text = pool_with("[[pool]]\nname = \"support\"\nagents = [\"1001\"]\n");
    let c = load(&text);
    let names: Vec<&str> = c.pools().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["sales", "support"]);
    assert_eq!(c.pool("support").unwrap().agents, ["1001"]);
}

#[test]
fn session_mode_takes_its_keys_but_not_login_by_extension() {
    let dir = dir_with_wavs("session_mode_takes_its_keys");
    let text = pool_with(
        "agent_mode = \"session\"\nhangup_key = \"#\"\nconnect_tone = \"tone.wav\"\nidle_audio = \"tone.wav\"\n",
    );
    let path = dir.join("dialer.toml");
    std::fs::write(&path, &text).unwrap();
    let c = Config::load(&path).expect("a session pool loads");
    let p = &c.pools()[0];
    assert_eq!(p.agent_mode, AgentMode::Session);
    assert_eq!(p.hangup_key, Some('#'));
    assert_eq!(
        p.connect_tone.as_deref(),
        Some(dir.join("tone.wav").as_path())
    );
    assert_eq!(
        p.idle_audio.as_deref(),
        Some(dir.join("tone.wav").as_path())
    );
    assert_eq!(
        error(&pool_with("agent_mode = \"Session\"\nlogin_extension = \"*55\"\n")),
        "dialer.toml:16:19: pool[0].login_extension: logging in by dialling an extension is not available yet, expected no login_extension (log agents in with POST /agents/{ext}/login)"
    );
    assert_eq!(
        error(&pool_with("agent_mode = \"hotdesk\"\n")),
        r#"dialer.toml:15:14: pool[0].agent_mode: unknown value "hotdesk", expected "ring" or "session""#
    );
}

#[test]
fn session_only_keys_are_refused_in_ring_mode_each_at_its_key() {
    let dir = dir_with_wavs("session_only_keys_are_refused");
    let text = pool_with(
        "login_extension = \"*55\"\nhangup_key = \"#\"\nconnect_tone = \"tone.wav\"\nidle_audio = \"tone.wav\"\n",
    );
    assert_eq!(
        errors_in(&text, &dir),
        [
            r#"dialer.toml:15:19: pool[0].login_extension: only with agent_mode = "session", expected agent_mode = "session" or no login_extension"#,
            r#"dialer.toml:16:14: pool[0].hangup_key: only with agent_mode = "session", expected agent_mode = "session" or no hangup_key"#,
            r#"dialer.toml:17:16: pool[0].connect_tone: only with agent_mode = "session", expected agent_mode = "session" or no connect_tone"#,
            r#"dialer.toml:18:14: pool[0].idle_audio: only with agent_mode = "session", expected agent_mode = "session" or no idle_audio"#,
        ]
    );
}

#[test]
fn session_only_values_are_checked_too() {
    assert_eq!(
        errors(&pool_with("hangup_key = \"E\"\n")),
        [
            r#"dialer.toml:15:14: pool[0].hangup_key: invalid value "E", expected one DTMF key: 0-9, *, # or A-D"#,
            r#"dialer.toml:15:14: pool[0].hangup_key: only with agent_mode = "session", expected agent_mode = "session" or no hangup_key"#,
        ]
    );
    let all = errors(&pool_with("hangup_key = \"12\"\n"));
    assert!(
        all[0].contains("invalid value \"12\", expected one DTMF key"),
        "{all:#?}"
    );
    let all = errors(&pool_with("login_extension = \"<55>\"\n"));
    assert!(
        all[0].starts_with("dialer.toml:15:19: pool[0].login_extension: invalid value \"<55>\""),
        "{all:#?}"
    );
    let all = errors(&pool_with("idle_audio = \"absent.wav\"\n"));
    assert!(
        all[0].starts_with("dialer.toml:15:14: pool[0].idle_audio: file \"absent.wav\" not found"),
        "{all:#?}"
    );
}

#[test]
fn pool_agents_must_be_agents_of_the_file_once_each() {
    let head = format!("{TRUNK}{AGENTS}[[pool]]\nname = \"sales\"\n");
    assert_eq!(
        error(&format!("{head}agents = [\"1000\", \"1005\"]\n")),
        r#"dialer.toml:14:19: pool[0].agents[1]: unknown agent "1005", expected the extension of an [[agent]] in this file"#
    );
    assert_eq!(
        error(&format!("{head}agents = [\"1000\", \"1001\", \"1000\"]\n")),
        r#"dialer.toml:14:27: pool[0].agents[2]: duplicate agent "1000" (already pool[0].agents[0]), expected each extension once"#
    );
    assert_eq!(
        error(&format!("{head}agents = []\n")),
        "dialer.toml:14:10: pool[0].agents: empty list, expected at least one [[agent]] extension"
    );
    assert_eq!(
        error(&head),
        "dialer.toml:12:1: pool[0].agents: missing required key"
    );
    assert_eq!(
        error(&format!("{TRUNK}{AGENTS}[[pool]]\nagents = [\"1000\"]\n")),
        "dialer.toml:12:1: pool[0].name: missing required key"
    );
}

#[test]
fn pool_names_are_non_empty_and_unique() {
    assert_eq!(
        error(&format!(
            "{TRUNK}{AGENTS}[[pool]]\nname = \"\"\nagents = [\"1000\"]\n"
        )),
        r#"dialer.toml:13:8: pool[0].name: invalid value "", expected a non-empty name without control characters"#
    );
    let second = "[[pool]]\nname = \"sales\"\nagents = [\"1001\"]\n";
    assert_eq!(
        error(&pool_with(second)),
        r#"dialer.toml:16:8: pool[1].name: duplicate pool name "sales" (already pool[0].name), expected unique names"#
    );
    // Case-sensitive, as Config::pool is.
    let c = load(&pool_with(&second.replace("sales", "Sales")));
    assert_eq!(c.pools().len(), 2);
}

#[test]
fn pool_values_out_of_bounds_state_the_bounds() {
    for (extra, expected) in [
        (
            "strategy = \"random\"\n",
            r#"dialer.toml:15:12: pool[0].strategy: unknown value "random", expected "longest_idle" or "fewest_calls""#,
        ),
        (
            "wrap_up_s = 3601\n",
            "dialer.toml:15:13: pool[0].wrap_up_s: 3601 is out of range, expected 0 to 3600 seconds",
        ),
        (
            "max_no_answer = 0\n",
            "dialer.toml:15:17: pool[0].max_no_answer: 0 is out of range, expected 1 to 100 unanswered offers in a row",
        ),
        (
            "agent_attempts = 11\n",
            "dialer.toml:15:18: pool[0].agent_attempts: 11 is out of range, expected 1 to 10 agents per answered customer",
        ),
        (
            "abandon_after_ms = 0\n",
            "dialer.toml:15:20: pool[0].abandon_after_ms: 0 is out of range, expected 1 to 60000 milliseconds",
        ),
        (
            "abandon_after_ms = 60001\n",
            "dialer.toml:15:20: pool[0].abandon_after_ms: 60001 is out of range, expected 1 to 60000 milliseconds",
        ),
    ] {
        assert_eq!(error(&pool_with(extra)), expected, "{extra}");
    }
    let d = error(&pool_with("login_paused = \"yes\"\n"));
    assert!(
        d.starts_with("dialer.toml:15:16: pool[0].login_paused: "),
        "{d}"
    );
    let d = error(&pool_with("agent = [\"1000\"]\n"));
    assert!(
        d.starts_with("dialer.toml:15:1: pool[0].agent: unknown key `agent`"),
        "{d}"
    );
}

#[test]
fn abandon_message_is_resolved_and_checked_like_ringback() {
    let dir = dir_with_wavs("abandon_message_is_resolved");
    let text = pool_with("abandon_message = \"nope.wav\"\n");
    let all = errors_in(&text, &dir);
    let path = dir.join("nope.wav").display().to_string();
    assert_eq!(
        all,
        [format!("dialer.toml:15:19: pool[0].abandon_message: file {path:?} not found (relative paths are resolved against the config file's directory), expected an existing WAV file")]
    );
}

#[test]
fn max_queue_defaults_to_a_thousand_and_is_bounded() {
    let c = load(TRUNK);
    assert_eq!(c.trunks()[0].max_queue, 1000);
    has_line(&c.effective_settings(), "max_queue = 1000");

    let c = load(&format!("{TRUNK}max_channels = 10\nmax_queue = 0\n"));
    assert_eq!(c.trunks()[0].max_queue, 0);
    let c = load(&format!("{TRUNK}max_cps = 2\nmax_queue = 100000\n"));
    assert_eq!(c.trunks()[0].max_queue, 100_000);

    assert_eq!(
        error(&format!("{TRUNK}max_channels = 10\nmax_queue = 100001\n")),
        "dialer.toml:7:13: trunk[0].max_queue: 100001 is out of range, expected 0 to 100000 calls"
    );
    assert_eq!(
        error(&format!("{TRUNK}max_queue = 50\n")),
        "dialer.toml:6:13: trunk[0].max_queue: max_queue has no effect without a limit to wait for, expected max_channels or max_cps too"
    );
}

#[test]
fn latch_window_defaults_to_two_seconds_and_zero_never_latches() {
    let c = load(TRUNK);
    assert_eq!(c.media().latch_window, Duration::from_millis(2000));
    has_line(&c.effective_settings(), "latch_window_ms = 2000");

    let c = load(&format!("{TRUNK}[media]\nlatch_window_ms = 0\n"));
    assert_eq!(c.media().latch_window, Duration::ZERO);
    has_line(
        &c.effective_settings(),
        "latch_window_ms = 0 (never latches: only the SDP address)",
    );
    let c = load(&format!("{TRUNK}[media]\nlatch_window_ms = 60000\n"));
    assert_eq!(c.media().latch_window, Duration::from_secs(60));

    assert_eq!(
        error(&format!("{TRUNK}[media]\nlatch_window_ms = 60001\n")),
        "dialer.toml:7:19: media.latch_window_ms: 60001 is out of range, expected 0 to 60000 milliseconds (0 never latches)"
    );
}

#[test]
fn media_timeout_zero_is_no_timeout_at_all() {
    let c = load(&format!("{TRUNK}[media]\nmedia_timeout_s = 0\n"));
    assert_eq!(c.media().media_timeout, None);
    has_line(&c.effective_settings(), "media_timeout_s = 0 (off)");
    let c = load(TRUNK);
    assert_eq!(c.media().media_timeout, Some(Duration::from_secs(30)));
}

#[test]
fn security_defaults_without_the_table() {
    let c = load(TRUNK);
    let s = c.security();
    assert_eq!(s.max_auth_failures, 5);
    assert_eq!(s.ban_window, Duration::from_secs(600));
    assert_eq!(s.ban, Duration::from_secs(3600));
    assert!(s.ban_exempt.is_empty());
    assert_eq!(s.max_requests_per_s, 50);
    assert_eq!(s.max_server_transactions, 50_000);
    assert!(!s.is_exempt("127.0.0.1".parse().unwrap()));
    let listing = c.effective_settings();
    for line in [
        "[security]",
        "max_auth_failures = 5",
        "ban_window_s = 600",
        "ban_s = 3600",
        "ban_exempt = []",
        "max_requests_per_s = 50",
        "max_server_transactions = 50000",
    ] {
        has_line(&listing, line);
    }
}

#[test]
fn security_values_are_read_and_ban_zero_bans_nobody() {
    let c = load(&format!(
        "{TRUNK}[security]\nmax_auth_failures = 1000\nban_window_s = 86400\nban_s = 0\nban_exempt = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.1\"]\n"
    ));
    let s = c.security();
    assert_eq!(s.max_auth_failures, 1000);
    assert_eq!(s.ban_window, Duration::from_secs(86_400));
    assert_eq!(s.ban, Duration::ZERO);
    assert!(s.is_exempt("10.1.2.3".parse().unwrap()));
    assert!(s.is_exempt("::ffff:10.1.2.3".parse().unwrap()));
    assert!(s.is_exempt("2001:db8::5".parse().unwrap()));
    assert!(s.is_exempt("192.0.2.1".parse().unwrap()));
    assert!(!s.is_exempt("192.0.2.2".parse().unwrap()));
    let listing = c.effective_settings();
    has_line(&listing, "ban_s = 0 (failures logged, nobody banned)");
    has_line(
        &listing,
        "ban_exempt = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.1/32\"]",
    );
    let c = load(&format!("{TRUNK}[security]\nban_s = 2592000\n"));
    assert_eq!(c.security().ban.as_secs(), 2_592_000);
    let c = load(&format!(
        "{TRUNK}[security]\nmax_requests_per_s = 5\nmax_server_transactions = 100\n"
    ));
    assert_eq!(c.security().max_requests_per_s, 5);
    assert_eq!(c.security().max_server_transactions, 100);
    let listing = c.effective_settings();
    has_line(&listing, "max_requests_per_s = 5");
    has_line(&listing, "max_server_transactions = 100");
}

#[test]
fn security_values_out_of_bounds_state_the_bounds() {
    for (extra, expected) in [
        (
            "max_auth_failures = 0\n",
            "dialer.toml:7:21: security.max_auth_failures: 0 is out of range, expected 1 to 1000 failures",
        ),
        (
            "max_auth_failures = 1001\n",
            "dialer.toml:7:21: security.max_auth_failures: 1001 is out of range, expected 1 to 1000 failures",
        ),
        (
            "ban_window_s = 0\n",
            "dialer.toml:7:16: security.ban_window_s: 0 is out of range, expected 1 to 86400 seconds",
        ),
        (
            "ban_window_s = 86401\n",
            "dialer.toml:7:16: security.ban_window_s: 86401 is out of range, expected 1 to 86400 seconds",
        ),
        (
            "ban_s = 2592001\n",
            "dialer.toml:7:9: security.ban_s: 2592001 is out of range, expected 0 to 2592000 seconds (0 logs failures and bans nobody)",
        ),
        (
            "max_requests_per_s = 0\n",
            "dialer.toml:7:22: security.max_requests_per_s: 0 is out of range, expected 1 to 100000 requests per second",
        ),
        (
            "max_server_transactions = 99\n",
            "dialer.toml:7:27: security.max_server_transactions: 99 is out of range, expected 100 to 1000000 transactions",
        ),
    ] {
        assert_eq!(error(&format!("{TRUNK}[security]\n{extra}")), expected, "{extra}");
    }
    let d = error(&format!(
        "{TRUNK}[security]\nban_exempt = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n"
    ));
    assert!(
        d.starts_with("dialer.toml:7:29: security.ban_exempt[1]: invalid CIDR \"10.0.0.0/33\""),
        "{d}"
    );
    let d = error(&format!("{TRUNK}[security]\nban_exempt = \"10.0.0.0/8\"\n"));
    assert!(
        d.starts_with("dialer.toml:7:14: security.ban_exempt: "),
        "{d}"
    );
    let d = error(&format!("{TRUNK}[security]\nban_seconds = 5\n"));
    assert!(
        d.starts_with("dialer.toml:7:1: security.ban_seconds: unknown key `ban_seconds`"),
        "{d}"
    );
}
