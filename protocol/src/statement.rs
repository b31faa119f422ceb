//! Every statement a party signs about a document, as one type with a kind:
//! - the hub's acceptance of a submission and its notices about a delivery (expired, delayed,
//!   body lost);
//! - a recipient's receipt or rejection of a delivery;
//! - business statuses from a recipient (the national codes `01`–`06`);
//! - change requests from the sender (take-back `13`, update, replace) and each recipient's
//!   answer to one (`15` accepted, `16` refused), and the sender's reminders;
//! - an agency's monthly paper count, which is about a month rather than a document.
//!
//! A statement names its document, who makes it and whom it is for; the hub routes it on those
//! three alone and never on its kind. What may be said when is decided by [`crate::rules`].
//! The separately signed receipt, acceptance, notice and paper-report types of
//! [`crate::receipt`] are the forms of `poros/1`, kept to talk to such agents and to read what
//! was stored in them.

use crate::envelope::{Metadata, MAX_FIELD_LEN};
use crate::ids::{AgencyId, DocumentId, Party};
use crate::reason::{Reason, ReasonCode};
use crate::receipt::{NoticeKind, Outcome, PaperReport};
use crate::signed::{Signable, Signed};
use crate::Digest;
use serde::{Deserialize, Serialize};

/// Signature context for statements.
pub const STATEMENT_CONTEXT: &[u8] = b"poros/statement/v1";

/// Upper bound on a note or a reason's text, in bytes.
pub const MAX_NOTE_LEN: usize = 2048;

/// The staff member who acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Staff {
    /// Department or unit.
    pub department: String,
    /// Full name.
    pub name: String,
    /// E-mail address, if given.
    pub email: Option<String>,
    /// Telephone number, if given.
    pub phone: Option<String>,
}

impl Staff {
    /// Every field one line of bounded length; department and name present.
    pub fn validate(&self) -> Result<(), Reason> {
        for (field, v) in [
            ("staff department", &self.department),
            ("staff name", &self.name),
        ] {
            if v.trim().is_empty() {
                return Err(Reason::new(ReasonCode::Other, format!("{field} is empty")));
            }
        }
        let fields = [
            ("staff department", Some(&self.department)),
            ("staff name", Some(&self.name)),
            ("staff email", self.email.as_ref()),
            ("staff phone", self.phone.as_ref()),
        ];
        for (field, v) in fields {
            if let Some(v) = v {
                crate::text::single_line(field, v, MAX_FIELD_LEN)
                    .map_err(|e| Reason::new(ReasonCode::Other, e.to_string()))?;
            }
        }
        Ok(())
    }
}

/// A recipient's business status for a document it received (the national codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BusinessStatus {
    /// `01`: the recipient's software has it; no clerk has acted yet.
    Arrived,
    /// `02`: refused by the recipient's clerk, with a reason.
    Rejected,
    /// `03`: accepted and entered in the incoming register.
    Registered,
    /// `04`: assigned for handling.
    Assigned,
    /// `05`: being processed (may repeat, with a note).
    Processing,
    /// `06`: completed.
    Completed,
}

impl BusinessStatus {
    /// Every status, in code order.
    pub const ALL: [BusinessStatus; 6] = [
        BusinessStatus::Arrived,
        BusinessStatus::Rejected,
        BusinessStatus::Registered,
        BusinessStatus::Assigned,
        BusinessStatus::Processing,
        BusinessStatus::Completed,
    ];

    /// The national two-digit code.
    pub fn code(self) -> &'static str {
        match self {
            BusinessStatus::Arrived => "01",
            BusinessStatus::Rejected => "02",
            BusinessStatus::Registered => "03",
            BusinessStatus::Assigned => "04",
            BusinessStatus::Processing => "05",
            BusinessStatus::Completed => "06",
        }
    }

    /// Stable word for the command line, JSON and metrics.
    pub fn label(self) -> &'static str {
        match self {
            BusinessStatus::Arrived => "arrived",
            BusinessStatus::Rejected => "rejected",
            BusinessStatus::Registered => "registered",
            BusinessStatus::Assigned => "assigned",
            BusinessStatus::Processing => "processing",
            BusinessStatus::Completed => "completed",
        }
    }

    /// Whether nothing may follow it.
    pub fn is_final(self) -> bool {
        matches!(self, BusinessStatus::Rejected | BusinessStatus::Completed)
    }
}

impl std::str::FromStr for BusinessStatus {
    type Err = String;
    /// Accepts the word (`registered`) or the national code (`03`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BusinessStatus::ALL
            .into_iter()
            .find(|b| b.label() == s || b.code() == s)
            .ok_or_else(|| {
                format!(
                    "status {s:?} is not one of arrived (01), rejected (02), registered (03), \
                     assigned (04), processing (05), completed (06)"
                )
            })
    }
}

