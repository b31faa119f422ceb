//! Fuzz target `frame`: the two-phase frame decoder every QUIC stream starts with.
//! Properties: never panics (nor do the certificate and CRL readers an agent runs on what a
//! frame carries); a length it admits is within the limit; anything that decodes re-encodes
//! and decodes back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poros_certs::SigningTrust;
use poros_protocol::frame::MAX_FRAME_LEN;
use poros_protocol::Frame;

/// What an agent parses out of a frame from the hub: the certificates and trust roots of
/// `Credentials`, and the CRL of `CrlUpdate` (parsed as `SigningTrust::set_crls` does).
fn parse_contents(frame: &Frame) {
    let crl = match frame {
        Frame::Credentials(c) => {
            for pem in [&c.tls_cert, &c.sign_cert, &c.network_ca, &c.signing_ca] {
                if let Ok(certs) = poros_certs::pem_to_der_certs(pem) {
                    for der in certs {
                        let _ = poros_certs::agency_from_cert(&der);
                        let _ = poros_certs::signer_from_cert(&der);
                    }
                }
            }
            &c.signing_crl
        }
        Frame::CrlUpdate { signing_crl } => signing_crl,
        _ => return,
    };
    let _ = SigningTrust::new(&[], std::slice::from_ref(crl));
}

fn round_trip(frame: &Frame) {
    parse_contents(frame);
    // A decoded frame can exceed the limit only if the input did; either way no panic.
    if let Ok(bytes) = frame.encode() {
        let len = Frame::check_len([bytes[0], bytes[1], bytes[2], bytes[3]])
            .expect("an encoded frame passes its own length check");
        assert_eq!(len, bytes.len() - 4, "prefix announces the payload length");
        let again = Frame::decode(&bytes[4..]).expect("an encoded frame decodes");
        assert_eq!(&again, frame, "decode(encode(f)) == f");
    }
}

fuzz_target!(|data: &[u8]| {
    // As the transport reads it: prefix, then exactly the announced bytes.
    if let [a, b, c, d, rest @ ..] = data {
        if let Ok(len) = Frame::check_len([*a, *b, *c, *d]) {
            assert!(len > 0 && len <= MAX_FRAME_LEN);
            if let Some(payload) = rest.get(..len) {
                if let Ok(f) = Frame::decode(payload) {
                    round_trip(&f);
                }
            }
        }
    }
    // And the whole input as a payload, so mutations need not keep a valid prefix.
    if let Ok(f) = Frame::decode(data) {
        round_trip(&f);
    }
});
