//! The local API's error answers: what went wrong as a closed set, each with its HTTP status, a
//! stable `code` for programs and a message in the reader's language (`Accept-Language`).
//!
//! A handler answers with a [`Refusal`]; its `Display` is the English text (for logs), and
//! [`localize`], a layer around every route, renders the message in the language the request
//! asks for. Clients read `code`, never the prose.

use crate::api_types::ApiError;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use poros_i18n::{t, Lang};
use poros_protocol::page::PageError;
use poros_protocol::{DocumentId, Reason, ReasonCode};

/// Why the local API refused or failed a request.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Refusal {
    /// The request body could not be read to its end.
    #[error("reading the request body failed")]
    BodyUnreadable,
    /// A JSON request body over the limit (bytes).
    #[error("length limit exceeded: the request body is over {0} bytes")]
    BodyTooLarge(usize),
    /// No route serves this method and path.
    #[error("no route for {method} {path}")]
    NoRoute {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
    /// The request is not of the documented shape; the detail says where.
    #[error("{0}")]
    Invalid(String),
    /// `limit` out of range.
    #[error("limit must be between 1 and {max} (got {got})")]
    PageLimit {
        /// The largest page.
        max: usize,
        /// What was asked.
        got: usize,
    },
    /// `after` is not a cursor the listing issued.
    #[error("{0:?} is not a listing cursor (use the cursor of the previous page)")]
    PageCursor(String),
    /// The path's `{id}` is not a document ID.
    #[error("{0:?} is not a document ID")]
    BadDocumentId(String),
    /// No such document (sent or received) here.
    #[error("no document {0} here")]
    NoDocument(DocumentId),
    /// No such document in the inbox.
    #[error("no document {0} in the inbox")]
    NotInInbox(DocumentId),
    /// The document was quarantined: its body is not handed out.
    #[error("document {0} is quarantined")]
    Quarantined(DocumentId),
    /// The body is no longer kept (retention).
    #[error("body not kept")]
    BodyGone,
    /// A document body over the agent's `max_body_bytes`.
    #[error("document body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// The store cannot write now (the fault's words); retryable.
    #[error("not stored: agent {fault}; retry later")]
    StoreFault {
        /// The disk is full (507), else another storage fault (503).
        full: bool,
        /// The fault, in words.
        fault: String,
    },
    /// A store error whose details stay in the log (they may name internal paths).
    #[error("agent store error (details in the agent's log)")]
    StoreError,
    /// Something failed inside the agent.
    #[error("{0}")]
    Internal(String),
    /// A paper report's month is not YYYY-MM.
    #[error("month {0:?} is not YYYY-MM")]
    BadMonth(String),
    /// The events query's numbers are negative.
    #[error("`after` and `limit` must be at least 0")]
    NegativeEventsQuery,
    /// The request needs the hub and the agent is not connected.
    #[error("not connected to the hub; retry when the agent is connected")]
    NotConnected,
    /// The hub refused the request, or it failed on the way.
    #[error("{0}")]
    HubRefused(String),
    /// The exchange rules forbid it (nothing was stored).
    #[error("{}", .0.text)]
    Rule(Reason),
}

