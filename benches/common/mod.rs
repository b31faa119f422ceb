//! What the benchmarks share beyond `poros-harness`: the binaries under test, a deployment
//! with its agencies registered, and reading a process's memory figures.
//!
//! - [`load`]: the exchange load generator (senders, receivers, documents, receipt followers).
//! - [`procstat`]: CPU time per process, per process tree and machine-wide, from `/proc`.
//! - [`sigbound`]: the per-document cost of the essential signing, verifying and hashing.
#![allow(dead_code)]

pub mod load;
pub mod procstat;
pub mod sigbound;

pub use poros_harness::{Binaries, Deployment};
use std::path::{Path, PathBuf};

/// Errors of a benchmark run (printed, then the run stops).
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub const HUB_EXE: &str = env!("CARGO_BIN_EXE_poros-hub");
pub const AGENT_EXE: &str = env!("CARGO_BIN_EXE_poros-agent");

/// The hub binary the deployment runs: `POROS_BENCH_HUB_EXE` if set (to compare another
/// build's binaries under the same load generator), else this build's.
pub fn hub_exe() -> String {
    std::env::var("POROS_BENCH_HUB_EXE").unwrap_or_else(|_| HUB_EXE.to_string())
}

/// The agent binary the deployment runs: `POROS_BENCH_AGENT_EXE` if set, else this build's.
pub fn agent_exe() -> String {
    std::env::var("POROS_BENCH_AGENT_EXE").unwrap_or_else(|_| AGENT_EXE.to_string())
}

/// A new deployment under `root` with its children at `RUST_LOG=warn`, the hub running and
/// `codes` registered (their agents are not started).
pub fn deployment(root: &Path, codes: &[&str]) -> Res<Deployment> {
    let mut d = Deployment::create(Binaries::new(hub_exe(), agent_exe()), root)?;
    d.set_rust_log("warn");
    d.start_hub()?;
    for code in codes {
        d.register_agent(code, &format!("Bench agency {code}"))?;
    }
    Ok(d)
}

/// A number from the environment (`None` when unset or not a number).
pub fn env_num(key: &str) -> Option<f64> {
    std::env::var(key).ok().and_then(|v| v.trim().parse().ok())
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

/// The cargo target directory (`target/<profile>/poros-hub` -> `target`), where the JSON
/// summaries go.
pub fn target_dir() -> PathBuf {
    Path::new(HUB_EXE)
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}
