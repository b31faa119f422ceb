//! The values an edXML package or status message carries, as the reader returns them and the
//! writer takes them. Text is kept as written: dates, codes and numbers are never parsed here.

/// An organisation as edXML describes it (`From`, `To`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Organ {
    /// `OrganId`: the agency code, as written (no pattern is checked).
    pub organ_id: String,
    /// `OrganizationInCharge`.
    pub organization_in_charge: Option<String>,
    /// `OrganName`.
    pub organ_name: Option<String>,
    /// `OrganAdd`: the postal address.
    pub organ_add: Option<String>,
    /// `Email`.
    pub email: Option<String>,
    /// `Telephone`.
    pub telephone: Option<String>,
    /// `Fax`.
    pub fax: Option<String>,
    /// `Website`.
    pub website: Option<String>,
}

/// `Code`: the document's number and notation.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Code {
    /// `CodeNumber`.
    pub code_number: Option<String>,
    /// `CodeNotation`.
    pub code_notation: Option<String>,
}

/// `PromulgationInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PromulgationInfo {
    /// `Place`.
    pub place: Option<String>,
    /// `PromulgationDate` (`yyyy/MM/dd` by the standard; kept as written).
    pub promulgation_date: Option<String>,
}

/// `DocumentType`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DocumentType {
    /// `Type`.
    pub doc_type: Option<String>,
    /// `TypeDetail`.
    pub type_detail: Option<String>,
    /// `TypeName`.
    pub type_name: Option<String>,
}

/// `SignerInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SignerInfo {
    /// `Competence`.
    pub competence: Option<String>,
    /// `Position`.
    pub position: Option<String>,
    /// `FullName`.
    pub full_name: Option<String>,
}

/// `OtherInfo`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OtherInfo {
    /// `Priority` (0 normal … 4 express-scheduled; kept as written).
    pub priority: Option<String>,
    /// `SphereOfPromulgation`.
    pub sphere_of_promulgation: Option<String>,
    /// `TyperNotation`.
    pub typer_notation: Option<String>,
    /// `PromulgationAmount`.
    pub promulgation_amount: Option<String>,
    /// `PageAmount`.
    pub page_amount: Option<String>,
    /// `Direction`.
    pub direction: Option<String>,
    /// `Appendixes/Appendix`, in order.
    pub appendixes: Vec<String>,
}

/// `ResponseFor`: the document a package or status answers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ResponseFor {
    /// `OrganId`.
    pub organ_id: Option<String>,
    /// `Code`.
    pub code: Option<String>,
    /// `DocumentId`.
    pub document_id: Option<String>,
    /// `PromulgationDate`.
    pub promulgation_date: Option<String>,
}

/// `StaffInfo`: who handled a business request or a status.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StaffInfo {
    /// `Department`.
    pub department: Option<String>,
    /// `Staff`.
    pub staff: Option<String>,
    /// `Email`.
    pub email: Option<String>,
    /// `Mobile`.
    pub mobile: Option<String>,
}

/// `TraceHeaderList/TraceHeader`: one hop the message went through.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TraceHeader {
    /// `OrganId`.
    pub organ_id: Option<String>,
    /// `Timestamp` (`yyyy/MM/dd HH:mm:ss` by the standard; kept as written).
    pub timestamp: Option<String>,
}

/// `BussinessDocType`: what a package does to the document it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusinessDocType {
    /// `0`: a new document.
    New,
    /// `1`: take back (revoke) a document sent earlier.
    Revoke,
    /// `2`: update a document sent earlier (e.g. its receivers).
    Update,
    /// `3`: replace documents sent earlier.
    Replace,
}

impl BusinessDocType {
    /// The code written in `BussinessDocType`.
    pub fn code(self) -> u8 {
        match self {
            BusinessDocType::New => 0,
            BusinessDocType::Revoke => 1,
            BusinessDocType::Update => 2,
            BusinessDocType::Replace => 3,
        }
    }

    /// The type of a `BussinessDocType` code (leading and trailing whitespace ignored).
    pub fn from_code(text: &str) -> Option<Self> {
        match text.trim() {
            "0" => Some(BusinessDocType::New),
            "1" => Some(BusinessDocType::Revoke),
            "2" => Some(BusinessDocType::Update),
            "3" => Some(BusinessDocType::Replace),
            _ => None,
        }
    }
}

/// `ReceiverList/Receiver` of an update: a recipient added or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receiver {
    /// `OrganId`.
    pub organ_id: String,
    /// `ReceiverType`: `1` added (true), `0` removed (false).
    pub added: bool,
}

/// `ReplacementInfoList/ReplacementInfo` of a replacement: a replaced document and whom it went to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// `DocumentId` of the replaced document.
    pub document_id: String,
    /// `OrganIdList/OrganId`.
    pub organ_ids: Vec<String>,
}

/// `Bussiness` (spelled so by the standard).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Business {
    /// `BussinessDocType`.
    pub doc_type: BusinessDocType,
    /// `BussinessDocReason`.
    pub reason: Option<String>,
    /// `Paper`.
    pub paper: Option<String>,
    /// `StaffInfo`.
    pub staff_info: Option<StaffInfo>,
    /// `BussinessDocumentInfo/ReceiverList/Receiver`, in order.
    pub receivers: Vec<Receiver>,
    /// `ReplacementInfoList/ReplacementInfo`, in order.
    pub replacements: Vec<Replacement>,
}

