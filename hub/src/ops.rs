//! The hub's operations HTTP listener (loopback by default): health, Prometheus metrics,
//! document status for operators, and the admin API (bearer token) the CLI uses.

use crate::hub::{now_ms, Hub};
use crate::state::{BodyAt, DeliveryEnd, NodeEdit, NodeRecord, NodeState, RegistryRefusal};
use axum::extract::ConnectInfo;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use poros_i18n::Lang;
use poros_protocol::AgencyId;
use poros_protocol::DocumentId;
use poros_transport::http::StrictQuery;
use serde_json::json;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

mod dashboard;

#[derive(Clone)]
struct Ops {
    hub: Arc<Hub>,
    admin_token: Arc<String>,
}

/// Build the router.
pub fn router(hub: Arc<Hub>, admin_token: String) -> Router {
    let st = Ops {
        hub,
        admin_token: Arc::new(admin_token),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/v1/nodes", get(list_nodes).post(add_node))
        .route("/admin/v1/nodes/:agency", get(show_node).patch(edit_node))
        .route("/admin/v1/nodes/:agency/:action", post(node_action))
        .route("/admin/v1/audit", get(audit_log))
        .route("/admin/v1/stats/check", get(stats_check))
        .route("/admin/v1/monitors", get(list_monitors).post(add_monitor))
        .route("/admin/v1/monitors/:name/revoke", post(revoke_monitor))
        .route("/api/v1/stats", get(api_stats))
        .route("/api/v1/trend", get(api_trend))
        .merge(dashboard::routes())
        .route("/admin/v1/documents/:id", get(doc_status))
        .route("/admin/v1/stats", get(stats))
        .route("/admin/v1/sweep", post(sweep))
        .route("/admin/v1/backup", get(backup))
        .route("/admin/v1/scrub", get(scrub_status).post(scrub_start))
        .with_state(st)
}

// axum responses are returned by value everywhere; boxing this one error would only add noise.
#[allow(clippy::result_large_err)]
fn authorized(st: &Ops, h: &HeaderMap) -> Result<(), Response> {
    let given = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare digests so the comparison time does not depend on where the strings differ.
    let ok = poros_protocol::sha256(given.as_bytes())
        == poros_protocol::sha256(st.admin_token.as_bytes());
    if ok {
        Ok(())
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong admin credential (Authorization: Bearer <admin.token>)"})),
        )
            .into_response())
    }
}

/// An admin request's JSON body, parsed only once the credential has been checked (an
/// unauthenticated caller learns nothing from parser errors).
// axum responses are returned by value everywhere; boxing this one error would only add noise.
#[allow(clippy::result_large_err)]
fn authorized_json<T: serde::de::DeserializeOwned>(
    st: &Ops,
    h: &HeaderMap,
    body: &[u8],
) -> Result<T, Response> {
    authorized(st, h)?;
    serde_json::from_slice(body).map_err(|e| bad_request(format!("request body: {e}")))
}

fn internal(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

/// Run a report's future to its end on the blocking pool (reports and the per-agency metrics
/// read many counters: they stay off the threads that serve the exchange).
fn on_blocking<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Handle::current().block_on(f)
}

/// Whether `token` is the admin token or a live monitor credential (read-only access).
async fn monitor_ok(st: &Ops, token: &str) -> bool {
    if token.is_empty() {
        return false;
    }
    let h = poros_protocol::sha256(token.as_bytes());
    if h == poros_protocol::sha256(st.admin_token.as_bytes()) {
        return true;
    }
    st.hub
        .store
        .monitors()
        .await
        .map(|m| {
            m.iter()
                .any(|m| m.revoked_ms.is_none() && m.token_sha256 == h)
        })
        .unwrap_or(false)
}

