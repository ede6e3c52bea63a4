//! A program's result in its one canonical form: exactly 16 field elements.
//!
//! Miden ends every program with 16 stack outputs and pads a shorter list with zeros when it
//! checks a proof, so `[55]` and `[55, 0, …, 0]` verify against the same proof. Were both
//! accepted, two different values would denote one result, and comparing them as vectors
//! would call a correct result "different" (the truncated-outputs attack in docs/SECURITY.md).
//! Every result on the wire and in the ledger is therefore a [`StackOutputs`]: it cannot be
//! built, decoded or deserialized from anything but 16 canonical field elements.

use std::fmt;
use std::io;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::field::{MODULUS, format_felts};

/// How many elements a Miden program leaves on the stack.
pub const STACK_OUTPUTS: usize = 16;

/// Why a list of values is not a program result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputsError {
    #[error("outputs must be exactly {STACK_OUTPUTS} field elements, got {0}")]
    WrongLength(usize),
    #[error("output {index} is {value}, not a field element (values must be below {MODULUS})")]
    OutOfField { index: usize, value: u64 },
}

/// Exactly 16 field elements, top of the stack first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StackOutputs([u64; STACK_OUTPUTS]);

impl StackOutputs {
    /// Checks a list of values: exactly 16, each below the field modulus.
    pub fn new(values: &[u64]) -> Result<StackOutputs, OutputsError> {
        let array: [u64; STACK_OUTPUTS] = values
            .try_into()
            .map_err(|_| OutputsError::WrongLength(values.len()))?;
        Self::from_array(array)
    }

    pub fn from_array(values: [u64; STACK_OUTPUTS]) -> Result<StackOutputs, OutputsError> {
        if let Some((index, value)) = values.iter().enumerate().find(|(_, v)| **v >= MODULUS) {
            return Err(OutputsError::OutOfField {
                index,
                value: *value,
            });
        }
        Ok(StackOutputs(values))
    }

    pub fn as_slice(&self) -> &[u64] {
        &self.0
    }

    pub fn to_vec(&self) -> Vec<u64> {
        self.0.to_vec()
    }

    /// The top of the stack (the first output), where most programs put their answer.
    pub fn top(&self) -> u64 {
        self.0[0]
    }
}

impl fmt::Debug for StackOutputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StackOutputs[{}]", format_felts(&self.0))
    }
}

impl fmt::Display for StackOutputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_felts(&self.0))
    }
}

// Read-only access as a slice (`outputs[0]`, `outputs.iter()`); construction stays checked.
impl std::ops::Deref for StackOutputs {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        &self.0
    }
}

impl AsRef<[u64]> for StackOutputs {
    fn as_ref(&self) -> &[u64] {
        &self.0
    }
}

impl TryFrom<Vec<u64>> for StackOutputs {
    type Error = OutputsError;
    fn try_from(values: Vec<u64>) -> Result<Self, OutputsError> {
        StackOutputs::new(&values)
    }
}

// Borsh: 16 little-endian u64s, no length prefix (the length is part of the type), each
// checked on decode.
impl BorshSerialize for StackOutputs {
    fn serialize<W: io::Write>(&self, writer: &mut W) -> io::Result<()> {
        BorshSerialize::serialize(&self.0, writer)
    }
}

impl BorshDeserialize for StackOutputs {
    fn deserialize_reader<R: io::Read>(reader: &mut R) -> io::Result<Self> {
        let values = <[u64; STACK_OUTPUTS]>::deserialize_reader(reader)?;
        StackOutputs::from_array(values)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}

// JSON: a list of 16 numbers, as before; anything else is refused with the reason.
impl Serialize for StackOutputs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Serialize::serialize(self.0.as_slice(), serializer)
    }
}

impl<'de> Deserialize<'de> for StackOutputs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let values = <Vec<u64> as Deserialize>::deserialize(deserializer)?;
        StackOutputs::new(&values).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fib10() -> Vec<u64> {
        let mut v = vec![0; 16];
        v[0] = 55;
        v
    }

    #[test]
    fn only_sixteen_canonical_elements_make_outputs() {
        assert!(StackOutputs::new(&fib10()).is_ok());
        assert_eq!(
            StackOutputs::new(&[55]).unwrap_err(),
            OutputsError::WrongLength(1)
        );
        assert_eq!(
            StackOutputs::new(&[0; 17]).unwrap_err(),
            OutputsError::WrongLength(17)
        );
        let mut big = fib10();
        big[3] = MODULUS;
        assert_eq!(
            StackOutputs::new(&big).unwrap_err(),
            OutputsError::OutOfField {
                index: 3,
                value: MODULUS
            }
        );
    }

    #[test]
    fn decoders_refuse_non_canonical_outputs() {
        let ok = StackOutputs::new(&fib10()).unwrap();
        let bytes = borsh::to_vec(&ok).unwrap();
        assert_eq!(bytes.len(), 128, "no length prefix");
        assert_eq!(borsh::from_slice::<StackOutputs>(&bytes).unwrap(), ok);
        let mut bad = bytes.clone();
        bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(borsh::from_slice::<StackOutputs>(&bad).is_err());
        assert!(borsh::from_slice::<StackOutputs>(&bytes[..120]).is_err());

        let json = serde_json::to_string(&ok).unwrap();
        assert_eq!(serde_json::from_str::<StackOutputs>(&json).unwrap(), ok);
        assert!(serde_json::from_str::<StackOutputs>("[55]").is_err());
        assert!(
            serde_json::from_str::<StackOutputs>(&format!(
                "[{MODULUS},0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]"
            ))
            .is_err()
        );
    }
}
