//! Existing document-management software (DMS) on Poros, end to end with the real binaries:
//! a DMS client speaking the national SDK protocol (the harness's own, written from the
//! protocol's facts) at A sends an edXML package to B and C; B's DMS lists it, fetches it byte
//! for byte, confirms it took it and answers with status messages 01, 03, 06; A's DMS reads them
//! as status messages and sees each recipient's state; a revoke package reaches B, which
//! answers 15; a native agency D exchanges both ways with an edXML agency. And each way a
//! request is refused — bad HMAC, stale timestamp, replay, wrong system id, hash mismatch,
//! malformed XML, unknown recipient — with its own `ErrorDesc` and nothing stored.

mod common;
use base64::Engine;
use common::*;
use poros_harness::sdk::{is_ok, sdk_file_hash, SdkClient};
use serde_json::Value;

const NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";

/// Turn the SDK facade on at `code` (before its agent starts), on a free port.
fn enable_vdxp(net: &Net, code: &str) {
    let d = s(&net.agent_dir(code));
    let out = net.agent_cli(&["vdxp", "enable", "--dir", &d, "--listen", "127.0.0.1:0"]);
    assert_ok(&out, "poros-agent vdxp enable");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("systemid:") && text.contains(code) && text.contains("secret:"),
        "{text}"
    );
}

/// The DMS client of agency `code`, with the secret `vdxp enable` made.
fn dms(net: &Net, code: &str) -> SdkClient {
    let dir = net.agent_dir(code);
    let secret = std::fs::read_to_string(dir.join("vdxp.secret")).unwrap();
    let addr = std::fs::read_to_string(dir.join("run/vdxp.addr")).unwrap();
    SdkClient::new(
        &format!("http://{}/", addr.trim()),
        code,
        secret.trim().as_bytes(),
    )
}

/// A network of A, B, C speaking edXML through the SDK facade and D speaking the native API.
fn network() -> Net {
    let mut net = Net::new();
    for c in [A, B, C, D] {
        net.add_agent(c);
    }
    for c in [A, B, C] {
        enable_vdxp(&net, c);
    }
    net.start_hub();
    for c in [A, B, C, D] {
        net.start_agent(c);
    }
    net
}

fn organ(tag: &str, code: &str) -> String {
    format!(
        "<edXML:{tag}><edXML:OrganId>{code}</edXML:OrganId><edXML:OrganName>Cơ quan {code}</edXML:OrganName></edXML:{tag}>"
    )
}

/// A package as a DMS writes it (CRLF line ends, an undeclared `xlink:` prefix, a
/// placeholder signature without the XML-DSig namespace).
fn package(from: &str, to: &[&str], dms_id: &str, business: u8, attachment: &[u8]) -> Vec<u8> {
    let tos: String = to.iter().map(|t| organ("To", t)).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(attachment);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
<edXML xmlns=\"{NS}\" xmlns:edXML=\"{NS}\">\r\n\
<edXML:edXMLEnvelope><edXML:edXMLHeader><edXML:MessageHeader>\r\n\
{from_organ}{tos}\
<edXML:DocumentId>{dms_id}</edXML:DocumentId>\
<edXML:Code><edXML:CodeNumber>12</edXML:CodeNumber><edXML:CodeNotation>QĐ-UBND</edXML:CodeNotation></edXML:Code>\
<edXML:PromulgationInfo><edXML:Place>Hà Nội</edXML:Place><edXML:PromulgationDate>2026/12/01</edXML:PromulgationDate></edXML:PromulgationInfo>\
<edXML:DocumentType><edXML:Type>1</edXML:Type><edXML:TypeName>Quyết định</edXML:TypeName></edXML:DocumentType>\
<edXML:Subject>Về việc giao chỉ tiêu &amp; kế hoạch 2027</edXML:Subject>\
<edXML:SignerInfo><edXML:Position>Chủ tịch</edXML:Position><edXML:FullName>Nguyễn Văn Bình</edXML:FullName></edXML:SignerInfo>\
<edXML:DueDate>2026/12/31</edXML:DueDate>\
<edXML:OtherInfo><edXML:Priority>1</edXML:Priority></edXML:OtherInfo>\r\n\
</edXML:MessageHeader><edXML:TraceHeaderList>\
<edXML:TraceHeader><edXML:OrganId>{from}</edXML:OrganId><edXML:Timestamp>2026/12/01 09:00:00</edXML:Timestamp></edXML:TraceHeader>\
<edXML:Bussiness><edXML:BussinessDocType>{business}</edXML:BussinessDocType><edXML:BussinessDocReason>Gửi nhầm</edXML:BussinessDocReason>\
<edXML:StaffInfo><edXML:Department>Văn phòng</edXML:Department><edXML:Staff>Lê Thị Hoa</edXML:Staff></edXML:StaffInfo></edXML:Bussiness>\
</edXML:TraceHeaderList>\r\n\
<Signature><SignedInfo/><SignatureValue></SignatureValue></Signature>\
</edXML:edXMLHeader>\
<edXML:edXMLBody><edXML:edXMLManifest><edXML:Reference xlink:href=\"cid:1\"><edXML:ContentId>cid:1</edXML:ContentId>\
<edXML:ContentType>application/pdf</edXML:ContentType><edXML:AttachmentName>qd.pdf</edXML:AttachmentName></edXML:Reference></edXML:edXMLManifest></edXML:edXMLBody>\
</edXML:edXMLEnvelope>\r\n\
<edXML:AttachmentEncoded><edXML:Attachment><edXML:ContentId>cid:1</edXML:ContentId><edXML:AttachmentName>qd.pdf</edXML:AttachmentName>\
<edXML:ContentType>application/pdf</edXML:ContentType><edXML:ContentTransferEncoded>{b64}</edXML:ContentTransferEncoded></edXML:Attachment></edXML:AttachmentEncoded>\r\n\
</edXML>\r\n",
        from_organ = organ("From", from),
    )
    .into_bytes()
}

