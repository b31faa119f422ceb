//! The agent's keys and certificates: loaded at start, and renewed at two thirds of their
//! lifetime over the authenticated hub connection (keys are made here, only CSRs travel).

use super::Agent;
use crate::paths::AgentPaths;
use anyhow::{Context, Result};
use poros_protocol::{AgencyId, Frame, SigningKey};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

use super::now_ms;

/// The agent's current keys and certificates (replaced as a whole on renewal).
#[derive(Clone)]
pub(super) struct Creds {
    pub(super) sign_key: Arc<SigningKey>,
    pub(super) sign_cert: Vec<u8>,
    pub(super) client_tls: rustls::ClientConfig,
    pub(super) not_before: i64,
    pub(super) not_after: i64,
}

/// QUIC application close code: the agent closed this connection to reconnect with renewed
/// certificates.
const CLOSE_RENEWED: u32 = 0x20;

pub(super) fn read_creds(paths: &AgentPaths, agency: &AgencyId) -> Result<(Creds, Vec<u8>)> {
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).with_context(|| {
            format!(
                "reading {} (enrol with `poros-agent enroll --token ...`, or have the hub administrator run `poros-hub node add --agency {} --requests {} --out {}`)",
                p.display(),
                agency,
                paths.at("requests").display(),
                paths.at("certs").display()
            )
        })
    };
    let first = |pem: String, what: &str| -> Result<Vec<u8>> {
        poros_certs::pem_to_der_certs(&pem)?
            .into_iter()
            .next()
            .with_context(|| format!("no certificate in {what}"))
    };
    let tls_cert = first(read(paths.at("certs/tls.crt"))?, "certs/tls.crt")?;
    let sign_cert = first(read(paths.at("certs/sign.crt"))?, "certs/sign.crt")?;
    let network_ca = first(
        read(paths.at("certs/network-ca.crt"))?,
        "certs/network-ca.crt",
    )?;
    let signing_ca = first(
        read(paths.at("certs/signing-ca.crt"))?,
        "certs/signing-ca.crt",
    )?;
    for (der, what) in [(&tls_cert, "certs/tls.crt"), (&sign_cert, "certs/sign.crt")] {
        let a = poros_certs::agency_from_cert(der).with_context(|| what.to_string())?;
        if &a != agency {
            anyhow::bail!("{what} is issued to {a}, but agent.toml says agency = {agency}");
        }
    }
    let not_before = poros_certs::cert_not_before_unix(&tls_cert)?;
    let not_after = poros_certs::cert_not_after_unix(&tls_cert)?;
    let tls_key = poros_certs::load_key_pem(&paths.at("keys/tls.key"))?;
    let sign_key = poros_certs::load_key_pem(&paths.at("keys/sign.key"))?;
    let client_tls = poros_certs::agent_client_config(
        &network_ca,
        vec![tls_cert],
        poros_certs::key_pkcs8_der(&tls_key),
    )?;
    let sign_key = SigningKey::from_pkcs8(&poros_certs::key_pkcs8_der(&sign_key))?;
    Ok((
        Creds {
            sign_key: Arc::new(sign_key),
            sign_cert,
            client_tls,
            not_before,
            not_after,
        },
        signing_ca,
    ))
}

/// Replace a file atomically: write a sibling, then rename over it.
pub(super) fn replace_file(path: &std::path::Path, data: &[u8], secret: bool) -> Result<()> {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    if secret {
        poros_certs::write_secret_file(&tmp, data)?;
    } else {
        poros_certs::write_public_file(&tmp, data)?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

impl Agent {
    /// The current signing key and certificate (they change on renewal).
    pub(crate) fn signing(&self) -> (Arc<SigningKey>, Vec<u8>) {
        let c = self.creds();
        (c.sign_key, c.sign_cert)
    }

    pub(super) fn creds(&self) -> Creds {
        match self.creds.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Renews keys and certificates at two thirds of their lifetime, over the live connection.
    pub(super) async fn renewer(self: Arc<Self>) {
        loop {
            let c = self.creds();
            let lifetime = (c.not_after - c.not_before).max(1);
            let due = c.not_before + lifetime * 2 / 3;
            let now = (now_ms() / 1000) as i64;
            // Check often enough for short test lifetimes, rarely for real ones.
            let tick = Duration::from_secs((lifetime as u64 / 20).clamp(1, 60));
            if now >= due {
                let conn = self.conn.borrow().clone();
                if let Some(conn) = conn {
                    match self.renew(&conn).await {
                        Ok(()) => continue,
                        Err(e) => {
                            warn!(agency = %self.cfg.agency, error = %e, "certificate renewal failed; will retry")
                        }
                    }
                }
            }
            tokio::time::sleep(tick).await;
        }
    }

    async fn renew(&self, conn: &quinn::Connection) -> Result<()> {
        let tls_key = poros_certs::generate_key()?;
        let sign_key = poros_certs::generate_key()?;
        let tls_csr = poros_certs::make_csr(&tls_key, &self.cfg.agency)?;
        let sign_csr = poros_certs::make_csr(&sign_key, &self.cfg.agency)?;
        let creds =
            match poros_transport::request(conn, &Frame::Renew { tls_csr, sign_csr }).await? {
                Frame::Credentials(c) => c,
                Frame::Refused(r) => anyhow::bail!("hub refused renewal: {r}"),
                _ => anyhow::bail!("unexpected answer to a renewal"),
            };
        // New keys first, then certificates: at every instant the files on disk are either
        // the old pair or the new one only once both renames are done; a crash in between
        // leaves a key whose certificate is missing, which `run` reports clearly.
        let p = &self.paths;
        replace_file(
            &p.at("keys/tls.key"),
            tls_key.serialize_pem().as_bytes(),
            true,
        )?;
        replace_file(
            &p.at("keys/sign.key"),
            sign_key.serialize_pem().as_bytes(),
            true,
        )?;
        replace_file(&p.at("certs/tls.crt"), creds.tls_cert.as_bytes(), false)?;
        replace_file(&p.at("certs/sign.crt"), creds.sign_cert.as_bytes(), false)?;
        let (new, _) = read_creds(p, &self.cfg.agency)?;
        let (nb, na) = (new.not_before, new.not_after);
        match self.creds.write() {
            Ok(mut c) => *c = new,
            Err(pz) => *pz.into_inner() = new,
        }
        info!(agency = %self.cfg.agency, not_before = nb, not_after = na, "certificates renewed with fresh keys");
        // Reconnect with the new TLS certificate; in-flight operations are retried.
        conn.close(CLOSE_RENEWED.into(), b"renewed");
        Ok(())
    }
}
