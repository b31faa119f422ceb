//! The registry: nodes, enrolment tokens, revoked and superseded serials, monitor credentials
//! and the audit log; each change and its audit record go in one commit.

use super::*;
use poros_protocol::directory::{check_parent, ParentError};

impl HubStore {
    /// Replace a node record and record the action, in one commit, if the stored record is
    /// still the one `rec` was derived from (`read`; see [`NodeChanged`]). The record written
    /// keeps the stored connection bookkeeping (last seen, identity conflicts) and is returned.
    pub async fn put_node_audited(
        &self,
        rec: NodeRecord,
        read: NodeRecord,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, NodeChanged>, StoreError> {
        self.db
            .write(move |txn| {
                let rec = match put_if_unchanged(txn, rec.clone(), &read)? {
                    Ok(rec) => rec,
                    Err(changed) => return Ok(Err(changed)),
                };
                audit_in(txn, &audit)?;
                Ok(Ok(rec))
            })
            .await
    }

    /// Insert or replace the record under `key` and record the action, in one commit.
    async fn put_audited<T: serde::Serialize + Send + 'static>(
        &self,
        def: TableDefinition<'static, &'static str, &'static [u8]>,
        key: String,
        rec: T,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                txn.open_table(def)?
                    .insert(key.as_str(), enc(&rec)?.as_slice())?;
                audit_in(txn, &audit)
            })
            .await
    }

    /// Record an action on its own.
    pub async fn audit(&self, audit: AuditRecord) -> Result<(), StoreError> {
        self.db.write(move |txn| audit_in(txn, &audit)).await
    }

    /// Audit records, oldest first, optionally only those about `agency`.
    pub fn audit_log(&self, agency: Option<&AgencyId>) -> Result<Vec<AuditRecord>, StoreError> {
        // Only the matching records are kept: the whole log can be far larger.
        let r = self.db.read()?;
        let t = r.open_table(AUDIT)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, v) = e?;
            let a: AuditRecord = dec(v.value())?;
            if agency.is_none() || a.agency.as_ref() == agency {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// Audit records after sequence number `after`, oldest first, at most `limit`; with the
    /// sequence number to continue after when there are more.
    pub fn audit_page(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<AuditRecord>, Option<u64>), StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(AUDIT)?;
        let mut out = Vec::new();
        let mut last = after;
        for e in t.range(after.saturating_add(1)..)? {
            let (k, v) = e?;
            if out.len() == limit {
                return Ok((out, Some(last)));
            }
            out.push(dec(v.value())?);
            last = k.value();
        }
        Ok((out, None))
    }

    /// Register a node, with its enrolment token when it enrols by token (stored under the
    /// SHA-256 of its secret), and record the action, in one commit; nothing is stored when
    /// its parent is not registered or would make a cycle (checked in the same commit, so
    /// two changes at once cannot make one either).
    pub async fn add_node(
        &self,
        rec: NodeRecord,
        token: Option<poros_protocol::EnrollToken>,
        audit: AuditRecord,
    ) -> Result<Result<(), RegistryRefusal>, StoreError> {
        self.db
            .write(move |txn| {
                let mut nodes = txn.open_table(NODES)?;
                if let Err(e) = parent_ok(&nodes, &rec)? {
                    return Ok(Err(e.into()));
                }
                nodes.insert(rec.agency.as_str(), enc(&rec)?.as_slice())?;
                drop(nodes);
                if let Some(token) = &token {
                    let key = poros_protocol::sha256(token.secret.as_bytes());
                    let tr = TokenRecord {
                        token: token.clone(),
                        used_ms: None,
                    };
                    txn.open_table(TOKENS)?
                        .insert(key.as_slice(), enc(&tr)?.as_slice())?;
                }
                audit_in(txn, &audit)?;
                Ok(Ok(()))
            })
            .await
    }

    /// Change a node's name and directory fields and record what changed, in one commit,
    /// from the stored record; refused (nothing stored) for an unknown agency or a parent
    /// that is not registered, is the agency itself or is below it. `audit` gets the list of
    /// changes as its detail. Returns the updated record.
    pub async fn edit_node(
        &self,
        agency: AgencyId,
        edit: NodeEdit,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, RegistryRefusal>, StoreError> {
        self.db
            .write(move |txn| {
                let mut nodes = txn.open_table(NODES)?;
                let Some(mut rec) = nodes
                    .get(agency.as_str())?
                    .map(|g| dec_node(g.value()))
                    .transpose()?
                else {
                    return Ok(Err(RegistryRefusal::UnknownAgency(agency.clone())));
                };
                let changes = edit.apply(&mut rec);
                if let Err(e) = parent_ok(&nodes, &rec)? {
                    return Ok(Err(e.into()));
                }
                nodes.insert(agency.as_str(), enc(&rec)?.as_slice())?;
                drop(nodes);
                let mut audit = audit.clone();
                audit.detail = if changes.is_empty() {
                    "no change".into()
                } else {
                    changes.join("; ")
                };
                audit_in(txn, &audit)?;
                Ok(Ok(rec))
            })
            .await
    }

    /// Look up a token by its secret.
    pub fn token(&self, secret: &str) -> Result<Option<TokenRecord>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(TOKENS)?;
        let key = poros_protocol::sha256(secret.as_bytes());
        let v = t.get(key.as_slice())?;
        v.map(|g| dec(g.value())).transpose()
    }

    /// Mark a token used and activate the node, atomically; fails (returns false) if the
    /// token was used meanwhile.
    pub async fn redeem_token(
        &self,
        secret: String,
        rec: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<bool, StoreError> {
        self.db
            .write(move |txn| {
                let key = poros_protocol::sha256(secret.as_bytes());
                let mut t = txn.open_table(TOKENS)?;
                let cur = t.get(key.as_slice())?.map(|g| g.value().to_vec());
                let Some(cur) = cur else { return Ok(false) };
                let mut tr: TokenRecord = dec(&cur)?;
                if tr.used_ms.is_some() {
                    return Ok(false);
                }
                tr.used_ms = Some(now_ms);
                t.insert(key.as_slice(), enc(&tr)?.as_slice())?;
                txn.open_table(NODES)?
                    .insert(rec.agency.as_str(), enc(&rec)?.as_slice())?;
                audit_in(txn, &audit)?;
                Ok(true)
            })
            .await
    }

    /// Revoke a node: state, its certificate serials, and the action, in one commit, if the
    /// stored record is still the one `rec` was derived from (`read`; see [`NodeChanged`]).
    pub async fn revoke(
        &self,
        rec: NodeRecord,
        read: NodeRecord,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Result<NodeRecord, NodeChanged>, StoreError> {
        self.db
            .write(move |txn| {
                let rec = match put_if_unchanged(txn, rec.clone(), &read)? {
                    Ok(rec) => rec,
                    Err(changed) => return Ok(Err(changed)),
                };
                let mut rv = txn.open_table(REVOKED)?;
                // Certificates superseded by a renewal and not yet retired are revoked too.
                for (serial, r) in rec.serials_to_revoke(now_ms) {
                    rv.insert(serial.as_str(), enc(&r)?.as_slice())?;
                }
                drop(rv);
                audit_in(txn, &audit)?;
                Ok(Ok(rec))
            })
            .await
    }

    /// Every revoked serial (hex) with its record.
    pub fn revoked(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        self.serials(REVOKED)
    }

    /// Insert or replace a node record.
    pub async fn put_node(&self, rec: NodeRecord) -> Result<(), StoreError> {
        self.db
            .write(move |txn| {
                let mut t = txn.open_table(NODES)?;
                t.insert(rec.agency.as_str(), enc(&rec)?.as_slice())?;
                Ok(())
            })
            .await
    }

    /// All nodes.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(NODES)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (_, v) = e?;
            out.push(dec_node(v.value())?);
        }
        Ok(out)
    }

    /// Retire a node's superseded certificates: clear them from its record and list their
    /// serials as superseded (CRL reason `superseded`, dated `now_ms`), with an audit record,
    /// in one commit. Returns the updated record, or `None` if there was nothing to retire.
    pub async fn retire_superseded(
        &self,
        agency: AgencyId,
        now_ms: u64,
        audit: AuditRecord,
    ) -> Result<Option<NodeRecord>, StoreError> {
        self.db
            .write(move |txn| {
                let mut nodes = txn.open_table(NODES)?;
                let Some(mut rec) = nodes
                    .get(agency.as_str())?
                    .map(|g| dec_node(g.value()))
                    .transpose()?
                else {
                    return Ok(None);
                };
                let Some(old) = rec.superseded.take() else {
                    return Ok(None);
                };
                nodes.insert(agency.as_str(), enc(&rec)?.as_slice())?;
                drop(nodes);
                let mut t = txn.open_table(SUPERSEDED)?;
                for (serial, kind) in [(&old.tls_serial, "tls"), (&old.sign_serial, "sign")] {
                    if serial.is_empty() {
                        continue;
                    }
                    let r = RevokedSerial {
                        agency: agency.clone(),
                        kind: kind.into(),
                        revoked_ms: now_ms,
                    };
                    t.insert(serial.as_str(), enc(&r)?.as_slice())?;
                }
                drop(t);
                audit_in(txn, &audit)?;
                Ok(Some(rec))
            })
            .await
    }

    /// Every serial retired by renewal (hex) with its record.
    pub fn superseded(&self) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        self.serials(SUPERSEDED)
    }

    /// Every serial (hex) of a serial table with its record.
    fn serials(
        &self,
        def: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, RevokedSerial)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(def)?;
        let mut out = Vec::new();
        for e in t.iter()? {
            let (k, v) = e?;
            out.push((k.value().to_string(), dec(v.value())?));
        }
        Ok(out)
    }

    /// Store a monitor credential (replacing one of the same name) and record the action.
    pub async fn put_monitor(
        &self,
        rec: MonitorRecord,
        audit: AuditRecord,
    ) -> Result<(), StoreError> {
        let key = rec.name.clone();
        self.put_audited(MONITORS, key, rec, audit).await
    }

    /// All monitor credentials.
    pub fn monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        self.all(MONITORS)
    }
}

