//! What the benchmarks share: the binaries under test, free loopback ports, running a command,
//! waiting on a condition with a deadline, and reading a process's memory figures.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Errors of a benchmark run (printed, then the run stops).
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const HUB_EXE: &str = env!("CARGO_BIN_EXE_poros-hub");
pub const AGENT_EXE: &str = env!("CARGO_BIN_EXE_poros-agent");

/// A port free for both UDP and TCP on 127.0.0.1 right now (QUIC and the HTTP listeners).
pub fn free_port() -> Res<u16> {
    loop {
        let s = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = s.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

/// Run `exe args` to completion; its trimmed stdout, or an error quoting its stderr.
pub fn run_cmd(exe: &str, args: &[&str]) -> Res<String> {
    let out = Command::new(exe).args(args).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(format!(
            "`{exe} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Poll `f` every 50 ms until it holds, or fail naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Res<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("timed out after {timeout:?} waiting for {what}").into())
}

/// A `kB` field of `/proc/<pid>/status` (e.g. `VmHWM:`, `VmRSS:`).
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| {
        l.strip_prefix(key)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}
