//! `[security]` against the real `dialer run` on loopback, attacked with sipvicious (Debian
//! `sipvicious`): `svwar` over an extension range holding the configured extensions finds
//! none (every answer is the same 401, Asterisk's `alwaysauthreject`); `svcrack` against a real
//! extension gets its source banned after `max_auth_failures`, after which even the right
//! password from that address (a digest REGISTER by sip-core's digest client) gets no answer
//! until `DELETE /bans/{ip}` lifts the ban. Every failure is one line on the dialer's stderr,
//! and the shipped fail2ban filter (`contrib/fail2ban/dialer.conf`) finds its source.
//!
//! Each test starts its own dialer on free ports, bounds every wait, and leaves nothing
//! running: the peers are killed by their PID (process group) when they are dropped.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ::dialer::client::Client;
use ::dialer::registrar::{ban_line, failure_line, AuthFailure, Ban, FailureReason};
use regex::Regex;
use scenario_tests::interop::phone::Phone;
use scenario_tests::interop::ports::{free_port, free_udp_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::process::Stream;
use scenario_tests::interop::{dialer, poll_until, sipvicious, Peer, TestDir};
use sip_core::message::Response;
use sip_core::time::Time;

const PASSWORD: &str = "Agent-1000-pw";

// ---------------------------------------------------------------------------------------
// The fail2ban filter, read as fail2ban reads it.

/// fail2ban's `<HOST>` (0.10 and later: IPv4, IPv4-mapped, IPv6, a DNS name), without the
/// look-behind the regex crate lacks.
const FAIL2BAN_HOST: &str = r"(?:(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})|\[?(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4})?)\]?|(?P<dns>[\w\-.^_]*\w))";

fn filter_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../contrib/fail2ban/dialer.conf")
}

/// The filter's `datepattern` and `failregex`, translated to Rust regexes.
struct Filter {
    date: Regex,
    fail: Regex,
}

impl Filter {
    fn load() -> Filter {
        let text = std::fs::read_to_string(filter_path()).expect("contrib/fail2ban/dialer.conf");
        let value = |key: &str| -> String {
            text.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once('=')?;
                    (k.trim() == key).then(|| v.trim().to_owned())
                })
                .unwrap_or_else(|| panic!("{key} in the filter"))
        };
        let failregex = value("failregex");
        assert!(failregex.contains("<HOST>"), "{failregex}");
        // fail2ban's config files escape % as %%.
        let date = value("datepattern")
            .replace("%%", "%")
            .replace("{^LN-BEG}", "^")
            .replace("%Y", r"\d{4}")
            .replace("%m", r"\d{2}")
            .replace("%d", r"\d{2}")
            .replace("%H", r"\d{2}")
            .replace("%M", r"\d{2}")
            .replace("%S", r"\d{2}")
            .replace("%z", r"(?:Z|[+-]\d{2}:?\d{2})");
        Filter {
            date: Regex::new(&date).expect("the datepattern translates"),
            fail: Regex::new(&failregex.replace("<HOST>", FAIL2BAN_HOST))
                .expect("the failregex translates"),
        }
    }

    /// The host fail2ban would ban for `line`, if the line is a failure: the date is cut
    /// off first, as fail2ban does, then the failregex applies to the rest.
    fn host(&self, line: &str) -> Option<String> {
        let date = self.date.find(line)?;
        let caps = self.fail.captures(&line[date.end()..])?;
        ["ip4", "ip6", "dns"]
            .iter()
            .find_map(|g| caps.name(g))
            .map(|m| m.as_str().to_owned())
    }
}

#[test]
fn the_fail2ban_filter_finds_the_source_of_every_failure_line_and_nothing_else() {
    let filter = Filter::load();
    let reasons = [
        FailureReason::UnknownExtension,
        FailureReason::WrongPassword,
        FailureReason::DisallowedNetwork,
        FailureReason::StaleNonce,
        FailureReason::UsernameMismatch,
        FailureReason::BadCredentials,
    ];
    for (source, host) in [
        ("203.0.113.9:5060", "203.0.113.9"),
        ("[::ffff:198.51.100.7]:5062", "198.51.100.7"),
        ("[2001:db8::9]:5060", "2001:db8::9"),
    ] {
        for reason in reasons {
            let failure = AuthFailure {
                at: Time::ZERO,
                source: source.parse().unwrap(),
                extension: "1000".into(),
                reason,
                failures: 1,
                banned: None,
            };
            let line = failure_line(1_796_644_800, &failure);
            assert_eq!(filter.host(&line).as_deref(), Some(host), "{line}");
        }
    }
    // An extension crafted to name another host changes nothing.
    let failure = AuthFailure {
        at: Time::ZERO,
        source: "203.0.113.9:5060".parse().unwrap(),
        extension: "x source=192.0.2.1 reason=wrong_password".into(),
        reason: FailureReason::UnknownExtension,
        failures: 1,
        banned: None,
    };
    let line = failure_line(1_796_644_800, &failure);
    assert_eq!(filter.host(&line).as_deref(), Some("203.0.113.9"), "{line}");
    // The ban line and the dialer's other lines are no failures.
    let ban = Ban {
        address: "203.0.113.9".parse().unwrap(),
        since: Time::ZERO,
        until: Time(Duration::from_secs(3600)),
        failures: 5,
    };
    for line in [
        ban_line(1_796_644_800, &ban),
        "dialer: SIP on 127.0.0.1:5060".to_owned(),
        "2026-12-07T12:00:00Z INFO dialer::registrar: ban lifted source=203.0.113.9".to_owned(),
    ] {
        assert_eq!(filter.host(&line), None, "{line}");
    }
}

