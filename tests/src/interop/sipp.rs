//! SIPp 3.6 (Debian `sip-tester`) runs: one scenario, one call (`-m 1`), traces in the test dir.
//!
//! Options that matter, learnt from SIPp 3.6.1's behaviour:
//! - `-bind_local` binds the SIP socket to `-i`'s address only, so a request sent to another
//!   loopback address (127.0.0.3, a 200's Contact) is not received by SIPp: a wrong ACK target
//!   gets no answer.
//! - `-key NAME VALUE` sets `[NAME]` in the scenario (passwords, realms, Contact hosts, file
//!   names), so scenarios are plain committed files, not templates. A keyword inside another
//!   keyword's parameters is not expanded: `[authentication username=[user]]` sends the literal
//!   text, so UAC credentials come from `-au`/`-ap` and a bare `[authentication]`.
//! - `verifyauth` checks only the `Authorization` header (SIPp 3.6.1 `call.cpp`), so a 407
//!   challenge's `Proxy-Authorization` answer is checked by [`crate::interop::trace::digest_is_valid`].
//! - `rtp_stream="FILE,LOOPS,PT"` sends FILE's bytes as they are, 160 per 20 ms for PT 0/8, from
//!   the `-mi`/`-mp` socket to the address in the last SDP received: the file must be raw G.711
//!   ([`crate::interop::audio::g711_raw`]), not a WAV.
//! - Exit codes: 0 every call succeeded, 1 some call failed, 97 stopped by an internal command
//!   or the global `-timeout`, 99 no call processed, 255/254 fatal (bad scenario, bind failure).

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::{poll_until, Peer};
use super::trace::{self, TracedMessage};
use super::{fixtures_dir, HarnessError};

/// How to start one SIPp run.
#[derive(Debug, Clone)]
pub struct SippConfig {
    /// A name for logs and trace files (`<name>.messages.log`, ...).
    pub name: String,
    /// The scenario file name under `tests/interop/sipp/`.
    pub scenario: String,
    /// SIPp's SIP address (`-i` and `-p`, bound with `-bind_local`).
    pub local: SocketAddr,
    /// Where a UAC scenario sends its first request.
    pub remote: Option<SocketAddr>,
    /// The Request-URI user of a UAC scenario (`-s`).
    pub service: Option<String>,
    /// SIPp's RTP address (`-mi`, `-mp`), when the scenario has media.
    pub media: Option<(IpAddr, u16)>,
    /// `-key NAME VALUE` pairs.
    pub keys: Vec<(String, String)>,
    /// `-au`/`-ap` credentials for `[authentication]`.
    pub credentials: Option<(String, String)>,
    /// SIPp's global `-timeout`: the run fails (`-timeout_error`) when it is reached.
    pub timeout: Duration,
    /// Calls to process before exiting (`-m`).
    pub calls: u32,
    /// Further command-line arguments (`-d MS` for a bare `<pause/>`).
    pub extra_args: Vec<String>,
    /// `-t`: `u1` (UDP, one socket) or `t1` (TCP only, one connection per peer).
    pub transport: &'static str,
}

impl SippConfig {
    /// A one-call run of `scenario` on `local` with a 30 s global timeout.
    pub fn new(name: &str, scenario: &str, local: SocketAddr) -> SippConfig {
        SippConfig {
            name: name.to_owned(),
            scenario: scenario.to_owned(),
            local,
            remote: None,
            service: None,
            media: None,
            keys: Vec::new(),
            credentials: None,
            timeout: Duration::from_secs(30),
            calls: 1,
            extra_args: Vec::new(),
            transport: "u1",
        }
    }

    /// Adds `-key name value`.
    pub fn key(mut self, name: &str, value: impl ToString) -> SippConfig {
        self.keys.push((name.to_owned(), value.to_string()));
        self
    }
}

/// A running SIPp.
#[derive(Debug)]
pub struct Sipp {
    peer: Peer,
    config: SippConfig,
    messages: PathBuf,
    errors: PathBuf,
}

/// How a SIPp run ended.
#[derive(Debug)]
pub struct SippOutcome {
    /// SIPp's exit code (see the module docs).
    pub code: Option<i32>,
    /// Every message it sent and received.
    pub messages: Vec<TracedMessage>,
    /// Its unexpected-message log (`-trace_err`), empty when clean.
    pub errors: String,
}

impl SippOutcome {
    /// The trace as a ladder (`> INVITE`, `< 200 INVITE`, ...), for assertion messages.
    pub fn ladder(&self) -> Vec<String> {
        trace::ladder(&self.messages)
    }

    /// The requests SIPp received with this method, in order.
    pub fn received<'a>(&'a self, method: &'a str) -> impl Iterator<Item = &'a TracedMessage> + 'a {
        self.messages.iter().filter(move |m| {
            m.direction == trace::Direction::Received && m.method() == Some(method)
        })
    }

    /// The responses SIPp sent or received with this status.
    pub fn with_status(&self, status: u16) -> impl Iterator<Item = &TracedMessage> + '_ {
        self.messages
            .iter()
            .filter(move |m| m.status() == Some(status))
    }
}

impl Sipp {
    /// Starts SIPp; for a UAS (no `remote`) it returns once SIPp holds its SIP port.
    pub fn start(config: SippConfig, dir: &Path) -> Result<Sipp, HarnessError> {
        Self::launch(config, dir, None)
    }

    /// [`Sipp::start`] inside the network namespace `netns` (`ip netns exec NS sipp`, which
    /// execs SIPp in place, so the PID this harness signals is SIPp's own); a UAS counts as
    /// listening once `ss` in that namespace lists its UDP port.
    pub fn start_in_netns(
        config: SippConfig,
        dir: &Path,
        netns: &str,
    ) -> Result<Sipp, HarnessError> {
        Self::launch(config, dir, Some(netns))
    }

