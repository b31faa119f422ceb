//! Node lifecycle on the running hub: registration (token or offline requests), enrolment,
//! suspension, resumption, revocation (CRLs, live connections, pushes to agents) and renewal.
//! Every change is recorded in the audit log in the same commit as the change.

use crate::hub::{close, limits, now_ms, Hub};
use crate::state::{
    AuditRecord, HubBackend, HubEvent, NodeChanged, NodeEdit, NodeRecord, NodeState, Superseded,
};
use anyhow::{bail, Context, Result};
use poros_certs::SignerSubject;
use poros_protocol::{AgencyId, Credentials, EnrollToken, Frame, Refusal, RefusalCode};
use std::sync::Arc;
use time::OffsetDateTime;
use tracing::{debug, info, warn};

/// How often a lifecycle change reads the node's record and decides again after finding it
/// changed under it (another admin acted on the node meanwhile, perhaps through another hub
/// instance) before giving up.
const CHANGE_ATTEMPTS: usize = 5;

/// The error of a change that found the record changed under it every time.
fn gave_up(changed: Option<NodeChanged>, action: &str) -> anyhow::Error {
    let what = format!("{action}: the node's record kept changing while deciding; try again");
    match changed {
        Some(c) => anyhow::Error::new(c).context(what),
        None => anyhow::anyhow!(what),
    }
}

/// An administrator's change of a node's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateChange {
    /// Active → suspended: refused at the handshake, its deliveries held.
    Suspend,
    /// Suspended → active.
    Resume,
    /// Any state but revoked → revoked: its certificates on the CRLs for good.
    Revoke,
}

impl StateChange {
    /// The action's name in the audit log and in messages.
    pub fn name(self) -> &'static str {
        match self {
            StateChange::Suspend => "suspend",
            StateChange::Resume => "resume",
            StateChange::Revoke => "revoke",
        }
    }

    /// The state this change leads to from `from`, or why it does not apply.
    pub fn decide(self, agency: &AgencyId, from: NodeState) -> Result<NodeState> {
        let action = self.name();
        match (self, from) {
            (StateChange::Revoke, NodeState::Revoked) => {
                bail!("agency {agency} is already revoked")
            }
            (_, NodeState::Revoked) => bail!(
                "agency {agency} is revoked; cannot {action} it: its certificates are on the \
                 revocation lists for good"
            ),
            (StateChange::Revoke, _) => Ok(NodeState::Revoked),
            (StateChange::Suspend, NodeState::Active) => Ok(NodeState::Suspended),
            (StateChange::Resume, NodeState::Suspended) => Ok(NodeState::Active),
            (_, s) => bail!("agency {agency} is {s:?}; cannot {action}"),
        }
    }
}

/// Apply `change` to a node's stored record, with its audit record (and, for a revocation,
/// its serials on the revocation list) in one commit, and return the record written.
///
/// The record is read, the change decided from it, and written only over the record read: if
/// another admin changed the node meanwhile (perhaps through another hub instance), the
/// write is refused ([`NodeChanged`]) and the change is read and decided again, so a
/// suspension is never written over a revocation.
pub async fn change_node_state(
    store: &dyn HubBackend,
    agency: &AgencyId,
    change: StateChange,
    actor: &str,
) -> Result<NodeRecord> {
    let action = change.name();
    let mut changed = None;
    for _ in 0..CHANGE_ATTEMPTS {
        let read = store
            .node(agency)
            .await?
            .with_context(|| format!("agency {agency} is not registered"))?;
        let to = change.decide(agency, read.state)?;
        let mut rec = read.clone();
        rec.state = to;
        let written = if change == StateChange::Revoke {
            let detail = format!("revoked tls {} sign {}", rec.tls_serial, rec.sign_serial);
            let a = audit(actor, action, Some(agency), detail);
            store.revoke(rec, read, now_ms(), a).await?
        } else {
            let a = audit(
                actor,
                action,
                Some(agency),
                format!("{:?} -> {to:?}", read.state),
            );
            store.put_node_audited(rec, read, a).await?
        };
        match written {
            Ok(rec) => return Ok(rec),
            Err(c) => {
                debug!(agency = %agency, action, error = %c, "deciding again");
                changed = Some(c);
            }
        }
    }
    Err(gave_up(changed, action))
}

