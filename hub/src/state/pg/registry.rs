//! [`RegistryBackend`] in PostgreSQL: nodes, enrolment tokens, the audit log, revoked and
//! superseded serials and monitor credentials (tables of `sql/0002_registry.sql`).
//!
//! The redb registry (`state/registry.rs`) is the specification; each method here is one
//! transaction doing what the redb method does in its one commit:
//! - records are stored whole as postcard bytes and read with the redb store's decoders
//!   (`dec_node` reads node records of every earlier layout);
//! - a node's parent is checked with the same pure rule ([`check_parent`]) over the nodes
//!   the transaction reads, so two changes at once cannot make a cycle (SERIALIZABLE: one of
//!   two such transactions is aborted and run again);
//! - a token is redeemed once: its row is read `FOR UPDATE`, and a second redemption waits
//!   for the first, then runs again and finds the token used;
//! - a suspension, resumption, renewal or revocation is written only over the record it was
//!   decided from (`UPDATE … WHERE` the state read, on the row read `FOR UPDATE`): two admins
//!   acting at once through two hubs cannot write a suspension over a revocation;
//! - audit records take their sequence numbers from a `bigserial` under a transaction-scoped
//!   advisory lock, so they become visible in sequence order and a reader paging by cursor
//!   ([`RegistryBackend::audit_page`]) never passes over one committed later.

use super::{PgStore, Tx};
use crate::state::backend::RegistryBackend;
use crate::state::{
    dec, dec_node, enc, unchanged_since_read, AuditRecord, MonitorRecord, NodeChanged, NodeEdit,
    NodeRecord, NodeState, RegistryRefusal, RevokedSerial, TokenRecord,
};
use async_trait::async_trait;
use poros_protocol::directory::{check_parent, ParentError};
use poros_protocol::AgencyId;
use poros_store::StoreError;
use std::cell::RefCell;
use std::collections::HashMap;

/// Advisory-lock key serialising audit appends (any fixed number, the same in every hub).
const AUDIT_LOCK_KEY: i64 = 0x706f_726f_735f_6175; // "poros_au"

/// A Unix-ms time or a count as a `bigint` (saturating: the column is signed).
fn big(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The `state` column's text for a node state.
pub(crate) fn state_name(s: NodeState) -> &'static str {
    match s {
        NodeState::Pending => "pending",
        NodeState::Active => "active",
        NodeState::Suspended => "suspended",
        NodeState::Revoked => "revoked",
    }
}

/// Insert or replace a node record.
pub(super) async fn put_node_in(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    rec: &NodeRecord,
) -> Result<(), StoreError> {
    let parent = rec.parent.as_ref().map(AgencyId::as_str);
    tx.execute(
        "INSERT INTO nodes (agency, state, parent, record) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (agency) DO UPDATE \
         SET state = excluded.state, parent = excluded.parent, record = excluded.record",
        &[
            &rec.agency.as_str(),
            &state_name(rec.state),
            &parent,
            &enc(rec)?,
        ],
    )
    .await
    .map_err(|e| store.sql_error(op, e))?;
    Ok(())
}

/// Replace a node record derived from `read`, if the stored one is still `read` apart from
/// connection bookkeeping ([`unchanged_since_read`], the redb store's rule). The row is read
/// `FOR UPDATE` and the `UPDATE` names the state read, so a change committed by another
/// transaction in between is either waited for and seen, or aborts this one (SERIALIZABLE),
/// which [`PgStore::write`] runs again from the read.
async fn replace_node_in(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    rec: NodeRecord,
    read: &NodeRecord,
) -> Result<Result<NodeRecord, NodeChanged>, StoreError> {
    let stored = node_in(tx, store, op, rec.agency.as_str(), true).await?;
    let rec = match unchanged_since_read(stored, read, rec) {
        Ok(rec) => rec,
        Err(changed) => return Ok(Err(changed)),
    };
    let parent = rec.parent.as_ref().map(AgencyId::as_str);
    let updated = tx
        .execute(
            "UPDATE nodes SET state = $2, parent = $3, record = $4 \
             WHERE agency = $1 AND state = $5",
            &[
                &rec.agency.as_str(),
                &state_name(rec.state),
                &parent,
                &enc(&rec)?,
                &state_name(read.state),
            ],
        )
        .await
        .map_err(|e| store.sql_error(op, e))?;
    if updated != 1 {
        let stored = node_in(tx, store, op, rec.agency.as_str(), false).await?;
        return Ok(Err(NodeChanged {
            agency: rec.agency,
            stored: stored.map(Box::new),
        }));
    }
    Ok(Ok(rec))
}

