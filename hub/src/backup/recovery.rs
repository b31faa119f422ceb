//! After a restore: what the backup lacks, and how the network gives it back.
//!
//! A backup taken at time T holds every document the hub accepted before T (with its
//! deliveries, answers, relays and statements as they stood at T). The hub may have accepted
//! more between T and the loss of its store; each of those has a sender that holds the
//! document, its body and the hub's signed acceptance. The restored store carries a
//! [`RecoveryPoint`]; at every connection the hub sends the agent a `Resync` naming the
//! restore and T less [`crate::state::snapshot::RECOVERY_MARGIN_MS`], and the agent queues
//! again, once per restore, every document the hub accepted from then on. The hub takes a
//! document it holds already as the same document and one it lost as new, so each is
//! delivered; a recipient that had it already answers with its original receipt.

use crate::state::RecoveryPoint;
use poros_protocol::{AgencyId, Frame};
use std::time::Duration;
use tracing::{info, warn};

/// How long an agent has to queue its documents again and answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// Ask a connected agent to submit again what it sent since the backup.
pub(crate) async fn ask_again(agency: AgencyId, conn: quinn::Connection, point: RecoveryPoint) {
    let ask = Frame::Resync {
        epoch: point.epoch,
        since_ms: point.since_ms(),
    };
    match tokio::time::timeout(ANSWER_WITHIN, poros_transport::request(&conn, &ask)).await {
        Ok(Ok(Frame::Ack { .. })) => {
            info!(agency = %agency, since_ms = point.since_ms(), "agent asked to submit again what it sent since the backup")
        }
        Ok(Ok(Frame::Refused(r))) => {
            warn!(agency = %agency, refusal = %r, "agent cannot submit again what it sent since the backup (an agent before this version?)")
        }
        Ok(Ok(other)) => {
            warn!(agency = %agency, answer = ?other, "unexpected answer to a resync request")
        }
        Ok(Err(e)) => {
            warn!(agency = %agency, error = %e, "resync request failed; asked again at the next connection")
        }
        Err(_) => {
            warn!(agency = %agency, "resync request unanswered; asked again at the next connection")
        }
    }
}

/// `poros-hub resync`: the deployment's state was brought back to `since_ms` by other means
/// than `poros-hub restore` (PostgreSQL recovered to a point in time, a dump restored, an
/// embedded store copied back from a file backup). Records a new [`RecoveryPoint`] in the
/// store, so every hub instance that starts on it asks each agent at connect to submit again
/// what the hub accepted from then on. Needs the hub stopped (an embedded store is locked by
/// a running hub; instances on PostgreSQL read the mark when they start).
pub async fn mark(
    dir: &std::path::Path,
    since_ms: u64,
) -> anyhow::Result<(RecoveryPoint, &'static str)> {
    use anyhow::Context;
    let now = crate::hub::now_ms();
    if since_ms > now {
        anyhow::bail!("--since is in the future: the state cannot hold what was not yet accepted");
    }
    let paths = crate::deployment::HubPaths::new(dir);
    let cfg = poros_config::HubConfig::load(&paths.config())?;
    let (store, _) = crate::hub::open_store(&paths, &cfg)
        .await
        .context("opening the hub's store (stop every hub on it first)")?;
    let point = RecoveryPoint::new(since_ms)?;
    store.mark_restored(point).await?;
    info!(
        epoch = point.epoch,
        since_ms = point.since_ms(),
        backend = store.kind(),
        "state marked as restored: agents submit again what the hub accepted since"
    );
    Ok((point, store.kind()))
}
