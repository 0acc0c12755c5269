//! The real `dialer` binary: where it is, which subcommands it has, its configuration files.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{render_fixture, HarnessError};

/// The `dialer` executable: `$DIALER_BIN`, else `dialer` in the Cargo target directory this
/// test was built into (`target/debug/deps/<test>` → `target/debug/dialer`), which `cargo test
/// --workspace` builds for the dialer's own integration tests.
pub fn binary() -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os("DIALER_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(HarnessError::Setup(format!(
                "DIALER_BIN={} is not a file",
                path.display()
            )))
        };
    }
    let exe = std::env::current_exe()
        .map_err(|e| HarnessError::Setup(format!("locating the test executable: {e}")))?;
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("dialer"));
    match candidate {
        Some(path) if path.is_file() => Ok(path),
        _ => Err(HarnessError::Setup(format!(
            "dialer binary not found next to {} (build it with `cargo build -p dialer` into the \
             same target directory, or set DIALER_BIN)",
            exe.display()
        ))),
    }
}

/// The subcommands `dialer --help` lists.
pub fn subcommands(binary: &Path) -> Result<Vec<String>, HarnessError> {
    let out = Command::new(binary)
        .arg("--help")
        .output()
        .map_err(|e| HarnessError::Setup(format!("running {} --help: {e}", binary.display())))?;
    let help = String::from_utf8_lossy(&out.stdout);
    Ok(help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// The dialer binary, if it has every subcommand in `needed`; otherwise an error saying
/// `dialer NAME not available`, which is what these tests wait on.
pub fn require(needed: &[&str]) -> Result<PathBuf, HarnessError> {
    let binary = binary()?;
    let have = subcommands(&binary)?;
    for name in needed {
        if !have.iter().any(|h| h == name) {
            return Err(HarnessError::Setup(format!(
                "dialer {name} not available: `{} --help` lists only {have:?}",
                binary.display()
            )));
        }
    }
    Ok(binary)
}

/// Renders `tests/interop/dialer/<template>` into `dir/dialer.toml`.
pub fn write_config(
    template: &str,
    values: &[(&str, String)],
    dir: &Path,
) -> Result<PathBuf, HarnessError> {
    let path = dir.join("dialer.toml");
    render_fixture(&format!("dialer/{template}"), values, &path)?;
    Ok(path)
}

/// Runs `dialer config check --config F`, so a template that drifts from the configuration
/// schema fails with the dialer's own error message rather than as a confusing call failure.
pub fn check_config(binary: &Path, config: &Path) -> Result<(), HarnessError> {
    let out = Command::new(binary)
        .args(["config", "check", "--config"])
        .arg(config)
        .output()
        .map_err(|e| HarnessError::Setup(format!("running dialer config check: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!(
            "dialer config check {} failed:\n{}{}",
            config.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