/// A node record, locked for the rest of the transaction when `lock`.
pub(super) async fn node_in(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    agency: &str,
    lock: bool,
) -> Result<Option<NodeRecord>, StoreError> {
    let sql = if lock {
        "SELECT record FROM nodes WHERE agency = $1 FOR UPDATE"
    } else {
        "SELECT record FROM nodes WHERE agency = $1"
    };
    let row = tx
        .query_opt(sql, &[&agency])
        .await
        .map_err(|e| store.sql_error(op, e))?;
    row.map(|r| dec_node(r.get::<_, &[u8]>(0))).transpose()
}

/// Append an audit record (see the module docs for the lock).
async fn audit_in(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    a: &AuditRecord,
) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK_KEY])
        .await
        .map_err(|e| store.sql_error(op, e))?;
    let agency = a.agency.as_ref().map(AgencyId::as_str);
    tx.execute(
        "INSERT INTO audit (agency, time_ms, record) VALUES ($1, $2, $3)",
        &[&agency, &big(a.time_ms), &enc(a)?],
    )
    .await
    .map_err(|e| store.sql_error(op, e))?;
    Ok(())
}

/// Insert or replace a serial of `revoked_serials` or `superseded_serials`.
async fn put_serial_in(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    table: SerialTable,
    serial: &str,
    rec: &RevokedSerial,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO {} (serial, agency, record) VALUES ($1, $2, $3) \
         ON CONFLICT (serial) DO UPDATE SET agency = excluded.agency, record = excluded.record",
        table.name()
    );
    tx.execute(&sql, &[&serial, &rec.agency.as_str(), &enc(rec)?])
        .await
        .map_err(|e| store.sql_error(op, e))?;
    Ok(())
}

/// The two tables of serials.
#[derive(Clone, Copy)]
enum SerialTable {
    Revoked,
    Superseded,
}

impl SerialTable {
    fn name(self) -> &'static str {
        match self {
            SerialTable::Revoked => "revoked_serials",
            SerialTable::Superseded => "superseded_serials",
        }
    }
}

/// Whether `rec`'s parent is allowed, by [`check_parent`] over the nodes as this transaction
/// reads them. The rule asks for nodes one by one up the parent chain; each node it asks
/// for that was not read yet is read and the rule run again, so it sees exactly the records
/// it would see walking the table itself.
async fn parent_ok_in(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    rec: &NodeRecord,
) -> Result<Result<(), ParentError>, StoreError> {
    let Some(parent) = &rec.parent else {
        return Ok(Ok(()));
    };
    let registered: i64 = tx
        .query_one("SELECT count(*) FROM nodes", &[])
        .await
        .map_err(|e| store.sql_error(op, e))?
        .get(0);
    let registered = usize::try_from(registered).unwrap_or(0);
    // agency → its parent (`Some(None)`: registered without one; `None`: not registered).
    let mut known: HashMap<AgencyId, Option<Option<AgencyId>>> = HashMap::new();
    loop {
        let missing = RefCell::new(None);
        let verdict = check_parent(&rec.agency, parent, registered, |a| match known.get(a) {
            Some(p) => p.clone(),
            None => {
                missing.borrow_mut().get_or_insert_with(|| a.clone());
                None
            }
        });
        let Some(a) = missing.into_inner() else {
            return Ok(verdict);
        };
        let up = node_in(tx, store, op, a.as_str(), false).await?;
        known.insert(a, up.map(|n| n.parent));
    }
}