    fn launch(config: SippConfig, dir: &Path, netns: Option<&str>) -> Result<Sipp, HarnessError> {
        let scenario = fixtures_dir().join("sipp").join(&config.scenario);
        if !scenario.is_file() {
            return Err(HarnessError::Setup(format!(
                "no SIPp scenario {}",
                scenario.display()
            )));
        }
        let messages = dir.join(format!("{}.messages.log", config.name));
        let errors = dir.join(format!("{}.errors.log", config.name));
        let screen = dir.join(format!("{}.screen.log", config.name));
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, "sipp"]);
                cmd
            }
            None => Command::new("sipp"),
        };
        // SIPp resolves relative file names (rtp_stream, pcaps) against its working directory.
        cmd.current_dir(dir);
        cmd.arg("-sf").arg(&scenario);
        if let Some(remote) = config.remote {
            cmd.arg(remote.to_string());
        }
        cmd.arg("-i")
            .arg(config.local.ip().to_string())
            .arg("-p")
            .arg(config.local.port().to_string())
            .arg("-bind_local")
            .arg("-t")
            .arg(config.transport)
            .arg("-m")
            .arg(config.calls.to_string())
            .arg("-timeout")
            .arg(format!("{}s", config.timeout.as_secs().max(1)))
            .arg("-timeout_error")
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&messages)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors)
            .arg("-trace_screen")
            .arg("-screen_file")
            .arg(&screen)
            .arg("-nostdin");
        if let Some(service) = &config.service {
            cmd.arg("-s").arg(service);
        }
        if let Some((ip, port)) = config.media {
            cmd.arg("-mi")
                .arg(ip.to_string())
                .arg("-mp")
                .arg(port.to_string());
        }
        if let Some((user, password)) = &config.credentials {
            cmd.arg("-au").arg(user).arg("-ap").arg(password);
        }
        cmd.args(&config.extra_args);
        for (name, value) in &config.keys {
            cmd.arg("-key").arg(name).arg(value);
        }
        let peer = Peer::spawn(&config.name, cmd, dir)?;
        let sipp = Sipp {
            peer,
            config,
            messages,
            errors,
        };
        if sipp.config.remote.is_none() {
            match netns {
                Some(ns) => sipp.wait_bound_in(ns)?,
                None => sipp.wait_bound()?,
            }
        }
        Ok(sipp)
    }

    /// Waits until `ss -uln` in `netns` lists SIPp's UDP address, failing early if SIPp exits.
    fn wait_bound_in(&self, netns: &str) -> Result<(), HarnessError> {
        let local = self.config.local.to_string();
        poll_until(
            &format!("{} bound to {local} in {netns}", self.config.name),
            Duration::from_secs(5),
            Duration::from_millis(20),
            || {
                if self.peer.status().is_some() {
                    return Some(());
                }
                let out = Command::new("ip")
                    .args(["netns", "exec", netns, "ss", "-H", "-uln"])
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .any(|field| field == local)
                    .then_some(())
            },
        )?;
        match self.peer.status() {
            None => Ok(()),
            Some(status) => Err(HarnessError::Exited {
                peer: self.config.name.clone(),
                what: format!("binding {local} in {netns}"),
                status,
                tail: self.peer.tail(),
            }),
        }
    }

    /// Waits until SIPp's UDP port (TCP port in `t1` mode) is taken (it is listening),
    /// failing early if SIPp exits.
    fn wait_bound(&self) -> Result<(), HarnessError> {
        let local = self.config.local;
        let tcp = self.config.transport.starts_with('t');
        poll_until(
            &format!("{} bound to {local}", self.config.name),
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                let exited = self.peer.status().is_some();
                let taken = match tcp {
                    true => std::net::TcpListener::bind(local).is_err(),
                    false => UdpSocket::bind(local).is_err(),
                };
                (exited || taken).then_some(())
            },
        )?;
        match self.peer.status() {
            None => Ok(()),
            Some(status) => Err(HarnessError::Exited {
                peer: self.config.name.clone(),
                what: format!("binding {local}"),
                status,
                tail: self.peer.tail(),
            }),
        }
    }

    /// The SIP address.
    pub fn addr(&self) -> SocketAddr {
        self.config.local
    }

    /// The process.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The message trace file.
    pub fn messages_path(&self) -> &Path {
        &self.messages
    }

    /// Waits for SIPp to exit and reads its trace and error log.
    pub fn finish(&self, timeout: Duration) -> Result<SippOutcome, HarnessError> {
        let status = self.peer.wait_exit(timeout)?;
        self.outcome(status.code())
    }

    /// Reads the trace so far (SIPp may still be running).
    pub fn outcome(&self, code: Option<i32>) -> Result<SippOutcome, HarnessError> {
        let messages = if self.messages.exists() {
            trace::read(&self.messages)?
        } else {
            Vec::new()
        };
        let errors = std::fs::read_to_string(&self.errors).unwrap_or_default();
        Ok(SippOutcome {
            code,
            messages,
            errors,
        })
    }

    /// Waits for SIPp to exit with code 0; otherwise an error with the ladder, the error log
    /// and the screen.
    pub fn expect_success(&self, timeout: Duration) -> Result<SippOutcome, HarnessError> {
        let outcome = self.finish(timeout)?;
        if outcome.code == Some(0) {
            Ok(outcome)
        } else {
            Err(HarnessError::Peer(format!(
                "{}: SIPp exited with {:?}\nladder: {:?}\nerrors:\n{}\nscreen:\n{}",
                self.config.name,
                outcome.code,
                outcome.ladder(),
                outcome.errors,
                self.peer.tail()
            )))
        }
    }
}
