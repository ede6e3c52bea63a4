//! Program inputs: public stack inputs and private advice, read from flags or from the same
//! `.inputs` JSON files as Miden's own CLI (`operand_stack`, `advice_stack`, `advice_map`,
//! `merkle_store`), with the same meaning.
//!
//! Everything here is untrusted text until it has been checked: each value must be a canonical
//! field element, each word a `0x`-prefixed 64-hex-digit string of four canonical elements
//! (little-endian, as Miden encodes them), and each error says which entry was wrong.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use verity_types::field::{MODULUS, parse_felt};
use verity_types::{Digest, parse_felt_list};

use crate::error::VmError;

/// Miden programs start with at most 16 public stack inputs.
pub const MAX_STACK_INPUTS: usize = 16;
/// Bound on advice elements accepted from a file or the network (8 MiB of field elements).
pub const MAX_ADVICE_ELEMENTS: usize = 1 << 20;
/// Inputs files larger than this are refused before parsing.
pub const MAX_INPUTS_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A program's inputs: the public stack (top first) and the private advice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Public stack inputs, top of the stack first. These appear in receipts.
    pub stack: Vec<u64>,
    /// Private advice inputs. These never appear in receipts or on the ledger.
    pub advice: AdviceData,
    /// Committed private inputs (Verity's `private_inputs` field): field elements the program
    /// reads from memory at [`crate::PRIVATE_INPUTS_ADDR`], bound to the proof by their
    /// commitment (see [`crate::prepare`]). Empty for none.
    pub private: Vec<u64>,
}

/// Private (non-deterministic) inputs, as in Miden's `.inputs` files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AdviceFile", into = "AdviceFile")]
pub struct AdviceData {
    /// Advice stack values, in file order.
    pub stack: Vec<u64>,
    /// Advice map: word key to values.
    pub map: BTreeMap<Digest, Vec<u64>>,
    /// Merkle data loaded into the advice provider's Merkle store.
    pub merkle_store: Vec<MerkleData>,
}

/// A Merkle structure to load into the advice provider's Merkle store (leaves are words).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MerkleData {
    /// A full binary Merkle tree given by its leaves (a power of two of them).
    #[serde(rename = "merkle_tree")]
    Full(Vec<Digest>),
    /// A depth-64 sparse Merkle tree given by `(leaf index, value)` pairs.
    #[serde(rename = "sparse_merkle_tree")]
    Sparse(Vec<(u64, Digest)>),
    /// A partial Merkle tree given by `((depth, index), value)` pairs.
    #[serde(rename = "partial_merkle_tree")]
    Partial(Vec<((u8, u64), Digest)>),
}

/// The JSON shape of Miden's `.inputs` file. Unknown fields are ignored, as Miden does.
#[derive(Debug, Deserialize)]
struct InputsFile {
    operand_stack: Vec<String>,
    #[serde(default)]
    advice_stack: Option<Vec<String>>,
    #[serde(default)]
    advice_map: Option<BTreeMap<String, Vec<u64>>>,
    #[serde(default)]
    merkle_store: Option<Vec<MerkleDataFile>>,
    /// Verity's extension: committed private inputs (see [`Inputs::private`]).
    #[serde(default)]
    private_inputs: Option<Vec<String>>,
}

/// The advice part of an inputs file, used to carry advice on the wire in the same shape.
#[derive(Debug, Serialize, Deserialize)]
struct AdviceFile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    advice_stack: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    advice_map: BTreeMap<String, Vec<u64>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    merkle_store: Vec<MerkleDataFile>,
}

#[derive(Debug, Serialize, Deserialize)]
enum MerkleDataFile {
    #[serde(rename = "merkle_tree")]
    Full(Vec<String>),
    #[serde(rename = "sparse_merkle_tree")]
    Sparse(Vec<(u64, String)>),
    #[serde(rename = "partial_merkle_tree")]
    Partial(Vec<((u8, u64), String)>),
}

impl Inputs {
    /// Public stack inputs only, from a comma-separated list (`--input 1,2,3`).
    pub fn from_stack_list(text: &str) -> Result<Inputs, VmError> {
        let stack = parse_felt_list(text)?;
        check_stack_len(&stack)?;
        Ok(Inputs {
            stack,
            ..Inputs::default()
        })
    }

