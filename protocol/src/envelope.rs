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
        validate_addressing(&self.sender, &self.recipients, &self.meta)
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
        self.decode()
            .map_err(|e| EnvelopeError::Decode(e.to_string()))
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
        }
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
