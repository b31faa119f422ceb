//! Requests and answers of the local API, defined once: the API handlers decode and encode
//! them, the CLI builds and reads them (it never re-parses this JSON by hand).

use crate::openapi::{AgencyCode, DocId, PartySchema, PrioritySchema, StaffSchema, StaffView};
use poros_protocol::{AgencyId, DocumentId, Metadata, Party, Priority, Staff};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/documents/{id}/progress`: a business status on a received document.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProgressRequest {
    /// `registered` … or the national code `01`–`06`.
    #[schema(schema_with = crate::openapi::business_status)]
    pub code: String,
    /// Free note.
    #[serde(default)]
    #[schema(pattern = "<one-line>", max_length = 2048, examples("draft reply"))]
    pub note: Option<String>,
    /// Why (required for `rejected`).
    #[serde(default)]
    #[schema(pattern = "<one-line>", max_length = 2048)]
    pub reason: Option<String>,
    /// Who acted.
    #[serde(deserialize_with = "object")]
    #[schema(value_type = StaffSchema)]
    pub staff: Staff,
}

/// `POST /v1/documents/{id}/takeback`: ask recipients to withdraw a sent document.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakebackRequest {
    /// Addressees; default every current recipient the document was delivered to.
    #[serde(default)]
    #[schema(value_type = Option<Vec<AgencyCode>>)]
    pub to: Option<Vec<AgencyId>>,
    /// Why.
    #[schema(
        pattern = "<not-blank-line>",
        max_length = 2048,
        examples("sent in error")
    )]
    pub reason: String,
    /// Free note.
    #[serde(default)]
    #[schema(pattern = "<one-line>", max_length = 2048)]
    pub note: Option<String>,
    /// Who acted.
    #[serde(deserialize_with = "object")]
    #[schema(value_type = StaffSchema)]
    pub staff: Staff,
}

/// `POST /v1/documents/{id}/remind`: urge recipients of a sent document to act on it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemindRequest {
    /// Addressees; default every current recipient it was delivered to with work left.
    #[serde(default)]
    #[schema(value_type = Option<Vec<AgencyCode>>)]
    pub to: Option<Vec<AgencyId>>,
    /// What is expected (required).
    #[schema(
        pattern = "<not-blank-line>",
        max_length = 2048,
        examples("please register it")
    )]
    pub note: String,
    /// Who acted.
    #[serde(deserialize_with = "object")]
    #[schema(value_type = StaffSchema)]
    pub staff: Staff,
}

/// Corrected metadata of an update: each field given replaces the envelope's.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetaPatch {
    /// Subject.
    #[serde(default)]
    #[schema(pattern = "<not-blank-line>", max_length = 2048)]
    pub subject: Option<String>,
    /// Official number.
    #[serde(default)]
    #[schema(pattern = "<one-line>", max_length = 2048)]
    pub number: Option<String>,
    /// Document type.
    #[serde(default, rename = "type")]
    #[schema(pattern = "<one-line>", max_length = 2048)]
    pub doc_type: Option<String>,
    /// Priority.
    #[serde(default)]
    #[schema(value_type = Option<PrioritySchema>)]
    pub priority: Option<Priority>,
    /// Due date `YYYY-MM-DD`.
    #[serde(default)]
    #[schema(format = Date)]
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

/// `POST /v1/documents/{id}/update`: add or remove recipients, or correct metadata.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    /// Agencies added.
    #[serde(default)]
    #[schema(value_type = Vec<AgencyCode>)]
    pub add: Vec<AgencyId>,
    /// Recipients removed.
    #[serde(default)]
    #[schema(value_type = Vec<AgencyCode>)]
    pub remove: Vec<AgencyId>,
    /// Corrected metadata.
    #[serde(default, deserialize_with = "object")]
    pub meta: MetaPatch,
    /// Why.
    #[schema(
        pattern = "<not-blank-line>",
        max_length = 2048,
        examples("sent in error")
    )]
    pub reason: String,
    /// Free note.
    #[serde(default)]
    #[schema(pattern = "<one-line>", max_length = 2048)]
    pub note: Option<String>,
    /// Who acted.
    #[serde(deserialize_with = "object")]
    #[schema(value_type = StaffSchema)]
    pub staff: Staff,
}

/// `POST /v1/documents/{id}/answer`: answer the pending change request on a received document.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    /// Accept (`15`) or refuse (`16`).
    pub accept: bool,
    /// Why (required to refuse).
    #[serde(default)]
    #[schema(pattern = "<one-line>", max_length = 2048)]
    pub reason: Option<String>,
    /// Free note.
    #[serde(default)]
    #[schema(pattern = "<one-line>", max_length = 2048)]
    pub note: Option<String>,
    /// Who acted.
    #[serde(deserialize_with = "object")]
    #[schema(value_type = StaffSchema)]
    pub staff: Staff,
}

/// Query of `POST /v1/documents/{id}/replace` (the new document's body is the request body).
#[derive(Clone, Debug, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReplaceQuery {
    /// Recipients of the new document, comma-separated; default the old one's current ones.
    #[serde(default)]
    #[param(value_type = Option<BTreeSet<AgencyCode>>, style = Form, explode = false, min_items = 1, max_items = 1000)]
    pub to: Option<String>,
    /// Subject of the new document.
    #[param(
        pattern = "<not-blank-line>",
        max_length = 2048,
        example = "Kế hoạch 2027 (sửa đổi)"
    )]
    pub subject: String,
    /// Its official number.
    #[serde(default)]
    #[param(pattern = "<one-line>", max_length = 2048, example = "13/KH-BTC")]
    pub number: Option<String>,
    /// Its type.
    #[serde(default, rename = "type")]
    #[param(pattern = "<one-line>", max_length = 2048)]
    pub doc_type: Option<String>,
    /// Its priority.
    #[serde(default)]
    #[param(value_type = Option<PrioritySchema>)]
    pub priority: Option<String>,
    /// Its due date, `YYYY-MM-DD`.
    #[serde(default)]
    #[param(format = Date)]
    pub due: Option<String>,
    /// Its file name.
    #[serde(default)]
    #[param(pattern = "<one-line>", max_length = 2048)]
    pub filename: Option<String>,
    /// Why the old one is replaced.
    #[param(
        pattern = "<not-blank-line>",
        max_length = 2048,
        example = "wrong figures"
    )]
    pub reason: String,
    /// Free note.
    #[serde(default)]
    #[param(pattern = "<one-line>", max_length = 2048)]
    pub note: Option<String>,
    /// Staff department.
    #[param(pattern = "<not-blank-line>", max_length = 2048, example = "Văn thư")]
    pub staff_department: String,
    /// Staff name.
    #[param(
        pattern = "<not-blank-line>",
        max_length = 2048,
        example = "Nguyễn Văn An"
    )]
    pub staff_name: String,
    /// Staff e-mail.
    #[serde(default)]
    #[param(pattern = "<one-line>", max_length = 2048)]
    pub staff_email: Option<String>,
    /// Staff phone.
    #[serde(default)]
    #[param(pattern = "<one-line>", max_length = 2048)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatementMade {
    /// The document it is about.
    #[schema(value_type = DocId)]
    pub doc: DocumentId,
    /// Hex payload digest: the statement's name.
    pub statement: String,
    /// Kind label (`registered`, `takeback`, `accepted`, …).
    pub kind: String,
    /// National code, if any.
    pub code: Option<String>,
    /// Addressees.
    #[schema(value_type = Vec<AgencyCode>)]
    pub to: Vec<AgencyId>,
    /// The new document (replace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DocId>)]
    pub successor: Option<DocumentId>,
}

/// An error answer of the local API: `code` for programs, `error` for people (in the language
/// of the request's `Accept-Language`, English by default); `reason_code` is set for refusals
/// under the rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// What went wrong, as a stable code (`invalid_request`, `unknown_document`,
    /// `illegal_transition`, `storage_full`, …): the field a program reads.
    #[schema(example = "invalid_request", pattern = "^[a-z_]+$")]
    pub code: String,
    /// What was wrong, in words, in the request's language (`Accept-Language`: English or
    /// Vietnamese).
    pub error: String,
    /// The rule's reason code label (`illegal_transition`, `unknown_document`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
}

/// Query of `POST /v1/documents` (the document's body is the request body).
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SendQuery {
    /// Recipient agency codes, comma-separated.
    #[param(value_type = BTreeSet<AgencyCode>, style = Form, explode = false, min_items = 1, max_items = 1000,
        example = json!(["000.00.00.G02"]))]
    pub to: String,
    /// Subject.
    #[param(
        pattern = "<not-blank-line>",
        max_length = 2048,
        example = "Kế hoạch 2027"
    )]
    pub subject: String,
    /// Official number/notation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(pattern = "<one-line>", max_length = 2048, example = "12/KH-BTC")]
    pub number: Option<String>,
    /// Document type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[param(pattern = "<one-line>", max_length = 2048, example = "plan")]
    pub doc_type: Option<String>,
    /// `normal` (the default), `urgent` or `flash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<PrioritySchema>)]
    pub priority: Option<String>,
    /// Due date `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(format = Date, example = "2027-01-31")]
    pub due: Option<String>,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(pattern = "<one-line>", max_length = 2048, example = "ke-hoach.pdf")]
    pub filename: Option<String>,
}

