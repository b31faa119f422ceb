//! The reader on hand-written fixtures carrying each quirk real edXML files have, the refusals
//! of what cannot be used (each naming its element), and the writer reading back what it wrote.

use std::io::BufReader;

use poros_edxml::*;
use ring::digest;

const PDF: &[u8] = b"%PDF-1.4\n% Poros test fixture, not a real PDF\n%%EOF\n";
const OLE: &[u8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 ole fixture";
const ZIP: &[u8] = b"PK\x03\x04\x14\x00\x00\x00fixture zip entry";
const TEXT: &[u8] = b"plain text attachment\n";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str) -> (Result<Message, EdxmlError>, Collect) {
    let mut sink = Collect::default();
    let result = read(&fixture(name)[..], &mut sink);
    (result, sink)
}

fn package(name: &str) -> (Package, Collect) {
    match parse(name) {
        (Ok(Message::Package(p)), sink) => (p, sink),
        (other, _) => panic!("{name}: expected a package, got {other:?}"),
    }
}

fn status(name: &str) -> StatusMessage {
    match parse(name).0 {
        Ok(Message::Status(s)) => s,
        other => panic!("{name}: expected a status message, got {other:?}"),
    }
}

fn refusal(name: &str) -> EdxmlError {
    match parse(name).0 {
        Err(e) => e,
        Ok(m) => panic!("{name}: expected a refusal, got {m:?}"),
    }
}

