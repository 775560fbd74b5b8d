//! An isolated npm (and pnpm, yarn) environment pointed at one test server.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::command::{self, CmdOutput, Running};
use crate::server::Server;
use crate::tools;

const CMD_TIMEOUT: Duration = Duration::from_secs(180);

/// Environment variables passed through from the test process; everything else (in particular
/// `npm_config_*`, `NPM_*`, `CI` and the CI vendors' variables) is dropped.
const PASS_THROUGH: &[&str] = &[
    "PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME",
];

/// A temp HOME with its own npm userconfig, cache and work directory, pointed at one registry.
pub struct NpmEnv {
    tmp: tempfile::TempDir,
    registry: String,
    host_port: String,
    token: Option<String>,
    audit: bool,
    /// Set on every command after the isolated environment (so they can override it).
    extra_env: Vec<(String, String)>,
}

impl NpmEnv {
    /// An environment whose `.npmrc` says `registry=<server url>` (no credentials yet).
    pub fn new(server: &Server) -> NpmEnv {
        NpmEnv::for_registry(server.url(), server.host_port())
    }

    /// Same for an arbitrary registry URL (`url` must end with `/`).
    pub fn for_registry(url: &str, host_port: &str) -> NpmEnv {
        let tmp = tempfile::Builder::new()
            .prefix("airlock-npm-")
            .tempdir()
            .expect("temp dir");
        for d in [
            "home",
            "cache",
            "work",
            "xdg/config",
            "xdg/cache",
            "xdg/data",
            "xdg/state",
        ] {
            fs::create_dir_all(tmp.path().join(d)).expect("create dir");
        }
        fs::write(tmp.path().join("globalnpmrc"), "").expect("write global npmrc");
        let env = NpmEnv {
            tmp,
            registry: url.to_owned(),
            host_port: host_port.to_owned(),
            token: None,
            audit: false,
            extra_env: Vec::new(),
        };
        env.write_userconfig();
        env
    }

    /// Adds `//127.0.0.1:PORT/:_authToken=<token>` to the userconfig.
    pub fn with_token(mut self, token: &str) -> NpmEnv {
        self.set_token(Some(token));
        self
    }

    /// Replaces (or with `None` removes) the token in the userconfig.
    pub fn set_token(&mut self, token: Option<&str>) {
        self.token = token.map(str::to_owned);
        self.write_userconfig();
    }

    /// Lets npm call the bulk-advisory endpoint after installs (off by default).
    pub fn with_audit(mut self) -> NpmEnv {
        self.audit = true;
        self
    }

    /// Adds environment variables to every command run in this environment (e.g.
    /// [`crate::OidcIssuer::github_actions_env`]). Nothing else leaks in from the test process.
    pub fn with_envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> NpmEnv {
        for (k, v) in vars {
            self.set_env(&k, &v);
        }
        self
    }

