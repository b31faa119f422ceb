//! Deliveries a recipient refused for a temporary reason (e.g. its storage is full): the
//! last reason per delivery, and the non-final `Delayed` notice that tells the sender.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poros_protocol::{AgencyId, DelayReason, DocumentId, Frame, HubNotice, NoticeKind};
use poros_transport::{now_ms, read_frame, write_frame};
use tracing::{debug, warn};

use crate::server::Hub;

/// How long telling a sender may take before the next failed attempt tries again.
const TELL_TIMEOUT: Duration = Duration::from_secs(5);

/// The last temporary failure of each delivery still being retried. In memory only: the
/// notice is advisory, and after a restart the next failed attempt sets it again.
#[derive(Default)]
pub struct Delays {
    last: Mutex<HashMap<(DocumentId, AgencyId), Last>>,
}

struct Last {
    reason: DelayReason,
    /// Whether the sender's agent acknowledged a notice with this reason.
    told: bool,
}

impl Delays {
    /// Remembers `reason`; true when the sender still has to be told it.
    fn record(&self, doc: DocumentId, rcpt: &AgencyId, reason: DelayReason) -> bool {
        let Ok(mut m) = self.last.lock() else {
            return false;
        };
        let e = m.entry((doc, rcpt.clone())).or_insert(Last {
            reason,
            told: false,
        });
        if e.reason != reason {
            *e = Last {
                reason,
                told: false,
            };
        }
        !e.told
    }

    fn told(&self, doc: DocumentId, rcpt: &AgencyId, reason: DelayReason) {
        if let Ok(mut m) = self.last.lock() {
            if let Some(e) = m.get_mut(&(doc, rcpt.clone())) {
                e.told |= e.reason == reason;
            }
        }
    }

    /// Forgets the delivery once it is answered.
    pub fn clear(&self, doc: DocumentId, rcpt: &AgencyId) {
        if let Ok(mut m) = self.last.lock() {
            m.remove(&(doc, rcpt.clone()));
        }
    }

    /// Why the delivery's last attempt failed, if it was refused for a temporary reason.
    pub fn reason(&self, doc: DocumentId, rcpt: &AgencyId) -> Option<DelayReason> {
        let m = self.last.lock().ok()?;
        m.get(&(doc, rcpt.clone())).map(|l| l.reason)
    }
}

/// Records that `rcpt` refused `doc` for `reason`, and tells the sender if it does not know.
pub(crate) async fn delayed(
    hub: &Arc<Hub>,
    doc: DocumentId,
    sender: &AgencyId,
    rcpt: &AgencyId,
    reason: DelayReason,
) {
    hub.metrics.delay(reason);
    if !hub.delays.record(doc, rcpt, reason) {
        return;
    }
    // Not connected: the next failed attempt tries again.
    let Some(conn) = hub.connection_of(sender) else {
        return;
    };
    let notice = match hub.sign_notice(&HubNotice {
        doc_id: doc,
        sender: sender.clone(),
        recipient: rcpt.clone(),
        kind: NoticeKind::Delayed { reason },
        time_ms: now_ms(),
    }) {
        Ok(n) => n,
        Err(e) => {
            warn!(doc = %doc, error = %e, "cannot sign a delay notice");
            return;
        }
    };
    let tell = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(&mut send, &Frame::Notice { notice }).await?;
        send.finish()?;
        match read_frame(&mut recv).await? {
            Frame::Ack { doc_id } if doc_id == doc => Ok(()),
            other => anyhow::bail!("sender answered a delay notice with {other:?}"),
        }
    };
    match tokio::time::timeout(TELL_TIMEOUT, tell).await {
        Ok(Ok(())) => {
            hub.delays.told(doc, rcpt, reason);
            debug!(doc = %doc, recipient = %rcpt, %reason, "sender told of the delay");
        }
        Ok(Err(e)) => warn!(doc = %doc, error = %e, "telling the sender of a delay failed"),
        Err(_) => warn!(doc = %doc, "telling the sender of a delay timed out"),
    }
}
