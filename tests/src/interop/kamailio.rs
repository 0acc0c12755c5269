//! Kamailio 5.x (Debian `kamailio`) as a registrar: digest users from `auth_db` over
//! `db_text`, bindings in `usrloc`'s memory, read back with `kamcmd ul.dump`.
//!
//! A run renders `tests/interop/kamailio/kamailio.cfg.tmpl` and the `db_text` tables
//! (`subscriber.tmpl`, `version`) into the test directory and starts
//! `kamailio -DD -E -f <cfg> -Y <run> -w <run> -P <run>/kamailio.pid`: in the foreground
//! (`-DD`: no daemon, children stay in this harness's process group), logging to stderr
//! (`-E`), its runtime files (the ctl socket, the PID file) in the test directory. It counts as
//! up once it answers an OPTIONS on its UDP port, and it is stopped with SIGTERM to the PID in
//! its PID file, which must be the PID this harness spawned.
//!
//! Behaviour learnt from Kamailio 5.6.3 (Debian 12):
//! - `runtime_dir` is not a config file variable; `-Y DIR` sets it.
//! - The `auth` module's `algorithm` parameter takes `""`/`"MD5"` or `"SHA-256"` (nothing
//!   else); the challenge then names that algorithm, and `auth_db` with `calculate_ha1`
//!   hashes the plain-text password with it.
//! - `registrar`'s `max_expires` shortens a longer requested expiry and the 200's Contact
//!   carries the granted value, which is how these tests get refreshes every few seconds
//!   while the dialer asks for its configured minimum.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use md5::{Digest, Md5};

use super::process::{poll_until, Peer};
use super::{render_fixture, HarnessError};

/// The digest algorithm Kamailio challenges with (the `auth` module's `algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RFC 2617 MD5, Kamailio's default.
    Md5,
    /// RFC 7616 SHA-256.
    Sha256,
}

impl Algorithm {
    /// The token in the challenge's `algorithm=` parameter (RFC 7616 §3.3).
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }
}

/// How to start one Kamailio registrar.
#[derive(Debug, Clone)]
pub struct KamailioConfig {
    /// A name for the log files (`<name>.stderr`, ...).
    pub name: String,
    /// The UDP address it listens on.
    pub listen: SocketAddr,
    /// The domain (and digest realm: the routes challenge with the From host).
    pub domain: String,
    /// The one subscriber's user name.
    pub user: String,
    /// The subscriber's plain-text password (`auth_db` computes HA1 from it).
    pub password: String,
    /// The challenge algorithm.
    pub algorithm: Algorithm,
    /// The longest expiry it grants, in seconds (also what it grants without an expiry).
    pub max_expires: u32,
}

impl KamailioConfig {
    /// A registrar on `listen` for `dialer`/`password` in `kamailio.test`, MD5, 10 s bindings.
    pub fn new(name: &str, listen: SocketAddr, password: &str) -> KamailioConfig {
        KamailioConfig {
            name: name.to_owned(),
            listen,
            domain: "kamailio.test".to_owned(),
            user: "dialer".to_owned(),
            password: password.to_owned(),
            algorithm: Algorithm::Md5,
            max_expires: 10,
        }
    }
}

/// Checks that `kamailio` and `kamcmd` are on `PATH`; Debian's `kamailio` package has both
/// and every module the configuration loads (auth, auth_db, db_text, registrar, usrloc, ...).
pub fn require() -> Result<(), HarnessError> {
    let missing: Vec<&str> = ["kamailio", "kamcmd"]
        .into_iter()
        .filter(|tool| super::which(tool).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!(
            "interop tools missing: {} (Debian package kamailio)",
            missing.join(", ")
        )))
    }
}

/// One `usrloc` binding as `kamcmd ul.dump` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The address-of-record (the user, as `usrloc` keeps it without `use_domain`).
    pub aor: String,
    /// The Contact URI.
    pub contact: String,
    /// Seconds left until it runs out.
    pub expires: i64,
    /// The CSeq of the REGISTER that last saved it.
    pub cseq: u32,
    /// Its Call-ID.
    pub call_id: String,
}

/// A running Kamailio. Dropping it kills its process group.
#[derive(Debug)]
pub struct Kamailio {
    peer: Peer,
    config: KamailioConfig,
    run_dir: PathBuf,
}