/// A change the sender asks recipients to accept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// `13`: withdraw a document sent in error.
    TakeBack,
    /// Recipients added or removed, or metadata corrected.
    Update {
        /// Agencies that receive the document from now on.
        add: Vec<AgencyId>,
        /// Recipients asked to give the document up.
        remove: Vec<AgencyId>,
        /// Corrected metadata, if any.
        meta: Option<Metadata>,
    },
    /// A new document supersedes this one.
    Replace {
        /// The new document (sent by the same sender).
        successor: DocumentId,
    },
}

impl Change {
    /// Stable word for the command line, JSON and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Change::TakeBack => "takeback",
            Change::Update { .. } => "update",
            Change::Replace { .. } => "replace",
        }
    }
}

/// What a statement says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatementKind {
    /// A recipient's business status.
    Status {
        /// The status reached.
        status: BusinessStatus,
        /// Why, for `02` (required there, absent otherwise).
        reason: Option<Reason>,
    },
    /// The sender's change request.
    Change {
        /// What is asked.
        change: Change,
        /// Why, in words (required).
        reason: String,
    },
    /// A recipient's answer to a change request: `15` accepted or `16` refused.
    Answer {
        /// [`Signed::payload_digest`] of the change request answered.
        request: Digest,
        /// Accepted (`15`) or refused (`16`).
        accept: bool,
        /// Why it was refused (required for `16`, absent for `15`).
        reason: Option<Reason>,
    },
    /// The sender urges recipients that have not completed a document to act on it (before
    /// its due date, or once overdue); the note says what is expected.
    Reminder,
    /// The hub holds the document durably (its answer to the submission, made by the hub and
    /// addressed to the sender).
    Accepted {
        /// Recipients queued.
        recipients: Vec<AgencyId>,
        /// Body hash the hub verified.
        body_sha256: Digest,
        /// Body length.
        body_len: u64,
    },
    /// A recipient's answer to a delivery, addressed to the sender: it stored the document
    /// (a receipt) or quarantined it (a rejection naming the failed check).
    Receipt {
        /// Body hash as computed by the recipient over the bytes it received.
        body_sha256: Digest,
        /// Delivered, or rejected for a reason.
        outcome: Outcome,
    },
    /// The hub's notice to the sender about the delivery to `recipient`.
    Notice {
        /// The recipient whose delivery it is about.
        recipient: AgencyId,
        /// What happened (expired, delayed, body lost).
        notice: NoticeKind,
    },
    /// An agency's count of official documents exchanged on paper only in one month, said to
    /// the hub (no addressee; the document ID is [`DocumentId::NIL`]).
    PaperCount {
        /// Month, `YYYY-MM`.
        month: String,
        /// Documents sent on paper only.
        sent: u64,
        /// Documents received on paper only.
        received: u64,
    },
}

impl StatementKind {
    /// The national code where the standard gives one (`01`–`06`, `13`, `15`, `16`).
    pub fn code(&self) -> Option<&'static str> {
        match self {
            StatementKind::Status { status, .. } => Some(status.code()),
            StatementKind::Change {
                change: Change::TakeBack,
                ..
            } => Some("13"),
            StatementKind::Change { .. } => None,
            StatementKind::Answer { accept: true, .. } => Some("15"),
            StatementKind::Answer { accept: false, .. } => Some("16"),
            StatementKind::Reminder
            | StatementKind::Accepted { .. }
            | StatementKind::Receipt { .. }
            | StatementKind::Notice { .. }
            | StatementKind::PaperCount { .. } => None,
        }
    }

    /// Whether software makes it on its own (acceptance, receipt, notice), so no staff member
    /// is named.
    pub fn is_automatic(&self) -> bool {
        matches!(
            self,
            StatementKind::Accepted { .. }
                | StatementKind::Receipt { .. }
                | StatementKind::Notice { .. }
        )
    }

    /// Whether the hub makes it (only then may the maker be the hub).
    pub fn is_hub_made(&self) -> bool {
        matches!(
            self,
            StatementKind::Accepted { .. } | StatementKind::Notice { .. }
        )
    }

    /// Stable label: `registered`, `takeback`, `accepted`, `refused`, …
    pub fn label(&self) -> &'static str {
        match self {
            StatementKind::Status { status, .. } => status.label(),
            StatementKind::Change { change, .. } => change.label(),
            StatementKind::Answer { accept: true, .. } => "accepted",
            StatementKind::Answer { accept: false, .. } => "refused",
            StatementKind::Reminder => "reminder",
            StatementKind::Accepted { .. } => "hub_accepted",
            StatementKind::Receipt {
                outcome: Outcome::Delivered,
                ..
            } => "delivered",
            StatementKind::Receipt { .. } => "delivery_rejected",
            StatementKind::Notice { notice, .. } => match notice {
                NoticeKind::Expired => "expired",
                NoticeKind::Delayed { .. } => "delayed",
                NoticeKind::BodyLost { .. } => "body_lost",
            },
            StatementKind::PaperCount { .. } => "paper_count",
        }
    }
}

