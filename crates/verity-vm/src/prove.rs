//! Execute and prove: the only place Verity calls Miden's processor and prover. Built with the
//! `prover` feature; verification (`verify.rs`) needs neither.

use miden_assembly::diagnostics::Report;
use miden_assembly::diagnostics::reporting::PrintDiagnostic;
use miden_core::Felt;
use miden_core::field::QuotientMap;
use miden_core_lib::CoreLibrary;
use miden_prover::{config, prove_stark};
use miden_vm::advice::AdviceInputs;
use miden_vm::crypto::merkle::{MerkleStore, MerkleTree, NodeIndex, PartialMerkleTree, SimpleSmt};
use miden_vm::trace::build_trace;
use miden_vm::{
    DefaultHost, ExecutionError, ExecutionOptions, ExecutionProof, FastProcessor, StackInputs,
    StackOutputs, Word,
};
use verity_types::StackOutputs as Outputs;
use verity_types::{Digest, HashFunction, RECEIPT_VERSION, Receipt};

use crate::error::VmError;
use crate::inputs::{AdviceData, Inputs, MerkleData};
use crate::program::Program;
use crate::verify::miden_hash_fn;
use crate::{DEFAULT_MAX_CYCLES, MAX_MAX_CYCLES, MIN_MAX_CYCLES};

/// Hash functions `prove` supports. Each one instantiates the whole STARK prover (minutes of
/// build time), so only the two worth proving with are compiled in: Blake3 (fastest) and
/// Poseidon2 (cheap to verify inside the VM, for recursion). Proofs with any of Miden's hash
/// functions can be verified.
pub const PROVABLE_HASHES: [HashFunction; 2] = [HashFunction::Blake3_256, HashFunction::Poseidon2];

/// How to prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProveOptions {
    /// Execution stops with [`VmError::CycleLimit`] past this many cycles.
    pub max_cycles: u32,
    /// Hash function of the proof. Blake3 by default: measured here, Poseidon2 and RPO make
    /// proving 2–6× slower and RPO makes verification ~10× slower.
    pub hash_fn: HashFunction,
}

impl Default for ProveOptions {
    fn default() -> Self {
        ProveOptions {
            max_cycles: DEFAULT_MAX_CYCLES,
            hash_fn: HashFunction::Blake3_256,
        }
    }
}

/// The result of running a program without proving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The 16 output stack elements, top first.
    pub outputs: Outputs,
    /// VM cycles executed (rows of the main trace).
    pub cycles: u64,
    /// Trace length a proof would be made over (the longest trace segment, padded to a power
    /// of two): this, not `cycles`, sets the cost of proving.
    pub trace_len: u64,
    /// The rows of each trace segment, to see which one sets `trace_len`.
    pub rows: TraceRows,
}

/// Rows of an execution's trace segments before padding: the main trace (`cycles`), the range
/// checker, and the chiplets, which share one segment (hasher + bitwise + memory + ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceRows {
    pub range: u64,
    pub hasher: u64,
    pub bitwise: u64,
    pub memory: u64,
    /// All chiplets together (the segment's length).
    pub chiplets: u64,
}

/// Where a proof is, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProveStage {
    Executing,
    BuildingTrace,
    Proving { cycles: u64, trace_len: u64 },
}

fn host() -> Result<DefaultHost, VmError> {
    DefaultHost::default()
        .with_library(&CoreLibrary::default())
        .map_err(|e| VmError::Execution(format!("cannot load the core library: {e}")))
}

fn execution_options(max_cycles: u32) -> Result<ExecutionOptions, VmError> {
    if !(MIN_MAX_CYCLES..=MAX_MAX_CYCLES).contains(&max_cycles) {
        return Err(VmError::BadCycleLimit {
            got: max_cycles,
            min: MIN_MAX_CYCLES,
            max: MAX_MAX_CYCLES,
        });
    }
    ExecutionOptions::new(
        Some(max_cycles),
        MIN_MAX_CYCLES,
        ExecutionOptions::DEFAULT_CORE_TRACE_FRAGMENT_SIZE,
        false,
        false,
    )
    .map_err(|e| VmError::Execution(e.to_string()))
}

fn felt(value: u64) -> Result<Felt, VmError> {
    Felt::from_canonical_checked(value)
        .ok_or_else(|| VmError::Field(verity_types::FieldError::OutOfField(value.to_string())))
}

fn word(digest: &Digest) -> Result<Word, VmError> {
    Word::try_from(digest.0).map_err(|e| VmError::Inputs(format!("word {digest}: {e}")))
}

