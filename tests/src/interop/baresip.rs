//! baresip 1.0 (Debian `baresip-core`) as a headless agent softphone.
//!
//! Configuration that works with the installed 1.0.0 (the templates are
//! `tests/interop/baresip/config.tmpl` and `accounts.tmpl`):
//! - `-f DIR` reads `DIR/config`, `DIR/accounts` and `DIR/contacts`;
//! - `audio_source aufile,FILE.wav` is the microphone; aufile 1.0 is a source only (there is no
//!   aufile player in 1.0), so `audio_player alsa,null` (ALSA's null PCM) is the speaker;
//! - `module sndfile.so` with `snd_path DIR` records `dump-<time>-dec.wav` (heard) and
//!   `dump-<time>-enc.wav` (sent) per call;
//! - the account line `<sip:EXT@REGISTRAR>;auth_pass=PW;regint=60;answermode=auto|manual;
//!   audio_codecs=PCMA,PCMU,opus/48000/2` registers and answers;
//! - `module_app ctrl_tcp.so` with `ctrl_tcp_listen IP:PORT` takes menu commands as netstring
//!   JSON (`{"command":"accept"}`, `{"command":"hangup"}`), which is how a test answers a
//!   manually-answering agent and hangs up, since 1.0 has no auto-answer delay.
//! - `statmode_default off` stops the per-second status line being redrawn on stdout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex::Regex;

use super::process::{now, Peer};
use super::{render_fixture, HarnessError};

/// How baresip answers incoming calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerMode {
    /// Answer at once.
    Auto,
    /// Ring until [`Baresip::accept`].
    Manual,
}

/// One baresip agent's settings.
#[derive(Debug, Clone)]
pub struct BaresipConfig {
    /// A name for logs.
    pub name: String,
    /// The extension (AOR user and digest username).
    pub user: String,
    /// Where it listens for SIP (UDP and TCP).
    pub sip_listen: SocketAddr,
    /// The registrar and password; `None` for an unregistered phone called directly.
    pub registrar: Option<(SocketAddr, String)>,
    /// How it answers.
    pub answer: AnswerMode,
    /// baresip codec names in preference order (`PCMU`, `PCMA`, `opus/48000/2`).
    pub codecs: Vec<String>,
    /// The WAV it plays as its microphone.
    pub source_wav: PathBuf,
    /// The first of the RTP ports it may use (it takes a range of 20 from here).
    pub rtp_base: u16,
    /// The ctrl_tcp address.
    pub ctrl: SocketAddr,
}

/// A running baresip.
#[derive(Debug)]
pub struct Baresip {
    peer: Peer,
    config: BaresipConfig,
    record_dir: PathBuf,
}

impl Baresip {
    /// Writes its configuration under `dir/<name>/` and starts it; returns once it is ready.
    pub fn start(config: BaresipConfig, dir: &Path) -> Result<Baresip, HarnessError> {
        Self::launch(config, dir, None, None, None)
    }

    /// [`Baresip::start`] registering over `transport` (`tcp`, `tls`): the account's AOR
    /// carries `;transport=...`, so baresip opens a connection to the registrar and keeps it;
    /// `ca` (PEM) is what it trusts for TLS (`sip_cafile`).
    pub fn start_over(
        config: BaresipConfig,
        dir: &Path,
        transport: &str,
        ca: Option<&Path>,
    ) -> Result<Baresip, HarnessError> {
        Self::launch(config, dir, None, Some((transport, ca)), None)
    }

    /// [`Baresip::start_over`] with SRTP media (module `srtp`, account `;mediaenc=MEDIAENC`):
    /// `srtp` offers and accepts `RTP/AVP` with SDES `a=crypto` (RFC 4568), `srtp-mand`
    /// `RTP/SAVP` only (RFC 3711 §6).
    pub fn start_over_with_srtp(
        config: BaresipConfig,
        dir: &Path,
        transport: &str,
        ca: Option<&Path>,
        mediaenc: &str,
    ) -> Result<Baresip, HarnessError> {
        Self::launch(config, dir, None, Some((transport, ca)), Some(mediaenc))
    }

    /// [`Baresip::start`] inside the network namespace `netns` (`ip netns exec NS baresip`,
    /// which execs baresip in place, so the PID this harness signals is baresip's own).
    pub fn start_in_netns(
        config: BaresipConfig,
        dir: &Path,
        netns: &str,
    ) -> Result<Baresip, HarnessError> {
        Self::launch(config, dir, Some(netns), None, None)
    }