/// The answer to `POST /v1/documents`: signed and stored in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DocumentCreated {
    /// The new document's ID.
    #[schema(value_type = DocId)]
    pub id: DocumentId,
}

/// `POST /v1/reports/paper`: this agency's paper-only counts for a month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaperReportRequest {
    /// `YYYY-MM`.
    #[schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$", examples("2026-03"))]
    pub month: String,
    /// Documents sent on paper only.
    #[serde(deserialize_with = "count")]
    pub sent: u64,
    /// Documents received on paper only.
    #[serde(deserialize_with = "count")]
    pub received: u64,
}

/// A JSON object decoded as `T`; serde's derived structs also take an array of the fields'
/// values in order, which the API does not (the documented shape is an object).
pub(crate) fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let map = serde_json::Map::deserialize(d)?;
    T::deserialize(serde_json::Value::Object(map)).map_err(serde::de::Error::custom)
}

/// A count in a JSON request: an integer from 0 to 2^63 - 1 (JSON's `int64`), also when
/// written with a zero fraction (`7.0`, as some JSON encoders write every number).
fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::de::Error;
    let n = serde_json::Number::deserialize(d)?;
    let v = match (n.as_u64(), n.as_f64()) {
        (Some(v), _) => Some(v),
        // Exact below 2^53; larger values with a fraction part are refused by the bound.
        (None, Some(f)) if f.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(&f) => {
            Some(f as u64)
        }
        _ => None,
    };
    v.filter(|v| i64::try_from(*v).is_ok()).ok_or_else(|| {
        D::Error::custom(format!(
            "{n} is not a count (an integer from 0 to 2^63 - 1)"
        ))
    })
}

