//! Shared fixtures for the Poros fuzz targets: a fixed test CA, its CRL, a fixed clock and the
//! framing of each target's input. Fixed so that seeds signed once by `examples/seeds.rs`
//! keep verifying in every later run and on every machine.
#![forbid(unsafe_code)]

use poros_certs::{Ca, SigningTrust};
use poros_protocol::envelope::ENVELOPE_CONTEXT;
use poros_protocol::receipt::{ACCEPTANCE_CONTEXT, NOTICE_CONTEXT, PAPER_CONTEXT, RECEIPT_CONTEXT};
use poros_protocol::AgencyId;
use std::sync::OnceLock;
use time::OffsetDateTime;

/// The fuzz-only CA (certificate and key, PEM). It signs nothing outside `fuzz/`.
pub const CA_CERT_PEM: &str = include_str!("../fixtures/fuzz-ca.pem");
/// Its private key: a test fixture, deliberately public.
pub const CA_KEY_PEM: &str = include_str!("../fixtures/fuzz-ca.key");
/// Serial (hex) of a signer certificate the fixture CRL revokes.
pub const REVOKED_SERIAL_HEX: &str = include_str!("../fixtures/revoked-serial.hex");

/// The clock statements are verified at: 2026-06-01T00:00:00Z.
pub const NOW_UNIX: u64 = 1_780_272_000;
/// Signer certificates in the seeds are valid from 2025-01-01 …
pub const SIGNER_NOT_BEFORE: i64 = 1_735_689_600;
/// … to 2030-01-01.
pub const SIGNER_NOT_AFTER: i64 = 1_893_456_000;
/// The agency certificates are issued to by the `csr` target and the seeds.
pub const AGENCY: &str = "000.00.00.G22";

/// Everything a target needs, built once per process.
pub struct Fixture {
    /// The fuzz CA, loaded as the hub loads its CAs.
    pub ca: Ca,
    /// Trust in that CA, with a CRL revoking [`REVOKED_SERIAL_HEX`].
    pub trust: SigningTrust,
    /// [`AGENCY`], parsed.
    pub agency: AgencyId,
}

/// The process-wide fixture.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ca = Ca::load(CA_CERT_PEM, CA_KEY_PEM).expect("fixture CA loads");
        let revoked = hex::decode(REVOKED_SERIAL_HEX.trim()).expect("fixture serial is hex");
        let crl = ca
            .crl(
                &[(revoked, at(SIGNER_NOT_BEFORE))],
                1,
                at(SIGNER_NOT_BEFORE),
                at(SIGNER_NOT_AFTER),
            )
            .expect("fixture CRL");
        let trust = SigningTrust::new(&[ca.cert_der().to_vec()], &[crl]).expect("fixture trust");
        Fixture {
            ca,
            trust,
            agency: AgencyId::parse(AGENCY).expect("fixture agency"),
        }
    })
}

/// A Unix time as the `time` crate's type (the fixture's constants are all in range).
pub fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The statement kinds of the `signed_statement` target, selected by its input's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatementKind {
    /// `SignedEnvelope`.
    Envelope,
    /// `SignedReceipt`.
    Receipt,
    /// `SignedAcceptance`.
    Acceptance,
    /// `SignedNotice`.
    Notice,
    /// `SignedPaperReport`.
    PaperReport,
    /// A bare `SignedBlob`, tried under every context.
    Blob,
    /// `SignedStatement` (business statuses, change requests and answers, reminders).
    Statement,
}

impl StatementKind {
    /// All kinds, in selector order.
    pub const ALL: [StatementKind; 7] = [
        StatementKind::Envelope,
        StatementKind::Receipt,
        StatementKind::Acceptance,
        StatementKind::Notice,
        StatementKind::PaperReport,
        StatementKind::Blob,
        StatementKind::Statement,
    ];

    /// The kind a selector byte picks.
    pub fn from_selector(b: u8) -> StatementKind {
        Self::ALL[b as usize % Self::ALL.len()]
    }

    /// The selector byte of this kind.
    pub fn selector(self) -> u8 {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0) as u8
    }

    /// The signature context of a typed statement (`None` for a bare blob).
    pub fn context(self) -> Option<&'static [u8]> {
        match self {
            StatementKind::Envelope => Some(ENVELOPE_CONTEXT),
            StatementKind::Receipt => Some(RECEIPT_CONTEXT),
            StatementKind::Acceptance => Some(ACCEPTANCE_CONTEXT),
            StatementKind::Notice => Some(NOTICE_CONTEXT),
            StatementKind::PaperReport => Some(PAPER_CONTEXT),
            StatementKind::Blob => None,
            StatementKind::Statement => Some(poros_protocol::STATEMENT_CONTEXT),
        }
    }
}

/// Every signature context Poros uses.
pub const CONTEXTS: [&[u8]; 6] = [
    ENVELOPE_CONTEXT,
    RECEIPT_CONTEXT,
    ACCEPTANCE_CONTEXT,
    NOTICE_CONTEXT,
    PAPER_CONTEXT,
    poros_protocol::STATEMENT_CONTEXT,
];

/// The verification clocks of the `signed_statement` target, selected by its second byte:
/// inside the signers' validity, before it, after it.
pub fn clock(selector: u8) -> u64 {
    match selector % 4 {
        1 => (SIGNER_NOT_BEFORE - 86_400) as u64,
        2 => (SIGNER_NOT_AFTER + 86_400) as u64,
        3 => 0,
        _ => NOW_UNIX,
    }
}

/// Wrap DER in PEM under `label` (the `csr` target feeds the CA raw DER this way).
pub fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
