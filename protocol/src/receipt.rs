//! The `poros/1` forms of the statements about a delivery: the hub's acceptance, the
//! recipient's receipt or rejection, hub notices such as expiry, and the monthly paper report,
//! each signed under its own context. Since `poros/3` each is a kind of [`Statement`]; these
//! forms remain to answer `poros/1` agents and to read what was stored in their time, and
//! [`Receipt::as_statement`] and its siblings show them as the statement they stand for.
//! [`Outcome`], [`NoticeKind`] and the reasons are shared by both forms.

use crate::ids::{AgencyId, DocumentId, Party};
use crate::signed::{Signable, Signed};
use crate::statement::{Staff, Statement, StatementKind};
use crate::Digest;
use serde::{Deserialize, Serialize};

/// Signature context for receipts.
pub const RECEIPT_CONTEXT: &[u8] = b"poros/receipt/v1";
/// Signature context for acceptances.
pub const ACCEPTANCE_CONTEXT: &[u8] = b"poros/acceptance/v1";
/// Signature context for hub notices.
pub const NOTICE_CONTEXT: &[u8] = b"poros/notice/v1";

/// What the recipient did with a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Verified and stored durably in the recipient's inbox.
    Delivered,
    /// Failed a check; quarantined at the recipient.
    Rejected {
        /// Human-readable reason naming the failed check.
        reason: String,
    },
    /// Failed a check; quarantined at the recipient. The reason's code is from the closed set
    /// statistics count by (receipts before it existed use `Rejected`).
    RejectedFor(crate::Reason),
}

impl Outcome {
    /// The rejection's reason, if it is one (a rejection written before reasons had codes
    /// gets the code its wording stands for, see [`crate::ReasonCode::of_legacy_text`]).
    pub fn rejection(&self) -> Option<crate::Reason> {
        match self {
            Outcome::Delivered => None,
            Outcome::Rejected { reason } => Some(crate::Reason::new(
                crate::ReasonCode::of_legacy_text(reason),
                reason.clone(),
            )),
            Outcome::RejectedFor(r) => Some(r.clone()),
        }
    }
}

/// A recipient's signed answer to a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Document concerned.
    pub doc_id: DocumentId,
    /// The agency that sent the document (as claimed by the envelope, if it decoded).
    pub sender: AgencyId,
    /// The agency signing this receipt.
    pub recipient: AgencyId,
    /// Body hash as computed by the recipient over the bytes it received.
    pub body_sha256: Digest,
    /// Delivered or rejected.
    pub outcome: Outcome,
    /// Recipient's clock, Unix milliseconds.
    pub time_ms: u64,
}

/// A receipt signed by the recipient agency.
pub type SignedReceipt = Signed<Receipt>;

impl Signable for Receipt {
    const CONTEXT: &'static [u8] = RECEIPT_CONTEXT;
}

impl Receipt {
    /// The statement this receipt stands for.
    pub fn as_statement(&self) -> Statement {
        Statement {
            doc_id: self.doc_id,
            from: Party::Agency(self.recipient.clone()),
            to: vec![self.sender.clone()],
            kind: StatementKind::Receipt {
                body_sha256: self.body_sha256,
                outcome: self.outcome.clone(),
            },
            staff: Staff::default(),
            note: None,
            time_ms: self.time_ms,
        }
    }
}

impl SignedReceipt {
    /// Decode (after verifying).
    pub fn receipt(&self) -> Result<Receipt, postcard::Error> {
        self.decode()
    }
}

/// The hub's statement that it holds a document durably.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acceptance {
    /// Document accepted.
    pub doc_id: DocumentId,
    /// Sender as authenticated by the connection.
    pub sender: AgencyId,
    /// Recipients queued.
    pub recipients: Vec<AgencyId>,
    /// Body hash verified by the hub.
    pub body_sha256: Digest,
    /// Body length.
    pub body_len: u64,
    /// Hub clock at acceptance, Unix milliseconds.
    pub accepted_ms: u64,
}

/// An acceptance signed by the hub.
pub type SignedAcceptance = Signed<Acceptance>;

impl Signable for Acceptance {
    const CONTEXT: &'static [u8] = ACCEPTANCE_CONTEXT;
}

impl Acceptance {
    /// The statement this acceptance stands for.
    pub fn as_statement(&self) -> Statement {
        Statement {
            doc_id: self.doc_id,
            from: Party::Hub,
            to: vec![self.sender.clone()],
            kind: StatementKind::Accepted {
                recipients: self.recipients.clone(),
                body_sha256: self.body_sha256,
                body_len: self.body_len,
            },
            staff: Staff::default(),
            note: None,
            time_ms: self.accepted_ms,
        }
    }

