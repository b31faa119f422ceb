//! Requests and answers of the local API, defined once: the API handlers decode and encode
//! them, the CLI builds and reads them (it never re-parses this JSON by hand).

use poros_protocol::{AgencyId, DocumentId, Metadata, Priority, Staff};
use serde::{Deserialize, Serialize};

/// `POST /v1/documents/:id/progress`: a business status on a received document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressRequest {
    /// `registered` … or the national code `01`–`06`.
    pub code: String,
    /// Free note.
    #[serde(default)]
    pub note: Option<String>,
    /// Why (required for `rejected`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Who acted.
    pub staff: Staff,
}

/// `POST /v1/documents/:id/takeback`: ask recipients to withdraw a sent document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakebackRequest {
    /// Addressees; default every current recipient the document was delivered to.
    #[serde(default)]
    pub to: Option<Vec<AgencyId>>,
    /// Why.
    pub reason: String,
    /// Free note.
    #[serde(default)]
    pub note: Option<String>,
    /// Who acted.
    pub staff: Staff,
}

/// `POST /v1/documents/:id/remind`: urge recipients of a sent document to act on it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemindRequest {
    /// Addressees; default every current recipient it was delivered to with work left.
    #[serde(default)]
    pub to: Option<Vec<AgencyId>>,
    /// What is expected (required).
    pub note: String,
    /// Who acted.
    pub staff: Staff,
}

/// Corrected metadata of an update: each field given replaces the envelope's.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaPatch {
    /// Subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Official number.
    #[serde(default)]
    pub number: Option<String>,
    /// Document type.
    #[serde(default, rename = "type")]
    pub doc_type: Option<String>,
    /// Priority.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Due date `YYYY-MM-DD`.
    #[serde(default)]
    pub due: Option<String>,
}

impl MetaPatch {
    /// Whether nothing is corrected.
    pub fn is_empty(&self) -> bool {
        self.subject.is_none()
            && self.number.is_none()
            && self.doc_type.is_none()
            && self.priority.is_none()
            && self.due.is_none()
    }

    /// `base` with the corrections applied, validated.
    pub fn apply(self, mut base: Metadata) -> Result<Metadata, String> {
        if let Some(s) = self.subject {
            base.subject = s;
        }
        if self.number.is_some() {
            base.number = self.number;
        }
        if self.doc_type.is_some() {
            base.doc_type = self.doc_type;
        }
        if let Some(p) = self.priority {
            base.priority = p;
        }
        if self.due.is_some() {
            base.due_date = self.due;
        }
        base.validate().map_err(|e| e.to_string())?;
        Ok(base)
    }
}

/// `POST /v1/documents/:id/update`: add or remove recipients, or correct metadata.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// Agencies added.
    #[serde(default)]
    pub add: Vec<AgencyId>,
    /// Recipients removed.
    #[serde(default)]
    pub remove: Vec<AgencyId>,
    /// Corrected metadata.
    #[serde(default)]
    pub meta: MetaPatch,
    /// Why.
    pub reason: String,
    /// Free note.
    #[serde(default)]
    pub note: Option<String>,
    /// Who acted.
    pub staff: Staff,
}

/// `POST /v1/documents/:id/answer`: answer the pending change request on a received document.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// Accept (`15`) or refuse (`16`).
    pub accept: bool,
    /// Why (required to refuse).
    #[serde(default)]
    pub reason: Option<String>,
    /// Free note.
    #[serde(default)]
    pub note: Option<String>,
    /// Who acted.
    pub staff: Staff,
}

/// Query of `POST /v1/documents/:id/replace` (the new document's body is the request body).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceQuery {
    /// Comma-separated recipients of the new document; default the old one's current ones.
    #[serde(default)]
    pub to: Option<String>,
    /// Subject of the new document.
    pub subject: String,
    /// Its official number.
    #[serde(default)]
    pub number: Option<String>,
    /// Its type.
    #[serde(default, rename = "type")]
    pub doc_type: Option<String>,
    /// Its priority.
    #[serde(default)]
    pub priority: Option<String>,
    /// Its due date.
    #[serde(default)]
    pub due: Option<String>,
    /// Its file name.
    #[serde(default)]
    pub filename: Option<String>,
    /// Why the old one is replaced.
    pub reason: String,
    /// Free note.
    #[serde(default)]
    pub note: Option<String>,
    /// Staff department.
    pub staff_department: String,
    /// Staff name.
    pub staff_name: String,
    /// Staff e-mail.
    #[serde(default)]
    pub staff_email: Option<String>,
    /// Staff phone.
    #[serde(default)]
    pub staff_phone: Option<String>,
}

impl ReplaceQuery {
    /// The acting staff member.
    pub fn staff(&self) -> Staff {
        Staff {
            department: self.staff_department.clone(),
            name: self.staff_name.clone(),
            email: self.staff_email.clone(),
            phone: self.staff_phone.clone(),
        }
    }
}

/// The answer to every statement verb: the statement was stored durably and queued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementMade {
    /// The document it is about.
    pub doc: DocumentId,
    /// Hex payload digest: the statement's name.
    pub statement: String,
    /// Kind label (`registered`, `takeback`, `accepted`, …).
    pub kind: String,
    /// National code, if any.
    pub code: Option<String>,
    /// Addressees.
    pub to: Vec<AgencyId>,
    /// The new document (replace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<DocumentId>,
}

/// An error answer of the local API; `reason_code` is set for refusals under the rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What was wrong, in words.
    pub error: String,
    /// The rule's reason code label (`illegal_transition`, `unknown_document`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
}