fn s(text: &str) -> Option<String> {
    Some(text.to_string())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest::digest(&digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .unwrap()
}

#[test]
fn a_full_package_gives_every_field() {
    let (p, sink) = package("package-full.xml");
    let h = &p.header;
    assert_eq!(
        h.from,
        Organ {
            organ_id: "000.00.01.H26".into(),
            organization_in_charge: s("Ủy ban nhân dân tỉnh Thử Nghiệm"),
            organ_name: s("Sở Thông tin và Truyền thông"),
            organ_add: s("Số 1 đường Ví Dụ, phường Mẫu"),
            email: s("vanthu@stttt.example.vn"),
            telephone: s("0200 3000 001"),
            fax: s("0200 3000 002"),
            website: s("https://stttt.example.vn"),
        }
    );
    assert_eq!(h.to.len(), 2);
    assert_eq!(h.to[1].organ_id, "000.00.03.H26");
    assert_eq!(h.to[1].email, s("vanthu@snv.example.vn"));
    assert_eq!(h.document_id, s("000.00.01.H26,2016/07/01,123/STTTT-VP"));
    assert_eq!(
        h.code,
        Code {
            code_number: s("123"),
            code_notation: s("STTTT-VP")
        }
    );
    assert_eq!(h.promulgation_info.promulgation_date, s("2016/07/01"));
    assert_eq!(h.document_type.type_name, s("Công văn"));
    assert_eq!(
        h.subject,
        s("V/v thử nghiệm trao đổi văn bản & kiểm tra <ký tự> đặc biệt")
    );
    assert_eq!(h.signer_info.full_name, s("Nguyễn Văn Mẫu"));
    assert_eq!(h.due_date, s("2016/07/15"));
    assert_eq!(h.other_info.priority, s("2"));
    assert_eq!(
        h.other_info.appendixes,
        vec!["Phụ lục I".to_string(), "Phụ lục II".to_string()]
    );
    assert_eq!(h.response_for.len(), 1);
    assert_eq!(h.response_for[0].code, s("45/STC-NS"));
    assert_eq!(h.steering_type, s("1"));
    assert_eq!(
        h.to_places,
        vec!["Như trên".to_string(), "Lưu: VT".to_string()]
    );
    assert_eq!(
        p.traces,
        vec![TraceHeader {
            organ_id: s("000.00.01.H26"),
            timestamp: s("2016/07/01 09:30:00")
        }]
    );
    let b = p.business.as_ref().unwrap();
    assert_eq!(b.doc_type, BusinessDocType::New);
    assert_eq!(b.paper, s("0"));
    assert_eq!(b.staff_info.as_ref().unwrap().staff, s("Trần Thị Văn Thư"));
    assert_eq!(p.signature, SignatureState::Present);
    assert_eq!(p.manifest.len(), 2);
    assert_eq!(p.manifest[1].content_type, s("application/msword"));
    assert_eq!(p.attachments.len(), 2);
    assert_eq!(p.attachments[0].meta.content_id, s("cid:vanban-123"));
    assert_eq!(p.attachments[0].detected, ContentKind::Pdf);
    assert_eq!(p.attachments[0].len, PDF.len() as u64);
    assert_eq!(p.attachments[0].sha256, sha256(PDF));
    assert_eq!(p.attachments[1].detected, ContentKind::Ole);
    assert_eq!(sink.attachments, vec![PDF.to_vec(), OLE.to_vec()]);
}

#[test]
fn children_in_any_order_with_another_prefix_and_unknown_elements() {
    let (p, sink) = package("package-any-order.xml");
    assert_eq!(p.header.from.organ_id, "000.00.00.H26");
    assert_eq!(p.header.from.email, s("vanthu@ubnd.example.vn"));
    assert_eq!(p.header.to[0].organ_id, "000.00.04.H26");
    assert_eq!(p.header.to[0].organ_name, s("Sở Y tế"));
    assert_eq!(
        p.header.code,
        Code {
            code_number: s("7"),
            code_notation: s("UBND-KT")
        }
    );
    assert_eq!(p.header.subject, s("Thứ tự bất kỳ"));
    assert_eq!(
        p.header.document_id,
        s("000.00.00.H26,2016/08/02,7/UBND-KT")
    );
    assert_eq!(p.traces[0].timestamp, s("2016/08/02 08:00:00"));
    assert_eq!(p.business.as_ref().unwrap().paper, s("1"));
    assert_eq!(p.signature, SignatureState::Absent);
    assert_eq!(p.manifest[0].content_id, s("cid:ghichu"));
    let meta = &p.attachments[0].meta;
    assert_eq!(meta.content_id, s("cid:ghichu"));
    assert_eq!(meta.attachment_name, s("ghi-chu.txt"));
    assert_eq!(meta.content_type, s("text/plain"));
    assert_eq!(sink.attachments, vec![TEXT.to_vec()]);
}

#[test]
fn default_namespace_and_a_placeholder_signature() {
    let (p, _) = package("package-default-namespace.xml");
    assert_eq!(p.header.from.organ_name, s("Sở Xây dựng"));
    assert_eq!(p.header.to[0].organ_id, "000.00.06.H26");
    assert_eq!(p.signature, SignatureState::Placeholder);
    assert!(p.manifest.is_empty() && p.attachments.is_empty());
}

#[test]
fn no_namespace_and_a_signature_outside_xml_dsig() {
    let (p, _) = package("package-no-namespace.xml");
    assert_eq!(p.header.subject, s("Không khai báo không gian tên nào"));
    assert_eq!(p.signature, SignatureState::Present);
}

#[test]
fn undeclared_xlink_prefix_gives_the_content_id() {
    let (p, sink) = package("package-xlink-undeclared.xml");
    assert_eq!(p.manifest[0].content_id, s("cid:tep-dinh-kem"));
    assert_eq!(p.attachments[0].meta.content_id, s("cid:tep-dinh-kem"));
    assert_eq!(sink.attachments, vec![PDF.to_vec()]);
}

#[test]
fn crlf_line_ends_and_wrapped_base64() {
    let bytes = fixture("package-crlf.xml");
    assert!(
        bytes.windows(2).any(|w| w == b"\r\n"),
        "the fixture must keep its CRLF line ends"
    );
    let (p, sink) = package("package-crlf.xml");
    assert_eq!(p.header.subject, s("Dòng thứ nhất\nDòng thứ hai"));
    assert_eq!(p.header.to[0].organ_id, "000.00.12.H26");
    assert_eq!(p.attachments[0].detected, ContentKind::Pdf);
    assert_eq!(sink.attachments, vec![PDF.to_vec()]);
}

#[test]
fn dates_that_are_not_dates_are_kept_as_written() {
    let (p, _) = package("package-bad-dates.xml");
    assert_eq!(
        p.header.promulgation_info.promulgation_date,
        s("2016/02/31")
    );
    assert_eq!(p.header.due_date, s("ngày 15 tháng 7 năm 2016"));
    assert_eq!(p.header.response_for[0].promulgation_date, s("không rõ"));
    assert_eq!(p.traces[0].timestamp, s("2016-13-45T99:99"));
}

#[test]
fn content_kinds_come_from_the_bytes_not_the_claimed_type() {
    let (p, sink) = package("package-lying-content-type.xml");
    let seen: Vec<_> = p
        .attachments
        .iter()
        .map(|a| (a.meta.content_type.clone().unwrap(), a.detected))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("application/pdf".to_string(), ContentKind::Zip),
            ("image/jpeg".to_string(), ContentKind::Png),
            ("application/octet-stream".to_string(), ContentKind::Xml),
            ("application/msword".to_string(), ContentKind::Unknown),
        ]
    );
    assert_eq!(sink.attachments[0], ZIP);
}