fn bearer(h: &HeaderMap) -> &str {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// A monitor-readable request carries its credential as a bearer token or, for links such as
/// the CSV export and the dashboard itself, as `?token=`.
async fn monitor_request_ok(st: &Ops, h: &HeaderMap, q: &StatsQuery) -> bool {
    let token = q
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .unwrap_or(bearer(h));
    monitor_ok(st, token).await
}

#[derive(serde::Deserialize)]
struct StatsQuery {
    from: Option<String>,
    to: Option<String>,
    month: Option<String>,
    year: Option<String>,
    agency: Option<String>,
    format: Option<String>,
    token: Option<String>,
    /// The reader's language for the CSV export's headers (`en`, `vi`); else `Accept-Language`.
    lang: Option<String>,
}

/// The language a reader asked for: `lang` if given (one Poros speaks, else 400), else the
/// request's `Accept-Language`, else English.
// axum responses are returned by value everywhere; boxing this one error would only add noise.
#[allow(clippy::result_large_err)]
fn reader_lang(h: &HeaderMap, lang: Option<&str>) -> Result<Lang, Response> {
    match lang {
        Some(tag) => Lang::parse(tag).ok_or_else(|| {
            bad_request(format!(
                "lang {tag:?} is not a language Poros speaks (en, vi)"
            ))
        }),
        None => Ok(accept_language(h)),
    }
}

/// The request's preferred language from `Accept-Language`; English if none Poros speaks.
fn accept_language(h: &HeaderMap) -> Lang {
    h.get("accept-language")
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
        .unwrap_or_default()
}

fn monitor_refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "a monitor credential is required (Authorization: Bearer <token>, issued with `poros-hub monitor add`)"})),
    )
        .into_response()
}

async fn api_stats(
    State(st): State<Ops>,
    h: HeaderMap,
    StrictQuery(q): StrictQuery<StatsQuery>,
) -> Response {
    if !monitor_request_ok(&st, &h, &q).await {
        return monitor_refused();
    }
    let lang = match reader_lang(&h, q.lang.as_deref()) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let query = match crate::report::Query::parse(
        q.from.as_deref(),
        q.to.as_deref(),
        q.month.as_deref(),
        q.year.as_deref(),
        q.agency.as_deref(),
    ) {
        Ok(q) => q,
        Err(e) => return bad_request(format!("{e:#}")),
    };
    // Reports read many counters: keep them off the threads that serve the exchange.
    let hub = st.hub.clone();
    let res = tokio::task::spawn_blocking(move || on_blocking(crate::report::report(&hub, &query)))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("report task failed: {e}")));
    match res {
        Ok(r) if q.format.as_deref() == Some("csv") => {
            let disposition = format!(
                "attachment; filename=\"{}\"",
                crate::report::csv::filename(&r)
            );
            (
                [
                    (
                        "content-type",
                        crate::report::csv::CSV_CONTENT_TYPE.to_owned(),
                    ),
                    ("content-disposition", disposition),
                    ("content-language", lang.code().to_owned()),
                    ("vary", "accept-language".to_owned()),
                ],
                crate::report::csv::csv(&r, lang),
            )
                .into_response()
        }
        Ok(r) => Json(r).into_response(),
        Err(e) => internal(e),
    }
}

async fn api_trend(
    State(st): State<Ops>,
    h: HeaderMap,
    StrictQuery(q): StrictQuery<StatsQuery>,
) -> Response {
    if !monitor_request_ok(&st, &h, &q).await {
        return monitor_refused();
    }
    let to = match q.to.as_deref().map(crate::stats::Day::parse) {
        Some(Some(d)) => d,
        Some(None) => return bad_request("to is not YYYY-MM-DD"),
        None => crate::stats::Day::of_ms(now_ms()),
    };
    let hub = st.hub.clone();
    let res = tokio::task::spawn_blocking(move || on_blocking(crate::report::trend(&hub, to)))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("trend task failed: {e}")));
    match res {
        Ok(v) => Json(v).into_response(),
        Err(e) => internal(e),
    }
}

#[derive(serde::Deserialize)]
struct AddMonitor {
    name: String,
}