/// A status message of `from`'s DMS about `sender`'s document `dms_id`.
fn status_msg(from: &str, sender: &str, dms_id: &str, code: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<edXML:edXML xmlns:edXML=\"{NS}\"><edXML:edXMLEnvelope><edXML:edXMLHeader><edXML:MessageHeader>\
{from_organ}\
<edXML:ResponseFor><edXML:OrganId>{sender}</edXML:OrganId><edXML:Code>12/QĐ-UBND</edXML:Code><edXML:DocumentId>{dms_id}</edXML:DocumentId><edXML:PromulgationDate>2026/12/01</edXML:PromulgationDate></edXML:ResponseFor>\
<edXML:StaffInfo><edXML:Department>Văn thư</edXML:Department><edXML:Staff>Trần Văn Nam</edXML:Staff><edXML:Email>nam@example.gov.vn</edXML:Email><edXML:Mobile>0900000000</edXML:Mobile></edXML:StaffInfo>\
<edXML:StatusCode>{code}</edXML:StatusCode><edXML:Description>Mã {code}</edXML:Description><edXML:Timestamp>2026/12/01 10:00:00</edXML:Timestamp>\
</edXML:MessageHeader></edXML:edXMLHeader></edXML:edXMLEnvelope></edXML:edXML>\n",
        from_organ = organ("From", from),
    )
    .into_bytes()
}

fn call(c: &mut SdkClient, op: &str, params: &[(&str, &str)]) -> Value {
    let v = c
        .call(op, params, poros_harness::sdk::Payload::None)
        .unwrap_or_else(|e| panic!("{op}: {e}"));
    assert!(is_ok(&v), "{op} {params:?}: {v}");
    v
}

fn send(c: &mut SdkClient, messagetype: &str, to: &[&str], file: &[u8]) -> Value {
    let to = serde_json::to_string(to).unwrap();
    c.send_bytes(
        &[
            ("servicetype", "eDoc"),
            ("messagetype", messagetype),
            ("to", &to),
        ],
        file,
    )
    .unwrap()
}

fn sent_id(v: &Value) -> String {
    assert!(is_ok(v), "sendEdoc: {v}");
    v["DocId"]
        .as_str()
        .unwrap_or_else(|| panic!("no DocId: {v}"))
        .to_string()
}

