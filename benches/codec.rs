//! Encoding and decoding of signed blobs, the part of every frame and stored record that
//! carries a payload, a signature and the signer's certificate (see benches/README.md,
//! "codec"). Times `SignedBlob` against the same three fields encoded as sequences of `u8`
//! (how they were encoded before they became byte strings; the bytes are identical), in the
//! same run, and a whole `Submit` frame for scale.

use poros_protocol::{Frame, SignedBlob, SignedEnvelope};
use serde::{Deserialize, Serialize};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The blob's fields as plain vectors: serde visits them a byte at a time.
#[derive(Serialize, Deserialize)]
struct AsSequences {
    payload: Vec<u8>,
    signature: Vec<u8>,
    signer_cert: Vec<u8>,
}

/// Sizes of a document envelope's blob in the exchange bench: a ~300-byte envelope, a DER
/// ECDSA signature, a ~600-byte certificate.
fn sample() -> SignedBlob {
    SignedBlob {
        payload: (0..300u32).map(|i| (i * 7) as u8).collect(),
        signature: vec![0x30; 71],
        signer_cert: (0..600u32).map(|i| (i * 13) as u8).collect(),
    }
}

/// Fastest of `rounds` rounds of `n` calls, per call.
fn time(rounds: usize, n: usize, mut f: impl FnMut()) -> Duration {
    (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed() / n as u32
        })
        .min()
        .unwrap_or_default()
}

fn main() {
    let blob = sample();
    let plain = AsSequences {
        payload: blob.payload.clone(),
        signature: blob.signature.clone(),
        signer_cert: blob.signer_cert.clone(),
    };
    let bytes = postcard::to_allocvec(&blob).expect("encode");
    assert_eq!(bytes, postcard::to_allocvec(&plain).expect("encode"));
    let (rounds, n) = (9, 20_000);
    let enc_new = time(rounds, n, || {
        black_box(postcard::to_allocvec(black_box(&blob)).unwrap());
    });
    let enc_old = time(rounds, n, || {
        black_box(postcard::to_allocvec(black_box(&plain)).unwrap());
    });
    let dec_new = time(rounds, n, || {
        black_box(postcard::from_bytes::<SignedBlob>(black_box(&bytes)).unwrap());
    });
    let dec_old = time(rounds, n, || {
        black_box(postcard::from_bytes::<AsSequences>(black_box(&bytes)).unwrap());
    });
    let frame = Frame::Submit {
        envelope: SignedEnvelope::from_blob(blob.clone()),
    };
    let wire = frame.encode().expect("frame");
    let frame_enc = time(rounds, n, || {
        black_box(black_box(&frame).encode().unwrap());
    });
    let frame_dec = time(rounds, n, || {
        black_box(Frame::decode(black_box(&wire)).unwrap());
    });
    let ns = |d: Duration| d.as_nanos() as f64;
    println!(
        "codec: one signed blob of {} bytes (payload {}, signature {}, certificate {}), fastest of {rounds} rounds of {n}",
        bytes.len(),
        blob.payload.len(),
        blob.signature.len(),
        blob.signer_cert.len()
    );
    println!(
        "  encode: {:.0} ns as byte strings, {:.0} ns as sequences of u8 (ratio {:.2})",
        ns(enc_new),
        ns(enc_old),
        ns(enc_new) / ns(enc_old)
    );
    println!(
        "  decode: {:.0} ns as byte strings, {:.0} ns as sequences of u8 (ratio {:.2})",
        ns(dec_new),
        ns(dec_old),
        ns(dec_new) / ns(dec_old)
    );
    println!(
        "  a Submit frame carrying it ({} bytes): encode {:.0} ns, decode {:.0} ns",
        wire.len(),
        ns(frame_enc),
        ns(frame_dec)
    );
}