impl Refusal {
    /// The HTTP status the refusal is answered with.
    pub fn status(&self) -> StatusCode {
        use Refusal::*;
        match self {
            BodyUnreadable
            | Invalid(_)
            | PageLimit { .. }
            | PageCursor(_)
            | BadDocumentId(_)
            | BadMonth(_)
            | NegativeEventsQuery => StatusCode::BAD_REQUEST,
            BodyTooLarge(_) | TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            NoRoute { .. } | NoDocument(_) | NotInInbox(_) | BodyGone => StatusCode::NOT_FOUND,
            Quarantined(_) => StatusCode::FORBIDDEN,
            StoreFault { full: true, .. } => StatusCode::INSUFFICIENT_STORAGE,
            StoreFault { full: false, .. } | NotConnected => StatusCode::SERVICE_UNAVAILABLE,
            StoreError | Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            HubRefused(_) => StatusCode::BAD_GATEWAY,
            Rule(r) if r.code == ReasonCode::UnknownDocument => StatusCode::NOT_FOUND,
            Rule(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The stable machine-readable code (`snake_case`); a rule refusal's is its reason code.
    pub fn code(&self) -> &'static str {
        use Refusal::*;
        match self {
            BodyUnreadable => "body_unreadable",
            BodyTooLarge(_) => "request_too_large",
            NoRoute { .. } => "no_route",
            Invalid(_) => "invalid_request",
            PageLimit { .. } => "invalid_limit",
            PageCursor(_) => "invalid_cursor",
            BadDocumentId(_) => "invalid_document_id",
            NoDocument(_) | NotInInbox(_) => "unknown_document",
            Quarantined(_) => "quarantined",
            BodyGone => "body_not_kept",
            TooLarge(_) => "too_large",
            StoreFault { full: true, .. } => "storage_full",
            StoreFault { full: false, .. } => "storage_unavailable",
            StoreError | Internal(_) => "internal_error",
            BadMonth(_) => "invalid_month",
            NegativeEventsQuery => "invalid_events_query",
            NotConnected => "not_connected",
            HubRefused(_) => "hub_refused",
            Rule(r) => r.code.label(),
        }
    }

    /// The message in `lang`, from the catalogue (the English one is the `Display` text).
    pub fn message(&self, lang: Lang) -> String {
        use Refusal::*;
        match self {
            BodyUnreadable => t!(lang, "agent-err-body-unreadable"),
            BodyTooLarge(n) => t!(lang, "agent-err-request-too-large", limit = n.to_string()),
            NoRoute { method, path } => {
                t!(lang, "agent-err-no-route", method = method, path = path)
            }
            Invalid(d) => t!(lang, "agent-err-invalid", detail = d),
            PageLimit { max, got } => t!(
                lang,
                "agent-err-page-limit",
                max = max.to_string(),
                got = got.to_string()
            ),
            PageCursor(c) => t!(lang, "agent-err-page-cursor", cursor = format!("{c:?}")),
            BadDocumentId(id) => t!(lang, "agent-err-bad-document-id", id = format!("{id:?}")),
            NoDocument(id) => t!(lang, "agent-err-no-document", id = id.to_string()),
            NotInInbox(id) => t!(lang, "agent-err-not-in-inbox", id = id.to_string()),
            Quarantined(id) => t!(lang, "agent-err-quarantined", id = id.to_string()),
            BodyGone => t!(lang, "agent-err-body-gone"),
            TooLarge(n) => t!(lang, "agent-err-too-large", limit = n.to_string()),
            StoreFault { fault, .. } => t!(lang, "agent-err-store-fault", fault = fault),
            StoreError => t!(lang, "agent-err-store"),
            Internal(d) => t!(lang, "agent-err-internal", detail = d),
            BadMonth(m) => t!(lang, "agent-err-bad-month", month = format!("{m:?}")),
            NegativeEventsQuery => t!(lang, "agent-err-events-query"),
            NotConnected => t!(lang, "agent-err-not-connected"),
            HubRefused(d) => t!(lang, "agent-err-hub-refused", detail = d),
            Rule(r) if r.code == ReasonCode::UnknownDocument => {
                t!(lang, "agent-err-rule-unknown-document", detail = &r.text)
            }
            Rule(r) => t!(lang, "agent-err-rule", detail = &r.text),
        }
    }

    /// The answer in `lang`.
    pub fn response_in(&self, lang: Lang) -> Response {
        let body = ApiError {
            code: self.code().to_string(),
            error: self.message(lang),
            reason_code: match self {
                Refusal::Rule(r) => Some(r.code.label().to_string()),
                _ => None,
            },
        };
        let mut r = (self.status(), Json(body)).into_response();
        r.extensions_mut().insert(self.clone());
        r
    }
}

impl From<PageError> for Refusal {
    fn from(e: PageError) -> Self {
        match e {
            PageError::Limit(got) => Refusal::PageLimit {
                max: poros_protocol::page::MAX_PAGE,
                got,
            },
            PageError::Cursor(c) => Refusal::PageCursor(c),
            other => Refusal::Invalid(other.to_string()),
        }
    }
}

/// Answered in English; [`localize`] renders it again in the language the request asks for.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        self.response_in(Lang::En)
    }
}