async fn add_monitor(
    State(st): State<Ops>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req: AddMonitor = match authorized_json(&st, &h, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if let Err(e) = poros_protocol::text::name("monitor name", &req.name) {
        return bad_request(e);
    }
    if st
        .hub
        .store
        .monitors()
        .await
        .unwrap_or_default()
        .iter()
        .any(|m| m.name == req.name && m.revoked_ms.is_none())
    {
        return conflict(anyhow::anyhow!(
            "a live monitor credential named {:?} exists; revoke it first",
            req.name
        ));
    }
    let mut raw = [0u8; 32];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).is_err() {
        return internal("system random generator failed");
    }
    let token = format!("pmon_{}", hex::encode(raw));
    let rec = crate::state::MonitorRecord {
        name: req.name.clone(),
        token_sha256: poros_protocol::sha256(token.as_bytes()),
        created_ms: now_ms(),
        revoked_ms: None,
    };
    let audit = crate::state::AuditRecord {
        time_ms: now_ms(),
        actor: format!("admin@{peer}"),
        action: "monitor add".into(),
        agency: None,
        detail: req.name,
    };
    match st.hub.store.put_monitor(rec, audit).await {
        Ok(()) => Json(json!({"token": token})).into_response(),
        Err(e) => internal(e),
    }
}

async fn list_monitors(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    match st.hub.store.monitors().await {
        Ok(m) => Json(
            m.iter()
                .map(|m| json!({"name": m.name, "created_ms": m.created_ms, "revoked_ms": m.revoked_ms}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => internal(e),
    }
}

async fn revoke_monitor(
    State(st): State<Ops>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let Some(mut rec) = st
        .hub
        .store
        .monitors()
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|m| m.name == name && m.revoked_ms.is_none())
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no live monitor credential named {name:?}")})),
        )
            .into_response();
    };
    rec.revoked_ms = Some(now_ms());
    let audit = crate::state::AuditRecord {
        time_ms: now_ms(),
        actor: format!("admin@{peer}"),
        action: "monitor revoke".into(),
        agency: None,
        detail: name,
    };
    match st.hub.store.put_monitor(rec, audit).await {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => internal(e),
    }
}