/// Query of `POST /v1/documents` (the document's body is the request body).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SendQuery {
    /// Comma-separated recipient agency codes.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Official number/notation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Document type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub doc_type: Option<String>,
    /// `normal`, `urgent` or `flash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    /// Due date `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// The answer to `POST /v1/documents`: signed and stored in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentCreated {
    /// The new document's ID.
    pub id: DocumentId,
}

/// `POST /v1/reports/paper`: this agency's paper-only counts for a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperReportRequest {
    /// `YYYY-MM`.
    pub month: String,
    /// Documents sent on paper only.
    pub sent: u64,
    /// Documents received on paper only.
    pub received: u64,
}

/// The answer to a paper report the hub accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperReportDone {
    /// Always true.
    pub ok: bool,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// This agency.
    pub agency: AgencyId,
    /// Whether the hub connection is up.
    pub connected: bool,
    /// Whether the store can write.
    pub store: StoreHealth,
}

/// The store part of [`Health`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreHealth {
    /// Whether the last write succeeded.
    pub writable: bool,
    /// Why not.
    pub reason: Option<String>,
    /// Writes refused since start.
    pub write_failures: u64,
}

/// One item of `GET /v1/receipts`: a signed answer for a sent document, its signature
/// checked again when listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptItem {
    /// The document.
    pub id: DocumentId,
    /// Who signed it.
    pub recipient: AgencyId,
    /// `delivered` or `rejected`.
    pub outcome: String,
    /// Why rejected.
    pub reason: Option<String>,
    /// The rejection's reason code label.
    pub reason_code: Option<String>,
    /// When signed, Unix ms.
    pub time_ms: u64,
    /// Hex SHA-256 of the body received.
    pub body_sha256: String,
    /// Hex signature.
    pub signature: String,
    /// Whether the signature verified again, by the named recipient.
    pub signature_verified: bool,
}

/// `GET /v1/events`: events after a cursor, and the cursor of the next call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsPage {
    /// In storage order.
    pub events: Vec<EventItem>,
    /// The `after` of the next call.
    pub next: u64,
}

/// One event: an answer stored for a sent document, or a statement made or received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventItem {
    /// A statement (its `type` is `statement`).
    Statement(StatementEventItem),
    /// A receipt, rejection or notice for a sent document.
    Receipt(ReceiptEventItem),
}

/// A recipient's answer stored for a sent document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptEventItem {
    /// Event sequence number.
    pub seq: u64,
    /// The document.
    pub id: DocumentId,
    /// The recipient.
    pub recipient: AgencyId,
    /// `delivered`, `rejected`, `expired` or `lost`.
    pub state: String,
    /// When stored, Unix ms.
    pub stored_ms: u64,
}

/// A statement made or received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementEventItem {
    /// Event sequence number.
    pub seq: u64,
    /// The document.
    pub doc: DocumentId,
    /// Always `statement`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `made` or `received`.
    pub direction: String,
    /// Maker.
    pub from: poros_protocol::Party,
    /// Addressees.
    pub to: Vec<AgencyId>,
    /// Kind label.
    pub label: String,
    /// National code, if any.
    pub code: Option<String>,
    /// Hex payload digest.
    pub statement: String,
    /// When stored, Unix ms.
    pub stored_ms: u64,
}

/// A received or quarantined document, as listed by `GET /v1/inbox` and `GET /v1/quarantine`
/// (the base of a received document's `GET /v1/documents/:id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedDoc {
    /// The document.
    pub id: DocumentId,
    /// Its sender (absent if the stored envelope no longer decodes).
    pub sender: Option<AgencyId>,
    /// Subject.
    pub subject: Option<String>,
    /// Official number.
    pub number: Option<String>,
    /// Document type.
    #[serde(rename = "type")]
    pub doc_type: Option<String>,
    /// Priority.
    pub priority: Option<Priority>,
    /// Due date.
    pub due: Option<String>,
    /// File name.
    pub filename: Option<String>,
    /// Body length.
    pub body_len: u64,
    /// Hex SHA-256 of the body.
    pub body_sha256: String,
    /// When received, Unix ms.
    pub received_ms: u64,
    /// Why quarantined.
    pub reason: Option<String>,
    /// The business state an inbox item shows (absent in quarantine).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub inbox: Option<InboxState>,
}

/// The business state of an inbox item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxState {
    /// The last business status label, if any.
    pub business: Option<String>,
    /// The change request waiting for this agency's answer.
    pub pending_change: Option<PendingChange>,
    /// The document that replaced it.
    pub replaced_by: Option<DocumentId>,
    /// The document it replaces.
    pub replaces: Option<DocumentId>,
}

/// A change request waiting for an answer, as an inbox item shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingChange {
    /// Hex payload digest of the request.
    pub statement: String,
    /// `takeback`, `update` or `replace`.
    pub label: String,
    /// The new document (replace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<DocumentId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_answer_names_ids_as_text() {
        let m = StatementMade {
            doc: DocumentId::new_v7(1, [1; 10]),
            statement: "ab".into(),
            kind: "registered".into(),
            code: Some("03".into()),
            to: vec![AgencyId::parse("000.00.00.G01").unwrap()],
            successor: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["doc"], m.doc.to_string());
        assert_eq!(v["to"][0], "000.00.00.G01");
        assert!(v.get("successor").is_none());
        assert_eq!(serde_json::from_value::<StatementMade>(v).unwrap(), m);
    }
}
