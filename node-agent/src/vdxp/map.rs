//! Between edXML and Poros, IO-free: a package's header becomes a document's signed metadata,
//! its business type a change request, a status message a business status; and back, a
//! statement becomes the status message a DMS reads, a native document the package header an
//! edXML-speaking DMS expects.

use crate::statements::Say;
use poros_edxml::{
    Business, BusinessDocType, Code, DocumentType, Organ, OtherInfo, Package, PackageHeader,
    PromulgationInfo, ResponseFor, SignerInfo, StaffInfo, StatusMessage, TraceHeader,
};
use poros_protocol::envelope::MAX_FIELD_LEN;
use poros_protocol::{
    AgencyId, BodyFormat, BusinessStatus, Change, Envelope, EnvelopeExt, Metadata, Priority, Staff,
    Statement, StatementKind,
};

/// Why a package or status message cannot be used; names the element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("edXML {element}: {problem}")]
pub struct MapError {
    /// The element concerned.
    pub element: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

fn bad(element: &'static str, problem: impl Into<String>) -> MapError {
    MapError {
        element,
        problem: problem.into(),
    }
}

/// A document to send, from a package's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The `To` agencies.
    pub recipients: Vec<AgencyId>,
    /// Signed metadata.
    pub meta: Metadata,
    /// The envelope's second part (format edXML).
    pub ext: EnvelopeExt,
}

/// A document another DMS names: its sender's code and that DMS's id for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmsRef {
    /// The agency that sent it.
    pub organ: String,
    /// Its id in the sender's DMS (or a Poros document ID).
    pub dms_id: String,
}

/// What a package asks for, by its `BussinessDocType`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// A new document.
    New,
    /// Take back the document the header names (its `DocumentId`).
    Revoke {
        /// Why.
        reason: String,
    },
    /// Add or remove recipients of the document the header names.
    Update {
        /// Added.
        add: Vec<AgencyId>,
        /// Removed.
        remove: Vec<AgencyId>,
        /// Why.
        reason: String,
    },
    /// A new document that replaces the ones listed.
    Replace {
        /// The replaced documents (this agency's own).
        replaced: Vec<String>,
        /// Why.
        reason: String,
    },
}