    /// Sets (replacing an earlier value) one extra environment variable.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.remove_env(key);
        self.extra_env.push((key.to_owned(), value.to_owned()));
    }

    /// Removes an extra environment variable set with [`NpmEnv::set_env`] or [`NpmEnv::with_envs`].
    pub fn remove_env(&mut self, key: &str) {
        self.extra_env.retain(|(k, _)| k != key);
    }

    fn write_userconfig(&self) {
        let mut rc = format!("registry={}\n", self.registry);
        if let Some(t) = &self.token {
            rc.push_str(&format!("//{}/:_authToken={t}\n", self.host_port));
        }
        fs::write(self.userconfig(), rc).expect("write userconfig");
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn home(&self) -> PathBuf {
        self.tmp.path().join("home")
    }

    /// The npm userconfig file (`$HOME/.npmrc`).
    pub fn userconfig(&self) -> PathBuf {
        self.home().join(".npmrc")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    /// A scratch directory that npm commands run in by default.
    pub fn work_dir(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    /// The userconfig's current contents (npm login/logout rewrite it).
    pub fn read_userconfig(&self) -> String {
        fs::read_to_string(self.userconfig()).unwrap_or_default()
    }

    /// The `_authToken` npm has stored for this registry, if any.
    pub fn stored_token(&self) -> Option<String> {
        let prefix = format!("//{}/:_authToken=", self.host_port);
        self.read_userconfig()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(|t| t.trim().to_owned()))
    }

    /// A command for `program` with the isolated environment, run in `dir`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear();
        for key in PASS_THROUGH {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        let x = |p: &str| self.tmp.path().join(p);
        cmd.env("HOME", self.home())
            .env("npm_config_userconfig", self.userconfig())
            .env("npm_config_globalconfig", x("globalnpmrc"))
            .env("npm_config_cache", self.cache_dir())
            .env("npm_config_update_notifier", "false")
            .env(
                "npm_config_audit",
                if self.audit { "true" } else { "false" },
            )
            .env("npm_config_fund", "false")
            .env("npm_config_progress", "false")
            .env("XDG_CONFIG_HOME", x("xdg/config"))
            .env("XDG_CACHE_HOME", x("xdg/cache"))
            .env("XDG_DATA_HOME", x("xdg/data"))
            .env("XDG_STATE_HOME", x("xdg/state"))
            .env("NO_COLOR", "1")
            .env("COLUMNS", "120")
            .env("TERM", "dumb")
            .current_dir(dir);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `npm ARGS…` in the work directory.
    pub fn npm(&self, args: &[&str]) -> CmdOutput {
        self.npm_in(&self.work_dir(), args)
    }

    /// `npm ARGS…` in `dir`.
    pub fn npm_in(&self, dir: &Path, args: &[&str]) -> CmdOutput {
        let mut cmd = self.command("npm", dir);
        cmd.args(args);
        command::run(cmd, None, CMD_TIMEOUT)
    }

    /// Starts `npm ARGS…` in `dir` without waiting (stdin piped, not a TTY).
    pub fn spawn_npm(&self, dir: &Path, args: &[&str]) -> Running {
        let mut cmd = self.command("npm", dir);
        cmd.args(args).stdin(Stdio::piped());
        Running::spawn(cmd).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Starts `npm ARGS…` in `dir` on a pseudo-terminal (through util-linux `script`), so npm
    /// prompts as it does for a person; write answers with [`Running::write_stdin`].
    pub fn spawn_npm_tty(&self, dir: &Path, args: &[&str]) -> Running {
        let mut line = String::from("exec npm");
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        let mut cmd = self.command("script", dir);
        cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
            .stdin(Stdio::piped());
        Running::spawn(cmd).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Makes an empty project directory `work/<dir_name>` with a private package.json.
    pub fn project(&self, dir_name: &str) -> PathBuf {
        let dir = self.work_dir().join(dir_name);
        fs::create_dir_all(&dir).expect("create project dir");
        let pj = json!({"name": dir_name, "version": "1.0.0", "private": true});
        fs::write(
            dir.join("package.json"),
            serde_json::to_string_pretty(&pj).expect("JSON"),
        )
        .expect("write");
        dir
    }

    /// `pnpm ARGS…` in `dir` (installing pnpm first if needed). Writes the project's `.npmrc`
    /// (registry and token) and pnpm's global `config.yaml` in the isolated XDG config home: no
    /// release-age gate (pnpm 12 reads `minimumReleaseAge` only from YAML config), store inside the
    /// temp dir, no update check.
    pub fn pnpm(&self, dir: &Path, args: &[&str]) -> CmdOutput {
        let pnpm = tools::ensure_pnpm();
        let mut rc = format!("registry={}\n", self.registry);
        if let Some(t) = &self.token {
            rc.push_str(&format!("//{}/:_authToken={t}\n", self.host_port));
        }
        fs::write(dir.join(".npmrc"), rc).expect("write project .npmrc");
        let global = self.tmp.path().join("xdg/config/pnpm");
        fs::create_dir_all(&global).expect("create pnpm config dir");
        let yaml = format!(
            "minimumReleaseAge: 0\nstoreDir: \"{}\"\nupdateNotifier: false\n",
            self.tmp.path().join("pnpm-store").display()
        );
        fs::write(global.join("config.yaml"), yaml).expect("write pnpm config.yaml");
        let mut cmd = self.command(&pnpm, dir);
        cmd.args(args)
            .env("PNPM_HOME", self.tmp.path().join("pnpm-home"));
        command::run(cmd, None, CMD_TIMEOUT)
    }

    /// yarn 4 `ARGS…` in `dir` (installing yarn first if needed). Writes `.yarnrc.yml` (registry,
    /// HTTP allowed to 127.0.0.1, token, no age gate, no telemetry, node-modules linker) and an
    /// empty `yarn.lock` if there is none.
    pub fn yarn(&self, dir: &Path, args: &[&str]) -> CmdOutput {
        let yarn_js = tools::ensure_yarn();
        let mut rc = format!(
            "npmRegistryServer: \"{}\"\nunsafeHttpWhitelist:\n  - \"127.0.0.1\"\nnpmMinimalAgeGate: 0\n\
             enableTelemetry: false\nenableGlobalCache: false\nnodeLinker: node-modules\n",
            self.registry.trim_end_matches('/')
        );
        if let Some(t) = &self.token {
            rc.push_str(&format!("npmAuthToken: \"{t}\"\nnpmAlwaysAuth: true\n"));
        }
        fs::write(dir.join(".yarnrc.yml"), rc).expect("write .yarnrc.yml");
        let lock = dir.join("yarn.lock");
        if !lock.exists() {
            fs::write(&lock, "").expect("write yarn.lock");
        }
        let mut cmd = self.command("node", dir);
        cmd.arg(&yarn_js)
            .args(args)
            .env("YARN_ENABLE_TELEMETRY", "0");
        command::run(cmd, None, CMD_TIMEOUT)
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
