//! Raw QUIC clients for protocol-level tests: connect with any certificate, send hand-made
//! frames and envelopes, and forge node certificates with the deployment's own CA key.
#![allow(dead_code)]

use super::endpoint;
use super::Net;
use poros_protocol::{
    AgencyId, DocumentId, Envelope, Frame, Metadata, RefusalCode, SignedEnvelope, SigningKey,
};
use std::path::Path;
use std::time::Duration;
use time::OffsetDateTime;

pub async fn connect(
    tls: rustls::ClientConfig,
    addr: std::net::SocketAddr,
) -> Result<quinn::Connection, String> {
    let ep = endpoint(tls);
    let connecting = ep.connect(addr, "localhost").map_err(|e| e.to_string())?;
    tokio::time::timeout(Duration::from_secs(20), connecting)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())
}

/// One request on a new stream: write `bytes`, finish, read the answer frame.
pub async fn request(conn: &quinn::Connection, bytes: &[u8]) -> Result<Frame, String> {
    let fut = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        // The hub may stop reading early (refusal); a failed write is then expected.
        let _ = send.write_all(bytes).await;
        let _ = send.finish();
        poros_transport::read_frame(&mut recv)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .map_err(|_| "no answer within 20 s".to_string())?
}

pub fn refused(f: &Frame) -> Option<(RefusalCode, String)> {
    match f {
        Frame::Refused(r) => Some((r.code, r.message.clone())),
        _ => None,
    }
}

/// The hub's acceptance: a hub-made `Accepted` statement (the `poros/3` answer to `Submit`).
pub fn accepted(f: &Frame) -> bool {
    match f {
        Frame::Statement { statement } => statement.statement().is_ok_and(|s| {
            s.from == poros_protocol::Party::Hub
                && matches!(s.kind, poros_protocol::StatementKind::Accepted { .. })
        }),
        _ => false,
    }
}

/// A recipient's answer to a delivery, as the statement it is (either form).
pub fn receipt_of(f: &Frame) -> Option<poros_protocol::Statement> {
    match f {
        Frame::Statement { statement } => statement
            .statement()
            .ok()
            .filter(|s| matches!(s.kind, poros_protocol::StatementKind::Receipt { .. })),
        Frame::Receipt { receipt } => receipt.receipt().ok().map(|r| r.as_statement()),
        _ => None,
    }
}

/// A Submit frame followed by the body.
pub fn submit_bytes(env: &SignedEnvelope, body: &[u8]) -> Vec<u8> {
    let mut b = Frame::Submit {
        envelope: env.clone(),
    }
    .encode()
    .unwrap();
    b.extend_from_slice(body);
    b
}

pub fn signing_key(agent_dir: &Path) -> (SigningKey, Vec<u8>) {
    let k = poros_certs::load_key_pem(&agent_dir.join("keys/sign.key")).unwrap();
    let key = SigningKey::from_pkcs8(&poros_certs::key_pkcs8_der(&k)).unwrap();
    let cert = poros_certs::pem_to_der_certs(
        &std::fs::read_to_string(agent_dir.join("certs/sign.crt")).unwrap(),
    )
    .unwrap()
    .remove(0);
    (key, cert)
}

pub fn envelope(sender: &str, to: &str, body: &[u8], seed: u8) -> Envelope {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Envelope {
        id: DocumentId::new_v7(now, [seed; 10]),
        sender: AgencyId::parse(sender).unwrap(),
        recipients: vec![AgencyId::parse(to).unwrap()],
        meta: Metadata {
            subject: format!("raw {seed}"),
            ..Default::default()
        },
        created_ms: now,
        body_len: body.len() as u64,
        body_sha256: poros_protocol::sha256(body),
        ext: Default::default(),
    }
}

pub fn network_ca(net: &Net) -> poros_certs::Ca {
    let r = |p: &str| std::fs::read_to_string(net.hub_dir.join(p)).unwrap();
    poros_certs::Ca::load(&r("pki/network-ca.crt"), &r("pki/network-ca.key")).unwrap()
}

/// A client config with a fresh key and a node certificate for `agency` from `ca`.
pub fn forged_tls(
    net: &Net,
    ca: &poros_certs::Ca,
    agency: &str,
    nb: OffsetDateTime,
    na: OffsetDateTime,
) -> rustls::ClientConfig {
    let agency = AgencyId::parse(agency).unwrap();
    let key = poros_certs::generate_key().unwrap();
    let csr = poros_certs::make_csr(&key, &agency).unwrap();
    let issued = ca.issue_node_tls(&csr, &agency, nb, na).unwrap();
    let hub_ca = std::fs::read_to_string(net.hub_dir.join("pki/network-ca.crt")).unwrap();
    let ca_der = poros_certs::pem_to_der_certs(&hub_ca).unwrap().remove(0);
    poros_certs::agent_client_config(&ca_der, vec![issued.der], poros_certs::key_pkcs8_der(&key))
        .unwrap()
}