// ---------------------------------------------------------------------------------------
// The running dialer.

struct Setup {
    dir: TestDir,
    binary: PathBuf,
    sip: SocketAddr,
    api_port: u16,
    run: Option<Peer>,
}

impl Setup {
    /// `dialer run` with agents 1000 and 1001 (allowed from loopback) and `security` as its
    /// `[security]` table.
    fn start(name: &str, security: &str) -> Setup {
        let binary = dialer::require(&["run", "bans", "unban"]).unwrap_or_else(|e| panic!("{e}"));
        let dir = TestDir::new(name).expect("temp dir");
        let sip_port = free_udp_port(LOOPBACK).expect("dialer SIP port");
        let api_port = free_port(LOOPBACK).expect("dialer API port");
        let trunk_port = free_udp_port(LOOPBACK).expect("a port where no carrier listens");
        let rtp = free_udp_range(LOOPBACK, 10).expect("dialer RTP range");
        let config = dir.join("dialer.toml");
        std::fs::write(
            &config,
            format!(
                r#"[sip]
listen = "127.0.0.1:{sip_port}"

[[trunk]]
name = "carrier"
proxy = "127.0.0.1:{trunk_port}"
register = false
transport = "udp"
keepalive = "none"

[[agent]]
extension = "1000"
password = "{PASSWORD}"
allow = ["127.0.0.0/8"]

[[agent]]
extension = "1001"
password = "another-pw"
allow = ["127.0.0.0/8"]

[registrar]
realm = "dialer.test"

[media]
rtp_ports = "{rtp}-{rtp_last}"

[security]
{security}

[api]
listen = "127.0.0.1:{api_port}"
"#,
                rtp_last = rtp + 9,
            ),
        )
        .expect("writing dialer.toml");
        dialer::check_config(&binary, &config).expect("the configuration is valid");
        let mut cmd = Command::new(&binary);
        cmd.args(["run", "--config"])
            .arg(&config)
            .current_dir(dir.path());
        let run = Peer::spawn("dialer-run", cmd, dir.path()).expect("dialer run starts");
        let api = SocketAddr::new(LOOPBACK, api_port);
        poll_until(
            "dialer run's API accepting connections",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let up = TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_ok();
                (up || run.status().is_some()).then_some(())
            },
        )
        .expect("dialer run comes up");
        assert!(run.status().is_none(), "dialer run exited:\n{}", run.tail());
        Setup {
            dir,
            binary,
            sip: SocketAddr::new(LOOPBACK, sip_port),
            api_port,
            run: Some(run),
        }
    }

    fn run(&self) -> &Peer {
        self.run.as_ref().expect("dialer run")
    }

    fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    fn client(&self) -> Client {
        Client::new(&self.api_url(), None).expect("API client")
    }

    fn target(&self) -> String {
        format!("udp://{}:{}", self.sip.ip(), self.sip.port())
    }

    /// `dialer ARGS --api URL`: exit success and standard output.
    fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.binary)
            .args(args)
            .args(["--api", &self.api_url()])
            .output()
            .expect("running the dialer CLI");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The dialer's lines that report a failed authentication.
    fn failure_lines(&self) -> Vec<String> {
        self.run()
            .output(Stream::Stderr)
            .lines()
            .filter(|l| l.contains("authentication failed"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            let _ = run.stop("TERM", Duration::from_secs(5));
        }
    }
}

