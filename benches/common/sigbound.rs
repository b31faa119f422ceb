//! The signature bound: CPU time of the cryptographic work one small document cannot do
//! without, done with the same functions the agents and the hub call, timed on one core in
//! the bench process.
//!
//! Per document, across all parties:
//! - sender: SHA-256 of the body, signs the envelope (`SignedEnvelope::sign`);
//! - hub: verifies the envelope (`SigningTrust::verify`), SHA-256 of the body;
//! - recipient: verifies the envelope (`SigningTrust::verify_signed_at`), SHA-256 of the
//!   body, signs its receipt (`SignedStatement::sign` of `Receipt::as_statement`);
//! - hub: verifies the receipt; sender: verifies the receipt.
//!
//! The hub's signed acceptance (hub signs, sender verifies) is timed apart, as
//! [`Bound::acceptance_s`]: it is part of the protocol but not of the list above.
//!
//! Keys and certificates are made as a deployment makes them: P-256 keys from
//! `poros_certs::generate_key`, document-signing certificates from the signing CA
//! (`Ca::issue_signing`), one `SigningTrust` per party with the CA and a CRL, so the signer's
//! chain is walked once and cached, as in the running processes.

use super::Res;
use poros_certs::{generate_key, key_pkcs8_der, make_key_csr, Ca, SignerSubject, SigningTrust};
use poros_protocol::envelope::ENVELOPE_CONTEXT;
use poros_protocol::{
    Acceptance, AgencyId, DocumentId, Envelope, Metadata, Outcome, Receipt, SignedEnvelope,
    SignedStatement, SigningKey, STATEMENT_CONTEXT,
};
use serde_json::{json, Value};
use std::time::Instant;

/// One party: its signing key and certificate, and its own trust (its own chain cache).
struct Party {
    key: SigningKey,
    cert: Vec<u8>,
    trust: SigningTrust,
}

/// Keys, certificates and trusts of a sender, the hub and a recipient.
pub struct Parties {
    sender: Party,
    hub: Party,
    recipient: Party,
    sender_id: AgencyId,
    recipient_id: AgencyId,
}

/// Per-document CPU seconds of each step (the fastest round) and the bound they give.
#[derive(Clone, Debug)]
pub struct Bound {
    /// Seconds per document, the steps of the module's list summed.
    pub per_doc_s: f64,
    /// Seconds per document of each step: (name, seconds).
    pub steps: Vec<(&'static str, f64)>,
    /// Seconds per document for the hub's acceptance (sign + sender verifies), not in
    /// `per_doc_s`.
    pub acceptance_s: f64,
    /// Documents timed per round and rounds.
    pub docs: usize,
    pub rounds: usize,
}

impl Bound {
    /// Documents per second the machine's `cores` could do if they did nothing else.
    pub fn docs_per_s(&self, cores: usize) -> f64 {
        cores as f64 / self.per_doc_s
    }

    pub fn json(&self, cores: usize) -> Value {
        json!({
            "per_doc_us": self.per_doc_s * 1e6,
            "steps_us": self.steps.iter().map(|(k, v)| ((*k).to_string(), json!(v * 1e6))).collect::<serde_json::Map<_, _>>(),
            "acceptance_sign_and_verify_us": self.acceptance_s * 1e6,
            "cores": cores,
            "bound_docs_per_s": self.docs_per_s(cores),
            "bound_with_acceptance_docs_per_s": cores as f64 / (self.per_doc_s + self.acceptance_s),
            "docs_per_round": self.docs,
            "rounds": self.rounds,
        })
    }

    /// The fastest of two measurements, step by step (the least disturbed by other load).
    pub fn min(&self, other: &Bound) -> Bound {
        let steps: Vec<(&'static str, f64)> = self
            .steps
            .iter()
            .zip(&other.steps)
            .map(|(a, b)| (a.0, a.1.min(b.1)))
            .collect();
        Bound {
            per_doc_s: steps.iter().map(|s| s.1).sum(),
            steps,
            acceptance_s: self.acceptance_s.min(other.acceptance_s),
            docs: self.docs,
            rounds: self.rounds + other.rounds,
        }
    }
}

fn party(ca: &Ca, subject: SignerSubject, crl: &[u8]) -> Res<Party> {
    let now = time::OffsetDateTime::now_utc();
    let (nb, na) = (
        now - time::Duration::hours(1),
        now + time::Duration::days(30),
    );
    let key = generate_key()?;
    let issued = ca.issue_signing(&make_key_csr(&key, "bench")?, &subject, nb, na)?;
    Ok(Party {
        key: SigningKey::from_pkcs8(&key_pkcs8_der(&key))?,
        cert: issued.der,
        trust: SigningTrust::new(&[ca.cert_der().to_vec()], &[crl.to_vec()])?,
    })
}

impl Parties {
    /// A signing CA with a CRL, and a sender, the hub and a recipient with certificates from it.
    pub fn new(sender: &str, recipient: &str) -> Res<Parties> {
        let now = time::OffsetDateTime::now_utc();
        let (nb, na) = (
            now - time::Duration::hours(1),
            now + time::Duration::days(30),
        );
        let ca = Ca::new_root("Bench Signing CA", nb, na)?;
        let crl = ca.crl(&[], 1, nb, na)?;
        let (sender_id, recipient_id) = (AgencyId::parse(sender)?, AgencyId::parse(recipient)?);
        Ok(Parties {
            sender: party(&ca, SignerSubject::Agency(sender_id.clone()), &crl)?,
            hub: party(&ca, SignerSubject::Hub, &crl)?,
            recipient: party(&ca, SignerSubject::Agency(recipient_id.clone()), &crl)?,
            sender_id,
            recipient_id,
        })
    }

