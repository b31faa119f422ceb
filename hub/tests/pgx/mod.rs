//! What the PostgreSQL tests of the exchange and statement areas share: a fresh database
//! per test, and documents, answers and statements built as `state/tests.rs` builds them.
//!
//! The database: a real PostgreSQL server the test binary starts (Debian's postgresql
//! package; `scripts/test.sh` installs it), with a database of its own per test. A server that
//! cannot be started fails the test, saying why.
#![allow(dead_code)] // each test file uses its part

use poros_hub::state::{Answer, BodyAt, DeliveryState, DocRecord};
use poros_protocol::{
    Acceptance, AgencyId, BusinessStatus, Change, DocumentId, Envelope, HubNotice, Metadata,
    NoticeKind, Outcome, Receipt, SignedEnvelope, SignedReceipt, SignedStatement, SigningKey,
    Staff, Statement, StatementKind,
};

pub const G: &str = "000.00.00.G01";
pub const H1: &str = "000.00.00.H01";
pub const H2: &str = "000.00.00.H02";
pub const H3: &str = "000.00.00.H03";
pub const P: &str = "000.00.00.H09";

pub fn a(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The database.

/// A database of the test's own on the test binary's PostgreSQL server (started on first use,
/// stopped when the binary exits: `poros_harness::fresh_database`).
pub struct FreshDb {
    /// Its URL.
    pub url: String,
}

impl FreshDb {
    pub async fn create() -> FreshDb {
        let url = tokio::task::spawn_blocking(|| poros_harness::fresh_database("t_pgx"))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a PostgreSQL database for the test: {e}"));
        FreshDb { url }
    }

    /// A plain connection to it, for what the test reads or sets up directly.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url));
        tokio::spawn(conn);
        c
    }
}

// ---------------------------------------------------------------------------------------------
// Building documents and statements (as `state/tests.rs` does).

pub fn doc(k: &SigningKey, n: u8, body: &[u8], recipients: &[&str], at: BodyAt) -> DocRecord {
    let env = Envelope {
        id: DocumentId::new_v7(1000 + n as u64, [n; 10]),
        sender: a(G),
        recipients: recipients.iter().map(|r| a(r)).collect(),
        meta: Metadata {
            subject: "s".into(),
            ..Default::default()
        },
        created_ms: 1,
        body_len: body.len() as u64,
        body_sha256: poros_protocol::sha256(body),
        ext: Default::default(),
    };
    let acc = Acceptance {
        doc_id: env.id,
        sender: env.sender.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        accepted_ms: 5_000,
    };
    DocRecord {
        envelope: SignedEnvelope::sign(&env, k, b"c").unwrap(),
        acceptance: SignedStatement::sign(&acc.as_statement(), k, b"c")
            .unwrap()
            .0,
        sender: env.sender.clone(),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: env.body_len,
        body_at: at,
        accepted_ms: 5_000,
    }
}

pub fn id_of(rec: &DocRecord) -> DocumentId {
    rec.envelope.envelope().unwrap().id
}

pub fn said(k: &SigningKey, stmt: Statement) -> Answer {
    Answer::Said(
        SignedStatement::sign(&stmt, k, b"c").unwrap(),
        Box::new(stmt),
    )
}

pub fn receipt(doc: DocumentId, who: &str, outcome: Outcome, at: u64) -> Receipt {
    Receipt {
        doc_id: doc,
        sender: a(G),
        recipient: a(who),
        body_sha256: [0; 32],
        outcome,
        time_ms: at,
    }
}

pub fn notice(doc: DocumentId, who: &str, kind: NoticeKind, at: u64) -> Statement {
    HubNotice {
        doc_id: doc,
        sender: a(G),
        recipient: a(who),
        kind,
        time_ms: at,
    }
    .as_statement()
}

pub fn legacy_delivered(k: &SigningKey, doc: DocumentId, who: &str, at: u64) -> Answer {
    let r = receipt(doc, who, Outcome::Delivered, at);
    Answer::Legacy(DeliveryState::Delivered(
        SignedReceipt::sign(&r, k, b"c").unwrap(),
    ))
}

pub fn statement(
    k: &SigningKey,
    doc: DocumentId,
    from: &str,
    to: &[&str],
    kind: StatementKind,
) -> SignedStatement {
    let s = Statement {
        doc_id: doc,
        from: a(from).into(),
        to: to.iter().map(|t| a(t)).collect(),
        kind,
        staff: Staff {
            department: "Văn thư".into(),
            name: "A".into(),
            email: None,
            phone: None,
        },
        note: None,
        time_ms: 7_000,
    };
    SignedStatement::sign(&s, k, b"c").unwrap()
}

pub fn status(s: BusinessStatus) -> StatementKind {
    StatementKind::Status {
        status: s,
        reason: None,
    }
}

pub fn update(add: &str) -> StatementKind {
    StatementKind::Change {
        change: Change::Update {
            add: vec![a(add)],
            remove: vec![],
            meta: None,
        },
        reason: "also for them".into(),
    }
}