#[test]
fn agency_codes_outside_the_pattern_are_kept() {
    let (p, _) = package("package-odd-agency-codes.xml");
    assert_eq!(p.header.from.organ_id, "SOTTTT-HN");
    let to: Vec<_> = p.header.to.iter().map(|o| o.organ_id.as_str()).collect();
    assert_eq!(to, ["H09.22", "000.00.00.G22.extra"]);
    assert_eq!(p.header.response_for[0].organ_id, s("ubnd tinh"));
    assert_eq!(p.traces[0].organ_id, s("42"));
}

#[test]
fn revoke_update_and_replace() {
    let (p, _) = package("package-revoke.xml");
    let b = p.business.unwrap();
    assert_eq!(b.doc_type, BusinessDocType::Revoke);
    assert_eq!(b.reason, s("Gửi nhầm nơi nhận"));
    assert_eq!(p.signature, SignatureState::Placeholder);

    let (p, _) = package("package-update.xml");
    let b = p.business.unwrap();
    assert_eq!(b.doc_type, BusinessDocType::Update);
    assert_eq!(
        b.receivers,
        vec![
            Receiver {
                organ_id: "000.00.03.H26".into(),
                added: true
            },
            Receiver {
                organ_id: "000.00.02.H26".into(),
                added: false
            },
        ]
    );

    let (p, _) = package("package-replace.xml");
    let b = p.business.unwrap();
    assert_eq!(b.doc_type, BusinessDocType::Replace);
    assert_eq!(
        b.replacements,
        vec![Replacement {
            document_id: "000.00.01.H26,2016/07/01,123/STTTT-VP".into(),
            organ_ids: vec!["000.00.02.H26".into(), "000.00.03.H26".into()],
        }]
    );
}

#[test]
fn status_messages() {
    let st = status("status-03.xml");
    assert_eq!(st.status_code, "03");
    assert_eq!(st.from.organ_name, s("Sở Tài chính"));
    assert_eq!(st.response_for.code, s("123/STTTT-VP"));
    assert_eq!(st.staff_info.staff, s("Lê Văn Nhận"));
    assert_eq!(st.description, s("Đã phân công xử lý"));
    assert_eq!(st.timestamp, s("2016/07/01 10:15:00"));
    assert_eq!(st.traces.len(), 1);

    let st = status("status-15-default-namespace.xml");
    assert_eq!(st.status_code, "15");
    assert_eq!(
        st.response_for.document_id,
        s("000.00.01.H26,2016/07/01,123/STTTT-VP")
    );
    assert_eq!(st.staff_info, StaffInfo::default());
}

/// A refusal fixture, the element its message must name, and a check of the error's kind.
type Refusal = (&'static str, &'static str, fn(&EdxmlError) -> bool);

