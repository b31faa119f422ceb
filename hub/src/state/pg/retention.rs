//! Expiry and body retention in PostgreSQL (the redb store's `state/retention.rs`): pending
//! deliveries in age order, and bodies released once every delivery of their documents ended
//! before the retention cutoff.

use super::exchange::{agency, big, lim, unbig};
use super::PgStore;
use crate::state::retention::Release;
use crate::state::{dec, enc, DocRecord};
use poros_protocol::{AgencyId, Digest, DocumentId};
use poros_store::StoreError;
use std::collections::HashMap;
use tokio_postgres::types::Type;

/// Pending deliveries that fell due before `cutoff_ms`, oldest first (then by document and
/// recipient, the redb key order), at most `limit` (at least one, as redb's scan).
pub(super) async fn expired_before(
    store: &PgStore,
    cutoff_ms: u64,
    limit: usize,
) -> Result<Vec<(DocumentId, AgencyId)>, StoreError> {
    let s = store.clone();
    store
        .read("expired deliveries", move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query_typed(
                        "SELECT doc, recipient FROM deliveries \
                         WHERE pending AND accepted_ms < $1 \
                         ORDER BY accepted_ms, doc, recipient LIMIT $2",
                        &[
                            (&big(cutoff_ms), Type::INT8),
                            (&lim(limit.max(1)), Type::INT8),
                        ],
                    )
                    .await
                    .map_err(|e| s.sql_error("expired deliveries", e))?;
                rows.iter()
                    .map(|r| Ok((DocumentId(r.get(0)), agency(r.get(1))?)))
                    .collect()
            })
        })
        .await
}

/// Documents all answered before `cutoff_ms` (at most `limit`, at least one): out of the
/// retention index, their bodies marked gone, the body references counted down; returns the
/// digests of file bodies whose last reference went (deleted by the caller after the commit).
/// Two statements: the batch taken with its records, then every change at once.
pub(super) async fn release_bodies(
    store: &PgStore,
    cutoff_ms: u64,
    limit: usize,
) -> Result<Vec<Digest>, StoreError> {
    let s = store.clone();
    store
        .write("release bodies", move |tx| {
            let store = s.clone();
            Box::pin(async move {
                let op = "release bodies";
                let rows = tx
                    .query_typed(
                        "WITH due AS ( \
                             SELECT answered_ms, doc FROM retention WHERE answered_ms < $1 \
                             ORDER BY answered_ms, doc LIMIT $2 \
                         ), gone AS ( \
                             DELETE FROM retention r USING due \
                             WHERE r.answered_ms = due.answered_ms AND r.doc = due.doc \
                             RETURNING r.answered_ms, r.doc \
                         ) SELECT g.doc, d.record, b.refs FROM gone g \
                           LEFT JOIN docs d ON d.id = g.doc \
                           LEFT JOIN body_refs b ON b.digest = d.body_sha256 \
                           ORDER BY g.answered_ms, g.doc",
                        &[
                            (&big(cutoff_ms), Type::INT8),
                            (&lim(limit.max(1)), Type::INT8),
                        ],
                    )
                    .await
                    .map_err(|e| store.sql_error(op, e))?;
                // In retention order, as redb: a document or body met twice sees its earlier
                // release.
                let mut docs: HashMap<uuid::Uuid, DocRecord> = HashMap::new();
                let mut refs: HashMap<Digest, Option<u64>> = HashMap::new();
                let mut inline_gone = Vec::new();
                let mut files = Vec::new();
                for r in &rows {
                    let id: uuid::Uuid = r.get(0);
                    let mut rec = match docs.remove(&id) {
                        Some(rec) => rec,
                        None => match r.get::<_, Option<&[u8]>>(1) {
                            Some(b) => dec::<DocRecord>(b)?,
                            None => continue,
                        },
                    };
                    let digest = rec.body_sha256;
                    let n = *refs
                        .entry(digest)
                        .or_insert_with(|| r.get::<_, Option<i64>>(2).map(unbig));
                    let rel = Release::of(&mut rec, n);
                    refs.insert(digest, rel.refs);
                    if rel.inline_gone {
                        inline_gone.push(digest.to_vec());
                    }
                    if rel.file_gone {
                        files.push(digest);
                    }
                    docs.insert(id, rec);
                }
                if docs.is_empty() {
                    return Ok(files);
                }
                let mut ids = Vec::new();
                let mut records = Vec::new();
                for (id, rec) in &docs {
                    ids.push(*id);
                    records.push(enc(rec)?);
                }
                let (mut keep, mut counts, mut last) = (Vec::new(), Vec::new(), Vec::new());
                for (digest, n) in &refs {
                    match n {
                        Some(n) => {
                            keep.push(digest.to_vec());
                            counts.push(big(*n));
                        }
                        None => last.push(digest.to_vec()),
                    }
                }
                tx.query_typed(
                    "WITH d AS ( \
                         UPDATE docs SET record = u.record \
                         FROM unnest($1::uuid[], $2::bytea[]) AS u (id, record) WHERE docs.id = u.id \
                     ), k AS ( \
                         UPDATE body_refs SET refs = u.refs \
                         FROM unnest($3::bytea[], $4::bigint[]) AS u (digest, refs) \
                         WHERE body_refs.digest = u.digest \
                     ), x AS ( \
                         DELETE FROM body_refs WHERE digest = ANY($5) \
                     ), i AS ( \
                         DELETE FROM inline_bodies WHERE digest = ANY($6) \
                     ) SELECT 1",
                    &[
                        (&ids, Type::UUID_ARRAY),
                        (&records, Type::BYTEA_ARRAY),
                        (&keep, Type::BYTEA_ARRAY),
                        (&counts, Type::INT8_ARRAY),
                        (&last, Type::BYTEA_ARRAY),
                        (&inline_gone, Type::BYTEA_ARRAY),
                    ],
                )
                .await
                .map_err(|e| store.sql_error(op, e))?;
                Ok(files)
            })
        })
        .await
}
