//! One call through the real `dialer run`: SIPp as the carrier on 127.0.0.1, baresip as agent
//! 1000 registered with a password, `dialer call` following the call, and the CDR line that
//! `dialer run` prints on its standard output when the call ends.
//!
//! The configuration comes from `tests/interop/dialer/call_case.toml.tmpl`; what a test varies
//! (the dialer's SIP address, the agent's codecs and allowed networks, the ring timeouts) is
//! in [`CallOptions`].

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex::Regex;

use super::audio::{self, Law};
use super::baresip::{AnswerMode, Baresip, BaresipConfig};
use super::ports::{free_baresip_port, free_port, free_udp_range, loopback, LOOPBACK};
use super::sipp::{Sipp, SippConfig, SippOutcome};
use super::trace::TracedMessage;
use super::{dialer, poll_until, require_tools, HarnessError, Peer, TestDir};

/// The trunk's digest password (SIPp checks it).
pub const TRUNK_PASSWORD: &str = "s3cret";
/// Agent 1000's password at the dialer's registrar.
pub const AGENT_PASSWORD: &str = "agentpw";
/// Ringback (425 Hz), carrier (440 Hz) and agent (1000 Hz) tones.
pub const TONES: [f64; 3] = [425.0, 440.0, 1000.0];
/// The carrier's 200 names this loopback host as Contact (nothing listens there).
pub const CONTACT_HOST: u8 = 3;

/// What a test changes in the dialer's configuration.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// `[[trunk]] codecs` for the carrier trunk.
    pub trunk_codecs: Vec<String>,
    /// `[[agent]] codecs` for agent 1000.
    pub agent_codecs: Vec<String>,
    /// `[[agent]] allow` for agent 1000.
    pub agent_allow: Vec<String>,
    /// `[calls] originate_timeout_s`.
    pub originate_timeout_s: u32,
    /// `[calls] agent_ring_timeout_s`.
    pub agent_ring_timeout_s: u32,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            trunk_codecs: vec!["PCMA".into()],
            agent_codecs: vec!["PCMA".into(), "PCMU".into()],
            agent_allow: vec!["127.0.0.0/8".into()],
            originate_timeout_s: 60,
            agent_ring_timeout_s: 30,
        }
    }
}

/// The files and ports of one test's dialer.
#[derive(Debug)]
pub struct CallTest {
    /// The test directory (configuration, logs, traces, recordings).
    pub dir: TestDir,
    /// The `dialer` binary.
    pub dialer: PathBuf,
    /// Where `dialer run` listens for SIP.
    pub sip: SocketAddr,
    /// The control API's port on 127.0.0.1.
    pub api_port: u16,
}

impl CallTest {
    /// A dialer listening for SIP on 127.0.0.1; fails when a tool or a dialer subcommand is
    /// missing.
    pub fn new(name: &str, tools: &[&str]) -> Result<CallTest, HarnessError> {
        Self::on(name, tools, LOOPBACK)
    }

    /// A dialer listening for SIP on `sip_ip`.
    pub fn on(name: &str, tools: &[&str], sip_ip: IpAddr) -> Result<CallTest, HarnessError> {
        require_tools(tools)?;
        let dialer = dialer::require(&["run", "call"])?;
        Ok(CallTest {
            dir: TestDir::new(name)?,
            dialer,
            sip: SocketAddr::new(sip_ip, free_port(sip_ip)?),
            api_port: free_port(LOOPBACK)?,
        })
    }

    /// The control API's URL.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// A client of the control API.
    pub fn client(&self) -> Result<::dialer::client::Client, HarnessError> {
        ::dialer::client::Client::new(&self.api_url(), None)
            .map_err(|e| HarnessError::Setup(format!("API client: {e}")))
    }

