//! Several hub instances on one deployment, sharing a PostgreSQL store.
//!
//! Instance 0 is the deployment's own hub (`<root>/hub`, process `hub`). [`Deployment::share_store`]
//! points it at a PostgreSQL database and adds instances 1.. as copies of its directory
//! (`<root>/hub2`, `<root>/hub3`, ...: the same CAs, hub identity, admin token and settings,
//! each with its own listeners and instance name), as an operator installs the same
//! deployment on several machines. Agents are then given every instance's address.

use super::{Deployment, HUB};
use crate::{free_port, Error};
use std::path::{Path, PathBuf};

/// One hub instance: its process name, directory and listeners.
#[derive(Debug, Clone)]
pub struct HubInstance {
    /// Process name and log file (`hub`, `hub2`, ...).
    pub name: String,
    pub dir: PathBuf,
    pub quic_port: u16,
    pub ops_port: u16,
}

impl HubInstance {
    /// `127.0.0.1:QUIC`.
    pub fn quic_listen(&self) -> String {
        format!("127.0.0.1:{}", self.quic_port)
    }

    /// `http://127.0.0.1:OPS`.
    pub fn ops_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.ops_port)
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// Replace the `key = ...` line in `[section]` of a TOML file's text.
fn set_in_section(text: &str, section: &str, key: &str, value: &str) -> Option<String> {
    let mut current = String::new();
    let mut done = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            current = t.trim_matches(|c| c == '[' || c == ']').to_string();
        }
        if !done && current == section && t.starts_with(&format!("{key} =")) {
            out.push(format!("{key} = {value}"));
            done = true;
        } else {
            out.push(line.to_string());
        }
    }
    done.then(|| out.join("\n") + "\n")
}

impl Deployment {
    /// Every hub instance, instance 0 (the deployment's own hub) first.
    pub fn instances(&self) -> Vec<HubInstance> {
        let mut all = vec![HubInstance {
            name: HUB.to_string(),
            dir: self.hub_dir.clone(),
            quic_port: self.quic_port,
            ops_port: self.ops_port,
        }];
        all.extend(self.extra.iter().cloned());
        all
    }

    /// Put the hub's state in the PostgreSQL database at `url` (`[store] backend =
    /// "postgres"`), and add hub instances until there are `count`, each a copy of the
    /// deployment directory with its own listeners and `[store] instance`. Nothing is
    /// started. Call it before any hub has run on the redb store.
    pub fn share_store(&mut self, url: &str, count: usize) -> Result<(), Error> {
        let toml = self.hub_dir.join("hub.toml");
        let text =
            std::fs::read_to_string(&toml).map_err(io(format!("reading {}", toml.display())))?;
        std::fs::write(&toml, with_store(&text, url, HUB))
            .map_err(io(format!("writing {}", toml.display())))?;
        for n in self.extra.len() + 2..=count {
            let name = format!("hub{n}");
            let dir = self.root.join(&name);
            let inst = HubInstance {
                name: name.clone(),
                dir: dir.clone(),
                quic_port: free_port()?,
                ops_port: free_port()?,
            };
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            copy_dir(&self.hub_dir.join("pki"), &dir.join("pki"))?;
            copy_file(&self.hub_dir.join("admin.token"), &dir.join("admin.token"))?;
            let mut t = text.clone();
            for (section, key, value) in [
                ("network", "listen", inst.quic_listen()),
                (
                    "network",
                    "ops_listen",
                    format!("127.0.0.1:{}", inst.ops_port),
                ),
            ] {
                t = set_in_section(&t, section, key, &format!("\"{value}\"")).ok_or_else(|| {
                    Error::Io {
                        what: format!("hub.toml has no [{section}] {key}"),
                        source: std::io::ErrorKind::InvalidData.into(),
                    }
                })?;
            }
            let t = with_store(&t, url, &name);
            std::fs::write(dir.join("hub.toml"), t)
                .map_err(io(format!("writing {}", dir.join("hub.toml").display())))?;
            self.extra.push(inst);
        }
        Ok(())
    }

    /// The `agent.toml` `hub =` value naming every instance (a TOML array).
    pub fn hub_list(&self) -> String {
        let addrs: Vec<String> = self
            .instances()
            .iter()
            .map(|i| format!("\"{}\"", i.quic_listen()))
            .collect();
        format!("[{}]", addrs.join(", "))
    }

