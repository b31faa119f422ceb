//! Reading who a certificate speaks for (agency URI SAN or the hub URI), its serial and expiry.
//! Chain validation happens elsewhere; these functions only interpret an already-trusted cert.

use crate::signing::Signer;
use crate::CertError;
use poros_protocol::AgencyId;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The URI SAN naming the hub in its document-signing certificate.
pub const HUB_URI: &str = "urn:poros:hub";

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertError::NotCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::NotCertificate(
            "trailing data after the certificate".to_string(),
        ));
    }
    Ok(cert)
}

fn uri_sans<'a>(cert: &X509Certificate<'a>) -> Result<Vec<&'a str>, CertError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertError::NotCertificate(e.to_string()))?;
    Ok(san
        .map(|s| {
            s.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

fn agency_from_uris(uris: &[&str]) -> Result<AgencyId, CertError> {
    let mut found = None;
    for uri in uris {
        if let Some(parsed) = AgencyId::from_uri(uri) {
            if found.is_some() {
                return Err(CertError::MultipleAgencyUris);
            }
            found = Some(parsed);
        }
    }
    match found {
        None => Err(CertError::NoAgencyUri),
        Some(parsed) => parsed.map_err(CertError::InvalidAgencyCode),
    }
}

/// The agency a certificate is bound to: its single `urn:poros:agency:<code>` URI SAN.
pub fn agency_from_cert(der: &[u8]) -> Result<AgencyId, CertError> {
    agency_from_uris(&uri_sans(&parse(der)?)?)
}

/// Who a document-signing certificate speaks for: one agency, or the hub (`urn:poros:hub`).
pub fn signer_from_cert(der: &[u8]) -> Result<Signer, CertError> {
    let uris = uri_sans(&parse(der)?)?;
    let hub = uris.contains(&HUB_URI);
    match agency_from_uris(&uris) {
        Ok(agency) if !hub => Ok(Signer::Agency(agency)),
        Ok(_) => Err(CertError::AmbiguousSigner),
        Err(CertError::NoAgencyUri) if hub => Ok(Signer::Hub),
        Err(e) => Err(e),
    }
}

/// The serial number as lowercase hex without separators (as in logs and revocation lists).
pub fn cert_serial_hex(der: &[u8]) -> Result<String, CertError> {
    Ok(parse(der)?
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The serial number's raw bytes, as a CRL lists them.
pub fn cert_serial_bytes(der: &[u8]) -> Result<Vec<u8>, CertError> {
    Ok(parse(der)?.raw_serial().to_vec())
}

/// The end of the validity period, in Unix seconds.
pub fn cert_not_after_unix(der: &[u8]) -> Result<i64, CertError> {
    Ok(parse(der)?.validity().not_after.timestamp())
}

/// The certificate's notBefore as Unix seconds.
pub fn cert_not_before_unix(der: &[u8]) -> Result<i64, CertError> {
    Ok(parse(der)?.validity().not_before.timestamp())
}

/// Whether the certificate explicitly lists the clientAuth extended key usage.
pub(crate) fn has_client_auth_eku(der: &[u8]) -> Result<bool, CertError> {
    let cert = parse(der)?;
    let eku = cert
        .extended_key_usage()
        .map_err(|e| CertError::NotCertificate(e.to_string()))?;
    Ok(eku.is_some_and(|e| e.value.client_auth))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use rcgen::SanType;

    fn with_uris(uris: &[&str]) -> Vec<u8> {
        let sans = uris
            .iter()
            .map(|u| SanType::URI((*u).try_into().unwrap()))
            .collect();
        custom_cert(
            &ca("Poros Network CA"),
            sans,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    #[test]
    fn agency_is_read_from_the_single_uri() {
        let der = with_uris(&["urn:other:thing", "urn:poros:agency:000.00.00.G22"]);
        assert_eq!(agency_from_cert(&der).unwrap(), agency("000.00.00.G22"));
        assert_eq!(
            signer_from_cert(&der).unwrap(),
            Signer::Agency(agency("000.00.00.G22"))
        );
    }

    #[test]
    fn agency_errors_name_the_problem() {
        assert!(matches!(
            agency_from_cert(b"junk"),
            Err(CertError::NotCertificate(_))
        ));
        assert!(matches!(
            agency_from_cert(&with_uris(&["urn:other:thing"])),
            Err(CertError::NoAgencyUri)
        ));
        assert!(matches!(
            agency_from_cert(&with_uris(&[])),
            Err(CertError::NoAgencyUri)
        ));
        assert!(matches!(
            agency_from_cert(&with_uris(&[
                "urn:poros:agency:000.00.00.G22",
                "urn:poros:agency:000.00.00.G23"
            ])),
            Err(CertError::MultipleAgencyUris)
        ));
        let err = agency_from_cert(&with_uris(&["urn:poros:agency:000.00.00.g22"])).unwrap_err();
        assert!(matches!(err, CertError::InvalidAgencyCode(_)));
        assert!(
            err.to_string()
                .contains("position 11 must be an upper-case letter"),
            "{err}"
        );
    }

    #[test]
    fn hub_identity() {
        assert_eq!(
            signer_from_cert(&with_uris(&[HUB_URI])).unwrap(),
            Signer::Hub
        );
        assert!(matches!(
            signer_from_cert(&with_uris(&[HUB_URI, "urn:poros:agency:000.00.00.G22"])),
            Err(CertError::AmbiguousSigner)
        ));
        assert!(matches!(
            agency_from_cert(&with_uris(&[HUB_URI])),
            Err(CertError::NoAgencyUri)
        ));
    }

    #[test]
    fn serial_and_expiry() {
        let ca = ca("Poros Network CA");
        let key = crate::generate_key().unwrap();
        let (nb, na) = valid_now();
        let issued = ca
            .issue_node_tls(
                &crate::make_csr(&key, &agency("000.00.00.G22")).unwrap(),
                &agency("000.00.00.G22"),
                nb,
                na,
            )
            .unwrap();
        let hex = cert_serial_hex(&issued.der).unwrap();
        assert_eq!(hex.len(), 32);
        assert_eq!(
            hex,
            issued
                .serial
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        assert_eq!(
            cert_not_after_unix(&issued.der).unwrap(),
            na.unix_timestamp()
        );
        assert!(has_client_auth_eku(&issued.der).unwrap());
    }
}