    /// Writes (and checks with `dialer config check`) the configuration for a carrier at
    /// `carrier`, with a 3-cycle ringback WAV.
    pub fn config(
        &self,
        carrier: SocketAddr,
        options: &CallOptions,
    ) -> Result<PathBuf, HarnessError> {
        let ringback = self.dir.join("ringback.wav");
        audio::ringback_wav(&ringback, 3)?;
        // The SIP port was found free and released, so a free range may hold it; the
        // dialer rejects a range containing its SIP port.
        let mut rtp = free_udp_range(self.sip.ip(), 40)?;
        for _ in 0..20 {
            if !(rtp..rtp + 40).contains(&self.sip.port()) {
                break;
            }
            rtp = free_udp_range(self.sip.ip(), 40)?;
        }
        let list = |items: &[String]| {
            items
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let config = dialer::write_config(
            "call_case.toml.tmpl",
            &[
                ("SIP_LISTEN", self.sip.to_string()),
                ("CARRIER", carrier.to_string()),
                ("TRUNK_PASSWORD", TRUNK_PASSWORD.into()),
                ("AGENT_PASSWORD", AGENT_PASSWORD.into()),
                ("AGENT_ALLOW", list(&options.agent_allow)),
                ("TRUNK_CODECS", list(&options.trunk_codecs)),
                ("AGENT_CODECS", list(&options.agent_codecs)),
                ("RTP_FIRST", rtp.to_string()),
                ("RTP_LAST", (rtp + 39).to_string()),
                ("RINGBACK", ringback.to_string_lossy().into_owned()),
                ("ORIGINATE_TIMEOUT", options.originate_timeout_s.to_string()),
                (
                    "AGENT_RING_TIMEOUT",
                    options.agent_ring_timeout_s.to_string(),
                ),
                ("API_PORT", self.api_port.to_string()),
            ],
            self.dir.path(),
        )?;
        dialer::check_config(&self.dialer, &config)?;
        Ok(config)
    }

    /// `dialer ARGS` with the test directory as working directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.dialer);
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// Starts `dialer run --ladder` and waits until its control API accepts connections.
    pub fn run(&self, config: &Path) -> Result<Peer, HarnessError> {
        let mut cmd = self.command(&["run", "--ladder", "--config"]);
        cmd.arg(config);
        let run = Peer::spawn("dialer-run", cmd, self.dir.path())?;
        let api = SocketAddr::new(LOOPBACK, self.api_port);
        poll_until(
            "dialer run's API accepting connections",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                let up = TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_ok();
                (up || run.status().is_some()).then_some(())
            },
        )?;
        match run.status() {
            None => Ok(run),
            Some(status) => Err(HarnessError::Exited {
                peer: "dialer-run".into(),
                what: "its API listening".into(),
                status,
                tail: run.tail(),
            }),
        }
    }

    /// Starts `dialer call NUMBER --agent 1000 --api URL`.
    pub fn call(&self, number: &str) -> Result<Peer, HarnessError> {
        let mut cmd = self.command(&["call", number, "--agent", "1000", "--api"]);
        cmd.arg(self.api_url());
        Peer::spawn("dialer-call", cmd, self.dir.path())
    }

    /// baresip as agent 1000 on 127.0.0.1 playing a 1000 Hz tone, registered to the dialer.
    pub fn agent(&self, answer: AnswerMode, codecs: &[&str]) -> Result<Baresip, HarnessError> {
        let config = self.agent_config(
            answer,
            codecs,
            SocketAddr::new(LOOPBACK, free_baresip_port(LOOPBACK)?),
            free_udp_range(LOOPBACK, 20)?,
            SocketAddr::new(LOOPBACK, free_port(LOOPBACK)?),
        )?;
        let agent = Baresip::start(config, self.dir.path())?;
        agent.wait_registered(Duration::from_secs(10))?;
        Ok(agent)
    }

