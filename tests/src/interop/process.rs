//! Child processes with their own process group, output captured to files, bounded waits.
//!
//! Each peer's stdout and stderr are read by one thread each; every line is appended to
//! `<dir>/<name>.stdout` / `.stderr` and to an in-memory list guarded by a condition variable,
//! so [`Peer::wait_for_line`] wakes on the line itself instead of polling. A third thread owns
//! the `Child` and waits for it, publishing the exit status the same way for
//! [`Peer::wait_exit`]. Signals go through kill(1) to the PID (or process group) this harness
//! spawned, and only while that child has not been reaped, so a reused PID is never hit.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;

/// What went wrong in the harness or in a peer, with what to read to find out more.
#[derive(Debug)]
#[non_exhaustive]
pub enum HarnessError {
    /// Preparing a test failed: a tool is missing, a file could not be written, a port not found.
    Setup(String),
    /// A peer could not be started.
    Spawn {
        /// The peer's name in this test.
        peer: String,
        /// The command line.
        command: String,
        /// The operating system's reason.
        reason: std::io::Error,
    },
    /// A bounded wait ran out.
    Timeout {
        /// The peer's name in this test.
        peer: String,
        /// What was awaited.
        what: String,
        /// The bound.
        after: Duration,
        /// The peer's last output lines.
        tail: String,
    },
    /// A peer exited while something was still awaited from it.
    Exited {
        /// The peer's name in this test.
        peer: String,
        /// What was awaited.
        what: String,
        /// How it exited.
        status: ExitStatus,
        /// The peer's last output lines.
        tail: String,
    },
    /// A peer did something other than what the test expects.
    Peer(String),
}

impl std::fmt::Display for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HarnessError::Setup(msg) | HarnessError::Peer(msg) => f.write_str(msg),
            HarnessError::Spawn {
                peer,
                command,
                reason,
            } => write!(f, "{peer}: cannot start `{command}`: {reason}"),
            HarnessError::Timeout {
                peer,
                what,
                after,
                tail,
            } => write!(
                f,
                "{peer}: no {what} within {after:?}; its last output:\n{tail}"
            ),
            HarnessError::Exited {
                peer,
                what,
                status,
                tail,
            } => write!(
                f,
                "{peer}: exited ({status}) before {what}; its last output:\n{tail}"
            ),
        }
    }
}

impl std::error::Error for HarnessError {}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

