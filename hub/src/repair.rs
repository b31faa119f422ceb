//! Lost and damaged bodies: checking a body before it is delivered, asking the sender's agent
//! to upload it again, storing the repair, ending deliveries with a signed notice when the
//! sender has no copy, and the scrub that re-reads every stored body.
//!
//! The durable side (held deliveries, damage records, requests) is in `state::bodies`.

use crate::bodies::Settle;
use crate::hub::{now_ms, Hub};
use crate::state::{BodyAt, DocRecord};
use anyhow::{Context, Result};
use poros_protocol::{
    BodyLostReason, Digest, DocumentId, Frame, HubNotice, NoticeKind, RefusalCode,
    MAX_REPAIR_ATTEMPTS,
};
use poros_store::{BlobCheck, BodySink, Commit, ReceivedBody, StoreError};
use poros_transport::{read_frame, recv_body, write_frame, RecvBodyError};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// How long the sender's agent has to start answering a re-upload request.
const REUPLOAD_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A body ready to be delivered.
pub(crate) enum BodySource {
    /// Small body, read from the store (length and hash checked).
    Inline(Vec<u8>),
    /// Large body with the recorded length, open for reading; its hash is checked as it
    /// streams.
    Stream(crate::bodies::BodyReader),
}

fn describe(check: BlobCheck, recorded: u64) -> String {
    match check {
        BlobCheck::Intact => "body intact".into(),
        BlobCheck::Missing => "body file missing".into(),
        BlobCheck::WrongLength { found } => {
            format!("body file has {found} bytes, {recorded} recorded")
        }
        BlobCheck::WrongHash => "body file does not match its SHA-256".into(),
    }
}

/// The body of `rec`, checked cheaply before anything is sent: a file must be present with
/// the recorded length; inline bytes must have the recorded length and hash. `Ok(Err(what))`
/// when it is missing or damaged; an error when retention removed it (it is removed only once
/// every delivery has ended, so a pending one never meets that).
pub(crate) async fn body_for_delivery(
    hub: &Hub,
    rec: &DocRecord,
) -> Result<Result<BodySource, String>> {
    match rec.body_at {
        BodyAt::File => match hub.bodies.check_len(&rec.body_sha256, rec.body_len).await? {
            BlobCheck::Intact => match hub.bodies.open_read(&rec.body_sha256).await {
                Ok(r) => Ok(Ok(BodySource::Stream(r))),
                Err(StoreError::BlobNotFound { .. }) => {
                    Ok(Err(describe(BlobCheck::Missing, rec.body_len)))
                }
                Err(e) => Err(e.into()),
            },
            bad => Ok(Err(describe(bad, rec.body_len))),
        },
        BodyAt::Inline => Ok(match hub.store.inline_body(&rec.body_sha256).await? {
            None => Err("inline body missing".into()),
            Some(b) if b.len() as u64 != rec.body_len => Err(format!(
                "inline body has {} bytes, {} recorded",
                b.len(),
                rec.body_len
            )),
            Some(b) if poros_protocol::sha256(&b) != rec.body_sha256 => {
                Err("inline body does not match its SHA-256".into())
            }
            Some(b) => Ok(BodySource::Inline(b)),
        }),
        BodyAt::Gone => anyhow::bail!(
            "body {} was removed by retention while a delivery was pending",
            hex::encode(rec.body_sha256)
        ),
    }
}

/// Hold `doc`'s deliveries and ask its sender for the body (once per body).
pub(crate) async fn body_damaged(hub: &Hub, doc: DocumentId, what: String) -> Result<()> {
    warn!(doc = %doc, %what, "stored body is damaged; deliveries held until the sender uploads it again");
    if let Some(sender) = hub.store.hold_damaged(doc, what, now_ms()).await? {
        info!(doc = %doc, sender = %sender, "re-upload of the body requested from the sender");
        hub.wake(&sender);
    }
    Ok(())
}

