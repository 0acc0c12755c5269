//! sipvicious (Debian `sipvicious`), the SIP scanner and password cracker that attacks every
//! PBX on a public address: `svwar` enumerates extensions, `svcrack` guesses passwords.
//!
//! Debian 12 ships them as `svwar` and `svcrack`; the upstream 0.3.4 packages (pip, newer
//! Debian) as `sipvicious_svwar` and `sipvicious_svcrack`. [`program`] finds either. Each run
//! is a [`Peer`], bounded by a timeout and killed by its process group when it overstays.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::Stream;
use super::{which, HarnessError, Peer};

/// The executable of `tool` (`svwar`, `svcrack` ...): `sipvicious_<tool>`, else `<tool>`.
pub fn program(tool: &str) -> Option<PathBuf> {
    which(&format!("sipvicious_{tool}")).or_else(|| which(tool))
}

/// [`program`], or an error naming the Debian package.
pub fn require(tool: &str) -> Result<PathBuf, HarnessError> {
    program(tool).ok_or_else(|| {
        HarnessError::Setup(format!(
            "interop tools missing: sipvicious_{tool} or {tool} (Debian package sipvicious)"
        ))
    })
}

/// What one run printed.
#[derive(Debug, Clone)]
pub struct Run {
    /// Standard output and standard error, in that order.
    pub output: String,
    /// Whether it exited by itself within the timeout.
    pub exited: bool,
}

/// Runs `tool` with `args` in `dir` until it exits or `timeout` passes (then it is killed).
pub fn run(tool: &str, args: &[&str], dir: &Path, timeout: Duration) -> Result<Run, HarnessError> {
    let program = require(tool)?;
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    let peer = Peer::spawn(tool, command, dir)?;
    let exited = peer.wait_exit(timeout).is_ok();
    if !exited {
        let _ = peer.stop("TERM", Duration::from_secs(2));
    }
    let output = format!(
        "{}{}",
        peer.output(Stream::Stdout),
        peer.output(Stream::Stderr)
    );
    Ok(Run { output, exited })
}
