//! The checks made on a document and on its receipts, once, for every party: the hub when it
//! accepts a submission and when it records a receipt, a recipient when a delivery arrives,
//! the sender when a receipt is relayed to it. Pure functions over already-decoded values and
//! the verified signer; each failure is a [`Reason`] with its code.

use crate::envelope::Envelope;
use crate::ids::{AgencyId, DocumentId};
use crate::reason::{Reason, ReasonCode};
use crate::receipt::{Outcome, Receipt};
use crate::statement::{Statement, StatementKind};
use crate::Digest;

/// An envelope whose signature verified as `signer`'s: it must be the sender's own, be
/// consistent, and announce a body within `max_body` bytes.
pub fn admit_envelope(env: &Envelope, signer: &AgencyId, max_body: u64) -> Result<(), Reason> {
    if &env.sender != signer {
        return Err(Reason::new(
            ReasonCode::SignerNotForAgency,
            format!(
                "envelope claims sender {} but is signed by {signer}",
                env.sender
            ),
        ));
    }
    env.validate()
        .map_err(|e| Reason::new(ReasonCode::Other, format!("invalid envelope: {e}")))?;
    if env.body_len > max_body {
        return Err(Reason::new(
            ReasonCode::TooLarge,
            format!(
                "body of {} bytes exceeds the limit of {max_body} bytes",
                env.body_len
            ),
        ));
    }
    Ok(())
}

/// A delivery is for `me` if the envelope lists it, or if `added` (the sender's update,
/// verified by the caller) names it.
pub fn addressed_to(env: &Envelope, me: &AgencyId, added: bool) -> Result<(), Reason> {
    if added || env.recipients.contains(me) {
        Ok(())
    } else {
        Err(Reason::new(
            ReasonCode::NotAddressed,
            format!("document is not addressed to {me}"),
        ))
    }
}

/// The body received, hashed over the bytes that arrived, against its signed envelope.
pub fn check_body(env: &Envelope, sha256: &Digest, len: u64) -> Result<(), Reason> {
    if sha256 != &env.body_sha256 || len != env.body_len {
        return Err(Reason::new(
            ReasonCode::BodyHashMismatch,
            format!(
                "body SHA-256 {} ({len} bytes) does not match the signed envelope ({}, {} bytes)",
                hex(sha256),
                hex(&env.body_sha256),
                env.body_len
            ),
        ));
    }
    Ok(())
}

/// A receipt (in either form, as the statement it is) whose signature verified as `signer`'s,
/// about document `doc` whose body hashes to `body_sha256`: it must be a receipt, made by the
/// recipient that signed it, name that document, and, if it says delivered, acknowledge that
/// body.
pub fn check_receipt_statement(
    r: &Statement,
    signer: &AgencyId,
    doc: &DocumentId,
    body_sha256: &Digest,
) -> Result<(), Reason> {
    let StatementKind::Receipt {
        body_sha256: acknowledged,
        outcome,
    } = &r.kind
    else {
        return Err(Reason::new(
            ReasonCode::Other,
            format!(
                "a delivery is answered by a receipt, not a {}",
                r.kind.label()
            ),
        ));
    };
    if r.from != *signer {
        return Err(Reason::new(
            ReasonCode::SignerNotForAgency,
            format!(
                "receipt names recipient {} but is signed by {signer}",
                r.from
            ),
        ));
    }
    if &r.doc_id != doc {
        return Err(Reason::new(
            ReasonCode::UnknownDocument,
            format!("receipt names document {} instead of {doc}", r.doc_id),
        ));
    }
    if outcome == &Outcome::Delivered && acknowledged != body_sha256 {
        return Err(Reason::new(
            ReasonCode::BodyHashMismatch,
            format!("receipt for {doc} acknowledges a different body"),
        ));
    }
    Ok(())
}

/// [`check_receipt_statement`] for a receipt in the `poros/1` form.
pub fn check_receipt(
    r: &Receipt,
    signer: &AgencyId,
    doc: &DocumentId,
    body_sha256: &Digest,
) -> Result<(), Reason> {
    check_receipt_statement(&r.as_statement(), signer, doc, body_sha256)
}

fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Metadata;

    fn a(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }

    fn env() -> Envelope {
        Envelope {
            id: DocumentId::new_v7(1, [1; 10]),
            sender: a("000.00.00.G01"),
            recipients: vec![a("000.00.00.H02")],
            meta: Metadata {
                subject: "Kế hoạch".into(),
                ..Metadata::default()
            },
            created_ms: 1,
            body_len: 10,
            body_sha256: [7; 32],
            ext: Default::default(),
        }
    }

    #[test]
    fn envelope_admission_names_each_failure_by_code() {
        let e = env();
        assert!(admit_envelope(&e, &a("000.00.00.G01"), 10).is_ok());
        let code = |r: Result<(), Reason>| r.unwrap_err().code;
        assert_eq!(
            code(admit_envelope(&e, &a("000.00.00.G09"), 10)),
            ReasonCode::SignerNotForAgency
        );
        assert_eq!(
            code(admit_envelope(&e, &a("000.00.00.G01"), 9)),
            ReasonCode::TooLarge
        );
        let mut bad = env();
        bad.meta.subject = " ".into();
        assert_eq!(
            code(admit_envelope(&bad, &a("000.00.00.G01"), 10)),
            ReasonCode::Other
        );
        assert_eq!(
            code(addressed_to(&e, &a("000.00.00.H03"), false)),
            ReasonCode::NotAddressed
        );
        assert!(addressed_to(&e, &a("000.00.00.H03"), true).is_ok());
        assert_eq!(
            code(check_body(&e, &[8; 32], 10)),
            ReasonCode::BodyHashMismatch
        );
        assert_eq!(
            code(check_body(&e, &[7; 32], 11)),
            ReasonCode::BodyHashMismatch
        );
        assert!(check_body(&e, &[7; 32], 10).is_ok());
    }

    #[test]
    fn receipts_must_be_the_recipients_and_about_the_body_sent() {
        let e = env();
        let mut r = Receipt {
            doc_id: e.id,
            sender: e.sender.clone(),
            recipient: a("000.00.00.H02"),
            body_sha256: [7; 32],
            outcome: Outcome::Delivered,
            time_ms: 2,
        };
        let me = a("000.00.00.H02");
        assert!(check_receipt(&r, &me, &e.id, &[7; 32]).is_ok());
        let code = |r: Result<(), Reason>| r.unwrap_err().code;
        assert_eq!(
            code(check_receipt(&r, &a("000.00.00.H03"), &e.id, &[7; 32])),
            ReasonCode::SignerNotForAgency
        );
        assert_eq!(
            code(check_receipt(
                &r,
                &me,
                &DocumentId::new_v7(2, [2; 10]),
                &[7; 32]
            )),
            ReasonCode::UnknownDocument
        );
        assert_eq!(
            code(check_receipt(&r, &me, &e.id, &[9; 32])),
            ReasonCode::BodyHashMismatch
        );
        // A rejection reports the hash of what arrived, which may differ.
        r.outcome = Outcome::RejectedFor(Reason::new(ReasonCode::BodyHashMismatch, "x"));
        assert!(check_receipt(&r, &me, &e.id, &[9; 32]).is_ok());
    }
}