impl Kamailio {
    /// Writes the configuration and tables under `dir`, checks the configuration with
    /// `kamailio -c`, starts Kamailio and waits (at most 10 s) until it answers OPTIONS.
    pub fn start(config: KamailioConfig, dir: &Path) -> Result<Kamailio, HarnessError> {
        let base = dir.join(&config.name);
        let db_dir = base.join("db");
        let run_dir = base.join("run");
        for d in [&db_dir, &run_dir] {
            std::fs::create_dir_all(d)
                .map_err(|e| HarnessError::Setup(format!("creating {}: {e}", d.display())))?;
        }
        // The ha1/ha1b columns stay unused (calculate_ha1 = 1) but hold the MD5 values
        // kamctl would store, so the table is the schema Kamailio ships.
        let ha1 = md5_hex(&format!(
            "{}:{}:{}",
            config.user, config.domain, config.password
        ));
        let ha1b = md5_hex(&format!(
            "{}@{}:{}:{}",
            config.user, config.domain, config.domain, config.password
        ));
        render_fixture(
            "kamailio/subscriber.tmpl",
            &[
                ("USER", config.user.clone()),
                ("DOMAIN", config.domain.clone()),
                ("PASSWORD", config.password.clone()),
                ("HA1", ha1),
                ("HA1B", ha1b),
            ],
            &db_dir.join("subscriber"),
        )?;
        render_fixture("kamailio/version", &[], &db_dir.join("version"))?;
        let cfg = base.join("kamailio.cfg");
        render_fixture(
            "kamailio/kamailio.cfg.tmpl",
            &[
                ("SIP_PORT", config.listen.port().to_string()),
                ("SIP_IP", config.listen.ip().to_string()),
                ("DOMAIN", config.domain.clone()),
                ("RUN_DIR", run_dir.to_string_lossy().into_owned()),
                ("DB_DIR", db_dir.to_string_lossy().into_owned()),
                ("ALGORITHM", config.algorithm.token().to_owned()),
                ("MAX_EXPIRES", config.max_expires.to_string()),
            ],
            &cfg,
        )?;
        check_config(&cfg)?;

        let mut command = Command::new("kamailio");
        command
            .args(["-DD", "-E", "-f"])
            .arg(&cfg)
            .arg("-Y")
            .arg(&run_dir)
            .arg("-w")
            .arg(&run_dir)
            .arg("-P")
            .arg(run_dir.join("kamailio.pid"));
        let peer = Peer::spawn(&config.name, command, dir)?;
        let kamailio = Kamailio {
            peer,
            config,
            run_dir,
        };
        kamailio.wait_listening(Duration::from_secs(10))?;
        Ok(kamailio)
    }

    /// Its SIP address.
    pub fn addr(&self) -> SocketAddr {
        self.config.listen
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &KamailioConfig {
        &self.config
    }

    /// The process.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Everything it logged so far (its log goes to stderr with `-E`).
    pub fn log(&self) -> String {
        self.peer.output(super::process::Stream::Stderr)
    }

    /// Sends OPTIONS from a fresh UDP socket until a `SIP/2.0 200` comes back.
    fn wait_listening(&self, timeout: Duration) -> Result<(), HarnessError> {
        let probe = UdpSocket::bind((self.config.listen.ip(), 0))
            .map_err(|e| HarnessError::Setup(format!("binding the OPTIONS probe: {e}")))?;
        let local = probe
            .local_addr()
            .map_err(|e| HarnessError::Setup(format!("probe address: {e}")))?;
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| HarnessError::Setup(format!("probe read timeout: {e}")))?;
        let target = self.config.listen;
        let mut n = 0u32;
        let answered = poll_until(
            &format!("{} answering OPTIONS on {target}", self.config.name),
            timeout,
            Duration::from_millis(20),
            || {
                if self.peer.status().is_some() {
                    return Some(false);
                }
                n += 1;
                let request = format!(
                    "OPTIONS sip:{target} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {local};branch=z9hG4bKprobe{n};rport\r\n\
                     Max-Forwards: 70\r\n\
                     From: <sip:probe@{local}>;tag=probe\r\n\
                     To: <sip:{target}>\r\n\
                     Call-ID: probe-{n}@{local}\r\n\
                     CSeq: {n} OPTIONS\r\n\
                     Content-Length: 0\r\n\r\n"
                );
                probe.send_to(request.as_bytes(), target).ok()?;
                let mut buf = [0u8; 2048];
                let (len, _) = probe.recv_from(&mut buf).ok()?;
                buf[..len].starts_with(b"SIP/2.0 200").then_some(true)
            },
        );
        match answered {
            Ok(true) => Ok(()),
            Ok(false) => Err(HarnessError::Peer(format!(
                "{} exited while starting; its last output:\n{}",
                self.config.name,
                self.peer.tail()
            ))),
            Err(HarnessError::Timeout { what, after, .. }) => Err(HarnessError::Timeout {
                peer: self.config.name.clone(),
                what,
                after,
                tail: self.peer.tail(),
            }),
            Err(e) => Err(e),
        }
    }