    /// The acceptance a statement of kind `Accepted` stands for (to answer a `poros/1` agent).
    pub fn of_statement(s: &Statement) -> Option<Acceptance> {
        let StatementKind::Accepted {
            recipients,
            body_sha256,
            body_len,
        } = &s.kind
        else {
            return None;
        };
        Some(Acceptance {
            doc_id: s.doc_id,
            sender: s.to.first()?.clone(),
            recipients: recipients.clone(),
            body_sha256: *body_sha256,
            body_len: *body_len,
            accepted_ms: s.time_ms,
        })
    }
}

impl SignedAcceptance {
    /// Decode (after verifying).
    pub fn acceptance(&self) -> Result<Acceptance, postcard::Error> {
        self.decode()
    }
}

/// Kinds of hub notice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    /// The delivery stayed pending past the configured expiry and was dropped.
    Expired,
    /// The delivery is late for this reason; the hub keeps retrying. Not final: it never
    /// replaces a receipt, a rejection or an expiry, and a later answer supersedes it.
    Delayed {
        /// Why the last attempt failed.
        reason: DelayReason,
    },
    /// The hub's copy of the body was lost or damaged and could not be repaired from the
    /// sender, so the delivery ended without reaching the recipient.
    BodyLost {
        /// Why the repair failed.
        reason: BodyLostReason,
    },
}

impl NoticeKind {
    /// Whether the notice ends the delivery (and so is stored as the recipient's status).
    pub fn is_final(&self) -> bool {
        match self {
            NoticeKind::Expired | NoticeKind::BodyLost { .. } => true,
            NoticeKind::Delayed { .. } => false,
        }
    }
}

/// Why a delivery that the hub keeps retrying has not arrived yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum DelayReason {
    /// The recipient refused it because its storage is full.
    #[error("recipient storage full")]
    RecipientStorageFull,
    /// The recipient refused it for another temporary reason (e.g. a storage I/O error).
    #[error("recipient temporarily unavailable")]
    RecipientUnavailable,
}

impl DelayReason {
    /// Stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            DelayReason::RecipientStorageFull => "recipient_storage_full",
            DelayReason::RecipientUnavailable => "recipient_unavailable",
        }
    }

    /// The delay a recipient's refusal of a delivery stands for, if it is a temporary one.
    pub fn of_refusal(code: crate::RefusalCode) -> Option<DelayReason> {
        match code {
            crate::RefusalCode::StorageFull => Some(DelayReason::RecipientStorageFull),
            crate::RefusalCode::Unavailable => Some(DelayReason::RecipientUnavailable),
            _ => None,
        }
    }
}

/// Why a body the hub lost could not be repaired (a closed set: senders and statistics
/// match on the code, never on text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BodyLostReason {
    /// The sender's agent answered that it no longer holds the body.
    SenderHasNoCopy,
    /// The sender's copy does not match its own signed envelope either.
    SenderCopyDamaged,
    /// The re-upload failed too often (see [`MAX_REPAIR_ATTEMPTS`]).
    RepairAttemptsExhausted,
}

/// Failed re-upload attempts after which the hub gives up repairing a body.
pub const MAX_REPAIR_ATTEMPTS: u32 = 5;

impl BodyLostReason {
    /// Stable machine-readable code (shown by agents and used in metrics labels).
    pub fn code(self) -> &'static str {
        match self {
            BodyLostReason::SenderHasNoCopy => "sender_has_no_copy",
            BodyLostReason::SenderCopyDamaged => "sender_copy_damaged",
            BodyLostReason::RepairAttemptsExhausted => "repair_attempts_exhausted",
        }
    }
}

impl std::fmt::Display for BodyLostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            BodyLostReason::SenderHasNoCopy => {
                "the hub's copy of the body was lost and the sender no longer holds it"
            }
            BodyLostReason::SenderCopyDamaged => {
                "the hub's copy of the body was lost and the sender's copy does not match its envelope"
            }
            BodyLostReason::RepairAttemptsExhausted => {
                "the hub's copy of the body was lost and re-uploads from the sender kept failing"
            }
        };
        write!(f, "{} ({what})", self.code())
    }
}

/// A hub statement about one delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubNotice {
    /// Document concerned.
    pub doc_id: DocumentId,
    /// Sender of the document.
    pub sender: AgencyId,
    /// Recipient concerned.
    pub recipient: AgencyId,
    /// What happened.
    pub kind: NoticeKind,
    /// Hub clock, Unix milliseconds.
    pub time_ms: u64,
}

/// A notice signed by the hub.
pub type SignedNotice = Signed<HubNotice>;

impl Signable for HubNotice {
    const CONTEXT: &'static [u8] = NOTICE_CONTEXT;
}

impl HubNotice {
    /// The statement this notice stands for.
    pub fn as_statement(&self) -> Statement {
        Statement {
            doc_id: self.doc_id,
            from: Party::Hub,
            to: vec![self.sender.clone()],
            kind: StatementKind::Notice {
                recipient: self.recipient.clone(),
                notice: self.kind.clone(),
            },
            staff: Staff::default(),
            note: None,
            time_ms: self.time_ms,
        }
    }

