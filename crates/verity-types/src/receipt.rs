//! Receipts: the self-describing, versioned file that carries a result and its proof.
//!
//! A receipt holds exactly what a verifier needs — program hash, public stack inputs, stack
//! outputs and the STARK proof — because a Miden proof does not carry its public values. The
//! private (advice) inputs are never part of a receipt.
//!
//! The file is JSON so that people and tools can read it; the proof is base64. Reading one is
//! defensive: a file that is not a receipt, is truncated, has an unknown version or a field of
//! the wrong shape is rejected with an error naming what was wrong.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::field::MODULUS;
use crate::ids::ProgramHash;
use crate::outputs::StackOutputs;

/// The `format` tag every receipt file carries.
pub const RECEIPT_FORMAT: &str = "verity-receipt";
/// The receipt layout this build writes and reads.
pub const RECEIPT_VERSION: u32 = 1;
/// Miden programs start with at most 16 public stack inputs and end with exactly 16 outputs.
pub const STACK_DEPTH: usize = 16;
/// Receipts larger than this are refused before parsing (proofs are ~100–150 KB).
pub const MAX_RECEIPT_BYTES: usize = 16 * 1024 * 1024;

/// The hash function a STARK proof was built with (names as in Miden's CLI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HashFunction {
    #[serde(rename = "blake3-256")]
    Blake3_256,
    #[serde(rename = "rpo")]
    Rpo256,
    #[serde(rename = "rpx")]
    Rpx256,
    #[serde(rename = "poseidon2")]
    Poseidon2,
    #[serde(rename = "keccak")]
    Keccak,
}

impl HashFunction {
    pub const ALL: [HashFunction; 5] = [
        HashFunction::Blake3_256,
        HashFunction::Rpo256,
        HashFunction::Rpx256,
        HashFunction::Poseidon2,
        HashFunction::Keccak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HashFunction::Blake3_256 => "blake3-256",
            HashFunction::Rpo256 => "rpo",
            HashFunction::Rpx256 => "rpx",
            HashFunction::Poseidon2 => "poseidon2",
            HashFunction::Keccak => "keccak",
        }
    }
}

impl fmt::Display for HashFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for HashFunction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HashFunction::ALL.into_iter().find(|h| h.name() == s).ok_or_else(|| {
            format!("unknown hash function `{s}` (expected one of: blake3-256, rpo, rpx, poseidon2, keccak)")
        })
    }
}

/// A result with its proof of correct execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Receipt layout version (see [`RECEIPT_VERSION`]).
    pub version: u32,
    /// The VM (and version) that made the proof, e.g. `miden-vm 0.23.5`.
    pub vm: String,
    /// Hash function of the proof.
    pub hash_fn: HashFunction,
    /// Conjectured security of the proof, in bits.
    pub security_bits: u32,
    /// The program's MAST root.
    pub program_hash: ProgramHash,
    /// Public stack inputs, top of the stack first.
    pub stack_inputs: Vec<u64>,
    /// The 16 output stack elements, top first.
    pub stack_outputs: StackOutputs,
    /// VM cycles executed, as reported by the prover: the proof attests to the trace, not to
    /// this number (shown for cost accounting), and verification refuses one above
    /// `trace_len`.
    pub cycles: u64,
    /// Padded trace length the proof was made over; verification checks it against the
    /// proof's own header.
    pub trace_len: u64,
    /// The serialized Miden `ExecutionProof`.
    pub proof: Vec<u8>,
}

/// Why bytes are not a usable receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("not a Verity receipt: the file is not valid JSON ({0}); is it truncated?")]
    NotJson(String),
    #[error("not a Verity receipt: expected `\"format\": \"{RECEIPT_FORMAT}\"`")]
    WrongFormat,
    #[error("unsupported receipt version {found}: this build reads version {RECEIPT_VERSION}")]
    UnsupportedVersion { found: String },
    #[error("receipt field is malformed: {0}")]
    Field(String),
    #[error("receipt is too large: {0} bytes (limit {MAX_RECEIPT_BYTES})")]
    TooLarge(usize),
}

/// The JSON layout of a receipt file, version 1.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptFileV1 {
    format: String,
    version: u32,
    vm: String,
    hash_fn: HashFunction,
    security_bits: u32,
    program_hash: ProgramHash,
    stack_inputs: Vec<String>,
    stack_outputs: Vec<String>,
    cycles: u64,
    trace_len: u64,
    proof: String,
}

impl Receipt {
    /// Blake3 digest of the proof bytes: the proof's identity in provenance records.
    pub fn proof_hash(&self) -> Digest {
        Digest::blake3(&self.proof)
    }

    /// Serializes to the receipt file format (pretty JSON).
    pub fn to_json(&self) -> String {
        let file = ReceiptFileV1 {
            format: RECEIPT_FORMAT.to_string(),
            version: self.version,
            vm: self.vm.clone(),
            hash_fn: self.hash_fn,
            security_bits: self.security_bits,
            program_hash: self.program_hash,
            stack_inputs: self.stack_inputs.iter().map(u64::to_string).collect(),
            stack_outputs: self.stack_outputs.iter().map(u64::to_string).collect(),
            cycles: self.cycles,
            trace_len: self.trace_len,
            proof: BASE64.encode(&self.proof),
        };
        serde_json::to_string_pretty(&file).expect("receipt serialization cannot fail")
    }

