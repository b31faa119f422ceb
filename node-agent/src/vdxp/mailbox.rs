//! What the DMS has to take: the list (`getReceivedEdocList`), one message as an edXML file in
//! base64 (`getEdoc`), the DMS's word that it took one (`updateStatus`: `done` removes it from
//! the list), and the counts.
//!
//! `getEdoc` streams: the file is written in pieces straight into the base64 text of the JSON
//! answer, so memory stays flat whatever its size. A document sent as edXML is given byte for
//! byte as its sender's DMS wrote it; one sent natively is given as a package built from its
//! signed metadata with the file as its attachment; a change request as a package naming the
//! document with its business type; a status as a status message.

use super::map;
use super::{ok, Answer, Facade, Refusal};
use crate::agent::{now_ms, Agent};
use crate::state::dms::{BoxItem, BoxKind, Taking, Took};
use crate::state::{BodyAt, InRecord};
use crate::vdxp::auth::SdkHeaders;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::write::EncoderWriter;
use bytes::Bytes;
use poros_edxml::{AttachmentMeta, AttachmentSource, Discard, Message, PackageHeader};
use poros_protocol::{AgencyId, BodyFormat, Digest, DocumentId, Envelope, Statement};
use serde_json::{json, Map};
use std::io::{Read, Write};
use std::time::Duration;

/// Items listed at most per call; the DMS takes them and asks again.
const LIST_MAX: usize = 1000;
/// Bytes of answer handed to the connection at a time.
const PIECE: usize = 256 * 1024;

fn kind_of(h: &SdkHeaders) -> Result<BoxKind, Refusal> {
    match h.get("messagetype").map(str::to_ascii_lowercase).as_deref() {
        None | Some("edoc") => Ok(BoxKind::Edoc),
        Some("status") => Ok(BoxKind::Status),
        Some(o) => Err(Refusal::Param(format!(
            "XroadVnpt-messagetype {o:?} is not edoc or status"
        ))),
    }
}

fn item_json(f: &Facade, i: &BoxItem) -> serde_json::Value {
    json!({
        "docId": i.id,
        "serviceType": "eDoc",
        "messageType": i.kind.word(),
        "created_time": map::edxml_time(i.created_ms, f.offset_secs),
        "updated_time": map::edxml_time(i.updated_ms, f.offset_secs),
        "from": i.from.to_string(),
        "to": f.agent.agency().to_string(),
        "status": i.taking.word(),
        "status_desc": match i.taking {
            Taking::New => "waiting to be taken",
            Taking::Processing => "being processed by the DMS",
            Taking::Failed => "the DMS failed to take it; still waiting",
        },
    })
}

pub(super) fn list(f: &Facade, h: &SdkHeaders) -> Answer {
    let kind = kind_of(h)?;
    let items = f.agent.store.dms_box(kind, LIST_MAX)?;
    let mut m = Map::new();
    m.insert(
        "data".into(),
        items
            .iter()
            .map(|i| item_json(f, i))
            .collect::<Vec<_>>()
            .into(),
    );
    Ok(ok(m))
}

pub(super) fn count(f: &Facade, kind: BoxKind) -> Answer {
    let n = f.agent.store.dms_box_count(kind)?;
    let mut m = Map::new();
    m.insert("count".into(), json!(n));
    Ok(ok(m))
}

pub(super) async fn update_status(f: &Facade, h: &SdkHeaders) -> Answer {
    let id = h
        .get("docId")
        .ok_or_else(|| Refusal::Param("missing header XroadVnpt-docId".into()))?
        .trim()
        .to_string();
    let status = h
        .get("status")
        .ok_or_else(|| Refusal::Param("missing header XroadVnpt-status".into()))?;
    let taking = match status.trim().to_ascii_lowercase().as_str() {
        "done" => None,
        "processing" => Some(Taking::Processing),
        "fail" => Some(Taking::Failed),
        o => {
            return Err(Refusal::Param(format!(
                "XroadVnpt-status {o:?} is not done, fail or processing"
            )))
        }
    };
    match f.agent.store.dms_took(id.clone(), taking, now_ms()).await? {
        Took::Recorded => Ok(ok(Map::new())),
        Took::Unknown => Err(Refusal::NotFound(format!(
            "no message {id:?} is waiting to be taken"
        ))),
    }
}