fn stack_inputs(stack: &[u64]) -> Result<StackInputs, VmError> {
    let felts = stack
        .iter()
        .map(|v| felt(*v))
        .collect::<Result<Vec<_>, _>>()?;
    StackInputs::new(&felts).map_err(|e| VmError::Inputs(e.to_string()))
}

fn advice_inputs(advice: &AdviceData) -> Result<AdviceInputs, VmError> {
    let mut inputs = AdviceInputs::default()
        .with_stack_values(advice.stack.iter().copied())
        .map_err(|e| VmError::Inputs(format!("advice stack: {e}")))?;
    if !advice.map.is_empty() {
        let mut entries = Vec::with_capacity(advice.map.len());
        for (key, values) in &advice.map {
            let values = values
                .iter()
                .map(|v| felt(*v))
                .collect::<Result<Vec<_>, _>>()?;
            entries.push((word(key)?, values));
        }
        inputs = inputs.with_map(entries);
    }
    if !advice.merkle_store.is_empty() {
        let mut store = MerkleStore::default();
        for data in &advice.merkle_store {
            let err = |e: &dyn std::fmt::Display| VmError::Inputs(format!("merkle_store: {e}"));
            match data {
                MerkleData::Full(leaves) => {
                    let leaves = leaves.iter().map(word).collect::<Result<Vec<_>, _>>()?;
                    let tree = MerkleTree::new(leaves).map_err(|e| err(&e))?;
                    store.extend(tree.inner_nodes());
                }
                MerkleData::Sparse(entries) => {
                    let entries = entries
                        .iter()
                        .map(|(i, w)| word(w).map(|w| (*i, w)))
                        .collect::<Result<Vec<_>, _>>()?;
                    let tree = SimpleSmt::<64>::with_leaves(entries).map_err(|e| err(&e))?;
                    store.extend(tree.inner_nodes());
                }
                MerkleData::Partial(entries) => {
                    let mut leaves = Vec::with_capacity(entries.len());
                    for ((depth, index), w) in entries {
                        let node = NodeIndex::new(*depth, *index).map_err(|e| err(&e))?;
                        leaves.push((node, word(w)?));
                    }
                    let tree = PartialMerkleTree::with_leaves(leaves).map_err(|e| err(&e))?;
                    store.extend(tree.inner_nodes());
                }
            }
        }
        inputs = inputs.with_merkle_store(store);
    }
    Ok(inputs)
}

fn processor(inputs: &Inputs, max_cycles: u32) -> Result<FastProcessor, VmError> {
    FastProcessor::new_with_options(
        stack_inputs(&inputs.stack)?,
        advice_inputs(&inputs.advice)?,
        execution_options(max_cycles)?,
    )
    .map_err(|e| VmError::Inputs(e.to_string()))
}

fn exec_error(err: ExecutionError) -> VmError {
    match err {
        ExecutionError::CycleLimitExceeded(limit) => VmError::CycleLimit { limit },
        other => VmError::Execution(
            PrintDiagnostic::new_without_color(Report::new(other))
                .to_string()
                .trim()
                .to_string(),
        ),
    }
}

fn outputs(stack: &StackOutputs) -> Outputs {
    let values: Vec<u64> = stack.iter().map(|f| f.as_canonical_u64()).collect();
    Outputs::new(&values).expect("Miden's stack outputs are 16 canonical field elements")
}

/// Runs `program` on `inputs` without proving: outputs, cycles and the trace length a proof
/// would cost. Builds the execution trace to count exactly, as Miden's `run` does; use
/// [`execute_outputs`] when only the outputs matter.
pub fn execute(program: &Program, inputs: &Inputs, max_cycles: u32) -> Result<Execution, VmError> {
    let mut host = host()?;
    let trace_inputs = processor(inputs, max_cycles)?
        .execute_trace_inputs_sync(&program.inner, &mut host)
        .map_err(exec_error)?;
    let trace = build_trace(trace_inputs).map_err(exec_error)?;
    let summary = trace.trace_len_summary();
    let chiplets = summary.chiplets_trace_len();
    Ok(Execution {
        outputs: outputs(trace.stack_outputs()),
        cycles: summary.main_trace_len() as u64,
        trace_len: summary.padded_trace_len() as u64,
        rows: TraceRows {
            range: summary.range_trace_len() as u64,
            hasher: chiplets.hash_chiplet_len() as u64,
            bitwise: chiplets.bitwise_chiplet_len() as u64,
            memory: chiplets.memory_chiplet_len() as u64,
            chiplets: chiplets.trace_len() as u64,
        },
    })
}

