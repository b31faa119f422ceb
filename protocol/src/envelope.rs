//! The document envelope: official metadata plus the body's SHA-256, signed by the sender.
//! Altering any header or the body after signing is caught by the receiver.

use crate::ids::{AgencyId, DocumentId};
use crate::signed::{Signable, Signed};
use crate::Digest;
use serde::{Deserialize, Serialize};

/// Signature context for envelopes.
pub const ENVELOPE_CONTEXT: &[u8] = b"poros/envelope/v1";

/// Upper bound on recipients of one document.
pub const MAX_RECIPIENTS: usize = 1000;
/// Upper bound on any metadata text field, in bytes.
pub const MAX_FIELD_LEN: usize = 2048;

/// Handling priority of an official document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Ordinary handling.
    #[default]
    Normal,
    /// Urgent ("khẩn").
    Urgent,
    /// Most urgent ("hỏa tốc").
    Flash,
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Priority::Normal),
            "urgent" => Ok(Priority::Urgent),
            "flash" => Ok(Priority::Flash),
            _ => Err(format!(
                "priority {s:?} is not one of normal, urgent, flash"
            )),
        }
    }
}

/// What the sending agency says about a document (everything but the body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Metadata {
    /// Subject line ("trích yếu").
    pub subject: String,
    /// Official number/notation, e.g. `123/QD-BTC`.
    pub number: Option<String>,
    /// Document type, e.g. `decision`, `official-letter`.
    pub doc_type: Option<String>,
    /// Handling priority.
    pub priority: Priority,
    /// Due date, `YYYY-MM-DD`.
    pub due_date: Option<String>,
    /// Original file name of the body.
    pub filename: Option<String>,
}

/// The signed header of a document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Time-ordered document ID.
    pub id: DocumentId,
    /// Sending agency.
    pub sender: AgencyId,
    /// Receiving agencies.
    pub recipients: Vec<AgencyId>,
    /// Metadata.
    pub meta: Metadata,
    /// Creation time at the sender, Unix milliseconds.
    pub created_ms: u64,
    /// Body length in bytes.
    pub body_len: u64,
    /// SHA-256 of the body.
    pub body_sha256: Digest,
    /// What the body is and the official metadata that came with it beyond [`Metadata`].
    /// Appended after the fields of the first layout: an envelope signed before it existed
    /// decodes with the default (a native body, nothing more), and an agent that predates it
    /// reads the fields it knows and ignores the rest.
    pub ext: EnvelopeExt,
}

/// What the body of a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// A file as the sender's software gave it (PDF, office document, archive, ...).
    #[default]
    Native,
    /// An edXML package (QCVN 102:2016) exactly as the sender's document-management software
    /// wrote it; the metadata of the envelope was taken from its header.
    Edxml,
}

/// The envelope's second part: the body's format and the official metadata an edXML header
/// carries that [`Metadata`] does not. Every text field is one line of at most
/// [`MAX_FIELD_LEN`] bytes; dates are kept as the sender wrote them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EnvelopeExt {
    /// What the body is.
    pub format: BodyFormat,
    /// The document's identifier in the sender's document-management software (edXML
    /// `DocumentId`), by which that software and its correspondents refer to it.
    pub dms_id: Option<String>,
    /// Promulgation date as written by the sender.
    pub promulgated: Option<String>,
    /// Place of promulgation.
    pub place: Option<String>,
    /// Full name of the official who signed the document.
    pub signer: Option<String>,
    /// That official's position.
    pub signer_position: Option<String>,
}

/// The first layout of an [`Envelope`], without [`EnvelopeExt`].
#[derive(Deserialize)]
struct EnvelopeV1 {
    id: DocumentId,
    sender: AgencyId,
    recipients: Vec<AgencyId>,
    meta: Metadata,
    created_ms: u64,
    body_len: u64,
    body_sha256: Digest,
}

impl EnvelopeExt {
    /// Check each field is one line of bounded length.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        let fields: [(&'static str, Option<&String>); 5] = [
            ("dms_id", self.dms_id.as_ref()),
            ("promulgated", self.promulgated.as_ref()),
            ("place", self.place.as_ref()),
            ("signer", self.signer.as_ref()),
            ("signer_position", self.signer_position.as_ref()),
        ];
        check_fields(&fields)
    }
}

