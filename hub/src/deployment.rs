//! A hub deployment directory: creating it (`poros-hub init`) and loading the key material
//! the running hub needs (node certificates are issued by the hub itself, in `lifecycle`).
//!
//! Layout (private keys 0600, never copied elsewhere):
//! ```text
//! hub.toml                       commented configuration
//! admin.token                    admin API credential (0600)
//! pki/network-ca.{crt,key}       issues node TLS certificates and the hub's server certificate
//! pki/signing-ca.{crt,key}       issues document-signing certificates
//! pki/hub-tls.{crt,key}          the hub's QUIC server identity
//! pki/hub-sign.{crt,key}         the key that signs acceptances and notices
//! pki/network.crl, signing.crl   revocation lists (DER)
//! data/hub.redb, data/bodies/    the durable store
//! run/quic.addr, run/ops.addr    addresses actually bound by a running hub
//! ```
//!
//! The Debian package's layout ([`PACKAGED_DIR`], [`PACKAGED_CONFIG`], docs/install.md): the
//! directory is `/var/lib/poros-hub`, owned by the `poros-hub` user, and `hub.toml` lives in
//! `/etc/poros-hub` (root's, mode 0644) with `hub.toml` in the directory a symbolic link to
//! it, so every command that takes `--dir` finds it. `init` run as root in a directory that
//! belongs to another user (the package's) gives that user every file it creates there.

use anyhow::{bail, Context, Result};
use poros_certs::{Ca, SignerSubject};
use poros_protocol::SigningKey;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// The deployment directory of the Debian package (`--dir`'s default).
pub const PACKAGED_DIR: &str = "/var/lib/poros-hub";
/// Where `init` writes `hub.toml` for the package's directory (linked from it).
pub const PACKAGED_CONFIG: &str = "/etc/poros-hub/hub.toml";

/// Where `init` writes `hub.toml` when `--config` is not given: [`PACKAGED_CONFIG`] for the
/// package's directory, else in the directory itself.
pub fn default_config(dir: &Path) -> Option<PathBuf> {
    (dir == Path::new(PACKAGED_DIR)).then(|| PathBuf::from(PACKAGED_CONFIG))
}

/// Paths inside a deployment directory.
#[derive(Clone, Debug)]
pub struct HubPaths {
    /// Deployment root.
    pub root: PathBuf,
}

impl HubPaths {
    /// Paths under `root`.
    pub fn new(root: &Path) -> Self {
        HubPaths {
            root: root.to_path_buf(),
        }
    }
    /// A file under the root.
    pub fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    /// `hub.toml`.
    pub fn config(&self) -> PathBuf {
        self.at("hub.toml")
    }
    /// The redb file.
    pub fn db(&self) -> PathBuf {
        self.at("data/hub.redb")
    }
    /// Body files.
    pub fn bodies(&self) -> PathBuf {
        self.at("data/bodies")
    }
}

/// What `init` needs to know.
pub struct InitOptions {
    /// QUIC listen address.
    pub listen: SocketAddr,
    /// Operations listener.
    pub ops_listen: SocketAddr,
    /// DNS names for the hub certificate.
    pub dns_names: Vec<String>,
    /// IP addresses for the hub certificate.
    pub ips: Vec<IpAddr>,
    /// Enrolment endpoint.
    pub enroll_listen: SocketAddr,
}

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn read(p: &Path) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

/// Create a new deployment in `dir`; refuses if one already exists there.
pub fn init(dir: &Path, opts: &InitOptions) -> Result<()> {
    init_with_config(dir, None, opts)
}

