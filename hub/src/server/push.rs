//! The per-connection pusher: pushes pending deliveries, records the recipient's receipt,
//! relays answers to senders and asks senders for lost bodies again — while this instance
//! holds the agency's lease (see `coordination`).

use crate::hub::{now_ms, Hub};
use crate::repair::BodySource;
use crate::state::{Answer, AnswerOutcome, DeliveryEnd, DeliveryState, DocRecord, RelayItem};
use anyhow::{Context, Result};
use poros_protocol::admission::check_receipt_statement;
use poros_protocol::receipt::RECEIPT_CONTEXT;
use poros_protocol::{
    AgencyId, DelayReason, DocumentId, Frame, SignedReceipt, SignedStatement, STATEMENT_CONTEXT,
};
use poros_transport::{send_body_verified, write_body_read_answer, write_frame, WireError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use tracing::{debug, info, warn};

use super::inflight::InFlight;

/// How long a pusher with nothing to do waits before it scans its queues anyway. Every enqueue
/// wakes the pusher of the agency concerned (on this instance, or through the database's
/// notifications on another), so this is only a safety net for a wake-up missed (a queue read
/// that failed, a notification lost with its connection). Ten thousand connected agencies
/// rescanning every 10 s kept an idle hub busy (about 1,000 scans a second, 10% of its idle CPU
/// in `cargo bench --bench scale`).
const RESCAN: Duration = Duration::from_secs(60);

/// Up to this much is added to [`RESCAN`], per connection, so the rescans of agencies that
/// connected together (after a hub restart) do not stay in step.
const RESCAN_SPREAD_MS: u64 = 30_000;

/// A queue that could not be read is logged and scanned again at the next wake-up.
fn queue_error<T>(what: &str, e: &poros_store::StoreError) -> Vec<T> {
    warn!(error = %e, "reading the {what} queue failed");
    Vec::new()
}

/// What a connection's pusher delivers with, shared with the submissions that forward a body
/// to this connection while it is still being received (`cut_through`): a forward takes one of
/// the same permits and claims its document among the same deliveries in flight, so the pusher
/// never delivers that document beside it.
#[derive(Clone)]
pub(crate) struct DeliverySlots {
    pub(super) conn: quinn::Connection,
    pub(super) wake: Arc<Notify>,
    /// Whether this instance holds the agency's lease (always, without other instances).
    pub(super) lease: tokio::sync::watch::Receiver<bool>,
    pub(super) permits: Arc<Semaphore>,
    pub(super) deliveries: InFlight<DocumentId>,
}

impl DeliverySlots {
    pub(super) fn new(
        hub: &Hub,
        conn: &quinn::Connection,
        wake: Arc<Notify>,
        lease: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        DeliverySlots {
            conn: conn.clone(),
            wake,
            lease,
            permits: Arc::new(Semaphore::new(hub.cfg.limits.deliveries_in_flight as usize)),
            deliveries: InFlight::new(),
        }
    }
}

/// Per-connection worker: pushes pending deliveries, relays answers and asks for lost bodies
/// again, for one node.
pub(super) async fn pusher(hub: Arc<Hub>, agency: AgencyId, slots: DeliverySlots) {
    let DeliverySlots {
        conn,
        wake,
        mut lease,
        permits,
        deliveries,
    } = slots;
    let relays: InFlight<(DocumentId, AgencyId)> = InFlight::new();
    let repairs: InFlight<DocumentId> = InFlight::new();
    let statements: InFlight<DocumentId> = InFlight::new();
    // What this connection's protocol version may be sent (see `statements`).
    let v2 = crate::statements::speaks_statements(&conn);
    let rescan = RESCAN + Duration::from_millis(conn.stable_id() as u64 % RESCAN_SPREAD_MS);
    loop {
        if conn.close_reason().is_some() {
            return;
        }
        // Another hub instance may still hold this agency's work (its lease runs out when
        // that instance is gone): two instances never push the same item at once.
        if !crate::coordination::lease_held(&mut lease, &conn).await {
            return;
        }
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let mut started = 0;

        // A `poros/1` agent cannot be sent a delivery an update added (`DeliverAdded`).
        let pending = if v2 {
            hub.store
                .pending_for(&agency, 256, &deliveries.snapshot())
                .await
        } else {
            hub.store
                .pending_without_added(&agency, 256, &deliveries.snapshot())
                .await
        }
        .unwrap_or_else(|e| queue_error("delivery", &e));
        for p in pending {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            started += 1;
            let (hub, agency, conn) = (hub.clone(), agency.clone(), conn.clone());
            let work = async move { deliver_one(&hub, &agency, &conn, p.doc).await };
            deliveries.spawn(p.doc, p.doc, "delivery", permit, &wake, work);
        }

        let answers = hub
            .store
            .relays_for(&agency, 256, &relays.snapshot())
            .await
            .unwrap_or_else(|e| queue_error("relay", &e));
        for (doc, rcpt, item) in answers {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            started += 1;
            let key = (doc, rcpt.clone());
            let (hub, agency, conn) = (hub.clone(), agency.clone(), conn.clone());
            let work = async move { relay_one(&hub, &agency, &conn, doc, &rcpt, item).await };
            relays.spawn(key, doc, "relay", permit, &wake, work);
        }

        let scan =
            crate::statements::relay_scan(&hub, &agency, &conn, v2, &permits, &statements, &wake);
        let Some(n) = scan.await else { return };
        started += n;

        // Bodies the hub lost and this agency, as their sender, is asked to upload again.
        let lost = hub
            .store
            .repairs_for(&agency, 64, &repairs.snapshot())
            .await
            .unwrap_or_else(|e| queue_error("repair", &e));
        for (doc, digest) in lost {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            started += 1;
            let (hub, conn) = (hub.clone(), conn.clone());
            let work = async move { crate::repair::repair_one(&hub, &conn, doc, digest).await };
            repairs.spawn(doc, doc, "body re-upload", permit, &wake, work);
        }
        if started == 0 {
            tokio::select! {
                _ = notified => {}
                _ = conn.closed() => return,
                _ = tokio::time::sleep(rescan) => {}
            }
        }
    }
}

async fn deliver_one(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    conn: &quinn::Connection,
    doc: DocumentId,
) -> Result<()> {
    let rec = hub
        .store
        .doc(&doc)
        .await?
        .with_context(|| format!("queued document {doc} has no record"))?;
    // A body lost or damaged on the hub's disk is never sent: the deliveries are held and the
    // sender is asked for it again (length and, for inline bodies, hash checked up front; a
    // file's hash is checked as it streams).
    let body = match crate::repair::body_for_delivery(hub, &rec).await? {
        Ok(b) => b,
        Err(what) => return crate::repair::body_damaged(hub, doc, what).await,
    };
    let frame = crate::statements::delivery_frame(hub, agency, &rec).await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &frame).await?;
    let write = async {
        match body {
            BodySource::Inline(b) => send.write_all(&b).await?,
            BodySource::Stream(mut r) => {
                send_body_verified(&mut send, &mut r, rec.body_len, &rec.body_sha256).await?
            }
        }
        send.finish()?;
        Ok::<(), WireError>(())
    };
    // A recipient that holds the document already answers with its receipt without reading
    // the body: its answer is read while the body is written.
    match write_body_read_answer(&mut recv, write).await {
        // A damaged body is dealt with whatever the recipient said.
        (Err(e @ (WireError::BodyDamaged | WireError::ShortBody { .. })), _) => {
            crate::repair::body_damaged(hub, doc, e.to_string()).await
        }
        (_, Ok(reply)) => record_reply(hub, agency, &rec, doc, reply).await,
        (Err(w), Err(r)) => Err(anyhow::Error::from(w).context(r.to_string())),
        (Ok(()), Err(r)) => Err(r.into()),
    }
}

