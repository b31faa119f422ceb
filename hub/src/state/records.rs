//! The records the hub stores: nodes, tokens, monitors, audit entries, documents, deliveries
//! and answers to relay, with the decoders that keep stores of earlier versions readable.

use super::dec;
use poros_protocol::{
    AgencyId, Digest, DocumentId, SignedBlob, SignedEnvelope, SignedNotice, SignedReceipt,
};

use poros_store::StoreError;
use serde::{Deserialize, Serialize};

/// A read-only monitor credential (the token itself is never stored, only its SHA-256).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MonitorRecord {
    /// Name given by the admin.
    pub name: String,
    /// SHA-256 of the token.
    pub token_sha256: [u8; 32],
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Revoked, Unix ms.
    pub revoked_ms: Option<u64>,
}

/// Lifecycle state of a registered node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Registered, waiting for enrolment by token.
    Pending,
    /// May connect and exchange.
    Active,
    /// Connections refused; documents to it are held.
    Suspended,
    /// Certificates revoked.
    Revoked,
}

/// A registered agency node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Agency code.
    pub agency: AgencyId,
    /// Human name.
    pub name: String,
    /// State.
    pub state: NodeState,
    /// Serial (hex) of the node's TLS certificate.
    pub tls_serial: String,
    /// Serial (hex) of the node's signing certificate.
    pub sign_serial: String,
    /// Expiry of the TLS certificate, Unix seconds.
    pub tls_not_after: i64,
    /// When registered, Unix ms.
    pub registered_ms: u64,
    /// Issue time of the TLS certificate, Unix seconds (for renewal warnings).
    pub tls_not_before: i64,
    /// Last connection or disconnection seen, Unix ms.
    pub last_seen_ms: Option<u64>,
    /// Certificates replaced by the latest renewal and not yet retired (admitted only during the
    /// renewal overlap).
    pub superseded: Option<Superseded>,
    /// Identity conflicts seen: two live connections presenting this agency's certificate.
    pub conflicts: u64,
    /// The latest identity conflict.
    pub last_conflict: Option<Conflict>,
    /// The agency this one belongs to (registered, never itself, no cycle).
    pub parent: Option<AgencyId>,
    /// E-mail address for the directory.
    pub email: Option<String>,
    /// Postal address for the directory.
    pub address: Option<String>,
    /// Phone number(s) for the directory.
    pub phone: Option<String>,
}

/// The name and directory fields given to `node add` or changed by `node edit`: `None`
/// leaves a field as it is (unset, at registration), `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeEdit {
    /// New name.
    pub name: Option<String>,
    /// New parent, or none.
    pub parent: Option<Option<AgencyId>>,
    /// New e-mail address, or none.
    pub email: Option<Option<String>>,
    /// New postal address, or none.
    pub address: Option<Option<String>>,
    /// New phone number(s), or none.
    pub phone: Option<Option<String>>,
}

impl NodeEdit {
    /// Check the text fields (the parent is checked against the registry when stored).
    pub fn validate(&self) -> Result<(), poros_protocol::directory::FieldError> {
        use poros_protocol::directory::{check_address, check_email, check_phone};
        if let Some(n) = &self.name {
            poros_protocol::text::name("agency name", n)?;
        }
        if let Some(Some(e)) = &self.email {
            check_email(e)?;
        }
        if let Some(Some(a)) = &self.address {
            check_address(a)?;
        }
        if let Some(Some(p)) = &self.phone {
            check_phone(p)?;
        }
        Ok(())
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == NodeEdit::default()
    }

    /// Apply to `rec`; what changed, one `field: old -> new` line each, for the audit log.
    pub fn apply(&self, rec: &mut NodeRecord) -> Vec<String> {
        fn shown<T: std::fmt::Display>(v: &Option<T>) -> String {
            v.as_ref()
                .map(|v| format!("{:?}", v.to_string()))
                .unwrap_or_else(|| "none".into())
        }
        fn set<T: Clone + PartialEq + std::fmt::Display>(
            changes: &mut Vec<String>,
            field: &str,
            cur: &mut Option<T>,
            new: &Option<Option<T>>,
        ) {
            if let Some(new) = new {
                if cur != new {
                    changes.push(format!("{field}: {} -> {}", shown(cur), shown(new)));
                    *cur = new.clone();
                }
            }
        }
        let mut changes = Vec::new();
        if let Some(n) = &self.name {
            if &rec.name != n {
                changes.push(format!("name: {:?} -> {n:?}", rec.name));
                rec.name = n.clone();
            }
        }
        set(&mut changes, "parent", &mut rec.parent, &self.parent);
        set(&mut changes, "email", &mut rec.email, &self.email);
        set(&mut changes, "address", &mut rec.address, &self.address);
        set(&mut changes, "phone", &mut rec.phone, &self.phone);
        changes
    }
}