fn refusals() -> Vec<Refusal> {
    vec![
        ("refuse-malformed.xml", "Subject", |e| {
            matches!(e, EdxmlError::Xml { .. })
        }),
        ("refuse-no-from.xml", "From", |e| {
            matches!(e, EdxmlError::Missing { element: "From" })
        }),
        ("refuse-from-without-organid.xml", "From", |e| {
            matches!(
                e,
                EdxmlError::Invalid {
                    element: "From",
                    ..
                }
            )
        }),
        ("refuse-no-to.xml", "To", |e| {
            matches!(e, EdxmlError::Missing { element: "To" })
        }),
        ("refuse-status-unknown-code.xml", "StatusCode", |e| {
            matches!(
                e,
                EdxmlError::Invalid {
                    element: "StatusCode",
                    ..
                }
            )
        }),
        ("refuse-status-no-code.xml", "StatusCode", |e| {
            matches!(
                e,
                EdxmlError::Missing {
                    element: "StatusCode"
                }
            )
        }),
        ("refuse-doctype-out-of-range.xml", "BussinessDocType", |e| {
            matches!(
                e,
                EdxmlError::Invalid {
                    element: "BussinessDocType",
                    ..
                }
            )
        }),
        ("refuse-bad-base64.xml", "ContentTransferEncoded", |e| {
            matches!(e, EdxmlError::Base64 { attachment: 1, .. })
        }),
        ("refuse-not-edxml.xml", "Envelope", |e| {
            matches!(e, EdxmlError::NotEdxml(_))
        }),
        ("refuse-wrong-namespace.xml", "edXML", |e| {
            matches!(e, EdxmlError::NotEdxml(_))
        }),
    ]
}

#[test]
fn every_refusal_names_the_element_and_the_problem() {
    for (name, element, kind) in refusals() {
        let e = refusal(name);
        let message = e.to_string();
        assert!(kind(&e), "{name}: unexpected refusal {e:?}");
        assert!(
            message.contains(&format!("<{element}>")) || message.contains(element),
            "{name}: {message}"
        );
        println!("{name}: {message}");
    }
}

#[test]
fn refusal_messages_say_what_is_wrong() {
    let message = refusal("refuse-malformed.xml").to_string();
    assert!(message.starts_with("malformed XML at byte "), "{message}");
    assert!(
        message.contains("</edXML:Subject>") && message.contains("inside <Subject>"),
        "{message}"
    );
    let EdxmlError::Xml { position, .. } = refusal("refuse-malformed.xml") else {
        unreachable!()
    };
    let bytes = fixture("refuse-malformed.xml");
    let at = bytes.windows(6).position(|w| w == b"</edXM").unwrap();
    let subject_end = at
        + bytes[at..]
            .windows(9)
            .position(|w| w == b"</edXML:S")
            .unwrap();
    assert_eq!(
        position as usize, subject_end,
        "the position points at the wrong end tag"
    );

    let message = refusal("refuse-status-unknown-code.xml").to_string();
    assert!(message.contains("\"07\""), "{message}");
    let message = refusal("refuse-doctype-out-of-range.xml").to_string();
    assert!(message.contains("\"4\""), "{message}");
    let message = refusal("refuse-bad-base64.xml").to_string();
    assert!(
        message.contains("attachment 1") && message.contains("'*'"),
        "{message}"
    );
    assert_eq!(
        refusal("refuse-from-without-organid.xml").to_string(),
        "<From>: has no <OrganId>"
    );
    assert_eq!(
        refusal("refuse-no-to.xml").to_string(),
        "no <To> in the edXML message"
    );
}

#[test]
fn the_attachments_before_a_refusal_were_streamed() {
    let (result, sink) = parse("refuse-bad-base64.xml");
    assert!(result.is_err());
    assert_eq!(sink.attachments[0], TEXT);
}