/// Certificates just issued for one node.
pub struct IssuedPair {
    /// What the agent receives.
    pub creds: Credentials,
    /// TLS certificate serial (hex).
    pub tls_serial: String,
    /// Signing certificate serial (hex).
    pub sign_serial: String,
    /// Validity start, Unix seconds.
    pub not_before: i64,
    /// Validity end, Unix seconds.
    pub not_after: i64,
}

impl IssuedPair {
    /// Record these certificates in the node's registry entry.
    fn stamp(&self, rec: &mut NodeRecord) {
        rec.tls_serial = self.tls_serial.clone();
        rec.sign_serial = self.sign_serial.clone();
        rec.tls_not_after = self.not_after;
        rec.tls_not_before = self.not_before;
    }

    /// The serials, as the audit log states them.
    fn serials(&self) -> String {
        format!("issued tls {} sign {}", self.tls_serial, self.sign_serial)
    }
}

fn audit(actor: &str, action: &str, agency: Option<&AgencyId>, detail: String) -> AuditRecord {
    AuditRecord {
        time_ms: now_ms(),
        actor: actor.to_string(),
        action: action.to_string(),
        agency: agency.cloned(),
        detail,
    }
}

/// An audit detail followed by the directory fields set at registration, if any.
fn with_details(detail: String, set: &str) -> String {
    if set.is_empty() {
        detail
    } else {
        format!("{detail}; {set}")
    }
}

