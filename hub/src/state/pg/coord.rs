//! Coordination of hub instances through PostgreSQL: agency leases in `agency_leases`, and
//! events as NOTIFY on one channel, heard by one listening connection per instance.
//!
//! A lease is claimed with one upsert that only succeeds when the row is free, ours, or run
//! out (the database's clock decides, so the instances' clocks do not matter). Events carry
//! the sending instance, so an instance ignores its own. A listening connection that is lost
//! (a failover) is made again, and a `Resync` tells the hub that events may have been missed.

use super::PgStore;
use crate::state::{HubEvent, NodeChange, NodeRecord, RecoveryPoint};
use poros_protocol::AgencyId;
use poros_store::StoreError;
use std::time::Duration;
use tokio::sync::broadcast;
use tracing::{debug, info};

/// The NOTIFY channel.
pub(crate) const CHANNEL: &str = "poros_events";

impl PgStore {
    pub(crate) async fn claim_lease(
        &self,
        agency: &AgencyId,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let ttl_ms = ttl.as_millis() as f64;
        let row = client
            .query_opt(
                "INSERT INTO agency_leases (agency, holder, expires_at) \
                 VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3::float8 / 1000)) \
                 ON CONFLICT (agency) DO UPDATE \
                 SET holder = excluded.holder, expires_at = excluded.expires_at \
                 WHERE agency_leases.holder = excluded.holder \
                    OR agency_leases.expires_at < clock_timestamp() \
                 RETURNING holder",
                &[&agency.as_str(), &holder, &ttl_ms],
            )
            .await
            .map_err(|e| self.sql_error("claim agency lease", e))?;
        Ok(row.is_some())
    }

    pub(crate) async fn release_lease(
        &self,
        agency: &AgencyId,
        holder: &str,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM agency_leases WHERE agency = $1 AND holder = $2",
                &[&agency.as_str(), &holder],
            )
            .await
            .map_err(|e| self.sql_error("release agency lease", e))?;
        Ok(())
    }

    pub(crate) async fn notify(&self, event: &HubEvent) -> Result<(), StoreError> {
        let client = self.client().await?;
        let payload = format!("{}\n{}", self.instance(), event.encode());
        client
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
            .await
            .map_err(|e| self.sql_error("publish event", e))?;
        Ok(())
    }
}

impl PgStore {
    /// One of the store's pooled connections, with the session settings every hub session
    /// has (`idle_in_transaction_session_timeout`, `lock_timeout`, the application name):
    /// for tests that check what the server does to a hub instance's session, e.g. one
    /// stopped inside a transaction.
    #[doc(hidden)]
    pub async fn pooled_session(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.client().await
    }
}

/// Listen for the other instances' events until the returned task is aborted (the store is
/// dropped), connecting again after a lost connection (and then telling the hub to
/// resynchronise).
pub(crate) fn spawn_listener(
    cfg: tokio_postgres::Config,
    instance: String,
    events: broadcast::Sender<HubEvent>,
) -> tokio::task::AbortHandle {
    tokio::spawn(async move {
        let mut first = true;
        let mut backoff = Duration::from_millis(100);
        loop {
            let lost = listen_once(&cfg, &instance, &events, first).await;
            debug!(error = %lost, "event listener connection lost; connecting again");
            if !first {
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            first = false;
            tokio::time::sleep(backoff).await;
        }
    })
    .abort_handle()
}

/// One listening connection, until it is lost; returns why.
async fn listen_once(
    cfg: &tokio_postgres::Config,
    instance: &str,
    events: &broadcast::Sender<HubEvent>,
    first: bool,
) -> String {
    use futures_util::StreamExt;
    let (client, mut connection) = match cfg.connect(tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<String, String>>();
    let pump = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(m) = stream.next().await {
            let item = match m {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => Ok(n.payload().to_string()),
                Ok(_) => continue,
                Err(e) => Err(e.to_string()),
            };
            let end = item.is_err();
            if tx.send(item).is_err() || end {
                return;
            }
        }
        let _ = tx.send(Err("the server closed the connection".into()));
    });
    if let Err(e) = client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
        pump.abort();
        return e.to_string();
    }
    if !first {
        info!("event listener connected again");
        // What was published while nobody listened is lost: the hub reloads.
        let _ = events.send(HubEvent::Resync);
    }
    let why = loop {
        match rx.recv().await {
            Some(Ok(payload)) => {
                let Some((from, event)) = payload.split_once('\n') else {
                    continue;
                };
                if from == instance {
                    continue;
                }
                if let Some(ev) = HubEvent::decode(event) {
                    // No receiver yet (the hub is still starting) is fine.
                    let _ = events.send(ev);
                }
            }
            Some(Err(e)) => break e,
            None => break "the listening connection ended".to_string(),
        }
    };
    pump.abort();
    why
}

