//! Poros certificates: the CAs that issue them, the files that hold them, and the checks that
//! turn a certificate into an agency identity (at the TLS handshake and on signed statements).
//!
//! # Layout
//! - [`keys`]: key generation, key/certificate files with safe permissions, CSRs, PEM helpers.
//! - [`ca`]: a certificate authority that issues node TLS, document-signing and hub server
//!   certificates from CSRs, overwriting every policy field, and signs CRLs.
//! - [`identity`]: agency / hub identity, serial and expiry read from a certificate.
//! - [`signing`]: verification of a [`poros_protocol::SignedBlob`] against the signing CAs.
//! - [`tls`]: rustls configurations for the hub (mutual TLS, agency required) and for agents.
#![forbid(unsafe_code)]

pub mod ca;
pub mod identity;
pub mod keys;
pub mod signing;
pub mod tls;

#[cfg(test)]
pub(crate) mod testutil;

pub use ca::{Ca, CrlEntry, Issued, SignerSubject};
pub use identity::{
    agency_from_cert, cert_not_after_unix, cert_not_before_unix, cert_serial_bytes,
    cert_serial_hex, signer_from_cert, HUB_URI,
};
pub use keys::{
    der_to_pem_cert, generate_key, key_pkcs8_der, load_key_pem, make_csr, make_key_csr,
    pem_to_der_certs, write_public_file, write_secret_file,
};
pub use signing::{Signer, SigningTrust, VerifyError, OID_DOCUMENT_SIGNING_DER_VALUE};
pub use tls::{
    agent_client_config, enroll_client_config, hub_enroll_server_config, hub_server_config,
    hub_server_config_observed, peer_agency, AgencyClientVerifier, ClientCertRefusal,
    RefusalObserver,
};

use std::path::PathBuf;

/// Everything that can go wrong creating, loading, issuing or inspecting certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A file could not be read, created, written or synced.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being attempted ("create", "read", …).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A private key file is readable by group or others.
    #[error("private key file {path} has mode {mode:o}, readable by group or others; run chmod 600 on it")]
    KeyFileTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A private key could not be parsed.
    #[error("invalid private key in {what}: {reason}")]
    BadKey {
        /// Where the key came from (file name or "CA key").
        what: String,
        /// Why it was refused.
        reason: String,
    },
    /// rcgen refused to build or sign something.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// Text that should have been PEM was not.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// PEM text held no certificate.
    #[error("PEM contains no certificate")]
    NoCertificate,
    /// A certificate signing request could not be parsed.
    #[error("invalid certificate signing request: {0}")]
    Csr(String),
    /// A CSR's self-signature does not verify, so its key is not proven to be held.
    #[error("certificate signing request signature does not verify")]
    CsrSignature,
    /// A CSR's key is not ECDSA P-256, the only key type Poros uses.
    #[error("certificate signing request key is not ECDSA P-256")]
    UnsupportedKey,
    /// The CA private key does not belong to the CA certificate.
    #[error("CA private key does not match the CA certificate")]
    CaKeyMismatch,
    /// A requested validity period ends before it starts.
    #[error("validity period ends ({not_after}) before it starts ({not_before})")]
    Validity {
        /// Requested start.
        not_before: time::OffsetDateTime,
        /// Requested end.
        not_after: time::OffsetDateTime,
    },
    /// A DNS name for a server certificate is not a valid IA5 string.
    #[error("invalid server name {0:?}")]
    InvalidName(String),
    /// A server certificate was requested without any DNS name or IP address.
    #[error("server certificate needs at least one DNS name or IP address")]
    NoServerNames,
    /// Bytes that should be an X.509 certificate are not.
    #[error("not a valid X.509 certificate: {0}")]
    NotCertificate(String),
    /// The certificate carries no `urn:poros:agency:` URI.
    #[error("certificate has no urn:poros:agency: URI")]
    NoAgencyUri,
    /// The certificate carries several agency URIs, so its identity is ambiguous.
    #[error("certificate has more than one urn:poros:agency: URI")]
    MultipleAgencyUris,
    /// The certificate's agency URI holds an invalid code.
    #[error("certificate agency URI has an invalid code: {0}")]
    InvalidAgencyCode(poros_protocol::AgencyIdError),
    /// The certificate names both an agency and the hub.
    #[error("certificate names both an agency and the hub")]
    AmbiguousSigner,
    /// The certificate is not marked for TLS client authentication.
    #[error("certificate lacks the clientAuth extended key usage")]
    NotClientAuth,
    /// The peer presented no certificate.
    #[error("peer presented no certificate")]
    NoPeerCertificate,
    /// A CRL could not be parsed.
    #[error("invalid certificate revocation list: {0}")]
    Crl(String),
    /// A trust root could not be used as a trust anchor.
    #[error("invalid trust root certificate: {0}")]
    TrustRoot(String),
    /// rustls refused the configuration.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The client certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}