/// Ready when the store can write and answers a read, and the QUIC listener is bound.
async fn readyz(State(st): State<Ops>) -> Response {
    if let Some(fault) = st.hub.store.health() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store cannot write: {fault}; recovering\n"),
        )
            .into_response();
    }
    let bound = st.hub.endpoint.lock().map(|e| e.is_some()).unwrap_or(false);
    match st.hub.store.queue_depth().await {
        Ok(_) if bound => "ready\n".into_response(),
        Ok(_) => (StatusCode::SERVICE_UNAVAILABLE, "QUIC listener not bound\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store unavailable: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(st): State<Ops>) -> Response {
    // Per-agency series read many counters: render off the exchange's async workers.
    let hub = st.hub.clone();
    match tokio::task::spawn_blocking(move || on_blocking(metrics_text(&hub))).await {
        Ok(out) => ([("content-type", "text/plain; version=0.0.4")], out).into_response(),
        Err(e) => internal(e),
    }
}

/// The Prometheus text exposition. Everything here is read from counters and records the hub
/// keeps (the registry cache, the pre-aggregated statistics, the pending-delivery index), never
/// from a scan of the documents, so a scrape stays cheap however much has been exchanged.
async fn metrics_text(hub: &Hub) -> String {
    use crate::metrics::{label, Exposition};
    let mut x = Exposition::default();
    let now = now_ms();
    x.sample(
        "poros_build_info",
        "gauge",
        &format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")),
        1,
    );
    if let Ok(counters) = hub.store.counters().await {
        // A counter the store has not written yet is 0, not absent (rules and dashboards
        // take rates of them from the start).
        let mut all: std::collections::BTreeMap<String, u64> = crate::metrics::STORE_COUNTERS
            .iter()
            .map(|k| (k.to_string(), 0))
            .collect();
        all.extend(counters);
        for (k, v) in all {
            x.sample(&format!("poros_{k}_total"), "counter", "", v);
        }
    }
    if let Ok(kinds) = hub.store.statement_counts().await {
        for (k, v) in kinds {
            x.sample(
                "poros_statements_total",
                "counter",
                &format!("{{kind=\"{}\"}}", label(&k)),
                v,
            );
        }
    }
    if let Ok(d) = hub.store.statement_relay_depth().await {
        x.sample("poros_statement_relay_depth", "gauge", "", d);
    }
    if let Ok(d) = hub.store.queue_depth().await {
        x.sample("poros_queue_depth", "gauge", "", d);
    }
    if let Ok(d) = hub.store.held_count(None).await {
        x.sample("poros_deliveries_held_for_repair", "gauge", "", d);
    }
    let connected: HashSet<AgencyId> = hub.connected_agencies();
    x.sample("poros_connected_nodes", "gauge", "", connected.len());
    let s = hub.store.commit_stats();
    x.sample("poros_store_commits_total", "counter", "", s.commits);
    x.sample("poros_store_commit_jobs_total", "counter", "", s.jobs);
    x.sample(
        "poros_store_last_commit_seconds",
        "gauge",
        "",
        s.last_commit_micros as f64 / 1e6,
    );
    let times = s.times.cumulative().into_iter().map(|(le, n)| {
        let le = if le.is_finite() {
            le.to_string()
        } else {
            "+Inf".into()
        };
        (le, n)
    });
    x.histogram(
        "poros_store_commit_seconds",
        "",
        times,
        s.times.sum_micros as f64 / 1e6,
    );
    // The store's directory: body files, and the redb file with the embedded store.
    let data = hub
        .paths
        .db()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| hub.paths.root.clone());
    match crate::metrics::filesystem(&data) {
        Ok((avail, size)) => {
            let l = format!("{{path=\"{}\"}}", label(&data.display().to_string()));
            x.sample("poros_store_filesystem_avail_bytes", "gauge", &l, avail);
            x.sample("poros_store_filesystem_size_bytes", "gauge", &l, size);
        }
        Err(e) => {
            tracing::debug!(dir = %data.display(), error = %e, "statvfs of the store's directory failed")
        }
    }
    x.threshold(hub.cfg.monitoring.alert_below_percent);

    // The registry, from the cache: active agencies only (a suspended or revoked agency is
    // expected to be silent, and its certificate is no longer admitted).
    let on_time_ms = hub.cfg.monitoring.on_time_secs * 1000;
    let overdue = hub
        .store
        .overdue(0, u64::MAX, now.saturating_sub(on_time_ms))
        .await;
    for n in hub.nodes().iter().filter(|n| n.state == NodeState::Active) {
        let a = label(n.agency.as_str());
        x.sample(
            "poros_node_certificate_expiry_timestamp_seconds",
            "gauge",
            &format!("{{agency=\"{a}\",kind=\"tls\"}}"),
            n.tls_not_after,
        );
        let here = connected.contains(&n.agency);
        // Connected now counts as seen now; never seen counts from registration.
        let seen_ms = if here {
            now
        } else {
            n.last_seen_ms.unwrap_or(n.registered_ms)
        };
        x.sample(
            "poros_agency_last_seen_timestamp_seconds",
            "gauge",
            &format!("{{agency=\"{a}\"}}"),
            seen_ms / 1000,
        );
        x.sample(
            "poros_agency_connected",
            "gauge",
            &format!("{{agency=\"{a}\"}}"),
            u8::from(here),
        );
        if let Ok(o) = &overdue {
            x.sample(
                "poros_agency_deliveries_overdue",
                "gauge",
                &format!("{{agency=\"{a}\"}}"),
                o.get(n.agency.as_str()).copied().unwrap_or(0),
            );
        }
    }

    // Per-agency series for the current year, from the exact counters.
    let year = vec![format!("Y{}", crate::stats::Day::of_ms(now).y)];
    if let Ok(r) = hub.store.stats_snapshot().await {
        if let Ok(sums) = r.sums(&year, None).await {
            if let Some(m) = sums.get(crate::stats::NATIONAL) {
                x.exchange_ratio("poros_national_electronic_exchange_ratio", "", m);
            }
            let mut scopes: Vec<_> = sums
                .iter()
                .filter(|(s, _)| !s.contains(':') && s.as_str() != crate::stats::NATIONAL)
                .collect();
            scopes.sort_by(|a, b| a.0.cmp(b.0));
            for (scope, m) in scopes {
                x.agency_year(&label(scope), m);
            }
        }
    }
    let mut out = x.finish();
    out.push_str(&hub.store.health_metrics());
    hub.metrics.render(&mut out);
    crate::metrics::with_help(&out)
}

