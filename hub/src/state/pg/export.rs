//! The PostgreSQL store read back as the neutral rows of [`crate::state::transfer`], for
//! checking a migration: every table in the key order the redb store lists it in (text
//! compared as bytes, `COLLATE "C"`), counters and statistics summed over totals and deltas,
//! large bodies re-read chunk by chunk and hashed. All from one REPEATABLE READ snapshot;
//! rows are streamed, never a table in memory.

use super::PgStore;
use crate::state::transfer::{Row, Table, Tally};
use futures_util::{pin_mut, TryStreamExt};
use poros_store::StoreError;
use ring::digest::{Context, SHA256};
use tokio_postgres::{IsolationLevel, Row as PgRow};

/// What each neutral table is read back with: one query, ordered as the redb keys are.
fn query_of(table: Table) -> &'static str {
    match table {
        Table::Nodes => "SELECT agency, state, parent, record FROM nodes ORDER BY agency",
        Table::Tokens => {
            "SELECT secret_sha256, agency, used_ms, record FROM enrolment_tokens \
             ORDER BY secret_sha256"
        }
        Table::Audit => "SELECT seq, agency, time_ms, record FROM audit ORDER BY seq",
        Table::Revoked => "SELECT serial, agency, record FROM revoked_serials ORDER BY serial",
        Table::Superseded => {
            "SELECT serial, agency, record FROM superseded_serials ORDER BY serial"
        }
        Table::Monitors => "SELECT name, record FROM monitor_credentials ORDER BY name",
        Table::Docs => {
            "SELECT id, sender, accepted_ms, body_sha256, body_len, record FROM docs ORDER BY id"
        }
        Table::Deliveries => {
            "SELECT doc, recipient, pending, accepted_ms, answered_ms, record FROM deliveries \
             ORDER BY doc, recipient"
        }
        Table::Queue => {
            "SELECT q.recipient, q.doc, q.due_ms, EXISTS (SELECT 1 FROM held h \
                 WHERE h.recipient = q.recipient AND h.doc = q.doc) \
             FROM queue q ORDER BY q.recipient, q.doc"
        }
        Table::Answered => "SELECT doc, answered FROM answered WHERE answered > 0 ORDER BY doc",
        Table::InlineBodies => "SELECT digest, body FROM inline_bodies ORDER BY digest",
        Table::BodyRefs => "SELECT digest, refs FROM body_refs ORDER BY digest",
        Table::Relays => {
            "SELECT sender, doc, recipient, item FROM relays ORDER BY sender, doc, recipient"
        }
        Table::Retention => "SELECT answered_ms, doc FROM retention ORDER BY answered_ms, doc",
        Table::Statements => "SELECT seq, doc, accepted_ms, record FROM statements ORDER BY seq",
        Table::StatementRelays => {
            "SELECT addressee, seq, doc, from_party FROM statement_relays ORDER BY addressee, seq"
        }
        Table::StatementDigests => "SELECT digest, seq FROM statement_digests ORDER BY digest",
        Table::DocStates => "SELECT doc, state FROM doc_states ORDER BY doc",
        Table::AddedRecipients => {
            "SELECT doc, recipient, seq, added_ms FROM added_recipients ORDER BY doc, recipient"
        }
        Table::StatementKinds => {
            "SELECT label, sum(v)::bigint FROM ( \
                 SELECT label, value AS v FROM statement_kind_totals \
                 UNION ALL SELECT label, delta FROM statement_kind_deltas \
             ) k GROUP BY label ORDER BY label COLLATE \"C\""
        }
        Table::DamagedBodies => {
            "SELECT digest, found_ms, what, docs, attempts FROM damaged_bodies ORDER BY digest"
        }
        Table::Repairs => "SELECT sender, doc, digest FROM repairs ORDER BY sender, doc",
        Table::Counters => {
            "SELECT name, sum(v)::bigint FROM ( \
                 SELECT name, value AS v FROM counter_totals \
                 UNION ALL SELECT name, delta FROM counter_deltas \
             ) c GROUP BY name ORDER BY name COLLATE \"C\""
        }
        Table::Stats => {
            "SELECT period, scope, metric, sum(v)::bigint FROM ( \
                 SELECT period, scope, metric, value AS v FROM stat_totals \
                 UNION ALL SELECT period, scope, metric, delta FROM stat_deltas \
             ) s GROUP BY period, scope, metric \
             ORDER BY period COLLATE \"C\", scope COLLATE \"C\", metric COLLATE \"C\""
        }
        Table::Seen => "SELECT period, agency FROM seen ORDER BY period, agency",
        Table::PaperReports => {
            "SELECT month, agency, record FROM paper_reports ORDER BY month, agency"
        }
        Table::Bodies => {
            "SELECT digest, len, complete FROM stored_bodies WHERE digest > $1 \
             ORDER BY digest LIMIT 1000"
        }
    }
}

fn u(r: &PgRow, i: usize) -> Result<u64, StoreError> {
    let v: i64 = r.try_get(i).map_err(col)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v}")))
}