    /// Parses a receipt file, checking its format tag, version and the shape of every field.
    pub fn from_json(bytes: &[u8]) -> Result<Receipt, ReceiptError> {
        if bytes.len() > MAX_RECEIPT_BYTES {
            return Err(ReceiptError::TooLarge(bytes.len()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| ReceiptError::NotJson(e.to_string()))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(RECEIPT_FORMAT) {
            return Err(ReceiptError::WrongFormat);
        }
        match value.get("version") {
            Some(v) if v.as_u64() == Some(u64::from(RECEIPT_VERSION)) => {}
            Some(v) => {
                return Err(ReceiptError::UnsupportedVersion {
                    found: v.to_string(),
                });
            }
            None => {
                return Err(ReceiptError::UnsupportedVersion {
                    found: "(missing)".into(),
                });
            }
        }
        let file: ReceiptFileV1 =
            serde_json::from_value(value).map_err(|e| ReceiptError::Field(e.to_string()))?;
        let stack_inputs = parse_stack("stack_inputs", &file.stack_inputs)?;
        let stack_outputs = parse_stack("stack_outputs", &file.stack_outputs)?;
        if stack_inputs.len() > STACK_DEPTH {
            return Err(ReceiptError::Field(format!(
                "stack_inputs has {} elements; at most {STACK_DEPTH} are allowed",
                stack_inputs.len()
            )));
        }
        let stack_outputs = StackOutputs::new(&stack_outputs).map_err(|_| {
            ReceiptError::Field(format!(
                "stack_outputs has {} elements; a Miden program ends with exactly {STACK_DEPTH}",
                stack_outputs.len()
            ))
        })?;
        let proof = BASE64
            .decode(file.proof.as_bytes())
            .map_err(|e| ReceiptError::Field(format!("proof is not valid base64: {e}")))?;
        if proof.is_empty() {
            return Err(ReceiptError::Field("proof is empty".into()));
        }
        Ok(Receipt {
            version: file.version,
            vm: file.vm,
            hash_fn: file.hash_fn,
            security_bits: file.security_bits,
            program_hash: file.program_hash,
            stack_inputs,
            stack_outputs,
            cycles: file.cycles,
            trace_len: file.trace_len,
            proof,
        })
    }
}

fn parse_stack(name: &str, values: &[String]) -> Result<Vec<u64>, ReceiptError> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match v.parse::<u64>() {
            Ok(x) if x < MODULUS => Ok(x),
            _ => Err(ReceiptError::Field(format!(
                "{name}[{i}] = `{v}` is not a field element (a decimal integer below {MODULUS})"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Receipt {
        Receipt {
            version: RECEIPT_VERSION,
            vm: "miden-vm 0.23.5".into(),
            hash_fn: HashFunction::Blake3_256,
            security_bits: 96,
            program_hash: ProgramHash(Digest::blake3(b"program")),
            stack_inputs: vec![1, 2],
            stack_outputs: StackOutputs::new(&(0..16).collect::<Vec<u64>>()).unwrap(),
            cycles: 100,
            trace_len: 128,
            proof: vec![1, 2, 3, 4],
        }
    }

    #[test]
    fn json_round_trip() {
        let r = sample();
        assert_eq!(Receipt::from_json(r.to_json().as_bytes()).unwrap(), r);
    }

    #[test]
    fn rejects_garbage_truncation_and_wrong_versions() {
        let json = sample().to_json();
        assert!(matches!(
            Receipt::from_json(b"\x00\xff garbage"),
            Err(ReceiptError::NotJson(_))
        ));
        let truncated = &json.as_bytes()[..json.len() / 2];
        assert!(matches!(
            Receipt::from_json(truncated),
            Err(ReceiptError::NotJson(_))
        ));
        assert_eq!(
            Receipt::from_json(b"{\"a\":1}"),
            Err(ReceiptError::WrongFormat)
        );
        let v2 = json.replace("\"version\": 1", "\"version\": 2");
        assert_eq!(
            Receipt::from_json(v2.as_bytes()),
            Err(ReceiptError::UnsupportedVersion { found: "2".into() })
        );
    }

    #[test]
    fn rejects_malformed_fields() {
        let json = sample().to_json();
        let bad_felt = json.replacen("\"1\"", "\"18446744073709551615\"", 1);
        let err = Receipt::from_json(bad_felt.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("stack_inputs[0]"), "{err}");
        let bad_hash = json.replace("\"blake3-256\"", "\"md5\"");
        assert!(matches!(
            Receipt::from_json(bad_hash.as_bytes()),
            Err(ReceiptError::Field(_))
        ));
        let extra = json.replacen('{', "{\"extra\": 1,", 1);
        assert!(matches!(
            Receipt::from_json(extra.as_bytes()),
            Err(ReceiptError::Field(_))
        ));
    }
}
