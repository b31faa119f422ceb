//! The binaries under test, given explicitly by the caller, and one-shot commands run to
//! completion (`init`, `node add`, `send`, ...).

use crate::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where `poros-hub` and `poros-agent` are. Tests and benchmarks pass Cargo's
/// `env!("CARGO_BIN_EXE_…")`; the demo uses the siblings of its own executable.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub hub: PathBuf,
    pub agent: PathBuf,
}

impl Binaries {
    pub fn new(hub: impl Into<PathBuf>, agent: impl Into<PathBuf>) -> Binaries {
        Binaries {
            hub: hub.into(),
            agent: agent.into(),
        }
    }

    /// `poros-hub` and `poros-agent` in the directory of the running executable.
    pub fn beside_current_exe() -> Result<Binaries, Error> {
        let me = std::env::current_exe().map_err(|source| Error::Io {
            what: "locating the running executable".into(),
            source,
        })?;
        let find = |name: &str| {
            let p = me.with_file_name(name);
            if p.exists() {
                Ok(p)
            } else {
                Err(Error::BinaryMissing {
                    name: name.to_string(),
                    beside: me.clone(),
                })
            }
        };
        Ok(Binaries {
            hub: find("poros-hub")?,
            agent: find("poros-agent")?,
        })
    }
}

/// Run `exe args` to completion with no stdin; its raw output whatever the exit status.
pub fn output(exe: &Path, args: &[&str]) -> Result<Output, Error> {
    Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Io {
            what: format!("running {}", exe.display()),
            source,
        })
}

/// Run `exe args` to completion; its trimmed stdout, or [`Error::Command`] quoting stderr.
pub fn run_cmd(exe: &Path, args: &[&str]) -> Result<String, Error> {
    let out = output(exe, args)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if !out.status.success() {
        let name = exe.file_name().map_or_else(
            || exe.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        );
        return Err(Error::Command {
            command: format!("{name} {}", args.join(" ")),
            status: out.status,
            stdout: text(&out.stdout),
            stderr: text(&out.stderr),
        });
    }
    Ok(text(&out.stdout))
}