fn col(e: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(format!("reading a column back: {e}"))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a PgRow, i: usize) -> Result<T, StoreError> {
    r.try_get(i).map_err(col)
}

/// One database row of `table` as its neutral row (large bodies are read apart).
fn row_of(table: Table, r: &PgRow) -> Result<Row, StoreError> {
    Ok(match table {
        Table::Nodes => Row::Node {
            agency: get(r, 0)?,
            state: get(r, 1)?,
            parent: get(r, 2)?,
            record: get(r, 3)?,
        },
        Table::Tokens => Row::Token {
            secret_sha256: get(r, 0)?,
            agency: get(r, 1)?,
            used_ms: get::<Option<i64>>(r, 2)?.map(|v| v.max(0) as u64),
            record: get(r, 3)?,
        },
        Table::Audit => Row::Audit {
            seq: u(r, 0)?,
            agency: get(r, 1)?,
            time_ms: u(r, 2)?,
            record: get(r, 3)?,
        },
        Table::Revoked | Table::Superseded => Row::Serial {
            serial: get(r, 0)?,
            agency: get(r, 1)?,
            record: get(r, 2)?,
        },
        Table::Monitors => Row::Monitor {
            name: get(r, 0)?,
            record: get(r, 1)?,
        },
        Table::Docs => Row::Doc {
            id: get(r, 0)?,
            sender: get(r, 1)?,
            accepted_ms: u(r, 2)?,
            body_sha256: get(r, 3)?,
            body_len: u(r, 4)?,
            record: get(r, 5)?,
        },
        Table::Deliveries => Row::Delivery {
            doc: get(r, 0)?,
            recipient: get(r, 1)?,
            pending: get(r, 2)?,
            due_ms: u(r, 3)?,
            answered_ms: get::<Option<i64>>(r, 4)?.map(|v| v.max(0) as u64),
            record: get(r, 5)?,
        },
        Table::Queue => Row::Queued {
            recipient: get(r, 0)?,
            doc: get(r, 1)?,
            due_ms: u(r, 2)?,
            held: get(r, 3)?,
        },
        Table::Answered => Row::Answered {
            doc: get(r, 0)?,
            answered: get::<i32>(r, 1)?.max(0) as u32,
        },
        Table::InlineBodies => Row::InlineBody {
            digest: get(r, 0)?,
            body: get(r, 1)?,
        },
        Table::BodyRefs => Row::BodyRef {
            digest: get(r, 0)?,
            refs: u(r, 1)?,
        },
        Table::Relays => Row::Relay {
            sender: get(r, 0)?,
            doc: get(r, 1)?,
            recipient: get(r, 2)?,
            item: get(r, 3)?,
        },
        Table::Retention => Row::Retention {
            answered_ms: u(r, 0)?,
            doc: get(r, 1)?,
        },
        Table::Statements => Row::Statement {
            seq: u(r, 0)?,
            doc: get(r, 1)?,
            accepted_ms: u(r, 2)?,
            record: get(r, 3)?,
        },
        Table::StatementRelays => Row::StatementRelay {
            addressee: get(r, 0)?,
            seq: u(r, 1)?,
            doc: get(r, 2)?,
            from: get(r, 3)?,
        },
        Table::StatementDigests => Row::StatementDigest {
            digest: get(r, 0)?,
            seq: u(r, 1)?,
        },
        Table::DocStates => Row::DocState {
            doc: get(r, 0)?,
            state: get(r, 1)?,
        },
        Table::AddedRecipients => Row::Added {
            doc: get(r, 0)?,
            recipient: get(r, 1)?,
            seq: u(r, 2)?,
            added_ms: u(r, 3)?,
        },
        Table::StatementKinds | Table::Counters => Row::Count {
            name: get(r, 0)?,
            value: u(r, 1)?,
        },
        Table::DamagedBodies => Row::Damaged {
            digest: get(r, 0)?,
            found_ms: u(r, 1)?,
            what: get(r, 2)?,
            docs: get(r, 3)?,
            attempts: get::<i32>(r, 4)?.max(0) as u32,
        },
        Table::Repairs => Row::Repair {
            sender: get(r, 0)?,
            doc: get(r, 1)?,
            digest: get(r, 2)?,
        },
        Table::Stats => Row::Stat {
            period: get(r, 0)?,
            scope: get(r, 1)?,
            metric: get(r, 2)?,
            value: u(r, 3)?,
        },
        Table::Seen => Row::Seen {
            period: get(r, 0)?,
            agency: get(r, 1)?,
        },
        Table::PaperReports => Row::Paper {
            month: get(r, 0)?,
            agency: get(r, 1)?,
            record: get(r, 2)?,
        },
        Table::Bodies => {
            return Err(StoreError::Other(
                "large bodies are read with their chunks".into(),
            ))
        }
    })
}

/// Progress of a read-back: (table being read, rows read so far in all, body bytes so far).
pub type ReadProgress<'a> = &'a (dyn Fn(Table, u64, u64) + Send + Sync);