/// [`init`], with `hub.toml` written at `config` (when given and not `dir/hub.toml`) and
/// `dir/hub.toml` a symbolic link to it. Refuses if either already exists. Run as root in a
/// directory owned by another user, the files created in `dir` are given to that user and
/// its group (the configuration file stays root's, readable by all).
pub fn init_with_config(dir: &Path, config: Option<&Path>, opts: &InitOptions) -> Result<()> {
    let paths = HubPaths::new(dir);
    if paths.config().symlink_metadata().is_ok() || paths.at("pki").exists() {
        bail!(
            "{} already holds a Poros deployment (hub.toml or pki/ exists); refusing to overwrite it",
            dir.display()
        );
    }
    let config = match config {
        Some(c) if c != paths.config() => {
            Some(std::path::absolute(c).with_context(|| format!("resolving {}", c.display()))?)
        }
        _ => None,
    };
    if let Some(c) = &config {
        if c.symlink_metadata().is_ok() {
            bail!(
                "{} already exists (another deployment's configuration?); refusing to overwrite it",
                c.display()
            );
        }
    }
    for sub in ["pki", "data", "run"] {
        std::fs::create_dir_all(paths.at(sub))
            .with_context(|| format!("creating {}", paths.at(sub).display()))?;
    }
    let now = OffsetDateTime::now_utc();
    let nb = now - Duration::minutes(5);
    let network = Ca::new_root("Poros Network CA", nb, now + days(3650))?;
    let signing = Ca::new_root("Poros Document Signing CA", nb, now + days(3650))?;
    write_ca(&paths, "network-ca", &network)?;
    write_ca(&paths, "signing-ca", &signing)?;

    let tls_key = poros_certs::generate_key()?;
    let csr = poros_certs::make_key_csr(&tls_key, "poros-hub")?;
    let tls = network.issue_server(&csr, &opts.dns_names, &opts.ips, nb, now + days(825))?;
    poros_certs::write_secret_file(
        &paths.at("pki/hub-tls.key"),
        tls_key.serialize_pem().as_bytes(),
    )?;
    poros_certs::write_public_file(&paths.at("pki/hub-tls.crt"), tls.pem.as_bytes())?;

    let sign_key = poros_certs::generate_key()?;
    let csr = poros_certs::make_key_csr(&sign_key, "poros-hub")?;
    let sign = signing.issue_signing(&csr, &SignerSubject::Hub, nb, now + days(825))?;
    poros_certs::write_secret_file(
        &paths.at("pki/hub-sign.key"),
        sign_key.serialize_pem().as_bytes(),
    )?;
    poros_certs::write_public_file(&paths.at("pki/hub-sign.crt"), sign.pem.as_bytes())?;

    for (name, ca) in [("network", &network), ("signing", &signing)] {
        let crl = ca.crl(&[], 1, nb, now + days(30))?;
        poros_certs::write_public_file(&paths.at(&format!("pki/{name}.crl")), &crl)?;
    }

    let mut token = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut token)
        .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
    poros_certs::write_secret_file(&paths.at("admin.token"), hex::encode(token).as_bytes())?;

    let server_name = opts
        .dns_names
        .first()
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let toml = poros_config::hub_toml_template(
        opts.listen,
        opts.ops_listen,
        opts.enroll_listen,
        &server_name,
    );
    match &config {
        None => poros_certs::write_public_file(&paths.config(), toml.as_bytes())?,
        Some(c) => {
            if let Some(parent) = c.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            poros_certs::write_public_file(c, toml.as_bytes())?;
            std::os::unix::fs::symlink(c, paths.config()).with_context(|| {
                format!("linking {} to {}", paths.config().display(), c.display())
            })?;
        }
    }
    hand_over(dir)
}

/// When `init` runs as root in a directory that belongs to another user (the package makes
/// `/var/lib/poros-hub` the `poros-hub` user's), give that user and the directory's group
/// everything root created in it, so the service can read its keys (modes are kept: 0600).
fn hand_over(dir: &Path) -> Result<()> {
    let owner = std::fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let me = std::fs::metadata(dir.join("pki"))
        .with_context(|| format!("reading {}", dir.join("pki").display()))?
        .uid();
    if me != 0 || owner.uid() == 0 {
        return Ok(());
    }
    Ok(poros_store::chown_tree(dir, owner.uid(), owner.gid())?)
}

fn write_ca(paths: &HubPaths, name: &str, ca: &Ca) -> Result<()> {
    poros_certs::write_secret_file(
        &paths.at(&format!("pki/{name}.key")),
        ca.key_pem().as_bytes(),
    )?;
    poros_certs::write_public_file(
        &paths.at(&format!("pki/{name}.crt")),
        ca.cert_pem().as_bytes(),
    )?;
    Ok(())
}

