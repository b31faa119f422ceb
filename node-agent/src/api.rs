//! The agent's local HTTP API (loopback only) for the agency's document-management software
//! and the CLI verbs: send, inbox, fetch, status, receipts, events. The statement verbs are
//! [`crate::statement_api`]. Every route is registered from its handler's `#[utoipa::path]`
//! attribute, so the OpenAPI document ([`crate::openapi`]) lists exactly what is served.

use crate::agent::{Agent, SendError};
use crate::api_types::{
    ApiError, DocumentCreated, DocumentStatus, EventItem, EventsPage, Health, PaperReportDone,
    PaperReportRequest, ReceiptEventItem, ReceiptItem, ReceivedDoc, RecipientView, SendQuery,
    SentDocument, StatementEventItem, StoreHealth,
};
use crate::listing::{self, Cursor, PageError};
use crate::openapi::{BackupArchive, Binary, DocIdParam, InboxItem, StoreFault};
use crate::refusal::Refusal;
use crate::state::{BodyAt, InRecord, OutRecord, RecipientStatus};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures_util::StreamExt;
use poros_certs::Signer;
use poros_protocol::receipt::RECEIPT_CONTEXT;
use poros_protocol::{
    AgencyId, DocumentId, Metadata, NoticeKind, Outcome, Priority, StatementKind, STATEMENT_CONTEXT,
};
use poros_store::StoreError;
use poros_store::{BodySink, Commit, ReceivedBody};
use poros_transport::http::StrictQuery;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tracing::warn;
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Build the router: every documented route, and a JSON 404 for any other path.
pub fn router(agent: Arc<Agent>) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .fallback(no_route)
        .layer(axum::middleware::from_fn(crate::refusal::localize))
        .with_state(agent)
}

/// The routes with their documentation. A route is added here (or in
/// [`crate::statement_api::routes`]) only through `routes!`, which takes the handler's
/// `#[utoipa::path]`: nothing is served that the OpenAPI document does not describe.
pub(crate) fn routes() -> OpenApiRouter<Arc<Agent>> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
        .routes(routes!(send, outbox))
        .routes(routes!(status))
        .routes(routes!(inbox))
        .routes(routes!(fetch))
        .routes(routes!(quarantine))
        .routes(routes!(receipts))
        .routes(routes!(events))
        .routes(routes!(paper))
        .routes(routes!(backup))
        .merge(crate::statement_api::routes())
}

/// A refusal's answer (in English; [`crate::refusal::localize`] renders it in the request's
/// language).
pub(crate) fn err(r: Refusal) -> Response {
    r.into_response()
}

/// The largest JSON request body: axum's default limit for a buffered body, 2 MiB.
pub const JSON_LIMIT: usize = 2 * 1024 * 1024;

/// A JSON request body read up to [`JSON_LIMIT`]; past it, the rest is read and dropped (as
/// [`refuse_unread`] does) before the JSON 413 is answered, so the client sees the answer
/// rather than a connection closed while it was still sending.
pub(crate) struct JsonBytes(Result<Bytes, Response>);

#[axum::async_trait]
impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBytes {
    type Rejection = std::convert::Infallible;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        let mut stream = req.into_body().into_data_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else {
                return Ok(JsonBytes(Err(err(Refusal::BodyUnreadable))));
            };
            if buf.len() + chunk.len() > JSON_LIMIT {
                let rest = Body::from_stream(stream);
                let too_large = err(Refusal::BodyTooLarge(JSON_LIMIT));
                return Ok(JsonBytes(Err(refuse_unread(rest, too_large).await)));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(JsonBytes(Ok(buf.into())))
    }
}

/// Any path the router does not serve.
async fn no_route(method: Method, uri: Uri) -> Response {
    err(Refusal::NoRoute {
        method: method.to_string(),
        path: uri.path().to_string(),
    })
}

/// A document ID from the path (`{id}`), refused with a JSON 400 naming it when it is not one.
pub(crate) struct DocPath(pub DocumentId);

#[axum::async_trait]
impl<S: Send + Sync> FromRequestParts<S> for DocPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| err(Refusal::Invalid(e.body_text())))?;
        parse_id(&id).map(DocPath)
    }
}

