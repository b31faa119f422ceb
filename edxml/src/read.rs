//! The edXML reader: walks the document by local names, children in any order, unknown
//! elements skipped, and builds a [`Message`]; attachments stream to the sink as they come.

use std::io::BufRead;

use crate::error::{EdxmlError, Limits};
use crate::events::{clip, Ev, Events, Open};
use crate::model::*;
use crate::sink::AttachmentSink;
use crate::stream::Decoded;

type Result<T> = std::result::Result<T, EdxmlError>;

/// Parse a package or status message from a stream; attachments are streamed into `sink`.
/// Memory stays flat regardless of attachment size.
pub fn read<R: BufRead>(input: R, sink: &mut dyn AttachmentSink) -> Result<Message> {
    read_with(input, sink, &Limits::default())
}

/// [`read`] with explicit limits.
pub fn read_with<R: BufRead>(
    input: R,
    sink: &mut dyn AttachmentSink,
    limits: &Limits,
) -> Result<Message> {
    let mut parser = Parser {
        ev: Events::new(input, sink, limits),
        doc: Doc::default(),
    };
    let root = parser.ev.root()?;
    parser.root(&root)?;
    parser.doc.finish()
}

/// What the document said, gathered in whatever order it came.
#[derive(Default)]
struct Doc {
    header: Option<Header>,
    traces: Vec<TraceHeader>,
    business: Option<Business>,
    signature: Option<SignatureState>,
    manifest: Vec<Reference>,
    attachments: Vec<AttachmentInfo>,
}

/// `MessageHeader`, before it is known whether it heads a package or a status message.
#[derive(Default)]
struct Header {
    package: PackageHeader,
    from: Option<Organ>,
    /// Whether an element only a package has was seen.
    package_only: bool,
    status_code: Option<String>,
    staff_info: Option<StaffInfo>,
    description: Option<String>,
    timestamp: Option<String>,
}

impl Doc {
    fn finish(self) -> Result<Message> {
        let header = self.header.ok_or(EdxmlError::Missing {
            element: "MessageHeader",
        })?;
        let from = header.from.ok_or(EdxmlError::Missing { element: "From" })?;
        let status_only = header.staff_info.is_some()
            || header.description.is_some()
            || header.timestamp.is_some();
        if header.package.to.is_empty() {
            let Some(code) = header.status_code else {
                // Neither a package (no To) nor a status (no StatusCode): say what it resembles more.
                let looks_like_status = status_only
                    && !header.package_only
                    && self.manifest.is_empty()
                    && self.attachments.is_empty()
                    && self.business.is_none();
                let element = if looks_like_status {
                    "StatusCode"
                } else {
                    "To"
                };
                return Err(EdxmlError::Missing { element });
            };
            if !STATUS_CODES.contains(&code.as_str()) {
                return Err(EdxmlError::Invalid {
                    element: "StatusCode",
                    problem: format!(
                        "unknown status code \"{}\"; a status message carries one of {}",
                        clip(&code),
                        STATUS_CODES.join(", ")
                    ),
                });
            }
            let mut response_for = header.package.response_for;
            if response_for.len() > 1 {
                return Err(EdxmlError::Invalid {
                    element: "ResponseFor",
                    problem: format!(
                        "appears {} times in a status message, which answers one document",
                        response_for.len()
                    ),
                });
            }
            return Ok(Message::Status(StatusMessage {
                from,
                response_for: response_for.pop().unwrap_or_default(),
                staff_info: header.staff_info.unwrap_or_default(),
                status_code: code,
                description: header.description,
                timestamp: header.timestamp,
                traces: self.traces,
            }));
        }
        let mut package = header.package;
        package.from = from;
        Ok(Message::Package(Package {
            header: package,
            traces: self.traces,
            business: self.business,
            signature: self.signature.unwrap_or(SignatureState::Absent),
            manifest: self.manifest,
            attachments: self.attachments,
        }))
    }
}

struct Parser<'s, R: BufRead> {
    ev: Events<'s, R>,
    doc: Doc,
}

/// Refuses a second occurrence of an element that must be unique.
fn once<T>(slot: &Option<T>, element: &'static str) -> Result<()> {
    match slot {
        Some(_) => Err(EdxmlError::Invalid {
            element,
            problem: "appears more than once".into(),
        }),
        None => Ok(()),
    }
}