    /// The notice a statement of kind `Notice` stands for (to tell a `poros/1` agent).
    pub fn of_statement(s: &Statement) -> Option<HubNotice> {
        let StatementKind::Notice { recipient, notice } = &s.kind else {
            return None;
        };
        Some(HubNotice {
            doc_id: s.doc_id,
            sender: s.to.first()?.clone(),
            recipient: recipient.clone(),
            kind: notice.clone(),
            time_ms: s.time_ms,
        })
    }
}

impl SignedNotice {
    /// Decode (after verifying).
    pub fn notice(&self) -> Result<HubNotice, postcard::Error> {
        self.decode()
    }
}

/// Signature context for paper-count reports.
pub const PAPER_CONTEXT: &[u8] = b"poros/paper/v1";

/// An agency's monthly count of official documents exchanged on paper only, which the
/// electronic-exchange rate is measured against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperReport {
    /// Reporting agency.
    pub agency: AgencyId,
    /// Month, `YYYY-MM`.
    pub month: String,
    /// Documents sent on paper only.
    pub sent: u64,
    /// Documents received on paper only.
    pub received: u64,
    /// When signed, Unix ms.
    pub time_ms: u64,
}

impl PaperReport {
    /// The statement this report stands for.
    pub fn as_statement(&self) -> Statement {
        Statement {
            doc_id: DocumentId::NIL,
            from: Party::Agency(self.agency.clone()),
            to: Vec::new(),
            kind: StatementKind::PaperCount {
                month: self.month.clone(),
                sent: self.sent,
                received: self.received,
            },
            staff: Staff::default(),
            note: None,
            time_ms: self.time_ms,
        }
    }

    /// Whether `month` is a plausible `YYYY-MM`.
    pub fn month_is_valid(month: &str) -> bool {
        let b = month.as_bytes();
        b.len() == 7
            && b[4] == b'-'
            && b[..4].iter().all(u8::is_ascii_digit)
            && matches!(month[5..].parse::<u8>(), Ok(1..=12))
    }
}

/// A paper report signed by its agency.
pub type SignedPaperReport = Signed<PaperReport>;

impl Signable for PaperReport {
    const CONTEXT: &'static [u8] = PAPER_CONTEXT;
}

impl SignedPaperReport {
    /// Decode (after verifying).
    pub fn report(&self) -> Result<PaperReport, postcard::Error> {
        self.decode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::{test_key, verify_raw};

    #[test]
    fn only_expiry_is_final_and_delays_name_their_reason() {
        assert!(NoticeKind::Expired.is_final());
        let d = NoticeKind::Delayed {
            reason: DelayReason::RecipientStorageFull,
        };
        assert!(!d.is_final());
        assert_eq!(
            DelayReason::of_refusal(crate::RefusalCode::StorageFull)
                .map(|r| r.to_string())
                .as_deref(),
            Some("recipient storage full")
        );
        assert_eq!(DelayReason::of_refusal(crate::RefusalCode::Conflict), None);
    }

    #[test]
    fn receipt_round_trip_and_tamper() {
        let k = test_key();
        let r = Receipt {
            doc_id: DocumentId::new_v7(9, [3; 10]),
            sender: AgencyId::parse("000.00.00.G01").unwrap(),
            recipient: AgencyId::parse("000.00.00.H02").unwrap(),
            body_sha256: [7; 32],
            outcome: Outcome::Rejected {
                reason: "body hash mismatch".into(),
            },
            time_ms: 10,
        };
        let s = SignedReceipt::sign(&r, &k, b"c").unwrap();
        assert_eq!(s.receipt().unwrap(), r);
        assert!(verify_raw(
            k.public_key(),
            RECEIPT_CONTEXT,
            &s.0.payload,
            &s.0.signature
        ));
        // A receipt signature cannot be replayed as an acceptance.
        assert!(!verify_raw(
            k.public_key(),
            ACCEPTANCE_CONTEXT,
            &s.0.payload,
            &s.0.signature
        ));
    }

    #[test]
    fn body_lost_notice_round_trips_and_expiry_encoding_is_unchanged() {
        let k = test_key();
        let n = HubNotice {
            doc_id: DocumentId::new_v7(9, [3; 10]),
            sender: AgencyId::parse("000.00.00.G01").unwrap(),
            recipient: AgencyId::parse("000.00.00.H02").unwrap(),
            kind: NoticeKind::BodyLost {
                reason: BodyLostReason::SenderHasNoCopy,
            },
            time_ms: 10,
        };
        let s = SignedNotice::sign(&n, &k, b"c").unwrap();
        assert_eq!(s.notice().unwrap(), n);
        // Notices stored before the new kind existed still decode: `Expired` stays index 0.
        assert_eq!(postcard::to_allocvec(&NoticeKind::Expired).unwrap(), [0]);
        assert!(BodyLostReason::SenderHasNoCopy
            .to_string()
            .starts_with("sender_has_no_copy"));
    }
}
