//! Network jobs: the statement a job's proof must prove, built the same way by the ledger (to
//! verify), the provider (to prove) and the client (to commit).
//!
//! A job without private inputs proves its program on its public stack inputs. A job with
//! private inputs proves a *wrapped* program: Verity's loader (below) runs first. It finds the
//! data in the advice map under the commitment, pipes it into memory at
//! [`PRIVATE_INPUTS_ADDR`] while hashing it with Poseidon2 (Miden's
//! `mem::pipe_preimage_to_memory`), and fails unless the hash equals the commitment. The
//! commitment and the word count are the first five public stack inputs, put there by
//! whoever builds the statement from the ledger's job, never by the prover. Miden's proof does
//! not cover advice, but it does cover this check, so a proof made on any other data fails.
//!
//! The user program then starts with its own public inputs on the stack, as usual, and reads
//! its private inputs from memory: element `i` is at address `PRIVATE_INPUTS_ADDR + i`. The
//! commitment itself is left at [`PRIVATE_COMMITMENT_ADDR`].

use std::collections::BTreeMap;

use miden_core::Felt;
use miden_core::crypto::hash::Poseidon2;
use verity_types::{Digest, PrivateCommitment, ProgramHash};

use crate::error::VmError;
use crate::inputs::{AdviceData, Inputs};
use crate::program::Program;
use crate::shape::{ProgramShape, inspect};

/// Memory address (in field elements) where the loader writes a job's private inputs.
pub const PRIVATE_INPUTS_ADDR: u32 = 1 << 28;
/// Where the loader leaves the commitment it checked (one word, its first element first), for
/// programs that derive Fiat-Shamir challenges from their private data: the commitment is a
/// hash of all of it, fixed before anything the program computes.
pub const PRIVATE_COMMITMENT_ADDR: u32 = PRIVATE_INPUTS_ADDR - 4;
/// Public stack inputs the loader takes before the user's own: the commitment and word count.
pub const PRIVATE_INPUT_SLOTS: usize = 5;
/// Largest private input, in words (4 field elements each): 64Ki field elements, which fits
/// an API request body.
pub const MAX_PRIVATE_WORDS: u32 = 16 * 1024;
/// The call the wrapper inserts before the user's first instruction.
const LOADER_CALL: &str = "exec.::verity::private::load\n    ";

/// Verity's loader library (`verity::private`), linked into every job with private inputs.
/// Stack in: `[C0, C1, C2, C3, words, ...]`; out: `[...]`, data in memory.
pub(crate) const LOADER_SOURCE: &str = "\
use miden::core::mem

#! Loads the job's private inputs into memory, checking them against the commitment, which
#! it also leaves in memory just below them.
pub proc load
    adv.push_mapval
    mem_storew_le.268435452
    movup.4
    push.268435456
    swap
    exec.mem::pipe_preimage_to_memory
    drop
end
";

/// A job's program as the ledger will verify it.
#[derive(Debug, Clone)]
pub struct JobProgram {
    pub program: Program,
    pub shape: ProgramShape,
}

/// Pads private data to whole words (zeros), as the commitment covers it.
fn padded(values: &[u64]) -> Vec<u64> {
    let mut v = values.to_vec();
    v.resize(values.len().div_ceil(4) * 4, 0);
    v
}

/// `values` as field elements, refusing any that is not one.
fn felts(values: &[u64]) -> Result<Vec<Felt>, VmError> {
    values
        .iter()
        .map(|v| {
            Felt::new(*v)
                .ok()
                .ok_or_else(|| VmError::Inputs(format!("{v} is not a field element")))
        })
        .collect()
}

/// The commitment to `values` (private inputs, field elements) that goes into a job request.
pub fn commit_private(values: &[u64]) -> Result<PrivateCommitment, VmError> {
    if values.is_empty() {
        return Err(VmError::Inputs(
            "private inputs are empty: omit them instead".into(),
        ));
    }
    let data = padded(values);
    let words = (data.len() / 4) as u32;
    if words > MAX_PRIVATE_WORDS {
        return Err(VmError::Inputs(format!(
            "private inputs are {words} words; the limit is {MAX_PRIVATE_WORDS}"
        )));
    }
    let digest = Poseidon2::hash_elements(&felts(&data)?);
    let elements: [Felt; 4] = digest.into();
    Ok(PrivateCommitment {
        commitment: elements.map(|f| f.as_canonical_u64()),
        words,
    })
}

/// `hash(a, b)`, as Miden's `hmerge` computes it with word `a` on top of the stack (each
/// word's first element uppermost, as stack inputs are given). A committed-weights model's
/// commitment joins its weights' commitment and its interpretation digest this way, so that a
/// verifier holding the model card (no weights) can recompute it.
pub fn merge_words(a: [u64; 4], b: [u64; 4]) -> Result<[u64; 4], VmError> {
    let word = |w: [u64; 4]| -> Result<miden_core::Word, VmError> {
        let felts: [Felt; 4] = felts(&w)?.try_into().expect("four elements");
        Ok(felts.into())
    };
    let digest: [Felt; 4] = Poseidon2::merge(&[word(a)?, word(b)?]).into();
    Ok(digest.map(|f| f.as_canonical_u64()))
}

