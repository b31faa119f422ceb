//! The national platform's SDK protocol, spoken to the agency's existing document-management
//! software (DMS), so that software switches to Poros by changing its endpoint and secret.
//!
//! Every call is an HTTP request to `{endpoint}/<operation>` whose parameters are
//! `XroadVnpt-*` headers, signed with the shared secret ([`auth`]); every answer is JSON with
//! `status` (`OK` or `FAIL`), `ErrorCode` (`0` on success) and `ErrorDesc`. A refusal is
//! answered `FAIL` with HTTP 200 (the SDK reads the JSON of every answer), logged with its
//! cause, and stores nothing.
//!
//! # Layout
//! - [`auth`]: the checks every request passes (HMAC, signed headers, system id, timestamp,
//!   replay), IO-free.
//! - [`map`]: between edXML and Poros documents and statements, IO-free.
//! - [`send`]: `sendEdoc` — a package becomes a document (or a change request), a status
//!   message a statement; the upload is streamed to disk and checked before anything is kept.
//! - [`mailbox`]: what the DMS has to take — `getReceivedEdocList`, `getEdoc` (streamed),
//!   `updateStatus`, `countReceiveEdoc`, `countReceiveStatus`.
//! - [`sent`]: `getSentEdocList` and `getAgenciesList`.
//! - [`secret`]: the shared secret's file (0600).

pub mod auth;
mod mailbox;
pub mod map;
pub mod secret;
mod send;
mod sent;

use crate::agent::{now_ms, Agent};
use crate::paths::AgentPaths;
use anyhow::{Context, Result};
use auth::{AuthError, Policy, ReplayGuard, SdkHeaders};
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use poros_config::VdxpConfig;
use serde_json::{json, Map, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tracing::{info, warn, Instrument};

/// Live signatures kept for replay detection at most (about 100 bytes each); past it requests
/// are refused until older ones leave the window. Only requests signed with the secret are
/// kept, so only the DMS itself can fill it: 200,000 in twice the window is over 150 requests
/// a second for ten minutes with the default window.
const REPLAY_CAPACITY: usize = 200_000;

/// The facade's state, shared by its handlers.
pub struct Facade {
    agent: Arc<Agent>,
    secret: Vec<u8>,
    window_secs: u64,
    offset_secs: i64,
    started_ms: u64,
    replay: Mutex<ReplayGuard>,
}

/// An SDK operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    SendEdoc,
    GetReceivedEdocList,
    GetEdoc,
    UpdateStatus,
    GetSentEdocList,
    CountReceiveEdoc,
    CountReceiveStatus,
    GetAgenciesList,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "sendEdoc" => Op::SendEdoc,
            "getReceivedEdocList" => Op::GetReceivedEdocList,
            "getEdoc" => Op::GetEdoc,
            "updateStatus" => Op::UpdateStatus,
            "getSentEdocList" => Op::GetSentEdocList,
            "countReceiveEdoc" => Op::CountReceiveEdoc,
            "countReceiveStatus" => Op::CountReceiveStatus,
            "getAgenciesList" => Op::GetAgenciesList,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Op::SendEdoc => "sendEdoc",
            Op::GetReceivedEdocList => "getReceivedEdocList",
            Op::GetEdoc => "getEdoc",
            Op::UpdateStatus => "updateStatus",
            Op::GetSentEdocList => "getSentEdocList",
            Op::CountReceiveEdoc => "countReceiveEdoc",
            Op::CountReceiveStatus => "countReceiveStatus",
            Op::GetAgenciesList => "getAgenciesList",
        }
    }

    fn method(self) -> Method {
        match self {
            Op::CountReceiveEdoc | Op::CountReceiveStatus => Method::GET,
            _ => Method::POST,
        }
    }

    /// The operation's headers that must be under the signature besides the system id and
    /// timestamp: the file's hash for an upload (the body itself is not signed).
    fn must_sign(self) -> &'static [&'static str] {
        match self {
            Op::SendEdoc => &["hash-file"],
            _ => &[],
        }
    }
}

