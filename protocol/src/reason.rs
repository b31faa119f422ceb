//! Why a party rejected a document or refused a statement: a code from a closed set, plus
//! free text for a person. Statistics, agents and document-management software match on the
//! code, never on the text.

use serde::{Deserialize, Serialize};

/// The closed set of rejection and refusal reasons.
///
/// Encoded by position: new codes are only ever appended, before none of the existing ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ReasonCode {
    /// The signature does not verify, or the signer certificate does not chain to a trusted
    /// signing CA.
    BadSignature,
    /// The signer certificate is revoked.
    SignerRevoked,
    /// The signer certificate is expired (or not yet valid).
    SignerExpired,
    /// The signer certificate is valid but not this party's (another agency, the hub, or not a
    /// document-signing certificate).
    SignerNotForAgency,
    /// The body does not match the hash or length in its signed envelope.
    BodyHashMismatch,
    /// The body exceeds the receiving party's size limit.
    TooLarge,
    /// The document or statement is not addressed to this agency.
    NotAddressed,
    /// The statement is about a document the party does not know.
    UnknownDocument,
    /// The statement is not allowed after what was said before (e.g. `06` then `04`), or not
    /// by this party (e.g. a change request from a recipient).
    IllegalTransition,
    /// Anything else; the text says what.
    Other,
}

impl ReasonCode {
    /// Every code, in encoding order.
    pub const ALL: [ReasonCode; 10] = [
        ReasonCode::BadSignature,
        ReasonCode::SignerRevoked,
        ReasonCode::SignerExpired,
        ReasonCode::SignerNotForAgency,
        ReasonCode::BodyHashMismatch,
        ReasonCode::TooLarge,
        ReasonCode::NotAddressed,
        ReasonCode::UnknownDocument,
        ReasonCode::IllegalTransition,
        ReasonCode::Other,
    ];

    /// Stable label, used in metrics, CSV, JSON and on the command line.
    pub fn label(self) -> &'static str {
        match self {
            ReasonCode::BadSignature => "bad_signature",
            ReasonCode::SignerRevoked => "signer_revoked",
            ReasonCode::SignerExpired => "signer_expired",
            ReasonCode::SignerNotForAgency => "signer_not_for_agency",
            ReasonCode::BodyHashMismatch => "body_hash_mismatch",
            ReasonCode::TooLarge => "too_large",
            ReasonCode::NotAddressed => "not_addressed",
            ReasonCode::UnknownDocument => "unknown_document",
            ReasonCode::IllegalTransition => "illegal_transition",
            ReasonCode::Other => "other",
        }
    }
}

impl ReasonCode {
    /// The code of a rejection written before rejections carried one, from the wording those
    /// versions used. Only for reading old receipts: new ones carry their code.
    pub fn of_legacy_text(text: &str) -> ReasonCode {
        let t = text.to_ascii_lowercase();
        if t.contains("revoked") {
            ReasonCode::SignerRevoked
        } else if t.contains("exceeds this agency's limit") {
            ReasonCode::TooLarge
        } else if t.contains("expired") || t.contains("not yet valid") {
            ReasonCode::SignerExpired
        } else if t.contains("sha-256") {
            ReasonCode::BodyHashMismatch
        } else if t.contains("not addressed to") {
            ReasonCode::NotAddressed
        } else if t.contains("but is signed by") || t.contains("signed by the hub") {
            ReasonCode::SignerNotForAgency
        } else if t.contains("signature") || t.contains("certificate") {
            ReasonCode::BadSignature
        } else {
            ReasonCode::Other
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl std::str::FromStr for ReasonCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReasonCode::ALL
            .into_iter()
            .find(|c| c.label() == s)
            .ok_or_else(|| {
                let all: Vec<_> = ReasonCode::ALL.iter().map(|c| c.label()).collect();
                format!("reason {s:?} is not one of {}", all.join(", "))
            })
    }
}

/// A reason: its code and what a person should read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Category.
    pub code: ReasonCode,
    /// What was wrong, in words.
    pub text: String,
}

impl Reason {
    /// A reason with its text.
    pub fn new(code: ReasonCode, text: impl Into<String>) -> Self {
        Reason {
            code,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for c in ReasonCode::ALL {
            assert!(seen.insert(c.label()));
            assert_eq!(c.label().parse::<ReasonCode>().unwrap(), c);
        }
        assert!("hash".parse::<ReasonCode>().is_err());
    }

    #[test]
    fn old_wordings_map_to_their_codes() {
        for (text, code) in [
            (
                "body of 102400 bytes exceeds this agency's limit of 65536 bytes",
                ReasonCode::TooLarge,
            ),
            (
                "body SHA-256 ab does not match the signed envelope (cd)",
                ReasonCode::BodyHashMismatch,
            ),
            (
                "sender signature: signer certificate is revoked",
                ReasonCode::SignerRevoked,
            ),
            (
                "envelope claims sender X but is signed by Y",
                ReasonCode::SignerNotForAgency,
            ),
            (
                "document is not addressed to 000.00.00.H02",
                ReasonCode::NotAddressed,
            ),
            ("invalid envelope: the subject is empty", ReasonCode::Other),
        ] {
            assert_eq!(ReasonCode::of_legacy_text(text), code, "{text}");
        }
    }

    #[test]
    fn encoding_is_positional_and_stable() {
        // Stored rejections decode by position: the first and last codes keep their bytes.
        assert_eq!(
            postcard::to_allocvec(&ReasonCode::BadSignature).unwrap(),
            [0]
        );
        assert_eq!(postcard::to_allocvec(&ReasonCode::Other).unwrap(), [9]);
    }
}
