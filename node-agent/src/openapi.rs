//! The OpenAPI 3.1 document of the local API, generated from the handlers' `#[utoipa::path]`
//! attributes and the request and answer types, so it cannot drift from the code.
//!
//! The router is built from the same attributes ([`crate::api::routes`]): a handler cannot be
//! routed without its documentation, and the document lists exactly the routes served. The
//! document is served at `GET /openapi.json` and committed as `docs/openapi.json`; a test here
//! fails when the two differ (`POROS_WRITE_OPENAPI=1 cargo test -p poros-agent openapi`
//! rewrites the file). Protocol types (agency codes, document IDs, staff, priority, parties)
//! are described by the schema-only stand-ins below, which state the rules their parsers apply.

use crate::api_types::ApiError;
use serde_json::json;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use utoipa::openapi::schema::{
    AllOfBuilder, AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{ContentBuilder, KnownFormat, RefOr, Response, ResponseBuilder};
use utoipa::{IntoParams, IntoResponses, OpenApi, PartialSchema, ToSchema};

/// An agency code as the parsers accept it (`poros_protocol::AgencyId`).
pub const AGENCY_PATTERN: &str = r"^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}$";

/// One line of printable text: no C0/C1 control, line or paragraph separator, or bidirectional
/// control (`poros_protocol::text::is_forbidden`). Single-line fields also have
/// `maxLength: 2048`; the rule counts bytes of UTF-8 (2048 ASCII characters, fewer otherwise).
pub const ONE_LINE: &str =
    r"^[^\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u2028-\u202E\u2066-\u2069]*$";

/// [`ONE_LINE`] with at least one character that is not white space (subjects, staff names,
/// the reasons that are required).
pub const NOT_BLANK_LINE: &str = concat!(
    r"^[^\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u2028-\u202E\u2066-\u2069]*",
    r"[^\s\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u2028-\u202E\u2066-\u2069]",
    r"[^\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u2028-\u202E\u2066-\u2069]*$"
);

/// What `pattern = "..."` attributes name instead of the text rules above (an attribute takes
/// only a literal); [`document`] writes each rule in its placeholder's place.
const PATTERNS: [(&str, &str); 2] = [
    ("<one-line>", ONE_LINE),
    ("<not-blank-line>", NOT_BLANK_LINE),
];

/// The recipient the examples address (the agent in the examples is `000.00.00.G01`).
pub const EXAMPLE_AGENCY: &str = "000.00.00.G02";

/// A document ID in the examples.
pub const EXAMPLE_DOC: &str = "0190f5d2-3c4a-7b2e-9f10-6a7b8c9d0e1f";

/// Schema of an agency code (`poros_protocol::AgencyId`).
pub struct AgencyCode;

impl PartialSchema for AgencyCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(AGENCY_PATTERN))
            .description(Some(
                "A national agency code `DDD.DD.DD.XDD`; the letter names the agency group \
                 (G ministries, H provinces, ...).",
            ))
            .examples([json!(EXAMPLE_AGENCY)])
            .into()
    }
}

impl ToSchema for AgencyCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AgencyId")
    }
}

/// Schema of a document ID (`poros_protocol::DocumentId`, a UUIDv7).
pub struct DocId;

impl PartialSchema for DocId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uuid".into())))
            .description(Some(
                "A document ID: a UUIDv7, so IDs sort by creation time.",
            ))
            .examples([json!(EXAMPLE_DOC)])
            .into()
    }
}

impl ToSchema for DocId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("DocumentId")
    }
}

/// Schema of who made a statement (`poros_protocol::Party`): an agency code, or `hub`.
pub struct PartySchema;

impl PartialSchema for PartySchema {
    fn schema() -> RefOr<Schema> {
        let hub = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["hub"]));
        OneOfBuilder::new()
            .item(AgencyCode::schema())
            .item(hub)
            .description(Some(
                "The maker: an agency code, or `hub` for the hub itself.",
            ))
            .into()
    }
}

impl ToSchema for PartySchema {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Party")
    }
}

/// Schema of a document's handling priority (`poros_protocol::Priority`).
#[derive(ToSchema)]
#[schema(as = Priority, rename_all = "lowercase")]
#[allow(dead_code)] // a schema only
pub enum PrioritySchema {
    /// Ordinary handling.
    Normal,
    /// Urgent ("khẩn").
    Urgent,
    /// Most urgent ("hỏa tốc").
    Flash,
}

/// Schema of the staff member who acted (`poros_protocol::Staff`): department and name
/// present, every field one line of at most 2048 bytes.
#[derive(ToSchema)]
#[schema(as = Staff)]
#[allow(dead_code)] // a schema only
pub struct StaffSchema {
    /// Department or unit.
    #[schema(pattern = "<not-blank-line>", max_length = 2048, examples("Văn thư"))]
    department: String,
    /// Full name.
    #[schema(
        pattern = "<not-blank-line>",
        max_length = 2048,
        examples("Nguyễn Văn An")
    )]
    name: String,
    /// E-mail address.
    #[schema(pattern = "<one-line>", max_length = 2048)]
    email: Option<String>,
    /// Telephone number.
    #[schema(pattern = "<one-line>", max_length = 2048)]
    phone: Option<String>,
}