/// Decodes a JSON object request body, answering 400 (not axum's 422, which is a rule refusal
/// here) whatever the request's content type says, and a JSON 413 for a body over axum's
/// limit ([`JSON_LIMIT`]).
#[allow(clippy::result_large_err)]
pub(crate) fn json_body<T: DeserializeOwned>(b: JsonBytes) -> Result<T, Response> {
    let b = b.0?;
    let bad = |e: serde_json::Error| err(Refusal::Invalid(format!("request: {e}")));
    // An object, not the array of its fields' values that serde's derived structs also take.
    let map: serde_json::Map<String, Value> = serde_json::from_slice(&b).map_err(bad)?;
    T::deserialize(Value::Object(map)).map_err(bad)
}

/// Answer for a store error: a storage fault is 507 (full) or 503 (other), retryable, and
/// marks the store unwritable for /v1/health; anything else is logged and answered without
/// its details, which may name internal paths.
pub(crate) fn store_err(a: &Agent, e: &StoreError) -> Response {
    match e.fault() {
        Some(f) => {
            a.store.db().report_fault(f);
            err(Refusal::StoreFault {
                full: f.is_full(),
                fault: f.to_string(),
            })
        }
        None => {
            tracing::warn!(error = %e, "agent store error");
            err(Refusal::StoreError)
        }
    }
}

/// The agent's health: its agency, the hub connection and whether its store can write.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "service",
    operation_id = "health",
    summary = "The agent's health",
    responses((status = 200, description = "The agent is serving", body = Health))
)]
async fn health(State(a): State<Arc<Agent>>) -> Response {
    let fault = a.store.db().health();
    Json(Health {
        agency: a.agency().clone(),
        connected: a.connected(),
        store: StoreHealth {
            writable: fault.is_none(),
            reason: fault.map(|f| f.to_string()),
            write_failures: a.store.db().stats().write_failures,
        },
    })
    .into_response()
}

/// Prometheus metrics: the store's health (alert on `poros_store_writable 0`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    responses((
        status = 200,
        description = "Prometheus text exposition format 0.0.4",
        content_type = "text/plain",
        body = String,
        example = "# TYPE poros_store_writable gauge\nporos_store_writable 1\n"
    ))
)]
async fn metrics(State(a): State<Arc<Agent>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        poros_store::health_metrics(a.store.db()),
    )
        .into_response()
}

/// This document (its OpenAPI 3.1 description), as committed in `docs/openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    operation_id = "openapi",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
async fn openapi_json() -> Response {
    (
        [("content-type", "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

/// Send a document: the request body is the document, the query its addressing and
/// metadata. It is signed and stored in the outbox before the answer; delivery follows.
/// Everything that can refuse it is checked before a byte of the body is stored.
#[utoipa::path(
    post,
    path = "/v1/documents",
    tag = "documents",
    operation_id = "send",
    summary = "Send a document",
    params(SendQuery),
    request_body(
        content = Binary,
        content_type = "application/octet-stream",
        description = "The document's bytes (at most the agent's `max_body_bytes`)"
    ),
    responses(
        (status = 201, description = "Signed and stored in the outbox", body = DocumentCreated,
            links(
                ("status" = (operation_id = "status", parameters(("id" = "$response.body#/id")),
                    description = "The new document's delivery and business state")),
                ("takeback" = (operation_id = "takeback", parameters(("id" = "$response.body#/id")))),
                ("remind" = (operation_id = "remind", parameters(("id" = "$response.body#/id")))),
                ("update" = (operation_id = "update", parameters(("id" = "$response.body#/id")))),
                ("replace" = (operation_id = "replace", parameters(("id" = "$response.body#/id")))),
            ),
            example = json!({"id": crate::openapi::EXAMPLE_DOC})),
        (status = 400, description = "A recipient, the metadata or the body is not valid; \
            nothing is stored", body = ApiError,
            example = json!({"code": "invalid_request", "error": "the sender 000.00.00.G01 cannot be a recipient"})),
        (status = 413, description = "The body exceeds the agent's limit; nothing is stored",
            body = ApiError,
            example = json!({"code": "too_large", "error": "document body exceeds the limit of 1073741824 bytes"})),
        StoreFault,
    )
)]
async fn send(
    State(a): State<Arc<Agent>>,
    q: Result<StrictQuery<SendQuery>, Response>,
    body: Body,
) -> Response {
    let q = match q {
        Ok(StrictQuery(q)) => q,
        Err(refusal) => return refuse_unread(body, refusal).await,
    };
    let mut recipients = Vec::new();
    for r in q.to.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match AgencyId::parse(r) {
            Ok(id) => recipients.push(id),
            Err(e) => {
                let refusal = err(Refusal::Invalid(format!("recipient: {e}")));
                return refuse_unread(body, refusal).await;
            }
        }
    }
    let priority = match q
        .priority
        .as_deref()
        .map(str::parse::<Priority>)
        .transpose()
    {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => return refuse_unread(body, err(Refusal::Invalid(e.to_string()))).await,
    };
    let meta = Metadata {
        subject: q.subject,
        number: q.number,
        doc_type: q.doc_type,
        priority,
        due_date: q.due,
        filename: q.filename,
    };
    // Everything that can refuse the request is checked before a byte of body is staged: a
    // refused request must leave nothing behind, however often a client retries it.
    if let Err(e) = poros_protocol::envelope::validate_addressing(a.agency(), &recipients, &meta) {
        return refuse_unread(body, err(Refusal::Invalid(e.to_string()))).await;
    }
    let staged = match stage_body(&a, body).await {
        Ok(s) => s,
        Err(SendError::TooLarge(n)) => return err(Refusal::TooLarge(n)),
        Err(SendError::Store(e)) => return store_err(&a, &e),
        Err(e) => return err(Refusal::Invalid(e.to_string())),
    };
    match a.create_document(recipients, meta, staged).await {
        Ok(id) => (StatusCode::CREATED, Json(DocumentCreated { id })).into_response(),
        Err(SendError::Store(e)) => store_err(&a, &e),
        Err(e) => err(Refusal::Invalid(e.to_string())),
    }
}

/// Bytes of an unwanted request body read and discarded before a refusal is sent.
const DRAIN_MAX: u64 = 64 * 1024 * 1024;

/// Answers a refused send after reading (and discarding, never storing) its body, up to
/// [`DRAIN_MAX`]: a server that answers and closes while the client is still uploading makes
/// the client's socket reset, and the client then sees a broken connection instead of the
/// reason it was refused.
pub(crate) async fn refuse_unread(body: Body, refusal: Response) -> Response {
    let mut stream = body.into_data_stream();
    let mut read = 0u64;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len() as u64;
        if read > DRAIN_MAX {
            break;
        }
    }
    refusal
}

