//! pnpm and yarn 4, installed on demand with npm into `<repo>/.tools` (git-ignored), and Node 22
//! with oauth2-mock-server (the OIDC issuer fixture) into `<repo>/.tools/node22`, and sigstore-js
//! (the independent Sigstore verifier) into `<repo>/.tools/sigstore-js`.
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
/// The `node` package pulls the Linux binary from the registry; the system Node (20) is too old for
/// oauth2-mock-server 9.
const NODE22_SPEC: &str = "node@22.23.3";
const OAUTH2_MOCK_SERVER_SPEC: &str = "oauth2-mock-server@9.3.0";
/// Written into `.tools/node22` once the install there is complete and verified.
const NODE22_DONE_MARKER: &str = ".airlock-install-complete";
/// sigstore-js, the independent verifier of the test Sigstore bundles (`shared/test-tools.md`:
/// sigstore 5 needs Node 22). `@sigstore/protobuf-specs` gives `TrustedRoot.fromJSON`.
const SIGSTORE_JS_SPECS: [&str; 4] = [
    "sigstore@5.0.1",
    "@sigstore/verify@4.1.3",
    "@sigstore/bundle@5.0.1",
    "@sigstore/protobuf-specs@0.5.2",
];

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

/// `<repo>/.tools/node22`: the npm prefix holding Node 22 and oauth2-mock-server.
pub fn node22_prefix() -> PathBuf {
    tools_dir().join("node22")
}

/// The Node 22 executable (with oauth2-mock-server installed next to it, in [`node22_prefix`]),
/// installing both first if needed. Panics if the install fails or the binary is not Node 22.
pub fn ensure_node22() -> PathBuf {
    let prefix = node22_prefix();
    let node = prefix.join("node_modules/node/bin/node");
    let marker = prefix.join(NODE22_DONE_MARKER);
    if marker.exists() {
        return node;
    }
    install(
        &prefix,
        &[NODE22_SPEC, OAUTH2_MOCK_SERVER_SPEC],
        &marker,
        |out| {
            for required in [
                node.clone(),
                prefix.join("node_modules/oauth2-mock-server/package.json"),
            ] {
                assert!(
                    required.exists(),
                    "npm install reported success but {} is missing: {out:?}",
                    required.display()
                );
            }
            let mut version = Command::new(&node);
            version.arg("--version");
            let v = command::run(version, None, Duration::from_secs(60));
            assert!(
                v.success() && v.stdout.trim().starts_with("v22."),
                "{} is not a working Node 22: {v:?}",
                node.display()
            );
            fs::write(
                &marker,
                format!("{NODE22_SPEC} {OAUTH2_MOCK_SERVER_SPEC}\n"),
            )
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
        },
    );
    node
}

/// `<repo>/.tools/sigstore-js`: the npm prefix holding sigstore-js (run it with [`ensure_node22`]).
pub fn sigstore_js_prefix() -> PathBuf {
    tools_dir().join("sigstore-js")
}

/// sigstore-js and Node 22, installing them first if needed; returns the Node 22 executable.
/// Panics if the install fails.
pub fn ensure_sigstore_js() -> PathBuf {
    let node = ensure_node22();
    let prefix = sigstore_js_prefix();
    let marker = prefix.join(NODE22_DONE_MARKER);
    if marker.exists() {
        return node;
    }
    install(&prefix, &SIGSTORE_JS_SPECS, &marker, |out| {
        for package in [
            "sigstore",
            "@sigstore/verify",
            "@sigstore/bundle",
            "@sigstore/protobuf-specs",
        ] {
            let manifest = prefix
                .join("node_modules")
                .join(package)
                .join("package.json");
            assert!(
                manifest.exists(),
                "npm install reported success but {} is missing: {out:?}",
                manifest.display()
            );
        }
        fs::write(&marker, format!("{}\n", SIGSTORE_JS_SPECS.join(" ")))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
    });
    node
}

fn ensure(path: &Path) {
    if path.exists() {
        return;
    }
    // Install both at once: whichever test comes first pays for both, once.
    install(&tools_dir(), &[PNPM_SPEC, YARN_SPEC], path, |out| {
        assert!(
            path.exists(),
            "npm install reported success but {} is missing: {out:?}",
            path.display()
        );
    });
}

/// `npm install --prefix PREFIX SPECS…` under the `.tools` install lock, unless `ready` appeared
/// while waiting for the lock; `verify` runs (still under the lock) after a successful install.
fn install(prefix: &Path, specs: &[&str], ready: &Path, verify: impl FnOnce(&command::CmdOutput)) {
    let tools = tools_dir();
    fs::create_dir_all(prefix)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", prefix.display()));
    let _lock = InstallLock::acquire(&tools.join(".install-lock"));
    if ready.exists() {
        return; // another process installed it while we waited
    }
    let mut cmd = Command::new("npm");
    cmd.arg("install")
        .arg("--prefix")
        .arg(prefix)
        .arg("--no-audit")
        .arg("--no-fund")
        .args(specs)
        .current_dir(prefix);
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
    verify(&out);
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
