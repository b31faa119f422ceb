//! The local API's statement verbs: progress, takeback, update, replace and answer, each
//! answered with [`StatementMade`] once the statement is stored and queued, or refused with
//! the rule's reason code (422, 404 for an unknown document) and nothing stored.

use crate::agent::{now_ms, Agent, SendError};
use crate::api::{err, json_body, refuse_unread, stage_body, store_err, DocPath, JsonBytes};
use crate::api_types::{
    AnswerRequest, ProgressRequest, RemindRequest, ReplaceQuery, StatementMade, TakebackRequest,
    UpdateRequest,
};
use crate::openapi::{Binary, DocIdParam, StatementRefused, StoreFault};
use crate::refusal::Refusal;
use crate::statements::{MakeError, Say};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use poros_protocol::{AgencyId, BusinessStatus, DocumentId, Metadata, Priority};
use poros_transport::http::StrictQuery;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The statement routes (merged into [`crate::api::routes`]).
pub(crate) fn routes() -> OpenApiRouter<Arc<Agent>> {
    OpenApiRouter::new()
        .routes(routes!(progress))
        .routes(routes!(takeback))
        .routes(routes!(remind))
        .routes(routes!(update))
        .routes(routes!(replace))
        .routes(routes!(answer))
}

/// The answer for a statement made, or why not.
fn answer_made(a: &Agent, r: Result<StatementMade, MakeError>) -> Response {
    match r {
        Ok(m) => (StatusCode::OK, Json(m)).into_response(),
        Err(e) => made_error(a, e),
    }
}

fn made_error(a: &Agent, e: MakeError) -> Response {
    match e {
        MakeError::Rule(r) => err(Refusal::Rule(r)),
        MakeError::Invalid(t) => err(Refusal::Invalid(t)),
        MakeError::Store(e) | MakeError::Send(SendError::Store(e)) => store_err(a, &e),
        MakeError::Send(SendError::TooLarge(n)) => err(Refusal::TooLarge(n)),
        MakeError::Send(e) => err(Refusal::Invalid(e.to_string())),
    }
}

