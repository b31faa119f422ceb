//! Verification of signed statements: signer certificate chain, usage, revocation, signature
//! and identity, against the configured document-signing CAs and their CRLs.

use crate::CertError;
use poros_protocol::SignedBlob;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use std::time::Duration;
use webpki::{CertRevocationList, OwnedCertRevocationList};

/// DER value bytes of id-kp-documentSigning, 1.3.6.1.5.5.7.3.36 (RFC 9336).
pub const OID_DOCUMENT_SIGNING_DER_VALUE: [u8; 8] =
    [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x24];

/// Who signed a statement: the party its signing certificate names (an agency URI, or
/// `urn:poros:hub`), the same type as a statement's maker.
pub use poros_protocol::Party as Signer;

/// Why a signed statement was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signer certificate does not parse.
    #[error("signer certificate is malformed: {0}")]
    BadCertificate(String),
    /// The signer certificate does not chain to a configured signing CA.
    #[error("signer certificate is not issued by a trusted signing CA")]
    Untrusted,
    /// The signer certificate has expired.
    #[error("signer certificate has expired")]
    Expired,
    /// The signer certificate is not yet valid.
    #[error("signer certificate is not yet valid")]
    NotYetValid,
    /// The signer certificate is listed in its CA's CRL.
    #[error("signer certificate is revoked")]
    Revoked,
    /// The signer certificate is not for document signing (e.g. a TLS certificate).
    #[error("signer certificate is not a document-signing certificate")]
    WrongUsage,
    /// The chain was refused for another reason.
    #[error("signer certificate chain is invalid: {0}")]
    Chain(String),
    /// The signature does not match the payload and the certificate's key.
    #[error("signature does not verify against the signer certificate")]
    BadSignature,
    /// The certificate names no agency or hub (or names it ambiguously).
    #[error("signer certificate names no usable identity: {0}")]
    NoIdentity(CertError),
}

impl VerifyError {
    /// The rejection reason a failed verification stands for.
    pub fn reason_code(&self) -> poros_protocol::ReasonCode {
        use poros_protocol::ReasonCode as C;
        match self {
            VerifyError::Expired | VerifyError::NotYetValid => C::SignerExpired,
            VerifyError::Revoked => C::SignerRevoked,
            VerifyError::WrongUsage | VerifyError::NoIdentity(_) => C::SignerNotForAgency,
            VerifyError::BadCertificate(_)
            | VerifyError::Untrusted
            | VerifyError::Chain(_)
            | VerifyError::BadSignature => C::BadSignature,
        }
    }
}

/// The document-signing trust roots and their CRLs.
#[derive(Debug)]
pub struct SigningTrust {
    roots: Vec<TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    /// Signer certificates whose chain already verified under the current roots and CRLs,
    /// keyed by the SHA-256 of their DER. A hit still checks the validity window and the
    /// signature itself; only the chain walk (one ECDSA verify and the X.509 parse) is
    /// skipped. Cleared whenever the CRLs change.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], VerifiedCert>>,
}

#[derive(Clone, Debug)]
struct VerifiedCert {
    signer: Signer,
    /// Shared, so a cache hit hands the serial out without copying it.
    serial_hex: std::sync::Arc<str>,
    not_before: i64,
    not_after: i64,
}

/// Upper bound on cached signer certificates (a few per agency in practice).
const VERIFIED_CACHE_MAX: usize = 100_000;

impl SigningTrust {
    /// Trust `roots` (signing CA certificates, DER), revoking what `crls` (DER) list.
    pub fn new(roots: &[Vec<u8>], crls: &[Vec<u8>]) -> Result<Self, CertError> {
        let roots = roots
            .iter()
            .map(|der| {
                webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
                    .map(|a| a.to_owned())
                    .map_err(|e| CertError::TrustRoot(format!("{e:?}")))
            })
            .collect::<Result<_, _>>()?;
        let mut trust = SigningTrust {
            roots,
            crls: Vec::new(),
            verified: Default::default(),
        };
        trust.set_crls(crls)?;
        Ok(trust)
    }

    /// Replace the CRLs (e.g. after a refresh); on error the previous CRLs stay in force.
    pub fn set_crls(&mut self, crls: &[Vec<u8>]) -> Result<(), CertError> {
        self.crls = crls
            .iter()
            .map(|der| {
                OwnedCertRevocationList::from_der(der)
                    .map(CertRevocationList::from)
                    .map_err(|e| CertError::Crl(format!("{e:?}")))
            })
            .collect::<Result<_, _>>()?;
        if let Ok(mut v) = self.verified.lock() {
            v.clear();
        }
        Ok(())
    }

