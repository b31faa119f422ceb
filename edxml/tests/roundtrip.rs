//! Property tests: generated packages and status messages (text with XML's special characters,
//! line ends and Vietnamese, random attachments) written and read back give the same values,
//! read in chunks of any size; base64 split by whitespace anywhere decodes to the same bytes.

use std::io::BufReader;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use poros_edxml::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use ring::digest;

/// Characters XML 1.0 may carry (what the reader accepts and the writer writes).
fn legal(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::sample::select(
            "<>&\"' \t\r\n];#=:/?-!".chars().collect::<Vec<_>>()
        ),
        4 => proptest::sample::select(
            "ăâđêôơưĂÂĐÊÔƠƯàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ"
                .chars()
                .collect::<Vec<_>>()
        ),
        4 => proptest::char::range('0', 'z'),
        1 => any::<char>().prop_filter("a character XML 1.0 allows", |&c| legal(c)),
    ]
}

fn text() -> impl Strategy<Value = String> {
    vec(any_char(), 0..24).prop_map(String::from_iter)
}

fn opt() -> impl Strategy<Value = Option<String>> {
    option::of(text())
}

fn organ_id() -> impl Strategy<Value = String> {
    text().prop_filter("a non-blank OrganId", |s| !s.trim().is_empty())
}

fn organ() -> impl Strategy<Value = Organ> {
    (organ_id(), opt(), opt(), opt(), opt(), opt(), opt(), opt()).prop_map(
        |(
            organ_id,
            organization_in_charge,
            organ_name,
            organ_add,
            email,
            telephone,
            fax,
            website,
        )| Organ {
            organ_id,
            organization_in_charge,
            organ_name,
            organ_add,
            email,
            telephone,
            fax,
            website,
        },
    )
}

fn response_for() -> impl Strategy<Value = ResponseFor> {
    (opt(), opt(), opt(), opt()).prop_map(|(organ_id, code, document_id, promulgation_date)| {
        ResponseFor {
            organ_id,
            code,
            document_id,
            promulgation_date,
        }
    })
}

fn staff_info() -> impl Strategy<Value = StaffInfo> {
    (opt(), opt(), opt(), opt()).prop_map(|(department, staff, email, mobile)| StaffInfo {
        department,
        staff,
        email,
        mobile,
    })
}

fn traces() -> impl Strategy<Value = Vec<TraceHeader>> {
    vec(
        (opt(), opt()).prop_map(|(organ_id, timestamp)| TraceHeader {
            organ_id,
            timestamp,
        }),
        0..3,
    )
}

fn header() -> impl Strategy<Value = PackageHeader> {
    let parts = (
        organ(),
        vec(organ(), 1..3),
        opt(),
        (opt(), opt()).prop_map(|(code_number, code_notation)| Code {
            code_number,
            code_notation,
        }),
        (opt(), opt()).prop_map(|(place, promulgation_date)| PromulgationInfo {
            place,
            promulgation_date,
        }),
        (opt(), opt(), opt()).prop_map(|(doc_type, type_detail, type_name)| DocumentType {
            doc_type,
            type_detail,
            type_name,
        }),
        opt(),
        opt(),
        (opt(), opt(), opt()).prop_map(|(competence, position, full_name)| SignerInfo {
            competence,
            position,
            full_name,
        }),
    );
    let other = (opt(), opt(), opt(), opt(), opt(), opt(), vec(text(), 0..3)).prop_map(
        |(
            priority,
            sphere_of_promulgation,
            typer_notation,
            promulgation_amount,
            page_amount,
            direction,
            appendixes,
        )| {
            OtherInfo {
                priority,
                sphere_of_promulgation,
                typer_notation,
                promulgation_amount,
                page_amount,
                direction,
                appendixes,
            }
        },
    );
    (
        parts,
        (
            opt(),
            other,
            vec(response_for(), 0..3),
            opt(),
            vec(text(), 0..3),
        ),
    )
        .prop_map(
            |(
                (
                    from,
                    to,
                    document_id,
                    code,
                    promulgation_info,
                    document_type,
                    subject,
                    content,
                    signer_info,
                ),
                (due_date, other_info, response_for, steering_type, to_places),
            )| PackageHeader {
                from,
                to,
                document_id,
                code,
                promulgation_info,
                document_type,
                subject,
                content,
                signer_info,
                due_date,
                other_info,
                response_for,
                steering_type,
                to_places,
            },
        )
}

fn business() -> impl Strategy<Value = Business> {
    (
        0u8..4,
        opt(),
        opt(),
        option::of(staff_info()),
        vec(
            (text(), any::<bool>()).prop_map(|(organ_id, added)| Receiver { organ_id, added }),
            0..3,
        ),
        vec(
            (text(), vec(text(), 0..3)).prop_map(|(document_id, organ_ids)| Replacement {
                document_id,
                organ_ids,
            }),
            0..3,
        ),
    )
        .prop_map(
            |(code, reason, paper, staff_info, receivers, replacements)| Business {
                doc_type: BusinessDocType::from_code(&code.to_string()).unwrap(),
                reason,
                paper,
                staff_info,
                receivers,
                replacements,
            },
        )
}

