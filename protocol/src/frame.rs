//! Wire frames: every QUIC stream starts with one length-prefixed frame (u32 big-endian length,
//! then postcard), optionally followed by a raw body whose length the frame announces.
//!
//! Decoding is two-phase (check the length prefix against the limit, then parse), so a peer can
//! never make the other side allocate more than [`MAX_FRAME_LEN`].

use crate::envelope::SignedEnvelope;
use crate::ids::DocumentId;
use crate::reason::ReasonCode;
use crate::receipt::{SignedAcceptance, SignedNotice, SignedReceipt};
use crate::statement::SignedStatement;
use serde::{Deserialize, Serialize};

/// Largest frame accepted (header only; bodies are streamed after it).
pub const MAX_FRAME_LEN: usize = 256 * 1024;

/// What an encoded frame starts with room for: the exchange's frames fit (a submission, a
/// delivery or a statement, each with its signer's certificate, encodes to about 620 bytes).
const FRAME_CAPACITY: usize = 1024;

/// Every message on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Agent → hub: a document; `body_len` raw bytes follow on the stream.
    Submit {
        /// The sender-signed envelope.
        envelope: SignedEnvelope,
    },
    /// Hub → agent: a document for this agency; `body_len` raw bytes follow.
    Deliver {
        /// The sender-signed envelope, unchanged.
        envelope: SignedEnvelope,
    },
    /// `poros/1` form. Hub → agent: a receipt or rejection for a document this agency sent, as
    /// signed by a `poros/1` recipient (or queued before receipts were statements).
    RelayReceipt {
        /// Signed by the recipient.
        receipt: SignedReceipt,
    },
    /// `poros/1` form. Hub → agent: a hub notice (e.g. expiry) about a document this agency
    /// sent (since `poros/3` a [`crate::StatementKind::Notice`] statement).
    Notice {
        /// Signed by the hub.
        notice: SignedNotice,
    },
    /// `poros/1` form of the hub's answer to `Submit` (since `poros/3` the answer is a
    /// `Statement` frame carrying a [`crate::StatementKind::Accepted`] statement).
    Accepted {
        /// Signed by the hub.
        acceptance: SignedAcceptance,
    },
    /// `poros/1` form of the agent's answer to `Deliver` (since `poros/3` a `Statement` frame
    /// carrying a [`crate::StatementKind::Receipt`] statement).
    Receipt {
        /// Signed by this agency.
        receipt: SignedReceipt,
    },
    /// Answer to `RelayReceipt` / `Notice`: stored durably.
    Ack {
        /// Document concerned.
        doc_id: DocumentId,
    },
    /// Either direction: the request was refused.
    Refused(Refusal),
    /// New agent → hub, on the enrolment endpoint: a one-time token and certificate requests
    /// for keys generated on the agent's machine.
    Enroll {
        /// The agency the token was issued for.
        agency: crate::AgencyId,
        /// The token's secret part.
        secret: String,
        /// PEM request for the TLS key.
        tls_csr: String,
        /// PEM request for the signing key.
        sign_csr: String,
    },
    /// Agent → hub, on its authenticated connection: certificates for fresh keys.
    Renew {
        /// PEM request for the new TLS key.
        tls_csr: String,
        /// PEM request for the new signing key.
        sign_csr: String,
    },
    /// Hub → agent answer to `Enroll` or `Renew`.
    Credentials(Credentials),
    /// `poros/1` form. Agent → hub: a signed monthly paper-count report; answered with `Ack`
    /// once stored (since `poros/3` a [`crate::StatementKind::PaperCount`] statement).
    PaperReport {
        /// Signed by the reporting agency.
        report: crate::receipt::SignedPaperReport,
    },
    /// Hub → agent: the signing CA's current revocation list (DER); answered with `Ack`.
    CrlUpdate {
        /// DER-encoded CRL.
        signing_crl: Vec<u8>,
    },
    /// Hub → agent: are you still there? Answered with `Ack`. The hub asks an agency's existing
    /// connection before it decides whether a second one is a reconnect or an identity conflict.
    Ping,
    /// Hub → sending agent: the hub lost or found damaged its copy of this document's body;
    /// answered with `Submit` carrying the original signed envelope followed by the body, or
    /// with `Refused` (`NotFound` when the agent no longer holds it).
    Reupload {
        /// The document whose body is asked for.
        doc_id: DocumentId,
    },
    /// Either direction: a signed statement (agent → hub: made by this agency — business
    /// statements, paper counts; hub → agent: relayed to it, or made by the hub). Answered with
    /// `Ack` once stored durably, or `Refused` with [`RefusalCode::Rule`] naming why it is not
    /// allowed. It is also the answer to `Submit` (the hub's acceptance) and to `Deliver` /
    /// `DeliverAdded` (the recipient's receipt or rejection).
    Statement {
        /// Signed by the agency that makes it.
        statement: SignedStatement,
    },
    /// Hub → agent: a document for an agency an update added as a recipient; `body_len` raw
    /// bytes follow. The sender's signed update is the proof that the document is addressed to
    /// it although the envelope does not list it. Answered like `Deliver`.
    DeliverAdded {
        /// The sender-signed envelope, unchanged.
        envelope: SignedEnvelope,
        /// The sender-signed update that added this agency.
        update: SignedStatement,
    },
    /// Agent → hub, on its authenticated connection: a page of the agency directory, the
    /// entries after `after` in code order (`None`: from the first). Answered with
    /// `DirectoryPage`, or `Refused` (a hub before this frame refuses it as `Malformed`).
    DirectoryRequest {
        /// The previous page's cursor.
        after: Option<crate::AgencyId>,
    },
    /// Hub → agent answer to `DirectoryRequest`: entries from the registry, in code order,
    /// filled up to [`crate::directory::PAGE_BUDGET`] bytes; `next` is the cursor to ask
    /// for the following page with (`None`: this was the last).
    DirectoryPage {
        /// The entries of this page.
        entries: Vec<crate::DirectoryEntry>,
        /// The cursor of the next page.
        next: Option<crate::AgencyId>,
    },
    /// Hub → agent, at connect, when the hub's store was restored from a backup taken at
    /// `since_ms` (hub clock, less a margin): the restored store may lack what the hub
    /// accepted after that, so the agent submits again every document the hub accepted from
    /// `since_ms` on whose body it still holds (the hub takes a document it knows already as
    /// the same document). `epoch` names the restore: an agent does this once per restore.
    /// Answered with `Ack` once the documents are queued durably; an agent before this frame
    /// answers `Refused` (`Malformed`).
    Resync {
        /// Identifies the restore.
        epoch: u64,
        /// Documents accepted from this time on (Unix ms, hub clock) are submitted again.
        since_ms: u64,
    },
}