    /// Parses the JSON text of a Miden `.inputs` file.
    pub fn from_inputs_json(text: &str) -> Result<Inputs, VmError> {
        let file: InputsFile = serde_json::from_str(text)
            .map_err(|e| VmError::Inputs(format!("inputs file is not valid: {e}")))?;
        let stack = file
            .operand_stack
            .iter()
            .enumerate()
            .map(|(i, v)| entry("operand_stack", i, parse_felt(v)))
            .collect::<Result<Vec<_>, _>>()?;
        check_stack_len(&stack)?;
        let private = file
            .private_inputs
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, v)| entry("private_inputs", i, parse_felt(v)))
            .collect::<Result<Vec<_>, _>>()?;
        if private.len() > crate::MAX_PRIVATE_WORDS as usize * 4 {
            return Err(VmError::Inputs(format!(
                "private_inputs has {} elements; the limit is {}",
                private.len(),
                crate::MAX_PRIVATE_WORDS * 4
            )));
        }
        let advice = AdviceFile {
            advice_stack: file.advice_stack.unwrap_or_default(),
            advice_map: file.advice_map.unwrap_or_default(),
            merkle_store: file.merkle_store.unwrap_or_default(),
        };
        Ok(Inputs {
            stack,
            advice: AdviceData::try_from(advice).map_err(VmError::Inputs)?,
            private,
        })
    }

    /// Reads a Miden `.inputs` file.
    pub fn from_inputs_file(path: &Path) -> Result<Inputs, VmError> {
        let read_err = |e: std::io::Error| {
            VmError::Inputs(format!("cannot read inputs file {}: {e}", path.display()))
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_INPUTS_FILE_BYTES {
            return Err(VmError::Inputs(format!(
                "inputs file {} is {len} bytes; the limit is {MAX_INPUTS_FILE_BYTES}",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Inputs::from_inputs_json(&text)
            .map_err(|e| VmError::Inputs(format!("{}: {}", path.display(), strip_prefix(e))))
    }
}

impl AdviceData {
    /// Blake3 of the canonical JSON encoding (map keys are ordered): what a job on the ledger
    /// commits to, so a provider can check the advice it is handed off-ledger.
    pub fn commitment(&self) -> Digest {
        Digest::blake3(&serde_json::to_vec(self).expect("advice serializes"))
    }

    pub fn is_empty(&self) -> bool {
        self.stack.is_empty() && self.map.is_empty() && self.merkle_store.is_empty()
    }

    /// Number of field elements carried, for size limits and pricing.
    pub fn num_elements(&self) -> usize {
        let map: usize = self.map.values().map(|v| 4 + v.len()).sum();
        let store: usize = self
            .merkle_store
            .iter()
            .map(|m| {
                4 * match m {
                    MerkleData::Full(l) => l.len(),
                    MerkleData::Sparse(l) => l.len(),
                    MerkleData::Partial(l) => l.len(),
                }
            })
            .sum();
        self.stack.len() + map + store
    }
}

fn strip_prefix(e: VmError) -> String {
    match e {
        VmError::Inputs(msg) => msg,
        other => other.to_string(),
    }
}

fn check_stack_len(stack: &[u64]) -> Result<(), VmError> {
    if stack.len() > MAX_STACK_INPUTS {
        return Err(VmError::Inputs(format!(
            "{} stack inputs given; Miden programs take at most {MAX_STACK_INPUTS} (pass more \
             data through the advice stack)",
            stack.len()
        )));
    }
    Ok(())
}

fn entry<T, E: std::fmt::Display>(
    field: &str,
    index: usize,
    result: Result<T, E>,
) -> Result<T, VmError> {
    result.map_err(|e| VmError::Inputs(format!("{field}[{index}]: {e}")))
}

/// Parses a word as Miden writes it: `0x` and 64 hex digits, four little-endian u64 limbs, each
/// a canonical field element.
fn parse_word(text: &str) -> Result<Digest, String> {
    if !text.starts_with("0x") {
        return Err(format!("word `{text}` must start with 0x"));
    }
    let digest: Digest = text.parse().map_err(|e| format!("word `{text}`: {e}"))?;
    for (i, limb) in digest.0.chunks(8).enumerate() {
        let value = u64::from_le_bytes(limb.try_into().expect("8-byte chunk"));
        if value >= MODULUS {
            return Err(format!(
                "word `{text}`: element {i} = {value} is not below the field modulus {MODULUS}"
            ));
        }
    }
    Ok(digest)
}

impl TryFrom<AdviceFile> for AdviceData {
    type Error = String;

    fn try_from(file: AdviceFile) -> Result<Self, String> {
        let stack = file
            .advice_stack
            .iter()
            .enumerate()
            .map(|(i, v)| parse_felt(v).map_err(|e| format!("advice_stack[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut map = BTreeMap::new();
        for (key, values) in &file.advice_map {
            let k = parse_word(key).map_err(|e| format!("advice_map key: {e}"))?;
            for (i, v) in values.iter().enumerate() {
                if *v >= MODULUS {
                    return Err(format!(
                        "advice_map[{key}][{i}] = {v} is not below the field modulus {MODULUS}"
                    ));
                }
            }
            map.insert(k, values.clone());
        }
        let mut merkle_store = Vec::with_capacity(file.merkle_store.len());
        for (n, data) in file.merkle_store.into_iter().enumerate() {
            let ctx = |e: String| format!("merkle_store[{n}]: {e}");
            merkle_store.push(match data {
                MerkleDataFile::Full(leaves) => MerkleData::Full(
                    leaves
                        .iter()
                        .map(|l| parse_word(l))
                        .collect::<Result<_, _>>()
                        .map_err(ctx)?,
                ),
                MerkleDataFile::Sparse(entries) => MerkleData::Sparse(
                    entries
                        .iter()
                        .map(|(i, l)| parse_word(l).map(|w| (*i, w)))
                        .collect::<Result<_, _>>()
                        .map_err(ctx)?,
                ),
                MerkleDataFile::Partial(entries) => MerkleData::Partial(
                    entries
                        .iter()
                        .map(|(i, l)| parse_word(l).map(|w| (*i, w)))
                        .collect::<Result<_, _>>()
                        .map_err(ctx)?,
                ),
            });
        }
        let data = AdviceData {
            stack,
            map,
            merkle_store,
        };
        if data.num_elements() > MAX_ADVICE_ELEMENTS {
            return Err(format!(
                "advice holds {} field elements; the limit is {MAX_ADVICE_ELEMENTS}",
                data.num_elements()
            ));
        }
        Ok(data)
    }
}

impl From<AdviceData> for AdviceFile {
    fn from(data: AdviceData) -> Self {
        AdviceFile {
            advice_stack: data.stack.iter().map(u64::to_string).collect(),
            advice_map: data
                .map
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            merkle_store: data
                .merkle_store
                .into_iter()
                .map(|m| match m {
                    MerkleData::Full(l) => {
                        MerkleDataFile::Full(l.iter().map(Digest::to_string).collect())
                    }
                    MerkleData::Sparse(l) => MerkleDataFile::Sparse(
                        l.into_iter().map(|(i, w)| (i, w.to_string())).collect(),
                    ),
                    MerkleData::Partial(l) => MerkleDataFile::Partial(
                        l.into_iter().map(|(i, w)| (i, w.to_string())).collect(),
                    ),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_miden_inputs_files() {
        let text = r#"{
            "operand_stack": ["1", "2"],
            "advice_stack": ["3", "4"],
            "advice_map": {
                "0x0100000000000000000000000000000000000000000000000000000000000000": [5, 6]
            },
            "merkle_store": [
                {"merkle_tree": [
                    "0x0100000000000000000000000000000000000000000000000000000000000000",
                    "0x0200000000000000000000000000000000000000000000000000000000000000"
                ]},
                {"partial_merkle_tree": [[[1, 0],
                    "0x0300000000000000000000000000000000000000000000000000000000000000"]]}
            ]
        }"#;
        let inputs = Inputs::from_inputs_json(text).unwrap();
        assert_eq!(inputs.stack, vec![1, 2]);
        assert_eq!(inputs.advice.stack, vec![3, 4]);
        assert_eq!(inputs.advice.map.len(), 1);
        assert_eq!(inputs.advice.merkle_store.len(), 2);
        // The advice travels on the wire in the same shape and survives a round trip.
        let json = serde_json::to_string(&inputs.advice).unwrap();
        assert_eq!(
            serde_json::from_str::<AdviceData>(&json).unwrap(),
            inputs.advice
        );
    }

    #[test]
    fn minimal_file_has_only_an_operand_stack() {
        let inputs = Inputs::from_inputs_json(r#"{"operand_stack": []}"#).unwrap();
        assert_eq!(inputs, Inputs::default());
    }

    #[test]
    fn errors_name_the_bad_entry() {
        let cases = [
            (r#"{"operand_stack": ["1", "x"]}"#, "operand_stack[1]"),
            (
                r#"{"operand_stack": ["18446744073709551615"]}"#,
                "operand_stack[0]",
            ),
            (
                r#"{"operand_stack": [], "advice_stack": ["-4"]}"#,
                "advice_stack[0]",
            ),
            (
                r#"{"operand_stack": [], "advice_map": {"0x12": [1]}}"#,
                "advice_map key",
            ),
            (
                r#"{"operand_stack": [], "merkle_store": [{"merkle_tree": ["nope"]}]}"#,
                "merkle_store[0]",
            ),
            (r#"{"operand_stack": "#, "not valid"),
            (r#"{"advice_stack": []}"#, "operand_stack"),
        ];
        for (text, needle) in cases {
            let msg = Inputs::from_inputs_json(text).unwrap_err().to_string();
            assert!(
                msg.contains(needle),
                "`{text}` gave `{msg}`, expected mention of {needle}"
            );
        }
        let too_many = format!(r#"{{"operand_stack": [{}]}}"#, vec!["\"1\""; 17].join(","));
        assert!(
            Inputs::from_inputs_json(&too_many)
                .unwrap_err()
                .to_string()
                .contains("at most 16")
        );
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let msg = Inputs::from_inputs_file(Path::new("/nonexistent/x.inputs")).unwrap_err();
        assert!(
            msg.to_string()
                .contains("cannot read inputs file /nonexistent/x.inputs"),
            "{msg}"
        );
    }
}