fn check_fields(fields: &[(&'static str, Option<&String>)]) -> Result<(), EnvelopeError> {
    for (name, v) in fields {
        if let Some(v) = v {
            // Every metadata field is one line: a subject with ESC or CR could repaint or
            // forge lines on the recipient's terminal.
            crate::text::single_line(name, v, MAX_FIELD_LEN).map_err(|e| match e {
                crate::text::TextError::TooLong { .. } => EnvelopeError::FieldTooLong(name),
                other => EnvelopeError::Text(other),
            })?;
        }
    }
    Ok(())
}

/// Why an envelope is not acceptable regardless of who signed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// No recipients.
    #[error("a document needs at least one recipient")]
    NoRecipients,
    /// Too many recipients.
    #[error("a document may have at most {MAX_RECIPIENTS} recipients")]
    TooManyRecipients,
    /// A recipient listed twice.
    #[error("recipient {0} is listed twice")]
    DuplicateRecipient(AgencyId),
    /// Sending to oneself.
    #[error("the sender {0} cannot be a recipient")]
    SelfRecipient(AgencyId),
    /// Empty subject.
    #[error("the subject is empty")]
    EmptySubject,
    /// A text field is too long.
    #[error("field {0} is longer than {MAX_FIELD_LEN} bytes")]
    FieldTooLong(&'static str),
    /// Due date not a real date written `YYYY-MM-DD`.
    #[error("due date {0:?} is not a calendar date written YYYY-MM-DD")]
    BadDueDate(String),
    /// A field holds a character it may not (see [`crate::text`]).
    #[error("{0}")]
    Text(crate::text::TextError),
    /// Payload did not decode.
    #[error("envelope does not decode: {0}")]
    Decode(String),
}

impl Envelope {
    /// Check the envelope's own consistency (not its signature).
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        validate_addressing(&self.sender, &self.recipients, &self.meta)?;
        self.ext.validate()
    }
}

/// The envelope rules that do not depend on the body: recipients and metadata. A sender checks
/// them before it receives a body, so a request that must be refused never stages one.
pub fn validate_addressing(
    sender: &AgencyId,
    recipients: &[AgencyId],
    meta: &Metadata,
) -> Result<(), EnvelopeError> {
    if recipients.is_empty() {
        return Err(EnvelopeError::NoRecipients);
    }
    if recipients.len() > MAX_RECIPIENTS {
        return Err(EnvelopeError::TooManyRecipients);
    }
    let mut seen = std::collections::HashSet::new();
    for r in recipients {
        if r == sender {
            return Err(EnvelopeError::SelfRecipient(r.clone()));
        }
        if !seen.insert(r) {
            return Err(EnvelopeError::DuplicateRecipient(r.clone()));
        }
    }
    meta.validate()
}

impl Metadata {
    /// Check field presence and lengths.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.subject.trim().is_empty() {
            return Err(EnvelopeError::EmptySubject);
        }
        let fields: [(&'static str, Option<&String>); 5] = [
            ("subject", Some(&self.subject)),
            ("number", self.number.as_ref()),
            ("doc_type", self.doc_type.as_ref()),
            ("due_date", self.due_date.as_ref()),
            ("filename", self.filename.as_ref()),
        ];
        check_fields(&fields)?;
        if let Some(d) = &self.due_date {
            if !crate::text::is_calendar_date(d) {
                return Err(EnvelopeError::BadDueDate(d.clone()));
            }
        }
        Ok(())
    }
}

/// An envelope as signed by its sender.
pub type SignedEnvelope = Signed<Envelope>;

impl Signable for Envelope {
    const CONTEXT: &'static [u8] = ENVELOPE_CONTEXT;
}

