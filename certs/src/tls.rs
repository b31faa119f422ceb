//! rustls configurations for Poros QUIC: the hub (mutual TLS, agency identity required) and
//! agents (hub verified against the network CA). TLS 1.3 only, no resumption, no early data.

use crate::identity::{agency_from_cert, has_client_auth_eku};
use crate::CertError;
use poros_protocol::AgencyId;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use std::sync::Arc;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(network_ca_der: &[u8]) -> Result<Arc<RootCertStore>, CertError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(network_ca_der.to_vec()))?;
    Ok(Arc::new(roots))
}

fn pkcs8(key: Vec<u8>) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key))
}

fn chain(certs: Vec<Vec<u8>>) -> Vec<CertificateDer<'static>> {
    certs.into_iter().map(CertificateDer::from).collect()
}

/// Why the hub's verifier refused a client certificate: a closed list, so each reason has its
/// own label in the hub's metrics instead of a catch-all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientCertRefusal {
    /// Past its validity.
    Expired,
    /// Before its validity.
    NotYetValid,
    /// Not issued by the network CA.
    UnknownIssuer,
    /// On the network CRL.
    Revoked,
    /// A CA certificate presented as a node's.
    CaUsedAsEndEntity,
    /// No clientAuth extended key usage (or a usage for something else).
    NoClientAuthEku,
    /// No `urn:poros:agency:` URI.
    NoAgencyUri,
    /// More than one agency URI.
    SeveralAgencyUris,
    /// An agency URI whose code is not an agency code.
    InvalidAgencyCode,
    /// A signature in the chain does not verify.
    BadSignature,
    /// The certificate does not parse.
    BadEncoding,
    /// Anything else.
    Other,
}

impl ClientCertRefusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UnknownIssuer => "unknown_issuer",
            Self::Revoked => "revoked",
            Self::CaUsedAsEndEntity => "ca_as_end_entity",
            Self::NoClientAuthEku => "no_client_auth_eku",
            Self::NoAgencyUri => "no_agency_uri",
            Self::SeveralAgencyUris => "several_agency_uris",
            Self::InvalidAgencyCode => "invalid_agency_code",
            Self::BadSignature => "bad_signature",
            Self::BadEncoding => "bad_encoding",
            Self::Other => "other_certificate",
        }
    }

    fn of_cert_error(e: &CertError) -> Self {
        match e {
            CertError::NotClientAuth => Self::NoClientAuthEku,
            CertError::NoAgencyUri => Self::NoAgencyUri,
            CertError::MultipleAgencyUris | CertError::AmbiguousSigner => Self::SeveralAgencyUris,
            CertError::InvalidAgencyCode(_) => Self::InvalidAgencyCode,
            CertError::NotCertificate(_) => Self::BadEncoding,
            _ => Self::Other,
        }
    }

    #[allow(deprecated)]
    fn of_rustls(e: &rustls::Error) -> Self {
        let rustls::Error::InvalidCertificate(c) = e else {
            return Self::Other;
        };
        match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Self::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Self::NotYetValid
            }
            CertificateError::UnknownIssuer => Self::UnknownIssuer,
            CertificateError::Revoked => Self::Revoked,
            CertificateError::BadSignature => Self::BadSignature,
            CertificateError::BadEncoding => Self::BadEncoding,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                Self::NoClientAuthEku
            }
            CertificateError::Other(OtherError(inner)) => {
                if let Some(ce) = inner.downcast_ref::<CertError>() {
                    Self::of_cert_error(ce)
                } else if let Some(we) = inner.downcast_ref::<webpki::Error>() {
                    match we {
                        webpki::Error::CaUsedAsEndEntity => Self::CaUsedAsEndEntity,
                        webpki::Error::RequiredEkuNotFound
                        | webpki::Error::RequiredEkuNotFoundContext(_) => Self::NoClientAuthEku,
                        _ => Self::Other,
                    }
                } else {
                    Self::Other
                }
            }
            _ => Self::Other,
        }
    }
}

/// Told of every client certificate the hub's verifier refuses (for metrics).
pub type RefusalObserver = Arc<dyn Fn(ClientCertRefusal) + Send + Sync>;

/// Client-certificate verifier for the hub: webpki chain, clientAuth and CRL checks against the
/// network CA, and in addition the certificate must name exactly one valid agency.
pub struct AgencyClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    observer: Option<RefusalObserver>,
}

