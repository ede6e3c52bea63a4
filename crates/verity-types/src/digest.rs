//! 32-byte digests (program hashes, content addresses), shown as `0x`-prefixed hex.

use std::fmt;
use std::str::FromStr;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 32-byte digest: a Miden program hash (MAST root), or a Blake3 content address.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Digest(pub [u8; 32]);

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest must be 64 hex characters (optionally prefixed by 0x), got {0} characters")]
    Length(usize),
    #[error("digest is not valid hex: {0}")]
    Hex(String),
}

impl Digest {
    /// The Blake3 hash of `bytes`: Verity's content address for blobs.
    pub fn blake3(bytes: &[u8]) -> Self {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Abbreviated form for logs and tables: `0x1234abcd…`.
    pub fn short(&self) -> String {
        format!("0x{}…", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("0x").unwrap_or(s);
        if hex_part.len() != 64 {
            return Err(DigestError::Length(hex_part.len()));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|e| DigestError::Hex(e.to_string()))?;
        Ok(Digest(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let d = Digest::blake3(b"verity");
        let s = d.to_string();
        assert!(s.starts_with("0x") && s.len() == 66);
        assert_eq!(s.parse::<Digest>().unwrap(), d);
        // The prefix is optional on input.
        assert_eq!(s[2..].parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn rejects_bad_lengths_and_characters() {
        assert_eq!("0x1234".parse::<Digest>(), Err(DigestError::Length(4)));
        let bad = format!("0x{}", "zz".repeat(32));
        assert!(matches!(bad.parse::<Digest>(), Err(DigestError::Hex(_))));
    }
}