    /// Check `blob` was signed under `context` by a trusted, unrevoked document-signing
    /// certificate valid at `now_unix_secs`, and say who signed it.
    pub fn verify(
        &self,
        blob: &SignedBlob,
        context: &[u8],
        now_unix_secs: u64,
    ) -> Result<Signer, VerifyError> {
        self.verify_with_serial(blob, context, now_unix_secs)
            .map(|(signer, _)| signer)
    }

    /// [`SigningTrust::verify`], also giving the signer certificate's serial number (as
    /// [`crate::cert_serial_hex`] writes it), kept with what the cache learnt of the
    /// certificate: the hub checks it against the agency's current certificate for every
    /// statement it verifies, and parsing the certificate again each time cost as much as
    /// a tenth of a signature check.
    pub fn verify_with_serial(
        &self,
        blob: &SignedBlob,
        context: &[u8],
        now_unix_secs: u64,
    ) -> Result<(Signer, std::sync::Arc<str>), VerifyError> {
        let cert_der = CertificateDer::from(blob.signer_cert.as_slice());
        let ee = webpki::EndEntityCert::try_from(&cert_der)
            .map_err(|e| VerifyError::BadCertificate(format!("{e:?}")))?;
        let key = poros_protocol::sha256(&blob.signer_cert);
        let cached = self.verified.lock().ok().and_then(|v| v.get(&key).cloned());
        if let Some(c) = cached {
            let now = now_unix_secs as i64;
            if now < c.not_before {
                return Err(VerifyError::NotYetValid);
            }
            if now > c.not_after {
                return Err(VerifyError::Expired);
            }
            ee.verify_signature(
                webpki::ring::ECDSA_P256_SHA256,
                &SignedBlob::message(context, &blob.payload),
                &blob.signature,
            )
            .map_err(|_| VerifyError::BadSignature)?;
            return Ok((c.signer, c.serial_hex));
        }
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        // With no CRL configured there is nothing to consult; with CRLs, a certificate from an
        // issuer without one is allowed rather than refused (Allow), as the brief's policy says.
        let revocation = webpki::RevocationOptionsBuilder::new(&crl_refs)
            .ok()
            .map(|b| {
                b.with_status_policy(webpki::UnknownStatusPolicy::Allow)
                    .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                    .build()
            });
        self.check_chain_and_signature(&ee, blob, context, now_unix_secs, revocation)?;
        let signer = crate::identity::signer_from_cert(&blob.signer_cert)
            .map_err(VerifyError::NoIdentity)?;
        let serial_hex: std::sync::Arc<str> = crate::identity::cert_serial_hex(&blob.signer_cert)
            .map_err(VerifyError::NoIdentity)?
            .into();
        if let (Ok(not_before), Ok(not_after)) = (
            crate::identity::cert_not_before_unix(&blob.signer_cert),
            crate::identity::cert_not_after_unix(&blob.signer_cert),
        ) {
            if let Ok(mut v) = self.verified.lock() {
                if v.len() >= VERIFIED_CACHE_MAX {
                    v.clear();
                }
                v.insert(
                    key,
                    VerifiedCert {
                        signer: signer.clone(),
                        serial_hex: serial_hex.clone(),
                        not_before,
                        not_after,
                    },
                );
            }
        }
        Ok((signer, serial_hex))
    }
}

