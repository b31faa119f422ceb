//! Work items of one kind in flight on a connection, so a queue scan skips what is already
//! being sent and a failed item waits before it is tried again.

use anyhow::Result;
use poros_protocol::DocumentId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{warn, Instrument};

/// Work items of one kind in flight on a connection: a scan skips them until they finish.
/// Clones share the set (the pusher's deliveries are also claimed by a cut-through forward).
pub(crate) struct InFlight<K>(Arc<Mutex<HashSet<K>>>);

impl<K> Clone for InFlight<K> {
    fn clone(&self) -> Self {
        InFlight(self.0.clone())
    }
}

impl<K: Clone + Eq + std::hash::Hash + Send + 'static> InFlight<K> {
    pub(crate) fn new() -> Self {
        InFlight(Arc::default())
    }

    /// The items to skip in the next scan.
    pub(crate) fn snapshot(&self) -> HashSet<K> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Run `work` for `key` while holding `permit`, unless `key` is in flight already (then
    /// nothing runs, the permit is given back and `false` is returned: a scan that raced with
    /// another claim of the same item does not send it twice). A failed attempt waits before
    /// the item may be picked up again, so a broken item is retried every few seconds, not in
    /// a loop; the pusher is woken when the item is done either way.
    pub(crate) fn spawn(
        &self,
        key: K,
        doc: DocumentId,
        what: &'static str,
        permit: tokio::sync::OwnedSemaphorePermit,
        wake: &Arc<Notify>,
        work: impl std::future::Future<Output = Result<()>> + Send + 'static,
    ) -> bool {
        let fresh = self.0.lock().map(|mut s| s.insert(key.clone()));
        if matches!(fresh, Ok(false)) {
            return false;
        }
        let (set, wake) = (self.0.clone(), wake.clone());
        tokio::spawn(
            async move {
                if let Err(e) = work.await {
                    warn!(doc = %doc, error = %e, "{what} attempt failed; will retry");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                if let Ok(mut s) = set.lock() {
                    s.remove(&key);
                }
                drop(permit);
                wake.notify_one();
            }
            .in_current_span(),
        );
        true
    }
}
