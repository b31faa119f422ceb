//! The Poros exchange vocabulary: identifiers, signed envelopes, receipts and wire frames.
//! No IO and no clock: the current time is always an argument, so every rule is unit-testable.
//!
//! # Layout
//! - [`ids`]: `AgencyId` and `DocumentId`, parsed once at the edge.
//! - [`signed`]: the signed container shared by envelopes, receipts, acceptances and notices,
//!   and the ECDSA P-256 signing key.
//! - [`envelope`]: document metadata plus body hash, as signed by the sending agency.
//! - [`receipt`]: delivery receipts and rejections (signed by the recipient), hub acceptances
//!   and hub notices (signed by the hub).
//! - [`statement`]: what parties say about a document after delivery (business statuses,
//!   change requests and their answers), and [`rules`]: who may say what, when, as pure
//!   functions the hub and the agents share.
//! - [`admission`]: the checks every party makes on an envelope, a body and a receipt.
//! - [`directory`]: the agency directory (entries, the rules of their fields, paging).
//! - [`reason`]: the closed set of rejection and refusal reasons.
//! - [`frame`]: the length-prefixed frames carried at the start of every QUIC stream.
//! - [`token`]: one-time enrolment tokens.
//! - [`backoff`]: how an agent paces its attempts to reach a hub.
//! - [`text`]: what text may cross a boundary, and how it is shown on a terminal.
#![forbid(unsafe_code)]

pub mod admission;
pub mod backoff;
pub mod directory;
pub mod envelope;
pub mod frame;
pub mod ids;
pub mod page;
pub mod reason;
pub mod receipt;
pub mod rules;
pub mod signed;
pub mod statement;
pub mod text;
pub mod token;

pub use directory::DirectoryEntry;
pub use envelope::{BodyFormat, Envelope, EnvelopeExt, Metadata, Priority, SignedEnvelope};
pub use frame::{Credentials, Frame, FrameError, Refusal, RefusalCode, StorageParty};
pub use ids::{AgencyId, AgencyIdError, DocumentId, Party};
pub use reason::{Reason, ReasonCode};
pub use receipt::{
    Acceptance, BodyLostReason, DelayReason, HubNotice, NoticeKind, Outcome, PaperReport, Receipt,
    SignedAcceptance, SignedNotice, SignedPaperReport, SignedReceipt, MAX_REPAIR_ATTEMPTS,
};
pub use rules::{DocState, Effects, Track};
pub use signed::{SignError, Signable, Signed, SignedBlob, SigningKey};
pub use statement::{
    BusinessStatus, Change, SignedStatement, Staff, Statement, StatementKind, STATEMENT_CONTEXT,
};
pub use token::{EnrollToken, TokenError};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// ALPN of this protocol version: every statement (acceptance, receipt, notice, business
/// status, change, answer, paper count) is a [`Statement`] in a `Statement` frame, and
/// `DeliverAdded` exists. New agents offer only this. (`poros/2` was a development version
/// with business statements only; it was never released and no hub accepts it.)
pub const ALPN: &[u8] = b"poros/3";

/// ALPN of the version before statements: the hub still accepts it, answers it in that
/// version's separately signed forms and frames, and never sends it `Statement` or
/// `DeliverAdded` frames.
pub const ALPN_V1: &[u8] = b"poros/1";

/// ALPN of the hub's enrolment endpoint (server-authenticated only; token-authorised).
pub const ENROLL_ALPN: &[u8] = b"poros-enroll/1";

/// SHA-256 of `data` in one call (bodies are hashed incrementally with [`ring::digest::Context`]).
pub fn sha256(data: &[u8]) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