/// Certificates a renewal replaced, admitted for a short overlap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    /// Serial (hex) of the replaced TLS certificate.
    pub tls_serial: String,
    /// Serial (hex) of the replaced signing certificate.
    pub sign_serial: String,
    /// When the renewal was issued (the supersession time, by the hub's clock), Unix ms.
    pub at_ms: u64,
}

/// Two live connections claimed one agency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// When, Unix ms.
    pub at_ms: u64,
    /// Address of the connection already serving the agency.
    pub kept: String,
    /// Address of the connection refused.
    pub refused: String,
}

/// Whether a presented certificate serial is admitted for a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialCheck {
    /// The certificate the hub currently holds for the agency.
    Current,
    /// The certificate replaced by the latest renewal, still inside its overlap.
    Superseded,
    /// Any other certificate: an earlier one, or one the hub never issued.
    Unknown,
}

impl NodeRecord {
    /// What revoking this node puts on the revocation lists: its current serials and any
    /// a renewal superseded and that are not yet retired, each with its kind (`tls`/`sign`).
    pub fn serials_to_revoke(&self, now_ms: u64) -> Vec<(String, RevokedSerial)> {
        let old = self.superseded.iter();
        [(&self.tls_serial, "tls"), (&self.sign_serial, "sign")]
            .into_iter()
            .chain(old.flat_map(|o| [(&o.tls_serial, "tls"), (&o.sign_serial, "sign")]))
            .filter(|(serial, _)| !serial.is_empty())
            .map(|(serial, kind)| {
                let r = RevokedSerial {
                    agency: self.agency.clone(),
                    kind: kind.into(),
                    revoked_ms: now_ms,
                };
                (serial.clone(), r)
            })
            .collect()
    }

    /// Check a TLS certificate serial against the registry (pure: the time is an argument).
    pub fn check_tls_serial(&self, serial: &str, now_ms: u64, overlap_ms: u64) -> SerialCheck {
        self.check_serial(
            serial,
            now_ms,
            overlap_ms,
            |s| &s.tls_serial,
            &self.tls_serial,
        )
    }

    /// Check a signing certificate serial against the registry (pure: the time is an argument).
    pub fn check_sign_serial(&self, serial: &str, now_ms: u64, overlap_ms: u64) -> SerialCheck {
        self.check_serial(
            serial,
            now_ms,
            overlap_ms,
            |s| &s.sign_serial,
            &self.sign_serial,
        )
    }

    fn check_serial(
        &self,
        serial: &str,
        now_ms: u64,
        overlap_ms: u64,
        old: impl Fn(&Superseded) -> &String,
        current: &str,
    ) -> SerialCheck {
        if !current.is_empty() && serial.eq_ignore_ascii_case(current) {
            return SerialCheck::Current;
        }
        match &self.superseded {
            Some(s)
                if old(s).eq_ignore_ascii_case(serial)
                    && now_ms < s.at_ms.saturating_add(overlap_ms) =>
            {
                SerialCheck::Superseded
            }
            _ => SerialCheck::Unknown,
        }
    }

    /// A newly registered node, waiting for its certificates.
    pub fn pending(agency: &AgencyId, name: &str, now_ms: u64) -> Self {
        NodeRecord {
            agency: agency.clone(),
            name: name.to_string(),
            state: NodeState::Pending,
            tls_serial: String::new(),
            sign_serial: String::new(),
            tls_not_after: 0,
            tls_not_before: 0,
            registered_ms: now_ms,
            last_seen_ms: None,
            superseded: None,
            conflicts: 0,
            last_conflict: None,
            parent: None,
            email: None,
            address: None,
            phone: None,
        }
    }