impl PgStore {
    /// Read every table back and tally it (see [`Tally`]), large bodies re-read in full and
    /// hashed; with the problems found in what PostgreSQL keeps beside the neutral form.
    pub async fn tally(
        &self,
        progress: ReadProgress<'_>,
    ) -> Result<(Tally, Vec<String>), StoreError> {
        let sql = |op: &'static str| {
            let store = self.clone();
            move |e| store.sql_error(op, e)
        };
        let mut client = self.client().await?;
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(sql("read back: begin"))?;
        let mut tally = Tally::default();
        let mut done = 0u64;
        for table in Table::ALL.into_iter().filter(|t| *t != Table::Bodies) {
            let rows = tx
                .query_raw(query_of(table), std::iter::empty::<&str>())
                .await
                .map_err(sql("read back"))?;
            pin_mut!(rows);
            while let Some(r) = rows.try_next().await.map_err(sql("read back"))? {
                tally.add(table, &row_of(table, &r)?)?;
                done += 1;
                if done.is_multiple_of(1000) {
                    progress(table, done, 0);
                }
            }
            progress(table, done, 0);
        }
        // Large bodies a page at a time, each body's chunks in order.
        let (mut bytes, mut n) = (0u64, 0u64);
        let mut after: Vec<u8> = Vec::new();
        loop {
            let page: Vec<(Vec<u8>, i64, bool)> = tx
                .query(query_of(Table::Bodies), &[&after])
                .await
                .map_err(sql("read back bodies"))?
                .iter()
                .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?)))
                .collect::<Result<_, StoreError>>()?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.0.clone();
            for (digest, len, complete) in page {
                let mut ctx = Context::new(&SHA256);
                let chunks = tx
                    .query_raw(
                        "SELECT data FROM body_chunks WHERE digest = $1 ORDER BY seq",
                        [&digest],
                    )
                    .await
                    .map_err(sql("read back body"))?;
                pin_mut!(chunks);
                while let Some(r) = chunks.try_next().await.map_err(sql("read back body"))? {
                    let data: &[u8] = get(&r, 0)?;
                    ctx.update(data);
                    bytes += data.len() as u64;
                    progress(Table::Bodies, done + n, bytes);
                }
                // An incomplete upload is no body: it reads as none.
                let content_sha256 = match complete {
                    true => ctx.finish().as_ref().to_vec(),
                    false => Vec::new(),
                };
                tally.add(
                    Table::Bodies,
                    &Row::Body {
                        digest,
                        len: len.max(0) as u64,
                        content_sha256,
                    },
                )?;
                n += 1;
                progress(Table::Bodies, done + n, bytes);
            }
        }
        let problems = invariants(&tx, self).await?;
        tx.commit().await.map_err(sql("read back: end"))?;
        Ok((tally, problems))
    }
}

/// What PostgreSQL keeps beside the neutral form, checked against it: each query counts the
/// rows that break one rule.
const INVARIANTS: &[(&str, &str)] = &[
    (
        "documents whose delivery count (answered.deliveries) is not their number of deliveries",
        "SELECT count(*) FROM docs d LEFT JOIN answered a ON a.doc = d.id \
         LEFT JOIN (SELECT doc, count(*) AS n FROM deliveries GROUP BY doc) c ON c.doc = d.id \
         WHERE a.doc IS NULL OR a.deliveries <> coalesce(c.n, 0)",
    ),
    (
        "held deliveries not in a queue",
        "SELECT count(*) FROM held h WHERE NOT EXISTS \
         (SELECT 1 FROM queue q WHERE q.recipient = h.recipient AND q.doc = h.doc)",
    ),
    (
        "pending deliveries without a queue row, or queue rows of ended deliveries",
        "SELECT count(*) FROM deliveries d FULL JOIN queue q \
         ON q.doc = d.doc AND q.recipient = d.recipient AND d.pending \
         WHERE (d.pending AND q.doc IS NULL) OR (q.doc IS NOT NULL AND d.doc IS NULL)",
    ),
    (
        "statement numbers at or past the sequence that hands out new ones",
        "SELECT count(*) FROM statements WHERE seq > \
         (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM statement_seq)",
    ),
    (
        "large bodies whose upload is not complete",
        "SELECT count(*) FROM stored_bodies WHERE NOT complete",
    ),
];

async fn invariants(
    tx: &tokio_postgres::Transaction<'_>,
    store: &PgStore,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for (what, q) in INVARIANTS {
        let n: i64 = tx
            .query_one(*q, &[])
            .await
            .map_err(|e| store.sql_error("read back: check", e))?
            .get(0);
        if n != 0 {
            out.push(format!("{n} {what}"));
        }
    }
    let audit: Option<i64> = tx
        .query_one(
            "SELECT max(seq) > (SELECT CASE WHEN is_called THEN last_value ELSE 0 END \
             FROM audit_seq_seq) FROM audit",
            &[],
        )
        .await
        .map_err(|e| store.sql_error("read back: check", e))?
        .get::<_, Option<bool>>(0)
        .map(i64::from);
    if audit == Some(1) {
        out.push("audit numbers past the sequence that hands out new ones".into());
    }
    Ok(out)
}
