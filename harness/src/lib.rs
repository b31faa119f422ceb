//! The one harness that starts Poros for real: a deployment in a directory, its hub and node
//! agents as child processes on loopback, and waits on conditions with a deadline.
//!
//! Used by the end-to-end tests (`tests/common`), the benchmarks (`benches/common`) and
//! `poros-hub demo`, so that all three create a deployment, register agencies and wait for
//! readiness the same way. The API is blocking (std::process and reqwest's blocking client):
//! callers are test functions, benchmark drivers and a CLI verb, none of them async.
//!
//! # Layout
//! - [`error`]: [`Error`], what can go wrong while driving the processes.
//! - [`command`]: the binaries under test ([`Binaries`]) and one-shot commands ([`run_cmd`]);
//!   every Poros process started here speaks English unless told otherwise
//!   ([`set_child_lang`]).
//! - [`procs`]: [`ProcessGroup`], long-running children with a log file each, SIGTERM then
//!   SIGKILL on drop.
//! - [`deployment`]: [`Deployment`], a hub deployment and agent directories under one root;
//!   creating it, registering agencies, starting and stopping the hub and agents; several hub
//!   instances on a shared PostgreSQL store.
//! - [`api`]: reading an agent's local API and the hub's metrics.
//! - [`sdk`]: a document-management system speaking the national SDK protocol to an agent.
//! - [`pg`]: [`PgServer`], a real PostgreSQL server from the distribution's packages, and
//!   [`psql`] to run SQL against it.
//! - [`patroni`]: [`PatroniCluster`], etcd and Patroni-managed PostgreSQL nodes in
//!   synchronous mode, for failover tests.
//!
//! Synchronisation is always by polling a condition with a deadline ([`wait_until`]), never
//! by a fixed sleep.
#![forbid(unsafe_code)]

pub mod api;
pub mod command;
pub mod deployment;
pub mod error;
pub mod patroni;
pub mod pg;
pub mod pg_shared;
pub mod procs;
pub mod sdk;

pub use api::{metric_value, recipient_states};
pub use command::{child_lang, output, run_cmd, set_child_lang, Binaries};
pub use deployment::{Deployment, HubInstance};
pub use error::Error;
pub use patroni::PatroniCluster;
pub use pg::{psql, PgServer};
pub use pg_shared::fresh_database;
pub use procs::ProcessGroup;

use std::time::{Duration, Instant};

/// Replace the first `key = ...` line of a TOML file (`hub.toml`, `agent.toml`) with
/// `key = value`, or else the first commented-out `# key = ...` line (a default the file
/// shows but leaves unset); an error if the file has neither.
pub fn set_toml_key(path: &std::path::Path, key: &str, value: &str) -> Result<(), Error> {
    let io = |what: String, source| Error::Io { what, source };
    let text =
        std::fs::read_to_string(path).map_err(|e| io(format!("reading {}", path.display()), e))?;
    let assigns = |l: &str| l.trim_start().starts_with(&format!("{key} ="));
    let commented = |l: &str| l.trim_start().strip_prefix('#').is_some_and(&assigns);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let at =
        (lines.iter().position(|l| assigns(l))).or_else(|| lines.iter().position(|l| commented(l)));
    if let Some(i) = at {
        lines[i] = format!("{key} = {value}");
    } else {
        return Err(io(
            format!("setting {key}"),
            std::io::Error::other(format!("no `{key} =` line in {}", path.display())),
        ));
    }
    std::fs::write(path, lines.join("\n") + "\n")
        .map_err(|e| io(format!("writing {}", path.display()), e))
}

/// How often [`wait_until`] polls.
const POLL: Duration = Duration::from_millis(50);

/// Poll `f` every 50 ms until it holds; [`Error::Timeout`] naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_string(),
                after: timeout,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 right now (QUIC and the HTTP listeners), so
/// a hub can be given fixed addresses and be restarted on the same ones.
pub fn free_port() -> Result<u16, Error> {
    let io = |source| Error::Io {
        what: "reserving a loopback port".into(),
        source,
    };
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(io)?;
        let port = udp.local_addr().map_err(io)?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}
