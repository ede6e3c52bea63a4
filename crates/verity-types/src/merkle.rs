//! State proofs as the API carries them: a state store's proof that an entry is the *current*
//! value under a key in the state whose root is a block's `parent`. The bytes are the store's
//! own encoding (commonware QMDB, see `verity-store`); check them with `verity_store::verify`.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

/// A state store's proof of one entry, encoded by the store.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct InclusionProof {
    /// commonware QMDB's key-value proof (`qmdb::current`), hex.
    #[serde(with = "hex_bytes")]
    #[schema(value_type = String, pattern = "^0x([0-9a-f]{2})*$")]
    pub proof: Vec<u8>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{}", hex::encode(bytes)))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        hex::decode(s.strip_prefix("0x").unwrap_or(&s)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_round_trips_through_json_as_hex() {
        let p = InclusionProof {
            proof: vec![0, 1, 0xab],
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"proof":"0x0001ab"}"#);
        assert_eq!(serde_json::from_str::<InclusionProof>(&json).unwrap(), p);
        assert!(serde_json::from_str::<InclusionProof>(r#"{"proof":"0xzz"}"#).is_err());
    }
}
