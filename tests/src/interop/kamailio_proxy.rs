//! Kamailio 5.x (Debian `kamailio`) as a record-routing stateful proxy in front of a carrier:
//! `tests/interop/kamailio/proxy.cfg.tmpl` rendered with its listen address and the
//! carrier's, checked with `kamailio -c`, run in the foreground as in [`super::kamailio`]
//! (`-DD -E`, runtime files in the test directory, stopped by SIGTERM to the PID it was
//! spawned with, which its PID file must name).
//!
//! It counts as up once it answers an OPTIONS addressed to itself.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use super::process::{poll_until, Peer};
use super::{render_fixture, HarnessError};

/// A running Kamailio proxy.
#[derive(Debug)]
pub struct KamailioProxy {
    peer: Peer,
    listen: SocketAddr,
    run_dir: PathBuf,
}

impl KamailioProxy {
    /// Renders the configuration under `dir/<name>/`, checks it, starts Kamailio on `listen`
    /// relaying new dialogs to `upstream`, and waits (at most 10 s) until it answers OPTIONS.
    pub fn start(
        name: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
        dir: &Path,
    ) -> Result<KamailioProxy, HarnessError> {
        Self::launch(name, "kamailio/proxy.cfg.tmpl", listen, upstream, &[], dir)
    }

    /// As [`KamailioProxy::start`] with `tls_proxy.cfg.tmpl`: also a registrar (REGISTER
    /// saved in memory) and listening for TLS on `tls_port` with the PEM `cert` and `key`.
    pub fn start_tls(
        name: &str,
        listen: SocketAddr,
        tls_port: u16,
        (cert, key): (&Path, &Path),
        upstream: SocketAddr,
        dir: &Path,
    ) -> Result<KamailioProxy, HarnessError> {
        let text = |p: &Path| p.to_string_lossy().into_owned();
        let extra = [
            ("TLS_PORT", tls_port.to_string()),
            ("TLS_CERT", text(cert)),
            ("TLS_KEY", text(key)),
        ];
        Self::launch(
            name,
            "kamailio/tls_proxy.cfg.tmpl",
            listen,
            upstream,
            &extra,
            dir,
        )
    }

    fn launch(
        name: &str,
        template: &str,
        listen: SocketAddr,
        upstream: SocketAddr,
        extra: &[(&str, String)],
        dir: &Path,
    ) -> Result<KamailioProxy, HarnessError> {
        super::kamailio::require()?;
        let base = dir.join(name);
        let run_dir = base.join("run");
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| HarnessError::Setup(format!("creating {}: {e}", run_dir.display())))?;
        let cfg = base.join("proxy.cfg");
        let mut values = vec![
            ("SIP_IP", listen.ip().to_string()),
            ("SIP_PORT", listen.port().to_string()),
            ("UPSTREAM", upstream.to_string()),
            ("RUN_DIR", run_dir.to_string_lossy().into_owned()),
        ];
        values.extend(extra.iter().cloned());
        render_fixture(template, &values, &cfg)?;
        let check = Command::new("kamailio")
            .args(["-c", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| HarnessError::Setup(format!("running kamailio -c: {e}")))?;
        if !check.status.success() {
            return Err(HarnessError::Setup(format!(
                "kamailio -c -f {} failed:\n{}{}",
                cfg.display(),
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            )));
        }
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
        let peer = Peer::spawn(name, command, dir)?;
        let proxy = KamailioProxy {
            peer,
            listen,
            run_dir,
        };
        proxy.wait_listening(Duration::from_secs(10))?;
        Ok(proxy)
    }

    /// Its SIP address.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Everything it logged so far (stderr, with `-E`).
    pub fn log(&self) -> String {
        self.peer.output(super::process::Stream::Stderr)
    }

    fn wait_listening(&self, timeout: Duration) -> Result<(), HarnessError> {
        let probe = UdpSocket::bind((self.listen.ip(), 0))
            .map_err(|e| HarnessError::Setup(format!("binding the OPTIONS probe: {e}")))?;
        let local = probe
            .local_addr()
            .map_err(|e| HarnessError::Setup(format!("probe address: {e}")))?;
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| HarnessError::Setup(format!("probe read timeout: {e}")))?;
        let target = self.listen;
        let mut n = 0u32;
        let up = poll_until(
            &format!("{} answering OPTIONS on {target}", self.peer.name()),
            timeout,
            Duration::from_millis(20),
            || {
                if self.peer.status().is_some() {
                    return Some(false);
                }
                n += 1;
                let request = format!(
                    "OPTIONS sip:{target} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP {local};branch=z9hG4bKproxyprobe{n};rport\r\n\
                     Max-Forwards: 70\r\n\
                     From: <sip:probe@{local}>;tag=probe\r\n\
                     To: <sip:{target}>\r\n\
                     Call-ID: proxy-probe-{n}@{local}\r\n\
                     CSeq: {n} OPTIONS\r\n\
                     Content-Length: 0\r\n\r\n"
                );
                probe.send_to(request.as_bytes(), target).ok()?;
                let mut buf = [0u8; 2048];
                let (len, _) = probe.recv_from(&mut buf).ok()?;
                buf[..len].starts_with(b"SIP/2.0 200").then_some(true)
            },
        )?;
        if up {
            Ok(())
        } else {
            Err(HarnessError::Peer(format!(
                "{} exited while starting:\n{}",
                self.peer.name(),
                self.peer.tail()
            )))
        }
    }

    /// Stops it with SIGTERM to the PID in its PID file (checked to be the process this
    /// harness started), killing its process group after `grace`.
    pub fn stop(&self, grace: Duration) -> Result<ExitStatus, HarnessError> {
        let pid_file = self.run_dir.join("kamailio.pid");
        let written = std::fs::read_to_string(&pid_file)
            .map_err(|e| HarnessError::Setup(format!("reading {}: {e}", pid_file.display())))?;
        if written.trim() != self.peer.pid().to_string() {
            return Err(HarnessError::Peer(format!(
                "{} holds {:?}, but the Kamailio this test started is {}",
                pid_file.display(),
                written.trim(),
                self.peer.pid()
            )));
        }
        self.peer.stop("TERM", grace)
    }
}
