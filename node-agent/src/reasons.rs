//! Why a sent document is still pending although it is being retried: the hub's last
//! temporary refusal of its submission, or the hub's `Delayed` notice for one recipient.
//!
//! Kept in memory beside the durable status, never in place of it: these reasons are
//! advisory, must never overwrite an answer, and are learnt again on the next attempt after
//! a restart. Keeping them out of the store also means they can be shown when the agent's
//! own disk is what is full.

use poros_protocol::{AgencyId, DocumentId};
use std::collections::HashMap;
use std::sync::Mutex;

/// The reasons known now, per document (submission) and per delivery.
#[derive(Default)]
pub struct PendingReasons {
    submit: Mutex<HashMap<DocumentId, String>>,
    delivery: Mutex<HashMap<(DocumentId, AgencyId), String>>,
}

impl PendingReasons {
    /// The hub refused the submission for now (it is retried).
    pub fn submission_refused(&self, doc: DocumentId, reason: String) {
        if let Ok(mut m) = self.submit.lock() {
            m.insert(doc, reason);
        }
    }

    /// The hub accepted (or finally refused) the submission.
    pub fn submission_done(&self, doc: DocumentId) {
        if let Ok(mut m) = self.submit.lock() {
            m.remove(&doc);
        }
    }

    /// The hub reported that delivery to `rcpt` is delayed (it is retried).
    pub fn delayed(&self, doc: DocumentId, rcpt: AgencyId, reason: String) {
        if let Ok(mut m) = self.delivery.lock() {
            m.insert((doc, rcpt), reason);
        }
    }

    /// `rcpt` answered, or the delivery ended.
    pub fn answered(&self, doc: DocumentId, rcpt: &AgencyId) {
        if let Ok(mut m) = self.delivery.lock() {
            m.remove(&(doc, rcpt.clone()));
        }
    }

    /// Why delivery of `doc` to `rcpt` has not happened yet, if known.
    pub fn reason(&self, doc: DocumentId, rcpt: &AgencyId) -> Option<String> {
        let delivery = self
            .delivery
            .lock()
            .ok()
            .and_then(|m| m.get(&(doc, rcpt.clone())).cloned());
        delivery.or_else(|| self.submit.lock().ok()?.get(&doc).cloned())
    }
}
