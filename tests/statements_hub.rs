//! The hub's side of the statement path, driven on the wire with agencies' own credentials:
//! forged statements are refused with their reason code and store nothing; legal ones are
//! stored once and relayed to the addressee in acceptance order; a `poros/1` connection is
//! never sent an agency's statement, and is answered in its own forms (acceptance, notices).

mod common;
use common::raw::*;
use common::*;
use poros_protocol::{
    AgencyId, BusinessStatus, Change, DocumentId, Frame, ReasonCode, RefusalCode, SignedStatement,
    Staff, Statement, StatementKind,
};
use std::path::Path;
use std::time::{Duration, Instant};

fn a(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

/// A statement by `from` (signed with the key in `signer`'s agent directory).
fn statement(
    signer: &Path,
    doc: DocumentId,
    from: &str,
    to: &[&str],
    kind: StatementKind,
) -> SignedStatement {
    let (key, cert) = signing_key(signer);
    let s = Statement {
        doc_id: doc,
        from: a(from).into(),
        to: to.iter().map(|t| a(t)).collect(),
        kind,
        staff: Staff {
            department: "Văn thư".into(),
            name: "Nguyễn Văn A".into(),
            email: None,
            phone: None,
        },
        note: None,
        time_ms: 1,
    };
    SignedStatement::sign(&s, &key, &cert).unwrap()
}

fn status(s: BusinessStatus) -> StatementKind {
    StatementKind::Status {
        status: s,
        reason: None,
    }
}

fn bytes(s: &SignedStatement) -> Vec<u8> {
    Frame::Statement {
        statement: s.clone(),
    }
    .encode()
    .unwrap()
}

/// Send each statement on `conn` and return the hub's answers.
async fn submit_all(conn: &quinn::Connection, all: &[SignedStatement]) -> Vec<Frame> {
    let mut out = Vec::new();
    for s in all {
        out.push(request(conn, &bytes(s)).await.expect("an answer"));
    }
    out
}

/// Act as `agency`'s agent: answer whatever the hub sends with `Ack` and collect the statements,
/// until `want` arrived or `deadline`.
async fn collect_statements(
    conn: &quinn::Connection,
    want: usize,
    deadline: Instant,
) -> Vec<Statement> {
    let mut got = Vec::new();
    while got.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok((mut send, mut recv))) = tokio::time::timeout(left, conn.accept_bi()).await
        else {
            break;
        };
        let Ok(frame) = poros_transport::read_frame(&mut recv).await else {
            continue;
        };
        let doc_id = match &frame {
            Frame::Statement { statement } => {
                let s = statement.statement().unwrap();
                let d = s.doc_id;
                got.push(s);
                d
            }
            Frame::RelayReceipt { receipt } => receipt.receipt().unwrap().doc_id,
            Frame::Notice { notice } => notice.notice().unwrap().doc_id,
            _ => DocumentId::from_bytes([0; 16]),
        };
        assert!(
            !matches!(frame, Frame::DeliverAdded { .. } | Frame::Deliver { .. }),
            "unexpected delivery"
        );
        let _ = poros_transport::write_frame(&mut send, &Frame::Ack { doc_id }).await;
        let _ = send.finish();
    }
    got
}

/// A document from A to C and D, delivered at both (the receipts relayed to A); then every
/// agent stopped, so raw connections can speak for the agencies.
fn delivered_doc(net: &mut Net) -> (String, DocumentId) {
    let id = net.send(A, &[C, D], "statements", b"official text");
    net.wait_state(A, &id, "delivered");
    wait_until("receipt relays acknowledged", DEADLINE, || {
        net.metric("poros_deliveries_delivered_total") >= 2
            && net.admin_get(&format!("/admin/v1/documents/{id}"))["deliveries"]
                .as_array()
                .is_some_and(|d| d.iter().all(|d| d["state"] == "delivered"))
    });
    for c in [A, B, C, D] {
        net.stop_agent(c);
    }
    (id.clone(), id.parse().unwrap())
}