/// A node's registry entry as the admin API shows it, with connection and renewal status:
/// borrowed from the record and serialized as it stands, so the list of ten thousand nodes
/// builds no JSON tree. Its fields in alphabetical order, as the JSON map it replaced had them.
#[derive(serde::Serialize)]
pub struct NodeView<'a> {
    address: &'a Option<String>,
    agency: &'a AgencyId,
    connected: bool,
    email: &'a Option<String>,
    expiring_soon: bool,
    identity_conflicts: u64,
    last_conflict: &'a Option<crate::state::Conflict>,
    last_seen_ms: Option<u64>,
    name: &'a str,
    parent: &'a Option<AgencyId>,
    phone: &'a Option<String>,
    registered_ms: u64,
    sign_serial: &'a str,
    state: NodeState,
    superseded: &'a Option<crate::state::Superseded>,
    tls_not_after: i64,
    tls_serial: &'a str,
}

impl<'a> NodeView<'a> {
    pub fn of(n: &'a NodeRecord, connected: bool) -> Self {
        let now_s = (now_ms() / 1000) as i64;
        let lifetime = (n.tls_not_after - n.tls_not_before).max(1);
        // Agents renew with a third of the lifetime left; with a quarter left and no renewal,
        // something is wrong at the agency.
        let expiring_soon = n.state == NodeState::Active
            && n.tls_not_after > 0
            && n.tls_not_after - now_s < lifetime / 4;
        NodeView {
            address: &n.address,
            agency: &n.agency,
            connected,
            email: &n.email,
            expiring_soon,
            identity_conflicts: n.conflicts,
            last_conflict: &n.last_conflict,
            last_seen_ms: n.last_seen_ms,
            name: &n.name,
            parent: &n.parent,
            phone: &n.phone,
            registered_ms: n.registered_ms,
            sign_serial: &n.sign_serial,
            state: n.state,
            superseded: &n.superseded,
            tls_not_after: n.tls_not_after,
            tls_serial: &n.tls_serial,
        }
    }
}

async fn list_nodes(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let connected: HashSet<AgencyId> = st.hub.connected_agencies();
    let nodes = st.hub.nodes();
    let views: Vec<_> = nodes
        .iter()
        .map(|n| NodeView::of(n, connected.contains(&n.agency)))
        .collect();
    Json(views).into_response()
}

#[derive(serde::Deserialize)]
struct AddNode {
    agency: String,
    name: String,
    tls_csr: Option<String>,
    sign_csr: Option<String>,
    parent: Option<String>,
    email: Option<String>,
    address: Option<String>,
    phone: Option<String>,
}

/// `PATCH /admin/v1/nodes/CODE`: a field left out is unchanged, `null` clears it.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EditNode {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    parent: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    address: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    phone: Option<Option<String>>,
}

/// A field that is present (possibly `null`) is `Some`; an absent one stays `None` (the
/// `default`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d).map(Some)
}

/// The directory fields of an admin request, parsed and validated into a [`NodeEdit`].
fn node_edit(
    name: Option<String>,
    parent: Option<Option<String>>,
    email: Option<Option<String>>,
    address: Option<Option<String>>,
    phone: Option<Option<String>>,
) -> Result<NodeEdit, String> {
    let parent = match parent {
        Some(Some(p)) => Some(Some(
            AgencyId::parse(&p).map_err(|e| format!("parent: {e}"))?,
        )),
        Some(None) => Some(None),
        None => None,
    };
    let edit = NodeEdit {
        name,
        parent,
        email,
        address,
        phone,
    };
    edit.validate().map_err(|e| e.to_string())?;
    Ok(edit)
}

/// The answer to a registry change the hub refused: an unknown agency is not found, a
/// refused parent a bad request; anything else is the hub's own failure.
fn registry_error(e: anyhow::Error) -> Response {
    match e.downcast_ref::<RegistryRefusal>() {
        Some(r @ RegistryRefusal::UnknownAgency(_)) => {
            (StatusCode::NOT_FOUND, Json(json!({"error": r.to_string()}))).into_response()
        }
        Some(r @ RegistryRefusal::Parent(_)) => bad_request(r),
        None => conflict(e),
    }
}

