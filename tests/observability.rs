//! What operators read is precise and proportionate: each kind of refused handshake has its own
//! label in `/metrics`, a flood of bad streams writes a few warnings and a count rather than a
//! line per stream, and a normal agent shutdown is not logged as a renewal.

mod common;
use common::raw::*;
use common::*;
use std::sync::Arc;
use std::time::Duration;

fn read(p: std::path::PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A client certificate signed by the deployment's network CA with exactly these SANs and
/// EKUs, for a fresh key; returns (cert PEM, key PEM).
fn network_signed(
    net: &Net,
    sans: Vec<rcgen::SanType>,
    ekus: Vec<rcgen::ExtendedKeyUsagePurpose>,
) -> (String, String) {
    let ca_key = rcgen::KeyPair::from_pem(&read(net.hub_dir.join("pki/network-ca.key"))).unwrap();
    let ca =
        rcgen::CertificateParams::from_ca_cert_pem(&read(net.hub_dir.join("pki/network-ca.crt")))
            .unwrap()
            .self_signed(&ca_key)
            .unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::default();
    p.subject_alt_names = sans;
    p.extended_key_usages = ekus;
    p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(1);
    let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn uri(code: &str) -> rcgen::SanType {
    rcgen::SanType::URI(format!("urn:poros:agency:{code}").try_into().unwrap())
}

/// Try a handshake with `tls`; nothing may get through.
fn attempt(net: &Net, tls: rustls::ClientConfig) {
    let addr = net.quic_addr();
    rt().block_on(async {
        if let Ok(conn) = connect(tls, addr).await {
            let _ = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
        }
    });
}

#[test]
fn each_refused_handshake_has_its_own_label() {
    let mut net = Net::new();
    net.add_agent(A);
    net.start_hub();
    let hub_ca = read(net.hub_dir.join("pki/network-ca.crt"));
    let client_auth = rcgen::ExtendedKeyUsagePurpose::ClientAuth;

    // The CA's own certificate presented as a node's.
    attempt(
        &net,
        client_tls(
            &hub_ca,
            &hub_ca,
            &read(net.hub_dir.join("pki/network-ca.key")),
        ),
    );
    // No clientAuth EKU.
    let (c, k) = network_signed(&net, vec![uri(A)], vec![]);
    attempt(&net, client_tls(&hub_ca, &c, &k));
    // No agency URI; two agency URIs.
    let (c, k) = network_signed(&net, vec![], vec![client_auth.clone()]);
    attempt(&net, client_tls(&hub_ca, &c, &k));
    let (c, k) = network_signed(&net, vec![uri(A), uri(B)], vec![client_auth]);
    attempt(&net, client_tls(&hub_ca, &c, &k));
    // No client certificate at all.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            poros_certs::pem_to_der_certs(&hub_ca)
                .unwrap()
                .remove(0)
                .into(),
        )
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut anon = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    anon.alpn_protocols = vec![poros_protocol::ALPN.to_vec()];
    attempt(&net, anon);
    // A valid node certificate speaking another protocol.
    let mut other_alpn = agent_tls(&net.agent_dir(A));
    other_alpn.alpn_protocols = vec![b"h3".to_vec()];
    attempt(&net, other_alpn);

    let m = net.metrics();
    for label in [
        "ca_as_end_entity",
        "no_client_auth_eku",
        "no_agency_uri",
        "several_agency_uris",
        "no_certificate",
        "wrong_alpn",
    ] {
        let line = format!("poros_handshake_failures_total{{reason=\"{label}\"}}");
        assert!(net.metric(&line) >= 1, "{label} not counted:\n{m}");
    }
    assert!(
        !m.contains("poros_handshake_failures_total{reason=\"other\"}"),
        "a refusal fell into `other`:\n{m}"
    );
}

#[test]
fn a_stream_flood_writes_a_few_warnings_and_a_count() {
    let mut net = Net::new();
    net.add_agent(A);
    net.add_agent(B);
    net.start_hub();
    net.start_agent(B);
    let addr = net.quic_addr();
    const STREAMS: usize = 300;
    rt().block_on(async {
        let conn = connect(agent_tls(&net.agent_dir(A)), addr).await.unwrap();
        for _ in 0..STREAMS {
            // A length prefix over the frame limit: refused at once as malformed.
            let _ = request(&conn, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
        }
        conn.close(0u32.into(), b"done");
    });
    wait_until("every flood stream refused", DEADLINE, || {
        net.metric("poros_refusals_total{reason=\"malformed\"}") >= STREAMS as u64
    });
    let log = net.log_text("hub");
    let warned = log.matches("malformed frame").count();
    assert!(
        warned <= 30,
        "{warned} warnings for {STREAMS} malformed streams:\n{log}"
    );
    assert!(warned >= 1, "the flood was not logged at all");
    // How the count of suppressed lines is reported is unit-tested beside `LogLimiter`.
}

#[test]
fn a_normal_agent_shutdown_is_not_logged_as_a_renewal() {
    let mut net = Net::running(&[A]);
    net.stop_agent(A);
    let log = net.log_text(A);
    assert!(log.contains("connected to hub"), "{log}");
    assert!(
        !log.contains("reconnecting with renewed certificates"),
        "{log}"
    );
}
