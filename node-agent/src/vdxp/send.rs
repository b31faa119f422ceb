//! `sendEdoc`: the DMS hands over an edXML file. The upload is streamed into the agent's body
//! store and, piece by piece as it arrives, into the edXML parser (attachments decoded and
//! discarded as they stream by); once the staged bytes match `XroadVnpt-hash-file`, the file
//! becomes:
//! - a package (`BussinessDocType` 0): a document whose body is the file itself, byte for
//!   byte, and whose signed metadata comes from its header;
//! - a revoke or update package (1, 2): the take-back or update request on the document its
//!   header names;
//! - a replacement package (3): a new document, and the replace request on each document it
//!   lists;
//! - a status message: the business status (or answer to a change request) it carries.
//!
//! Anything refused leaves nothing behind: no record, and the staged file is removed unless a
//! record already holds the same bytes.

use super::map::{self, Intent};
use super::{ok, Answer, Facade, Refusal};
use crate::agent::{now_ms, Agent, SendError};
use crate::api_types::MetaPatch;
use crate::statements::{MakeError, Say};
use crate::vdxp::auth::SdkHeaders;
use axum::body::Body;
use bytes::Bytes;
use poros_edxml::{Discard, Message, Package};
use poros_protocol::{AgencyId, DocumentId, ReasonCode, Staff};
use poros_store::{BodyAt, ReceivedBody};
use serde_json::{json, Map};
use std::time::Duration;
use tracing::{info, warn};

/// How old a copy of the hub's agency directory may be when recipients are checked (an
/// agency not found in it is looked up again in a fresh copy before it is refused).
const DIRECTORY_MAX_AGE: Duration = Duration::from_secs(300);

pub(super) async fn send_edoc(f: &Facade, h: &SdkHeaders, body: Body) -> Answer {
    let a = &f.agent;
    let given = match h.get("hash-file") {
        Some(g) => g.trim().to_ascii_lowercase(),
        None => {
            drain(body).await;
            return Err(Refusal::Param("missing header XroadVnpt-hash-file".into()));
        }
    };
    let messagetype = h.get("messagetype").unwrap_or("edoc").to_ascii_lowercase();
    if messagetype != "edoc" && messagetype != "status" {
        drain(body).await;
        return Err(Refusal::Param(format!(
            "XroadVnpt-messagetype {messagetype:?} is not edoc or status"
        )));
    }
    // The file is parsed as it arrives, beside its staging: a large package is read once.
    let (staged, parsed) = stage_parsing(a, body).await;
    let staged = match staged {
        Ok(s) => s,
        Err(SendError::TooLarge(n)) => return Err(Refusal::TooLarge(n)),
        Err(SendError::Store(e)) => return Err(e.into()),
        Err(SendError::Invalid(e)) => return Err(Refusal::Param(e)),
    };
    let actual = super::auth::unpadded_hex(&staged.digest());
    if actual != given {
        let len = staged.len();
        discard(a, staged).await;
        return Err(Refusal::HashMismatch { given, actual, len });
    }
    let parsed = match parsed {
        Ok(m) => m,
        Err(e) => {
            discard(a, staged).await;
            return Err(e);
        }
    };
    let res = match parsed {
        Message::Package(p) => package(f, p, staged).await,
        Message::Status(st) => {
            let r = status(f, &st).await;
            discard(a, staged).await;
            r
        }
    };
    let id = res?;
    let mut m = Map::new();
    m.insert("DocId".into(), json!(id));
    Ok(ok(m))
}

/// Read what is left of a refused upload, so the client sees the answer rather than a reset.
async fn drain(body: Body) {
    let _ = crate::api::refuse_unread(body, axum::response::Response::default()).await;
}

/// Forget a staged upload that no record will reference: its file is removed now (under the
/// removal guard, so a record storing the same bytes at this moment keeps them).
async fn discard(a: &Agent, staged: ReceivedBody) {
    let (digest, at) = (staged.digest(), staged.at());
    drop(staged);
    if at != BodyAt::File {
        return;
    }
    let _g = a.blobs.removal_guard().await;
    match a.store.body_file_referenced(&digest) {
        Ok(false) => {
            if let Err(e) = a.blobs.remove(&digest) {
                warn!(error = %e, "removing a refused upload failed; the orphan sweep will");
            }
        }
        Ok(true) => {}
        Err(e) => warn!(error = %e, "checking a refused upload failed; the orphan sweep will"),
    }
}

