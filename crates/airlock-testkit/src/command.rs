//! Running external commands (npm, pnpm, yarn, the airlock admin CLI) and capturing their output.

use std::fmt;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a finished command produced. Text is decoded lossily; tests look at text.
#[derive(Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics (printing both streams) unless the command exited 0.
    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert!(self.status.success(), "command failed: {self:?}");
        self
    }

    /// Panics (printing both streams) if the command exited 0.
    #[track_caller]
    pub fn assert_failed(&self) -> &Self {
        assert!(
            !self.status.success(),
            "command unexpectedly succeeded: {self:?}"
        );
        self
    }

    /// stdout followed by stderr, for searching messages whose stream doesn't matter.
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics unless stdout or stderr contains `needle`.
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Self {
        assert!(
            self.combined().contains(needle),
            "expected output to contain {needle:?}: {self:?}"
        );
        self
    }
}

impl fmt::Debug for CmdOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\n$ {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
            self.command, self.status, self.stdout, self.stderr
        )
    }
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    if let Some(dir) = cmd.get_current_dir() {
        s.push_str(&format!("   (in {})", dir.display()));
    }
    s
}

/// Runs `cmd` to completion with `stdin` (or a closed stdin) and a timeout; never panics on a
/// non-zero exit (callers decide), but does panic if the command can't be started or hangs.
pub(crate) fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> CmdOutput {
    let command = describe(&cmd);
    cmd.stdin(Stdio::piped());
    let mut running =
        Running::spawn(cmd).unwrap_or_else(|e| panic!("cannot run `{command}`: {e:#}"));
    if let Some(input) = stdin {
        running.write_stdin(input);
    }
    running.close_stdin();
    running.wait_timeout(timeout)
}

#[derive(Default)]
struct Captured {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// A command that is still running, with its stdout and stderr collected in the background so a
/// test can wait for a piece of text to appear (a login URL, a password prompt) and react to it.
pub struct Running {
    command: String,
    child: Child,
    stdin: Option<ChildStdin>,
    captured: Arc<(Mutex<Captured>, Condvar)>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Spawns `cmd` with stdout and stderr piped (stdin as configured by the caller; piped if not).
    pub fn spawn(mut cmd: Command) -> anyhow::Result<Running> {
        let command = describe(&cmd);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot spawn `{command}`: {e}"))?;
        let captured = Arc::new((Mutex::new(Captured::default()), Condvar::new()));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(pump(out, captured.clone(), false));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(pump(err, captured.clone(), true));
        }
        let stdin = child.stdin.take();
        Ok(Running {
            command,
            child,
            stdin,
            captured,
            readers,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Writes to the child's stdin (panics if stdin was closed or not piped).
    pub fn write_stdin(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is not open");
        // A child that already exited closes the pipe; its output will tell the story.
        let _ = stdin.write_all(data).and_then(|()| stdin.flush());
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// stdout and stderr so far, concatenated.
    pub fn output_so_far(&self) -> String {
        let (lock, _) = &*self.captured;
        let c = lock.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&c.stdout),
            String::from_utf8_lossy(&c.stderr)
        )
    }

    /// Waits until `pred` holds for the combined output so far, and returns that output. Returns
    /// an error (with the output) on timeout or if the command exits first.
    pub fn wait_for_output(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&str) -> bool,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.output_so_far();
            if pred(&text) {
                return Ok(text);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the readers a moment to drain what the child wrote last.
                std::thread::sleep(Duration::from_millis(100));
                let text = self.output_so_far();
                if pred(&text) {
                    return Ok(text);
                }
                anyhow::bail!(
                    "`{}` exited ({status}) before the expected output:\n{text}",
                    self.command
                );
            }
            let now = Instant::now();
            if now >= deadline {
                anyhow::bail!(
                    "timed out waiting for output of `{}`; so far:\n{text}",
                    self.command
                );
            }
            let (lock, cvar) = &*self.captured;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let wait = (deadline - now).min(Duration::from_millis(100));
            drop(cvar.wait_timeout(guard, wait));
        }
    }

    /// Waits until the combined output contains `needle`.
    pub fn wait_for_text(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        self.wait_for_output(timeout, |t| t.contains(needle))
    }

    /// Waits for the command to exit (killing it after `timeout`) and returns everything it printed.
    /// Panics if it had to be killed.
    pub fn wait_timeout(mut self, timeout: Duration) -> CmdOutput {
        self.close_stdin();
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!(
                        "`{}` did not finish within {timeout:?}; output so far:\n{}",
                        self.command,
                        self.output_so_far()
                    );
                }
                Err(e) => panic!("waiting for `{}`: {e}", self.command),
            }
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let (lock, _) = &*self.captured;
        let c = lock.lock().unwrap_or_else(|e| e.into_inner());
        CmdOutput {
            command: self.command.clone(),
            status,
            stdout: String::from_utf8_lossy(&c.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&c.stderr).into_owned(),
        }
    }

    /// Kills the command (SIGKILL) and returns what it printed.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.output_so_far()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pump(
    mut from: impl Read + Send + 'static,
    to: Arc<(Mutex<Captured>, Condvar)>,
    is_err: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let (lock, cvar) = &*to;
                    let mut c = lock.lock().unwrap_or_else(|e| e.into_inner());
                    if is_err {
                        c.stderr.extend_from_slice(&buf[..n]);
                    } else {
                        c.stdout.extend_from_slice(&buf[..n]);
                    }
                    cvar.notify_all();
                }
            }
        }
    })
}

/// Spawns a long-running `cmd` and waits up to `timeout` for the line on its stdout that starts
/// with `ready_prefix`; returns the child and that line. Stdout is copied line by line to
/// `stdout_log` on a thread for the child's whole life, so the pipe never fills; stderr goes to
/// `stderr_path`. A child that exits, closes stdout or stays silent is reported with what it
/// printed on both (and killed when it overran).
pub(crate) fn spawn_until_ready(
    cmd: &mut Command,
    stderr_path: &std::path::Path,
    stdout_log: std::path::PathBuf,
    ready_prefix: &str,
    timeout: Duration,
) -> anyhow::Result<(Child, String)> {
    use std::io::{BufRead, BufReader};

    use anyhow::{Context, bail};

    let stderr = std::fs::File::create(stderr_path).context("creating stderr log")?;
    cmd.stdout(Stdio::piped()).stderr(Stdio::from(stderr));
    let what = describe(cmd);
    let mut child = cmd.spawn().with_context(|| format!("spawning `{what}`"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut log = std::fs::File::create(stdout_log).ok();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(log) = log.as_mut() {
                let _ = writeln!(log, "{line}");
            }
            let _ = tx.send(line);
        }
    });

    let stderr_text = || std::fs::read_to_string(stderr_path).unwrap_or_default();
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.starts_with(ready_prefix) => return Ok((child, line)),
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().ok();
                bail!(
                    "`{what}` closed stdout without the ready line (exit: {status:?})\nstdout:\n{}\nstderr:\n{}",
                    seen.join("\n"),
                    stderr_text()
                );
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Drain whatever is left before reporting.
            while let Ok(line) = rx.try_recv() {
                if line.starts_with(ready_prefix) {
                    bail!("`{what}` printed its ready line and then exited ({status})");
                }
                seen.push(line);
            }
            bail!(
                "`{what}` exited ({status}) before it was ready\nstdout:\n{}\nstderr:\n{}",
                seen.join("\n"),
                stderr_text()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{what}` printed no ready line within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                seen.join("\n"),
                stderr_text()
            );
        }
    }
}