/// The recipient's reply to a delivery of `rec` (pushed, or forwarded while it was received):
/// a receipt or rejection is checked and recorded, and the sender's pusher woken to relay it;
/// a refusal is recorded as a delay when it says why.
pub(super) async fn record_reply(
    hub: &Arc<Hub>,
    agency: &AgencyId,
    rec: &DocRecord,
    doc: DocumentId,
    reply: Frame,
) -> Result<()> {
    let answer = match reply {
        Frame::Statement { statement } => receipt_statement(hub, agency, rec, doc, statement)?,
        Frame::Receipt { receipt } => legacy_receipt(hub, agency, rec, doc, receipt)?,
        Frame::Refused(r) => {
            if let Some(reason) = DelayReason::of_refusal(r.code) {
                crate::delays::delayed(hub, doc, &rec.sender, agency, reason).await;
            }
            anyhow::bail!("recipient refused delivery: {r}")
        }
        _ => anyhow::bail!("recipient answered a delivery with an unexpected frame"),
    };
    let outcome = match &answer {
        Answer::Said(_, s) => s.kind.label().to_string(),
        Answer::Legacy(st) => match st.end() {
            Some(DeliveryEnd::Rejected(r)) => format!("delivery_rejected: {r}"),
            _ => "delivered".into(),
        },
    };
    match hub
        .store
        .record_answer(doc, agency.clone(), answer, now_ms())
        .await?
    {
        AnswerOutcome::Recorded { sender } => {
            hub.delays.clear(doc, agency);
            info!(doc = %doc, recipient = %agency, sender = %sender, %outcome, "answered");
            hub.wake(&sender);
        }
        AnswerOutcome::AlreadyAnswered => {}
        AnswerOutcome::Refused(r) => anyhow::bail!("receipt from {agency} refused: {r}"),
    }
    Ok(())
}

