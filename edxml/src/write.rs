//! The edXML writer: packages and status messages as UTF-8 with an XML declaration, the QCVN
//! 102 namespace as default on the root and as the `edXML:` prefix of every child, text
//! escaped, and attachments base64-encoded from their readers in chunks on one line.

use std::io::{self, Read, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::EdxmlError;
use crate::events::{legal, NAMESPACE};
use crate::model::*;

type Result<T> = std::result::Result<T, EdxmlError>;

/// Raw attachment bytes read at a time (a multiple of 3, so chunks encode without padding).
const CHUNK: usize = 48 * 1024;

/// An attachment to write: metadata plus a reader of its raw (decoded) bytes.
pub struct AttachmentSource<'a> {
    /// What the `Attachment` element and its manifest `Reference` say.
    pub meta: AttachmentMeta,
    /// The attachment's bytes.
    pub content: &'a mut dyn Read,
}

/// Write a package: header, traces, business, the manifest built from the attachments, then
/// `AttachmentEncoded` with each attachment's bytes base64-encoded in chunks (one line, no
/// wrapping). No `Signature` is written. Returns bytes written.
///
/// Refuses (before writing anything) a header without `To`, a `From` or `To` with a blank
/// `OrganId`, and text holding characters XML 1.0 cannot carry, so what it writes reads back.
pub fn write_package<W: Write>(
    out: W,
    header: &PackageHeader,
    traces: &[TraceHeader],
    business: Option<&Business>,
    attachments: &mut [AttachmentSource<'_>],
) -> Result<u64> {
    if header.to.is_empty() {
        return Err(EdxmlError::Missing { element: "To" });
    }
    // Everything is rendered into a check pass first, so a refusal leaves `out` untouched.
    let mut check = Xml {
        out: io::sink(),
        written: 0,
    };
    package_envelope(&mut check, header, traces, business, attachments)?;
    let mut x = Xml { out, written: 0 };
    x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")?;
    x.root_open()?;
    package_envelope(&mut x, header, traces, business, attachments)?;
    if !attachments.is_empty() {
        x.open("AttachmentEncoded")?;
        for attachment in attachments.iter_mut() {
            x.open("Attachment")?;
            attachment_meta(&mut x, &attachment.meta)?;
            x.raw("<edXML:ContentTransferEncoded>")?;
            x.base64(&mut *attachment.content)?;
            x.raw("</edXML:ContentTransferEncoded>")?;
            x.close("Attachment")?;
        }
        x.close("AttachmentEncoded")?;
    }
    x.raw("</edXML>\n")?;
    x.out.flush()?;
    Ok(x.written)
}

/// Write a status message (header and traces; no body, no attachment). Returns bytes written.
///
/// Refuses a status code outside [`STATUS_CODES`], a blank `From` `OrganId` and text holding
/// characters XML 1.0 cannot carry.
pub fn write_status<W: Write>(out: W, status: &StatusMessage) -> Result<u64> {
    if !STATUS_CODES.contains(&status.status_code.as_str()) {
        return Err(EdxmlError::Invalid {
            element: "StatusCode",
            problem: format!(
                "unknown status code {:?}; expected one of {}",
                status.status_code,
                STATUS_CODES.join(", ")
            ),
        });
    }
    let mut check = Xml {
        out: io::sink(),
        written: 0,
    };
    status_envelope(&mut check, status)?;
    let mut x = Xml { out, written: 0 };
    x.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")?;
    x.root_open()?;
    status_envelope(&mut x, status)?;
    x.raw("</edXML>\n")?;
    x.out.flush()?;
    Ok(x.written)
}

fn package_envelope<W: Write>(
    x: &mut Xml<W>,
    h: &PackageHeader,
    traces: &[TraceHeader],
    business: Option<&Business>,
    attachments: &[AttachmentSource<'_>],
) -> Result<()> {
    x.open("edXMLEnvelope")?;
    x.open("edXMLHeader")?;
    x.open("MessageHeader")?;
    organ(x, "From", &h.from)?;
    for to in &h.to {
        organ(x, "To", to)?;
    }
    x.field("DocumentId", &h.document_id)?;
    group(
        x,
        "Code",
        &[
            ("CodeNumber", &h.code.code_number),
            ("CodeNotation", &h.code.code_notation),
        ],
    )?;
    let info = &h.promulgation_info;
    group(
        x,
        "PromulgationInfo",
        &[
            ("Place", &info.place),
            ("PromulgationDate", &info.promulgation_date),
        ],
    )?;
    let t = &h.document_type;
    group(
        x,
        "DocumentType",
        &[
            ("Type", &t.doc_type),
            ("TypeDetail", &t.type_detail),
            ("TypeName", &t.type_name),
        ],
    )?;
    x.field("Subject", &h.subject)?;
    x.field("Content", &h.content)?;
    let s = &h.signer_info;
    group(
        x,
        "SignerInfo",
        &[
            ("Competence", &s.competence),
            ("Position", &s.position),
            ("FullName", &s.full_name),
        ],
    )?;
    x.field("DueDate", &h.due_date)?;
    other_info(x, &h.other_info)?;
    for response in &h.response_for {
        response_for(x, response)?;
    }
    x.field("SteeringType", &h.steering_type)?;
    x.list("ToPlaces", "Place", &h.to_places)?;
    x.close("MessageHeader")?;
    if !traces.is_empty() || business.is_some() {
        x.open("TraceHeaderList")?;
        trace_headers(x, traces)?;
        if let Some(b) = business {
            write_business(x, b)?;
        }
        x.close("TraceHeaderList")?;
    }
    x.close("edXMLHeader")?;
    x.open("edXMLBody")?;
    x.open("edXMLManifest")?;
    for attachment in attachments {
        let meta = &attachment.meta;
        match &meta.content_id {
            Some(id) => {
                x.raw("<edXML:Reference xlink:href=\"")?;
                x.text("Reference", id)?;
                x.raw("\">")?;
            }
            None => x.open("Reference")?,
        }
        x.field("ContentId", &meta.content_id)?;
        x.field("ContentType", &meta.content_type)?;
        x.field("Description", &meta.description)?;
        x.field("AttachmentName", &meta.attachment_name)?;
        x.close("Reference")?;
    }
    x.close("edXMLManifest")?;
    x.close("edXMLBody")?;
    x.close("edXMLEnvelope")
}

fn status_envelope<W: Write>(x: &mut Xml<W>, status: &StatusMessage) -> Result<()> {
    x.open("edXMLEnvelope")?;
    x.open("edXMLHeader")?;
    x.open("MessageHeader")?;
    organ(x, "From", &status.from)?;
    response_for(x, &status.response_for)?;
    staff_info(x, &status.staff_info)?;
    x.field("StatusCode", &Some(status.status_code.clone()))?;
    x.field("Description", &status.description)?;
    x.field("Timestamp", &status.timestamp)?;
    x.close("MessageHeader")?;
    if !status.traces.is_empty() {
        x.open("TraceHeaderList")?;
        trace_headers(x, &status.traces)?;
        x.close("TraceHeaderList")?;
    }
    x.close("edXMLHeader")?;
    x.close("edXMLEnvelope")
}

fn organ<W: Write>(x: &mut Xml<W>, element: &'static str, o: &Organ) -> Result<()> {
    if o.organ_id.trim().is_empty() {
        return Err(EdxmlError::Invalid {
            element,
            problem: "its OrganId is blank".into(),
        });
    }
    x.open(element)?;
    x.field("OrganId", &Some(o.organ_id.clone()))?;
    x.field("OrganizationInCharge", &o.organization_in_charge)?;
    x.field("OrganName", &o.organ_name)?;
    x.field("OrganAdd", &o.organ_add)?;
    x.field("Email", &o.email)?;
    x.field("Telephone", &o.telephone)?;
    x.field("Fax", &o.fax)?;
    x.field("Website", &o.website)?;
    x.close(element)
}

/// An element holding optional leaf fields; left out when none is there.
fn group<W: Write>(
    x: &mut Xml<W>,
    element: &'static str,
    fields: &[(&'static str, &Option<String>)],
) -> Result<()> {
    if fields.iter().all(|(_, value)| value.is_none()) {
        return Ok(());
    }
    x.open(element)?;
    for (name, value) in fields {
        x.field(name, value)?;
    }
    x.close(element)
}

fn other_info<W: Write>(x: &mut Xml<W>, o: &OtherInfo) -> Result<()> {
    if *o == OtherInfo::default() {
        return Ok(());
    }
    x.open("OtherInfo")?;
    x.field("Priority", &o.priority)?;
    x.field("SphereOfPromulgation", &o.sphere_of_promulgation)?;
    x.field("TyperNotation", &o.typer_notation)?;
    x.field("PromulgationAmount", &o.promulgation_amount)?;
    x.field("PageAmount", &o.page_amount)?;
    x.field("Direction", &o.direction)?;
    x.list("Appendixes", "Appendix", &o.appendixes)?;
    x.close("OtherInfo")
}

fn response_for<W: Write>(x: &mut Xml<W>, r: &ResponseFor) -> Result<()> {
    x.open("ResponseFor")?;
    x.field("OrganId", &r.organ_id)?;
    x.field("Code", &r.code)?;
    x.field("DocumentId", &r.document_id)?;
    x.field("PromulgationDate", &r.promulgation_date)?;
    x.close("ResponseFor")
}

fn staff_info<W: Write>(x: &mut Xml<W>, s: &StaffInfo) -> Result<()> {
    x.open("StaffInfo")?;
    x.field("Department", &s.department)?;
    x.field("Staff", &s.staff)?;
    x.field("Email", &s.email)?;
    x.field("Mobile", &s.mobile)?;
    x.close("StaffInfo")
}

fn trace_headers<W: Write>(x: &mut Xml<W>, traces: &[TraceHeader]) -> Result<()> {
    for t in traces {
        x.open("TraceHeader")?;
        x.field("OrganId", &t.organ_id)?;
        x.field("Timestamp", &t.timestamp)?;
        x.close("TraceHeader")?;
    }
    Ok(())
}

fn write_business<W: Write>(x: &mut Xml<W>, b: &Business) -> Result<()> {
    x.open("Bussiness")?;
    x.field("BussinessDocType", &Some(b.doc_type.code().to_string()))?;
    x.field("BussinessDocReason", &b.reason)?;
    x.field("Paper", &b.paper)?;
    if let Some(staff) = &b.staff_info {
        staff_info(x, staff)?;
    }
    if !b.receivers.is_empty() {
        x.open("BussinessDocumentInfo")?;
        x.open("ReceiverList")?;
        for r in &b.receivers {
            x.open("Receiver")?;
            x.field(
                "ReceiverType",
                &Some(if r.added { "1" } else { "0" }.to_string()),
            )?;
            x.field("OrganId", &Some(r.organ_id.clone()))?;
            x.close("Receiver")?;
        }
        x.close("ReceiverList")?;
        x.close("BussinessDocumentInfo")?;
    }
    if !b.replacements.is_empty() {
        x.open("ReplacementInfoList")?;
        for r in &b.replacements {
            x.open("ReplacementInfo")?;
            x.field("DocumentId", &Some(r.document_id.clone()))?;
            x.open("OrganIdList")?;
            for id in &r.organ_ids {
                x.field("OrganId", &Some(id.clone()))?;
            }
            x.close("OrganIdList")?;
            x.close("ReplacementInfo")?;
        }
        x.close("ReplacementInfoList")?;
    }
    x.close("Bussiness")
}

fn attachment_meta<W: Write>(x: &mut Xml<W>, meta: &AttachmentMeta) -> Result<()> {
    x.field("ContentId", &meta.content_id)?;
    x.field("AttachmentName", &meta.attachment_name)?;
    x.field("Description", &meta.description)?;
    x.field("ContentType", &meta.content_type)
}

/// The output, with a count of the bytes written.
struct Xml<W> {
    out: W,
    written: u64,
}

impl<W: Write> Xml<W> {
    fn raw(&mut self, s: &str) -> Result<()> {
        self.out.write_all(s.as_bytes())?;
        self.written += s.len() as u64;
        Ok(())
    }

    fn root_open(&mut self) -> Result<()> {
        self.raw(&format!(
            "<edXML xmlns=\"{NAMESPACE}\" xmlns:edXML=\"{NAMESPACE}\" xmlns:xlink=\"http://www.w3.org/1999/xlink\">"
        ))
    }

    fn open(&mut self, element: &str) -> Result<()> {
        self.raw("<edXML:")?;
        self.raw(element)?;
        self.raw(">")
    }

    fn close(&mut self, element: &str) -> Result<()> {
        self.raw("</edXML:")?;
        self.raw(element)?;
        self.raw(">")
    }

    /// A leaf element, left out when the value is absent.
    fn field(&mut self, element: &'static str, value: &Option<String>) -> Result<()> {
        if let Some(value) = value {
            self.open(element)?;
            self.text(element, value)?;
            self.close(element)?;
        }
        Ok(())
    }

    fn list(&mut self, element: &'static str, item: &'static str, items: &[String]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        self.open(element)?;
        for value in items {
            self.field(item, &Some(value.clone()))?;
        }
        self.close(element)
    }

    /// Escaped text (also fit for a double-quoted attribute). A carriage return is written as a
    /// reference, so a reader's line-end normalisation gives it back.
    fn text(&mut self, element: &'static str, value: &str) -> Result<()> {
        if let Some(c) = value.chars().find(|&c| !legal(c)) {
            return Err(EdxmlError::Invalid {
                element,
                problem: format!(
                    "holds the character U+{:04X}, which XML 1.0 cannot carry",
                    c as u32
                ),
            });
        }
        let mut rest = value;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\r']) {
            self.raw(&rest[..at])?;
            self.raw(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#13;",
            })?;
            rest = &rest[at + 1..];
        }
        self.raw(rest)
    }

    /// The reader's bytes as one line of base64, encoded a chunk at a time.
    fn base64(&mut self, content: &mut dyn Read) -> Result<()> {
        let mut raw = vec![0u8; CHUNK];
        let mut filled = 0;
        let mut encoded = String::with_capacity(CHUNK / 3 * 4 + 4);
        loop {
            let n = match content.read(&mut raw[filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            filled += n;
            if n == 0 || filled == CHUNK {
                // Encode whole groups of three; keep the rest for the next read unless at the end.
                let whole = if n == 0 { filled } else { filled / 3 * 3 };
                encoded.clear();
                STANDARD.encode_string(&raw[..whole], &mut encoded);
                self.raw(&encoded)?;
                raw.copy_within(whole..filled, 0);
                filled -= whole;
                if n == 0 {
                    return Ok(());
                }
            }
        }
    }
}
