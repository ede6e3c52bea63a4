//! A canary's derivation: everything about it is a pure function of the auditor's seed.

use verity_ledger::trust::AUDIT_EPOCH_BLOCKS;
use verity_types::canary::client_key;
use verity_types::{
    Digest, JobId, JobRequest, Keypair, Mode, Offer, SignedTx, StackOutputs, Tx, TxBody,
};
use verity_vm::{Inputs, Program};

/// The program canaries run: the one clients run most in the devnet and the docs.
pub(super) use verity_vm::examples::FIB;

/// Canaries are sent within the first three quarters of their epoch, so a late one still
/// lands inside it.
pub(super) const SEND_WINDOW: u64 = AUDIT_EPOCH_BLOCKS * 3 / 4;

/// One canary, derived from the seed.
#[derive(Debug, Clone)]
pub struct Canary {
    pub key: Keypair,
    pub request: JobRequest,
    /// Blocks into the epoch at which it is sent.
    pub offset: u64,
    /// The right outputs.
    pub expected: StackOutputs,
    /// The id its `SubmitJob` gets (a signature is deterministic, so this is known ahead).
    pub job_id: JobId,
    pub submit: SignedTx,
    /// Whether this validator sends it: each of `V` validators sends each canary slot with
    /// probability 1/V, so the network sends about `count` canaries per epoch whatever its
    /// size (the cost of canaries does not grow with the validator set).
    pub send: bool,
}

/// Derives canary `index` of `auditor`'s `epoch` from its seed: fib(n) with `n` drawn from
/// the seed, the SDK's default offer, timeouts and cycle cap (as `verity job submit` sizes
/// them for the trace on a chain of `block_ms` blocks, so a canary looks like any CLI job),
/// the mode alternating with the index, sent by this one of `validators` validators with
/// probability 1/`validators`.
pub fn derive(
    chain_id: &str,
    auditor: &verity_types::Address,
    epoch: u64,
    seed: &Digest,
    index: u32,
    validators: u64,
    block_ms: u64,
) -> Result<Canary, String> {
    let mut bytes = b"verity/canary/job/v1".to_vec();
    bytes.extend_from_slice(&seed.0);
    bytes.extend_from_slice(&index.to_le_bytes());
    let h = Digest::blake3(&bytes).0;
    let n = 20 + u64::from(u16::from_le_bytes([h[0], h[1]])) % 480;
    let offset = u64::from(u16::from_le_bytes([h[2], h[3]])) % SEND_WINDOW;
    let draw = u64::from_le_bytes(h[4..12].try_into().expect("8 bytes"));
    let send = draw % validators.max(1) == 0;
    let mode = if (epoch + u64::from(index)).is_multiple_of(2) {
        Mode::Optimistic
    } else {
        Mode::Proof
    };
    let program = Program::assemble(FIB, "fib.masm").map_err(|e| e.to_string())?;
    let inputs = Inputs {
        stack: vec![n],
        ..Inputs::default()
    };
    let run = verity_vm::execute(&program, &inputs, verity_vm::DEFAULT_MAX_CYCLES)
        .map_err(|e| e.to_string())?;
    let request = JobRequest {
        program: FIB.into(),
        stack_inputs: vec![n],
        private_inputs: None,
        mode,
        offer: {
            let (lock_timeout, timeout) = verity_client::default_timeouts(run.trace_len, block_ms);
            Offer {
                lock_timeout,
                timeout,
                ..verity_client::default_offer(verity_client::DEFAULT_MAX_PRICE)
            }
        },
        max_cycles: verity_client::suggested_max_cycles(
            run.trace_len,
            verity_vm::DEFAULT_MAX_CYCLES,
        ),
        min_trust: None,
    };
    let key = client_key(auditor, epoch, seed, index);
    let submit = Tx {
        chain_id: chain_id.to_string(),
        signer: key.address(),
        nonce: 0,
        body: TxBody::SubmitJob(request.clone()),
    }
    .sign(&key);
    Ok(Canary {
        key,
        request,
        offset,
        expected: run.outputs,
        job_id: JobId::submitted_by(submit.id()),
        submit,
        send,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_types::MODULUS;

    #[test]
    fn a_canary_is_a_pure_function_of_the_seed_and_looks_like_a_default_client_job() {
        let auditor = Keypair::dev("validator").address();
        let seed = Digest::blake3(b"seed");
        let a = derive("chain", &auditor, 3, &seed, 0, 1, 250).unwrap();
        let b = derive("chain", &auditor, 3, &seed, 0, 1, 250).unwrap();
        assert!(a.send, "a lone validator sends every canary");
        assert_eq!(
            (a.job_id, &a.expected, a.offset),
            (b.job_id, &b.expected, b.offset)
        );
        // The offer `job submit` makes for this trace on a chain of 250 ms blocks.
        let trace_len = verity_vm::execute(
            &Program::assemble(FIB, "fib.masm").unwrap(),
            &Inputs::from_stack_list(&a.request.stack_inputs[0].to_string()).unwrap(),
            1 << 20,
        )
        .unwrap()
        .trace_len;
        let (lock_timeout, timeout) = verity_client::default_timeouts(trace_len, 250);
        assert_eq!(
            a.request.offer,
            Offer {
                lock_timeout,
                timeout,
                ..verity_client::default_offer(1_000)
            }
        );
        assert!(a.offset < SEND_WINDOW);
        assert_ne!(a.key.address(), auditor);
        // The mode alternates with the index; another index is another job.
        let c = derive("chain", &auditor, 3, &seed, 1, 1, 250).unwrap();
        assert_ne!(a.request.mode, c.request.mode);
        assert_ne!(a.job_id, c.job_id);
        // The expected outputs are what the program computes.
        let n = a.request.stack_inputs[0];
        let (mut x, mut y) = (0u128, 1u128);
        for _ in 0..n {
            (x, y) = (y, (x + y) % u128::from(MODULUS));
        }
        assert_eq!(u128::from(a.expected[0]), x);
    }

    #[test]
    fn with_v_validators_each_sends_about_one_slot_in_v() {
        let auditor = Keypair::dev("validator").address();
        let sent = (0..400u32)
            .filter(|i| {
                let seed = Digest::blake3(&i.to_le_bytes());
                derive("chain", &auditor, 1, &seed, 0, 4, 250).unwrap().send
            })
            .count();
        assert!(
            (60..140).contains(&sent),
            "{sent} of 400 slots sent at V = 4"
        );
    }
}