/// The `{id}` path parameter of the document routes.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // a documentation type
pub struct DocIdParam {
    /// The document's ID.
    #[param(value_type = DocId)]
    id: String,
}

/// Schema of a staff member as answers show one: automatic statements (the hub's acceptance,
/// a receipt) carry empty names.
#[derive(ToSchema)]
#[schema(as = StaffShown)]
#[allow(dead_code)] // a schema only
pub struct StaffView {
    /// Department or unit (empty for automatic statements).
    department: String,
    /// Full name (empty for automatic statements).
    name: String,
    /// E-mail address.
    email: Option<String>,
    /// Telephone number.
    phone: Option<String>,
}

/// Schema of a raw document body (`application/octet-stream`).
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .min_length(Some(1))
            .description(Some(
                "The document's bytes, as they are (a document is never empty).",
            ))
            .into()
    }
}

impl ToSchema for Binary {}

/// A backup stream (`GET /v1/backup`): a tar archive.
pub struct BackupArchive;

impl PartialSchema for BackupArchive {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .description(Some(
                "A tar archive: `POROS-BACKUP` first (archive format, kind `agent`, version), \
                 `store.redb` (the store's snapshot), `bodies/<fan>/<sha256>` (the body files \
                 it references), `manifest.json` last (every member's length and SHA-256).",
            ))
            .into()
    }
}

impl ToSchema for BackupArchive {}

/// An item of `GET /v1/inbox`: a received document and its business state.
pub struct InboxItem;

impl PartialSchema for InboxItem {
    fn schema() -> RefOr<Schema> {
        AllOfBuilder::new()
            .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "ReceivedDoc",
            )))
            .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                "InboxState",
            )))
            .description(Some(
                "A received document with the business state the inbox shows.",
            ))
            .into()
    }
}

impl ToSchema for InboxItem {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        use crate::api_types::{InboxState, ReceivedDoc};
        schemas.push((ReceivedDoc::name().into(), ReceivedDoc::schema()));
        ReceivedDoc::schemas(schemas);
        schemas.push((InboxState::name().into(), InboxState::schema()));
        InboxState::schemas(schemas);
    }
}

/// The schema of a flattened optional part `T` of an answer (present in one view, absent in
/// another): the object has all of `T`, or it has no `key` (and none of `T`'s fields).
pub(crate) fn optional_part<T: ToSchema>(key: &str) -> Schema {
    // utoipa has no `not` keyword; an extension entry serializes as a plain `not` key.
    let lacks: utoipa::openapi::extensions::Extensions = [("not", json!({ "required": [key] }))]
        .into_iter()
        .collect();
    let lacks = ObjectBuilder::new()
        .description(Some(format!("without `{key}`")))
        .extensions(Some(lacks));
    Schema::AnyOf(
        AnyOfBuilder::new()
            .item(RefOr::Ref(
                utoipa::openapi::Ref::from_schema_name(T::name()),
            ))
            .item(lacks)
            .build(),
    )
}

/// `SentDocument`'s change requests and successions (status view only).
pub(crate) fn optional_sent_statements() -> Schema {
    optional_part::<crate::api_types::SentStatements>("changes")
}

/// `RecipientView`'s business state and timeline (status view only).
pub(crate) fn optional_recipient_detail() -> Schema {
    optional_part::<crate::api_types::RecipientDetail>("timeline")
}

/// `ReceivedDoc`'s business state (inbox items only).
pub(crate) fn optional_inbox_state() -> Schema {
    optional_part::<crate::api_types::InboxState>("business")
}

/// `TimelineEntry`'s statement fields (signed statements only).
pub(crate) fn optional_statement_entry() -> Schema {
    optional_part::<crate::api_types::StatementEntry>("statement")
}

/// A business status as `progress` takes it: the word or the national code.
pub(crate) fn business_status() -> Schema {
    let values = poros_protocol::BusinessStatus::ALL
        .iter()
        .flat_map(|b| [b.label(), b.code()]);
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
        .description(Some(
            "arrived (01), rejected (02, needs a reason), registered (03), assigned (04), \
             processing (05, may repeat) or completed (06)",
        ))
        .examples([json!("registered")])
        .into()
}

/// A documented error answer: `description`, the [`ApiError`] shape, and an example.
fn error_answer(description: &str, example: serde_json::Value) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            ApiError::name(),
        ))))
        .example(Some(example))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .into()
}

/// Errors of every route that stores something: the agent's store could not write.
pub struct StoreFault;

impl IntoResponses for StoreFault {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            (
                "500".to_string(),
                error_answer(
                    "An unexpected store error (details in the agent's log, not in the answer)",
                    json!({"code": "internal_error", "error": "agent store error (details in the agent's log)"}),
                ),
            ),
            (
                "503".to_string(),
                error_answer(
                    "The agent's store failed to write; nothing was stored, retry later",
                    json!({"code": "storage_unavailable", "error": "not stored: agent store I/O error; retry later"}),
                ),
            ),
            (
                "507".to_string(),
                error_answer(
                    "The agent's disk is full; nothing was stored, retry later",
                    json!({"code": "storage_full", "error": "not stored: agent store is full; retry later"}),
                ),
            ),
        ])
    }
}