/// Receive the caller's body: small bodies stay in memory, larger ones stream to a file.
pub(crate) async fn stage_body(a: &Agent, body: Body) -> Result<ReceivedBody, SendError> {
    stage_body_tee(a, body, None).await
}

/// [`stage_body`], handing each piece also to `tee` as it is staged (the SDK facade parses an
/// upload this way while it arrives); a receiver that went away takes no more.
pub(crate) async fn stage_body_tee(
    a: &Agent,
    body: Body,
    mut tee: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
) -> Result<ReceivedBody, SendError> {
    let max = a.cfg.max_body_bytes;
    let mut stream = body.into_data_stream();
    let mut sink = BodySink::spilling(&a.blobs);
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| SendError::Invalid(format!("reading request body: {e}")))?;
        total += chunk.len() as u64;
        if total > max {
            return Err(SendError::TooLarge(max));
        }
        sink.write(&chunk).await?;
        if let Some(t) = &tee {
            if t.send(chunk).await.is_err() {
                tee = None;
            }
        }
    }
    drop(tee);
    if total == 0 {
        return Err(SendError::Invalid(
            "the document is empty: the request has no body".into(),
        ));
    }
    Ok(sink.finish(Commit::AsReceived).await?)
}

fn recipient_view(
    a: &Agent,
    id: &DocumentId,
    out: &OutRecord,
    agency: &AgencyId,
    st: &RecipientStatus,
) -> RecipientView {
    // Still retried: the hub's or the recipient's last temporary refusal, if any.
    let delay = || a.reasons.reason(*id, agency);
    let (state, time_ms, reason) = match st {
        _ if out.refused.is_some() => ("refused", None, out.refused.clone()),
        RecipientStatus::Pending => match out.accepted_ms() {
            Some(ms) => ("accepted", Some(ms), delay()),
            None if out.is_accepted() => ("accepted", None, delay()),
            None => ("pending", None, delay()),
        },
        // A receipt or notice, in the form of `poros/1` or as a statement.
        answered => {
            let stmt = answered.statement();
            let why = stmt.as_ref().and_then(|s| match &s.kind {
                StatementKind::Receipt { outcome, .. } => {
                    outcome.rejection().map(|r| r.to_string())
                }
                StatementKind::Notice {
                    notice: NoticeKind::BodyLost { reason },
                    ..
                } => Some(reason.to_string()),
                _ => None,
            });
            (answered.state(), stmt.map(|s| s.time_ms), why)
        }
    };
    RecipientView {
        agency: agency.clone(),
        state: state.to_string(),
        time_ms,
        reason,
        detail: None,
    }
}