fn history(net: &Net, id: &str) -> Vec<serde_json::Value> {
    let out = net.hub_cli(&["doc", "--dir", &s(&net.hub_dir), id, "--json"]);
    assert_ok(&out, "poros-hub doc --json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["history"].as_array().cloned().unwrap_or_default()
}

#[test]
fn forged_statements_are_refused_with_their_reason_and_store_nothing() {
    let mut net = Net::running(&[A, B, C, D]);
    let (id, doc) = delivered_doc(&mut net);
    let addr = net.quic_addr();
    let (dir_b, dir_c) = (net.agent_dir(B), net.agent_dir(C));

    // C registers and completes the document (legal), then tries 06 -> 04.
    let legal = [
        statement(&dir_c, doc, C, &[A], status(BusinessStatus::Registered)),
        statement(&dir_c, doc, C, &[A], status(BusinessStatus::Completed)),
    ];
    let unknown = DocumentId::new_v7(1, [7; 10]);
    let from_c = [
        (
            statement(&dir_c, doc, C, &[A], status(BusinessStatus::Assigned)),
            ReasonCode::IllegalTransition,
        ),
        (
            statement(
                &dir_c,
                doc,
                C,
                &[D],
                StatementKind::Change {
                    change: Change::TakeBack,
                    reason: "a recipient cannot take back".into(),
                },
            ),
            ReasonCode::IllegalTransition,
        ),
        // Signed by B, claiming to be C, on C's connection.
        (
            statement(&dir_b, doc, C, &[A], status(BusinessStatus::Processing)),
            ReasonCode::SignerNotForAgency,
        ),
        (
            statement(&dir_c, unknown, C, &[A], status(BusinessStatus::Arrived)),
            ReasonCode::UnknownDocument,
        ),
    ];
    // B is not a recipient: neither a status nor an answer from it is legal.
    let from_b = [
        (
            statement(&dir_b, doc, B, &[A], status(BusinessStatus::Registered)),
            ReasonCode::IllegalTransition,
        ),
        (
            statement(
                &dir_b,
                doc,
                B,
                &[A],
                StatementKind::Answer {
                    request: [1; 32],
                    accept: true,
                    reason: None,
                },
            ),
            ReasonCode::IllegalTransition,
        ),
    ];
    let (acks, refused_c, refused_b) = rt().block_on(async {
        let c = connect(agent_tls(&dir_c), addr)
            .await
            .expect("connect as C");
        let acks = submit_all(&c, &legal).await;
        let forged: Vec<_> = from_c.iter().map(|(s, _)| s.clone()).collect();
        let refused_c = submit_all(&c, &forged).await;
        // Resubmitting a stored statement is acknowledged again, and stored once.
        let again = submit_all(&c, &legal[..1]).await;
        assert!(matches!(again[0], Frame::Ack { doc_id } if doc_id == doc));
        let b = connect(agent_tls(&dir_b), addr)
            .await
            .expect("connect as B");
        let forged: Vec<_> = from_b.iter().map(|(s, _)| s.clone()).collect();
        (acks, refused_c, submit_all(&b, &forged).await)
    });
    for f in &acks {
        assert!(
            matches!(f, Frame::Ack { doc_id } if *doc_id == doc),
            "{f:?}"
        );
    }
    let expected = from_c.iter().chain(&from_b).map(|(_, c)| *c);
    for (f, want) in refused_c.iter().chain(&refused_b).zip(expected) {
        let (code, msg) = refused(f).unwrap_or_else(|| panic!("not refused: {f:?}"));
        assert_eq!(code, RefusalCode::Rule(want), "{msg}");
    }
    // Nothing of it stored: after the hub's acceptance and the two receipts, the history
    // holds the two legal statements, once each.
    let h = history(&net, &id);
    let labels: Vec<_> = h.iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "hub_accepted",
            "delivered",
            "delivered",
            "registered",
            "completed"
        ]
    );
    assert_eq!(h[4]["code"], "06");
    let v = net.admin_get(&format!("/admin/v1/documents/{id}"));
    let at_c = v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["recipient"] == C)
        .unwrap();
    // Under C: the acceptance that queued it, its receipt, and its two statuses.
    let at_c: Vec<_> = at_c["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        at_c,
        ["hub_accepted", "delivered", "registered", "completed"]
    );
    for reason in [
        "illegal_transition",
        "signer_not_for_agency",
        "unknown_document",
    ] {
        let line = format!("poros_refusals_total{{reason=\"{reason}\"}}");
        assert!(net.metric(&line) >= 1, "{line} not counted");
    }
    assert_eq!(net.metric("poros_statements_total{kind=\"registered\"}"), 1);
}