/// Wait until `c`'s received list of `kind` holds at least `n` items; returns it.
fn wait_list(c: &mut SdkClient, kind: &str, n: usize) -> Vec<Value> {
    let mut last = Vec::new();
    let what = format!("{n} {kind} message(s) in the DMS's list");
    let counted = if kind == "edoc" {
        "countReceiveEdoc"
    } else {
        "countReceiveStatus"
    };
    wait_until(&what, DEADLINE, || {
        let v = call(c, counted, &[]);
        if v["count"].as_u64().unwrap_or(0) < n as u64 {
            return false;
        }
        last = call(
            c,
            "getReceivedEdocList",
            &[("servicetype", "eDoc"), ("messagetype", kind)],
        )["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        last.len() >= n
    });
    last
}

fn get_edoc(c: &mut SdkClient, id: &str) -> Vec<u8> {
    let v = call(c, "getEdoc", &[("docId", id)]);
    base64::engine::general_purpose::STANDARD
        .decode(v["data"].as_str().expect("data"))
        .expect("base64 data")
}

fn parse(file: &[u8]) -> poros_edxml::Message {
    poros_edxml::read(file, &mut poros_edxml::Discard).expect("the facade's edXML parses")
}

#[test]
fn dms_software_exchanges_documents_statuses_and_revocations_through_the_sdk() {
    let net = network();
    let (mut a, mut b, mut c) = (dms(&net, A), dms(&net, B), dms(&net, C));
    let pdf = {
        let mut p = b"%PDF-1.7\n".to_vec();
        p.extend(pseudo_random(200_000, 7));
        p
    };
    // The directory the DMS picks recipients from.
    let agencies = call(&mut a, "getAgenciesList", &[]);
    for code in [A, B, C, D] {
        let e = agencies["data"]
            .as_array()
            .and_then(|d| d.iter().find(|e| e["code"] == code))
            .unwrap_or_else(|| panic!("{code} not in getAgenciesList: {agencies}"));
        assert_eq!(e["id"], code);
        assert_eq!(e["name"], format!("Agency {code}"));
    }
    let pkg = package(A, &[B, C], "A-2026-0001", 0, &pdf);
    let doc = sent_id(&send(&mut a, "edoc", &[B, C], &pkg));

    // B's DMS lists it, fetches it byte for byte, and takes it.
    let listed = wait_list(&mut b, "edoc", 1);
    assert_eq!(listed[0]["docId"], doc.as_str(), "{listed:?}");
    assert_eq!(listed[0]["from"], A);
    assert_eq!(listed[0]["messageType"], "edoc");
    assert_eq!(
        get_edoc(&mut b, &doc),
        pkg,
        "B's DMS gets exactly what A's DMS sent"
    );
    call(
        &mut b,
        "updateStatus",
        &[("docId", &doc), ("status", "done")],
    );
    assert_eq!(call(&mut b, "countReceiveEdoc", &[])["count"], 0);
    // The signed metadata came from the header.
    let st = net.api(B, &format!("/v1/documents/{doc}"));
    let text = st.to_string();
    assert!(
        text.contains("Về việc giao chỉ tiêu & kế hoạch 2027") && text.contains("12/QĐ-UBND"),
        "{st}"
    );

    // B answers with status messages 01, 03, 06.
    for code in ["01", "03", "06"] {
        let v = send(
            &mut b,
            "status",
            &[A],
            &status_msg(B, A, "A-2026-0001", code),
        );
        sent_id(&v);
    }
    // A's DMS reads them as status messages, in order.
    let statuses = wait_list(&mut a, "status", 3);
    let mut codes = Vec::new();
    for s in &statuses {
        assert_eq!(s["from"], B);
        let id = s["docId"].as_str().unwrap().to_string();
        match parse(&get_edoc(&mut a, &id)) {
            poros_edxml::Message::Status(m) => {
                assert_eq!(m.from.organ_id, B);
                assert_eq!(m.response_for.document_id.as_deref(), Some("A-2026-0001"));
                assert_eq!(m.staff_info.staff.as_deref(), Some("Trần Văn Nam"));
                codes.push(m.status_code);
            }
            other => panic!("a status message was expected: {other:?}"),
        }
        call(
            &mut a,
            "updateStatus",
            &[("docId", &id), ("status", "done")],
        );
    }
    assert_eq!(codes, ["01", "03", "06"]);
    // Per-recipient state.
    let wait_sent = |a: &mut SdkClient, rcpt: &str, send: &str, recv: &str| {
        let mut last = Value::Null;
        wait_until(
            &format!("{rcpt} {send}/{recv} in getSentEdocList"),
            DEADLINE,
            || {
                last = call(a, "getSentEdocList", &[("docId", &doc)]);
                last["data"].as_array().into_iter().flatten().any(|r| {
                    r["toCode"] == rcpt && r["sendStatus"] == send && r["receiveStatus"] == recv
                })
            },
        );
        last
    };
    let l = wait_sent(&mut a, B, "delivered", "06");
    assert_eq!(l["data"].as_array().unwrap().len(), 2, "{l}");
    wait_sent(&mut a, C, "delivered", "");
    let l = call(&mut a, "getSentEdocList", &[("docId", "A-2026-0001")]);
    assert_eq!(l["data"][0]["senderDocId"], "A-2026-0001", "{l}");
    assert_eq!(l["data"][0]["notation"], "12/QĐ-UBND", "{l}");

    // C's DMS has not taken it yet; A revokes it.
    let revoke = package(A, &[B, C], "A-2026-0001", 1, b"");
    sent_id(&send(&mut a, "edoc", &[B, C], &revoke));
    let items = wait_list(&mut b, "edoc", 1);
    let rid = items[0]["docId"].as_str().unwrap().to_string();
    assert_ne!(rid, doc, "the revoke is its own message");
    match parse(&get_edoc(&mut b, &rid)) {
        poros_edxml::Message::Package(p) => {
            let bz = p.business.expect("a revoke package has its business part");
            assert_eq!(bz.doc_type, poros_edxml::BusinessDocType::Revoke);
            assert_eq!(bz.reason.as_deref(), Some("Gửi nhầm"));
            assert_eq!(p.header.document_id.as_deref(), Some("A-2026-0001"));
        }
        other => panic!("a revoke package was expected: {other:?}"),
    }
    call(
        &mut b,
        "updateStatus",
        &[("docId", &rid), ("status", "done")],
    );
    sent_id(&send(
        &mut b,
        "status",
        &[A],
        &status_msg(B, A, "A-2026-0001", "15"),
    ));
    let statuses = wait_list(&mut a, "status", 1);
    let id = statuses[0]["docId"].as_str().unwrap().to_string();
    match parse(&get_edoc(&mut a, &id)) {
        poros_edxml::Message::Status(m) => assert_eq!(m.status_code, "15"),
        other => panic!("status 15 was expected: {other:?}"),
    }
    // At the native API too, B's timeline holds its signed answer 15.
    let st = net.api(A, &format!("/v1/documents/{doc}"));
    let b_line = st["recipients"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["agency"] == B))
        .map(|r| r["timeline"].clone())
        .unwrap_or_default();
    assert!(
        b_line
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["code"] == "15"),
        "{st}"
    );
    // C's DMS never took the document: it finds it, and the revoke after it.
    let at_c = wait_list(&mut c, "edoc", 2);
    assert_eq!(at_c[0]["docId"], doc.as_str(), "{at_c:?}");
    match parse(&get_edoc(&mut c, at_c[1]["docId"].as_str().unwrap())) {
        poros_edxml::Message::Package(p) => assert_eq!(
            p.business.map(|b| b.doc_type),
            Some(poros_edxml::BusinessDocType::Revoke)
        ),
        other => panic!("a revoke package was expected at C: {other:?}"),
    }

    // A native agency D and an edXML agency B, both ways.
    let report = b"PK\x03\x04 native report from D".to_vec();
    let native = net.send(D, &[B], "Báo cáo tháng 11", &report);
    let items = wait_list(&mut b, "edoc", 1);
    let nid = items
        .iter()
        .find(|i| i["docId"] == native.as_str())
        .expect("D's document listed");
    assert_eq!(nid["from"], D);
    let file = get_edoc(&mut b, &native);
    let mut sink = poros_edxml::Collect::default();
    match poros_edxml::read(file.as_slice(), &mut sink).expect("a package built for B's DMS") {
        poros_edxml::Message::Package(p) => {
            assert_eq!(p.header.from.organ_id, D);
            assert_eq!(p.header.subject.as_deref(), Some("Báo cáo tháng 11"));
            assert_eq!(p.attachments.len(), 1);
            assert_eq!(p.attachments[0].detected, poros_edxml::ContentKind::Zip);
        }
        other => panic!("a package was expected: {other:?}"),
    }
    assert_eq!(sink.attachments[0], report, "the attachment is D's file");
    let to_d = package(B, &[D], "B-2026-0009", 0, b"%PDF-1.4 reply");
    let reply = sent_id(&send(&mut b, "edoc", &[D], &to_d));
    wait_until("B's package in D's inbox", DEADLINE, || {
        net.inbox_counts(D).is_some_and(|m| m.contains_key(&reply))
    });
    assert_eq!(net.fetch(D, &reply), to_d, "D gets the package itself");
    let st = net.api(D, &format!("/v1/documents/{reply}"));
    assert!(st.to_string().contains("Về việc giao chỉ tiêu"), "{st}");
}