/// A sent document as the outbox lists it.
fn sent_doc(
    a: &Agent,
    id: &DocumentId,
    out: &OutRecord,
    statuses: &[(AgencyId, RecipientStatus)],
) -> SentDocument {
    let env = out.envelope.envelope().ok();
    SentDocument {
        id: *id,
        subject: env.as_ref().map(|e| e.meta.subject.clone()),
        number: env.as_ref().and_then(|e| e.meta.number.clone()),
        created_ms: env.as_ref().map(|e| e.created_ms),
        body_len: out.body_len,
        body_sha256: hex::encode(out.body_sha256),
        accepted_ms: out.accepted_ms(),
        recipients: statuses
            .iter()
            .map(|(ag, st)| recipient_view(a, id, out, ag, st))
            .collect(),
        statements: None,
    }
}

/// `?after=CURSOR&limit=N` of every listing.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Where the page starts: the `poros-next-cursor` header of the previous page (a
    /// document ID, followed in the receipts listing by `~` and a recipient's agency code).
    #[param(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(~[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2})?$",
        example = "0190f5d2-3c4a-7b2e-9f10-6a7b8c9d0e1f"
    )]
    after: Option<String>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000, example = 100)]
    limit: Option<usize>,
}

impl PageQuery {
    fn check(&self) -> Result<(Option<Cursor>, usize), PageError> {
        let after = self.after.as_deref().map(str::parse).transpose()?;
        Ok((after, listing::page_size(self.limit)?))
    }
}

/// Streams one page as a JSON array, one item at a time, from a blocking thread that reads
/// the page's snapshot: a page of any size costs a few items of memory, not the page. The
/// cursor of the next page, if any, is the `poros-next-cursor` header (absent on the last).
/// A store error after the first byte aborts the body, so a client never mistakes a broken
/// page for a complete one.
async fn stream_page<P: Send + 'static>(
    open: impl FnOnce() -> Result<(P, Option<Cursor>), poros_store::StoreError> + Send + 'static,
    items: impl FnOnce(&P, &mut dyn FnMut(Value) -> bool) -> Result<(), poros_store::StoreError>
        + Send
        + 'static,
) -> Response {
    {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let page = match open() {
                Ok((p, next)) => {
                    let _ = head_tx.send(Ok(next));
                    p
                }
                Err(e) => {
                    let _ = head_tx.send(Err(e));
                    return;
                }
            };
            let mut first = true;
            let mut emit = |v: Value| {
                let mut buf = if first { b"[".to_vec() } else { b",".to_vec() };
                first = false;
                if serde_json::to_writer(&mut buf, &v).is_err() {
                    return false;
                }
                tx.blocking_send(Ok(buf.into())).is_ok()
            };
            let res = items(&page, &mut emit);
            let tail: Result<bytes::Bytes, std::io::Error> = match res {
                Ok(()) if first => Ok(bytes::Bytes::from_static(b"[]")),
                Ok(()) => Ok(bytes::Bytes::from_static(b"]")),
                Err(e) => {
                    warn!(error = %e, "listing failed while streaming");
                    Err(std::io::Error::other("listing failed"))
                }
            };
            let _ = tx.blocking_send(tail);
        });
        let next = match head_rx.await {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => return err(Refusal::Internal(e.to_string())),
            Err(_) => return err(Refusal::Internal("listing task failed".into())),
        };
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let mut r = Response::builder().header("content-type", "application/json");
        if let Some(n) = next {
            r = r.header(poros_protocol::page::NEXT_CURSOR_HEADER, n.to_string());
        }
        r.body(Body::from_stream(body))
            .unwrap_or_else(|e| err(Refusal::Internal(e.to_string())))
    }
}