/// Pieces of the upload handed to the parser at most in flight.
const PARSE_AHEAD: usize = 16;

/// Stage the upload as every body is (small in memory, large to a body file, within the size
/// limit), and parse it as edXML on a blocking thread fed with the same pieces as they arrive, attachments decoded and dropped as they stream by. The parse is only
/// used once the staged bytes matched their hash.
async fn stage_parsing(
    a: &Agent,
    body: Body,
) -> (Result<ReceivedBody, SendError>, Result<Message, Refusal>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(PARSE_AHEAD);
    let parser = tokio::task::spawn_blocking(move || {
        let reader = std::io::BufReader::with_capacity(
            64 * 1024,
            Pieces {
                rx,
                at: Bytes::new(),
            },
        );
        poros_edxml::read(reader, &mut Discard)
    });
    let staged = crate::api::stage_body_tee(a, body, Some(tx)).await;
    let parsed = match parser.await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(poros_edxml::EdxmlError::Io(e))) => Err(Refusal::Edxml(format!(
            "malformed edXML: the file ended early ({e})"
        ))),
        Ok(Err(e)) => Err(Refusal::Edxml(format!("malformed edXML: {e}"))),
        Err(_) => Err(Refusal::Unavailable("the edXML parser stopped".into())),
    };
    (staged, parsed)
}

/// The upload's pieces as one byte stream, for the parser's thread; ends when the upload does.
struct Pieces {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    at: Bytes,
}

impl std::io::Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.at = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.at.len());
        out[..n].copy_from_slice(&self.at[..n]);
        self.at = self.at.slice(n..);
        Ok(n)
    }
}

/// Every recipient must be an active agency in the hub's directory. When the directory cannot
/// be had at all (the hub unreachable, no copy yet), the document is taken as any native one
/// is, and the hub refuses an unknown recipient when it is submitted.
async fn check_registered(a: &Agent, recipients: &[AgencyId]) -> Result<(), Refusal> {
    let mut dir = match a.directory(DIRECTORY_MAX_AGE).await {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, "recipients not checked against the hub's directory; the hub will");
            return Ok(());
        }
    };
    for r in recipients {
        if dir.get(r).is_none() {
            // Perhaps registered since the copy was made.
            if let Ok(fresh) = a.directory(Duration::ZERO).await {
                dir = fresh;
            }
        }
        match dir.get(r) {
            Some(e) if e.active => {}
            Some(_) => {
                return Err(Refusal::UnknownRecipient(format!(
                    "{r} (suspended or revoked)"
                )))
            }
            None => return Err(Refusal::UnknownRecipient(r.to_string())),
        }
    }
    Ok(())
}

fn made(e: MakeError) -> Refusal {
    match e {
        MakeError::Rule(r) if r.code == ReasonCode::UnknownDocument => Refusal::NotFound(r.text),
        MakeError::Rule(r) => Refusal::Rule(format!("{} ({})", r.text, r.code.label())),
        MakeError::Invalid(t) => Refusal::Param(t),
        MakeError::Send(SendError::TooLarge(n)) => Refusal::TooLarge(n),
        MakeError::Send(SendError::Invalid(t)) => Refusal::Param(t),
        MakeError::Store(e) | MakeError::Send(SendError::Store(e)) => e.into(),
    }
}

/// The document a DMS names: a Poros document ID, or the id `organ`'s DMS gave it.
fn resolve(a: &Agent, organ: &str, dms_id: &str) -> Result<DocumentId, Refusal> {
    if let Ok(id) = dms_id.parse::<DocumentId>() {
        if a.store.doc_state(&id)?.is_some() {
            return Ok(id);
        }
    }
    a.store.by_dms_id(organ, dms_id)?.ok_or_else(|| {
        Refusal::NotFound(format!(
            "no document {dms_id:?} of {organ} is known to this agency"
        ))
    })
}