impl std::fmt::Debug for AgencyClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgencyClientVerifier")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AgencyClientVerifier {
    /// Wrap an already configured verifier.
    pub fn new(inner: Arc<dyn ClientCertVerifier>) -> Self {
        AgencyClientVerifier {
            inner,
            observer: None,
        }
    }

    /// Tell `observer` why each refused certificate was refused.
    pub fn observed(mut self, observer: RefusalObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let reject = |e: CertError| {
            rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
        };
        // webpki accepts a certificate with no EKU extension at all for clientAuth; Poros CAs
        // always set one, so its absence means the certificate was not made for this.
        if !has_client_auth_eku(end_entity).map_err(reject)? {
            return Err(reject(CertError::NotClientAuth));
        }
        agency_from_cert(end_entity).map_err(reject)?;
        Ok(verified)
    }
}

impl ClientCertVerifier for AgencyClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let r = self.check(end_entity, intermediates, now);
        if let (Err(e), Some(observe)) = (&r, &self.observer) {
            observe(ClientCertRefusal::of_rustls(e));
        }
        r
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

/// The hub's server configuration: every client must present a network-CA certificate for
/// clientAuth, not revoked in `crls`, naming one agency.
///
/// With CRLs configured, a client certificate whose revocation status they cannot settle is
/// refused (rustls' default); every valid client chains to the network CA, which the CRLs cover.
pub fn hub_server_config(
    network_ca_der: &[u8],
    crls: &[Vec<u8>],
    hub_cert_chain: Vec<Vec<u8>>,
    hub_key_pkcs8: Vec<u8>,
) -> Result<rustls::ServerConfig, CertError> {
    hub_server_config_observed(network_ca_der, crls, hub_cert_chain, hub_key_pkcs8, None)
}

/// [`hub_server_config`] whose verifier tells `observer` why it refuses a certificate.
pub fn hub_server_config_observed(
    network_ca_der: &[u8],
    crls: &[Vec<u8>],
    hub_cert_chain: Vec<Vec<u8>>,
    hub_key_pkcs8: Vec<u8>,
    observer: Option<RefusalObserver>,
) -> Result<rustls::ServerConfig, CertError> {
    let provider = provider();
    let inner =
        WebPkiClientVerifier::builder_with_provider(roots(network_ca_der)?, provider.clone())
            .with_crls(
                crls.iter()
                    .map(|c| CertificateRevocationListDer::from(c.clone())),
            )
            .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(match observer {
            Some(o) => AgencyClientVerifier::new(inner).observed(o),
            None => AgencyClientVerifier::new(inner),
        }))
        .with_single_cert(chain(hub_cert_chain), pkcs8(hub_key_pkcs8))?;
    // Both versions: agents of the version before statements keep working (the hub sends
    // them nothing they do not know). The current version is preferred.
    config.alpn_protocols = vec![
        poros_protocol::ALPN.to_vec(),
        poros_protocol::ALPN_V1.to_vec(),
    ];
    // Each connection re-authenticates fully, so a revocation takes effect at the next connect.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(config)
}

/// An agent's client configuration: the hub is verified against the network CA and the agent
/// authenticates with its node certificate.
pub fn agent_client_config(
    network_ca_der: &[u8],
    client_cert_chain: Vec<Vec<u8>>,
    client_key_pkcs8: Vec<u8>,
) -> Result<rustls::ClientConfig, CertError> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(network_ca_der)?)
        .with_client_auth_cert(chain(client_cert_chain), pkcs8(client_key_pkcs8))?;
    config.alpn_protocols = vec![poros_protocol::ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    Ok(config)
}