/// Documents this agency sent, oldest first, with each recipient's delivery state.
#[utoipa::path(
    get,
    path = "/v1/documents",
    tag = "documents",
    operation_id = "outbox",
    summary = "List sent documents",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of sent documents", body = Vec<SentDocument>,
            headers(("poros-next-cursor" = String,
                description = "The `after` of the next page; absent on the last page")),
            links(
                ("status" = (operation_id = "status", parameters(("id" = "$response.body#/0/id")))),
                ("takeback" = (operation_id = "takeback", parameters(("id" = "$response.body#/0/id")))),
                ("remind" = (operation_id = "remind", parameters(("id" = "$response.body#/0/id")))),
                ("update" = (operation_id = "update", parameters(("id" = "$response.body#/0/id")))),
                ("replace" = (operation_id = "replace", parameters(("id" = "$response.body#/0/id")))),
            )),
        (status = 400, description = "`after` or `limit` is not valid", body = ApiError,
            example = json!({"code": "invalid_limit", "error": "limit must be between 1 and 1000 (got 0)"})),
        (status = 500, description = "The listing could not be read (details in the agent's log)",
            body = ApiError),
    )
)]
async fn outbox(State(a): State<Arc<Agent>>, StrictQuery(q): StrictQuery<PageQuery>) -> Response {
    let (after, limit) = match q.check() {
        Ok(p) => p,
        Err(e) => return err(Refusal::from(e)),
    };
    let shown = a.clone();
    stream_page(
        move || {
            let p = a.store.outbox_page(after.as_ref(), limit)?;
            let next = p.next.clone();
            Ok((p, next))
        },
        move |p, emit| p.each_outgoing(|id, o, st| emit(json!(sent_doc(&shown, id, o, &st)))),
    )
    .await
}

// axum responses are returned by value everywhere; boxing this one error would only add noise.
#[allow(clippy::result_large_err)]
pub(crate) fn parse_id(id: &str) -> Result<DocumentId, Response> {
    id.parse()
        .map_err(|_| err(Refusal::BadDocumentId(id.to_string())))
}

/// A sent or received document with its statements: per recipient (sent) or for this agency
/// (received), the business state and the timeline of signed statements.
#[utoipa::path(
    get,
    path = "/v1/documents/{id}",
    tag = "documents",
    operation_id = "status",
    summary = "A document and its statements",
    params(DocIdParam),
    responses(
        (status = 200, description = "The document, `direction` telling sent from received",
            body = DocumentStatus),
        (status = 400, description = "`id` is not a document ID", body = ApiError,
            example = json!({"code": "invalid_document_id", "error": "\"x\" is not a document ID"})),
        (status = 404, description = "No such document here", body = ApiError,
            example = json!({"code": "unknown_document", "error": "no document 0190f5d2-3c4a-7b2e-9f10-6a7b8c9d0e1f here"})),
        (status = 500, description = "The document could not be read (details in the agent's log)",
            body = ApiError),
    )
)]
async fn status(State(a): State<Arc<Agent>>, DocPath(id): DocPath) -> Response {
    match status_view(&a, &id) {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => err(Refusal::NoDocument(id)),
        Err(e) => err(Refusal::Internal(e.to_string())),
    }
}

/// A sent or received document with its statements.
fn status_view(a: &Agent, id: &DocumentId) -> Result<Option<DocumentStatus>, StoreError> {
    let state = a.store.doc_state(id)?;
    let stmts = a.store.statements_of(id)?;
    let replaces = a.store.replaces(id)?;
    if let Some(o) = a.store.outgoing(id)? {
        let st = a.store.statuses(id)?;
        let mut v = sent_doc(a, id, &o, &st);
        let accepted = o.accepted.as_ref();
        crate::views::sent(a, &mut v, accepted, &st, state.as_ref(), &stmts, replaces);
        return Ok(Some(DocumentStatus::Sent(v)));
    }
    Ok(a.store.received(id)?.map(|r| {
        let doc = in_doc(id, &r);
        DocumentStatus::Received(crate::views::received(
            a,
            doc,
            state.as_ref(),
            &stmts,
            replaces,
        ))
    }))
}

fn in_doc(id: &DocumentId, r: &InRecord) -> ReceivedDoc {
    let env = r.envelope.envelope().ok();
    let meta = env.as_ref().map(|e| &e.meta);
    ReceivedDoc {
        id: *id,
        sender: env.as_ref().map(|e| e.sender.clone()),
        subject: meta.map(|m| m.subject.clone()),
        number: meta.and_then(|m| m.number.clone()),
        doc_type: meta.and_then(|m| m.doc_type.clone()),
        priority: meta.map(|m| m.priority),
        due: meta.and_then(|m| m.due_date.clone()),
        filename: meta.and_then(|m| m.filename.clone()),
        body_len: r.body_len,
        body_sha256: hex::encode(r.body_sha256),
        received_ms: r.received_ms,
        reason: r.reason.clone(),
        inbox: None,
    }
}