/// Checks a job's private inputs against its commitment.
pub fn check_private(values: &[u64], expected: &PrivateCommitment) -> Result<(), VmError> {
    let got = commit_private(values)?;
    if got != *expected {
        return Err(VmError::Inputs(
            "private inputs do not match the job's commitment".into(),
        ));
    }
    Ok(())
}

/// The public stack inputs a job's proof is checked against: the loader's five slots (for a
/// job with private inputs), then the job's own public inputs.
pub fn job_stack_inputs(public: &[u64], private: Option<&PrivateCommitment>) -> Vec<u64> {
    match private {
        None => public.to_vec(),
        Some(p) => {
            let mut stack = p.commitment.to_vec();
            stack.push(u64::from(p.words));
            stack.extend_from_slice(public);
            stack
        }
    }
}

/// The private-input commitment a job statement's public inputs start with, if they can
/// (the inverse of [`job_stack_inputs`], for checking a receipt against a program source).
pub fn commitment_in_stack(stack: &[u64]) -> Option<PrivateCommitment> {
    let words = u32::try_from(*stack.get(4)?).ok()?;
    if words == 0 || words > MAX_PRIVATE_WORDS {
        return None;
    }
    Some(PrivateCommitment {
        commitment: stack[..4].try_into().ok()?,
        words,
    })
}

/// Everything a prover runs a job on: the statement's stack inputs and, for private inputs,
/// the data in the advice map under its commitment.
pub fn job_inputs(
    public: &[u64],
    private: Option<(&PrivateCommitment, &[u64])>,
) -> Result<Inputs, VmError> {
    let mut advice = AdviceData::default();
    if let Some((commitment, values)) = private {
        check_private(values, commitment)?;
        advice.map = BTreeMap::from([committed_entry(commitment, values)]);
    }
    Ok(Inputs {
        stack: job_stack_inputs(public, private.map(|(c, _)| c)),
        advice,
        private: private.map(|(_, v)| v.to_vec()).unwrap_or_default(),
    })
}