/// Certificates and trust roots the hub hands to an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The agent's TLS certificate (PEM).
    pub tls_cert: String,
    /// The agent's signing certificate (PEM).
    pub sign_cert: String,
    /// Network CA certificate (PEM).
    pub network_ca: String,
    /// Signing CA certificate (PEM).
    pub signing_ca: String,
    /// Signing CA's revocation list (DER).
    pub signing_crl: Vec<u8>,
    /// The hub's QUIC address for exchange (host:port).
    pub hub: String,
}

/// A refusal with a machine-readable code and a human message naming what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Category.
    pub code: RefusalCode,
    /// What was wrong, for a person.
    pub message: String,
}

/// Categories of refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefusalCode {
    /// The frame did not decode or was unexpected.
    Malformed,
    /// The envelope's sender is not the authenticated agency.
    SenderMismatch,
    /// A recipient is unknown or not active.
    UnknownRecipient,
    /// The body exceeds the configured limit.
    TooLarge,
    /// The signature or signer certificate did not verify.
    BadSignature,
    /// The body did not match the envelope's length or hash.
    BodyMismatch,
    /// The envelope is inconsistent (see message).
    InvalidEnvelope,
    /// The same document ID was used for a different document.
    Conflict,
    /// A temporary failure; retry later.
    Unavailable,
    /// An enrolment token was refused (unknown, used, expired, tampered, wrong agency).
    BadToken,
    /// The agency is not in a state that allows this (e.g. already active).
    NotAllowed,
    /// The refusing party's storage is full; retry later (it recovers once space is freed).
    StorageFull,
    /// The thing asked for is not held (e.g. a body asked for again that the agent no
    /// longer keeps).
    NotFound,
    /// The statement is refused under the exchange rules, for this reason.
    Rule(ReasonCode),
}