/// The answer to a paper report the hub accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PaperReportDone {
    /// Always true.
    pub ok: bool,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// This agency.
    #[schema(value_type = AgencyCode)]
    pub agency: AgencyId,
    /// Whether the hub connection is up.
    pub connected: bool,
    /// Whether the store can write.
    pub store: StoreHealth,
}

/// The store part of `Health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptItem {
    /// The document.
    #[schema(value_type = DocId)]
    pub id: DocumentId,
    /// Who signed it.
    #[schema(value_type = AgencyCode)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventsPage {
    /// In storage order.
    pub events: Vec<EventItem>,
    /// The `after` of the next call.
    pub next: u64,
}

/// One event: an answer stored for a sent document, or a statement made or received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EventItem {
    /// A statement (its `type` is `statement`).
    Statement(StatementEventItem),
    /// A receipt, rejection or notice for a sent document.
    Receipt(ReceiptEventItem),
}

/// A recipient's answer stored for a sent document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceiptEventItem {
    /// Event sequence number.
    pub seq: u64,
    /// The document.
    #[schema(value_type = DocId)]
    pub id: DocumentId,
    /// The recipient.
    #[schema(value_type = AgencyCode)]
    pub recipient: AgencyId,
    /// `delivered`, `rejected`, `expired` or `lost`.
    pub state: String,
    /// When stored, Unix ms.
    pub stored_ms: u64,
}