/// Text of an edXML field made one line of at most [`MAX_FIELD_LEN`] bytes: line breaks, tabs
/// and other controls become spaces, runs of spaces one, cut at a character boundary.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_FIELD_LEN));
    let mut space = false;
    for c in s.trim().chars() {
        let c = if poros_protocol::text::is_forbidden(c) || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if out.len() + c.len_utf8() > MAX_FIELD_LEN {
            break;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

fn field(v: &Option<String>) -> Option<String> {
    v.as_deref().map(one_line).filter(|s| !s.is_empty())
}

fn agency(element: &'static str, code: &str) -> Result<AgencyId, MapError> {
    AgencyId::parse(code.trim()).map_err(|e| bad(element, format!("{:?}: {e}", code.trim())))
}

/// edXML priority (`0` normal, `1` urgent, `2` very urgent, `3` flash, `4` flash at a set
/// time) in Poros's three levels; text that is no priority counts as normal.
pub fn priority(p: Option<&str>) -> Priority {
    match p.map(str::trim) {
        Some("1") | Some("2") => Priority::Urgent,
        Some("3") | Some("4") => Priority::Flash,
        _ => Priority::Normal,
    }
}

fn edxml_priority(p: Priority) -> &'static str {
    match p {
        Priority::Normal => "0",
        Priority::Urgent => "1",
        Priority::Flash => "3",
    }
}

/// An edXML date (`yyyy/MM/dd`, sometimes with `-`) as `YYYY-MM-DD` when it is a real date.
pub fn iso_date(d: Option<&str>) -> Option<String> {
    let d = d?.trim();
    let d = d.get(..10).unwrap_or(d);
    let iso = d.replace('/', "-");
    poros_protocol::text::is_calendar_date(&iso).then_some(iso)
}

/// The signed metadata and recipients of a package sent by `me`. The `From` must be this
/// agency and every `To` an agency code (whether it is registered is the caller's check).
pub fn outgoing(h: &PackageHeader, me: &AgencyId) -> Result<Outgoing, MapError> {
    let from = agency("From/OrganId", &h.from.organ_id)?;
    if &from != me {
        return Err(bad(
            "From/OrganId",
            format!("{from} is not this agency ({me}); a package is sent by the agency it is from"),
        ));
    }
    let mut recipients = Vec::new();
    for t in &h.to {
        let a = agency("To/OrganId", &t.organ_id)?;
        if a == from {
            return Err(bad("To/OrganId", format!("{a} is the sender itself")));
        }
        if !recipients.contains(&a) {
            recipients.push(a);
        }
    }
    if recipients.is_empty() {
        return Err(bad("To", "no recipient"));
    }
    let number = match (field(&h.code.code_number), field(&h.code.code_notation)) {
        (Some(n), Some(t)) => Some(one_line(&format!("{n}/{t}"))),
        (n, t) => n.or(t),
    };
    let subject = field(&h.subject)
        .or_else(|| number.clone())
        .or_else(|| field(&h.document_type.type_name))
        .unwrap_or_else(|| "(không có trích yếu)".into());
    let meta = Metadata {
        subject,
        number,
        doc_type: field(&h.document_type.type_name).or_else(|| field(&h.document_type.doc_type)),
        priority: priority(h.other_info.priority.as_deref()),
        due_date: iso_date(h.due_date.as_deref()),
        filename: Some("package.edxml".into()),
    };
    let ext = EnvelopeExt {
        format: BodyFormat::Edxml,
        dms_id: field(&h.document_id),
        promulgated: field(&h.promulgation_info.promulgation_date),
        place: field(&h.promulgation_info.place),
        signer: field(&h.signer_info.full_name),
        signer_position: field(&h.signer_info.position),
    };
    Ok(Outgoing {
        recipients,
        meta,
        ext,
    })
}

/// What a package asks for.
pub fn intent(p: &Package) -> Result<Intent, MapError> {
    let Some(b) = &p.business else {
        return Ok(Intent::New);
    };
    let reason = field(&b.reason).unwrap_or_else(|| "(không nêu lý do)".into());
    Ok(match b.doc_type {
        BusinessDocType::New => Intent::New,
        BusinessDocType::Revoke => Intent::Revoke { reason },
        BusinessDocType::Update => {
            let (mut add, mut remove) = (Vec::new(), Vec::new());
            for r in &b.receivers {
                let a = agency(
                    "BussinessDocumentInfo/ReceiverList/Receiver/OrganId",
                    &r.organ_id,
                )?;
                if r.added {
                    add.push(a)
                } else {
                    remove.push(a)
                }
            }
            if add.is_empty() && remove.is_empty() {
                return Err(bad(
                    "BussinessDocumentInfo/ReceiverList",
                    "an update (BussinessDocType 2) names no receiver to add or remove",
                ));
            }
            Intent::Update {
                add,
                remove,
                reason,
            }
        }
        BusinessDocType::Replace => {
            let replaced: Vec<String> = b
                .replacements
                .iter()
                .map(|r| r.document_id.trim().to_string())
                .filter(|d| !d.is_empty())
                .collect();
            if replaced.is_empty() {
                return Err(bad(
                    "ReplacementInfoList",
                    "a replacement (BussinessDocType 3) names no document it replaces",
                ));
            }
            Intent::Replace { replaced, reason }
        }
    })
}

/// The staff member a DMS names, or, when it names none, its agency's clerical office.
pub fn staff(s: Option<&StaffInfo>, from: &Organ) -> Staff {
    let s = s.cloned().unwrap_or_default();
    Staff {
        department: field(&s.department)
            .or_else(|| field(&from.organ_name))
            .unwrap_or_else(|| one_line(&from.organ_id)),
        name: field(&s.staff).unwrap_or_else(|| "Văn thư".into()),
        email: field(&s.email),
        phone: field(&s.mobile),
    }
}

/// A status message from this agency's DMS: the document it answers and what it says.
pub fn status_say(st: &StatusMessage, me: &AgencyId) -> Result<(DmsRef, Say, Staff), MapError> {
    let from = agency("From/OrganId", &st.from.organ_id)?;
    if &from != me {
        return Err(bad(
            "From/OrganId",
            format!("{from} is not this agency ({me})"),
        ));
    }
    let doc = DmsRef {
        organ: st
            .response_for
            .organ_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                bad(
                    "ResponseFor/OrganId",
                    "missing: which agency sent the document",
                )
            })?
            .to_string(),
        dms_id: st
            .response_for
            .document_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                bad(
                    "ResponseFor/DocumentId",
                    "missing: which document this answers",
                )
            })?
            .to_string(),
    };
    let reason = field(&st.description);
    let code = st.status_code.trim();
    let say = match code {
        "13" => Say::TakeBack {
            to: None,
            reason: reason.unwrap_or_else(|| "(không nêu lý do)".into()),
        },
        "15" => Say::Answer {
            accept: true,
            reason: None,
        },
        "16" => Say::Answer {
            accept: false,
            reason: Some(reason.unwrap_or_else(|| "(không nêu lý do)".into())),
        },
        c => {
            let status = BusinessStatus::ALL
                .into_iter()
                .find(|b| b.code() == c)
                .ok_or_else(|| bad("StatusCode", format!("{c:?} is not a status code")))?;
            let reason = match status {
                BusinessStatus::Rejected => {
                    Some(reason.unwrap_or_else(|| "(không nêu lý do)".into()))
                }
                _ => None,
            };
            Say::Progress { status, reason }
        }
    };
    Ok((doc, say, staff(Some(&st.staff_info), &st.from)))
}