#[async_trait::async_trait]
impl crate::state::CoordinationBackend for PgStore {
    fn holder(&self) -> String {
        self.instance().to_string()
    }

    async fn claim_agency(
        &self,
        agency: &AgencyId,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.claim_lease(agency, holder, ttl).await
    }

    async fn release_agency(&self, agency: &AgencyId, holder: &str) -> Result<(), StoreError> {
        self.release_lease(agency, holder).await
    }

    async fn publish(&self, event: HubEvent) -> Result<(), StoreError> {
        self.notify(&event).await
    }

    fn events(&self) -> Option<broadcast::Receiver<HubEvent>> {
        Some(self.subscribe())
    }

    async fn node(&self, agency: &AgencyId) -> Result<Option<NodeRecord>, StoreError> {
        let (store, agency) = (self.clone(), agency.to_string());
        self.read("node", move |tx| {
            Box::pin(
                async move { super::registry::node_in(tx, &store, "node", &agency, false).await },
            )
        })
        .await
    }

    async fn modify_node(
        &self,
        agency: AgencyId,
        change: NodeChange,
    ) -> Result<Option<NodeRecord>, StoreError> {
        let store = self.clone();
        let change = std::sync::Arc::new(change);
        self.write("modify node", move |tx| {
            let (store, agency, change) = (store.clone(), agency.clone(), change.clone());
            Box::pin(async move {
                let op = "modify node";
                let Some(mut rec) =
                    super::registry::node_in(tx, &store, op, agency.as_str(), true).await?
                else {
                    return Ok(None);
                };
                change(&mut rec);
                super::registry::put_node_in(tx, &store, op, &rec).await?;
                Ok(Some(rec))
            })
        })
        .await
    }

    async fn recovery_point(&self) -> Result<Option<RecoveryPoint>, StoreError> {
        let store = self.clone();
        self.read("recovery point", move |tx| {
            Box::pin(async move {
                let row = tx
                    .query_opt("SELECT epoch, snapshot_ms FROM recovery_point", &[])
                    .await
                    .map_err(|e| store.sql_error("recovery point", e))?;
                Ok(row.map(|r| RecoveryPoint {
                    epoch: r.get::<_, i64>(0) as u64,
                    snapshot_ms: r.get::<_, i64>(1) as u64,
                }))
            })
        })
        .await
    }

    async fn mark_restored(&self, point: RecoveryPoint) -> Result<(), StoreError> {
        let store = self.clone();
        self.write("mark restored", move |tx| {
            let store = store.clone();
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO recovery_point (one, epoch, snapshot_ms) VALUES (true, $1, $2)
                     ON CONFLICT (one) DO UPDATE SET epoch = $1, snapshot_ms = $2",
                    &[&(point.epoch as i64), &(point.snapshot_ms as i64)],
                )
                .await
                .map_err(|e| store.sql_error("mark restored", e))?;
                Ok(())
            })
        })
        .await
    }
}