    /// The bindings `usrloc` holds now, from `kamcmd ul.dump` over the ctl socket.
    pub fn bindings(&self) -> Result<Vec<Binding>, HarnessError> {
        let socket = format!("unix:{}", self.run_dir.join("kamailio_ctl").display());
        let out = Command::new("kamcmd")
            .args(["-s", &socket, "ul.dump"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| HarnessError::Setup(format!("running kamcmd: {e}")))?;
        if !out.status.success() {
            return Err(HarnessError::Peer(format!(
                "kamcmd -s {socket} ul.dump failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(parse_ul_dump(&String::from_utf8_lossy(&out.stdout)))
    }

    /// The bindings of `user`.
    pub fn bindings_of(&self, user: &str) -> Result<Vec<Binding>, HarnessError> {
        Ok(self
            .bindings()?
            .into_iter()
            .filter(|b| b.aor == user)
            .collect())
    }

    /// Waits until `count` log lines match `pattern`.
    pub fn wait_for_log(
        &self,
        pattern: &regex::Regex,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<String>, HarnessError> {
        self.peer.wait_for_lines(pattern, count, timeout)
    }

    /// Stops it with SIGTERM to the PID in its PID file (checked to be the process this
    /// harness started), waiting up to `grace` before killing its process group.
    pub fn stop(&self, grace: Duration) -> Result<ExitStatus, HarnessError> {
        let pid_file = self.run_dir.join("kamailio.pid");
        let written = std::fs::read_to_string(&pid_file)
            .map_err(|e| HarnessError::Setup(format!("reading {}: {e}", pid_file.display())))?;
        let pid: u32 = written.trim().parse().map_err(|_| {
            HarnessError::Peer(format!(
                "{} holds {written:?}, not a PID",
                pid_file.display()
            ))
        })?;
        if pid != self.peer.pid() {
            return Err(HarnessError::Peer(format!(
                "{} names PID {pid}, but the Kamailio this test started is {}",
                pid_file.display(),
                self.peer.pid()
            )));
        }
        self.peer.stop("TERM", grace)
    }
}

/// `kamailio -c -f cfg`: a template that Kamailio cannot parse fails here with Kamailio's
/// own message instead of as a startup timeout.
fn check_config(cfg: &Path) -> Result<(), HarnessError> {
    let out = Command::new("kamailio")
        .args(["-c", "-f"])
        .arg(cfg)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::Setup(format!("running kamailio -c: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!(
            "kamailio -c -f {} failed:\n{}{}",
            cfg.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads `kamcmd ul.dump`'s indented `Key: value` tree: each `AoR:` starts a record and
/// each `Address:` a contact inside it, whose `Expires:`, `CSeq:` and `Call-ID:` follow.
pub fn parse_ul_dump(text: &str) -> Vec<Binding> {
    let mut out: Vec<Binding> = Vec::new();
    let mut aor = String::new();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "AoR" => aor = value.to_owned(),
            "Address" => out.push(Binding {
                aor: aor.clone(),
                contact: value.to_owned(),
                expires: 0,
                cseq: 0,
                call_id: String::new(),
            }),
            "Expires" => {
                if let Some(b) = out.last_mut() {
                    // `permanent` and `deleted` are the non-numeric values; neither is a live
                    // binding with time left.
                    b.expires = value.parse().unwrap_or(0);
                }
            }
            "CSeq" => {
                if let Some(b) = out.last_mut() {
                    b.cseq = value.parse().unwrap_or(0);
                }
            }
            "Call-ID" => {
                if let Some(b) = out.last_mut() {
                    b.call_id = value.to_owned();
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ul_dump_contacts_carry_their_aor_expiry_and_cseq() {
        let dump = "{\n\tDomains: {\n\t\tDomain: {\n\t\t\tDomain: location\n\t\t\tSize: 1024\n\
            \t\t\tAoRs: {\n\t\t\t\tInfo: {\n\t\t\t\t\tAoR: dialer\n\t\t\t\t\tHashID: 1\n\
            \t\t\t\t\tContacts: {\n\t\t\t\t\t\tContact: {\n\
            \t\t\t\t\t\t\tAddress: sip:dialer@127.0.0.1:40000\n\
            \t\t\t\t\t\t\tExpires: 8\n\t\t\t\t\t\t\tQ: -1.000000\n\
            \t\t\t\t\t\t\tCall-ID: abc@127.0.0.1\n\t\t\t\t\t\t\tCSeq: 3\n\
            \t\t\t\t\t\t}\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}\n";
        assert_eq!(
            parse_ul_dump(dump),
            vec![Binding {
                aor: "dialer".into(),
                contact: "sip:dialer@127.0.0.1:40000".into(),
                expires: 8,
                cseq: 3,
                call_id: "abc@127.0.0.1".into(),
            }]
        );
    }

    #[test]
    fn an_empty_location_table_has_no_bindings() {
        let dump = "{\n\tDomains: {\n\t\tDomain: {\n\t\t\tDomain: location\n\
            \t\t\tAoRs: {\n\t\t\t}\n\t\t}\n\t}\n}\n";
        assert!(parse_ul_dump(dump).is_empty());
    }
}