/// `yyyy/MM/dd HH:mm:ss` of Unix ms in a zone `offset_secs` east of UTC.
pub fn edxml_time(unix_ms: u64, offset_secs: i64) -> String {
    let s = (unix_ms / 1000) as i64 + offset_secs;
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let (y, m, d) = super::auth::civil_from_days(days);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn organ(code: &AgencyId, name: Option<&str>) -> Organ {
    Organ {
        organ_id: code.to_string(),
        organ_name: name.map(str::to_string),
        ..Default::default()
    }
}

/// The `ResponseFor` naming a document as its sender's DMS knows it.
fn response_for(env: &Envelope) -> ResponseFor {
    ResponseFor {
        organ_id: Some(env.sender.to_string()),
        code: env.meta.number.clone(),
        document_id: Some(env.ext.dms_id.clone().unwrap_or_else(|| env.id.to_string())),
        promulgation_date: env.ext.promulgated.clone(),
    }
}

/// The status message a statement is for a DMS, if it is one a DMS reads (a business status
/// or an answer to a change request).
pub fn status_message(
    stmt: &Statement,
    env: &Envelope,
    from_name: Option<&str>,
    offset_secs: i64,
) -> Option<StatusMessage> {
    let code = stmt.kind.code()?;
    let poros_protocol::Party::Agency(from) = &stmt.from else {
        return None;
    };
    let description = match &stmt.kind {
        StatementKind::Status { reason, .. } | StatementKind::Answer { reason, .. } => {
            reason.as_ref().map(|r| r.text.clone())
        }
        StatementKind::Change { reason, .. } => Some(reason.clone()),
        _ => None,
    }
    .or_else(|| stmt.note.clone());
    let time = edxml_time(stmt.time_ms, offset_secs);
    Some(StatusMessage {
        from: organ(from, from_name),
        response_for: response_for(env),
        staff_info: StaffInfo {
            department: Some(stmt.staff.department.clone()),
            staff: Some(stmt.staff.name.clone()),
            email: stmt.staff.email.clone(),
            mobile: stmt.staff.phone.clone(),
        },
        status_code: code.to_string(),
        description,
        timestamp: Some(time.clone()),
        traces: vec![TraceHeader {
            organ_id: Some(from.to_string()),
            timestamp: Some(time),
        }],
    })
}

/// The package header of a document sent natively, for a DMS that reads edXML: what its
/// signed metadata says, in edXML's fields.
pub fn native_header(env: &Envelope, names: &dyn Fn(&AgencyId) -> Option<String>) -> PackageHeader {
    let (code_number, code_notation) = match env.meta.number.as_deref() {
        Some(n) => match n.split_once('/') {
            Some((a, b)) => (Some(a.to_string()), Some(b.to_string())),
            None => (Some(n.to_string()), None),
        },
        None => (None, None),
    };
    PackageHeader {
        from: organ(&env.sender, names(&env.sender).as_deref()),
        to: env
            .recipients
            .iter()
            .map(|r| organ(r, names(r).as_deref()))
            .collect(),
        document_id: Some(env.ext.dms_id.clone().unwrap_or_else(|| env.id.to_string())),
        code: Code {
            code_number,
            code_notation,
        },
        promulgation_info: PromulgationInfo {
            place: env.ext.place.clone(),
            promulgation_date: env.ext.promulgated.clone(),
        },
        document_type: DocumentType {
            doc_type: None,
            type_detail: None,
            type_name: env.meta.doc_type.clone(),
        },
        subject: Some(env.meta.subject.clone()),
        content: None,
        signer_info: SignerInfo {
            competence: None,
            position: env.ext.signer_position.clone(),
            full_name: env.ext.signer.clone(),
        },
        due_date: env.meta.due_date.as_ref().map(|d| d.replace('-', "/")),
        other_info: OtherInfo {
            priority: Some(edxml_priority(env.meta.priority).to_string()),
            ..Default::default()
        },
        response_for: Vec::new(),
        steering_type: None,
        to_places: Vec::new(),
    }
}

/// The business part of a package that carries a change request to a recipient's DMS.
pub fn change_business(stmt: &Statement) -> Option<Business> {
    let StatementKind::Change { change, reason } = &stmt.kind else {
        return None;
    };
    let (doc_type, receivers) = match change {
        Change::TakeBack => (BusinessDocType::Revoke, Vec::new()),
        Change::Update { add, remove, .. } => (
            BusinessDocType::Update,
            add.iter()
                .map(|a| poros_edxml::Receiver {
                    organ_id: a.to_string(),
                    added: true,
                })
                .chain(remove.iter().map(|a| poros_edxml::Receiver {
                    organ_id: a.to_string(),
                    added: false,
                }))
                .collect(),
        ),
        Change::Replace { .. } => return None,
    };
    Some(Business {
        doc_type,
        reason: Some(reason.clone()),
        paper: None,
        staff_info: Some(StaffInfo {
            department: Some(stmt.staff.department.clone()),
            staff: Some(stmt.staff.name.clone()),
            email: stmt.staff.email.clone(),
            mobile: stmt.staff.phone.clone(),
        }),
        receivers,
        replacements: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use poros_protocol::DocumentId;

    fn me() -> AgencyId {
        AgencyId::parse("000.00.00.G22").unwrap()
    }

    fn header() -> PackageHeader {
        PackageHeader {
            from: Organ {
                organ_id: "000.00.00.G22".into(),
                organ_name: Some("Bộ Tài chính".into()),
                ..Default::default()
            },
            to: vec![
                Organ {
                    organ_id: "000.00.00.H01".into(),
                    ..Default::default()
                },
                Organ {
                    organ_id: "000.00.00.H02".into(),
                    ..Default::default()
                },
            ],
            document_id: Some("G22.2026.0042".into()),
            code: Code {
                code_number: Some("42".into()),
                code_notation: Some("QĐ-BTC".into()),
            },
            promulgation_info: PromulgationInfo {
                place: Some("Hà Nội".into()),
                promulgation_date: Some("2026/12/01".into()),
            },
            document_type: DocumentType {
                doc_type: Some("1".into()),
                type_detail: None,
                type_name: Some("Quyết định".into()),
            },
            subject: Some("Về việc\r\n  giao dự toán\tngân sách".into()),
            signer_info: SignerInfo {
                full_name: Some("Nguyễn Văn A".into()),
                position: Some("Thứ trưởng".into()),
                competence: None,
            },
            due_date: Some("2026/12/31".into()),
            other_info: OtherInfo {
                priority: Some("3".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_package_header_becomes_signed_metadata() {
        let o = outgoing(&header(), &me()).unwrap();
        assert_eq!(o.recipients.len(), 2);
        assert_eq!(o.meta.subject, "Về việc giao dự toán ngân sách");
        assert_eq!(o.meta.number.as_deref(), Some("42/QĐ-BTC"));
        assert_eq!(o.meta.doc_type.as_deref(), Some("Quyết định"));
        assert_eq!(o.meta.priority, Priority::Flash);
        assert_eq!(o.meta.due_date.as_deref(), Some("2026-12-31"));
        assert_eq!(o.ext.format, BodyFormat::Edxml);
        assert_eq!(o.ext.dms_id.as_deref(), Some("G22.2026.0042"));
        assert_eq!(o.ext.promulgated.as_deref(), Some("2026/12/01"));
        assert_eq!(o.ext.signer.as_deref(), Some("Nguyễn Văn A"));
        o.meta.validate().unwrap();
        o.ext.validate().unwrap();
    }

    #[test]
    fn what_cannot_be_sent_names_the_element() {
        let mut h = header();
        h.from.organ_id = "000.00.00.H09".into();
        assert_eq!(outgoing(&h, &me()).unwrap_err().element, "From/OrganId");
        let mut h = header();
        h.to[1].organ_id = "not-a-code".into();
        let e = outgoing(&h, &me()).unwrap_err();
        assert_eq!(e.element, "To/OrganId");
        assert!(e.to_string().contains("not-a-code"), "{e}");
        let mut h = header();
        h.to.clear();
        assert_eq!(outgoing(&h, &me()).unwrap_err().element, "To");
    }

    #[test]
    fn messy_fields_are_kept_usable() {
        let mut h = header();
        h.due_date = Some("31/12/2026".into());
        h.subject = None;
        h.other_info.priority = Some("khẩn".into());
        h.promulgation_info.promulgation_date = Some("ngày 32 tháng 13".into());
        let o = outgoing(&h, &me()).unwrap();
        assert_eq!(o.meta.due_date, None);
        assert_eq!(o.meta.subject, "42/QĐ-BTC");
        assert_eq!(o.meta.priority, Priority::Normal);
        assert_eq!(o.ext.promulgated.as_deref(), Some("ngày 32 tháng 13"));
        assert_eq!(
            one_line(&"ắ".repeat(2000)).len(),
            MAX_FIELD_LEN - MAX_FIELD_LEN % 3
        );
    }

    #[test]
    fn status_messages_become_statements_and_back() {
        let st = StatusMessage {
            from: Organ {
                organ_id: "000.00.00.G22".into(),
                ..Default::default()
            },
            response_for: ResponseFor {
                organ_id: Some("000.00.00.H01".into()),
                document_id: Some("H01-77".into()),
                ..Default::default()
            },
            staff_info: StaffInfo {
                department: Some("Văn phòng".into()),
                staff: Some("Trần Thị B".into()),
                ..Default::default()
            },
            status_code: "03".into(),
            description: None,
            timestamp: Some("2026/12/01 10:00:00".into()),
            traces: vec![],
        };
        let (doc, say, staff) = status_say(&st, &me()).unwrap();
        assert_eq!(doc.dms_id, "H01-77");
        assert!(matches!(
            say,
            Say::Progress {
                status: BusinessStatus::Registered,
                ..
            }
        ));
        assert_eq!(staff.name, "Trần Thị B");
        let mut bad_code = st.clone();
        bad_code.status_code = "09".into();
        assert_eq!(
            status_say(&bad_code, &me()).unwrap_err().element,
            "StatusCode"
        );
        let mut answer = st.clone();
        answer.status_code = "15".into();
        assert!(matches!(
            status_say(&answer, &me()).unwrap().1,
            Say::Answer { accept: true, .. }
        ));

        // Back: a statement of H01 about G22's document is a status message for G22's DMS.
        let env = Envelope {
            id: DocumentId::new_v7(1, [1; 10]),
            sender: me(),
            recipients: vec![AgencyId::parse("000.00.00.H01").unwrap()],
            meta: Metadata {
                subject: "x".into(),
                number: Some("42/QĐ-BTC".into()),
                ..Default::default()
            },
            created_ms: 1,
            body_len: 1,
            body_sha256: [0; 32],
            ext: EnvelopeExt {
                dms_id: Some("G22.2026.0042".into()),
                ..Default::default()
            },
        };
        let stmt = Statement {
            doc_id: env.id,
            from: AgencyId::parse("000.00.00.H01").unwrap().into(),
            to: vec![me()],
            kind: StatementKind::Status {
                status: BusinessStatus::Completed,
                reason: None,
            },
            staff: staff.clone(),
            note: Some("xong".into()),
            time_ms: 1_796_094_000_250,
        };
        let m = status_message(&stmt, &env, Some("UBND tỉnh"), 7 * 3600).unwrap();
        assert_eq!(m.status_code, "06");
        assert_eq!(m.from.organ_id, "000.00.00.H01");
        assert_eq!(m.response_for.document_id.as_deref(), Some("G22.2026.0042"));
        assert_eq!(m.timestamp.as_deref(), Some("2026/12/01 10:00:00"));
        assert_eq!(m.description.as_deref(), Some("xong"));
    }

    #[test]
    fn business_types_become_change_requests() {
        let pkg = |b: Option<Business>| Package {
            header: header(),
            traces: vec![],
            business: b,
            signature: poros_edxml::SignatureState::Absent,
            manifest: vec![],
            attachments: vec![],
        };
        let business = |doc_type, receivers, replacements| Business {
            doc_type,
            reason: Some("Sai\r\nsót".into()),
            paper: None,
            staff_info: None,
            receivers,
            replacements,
        };
        assert_eq!(intent(&pkg(None)).unwrap(), Intent::New);
        assert_eq!(
            intent(&pkg(Some(business(
                BusinessDocType::Revoke,
                vec![],
                vec![]
            ))))
            .unwrap(),
            Intent::Revoke {
                reason: "Sai sót".into()
            }
        );
        let r = |code: &str, added| poros_edxml::Receiver {
            organ_id: code.into(),
            added,
        };
        let update = business(
            BusinessDocType::Update,
            vec![r("000.00.00.H03", true), r("000.00.00.H01", false)],
            vec![],
        );
        match intent(&pkg(Some(update))).unwrap() {
            Intent::Update { add, remove, .. } => {
                assert_eq!(add, [AgencyId::parse("000.00.00.H03").unwrap()]);
                assert_eq!(remove, [AgencyId::parse("000.00.00.H01").unwrap()]);
            }
            other => panic!("{other:?}"),
        }
        let empty = business(BusinessDocType::Update, vec![], vec![]);
        assert_eq!(
            intent(&pkg(Some(empty))).unwrap_err().element,
            "BussinessDocumentInfo/ReceiverList"
        );
        let bad = business(BusinessDocType::Update, vec![r("H03", true)], vec![]);
        assert!(intent(&pkg(Some(bad)))
            .unwrap_err()
            .to_string()
            .contains("H03"));
        let replace = business(
            BusinessDocType::Replace,
            vec![],
            vec![poros_edxml::Replacement {
                document_id: " G22.2026.0041 ".into(),
                organ_ids: vec!["000.00.00.H01".into()],
            }],
        );
        assert_eq!(
            intent(&pkg(Some(replace))).unwrap(),
            Intent::Replace {
                replaced: vec!["G22.2026.0041".into()],
                reason: "Sai sót".into()
            }
        );
        let none = business(BusinessDocType::Replace, vec![], vec![]);
        assert_eq!(
            intent(&pkg(Some(none))).unwrap_err().element,
            "ReplacementInfoList"
        );
    }

    #[test]
    fn a_native_document_has_an_edxml_header() {
        let env = Envelope {
            id: DocumentId::new_v7(1, [1; 10]),
            sender: me(),
            recipients: vec![AgencyId::parse("000.00.00.H01").unwrap()],
            meta: Metadata {
                subject: "Báo cáo".into(),
                number: Some("12/BC-BTC".into()),
                priority: Priority::Urgent,
                due_date: Some("2026-12-31".into()),
                ..Default::default()
            },
            created_ms: 1,
            body_len: 1,
            body_sha256: [0; 32],
            ext: EnvelopeExt::default(),
        };
        let h = native_header(&env, &|_| Some("Cơ quan".into()));
        assert_eq!(h.code.code_number.as_deref(), Some("12"));
        assert_eq!(h.code.code_notation.as_deref(), Some("BC-BTC"));
        assert_eq!(h.other_info.priority.as_deref(), Some("1"));
        assert_eq!(h.due_date.as_deref(), Some("2026/12/31"));
        assert_eq!(h.document_id, Some(env.id.to_string()));
        // And it maps back to the same metadata at the sender's end.
        let back = outgoing(&h, &me()).unwrap();
        assert_eq!(back.meta.subject, env.meta.subject);
        assert_eq!(back.meta.number, env.meta.number);
        assert_eq!(back.meta.due_date, env.meta.due_date);
        assert_eq!(back.meta.priority, env.meta.priority);
    }
}
