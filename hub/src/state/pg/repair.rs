//! Bodies found damaged or missing in PostgreSQL: the deliveries they hold, the damage
//! records and the re-upload requests waiting for each sender ([`RepairBackend`]; the redb
//! original is `state/bodies.rs`, whose behaviour this follows call for call).
//!
//! Tables (migration 5): `held` (recipient, doc) — pending deliveries taken out of their
//! recipient's queue while the body is repaired (they stay pending in `deliveries`, and still
//! expire; the queue reads skip them, and an answer that expires or loses one removes it);
//! `damaged_bodies` (digest → found, what, documents, attempts); `repairs` (sender, doc →
//! digest). The exchange tables (`docs`, `deliveries`, `inline_bodies`, `body_refs`)
//! are read as migration 3 made them.
//!
//! Counters, as in redb: `bodies_checked`, `bodies_damaged`, `body_repairs_requested`,
//! `bodies_repaired`, `bodies_lost` (and, per delivery, `deliveries_lost` by the answer).

use super::{counters, PgStore, Tx};
use crate::state::backend::RepairBackend;
use crate::state::{dec, Answer, AnswerOutcome, BodyAt, DamageRecord, DocRecord, HeldDelivery};
use async_trait::async_trait;
use poros_protocol::{AgencyId, Digest, DocumentId};
use poros_store::StoreError;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// How many rows a scan of `limit` returns at most. The redb scans add a row before they
/// compare with the limit, so a limit of 0 still returns one; the same here.
pub(super) fn scan_limit(limit: usize) -> i64 {
    i64::try_from(limit.max(1)).unwrap_or(i64::MAX)
}

pub(super) fn agency(s: &str) -> Result<AgencyId, StoreError> {
    AgencyId::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn digest(b: &[u8]) -> Result<Digest, StoreError> {
    b.try_into()
        .map_err(|_| StoreError::Corrupt("body digest".into()))
}

/// A stored document, in the caller's transaction.
async fn doc_in(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    doc: &DocumentId,
) -> Result<Option<DocRecord>, StoreError> {
    let row = tx
        .query_opt("SELECT record FROM docs WHERE id = $1", &[&doc.0])
        .await
        .map_err(|e| store.sql_error(op, e))?;
    row.map(|r| dec(r.get::<_, &[u8]>(0))).transpose()
}

/// Every recipient a document has: the envelope's, then those updates added (the document's
/// other deliveries, in agency order) — the order of redb's `recipients_of`.
async fn recipients_of(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    doc: &DocumentId,
    rec: &DocRecord,
) -> Result<Vec<AgencyId>, StoreError> {
    let rows = tx
        .query(
            "SELECT recipient FROM deliveries WHERE doc = $1 ORDER BY recipient COLLATE \"C\"",
            &[&doc.0],
        )
        .await
        .map_err(|e| store.sql_error(op, e))?;
    let mut all = rec.recipients.clone();
    for r in &rows {
        let a = agency(r.get(0))?;
        if !all.contains(&a) {
            all.push(a);
        }
    }
    Ok(all)
}

/// The recipients of `doc` whose deliveries are held.
async fn held_of(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    doc: &DocumentId,
) -> Result<HashSet<String>, StoreError> {
    let rows = tx
        .query("SELECT recipient FROM held WHERE doc = $1", &[&doc.0])
        .await
        .map_err(|e| store.sql_error(op, e))?;
    Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
}

/// The damage record of a body, in the caller's transaction.
async fn damage_in(
    tx: &Tx<'_>,
    store: &PgStore,
    op: &'static str,
    digest: &Digest,
) -> Result<Option<DamageRecord>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT found_ms, what, docs, attempts FROM damaged_bodies WHERE digest = $1",
            &[&digest.as_slice()],
        )
        .await
        .map_err(|e| store.sql_error(op, e))?;
    Ok(row.map(|r| DamageRecord {
        found_ms: r.get::<_, i64>(0) as u64,
        what: r.get(1),
        docs: r
            .get::<_, Vec<Uuid>>(2)
            .into_iter()
            .map(DocumentId)
            .collect(),
        attempts: r.get::<_, i32>(3) as u32,
    }))
}