/// Whether the package carries an XML-DSig `Signature` (this crate does not verify it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureState {
    /// No `Signature` element.
    Absent,
    /// A `Signature` element with an empty or missing `SignatureValue`.
    Placeholder,
    /// A `Signature` element whose `SignatureValue` has text.
    Present,
}

/// `edXMLManifest/Reference`: what the body says an attachment is.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Reference {
    /// `ContentId` (`cid:…`), or the element's `href` attribute when it has no `ContentId`.
    pub content_id: Option<String>,
    /// `ContentType`, as claimed.
    pub content_type: Option<String>,
    /// `Description`.
    pub description: Option<String>,
    /// `AttachmentName`.
    pub attachment_name: Option<String>,
}

impl From<&AttachmentMeta> for Reference {
    fn from(meta: &AttachmentMeta) -> Self {
        Reference {
            content_id: meta.content_id.clone(),
            content_type: meta.content_type.clone(),
            description: meta.description.clone(),
            attachment_name: meta.attachment_name.clone(),
        }
    }
}

/// What an attachment's bytes are, decided by their first bytes (never by the claimed type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentKind {
    /// `%PDF`.
    Pdf,
    /// `PK\x03\x04` (and the empty and spanned zip markers): zip, docx, xlsx, odt, …
    Zip,
    /// `D0 CF 11 E0`: an OLE compound file (doc, xls, ppt).
    Ole,
    /// `<?xml` (after an optional byte-order mark and whitespace).
    Xml,
    /// The PNG signature.
    Png,
    /// `FF D8 FF`.
    Jpeg,
    /// `II*\0` or `MM\0*`.
    Tiff,
    /// None of the above.
    Unknown,
}

/// `AttachmentEncoded/Attachment`'s description of an attachment.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AttachmentMeta {
    /// `ContentId` (`cid:…`), or the element's `href` attribute when it has no `ContentId`.
    pub content_id: Option<String>,
    /// `AttachmentName`.
    pub attachment_name: Option<String>,
    /// `Description`.
    pub description: Option<String>,
    /// `ContentType`, as claimed.
    pub content_type: Option<String>,
}

/// An attachment as read: its description and what its decoded bytes turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachmentInfo {
    /// What the `Attachment` element says.
    pub meta: AttachmentMeta,
    /// The kind its first bytes show.
    pub detected: ContentKind,
    /// Decoded length in bytes.
    pub len: u64,
    /// SHA-256 of the decoded bytes.
    pub sha256: [u8; 32],
}

/// `MessageHeader` of a package.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PackageHeader {
    /// `From`.
    pub from: Organ,
    /// `To`, one or more.
    pub to: Vec<Organ>,
    /// `DocumentId`.
    pub document_id: Option<String>,
    /// `Code`.
    pub code: Code,
    /// `PromulgationInfo`.
    pub promulgation_info: PromulgationInfo,
    /// `DocumentType`.
    pub document_type: DocumentType,
    /// `Subject`.
    pub subject: Option<String>,
    /// `Content`.
    pub content: Option<String>,
    /// `SignerInfo`.
    pub signer_info: SignerInfo,
    /// `DueDate`.
    pub due_date: Option<String>,
    /// `OtherInfo`.
    pub other_info: OtherInfo,
    /// `ResponseFor`, repeatable.
    pub response_for: Vec<ResponseFor>,
    /// `SteeringType`.
    pub steering_type: Option<String>,
    /// `ToPlaces/Place`.
    pub to_places: Vec<String>,
}

/// An edXML package: a document with its header, routing trace, business request and attachments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Package {
    /// `MessageHeader`.
    pub header: PackageHeader,
    /// `TraceHeaderList/TraceHeader`.
    pub traces: Vec<TraceHeader>,
    /// `Bussiness`.
    pub business: Option<Business>,
    /// Whether a `Signature` is there.
    pub signature: SignatureState,
    /// `edXMLBody/edXMLManifest/Reference`.
    pub manifest: Vec<Reference>,
    /// `AttachmentEncoded/Attachment`, in order; their bytes went to the sink.
    pub attachments: Vec<AttachmentInfo>,
}

/// The status codes a status message may carry.
pub const STATUS_CODES: [&str; 9] = ["01", "02", "03", "04", "05", "06", "13", "15", "16"];

/// An edXML status message: what a recipient says about a document it received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusMessage {
    /// `From`.
    pub from: Organ,
    /// `ResponseFor`: the document the status is about.
    pub response_for: ResponseFor,
    /// `StaffInfo`.
    pub staff_info: StaffInfo,
    /// `StatusCode`, one of [`STATUS_CODES`].
    pub status_code: String,
    /// `Description`.
    pub description: Option<String>,
    /// `Timestamp`.
    pub timestamp: Option<String>,
    /// `TraceHeaderList/TraceHeader`.
    pub traces: Vec<TraceHeader>,
}

/// What an edXML document turned out to be.
// The shape is fixed by the contract with the crate's users; a package is the common case.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A package (its `MessageHeader` has no `StatusCode`, or has `To`).
    Package(Package),
    /// A status message (its `MessageHeader` has `StatusCode` and no `To`).
    Status(StatusMessage),
}