impl SigningTrust {
    /// [`SigningTrust::verify`], except that a signer certificate retired by renewal (CRL
    /// reason `superseded`) is still accepted for a statement signed before its retirement.
    ///
    /// `signed_at_unix_secs` is the time the statement claims; only the hub, which refuses
    /// anything signed with a superseded certificate after the supersession by its own clock,
    /// makes that claim trustworthy. A certificate revoked for any other reason (compromise,
    /// the agency revoked) is refused whatever the time.
    pub fn verify_signed_at(
        &self,
        blob: &SignedBlob,
        context: &[u8],
        now_unix_secs: u64,
        signed_at_unix_secs: u64,
    ) -> Result<Signer, VerifyError> {
        match self.verify(blob, context, now_unix_secs) {
            Err(VerifyError::Revoked) => {}
            other => return other,
        }
        let serial = crate::identity::cert_serial_bytes(&blob.signer_cert)
            .map_err(|e| VerifyError::BadCertificate(e.to_string()))?;
        let superseded_after = self.crls.iter().find_map(|crl| {
            let entry = crl.find_serial(&serial).ok().flatten()?;
            (entry.reason_code == Some(webpki::RevocationReason::Superseded))
                .then(|| entry.revocation_date.as_secs())
        });
        match superseded_after {
            Some(retired) if signed_at_unix_secs < retired => {}
            _ => return Err(VerifyError::Revoked),
        }
        // The CRL that names it was authenticated by the strict check above; the rest of the
        // chain is checked again without it.
        let cert_der = CertificateDer::from(blob.signer_cert.as_slice());
        let ee = webpki::EndEntityCert::try_from(&cert_der)
            .map_err(|e| VerifyError::BadCertificate(format!("{e:?}")))?;
        self.check_chain_and_signature(&ee, blob, context, now_unix_secs, None)?;
        crate::identity::signer_from_cert(&blob.signer_cert).map_err(VerifyError::NoIdentity)
    }

    /// The signer's chain to a trusted root for document signing (with `revocation` if given)
    /// and the signature over `context || 0 || payload`.
    fn check_chain_and_signature(
        &self,
        ee: &webpki::EndEntityCert<'_>,
        blob: &SignedBlob,
        context: &[u8],
        now_unix_secs: u64,
        revocation: Option<webpki::RevocationOptions<'_>>,
    ) -> Result<(), VerifyError> {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.roots,
            &[],
            UnixTime::since_unix_epoch(Duration::from_secs(now_unix_secs)),
            webpki::KeyUsage::required(&OID_DOCUMENT_SIGNING_DER_VALUE),
            revocation,
            None,
        )
        .map_err(map_chain_error)?;
        ee.verify_signature(
            webpki::ring::ECDSA_P256_SHA256,
            &SignedBlob::message(context, &blob.payload),
            &blob.signature,
        )
        .map_err(|_| VerifyError::BadSignature)
    }
}

