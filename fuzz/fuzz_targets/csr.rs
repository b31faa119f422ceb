//! Fuzz target `csr`: the CA's issuance from a certificate request, as the hub runs it on
//! enrolment and renewal. Input: a selector byte (0: the rest is DER, wrapped in PEM here;
//! otherwise the rest is the PEM text), then the request.
//! Properties: never panics; anything issued carries the CA's policy (issuer, validity, no CA
//! flag, key usage, exactly one EKU, exactly one agency or hub URI, subject) and the key of a
//! request whose signature verifies, never a field of the request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poros_certs::{SignerSubject, OID_DOCUMENT_SIGNING_DER_VALUE};
use poros_fuzz::{at, fixture, pem, SIGNER_NOT_AFTER, SIGNER_NOT_BEFORE};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug)]
enum Kind {
    Tls,
    Signing(SignerSubject),
}

fn check_issued(der: &[u8], csr_pem: &str, kind: &Kind) {
    let f = fixture();
    let (rest, cert) = X509Certificate::from_der(der).expect("issued certificate parses");
    assert!(rest.is_empty());
    let (_, ca) = X509Certificate::from_der(f.ca.cert_der()).expect("CA parses");
    assert_eq!(
        cert.issuer().as_raw(),
        ca.subject().as_raw(),
        "issuer is the CA"
    );
    cert.verify_signature(Some(ca.public_key()))
        .expect("signed by the CA's key");
    assert_eq!(cert.validity().not_before.timestamp(), SIGNER_NOT_BEFORE);
    assert_eq!(cert.validity().not_after.timestamp(), SIGNER_NOT_AFTER);

    // The key is the request's, and only after its self-signature verified.
    let csr_der = csr_der(csr_pem);
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&csr_der)
        .expect("an issued-for request parses");
    csr.verify_signature().expect("request signature verified");
    assert_eq!(
        cert.public_key().raw,
        csr.certification_request_info.subject_pki.raw,
        "certified key is the request's"
    );

    let (uri, cn) = match kind {
        Kind::Tls => (f.agency.to_uri(), f.agency.as_str().to_string()),
        Kind::Signing(SignerSubject::Agency(a)) => (a.to_uri(), a.as_str().to_string()),
        Kind::Signing(SignerSubject::Hub) => ("urn:poros:hub".to_string(), "poros-hub".into()),
    };
    let cns: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(cns, vec![cn], "subject is the CA's choice");
    assert_eq!(cert.subject().iter().count(), 1, "subject has one RDN");

    let mut saw_eku = false;
    let mut saw_san = false;
    let mut saw_ku = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => assert!(!bc.ca, "never a CA"),
            ParsedExtension::KeyUsage(ku) => {
                saw_ku = true;
                assert!(ku.digital_signature());
                assert!(!ku.key_cert_sign() && !ku.crl_sign() && !ku.key_encipherment());
                assert_eq!(ku.non_repudiation(), matches!(kind, Kind::Signing(_)));
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                saw_eku = true;
                assert!(!eku.any && !eku.server_auth && !eku.code_signing);
                assert!(!eku.email_protection && !eku.time_stamping && !eku.ocsp_signing);
                match kind {
                    Kind::Tls => assert!(eku.client_auth && eku.other.is_empty()),
                    Kind::Signing(_) => {
                        assert!(!eku.client_auth);
                        assert_eq!(eku.other.len(), 1);
                        assert_eq!(eku.other[0].as_bytes(), OID_DOCUMENT_SIGNING_DER_VALUE);
                    }
                }
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                saw_san = true;
                assert_eq!(san.general_names, vec![GeneralName::URI(&uri)]);
            }
            ParsedExtension::AuthorityKeyIdentifier(_)
            | ParsedExtension::SubjectKeyIdentifier(_) => {}
            other => panic!("unexpected extension in an issued certificate: {other:?}"),
        }
    }
    assert!(saw_eku && saw_san && saw_ku, "policy extensions present");
}

/// PEM → DER of the first CERTIFICATE REQUEST section, exactly as the CA reads it.
fn csr_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .map(|d| d.as_ref().to_vec())
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let [selector, rest @ ..] = data else {
        return;
    };
    let text = if *selector == 0 {
        pem("CERTIFICATE REQUEST", rest)
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let f = fixture();
    let (nb, na) = (at(SIGNER_NOT_BEFORE), at(SIGNER_NOT_AFTER));
    if let Ok(issued) = f.ca.issue_node_tls(&text, &f.agency, nb, na) {
        check_issued(&issued.der, &text, &Kind::Tls);
    }
    let subject = if selector % 2 == 0 {
        SignerSubject::Agency(f.agency.clone())
    } else {
        SignerSubject::Hub
    };
    if let Ok(issued) = f.ca.issue_signing(&text, &subject, nb, na) {
        check_issued(&issued.der, &text, &Kind::Signing(subject));
    }
});