/// Why an operation was refused after the request's checks passed.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The request's checks ([`auth`]).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A parameter is missing or wrong.
    #[error("{0}")]
    Param(String),
    /// The uploaded file does not hash to `XroadVnpt-hash-file`.
    #[error("file hash mismatch: XroadVnpt-hash-file says {given}, the file received hashes to {actual} ({len} bytes)")]
    HashMismatch {
        /// As sent.
        given: String,
        /// Of the bytes received.
        actual: String,
        /// Bytes received.
        len: u64,
    },
    /// The file is not edXML Poros can use.
    #[error("{0}")]
    Edxml(String),
    /// A recipient is not a registered agency.
    #[error("unknown recipient: {0} is not an agency registered at the hub")]
    UnknownRecipient(String),
    /// No such document or message.
    #[error("{0}")]
    NotFound(String),
    /// The exchange rules refuse it.
    #[error("{0}")]
    Rule(String),
    /// Larger than this agent accepts.
    #[error("file larger than this agent's limit of {0} bytes")]
    TooLarge(u64),
    /// Storage or another fault of the agent; retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl Refusal {
    /// The `ErrorCode` answered.
    fn code(&self) -> &'static str {
        match self {
            Refusal::Auth(a) => a.code(),
            Refusal::Param(_) => "20",
            Refusal::HashMismatch { .. } => "21",
            Refusal::Edxml(_) => "22",
            Refusal::UnknownRecipient(_) => "23",
            Refusal::NotFound(_) => "24",
            Refusal::Rule(_) => "25",
            Refusal::TooLarge(_) => "26",
            Refusal::Unavailable(_) => "30",
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Refusal::Auth(a) => a.label(),
            Refusal::Param(_) => "bad_parameter",
            Refusal::HashMismatch { .. } => "hash_mismatch",
            Refusal::Edxml(_) => "bad_edxml",
            Refusal::UnknownRecipient(_) => "unknown_recipient",
            Refusal::NotFound(_) => "not_found",
            Refusal::Rule(_) => "rule",
            Refusal::TooLarge(_) => "too_large",
            Refusal::Unavailable(_) => "unavailable",
        }
    }
}

impl From<poros_store::StoreError> for Refusal {
    fn from(e: poros_store::StoreError) -> Self {
        warn!(error = %e, "SDK facade: store error");
        Refusal::Unavailable("the agent could not read or write its store; retry later".into())
    }
}

/// `{"status": "OK", "ErrorCode": "0", "ErrorDesc": "", ...fields}`.
pub(crate) fn ok(fields: Map<String, Value>) -> Response {
    let mut m = Map::new();
    m.insert("status".into(), json!("OK"));
    m.insert("ErrorCode".into(), json!("0"));
    m.insert("ErrorDesc".into(), json!(""));
    m.extend(fields);
    Json(Value::Object(m)).into_response()
}

fn fail(code: &str, desc: &str) -> Response {
    Json(json!({"status": "FAIL", "ErrorCode": code, "ErrorDesc": desc})).into_response()
}

/// The operation's answer, the refusal logged with its cause.
type Answer = Result<Response, Refusal>;

impl Facade {
    /// The facade of `agent` under `cfg`, its secret read from the agent directory.
    pub fn open(agent: Arc<Agent>, paths: &AgentPaths, cfg: &VdxpConfig) -> Result<Arc<Facade>> {
        let secret = secret::load(&paths.at(&cfg.secret_file))?;
        let offset_secs = cfg
            .utc_offset_secs()
            .context("vdxp.timestamp_utc_offset is not an offset")?;
        Ok(Arc::new(Facade {
            agent,
            secret,
            window_secs: cfg.timestamp_window_secs,
            offset_secs,
            started_ms: now_ms(),
            replay: Mutex::new(ReplayGuard::new(cfg.timestamp_window_secs, REPLAY_CAPACITY)),
        }))
    }

