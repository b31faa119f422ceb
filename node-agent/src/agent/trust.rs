//! Which signatures the agent trusts: every statement it receives is checked against the
//! signing CA as of its own time, with the signing CRL the hub pushes put in force at once.

use super::creds::replace_file;
use super::Agent;
use anyhow::Result;
use poros_certs::Signer;
use poros_protocol::{DocumentId, Frame, Refusal, RefusalCode};
use tracing::debug;

impl Agent {
    /// Verify a signed statement as of `at_secs`, the time it was made (a stored one again,
    /// as of its own time): a signer certificate since retired by renewal is accepted for
    /// statements made before its retirement.
    pub fn trust_verify(
        &self,
        blob: &poros_protocol::SignedBlob,
        context: &[u8],
        at_secs: u64,
    ) -> Result<Signer, poros_certs::VerifyError> {
        self.trust_verify_signed_at(blob, context, at_secs, at_secs)
    }

    /// Verify a statement now that claims to have been made at `signed_at_secs`.
    pub fn trust_verify_signed_at(
        &self,
        blob: &poros_protocol::SignedBlob,
        context: &[u8],
        now_secs: u64,
        signed_at_secs: u64,
    ) -> Result<Signer, poros_certs::VerifyError> {
        match self.trust.read() {
            Ok(t) => t.verify_signed_at(blob, context, now_secs, signed_at_secs),
            Err(p) => p
                .into_inner()
                .verify_signed_at(blob, context, now_secs, signed_at_secs),
        }
    }

    /// Put a signing CRL pushed by the hub in force (signatures by revoked certificates are
    /// refused from now on) and keep it for restarts.
    pub(super) fn apply_crl(&self, crl: Vec<u8>) -> Result<Frame> {
        let mut trust = match self.trust.write() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if let Err(e) = trust.set_crls(std::slice::from_ref(&crl)) {
            return Ok(Frame::Refused(Refusal {
                code: RefusalCode::Malformed,
                message: format!("CRL refused: {e}"),
            }));
        }
        drop(trust);
        replace_file(&self.paths.at("certs/signing.crl"), &crl, false)?;
        debug!(agency = %self.cfg.agency, bytes = crl.len(), "signing CRL updated");
        Ok(Frame::Ack {
            doc_id: DocumentId::from_bytes([0; 16]),
        })
    }
}
