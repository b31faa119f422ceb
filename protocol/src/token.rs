//! One-time enrolment tokens: what a new agency needs to reach the hub and authenticate it
//! before holding any certificate (address, server name, a pin of the network CA), plus the
//! secret that authorises one enrolment. The hub keeps its own record and refuses any token
//! whose fields differ from it, so a tampered token is caught there.

use crate::AgencyId;
use serde::{Deserialize, Serialize};

/// Printed prefix of every token.
pub const TOKEN_PREFIX: &str = "poros-enroll-v1.";

/// An enrolment token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollToken {
    /// The agency it enrols.
    pub agency: AgencyId,
    /// The hub's enrolment endpoint (host:port).
    pub hub: String,
    /// Name in the hub's certificate.
    pub server_name: String,
    /// SHA-256 of the network CA certificate (DER).
    pub ca_pin: [u8; 32],
    /// Secret authorising one enrolment (hex).
    pub secret: String,
    /// Expiry, Unix ms.
    pub expires_ms: u64,
}

/// Why a token string cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a Poros enrolment token at all.
    #[error("not a Poros enrolment token (it must start with {TOKEN_PREFIX})")]
    Prefix,
    /// Damaged in copying or altered.
    #[error("enrolment token is damaged or altered: {0}")]
    Malformed(String),
}

impl EnrollToken {
    /// The printable form.
    pub fn encode(&self) -> String {
        // postcard of a plain struct cannot fail to encode
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
    }

    /// Parse the printable form.
    pub fn decode(s: &str) -> Result<Self, TokenError> {
        let body = s
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Prefix)?;
        let bytes = hex::decode(body).map_err(|e| TokenError::Malformed(e.to_string()))?;
        postcard::from_bytes(&bytes).map_err(|e| TokenError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> EnrollToken {
        EnrollToken {
            agency: AgencyId::parse("000.00.00.G22").unwrap(),
            hub: "127.0.0.1:7444".into(),
            server_name: "localhost".into(),
            ca_pin: [9; 32],
            secret: "ab".repeat(32),
            expires_ms: 42,
        }
    }

    #[test]
    fn round_trip_and_damage() {
        let s = t().encode();
        assert!(s.starts_with(TOKEN_PREFIX));
        assert_eq!(EnrollToken::decode(&s).unwrap(), t());
        assert_eq!(EnrollToken::decode("hello"), Err(TokenError::Prefix));
        assert!(matches!(
            EnrollToken::decode(&format!("{TOKEN_PREFIX}zz")),
            Err(TokenError::Malformed(_))
        ));
        let cut = &s[..s.len() - 10];
        assert!(EnrollToken::decode(cut).is_err());
    }
}
