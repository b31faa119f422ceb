//! The certificate authority: root creation and loading, issuance from CSRs, CRL signing.
//! Issuance takes only the public key from a CSR; every policy field is set here, never copied.

use crate::identity::HUB_URI;
use crate::CertError;
use poros_protocol::AgencyId;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData,
    RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use std::net::IpAddr;
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

/// id-kp-documentSigning (RFC 9336) as rcgen OID components.
const DOCUMENT_SIGNING_OID: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 3, 36];

/// Who a document-signing certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignerSubject {
    /// An agency signing envelopes and receipts.
    Agency(AgencyId),
    /// The hub signing acceptances and notices.
    Hub,
}

/// A freshly issued certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// DER encoding.
    pub der: Vec<u8>,
    /// PEM encoding.
    pub pem: String,
    /// Serial number bytes (positive, 16 bytes), as listed in CRLs.
    pub serial: Vec<u8>,
}

/// One entry of a CRL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    /// Certificate serial.
    pub serial: Vec<u8>,
    /// Revocation time.
    pub at: OffsetDateTime,
    /// Retired by renewal rather than revoked (CRL reason `superseded`).
    pub superseded: bool,
}

/// A certificate authority: its certificate and private key.
pub struct Ca {
    // Used only as the issuer description for rcgen; for a loaded CA it is a re-signed copy,
    // which is why the original encoding is kept separately below.
    pub(crate) cert: rcgen::Certificate,
    pub(crate) key: KeyPair,
    der: Vec<u8>,
    pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("pem", &self.pem)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed root CA with a fresh P-256 key.
    pub fn new_root(
        common_name: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Ca, CertError> {
        check_validity(not_before, not_after)?;
        let key = crate::keys::generate_key()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        // Path length 0: this CA signs end-entity certificates only, never sub-CAs.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial()?.into());
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.self_signed(&key)?;
        let der = cert.der().to_vec();
        let pem = cert.pem();
        Ok(Ca {
            cert,
            key,
            der,
            pem,
        })
    }

    /// Load a CA from its certificate and private key (both PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca, CertError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| CertError::BadKey {
            what: "CA key".to_string(),
            reason: e.to_string(),
        })?;
        let der = crate::keys::pem_to_der_certs(cert_pem)?
            .into_iter()
            .next()
            .ok_or(CertError::NoCertificate)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| CertError::NotCertificate(e.to_string()))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CertError::CaKeyMismatch);
        }
        let params = CertificateParams::from_ca_cert_der(&der.as_slice().into())?;
        let cert = params.self_signed(&key)?;
        let pem = crate::keys::der_to_pem_cert(&der);
        Ok(Ca {
            cert,
            key,
            der,
            pem,
        })
    }

    /// The CA certificate (DER), as distributed for trust roots.
    pub fn cert_der(&self) -> &[u8] {
        &self.der
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// The CA private key (PKCS#8 PEM); write it with [`crate::write_secret_file`].
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A node's mutual-TLS client certificate: clientAuth only, bound to `agency` by URI SAN.
    pub fn issue_node_tls(
        &self,
        csr_pem: &str,
        agency: &AgencyId,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, CertError> {
        self.issue(
            csr_pem,
            Policy {
                common_name: agency.as_str(),
                sans: vec![SanType::URI(agency.to_uri().try_into()?)],
                key_usages: vec![KeyUsagePurpose::DigitalSignature],
                eku: ExtendedKeyUsagePurpose::ClientAuth,
                not_before,
                not_after,
            },
        )
    }

    /// A document-signing certificate for an agency or the hub (id-kp-documentSigning only).
    pub fn issue_signing(
        &self,
        csr_pem: &str,
        subject: &SignerSubject,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, CertError> {
        let (common_name, uri) = match subject {
            SignerSubject::Agency(a) => (a.as_str(), a.to_uri()),
            SignerSubject::Hub => ("poros-hub", HUB_URI.to_string()),
        };
        self.issue(
            csr_pem,
            Policy {
                common_name,
                sans: vec![SanType::URI(uri.try_into()?)],
                key_usages: vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::ContentCommitment,
                ],
                eku: ExtendedKeyUsagePurpose::Other(DOCUMENT_SIGNING_OID.to_vec()),
                not_before,
                not_after,
            },
        )
    }

    /// The hub's TLS server certificate (serverAuth only) for the given names and addresses.
    pub fn issue_server(
        &self,
        public_key_csr_pem: &str,
        dns_names: &[String],
        ips: &[IpAddr],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, CertError> {
        let mut sans = Vec::with_capacity(dns_names.len() + ips.len());
        for name in dns_names {
            let ia5 = name
                .as_str()
                .try_into()
                .map_err(|_| CertError::InvalidName(name.clone()))?;
            sans.push(SanType::DnsName(ia5));
        }
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        let common_name = match (dns_names.first(), ips.first()) {
            (Some(n), _) => n.clone(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => return Err(CertError::NoServerNames),
        };
        self.issue(
            public_key_csr_pem,
            Policy {
                common_name: &common_name,
                sans,
                key_usages: vec![KeyUsagePurpose::DigitalSignature],
                eku: ExtendedKeyUsagePurpose::ServerAuth,
                not_before,
                not_after,
            },
        )
    }

    /// A CRL (DER) listing `revoked` as `(serial, revocation time)` pairs.
    pub fn crl(
        &self,
        revoked: &[(Vec<u8>, OffsetDateTime)],
        crl_number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, CertError> {
        let entries: Vec<CrlEntry> = revoked
            .iter()
            .map(|(serial, at)| CrlEntry {
                serial: serial.clone(),
                at: *at,
                superseded: false,
            })
            .collect();
        self.crl_entries(&entries, crl_number, this_update, next_update)
    }

    /// A CRL whose entries may carry the reason `superseded` (a certificate retired by renewal:
    /// statements it signed before `at` stay verifiable; see `SigningTrust::verify_signed_at`).
    pub fn crl_entries(
        &self,
        revoked: &[CrlEntry],
        crl_number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<Vec<u8>, CertError> {
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|e| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(&e.serial),
                    revocation_time: e.at,
                    reason_code: e.superseded.then_some(rcgen::RevocationReason::Superseded),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: self.cert.params().key_identifier_method.clone(),
        };
        Ok(params.signed_by(&self.cert, &self.key)?.der().to_vec())
    }

    fn issue(&self, csr_pem: &str, policy: Policy<'_>) -> Result<Issued, CertError> {
        check_validity(policy.not_before, policy.not_after)?;
        let public_key = csr_public_key(csr_pem)?;
        let serial = random_serial()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(policy.common_name);
        params.is_ca = IsCa::NoCa;
        params.key_usages = policy.key_usages;
        params.extended_key_usages = vec![policy.eku];
        params.subject_alt_names = policy.sans;
        params.not_before = policy.not_before;
        params.not_after = policy.not_after;
        params.serial_number = Some(serial.clone().into());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&public_key, &self.cert, &self.key)?;
        Ok(Issued {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            serial,
        })
    }
}

/// The policy fields of an issued certificate, all decided by the CA.
struct Policy<'a> {
    common_name: &'a str,
    sans: Vec<SanType>,
    key_usages: Vec<KeyUsagePurpose>,
    eku: ExtendedKeyUsagePurpose,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn check_validity(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Result<(), CertError> {
    if not_after <= not_before {
        return Err(CertError::Validity {
            not_before,
            not_after,
        });
    }
    Ok(())
}

/// 16 random bytes, top bit clear (positive INTEGER) and second bit set (so no leading zero
/// byte is stripped in encoding): the bytes given to CRLs are exactly the encoded serial.
fn random_serial() -> Result<Vec<u8>, CertError> {
    let mut b = vec![0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    b[0] = (b[0] & 0x3f) | 0x40;
    Ok(b)
}

/// The CSR's public key, once its self-signature proves the requester holds the private key.
///
/// Parsed with x509-parser rather than rcgen's CSR reader, which rejects requests carrying
/// extensions it does not model; those are ignored anyway, so they should not block issuance.
fn csr_public_key(csr_pem: &str) -> Result<rcgen::SubjectPublicKeyInfo, CertError> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|e| CertError::Csr(e.to_string()))?;
    let (rest, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| CertError::Csr(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Csr(
            "trailing data after the request".to_string(),
        ));
    }
    csr.verify_signature()
        .map_err(|_| CertError::CsrSignature)?;
    let spki =
        rcgen::SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
            .map_err(|_| CertError::UnsupportedKey)?;
    if spki.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
        return Err(CertError::UnsupportedKey);
    }
    Ok(spki)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::der_to_pem;
    use crate::testutil::*;
    use x509_parser::extensions::{GeneralName, ParsedExtension};

    #[test]
    fn csr_policy_is_overwritten() {
        let ca = ca("Poros Network CA");
        let key = crate::generate_key().unwrap();
        // A greedy request: CA:TRUE, serverAuth + clientAuth, extra SANs, cert signing.
        let mut req = CertificateParams::default();
        req.distinguished_name = dn("000.00.00.G99");
        req.subject_alt_names = vec![
            SanType::DnsName("evil.example".try_into().unwrap()),
            SanType::URI("urn:poros:agency:000.00.00.G99".try_into().unwrap()),
        ];
        req.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        req.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let mut bc = rcgen::CustomExtension::from_oid_content(
            &[2, 5, 29, 19],
            vec![0x30, 0x03, 0x01, 0x01, 0xff],
        );
        bc.set_criticality(true);
        req.custom_extensions = vec![bc];
        let csr = req.serialize_request(&key).unwrap().pem().unwrap();

        let (nb, na) = valid_now();
        let issued = ca
            .issue_node_tls(&csr, &agency("000.00.00.G22"), nb, na)
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();

        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["000.00.00.G22"]);
        assert_eq!(cert.validity().not_before.timestamp(), nb.unix_timestamp());
        assert_eq!(cert.validity().not_after.timestamp(), na.unix_timestamp());
        assert_eq!(cert.raw_serial(), issued.serial.as_slice());
        assert_eq!(issued.serial.len(), 16);
        assert!(cert.basic_constraints().unwrap().is_none());

        let mut seen = Vec::new();
        for ext in cert.extensions() {
            seen.push(ext.oid.to_id_string());
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    assert_eq!(
                        san.general_names,
                        [GeneralName::URI("urn:poros:agency:000.00.00.G22")]
                    );
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    assert!(
                        eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty()
                    );
                }
                ParsedExtension::KeyUsage(ku) => {
                    assert!(ku.digital_signature() && !ku.key_cert_sign());
                    assert_eq!(ku.flags, 1);
                }
                ParsedExtension::AuthorityKeyIdentifier(_)
                | ParsedExtension::SubjectKeyIdentifier(_) => {}
                other => panic!("unexpected extension {other:?}"),
            }
        }
        assert!(seen.contains(&"2.5.29.17".to_string()) && seen.contains(&"2.5.29.37".to_string()));
    }

    #[test]
    fn signing_certificates_carry_document_signing_only() {
        let ca = ca("Poros Signing CA");
        let (nb, na) = valid_now();
        for (subject, uri) in [
            (
                SignerSubject::Agency(agency("000.00.00.H01")),
                "urn:poros:agency:000.00.00.H01",
            ),
            (SignerSubject::Hub, HUB_URI),
        ] {
            let key = crate::generate_key().unwrap();
            let csr = crate::make_key_csr(&key, "x").unwrap();
            let issued = ca.issue_signing(&csr, &subject, nb, na).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
            let eku = cert.extended_key_usage().unwrap().unwrap().value;
            assert!(!eku.client_auth && !eku.server_auth);
            assert_eq!(eku.other.len(), 1);
            assert_eq!(eku.other[0].to_id_string(), "1.3.6.1.5.5.7.3.36");
            let ku = cert.key_usage().unwrap().unwrap().value;
            assert!(ku.digital_signature() && ku.non_repudiation() && !ku.key_cert_sign());
            let san = cert.subject_alternative_name().unwrap().unwrap().value;
            assert_eq!(san.general_names, [GeneralName::URI(uri)]);
        }
    }

    #[test]
    fn server_certificate_has_requested_names() {
        let ca = ca("Poros Network CA");
        let key = crate::generate_key().unwrap();
        let csr = crate::make_key_csr(&key, "hub").unwrap();
        let (nb, na) = valid_now();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let issued = ca
            .issue_server(&csr, &["hub.poros.test".to_string()], &[ip], nb, na)
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&issued.der).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(
            san.general_names,
            [
                GeneralName::DNSName("hub.poros.test"),
                GeneralName::IPAddress(&[192, 0, 2, 7])
            ]
        );
        assert!(matches!(
            ca.issue_server(&csr, &[], &[], nb, na),
            Err(CertError::NoServerNames)
        ));
    }

    #[test]
    fn csr_with_bad_signature_is_refused() {
        let ca = ca("Poros Network CA");
        let key = crate::generate_key().unwrap();
        let csr = crate::make_csr(&key, &agency("000.00.00.G22")).unwrap();
        let mut der = pem_body(&csr);
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let forged = der_to_pem("CERTIFICATE REQUEST", &der);
        let (nb, na) = valid_now();
        let err = ca
            .issue_node_tls(&forged, &agency("000.00.00.G22"), nb, na)
            .unwrap_err();
        assert!(matches!(err, CertError::CsrSignature), "{err}");
        assert!(matches!(
            ca.issue_node_tls("junk", &agency("000.00.00.G22"), nb, na),
            Err(CertError::Csr(_))
        ));
    }

    #[test]
    fn inverted_validity_is_refused() {
        let ca = ca("Poros Network CA");
        let key = crate::generate_key().unwrap();
        let csr = crate::make_csr(&key, &agency("000.00.00.G22")).unwrap();
        let (nb, na) = valid_now();
        assert!(matches!(
            ca.issue_node_tls(&csr, &agency("000.00.00.G22"), na, nb),
            Err(CertError::Validity { .. })
        ));
    }

    #[test]
    fn loaded_ca_keeps_its_certificate_and_issues_chaining_certs() {
        let original = ca("Poros Network CA");
        let loaded = Ca::load(original.cert_pem(), &original.key_pem()).unwrap();
        assert_eq!(loaded.cert_der(), original.cert_der());
        assert_eq!(loaded.cert_pem(), original.cert_pem());

        // A certificate from the loaded CA verifies against the original root.
        let (nb, na) = valid_now();
        let key = crate::generate_key().unwrap();
        let issued = loaded
            .issue_signing(
                &crate::make_key_csr(&key, "x").unwrap(),
                &SignerSubject::Hub,
                nb,
                na,
            )
            .unwrap();
        let crl = loaded.crl(&[], 1, nb, na).unwrap();
        let trust = crate::SigningTrust::new(&[original.cert_der().to_vec()], &[crl]).unwrap();
        let blob = sign(&key, &issued.der, b"ctx", b"payload");
        assert_eq!(
            trust.verify(&blob, b"ctx", now_unix()).unwrap(),
            crate::Signer::Hub
        );

        let other = ca("Other");
        assert!(matches!(
            Ca::load(original.cert_pem(), &other.key_pem()),
            Err(CertError::CaKeyMismatch)
        ));
        assert!(matches!(
            Ca::load(original.cert_pem(), "junk"),
            Err(CertError::BadKey { .. })
        ));
    }
}
