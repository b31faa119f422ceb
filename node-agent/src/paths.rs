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

use anyhow::{bail, Context, Result};
use poros_config::AgentConfig;
use poros_protocol::AgencyId;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// Write `agent.toml`.
pub fn write_config(
    p: &AgentPaths,
    agency: &AgencyId,
    hub: SocketAddr,
    hub_server_name: &str,
) -> Result<()> {
    let mut cfg = AgentConfig::new(agency.clone(), hub);
    cfg.hub_server_name = hub_server_name.to_string();
    let _ = std::fs::remove_file(p.config());
    poros_certs::write_public_file(&p.config(), cfg.to_toml().as_bytes())?;
    Ok(())
}