/// A statement made or received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatementEventItem {
    /// Event sequence number.
    pub seq: u64,
    /// The document.
    #[schema(value_type = DocId)]
    pub doc: DocumentId,
    /// Always `statement`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `made` or `received`.
    pub direction: String,
    /// Maker.
    #[schema(value_type = PartySchema)]
    pub from: poros_protocol::Party,
    /// Addressees.
    #[schema(value_type = Vec<AgencyCode>)]
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
/// (the base of a received document's `GET /v1/documents/{id}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReceivedDoc {
    /// The document.
    #[schema(value_type = DocId)]
    pub id: DocumentId,
    /// Its sender (absent if the stored envelope no longer decodes).
    #[schema(value_type = Option<AgencyCode>)]
    pub sender: Option<AgencyId>,
    /// Subject.
    pub subject: Option<String>,
    /// Official number.
    pub number: Option<String>,
    /// Document type.
    #[serde(rename = "type")]
    pub doc_type: Option<String>,
    /// Priority.
    #[schema(value_type = Option<PrioritySchema>)]
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
    #[schema(schema_with = crate::openapi::optional_inbox_state)]
    pub inbox: Option<InboxState>,
}

/// The business state of an inbox item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InboxState {
    /// The last business status label, if any.
    pub business: Option<String>,
    /// The change request waiting for this agency's answer.
    pub pending_change: Option<PendingChange>,
    /// The document that replaced it.
    #[schema(value_type = Option<DocId>)]
    pub replaced_by: Option<DocumentId>,
    /// The document it replaces.
    #[schema(value_type = Option<DocId>)]
    pub replaces: Option<DocumentId>,
}

/// A change request waiting for an answer, as an inbox item shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingChange {
    /// Hex payload digest of the request.
    pub statement: String,
    /// `takeback`, `update` or `replace`.
    pub label: String,
    /// The new document (replace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DocId>)]
    pub successor: Option<DocumentId>,
}

/// `GET /v1/documents/{id}`: a sent or a received document with its statements, told apart by
/// `direction` (`sent` or `received`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
#[serde(tag = "direction", rename_all = "lowercase")]
// One is built per request and serialized at once; boxing a variant would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum DocumentStatus {
    /// A document this agency sent.
    Sent(SentDocument),
    /// A document this agency received.
    Received(ReceivedDocumentView),
}

/// A sent document: one item of `GET /v1/documents`, and (with `SentStatements`) the body
/// of a sent document's `GET /v1/documents/{id}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct SentDocument {
    /// The document.
    #[schema(value_type = DocId)]
    pub id: DocumentId,
    /// Subject (`null` if the stored envelope no longer decodes).
    pub subject: Option<String>,
    /// Official number.
    pub number: Option<String>,
    /// When created, Unix ms (`null` if the stored envelope no longer decodes).
    pub created_ms: Option<u64>,
    /// Body length.
    pub body_len: u64,
    /// Hex SHA-256 of the body.
    pub body_sha256: String,
    /// When the hub accepted it, Unix ms, if known.
    pub accepted_ms: Option<u64>,
    /// Each recipient's delivery state (and, in the status view, its business state and
    /// timeline).
    pub recipients: Vec<RecipientView>,
    /// The change requests and successions (status view only; absent in the listing).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::openapi::optional_sent_statements)]
    pub statements: Option<SentStatements>,
}

