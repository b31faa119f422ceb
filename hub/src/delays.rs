//! Deliveries a recipient refused for a temporary reason (e.g. its storage is full): the
//! last reason per delivery, and the non-final `Delayed` notice that tells the sender.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poros_protocol::{AgencyId, DelayReason, DocumentId, Frame, HubNotice, NoticeKind};
use poros_transport::{now_ms, request};
use tracing::{debug, warn};

use crate::hub::Hub;

/// How long telling a sender may take before the next failed attempt tries again.
const TELL_TIMEOUT: Duration = Duration::from_secs(5);

/// A sender already told is told again after this long (its agent keeps delays in memory
/// only, so a restarted agent learns them again), but not on every 2-second retry.
const RETELL_AFTER: Duration = Duration::from_secs(60);

/// The last temporary failure of each delivery still being retried. In memory only: the
/// notice is advisory, and after a restart the next failed attempt sets it again.
#[derive(Default)]
pub struct Delays {
    last: Mutex<HashMap<(DocumentId, AgencyId), Last>>,
}

struct Last {
    reason: DelayReason,
    /// When the sender's agent last acknowledged a notice with this reason.
    told: Option<Instant>,
}

impl Delays {
    /// Remembers `reason`; true when the sender has to be told it (now, at `now`).
    fn record(&self, doc: DocumentId, rcpt: &AgencyId, reason: DelayReason, now: Instant) -> bool {
        let Ok(mut m) = self.last.lock() else {
            return false;
        };
        let e = m
            .entry((doc, rcpt.clone()))
            .or_insert(Last { reason, told: None });
        if e.reason != reason {
            *e = Last { reason, told: None };
        }
        e.told
            .is_none_or(|t| now.saturating_duration_since(t) >= RETELL_AFTER)
    }

    fn told(&self, doc: DocumentId, rcpt: &AgencyId, reason: DelayReason, now: Instant) {
        if let Ok(mut m) = self.last.lock() {
            if let Some(e) = m.get_mut(&(doc, rcpt.clone())) {
                if e.reason == reason {
                    e.told = Some(now);
                }
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
    if !hub.delays.record(doc, rcpt, reason, Instant::now()) {
        return;
    }
    // Not connected: the next failed attempt tries again.
    let Some(conn) = hub.connection_of(sender) else {
        return;
    };
    let notice = HubNotice {
        doc_id: doc,
        sender: sender.clone(),
        recipient: rcpt.clone(),
        kind: NoticeKind::Delayed { reason },
        time_ms: now_ms(),
    };
    // Told live, not queued (it is advisory): as a statement, or in the `poros/1` form.
    let frame = if crate::statements::speaks_statements(&conn) {
        hub.sign_statement(&notice.as_statement())
            .map(|statement| Frame::Statement { statement })
    } else {
        hub.sign_notice(&notice)
            .map(|notice| Frame::Notice { notice })
    };
    let frame = match frame {
        Ok(f) => f,
        Err(e) => {
            warn!(doc = %doc, error = %e, "cannot sign a delay notice");
            return;
        }
    };
    let tell = async {
        match request(&conn, &frame).await? {
            Frame::Ack { doc_id } if doc_id == doc => Ok(()),
            other => anyhow::bail!("sender answered a delay notice with {other:?}"),
        }
    };
    match tokio::time::timeout(TELL_TIMEOUT, tell).await {
        Ok(Ok(())) => {
            hub.delays.told(doc, rcpt, reason, Instant::now());
            debug!(doc = %doc, recipient = %rcpt, %reason, "sender told of the delay");
        }
        Ok(Err(e)) => warn!(doc = %doc, error = %e, "telling the sender of a delay failed"),
        Err(_) => warn!(doc = %doc, "telling the sender of a delay timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_is_told_each_new_reason_once_then_again_only_after_a_while() {
        let d = Delays::default();
        let (doc, b) = (
            DocumentId::new_v7(1, [1; 10]),
            AgencyId::parse("000.00.00.G02").expect("agency"),
        );
        let t0 = Instant::now();
        let full = DelayReason::RecipientStorageFull;
        assert!(d.record(doc, &b, full, t0), "first delay: tell");
        assert!(d.record(doc, &b, full, t0), "not told yet: tell again");
        d.told(doc, &b, full, t0);
        assert!(!d.record(doc, &b, full, t0 + Duration::from_secs(2)));
        assert!(
            d.record(doc, &b, full, t0 + RETELL_AFTER),
            "told again later"
        );
        let other = DelayReason::RecipientUnavailable;
        assert!(d.record(doc, &b, other, t0), "a new reason is told at once");
        assert_eq!(d.reason(doc, &b), Some(other));
        d.clear(doc, &b);
        assert_eq!(d.reason(doc, &b), None);
    }
}