/// Why a registry change was refused (nothing was stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryRefusal {
    /// The agency to change is not registered.
    #[error("agency {0} is not registered")]
    UnknownAgency(AgencyId),
    /// The parent asked for is not allowed.
    #[error(transparent)]
    Parent(#[from] ParentError),
}

/// A conditional registry write found the node's stored record changed since it was read
/// (another admin acted on it meanwhile, possibly through another hub instance): nothing was
/// stored. The caller reads the record again and decides again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the registry record of {agency} changed since it was read (it is now {})", now(.stored))]
pub struct NodeChanged {
    /// The agency written.
    pub agency: AgencyId,
    /// Its record as stored now (`None`: not registered).
    pub stored: Option<Box<NodeRecord>>,
}

fn now(stored: &Option<Box<NodeRecord>>) -> String {
    match stored {
        Some(rec) => format!("{:?}", rec.state).to_lowercase(),
        None => "not registered".into(),
    }
}

/// `rec` with `from`'s connection bookkeeping: when the node was last seen and its identity
/// conflicts, which connections update in the stored record on their own.
fn with_bookkeeping_of(mut rec: NodeRecord, from: &NodeRecord) -> NodeRecord {
    rec.last_seen_ms = from.last_seen_ms;
    rec.conflicts = from.conflicts;
    rec.last_conflict = from.last_conflict.clone();
    rec
}