#[test]
fn one_byte_reads_give_the_same_result() {
    for name in [
        "package-full.xml",
        "package-crlf.xml",
        "package-any-order.xml",
        "status-03.xml",
    ] {
        let bytes = fixture(name);
        let mut small = Collect::default();
        let tiny = read(BufReader::with_capacity(1, &bytes[..]), &mut small).unwrap();
        let mut large = Collect::default();
        let whole = read(&bytes[..], &mut large).unwrap();
        assert_eq!(tiny, whole, "{name}");
        assert_eq!(small.attachments, large.attachments, "{name}");
    }
}

#[test]
fn sniff_recognises_the_fixtures() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(
                sniff(&bytes[..bytes.len().min(512)]),
                name != "refuse-not-edxml.xml",
                "{name}"
            );
        }
    }
}

/// Writes a package back and reads it again: the same values (the signature is not written).
fn rewrite(p: &Package, contents: &[Vec<u8>]) -> (Package, Collect) {
    let mut readers: Vec<&[u8]> = contents.iter().map(|c| &c[..]).collect();
    let mut sources: Vec<AttachmentSource<'_>> = p
        .attachments
        .iter()
        .zip(readers.iter_mut())
        .map(|(a, r)| AttachmentSource {
            meta: a.meta.clone(),
            content: r,
        })
        .collect();
    let mut out = Vec::new();
    let written = write_package(
        &mut out,
        &p.header,
        &p.traces,
        p.business.as_ref(),
        &mut sources,
    )
    .unwrap();
    assert_eq!(written, out.len() as u64);
    assert!(sniff(&out));
    let mut sink = Collect::default();
    match read(&out[..], &mut sink).unwrap() {
        Message::Package(again) => (again, sink),
        other => panic!("wrote a package, read {other:?}"),
    }
}

