//! Retention: deliveries pending too long are expired, and bodies every recipient has
//! answered are released once their retention has passed.

use super::*;

impl HubStore {
    /// Pending deliveries accepted before `cutoff_ms` (oldest first), at most `limit`.
    pub fn expired_before(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<(DocumentId, AgencyId)>, StoreError> {
        let r = self.db.read()?;
        let t = r.open_table(EXPIRY)?;
        let lo: &[u8] = &[];
        let mut out = Vec::new();
        for e in t.range((0u64, lo, "")..(cutoff_ms, lo, ""))? {
            let (k, _) = e?;
            let (_, doc, rcpt) = k.value();
            let doc = DocumentId::from_bytes(
                doc.try_into()
                    .map_err(|_| StoreError::Corrupt("expiry key".into()))?,
            );
            out.push((
                doc,
                AgencyId::parse(rcpt).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Documents fully answered before `cutoff_ms` whose bodies may go. Removes them from the
    /// retention index, marks the body removed and returns digests of file bodies whose last
    /// reference went (the caller deletes those files after this commit is durable).
    pub async fn release_bodies(
        &self,
        cutoff_ms: u64,
        limit: usize,
    ) -> Result<Vec<Digest>, StoreError> {
        self.db
            .write(move |txn| {
                let mut due = Vec::new();
                {
                    let t = txn.open_table(RETENTION)?;
                    let lo: &[u8] = &[];
                    for e in t.range((0u64, lo)..(cutoff_ms, lo))? {
                        let (k, _) = e?;
                        let (ts, doc) = k.value();
                        due.push((ts, doc.to_vec()));
                        if due.len() >= limit {
                            break;
                        }
                    }
                }
                let mut files = Vec::new();
                let mut ret = txn.open_table(RETENTION)?;
                let mut docs = txn.open_table(DOCS)?;
                let mut refs = txn.open_table(BODY_REFS)?;
                let mut inl = txn.open_table(INLINE)?;
                for (ts, doc) in due {
                    ret.remove((ts, doc.as_slice()))?;
                    let Some(mut rec) = docs
                        .get(doc.as_slice())?
                        .map(|g| dec::<DocRecord>(g.value()))
                        .transpose()?
                    else {
                        continue;
                    };
                    let n = refs.get(rec.body_sha256.as_slice())?.map(|g| g.value());
                    let r = Release::of(&mut rec, n);
                    match r.refs {
                        None => {
                            refs.remove(rec.body_sha256.as_slice())?;
                        }
                        Some(n) => {
                            refs.insert(rec.body_sha256.as_slice(), n)?;
                        }
                    }
                    if r.inline_gone {
                        inl.remove(rec.body_sha256.as_slice())?;
                    }
                    if r.file_gone {
                        files.push(rec.body_sha256);
                    }
                    docs.insert(doc.as_slice(), enc(&rec)?.as_slice())?;
                }
                Ok(files)
            })
            .await
    }
}

/// What releasing one document's body does.
pub(super) struct Release {
    /// The documents still using the body afterwards; `None` when this was the last one.
    pub(super) refs: Option<u64>,
    /// The body was inline and its last reference went: remove it.
    pub(super) inline_gone: bool,
    /// The body was a file and its last reference went: delete it after the commit.
    pub(super) file_gone: bool,
}

impl Release {
    /// Release `rec`'s body (marked gone), given the documents using it (`refs`, `None` if
    /// uncounted).
    pub(super) fn of(rec: &mut DocRecord, refs: Option<u64>) -> Release {
        let n = refs.unwrap_or(1);
        let last = n <= 1;
        let out = Release {
            refs: (!last).then(|| n - 1),
            inline_gone: last && rec.body_at == BodyAt::Inline,
            file_gone: last && rec.body_at == BodyAt::File,
        };
        rec.body_at = BodyAt::Gone;
        out
    }
}
