//! Fuzz target `signed_statement`: decoding and verification of every signed statement kind
//! through `SigningTrust` built from the fixed fuzz CA (with a CRL).
//! Input: kind selector byte, clock selector byte, then the postcard-encoded statement.
//! Properties: never panics (nor do the certificate readers on the signer certificate); a
//! statement that verifies decodes; a blob verifies under at most one signature context.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poros_fuzz::{clock, fixture, StatementKind, CONTEXTS};
use poros_protocol::{
    PaperReport, SignedAcceptance, SignedBlob, SignedEnvelope, SignedNotice, SignedPaperReport,
    SignedReceipt,
};

/// Decode the typed payload of `blob` as `kind`; Ok(()) when it decodes.
fn decode(kind: StatementKind, blob: &SignedBlob) -> Result<(), String> {
    let blob = blob.clone();
    match kind {
        StatementKind::Envelope => {
            let env = SignedEnvelope::from_blob(blob)
                .envelope()
                .map_err(|e| e.to_string())?;
            let _ = env.validate();
        }
        StatementKind::Receipt => {
            SignedReceipt::from_blob(blob)
                .receipt()
                .map_err(|e| e.to_string())?;
        }
        StatementKind::Acceptance => {
            SignedAcceptance::from_blob(blob)
                .acceptance()
                .map_err(|e| e.to_string())?;
        }
        StatementKind::Notice => {
            SignedNotice::from_blob(blob)
                .notice()
                .map_err(|e| e.to_string())?;
        }
        StatementKind::PaperReport => {
            let r = SignedPaperReport::from_blob(blob)
                .report()
                .map_err(|e| e.to_string())?;
            let _ = PaperReport::month_is_valid(&r.month);
        }
        StatementKind::Blob => {}
        StatementKind::Statement => {
            let s = poros_protocol::SignedStatement::from_blob(blob)
                .statement()
                .map_err(|e| e.to_string())?;
            // The checks every party runs on a decoded statement, on whatever arrived.
            let _ = s.validate();
            // The maker as the sender (or, for the hub's statements, the addressee).
            let sender = s.from.agency().or(s.to.first());
            if let Some(sender) = sender {
                let mut state = poros_protocol::DocState::new(sender.clone(), &s.to);
                for a in &s.to {
                    state.delivered(a);
                }
                if state.check(&s, &[0; 32]).is_ok() {
                    state.apply(&s, &[0; 32]);
                }
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let [kind, time, rest @ ..] = data else {
        return;
    };
    let kind = StatementKind::from_selector(*kind);
    let now = clock(*time);
    let f = fixture();
    // Every wrapper is a newtype around SignedBlob, so they share its encoding.
    let Ok(blob) = postcard::from_bytes::<SignedBlob>(rest) else {
        return;
    };
    // The decoders run on unverified bytes too (a receiver may log what it refused), and so
    // do the certificate readers the hub and agents use on a signer certificate.
    let decoded = decode(kind, &blob);
    let _ = poros_certs::signer_from_cert(&blob.signer_cert);
    let _ = poros_certs::agency_from_cert(&blob.signer_cert);
    let _ = poros_certs::cert_serial_hex(&blob.signer_cert);
    let _ = poros_certs::cert_not_after_unix(&blob.signer_cert);
    match kind.context() {
        Some(ctx) => {
            if let Ok(signer) = f.trust.verify(&blob, ctx, now) {
                assert!(
                    decoded.is_ok(),
                    "{kind:?} signed by {signer:?} verifies but does not decode: {decoded:?}"
                );
            }
        }
        None => {
            let verified: Vec<usize> = CONTEXTS
                .iter()
                .enumerate()
                .filter(|(_, ctx)| f.trust.verify(&blob, ctx, now).is_ok())
                .map(|(i, _)| i)
                .collect();
            assert!(
                verified.len() <= 1,
                "one signature verified under several contexts: {verified:?}"
            );
        }
    }
});