#[async_trait]
impl RegistryBackend for PgStore {
    async fn put_node_audited(
        &self,
        rec: NodeRecord,
        read: NodeRecord,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, NodeChanged>, StoreError> {
        const OP: &str = "put node audited";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, rec, read, audit) =
                (store.clone(), rec.clone(), read.clone(), audit.clone());
            Box::pin(async move {
                let rec = match replace_node_in(tx, &store, OP, rec, &read).await? {
                    Ok(rec) => rec,
                    Err(changed) => return Ok(Err(changed)),
                };
                audit_in(tx, &store, OP, &audit).await?;
                Ok(Ok(rec))
            })
        })
        .await
    }

    async fn audit(&self, audit: AuditRecord) -> Result<(), StoreError> {
        const OP: &str = "audit";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, audit) = (store.clone(), audit.clone());
            Box::pin(async move { audit_in(tx, &store, OP, &audit).await })
        })
        .await
    }

    async fn audit_log(&self, agency: Option<&AgencyId>) -> Result<Vec<AuditRecord>, StoreError> {
        const OP: &str = "audit log";
        let store = self.clone();
        let agency = agency.map(|a| a.as_str().to_string());
        self.read(OP, move |tx| {
            Box::pin(async move {
                let rows = match &agency {
                    Some(a) => {
                        tx.query(
                            "SELECT record FROM audit WHERE agency = $1 ORDER BY seq",
                            &[a],
                        )
                        .await
                    }
                    None => tx.query("SELECT record FROM audit ORDER BY seq", &[]).await,
                }
                .map_err(|e| store.sql_error(OP, e))?;
                rows.iter().map(|r| dec(r.get::<_, &[u8]>(0))).collect()
            })
        })
        .await
    }

    async fn audit_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError> {
        const OP: &str = "audit page";
        let store = self.clone();
        self.read(OP, move |tx| {
            Box::pin(async move {
                // One more than asked for says whether there are more.
                let rows = tx
                    .query(
                        "SELECT seq, record FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                        &[&big(after), &big((limit as u64).saturating_add(1))],
                    )
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                let more = rows.len() > limit;
                let mut out = Vec::with_capacity(rows.len().min(limit));
                let mut last = after;
                for r in rows.iter().take(limit) {
                    out.push(dec(r.get::<_, &[u8]>(1))?);
                    last = u64::try_from(r.get::<_, i64>(0)).unwrap_or(0);
                }
                Ok((out, more.then_some(last)))
            })
        })
        .await
    }

    async fn add_node(
        &self,
        rec: NodeRecord,
        token: Option<poros_protocol::EnrollToken>,
        audit: AuditRecord,
    ) -> Result<Result<(), RegistryRefusal>, StoreError> {
        const OP: &str = "add node";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, rec, token, audit) =
                (store.clone(), rec.clone(), token.clone(), audit.clone());
            Box::pin(async move {
                if let Err(e) = parent_ok_in(tx, &store, OP, &rec).await? {
                    return Ok(Err(e.into()));
                }
                put_node_in(tx, &store, OP, &rec).await?;
                if let Some(token) = token {
                    let key = poros_protocol::sha256(token.secret.as_bytes());
                    let agency = token.agency.as_str().to_string();
                    let tr = TokenRecord {
                        token,
                        used_ms: None,
                    };
                    tx.execute(
                        "INSERT INTO enrolment_tokens (secret_sha256, agency, used_ms, record) \
                         VALUES ($1, $2, NULL, $3) \
                         ON CONFLICT (secret_sha256) DO UPDATE SET agency = excluded.agency, \
                         used_ms = excluded.used_ms, record = excluded.record",
                        &[&key.as_slice(), &agency, &enc(&tr)?],
                    )
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                }
                audit_in(tx, &store, OP, &audit).await?;
                Ok(Ok(()))
            })
        })
        .await
    }

    async fn edit_node(
        &self,
        agency: AgencyId,
        edit: NodeEdit,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, RegistryRefusal>, StoreError> {
        const OP: &str = "edit node";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, agency, edit, mut audit) =
                (store.clone(), agency.clone(), edit.clone(), audit.clone());
            Box::pin(async move {
                let Some(mut rec) = node_in(tx, &store, OP, agency.as_str(), true).await? else {
                    return Ok(Err(RegistryRefusal::UnknownAgency(agency)));
                };
                let changes = edit.apply(&mut rec);
                if let Err(e) = parent_ok_in(tx, &store, OP, &rec).await? {
                    return Ok(Err(e.into()));
                }
                put_node_in(tx, &store, OP, &rec).await?;
                audit.detail = if changes.is_empty() {
                    "no change".into()
                } else {
                    changes.join("; ")
                };
                audit_in(tx, &store, OP, &audit).await?;
                Ok(Ok(rec))
            })
        })
        .await
    }

    async fn token(&self, secret: &str) -> Result<Option<TokenRecord>, StoreError> {
        const OP: &str = "token";
        let store = self.clone();
        let key = poros_protocol::sha256(secret.as_bytes());
        self.read(OP, move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_opt(
                        "SELECT record FROM enrolment_tokens WHERE secret_sha256 = $1",
                        &[&key.as_slice()],
                    )
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                row.map(|r| dec(r.get::<_, &[u8]>(0))).transpose()
            })
        })
        .await
    }

    async fn redeem_token(
        &self,
        secret: String,
        rec: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<bool, StoreError> {
        const OP: &str = "redeem token";
        let store = self.clone();
        let key = poros_protocol::sha256(secret.as_bytes());
        self.write(OP, move |tx| {
            let (store, rec, audit) = (store.clone(), rec.clone(), audit.clone());
            Box::pin(async move {
                let row = tx
                    .query_opt(
                        "SELECT record FROM enrolment_tokens WHERE secret_sha256 = $1 FOR UPDATE",
                        &[&key.as_slice()],
                    )
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                let Some(row) = row else { return Ok(false) };
                let mut tr: TokenRecord = dec(row.get::<_, &[u8]>(0))?;
                if tr.used_ms.is_some() {
                    return Ok(false);
                }
                tr.used_ms = Some(now_ms);
                tx.execute(
                    "UPDATE enrolment_tokens SET used_ms = $2, record = $3 \
                     WHERE secret_sha256 = $1",
                    &[&key.as_slice(), &big(now_ms), &enc(&tr)?],
                )
                .await
                .map_err(|e| store.sql_error(OP, e))?;
                put_node_in(tx, &store, OP, &rec).await?;
                audit_in(tx, &store, OP, &audit).await?;
                Ok(true)
            })
        })
        .await
    }

    async fn revoke(
        &self,
        rec: NodeRecord,
        read: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, NodeChanged>, StoreError> {
        const OP: &str = "revoke";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, rec, read, audit) =
                (store.clone(), rec.clone(), read.clone(), audit.clone());
            Box::pin(async move {
                let rec = match replace_node_in(tx, &store, OP, rec, &read).await? {
                    Ok(rec) => rec,
                    Err(changed) => return Ok(Err(changed)),
                };
                // Certificates superseded by a renewal and not yet retired are revoked too.
                for (serial, r) in rec.serials_to_revoke(now_ms) {
                    put_serial_in(tx, &store, OP, SerialTable::Revoked, &serial, &r).await?;
                }
                audit_in(tx, &store, OP, &audit).await?;
                Ok(Ok(rec))
            })
        })
        .await
    }

    async fn revoked(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        self.serials("revoked serials", SerialTable::Revoked).await
    }

    async fn put_node(&self, rec: NodeRecord) -> Result<(), StoreError> {
        const OP: &str = "put node";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, rec) = (store.clone(), rec.clone());
            Box::pin(async move { put_node_in(tx, &store, OP, &rec).await })
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        const OP: &str = "nodes";
        let store = self.clone();
        self.read(OP, move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT record FROM nodes ORDER BY agency", &[])
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                rows.iter()
                    .map(|r| dec_node(r.get::<_, &[u8]>(0)))
                    .collect()
            })
        })
        .await
    }

    async fn retire_superseded(
        &self,
        agency: AgencyId,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Option<NodeRecord>, StoreError> {
        const OP: &str = "retire superseded";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, agency, audit) = (store.clone(), agency.clone(), audit.clone());
            Box::pin(async move {
                let Some(mut rec) = node_in(tx, &store, OP, agency.as_str(), true).await? else {
                    return Ok(None);
                };
                let Some(old) = rec.superseded.take() else {
                    return Ok(None);
                };
                put_node_in(tx, &store, OP, &rec).await?;
                for (serial, kind) in [(&old.tls_serial, "tls"), (&old.sign_serial, "sign")] {
                    if serial.is_empty() {
                        continue;
                    }
                    let r = RevokedSerial {
                        agency: agency.clone(),
                        kind: kind.into(),
                        revoked_ms: now_ms,
                    };
                    put_serial_in(tx, &store, OP, SerialTable::Superseded, serial, &r).await?;
                }
                audit_in(tx, &store, OP, &audit).await?;
                Ok(Some(rec))
            })
        })
        .await
    }

    async fn superseded(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        self.serials("superseded serials", SerialTable::Superseded)
            .await
    }

    async fn put_monitor(&self, rec: MonitorRecord, audit: AuditRecord) -> Result<(), StoreError> {
        const OP: &str = "put monitor";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, rec, audit) = (store.clone(), rec.clone(), audit.clone());
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO monitor_credentials (name, record) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET record = excluded.record",
                    &[&rec.name, &enc(&rec)?],
                )
                .await
                .map_err(|e| store.sql_error(OP, e))?;
                audit_in(tx, &store, OP, &audit).await
            })
        })
        .await
    }

    async fn monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        const OP: &str = "monitors";
        let store = self.clone();
        self.read(OP, move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT record FROM monitor_credentials ORDER BY name", &[])
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                rows.iter().map(|r| dec(r.get::<_, &[u8]>(0))).collect()
            })
        })
        .await
    }
}

impl PgStore {
    /// Every serial of a serial table with its record, in serial (byte) order.
    async fn serials(
        &self,
        op: &'static str,
        table: SerialTable,
    ) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        let store = self.clone();
        self.read(op, move |tx| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT serial, record FROM {} ORDER BY serial",
                    table.name()
                );
                let rows = tx
                    .query(&sql, &[])
                    .await
                    .map_err(|e| store.sql_error(op, e))?;
                rows.iter()
                    .map(|r| Ok((r.get::<_, String>(0), dec(r.get::<_, &[u8]>(1))?)))
                    .collect()
            })
        })
        .await
    }
}
