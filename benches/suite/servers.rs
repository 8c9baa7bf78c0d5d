//! Starting and stopping the servers under test.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Args;
use crate::client::{self, Conn, Endpoint, Expect};

/// Process groups of the servers running now, so an interrupted suite can
/// stop them (they are in groups of their own, out of reach of Ctrl-C).
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn kill_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill").args([signal, "--", &format!("-{pgid}")]).stderr(Stdio::null()).status();
}

/// Stops every server still running (for an interrupted suite).
pub fn stop_all() {
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    for &pgid in &live {
        kill_group(pgid, "-TERM");
    }
    std::thread::sleep(Duration::from_millis(500));
    for pgid in live {
        kill_group(pgid, "-KILL");
    }
}

/// `WORK/call-log-off.toml`, written on first use: a configuration with
/// only `[call_log] enabled = false`. The suite's Switchboard servers run
/// with it (but for the call log section's), as all of them ran before the
/// call log existed; without it `serve` would keep a log in `./data`.
pub fn call_log_off_config(args: &Args) -> PathBuf {
    let path = args.work.join("call-log-off.toml");
    if !path.exists() {
        std::fs::write(&path, "[call_log]\nenabled = false\n").expect("write call-log-off.toml in the work folder");
    }
    path
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// A server process in a process group of its own, so it can be stopped with
/// all its workers. Stopped when dropped.
pub struct ServerProc {
    pub name: String,
    pub pid: u32,
    pub endpoint: Endpoint,
    pub log: PathBuf,
    /// When the process was spawned.
    pub started: Instant,
    child: Child,
}

impl ServerProc {
    /// Starts `command` (which must listen on `port`), logging to `log`.
    pub fn spawn(name: &str, command: &mut Command, port: u16, log: &Path) -> anyhow::Result<Self> {
        let out = File::create(log)?;
        command
            .env("SWITCHBOARD_SECRET", client::SECRET)
            // Production-like: default logging, no backtrace capture (with
            // RUST_BACKTRACE=1 every error value created on the request path
            // captures a backtrace, which would dominate the figures).
            .env_remove("RUST_LOG")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        let started = Instant::now();
        let child = command.spawn().map_err(|e| anyhow::anyhow!("cannot start {name} ({command:?}): {e}"))?;
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).push(child.id());
        Ok(Self {
            name: name.to_owned(),
            pid: child.id(),
            endpoint: Endpoint::new(port),
            log: log.to_owned(),
            started,
            child,
        })
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Starts `switchboard serve` on a free port with the plugins in `dir`
    /// and the call log off ([`call_log_off_config`]), logging to
    /// `WORK/NAME.log`.
    pub fn switchboard(args: &Args, dir: &Path, name: &str) -> anyhow::Result<Self> {
        let port = free_port();
        let mut command = Command::new(&args.switchboard);
        command.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--plugins").arg(dir);
        command.arg("--config").arg(call_log_off_config(args));
        Self::spawn(name, &mut command, port, &args.work.join(format!("{name}.log")))
    }

    /// Waits until a signed call of `tool` answers correctly.
    pub async fn wait_ready(&mut self, tool: &str, expect: Expect, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exited() {
                anyhow::bail!("{} exited during start-up; see {}", self.name, self.log.display());
            }
            let mut conn = Conn::default();
            let last = match client::call_tool(&mut conn, &self.endpoint, tool, &client::unique_id("ready"), 0, expect)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{} did not answer correctly within {timeout:?} (last: {last}); see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the whole process group: SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).retain(|&p| p != self.pid);
        if self.exited() {
            // Workers of a leader that died may still be in its group.
            kill_group(self.pid, "-KILL");
            return;
        }
        kill_group(self.pid, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.exited() && crate::procfs::process_tree(self.pid).len() <= 1 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        kill_group(self.pid, "-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.stop();
    }
}