/// The language a request asks for: its `Accept-Language`, English by default.
pub fn request_lang(headers: &axum::http::HeaderMap) -> Lang {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
        .unwrap_or_default()
}

/// The largest error body read back to give it a code (a refusal from an extractor outside
/// this crate is a line of text).
const FOREIGN_ERROR_MAX: usize = 64 * 1024;

/// Around every route: a [`Refusal`] is answered in the request's language, and an error
/// answer made elsewhere (the query extractor's 400) gets its code too.
pub async fn localize(req: Request, next: Next) -> Response {
    let lang = request_lang(req.headers());
    let r = next.run(req).await;
    if let Some(refusal) = r.extensions().get::<Refusal>() {
        return if lang == Lang::En {
            r
        } else {
            refusal.response_in(lang)
        };
    }
    if r.status() != StatusCode::BAD_REQUEST {
        return r;
    }
    // A 400 from an extractor outside this crate: `{"error": "..."}`, read as an invalid request.
    let (parts, body) = r.into_parts();
    match axum::body::to_bytes(body, FOREIGN_ERROR_MAX).await {
        Ok(bytes) => {
            let text = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            Refusal::Invalid(text).response_in(lang)
        }
        Err(_) => Response::from_parts(parts, axum::body::Body::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Refusal> {
        let doc: DocumentId = "0190f5d2-3c4a-7b2e-9f10-6a7b8c9d0e1f".parse().unwrap();
        vec![
            Refusal::BodyUnreadable,
            Refusal::BodyTooLarge(2097152),
            Refusal::NoRoute {
                method: "GET".into(),
                path: "/x".into(),
            },
            Refusal::Invalid("request: missing field `staff`".into()),
            Refusal::PageLimit { max: 1000, got: 0 },
            Refusal::PageCursor("zz".into()),
            Refusal::BadDocumentId("x".into()),
            Refusal::NoDocument(doc),
            Refusal::NotInInbox(doc),
            Refusal::Quarantined(doc),
            Refusal::BodyGone,
            Refusal::TooLarge(1024),
            Refusal::StoreFault {
                full: true,
                fault: "store is full".into(),
            },
            Refusal::StoreFault {
                full: false,
                fault: "store I/O error".into(),
            },
            Refusal::StoreError,
            Refusal::Internal("listing task failed".into()),
            Refusal::BadMonth("2026-13".into()),
            Refusal::NegativeEventsQuery,
            Refusal::NotConnected,
            Refusal::HubRefused("the hub refused".into()),
            Refusal::Rule(Reason::new(
                ReasonCode::IllegalTransition,
                "completed (06) cannot follow arrived (01)",
            )),
            Refusal::Rule(Reason::new(ReasonCode::UnknownDocument, "not known here")),
        ]
    }

    #[test]
    fn the_english_message_is_the_display_text_and_vietnamese_differs() {
        for r in all() {
            assert_eq!(r.message(Lang::En), r.to_string(), "{r:?}");
            let vi = r.message(Lang::Vi);
            assert_ne!(vi, r.to_string(), "{r:?} has no Vietnamese message");
        }
    }

    #[test]
    fn codes_are_snake_case_and_rule_codes_are_reason_labels() {
        for r in all() {
            let c = r.code();
            assert!(
                !c.is_empty() && c.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{c}"
            );
        }
        let r = Refusal::Rule(Reason::new(ReasonCode::IllegalTransition, "x"));
        assert_eq!(r.code(), "illegal_transition");
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
