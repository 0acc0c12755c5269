//! A per-test temporary directory that is removed when the test passes and kept when it fails.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::HarnessError;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh directory under the system temporary directory, named after the test.
///
/// Dropped while the thread is panicking (a failed assertion) or with `INTEROP_KEEP=1` set, it
/// is kept and its path printed, so the peers' logs and traces can be read; otherwise it is
/// removed with everything in it.
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `<tmp>/interop-<name>-<pid>-<n>`; `n` counts directories made by this process.
    pub fn new(name: &str) -> Result<TestDir, HarnessError> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("interop-{name}-{}-{n}", std::process::id()));
        // A directory left by an earlier process with the same pid is stale.
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| HarnessError::Setup(format!("clearing {}: {e}", path.display())))?;
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| HarnessError::Setup(format!("creating {}: {e}", path.display())))?;
        Ok(TestDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// A subdirectory, created.
    pub fn subdir(&self, name: &str) -> Result<PathBuf, HarnessError> {
        let path = self.path.join(name);
        std::fs::create_dir_all(&path)
            .map_err(|e| HarnessError::Setup(format!("creating {}: {e}", path.display())))?;
        Ok(path)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let keep = std::env::var_os("INTEROP_KEEP").is_some_and(|v| v == "1");
        if std::thread::panicking() || keep {
            eprintln!("interop: test files kept in {}", self.path.display());
        } else {
            // Best effort: a file still held open by a peer being torn down must not turn a
            // passing test into a failing one.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