/// What `getEdoc` writes, resolved before the answer starts (so a failure is a `FAIL`).
enum Source {
    /// A body given as it is.
    Body(BodySource),
    /// A package built from a native document: header and the body as its attachment.
    Native {
        header: Box<PackageHeader>,
        meta: AttachmentMeta,
        body: BodySource,
    },
    /// A package with no attachment (a change request).
    Header {
        header: Box<PackageHeader>,
        business: poros_edxml::Business,
    },
    /// A status message.
    Status(Box<poros_edxml::StatusMessage>),
}

/// A stored body: in the database or a file.
enum BodySource {
    Bytes(Vec<u8>),
    File(std::path::PathBuf),
}

impl BodySource {
    fn open(&self) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            BodySource::Bytes(b) => Box::new(b.as_slice()),
            BodySource::File(p) => Box::new(std::io::BufReader::with_capacity(
                PIECE,
                std::fs::File::open(p)?,
            )),
        })
    }
}

fn body_of(a: &Agent, rec: &InRecord) -> Result<BodySource, Refusal> {
    match rec.body_at {
        BodyAt::Inline => a
            .store
            .inline_body(&rec.body_sha256)?
            .map(BodySource::Bytes)
            .ok_or_else(|| Refusal::NotFound("the document's body is not held here".into())),
        BodyAt::File => Ok(BodySource::File(a.blobs.path(&rec.body_sha256))),
        BodyAt::Gone => Err(Refusal::NotFound(
            "the document's body is not held here".into(),
        )),
    }
}

fn envelope_of(rec: &InRecord) -> Result<Envelope, Refusal> {
    rec.envelope
        .envelope()
        .map_err(|e| Refusal::Unavailable(format!("stored envelope does not decode: {e}")))
}

/// Names of agencies from the directory copy at hand, if any.
async fn names(a: &Agent) -> impl Fn(&AgencyId) -> Option<String> {
    let dir = a.directory(Duration::from_secs(3600)).await.ok();
    move |code: &AgencyId| {
        dir.as_ref()
            .and_then(|d| d.get(code))
            .map(|e| e.name.clone())
    }
}

/// The header of a received document as its sender's DMS wrote it (edXML) or as built from
/// its signed metadata (native).
async fn header_of(a: &Agent, rec: &InRecord, env: &Envelope) -> Result<PackageHeader, Refusal> {
    if env.ext.format == BodyFormat::Edxml {
        let body = body_of(a, rec)?;
        let parsed = tokio::task::spawn_blocking(move || {
            let r = body.open().map_err(poros_edxml::EdxmlError::Io)?;
            poros_edxml::read(std::io::BufReader::new(r), &mut Discard)
        })
        .await
        .map_err(|_| Refusal::Unavailable("the edXML parser stopped".into()))?;
        if let Ok(Message::Package(p)) = parsed {
            return Ok(p.header);
        }
    }
    let n = names(a).await;
    Ok(map::native_header(env, &n))
}

