//! What can go wrong while driving Poros processes: each case names the process or command,
//! so a failing test, benchmark or demo says which step broke and where its log is.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file, socket or process operation of the harness itself failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A one-shot command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: ExitStatus,
        stdout: String,
        stderr: String,
    },
    /// A condition did not hold before its deadline.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// A process exited while it was expected to come up.
    #[error("{name} exited during start-up ({status}); see {}", log.display())]
    Exited {
        name: String,
        status: ExitStatus,
        log: PathBuf,
    },
    /// A process ignored SIGTERM for the whole grace period (it was then killed).
    #[error("{name} did not exit within {after:?} of SIGTERM")]
    NotStopped { name: String, after: Duration },
    /// A process of this name is already running in the group.
    #[error("{0} is already running")]
    AlreadyRunning(String),
    /// An HTTP call of the harness failed (connection, or an answer that is not JSON).
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// A binary expected next to another one is missing.
    #[error("{name} not found next to {}; build both binaries with `cargo build --release`", beside.display())]
    BinaryMissing { name: String, beside: PathBuf },
}