impl RefusalCode {
    /// Whether the same request may succeed later unchanged, so the asking side keeps it
    /// queued and retries instead of recording a final refusal.
    pub fn is_retryable(self) -> bool {
        matches!(self, RefusalCode::Unavailable | RefusalCode::StorageFull)
    }
}

/// Whose storage refused a request (the wording of storage refusals is defined once, here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageParty {
    /// The hub, refusing a submission.
    Hub,
    /// The receiving agent, refusing a delivery.
    Recipient,
}

impl Refusal {
    /// The retryable refusal of a party whose storage cannot write now: `full` when the
    /// cause is lack of space, otherwise another storage fault.
    pub fn storage(party: StorageParty, full: bool) -> Refusal {
        let (code, message) = match (party, full) {
            (StorageParty::Hub, true) => {
                (RefusalCode::StorageFull, "hub storage is full, retrying")
            }
            (StorageParty::Hub, false) => (
                RefusalCode::Unavailable,
                "hub storage is unavailable, retrying",
            ),
            (StorageParty::Recipient, true) => (RefusalCode::StorageFull, "recipient storage full"),
            (StorageParty::Recipient, false) => {
                (RefusalCode::Unavailable, "recipient storage unavailable")
            }
        };
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl Refusal {
    /// [`Refusal::storage`] naming its cause (e.g. "no synchronous standby confirmed the
    /// commit"), so the asking side can show what the party is waiting for.
    pub fn storage_because(party: StorageParty, full: bool, cause: &str) -> Refusal {
        let mut r = Refusal::storage(party, full);
        r.message = format!("{} ({cause})", r.message);
        r
    }

    /// A refusal under the exchange rules.
    pub fn rule(reason: crate::Reason) -> Refusal {
        Refusal {
            code: RefusalCode::Rule(reason.code),
            message: reason.text,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// Frame decoding failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Length prefix over the limit.
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN} bytes")]
    TooLong(usize),
    /// Zero-length frame.
    #[error("empty frame")]
    Empty,
    /// Payload did not decode.
    #[error("frame does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

impl Frame {
    /// Encode with its 4-byte length prefix.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        // Room for the length prefix and a signed envelope or statement with its certificate,
        // so a frame is not copied through a series of doubling reallocations as it grows.
        let mut out = Vec::with_capacity(FRAME_CAPACITY);
        out.extend_from_slice(&[0u8; 4]);
        let mut out = postcard::to_extend(self, out)?;
        let len = out.len() - 4;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLong(len));
        }
        out[..4].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(out)
    }

    /// Phase one: check a length prefix.
    pub fn check_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
        let len = u32::from_be_bytes(prefix) as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLong(len));
        }
        Ok(len)
    }

    /// Phase two: parse a frame's bytes (without the prefix).
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let f = Frame::Refused(Refusal {
            code: RefusalCode::TooLarge,
            message: "too big".into(),
        });
        let bytes = f.encode().unwrap();
        let len = Frame::check_len(bytes[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(Frame::decode(&bytes[4..]).unwrap(), f);
    }

    /// Postcard encodes a variant by its index: new frames go at the end, so every frame an
    /// earlier peer knows keeps its bytes.
    #[test]
    fn variant_indices_are_stable() {
        let first = |f: Frame| f.encode().unwrap()[4..].to_vec();
        assert_eq!(first(Frame::Ping), [13]);
        assert_eq!(
            first(Frame::Reupload {
                doc_id: DocumentId::from_bytes([0; 16])
            })[0],
            14
        );
        assert_eq!(first(Frame::DirectoryRequest { after: None }), [17, 0]);
        assert_eq!(
            first(Frame::DirectoryPage {
                entries: Vec::new(),
                next: None
            }),
            [18, 0, 0]
        );
    }

    #[test]
    fn limits_and_garbage() {
        assert!(matches!(
            Frame::check_len((MAX_FRAME_LEN as u32 + 1).to_be_bytes()),
            Err(FrameError::TooLong(_))
        ));
        assert!(matches!(Frame::check_len([0; 4]), Err(FrameError::Empty)));
        assert!(Frame::decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(Frame::decode(&[]).is_err());
    }
}