#[test]
fn legal_statements_are_relayed_in_order_once_acked() {
    let mut net = Net::running(&[A, B, C, D]);
    let (_id, doc) = delivered_doc(&mut net);
    let addr = net.quic_addr();
    let (dir_a, dir_c) = (net.agent_dir(A), net.agent_dir(C));
    let codes = [
        BusinessStatus::Arrived,
        BusinessStatus::Registered,
        BusinessStatus::Assigned,
        BusinessStatus::Processing,
        BusinessStatus::Processing,
        BusinessStatus::Completed,
    ];
    let all: Vec<_> = codes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut st = statement(&dir_c, doc, C, &[A], status(*s));
            if i == 4 {
                // A second 05 differs by its note (otherwise it would be the same statement).
                let mut x = st.statement().unwrap();
                x.note = Some("second pass".into());
                let (key, cert) = signing_key(&dir_c);
                st = SignedStatement::sign(&x, &key, &cert).unwrap();
            }
            st
        })
        .collect();
    // The runtime (and A's connection) stay up until the hub has read the last Ack.
    let rt = rt();
    let (got, _a_conn) = rt.block_on(async {
        let c = connect(agent_tls(&dir_c), addr)
            .await
            .expect("connect as C");
        for f in submit_all(&c, &all).await {
            assert!(matches!(f, Frame::Ack { .. }), "{f:?}");
        }
        // The sender was offline; it gets them all, in order, when it connects.
        let a_conn = connect(agent_tls(&dir_a), addr)
            .await
            .expect("connect as A");
        let got = collect_statements(&a_conn, all.len(), Instant::now() + DEADLINE).await;
        (got, a_conn)
    });
    let got: Vec<_> = got
        .iter()
        .map(|s| match s.kind {
            StatementKind::Status { status, .. } => status,
            _ => panic!("not a status"),
        })
        .collect();
    assert_eq!(got, codes);
    wait_until("relay queue empty", DEADLINE, || {
        // The statuses, after the two receipts relayed to A when the document was delivered.
        net.metric("poros_statement_relay_depth") == 0
            && net.metric("poros_statements_relayed_total") == codes.len() as u64 + 2
    });
}

#[test]
fn poros1_connection_is_sent_no_statement() {
    let mut net = Net::running(&[A, B, C, D]);
    let (_id, doc) = delivered_doc(&mut net);
    let addr = net.quic_addr();
    let (dir_a, dir_c) = (net.agent_dir(A), net.agent_dir(C));
    let reg = statement(&dir_c, doc, C, &[A], status(BusinessStatus::Registered));
    let (old, new) = rt().block_on(async {
        let c = connect(agent_tls(&dir_c), addr)
            .await
            .expect("connect as C");
        assert!(matches!(submit_all(&c, &[reg]).await[0], Frame::Ack { .. }));
        let mut v1 = agent_tls(&dir_a);
        v1.alpn_protocols = vec![poros_protocol::ALPN_V1.to_vec()];
        let conn = connect(v1, addr)
            .await
            .expect("an old agent still connects");
        // An old agent is served (the hub pushes its CRL first) but sent no statement: a
        // bounded wait, as an absence can only be observed over time.
        let old = collect_statements(&conn, 1, Instant::now() + Duration::from_secs(4)).await;
        conn.close(0u32.into(), b"upgrading");
        let conn = connect(agent_tls(&dir_a), addr)
            .await
            .expect("connect as A");
        let new = collect_statements(&conn, 1, Instant::now() + DEADLINE).await;
        (old, new)
    });
    assert!(old.is_empty(), "a poros/1 connection was sent {old:?}");
    assert_eq!(
        new.len(),
        1,
        "the statement stayed queued for the newer agent"
    );
}

/// Act as an agent on `conn` until `deadline`: answer every request with `Ack` and return the
/// frames the hub sent (the CRL push left out).
async fn collect_frames(conn: &quinn::Connection, deadline: Instant) -> Vec<Frame> {
    let mut got = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Ok((mut send, mut recv))) = tokio::time::timeout(left, conn.accept_bi()).await
        else {
            return got;
        };
        let Ok(frame) = poros_transport::read_frame(&mut recv).await else {
            continue;
        };
        let doc_id = match &frame {
            Frame::Notice { notice } => notice.notice().unwrap().doc_id,
            Frame::Statement { statement } => statement.statement().unwrap().doc_id,
            Frame::RelayReceipt { receipt } => receipt.receipt().unwrap().doc_id,
            _ => DocumentId::from_bytes([0; 16]),
        };
        let _ = poros_transport::write_frame(&mut send, &Frame::Ack { doc_id }).await;
        let _ = send.finish();
        if !matches!(frame, Frame::CrlUpdate { .. }) {
            got.push(frame);
        }
    }
}