#[derive(Debug, Default)]
struct State {
    lines: Vec<(Stream, String)>,
    status: Option<ExitStatus>,
    open_streams: u8,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A reader thread that panicked left consistent data behind (a Vec push is atomic from
        // the lock's point of view), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running peer process. Dropping it kills its process group and reaps it.
#[derive(Debug)]
pub struct Peer {
    name: String,
    pid: u32,
    command: String,
    shared: Arc<Shared>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Peer {
    /// Starts `command` in its own process group, stdin closed, output captured under `dir` as
    /// `<name>.stdout` and `<name>.stderr`.
    pub fn spawn(name: &str, mut command: Command, dir: &Path) -> Result<Peer, HarnessError> {
        let line = format!("{command:?}");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|reason| HarnessError::Spawn {
            peer: name.to_owned(),
            command: line.clone(),
            reason,
        })?;
        let pid = child.id();
        let shared = Arc::new(Shared::default());
        shared.lock().open_streams = 2;
        let stdout_path = dir.join(format!("{name}.stdout"));
        let stderr_path = dir.join(format!("{name}.stderr"));
        let stdout = child.stdout.take().expect("stdout was piped above");
        let stderr = child.stderr.take().expect("stderr was piped above");
        spawn_reader(stdout, Stream::Stdout, &stdout_path, &shared)?;
        spawn_reader(stderr, Stream::Stderr, &stderr_path, &shared)?;
        let waiter = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("{name}-wait"))
            .spawn(move || {
                let status = child.wait();
                let mut state = waiter.lock();
                // wait() on a child we own fails only if it was already reaped, which only
                // this thread does; record a failure as a signal-less exit code 255.
                state.status = Some(status.unwrap_or_else(|_| ExitStatus::from_raw(255 << 8)));
                waiter.changed.notify_all();
            })
            .map_err(|e| HarnessError::Setup(format!("{name}: waiter thread: {e}")))?;
        Ok(Peer {
            name: name.to_owned(),
            pid,
            command: line,
            shared,
            stdout_path,
            stderr_path,
        })
    }

    /// The peer's name in this test.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Where its standard output is captured.
    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    /// Where its standard error is captured.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// Everything it printed so far on `stream`, one line per entry.
    pub fn output(&self, stream: Stream) -> String {
        let state = self.shared.lock();
        let mut out = String::new();
        for (s, line) in &state.lines {
            if *s == stream {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The exit status, if it has exited.
    pub fn status(&self) -> Option<ExitStatus> {
        self.shared.lock().status
    }

    /// Waits until a line on either stream matches `pattern` and returns it. Fails when the
    /// peer exits (and its output is drained) without printing one, or at `timeout`.
    pub fn wait_for_line(
        &self,
        pattern: &Regex,
        timeout: Duration,
    ) -> Result<String, HarnessError> {
        self.wait_for_lines(pattern, 1, timeout).map(|mut lines| {
            lines
                .pop()
                .expect("wait_for_lines returns `count` >= 1 lines")
        })
    }

    /// Waits until `count` lines (counted from the start of the output) match `pattern`.
    pub fn wait_for_lines(
        &self,
        pattern: &Regex,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<String>, HarnessError> {
        let what = format!("{count} line(s) matching /{pattern}/");
        self.wait_until(&what, timeout, |state| {
            let found: Vec<String> = state
                .lines
                .iter()
                .filter(|(_, line)| pattern.is_match(line))
                .take(count)
                .map(|(_, line)| line.clone())
                .collect();
            (found.len() >= count.max(1)).then_some(found)
        })
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        let what = "exit".to_owned();
        let deadline = now() + timeout;
        let mut state = self.shared.lock();
        loop {
            // The status only counts once the output is drained, so a caller reading the
            // output after wait_exit sees all of it.
            if let (Some(status), 0) = (state.status, state.open_streams) {
                return Ok(status);
            }
            let now = now();
            if now >= deadline {
                drop(state);
                return Err(HarnessError::Timeout {
                    peer: self.name.clone(),
                    what,
                    after: timeout,
                    tail: self.tail(),
                });
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Result<T, HarnessError> {
        let deadline = now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(found) = check(&state) {
                return Ok(found);
            }
            if let (Some(status), 0) = (state.status, state.open_streams) {
                drop(state);
                return Err(HarnessError::Exited {
                    peer: self.name.clone(),
                    what: what.to_owned(),
                    status,
                    tail: self.tail(),
                });
            }
            let now = now();
            if now >= deadline {
                drop(state);
                return Err(HarnessError::Timeout {
                    peer: self.name.clone(),
                    what: what.to_owned(),
                    after: timeout,
                    tail: self.tail(),
                });
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The last 30 output lines, for error messages.
    pub fn tail(&self) -> String {
        let state = self.shared.lock();
        let start = state.lines.len().saturating_sub(30);
        let mut out = String::new();
        for (stream, line) in &state.lines[start..] {
            let tag = if *stream == Stream::Stdout {
                "out"
            } else {
                "err"
            };
            out.push_str(&format!("  [{tag}] {line}\n"));
        }
        out.push_str(&format!(
            "  (full output: {} and {})",
            self.stdout_path.display(),
            self.stderr_path.display()
        ));
        out
    }

    /// Sends `signal` (a kill(1) name such as `TERM` or `INT`) to the process only, if it has
    /// not exited yet.
    pub fn signal(&self, signal: &str) -> Result<(), HarnessError> {
        self.send(signal, &self.pid.to_string())
    }

    /// Sends `signal` to the whole process group, if the leader has not exited yet.
    pub fn signal_group(&self, signal: &str) -> Result<(), HarnessError> {
        self.send(signal, &format!("-{}", self.pid))
    }

    fn send(&self, signal: &str, target: &str) -> Result<(), HarnessError> {
        // Held across the kill so the waiter cannot record the exit in between: while status is
        // None the child is not reaped, so the PID is still ours.
        let state = self.shared.lock();
        if state.status.is_some() {
            return Ok(());
        }
        let out = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg("--")
            .arg(target)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| HarnessError::Setup(format!("running kill(1): {e}")))?;
        drop(state);
        if out.status.success() {
            Ok(())
        } else {
            Err(HarnessError::Setup(format!(
                "kill -{signal} {target} ({}): {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Asks the peer to stop with `signal`, waits up to `grace`, then kills its process group.
    pub fn stop(&self, signal: &str, grace: Duration) -> Result<ExitStatus, HarnessError> {
        self.signal(signal)?;
        match self.wait_exit(grace) {
            Ok(status) => Ok(status),
            Err(_) => {
                self.signal_group("KILL")?;
                self.wait_exit(Duration::from_secs(5))
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Whatever the peer left running in its group goes too; errors only mean it is gone.
        let _ = self.signal_group("KILL");
        let _ = self.wait_exit(Duration::from_secs(5));
    }
}

fn spawn_reader(
    stream: impl Read + Send + 'static,
    which: Stream,
    path: &Path,
    shared: &Arc<Shared>,
) -> Result<(), HarnessError> {
    let mut file = File::create(path)
        .map_err(|e| HarnessError::Setup(format!("creating {}: {e}", path.display())))?;
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name(format!("{}-reader", path.display()))
        .spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut buf = Vec::new();
            // Lines are split on \n and \r: baresip redraws status lines with \r.
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let _ = file.write_all(&buf);
                        let text = String::from_utf8_lossy(&buf);
                        let mut state = shared.lock();
                        for part in text.split(['\n', '\r']).filter(|p| !p.is_empty()) {
                            state.lines.push((which, part.to_owned()));
                        }
                        shared.changed.notify_all();
                    }
                }
            }
            let _ = file.flush();
            let mut state = shared.lock();
            state.open_streams -= 1;
            shared.changed.notify_all();
        })
        .map_err(|e| HarnessError::Setup(format!("reader thread: {e}")))?;
    Ok(())
}

/// The wall clock, for deadlines. The interop harness drives real processes over real sockets,
/// so unlike the sans-IO cores it waits in real time; this is its only clock read, and every
/// wait that uses it is bounded by a deadline rather than being a fixed delay.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// Seconds since 1970 on the wall clock, to place an event of the test (a kill, a restart) on
/// the timeline of a peer's log or a store's timestamps.
#[allow(clippy::disallowed_methods)]
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Polls `check` until it returns `Some`, at most until `timeout`. For conditions no process
/// announces (a file reaching a size, a port answering); `interval` is how often to look, not
/// a synchronisation delay.
pub fn poll_until<T>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, HarnessError> {
    let deadline = now() + timeout;
    loop {
        if let Some(found) = check() {
            return Ok(found);
        }
        let now = now();
        if now >= deadline {
            return Err(HarnessError::Timeout {
                peer: "poll".to_owned(),
                what: what.to_owned(),
                after: timeout,
                tail: String::new(),
            });
        }
        std::thread::park_timeout(interval.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> crate::interop::TestDir {
        crate::interop::TestDir::new("process").expect("temp dir")
    }

    #[test]
    fn wait_for_line_returns_the_matching_line() {
        let dir = dir();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo one; echo 'port 4242 ready' >&2; echo three"]);
        let peer = Peer::spawn("sh", cmd, dir.path()).expect("spawn sh");
        let line = peer
            .wait_for_line(
                &Regex::new(r"port \d+ ready").unwrap(),
                Duration::from_secs(5),
            )
            .expect("line printed");
        assert_eq!(line, "port 4242 ready");
        assert!(peer.wait_exit(Duration::from_secs(5)).unwrap().success());
        let saved = std::fs::read_to_string(peer.stdout_path()).unwrap();
        assert_eq!(saved, "one\nthree\n");
    }

    #[test]
    fn wait_for_line_fails_when_the_peer_exits_without_it() {
        let dir = dir();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo nothing; exit 3"]);
        let peer = Peer::spawn("sh", cmd, dir.path()).expect("spawn sh");
        let err = peer
            .wait_for_line(&Regex::new("never").unwrap(), Duration::from_secs(5))
            .unwrap_err();
        assert!(matches!(err, HarnessError::Exited { .. }), "{err}");
        assert_eq!(peer.status().and_then(|s| s.code()), Some(3));
    }

    #[test]
    fn drop_kills_the_process_group() {
        let dir = dir();
        let pid_file = dir.join("grandchild.pid");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!(
            "sleep 60 & echo $! > {}; echo started; wait",
            pid_file.display()
        ));
        let peer = Peer::spawn("sh", cmd, dir.path()).expect("spawn sh");
        peer.wait_for_line(&Regex::new("started").unwrap(), Duration::from_secs(5))
            .expect("started");
        let grandchild = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .to_owned();
        drop(peer);
        let proc_dir = PathBuf::from(format!("/proc/{grandchild}"));
        // The grandchild is reaped by init after the kill; wait for /proc to drop it.
        poll_until(
            "grandchild gone",
            Duration::from_secs(5),
            Duration::from_millis(20),
            || {
                let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
                (stat.is_empty() || stat.contains(") Z ")).then_some(())
            },
        )
        .expect("the sleep in the killed group is gone");
    }

    #[test]
    fn wait_exit_times_out_on_a_running_process() {
        let dir = dir();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let peer = Peer::spawn("sleep", cmd, dir.path()).expect("spawn sleep");
        let err = peer.wait_exit(Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, HarnessError::Timeout { .. }), "{err}");
        let status = peer.stop("TERM", Duration::from_secs(5)).expect("stopped");
        assert_eq!(status.signal(), Some(15));
    }
}
