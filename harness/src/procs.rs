//! Long-running children (hub, agents) by name, each writing its stderr to
//! `<log dir>/<name>.log`; stopped with SIGTERM, then SIGKILL, when the group is dropped.

use crate::{wait_until, Error};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long a child gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// Named child processes, each with an appended log file (a restart adds a `===== start`
/// line, so one file tells a process's whole story).
pub struct ProcessGroup {
    log_dir: PathBuf,
    rust_log: Option<String>,
    children: Vec<(String, Child)>,
}

impl ProcessGroup {
    /// An empty group logging to `log_dir` (created if missing).
    pub fn new(log_dir: &Path) -> Result<ProcessGroup, Error> {
        std::fs::create_dir_all(log_dir).map_err(|source| Error::Io {
            what: format!("creating {}", log_dir.display()),
            source,
        })?;
        Ok(ProcessGroup {
            log_dir: log_dir.to_path_buf(),
            rust_log: None,
            children: Vec::new(),
        })
    }

    /// `RUST_LOG` for children started from now on (`None`: inherit this process's).
    pub fn set_rust_log(&mut self, filter: Option<&str>) {
        self.rust_log = filter.map(str::to_string);
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Start `exe args` as `name`; stdout is discarded, stderr appended to its log.
    pub fn spawn(&mut self, name: &str, exe: &Path, args: &[&str]) -> Result<(), Error> {
        if self.is_running(name) {
            return Err(Error::AlreadyRunning(name.to_string()));
        }
        let path = self.log_path(name);
        let io = |what: String| move |source| Error::Io { what, source };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?;
        let _ = writeln!(log, "===== start {name} =====");
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env("POROS_LANG", crate::command::child_lang())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(filter) = &self.rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let child = cmd.spawn().map_err(io(format!("starting {name}")))?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// Whether `name` was started and not stopped or killed since (it may have exited).
    pub fn is_running(&self, name: &str) -> bool {
        self.children.iter().any(|(n, _)| n == name)
    }

    /// Whether `name` was started and has not exited.
    pub fn alive(&mut self, name: &str) -> bool {
        self.exit_status(name).is_none() && self.is_running(name)
    }

    /// The exit status of `name` if it has exited on its own.
    fn exit_status(&mut self, name: &str) -> Option<ExitStatus> {
        let (_, c) = self.children.iter_mut().find(|(n, _)| n == name)?;
        c.try_wait().ok().flatten()
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.id())
    }

    /// (name, pid) of every child, in start order.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|(n, c)| (n.clone(), c.id()))
            .collect()
    }

    /// Poll `ready` until it holds; [`Error::Exited`] as soon as `name` exits instead.
    pub fn wait_ready(
        &mut self,
        name: &str,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<(), Error> {
        let mut exited = None;
        wait_until(what, timeout, || {
            exited = self.exit_status(name);
            exited.is_some() || ready()
        })?;
        match exited {
            None => Ok(()),
            Some(status) => {
                self.take(name);
                Err(Error::Exited {
                    name: name.to_string(),
                    status,
                    log: self.log_path(name),
                })
            }
        }
    }

    fn take(&mut self, name: &str) -> Option<Child> {
        let i = self.children.iter().position(|(n, _)| n == name)?;
        Some(self.children.remove(i).1)
    }

    /// SIGKILL `name` (no clean shutdown) and reap it.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut c) = self.take(name) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM `name` and wait for it to exit; after [`STOP_GRACE`] it is killed and
    /// [`Error::NotStopped`] returned.
    pub fn stop(&mut self, name: &str) -> Result<(), Error> {
        let Some(mut c) = self.take(name) else {
            return Ok(());
        };
        sigterm(&c);
        finish(name, &mut c)
    }

    /// SIGKILL every child.
    pub fn kill_all(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.children) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM every child (last started first), then wait for each; stragglers are killed.
    pub fn stop_all(&mut self) {
        let mut children = std::mem::take(&mut self.children);
        for (_, c) in children.iter().rev() {
            sigterm(c);
        }
        for (name, c) in children.iter_mut() {
            let _ = finish(name, c);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn sigterm(c: &Child) {
    // std has no SIGTERM and this workspace forbids unsafe code: kill(1) sends it.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .stderr(Stdio::null())
        .status();
}

/// Wait up to [`STOP_GRACE`] for a terminated child, then kill it.
fn finish(name: &str, c: &mut Child) -> Result<(), Error> {
    let exited = wait_until(name, STOP_GRACE, || matches!(c.try_wait(), Ok(Some(_))));
    if exited.is_ok() {
        return Ok(());
    }
    let _ = c.kill();
    let _ = c.wait();
    Err(Error::NotStopped {
        name: name.to_string(),
        after: STOP_GRACE,
    })
}
