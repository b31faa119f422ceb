//! The signed container used for everything a party vouches for, and the signing key.
//! Verification of the signer's certificate chain lives in `poros-certs`; this module only
//! defines what bytes are signed, so that signing and checking can never disagree.

use serde::{Deserialize, Serialize};

/// What a signature covers: a domain-separation context, then the exact payload bytes.
///
/// The payload is kept as the signed bytes (not re-encoded) so a verifier checks exactly what was
/// signed; the typed value is decoded from it after the signature holds.
///
/// Its fields go through serde as byte strings (`serde_bytes`): postcard writes a byte string
/// exactly as it writes a sequence of `u8` (a length, then the bytes), so the encoding on the
/// wire and in every store is unchanged, but it is one copy instead of a call per byte, and
/// reading allocates once instead of growing a vector byte by byte. Every frame and stored
/// record carries one or two of these (about 600 bytes of certificate each); the per-byte
/// path was 2.5 to 3.7% of each process's CPU on the small-document path (benches/codec.rs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBlob {
    /// Encoded payload (postcard).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// ECDSA P-256 / SHA-256 signature (ASN.1 DER) over `context || payload`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
    /// The signer's certificate (DER), issued by a signing CA.
    #[serde(with = "serde_bytes")]
    pub signer_cert: Vec<u8>,
}

impl SignedBlob {
    /// The exact message a signature covers for a given context.
    pub fn message(context: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(context.len() + 1 + payload.len());
        m.extend_from_slice(context);
        m.push(0);
        m.extend_from_slice(payload);
        m
    }

    /// Sign `payload` under `context` with `key`, attaching `signer_cert`.
    pub fn sign(
        context: &[u8],
        payload: Vec<u8>,
        key: &SigningKey,
        signer_cert: &[u8],
    ) -> Result<Self, SignError> {
        let signature = key.sign(&Self::message(context, &payload))?;
        Ok(SignedBlob {
            payload,
            signature,
            signer_cert: signer_cert.to_vec(),
        })
    }
}

/// A payload type that parties sign, with the domain-separation context its signatures use.
pub trait Signable: Serialize + serde::de::DeserializeOwned {
    /// Signature context (`poros/<what>/v1`): a signature made for one kind of statement can
    /// never be replayed as another.
    const CONTEXT: &'static [u8];
}

/// A signed `T`: the one wrapper every signed statement, envelope, receipt, notice and report
/// uses. On the wire and in stores it is exactly its [`SignedBlob`].
#[derive(Serialize, Deserialize)]
#[serde(transparent, bound = "")]
pub struct Signed<T>(
    pub SignedBlob,
    #[serde(skip)] std::marker::PhantomData<fn() -> T>,
);

impl<T: Signable> Signed<T> {
    /// Encode `value` and sign it under `T::CONTEXT`.
    pub fn sign(value: &T, key: &SigningKey, cert: &[u8]) -> Result<Self, SignError> {
        let payload = postcard::to_allocvec(value)?;
        SignedBlob::sign(T::CONTEXT, payload, key, cert).map(Self::from_blob)
    }

    /// The same signed bytes, signed again with another key (e.g. after a key renewal).
    pub fn resign(&self, key: &SigningKey, cert: &[u8]) -> Result<Self, SignError> {
        SignedBlob::sign(T::CONTEXT, self.0.payload.clone(), key, cert).map(Self::from_blob)
    }

    /// Decode the payload (call after verifying the signature).
    pub fn decode(&self) -> Result<T, postcard::Error> {
        postcard::from_bytes(&self.0.payload)
    }
}

impl<T> Signed<T> {
    /// Wrap signed bytes received or stored (nothing is checked here).
    pub fn from_blob(blob: SignedBlob) -> Self {
        Signed(blob, std::marker::PhantomData)
    }

    /// The signed bytes.
    pub fn blob(&self) -> &SignedBlob {
        &self.0
    }

    /// SHA-256 over the signed payload: names a statement independently of who signed it
    /// again after a renewal.
    pub fn payload_digest(&self) -> crate::Digest {
        crate::sha256(&self.0.payload)
    }
}

