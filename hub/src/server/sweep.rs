//! Sweepers: expiry of deliveries pending too long, release of bodies past retention, and
//! removal of stored bodies no document references.

use crate::hub::{now_ms, Hub};
use crate::state::{Answer, AnswerOutcome};
use anyhow::Result;
use poros_protocol::{HubNotice, NoticeKind};
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Periodically expires deliveries pending too long and removes bodies past retention.
pub(super) async fn sweeper(hub: Arc<Hub>) {
    let every = Duration::from_secs(hub.cfg.delivery.sweep_interval_secs);
    loop {
        if let Err(e) = sweep_once(&hub).await {
            warn!(error = %e, "sweep failed");
        }
        tokio::time::sleep(every).await;
    }
}

/// At start and then periodically, removes stored bodies that no document references and that
/// are older than the grace period (a crash between storing a body and its document, or a
/// retention pass that committed but did not get to remove the body).
pub(super) async fn orphan_sweeper(hub: Arc<Hub>) {
    let every = Duration::from_secs(hub.cfg.delivery.orphan_sweep_interval_secs);
    loop {
        if let Err(e) = sweep_orphans(&hub).await {
            warn!(error = %e, "orphan body sweep failed");
        }
        tokio::time::sleep(every).await;
    }
}

/// One orphan sweep over the hub's stored bodies.
pub async fn sweep_orphans(hub: &Arc<Hub>) -> Result<poros_store::SweepReport> {
    let grace = Duration::from_secs(hub.cfg.delivery.orphan_grace_secs);
    let report = hub.bodies.sweep_unreferenced(grace).await?;
    if report.removed > 0 {
        info!(
            removed = report.removed,
            bytes = report.removed_bytes,
            examined = report.examined,
            "unreferenced body files removed"
        );
    }
    Ok(report)
}

/// One expiry and retention pass.
pub async fn sweep_once(hub: &Arc<Hub>) -> Result<()> {
    let now = now_ms();
    // Connected agencies count as seen on every day they stay connected.
    hub.mark_seen(hub.connected_agencies(), now).await?;
    hub.retire_expired_overlaps(now).await?;
    hub.store.compact_counters().await?;
    let cutoff = now.saturating_sub(hub.cfg.delivery.expiry_secs.saturating_mul(1000));
    for (doc, rcpt) in hub.store.expired_before(cutoff, 10_000).await? {
        let Some(rec) = hub.store.doc(&doc).await? else {
            continue;
        };
        let notice = HubNotice {
            doc_id: doc,
            sender: rec.sender.clone(),
            recipient: rcpt.clone(),
            kind: NoticeKind::Expired,
            time_ms: now,
        }
        .as_statement();
        let signed = hub.sign_statement(&notice)?;
        let answer = Answer::Said(signed, Box::new(notice));
        let outcome = hub
            .store
            .record_answer(doc, rcpt.clone(), answer, now)
            .await?;
        if let AnswerOutcome::Recorded { sender } = outcome {
            hub.delays.clear(doc, &rcpt);
            info!(doc = %doc, recipient = %rcpt, sender = %sender, "delivery expired");
            hub.wake(&sender);
        }
    }
    let cutoff = now.saturating_sub(hub.cfg.delivery.body_retention_secs.saturating_mul(1000));
    for digest in hub.store.release_bodies(cutoff, 10_000).await? {
        // Unless a document accepted meanwhile took a new reference to the same content.
        if hub.bodies.remove_released(&digest).await? {
            debug!(digest = %hex::encode(digest), "body removed after retention");
        }
    }
    Ok(())
}
