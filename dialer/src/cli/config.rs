//! `dialer config check`: validate a `dialer.toml` and print its effective settings.

use std::io;
use std::path::Path;

use trunk_profiles::{Config, ConfigError};

use super::{Exit, Streams};

/// Loads `path`; prints the effective settings (secrets masked) and exits 0, or prints every
/// diagnostic as `file:line:col: key: message` on the error stream and exits 1.
pub(super) fn check_command(path: &Path, streams: &mut Streams<'_>) -> io::Result<Exit> {
    match Config::load(path) {
        Ok(config) => {
            streams
                .stdout
                .write_all(config.effective_settings().as_bytes())?;
            Ok(Exit::Success)
        }
        Err(ConfigError::Invalid(diagnostics)) => {
            for d in diagnostics.as_slice() {
                writeln!(streams.stderr, "{d}")?;
            }
            Ok(Exit::Rejected)
        }
        Err(e) => {
            writeln!(streams.stderr, "{e}")?;
            Ok(Exit::Rejected)
        }
    }
}