/// The check of every conditional node write, on both backends: `rec` (derived from `read`)
/// may replace `stored` only if `stored` is still `read` apart from connection bookkeeping;
/// the record to write then keeps `stored`'s bookkeeping.
pub(crate) fn unchanged_since_read(
    stored: Option<NodeRecord>,
    read: &NodeRecord,
    rec: NodeRecord,
) -> Result<NodeRecord, NodeChanged> {
    match stored {
        Some(stored)
            if rec.agency == read.agency
                && with_bookkeeping_of(read.clone(), &stored) == stored =>
        {
            Ok(with_bookkeeping_of(rec, &stored))
        }
        stored => Err(NodeChanged {
            agency: rec.agency,
            stored: stored.map(Box::new),
        }),
    }
}

/// Whether `rec`'s parent is allowed, read from the `nodes` table being written.
fn parent_ok(
    nodes: &redb::Table<&str, &[u8]>,
    rec: &NodeRecord,
) -> Result<Result<(), ParentError>, StoreError> {
    let Some(parent) = &rec.parent else {
        return Ok(Ok(()));
    };
    // Read errors inside the walk are kept and returned as such, not taken for "unknown".
    let failed = std::cell::RefCell::new(None);
    let parent_of = |a: &AgencyId| -> Option<Option<AgencyId>> {
        let got = nodes
            .get(a.as_str())
            .map_err(StoreError::from)
            .and_then(|g| g.map(|g| dec_node(g.value())).transpose());
        match got {
            Ok(r) => r.map(|n| n.parent),
            Err(e) => {
                failed.borrow_mut().get_or_insert(e);
                None
            }
        }
    };
    let registered = nodes.len()? as usize;
    let verdict = check_parent(&rec.agency, parent, registered, parent_of);
    match failed.into_inner() {
        Some(e) => Err(e),
        None => Ok(verdict),
    }
}