fn load_ca(paths: &HubPaths, name: &str) -> Result<Ca> {
    let cert = read(&paths.at(&format!("pki/{name}.crt")))?;
    // Checks the key file is private (0600) before using it.
    poros_certs::load_key_pem(&paths.at(&format!("pki/{name}.key")))?;
    let key = read(&paths.at(&format!("pki/{name}.key")))?;
    Ca::load(&cert, &key).with_context(|| format!("loading the {name} CA"))
}

fn first_der(p: &Path) -> Result<Vec<u8>> {
    poros_certs::pem_to_der_certs(&read(p)?)?
        .into_iter()
        .next()
        .with_context(|| format!("{}: no certificate in file", p.display()))
}

/// The QUIC stateless-reset key (`pki/quic-reset.key`, 0600), created on first use so that
/// deployments made before it existed get one too.
fn quic_reset_key(paths: &HubPaths) -> Result<[u8; 32]> {
    let p = paths.at("pki/quic-reset.key");
    if !p.exists() {
        let mut k = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k)
            .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
        poros_certs::write_secret_file(&p, hex::encode(k).as_bytes())?;
    }
    let text = read(&p)?;
    let bytes = hex::decode(text.trim()).ok().filter(|b| b.len() == 32);
    let bytes = bytes.with_context(|| format!("{}: expected 64 hex digits", p.display()))?;
    let mut k = [0u8; 32];
    k.copy_from_slice(&bytes);
    Ok(k)
}

/// Key material of a running hub.
pub struct HubKeys {
    /// Issues node TLS certificates.
    pub network_ca: Ca,
    /// Issues signing certificates.
    pub signing_ca: Ca,
    /// The hub's TLS chain (leaf first) and key, to rebuild server configs (CRL changes).
    pub tls_chain: Vec<Vec<u8>>,
    /// PKCS#8 of the hub's TLS key.
    pub tls_key: Vec<u8>,
    /// rustls server configuration (mutual TLS, agency identity extraction).
    pub server_tls: rustls::ServerConfig,
    /// Verifies agencies' signatures.
    pub signing_trust: std::sync::RwLock<poros_certs::SigningTrust>,
    /// Signs acceptances and notices.
    pub hub_sign_key: SigningKey,
    /// The hub's signing certificate (DER).
    pub hub_sign_cert: Vec<u8>,
    /// Key for QUIC stateless resets, stable across restarts.
    pub reset_key: [u8; 32],
}

/// Load everything the running hub needs from the deployment.
pub fn load_keys(
    paths: &HubPaths,
    observer: Option<poros_certs::RefusalObserver>,
) -> Result<HubKeys> {
    let network_ca = first_der(&paths.at("pki/network-ca.crt"))?;
    let signing_ca = first_der(&paths.at("pki/signing-ca.crt"))?;
    let network_crl = std::fs::read(paths.at("pki/network.crl"))
        .with_context(|| format!("reading {}", paths.at("pki/network.crl").display()))?;
    let signing_crl = std::fs::read(paths.at("pki/signing.crl"))
        .with_context(|| format!("reading {}", paths.at("pki/signing.crl").display()))?;
    let tls_chain = poros_certs::pem_to_der_certs(&read(&paths.at("pki/hub-tls.crt"))?)?;
    let tls_key = poros_certs::load_key_pem(&paths.at("pki/hub-tls.key"))?;
    let tls_key = poros_certs::key_pkcs8_der(&tls_key);
    let server_tls = poros_certs::hub_server_config_observed(
        &network_ca,
        &[network_crl],
        tls_chain.clone(),
        tls_key.clone(),
        observer,
    )?;
    let signing_trust = poros_certs::SigningTrust::new(&[signing_ca], &[signing_crl])?;
    let sign_key = poros_certs::load_key_pem(&paths.at("pki/hub-sign.key"))?;
    let hub_sign_key = SigningKey::from_pkcs8(&poros_certs::key_pkcs8_der(&sign_key))?;
    let hub_sign_cert = first_der(&paths.at("pki/hub-sign.crt"))?;
    let reset_key = quic_reset_key(paths)?;
    Ok(HubKeys {
        network_ca: load_ca(paths, "network-ca")?,
        signing_ca: load_ca(paths, "signing-ca")?,
        tls_chain,
        tls_key,
        reset_key,
        server_tls,
        signing_trust: std::sync::RwLock::new(signing_trust),
        hub_sign_key,
        hub_sign_cert,
    })
}