fn refusal(code: RefusalCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

impl Hub {
    /// Issue a node's TLS and signing certificates from its requests, overwriting every
    /// policy field, valid for the configured lifetime.
    pub fn issue_pair(
        &self,
        agency: &AgencyId,
        tls_csr: &str,
        sign_csr: &str,
    ) -> Result<IssuedPair> {
        let now = OffsetDateTime::now_utc();
        let lifetime = self.cfg.enrolment.cert_lifetime_secs as i64;
        // Backdated a little for clock skew, but never by a large share of a short lifetime.
        let nb = now - time::Duration::seconds((lifetime / 10).min(300));
        let na = now + time::Duration::seconds(lifetime);
        let tls = self
            .keys
            .network_ca
            .issue_node_tls(tls_csr, agency, nb, na)
            .context("TLS certificate request")?;
        let sign = self
            .keys
            .signing_ca
            .issue_signing(sign_csr, &SignerSubject::Agency(agency.clone()), nb, na)
            .context("signing certificate request")?;
        let signing_crl = std::fs::read(self.paths.at("pki/signing.crl"))
            .with_context(|| format!("reading {}", self.paths.at("pki/signing.crl").display()))?;
        let hub_addr = self
            .endpoint
            .lock()
            .ok()
            .and_then(|e| e.as_ref().and_then(|e| e.local_addr().ok()))
            .map(|a| a.to_string())
            .unwrap_or_else(|| self.cfg.network.listen.to_string());
        Ok(IssuedPair {
            creds: Credentials {
                tls_cert: tls.pem,
                sign_cert: sign.pem,
                network_ca: self.keys.network_ca.cert_pem().to_string(),
                signing_ca: self.keys.signing_ca.cert_pem().to_string(),
                signing_crl,
                hub: hub_addr,
            },
            tls_serial: hex::encode(&tls.serial),
            sign_serial: hex::encode(&sign.serial),
            not_before: nb.unix_timestamp(),
            not_after: na.unix_timestamp(),
        })
    }

    fn refuse_existing(&self, agency: &AgencyId) -> Result<()> {
        match self.node(agency).map(|n| n.state) {
            Some(NodeState::Active) => bail!("agency {agency} is already registered and active"),
            Some(NodeState::Suspended) => {
                bail!("agency {agency} is registered and suspended; resume it instead")
            }
            Some(NodeState::Revoked) => {
                bail!("agency {agency} was revoked; a revoked agency cannot be re-registered")
            }
            Some(NodeState::Pending) | None => Ok(()),
        }
    }

    /// A new registry record with its directory fields (`details`, already validated), and
    /// the fields set, for the audit log. Its parent is checked against the registry here,
    /// before any certificate is issued for it, and again when it is stored.
    fn new_record(
        &self,
        agency: &AgencyId,
        name: &str,
        details: &NodeEdit,
    ) -> Result<(NodeRecord, String)> {
        let mut rec = NodeRecord::pending(agency, name, now_ms());
        let set = details.apply(&mut rec);
        if let Some(parent) = &rec.parent {
            let registered = self.node_count();
            poros_protocol::directory::check_parent(agency, parent, registered, |a| {
                self.node(a).map(|n| n.parent)
            })
            .map_err(crate::state::RegistryRefusal::from)?;
        }
        Ok((rec, set.join("; ")))
    }

    /// Store a new node (with its token, if it enrols by one) and its audit record; a parent
    /// the registry refuses is an error of type [`crate::state::RegistryRefusal`].
    async fn store_new_node(
        &self,
        rec: NodeRecord,
        token: Option<EnrollToken>,
        a: AuditRecord,
    ) -> Result<()> {
        self.store.add_node(rec, token, a).await??;
        Ok(())
    }

    /// Register a pending node and return a one-time enrolment token.
    pub async fn add_node_token(
        &self,
        agency: &AgencyId,
        name: &str,
        details: &NodeEdit,
        actor: &str,
    ) -> Result<String> {
        self.refuse_existing(agency)?;
        let addr = self
            .enroll_addr
            .lock()
            .ok()
            .and_then(|a| *a)
            .context("the enrolment endpoint is not listening")?;
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| anyhow::anyhow!("system random generator failed"))?;
        let token = EnrollToken {
            agency: agency.clone(),
            hub: addr.to_string(),
            server_name: self.cfg.enrolment.server_name.clone(),
            ca_pin: poros_protocol::sha256(self.keys.network_ca.cert_der()),
            secret: hex::encode(secret),
            expires_ms: now_ms() + self.cfg.enrolment.token_ttl_secs * 1000,
        };
        let (rec, set) = self.new_record(agency, name, details)?;
        let a = audit(
            actor,
            "node add",
            Some(agency),
            with_details(
                format!(
                    "pending; enrolment token expires at {} ms",
                    token.expires_ms
                ),
                &set,
            ),
        );
        self.store_new_node(rec.clone(), Some(token.clone()), a)
            .await?;
        self.cache_node(rec);
        info!(agency = %agency, "node registered; enrolment token issued");
        Ok(token.encode())
    }

    /// Register an active node from certificate requests (the offline flow).
    pub async fn add_node_offline(
        &self,
        agency: &AgencyId,
        name: &str,
        details: &NodeEdit,
        tls_csr: &str,
        sign_csr: &str,
        actor: &str,
    ) -> Result<Credentials> {
        self.refuse_existing(agency)?;
        let (mut rec, set) = self.new_record(agency, name, details)?;
        let issued = self.issue_pair(agency, tls_csr, sign_csr)?;
        rec.state = NodeState::Active;
        issued.stamp(&mut rec);
        let a = audit(
            actor,
            "node add",
            Some(agency),
            with_details(format!("active; {} from requests", issued.serials()), &set),
        );
        self.store_new_node(rec.clone(), None, a).await?;
        self.put_cached_and_apply(rec);
        info!(agency = %agency, "node registered from certificate requests");
        Ok(issued.creds)
    }

    /// Change a node's name and directory fields (`edit`, already validated), recording
    /// what changed. An unknown agency or a parent the registry refuses is an error of type
    /// [`crate::state::RegistryRefusal`]. Returns the updated record.
    pub async fn edit_node(
        &self,
        agency: &AgencyId,
        edit: NodeEdit,
        actor: &str,
    ) -> Result<NodeRecord> {
        let a = audit(actor, "node edit", Some(agency), String::new());
        let rec = self.store.edit_node(agency.clone(), edit, a).await??;
        self.cache_node(rec.clone());
        info!(agency = %agency, "node directory entry changed");
        Ok(rec)
    }

    /// A node's record as stored now: a change starts from it, not from the cache, which
    /// may not yet have another hub instance's change.
    async fn stored_node(&self, agency: &AgencyId) -> Result<Option<NodeRecord>> {
        Ok(self.store.node(agency).await?)
    }

    /// Cache and apply a record this hub changed, and tell the other hub instances.
    fn put_cached_and_apply(&self, rec: NodeRecord) {
        let agency = rec.agency.clone();
        self.apply_node(rec);
        if self.shared {
            let store = self.store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.publish(HubEvent::Registry(agency.clone())).await {
                    warn!(agency = %agency, error = %e, "announcing a registry change to the other hubs failed; they reload the registry when they resynchronise");
                }
            });
        }
    }

    /// A registry record changed through another hub instance: take it from the store, cut
    /// the agency's connection here if it is no longer active, and put the revocation lists
    /// in force (pushing the signing CRL to the agents connected here).
    pub(crate) async fn registry_changed_elsewhere(
        self: &Arc<Self>,
        agency: &AgencyId,
    ) -> Result<()> {
        if let Some(rec) = self.store.node(agency).await? {
            self.apply_node(rec);
        }
        self.reload_crls().await?;
        self.push_crl().await;
        Ok(())
    }

    /// Events may have been missed: reload every record and the revocation lists.
    pub(crate) async fn resync_registry(self: &Arc<Self>) -> Result<()> {
        for rec in self.store.nodes().await? {
            self.apply_node(rec);
        }
        self.reload_crls().await?;
        self.push_crl().await;
        self.wake_all_local();
        Ok(())
    }

    /// Cache a record and apply it to this hub's connections.
    fn apply_node(&self, rec: NodeRecord) {
        let agency = rec.agency.clone();
        let active = rec.state == NodeState::Active;
        self.cache_node(rec);
        if !active {
            if let Some((_, c)) = self.connections().into_iter().find(|(a, _)| a == &agency) {
                c.close(close::NOT_ACTIVE.into(), b"agency is no longer active");
            }
        } else {
            self.wake(&agency);
        }
    }

    /// Redeem an enrolment token: every failure is recorded and answered with its own reason.
    pub async fn enrol(
        &self,
        agency: &AgencyId,
        secret: &str,
        tls_csr: &str,
        sign_csr: &str,
        actor: &str,
    ) -> Result<Credentials, Refusal> {
        let outcome = self
            .try_enrol(agency, secret, tls_csr, sign_csr, actor)
            .await;
        if let Err(r) = &outcome {
            warn!(agency = %agency, reason = %r.message, "enrolment refused");
            let _ = self
                .store
                .audit(audit(
                    actor,
                    "enrol refused",
                    Some(agency),
                    r.message.clone(),
                ))
                .await;
        }
        outcome
    }

    async fn try_enrol(
        &self,
        agency: &AgencyId,
        secret: &str,
        tls_csr: &str,
        sign_csr: &str,
        actor: &str,
    ) -> Result<Credentials, Refusal> {
        let bad = |m: &str| refusal(RefusalCode::BadToken, m);
        let tr = self
            .store
            .token(secret).await
            .map_err(|e| refusal(RefusalCode::Unavailable, e.to_string()))?
            .ok_or_else(|| bad("enrolment token is not known to this hub (mistyped, tampered or from another hub)"))?;
        if &tr.token.agency != agency {
            return Err(bad(&format!(
                "enrolment token was issued for {}, not {agency}",
                tr.token.agency
            )));
        }
        if tr.used_ms.is_some() {
            return Err(bad("enrolment token was already used"));
        }
        if now_ms() > tr.token.expires_ms {
            return Err(bad(
                "enrolment token has expired; ask the administrator for a new one",
            ));
        }
        // Registered through any hub instance: the store, not this one's cache, knows.
        let stored = self
            .stored_node(agency)
            .await
            .map_err(|e| refusal(RefusalCode::Unavailable, format!("registry: {e}")))?;
        let mut rec = match stored {
            Some(n) if n.state == NodeState::Pending => n,
            Some(n) if n.state == NodeState::Active => {
                return Err(refusal(
                    RefusalCode::NotAllowed,
                    format!("agency {agency} is already active; enrolment refused"),
                ))
            }
            Some(n) => {
                return Err(refusal(
                    RefusalCode::NotAllowed,
                    format!("agency {agency} is {:?}; enrolment refused", n.state),
                ))
            }
            None => {
                return Err(refusal(
                    RefusalCode::NotAllowed,
                    format!("agency {agency} is not registered"),
                ))
            }
        };
        let issued = self
            .issue_pair(agency, tls_csr, sign_csr)
            .map_err(|e| refusal(RefusalCode::InvalidEnvelope, format!("{e:#}")))?;
        rec.state = NodeState::Active;
        issued.stamp(&mut rec);
        let a = audit(
            actor,
            "enrolled",
            Some(agency),
            format!("token redeemed; {}", issued.serials()),
        );
        let ok = self
            .store
            .redeem_token(secret.to_string(), rec.clone(), now_ms(), a)
            .await
            .map_err(|e| refusal(RefusalCode::Unavailable, e.to_string()))?;
        if !ok {
            return Err(bad("enrolment token was already used"));
        }
        self.put_cached_and_apply(rec);
        info!(agency = %agency, "node enrolled by token");
        Ok(issued.creds)
    }

    /// Issue fresh certificates to a connected node for its new keys.
    ///
    /// The replaced certificates stay admitted for `renewal_overlap_secs` while the agent
    /// switches over, and are retired (CRL reason `superseded`) as soon as the new TLS
    /// certificate is first used, or when the overlap runs out.
    pub async fn renew(
        self: &Arc<Self>,
        agency: &AgencyId,
        tls_csr: &str,
        sign_csr: &str,
    ) -> Result<Credentials> {
        let mut issued: Option<IssuedPair> = None;
        let mut changed = None;
        for _ in 0..CHANGE_ATTEMPTS {
            // A renewal before the previous one was taken into use retires the older pair
            // first: at most one superseded pair is ever admitted.
            self.retire_superseded(agency, "renewed again").await?;
            let read = self
                .stored_node(agency)
                .await?
                .with_context(|| format!("{agency} is not registered"))?;
            if read.state != NodeState::Active {
                bail!("{agency} is not active");
            }
            // Issued once: a second round only records the same pair over the newer record.
            let pair = match issued.take() {
                Some(pair) => pair,
                None => self.issue_pair(agency, tls_csr, sign_csr)?,
            };
            let old = Superseded {
                tls_serial: read.tls_serial.clone(),
                sign_serial: read.sign_serial.clone(),
                at_ms: now_ms(),
            };
            let mut rec = read.clone();
            pair.stamp(&mut rec);
            rec.superseded = Some(old.clone());
            let a = audit(
                &format!("node:{agency}"),
                "renewed",
                Some(agency),
                format!(
                    "{}; superseded tls {} sign {}",
                    pair.serials(),
                    old.tls_serial,
                    old.sign_serial
                ),
            );
            match self.store.put_node_audited(rec, read, a).await? {
                Ok(rec) => {
                    self.put_cached_and_apply(rec);
                    info!(agency = %agency, "certificates renewed");
                    return Ok(pair.creds);
                }
                Err(c) => {
                    debug!(agency = %agency, error = %c, "renewal: deciding again");
                    issued = Some(pair);
                    changed = Some(c);
                }
            }
        }
        Err(gave_up(changed, "renew"))
    }

    /// Put a node's superseded certificates on the CRLs (reason `superseded`: what they signed
    /// before now stays verifiable), refuse them from now on, and push the new signing CRL.
    pub(crate) async fn retire_superseded(
        self: &Arc<Self>,
        agency: &AgencyId,
        why: &str,
    ) -> Result<()> {
        let Some(old) = self.node(agency).and_then(|n| n.superseded) else {
            return Ok(());
        };
        let a = audit(
            "hub",
            "retire superseded",
            Some(agency),
            format!("{why}; tls {} sign {}", old.tls_serial, old.sign_serial),
        );
        let Some(rec) = self
            .store
            .retire_superseded(agency.clone(), now_ms(), a)
            .await?
        else {
            return Ok(());
        };
        self.cache_node(rec);
        self.reload_crls().await?;
        self.push_crl().await;
        info!(agency = %agency, reason = why, "superseded certificates retired");
        Ok(())
    }

    /// Retire every superseded pair whose overlap has run out (called by the sweeper).
    pub(crate) async fn retire_expired_overlaps(self: &Arc<Self>, now_ms: u64) -> Result<()> {
        let overlap = self.renewal_overlap_ms();
        let due: Vec<AgencyId> = self
            .nodes()
            .into_iter()
            .filter(|n| {
                n.superseded
                    .as_ref()
                    .is_some_and(|s| now_ms >= s.at_ms.saturating_add(overlap))
            })
            .map(|n| n.agency.clone())
            .collect();
        for a in due {
            self.retire_superseded(&a, "renewal overlap ended").await?;
        }
        Ok(())
    }

    /// Suspend (`active = false`) or resume a node. A revoked node is neither: its
    /// certificates are on the revocation lists for good.
    pub async fn set_active(&self, agency: &AgencyId, active: bool, actor: &str) -> Result<()> {
        let change = if active {
            StateChange::Resume
        } else {
            StateChange::Suspend
        };
        let rec = change_node_state(&*self.store, agency, change, actor).await?;
        self.put_cached_and_apply(rec);
        info!(agency = %agency, action = change.name(), "node state changed");
        Ok(())
    }

    /// Revoke a node: its certificates go on the CRLs, its connection is closed, new
    /// handshakes are refused and every connected agent receives the new signing CRL.
    pub async fn revoke(self: &Arc<Self>, agency: &AgencyId, actor: &str) -> Result<()> {
        let rec = change_node_state(&*self.store, agency, StateChange::Revoke, actor).await?;
        self.put_cached_and_apply(rec);
        self.reload_crls().await?;
        self.push_crl().await;
        info!(agency = %agency, "node revoked");
        Ok(())
    }

    /// Rebuild both CRLs from the store, write them, and put them in force for handshakes
    /// and signature checks.
    async fn reload_crls(&self) -> Result<()> {
        let revoked = self.store.revoked().await?;
        let superseded = self.store.superseded().await?;
        let now = OffsetDateTime::now_utc();
        let number = now_ms();
        let list = |kind: &str| -> Result<Vec<poros_certs::CrlEntry>> {
            let revoked = revoked.iter().map(|(s, r)| (s, r, false));
            let superseded = superseded.iter().map(|(s, r)| (s, r, true));
            revoked
                .chain(superseded)
                .filter(|(_, r, _)| r.kind == kind)
                .map(|(serial, r, superseded)| {
                    let at =
                        OffsetDateTime::from_unix_timestamp_nanos(r.revoked_ms as i128 * 1_000_000)
                            .unwrap_or(now);
                    Ok(poros_certs::CrlEntry {
                        serial: hex::decode(serial)?,
                        at,
                        superseded,
                    })
                })
                .collect()
        };
        let next = now + time::Duration::days(30);
        let network = self.keys.network_ca.crl_entries(
            &list("tls")?,
            number,
            now - time::Duration::minutes(5),
            next,
        )?;
        let signing = self.keys.signing_ca.crl_entries(
            &list("sign")?,
            number,
            now - time::Duration::minutes(5),
            next,
        )?;
        for (name, der) in [("network", &network), ("signing", &signing)] {
            let p = self.paths.at(&format!("pki/{name}.crl"));
            let tmp = self.paths.at(&format!("pki/{name}.crl.tmp"));
            let _ = std::fs::remove_file(&tmp);
            poros_certs::write_public_file(&tmp, der)?;
            std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))?;
        }
        let tls = poros_certs::hub_server_config_observed(
            self.keys.network_ca.cert_der(),
            &[network],
            self.keys.tls_chain.clone(),
            self.keys.tls_key.clone(),
            Some(self.metrics.cert_observer()),
        )?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| anyhow::anyhow!("server config: {e}"))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(poros_transport::transport_config(&limits(
            &self.cfg,
        ))));
        if let Ok(ep) = self.endpoint.lock() {
            if let Some(ep) = ep.as_ref() {
                ep.set_server_config(Some(server));
            }
        }
        match self.keys.signing_trust.write() {
            Ok(mut t) => t.set_crls(&[signing])?,
            Err(p) => p.into_inner().set_crls(&[signing])?,
        }
        Ok(())
    }

    /// Send the current signing CRL to every connected agent, waiting (bounded) until they
    /// have it in force.
    async fn push_crl(self: &Arc<Self>) {
        let pushes: Vec<_> = self
            .connections()
            .into_iter()
            .map(|(agency, conn)| {
                let hub = self.clone();
                tokio::spawn(async move { hub.push_crl_to(&agency, conn).await })
            })
            .collect();
        for p in pushes {
            let _ = p.await;
        }
    }

    /// Send the current signing CRL to one agent (at connect, before any delivery, and after
    /// each revocation) and wait for its acknowledgement, at most a few seconds.
    pub(crate) async fn push_crl_to(&self, agency: &AgencyId, conn: quinn::Connection) {
        let Ok(crl) = std::fs::read(self.paths.at("pki/signing.crl")) else {
            return;
        };
        let push = async {
            match poros_transport::request(&conn, &Frame::CrlUpdate { signing_crl: crl }).await? {
                Frame::Ack { .. } => Ok(()),
                other => bail!("unexpected answer {other:?}"),
            }
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), push).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(agency = %agency, error = %e, "CRL push failed; the agent gets it at its next connection")
            }
            Err(_) => {
                warn!(agency = %agency, "CRL push timed out; the agent gets it at its next connection")
            }
        }
    }
}
