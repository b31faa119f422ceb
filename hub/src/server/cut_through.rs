//! Cut-through: a large body is forwarded to the recipients connected to this instance while
//! the hub is still receiving it and storing its own copy, so the document reaches them about
//! when the hub has it, not one whole transfer later. What store-and-forward promises holds:
//!
//! - the hub's acceptance is still sent only once its own copy and the document are durable
//!   (the submission does not change);
//! - the last piece of a forward is held back until the document's acceptance is committed,
//!   so no recipient can complete a body, store it or sign a receipt for it, before the hub
//!   has accepted it. If the upload fails part-way, is refused (its hash does not match), or
//!   the hub cannot store it, the forward is reset with [`RESET_BODY_ABANDONED`] and the
//!   recipient discards what it had;
//! - the recipient hashes the body as it stores it, in one pass, and answers only when the
//!   whole body matches the envelope, as for any delivery;
//! - a forward that cannot keep up (its queue full for [`STALL`]) or that fails is dropped,
//!   and the recipient's pusher later delivers the document from the hub's copy like any
//!   other. Cut-through only ever makes a delivery earlier.
//!
//! A forward takes one of the recipient connection's delivery permits and claims the document
//! among its pusher's deliveries in flight (`push::DeliverySlots`), so the pusher does not
//! deliver the same document beside it.

use crate::hub::Hub;
use crate::metrics::CutThrough as Outcome;
use crate::state::{DocRecord, NodeState};
use anyhow::Result;
use bytes::{Bytes, BytesMut};
use poros_protocol::{AgencyId, Envelope, Frame, SignedEnvelope};
use poros_store::BodyAt;
use poros_transport::{read_frame, write_frame, BodyTap, CHUNK, RESET_BODY_ABANDONED};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info};

/// Bytes gathered from the sender's stream before they are handed to the forwards at once.
const BATCH: usize = CHUNK;
/// Batches a forward may have queued (with the one it holds back, about 1.25 MiB).
const QUEUE: usize = 4;
/// A forward whose queue stays full this long is dropped, so a slow recipient does not slow
/// the upload down (its document is then delivered from the hub's copy).
const STALL: Duration = Duration::from_secs(2);

enum Piece {
    Body(Bytes),
    /// The document is accepted and durable: the held-back piece may go.
    Accepted(Arc<DocRecord>),
}

/// The forwards of one submission's body.
pub(super) struct CutThrough {
    forwards: Vec<mpsc::Sender<Piece>>,
    /// Gathered into one buffer: QUIC frames a few large pieces with far less work than the
    /// packet-sized chunks the sender's stream yields.
    batch: BytesMut,
}

impl CutThrough {
    /// Starts a forward to every recipient of a body stored as a file (larger than what is
    /// kept inline) that is active and connected to this instance with a delivery permit free.
    pub(super) fn start(hub: &Arc<Hub>, signed: &SignedEnvelope, env: &Envelope) -> CutThrough {
        let mut ct = CutThrough {
            forwards: Vec::new(),
            batch: BytesMut::new(),
        };
        if BodyAt::for_len(env.body_len) != BodyAt::File {
            return ct;
        }
        for (i, r) in env.recipients.iter().enumerate() {
            if env.recipients[..i].contains(r) || hub.node_state(r) != Some(NodeState::Active) {
                continue;
            }
            let Some(slots) = hub.delivery_slots(r) else {
                continue;
            };
            if !*slots.lease.borrow() || slots.conn.close_reason().is_some() {
                continue;
            }
            let Ok(permit) = slots.permits.clone().try_acquire_owned() else {
                continue;
            };
            let (tx, rx) = mpsc::channel(QUEUE);
            let work = forward(
                hub.clone(),
                r.clone(),
                slots.conn.clone(),
                signed.clone(),
                rx,
            );
            let what = "cut-through delivery";
            if slots
                .deliveries
                .spawn(env.id, env.id, what, permit, &slots.wake, work)
            {
                debug!(doc = %env.id, recipient = %r, "forwarding the body while it is received");
                ct.forwards.push(tx);
            }
        }
        ct
    }

