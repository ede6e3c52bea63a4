//! Every decoder that takes bytes from outside, fed random and mutated inputs: each returns a
//! value or an error, never panics. (The same decoders have `cargo fuzz` targets in `fuzz/`;
//! this harness runs on stable in the README's test command.)

mod common;

use common::*;
use proptest::prelude::*;
use verity_ledger::{Block, BlockHeader};
use verity_types::{Digest, Mode, Receipt, SignedTx, StackOutputs, TxBody};

fn valid_tx() -> SignedTx {
    let chain = Chain::new();
    chain.tx("client", TxBody::SubmitJob(fib_job(10, Mode::Proof)))
}

fn valid_block() -> Block {
    Block {
        parent_id: verity_types::BlockId(Digest::blake3(b"parent")),
        header: BlockHeader {
            chain_id: CHAIN.into(),
            height: 1,
            timestamp_ms: 1,
            parent: Digest::default(),
            proposer: addr("watcher"),
        },
        txs: vec![valid_tx()],
    }
}

/// `bytes` with a few positions overwritten (mutations of a valid encoding reach deeper than
/// random bytes).
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)]) -> Vec<u8> {
    for (at, value) in edits {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = *value;
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn transactions_decode_or_fail_cleanly(random in proptest::collection::vec(any::<u8>(), 0..512), e in edits(), cut in any::<usize>()) {
        let _ = SignedTx::from_bytes(&random);
        let valid = valid_tx().to_bytes();
        if let Ok(tx) = SignedTx::from_bytes(&mutate(valid.clone(), &e)) {
            // Whatever decodes re-encodes to what was decoded (one encoding per value) and
            // can be checked.
            prop_assert_eq!(SignedTx::from_bytes(&tx.to_bytes()).unwrap(), tx.clone());
            prop_assert_eq!(tx.encoded_len(), tx.to_bytes().len());
            let _ = tx.signature_is_valid();
            let chain = Chain::new();
            let _ = verity_ledger::precheck(&chain.state, &tx, 0);
        }
        let _ = SignedTx::from_bytes(&valid[..cut % (valid.len() + 1)]);
    }

    #[test]
    fn blocks_decode_or_fail_cleanly(random in proptest::collection::vec(any::<u8>(), 0..512), e in edits()) {
        let _ = Block::from_bytes(&random);
        let _ = Block::from_bytes(&mutate(valid_block().to_bytes(), &e));
    }

    #[test]
    fn outputs_decode_only_when_canonical(random in proptest::collection::vec(any::<u8>(), 0..160)) {
        if let Ok(o) = borsh::from_slice::<StackOutputs>(&random) {
            prop_assert_eq!(random.len(), 128);
            prop_assert!(o.iter().all(|v| *v < verity_types::MODULUS));
        }
    }

    #[test]
    fn receipts_parse_or_fail_cleanly(random in proptest::collection::vec(any::<u8>(), 0..512), e in edits()) {
        let _ = Receipt::from_json(&random);
        let valid = fib_receipt(3).to_json().into_bytes();
        if let Ok(r) = Receipt::from_json(&mutate(valid, &e)) {
            // A receipt that parses can be verified (an error is fine, a panic is not).
            let _ = verity_vm::verify_receipt(&r);
        }
    }

    #[test]
    fn inputs_files_parse_or_fail_cleanly(text in ".{0,300}", e in edits()) {
        let _ = verity_vm::Inputs::from_inputs_json(&text);
        let valid = br#"{"operand_stack":["1"],"advice_stack":["2"],"private_inputs":["3","4"]}"#.to_vec();
        let _ = verity_vm::Inputs::from_inputs_json(&String::from_utf8_lossy(&mutate(valid, &e)));
    }

    #[test]
    fn program_sources_are_measured_or_refused_cleanly(text in "[ -~\n]{0,200}", e in edits()) {
        let _ = verity_vm::inspect(&text, "fuzz.masm");
        let valid = FIB.as_bytes().to_vec();
        let source = String::from_utf8_lossy(&mutate(valid, &e)).into_owned();
        if verity_vm::inspect(&source, "fuzz.masm").is_ok() {
            let _ = verity_vm::assemble_job(&source, None, 1 << 16);
        }
    }
}