/// The agency of an authenticated peer, from the first (end-entity) certificate.
pub fn peer_agency(certs: &[CertificateDer<'_>]) -> Result<AgencyId, CertError> {
    let first = certs.first().ok_or(CertError::NoPeerCertificate)?;
    agency_from_cert(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::{Ca, Issued};
    use rustls::{ClientConnection, ServerConnection};

    const HUB_NAME: &str = "hub.poros.test";

    struct Net {
        ca: Ca,
        hub_key: rcgen::KeyPair,
        hub_cert: Issued,
    }

    impl Net {
        fn new() -> Self {
            let ca = ca("Poros Network CA");
            let hub_key = crate::generate_key().unwrap();
            let (nb, na) = valid_now();
            let hub_cert = ca
                .issue_server(
                    &crate::make_key_csr(&hub_key, "hub").unwrap(),
                    &[HUB_NAME.to_string()],
                    &[],
                    nb,
                    na,
                )
                .unwrap();
            Net {
                ca,
                hub_key,
                hub_cert,
            }
        }

        fn server(&self, crls: &[Vec<u8>]) -> rustls::ServerConfig {
            hub_server_config(
                self.ca.cert_der(),
                crls,
                vec![self.hub_cert.der.clone()],
                crate::key_pkcs8_der(&self.hub_key),
            )
            .unwrap()
        }

        fn client(&self, cert: &[u8], key: &rcgen::KeyPair) -> rustls::ClientConfig {
            agent_client_config(
                self.ca.cert_der(),
                vec![cert.to_vec()],
                crate::key_pkcs8_der(key),
            )
            .unwrap()
        }
    }

    fn node(
        ca: &Ca,
        code: &str,
        nb: time::OffsetDateTime,
        na: time::OffsetDateTime,
    ) -> (rcgen::KeyPair, Issued) {
        let key = crate::generate_key().unwrap();
        let a = agency(code);
        let cert = ca
            .issue_node_tls(&crate::make_csr(&key, &a).unwrap(), &a, nb, na)
            .unwrap();
        (key, cert)
    }

    /// Runs a handshake in memory; on success returns the client certificates the hub saw.
    fn handshake(
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
    ) -> Result<Vec<CertificateDer<'static>>, String> {
        let offered = client.alpn_protocols.first().cloned();
        let mut s = ServerConnection::new(Arc::new(server)).unwrap();
        let name = rustls::pki_types::ServerName::try_from(HUB_NAME).unwrap();
        let mut c = ClientConnection::new(Arc::new(client), name).unwrap();
        for _ in 0..20 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
                s.process_new_packets().map_err(|e| format!("hub: {e}"))?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().map_err(|e| format!("agent: {e}"))?;
            }
            if !s.is_handshaking() && !c.is_handshaking() {
                assert_eq!(s.alpn_protocol(), offered.as_deref());
                assert_eq!(s.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
                return Ok(s.peer_certificates().unwrap_or_default().to_vec());
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn agency_client_is_accepted_and_identified() {
        let net = Net::new();
        let (nb, na) = valid_now();
        let (key, cert) = node(&net.ca, "000.00.00.G22", nb, na);
        let crl = net.ca.crl(&[], 1, nb, na).unwrap();
        let peer = handshake(net.server(&[crl]), net.client(&cert.der, &key)).unwrap();
        assert_eq!(peer_agency(&peer).unwrap(), agency("000.00.00.G22"));
        // Also without CRLs.
        let peer = handshake(net.server(&[]), net.client(&cert.der, &key)).unwrap();
        assert_eq!(peer_agency(&peer).unwrap(), agency("000.00.00.G22"));
        assert!(matches!(
            peer_agency(&[]),
            Err(CertError::NoPeerCertificate)
        ));
    }

    #[test]
    fn foreign_ca_client_is_refused() {
        let net = Net::new();
        let (nb, na) = valid_now();
        // A differently named CA, and an impostor reusing the network CA's name.
        for (name, why) in [
            ("Foreign CA", "UnknownIssuer"),
            ("Poros Network CA", "BadSignature"),
        ] {
            let (key, cert) = node(&ca(name), "000.00.00.G22", nb, na);
            let err = handshake(net.server(&[]), net.client(&cert.der, &key)).unwrap_err();
            assert!(err.starts_with("hub:") && err.contains(why), "{err}");
        }
    }

    #[test]
    fn expired_client_is_refused() {
        let net = Net::new();
        let now = time::OffsetDateTime::now_utc();
        let (key, cert) = node(
            &net.ca,
            "000.00.00.G22",
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        );
        let err = handshake(net.server(&[]), net.client(&cert.der, &key)).unwrap_err();
        assert!(err.starts_with("hub:") && err.contains("xpired"), "{err}");
    }

    #[test]
    fn revoked_client_is_refused() {
        let net = Net::new();
        let (nb, na) = valid_now();
        let (key, cert) = node(&net.ca, "000.00.00.G22", nb, na);
        let crl = net.ca.crl(&[(cert.serial.clone(), nb)], 2, nb, na).unwrap();
        let err = handshake(net.server(&[crl]), net.client(&cert.der, &key)).unwrap_err();
        assert!(err.starts_with("hub:") && err.contains("Revoked"), "{err}");
    }

    #[test]
    fn signing_certificate_is_not_a_client_certificate() {
        let net = Net::new();
        let key = crate::generate_key().unwrap();
        let (nb, na) = valid_now();
        let cert = net
            .ca
            .issue_signing(
                &crate::make_key_csr(&key, "x").unwrap(),
                &crate::SignerSubject::Agency(agency("000.00.00.G22")),
                nb,
                na,
            )
            .unwrap();
        // Refused by webpki's own clientAuth EKU check, before the agency check runs.
        let err = handshake(net.server(&[]), net.client(&cert.der, &key)).unwrap_err();
        assert!(
            err.starts_with("hub:") && err.contains("client authentication"),
            "{err}"
        );
    }

    #[test]
    fn network_cert_without_agency_or_eku_is_refused() {
        let net = Net::new();
        let key = crate::generate_key().unwrap();
        let no_agency = custom_cert_for(
            &net.ca,
            &key,
            vec![rcgen::SanType::URI("urn:other:thing".try_into().unwrap())],
            Some(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
        );
        let err = handshake(net.server(&[]), net.client(&no_agency, &key)).unwrap_err();
        assert!(
            err.starts_with("hub:") && err.contains("NoAgencyUri"),
            "{err}"
        );

        let no_eku = custom_cert_for(
            &net.ca,
            &key,
            vec![rcgen::SanType::URI(
                "urn:poros:agency:000.00.00.G22".try_into().unwrap(),
            )],
            None,
        );
        let err = handshake(net.server(&[]), net.client(&no_eku, &key)).unwrap_err();
        assert!(
            err.starts_with("hub:") && err.contains("NotClientAuth"),
            "{err}"
        );
    }

    #[test]
    fn agent_refuses_hub_from_another_ca() {
        let net = Net::new();
        let impostor = Net::new();
        let (nb, na) = valid_now();
        let (key, cert) = node(&net.ca, "000.00.00.G22", nb, na);
        let server = impostor.server(&[]);
        let err = handshake(server, net.client(&cert.der, &key)).unwrap_err();
        assert!(err.starts_with("agent:"), "{err}");
    }

    #[test]
    fn hub_accepts_both_protocol_versions_and_agents_offer_the_current_one() {
        let net = Net::new();
        let (nb, na) = valid_now();
        let (key, cert) = node(&net.ca, "000.00.00.G23", nb, na);
        assert_eq!(
            net.client(&cert.der, &key).alpn_protocols,
            vec![b"poros/3".to_vec()]
        );
        for alpn in [poros_protocol::ALPN, poros_protocol::ALPN_V1] {
            let mut c = net.client(&cert.der, &key);
            c.alpn_protocols = vec![alpn.to_vec()];
            handshake(net.server(&[]), c).unwrap();
        }
        // The unreleased development version is refused at the handshake.
        let mut c = net.client(&cert.der, &key);
        c.alpn_protocols = vec![b"poros/2".to_vec()];
        assert!(handshake(net.server(&[]), c).is_err());
        let mut c = net.client(&cert.der, &key);
        c.alpn_protocols = vec![b"poros/0".to_vec()];
        assert!(handshake(net.server(&[]), c).is_err());
    }

    #[test]
    fn resumption_and_early_data_are_off() {
        let net = Net::new();
        let (nb, na) = valid_now();
        let (key, cert) = node(&net.ca, "000.00.00.G22", nb, na);
        let s = net.server(&[]);
        assert_eq!((s.send_tls13_tickets, s.max_early_data_size), (0, 0));
        assert!(!s.session_storage.can_cache());
        let c = net.client(&cert.der, &key);
        assert!(!c.enable_early_data);
        assert_eq!(c.alpn_protocols, vec![poros_protocol::ALPN.to_vec()]);
    }
}

/// The hub's enrolment endpoint: server-authenticated only (a new agency holds no certificate
/// yet; its one-time token authorises it). The chain sent includes the network CA so the
/// agent can check it against the pin in its token.
pub fn hub_enroll_server_config(
    hub_cert_chain_with_ca: Vec<Vec<u8>>,
    hub_key_pkcs8: Vec<u8>,
) -> Result<rustls::ServerConfig, CertError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain(hub_cert_chain_with_ca), pkcs8(hub_key_pkcs8))?;
    config.alpn_protocols = vec![poros_protocol::ENROLL_ALPN.to_vec()];
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(config)
}

/// Verifies the hub on the enrolment endpoint against a network CA known only by its SHA-256
/// pin: the CA certificate must be in the chain the hub sends and hash to the pin, and the
/// hub's certificate must chain to it for the expected server name.
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| poros_protocol::sha256(c.as_ref()) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the hub's certificate chain does not contain the network CA pinned in the enrolment token"
                        .into(),
                )
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("pinned CA: {e}")))?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(format!("pinned CA: {e}")))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A new agent's client configuration for enrolment: no client certificate; the hub is
/// authenticated through the network CA pin carried by the token.
pub fn enroll_client_config(ca_pin: [u8; 32]) -> Result<rustls::ClientConfig, CertError> {
    let provider = provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier {
            pin: ca_pin,
            provider,
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![poros_protocol::ENROLL_ALPN.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    Ok(config)
}
