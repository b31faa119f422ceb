//! Shared test fixtures: CAs, agency IDs, validity windows and hand-built certificates.
//! Test-only; lets tests build certificates the real issuance paths would never produce.

use crate::Ca;
use poros_protocol::{AgencyId, SignedBlob, SigningKey};
use time::{Duration, OffsetDateTime};

pub fn ca(name: &str) -> Ca {
    let now = OffsetDateTime::now_utc();
    Ca::new_root(name, now - Duration::days(30), now + Duration::days(3650)).unwrap()
}

pub fn agency(code: &str) -> AgencyId {
    AgencyId::parse(code).unwrap()
}

/// A window from one day ago to one day ahead.
pub fn valid_now() -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::days(1), now + Duration::days(1))
}

pub fn now_unix() -> u64 {
    OffsetDateTime::now_utc().unix_timestamp() as u64
}

pub fn sign(key: &rcgen::KeyPair, cert_der: &[u8], ctx: &[u8], payload: &[u8]) -> SignedBlob {
    let sk = SigningKey::from_pkcs8(&crate::key_pkcs8_der(key)).unwrap();
    SignedBlob::sign(ctx, payload.to_vec(), &sk, cert_der).unwrap()
}

pub fn pem_body(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let (_, der) =
        <(rustls_pki_types::pem::SectionKind, Vec<u8>)>::from_pem_slice(pem.as_bytes()).unwrap();
    der
}

/// A certificate from `ca` with exactly the given SANs and EKU, for a throwaway key.
pub fn custom_cert(
    ca: &Ca,
    sans: Vec<rcgen::SanType>,
    eku: rcgen::ExtendedKeyUsagePurpose,
) -> Vec<u8> {
    custom_cert_for(ca, &crate::generate_key().unwrap(), sans, Some(eku))
}

/// A certificate from `ca` for `key` with exactly the given SANs and optional EKU.
pub fn custom_cert_for(
    ca: &Ca,
    key: &rcgen::KeyPair,
    sans: Vec<rcgen::SanType>,
    eku: Option<rcgen::ExtendedKeyUsagePurpose>,
) -> Vec<u8> {
    let (nb, na) = valid_now();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = sans;
    params.extended_key_usages = eku.into_iter().collect();
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.not_before = nb;
    params.not_after = na;
    params
        .signed_by(key, &ca.cert, &ca.key)
        .unwrap()
        .der()
        .to_vec()
}