async fn resolve(f: &Facade, id: &str) -> Result<Source, Refusal> {
    let a = &f.agent;
    if let Ok(doc) = id.parse::<DocumentId>() {
        let rec = a
            .store
            .received(&doc)?
            .filter(|r| r.reason.is_none())
            .ok_or_else(|| Refusal::NotFound(format!("no document {id} was received here")))?;
        let env = envelope_of(&rec)?;
        let body = body_of(a, &rec)?;
        if env.ext.format == BodyFormat::Edxml {
            return Ok(Source::Body(body));
        }
        let n = names(a).await;
        let meta = AttachmentMeta {
            content_id: Some("cid:1".into()),
            attachment_name: env
                .meta
                .filename
                .clone()
                .or_else(|| Some("document".into())),
            description: Some(env.meta.subject.clone()),
            content_type: None,
        };
        return Ok(Source::Native {
            header: Box::new(map::native_header(&env, &n)),
            meta,
            body,
        });
    }
    let digest: Digest = hex::decode(id)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| Refusal::NotFound(format!("{id:?} names no document or message here")))?;
    let stored = a
        .store
        .statement_by_digest(&digest)?
        .ok_or_else(|| Refusal::NotFound(format!("no message {id} was received here")))?;
    let stmt: Statement = stored.statement()?;
    if let Some(business) = map::change_business(&stmt) {
        let rec = a.store.received(&stmt.doc_id)?.ok_or_else(|| {
            Refusal::NotFound(format!("the document of message {id} is not held here"))
        })?;
        let env = envelope_of(&rec)?;
        let header = header_of(a, &rec, &env).await?;
        return Ok(Source::Header {
            header: Box::new(header),
            business,
        });
    }
    let env = match a.store.outgoing(&stmt.doc_id)? {
        Some(o) => o.envelope.envelope(),
        None => match a.store.received(&stmt.doc_id)? {
            Some(r) => r.envelope.envelope(),
            None => {
                return Err(Refusal::NotFound(format!(
                    "the document of message {id} is not held here"
                )))
            }
        },
    }
    .map_err(|e| Refusal::Unavailable(format!("stored envelope does not decode: {e}")))?;
    let from_name = match &stmt.from {
        poros_protocol::Party::Agency(c) => names(a).await(c),
        poros_protocol::Party::Hub => None,
    };
    map::status_message(&stmt, &env, from_name.as_deref(), f.offset_secs)
        .map(|m| Source::Status(Box::new(m)))
        .ok_or_else(|| Refusal::NotFound(format!("message {id} is not one a DMS reads")))
}

pub(super) async fn get(f: &Facade, h: &SdkHeaders) -> Answer {
    let id = h
        .get("docId")
        .ok_or_else(|| Refusal::Param("missing header XroadVnpt-docId".into()))?
        .trim()
        .to_string();
    let source = resolve(f, &id).await?;
    Ok(stream_answer(source))
}

/// Hands written bytes to the connection in pieces; an error aborts the answer.
struct Pipe {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Write for Pipe {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE));
        self.tx
            .blocking_send(Ok(piece.into()))
            .map_err(|_| std::io::Error::other("the client went away"))
    }
}

fn produce(source: &mut Source, out: &mut dyn Write) -> Result<(), poros_edxml::EdxmlError> {
    match source {
        Source::Body(b) => {
            let mut r = b.open()?;
            std::io::copy(&mut r, out)?;
        }
        Source::Native { header, meta, body } => {
            let mut r = body.open()?;
            let mut att = [AttachmentSource {
                meta: meta.clone(),
                content: &mut r,
            }];
            poros_edxml::write_package(out, header, &[], None, &mut att)?;
        }
        Source::Header { header, business } => {
            poros_edxml::write_package(out, header, &[], Some(business), &mut [])?;
        }
        Source::Status(s) => {
            poros_edxml::write_status(out, s)?;
        }
    }
    Ok(())
}

fn stream_answer(mut source: Source) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut pipe = Pipe {
            tx: tx.clone(),
            buf: Vec::with_capacity(PIECE),
        };
        let res = (|| -> Result<(), poros_edxml::EdxmlError> {
            pipe.write_all(br#"{"status":"OK","ErrorCode":"0","ErrorDesc":"","data":""#)?;
            {
                let mut enc = EncoderWriter::new(&mut pipe, &STANDARD);
                produce(&mut source, &mut enc)?;
                enc.finish()?;
            }
            pipe.write_all(br#""}"#)?;
            pipe.flush()?;
            Ok(())
        })();
        if let Err(e) = res {
            tracing::warn!(error = %e, "getEdoc answer aborted");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    (
        [("content-type", "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}