/// Documents received, oldest first, with this agency's business state on each (documents
/// it gave up by accepting a take-back, a replacement or a removal are not listed).
#[utoipa::path(
    get,
    path = "/v1/inbox",
    tag = "inbox",
    operation_id = "inbox",
    summary = "List received documents",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of received documents", body = Vec<InboxItem>,
            headers(("poros-next-cursor" = String,
                description = "The `after` of the next page; absent on the last page")),
            links(
                ("status" = (operation_id = "status", parameters(("id" = "$response.body#/0/id")))),
                ("body" = (operation_id = "fetch", parameters(("id" = "$response.body#/0/id")))),
                ("progress" = (operation_id = "progress", parameters(("id" = "$response.body#/0/id")))),
                ("answer" = (operation_id = "answer", parameters(("id" = "$response.body#/0/id")))),
            )),
        (status = 400, description = "`after` or `limit` is not valid", body = ApiError,
            example = json!({"code": "invalid_limit", "error": "limit must be between 1 and 1000 (got 0)"})),
        (status = 500, description = "The listing could not be read (details in the agent's log)",
            body = ApiError),
    )
)]
async fn inbox(State(a): State<Arc<Agent>>, StrictQuery(q): StrictQuery<PageQuery>) -> Response {
    received(a, q, false).await
}

/// Documents received that failed a check, with the reason; their bodies are not served.
#[utoipa::path(
    get,
    path = "/v1/quarantine",
    tag = "inbox",
    operation_id = "quarantine",
    summary = "List quarantined documents",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of quarantined documents", body = Vec<ReceivedDoc>,
            headers(("poros-next-cursor" = String,
                description = "The `after` of the next page; absent on the last page"))),
        (status = 400, description = "`after` or `limit` is not valid", body = ApiError,
            example = json!({"code": "invalid_limit", "error": "limit must be between 1 and 1000 (got 0)"})),
        (status = 500, description = "The listing could not be read (details in the agent's log)",
            body = ApiError),
    )
)]
async fn quarantine(
    State(a): State<Arc<Agent>>,
    StrictQuery(q): StrictQuery<PageQuery>,
) -> Response {
    received(a, q, true).await
}

async fn received(a: Arc<Agent>, q: PageQuery, quarantine: bool) -> Response {
    let (after, limit) = match q.check() {
        Ok(p) => p,
        Err(e) => return err(Refusal::from(e)),
    };
    let me = a.agency().clone();
    stream_page(
        move || {
            let p = a.store.received_page(quarantine, after.as_ref(), limit)?;
            let next = p.next.clone();
            Ok((p, next))
        },
        move |p, emit| {
            p.each_received(quarantine, |id, r, state, replaces| {
                if quarantine {
                    return emit(json!(in_doc(id, r)));
                }
                if crate::views::hidden_from_inbox(&me, state.as_ref()) {
                    return true;
                }
                let mut d = in_doc(id, r);
                d.inbox = Some(crate::views::inbox_state(&me, state.as_ref(), replaces));
                emit(json!(d))
            })
        },
    )
    .await
}

/// The body of a received document, byte for byte as its sender signed it.
#[utoipa::path(
    get,
    path = "/v1/inbox/{id}/body",
    tag = "inbox",
    operation_id = "fetch",
    summary = "A received document's body",
    params(DocIdParam),
    responses(
        (status = 200, description = "The document's bytes", content_type = "application/octet-stream",
            body = Binary),
        (status = 400, description = "`id` is not a document ID", body = ApiError),
        (status = 403, description = "The document is quarantined", body = ApiError,
            example = json!({"code": "quarantined", "error": "document 0190f5d2-3c4a-7b2e-9f10-6a7b8c9d0e1f is quarantined"})),
        (status = 404, description = "No such document in the inbox, or its body is no longer kept",
            body = ApiError,
            example = json!({"code": "unknown_document", "error": "no document 0190f5d2-3c4a-7b2e-9f10-6a7b8c9d0e1f in the inbox"})),
        (status = 500, description = "The body could not be read (details in the agent's log)",
            body = ApiError),
    )
)]
async fn fetch(State(a): State<Arc<Agent>>, DocPath(id): DocPath) -> Response {
    let rec = match a.store.received(&id) {
        Ok(Some(r)) if r.reason.is_none() => r,
        Ok(Some(_)) => return err(Refusal::Quarantined(id)),
        Ok(None) => return err(Refusal::NotInInbox(id)),
        Err(e) => return err(Refusal::Internal(e.to_string())),
    };
    match rec.body_at {
        BodyAt::Inline => match a.store.inline_body(&rec.body_sha256) {
            Ok(Some(b)) => b.into_response(),
            Ok(None) => err(Refusal::Internal("inline body missing".into())),
            Err(e) => err(Refusal::Internal(e.to_string())),
        },
        BodyAt::File => match a.blobs.open_read(&rec.body_sha256).await {
            Ok(f) => {
                let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024);
                Response::builder()
                    .header("content-type", "application/octet-stream")
                    .header("content-length", rec.body_len)
                    .body(Body::from_stream(stream))
                    .unwrap_or_else(|e| err(Refusal::Internal(e.to_string())))
            }
            Err(e) => err(Refusal::Internal(e.to_string())),
        },
        BodyAt::Gone => err(Refusal::BodyGone),
    }
}