    /// The settings of agent 1000 (its 1000 Hz source WAV is generated here, at the rate and
    /// channel count of its first codec, as baresip's aufile requires).
    pub fn agent_config(
        &self,
        answer: AnswerMode,
        codecs: &[&str],
        sip_listen: SocketAddr,
        rtp_base: u16,
        ctrl: SocketAddr,
    ) -> Result<BaresipConfig, HarnessError> {
        let source = self.dir.join("agent1000.wav");
        let opus = codecs.first().is_some_and(|c| c.starts_with("opus"));
        let (rate, channels) = if opus { (48_000, 2) } else { (8000, 1) };
        audio::tone_wav_channels(&source, 1000, 30, rate, channels)?;
        Ok(BaresipConfig {
            name: "agent".into(),
            user: "1000".into(),
            sip_listen,
            registrar: Some((self.sip, AGENT_PASSWORD.into())),
            answer,
            codecs: codecs.iter().map(|c| (*c).to_owned()).collect(),
            source_wav: source,
            rtp_base,
            ctrl,
        })
    }
}

/// A carrier scenario on 127.0.0.1 (`-key contact_ip 127.0.0.3` for the 200's Contact), with
/// `carrier.al` (440 Hz A-law) in the test directory; two SIPp calls: the trunk's REGISTER and
/// the INVITE.
pub fn carrier(dir: &TestDir, scenario: &str, media_port: u16) -> Result<Sipp, HarnessError> {
    carrier_for(dir, scenario, media_port, 2)
}

/// [`carrier`] for `calls` SIPp calls (each REGISTER is one) before SIPp takes no more.
pub fn carrier_for(
    dir: &TestDir,
    scenario: &str,
    media_port: u16,
    calls: u32,
) -> Result<Sipp, HarnessError> {
    audio::g711_raw(&dir.join("carrier.al"), Law::A, 440, 40)?;
    let mut config = SippConfig::new(
        "carrier",
        scenario,
        SocketAddr::new(LOOPBACK, free_port(LOOPBACK)?),
    )
    .key("user", "dialer")
    .key("password", TRUNK_PASSWORD)
    .key("realm", "carrier.test")
    .key("contact_ip", loopback(CONTACT_HOST));
    config.media = Some((LOOPBACK, media_port));
    config.calls = calls;
    config.timeout = Duration::from_secs(50);
    Sipp::start(config, dir.path())
}

/// Waits for the CDR line (`{"id":…,"outcome":…}`) `dialer run` prints on standard output
/// when a call ends, and parses it.
pub fn wait_cdr(run: &Peer, timeout: Duration) -> Result<serde_json::Value, HarnessError> {
    let line = run.wait_for_line(
        &Regex::new(r#"^\s*\{.*"outcome""#).expect("literal regex"),
        timeout,
    )?;
    serde_json::from_str(line.trim())
        .map_err(|e| HarnessError::Peer(format!("CDR line is not JSON ({e}): {line}")))
}

/// The in-dialog request SIPp received with `method` after the 2xx to the INVITE.
pub fn in_dialog<'a>(outcome: &'a SippOutcome, method: &'a str) -> Option<&'a TracedMessage> {
    outcome
        .received(method)
        .filter(|m| m.cseq_method() == Some(method))
        .last()
}

/// RFC 3261 §12.2.1.1 with a loose-routing route set (§16.12.1.1): the Request-URI is the
/// carrier 2xx's Contact (on 127.0.0.3) and the Route is its Record-Route, which put the
/// request on SIPp's own socket. `Err` says what differs.
pub fn routed_to_contact_via_record_route(
    request: &TracedMessage,
    carrier: SocketAddr,
) -> Result<(), String> {
    let uri = request.request_uri().unwrap_or_default();
    let contact_host = format!("@{}:{}", loopback(CONTACT_HOST), carrier.port());
    if !uri.contains(&contact_host) {
        return Err(format!(
            "{} Request-URI {uri} is not the 200's Contact (…{contact_host})",
            request.label()
        ));
    }
    let route = request.header("Route").unwrap_or_default();
    if !(route.contains(&carrier.to_string()) && route.contains(";lr")) {
        return Err(format!(
            "{} Route {route:?} is not the Record-Route <sip:{carrier};lr>",
            request.label()
        ));
    }
    Ok(())
}

/// A JSON field as text (strings unquoted), for assertion messages and comparisons.
pub fn text(value: &serde_json::Value, key: &str) -> String {
    match value.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}