    /// Give agent `code` every hub instance's address (its `agent.toml` `hub =`).
    pub fn give_agent_every_hub(&self, code: &str) -> Result<(), Error> {
        let toml = self.agent_dir(code).join("agent.toml");
        let text =
            std::fs::read_to_string(&toml).map_err(io(format!("reading {}", toml.display())))?;
        let mut done = false;
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                if !done && l.trim_start().starts_with("hub =") {
                    done = true;
                    format!("hub = {}", self.hub_list())
                } else {
                    l.to_string()
                }
            })
            .collect();
        if !done {
            return Err(Error::Io {
                what: format!("{} has no `hub =` line", toml.display()),
                source: std::io::ErrorKind::InvalidData.into(),
            });
        }
        std::fs::write(&toml, lines.join("\n") + "\n")
            .map_err(io(format!("writing {}", toml.display())))
    }

    /// Start instance `i` and wait until its listeners are up and `/healthz` answers.
    pub fn start_instance(&mut self, i: usize) -> Result<(), Error> {
        if i == 0 {
            return self.start_hub();
        }
        let inst = self.instances()[i].clone();
        self.start_hub_in(&inst.name, &inst.dir)
    }

    /// SIGKILL instance `i`.
    pub fn kill_instance(&mut self, i: usize) {
        let name = self.instances()[i].name.clone();
        self.procs.kill(&name);
    }

    /// SIGTERM instance `i` and wait for it to exit.
    pub fn stop_instance(&mut self, i: usize) -> Result<(), Error> {
        let name = self.instances()[i].name.clone();
        self.procs.stop(&name)
    }

    /// Send `signal` (`STOP`, `CONT`, ...) to instance `i`'s process.
    pub fn signal_instance(&self, i: usize, signal: &str) -> Result<(), Error> {
        let name = &self.instances()[i].name;
        let pid = self.procs.pid(name).ok_or_else(|| Error::Io {
            what: format!("{name} is not running"),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let st = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .map_err(io(format!("kill -{signal} {pid}")))?;
        if st.success() {
            Ok(())
        } else {
            Err(Error::Io {
                what: format!("kill -{signal} {pid} ({name}): {st}"),
                source: std::io::ErrorKind::Other.into(),
            })
        }
    }

    /// Instance `i`'s Prometheus text.
    pub fn instance_metrics(&self, i: usize) -> Result<String, reqwest::Error> {
        self.http
            .get(format!("{}/metrics", self.instances()[i].ops_base()))
            .send()
            .and_then(|r| r.text())
    }
}

/// `text` with a `[store]` section for PostgreSQL at `url` as instance `instance` (any
/// existing `[store]` section is replaced).
fn with_store(text: &str, url: &str, instance: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            skipping = t == "[store]";
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\ninstance = \"{instance}\"\n"
    ));
    out
}

fn copy_file(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::copy(from, to).map_err(io(format!(
        "copying {} to {}",
        from.display(),
        to.display()
    )))?;
    // Keys and the admin token keep their owner-only mode.
    let mode = std::fs::metadata(from)
        .map_err(io(format!("reading {}", from.display())))?
        .permissions();
    std::fs::set_permissions(to, mode).map_err(io(format!("setting the mode of {}", to.display())))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    let rd = std::fs::read_dir(from).map_err(io(format!("listing {}", from.display())))?;
    for e in rd {
        let e = e.map_err(io(format!("listing {}", from.display())))?;
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()))?;
        } else {
            copy_file(&p, &to.join(e.file_name()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_section_is_replaced_and_keys_set_in_their_section() {
        let t = "[network]\nlisten = \"a\"\nops_listen = \"b\"\n[enrolment]\nlisten = \"c\"\n[store]\nbackend = \"redb\"\n";
        let t2 = set_in_section(t, "enrolment", "listen", "\"z\"").unwrap();
        assert!(t2.contains("[network]\nlisten = \"a\""), "{t2}");
        assert!(t2.contains("[enrolment]\nlisten = \"z\""), "{t2}");
        assert!(set_in_section(t, "network", "nothing", "1").is_none());
        let s = with_store(&t2, "postgres://x", "hub2");
        assert!(!s.contains("redb"), "{s}");
        assert!(
            s.ends_with(
                "[store]\nbackend = \"postgres\"\nurl = \"postgres://x\"\ninstance = \"hub2\"\n"
            ),
            "{s}"
        );
    }
}