/// A response reduced to what a scanner can compare: status, reason, header names and the
/// challenge without its nonce.
fn shape(response: &Response) -> String {
    let nonce = Regex::new(r#"nonce="[^"]*""#).unwrap();
    let mut out = format!("{} {}", response.status, response.reason);
    let text = String::from_utf8_lossy(&response.to_bytes()).into_owned();
    for line in text.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        out.push_str(&format!("\n{name}"));
        if name.eq_ignore_ascii_case("WWW-Authenticate") {
            out.push_str(&format!(":{}", nonce.replace(value, "nonce=N")));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------

#[test]
fn svwar_over_a_range_holding_the_configured_extensions_finds_none() {
    sipvicious::require("svwar").unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::start("security-svwar", "max_auth_failures = 5");
    let range = "-e990-1010";
    let target = setup.target();
    for args in [
        vec![range, target.as_str()],
        // Past its sanity check ("an authentication request for an unknown extension").
        vec!["--force", range, target.as_str()],
        vec!["--force", "-m", "OPTIONS", range, target.as_str()],
    ] {
        let run = sipvicious::run("svwar", &args, setup.dir.path(), Duration::from_secs(90))
            .expect("svwar runs");
        assert!(run.exited, "svwar {args:?} did not finish:\n{}", run.output);
        assert!(
            run.output.contains("found nothing"),
            "svwar {args:?}:\n{}",
            run.output
        );
        for found in ["exists", "reqauth", "noauth", "weird"] {
            assert!(
                !run.output.contains(found),
                "svwar {args:?} found something:\n{}",
                run.output
            );
        }
    }
    // Every extension of the range, known or not, gets the same answer, up to the nonce.
    let mut shapes = Vec::new();
    for ext in 990..=1010 {
        let mut probe = Phone::new(setup.sip, &ext.to_string(), "x");
        let response = probe
            .send(Duration::from_secs(3))
            .unwrap_or_else(|| panic!("no answer for {ext}"));
        shapes.push((ext, shape(&response)));
    }
    let reference = shapes[0].1.clone();
    assert!(reference.starts_with("401 "), "{reference}");
    for (ext, shape) in &shapes {
        assert_eq!(shape, &reference, "extension {ext}");
    }
    // Asking without credentials is no failure: nobody is logged or banned.
    assert_eq!(setup.failure_lines(), Vec::<String>::new());
    assert!(setup.client().bans().expect("GET /bans").is_empty());
    // The agents still register.
    let mut agent = Phone::new(setup.sip, "1000", PASSWORD);
    assert_eq!(agent.register(Duration::from_secs(3)), Some(200));
}

#[test]
fn svcrack_gets_its_source_banned_and_the_right_password_waits_for_the_unban() {
    sipvicious::require("svcrack").unwrap_or_else(|e| panic!("{e}"));
    let setup = Setup::start(
        "security-svcrack",
        "max_auth_failures = 4\nban_window_s = 600\nban_s = 3600",
    );
    let words: Vec<String> = (1..=12).map(|i| format!("guess{i}")).collect();
    let dictionary = setup.dir.join("passwords.txt");
    std::fs::write(&dictionary, words.join("\n") + "\n").expect("dictionary");
    let dictionary = dictionary.to_string_lossy().into_owned();
    let target = setup.target();
    let run = sipvicious::run(
        "svcrack",
        &["-u1000", "-d", &dictionary, "--maximumtime=3", &target],
        setup.dir.path(),
        Duration::from_secs(60),
    )
    .expect("svcrack runs");
    assert!(
        !run.output.contains("password is"),
        "svcrack cracked it:\n{}",
        run.output
    );

    // Four failures, one line each, then the ban: later guesses are dropped unanswered.
    let banned = setup
        .run()
        .wait_for_line(
            &Regex::new(r"WARN dialer::registrar: source banned source=\S+ failures=4 ").unwrap(),
            Duration::from_secs(10),
        )
        .expect("the cracker's source is banned");
    let failures = setup.failure_lines();
    assert_eq!(failures.len(), 4, "{failures:#?}\n{banned}");
    let filter = Filter::load();
    let bans = setup.client().bans().expect("GET /bans");
    assert_eq!(bans.len(), 1, "{bans:?}");
    let ban = &bans[0];
    let source: IpAddr = ban.address;
    assert_eq!(source, LOOPBACK, "svcrack sends from 127.0.0.1");
    assert_eq!((ban.failures, ban.until - ban.since), (4, 3600));
    let line_re = Regex::new(concat!(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ WARN dialer::registrar: ",
        r"authentication failed source=\S+ extension=1000 reason=wrong_password$"
    ))
    .unwrap();
    for line in &failures {
        assert!(line_re.is_match(line), "{line}");
        assert_eq!(filter.host(line), Some(source.to_string()), "{line}");
    }
    // `dialer bans` lists it, as a table and as JSON.
    let (ok, table) = setup.cli(&["bans"]);
    assert!(
        ok && table.contains("127.0.0.1") && table.contains("ADDRESS"),
        "{table}"
    );
    let (ok, json) = setup.cli(&["bans", "--json"]);
    assert!(ok, "{json}");
    let listed: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(listed[0]["address"], "127.0.0.1", "{json}");
    assert_eq!(listed[0]["failures"], 4, "{json}");

    // The right password from the banned address: no answer at all.
    let mut agent = Phone::new(setup.sip, "1000", PASSWORD);
    assert_eq!(agent.register(Duration::from_secs(2)), None);

    // DELETE /bans/127.0.0.1 lifts it (204), a second time it is not banned (404).
    assert!(setup.client().unban(source).expect("DELETE /bans/{ip}"));
    assert!(!setup.client().unban(source).expect("DELETE /bans/{ip}"));
    assert!(setup.client().bans().expect("GET /bans").is_empty());
    let (ok, _) = setup.cli(&["unban", "127.0.0.1"]);
    assert!(!ok, "dialer unban of an address not banned fails");

    // Now the right password registers.
    assert_eq!(agent.register(Duration::from_secs(3)), Some(200));
    assert_eq!(setup.failure_lines().len(), 4);
}