    fn check(&self, op: Op, h: &SdkHeaders) -> Result<(), AuthError> {
        let now = now_ms();
        let me = self.agent.agency().to_string();
        let policy = Policy {
            secret: &self.secret,
            system_id: &me,
            window_secs: self.window_secs,
            utc_offset_secs: self.offset_secs,
            started_ms: self.started_ms,
        };
        let passed = auth::check(h, op.must_sign(), &policy, now)?;
        self.replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(&passed, now)
    }
}

/// The facade's routes: any path whose last segment names an operation, so the DMS's
/// endpoint may carry a prefix.
pub fn router(f: Arc<Facade>) -> Router {
    Router::new().route("/*path", any(dispatch)).with_state(f)
}

async fn dispatch(
    State(f): State<Arc<Facade>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let name = path.rsplit('/').next().unwrap_or_default();
    let Some(op) = Op::parse(name) else {
        return crate::api::refuse_unread(body, fail("20", &format!("unknown operation {name:?}")))
            .await;
    };
    let h = SdkHeaders::from_pairs(
        headers
            .iter()
            // UTF-8, not only visible ASCII: the SDK sends names and reasons as they are.
            .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(v.as_bytes()).ok()?))),
    );
    let span = tracing::info_span!("sdk", op = op.name(), agency = %f.agent.agency(), %peer);
    async move {
        let refused = |e: Refusal| {
            warn!(code = e.code(), reason = e.label(), error = %e, "SDK request refused");
            fail(e.code(), &e.to_string())
        };
        // Refused before the operation reads its body: the body is read and dropped, so the
        // client sees the answer rather than a reset connection.
        let early = if method != op.method() {
            Some(Refusal::Param(format!(
                "{} takes {}, not {method}",
                op.name(),
                op.method()
            )))
        } else {
            f.check(op, &h).err().map(Refusal::Auth)
        };
        if let Some(e) = early {
            return crate::api::refuse_unread(body, refused(e)).await;
        }
        run(&f, op, &h, body).await.unwrap_or_else(refused)
    }
    .instrument(span)
    .await
}

async fn run(f: &Facade, op: Op, h: &SdkHeaders, body: Body) -> Answer {
    match op {
        Op::SendEdoc => send::send_edoc(f, h, body).await,
        Op::GetReceivedEdocList => mailbox::list(f, h),
        Op::GetEdoc => mailbox::get(f, h).await,
        Op::UpdateStatus => mailbox::update_status(f, h).await,
        Op::CountReceiveEdoc => mailbox::count(f, crate::state::dms::BoxKind::Edoc),
        Op::CountReceiveStatus => mailbox::count(f, crate::state::dms::BoxKind::Status),
        Op::GetSentEdocList => sent::sent_list(f, h),
        Op::GetAgenciesList => sent::agencies(f).await,
    }
}

/// Start the facade when `[vdxp]` turns it on: binds, writes `run/vdxp.addr`, turns the DMS
/// mailbox on, and serves until shutdown.
pub async fn start(agent: Arc<Agent>, paths: &AgentPaths) -> Result<()> {
    let Some(cfg) = agent.cfg.vdxp.clone().filter(|v| v.enabled) else {
        return Ok(());
    };
    let facade = Facade::open(agent.clone(), paths, &cfg)?;
    agent.store.enable_dms_mailbox().await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding the SDK facade on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let tmp = paths.at("run/vdxp.addr.tmp");
    std::fs::write(&tmp, addr.to_string())?;
    std::fs::rename(&tmp, paths.at("run/vdxp.addr"))?;
    info!(agency = %agent.agency(), sdk = %addr, "SDK facade listening");
    let app = router(facade).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(poros_transport::shutdown_signal())
            .await
        {
            warn!(error = %e, "SDK facade stopped");
        }
    });
    Ok(())
}