async fn edit_node(
    State(st): State<Ops>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path(agency): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let req: EditNode = match authorized_json(&st, &h, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let agency = match AgencyId::parse(&agency) {
        Ok(a) => a,
        Err(e) => return bad_request(e),
    };
    let edit = match node_edit(req.name, req.parent, req.email, req.address, req.phone) {
        Ok(e) => e,
        Err(e) => return bad_request(e),
    };
    if edit.is_empty() {
        return bad_request("nothing to change (give name, parent, email, address or phone)");
    }
    match st
        .hub
        .edit_node(&agency, edit, &format!("admin@{peer}"))
        .await
    {
        Ok(rec) => {
            let connected = st.hub.is_connected(&agency);
            Json(NodeView::of(&rec, connected)).into_response()
        }
        Err(e) => registry_error(e),
    }
}

fn bad_request(msg: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": msg.to_string()})),
    )
        .into_response()
}

/// A backup's store part, streamed as an archive (`poros-hub backup` adds the deployment's
/// files and writes the file).
async fn backup(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    match crate::backup::stream(&st.hub).await {
        Ok(body) => (
            [(axum::http::header::CONTENT_TYPE, "application/x-tar")],
            body,
        )
            .into_response(),
        Err(e) => conflict(e),
    }
}

fn conflict(e: anyhow::Error) -> Response {
    (
        StatusCode::CONFLICT,
        Json(json!({"error": format!("{e:#}")})),
    )
        .into_response()
}

async fn add_node(
    State(st): State<Ops>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let req: AddNode = match authorized_json(&st, &h, &body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let agency = match AgencyId::parse(&req.agency) {
        Ok(a) => a,
        Err(e) => return bad_request(e),
    };
    if let Err(e) = poros_protocol::text::name("agency name", &req.name) {
        return bad_request(e);
    }
    let details = match node_edit(
        None,
        req.parent.map(Some),
        req.email.map(Some),
        req.address.map(Some),
        req.phone.map(Some),
    ) {
        Ok(d) => d,
        Err(e) => return bad_request(e),
    };
    let actor = format!("admin@{peer}");
    match (req.tls_csr, req.sign_csr) {
        (Some(t), Some(s)) => match st
            .hub
            .add_node_offline(&agency, &req.name, &details, &t, &s, &actor)
            .await
        {
            Ok(creds) => Json(json!({"credentials": creds})).into_response(),
            Err(e) => registry_error(e),
        },
        (None, None) => match st
            .hub
            .add_node_token(&agency, &req.name, &details, &actor)
            .await
        {
            Ok(token) => Json(json!({"token": token})).into_response(),
            Err(e) => registry_error(e),
        },
        _ => bad_request("give both tls_csr and sign_csr, or neither (token enrolment)"),
    }
}

async fn show_node(State(st): State<Ops>, h: HeaderMap, Path(agency): Path<String>) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let agency = match AgencyId::parse(&agency) {
        Ok(a) => a,
        Err(e) => return bad_request(e),
    };
    let Some(n) = st.hub.node(&agency) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("agency {agency} is not registered")})),
        )
            .into_response();
    };
    let history = match st.hub.store.audit_log(Some(&agency)).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let mut v = match serde_json::to_value(NodeView::of(&n, st.hub.is_connected(&agency))) {
        Ok(v) => v,
        Err(e) => return internal(e),
    };
    v["history"] = json!(history);
    v["pending_deliveries"] = json!(st.hub.store.pending_count(&agency).await.unwrap_or(0));
    // Deliveries to this node waiting for a damaged body to be uploaded again by its sender.
    v["held_for_repair"] = json!(st.hub.store.held_count(Some(&agency)).await.unwrap_or(0));
    Json(v).into_response()
}