    /// Time `rounds` rounds of `docs` documents of `body_bytes` each on the calling thread;
    /// each step's figure is its fastest round.
    pub fn measure(&self, docs: usize, rounds: usize, body_bytes: usize) -> Res<Bound> {
        const STEPS: [&str; 10] = [
            "sender: sha256 body",
            "sender: sign envelope",
            "hub: verify envelope",
            "hub: sha256 body",
            "recipient: verify envelope",
            "recipient: sha256 body",
            "recipient: sign receipt",
            "hub: verify receipt",
            "sender: verify receipt",
            "hub: sign acceptance + sender verifies it",
        ];
        let mut best = [f64::INFINITY; STEPS.len()];
        let mut body = vec![0x5Au8; body_bytes];
        let secs = |t: Instant| t.elapsed().as_secs_f64();
        for round in 0..rounds + 1 {
            let mut sum = [0f64; STEPS.len()];
            for i in 0..docs {
                body[..8].copy_from_slice(&((round * docs + i) as u64).to_le_bytes());
                let now_ms = super::load::now_ms();
                let now_s = now_ms / 1000;
                let mut rand = [0u8; 10];
                rand[..8].copy_from_slice(&(i as u64).to_le_bytes());
                // Sender.
                let t = Instant::now();
                let digest = poros_protocol::sha256(&body);
                sum[0] += secs(t);
                let env = Envelope {
                    id: DocumentId::new_v7(now_ms, rand),
                    sender: self.sender_id.clone(),
                    recipients: vec![self.recipient_id.clone()],
                    meta: Metadata {
                        subject: format!("Bench document {i}"),
                        ..Default::default()
                    },
                    created_ms: now_ms,
                    body_len: body.len() as u64,
                    body_sha256: digest,
                    ext: Default::default(),
                };
                let t = Instant::now();
                let signed = SignedEnvelope::sign(&env, &self.sender.key, &self.sender.cert)?;
                sum[1] += secs(t);
                // Hub.
                let t = Instant::now();
                self.hub.trust.verify(&signed.0, ENVELOPE_CONTEXT, now_s)?;
                sum[2] += secs(t);
                let t = Instant::now();
                let h = poros_protocol::sha256(&body);
                sum[3] += secs(t);
                // Recipient.
                let t = Instant::now();
                self.recipient
                    .trust
                    .verify_signed_at(&signed.0, ENVELOPE_CONTEXT, now_s, now_s)?;
                sum[4] += secs(t);
                let t = Instant::now();
                let r = poros_protocol::sha256(&body);
                sum[5] += secs(t);
                if h != digest || r != digest {
                    return Err("body hashes differ".into());
                }
                let receipt = Receipt {
                    doc_id: env.id,
                    sender: self.sender_id.clone(),
                    recipient: self.recipient_id.clone(),
                    body_sha256: r,
                    outcome: Outcome::Delivered,
                    time_ms: now_ms,
                }
                .as_statement();
                let t = Instant::now();
                let receipt =
                    SignedStatement::sign(&receipt, &self.recipient.key, &self.recipient.cert)?;
                sum[6] += secs(t);
                // Hub, then sender.
                let t = Instant::now();
                self.hub
                    .trust
                    .verify(&receipt.0, STATEMENT_CONTEXT, now_s)?;
                sum[7] += secs(t);
                let t = Instant::now();
                self.sender
                    .trust
                    .verify(&receipt.0, STATEMENT_CONTEXT, now_s)?;
                sum[8] += secs(t);
                // The acceptance, apart.
                let acc = Acceptance {
                    doc_id: env.id,
                    sender: self.sender_id.clone(),
                    recipients: env.recipients.clone(),
                    body_sha256: digest,
                    body_len: env.body_len,
                    accepted_ms: now_ms,
                }
                .as_statement();
                let t = Instant::now();
                let acc = SignedStatement::sign(&acc, &self.hub.key, &self.hub.cert)?;
                self.sender.trust.verify(&acc.0, STATEMENT_CONTEXT, now_s)?;
                sum[9] += secs(t);
            }
            // Round 0 warms the caches (the chain walk) and is not counted.
            if round > 0 {
                for (b, s) in best.iter_mut().zip(sum) {
                    *b = b.min(s / docs as f64);
                }
            }
        }
        let steps: Vec<(&'static str, f64)> = STEPS[..9].iter().copied().zip(best).collect();
        Ok(Bound {
            per_doc_s: steps.iter().map(|s| s.1).sum(),
            steps,
            acceptance_s: best[9],
            docs,
            rounds,
        })
    }
}
