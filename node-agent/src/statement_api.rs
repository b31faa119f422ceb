//! The local API's statement verbs: progress, takeback, update, replace and answer, each
//! answered with [`StatementMade`] once the statement is stored and queued, or refused with
//! the rule's reason code (422, 404 for an unknown document) and nothing stored.

use crate::agent::{now_ms, Agent, SendError};
use crate::api::{err, parse_id, refuse_unread, stage_body, store_err};
use crate::api_types::{
    AnswerRequest, ApiError, ProgressRequest, RemindRequest, ReplaceQuery, StatementMade,
    TakebackRequest, UpdateRequest,
};
use crate::statements::{MakeError, Say};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use poros_protocol::{AgencyId, BusinessStatus, DocumentId, Metadata, ReasonCode};
use poros_transport::http::StrictQuery;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The statement routes (merged into [`crate::api::router`]).
pub fn routes() -> Router<Arc<Agent>> {
    Router::new()
        .route("/v1/documents/:id/progress", post(progress))
        .route("/v1/documents/:id/takeback", post(takeback))
        .route("/v1/documents/:id/remind", post(remind))
        .route("/v1/documents/:id/update", post(update))
        .route("/v1/documents/:id/replace", post(replace))
        .route("/v1/documents/:id/answer", post(answer))
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
        MakeError::Rule(r) => {
            let status = if r.code == ReasonCode::UnknownDocument {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            let body = ApiError {
                error: r.text,
                reason_code: Some(r.code.label().to_string()),
            };
            (status, Json(body)).into_response()
        }
        MakeError::Invalid(t) => err(StatusCode::BAD_REQUEST, t),
        MakeError::Store(e) | MakeError::Send(SendError::Store(e)) => store_err(a, &e),
        MakeError::Send(SendError::TooLarge(n)) => {
            err(StatusCode::PAYLOAD_TOO_LARGE, SendError::TooLarge(n))
        }
        MakeError::Send(e) => err(StatusCode::BAD_REQUEST, e),
    }
}

/// Decodes a JSON request body, answering 400 (not axum's 422, which is a rule refusal here).
#[allow(clippy::result_large_err)]
fn body<T: DeserializeOwned>(b: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(b).map_err(|e| err(StatusCode::BAD_REQUEST, format!("request: {e}")))
}

#[allow(clippy::result_large_err)]
fn parts<T: DeserializeOwned>(id: &str, b: &Bytes) -> Result<(DocumentId, T), Response> {
    Ok((parse_id(id)?, body(b)?))
}

async fn progress(State(a): State<Arc<Agent>>, Path(id): Path<String>, b: Bytes) -> Response {
    let (doc, q): (_, ProgressRequest) = match parts(&id, &b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let status: BusinessStatus = match q.code.parse() {
        Ok(s) => s,
        Err(e) => return err(StatusCode::BAD_REQUEST, e),
    };
    let say = Say::Progress {
        status,
        reason: q.reason,
    };
    answer_made(&a, a.make_statement(doc, say, q.staff, q.note).await)
}

async fn takeback(State(a): State<Arc<Agent>>, Path(id): Path<String>, b: Bytes) -> Response {
    let (doc, q): (_, TakebackRequest) = match parts(&id, &b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let say = Say::TakeBack {
        to: q.to,
        reason: q.reason,
    };
    answer_made(&a, a.make_statement(doc, say, q.staff, q.note).await)
}

async fn remind(State(a): State<Arc<Agent>>, Path(id): Path<String>, b: Bytes) -> Response {
    let (doc, q): (_, RemindRequest) = match parts(&id, &b) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let say = Say::Remind { to: q.to };
    answer_made(&a, a.make_statement(doc, say, q.staff, Some(q.note)).await)
}

async fn update(State(a): State<Arc<Agent>>, Path(id): Path<String>, b: Bytes) -> Response {
    let (doc, q): (_, UpdateRequest) = match parts(&id, &b) {
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

async fn answer(State(a): State<Arc<Agent>>, Path(id): Path<String>, b: Bytes) -> Response {
    let (doc, q): (_, AnswerRequest) = match parts(&id, &b) {
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
async fn replace(
    State(a): State<Arc<Agent>>,
    Path(id): Path<String>,
    StrictQuery(q): StrictQuery<ReplaceQuery>,
    body: Body,
) -> Response {
    let old = match parse_id(&id) {
        Ok(i) => i,
        Err(r) => return refuse_unread(body, r).await,
    };
    let recipients: Vec<AgencyId> = match &q.to {
        Some(to) => {
            let mut out = Vec::new();
            for r in to.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match AgencyId::parse(r) {
                    Ok(a) => out.push(a),
                    Err(e) => {
                        let r = err(StatusCode::BAD_REQUEST, format!("recipient: {e}"));
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
    let priority = match q.priority.as_deref().map(str::parse).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => return refuse_unread(body, err(StatusCode::BAD_REQUEST, e)).await,
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
        return refuse_unread(body, err(StatusCode::BAD_REQUEST, e)).await;
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