/// The advice-map entry a program finds committed data under (with `adv.push_mapval` on the
/// commitment, then `mem::pipe_preimage_to_memory`): the commitment as the key, the data
/// zero-padded to whole words.
pub fn committed_entry(commitment: &PrivateCommitment, values: &[u64]) -> (Digest, Vec<u64>) {
    let mut key = [0u8; 32];
    for (i, v) in commitment.commitment.iter().enumerate() {
        key[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    (Digest(key), padded(values))
}

/// The program and inputs to run or prove locally, exactly as a network job with the same
/// source and inputs would be proven: with private inputs, the loader-wrapped program and
/// the commitment on the stack (so a local receipt and a job's receipt agree).
pub fn prepare(source: &str, name: &str, inputs: &Inputs) -> Result<(Program, Inputs), VmError> {
    if inputs.private.is_empty() {
        return Ok((Program::assemble(source, name)?, inputs.clone()));
    }
    let commitment = commit_private(&inputs.private)?;
    let job = assemble_job(source, Some(&commitment), u64::MAX)?;
    let mut prepared = job_inputs(&inputs.stack, Some((&commitment, &inputs.private)))?;
    // Any raw advice in the file stays available too (unverified hints).
    prepared.advice.stack = inputs.advice.stack.clone();
    prepared.advice.merkle_store = inputs.advice.merkle_store.clone();
    for (k, v) in &inputs.advice.map {
        prepared.advice.map.entry(*k).or_insert_with(|| v.clone());
    }
    Ok((job.program, prepared))
}

/// Assembles a job's program as the ledger does: measures it first (refusing one that would
/// expand past `max_ops`), then, for a job with private inputs, inserts the loader call
/// before the program's first instruction and links the loader.
pub fn assemble_job(
    source: &str,
    private: Option<&PrivateCommitment>,
    max_ops: u64,
) -> Result<JobProgram, VmError> {
    let shape = measure(source, max_ops)?;
    let program = match private {
        None => Program::assemble(source, "job.masm")?,
        Some(p) => {
            check_private_words(p)?;
            wrap(source, &shape)?
        }
    };
    Ok(JobProgram { program, shape })
}

/// Refuses a private-input commitment the loader cannot take: between 1 and
/// [`MAX_PRIVATE_WORDS`] words.
pub fn check_private_words(private: &PrivateCommitment) -> Result<(), VmError> {
    if private.words == 0 || private.words > MAX_PRIVATE_WORDS {
        return Err(VmError::Inputs(format!(
            "private inputs of {} words: between 1 and {MAX_PRIVATE_WORDS}",
            private.words
        )));
    }
    Ok(())
}

/// A program's shape, refusing one that would expand past `max_ops` before anything is
/// assembled.
fn measure(source: &str, max_ops: u64) -> Result<ProgramShape, VmError> {
    let shape = inspect(source, "job.masm")?;
    if shape.expanded_ops > max_ops {
        return Err(VmError::TooLarge {
            ops: shape.expanded_ops,
            limit: max_ops,
        });
    }
    Ok(shape)
}

/// `source` with the loader call inserted before its first instruction, assembled. The
/// wrapper does not depend on the commitment (the loader reads it from the stack), so one
/// wrapped program serves every job with private inputs.
fn wrap(source: &str, shape: &ProgramShape) -> Result<Program, VmError> {
    let at = shape.entry_offset.ok_or_else(|| {
        VmError::Assembly(
            "a job with private inputs needs a `begin ... end` block with at least one instruction"
                .into(),
        )
    })?;
    let (Some(head), Some(tail)) = (source.get(..at), source.get(at..)) else {
        return Err(VmError::Assembly(
            "cannot find where the program starts".into(),
        ));
    };
    let mut wrapped = String::with_capacity(source.len() + LOADER_CALL.len());
    wrapped.push_str(head);
    wrapped.push_str(LOADER_CALL);
    wrapped.push_str(tail);
    Program::assemble_with_loader(&wrapped, "job.masm")
}

/// A program as the ledger publishes it: assembled once, for every job that names it.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The MAST root of the program as written: its name on the ledger, and what jobs
    /// without private inputs prove.
    pub program_hash: ProgramHash,
    /// The MAST root of the program behind Verity's loader: what jobs with private inputs
    /// prove. `None` if the program cannot take private inputs (no instruction to insert
    /// the loader before).
    pub wrapped_hash: Option<ProgramHash>,
    pub shape: ProgramShape,
}

/// Assembles `source` for publication, as written and wrapped: measures it first (refusing
/// one that would expand past `max_ops`), so its cost is bounded before any assembly.
pub fn assemble_publication(source: &str, max_ops: u64) -> Result<Publication, VmError> {
    let shape = measure(source, max_ops)?;
    let program_hash = Program::assemble(source, "job.masm")?.hash();
    let wrapped_hash = match shape.entry_offset {
        Some(_) => Some(wrap(source, &shape)?.hash()),
        None => None,
    };
    Ok(Publication {
        program_hash,
        wrapped_hash,
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUM: &str = include_str!("../../../examples/private_sum.masm");

    #[test]
    #[cfg(feature = "prover")]
    fn the_loader_makes_private_data_readable_and_binds_it() {
        let data = [3u64, 4];
        let commitment = commit_private(&data).unwrap();
        let job = assemble_job(SUM, Some(&commitment), 1 << 16).unwrap();
        let inputs = job_inputs(&[10], Some((&commitment, &data))).unwrap();
        let run = crate::execute(&job.program, &inputs, 1 << 16).unwrap();
        assert_eq!(run.outputs[0], 17);

        // The same statement with other data in the advice map fails inside the program.
        let mut forged = inputs.clone();
        let key = *forged.advice.map.keys().next().unwrap();
        forged.advice.map.insert(key, vec![600, 66, 0, 0]);
        assert!(crate::execute(&job.program, &forged, 1 << 16).is_err());
    }

    #[test]
    fn commitments_are_deterministic_and_padded_to_words() {
        let a = commit_private(&[1, 2, 3]).unwrap();
        assert_eq!(a, commit_private(&[1, 2, 3, 0]).unwrap());
        assert_ne!(a, commit_private(&[1, 2, 4]).unwrap());
        assert_eq!(a.words, 1);
        assert!(commit_private(&[]).is_err());
        assert!(commit_private(&[u64::MAX]).is_err());
    }

    #[test]
    fn a_publication_names_both_programs_jobs_can_prove() {
        let published = assemble_publication(SUM, 1 << 16).unwrap();
        let plain = assemble_job(SUM, None, 1 << 16).unwrap().program.hash();
        let data = commit_private(&[1, 2, 3, 4, 5]).unwrap();
        let wrapped = assemble_job(SUM, Some(&data), 1 << 16)
            .unwrap()
            .program
            .hash();
        assert_eq!(published.program_hash, plain);
        assert_eq!(published.wrapped_hash, Some(wrapped));
        assert_ne!(plain, wrapped);
        assert!(matches!(
            assemble_publication("begin repeat.100000 push.1 drop end end", 1 << 16),
            Err(VmError::TooLarge { .. })
        ));
    }

    #[test]
    fn oversized_programs_are_refused_before_assembly() {
        // Assembling this would copy `push.1 drop` a billion times.
        let src = "begin repeat.1000000 repeat.1000 push.1 drop end end end";
        let err = assemble_job(src, None, 1 << 20).unwrap_err();
        assert!(matches!(err, VmError::TooLarge { .. }), "{err}");
    }
}
