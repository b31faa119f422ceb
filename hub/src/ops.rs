//! The hub's operations HTTP listener (loopback by default): health, Prometheus metrics,
//! document status for operators, and the admin API (bearer token) the CLI uses.

use crate::server::{now_ms, Hub};
use crate::state::{DeliveryState, NodeRecord};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use poros_protocol::DocumentId;
use serde_json::json;
use std::sync::Arc;

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
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/metrics", get(metrics))
        .route("/admin/v1/nodes", get(list_nodes).post(put_node))
        .route("/admin/v1/documents/:id", get(doc_status))
        .route("/admin/v1/stats", get(stats))
        .route("/admin/v1/sweep", post(sweep))
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

fn internal(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": e.to_string()})),
    )
        .into_response()
}

async fn metrics(State(st): State<Ops>) -> Response {
    use std::fmt::Write;
    let mut out = String::new();
    if let Ok(counters) = st.hub.store.counters() {
        for (k, v) in counters {
            let _ = writeln!(out, "# TYPE poros_{k}_total counter\nporos_{k}_total {v}");
        }
    }
    if let Ok(d) = st.hub.store.queue_depth() {
        let _ = writeln!(out, "# TYPE poros_queue_depth gauge\nporos_queue_depth {d}");
    }
    let _ = writeln!(
        out,
        "# TYPE poros_connected_nodes gauge\nporos_connected_nodes {}",
        st.hub.connected_agencies().len()
    );
    let s = st.hub.store.db().stats();
    let _ = writeln!(
        out,
        "# TYPE poros_store_commits_total counter\nporos_store_commits_total {}",
        s.commits
    );
    let _ = writeln!(
        out,
        "# TYPE poros_store_commit_jobs_total counter\nporos_store_commit_jobs_total {}",
        s.jobs
    );
    let _ = writeln!(
        out,
        "# TYPE poros_store_last_commit_seconds gauge\nporos_store_last_commit_seconds {}",
        s.last_commit_micros as f64 / 1e6
    );
    st.hub.metrics.render(&mut out);
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}

async fn list_nodes(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let connected = st.hub.connected_agencies();
    let nodes: Vec<_> = st
        .hub
        .nodes()
        .into_iter()
        .map(|n| {
            let c = connected.contains(&n.agency);
            json!({"agency": n.agency, "name": n.name, "state": n.state, "tls_serial": n.tls_serial,
                   "sign_serial": n.sign_serial, "tls_not_after": n.tls_not_after, "connected": c})
        })
        .collect();
    Json(nodes).into_response()
}

async fn put_node(State(st): State<Ops>, h: HeaderMap, Json(rec): Json<NodeRecord>) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    match st.hub.put_node(rec).await {
        Ok(()) => (StatusCode::OK, Json(json!({"ok": true}))).into_response(),
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
    let rec = match st.hub.store.doc(&id) {
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
    let dels = match st.hub.store.deliveries(&id) {
        Ok(d) => d,
        Err(e) => return internal(e),
    };
    let deliveries: Vec<_> = dels
        .into_iter()
        .map(|(a, d)| {
            let (state, reason) = match d.state {
                DeliveryState::Pending => ("pending", None),
                DeliveryState::Delivered(_) => ("delivered", None),
                DeliveryState::Rejected(_, why) => ("rejected", Some(why)),
                DeliveryState::Expired(_) => ("expired", None),
            };
            json!({"recipient": a, "state": state, "reason": reason, "answered_ms": d.answered_ms})
        })
        .collect();
    Json(json!({
        "id": id.to_string(), "sender": rec.sender, "body_sha256": hex::encode(rec.body_sha256),
        "body_len": rec.body_len, "body_at": format!("{:?}", rec.body_at).to_lowercase(),
        "accepted_ms": rec.accepted_ms, "deliveries": deliveries,
    }))
    .into_response()
}

async fn stats(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    let counters: serde_json::Map<String, serde_json::Value> = match st.hub.store.counters() {
        Ok(c) => c.into_iter().map(|(k, v)| (k, v.into())).collect(),
        Err(e) => return internal(e),
    };
    Json(json!({
        "counters": counters,
        "queue_depth": st.hub.store.queue_depth().unwrap_or(0),
        "connected": st.hub.connected_agencies(),
        "registered": st.hub.nodes().len(),
        "now_ms": now_ms(),
    }))
    .into_response()
}

async fn sweep(State(st): State<Ops>, h: HeaderMap) -> Response {
    if let Err(r) = authorized(&st, &h) {
        return r;
    }
    match crate::server::sweep_once(&st.hub).await {
        Ok(()) => Json(json!({"ok": true})).into_response(),
        Err(e) => internal(e),
    }
}