/// Signed receipts and rejections of sent documents, each signature checked again.
#[utoipa::path(
    get,
    path = "/v1/receipts",
    tag = "events",
    operation_id = "receipts",
    summary = "List receipts of sent documents",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of receipts", body = Vec<ReceiptItem>,
            headers(("poros-next-cursor" = String,
                description = "The `after` of the next page; absent on the last page"))),
        (status = 400, description = "`after` or `limit` is not valid", body = ApiError,
            example = json!({"code": "invalid_limit", "error": "limit must be between 1 and 1000 (got 0)"})),
        (status = 500, description = "The listing could not be read (details in the agent's log)",
            body = ApiError),
    )
)]
async fn receipts(State(a): State<Arc<Agent>>, StrictQuery(q): StrictQuery<PageQuery>) -> Response {
    let (after, limit) = match q.check() {
        Ok(p) => p,
        Err(e) => return err(Refusal::from(e)),
    };
    let agent = a.clone();
    stream_page(
        move || {
            let p = a.store.receipts_page(after.as_ref(), limit)?;
            let next = p.next.clone();
            Ok((p, next))
        },
        move |p, emit| {
            p.each_receipt(|id, rcpt, st| match receipt_item(&agent, id, rcpt, st) {
                Some(item) => emit(json!(item)),
                None => true,
            })
        },
    )
    .await
}

/// A stored receipt or rejection with its signature checked again as of its own time:
/// made by the recipient, in the form of `poros/1` or as a statement.
fn receipt_item(
    a: &Agent,
    id: &DocumentId,
    rcpt: &AgencyId,
    st: &RecipientStatus,
) -> Option<ReceiptItem> {
    let (blob, context) = match st {
        RecipientStatus::Delivered(r) | RecipientStatus::Rejected(r) => (&r.0, RECEIPT_CONTEXT),
        RecipientStatus::DeliveredStatement(s) | RecipientStatus::RejectedStatement(s) => {
            (&s.0, STATEMENT_CONTEXT)
        }
        _ => return None,
    };
    let stmt = st.statement()?;
    let StatementKind::Receipt {
        body_sha256,
        outcome,
    } = &stmt.kind
    else {
        return None;
    };
    let verified = matches!(
        a.trust_verify(blob, context, stmt.time_ms / 1000),
        Ok(Signer::Agency(s)) if &s == rcpt && stmt.from == s
    );
    let rejection = outcome.rejection();
    Some(ReceiptItem {
        id: *id,
        recipient: rcpt.clone(),
        outcome: if *outcome == Outcome::Delivered {
            "delivered"
        } else {
            "rejected"
        }
        .into(),
        reason_code: rejection.as_ref().map(|r| r.code.label().to_string()),
        reason: rejection.map(|r| r.text),
        time_ms: stmt.time_ms,
        body_sha256: hex::encode(body_sha256),
        signature: hex::encode(&blob.signature),
        signature_verified: verified,
    })
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Events after this sequence number: `next` of the previous answer (default 0, from the
    /// start).
    #[serde(default)]
    #[param(minimum = 0, example = 0)]
    after: i64,
    /// Most events in the answer (default 1000; more than 10 000 is taken as 10 000).
    #[param(minimum = 0, example = 1000)]
    limit: Option<i64>,
}

/// Answers stored for sent documents and statements made or received, in storage order,
/// after a cursor: `{events, next}`.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    operation_id = "events",
    summary = "Events after a cursor",
    params(EventsQuery),
    responses(
        (status = 200, description = "The events after `after`", body = EventsPage),
        (status = 400, description = "`after` or `limit` is not a number", body = ApiError,
            example = json!({"code": "invalid_request", "error": "Failed to deserialize query string: after: invalid digit found in string"})),
        (status = 500, description = "The events could not be read (details in the agent's log)",
            body = ApiError),
    )
)]
async fn events(State(a): State<Arc<Agent>>, StrictQuery(q): StrictQuery<EventsQuery>) -> Response {
    use crate::state::statements::AnyEvent;
    // JSON's integers (int64), as documented; a count is never negative.
    let (Ok(after), Ok(limit)) = (
        u64::try_from(q.after),
        u64::try_from(q.limit.unwrap_or(1000)),
    ) else {
        return err(Refusal::NegativeEventsQuery);
    };
    let limit = usize::try_from(limit.min(10_000)).unwrap_or(10_000);
    match a.store.all_events(after, limit) {
        Ok(list) => {
            let next = list.last().map(|(s, _)| *s).unwrap_or(after);
            let events = list
                .into_iter()
                .map(|(seq, e)| match e {
                    AnyEvent::Receipt(e) => EventItem::Receipt(ReceiptEventItem {
                        seq,
                        id: e.doc,
                        recipient: e.recipient,
                        state: e.state,
                        stored_ms: e.stored_ms,
                    }),
                    AnyEvent::Statement(e) => EventItem::Statement(StatementEventItem {
                        seq,
                        doc: e.doc,
                        kind: "statement".into(),
                        direction: e.direction.label().into(),
                        from: e.from,
                        to: e.to,
                        label: e.label,
                        code: e.code,
                        statement: hex::encode(e.statement),
                        stored_ms: e.stored_ms,
                    }),
                })
                .collect();
            Json(EventsPage { events, next }).into_response()
        }
        Err(e) => err(Refusal::Internal(e.to_string())),
    }
}