/// What a sent document's status view adds to its listing item.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct SentStatements {
    /// The change requests made on it, in storage order.
    pub changes: Vec<ChangeView>,
    /// The document it replaces.
    #[schema(value_type = Option<DocId>)]
    pub replaces: Option<DocumentId>,
    /// The document that replaces it (a replacement the hub did not refuse).
    #[schema(value_type = Option<DocId>)]
    pub replaced_by: Option<DocumentId>,
    /// Stored statements that no longer decode (absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecodable_statements: Option<u64>,
}

/// One recipient of a sent document.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct RecipientView {
    /// The recipient.
    #[schema(value_type = AgencyCode)]
    pub agency: AgencyId,
    /// `pending`, `accepted`, `delivered`, `rejected`, `expired`, `lost` or `refused`.
    pub state: String,
    /// When the state was reached (the hub's acceptance or the answer), Unix ms, if known.
    pub time_ms: Option<u64>,
    /// Why: a rejection's or body loss's reason, the hub's refusal, or the last temporary
    /// refusal of a delivery still retried.
    pub reason: Option<String>,
    /// Business state and timeline (status view only; absent in the listing).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::openapi::optional_recipient_detail)]
    pub detail: Option<RecipientDetail>,
}

/// What a recipient gains in a sent document's status view.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct RecipientDetail {
    /// The recipient's business state.
    #[serde(flatten)]
    pub business: BusinessState,
    /// The hub's acceptance, its delay notices, the answer, then the recipient's own
    /// statements and the sender's reminders to it.
    pub timeline: Vec<TimelineEntry>,
}

/// One agency's business state on a document, under the exchange rules.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct BusinessState {
    /// The last business status label, if any.
    pub business: Option<String>,
    /// It accepted a take-back.
    pub withdrawn: bool,
    /// It accepted a replacement by this document.
    #[schema(value_type = Option<DocId>)]
    pub replaced_by: Option<DocumentId>,
    /// It accepted being removed by an update.
    pub removed: bool,
    /// The change request awaiting its answer.
    pub pending_change: Option<PendingChangeView>,
}

/// A change request awaiting an answer, as a status view shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct PendingChangeView {
    /// Hex payload digest of the request.
    pub statement: String,
    /// `takeback`, `update` or `replace`.
    pub label: String,
    /// Why it was asked (`null` if the request is not stored here).
    pub reason: Option<String>,
    /// When it was made, Unix ms (`null` if the request is not stored here).
    pub time_ms: Option<u64>,
    /// The new document (replace only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DocId>)]
    pub successor: Option<DocumentId>,
}

/// A change request made on a sent document (an item of its `changes`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct ChangeView {
    /// Hex payload digest of the request.
    pub statement: String,
    /// `takeback`, `update` or `replace`.
    pub label: String,
    /// National code, if any (`13` for a take-back).
    pub code: Option<String>,
    /// Addressees.
    #[schema(value_type = Vec<AgencyCode>)]
    pub to: Vec<AgencyId>,
    /// When made, Unix ms.
    pub time_ms: u64,
    /// Why, in words.
    pub reason: String,
    /// What is asked.
    pub change: ChangeAsked,
    /// `queued`, `accepted` or `refused` (by the hub).
    pub hub: String,
    /// Whether its signature verified again.
    pub signature_verified: bool,
}

/// What a change request asks: `{}` for a take-back.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
#[serde(untagged)]
pub enum ChangeAsked {
    /// Recipients added or removed, or metadata corrected.
    Update {
        /// Agencies added.
        #[schema(value_type = Vec<AgencyCode>)]
        add: Vec<AgencyId>,
        /// Recipients removed.
        #[schema(value_type = Vec<AgencyCode>)]
        remove: Vec<AgencyId>,
        /// Corrected subject, if metadata is corrected.
        subject: Option<String>,
        /// Corrected number, if metadata is corrected and has one.
        number: Option<String>,
    },
    /// A new document supersedes it.
    Replace {
        /// The new document.
        #[schema(value_type = DocId)]
        successor: DocumentId,
    },
    /// A take-back (nothing more to say).
    #[schema(max_properties = 0)]
    TakeBack {},
}