    /// Hands `piece` to every forward, dropping (and so resetting) those that do not take it
    /// within [`STALL`].
    async fn hand(&mut self, piece: impl Fn() -> Piece) {
        let mut kept = Vec::with_capacity(self.forwards.len());
        for tx in self.forwards.drain(..) {
            if let Ok(Ok(())) = tokio::time::timeout(STALL, tx.send(piece())).await {
                kept.push(tx);
            }
        }
        self.forwards = kept;
    }

    /// The document was accepted and is durable: the rest of the body goes to the forwards,
    /// then each sends its last piece and waits for its recipient's answer.
    pub(super) async fn accepted(mut self, rec: DocRecord) {
        if self.forwards.is_empty() {
            return;
        }
        let batch = self.batch.split().freeze();
        if !batch.is_empty() {
            self.hand(|| Piece::Body(batch.clone())).await;
        }
        let rec = Arc::new(rec);
        self.hand(|| Piece::Accepted(rec.clone())).await;
    }

    /// Whether any forward was started.
    pub(super) fn is_empty(&self) -> bool {
        self.forwards.is_empty()
    }
}

impl BodyTap for CutThrough {
    async fn chunk(&mut self, c: &Bytes) {
        if self.forwards.is_empty() {
            return;
        }
        // Each batch is filled to exactly what was reserved for it: a chunk that overshot
        // made the buffer grow, which copied the whole batch again.
        let mut c = &c[..];
        while !c.is_empty() {
            if self.batch.capacity() == 0 {
                self.batch.reserve(BATCH);
            }
            let n = (BATCH - self.batch.len()).min(c.len());
            self.batch.extend_from_slice(&c[..n]);
            c = &c[n..];
            if self.batch.len() == BATCH {
                let batch = std::mem::take(&mut self.batch).freeze();
                self.hand(|| Piece::Body(batch.clone())).await;
                if self.forwards.is_empty() {
                    return;
                }
            }
        }
    }
}

/// One forward: the delivery frame, then the body as it arrives, one batch held back until
/// the acceptance, then the recipient's answer, recorded as a pushed delivery's is. Without the
/// acceptance (the submission's side dropped) the stream is reset and the claim released, so
/// the pusher takes over if the document is accepted after all.
async fn forward(
    hub: Arc<Hub>,
    agency: AgencyId,
    conn: quinn::Connection,
    envelope: SignedEnvelope,
    mut rx: mpsc::Receiver<Piece>,
) -> Result<()> {
    let ended = |how| hub.metrics.cut_through(how);
    let (mut send, mut recv) = match conn.open_bi().await {
        Ok(s) => s,
        Err(e) => {
            ended(Outcome::Failed);
            return Err(e.into());
        }
    };
    let mut held: Option<Bytes> = None;
    let sent: Result<Option<Arc<DocRecord>>> = async {
        write_frame(&mut send, &Frame::Deliver { envelope }).await?;
        loop {
            match rx.recv().await {
                Some(Piece::Body(b)) => {
                    if let Some(h) = held.replace(b) {
                        send.write_chunk(h).await?;
                    }
                }
                Some(Piece::Accepted(rec)) => return Ok(Some(rec)),
                None => return Ok(None),
            }
        }
    }
    .await;
    let rec = match sent {
        Ok(Some(rec)) => rec,
        other => {
            let _ = send.reset(RESET_BODY_ABANDONED.into());
            ended(Outcome::Abandoned);
            if let Err(e) = other {
                // The recipient's side failed: the pusher delivers it once it is accepted.
                debug!(recipient = %agency, error = %e, "forward abandoned");
            }
            return Ok(());
        }
    };
    let doc = rec.envelope.envelope()?.id;
    let done: Result<()> = async {
        if let Some(h) = held.take() {
            send.write_chunk(h).await?;
        }
        send.finish()?;
        let reply = read_frame(&mut recv).await?;
        super::push::record_reply(&hub, &agency, &rec, doc, reply).await
    }
    .await;
    match done {
        Ok(()) => {
            ended(Outcome::Forwarded);
            info!(doc = %doc, recipient = %agency, bytes = rec.body_len, "delivered by cut-through");
            Ok(())
        }
        Err(e) => {
            ended(Outcome::Failed);
            Err(e)
        }
    }
}
