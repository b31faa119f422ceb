//! `poros-agent enroll`: redeem a one-time token. Keys are generated here and never leave the
//! machine; the requests go to the hub's enrolment endpoint, whose certificate is checked
//! against the network CA pin in the token before anything is sent.

use crate::paths::{self, AgentPaths};
use anyhow::{bail, Context, Result};
use poros_protocol::{EnrollToken, Frame};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Attempts while the hub says its enrolment service is busy (about 30 s in all).
const BUSY_ATTEMPTS: u32 = 6;
/// Deadline of each step of an attempt (handshake, request, answer).
const STEP: Duration = Duration::from_secs(30);

enum Attempt {
    Done(poros_protocol::Credentials),
    /// The hub refused the connection or answered that it is busy: worth retrying.
    Busy(String),
}

/// One enrolment attempt. A refused connection is the hub's enrolment endpoint shedding load
/// (too many connections, or too many from this address), not a failure to authenticate it.
async fn attempt_once(token: &EnrollToken, hub: SocketAddr, request: &Frame) -> Result<Attempt> {
    let tls = poros_certs::enroll_client_config(token.ca_pin)?;
    let ep =
        poros_transport::client_endpoint(tls, &poros_transport::Limits::default(), hub.is_ipv6())?;
    let connecting = ep.connect(hub, &token.server_name)?;
    let conn = match tokio::time::timeout(STEP, connecting).await {
        Err(_) => bail!("the hub's enrolment service at {hub} did not answer within {STEP:?}"),
        Ok(Err(e)) if poros_transport::refused_by_peer(&e) => {
            return Ok(Attempt::Busy("it refused the connection".into()))
        }
        Ok(Err(e)) => {
            return Err(e)
                .with_context(|| format!("cannot authenticate the hub at {hub} for enrolment"))
        }
        Ok(Ok(c)) => c,
    };
    let reply = tokio::time::timeout(STEP, poros_transport::request(&conn, request))
        .await
        .with_context(|| {
            format!("the hub's enrolment service at {hub} did not answer within {STEP:?}")
        })??;
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    match reply {
        Frame::Credentials(c) => Ok(Attempt::Done(c)),
        Frame::Refused(r) if r.code == poros_protocol::RefusalCode::Unavailable => {
            Ok(Attempt::Busy(r.message))
        }
        Frame::Refused(r) => bail!("enrolment refused by the hub: {}", r.message),
        _ => bail!("unexpected answer from the hub's enrolment endpoint"),
    }
}

/// Enrol the agent directory `dir` with `token`, through the enrolment endpoint the token
/// names or `via` (another instance of the same hub); returns the agency enrolled.
pub fn enroll(
    dir: &Path,
    token: &str,
    via: Option<SocketAddr>,
) -> Result<poros_protocol::AgencyId> {
    enroll_with_config(dir, None, token, via)
}

/// [`enroll`], with `agent.toml` written at `config` (when given and not `dir/agent.toml`)
/// and `dir/agent.toml` a symbolic link to it ([`paths::link_config`]). Run as root in a
/// directory owned by another user, the files created in `dir` are given to that user
/// ([`paths::hand_over`]).
pub fn enroll_with_config(
    dir: &Path,
    config: Option<&Path>,
    token: &str,
    via: Option<SocketAddr>,
) -> Result<poros_protocol::AgencyId> {
    let token = EnrollToken::decode(token)?;
    let p = AgentPaths::new(dir);
    if p.at("certs/tls.crt").exists() {
        bail!(
            "{} is already enrolled (certs/tls.crt exists)",
            dir.display()
        );
    }
    let config = config.filter(|c| *c != p.config());
    if let Some(c) = config {
        paths::check_link(&p, c)?;
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
    let hub: SocketAddr = match via {
        Some(a) => a,
        None => token
            .hub
            .parse()
            .with_context(|| format!("the token's hub address {:?} is not host:port", token.hub))?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let request = Frame::Enroll {
        agency: token.agency.clone(),
        secret: token.secret.clone(),
        tls_csr,
        sign_csr,
    };
    let creds = rt.block_on(async {
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=BUSY_ATTEMPTS {
            match attempt_once(&token, hub, &request).await? {
                Attempt::Done(c) => return Ok(c),
                Attempt::Busy(why) if attempt < BUSY_ATTEMPTS => {
                    eprintln!(
                        "{}",
                        poros_i18n::t!(
                            crate::cli::lang(),
                            "agent-enroll-busy",
                            reason = why.to_string(),
                            wait = format!("{wait:?}")
                        )
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
                Attempt::Busy(why) => {
                    bail!("the hub's enrolment service at {hub} is busy ({why}); retry later")
                }
            }
        }
        bail!("the hub's enrolment service at {hub} is busy; retry later")
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
    if let Some(c) = config {
        paths::link_config(&p, c)?;
    }
    paths::write_config(&p, &token.agency, hub_addr, &token.server_name)?;
    paths::hand_over(&p, &p.at("keys"))?;
    Ok(token.agency)
}