    /// This agency as the directory shows it (active unless suspended or revoked).
    pub fn directory_entry(&self) -> poros_protocol::DirectoryEntry {
        poros_protocol::DirectoryEntry {
            code: self.agency.clone(),
            name: self.name.clone(),
            parent: self.parent.clone(),
            email: self.email.clone(),
            address: self.address.clone(),
            phone: self.phone.clone(),
            active: !matches!(self.state, NodeState::Suspended | NodeState::Revoked),
        }
        .bounded()
    }
}

/// `NodeRecord` as stored before certificate rotation and conflicts were recorded; read so that
/// stores written by earlier versions keep working.
#[derive(Deserialize)]
struct NodeRecordV1 {
    agency: AgencyId,
    name: String,
    state: NodeState,
    tls_serial: String,
    sign_serial: String,
    tls_not_after: i64,
    registered_ms: u64,
    tls_not_before: i64,
    last_seen_ms: Option<u64>,
}

/// `NodeRecord` as stored before the directory fields (parent, e-mail, address, phone).
#[derive(Deserialize)]
struct NodeRecordV2 {
    agency: AgencyId,
    name: String,
    state: NodeState,
    tls_serial: String,
    sign_serial: String,
    tls_not_after: i64,
    registered_ms: u64,
    tls_not_before: i64,
    last_seen_ms: Option<u64>,
    superseded: Option<Superseded>,
    conflicts: u64,
    last_conflict: Option<Conflict>,
}

/// Decode a node record of any version. Each version appends fields, so an older record is
/// a prefix of the newer layout and fails to decode as it (the input ends early); postcard
/// ignores trailing bytes, so the newest layout is tried first.
pub(super) fn dec_node(b: &[u8]) -> Result<NodeRecord, StoreError> {
    if let Ok(n) = postcard::from_bytes::<NodeRecord>(b) {
        return Ok(n);
    }
    if let Ok(v) = postcard::from_bytes::<NodeRecordV2>(b) {
        return Ok(NodeRecord {
            agency: v.agency,
            name: v.name,
            state: v.state,
            tls_serial: v.tls_serial,
            sign_serial: v.sign_serial,
            tls_not_after: v.tls_not_after,
            registered_ms: v.registered_ms,
            tls_not_before: v.tls_not_before,
            last_seen_ms: v.last_seen_ms,
            superseded: v.superseded,
            conflicts: v.conflicts,
            last_conflict: v.last_conflict,
            parent: None,
            email: None,
            address: None,
            phone: None,
        });
    }
    let v: NodeRecordV1 = dec(b)?;
    Ok(NodeRecord {
        agency: v.agency,
        name: v.name,
        state: v.state,
        tls_serial: v.tls_serial,
        sign_serial: v.sign_serial,
        tls_not_after: v.tls_not_after,
        registered_ms: v.registered_ms,
        tls_not_before: v.tls_not_before,
        last_seen_ms: v.last_seen_ms,
        superseded: None,
        conflicts: 0,
        last_conflict: None,
        parent: None,
        email: None,
        address: None,
        phone: None,
    })
}

/// One administrative action, as recorded (who, what, when).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When, Unix ms.
    pub time_ms: u64,
    /// Who: `admin@<address>` for the admin API, `enrolment@<address>` for token use,
    /// `node:<agency>` for actions a node takes itself (renewal).
    pub actor: String,
    /// What, e.g. `node add`, `suspend`, `enrol refused`.
    pub action: String,
    /// Agency concerned.
    pub agency: Option<AgencyId>,
    /// Details (e.g. the refusal reason, serials issued).
    pub detail: String,
}

/// A stored enrolment token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token as issued.
    pub token: poros_protocol::EnrollToken,
    /// When it was used, if it was.
    pub used_ms: Option<u64>,
}

/// A revoked certificate serial.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokedSerial {
    /// Agency it belonged to.
    pub agency: AgencyId,
    /// `tls` (network CA) or `sign` (signing CA).
    pub kind: String,
    /// Revocation time, Unix ms.
    pub revoked_ms: u64,
}

/// Where a document's body lives (`Gone`: removed by retention); shared with the agent.
pub use poros_store::BodyAt;

