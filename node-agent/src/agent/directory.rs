//! The agency directory: asked of the hub over the agent's connection, page by page, and
//! kept in memory; a stale copy stands in for it while the hub cannot be reached.

use super::{now_ms, Agent};
use poros_protocol::directory::MAX_ENTRIES;
use poros_protocol::{AgencyId, DirectoryEntry, Frame};
use std::time::Duration;
use tracing::{debug, warn};

/// How long one whole fetch (every page) may take before it counts as the hub being
/// unreachable.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The hub's agency directory as this agent holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directory {
    /// Every registered agency, in code order.
    pub entries: Vec<DirectoryEntry>,
    /// When this copy was fetched from the hub, Unix ms.
    pub fetched_ms: u64,
    /// True when the hub could not be reached and this is the copy fetched earlier.
    pub stale: bool,
}

impl Directory {
    /// The entry of `code`, if registered.
    pub fn get(&self, code: &AgencyId) -> Option<&DirectoryEntry> {
        self.entries
            .binary_search_by(|e| e.code.cmp(code))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// Why the directory could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No hub connection now, and no copy fetched earlier.
    #[error("not connected to the hub, and no copy of the agency directory is held")]
    NotConnected,
    /// The hub answered with a refusal (a hub older than the directory refuses the request
    /// as malformed).
    #[error("the hub refused the agency directory: {0}")]
    Refused(String),
    /// The request failed on the way (connection lost, timeout, an answer that breaks the
    /// paging rules), and no copy fetched earlier is held.
    #[error("fetching the agency directory from the hub failed: {0}")]
    Io(String),
}

/// The last directory fetched. The lock is held across a fetch, so callers arriving
/// meanwhile wait for that fetch instead of each asking the hub.
#[derive(Default)]
pub(crate) struct DirectoryCache(tokio::sync::Mutex<Option<Directory>>);

impl Agent {
    /// The hub's agency directory; fetched over the hub connection, cached in memory,
    /// refetched when older than `max_age` (the cache survives a lost connection: a stale
    /// copy is returned with `stale = true` rather than failing when the hub is unreachable
    /// and a copy exists).
    pub async fn directory(&self, max_age: Duration) -> Result<Directory, DirectoryError> {
        let mut cache = self.directory_cache.0.lock().await;
        if let Some(d) = cache.as_ref() {
            let age = now_ms().saturating_sub(d.fetched_ms);
            if u128::from(age) < max_age.as_millis() {
                return Ok(Directory {
                    stale: false,
                    ..d.clone()
                });
            }
        }
        let conn = self.conn.borrow().clone();
        let fetched = match conn {
            None => Err(DirectoryError::NotConnected),
            Some(conn) => match tokio::time::timeout(FETCH_TIMEOUT, fetch(&conn)).await {
                Ok(r) => r,
                Err(_) => Err(DirectoryError::Io(format!(
                    "no complete answer within {} s",
                    FETCH_TIMEOUT.as_secs()
                ))),
            },
        };
        match fetched {
            Ok(entries) => {
                debug!(agency = %self.cfg.agency, entries = entries.len(), "agency directory fetched");
                let d = Directory {
                    entries,
                    fetched_ms: now_ms(),
                    stale: false,
                };
                *cache = Some(d.clone());
                Ok(d)
            }
            Err(e @ (DirectoryError::NotConnected | DirectoryError::Io(_))) => {
                match cache.as_ref() {
                    Some(d) => {
                        warn!(agency = %self.cfg.agency, error = %e, "agency directory: hub unreachable, using the copy held");
                        Ok(Directory {
                            stale: true,
                            ..d.clone()
                        })
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Every page of the directory, in order. The hub must give entries in strictly increasing
/// code order and each page's cursor must be its last code, so the walk always advances and
/// ends; at most [`MAX_ENTRIES`] are taken.
async fn fetch(conn: &quinn::Connection) -> Result<Vec<DirectoryEntry>, DirectoryError> {
    let io = DirectoryError::Io;
    let mut all: Vec<DirectoryEntry> = Vec::new();
    let mut after: Option<AgencyId> = None;
    loop {
        let ask = Frame::DirectoryRequest {
            after: after.clone(),
        };
        let answer = poros_transport::request(conn, &ask)
            .await
            .map_err(|e| io(e.to_string()))?;
        let (entries, next) = match answer {
            Frame::DirectoryPage { entries, next } => (entries, next),
            Frame::Refused(r) => return Err(DirectoryError::Refused(r.to_string())),
            other => {
                let name = format!("{other:?}");
                let name = name
                    .split([' ', '(', '{'])
                    .next()
                    .unwrap_or("?")
                    .to_string();
                return Err(io(format!("the hub answered with {name}")));
            }
        };
        for e in entries {
            if all.last().map(|l| &l.code).or(after.as_ref()) >= Some(&e.code) {
                return Err(io(format!("the hub sent {} out of code order", e.code)));
            }
            if all.len() == MAX_ENTRIES {
                return Err(io(format!("the hub sent more than {MAX_ENTRIES} agencies")));
            }
            all.push(e);
        }
        match next {
            None => return Ok(all),
            Some(n) if Some(&n) == all.last().map(|l| &l.code) && Some(&n) != after.as_ref() => {
                after = Some(n)
            }
            Some(n) => {
                return Err(io(format!(
                    "the hub's page cursor {n} is not the page's last agency"
                )))
            }
        }
    }
}