/// Runs `program` with Miden's fast processor and returns only the output stack. This is the
/// cheapest way to check a claimed result (~1–2 ms per 2^16 cycles).
pub fn execute_outputs(
    program: &Program,
    inputs: &Inputs,
    max_cycles: u32,
) -> Result<Outputs, VmError> {
    let mut host = host()?;
    let output = processor(inputs, max_cycles)?
        .execute_sync(&program.inner, &mut host)
        .map_err(exec_error)?;
    Ok(outputs(&output.stack))
}

/// Executes and proves `program` on `inputs`, returning a receipt.
pub fn prove(
    program: &Program,
    inputs: &Inputs,
    options: ProveOptions,
) -> Result<Receipt, VmError> {
    prove_with_progress(program, inputs, options, &mut |_| {})
}

/// [`prove`], reporting each stage to `progress` (for progress bars and logs).
pub fn prove_with_progress(
    program: &Program,
    inputs: &Inputs,
    options: ProveOptions,
    progress: &mut dyn FnMut(ProveStage),
) -> Result<Receipt, VmError> {
    if !PROVABLE_HASHES.contains(&options.hash_fn) {
        return Err(VmError::Proving(format!(
            "proving with {} is not built in; use blake3-256 or poseidon2",
            options.hash_fn
        )));
    }
    progress(ProveStage::Executing);
    let mut host = host()?;
    let trace_inputs = processor(inputs, options.max_cycles)?
        .execute_trace_inputs_sync(&program.inner, &mut host)
        .map_err(exec_error)?;

    progress(ProveStage::BuildingTrace);
    let trace = build_trace(trace_inputs).map_err(exec_error)?;
    let summary = trace.trace_len_summary();
    let cycles = summary.main_trace_len() as u64;
    let trace_len = summary.padded_trace_len() as u64;
    let stack_outputs = *trace.stack_outputs();
    let precompile_requests = trace.precompile_requests().to_vec();
    let (public_values, kernel_felts) = trace.public_inputs().to_air_inputs();
    let matrix = trace.to_row_major_matrix();
    // The column-major trace is no longer needed; free it before the memory-hungry commit.
    drop(trace);

    // This mirrors `miden_prover::prove_sync` after trace building (0.23.5), which we cannot
    // call directly without executing twice: we need the trace summary for the receipt.
    progress(ProveStage::Proving { cycles, trace_len });
    let var_len_public_inputs: &[&[Felt]] = &[&kernel_felts];
    let params = config::pcs_params();
    let proof_bytes = match options.hash_fn {
        HashFunction::Blake3_256 => {
            let config = config::blake3_256_config(params);
            prove_stark(&config, &matrix, &public_values, var_len_public_inputs)
        }
        HashFunction::Poseidon2 => {
            let config = config::poseidon2_config(params);
            prove_stark(&config, &matrix, &public_values, var_len_public_inputs)
        }
        other => unreachable!("{other} rejected above"),
    }
    .map_err(|e| VmError::Proving(e.to_string()))?;
    let proof = ExecutionProof::new(
        proof_bytes,
        miden_hash_fn(options.hash_fn),
        precompile_requests,
    );

    Ok(Receipt {
        version: RECEIPT_VERSION,
        vm: crate::VM_VERSION.to_string(),
        hash_fn: options.hash_fn,
        security_bits: proof.security_level(),
        program_hash: program.hash(),
        stack_inputs: inputs.stack.clone(),
        stack_outputs: outputs(&stack_outputs),
        cycles,
        trace_len,
        proof: proof.to_bytes(),
    })
}

/// Proves with a direct call of `miden_vm::prove_sync`, bypassing Verity's wrapper. Used only
/// by the benchmark to measure the wrapper's overhead; returns the output stack.
#[doc(hidden)]
pub fn baseline_miden_prove(
    program: &Program,
    inputs: &Inputs,
    max_cycles: u32,
) -> Result<Outputs, VmError> {
    let mut host = host()?;
    let (outputs, _proof) = miden_vm::prove_sync(
        &program.inner,
        stack_inputs(&inputs.stack)?,
        advice_inputs(&inputs.advice)?,
        &mut host,
        execution_options(max_cycles)?,
        miden_vm::ProvingOptions::with_96_bit_security(miden_vm::HashFunction::Blake3_256),
    )
    .map_err(exec_error)?;
    Ok(self::outputs(&outputs))
}