impl SignedEnvelope {
    /// Decode the envelope from the signed bytes (call after verifying the signature).
    pub fn envelope(&self) -> Result<Envelope, EnvelopeError> {
        match self.decode() {
            Ok(e) => Ok(e),
            // Signed before the envelope had its second part: the bytes end after the body
            // digest.
            Err(postcard::Error::DeserializeUnexpectedEnd) => {
                let v1: EnvelopeV1 = postcard::from_bytes(&self.blob().payload)
                    .map_err(|e| EnvelopeError::Decode(e.to_string()))?;
                Ok(Envelope {
                    id: v1.id,
                    sender: v1.sender,
                    recipients: v1.recipients,
                    meta: v1.meta,
                    created_ms: v1.created_ms,
                    body_len: v1.body_len,
                    body_sha256: v1.body_sha256,
                    ext: EnvelopeExt::default(),
                })
            }
            Err(e) => Err(EnvelopeError::Decode(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signed::{test_key, verify_raw};

    pub(crate) fn sample() -> Envelope {
        Envelope {
            id: DocumentId::new_v7(1, [1; 10]),
            sender: AgencyId::parse("000.00.00.G22").unwrap(),
            recipients: vec![AgencyId::parse("000.00.00.H01").unwrap()],
            meta: Metadata {
                subject: "Budget".into(),
                number: Some("12/QD-BTC".into()),
                due_date: Some("2026-12-01".into()),
                ..Default::default()
            },
            created_ms: 5,
            body_len: 3,
            body_sha256: crate::sha256(b"abc"),
            ext: EnvelopeExt::default(),
        }
    }

    #[test]
    fn an_envelope_signed_before_the_second_part_still_reads() {
        let k = test_key();
        let e = sample();
        let v1 = postcard::to_allocvec(&(
            &e.id,
            &e.sender,
            &e.recipients,
            &e.meta,
            e.created_ms,
            e.body_len,
            &e.body_sha256,
        ))
        .unwrap();
        let old = SignedEnvelope::from_blob(
            crate::signed::SignedBlob::sign(ENVELOPE_CONTEXT, v1.clone(), &k, b"c").unwrap(),
        );
        assert_eq!(old.envelope().unwrap(), e);
        // And an agent that predates it reads the new layout's first part unchanged.
        let mut new = sample();
        new.ext = EnvelopeExt {
            format: BodyFormat::Edxml,
            dms_id: Some("G22.2026.77".into()),
            signer: Some("Nguyễn Văn A".into()),
            ..Default::default()
        };
        let bytes = postcard::to_allocvec(&new).unwrap();
        assert!(bytes.starts_with(&v1));
        let read: EnvelopeV1 = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(read.meta, e.meta);
        let signed = SignedEnvelope::sign(&new, &k, b"c").unwrap();
        assert_eq!(signed.envelope().unwrap(), new);
    }

    #[test]
    fn ext_fields_are_single_lines() {
        let mut e = sample();
        e.ext.signer = Some("A\nB".into());
        assert!(matches!(e.validate(), Err(EnvelopeError::Text(_))));
        let mut e = sample();
        e.ext.dms_id = Some("x".repeat(MAX_FIELD_LEN + 1));
        assert_eq!(e.validate(), Err(EnvelopeError::FieldTooLong("dms_id")));
    }

    #[test]
    fn valid_envelope_passes() {
        sample().validate().unwrap();
    }

    #[test]
    fn invalid_envelopes_name_the_problem() {
        let mut e = sample();
        e.recipients.clear();
        assert_eq!(e.validate(), Err(EnvelopeError::NoRecipients));
        let mut e = sample();
        e.recipients.push(e.recipients[0].clone());
        assert!(matches!(
            e.validate(),
            Err(EnvelopeError::DuplicateRecipient(_))
        ));
        let mut e = sample();
        e.recipients.push(e.sender.clone());
        assert!(matches!(e.validate(), Err(EnvelopeError::SelfRecipient(_))));
        let mut e = sample();
        e.meta.subject = "  ".into();
        assert_eq!(e.validate(), Err(EnvelopeError::EmptySubject));
        let mut e = sample();
        e.meta.due_date = Some("2026-13-01".into());
        assert!(matches!(e.validate(), Err(EnvelopeError::BadDueDate(_))));
        let mut e = sample();
        e.meta.number = Some("x".repeat(MAX_FIELD_LEN + 1));
        assert_eq!(e.validate(), Err(EnvelopeError::FieldTooLong("number")));
    }

    #[test]
    fn altered_header_breaks_signature() {
        let k = test_key();
        let s = SignedEnvelope::sign(&sample(), &k, b"c").unwrap();
        assert_eq!(s.envelope().unwrap(), sample());
        let mut forged = sample();
        forged.meta.subject = "Other".into();
        let mut tampered = s.clone();
        tampered.0.payload = postcard::to_allocvec(&forged).unwrap();
        assert!(verify_raw(
            k.public_key(),
            ENVELOPE_CONTEXT,
            &s.0.payload,
            &s.0.signature
        ));
        assert!(!verify_raw(
            k.public_key(),
            ENVELOPE_CONTEXT,
            &tampered.0.payload,
            &tampered.0.signature
        ));
    }
}