/// A reason as a view shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct ReasonView {
    /// The reason code's label (`null` for a change request's reason, which is words only).
    pub code: Option<String>,
    /// What was wrong, in words.
    pub text: String,
}

/// One entry of a document's timeline: a signed statement, or a receipt in the form of
/// `poros/1` (then only `label`, `time_ms` and `form`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct TimelineEntry {
    /// Kind label (`hub_accepted`, `delivered`, `registered`, `takeback`, `reminder`, …).
    pub label: String,
    /// When made, the maker's clock, Unix ms (`null` for a `poros/1` receipt that no longer
    /// decodes).
    pub time_ms: Option<u64>,
    /// The statement's fields (absent for a `poros/1` receipt).
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::openapi::optional_statement_entry)]
    pub statement: Option<StatementEntry>,
    /// The answer's form when it is not a statement (`poros/1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<String>,
}

/// The fields of a timeline entry that is a signed statement.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct StatementEntry {
    /// National code, if any.
    pub code: Option<String>,
    /// Maker: an agency code or `hub`.
    #[schema(value_type = PartySchema)]
    pub from: Party,
    /// Addressees.
    #[schema(value_type = Vec<AgencyCode>)]
    pub to: Vec<AgencyId>,
    /// Who acted (empty names for automatic statements).
    #[schema(value_type = StaffView)]
    pub staff: Staff,
    /// Free note.
    pub note: Option<String>,
    /// Why, if it gives a reason.
    pub reason: Option<ReasonView>,
    /// Hex payload digest: the statement's name.
    #[serde(rename = "statement")]
    pub digest: String,
    /// Whether its signature verified again when the view was built.
    pub signature_verified: bool,
    /// `made` or `received`.
    pub direction: String,
    /// `queued`, `accepted` or `refused` (by the hub).
    pub hub: String,
    /// The hub's refusal, if refused.
    pub hub_reason: Option<ReasonView>,
    /// When stored here, Unix ms (`null` for a statement kept with its record: the hub's
    /// acceptance, a recipient's answer).
    pub stored_ms: Option<u64>,
    /// An answer's request: its hex payload digest (answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<String>,
    /// What a change request asks (change requests only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeAsked>,
    /// The recipient a hub notice is about (notices only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<AgencyCode>)]
    pub about: Option<AgencyId>,
    /// Why a delivery is late (delay notices only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// Why a body was lost at the hub (body-lost notices only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_lost: Option<String>,
}

/// A received document's `GET /v1/documents/{id}`: the inbox item's fields (without the inbox
/// state, which `BusinessState` gives in full) and its timeline.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, ToSchema)]
pub struct ReceivedDocumentView {
    /// The document as received (its `inbox` is always `None` here).
    #[serde(flatten, deserialize_with = "received_base")]
    pub doc: ReceivedDoc,
    /// This agency's business state on it.
    #[serde(flatten)]
    pub business: BusinessState,
    /// The document it replaces.
    #[schema(value_type = Option<DocId>)]
    pub replaces: Option<DocumentId>,
    /// Every statement about it stored here, in storage order.
    pub timeline: Vec<TimelineEntry>,
    /// Stored statements that no longer decode (absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecodable_statements: Option<u64>,
}

