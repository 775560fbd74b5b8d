//! pnpm and yarn 4, installed on demand with npm into `<repo>/.tools` (git-ignored).
//!
//! Many test processes may ask at once, so installation is guarded by a lock directory. A failed
//! installation panics with npm's output: these tests must never be skipped silently.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::command;

/// Exact versions, as measured in `shared/test-tools.md`.
const PNPM_SPEC: &str = "pnpm@12.21.0";
const YARN_SPEC: &str = "@yarnpkg/cli-dist@4.18.1";

const LOCK_STALE_AFTER: Duration = Duration::from_secs(15 * 60);
const LOCK_WAIT: Duration = Duration::from_secs(20 * 60);
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The workspace root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .expect("crates/airlock-testkit has a workspace root")
        .to_owned()
}

/// `<repo root>/.tools`.
pub fn tools_dir() -> PathBuf {
    repo_root().join(".tools")
}

/// The pnpm executable, installing it first if needed.
pub fn ensure_pnpm() -> PathBuf {
    let bin = tools_dir().join("node_modules/.bin/pnpm");
    ensure(&bin);
    bin
}

/// yarn 4's `yarn.js` (run it with `node`), installing it first if needed.
pub fn ensure_yarn() -> PathBuf {
    let js = tools_dir().join("node_modules/@yarnpkg/cli-dist/bin/yarn.js");
    ensure(&js);
    js
}

fn ensure(path: &Path) {
    if path.exists() {
        return;
    }
    let tools = tools_dir();
    fs::create_dir_all(&tools).unwrap_or_else(|e| panic!("cannot create {}: {e}", tools.display()));
    let _lock = InstallLock::acquire(&tools.join(".install-lock"));
    if path.exists() {
        return; // another process installed it while we waited
    }
    // Install both at once: whichever test comes first pays for both, once.
    let mut cmd = Command::new("npm");
    cmd.arg("install")
        .arg("--prefix")
        .arg(&tools)
        .arg("--no-audit")
        .arg("--no-fund")
        .arg(PNPM_SPEC)
        .arg(YARN_SPEC)
        .current_dir(&tools);
    // The user's own npm configuration (registry, CA file) is what reaches the public registry;
    // only drop variables that could redirect npm to a test registry.
    for (k, _) in std::env::vars() {
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("npm_config_registry")
            || lower == "npm_config_userconfig"
            || lower == "npm_config_cache"
        {
            cmd.env_remove(&k);
        }
    }
    let out = command::run(cmd, None, INSTALL_TIMEOUT);
    assert!(
        out.success(),
        "installing the test tools with npm failed (they are required, not optional): {out:?}"
    );
    assert!(
        path.exists(),
        "npm install reported success but {} is missing: {out:?}",
        path.display()
    );
}

/// A lock held by creating a directory (atomic on every filesystem we run on).
struct InstallLock {
    path: PathBuf,
}

impl InstallLock {
    fn acquire(path: &Path) -> InstallLock {
        let start = Instant::now();
        loop {
            match fs::create_dir(path) {
                Ok(()) => {
                    let _ = fs::write(path.join("owner"), std::process::id().to_string());
                    return InstallLock {
                        path: path.to_owned(),
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > LOCK_STALE_AFTER) {
                        // A crashed installer left it behind.
                        let _ = fs::remove_dir_all(path);
                        continue;
                    }
                    assert!(
                        start.elapsed() < LOCK_WAIT,
                        "waited {LOCK_WAIT:?} for the tools install lock {}",
                        path.display()
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("cannot create lock {}: {e}", path.display()),
            }
        }
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
