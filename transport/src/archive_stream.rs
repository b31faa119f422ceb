//! A backup archive streamed as an HTTP body while it is written: how the running hub
//! (`GET /admin/v1/backup`) and the running agent (`GET /v1/backup`) hand the store part of a
//! backup to their command line, with the exchange going on.

use std::collections::BTreeMap;
use std::io::Write;

use poros_store::archive::{ArchiveError, ArchiveWriter};
use poros_store::RemovalHold;
use serde_json::Value;

/// Bytes handed to the HTTP body at a time.
const STREAM_CHUNK: usize = 256 * 1024;

/// Feeds what a blocking archive writer writes to an HTTP body, [`STREAM_CHUNK`] at a time.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= STREAM_CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(STREAM_CHUNK),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the backup's reader went away",
            )
        })
    }
}

/// An archive of `kind` that `job` fills (returning the manifest's contents), written on the
/// blocking pool and streamed as it is written. `hold` (body removals held since before the
/// snapshot began) is released when the job ends. An error part-way ends the stream without
/// its manifest, which the reader takes as a failed backup.
pub fn archive_body<E, F>(kind: &'static str, hold: RemovalHold, job: F) -> axum::body::Body
where
    E: std::fmt::Display + From<ArchiveError>,
    F: FnOnce(&mut ArchiveWriter<ChannelWriter>) -> Result<BTreeMap<String, Value>, E>
        + Send
        + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let _hold = hold;
        let sink = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(STREAM_CHUNK),
        };
        let started = std::time::Instant::now();
        let written = (|| -> Result<_, E> {
            let mut w = ArchiveWriter::new(sink, kind)?;
            let contents = job(&mut w)?;
            let (mut sink, manifest) = w.finish(contents)?;
            sink.flush().map_err(|source| ArchiveError::Io {
                what: "streaming the backup".into(),
                source,
            })?;
            Ok(manifest)
        })();
        match written {
            Ok(m) => tracing::info!(
                documents = m.number("documents"),
                body_files = m.number("body_files"),
                ms = started.elapsed().as_millis() as u64,
                "backup snapshot streamed"
            ),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "backup snapshot failed");
                let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
            }
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    axum::body::Body::from_stream(chunks)
}