/// Ask the connected sender for `doc`'s body and store it if it matches.
pub(crate) async fn repair_one(
    hub: &Arc<Hub>,
    conn: &quinn::Connection,
    doc: DocumentId,
    digest: Digest,
) -> Result<()> {
    let rec = hub
        .store
        .doc(&doc)
        .await?
        .with_context(|| format!("repair asked for unknown document {doc}"))?;
    let res = reupload(hub, conn, &rec, doc, digest).await;
    match res {
        Ok(Reupload::Stored) => {
            let wake = hub.store.body_repaired(digest, None).await?;
            info!(doc = %doc, held = wake.len(), "body repaired from the sender's copy");
            for r in wake {
                hub.wake(&r);
            }
            Ok(())
        }
        Ok(Reupload::StoredInline(body)) => {
            let wake = hub.store.body_repaired(digest, Some(body)).await?;
            info!(doc = %doc, held = wake.len(), "body repaired from the sender's copy");
            for r in wake {
                hub.wake(&r);
            }
            Ok(())
        }
        Ok(Reupload::Lost(reason)) => lose(hub, digest, reason).await,
        Err(e) if conn.close_reason().is_some() => Err(e),
        Err(e) => {
            let n = hub.store.repair_failed(digest).await?;
            if n >= MAX_REPAIR_ATTEMPTS {
                warn!(doc = %doc, attempts = n, error = %e, "giving up repairing the body");
                lose(hub, digest, BodyLostReason::RepairAttemptsExhausted).await?;
                return Ok(());
            }
            Err(e.context(format!("re-upload attempt {n} of {MAX_REPAIR_ATTEMPTS}")))
        }
    }
}

enum Reupload {
    Stored,
    StoredInline(Vec<u8>),
    Lost(BodyLostReason),
}

async fn reupload(
    hub: &Hub,
    conn: &quinn::Connection,
    rec: &DocRecord,
    doc: DocumentId,
    digest: Digest,
) -> Result<Reupload> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &Frame::Reupload { doc_id: doc }).await?;
    send.finish()?;
    let answer = tokio::time::timeout(REUPLOAD_ANSWER_TIMEOUT, read_frame(&mut recv))
        .await
        .context("the sender did not answer the re-upload request")??;
    match answer {
        // By content: an envelope the agent signed again after a renewal is the same document.
        Frame::Submit { envelope } if envelope.0.payload == rec.envelope.0.payload => {}
        Frame::Submit { .. } => {
            anyhow::bail!("the sender answered the re-upload of {doc} with another envelope")
        }
        Frame::Refused(r) if r.code == RefusalCode::NotFound => {
            warn!(doc = %doc, refusal = %r, "the sender no longer holds the body");
            return Ok(Reupload::Lost(BodyLostReason::SenderHasNoCopy));
        }
        Frame::Refused(r) if r.code == RefusalCode::BodyMismatch => {
            warn!(doc = %doc, refusal = %r, "the sender's copy of the body is damaged too");
            return Ok(Reupload::Lost(BodyLostReason::SenderCopyDamaged));
        }
        Frame::Refused(r) => anyhow::bail!("the sender refused the re-upload: {r}"),
        _ => anyhow::bail!("the sender answered a re-upload with an unexpected frame"),
    }
    // Back where the record says the body lives.
    let sink = if rec.body_at == BodyAt::Inline {
        BodySink::in_memory(&hub.blobs, rec.body_len)
    } else {
        BodySink::to_file(&hub.blobs).await?
    };
    match recv_body(&mut recv, rec.body_len, sink, Commit::Repairing(digest)).await {
        Ok(ReceivedBody::Inline { bytes, .. }) => Ok(Reupload::StoredInline(bytes)),
        Ok(body @ ReceivedBody::File { .. }) => {
            hub.bodies.settle(body, Settle::Repair).await?;
            Ok(Reupload::Stored)
        }
        Err(RecvBodyError::Store(StoreError::DigestMismatch { .. })) => {
            anyhow::bail!("the re-uploaded body does not match the signed envelope")
        }
        Err(e) => Err(e.into()),
    }
}

/// End every delivery held for this body with a hub-signed notice giving `reason`.
pub(crate) async fn lose(hub: &Hub, digest: Digest, reason: BodyLostReason) -> Result<()> {
    let now = now_ms();
    let mut notices = Vec::new();
    for h in hub.store.held_for(&digest).await? {
        let notice = HubNotice {
            doc_id: h.doc,
            sender: h.sender.clone(),
            recipient: h.recipient.clone(),
            kind: NoticeKind::BodyLost { reason },
            time_ms: now,
        }
        .as_statement();
        let signed = hub.sign_statement(&notice)?;
        notices.push((h, crate::state::Answer::Said(signed, Box::new(notice))));
    }
    let n = notices.len();
    for sender in hub.store.body_lost(digest, notices, now).await? {
        hub.wake(&sender);
    }
    warn!(digest = %hex::encode(digest), deliveries = n, reason = reason.code(), "body lost: deliveries ended with a signed notice");
    Ok(())
}

