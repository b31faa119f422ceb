//! Writes the fuzz fixtures (`init`) and the hand-made seed inputs of every target, built from
//! the project's own types so each target starts from inputs that reach deep into its decoder.
//! `cargo run --example seeds -- init` once (fixtures are committed); then
//! `cargo run --example seeds -- write` writes `seeds/<target>/seed-*` (copy them into
//! `corpus/<target>/` to start a run from them), and `-- check` shows how the trust answers
//! each signed seed.

use poros_certs::{generate_key, key_pkcs8_der, make_csr, make_key_csr, Ca, SignerSubject};
use poros_config::{hub_toml_template, AgentConfig};
use poros_fuzz::{at, fixture, StatementKind, AGENCY, SIGNER_NOT_AFTER, SIGNER_NOT_BEFORE};
use poros_protocol::frame::{Credentials, Refusal, RefusalCode};
use poros_protocol::receipt::{Acceptance, HubNotice, NoticeKind, Outcome, PaperReport, Receipt};
use poros_protocol::{
    AgencyId, DocumentId, EnrollToken, Envelope, Frame, Metadata, Priority, SignedAcceptance,
    SignedBlob, SignedEnvelope, SignedNotice, SignedPaperReport, SignedReceipt, SigningKey,
};
use std::path::{Path, PathBuf};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> Res<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match std::env::args().nth(1).as_deref() {
        Some("init") => init(&root.join("fixtures")),
        Some("write") => seeds(&root.join("seeds")),
        Some("check") => check(&root.join("seeds/signed_statement")),
        _ => Err("usage: seeds init | seeds write | seeds check".into()),
    }
}

/// A fresh fuzz CA and the serial of a signer certificate its CRL will revoke.
fn init(dir: &Path) -> Res<()> {
    let ca = Ca::new_root("Poros fuzz-only CA", at(1_577_836_800), at(4_102_444_800))?;
    std::fs::write(dir.join("fuzz-ca.pem"), ca.cert_pem())?;
    std::fs::write(dir.join("fuzz-ca.key"), ca.key_pem())?;
    let key = generate_key()?;
    let revoked = ca.issue_signing(
        &make_key_csr(&key, "revoked")?,
        &SignerSubject::Agency(AgencyId::parse("000.00.00.G99")?),
        at(SIGNER_NOT_BEFORE),
        at(SIGNER_NOT_AFTER),
    )?;
    std::fs::write(dir.join("revoked-serial.hex"), hex::encode(&revoked.serial))?;
    std::fs::write(dir.join("revoked-signer.der"), &revoked.der)?;
    std::fs::write(dir.join("revoked-signer.key"), key.serialize_pem())?;
    Ok(())
}

/// Print how the trust answers each signed seed, to confirm the seeds reach the "verifies"
/// side (valid ones at clock 0) and the refusals (revoked, TLS certificate, wrong clock).
fn check(dir: &Path) -> Res<()> {
    let f = fixture();
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
        })
        .collect();
    names.sort();
    for path in names {
        let data = std::fs::read(&path)?;
        let kind = StatementKind::from_selector(data[0]);
        let blob: SignedBlob = postcard::from_bytes(&data[2..])?;
        let now = poros_fuzz::clock(data[1]);
        let verdict = match kind.context() {
            Some(ctx) => format!("{:?}", f.trust.verify(&blob, ctx, now)),
            None => format!(
                "{:?}",
                poros_fuzz::CONTEXTS
                    .iter()
                    .map(|c| f.trust.verify(&blob, c, now).is_ok())
                    .collect::<Vec<_>>()
            ),
        };
        println!("{}: {verdict}", path.display());
    }
    Ok(())
}

/// A signer: its key and certificate from the fuzz CA.
struct Signer {
    key: SigningKey,
    cert: Vec<u8>,
}

fn signer(subject: SignerSubject) -> Res<Signer> {
    let f = fixture();
    let key = generate_key()?;
    let issued = f.ca.issue_signing(
        &make_key_csr(&key, "seed")?,
        &subject,
        at(SIGNER_NOT_BEFORE),
        at(SIGNER_NOT_AFTER),
    )?;
    Ok(Signer {
        key: SigningKey::from_pkcs8(&key_pkcs8_der(&key))?,
        cert: issued.der,
    })
}

fn id(s: &str) -> AgencyId {
    AgencyId::parse(s).expect("literal agency")
}