#[test]
fn every_fixture_package_and_status_reads_back_the_same_after_writing() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !name.ends_with(".xml") || name.starts_with("refuse-") {
            continue;
        }
        match parse(&name) {
            (Ok(Message::Package(p)), sink) => {
                let (again, again_sink) = rewrite(&p, &sink.attachments);
                assert_eq!(again.header, p.header, "{name}");
                assert_eq!(again.traces, p.traces, "{name}");
                assert_eq!(again.business, p.business, "{name}");
                assert_eq!(again.attachments, p.attachments, "{name}");
                assert_eq!(again_sink.attachments, sink.attachments, "{name}");
                let metas: Vec<Reference> = p
                    .attachments
                    .iter()
                    .map(|a| Reference::from(&a.meta))
                    .collect();
                assert_eq!(again.manifest, metas, "{name}");
                assert_eq!(again.signature, SignatureState::Absent, "{name}");
            }
            (Ok(Message::Status(st)), _) => {
                let mut out = Vec::new();
                write_status(&mut out, &st).unwrap();
                assert_eq!(
                    read(&out[..], &mut Discard).unwrap(),
                    Message::Status(st),
                    "{name}"
                );
            }
            (Err(e), _) => panic!("{name}: {e}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 14);
}

#[test]
fn limits_refuse_what_would_use_memory() {
    let bytes = fixture("package-lying-content-type.xml");
    let tight = |limits: Limits| read_with(&bytes[..], &mut Discard, &limits).unwrap_err();
    let e = tight(Limits {
        max_attachments: 3,
        ..Limits::default()
    });
    assert!(
        matches!(
            e,
            EdxmlError::TooLarge {
                what: "the number of attachments",
                limit: 3
            }
        ),
        "{e}"
    );
    let e = tight(Limits {
        max_elements: 20,
        ..Limits::default()
    });
    assert!(
        matches!(
            e,
            EdxmlError::TooLarge {
                what: "the number of elements",
                limit: 20
            }
        ),
        "{e}"
    );
    let e = tight(Limits {
        max_header_text: 40,
        ..Limits::default()
    });
    assert!(matches!(e, EdxmlError::TooLarge { limit: 40, .. }), "{e}");
    assert!(read_with(
        &bytes[..],
        &mut Discard,
        &Limits {
            max_attachments: 4,
            ..Limits::default()
        }
    )
    .is_ok());
}

#[test]
fn ambiguous_or_unusable_headers_are_refused_naming_the_element() {
    let doc = |header: &str, rest: &str| {
        format!("<edXML><edXMLEnvelope><edXMLHeader><MessageHeader>{header}</MessageHeader>{rest}</edXMLHeader></edXMLEnvelope></edXML>")
    };
    let from = "<From><OrganId>a</OrganId></From>";
    let to = "<To><OrganId>b</OrganId></To>";
    let cases = [
        (doc(&format!("{from}{from}{to}"), ""), "<From>: appears more than once"),
        (doc(&format!("{from}<To><OrganId> </OrganId></To>"), ""), "<To>: its <OrganId> is empty"),
        (
            doc(&format!("{from}<ResponseFor/><ResponseFor/><StatusCode>01</StatusCode>"), ""),
            "<ResponseFor>: appears 2 times in a status message",
        ),
        (
            doc(
                &format!("{from}{to}"),
                "<Bussiness><BussinessDocType>2</BussinessDocType><ReceiverList><Receiver><OrganId>c</OrganId>\
                 <ReceiverType>5</ReceiverType></Receiver></ReceiverList></Bussiness>",
            ),
            "<ReceiverType>: \"5\" is not 0 (removed) or 1 (added)",
        ),
        (
            doc(&format!("{from}{to}"), "<Bussiness><ReplacementInfoList><ReplacementInfo/></ReplacementInfoList></Bussiness>"),
            "<ReplacementInfo>: has no <DocumentId>",
        ),
        (doc(&format!("{from}{to}<Subject>&nbsp;</Subject>"), ""), "the unknown entity &nbsp; (inside <Subject>)"),
        (doc(&format!("{from}{to}<Subject>\u{1}</Subject>"), ""), "U+0001, which XML 1.0 does not allow (inside <Subject>)"),
        ("<edXML><MessageHeader><Subject>cut".to_string(), "the document ends before its elements are closed (inside <Subject>)"),
        ("<edXML><MessageHeader/></edXML>".to_string(), "no <From>"),
        ("<edXML/>".to_string(), "no <MessageHeader>"),
        ("  \n".to_string(), "not an edXML document: no root element"),
    ];
    for (doc, expected) in cases {
        let e = read(doc.as_bytes(), &mut Discard).unwrap_err().to_string();
        assert!(
            e.contains(expected),
            "{doc}\n  gave: {e}\n  expected: {expected}"
        );
    }
}

#[test]
fn the_writer_refuses_what_would_not_read_back() {
    let (p, _) = package("package-full.xml");
    let mut header = p.header.clone();
    header.to.clear();
    let e = write_package(Vec::new(), &header, &[], None, &mut []).unwrap_err();
    assert!(matches!(e, EdxmlError::Missing { element: "To" }), "{e}");
    let mut header = p.header.clone();
    header.subject = Some("bell \u{7}".into());
    let mut out = Vec::new();
    let e = write_package(&mut out, &header, &[], None, &mut []).unwrap_err();
    assert_eq!(
        e.to_string(),
        "<Subject>: holds the character U+0007, which XML 1.0 cannot carry"
    );
    assert!(out.is_empty(), "nothing is written before a refusal");
    let mut header = p.header.clone();
    header.from.organ_id = " ".into();
    let e = write_package(Vec::new(), &header, &[], None, &mut []).unwrap_err();
    assert!(
        matches!(
            e,
            EdxmlError::Invalid {
                element: "From",
                ..
            }
        ),
        "{e}"
    );
    let st = StatusMessage {
        from: p.header.from.clone(),
        response_for: ResponseFor::default(),
        staff_info: StaffInfo::default(),
        status_code: "07".into(),
        description: None,
        timestamp: None,
        traces: Vec::new(),
    };
    let e = write_status(Vec::new(), &st).unwrap_err();
    assert!(
        matches!(
            e,
            EdxmlError::Invalid {
                element: "StatusCode",
                ..
            }
        ),
        "{e}"
    );
}