/// Say a business status (01–06) on a document this agency received; addressed to its sender.
#[utoipa::path(
    post,
    path = "/v1/documents/{id}/progress",
    tag = "statements",
    operation_id = "progress",
    summary = "Say a business status on a received document",
    params(DocIdParam),
    request_body(content = ProgressRequest, content_type = "application/json",
        example = json!({"code": "registered", "staff": {"department": "Văn thư", "name": "Nguyễn Văn An"}})),
    responses(
        (status = 200, description = "Signed, stored and queued for the hub", body = StatementMade,
            example = json!({"doc": crate::openapi::EXAMPLE_DOC, "statement": "9f2c5b0e7d1a4c3b8e6f20a1d4c7b9e3f5a6c8d0e2b4f6a8c1e3d5f7a9b0c2d4", "kind": "registered",
                "code": "03", "to": ["000.00.00.G01"]})),
        StatementRefused,
        StoreFault,
    )
)]
async fn progress(State(a): State<Arc<Agent>>, DocPath(doc): DocPath, b: JsonBytes) -> Response {
    let q: ProgressRequest = match json_body(b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let status: BusinessStatus = match q.code.parse() {
        Ok(s) => s,
        Err(e) => return err(Refusal::Invalid(e.to_string())),
    };
    let say = Say::Progress {
        status,
        reason: q.reason,
    };
    answer_made(&a, a.make_statement(doc, say, q.staff, q.note).await)
}

/// Ask recipients of a sent document to withdraw it (national code 13); each answers 15
/// (accepted) or 16 (refused).
#[utoipa::path(
    post,
    path = "/v1/documents/{id}/takeback",
    tag = "statements",
    operation_id = "takeback",
    summary = "Ask recipients to withdraw a sent document",
    params(DocIdParam),
    request_body(content = TakebackRequest, content_type = "application/json",
        example = json!({"reason": "sent in error", "staff": {"department": "Văn thư", "name": "Nguyễn Văn An"}})),
    responses(
        (status = 200, description = "Signed, stored and queued for the hub", body = StatementMade),
        StatementRefused,
        StoreFault,
    )
)]
async fn takeback(State(a): State<Arc<Agent>>, DocPath(doc): DocPath, b: JsonBytes) -> Response {
    let q: TakebackRequest = match json_body(b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let say = Say::TakeBack {
        to: q.to,
        reason: q.reason,
    };
    answer_made(&a, a.make_statement(doc, say, q.staff, q.note).await)
}

/// Urge recipients of a sent document to act on it.
#[utoipa::path(
    post,
    path = "/v1/documents/{id}/remind",
    tag = "statements",
    operation_id = "remind",
    summary = "Remind recipients of a sent document",
    params(DocIdParam),
    request_body(content = RemindRequest, content_type = "application/json",
        example = json!({"note": "please register it", "staff": {"department": "Văn thư", "name": "Nguyễn Văn An"}})),
    responses(
        (status = 200, description = "Signed, stored and queued for the hub", body = StatementMade),
        StatementRefused,
        StoreFault,
    )
)]
async fn remind(State(a): State<Arc<Agent>>, DocPath(doc): DocPath, b: JsonBytes) -> Response {
    let q: RemindRequest = match json_body(b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let say = Say::Remind { to: q.to };
    answer_made(&a, a.make_statement(doc, say, q.staff, Some(q.note)).await)
}

/// Add or remove recipients of a sent document, or correct its metadata; each recipient
/// concerned answers 15 or 16.
#[utoipa::path(
    post,
    path = "/v1/documents/{id}/update",
    tag = "statements",
    operation_id = "update",
    summary = "Change the recipients or metadata of a sent document",
    params(DocIdParam),
    request_body(content = UpdateRequest, content_type = "application/json",
        example = json!({"add": ["000.00.00.H01"], "reason": "also concerns H01",
            "staff": {"department": "Văn thư", "name": "Nguyễn Văn An"}})),
    responses(
        (status = 200, description = "Signed, stored and queued for the hub", body = StatementMade),
        StatementRefused,
        StoreFault,
    )
)]
async fn update(State(a): State<Arc<Agent>>, DocPath(doc): DocPath, b: JsonBytes) -> Response {
    let q: UpdateRequest = match json_body(b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let say = Say::Update {
        add: q.add,
        remove: q.remove,
        meta: q.meta,
        reason: q.reason,
    };
    answer_made(&a, a.make_statement(doc, say, q.staff, q.note).await)
}

/// Answer the change request pending on a received document: accept (15) or refuse (16).
#[utoipa::path(
    post,
    path = "/v1/documents/{id}/answer",
    tag = "statements",
    operation_id = "answer",
    summary = "Answer a pending change request",
    params(DocIdParam),
    request_body(content = AnswerRequest, content_type = "application/json",
        example = json!({"accept": true, "staff": {"department": "Văn thư", "name": "Nguyễn Văn An"}})),
    responses(
        (status = 200, description = "Signed, stored and queued for the hub", body = StatementMade),
        StatementRefused,
        StoreFault,
    )
)]
async fn answer(State(a): State<Arc<Agent>>, DocPath(doc): DocPath, b: JsonBytes) -> Response {
    let q: AnswerRequest = match json_body(b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let say = Say::Answer {
        accept: q.accept,
        reason: q.reason,
    };
    answer_made(&a, a.make_statement(doc, say, q.staff, q.note).await)
}

/// A new document (the request body) and the request that it replace `id`: the document is
/// signed and queued first; the request is stored with it and submitted once the hub has
/// accepted the document. Everything that can refuse the request is checked first, with a
/// stand-in successor, so a refusal leaves nothing behind.
#[utoipa::path(
    post,
    path = "/v1/documents/{id}/replace",
    tag = "statements",
    operation_id = "replace",
    summary = "Replace a sent document by a new one",
    params(DocIdParam, ReplaceQuery),
    request_body(
        content = Binary,
        content_type = "application/octet-stream",
        description = "The new document's bytes"
    ),
    responses(
        (status = 200, description = "The new document is signed and queued, and the request \
            that it replace `id` stored with it", body = StatementMade,
            example = json!({"doc": crate::openapi::EXAMPLE_DOC, "statement": "4be1a7c3e5f9d2b6a8c0e4f1d3b5a7c9e2f4d6b8a0c1e3f5d7b9a2c4e6f8d0b1", "kind": "replace",
                "code": null, "to": ["000.00.00.G02"], "successor": "0190f5d3-0a1b-7c2d-8e3f-405162738495"})),
        StatementRefused,
        StoreFault,
    )
)]
async fn replace(
    State(a): State<Arc<Agent>>,
    id: Result<DocPath, Response>,
    q: Result<StrictQuery<ReplaceQuery>, Response>,
    body: Body,
) -> Response {
    let (old, q) = match (id, q) {
        (Ok(DocPath(old)), Ok(StrictQuery(q))) => (old, q),
        (Err(refusal), _) | (_, Err(refusal)) => return refuse_unread(body, refusal).await,
    };
    let recipients: Vec<AgencyId> = match &q.to {
        Some(to) => {
            let mut out = Vec::new();
            for r in to.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match AgencyId::parse(r) {
                    Ok(a) => out.push(a),
                    Err(e) => {
                        let r = err(Refusal::Invalid(format!("recipient: {e}")));
                        return refuse_unread(body, r).await;
                    }
                }
            }
            out
        }
        None => match a.store.doc_state(&old) {
            Ok(Some(s)) => s.current_recipients().cloned().collect(),
            // Unknown: the check below refuses it with its reason.
            Ok(None) => Vec::new(),
            Err(e) => return refuse_unread(body, store_err(&a, &e)).await,
        },
    };
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
        subject: q.subject.clone(),
        number: q.number.clone(),
        doc_type: q.doc_type.clone(),
        priority,
        due_date: q.due.clone(),
        filename: q.filename.clone(),
    };
    let say = |successor| Say::Replace {
        successor,
        successor_recipients: recipients.clone(),
        reason: q.reason.clone(),
    };
    let stand_in = DocumentId::from_bytes([0xff; 16]);
    if let Err(e) = a.prepare_statement(old, say(stand_in), q.staff(), q.note.clone(), now_ms()) {
        return refuse_unread(body, made_error(&a, e)).await;
    }
    if let Err(e) = poros_protocol::envelope::validate_addressing(a.agency(), &recipients, &meta) {
        return refuse_unread(body, err(Refusal::Invalid(e.to_string()))).await;
    }
    let staged = match stage_body(&a, body).await {
        Ok(s) => s,
        Err(e) => return made_error(&a, MakeError::Send(e)),
    };
    let successor = match a.create_document(recipients.clone(), meta, staged).await {
        Ok(id) => id,
        Err(e) => return made_error(&a, MakeError::Send(e)),
    };
    let made = a
        .make_statement(old, say(successor), q.staff(), q.note.clone())
        .await;
    if let Err(e) = &made {
        tracing::warn!(doc = %old, successor = %successor, error = %e, "new document sent but its replace request was refused");
    }
    answer_made(&a, made)
}