// The deprecated unit variant is still matched in case an older code path returns it.
#[allow(deprecated)]
fn map_chain_error(e: webpki::Error) -> VerifyError {
    use webpki::Error as E;
    match e {
        E::CertExpired { .. } => VerifyError::Expired,
        E::CertNotValidYet { .. } => VerifyError::NotYetValid,
        // A bad signature inside the chain means an issuer with a trusted CA's name but another
        // key: an impostor CA, so untrusted rather than a malformed statement.
        E::UnknownIssuer | E::InvalidSignatureForPublicKey => VerifyError::Untrusted,
        E::CertRevoked => VerifyError::Revoked,
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::CaUsedAsEndEntity => {
            VerifyError::WrongUsage
        }
        E::BadDer | E::TrailingData(_) | E::UnsupportedCertVersion => {
            VerifyError::BadCertificate(format!("{e:?}"))
        }
        other => VerifyError::Chain(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{Ca, SignerSubject};

    struct Fixture {
        ca: Ca,
        crl: Vec<u8>,
    }

    impl Fixture {
        fn new() -> Self {
            let ca = ca("Poros Signing CA");
            let (nb, na) = valid_now();
            let crl = ca.crl(&[], 1, nb, na).unwrap();
            Fixture { ca, crl }
        }

        fn trust(&self) -> SigningTrust {
            SigningTrust::new(
                &[self.ca.cert_der().to_vec()],
                std::slice::from_ref(&self.crl),
            )
            .unwrap()
        }

        fn signer(&self, subject: &SignerSubject) -> (rcgen::KeyPair, crate::Issued) {
            let key = crate::generate_key().unwrap();
            let csr = crate::make_key_csr(&key, "x").unwrap();
            let (nb, na) = valid_now();
            (key, self.ca.issue_signing(&csr, subject, nb, na).unwrap())
        }
    }

    const CTX: &[u8] = b"poros/envelope/v1";

    #[test]
    fn good_signature_yields_the_agency() {
        let f = Fixture::new();
        let a = agency("000.00.00.G22");
        let (key, cert) = f.signer(&SignerSubject::Agency(a.clone()));
        let blob = sign(&key, &cert.der, CTX, b"payload");
        assert_eq!(
            f.trust().verify(&blob, CTX, now_unix()).unwrap(),
            Signer::Agency(a)
        );
        // Without any CRL configured the statement still verifies.
        let no_crl = SigningTrust::new(&[f.ca.cert_der().to_vec()], &[]).unwrap();
        assert!(no_crl.verify(&blob, CTX, now_unix()).is_ok());
    }

    #[test]
    fn the_serial_comes_with_the_signer_whether_or_not_the_certificate_was_seen_before() {
        let f = Fixture::new();
        let trust = f.trust();
        let (key, cert) = f.signer(&SignerSubject::Agency(agency("000.00.00.G22")));
        let (key2, cert2) = f.signer(&SignerSubject::Agency(agency("000.00.00.G23")));
        let serial = crate::cert_serial_hex(&cert.der).unwrap();
        assert_ne!(serial, crate::cert_serial_hex(&cert2.der).unwrap());
        for payload in [b"first".as_slice(), b"second (cached)"] {
            let blob = sign(&key, &cert.der, CTX, payload);
            let (_, got) = trust.verify_with_serial(&blob, CTX, now_unix()).unwrap();
            assert_eq!(*got, serial);
        }
        // Another signer's certificate is not answered with the first one's serial.
        let blob = sign(&key2, &cert2.der, CTX, b"other");
        let (_, got) = trust.verify_with_serial(&blob, CTX, now_unix()).unwrap();
        assert_eq!(*got, crate::cert_serial_hex(&cert2.der).unwrap());
    }

    #[test]
    fn hub_signature_yields_hub() {
        let f = Fixture::new();
        let (key, cert) = f.signer(&SignerSubject::Hub);
        let blob = sign(&key, &cert.der, CTX, b"accepted");
        assert_eq!(
            f.trust().verify(&blob, CTX, now_unix()).unwrap(),
            Signer::Hub
        );
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let f = Fixture::new();
        let (key, cert) = f.signer(&SignerSubject::Agency(agency("000.00.00.G22")));
        let mut blob = sign(&key, &cert.der, CTX, b"payload");
        let trust = f.trust();
        assert!(matches!(
            trust.verify(&blob, b"other context", now_unix()),
            Err(VerifyError::BadSignature)
        ));
        blob.payload[0] ^= 1;
        assert!(matches!(
            trust.verify(&blob, CTX, now_unix()),
            Err(VerifyError::BadSignature)
        ));
    }

    #[test]
    fn foreign_ca_is_untrusted() {
        let f = Fixture::new();
        // Same CA name (an impostor) and a differently named CA.
        let same_name = Fixture::new();
        let mut other_name = Fixture::new();
        other_name.ca = ca("Elsewhere CA");
        for foreign in [same_name, other_name] {
            let (key, cert) = foreign.signer(&SignerSubject::Agency(agency("000.00.00.G22")));
            let blob = sign(&key, &cert.der, CTX, b"payload");
            let r = f.trust().verify(&blob, CTX, now_unix());
            assert!(matches!(r, Err(VerifyError::Untrusted)), "{r:?}");
        }
    }

    #[test]
    fn validity_period_is_enforced() {
        let f = Fixture::new();
        let (key, cert) = f.signer(&SignerSubject::Agency(agency("000.00.00.G22")));
        let blob = sign(&key, &cert.der, CTX, b"payload");
        let trust = f.trust();
        assert!(matches!(
            trust.verify(&blob, CTX, now_unix() + 10 * 86_400),
            Err(VerifyError::Expired)
        ));
        assert!(matches!(
            trust.verify(&blob, CTX, now_unix() - 10 * 86_400),
            Err(VerifyError::NotYetValid)
        ));
    }

    #[test]
    fn tls_certificate_cannot_sign() {
        let f = Fixture::new();
        let a = agency("000.00.00.G22");
        let key = crate::generate_key().unwrap();
        let (nb, na) = valid_now();
        let tls =
            f.ca.issue_node_tls(&crate::make_csr(&key, &a).unwrap(), &a, nb, na)
                .unwrap();
        let blob = sign(&key, &tls.der, CTX, b"payload");
        assert!(matches!(
            f.trust().verify(&blob, CTX, now_unix()),
            Err(VerifyError::WrongUsage)
        ));
    }

    #[test]
    fn revoked_signer_is_refused() {
        let mut f = Fixture::new();
        let (key, cert) = f.signer(&SignerSubject::Agency(agency("000.00.00.G22")));
        let (nb, na) = valid_now();
        f.crl = f.ca.crl(&[(cert.serial.clone(), nb)], 2, nb, na).unwrap();
        let blob = sign(&key, &cert.der, CTX, b"payload");
        assert!(matches!(
            f.trust().verify(&blob, CTX, now_unix()),
            Err(VerifyError::Revoked)
        ));
    }

    #[test]
    fn cached_chain_still_checks_signature_validity_and_new_crls() {
        let f = Fixture::new();
        let (key, cert) = f.signer(&SignerSubject::Agency(agency("000.00.00.G22")));
        let mut trust = f.trust();
        let blob = sign(&key, &cert.der, CTX, b"payload");
        trust.verify(&blob, CTX, now_unix()).unwrap();
        // Served from the cache from here on: each check must still hold.
        let mut tampered = blob.clone();
        tampered.payload[0] ^= 1;
        assert!(matches!(
            trust.verify(&tampered, CTX, now_unix()),
            Err(VerifyError::BadSignature)
        ));
        assert!(matches!(
            trust.verify(&blob, CTX, now_unix() + 3 * 24 * 3600 * 365),
            Err(VerifyError::Expired)
        ));
        assert!(matches!(
            trust.verify(&blob, CTX, 1_000),
            Err(VerifyError::NotYetValid)
        ));
        let (nb, na) = valid_now();
        let crl = f.ca.crl(&[(cert.serial.clone(), nb)], 2, nb, na).unwrap();
        trust.set_crls(&[crl]).unwrap();
        assert!(matches!(
            trust.verify(&blob, CTX, now_unix()),
            Err(VerifyError::Revoked)
        ));
    }

    #[test]
    fn garbage_certificate_is_bad_certificate() {
        let f = Fixture::new();
        let blob = SignedBlob {
            payload: b"p".to_vec(),
            signature: vec![0; 70],
            signer_cert: b"not a certificate".to_vec(),
        };
        assert!(matches!(
            f.trust().verify(&blob, CTX, now_unix()),
            Err(VerifyError::BadCertificate(_))
        ));
        assert!(matches!(
            SigningTrust::new(&[f.ca.cert_der().to_vec()], &[b"junk".to_vec()]),
            Err(CertError::Crl(_))
        ));
    }

    #[test]
    fn superseded_signer_stays_valid_for_what_it_signed_before_retirement() {
        let f = Fixture::new();
        let a = agency("000.00.00.G22");
        let (key, cert) = f.signer(&SignerSubject::Agency(a.clone()));
        let (vkey, victim) = f.signer(&SignerSubject::Agency(a.clone()));
        let retired = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let (nb, na) = valid_now();
        let crl =
            f.ca.crl_entries(
                &[
                    crate::CrlEntry {
                        serial: cert.serial.clone(),
                        at: retired,
                        superseded: true,
                    },
                    crate::CrlEntry {
                        serial: victim.serial.clone(),
                        at: retired,
                        superseded: false,
                    },
                ],
                2,
                nb,
                na,
            )
            .unwrap();
        let trust = SigningTrust::new(&[f.ca.cert_der().to_vec()], &[crl]).unwrap();
        let blob = sign(&key, &cert.der, CTX, b"payload");
        let before = retired.unix_timestamp() as u64 - 60;
        let after = retired.unix_timestamp() as u64 + 60;
        // The strict check refuses it; signed before the retirement it verifies, after it not.
        assert!(matches!(
            trust.verify(&blob, CTX, now_unix()),
            Err(VerifyError::Revoked)
        ));
        assert_eq!(
            trust
                .verify_signed_at(&blob, CTX, now_unix(), before)
                .unwrap(),
            Signer::Agency(a)
        );
        assert!(matches!(
            trust.verify_signed_at(&blob, CTX, now_unix(), after),
            Err(VerifyError::Revoked)
        ));
        // A forged signature does not pass the superseded path either.
        let mut bad = blob.clone();
        bad.payload = b"other".to_vec();
        assert!(matches!(
            trust.verify_signed_at(&bad, CTX, now_unix(), before),
            Err(VerifyError::BadSignature)
        ));
        // Revoked (not superseded) stays refused whatever the claimed time.
        let vblob = sign(&vkey, &victim.der, CTX, b"payload");
        assert!(matches!(
            trust.verify_signed_at(&vblob, CTX, now_unix(), before),
            Err(VerifyError::Revoked)
        ));
    }
}