/// The [`ReceivedDoc`] of a received document's view: the keys an inbox item's state shares
/// with [`BusinessState`] belong to the latter.
fn received_base<'de, D: Deserializer<'de>>(d: D) -> Result<ReceivedDoc, D::Error> {
    let mut doc = ReceivedDoc::deserialize(d)?;
    doc.inbox = None;
    Ok(doc)
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

    fn staff() -> Staff {
        Staff {
            department: "Văn thư".into(),
            name: "An".into(),
            email: None,
            phone: None,
        }
    }

    #[test]
    fn sent_document_with_a_timeline_round_trips_with_its_keys() {
        let a = AgencyId::parse("000.00.00.G01").unwrap();
        let b = AgencyId::parse("000.00.00.G02").unwrap();
        let signed = |label: &str, code: Option<&str>| TimelineEntry {
            label: label.into(),
            time_ms: Some(5),
            statement: Some(StatementEntry {
                code: code.map(str::to_string),
                from: Party::Agency(b.clone()),
                to: vec![a.clone()],
                staff: staff(),
                note: Some("n".into()),
                reason: None,
                digest: "ab".into(),
                signature_verified: true,
                direction: "received".into(),
                hub: "accepted".into(),
                hub_reason: None,
                stored_ms: None,
                answers: None,
                change: None,
                about: None,
                delay: None,
                body_lost: None,
            }),
            form: None,
        };
        let doc = SentDocument {
            id: DocumentId::new_v7(1, [1; 10]),
            subject: Some("s".into()),
            number: None,
            created_ms: Some(1),
            body_len: 3,
            body_sha256: "cd".into(),
            accepted_ms: None,
            recipients: vec![RecipientView {
                agency: b.clone(),
                state: "delivered".into(),
                time_ms: Some(4),
                reason: None,
                detail: Some(RecipientDetail {
                    business: BusinessState {
                        business: Some("registered".into()),
                        withdrawn: false,
                        replaced_by: None,
                        removed: false,
                        pending_change: None,
                    },
                    timeline: vec![
                        TimelineEntry {
                            label: "delivered".into(),
                            time_ms: Some(4),
                            statement: None,
                            form: Some("poros/1".into()),
                        },
                        signed("registered", Some("03")),
                    ],
                }),
            }],
            statements: Some(SentStatements {
                changes: vec![ChangeView {
                    statement: "ef".into(),
                    label: "takeback".into(),
                    code: Some("13".into()),
                    to: vec![b.clone()],
                    time_ms: 6,
                    reason: "error".into(),
                    change: ChangeAsked::TakeBack {},
                    hub: "queued".into(),
                    signature_verified: true,
                }],
                replaces: None,
                replaced_by: None,
                undecodable_statements: None,
            }),
        };
        let status = DocumentStatus::Sent(doc.clone());
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["direction"], "sent");
        assert_eq!(v["changes"][0]["change"], serde_json::json!({}));
        assert!(v["replaced_by"].is_null() && v.get("replaced_by").is_some());
        assert!(v.get("undecodable_statements").is_none());
        let r = &v["recipients"][0];
        let keys = |e: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = e.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(r),
            [
                "agency",
                "business",
                "pending_change",
                "reason",
                "removed",
                "replaced_by",
                "state",
                "time_ms",
                "timeline",
                "withdrawn"
            ]
        );
        assert_eq!(keys(&r["timeline"][0]), ["form", "label", "time_ms"]);
        assert_eq!(
            keys(&r["timeline"][1]),
            [
                "code",
                "direction",
                "from",
                "hub",
                "hub_reason",
                "label",
                "note",
                "reason",
                "signature_verified",
                "staff",
                "statement",
                "stored_ms",
                "time_ms",
                "to"
            ]
        );
        assert!(r["timeline"][1]["stored_ms"].is_null());
        assert_eq!(r["timeline"][1]["statement"], "ab");
        assert_eq!(r["timeline"][1]["from"], "000.00.00.G02");
        assert_eq!(
            serde_json::from_value::<DocumentStatus>(v.clone()).unwrap(),
            status
        );
        // The listing item has neither the statements nor the recipients' detail.
        let mut item = doc.clone();
        item.statements = None;
        item.recipients[0].detail = None;
        let v = serde_json::to_value(&item).unwrap();
        assert_eq!(
            keys(&v["recipients"][0]),
            ["agency", "reason", "state", "time_ms"]
        );
        assert!(v.get("changes").is_none() && v.get("direction").is_none());
        assert_eq!(serde_json::from_value::<SentDocument>(v).unwrap(), item);
        // Each form of a change request keeps its shape.
        for c in [
            ChangeAsked::TakeBack {},
            ChangeAsked::Replace {
                successor: DocumentId::new_v7(2, [2; 10]),
            },
            ChangeAsked::Update {
                add: vec![a.clone()],
                remove: vec![],
                subject: None,
                number: None,
            },
        ] {
            let v = serde_json::to_value(&c).unwrap();
            assert_eq!(serde_json::from_value::<ChangeAsked>(v).unwrap(), c);
        }
    }

    #[test]
    fn received_view_round_trips_without_an_inbox_state() {
        let view = ReceivedDocumentView {
            doc: ReceivedDoc {
                id: DocumentId::new_v7(1, [1; 10]),
                sender: Some(AgencyId::parse("000.00.00.G01").unwrap()),
                subject: Some("s".into()),
                number: None,
                doc_type: None,
                priority: Some(Priority::Normal),
                due: None,
                filename: None,
                body_len: 1,
                body_sha256: "ab".into(),
                received_ms: 2,
                reason: None,
                inbox: None,
            },
            business: BusinessState {
                business: Some("registered".into()),
                withdrawn: false,
                replaced_by: None,
                removed: false,
                pending_change: Some(PendingChangeView {
                    statement: "cd".into(),
                    label: "replace".into(),
                    reason: Some("why".into()),
                    time_ms: None,
                    successor: Some(DocumentId::new_v7(3, [3; 10])),
                }),
            },
            replaces: None,
            timeline: vec![],
            undecodable_statements: Some(1),
        };
        let status = DocumentStatus::Received(view);
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["direction"], "received");
        assert_eq!(v["pending_change"]["label"], "replace");
        assert!(v["pending_change"]["time_ms"].is_null());
        assert_eq!(v["undecodable_statements"], 1);
        assert_eq!(serde_json::from_value::<DocumentStatus>(v).unwrap(), status);
    }

    #[test]
    fn request_objects_are_objects_not_arrays_of_their_values() {
        let staff = r#"{"department": "Văn thư", "name": "An"}"#;
        let ok = format!(r#"{{"reason": "r", "meta": {{"subject": "s"}}, "staff": {staff}}}"#);
        let u: UpdateRequest = serde_json::from_str(&ok).unwrap();
        assert_eq!(u.meta.subject.as_deref(), Some("s"));
        assert_eq!(u.staff.name, "An");
        for bad in [
            format!(r#"{{"reason": "r", "meta": [null, null], "staff": {staff}}}"#),
            r#"{"reason": "r", "staff": ["Văn thư", "An"]}"#.to_string(),
        ] {
            let e = serde_json::from_str::<UpdateRequest>(&bad).unwrap_err();
            assert!(e.to_string().contains("expected a map"), "{bad}: {e}");
        }
    }

    #[test]
    fn paper_counts_are_int64_integers_also_with_a_zero_fraction() {
        let parse = |n: &str| {
            serde_json::from_str::<PaperReportRequest>(&format!(
                r#"{{"month": "2026-03", "sent": {n}, "received": 0}}"#
            ))
            .map(|r| r.sent)
        };
        assert_eq!(parse("7").unwrap(), 7);
        assert_eq!(parse("8039.0").unwrap(), 8039);
        assert_eq!(parse("9223372036854775807").unwrap(), i64::MAX as u64);
        for bad in ["7.5", "-1", "9223372036854775808", "1e300", "\"7\""] {
            let e = parse(bad).unwrap_err();
            assert!(
                e.to_string().contains("count") || e.to_string().contains("invalid type"),
                "{bad}: {e}"
            );
        }
    }
}