fn envelope() -> Envelope {
    Envelope {
        id: DocumentId::new_v7(SIGNER_NOT_BEFORE as u64 * 1000, [7; 10]),
        sender: id(AGENCY),
        recipients: vec![id("000.00.00.H01"), id("000.00.00.G01")],
        meta: Metadata {
            subject: "Budget for 2027".into(),
            number: Some("123/QD-BTC".into()),
            doc_type: Some("decision".into()),
            priority: Priority::Urgent,
            due_date: Some("2026-12-01".into()),
            filename: Some("budget.pdf".into()),
        },
        created_ms: 1_780_000_000_000,
        body_len: 3,
        body_sha256: poros_protocol::sha256(b"abc"),
        ext: Default::default(),
    }
}

fn seeds(dir: &Path) -> Res<()> {
    let write = |target: &str, name: &str, bytes: &[u8]| -> Res<()> {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(format!("seed-{name}")), bytes)?;
        Ok(())
    };
    let agency = signer(SignerSubject::Agency(id(AGENCY)))?;
    let hub = signer(SignerSubject::Hub)?;
    let env = envelope();
    let doc = env.id;

    // Statements, each validly signed by the right party.
    let s_env = SignedEnvelope::sign(&env, &agency.key, &agency.cert)?;
    let receipt = |outcome| Receipt {
        doc_id: doc,
        sender: id("000.00.00.G01"),
        recipient: id(AGENCY),
        body_sha256: env.body_sha256,
        outcome,
        time_ms: 1_780_000_001_000,
    };
    let s_rec = SignedReceipt::sign(&receipt(Outcome::Delivered), &agency.key, &agency.cert)?;
    let s_rej = SignedReceipt::sign(
        &receipt(Outcome::Rejected {
            reason: "body hash mismatch".into(),
        }),
        &agency.key,
        &agency.cert,
    )?;
    let acc = Acceptance {
        doc_id: doc,
        sender: id(AGENCY),
        recipients: env.recipients.clone(),
        body_sha256: env.body_sha256,
        body_len: 3,
        accepted_ms: 1_780_000_000_500,
    };
    let s_acc = SignedAcceptance::sign(&acc, &hub.key, &hub.cert)?;
    let notice = HubNotice {
        doc_id: doc,
        sender: id(AGENCY),
        recipient: id("000.00.00.H01"),
        kind: NoticeKind::Expired,
        time_ms: 1_780_000_009_000,
    };
    let s_not = SignedNotice::sign(&notice, &hub.key, &hub.cert)?;
    let report = PaperReport {
        agency: id(AGENCY),
        month: "2026-05".into(),
        sent: 12,
        received: 40,
        time_ms: 1_780_000_002_000,
    };
    let s_pap = SignedPaperReport::sign(&report, &agency.key, &agency.cert)?;
    let status = poros_protocol::Statement {
        doc_id: doc,
        from: id(AGENCY).into(),
        to: vec![id("000.00.00.G01")],
        kind: poros_protocol::StatementKind::Status {
            status: poros_protocol::BusinessStatus::Registered,
            reason: None,
        },
        staff: poros_protocol::Staff {
            department: "Văn thư".into(),
            name: "Nguyễn Văn An".into(),
            email: None,
            phone: None,
        },
        note: Some("vào sổ".into()),
        time_ms: 1_780_000_003_000,
    };
    let s_sta = poros_protocol::SignedStatement::sign(&status, &agency.key, &agency.cert)?;
    // The same four as statements (`poros/3`), each signed by its maker.
    let as_stmt = |s: &poros_protocol::Statement, by: &Signer| {
        poros_protocol::SignedStatement::sign(s, &by.key, &by.cert)
    };
    let s_srec = as_stmt(
        &receipt(Outcome::RejectedFor(poros_protocol::Reason::new(
            poros_protocol::ReasonCode::TooLarge,
            "body over the limit",
        )))
        .as_statement(),
        &agency,
    )?;
    let s_sacc = as_stmt(&acc.as_statement(), &hub)?;
    let s_snot = as_stmt(&notice.as_statement(), &hub)?;
    let s_spap = as_stmt(&report.as_statement(), &agency)?;

    // signed_statement: [kind, clock, postcard(blob)].
    let stmt = |kind: StatementKind, clock: u8, blob: &SignedBlob| -> Res<Vec<u8>> {
        let mut v = vec![kind.selector(), clock];
        v.extend(postcard::to_allocvec(blob)?);
        Ok(v)
    };
    let blobs = [
        (StatementKind::Envelope, "envelope", &s_env.0),
        (StatementKind::Receipt, "receipt", &s_rec.0),
        (StatementKind::Receipt, "rejection", &s_rej.0),
        (StatementKind::Acceptance, "acceptance", &s_acc.0),
        (StatementKind::Notice, "notice", &s_not.0),
        (StatementKind::PaperReport, "paper", &s_pap.0),
        (StatementKind::Statement, "status", &s_sta.0),
        (StatementKind::Statement, "stmt-receipt", &s_srec.0),
        (StatementKind::Statement, "stmt-accepted", &s_sacc.0),
        (StatementKind::Statement, "stmt-notice", &s_snot.0),
        (StatementKind::Statement, "stmt-paper", &s_spap.0),
    ];
    for (kind, name, blob) in blobs {
        for clock in 0..3u8 {
            write(
                "signed_statement",
                &format!("{name}-clock{clock}"),
                &stmt(kind, clock, blob)?,
            )?;
        }
        write(
            "signed_statement",
            &format!("{name}-as-blob"),
            &stmt(StatementKind::Blob, 0, blob)?,
        )?;
    }
    // Signed by a revoked certificate, and by a TLS (wrong usage) certificate.
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let rkey = rcgen::KeyPair::from_pem(&std::fs::read_to_string(
        fixtures.join("revoked-signer.key"),
    )?)?;
    let revoked = SigningKey::from_pkcs8(&key_pkcs8_der(&rkey))?;
    let rcert = std::fs::read(fixtures.join("revoked-signer.der"))?;
    let s_revoked = SignedEnvelope::sign(&env, &revoked, &rcert)?;
    write(
        "signed_statement",
        "envelope-revoked",
        &stmt(StatementKind::Envelope, 0, &s_revoked.0)?,
    )?;
    let tkey = generate_key()?;
    let tls = fixture().ca.issue_node_tls(
        &make_csr(&tkey, &id(AGENCY))?,
        &id(AGENCY),
        at(SIGNER_NOT_BEFORE),
        at(SIGNER_NOT_AFTER),
    )?;
    let s_tls = SignedEnvelope::sign(
        &env,
        &SigningKey::from_pkcs8(&key_pkcs8_der(&tkey))?,
        &tls.der,
    )?;
    write(
        "signed_statement",
        "envelope-tls-cert",
        &stmt(StatementKind::Envelope, 0, &s_tls.0)?,
    )?;

    // envelope: [even, postcard(Envelope)] / [odd, postcard(Metadata)].
    let mut bad = env.clone();
    bad.recipients.push(bad.sender.clone());
    bad.meta.due_date = Some("2026-02-31".into());
    for (name, e) in [("valid", &env), ("self-recipient", &bad)] {
        let mut v = vec![0];
        v.extend(postcard::to_allocvec(e)?);
        write("envelope", name, &v)?;
    }
    let mut v = vec![1];
    v.extend(postcard::to_allocvec(&env.meta)?);
    write("envelope", "metadata", &v)?;
    let mut v = vec![1];
    v.extend(postcard::to_allocvec(&Metadata {
        subject: "x\u{1b}[2J".into(),
        ..Default::default()
    })?);
    write("envelope", "metadata-minimal", &v)?;

    // frame: one of every frame, as on the wire.
    let tls_key = generate_key()?;
    let sign_key = generate_key()?;
    let crl = fixture().ca.crl(
        &[(vec![0x41; 16], at(SIGNER_NOT_BEFORE))],
        7,
        at(SIGNER_NOT_BEFORE),
        at(SIGNER_NOT_AFTER),
    )?;
    let f = fixture();
    let frames = [
        (
            "submit",
            Frame::Submit {
                envelope: s_env.clone(),
            },
        ),
        (
            "deliver",
            Frame::Deliver {
                envelope: s_env.clone(),
            },
        ),
        (
            "relay-receipt",
            Frame::RelayReceipt {
                receipt: s_rej.clone(),
            },
        ),
        (
            "notice",
            Frame::Notice {
                notice: s_not.clone(),
            },
        ),
        (
            "accepted",
            Frame::Accepted {
                acceptance: s_acc.clone(),
            },
        ),
        (
            "receipt",
            Frame::Receipt {
                receipt: s_rec.clone(),
            },
        ),
        ("ack", Frame::Ack { doc_id: doc }),
        (
            "refused",
            Frame::Refused(Refusal {
                code: RefusalCode::UnknownRecipient,
                message: "000.00.00.H01 is not registered".into(),
            }),
        ),
        (
            "enroll",
            Frame::Enroll {
                agency: id(AGENCY),
                secret: "ab".repeat(32),
                tls_csr: make_csr(&tls_key, &id(AGENCY))?,
                sign_csr: make_key_csr(&sign_key, AGENCY)?,
            },
        ),
        (
            "renew",
            Frame::Renew {
                tls_csr: make_csr(&tls_key, &id(AGENCY))?,
                sign_csr: make_key_csr(&sign_key, AGENCY)?,
            },
        ),
        (
            "credentials",
            Frame::Credentials(Credentials {
                tls_cert: tls.pem.clone(),
                sign_cert: poros_certs::der_to_pem_cert(&agency.cert),
                network_ca: f.ca.cert_pem().into(),
                signing_ca: f.ca.cert_pem().into(),
                signing_crl: crl.clone(),
                hub: "127.0.0.1:7443".into(),
            }),
        ),
        (
            "paper-report",
            Frame::PaperReport {
                report: s_pap.clone(),
            },
        ),
        (
            "crl-update",
            Frame::CrlUpdate {
                signing_crl: crl.clone(),
            },
        ),
        (
            "crl-update-garbage",
            Frame::CrlUpdate {
                signing_crl: vec![0x30, 0x00],
            },
        ),
    ];
    for (name, frame) in frames {
        write("frame", name, &frame.encode()?)?;
    }

    // token: printed tokens, one damaged.
    let token = EnrollToken {
        agency: id(AGENCY),
        hub: "hub.example.gov:7444".into(),
        server_name: "hub.example.gov".into(),
        ca_pin: poros_protocol::sha256(f.ca.cert_der()),
        secret: "5e".repeat(32),
        expires_ms: 1_780_086_400_000,
    };
    let printed = token.encode();
    write("token", "valid", printed.as_bytes())?;
    write("token", "padded", format!("  {printed}\n").as_bytes())?;
    write("token", "cut", &printed.as_bytes()[..printed.len() - 9])?;

    // csr: PEM requests as the agent makes them, a greedy one, DER, and a certificate.
    write(
        "csr",
        "agent-tls",
        format!("\x01{}", make_csr(&tls_key, &id(AGENCY))?).as_bytes(),
    )?;
    write(
        "csr",
        "agent-sign",
        format!("\x02{}", make_key_csr(&sign_key, AGENCY)?).as_bytes(),
    )?;
    // A greedy request: CA:TRUE (as a raw extension: rcgen will not put it in a request),
    // serverAuth + clientAuth, other names, certificate signing.
    let mut greedy = rcgen::CertificateParams::new(vec!["hub.example.gov".to_string()])?;
    greedy
        .subject_alt_names
        .push(rcgen::SanType::URI("urn:poros:hub".try_into()?));
    greedy.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    greedy.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let mut bc = rcgen::CustomExtension::from_oid_content(
        &[2, 5, 29, 19],
        vec![0x30, 0x03, 0x01, 0x01, 0xff],
    );
    bc.set_criticality(true);
    greedy.custom_extensions = vec![bc];
    let greedy = greedy.serialize_request(&tls_key)?;
    write("csr", "greedy", format!("\x03{}", greedy.pem()?).as_bytes())?;
    let mut der = vec![0];
    der.extend_from_slice(greedy.der());
    write("csr", "greedy-der", &der)?;
    write("csr", "certificate", format!("\x01{}", tls.pem).as_bytes())?;

    // config: the files Poros writes, and a few hand-written ones.
    let d = poros_config::HubConfig::default();
    write(
        "config",
        "hub-template",
        hub_toml_template(
            d.network.listen,
            d.network.ops_listen,
            d.enrolment.listen,
            "hub.example.gov",
        )
        .as_bytes(),
    )?;
    let agent = AgentConfig::new(id(AGENCY), "10.0.0.5:7443".parse()?);
    write("config", "agent", agent.to_toml().as_bytes())?;
    write(
        "config",
        "agent-minimal",
        b"agency = \"000.00.00.H01\"\nhub = \"[::1]:7443\"\nhub_server_name = 'h\\x'\n",
    )?;
    write(
        "config",
        "hub-partial",
        b"[limits]\nmax_body_bytes = 1_000\n[monitoring]\nalert_below_percent = 99.5\n[enrolment]\nserver_name = \"a b\"\n",
    )?;
    Ok(())
}
