//! Fuzz target `envelope`: the envelope decoder and the envelope and metadata rules.
//! Input: a selector byte (even: `Envelope`, odd: `Metadata`), then postcard bytes.
//! Properties: never panics; a decoded value re-encodes to the same value, and the rules
//! give the same verdict on it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poros_protocol::{Envelope, Metadata, SignedBlob, SignedEnvelope};

fuzz_target!(|data: &[u8]| {
    let [selector, rest @ ..] = data else {
        return;
    };
    if selector % 2 == 0 {
        // Through the same call the hub and the receiving agent use on signed bytes.
        let signed = SignedEnvelope::from_blob(SignedBlob {
            payload: rest.to_vec(),
            signature: Vec::new(),
            signer_cert: Vec::new(),
        });
        if let Ok(env) = signed.envelope() {
            let verdict = env.validate();
            let bytes = postcard::to_allocvec(&env).expect("a decoded envelope encodes");
            let again: Envelope = postcard::from_bytes(&bytes).expect("re-encoded decodes");
            assert_eq!(again, env);
            assert_eq!(again.validate(), verdict);
        }
    } else if let Ok(meta) = postcard::from_bytes::<Metadata>(rest) {
        let verdict = meta.validate();
        let bytes = postcard::to_allocvec(&meta).expect("decoded metadata encodes");
        let again: Metadata = postcard::from_bytes(&bytes).expect("re-encoded decodes");
        assert_eq!(again, meta);
        assert_eq!(again.validate(), verdict);
    }
});
