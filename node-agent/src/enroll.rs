//! `poros-agent enroll`: redeem a one-time token. Keys are generated here and never leave the
//! machine; the requests go to the hub's enrolment endpoint, whose certificate is checked
//! against the network CA pin in the token before anything is sent.

use crate::paths::{self, AgentPaths};
use anyhow::{bail, Context, Result};
use poros_protocol::{EnrollToken, Frame};
use std::net::SocketAddr;
use std::path::Path;

/// Enrol the agent directory `dir` with `token`; returns the agency enrolled.
pub fn enroll(dir: &Path, token: &str) -> Result<poros_protocol::AgencyId> {
    let token = EnrollToken::decode(token)?;
    let p = AgentPaths::new(dir);
    if p.at("certs/tls.crt").exists() {
        bail!(
            "{} is already enrolled (certs/tls.crt exists)",
            dir.display()
        );
    }
    if p.at("keys").exists() {
        // A previous attempt generated keys but did not finish: reuse them, with their requests.
        if !p.at("requests/tls.csr").exists() || !p.at("requests/sign.csr").exists() {
            bail!(
                "{} holds keys without requests; use a fresh directory",
                dir.display()
            );
        }
    } else {
        paths::create_keys(&p, &token.agency)?;
    }
    let read = |f: &str| {
        std::fs::read_to_string(p.at(f)).with_context(|| format!("reading {}", p.at(f).display()))
    };
    let (tls_csr, sign_csr) = (read("requests/tls.csr")?, read("requests/sign.csr")?);
    let hub: SocketAddr = token
        .hub
        .parse()
        .with_context(|| format!("the token's hub address {:?} is not host:port", token.hub))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let creds = rt.block_on(async {
        let tls = poros_certs::enroll_client_config(token.ca_pin)?;
        let ep = poros_transport::client_endpoint(
            tls,
            &poros_transport::Limits::default(),
            hub.is_ipv6(),
        )?;
        let conn = ep
            .connect(hub, &token.server_name)?
            .await
            .with_context(|| format!("cannot authenticate the hub at {hub} for enrolment"))?;
        let (mut send, mut recv) = conn.open_bi().await?;
        poros_transport::write_frame(
            &mut send,
            &Frame::Enroll {
                agency: token.agency.clone(),
                secret: token.secret.clone(),
                tls_csr,
                sign_csr,
            },
        )
        .await?;
        send.finish()?;
        let reply = poros_transport::read_frame(&mut recv).await?;
        conn.close(0u32.into(), b"done");
        ep.wait_idle().await;
        match reply {
            Frame::Credentials(c) => Ok(c),
            Frame::Refused(r) => bail!("enrolment refused by the hub: {}", r.message),
            _ => bail!("unexpected answer from the hub's enrolment endpoint"),
        }
    })?;
    let hub_addr: SocketAddr = creds.hub.parse().with_context(|| {
        format!(
            "the hub sent an exchange address {:?} that is not host:port",
            creds.hub
        )
    })?;
    // The network CA received must be the one pinned in the token.
    let ca = poros_certs::pem_to_der_certs(&creds.network_ca)?;
    if ca.first().map(|c| poros_protocol::sha256(c)) != Some(token.ca_pin) {
        bail!("the hub sent a network CA that does not match the token's pin");
    }
    for (name, data) in [
        ("certs/tls.crt", creds.tls_cert.as_bytes()),
        ("certs/sign.crt", creds.sign_cert.as_bytes()),
        ("certs/network-ca.crt", creds.network_ca.as_bytes()),
        ("certs/signing-ca.crt", creds.signing_ca.as_bytes()),
        ("certs/signing.crl", creds.signing_crl.as_slice()),
    ] {
        let f = p.at(name);
        let _ = std::fs::remove_file(&f);
        poros_certs::write_public_file(&f, data)?;
    }
    paths::write_config(&p, &token.agency, hub_addr, &token.server_name)?;
    Ok(token.agency)
}