fn attachment() -> impl Strategy<Value = (AttachmentMeta, Vec<u8>)> {
    let magic: Vec<&'static [u8]> = vec![
        b"",
        b"%PDF-1.5",
        b"PK\x03\x04",
        b"\xD0\xCF\x11\xE0",
        b"\xFF\xD8\xFF",
        b"<?xml",
    ];
    let meta = (opt(), opt(), opt(), opt()).prop_map(
        |(content_id, attachment_name, description, content_type)| AttachmentMeta {
            content_id,
            attachment_name,
            description,
            content_type,
        },
    );
    (
        meta,
        proptest::sample::select(magic),
        vec(any::<u8>(), 0..2000),
    )
        .prop_map(|(meta, magic, rest)| {
            let mut bytes = magic.to_vec();
            bytes.extend(rest);
            (meta, bytes)
        })
}

fn status() -> impl Strategy<Value = StatusMessage> {
    (
        organ(),
        response_for(),
        staff_info(),
        proptest::sample::select(STATUS_CODES.to_vec()),
        opt(),
        opt(),
        traces(),
    )
        .prop_map(
            |(from, response_for, staff_info, code, description, timestamp, traces)| {
                StatusMessage {
                    from,
                    response_for,
                    staff_info,
                    status_code: code.to_string(),
                    description,
                    timestamp,
                    traces,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn packages_read_back_as_written(
        header in header(),
        traces in traces(),
        business in option::of(business()),
        attachments in vec(attachment(), 0..4),
        capacity in 1usize..200,
    ) {
        let mut contents: Vec<&[u8]> = attachments.iter().map(|(_, bytes)| &bytes[..]).collect();
        let mut sources: Vec<AttachmentSource<'_>> = attachments
            .iter()
            .zip(contents.iter_mut())
            .map(|((meta, _), content)| AttachmentSource { meta: meta.clone(), content })
            .collect();
        let mut out = Vec::new();
        let written = write_package(&mut out, &header, &traces, business.as_ref(), &mut sources).unwrap();
        prop_assert_eq!(written, out.len() as u64);
        let mut sink = Collect::default();
        let message = read(BufReader::with_capacity(capacity, &out[..]), &mut sink);
        let Ok(Message::Package(p)) = message else {
            return Err(TestCaseError::fail(format!("{message:?}\n{}", String::from_utf8_lossy(&out))));
        };
        prop_assert_eq!(&p.header, &header);
        prop_assert_eq!(&p.traces, &traces);
        prop_assert_eq!(&p.business, &business);
        prop_assert_eq!(&p.signature, &SignatureState::Absent);
        let metas: Vec<Reference> = attachments.iter().map(|(meta, _)| Reference::from(meta)).collect();
        prop_assert_eq!(&p.manifest, &metas);
        prop_assert_eq!(p.attachments.len(), attachments.len());
        for (info, (meta, bytes)) in p.attachments.iter().zip(&attachments) {
            prop_assert_eq!(&info.meta, meta);
            prop_assert_eq!(info.len, bytes.len() as u64);
            let sha256 = digest::digest(&digest::SHA256, bytes);
            prop_assert_eq!(info.sha256.as_slice(), sha256.as_ref());
            prop_assert_eq!(info.detected, detect(bytes));
        }
        let expected: Vec<Vec<u8>> = attachments.into_iter().map(|(_, bytes)| bytes).collect();
        prop_assert_eq!(sink.attachments, expected);
    }

    #[test]
    fn status_messages_read_back_as_written(status in status(), capacity in 1usize..200) {
        let mut out = Vec::new();
        write_status(&mut out, &status).unwrap();
        let message = read(BufReader::with_capacity(capacity, &out[..]), &mut Discard).unwrap();
        prop_assert_eq!(message, Message::Status(status));
    }

    #[test]
    fn base64_split_by_whitespace_anywhere_decodes_the_same(
        bytes in vec(any::<u8>(), 0..3000),
        breaks in vec((any::<prop::sample::Index>(), proptest::sample::select(vec![" ", "\r\n", "\n", "\t", "&#13;", "&#x20;"])), 0..40),
        capacity in 1usize..100,
    ) {
        let mut encoded = STANDARD.encode(&bytes);
        let mut at: Vec<(usize, &str)> = breaks.iter().map(|(i, ws)| (i.index(encoded.len() + 1), *ws)).collect();
        at.sort_by_key(|&(i, _)| std::cmp::Reverse(i));
        for (i, ws) in at {
            encoded.insert_str(i, ws);
        }
        let doc = format!(
            "<edXML><MessageHeader><From><OrganId>a</OrganId></From><To><OrganId>b</OrganId></To></MessageHeader>\
             <AttachmentEncoded><Attachment><ContentTransferEncoded>{encoded}</ContentTransferEncoded></Attachment>\
             </AttachmentEncoded></edXML>"
        );
        let mut sink = Collect::default();
        let message = read(BufReader::with_capacity(capacity, doc.as_bytes()), &mut sink);
        let Ok(Message::Package(p)) = message else {
            return Err(TestCaseError::fail(format!("{message:?}")));
        };
        prop_assert_eq!(p.attachments[0].len, bytes.len() as u64);
        prop_assert_eq!(&sink.attachments[0], &bytes);
    }
}