/// Refusals of the statement verbs; nothing is stored.
pub struct StatementRefused;

impl IntoResponses for StatementRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        BTreeMap::from([
            (
                "400".to_string(),
                error_answer(
                    "`id` is not a document ID, or the request is not of the documented shape",
                    json!({"code": "invalid_request", "error": "request: missing field `staff` at line 1 column 20"}),
                ),
            ),
            (
                "413".to_string(),
                error_answer(
                    "The request body is too large: over 2 MiB of JSON, or (replace) a document \
                     over the agent's `max_body_bytes`; nothing is stored",
                    json!({"code": "request_too_large", "error": "length limit exceeded: the request body is over 2097152 bytes"}),
                ),
            ),
            (
                "404".to_string(),
                error_answer(
                    "No such document here (`reason_code` `unknown_document`)",
                    json!({"code": "unknown_document", "error": format!("document {EXAMPLE_DOC} is not known here"),
                        "reason_code": "unknown_document"}),
                ),
            ),
            (
                "422".to_string(),
                error_answer(
                    "The exchange rules forbid this statement now; `reason_code` names the rule",
                    json!({"code": "illegal_transition", "error": "completed (06) cannot follow arrived (01)",
                        "reason_code": "illegal_transition"}),
                ),
            ),
        ])
    }
}

/// The base document: information, tags and the schemas only referenced by hand.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Poros node agent local API",
        description = "The loopback HTTP API of a Poros node agent, for the agency's \
            document-management software and the `poros-agent` command line. Errors are JSON \
            `{\"code\": \"...\", \"error\": \"...\"}`: `code` is stable, for programs; \
            `error` says it in words, in the language the request's `Accept-Language` asks for \
            (English or Vietnamese; English by default), with `reason_code` when a statement is \
            refused under the exchange rules. Listings are pages: pass the `poros-next-cursor` header of one \
            answer as `after` to get the next."
    ),
    tags(
        (name = "documents", description = "Sending documents and following them"),
        (name = "inbox", description = "Documents received, quarantined, and their bodies"),
        (name = "statements", description = "Business statuses and change requests on a document"),
        (name = "events", description = "Receipts and events in storage order"),
        (name = "reports", description = "Reports to the hub"),
        (name = "service", description = "Health, metrics and this document"),
        (name = "operations", description = "Backups of the agent's store"),
    ),
    components(schemas(
        ApiError,
        crate::api_types::SentStatements,
        crate::api_types::RecipientDetail,
        crate::api_types::StatementEntry,
        crate::api_types::InboxState,
    ))
)]
pub struct ApiDoc;

/// The OpenAPI document of the router [`crate::api::routes`] builds.
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::api::routes().into_openapi()
}

/// The document as served and committed: pretty JSON with the text rules in place of their
/// placeholders, and a final newline.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut s = openapi().to_pretty_json().unwrap_or_else(|e| {
            format!("{{\"error\": \"cannot encode the OpenAPI document: {e}\"}}")
        });
        // utoipa 5 writes a link's `operationId` in snake case.
        s = s.replace("\"operation_id\": ", "\"operationId\": ");
        for (placeholder, rule) in PATTERNS {
            let rule = serde_json::Value::from(rule).to_string();
            s = s.replace(&format!("\"{placeholder}\""), &rule);
        }
        s.push('\n');
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::PathBuf;

    fn committed_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
    }

    /// `docs/openapi.json` is the generated document; `POROS_WRITE_OPENAPI=1` rewrites it.
    #[test]
    fn openapi_document_matches_docs_openapi_json() {
        let path = committed_path();
        let generated = document();
        if std::env::var_os("POROS_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, generated)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} differs from the OpenAPI document the code generates; regenerate it with \
             `POROS_WRITE_OPENAPI=1 cargo test -p poros-agent openapi` and review the diff",
            path.display()
        );
    }

    /// Every operation is documented: an ID, a tag, a summary, a success answer, an error
    /// answer with the error schema, and every schema it references exists.
    #[test]
    fn openapi_every_operation_has_answers_and_every_reference_resolves() {
        let doc: Value = serde_json::from_str(document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for r in &refs {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
            assert!(schemas.contains_key(name), "{r} does not resolve");
        }
        let mut ops = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                ops += 1;
                let what = format!("{method} {path}");
                assert!(op["operationId"].is_string(), "{what}: no operationId");
                assert!(op["summary"].is_string(), "{what}: no summary");
                assert!(
                    op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                    "{what}: no tag"
                );
                let answers = op["responses"].as_object().unwrap();
                assert!(
                    answers.keys().any(|c| c.starts_with('2')),
                    "{what}: no success answer"
                );
                for (code, a) in answers {
                    if code.starts_with('4') || code.starts_with('5') {
                        assert_eq!(
                            a["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ApiError",
                            "{what}: the {code} answer is not the error shape"
                        );
                    }
                }
            }
        }
        assert!(ops >= 16, "only {ops} operations documented");
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| collect_refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
