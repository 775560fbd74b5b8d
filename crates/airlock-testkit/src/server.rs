//! Spawning `airlock serve` on `127.0.0.1:0` and administering its data directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::command::{self, CmdOutput};
use crate::http::HttpRequest;

const READY_PREFIX: &str = "airlock: serving ";
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a server.
#[derive(Default, Clone)]
pub struct ServerOptions {
    /// Use this data directory instead of a fresh temporary one.
    pub data_dir: Option<PathBuf>,
    /// TOML written to a config file passed with `--config`.
    pub config: Option<String>,
    /// Extra arguments after `serve --listen 127.0.0.1:0` (e.g. `--public-url`).
    pub serve_args: Vec<String>,
    /// Extra environment for the server process.
    pub env: Vec<(String, String)>,
}

impl ServerOptions {
    pub fn new() -> ServerOptions {
        ServerOptions::default()
    }

    /// Sets the TOML config file contents.
    pub fn config(mut self, toml: &str) -> ServerOptions {
        self.config = Some(toml.to_owned());
        self
    }

    pub fn data_dir(mut self, dir: &Path) -> ServerOptions {
        self.data_dir = Some(dir.to_owned());
        self
    }

    pub fn serve_arg(mut self, arg: &str) -> ServerOptions {
        self.serve_args.push(arg.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> ServerOptions {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A running (or stopped) `airlock serve` process with its own data directory.
///
/// Dropping it kills the process. If the test is panicking, the server's stderr is printed so the
/// failure can be understood from the test output alone.
pub struct Server {
    bin: PathBuf,
    opts: ServerOptions,
    tmp: tempfile::TempDir,
    data_dir: PathBuf,
    config_path: Option<PathBuf>,
    child: Option<Child>,
    url: String,
    host_port: String,
    generation: u32,
}

impl Server {
    /// Starts `bin serve --listen 127.0.0.1:0` and waits (30 s at most) for its ready line.
    pub fn start(bin: &Path, opts: ServerOptions) -> anyhow::Result<Server> {
        let tmp = tempfile::Builder::new()
            .prefix("airlock-e2e-")
            .tempdir()
            .context("creating temp dir")?;
        let data_dir = match &opts.data_dir {
            Some(d) => d.clone(),
            None => tmp.path().join("data"),
        };
        let config_path = match &opts.config {
            Some(toml) => {
                let p = tmp.path().join("airlock.toml");
                fs::write(&p, toml).context("writing config")?;
                Some(p)
            }
            None => None,
        };
        let mut server = Server {
            bin: bin.to_owned(),
            opts,
            tmp,
            data_dir,
            config_path,
            child: None,
            url: String::new(),
            host_port: String::new(),
            generation: 0,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Like [`Server::start`] with default options, panicking on failure.
    #[track_caller]
    pub fn start_default(bin: &Path) -> Server {
        match Server::start(bin, ServerOptions::default()) {
            Ok(s) => s,
            Err(e) => panic!("{e:#}"),
        }
    }

    fn stderr_path(&self, generation: u32) -> PathBuf {
        self.tmp
            .path()
            .join(format!("server-{generation}.stderr.log"))
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        self.generation += 1;
        let stderr_path = self.stderr_path(self.generation);
        let mut cmd = self.base_command();
        cmd.arg("serve").arg("--listen").arg("127.0.0.1:0");
        cmd.args(&self.opts.serve_args);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        let stdout_log = self
            .tmp
            .path()
            .join(format!("server-{}.stdout.log", self.generation));
        let (mut child, ready) = command::spawn_until_ready(
            &mut cmd,
            &stderr_path,
            stdout_log,
            READY_PREFIX,
            READY_TIMEOUT,
        )?;
        // "airlock: serving http://127.0.0.1:PORT/ (data dir DIR)"
        let url = ready[READY_PREFIX.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let host_port = url
            .strip_prefix("http://")
            .and_then(|rest| rest.split('/').next())
            .with_context(|| format!("cannot parse the URL in the ready line {ready:?}"))?
            .to_owned();
        if !url.ends_with('/') {
            let _ = child.kill();
            bail!("the served URL in {ready:?} must end with '/'");
        }
        self.url = url;
        self.host_port = host_port;
        self.child = Some(child);
        Ok(())
    }

    /// `bin --data-dir DIR [--config FILE]`, with inherited `AIRLOCK_*` variables removed.
    fn base_command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AIRLOCK_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("NO_COLOR", "1");
        cmd.arg("--data-dir").arg(&self.data_dir);
        if let Some(c) = &self.config_path {
            cmd.arg("--config").arg(c);
        }
        cmd
    }

    /// The registry URL, e.g. `http://127.0.0.1:41234/` (always with a trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> &str {
        &self.host_port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The temp directory holding logs, the config and (by default) the data directory.
    pub fn temp_dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything the current (or last) server process wrote to stderr.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.stderr_path(self.generation)).unwrap_or_default()
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (15 s at most, then SIGKILL and an error) for the exit status.
    pub fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let mut child = self.child.take().context("server is not running")?;
        let pid = child.id().to_string();
        let st = Command::new("kill")
            .arg("-TERM")
            .arg(&pid)
            .status()
            .context("running kill -TERM")?;
        if !st.success() {
            bail!("kill -TERM {pid} failed: {st}");
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "server did not exit within 15 s of SIGTERM\nstderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same data directory (stopping it with SIGTERM first if it is
    /// still running). The port may change.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.terminate()?;
        }
        self.spawn()
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    // ---- admin CLI -------------------------------------------------------------------------

    /// Runs `airlock --data-dir DIR [--config FILE] ARGS…` with `stdin`, to completion (60 s at most).
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> CmdOutput {
        let mut cmd = self.base_command();
        cmd.args(args);
        command::run(cmd, stdin.map(str::as_bytes), Duration::from_secs(60))
    }

    /// `airlock user add NAME --email NAME@example.com [--admin] --password-stdin`; panics on failure.
    #[track_caller]
    pub fn add_user(&self, name: &str, password: &str, admin: bool) {
        let email = format!("{name}@example.com");
        let mut args = vec!["user", "add", name, "--email", &email, "--password-stdin"];
        if admin {
            args.push("--admin");
        }
        self.admin(&args, Some(&format!("{password}\n")))
            .assert_ok();
    }

    /// `airlock token create USER`; returns the token (panics unless it is one line starting `airlock_`).
    #[track_caller]
    pub fn create_token(&self, user: &str) -> String {
        self.token_with(&["token", "create", user])
    }

    /// `airlock token create USER --read-only`.
    #[track_caller]
    pub fn create_read_only_token(&self, user: &str) -> String {
        self.token_with(&["token", "create", user, "--read-only"])
    }

    #[track_caller]
    fn token_with(&self, args: &[&str]) -> String {
        let out = self.admin(args, None);
        out.assert_ok();
        let token = out.stdout.trim();
        assert!(
            token.starts_with("airlock_") && !token.contains(char::is_whitespace),
            "`airlock token create` must print only the token: {out:?}"
        );
        token.to_owned()
    }

    /// Adds a user with password `pw-NAME` and returns a fresh read-write token for them.
    #[track_caller]
    pub fn user_with_token(&self, name: &str) -> String {
        self.add_user(name, &format!("pw-{name}-secret"), false);
        self.create_token(name)
    }

    // ---- raw HTTP --------------------------------------------------------------------------

    /// A raw request to this server; `path` is sent verbatim.
    pub fn http(&self, method: &str, path: &str) -> HttpRequest {
        HttpRequest::new(&self.host_port, method, path)
    }

    /// `GET path`, panicking on transport errors.
    #[track_caller]
    pub fn get(&self, path: &str) -> crate::HttpResponse {
        self.http("GET", path).send()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            for generation in 1..=self.generation {
                let log = fs::read_to_string(self.stderr_path(generation)).unwrap_or_default();
                eprintln!(
                    "===== airlock server stderr (start #{generation}) =====\n{log}\n===== end ====="
                );
            }
        }
    }
}
