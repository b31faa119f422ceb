//! The binaries under test, given explicitly by the caller, and one-shot commands run to
//! completion (`init`, `node add`, `send`, ...).

use crate::Error;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

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

static CHILD_LANG: OnceLock<String> = OnceLock::new();

/// Makes the Poros processes started from now on speak `lang` (a `POROS_LANG` value: `en`,
/// `vi`); the demo passes its own locale's. Once per process; a later call is ignored.
pub fn set_child_lang(lang: &str) {
    let _ = CHILD_LANG.set(lang.to_string());
}

/// The `POROS_LANG` every Poros process started here gets: English unless
/// [`set_child_lang`] said otherwise, so that tests read the same words whatever the
/// machine's locale.
pub fn child_lang() -> &'static str {
    CHILD_LANG.get().map_or("en", String::as_str)
}

/// Run `exe args` to completion with no stdin; its raw output whatever the exit status.
pub fn output(exe: &Path, args: &[&str]) -> Result<Output, Error> {
    Command::new(exe)
        .args(args)
        .env("POROS_LANG", child_lang())
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