/// A party's signed statement about one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The document it is about.
    pub doc_id: DocumentId,
    /// Who makes it (must be the signer): an agency, or the hub for its own kinds.
    pub from: Party,
    /// The agencies it is for; the hub relays one copy to each.
    pub to: Vec<AgencyId>,
    /// What is said.
    pub kind: StatementKind,
    /// Who acted.
    pub staff: Staff,
    /// Free note.
    pub note: Option<String>,
    /// The maker's clock, Unix milliseconds.
    pub time_ms: u64,
}

impl Signable for Statement {
    const CONTEXT: &'static [u8] = STATEMENT_CONTEXT;
}

/// A statement signed by the party that makes it.
pub type SignedStatement = Signed<Statement>;

impl SignedStatement {
    /// Decode (after verifying).
    pub fn statement(&self) -> Result<Statement, postcard::Error> {
        self.decode()
    }
}

fn text(field: &'static str, s: &str) -> Result<(), Reason> {
    crate::text::single_line(field, s, MAX_NOTE_LEN)
        .map_err(|e| Reason::new(ReasonCode::Other, e.to_string()))
}

impl Statement {
    /// The statement's own consistency, whatever was said before it: addressing, staff, and
    /// the reasons each kind requires.
    pub fn validate(&self) -> Result<(), Reason> {
        let other = |t: String| Err(Reason::new(ReasonCode::Other, t));
        match (&self.from, self.kind.is_hub_made()) {
            (Party::Hub, false) => {
                return other(format!("the hub does not make a {}", self.kind.label()))
            }
            (Party::Agency(a), true) => {
                return other(format!("{a} cannot make a {}", self.kind.label()))
            }
            _ => {}
        }
        if let StatementKind::PaperCount { month, .. } = &self.kind {
            if !PaperReport::month_is_valid(month) {
                return other(format!("paper count month {month:?} is not YYYY-MM"));
            }
            if !self.doc_id.is_nil() || !self.to.is_empty() {
                return other(
                    "a paper count is about a month, not a document, and is said to the hub only"
                        .into(),
                );
            }
            return match &self.note {
                Some(n) => text("note", n),
                None => Ok(()),
            };
        }
        if self.doc_id.is_nil() {
            return other("a statement needs the document it is about".into());
        }
        if self.to.is_empty() {
            return other("a statement needs at least one addressee".into());
        }
        if self.to.len() > crate::envelope::MAX_RECIPIENTS {
            return other("a statement has too many addressees".into());
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.to {
            if self.from == *a {
                return other(format!("{a} cannot address a statement to itself"));
            }
            if !seen.insert(a) {
                return other(format!("addressee {a} is listed twice"));
            }
        }
        if self.kind.is_automatic() {
            if self.staff != Staff::default() {
                return other(format!("a {} names no staff member", self.kind.label()));
            }
        } else {
            self.staff.validate()?;
        }
        if let Some(n) = &self.note {
            text("note", n)?;
        }
        match &self.kind {
            StatementKind::Status { status, reason } => {
                match (status, reason) {
                    (BusinessStatus::Rejected, None) => {
                        return other("a rejection (02) needs a reason".into())
                    }
                    (BusinessStatus::Rejected, Some(r)) => text("reason", &r.text)?,
                    (_, Some(_)) => {
                        return other(format!("status {} takes no reason", status.code()))
                    }
                    (_, None) => {}
                }
                if self.to.len() != 1 {
                    return other("a status is addressed to the document's sender only".into());
                }
            }
            StatementKind::Change { change, reason } => {
                if reason.trim().is_empty() {
                    return other(format!("a {} request needs a reason", change.label()));
                }
                text("reason", reason)?;
                match change {
                    Change::Update { add, remove, meta } => {
                        if add.is_empty() && remove.is_empty() && meta.is_none() {
                            return other("an update changes nothing".into());
                        }
                        if let Some(m) = meta {
                            m.validate()
                                .map_err(|e| Reason::new(ReasonCode::Other, e.to_string()))?;
                        }
                        let mut seen = std::collections::HashSet::new();
                        for a in add.iter().chain(remove) {
                            if self.from == *a {
                                return other(format!("the sender {a} cannot be a recipient"));
                            }
                            if !seen.insert(a) {
                                return other(format!("{a} is both added or removed twice"));
                            }
                        }
                    }
                    Change::Replace { successor } => {
                        if successor == &self.doc_id {
                            return other("a document cannot replace itself".into());
                        }
                    }
                    Change::TakeBack => {}
                }
            }
            StatementKind::Answer { accept, reason, .. } => {
                match (accept, reason) {
                    (false, None) => return other("a refusal (16) needs a reason".into()),
                    (false, Some(r)) => text("reason", &r.text)?,
                    (true, Some(_)) => return other("an acceptance (15) takes no reason".into()),
                    (true, None) => {}
                }
                if self.to.len() != 1 {
                    return other("an answer is addressed to the document's sender only".into());
                }
            }
            StatementKind::Reminder => {
                if self.note.as_deref().is_none_or(|n| n.trim().is_empty()) {
                    return other("a reminder needs a note saying what is expected".into());
                }
            }
            StatementKind::Receipt { outcome, .. } => {
                match outcome {
                    Outcome::Delivered => {}
                    Outcome::RejectedFor(r) => text("reason", &r.text)?,
                    Outcome::Rejected { .. } => {
                        return other("a rejection carries a reason code".into())
                    }
                }
                if self.to.len() != 1 {
                    return other("a receipt is addressed to the document's sender only".into());
                }
            }
            StatementKind::Accepted { recipients, .. } => {
                if recipients.is_empty() || self.to.len() != 1 {
                    return other(
                        "an acceptance names the recipients and is addressed to the sender only"
                            .into(),
                    );
                }
            }
            StatementKind::Notice { .. } => {
                if self.to.len() != 1 {
                    return other("a notice is addressed to the document's sender only".into());
                }
            }
            StatementKind::PaperCount { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::{test_key, verify_raw};

    fn a(s: &str) -> AgencyId {
        AgencyId::parse(s).unwrap()
    }

    pub(crate) fn staff() -> Staff {
        Staff {
            department: "Văn thư".into(),
            name: "Nguyễn Văn A".into(),
            email: None,
            phone: None,
        }
    }

    fn status(s: BusinessStatus) -> Statement {
        Statement {
            doc_id: DocumentId::new_v7(1, [1; 10]),
            from: a("000.00.00.H02").into(),
            to: vec![a("000.00.00.G01")],
            kind: StatementKind::Status {
                status: s,
                reason: None,
            },
            staff: staff(),
            note: None,
            time_ms: 5,
        }
    }

    #[test]
    fn codes_and_words_parse() {
        for s in BusinessStatus::ALL {
            assert_eq!(s.code().parse::<BusinessStatus>().unwrap(), s);
            assert_eq!(s.label().parse::<BusinessStatus>().unwrap(), s);
        }
        assert!("07".parse::<BusinessStatus>().is_err());
    }

    #[test]
    fn signed_statement_round_trips_and_cannot_pass_as_a_receipt() {
        let k = test_key();
        let s = SignedStatement::sign(&status(BusinessStatus::Registered), &k, b"c").unwrap();
        assert_eq!(s.statement().unwrap(), status(BusinessStatus::Registered));
        assert!(verify_raw(
            k.public_key(),
            STATEMENT_CONTEXT,
            &s.0.payload,
            &s.0.signature
        ));
        assert!(!verify_raw(
            k.public_key(),
            crate::receipt::RECEIPT_CONTEXT,
            &s.0.payload,
            &s.0.signature
        ));
    }

    #[test]
    fn validation_names_what_is_missing() {
        assert!(status(BusinessStatus::Registered).validate().is_ok());
        let e = status(BusinessStatus::Rejected).validate().unwrap_err();
        assert!(e.text.contains("needs a reason"), "{e}");
        let mut s = status(BusinessStatus::Completed);
        s.staff.name = " ".into();
        assert!(s.validate().unwrap_err().text.contains("staff name"));
        let mut s = status(BusinessStatus::Completed);
        s.note = Some("line\u{1b}[2J".into());
        assert!(s.validate().is_err());
        let mut s = status(BusinessStatus::Completed);
        s.to.push(s.from.agency().unwrap().clone());
        assert!(s.validate().is_err());
        let mut s = status(BusinessStatus::Completed);
        s.kind = StatementKind::Answer {
            request: [0; 32],
            accept: false,
            reason: None,
        };
        assert!(s.validate().unwrap_err().text.contains("16"));
        s.kind = StatementKind::Change {
            change: Change::Replace {
                successor: s.doc_id,
            },
            reason: "typo".into(),
        };
        assert!(s.validate().unwrap_err().text.contains("itself"));
    }

    #[test]
    fn national_codes() {
        let s = status(BusinessStatus::Processing);
        assert_eq!(s.kind.code(), Some("05"));
        let k = StatementKind::Change {
            change: Change::TakeBack,
            reason: "x".into(),
        };
        assert_eq!(k.code(), Some("13"));
        let k = StatementKind::Answer {
            request: [0; 32],
            accept: false,
            reason: None,
        };
        assert_eq!((k.code(), k.label()), (Some("16"), "refused"));
    }
}