/// What one scrub found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScrubReport {
    /// Run number since the hub started.
    pub run: u64,
    /// Started, Unix ms.
    pub started_ms: u64,
    /// Finished, Unix ms.
    pub finished_ms: u64,
    /// Bodies read and checked.
    pub bodies_checked: u64,
    /// Bytes read.
    pub bytes_checked: u64,
    /// Digests (hex) of bodies not found.
    pub missing: Vec<String>,
    /// Digests (hex) of bodies found with the wrong length or contents.
    pub damaged: Vec<String>,
    /// New re-upload requests queued for senders.
    pub repairs_requested: u64,
    /// Set when the scrub stopped early.
    pub error: Option<String>,
}

/// The scrub job's state, shown by `GET /admin/v1/scrub`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScrubState {
    /// Whether a scrub is running now.
    pub running: bool,
    /// Scrubs started since the hub started.
    pub runs: u64,
    /// The last finished scrub.
    pub last: Option<ScrubReport>,
}

/// Start a scrub in the background unless one is running; returns the run number to wait for.
pub fn start_scrub(hub: &Arc<Hub>) -> u64 {
    let run = {
        let mut st = match hub.scrub.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if st.running {
            return st.runs;
        }
        st.running = true;
        st.runs += 1;
        st.runs
    };
    let hub = hub.clone();
    tokio::spawn(async move {
        let mut report = ScrubReport {
            run,
            started_ms: now_ms(),
            ..Default::default()
        };
        if let Err(e) = scrub(&hub, &mut report).await {
            warn!(error = %e, "scrub stopped early");
            report.error = Some(format!("{e:#}"));
        }
        report.finished_ms = now_ms();
        info!(
            run,
            checked = report.bodies_checked,
            bytes = report.bytes_checked,
            missing = report.missing.len(),
            damaged = report.damaged.len(),
            repairs_requested = report.repairs_requested,
            "scrub finished"
        );
        let mut st = match hub.scrub.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        st.running = false;
        st.last = Some(report);
    });
    run
}

/// The scrub job's state now.
pub fn scrub_state(hub: &Hub) -> ScrubState {
    match hub.scrub.lock() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

/// Re-read every live body, then hold and ask again for those found damaged.
async fn scrub(hub: &Arc<Hub>, report: &mut ScrubReport) -> Result<()> {
    let mut after = None;
    let mut bad: Vec<(Digest, String)> = Vec::new();
    loop {
        let batch = hub.store.live_bodies(after, 256).await?;
        if batch.is_empty() {
            break;
        }
        for (digest, inline) in batch {
            after = Some(digest);
            let (check, bytes) = if inline {
                match hub.store.inline_body(&digest).await? {
                    None => (BlobCheck::Missing, 0),
                    Some(b) if poros_protocol::sha256(&b) != digest => {
                        (BlobCheck::WrongHash, b.len() as u64)
                    }
                    Some(b) => (BlobCheck::Intact, b.len() as u64),
                }
            } else {
                hub.bodies.verify(&digest).await?
            };
            report.bodies_checked += 1;
            report.bytes_checked += bytes;
            // Retention may have released the body since it was listed.
            if check != BlobCheck::Intact && hub.store.body_refs(&digest).await? > 0 {
                let hexd = hex::encode(digest);
                match check {
                    BlobCheck::Missing => {
                        report.missing.push(hexd);
                        bad.push((digest, "body missing (found by scrub)".into()));
                    }
                    _ => {
                        report.damaged.push(hexd);
                        bad.push((
                            digest,
                            "body does not match its SHA-256 (found by scrub)".into(),
                        ));
                    }
                }
            }
        }
    }
    hub.store.count_checked(report.bodies_checked).await?;
    if bad.is_empty() {
        return Ok(());
    }
    let wanted: HashSet<Digest> = bad.iter().map(|(d, _)| *d).collect();
    // A long scan: the backend runs it off the exchange's threads.
    let users = hub.store.docs_using(&wanted).await?;
    for (digest, what) in bad {
        for doc in users.get(&digest).into_iter().flatten() {
            if let Some(sender) = hub.store.hold_damaged(*doc, what.clone(), now_ms()).await? {
                report.repairs_requested += 1;
                hub.wake(&sender);
            }
        }
    }
    Ok(())
}

/// Runs a scrub every `scrub_interval_secs` (0: never).
pub(crate) async fn scrubber(hub: Arc<Hub>) {
    let secs = hub.cfg.delivery.scrub_interval_secs;
    if secs == 0 {
        return;
    }
    loop {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        start_scrub(&hub);
    }
}