#[async_trait]
impl RepairBackend for PgStore {
    async fn hold_damaged(
        &self,
        doc: DocumentId,
        what: String,
        now_ms: u64,
    ) -> Result<Option<AgencyId>, StoreError> {
        const OP: &str = "hold damaged body";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, what) = (store.clone(), what.clone());
            Box::pin(async move {
                let sql = |e| store.sql_error(OP, e);
                let Some(rec) = doc_in(tx, &store, OP, &doc).await? else {
                    return Ok(None);
                };
                // Its pending deliveries leave the queue (those an update added too).
                tx.execute(
                    "INSERT INTO held (recipient, doc) \
                     SELECT recipient, doc FROM deliveries WHERE doc = $1 AND pending \
                     ON CONFLICT DO NOTHING",
                    &[&doc.0],
                )
                .await
                .map_err(sql)?;
                let digest = rec.body_sha256.as_slice();
                if let Some(d) = damage_in(tx, &store, OP, &rec.body_sha256).await? {
                    if !d.docs.contains(&doc) {
                        tx.execute(
                            "UPDATE damaged_bodies SET docs = array_append(docs, $2) \
                             WHERE digest = $1",
                            &[&digest, &doc.0],
                        )
                        .await
                        .map_err(sql)?;
                    }
                    return Ok(None);
                }
                tx.execute(
                    "INSERT INTO damaged_bodies (digest, found_ms, what, docs, attempts) \
                     VALUES ($1, $2, $3, ARRAY[$4::uuid], 0)",
                    &[&digest, &(now_ms as i64), &what, &doc.0],
                )
                .await
                .map_err(sql)?;
                tx.execute(
                    "INSERT INTO repairs (sender, doc, digest) VALUES ($1, $2, $3) \
                     ON CONFLICT (sender, doc) DO UPDATE SET digest = excluded.digest",
                    &[&rec.sender.as_str(), &doc.0, &digest],
                )
                .await
                .map_err(sql)?;
                counters::add(
                    tx,
                    &store,
                    &[("bodies_damaged", 1), ("body_repairs_requested", 1)],
                )
                .await?;
                Ok(Some(rec.sender.clone()))
            })
        })
        .await
    }

    async fn repairs_for(
        &self,
        sender: &AgencyId,
        limit: usize,
        skip: &HashSet<DocumentId>,
    ) -> Result<Vec<(DocumentId, Digest)>, StoreError> {
        const OP: &str = "repairs for";
        let store = self.clone();
        let sender = sender.to_string();
        let skip: Vec<Uuid> = skip.iter().map(|d| d.0).collect();
        self.read(OP, move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT doc, digest FROM repairs \
                         WHERE sender = $1 AND NOT (doc = ANY($2)) ORDER BY doc LIMIT $3",
                        &[&sender, &skip, &scan_limit(limit)],
                    )
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                rows.iter()
                    .map(|r| Ok((DocumentId(r.get(0)), digest(r.get(1))?)))
                    .collect()
            })
        })
        .await
    }

    async fn damage(&self, digest: &Digest) -> Result<Option<DamageRecord>, StoreError> {
        const OP: &str = "damage record";
        let store = self.clone();
        let digest = *digest;
        self.read(OP, move |tx| {
            Box::pin(async move { damage_in(tx, &store, OP, &digest).await })
        })
        .await
    }

    async fn body_repaired(
        &self,
        digest: Digest,
        inline: Option<Vec<u8>>,
    ) -> Result<Vec<AgencyId>, StoreError> {
        const OP: &str = "body repaired";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, inline) = (store.clone(), inline.clone());
            Box::pin(async move {
                let sql = |e| store.sql_error(OP, e);
                if let Some(b) = &inline {
                    tx.execute(
                        "INSERT INTO inline_bodies (digest, body) VALUES ($1, $2) \
                         ON CONFLICT (digest) DO UPDATE SET body = excluded.body",
                        &[&digest.as_slice(), b],
                    )
                    .await
                    .map_err(sql)?;
                }
                let Some(row) = tx
                    .query_opt(
                        "DELETE FROM damaged_bodies WHERE digest = $1 RETURNING docs",
                        &[&digest.as_slice()],
                    )
                    .await
                    .map_err(sql)?
                else {
                    return Ok(Vec::new());
                };
                let mut wake = Vec::new();
                for doc in row.get::<_, Vec<Uuid>>(0).into_iter().map(DocumentId) {
                    let Some(rec) = doc_in(tx, &store, OP, &doc).await? else {
                        continue;
                    };
                    tx.execute(
                        "DELETE FROM repairs WHERE sender = $1 AND doc = $2",
                        &[&rec.sender.as_str(), &doc.0],
                    )
                    .await
                    .map_err(sql)?;
                    // Back in their queues: pending and no longer held.
                    let rows = tx
                        .query(
                            "DELETE FROM held WHERE doc = $1 RETURNING recipient",
                            &[&doc.0],
                        )
                        .await
                        .map_err(sql)?;
                    let released: HashSet<&str> = rows.iter().map(|r| r.get(0)).collect();
                    for r in recipients_of(tx, &store, OP, &doc, &rec).await? {
                        if released.contains(r.as_str()) {
                            wake.push(r);
                        }
                    }
                }
                counters::add(tx, &store, &[("bodies_repaired", 1)]).await?;
                Ok(wake)
            })
        })
        .await
    }

    async fn repair_failed(&self, digest: Digest) -> Result<u32, StoreError> {
        const OP: &str = "repair failed";
        let store = self.clone();
        self.write(OP, move |tx| {
            let store = store.clone();
            Box::pin(async move {
                let row = tx
                    .query_opt(
                        "UPDATE damaged_bodies SET attempts = attempts + 1 \
                         WHERE digest = $1 RETURNING attempts",
                        &[&digest.as_slice()],
                    )
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                Ok(row.map(|r| r.get::<_, i32>(0) as u32).unwrap_or(0))
            })
        })
        .await
    }

    async fn held_for(&self, digest: &Digest) -> Result<Vec<HeldDelivery>, StoreError> {
        const OP: &str = "held for";
        let store = self.clone();
        let digest = *digest;
        self.read(OP, move |tx| {
            Box::pin(async move {
                let Some(d) = damage_in(tx, &store, OP, &digest).await? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for doc in &d.docs {
                    let Some(rec) = doc_in(tx, &store, OP, doc).await? else {
                        continue;
                    };
                    let held = held_of(tx, &store, OP, doc).await?;
                    for rcpt in recipients_of(tx, &store, OP, doc, &rec).await? {
                        if held.contains(rcpt.as_str()) {
                            out.push(HeldDelivery {
                                doc: *doc,
                                sender: rec.sender.clone(),
                                recipient: rcpt,
                            });
                        }
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    async fn body_lost(
        &self,
        digest: Digest,
        notices: Vec<(HeldDelivery, Answer)>,
        now_ms: u64,
    ) -> Result<Vec<AgencyId>, StoreError> {
        const OP: &str = "body lost";
        let store = self.clone();
        self.write(OP, move |tx| {
            let (store, notices) = (store.clone(), notices.clone());
            Box::pin(async move {
                let sql = |e| store.sql_error(OP, e);
                // Counted with the answers, in this transaction (a fresh hook per attempt).
                let hook = crate::stats::StatsHook::default();
                let mut wake = Vec::new();
                for (h, notice) in &notices {
                    let held = tx
                        .query_opt(
                            "SELECT 1 FROM held WHERE recipient = $1 AND doc = $2",
                            &[&h.recipient.as_str(), &h.doc.0],
                        )
                        .await
                        .map_err(sql)?
                        .is_some();
                    if !held {
                        continue;
                    }
                    let outcome = super::exchange::answer_in(
                        tx,
                        &store,
                        &hook,
                        h.doc,
                        &h.recipient,
                        notice,
                        now_ms,
                    )
                    .await?;
                    // The answer takes the delivery out of `held` (it ends by loss).
                    if let AnswerOutcome::Recorded { sender } = outcome {
                        wake.push(sender);
                    }
                }
                let removed = tx
                    .query_opt(
                        "DELETE FROM damaged_bodies WHERE digest = $1 RETURNING docs",
                        &[&digest.as_slice()],
                    )
                    .await
                    .map_err(sql)?;
                if let Some(row) = removed {
                    for doc in row.get::<_, Vec<Uuid>>(0).into_iter().map(DocumentId) {
                        if let Some(rec) = doc_in(tx, &store, OP, &doc).await? {
                            tx.execute(
                                "DELETE FROM repairs WHERE sender = $1 AND doc = $2",
                                &[&rec.sender.as_str(), &doc.0],
                            )
                            .await
                            .map_err(sql)?;
                        }
                    }
                    counters::add(tx, &store, &[("bodies_lost", 1)]).await?;
                }
                counters::add_stats(tx, &store, hook.take()).await?;
                Ok(wake)
            })
        })
        .await
    }

    async fn held_count(&self, recipient: Option<&AgencyId>) -> Result<u64, StoreError> {
        const OP: &str = "held count";
        let store = self.clone();
        let recipient = recipient.map(|a| a.to_string());
        self.read(OP, move |tx| {
            Box::pin(async move {
                let row = match &recipient {
                    Some(a) => {
                        tx.query_one("SELECT count(*) FROM held WHERE recipient = $1", &[a])
                            .await
                    }
                    None => tx.query_one("SELECT count(*) FROM held", &[]).await,
                }
                .map_err(|e| store.sql_error(OP, e))?;
                Ok(row.get::<_, i64>(0) as u64)
            })
        })
        .await
    }

    async fn live_bodies(
        &self,
        after: Option<Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, bool)>, StoreError> {
        const OP: &str = "live bodies";
        let store = self.clone();
        // The empty string sorts before every digest.
        let after: Vec<u8> = after.map(|d| d.to_vec()).unwrap_or_default();
        self.read(OP, move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT r.digest, \
                                EXISTS (SELECT 1 FROM inline_bodies i WHERE i.digest = r.digest) \
                         FROM body_refs r WHERE r.digest > $1 AND r.refs > 0 \
                         ORDER BY r.digest LIMIT $2",
                        &[&after, &scan_limit(limit)],
                    )
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                rows.iter()
                    .map(|r| Ok((digest(r.get(0))?, r.get(1))))
                    .collect()
            })
        })
        .await
    }

    async fn docs_using(
        &self,
        digests: &HashSet<Digest>,
    ) -> Result<HashMap<Digest, Vec<DocumentId>>, StoreError> {
        const OP: &str = "documents using bodies";
        let store = self.clone();
        let digests: Vec<Vec<u8>> = digests.iter().map(|d| d.to_vec()).collect();
        self.read(OP, move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT id, record FROM docs WHERE body_sha256 = ANY($1) ORDER BY id",
                        &[&digests],
                    )
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                let mut out: HashMap<Digest, Vec<DocumentId>> = HashMap::new();
                for r in &rows {
                    let rec: DocRecord = dec(r.get::<_, &[u8]>(1))?;
                    if rec.body_at != BodyAt::Gone {
                        out.entry(rec.body_sha256)
                            .or_default()
                            .push(DocumentId(r.get(0)));
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    async fn count_checked(&self, n: u64) -> Result<(), StoreError> {
        let store = self.clone();
        self.write("count checked bodies", move |tx| {
            let store = store.clone();
            Box::pin(async move { counters::add(tx, &store, &[("bodies_checked", n)]).await })
        })
        .await
    }

    async fn repair_senders(&self) -> Result<Vec<AgencyId>, StoreError> {
        const OP: &str = "repair senders";
        let store = self.clone();
        self.read(OP, move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query("SELECT DISTINCT sender FROM repairs ORDER BY sender", &[])
                    .await
                    .map_err(|e| store.sql_error(OP, e))?;
                rows.iter().map(|r| agency(r.get(0))).collect()
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::statistics::dev::{fresh, Areas};
    use super::super::statistics::tests::redb;
    use crate::state::backend::{ExchangeBackend, RepairBackend, StatisticsBackend};
    use crate::state::tests::{a, doc, key, said};
    use poros_protocol::DocumentId;
    use poros_store::ReceivedBody;
    use std::collections::HashSet;

    /// The counters this area keeps.
    const MINE: [&str; 5] = [
        "bodies_checked",
        "bodies_damaged",
        "body_repairs_requested",
        "bodies_repaired",
        "bodies_lost",
    ];

    async fn counters(b: &dyn StatisticsBackend) -> Vec<(String, u64)> {
        let mut c = b.counters().await.unwrap();
        c.retain(|(n, _)| MINE.contains(&n.as_str()));
        c
    }

    /// Damage found, deliveries held, requests read, attempts counted, the body repaired:
    /// every answer of `b` along the way, written down.
    async fn damage_and_repair(
        b: &dyn RepairBackend,
        stats: &dyn StatisticsBackend,
        ids: &[DocumentId],
        unknown: DocumentId,
    ) -> Vec<String> {
        let mut log = Vec::new();
        let (d1, d2, d3) = (ids[0], ids[1], ids[2]);
        let sender = a("000.00.00.G01");
        let none = HashSet::new();
        macro_rules! note {
            ($what:expr, $v:expr) => {
                log.push(format!("{}: {:?}", $what, $v))
            };
        }
        note!(
            "unknown",
            b.hold_damaged(unknown, "missing".into(), 6_000).await
        );
        note!(
            "d1 first",
            b.hold_damaged(d1, "missing".into(), 6_000).await
        );
        note!(
            "d1 again",
            b.hold_damaged(d1, "wrong hash".into(), 6_001).await
        );
        // d2 shares d1's body: held with it, no second request.
        note!("d2", b.hold_damaged(d2, "missing".into(), 6_002).await);
        let digest = poros_protocol::sha256(b"payload");
        note!("damage", b.damage(&digest).await);
        note!("held all", b.held_count(None).await);
        for r in ["000.00.00.H01", "000.00.00.H02", "000.00.00.H09"] {
            note!(r, b.held_count(Some(&a(r))).await);
        }
        note!("held for", b.held_for(&digest).await);
        note!("repairs", b.repairs_for(&sender, 10, &none).await);
        note!("repairs 0", b.repairs_for(&sender, 0, &none).await);
        note!(
            "repairs skip",
            b.repairs_for(&sender, 10, &HashSet::from([d1])).await
        );
        note!(
            "repairs other",
            b.repairs_for(&a("000.00.00.H01"), 10, &none).await
        );
        note!("senders", b.repair_senders().await);
        note!("failed", b.repair_failed(digest).await);
        note!("failed", b.repair_failed(digest).await);
        note!("failed unknown", b.repair_failed([7; 32]).await);
        note!(
            "damage",
            b.damage(&digest).await.map(|d| d.map(|d| d.attempts))
        );
        let live = b.live_bodies(None, 10).await;
        note!("live", live);
        let first = live.unwrap()[0].0;
        note!("live after", b.live_bodies(Some(first), 1).await);
        note!("live after 0", b.live_bodies(Some(first), 0).await);
        let mut using: Vec<_> = b
            .docs_using(&HashSet::from([digest, [9; 32]]))
            .await
            .unwrap()
            .into_iter()
            .collect();
        using.sort();
        note!("using", using);
        note!("checked", b.count_checked(7).await);
        note!("checked", b.count_checked(3).await);
        // d3 (another body, one recipient) is damaged too, then repaired with its body.
        note!("d3", b.hold_damaged(d3, "missing".into(), 6_003).await);
        note!("senders", b.repair_senders().await);
        note!("repaired", b.body_repaired(digest, None).await);
        note!("repaired again", b.body_repaired(digest, None).await);
        note!("held all", b.held_count(None).await);
        note!("damage", b.damage(&digest).await);
        note!("repairs", b.repairs_for(&sender, 10, &none).await);
        note!("held for", b.held_for(&digest).await);
        log.push(format!("counters: {:?}", counters(stats).await));
        log
    }

    #[tokio::test]
    async fn damage_hold_and_repair_answer_as_in_redb() {
        let dir = tempfile::tempdir().unwrap();
        let r = redb(&dir).await;
        let pg = fresh().await;
        let k = key();
        let (d1, rec1) = doc(&k, 1, b"payload", &["000.00.00.H01", "000.00.00.H02"]);
        let (d2, rec2) = doc(&k, 2, b"payload", &["000.00.00.H02"]);
        let (d3, rec3) = doc(&k, 3, b"other body", &["000.00.00.H01"]);
        for (rec, body) in [(rec1, "payload"), (rec2, "payload"), (rec3, "other body")] {
            for b in [&r as &dyn Areas, &pg.store] {
                b.accept(rec.clone(), ReceivedBody::inline(body.as_bytes().to_vec()))
                    .await
                    .unwrap();
            }
        }
        let ids = [d1, d2, d3];
        let (unknown, _) = doc(&k, 99, b"x", &["000.00.00.H01"]);
        let expect = damage_and_repair(&r, &r, &ids, unknown).await;
        assert!(
            expect.iter().any(|l| l.starts_with("repaired: Ok([")),
            "{expect:#?}"
        );
        let got = damage_and_repair(&pg.store, &pg.store, &ids, unknown).await;
        assert_eq!(got, expect);
        pg.drop_db().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn damage_found_at_once_by_many_asks_once() {
        let pg = fresh().await;
        let k = key();
        let (d1, rec1) = doc(&k, 1, b"payload", &["000.00.00.H01", "000.00.00.H02"]);
        pg.store
            .accept(rec1, ReceivedBody::inline(b"payload".to_vec()))
            .await
            .unwrap();
        let b: &dyn RepairBackend = &pg.store;
        let all = (0..8u64).map(|i| b.hold_damaged(d1, "missing".into(), 6_000 + i));
        let asked: Vec<_> = futures_util::future::join_all(all)
            .await
            .into_iter()
            .map(|x| x.unwrap())
            .filter(Option::is_some)
            .collect();
        assert_eq!(asked, [Some(a("000.00.00.G01"))], "one request");
        assert_eq!(b.held_count(None).await.unwrap(), 2);
        let digest = poros_protocol::sha256(b"payload");
        assert_eq!(b.damage(&digest).await.unwrap().unwrap().docs, [d1]);
        assert_eq!(
            counters(&pg.store).await,
            [
                ("bodies_damaged".to_string(), 1),
                ("body_repairs_requested".to_string(), 1)
            ]
        );
        pg.drop_db().await;
    }

    /// The redb store's own test of a damaged body (`state/tests.rs`), through the traits:
    /// held, repaired, damaged again and lost, each answer written down.
    async fn held_repaired_and_lost(b: &dyn Areas, k: &poros_protocol::SigningKey) -> Vec<String> {
        use poros_protocol::{BodyLostReason, HubNotice, NoticeKind};
        let mut log = Vec::new();
        macro_rules! note {
            ($what:expr, $v:expr) => {
                log.push(format!("{}: {:?}", $what, $v))
            };
        }
        let (h1, h2) = (a("000.00.00.H01"), a("000.00.00.H02"));
        let (id, rec) = doc(k, 3, b"payload", &["000.00.00.H01", "000.00.00.H02"]);
        let digest = rec.body_sha256;
        let sender = a("000.00.00.G01");
        let none = HashSet::new();
        let accepted = b
            .accept(rec, ReceivedBody::inline(b"payload".to_vec()))
            .await;
        note!("accept", accepted.map(|o| format!("{o:?}")));
        note!("asked", b.hold_damaged(id, "missing".into(), 6_000).await);
        note!(
            "asked again",
            b.hold_damaged(id, "missing".into(), 6_001).await
        );
        note!(
            "queue h1",
            b.pending_for(&h1, 10, &none).await.map(|p| p.len())
        );
        note!("pending h1", b.pending_count(&h1).await);
        note!("queue depth", b.queue_depth().await);
        note!("held", b.held_count(None).await);
        note!("expiring", b.expired_before(u64::MAX, 10).await);
        note!("repairs", b.repairs_for(&sender, 10, &none).await);
        note!(
            "repaired",
            b.body_repaired(digest, Some(b"payload".to_vec())).await
        );
        note!(
            "queue h2",
            b.pending_for(&h2, 10, &none)
                .await
                .map(|p| p.iter().map(|p| p.doc).collect::<Vec<_>>())
        );
        note!("repairs", b.repairs_for(&sender, 10, &none).await);
        note!("held", b.held_count(None).await);
        note!("asked", b.hold_damaged(id, "missing".into(), 7_000).await);
        let held = b.held_for(&digest).await.unwrap();
        note!("held for", held);
        let notices = held
            .into_iter()
            .map(|h| {
                let n = HubNotice {
                    doc_id: h.doc,
                    sender: h.sender.clone(),
                    recipient: h.recipient.clone(),
                    kind: NoticeKind::BodyLost {
                        reason: BodyLostReason::SenderHasNoCopy,
                    },
                    time_ms: 8_000,
                }
                .as_statement();
                (h, said(k, n))
            })
            .collect::<Vec<_>>();
        note!("lost", b.body_lost(digest, notices.clone(), 8_000).await);
        // Again (a retried call): nothing is held any more, nothing changes.
        note!("lost again", b.body_lost(digest, notices, 8_001).await);
        note!("held", b.held_count(None).await);
        note!("damage", b.damage(&digest).await);
        note!("expiring", b.expired_before(u64::MAX, 10).await);
        note!(
            "relays",
            b.statement_relays_for(&sender, 10, &HashSet::new())
                .await
                .map(|r| r.len())
        );
        note!("relay docs", b.statement_relay_docs(&sender).await);
        let mut c = b.counters().await.unwrap();
        c.sort();
        note!("counters", c);
        let mut recount: Vec<_> = b.recount(3_600_000).await.unwrap().into_iter().collect();
        recount.sort();
        note!("recount", recount);
        let v = b.stats_snapshot().await.unwrap();
        let mut sums: Vec<_> = v
            .sums(&["Y1970".to_string()], None)
            .await
            .unwrap()
            .into_iter()
            .collect();
        sums.sort();
        note!("statistics", sums);
        log
    }

    #[tokio::test]
    async fn a_damaged_body_holds_deliveries_until_repaired_or_lost_as_in_redb() {
        let dir = tempfile::tempdir().unwrap();
        let r = redb(&dir).await;
        let pg = fresh().await;
        let k = key();
        let expect = held_repaired_and_lost(&r, &k).await;
        assert!(
            expect
                .iter()
                .any(|l| l
                    .starts_with("lost: Ok([AgencyId(000.00.00.G01), AgencyId(000.00.00.G01)])")),
            "{expect:#?}"
        );
        // The live statistics equal their recount.
        let of = |what: &str| {
            let line = expect.iter().find(|l| l.starts_with(what)).unwrap();
            line[what.len()..].to_string()
        };
        assert_eq!(of("recount: "), of("statistics: "));
        let got = held_repaired_and_lost(&pg.store, &k).await;
        assert_eq!(got, expect);
        pg.drop_db().await;
    }
}