/// A document the hub accepted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DocRecord {
    /// As signed by the sender.
    pub envelope: SignedEnvelope,
    /// The hub's acceptance as signed: an `Accepted` statement (also in the document's
    /// history) since `poros/3`, the `poros/1` acceptance form in records written before.
    /// Informational: a resubmission is answered with an acceptance signed again in the form
    /// its connection speaks.
    pub acceptance: SignedBlob,
    /// Sender.
    pub sender: AgencyId,
    /// Recipients.
    pub recipients: Vec<AgencyId>,
    /// Body digest.
    pub body_sha256: Digest,
    /// Body length.
    pub body_len: u64,
    /// Body location.
    pub body_at: BodyAt,
    /// Accepted at, Unix ms.
    pub accepted_ms: u64,
}

/// State of one delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DeliveryState {
    /// Not yet answered.
    Pending,
    /// Recipient's signed receipt.
    Delivered(SignedReceipt),
    /// Recipient's signed rejection.
    Rejected(SignedReceipt, String),
    /// Hub's signed expiry notice.
    Expired(SignedNotice),
    /// Hub's signed notice that the body was lost and could not be repaired (counted like an
    /// expiry in the statistics: the delivery failed without the recipient's fault).
    Lost(SignedNotice),
    /// Ended by a statement in the document's history (since `poros/3`: the recipient's
    /// receipt or rejection, or the hub's expiry or body-lost notice). The variants above are
    /// the `poros/1` forms, kept for records written by or for such agents.
    Ended {
        /// How it ended.
        how: DeliveryEnd,
        /// The statement's acceptance sequence number (see `HubStore::statement_history`).
        statement: u64,
    },
}

/// How a delivery ended, as said by the statement that ended it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryEnd {
    /// The recipient stored it.
    Delivered,
    /// The recipient quarantined it, for this reason.
    Rejected(poros_protocol::Reason),
    /// It stayed pending past the expiry.
    Expired,
    /// The hub's copy of the body was lost and could not be repaired.
    Lost(poros_protocol::BodyLostReason),
}

impl DeliveryState {
    /// Still waiting for an answer.
    pub fn is_pending(&self) -> bool {
        matches!(self, DeliveryState::Pending)
    }

    /// The recipient signed that it holds the document.
    pub fn is_delivered(&self) -> bool {
        matches!(
            self,
            DeliveryState::Delivered(_)
                | DeliveryState::Ended {
                    how: DeliveryEnd::Delivered,
                    ..
                }
        )
    }

    /// How it ended, whatever form the answer took (`None` while pending).
    pub fn end(&self) -> Option<DeliveryEnd> {
        Some(match self {
            DeliveryState::Pending => return None,
            DeliveryState::Delivered(_) => DeliveryEnd::Delivered,
            DeliveryState::Rejected(r, why) => DeliveryEnd::Rejected(
                r.receipt()
                    .ok()
                    .and_then(|r| r.outcome.rejection())
                    .unwrap_or_else(|| {
                        poros_protocol::Reason::new(
                            poros_protocol::ReasonCode::of_legacy_text(why),
                            why.clone(),
                        )
                    }),
            ),
            DeliveryState::Expired(_) => DeliveryEnd::Expired,
            DeliveryState::Lost(n) => match n.notice().map(|n| n.kind) {
                Ok(poros_protocol::NoticeKind::BodyLost { reason }) => DeliveryEnd::Lost(reason),
                _ => DeliveryEnd::Lost(poros_protocol::BodyLostReason::RepairAttemptsExhausted),
            },
            DeliveryState::Ended { how, .. } => how.clone(),
        })
    }
}

/// One (document, recipient) delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// State.
    pub state: DeliveryState,
    /// When answered, Unix ms.
    pub answered_ms: Option<u64>,
}

/// Something to relay to a sender.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RelayItem {
    /// A recipient's receipt or rejection.
    Receipt(SignedReceipt),
    /// A hub notice.
    Notice(SignedNotice),
}

/// Result of trying to store a submission.
#[derive(Debug)]
pub enum AcceptOutcome {
    /// Newly stored.
    Stored,
    /// Same document seen before, accepted at this time.
    Duplicate {
        /// When it was first accepted, Unix ms.
        accepted_ms: u64,
    },
    /// Same ID, different document.
    Conflict,
}

/// A pending delivery ready to push.
#[derive(Clone, Debug)]
pub struct Pending {
    /// Document.
    pub doc: DocumentId,
    /// Accepted at.
    pub accepted_ms: u64,
}