/// Sign and send this agency's paper-only counts for a month; the answer comes once the hub
/// stored them (a later report for the same month replaces it).
#[utoipa::path(
    post,
    path = "/v1/reports/paper",
    tag = "reports",
    operation_id = "paper_report",
    summary = "Report paper-only counts for a month",
    request_body(content = PaperReportRequest, content_type = "application/json",
        example = json!({"month": "2026-03", "sent": 4, "received": 7})),
    responses(
        (status = 200, description = "The hub stored the counts", body = PaperReportDone),
        (status = 400, description = "The request is not a month and two counts", body = ApiError,
            example = json!({"code": "invalid_month", "error": "month \"2026-13\" is not YYYY-MM"})),
        (status = 413, description = "The request body is over 2 MiB", body = ApiError,
            example = json!({"code": "request_too_large", "error": "length limit exceeded: the request body is over 2097152 bytes"})),
        (status = 502, description = "The hub refused the report or the request failed on the way",
            body = ApiError),
        (status = 503, description = "Not connected to the hub; retry when connected",
            body = ApiError),
    )
)]
async fn paper(State(a): State<Arc<Agent>>, b: JsonBytes) -> Response {
    let b: PaperReportRequest = match json_body(b) {
        Ok(b) => b,
        Err(r) => return r,
    };
    // Checked here so that a bad month is the caller's 400, not the hub's refusal.
    if !poros_protocol::PaperReport::month_is_valid(&b.month) {
        return err(Refusal::BadMonth(b.month));
    }
    if !a.connected() {
        return err(Refusal::NotConnected);
    }
    match a.report_paper(&b.month, b.sent, b.received).await {
        Ok(()) => Json(PaperReportDone { ok: true }).into_response(),
        Err(e) => err(Refusal::HubRefused(format!("{e:#}"))),
    }
}

/// The store part of a backup: a consistent snapshot of the store (one read transaction; the
/// exchange goes on) and every body file it references, streamed as a tar archive while it is
/// written. Private keys never cross the API: `poros-agent backup` adds the directory's files
/// itself. A failure part-way ends the stream before its manifest, which the reader takes as
/// a failed backup. Served, like every route, on the loopback address only.
#[utoipa::path(
    get,
    path = "/v1/backup",
    tag = "operations",
    operation_id = "backup",
    summary = "A backup of the agent's store",
    responses(
        (status = 200, description = "The archive, streamed as it is written",
            content_type = "application/x-tar", body = BackupArchive),
    )
)]
async fn backup(State(a): State<Arc<Agent>>) -> Response {
    let body = crate::backup::stream(&a).await;
    Response::builder()
        .header("content-type", "application/x-tar")
        .body(body)
        .unwrap_or_else(|e| err(Refusal::Internal(e.to_string())))
}
