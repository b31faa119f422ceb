//! Identifiers that cross process boundaries: agency codes and document IDs.
//! Parsed and validated once here; everything downstream takes the typed value.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A national agency code of the form `DDD.DD.DD.XDD`, e.g. `000.00.00.G22`.
///
/// The letter names the agency group (G = ministries, H = provinces, …).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgencyId(String);

/// Why a string is not a valid agency code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgencyIdError {
    /// Wrong overall length.
    #[error(
        "agency ID {0:?} must be 13 characters of the form DDD.DD.DD.XDD (e.g. 000.00.00.G22)"
    )]
    Length(String),
    /// A character that does not fit its position.
    #[error("agency ID {id:?}: position {pos} must be {expected} (form DDD.DD.DD.XDD, e.g. 000.00.00.G22)")]
    Char {
        /// The rejected input.
        id: String,
        /// 1-based position of the first offending character.
        pos: usize,
        /// What the position should hold.
        expected: &'static str,
    },
}

impl AgencyId {
    /// Parse and validate an agency code.
    pub fn parse(s: &str) -> Result<Self, AgencyIdError> {
        let b = s.as_bytes();
        if b.len() != 13 || !s.is_ascii() {
            return Err(AgencyIdError::Length(s.to_string()));
        }
        for (i, &c) in b.iter().enumerate() {
            let (ok, expected) = match i {
                3 | 6 | 9 => (c == b'.', "a dot"),
                10 => (c.is_ascii_uppercase(), "an upper-case letter"),
                _ => (c.is_ascii_digit(), "a digit"),
            };
            if !ok {
                return Err(AgencyIdError::Char {
                    id: s.to_string(),
                    pos: i + 1,
                    expected,
                });
            }
        }
        Ok(AgencyId(s.to_string()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The agency group letter (G = ministries, H = provinces, …).
    pub fn group(&self) -> char {
        self.0.as_bytes()[10] as char
    }

    /// The URI placed in certificates to bind this agency: `urn:poros:agency:<code>`.
    pub fn to_uri(&self) -> String {
        format!("{}{}", Self::URI_PREFIX, self.0)
    }

    /// Prefix of the agency URI SAN.
    pub const URI_PREFIX: &'static str = "urn:poros:agency:";

    /// Parse an agency URI SAN (`urn:poros:agency:<code>`).
    pub fn from_uri(uri: &str) -> Option<Result<Self, AgencyIdError>> {
        uri.strip_prefix(Self::URI_PREFIX).map(Self::parse)
    }
}

impl FromStr for AgencyId {
    type Err = AgencyIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AgencyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgencyId({})", self.0)
    }
}

impl Serialize for AgencyId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AgencyId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AgencyId::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Who makes a statement: an agency, or the hub itself (its acceptances and delivery notices).
///
/// Encoded as text, the agency's code or `hub` (never a valid agency code), so a party encodes
/// exactly as the agency code did before the hub could make statements.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// An agency, named by its signing certificate's agency URI.
    Agency(AgencyId),
    /// The hub (`urn:poros:hub`).
    Hub,
}

impl Party {
    /// The agency, unless it is the hub.
    pub fn agency(&self) -> Option<&AgencyId> {
        match self {
            Party::Agency(a) => Some(a),
            Party::Hub => None,
        }
    }

    /// The party as text: the agency code, or `hub`.
    pub fn as_str(&self) -> &str {
        match self {
            Party::Agency(a) => a.as_str(),
            Party::Hub => "hub",
        }
    }
}

impl From<AgencyId> for Party {
    fn from(a: AgencyId) -> Self {
        Party::Agency(a)
    }
}

impl PartialEq<AgencyId> for Party {
    fn eq(&self, other: &AgencyId) -> bool {
        self.agency() == Some(other)
    }
}

impl PartialEq<Party> for AgencyId {
    fn eq(&self, other: &Party) -> bool {
        other == self
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Party({})", self.as_str())
    }
}

impl Serialize for Party {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Party {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "hub" {
            return Ok(Party::Hub);
        }
        AgencyId::parse(&s)
            .map(Party::Agency)
            .map_err(serde::de::Error::custom)
    }
}

/// A document's ID: a UUIDv7, so IDs sort by creation time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DocumentId(pub uuid::Uuid);

impl DocumentId {
    /// A new time-ordered ID for a document created at `unix_ms`.
    pub fn new_v7(unix_ms: u64, random: [u8; 10]) -> Self {
        // UUIDv7 layout (RFC 9562): 48-bit ms timestamp, version, 74 random bits, variant.
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        b[6..].copy_from_slice(&random);
        b[6] = (b[6] & 0x0f) | 0x70;
        b[8] = (b[8] & 0x3f) | 0x80;
        DocumentId(uuid::Uuid::from_bytes(b))
    }