/// An old (`poros/1`) agent is answered in its own forms: its submission gets an `Acceptance`
/// in that form, the hub's expiry notice is signed again as a `Notice` for it, and a newer
/// recipient's `Receipt` statement, which it could not verify, waits for its upgrade.
#[test]
fn poros1_agent_is_answered_in_its_own_forms() {
    let mut net = Net::new();
    net.set_hub_config("expiry_secs", "2");
    net.set_hub_config("sweep_interval_secs", "1");
    for code in [A, B, C] {
        net.add_agent(code);
    }
    net.start_hub();
    net.start_agent(B);
    let addr = net.quic_addr();
    let dir_a = net.agent_dir(A);
    let (key, cert) = signing_key(&dir_a);
    let body = b"from an old agent".to_vec();
    // One document to B (a current agent, which answers at once), one to C (which never
    // connects, so its delivery expires).
    let to_b = envelope(A, B, &body, 41);
    let to_c = envelope(A, C, &body, 42);
    let (old, new) = rt().block_on(async {
        let mut v1 = agent_tls(&dir_a);
        v1.alpn_protocols = vec![poros_protocol::ALPN_V1.to_vec()];
        let conn = connect(v1, addr).await.expect("an old agent connects");
        for env in [&to_b, &to_c] {
            let signed = poros_protocol::SignedEnvelope::sign(env, &key, &cert).unwrap();
            let f = request(&conn, &submit_bytes(&signed, &body))
                .await
                .expect("an answer");
            let Frame::Accepted { acceptance } = &f else {
                panic!("a poros/1 submission answered with {f:?}");
            };
            let acc = acceptance.acceptance().unwrap();
            assert_eq!((acc.doc_id, &acc.recipients), (env.id, &env.recipients));
        }
        let old = collect_frames(&conn, Instant::now() + Duration::from_secs(8)).await;
        conn.close(0u32.into(), b"upgrading");
        let conn = connect(agent_tls(&dir_a), addr)
            .await
            .expect("connect as a current agent");
        let new = collect_frames(&conn, Instant::now() + Duration::from_secs(4)).await;
        (old, new)
    });
    // The old connection: the expiry notice about C, in its form, and nothing else.
    assert_eq!(old.len(), 1, "{old:?}");
    let Frame::Notice { notice } = &old[0] else {
        panic!("expected a poros/1 notice, got {:?}", old[0]);
    };
    let n = notice.notice().unwrap();
    assert_eq!((n.doc_id, n.recipient.as_str()), (to_c.id, C));
    assert_eq!(n.kind, poros_protocol::NoticeKind::Expired);
    // The current connection: B's receipt statement, kept for it; the notice not again.
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(matches!(new[0], Frame::Statement { .. }), "{:?}", new[0]);
    let r = receipt_of(&new[0]).expect("a receipt");
    assert_eq!((r.doc_id, r.from.as_str()), (to_b.id, B));
    // The hub's histories hold the current forms.
    let labels = |id: DocumentId| -> Vec<String> {
        history(&net, &id.to_string())
            .iter()
            .map(|s| s["label"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(labels(to_b.id), ["hub_accepted", "delivered"]);
    assert_eq!(labels(to_c.id), ["hub_accepted", "expired"]);
}

/// A paper count is a statement about a month: a malformed one is refused with its reason and
/// counts nothing; a valid one is acknowledged and counted; a receipt said on its own (not as
/// the answer to a delivery) is refused.
#[test]
fn paper_counts_are_statements_checked_before_they_count() {
    // Only the hub runs: the raw connection speaks for A.
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    let addr = net.quic_addr();
    let dir_a = net.agent_dir(A);
    let count = |month: &str| {
        statement(
            &dir_a,
            DocumentId::NIL,
            A,
            &[],
            StatementKind::PaperCount {
                month: month.into(),
                sent: 7,
                received: 3,
            },
        )
    };
    let receipt = statement(
        &dir_a,
        DocumentId::new_v7(1, [1; 10]),
        A,
        &[B],
        StatementKind::Receipt {
            body_sha256: [0; 32],
            outcome: poros_protocol::Outcome::Delivered,
        },
    );
    // The month the report shows by default.
    let now = time::OffsetDateTime::now_utc();
    let this_month = format!("{:04}-{:02}", now.year(), u8::from(now.month()));
    let answers = rt().block_on(async {
        let c = connect(agent_tls(&dir_a), addr)
            .await
            .expect("connect as A");
        submit_all(&c, &[count("2026-13"), count(&this_month), receipt]).await
    });
    let (code, msg) = refused(&answers[0]).expect("a bad month is refused");
    assert_eq!(code, RefusalCode::Rule(ReasonCode::Other), "{msg}");
    assert!(msg.contains("YYYY-MM"), "{msg}");
    assert!(matches!(answers[1], Frame::Ack { .. }), "{:?}", answers[1]);
    let (code, msg) = refused(&answers[2]).expect("a lone receipt is refused");
    assert_eq!(
        code,
        RefusalCode::Rule(ReasonCode::IllegalTransition),
        "{msg}"
    );
    let out = net.hub_cli(&["stats", "--dir", &s(&net.hub_dir), "--json"]);
    assert_ok(&out, "poros-hub stats --json");
    // Counted once, for the month reported (7 sent on paper), wherever the report shows it.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    fn sent_counts(v: &serde_json::Value, out: &mut Vec<u64>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(n) = m.get("paper_sent").and_then(|n| n.as_u64()) {
                    out.push(n);
                }
                m.values().for_each(|x| sent_counts(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| sent_counts(x, out)),
            _ => {}
        }
    }
    let mut counts = Vec::new();
    sent_counts(&v, &mut counts);
    assert!(counts.contains(&7), "{v}");
    assert!(counts.iter().all(|n| *n == 0 || *n == 7), "{v}");
}
