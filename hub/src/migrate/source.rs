//! Reading the deployment for `store migrate`: every row of its redb store from one snapshot,
//! then every large body file a chunk at a time, tallied on the way (and passed on to the
//! load when copying), on a blocking thread.

use super::{BodyFiles, MigrateError, Progress};
use crate::state::pg::{Load, CHUNK};
use crate::state::transfer::{Row, Table, Tally};
use crate::state::HubStore;
use poros_protocol::Digest;
use poros_store::{Blobs, StoreError};
use ring::digest::{Context, SHA256};
use std::io::Read;

/// Read the source out: tally every row (and send it on, when copying), then every large
/// body file a chunk at a time, hashed on the way.
pub(super) async fn read_source(
    source: HubStore,
    blobs: Blobs,
    tx: Option<tokio::sync::mpsc::Sender<Load>>,
    progress: Progress,
) -> Result<(Tally, BodyFiles), MigrateError> {
    let task = tokio::task::spawn_blocking(move || {
        let mut tally = Tally::default();
        let send = |item: Load| match &tx {
            Some(tx) => tx
                .blocking_send(item)
                .map_err(|_| StoreError::Other("the target stopped taking rows".into())),
            None => Ok(()),
        };
        let mut rows = 0u64;
        source
            .export(&mut |batch| {
                tally.add_all(batch.0, &batch.1)?;
                rows += batch.1.len() as u64;
                progress.set(rows);
                send(Load::Rows(batch))
            })
            .map_err(MigrateError::Source)?;
        let bodies = read_bodies(&source, &blobs, &mut tally, &send, &progress)?;
        Ok::<_, MigrateError>((tally, bodies))
    });
    task.await
        .map_err(|e| MigrateError::Source(StoreError::Other(format!("reader task: {e}"))))?
}

/// Every large body the source references, streamed from its file: sent on as chunks, and
/// counted in the tally if it hashes to its name (a damaged one is discarded again).
fn read_bodies(
    source: &HubStore,
    blobs: &Blobs,
    tally: &mut Tally,
    send: &dyn Fn(Load) -> Result<(), StoreError>,
    progress: &Progress,
) -> Result<BodyFiles, MigrateError> {
    let mut out = BodyFiles::default();
    let mut after: Option<Digest> = None;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let page = source
            .live_bodies(after, 512)
            .map_err(MigrateError::Source)?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = Some(last.0);
        for (digest, inline) in page {
            if inline {
                continue;
            }
            let path = blobs.path(&digest);
            let file_err = |source| MigrateError::BodyFile {
                path: path.clone(),
                source,
            };
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    out.missing.push(hex::encode(digest));
                    continue;
                }
                Err(e) => return Err(file_err(e)),
            };
            let mut ctx = Context::new(&SHA256);
            let (mut seq, mut len) = (0i32, 0u64);
            loop {
                let n = read_full(&mut file, &mut buf).map_err(file_err)?;
                if n == 0 {
                    break;
                }
                ctx.update(&buf[..n]);
                len += n as u64;
                send(Load::Chunk {
                    digest,
                    seq,
                    data: bytes::Bytes::copy_from_slice(&buf[..n]),
                })
                .map_err(MigrateError::Source)?;
                seq += 1;
                progress.note_bytes(out.bytes + len);
            }
            let content = ctx.finish().as_ref().to_vec();
            if content != digest {
                out.damaged.push(hex::encode(digest));
                send(Load::Discard(digest)).map_err(MigrateError::Source)?;
                continue;
            }
            let row = Row::Body {
                digest: digest.to_vec(),
                len,
                content_sha256: content,
            };
            tally
                .add(Table::Bodies, &row)
                .map_err(MigrateError::Source)?;
            out.intact += 1;
            out.bytes += len;
        }
    }
}

/// Fill `buf` from `r` unless it ends first; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