async fn node_action(
    State(st): State<Ops>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path((agency, action)): Path<(String, String)>,
) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let agency = match AgencyId::parse(&agency) {
        Ok(a) => a,
        Err(e) => return bad_request(e),
    };
    let actor = format!("admin@{peer}");
    let res = match action.as_str() {
        "suspend" => st.hub.set_active(&agency, false, &actor).await,
        "resume" => st.hub.set_active(&agency, true, &actor).await,
        "revoke" => st.hub.revoke(&agency, &actor).await,
        other => {
            return bad_request(format!(
                "unknown action {other:?} (suspend, resume, revoke)"
            ))
        }
    };
    match res {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => conflict(e),
    }
}

/// Live counters against a recount from the stored delivery records (all time).
async fn stats_check(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    // A recount reads the whole history: keep it off the threads that serve the exchange.
    let hub = st.hub.clone();
    match tokio::task::spawn_blocking(move || on_blocking(crate::report::check(&hub))).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => internal(e),
        Err(e) => internal(e),
    }
}

/// `?after=CURSOR&limit=N` of the audit listing.
#[derive(serde::Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// One page of the audit log (it grows without bound): a JSON array, oldest first, with the
/// next page's cursor in the `poros-next-cursor` header, as in the agent's listings.
async fn audit_log(
    State(st): State<Ops>,
    h: HeaderMap,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> Response {
    use poros_protocol::page::{page_size, PageError, NEXT_CURSOR_HEADER};
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let limit = match page_size(q.limit) {
        Ok(n) => n,
        Err(e) => return bad_request(e),
    };
    let after = match q.after.as_deref().map(str::parse::<u64>).transpose() {
        Ok(a) => a.unwrap_or(0),
        Err(_) => {
            let shown = q.after.unwrap_or_default().chars().take(80).collect();
            return bad_request(PageError::Cursor(shown));
        }
    };
    match st.hub.store.audit_page(after, limit).await {
        Ok((page, next)) => {
            let mut r = Json(page).into_response();
            if let Some(n) = next.and_then(|n| n.to_string().parse().ok()) {
                r.headers_mut().insert(NEXT_CURSOR_HEADER, n);
            }
            r
        }
        Err(e) => internal(e),
    }
}

async fn doc_status(State(st): State<Ops>, h: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let Ok(id) = id.parse::<DocumentId>() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("{id:?} is not a document ID")})),
        )
            .into_response();
    };
    let rec = match st.hub.store.doc(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": format!("no document {id}")})),
            )
                .into_response()
        }
        Err(e) => return internal(e),
    };
    let dels = match st.hub.store.deliveries(&id).await {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let history = match st.hub.store.statement_history(&id).await {
        Ok(h) => h,
        Err(e) => return internal(e),
    };
    let deliveries: Vec<_> = dels
        .into_iter()
        .map(|(a, d)| {
            // Receipts, statuses and answers under their maker; change requests (and reminders)
            // under each addressee; the hub's notices under the recipient they are about; the
            // acceptance under every recipient it queued.
            let statements: Vec<_> = history
                .iter()
                .filter(|h| {
                    use poros_protocol::StatementKind as K;
                    let s = &h.statement;
                    match &s.kind {
                        K::Change { .. } | K::Reminder => s.to.contains(&a),
                        K::Notice { recipient, .. } => recipient == &a,
                        K::Accepted { recipients, .. } => recipients.contains(&a),
                        _ => s.from == a,
                    }
                })
                .map(statement_json)
                .collect();
            let (state, reason) = match d.state.end() {
                // Still retried; the reason is the recipient's last temporary refusal.
                None => (
                    "pending",
                    st.hub.delays.reason(id, &a).map(|r| r.to_string()),
                ),
                Some(DeliveryEnd::Delivered) => ("delivered", None),
                Some(DeliveryEnd::Rejected(why)) => ("rejected", Some(why.to_string())),
                Some(DeliveryEnd::Expired) => ("expired", None),
                Some(DeliveryEnd::Lost(why)) => ("lost", Some(why.to_string())),
            };
            json!({"recipient": a, "state": state, "reason": reason, "answered_ms": d.answered_ms,
                   "statements": statements})
        })
        .collect();
    let history: Vec<_> = history.iter().map(statement_json).collect();
    // The admin API's words for where the body is; a body retention removed is `removed`.
    let body_at = match rec.body_at {
        BodyAt::Inline => "inline",
        BodyAt::File => "file",
        BodyAt::Gone => "removed",
    };
    Json(json!({
        "id": id.to_string(), "sender": rec.sender, "body_sha256": hex::encode(rec.body_sha256),
        "body_len": rec.body_len, "body_at": body_at,
        "accepted_ms": rec.accepted_ms, "deliveries": deliveries, "history": history,
    }))
    .into_response()
}