pub(super) fn audit_in(txn: &redb::WriteTransaction, a: &AuditRecord) -> Result<(), StoreError> {
    let mut t = txn.open_table(AUDIT)?;
    let seq = t.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    t.insert(seq, enc(a)?.as_slice())?;
    Ok(())
}

/// The registry's tables as neutral rows (see [`super::transfer`]), in key order.
pub(super) fn export(
    r: &redb::ReadTransaction,
    out: &mut super::transfer::RowSink<'_>,
) -> Result<(), StoreError> {
    use super::transfer::{Row, Table};
    for e in r.open_table(NODES)?.iter()? {
        let (k, v) = e?;
        let rec = dec_node(v.value())?;
        out.row(
            Table::Nodes,
            Row::Node {
                agency: k.value().to_string(),
                state: super::pg::state_name(rec.state).to_string(),
                parent: rec.parent.map(|p| p.to_string()),
                record: v.value().to_vec(),
            },
        )?;
    }
    for e in r.open_table(TOKENS)?.iter()? {
        let (k, v) = e?;
        let rec: TokenRecord = dec(v.value())?;
        out.row(
            Table::Tokens,
            Row::Token {
                secret_sha256: k.value().to_vec(),
                agency: rec.token.agency.to_string(),
                used_ms: rec.used_ms,
                record: v.value().to_vec(),
            },
        )?;
    }
    for e in r.open_table(AUDIT)?.iter()? {
        let (k, v) = e?;
        let rec: AuditRecord = dec(v.value())?;
        out.row(
            Table::Audit,
            Row::Audit {
                seq: k.value(),
                agency: rec.agency.map(|a| a.to_string()),
                time_ms: rec.time_ms,
                record: v.value().to_vec(),
            },
        )?;
    }
    for (def, table) in [(REVOKED, Table::Revoked), (SUPERSEDED, Table::Superseded)] {
        for e in r.open_table(def)?.iter()? {
            let (k, v) = e?;
            let rec: RevokedSerial = dec(v.value())?;
            out.row(
                table,
                Row::Serial {
                    serial: k.value().to_string(),
                    agency: rec.agency.to_string(),
                    record: v.value().to_vec(),
                },
            )?;
        }
    }
    for e in r.open_table(MONITORS)?.iter()? {
        let (k, v) = e?;
        out.row(
            Table::Monitors,
            Row::Monitor {
                name: k.value().to_string(),
                record: v.value().to_vec(),
            },
        )?;
    }
    Ok(())
}

/// Write `rec` over the stored node if the stored record is still the one `rec` was derived
/// from (`read`; see [`NodeChanged`]), keeping its connection bookkeeping; returns what was
/// written.
fn put_if_unchanged(
    txn: &redb::WriteTransaction,
    rec: NodeRecord,
    read: &NodeRecord,
) -> Result<Result<NodeRecord, NodeChanged>, StoreError> {
    let mut nodes = txn.open_table(NODES)?;
    let stored = nodes
        .get(rec.agency.as_str())?
        .map(|g| dec_node(g.value()))
        .transpose()?;
    let rec = match unchanged_since_read(stored, read, rec) {
        Ok(rec) => rec,
        Err(changed) => return Ok(Err(changed)),
    };
    nodes.insert(rec.agency.as_str(), enc(&rec)?.as_slice())?;
    Ok(Ok(rec))
}