    fn launch(
        config: BaresipConfig,
        dir: &Path,
        netns: Option<&str>,
        over: Option<(&str, Option<&Path>)>,
        mediaenc: Option<&str>,
    ) -> Result<Baresip, HarnessError> {
        let home = dir.join(&config.name);
        let record_dir = home.join("recordings");
        std::fs::create_dir_all(&record_dir)
            .map_err(|e| HarnessError::Setup(format!("creating {}: {e}", record_dir.display())))?;
        let module_path = ["/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules"]
            .into_iter()
            .find(|p| Path::new(p).join("aufile.so").is_file())
            .ok_or_else(|| {
                HarnessError::Setup(
                    "baresip modules (aufile.so) not found: install Debian package baresip-core"
                        .into(),
                )
            })?;
        let text = |p: &Path| p.to_string_lossy().into_owned();
        render_fixture(
            "baresip/config.tmpl",
            &[
                ("NAME", config.name.clone()),
                ("SIP_LISTEN", config.sip_listen.to_string()),
                ("SOURCE_WAV", text(&config.source_wav)),
                (
                    "RTP_PORTS",
                    format!("{}-{}", config.rtp_base, config.rtp_base + 19),
                ),
                ("MODULE_PATH", module_path.to_owned()),
                ("CTRL_LISTEN", config.ctrl.to_string()),
                ("RECORD_DIR", text(&record_dir)),
            ],
            &home.join("config"),
        )?;
        let mut params = vec![
            format!(
                "answermode={}",
                match config.answer {
                    AnswerMode::Auto => "auto",
                    AnswerMode::Manual => "manual",
                }
            ),
            format!("audio_codecs={}", config.codecs.join(",")),
        ];
        let mut extra = String::new();
        if config.registrar.is_none() && config.sip_listen.ip().is_loopback() {
            // A phone called directly (a carrier's, a static contact) advertises the address
            // it sends from: a host address in its SDP while its RTP leaves from loopback
            // would be another source, which the dialer's strict latching drops.
            extra.push_str(&format!("net_interface\t\t{}\n", config.sip_listen.ip()));
        }
        if let Some(ca) = over.and_then(|(_, ca)| ca) {
            extra.push_str(&format!("sip_cafile\t\t{}\n", ca.display()));
        }
        if let Some(mediaenc) = mediaenc {
            if !Path::new(module_path).join("srtp.so").is_file() {
                return Err(HarnessError::Setup(format!(
                    "baresip module srtp.so not found in {module_path}: install Debian package baresip-core"
                )));
            }
            extra.push_str("module\t\t\tsrtp.so\n");
            params.push(format!("mediaenc={mediaenc}"));
        }
        if !extra.is_empty() {
            let mut text = std::fs::read_to_string(home.join("config"))
                .map_err(|e| HarnessError::Setup(format!("reading baresip config: {e}")))?;
            text.push_str(&extra);
            std::fs::write(home.join("config"), text)
                .map_err(|e| HarnessError::Setup(format!("writing baresip config: {e}")))?;
        }
        let transport = over.map_or(String::new(), |(t, _)| format!(";transport={t}"));
        let aor = match &config.registrar {
            Some((registrar, password)) => {
                params.push(format!("auth_pass={password}"));
                params.push("regint=60".into());
                format!("sip:{}@{registrar}{transport}", config.user)
            }
            None => {
                params.push("regint=0".into());
                format!("sip:{}@{}{transport}", config.user, config.sip_listen)
            }
        };
        let params: String = params.iter().map(|p| format!(";{p}")).collect();
        render_fixture(
            "baresip/accounts.tmpl",
            &[("AOR", aor), ("PARAMS", params)],
            &home.join("accounts"),
        )?;
        std::fs::write(home.join("contacts"), "")
            .map_err(|e| HarnessError::Setup(format!("writing contacts: {e}")))?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, "baresip"]);
                cmd
            }
            None => Command::new("baresip"),
        };
        cmd.arg("-f").arg(&home);
        let peer = Peer::spawn(&config.name, cmd, dir)?;
        peer.wait_for_line(
            &Regex::new("baresip is ready").expect("literal regex"),
            Duration::from_secs(10),
        )?;
        Ok(Baresip {
            peer,
            config,
            record_dir,
        })
    }

    /// The process.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Its SIP address.
    pub fn sip_addr(&self) -> SocketAddr {
        self.config.sip_listen
    }

    /// Waits for its registration to succeed: baresip 1.0 prints
    /// `1000@127.0.0.1: {0/UDP/v4} 200 OK () [1 binding]`.
    pub fn wait_registered(&self, timeout: Duration) -> Result<String, HarnessError> {
        self.peer.wait_for_line(
            &Regex::new(r"\{\d+/(UDP|TCP|TLS)/v[46]\} 2\d\d ").expect("literal regex"),
            timeout,
        )
    }

    /// Waits for an incoming call to be announced.
    pub fn wait_incoming(&self, timeout: Duration) -> Result<String, HarnessError> {
        self.peer.wait_for_line(
            &Regex::new(r"(?i)incoming call|answering call").expect("literal regex"),
            timeout,
        )
    }

    /// Waits for a call to be established.
    pub fn wait_established(&self, timeout: Duration) -> Result<String, HarnessError> {
        self.peer.wait_for_line(
            &Regex::new("Call established").expect("literal regex"),
            timeout,
        )
    }

    /// Waits for a call to end (baresip 1.0 prints `session closed: …` for a call that
    /// ended before it was answered, such as a CANCELled one).
    pub fn wait_terminated(&self, timeout: Duration) -> Result<String, HarnessError> {
        self.peer.wait_for_line(
            &Regex::new("terminated|Call closed|session closed").expect("literal regex"),
            timeout,
        )
    }

    /// Answers the ringing call (ctrl_tcp `accept`).
    pub fn accept(&self) -> Result<(), HarnessError> {
        self.command("accept")
    }

    /// Hangs up the current call (ctrl_tcp `hangup`).
    pub fn hangup(&self) -> Result<(), HarnessError> {
        self.command("hangup")
    }

    /// Sends one menu command over ctrl_tcp and waits for its response.
    pub fn command(&self, command: &str) -> Result<(), HarnessError> {
        let token = format!("t{}", command.len());
        let json = serde_json::json!({ "command": command, "params": "", "token": token });
        let reply = ctrl_tcp_request(self.config.ctrl, &json.to_string(), &token)?;
        if reply.get("ok").and_then(|v| v.as_bool()) == Some(true) {
            Ok(())
        } else {
            Err(HarnessError::Peer(format!(
                "{}: ctrl_tcp `{command}` refused: {reply}",
                self.config.name
            )))
        }
    }

    /// Presses `keys` in the current call (menu `sndcode` over ctrl_tcp): baresip sends each
    /// as RFC 4733 telephone-events, pressed and released at once.
    pub fn send_keys(&self, keys: &str) -> Result<(), HarnessError> {
        let token = format!("k{}", keys.len());
        let json = serde_json::json!({ "command": "sndcode", "params": keys, "token": token });
        let reply = ctrl_tcp_request(self.config.ctrl, &json.to_string(), &token)?;
        if reply.get("ok").and_then(|v| v.as_bool()) == Some(true) {
            Ok(())
        } else {
            Err(HarnessError::Peer(format!(
                "{}: ctrl_tcp `sndcode {keys}` refused: {reply}",
                self.config.name
            )))
        }
    }

    /// The recording of what it heard in the last call (`dump-*-dec.wav`).
    pub fn heard(&self) -> Result<PathBuf, HarnessError> {
        self.recording("-dec.wav")
    }

    /// The recording of what it sent in the last call (`dump-*-enc.wav`).
    pub fn sent(&self) -> Result<PathBuf, HarnessError> {
        self.recording("-enc.wav")
    }

    /// Bytes of audio data recorded so far in the last call's heard file (0 before one).
    pub fn heard_bytes(&self) -> u64 {
        self.heard()
            .ok()
            .and_then(|p| std::fs::metadata(p).ok())
            .map_or(0, |m| m.len().saturating_sub(44))
    }

    /// Seconds of audio recorded so far in the last call's heard file, from the sample rate
    /// and channel count in its WAV header (libsndfile writes the header when it opens the
    /// file and the sizes only when it closes it, so the file length is what counts).
    pub fn heard_seconds(&self) -> f64 {
        let Some(bytes) = self.heard().ok().and_then(|p| std::fs::read(p).ok()) else {
            return 0.0;
        };
        wav_seconds(&bytes)
    }

    fn recording(&self, suffix: &str) -> Result<PathBuf, HarnessError> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.record_dir)
            .map_err(|e| HarnessError::Peer(format!("reading {}: {e}", self.record_dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        found.sort();
        found.pop().ok_or_else(|| {
            HarnessError::Peer(format!(
                "{}: no *{suffix} recording in {}",
                self.config.name,
                self.record_dir.display()
            ))
        })
    }

    /// Stops it (SIGTERM, then SIGKILL to its group after 5 s).
    pub fn stop(&self) -> Result<(), HarnessError> {
        self.peer.stop("TERM", Duration::from_secs(5)).map(|_| ())
    }
}

/// One ctrl_tcp request: a netstring `LEN:JSON,`; replies and events come back the same way.
/// Returns the response carrying `token`.
fn ctrl_tcp_request(
    addr: SocketAddr,
    json: &str,
    token: &str,
) -> Result<serde_json::Value, HarnessError> {
    let fail =
        |what: &str, e: std::io::Error| HarnessError::Peer(format!("ctrl_tcp {addr}: {what}: {e}"));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| fail("connect", e))?;
    stream
        .write_all(format!("{}:{json},", json.len()).as_bytes())
        .map_err(|e| fail("send", e))?;
    let deadline = now() + Duration::from_secs(5);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some((frame, used)) = netstring(&buf) {
            let value: serde_json::Value = serde_json::from_slice(frame)
                .map_err(|e| HarnessError::Peer(format!("ctrl_tcp {addr}: bad JSON: {e}")))?;
            buf.drain(..used);
            if value.get("response").is_some()
                && value.get("token").and_then(|t| t.as_str()) == Some(token)
            {
                return Ok(value);
            }
        }
        let left = deadline.saturating_duration_since(now());
        if left.is_zero() {
            return Err(HarnessError::Peer(format!(
                "ctrl_tcp {addr}: no response to {json}"
            )));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| fail("timeout", e))?;
        let n = stream.read(&mut chunk).map_err(|e| fail("read", e))?;
        if n == 0 {
            return Err(HarnessError::Peer(format!(
                "ctrl_tcp {addr}: closed before responding"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Seconds of 16-bit PCM in a canonical 44-byte-header WAV, by its length; 0 when the header
/// is not there yet.
fn wav_seconds(bytes: &[u8]) -> f64 {
    let field = |at: usize, len: usize| bytes.get(at..at + len);
    let (Some(channels), Some(rate)) = (field(22, 2), field(24, 4)) else {
        return 0.0;
    };
    let channels = u16::from_le_bytes([channels[0], channels[1]]);
    let rate = u32::from_le_bytes([rate[0], rate[1], rate[2], rate[3]]);
    let per_second = f64::from(rate) * f64::from(channels) * 2.0;
    if per_second <= 0.0 {
        return 0.0;
    }
    bytes.len().saturating_sub(44) as f64 / per_second
}

/// The first complete netstring in `buf` and the bytes it used.
fn netstring(buf: &[u8]) -> Option<(&[u8], usize)> {
    let colon = buf.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&buf[..colon]).ok()?.parse().ok()?;
    let end = colon + 1 + len;
    (buf.len() > end && buf[end] == b',').then(|| (&buf[colon + 1..end], end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_seconds_reads_rate_and_channels_from_the_header() {
        let mut wav = vec![0u8; 44];
        wav[22..24].copy_from_slice(&2u16.to_le_bytes());
        wav[24..28].copy_from_slice(&48_000u32.to_le_bytes());
        wav.extend(std::iter::repeat_n(0u8, 48_000 * 2 * 2 / 2));
        assert!((wav_seconds(&wav) - 0.5).abs() < 1e-9);
        assert_eq!(wav_seconds(&wav[..20]), 0.0, "header not written yet");
    }

    #[test]
    fn netstrings_are_split_whole_only() {
        let buf = b"5:hello,3:ab";
        let (frame, used) = netstring(buf).expect("first frame complete");
        assert_eq!(frame, b"hello");
        assert_eq!(used, 8);
        assert_eq!(netstring(&buf[used..]), None, "second frame is incomplete");
    }
}