/// One accepted statement as the admin API shows it.
fn statement_json(h: &crate::state::HistoryEntry) -> serde_json::Value {
    let s = &h.statement;
    json!({"seq": h.seq, "from": s.from, "to": s.to, "label": s.kind.label(),
           "code": s.kind.code(), "accepted_ms": h.accepted_ms,
           "statement": hex::encode(h.digest)})
}

async fn stats(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let counters: serde_json::Map<String, serde_json::Value> = match st.hub.store.counters().await {
        Ok(c) => c.into_iter().map(|(k, v)| (k, v.into())).collect(),
        Err(e) => return internal(e),
    };
    Json(json!({
        "counters": counters,
        "queue_depth": st.hub.store.queue_depth().await.unwrap_or(0),
        "connected": st.hub.connected_agencies::<Vec<_>>(),
        "registered": st.hub.node_count(),
        "now_ms": now_ms(),
    }))
    .into_response()
}

async fn sweep(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    match crate::server::sweep::sweep_once(&st.hub).await {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => internal(e),
    }
}

/// Start a scrub of every stored body (a background job); answers with the run to wait for.
async fn scrub_start(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let run = crate::repair::start_scrub(&st.hub);
    Json(json!({"run": run})).into_response()
}

/// The scrub job: whether one is running, and the last report.
async fn scrub_status(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    Json(crate::repair::scrub_state(&st.hub)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Conflict, Superseded};

    /// The admin API's node JSON: every field, named and valued as the API documents it, with
    /// the renewal warning from the certificate's lifetime.
    #[test]
    fn a_node_is_shown_with_every_field_of_the_admin_api() {
        let now_s = (now_ms() / 1000) as i64;
        let mut n = NodeRecord::pending(&"000.00.00.G01".parse().unwrap(), "Bộ Tài chính", 5);
        n.state = NodeState::Active;
        n.tls_serial = "0a".into();
        n.sign_serial = "0b".into();
        n.tls_not_before = now_s - 90 * 86_400;
        n.tls_not_after = now_s + 10 * 86_400;
        n.last_seen_ms = Some(7);
        n.superseded = Some(Superseded {
            tls_serial: "01".into(),
            sign_serial: "02".into(),
            at_ms: 8,
        });
        n.conflicts = 2;
        n.last_conflict = Some(Conflict {
            at_ms: 9,
            kept: "127.0.0.1:1".into(),
            refused: "127.0.0.1:2".into(),
        });
        n.parent = Some("000.00.00.H01".parse().unwrap());
        n.email = Some("vanthu@example.vn".into());
        n.phone = Some("024 0000 0000".into());
        let shown = serde_json::to_value(NodeView::of(&n, true)).unwrap();
        let expected = json!({"agency": "000.00.00.G01", "name": "Bộ Tài chính",
            "state": n.state, "tls_serial": "0a", "sign_serial": "0b",
            "tls_not_after": n.tls_not_after, "connected": true, "last_seen_ms": 7,
            "registered_ms": 5, "expiring_soon": true,
            "superseded": {"tls_serial": "01", "sign_serial": "02", "at_ms": 8},
            "identity_conflicts": 2,
            "last_conflict": {"at_ms": 9, "kept": "127.0.0.1:1", "refused": "127.0.0.1:2"},
            "parent": "000.00.00.H01", "email": "vanthu@example.vn", "address": null,
            "phone": "024 0000 0000"});
        assert_eq!(shown, expected);
        // A hundred days' certificate with ninety left is not about to expire.
        n.tls_not_after = now_s + 90 * 86_400;
        n.tls_not_before = now_s - 10 * 86_400;
        let shown = serde_json::to_value(NodeView::of(&n, false)).unwrap();
        assert_eq!(shown["expiring_soon"], false);
        assert_eq!(shown["connected"], false);
    }
}