impl<R: BufRead> Parser<'_, R> {
    /// Calls `child` for each child element; an element it does not take (`Ok(false)`) is a
    /// signature if named so, and skipped otherwise. Text between children is ignored.
    fn children(
        &mut self,
        open: &Open,
        mut child: impl FnMut(&mut Self, &Open) -> Result<bool>,
    ) -> Result<()> {
        if open.empty {
            return Ok(());
        }
        loop {
            match self.ev.next()? {
                Ev::Open(inner) => {
                    if !child(self, &inner)? {
                        if inner.name == "Signature" {
                            self.signature(&inner)?;
                        } else {
                            self.skip(&inner)?;
                        }
                    }
                }
                Ev::Close => return Ok(()),
                Ev::Text(_) => {}
                Ev::Eof => return Err(self.ev.unexpected_eof()),
            }
        }
    }

    /// Skips an element and everything in it.
    fn skip(&mut self, open: &Open) -> Result<()> {
        if open.empty {
            return Ok(());
        }
        let mut depth = 0usize;
        loop {
            match self.ev.next()? {
                Ev::Open(inner) if !inner.empty => depth += 1,
                Ev::Close if depth == 0 => return Ok(()),
                Ev::Close => depth -= 1,
                Ev::Eof => return Err(self.ev.unexpected_eof()),
                _ => {}
            }
        }
    }

    /// The text of a leaf element, as written (the text of any elements inside it included).
    fn text(&mut self, open: &Open) -> Result<String> {
        let mut text = String::new();
        if open.empty {
            return Ok(text);
        }
        let mut depth = 0usize;
        loop {
            match self.ev.next()? {
                Ev::Text(more) => {
                    self.ev.keep_text(more.len())?;
                    text.push_str(&more);
                }
                Ev::Open(inner) if !inner.empty => depth += 1,
                Ev::Open(_) => {}
                Ev::Close if depth == 0 => return Ok(text),
                Ev::Close => depth -= 1,
                Ev::Eof => return Err(self.ev.unexpected_eof()),
            }
        }
    }

    fn opt(&mut self, open: &Open) -> Result<Option<String>> {
        self.text(open).map(Some)
    }

    /// The children of `<edXML>`, `edXMLEnvelope`, `edXMLHeader` and `edXMLBody`: each level
    /// also takes what belongs one level down, for writers that leave a wrapper out.
    fn root(&mut self, open: &Open) -> Result<()> {
        self.children(open, |p, c| {
            match c.name.as_str() {
                "edXMLEnvelope" => p.envelope(c)?,
                _ => return p.envelope_child(c),
            }
            Ok(true)
        })
    }

    fn envelope(&mut self, open: &Open) -> Result<()> {
        self.children(open, Self::envelope_child)
    }

    fn envelope_child(&mut self, c: &Open) -> Result<bool> {
        match c.name.as_str() {
            "edXMLHeader" => self.children(c, Self::header_child)?,
            "edXMLBody" => self.children(c, Self::body_child)?,
            _ => {
                return self.header_child(c).and_then(|taken| {
                    if taken {
                        Ok(true)
                    } else {
                        self.body_child(c)
                    }
                })
            }
        }
        Ok(true)
    }

    fn header_child(&mut self, c: &Open) -> Result<bool> {
        match c.name.as_str() {
            "MessageHeader" => {
                once(&self.doc.header, "MessageHeader")?;
                let header = self.message_header(c)?;
                self.doc.header = Some(header);
            }
            "TraceHeaderList" => self.children(c, |p, t| {
                match t.name.as_str() {
                    "TraceHeader" => {
                        let trace = p.trace(t)?;
                        p.doc.traces.push(trace);
                    }
                    "Bussiness" | "Business" => p.business(t)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?,
            "Bussiness" | "Business" => self.business(c)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn body_child(&mut self, c: &Open) -> Result<bool> {
        match c.name.as_str() {
            "edXMLManifest" => self.children(c, |p, r| {
                if r.name != "Reference" {
                    return Ok(false);
                }
                let reference = p.reference(r)?;
                p.doc.manifest.push(reference);
                Ok(true)
            })?,
            "AttachmentEncoded" => self.children(c, |p, a| {
                if a.name != "Attachment" {
                    return Ok(false);
                }
                p.attachment(a)?;
                Ok(true)
            })?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn message_header(&mut self, open: &Open) -> Result<Header> {
        let mut h = Header::default();
        self.children(open, |p, c| {
            let pkg = &mut h.package;
            let package_only = !matches!(
                c.name.as_str(),
                "From" | "ResponseFor" | "StatusCode" | "StaffInfo" | "Description" | "Timestamp"
            );
            match c.name.as_str() {
                "From" => {
                    once(&h.from, "From")?;
                    h.from = Some(p.organ(c, "From")?);
                }
                "To" => {
                    let to = p.organ(c, "To")?;
                    pkg.to.push(to);
                }
                "DocumentId" => pkg.document_id = p.opt(c)?,
                "Code" => p.children(c, |p, f| {
                    match f.name.as_str() {
                        "CodeNumber" => pkg.code.code_number = p.opt(f)?,
                        "CodeNotation" => pkg.code.code_notation = p.opt(f)?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?,
                "PromulgationInfo" => p.children(c, |p, f| {
                    let info = &mut pkg.promulgation_info;
                    match f.name.as_str() {
                        "Place" => info.place = p.opt(f)?,
                        "PromulgationDate" => info.promulgation_date = p.opt(f)?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?,
                "DocumentType" => p.children(c, |p, f| {
                    let t = &mut pkg.document_type;
                    match f.name.as_str() {
                        "Type" => t.doc_type = p.opt(f)?,
                        "TypeDetail" => t.type_detail = p.opt(f)?,
                        "TypeName" => t.type_name = p.opt(f)?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?,
                "Subject" => pkg.subject = p.opt(c)?,
                "Content" => pkg.content = p.opt(c)?,
                "SignerInfo" => p.children(c, |p, f| {
                    let s = &mut pkg.signer_info;
                    match f.name.as_str() {
                        "Competence" => s.competence = p.opt(f)?,
                        "Position" => s.position = p.opt(f)?,
                        "FullName" => s.full_name = p.opt(f)?,
                        _ => return Ok(false),
                    }
                    Ok(true)
                })?,
                "DueDate" => pkg.due_date = p.opt(c)?,
                "OtherInfo" => pkg.other_info = p.other_info(c)?,
                "ResponseFor" => {
                    let response = p.response_for(c)?;
                    pkg.response_for.push(response);
                }
                "SteeringType" => pkg.steering_type = p.opt(c)?,
                "ToPlaces" => pkg.to_places.extend(p.list(c, "Place")?),
                "StatusCode" => {
                    once(&h.status_code, "StatusCode")?;
                    h.status_code = Some(p.text(c)?.trim().to_owned());
                }
                "StaffInfo" => h.staff_info = Some(p.staff_info(c)?),
                "Description" => h.description = p.opt(c)?,
                "Timestamp" => h.timestamp = p.opt(c)?,
                _ => return Ok(false),
            }
            h.package_only |= package_only;
            Ok(true)
        })?;
        Ok(h)
    }

    /// `From` or `To`: refused without a non-blank `OrganId`.
    fn organ(&mut self, open: &Open, element: &'static str) -> Result<Organ> {
        let mut o = Organ::default();
        let mut id = None;
        self.children(open, |p, c| {
            match c.name.as_str() {
                "OrganId" => id = p.opt(c)?,
                "OrganizationInCharge" => o.organization_in_charge = p.opt(c)?,
                "OrganName" => o.organ_name = p.opt(c)?,
                "OrganAdd" => o.organ_add = p.opt(c)?,
                "Email" => o.email = p.opt(c)?,
                "Telephone" => o.telephone = p.opt(c)?,
                "Fax" => o.fax = p.opt(c)?,
                "Website" => o.website = p.opt(c)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        match id {
            Some(id) if !id.trim().is_empty() => {
                o.organ_id = id;
                Ok(o)
            }
            Some(_) => Err(EdxmlError::Invalid {
                element,
                problem: "its <OrganId> is empty".into(),
            }),
            None => Err(EdxmlError::Invalid {
                element,
                problem: "has no <OrganId>".into(),
            }),
        }
    }

    /// The text of each `item` child, in order.
    fn list(&mut self, open: &Open, item: &'static str) -> Result<Vec<String>> {
        let mut items = Vec::new();
        self.children(open, |p, c| {
            if c.name != item {
                return Ok(false);
            }
            items.push(p.text(c)?);
            Ok(true)
        })?;
        Ok(items)
    }

    fn other_info(&mut self, open: &Open) -> Result<OtherInfo> {
        let mut o = OtherInfo::default();
        self.children(open, |p, c| {
            match c.name.as_str() {
                "Priority" => o.priority = p.opt(c)?,
                "SphereOfPromulgation" => o.sphere_of_promulgation = p.opt(c)?,
                "TyperNotation" => o.typer_notation = p.opt(c)?,
                "PromulgationAmount" => o.promulgation_amount = p.opt(c)?,
                "PageAmount" => o.page_amount = p.opt(c)?,
                "Direction" => o.direction = p.opt(c)?,
                "Appendixes" => o.appendixes.extend(p.list(c, "Appendix")?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(o)
    }

    fn response_for(&mut self, open: &Open) -> Result<ResponseFor> {
        let mut r = ResponseFor::default();
        self.children(open, |p, c| {
            match c.name.as_str() {
                "OrganId" => r.organ_id = p.opt(c)?,
                "Code" => r.code = p.opt(c)?,
                "DocumentId" => r.document_id = p.opt(c)?,
                "PromulgationDate" => r.promulgation_date = p.opt(c)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(r)
    }

    fn staff_info(&mut self, open: &Open) -> Result<StaffInfo> {
        let mut s = StaffInfo::default();
        self.children(open, |p, c| {
            match c.name.as_str() {
                "Department" => s.department = p.opt(c)?,
                "Staff" => s.staff = p.opt(c)?,
                "Email" => s.email = p.opt(c)?,
                "Mobile" => s.mobile = p.opt(c)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(s)
    }

    fn trace(&mut self, open: &Open) -> Result<TraceHeader> {
        let mut t = TraceHeader::default();
        self.children(open, |p, c| {
            match c.name.as_str() {
                "OrganId" => t.organ_id = p.opt(c)?,
                "Timestamp" => t.timestamp = p.opt(c)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(t)
    }

    /// `Bussiness`; without `BussinessDocType` it is a new document (the harmless reading).
    fn business(&mut self, open: &Open) -> Result<()> {
        once(&self.doc.business, "Bussiness")?;
        let mut doc_type = None;
        let mut b = Business {
            doc_type: BusinessDocType::New,
            reason: None,
            paper: None,
            staff_info: None,
            receivers: Vec::new(),
            replacements: Vec::new(),
        };
        self.children(open, |p, c| {
            match c.name.as_str() {
                "BussinessDocType" | "BusinessDocType" => {
                    once(&doc_type, "BussinessDocType")?;
                    let text = p.text(c)?;
                    doc_type = Some(BusinessDocType::from_code(&text).ok_or_else(|| {
                        EdxmlError::Invalid {
                            element: "BussinessDocType",
                            problem: format!(
                                "\"{}\" is not 0 (new), 1 (revoke), 2 (update) or 3 (replace)",
                                clip(&text)
                            ),
                        }
                    })?);
                }
                "BussinessDocReason" | "BusinessDocReason" => b.reason = p.opt(c)?,
                "Paper" => b.paper = p.opt(c)?,
                "StaffInfo" => b.staff_info = Some(p.staff_info(c)?),
                "BussinessDocumentInfo" | "BusinessDocumentInfo" => p.children(c, |p, l| {
                    if l.name != "ReceiverList" {
                        return Ok(false);
                    }
                    p.receivers(l, &mut b.receivers)?;
                    Ok(true)
                })?,
                "ReceiverList" => p.receivers(c, &mut b.receivers)?,
                "ReplacementInfoList" => p.children(c, |p, r| {
                    if r.name != "ReplacementInfo" {
                        return Ok(false);
                    }
                    let replacement = p.replacement(r)?;
                    b.replacements.push(replacement);
                    Ok(true)
                })?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if let Some(doc_type) = doc_type {
            b.doc_type = doc_type;
        }
        self.doc.business = Some(b);
        Ok(())
    }

    fn receivers(&mut self, open: &Open, receivers: &mut Vec<Receiver>) -> Result<()> {
        self.children(open, |p, c| {
            if c.name != "Receiver" {
                return Ok(false);
            }
            let (mut organ_id, mut kind) = (None, None);
            p.children(c, |p, f| {
                match f.name.as_str() {
                    "OrganId" => organ_id = p.opt(f)?,
                    "ReceiverType" => kind = p.opt(f)?,
                    _ => return Ok(false),
                }
                Ok(true)
            })?;
            let organ_id = organ_id.ok_or_else(|| EdxmlError::Invalid {
                element: "Receiver",
                problem: "has no <OrganId>".into(),
            })?;
            let added = match kind.as_deref().map(str::trim) {
                Some("1") => true,
                Some("0") => false,
                Some(other) => {
                    return Err(EdxmlError::Invalid {
                        element: "ReceiverType",
                        problem: format!("\"{}\" is not 0 (removed) or 1 (added)", clip(other)),
                    })
                }
                None => {
                    return Err(EdxmlError::Invalid {
                        element: "Receiver",
                        problem: "has no <ReceiverType>".into(),
                    })
                }
            };
            receivers.push(Receiver { organ_id, added });
            Ok(true)
        })
    }

    fn replacement(&mut self, open: &Open) -> Result<Replacement> {
        let mut document_id = None;
        let mut organ_ids = Vec::new();
        self.children(open, |p, c| {
            match c.name.as_str() {
                "DocumentId" => document_id = p.opt(c)?,
                "OrganIdList" => organ_ids.extend(p.list(c, "OrganId")?),
                "OrganId" => organ_ids.push(p.text(c)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let document_id = document_id.ok_or_else(|| EdxmlError::Invalid {
            element: "ReplacementInfo",
            problem: "has no <DocumentId>".into(),
        })?;
        Ok(Replacement {
            document_id,
            organ_ids,
        })
    }

    /// `Signature`, in the XML-DSig namespace or none: present if its `SignatureValue` has text.
    fn signature(&mut self, open: &Open) -> Result<()> {
        let mut state = SignatureState::Placeholder;
        if !open.empty {
            let mut depth = 0usize;
            loop {
                match self.ev.next()? {
                    Ev::Open(inner) if inner.name == "SignatureValue" => {
                        let value = self.text(&inner)?;
                        if value.chars().any(|c| !c.is_whitespace()) {
                            state = SignatureState::Present;
                        }
                    }
                    Ev::Open(inner) if !inner.empty => depth += 1,
                    Ev::Close if depth == 0 => break,
                    Ev::Close => depth -= 1,
                    Ev::Eof => return Err(self.ev.unexpected_eof()),
                    _ => {}
                }
            }
        }
        if self.doc.signature != Some(SignatureState::Present) {
            self.doc.signature = Some(state);
        }
        Ok(())
    }

    /// `Reference`; its `ContentId` falls back to an `href` attribute (`xlink:href`).
    fn reference(&mut self, open: &Open) -> Result<Reference> {
        let mut r = Reference::default();
        self.children(open, |p, c| {
            match c.name.as_str() {
                "ContentId" => r.content_id = p.opt(c)?,
                "ContentType" => r.content_type = p.opt(c)?,
                "Description" => r.description = p.opt(c)?,
                "AttachmentName" => r.attachment_name = p.opt(c)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if r.content_id.is_none() {
            r.content_id = self.keep_href(open)?;
        }
        Ok(r)
    }

    fn keep_href(&mut self, open: &Open) -> Result<Option<String>> {
        if let Some(href) = &open.href {
            self.ev.keep_text(href.len())?;
        }
        Ok(open.href.clone())
    }

    /// `Attachment`: its description, and its content streamed to the sink.
    fn attachment(&mut self, open: &Open) -> Result<()> {
        let index = self.doc.attachments.len();
        if index >= self.ev.limits.max_attachments {
            return Err(EdxmlError::TooLarge {
                what: "the number of attachments",
                limit: self.ev.limits.max_attachments as u64,
            });
        }
        let mut meta = AttachmentMeta::default();
        let mut content: Option<Decoded> = None;
        self.children(open, |p, c| {
            match c.name.as_str() {
                "ContentId" => meta.content_id = p.opt(c)?,
                "AttachmentName" => meta.attachment_name = p.opt(c)?,
                "Description" => meta.description = p.opt(c)?,
                "ContentType" => meta.content_type = p.opt(c)?,
                "ContentTransferEncoded" => {
                    if content.is_some() {
                        return Err(EdxmlError::Invalid {
                            element: "ContentTransferEncoded",
                            problem: format!(
                                "appears more than once in attachment {index} (0-based)"
                            ),
                        });
                    }
                    content = Some(if c.empty {
                        p.ev.sink.begin(index)?;
                        Decoded::empty()
                    } else {
                        p.ev.attachment_content(index)?
                    });
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if meta.content_id.is_none() {
            meta.content_id = self.keep_href(open)?;
        }
        let content = match content {
            Some(content) => content,
            None => {
                self.ev.sink.begin(index)?;
                Decoded::empty()
            }
        };
        self.doc.attachments.push(AttachmentInfo {
            meta,
            detected: content.detected,
            len: content.len,
            sha256: content.sha256,
        });
        Ok(())
    }
}
