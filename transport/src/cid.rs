//! The hub's QUIC connection IDs: 8 random bytes and an 8-byte HMAC-SHA-256 check of them
//! under a key that survives restarts.
//!
//! The check lets a restarted hub tell a packet of a connection it had before (answered with
//! a stateless reset, so the agent reconnects at once) from noise (dropped). quinn's own keyed
//! generator (`HashedConnectionIdGenerator`) has a 3-byte nonce: a hub that issues the tens of
//! thousands of IDs a reconnect storm needs soon issues again an ID an old connection still
//! uses, and that connection's packets then go to the new one, fail to decrypt and earn no
//! reset. In `cargo bench --bench scale` that left 10–19 of 10,000 agents sitting out their
//! idle timeout after every restart. With 8 random bytes a repeat is out of reach.

use quinn_proto::{ConnectionId, ConnectionIdGenerator, InvalidCid};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const NONCE_LEN: usize = 8;
const CHECK_LEN: usize = 8;
/// The length of every connection ID the hub issues.
pub const CID_LEN: usize = NONCE_LEN + CHECK_LEN;

/// Issues and recognises the hub's connection IDs (see the module documentation).
pub struct KeyedCids {
    key: hmac::Key,
    rng: SystemRandom,
}

impl KeyedCids {
    /// IDs checked with `key` (derived from the hub's stable reset secret).
    pub fn new(key: hmac::Key) -> Self {
        KeyedCids {
            key,
            rng: SystemRandom::new(),
        }
    }

    fn check(&self, nonce: &[u8]) -> [u8; CHECK_LEN] {
        let mut c = [0u8; CHECK_LEN];
        c.copy_from_slice(&hmac::sign(&self.key, nonce).as_ref()[..CHECK_LEN]);
        c
    }
}

impl ConnectionIdGenerator for KeyedCids {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut id = [0u8; CID_LEN];
        // The system generator does not fail on Linux; were it to, the nonce would repeat and
        // only the restart case above would suffer.
        let _ = self.rng.fill(&mut id[..NONCE_LEN]);
        let check = self.check(&id[..NONCE_LEN]);
        id[NONCE_LEN..].copy_from_slice(&check);
        ConnectionId::new(&id)
    }

    fn validate(&self, cid: &ConnectionId) -> Result<(), InvalidCid> {
        if cid.len() != CID_LEN {
            return Err(InvalidCid);
        }
        let expected = self.check(&cid[..NONCE_LEN]);
        // Every byte compared whatever the first difference (no timing hint to a forger).
        let diff = expected
            .iter()
            .zip(&cid[NONCE_LEN..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if std::hint::black_box(diff) == 0 {
            Ok(())
        } else {
            Err(InvalidCid)
        }
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[k; 32])
    }

    #[test]
    fn ids_are_recognised_under_the_same_key_only_and_do_not_repeat() {
        let mut before = KeyedCids::new(key(1));
        let after = KeyedCids::new(key(1));
        let other = KeyedCids::new(key(2));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let id = before.generate_cid();
            assert_eq!(id.len(), CID_LEN);
            // A restarted hub (same key) recognises it; another deployment does not.
            assert!(after.validate(&id).is_ok());
            assert!(other.validate(&id).is_err());
            assert!(seen.insert(id.to_vec()), "an ID issued twice");
        }
        let mut forged = before.generate_cid().to_vec();
        forged[CID_LEN - 1] ^= 1;
        assert!(after.validate(&ConnectionId::new(&forged)).is_err());
        assert!(after.validate(&ConnectionId::new(&forged[..8])).is_err());
    }
}