impl<T> Clone for Signed<T> {
    fn clone(&self) -> Self {
        Self::from_blob(self.0.clone())
    }
}

impl<T> PartialEq for Signed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T> Eq for Signed<T> {}

impl<T> std::fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Signed").field(&self.0).finish()
    }
}

/// Signing failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The PKCS#8 key could not be loaded.
    #[error("signing key is not a valid PKCS#8 ECDSA P-256 key")]
    BadKey,
    /// The signature operation failed.
    #[error("signature operation failed")]
    Sign,
    /// A payload could not be encoded.
    #[error("encoding failed: {0}")]
    Encode(#[from] postcard::Error),
}

/// An agency's (or the hub's) ECDSA P-256 document-signing key.
pub struct SigningKey {
    pair: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl SigningKey {
    /// Load from PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SignError> {
        let rng = ring::rand::SystemRandom::new();
        let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            der,
            &rng,
        )
        .map_err(|_| SignError::BadKey)?;
        Ok(SigningKey { pair, rng })
    }

    /// A fresh key from the system's random generator (for tests and tools; agencies' keys
    /// are generated with their certificate requests).
    pub fn generate() -> Result<Self, SignError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .map_err(|_| SignError::BadKey)?;
        Self::from_pkcs8(doc.as_ref())
    }

    /// Sign a message.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignError> {
        self.pair
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| SignError::Sign)
    }

    /// The uncompressed public key point.
    pub fn public_key(&self) -> &[u8] {
        use ring::signature::KeyPair;
        self.pair.public_key().as_ref()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// Check an ECDSA P-256 signature against a raw public key (uncompressed point).
pub fn verify_raw(public_key: &[u8], context: &[u8], payload: &[u8], sig: &[u8]) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&SignedBlob::message(context, payload), sig)
        .is_ok()
}

#[cfg(test)]
pub(crate) fn test_key() -> SigningKey {
    SigningKey::generate().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_context_and_payload() {
        let k = test_key();
        let blob = SignedBlob::sign(b"ctx", b"hello".to_vec(), &k, b"cert").unwrap();
        assert!(verify_raw(
            k.public_key(),
            b"ctx",
            &blob.payload,
            &blob.signature
        ));
        assert!(!verify_raw(
            k.public_key(),
            b"other",
            &blob.payload,
            &blob.signature
        ));
        assert!(!verify_raw(
            k.public_key(),
            b"ctx",
            b"hellp",
            &blob.signature
        ));
    }

    /// The blob as it was encoded before its fields were byte strings: every store and peer
    /// holds blobs in this form.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct BlobAsSequences {
        payload: Vec<u8>,
        signature: Vec<u8>,
        signer_cert: Vec<u8>,
    }

    #[test]
    fn a_blob_encodes_byte_for_byte_as_before_and_reads_what_was_written_before() {
        let k = test_key();
        // Lengths on both sides of postcard's one-byte length limit (127).
        for len in [0, 1, 127, 128, 600, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let blob = SignedBlob::sign(b"ctx", payload, &k, &vec![0xA5; len / 2 + 1]).unwrap();
            let before = BlobAsSequences {
                payload: blob.payload.clone(),
                signature: blob.signature.clone(),
                signer_cert: blob.signer_cert.clone(),
            };
            let old = postcard::to_allocvec(&before).unwrap();
            assert_eq!(postcard::to_allocvec(&blob).unwrap(), old, "length {len}");
            assert_eq!(postcard::from_bytes::<SignedBlob>(&old).unwrap(), blob);
            assert_eq!(
                postcard::from_bytes::<BlobAsSequences>(&postcard::to_allocvec(&blob).unwrap())
                    .unwrap(),
                before
            );
        }
    }

    #[test]
    fn bad_key_is_refused() {
        assert!(matches!(
            SigningKey::from_pkcs8(b"not a key"),
            Err(SignError::BadKey)
        ));
    }
}