#[test]
fn every_refusal_names_its_cause_and_stores_nothing() {
    let net = network();
    let mut a = dms(&net, A);
    let file = package(A, &[B], "A-X-1", 0, &pseudo_random(300_000, 3));
    let to = serde_json::to_string(&[B]).unwrap();
    let params = [
        ("servicetype", "eDoc"),
        ("messagetype", "edoc"),
        ("to", to.as_str()),
    ];
    let hash = sdk_file_hash(&file);
    let body = |f: &[u8]| {
        poros_harness::sdk::Payload::File(
            Box::new(std::io::Cursor::new(f.to_vec())),
            f.len() as u64,
        )
    };
    let mut descs = std::collections::BTreeMap::new();
    let mut refused = |what: &str, v: Value, needle: &str| {
        assert_eq!(v["status"], "FAIL", "{what}: {v}");
        assert_ne!(v["ErrorCode"], "0", "{what}: {v}");
        let d = v["ErrorDesc"].as_str().unwrap_or_default().to_string();
        assert!(d.contains(needle), "{what}: {d:?} does not say {needle:?}");
        descs.insert(what.to_string(), d);
    };

    // Bad HMAC: a DMS with another secret.
    let mut wrong = SdkClient::new(
        &format!(
            "http://{}",
            std::fs::read_to_string(net.agent_dir(A).join("run/vdxp.addr"))
                .unwrap()
                .trim()
        ),
        A,
        b"not the secret of this system at all",
    );
    refused(
        "bad hmac",
        wrong.send_bytes(&params, &file).unwrap(),
        "HMAC",
    );
    // Stale timestamp.
    a.skew_ms = -10 * 60 * 1000;
    refused("stale", a.send_bytes(&params, &file).unwrap(), "timestamp");
    a.skew_ms = 0;
    // Replay of a request that was accepted.
    let mut all = params.to_vec();
    all.push(("hash-file", &hash));
    let headers = a.signed_headers(&all);
    let first = a.send("sendEdoc", headers.clone(), body(&file)).unwrap();
    let accepted = sent_id(&first);
    refused(
        "replay",
        a.send("sendEdoc", headers, body(&file)).unwrap(),
        "replayed",
    );
    // Wrong system id: a DMS of B using A's endpoint with A's secret.
    let secret = std::fs::read_to_string(net.agent_dir(A).join("vdxp.secret")).unwrap();
    let mut other = SdkClient::new(
        &format!(
            "http://{}",
            std::fs::read_to_string(net.agent_dir(A).join("run/vdxp.addr"))
                .unwrap()
                .trim()
        ),
        B,
        secret.trim().as_bytes(),
    );
    refused(
        "wrong systemid",
        other.send_bytes(&params, &file).unwrap(),
        "systemid",
    );
    // Hash mismatch (a file large enough to be staged as a body file).
    let mut other_file = file.clone();
    other_file.extend_from_slice(b"<!-- altered -->");
    let v = a
        .send_edoc(
            &params,
            Box::new(std::io::Cursor::new(other_file.clone())),
            other_file.len() as u64,
            &hash,
        )
        .unwrap();
    refused("hash mismatch", v, "hash");
    // Malformed XML.
    let broken =
        b"<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"><edXMLEnvelope><oops></edXML>"
            .to_vec();
    refused(
        "malformed",
        a.send_bytes(&params, &broken).unwrap(),
        "edXML",
    );
    // Unknown recipient.
    let unknown = package(A, &[B, "000.00.00.Z99"], "A-X-2", 0, b"%PDF-");
    refused(
        "unknown recipient",
        a.send_bytes(&params, &unknown).unwrap(),
        "000.00.00.Z99",
    );
    // A package from another agency.
    let forged = package(C, &[B], "C-X-3", 0, b"%PDF-");
    refused(
        "from another agency",
        a.send_bytes(&params, &forged).unwrap(),
        "From",
    );

    let texts: std::collections::BTreeSet<&String> = descs.values().collect();
    assert_eq!(
        texts.len(),
        descs.len(),
        "each refusal has its own text: {descs:#?}"
    );
    // Nothing but the one accepted document is stored, and no body file is left behind.
    let out = net.api_list(A, "/v1/documents");
    let ids: Vec<&str> = out
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["id"].as_str())
        .collect();
    assert_eq!(ids, [accepted.as_str()], "outbox: {out}");
    let bodies = net.agent_dir(A).join("data/bodies");
    let files: Vec<_> = walk(&bodies);
    assert_eq!(
        files.len(),
        1,
        "only the accepted document's body file: {files:?}"
    );
    // The refusals are in the agent's log with their causes.
    let log = net.log_text(A);
    for cause in [
        "bad_hmac",
        "stale_timestamp",
        "replay",
        "wrong_systemid",
        "hash_mismatch",
        "bad_edxml",
        "unknown_recipient",
    ] {
        assert!(
            log.contains(cause),
            "the agent's log does not record {cause}"
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if !p.to_string_lossy().contains(".tmp") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn what_the_sdk_acknowledged_survives_kill_9_of_sender_and_recipient() {
    let mut net = network();
    let mut a = dms(&net, A);
    let mut ids = Vec::new();
    for n in 0..4 {
        let pkg = package(
            A,
            &[B],
            &format!("A-K9-{n}"),
            0,
            &pseudo_random(70_000 + n, n as u64),
        );
        ids.push(sent_id(&send(&mut a, "edoc", &[B], &pkg)));
    }
    // The sender dies right after its DMS was told OK, before it could submit everything.
    net.kill_agent(A);
    net.start_agent(A);
    for id in &ids {
        net.wait_state(A, id, "delivered");
    }
    // The recipient's DMS takes one, then the recipient dies.
    let mut b = dms(&net, B);
    let listed = wait_list(&mut b, "edoc", ids.len());
    assert_eq!(listed.len(), ids.len(), "{listed:?}");
    call(
        &mut b,
        "updateStatus",
        &[("docId", &ids[0]), ("status", "done")],
    );
    call(
        &mut b,
        "updateStatus",
        &[("docId", &ids[1]), ("status", "processing")],
    );
    net.kill_agent(B);
    net.start_agent(B);
    // A new listener: a new address and a new client (the same secret).
    let mut b = dms(&net, B);
    let after = wait_list(&mut b, "edoc", ids.len() - 1);
    // The list is in arrival order, and the restarted sender may have handed its documents
    // to the hub in any order: compare what is listed, not where.
    let mut listed: Vec<&str> = after.iter().filter_map(|i| i["docId"].as_str()).collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = ids[1..].iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);
    let taken = after
        .iter()
        .find(|i| i["docId"] == ids[1].as_str())
        .expect("the document marked processing is listed");
    assert_eq!(taken["status"], "processing", "{after:?}");
    // What was taken is still there to fetch again, byte for byte.
    let again = get_edoc(&mut b, &ids[0]);
    assert_eq!(
        again,
        package(A, &[B], "A-K9-0", 0, &pseudo_random(70_000, 0))
    );
}

#[test]
fn without_the_directory_an_unknown_recipient_is_refused_by_the_hub_and_shown_to_the_dms() {
    let mut net = network();
    // A restarts while the hub is down: it holds no copy of the directory.
    net.stop_hub();
    net.stop_agent(A);
    net.start_agent_opts(A, false);
    let mut a = dms(&net, A);
    let pkg = package(A, &[B, "000.00.00.Z99"], "A-OFF-1", 0, b"%PDF-1.4 offline");
    // Taken as any native document is while the hub is unreachable...
    let id = sent_id(&send(&mut a, "edoc", &[B, "000.00.00.Z99"], &pkg));
    net.start_hub();
    // ...and the hub's refusal reaches the DMS, naming the recipient.
    let mut last = Value::Null;
    wait_until("the hub's refusal in getSentEdocList", DEADLINE, || {
        last = call(&mut a, "getSentEdocList", &[("docId", &id)]);
        last["data"][0]["sendStatus"] == "refused"
    });
    let desc = last["data"][0]["sendStatusDesc"]
        .as_str()
        .unwrap_or_default();
    assert!(desc.contains("000.00.00.Z99"), "{last}");
}