/// A recipient's answer as a statement: signed by the connected agency, made by it, about
/// this document and body (the rules check the rest when it is recorded).
fn receipt_statement(
    hub: &Hub,
    agency: &AgencyId,
    rec: &DocRecord,
    doc: DocumentId,
    signed: SignedStatement,
) -> Result<Answer> {
    if let Err(e) = hub.verify_agency(&signed.0, STATEMENT_CONTEXT, agency) {
        anyhow::bail!("receipt from {agency} refused: {e}");
    }
    let stmt = signed.statement()?;
    if let Err(why) = check_receipt_statement(&stmt, agency, &doc, &rec.body_sha256) {
        anyhow::bail!("receipt from {agency} refused: {why}");
    }
    Ok(Answer::Said(signed, Box::new(stmt)))
}

/// A recipient's answer in the `poros/1` form.
fn legacy_receipt(
    hub: &Hub,
    agency: &AgencyId,
    rec: &DocRecord,
    doc: DocumentId,
    receipt: SignedReceipt,
) -> Result<Answer> {
    if let Err(e) = hub.verify_agency(&receipt.0, RECEIPT_CONTEXT, agency) {
        anyhow::bail!("receipt from {agency} refused: {e}");
    }
    let r = receipt.receipt()?;
    if let Err(why) = check_receipt_statement(&r.as_statement(), agency, &doc, &rec.body_sha256) {
        anyhow::bail!("receipt from {agency} refused: {why}");
    }
    Ok(Answer::Legacy(match r.outcome.rejection() {
        None => DeliveryState::Delivered(receipt),
        Some(why) => DeliveryState::Rejected(receipt, why.to_string()),
    }))
}

async fn relay_one(
    _hub: &Arc<Hub>,
    sender: &AgencyId,
    conn: &quinn::Connection,
    doc: DocumentId,
    recipient: &AgencyId,
    item: RelayItem,
) -> Result<()> {
    let frame = match item {
        RelayItem::Receipt(receipt) => Frame::RelayReceipt { receipt },
        RelayItem::Notice(notice) => Frame::Notice { notice },
    };
    match poros_transport::request(conn, &frame).await? {
        Frame::Ack { doc_id } if doc_id == doc => {}
        Frame::Refused(r) => {
            // The sender's agent checked and refused it; retrying cannot change that.
            warn!(doc = %doc, recipient = %recipient, refusal = %r, "sender refused a relayed answer; dropping it");
        }
        _ => anyhow::bail!("sender answered a relay with an unexpected frame"),
    }
    _hub.store
        .relay_done(sender.clone(), doc, recipient.clone())
        .await?;
    debug!(doc = %doc, recipient = %recipient, "answer relayed to sender");
    Ok(())
}