    /// The 16 raw bytes (used as store keys; they sort by time).
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// From 16 raw bytes.
    pub fn from_bytes(b: [u8; 16]) -> Self {
        DocumentId(uuid::Uuid::from_bytes(b))
    }

    /// The all-zero ID: names no document (a statement about a period, not a document).
    pub const NIL: DocumentId = DocumentId(uuid::Uuid::nil());

    /// Whether this is [`DocumentId::NIL`].
    pub fn is_nil(&self) -> bool {
        self.0.is_nil()
    }
}

impl FromStr for DocumentId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(DocumentId)
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_codes_parse() {
        for s in ["000.00.00.G22", "000.00.00.H01", "123.45.67.A00"] {
            let id = AgencyId::parse(s).unwrap();
            assert_eq!(id.as_str(), s);
        }
        assert_eq!(AgencyId::parse("000.00.00.H63").unwrap().group(), 'H');
    }

    #[test]
    fn registry_oddities_are_rejected_with_a_reason() {
        let cases = [
            ("", "13 characters"),
            ("000.00.00.G2", "13 characters"),
            ("000.00.00.g22", "position 11 must be an upper-case letter"),
            ("000-00.00.G22", "position 4 must be a dot"),
            ("0a0.00.00.G22", "position 2 must be a digit"),
            ("000.00.00.GXX", "position 12 must be a digit"),
            ("000.00.00.G2é", "13 characters"),
            ("000.00.00.G222", "13 characters"),
        ];
        for (input, msg) in cases {
            let err = AgencyId::parse(input).unwrap_err().to_string();
            assert!(err.contains(msg), "{input:?}: {err}");
        }
    }

    #[test]
    fn uri_round_trip() {
        let id = AgencyId::parse("000.00.00.G22").unwrap();
        assert_eq!(id.to_uri(), "urn:poros:agency:000.00.00.G22");
        assert_eq!(AgencyId::from_uri(&id.to_uri()).unwrap().unwrap(), id);
        assert!(AgencyId::from_uri("urn:other").is_none());
        assert!(AgencyId::from_uri("urn:poros:agency:bad").unwrap().is_err());
    }

    #[test]
    fn serde_validates() {
        let ok: AgencyId = serde_json_like("000.00.00.G22").unwrap();
        assert_eq!(ok.as_str(), "000.00.00.G22");
        assert!(serde_json_like("nope").is_err());
    }

    #[test]
    fn a_party_encodes_as_the_agency_code_did() {
        let a = AgencyId::parse("000.00.00.G22").unwrap();
        let p = Party::Agency(a.clone());
        assert_eq!(
            postcard::to_allocvec(&p).unwrap(),
            postcard::to_allocvec(&a).unwrap()
        );
        let back: Party = postcard::from_bytes(&postcard::to_allocvec(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        let hub: Party =
            postcard::from_bytes(&postcard::to_allocvec(&Party::Hub).unwrap()).unwrap();
        assert_eq!(hub, Party::Hub);
        assert!(postcard::from_bytes::<Party>(&postcard::to_allocvec("HUB").unwrap()).is_err());
        assert!(postcard::from_bytes::<AgencyId>(&postcard::to_allocvec("hub").unwrap()).is_err());
    }

    fn serde_json_like(s: &str) -> Result<AgencyId, postcard::Error> {
        let bytes = postcard::to_allocvec(&s.to_string()).unwrap();
        postcard::from_bytes(&bytes)
    }

    #[test]
    fn v7_ids_sort_by_time_and_have_version_bits() {
        let a = DocumentId::new_v7(1_700_000_000_000, [0xff; 10]);
        let b = DocumentId::new_v7(1_700_000_000_001, [0x00; 10]);
        assert!(a < b);
        assert_eq!(a.0.get_version_num(), 7);
        let parsed: DocumentId = a.to_string().parse().unwrap();
        assert_eq!(parsed, a);
    }
}