async fn package(f: &Facade, p: Package, staged: ReceivedBody) -> Result<String, Refusal> {
    let a = &f.agent;
    let me = a.agency().clone();
    let out = match map::outgoing(&p.header, &me).and_then(|o| Ok((o, map::intent(&p)?))) {
        Ok(o) => o,
        Err(e) => {
            discard(a, staged).await;
            return Err(Refusal::Edxml(e.to_string()));
        }
    };
    let (out, intent) = out;
    let staff = map::staff(
        p.business.as_ref().and_then(|b| b.staff_info.as_ref()),
        &p.header.from,
    );
    let own = |a: &Agent| -> Result<DocumentId, Refusal> {
        let id = p.header.document_id.as_deref().map(str::trim).unwrap_or("");
        if id.is_empty() {
            return Err(Refusal::Edxml(
                "edXML DocumentId: missing: which document the request is about".into(),
            ));
        }
        resolve(a, me.as_str(), id)
    };
    match intent {
        Intent::New => {
            if let Err(e) = check_registered(a, &out.recipients).await {
                discard(a, staged).await;
                return Err(e);
            }
            // A DMS that did not see the answer sends the same package again: it is the same
            // document.
            if let Some(d) = &out.ext.dms_id {
                if let Some(id) = a.store.by_dms_id(me.as_str(), d)? {
                    if a.store.outgoing(&id)?.map(|o| o.body_sha256) == Some(staged.digest()) {
                        info!(doc = %id, "package sent again: answered with the document it is");
                        return Ok(id.to_string());
                    }
                }
            }
            let id = a
                .create_document_with(out.recipients, out.meta, out.ext, staged)
                .await
                .map_err(|e| made(MakeError::Send(e)))?;
            Ok(id.to_string())
        }
        Intent::Revoke { reason } => {
            discard(a, staged).await;
            let doc = own(a)?;
            let say = Say::TakeBack { to: None, reason };
            say_it(a, doc, say, staff).await
        }
        Intent::Update {
            add,
            remove,
            reason,
        } => {
            discard(a, staged).await;
            let doc = own(a)?;
            check_registered(a, &add).await?;
            let say = Say::Update {
                add,
                remove,
                meta: MetaPatch::default(),
                reason,
            };
            say_it(a, doc, say, staff).await
        }
        Intent::Replace { replaced, reason } => {
            let mut olds = Vec::new();
            for d in &replaced {
                match resolve(a, me.as_str(), d) {
                    Ok(id) => olds.push(id),
                    Err(e) => {
                        discard(a, staged).await;
                        return Err(e);
                    }
                }
            }
            let say = |successor| Say::Replace {
                successor,
                successor_recipients: out.recipients.clone(),
                reason: reason.clone(),
            };
            // Every replace request is checked before the new document is made, so a refused
            // one leaves no new document behind.
            let stand_in = DocumentId::from_bytes([0xff; 16]);
            for old in &olds {
                if let Err(e) =
                    a.prepare_statement(*old, say(stand_in), staff.clone(), None, now_ms())
                {
                    discard(a, staged).await;
                    return Err(made(e));
                }
            }
            if let Err(e) = check_registered(a, &out.recipients).await {
                discard(a, staged).await;
                return Err(e);
            }
            let new = a
                .create_document_with(out.recipients.clone(), out.meta, out.ext, staged)
                .await
                .map_err(|e| made(MakeError::Send(e)))?;
            for old in olds {
                a.make_statement(old, say(new), staff.clone(), None)
                    .await
                    .map_err(made)?;
            }
            Ok(new.to_string())
        }
    }
}

async fn say_it(a: &Agent, doc: DocumentId, say: Say, staff: Staff) -> Result<String, Refusal> {
    let m = a
        .make_statement(doc, say, staff, None)
        .await
        .map_err(made)?;
    Ok(m.statement)
}

async fn status(f: &Facade, st: &poros_edxml::StatusMessage) -> Result<String, Refusal> {
    let a = &f.agent;
    let (dref, say, staff) =
        map::status_say(st, a.agency()).map_err(|e| Refusal::Edxml(e.to_string()))?;
    let doc = resolve(a, &dref.organ, &dref.dms_id)?;
    say_it(a, doc, say, staff).await
}
