//! An agent directory: its layout and `poros-agent init`, which generates the agency's keys
//! locally (0600, never copied elsewhere) and the certificate requests the hub signs.
//!
//! ```text
//! agent.toml                    configuration
//! keys/tls.key, keys/sign.key   private keys (0600)
//! requests/tls.csr, sign.csr    certificate requests to hand to the hub administrator
//! certs/                        certificates and trust roots written by `poros-hub node add`
//! data/agent.redb, data/bodies  the durable store
//! run/api.addr                  address of the running agent's local API
//! ```
//!
//! The Debian package's layout ([`PACKAGED_DIR`], [`PACKAGED_CONFIG`], docs/install.md): the
//! directory is `/var/lib/poros-agent`, owned by the `poros-agent` user, and `agent.toml`
//! lives in `/etc/poros-agent` with `agent.toml` in the directory a symbolic link to it.
//! `enroll` run as root in a directory that belongs to another user (the package's) gives
//! that user every file it creates there.

use anyhow::{bail, Context, Result};
use poros_config::AgentConfig;
use poros_protocol::AgencyId;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The agent directory of the Debian package (`--dir`'s default for `enroll` and `run`).
pub const PACKAGED_DIR: &str = "/var/lib/poros-agent";
/// Where `enroll` writes `agent.toml` for the package's directory (linked from it).
pub const PACKAGED_CONFIG: &str = "/etc/poros-agent/agent.toml";

/// Where `enroll` writes `agent.toml` when `--config` is not given: [`PACKAGED_CONFIG`] for
/// the package's directory, else in the directory itself.
pub fn default_config(dir: &Path) -> Option<PathBuf> {
    (dir == Path::new(PACKAGED_DIR)).then(|| PathBuf::from(PACKAGED_CONFIG))
}

/// Paths inside an agent directory.
#[derive(Clone, Debug)]
pub struct AgentPaths {
    /// Root.
    pub root: PathBuf,
}

impl AgentPaths {
    /// Paths under `root`.
    pub fn new(root: &Path) -> Self {
        AgentPaths {
            root: root.to_path_buf(),
        }
    }
    /// A path under the root.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    /// `agent.toml`.
    pub fn config(&self) -> PathBuf {
        self.at("agent.toml")
    }
    /// Load and validate `agent.toml`.
    pub fn load_config(&self) -> Result<AgentConfig> {
        if !self.config().exists() {
            bail!(
                "{} is not a Poros agent directory (no agent.toml); create one with `poros-agent init`",
                self.root.display()
            );
        }
        Ok(AgentConfig::load(&self.config())?)
    }
}

/// Create an agent directory for `agency`.
pub fn init(dir: &Path, agency: &AgencyId, hub: SocketAddr, hub_server_name: &str) -> Result<()> {
    let p = AgentPaths::new(dir);
    if p.config().exists() || p.at("keys").exists() {
        bail!(
            "{} already holds a Poros agent (agent.toml or keys/ exists); refusing to overwrite it",
            dir.display()
        );
    }
    create_keys(&p, agency)?;
    write_config(&p, agency, hub, hub_server_name)
}

/// Generate the TLS and signing keys (0600) and their certificate requests.
pub fn create_keys(p: &AgentPaths, agency: &AgencyId) -> Result<()> {
    for sub in ["keys", "requests", "certs", "data", "run"] {
        std::fs::create_dir_all(p.at(sub))
            .with_context(|| format!("creating {}", p.at(sub).display()))?;
    }
    for name in ["tls", "sign"] {
        let key = poros_certs::generate_key()?;
        poros_certs::write_secret_file(
            &p.at(&format!("keys/{name}.key")),
            key.serialize_pem().as_bytes(),
        )?;
        let csr = poros_certs::make_csr(&key, agency)?;
        poros_certs::write_public_file(&p.at(&format!("requests/{name}.csr")), csr.as_bytes())?;
    }
    Ok(())
}

/// Write `agent.toml` (through the symbolic link when it is one: the file it names is
/// rewritten).
pub fn write_config(
    p: &AgentPaths,
    agency: &AgencyId,
    hub: SocketAddr,
    hub_server_name: &str,
) -> Result<()> {
    let mut cfg = AgentConfig::new(agency.clone(), hub);
    cfg.hub_server_name = hub_server_name.to_string();
    let linked = p.config().symlink_metadata().is_ok_and(|m| m.is_symlink());
    if !linked {
        let _ = std::fs::remove_file(p.config());
    }
    poros_certs::write_public_file(&p.config(), cfg.to_toml().as_bytes())?;
    Ok(())
}

/// Before anything is written: `agent.toml` can go to `config` with the directory's
/// `agent.toml` a link to it, i.e. neither exists yet.
pub fn check_link(p: &AgentPaths, config: &Path) -> Result<()> {
    for f in [config, p.config().as_path()] {
        if f.symlink_metadata().is_ok() {
            bail!(
                "{} already exists (another agent's configuration?); refusing to overwrite it",
                f.display()
            );
        }
    }
    Ok(())
}

/// Make `agent.toml` of the directory a symbolic link to `config` (made absolute; its
/// directory created), where [`write_config`] then writes.
pub fn link_config(p: &AgentPaths, config: &Path) -> Result<()> {
    let target =
        std::path::absolute(config).with_context(|| format!("resolving {}", config.display()))?;
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::os::unix::fs::symlink(&target, p.config())
        .with_context(|| format!("linking {} to {}", p.config().display(), target.display()))
}

/// When run as root in an agent directory that belongs to another user (the package makes
/// `/var/lib/poros-agent` the `poros-agent` user's), give that user and the directory's group
/// everything root created in it, so the service can read its keys and secrets (modes are
/// kept: 0600). `made` is a file this command just created (its owner is who runs it).
pub fn hand_over(p: &AgentPaths, made: &Path) -> Result<()> {
    let dir = &p.root;
    let owner = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let me = std::fs::metadata(made)
        .with_context(|| format!("reading {}", made.display()))?
        .uid();
    if me != 0 || owner.uid() == 0 {
        return Ok(());
    }
    Ok(poros_store::chown_tree(dir, owner.uid(), owner.gid())?)
}
